"""Self-supervised pre-training (``pretrain.epochs``): the contrastive loss, and a run that
pre-trains, records it, starts its supervised training from it and does not redo it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_train_engine import toy, toy_config  # noqa: F401  (fixture + helper)

from biosig.errors import ConfigError
from biosig.train.config import validate_config
from biosig.train.engine import run
from biosig.train.pretrain import PRETRAINED_FILE, nt_xent


def test_nt_xent_known_answers():
    eye = torch.eye(4)
    # twins identical and every item orthogonal to the others: each anchor sees its twin at
    # cosine 1 and the six others at cosine 0
    t = 0.5
    want = -torch.log(torch.exp(torch.tensor(1 / t)) / (torch.exp(torch.tensor(1 / t)) + 6))
    assert nt_xent(eye, eye, temperature=t).item() == pytest.approx(want.item(), rel=1e-6)
    # the loss prefers twins that agree: swapping the second view's items raises it
    swapped = eye[[1, 0, 3, 2]]
    assert nt_xent(eye, swapped, temperature=t) > nt_xent(eye, eye, temperature=t) + 1.0
    # scale does not matter (cosine similarity)
    assert nt_xent(3 * eye, eye, temperature=t).item() == pytest.approx(want.item(), rel=1e-6)
    with pytest.raises(ValueError, match="at least two items"):
        nt_xent(eye[:1], eye[:1], temperature=t)
    with pytest.raises(ValueError, match="two views of shape"):
        nt_xent(eye, eye[:3], temperature=t)


def test_pretrained_run_records_it_starts_from_it_and_does_not_redo_it(toy, tmp_path):  # noqa: F811
    over = {"train.epochs": 1, "pretrain": {"epochs": 4, "batch_size": 4, "lr": 0.01,
                                            "augment": {"time_masks": 2, "gain_db": 0.0}}}
    cfg = validate_config(toy_config(toy, tmp_path, **over))
    r = run(cfg, run_id="ssl", progress=False)
    rd = Path(r.run_dir)
    info = json.loads((rd / "pretrain.json").read_text())
    assert info["epochs"] == 4 and len(info["loss"]) == 4
    assert info["augment"]["time_masks"] == 2 and info["augment"]["gain_db"] == 0.0
    assert info["n_recordings"] == r.report["splits"]["train"]
    assert info["loss"][-1] < info["loss"][0]           # it learned to pair the crops
    assert r.report["pretrain"]["loss"] == info["loss"]
    pre = torch.load(rd / PRETRAINED_FILE, weights_only=False)["model"]
    # the supervised run started from the pre-trained weights, not from a fresh init: one
    # supervised epoch moves them only a little, a fresh network is elsewhere
    best = torch.load(rd / "best.pt", weights_only=False)["model"]
    plain = run(validate_config(toy_config(toy, tmp_path, **{"train.epochs": 1})),
                run_id="plain", progress=False)
    fresh = torch.load(Path(plain.run_dir) / "best.pt", weights_only=False)["model"]
    key = next(k for k in pre if k.endswith("weight") and pre[k].ndim >= 2)

    def dist(a, b):
        return float((a[key].float() - b[key].float()).norm())

    assert dist(best, pre) < dist(fresh, pre)
    # finishing again (a changed export setting) loads pretrained.pt instead of pre-training
    stamp = (rd / PRETRAINED_FILE).stat().st_mtime_ns
    again = validate_config(toy_config(toy, tmp_path, **over, **{"eval.decision": "tuned"}))
    r2 = run(again, run_id="ssl", resume=True, progress=False)
    assert r2.report["stage_settings"]["decision"] == "tuned"      # it did finish again
    assert (rd / PRETRAINED_FILE).stat().st_mtime_ns == stamp
    assert r2.report["pretrain"]["loss"] == info["loss"]


def test_pretrain_settings_are_checked(toy, tmp_path):  # noqa: F811
    with pytest.raises(ConfigError, match="pretrain.batch_size"):
        validate_config(toy_config(toy, tmp_path, **{"pretrain": {"epochs": 2,
                                                                  "batch_size": 1}}))
    with pytest.raises(ConfigError, match="pretrain.augment.noise_prob is 0.5"):
        validate_config(toy_config(toy, tmp_path, **{
            "data.feature_cache": str(tmp_path / "cache"),
            "pretrain": {"epochs": 2, "augment": {"noise_prob": 0.5}}}))
    with pytest.raises(ConfigError, match="pretrain.epochs"):
        validate_config(toy_config(toy, tmp_path, **{"pretrain": {"epochs": -1}}))
