"""Spectrograms and features in torch, and feature presets per modality.

Functions (numpy or torch in, the same kind out; time last, ``fs`` explicit):

- :func:`stft`, :func:`spectrogram`, :func:`mel_spectrogram`, :func:`log_mel_spectrogram`,
  :func:`power_to_db`, :func:`mfcc`, :func:`deltas`, :func:`mel_filterbank` -- librosa's
  conventions (see :mod:`biosig.features.spectral`);
- :func:`welch`, :func:`band_powers` -- Welch PSD (as scipy) and (relative) band powers;
- :func:`whisper_log_mel` -- Whisper's 80/128-bin log-mel front-end;
- :func:`kaldi_fbank` -- Kaldi filterbanks, batched over channels;
- :func:`compute_features` / :func:`extract_features` -- per-modality presets (PCG, lung, cough,
  speech, ECG, EEG) returning a :class:`FeatureSet` / a flat dict of summary numbers.

Modules with cached buffers live in :mod:`biosig.features.transforms`.

The presets sit a layer above the rest of :mod:`biosig.features` (the ECG preset detects beats
with :mod:`biosig.ecg`), so their names here are loaded on first use: importing
:mod:`biosig.features.spectral` never imports :mod:`biosig.ecg`.
"""

import importlib

from biosig.features.kaldi import kaldi_fbank
from biosig.features.spectral import (
    EEG_BANDS_HZ,
    BandPowers,
    Spectrum,
    band_powers,
    deltas,
    fft_frequencies,
    frame_times,
    hz_to_mel,
    log_mel_spectrogram,
    mel_filterbank,
    mel_frequencies,
    mel_spectrogram,
    mel_to_hz,
    mfcc,
    power_to_db,
    spectrogram,
    stft,
    welch,
)
from biosig.features.whisper import pad_or_trim, whisper_log_mel, whisper_mel_filters

__all__ = [
    "stft", "spectrogram", "mel_spectrogram", "log_mel_spectrogram", "power_to_db", "mfcc",
    "deltas", "mel_filterbank", "mel_frequencies", "hz_to_mel", "mel_to_hz", "fft_frequencies",
    "frame_times", "welch", "Spectrum", "band_powers", "BandPowers", "EEG_BANDS_HZ",
    "whisper_log_mel", "whisper_mel_filters", "pad_or_trim", "kaldi_fbank",
    "compute_features", "extract_features", "summarize", "FeatureSet", "load_feature_set",
    "make_config", "MODALITIES", "PCGConfig", "LungConfig", "CoughConfig",
    "SpeechConfig", "ECGConfig", "EEGConfig",
]

_PRESET_NAMES = ("compute_features", "extract_features", "summarize", "FeatureSet",
                 "load_feature_set", "make_config", "MODALITIES", "PCGConfig", "LungConfig",
                 "CoughConfig", "SpeechConfig", "ECGConfig", "EEGConfig")


def __getattr__(name: str):
    if name in _PRESET_NAMES:
        value = getattr(importlib.import_module("biosig.features.presets"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'biosig.features' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PRESET_NAMES))
