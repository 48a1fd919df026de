"""Bonn University epilepsy EEG (Andrzejak et al. 2001): sets A-E, single-channel segments."""

from __future__ import annotations

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

__all__ = ["prepare_bonn", "BONN_SETS"]

#: File-name letter -> (set, condition, 3-class label). Andrzejak et al. 2001, Phys. Rev. E 64.
BONN_SETS = {
    "Z": ("A", "healthy_eyes_open", "healthy"),
    "O": ("B", "healthy_eyes_closed", "healthy"),
    "N": ("C", "interictal_opposite_hippocampus", "interictal"),
    "F": ("D", "interictal_epileptogenic_zone", "interictal"),
    "S": ("E", "seizure", "ictal"),
}


@skips_unreadable
def prepare_bonn(root) -> Iterator[Record]:
    """One record per segment file (``Z001.txt`` ... ``S100.txt``) under ``root``, any depth.

    Parameters
    ----------
    root : str or PathLike
        The folder of the sets (``A_Z/``, ``Z/`` ... or all files together); the set comes from
        the file name's letter, so folder names do not matter.

    Yields
    ------
    Record
        ``labels = {"set": A-E, "set_letter": Z|O|N|F|S, "condition": ..., "class3":
        healthy|interictal|ictal, "seizure": bool}``; ``subject`` is null: the dataset does
        not say which of its 5 volunteers / 5 patients recorded a segment, so splits are by
        segment and may put one person's segments on two sides (documented limitation).
    """
    root = corpus_root(root, "bonn")
    hint = root_hint(root)
    files = sorted((p for p in root.rglob("*") if p.suffix.lower() == ".txt"
                    and p.stem[:1].upper() in BONN_SETS and p.stem[1:].isdigit()),
                   key=lambda p: (p.stem[:1].upper(), int(p.stem[1:])))
    if not files:
        raise ManifestError(f"{root}: bonn: no segment files like Z001.txt found")
    for p in files:
        letter = p.stem[:1].upper()
        set_name, condition, class3 = BONN_SETS[letter]
        yield make_record(p, root, id=f"{letter}{int(p.stem[1:]):03d}", corpus="bonn",
                          modality="eeg", subject=None, hint=hint,
                          labels={"set": set_name, "set_letter": letter,
                                  "condition": condition, "class3": class3,
                                  "seizure": class3 == "ictal"},
                          meta={"folder": relpath(p.parent, root)})
