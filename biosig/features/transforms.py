"""``torch.nn.Module`` versions of the spectral functions, for models and GPU pipelines, and
:class:`FrontEndTransform`, the module a :class:`~biosig.features.FrontEnd` spec builds.

Each module holds its window, mel filters and DCT matrix as buffers (so ``.to(device)`` moves
them and they are built once) and its ``forward`` is one call to the tensor kernels in
:mod:`biosig.features._functional` (the same ones the functions call). Input
``(..., n_samples)`` tensors, time last.
"""

from __future__ import annotations

import math

import numpy as np
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
from biosig.features.kaldi import kaldi_fbank
from biosig.features.spectral import fft_frequencies, mel_filterbank, power_to_db
from biosig.features.whisper import whisper_mel_filters

__all__ = ["Spectrogram", "MelSpectrogram", "LogMelSpectrogram", "MFCC", "WhisperLogMel",
           "FrontEndTransform"]


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


class FrontEndTransform(nn.Module):
    """Waveforms ``(batch, n_samples)`` -> features ``(batch, n_features, n_frames)``, as a
    :class:`~biosig.features.FrontEnd` spec says, at rate ``fs``.

    ``log_mel`` / ``mfcc`` (mel filters as librosa), ``log_spectrogram`` (power in dB, bins
    from ``fmin_hz`` to ``fmax_hz``), ``kaldi_fbank`` (torchaudio's Kaldi filterbanks) and
    ``frames`` (the raw signal cut into frames, for sequence models), ``whisper_log_mel``
    (the speech preset: :class:`WhisperLogMel`); :meth:`raw` gives them,
    :meth:`forward` normalises them as ``spec.normalize`` says. Built by
    :meth:`~biosig.features.FrontEnd.transform_module`.
    """

    def __init__(self, spec, *, fs: float):  # spec: biosig.features.FrontEnd
        super().__init__()
        self.spec, self.kind, self.fs = spec, spec.kind, float(fs)
        self.normalization = spec.normalize
        lengths = spec.frames(self.fs)
        self.win, self.hop, self.n_fft = lengths.win_length, lengths.hop_length, lengths.n_fft
        fmin, fmax = spec.mel_band(self.fs)
        mel = dict(fs=self.fs, n_fft=self.n_fft, win_length=self.win, hop_length=self.hop,
                   n_mels=spec.n_mels, fmin_hz=fmin, fmax_hz=fmax)
        self.transform = None
        if self.kind == "log_mel":
            self.transform = LogMelSpectrogram(top_db=spec.top_db, **mel)
            self.n_features = spec.n_mels
        elif self.kind == "mfcc":
            self.transform = MFCC(n_mfcc=spec.n_mfcc, top_db=spec.top_db, **mel)
            self.n_features = spec.n_mfcc
        elif self.kind == "log_spectrogram":
            self.transform = Spectrogram(n_fft=self.n_fft, win_length=self.win,
                                         hop_length=self.hop)
            self.n_bins = int(math.floor(fmax * self.n_fft / self.fs)) + 1
            self.first_bin = int(math.ceil(fmin * self.n_fft / self.fs))
            self.n_features = self.n_bins - self.first_bin
        elif self.kind == "kaldi_fbank":
            self.n_features = spec.n_mels
        elif self.kind == "whisper_log_mel":        # the speech preset: 16 kHz, 400 / 160
            self.transform = WhisperLogMel(n_mels=spec.n_mels, pad_to_30s=spec.pad_to_30s)
            self.n_features = spec.n_mels
        else:                                   # "frames" (the schema allows no other)
            self.n_features = self.win

    @property
    def frames_per_s(self) -> float:
        """Feature frames per second of signal."""
        return self.fs / self.hop

    @property
    def frequencies_hz(self) -> np.ndarray | None:
        """Centre frequency of each ``log_spectrogram`` bin (``None`` for other kinds)."""
        if self.kind != "log_spectrogram":
            return None
        return fft_frequencies(fs=self.fs, n_fft=self.n_fft)[self.first_bin:self.n_bins]

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``(batch, n_samples)`` float32 -> ``(batch, n_features, n_frames)`` float32:
        :meth:`raw` then :meth:`normalize`."""
        return self.normalize(self.raw(waves))

    def raw(self, waves: torch.Tensor) -> torch.Tensor:
        """The features before normalisation (what :func:`compute_features` returns and
        :mod:`biosig.train.cache` keeps on disk)."""
        if waves.ndim != 2:
            raise ValueError(f"waves has shape {tuple(waves.shape)}, expected "
                             f"(batch, n_samples)")
        x = waves.float()
        if self.kind in ("log_mel", "mfcc", "whisper_log_mel"):
            return self.transform(x)
        if self.kind == "log_spectrogram":
            return power_to_db(self.transform(x)[:, self.first_bin:self.n_bins], ref=1.0,
                               amin=1e-10, top_db=self.spec.top_db)
        if self.kind == "kaldi_fbank":
            fmax = self.spec.fmax_hz or 0.0
            return kaldi_fbank(x * 32768.0, fs=self.fs, num_mel_bins=self.spec.n_mels,
                               frame_length_ms=1000.0 * self.win / self.fs,
                               frame_shift_ms=1000.0 * self.hop / self.fs,
                               low_freq=self.spec.fmin_hz, high_freq=fmax if fmax else 0.0)
        return x.unfold(-1, self.win, self.hop).transpose(1, 2)     # (batch, win, n_frames)

    def normalize(self, f: torch.Tensor) -> torch.Tensor:
        """``normalize`` of ``(batch, n_features, n_frames)``: ``instance`` (each item to zero
        mean, unit variance), ``cmvn`` (each bin over time) or ``none``."""
        if self.normalization == "instance":
            f = (f - f.mean(dim=(1, 2), keepdim=True)) / (f.std(dim=(1, 2), keepdim=True)
                                                          + 1e-5)
        elif self.normalization == "cmvn":
            f = (f - f.mean(dim=2, keepdim=True)) / (f.std(dim=2, keepdim=True) + 1e-5)
        return f

    def n_frames(self, n_samples: int) -> int:
        """Frames the front-end gives for ``n_samples`` samples."""
        with torch.no_grad():
            return int(self.forward(torch.zeros(1, n_samples,
                                                device=self.device)).shape[-1])

    @property
    def device(self) -> torch.device:
        """Where the front-end's buffers live (CPU when it has none)."""
        for b in self.buffers():
            return b.device
        return torch.device("cpu")
