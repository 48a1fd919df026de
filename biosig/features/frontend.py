"""The front-end of a modality: one frozen spec that owns the sampling rate, the band-pass, the
frame rules and the transform (in the spirit of torchaudio's pipeline bundles).

>>> from biosig.features import FrontEnd
>>> fe = FrontEnd.from_preset("eeg", target_fs=173.61, frame_s=1.0, hop_s=0.25)
>>> fe.frames()                       # the STFT frame: 174 samples in a 256-point FFT
FrameLengths(win_length=174, hop_length=43, n_fft=256)
>>> fe.samples(20.0)                  # a 20 s crop at the front-end's rate
3472

The same spec is used everywhere a recording becomes features: :func:`compute_features`
(:meth:`FrontEnd.features`), training, ``biosig score model`` and the feature cache (all through
:meth:`FrontEnd.prepare` and :meth:`FrontEnd.transform_module`, the torch module
:class:`~biosig.features.transforms.FrontEndTransform`). The presets of the modalities are
subclasses here (:data:`FRONTEND_PRESETS`); this module imports no torch, so validating a
recipe's config does not load it. A recipe names a preset and overrides fields
(``frontend: {preset: eeg, frame_s: 1.0}``); its run folder records the resolved spec.

Names: ``frame_s`` / ``hop_s`` are the STFT frame and hop; a training crop is ``data.crop_s``.
Every sample count comes from :func:`biosig.signal.seconds_to_samples` (through
:func:`frame_lengths` for frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from biosig.config import BandHz, ConfigModel, Int, pair
from biosig.errors import ConfigError
from biosig.signal import Signal, as_signal, seconds_to_samples
from biosig.validate import check_fs, check_signal
from biosig.whisper_audio import WHISPER_FS, WHISPER_HOP_LENGTH, WHISPER_N_FFT

__all__ = ["FrontEnd", "FrameLengths", "frame_lengths", "band_limit", "FRONTEND_KINDS",
           "NFftRule", "PCGConfig", "LungConfig", "CoughConfig", "ECGConfig", "EEGConfig",
           "SpeechConfig", "FRONTEND_PRESETS", "EEG_BANDS_HZ"]

#: Classical EEG bands in Hz, lower edge inclusive, upper edge exclusive.
EEG_BANDS_HZ: dict[str, tuple[float, float]] = {
    "delta": (0.5, 4.0), "theta": (4.0, 8.0), "alpha": (8.0, 13.0), "beta": (13.0, 30.0),
    "gamma": (30.0, 45.0),
}

#: What the transform computes (:class:`~biosig.features.transforms.FrontEndTransform`);
#: ``whisper_log_mel`` is the speech preset's alone (Whisper's fixed 16 kHz front-end).
FRONTEND_KINDS = ("log_mel", "mfcc", "log_spectrogram", "kaldi_fbank", "frames")

#: ``n_fft`` of a frame of ``win_length`` samples: ``"pow2"`` (the next power of two, the
#: window zero-padded to it), ``"exact"`` (``win_length``) or a number of points.
NFftRule = Literal["pow2", "exact"] | Annotated[Int, Field(ge=4)]


@dataclass(frozen=True)
class FrameLengths:
    """STFT frame lengths in samples: the window, the hop and the FFT size."""

    win_length: int
    hop_length: int
    n_fft: int


def frame_lengths(frame_s: float, hop_s: float, *, fs: float, n_fft: NFftRule = "pow2",
                  where: str = "frontend") -> FrameLengths:
    """The samples of an STFT frame of ``frame_s`` seconds, its hop and its FFT size at ``fs``.

    Parameters
    ----------
    frame_s, hop_s : float > 0
        Frame (window) length and hop in seconds, rounded to samples
        (:func:`biosig.signal.seconds_to_samples`).
    fs : float > 0
    n_fft : {"pow2", "exact"} or int
        ``"pow2"``: the next power of two at or above the window (librosa and torchaudio pad
        the window to it); ``"exact"``: the window length; an int: that many points (at least
        the window).
    where : str
        Named in errors (``"frontend"``, ``"eeg"``).

    Raises
    ------
    ConfigError
        A frame under 4 samples, a hop under 1 or an ``n_fft`` shorter than the frame.

    >>> frame_lengths(1.0, 0.25, fs=173.61)
    FrameLengths(win_length=174, hop_length=43, n_fft=256)
    >>> frame_lengths(1.0, 0.25, fs=173.61, n_fft="exact").n_fft
    174
    """
    fs = check_fs(fs)
    win = seconds_to_samples(frame_s, fs=fs)
    hop = seconds_to_samples(hop_s, fs=fs)
    if win < 4 or hop < 1:
        raise ConfigError(f"{where}: frame_s={frame_s:g} s and hop_s={hop_s:g} s give "
                          f"win_length={win} and hop_length={hop} samples at fs={fs:g} Hz; "
                          f"expected win_length >= 4 and hop_length >= 1")
    if n_fft == "pow2":
        n = 1 << (win - 1).bit_length()
    elif n_fft == "exact":
        n = win
    else:
        n = int(n_fft)
        if n < win:
            raise ConfigError(f"{where}: n_fft is {n}, expected at least the frame's "
                              f"{win} samples (frame_s={frame_s:g} s at fs={fs:g} Hz)")
    return FrameLengths(win, hop, n)


def band_limit(x: np.ndarray, *, fs: float, band_hz, order: int) -> np.ndarray:
    """Zero-phase Butterworth band-pass of ``x [shape=(..., n_samples)]``; a high edge at or
    above 0.95 Nyquist makes it a high-pass, a low edge of 0 a low-pass."""
    from biosig import dsp  # heavy: numba and scipy.signal, kept out of config validation
    low, high = band_hz                       # 0 <= low < high: checked by the config
    if high >= 0.95 * fs / 2:
        return dsp.highpass(x, fs=fs, cutoff_hz=low, order=order) if low > 0 else x
    if low <= 0:
        return dsp.lowpass(x, fs=fs, cutoff_hz=high, order=order)
    return dsp.bandpass(x, fs=fs, band_hz=(low, high), order=order)


class FrontEnd(ConfigModel):
    """How a recording becomes features: rate, band-pass, frames and transform (frozen).

    A modality's preset is a subclass with its own defaults (and the extra arrays that
    :func:`~biosig.features.compute_features` adds, such as ECG beats or EEG band powers):
    :meth:`from_preset` names it; ``FrontEnd(...)`` is a custom one. A changed copy is
    ``fe.replace(frame_s=0.5)``.

    Attributes
    ----------
    preset : str
        The preset's name (``"custom"`` for this base class).
    target_fs : float > 0 or None
        Rate the recording is resampled to first (``None``: keep the recording's rate;
        training needs a rate).
    band_hz : (float, float) or None
        Zero-phase Butterworth band-pass ``0 <= lo < hi`` of order ``filter_order`` applied by
        :meth:`prepare` (a high edge at or above 0.95 Nyquist makes it a high-pass); ``None``:
        no filter.
    filter_order : int >= 1
    powerline_hz : float > 0 or None
        Mains frequency notched with its harmonics before the band-pass (``None``, or a value
        at or above Nyquist: no notch).
    kind : {"log_mel", "mfcc", "log_spectrogram", "kaldi_fbank", "frames"}
        The transform (:class:`~biosig.features.transforms.FrontEndTransform`); the speech
        preset's is ``"whisper_log_mel"``.
    frame_s, hop_s : float > 0
        STFT frame (window) length and hop in seconds, ``hop_s <= frame_s``.
    n_fft : {"pow2", "exact"} or int
        FFT size rule (:func:`frame_lengths`); default ``"pow2"``.
    n_mels : int >= 1
        Mel (or Kaldi) filters.
    n_mfcc : int, 1 <= n_mfcc <= n_mels for ``kind="mfcc"``
    fmin_hz, fmax_hz : float
        Band of the mel filters, or the spectrogram bins kept (``fmax_hz=None``: Nyquist;
        a value above Nyquist is capped there).
    top_db : float > 0 or None
        Dynamic range of dB values (per item).
    normalize : {"none", "instance", "cmvn"}
        Applied by the training transform after the raw features: each item to zero mean and
        unit variance, or each bin over time (:func:`compute_features` keeps raw values).
    """

    preset: Literal["custom"] = "custom"
    target_fs: float | None = Field(default=None, gt=0)
    band_hz: BandHz | None = None
    filter_order: Int = Field(default=4, ge=1)
    powerline_hz: float | None = Field(default=None, gt=0)
    kind: Literal[FRONTEND_KINDS] = "log_mel"
    frame_s: float = Field(default=0.064, gt=0)
    hop_s: float = Field(default=0.016, gt=0)
    n_fft: NFftRule = "pow2"
    n_mels: Int = Field(default=64, ge=1)
    n_mfcc: Int = Field(default=20, ge=1)
    fmin_hz: float = Field(default=0.0, ge=0)
    fmax_hz: float | None = Field(default=None, gt=0)
    top_db: float | None = Field(default=80.0, gt=0)
    normalize: Literal["none", "instance", "cmvn"] = "instance"

    @model_validator(mode="after")
    def _ranges(self):
        if self.fmax_hz is not None and self.fmin_hz >= self.fmax_hz:
            raise ValueError(f"fmin_hz is {self.fmin_hz:g} and fmax_hz {self.fmax_hz:g}, "
                             f"expected fmin_hz < fmax_hz")
        if self.kind == "mfcc" and self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc is {self.n_mfcc}, expected at most n_mels "
                             f"({self.n_mels})")
        if self.hop_s > self.frame_s:
            raise ValueError(f"hop_s is {self.hop_s:g} and frame_s {self.frame_s:g}, expected "
                             f"hop_s <= frame_s")
        return self

    # ------------------------------------------------------------------ presets

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> FrontEnd:
        """The preset ``name`` (``"pcg"``, ``"lung"``, ``"cough"``, ``"ecg"``, ``"eeg"``,
        ``"speech"``) with ``overrides`` applied and validated; ``"custom"`` is this base
        class.

        Raises
        ------
        ConfigError
            Unknown preset, unknown key (the valid ones are listed), wrong type or value.
        """
        if name == "custom":
            return FrontEnd(**overrides)
        if name not in FRONTEND_PRESETS:
            raise ConfigError(f"front-end preset is {name!r}, expected one of "
                              f"{', '.join(['custom', *FRONTEND_PRESETS])}")
        return FRONTEND_PRESETS[name](**overrides)

    # ------------------------------------------------------------- sample counts

    def rate(self, fs: float | None = None) -> float:
        """The rate the transform sees: ``target_fs``, else ``fs`` (the recording's)."""
        if fs is not None:
            fs = check_fs(fs)
        if self.target_fs is not None:
            return float(self.target_fs)
        if fs is None:
            raise ConfigError(f"{self.preset}: target_fs is None; give the recording's fs")
        return float(fs)

    def samples(self, duration_s: float, fs: float | None = None) -> int:
        """Samples in ``duration_s`` seconds at :meth:`rate` (a crop, a shift)."""
        return seconds_to_samples(duration_s, fs=self.rate(fs))

    def frames(self, fs: float | None = None) -> FrameLengths:
        """The STFT frame, hop and FFT size in samples at :meth:`rate`
        (:func:`frame_lengths`)."""
        return frame_lengths(self.frame_s, self.hop_s, fs=self.rate(fs), n_fft=self.n_fft,
                             where=self.preset)

    def mel_band(self, fs: float | None = None) -> tuple[float, float]:
        """``(fmin_hz, fmax_hz)`` at :meth:`rate`, ``fmax_hz`` capped at Nyquist."""
        nyquist = self.rate(fs) / 2
        fmax = nyquist if self.fmax_hz is None else min(float(self.fmax_hz), nyquist)
        if self.fmin_hz >= fmax:
            raise ConfigError(f"{self.preset}: fmin_hz is {self.fmin_hz:g} and fmax_hz "
                              f"{fmax:g} at fs={2 * nyquist:g} Hz, expected fmin_hz < fmax_hz")
        return float(self.fmin_hz), fmax

    # ----------------------------------------------------------------- signal

    def prepare(self, signal, fs: float | None = None) -> Signal:
        """Resample to ``target_fs``, notch ``powerline_hz``, band-pass ``band_hz``.

        Parameters
        ----------
        signal : biosig.Signal or np.ndarray [shape=(channels, samples) or (samples,)]
        fs : float, optional
            Rate of an array ``signal``.

        Returns
        -------
        biosig.Signal
            float32 data at :meth:`rate` (``fs`` travels with the signal).
        """
        from biosig import dsp  # heavy: numba and scipy.signal, kept out of config validation
        sig = as_signal(signal, fs)
        check_signal(sig.data)                      # samples to use: no NaN, not empty
        x = np.ascontiguousarray(sig.data, dtype=np.float32)
        rate = sig.fs
        if self.target_fs is not None and not math.isclose(self.target_fs, rate,
                                                           rel_tol=1e-9):
            x = dsp.resample(x, fs=rate, target_fs=self.target_fs)
            rate = float(self.target_fs)
        if self.powerline_hz is not None and self.powerline_hz < rate / 2:
            x = dsp.notch(x, fs=rate, powerline_hz=self.powerline_hz, harmonics=True)
        if self.band_hz is not None:
            x = band_limit(x, fs=rate, band_hz=self.band_hz, order=self.filter_order)
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x is sig.data and rate == sig.fs:
            return sig
        return replace(sig, data=x, fs=rate)

    def transform_module(self, fs: float | None = None):
        """The torch module that turns prepared waveforms into features at :meth:`rate`
        (:class:`~biosig.features.transforms.FrontEndTransform`)."""
        from biosig.features.transforms import FrontEndTransform  # heavy: torch, as in features()
        return FrontEndTransform(self, fs=self.rate(fs))

    def features(self, signal, fs: float | None = None, *, device=None) -> np.ndarray:
        """Raw (un-normalised) features of a recording: :meth:`prepare` then the transform.

        Returns
        -------
        np.ndarray [shape=(channels, n_features, n_frames), dtype=float32]
        """
        import torch  # heavy: torch; this module stays torch-free for config validation
        sig = self.prepare(signal, fs)
        module = self.transform_module(sig.fs)
        if device is not None:
            module = module.to(device)
        with torch.no_grad():
            f = module.raw(torch.from_numpy(sig.data).to(module.device))
        return f.cpu().numpy()


# ------------------------------------------------------------------- the presets

SecondsPair = pair(float)


class PCGConfig(FrontEnd):
    """Phonocardiogram: band-pass, homomorphic envelope, log-mel up to 1 kHz.

    Attributes
    ----------
    target_fs, band_hz, filter_order, kind, frame_s, hop_s, n_fft, n_mels, fmin_hz, fmax_hz,
    top_db, normalize
        As in :class:`~biosig.features.frontend.FrontEnd`: no resampling, a 25-400 Hz
        band-pass of order 4, a 64-band log-mel from 25 Hz to 1 kHz on 64 ms / 16 ms frames.
    envelope_cutoff_hz : float > 0
        Low-pass of the homomorphic envelope (:func:`biosig.dsp.envelope_homomorphic`).
    envelope_fs : float > 0 or None
        Rate the envelope is resampled to (50 Hz as in Springer et al. 2016).
    heart_cycles : bool
        Features only (not the network's input): also segment the recording into heart cycles
        with the shipped segmenter (:func:`biosig.pcg.pcg_segment`) and add
        ``heart_cycle_features (cycle, feature)``, the phase durations and the systolic and
        diastolic band energies of every complete cycle (:func:`biosig.pcg.pcg_cycle_features`).
    """

    preset: Literal["pcg"] = "pcg"
    band_hz: BandHz | None = (25.0, 400.0)
    envelope_cutoff_hz: float = Field(default=8.0, gt=0)
    envelope_fs: float | None = Field(default=50.0, gt=0)
    heart_cycles: bool = False
    fmin_hz: float = Field(default=25.0, ge=0)
    fmax_hz: float | None = Field(default=1000.0, gt=0)


class LungConfig(FrontEnd):
    """Lung sounds: resample, band-pass, band-limited log-mel, fixed-length cycle crops.

    Attributes
    ----------
    target_fs : float > 0 or None
        4 kHz by default, so that ICBHI's devices (4, 10 and 44.1 kHz) give the same features.
    band_hz, filter_order, frame_s, hop_s, n_fft, n_mels, fmin_hz, fmax_hz, top_db
        As in :class:`~biosig.features.frontend.FrontEnd`: a 50-2000 Hz band-pass (a 50 Hz
        high-pass at 4 kHz), a 64-band log-mel over 50-2000 Hz on 64 ms / 16 ms frames.
    cycle_duration_s : float > 0
        Length of each respiratory-cycle crop: longer cycles are cut, shorter ones zero-padded
        (``cycle_n_frames`` gives the frames that hold signal).
    """

    preset: Literal["lung"] = "lung"
    target_fs: float | None = Field(default=4000.0, gt=0)
    band_hz: BandHz | None = (50.0, 2000.0)
    fmin_hz: float = Field(default=50.0, ge=0)
    fmax_hz: float | None = Field(default=2000.0, gt=0)
    cycle_duration_s: float = Field(default=8.0, gt=0)


class CoughConfig(FrontEnd):
    """Cough sounds: log-mel, MFCCs with deltas and delta-deltas.

    Attributes
    ----------
    target_fs : float > 0 or None
        16 kHz by default so recordings from different devices give comparable features.
    frame_s, hop_s, n_fft, n_mels, fmin_hz, fmax_hz, top_db
        As in :class:`~biosig.features.frontend.FrontEnd`: 32 ms / 10 ms frames, 64 bands up
        to Nyquist, no band-pass.
    n_mfcc : int, 1 <= n_mfcc <= n_mels
        MFCCs kept (DCT-II, orthonormal, of the log-mel in dB).
    delta_width : int >= 3, odd
        Frames in the delta regression window.
    """

    preset: Literal["cough"] = "cough"
    target_fs: float | None = Field(default=16000.0, gt=0)
    frame_s: float = Field(default=0.032, gt=0)
    hop_s: float = Field(default=0.010, gt=0)
    n_mfcc: Int = Field(default=13, ge=1)
    delta_width: Int = Field(default=9, ge=3)

    @field_validator("delta_width")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"is {v}, expected an odd integer >= 3")
        return v

    @model_validator(mode="after")
    def _mfcc_within_mels(self):
        if self.n_mfcc > self.n_mels:
            raise ValueError(f"n_mfcc is {self.n_mfcc}, expected at most n_mels "
                             f"({self.n_mels})")
        return self


