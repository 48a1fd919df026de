"""Small synthetic signals with known answers, one per modality.

They stand in for real recordings when none are present (the demo on a machine without data) and
give unit tests analytic targets (beat times, band powers). They are not physiological models:
accuracy claims come from real recordings.
"""

from __future__ import annotations

import numpy as np

from biosig.dsp import bandpass
from biosig.ecg.simulate import ecg_simulate
from biosig.signal import Annotations, Signal

__all__ = ["synth_ecg", "synth_pcg", "synth_eeg", "synth_lung", "synth_cough", "synth_signal",
           "MODALITIES"]

MODALITIES = ("pcg", "lung", "cough", "speech", "ecg", "eeg")


def _gauss(t, centre, width):
    return np.exp(-0.5 * ((t - centre) / width) ** 2)


def synth_ecg(duration_s: float = 30.0, *, fs: float = 360.0, heart_rate_bpm: float = 72.0,
              seed: int = 0) -> Signal:
    """:func:`biosig.ecg.ecg_simulate` as a :class:`Signal` whose annotations are the beats."""
    sim = ecg_simulate(duration_s=duration_s, fs=fs, heart_rate_bpm=heart_rate_bpm, seed=seed)
    onset = sim.r_peaks / fs
    ann = Annotations(onset, np.zeros_like(onset), list(sim.labels), [], "synthetic")
    return Signal(sim.signal[None], fs, ["ECG"], ["mV"], None, ann, None)


def synth_pcg(duration_s: float = 10.0, *, fs: float = 4000.0, heart_rate_bpm: float = 75.0,
              murmur: bool = False, seed: int = 0) -> Signal:
    """Heart-sound-like signal: S1 (~50 Hz burst) and S2 (~80 Hz burst) per beat, optionally a
    systolic noise murmur; S1/S2 onsets annotated."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * fs))
    t = np.arange(n) / fs
    x = np.zeros(n)
    onsets, labels = [], []
    period = 60.0 / heart_rate_bpm
    b = 0.2
    while b < duration_s - period:
        for start, f0, amp, name in ((b, 50.0, 1.0, "S1"), (b + 0.3 * period, 80.0, 0.7, "S2")):
            env = _gauss(t, start + 0.05, 0.02)
            x += amp * env * np.sin(2 * np.pi * f0 * (t - start))
            onsets.append(start)
            labels.append(name)
        if murmur:
            seg = (t > b + 0.1) & (t < b + 0.3 * period)
            x[seg] += 0.15 * rng.standard_normal(seg.sum())
        b += period
    x += 0.01 * rng.standard_normal(n)
    on = np.asarray(onsets)
    ann = Annotations(on, np.full_like(on, 0.1), labels, [], "synthetic")
    return Signal((x / np.abs(x).max() * 0.8)[None].astype(np.float32), fs, ["PCG"], ["FS"],
                  None, ann, None)


def synth_eeg(duration_s: float = 20.0, *, fs: float = 160.0, n_channels: int = 4,
              alpha_hz: float = 10.0, seed: int = 0) -> Signal:
    """EEG-like channels: 1/f background plus an alpha rhythm at ``alpha_hz`` and 50 Hz mains."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * fs))
    t = np.arange(n) / fs
    freqs = np.fft.rfftfreq(n, 1 / fs)
    shape = 1 / np.maximum(freqs, 0.5)
    data = []
    for c in range(n_channels):
        spec = shape * (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size))
        bg = np.fft.irfft(spec, n)
        bg = bg / bg.std() * 10.0
        alpha = 25.0 * np.sin(2 * np.pi * alpha_hz * t + c)
        data.append(bg + alpha + 5.0 * np.sin(2 * np.pi * 50.0 * t))
    return Signal(np.asarray(data, dtype=np.float32), fs, [f"EEG{c}" for c in range(n_channels)],
                  ["uV"] * n_channels, None, None, None)


def synth_lung(duration_s: float = 12.0, *, fs: float = 4000.0, breaths_per_min: float = 15.0,
               wheeze_hz: float | None = 400.0, seed: int = 0) -> Signal:
    """Breath-noise-like signal: band-limited noise modulated by the breathing cycle, with an
    optional expiratory wheeze (a tone at ``wheeze_hz``); cycles annotated."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * fs))
    t = np.arange(n) / fs
    period = 60.0 / breaths_per_min
    phase = (t % period) / period
    env = np.sin(np.pi * phase) ** 2
    noise = bandpass(rng.standard_normal(n), fs=fs, band_hz=(100.0, 1200.0))
    x = env * noise / noise.std() * 0.2
    if wheeze_hz:
        x += 0.1 * (phase > 0.5) * np.sin(2 * np.pi * wheeze_hz * t)
    starts = np.arange(0.0, duration_s - period + 1e-9, period)
    ann = Annotations(starts, np.full_like(starts, period), ["cycle"] * starts.size, [],
                      "synthetic")
    return Signal(x[None].astype(np.float32), fs, ["lung"], ["FS"], None, ann, None)


def synth_cough(duration_s: float = 3.0, *, fs: float = 16000.0, n_coughs: int = 2,
                seed: int = 0) -> Signal:
    """Cough-like bursts: a sharp broadband onset decaying into a voiced tail."""
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * fs))
    t = np.arange(n) / fs
    x = 0.003 * rng.standard_normal(n)
    starts = np.linspace(0.3, duration_s - 0.6, n_coughs)
    for s in starts:
        local = t - s
        on = local >= 0
        burst = np.exp(-local[on] / 0.06) * rng.standard_normal(on.sum())
        voiced = 0.3 * np.exp(-local[on] / 0.15) * np.sin(2 * np.pi * 220 * local[on])
        x[on] += burst + voiced
    ann = Annotations(starts, np.full_like(starts, 0.4), ["cough"] * n_coughs, [], "synthetic")
    return Signal((x / np.abs(x).max() * 0.9)[None].astype(np.float32), fs, ["audio"], ["FS"],
                  None, ann, None)


def synth_signal(modality: str, *, seed: int = 0) -> Signal:
    """A default synthetic recording for ``modality`` (one of :data:`MODALITIES`); speech is a
    vowel-like harmonic sweep (use text-to-speech for real words)."""
    if modality == "ecg":
        return synth_ecg(seed=seed)
    if modality == "pcg":
        return synth_pcg(seed=seed)
    if modality == "eeg":
        return synth_eeg(seed=seed)
    if modality == "lung":
        return synth_lung(seed=seed)
    if modality == "cough":
        return synth_cough(seed=seed)
    if modality == "speech":
        fs = 16000.0
        t = np.arange(int(3 * fs)) / fs
        f0 = 120 + 30 * np.sin(2 * np.pi * 0.5 * t)
        phase = 2 * np.pi * np.cumsum(f0) / fs
        harmonics = sum(np.sin(k * phase) / k for k in range(1, 20))
        x = harmonics * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t))
        return Signal((0.3 * x / np.abs(x).max())[None].astype(np.float32), fs, ["audio"],
                      ["FS"], None, None, None)
    raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
