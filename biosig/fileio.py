"""Writing finished outputs atomically: a reader sees the old file or the whole new one, never
half of one, and an interrupted job leaves no partial file behind."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml

from biosig.errors import InputError

__all__ = ["atomic_path", "atomic_dir", "write_text_atomic", "write_json_atomic", "jsonable",
           "load_yaml"]


def _umask() -> int:
    """The process's umask: read from ``/proc/self/status`` where it can be (setting it to read
    it, the only portable way, briefly changes it for every thread)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path, *, tmp_dir=None) -> Iterator[Path]:
    """Yield a temporary file path; on success move it onto ``path`` with ``os.replace``.

    The temporary file keeps ``path``'s suffix (so writers that infer the format from it, such
    as matplotlib and numpy, behave) and lies in ``tmp_dir`` (default: ``path``'s folder; it
    must be on the same file system for the rename to be atomic). On error it is removed and
    ``path`` is left untouched.

    Examples
    --------
    >>> with atomic_path("out/plot.png") as tmp:     # doctest: +SKIP
    ...     fig.savefig(tmp)
    """
    path = Path(os.fspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tmp_dir) if tmp_dir is not None else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}",
                                dir=folder)
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes it 0600; the result should look like open()'s
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path, *, overwrite: bool = False, what: str = "output") -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``path``; on success it replaces ``path`` (a folder
    written whole or not at all: a model, an export).

    Raises :class:`~biosig.errors.InputError` naming ``path`` when it is a file, or a non-empty
    folder and ``overwrite`` is false. On error the temporary folder is removed and ``path`` is
    left as it was.
    """
    path = Path(os.fspath(path))
    if path.exists() and not path.is_dir():
        raise InputError(path, f"exists and is not a directory ({what})")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise InputError(path, "is not empty; pass overwrite=True (--force) to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; the result should look like mkdir's
    try:
        yield tmp
        if path.is_dir():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(path, text: str, *, encoding: str = "utf-8", fsync: bool = True) -> Path:
    """Write ``text`` to ``path`` atomically (flushed to disk first with ``fsync``)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding=encoding) as f:
            f.write(text)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
    return Path(os.fspath(path))


def _yaml_loader():
    class Loader(yaml.SafeLoader):
        """SafeLoader that reads ``1e-5`` and ``3E+2`` as floats (YAML 1.2), not strings."""

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"), list("-+0123456789."))
    return Loader


def load_yaml(text: str):
    """Parse YAML text safely (no object construction); exponent floats without a dot such as
    ``3e-4`` are floats, as in YAML 1.2, rather than PyYAML's strings.

    Examples
    --------
    >>> load_yaml("lr: 3e-4\\nn: 2")
    {'lr': 0.0003, 'n': 2}
    """
    global _LOADER
    if _LOADER is None:
        _LOADER = _yaml_loader()
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 (a SafeLoader subclass)


_LOADER = None


def jsonable(obj):
    """``obj`` with numpy scalars and arrays made plain, and NaN/inf made None (JSON has no
    NaN), recursively through dicts, lists and tuples."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):      # numpy scalar or array
        return jsonable(obj.tolist())
    return obj


def write_json_atomic(path, obj, *, indent: int | None = 2) -> Path:
    """:func:`jsonable` of ``obj`` as JSON, written atomically (see :func:`write_text_atomic`)."""
    return write_text_atomic(path, json.dumps(jsonable(obj), indent=indent) + "\n")
