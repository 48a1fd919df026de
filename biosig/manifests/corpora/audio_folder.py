"""Any folder of audio files with optional sidecar ``.txt`` transcripts (e.g. a FLEURS slice)."""

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
from biosig.manifests.schema import MODALITIES, Record

__all__ = ["prepare_audio_folder", "AUDIO_FOLDER_EXTENSIONS"]

AUDIO_FOLDER_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif")


@skips_unreadable
def prepare_audio_folder(root, *, modality: str = "speech") -> Iterator[Record]:
    """One record per audio file under ``root`` (any depth, sorted by path).

    Parameters
    ----------
    root : str or PathLike
    modality : str
        Written on every line (default ``"speech"``).

    Yields
    ------
    Record
        ``id`` = path without extension relative to ``root``; ``text`` = the content of the
        sidecar ``<stem>.txt`` (stripped) when present; ``subject`` null (a plain folder names
        no speakers); ``labels = {}``.
    """
    if modality not in MODALITIES:
        raise ManifestError(f"audio_folder: modality is {modality!r}, expected one of "
                            f"{'|'.join(MODALITIES)}")
    root = corpus_root(root, "audio_folder")
    hint = root_hint(root)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_FOLDER_EXTENSIONS
                   and p.is_file())
    if not files:
        raise ManifestError(f"{root}: audio_folder: no audio files "
                            f"({' '.join(AUDIO_FOLDER_EXTENSIONS)}) found")
    for p in files:
        side = p.with_suffix(".txt")
        text = side.read_text(encoding="utf-8").strip() if side.is_file() else None
        yield make_record(p, root, id=relpath(p.with_suffix(""), root), corpus="audio_folder",
                          modality=modality, subject=None, hint=hint, labels={}, text=text,
                          annotations={"transcript": relpath(side, root)} if text is not None
                          else None)
