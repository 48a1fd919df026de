"""A generic, resumable batch runner: one function applied to many recordings.

:func:`run_batch` streams the records of an input (a folder searched recursively, a JSONL
manifest, or a text file listing record paths), calls a per-record function in a local process
pool or on an existing Dask cluster, and appends one row per record to ``OUT/scores.csv`` (or,
when the function raises, a one-line reason to ``OUT/errors.csv``).

Guarantees
----------
- **Resumable and deterministic.** Rows are appended in input order (results that finish early
  wait in a bounded buffer), each as a single ``write`` of a complete line. A killed run leaves
  both files holding rows for a prefix of the input (a partial last line, if any, is cut off on
  the next start), so rerunning the same command skips the finished records and ends with files
  identical to those of an uninterrupted run, whatever ``jobs`` or executor either run used.
- **Atomic outputs.** Per-record functions write their files with :func:`atomic_path`
  (a temporary file in ``OUT/.partial`` renamed into place), so no half-written file survives
  a kill; the row is appended only after the record's files are in place.
- **Flat memory.** Inputs are read lazily; at most ``max_in_flight`` records are pending; only
  the record names already done are kept (a set of strings).
- **One failure does not stop the run**: any exception from the per-record function becomes an
  ``errors.csv`` row (``record,reason``). With ``jobs > 1`` even a record that kills its worker
  process (a crash in native code, the out-of-memory killer) gets a row: the pool is rebuilt and
  the records that were in flight are rerun one at a time to find it; on Dask a task whose workers
  keep dying (``KilledWorker``) gets a row. With ``jobs=1`` records run in this process, so such a
  crash ends the run. Interrupting (Ctrl-C) stops it cleanly.

The per-record function must be picklable (a module-level function, or a
:func:`functools.partial` of one) and have the signature ``func(item: BatchItem, out_dir: str)
-> dict``, returning the row's values by column name. For the Dask executor ``OUT`` must be on a
file system the workers share.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import fnmatch
import io
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from biosig import fileio
from biosig.errors import ConfigError, InputError

__all__ = ["BatchItem", "BatchSummary", "run_batch", "iter_inputs", "count_inputs",
           "atomic_path", "SCORES_NAME", "ERRORS_NAME", "PARTIAL_DIR"]

SCORES_NAME = "scores.csv"
ERRORS_NAME = "errors.csv"
#: Folder inside the output directory for temporary files; removed when a run ends.
PARTIAL_DIR = ".partial"
ERROR_COLUMNS = ("record", "reason")


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


@dataclass(frozen=True)
class BatchSummary:
    """What a :func:`run_batch` call did.

    Attributes
    ----------
    out_dir : str
    n_inputs : int
        Records in the input.
    n_skipped : int
        Records already finished by an earlier run.
    n_ok, n_failed : int
        Records processed by this run that gave a row / an error.
    elapsed_s : float
    scores_csv, errors_csv : str
    """

    out_dir: str
    n_inputs: int
    n_skipped: int
    n_ok: int
    n_failed: int
    elapsed_s: float
    scores_csv: str
    errors_csv: str

    @property
    def n_processed(self) -> int:
        return self.n_ok + self.n_failed

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def __str__(self) -> str:
        rate = self.n_processed / self.elapsed_s if self.elapsed_s > 0 else float("nan")
        return (f"{self.n_inputs} records: {self.n_ok} scored, {self.n_failed} failed, "
                f"{self.n_skipped} already done; {self.elapsed_s:.1f} s ({rate:.1f} records/s); "
                f"rows in {self.scores_csv}, failures in {self.errors_csv}")


# ----------------------------------------------------------------------------------- inputs

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
        from biosig.manifests import read_manifest
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


# ---------------------------------------------------------------------------------- outputs

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


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


class _RowFile:
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


# --------------------------------------------------------------------------------- running

def _run_one(func, item: BatchItem, out_dir: str):
    """Worker side: ``("ok", row)`` or ``("error", reason)``; never raises for a record."""
    try:
        row = func(item, out_dir)
        if not isinstance(row, dict):
            return "error", f"per-record function returned {type(row).__name__}, not a dict"
        return "ok", row
    except Exception as exc:  # noqa: BLE001 - every failure becomes an errors.csv row
        msg = _one_line(str(exc)) or type(exc).__name__
        from biosig.errors import BiosigError
        if not isinstance(exc, (BiosigError, OSError)):
            msg = f"{type(exc).__name__}: {msg}"
        return "error", msg


#: Reason written for a record whose worker process died (crash in native code, out of memory).
WORKER_DIED = "worker process died while processing this record (crash or out of memory)"


class _Inline:
    """Runs each task at submission, in this process (``--jobs 1``)."""

    capacity = 1

    class _Done:
        def __init__(self, value):
            self._value = value

        def result(self):
            return self._value

    def submit(self, fn, *args):
        return self._Done(fn(*args))

    def result(self, fut):
        return fut.result()

    def run_alone(self, fn, *args):
        return fn(*args)

    def close(self, cancel: bool) -> None:
        pass


class _LocalPool:
    """A process pool that is rebuilt when a worker dies; the records that were in flight are
    then run one at a time so that only the one that kills its worker gets an error row."""

    def __init__(self, jobs: int):
        self.capacity = jobs
        self._pool = None
        self._start()

    def _start(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        self._pool = ProcessPoolExecutor(max_workers=self.capacity,
                                         mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn, *args):
        from concurrent.futures import Future
        from concurrent.futures.process import BrokenProcessPool
        try:
            return self._pool.submit(fn, *args)
        except BrokenProcessPool as exc:
            # a worker died since the last result was read: report this task like the ones in
            # flight, so that the caller re-runs all of them one at a time
            fut = Future()
            fut.set_exception(exc)
            return fut

    def result(self, fut):
        """The task's result, or ``None`` when the pool broke (a worker died)."""
        from concurrent.futures.process import BrokenProcessPool
        try:
            return fut.result()
        except BrokenProcessPool:
            return None

    def restart(self):
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._start()

    def run_alone(self, fn, *args):
        result = self.result(self._pool.submit(fn, *args))
        if result is None:
            self.restart()
            return "error", WORKER_DIED
        return result

    def close(self, cancel: bool) -> None:
        self._pool.shutdown(wait=True, cancel_futures=cancel)


