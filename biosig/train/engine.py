"""The classifier recipes: plain functions (:func:`compute_loss`, :func:`evaluate`), their hooks
into the one training loop (:class:`ClassifierTask`, run by :func:`biosig.train.loop.fit`) and
:func:`train` / :func:`run`, which own a run folder.

A run folder ``<output_dir>/<recipe>/<run-id>/`` holds ``config.yaml`` (resolved; its
``frontend`` is the whole front-end spec, from which scoring rebuilds the transform),
``env.json`` (package version, git hash, torch, device, world size), ``metrics.jsonl`` (one line
per epoch), ``best.pt`` and ``last.pt``, ``report.json`` (test metrics with bootstrap CIs),
``test_predictions.csv`` and ``learning_curves.png``, ``roc.png``, ``confusion_matrix.png``;
for ``biosig report`` and ``biosig score model``, ``valid_predictions.csv`` (the best model on
the validation split), ``calibration.json`` (fitted on them) and ``drift_reference.npz`` (the
training recordings' feature statistics, :mod:`biosig.train.drift`).
With ``cv.folds = K`` each fold gets a ``fold-<k>/`` folder like that and the run folder a
``cv_report.json`` with the mean and standard deviation of every metric over folds, the pooled
``cv_test_predictions.csv`` and ``cv_valid_predictions.csv``, ``calibration.json`` fitted on
the pooled validation predictions and a cross-fitted ``drift_reference.npz``.

Under ``torchrun`` (``WORLD_SIZE > 1``) the loop wraps the model in DistributedDataParallel (NCCL
on GPUs, gloo on CPUs), the training set is sharded with a DistributedSampler, and only rank 0
evaluates, decides early stopping (broadcast to the others) and writes files.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from biosig.errors import ConfigError
from biosig.fileio import jsonable, write_text_atomic
from biosig.manifests import field_value
from biosig.models import Ensemble, build_model
from biosig.train.cache import FeatureCache, FeatureWindowDataset
from biosig.train.config import TrainConfig, config_to_dict
from biosig.train.data import (
    SPLITS,
    Example,
    WindowDataset,
    as_fitted,
    assign_example_splits,
    augment_features,
    augment_waveforms,
    carve_select_split,
    class_weights,
    collate_eval,
    collate_train,
    kfold_assign,
    load_examples,
    mixup,
    spec_augment,
)
from biosig.train.drift import (
    REFERENCE_FILE,
    crossfit_reference,
    describe_examples,
    fit_reference,
    save_reference,
)
from biosig.train.evaluation import (
    CALIBRATION_FILE,
    aggregate_any_index,
    aggregate_by_group,
    compute_metrics,
    embedding_eer,
    fit_calibration,
    metric_names,
    metrics_with_ci,
    positive_class,
    read_predictions,
)
from biosig.train.loop import LoopResult, RunContext, StepOutput, Task, fit
from biosig.train.plots import plot_confusion, plot_learning_curves, plot_roc
from biosig.train.pretrain import pretrain_network
from biosig.train.runs import DistInfo, dist_info, run_folder, save_checkpoint

__all__ = ["compute_loss", "input_features", "evaluate", "EvalOutput", "scored_items",
           "ClassifierTask", "train", "run", "RunResult"]

log = logging.getLogger("biosig.train")


# ------------------------------------------------------------------------------ setup

# ------------------------------------------------------------------------ loop pieces

@dataclass
class LossResult:
    """Loss of one batch: ``loss`` (scalar tensor), ``logits`` (batch, n_classes)."""

    loss: torch.Tensor
    logits: torch.Tensor


def input_features(frontend, x: torch.Tensor, *, cfg: TrainConfig, train: bool = False,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """The model's input ``(batch, n_features, n_frames)`` from waveforms ``(batch,
    n_samples)`` (waveform augmentation when ``train``, then the front-end) or from cached
    un-normalised features ``(batch, n_features, n_frames)`` (feature-domain augmentation when
    ``train``, then normalisation; see :mod:`biosig.train.cache`)."""
    if x.ndim == 3:
        if train:
            x = augment_features(x, cfg.augment, frames_per_s=frontend.frames_per_s,
                                 kind=frontend.kind, generator=generator)
        return frontend.normalize(x.float())
    if train:
        x = augment_waveforms(x, cfg.augment, fs=frontend.fs, generator=generator)
    return frontend(x)


def compute_loss(model, frontend, waves: torch.Tensor, targets: torch.Tensor, *,
                 cfg: TrainConfig, weights: torch.Tensor | None = None, train: bool = False,
                 amp: bool = False, generator: torch.Generator | None = None) -> LossResult:
    """Front-end, augmentation (when ``train``), model and weighted cross-entropy.

    Parameters
    ----------
    model : nn.Module
        ``(batch, n_features, n_frames)`` -> ``(batch, n_classes)``; an
        :class:`~biosig.models.Ensemble` in training mode gives ``(batch, members,
        n_classes)``, and the loss is the mean of its members' losses.
    frontend : biosig.features.FrontEndTransform
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
    feats = input_features(frontend, waves, cfg=cfg, train=train, generator=generator)
    if train:
        feats = spec_augment(feats, cfg.augment, generator=generator)
        feats, soft = mixup(feats, targets, n_classes=n_classes,
                            alpha=cfg.augment.mixup_alpha, generator=generator)
    else:
        soft = torch.nn.functional.one_hot(targets, n_classes).float()
    with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
        logits = model(feats)                 # (batch, n_classes) or (batch, members, n_classes)
    if logits.ndim == 3 and logits.shape[0] == waves.shape[0] and logits.shape[2] == n_classes:
        # an Ensemble in training mode: each member on its own loss, their mean
        loss = torch.stack([torch.nn.functional.cross_entropy(logits[:, m].float(), soft,
                                                              weight=weights)
                            for m in range(logits.shape[1])]).mean()
        return LossResult(loss, Ensemble.mean_log_probs(logits))
    if logits.shape != (waves.shape[0], n_classes):
        raise RuntimeError(f"model returned {tuple(logits.shape)}, expected "
                           f"({waves.shape[0]}, {n_classes})")
    loss = torch.nn.functional.cross_entropy(logits.float(), soft, weight=weights)
    return LossResult(loss, logits)


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
        feats = input_features(frontend, waves, cfg=cfg)
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
    values = [field_value(e.record, key) for e in examples]
    groups = [f"{v}" if v is not None else f"id:{e.record.id}"
              for v, e in zip(values, examples)]
    return aggregate_by_group(ev.probs, ev.targets, groups, any_class=aggregate_any_index(cfg))


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
    torch.set_num_threads(1)        # workers load and crop; the main process has the cores


