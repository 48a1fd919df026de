"""Feature presets per modality: one typed config each and one call for all of them.

>>> import biosig, biosig.features as bf
>>> sig = biosig.load("100.hea")                                   # doctest: +SKIP
>>> fset = bf.compute_features(sig, modality="ecg")                # doctest: +SKIP
>>> fset["beats"].shape, fset.axes["beats"]                        # doctest: +SKIP
((2272, 2, 252), ('beat', 'channel', 'time'))
>>> row = bf.extract_features(sig, modality="ecg")                 # doctest: +SKIP

========  ===============================================================================
modality  arrays
========  ===============================================================================
pcg       25-400 Hz band-passed ``signal``, homomorphic ``envelope`` (50 Hz),
          ``log_mel`` up to 1 kHz
lung      50-2000 Hz band-passed ``signal`` (4 kHz), ``log_mel`` 50-2000 Hz, and with
          ``cycles_s`` the per-cycle crops ``cycle_log_mel`` (zero-padded to 8 s)
cough     ``log_mel``, ``mfcc``, ``mfcc_delta``, ``mfcc_delta2``
speech    Whisper's 80-bin ``log_mel`` at 16 kHz
ecg       0.5-40 Hz band-passed ``signal``, beat-centred windows ``beats`` around R peaks
          (``r_peaks`` or the record's beat annotations), log-power ``spectrogram``
eeg       notched and 0.5-45 Hz band-passed ``signal``, per-channel ``spectrogram``,
          Welch ``psd``, ``band_power`` and ``relative_band_power`` (delta..gamma)
========  ===============================================================================

Frame ``t`` of a spectrogram-like array is centred on ``t / rate_hz[name]`` seconds.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biosig.errors import ConfigError, InputError
from biosig.features.spectral import EEG_BANDS_HZ
from biosig.fileio import atomic_path

__all__ = [
    "FeatureSet", "PCGConfig", "LungConfig", "CoughConfig", "SpeechConfig", "ECGConfig",
    "EEGConfig", "MODALITIES", "make_config", "compute_features", "extract_features",
    "summarize", "load_feature_set",
]

# ------------------------------------------------------------------------------------------
# Configs

@dataclass(frozen=True)
class PCGConfig:
    """Phonocardiogram: band-pass, homomorphic envelope, log-mel up to 1 kHz.

    Attributes
    ----------
    target_fs : float or None
        Resample to this rate first (``None``: keep the recording's rate).
    band_hz : (float, float)
        Zero-phase Butterworth band-pass of order ``filter_order``; a high edge at or above
        0.95 Nyquist makes it a high-pass.
    envelope_cutoff_hz : float
        Low-pass of the homomorphic envelope (:func:`biosig.dsp.envelope_homomorphic`).
    envelope_fs : float or None
        Rate the envelope is resampled to (50 Hz as in Springer et al. 2016).
    window_s, hop_s : float
        Spectrogram frame length (``n_fft``) and hop, rounded to samples.
    n_mels, fmin_hz, fmax_hz, top_db
        Log-mel filters (``fmax_hz`` capped at Nyquist) and dB range.
    """

    target_fs: float | None = None
    band_hz: tuple[float, float] = (25.0, 400.0)
    filter_order: int = 4
    envelope_cutoff_hz: float = 8.0
    envelope_fs: float | None = 50.0
    window_s: float = 0.064
    hop_s: float = 0.016
    n_mels: int = 64
    fmin_hz: float = 25.0
    fmax_hz: float = 1000.0
    top_db: float | None = 80.0


@dataclass(frozen=True)
class LungConfig:
    """Lung sounds: resample, band-pass, band-limited log-mel, fixed-length cycle crops.

    Attributes
    ----------
    target_fs : float or None
        4 kHz by default, so that ICBHI's devices (4, 10 and 44.1 kHz) give the same features.
    band_hz, filter_order, window_s, hop_s, n_mels, fmin_hz, fmax_hz, top_db
        As in :class:`PCGConfig`.
    cycle_duration_s : float
        Length of each respiratory-cycle crop: longer cycles are cut, shorter ones zero-padded
        (``cycle_n_frames`` gives the frames that hold signal).
    """

    target_fs: float | None = 4000.0
    band_hz: tuple[float, float] = (50.0, 2000.0)
    filter_order: int = 4
    window_s: float = 0.064
    hop_s: float = 0.016
    n_mels: int = 64
    fmin_hz: float = 50.0
    fmax_hz: float = 2000.0
    top_db: float | None = 80.0
    cycle_duration_s: float = 8.0


@dataclass(frozen=True)
class CoughConfig:
    """Cough sounds: log-mel, MFCCs with deltas and delta-deltas.

    Attributes
    ----------
    target_fs : float or None
        16 kHz by default so recordings from different devices give comparable features.
    window_s, hop_s, n_mels, fmin_hz, fmax_hz, top_db
        As in :class:`PCGConfig` (``fmax_hz=None``: Nyquist).
    n_mfcc : int
        MFCCs kept (DCT-II, orthonormal, of the log-mel in dB).
    delta_width : int
        Frames in the delta regression window (odd).
    """

    target_fs: float | None = 16000.0
    window_s: float = 0.032
    hop_s: float = 0.010
    n_mels: int = 64
    fmin_hz: float = 0.0
    fmax_hz: float | None = None
    top_db: float | None = 80.0
    n_mfcc: int = 13
    delta_width: int = 9


@dataclass(frozen=True)
class SpeechConfig:
    """Speech: Whisper's log-mel front-end (16 kHz, 25 ms / 10 ms, 80 or 128 bins).

    Attributes
    ----------
    target_fs : float
        Must stay 16000 (Whisper's rate); recordings are resampled to it.
    n_mels : {80, 128}
    pad_to_30s : bool
        Pad or cut to Whisper's 30 s window (3000 frames).
    """

    target_fs: float = 16000.0
    n_mels: int = 80
    pad_to_30s: bool = False


@dataclass(frozen=True)
class ECGConfig:
    """ECG: band-pass, beat-centred windows around R peaks, log-power spectrogram.

    Attributes
    ----------
    target_fs : float or None
    band_hz, filter_order
        As in :class:`PCGConfig`; 0.5-40 Hz removes baseline wander and mains noise.
    beat_window_s : (float, float)
        Seconds kept before and after each R peak; beats too close to either end are dropped.
    window_s, hop_s : float
        Spectrogram frame and hop.
    fmax_hz : float
        Highest spectrogram frequency kept.
    top_db : float or None
    beats : {"detect", "annotations"}
        Where the beats come from when no ``r_peaks`` are given: ``"detect"`` runs
        :func:`biosig.ecg.ecg_peaks` on the first channel; ``"annotations"`` uses the record's
        beat annotations (e.g. a WFDB ``.atr``: reference labels, so never for features a model
        is evaluated on). The source is recorded as ``beat_source`` in the feature config.
    """

    target_fs: float | None = None
    band_hz: tuple[float, float] = (0.5, 40.0)
    filter_order: int = 4
    beat_window_s: tuple[float, float] = (0.25, 0.45)
    window_s: float = 2.0
    hop_s: float = 0.25
    fmax_hz: float = 50.0
    top_db: float | None = 80.0
    beats: str = "detect"


@dataclass(frozen=True)
class EEGConfig:
    """EEG: powerline notch, band-pass, per-channel spectrogram, Welch PSD and band powers.

    Attributes
    ----------
    target_fs : float or None
    notch_hz : float or None
        Mains frequency notched with its harmonics (50 Hz in Europe, 60 Hz in the Americas);
        ``None`` or a value at or above Nyquist: no notch.
    band_hz, filter_order
        As in :class:`PCGConfig`.
    window_s, hop_s : float
        Spectrogram frame and hop; the spectrogram and PSD stop at ``band_hz[1]``.
    welch_segment_s : float
        Welch segment (2 s gives 0.5 Hz resolution).
    bands_hz : dict of str to (float, float)
        Bands for ``band_power`` / ``relative_band_power``; bands starting at or above
        Nyquist are left out, upper edges are capped there.
    """

    target_fs: float | None = None
    notch_hz: float | None = 50.0
    band_hz: tuple[float, float] = (0.5, 45.0)
    filter_order: int = 4
    window_s: float = 2.0
    hop_s: float = 0.5
    welch_segment_s: float = 2.0
    bands_hz: dict[str, tuple[float, float]] = field(
        default_factory=lambda: dict(EEG_BANDS_HZ))


MODALITIES: dict[str, type] = {
    "pcg": PCGConfig, "lung": LungConfig, "cough": CoughConfig, "speech": SpeechConfig,
    "ecg": ECGConfig, "eeg": EEGConfig,
}


def _type_name(hint) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _coerce(where: str, value, hint):
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(where, value, arg)
            except ConfigError:
                pass
        raise ConfigError(f"{where}: expected {_type_name(hint)}, got {value!r}")
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, (int, float)) and not isinstance(value, bool) \
            and float(value).is_integer():
        return int(value)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is str and isinstance(value, str):
        return value
    if origin is tuple and isinstance(value, (list, tuple)) and len(value) == len(args):
        return tuple(_coerce(f"{where}[{i}]", v, a) for i, (v, a) in enumerate(zip(value, args)))
    if origin is dict and isinstance(value, dict):
        key_t, val_t = args
        return {_coerce(where, k, key_t): _coerce(f"{where}.{k}", v, val_t)
                for k, v in value.items()}
    raise ConfigError(f"{where}: expected {_type_name(hint)}, got {value!r}")


def make_config(modality: str, overrides: dict | None = None, *, base=None):
    """The preset config of ``modality`` with ``overrides`` applied and type-checked.

    Parameters
    ----------
    modality : {"pcg", "lung", "cough", "speech", "ecg", "eeg"}
    overrides : dict, optional
        Field name to value; lists are accepted for tuples; strings are *not* parsed (the CLI
        parses ``key=value`` with YAML first).
    base : config, optional
        Start from this config instead of the defaults.

    Raises
    ------
    ConfigError
        Unknown modality, unknown key (the message lists the valid ones) or wrong type.
    """
    if modality not in MODALITIES:
        raise ConfigError(f"modality is {modality!r}, expected one of {sorted(MODALITIES)}")
    cls = MODALITIES[modality]
    cfg = cls() if base is None else base
    if not isinstance(cfg, cls):
        raise ConfigError(f"config is a {type(cfg).__name__}, expected {cls.__name__} for "
                          f"modality {modality!r}")
    if not overrides:
        return cfg
    hints = typing.get_type_hints(cls)
    changes = {}
    for key, value in overrides.items():
        if key not in hints:
            raise ConfigError(f"unknown key {key!r} for modality {modality!r}; expected one of "
                              f"{', '.join(f.name for f in dataclasses.fields(cls))}")
        changes[key] = _coerce(f"{modality}.{key}", value, hints[key])
    return dataclasses.replace(cfg, **changes)


# ------------------------------------------------------------------------------------------
# The result

@dataclass
class FeatureSet:
    """Named feature arrays of one recording, with what their axes mean.

    Attributes
    ----------
    modality : str
    fs : float
        Sampling rate in Hz of the (resampled) signal the features were computed from.
    channels : list of str
    arrays : dict of str to np.ndarray
        The features, e.g. ``"log_mel" [shape=(channel, mel, frame)]``.
    axes : dict of str to tuple of str
        Axis names of each array (``"channel"``, ``"time"``, ``"frame"``, ``"freq"``,
        ``"mel"``, ``"mfcc"``, ``"band"``, ``"beat"``, ``"cycle"`` ...).
    rate_hz : dict of str to float
        Samples (or frames) per second along the last axis of arrays that have a time axis;
        frame ``t`` is centred on ``t / rate_hz`` seconds.
    labels : dict of str to list of str
        Names along labelled axes (``"band"``: ``["delta", ...]``).
    config : dict
        The resolved preset plus derived values (``n_fft``, ``hop_length``).
    path : str or None
        The recording.
    """

    modality: str
    fs: float
    channels: list[str]
    arrays: dict[str, np.ndarray]
    axes: dict[str, tuple[str, ...]]
    rate_hz: dict[str, float] = field(default_factory=dict)
    labels: dict[str, list[str]] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    path: str | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __contains__(self, name: str) -> bool:
        return name in self.arrays

    def metadata(self) -> dict:
        """Everything but the arrays, JSON-serialisable."""
        return {"modality": self.modality, "fs": self.fs, "channels": list(self.channels),
                "axes": {k: list(v) for k, v in self.axes.items()}, "rate_hz": self.rate_hz,
                "labels": self.labels, "config": self.config, "path": self.path,
                "shapes": {k: list(v.shape) for k, v in self.arrays.items()}}

    def save(self, path) -> Path:
        """Write the arrays and a ``__meta__`` JSON string to ``path`` (.npz) atomically."""
        path = Path(os.fspath(path))
        if "__meta__" in self.arrays:
            raise ValueError("FeatureSet: '__meta__' is reserved and cannot name an array")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, __meta__=np.array(json.dumps(self.metadata())), **self.arrays)
        return path


def load_feature_set(path) -> FeatureSet:
    """Read a :class:`FeatureSet` written by :meth:`FeatureSet.save`."""
    path = Path(os.fspath(path))
    if not path.is_file():
        raise InputError(path, "file not found")
    with np.load(path, allow_pickle=False) as z:
        if "__meta__" not in z.files:
            raise InputError(path, "not a biosig feature file (no __meta__ entry)")
        meta = json.loads(str(z["__meta__"]))
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    return FeatureSet(modality=meta["modality"], fs=meta["fs"], channels=meta["channels"],
                      arrays=arrays, axes={k: tuple(v) for k, v in meta["axes"].items()},
                      rate_hz=meta["rate_hz"], labels=meta["labels"], config=meta["config"],
                      path=meta["path"])


# ------------------------------------------------------------------------------------------
# Per-modality computation

def _frames(window_s: float, hop_s: float, fs: float, where: str) -> tuple[int, int]:
    n_fft = int(round(window_s * fs))
    hop = int(round(hop_s * fs))
    if n_fft < 4 or hop < 1:
        raise ConfigError(f"{where}: window_s={window_s:g} s and hop_s={hop_s:g} s give "
                          f"n_fft={n_fft} and hop_length={hop} samples at fs={fs:g} Hz; "
                          f"expected n_fft >= 4 and hop_length >= 1")
    return n_fft, hop


def _band_limit(x: np.ndarray, fs: float, band_hz, order: int) -> np.ndarray:
    """Band-pass; a high edge at or above 0.95 Nyquist becomes a high-pass only."""
    from biosig import dsp
    low, high = band_hz
    if not 0 <= low < high:
        raise ConfigError(f"band_hz is ({low:g}, {high:g}), expected 0 <= low < high")
    if high >= 0.95 * fs / 2:
        return dsp.highpass(x, fs=fs, cutoff_hz=low, order=order) if low > 0 else x
    if low <= 0:
        return dsp.lowpass(x, fs=fs, cutoff_hz=high, order=order)
    return dsp.bandpass(x, fs=fs, low_hz=low, high_hz=high, order=order)


def _log_mel(x, *, fs, n_fft, hop, n_mels, fmin_hz, fmax_hz, top_db, device):
    from biosig.features.spectral import log_mel_spectrogram
    fmax = fs / 2 if fmax_hz is None else min(float(fmax_hz), fs / 2)
    return log_mel_spectrogram(x, fs=fs, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
                               fmin_hz=fmin_hz, fmax_hz=fmax, top_db=top_db, device=device)


def _db_spectrogram(x, *, fs, n_fft, hop, fmax_hz, top_db, device):
    from biosig.features.spectral import fft_frequencies, power_to_db, spectrogram
    n_fft_eff = min(n_fft, x.shape[-1])
    spec = spectrogram(x, n_fft=n_fft_eff, hop_length=hop, device=device)
    freqs = fft_frequencies(fs=fs, n_fft=n_fft_eff)
    keep = freqs <= fmax_hz
    return power_to_db(spec[..., keep, :], top_db=top_db), freqs[keep], n_fft_eff


def _pcg(x, fs, cfg: PCGConfig, device, **_):
    from biosig import dsp
    n_fft, hop = _frames(cfg.window_s, cfg.hop_s, fs, "pcg")
    x = _band_limit(x, fs, cfg.band_hz, cfg.filter_order)
    env = dsp.envelope_homomorphic(x, fs=fs, cutoff_hz=cfg.envelope_cutoff_hz)
    env_fs = fs
    if cfg.envelope_fs is not None and cfg.envelope_fs != fs:
        env = dsp.resample(env, fs=fs, target_fs=cfg.envelope_fs)
        env_fs = float(cfg.envelope_fs)
    log_mel = _log_mel(x, fs=fs, n_fft=n_fft, hop=hop, n_mels=cfg.n_mels, fmin_hz=cfg.fmin_hz,
                       fmax_hz=cfg.fmax_hz, top_db=cfg.top_db, device=device)
    arrays = {"signal": x, "envelope": env, "log_mel": log_mel}
    axes = {"signal": ("channel", "time"), "envelope": ("channel", "time"),
            "log_mel": ("channel", "mel", "frame")}
    rate = {"signal": fs, "envelope": env_fs, "log_mel": fs / hop}
    return arrays, axes, rate, {}, {"n_fft": n_fft, "hop_length": hop}


def _check_cycles(cycles_s, duration_s: float) -> np.ndarray:
    cyc = np.asarray(cycles_s, dtype=np.float64)
    if cyc.ndim != 2 or cyc.shape[1] != 2:
        raise InputError(None, f"expected shape (n_cycles, 2) of start and end times in "
                               f"seconds, got shape {cyc.shape}", what="cycles_s")
    bad = ~np.isfinite(cyc).all(axis=1) | (cyc[:, 0] < 0) | (cyc[:, 1] <= cyc[:, 0]) \
        | (cyc[:, 0] >= duration_s)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(None, f"cycle {i} is ({cyc[i, 0]:g}, {cyc[i, 1]:g}) s; expected "
                               f"0 <= start < end and start < the duration {duration_s:.3f} s",
                         what="cycles_s")
    return cyc


def _lung(x, fs, cfg: LungConfig, device, cycles_s=None, **_):
    n_fft, hop = _frames(cfg.window_s, cfg.hop_s, fs, "lung")
    x = _band_limit(x, fs, cfg.band_hz, cfg.filter_order)
    mel_kw = dict(fs=fs, n_fft=n_fft, hop=hop, n_mels=cfg.n_mels, fmin_hz=cfg.fmin_hz,
                  fmax_hz=cfg.fmax_hz, top_db=cfg.top_db, device=device)
    arrays = {"signal": x, "log_mel": _log_mel(x, **mel_kw)}
    axes = {"signal": ("channel", "time"), "log_mel": ("channel", "mel", "frame")}
    rate = {"signal": fs, "log_mel": fs / hop}
    if cycles_s is not None:
        cyc = _check_cycles(cycles_s, x.shape[-1] / fs)
        length = int(round(cfg.cycle_duration_s * fs))
        crops = np.zeros((len(cyc), x.shape[0], length), dtype=x.dtype)
        n_valid = np.zeros(len(cyc), dtype=np.int64)
        for i, (start, end) in enumerate(cyc):
            a = int(round(start * fs))
            b = min(int(round(end * fs)), x.shape[-1], a + length)
            crops[i, :, :b - a] = x[:, a:b]
            n_valid[i] = 1 + (b - a) // hop
        arrays["cycle_log_mel"] = _log_mel(crops, **mel_kw) if len(cyc) else np.zeros(
            (0, x.shape[0], cfg.n_mels, 1 + length // hop), dtype=np.float32)
        arrays["cycle_times_s"] = cyc
        arrays["cycle_n_frames"] = n_valid
        axes.update(cycle_log_mel=("cycle", "channel", "mel", "frame"),
                    cycle_times_s=("cycle", "bound"), cycle_n_frames=("cycle",))
        rate["cycle_log_mel"] = fs / hop
    return arrays, axes, rate, {}, {"n_fft": n_fft, "hop_length": hop}


def _cough(x, fs, cfg: CoughConfig, device, **_):
    from biosig.features.spectral import deltas, mfcc
    n_fft, hop = _frames(cfg.window_s, cfg.hop_s, fs, "cough")
    fmax = fs / 2 if cfg.fmax_hz is None else min(cfg.fmax_hz, fs / 2)
    log_mel = _log_mel(x, fs=fs, n_fft=n_fft, hop=hop, n_mels=cfg.n_mels, fmin_hz=cfg.fmin_hz,
                       fmax_hz=fmax, top_db=cfg.top_db, device=device)
    cc = mfcc(x, fs=fs, n_mfcc=cfg.n_mfcc, n_fft=n_fft, hop_length=hop, n_mels=cfg.n_mels,
              fmin_hz=cfg.fmin_hz, fmax_hz=fmax, top_db=cfg.top_db, device=device)
    arrays = {"log_mel": log_mel, "mfcc": cc, "mfcc_delta": deltas(cc, width=cfg.delta_width),
              "mfcc_delta2": deltas(cc, width=cfg.delta_width, order=2)}
    axes = {"log_mel": ("channel", "mel", "frame"), "mfcc": ("channel", "mfcc", "frame"),
            "mfcc_delta": ("channel", "mfcc", "frame"),
            "mfcc_delta2": ("channel", "mfcc", "frame")}
    rate = {k: fs / hop for k in arrays}
    return arrays, axes, rate, {}, {"n_fft": n_fft, "hop_length": hop}


def _speech(x, fs, cfg: SpeechConfig, device, **_):
    from biosig.features.whisper import WHISPER_HOP_LENGTH, WHISPER_N_FFT, whisper_log_mel
    log_mel = whisper_log_mel(x, fs=fs, n_mels=cfg.n_mels, pad_to_30s=cfg.pad_to_30s,
                              device=device)
    return ({"log_mel": log_mel}, {"log_mel": ("channel", "mel", "frame")},
            {"log_mel": fs / WHISPER_HOP_LENGTH}, {},
            {"n_fft": WHISPER_N_FFT, "hop_length": WHISPER_HOP_LENGTH})


def _ecg(x, fs, cfg: ECGConfig, device, r_peaks=None, annotations=None, **_):
    n_fft, hop = _frames(cfg.window_s, cfg.hop_s, fs, "ecg")
    x = _band_limit(x, fs, cfg.band_hz, cfg.filter_order)
    source = "r_peaks"
    if cfg.beats not in ("detect", "annotations"):
        raise ConfigError(f"ecg.beats is {cfg.beats!r}, expected 'detect' or 'annotations'")
    if r_peaks is None and cfg.beats == "annotations":
        if annotations is None or not len(annotations):
            raise InputError(None, "ecg.beats is 'annotations' but the recording has no "
                                   "annotations", what="annotations")
        from biosig.ecg.evaluation import BEAT_LABELS
        is_beat = np.array([lab in BEAT_LABELS for lab in annotations.labels], dtype=bool)
        r_peaks = np.round(annotations.onset_s[is_beat] * fs).astype(np.int64)
        source = annotations.source or "annotations"
    elif r_peaks is None:
        from biosig.ecg import ecg_peaks
        r_peaks = (ecg_peaks(x[0], fs=fs).samples if x.shape[-1] >= int(2 * fs)
                   else np.zeros(0, dtype=np.int64))
        source = "ecg_peaks"
    pre, post = (int(round(v * fs)) for v in cfg.beat_window_s)
    if pre < 0 or post <= 0:
        raise ConfigError(f"ecg.beat_window_s is {cfg.beat_window_s}, expected (before_s >= 0, "
                          f"after_s > 0)")
    peaks = np.asarray(r_peaks)
    if peaks.ndim != 1 or (peaks.size and peaks.dtype.kind not in "iu"):
        raise InputError(None, f"expected a 1-D array of integer sample indices, got "
                               f"dtype {peaks.dtype} shape {peaks.shape}", what="r_peaks")
    peaks = np.sort(peaks.astype(np.int64))
    all_peaks = peaks
    inside = (peaks - pre >= 0) & (peaks + post <= x.shape[-1])
    peaks = peaks[inside]
    idx = peaks[:, None] + np.arange(-pre, post)[None, :]                 # (beat, time)
    beats = np.ascontiguousarray(np.moveaxis(x[:, idx], 1, 0))           # (beat, channel, time)
    spec, freqs, n_fft_eff = _db_spectrogram(x, fs=fs, n_fft=n_fft, hop=hop,
                                             fmax_hz=cfg.fmax_hz, top_db=cfg.top_db,
                                             device=device)
    arrays = {"signal": x, "beats": beats, "beat_samples": peaks, "r_peaks": all_peaks,
              "spectrogram": spec, "spectrogram_freqs_hz": freqs}
    axes = {"signal": ("channel", "time"), "beats": ("beat", "channel", "time"),
            "beat_samples": ("beat",), "r_peaks": ("beat",),
            "spectrogram": ("channel", "freq", "frame"),
            "spectrogram_freqs_hz": ("freq",)}
    rate = {"signal": fs, "beats": fs, "spectrogram": fs / hop}
    derived = {"n_fft": n_fft_eff, "hop_length": hop, "beat_source": source,
               "beat_offset_samples": pre}
    return arrays, axes, rate, {}, derived


def _eeg(x, fs, cfg: EEGConfig, device, **_):
    from biosig import dsp
    from biosig.features.spectral import band_powers, welch
    n_fft, hop = _frames(cfg.window_s, cfg.hop_s, fs, "eeg")
    if cfg.notch_hz is not None and cfg.notch_hz < fs / 2:
        x = dsp.notch(x, fs=fs, freq_hz=cfg.notch_hz, harmonics=True)
    x = _band_limit(x, fs, cfg.band_hz, cfg.filter_order)
    fmax = min(cfg.band_hz[1], fs / 2)
    spec, freqs, n_fft_eff = _db_spectrogram(x, fs=fs, n_fft=n_fft, hop=hop, fmax_hz=fmax,
                                             top_db=None, device=device)
    segment = min(int(round(cfg.welch_segment_s * fs)), x.shape[-1])
    psd = welch(x, fs=fs, segment_length=segment, device=device)
    keep = psd.freqs_hz <= fmax
    bands = {k: v for k, v in cfg.bands_hz.items() if v[0] < fs / 2}
    bp = band_powers(x, fs=fs, bands_hz=bands, segment_length=segment, device=device)
    arrays = {"signal": x, "spectrogram": spec, "spectrogram_freqs_hz": freqs,
              "psd": psd.psd[..., keep], "psd_freqs_hz": psd.freqs_hz[keep],
              "band_power": bp.absolute, "relative_band_power": bp.relative}
    axes = {"signal": ("channel", "time"), "spectrogram": ("channel", "freq", "frame"),
            "spectrogram_freqs_hz": ("freq",), "psd": ("channel", "freq"),
            "psd_freqs_hz": ("freq",), "band_power": ("channel", "band"),
            "relative_band_power": ("channel", "band")}
    rate = {"signal": fs, "spectrogram": fs / hop}
    derived = {"n_fft": n_fft_eff, "hop_length": hop, "welch_segment_length": segment,
               "bands_used_hz": {k: list(v) for k, v in bp.bands_hz.items()}}
    return arrays, axes, rate, {"band": bp.names}, derived


_COMPUTE = {"pcg": _pcg, "lung": _lung, "cough": _cough, "speech": _speech, "ecg": _ecg,
            "eeg": _eeg}


def compute_features(signal, *, modality: str, fs: float | None = None, config=None,
                     device=None, cycles_s=None, r_peaks=None, **overrides) -> FeatureSet:
    """Compute a modality's preset features of a recording.

    Parameters
    ----------
    signal : biosig.Signal or np.ndarray
        The recording, ``data [shape=(channels, samples)]`` at ``signal.fs``, or an array
        ``(samples,)`` / ``(channels, samples)`` with ``fs``.
    modality : {"pcg", "lung", "cough", "speech", "ecg", "eeg"}
    fs : float, optional
        Sampling rate of an array ``signal`` (Hz).
    config : PCGConfig, LungConfig, CoughConfig, SpeechConfig, ECGConfig or EEGConfig, optional
        The preset to use; default the modality's defaults.
    device : str or torch.device, optional
        Where the spectrograms are computed (filters run on the CPU).
    cycles_s : array [shape=(n_cycles, 2)], optional
        Lung only: respiratory cycle start and end times in seconds; adds fixed-length crops.
    r_peaks : array of int [shape=(n_beats,)], optional
        ECG only: R-peak sample indices at ``signal.fs`` (before any ``target_fs``); default
        the beat annotations stored with the record (e.g. WFDB ``.atr``).
    **overrides
        Config fields to change, e.g. ``n_mels=128`` or ``band_hz=(20, 500)``.

    Returns
    -------
    FeatureSet

    Raises
    ------
    ConfigError
        Unknown modality or key, wrong type.
    InputError
        Bad ``cycles_s`` or ``r_peaks``.
    """
    from biosig.signal import as_signal
    signal = as_signal(signal, fs)
    cfg = make_config(modality, overrides, base=config)
    if modality != "lung" and cycles_s is not None:
        raise ConfigError(f"cycles_s applies to modality 'lung', not {modality!r}")
    if modality != "ecg" and r_peaks is not None:
        raise ConfigError(f"r_peaks applies to modality 'ecg', not {modality!r}")
    x = np.ascontiguousarray(signal.data, dtype=np.float32)
    fs = signal.fs
    if cfg.target_fs is not None and cfg.target_fs != fs:
        from biosig.dsp import resample
        if r_peaks is not None:
            r_peaks = np.round(np.asarray(r_peaks) * (cfg.target_fs / fs)).astype(np.int64)
        x = resample(x, fs=fs, target_fs=cfg.target_fs)
        fs = float(cfg.target_fs)
    arrays, axes, rate, labels, derived = _COMPUTE[modality](
        x, fs, cfg, device, cycles_s=cycles_s, r_peaks=r_peaks,
        annotations=signal.annotations)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    labels = {"channel": list(signal.channels), **labels}
    config_dict = json.loads(json.dumps({**dataclasses.asdict(cfg), **derived}))  # plain JSON
    return FeatureSet(modality=modality, fs=fs, channels=list(signal.channels), arrays=arrays,
                      axes=axes, rate_hz={k: float(v) for k, v in rate.items()}, labels=labels,
                      config=config_dict, path=signal.path)


# ------------------------------------------------------------------------------------------
# Whole-recording summary numbers

def summarize(features: FeatureSet) -> dict[str, float]:
    """Flatten a :class:`FeatureSet` into named numbers for a features table.

    - arrays with axes ``(channel, <coefficient>, frame)``: mean and standard deviation over
      channels and frames of each coefficient (``log_mel_mean_00``, ``mfcc_std_12`` ...);
    - arrays with axes ``(channel, band)``: one number per channel and band
      (``relative_band_power_Fp1_alpha``);
    - ECG beats: :func:`biosig.ecg.hrv.rr_statistics` (``n_beats``, ``heart_rate_bpm``,
      ``rr_std_s``, ``rr_cv``, ``rmssd_s``, ``pnn50`` ...);
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
        elif ax == ("channel", "band"):
            bands = features.labels.get("band", [str(i) for i in range(arr.shape[1])])
            for c, ch in enumerate(features.channels):
                for b, band in enumerate(bands):
                    out[f"{name}_{ch}_{band}"] = float(arr[c, b])
    if "r_peaks" in features.arrays or "beat_samples" in features.arrays:
        from biosig.ecg.hrv import rr_statistics
        peaks = features.arrays.get("r_peaks", features.arrays.get("beat_samples"))
        out.update(rr_statistics(np.unique(peaks), fs=features.fs))
    if "cycle_times_s" in features.arrays:
        out["n_cycles"] = float(len(features["cycle_times_s"]))
    return out


def extract_features(signal, *, modality: str, fs: float | None = None, config=None,
                     device=None, cycles_s=None, r_peaks=None, **overrides) -> dict[str, float]:
    """Whole-recording feature vector: :func:`summarize` of :func:`compute_features`, plus
    ``duration_s``. Same parameters as :func:`compute_features`."""
    from biosig.signal import as_signal
    signal = as_signal(signal, fs)
    fset = compute_features(signal, modality=modality, config=config, device=device,
                            cycles_s=cycles_s, r_peaks=r_peaks, **overrides)
    return {"duration_s": float(signal.duration_s), **summarize(fset)}
