"""Plain-text single-channel segments, one number per line (the Bonn EEG set)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biosig.errors import InputError
from biosig.io.core import BONN_FS, BONN_N_SAMPLES, RecordingInfo
from biosig.signal import Signal


def _parse(path: Path) -> np.ndarray:
    try:
        text = path.read_text(encoding="ascii", errors="strict")
    except UnicodeDecodeError as exc:
        raise InputError(path, "not a plain-text signal (non-ASCII bytes)") from exc
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise InputError(path, "file is empty (no samples)")
    if any(len(ln.split()) != 1 for ln in lines[:10]):
        raise InputError(path, "expected one number per line (single-channel text signal)")
    try:
        return np.array([float(ln) for ln in lines], dtype=np.float64)
    except ValueError as exc:
        raise InputError(path, f"not a number on some line ({exc})") from exc


def _fs(path: Path, n: int, source_fs):
    if source_fs is not None:
        return float(source_fs)
    if n == BONN_N_SAMPLES:
        return BONN_FS
    raise InputError(path, f"plain-text signal with {n} samples has no sampling rate; pass "
                           f"source_fs= (Bonn EEG segments have {BONN_N_SAMPLES} samples at "
                           f"{BONN_FS} Hz)")


def read_info(path: Path, *, source_fs=None):
    x = _parse(path)
    return RecordingInfo(str(path), "text", _fs(path, x.size, source_fs), int(x.size),
                         ["EEG"], ["uV"])


def read(path: Path, *, source_fs=None, annotations="auto") -> Signal:
    x = _parse(path)
    return Signal(x[None, :].astype(np.float32), _fs(path, x.size, source_fs), ["EEG"], ["uV"],
                  None, None, str(path))
