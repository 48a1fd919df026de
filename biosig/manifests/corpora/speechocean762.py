"""speechocean762: read English by 250 non-native speakers (Mandarin L1), adults and children.

Layout (Kaldi style, as the corpus ships it): ``train/`` and ``test/`` each hold ``text``,
``wav.scp``, ``utt2spk``, ``spk2age`` and ``spk2gender``; the audio is
``WAVE/SPEAKER<id>/<utt>.WAV`` (16 kHz mono). 5,000 utterances, 125 speakers on each side.

Reference: Zhang et al., "speechocean762: An Open-Source Non-native English Speech Corpus For
Pronunciation Assessment", Interspeech 2021.

The corpus's own ``train`` speakers become ``split = "train"`` (replay audio for fine-tuning) and
its ``test`` speakers ``split = "valid"``: the project's real-speech development set, on which
models are selected and speaker enrollment is measured. The project's locked test is the
reserved speakers (id a multiple of 5), which ``get_corpus.py`` never extracts; their lines in
the Kaldi files have no audio and are skipped.
"""

from __future__ import annotations

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

__all__ = ["prepare_speechocean762", "SPEECHOCEAN_CHILD_MAX_AGE", "speechocean_age_group"]

#: Speakers of this age or younger are children (the corpus has ages 6-15 and 19-43).
SPEECHOCEAN_CHILD_MAX_AGE = 17

#: The corpus's subset folder -> the manifest split (its test speakers are our dev set).
_SPLITS = {"train": "train", "test": "valid"}


def speechocean_age_group(age: int | None) -> str | None:
    """``"child"`` (age <= 17), ``"adult"``, or None when the age is unknown."""
    if age is None:
        return None
    return "child" if age <= SPEECHOCEAN_CHILD_MAX_AGE else "adult"


def _read_table(path: Path, *, sep: str | None = None) -> dict[str, str]:
    """A two-column Kaldi table ``key value...`` as a dict (ManifestError naming file:line)."""
    if not path.is_file():
        raise ManifestError(f"{path}: speechocean762: file not found")
    out: dict[str, str] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            key, _, value = line.strip().partition("\t" if "\t" in line else " ")
            if not value.strip():
                raise ManifestError(f"{path}:{lineno}: expected 'KEY VALUE', got {line[:40]!r}")
            out[key.strip()] = value.strip()
    return out


@skips_unreadable
def prepare_speechocean762(root) -> Iterator[Record]:
    """One record per utterance of ``train/text`` and ``test/text`` whose audio exists.

    Parameters
    ----------
    root : str or PathLike
        The corpus folder (with ``train/``, ``test/`` and ``WAVE/``).

    Yields
    ------
    Record
        ``text`` = the transcript as shipped (upper case); ``subject`` = speaker id;
        ``labels = {"age_group": "adult"|"child"}``; ``split`` = ``train`` for the corpus's
        train speakers, ``valid`` for its test speakers (kept by ``biosig manifest build``);
        ``meta = {"speaker", "age", "gender", "subset"}``. Utterances whose audio is missing
        (the reserved speakers) are skipped with one warning.
    """
    root = corpus_root(root, "speechocean762")
    hint = root_hint(root)
    missing: list[str] = []
    for subset, split in _SPLITS.items():
        d = root / subset
        if not d.is_dir():
            raise ManifestError(f"{root}: speechocean762: folder {subset}/ not found")
        text = _read_table(d / "text")
        wavs = _read_table(d / "wav.scp")
        utt2spk = _read_table(d / "utt2spk")
        ages = _read_table(d / "spk2age")
        genders = _read_table(d / "spk2gender")
        for utt in sorted(text):
            rel = wavs.get(utt)
            spk = utt2spk.get(utt)
            if rel is None or spk is None:
                raise ManifestError(f"{d}: speechocean762: utterance {utt!r} has no "
                                    f"{'wav.scp' if rel is None else 'utt2spk'} entry")
            audio = root / rel
            if not audio.is_file():
                missing.append(utt)
                continue
            try:
                age = int(ages[spk]) if spk in ages else None
            except ValueError:
                raise ManifestError(f"{d / 'spk2age'}: speaker {spk}: age {ages[spk]!r} is "
                                    "not an integer") from None
            rec = make_record(audio, root, id=f"so762-{utt}", corpus="speechocean762",
                              modality="speech", subject=spk, hint=hint,
                              labels={"age_group": speechocean_age_group(age)},
                              text=text[utt], split=split,
                              meta={"speaker": spk, "age": age, "gender": genders.get(spk),
                                    "subset": subset})
            if rec is not None:
                yield rec
    warn_missing("speechocean762", missing,
                 "utterances listed in text (reserved speakers are never extracted)")
