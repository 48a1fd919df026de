"""Write model directories: CTranslate2 -> transformers (import) and back (export).

- :func:`import_ct2_whisper` reads a CTranslate2 ``model.bin`` *without* the original
  transformers checkpoint (the usual situation of a user who only has a faster-whisper model)
  and writes a ``WhisperForConditionalGeneration`` directory (weights, config, generation config,
  tokenizer with the timestamp tokens, feature extractor) that can be fine-tuned.
- :func:`export_ct2_whisper` runs CTranslate2's own ``TransformersConverter`` on a transformers
  directory and copies the tokenizer and preprocessor files so that faster-whisper loads it.

Both write their directory atomically (:func:`biosig.fileio.atomic_dir`: a temporary sibling
renamed onto it when complete).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from biosig.asr.ct2.mapping import ct2_whisper_state_dict, read_ct2_config, whisper_configs
from biosig.asr.ct2.reader import ConversionError, read_ct2_model
from biosig.asr.ct2.tokenizer import build_tokenizer
from biosig.asr.speakers import model_digest
from biosig.errors import ConfigError, InputError
from biosig.extras import require
from biosig.fileio import atomic_dir
from biosig.whisper_audio import (
    WHISPER_CHUNK_S,
    WHISPER_FS,
    WHISPER_HOP_LENGTH,
    WHISPER_N_FFT,
)

__all__ = ["ImportResult", "import_ct2_whisper", "export_ct2_whisper", "transformers_folder",
           "EXPORT_QUANTIZATIONS"]

EXPORT_QUANTIZATIONS = ("int8", "int8_float16", "int8_float32", "float16", "bfloat16", "float32")


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_ct2_whisper` wrote.

    Attributes
    ----------
    hf_dir : Path
        The transformers directory.
    source_weight_dtype : str
        How the CTranslate2 weights were stored (``float16``, ``int8``, ``float32``...).
    n_parameters : int
        Parameters of the rebuilt model.
    vocab_size, d_model, encoder_layers, decoder_layers : int
        Architecture read from the variable shapes.
    n_timestamp_tokens_added : int
        Timestamp tokens appended to the tokenizer (0 when tokenizer.json had them).
    multilingual : bool
        Whether language tokens were found.
    """

    hf_dir: Path
    source_weight_dtype: str
    n_parameters: int
    vocab_size: int
    d_model: int
    encoder_layers: int
    decoder_layers: int
    n_timestamp_tokens_added: int
    multilingual: bool


def import_ct2_whisper(ct2_dir: str | os.PathLike, hf_dir: str | os.PathLike, *,
                       overwrite: bool = False) -> ImportResult:
    """Rebuild a transformers Whisper from a CTranslate2 (faster-whisper) model directory.

    Needs only the CTranslate2 directory: ``model.bin`` (float32, float16, bfloat16, int8 or
    int16 weights; quantized weights are dequantized with their scales), ``tokenizer.json`` and,
    when present, ``config.json`` (suppress ids, language ids, alignment heads) and
    ``vocabulary.txt`` (checked against the tokenizer). Weights are written in float32.

    Parameters
    ----------
    ct2_dir : str or PathLike
        CTranslate2 Whisper directory.
    hf_dir : str or PathLike
        Output directory; written atomically (a temporary sibling renamed at the end).
    overwrite : bool
        Replace a non-empty ``hf_dir``.

    Returns
    -------
    ImportResult

    Raises
    ------
    InputError
        Missing/corrupt files, non-empty output without ``overwrite``.
    ConversionError
        Not a Whisper model, or variables that do not map.
    """
    transformers = require("transformers", extra="asr")
    require("tokenizers", extra="asr")

    ct2_dir, hf_dir = Path(ct2_dir), Path(hf_dir)
    if not ct2_dir.is_dir():
        raise InputError(ct2_dir, "not a directory (expected a CTranslate2 Whisper model dir)")
    model_ct2 = read_ct2_model(ct2_dir / "model.bin")
    state, dims = ct2_whisper_state_dict(model_ct2)
    ct2_cfg = read_ct2_config(ct2_dir)

    with atomic_dir(hf_dir, overwrite=overwrite, what="import-ct2") as tmp:
        tokenizer, n_added = build_tokenizer(ct2_dir, dims.vocab_size, tmp)
        config, generation = whisper_configs(dims, ct2_cfg, tokenizer, ct2_dir / "config.json")
        # resolve the class (transformers imports its modules lazily) before the meta-device
        # context: a module first imported inside it would build its tensors there
        whisper_cls = transformers.WhisperForConditionalGeneration
        with torch.device("meta"):
            hf_model = whisper_cls(config)
        tensors = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}
        missing, unexpected = hf_model.load_state_dict(tensors, strict=False, assign=True)
        missing = [k for k in missing if k != "proj_out.weight"]
        if missing or unexpected:
            raise ConversionError(f"{model_ct2.path}: state dict mismatch, missing "
                                  f"{missing[:3]}, unexpected {unexpected[:3]}")
        if dims.tie_word_embeddings:
            hf_model.tie_weights()
        hf_model.generation_config = generation
        hf_model.eval()
        feature_extractor = transformers.WhisperFeatureExtractor(
            feature_size=dims.num_mel_bins, sampling_rate=WHISPER_FS,
            hop_length=WHISPER_HOP_LENGTH, chunk_length=WHISPER_CHUNK_S, n_fft=WHISPER_N_FFT,
            padding_value=0.0, return_attention_mask=False)
        processor = transformers.WhisperProcessor(feature_extractor=feature_extractor,
                                                  tokenizer=tokenizer)
        shutil.rmtree(tmp / "tokenizer_stage")
        hf_model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        feature_extractor.save_pretrained(tmp)  # preprocessor_config.json, read by faster-whisper
        n_params = sum(p.numel() for p in hf_model.parameters())
    return ImportResult(
        hf_dir=hf_dir, source_weight_dtype=model_ct2.weight_dtype, n_parameters=int(n_params),
        vocab_size=dims.vocab_size, d_model=dims.d_model, encoder_layers=dims.encoder_layers,
        decoder_layers=dims.decoder_layers, n_timestamp_tokens_added=n_added,
        multilingual=bool(getattr(generation, "lang_to_id", None)),
    )


