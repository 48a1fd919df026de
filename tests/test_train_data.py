"""Datasets, windows, worker safety, patient aggregation, seeds and monitor validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_engine import toy, toy_config  # noqa: F401  (fixture + helper)
from toy_corpus import write_toy_corpus

from biosig.errors import ConfigError
from biosig.train.config import validate_config
from biosig.train.data import (
    WindowDataset,
    collate_eval,
    eval_windows,
    fitted_targets,
    load_examples,
)
from biosig.train.engine import run
from biosig.train.evaluation import aggregate_by_group, metric_names


def test_eval_windows_cover_and_cap():
    x = np.arange(10, dtype=np.float32)
    w = eval_windows(x, 4, mode="all", max_windows=8)
    np.testing.assert_array_equal(w, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 0]])
    np.testing.assert_array_equal(eval_windows(x, 4, mode="center", max_windows=8), [[3, 4, 5, 6]])
    assert eval_windows(x, 2, mode="all", max_windows=3).shape == (3, 2)
    np.testing.assert_array_equal(eval_windows(x[:3], 4, mode="all", max_windows=8), [[0, 1, 2, 0]])


def test_aggregate_by_group_known_answer():
    probs = np.array([[0.8, 0.2], [0.4, 0.6], [0.1, 0.9]])
    p, t, names = aggregate_by_group(probs, [0, 0, 1], ["a", "b", "a"])
    np.testing.assert_allclose(p, [[0.45, 0.55], [0.4, 0.6]])
    assert t.tolist() == [0, 0] and names == ["a", "b"]


def test_aggregate_any_known_answer():
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.3, 0.6], [0.2, 0.2, 0.6]])
    p, _, names = aggregate_by_group(probs, [0, 0, 2], ["a", "a", "b"], any_class=0)
    # a: Present is the larger 0.8; Unknown and Absent share 0.2 as their means 0.2 : 0.35
    np.testing.assert_allclose(p[0], [0.8, 0.2 * 0.2 / 0.55, 0.2 * 0.35 / 0.55])
    np.testing.assert_allclose(p[1], [0.2, 0.2, 0.6])     # one item: itself
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert names == ["a", "b"]
    mean, _, _ = aggregate_by_group(probs, [0, 0, 2], ["a", "a", "b"])
    np.testing.assert_allclose(mean[0], [0.45, 0.2, 0.35])


def test_aggregate_any_must_name_a_class_and_a_grouping(toy, tmp_path):  # noqa: F811
    with pytest.raises(ConfigError, match="eval.aggregate_any is 'loud', expected one of"):
        validate_config(toy_config(toy, tmp_path, **{"eval.aggregate_by": "subject",
                                                      "eval.aggregate_any": "loud"}))
    with pytest.raises(ConfigError, match="eval.aggregate_by is not set"):
        validate_config(toy_config(toy, tmp_path, **{"eval.aggregate_any": "high"}))


def test_train_label_is_what_the_network_learns_and_label_what_is_scored(tmp_path):
    """``data.train_label``: the training split is fitted on that key, every other split is
    scored on ``data.label``. Trained on the opposite of the tone, the network calls the
    tone's test recordings wrong; a record without the training key is left out."""
    def tone(s, t, rng):
        f0 = 50.0 if s < 6 else 200.0
        return 0.5 * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 6)) + 0.2 * rng.normal(
            size=t.size)

    def labels(s):
        lab = {"tone": "low" if s < 6 else "high", "opposite": "high" if s < 6 else "low"}
        if s == 11:
            del lab["opposite"]
        return lab

    (tmp_path / "c").mkdir()
    root = write_toy_corpus(tmp_path / "c", "toy.jsonl", n_subjects=12, signal=tone,
                            labels=labels)
    over = {"train.epochs": 6, "augment.freq_masks": 0, "augment.time_masks": 0}
    cfg = validate_config(toy_config(root, tmp_path / "runs", **over,
                                     **{"data.train_label": "opposite"}))
    examples, counts = load_examples(cfg.data)
    assert counts["without_class"] == 2 and counts["kept"] == 22      # subject 11's two
    assert all(e.fit_target == 1 - e.target for e in examples)
    assert fitted_targets(examples) == [1 - e.target for e in examples]
    flipped = run(cfg, run_id="opposite", progress=False).report["metrics"]["accuracy"]
    plain = run(validate_config(toy_config(root, tmp_path / "runs", **over)), run_id="plain",
                progress=False).report["metrics"]["accuracy"]
    assert plain >= 0.8 and flipped <= 0.2


def test_dataset_is_worker_safe(toy, tmp_path):  # noqa: F811
    cfg = validate_config(toy_config(toy, tmp_path))
    examples, counts = load_examples(cfg.data)
    assert counts == {"read": 24, "filtered_out": 0, "without_class": 0, "kept": 24}
    ds = WindowDataset(examples[:6], root=cfg.data.root, frontend=cfg.frontend, crop_s=1.5,
                       train=False, cache=False)
    one = [b for b in torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_eval)]
    two = [b for b in torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_eval,
                                                  num_workers=2)]
    for (w1, o1, t1), (w2, o2, t2) in zip(one, two):
        torch.testing.assert_close(w1, w2)
        assert torch.equal(o1, o2) and torch.equal(t1, t2)
    assert one[0][0].shape == (4, 1500)          # 2 s -> two 1.5 s windows (last padded)


def test_filter_and_label_map(toy, tmp_path):  # noqa: F811
    d = toy_config(toy, tmp_path)
    d["data"]["filter"] = {"subject": "p0"}
    d["data"]["label_map"] = {"low": "LOW"}
    d["data"]["classes"] = ["LOW", "high"]
    d["eval"]["positive_class"] = "high"
    examples, counts = load_examples(validate_config(d).data)
    assert counts["kept"] == 2 and counts["filtered_out"] == 22
    assert {e.target for e in examples} == {0}
    d["data"]["filter"] = {"source": "nowhere"}
    with pytest.raises(ConfigError, match="no record left with label 'tone'"):
        load_examples(validate_config(d).data)


def test_monitor_must_be_a_reported_metric(toy, tmp_path):  # noqa: F811
    cfg = validate_config(toy_config(toy, tmp_path, **{"train.monitor": "icbhi_score"}))
    assert "icbhi_score" not in metric_names(cfg) and "roc_auc" in metric_names(cfg)
    with pytest.raises(ConfigError, match="train.monitor is 'icbhi_score'; this config reports"):
        run(cfg, progress=False)


def test_same_seed_same_run(toy, tmp_path):  # noqa: F811
    losses = []
    for k in range(2):
        cfg = validate_config(toy_config(toy, tmp_path / str(k), **{"train.epochs": 1}))
        r = run(cfg, run_id="a", progress=False)
        row = json.loads((Path(r.run_dir) / "metrics.jsonl").read_text().splitlines()[0])
        losses.append((row["train_loss"], row["valid_loss"]))
    assert losses[0] == losses[1]
