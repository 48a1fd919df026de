"""The one training loop every task runs: :func:`fit` with a :class:`Task` supplying what differs.

A task (the classifier recipes' :class:`biosig.train.engine.ClassifierTask`, the Whisper
fine-tuning :class:`biosig.train.whisper.WhisperTask`) builds its model and data, computes the loss
of a batch, validates, saves what "best" means for it and writes its test report. The loop owns
everything else, once:

- the run folder: ``config.yaml`` (resolved), ``env.json``, ``metrics.jsonl`` (one line per
  epoch), ``last.pt`` and ``report.json``, written atomically by rank 0 only;
- the device, the process group under ``torchrun`` (DistributedDataParallel: NCCL on GPUs, gloo
  on CPUs; only rank 0 validates, decides and writes; the decision is broadcast), CPU threads and
  seeding;
- optimisation: gradient accumulation, clipping, float16 loss scaling on CUDA, the learning-rate
  schedule per step, per epoch or on a plateau of the monitored score, a guard against a
  non-finite loss;
- early stopping on the monitored validation score (``patience``), and
- ``--resume``: ``last.pt`` holds the model, optimiser, scheduler, scaler, every RNG state, the
  history and the best score, and the batch order is a function of the seed and the epoch, so a
  run resumed at an epoch boundary ends with the same weights as one never interrupted.

Each epoch shows progress (:mod:`biosig.progress`) and a summary line on stderr (rank 0).
"""

from __future__ import annotations

import json
import logging
import math
import random
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml

from biosig.errors import ConfigError
from biosig.fileio import jsonable, write_text_atomic
from biosig.progress import Progress, format_duration
from biosig.train.config import config_to_dict
from biosig.train.runs import (
    DistInfo,
    env_info,
    init_device,
    new_run_dir,
    save_checkpoint,
    seed_everything,
    set_cpu_threads,
)

__all__ = ["StepOutput", "Task", "RunContext", "LoopResult", "fit"]

log = logging.getLogger("biosig.train")


@dataclass
class StepOutput:
    """What :meth:`Task.training_step` returns for one batch.

    ``loss`` is back-propagated (a scalar mean over ``n`` units: recordings, tokens); ``n``
    weights it in the epoch's mean training loss, which records ``logged`` instead when given
    (e.g. the task loss without a regularising term); ``items`` counts recordings or clips (for
    the throughput); ``extras`` are other scalars (e.g. a distillation term) averaged over the
    batches that report them and recorded as ``train_<name>``.
    """

    loss: torch.Tensor
    n: int
    items: int
    extras: dict[str, float] = field(default_factory=dict)
    logged: float | None = None


@dataclass
class RunContext:
    """What the loop hands a task in :meth:`Task.setup`."""

    cfg: Any
    out: Path
    device: torch.device
    dist: DistInfo
    progress: bool

    @property
    def show(self) -> bool:
        """Progress is shown (rank 0 with ``progress``)."""
        return bool(self.progress and self.dist.is_main)


@dataclass
class LoopResult:
    """Where the loop ended: the history (one dict per epoch, as in ``metrics.jsonl``), the
    best epoch, whether patience stopped it, the training time and the loop's start time."""

    history: list[dict]
    best_epoch: int
    stopped_early: bool
    train_s: float
    t_wall: float


