"""Kaldi-compatible filterbank features for x-vector style speaker and audio models."""

from __future__ import annotations

import torch

from biosig.features._tensor import as_tensor, check_fs, restore

__all__ = ["kaldi_fbank"]


def kaldi_fbank(signal, *, fs: float, num_mel_bins: int = 80, frame_length_ms: float = 25.0,
                frame_shift_ms: float = 10.0, dither: float = 0.0, device=None, **kaldi_options):
    """Kaldi ``compute-fbank-feats`` on every channel and batch item.

    A batched wrapper over ``torchaudio.compliance.kaldi.fbank`` (which takes one channel):
    each ``(n_samples,)`` row of ``signal`` is processed alone and the results are stacked.

    Parameters
    ----------
    signal : array [shape=(..., n_samples)]
        Audio, time last. Kaldi-trained models usually expect 16-bit integer scale: pass
        ``signal * 32768`` for full-scale float audio.
    fs : float > 0
        Sampling rate in Hz (Kaldi's ``sample_frequency``).
    num_mel_bins : int
        Number of triangular mel bins (Kaldi's default is 23; x-vector recipes use 24-80).
    frame_length_ms, frame_shift_ms : float
        Frame length and shift in milliseconds.
    dither : float
        Dithering constant (0 disables it, making the output deterministic).
    **kaldi_options
        Any other keyword of ``torchaudio.compliance.kaldi.fbank`` (``low_freq``,
        ``high_freq``, ``use_energy``, ``window_type``, ``snip_edges`` ...).

    Returns
    -------
    array [shape=(..., num_mel_bins, n_frames)]
        Log mel filterbank energies, time last as everywhere in biosig; ``.transpose(-1, -2)``
        gives Kaldi's ``(n_frames, num_mel_bins)`` layout.

    References
    ----------
    Povey, D. et al. The Kaldi speech recognition toolkit. ASRU 2011.
    """
    import torchaudio.compliance.kaldi as kaldi
    fs = check_fs(fs)
    x, was_numpy = as_tensor(signal, device=device)
    lead = x.shape[:-1]
    rows = x.reshape(-1, x.shape[-1])
    feats = [kaldi.fbank(row[None, :], sample_frequency=fs, num_mel_bins=int(num_mel_bins),
                         frame_length=float(frame_length_ms), frame_shift=float(frame_shift_ms),
                         dither=float(dither), **kaldi_options) for row in rows]
    out = torch.stack(feats).transpose(-1, -2)                   # (rows, bins, frames)
    return restore(out.reshape(*lead, out.shape[-2], out.shape[-1]), was_numpy)