def export_ct2_whisper(hf_dir: str | os.PathLike, ct2_dir: str | os.PathLike, *,
                       quantization: str = "float16", overwrite: bool = False) -> Path:
    """Convert a transformers Whisper directory to CTranslate2 for faster-whisper.

    Runs ``ctranslate2.converters.TransformersConverter`` and copies ``tokenizer.json`` and
    ``preprocessor_config.json`` (faster-whisper reads the number of mel bins from it).

    Parameters
    ----------
    hf_dir : str or PathLike
        A ``save_pretrained`` directory of ``WhisperForConditionalGeneration`` with its
        tokenizer (``tokenizer.json``) and feature extractor.
    ct2_dir : str or PathLike
        Output directory; written atomically.
    quantization : {"int8", "int8_float16", "int8_float32", "float16", "bfloat16", "float32"}
        Weight type of the CTranslate2 model.
    overwrite : bool
        Replace a non-empty ``ct2_dir``.

    Returns
    -------
    Path
        ``ct2_dir``.
    """
    TransformersConverter = require("ctranslate2.converters", extra="asr").TransformersConverter
    require("transformers", extra="asr")  # the converter loads the checkpoint with it

    hf_dir, ct2_dir = Path(hf_dir), Path(ct2_dir)
    if quantization not in EXPORT_QUANTIZATIONS:
        raise ConfigError(f"quantization: {quantization!r} is not one of "
                          f"{', '.join(EXPORT_QUANTIZATIONS)}")
    if not (hf_dir / "config.json").is_file():
        raise InputError(hf_dir, "no config.json: not a transformers model directory")
    cfg = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    if cfg.get("model_type") != "whisper":
        raise InputError(hf_dir / "config.json", f"model_type is {cfg.get('model_type')!r}, "
                                                 "expected 'whisper'")
    copy = [f for f in ("tokenizer.json", "preprocessor_config.json") if (hf_dir / f).is_file()]
    if "tokenizer.json" not in copy:
        raise InputError(hf_dir, "no tokenizer.json: faster-whisper needs it; save the "
                                 "tokenizer (or processor) with the model")
    feature_config = None  # transformers >= 5 saves a processor's extractor in processor_config
    if "preprocessor_config.json" not in copy and (hf_dir / "processor_config.json").is_file():
        proc = json.loads((hf_dir / "processor_config.json").read_text(encoding="utf-8"))
        feature_config = proc.get("feature_extractor") if isinstance(proc, dict) else None
    with atomic_dir(ct2_dir, overwrite=overwrite, what="export-ct2") as tmp:
        converter = TransformersConverter(str(hf_dir), copy_files=copy, low_cpu_mem_usage=True)
        converter.convert(str(tmp), quantization=quantization, force=True)
        if feature_config is not None:  # faster-whisper reads feature_size (n_mels) from it
            (tmp / "preprocessor_config.json").write_text(
                json.dumps(feature_config, indent=2) + "\n", encoding="utf-8")
    return ct2_dir


def transformers_folder(model: str) -> str:
    """A transformers folder of a local Whisper model: a transformers folder as it is; a
    CTranslate2 one (or ``packaged:whisper-base``) imported once with
    :func:`import_ct2_whisper` into ``$BIOSIG_CACHE/whisper-hf/<digest>`` (``~/.cache/biosig``;
    the digest of its ``model.bin``) and reused.

    Raises
    ------
    ConfigError
        ``model`` is not a local folder with weights (:func:`biosig.asr.speakers.model_digest`).
    """
    folder, digest = model_digest(model)
    p = Path(folder)
    if not (p / "model.bin").is_file():
        return str(p)
    base = Path(os.environ.get("BIOSIG_CACHE") or Path.home() / ".cache" / "biosig")
    dst = base / "whisper-hf" / digest.split(":")[-1][:16]
    if not (dst / "config.json").is_file():
        import_ct2_whisper(p, dst, overwrite=True)
    return str(dst)
