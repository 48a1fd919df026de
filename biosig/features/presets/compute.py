"""Per-modality computation of the presets and :func:`compute_features`, the one call for all."""

from __future__ import annotations

import json

import numpy as np

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

__all__ = ["compute_features"]


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
    low, high = band_hz                       # 0 <= low < high: checked by the config
    if high >= 0.95 * fs / 2:
        return dsp.highpass(x, fs=fs, cutoff_hz=low, order=order) if low > 0 else x
    if low <= 0:
        return dsp.lowpass(x, fs=fs, cutoff_hz=high, order=order)
    return dsp.bandpass(x, fs=fs, band_hz=(low, high), order=order)


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
    n_fft, hop = _frames(cfg.window_s, cfg.hop_s, fs, "lung")
    x = _band_limit(x, fs, cfg.band_hz, cfg.filter_order)
    mel_kw = dict(fs=fs, n_fft=n_fft, hop=hop, n_mels=cfg.n_mels, fmin_hz=cfg.fmin_hz,
                  fmax_hz=cfg.fmax_hz, top_db=cfg.top_db, device=device)
    arrays = {"signal": x, "log_mel": _log_mel(x, **mel_kw)}
    axes = {"signal": ("channel", "time"), "log_mel": ("channel", "mel", "frame")}
    rate = {"signal": fs, "log_mel": fs / hop}
    if cycles_s is not None:
        cyc = _cycles_array(cycles_s, x.shape[-1] / fs)
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
    if cfg.powerline_hz is not None and cfg.powerline_hz < fs / 2:
        x = dsp.notch(x, fs=fs, powerline_hz=cfg.powerline_hz, harmonics=True)
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
        Unknown modality or key, wrong type, a value out of range (see :func:`make_config`),
        or frames shorter than 4 samples at the recording's rate.
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
    config_dict = json.loads(json.dumps({**cfg.model_dump(mode="json"), **derived}))  # plain JSON
    return FeatureSet(modality=modality, fs=fs, channels=list(signal.channels), arrays=arrays,
                      axes=axes, rate_hz={k: float(v) for k, v in rate.items()}, labels=labels,
                      config=config_dict, path=signal.path)

