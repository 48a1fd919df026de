"""WFDB records (PhysioNet): header ``.hea`` plus signal files, read with wfdb-python."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import numpy as np
import wfdb

from biosig.errors import InputError
from biosig.io.core import MAX_FS, RecordingInfo
from biosig.signal import Annotations, Signal, check_fs


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _record_line_fs(hea: Path) -> str | None:
    """The sampling-rate field of the header's record line as written (None when absent).

    wfdb silently falls back to 250 Hz when this field does not parse (e.g. ``-360``), so it is
    checked here first."""
    try:
        with open(hea, encoding="latin-1") as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    tokens = line.split()
                    if len(tokens) < 3:
                        return None
                    return tokens[2].split("/")[0].split("(")[0]
    except OSError as exc:
        raise InputError(hea, f"cannot read header ({exc.strerror})") from exc
    return None


def _header(hea: Path):
    fs_text = _record_line_fs(hea)
    if fs_text is not None:
        try:
            fs_value = float(fs_text)
        except ValueError:
            fs_value = float("nan")
        if not fs_value > 0:
            raise InputError(hea, f"corrupt WFDB header (sampling rate field is {fs_text!r}, "
                                  f"expected a positive number)")
    try:
        return wfdb.rdheader(str(hea.with_suffix("")))
    except Exception as exc:  # wfdb raises many types for a bad header; re-raised as one
        raise InputError(hea, f"corrupt WFDB header ({_one_line(exc)})") from exc


def _start_time(h) -> _dt.datetime | None:
    if getattr(h, "base_datetime", None) is not None:
        return h.base_datetime
    if getattr(h, "base_time", None) is not None and getattr(h, "base_date", None) is not None:
        return _dt.datetime.combine(h.base_date, h.base_time)
    return None


def _check_header(hea: Path, h) -> None:
    if h.fs is None or h.sig_len is None or h.n_sig is None:
        raise InputError(hea, "corrupt WFDB header (missing sampling rate, length or signal "
                              "count)")
    check_fs(h.fs, name="sampling rate in header", path=hea, max_hz=MAX_FS)
    if h.n_sig == 0 or not h.file_name:
        raise InputError(hea, "WFDB header lists no signals")
    for fname in sorted(set(h.file_name)):
        f = hea.parent / fname
        if not f.exists():
            raise InputError(hea, f"signal file {fname} named in the header is missing")


def _expected_bytes(h, fname) -> int | None:
    """Bytes a WFDB signal file needs for the header's length, for simple formats."""
    bits = {"212": 12, "16": 16, "80": 8, "310": 32 / 3, "311": 32 / 3, "24": 24, "32": 32,
            "61": 16, "160": 16, "8": 8}
    idx = [i for i, f in enumerate(h.file_name) if f == fname]
    fmts = {h.fmt[i] for i in idx}
    if len(fmts) != 1 or (fmt := fmts.pop()) not in bits:
        return None
    spf = sum((h.samps_per_frame[i] or 1) for i in idx)
    offset = max((h.byte_offset[i] or 0) for i in idx) if h.byte_offset else 0
    return int(offset + np.floor(h.sig_len * spf * bits[fmt] / 8))


def read_info(hea: Path, *, source_fs=None):
    h = _header(hea)
    _check_header(hea, h)
    return RecordingInfo(str(hea), "wfdb", float(h.fs), int(h.sig_len), list(h.sig_name),
                         list(h.units or [""] * h.n_sig), _start_time(h))


def read(hea: Path, *, source_fs=None, annotations="auto") -> Signal:
    h = _header(hea)
    _check_header(hea, h)
    if not h.sig_len:
        raise InputError(hea, "recording is empty (signal length 0 in header)")
    for fname in sorted(set(h.file_name)):
        if Path(fname).suffix.lower() in (".dat", ""):
            need = _expected_bytes(h, fname)
            have = os.path.getsize(hea.parent / fname)
            if need is not None and have < need:
                raise InputError(hea, f"signal file {fname} is truncated: {have} bytes, the "
                                      f"header's {h.sig_len} samples need {need}")
    try:
        rec = wfdb.rdrecord(str(hea.with_suffix("")), physical=True, return_res=32)
    except Exception as exc:  # corrupt data files raise assorted errors inside wfdb
        raise InputError(hea, f"cannot read WFDB signals ({_one_line(exc)})") from exc
    data = np.asarray(rec.p_signal, dtype=np.float32).T
    if data.shape[1] != h.sig_len:
        raise InputError(hea, f"signal files hold {data.shape[1]} samples, the header says "
                              f"{h.sig_len}")
    ann = None
    if annotations:
        ext = "atr" if annotations == "auto" else str(annotations)
        path = hea.with_suffix("." + ext)
        if path.exists():
            ann = read_wfdb_annotations(hea.with_suffix(""), ext, fs=float(h.fs))
        elif annotations != "auto":
            raise InputError(path, "annotation file not found")
    units = [u or "" for u in (rec.units or [""] * data.shape[0])]
    return Signal(data, float(h.fs), list(rec.sig_name), units, _start_time(h), ann, str(hea))


def read_wfdb_annotations(record: Path, extension: str, fs: float | None = None) -> Annotations:
    """Read ``<record>.<extension>`` as :class:`Annotations` (times in seconds)."""
    path = Path(f"{record}.{extension}")
    if not path.exists():
        raise InputError(path, "annotation file not found")
    try:
        a = wfdb.rdann(str(record), extension)
    except Exception as exc:  # corrupt annotation files raise assorted errors inside wfdb
        raise InputError(path, f"cannot read WFDB annotations ({_one_line(exc)})") from exc
    rate = fs or a.fs
    if not rate:
        hea = Path(f"{record}.hea")
        rate = float(_header(hea).fs) if hea.exists() else None
    if not rate:
        raise InputError(path, "annotation file has no sampling rate and no header is present")
    sample = np.asarray(a.sample, dtype=np.float64)
    aux = [(x or "").rstrip("\x00") for x in (a.aux_note or [""] * len(sample))]
    return Annotations(sample / float(rate), np.zeros_like(sample), list(a.symbol), aux,
                       path.name)
