"""Self-supervised pre-training of a recipe's network before its supervised training.

``pretrain.epochs: N`` (issue 28's lever "self-supervised pre-training on the development
recordings before the supervised stage"): the network learns, without labels, to tell each
training recording from the others. Two random crops of the same recording, each with the
run's augmentation (:func:`biosig.train.engine.input_features`, SpecAugment), go through the
network's embedding (``embed``: the pooled states its head reads) and a small projection
head; the loss is SimCLR's normalised temperature-scaled cross-entropy (NT-Xent; Chen et al.,
ICML 2020): each crop must pick its twin among the batch's other crops. The projection head
is dropped afterwards and the supervised training starts from the pre-trained weights.

Only the ``train`` split's recordings are used (never valid, select or test), so every
score stays out of sample. The result is ``pretrained.pt`` in the run folder, written
atomically; a resumed or re-finished run loads it instead of pre-training again.
``pretrain.json`` holds the loss per epoch and the time taken.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from biosig.errors import ConfigError
from biosig.fileio import write_text_atomic
from biosig.progress import Progress, format_duration
from biosig.train.data import spec_augment
from biosig.train.runs import save_checkpoint

__all__ = ["PRETRAINED_FILE", "nt_xent", "pretrain_network"]

log = logging.getLogger("biosig.train")

#: the pre-trained weights in a run folder
PRETRAINED_FILE = "pretrained.pt"


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float) -> torch.Tensor:
    """SimCLR's contrastive loss of two views ``(batch, dim)`` of the same ``batch`` items.

    Each of the ``2 * batch`` projections is L2-normalised; item ``i`` of one view must find
    item ``i`` of the other among the ``2 * batch - 1`` others (cosine similarity over
    ``temperature``, cross-entropy). Returns the mean over the ``2 * batch`` anchors; a
    batch of one item has no negatives and raises ``ValueError``.
    """
    if z1.shape != z2.shape or z1.ndim != 2:
        raise ValueError(f"two views of shape (batch, dim) expected, got {tuple(z1.shape)} "
                         f"and {tuple(z2.shape)}")
    n = z1.shape[0]
    if n < 2:
        raise ValueError("NT-Xent needs at least two items per batch (the negatives)")
    z = torch.nn.functional.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / float(temperature)
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    twin = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return torch.nn.functional.cross_entropy(sim, twin)


class _TwoCrops(torch.utils.data.Dataset):
    """Two independent random training crops of each recording of a training dataset."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int):
        return self.ds[i][0], self.ds[i][0]


def _collate_pairs(batch):
    return torch.stack([b[0] for b in batch]), torch.stack([b[1] for b in batch])


def pretrain_network(model, train_ds, frontend, cfg, *, out, device, show: bool = True,
                     is_main: bool = True) -> dict:
    """Pre-train ``model`` in place on ``train_ds`` (see the module docstring), or load
    ``out/pretrained.pt`` where an earlier attempt of the run wrote it.

    Parameters
    ----------
    model : nn.Module
        The recipe's network, with an ``embed`` method.
    train_ds : WindowDataset or FeatureWindowDataset
        The training split in training mode (random crops).
    frontend : biosig.features.FrontEndTransform
    cfg : TrainConfig
        ``pretrain`` (epochs, lr, batch size, temperature, projection size, the views'
        augmentation: ``pretrain.augment``, else ``augment``), ``optim.weight_decay``,
        ``seed``.
    out : path
        The run folder.
    device : torch.device
    show : bool
        Progress per epoch.
    is_main : bool
        Write the files (rank 0).

    Returns
    -------
    dict
        What ``pretrain.json`` holds (read back from ``pretrained.pt`` where an earlier
        attempt wrote it): ``epochs``, ``loss`` per epoch, ``n_recordings``, ``pretrain_s``.
    """
    from biosig.train.engine import input_features  # cycle: engine runs this in setup

    pcfg = cfg.pretrain
    out = Path(out)
    path = out / PRETRAINED_FILE
    if path.is_file():
        ck = torch.load(path, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        info = dict(ck.get("info", {}))
        log.info("%s: pre-trained weights loaded (%s)", out, PRETRAINED_FILE)
        return info
    if not hasattr(model, "embed"):
        raise ConfigError(f"pretrain.epochs is {pcfg.epochs} but model {cfg.model.name!r} has "
                          "no embedding (embed) to pre-train")
    if len(train_ds) < 2:
        raise ConfigError(f"pretrain.epochs is {pcfg.epochs} but the train split has "
                          f"{len(train_ds)} recording(s); contrastive pre-training needs two")
    # at most the whole split; whole batches only (a last batch of one has no negatives)
    batch_size = min(pcfg.batch_size or cfg.train.batch_size, len(train_ds))
    t0 = time.perf_counter()
    was_training = model.training
    model.train()
    with torch.no_grad():
        probe = input_features(frontend, torch.stack([train_ds[0][0]]).to(device), cfg=cfg)
        dim = int(model.embed(probe).shape[-1])
    head = torch.nn.Sequential(torch.nn.Linear(dim, dim), torch.nn.ReLU(),
                               torch.nn.Linear(dim, pcfg.projection_dim)).to(device)
    params = [p for p in model.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=pcfg.lr or cfg.optim.lr,
                            weight_decay=cfg.optim.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=pcfg.epochs)
    views_cfg = cfg if pcfg.augment is None else cfg.replace(augment=pcfg.augment)
    g = torch.Generator().manual_seed(cfg.seed * 7919 + 1)
    loader = torch.utils.data.DataLoader(
        _TwoCrops(train_ds), batch_size=batch_size, shuffle=True, drop_last=True,
        generator=g, collate_fn=_collate_pairs, num_workers=0)
    losses = []
    for epoch in range(1, pcfg.epochs + 1):
        bar = Progress(len(loader), desc=f"pre-training {epoch}/{pcfg.epochs}", unit="batch",
                       enabled=show)
        total, n = 0.0, 0
        for a, b in loader:
            views = []
            for x in (a, b):
                f = input_features(frontend, x.to(device), cfg=views_cfg, train=True,
                                   generator=g)
                views.append(spec_augment(f, views_cfg.augment, generator=g))
            z = head(model.embed(torch.cat(views)))
            loss = nt_xent(z[:len(a)], z[len(a):], temperature=pcfg.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.train.grad_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip_norm)
            opt.step()
            total += float(loss.detach()) * len(a)
            n += len(a)
            bar.update(1)
        bar.close()
        sched.step()
        losses.append(total / max(n, 1))
        if show:
            log.info("pre-training epoch %d/%d: NT-Xent %.4f", epoch, pcfg.epochs, losses[-1])
    model.train(was_training)
    info = {"method": "contrastive (NT-Xent, two random crops per recording)",
            "augment": views_cfg.augment.model_dump(),
            "epochs": pcfg.epochs, "loss": losses, "n_recordings": len(train_ds),
            "batch_size": batch_size, "temperature": pcfg.temperature,
            "pretrain_s": time.perf_counter() - t0}
    if is_main:
        save_checkpoint({"model": model.state_dict(), "info": info}, path)
        write_text_atomic(out / "pretrain.json", json.dumps(info, indent=2) + "\n")
    if show:
        log.info("pre-training done in %s", format_duration(info["pretrain_s"]))
    return info
