"""What the Whisper fine-tuning task leaves behind: the best model in transformers format
(LoRA merged, written atomically), WiSE-FT interpolation with the starting model, and the
CTranslate2 export (:func:`biosig.asr.ct2.export_ct2_whisper`)."""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
from pathlib import Path

import torch

from biosig.asr.ct2 import export_ct2_whisper
from biosig.fileio import atomic_dir, write_text_atomic

__all__ = ["save_hf", "save_adapter", "interpolate_state", "interpolate_best", "restore_tuned_best",
           "export_ct2"]

log = logging.getLogger("biosig.train.whisper")


def save_hf(model, processor, out_dir: Path, *, lora: bool,
            extra_files: dict[str, str] | None = None) -> None:
    """Save in transformers format (LoRA merged) atomically: written beside, then renamed;
    ``extra_files`` (name -> text) are written into the folder too."""
    m = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    if lora:
        m = copy.deepcopy(m).merge_and_unload()
    with atomic_dir(out_dir, overwrite=True, what="model") as tmp:
        m.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        m.generation_config.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            write_text_atomic(Path(tmp) / name, text)


def save_adapter(model, out_dir: Path) -> None:
    """Save a peft model's LoRA adapter alone (``adapter_config.json``,
    ``adapter_model.safetensors``) atomically."""
    m = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    with atomic_dir(out_dir, overwrite=True, what="adapter") as tmp:
        m.save_pretrained(tmp)


def interpolate_state(start: dict, tuned: dict, alpha: float) -> dict:
    """``start + alpha * (tuned - start)`` for every floating-point tensor (others from
    ``tuned``); both state dicts must have the same keys and shapes."""
    if set(start) != set(tuned):
        diff = sorted(set(start) ^ set(tuned))[:3]
        raise ValueError(f"the two models' weights differ in names (e.g. {diff})")
    out = {}
    for k, t in tuned.items():
        s = start[k]
        if s.shape != t.shape:
            raise ValueError(f"weight {k}: shape {tuple(s.shape)} vs {tuple(t.shape)}")
        out[k] = (s + alpha * (t.to(s.dtype) - s)).to(t.dtype) if t.is_floating_point() else t
    return out


def interpolate_best(base_name: str, best_dir: Path, alpha: float) -> None:
    """Replace ``best/`` by its interpolation with the starting model; the fine-tuned weights
    move to ``best_tuned/`` first. An interpolated ``best/`` carries ``interpolation.json``, so
    a rerun (or a resumed run whose best epoch did not change) starts from ``best_tuned/``
    again, and a newly saved best epoch replaces ``best_tuned/``."""
    from transformers import (  # optional extra: asr (require()d by the callers)
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )
    tuned_dir = best_dir.with_name("best_tuned")
    if not (best_dir / "interpolation.json").is_file():      # best/ holds fine-tuned weights
        shutil.rmtree(tuned_dir, ignore_errors=True)
        os.replace(best_dir, tuned_dir)
    tuned = WhisperForConditionalGeneration.from_pretrained(tuned_dir)
    start = WhisperForConditionalGeneration.from_pretrained(base_name)
    tuned.load_state_dict(interpolate_state(start.state_dict(), tuned.state_dict(), alpha))
    marker = {"alpha": alpha, "start": str(base_name), "tuned": tuned_dir.name}
    save_hf(tuned, WhisperProcessor.from_pretrained(tuned_dir), best_dir, lora=False,
            extra_files={"interpolation.json": json.dumps(marker) + "\n"})
    log.info("best/ = starting model + %.2f x (fine-tuned - starting model)", alpha)


def restore_tuned_best(best_dir: Path) -> bool:
    """Undo :func:`interpolate_best`: where ``best/`` is an interpolation, the fine-tuned
    weights in ``best_tuned/`` become ``best/`` again; returns whether anything changed."""
    tuned_dir = best_dir.with_name("best_tuned")
    if best_dir.is_dir() and not (best_dir / "interpolation.json").is_file():
        return False
    if not tuned_dir.is_dir():
        raise FileNotFoundError(f"{best_dir} is interpolated or missing, and {tuned_dir} (the "
                                "fine-tuned weights) is missing")
    # renames only, so an interruption leaves best_tuned/ to be moved in by the next call
    old = best_dir.with_name("best.interpolated")
    if best_dir.is_dir():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(best_dir, old)
    os.replace(tuned_dir, best_dir)
    shutil.rmtree(old, ignore_errors=True)
    log.info("best/ = the fine-tuned weights again (no interpolation)")
    return True


def export_ct2(best_dir: Path, ct2_dir: Path, *, quantization: str) -> None:
    """The best model as a CTranslate2 directory (loadable by faster-whisper)."""
    export_ct2_whisper(best_dir, ct2_dir, quantization=quantization, overwrite=True)
