"""Audio files through soundfile (libsndfile): WAV, FLAC, OGG/Vorbis/Opus, MP3, AIFF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from biosig.errors import InputError
from biosig.io.core import RecordingInfo
from biosig.signal import Signal


def _open_error(path: Path, exc: Exception) -> InputError:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    size = path.stat().st_size
    if size == 0:
        return InputError(path, "file is empty (0 bytes)")
    if "does not exist" in msg and path.is_file():
        # libsndfile says this for a stream it cannot parse (e.g. a one-frame MP3)
        return InputError(path, f"cannot decode audio: no readable audio stream in its "
                                f"{size} bytes (corrupt or truncated file)")
    return InputError(path, f"cannot decode audio ({msg})")


def read_info(path: Path, *, source_fs=None):
    try:
        i = sf.info(str(path))
    except Exception as exc:  # libsndfile reports every decoding problem as one error type
        raise _open_error(path, exc) from exc
    n = int(i.frames)
    if n <= 0 or n > 2**62:  # some compressed formats report an unknown length
        try:
            n = int(sf.read(str(path), dtype="float32", always_2d=True)[0].shape[0])
        except Exception as exc:  # libsndfile reports every decoding problem as one error type
            raise _open_error(path, exc) from exc
    return RecordingInfo(str(path), "audio", float(i.samplerate), n,
                         [f"ch{c}" for c in range(i.channels)] if i.channels > 1 else ["audio"],
                         ["FS"] * i.channels)


def read(path: Path, *, source_fs=None, annotations="auto") -> Signal:
    try:
        data, fs = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # libsndfile reports every decoding problem as one error type
        raise _open_error(path, exc) from exc
    data = np.ascontiguousarray(data.T)
    n_ch = data.shape[0]
    names = [f"ch{c}" for c in range(n_ch)] if n_ch > 1 else ["audio"]
    return Signal(data, float(fs), names, ["FS"] * n_ch, None, None, str(path))
