"""Feature presets per modality: one typed config each and one call for all of them.

>>> import biosig, biosig.features as bf
>>> sig = biosig.load("100.hea")                                   # doctest: +SKIP
>>> fset = bf.compute_features(sig, modality="ecg")                # doctest: +SKIP
>>> fset["beats"].shape, fset.axes["beats"]                        # doctest: +SKIP
((2272, 2, 252), ('beat', 'channel', 'time'))
>>> row = bf.extract_features(sig, modality="ecg")                 # doctest: +SKIP

========  ===============================================================================
modality  arrays
========  ===============================================================================
pcg       25-400 Hz band-passed ``signal``, homomorphic ``envelope`` (50 Hz),
          ``log_mel`` up to 1 kHz
lung      50-2000 Hz band-passed ``signal`` (4 kHz), ``log_mel`` 50-2000 Hz, and with
          ``cycles_s`` the per-cycle crops ``cycle_log_mel`` (zero-padded to 8 s)
cough     ``log_mel``, ``mfcc``, ``mfcc_delta``, ``mfcc_delta2``
speech    Whisper's 80-bin ``log_mel`` at 16 kHz
ecg       0.5-40 Hz band-passed ``signal``, beat-centred windows ``beats`` around R peaks
          (``r_peaks``, ``ecg_peaks`` detections or, when asked, the record's beat
          annotations), log-power ``spectrogram``; its summary row adds, with
          ``rhythm_features=True``, premature beats, pauses, bigeminy and the median beat
eeg       notched and 0.5-45 Hz band-passed ``signal``, per-channel ``spectrogram``,
          Welch ``psd``, ``band_power`` and ``relative_band_power`` (delta..gamma),
          and, with ``time_features=True``, Hjorth, line length, entropy, wavelet sub-bands
========  ===============================================================================

Frame ``t`` of a spectrogram-like array is centred on ``t / rate_hz[name]`` seconds.

Modules, by concern: :mod:`~biosig.features.presets.config` (the pydantic preset of each
modality, :func:`make_config`), :mod:`~biosig.features.presets.compute` (the per-modality
computation, :func:`compute_features`), :mod:`~biosig.features.presets.featureset` (the result
and its .npz file), :mod:`~biosig.features.presets.summary` (a features-table row).
"""

from biosig.features.presets.compute import compute_features
from biosig.features.presets.config import (
    MODALITIES,
    CoughConfig,
    ECGConfig,
    EEGConfig,
    LungConfig,
    PCGConfig,
    PresetConfig,
    SpeechConfig,
    make_config,
)
from biosig.features.presets.featureset import FeatureSet, load_feature_set
from biosig.features.presets.summary import extract_features, summarize

__all__ = [
    "FeatureSet", "PresetConfig", "PCGConfig", "LungConfig", "CoughConfig", "SpeechConfig",
    "ECGConfig", "EEGConfig", "MODALITIES", "make_config", "compute_features",
    "extract_features", "summarize", "load_feature_set",
]
