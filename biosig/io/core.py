"""Format dispatch, validation and resampling around the individual readers."""

from __future__ import annotations

import datetime as _dt
import importlib
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from biosig.errors import InputError
from biosig.signal import Annotations, Signal, summary_fields
from biosig.validate import check_fs, check_option, check_signal

__all__ = ["load", "info", "RecordingInfo", "read_annotations", "supported_extensions",
           "validate_signal"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")
WFDB_EXTENSIONS = (".hea",)
EDF_EXTENSIONS = (".edf", ".bdf")
TEXT_EXTENSIONS = (".txt",)
MAT_EXTENSIONS = (".mat",)

#: Bonn EEG segments (Andrzejak et al. 2001): 4097 samples at 173.61 Hz, one number per line.
BONN_FS = 173.61
BONN_N_SAMPLES = 4097

#: Largest sampling rate accepted from a file header (beyond this the header is taken as corrupt).
MAX_FS = 1_000_000.0


def supported_extensions() -> tuple[str, ...]:
    """File extensions :func:`load` understands (lower case, with the dot)."""
    return AUDIO_EXTENSIONS + WFDB_EXTENSIONS + (".dat",) + EDF_EXTENSIONS + TEXT_EXTENSIONS \
        + MAT_EXTENSIONS


@dataclass(frozen=True)
class RecordingInfo:
    """What a recording's header says, without reading its samples.

    Attributes
    ----------
    path : str
        The file (for WFDB, the ``.hea`` header).
    format : str
        ``"audio"``, ``"wfdb"``, ``"edf"``, ``"text"`` or ``"mat"``.
    fs : float
        Sampling rate in Hz.
    n_samples : int
        Samples per channel.
    channels : list of str
    units : list of str
    start_time : datetime or None
    """

    path: str
    format: str
    fs: float
    n_samples: int
    channels: list[str]
    units: list[str]
    start_time: _dt.datetime | None = None

    @property
    def n_channels(self) -> int:
        return len(self.channels)

    @property
    def duration_s(self) -> float:
        return self.n_samples / self.fs

    def summary(self) -> str:
        """One line: path, format, channels, sampling rate, duration, units."""
        return (f"{self.path}  {self.format}  "
                f"{summary_fields(self.channels, self.fs, self.n_samples, self.units)}")


def _resolve(path) -> tuple[Path, str]:
    """Return the file to open and its format, or raise InputError naming the path."""
    p = Path(os.fspath(path))
    ext = p.suffix.lower()
    if ext in (".dat", ".atr", ".qrs", ".ecg") or (ext == "" and p.with_suffix(".hea").exists()):
        header = p.with_suffix(".hea")
        if header.exists():
            return header, "wfdb"
        raise InputError(p, f"WFDB header {header.name} not found next to it")
    if ext == ".mat" and p.with_suffix(".hea").exists():
        return p.with_suffix(".hea"), "wfdb"
    if not p.exists():
        raise InputError(p, "file not found")
    if p.is_dir():
        raise InputError(p, "is a directory, expected a recording file")
    if ext in AUDIO_EXTENSIONS:
        return p, "audio"
    if ext in WFDB_EXTENSIONS:
        return p, "wfdb"
    if ext in EDF_EXTENSIONS:
        return p, "edf"
    if ext in TEXT_EXTENSIONS:
        return p, "text"
    if ext in MAT_EXTENSIONS:
        return p, "mat"
    raise InputError(p, f"unknown file extension {ext!r}; supported: "
                        f"{' '.join(supported_extensions())}")


def _header_fs(path, fs) -> float:
    """The sampling rate a file's header gives, checked (InputError naming the file)."""
    return check_fs(fs, name="sampling rate in header", path=path, max_hz=MAX_FS)


#: The reader module of each format. Each imports its library at its top (soundfile, wfdb, mne,
#: scipy.io) and is itself imported on its format's first use, so ``import biosig`` loads none of
#: them and reading a WAV file never loads mne.
_READERS = {"audio": "biosig.io._audio", "wfdb": "biosig.io._wfdb", "edf": "biosig.io._edf",
            "text": "biosig.io._text", "mat": "biosig.io._mat"}


def _reader(fmt: str):
    """The reader module of format ``fmt`` (a key of ``_READERS``), imported on first use."""
    return importlib.import_module(_READERS[fmt])


def info(path, *, source_fs: float | None = None) -> RecordingInfo:
    """Read a recording's header: sampling rate, length, channels, units.

    Parameters
    ----------
    path : str or PathLike
        A file in one of the formats listed in :mod:`biosig.io`.
    source_fs : float > 0, optional
        Sampling rate of formats that do not store one (plain text, MATLAB).

    Returns
    -------
    RecordingInfo

    Raises
    ------
    InputError
        Missing file, unknown extension, unreadable or inconsistent header, bad sampling rate.
    """
    if source_fs is not None:
        source_fs = check_fs(source_fs, name="source_fs")
    p, fmt = _resolve(path)
    rec = _reader(fmt).read_info(p, source_fs=source_fs)
    _header_fs(p, rec.fs)
    if rec.n_samples <= 0:
        raise InputError(p, "recording is empty (0 samples)")
    return rec


def validate_signal(data: np.ndarray, *, path=None, what: str = "signal",
                    on_nan: str = "raise", allow_silent: bool = False) -> np.ndarray:
    """Check samples for emptiness, NaN/inf and silence; return them (possibly repaired).

    Parameters
    ----------
    data : np.ndarray [shape=(channels, samples) or (samples,)]
        Real samples (complex, text or object samples raise
        :class:`~biosig.errors.InputTypeError`).
    path : str, optional
        File to name in errors.
    what : str
        Name used in errors when there is no path.
    on_nan : {"raise", "interpolate"}
        ``"interpolate"`` fills NaN runs linearly from their neighbours; a channel with no finite
        value is an error either way.
    allow_silent : bool
        Accept a recording whose every channel is constant.
    """
    check_option(on_nan, "on_nan", ("raise", "interpolate"))
    shape = np.shape(data)
    data = np.atleast_2d(check_signal(data, name=what, ndim=(1, 2), min_samples=0,
                                      allow_nan=True, path=path))
    if data.size == 0 or data.shape[-1] == 0:
        raise InputError(path, "recording is empty (0 samples)", what=what)
    finite = np.isfinite(data)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.any(axis=-1))
        if bad_rows.size:
            raise InputError(path, f"channel {int(bad_rows[0])} has no finite value "
                                   f"(all NaN or inf)", what=what)
        n_bad = int((~finite).sum())
        if on_nan == "raise":
            first = np.argwhere(~finite)[0]
            raise InputError(path, f"{n_bad} NaN/inf samples (first at channel {first[0]}, "
                                   f"sample {first[1]}); pass on_nan='interpolate' to fill them",
                             what=what)
        data = data.copy()
        idx = np.arange(data.shape[-1])
        for c in range(data.shape[0]):
            ok = finite[c]
            if not ok.all():
                data[c, ~ok] = np.interp(idx[~ok], idx[ok], data[c, ok])
    if not allow_silent:
        span = data.max(axis=-1) - data.min(axis=-1)
        if np.all(span == 0):
            raise InputError(path, f"recording is silent (every channel is constant at "
                                   f"{float(data.flat[0]):g})", what=what)
    return data.reshape(shape)


