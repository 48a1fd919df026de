"""What a run keeps of its training data to tell, when it scores new recordings, how far they
lie from it (the math is :mod:`biosig.drift`).

Every recording is described by its file's sampling rate, its duration, its RMS level and the
statistics of its front-end features over the whole recording (the mean and standard deviation
of each bin, un-normalised: :func:`biosig.drift.feature_statistics`). At the end of training a
run writes ``drift_reference.npz``: the Gaussian of its training recordings' feature statistics
(Ledoit-Wolf), the flag threshold (the 95th percentile of the Mahalanobis distances of its
validation recordings) and the rates, durations and levels of the training recordings. A K-fold
run's reference at the run folder is fitted on every recording, its threshold from
cross-fitted distances (each fold's recordings scored by the Gaussian of the others).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biosig.drift import (
    FeatureDistribution,
    drift_threshold,
    feature_statistics,
    fit_feature_distribution,
    level_db,
    mahalanobis_distance,
)
from biosig.fileio import atomic_path, write_text_atomic
from biosig.progress import Progress
from biosig.train.cache import recording_features
from biosig.train.data import read_signal
from biosig.train.plots import plot_drift

__all__ = ["Descriptors", "describe_signal", "describe_examples", "DriftReference",
           "fit_reference", "crossfit_reference", "save_reference", "load_reference",
           "REFERENCE_FILE", "QUANTILE", "write_drift_summary"]

#: the reference's file in a run folder
REFERENCE_FILE = "drift_reference.npz"
#: share of in-distribution (validation) recordings below the flag threshold
QUANTILE = 0.95


@dataclass
class Descriptors:
    """Per-recording descriptors: ``ids`` (n,), ``vectors`` (n, dim) feature statistics,
    ``fs_hz`` (file rate), ``duration_s`` and ``level_db`` (n,) each."""

    ids: list[str]
    vectors: np.ndarray
    fs_hz: np.ndarray
    duration_s: np.ndarray
    level_db: np.ndarray

    @staticmethod
    def concat(parts: list[Descriptors]) -> Descriptors:
        return Descriptors(sum((p.ids for p in parts), []),
                           np.concatenate([p.vectors for p in parts]),
                           *[np.concatenate([getattr(p, k) for p in parts])
                             for k in ("fs_hz", "duration_s", "level_db")])


def describe_signal(frontend, x: np.ndarray, *, fs_hz: float) -> tuple[np.ndarray, float, float,
                                                                        float]:
    """``(feature statistics, fs_hz, duration_s, level_db)`` of one signal ``(n_samples,)`` at
    the run's ``frontend.target_fs`` (``fs_hz``: the file's own rate, before resampling)."""
    vec = feature_statistics(recording_features(frontend, x))
    return vec, float(fs_hz), x.size / float(frontend.fs), level_db(x)


def describe_examples(examples, *, frontend, dcfg, desc: str = "drift reference",
                      show: bool = True) -> Descriptors:
    """:func:`describe_signal` of each example, loaded as training loads it
    (:func:`biosig.train.data.read_signal`)."""
    rows = []
    bar = Progress(len(examples), desc=desc, unit="rec", enabled=show)
    for e in examples:
        x = read_signal(e.record, root=dcfg.root, frontend=frontend.spec,
                        channel=dcfg.channel).data[0]
        rows.append(describe_signal(frontend, x, fs_hz=e.record.fs))
        bar.update(1)
    bar.close()
    if not rows:
        return Descriptors([], np.zeros((0, 0)), *[np.zeros(0)] * 3)
    return Descriptors([e.record.id for e in examples], np.stack([r[0] for r in rows]),
                       *[np.array([r[i] for r in rows], dtype=float) for i in (1, 2, 3)])


@dataclass
class DriftReference:
    """A run's training distribution: ``dist`` (feature statistics), ``threshold`` with the
    ``quantile`` it stands for, ``valid_scores`` (the held-out distances it came from), the
    training recordings' ``fs_hz``, ``duration_s``, ``level_db``, and optionally the
    ``test_scores`` of the run's own test recordings."""

    dist: FeatureDistribution
    threshold: float
    quantile: float
    valid_scores: np.ndarray
    fs_hz: np.ndarray
    duration_s: np.ndarray
    level_db: np.ndarray
    test_scores: np.ndarray | None = None
    test_ids: list[str] | None = None
    how: str = "train/valid"

    def score(self, vectors) -> np.ndarray:
        """Mahalanobis distance of ``vectors`` (n, dim) from the training distribution."""
        return mahalanobis_distance(vectors, self.dist)


def fit_reference(train: Descriptors, valid: Descriptors, *, test: Descriptors | None = None,
                  quantile: float = QUANTILE) -> DriftReference:
    """Gaussian of ``train``'s vectors; threshold at ``quantile`` of ``valid``'s distances."""
    dist = fit_feature_distribution(train.vectors)
    vs = mahalanobis_distance(valid.vectors, dist)
    ts = mahalanobis_distance(test.vectors, dist) if test is not None and test.ids else None
    return DriftReference(dist, drift_threshold(vs, quantile=quantile), quantile, vs,
                          train.fs_hz, train.duration_s, train.level_db, ts,
                          test.ids if ts is not None else None)


