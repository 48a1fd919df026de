"""Group-wise splits and folds: never one subject on two sides, fractions and label shares as
asked (checked by counting), deterministic, order-free, clear errors."""

from __future__ import annotations

import itertools
import random
from collections import Counter, defaultdict

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from biosig.errors import ConfigError  # noqa: E402
from biosig.manifests import Record, assign_splits, group_of  # noqa: E402
from biosig.manifests.splits import group_holdout, group_kfold  # noqa: E402


def _records(spec):
    """spec: list of (subject or None, label) -> Records."""
    return [Record(id=f"r{i}", path=f"r{i}.wav", modality="lung", fs=100.0, num_samples=100,
                   duration_s=1.0, channels=["a"], subject=s, labels={"y": y})
            for i, (s, y) in enumerate(spec)]


_spec = st.lists(st.tuples(st.one_of(st.none(), st.sampled_from([f"p{i}" for i in range(25)])),
                           st.sampled_from(["a", "b", "c"])), min_size=1, max_size=80)
_fracs = st.tuples(st.floats(0, 0.45), st.floats(0, 0.45))


@settings(max_examples=150, deadline=None)
@given(spec=_spec, fracs=_fracs, seed=st.integers(0, 2**31 - 1), shuffle_seed=st.integers())
def test_no_subject_on_two_sides_and_order_invariant(spec, fracs, seed, shuffle_seed):
    valid_frac, test_frac = fracs
    recs = _records(spec)
    out = assign_splits(recs, seed=seed, valid_frac=valid_frac, test_frac=test_frac,
                        stratify=lambda r: r.labels["y"])
    assert [r.id for r in out] == [r.id for r in recs]
    sides = defaultdict(set)
    for r in out:
        assert r.split in ("train", "valid", "test")
        sides[group_of(r)].add(r.split)
    assert all(len(s) == 1 for s in sides.values()), sides
    # every split asked for gets a group when there are groups enough for all of them
    wanted = {"train"} | {s for s, f in (("valid", valid_frac), ("test", test_frac)) if f > 0}
    if len(sides) >= len(wanted):
        assert {r.split for r in out} == wanted
    # Same seed, records in another order -> the same split for every record.
    shuffled = list(recs)
    random.Random(shuffle_seed).shuffle(shuffled)
    again = {r.id: r.split for r in assign_splits(shuffled, seed=seed, valid_frac=valid_frac,
                                                  test_frac=test_frac,
                                                  stratify=lambda r: r.labels["y"])}
    assert again == {r.id: r.split for r in out}


@pytest.mark.parametrize("n_per_label, valid_frac, test_frac", [
    (100, 0.1, 0.2), (200, 0.15, 0.15), (60, 0.2, 0.3), (50, 0.1, 0.0)])
def test_single_item_groups_meet_fractions_per_label_exactly(n_per_label, valid_frac,
                                                             test_frac):
    # one record per subject, two labels: every label splits exactly by the fractions
    groups = [f"p{i}" for i in range(2 * n_per_label)]
    labels = ["a", "b"] * n_per_label
    out = group_holdout(groups, valid_frac=valid_frac, test_frac=test_frac, seed=3,
                        labels=labels)
    for label in "ab":
        c = Counter(s for s, y in zip(out, labels) if y == label)
        assert c["test"] == round(n_per_label * test_frac)
        assert c["valid"] == round(n_per_label * valid_frac)


@pytest.mark.parametrize("seed", range(20))
def test_fractions_close_with_subjects_of_several_records(seed):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, int(rng.integers(60, 150)))      # 1-3 records per subject
    groups = np.repeat(np.arange(sizes.size), sizes).tolist()
    valid_frac, test_frac = rng.uniform(0.05, 0.4, 2)
    out = np.array(group_holdout(groups, valid_frac=valid_frac, test_frac=test_frac,
                                 seed=seed))
    # whole folds of at most 1/20 of the records, each off by up to a subject or two
    assert abs((out == "test").mean() - test_frac) < 0.06
    assert abs((out == "valid").mean() - valid_frac) < 0.06


def test_stratified_by_record_labels_within_subjects():
    # 30 subjects of 4 records: 10 all 'a', 10 all 'b', 10 with 2 'a' + 2 'b'
    spec = [(f"p{i}", y) for i in range(10) for y in "aaaa"] + \
           [(f"q{i}", y) for i in range(10) for y in "bbbb"] + \
           [(f"m{i}", y) for i in range(10) for y in "aabb"]
    recs = _records(spec)
    for seed in range(5):
        out = assign_splits(recs, seed=seed, valid_frac=0.0, test_frac=0.5,
                            stratify=lambda r: r.labels["y"])
        by_label = Counter((r.labels["y"], r.split) for r in out)
        assert by_label["a", "test"] == by_label["a", "train"] == 30
        assert by_label["b", "test"] == by_label["b", "train"] == 30
        assert len({r.split for r in out if r.subject == "m0"}) == 1


