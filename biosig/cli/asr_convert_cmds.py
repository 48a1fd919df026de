"""``biosig asr import-ct2`` and ``biosig asr export-ct2``: Whisper <-> CTranslate2.

Thin wrappers over :func:`biosig.asr.ct2.import_ct2_whisper` and
:func:`biosig.asr.ct2.export_ct2_whisper`, reached as attributes of :mod:`biosig` (loaded on
first use); transformers and ctranslate2 (the ``asr`` extra) are required there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

import biosig
from biosig.cli._app import asr_app


@asr_app.command("import-ct2")
def import_ct2(
    ct2_dir: Annotated[Path, typer.Argument(help="CTranslate2 / faster-whisper model directory "
                                                 "(model.bin, tokenizer.json, config.json).")],
    hf_dir: Annotated[Path, typer.Argument(help="Output transformers directory.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty HF_DIR.")] = False,
) -> None:
    """Rebuild a transformers Whisper from a CTranslate2 model (float16, int8, ...).

    Writes weights (float32), config, generation config, tokenizer with the timestamp tokens and
    the feature extractor, so the model can be fine-tuned without the original checkpoint.
    """
    result = biosig.asr.ct2.import_ct2_whisper(ct2_dir, hf_dir, overwrite=force)
    typer.echo(f"imported {ct2_dir} ({result.source_weight_dtype} weights, "
               f"{result.n_parameters / 1e6:.1f} M parameters, {result.encoder_layers}+"
               f"{result.decoder_layers} layers, d_model {result.d_model}, vocab "
               f"{result.vocab_size}, {result.n_timestamp_tokens_added} timestamp tokens added) "
               f"-> {result.hf_dir}")


@asr_app.command("export-ct2")
def export_ct2(
    hf_dir: Annotated[Path, typer.Argument(help="transformers Whisper directory "
                                                "(save_pretrained of model and processor).")],
    ct2_dir: Annotated[Path, typer.Argument(help="Output CTranslate2 directory.")],
    quantization: Annotated[str, typer.Option(
        "--quantization", "-q",
        help="int8, int8_float16, int8_float32, float16, bfloat16 or float32.")] = "float16",
    force: Annotated[bool, typer.Option("--force", help="Replace a non-empty CT2_DIR.")] = False,
) -> None:
    """Convert a transformers Whisper to CTranslate2 for faster-whisper.

    Uses ctranslate2's own TransformersConverter and copies tokenizer.json and
    preprocessor_config.json, so faster-whisper (and biosig dictate) can load the result.
    """
    out = biosig.asr.ct2.export_ct2_whisper(hf_dir, ct2_dir, quantization=quantization,
                                            overwrite=force)
    typer.echo(f"exported {hf_dir} ({quantization}) -> {out}")
