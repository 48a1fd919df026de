"""Time-domain and wavelet statistics of a signal: Hjorth parameters, line length, zero
crossings, amplitude moments, permutation entropy and discrete-wavelet sub-band statistics.

These are the classical EEG descriptors (Hjorth 1970; Esteller et al. 2001 for line length;
Bandt and Pompe 2002 for permutation entropy; Subasi 2007 for DWT sub-band statistics on the
Bonn segments). Every function takes an array ``(..., n_samples)`` (time last, any leading
channel axes) and returns one value per leading index, in float64.

>>> import numpy as np
>>> from biosig.features.temporal import time_features
>>> x = np.random.default_rng(0).standard_normal((2, 4097))
>>> values, names = time_features(x, fs=173.61)
>>> values.shape == (2, len(names))
True
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pywt

__all__ = ["hjorth", "line_length", "zero_crossing_rate", "permutation_entropy",
           "wavelet_band_statistics", "time_features"]

_TINY = 1e-12


def _as_2d(x) -> tuple[np.ndarray, tuple[int, ...]]:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 0 or x.shape[-1] < 3:
        raise ValueError(f"expected an array (..., n_samples) with at least 3 samples, got "
                         f"shape {x.shape}")
    lead = x.shape[:-1]
    return x.reshape(-1, x.shape[-1]), lead


def hjorth(x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hjorth activity (variance), mobility and complexity of ``x [shape=(..., n_samples)]``.

    Mobility is ``sqrt(var(x') / var(x))`` and complexity ``mobility(x') / mobility(x)``, with
    first differences for the derivatives (per sample, so mobility is in cycles per sample up
    to a factor 2 pi). A constant signal has mobility and complexity 0."""
    x2, lead = _as_2d(x)
    d1 = np.diff(x2, axis=-1)
    d2 = np.diff(d1, axis=-1)
    v0, v1, v2 = x2.var(axis=-1), d1.var(axis=-1), d2.var(axis=-1)
    mob = np.sqrt(v1 / np.maximum(v0, _TINY)) * (v0 > _TINY)
    mob1 = np.sqrt(v2 / np.maximum(v1, _TINY)) * (v1 > _TINY)
    comp = np.where(mob > 0, mob1 / np.maximum(mob, _TINY), 0.0)
    return v0.reshape(lead), mob.reshape(lead), comp.reshape(lead)


def line_length(x, *, fs: float) -> np.ndarray:
    """Mean absolute first difference per second of ``x [shape=(..., n_samples)]`` at ``fs``
    Hz (Esteller's line length, normalised by duration so that it does not grow with it)."""
    x2, lead = _as_2d(x)
    return (np.abs(np.diff(x2, axis=-1)).mean(axis=-1) * float(fs)).reshape(lead)


def zero_crossing_rate(x, *, fs: float) -> np.ndarray:
    """Sign changes of ``x`` minus its mean, per second."""
    x2, lead = _as_2d(x)
    s = np.signbit(x2 - x2.mean(axis=-1, keepdims=True))
    return (np.count_nonzero(s[:, 1:] != s[:, :-1], axis=-1)
            / (x2.shape[-1] / float(fs))).reshape(lead)


def permutation_entropy(x, *, order: int = 4, delay: int = 1) -> np.ndarray:
    """Normalised permutation entropy (Bandt and Pompe 2002) of ``x [shape=(..., n_samples)]``:
    the Shannon entropy of the ordinal patterns of ``order`` samples ``delay`` apart, divided
    by ``log(order!)`` (0: one pattern only, 1: every pattern equally often). Ties keep
    their order of appearance."""
    if not 2 <= int(order) <= 8:
        raise ValueError(f"order is {order}, expected 2 to 8")
    if int(delay) < 1:
        raise ValueError(f"delay is {delay}, expected at least 1")
    order, delay = int(order), int(delay)
    x2, lead = _as_2d(x)
    n = x2.shape[-1] - (order - 1) * delay
    if n < 1:
        raise ValueError(f"{x2.shape[-1]} samples are too few for order {order} and delay "
                         f"{delay}")
    idx = np.arange(n)[:, None] + delay * np.arange(order)[None, :]
    ranks = np.argsort(x2[:, idx], axis=-1, kind="stable")          # (row, n, order)
    codes = (ranks * (order ** np.arange(order))).sum(axis=-1)        # one code per pattern
    out = np.empty(x2.shape[0])
    for i, c in enumerate(codes):
        p = np.unique(c, return_counts=True)[1] / n
        out[i] = 0.0 - (p * np.log(p)).sum() / math.log(math.factorial(order))
    return out.reshape(lead)