class ECGConfig(FrontEnd):
    """ECG: band-pass, beat-centred windows around R peaks, log-power spectrogram.

    Attributes
    ----------
    target_fs, band_hz, filter_order, kind, frame_s, hop_s, n_fft, fmin_hz, fmax_hz, top_db
        As in :class:`~biosig.features.frontend.FrontEnd`: a 0.5-40 Hz band-pass (removes
        baseline wander and mains noise), a log-power spectrogram of 0.5-50 Hz on 2 s / 250 ms
        frames.
    beat_window_s : (float >= 0, float > 0)
        Seconds kept before and after each R peak; beats too close to either end are dropped.
    beats : {"detect", "annotations"}
        Where the beats come from when no ``r_peaks`` are given: ``"detect"`` runs
        :func:`biosig.ecg.ecg_peaks` on the first channel; ``"annotations"`` uses the record's
        beat annotations (e.g. a WFDB ``.atr``: reference labels, so never for features a model
        is evaluated on). The source is recorded as ``beat_source`` in the feature config.
    rhythm_features : bool
        Summaries (:func:`biosig.features.summarize`) add the rhythm patterns of
        :func:`biosig.ecg.rr_patterns` (premature beats, pauses, bigeminy) and
        :func:`biosig.ecg.beat_shape` (ectopic-looking beats, the median beat at 20 points).
        Off by default, so the features of the measured baselines stay as they were.
    """

    preset: Literal["ecg"] = "ecg"
    band_hz: BandHz | None = (0.5, 40.0)
    kind: Literal["log_spectrogram", "log_mel", "mfcc", "kaldi_fbank", "frames"] = \
        "log_spectrogram"
    beat_window_s: SecondsPair = (0.25, 0.45)
    frame_s: float = Field(default=2.0, gt=0)
    hop_s: float = Field(default=0.25, gt=0)
    fmin_hz: float = Field(default=0.5, ge=0)
    fmax_hz: float | None = Field(default=50.0, gt=0)
    beats: Literal["detect", "annotations"] = "detect"
    rhythm_features: bool = False

    @field_validator("beat_window_s")
    @classmethod
    def _beat_window(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] < 0 or v[1] <= 0:
            raise ValueError(f"is ({v[0]:g}, {v[1]:g}), expected (before_s >= 0, after_s > 0)")
        return v


