"""PhysioNet EEG Motor Movement/Imagery Dataset (eegmmidb): ``S###/S###R##.edf``."""

from __future__ import annotations

import re
from collections.abc import Iterator

from biosig.errors import ManifestError
from biosig.manifests.corpora._common import (
    corpus_root,
    make_record,
    relpath,
    root_hint,
    skips_unreadable,
)
from biosig.manifests.schema import Record

__all__ = ["prepare_eegmmidb", "EEGMMIDB_RUNS"]

#: Run number -> task (Schalk et al. 2004; PhysioNet eegmmidb description).
EEGMMIDB_RUNS = {
    1: "baseline_eyes_open", 2: "baseline_eyes_closed",
    3: "motor_left_right_fist", 7: "motor_left_right_fist", 11: "motor_left_right_fist",
    4: "imagery_left_right_fist", 8: "imagery_left_right_fist", 12: "imagery_left_right_fist",
    5: "motor_fists_feet", 9: "motor_fists_feet", 13: "motor_fists_feet",
    6: "imagery_fists_feet", 10: "imagery_fists_feet", 14: "imagery_fists_feet",
}
_NAME = re.compile(r"^S(?P<subject>\d{3})R(?P<run>\d{2})$", re.IGNORECASE)


@skips_unreadable
def prepare_eegmmidb(root) -> Iterator[Record]:
    """One record per ``S###R##.edf`` under ``root`` (any depth), sorted by subject and run.

    Yields
    ------
    Record
        ``subject`` = the folder ``S###``; ``labels = {"run": int, "task": ...}``;
        ``annotations.events`` = the ``.edf.event`` file where present (the events are also
        embedded as EDF+ annotations).
    """
    root = corpus_root(root, "eegmmidb")
    hint = root_hint(root)
    files = []
    for p in root.rglob("*"):
        m = _NAME.match(p.stem) if p.suffix.lower() == ".edf" else None
        if m:
            files.append((int(m["subject"]), int(m["run"]), p))
    if not files:
        raise ManifestError(f"{root}: eegmmidb: no S###R##.edf files found")
    for subject, run, p in sorted(files):
        folder = p.parent.name
        subj = folder if re.fullmatch(r"S\d{3}", folder, re.IGNORECASE) else f"S{subject:03d}"
        event = p.with_name(p.name + ".event")
        ann = {"events": relpath(event, root)} if event.is_file() else None
        yield make_record(p, root, id=p.stem.upper(), corpus="eegmmidb", modality="eeg",
                          subject=subj, hint=hint,
                          labels={"run": run, "task": EEGMMIDB_RUNS.get(run, "unknown")},
                          annotations=ann)
