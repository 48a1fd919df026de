"""Array plumbing shared by the :mod:`biosig.dsp` functions (package-internal): the 2-D float64
view the kernels run on, and the Signal-or-array-with-``fs`` unpacking."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from biosig.signal import Signal, signal_data

__all__ = ["as_2d", "unpack"]


def as_2d(signal, name="signal"):
    """float64 C-contiguous (n_sig, n) view of ``signal`` and a function restoring shape/dtype."""
    x = np.asarray(signal)
    if x.ndim == 0:
        raise ValueError(f"{name} is a scalar, expected an array with time on the last axis")
    if x.dtype.kind not in "fiub":
        raise ValueError(f"{name} has dtype {x.dtype}, expected a real-valued array")
    out_dtype = np.float32 if x.dtype == np.float32 else np.float64
    shape = x.shape
    x2 = np.ascontiguousarray(x.reshape(-1, shape[-1]), dtype=np.float64)

    def restore(y):
        return y.reshape(shape).astype(out_dtype, copy=False)

    return x2, restore


def unpack(signal, fs):
    """``(samples, fs, give_back)`` for a Signal or an array with ``fs``: ``give_back(y,
    **changes)`` returns ``y`` as a Signal (``changes`` such as ``fs=``) when a Signal came in,
    else ``y`` itself."""
    data, fs = signal_data(signal, fs)
    if isinstance(signal, Signal):
        return data, fs, lambda y, **changes: replace(signal, data=y, **changes)
    return data, fs, lambda y, **changes: y
