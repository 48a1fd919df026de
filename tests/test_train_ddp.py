"""DistributedDataParallel on CPU: two gloo processes under torch.distributed.run; only rank 0
writes the run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml
from test_train_engine import toy, toy_config  # noqa: F401  (fixture + helper)


def test_torchrun_two_processes_gloo(toy, tmp_path):  # noqa: F811
    cfg = toy_config(toy, tmp_path / "runs", **{"train.epochs": 2})
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node", "2", "-m", "biosig", "train", str(path),
                           "--run-id", "ddp", "--no-progress"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    d = tmp_path / "runs" / "toy" / "ddp"
    env_json = json.loads((d / "env.json").read_text())
    assert env_json["world_size"] == 2
    rep = json.loads((d / "report.json").read_text())
    assert rep["world_size"] == 2 and rep["epochs_run"] == 2
    lines = (d / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2                           # written once (rank 0), not twice
    assert proc.stdout.count("run: ") == 1           # only rank 0 prints
    assert sorted(p.name for p in (tmp_path / "runs" / "toy").iterdir()) == ["ddp"]
