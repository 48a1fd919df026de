"""Sampling-rate conversion with a polyphase anti-aliasing FIR filter."""

from __future__ import annotations

import numpy as np
import scipy.signal

from biosig.dsp.filters import _as_2d, _check_fs, _gcd_ratio

__all__ = ["resample"]


def resample(signal, *, fs: float, target_fs: float):
    """Resample ``signal`` from ``fs`` to ``target_fs`` Hz.

    Uses :func:`scipy.signal.resample_poly` with the exact rational ratio ``up / down`` (up to a
    denominator of 10 000, e.g. 173.61 Hz -> 128 Hz is 12800/17361) and a Kaiser-windowed
    (beta 5) low-pass FIR at the lower Nyquist frequency, so no aliasing folds into the band.

    Parameters
    ----------
    signal : np.ndarray [shape=(..., n_samples)]
    fs : float > 0
        Current sampling rate in Hz.
    target_fs : float > 0
        Wanted sampling rate in Hz.

    Returns
    -------
    np.ndarray [shape=(..., ceil(n_samples * target_fs / fs))]
        ``float32`` for ``float32`` input, else ``float64``.
    """
    fs = _check_fs(fs)
    target_fs = _check_fs(target_fs)
    x2, _ = _as_2d(signal)
    out_dtype = np.float32 if np.asarray(signal).dtype == np.float32 else np.float64
    if target_fs == fs:
        return np.asarray(signal).astype(out_dtype, copy=True)
    up, down = _gcd_ratio(fs, target_fs)
    y = scipy.signal.resample_poly(x2, up, down, axis=-1, window=("kaiser", 5.0))
    return y.reshape(*np.shape(signal)[:-1], y.shape[-1]).astype(out_dtype, copy=False)
