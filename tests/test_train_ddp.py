"""DistributedDataParallel on CPU: two gloo processes under torch.distributed.run; only rank 0
writes the run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from test_train_engine import toy, toy_config  # noqa: F401  (fixture + helper)

pytestmark = pytest.mark.slow           # each test starts two training processes (10-25 s)


def _torchrun_toy(toy, tmp_path, **over):  # noqa: F811
    """``biosig train`` of the toy config in two gloo processes; the finished process."""
    cfg = toy_config(toy, tmp_path / "runs", **over)
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", "-m", "biosig", "train", str(path),
                           "--run-id", "ddp", "--no-progress"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_torchrun_two_processes_gloo(toy, tmp_path):  # noqa: F811
    proc = _torchrun_toy(toy, tmp_path, **{"train.epochs": 2})
    d = tmp_path / "runs" / "toy" / "ddp"
    env_json = json.loads((d / "env.json").read_text())
    assert env_json["world_size"] == 2
    rep = json.loads((d / "report.json").read_text())
    assert rep["world_size"] == 2 and rep["epochs_run"] == 2
    lines = (d / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2                           # written once (rank 0), not twice
    assert proc.stdout.count("run: ") == 1           # only rank 0 prints
    assert sorted(p.name for p in (tmp_path / "runs" / "toy").iterdir()) == ["ddp"]


def test_torchrun_with_feature_cache(toy, tmp_path):  # noqa: F811
    """Rank 0 fills the feature cache, the other rank waits, then reads it: no deadlock, one
    file per recording."""
    cache = tmp_path / "cache"
    _torchrun_toy(toy, tmp_path, **{"train.epochs": 1, "data.feature_cache": str(cache)})
    assert len(list(cache.glob("*/*.npy"))) == 24
    rep = json.loads((tmp_path / "runs" / "toy" / "ddp" / "report.json").read_text())
    assert rep["world_size"] == 2 and rep["epochs_run"] == 1


def test_whisper_recipe_torchrun_two_processes(tiny_whisper_dir, tmp_path):
    """The Whisper fine-tuning recipe under torchrun (2 gloo processes) with gradient
    checkpointing and bf16 autocast on the CPU: rank 0 makes the replay targets and writes
    the run folder once."""
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "biosig", "train", str(repo / "recipes" / "whisper_dictation" / "config.yaml"),
         "--profile", "smoke", "--set", f"output_dir={tmp_path}",
         "--set", f"model.name_or_path={tiny_whisper_dir}", "--set", "train.max_steps=2",
         "--set", "train.gradient_checkpointing=true", "--set", "train.amp=bf16",
         "--set", f"data.replay.manifest={repo / 'data_manifests' / 'fleurs_en.jsonl'}",
         "--set", "data.replay.limit=2", "--set", "export.ct2_quantization=null",
         "--run-id", "ddp", "--no-progress"],
        capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    d = tmp_path / "whisper_dictation" / "ddp"
    env_json = json.loads((d / "env.json").read_text())
    assert env_json["world_size"] == 2 and env_json["amp"] is True
    hist = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == [0, 1]          # written once, by rank 0
    assert hist[1]["step"] == 2 and hist[1]["train_loss"] > 0
    assert len((d / "replay_targets.jsonl").read_text().splitlines()) == 2
    assert (d / "best" / "model.safetensors").is_file() and (d / "report.json").is_file()
    assert proc.stdout.count("run: ") == 1
