"""Patient-wise splits: deterministic, stratified, never one subject on two sides."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from biosig.errors import ConfigError  # noqa: E402
from biosig.manifests import Record, assign_splits, group_of  # noqa: E402
from biosig.manifests.splits import split_groups  # noqa: E402


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
    # Same seed, records in another order -> the same split for every record.
    shuffled = list(recs)
    random.Random(shuffle_seed).shuffle(shuffled)
    again = {r.id: r.split for r in assign_splits(shuffled, seed=seed, valid_frac=valid_frac,
                                                  test_frac=test_frac,
                                                  stratify=lambda r: r.labels["y"])}
    assert again == {r.id: r.split for r in out}


@settings(max_examples=150, deadline=None)
@given(strata=st.dictionaries(st.text("abcdefgh", min_size=1, max_size=4),
                              st.sampled_from(["N", "A", "O", "~"]), min_size=1, max_size=120),
       fracs=_fracs, seed=st.integers(0, 10**6))
def test_fractions_met_per_stratum_within_one_group(strata, fracs, seed):
    valid_frac, test_frac = fracs
    out = split_groups(strata, seed=seed, valid_frac=valid_frac, test_frac=test_frac)
    assert set(out) == set(strata)

    def near(count, x):
        return math.floor(x) <= count <= math.ceil(x)

    n = len(strata)
    n_test = sum(s == "test" for s in out.values())
    assert near(n_test, n * test_frac)
    assert near(sum(s == "valid" for s in out.values()),
                (n - n_test) * valid_frac / (1 - test_frac))
    for label in set(strata.values()):
        members = [g for g, s in strata.items() if s == label]
        k_test = sum(out[g] == "test" for g in members)
        assert near(k_test, len(members) * test_frac)
        assert near(sum(out[g] == "valid" for g in members),
                    (len(members) - k_test) * valid_frac / (1 - test_frac))


def test_exhaustive_small_cases_no_leak():
    # Every assignment of 5 records to 3 subjects (or none) with 2 labels, two seeds.
    import itertools
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


def test_group_stratum_is_majority_label():
    # p0 has 3 'a' and 1 'b' lines: the whole patient follows one split.
    recs = _records([("p0", "a"), ("p0", "a"), ("p0", "b"), ("p0", "a"), ("p1", "b")])
    out = assign_splits(recs, seed=0, valid_frac=0.0, test_frac=0.5,
                        stratify=lambda r: r.labels["y"])
    assert len({r.split for r in out if r.subject == "p0"}) == 1


@pytest.mark.parametrize("valid_frac, test_frac, match", [
    (-0.1, 0.2, r"valid_frac is -0\.1, expected a number in \[0, 1\)"),
    (0.5, 0.5, r"valid_frac \+ test_frac is 1, expected less than 1"),
    (0.1, float("nan"), r"test_frac is nan"),
])
def test_bad_fractions(valid_frac, test_frac, match):
    with pytest.raises(ConfigError, match=match):
        assign_splits(_records([("p", "a")]), valid_frac=valid_frac, test_frac=test_frac)
