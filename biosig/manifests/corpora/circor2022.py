"""CirCor DigiScope phonocardiogram dataset (PhysioNet/CinC Challenge 2022)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from biosig.errors import InputError, ManifestError
from biosig.manifests.corpora._common import (
    corpus_root,
    make_record,
    relpath,
    root_hint,
    skips_unreadable,
    warn_missing,
)
from biosig.manifests.schema import Record
from biosig.signal import Annotations

__all__ = ["prepare_circor2022", "read_circor_segmentation", "CIRCOR_SEGMENT_LABELS"]

#: Values of the third column of the CirCor ``.tsv`` segmentation files.
CIRCOR_SEGMENT_LABELS = {0: "unannotated", 1: "S1", 2: "systole", 3: "S2", 4: "diastole"}

# training_data.csv column -> meta key (patient-level; the labels are taken separately).
_META_COLUMNS = {
    "Age": "age", "Sex": "sex", "Height": "height_cm", "Weight": "weight_kg",
    "Pregnancy status": "pregnant", "Murmur locations": "murmur_locations",
    "Most audible location": "most_audible_location",
    "Systolic murmur timing": "systolic_murmur_timing",
    "Systolic murmur shape": "systolic_murmur_shape",
    "Systolic murmur grading": "systolic_murmur_grading",
    "Systolic murmur pitch": "systolic_murmur_pitch",
    "Systolic murmur quality": "systolic_murmur_quality",
    "Diastolic murmur timing": "diastolic_murmur_timing",
    "Diastolic murmur shape": "diastolic_murmur_shape",
    "Diastolic murmur grading": "diastolic_murmur_grading",
    "Diastolic murmur pitch": "diastolic_murmur_pitch",
    "Diastolic murmur quality": "diastolic_murmur_quality",
}


def read_circor_segmentation(path, *, keep_unannotated: bool = False) -> Annotations:
    """Read a CirCor ``.tsv`` segmentation (start_s, end_s, state) as Annotations.

    Parameters
    ----------
    path : str or PathLike
        ``<patient>_<location>.tsv``: tab-separated ``start end state`` per line with state
        1 = S1, 2 = systole, 3 = S2, 4 = diastole, 0 = unannotated.
    keep_unannotated : bool
        Keep the state-0 intervals (label ``"unannotated"``).

    Returns
    -------
    Annotations
        ``onset_s`` = start, ``duration_s`` = end - start, labels ``S1``/``systole``/``S2``/
        ``diastole``; ``source`` is the file name.

    Raises
    ------
    InputError
        Missing file or a malformed line (named by ``file:line``).
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "segmentation file not found")
    onset, duration, labels = [], [], []
    with open(p, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                start, end, state = float(parts[0]), float(parts[1]), int(float(parts[2]))
                if len(parts) != 3 or state not in CIRCOR_SEGMENT_LABELS or end < start:
                    raise ValueError
            except (ValueError, IndexError):
                raise InputError(f"{p}:{lineno}", f"expected 'start<TAB>end<TAB>state' with "
                                                  f"state 0-4 and end >= start, got "
                                                  f"{line.strip()!r}") from None
            if state == 0 and not keep_unannotated:
                continue
            onset.append(start)
            duration.append(end - start)
            labels.append(CIRCOR_SEGMENT_LABELS[state])
    return Annotations(np.asarray(onset), np.asarray(duration), labels, [], p.name)


def _patient_table(root: Path) -> dict[str, dict[str, str]]:
    csv_path = root / "training_data.csv"
    if not csv_path.is_file():
        raise ManifestError(f"{root}: circor2022: training_data.csv not found")
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        need = {"Patient ID", "Murmur", "Murmur locations", "Outcome"}
        if not need <= set(reader.fieldnames or []):
            raise ManifestError(f"{csv_path}:1: missing columns "
                                f"{sorted(need - set(reader.fieldnames or []))}")
        return {row["Patient ID"].strip(): row for row in reader}


def _parse_patient_txt(path: Path) -> tuple[str, list[tuple[str, str, str]], dict[str, str]]:
    """Patient id, [(location, wav name, tsv name)], {'Key': 'value'} of a patient ``.txt``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    try:
        pid, n_rec = lines[0].split()[0], int(lines[0].split()[1])
        recs = []
        for line in lines[1:1 + n_rec]:
            parts = line.split()
            wav = next(x for x in parts[1:] if x.lower().endswith(".wav"))
            tsv = next((x for x in parts[1:] if x.lower().endswith(".tsv")), None)
            recs.append((parts[0], wav, tsv))
    except (IndexError, ValueError, StopIteration):
        raise ManifestError(f"{path}: circor2022: malformed patient file (expected "
                            f"'<id> <n> <fs>' then n lines '<loc> <hea> <wav> <tsv>')") from None
    fields = {}
    for line in lines[1 + n_rec:]:
        if line.startswith("#") and ":" in line:
            k, v = line[1:].split(":", 1)
            fields[k.strip()] = v.strip()
    return pid, recs, fields


def _value(v: str | None):
    if v is None or v.strip() in ("", "nan", "NaN"):
        return None
    v = v.strip()
    if v in ("True", "False"):
        return v == "True"
    try:
        return float(v) if any(c in v for c in ".e") else int(v)
    except ValueError:
        return v


@skips_unreadable
def prepare_circor2022(root) -> Iterator[Record]:
    """One record per recording (.wav) of each patient, sorted by patient then file.

    Parameters
    ----------
    root : str or PathLike
        The folder with ``training_data.csv`` and ``training_data/`` (patient ``.txt`` files,
        ``.wav``, ``.hea``, ``.tsv``).

    Yields
    ------
    Record
        ``subject`` = patient id; ``location`` = auscultation site (AV, PV, TV, MV, Phc);
        ``labels = {"murmur": Present|Absent|Unknown (patient), "outcome": Normal|Abnormal,
        "murmur_at_location": Present|Absent|Unknown}`` where the murmur is present at the
        location when the patient has a murmur and ``Murmur locations`` lists it;
        ``annotations.segmentation`` = the ``.tsv``; ``source`` = recording campaign;
        ``meta`` = age, sex, height, weight, pregnancy, murmur details. Recordings listed in a
        patient file but absent here are skipped with one warning.
    """
    root = corpus_root(root, "circor2022")
    hint = root_hint(root)
    table = _patient_table(root)
    folder = root / "training_data"
    if not folder.is_dir():
        raise ManifestError(f"{root}: circor2022: training_data/ folder not found")
    missing = []
    txts = sorted(folder.glob("*.txt"), key=lambda p: (len(p.stem), p.stem))
    for txt in txts:
        pid, recs, fields = _parse_patient_txt(txt)
        row = table.get(pid)
        src = row if row is not None else fields
        murmur = (src.get("Murmur") or "").strip()
        outcome = (src.get("Outcome") or "").strip()
        if murmur not in ("Present", "Absent", "Unknown"):
            raise ManifestError(f"{txt}: circor2022: patient {pid} has murmur {murmur!r}, "
                                f"expected Present/Absent/Unknown")
        locs = {x for x in (src.get("Murmur locations") or "").split("+")
                if x and x != "nan"}
        meta = {key: _value(src.get(col)) for col, key in _META_COLUMNS.items()}
        meta["patient_file"] = relpath(txt, root)
        campaign = _value(src.get("Campaign"))
        for loc, wav_name, tsv_name in recs:
            wav = folder / wav_name
            if not wav.is_file():
                missing.append(wav_name)
                continue
            if murmur == "Present":
                at_loc = "Present" if loc in locs else "Absent"
            else:
                at_loc = murmur
            ann = None
            if tsv_name and (folder / tsv_name).is_file():
                ann = {"segmentation": relpath(folder / tsv_name, root)}
            yield make_record(wav, root, id=wav.stem, corpus="circor2022", modality="pcg",
                              subject=pid, hint=hint,
                              labels={"murmur": murmur, "outcome": outcome or None,
                                      "murmur_at_location": at_loc},
                              location=loc, source=str(campaign) if campaign else None,
                              annotations=ann, meta=dict(meta))
    warn_missing("circor2022", missing, "recordings listed in patient files")
