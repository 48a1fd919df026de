"""EDF, EDF+ and BDF files through mne, with EDF+ annotations. EEG volts become microvolts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from biosig.errors import InputError
from biosig.signal import Annotations, Signal


def _raw(path: Path, preload: bool):
    import mne
    reader = mne.io.read_raw_bdf if path.suffix.lower() == ".bdf" else mne.io.read_raw_edf
    try:
        return reader(str(path), preload=preload, verbose="error", encoding="latin1")
    except Exception as exc:  # mne raises many types for a bad header; re-raised as one
        first = (str(exc).strip().splitlines() or [""])[0]
        if path.stat().st_size == 0:
            raise InputError(path, "file is empty (0 bytes)") from exc
        raise InputError(path, f"corrupt EDF/BDF file ({type(exc).__name__}: {first})") from exc


def _units(raw) -> tuple[list[str], np.ndarray]:
    """Units per channel and the factor from mne's SI volts to them."""
    import mne
    units, scale = [], []
    for ch in raw.info["chs"]:
        if ch["unit"] == mne.io.constants.FIFF.FIFF_UNIT_V:
            units.append("uV")
            scale.append(1e6)
        else:
            units.append("")
            scale.append(1.0)
    return units, np.asarray(scale, dtype=np.float64)[:, None]


def _annotations(raw, path: Path) -> Annotations:
    a = raw.annotations
    return Annotations(np.asarray(a.onset, dtype=np.float64),
                       np.asarray(a.duration, dtype=np.float64),
                       [str(d) for d in a.description], [], "edf+" if len(a) else path.name)


def read_info(path: Path, *, source_fs=None):
    from biosig.io.core import RecordingInfo
    raw = _raw(path, preload=False)
    units, _ = _units(raw)
    return RecordingInfo(str(path), "edf", float(raw.info["sfreq"]), int(raw.n_times),
                         list(raw.ch_names), units, raw.info["meas_date"])


def read(path: Path, *, source_fs=None, annotations="auto") -> Signal:
    raw = _raw(path, preload=True)
    units, scale = _units(raw)
    data = (raw.get_data() * scale).astype(np.float32)
    ann = _annotations(raw, path) if annotations else None
    return Signal(data, float(raw.info["sfreq"]), list(raw.ch_names), units,
                  raw.info["meas_date"], ann, str(path))


def read_edf_annotations(path: Path) -> Annotations:
    if not path.exists():
        raise InputError(path, "file not found")
    return _annotations(_raw(path, preload=False), path)