def test_exhaustive_small_cases_no_leak():
    # Every assignment of 5 records to 3 subjects (or none) with 2 labels, two seeds.
    for subjects in itertools.product(["p0", "p1", "p2", None], repeat=5):
        spec = [(s, "ab"[i % 2]) for i, s in enumerate(subjects)]
        for seed in range(2):
            out = assign_splits(_records(spec), seed=seed, valid_frac=0.3, test_frac=0.3,
                                stratify=lambda r: r.labels["y"])
            by_subject = defaultdict(set)
            for r in out:
                if r.subject is not None:
                    by_subject[r.subject].add(r.split)
            assert all(len(v) == 1 for v in by_subject.values())


def test_seed_changes_split_and_is_deterministic():
    recs = _records([(f"p{i}", "ab"[i % 2]) for i in range(40)])
    a = [r.split for r in assign_splits(recs, seed=1)]
    assert a == [r.split for r in assign_splits(recs, seed=1)]
    assert a != [r.split for r in assign_splits(recs, seed=2)]
    assert Counter(a) == {"train": 28, "valid": 4, "test": 8}


def test_too_few_subjects_round_to_train():
    assert group_holdout(["p"] * 3, valid_frac=0.1, test_frac=0.2, seed=0) == ["train"] * 3
    two = group_holdout(["p", "q"], valid_frac=0.1, test_frac=0.2, seed=0)
    assert two == ["train", "train"]                   # 0.2 of 2 subjects rounds to none
    assert sorted(group_holdout(["p", "q", "r"], valid_frac=0.1, test_frac=0.2,
                                seed=0)) == ["test", "train", "valid"]
    assert assign_splits([], seed=0) == []


@settings(max_examples=100, deadline=None)
@given(spec=_spec, n_folds=st.integers(2, 8), seed=st.integers(0, 2**31 - 1))
def test_kfold_folds_are_grouped_nonempty_and_order_invariant(spec, n_folds, seed):
    groups = [s if s is not None else f"id{i}" for i, (s, _) in enumerate(spec)]
    labels = [y for _, y in spec]
    if len(set(groups)) < n_folds:
        with pytest.raises(ConfigError, match=f"n_folds is {n_folds}, expected an integer "
                                              f"from 2 to the number of groups"):
            group_kfold(groups, n_folds=n_folds, seed=seed, labels=labels)
        return
    folds = group_kfold(groups, n_folds=n_folds, seed=seed, labels=labels)
    assert sorted(set(folds.tolist())) == list(range(n_folds))   # every fold non-empty
    fold_of = {}
    for g, f in zip(groups, folds):
        assert fold_of.setdefault(g, f) == f
    perm = np.random.default_rng(seed).permutation(len(groups))
    again = group_kfold([groups[i] for i in perm], n_folds=n_folds, seed=seed,
                        labels=[labels[i] for i in perm])
    np.testing.assert_array_equal(again, folds[perm])


def test_kfold_single_item_groups_balance_each_label_exactly():
    groups = [f"p{i}" for i in range(24)]
    labels = [0] * 12 + [1] * 12
    folds = group_kfold(groups, n_folds=3, seed=0, labels=labels)
    for k in range(3):
        assert Counter(y for y, f in zip(labels, folds) if f == k) == {0: 4, 1: 4}


@pytest.mark.parametrize("valid_frac, test_frac, match", [
    (-0.1, 0.2, r"valid_frac is -0\.1, expected a number in \[0, 1\)"),
    (0.5, 0.5, r"valid_frac \+ test_frac is 1, expected less than 1"),
    (0.1, float("nan"), r"test_frac is nan"),
])
def test_bad_fractions(valid_frac, test_frac, match):
    with pytest.raises(ConfigError, match=match):
        assign_splits(_records([("p", "a")]), valid_frac=valid_frac, test_frac=test_frac)


def test_bad_folds_and_labels():
    with pytest.raises(ValueError, match=r"n_folds is 1, expected an integer from 2 to the "
                                         r"number of groups \(3\)"):
        group_kfold(["a", "b", "c"], n_folds=1, seed=0)
    with pytest.raises(ValueError, match=r"n_folds is 4, .* \(3\)"):
        group_kfold(["a", "b", "c", "c"], n_folds=4, seed=0)
    with pytest.raises(ValueError, match="labels has 2 items and groups 3"):
        group_kfold(["a", "b", "c"], n_folds=2, seed=0, labels=[0, 1])
