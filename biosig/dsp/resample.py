"""Sampling-rate conversion with a polyphase anti-aliasing FIR filter."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import scipy.signal

from biosig.dsp._arrays import as_2d, unpack
from biosig.validate import check_fs

__all__ = ["resample"]


def resample(signal, *, fs: float | None = None, target_fs: float):
    """Resample ``signal`` from ``fs`` to ``target_fs`` Hz.

    Uses :func:`scipy.signal.resample_poly` with the exact rational ratio ``up / down`` (up to a
    denominator of 10 000, e.g. 173.61 Hz -> 128 Hz is 12800/17361) and a Kaiser-windowed
    (beta 5) low-pass FIR at the lower Nyquist frequency, so no aliasing folds into the band.

    Parameters
    ----------
    signal : np.ndarray [shape=(..., n_samples)] or biosig.Signal
    fs : float > 0
        Current sampling rate in Hz; may be omitted for a Signal.
    target_fs : float > 0
        Wanted sampling rate in Hz.

    Returns
    -------
    np.ndarray [shape=(..., ceil(n_samples * target_fs / fs))] or biosig.Signal
        ``float32`` for ``float32`` input, else ``float64``; a Signal (rate ``target_fs``,
        annotations unchanged in seconds) for a Signal.
    """
    x, fs, give_back = unpack(signal, fs)
    target_fs = check_fs(target_fs, name="target_fs")
    x2, _ = as_2d(x)
    out_dtype = np.float32 if np.asarray(x).dtype == np.float32 else np.float64
    if target_fs == fs:
        return give_back(np.asarray(x).astype(out_dtype, copy=True), fs=target_fs)
    up, down = _gcd_ratio(fs, target_fs)
    y = scipy.signal.resample_poly(x2, up, down, axis=-1, window=("kaiser", 5.0))
    return give_back(y.reshape(*np.shape(x)[:-1], y.shape[-1]).astype(out_dtype, copy=False),
                     fs=target_fs)


def _gcd_ratio(fs: float, target_fs: float) -> tuple[int, int]:
    ratio = Fraction(target_fs / fs).limit_denominator(10_000)
    if ratio == 0 or not math.isclose(float(ratio), target_fs / fs, rel_tol=1e-6):
        raise ValueError(f"target_fs is {target_fs:g} Hz: cannot resample {fs:g} Hz to it "
                         f"with a rational ratio of small integers (denominator <= 10000)")
    return ratio.numerator, ratio.denominator
