"""Rhythm patterns of a short ECG beyond irregularity: premature beats, pauses, bigeminy, and
the shape of the median beat, for telling "other rhythm" apart from sinus rhythm and AF.

:func:`biosig.ecg.hrv.rr_statistics` measures how irregular the RR intervals are, which is what
separates AF from sinus rhythm. The CinC 2017 "other rhythm" class is mostly *patterned*
irregularity (premature atrial or ventricular beats with their compensatory pauses, bigeminy
and trigeminy, runs of tachycardia, bundle-branch blocks): a few intervals far off the local
rate in an otherwise regular rhythm, RR intervals that alternate, beats whose shape differs
from the median beat. :func:`rr_patterns` measures the timing side, :func:`beat_shape` the
morphology side (which beats are unlike the median beat, whether they are the premature ones,
and the median beat itself resampled to a few points: the "centre wave" of Hong et al. 2017).

References
----------
Clifford, G. D. et al. (2017). AF classification from a short single lead ECG recording: the
PhysioNet/Computing in Cardiology Challenge 2017. CinC 44.
Sarkar, S., Ritscher, D. and Mehra, R. (2008). A detector for a chronic implantable atrial
tachyarrhythmia monitor. IEEE TBME 55(3), 1219-1224 (the Lorenz plot of successive RR
differences).
Hong, S. et al. (2017). ENCASE: an ENsemble ClASsifiEr for ECG classification using expert
features and deep neural networks. CinC 44.
"""

from __future__ import annotations

import numpy as np

from biosig.ecg._common import as_peaks, corr_rows
from biosig.errors import InputError
from biosig.validate import check_fs

__all__ = ["rr_patterns", "RR_PATTERN_KEYS", "beat_shape", "beat_shape_keys"]

#: the names :func:`rr_patterns` returns
RR_PATTERN_KEYS = ("rr_short_frac", "rr_long_frac", "rr_premature_pause_frac", "rr_ac1",
                   "rr_ac2", "rr_ratio_p05", "rr_ratio_p25", "rr_ratio_p75", "rr_ratio_p95",
                   "rr_turning_point_ratio", "rr_lorenz_cells", "rr_regular_run_frac",
                   "rr_p05_s", "rr_p95_s")

_SHORT, _LONG = 0.85, 1.15       # an interval this far under / over the local median RR
_LOCAL = 9                       # intervals in the running median (centred)
_LORENZ_BIN_S = 0.04             # Lorenz-plot cell of successive RR differences (Sarkar 2008)
_REGULAR_S = 0.05                # successive intervals this close count as regular
_LOW_CORR = (0.8, 0.5)           # a beat unlike the median beat, and very unlike


