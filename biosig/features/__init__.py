"""Spectrograms and features in torch, and feature presets per modality.

Functions (numpy or torch in, the same kind out; time last, ``fs`` explicit):

- :func:`stft`, :func:`spectrogram`, :func:`mel_spectrogram`, :func:`log_mel_spectrogram`,
  :func:`power_to_db`, :func:`mfcc`, :func:`deltas`, :func:`mel_filterbank` -- librosa's
  conventions (see :mod:`biosig.features.spectral`);
- :func:`welch`, :func:`band_powers` -- Welch PSD (as scipy) and (relative) band powers;
- :func:`whisper_log_mel` -- Whisper's 80/128-bin log-mel front-end;
- :func:`kaldi_fbank` -- Kaldi filterbanks, batched over channels;
- :class:`FrontEnd` -- how a modality becomes features (rate, band-pass, frames, transform),
  one object shared by :func:`compute_features`, training, ``biosig score model`` and the
  feature cache (:mod:`biosig.features.frontend`); :func:`frame_lengths` gives an STFT
  frame's samples;
- :func:`compute_features` / :func:`extract_features` -- per-modality presets (PCG, lung, cough,
  speech, ECG, EEG) returning a :class:`FeatureSet` / a flat dict of summary numbers.

Modules with cached buffers live in :mod:`biosig.features.transforms`.

Every name is loaded on first use (``lazy_loader``): validating a front-end spec
(:mod:`biosig.features.frontend`, e.g. a recipe's config) does not import torch, and the
presets' computation (:mod:`biosig.features.presets`, a layer above: the ECG preset detects
beats with :mod:`biosig.ecg`) is imported only when used.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(__name__, submod_attrs={
    "spectral": ["stft", "spectrogram", "mel_spectrogram", "log_mel_spectrogram",
                 "power_to_db", "mfcc", "deltas", "mel_filterbank", "mel_frequencies",
                 "hz_to_mel", "mel_to_hz", "fft_frequencies", "frame_times", "welch",
                 "Spectrum", "band_powers", "BandPowers", "EEG_BANDS_HZ"],
    "whisper": ["whisper_log_mel", "whisper_mel_filters", "pad_or_trim"],
    "kaldi": ["kaldi_fbank"],
    "frontend": ["FrontEnd", "FrameLengths", "frame_lengths", "FRONTEND_PRESETS"],
    "transforms": ["FrontEndTransform"],
    "presets": ["compute_features", "extract_features", "summarize", "FeatureSet",
                "load_feature_set", "make_config", "MODALITIES", "PCGConfig", "LungConfig",
                "CoughConfig", "SpeechConfig", "ECGConfig", "EEGConfig"],
})
