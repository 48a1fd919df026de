"""Batch QRS scoring of WFDB records: :func:`score_qrs` (and the per-record
:func:`score_record`) on top of the generic runner :mod:`biosig.batch`."""

from __future__ import annotations

import functools
import math
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
import wfdb

from biosig.batch import PARTIAL_DIR, run_batch
from biosig.ecg._common import MIN_FS
from biosig.ecg.hrv import hrv_time
from biosig.ecg.peaks import METHODS, ecg_peaks
from biosig.errors import ConfigError, InputError
from biosig.io import info, load
from biosig.validate import check_fs

__all__ = ["score_qrs", "score_record", "write_qrs_annotations", "qrs_quality", "SCORE_COLUMNS"]

#: Columns of ``scores.csv`` written by :func:`score_qrs`: record name; sampling rate (Hz);
#: duration (s); detected beats; mean heart rate (from the mean normal-to-normal interval) and
#: min/max instantaneous rate over RR intervals within 300-2000 ms (bpm); SDNN and RMSSD (ms,
#: ectopic intervals removed, :func:`biosig.ecg.hrv_time`); quality flag
#: (:func:`qrs_quality`: good/poor/unusable); status ("ok").
SCORE_COLUMNS = ("record", "fs", "duration_s", "beats", "heart_rate_mean_bpm",
                 "heart_rate_min_bpm", "heart_rate_max_bpm", "sdnn_ms", "rmssd_ms", "quality",
                 "status")


def write_qrs_annotations(path, samples, *, fs: float, symbol: str = "N",
                          tmp_dir=None) -> Path:
    """Write beats as a WFDB annotation file, atomically.

    Parameters
    ----------
    path : str or PathLike
        Destination ``<dir>/<record>.<ext>`` (e.g. ``out/100.qrs``); read back with
        ``wfdb.rdann("<dir>/<record>", "<ext>")``.
    samples : np.ndarray [shape=(n_beats,)]
        Beat sample indices (increasing).
    fs : float
        Sampling rate stored in the file.
    symbol : str
        Beat code for every beat.
    tmp_dir : str or PathLike, optional
        Folder for the temporary file, on the destination's file system (default: a hidden
        folder beside the destination, removed afterwards).

    Notes
    -----
    ``wfdb.wrann`` writes ``<record>.<ext>`` into a folder, so the file is written into a fresh
    temporary folder beside the destination and renamed into place. A record without beats gets
    one comment annotation (``"`` at sample 1, aux ``"no QRS detected"``) because WFDB files
    cannot be empty.
    """
    fs = check_fs(fs)
    path = Path(os.fspath(path))
    ext = path.suffix.lstrip(".")
    if not ext:
        raise ValueError(f"path is {str(path)!r}, expected an annotation file name with an "
                         f"extension such as .qrs")
    samples = np.asarray(samples, dtype=np.int64).reshape(-1)
    symbols = [symbol] * samples.size
    aux = None
    if samples.size == 0:
        # a comment at sample 0 would be taken by wfdb.rdann for a header field
        samples, symbols, aux = np.ones(1, dtype=np.int64), ['"'], ["no QRS detected"]
    path.parent.mkdir(parents=True, exist_ok=True)
    base = Path(tmp_dir) if tmp_dir is not None else path.parent
    work = base / f".{path.name}.{uuid.uuid4().hex}"
    work.mkdir(parents=True)
    try:
        wfdb.wrann("rec", ext, samples, symbol=symbols, aux_note=aux, fs=float(fs),
                   write_dir=str(work))
        os.replace(work / f"rec.{ext}", path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def _flat_fraction(x: np.ndarray, fs: float) -> float:
    """Fraction of one-second windows whose peak-to-peak is under 5 % of the median window's
    (lead off, saturation, dropout)."""
    w = int(fs)
    n = x.size // w
    if n < 2:
        return 0.0
    blocks = x[: n * w].reshape(n, w)
    p2p = blocks.max(axis=1) - blocks.min(axis=1)
    ref = np.median(p2p)
    return float(np.mean(p2p < 0.05 * ref)) if ref > 0 else 1.0


def _template_correlation(x: np.ndarray, samples: np.ndarray, fs: float) -> float:
    """Median correlation of each beat (R +- 100 ms, mean removed) with the median beat: near 1
    for an ECG (most beats share a shape), low for noise taken for beats."""
    half = max(2, int(round(0.1 * fs)))
    s = samples[(samples >= half) & (samples < x.size - half)]
    if s.size < 3:
        return float("nan")
    beats = x[s[:, None] + np.arange(-half, half + 1)[None, :]].astype(np.float64)
    beats -= beats.mean(axis=1, keepdims=True)
    template = np.median(beats, axis=0)
    num = beats @ template
    den = np.linalg.norm(beats, axis=1) * np.linalg.norm(template)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, num / den, 0.0)
    return float(np.median(r))


def qrs_quality(samples, *, fs: float, n_samples: int, lead=None) -> str:
    """A coarse signal-quality flag for one scored record.

    Returns
    -------
    str
        ``"unusable"``: fewer than 3 beats. ``"poor"``: mean rate outside 25-250 bpm, a gap over
        3 s without beats (and over 3 mean RR intervals), over 5 % of one-second windows flat
        in ``lead`` (lead off, dropout), or beats that do not share a shape (median correlation
        of the beats with the median beat under 0.5: noise taken for beats). ``"good"``
        otherwise. The flag describes the signal, not
        the rhythm: frequent ectopic beats do not lower it.
    """
    s = np.asarray(samples)
    if s.size < 3:
        return "unusable"
    rr_s = np.diff(s) / fs
    mean_rr = float(rr_s.mean())
    if not 60 / 250 <= mean_rr <= 60 / 25:
        return "poor"
    edges = np.array([s[0], n_samples - s[-1]]) / fs
    if max(rr_s.max(), edges.max()) > max(3.0, 3 * mean_rr):
        return "poor"
    if lead is not None:
        x = np.asarray(lead)
        if _flat_fraction(x, fs) > 0.05 or not _template_correlation(x, s, fs) >= 0.5:
            return "poor"
    return "good"