class Task:
    """What differs between training tasks; :func:`fit` calls these hooks.

    Subclasses set ``self.model`` in :meth:`setup` (the bare module: the loop wraps it in
    DistributedDataParallel) and implement :meth:`configure_optimizers`,
    :meth:`train_batches`, :meth:`training_step`, :meth:`validate` and :meth:`finish`.
    """

    #: key of :meth:`validate`'s metrics that decides the best epoch and early stopping
    monitor: str = "loss"
    #: ``max``: higher is better; ``min``: lower is better
    mode: Literal["max", "min"] = "max"
    #: score the starting model as epoch 0 (it is the best until an epoch beats it)
    validate_first: bool = False
    #: when the scheduler steps: after each optimiser ``step``, each ``epoch``, or each epoch
    #: with the monitored score (``plateau``)
    scheduler_interval: Literal["step", "epoch", "plateau"] = "epoch"
    grad_accum_steps: int = 1
    grad_clip_norm: float | None = None
    max_steps_per_epoch: int | None = None
    max_steps: int | None = None             # optimiser steps over the whole run
    patience: int | None = None
    #: ``torch.float16`` enables loss scaling (CUDA only); the task autocasts itself
    amp_dtype: torch.dtype | None = None
    items_unit: str = "rec"
    ddp_kwargs: dict = {}

    model: torch.nn.Module

    def setup(self, ctx: RunContext) -> None:
        """Build the model (``self.model``, on ``ctx.device``) and the data."""
        raise NotImplementedError

    def configure_optimizers(self, params: list[torch.nn.Parameter]):
        """``(optimizer, scheduler or None)`` over the trainable ``params``."""
        raise NotImplementedError

    def train_batches(self, epoch: int) -> Iterable:
        """The training batches of ``epoch`` (a function of the seed and the epoch); has a
        ``len``."""
        raise NotImplementedError

    def training_step(self, net: torch.nn.Module, batch, *, generator: torch.Generator
                      ) -> StepOutput:
        """The loss of one batch through ``net`` (the model, DDP-wrapped when distributed)."""
        raise NotImplementedError

    def validate(self, epoch: int) -> tuple[dict, float]:
        """``(metrics, valid_loss)`` on the validation set (rank 0 only); ``metrics`` holds
        :attr:`monitor`."""
        raise NotImplementedError

    def on_best(self, epoch: int, metrics: dict, state: dict) -> None:
        """Keep what the best epoch means for this task (rank 0). ``state`` is what
        ``last.pt`` holds for this epoch."""

    def checkpoint_extra(self) -> dict:
        """Task-specific entries stored in each checkpoint (e.g. the classes)."""
        return {}

    def env_extra(self) -> dict:
        """Task-specific entries of ``env.json`` (sizes, parameter counts)."""
        return {}

    def finish(self, result: LoopResult) -> dict:
        """Test with the best model, plot, export; returns the report (rank 0). The loop adds
        ``wall_s`` and writes ``report.json``."""
        raise NotImplementedError

    def export_changed(self, report: dict) -> bool:
        """Whether a finished run's ``report`` was made with other export settings than the
        config's (then ``--resume`` runs :meth:`finish` again, without training)."""
        return False


def _better(mode: str, a: float, b: float) -> bool:
    return a > b if mode == "max" else a < b


def _worst(mode: str) -> float:
    return -math.inf if mode == "max" else math.inf


def _finite_or(value, default: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) else default


def _read_history(out: Path) -> list[dict]:
    """The rows of ``out/metrics.jsonl`` (none where it is missing)."""
    path = out / "metrics.jsonl"
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()
            if x.strip()] if path.is_file() else []


def _finished(report: dict, out: Path, epochs: int, max_steps: int | None) -> bool:
    """A run with a report is finished unless its configuration now asks for more epochs (or
    steps) than it ran and patience did not stop it."""
    if report.get("stopped_early"):
        return True
    rows = _read_history(out)
    if not rows:
        return True
    return rows[-1]["epoch"] >= epochs or bool(max_steps and rows[-1].get("step", 0) >= max_steps)


def _finish_again(task: Task, cfg, out: Path, report: dict, dist, device, progress: bool
                  ) -> tuple[Path, dict, LoopResult]:
    """The finish step of a finished run again (its export settings changed): no training;
    the history and the best epoch are the run's, the training time its report's."""
    t_wall = time.perf_counter()
    history = _read_history(out)
    result = LoopResult(history, int(report["best_epoch"]), bool(report.get("stopped_early")),
                        0.0, t_wall)
    new: dict = {}
    if dist.is_main:
        log.info("%s: export settings changed; finishing again without training", out)
        write_text_atomic(out / "config.yaml", yaml.safe_dump(config_to_dict(cfg),
                                                              sort_keys=False))
    task.setup(RunContext(cfg, out, device, dist, progress))     # every rank, as in fit
    if dist.is_main:
        new = task.finish(result)
        new.setdefault("stopped_early", result.stopped_early)
        new["wall_s"] = report.get("wall_s")
        new["finish_wall_s"] = time.perf_counter() - t_wall
        write_text_atomic(out / "report.json", json.dumps(jsonable(new), indent=2) + "\n")
    if dist.distributed:
        torch.distributed.barrier()
    return out, new, result


def _rng_state(gen: torch.Generator) -> dict:
    return {"torch": torch.get_rng_state(), "gen": gen.get_state(),
            "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng_state(rng: dict, gen: torch.Generator) -> None:
    torch.set_rng_state(rng["torch"])
    gen.set_state(rng["gen"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])


def _reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum over all ranks (values as they are when not distributed)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return values
    on = device if torch.distributed.get_backend() == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=on)
    torch.distributed.all_reduce(t)
    return t.tolist()


