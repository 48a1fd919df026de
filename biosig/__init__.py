"""biosig: medical audio and biosignal analysis.

Load any recording with :func:`biosig.load`, filter it with :mod:`biosig.dsp`, turn it into
spectrograms and features with :mod:`biosig.features`, and describe corpora with
:mod:`biosig.manifests`.
"""

from biosig.errors import BiosigError, ConfigError, InputError, InputTypeError, ManifestError
from biosig.io import info, load
from biosig.signal import Annotations, Signal

__version__ = "0.1.0"

__all__ = ["load", "info", "Signal", "Annotations", "BiosigError", "InputError", "InputTypeError",
           "ConfigError", "ManifestError", "__version__"]
