"""``biosig demo``: the main job of the README's first command (:mod:`biosig.cli.demo`)."""

from __future__ import annotations

from pathlib import Path

import typer

import biosig
from biosig.cli._app import app


@app.command("demo")
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Output folder."),
    data_root: Path = typer.Option(None, "--data-root",
                                   help="Real recordings (default $BIOSIG_DATA_ROOT or "
                                        "../shared/data); synthetic signals when none."),
    max_per_modality: int = typer.Option(3, "--max-per-modality", min=1),
    synthetic: bool = typer.Option(False, "--synthetic", help="Use only synthetic signals."),
) -> None:
    """Load every modality found (or synthetic stand-ins), write spectrogram plots and feature
    tables under OUT."""
    res = biosig.cli.demo.run_demo(out, data_root=data_root, max_per_modality=max_per_modality,
                                   synthetic_only=synthetic)
    if res.n_ok == 0:
        raise typer.Exit(1)
