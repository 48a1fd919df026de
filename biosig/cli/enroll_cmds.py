"""``biosig enroll``: a speaker adapter from a folder of one speaker's recordings (a thin wrapper
over :func:`biosig.train.whisper.enroll.enroll_speaker`). Nothing of the audio or text is
printed or logged."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import biosig
from biosig.cli._app import app

SPEAKERS_DIR_HELP = ("Folder of enrolled speakers (default: $BIOSIG_SPEAKERS, else "
                     "~/.local/share/biosig/speakers).")


@app.command("enroll")
def enroll_cmd(
    name: Annotated[str, typer.Argument(help="Speaker name (letters, digits, _ . -).")],
    folder: Annotated[Path, typer.Argument(
        help="The speaker's recordings: <utt>.wav (or .flac) beside <utt>.txt holding what "
             "was said; a few minutes of read sentences.")],
    model: Annotated[str, typer.Option(
        "--model", "-m", help="Base model (a local CTranslate2 or transformers folder, or "
                              "packaged:whisper-base); --speaker needs the same one.")],
    speakers_dir: Annotated[Path | None, typer.Option("--speakers-dir", help=SPEAKERS_DIR_HELP)
                            ] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace a speaker already enrolled under NAME.")] = False,
    settings: Annotated[list[str] | None, typer.Option(
        "--set", help="Enrollment setting key=value (epochs, lr, lora_r, interpolation, "
                      "min_audio_s ...).")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu | cuda")] = "cpu",
    language: Annotated[str, typer.Option("--language")] = "en",
    progress: Annotated[bool, typer.Option("--progress/--no-progress")] = True,
) -> None:
    """Enroll a speaker: train a small LoRA adapter on their recordings (minutes on a CPU)
    and store it, with its provenance, for `--speaker NAME` on transcribe, dictate and
    serve."""
    enroll = biosig.train.whisper.enroll
    s = enroll.EnrollSettings.validate_mapping(
        dict(biosig.train.config.parse_override(t) for t in settings or []), source="--set")
    prof = enroll.enroll_speaker(name, folder, model=model, speakers_dir=speakers_dir,
                                 settings=s, overwrite=overwrite, device=device,
                                 language=language, progress=progress)
    p = prof.provenance
    print(f"speaker {name}: enrolled on {p['n_recordings']} recordings ({p['audio_s']:.0f} s "
          f"of audio) in {p['enroll_s']:.0f} s -> {prof.folder}")