def _r(v, nd=3):
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else round(v, nd)


def score_record(item, out_dir: str, *, lead: int = 0, method: str = "biosig",
                 ext: str = "qrs") -> dict:
    """Score one record: detect beats, write ``<out_dir>/<record>.<ext>``, return the row.

    Parameters
    ----------
    item : biosig.batch.BatchItem
        The record (a segment when ``item.meta`` has ``start_s``/``end_s``; the annotation
        samples are then relative to the segment start).
    out_dir : str
    lead : int
        Channel index to analyse.
    method : str
        QRS detector (:func:`biosig.ecg.ecg_peaks`).
    ext : str
        Annotation file extension.

    Returns
    -------
    dict
        Values for :data:`SCORE_COLUMNS` (without ``record``).

    Raises
    ------
    InputError
        Unreadable record (corrupt header, missing signal file, all-NaN or flat lead...).
    """
    kwargs = {}
    if item.meta.get("source_fs") is not None:
        kwargs["source_fs"] = item.meta["source_fs"]
    try:
        sig = load(item.path, channels=[int(lead)], annotations=False, on_nan="interpolate",
                   **kwargs)
    except IndexError:
        rec = info(item.path, **kwargs)
        raise InputError(rec.path, f"lead {lead} does not exist; the record has "
                                   f"{rec.n_channels} channels {rec.channels}") from None
    if item.meta.get("start_s") is not None:
        sig = sig.crop(item.meta["start_s"], item.meta["end_s"])
    x = sig.data[0]
    check_fs(sig.fs, name="sampling rate", path=sig.path, min_hz=MIN_FS,
             purpose=" for QRS detection")
    peaks = ecg_peaks(x, fs=sig.fs, method=method)
    write_qrs_annotations(Path(out_dir) / f"{item.key}.{ext}", peaks.samples, fs=sig.fs,
                          tmp_dir=Path(out_dir) / PARTIAL_DIR)
    t = hrv_time(peaks.samples, fs=sig.fs)
    nn = peaks.rr_ms
    valid_hr = 60000.0 / nn[(nn >= 300) & (nn <= 2000)] if nn.size else np.zeros(0)
    return {
        "fs": _r(float(sig.fs), 6),
        "duration_s": _r(x.size / sig.fs, 3),
        "beats": len(peaks),
        "heart_rate_mean_bpm": _r(60000.0 / t.mean_nn_ms if t.mean_nn_ms > 0
                                  else float("nan"), 2),
        "heart_rate_min_bpm": _r(float(valid_hr.min()), 2) if valid_hr.size else None,
        "heart_rate_max_bpm": _r(float(valid_hr.max()), 2) if valid_hr.size else None,
        "sdnn_ms": _r(t.sdnn_ms, 2),
        "rmssd_ms": _r(t.rmssd_ms, 2),
        "quality": qrs_quality(peaks.samples, fs=sig.fs, n_samples=x.size, lead=x),
        "status": "ok",
    }


def score_qrs(inputs, out_dir, *, jobs: int = 1, executor: str = "local",
              scheduler: str | None = None, lead: int = 0, method: str = "biosig",
              progress: bool = True, retry_errors: bool = False):
    """Detect beats in every WFDB record of ``inputs`` and write annotations and scores.

    For each record ``<out_dir>/<record>.qrs`` (WFDB annotations, read back with
    ``wfdb.rdann(path, "qrs")``) and a row of ``<out_dir>/scores.csv`` (:data:`SCORE_COLUMNS`);
    a record that cannot be read gets a row of ``<out_dir>/errors.csv`` instead. Reruns resume
    (see :mod:`biosig.batch`).

    Parameters
    ----------
    inputs : str or PathLike
        Folder of WFDB records (searched recursively for ``*.hea``), a ``.jsonl`` manifest
        (ECG lines only) or a text file listing record paths.
    out_dir : str or PathLike
    jobs : int
        Local worker processes.
    executor : {"local", "dask"}
    scheduler : str, optional
        Address of a running Dask scheduler (``executor="dask"``).
    lead : int
        Channel index to analyse.
    method : str
        QRS detector.
    progress : bool
        Progress bar on stderr.
    retry_errors : bool
        Process the records of an existing ``errors.csv`` again.

    Returns
    -------
    biosig.batch.BatchSummary

    Examples
    --------
    >>> from biosig.ecg import score_qrs, evaluate_qrs             # doctest: +SKIP
    >>> summary = score_qrs("mitdb/", "out/", jobs=2)              # doctest: +SKIP
    >>> print(evaluate_qrs("mitdb/", "out/").format_table())      # doctest: +SKIP
    """
    if method not in METHODS:
        raise ConfigError(f"method: unknown QRS detector {method!r}; expected one of "
                          f"{', '.join(METHODS)}")
    if isinstance(lead, bool) or not isinstance(lead, int) or lead < 0:
        raise ConfigError(f"lead: expected a channel index >= 0, got {lead!r}")
    func = functools.partial(score_record, lead=lead, method=method)
    return run_batch(inputs, func, out_dir, columns=SCORE_COLUMNS, pattern="*.hea",
                     select=lambda rec: rec.modality == "ecg", jobs=jobs, executor=executor,
                     scheduler=scheduler, progress=progress, retry_errors=retry_errors,
                     description="QRS")
