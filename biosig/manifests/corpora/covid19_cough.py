"""covid19-cough: induced coughs from a call centre and a messaging bot (2020).

Confound: every PCR-verified positive comes from the call centre while most negatives come from
the bot, and the two channels sound different. ``source`` is therefore kept on every line; train
and report within one source.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from biosig.errors import ManifestError
from biosig.manifests.corpora._common import (
    corpus_root,
    make_record,
    root_hint,
    skips_unreadable,
    warn_missing,
)
from biosig.manifests.schema import Record

__all__ = ["prepare_covid19_cough"]


def _audio_dir(root: Path) -> Path:
    return root / "raw" if (root / "raw").is_dir() else root


def _flag(entry: dict, key: str, where: str):
    v = entry.get(key)
    if v is not None and not isinstance(v, bool):
        raise ManifestError(f"{where}: key {key!r} is {v!r}, expected true/false/null")
    return v


@skips_unreadable
def prepare_covid19_cough(root) -> Iterator[Record]:
    """One record per entry of ``metadata.json`` whose audio file exists, sorted by file name.

    Parameters
    ----------
    root : str or PathLike
        The folder with ``metadata.json`` and the audio (in ``raw/`` or beside it).

    Yields
    ------
    Record
        ``labels = {"covid19": bool, "verified": bool|null, "asymptomatic": bool|null}``
        (null where the entry has no such key); ``source`` = ``call-center``/``telegram``;
        ``subject`` = the file stem (one cough per participant as far as the metadata says);
        ``meta.kind`` = the call direction where given. Free-text comments are not copied (they
        may describe the participant).
    """
    root = corpus_root(root, "covid19_cough")
    hint = root_hint(root)
    meta_path = root / "metadata.json"
    if not meta_path.is_file():
        raise ManifestError(f"{root}: covid19_cough: metadata.json not found")
    try:
        entries = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{meta_path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(entries, list):
        raise ManifestError(f"{meta_path}: expected a JSON list of entries")
    folder = _audio_dir(root)
    missing = []
    for i, e in sorted(enumerate(entries), key=lambda ie: str(ie[1].get("filename"))):
        where = f"{meta_path}: entry {i}"
        name = e.get("filename")
        if not isinstance(name, str) or not name:
            raise ManifestError(f"{where}: key 'filename' is {name!r}, expected a file name")
        covid = _flag(e, "covid19", where)
        if covid is None:
            raise ManifestError(f"{where}: key 'covid19' is missing")
        src = e.get("source")
        if not isinstance(src, str) or not src:
            raise ManifestError(f"{where}: key 'source' is {src!r}, expected a string")
        audio = folder / name
        if not audio.is_file():
            missing.append(name)
            continue
        meta = {"kind": e["kind"]} if e.get("kind") else None
        yield make_record(audio, root, id=Path(name).stem, corpus="covid19_cough",
                          modality="cough", subject=Path(name).stem, hint=hint,
                          labels={"covid19": covid, "verified": _flag(e, "verified", where),
                                  "asymptomatic": _flag(e, "asymptomatic", where)},
                          source=src, meta=meta)
    warn_missing("covid19_cough", missing, "audio files listed in metadata.json")