def load(path, *, target_fs: float | None = None, channels=None, annotations="auto",
         source_fs: float | None = None, expected_fs: float | None = None,
         on_nan: str = "raise", allow_silent: bool = False) -> Signal:
    """Load a recording as a float32 :class:`~biosig.signal.Signal` ``(channels, samples)``.

    Parameters
    ----------
    path : str or PathLike
        A file in one of the formats listed in :mod:`biosig.io` (a WFDB record may be named by
        its ``.hea``, its ``.dat`` or its name without extension).
    target_fs : float > 0, optional
        Resample to this rate with a polyphase anti-aliasing filter
        (:func:`biosig.dsp.resample`); annotations keep their times in seconds.
    channels : list of str or int, optional
        Keep only these channels, in this order.
    annotations : "auto", str, None or False
        WFDB: annotation extension to read (``"atr"``, ``"qrs"`` ...); ``"auto"`` reads ``.atr``
        when present. EDF+: ``"auto"`` or any string reads the embedded annotations. ``None`` or
        ``False``: none.
    source_fs : float > 0, optional
        Sampling rate for formats that do not store one (plain text other than Bonn, MATLAB).
    expected_fs : float > 0, optional
        Raise :class:`~biosig.errors.InputError` if the file's rate differs (before resampling).
    on_nan : {"raise", "interpolate"}
        What to do with NaN/inf samples (see :func:`validate_signal`).
    allow_silent : bool
        Accept a recording whose every channel is constant.

    Returns
    -------
    Signal

    Raises
    ------
    InputError
        Missing file, unknown extension, corrupt or truncated header or data, data shorter than
        the header says, NaNs, empty or silent signal, wrong or invalid sampling rate. The message
        is one line naming the file.

    Examples
    --------
    >>> import biosig
    >>> sig = biosig.load("100.hea", target_fs=250)            # doctest: +SKIP
    >>> sig.data.shape, sig.fs, len(sig.annotations)           # doctest: +SKIP
    ((2, 451389), 250.0, 2274)
    """
    if source_fs is not None:
        source_fs = check_fs(source_fs, name="source_fs")
    if target_fs is not None:
        target_fs = check_fs(target_fs, name="target_fs")
    if expected_fs is not None:
        expected_fs = check_fs(expected_fs, name="expected_fs")
    p, fmt = _resolve(path)
    sig = _reader(fmt).read(p, source_fs=source_fs, annotations=annotations)
    fs = _header_fs(p, sig.fs)
    if expected_fs is not None and not math.isclose(fs, float(expected_fs), rel_tol=1e-6):
        raise InputError(p, f"sampling rate is {fs:g} Hz, expected {float(expected_fs):g} Hz")
    if channels is not None:
        missing = [c for c in channels if isinstance(c, str) and c not in sig.channels]
        if missing:
            raise InputError(p, f"channels {missing} not found; the file has {sig.channels}")
        sig = sig.pick(channels)
    data = validate_signal(np.ascontiguousarray(sig.data, dtype=np.float32), path=p,
                           on_nan=on_nan, allow_silent=allow_silent)
    sig = replace(sig, data=data, path=str(p))
    if target_fs is not None:
        if not math.isclose(target_fs, fs, rel_tol=1e-9):
            from biosig.dsp import resample  # heavy: numba and scipy.signal, only to resample
            sig = replace(sig, data=resample(sig.data, fs=fs, target_fs=target_fs),
                          fs=target_fs)
    return sig


def read_annotations(path, extension: str = "atr") -> Annotations:
    """Read a WFDB annotation file (``<record>.<extension>``) or EDF+ annotations.

    Parameters
    ----------
    path : str or PathLike
        The record (``100``, ``100.hea``, ``100.dat``) or the annotation file itself
        (``100.atr``); an EDF file for EDF+ annotations.
    extension : str
        Annotation file extension for WFDB records.

    Returns
    -------
    Annotations
    """
    p = Path(os.fspath(path))
    if p.suffix.lower() in EDF_EXTENSIONS:
        return _reader("edf").read_edf_annotations(p)
    if p.suffix and p.suffix.lower() not in (".hea", ".dat", ".mat", ".wav"):
        extension = p.suffix[1:]
    return _reader("wfdb").read_wfdb_annotations(p.with_suffix(""), extension)
