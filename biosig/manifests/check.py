"""Check a manifest against its schema and against the files it lists."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from biosig.errors import InputError, ManifestError
from biosig.io import info
from biosig.manifests.io import count_lines, iter_manifest_lines, parse_line
from biosig.manifests.schema import resolve_path
from biosig.progress import Progress

__all__ = ["check_manifest", "Problem"]

#: Tolerance in seconds for a segment's end beyond the end of its file.
SEGMENT_END_TOL_S = 0.01


@dataclass(frozen=True)
class Problem:
    """One problem found by :func:`check_manifest`: ``where`` is ``file:line``."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _strip_where(msg: str, where: str) -> str:
    return msg[len(where) + 2:] if msg.startswith(where + ": ") else msg


class _InfoCache:
    """Headers read so far, keyed by (file, source_fs); segments of one file reuse them."""

    def __init__(self, maxsize: int = 4096):
        self.maxsize = maxsize
        self._d: dict = {}

    def get(self, path: Path, source_fs):
        key = (str(path), source_fs)
        if key not in self._d:
            if len(self._d) >= self.maxsize:
                self._d.pop(next(iter(self._d)))
            try:
                self._d[key] = info(path, source_fs=source_fs)
            except InputError as exc:
                self._d[key] = exc
        return self._d[key]


def check_manifest(path, *, root=None, check_files: bool = True,
                   progress: bool | None = None) -> Iterator[Problem]:
    """Yield every problem of a manifest, one per line and aspect.

    Each line is validated against the schema (JSON, keys, types, cross-field rules; ids
    unique). With ``check_files``, its file must exist and :func:`biosig.info` must agree on
    ``fs``, ``num_samples`` and ``channels``; a segment must end within the file; annotation
    files must exist.

    Parameters
    ----------
    path : str or PathLike
        The manifest.
    root : str or PathLike, optional
        Corpus root for relative paths; default: the line's ``root`` under the data root, else
        the manifest's folder (see :meth:`Record.resolve_path`).
    check_files : bool
        Also compare with the files.
    progress : bool or None
        Show a progress bar on stderr; ``None``: when stderr is a terminal and the manifest has
        at least 500 lines.

    Yields
    ------
    Problem

    Raises
    ------
    ManifestError
        The manifest itself cannot be read (missing, not UTF-8).
    """
    path = Path(os.fspath(path))
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    manifest_dir = path.parent
    total = count_lines(path)
    if progress is None:
        progress = sys.stderr.isatty() and total >= 500
    bar = Progress(total, desc="checking", unit="line", enabled=bool(progress),
                   final_line=True)
    cache = _InfoCache()
    seen: dict[str, int] = {}
    try:
        for lineno, text in iter_manifest_lines(path):
            bar.update(lineno - bar.n)
            where = f"{path}:{lineno}"
            try:
                rec = parse_line(text, where)
            except ManifestError as exc:
                yield Problem(where, _strip_where(str(exc), where))
                continue
            if rec.id in seen:
                yield Problem(where, f"key 'id': duplicate id {rec.id!r} (first on line "
                                     f"{seen[rec.id]})")
            else:
                seen[rec.id] = lineno
            if check_files:
                yield from _check_files(rec, where, root, manifest_dir, cache)
    finally:
        bar.close()


def _check_files(rec, where, root, manifest_dir, cache) -> Iterator[Problem]:
    file = rec.resolve_path(root, manifest_dir=manifest_dir)
    if not file.exists():
        yield Problem(where, f"key 'path': file not found: {file}")
        return
    hdr = cache.get(file, rec.source_fs)
    if isinstance(hdr, InputError):
        yield Problem(where, f"key 'path': cannot read header ({hdr})")
        return
    if not math.isclose(hdr.fs, rec.fs, rel_tol=1e-6):
        yield Problem(where, f"key 'fs': {rec.fs:g} Hz in the manifest, {hdr.fs:g} Hz in {file}")
    if hdr.n_samples != rec.num_samples:
        yield Problem(where, f"key 'num_samples': {rec.num_samples} in the manifest, "
                             f"{hdr.n_samples} in {file}")
    if list(hdr.channels) != list(rec.channels):
        yield Problem(where, f"key 'channels': {rec.channels} in the manifest, "
                             f"{list(hdr.channels)} in {file}")
    if rec.is_segment:
        file_s = hdr.n_samples / hdr.fs
        if rec.end_s > file_s + SEGMENT_END_TOL_S:
            yield Problem(where, f"key 'end_s': {rec.end_s:g} s is beyond the end of {file} "
                                 f"({file_s:g} s)")
    for name, rel in (rec.annotations or {}).items():
        ann = resolve_path(rel, root=root, hint=rec.root, manifest_dir=manifest_dir)
        if not ann.exists():
            yield Problem(where, f"key 'annotations.{name}': file not found: {ann}")
