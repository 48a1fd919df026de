"""EDF, EDF+ and BDF files through mne, with EDF+ annotations.

Each channel comes in the physical unit its header declares (``uV`` for EEG, ``mV`` for an ECG
channel of a polysomnogram, ``degC`` for a temperature ...): mne scales micro- and millivolts to
volts and leaves every other unit as stored, and that scaling is undone per channel. Micro signs
(``µV``, ``μV``) are written ``uV``.
"""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np

from biosig.errors import InputError
from biosig.io.core import RecordingInfo
from biosig.signal import Annotations, Signal


def _raw(path: Path, preload: bool):
    reader = mne.io.read_raw_bdf if path.suffix.lower() == ".bdf" else mne.io.read_raw_edf
    try:
        return reader(str(path), preload=preload, verbose="error", encoding="latin1")
    except Exception as exc:  # mne raises many types for a bad header; re-raised as one
        first = (str(exc).strip().splitlines() or [""])[0]
        if path.stat().st_size == 0:
            raise InputError(path, "file is empty (0 bytes)") from exc
        raise InputError(path, f"corrupt EDF/BDF file ({type(exc).__name__}: {first})") from exc


#: The header units mne scales to volts (``mne.io.edf``: every other unit is left as stored).
_MICRO = ("\u03bcV", "\u00b5V", "\x83\xcaV", "uV")
_ANNOTATION_LABELS = ("EDF Annotations", "BDF Annotations")


def _declared_units(path: Path) -> list[str]:
    """The physical dimension of each signal in the EDF/BDF header, annotation signals left out
    (as mne leaves them out of its channels)."""
    with open(path, "rb") as fh:
        head = fh.read(256)
        try:
            ns = int(head[252:256].decode("latin-1").strip())
        except ValueError:
            raise InputError(path, f"corrupt EDF/BDF header (signal count "
                                   f"{head[252:256]!r})") from None
        block = fh.read(256 * ns)
    labels = [block[16 * i:16 * (i + 1)].decode("latin-1").strip() for i in range(ns)]
    dims = [block[96 * ns + 8 * i:96 * ns + 8 * (i + 1)].decode("latin-1").strip()
            for i in range(ns)]
    return [d for lab, d in zip(labels, dims) if lab not in _ANNOTATION_LABELS]


def _units(raw, path: Path) -> tuple[list[str], np.ndarray]:
    """Units per channel and the factor from mne's values to them."""
    declared = _declared_units(path)
    if len(declared) != len(raw.ch_names):
        raise InputError(path, f"EDF/BDF header lists {len(declared)} signals, mne read "
                               f"{len(raw.ch_names)} channels")
    units, scale = [], []
    for dim in declared:
        if dim in _MICRO:
            units.append("uV")
            scale.append(1e6)
        elif dim == "mV":
            units.append("mV")
            scale.append(1e3)
        else:
            units.append(dim)
            scale.append(1.0)
    return units, np.asarray(scale, dtype=np.float64)[:, None]


def _annotations(raw, path: Path) -> Annotations:
    a = raw.annotations
    return Annotations(np.asarray(a.onset, dtype=np.float64),
                       np.asarray(a.duration, dtype=np.float64),
                       [str(d) for d in a.description], [], "edf+" if len(a) else path.name)


def read_info(path: Path, *, source_fs=None):
    raw = _raw(path, preload=False)
    units, _ = _units(raw, path)
    return RecordingInfo(str(path), "edf", float(raw.info["sfreq"]), int(raw.n_times),
                         list(raw.ch_names), units, raw.info["meas_date"])


def read(path: Path, *, source_fs=None, annotations="auto") -> Signal:
    raw = _raw(path, preload=True)
    units, scale = _units(raw, path)
    data = (raw.get_data() * scale).astype(np.float32)
    ann = _annotations(raw, path) if annotations else None
    return Signal(data, float(raw.info["sfreq"]), list(raw.ch_names), units,
                  raw.info["meas_date"], ann, str(path))


def read_edf_annotations(path: Path) -> Annotations:
    if not path.exists():
        raise InputError(path, "file not found")
    return _annotations(_raw(path, preload=False), path)
