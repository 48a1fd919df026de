"""``biosig manifest build|check|stats``: thin wrappers over :mod:`biosig.manifests` (an attribute
of :mod:`biosig` loaded on first use, so ``--help`` does not import it)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

import biosig
from biosig.cli._app import manifest_app
from biosig.errors import ConfigError

_CORPUS_HELP = ("Corpus builder: wfdb, cinc2017, circor2022, icbhi2017, covid19_cough, bonn, "
                "delhi_epilepsy, eegmmidb, librispeech, audio_folder.")


def _log_to_stderr() -> None:
    log = logging.getLogger("biosig.manifests")
    if not any(getattr(h, "_biosig_cli", False) for h in log.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("biosig: warning: %(message)s"))
        h._biosig_cli = True
        log.addHandler(h)
        log.setLevel(logging.WARNING)
        log.propagate = False


@manifest_app.command("build")
def build(
    corpus: Annotated[str, typer.Argument(help=_CORPUS_HELP)],
    root: Annotated[Path, typer.Argument(help="Corpus root folder; paths are stored relative "
                                              "to it.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Manifest to write (JSONL).")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of the patient-wise split.")] = 0,
    valid_frac: Annotated[float, typer.Option("--valid-frac",
                                              help="Fraction of lines in valid.")] = 0.1,
    test_frac: Annotated[float, typer.Option("--test-frac",
                                             help="Fraction of lines in test.")] = 0.2,
    no_split: Annotated[bool, typer.Option("--no-split", help="Write no split field.")] = False,
    modality: Annotated[str | None, typer.Option(
        "--modality", help="Modality for wfdb (default ecg) and audio_folder (default "
                           "speech).")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Start afresh instead of resuming an existing file.")] = False,
) -> None:
    """Build the manifest of CORPUS found under ROOT (resumes an interrupted build)."""
    _log_to_stderr()
    options = {}
    if modality is not None:
        if corpus not in ("wfdb", "audio_folder"):
            raise ConfigError(f"--modality applies to wfdb and audio_folder, not {corpus}")
        options["modality"] = modality
    res = biosig.manifests.build_manifest(corpus, root, out, seed=seed, valid_frac=valid_frac,
                                          test_frac=test_frac, split=not no_split,
                                          overwrite=overwrite, **options)
    resumed = "" if res.n_new == res.n_lines else f" ({res.n_lines - res.n_new} already there)"
    typer.echo(f"{res.path}: {res.n_lines} lines, {res.n_new} written{resumed}")
    if not no_split:
        typer.echo(f"splits: {res.splits}")


@manifest_app.command("check")
def check(
    manifest: Annotated[Path, typer.Argument(help="Manifest (JSONL) to check.")],
    root: Annotated[Path | None, typer.Option(
        "--root", help="Corpus root for relative paths (default: the line's root under the "
                       "data root, else the manifest's folder).")] = None,
    schema_only: Annotated[bool, typer.Option(
        "--schema-only", help="Validate the lines only, not the files.")] = False,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress",
        help="Progress bar (default: on a terminal, 500+ lines).")] = None,
) -> None:
    """Validate every line against the schema and the files; one line per problem.

    Exits 0 when clean, 1 when problems were found, 2 when the manifest cannot be read.
    """
    n = 0
    for problem in biosig.manifests.check_manifest(manifest, root=root,
                                                   check_files=not schema_only,
                                                   progress=progress):
        n += 1
        typer.echo(str(problem))
    if n:
        typer.echo(f"{manifest}: {n} problem{'s' if n != 1 else ''}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{manifest}: ok", err=True)


@manifest_app.command("stats")
def stats(
    manifest: Annotated[Path, typer.Argument(help="Manifest (JSONL).")],
    by: Annotated[list[str] | None, typer.Option(
        "--by", help="Field to count by (repeatable): split, source, device, location, "
                     "labels.NAME, meta.NAME ...; default: split.")] = None,
) -> None:
    """Count lines and subjects by fields (e.g. --by source --by labels.covid19 for confounds)."""
    keys = by or ["split"]
    m = biosig.manifests
    typer.echo(m.format_counts(m.count_by(m.read_manifest(manifest), keys), keys))
