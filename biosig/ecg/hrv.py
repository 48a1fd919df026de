"""Heart rate variability: time and frequency domain, with ectopic-beat handling.

References
----------
Task Force of the European Society of Cardiology and the North American Society of Pacing and
Electrophysiology (1996). Heart rate variability: standards of measurement, physiological
interpretation and clinical use. Circulation 93(5), 1043-1065.
Malik, M. et al. (1993). Influence of the recognition artefact in automatic analysis of long-term
electrocardiograms on time-domain measurement of heart rate variability. Med. Biol. Eng. Comput.
31, 539-544 (the 20 % rule).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import scipy.interpolate
import scipy.signal

from biosig.ecg._common import as_peaks
from biosig.errors import ConfigError
from biosig.validate import check_fs

__all__ = ["rr_intervals", "RRIntervals", "hrv_time", "hrv_frequency", "hrv", "HrvTime",
           "HrvFrequency", "Hrv", "rr_statistics", "coefficient_of_sample_entropy"]


@dataclass(frozen=True)
class RRIntervals:
    """RR intervals with their ectopic/artefact flags.

    Attributes
    ----------
    rr_ms : np.ndarray [shape=(n,)]
        Intervals between successive beats in milliseconds.
    time_s : np.ndarray [shape=(n,)]
        Time of the beat that ends each interval, seconds.
    valid : np.ndarray [shape=(n,), dtype=bool]
        False for intervals rejected as ectopic or artefact (normal-to-normal intervals are the
        valid ones).
    """

    rr_ms: np.ndarray
    time_s: np.ndarray
    valid: np.ndarray

    @property
    def nn_ms(self) -> np.ndarray:
        return self.rr_ms[self.valid]

    @property
    def ectopic_fraction(self) -> float:
        return float(1.0 - self.valid.mean()) if self.valid.size else 0.0


def rr_intervals(peaks, *, fs: float, ectopic: str = "median", threshold: float = 0.2,
                 min_rr_ms: float = 300.0, max_rr_ms: float = 2000.0) -> RRIntervals:
    """RR intervals from R peaks, flagging ectopic beats and artefacts.

    Parameters
    ----------
    peaks : np.ndarray [shape=(n_beats,)] or QrsPeaks
        R-peak sample indices.
    fs : float > 0
        Sampling rate of the indices in Hz.
    ectopic : {"median", "malik", "none"}
        ``"median"``: reject intervals differing by more than ``threshold`` from the median of
        the 11 intervals centred on them (a robust Kubios-like local reference). ``"malik"``:
        reject intervals differing by more than ``threshold`` from the previous valid interval
        (Malik et al. 1993). ``"none"``: keep all within the physiological bounds.
    threshold : float
        Relative deviation that marks an interval as ectopic (0.2 = 20 %).
    min_rr_ms, max_rr_ms : float
        Intervals outside these bounds are artefacts whatever the rule.
    """
    p = as_peaks(peaks)
    fs = check_fs(fs)
    rr = np.diff(p) * (1000.0 / fs)
    t = p[1:] / fs
    valid = (rr >= min_rr_ms) & (rr <= max_rr_ms)
    if ectopic == "median":
        if rr.size:
            half = 5
            padded = np.pad(rr, half, mode="edge")
            win = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
            ref = np.median(win, axis=-1)
            valid &= np.abs(rr - ref) <= threshold * ref
    elif ectopic == "malik":
        prev = np.nan
        for i in range(rr.size):
            if not valid[i]:
                continue
            if np.isfinite(prev) and abs(rr[i] - prev) > threshold * prev:
                valid[i] = False
                continue
            prev = rr[i]
    elif ectopic != "none":
        raise ConfigError(f"ectopic: expected 'median', 'malik' or 'none', got {ectopic!r}")
    return RRIntervals(rr, t, valid)


@dataclass(frozen=True)
class HrvTime:
    """Time-domain HRV (Task Force 1996), from normal-to-normal intervals.

    ``rmssd_ms`` and ``pnn50`` use only successive differences between two valid intervals that
    are adjacent in the recording, so a removed ectopic beat never creates a spurious difference.
    """

    mean_nn_ms: float
    sdnn_ms: float
    rmssd_ms: float
    pnn50: float
    n_nn: int
    ectopic_fraction: float


def hrv_time(peaks, *, fs: float, ectopic: str = "median") -> HrvTime:
    """Mean NN, SDNN, RMSSD and pNN50 (percent).

    Parameters
    ----------
    peaks : np.ndarray [shape=(n_beats,)] or QrsPeaks
    fs : float > 0
    ectopic : {"median", "malik", "none"}
        See :func:`rr_intervals`.

    Returns
    -------
    HrvTime
        NaN values where fewer than 2 valid intervals (SDNN) or successive pairs (RMSSD) exist.
    """
    rri = rr_intervals(peaks, fs=fs, ectopic=ectopic)
    nn = rri.nn_ms
    pair = rri.valid[1:] & rri.valid[:-1]
    diffs = np.diff(rri.rr_ms)[pair]
    return HrvTime(
        mean_nn_ms=float(nn.mean()) if nn.size else float("nan"),
        sdnn_ms=float(nn.std(ddof=1)) if nn.size > 1 else float("nan"),
        rmssd_ms=float(np.sqrt(np.mean(diffs ** 2))) if diffs.size else float("nan"),
        pnn50=float(100.0 * np.mean(np.abs(diffs) > 50.0)) if diffs.size else float("nan"),
        n_nn=int(nn.size),
        ectopic_fraction=rri.ectopic_fraction,
    )


@dataclass(frozen=True)
class HrvFrequency:
    """Frequency-domain HRV: band powers in ms^2 and their ratio."""

    lf_ms2: float
    hf_ms2: float
    lf_hf: float
    lf_nu: float
    hf_nu: float
    method: str


def hrv_frequency(peaks, *, fs: float, method: str = "welch", ectopic: str = "median",
                  resample_fs: float = 4.0, lf_band_hz: tuple[float, float] = (0.04, 0.15),
                  hf_band_hz: tuple[float, float] = (0.15, 0.4)) -> HrvFrequency:
    """LF and HF power of the RR tachogram.

    Parameters
    ----------
    peaks : np.ndarray [shape=(n_beats,)] or QrsPeaks
    fs : float > 0
        Sampling rate of the peak indices.
    method : {"welch", "lomb"}
        ``"welch"``: NN intervals (rejected ones bridged by the cubic interpolation) resampled
        at ``resample_fs`` with a cubic spline, linearly detrended, Welch periodogram (Hann,
        256 s segments or the whole series if shorter, 50 % overlap). ``"lomb"``: Lomb-Scargle
        periodogram of the unevenly sampled NN intervals (no interpolation; rejected intervals
        are simply absent).
    ectopic : {"median", "malik", "none"}
        See :func:`rr_intervals`.
    resample_fs : float
        Resampling rate of the tachogram for ``"welch"`` (Hz).
    lf_band_hz, hf_band_hz : (float, float)
        Band edges in Hz (Task Force 1996 defaults).

    Returns
    -------
    HrvFrequency
        NaN when fewer than ~2 LF periods (50 s) of valid intervals exist.
    """
    rri = rr_intervals(peaks, fs=fs, ectopic=ectopic)
    t, nn = rri.time_s[rri.valid], rri.nn_ms
    nan = HrvFrequency(*(4 * [float("nan")]), float("nan"), method)
    if nn.size < 4 or t[-1] - t[0] < 2.0 / lf_band_hz[0]:
        return nan
    if method == "welch":
        grid = np.arange(t[0], t[-1], 1.0 / resample_fs)
        x = scipy.interpolate.CubicSpline(t, nn)(grid)
        x = scipy.signal.detrend(x, type="linear")
        nper = min(x.size, int(256 * resample_fs))
        f, pxx = scipy.signal.welch(x, fs=resample_fs, window="hann", nperseg=nper,
                                    noverlap=nper // 2, detrend=False, scaling="density")
    elif method == "lomb":
        f = np.arange(0.0033, hf_band_hz[1] + 0.1, 0.001)
        x = nn - nn.mean()
        pxx = scipy.signal.lombscargle(t, x, 2 * np.pi * f, normalize=False)
        # a sinusoid of amplitude A peaks at A^2 N / 4 over a lobe ~1/T Hz wide: scale to a
        # one-sided density in ms^2/Hz whose band integral is the variance A^2 / 2
        pxx = pxx * 2.0 * (t[-1] - t[0]) / nn.size
    else:
        raise ConfigError(f"method: expected 'welch' or 'lomb', got {method!r}")

    def band(lo, hi):
        m = (f >= lo) & (f < hi)
        trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz
        return float(trapezoid(pxx[m], f[m])) if m.sum() > 1 else float("nan")

    lf, hf = band(*lf_band_hz), band(*hf_band_hz)
    tot = lf + hf
    return HrvFrequency(lf, hf, lf / hf if hf > 0 else float("nan"),
                        100.0 * lf / tot if tot > 0 else float("nan"),
                        100.0 * hf / tot if tot > 0 else float("nan"), method)


@dataclass(frozen=True)
class Hrv:
    """Time and frequency-domain HRV of one recording."""

    time: HrvTime
    frequency: HrvFrequency

    def to_dict(self) -> dict:
        return {**asdict(self.time), **{k: v for k, v in asdict(self.frequency).items()}}


def hrv(peaks, *, fs: float, ectopic: str = "median", method: str = "welch") -> Hrv:
    """Time and frequency-domain HRV (:func:`hrv_time`, :func:`hrv_frequency`)."""
    return Hrv(hrv_time(peaks, fs=fs, ectopic=ectopic),
               hrv_frequency(peaks, fs=fs, method=method, ectopic=ectopic))


def rr_statistics(peaks, *, fs: float) -> dict[str, float]:
    """RR-interval statistics of a short recording for rhythm classification (AF detection).

    Unlike :func:`hrv_time` nothing is rejected as ectopic: irregularity is the signal here.
    NaN where too few beats.

    Returns
    -------
    dict
        ``n_beats``, ``heart_rate_bpm`` (from the median RR), ``rr_mean_s``, ``rr_std_s``,
        ``rr_cv``, ``rr_median_s``, ``rr_iqr_s``, ``rr_min_s``, ``rr_max_s``, ``rmssd_s``,
        ``pnn50`` (fraction of successive differences over 50 ms), ``rr_sd1_sd2`` (Poincare
        SD1/SD2), ``rr_diff_mad_norm`` (median absolute successive difference over the median
        RR), ``cosen`` (the coefficient of sample entropy of Lake and Moorman (2011), an AF
        detector for short records: :func:`coefficient_of_sample_entropy`).
    """
    p = as_peaks(peaks)
    nan = float("nan")
    rr = np.diff(p) / check_fs(fs)
    d = np.diff(rr)
    out = {"n_beats": float(p.size)}
    if rr.size == 0:
        return {**out, **{k: nan for k in ("heart_rate_bpm", "rr_mean_s", "rr_std_s", "rr_cv",
                                           "rr_median_s", "rr_iqr_s", "rr_min_s", "rr_max_s",
                                           "rmssd_s", "pnn50", "rr_sd1_sd2",
                                           "rr_diff_mad_norm", "cosen")}}
    med = float(np.median(rr))
    q75, q25 = np.percentile(rr, [75, 25])
    sd1 = float(np.std(d) / np.sqrt(2)) if d.size > 1 else nan
    sd2_sq = 2 * np.var(rr) - np.var(d) / 2 if d.size > 1 else nan
    sd2 = float(np.sqrt(sd2_sq)) if d.size > 1 and sd2_sq > 0 else nan
    out.update({
        "heart_rate_bpm": 60.0 / med if med > 0 else nan,
        "rr_mean_s": float(rr.mean()), "rr_std_s": float(rr.std()) if rr.size > 1 else nan,
        "rr_cv": float(rr.std() / rr.mean()) if rr.size > 1 and rr.mean() > 0 else nan,
        "rr_median_s": med, "rr_iqr_s": float(q75 - q25), "rr_min_s": float(rr.min()),
        "rr_max_s": float(rr.max()),
        "rmssd_s": float(np.sqrt(np.mean(d ** 2))) if d.size else nan,
        "pnn50": float(np.mean(np.abs(d) > 0.05)) if d.size else nan,
        "rr_sd1_sd2": sd1 / sd2 if sd2 == sd2 and sd2 > 0 else nan,
        "rr_diff_mad_norm": float(np.median(np.abs(d)) / med) if d.size and med > 0 else nan,
        "cosen": coefficient_of_sample_entropy(rr),
    })
    return out


def coefficient_of_sample_entropy(rr_s, *, r_s: float = 0.03) -> float:
    """Coefficient of sample entropy (COSEn) of RR intervals, Lake and Moorman (2011).

    ``SampEn(m=1, r) + ln(2 r) - ln(mean RR)`` with ``r`` in seconds: the sample entropy of
    the intervals (``-ln`` of the conditional probability that two runs within ``r`` of each
    other for one interval stay so for the next), made comparable across tolerances and heart
    rates. AF is irregular and unpredictable, so its COSEn is high (above about -1.4 in the
    paper), sinus rhythm's low.

    Parameters
    ----------
    rr_s : array_like [shape=(n,)]
        RR intervals in seconds.
    r_s : float > 0
        Matching tolerance in seconds (30 ms as in the paper).

    Returns
    -------
    float
        NaN with fewer than 4 intervals or without any match of length 2.
    """
    rr = np.asarray(rr_s, dtype=np.float64)
    if rr.size < 4 or r_s <= 0 or not np.all(np.isfinite(rr)) or rr.mean() <= 0:
        return float("nan")
    a = rr[:-1]                               # templates of length 1 (all but the last)
    close1 = np.abs(a[:, None] - a[None, :]) <= r_s
    close2 = close1 & (np.abs(rr[1:, None] - rr[None, 1:]) <= r_s)
    iu = np.triu_indices(a.size, k=1)         # pairs i < j, no self-matches
    b, m = int(close1[iu].sum()), int(close2[iu].sum())
    if b == 0 or m == 0:
        return float("nan")
    return float(-np.log(m / b) + np.log(2 * r_s) - np.log(rr.mean()))
