"""Reading recordings: :func:`load` returns a :class:`~biosig.signal.Signal`, :func:`info` reads
only the header.

Supported formats (chosen by extension):

=================  =====================================================================
audio              ``.wav .flac .ogg .opus .mp3 .aiff .aif`` (soundfile / libsndfile)
WFDB               ``.hea`` with its ``.dat``/``.mat``/``.wav`` signal files (wfdb); the record
                   name without extension works too; annotations (``.atr``, ``.qrs`` ...) load
                   alongside
EDF / EDF+ / BDF   ``.edf .bdf`` (mne), with EDF+ annotations
MATLAB             ``.mat`` without a WFDB header: the largest numeric array; needs ``source_fs``
plain text         ``.txt`` with one number per line (the Bonn EEG segments: 4097 samples at
                   173.61 Hz are recognised); other text needs ``source_fs``
=================  =====================================================================
"""

from biosig.io.core import (
    RecordingInfo,
    info,
    load,
    read_annotations,
    supported_extensions,
    validate_signal,
)

__all__ = ["load", "info", "RecordingInfo", "read_annotations", "supported_extensions",
           "validate_signal"]
