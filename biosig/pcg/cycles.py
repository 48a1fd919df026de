"""Per-cycle, per-phase features of a segmented PCG (:func:`pcg_cycle_features`): phase
durations and the band energies of systole and diastole relative to the heart sounds, the
inputs murmur detection looks at."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biosig import dsp
from biosig.pcg.evaluation import as_state_intervals
from biosig.validate import check_channel, check_fs

__all__ = ["CycleFeatures", "pcg_cycle_features", "DEFAULT_BANDS_HZ"]

#: Frequency bands (Hz) of the phase energies.
DEFAULT_BANDS_HZ = ((25.0, 100.0), (100.0, 200.0), (200.0, 400.0), (400.0, 800.0))


@dataclass(frozen=True)
class CycleFeatures:
    """One row per complete heart cycle (S1, systole, S2, diastole in a row).

    Attributes
    ----------
    values : np.ndarray [shape=(n_cycles, n_features), dtype=float64]
    names : list of str [length n_features]
        ``s1_s``, ``systole_s``, ``s2_s``, ``diastole_s`` (durations), then per band
        ``systole_<lo>_<hi>hz_db`` and ``diastole_<lo>_<hi>hz_db``: the phase's mean power in
        the band relative to the mean power of the cycle's S1 and S2 in the same band (dB).
    onset_s : np.ndarray [shape=(n_cycles,)]
        Start of each cycle's S1.
    """

    values: np.ndarray
    names: list
    onset_s: np.ndarray

    def summary(self) -> dict:
        """Median of each feature over the cycles (nan without cycles)."""
        med = (np.median(self.values, axis=0) if len(self.onset_s)
               else np.full(len(self.names), np.nan))
        return dict(zip(self.names, med.tolist(), strict=True))


def pcg_cycle_features(signal, segmentation, *, fs: float,
                       bands_hz=DEFAULT_BANDS_HZ) -> CycleFeatures:
    """Durations and relative band energies of the phases of every complete heart cycle.

    Parameters
    ----------
    signal : np.ndarray [shape=(n_samples,)]
        One PCG channel.
    segmentation : PcgSegmentation, Annotations or np.ndarray [shape=(n, 3)]
        Its segmentation (:func:`biosig.pcg.pcg_segment`, or a CirCor reference read with
        :func:`biosig.manifests.read_circor_segmentation`), times in seconds.
    fs : float
        Sampling rate in Hz.
    bands_hz : sequence of (float, float)
        Bands ``(lo, hi)`` with ``0 <= lo < hi <= fs / 2``.

    Returns
    -------
    CycleFeatures

    Notes
    -----
    The band power of a phase is the mean of the squared magnitude of a zero-phase fourth-order
    Butterworth band-pass output over the phase's samples; a systolic murmur raises
    ``systole_*_db`` towards 0 dB (as loud as the heart sounds) from its usual -20 to -30 dB.
    """
    fs = check_fs(fs)
    x = np.ascontiguousarray(check_channel(signal), dtype=np.float64)
    bands = [(float(lo), float(hi)) for lo, hi in bands_hz]
    for lo, hi in bands:
        if not 0 <= lo < hi <= fs / 2:
            raise ValueError(f"bands_hz: ({lo:g}, {hi:g}) is not within 0-{fs / 2:g} Hz with "
                             f"low < high")
    iv = as_state_intervals(segmentation)
    iv = iv[np.argsort(iv[:, 0])]
    powers = []
    for lo, hi in bands:
        if lo <= 0:
            y = dsp.lowpass(x, fs=fs, cutoff_hz=hi) if hi < fs / 2 else x
        elif hi >= fs / 2:
            y = dsp.highpass(x, fs=fs, cutoff_hz=lo)
        else:
            y = dsp.bandpass(x, fs=fs, band_hz=(lo, hi))
        powers.append(np.asarray(y) ** 2)
    csum = np.concatenate([np.zeros((len(bands), 1)), np.cumsum(np.stack(powers), axis=1)],
                          axis=1) if bands else np.zeros((0, x.size + 1))

    def mean_power(a_s, b_s):
        a = int(np.clip(round(a_s * fs), 0, x.size))
        b = int(np.clip(round(b_s * fs), 0, x.size))
        if b <= a:
            return np.full(len(bands), np.nan)
        return (csum[:, b] - csum[:, a]) / (b - a)

    names = ["s1_s", "systole_s", "s2_s", "diastole_s"]
    for lo, hi in bands:
        tag = f"{lo:g}_{hi:g}hz"
        names += [f"systole_{tag}_db", f"diastole_{tag}_db"]
    rows, onsets = [], []
    states = iv[:, 2].astype(int)
    for k in range(len(iv) - 3):
        if list(states[k:k + 4]) != [1, 2, 3, 4] or np.any(np.abs(iv[k + 1:k + 4, 0]
                                                                   - iv[k:k + 3, 1]) > 1e-6):
            continue
        s1, sy, s2, di = iv[k:k + 4]
        p_s1, p_sy = mean_power(s1[0], s1[1]), mean_power(sy[0], sy[1])
        p_s2, p_di = mean_power(s2[0], s2[1]), mean_power(di[0], di[1])
        ref = 0.5 * (p_s1 + p_s2)
        tiny = np.finfo(np.float64).tiny
        with np.errstate(divide="ignore", invalid="ignore"):
            rel_sy = 10 * np.log10(np.maximum(p_sy, tiny) / np.maximum(ref, tiny))
            rel_di = 10 * np.log10(np.maximum(p_di, tiny) / np.maximum(ref, tiny))
        row = [s1[1] - s1[0], sy[1] - sy[0], s2[1] - s2[0], di[1] - di[0]]
        for b in range(len(bands)):
            row += [rel_sy[b], rel_di[b]]
        rows.append(row)
        onsets.append(s1[0])
    values = np.asarray(rows, dtype=np.float64).reshape(-1, len(names))
    return CycleFeatures(values, names, np.asarray(onsets, dtype=np.float64))
