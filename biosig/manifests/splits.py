"""Group-wise (patient-wise) train/valid/test splits and K folds, dealt by scikit-learn.

Items are grouped (by ``subject`` in a manifest; a record without subject is its own group) and
a group never lies in two splits or folds. ``sklearn.model_selection.StratifiedGroupKFold``,
shuffled with the seed, deals the groups to folds so that each fold holds about the same share
of each label's items (of all items when there are no labels). :func:`group_kfold` returns
those folds; :func:`group_holdout` gives ``test`` and ``valid`` a number of them near the
requested fractions. Fractions are therefore of items (records), met up to whole groups. The
result depends only on the seed and the set of (item, group, label), not on the items' order.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from biosig.errors import ConfigError
from biosig.manifests.schema import Record

__all__ = ["assign_splits", "group_holdout", "group_kfold", "SplitSummary", "summarize_splits",
           "group_of"]

#: Most folds a holdout is cut into (its fractions are then met to 1/40).
MAX_HOLDOUT_FOLDS = 20


def group_of(record: Record) -> str:
    """The grouping key of a record: its subject, or its own id when the subject is unknown."""
    return f"subject:{record.subject}" if record.subject is not None else f"id:{record.id}"


def _codes(values: Sequence) -> np.ndarray:
    """Integer codes of hashable values, numbered in sorted order of their ``repr``."""
    keys = [repr(v) for v in values]
    index = {k: i for i, k in enumerate(sorted(set(keys)))}
    return np.array([index[k] for k in keys], dtype=np.int64)


def _folds(group_codes: np.ndarray, label_codes: np.ndarray, n_folds: int,
           seed: int) -> np.ndarray:
    """Fold of each item by StratifiedGroupKFold; unstratified when no label fills n_folds.

    No fold stays empty: sklearn puts each group (largest label spread first) in the fold
    where the label shares spread least, ties to the fold with fewest items, and an empty fold
    is always such a fold while one is left; so n_groups >= n_folds fills them all.
    """
    from sklearn.model_selection import StratifiedGroupKFold  # slow to import: only here

    if np.bincount(label_codes).max() < n_folds:     # sklearn refuses; stratifying is moot
        label_codes = np.zeros_like(label_codes)
    fold = np.empty(group_codes.size, dtype=np.int64)
    sgkf = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():   # "the least populated class has only k members"
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        for k, (_, test) in enumerate(sgkf.split(group_codes, label_codes, group_codes)):
            fold[test] = k
    return fold


def group_kfold(groups: Sequence, *, n_folds: int, seed: int,
                labels: Sequence | None = None) -> np.ndarray:
    """Group-wise K folds, stratified by label: the fold index of each item.

    Parameters
    ----------
    groups : sequence [n_items]
        Group of each item (e.g. patient); a group lies in one fold only.
    n_folds : int >= 2
        At most the number of groups.
    seed : int >= 0
        Same seed and same items -> same folds.
    labels : sequence [n_items], optional
        Label of each item; every fold gets about ``1 / n_folds`` of each label's items.

    Returns
    -------
    np.ndarray of int64 [shape=(n_items,)]
        Fold ``0 .. n_folds - 1`` of each item; every fold holds at least one group.

    Raises
    ------
    ConfigError
        (a ``ValueError``) when ``n_folds`` is below 2 or above the number of groups.
    """
    g = _codes(groups)
    n_groups = int(g.max()) + 1 if g.size else 0
    if not isinstance(n_folds, (int, np.integer)) or not 2 <= n_folds <= n_groups:
        raise ConfigError(f"n_folds is {n_folds!r}, expected an integer from 2 to the number of "
                          f"groups ({n_groups})")
    y = np.zeros_like(g) if labels is None else _codes(labels)
    if y.size != g.size:
        raise ConfigError(f"labels has {y.size} items and groups {g.size}, expected the same")
    return _folds(g, y, int(n_folds), seed)


def _check_fracs(valid_frac: float, test_frac: float) -> None:
    for name, v in (("valid_frac", valid_frac), ("test_frac", test_frac)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v < 1):
            raise ConfigError(f"{name} is {v!r}, expected a number in [0, 1)")
    if valid_frac + test_frac >= 1:
        raise ConfigError(f"valid_frac + test_frac is {valid_frac + test_frac:g}, expected "
                          f"less than 1 (something must be left to train on)")


def _fold_shares(valid_frac: float, test_frac: float, n_groups: int) -> tuple[int, int, int]:
    """``(n_folds, folds for valid, folds for test)`` whose shares come nearest the fractions.

    A split with a fraction above zero gets at least one fold while the groups allow it and a
    fold is left for train; with fewer groups the shares are plainly rounded (one or two
    groups: all train).
    """
    for at_least in (1, 0):
        best = None
        for k in range(2, min(n_groups, MAX_HOLDOUT_FOLDS) + 1):
            nv, nt = (max(round(f * k), at_least if f > 0 else 0) for f in (valid_frac,
                                                                             test_frac))
            err = abs(nv / k - valid_frac) + abs(nt / k - test_frac)
            if nv + nt < k and (best is None or err < best[0] - 1e-12):
                best = (err, k, nv, nt)
        if best is not None:
            return best[1:]
    return 1, 0, 0


def group_holdout(groups: Sequence, *, valid_frac: float, test_frac: float, seed: int,
                  labels: Sequence | None = None) -> list[str]:
    """Group-wise train/valid/test split, stratified by label: the split of each item.

    The items are dealt to ``n_folds`` folds by :func:`group_kfold` (``n_folds`` at most
    :data:`MAX_HOLDOUT_FOLDS` and the number of groups, chosen so that whole folds come
    nearest the fractions: 10 for 0.1/0.2); a seeded draw of the folds gives ``test`` and
    ``valid`` theirs and the rest is ``train``.

    Parameters
    ----------
    groups : sequence [n_items]
        Group of each item; a group lies on one side only.
    valid_frac, test_frac : float in [0, 1), with valid_frac + test_frac < 1
        Fractions of the items, met up to whole groups and folds. A fraction above zero gets
        at least one group when there are enough groups to give train one too.
    seed : int >= 0
    labels : sequence [n_items], optional
        Label of each item, for stratification.

    Returns
    -------
    list of {"train", "valid", "test"} [n_items]

    Raises
    ------
    ConfigError
        (a ``ValueError``) when a fraction lies outside [0, 1) or they add up to 1 or more.
    """
    _check_fracs(valid_frac, test_frac)
    g = _codes(groups)
    n_groups = int(g.max()) + 1 if g.size else 0
    n_folds, n_valid, n_test = _fold_shares(valid_frac, test_frac, n_groups)
    if n_folds == 1:
        return ["train"] * g.size
    fold = group_kfold(groups, n_folds=n_folds, seed=seed, labels=labels)
    side = np.array(["train"] * n_folds, dtype=object)
    order = np.random.default_rng(seed).permutation(n_folds)   # which folds go where
    side[order[:n_test]] = "test"
    side[order[n_test:n_test + n_valid]] = "valid"
    return side[fold].tolist()


def assign_splits(records: Iterable[Record], *, seed: int = 0, valid_frac: float = 0.1,
                  test_frac: float = 0.2,
                  stratify: Callable[[Record], object] | None = None) -> list[Record]:
    """Return copies of ``records`` with ``split`` set, patient-wise (:func:`group_holdout`).

    Parameters
    ----------
    records : iterable of Record
    seed : int
        Same seed and same records -> same splits.
    valid_frac, test_frac : float
        Fractions of the records for validation and test, met up to whole subjects.
    stratify : callable, optional
        Record -> label to stratify by (e.g. ``lambda r: r.labels["murmur"]``).

    Returns
    -------
    list of Record
        In the input order. Records of one subject always share one split.
    """
    records = list(records)
    splits = group_holdout([group_of(r) for r in records], valid_frac=valid_frac,
                           test_frac=test_frac, seed=seed,
                           labels=None if stratify is None else [stratify(r) for r in records])
    return [r.model_copy(update={"split": s}) for r, s in zip(records, splits)]


@dataclass(frozen=True)
class SplitSummary:
    """Counts of lines and groups per split."""

    lines: dict[str, int]
    groups: dict[str, int]

    def __str__(self) -> str:
        return "  ".join(f"{s} {self.lines.get(s, 0)} lines/{self.groups.get(s, 0)} groups"
                         for s in ("train", "valid", "test", None) if s in self.lines)


def summarize_splits(records: Iterable[Record]) -> SplitSummary:
    lines: Counter = Counter()
    groups: dict[object, set] = defaultdict(set)
    for r in records:
        lines[r.split] += 1
        groups[r.split].add(group_of(r))
    return SplitSummary(dict(lines), {k: len(v) for k, v in groups.items()})
