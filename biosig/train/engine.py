"""The training engine: plain functions (:func:`compute_loss`, :func:`train_one_epoch`,
:func:`evaluate`) and :func:`train` / :func:`run`, which own a run folder.

A run folder ``<output_dir>/<recipe>/<run-id>/`` holds ``config.yaml`` (resolved),
``env.json`` (package version, git hash, torch, device, world size), ``metrics.jsonl`` (one line
per epoch), ``best.pt`` and ``last.pt``, ``report.json`` (test metrics with bootstrap CIs),
``test_predictions.csv`` and ``learning_curves.png``, ``roc.png``, ``confusion_matrix.png``.
With ``cv.folds = K`` each fold gets a ``fold-<k>/`` folder like that and the run folder a
``cv_report.json`` with the mean and standard deviation of every metric over folds.

Under ``torchrun`` (``WORLD_SIZE > 1``) the model is wrapped in DistributedDataParallel (NCCL on
GPUs, gloo on CPUs), the training set is sharded with a DistributedSampler, and only rank 0
evaluates, decides early stopping (broadcast to the others) and writes files.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from biosig.errors import ConfigError
from biosig.fileio import atomic_path, write_text_atomic
from biosig.train.config import TrainConfig, config_to_dict
from biosig.train.data import (
    Example,
    FrontEnd,
    WindowDataset,
    assign_example_splits,
    augment_waveforms,
    class_weights,
    collate_eval,
    collate_train,
    kfold_assign,
    load_examples,
    mixup,
    spec_augment,
)

__all__ = ["pick_device", "init_device", "seed_everything", "compute_loss", "train_one_epoch",
           "evaluate", "EvalOutput", "train", "run", "RunResult", "DistInfo", "dist_info",
           "git_hash"]

log = logging.getLogger("biosig.train")


# ------------------------------------------------------------------------------ setup

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


def _atomic_torch_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _jsonable(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_jsonable(v) for v in o]
    if isinstance(o, (np.floating, np.integer)):
        return _jsonable(o.item())
    return o


# ------------------------------------------------------------------------ loop pieces

@dataclass
class LossResult:
    """Loss of one batch: ``loss`` (scalar tensor), ``logits`` (batch, n_classes)."""

    loss: torch.Tensor
    logits: torch.Tensor


def compute_loss(model, frontend, waves: torch.Tensor, targets: torch.Tensor, *,
                 cfg: TrainConfig, weights: torch.Tensor | None = None, train: bool = False,
                 amp: bool = False, generator: torch.Generator | None = None) -> LossResult:
    """Front-end, augmentation (when ``train``), model and weighted cross-entropy.

    Parameters
    ----------
    model : nn.Module
        ``(batch, n_features, n_frames)`` -> ``(batch, n_classes)``.
    frontend : FrontEnd
    waves : torch.Tensor [shape=(batch, n_samples)]
        On the training device.
    targets : torch.Tensor of int64 [shape=(batch,)]
    weights : torch.Tensor [shape=(n_classes,)], optional
        Class weights of the loss.
    train : bool
        Apply waveform augmentation, SpecAugment and mixup.
    amp : bool
        Run the model under CUDA autocast (float16); the front-end stays float32.
    """
    n_classes = len(cfg.data.classes)
    if train:
        waves = augment_waveforms(waves, cfg.augment, fs=cfg.data.target_fs,
                                  generator=generator)
    feats = frontend(waves)                                   # (batch, n_features, n_frames)
    if train:
        feats = spec_augment(feats, cfg.augment, generator=generator)
        feats, soft = mixup(feats, targets, n_classes=n_classes,
                            alpha=cfg.augment.mixup_alpha, generator=generator)
    else:
        soft = torch.nn.functional.one_hot(targets, n_classes).float()
    with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
        logits = model(feats)                                 # (batch, n_classes)
    if logits.shape != (waves.shape[0], n_classes):
        raise RuntimeError(f"model returned {tuple(logits.shape)}, expected "
                           f"({waves.shape[0]}, {n_classes})")
    loss = torch.nn.functional.cross_entropy(logits.float(), soft, weight=weights)
    return LossResult(loss, logits)


def train_one_epoch(model, frontend, loader, optimizer, *, cfg: TrainConfig, device,
                    scaler=None, weights=None, amp: bool = False,
                    generator: torch.Generator | None = None) -> float:
    """One pass over ``loader``; returns the mean training loss (over all ranks under DDP)."""
    model.train()
    total, n = 0.0, 0
    for step, (waves, targets) in enumerate(loader):
        if cfg.train.max_steps_per_epoch is not None and step >= cfg.train.max_steps_per_epoch:
            break
        waves, targets = waves.to(device, non_blocking=True), targets.to(device)
        res = compute_loss(model, frontend, waves, targets, cfg=cfg, weights=weights,
                           train=True, amp=amp, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(res.loss).backward()
            scaler.unscale_(optimizer)
        else:
            res.loss.backward()
        if cfg.train.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        if not torch.isfinite(res.loss):
            raise RuntimeError(f"training loss became {res.loss.item()} at step {step}; lower "
                               f"optim.lr or set train.grad_clip_norm")
        total += res.loss.item() * waves.shape[0]
        n += waves.shape[0]
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        t = torch.tensor([total, float(n)], dtype=torch.float64,
                         device=device if torch.distributed.get_backend() == "nccl" else "cpu")
        torch.distributed.all_reduce(t)                 # mean over all ranks' items
        total, n = float(t[0]), int(t[1])
    return total / max(n, 1)


@dataclass
class EvalOutput:
    """Per-item results of :func:`evaluate`: ``probs`` (n_items, n_classes) averaged over each
    item's windows, ``targets`` (n_items,), mean ``loss``, and ``embeddings`` (n_items, dim)
    for models with an ``embed`` method."""

    probs: np.ndarray
    targets: np.ndarray
    loss: float
    embeddings: np.ndarray | None = None


@torch.no_grad()
def evaluate(model, frontend, loader, *, cfg: TrainConfig, device, amp: bool = False,
             embeddings: bool = False) -> EvalOutput:
    """Class probabilities per item, averaged over its windows; loss of the averaged
    log-probabilities."""
    model.eval()
    probs, targets, embs = [], [], []
    for waves, owner, tgt in loader:
        waves, owner = waves.to(device), owner.to(device)
        feats = frontend(waves)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
            logits = model(feats).float()                      # (n_windows, n_classes)
        p = torch.softmax(logits, -1)
        summed = torch.zeros(len(tgt), p.shape[1], device=device).index_add_(0, owner, p)
        count = torch.bincount(owner, minlength=len(tgt)).clamp(min=1)[:, None]
        probs.append((summed / count).cpu())
        targets.append(tgt)
        if embeddings and hasattr(model, "embed"):
            e = model.embed(feats).float()
            es = torch.zeros(len(tgt), e.shape[1], device=device).index_add_(0, owner, e)
            embs.append((es / count).cpu())
    if not probs:
        return EvalOutput(np.zeros((0, len(cfg.data.classes))), np.zeros(0, int), math.nan)
    P = torch.cat(probs).numpy().astype(float)
    T = torch.cat(targets).numpy()
    loss = float(-np.mean(np.log(np.clip(P[np.arange(len(T)), T], 1e-12, None))))
    return EvalOutput(P, T, loss, torch.cat(embs).numpy() if embs else None)


def scored_items(cfg, ev: EvalOutput, examples) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(probs, targets, ids)`` to score: per item, or per ``eval.aggregate_by`` group."""
    ids = [e.record.id for e in examples]
    key = cfg.eval.aggregate_by
    if key is None:
        return ev.probs, ev.targets, ids
    from biosig.train.data import _field
    from biosig.train.evaluation import aggregate_by_group
    groups = [f"{_field(e.record, key)}" if _field(e.record, key) is not None
              else f"id:{e.record.id}" for e in examples]
    return aggregate_by_group(ev.probs, ev.targets, groups)


