"""Batch heart-cycle segmentation of PCG recordings: :func:`segment_pcg` (and the per-record
:func:`segment_record`) on top of the generic runner :mod:`biosig.batch`, writing CirCor-style
``.tsv`` files (:func:`write_pcg_segmentation`)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from biosig.batch import ERRORS_NAME, PARTIAL_DIR, BatchSummary, run_batch
from biosig.errors import InputError
from biosig.fileio import atomic_path, write_text_atomic
from biosig.io import load
from biosig.pcg.evaluation import as_state_intervals
from biosig.pcg.features import MIN_FS
from biosig.pcg.segment import PcgSegmenterWeights, pcg_segment
from biosig.validate import check_fs

__all__ = ["segment_pcg", "segment_record", "write_pcg_segmentation", "format_circor_tsv",
           "SEGMENT_COLUMNS", "MIN_DURATION_S"]

#: Columns of ``segments.csv`` written by :func:`segment_pcg`: record name; sampling rate (Hz);
#: duration (s); seconds labelled (state != 0); S1 sounds found; heart rate (bpm) and systolic
#: interval (S1 centre to S2 centre, s) used by the duration model; status ("ok").
SEGMENT_COLUMNS = ("record", "fs", "duration_s", "labelled_s", "s1_count", "heart_rate_bpm",
                   "systolic_interval_s", "status")
#: Recordings shorter than this are refused (fewer than about two heart cycles).
MIN_DURATION_S = 2.0
#: Name of the per-record table in the output folder.
SEGMENTS_NAME = "segments.csv"


def _num(v: float) -> str:
    s = f"{v:.6f}".rstrip("0").rstrip(".")
    return s if s not in ("", "-0") else "0"


def format_circor_tsv(segmentation) -> str:
    """A segmentation as the text of a CirCor ``.tsv`` file: one ``start<TAB>end<TAB>state``
    line per run (seconds with up to 6 decimals, state 0-4), covering the recording.

    Parameters
    ----------
    segmentation : PcgSegmentation, Annotations or np.ndarray [shape=(n, 3)]
        See :func:`biosig.pcg.as_state_intervals`.
    """
    rows = as_state_intervals(segmentation)
    return "".join(f"{_num(a)}\t{_num(b)}\t{int(s)}\n" for a, b, s in rows)


def write_pcg_segmentation(path, segmentation, *, tmp_dir=None) -> Path:
    """Write a segmentation as a CirCor ``.tsv`` file, atomically (read it back with
    :func:`biosig.manifests.read_circor_segmentation`).

    Parameters
    ----------
    path : str or PathLike
        Destination, e.g. ``out/49823_PV.tsv``.
    segmentation : PcgSegmentation, Annotations or np.ndarray [shape=(n, 3)]
    tmp_dir : str or PathLike, optional
        Folder for the temporary file (default: beside the destination).
    """
    p = Path(os.fspath(path))
    p.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(p, tmp_dir=tmp_dir) as tmp:
        Path(tmp).write_text(format_circor_tsv(segmentation), encoding="utf-8")
    return p


def segment_record(item, out_dir: str, *, weights: str | None = None) -> dict:
    """Segment one recording and write ``<out_dir>/<record>.tsv``; return its row.

    Parameters
    ----------
    item : biosig.batch.BatchItem
        The recording (its first channel is segmented; a segment when ``item.meta`` has
        ``start_s``/``end_s``, times then relative to the segment start).
    out_dir : str
    weights : str, optional
        Weights file (default: the shipped weights).

    Returns
    -------
    dict
        Values for :data:`SEGMENT_COLUMNS` (without ``record``).

    Raises
    ------
    InputError
        Missing or corrupt file, sampling rate under 1000 Hz, recording under
        :data:`MIN_DURATION_S`, NaNs, silence; the message names the file.
    """
    sig = load(item.path, channels=[0], annotations=False)
    if item.meta.get("start_s") is not None:
        sig = sig.crop(item.meta["start_s"], item.meta["end_s"])
    check_fs(sig.fs, name="sampling rate", path=sig.path or item.path, min_hz=MIN_FS,
             purpose=" for heart-sound segmentation")
    x = sig.data[0]
    duration_s = x.size / sig.fs
    if duration_s < MIN_DURATION_S:
        raise InputError(item.path, f"{duration_s:.2f} s long, expected at least "
                                    f"{MIN_DURATION_S:g} s for heart-sound segmentation")
    try:
        seg = pcg_segment(x, fs=sig.fs, weights=weights)
    except InputError as exc:
        if exc.path is not None:
            raise
        raise InputError(item.path, exc.reason) from None
    write_pcg_segmentation(Path(out_dir) / f"{item.key}.tsv", seg,
                           tmp_dir=Path(out_dir) / PARTIAL_DIR)
    labelled = float(np.count_nonzero(seg.frame_states)) / 50.0
    cyc = seg.heart_cycle
    return {
        "fs": round(float(sig.fs), 6),
        "duration_s": round(duration_s, 3),
        "labelled_s": round(min(labelled, duration_s), 2),
        "s1_count": int(sum(lab == "S1" for lab in seg.annotations.labels)),
        "heart_rate_bpm": None if cyc is None else round(cyc.heart_rate_bpm, 1),
        "systolic_interval_s": None if cyc is None else round(cyc.systolic_interval_s, 3),
        "status": "ok",
    }


def segment_pcg(inputs, out_dir, *, pattern: str = "*.wav", jobs: int = 1,
                executor: str = "local", scheduler: str | None = None, weights=None,
                progress: bool = True, retry_errors: bool = False):
    """Segment every PCG recording of ``inputs`` into heart cycles, resumably.

    For each recording ``<out_dir>/<record>.tsv`` in CirCor's layout (``start_s<TAB>end_s<TAB>
    state``, state 1 S1, 2 systole, 3 S2, 4 diastole, 0 not labelled) and a row of
    ``<out_dir>/segments.csv`` (:data:`SEGMENT_COLUMNS`); a recording that cannot be used gets
    a row of ``<out_dir>/errors.csv`` instead and the run goes on. Reruns resume
    (see :mod:`biosig.batch`).

    Parameters
    ----------
    inputs : str, PathLike or sequence of them
        Folders (searched recursively for ``pattern``), ``.jsonl`` manifests (PCG lines only)
        or recordings. Recordings named directly are processed together (their list is kept
        in ``<out_dir>/.inputs.txt``); one that is missing becomes an ``errors.csv`` row.
    out_dir : str or PathLike
    pattern : str
        File-name pattern for folders.
    jobs : int
        Local worker processes.
    executor : {"local", "dask"}
    scheduler : str, optional
    weights : str or PathLike, optional
        Weights file (default: the shipped weights).
    progress : bool
    retry_errors : bool

    Returns
    -------
    biosig.batch.BatchSummary
        Totals over all inputs.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [Path(os.fspath(p)) for p in inputs]
    if not inputs:
        raise ValueError("inputs: expected at least one file or folder")
    w = None
    if weights is not None:
        PcgSegmenterWeights.load(weights)          # fail early, naming the file
        w = str(Path(os.fspath(weights)).resolve())
    func = functools.partial(segment_record, weights=w)
    out = Path(os.fspath(out_dir))
    sources, files = [], []
    for p in inputs:
        if p.is_dir() or (p.is_file() and p.suffix.lower() == ".jsonl"):
            sources.append(p)
        else:
            files.append(p)
    if files:
        out.mkdir(parents=True, exist_ok=True)
        listing = out / ".inputs.txt"
        write_text_atomic(listing, "".join(f"{f.resolve()}\n" for f in files), fsync=False)
        sources.append(listing)
    total = None
    for src in sources:
        s = run_batch(src, func, out, columns=SEGMENT_COLUMNS, pattern=pattern,
                      select=lambda rec: rec.modality == "pcg", jobs=jobs, executor=executor,
                      scheduler=scheduler, progress=progress, retry_errors=retry_errors,
                      description="PCG", scores_name=SEGMENTS_NAME)
        total = s if total is None else BatchSummary(
            str(out), total.n_inputs + s.n_inputs, total.n_skipped + s.n_skipped,
            total.n_ok + s.n_ok, total.n_failed + s.n_failed, total.elapsed_s + s.elapsed_s,
            s.scores_csv, str(out / ERRORS_NAME))
    return total

