"""Build a corpus manifest: prepare, split patient-wise, write (resuming an interrupted run)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from biosig.errors import ManifestError
from biosig.manifests.corpora import get_corpus
from biosig.manifests.io import ManifestWriter, read_manifest
from biosig.manifests.splits import SplitSummary, assign_splits, summarize_splits

__all__ = ["build_manifest", "BuildResult"]


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_manifest` did.

    Attributes
    ----------
    path : Path
        The manifest written.
    n_lines : int
        Lines in the manifest now.
    n_new : int
        Lines written by this run (the others were already there).
    dropped_partial_line : bool
        A partial last line from an interrupted run was cut off before resuming.
    splits : SplitSummary
        Lines and groups (subjects) per split.
    """

    path: Path
    n_lines: int
    n_new: int
    dropped_partial_line: bool
    splits: SplitSummary


def _first_difference(a: dict, b: dict) -> str:
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            return f"key {key!r}: {a.get(key)!r} in the file, {b.get(key)!r} rebuilt"
    return "identical"


def build_manifest(corpus: str, root, out, *, seed: int = 0, valid_frac: float = 0.1,
                   test_frac: float = 0.2, split: bool = True, overwrite: bool = False,
                   **options) -> BuildResult:
    """Prepare ``corpus`` from ``root`` and write its manifest to ``out``.

    Parameters
    ----------
    corpus : str
        A name in :data:`biosig.manifests.corpora.CORPORA`.
    root : str or PathLike
        The corpus root; ``path`` on each line is relative to it.
    out : str or PathLike
        The JSONL manifest.
    seed, valid_frac, test_frac
        Patient-wise split (see :func:`~biosig.manifests.splits.assign_splits`), stratified by
        the corpus' main label. Official splits preset by a builder (LibriSpeech) are kept.
    split : bool
        Assign splits at all.
    overwrite : bool
        Start the file afresh. Otherwise an existing file is resumed: lines already there are
        kept when they equal the rebuilt ones (a different seed or changed sources is a
        ManifestError naming the line), and the rest is appended.
    **options
        Passed to the corpus' ``prepare_<corpus>`` (e.g. ``modality=`` for audio_folder).

    Returns
    -------
    BuildResult
    """
    spec = get_corpus(corpus)
    records = list(spec.prepare(root, **options))
    if not records:
        raise ManifestError(f"{root}: {corpus}: no recordings found")
    seen: set[str] = set()
    for r in records:
        if r.id in seen:
            raise ManifestError(f"{root}: {corpus}: two recordings get the id {r.id!r}")
        seen.add(r.id)
    if split:
        if spec.keep_preset_split:
            todo = [r for r in records if r.split is None]
            done = {r.id: r for r in assign_splits(todo, seed=seed, valid_frac=valid_frac,
                                                   test_frac=test_frac,
                                                   stratify=spec.stratify)}
            records = [done.get(r.id, r) for r in records]
        else:
            records = assign_splits(records, seed=seed, valid_frac=valid_frac,
                                    test_frac=test_frac, stratify=spec.stratify)
    out = Path(os.fspath(out))
    by_id = {r.id: r for r in records}
    with ManifestWriter(out, overwrite=overwrite) as writer:
        if writer.existing_ids:
            for lineno, old in enumerate(read_manifest(out), 1):
                new = by_id.get(old.id)
                if new is None:
                    raise ManifestError(f"{out}:{lineno}: id {old.id!r} is not in the rebuilt "
                                        f"{corpus} manifest; rebuild with --overwrite")
                if new.to_dict() != old.to_dict():
                    diff = _first_difference(old.to_dict(), new.to_dict())
                    raise ManifestError(f"{out}:{lineno}: id {old.id!r} differs from the "
                                        f"rebuilt line ({diff}); rebuild with --overwrite")
        for r in records:
            writer.write(r)
        n_new = writer.n_written
        dropped = writer.dropped_partial_line
    return BuildResult(out, len(records), n_new, dropped, summarize_splits(records))