# ------------------------------------------------------------------------------ a run

@dataclass(frozen=True)
class RunResult:
    """What :func:`train` produced: the run folder and the test metrics."""

    run_dir: str
    report: dict


def _loader(ds, *, cfg, train: bool, dist: DistInfo, weights_for_sampler=None):
    kw = dict(num_workers=cfg.data.num_workers, pin_memory=False,
              persistent_workers=cfg.data.num_workers > 0)
    if not train:
        return torch.utils.data.DataLoader(ds, batch_size=max(1, cfg.train.batch_size // 4),
                                           shuffle=False, collate_fn=collate_eval, **kw)
    g = torch.Generator().manual_seed(cfg.seed)
    if dist.distributed:
        sampler = torch.utils.data.distributed.DistributedSampler(
            ds, num_replicas=dist.world_size, rank=dist.rank, shuffle=True, seed=cfg.seed)
    elif weights_for_sampler is not None:
        sampler = torch.utils.data.WeightedRandomSampler(weights_for_sampler, len(ds),
                                                         replacement=True, generator=g)
    else:
        sampler = torch.utils.data.RandomSampler(ds, generator=g)
    return torch.utils.data.DataLoader(ds, batch_size=cfg.train.batch_size, sampler=sampler,
                                       collate_fn=collate_train, drop_last=False,
                                       worker_init_fn=_worker_init, **kw)


def _worker_init(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _datasets(cfg, examples: list[Example]):
    by = {s: [e for e in examples if e.split == s] for s in ("train", "valid", "test")}
    lim = cfg.data.limit_per_split
    if lim is not None:
        by = {s: v[:lim] for s, v in by.items()}
    for s in ("train", "valid"):
        if not by[s]:
            raise ConfigError(f"{cfg.data.manifest}: no '{s}' records for this run (check "
                              f"data.splits, data.filter and the manifest's split field)")
    common = dict(root=cfg.data.root, target_fs=cfg.data.target_fs,
                  window_s=cfg.data.window_s, channel=cfg.data.channel, cache=cfg.data.cache)
    return {s: WindowDataset(v, train=(s == "train"), eval_mode=cfg.data.eval_windows,
                             max_eval_windows=cfg.data.max_eval_windows, **common)
            for s, v in by.items()}


def _new_run_dir(cfg, run_id: str | None, dist: DistInfo) -> Path:
    base = Path(cfg.output_dir) / cfg.recipe
    if run_id is None:
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


def _env_info(cfg, device, dist: DistInfo, amp: bool) -> dict:
    import platform

    import biosig
    return {"biosig_version": biosig.__version__, "git": git_hash(), "python":
            sys.version.split()[0], "torch": torch.__version__, "device": str(device),
            "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                            else platform.processor() or platform.machine()),
            "cpu_count": os.cpu_count(), "world_size": dist.world_size, "amp": amp,
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


def train(cfg: TrainConfig, *, run_dir=None, resume: bool = False,
          examples: list[Example] | None = None, progress: bool = True) -> RunResult:
    """Train, early-stop, checkpoint and test one model; write everything to ``run_dir``.

    Parameters
    ----------
    cfg : TrainConfig
    run_dir : str or PathLike, optional
        The run folder (default: a new ``<output_dir>/<recipe>/<UTC time>``).
    resume : bool
        Continue from ``run_dir/last.pt`` (the optimizer, scheduler, scaler, RNG states,
        best score and patience counter come back too, and the batch order is a function of
        the seed and the epoch, so a run resumed at an epoch boundary ends with the same
        weights as one never interrupted). A run whose ``report.json`` exists is returned as
        it is.
    examples : list of Example, optional
        Records with splits already set (used by :func:`run` for K-fold); default: read from
        the manifest and split as ``data.splits`` says.
    progress : bool
        Show a progress bar over epochs.

    Returns
    -------
    RunResult
    """
    dist, device = init_device(cfg.device)
    amp = bool(cfg.train.amp and device.type == "cuda")
    seed_everything(cfg.seed + dist.rank)
    out = Path(run_dir) if run_dir is not None else _new_run_dir(cfg, None, dist)
    if resume and (out / "report.json").is_file():
        return RunResult(str(out), json.loads((out / "report.json").read_text()))
    if resume and not (out / "last.pt").is_file():
        raise ConfigError(f"--resume: {out / 'last.pt'} not found")

    if examples is None:
        examples, counts = load_examples(cfg.data)
        if cfg.data.splits == "auto":
            examples = assign_example_splits(examples, seed=cfg.data.split_seed,
                                             valid_frac=cfg.data.valid_frac,
                                             test_frac=cfg.data.test_frac)
    from biosig.train.evaluation import metric_names
    if cfg.train.monitor not in metric_names(cfg):
        raise ConfigError(f"train.monitor is {cfg.train.monitor!r}; this config reports "
                          f"{', '.join(metric_names(cfg))}")
    ds = _datasets(cfg, examples)
    classes = list(cfg.data.classes)
    n_classes = len(classes)
    train_targets = ds["train"].targets
    weights = None
    sampler_weights = None
    if cfg.data.balance == "weights" or (cfg.data.balance == "sampler" and dist.distributed):
        weights = class_weights(train_targets, n_classes).to(device)
    elif cfg.data.balance == "sampler":
        cw = class_weights(train_targets, n_classes).numpy()
        sampler_weights = torch.as_tensor(cw[np.asarray(train_targets)], dtype=torch.double)

    frontend = FrontEnd(cfg.features, fs=cfg.data.target_fs).to(device)
    n_frames = frontend.n_frames(ds["train"].n_samples)
    from biosig.models import build_model
    model = build_model(cfg.model, n_features=frontend.n_features, n_classes=n_classes)
    model.to(device)
    net = model
    if dist.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True)
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
    okw = dict(lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    if cfg.optim.optimizer == "sgd":
        okw["momentum"] = cfg.optim.momentum
    optimizer = opt_cls[cfg.optim.optimizer](net.parameters(), **okw)
    if cfg.optim.scheduler == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.train.epochs)
    elif cfg.optim.scheduler == "plateau":
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max",
                                                               patience=3, factor=0.5)
    else:
        scheduler = None
    scaler = torch.amp.GradScaler("cuda") if amp else None
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + dist.rank)

    start_epoch, best_score, best_epoch, bad_epochs = 1, -math.inf, 0, 0
    history: list[dict] = []
    if resume:
        ck = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        if scheduler is not None and ck.get("scheduler") is not None:
            scheduler.load_state_dict(ck["scheduler"])
        if scaler is not None and ck.get("scaler") is not None:
            scaler.load_state_dict(ck["scaler"])
        start_epoch = ck["epoch"] + 1
        best_score, best_epoch, bad_epochs = ck["best_score"], ck["best_epoch"], ck["bad_epochs"]
        torch.set_rng_state(ck["rng"]["torch"])
        gen.set_state(ck["rng"]["gen"])
        np.random.set_state(ck["rng"]["numpy"])
        random.setstate(ck["rng"]["python"])
        if (out / "metrics.jsonl").is_file():
            history = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()
                       if x.strip()]
            history = [h for h in history if h["epoch"] < start_epoch]
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        env = _env_info(cfg, device, dist, amp)
        env.update({"n_features": frontend.n_features, "n_frames": n_frames,
                    "n_parameters": sum(p.numel() for p in model.parameters()),
                    "splits": {s: len(d) for s, d in ds.items()}})
        write_text_atomic(out / "env.json", json.dumps(_jsonable(env), indent=2))
        write_text_atomic(out / "metrics.jsonl", "".join(json.dumps(_jsonable(h)) + "\n"
                                                    for h in history))
    loaders = {"train": _loader(ds["train"], cfg=cfg, train=True, dist=dist,
                                weights_for_sampler=sampler_weights),
               "valid": _loader(ds["valid"], cfg=cfg, train=False, dist=dist)}
    monitor = cfg.train.monitor
    from biosig.train.evaluation import compute_metrics
    t_start = time.perf_counter()
    bar = None
    if progress and dist.is_main:
        from tqdm import tqdm
        bar = tqdm(total=cfg.train.epochs, initial=start_epoch - 1, desc=cfg.recipe,
                   unit="epoch", file=sys.stderr, leave=False)
    stopped_early = False
    for epoch in range(start_epoch, cfg.train.epochs + 1):
        t0 = time.perf_counter()
        train_sampler = loaders["train"].sampler
        if dist.distributed:
            train_sampler.set_epoch(epoch)
        else:  # the order is a function of (seed, epoch), so a resumed run equals a whole one
            train_sampler.generator.manual_seed(cfg.seed * 100_003 + epoch)
        train_loss = train_one_epoch(net, frontend, loaders["train"], optimizer, cfg=cfg,
                                     device=device, scaler=scaler, weights=weights, amp=amp,
                                     generator=gen)
        decision = [False, False, 0.0]          # stop, improved, score
        if dist.is_main:
            ev = evaluate(model, frontend, loaders["valid"], cfg=cfg, device=device, amp=amp)
            vp, vt, _ = scored_items(cfg, ev, ds["valid"].examples)
            valid = compute_metrics(vt, vp, cfg)
            score = valid[monitor] if math.isfinite(valid[monitor]) else -math.inf
            improved = epoch == 1 or score > best_score or best_epoch == 0
            decision = [False, improved, score]
            row = {"epoch": epoch, "train_loss": train_loss, "valid_loss": ev.loss,
                   "lr": optimizer.param_groups[0]["lr"], "epoch_s": time.perf_counter() - t0,
                   "valid": {k: v for k, v in valid.items() if not isinstance(v, (dict, list))}}
            history.append(row)
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(_jsonable(row)) + "\n")
        if dist.distributed:
            torch.distributed.broadcast_object_list(decision, src=0)
        _, improved, score = decision
        if improved:
            best_score, best_epoch, bad_epochs = score, epoch, 0
        else:
            bad_epochs += 1
        if scheduler is not None:
            if cfg.optim.scheduler == "plateau":
                scheduler.step(score if math.isfinite(score) else -1e9)
            else:
                scheduler.step()
        if dist.is_main:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict() if scheduler is not None else None,
                     "scaler": scaler.state_dict() if scaler is not None else None,
                     "epoch": epoch, "best_score": best_score, "best_epoch": best_epoch,
                     "bad_epochs": bad_epochs, "config": config_to_dict(cfg),
                     "classes": classes, "n_features": frontend.n_features,
                     "rng": {"torch": torch.get_rng_state(), "gen": gen.get_state(),
                             "numpy": np.random.get_state(), "python": random.getstate()}}
            if improved:
                _atomic_torch_save(state, out / "best.pt")
            _atomic_torch_save(state, out / "last.pt")
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{train_loss:.3f}", **{monitor: f"{score:.3f}"})
            log.info("epoch %d train_loss %.4f valid %s %.4f", epoch, train_loss, monitor,
                     score)
        if cfg.train.patience is not None and bad_epochs >= cfg.train.patience:
            stopped_early = True
            break
    if bar is not None:
        bar.close()
    report: dict = {}
    if dist.is_main:
        report = _test_and_report(cfg, model, frontend, ds, out, device=device, amp=amp,
                                  dist=dist, history=history, best_epoch=best_epoch,
                                  stopped_early=stopped_early,
                                  train_s=time.perf_counter() - t_start)
    if dist.distributed:
        torch.distributed.barrier()
    return RunResult(str(out), report)