class EEGConfig(FrontEnd):
    """EEG: powerline notch, band-pass, per-channel spectrogram, Welch PSD and band powers.

    Attributes
    ----------
    target_fs, powerline_hz, band_hz, filter_order, kind, frame_s, hop_s, n_fft, fmin_hz,
    fmax_hz, top_db
        As in :class:`~biosig.features.frontend.FrontEnd`: a 50 Hz notch with harmonics, a
        0.5-45 Hz band-pass, a log-power spectrogram of 0.5-45 Hz on 2 s / 500 ms frames; the
        PSD also stops at ``fmax_hz``.
    welch_segment_s : float > 0
        Welch segment (2 s gives 0.5 Hz resolution).
    bands_hz : dict of str to (float, float)
        Bands ``0 <= lo < hi`` for ``band_power`` / ``relative_band_power``; bands starting at
        or above Nyquist are left out, upper edges are capped there.
    time_features : bool
        Add ``time_features`` (channel, statistic; off by default, so the band-power features
        of the measured baselines stay as they were): Hjorth parameters, line length, zero
        crossings, skewness, kurtosis, amplitude percentile, permutation entropy and the
        statistics of a ``wavelet_levels``-level db4 wavelet decomposition
        (:func:`biosig.features.temporal.time_features`), on the prepared signal.
    wavelet_levels : int in [1, 10]
    """

    preset: Literal["eeg"] = "eeg"
    powerline_hz: float | None = Field(default=50.0, gt=0)
    band_hz: BandHz | None = (0.5, 45.0)
    kind: Literal["log_spectrogram", "log_mel", "mfcc", "kaldi_fbank", "frames"] = \
        "log_spectrogram"
    frame_s: float = Field(default=2.0, gt=0)
    hop_s: float = Field(default=0.5, gt=0)
    fmin_hz: float = Field(default=0.5, ge=0)
    fmax_hz: float | None = Field(default=45.0, gt=0)
    welch_segment_s: float = Field(default=2.0, gt=0)
    bands_hz: dict[str, BandHz] = Field(default_factory=lambda: dict(EEG_BANDS_HZ),
                                        min_length=1)
    time_features: bool = False
    wavelet_levels: int = Field(default=5, ge=1, le=10)