def selection_split(ds) -> str:
    """The split the network's best epoch and early stopping are chosen on."""
    return "select" if "select" in ds else "valid"


def _datasets(cfg, examples: list[Example], *, frontend=None, dist: DistInfo | None = None):
    by = {s: [e for e in examples if e.split == s] for s in SPLITS}
    by["train"] = as_fitted(by["train"])      # data.train_label: what the network learns
    if not by["select"]:
        del by["select"]
    lim = cfg.data.limit_per_split
    if lim is not None:
        by = {s: v[:lim] for s, v in by.items()}
    for s in ("train", "valid"):
        if not by[s]:
            raise ConfigError(f"{cfg.data.manifest}: no '{s}' records for this run (check "
                              f"data.splits, data.filter and the manifest's split field)")
    if cfg.data.feature_cache is not None:
        dist = dist or dist_info()
        cache = FeatureCache(cfg.data.feature_cache, frontend=frontend, dcfg=cfg.data)
        # rank 0 fills the cache first; the other ranks then read what it wrote
        def load():
            return {s: cache.load_all(v, desc=f"features ({s})", show=dist.is_main)
                    for s, v in by.items()}
        feats = load() if dist.is_main else {}
        if dist.distributed:
            torch.distributed.barrier()
            if not dist.is_main:
                feats = load()
        n_frames = frontend.n_frames(cfg.frontend.samples(cfg.data.crop_s))
        return {s: FeatureWindowDataset(v, feats[s], n_frames=n_frames, train=(s == "train"),
                                        eval_mode=cfg.data.eval_windows,
                                        max_eval_windows=cfg.data.max_eval_windows)
                for s, v in by.items()}
    common = dict(root=cfg.data.root, frontend=cfg.frontend, crop_s=cfg.data.crop_s,
                  channel=cfg.data.channel, cache=cfg.data.cache)
    return {s: WindowDataset(v, train=(s == "train"), eval_mode=cfg.data.eval_windows,
                             max_eval_windows=cfg.data.max_eval_windows, **common)
            for s, v in by.items()}


