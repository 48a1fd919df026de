"""``torch.nn.Module`` versions of the spectral functions, for models and GPU pipelines.

Each module holds its window, mel filters and DCT matrix as buffers (so ``.to(device)`` moves
them and they are built once) and its ``forward`` is one call to the tensor kernels in
:mod:`biosig.features._functional` (the same ones the functions call). Input
``(..., n_samples)`` tensors, time last.
"""

from __future__ import annotations

import torch
from torch import nn

from biosig.features._functional import (
    dct_matrix,
    frame_params,
    mel_project,
    mfcc_from_log_mel,
    power_of,
    power_to_db_tensor,
    stft_tensor,
    whisper_log_mel_tensor,
)
from biosig.features._tensor import check_fs, make_window
from biosig.features.spectral import mel_filterbank
from biosig.features.whisper import whisper_mel_filters

__all__ = ["Spectrogram", "MelSpectrogram", "LogMelSpectrogram", "MFCC", "WhisperLogMel"]


class Spectrogram(nn.Module):
    """``|STFT| ** power``; see :func:`biosig.features.spectrogram`."""

    def __init__(self, *, n_fft: int = 2048, hop_length: int | None = None,
                 win_length: int | None = None, window="hann", center: bool = True,
                 pad_mode: str = "constant", power: float = 2.0):
        super().__init__()
        self.n_fft, self.hop_length, win_length = frame_params(n_fft, hop_length, win_length)
        self.center, self.pad_mode, self.power = center, pad_mode, float(power)
        self.register_buffer("window", make_window(window, win_length))

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """``(..., n_samples)`` -> ``(..., 1 + n_fft // 2, n_frames)``."""
        return power_of(stft_tensor(signal, self.window, self.n_fft, self.hop_length, self.center,
                            self.pad_mode), self.power)


class MelSpectrogram(Spectrogram):
    """Mel power spectrogram; see :func:`biosig.features.mel_spectrogram`."""

    def __init__(self, *, fs: float, n_fft: int = 2048, hop_length: int | None = None,
                 win_length: int | None = None, window="hann", center: bool = True,
                 pad_mode: str = "constant", power: float = 2.0, n_mels: int = 128,
                 fmin_hz: float = 0.0, fmax_hz: float | None = None, htk: bool = False,
                 norm: str | None = "slaney"):
        super().__init__(n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                         window=window, center=center, pad_mode=pad_mode, power=power)
        self.fs = check_fs(fs)
        fb = mel_filterbank(fs=fs, n_fft=self.n_fft, n_mels=n_mels, fmin_hz=fmin_hz,
                            fmax_hz=fmax_hz, htk=htk, norm=norm)
        self.register_buffer("mel_basis", torch.as_tensor(fb, dtype=torch.float32))

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """``(..., n_samples)`` -> ``(..., n_mels, n_frames)``."""
        return mel_project(super().forward(signal), self.mel_basis)


class LogMelSpectrogram(MelSpectrogram):
    """Log-mel spectrogram in dB; see :func:`biosig.features.log_mel_spectrogram`."""

    def __init__(self, *, fs: float, ref=1.0, amin: float = 1e-10,
                 top_db: float | None = 80.0, **mel_options):
        super().__init__(fs=fs, **mel_options)
        self.ref, self.amin, self.top_db = ref, float(amin), top_db

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """``(..., n_samples)`` -> ``(..., n_mels, n_frames)``."""
        return power_to_db_tensor(super().forward(signal), self.ref, self.amin, self.top_db)


class MFCC(LogMelSpectrogram):
    """MFCCs; see :func:`biosig.features.mfcc`."""

    def __init__(self, *, fs: float, n_mfcc: int = 20, lifter: float = 0.0,
                 top_db: float | None = 80.0, **mel_options):
        super().__init__(fs=fs, ref=1.0, amin=1e-10, top_db=top_db, **mel_options)
        self.lifter = float(lifter)
        self.register_buffer("dct", dct_matrix(int(n_mfcc), self.mel_basis.shape[0],
                                                dtype=torch.float32, device=None))

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """``(..., n_samples)`` -> ``(..., n_mfcc, n_frames)``."""
        return mfcc_from_log_mel(super().forward(signal), self.dct, self.lifter)


class WhisperLogMel(nn.Module):
    """Whisper's log-mel front-end; see :func:`biosig.features.whisper_log_mel`."""

    def __init__(self, *, n_mels: int = 80, pad_to_30s: bool = True):
        super().__init__()
        self.pad_to_30s = bool(pad_to_30s)
        self.register_buffer("window", torch.hann_window(400, periodic=True))
        self.register_buffer("mel_basis", torch.as_tensor(whisper_mel_filters(n_mels),
                                                          dtype=torch.float32))

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        """16 kHz ``(..., n_samples)`` -> ``(..., n_mels, n_frames)``."""
        return whisper_log_mel_tensor(signal, self.window, self.mel_basis, self.pad_to_30s)
