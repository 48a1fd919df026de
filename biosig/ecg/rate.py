"""Heart rate from R peaks: :func:`ecg_rate`."""

from __future__ import annotations

import numpy as np

from biosig.ecg._common import as_peaks
from biosig.validate import check_fs

__all__ = ["ecg_rate"]


def ecg_rate(peaks, *, fs: float, n_samples: int | None = None) -> np.ndarray:
    """Instantaneous heart rate in beats per minute.

    Parameters
    ----------
    peaks : np.ndarray [shape=(n_beats,)] or QrsPeaks
        R-peak sample indices, strictly increasing.
    fs : float > 0
        Sampling rate in Hz of the indices.
    n_samples : int, optional
        Return the rate at every sample ``0 .. n_samples - 1`` (linear interpolation between
        beats, held constant before the second and after the last beat) instead of one value
        per beat.

    Returns
    -------
    np.ndarray [shape=(n_beats,) or (n_samples,)]
        ``60 / RR`` in bpm; the value at beat ``k`` uses the interval ending at beat ``k`` (the
        first beat takes the first interval's rate). NaN where fewer than two beats exist.
    """
    fs = check_fs(fs)
    p = as_peaks(peaks)
    if p.size < 2:
        rate = np.full(p.size, np.nan)
    else:
        rate = 60.0 * fs / np.diff(p).astype(np.float64)
        rate = np.concatenate([rate[:1], rate])
    if n_samples is None:
        return rate
    if p.size < 2:
        return np.full(int(n_samples), np.nan)
    return np.interp(np.arange(int(n_samples)), p, rate)