class SpeechConfig(FrontEnd):
    """Speech: Whisper's log-mel front-end (16 kHz, 25 ms / 10 ms, 80 or 128 bins).

    Its frames, FFT and dB scale are Whisper's own (:func:`biosig.features.whisper_log_mel`:
    ``n_fft=400``, ``hop_length=160``, a floor 8 decades below each item's maximum, then
    ``(x + 4) / 4``); only the mel count, the padding and a band-pass may change.

    Attributes
    ----------
    target_fs : float
        Must stay 16000 (Whisper's rate); recordings are resampled to it.
    n_mels : {80, 128}
    pad_to_30s : bool
        Pad or cut to Whisper's 30 s window (3000 frames).
    """

    preset: Literal["speech"] = "speech"
    target_fs: float = float(WHISPER_FS)
    kind: Literal["whisper_log_mel"] = "whisper_log_mel"
    frame_s: float = WHISPER_N_FFT / WHISPER_FS
    hop_s: float = WHISPER_HOP_LENGTH / WHISPER_FS
    n_fft: NFftRule = "exact"
    n_mels: Literal[80, 128] = 80
    pad_to_30s: bool = False

    @field_validator("target_fs")
    @classmethod
    def _whisper_rate(cls, v: float) -> float:
        if v != WHISPER_FS:
            raise ValueError(f"is {v:g}, expected {WHISPER_FS} (Whisper's rate)")
        return v

    @model_validator(mode="after")
    def _whisper_frames(self):
        lengths = self.frames()
        if (lengths.win_length, lengths.hop_length, lengths.n_fft) != \
                (WHISPER_N_FFT, WHISPER_HOP_LENGTH, WHISPER_N_FFT):
            raise ValueError(f"frame_s, hop_s and n_fft give {lengths.win_length}, "
                             f"{lengths.hop_length} and {lengths.n_fft} samples; Whisper's "
                             f"front-end is fixed at {WHISPER_N_FFT}, {WHISPER_HOP_LENGTH} and "
                             f"{WHISPER_N_FFT}")
        return self


#: The front-end presets (:meth:`FrontEnd.from_preset`, a recipe's ``frontend.preset``).
FRONTEND_PRESETS: dict[str, type[FrontEnd]] = {
    "pcg": PCGConfig, "lung": LungConfig, "cough": CoughConfig, "ecg": ECGConfig,
    "eeg": EEGConfig, "speech": SpeechConfig,
}