class _Dask:
    """Tasks on a running Dask cluster; a task whose workers keep dying (``KilledWorker``)
    becomes an error row (the nannies restart the workers)."""

    def __init__(self, scheduler: str):
        try:
            from distributed import Client
        except ModuleNotFoundError:
            raise ConfigError("--executor dask: the 'distributed' package is not installed "
                              "(pip install distributed)") from None
        try:
            self.client = Client(scheduler, timeout="20s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"--scheduler: cannot connect to {scheduler!r} "
                              f"({_one_line(str(exc))})") from None
        self.capacity = max(1, sum(self.client.nthreads().values()))

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def result(self, fut):
        from distributed.scheduler import KilledWorker
        try:
            return fut.result()
        except KilledWorker:
            return "error", WORKER_DIED

    def close(self, cancel: bool) -> None:
        self.client.close()


def _make_executor(executor: str, jobs: int, scheduler: str | None):
    if executor == "dask":
        return _Dask(scheduler)
    return _Inline() if jobs == 1 else _LocalPool(jobs)


def _progress(total: int, enabled: bool, description: str):
    from biosig.progress import Progress
    return Progress(total, desc=description, unit="rec", enabled=enabled)


def run_batch(source, func: Callable[[BatchItem, str], dict], out_dir, *,
              columns: Sequence[str], pattern: str = "*.hea", select=None, jobs: int = 1,
              executor: str = "local", scheduler: str | None = None, progress: bool = True,
              retry_errors: bool = False, max_in_flight: int | None = None,
              description: str = "scoring", scores_name: str = SCORES_NAME) -> BatchSummary:
    """Apply ``func`` to every record of ``source``, resumably; see the module docstring.

    Parameters
    ----------
    source : str or PathLike
        Folder, ``.jsonl`` manifest or record list (see :func:`iter_inputs`).
    func : callable ``(BatchItem, out_dir: str) -> dict``
        Per-record function (picklable). It writes its own files under ``out_dir`` with
        :func:`atomic_path` and returns the row's values by column name.
    out_dir : str or PathLike
        Output folder (created).
    columns : sequence of str
        Columns of ``scores.csv``; the first must be ``"record"`` (filled from the item).
    pattern : str
        File-name pattern when ``source`` is a folder.
    select : callable, optional
        Manifest record filter (see :func:`iter_inputs`).
    jobs : int >= 1
        Local worker processes (``executor="local"``).
    executor : {"local", "dask"}
    scheduler : str, optional
        Dask scheduler address for ``executor="dask"``.
    progress : bool
        Show a progress bar (records done, rate, ETA) on stderr.
    retry_errors : bool
        Process again the records listed in an existing ``errors.csv`` (their rows are removed
        first).
    max_in_flight : int, optional
        Records submitted but not yet written (default: 4 per worker).
    description : str
        Progress-bar label.
    scores_name : str
        File name of the results table in ``out_dir`` (default ``scores.csv``).

    Returns
    -------
    BatchSummary
    """
    columns = list(columns)
    if not columns or columns[0] != "record":
        raise ConfigError(f"columns: the first column must be 'record', got {columns[:1]}")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"--jobs: expected a positive integer, got {jobs!r}")
    if executor not in ("local", "dask"):
        raise ConfigError(f"--executor: expected 'local' or 'dask', got {executor!r}")
    if executor == "dask" and not scheduler:
        raise ConfigError("--scheduler: the dask executor needs the address of a running "
                          "scheduler (e.g. tcp://127.0.0.1:8786)")
    t0 = time.perf_counter()
    out = Path(os.fspath(out_dir))
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / PARTIAL_DIR, ignore_errors=True)  # leftovers of a killed run
    scores = _RowFile(out / scores_name, columns)
    errors = _RowFile(out / ERRORS_NAME, ERROR_COLUMNS)
    try:
        if retry_errors and errors.keys:
            errors.remove_keys(set(errors.keys))
        done = scores.keys | errors.keys
        n_inputs, n_skipped = count_inputs(source, pattern=pattern, select=select, done=done)
        ex = _make_executor(executor, jobs, scheduler)
        limit = max_in_flight or 4 * ex.capacity
        n_ok = n_failed = 0
        pending: collections.deque = collections.deque()
        bar = _progress(n_inputs - n_skipped, progress, description)
        cancelled = True
        try:
            def write(item, status, value):
                nonlocal n_ok, n_failed
                if status == "ok":
                    row = dict(value)
                    row["record"] = item.key
                    unknown = set(row) - set(columns)
                    if unknown:
                        status, value = "error", (f"per-record function returned unknown "
                                                  f"columns {sorted(unknown)}")
                    else:
                        scores.append([row.get(c) for c in columns])
                        n_ok += 1
                if status == "error":
                    errors.append([item.key, _one_line(value)])
                    n_failed += 1
                bar.update(1)

            def drain(until: int):
                while len(pending) > until:
                    item, fut = pending.popleft()
                    result = ex.result(fut)
                    if result is None:  # a local worker died: find which record killed it
                        suspects = [item] + [it for it, _ in pending]
                        pending.clear()
                        ex.restart()
                        for it in suspects:
                            write(it, *ex.run_alone(_run_one, func, it, str(out)))
                        continue
                    write(item, *result)

            for item in iter_inputs(source, pattern=pattern, select=select):
                if item.key in done:
                    continue
                pending.append((item, ex.submit(_run_one, func, item, str(out))))
                drain(limit - 1)
            drain(0)
            cancelled = False
        finally:
            bar.close()
            ex.close(cancelled)
    finally:
        scores.close()
        errors.close()
    shutil.rmtree(out / PARTIAL_DIR, ignore_errors=True)
    return BatchSummary(str(out), n_inputs, n_skipped, n_ok, n_failed,
                        time.perf_counter() - t0, str(out / scores_name), str(out / ERRORS_NAME))
