"""The tensor kernels behind :mod:`biosig.features` (as ``torchaudio.functional`` is behind its
transforms): STFT, power, mel projection, decibels, DCT/MFCC and Whisper's log-mel on tensors
``(..., n_samples)`` that the public functions have already validated. Package-internal: the
public functions (:mod:`~biosig.features.spectral`, :mod:`~biosig.features.whisper`) and the
``nn.Module`` transforms (:mod:`~biosig.features.transforms`) call these."""

from __future__ import annotations

import numpy as np
import torch

from biosig.features._tensor import check_positive_int
from biosig.whisper_audio import WHISPER_HOP_LENGTH, WHISPER_N_FFT, WHISPER_N_SAMPLES

__all__ = ["frame_params", "stft_tensor", "power_of", "mel_project", "power_to_db_tensor",
           "dct_matrix", "mfcc_from_log_mel", "whisper_log_mel_tensor"]


def frame_params(n_fft, hop_length, win_length):
    n_fft = check_positive_int(n_fft, name="n_fft")
    win_length = n_fft if win_length is None else check_positive_int(win_length,
                                                                      name="win_length")
    if win_length > n_fft:
        raise ValueError(f"win_length is {win_length}, expected at most n_fft={n_fft}")
    hop_length = win_length // 4 if hop_length is None else check_positive_int(
        hop_length, name="hop_length")
    return n_fft, max(1, hop_length), win_length


def stft_tensor(x: torch.Tensor, window: torch.Tensor, n_fft: int, hop_length: int, center: bool,
          pad_mode: str) -> torch.Tensor:
    """Complex STFT of ``x (..., n)`` -> ``(..., n_fft // 2 + 1, n_frames)``."""
    if pad_mode not in ("constant", "reflect"):
        raise ValueError(f"pad_mode is {pad_mode!r}, expected 'constant' or 'reflect'")
    n = x.shape[-1]
    if center and pad_mode == "reflect" and n <= n_fft // 2:
        raise ValueError(f"signal has {n} samples, too short for pad_mode='reflect' with "
                         f"n_fft={n_fft} (needs more than {n_fft // 2}); use pad_mode='constant'")
    if not center and n < n_fft:
        raise ValueError(f"signal has {n} samples, fewer than n_fft={n_fft} with center=False")
    lead = x.shape[:-1]
    flat = x.reshape(-1, n)
    spec = torch.stft(flat, n_fft=n_fft, hop_length=hop_length, win_length=window.shape[0],
                      window=window, center=center, pad_mode=pad_mode, normalized=False,
                      onesided=True, return_complex=True)
    return spec.reshape(*lead, spec.shape[-2], spec.shape[-1])


def power_of(spec: torch.Tensor, power: float) -> torch.Tensor:
    if power == 2.0:  # |z|^2 = re^2 + im^2: no square root (|z| costs more than the STFT)
        return spec.real.square() + spec.imag.square()
    mag = spec.abs()
    return mag if power == 1.0 else mag.pow(power)


def mel_project(power_spec: torch.Tensor, mel_basis: torch.Tensor) -> torch.Tensor:
    """``mel_basis (n_mels, n_freqs) @ power_spec (..., n_freqs, n_frames)``."""
    return torch.matmul(mel_basis, power_spec)


def power_to_db_tensor(s: torch.Tensor, ref, amin: float, top_db: float | None) -> torch.Tensor:
    log_spec = 10.0 * torch.log10(torch.clamp(s, min=amin))
    if isinstance(ref, str):
        if ref != "max":
            raise ValueError(f"ref is {ref!r}, expected a positive number or 'max'")
        peak = torch.amax(s, dim=(-2, -1), keepdim=True) if s.ndim >= 2 else s.max()
        log_spec = log_spec - 10.0 * torch.log10(torch.clamp(peak, min=amin))
    else:
        if not float(ref) > 0:
            raise ValueError(f"ref is {ref!r}, expected a positive number or 'max'")
        log_spec = log_spec - 10.0 * np.log10(max(amin, float(ref)))
    if top_db is not None:
        if top_db < 0:
            raise ValueError(f"top_db is {top_db!r}, expected a non-negative number or None")
        peak_db = (torch.amax(log_spec, dim=(-2, -1), keepdim=True) if log_spec.ndim >= 2
                   else log_spec.max())
        log_spec = torch.maximum(log_spec, peak_db - top_db)
    return log_spec


def dct_matrix(n_mfcc: int, n_mels: int, *, dtype, device) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``(n_mels, n_mfcc)``, built in float64.

    The layout of ``torchaudio.functional.create_dct(n_mfcc, n_mels, norm="ortho")``, which is
    computed in float32 and would limit float64 results to about 1e-7 relative accuracy.
    """
    if n_mfcc > n_mels:
        raise ValueError(f"n_mfcc is {n_mfcc}, expected at most n_mels={n_mels}")
    n = np.arange(n_mels, dtype=np.float64)
    k = np.arange(n_mfcc, dtype=np.float64)
    dct = np.cos(np.pi / n_mels * (n[:, None] + 0.5) * k[None, :])
    dct[:, 0] *= np.sqrt(1.0 / n_mels)
    dct[:, 1:] *= np.sqrt(2.0 / n_mels)
    return torch.as_tensor(dct, dtype=dtype, device=device)


def mfcc_from_log_mel(log_mel: torch.Tensor, dct: torch.Tensor, lifter: float) -> torch.Tensor:
    out = torch.matmul(dct.transpose(0, 1), log_mel)
    if lifter > 0:
        n = torch.arange(1, out.shape[-2] + 1, dtype=out.dtype, device=out.device)
        out = out * (1 + (lifter / 2) * torch.sin(np.pi * n / lifter))[:, None]
    return out


def whisper_log_mel_tensor(x: torch.Tensor, window: torch.Tensor, mel_basis: torch.Tensor,
                     pad_to_30s: bool) -> torch.Tensor:
    if pad_to_30s:
        n = x.shape[-1]
        if n > WHISPER_N_SAMPLES:
            x = x[..., :WHISPER_N_SAMPLES]
        elif n < WHISPER_N_SAMPLES:
            x = torch.nn.functional.pad(x, (0, WHISPER_N_SAMPLES - n))
    spec = stft_tensor(x, window, WHISPER_N_FFT, WHISPER_HOP_LENGTH, True, "reflect")
    power = spec[..., :-1].abs().square()                       # drop the last frame
    log_spec = torch.clamp(torch.matmul(mel_basis, power), min=1e-10).log10()
    peak = torch.amax(log_spec, dim=(-2, -1), keepdim=True)
    log_spec = torch.maximum(log_spec, peak - 8.0)
    return (log_spec + 4.0) / 4.0
