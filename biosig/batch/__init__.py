"""A generic, resumable batch runner: one function applied to many recordings.

- :mod:`~biosig.batch.inputs` -- what to process: :func:`iter_inputs` streams the records of
  a folder, a JSONL manifest or a record list as :class:`BatchItem` objects;
- :mod:`~biosig.batch.outputs` -- where results go: ``scores.csv``/``errors.csv`` appended row by
  row, :func:`atomic_path` for the per-record files;
- :mod:`~biosig.batch.executors` -- where records run: in this process, a local process pool
  that survives a worker's death, or a Dask cluster (the ``scale`` extra);
- :mod:`~biosig.batch.runner` -- :func:`run_batch`, which ties them together and resumes.

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

from biosig.batch.executors import WORKER_DIED
from biosig.batch.inputs import BatchItem, count_inputs, iter_inputs
from biosig.batch.outputs import ERRORS_NAME, PARTIAL_DIR, SCORES_NAME, atomic_path
from biosig.batch.runner import BatchSummary, run_batch

__all__ = ["BatchItem", "BatchSummary", "run_batch", "iter_inputs", "count_inputs",
           "atomic_path", "SCORES_NAME", "ERRORS_NAME", "PARTIAL_DIR", "WORKER_DIED"]
