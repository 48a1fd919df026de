"""MATLAB ``.mat`` files without a WFDB header: the largest numeric array is the signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from biosig.errors import InputError
from biosig.io.core import RecordingInfo
from biosig.signal import Signal


def _array(path: Path) -> tuple[str, np.ndarray]:
    try:
        m = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several types for non-MATLAB content
        first = (str(exc).strip().splitlines() or [""])[0]
        raise InputError(path, f"cannot read MATLAB file ({type(exc).__name__}: {first})") \
            from exc
    arrays = {k: v for k, v in m.items() if not k.startswith("__") and isinstance(v, np.ndarray)
              and v.dtype.kind in "iuf" and v.ndim <= 2 and v.size}
    if not arrays:
        raise InputError(path, "MATLAB file holds no numeric 1-D or 2-D array")
    name, x = max(arrays.items(), key=lambda kv: kv[1].size)
    x = np.atleast_2d(x)
    if x.shape[0] > x.shape[1]:  # (samples, channels) -> (channels, samples)
        x = x.T
    return name, x


def _fs(path, source_fs):
    if source_fs is None:
        raise InputError(path, "MATLAB file has no sampling rate; pass source_fs= "
                               "(e.g. 200 for the New Delhi epilepsy EEG)")
    return float(source_fs)


def read_info(path: Path, *, source_fs=None):
    name, x = _array(path)
    names = [name] if x.shape[0] == 1 else [f"{name}{c}" for c in range(x.shape[0])]
    return RecordingInfo(str(path), "mat", _fs(path, source_fs), int(x.shape[1]), names,
                         [""] * x.shape[0])


def read(path: Path, *, source_fs=None, annotations="auto") -> Signal:
    name, x = _array(path)
    names = [name] if x.shape[0] == 1 else [f"{name}{c}" for c in range(x.shape[0])]
    return Signal(x.astype(np.float32), _fs(path, source_fs), names, [""] * x.shape[0], None,
                  None, str(path))
