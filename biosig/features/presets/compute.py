"""Per-modality computation of the presets and :func:`compute_features`, the one call for all."""

from __future__ import annotations

import json

import numpy as np
import torch

from biosig import dsp
from biosig.ecg.evaluation import BEAT_LABELS
from biosig.ecg.peaks import ecg_peaks
from biosig.errors import ConfigError, InputError
from biosig.features.presets.config import (
    CoughConfig,
    ECGConfig,
    EEGConfig,
    LungConfig,
    PCGConfig,
    SpeechConfig,
    make_config,
)
from biosig.features.presets.featureset import FeatureSet
from biosig.features.spectral import band_powers, deltas, welch
from biosig.features.temporal import time_features
from biosig.signal import as_signal, seconds_to_samples

__all__ = ["compute_features"]


#: The name and axis of the array that a front-end's transform gives, by ``kind``.
_KIND_ARRAY = {"log_mel": ("log_mel", "mel"), "mfcc": ("mfcc", "mfcc"),
               "log_spectrogram": ("spectrogram", "freq"), "kaldi_fbank": ("fbank", "mel"),
               "frames": ("frames", "sample"), "whisper_log_mel": ("log_mel", "mel")}


def _transform(cfg, x: np.ndarray, fs: float, device) -> tuple[np.ndarray, object]:
    """The front-end's raw features of ``x [shape=(..., n_samples)]`` (already prepared):
    ``(..., n_features, n_frames)``, and the transform module (the one training uses)."""
    module = cfg.transform_module(fs)
    if device is not None:
        module = module.to(device)
    lead = x.shape[:-1]
    flat = torch.from_numpy(np.ascontiguousarray(x.reshape(-1, x.shape[-1]), dtype=np.float32))
    with torch.no_grad():
        f = module.raw(flat.to(module.device)).cpu().numpy()
    return f.reshape(*lead, *f.shape[1:]), module


def _primary(cfg, x, fs, device):
    """The front-end's array of a ``(channel, time)`` signal, named by its kind: ``(arrays,
    axes, rate_hz, derived frame lengths, module)``."""
    f, module = _transform(cfg, x, fs, device)
    name, axis = _KIND_ARRAY[cfg.kind]
    arrays, axes = {name: f}, {name: ("channel", axis, "frame")}
    if cfg.kind == "log_spectrogram":
        arrays[f"{name}_freqs_hz"] = module.frequencies_hz
        axes[f"{name}_freqs_hz"] = ("freq",)
    derived = {"n_fft": module.n_fft, "win_length": module.win, "hop_length": module.hop}
    return arrays, axes, {name: module.frames_per_s}, derived, module


def _pcg(x, fs, cfg: PCGConfig, device, **_):
    arrays, axes, rate, derived, _ = _primary(cfg, x, fs, device)
    env = dsp.envelope_homomorphic(x, fs=fs, cutoff_hz=cfg.envelope_cutoff_hz)
    env_fs = fs
    if cfg.envelope_fs is not None and cfg.envelope_fs != fs:
        env = dsp.resample(env, fs=fs, target_fs=cfg.envelope_fs)
        env_fs = float(cfg.envelope_fs)
    arrays = {"signal": x, "envelope": env, **arrays}
    axes = {"signal": ("channel", "time"), "envelope": ("channel", "time"), **axes}
    rate = {"signal": fs, "envelope": env_fs, **rate}
    labels = {}
    if cfg.heart_cycles:
        from biosig.pcg import pcg_cycle_features, pcg_segment  # numba kernels: when asked
        try:
            seg = pcg_segment(x[0], fs=fs)
        except InputError:                    # too short or silent: no cycle
            seg = np.zeros((0, 3))
        cyc = pcg_cycle_features(x[0], seg, fs=fs)
        arrays["heart_cycle_features"] = cyc.values
        axes["heart_cycle_features"] = ("cycle", "feature")
        labels["feature"] = list(cyc.names)
    return arrays, axes, rate, labels, derived


