"""``biosig segment pcg``: batch heart-cycle segmentation of phonocardiograms.

A thin wrapper over :func:`biosig.pcg.segment_pcg`; heavy imports happen inside the command.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from biosig.cli._app import segment_app


@segment_app.command("pcg")
def segment_pcg_cmd(
    inputs: Annotated[list[Path], typer.Argument(help="PCG recordings (.wav ...), folders "
                                                      "(searched recursively) or .jsonl "
                                                      "manifests.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: <record>.tsv (CirCor "
                                                    "layout), segments.csv, errors.csv.")],
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Local worker processes.")] = 1,
    pattern: Annotated[str, typer.Option("--pattern", help="File pattern searched in "
                                                           "folders.")] = "*.wav",
    weights: Annotated[Path | None, typer.Option(
        "--weights", help="Segmenter weights (default: the ones shipped with biosig, "
                          "trained on CirCor 2022).")] = None,
    executor: Annotated[str, typer.Option("--executor", help="local or dask.")] = "local",
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Dask scheduler address (with --executor dask).")] = None,
    retry_errors: Annotated[bool, typer.Option(
        "--retry-errors", help="Process the recordings listed in errors.csv again.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="Progress bar on stderr.")] = True,
) -> None:
    """Segment heart sounds into S1, systole, S2 and diastole (Springer 2016 LR-HSMM).

    Writes one <record>.tsv per recording: start_s, end_s, state (1 S1, 2 systole, 3 S2,
    4 diastole, 0 not labelled). A recording that cannot be used becomes a row of errors.csv
    and the run goes on; rerun the same command to resume.
    """
    from biosig.pcg import segment_pcg
    summary = segment_pcg(inputs, out, pattern=pattern, jobs=jobs, executor=executor,
                          scheduler=scheduler, weights=weights, progress=progress,
                          retry_errors=retry_errors)
    typer.echo(str(summary))
    if summary.n_failed and summary.n_ok == 0 and summary.n_skipped == 0:
        import csv
        with open(summary.errors_csv, encoding="utf-8", newline="") as f:
            for row in list(csv.DictReader(f))[-summary.n_failed:]:
                print(f"biosig: error: {row['reason']}", file=sys.stderr)
        raise typer.Exit(2)
