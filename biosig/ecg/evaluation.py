"""Beat-by-beat comparison of QRS detections with reference annotations, the ANSI/AAMI EC57 way.

EC57 (ANSI/AAMI EC57:2012, "Testing and reporting performance results of cardiac rhythm and ST
segment measurement algorithms") scores a detector by matching each reference beat with at most
one detected beat within a 150 ms window. Only beat annotations count (rhythm changes ``+``,
noise ``~``, comments ``"`` ... are ignored in both files). From the matches:

- sensitivity ``Se = TP / (TP + FN)``, positive predictivity ``+P = TP / (TP + FP)``,
  ``F1 = 2 TP / (2 TP + FN + FP)``;
- *gross* statistics pool the counts of all records, *average* statistics are the mean of the
  per-record values.

Departures from the PhysioNet ``bxb`` tool: the whole record is scored (no 5-minute learning
period unless ``start_s`` says so), and the one-to-one matching is globally greedy by time
difference (closest pairs first) rather than ``bxb``'s streaming look-ahead; both give the same
counts whenever beats are further apart than twice the window.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from biosig.errors import ConfigError, InputError
from biosig.fileio import write_text_atomic
from biosig.io import read_annotations

__all__ = ["BEAT_LABELS", "BeatCounts", "RecordScore", "QrsEvaluation", "match_beats",
           "compare_beats", "evaluate_qrs"]

#: WFDB annotation codes that denote beats (wfdb's ``isqrs`` set): normal N, bundle branch
#: block L R B, supraventricular A a J S, ventricular V r, fusion F, escape e j n E, paced /,
#: fusion of paced f, unclassifiable Q and ?.
BEAT_LABELS = frozenset("N L R B A a J S V r F e j n E / f Q ?".split())


def _ratio(num: int, den: int) -> float:
    return num / den if den else float("nan")


@dataclass(frozen=True)
class BeatCounts:
    """Matched (TP), missed (FN) and false (FP) beats, with Se, +P and F1 as fractions."""

    tp: int
    fn: int
    fp: int

    @property
    def se(self) -> float:
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def ppv(self) -> float:
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def f1(self) -> float:
        return _ratio(2 * self.tp, 2 * self.tp + self.fn + self.fp)

    def __add__(self, other: BeatCounts) -> BeatCounts:
        return BeatCounts(self.tp + other.tp, self.fn + other.fn, self.fp + other.fp)


@dataclass(frozen=True)
class BeatMatch:
    """The one-to-one matching of reference and test beats.

    Attributes
    ----------
    counts : BeatCounts
    ref_index, test_index : np.ndarray [shape=(tp,)]
        Indices of the matched pairs, in reference order.
    missed : np.ndarray
        Indices of unmatched reference beats (false negatives).
    false : np.ndarray
        Indices of unmatched test beats (false positives).
    """

    counts: BeatCounts
    ref_index: np.ndarray
    test_index: np.ndarray
    missed: np.ndarray
    false: np.ndarray


def match_beats(ref_s, test_s, *, window_s: float = 0.15) -> BeatMatch:
    """Match reference and detected beat times one to one within ``window_s``.

    Parameters
    ----------
    ref_s, test_s : np.ndarray [shape=(n_ref,), (n_test,)]
        Beat times in seconds (any order).
    window_s : float > 0
        A pair matches when ``|t_test - t_ref| <= window_s`` (EC57: 0.15 s).

    Returns
    -------
    BeatMatch
        Pairs are chosen closest first; each beat is used at most once.
    """
    if not (isinstance(window_s, (int, float)) and math.isfinite(window_s) and window_s > 0):
        raise ConfigError(f"window_s: expected a positive number of seconds, got {window_s!r}")
    ref = np.asarray(ref_s, dtype=np.float64).reshape(-1)
    test = np.asarray(test_s, dtype=np.float64).reshape(-1)
    r_order, t_order = np.argsort(ref, kind="stable"), np.argsort(test, kind="stable")
    r, t = ref[r_order], test[t_order]
    tol = window_s + 1e-9
    lo = np.searchsorted(t, r - tol, side="left")
    hi = np.searchsorted(t, r + tol, side="right")
    counts = hi - lo
    pr = np.repeat(np.arange(r.size), counts)
    pt = (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
          + np.repeat(lo, counts)).astype(np.int64)
    dist = np.abs(t[pt] - r[pr])
    order = np.lexsort((pt, pr, dist))
    used_r = np.zeros(r.size, dtype=bool)
    used_t = np.zeros(t.size, dtype=bool)
    mr, mt = [], []
    for k in order:
        a, b = pr[k], pt[k]
        if used_r[a] or used_t[b]:
            continue
        used_r[a] = used_t[b] = True
        mr.append(a)
        mt.append(b)
    mr_a, mt_a = np.asarray(mr, dtype=np.int64), np.asarray(mt, dtype=np.int64)
    srt = np.argsort(mr_a, kind="stable")
    tp = int(mr_a.size)
    return BeatMatch(BeatCounts(tp, int(r.size - tp), int(t.size - tp)),
                     r_order[mr_a[srt]], t_order[mt_a[srt]],
                     np.sort(r_order[~used_r]), np.sort(t_order[~used_t]))


def _beat_times(ann, start_s: float, end_s: float | None) -> np.ndarray:
    keep = np.array([lab in BEAT_LABELS for lab in ann.labels], dtype=bool)
    t = ann.onset_s[keep] if keep.size else np.zeros(0)
    m = t >= start_s
    if end_s is not None:
        m &= t < end_s
    return t[m]


def compare_beats(ref, test, *, window_s: float = 0.15, start_s: float = 0.0,
                  end_s: float | None = None) -> BeatCounts:
    """EC57 beat counts between two :class:`~biosig.signal.Annotations`.

    Parameters
    ----------
    ref, test : Annotations
        Reference and detector annotations; only :data:`BEAT_LABELS` count.
    window_s : float
        Match window (seconds).
    start_s, end_s : float
        Score only beats in ``[start_s, end_s)`` (EC57's optional learning period is
        ``start_s=300``).
    """
    return match_beats(_beat_times(ref, start_s, end_s), _beat_times(test, start_s, end_s),
                       window_s=window_s).counts


@dataclass(frozen=True)
class RecordScore:
    """EC57 counts and statistics of one record (Se, +P, F1 as fractions)."""

    record: str
    counts: BeatCounts

    def to_dict(self) -> dict:
        c = self.counts
        return {"record": self.record, "ref_beats": c.tp + c.fn, "test_beats": c.tp + c.fp,
                "tp": c.tp, "fn": c.fn, "fp": c.fp, "se": c.se, "ppv": c.ppv, "f1": c.f1}


@dataclass(frozen=True)
class QrsEvaluation:
    """Per-record, gross and average EC57 statistics of a QRS detector.

    Attributes
    ----------
    records : list of RecordScore
    window_s : float
    missing : list of str
        Reference records without a test annotation file (not scored).
    """

    records: list[RecordScore]
    window_s: float = 0.15
    missing: list[str] = field(default_factory=list)

    @property
    def gross(self) -> BeatCounts:
        total = BeatCounts(0, 0, 0)
        for r in self.records:
            total = total + r.counts
        return total

    @property
    def average(self) -> dict:
        """Mean of the per-record Se, +P and F1 (records where a value is undefined skipped)."""
        out = {}
        for key in ("se", "ppv", "f1"):
            vals = [getattr(r.counts, key) for r in self.records]
            vals = [v for v in vals if not math.isnan(v)]
            out[key] = float(np.mean(vals)) if vals else float("nan")
        return out

    def rows(self) -> list[dict]:
        """Per-record rows, then a ``gross`` row and an ``average`` row."""
        rows = [r.to_dict() for r in self.records]
        g = RecordScore("gross", self.gross).to_dict()
        avg = {k: "" for k in g}
        avg.update(record="average", **self.average)
        return rows + [g, avg]

    def to_dict(self) -> dict:
        g = self.gross
        return {"standard": "ANSI/AAMI EC57 beat-by-beat (Se, +P, F1)",
                "window_s": self.window_s,
                "records": [r.to_dict() for r in self.records],
                "gross": {**asdict(g), "se": g.se, "ppv": g.ppv, "f1": g.f1},
                "average": self.average, "missing": list(self.missing)}

    def to_csv(self, path) -> Path:
        """Write :meth:`rows` as CSV (atomically) and return the path."""
        buf = io.StringIO()
        rows = self.rows()
        w = csv.DictWriter(buf, fieldnames=list(rows[0].keys()) if rows else ["record"],
                           lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
        return write_text_atomic(Path(path), buf.getvalue())

    def to_json(self, path) -> Path:
        """Write :meth:`to_dict` as JSON (atomically; NaN as null) and return the path."""
        def clean(o):
            if isinstance(o, float) and math.isnan(o):
                return None
            if isinstance(o, dict):
                return {k: clean(v) for k, v in o.items()}
            if isinstance(o, list):
                return [clean(v) for v in o]
            return o
        return write_text_atomic(Path(path), json.dumps(clean(self.to_dict()), indent=2) + "\n")

    def format_table(self) -> str:
        """The per-record table with gross and average lines, percentages, as text."""
        def pct(v):
            return "   -  " if (isinstance(v, float) and math.isnan(v)) or v == "" else \
                f"{100 * v:6.2f}"
        head = f"{'record':<16}{'ref':>7}{'test':>7}{'TP':>7}{'FN':>6}{'FP':>6}" \
               f"{'Se%':>8}{'+P%':>8}{'F1%':>8}"
        lines = [head, "-" * len(head)]
        for i, row in enumerate(self.rows()):
            if row["record"] == "gross":
                lines.append("-" * len(head))
            if row["record"] == "average":
                lines.append(f"{'average':<16}{'':>33}{pct(row['se']):>8}{pct(row['ppv']):>8}"
                             f"{pct(row['f1']):>8}")
                continue
            lines.append(f"{str(row['record'])[:15]:<16}{row['ref_beats']:>7}"
                         f"{row['test_beats']:>7}{row['tp']:>7}{row['fn']:>6}{row['fp']:>6}"
                         f"{pct(row['se']):>8}{pct(row['ppv']):>8}{pct(row['f1']):>8}")
            del i
        if self.missing:
            lines.append(f"not scored (no test annotations): {', '.join(self.missing[:10])}"
                         + (" ..." if len(self.missing) > 10 else ""))
        return "\n".join(lines)


def _check_ext(ext: str, name: str) -> str:
    ext = str(ext).lstrip(".")
    if not ext or "/" in ext or os.sep in ext:
        raise ConfigError(f"{name}: expected an annotation extension such as 'atr', got {ext!r}")
    return ext


def evaluate_qrs(ref_dir, test_dir, *, ref_ext: str = "atr", test_ext: str = "qrs",
                 window_s: float = 0.15, start_s: float = 0.0, out_dir=None) -> QrsEvaluation:
    """Score every detector annotation file against its reference (EC57, beat by beat).

    Parameters
    ----------
    ref_dir : str or PathLike
        Folder searched recursively for ``*.<ref_ext>`` reference annotation files.
    test_dir : str or PathLike
        Folder holding the detector's ``<record>.<test_ext>`` files at the same relative paths
        (the layout :func:`biosig.ecg.score_qrs` writes).
    ref_ext, test_ext : str
        Annotation file extensions.
    window_s : float
        Match window in seconds (EC57: 0.15).
    start_s : float
        Ignore beats before this time (EC57 learning period: 300).
    out_dir : str or PathLike, optional
        Also write ``qrs_evaluation.json`` and ``qrs_evaluation.csv`` there.

    Returns
    -------
    QrsEvaluation
    """
    ref_dir, test_dir = Path(ref_dir), Path(test_dir)
    ref_ext, test_ext = _check_ext(ref_ext, "ref_ext"), _check_ext(test_ext, "test_ext")
    for d, what in ((ref_dir, "REF_DIR"), (test_dir, "TEST_DIR")):
        if not d.is_dir():
            raise InputError(d, f"{what} is not a directory")
    refs = sorted(ref_dir.rglob(f"*.{ref_ext}"))
    if not refs:
        raise InputError(ref_dir, f"no *.{ref_ext} reference annotation files found")
    records, missing = [], []
    for ref_path in refs:
        rel = ref_path.relative_to(ref_dir).with_suffix("")
        name = rel.as_posix()
        test_path = test_dir / rel.parent / f"{rel.name}.{test_ext}"
        if not test_path.exists():
            missing.append(name)
            continue
        ref = read_annotations(ref_path, ref_ext)
        test = read_annotations(test_path, test_ext)
        records.append(RecordScore(name, compare_beats(ref, test, window_s=window_s,
                                                       start_s=start_s)))
    ev = QrsEvaluation(records, window_s, missing)
    if out_dir is not None:
        ev.to_json(Path(out_dir) / "qrs_evaluation.json")
        ev.to_csv(Path(out_dir) / "qrs_evaluation.csv")
    return ev
