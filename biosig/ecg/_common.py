"""Input plumbing shared by the :mod:`biosig.ecg` functions (package-internal): an ECG as a
Signal or an array with ``fs``, one lead as float64, chunked zero-phase filtering of a long
lead, and R-peak index arrays."""

from __future__ import annotations

import numpy as np

from biosig import dsp
from biosig.signal import signal_data
from biosig.validate import check_channel, check_signal

__all__ = ["MIN_FS", "ecg_data", "as_lead", "filtfilt_lead", "as_peaks", "corr_rows"]

#: Lowest sampling rate the ECG functions accept (the QRS band reaches 15 Hz, and the
#: five-point derivative needs a few samples per complex).
MIN_FS = 50.0


def ecg_data(signal, fs) -> tuple[np.ndarray, float]:
    """Samples and rate of an ECG given as a Signal or an array with ``fs`` (at least
    :data:`MIN_FS`), checked by :func:`biosig.validate.check_signal`."""
    data, fs = signal_data(signal, fs, min_hz=MIN_FS, purpose=" for ECG analysis")
    return check_signal(np.asarray(data)), fs


def as_lead(signal, name="signal") -> np.ndarray:
    """One ECG lead as contiguous float64 ``(n_samples,)``; ``(1, n)`` is accepted (checked by
    :func:`biosig.validate.check_channel`)."""
    x = check_channel(signal, name=name, what="one lead",
                      hint="; pick a lead first (signal[0], or Signal.pick([0]))")
    return np.ascontiguousarray(x, dtype=np.float64)


def filtfilt_lead(sos, x: np.ndarray, *, overlap: int, lanes: int = 8) -> np.ndarray:
    """Zero-phase filtering of one long lead as ``lanes`` overlapping chunks in one call.

    :func:`biosig.dsp.sosfiltfilt` runs 8 channels at once in vector lanes (a lone channel
    takes a scalar path, about as fast as scipy). Cutting the lead into 8 chunks that overlap
    by ``overlap`` samples on each side and keeping each chunk's centre is 2-3x faster and,
    away from the record's ends, equals whole-lead filtering while the filter's transients
    decay within the overlap (within 1e-9 for the 5-15 Hz detection band, tested). The
    record's ends are odd-extended by ``overlap`` samples, as scipy does with a shorter one.

    Parameters
    ----------
    sos : np.ndarray [shape=(n_sections, 6)]
    x : np.ndarray [shape=(n_samples,), dtype=float64]
    overlap : int
        Samples of overlap; several time constants of the slowest pole.

    Returns
    -------
    np.ndarray [shape=(n_samples,), dtype=float64]
    """
    n = x.size
    size = -(-n // lanes)
    if size < 4 * overlap or n <= overlap + 1:
        return np.asarray(dsp.sosfiltfilt(sos, x), dtype=np.float64)
    width = size + 2 * overlap
    tail = lanes * size - n + overlap
    padded = np.concatenate([2 * x[0] - x[overlap:0:-1], x, 2 * x[-1] - x[-2:-2 - tail:-1]])
    chunks = np.lib.stride_tricks.sliding_window_view(padded, width)[::size][:lanes]
    y = dsp.sosfiltfilt(sos, np.ascontiguousarray(chunks))
    return np.ascontiguousarray(y[:, overlap:overlap + size].reshape(-1)[:n])


def as_peaks(peaks) -> np.ndarray:
    p = np.asarray(getattr(peaks, "samples", peaks))
    if p.ndim != 1 or (p.size and not np.issubdtype(p.dtype, np.number)):
        raise ValueError(f"peaks has shape {p.shape} and dtype {p.dtype}, expected a 1-D array "
                         f"of sample indices (or QrsPeaks)")
    p = p.astype(np.int64)
    if p.size > 1 and np.any(np.diff(p) <= 0):
        bad = int(np.flatnonzero(np.diff(p) <= 0)[0])
        raise ValueError(f"peaks are not strictly increasing (peaks[{bad + 1}] = {p[bad + 1]} "
                         f"after {p[bad]}), expected increasing sample indices")
    return p


def corr_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of ``a`` with the vector ``b`` (0 for a flat row)."""
    a = a - a.mean(axis=-1, keepdims=True)
    b = b - b.mean()
    den = np.sqrt((a ** 2).sum(axis=-1) * (b ** 2).sum())
    return np.divide(a @ b, den, out=np.zeros(a.shape[0]), where=den > 0)
