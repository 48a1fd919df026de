"""The preset of each modality: one pydantic model each, with ranges, and :func:`make_config`.

Every preset is a :class:`~biosig.features.frontend.FrontEnd` (rate, band-pass, frames and
transform, the same object training uses) with the modality's extra settings (the PCG
envelope, lung cycle crops, MFCC deltas, ECG beats, EEG band powers); they are defined in
:mod:`biosig.features.frontend` and re-exported here. Speech is Whisper's fixed front-end
(:class:`SpeechConfig`).

A preset is data: every value is checked when the preset is built (``PCGConfig(n_mels=0)``,
``make_config("pcg", {"n_mel": 32})`` and ``band_hz=(400, 25)`` are
:class:`~biosig.errors.ConfigError` naming the key and the value). Checks that depend on the
recording's rate (frames of at least 4 samples, band edges against Nyquist) are made when the
features are computed.
"""

from __future__ import annotations

from biosig.config import validate_model
from biosig.errors import ConfigError
from biosig.features.frontend import (
    FRONTEND_PRESETS,
    CoughConfig,
    ECGConfig,
    EEGConfig,
    FrontEnd,
    LungConfig,
    PCGConfig,
    SpeechConfig,
)

#: The base of every preset (each is a :class:`~biosig.features.frontend.FrontEnd`).
PresetConfig = FrontEnd

__all__ = ["PCGConfig", "LungConfig", "CoughConfig", "SpeechConfig", "ECGConfig", "EEGConfig",
           "PresetConfig", "MODALITIES", "FRONTEND_PRESETS", "make_config"]


#: Every modality of :func:`compute_features`.
MODALITIES: dict[str, type[FrontEnd]] = {
    "pcg": PCGConfig, "lung": LungConfig, "cough": CoughConfig, "speech": SpeechConfig,
    "ecg": ECGConfig, "eeg": EEGConfig,
}


def make_config(modality: str, overrides: dict | None = None, *, base=None) -> FrontEnd:
    """The preset config of ``modality`` with ``overrides`` applied and validated.

    Parameters
    ----------
    modality : {"pcg", "lung", "cough", "speech", "ecg", "eeg"}
    overrides : dict, optional
        Field name to value; lists are accepted for tuples and integral floats for integers;
        strings are *not* parsed (the CLI parses ``key=value`` with YAML first).
    base : FrontEnd, optional
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