class ClassifierTask(Task):
    """The classifier recipes' hooks into :func:`biosig.train.loop.fit`: windows of recordings
    (or cached features) through the front-end and a CRNN/TDNN/LSTM, weighted cross-entropy with
    mixup, validation by the recipe's monitored metric, ``best.pt`` for the best epoch, and a
    test report with bootstrap CIs."""

    mode = "max"
    ddp_kwargs = {"find_unused_parameters": True}

    def __init__(self, cfg: TrainConfig, examples: list[Example] | None = None):
        self.cfg = cfg
        self.examples = examples
        self.monitor = cfg.train.monitor
        self.scheduler_interval = "plateau" if cfg.optim.scheduler == "plateau" else "epoch"
        self.grad_clip_norm = cfg.train.grad_clip_norm
        self.max_steps_per_epoch = cfg.train.max_steps_per_epoch
        self.patience = cfg.train.patience

    def setup(self, ctx: RunContext) -> None:
        cfg = self.cfg
        self.ctx = ctx
        self.device, self.dist = ctx.device, ctx.dist
        self.amp = bool(cfg.train.amp and ctx.device.type == "cuda")
        self.amp_dtype = torch.float16 if self.amp else None
        examples = self.examples
        if examples is None:
            examples, _ = load_examples(cfg.data)
            if cfg.data.splits == "auto":
                examples = assign_example_splits(examples, seed=cfg.data.split_seed,
                                                 valid_frac=cfg.data.valid_frac,
                                                 test_frac=cfg.data.test_frac)
        if cfg.train.select_frac is not None:
            examples = carve_select_split(examples, frac=cfg.train.select_frac,
                                          seed=cfg.data.split_seed)
        if cfg.train.monitor not in metric_names(cfg):
            raise ConfigError(f"train.monitor is {cfg.train.monitor!r}; this config reports "
                              f"{', '.join(metric_names(cfg))}")
        self.frontend = cfg.frontend.transform_module().to(ctx.device)
        self.ds = _datasets(cfg, examples, frontend=self.frontend, dist=ctx.dist)
        n_classes = len(cfg.data.classes)
        train_targets = self.ds["train"].targets
        self.weights, sampler_weights = None, None
        if cfg.data.balance == "sqrt_weights":
            self.weights = class_weights(train_targets, n_classes, power=0.5).to(ctx.device)
        elif cfg.data.balance == "weights" or (cfg.data.balance == "sampler"
                                               and ctx.dist.distributed):
            self.weights = class_weights(train_targets, n_classes).to(ctx.device)
        elif cfg.data.balance == "sampler":
            cw = class_weights(train_targets, n_classes).numpy()
            sampler_weights = torch.as_tensor(cw[np.asarray(train_targets)], dtype=torch.double)
        self.model = build_model(cfg.model, n_features=self.frontend.n_features,
                                 n_classes=n_classes).to(ctx.device)
        self.pretrain_info = None
        if cfg.pretrain.epochs:                   # before the supervised training
            self.pretrain_info = self._pretrain(ctx)
        self.loaders = {"train": _loader(self.ds["train"], cfg=cfg, train=True, dist=ctx.dist,
                                         weights_for_sampler=sampler_weights),
                        "valid": _loader(self.ds[selection_split(self.ds)], cfg=cfg,
                                         train=False, dist=ctx.dist)}

    def _pretrain(self, ctx: RunContext) -> dict:
        """:func:`~biosig.train.pretrain.pretrain_network` on rank 0; the other ranks load
        what it wrote."""
        kw = dict(out=ctx.out, device=ctx.device, show=ctx.show)
        if ctx.dist.is_main:
            info = pretrain_network(self.model, self.ds["train"], self.frontend, self.cfg,
                                    **kw)
        if ctx.dist.distributed:
            torch.distributed.barrier()
            if not ctx.dist.is_main:
                info = pretrain_network(self.model, self.ds["train"], self.frontend, self.cfg,
                                        is_main=False, **kw)
        return info

    def configure_optimizers(self, params):
        cfg = self.cfg
        opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                   "sgd": torch.optim.SGD}
        okw = dict(lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
        if cfg.optim.optimizer == "sgd":
            okw["momentum"] = cfg.optim.momentum
        optimizer = opt_cls[cfg.optim.optimizer](params, **okw)
        if cfg.optim.scheduler == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer,
                                                                   T_max=cfg.train.epochs)
        elif cfg.optim.scheduler == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max",
                                                                   patience=3, factor=0.5)
        else:
            scheduler = None
        return optimizer, scheduler

    def train_batches(self, epoch: int):
        loader = self.loaders["train"]
        if self.dist.distributed:
            loader.sampler.set_epoch(epoch)
        else:  # the order is a function of (seed, epoch), so a resumed run equals a whole one
            loader.sampler.generator.manual_seed(self.cfg.seed * 100_003 + epoch)
        return loader

    def training_step(self, net, batch, *, generator) -> StepOutput:
        waves, targets = batch
        waves = waves.to(self.device, non_blocking=True)
        targets = targets.to(self.device)
        res = compute_loss(net, self.frontend, waves, targets, cfg=self.cfg,
                           weights=self.weights, train=True, amp=self.amp, generator=generator)
        n = int(waves.shape[0])
        return StepOutput(res.loss, n=n, items=n)

    def validate(self, epoch: int) -> tuple[dict, float]:
        ev = evaluate(self.model, self.frontend, self.loaders["valid"], cfg=self.cfg,
                      device=self.device, amp=self.amp)
        vp, vt, _ = scored_items(self.cfg, ev, self.ds[selection_split(self.ds)].examples)
        return compute_metrics(vt, vp, self.cfg), ev.loss

    def on_best(self, epoch: int, metrics: dict, state: dict) -> None:
        save_checkpoint(state, self.ctx.out / "best.pt")

    def checkpoint_extra(self) -> dict:
        return {"config": config_to_dict(self.cfg), "classes": list(self.cfg.data.classes),
                "n_features": self.frontend.n_features}

    def env_extra(self) -> dict:
        n_frames = self.frontend.n_frames(self.cfg.frontend.samples(self.cfg.data.crop_s))
        return {"n_features": self.frontend.n_features, "n_frames": n_frames,
                "splits": {s: len(d) for s, d in self.ds.items()}}

    def finish(self, result: LoopResult) -> dict:
        report = _test_and_report(self.cfg, self.model, self.frontend, self.ds, self.ctx.out,
                                  device=self.device, amp=self.amp, dist=self.dist,
                                  history=result.history, best_epoch=result.best_epoch,
                                  stopped_early=result.stopped_early, train_s=result.train_s)
        from biosig.train.hybrid import finish_stages  # cycle: hybrid builds on this module
        report.update(finish_stages(self.cfg, self.model, self.frontend, self.ds,
                                    self.ctx.out, device=self.device, report=report))
        if self.pretrain_info is not None:
            report["pretrain"] = self.pretrain_info
        return report

    def export_changed(self, report: dict) -> bool:
        from biosig.train.hybrid import same_stage_settings  # cycle: hybrid builds on this
        return not same_stage_settings(report.get("stage_settings"), self.cfg)


