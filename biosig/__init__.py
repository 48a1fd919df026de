"""biosig: medical audio and biosignal analysis.

Load any recording with :func:`biosig.load`, filter it with :mod:`biosig.dsp`, turn it into
spectrograms and features with :mod:`biosig.features`, and describe corpora with
:mod:`biosig.manifests`.

The subpackages are attributes loaded on first use (as librosa's are): ``import biosig`` loads
the recording reader only, and ``biosig.ecg.score_qrs(...)`` imports :mod:`biosig.ecg` when it
is first reached. The command line relies on this to keep ``biosig --help`` light.
"""

import lazy_loader as _lazy

from biosig.errors import BiosigError, ConfigError, InputError, InputTypeError, ManifestError
from biosig.io import info, load
from biosig.signal import Annotations, Signal

__version__ = "0.1.0"

__all__ = ["load", "info", "Signal", "Annotations", "BiosigError", "InputError", "InputTypeError",
           "ConfigError", "ManifestError", "__version__"]

_SUBMODULES = ["asr", "batch", "calibration", "cli", "datasets", "drift", "dsp", "ecg", "extras",
               "features", "fileio", "manifests", "metrics", "models", "pcg", "plot", "progress",
               "synth", "train", "validate", "whisper_audio"]
__getattr__, _lazy_dir, _ = _lazy.attach(__name__, submodules=_SUBMODULES)


def __dir__():
    return sorted(set(globals()) | set(_lazy_dir()))
