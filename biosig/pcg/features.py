"""Envelope features of a phonocardiogram at 50 Hz and the heart-cycle estimate from their
autocorrelation: the inputs of the Springer (2016) segmenter (:func:`pcg_envelopes`,
:func:`pcg_heart_cycle`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pywt
import scipy.signal

from biosig import dsp
from biosig.errors import InputError
from biosig.validate import check_channel, check_fs

__all__ = ["PcgEnvelopes", "pcg_envelopes", "HeartCycle", "pcg_heart_cycle",
           "heart_cycle_candidates", "MIN_FS",
           "FEATURE_FS", "ENVELOPE_NAMES"]

#: Lowest sampling rate accepted (the analysis band reaches 400 Hz).
MIN_FS = 1000.0
#: Rate of the envelope features and of the decoded states (Springer et al. 2016).
FEATURE_FS = 50.0
#: Rate the signal is filtered at before the envelopes are taken.
WORK_FS = 1000.0
ENVELOPE_NAMES = ("homomorphic", "hilbert", "wavelet", "psd")


@dataclass(frozen=True)
class PcgEnvelopes:
    """The four normalised envelopes of one PCG.

    Attributes
    ----------
    values : np.ndarray [shape=(4, n_frames), dtype=float64]
        Rows in :data:`ENVELOPE_NAMES` order, each z-scored over the recording's usable frames.
    fs : float
        Frame rate in Hz (:data:`FEATURE_FS`); frame ``i`` covers ``[i / fs, (i + 1) / fs)`` s.
    usable : np.ndarray [shape=(n_frames,), dtype=bool]
        False on frames of silence (drop-out) or clipping, which the segmenter leaves
        unlabelled.
    """

    values: np.ndarray
    fs: float
    usable: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.values.shape[1])


@dataclass(frozen=True)
class HeartCycle:
    """Heart-cycle estimate of one recording.

    Attributes
    ----------
    heart_rate_bpm : float
    systolic_interval_s : float
        From the centre of S1 to the centre of S2 (about S1 onset to S2 onset).
    """

    heart_rate_bpm: float
    systolic_interval_s: float

    @property
    def period_s(self) -> float:
        return 60.0 / self.heart_rate_bpm


def _remove_spikes(x: np.ndarray, fs: float) -> np.ndarray:
    """Schmidt et al. (2010) spike removal: while a 500 ms window has a maximum absolute
    amplitude over three times the median window's, zero the spike it holds between the zero
    crossings around its peak."""
    w = int(round(0.5 * fs))
    n_win = x.size // w
    if n_win < 3:
        return x
    y = x.copy()
    frames = y[: n_win * w].reshape(n_win, w)  # a view: edits go to y
    for _ in range(n_win * 4):
        maa = np.abs(frames).max(axis=1)
        med = np.median(maa)
        k = int(np.argmax(maa))
        if not maa[k] > 3.0 * med or med <= 0:
            break
        seg = frames[k]
        peak = int(np.argmax(np.abs(seg)))
        sign = np.signbit(seg)
        crossings = np.flatnonzero(sign[1:] != sign[:-1]) + 1
        before = crossings[crossings <= peak]
        after = crossings[crossings > peak]
        lo = int(before[-1]) if before.size else 0
        hi = int(after[0]) if after.size else w
        seg[lo:hi] = 0.0
    return y


def _frame_mean(v: np.ndarray, hop: int, n_frames: int) -> np.ndarray:
    """Mean of ``v`` over consecutive blocks of ``hop`` samples (the last one padded)."""
    need = n_frames * hop
    if v.size < need:
        v = np.concatenate([v, np.full(need - v.size, v[-1] if v.size else 0.0)])
    return v[:need].reshape(n_frames, hop).mean(axis=1)


def _usable_frames(raw: np.ndarray, fs: float, n_frames: int) -> np.ndarray:
    """Frames that are neither silent (drop-out: RMS under 1 % of the median frame's) nor
    clipped (three or more consecutive samples at the recording's largest magnitude), widened
    by 100 ms."""
    hop = fs / FEATURE_FS
    idx = np.minimum((np.arange(raw.size) / hop).astype(np.int64), n_frames - 1)
    sq = np.bincount(idx, weights=raw.astype(np.float64) ** 2, minlength=n_frames)
    cnt = np.maximum(np.bincount(idx, minlength=n_frames), 1)
    rms = np.sqrt(sq / cnt)
    med = np.median(rms)
    bad = rms <= 0.01 * med if med > 0 else np.ones(n_frames, dtype=bool)
    peak = np.abs(raw).max() if raw.size else 0.0
    if peak > 0:
        at = np.abs(raw) >= peak * (1 - 1e-6)
        run = at[:-2] & at[1:-1] & at[2:]
        if run.any():
            bad_frames = np.unique(idx[np.flatnonzero(run)])
            bad[bad_frames] = True
    widen = int(round(0.1 * FEATURE_FS))
    if bad.any() and widen:
        kernel = np.ones(2 * widen + 1)
        bad = np.convolve(bad.astype(np.float64), kernel, mode="same") > 0
    return ~bad


def _zscore(v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    ref = v[mask] if mask.any() else v
    sd = ref.std()
    return (v - ref.mean()) / (sd if sd > 0 else 1.0)


def pcg_envelopes(signal, *, fs: float) -> PcgEnvelopes:
    """The four envelope features of Springer et al. (2016) at 50 Hz.

    The PCG is resampled to 1 kHz, band-passed to 25-400 Hz (zero-phase Butterworth, order 2
    each side) and cleared of spikes (Schmidt et al. 2010); then, each downsampled to 50 Hz and
    z-scored over the usable frames:

    1. the homomorphic envelope (``exp(lowpass_8Hz(log |analytic signal|))``);
    2. the Hilbert envelope ``|analytic signal|``;
    3. the wavelet envelope: ``|detail 3|`` of a Daubechies-7 decomposition (62.5-125 Hz,
       PyWavelets), reconstructed at 1 kHz;
    4. the power spectral density envelope: mean STFT power over 40-60 Hz (50 ms windows).

    Parameters
    ----------
    signal : np.ndarray [shape=(n_samples,)]
        One PCG channel (any unit).
    fs : float >= 1000
        Sampling rate in Hz.

    Returns
    -------
    PcgEnvelopes
        ``values`` of shape ``(4, ceil(n_samples * 50 / fs))``.

    Raises
    ------
    InputError
        Not one channel, NaN/inf or complex samples, a recording under one second.
    ConfigError
        ``fs`` under 1000 Hz.

    References
    ----------
    Springer, D. B., Tarassenko, L. & Clifford, G. D. (2016). Logistic regression-HSMM-based
    heart sound segmentation. IEEE Trans. Biomed. Eng. 63(4), 822-832.
    Schmidt, S. E. et al. (2010). Segmentation of heart sound recordings by a
    duration-dependent hidden Markov model. Physiol. Meas. 31(4), 513-529.
    """
    fs = check_fs(fs, min_hz=MIN_FS, purpose=" for heart-sound segmentation")
    x = np.ascontiguousarray(check_channel(signal), dtype=np.float64)
    n = x.size
    if n < fs:
        raise InputError(None, f"{n / fs:.2f} s long, expected at least 1 s for heart-sound "
                               f"segmentation", what="signal")
    n_frames = int(np.ceil(n * FEATURE_FS / fs))
    usable = _usable_frames(x, fs, n_frames)
    y = np.asarray(dsp.resample(x, fs=fs, target_fs=WORK_FS), dtype=np.float64)
    y = np.asarray(dsp.bandpass(y, fs=WORK_FS, band_hz=(25.0, 400.0), order=2))
    y = _remove_spikes(y, WORK_FS)
    hop = int(WORK_FS / FEATURE_FS)
    homo = np.asarray(dsp.envelope_homomorphic(y, fs=WORK_FS, cutoff_hz=8.0))
    hilb = np.asarray(dsp.envelope_hilbert(y))
    coeffs = pywt.wavedec(y, "db7", level=3)
    keep = [np.zeros_like(c) for c in coeffs]
    keep[1] = coeffs[1]                          # [cA3, cD3, cD2, cD1]: detail 3
    wav = np.abs(pywt.waverec(keep, "db7")[: y.size])
    _, _, z = scipy.signal.stft(y, fs=WORK_FS, nperseg=50, noverlap=50 - hop, nfft=100,
                                boundary="even", padded=True)
    freqs = np.fft.rfftfreq(100, 1 / WORK_FS)
    band = (freqs >= 40) & (freqs <= 60)
    psd = (np.abs(z[band]) ** 2).mean(axis=0)
    # STFT column k is centred on sample k * hop: drop k = 0 so that column i sits at the end
    # of frame i (10 ms late, as in training)
    psd = psd[1:] if psd.size > n_frames else psd
    psd = np.concatenate([psd, np.full(max(0, n_frames - psd.size), psd[-1])])[:n_frames]
    rows = [_frame_mean(v, hop, n_frames) for v in (homo, hilb, wav)] + [psd]
    values = np.stack([_zscore(r, usable) for r in rows])
    return PcgEnvelopes(values, FEATURE_FS, usable)


def _autocorr(v: np.ndarray) -> np.ndarray:
    v = v - v.mean()
    n = v.size
    nfft = 1 << int(np.ceil(np.log2(2 * n)))
    f = np.fft.rfft(v, nfft)
    ac = np.fft.irfft(f * np.conj(f), nfft)[:n]
    return ac / ac[0] if ac[0] > 0 else ac


def _local_maxima(v: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest interior local maxima of ``v`` (the global maximum when
    there is none), highest first."""
    if v.size < 3:
        return np.array([int(np.argmax(v))]) if v.size else np.zeros(0, dtype=np.int64)
    m = np.flatnonzero((v[1:-1] >= v[:-2]) & (v[1:-1] > v[2:])) + 1
    if m.size == 0:
        m = np.array([int(np.argmax(v))])
    return m[np.argsort(v[m])[::-1][:k]]


def heart_cycle_candidates(s1_score, s2_score, *, fs: float, n_periods: int = 3,
                           n_systoles: int = 2,
                           heart_rate_range_bpm: tuple[float, float] = (35.0, 220.0)
                           ) -> list[HeartCycle]:
    """Plausible heart cycles of a recording: the ``n_periods`` highest autocorrelation peaks
    of ``s1_score`` in the heart-rate range, each with the ``n_systoles`` highest peaks of the
    S1-to-S2 cross-correlation from 0.1 s to 0.65 periods (see :func:`pcg_heart_cycle`, whose
    answer comes first).

    Returns
    -------
    list of HeartCycle
    """
    fs = check_fs(fs)
    a = np.asarray(s1_score, dtype=np.float64)
    b = np.asarray(s2_score, dtype=np.float64)
    lo = max(1, int(round(60.0 / heart_rate_range_bpm[1] * fs)))
    hi = min(a.size - 1, int(round(60.0 / heart_rate_range_bpm[0] * fs)))
    first = pcg_heart_cycle(a, b, fs=fs, heart_rate_range_bpm=heart_rate_range_bpm)
    out = [first]
    if hi <= lo + 2:
        return out
    ac = _autocorr(a)
    a0, b0 = a - a.mean(), b - b.mean()
    for p in _local_maxima(ac[lo:hi + 1], n_periods) + lo:
        s_lo = max(1, int(round(0.1 * fs)))
        s_hi = max(s_lo + 1, int(round(0.65 * p)))
        xc = np.array([np.dot(a0[: a0.size - k], b0[k:]) for k in range(s_lo, s_hi + 1)])
        for s in _local_maxima(xc, n_systoles) + s_lo:
            c = HeartCycle(float(60.0 * fs / p), float(s / fs))
            if all(abs(c.heart_rate_bpm - o.heart_rate_bpm) > 1e-6
                   or abs(c.systolic_interval_s - o.systolic_interval_s) > 1e-6 for o in out):
                out.append(c)
    return out


def pcg_heart_cycle(s1_score, s2_score=None, *, fs: float,
                    heart_rate_range_bpm: tuple[float, float] = (35.0, 220.0)) -> HeartCycle:
    """Heart rate and systolic interval from the periodicity of a heart-sound score.

    The heart period is the lag of the highest autocorrelation peak of ``s1_score`` within
    ``heart_rate_range_bpm`` (Schmidt et al. 2010 use the homomorphic envelope); the systolic
    interval is the lag, within 0.1 s to 0.65 heart periods, of the highest cross-correlation of
    ``s2_score`` following ``s1_score`` (with the envelope alone, ``s2_score=None``, the highest
    autocorrelation peak from 0.1 s to half a period, as Springer et al. 2016 do).

    Parameters
    ----------
    s1_score : np.ndarray [shape=(n_frames,)]
        A sequence that peaks at S1 (the S1 posterior of the emission model, or an envelope).
    s2_score : np.ndarray [shape=(n_frames,)], optional
        A sequence that peaks at S2.
    fs : float
        Frame rate in Hz.
    heart_rate_range_bpm : (float, float)
        Range searched.

    Returns
    -------
    HeartCycle
    """
    fs = check_fs(fs)
    a = np.asarray(s1_score, dtype=np.float64)
    lo = max(1, int(round(60.0 / heart_rate_range_bpm[1] * fs)))
    hi = min(a.size - 1, int(round(60.0 / heart_rate_range_bpm[0] * fs)))
    ac = _autocorr(a)
    if hi <= lo:
        period = lo
    else:
        period = lo + int(np.argmax(ac[lo:hi + 1]))
        if 0 < period - lo and period < hi:  # parabolic refinement
            y0, y1, y2 = ac[period - 1], ac[period], ac[period + 1]
            den = y0 - 2 * y1 + y2
            period = period + (0.5 * (y0 - y2) / den if den < 0 else 0.0)
    period_s = float(period) / fs
    s_lo = max(1, int(round(0.1 * fs)))
    if s2_score is None:
        s_hi = max(s_lo + 1, int(round(0.5 * period_s * fs)))
        seg = ac[s_lo:s_hi + 1]
    else:
        b = np.asarray(s2_score, dtype=np.float64)
        s_hi = max(s_lo + 1, int(round(0.65 * period_s * fs)))
        a0, b0 = a - a.mean(), b - b.mean()
        seg = np.array([np.dot(a0[: a0.size - k], b0[k:]) for k in range(s_lo, s_hi + 1)])
    systole_s = (s_lo + int(np.argmax(seg))) / fs if seg.size else 0.3 * period_s
    return HeartCycle(float(60.0 / period_s), float(systole_s))