def _test_and_report(cfg, model, frontend, ds, out: Path, *, device, amp, dist, history,
                     best_epoch, stopped_early, train_s) -> dict:
    from biosig.train.evaluation import embedding_eer, metrics_with_ci
    from biosig.train.plots import plot_confusion, plot_learning_curves, plot_roc
    ck = torch.load(out / "best.pt", map_location=device, weights_only=False)
    model.load_state_dict(ck["model"])
    classes = list(cfg.data.classes)
    split = "test" if len(ds["test"]) else "valid"
    loader = _loader(ds[split], cfg=cfg, train=False, dist=dist)
    ev = evaluate(model, frontend, loader, cfg=cfg, device=device, amp=amp,
                  embeddings=hasattr(model, "embed"))
    probs, targets, ids = scored_items(cfg, ev, ds[split].examples)
    res = metrics_with_ci(targets, probs, cfg)
    if ev.embeddings is not None:
        res["embedding_eer"] = embedding_eer(ev.embeddings, ev.targets)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([cfg.eval.aggregate_by or "record", *[f"p_{c}" for c in classes], "label",
                "predicted"])
    for name, p, t in zip(ids, probs, targets):
        w.writerow([name, *[f"{x:.6f}" for x in p], classes[int(t)],
                    classes[int(np.argmax(p))]])
    write_text_atomic(out / f"{split}_predictions.csv", buf.getvalue())
    env = json.loads((out / "env.json").read_text())
    report = {"recipe": cfg.recipe, "run_dir": str(out), "evaluated_split": split,
              "n_items": int(len(targets)), "scored_by": cfg.eval.aggregate_by or "record",
              "classes": classes,
              "splits": {s: len(d) for s, d in ds.items()}, "best_epoch": best_epoch,
              "epochs_run": len(history), "stopped_early": stopped_early,
              "monitor": cfg.train.monitor, "train_s": train_s, "device": str(device),
              "device_name": env.get("device_name"), "world_size": dist.world_size,
              "amp": amp, "git": env.get("git"), "metrics": res}
    write_text_atomic(out / "report.json", json.dumps(_jsonable(report), indent=2))
    plot_learning_curves(history, out / "learning_curves.png", monitor=cfg.train.monitor)
    from biosig.train.evaluation import _positive
    plot_roc(targets, probs, classes, out / "roc.png", positive=_positive(cfg))
    plot_confusion(res["confusion"], classes, out / "confusion_matrix.png")
    return report


