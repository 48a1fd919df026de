"""Where batch records run: this process, a local process pool, or a Dask cluster.

Each executor has ``capacity`` (tasks it runs at once), ``submit(fn, *args)``, ``result(fut)``
and ``close(cancel)``; a local pool also has ``restart()`` and ``run_alone(fn, *args)``, used to
find the record that killed a worker. Tasks are :func:`run_one` calls, which never raise for a
record.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from biosig.batch.inputs import BatchItem
from biosig.batch.outputs import one_line
from biosig.errors import BiosigError, ConfigError
from biosig.extras import require

__all__ = ["run_one", "WORKER_DIED", "InlineExecutor", "LocalPoolExecutor", "DaskExecutor",
           "make_executor"]


def run_one(func, item: BatchItem, out_dir: str):
    """Worker side: ``("ok", row)`` or ``("error", reason)``; never raises for a record."""
    try:
        row = func(item, out_dir)
        if not isinstance(row, dict):
            return "error", f"per-record function returned {type(row).__name__}, not a dict"
        return "ok", row
    except Exception as exc:  # noqa: BLE001 - every failure becomes an errors.csv row
        msg = one_line(str(exc)) or type(exc).__name__
        if not isinstance(exc, (BiosigError, OSError)):
            msg = f"{type(exc).__name__}: {msg}"
        return "error", msg


#: Reason written for a record whose worker process died (crash in native code, out of memory).
WORKER_DIED = "worker process died while processing this record (crash or out of memory)"


class InlineExecutor:
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


class LocalPoolExecutor:
    """A process pool that is rebuilt when a worker dies; the records that were in flight are
    then run one at a time so that only the one that kills its worker gets an error row."""

    def __init__(self, jobs: int):
        self.capacity = jobs
        self._pool = None
        self._start()

    def _start(self):
        self._pool = ProcessPoolExecutor(max_workers=self.capacity,
                                         mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn, *args):
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


class DaskExecutor:
    """Tasks on a running Dask cluster; a task whose workers keep dying (``KilledWorker``)
    becomes an error row (the nannies restart the workers)."""

    def __init__(self, scheduler: str):
        Client = require("distributed", extra="scale").Client
        try:
            self.client = Client(scheduler, timeout="20s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"--scheduler: cannot connect to {scheduler!r} "
                              f"({one_line(str(exc))})") from None
        self.capacity = max(1, sum(self.client.nthreads().values()))

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def result(self, fut):
        from distributed.scheduler import KilledWorker  # optional extra: scale
        try:
            return fut.result()
        except KilledWorker:
            return "error", WORKER_DIED

    def close(self, cancel: bool) -> None:
        self.client.close()


def make_executor(executor: str, jobs: int, scheduler: str | None):
    """The executor for ``executor`` (``"local"`` or ``"dask"``) and ``jobs`` local workers."""
    if executor == "dask":
        return DaskExecutor(scheduler)
    return InlineExecutor() if jobs == 1 else LocalPoolExecutor(jobs)
