"""PhysioNet/CinC Challenge 2017 (AF classification from short single-lead ECG)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from biosig.errors import ManifestError
from biosig.manifests.corpora._common import (
    corpus_root,
    log,
    make_record,
    root_hint,
    skips_unreadable,
    warn_missing,
)
from biosig.manifests.schema import Record

__all__ = ["prepare_cinc2017", "CINC2017_CLASSES"]

#: REFERENCE.csv codes -> names (Clifford et al. 2017).
CINC2017_CLASSES = {"N": "normal", "A": "atrial_fibrillation", "O": "other_rhythm",
                    "~": "noisy"}


def _reference(root: Path) -> Path:
    for cand in (root / "REFERENCE.csv", root / "training2017" / "REFERENCE.csv"):
        if cand.is_file():
            return cand
    raise ManifestError(f"{root}: cinc2017: REFERENCE.csv not found (looked in the root and "
                        f"in training2017/)")


@skips_unreadable
def prepare_cinc2017(root) -> Iterator[Record]:
    """One record per row of ``REFERENCE.csv`` (``record,label``), sorted by record name.

    Parameters
    ----------
    root : str or PathLike
        The folder with ``REFERENCE.csv`` and the ``.hea``/``.mat`` records, or its parent
        holding ``training2017/``.

    Yields
    ------
    Record
        ``labels = {"rhythm": N|A|O|~, "rhythm_name": ...}``; subject = record name (the
        challenge gives no patient ids). Rows whose record is missing are skipped with one
        warning; ``.hea`` files not in REFERENCE.csv are reported the same way.
    """
    root = corpus_root(root, "cinc2017")
    hint = root_hint(root)
    ref = _reference(root)
    rows: dict[str, str] = {}
    with open(ref, newline="", encoding="utf-8") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row or not row[0].strip():
                continue
            if lineno == 1 and len(row) >= 2 and row[1].strip() not in CINC2017_CLASSES \
                    and not row[0].strip().startswith("A0"):
                continue                     # a column header (e.g. "data_source,class")
            if len(row) < 2 or row[1].strip() not in CINC2017_CLASSES:
                raise ManifestError(f"{ref}:{lineno}: expected 'record,label' with label in "
                                    f"{'/'.join(CINC2017_CLASSES)}, got {','.join(row)!r}")
            rows[row[0].strip()] = row[1].strip()
    folder = ref.parent
    missing = []
    for name in sorted(rows):
        hea = folder / f"{name}.hea"
        if not hea.is_file():
            missing.append(hea.name)
            continue
        code = rows[name]
        yield make_record(hea, root, id=name, corpus="cinc2017", modality="ecg", subject=name,
                          labels={"rhythm": code, "rhythm_name": CINC2017_CLASSES[code]},
                          hint=hint)
    warn_missing("cinc2017", missing, "records listed in REFERENCE.csv")
    extra = sorted(p.name for p in folder.glob("*.hea") if p.stem not in rows)
    if extra:
        log.warning("cinc2017: %d headers not in REFERENCE.csv, skipped (first: %s)",
                    len(extra), extra[0])
