"""The training engine on a synthetic, learnable corpus (50 Hz vs 200 Hz tones in noise):
run folder contents, learning, resume, early stopping, K-fold CV, scoring and Grad-CAM."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from toy_corpus import FS, write_toy_corpus

from biosig.cli import main
from biosig.features import FrontEnd
from biosig.train.config import AugmentConfig, validate_config
from biosig.train.data import (
    Example,
    augment_waveforms,
    kfold_assign,
    mixup,
    spec_augment,
)
from biosig.train.engine import run


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """24 two-second recordings of 12 subjects; subjects 0-5 'low' (50 Hz), 6-11 'high'."""
    def tone(s, t, rng):
        f0 = 50.0 if s < 6 else 200.0
        return 0.5 * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 6)) + 0.2 * rng.normal(
            size=t.size)
    return write_toy_corpus(tmp_path_factory.mktemp("toy"), "toy.jsonl", n_subjects=12,
                            signal=tone, labels=lambda s: {"tone": "low" if s < 6 else "high"})


def toy_config(root: Path, out: Path, **over) -> dict:
    cfg = {
        "recipe": "toy", "seed": 0, "device": "cpu", "output_dir": str(out),
        "data": {"manifest": str(root / "toy.jsonl"), "root": str(root), "label": "tone",
                 "classes": ["low", "high"], "splits": "auto", "valid_frac": 0.25,
                 "test_frac": 0.25, "crop_s": 1.0},
        "frontend": {"target_fs": float(FS), "kind": "log_mel", "frame_s": 0.064,
                     "hop_s": 0.032, "n_mels": 16,
                     "fmax_hz": 500.0},
        "model": {"name": "crnn", "channels": [4, 8], "pool_time": [2, 2], "gru_hidden": 8},
        "optim": {"lr": 0.01},
        "train": {"epochs": 4, "batch_size": 8, "patience": None, "monitor": "accuracy"},
        "augment": {"gain_db": 3.0, "freq_masks": 1, "time_masks": 1, "time_shift_s": 0.1},
        "eval": {"positive_class": "high", "n_bootstrap": 10},
    }
    for k, v in over.items():
        node = cfg
        *head, last = k.split(".")
        for h in head:
            node = node[h]
        node[last] = v
    return cfg


@pytest.fixture(scope="module")
def trained(toy, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    cfg = validate_config(toy_config(toy, out))
    return run(cfg, run_id="main", progress=False)


def test_run_folder_contents_and_learning(trained):
    d = Path(trained.run_dir)
    for name in ("config.yaml", "env.json", "metrics.jsonl", "best.pt", "last.pt",
                 "report.json", "test_predictions.csv", "learning_curves.png", "roc.png",
                 "confusion_matrix.png"):
        assert (d / name).is_file(), name
    env = json.loads((d / "env.json").read_text())
    assert env["biosig_version"] and "git" in env and env["world_size"] == 1
    lines = (d / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]
    saved = yaml.safe_load((d / "config.yaml").read_text())
    assert validate_config(saved).train.epochs == 4
    rep = json.loads((d / "report.json").read_text())
    m = rep["metrics"]
    assert rep["evaluated_split"] == "test" and rep["n_items"] == 6
    assert m["accuracy"] >= 0.8 and m["roc_auc"] >= 0.8       # tones are easy
    assert m["ci"]["accuracy"]["low"] <= m["accuracy"] <= m["ci"]["accuracy"]["high"]
    assert set(m["per_class"]) == {"low", "high"}


def test_splits_are_patient_wise(trained):
    d = Path(trained.run_dir)
    with open(d / "test_predictions.csv") as f:
        test_subjects = {r["record"][:3] for r in csv.DictReader(f)}
    assert len(test_subjects) == 3                  # 6 records = 3 whole subjects


def test_resume_continues_from_last_checkpoint(toy, tmp_path):
    cfg2 = validate_config(toy_config(toy, tmp_path, **{"train.epochs": 2}))
    r = run(cfg2, run_id="r", progress=False)
    d = Path(r.run_dir)
    (d / "report.json").unlink()                    # as if killed before the test phase
    cfg3 = validate_config(toy_config(toy, tmp_path, **{"train.epochs": 3}))
    r3 = run(cfg3, run_id="r", resume=True, progress=False)
    epochs = [json.loads(x)["epoch"] for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3]
    assert torch.load(d / "last.pt", weights_only=False)["epoch"] == 3
    assert r3.report["epochs_run"] == 3
    with pytest.raises(Exception, match="already holds a run"):
        run(cfg3, run_id="r", progress=False)


def test_resumed_run_equals_uninterrupted_run(toy, tmp_path, monkeypatch):
    """Killed after epoch 2 and resumed, a run ends with the same weights and losses as one
    that was never interrupted (batch order, augmentation and RNG states are restored)."""
    from biosig.train.engine import ClassifierTask
    cfg = validate_config(toy_config(toy, tmp_path, **{"train.epochs": 3}))
    whole = Path(run(cfg, run_id="whole", progress=False).run_dir)
    real_batches, real_step = ClassifierTask.train_batches, ClassifierTask.training_step
    epochs_seen = []

    def batches(self, epoch):
        epochs_seen.append(epoch)
        return real_batches(self, epoch)

    def dies_in_epoch_3(self, net, batch, **kw):
        if epochs_seen[-1] == 3:
            raise KeyboardInterrupt
        return real_step(self, net, batch, **kw)
    monkeypatch.setattr(ClassifierTask, "train_batches", batches)
    monkeypatch.setattr(ClassifierTask, "training_step", dies_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, run_id="cut", progress=False)
    assert epochs_seen == [1, 2, 3]
    monkeypatch.setattr(ClassifierTask, "train_batches", real_batches)
    monkeypatch.setattr(ClassifierTask, "training_step", real_step)
    cut = Path(run(cfg, run_id="cut", resume=True, progress=False).run_dir)

    def losses(d):
        return [json.loads(x)["train_loss"] for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert losses(cut) == losses(whole) and len(losses(cut)) == 3
    a = torch.load(whole / "last.pt", weights_only=False)["model"]
    b = torch.load(cut / "last.pt", weights_only=False)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_early_stopping(toy, tmp_path):
    cfg = validate_config(toy_config(toy, tmp_path, **{"optim.lr": 1e-12, "train.patience": 1,
                                                       "train.epochs": 5,
                                                       "optim.scheduler": "none"}))
    rep = run(cfg, progress=False).report
    assert rep["stopped_early"] and rep["epochs_run"] == 2 and rep["best_epoch"] == 1


def test_cross_validation_reports_mean_and_spread(toy, tmp_path):
    cfg = validate_config(toy_config(toy, tmp_path, **{"cv": {"folds": 3},
                                                       "train.epochs": 1}))
    res = run(cfg, progress=False)
    d = Path(res.run_dir)
    cv = json.loads((d / "cv_report.json").read_text())
    assert cv["folds"] == 3 and len(cv["fold_dirs"]) == 3
    acc = cv["metrics"]["accuracy"]
    assert len(acc["per_fold"]) == 3 and acc["mean"] == pytest.approx(np.mean(acc["per_fold"]))
    assert acc["std"] is not None
    for k in range(3):
        assert (d / f"fold-{k}" / "report.json").is_file()


def test_kfold_assign_grouped_and_stratified():
    recs = [Example(record=None, target=int(s >= 6), split=None, group=f"p{s}")
            for s in range(12) for _ in range(2)]
    folds = kfold_assign(recs, folds=3, seed=0)
    by_group = {}
    for e, f in zip(recs, folds):
        assert by_group.setdefault(e.group, f) == f          # a patient in one fold only
    for k in range(3):
        targets = [e.target for e, f in zip(recs, folds) if f == k]
        assert targets.count(0) == targets.count(1) == 4       # 2 subjects x 2 per class


@pytest.mark.parametrize("kind, n_features", [("log_mel", 16), ("mfcc", 10),
                                              ("log_spectrogram", 33), ("kaldi_fbank", 16),
                                              ("frames", 64)])
def test_frontend_kinds(kind, n_features):
    spec = FrontEnd(kind=kind, frame_s=0.064, hop_s=0.032, n_mels=16, n_mfcc=10, fmax_hz=500.0)
    fe = spec.transform_module(1000.0)
    f = fe(torch.randn(3, 1000))
    assert fe.n_features == n_features and f.shape[:2] == (3, n_features)
    assert f.shape[2] == fe.n_frames(1000)
    torch.testing.assert_close(f.mean(dim=(1, 2)), torch.zeros(3), atol=1e-4, rtol=0)


def test_augmentations():
    x = torch.randn(4, 500)
    off = AugmentConfig()
    torch.testing.assert_close(augment_waveforms(x, off, fs=100.0), x)
    g = augment_waveforms(x, AugmentConfig(gain_db=6.0), fs=100.0)
    ratio = (g.norm(dim=1) / x.norm(dim=1))
    assert ((ratio >= 10 ** (-6 / 20) - 1e-5) & (ratio <= 10 ** (6 / 20) + 1e-5)).all()
    s = augment_waveforms(x, AugmentConfig(time_shift_s=1.0), fs=100.0)
    torch.testing.assert_close(torch.sort(s, dim=1).values, torch.sort(x, dim=1).values)
    n = augment_waveforms(x, AugmentConfig(noise_prob=1.0, noise_snr_db=[0.0, 0.0]), fs=100.0)
    snr = x.pow(2).mean(1) / (n - x).pow(2).mean(1)
    assert ((snr > 0.6) & (snr < 1.6)).all()
    feats = torch.randn(2, 20, 50)
    m = spec_augment(feats, AugmentConfig(freq_masks=1, freq_mask_width=20, time_masks=0),
                     generator=torch.Generator().manual_seed(1))
    assert m.shape == feats.shape and not torch.equal(m, feats)
    mixed, soft = mixup(feats, torch.tensor([0, 1]), n_classes=2, alpha=0.4)
    torch.testing.assert_close(soft.sum(1), torch.ones(2))


def test_score_model_cli_resumes_and_reports_errors(trained, toy, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for p in sorted(toy.glob("s0[05]_*.wav")):
        (src / p.name).write_bytes(p.read_bytes())
    (src / "broken.wav").write_bytes(b"not audio")
    out = tmp_path / "scored"
    rc = main(["score", "model", trained.run_dir, str(src), "--out", str(out),
               "--device", "cpu", "--no-progress"])
    assert rc == 0
    with open(out / "predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["record"] for r in rows] == ["s00_0", "s00_1", "s05_0", "s05_1"]
    assert set(rows[0]) == {"record", "p_low", "p_high", "label", "ood_score", "ood_flag",
                            "fs_hz", "duration_s", "level_db"}      # the drift check
    assert all(abs(float(r["p_low"]) + float(r["p_high"]) - 1) < 1e-4 for r in rows)
    errors = (out / "errors.csv").read_text().splitlines()
    assert len(errors) == 2 and errors[1].startswith("broken,")
    mtime = (out / "predictions.csv").stat().st_mtime_ns
    assert main(["score", "model", trained.run_dir, str(src), "--out", str(out),
                 "--device", "cpu", "--no-progress"]) == 0
    assert (out / "predictions.csv").stat().st_mtime_ns == mtime    # nothing redone
    assert not (out / "answers.txt").exists()                  # not a CinC 2017 run


def test_explain_writes_png(trained, toy, tmp_path, capsys):
    png = tmp_path / "cam.png"
    assert main(["explain", trained.run_dir, str(toy / "s00_0.wav"), "--out", str(png),
                 "--device", "cpu"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "grad-cam" in capsys.readouterr().out
    assert main(["explain", trained.run_dir, str(toy / "s00_0.wav"), "--target", "mid"]) == 2


def test_run_folder_records_the_frontend_and_scoring_rebuilds_it(trained, toy, tmp_path):
    """config.yaml holds the whole resolved front-end; load_run (behind `biosig score model`)
    builds the transform and prepares recordings from it, and reads run folders written
    before the front-end was one object as they ran."""
    import shutil

    from biosig.train.inference import load_run, load_waveform, predict_waveform
    d = Path(trained.run_dir)
    cfg = validate_config(toy_config(toy, tmp_path))
    saved = yaml.safe_load((d / "config.yaml").read_text())["frontend"]
    assert saved == cfg.frontend.model_dump(mode="json")
    assert (saved["preset"], saved["target_fs"], saved["frame_s"], saved["n_fft"],
            saved["band_hz"]) == ("custom", float(FS), 0.064, "pow2", None)
    loaded = load_run(d, device="cpu")
    assert loaded.frontend.spec == cfg.frontend
    assert (loaded.frontend.win, loaded.frontend.n_fft, loaded.frontend.hop) == (64, 64, 32)
    wav = toy / "s00_0.wav"
    x = load_waveform(loaded, wav)
    p = predict_waveform(loaded, x)

    def copy_with(name, edit):
        out = tmp_path / name
        shutil.copytree(d, out)
        data = yaml.safe_load((out / "config.yaml").read_text())
        edit(data)
        (out / "config.yaml").write_text(yaml.safe_dump(data))
        return load_run(out, device="cpu")

    # scoring follows the run's front-end: a band-pass written there is applied
    filtered = copy_with("banded", lambda c: c["frontend"].update(band_hz=[100.0, 400.0]))
    assert filtered.frontend.spec.band_hz == (100.0, 400.0)
    xf = load_waveform(filtered, wav)
    assert xf.shape == x.shape and not np.allclose(xf, x, atol=1e-3)

    # a run folder of before issue 30 (features, data.target_fs, data.window_s)
    def to_old(c):
        fe = c.pop("frontend")
        c["data"]["target_fs"] = fe.pop("target_fs")
        c["data"]["window_s"] = c["data"].pop("crop_s")
        fe["window_s"] = fe.pop("frame_s")
        for k in ("preset", "band_hz", "filter_order", "powerline_hz", "n_fft"):
            fe.pop(k)
        c["features"] = fe
    old = copy_with("old", to_old)
    assert old.frontend.spec.replace(preset="custom") == cfg.frontend
    np.testing.assert_array_equal(load_waveform(old, wav), x)
    np.testing.assert_array_equal(predict_waveform(old, x), p)
    assert main(["report", str(tmp_path / "old"), "--no-progress"]) == 0     # reports too
