"""Batch outputs: append-only result tables and atomic per-record files.

``scores.csv`` and ``errors.csv`` are appended one complete line per ``write``; on reopening, a
partial last line (a kill mid-write) is cut off and the record names already written are read
back, which is what makes a run resumable.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

from biosig import fileio
from biosig.errors import ConfigError

__all__ = ["SCORES_NAME", "ERRORS_NAME", "PARTIAL_DIR", "ERROR_COLUMNS", "atomic_path",
           "RowFile", "one_line"]

SCORES_NAME = "scores.csv"
ERRORS_NAME = "errors.csv"
#: Folder inside the output directory for temporary files; removed when a run ends.
PARTIAL_DIR = ".partial"
ERROR_COLUMNS = ("record", "reason")


@contextlib.contextmanager
def atomic_path(out_dir, relpath: str):
    """Yield a temporary path; on success move it to ``out_dir/relpath`` with ``os.replace``.

    The temporary file lies in ``out_dir/.partial`` (same file system, so the rename is atomic);
    on error it is removed and the destination is left untouched.
    """
    out_dir = Path(out_dir)
    with fileio.atomic_path(out_dir / relpath, tmp_dir=out_dir / PARTIAL_DIR) as tmp:
        yield tmp


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(round(v, 6))
    return str(v)


def _csv_line(values: Sequence) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([_fmt(v) for v in values])
    return buf.getvalue()


def one_line(text: str, limit: int = 500) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class RowFile:
    """An append-only CSV: header checked on open, partial last line cut off, one ``write``
    per row."""

    def __init__(self, path: Path, columns: Sequence[str]):
        self.path = path
        self.columns = list(columns)
        self.keys: set[str] = set()
        header = _csv_line(self.columns)
        if path.exists() and path.stat().st_size > 0:
            with open(path, "rb") as f:
                data = f.read()
            if not data.endswith(b"\n"):  # a kill mid-line: drop the fragment
                cut = data.rfind(b"\n") + 1
                with open(path, "r+b") as f:
                    f.truncate(cut)
                data = data[:cut]
            text = data.decode("utf-8")
            if not text:
                path.write_text(header, encoding="utf-8")
            elif not text.startswith(header):
                first = text.splitlines()[0]
                raise ConfigError(f"{path}: was written with other columns ({first!r}); use "
                                  f"another output folder or remove it")
            for row in csv.reader(io.StringIO(text[len(header):])):
                if row:
                    self.keys.add(row[0])
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(header)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)

    def append(self, values: Sequence) -> None:
        data = _csv_line(values).encode("utf-8")
        written = os.write(self._fd, data)
        if written != len(data):
            raise OSError(f"{self.path}: short write ({written} of {len(data)} bytes)")

    def remove_keys(self, keys: set[str]) -> None:
        """Rewrite the file without the rows of ``keys`` (atomically)."""
        text = self.path.read_text(encoding="utf-8")
        lines = text.splitlines(keepends=True)
        kept = [lines[0]] + [ln for ln in lines[1:]
                             if next(csv.reader([ln]), [""])[0] not in keys]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        os.close(self._fd)
        os.replace(tmp, self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self.keys -= keys

    def close(self) -> None:
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
