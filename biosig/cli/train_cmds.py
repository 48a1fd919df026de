"""``biosig train``, ``biosig score model`` and ``biosig explain``: thin wrappers over
:mod:`biosig.train`, reached as an attribute of :mod:`biosig` (its modules load on first use, so
``--help`` imports neither torch nor the config's pydantic)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

import biosig
from biosig.cli._app import app, score_app
from biosig.errors import ConfigError


@app.command("train")
def train_cmd(
    config: Annotated[Path, typer.Argument(help="Recipe YAML, e.g. "
                                                "recipes/ecg_af_cinc2017/config.yaml.")],
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="Override a config value: key.sub=value (value parsed as YAML); "
                      "repeatable.")] = None,
    profile: Annotated[str | None, typer.Option(
        "--profile", help="Apply a named set of overrides from the file's `profiles` "
                          "(e.g. smoke).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue the latest run of this recipe (or --run-id) from "
                         "last.pt; a finished Whisper run given other export.* settings is "
                         "exported again, without training.")] = False,
    run_id: Annotated[str | None, typer.Option(
        "--run-id", help="Name of the run folder under <output_dir>/<recipe>/ "
                         "(default: UTC time).")] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="Progress bar on stderr.")] = True,
    check: Annotated[bool, typer.Option(
        "--check", help="Only validate the config and print it resolved.")] = False,
) -> None:
    """Train and evaluate a recipe; writes runs/<recipe>/<run-id>/ (see biosig.train.engine).

    Under torchrun (`torchrun --nproc_per_node N -m biosig train ...`) it trains with
    DistributedDataParallel; only rank 0 writes.
    """
    train = biosig.train
    cfg = train.config.load_config(config, overrides=list(set_ or []), profile=profile)
    if check:
        import yaml  # loaded with biosig.train.config, not at --help
        typer.echo(yaml.safe_dump(train.config.config_to_dict(cfg), sort_keys=False).rstrip())
        return
    if isinstance(cfg, train.config.WhisperTrainConfig):
        _run_and_report(lambda: train.whisper.train_whisper(cfg, resume=resume, run_id=run_id,
                                                            progress=progress),
                        _whisper_summary)
    else:
        _run_and_report(lambda: train.engine.run(cfg, resume=resume, run_id=run_id,
                                                 progress=progress), _classifier_summary)


def _run_and_report(train, summarize) -> None:
    """Run ``train()``, leave the process group, and on rank 0 print the run folder and a
    one-line JSON summary of its report."""
    import torch  # loaded by the training, not at --help
    try:
        result = train()
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if biosig.train.runs.dist_info().is_main:
        typer.echo(f"run: {result.run_dir}")
        typer.echo(json.dumps({k: (round(v, 4) if isinstance(v, float) else v)
                               for k, v in summarize(result.report).items()}))


def _classifier_summary(report: dict) -> dict:
    m = report.get("metrics", {})
    return {k: (v.get("mean") if isinstance(v, dict) and "mean" in v else v)
            for k, v in m.items() if isinstance(v, (float, int, dict))
            and not (isinstance(v, dict) and "mean" not in v)}


def _whisper_summary(report: dict) -> dict:
    return {"best_epoch": report.get("best_epoch"),
            "valid_wer_start": (report.get("valid_start") or {}).get("wer"),
            "valid_wer": (report.get("valid") or {}).get("wer"),
            **{f"test_wer_{k}": v.get("wer") for k, v in report.get("test", {}).items()}}


@score_app.command("model")
def score_model_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (runs/<recipe>/<run-id>); "
                                                 "a K-fold run scores with its K models "
                                                 "averaged.")],
    input: Annotated[Path, typer.Argument(help="Folder (searched recursively), .jsonl "
                                               "manifest, or file listing record paths.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: predictions.csv, "
                                                    "errors.csv (answers.txt for CinC 2017).")],
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="best or last.")] = "best",
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    pattern: Annotated[str | None, typer.Option(
        "--pattern", help="File pattern for folders (default: as in the run's "
                          "manifest).")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Local worker processes.")] = 1,
    executor: Annotated[str, typer.Option("--executor", help="local or dask.")] = "local",
    scheduler: Annotated[str | None, typer.Option(
        "--scheduler", help="Dask scheduler address (with --executor dask).")] = None,
    embeddings: Annotated[bool, typer.Option(
        "--embeddings", help="Also write embeddings/<record>.npy (x-vector runs).")] = False,
    retry_errors: Annotated[bool, typer.Option(
        "--retry-errors", help="Process the records listed in errors.csv again.")] = False,
    calibrate: Annotated[bool, typer.Option(
        "--calibrate", help="Apply the run's calibration.json (fitted on its validation "
                            "predictions) to the probabilities.")] = False,
    drift: Annotated[bool, typer.Option(
        "--drift/--no-drift", help="Compare each record with the training data: ood_score "
                                   "and ood_flag columns, drift.md and drift.png.")] = True,
    progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="Progress bar on stderr.")] = True,
) -> None:
    """Class probabilities for every record with a trained model; resumable. Each record is
    also compared with the training data (ood_score, ood_flag) when the run keeps a drift
    reference."""
    if checkpoint not in ("best", "last"):
        raise ConfigError(f"--checkpoint is {checkpoint!r}, expected best or last")
    summary = biosig.train.inference.score_model(
        run_dir, input, out, checkpoint=checkpoint, device=device, pattern=pattern, jobs=jobs,
        executor=executor, scheduler=scheduler, progress=progress, retry_errors=retry_errors,
        embeddings=embeddings, calibrate=calibrate, drift=drift)
    typer.echo(str(summary))


@app.command("report")
def report_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (runs/<recipe>/<run-id>); a "
                                                 "K-fold run reports its pooled out-of-fold "
                                                 "predictions.")],
    prevalence: Annotated[float | None, typer.Option(
        "--prevalence", help="Also give PPV/NPV at this prevalence (0-1), e.g. the "
                             "clinic's.")] = None,
    min_sensitivity: Annotated[float, typer.Option(
        "--min-sensitivity", help="Sensitivity the operating threshold must reach (chosen "
                                  "on the validation predictions).")] = 0.95,
    html: Annotated[bool, typer.Option("--html", help="Also write report.html (one "
                                                      "self-contained page).")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress",
                                           help="Progress on stderr.")] = True,
) -> None:
    """Validation report of a trained run: RUN_DIR/report/report.md with its PNGs (data,
    metrics with CIs, calibration, subgroups, operating points, drift)."""
    typer.echo(str(biosig.train.report.write_report(run_dir, prevalence=prevalence,
                                                    min_sensitivity=min_sensitivity, html=html,
                                                    progress=progress)))


@app.command("explain")
def explain_cmd(
    run_dir: Annotated[Path, typer.Argument(help="A run folder (runs/<recipe>/<run-id>).")],
    record: Annotated[Path, typer.Argument(help="A recording file (or WFDB record).")],
    out: Annotated[Path | None, typer.Option(
        "--out", help="PNG to write (default: RUN_DIR/explain/<record>.png).")] = None,
    target: Annotated[str | None, typer.Option(
        "--target", help="Class to explain (default: the predicted one).")] = None,
    start_s: Annotated[float | None, typer.Option("--start-s", help="Segment start (s).")] = None,
    end_s: Annotated[float | None, typer.Option("--end-s", help="Segment end (s).")] = None,
    source_fs: Annotated[float | None, typer.Option(
        "--source-fs", help="Sampling rate for formats that store none.")] = None,
    checkpoint: Annotated[str, typer.Option("--checkpoint", help="best or last.")] = "best",
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
) -> None:
    """Grad-CAM heat map of a prediction over the input spectrogram, as PNG."""
    inference = biosig.train.inference
    if (start_s is None) != (end_s is None):
        raise ConfigError("--start-s and --end-s go together")
    run = inference.load_run(run_dir, checkpoint=checkpoint, device=device)
    tgt = None
    if target is not None:
        if target not in run.classes:
            raise ConfigError(f"--target is {target!r}, expected one of {run.classes}")
        tgt = run.classes.index(target)
    x = inference.load_waveform(run, record, start_s=start_s, end_s=end_s, source_fs=source_fs)
    cam = inference.grad_cam(run, x, target=tgt)
    dest = out if out is not None else Path(run_dir) / "explain" / f"{Path(record).stem}.png"
    dest.parent.mkdir(parents=True, exist_ok=True)
    biosig.train.plots.plot_grad_cam(cam, run.classes, dest,
                                     hop_s=run.frontend.hop / run.frontend.fs,
                                     title=f"{Path(record).name}: {run.cfg.frontend.kind}")
    probs = ", ".join(f"{c} {p:.3f}" for c, p in zip(run.classes, cam.probs))
    typer.echo(f"{dest}  ({cam.method}; {probs})")
