"""Synthetic ECG with known beat positions, for tests, demos and benchmarks of the pipeline
(accuracy figures must come from real recordings such as MIT-BIH)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wfdb

from biosig.errors import ConfigError
from biosig.validate import check_fs, check_signal

__all__ = ["ecg_simulate", "SimulatedEcg", "write_wfdb_record"]

# (offset from R in s, width in s, amplitude in mV): P, Q, R, S, T waves of a lead-II-like beat
_NORMAL = ((-0.20, 0.025, 0.15), (-0.035, 0.010, -0.10), (0.0, 0.012, 1.2),
           (0.035, 0.010, -0.25), (0.28, 0.050, 0.30))
# premature ventricular complex: no P, wide and tall QRS, discordant T
_PVC = ((0.0, 0.035, 1.6), (0.07, 0.03, -0.6), (0.32, 0.07, -0.45))


@dataclass(frozen=True)
class SimulatedEcg:
    """A synthetic single-lead ECG.

    Attributes
    ----------
    signal : np.ndarray [shape=(n_samples,), dtype=float32]
        The lead in mV.
    fs : float
    r_peaks : np.ndarray [shape=(n_beats,), dtype=int64]
        Sample index of each R peak.
    labels : list of str
        ``"N"`` or ``"V"`` per beat (WFDB codes).
    """

    signal: np.ndarray
    fs: float
    r_peaks: np.ndarray
    labels: list[str]


def ecg_simulate(*, duration_s: float, fs: float, heart_rate_bpm: float = 70.0,
                 rr_std: float = 0.05, pvc_fraction: float = 0.0, noise_std_mv: float = 0.02,
                 wander_mv: float = 0.15, seed: int = 0) -> SimulatedEcg:
    """Simulate a lead-II-like ECG as a sum of Gaussian P, Q, R, S and T waves per beat.

    Parameters
    ----------
    duration_s : float > 0
    fs : float > 0
        Sampling rate in Hz.
    heart_rate_bpm : float
        Mean rate.
    rr_std : float
        Relative standard deviation of the RR intervals (with a 0.1 Hz and a 0.25 Hz
        modulation).
    pvc_fraction : float in [0, 1)
        Fraction of beats replaced by premature ventricular complexes (coupling 65 % of RR,
        followed by a compensatory pause).
    noise_std_mv : float
        White noise level.
    wander_mv : float
        Amplitude of a 0.15 Hz baseline wander.
    seed : int
        Random seed (the output is a deterministic function of the arguments).

    Returns
    -------
    SimulatedEcg
    """
    fs = check_fs(fs)
    for name, value in (("duration_s", duration_s), ("heart_rate_bpm", heart_rate_bpm)):
        if not value > 0:
            raise ConfigError(f"{name} is {value!r}, expected a positive number")
    if not 0 <= pvc_fraction < 1:
        raise ConfigError(f"pvc_fraction: expected a value in [0, 1), got {pvc_fraction!r}")
    rng = np.random.default_rng(seed)
    n = int(round(duration_s * fs))
    mean_rr = 60.0 / heart_rate_bpm
    beats, labels = [], []
    t = 0.5 * mean_rr
    while t < duration_s - 0.5:
        rr = mean_rr * (1 + rr_std * (0.6 * np.sin(2 * np.pi * 0.1 * t)
                                      + 0.4 * np.sin(2 * np.pi * 0.25 * t))
                        + 0.3 * rr_std * rng.standard_normal())
        if labels and labels[-1] != "V" and rng.random() < pvc_fraction:
            beats.append(t - 0.35 * rr)  # premature by 35 % of the interval
            labels.append("V")
            t += 0.65 * rr + 0.35 * rr  # compensatory: the next sinus beat stays on schedule
            continue
        beats.append(t)
        labels.append("N")
        t += rr
    time = np.arange(n) / fs
    x = wander_mv * np.sin(2 * np.pi * 0.15 * time + rng.uniform(0, 2 * np.pi))
    x += noise_std_mv * rng.standard_normal(n)
    for tb, lab in zip(beats, labels):
        for off, width, amp in (_PVC if lab == "V" else _NORMAL):
            c = tb + off
            lo, hi = int(max(0, (c - 5 * width) * fs)), int(min(n, (c + 5 * width) * fs + 1))
            if hi > lo:
                x[lo:hi] += amp * np.exp(-0.5 * ((time[lo:hi] - c) / width) ** 2)
    r = np.round(np.asarray(beats) * fs).astype(np.int64)
    keep = (r >= 0) & (r < n)
    return SimulatedEcg(x.astype(np.float32), float(fs), r[keep],
                        [lab for lab, k in zip(labels, keep) if k])


def write_wfdb_record(directory, name: str, signal, *, fs: float, beats=None, labels=None,
                      units: str = "mV", sig_name: str | list[str] = "ECG") -> Path:
    """Write a WFDB record (``<name>.hea`` + ``<name>.dat``, format 16) and, with ``beats``,
    its reference annotations ``<name>.atr``.

    Parameters
    ----------
    directory : str or PathLike
    name : str
        Record name (letters, digits, ``_`` and ``-``).
    signal : np.ndarray [shape=(n_samples,) or (channels, n_samples)]
        In physical units.
    fs : float
    beats : np.ndarray [shape=(n_beats,)], optional
        Beat sample indices for ``.atr``.
    labels : list of str, optional
        Beat codes (default ``"N"``).

    Returns
    -------
    Path
        The ``.hea`` file.
    """
    fs = check_fs(fs)
    x = np.atleast_2d(np.asarray(check_signal(signal, ndim=(1, 2)), dtype=np.float64))
    d = Path(os.fspath(directory))
    d.mkdir(parents=True, exist_ok=True)
    names = [sig_name] if isinstance(sig_name, str) else list(sig_name)
    if len(names) != x.shape[0]:
        names = [f"{names[0]}{i}" for i in range(x.shape[0])]
    wfdb.wrsamp(name, fs=float(fs), units=[units] * x.shape[0], sig_name=names,
                p_signal=x.T, fmt=["16"] * x.shape[0], write_dir=str(d))
    if beats is not None and len(beats):
        sym = list(labels) if labels is not None else ["N"] * len(beats)
        wfdb.wrann(name, "atr", np.asarray(beats, dtype=np.int64), symbol=sym, fs=float(fs),
                   write_dir=str(d))
    return d / f"{name}.hea"
