"""The preset of each modality: one pydantic model each, with ranges, and :func:`make_config`.

A preset is data: every value is checked when the preset is built (``PCGConfig(n_mels=0)``,
``make_config("pcg", {"n_mel": 32})`` and ``band_hz=(400, 25)`` are
:class:`~biosig.errors.ConfigError` naming the key and the value). Checks that depend on the
recording's rate (frames of at least 4 samples, band edges against Nyquist) are made when the
features are computed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from biosig.config import BandHz, ConfigModel, Int, pair, validate_model
from biosig.errors import ConfigError
from biosig.features.spectral import EEG_BANDS_HZ
from biosig.whisper_audio import WHISPER_FS

__all__ = ["PCGConfig", "LungConfig", "CoughConfig", "SpeechConfig", "ECGConfig", "EEGConfig",
           "PresetConfig", "MODALITIES", "make_config"]



SecondsPair = pair(float)


class PresetConfig(ConfigModel):
    """Base of the modality presets (frozen, unknown keys are errors)."""

    @model_validator(mode="after")
    def _mel_range(self):
        fmin, fmax = getattr(self, "fmin_hz", None), getattr(self, "fmax_hz", None)
        if fmin is not None and fmax is not None and "n_mels" in type(self).model_fields \
                and fmin >= fmax:
            raise ValueError(f"fmin_hz is {fmin:g} and fmax_hz {fmax:g}, expected "
                             f"fmin_hz < fmax_hz")
        return self


class PCGConfig(PresetConfig):
    """Phonocardiogram: band-pass, homomorphic envelope, log-mel up to 1 kHz.

    Attributes
    ----------
    target_fs : float > 0 or None
        Resample to this rate first (``None``: keep the recording's rate).
    band_hz : (float, float)
        Zero-phase Butterworth band-pass ``0 <= lo < hi`` of order ``filter_order``; a high
        edge at or above 0.95 Nyquist makes it a high-pass.
    filter_order : int >= 1
    envelope_cutoff_hz : float > 0
        Low-pass of the homomorphic envelope (:func:`biosig.dsp.envelope_homomorphic`).
    envelope_fs : float > 0 or None
        Rate the envelope is resampled to (50 Hz as in Springer et al. 2016).
    window_s, hop_s : float > 0
        Spectrogram frame length (``n_fft``) and hop, rounded to samples.
    n_mels : int >= 1
    fmin_hz, fmax_hz : float
        Log-mel band, ``0 <= fmin_hz < fmax_hz`` (``fmax_hz`` capped at Nyquist).
    top_db : float > 0 or None
        Dynamic range of the dB values.
    """

    target_fs: float | None = Field(default=None, gt=0)
    band_hz: BandHz = (25.0, 400.0)
    filter_order: Int = Field(default=4, ge=1)
    envelope_cutoff_hz: float = Field(default=8.0, gt=0)
    envelope_fs: float | None = Field(default=50.0, gt=0)
    window_s: float = Field(default=0.064, gt=0)
    hop_s: float = Field(default=0.016, gt=0)
    n_mels: Int = Field(default=64, ge=1)
    fmin_hz: float = Field(default=25.0, ge=0)
    fmax_hz: float = Field(default=1000.0, gt=0)
    top_db: float | None = Field(default=80.0, gt=0)


class LungConfig(PresetConfig):
    """Lung sounds: resample, band-pass, band-limited log-mel, fixed-length cycle crops.

    Attributes
    ----------
    target_fs : float > 0 or None
        4 kHz by default, so that ICBHI's devices (4, 10 and 44.1 kHz) give the same features.
    band_hz, filter_order, window_s, hop_s, n_mels, fmin_hz, fmax_hz, top_db
        As in :class:`PCGConfig`.
    cycle_duration_s : float > 0
        Length of each respiratory-cycle crop: longer cycles are cut, shorter ones zero-padded
        (``cycle_n_frames`` gives the frames that hold signal).
    """

    target_fs: float | None = Field(default=4000.0, gt=0)
    band_hz: BandHz = (50.0, 2000.0)
    filter_order: Int = Field(default=4, ge=1)
    window_s: float = Field(default=0.064, gt=0)
    hop_s: float = Field(default=0.016, gt=0)
    n_mels: Int = Field(default=64, ge=1)
    fmin_hz: float = Field(default=50.0, ge=0)
    fmax_hz: float = Field(default=2000.0, gt=0)
    top_db: float | None = Field(default=80.0, gt=0)
    cycle_duration_s: float = Field(default=8.0, gt=0)


class CoughConfig(PresetConfig):
    """Cough sounds: log-mel, MFCCs with deltas and delta-deltas.

    Attributes
    ----------
    target_fs : float > 0 or None
        16 kHz by default so recordings from different devices give comparable features.
    window_s, hop_s, n_mels, fmin_hz, fmax_hz, top_db
        As in :class:`PCGConfig` (``fmax_hz=None``: Nyquist).
    n_mfcc : int, 1 <= n_mfcc <= n_mels
        MFCCs kept (DCT-II, orthonormal, of the log-mel in dB).
    delta_width : int >= 3, odd
        Frames in the delta regression window.
    """

    target_fs: float | None = Field(default=16000.0, gt=0)
    window_s: float = Field(default=0.032, gt=0)
    hop_s: float = Field(default=0.010, gt=0)
    n_mels: Int = Field(default=64, ge=1)
    fmin_hz: float = Field(default=0.0, ge=0)
    fmax_hz: float | None = Field(default=None, gt=0)
    top_db: float | None = Field(default=80.0, gt=0)
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


class SpeechConfig(PresetConfig):
    """Speech: Whisper's log-mel front-end (16 kHz, 25 ms / 10 ms, 80 or 128 bins).

    Attributes
    ----------
    target_fs : float
        Must stay 16000 (Whisper's rate); recordings are resampled to it.
    n_mels : {80, 128}
    pad_to_30s : bool
        Pad or cut to Whisper's 30 s window (3000 frames).
    """

    target_fs: float = float(WHISPER_FS)
    n_mels: Literal[80, 128] = 80
    pad_to_30s: bool = False

    @field_validator("target_fs")
    @classmethod
    def _whisper_rate(cls, v: float) -> float:
        if v != WHISPER_FS:
            raise ValueError(f"is {v:g}, expected {WHISPER_FS} (Whisper's rate)")
        return v


class ECGConfig(PresetConfig):
    """ECG: band-pass, beat-centred windows around R peaks, log-power spectrogram.

    Attributes
    ----------
    target_fs : float > 0 or None
    band_hz, filter_order
        As in :class:`PCGConfig`; 0.5-40 Hz removes baseline wander and mains noise.
    beat_window_s : (float >= 0, float > 0)
        Seconds kept before and after each R peak; beats too close to either end are dropped.
    window_s, hop_s : float > 0
        Spectrogram frame and hop.
    fmax_hz : float > 0
        Highest spectrogram frequency kept.
    top_db : float > 0 or None
    beats : {"detect", "annotations"}
        Where the beats come from when no ``r_peaks`` are given: ``"detect"`` runs
        :func:`biosig.ecg.ecg_peaks` on the first channel; ``"annotations"`` uses the record's
        beat annotations (e.g. a WFDB ``.atr``: reference labels, so never for features a model
        is evaluated on). The source is recorded as ``beat_source`` in the feature config.
    """

    target_fs: float | None = Field(default=None, gt=0)
    band_hz: BandHz = (0.5, 40.0)
    filter_order: Int = Field(default=4, ge=1)
    beat_window_s: SecondsPair = (0.25, 0.45)
    window_s: float = Field(default=2.0, gt=0)
    hop_s: float = Field(default=0.25, gt=0)
    fmax_hz: float = Field(default=50.0, gt=0)
    top_db: float | None = Field(default=80.0, gt=0)
    beats: Literal["detect", "annotations"] = "detect"

    @field_validator("beat_window_s")
    @classmethod
    def _beat_window(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] < 0 or v[1] <= 0:
            raise ValueError(f"is ({v[0]:g}, {v[1]:g}), expected (before_s >= 0, after_s > 0)")
        return v


class EEGConfig(PresetConfig):
    """EEG: powerline notch, band-pass, per-channel spectrogram, Welch PSD and band powers.

    Attributes
    ----------
    target_fs : float > 0 or None
    powerline_hz : float > 0 or None
        Mains frequency notched with its harmonics (50 Hz in Europe, 60 Hz in the Americas);
        ``None`` or a value at or above Nyquist: no notch.
    band_hz, filter_order
        As in :class:`PCGConfig`.
    window_s, hop_s : float > 0
        Spectrogram frame and hop; the spectrogram and PSD stop at ``band_hz[1]``.
    welch_segment_s : float > 0
        Welch segment (2 s gives 0.5 Hz resolution).
    bands_hz : dict of str to (float, float)
        Bands ``0 <= lo < hi`` for ``band_power`` / ``relative_band_power``; bands starting at
        or above Nyquist are left out, upper edges are capped there.
    """

    target_fs: float | None = Field(default=None, gt=0)
    powerline_hz: float | None = Field(default=50.0, gt=0)
    band_hz: BandHz = (0.5, 45.0)
    filter_order: Int = Field(default=4, ge=1)
    window_s: float = Field(default=2.0, gt=0)
    hop_s: float = Field(default=0.5, gt=0)
    welch_segment_s: float = Field(default=2.0, gt=0)
    bands_hz: dict[str, BandHz] = Field(default_factory=lambda: dict(EEG_BANDS_HZ),
                                        min_length=1)


MODALITIES: dict[str, type[PresetConfig]] = {
    "pcg": PCGConfig, "lung": LungConfig, "cough": CoughConfig, "speech": SpeechConfig,
    "ecg": ECGConfig, "eeg": EEGConfig,
}


def make_config(modality: str, overrides: dict | None = None, *, base=None) -> PresetConfig:
    """The preset config of ``modality`` with ``overrides`` applied and validated.

    Parameters
    ----------
    modality : {"pcg", "lung", "cough", "speech", "ecg", "eeg"}
    overrides : dict, optional
        Field name to value; lists are accepted for tuples and integral floats for integers;
        strings are *not* parsed (the CLI parses ``key=value`` with YAML first).
    base : PresetConfig, optional
        Start from this config instead of the defaults.

    Raises
    ------
    ConfigError
        Unknown modality, unknown key (the message lists the valid ones), wrong type or a value
        out of range; the message names ``<modality>: key '<key>'`` and the value.
    """
    if modality not in MODALITIES:
        raise ConfigError(f"modality is {modality!r}, expected one of {sorted(MODALITIES)}")
    cls = MODALITIES[modality]
    cfg = cls() if base is None else base
    if not isinstance(cfg, cls):
        raise ConfigError(f"config is a {type(cfg).__name__}, expected {cls.__name__} for "
                          f"modality {modality!r}")
    if not overrides:
        return cfg
    return validate_model(cls, {**cfg.model_dump(), **overrides}, source=modality)
