"""``biosig segment pcg`` and ``biosig evaluate pcg``: batch heart-cycle segmentation of
phonocardiograms and its S1/S2 scores.

Thin wrappers over :func:`biosig.pcg.segment_pcg` and :func:`biosig.pcg.evaluate_pcg_folders`;
reached as attributes of :mod:`biosig` (loaded on first use, so ``--help`` imports neither).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer

import biosig
from biosig.cli._app import evaluate_app, segment_app


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
    """Segment heart sounds into S1, systole, S2 and diastole (Springer 2016 HSMM).

    Writes one <record>.tsv per recording: start_s, end_s, state (1 S1, 2 systole, 3 S2,
    4 diastole, 0 not labelled). A recording that cannot be used becomes a row of errors.csv
    and the run goes on; rerun the same command to resume.
    """
    summary = biosig.pcg.segment_pcg(inputs, out, pattern=pattern, jobs=jobs, executor=executor,
                                     scheduler=scheduler, weights=weights, progress=progress,
                                     retry_errors=retry_errors)
    typer.echo(str(summary))
    if summary.n_failed and summary.n_ok == 0 and summary.n_skipped == 0:
        with open(summary.errors_csv, encoding="utf-8", newline="") as f:
            for row in list(csv.DictReader(f))[-summary.n_failed:]:
                print(f"biosig: error: {row['reason']}", file=sys.stderr)
        raise typer.Exit(2)


@evaluate_app.command("pcg")
def evaluate_pcg_cmd(
    ref_dir: Annotated[Path, typer.Argument(help="Folder of reference <record>.tsv files "
                                                 "(searched recursively).")],
    test_dir: Annotated[Path, typer.Argument(help="Folder of the segmenter's .tsv files.")],
    tolerance_s: Annotated[float, typer.Option(
        "--tolerance-s", help="Largest centre distance of a match (seconds).")] = 0.06,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Also write pooled and per-record counts as JSON.")] = None,
) -> None:
    """S1 and S2 Se, PPV and F1 (centre within 60 ms, annotated stretch only), pooled."""
    total, per = biosig.pcg.evaluate_pcg_folders(ref_dir, test_dir, tolerance_s=tolerance_s)
    typer.echo(str(total))
    if out is not None:
        biosig.fileio.write_json_atomic(out, {
            "pooled": total.to_dict(), "tolerance_s": tolerance_s,
            "records": {k: v.to_dict() for k, v in per.items()}})
        typer.echo(f"written: {out}")
