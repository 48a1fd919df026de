"""The root Typer application and the sub-apps that command modules attach to."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="biosig",
    help="Medical audio and biosignal analysis: load, filter, featurize, score, transcribe.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

manifest_app = typer.Typer(help="Build and check JSONL manifests of corpora.",
                           no_args_is_help=True)
score_app = typer.Typer(help="Batch-score recordings (QRS detection, trained models).",
                        no_args_is_help=True)
evaluate_app = typer.Typer(help="Compare detections with reference annotations.",
                           no_args_is_help=True)
asr_app = typer.Typer(help="Speech recognition: evaluation, model import and export.",
                      no_args_is_help=True)
data_app = typer.Typer(help="Make data: synthesized clinical dictation.", no_args_is_help=True)
segment_app = typer.Typer(help="Segment recordings (PCG heart cycles: S1, systole, S2, "
                               "diastole).", no_args_is_help=True)

app.add_typer(manifest_app, name="manifest")
app.add_typer(score_app, name="score")
app.add_typer(evaluate_app, name="evaluate")
app.add_typer(asr_app, name="asr")
app.add_typer(data_app, name="data")
app.add_typer(segment_app, name="segment")