def train(cfg: TrainConfig, *, run_dir=None, resume: bool = False,
          examples: list[Example] | None = None, progress: bool = True) -> RunResult:
    """Train, early-stop, checkpoint and test one model; write everything to ``run_dir``.

    Parameters
    ----------
    cfg : TrainConfig
    run_dir : str or PathLike, optional
        The run folder (default: a new ``<output_dir>/<recipe>/<UTC time>``).
    resume : bool
        Continue from ``run_dir/last.pt`` (see :func:`biosig.train.loop.fit`). A run whose
        ``report.json`` exists is returned as it is.
    examples : list of Example, optional
        Records with splits already set (used by :func:`run` for K-fold); default: read from
        the manifest and split as ``data.splits`` says.
    progress : bool
        Show progress: batches with rate and ETA per epoch, a line per epoch (rank 0; see
        :mod:`biosig.progress`).

    Returns
    -------
    RunResult
    """
    out, report, _ = fit(ClassifierTask(cfg, examples), cfg, run_dir=run_dir, resume=resume,
                         progress=progress)
    return RunResult(str(out), report)


def _test_and_report(cfg, model, frontend, ds, out: Path, *, device, amp, dist, history,
                     best_epoch, stopped_early, train_s) -> dict:
    ck = torch.load(out / "best.pt", map_location=device, weights_only=False)
    model.load_state_dict(ck["model"])
    classes = list(cfg.data.classes)
    split = "test" if len(ds["test"]) else "valid"
    loader = _loader(ds[split], cfg=cfg, train=False, dist=dist)
    t_infer = time.perf_counter()
    ev = evaluate(model, frontend, loader, cfg=cfg, device=device, amp=amp,
                  embeddings=hasattr(model, "embed"))
    infer_s = time.perf_counter() - t_infer
    probs, targets, ids = scored_items(cfg, ev, ds[split].examples)
    res = metrics_with_ci(targets, probs, cfg)
    if ev.embeddings is not None:
        res["embedding_eer"] = embedding_eer(ev.embeddings, ev.targets)
    _write_predictions(out / f"{split}_predictions.csv", cfg, ids, probs, targets)
    _finish_validation_and_drift(cfg, model, frontend, ds, out, device=device, amp=amp,
                                 dist=dist, split=split)
    env = json.loads((out / "env.json").read_text())
    report = {"recipe": cfg.recipe, "run_dir": str(out), "evaluated_split": split,
              "n_items": int(len(targets)), "scored_by": cfg.eval.aggregate_by or "record",
              "classes": classes,
              "splits": {s: len(d) for s, d in ds.items()}, "best_epoch": best_epoch,
              "epochs_run": len(history), "stopped_early": stopped_early,
              "monitor": cfg.train.monitor, "selected_on": selection_split(ds),
              "best_valid": next((h["valid"].get(cfg.train.monitor) for h in history
                                  if h["epoch"] == best_epoch), None),
              "train_s": train_s,
              "throughput": {
                  "train_rec_per_s": (float(np.mean([h["train_rec_per_s"] for h in history
                                                     if "train_rec_per_s" in h]))
                                      if any("train_rec_per_s" in h for h in history)
                                      else None),
                  "inference_rec_per_s": len(ds[split]) / max(infer_s, 1e-9),
                  "inference_note": "whole recordings (all their windows), loading and "
                                    "front-end included, batch of "
                                    f"{max(1, cfg.train.batch_size // 4)}"},
              "device": str(device),
              "device_name": env.get("device_name"), "world_size": dist.world_size,
              "amp": amp, "git": env.get("git"), "metrics": res}
    plot_learning_curves(history, out / "learning_curves.png", monitor=cfg.train.monitor)
    plot_roc(targets, probs, classes, out / "roc.png", positive=positive_class(cfg))
    plot_confusion(res["confusion"], classes, out / "confusion_matrix.png")
    return report


