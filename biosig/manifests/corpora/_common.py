"""Helpers shared by the corpus builders: header metadata, relative paths, the root hint."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

from biosig.datasets import data_root
from biosig.errors import InputError, ManifestError
from biosig.io import info
from biosig.manifests.schema import Record

log = logging.getLogger("biosig.manifests")

__all__ = ["corpus_root", "root_hint", "relpath", "make_record", "read_info", "warn_missing",
           "skips_unreadable", "log"]


def corpus_root(root, corpus: str) -> Path:
    """``root`` as a Path, checked to be a folder (ManifestError naming it otherwise)."""
    p = Path(os.fspath(root)).expanduser()
    if not p.is_dir():
        raise ManifestError(f"{p}: {corpus} corpus root is not a folder")
    return p


def root_hint(root: Path) -> str | None:
    """``root`` relative to the biosig data root, POSIX-style, or None if it lies outside."""
    dr = data_root()
    if dr is None:
        return None
    try:
        rel = root.resolve().relative_to(dr.resolve())
    except ValueError:
        return None
    return rel.as_posix() or "."


def relpath(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, POSIX-style (both as given, not resolved)."""
    return Path(os.path.relpath(path, root)).as_posix()


def make_record(file: Path, root: Path, *, id: str, corpus: str, modality: str,
                subject: str | None, labels: dict, hint: str | None,
                source_fs: float | None = None, start_s: float | None = None,
                end_s: float | None = None, rec_info=None, **extra) -> Record | None:
    """A Record for ``file`` with fs/num_samples/channels from :func:`biosig.info` (header only).

    ``duration_s`` is the segment's when ``start_s``/``end_s`` are given, else the file's.
    ``rec_info`` reuses a header already read (several segments of one file).

    A recording that cannot be read (corrupt, truncated, undecodable) is reported in one
    warning line naming the file and the reason, and gives None: builders decorated with
    :func:`skips_unreadable` drop it, so one bad file never ends a corpus build.
    """
    if rec_info is None:
        try:
            rec_info = read_info(file, corpus=corpus, source_fs=source_fs)
        except ManifestError as exc:
            log.warning("%s, skipped", exc)
            return None
    if start_s is not None:
        duration_s = round(end_s - start_s, 6)
    else:
        duration_s = round(rec_info.n_samples / rec_info.fs, 6)
    return Record(id=id, path=relpath(file, root), modality=modality, fs=rec_info.fs,
                  num_samples=rec_info.n_samples, duration_s=duration_s,
                  channels=list(rec_info.channels), subject=subject, labels=labels,
                  start_s=start_s, end_s=end_s, corpus=corpus, root=hint,
                  source_fs=source_fs, **extra)


def read_info(file: Path, *, corpus: str, source_fs: float | None = None):
    """:func:`biosig.info` with errors re-raised as ManifestError naming the corpus and file."""
    try:
        return info(file, source_fs=source_fs)
    except InputError as exc:
        raise ManifestError(f"{corpus}: {exc}") from exc


def warn_missing(corpus: str, missing: list[str], what: str) -> None:
    """Log one warning for listed recordings whose files are absent (e.g. a partial copy)."""
    if missing:
        log.warning("%s: %d %s not found, skipped (first: %s)", corpus, len(missing), what,
                    missing[0])


def skips_unreadable(prepare):
    """Decorate a ``prepare_<corpus>`` generator so the records :func:`make_record` could not
    read (None, already reported) are left out of what it yields."""
    @functools.wraps(prepare)
    def wrapper(*args, **kwargs):
        return (r for r in prepare(*args, **kwargs) if r is not None)
    return wrapper
