"""The Whisper log-mel front-end (OpenAI Whisper, Hugging Face ``WhisperFeatureExtractor``).

:func:`whisper_log_mel` is the one function the Whisper fine-tuning recipe, the dictation module
and the ``speech`` feature preset share.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from biosig.errors import ConfigError
from biosig.features._functional import whisper_log_mel_tensor
from biosig.features._tensor import as_tensor, check_fs, restore
from biosig.features.spectral import mel_filterbank
from biosig.whisper_audio import (
    WHISPER_CHUNK_S,
    WHISPER_FS,
    WHISPER_HOP_LENGTH,
    WHISPER_N_FFT,
    WHISPER_N_FRAMES,
    WHISPER_N_SAMPLES,
)

__all__ = ["whisper_log_mel", "whisper_mel_filters", "pad_or_trim", "WHISPER_FS", "WHISPER_N_FFT",
           "WHISPER_HOP_LENGTH", "WHISPER_CHUNK_S", "WHISPER_N_SAMPLES", "WHISPER_N_FRAMES"]


def whisper_mel_filters(n_mels: int = 80) -> np.ndarray:
    """Whisper's mel filters ``[shape=(n_mels, 201), dtype=float64]``.

    ``librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels)`` (Slaney scale and
    normalisation) through :func:`~biosig.features.mel_filterbank`: Whisper's
    ``mel_filters.npz`` (stored in float32) and ``WhisperFeatureExtractor.mel_filters.T``.
    """
    return _whisper_filters(n_mels).copy()


@functools.lru_cache(maxsize=2)
def _whisper_filters(n_mels: int) -> np.ndarray:
    if n_mels not in (80, 128):
        raise ValueError(f"n_mels is {n_mels!r}, expected 80 (Whisper tiny..large-v2) or 128 "
                         f"(large-v3)")
    return mel_filterbank(fs=WHISPER_FS, n_fft=WHISPER_N_FFT, n_mels=n_mels)


def pad_or_trim(signal, n_samples: int = WHISPER_N_SAMPLES):
    """Zero-pad or cut the last axis to ``n_samples`` (numpy or tensor, same kind back)."""
    x, was_numpy = as_tensor(signal)
    n = x.shape[-1]
    if n > n_samples:
        x = x[..., :n_samples]
    elif n < n_samples:
        x = torch.nn.functional.pad(x, (0, n_samples - n))
    return restore(x, was_numpy)


def whisper_log_mel(signal, *, fs: float, n_mels: int = 80, pad_to_30s: bool = True,
                    device=None):
    """Whisper's log-mel spectrogram of 16 kHz audio.

    ``n_fft=400`` (25 ms periodic Hann), ``hop_length=160`` (10 ms), centred frames with reflect
    padding, power spectrum without the last frame, Slaney mel filters, ``log10(max(mel,
    1e-10))``, floored at 8 below each item's maximum, then ``(x + 4) / 4``.

    Parameters
    ----------
    signal : array [shape=(..., n_samples)]
        Audio at 16 kHz in full scale [-1, 1], time last; any leading batch axes.
    fs : float
        Sampling rate in Hz; must be 16000 (resample first, e.g. ``biosig.load(path,
        target_fs=16000)``).
    n_mels : {80, 128}
        80 for Whisper tiny to large-v2, 128 for large-v3.
    pad_to_30s : bool
        Zero-pad or cut the audio to 30 s first (480000 samples) so the result has exactly
        3000 frames, as ``WhisperFeatureExtractor`` does by default; otherwise
        ``n_samples // 160`` frames.
    device : str or torch.device, optional
        Where to compute.

    Returns
    -------
    array [shape=(..., n_mels, n_frames), dtype=float32 (float64 for float64 input)]

    References
    ----------
    Radford, A. et al. Robust speech recognition via large-scale weak supervision. ICML 2023
    (``whisper/audio.py: log_mel_spectrogram``).
    """
    if check_fs(fs) != WHISPER_FS:
        raise ConfigError(f"fs is {float(fs):g} Hz, expected {WHISPER_FS} Hz for Whisper; "
                          f"resample first (biosig.load(path, target_fs=16000) or "
                          f"biosig.dsp.resample)")
    x, was_numpy = as_tensor(signal, device=device)
    if not pad_to_30s and x.shape[-1] <= WHISPER_N_FFT // 2:
        raise ValueError(f"signal has {x.shape[-1]} samples, expected more than "
                         f"{WHISPER_N_FFT // 2} (or pass pad_to_30s=True)")
    window = torch.hann_window(WHISPER_N_FFT, periodic=True, dtype=x.dtype, device=x.device)
    fb = torch.tensor(_whisper_filters(n_mels), dtype=x.dtype, device=x.device)
    return restore(whisper_log_mel_tensor(x, window, fb, bool(pad_to_30s)), was_numpy)