def _write_predictions(path: Path, cfg, ids, probs, targets) -> None:
    """``<id>, p_<class>..., label, predicted`` per scored item (CSV, atomically)."""
    classes = list(cfg.data.classes)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([cfg.eval.aggregate_by or "record", *[f"p_{c}" for c in classes], "label",
                "predicted"])
    for name, p, t in zip(ids, probs, targets):
        w.writerow([name, *[f"{x:.6f}" for x in p], classes[int(t)],
                    classes[int(np.argmax(p))]])
    write_text_atomic(path, buf.getvalue())


write_predictions = _write_predictions      # the public name (biosig.train.hybrid writes too)


def _finish_validation_and_drift(cfg, model, frontend, ds, out: Path, *, device, amp, dist,
                                 split: str) -> None:
    """What ``biosig report`` and ``biosig score model`` need besides the test predictions:
    ``valid_predictions.csv`` (the best model on the validation split), ``calibration.json``
    fitted on them (:func:`biosig.train.evaluation.fit_calibration`) and
    ``drift_reference.npz`` (:mod:`biosig.train.drift`)."""
    if split != "valid":
        loader = _loader(ds["valid"], cfg=cfg, train=False, dist=dist)
        ev = evaluate(model, frontend, loader, cfg=cfg, device=device, amp=amp)
        vp, vt, vids = scored_items(cfg, ev, ds["valid"].examples)
        _write_predictions(out / "valid_predictions.csv", cfg, vids, vp, vt)
    else:
        vp, vt, _ = read_predictions(out / "valid_predictions.csv", cfg.data.classes)
    cal = fit_calibration(vt, vp)
    write_text_atomic(out / CALIBRATION_FILE, json.dumps(jsonable(cal), indent=2) + "\n")
    show = bool(dist.is_main)
    desc = {s: describe_examples(ds[s].examples, frontend=frontend, dcfg=cfg.data,
                                 desc=f"drift reference ({s})", show=show)
            for s in ("train", "valid", "test") if len(ds[s])}
    ref = fit_reference(desc["train"], desc["valid"], test=desc.get("test"))
    save_reference(ref, out / REFERENCE_FILE)


