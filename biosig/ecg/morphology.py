"""Beat morphology of a short ECG for rhythm classification: how alike the beats are, whether a
P wave comes before each QRS, and how much atrial activity is left between beats.

Atrial fibrillation shows in the beats as well as in the RR intervals: no P wave (its window
before the QRS holds fibrillatory waves of 4-9 Hz that differ from beat to beat), and an
irregular but otherwise normal QRS. Ectopic beats and noise show as beats unlike the median
beat. These numbers complement :func:`biosig.ecg.hrv.rr_statistics` (the beat-to-beat timing)
for a classifier; they are whole-recording summaries, NaN where fewer than three beats are
complete.
"""

from __future__ import annotations

import numpy as np

from biosig.ecg._common import corr_rows
from biosig.errors import InputError
from biosig.validate import check_fs

__all__ = ["beat_morphology", "MORPHOLOGY_KEYS"]

#: the names :func:`beat_morphology` returns
MORPHOLOGY_KEYS = ("beat_corr_mean", "beat_corr_std", "beat_p_corr_mean", "beat_p_rel_amp",
                   "beat_t_rel_amp", "beat_qrs_width_s", "beat_residual_rel_rms",
                   "beat_p_residual_rel_rms", "beat_residual_af_power")

_P_S = (-0.25, -0.07)        # P-wave window, seconds from the R peak
_QRS_S = (-0.05, 0.05)
_T_S = (0.15, 0.40)
_AF_BAND_HZ = (4.0, 9.0)     # fibrillatory waves
_ALL_BAND_HZ = (1.0, 40.0)


def beat_morphology(beats, *, fs: float, offset_s: float) -> dict[str, float]:
    """Morphology statistics of the beats of one ECG lead.

    Parameters
    ----------
    beats : np.ndarray [shape=(n_beats, n_samples)]
        One window per beat, every one aligned on its R peak (as the ECG preset's ``beats``
        array, one channel).
    fs : float > 0
        Sampling rate in Hz.
    offset_s : float >= 0
        Seconds from a window's start to its R peak.

    Returns
    -------
    dict
        - ``beat_corr_mean``, ``beat_corr_std``: correlation of each beat with the median beat;
        - ``beat_p_corr_mean``: the same over the P-wave window (250 to 70 ms before R);
        - ``beat_p_rel_amp``, ``beat_t_rel_amp``: the median beat's peak-to-peak amplitude in
          the P and T (150-400 ms after R) windows over its QRS amplitude (+-50 ms);
        - ``beat_qrs_width_s``: how long the median beat stays above half its QRS amplitude
          around R;
        - ``beat_residual_rel_rms``, ``beat_p_residual_rel_rms``: RMS of the beats minus the
          median beat, over the whole window and the P window, relative to the QRS amplitude;
        - ``beat_residual_af_power``: fraction of that residual's power in 4-9 Hz within
          1-40 Hz (fibrillatory waves).

        Every value NaN with fewer than 3 beats (or windows too short for the P window).

    Raises
    ------
    InputError
        ``beats`` is not 2-D, or holds non-finite values.
    """
    fs = check_fs(fs)
    b = np.asarray(beats, dtype=np.float64)
    if b.ndim != 2:
        raise InputError(None, f"expected (n_beats, n_samples), got shape {b.shape}",
                         what="beats")
    nan = {k: float("nan") for k in MORPHOLOGY_KEYS}
    r = int(round(offset_s * fs))

    def window(lo_s: float, hi_s: float) -> slice:
        return slice(max(0, r + int(round(lo_s * fs))),
                     min(b.shape[1], r + int(round(hi_s * fs))))

    p, qrs, t = window(*_P_S), window(*_QRS_S), window(*_T_S)
    if b.shape[0] < 3 or p.stop - p.start < 3 or qrs.stop - qrs.start < 3:
        return nan
    if not np.isfinite(b).all():
        raise InputError(None, "beats hold NaN or infinite values", what="beats")
    b = b - np.median(b, axis=1, keepdims=True)          # each beat's own baseline
    tmpl = np.median(b, axis=0)
    qrs_amp = float(np.ptp(tmpl[qrs]))
    if qrs_amp <= 0:
        return nan
    corr = corr_rows(b, tmpl)
    resid = b - tmpl
    # the median beat above half its QRS amplitude: the contiguous stretch around R
    dev = np.abs(tmpl - np.median(tmpl))
    above = dev > 0.5 * dev[qrs].max()
    lo = hi = int(np.clip(r, 0, b.shape[1] - 1))
    while lo > 0 and above[lo - 1]:
        lo -= 1
    while hi < b.shape[1] - 1 and above[hi + 1]:
        hi += 1
    n_fft = max(256, 1 << int(np.ceil(np.log2(b.shape[1]))))
    power = (np.abs(np.fft.rfft(resid * np.hanning(b.shape[1]), n=n_fft, axis=1)) ** 2).mean(0)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / fs)
    band = power[(freqs >= _AF_BAND_HZ[0]) & (freqs < _AF_BAND_HZ[1])].sum()
    total = power[(freqs >= _ALL_BAND_HZ[0]) & (freqs < min(_ALL_BAND_HZ[1], fs / 2))].sum()
    has_t = t.stop - t.start >= 3
    return {
        "beat_corr_mean": float(corr.mean()), "beat_corr_std": float(corr.std()),
        "beat_p_corr_mean": float(corr_rows(b[:, p], tmpl[p]).mean()),
        "beat_p_rel_amp": float(np.ptp(tmpl[p]) / qrs_amp),
        "beat_t_rel_amp": float(np.ptp(tmpl[t]) / qrs_amp) if has_t else float("nan"),
        "beat_qrs_width_s": float((hi - lo + 1) / fs),
        "beat_residual_rel_rms": float(np.sqrt(np.mean(resid ** 2)) / qrs_amp),
        "beat_p_residual_rel_rms": float(np.sqrt(np.mean(resid[:, p] ** 2)) / qrs_amp),
        "beat_residual_af_power": float(band / total) if total > 0 else float("nan"),
    }
