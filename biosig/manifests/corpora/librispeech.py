"""LibriSpeech: ``<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac`` + ``.trans.txt``."""

from __future__ import annotations

from collections.abc import Iterator

from biosig.errors import ManifestError
from biosig.manifests.corpora._common import (
    corpus_root,
    make_record,
    relpath,
    root_hint,
    skips_unreadable,
    warn_missing,
)
from biosig.manifests.schema import Record

__all__ = ["prepare_librispeech", "librispeech_subset_split"]

_AUDIO_EXTENSIONS = (".flac", ".wav", ".opus", ".ogg", ".mp3")


def librispeech_subset_split(subset: str | None) -> str | None:
    """The official split of a LibriSpeech subset folder name (``test-clean`` -> ``test``)."""
    if not subset:
        return None
    if subset.startswith("train-"):
        return "train"
    if subset.startswith("dev-"):
        return "valid"
    if subset.startswith("test-"):
        return "test"
    return None


@skips_unreadable
def prepare_librispeech(root) -> Iterator[Record]:
    """One record per line of every ``*.trans.txt`` under ``root`` (any depth).

    Yields
    ------
    Record
        ``text`` = the transcript; ``subject`` = speaker id; ``labels = {}``;
        ``meta = {"speaker", "chapter", "subset"}`` (subset = the folder above the speaker,
        e.g. ``test-clean``); ``split`` preset from the subset (train-*/dev-*/test-*), which
        ``biosig manifest build`` keeps. Utterances whose audio is missing are skipped with one
        warning.
    """
    root = corpus_root(root, "librispeech")
    hint = root_hint(root)
    trans = sorted(root.rglob("*.trans.txt"))
    if not trans:
        raise ManifestError(f"{root}: librispeech: no *.trans.txt files found")
    missing = []
    for t in trans:
        folder = t.parent
        subset_dir = folder.parent.parent.resolve()
        inside = subset_dir == root.resolve() or root.resolve() in subset_dir.parents
        subset = subset_dir.name if inside else None
        with open(t, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                utt, _, text = line.strip().partition(" ")
                parts = utt.split("-")
                if len(parts) != 3:
                    raise ManifestError(f"{t}:{lineno}: expected '<speaker>-<chapter>-<utt> "
                                        f"TEXT', got {line.strip()[:40]!r}")
                audio = next((folder / (utt + e) for e in _AUDIO_EXTENSIONS
                              if (folder / (utt + e)).is_file()), None)
                if audio is None:
                    missing.append(utt)
                    continue
                yield make_record(audio, root, id=utt, corpus="librispeech",
                                  modality="speech", subject=parts[0], hint=hint, labels={},
                                  text=text.strip(),
                                  split=librispeech_subset_split(subset),
                                  meta={"speaker": parts[0], "chapter": parts[1],
                                        "subset": subset,
                                        "transcript_file": relpath(t, root)})
    warn_missing("librispeech", missing, "utterances listed in transcripts")
