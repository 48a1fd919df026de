"""Reading and writing JSONL manifests: a lazy reader and a resumable, append-only writer.

The writer follows lhotse's ``SequentialJsonlWriter``: it opens the file in append mode after
reading the ids already there, so a rerun after a crash skips what was written. Lines are written
in batches, each batch as one ``write`` of complete lines followed by ``flush`` and ``fsync``; a
partial last line left by a crash (no final newline) is detected and cut off before appending.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from biosig.errors import ManifestError
from biosig.manifests.schema import Record, validate_record

__all__ = ["read_manifest", "iter_manifest_lines", "ManifestWriter", "write_manifest",
           "count_lines"]

log = logging.getLogger("biosig.manifests")


def iter_manifest_lines(path) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for the non-blank lines of a manifest, lazily.

    Raises
    ------
    ManifestError
        The file does not exist or is not UTF-8 text.
    """
    p = Path(os.fspath(path))
    if not p.is_file():
        raise ManifestError(f"{p}: manifest not found")
    with open(p, encoding="utf-8") as f:
        lineno = 0
        while True:
            try:
                line = f.readline()
            except UnicodeDecodeError as exc:
                raise ManifestError(f"{p}:{lineno + 1}: not UTF-8 text ({exc.reason})") \
                    from None
            if not line:
                return
            lineno += 1
            if line.strip():
                yield lineno, line


def parse_line(text: str, where: str) -> Record:
    """Parse and validate one manifest line; errors name ``where`` (``file:line``)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") \
            from None
    return validate_record(data, where)


def read_manifest(path, *, check_ids: bool = True) -> Iterator[Record]:
    """Iterate the records of a JSONL manifest without loading the whole file.

    Parameters
    ----------
    path : str or PathLike
        The manifest.
    check_ids : bool
        Raise on a repeated ``id`` (keeps a set of the ids seen, not the records).

    Yields
    ------
    Record

    Raises
    ------
    ManifestError
        Missing file, invalid JSON, unknown/missing key, wrong type or duplicate id; the message
        starts with ``file:line``.
    """
    seen: set[str] = set()
    for lineno, text in iter_manifest_lines(path):
        where = f"{path}:{lineno}"
        rec = parse_line(text, where)
        if check_ids:
            if rec.id in seen:
                raise ManifestError(f"{where}: key 'id': duplicate id {rec.id!r}")
            seen.add(rec.id)
        yield rec


def count_lines(path) -> int:
    """Number of newline characters in a file (fast, for progress bars)."""
    n = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            n += chunk.count(b"\n")
    return n


def _dumps(rec: Record) -> str:
    return json.dumps(rec.to_dict(), ensure_ascii=False, allow_nan=False)


def _drop_partial_last_line(p: Path) -> bool:
    """Truncate ``p`` after its last newline; return True if something was cut."""
    size = p.stat().st_size
    if size == 0:
        return False
    with open(p, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return False
        # Walk back to the previous newline in blocks.
        pos = size
        keep = 0
        while pos > 0:
            step = min(1 << 16, pos)
            pos -= step
            f.seek(pos)
            block = f.read(step)
            i = block.rfind(b"\n")
            if i >= 0:
                keep = pos + i + 1
                break
        f.truncate(keep)
    return True


class ManifestWriter:
    """Append records to a JSONL manifest, resuming where a previous run stopped.

    Parameters
    ----------
    path : str or PathLike
        The manifest; created (with its folder) if missing.
    overwrite : bool
        Start a new file instead of resuming.
    batch_size : int
        Lines buffered before each write + fsync.

    Notes
    -----
    On opening an existing file, its ids are read first (lazily, line by line); a last line
    without a final newline is the trace of a crash and is cut off (logged as a warning). Any
    other malformed line is a :class:`~biosig.errors.ManifestError` naming ``file:line``.
    :meth:`write` skips records whose id is already in the file and returns whether it wrote.

    Examples
    --------
    >>> with ManifestWriter("out.jsonl") as w:      # doctest: +SKIP
    ...     for rec in prepare_bonn(root):
    ...         w.write(rec)
    """

    def __init__(self, path, *, overwrite: bool = False, batch_size: int = 256):
        self.path = Path(os.fspath(path))
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.existing_ids: set[str] = set()
        self.dropped_partial_line = False
        self.n_written = 0
        self.n_skipped = 0
        self._buffer: list[str] = []
        self._file = None
        if overwrite and self.path.exists():
            self.path.unlink()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self.dropped_partial_line = _drop_partial_last_line(self.path)
            if self.dropped_partial_line:
                log.warning("%s: dropped a partial last line (interrupted write)", self.path)
            for rec in read_manifest(self.path):
                self.existing_ids.add(rec.id)
        self._file = open(self.path, "a", encoding="utf-8")

    def __contains__(self, record_id: str) -> bool:
        return record_id in self.existing_ids

    def write(self, record: Record) -> bool:
        """Queue ``record`` unless its id is already written; return whether it was queued."""
        if self._file is None:
            raise ValueError(f"{self.path}: writer is closed")
        if record.id in self.existing_ids:
            self.n_skipped += 1
            return False
        self._buffer.append(_dumps(record) + "\n")
        self.existing_ids.add(record.id)
        self.n_written += 1
        if len(self._buffer) >= self.batch_size:
            self.flush()
        return True

    def flush(self) -> None:
        """Write the queued lines as one batch and sync them to disk."""
        if self._buffer and self._file is not None:
            self._file.write("".join(self._buffer))
            self._file.flush()
            os.fsync(self._file.fileno())
            self._buffer.clear()

    def close(self) -> None:
        if self._file is not None:
            self.flush()
            self._file.close()
            self._file = None

    def __enter__(self) -> ManifestWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Lines queued before an error are complete records: keep them, so a rerun resumes.
        self.close()


def write_manifest(records: Iterable[Record], path, *, overwrite: bool = False) -> int:
    """Write records to ``path`` (resuming unless ``overwrite``); return how many were new."""
    with ManifestWriter(path, overwrite=overwrite) as w:
        for rec in records:
            w.write(rec)
        return w.n_written
