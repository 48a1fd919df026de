"""What every training run shares, whichever task trains: device and process-group setup,
seeding, the run folder (a new one, the latest one, or the one ``--run-id`` names, never
overwritten), atomic checkpoints and the ``env.json`` record. The classifier engine
(:mod:`biosig.train.engine`) and the Whisper task (:mod:`biosig.train.whisper`) both use these.
"""

from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import biosig
from biosig.errors import ConfigError
from biosig.fileio import atomic_path

__all__ = ["DistInfo", "dist_info", "pick_device", "init_device", "set_cpu_threads",
           "seed_everything", "git_hash", "env_info", "save_checkpoint", "new_run_dir",
           "latest_run_dir", "resolve_run_dir", "run_folder"]


def pick_device(spec: str = "auto", *, local_rank: int = 0) -> torch.device:
    """``auto`` -> ``cuda:<local_rank>`` when CUDA is available, else ``cpu``."""
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if spec.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device is {spec!r} but CUDA is not available (use device=cpu)")
    if spec == "cuda":
        return torch.device(f"cuda:{local_rank}")
    return torch.device(spec)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """Rank, world size and local rank from the ``torchrun`` environment (1 process if none)."""
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def git_hash(path=None) -> str | None:
    """The git commit of the checkout holding ``path`` (``+dirty`` when modified), or None."""
    where = Path(path or Path(__file__).resolve().parent)
    try:
        h = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True,
                           text=True, timeout=10)
        if h.returncode != 0:
            return None
        d = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                           capture_output=True, text=True, timeout=10)
        return h.stdout.strip() + ("+dirty" if d.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def save_checkpoint(obj, path) -> None:
    """``torch.save`` written atomically (a reader sees the old checkpoint or the new one)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def new_run_dir(cfg, dist: DistInfo) -> Path:
    """A new ``<output_dir>/<recipe>/<UTC time>`` (``-2``, ``-3`` ... when taken); under DDP
    rank 0 chooses and the others receive the name."""
    base = Path(cfg.output_dir) / cfg.recipe
    run_id = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    if dist.is_main:
        k, candidate = 1, run_id
        while (base / candidate).exists():
            k += 1
            candidate = f"{run_id}-{k}"
        run_id = candidate
    if dist.distributed:
        obj = [run_id]
        torch.distributed.broadcast_object_list(obj, src=0)
        run_id = obj[0]
    return base / run_id


def latest_run_dir(cfg) -> Path:
    """The most recent run folder of ``cfg.recipe`` (for ``--resume`` without ``--run-id``)."""
    base = Path(cfg.output_dir) / cfg.recipe
    runs = sorted((p for p in base.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise ConfigError(f"--resume: no earlier run in {base}")
    return runs[-1]


def env_info(cfg, device, dist: DistInfo, amp: bool) -> dict:
    """What a run folder's ``env.json`` records: versions, git hash, device, threads, command."""
    return {"biosig_version": biosig.__version__, "git": git_hash(), "python":
            sys.version.split()[0], "torch": torch.__version__, "device": str(device),
            "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                            else platform.processor() or platform.machine()),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "world_size": dist.world_size, "amp": amp,
            "command": " ".join(sys.argv)}


def init_device(device: str) -> tuple[DistInfo, torch.device]:
    """This process's :class:`DistInfo` and training device (:func:`pick_device`); under
    ``torchrun`` it joins the process group (NCCL on CUDA, gloo otherwise)."""
    dist = dist_info()
    dev = pick_device(device, local_rank=dist.local_rank)
    if dist.distributed and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    return dist, dev


def set_cpu_threads(dist: DistInfo) -> int:
    """Torch's intra-op threads on CPU: ``OMP_NUM_THREADS`` when set, else the machine's cores
    shared among the local processes of a ``torchrun`` job (oversubscribed cores run several
    times slower than the same work on fewer threads). Returns the count used."""
    if os.environ.get("OMP_NUM_THREADS"):
        n = int(os.environ["OMP_NUM_THREADS"])
    else:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size))
        n = max(1, (os.cpu_count() or 1) // max(local, 1))
    torch.set_num_threads(n)
    return n


def resolve_run_dir(cfg, *, run_id: str | None, resume: bool) -> Path | None:
    """The run folder ``biosig train`` writes: with ``resume``, the run ``run_id`` names (or
    the latest of the recipe); with ``run_id``, that folder, refused when it already holds a
    run (``last.pt``, ``report.json``, ``cv_report.json`` or K-fold folders) so nothing is
    overwritten; else None
    (the caller makes a :func:`new_run_dir`)."""
    if resume:
        return (Path(cfg.output_dir) / cfg.recipe / run_id) if run_id else latest_run_dir(cfg)
    if run_id is None:
        return None
    out = Path(cfg.output_dir) / cfg.recipe / run_id
    if any((out / f).exists() for f in ("last.pt", "report.json", "cv_report.json",
                                         "fold-0")):
        raise ConfigError(f"{out} already holds a run; pass --resume or another --run-id")
    return out


def run_folder(cfg, *, run_id: str | None, resume: bool) -> Path:
    """The run folder of a ``biosig train`` call: :func:`resolve_run_dir`, else a
    :func:`new_run_dir` (under ``torchrun`` the process group is joined first, so rank 0's
    choice can be broadcast)."""
    out = resolve_run_dir(cfg, run_id=run_id, resume=resume)
    if out is not None:
        return out
    dist = dist_info()
    if dist.distributed:
        init_device(cfg.device)
    return new_run_dir(cfg, dist)
