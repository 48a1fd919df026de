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