def _running_median(rr: np.ndarray, width: int) -> np.ndarray:
    half = width // 2
    padded = np.pad(rr, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.median(windows, axis=-1)


def _short_long(rr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intervals under 0.85 / over 1.15 times the running median of the 9 around them."""
    local = _running_median(rr, min(_LOCAL, rr.size if rr.size % 2 else rr.size - 1))
    return rr < _SHORT * local, rr > _LONG * local


def _autocorr(x: np.ndarray, lag: int) -> float:
    x = x - x.mean()
    den = float((x ** 2).sum())
    if x.size <= lag or den <= 0:
        return float("nan")
    return float((x[:-lag] * x[lag:]).sum() / den)


def rr_patterns(peaks, *, fs: float) -> dict[str, float]:
    """Patterns of the RR intervals of a short recording (premature beats, pauses, bigeminy).

    Parameters
    ----------
    peaks : array_like of int [shape=(n_beats,)]
        R-peak sample indices.
    fs : float > 0
        Sampling rate of ``peaks`` in Hz.

    Returns
    -------
    dict
        - ``rr_short_frac``, ``rr_long_frac``: intervals under 0.85 / over 1.15 times the
          running median of 9 intervals around them (premature beats, pauses);
        - ``rr_premature_pause_frac``: short intervals followed by a long one (a premature
          beat and its compensatory pause), over all intervals but the last;
        - ``rr_ac1``, ``rr_ac2``: autocorrelation of the intervals at lags 1 and 2 (bigeminy
          gives about -1 and +1, sinus rhythm and AF small values);
        - ``rr_ratio_p05`` ... ``rr_ratio_p95``: percentiles of each interval over the one
          before it;
        - ``rr_turning_point_ratio``: local maxima and minima among the intervals over
          ``n - 2`` (about 2/3 for independent intervals, as in AF);
        - ``rr_lorenz_cells``: occupied 40 ms cells of the plot of successive RR differences
          (each against the next) over the number of points (Sarkar et al. 2008: AF scatters);
        - ``rr_regular_run_frac``: the longest run of successive intervals within 50 ms of each
          other, over the number of intervals (a sinus stretch in a paroxysm);
        - ``rr_p05_s``, ``rr_p95_s``: 5th and 95th percentile of the intervals (robust
          fastest and slowest rate).

        Every value NaN with fewer than 4 intervals (5 beats).
    """
    p = np.unique(as_peaks(peaks))
    rr = np.diff(p) / check_fs(fs)
    out = {k: float("nan") for k in RR_PATTERN_KEYS}
    if rr.size < 4:
        return out
    short, long_ = _short_long(rr)
    d = np.diff(rr)
    ratio = rr[1:] / rr[:-1]
    turning = ((d[:-1] > 0) & (d[1:] < 0)) | ((d[:-1] < 0) & (d[1:] > 0))
    cells = np.floor(np.stack([d[:-1], d[1:]]) / _LORENZ_BIN_S).astype(np.int64)
    n_cells = np.unique(cells, axis=1).shape[1]
    regular = np.abs(d) <= _REGULAR_S
    longest = run = 0
    for r in regular:
        run = run + 1 if r else 0
        longest = max(longest, run)
    out.update({
        "rr_short_frac": float(short.mean()), "rr_long_frac": float(long_.mean()),
        "rr_premature_pause_frac": float((short[:-1] & long_[1:]).mean()),
        "rr_ac1": _autocorr(rr, 1), "rr_ac2": _autocorr(rr, 2),
        "rr_turning_point_ratio": float(turning.mean()),
        "rr_lorenz_cells": float(n_cells / cells.shape[1]),
        "rr_regular_run_frac": float((longest + 1) / rr.size),
        "rr_p05_s": float(np.percentile(rr, 5)), "rr_p95_s": float(np.percentile(rr, 95)),
    })
    for q in (5, 25, 75, 95):
        out[f"rr_ratio_p{q:02d}"] = float(np.percentile(ratio, q))
    return out


def beat_shape_keys(n_points: int) -> tuple[str, ...]:
    """The names :func:`beat_shape` returns for ``n_points`` template points."""
    width = max(2, len(str(n_points - 1)))
    return ("beat_low_corr_frac", "beat_very_low_corr_frac", "beat_premature_low_corr_frac",
            "beat_premature_corr_mean", *(f"beat_template_{i:0{width}d}"
                                          for i in range(n_points)))


def beat_shape(beats, beat_samples, peaks, *, n_points: int = 20) -> dict[str, float]:
    """Which beats look unlike the median beat, whether they are the premature ones, and the
    median beat itself.

    Parameters
    ----------
    beats : np.ndarray [shape=(n_beats, n_samples)]
        One window per beat of one lead, each aligned on its R peak (the ECG preset's
        ``beats``, one channel).
    beat_samples : array_like of int [shape=(n_beats,)]
        The R peak of each window (the preset's ``beat_samples``).
    peaks : array_like of int
        Every R peak of the recording (``r_peaks``; windows too close to the ends are missing
        from ``beats`` but their intervals still count).
    n_points : int > 0
        Points of the resampled median beat.

    Returns
    -------
    dict
        - ``beat_low_corr_frac``, ``beat_very_low_corr_frac``: beats whose correlation with the
          median beat is under 0.8 / 0.5 (ectopic beats, noise);
        - ``beat_premature_low_corr_frac``: of the beats that end a short interval (under 0.85
          times the running median RR, as :func:`rr_patterns`), those under 0.8 (ventricular
          rather than atrial premature beats);
        - ``beat_premature_corr_mean``: their mean correlation;
        - ``beat_template_00`` ...: the median beat (each beat's median removed), divided by its
          largest absolute value and taken at ``n_points`` evenly spaced points across the
          window (the R peak's sign and the P and T waves' size and place).

        NaN with fewer than 3 beats; the premature values NaN without a premature beat.

    Raises
    ------
    InputError
        ``beats`` is not 2-D, holds non-finite values, or does not match ``beat_samples``.
    """
    if n_points < 1:
        raise InputError(None, f"n_points is {n_points}, expected at least 1", what="n_points")
    b = np.asarray(beats, dtype=np.float64)
    samples = np.asarray(beat_samples)
    keys = beat_shape_keys(n_points)
    if b.ndim != 2 or samples.shape != (b.shape[0],):
        raise InputError(None, f"expected beats (n_beats, n_samples) and beat_samples "
                               f"(n_beats,), got shapes {b.shape} and {samples.shape}",
                         what="beats")
    out = {k: float("nan") for k in keys}
    if b.shape[0] < 3 or b.shape[1] < 2:
        return out
    if not np.isfinite(b).all():
        raise InputError(None, "beats hold NaN or infinite values", what="beats")
    b = b - np.median(b, axis=1, keepdims=True)
    tmpl = np.median(b, axis=0)
    scale = float(np.abs(tmpl).max())
    if scale <= 0:
        return out
    corr = corr_rows(b, tmpl)
    out["beat_low_corr_frac"] = float((corr < _LOW_CORR[0]).mean())
    out["beat_very_low_corr_frac"] = float((corr < _LOW_CORR[1]).mean())
    all_p = np.unique(as_peaks(peaks))
    if all_p.size >= 5:
        short, _ = _short_long(np.diff(all_p).astype(np.float64))
        is_prem = np.isin(samples, all_p[1:][short])
        if is_prem.any():
            out["beat_premature_low_corr_frac"] = float((corr[is_prem] < _LOW_CORR[0]).mean())
            out["beat_premature_corr_mean"] = float(corr[is_prem].mean())
    grid = np.linspace(0, b.shape[1] - 1, n_points)
    values = np.interp(grid, np.arange(b.shape[1]), tmpl / scale)
    out.update({k: float(v) for k, v in zip(keys[4:], values)})
    return out
