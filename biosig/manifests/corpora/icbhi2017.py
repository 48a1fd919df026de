"""ICBHI 2017 Respiratory Sound Database: one line per annotated respiratory cycle."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biosig.errors import InputError, ManifestError
from biosig.manifests.corpora._common import (
    corpus_root,
    make_record,
    read_info,
    relpath,
    root_hint,
    skips_unreadable,
)
from biosig.manifests.schema import Record
from biosig.signal import Annotations

__all__ = ["prepare_icbhi2017", "read_icbhi_cycles", "parse_icbhi_filename", "IcbhiFileName",
           "cycle_class", "ICBHI_DEVICES", "ICBHI_LOCATIONS"]

#: Recording equipment codes of the file names (filename_format.txt).
ICBHI_DEVICES = {"AKGC417L": "AKG C417L Microphone",
                 "LittC2SE": "3M Littmann Classic II SE Stethoscope",
                 "Litt3200": "3M Littmann 3200 Electronic Stethoscope",
                 "Meditron": "WelchAllyn Meditron Master Elite Electronic Stethoscope"}
#: Chest location codes: trachea, or {anterior, posterior, lateral} x {left, right}.
ICBHI_LOCATIONS = {"Tc": "trachea", "Al": "anterior left", "Ar": "anterior right",
                   "Pl": "posterior left", "Pr": "posterior right", "Ll": "lateral left",
                   "Lr": "lateral right"}
_ACQUISITION = {"sc": "sequential", "mc": "simultaneous"}
_NAME = re.compile(r"^(?P<patient>\d+)_(?P<index>[0-9A-Za-z]+)_(?P<location>[A-Z][a-z])_"
                   r"(?P<mode>sc|mc)_(?P<device>[A-Za-z0-9]+)$")


@dataclass(frozen=True)
class IcbhiFileName:
    """The parts of an ICBHI file name ``<patient>_<index>_<location>_<mode>_<device>``."""

    patient: str
    recording_index: str
    location: str
    acquisition_mode: str
    device: str


def parse_icbhi_filename(name: str) -> IcbhiFileName:
    """Parse ``104_1b1_Al_sc_Litt3200`` (extension optional) per ``filename_format.txt``.

    Raises
    ------
    ManifestError
        The name does not follow the format or uses an unknown location/device code.
    """
    stem = Path(name).stem if Path(name).suffix in (".wav", ".txt") else name
    m = _NAME.match(stem)
    if not m or m["location"] not in ICBHI_LOCATIONS or m["device"] not in ICBHI_DEVICES:
        raise ManifestError(f"{name}: icbhi2017: file name does not follow "
                            f"<patient>_<index>_<location>_<sc|mc>_<device> with location in "
                            f"{'/'.join(ICBHI_LOCATIONS)} and device in "
                            f"{'/'.join(ICBHI_DEVICES)}")
    return IcbhiFileName(m["patient"], m["index"], m["location"], m["mode"], m["device"])


def cycle_class(crackles: int, wheezes: int) -> str:
    """The 4-class label of a cycle: ``normal``, ``crackle``, ``wheeze`` or ``both``."""
    return {(0, 0): "normal", (1, 0): "crackle", (0, 1): "wheeze", (1, 1): "both"}[
        (int(crackles), int(wheezes))]


def _read_cycles(p: Path) -> list[tuple[float, float, int, int]]:
    if not p.is_file():
        raise InputError(p, "cycle annotation file not found")
    out = []
    with open(p, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                start, end = float(parts[0]), float(parts[1])
                c, w = int(parts[2]), int(parts[3])
                if len(parts) != 4 or c not in (0, 1) or w not in (0, 1) or end <= start:
                    raise ValueError
            except (ValueError, IndexError):
                raise InputError(f"{p}:{lineno}", f"expected 'start end crackles wheezes' "
                                                  f"with 0/1 flags and end > start, got "
                                                  f"{line.strip()!r}") from None
            out.append((start, end, c, w))
    return out


def read_icbhi_cycles(path) -> Annotations:
    """Read an ICBHI cycle file (start_s, end_s, crackles, wheezes per line) as Annotations.

    Returns
    -------
    Annotations
        One event per respiratory cycle: ``onset_s`` = start, ``duration_s`` = end - start,
        label = ``normal``/``crackle``/``wheeze``/``both``, aux = ``"crackles=C,wheezes=W"``.
    """
    p = Path(path)
    cyc = _read_cycles(p)
    return Annotations(np.asarray([c[0] for c in cyc], dtype=np.float64),
                       np.asarray([c[1] - c[0] for c in cyc], dtype=np.float64),
                       [cycle_class(c[2], c[3]) for c in cyc],
                       [f"crackles={c[2]},wheezes={c[3]}" for c in cyc], p.name)


def _read_diagnosis(root: Path) -> dict[str, str]:
    p = root / "patient_diagnosis.csv"
    if not p.is_file():
        raise ManifestError(f"{root}: icbhi2017: patient_diagnosis.csv not found")
    out = {}
    with open(p, encoding="utf-8") as f:
        for line in f:
            parts = [x.strip() for x in re.split(r"[,\t;]", line.strip()) if x.strip()]
            if len(parts) >= 2 and parts[0].isdigit():  # the header line (ID,CLASS) is skipped
                out[parts[0]] = parts[1]
    return out


def _read_demographics(root: Path) -> dict[str, dict]:
    p = root / "demographic_info.txt"
    out: dict[str, dict] = {}
    if not p.is_file():
        return out
    names = ("age", "sex", "adult_bmi", "child_weight_kg", "child_height_cm")
    with open(p, encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2 or not parts[0].isdigit():
                continue
            row = {}
            for key, v in zip(names, parts[1:]):
                if v == "NA":
                    row[key] = None
                elif key == "sex":
                    row[key] = v
                else:
                    try:
                        row[key] = float(v)
                    except ValueError:
                        row[key] = v
            out[parts[0]] = row
    return out


@skips_unreadable
def prepare_icbhi2017(root) -> Iterator[Record]:
    """One segment line per respiratory cycle of every ``.wav`` with its ``.txt`` under ``root``.

    Parameters
    ----------
    root : str or PathLike
        The folder with ``patient_diagnosis.csv`` and the recordings (directly or in
        ``audio_and_txt_files/``, any depth).

    Yields
    ------
    Record
        ``id`` = ``<file stem>_c<NNN>`` (cycle number from 0), ``start_s``/``end_s`` from the
        cycle file; ``labels = {"crackles": 0|1, "wheezes": 0|1, "cycle_class":
        normal|crackle|wheeze|both, "diagnosis": ...}``; ``device`` and ``location`` parsed
        from the file name; ``subject`` = patient number; ``annotations.cycles`` = the
        ``.txt``; ``meta`` = recording index, acquisition mode, demographics.
    """
    root = corpus_root(root, "icbhi2017")
    hint = root_hint(root)
    diagnosis = _read_diagnosis(root)
    demo = _read_demographics(root)
    wavs = sorted(root.rglob("*.wav"), key=lambda p: p.name)
    for wav in wavs:
        txt = wav.with_suffix(".txt")
        if not txt.is_file():
            raise ManifestError(f"{wav}: icbhi2017: cycle file {txt.name} not found")
        name = parse_icbhi_filename(wav.stem)
        if name.patient not in diagnosis:
            raise ManifestError(f"{wav}: icbhi2017: patient {name.patient} is not in "
                                f"patient_diagnosis.csv")
        meta = {"recording_index": name.recording_index,
                "acquisition_mode": _ACQUISITION[name.acquisition_mode],
                "device_name": ICBHI_DEVICES[name.device],
                "location_name": ICBHI_LOCATIONS[name.location],
                **demo.get(name.patient, {})}
        ann = {"cycles": relpath(txt, root)}
        header = read_info(wav, corpus="icbhi2017")
        for i, (start, end, c, w) in enumerate(_read_cycles(txt)):
            yield make_record(wav, root, id=f"{wav.stem}_c{i:03d}", corpus="icbhi2017",
                              modality="lung", subject=name.patient, hint=hint,
                              start_s=start, end_s=end,
                              labels={"crackles": c, "wheezes": w,
                                      "cycle_class": cycle_class(c, w),
                                      "diagnosis": diagnosis[name.patient]},
                              device=name.device, location=name.location,
                              annotations=ann, meta=dict(meta), rec_info=header)