def crossfit_reference(desc: Descriptors, folds, *, quantile: float = QUANTILE
                       ) -> DriftReference:
    """Gaussian of every recording; threshold at ``quantile`` of the cross-fitted distances
    (fold ``k``'s recordings from the Gaussian of the other folds'): a K-fold run's
    reference, for its fold models averaged."""
    f = np.asarray(folds)
    oof = np.empty(len(desc.ids))
    for k in np.unique(f):
        d = fit_feature_distribution(desc.vectors[f != k])
        oof[f == k] = mahalanobis_distance(desc.vectors[f == k], d)
    dist = fit_feature_distribution(desc.vectors)
    return DriftReference(dist, drift_threshold(oof, quantile=quantile), quantile, oof,
                          desc.fs_hz, desc.duration_s, desc.level_db, oof, list(desc.ids),
                          how="cross-fitted over folds")


def save_reference(ref: DriftReference, path) -> None:
    """Write ``ref`` as ``.npz`` (atomically)."""
    arrays = dict(mean=ref.dist.mean, precision=ref.dist.precision, scale=ref.dist.scale,
                  threshold=ref.threshold, quantile=ref.quantile, valid_scores=ref.valid_scores,
                  fs_hz=ref.fs_hz, duration_s=ref.duration_s, level_db=ref.level_db,
                  how=np.array(ref.how))
    if ref.test_scores is not None:
        arrays.update(test_scores=ref.test_scores, test_ids=np.array(ref.test_ids))
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)


def load_reference(path) -> DriftReference:
    """Read what :func:`save_reference` wrote."""
    with np.load(Path(path), allow_pickle=False) as z:
        a = {k: z[k] for k in z.files}
    return DriftReference(FeatureDistribution(a["mean"], a["precision"], a["scale"]),
                          float(a["threshold"]), float(a["quantile"]), a["valid_scores"],
                          a["fs_hz"], a["duration_s"], a["level_db"], a.get("test_scores"),
                          a["test_ids"].tolist() if "test_ids" in a else None, str(a["how"]))


def _pct(v, q) -> str:
    v = np.asarray(v, dtype=float)
    v = v[np.isfinite(v)]
    return f"{np.percentile(v, q):.1f}" if v.size else "n/a"


def write_drift_summary(predictions_csv, ref: DriftReference, out_dir, *,
                        max_listed: int = 20) -> tuple[Path, Path]:
    """``drift.md`` and ``drift.png`` in ``out_dir`` from a scored ``predictions.csv`` with
    ``ood_score``, ``ood_flag``, ``fs_hz``, ``duration_s`` and ``level_db`` columns: how many
    records were flagged against the ``quantile`` expected, how their rates, durations and
    levels compare with the training recordings', and the most distant flagged records."""
    with open(predictions_csv, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f)]
    out = Path(out_dir)
    if not rows:
        text = "# Drift\n\nNo record was scored.\n"
        return write_text_atomic(out / "drift.md", text), out / "drift.png"
    score = np.array([float(r["ood_score"]) for r in rows])
    flag = np.array([int(r["ood_flag"]) for r in rows])
    cols = {k: np.array([float(r[k]) for r in rows]) for k in ("fs_hz", "duration_s",
                                                               "level_db")}
    train = {"fs_hz": ref.fs_hz, "duration_s": ref.duration_s, "level_db": ref.level_db}
    names = {"fs_hz": "file sampling rate (Hz)", "duration_s": "duration (s)",
             "level_db": "RMS level (dB)"}
    table = ["| | training: 5th / 50th / 95th pct | scored: 5th / 50th / 95th pct | scored "
             "outside the training range |", "|---|---|---|---|"]
    for k, name in names.items():
        lo, hi = float(np.min(train[k])), float(np.max(train[k]))
        tol = 1e-3 * max(abs(lo), abs(hi), 1.0)        # the CSV rounds to 3 decimals
        outside = float(np.mean((cols[k] < lo - tol) | (cols[k] > hi + tol)))
        table.append(f"| {name} | {' / '.join(_pct(train[k], q) for q in (5, 50, 95))} | "
                     f"{' / '.join(_pct(cols[k], q) for q in (5, 50, 95))} | "
                     f"{100 * outside:.1f} % |")
    order = np.argsort(-score)
    listed = [f"| {rows[i]['record']} | {score[i]:.2f} | {rows[i]['label']} |"
              for i in order[:max_listed] if flag[i]]
    text = "\n".join([
        "# Drift: the scored records against the training data", "",
        f"{len(rows)} records scored; **{int(flag.sum())} flagged "
        f"({100 * flag.mean():.1f} %)** with `ood_flag` = 1 (`ood_score` above "
        f"{ref.threshold:.2f}, the {100 * ref.quantile:.0f}th percentile of the run's own "
        f"held-out training recordings: about {100 * (1 - ref.quantile):.0f} % of records "
        f"like the training data are flagged). Flagged records are scored like the others "
        f"and marked in `predictions.csv`: read their probabilities with care, the model "
        f"saw few recordings like them. Median `ood_score`: scored "
        f"{np.median(score):.2f}, held-out training {np.median(ref.valid_scores):.2f}.", "",
        *table, "",
        "`ood_score`: the Mahalanobis distance of the record's front-end feature statistics "
        "(mean and standard deviation of each bin over the whole recording) from the training "
        f"recordings' ({ref.how}; Ledoit-Wolf covariance).", "",
        "![drift](drift.png)", "",
        *([f"The {len(listed)} most distant flagged records:", "",
           "| record | ood_score | label |", "|---|---|---|", *listed, ""] if listed else []),
    ]).rstrip() + "\n"
    plot_drift(ref.valid_scores, {"scored records": score}, ref.threshold, out / "drift.png")
    return write_text_atomic(out / "drift.md", text), out / "drift.png"
