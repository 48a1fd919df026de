"""The batch runner: :func:`run_batch` applies a per-record function to every input, resumably.

See :mod:`biosig.batch` for the guarantees (resumable and deterministic, atomic outputs, flat
memory, one failure does not stop the run).
"""

from __future__ import annotations

import collections
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from biosig.batch.executors import make_executor, run_one
from biosig.batch.inputs import BatchItem, count_inputs, iter_inputs
from biosig.batch.outputs import (
    ERROR_COLUMNS,
    ERRORS_NAME,
    PARTIAL_DIR,
    SCORES_NAME,
    RowFile,
    one_line,
)
from biosig.errors import ConfigError
from biosig.progress import Progress

__all__ = ["BatchSummary", "run_batch"]


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


def _progress(total: int, enabled: bool, description: str):
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
    scores = RowFile(out / scores_name, columns)
    errors = RowFile(out / ERRORS_NAME, ERROR_COLUMNS)
    try:
        if retry_errors and errors.keys:
            errors.remove_keys(set(errors.keys))
        done = scores.keys | errors.keys
        n_inputs, n_skipped = count_inputs(source, pattern=pattern, select=select, done=done)
        ex = make_executor(executor, jobs, scheduler)
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
                    errors.append([item.key, one_line(value)])
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
                            write(it, *ex.run_alone(run_one, func, it, str(out)))
                        continue
                    write(item, *result)

            for item in iter_inputs(source, pattern=pattern, select=select):
                if item.key in done:
                    continue
                pending.append((item, ex.submit(run_one, func, item, str(out))))
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