def run(cfg: TrainConfig, *, resume: bool = False, run_id: str | None = None,
        progress: bool = True) -> RunResult:
    """Train as configured: one run, or ``cv.folds`` patient-grouped stratified folds.

    With K folds, fold ``k`` tests on fold ``k``, validates (early stopping) on fold
    ``k + 1 mod K`` and trains on the rest; ``cv_report.json`` gives the mean and standard
    deviation over folds of every scalar test metric. ``--resume`` skips finished folds.
    """
    dist = dist_info()
    if resume:
        out = (Path(cfg.output_dir) / cfg.recipe / run_id) if run_id else latest_run_dir(cfg)
    elif run_id is not None:
        out = Path(cfg.output_dir) / cfg.recipe / run_id
        if (out / "last.pt").exists() or (out / "cv_report.json").exists():
            raise ConfigError(f"{out} already holds a run; pass --resume or another --run-id")
    else:
        if dist.distributed and not torch.distributed.is_initialized():
            dev = pick_device(cfg.device, local_rank=dist.local_rank)
            torch.distributed.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        out = _new_run_dir(cfg, None, dist)
    if cfg.cv.folds == 0:
        return train(cfg, run_dir=out, resume=resume and (out / "last.pt").exists(),
                     progress=progress)
    examples, _ = load_examples(cfg.data)
    folds = kfold_assign(examples, folds=cfg.cv.folds, seed=cfg.data.split_seed)
    k_total = cfg.cv.folds
    reports = []
    for k in range(k_total):
        split_of = {k: "test", (k + 1) % k_total: "valid"}
        ex = [Example(e.record, e.target, split_of.get(f, "train"), e.group)
              for e, f in zip(examples, folds)]
        fold_dir = out / f"fold-{k}"
        r = train(cfg, run_dir=fold_dir, resume=resume and (fold_dir / "last.pt").exists(),
                  examples=ex, progress=progress)
        reports.append(r.report)
    summary: dict = {}
    if dist.is_main:
        names = [n for n, v in reports[0]["metrics"].items() if isinstance(v, float)]
        for n in names:
            vals = np.array([r["metrics"][n] if r["metrics"][n] is not None else np.nan
                             for r in reports], dtype=float)
            ok = vals[~np.isnan(vals)]
            summary[n] = {"mean": float(ok.mean()) if ok.size else None,
                          "std": float(ok.std(ddof=1)) if ok.size > 1 else None,
                          "per_fold": vals.tolist(), "n_defined": int(ok.size)}
        cv = {"recipe": cfg.recipe, "folds": k_total, "run_dir": str(out),
              "metrics": summary, "fold_dirs": [r["run_dir"] for r in reports]}
        write_text_atomic(out / "cv_report.json", json.dumps(_jsonable(cv), indent=2))
        summary = cv
    return RunResult(str(out), summary)
