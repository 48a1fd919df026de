"""Patient-wise train/valid/test splits: deterministic, stratified, never one patient on two sides.

Records are grouped by ``subject`` (a record without subject is its own group). Each group gets
one stratum, the most common value of the stratification key among its records. Groups are
sorted, shuffled per stratum with a seeded generator, concatenated stratum by stratum, and dealt
to the splits by systematic sampling with a random start: along the list, a group goes to
``test`` each time ``k * test_frac`` passes an integer, and likewise for ``valid`` among the
rest. Every stratum therefore gets its share (within one group), the totals match the fractions
(within one group), and the result depends only on the seed and the set of (group, stratum)
pairs, not on the order of the records.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from biosig.errors import ConfigError
from biosig.manifests.schema import Record

__all__ = ["assign_splits", "split_groups", "SplitSummary", "summarize_splits", "group_of"]


def group_of(record: Record) -> str:
    """The grouping key of a record: its subject, or its own id when the subject is unknown."""
    return f"subject:{record.subject}" if record.subject is not None else f"id:{record.id}"


def _check_fracs(valid_frac: float, test_frac: float) -> None:
    for name, v in (("valid_frac", valid_frac), ("test_frac", test_frac)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and 0 <= v < 1):
            raise ConfigError(f"{name} is {v!r}, expected a number in [0, 1)")
    if valid_frac + test_frac >= 1:
        raise ConfigError(f"valid_frac + test_frac is {valid_frac + test_frac:g}, expected "
                          f"less than 1 (something must be left to train on)")


def split_groups(strata: dict[str, str], *, seed: int, valid_frac: float,
                 test_frac: float) -> dict[str, str]:
    """Assign each group to ``train``/``valid``/``test``.

    Parameters
    ----------
    strata : dict of str to str
        Group id -> stratum (label) of the group.
    seed : int
    valid_frac, test_frac : float in [0, 1), with valid_frac + test_frac < 1
        Fractions of groups (not of records).

    Returns
    -------
    dict of str to str
        Group id -> split.
    """
    _check_fracs(valid_frac, test_frac)
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for g, s in strata.items():
        by_stratum[s].append(g)
    order: list[str] = []
    for s in sorted(by_stratum):
        groups = sorted(by_stratum[s])
        random.Random(f"{seed}:{s}").shuffle(groups)
        order.extend(groups)
    rng = random.Random(f"{seed}:phase")
    u_test, u_valid = rng.random(), rng.random()
    valid_rest = valid_frac / (1.0 - test_frac)
    out: dict[str, str] = {}
    j = 0
    for k, g in enumerate(order):
        if math.floor((k + 1) * test_frac + u_test) > math.floor(k * test_frac + u_test):
            out[g] = "test"
            continue
        if math.floor((j + 1) * valid_rest + u_valid) > math.floor(j * valid_rest + u_valid):
            out[g] = "valid"
        else:
            out[g] = "train"
        j += 1
    return out


def assign_splits(records: Iterable[Record], *, seed: int = 0, valid_frac: float = 0.1,
                  test_frac: float = 0.2,
                  stratify: Callable[[Record], object] | None = None) -> list[Record]:
    """Return copies of ``records`` with ``split`` set, patient-wise.

    Parameters
    ----------
    records : iterable of Record
    seed : int
        Same seed and same records -> same splits.
    valid_frac, test_frac : float
        Fractions of groups (subjects) for validation and test.
    stratify : callable, optional
        Record -> stratum value (e.g. ``lambda r: r.labels["murmur"]``); a group's stratum is
        its most common value (ties broken by the sorted string form).

    Returns
    -------
    list of Record
        In the input order. Records of one subject always share one split.
    """
    records = list(records)
    votes: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        votes[group_of(r)][repr(stratify(r)) if stratify is not None else ""] += 1
    strata = {g: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
              for g, c in votes.items()}
    assignment = split_groups(strata, seed=seed, valid_frac=valid_frac, test_frac=test_frac)
    return [replace(r, split=assignment[group_of(r)]) for r in records]


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
