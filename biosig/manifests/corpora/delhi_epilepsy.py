"""Neurology & Sleep Centre (New Delhi) epilepsy EEG segments (Swami et al. 2016)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from biosig.errors import ManifestError
from biosig.manifests.corpora._common import corpus_root, make_record, root_hint, skips_unreadable
from biosig.manifests.schema import Record

__all__ = ["prepare_delhi_epilepsy", "DELHI_FS", "DELHI_STAGES"]

#: Sampling rate of the segments (Datasets Information.txt); the .mat files do not store it.
DELHI_FS = 200.0
DELHI_STAGES = ("ictal", "interictal", "preictal")


def _number(stem: str) -> int:
    m = re.search(r"(\d+)$", stem)
    return int(m.group(1)) if m else -1


@skips_unreadable
def prepare_delhi_epilepsy(root, *, source_fs: float = DELHI_FS) -> Iterator[Record]:
    """One record per ``.mat`` segment in the ``ictal/``, ``interictal/``, ``preictal/`` folders.

    Parameters
    ----------
    root : str or PathLike
        The folder holding the three stage folders.
    source_fs : float
        Sampling rate of the segments (200 Hz); written as ``fs`` and ``source_fs``.

    Yields
    ------
    Record
        ``labels = {"stage": ictal|interictal|preictal, "seizure": bool}``; ``subject`` is null
        (the segments of the 10 patients are not attributed).
    """
    root = corpus_root(root, "delhi_epilepsy")
    hint = root_hint(root)
    found = 0
    for stage in DELHI_STAGES:
        folder = root / stage
        if not folder.is_dir():
            continue
        for p in sorted(folder.glob("*.mat"), key=lambda p: (_number(p.stem), p.stem)):
            found += 1
            yield make_record(p, root, id=f"{stage}/{p.stem}", corpus="delhi_epilepsy",
                              modality="eeg", subject=None, hint=hint, source_fs=source_fs,
                              labels={"stage": stage, "seizure": stage == "ictal"})
    if not found:
        raise ManifestError(f"{root}: delhi_epilepsy: no .mat files in ictal/, interictal/ or "
                            f"preictal/")
