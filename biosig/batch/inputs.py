"""Batch inputs: the records of a folder, a JSONL manifest or a record list, streamed lazily."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from biosig.errors import ConfigError, InputError
from biosig.manifests import read_manifest

__all__ = ["BatchItem", "iter_inputs", "count_inputs"]


@dataclass(frozen=True)
class BatchItem:
    """One record to process.

    Attributes
    ----------
    key : str
        Unique record name, POSIX-style (``"sub/100"``); the ``record`` column and the stem of
        the record's output files.
    path : str
        The file (or WFDB record) to read.
    index : int
        Position in the input.
    meta : dict
        Extra fields from a manifest (``start_s``, ``end_s``, ``source_fs``, ``modality``...).
    """

    key: str
    path: str
    index: int
    meta: dict = field(default_factory=dict)


def _check_key(key: str, where: str) -> str:
    k = PurePosixPath(str(key).replace(os.sep, "/"))
    if not str(key) or k.is_absolute() or ".." in k.parts or str(key).startswith("."):
        raise ConfigError(f"{where}: record name {key!r} cannot name an output file (it is "
                          f"empty, absolute, hidden or contains '..')")
    return k.as_posix()


def _walk(root: Path, pattern: str) -> Iterator[Path]:
    """Files under ``root`` matching ``pattern`` (case-insensitively: Bonn's ``N001.TXT`` is a
    ``*.txt``), depth first in sorted order, lazily."""
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise InputError(root, f"cannot list folder ({exc.strerror})") from None
    for e in entries:
        if e.name.startswith("."):
            continue
        if e.is_dir(follow_symlinks=True):
            yield from _walk(Path(e.path), pattern)
        elif fnmatch.fnmatch(e.name.lower(), pattern.lower()):
            yield Path(e.path)


def _strip_ext(rel: PurePosixPath) -> str:
    return rel.with_suffix("").as_posix() if rel.suffix else rel.as_posix()


def iter_inputs(source, *, pattern: str = "*.hea",
                select: Callable[[object], bool] | None = None) -> Iterator[BatchItem]:
    """Stream the records of a batch input.

    Parameters
    ----------
    source : str or PathLike
        - a folder: files matching ``pattern`` at any depth (hidden entries skipped), in sorted
          order; the record name is the relative path without extension;
        - a ``.jsonl`` manifest (:mod:`biosig.manifests`): one record per line, named by its
          ``id``, its path resolved as :meth:`~biosig.manifests.Record.resolve_path` does;
          ``start_s``/``end_s``/``source_fs``/``modality`` go to :attr:`BatchItem.meta`;
        - a file matching ``pattern`` (e.g. ``100.hea``): that one recording;
        - any other file: a list of record paths, one per line (blank lines and ``#`` comments
          skipped), relative to the list's folder unless absolute (PhysioNet ``RECORDS`` files
          work as they are); the record name is the path relative to that folder without
          extension (or the file name when outside it).
    pattern : str
        File-name pattern for folders.
    select : callable, optional
        For manifests: keep only the :class:`~biosig.manifests.Record` objects for which it
        returns True (e.g. ``lambda r: r.modality == "ecg"``).

    Yields
    ------
    BatchItem
    """
    p = Path(os.fspath(source))
    if p.is_dir():
        for i, f in enumerate(_walk(p, pattern)):
            rel = PurePosixPath(f.relative_to(p).as_posix())
            yield BatchItem(_check_key(_strip_ext(rel), str(f)), str(f), i)
        return
    if not p.exists():
        raise InputError(p, "input not found (expected a folder, a .jsonl manifest or a file "
                            "listing record paths)")
    if p.suffix.lower() == ".jsonl":
        i = 0
        for rec in read_manifest(p):
            if select is not None and not select(rec):
                continue
            meta = {k: getattr(rec, k) for k in ("start_s", "end_s", "source_fs", "modality")
                    if getattr(rec, k, None) is not None}
            yield BatchItem(_check_key(rec.id, f"{p}: id {rec.id!r}"),
                            str(rec.resolve_path(manifest_dir=p.parent)), i, meta)
            i += 1
        return
    if fnmatch.fnmatch(p.name.lower(), pattern.lower()) and pattern not in ("*", "*.*"):
        # one recording named directly (e.g. `biosig score qrs 100.hea`), not a record list
        yield BatchItem(_check_key(p.stem, str(p)), str(p), 0)
        return
    base = p.parent
    try:
        lines = open(p, encoding="utf-8")
    except OSError as exc:
        raise InputError(p, f"cannot open record list ({exc.strerror})") from None
    with lines:
        i = 0
        for lineno, line in enumerate(lines, 1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            q = Path(text)
            full = q if q.is_absolute() else base / q
            try:
                rel = PurePosixPath(full.resolve().relative_to(base.resolve()).as_posix())
            except ValueError:
                rel = PurePosixPath(q.name)
            yield BatchItem(_check_key(_strip_ext(rel), f"{p}:{lineno}"), str(full), i)
            i += 1


def count_inputs(source, *, pattern: str = "*.hea", select=None,
                 done: set[str] | frozenset[str] = frozenset()) -> tuple[int, int]:
    """Count the records of an input and those among them in ``done``; check that names are
    unique.

    Returns
    -------
    (n_inputs, n_done) : tuple of int

    Raises
    ------
    ConfigError
        Two records share a name (their output files would collide).
    """
    seen: dict[str, str] = {}
    n = n_done = 0
    for item in iter_inputs(source, pattern=pattern, select=select):
        if item.key in seen:
            raise ConfigError(f"{source}: record name {item.key!r} occurs twice ({seen[item.key]}"
                              f" and {item.path}); output files would collide")
        seen[item.key] = item.path
        n += 1
        n_done += item.key in done
    return n, n_done
