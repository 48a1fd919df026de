"""``biosig score qrs`` and ``biosig evaluate qrs``: batch QRS detection and EC57 evaluation.

Thin wrappers over :func:`biosig.ecg.score_qrs` and :func:`biosig.ecg.evaluate_qrs`, reached
as attributes of :mod:`biosig` (loaded on first use, so ``--help`` imports neither).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import biosig
from biosig.cli._app import evaluate_app, score_app


@score_app.command("qrs")
def score_qrs_cmd(
    input: Annotated[Path, typer.Argument(help="Folder of WFDB records (searched recursively), "
                                               "a .jsonl manifest, or a file listing record "
                                               "paths.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: <record>.qrs, scores.csv, "
                                                    "errors.csv.")],
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Local worker processes.")] = 1,
    executor: Annotated[str, typer.Option("--executor", help="local or dask.")] = "local",
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Dask scheduler address (with --executor dask).")] = None,
    lead: Annotated[int, typer.Option("--lead", help="Channel index to analyse.")] = 0,
    retry_errors: Annotated[bool, typer.Option(
        "--retry-errors", help="Process the records listed in errors.csv again.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="Progress bar on stderr.")] = True,
) -> None:
    """Detect QRS complexes in every record; resumable (rerun the same command to continue)."""
    summary = biosig.ecg.score_qrs(input, out, jobs=jobs, executor=executor, scheduler=scheduler,
                                   lead=lead, progress=progress, retry_errors=retry_errors)
    typer.echo(str(summary))


@evaluate_app.command("qrs")
def evaluate_qrs_cmd(
    ref_dir: Annotated[Path, typer.Argument(help="Folder with reference annotations "
                                                 "(searched recursively).")],
    test_dir: Annotated[Path, typer.Argument(help="Folder with the detector's annotations.")],
    ref_ext: Annotated[str, typer.Option("--ref-ext",
                                         help="Reference annotation extension.")] = "atr",
    test_ext: Annotated[str, typer.Option("--test-ext",
                                          help="Test annotation extension.")] = "qrs",
    out: Annotated[Path | None, typer.Option(
        "--out", help="Where to write qrs_evaluation.json/.csv (default: TEST_DIR).")] = None,
    window_s: Annotated[float, typer.Option("--window-s",
                                            help="Match window in seconds.")] = 0.15,
    start_s: Annotated[float, typer.Option(
        "--start-s", help="Ignore beats before this time (EC57 learning period: 300).")] = 0.0,
) -> None:
    """Beat-by-beat Se, +P and F1 per record, gross and average (ANSI/AAMI EC57)."""
    out_dir = out if out is not None else test_dir
    ev = biosig.ecg.evaluate_qrs(ref_dir, test_dir, ref_ext=ref_ext, test_ext=test_ext,
                                 window_s=window_s, start_s=start_s, out_dir=out_dir)
    typer.echo(ev.format_table())
    typer.echo(f"written: {Path(out_dir) / 'qrs_evaluation.json'}, "
               f"{Path(out_dir) / 'qrs_evaluation.csv'}")