def fit(task: Task, cfg, *, run_dir=None, resume: bool = False, progress: bool = True
        ) -> tuple[Path, dict, LoopResult | None]:
    """Train ``task`` as ``cfg`` says (``cfg.device``, ``cfg.seed``, ``cfg.train.epochs``,
    ``cfg.output_dir``, ``cfg.recipe``); returns ``(run_dir, report, loop_result)``.

    Parameters
    ----------
    task : Task
    cfg : pydantic config
        Saved resolved as ``config.yaml``.
    run_dir : path, optional
        The run folder (default: a new ``<output_dir>/<recipe>/<UTC time>``).
    resume : bool
        Continue from ``run_dir/last.pt``. A finished run (``report.json`` written, and
        patience stopped it or it ran the epochs ``cfg`` asks for) is returned as it is
        (``loop_result`` None); asked for more epochs, it trains on and reports again;
        with other export settings (:meth:`Task.export_changed`), only :meth:`Task.finish`
        runs again, on the saved best model.
    progress : bool
        Progress per epoch and a summary line per epoch on stderr (rank 0).
    """
    t_wall = time.perf_counter()
    dist, device = init_device(cfg.device)
    if device.type == "cpu":
        set_cpu_threads(dist)
    seed_everything(cfg.seed + dist.rank)
    out = Path(run_dir) if run_dir is not None else new_run_dir(cfg, dist)
    if resume and (out / "report.json").is_file():
        report = json.loads((out / "report.json").read_text())
        if _finished(report, out, cfg.train.epochs, task.max_steps):
            if not task.export_changed(report):
                return out, report, None
            return _finish_again(task, cfg, out, report, dist, device, progress)
    if resume and not (out / "last.pt").is_file():
        raise ConfigError(f"--resume: {out / 'last.pt'} not found (nothing to resume)")
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "config.yaml", yaml.safe_dump(config_to_dict(cfg),
                                                              sort_keys=False))
    if dist.distributed:
        torch.distributed.barrier()

    ctx = RunContext(cfg, out, device, dist, progress)
    task.setup(ctx)
    model = task.model
    net = model
    if dist.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            **task.ddp_kwargs)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer, scheduler = task.configure_optimizers(params)
    scaler = (torch.amp.GradScaler("cuda")
              if task.amp_dtype == torch.float16 and device.type == "cuda" else None)
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + dist.rank)

    mode = task.mode
    start_epoch, step, best_score, best_epoch, bad_epochs = 1, 0, _worst(mode), -1, 0
    history: list[dict] = []
    if resume:
        ck = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
        if "history" not in ck:
            raise ConfigError(f"--resume: {out / 'last.pt'} was written by an older biosig "
                              "(no history in it); start a new run")
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        if scheduler is not None and ck.get("scheduler") is not None:
            scheduler.load_state_dict(ck["scheduler"])
        if scaler is not None and ck.get("scaler") is not None:
            scaler.load_state_dict(ck["scaler"])
        start_epoch, step = ck["epoch"] + 1, ck["step"]
        best_score, best_epoch, bad_epochs = ck["best_score"], ck["best_epoch"], ck["bad_epochs"]
        history = ck["history"]
        _set_rng_state(ck["rng"], gen)
        log.info("resumed %s at epoch %d", out, start_epoch)
    if dist.is_main:
        env = env_info(cfg, device, dist, task.amp_dtype is not None)
        env["n_parameters"] = sum(p.numel() for p in model.parameters())
        env["n_trainable"] = sum(p.numel() for p in params)
        env.update(task.env_extra())
        write_text_atomic(out / "env.json", json.dumps(jsonable(env), indent=2) + "\n")
        write_text_atomic(out / "metrics.jsonl", "".join(json.dumps(jsonable(h)) + "\n"
                                                    for h in history))

    def state(epoch: int) -> dict:
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "scaler": scaler.state_dict() if scaler is not None else None,
                "epoch": epoch, "step": step, "best_score": best_score,
                "best_epoch": best_epoch, "bad_epochs": bad_epochs, "history": history,
                "rng": _rng_state(gen), **task.checkpoint_extra()}

    def record(row: dict) -> None:
        history.append(row)
        with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(jsonable(row)) + "\n")

    if task.validate_first and not resume and dist.is_main:
        t0 = time.perf_counter()
        metrics, valid_loss = task.validate(0)
        best_score = _finite_or(metrics.get(task.monitor), _worst(mode))
        best_epoch = 0
        record({"epoch": 0, "step": 0, "train_loss": None, "valid_loss": valid_loss,
                "lr": 0.0, "epoch_s": time.perf_counter() - t0,
                "valid": {k: v for k, v in metrics.items() if not isinstance(v, (dict, list))}})
        task.on_best(0, metrics, state(0))
        log.info("epoch 0 (starting model): valid %s %.4f", task.monitor, best_score)
    if task.validate_first and dist.distributed:
        obj = [best_score, best_epoch]
        torch.distributed.broadcast_object_list(obj, src=0)
        best_score, best_epoch = obj

    t_start = time.perf_counter()
    stopped_early = False
    for epoch in range(start_epoch, cfg.train.epochs + 1):
        if task.max_steps is not None and step >= task.max_steps:
            break
        t0 = time.perf_counter()
        batches = task.train_batches(epoch)
        n_batches = len(batches)
        if task.max_steps_per_epoch is not None:
            n_batches = min(n_batches, task.max_steps_per_epoch)
        bar = Progress(n_batches, desc=f"{cfg.recipe} epoch {epoch}/{cfg.train.epochs}",
                       unit="batch", items_unit=task.items_unit, enabled=ctx.show)
        net.train()
        optimizer.zero_grad(set_to_none=True)
        loss_sum, n_sum, micro = 0.0, 0, 0
        extras: dict[str, list[float]] = {}
        for i, batch in enumerate(batches):
            if task.max_steps_per_epoch is not None and i >= task.max_steps_per_epoch:
                break
            res = task.training_step(net, batch, generator=gen)
            if not torch.isfinite(res.loss):
                raise FloatingPointError(
                    f"{cfg.recipe}: training loss became {float(res.loss)} at epoch {epoch}, "
                    f"step {step}; lower the learning rate or set a gradient clip norm")
            scaled = res.loss / task.grad_accum_steps
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
            loss_sum += (float(res.loss.detach()) if res.logged is None else res.logged) * res.n
            n_sum += res.n
            for k, v in res.extras.items():
                extras.setdefault(k, []).append(float(v))
            micro += 1
            if micro % task.grad_accum_steps == 0:
                if scaler is not None:
                    scaler.unscale_(optimizer)
                if task.grad_clip_norm:
                    torch.nn.utils.clip_grad_norm_(params, task.grad_clip_norm)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                if scheduler is not None and task.scheduler_interval == "step":
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
            bar.update(1, items=res.items, loss=f"{loss_sum / max(n_sum, 1):.3f}")
            if task.max_steps is not None and step >= task.max_steps:
                break
        bar.close()
        train_s = time.perf_counter() - t0
        loss_sum, n_sum = _reduce_sum([loss_sum, float(n_sum)], device)
        train_loss = loss_sum / max(n_sum, 1)
        decision = [False, 0.0]                         # improved, score
        if dist.is_main:
            metrics, valid_loss = task.validate(epoch)
            score = _finite_or(metrics.get(task.monitor), _worst(mode))
            decision = [best_epoch < 0 or _better(mode, score, best_score), score]
            row = {"epoch": epoch, "step": step, "train_loss": train_loss,
                   "valid_loss": valid_loss, "lr": optimizer.param_groups[0]["lr"],
                   "epoch_s": None, "train_s": train_s,
                   "train_rec_per_s": bar.items / max(train_s, 1e-9),
                   "valid": {k: v for k, v in metrics.items()
                             if not isinstance(v, (dict, list))}}
            row.update({f"train_{k}": float(np.mean(v)) for k, v in extras.items()})
        if dist.distributed:
            torch.distributed.broadcast_object_list(decision, src=0)
        improved, score = decision
        if improved:
            best_score, best_epoch, bad_epochs = score, epoch, 0
        else:
            bad_epochs += 1
        if scheduler is not None and task.scheduler_interval == "epoch":
            scheduler.step()
        elif scheduler is not None and task.scheduler_interval == "plateau":
            scheduler.step(score if math.isfinite(score) else -1e9)
        if dist.is_main:
            row["epoch_s"] = time.perf_counter() - t0
            record(row)
            st = state(epoch)
            if improved:
                task.on_best(epoch, metrics, st)
            save_checkpoint(st, out / "last.pt")
            if ctx.show:
                print(f"{cfg.recipe} epoch {epoch}/{cfg.train.epochs}: train_loss "
                      f"{train_loss:.4f}, valid {task.monitor} {score:.4f} (best "
                      f"{best_score:.4f} at epoch {best_epoch}), "
                      f"{format_duration(row['epoch_s'])}, {row['train_rec_per_s']:.1f} "
                      f"{task.items_unit}/s", file=sys.stderr, flush=True)
            log.info("epoch %d train_loss %.4f valid %s %.4f%s", epoch, train_loss,
                     task.monitor, score, " (best)" if improved else "")
        if task.patience is not None and bad_epochs >= task.patience:
            stopped_early = True
            break

    result = LoopResult(history, best_epoch, stopped_early, time.perf_counter() - t_start,
                        t_wall)
    report: dict = {}
    if dist.is_main:
        report = task.finish(result)
        report.setdefault("stopped_early", stopped_early)
        # this process's time, reading data and filling caches included (a resumed run counts
        # only the part after resuming)
        report["wall_s"] = time.perf_counter() - t_wall
        write_text_atomic(out / "report.json", json.dumps(jsonable(report), indent=2) + "\n")
    if dist.distributed:
        torch.distributed.barrier()
    return out, report, result