def _pooled_cv_report(cfg, reports: list[dict], out: Path) -> dict:
    """Every fold's test predictions together (each item was tested exactly once): metrics with
    bootstrap CIs, ``cv_test_predictions.csv`` and ``confusion_matrix.png`` in ``out``."""
    classes = list(cfg.data.classes)
    rows: list[list[str]] = []
    header: list[str] = []
    for r in reports:
        path = Path(r["run_dir"]) / f"{r['evaluated_split']}_predictions.csv"
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader)
            rows += [row for row in reader if row]
    probs = np.array([[float(v) for v in row[1:1 + len(classes)]] for row in rows])
    targets = np.array([classes.index(row[1 + len(classes)]) for row in rows])
    res = metrics_with_ci(targets, probs, cfg)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    write_text_atomic(out / "cv_test_predictions.csv", buf.getvalue())
    plot_confusion(res["confusion"], classes, out / "confusion_matrix.png")
    valid = [Path(r["run_dir"]) / "valid_predictions.csv" for r in reports]
    if all(p.is_file() for p in valid):        # runs of older releases have none
        vrows: list[list[str]] = []
        for path in valid:
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.reader(f)
                next(reader)
                vrows += [row for row in reader if row]
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(vrows)
        write_text_atomic(out / "cv_valid_predictions.csv", buf.getvalue())
        vp = np.array([[float(v) for v in row[1:1 + len(classes)]] for row in vrows])
        vt = np.array([classes.index(row[1 + len(classes)]) for row in vrows])
        cal = fit_calibration(vt, vp, fitted_on="pooled validation folds")
        write_text_atomic(out / CALIBRATION_FILE, json.dumps(jsonable(cal), indent=2) + "\n")
    return {"n_items": len(rows), "scored_by": cfg.eval.aggregate_by or "record",
            "metrics": res}


def _cv_drift_reference(cfg, examples: list[Example], folds: list[int], out: Path) -> None:
    """The run-level ``drift_reference.npz`` of a K-fold run
    (:func:`biosig.train.drift.crossfit_reference` over its folds)."""
    frontend = cfg.frontend.transform_module()
    desc = describe_examples(examples, frontend=frontend, dcfg=cfg.data,
                             desc="drift reference (all folds)")
    save_reference(crossfit_reference(desc, folds), out / REFERENCE_FILE)


def run(cfg: TrainConfig, *, resume: bool = False, run_id: str | None = None,
        progress: bool = True) -> RunResult:
    """Train as configured: one run, or ``cv.folds`` patient-grouped stratified folds.

    With K folds, fold ``k`` tests on fold ``k``, validates (early stopping, unless
    ``train.select_frac`` carves a ``select`` split from the training folds for it) on fold
    ``k + 1 mod K`` and trains on the rest; ``cv_report.json`` gives the mean and standard
    deviation over folds of every scalar test metric. ``--resume`` skips finished folds.
    """
    dist = dist_info()
    out = run_folder(cfg, run_id=run_id, resume=resume)
    if cfg.cv.folds == 0:
        return train(cfg, run_dir=out, resume=resume and (out / "last.pt").exists(),
                     progress=progress)
    examples, _ = load_examples(cfg.data)
    folds = kfold_assign(examples, folds=cfg.cv.folds, seed=cfg.data.split_seed)
    k_total = cfg.cv.folds
    reports = []
    for k in range(k_total):
        split_of = {k: "test", (k + 1) % k_total: "valid"}
        ex = [replace(e, split=split_of.get(f, "train"))
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
              "metrics": summary, "fold_dirs": [r["run_dir"] for r in reports],
              "pooled": _pooled_cv_report(cfg, reports, out),
              # what to compare configurations by (never the test folds): the monitored
              # validation score at each fold's best epoch, averaged over folds
              "best_valid_mean": (float(np.mean([r["best_valid"] for r in reports]))
                                  if all(r.get("best_valid") is not None for r in reports)
                                  else None),
              "throughput": {k: float(np.mean([r["throughput"][k] for r in reports]))
                             for k in ("train_rec_per_s", "inference_rec_per_s")
                             if all((r.get("throughput") or {}).get(k) for r in reports)},
              "train_s": float(sum(r.get("train_s", 0.0) for r in reports)),
              "wall_s": float(sum(r.get("wall_s", 0.0) for r in reports))}
        from biosig.train.hybrid import pooled_stage_report  # cycle: hybrid builds on this module
        cv.update(pooled_stage_report(cfg, reports, out))
        write_text_atomic(out / "cv_report.json", json.dumps(jsonable(cv), indent=2))
        _cv_drift_reference(cfg, examples, folds, out)
        summary = cv
    return RunResult(str(out), summary)