def _cycles_array(cycles_s, duration_s: float) -> np.ndarray:
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
    arrays, axes, rate, derived, module = _primary(cfg, x, fs, device)
    arrays = {"signal": x, **arrays}
    axes = {"signal": ("channel", "time"), **axes}
    rate = {"signal": fs, **rate}
    if cycles_s is not None:
        name, axis = _KIND_ARRAY[cfg.kind]
        hop = module.hop
        cyc = _cycles_array(cycles_s, x.shape[-1] / fs)
        length = seconds_to_samples(cfg.cycle_duration_s, fs=fs)
        crops = np.zeros((len(cyc), x.shape[0], length), dtype=x.dtype)
        n_valid = np.zeros(len(cyc), dtype=np.int64)
        for i, (start, end) in enumerate(cyc):
            a = seconds_to_samples(start, fs=fs)
            b = min(seconds_to_samples(end, fs=fs), x.shape[-1], a + length)
            crops[i, :, :b - a] = x[:, a:b]
            n_valid[i] = 1 + (b - a) // hop
        empty = np.zeros((0, x.shape[0], module.n_features, 1 + length // hop),
                         dtype=np.float32)
        arrays[f"cycle_{name}"] = _transform(cfg, crops, fs, device)[0] if len(cyc) else empty
        arrays["cycle_times_s"] = cyc
        arrays["cycle_n_frames"] = n_valid
        axes.update({f"cycle_{name}": ("cycle", "channel", axis, "frame"),
                     "cycle_times_s": ("cycle", "bound"), "cycle_n_frames": ("cycle",)})
        rate[f"cycle_{name}"] = module.frames_per_s
    return arrays, axes, rate, {}, derived


def _cough(x, fs, cfg: CoughConfig, device, **_):
    log_mel, module = _transform(cfg.replace(kind="log_mel"), x, fs, device)
    cc = _transform(cfg.replace(kind="mfcc"), x, fs, device)[0]
    arrays = {"log_mel": log_mel, "mfcc": cc, "mfcc_delta": deltas(cc, width=cfg.delta_width),
              "mfcc_delta2": deltas(cc, width=cfg.delta_width, order=2)}
    axes = {"log_mel": ("channel", "mel", "frame"), "mfcc": ("channel", "mfcc", "frame"),
            "mfcc_delta": ("channel", "mfcc", "frame"),
            "mfcc_delta2": ("channel", "mfcc", "frame")}
    rate = {k: module.frames_per_s for k in arrays}
    return arrays, axes, rate, {}, {"n_fft": module.n_fft, "win_length": module.win,
                                    "hop_length": module.hop}


def _speech(x, fs, cfg: SpeechConfig, device, **_):
    arrays, axes, rate, derived, _ = _primary(cfg, x, fs, device)
    return arrays, axes, rate, {}, derived


def _ecg(x, fs, cfg: ECGConfig, device, r_peaks=None, annotations=None, **_):
    source = "r_peaks"
    if r_peaks is None and cfg.beats == "annotations":
        if annotations is None or not len(annotations):
            raise InputError(None, "ecg.beats is 'annotations' but the recording has no "
                                   "annotations", what="annotations")
        is_beat = np.array([lab in BEAT_LABELS for lab in annotations.labels], dtype=bool)
        r_peaks = annotations.select(is_beat).samples(fs)
        source = annotations.source or "annotations"
    elif r_peaks is None:
        r_peaks = (ecg_peaks(x[0], fs=fs).samples
                   if x.shape[-1] >= seconds_to_samples(2.0, fs=fs)
                   else np.zeros(0, dtype=np.int64))
        source = "ecg_peaks"
    pre, post = (seconds_to_samples(v, fs=fs) for v in cfg.beat_window_s)
    if post <= 0:                             # after_s > 0 but under half a sample
        raise ConfigError(f"ecg.beat_window_s is {cfg.beat_window_s}, expected after_s of at "
                          f"least one sample at fs={fs:g} Hz")
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
    spec, spec_axes, spec_rate, derived, _ = _primary(cfg, x, fs, device)
    arrays = {"signal": x, "beats": beats, "beat_samples": peaks, "r_peaks": all_peaks,
              **spec}
    axes = {"signal": ("channel", "time"), "beats": ("beat", "channel", "time"),
            "beat_samples": ("beat",), "r_peaks": ("beat",), **spec_axes}
    rate = {"signal": fs, "beats": fs, **spec_rate}
    derived = {**derived, "beat_source": source, "beat_offset_samples": pre}
    return arrays, axes, rate, {}, derived


def _eeg(x, fs, cfg: EEGConfig, device, **_):
    spec, spec_axes, spec_rate, derived, _ = _primary(cfg, x, fs, device)
    fmax = cfg.mel_band(fs)[1]
    segment = min(seconds_to_samples(cfg.welch_segment_s, fs=fs), x.shape[-1])
    psd = welch(x, fs=fs, segment_length=segment, device=device)
    keep = psd.freqs_hz <= fmax
    bands = {k: v for k, v in cfg.bands_hz.items() if v[0] < fs / 2}
    bp = band_powers(x, fs=fs, bands_hz=bands, segment_length=segment, device=device)
    arrays = {"signal": x, **spec,
              "psd": psd.psd[..., keep], "psd_freqs_hz": psd.freqs_hz[keep],
              "band_power": bp.absolute, "relative_band_power": bp.relative}
    axes = {"signal": ("channel", "time"), **spec_axes, "psd": ("channel", "freq"),
            "psd_freqs_hz": ("freq",), "band_power": ("channel", "band"),
            "relative_band_power": ("channel", "band")}
    rate = {"signal": fs, **spec_rate}
    labels = {"band": bp.names}
    if cfg.time_features:
        arrays["time_features"], labels["statistic"] = time_features(
            x, fs=fs, levels=cfg.wavelet_levels)
        axes["time_features"] = ("channel", "statistic")
    derived = {**derived, "welch_segment_length": segment,
               "bands_used_hz": {k: list(v) for k, v in bp.bands_hz.items()}}
    return arrays, axes, rate, labels, derived


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
        The preset to use (a :class:`~biosig.features.frontend.FrontEnd`);
        default the modality's defaults. The recording goes through its
        :meth:`~biosig.features.frontend.FrontEnd.prepare` (resample, notch, band-pass) and its
        transform: the array named by its ``kind`` (``log_mel``, ``spectrogram`` ...) is what
        training computes for the same spec, before normalisation.
    device : str or torch.device, optional
        Where the spectrograms are computed (filters run on the CPU).
    cycles_s : array [shape=(n_cycles, 2)], optional
        Lung only: respiratory cycle start and end times in seconds; adds fixed-length crops.
    r_peaks : array of int [shape=(n_beats,)], optional
        ECG only: R-peak sample indices at ``signal.fs`` (before any ``target_fs``); default
        the beat annotations stored with the record (e.g. WFDB ``.atr``).
    **overrides
        Config fields to change, e.g. ``n_mels=128``, ``frame_s=0.032`` or
        ``band_hz=(20, 500)`` (``band_hz=None``: no band-pass).

    Returns
    -------
    FeatureSet

    Raises
    ------
    ConfigError
        Unknown modality or key, wrong type, a value out of range (see :func:`make_config`),
        or frames shorter than 4 samples at the recording's rate.
    InputError
        Bad ``cycles_s`` or ``r_peaks``.
    """
    signal = as_signal(signal, fs)
    cfg = make_config(modality, overrides, base=config)
    if modality != "lung" and cycles_s is not None:
        raise ConfigError(f"cycles_s applies to modality 'lung', not {modality!r}")
    if modality != "ecg" and r_peaks is not None:
        raise ConfigError(f"r_peaks applies to modality 'ecg', not {modality!r}")
    prepared = cfg.prepare(signal)             # the front-end: resample, notch, band-pass
    if r_peaks is not None and prepared.fs != signal.fs:
        r_peaks = seconds_to_samples(np.asarray(r_peaks) / signal.fs, fs=prepared.fs)
    x, fs = prepared.data, prepared.fs
    arrays, axes, rate, labels, derived = _COMPUTE[modality](
        x, fs, cfg, device, cycles_s=cycles_s, r_peaks=r_peaks,
        annotations=signal.annotations)
    arrays = {k: np.asarray(v) for k, v in arrays.items()}
    labels = {"channel": list(signal.channels), **labels}
    config_dict = json.loads(json.dumps({**cfg.model_dump(mode="json"), **derived}))  # plain JSON
    return FeatureSet(modality=modality, fs=fs, channels=list(signal.channels), arrays=arrays,
                      axes=axes, rate_hz={k: float(v) for k, v in rate.items()}, labels=labels,
                      config=config_dict, path=signal.path)

