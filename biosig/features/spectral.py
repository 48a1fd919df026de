"""Spectrograms and cepstra in torch: STFT, power, mel, log-mel, MFCC, deltas, Welch, band powers.

Every function takes a signal of shape ``(..., n_samples)`` as a numpy array or a torch tensor
(any leading batch/channel axes, time last) and returns the same kind: numpy in, numpy out; a
tensor in, a tensor out on the tensor's device. ``device=`` moves numpy input to a GPU for the
computation. float64 input is computed in float64, everything else in float32.

The conventions are librosa's (``librosa.stft``, ``librosa.feature.melspectrogram``,
``librosa.power_to_db``, ``librosa.feature.mfcc``): periodic windows, frames centred with
``center=True`` and ``pad_mode="constant"`` by default, Slaney mel filters (``htk=False,
norm="slaney"``), DCT-II with orthonormal scaling. Outputs are ``(..., n_freqs, n_frames)``
with ``n_freqs = 1 + n_fft // 2`` and ``n_frames = 1 + n_samples // hop_length`` when centred.

One difference from librosa: :func:`power_to_db` applies ``top_db`` (and ``ref="max"``) per
spectrogram, over the last two axes, so that a batch gives what each item gives alone; librosa
takes the maximum over the whole array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchaudio.functional as AF

from biosig.features._functional import (
    dct_matrix,
    frame_params,
    mel_project,
    mfcc_from_log_mel,
    power_of,
    power_to_db_tensor,
    stft_tensor,
)
from biosig.features._tensor import (
    as_tensor,
    check_fs,
    check_positive_int,
    make_window,
    restore,
)
from biosig.features.frontend import EEG_BANDS_HZ  # the EEG preset's bands (torch-free)
from biosig.signal import seconds_to_samples

# librosa (and with it numba) is imported by the mel-scale functions alone: the STFT, Welch and
# deltas (biosig.plot, the other front-end kinds) need neither.

__all__ = [
    "stft", "spectrogram", "mel_filterbank", "mel_frequencies", "hz_to_mel", "mel_to_hz",
    "mel_spectrogram", "power_to_db", "log_mel_spectrogram", "mfcc", "deltas", "frame_times",
    "fft_frequencies", "welch", "Spectrum", "band_powers", "BandPowers", "EEG_BANDS_HZ",
]



# ------------------------------------------------------------------------------------------
# STFT and power spectrogram

def stft(signal, *, n_fft: int = 2048, hop_length: int | None = None,
         win_length: int | None = None, window="hann", center: bool = True,
         pad_mode: str = "constant", device=None):
    """Short-time Fourier transform, as ``librosa.stft``.

    Parameters
    ----------
    signal : np.ndarray or torch.Tensor [shape=(..., n_samples)]
        Real signal, time last.
    n_fft : int > 0
        FFT length in samples.
    hop_length : int > 0, optional
        Samples between frames; default ``win_length // 4``.
    win_length : int <= n_fft, optional
        Window length; default ``n_fft`` (shorter windows are zero-padded on both sides).
    window : str or array [shape=(win_length,)]
        ``"hann"`` (periodic, default), ``"hamming"``, ``"blackman"``, ``"boxcar"`` or values.
    center : bool
        Pad ``n_fft // 2`` samples on both sides so that frame ``t`` is centred on sample
        ``t * hop_length``.
    pad_mode : {"constant", "reflect"}
        Padding when ``center`` (librosa >= 0.10 default: ``"constant"``, zeros).
    device : str or torch.device, optional
        Where to compute (numpy results are returned on the CPU).

    Returns
    -------
    complex array [shape=(..., 1 + n_fft // 2, n_frames)]
    """
    x, was_numpy = as_tensor(signal, device=device)
    n_fft, hop_length, win_length = frame_params(n_fft, hop_length, win_length)
    win = make_window(window, win_length, dtype=x.dtype, device=x.device)
    return restore(stft_tensor(x, win, n_fft, hop_length, center, pad_mode), was_numpy)


def spectrogram(signal, *, n_fft: int = 2048, hop_length: int | None = None,
                win_length: int | None = None, window="hann", center: bool = True,
                pad_mode: str = "constant", power: float = 2.0, device=None):
    """Magnitude (``power=1``) or power (``power=2``) spectrogram ``|STFT| ** power``.

    Parameters are those of :func:`stft`, plus ``power : float > 0``.

    Returns
    -------
    array [shape=(..., 1 + n_fft // 2, n_frames)]
    """
    if not power > 0:
        raise ValueError(f"power is {power!r}, expected a positive number")
    x, was_numpy = as_tensor(signal, device=device)
    n_fft, hop_length, win_length = frame_params(n_fft, hop_length, win_length)
    win = make_window(window, win_length, dtype=x.dtype, device=x.device)
    spec = power_of(stft_tensor(x, win, n_fft, hop_length, center, pad_mode), float(power))
    return restore(spec, was_numpy)


def fft_frequencies(*, fs: float, n_fft: int) -> np.ndarray:
    """Centre frequency in Hz of each STFT bin ``[shape=(1 + n_fft // 2,)]``."""
    return np.fft.rfftfreq(check_positive_int(n_fft, name="n_fft"), d=1.0 / check_fs(fs))


def frame_times(n_frames: int, *, fs: float, hop_length: int, center: bool = True,
                n_fft: int | None = None) -> np.ndarray:
    """Time in seconds of each frame's centre ``[shape=(n_frames,)]``.

    With ``center=True`` frame ``t`` is centred on sample ``t * hop_length``; otherwise on
    ``t * hop_length + n_fft // 2`` (``n_fft`` required).
    """
    fs = check_fs(fs)
    offset = 0 if center else check_positive_int(n_fft, name="n_fft") // 2
    return (np.arange(n_frames) * hop_length + offset) / fs


# ------------------------------------------------------------------------------------------
# Mel scale

def hz_to_mel(frequencies_hz, *, htk: bool = False) -> np.ndarray:
    """Hz to mels (``librosa.hz_to_mel``): Slaney's auditory toolbox scale (default), linear
    below 1 kHz (``f / (200 / 3)``) and logarithmic above, or HTK's ``2595 log10(1 + f/700)``."""
    from librosa.core.convert import hz_to_mel as to_mel  # heavy: librosa, see the top
    return np.asarray(to_mel(np.asarray(frequencies_hz, dtype=np.float64), htk=htk))


def mel_to_hz(mels, *, htk: bool = False) -> np.ndarray:
    """Inverse of :func:`hz_to_mel` (``librosa.mel_to_hz``)."""
    from librosa.core.convert import mel_to_hz as to_hz  # heavy: librosa, see the top
    return np.asarray(to_hz(np.asarray(mels, dtype=np.float64), htk=htk))


def mel_frequencies(n_mels: int, *, fmin_hz: float = 0.0, fmax_hz: float,
                    htk: bool = False) -> np.ndarray:
    """``n_mels`` frequencies in Hz, equally spaced in mels from ``fmin_hz`` to ``fmax_hz``
    (``librosa.mel_frequencies``)."""
    from librosa.core.convert import mel_frequencies as frequencies  # heavy: librosa, see the top
    return frequencies(n_mels=check_positive_int(n_mels, name="n_mels"), fmin=float(fmin_hz),
                       fmax=float(fmax_hz), htk=htk)


def mel_filterbank(*, fs: float, n_fft: int, n_mels: int = 128, fmin_hz: float = 0.0,
                   fmax_hz: float | None = None, htk: bool = False,
                   norm: str | None = "slaney") -> np.ndarray:
    """Triangular mel filters: ``librosa.filters.mel`` in float64.

    Parameters
    ----------
    fs : float > 0
        Sampling rate in Hz.
    n_fft : int > 0
        FFT length the filters apply to.
    n_mels : int > 0
        Number of filters.
    fmin_hz, fmax_hz : float >= 0
        Lowest and highest frequency; ``fmax_hz`` defaults to ``fs / 2``.
    htk : bool
        HTK mel scale instead of Slaney's.
    norm : {"slaney", None}
        ``"slaney"`` divides each triangle by its width in Hz (constant energy per filter).

    Returns
    -------
    np.ndarray [shape=(n_mels, 1 + n_fft // 2), dtype=float64]

    Notes
    -----
    librosa places the FFT bins at ``k * fs / n_fft`` and so accepts fractional rates such as
    the Bonn EEG's 173.61 Hz, where ``torchaudio.functional.melscale_fbanks`` puts them on a
    grid up to ``sample_rate // 2`` (integer division). librosa warns when a filter is empty
    (too many mels for ``n_fft``). Whisper's filters are
    ``mel_filterbank(fs=16000, n_fft=400, n_mels=80)`` (see ``whisper_mel_filters``).

    References
    ----------
    Slaney, M. Auditory Toolbox, Technical Report 1998-010, Interval Research Corporation, 1998.
    """
    from librosa.filters import mel  # heavy: librosa, see the top
    fs = check_fs(fs)
    n_fft = check_positive_int(n_fft, name="n_fft")
    n_mels = check_positive_int(n_mels, name="n_mels")
    fmax_hz = fs / 2.0 if fmax_hz is None else float(fmax_hz)
    fmin_hz = float(fmin_hz)
    if not 0 <= fmin_hz < fmax_hz:
        raise ValueError(f"fmin_hz={fmin_hz:g} and fmax_hz={fmax_hz:g}: expected "
                         f"0 <= fmin_hz < fmax_hz")
    if norm not in ("slaney", None):
        raise ValueError(f"norm is {norm!r}, expected 'slaney' or None")
    return mel(sr=fs, n_fft=n_fft, n_mels=n_mels, fmin=fmin_hz, fmax=fmax_hz, htk=htk,
               norm=norm, dtype=np.float64)


def mel_spectrogram(signal, *, fs: float, n_fft: int = 2048, hop_length: int | None = None,
                    win_length: int | None = None, window="hann", center: bool = True,
                    pad_mode: str = "constant", power: float = 2.0, n_mels: int = 128,
                    fmin_hz: float = 0.0, fmax_hz: float | None = None, htk: bool = False,
                    norm: str | None = "slaney", device=None):
    """Mel spectrogram, as ``librosa.feature.melspectrogram``.

    Parameters
    ----------
    signal : array [shape=(..., n_samples)]
    fs : float > 0
        Sampling rate in Hz.
    n_fft, hop_length, win_length, window, center, pad_mode, power
        As in :func:`spectrogram`.
    n_mels, fmin_hz, fmax_hz, htk, norm
        As in :func:`mel_filterbank`.

    Returns
    -------
    array [shape=(..., n_mels, n_frames)]
    """
    x, was_numpy = as_tensor(signal, device=device)
    n_fft, hop_length, win_length = frame_params(n_fft, hop_length, win_length)
    win = make_window(window, win_length, dtype=x.dtype, device=x.device)
    fb = torch.as_tensor(mel_filterbank(fs=fs, n_fft=n_fft, n_mels=n_mels, fmin_hz=fmin_hz,
                                        fmax_hz=fmax_hz, htk=htk, norm=norm),
                         dtype=x.dtype, device=x.device)
    spec = power_of(stft_tensor(x, win, n_fft, hop_length, center, pad_mode), float(power))
    return restore(mel_project(spec, fb), was_numpy)


# ------------------------------------------------------------------------------------------
# Decibels, log-mel, MFCC, deltas

def power_to_db(power, *, ref=1.0, amin: float = 1e-10, top_db: float | None = 80.0):
    """Power to decibels ``10 log10(max(amin, S) / ref)``, as ``librosa.power_to_db``.

    Parameters
    ----------
    power : array [shape=(..., n_freqs, n_frames)]
        Non-negative power spectrogram.
    ref : float > 0 or "max"
        Reference power (0 dB); ``"max"`` uses each spectrogram's maximum.
    amin : float > 0
        Floor on ``S`` and ``ref`` before the logarithm.
    top_db : float >= 0 or None
        Clip each spectrogram (last two axes) at ``max - top_db`` dB.

    Returns
    -------
    array [shape=(..., n_freqs, n_frames)]
    """
    if not amin > 0:
        raise ValueError(f"amin is {amin!r}, expected a positive number")
    s, was_numpy = as_tensor(power, name="power", allow_nan=True)
    return restore(power_to_db_tensor(s, ref, float(amin), top_db), was_numpy)


def log_mel_spectrogram(signal, *, fs: float, n_fft: int = 2048, hop_length: int | None = None,
                        win_length: int | None = None, window="hann", center: bool = True,
                        pad_mode: str = "constant", power: float = 2.0, n_mels: int = 128,
                        fmin_hz: float = 0.0, fmax_hz: float | None = None, htk: bool = False,
                        norm: str | None = "slaney", ref=1.0, amin: float = 1e-10,
                        top_db: float | None = 80.0, device=None):
    """Log-mel spectrogram in dB: ``power_to_db(mel_spectrogram(...))``.

    Parameters are those of :func:`mel_spectrogram` and :func:`power_to_db`.

    Returns
    -------
    array [shape=(..., n_mels, n_frames)]
    """
    x, was_numpy = as_tensor(signal, device=device)
    mel = mel_spectrogram(x, fs=fs, n_fft=n_fft, hop_length=hop_length,
                          win_length=win_length, window=window, center=center, pad_mode=pad_mode,
                          power=power, n_mels=n_mels, fmin_hz=fmin_hz, fmax_hz=fmax_hz, htk=htk,
                          norm=norm)
    return restore(power_to_db_tensor(mel, ref, float(amin), top_db), was_numpy)


def mfcc(signal, *, fs: float, n_mfcc: int = 20, lifter: float = 0.0, n_fft: int = 2048,
         hop_length: int | None = None, win_length: int | None = None, window="hann",
         center: bool = True, pad_mode: str = "constant", power: float = 2.0, n_mels: int = 128,
         fmin_hz: float = 0.0, fmax_hz: float | None = None, htk: bool = False,
         norm: str | None = "slaney", top_db: float | None = 80.0, device=None):
    """Mel-frequency cepstral coefficients, as ``librosa.feature.mfcc``.

    The DCT-II (orthonormal) of the log-mel spectrogram in dB (``ref=1``, ``top_db`` per item),
    keeping the first ``n_mfcc`` coefficients.

    Parameters
    ----------
    signal : array [shape=(..., n_samples)]
    fs : float > 0
    n_mfcc : int > 0
        Number of coefficients (at most ``n_mels``).
    lifter : float >= 0
        Sinusoidal liftering ``1 + lifter/2 sin(pi n / lifter)`` when positive.
    n_fft, hop_length, win_length, window, center, pad_mode, power, n_mels, fmin_hz, fmax_hz,
    htk, norm, top_db
        As in :func:`log_mel_spectrogram`.

    Returns
    -------
    array [shape=(..., n_mfcc, n_frames)]

    References
    ----------
    Davis, S. and Mermelstein, P. Comparison of parametric representations for monosyllabic
    word recognition in continuously spoken sentences. IEEE TASSP 28(4), 1980.
    """
    n_mfcc = check_positive_int(n_mfcc, name="n_mfcc")
    if lifter < 0:
        raise ValueError(f"lifter is {lifter!r}, expected a non-negative number")
    x, was_numpy = as_tensor(signal, device=device)
    mel = mel_spectrogram(x, fs=fs, n_fft=n_fft, hop_length=hop_length, win_length=win_length,
                          window=window, center=center, pad_mode=pad_mode, power=power,
                          n_mels=n_mels, fmin_hz=fmin_hz, fmax_hz=fmax_hz, htk=htk, norm=norm)
    log_mel = power_to_db_tensor(mel, 1.0, 1e-10, top_db)
    dct = dct_matrix(n_mfcc, int(n_mels), dtype=log_mel.dtype, device=log_mel.device)
    return restore(mfcc_from_log_mel(log_mel, dct, float(lifter)), was_numpy)


def deltas(features, *, width: int = 9, order: int = 1):
    """Local time derivative of features by regression over ``width`` frames (HTK/Kaldi).

    ``d_t = sum_n n (c_{t+n} - c_{t-n}) / (2 sum_n n^2)`` for ``n = 1 .. width // 2``, with the
    first and last frames repeated at the edges (``torchaudio.functional.compute_deltas``). In
    the interior this equals ``librosa.feature.delta(..., width=width, order=1)``; librosa
    fits polynomials at the edges instead. ``order=2`` applies the regression twice
    (delta-deltas, as HTK and Kaldi do).

    Parameters
    ----------
    features : array [shape=(..., n_features, n_frames)]
    width : int >= 3, odd
    order : {1, 2}

    Returns
    -------
    array [shape=(..., n_features, n_frames)]

    References
    ----------
    Young, S. et al. The HTK Book (v3.4), section 5.6, 2006.
    """
    if isinstance(width, bool) or int(width) != width or width < 3 or width % 2 == 0:
        raise ValueError(f"width is {width!r}, expected an odd integer >= 3")
    if order not in (1, 2):
        raise ValueError(f"order is {order!r}, expected 1 or 2")
    x, was_numpy = as_tensor(features, name="features", allow_nan=True)
    if x.ndim < 2:
        raise ValueError(f"features has shape {tuple(x.shape)}, expected (..., n_features, "
                         f"n_frames)")
    lead = x.shape[:-2]
    out = x.reshape(-1, x.shape[-2], x.shape[-1])
    for _ in range(order):
        out = AF.compute_deltas(out, win_length=int(width), mode="replicate")
    return restore(out.reshape(*lead, x.shape[-2], x.shape[-1]), was_numpy)


# ------------------------------------------------------------------------------------------
# Welch power spectral density and band powers

@dataclass(frozen=True)
class Spectrum:
    """A power spectral density.

    Attributes
    ----------
    freqs_hz : np.ndarray [shape=(n_freqs,)]
    psd : array [shape=(..., n_freqs)]
        Power per Hz (signal unit squared per Hz).
    """

    freqs_hz: np.ndarray
    psd: object


def welch(signal, *, fs: float, segment_length: int | None = None,
          overlap: int | None = None, window="hann", detrend: str | None = "constant",
          device=None) -> Spectrum:
    """Power spectral density by Welch's method, as ``scipy.signal.welch`` (density, mean).

    Parameters
    ----------
    signal : array [shape=(..., n_samples)]
    fs : float > 0
        Sampling rate in Hz.
    segment_length : int > 0, optional
        Samples per segment (scipy's ``nperseg``); default 256, and at most ``n_samples``.
    overlap : int >= 0, optional
        Samples shared by consecutive segments; default half a segment.
    window : str or array
        Periodic window, as in :func:`stft`.
    detrend : {"constant", None}
        Remove each segment's mean before windowing.

    Returns
    -------
    Spectrum
        ``freqs_hz [shape=(segment_length // 2 + 1,)]`` and ``psd [shape=(..., n_freqs)]``.

    References
    ----------
    Welch, P. The use of fast Fourier transform for the estimation of power spectra. IEEE
    Trans. Audio Electroacoust. 15(2), 1967.
    """
    fs = check_fs(fs)
    x, was_numpy = as_tensor(signal, device=device)
    n = x.shape[-1]
    nper = 256 if segment_length is None else check_positive_int(segment_length,
                                                                  name="segment_length")
    nper = min(nper, n)
    nover = nper // 2 if overlap is None else int(overlap)
    if not 0 <= nover < nper:
        raise ValueError(f"overlap is {overlap!r}, expected 0 <= overlap < segment_length={nper}")
    if detrend not in ("constant", None):
        raise ValueError(f"detrend is {detrend!r}, expected 'constant' or None")
    win = make_window(window, nper, dtype=x.dtype, device=x.device)
    frames = x.unfold(-1, nper, nper - nover)                     # (..., n_seg, nper)
    if detrend == "constant":
        frames = frames - frames.mean(dim=-1, keepdim=True)
    p = torch.fft.rfft(frames * win, dim=-1).abs().square() / (fs * win.square().sum())
    if nper % 2 == 0:
        p[..., 1:-1] *= 2
    else:
        p[..., 1:] *= 2
    psd = p.mean(dim=-2)
    return Spectrum(freqs_hz=np.fft.rfftfreq(nper, d=1.0 / fs), psd=restore(psd, was_numpy))


@dataclass(frozen=True)
class BandPowers:
    """Power in frequency bands.

    Attributes
    ----------
    bands_hz : dict of str to (float, float)
        The bands actually used (upper edges capped at the Nyquist frequency).
    absolute : array [shape=(..., n_bands)]
        Power in each band (signal unit squared).
    relative : array [shape=(..., n_bands)]
        ``absolute`` divided by the power over all bands together (rows sum to 1 when the bands
        do not overlap).
    """

    bands_hz: dict
    absolute: object
    relative: object

    @property
    def names(self) -> list[str]:
        return list(self.bands_hz)


def band_powers(signal, *, fs: float, bands_hz: dict | None = None,
                segment_length: int | None = None, device=None) -> BandPowers:
    """Absolute and relative power in frequency bands from Welch's PSD.

    Band power is the PSD summed over the bins ``lo <= f < hi`` times the bin width. Bands
    whose upper edge exceeds the Nyquist frequency are capped there; bands entirely above it
    are an error.

    Parameters
    ----------
    signal : array [shape=(..., n_samples)]
    fs : float > 0
    bands_hz : dict of str to (float, float), optional
        Default :data:`EEG_BANDS_HZ` (delta, theta, alpha, beta, gamma).
    segment_length : int, optional
        Welch segment in samples; default ``2 * fs`` (0.5 Hz resolution), at most the signal.

    Returns
    -------
    BandPowers
    """
    fs = check_fs(fs)
    bands_hz = dict(EEG_BANDS_HZ if bands_hz is None else bands_hz)
    nyquist = fs / 2
    used = {}
    for name, edges in bands_hz.items():
        lo, hi = (float(e) for e in edges)
        if not 0 <= lo < hi:
            raise ValueError(f"band {name!r} is ({lo:g}, {hi:g}) Hz, expected 0 <= low < high")
        if lo >= nyquist:
            raise ValueError(f"band {name!r} starts at {lo:g} Hz, at or above the Nyquist "
                             f"frequency {nyquist:g} Hz of fs={fs:g}")
        used[name] = (lo, min(hi, nyquist + 1e-9))
    if segment_length is None:
        segment_length = seconds_to_samples(2.0, fs=fs)
    spec = welch(signal, fs=fs, segment_length=segment_length, device=device)
    psd, was_numpy = as_tensor(spec.psd, name="psd", device=device, allow_nan=True)
    df = float(spec.freqs_hz[1] - spec.freqs_hz[0]) if spec.freqs_hz.size > 1 else fs
    f = torch.as_tensor(spec.freqs_hz, dtype=psd.dtype, device=psd.device)
    masks = torch.stack([(f >= lo) & (f < hi) for lo, hi in used.values()])  # (n_bands, n_freqs)
    absolute = torch.matmul(psd, masks.to(psd.dtype).T) * df
    total = torch.matmul(psd, masks.any(dim=0).to(psd.dtype)) * df
    relative = absolute / torch.clamp(total, min=torch.finfo(psd.dtype).tiny)[..., None]
    return BandPowers(bands_hz=used, absolute=restore(absolute, was_numpy),
                      relative=restore(relative, was_numpy))
