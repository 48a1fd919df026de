"""Whole-recording summary numbers of a :class:`FeatureSet`: one row of a features table."""

from __future__ import annotations

import warnings

import numpy as np

from biosig.ecg.hrv import rr_statistics
from biosig.ecg.morphology import beat_morphology
from biosig.ecg.rhythm import beat_shape, rr_patterns
from biosig.features.presets.compute import compute_features
from biosig.features.presets.featureset import FeatureSet
from biosig.signal import as_signal

__all__ = ["summarize", "extract_features"]


def summarize(features: FeatureSet) -> dict[str, float]:
    """Flatten a :class:`FeatureSet` into named numbers for a features table.

    - arrays with axes ``(channel, <coefficient>, frame)``: mean and standard deviation over
      channels and frames of each coefficient (``log_mel_mean_00``, ``mfcc_std_12`` ...);
    - arrays with axes ``(channel, band)``: one number per channel and band
      (``relative_band_power_Fp1_alpha``), and likewise ``(channel, statistic)``
      (``time_features_Fp1_hjorth_mobility``);
    - ECG beats: :func:`biosig.ecg.hrv.rr_statistics` (``n_beats``, ``heart_rate_bpm``,
      ``rr_std_s``, ``rr_cv``, ``rmssd_s``, ``pnn50`` ...) and the first lead's
      :func:`biosig.ecg.morphology.beat_morphology` (``beat_corr_mean``, ``beat_p_corr_mean``,
      ``beat_residual_af_power`` ...), and with the preset's ``rhythm_features``
      :func:`biosig.ecg.rhythm.rr_patterns` and :func:`biosig.ecg.rhythm.beat_shape`
      (``rr_premature_pause_frac``, ``rr_ac1``, ``beat_template_00`` ...);
    - heart cycles (PCG, ``heart_cycles``): ``hc_n_cycles`` and the median and 75th
      percentile over cycles of each phase feature (``hc_systole_100_200hz_db_median`` ...);
    - lung cycles: ``n_cycles``.
    """
    out: dict[str, float] = {}
    for name, arr in features.arrays.items():
        ax = features.axes.get(name, ())
        if len(ax) == 3 and ax[0] == "channel" and ax[2] == "frame" and arr.shape[-1] > 0:
            mean = arr.mean(axis=(0, 2))
            std = arr.std(axis=(0, 2))
            width = max(2, len(str(arr.shape[1] - 1)))
            for i in range(arr.shape[1]):
                out[f"{name}_mean_{i:0{width}d}"] = float(mean[i])
                out[f"{name}_std_{i:0{width}d}"] = float(std[i])
        elif len(ax) == 2 and ax[0] == "channel" and ax[1] in ("band", "statistic"):
            cols = features.labels.get(ax[1], [str(i) for i in range(arr.shape[1])])
            for c, ch in enumerate(features.channels):
                for b, col in enumerate(cols):
                    out[f"{name}_{ch}_{col}"] = float(arr[c, b])
    if "r_peaks" in features.arrays or "beat_samples" in features.arrays:
        peaks = features.arrays.get("r_peaks", features.arrays.get("beat_samples"))
        out.update(rr_statistics(np.unique(peaks), fs=features.fs))
    if "beats" in features.arrays:
        out.update(beat_morphology(features["beats"][:, 0, :], fs=features.fs,
                                   offset_s=features.config["beat_offset_samples"]
                                   / features.fs))
    if "beats" in features.arrays and features.config.get("rhythm_features"):
        out.update(rr_patterns(features["r_peaks"], fs=features.fs))
        out.update(beat_shape(features["beats"][:, 0, :], features["beat_samples"],
                              features["r_peaks"]))
    if "heart_cycle_features" in features.arrays:
        hc = features["heart_cycle_features"]
        out["hc_n_cycles"] = float(hc.shape[0])
        med = p75 = np.full(hc.shape[1], np.nan)            # no cycle: NaN
        if hc.shape[0]:
            with warnings.catch_warnings():                  # a column of NaN: NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                med, p75 = np.nanmedian(hc, axis=0), np.nanpercentile(hc, 75, axis=0)
        for i, name in enumerate(features.labels["feature"]):
            out[f"hc_{name}_median"] = float(med[i])
            out[f"hc_{name}_p75"] = float(p75[i])
    if "cycle_times_s" in features.arrays:
        out["n_cycles"] = float(len(features["cycle_times_s"]))
    return out


def extract_features(signal, *, modality: str, fs: float | None = None, config=None,
                     device=None, cycles_s=None, r_peaks=None, **overrides) -> dict[str, float]:
    """Whole-recording feature vector: :func:`summarize` of :func:`compute_features`, plus
    ``duration_s``. Same parameters as :func:`compute_features`."""
    signal = as_signal(signal, fs)
    fset = compute_features(signal, modality=modality, config=config, device=device,
                            cycles_s=cycles_s, r_peaks=r_peaks, **overrides)
    return {"duration_s": float(signal.duration_s), **summarize(fset)}
