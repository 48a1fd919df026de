"""Array plumbing shared by the :mod:`biosig.dsp` functions (package-internal): the 2-D float64
view the kernels run on, and the Signal-or-array-with-``fs`` unpacking."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from biosig.signal import Signal, signal_data
from biosig.validate import check_signal

__all__ = ["as_2d", "unpack"]


def as_2d(signal, name="signal"):
    """float64 C-contiguous (n_sig, n) view of ``signal`` and a function restoring shape/dtype;
    ``signal`` is checked by :func:`~biosig.validate.check_signal`."""
    x = check_signal(np.asarray(signal), name=name)
    out_dtype = np.float32 if x.dtype == np.float32 else np.float64
    shape = x.shape
    x2 = np.ascontiguousarray(x.reshape(-1, shape[-1]), dtype=np.float64)

    def restore(y):
        return y.reshape(shape).astype(out_dtype, copy=False)

    return x2, restore


def unpack(signal, fs):
    """``(samples, fs, give_back)`` for a Signal or an array with ``fs``: ``give_back(y,
    **changes)`` returns ``y`` as a Signal (``changes`` such as ``fs=``) when a Signal came in,
    else ``y`` itself. The samples are checked by :func:`~biosig.validate.check_signal`."""
    data, fs = signal_data(signal, fs)
    data = check_signal(np.asarray(data))
    if isinstance(signal, Signal):
        return data, fs, lambda y, **changes: replace(signal, data=y, **changes)
    return data, fs, lambda y, **changes: y
