"""Counts of manifest lines by fields, to see splits and confounds at a glance.

``count_by(records, ["source", "labels.covid19"])`` on covid19-cough shows at once that every
positive comes from one source; ``["split", "labels.murmur"]`` shows the stratification.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from biosig.errors import ConfigError
from biosig.manifests.schema import Record
from biosig.manifests.splits import group_of

__all__ = ["field_value", "count_by", "CountRow", "format_counts"]

_NESTED = ("labels", "meta", "annotations")


def field_value(record: Record, key: str):
    """Value of ``key`` on a record: a field name (``source``) or ``labels.X``/``meta.X``.

    Raises
    ------
    ConfigError
        ``key`` names no field.
    """
    head, _, sub = key.partition(".")
    if head not in Record.model_fields or (sub and head not in _NESTED) \
            or (head in _NESTED and not sub):
        raise ConfigError(f"key {key!r}: expected a manifest field or one of "
                          f"{', '.join(n + '.NAME' for n in _NESTED)}")
    value = getattr(record, head)
    if sub:
        value = (value or {}).get(sub)
    return value


@dataclass(frozen=True)
class CountRow:
    """Lines and distinct groups (subjects) for one combination of values."""

    values: tuple
    lines: int
    groups: int


def count_by(records: Iterable[Record], keys: Sequence[str]) -> list[CountRow]:
    """Count lines and groups for every combination of the values of ``keys``, sorted."""
    keys = list(keys)
    if not keys:
        raise ConfigError("count_by: give at least one key")
    lines: dict[tuple, int] = defaultdict(int)
    groups: dict[tuple, set] = defaultdict(set)
    for r in records:
        vals = tuple(field_value(r, k) for k in keys)
        lines[vals] += 1
        groups[vals].add(group_of(r))
    return [CountRow(v, lines[v], len(groups[v])) for v in sorted(lines, key=repr)]


def format_counts(rows: list[CountRow], keys: Sequence[str]) -> str:
    """A plain-text table of :func:`count_by` rows."""
    header = [*keys, "lines", "groups"]
    body = [[("-" if v is None else str(v)) for v in r.values] + [str(r.lines), str(r.groups)]
            for r in rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in [header, *body])