def wavelet_band_statistics(x, *, wavelet: str = "db4", levels: int = 5
                            ) -> tuple[np.ndarray, list[str]]:
    """Statistics of each sub-band of a ``levels``-level discrete wavelet decomposition (the
    bands are fractions of the sampling rate, which the statistics do not need).

    For the approximation ``a<levels>`` and each detail ``d1`` ... ``d<levels>`` (``d1`` the
    highest band, ``fs/4`` to ``fs/2``): log10 of the mean absolute coefficient, log10 of
    their standard deviation, and the band's share of the energy of all coefficients.

    Returns
    -------
    values : array [shape=(..., 3 * (levels + 1))]
    names : list of str
        ``"dwt_d1_logmeanabs"``, ``"dwt_d1_logstd"``, ``"dwt_d1_energy"``, ... ``"dwt_a5_..."``.
    """
    x2, lead = _as_2d(x)
    levels = int(levels)
    if levels < 1:
        raise ValueError(f"levels is {levels}, expected at least 1")
    with warnings.catch_warnings():      # a short signal: boundary effects, as pywt says
        warnings.simplefilter("ignore", UserWarning)
        coeffs = pywt.wavedec(x2, wavelet, level=levels, axis=-1)   # [a_L, d_L, ..., d_1]
    bands = {f"a{levels}": coeffs[0]}
    bands.update({f"d{levels - i}": c for i, c in enumerate(coeffs[1:])})
    order = [f"d{k}" for k in range(1, levels + 1)] + [f"a{levels}"]
    energy = {k: (bands[k] ** 2).sum(axis=-1) for k in order}
    total = np.maximum(sum(energy.values()), _TINY)
    cols, names = [], []
    for k in order:
        c = bands[k]
        cols += [np.log10(np.abs(c).mean(axis=-1) + _TINY), np.log10(c.std(axis=-1) + _TINY),
                 energy[k] / total]
        names += [f"dwt_{k}_logmeanabs", f"dwt_{k}_logstd", f"dwt_{k}_energy"]
    return np.stack(cols, axis=-1).reshape(*lead, len(names)), names


def time_features(x, *, fs: float, wavelet: str = "db4", levels: int = 5
                  ) -> tuple[np.ndarray, list[str]]:
    """Every statistic of this module for ``x [shape=(..., n_samples)]`` at ``fs`` Hz.

    log10 Hjorth activity, mobility, complexity, log10 line length, zero-crossing rate,
    skewness, excess kurtosis, log10 of the 95th percentile of ``|x - mean|``, permutation
    entropy (order 4), then :func:`wavelet_band_statistics`.

    Returns
    -------
    values : array [shape=(..., n_features)]
    names : list of str
    """
    x2, lead = _as_2d(x)
    act, mob, comp = hjorth(x2)
    centred = x2 - x2.mean(axis=-1, keepdims=True)
    sd = centred.std(axis=-1)
    z = centred / np.maximum(sd, _TINY)[:, None]          # a constant row: z = 0
    flat = sd <= _TINY
    cols = [np.log10(act + _TINY), mob, comp, np.log10(line_length(x2, fs=fs) + _TINY),
            zero_crossing_rate(x2, fs=fs), (z ** 3).mean(axis=-1),
            np.where(flat, 0.0, (z ** 4).mean(axis=-1) - 3.0),
            np.log10(np.percentile(np.abs(centred), 95, axis=-1) + _TINY),
            permutation_entropy(x2, order=4)]
    names = ["hjorth_log_activity", "hjorth_mobility", "hjorth_complexity", "log_line_length",
             "zero_crossing_rate", "skewness", "kurtosis", "log_abs_p95",
             "permutation_entropy"]
    wv, wnames = wavelet_band_statistics(x2, wavelet=wavelet, levels=levels)
    values = np.concatenate([np.stack(cols, axis=-1), wv], axis=-1)
    return values.reshape(*lead, values.shape[-1]), names + wnames
