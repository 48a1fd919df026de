"""WFDB folders (PhysioNet mitdb-style): every ``.hea`` under the root, recursively."""

from __future__ import annotations

import re
from collections.abc import Iterator

from biosig.manifests.corpora._common import (
    corpus_root,
    make_record,
    relpath,
    root_hint,
    skips_unreadable,
)
from biosig.manifests.schema import Record

__all__ = ["prepare_wfdb", "WFDB_ANNOTATION_EXTENSIONS", "MITDB_SAME_SUBJECT",
           "parse_header_comments"]

#: Annotation file extensions looked for next to each record (PhysioNet annotator names).
WFDB_ANNOTATION_EXTENSIONS = ("atr", "qrs", "ecg", "ari", "apn", "st", "stf", "pu", "pu0", "pu1",
                              "wqrs", "sqrs", "gqrs", "jqrs", "man", "ann", "arousal", "16a")

#: MIT-BIH Arrhythmia Database: records 201 and 202 come from the same subject (mitdb README).
#: Pass as ``subject_map`` so that a patient-wise split keeps them together.
MITDB_SAME_SUBJECT = {"202": "201"}

_MITDB_FIRST = re.compile(r"^(?P<age>\d+|\?+)\s+(?P<sex>[MF?])\b")
_KEY_VALUE = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9 _/()-]{0,40}):\s*(?P<value>.*)$")


def parse_header_comments(lines: list[str]) -> tuple[dict, dict]:
    """Split WFDB header comment lines into labels and meta.

    ``Key: value`` lines (CinC 2020, PTB) become labels ``key -> value`` (key lower-cased, spaces
    as ``_``). A mitdb-style first line ``<age> <sex> ...`` gives ``meta.age``/``meta.sex``;
    other lines are kept in ``meta.comments``.

    Returns
    -------
    labels, meta : dict, dict
    """
    labels: dict = {}
    meta: dict = {}
    rest: list[str] = []
    for i, line in enumerate(lines):
        m = _KEY_VALUE.match(line)
        if m:
            key = re.sub(r"\W+", "_", m["key"].strip().lower()).strip("_")
            labels[key] = m["value"].strip()
            continue
        m = _MITDB_FIRST.match(line) if i == 0 else None
        if m:
            meta["age"] = int(m["age"]) if m["age"].isdigit() else None
            meta["sex"] = m["sex"] if m["sex"] in "MF" else None
        rest.append(line)
    if rest:
        meta["comments"] = rest
    return labels, meta


def _comments(hea) -> list[str]:
    out = []
    with open(hea, encoding="utf-8", errors="replace") as f:
        for line in f:
            s = line.strip()
            if s.startswith("#"):
                text = s.lstrip("#").strip()
                if text:
                    out.append(text)
    return out


@skips_unreadable
def prepare_wfdb(root, *, modality: str = "ecg",
                 annotation_extensions=WFDB_ANNOTATION_EXTENSIONS,
                 subject_map: dict[str, str] | None = None) -> Iterator[Record]:
    """One record per WFDB header under ``root`` (recursive, sorted by path).

    Parameters
    ----------
    root : str or PathLike
        Folder holding ``.hea`` files (any depth), e.g. ``shared/data/ecg/mitdb``.
    modality : str
        Modality written on every line.
    annotation_extensions : sequence of str
        Annotation files looked for next to each record; those present are listed in
        ``annotations`` (extension -> path).
    subject_map : dict, optional
        Record name -> subject where records share a subject (see :data:`MITDB_SAME_SUBJECT`);
        otherwise the subject is the record name.

    Yields
    ------
    Record
        ``id`` is the record's path without extension relative to ``root``; ``labels`` come
        from ``Key: value`` header comments; ``meta`` keeps age/sex/other comments.
    """
    root = corpus_root(root, "wfdb")
    hint = root_hint(root)
    subject_map = subject_map or {}
    for hea in sorted(root.rglob("*.hea")):
        name = hea.stem
        rid = relpath(hea.with_suffix(""), root)
        labels, meta = parse_header_comments(_comments(hea))
        ann = {ext: relpath(hea.with_suffix("." + ext), root) for ext in annotation_extensions
               if hea.with_suffix("." + ext).is_file()}
        yield make_record(hea, root, id=rid, corpus="wfdb", modality=modality,
                          subject=subject_map.get(name, name), labels=labels, hint=hint,
                          annotations=ann or None, meta=meta or None)
