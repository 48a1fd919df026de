"""The validation report and its math, on inputs whose answer is known: a calibrated predictor
has an ECE near 0, temperature scaling undoes a known over-confidence, a shifted feature
distribution raises the drift score, subgroup counts match the manifest; then a trained toy
run through ``biosig report`` and ``biosig score model`` (drift columns, ``--calibrate``)."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from toy_corpus import FS, write_toy_corpus

from biosig import metrics as M
from biosig.calibration import (
    apply_isotonic,
    apply_temperature,
    brier_score,
    expected_calibration_error,
    fit_isotonic,
    fit_temperature,
    reliability_bins,
)
from biosig.drift import (
    drift_threshold,
    feature_statistics,
    fit_feature_distribution,
    level_db,
    mahalanobis_distance,
)


def _binary_probs(p_pos):
    p = np.asarray(p_pos, dtype=float)
    return np.stack([1 - p, p], axis=1)


# ------------------------------------------------------------------------- calibration

def test_perfectly_calibrated_predictor_has_ece_near_zero():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 40_000)
    y = (rng.uniform(0, 1, p.size) < p).astype(int)         # y ~ Bernoulli(p): calibrated
    ece = expected_calibration_error(y, _binary_probs(p), n_bins=10)
    assert ece < 0.01                                        # sampling noise ~ sqrt(10/n)
    bins = reliability_bins(y, _binary_probs(p), n_bins=10)
    assert bins.count.sum() == p.size
    np.testing.assert_allclose(bins.observed, bins.mean_predicted, atol=0.02)


def test_overconfident_predictor_has_large_ece_and_temperature_recovers_it():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, 20_000)                             # true logits
    y = (rng.uniform(0, 1, z.size) < 1 / (1 + np.exp(-z))).astype(int)
    over = _binary_probs(1 / (1 + np.exp(-3 * z)))           # logits 3x too large
    assert expected_calibration_error(y, over) > 0.08
    t = fit_temperature(y, over)
    assert t == pytest.approx(3.0, rel=0.06)
    fixed = apply_temperature(over, t)
    assert expected_calibration_error(y, fixed) < 0.015
    assert brier_score(y, fixed) < brier_score(y, over)
    np.testing.assert_array_equal(fixed.argmax(1), over.argmax(1))   # decisions unchanged


def test_isotonic_calibration_reduces_ece_and_keeps_rows_summing_to_one():
    rng = np.random.default_rng(2)
    p = rng.uniform(0, 1, 5000)
    y = (rng.uniform(0, 1, p.size) < p ** 3).astype(int)    # observed = p^3: miscalibrated
    probs = _binary_probs(p)
    maps = fit_isotonic(y, probs)
    fixed = apply_isotonic(probs, maps)
    assert expected_calibration_error(y, fixed) < 0.3 * expected_calibration_error(y, probs)
    np.testing.assert_allclose(fixed.sum(1), 1.0)


def test_brier_known_values_and_multiclass_top_label():
    y = np.array([0, 1, 1, 0])
    assert brier_score(y, _binary_probs([0.5] * 4)) == pytest.approx(0.25)
    assert brier_score(y, _binary_probs([0, 1, 1, 0])) == 0.0
    assert brier_score(y, _binary_probs([0.5] * 4), positive=None) == pytest.approx(0.5)
    p3 = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])
    # top label confidences 0.8, 0.7, 0.4, all right: one bin each -> |1 - c| weighted
    ece = expected_calibration_error([0, 1, 2], p3, n_bins=10, positive=None)
    assert ece == pytest.approx((0.2 + 0.3 + 0.6) / 3)


def test_calibration_errors_name_the_argument():
    with pytest.raises(ValueError, match="probs has shape"):
        expected_calibration_error([0, 1], np.array([0.2, 0.8]))
    with pytest.raises(ValueError, match="temperature is"):
        apply_temperature(_binary_probs([0.5]), 0.0)


# ------------------------------------------------------------------- operating points

def test_predictive_values_by_bayes():
    ppv, npv = M.predictive_values(0.9, 0.9, 0.1)
    assert ppv == pytest.approx(0.5)                         # 0.09 / (0.09 + 0.09)
    assert npv == pytest.approx(0.81 / 0.82)


def test_operating_points_and_threshold_for_sensitivity():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.7, 0.6, 0.65, 0.3, 0.2, 0.1])
    op = M.operating_points(y, s, [0.5, 0.75], prevalence=0.1)
    np.testing.assert_allclose(op.sensitivity, [1.0, 0.5])
    np.testing.assert_allclose(op.specificity, [0.75, 1.0])
    np.testing.assert_allclose(op.ppv, [0.8, 1.0])
    np.testing.assert_allclose(op.npv, [1.0, 4 / 6])
    assert op.prevalence == 0.5
    np.testing.assert_allclose(op.ppv_at, M.predictive_values(op.sensitivity,
                                                              op.specificity, 0.1)[0])
    assert M.threshold_for_sensitivity(y, s, 0.75) == 0.7    # 3 of 4 positives at >= 0.7
    assert M.threshold_for_sensitivity(y, s, 1.0) == 0.6
    assert M.threshold_for_sensitivity(y, s, 0.01) == 0.9
    with pytest.raises(ValueError, match="min_sensitivity is 1.5"):
        M.threshold_for_sensitivity(y, s, 1.5)


def test_subgroup_metrics_counts_and_flag():
    rng = np.random.default_rng(3)
    n = 400
    groups = np.where(np.arange(n) < 200, "good", "bad")
    y = rng.integers(0, 2, n)
    pred = y.copy()
    flip = (groups == "bad") & (rng.uniform(size=n) < 0.5)   # bad: half the labels wrong
    pred[flip] = 1 - pred[flip]

    def acc(t, p):
        return float(np.mean(t == p))

    res = {r.value: r for r in M.subgroup_metrics(acc, groups, y, pred, n_bootstrap=200)}
    assert res["good"].n == 200 and res["bad"].n == 200
    assert res["good"].ci.estimate == 1.0 and not res["good"].below
    assert res["bad"].below and res["bad"].ci.high < acc(y, pred)


# ------------------------------------------------------------------------------- drift

def test_shifted_feature_distribution_raises_the_drift_score():
    rng = np.random.default_rng(4)
    dim = 12
    train = rng.normal(size=(400, dim))
    valid = rng.normal(size=(400, dim))
    dist = fit_feature_distribution(train)
    thr = drift_threshold(mahalanobis_distance(valid, dist), quantile=0.95)
    same = mahalanobis_distance(rng.normal(size=(2000, dim)), dist)
    shifted = mahalanobis_distance(rng.normal(loc=1.5, size=(2000, dim)), dist)
    assert 0.02 < np.mean(same > thr) < 0.09                 # about 5 % flagged
    assert np.mean(shifted > thr) > 0.9
    assert np.median(shifted) > 1.5 * np.median(same)
    # distance grows with the shift
    d = [np.median(mahalanobis_distance(rng.normal(loc=m, size=(500, dim)), dist))
         for m in (0.0, 0.5, 1.0, 2.0)]
    assert d == sorted(d)


def test_feature_statistics_and_level():
    f = np.array([[1.0, 3.0], [2.0, 2.0]])
    np.testing.assert_allclose(feature_statistics(f), [2.0, 2.0, 1.0, 0.0])
    assert level_db(np.full(100, 0.1)) == pytest.approx(-20.0)
    with pytest.raises(ValueError, match="features has shape"):
        feature_statistics(np.zeros(3))


# --------------------------------------------------------------------- a trained toy run



@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """32 two-second recordings of 16 subjects with sex and age in ``meta`` and a location."""
    def tone(s, t, rng):
        f0 = 50.0 if s % 2 == 0 else 200.0
        return 0.5 * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 6)) + 0.2 * rng.normal(
            size=t.size)
    return write_toy_corpus(
        tmp_path_factory.mktemp("toy"), "toy.jsonl", n_subjects=16, signal=tone,
        labels=lambda s: {"tone": "low" if s % 2 == 0 else "high"},
        extra=lambda s, k: {"location": ["AV", "MV"][k],
                            "meta": {"sex": ["F", "M"][(s // 2) % 2], "age": 20 + 3 * s}})


@pytest.fixture(scope="module")
def trained(toy, tmp_path_factory):
    from biosig.train.config import validate_config
    from biosig.train.engine import run
    out = tmp_path_factory.mktemp("runs")
    cfg = validate_config({
        "recipe": "toy", "seed": 0, "device": "cpu", "output_dir": str(out),
        "data": {"manifest": str(toy / "toy.jsonl"), "root": str(toy), "label": "tone",
                 "classes": ["low", "high"], "splits": "auto", "valid_frac": 0.25,
                 "test_frac": 0.25, "crop_s": 1.0},
        "frontend": {"target_fs": float(FS), "kind": "log_mel", "frame_s": 0.064,
                     "hop_s": 0.032, "n_mels": 16,
                     "fmax_hz": 500.0},
        "model": {"name": "crnn", "channels": [4, 8], "pool_time": [2, 2], "gru_hidden": 8},
        "optim": {"lr": 0.01},
        "train": {"epochs": 3, "batch_size": 8, "patience": None, "monitor": "roc_auc"},
        "eval": {"positive_class": "high", "n_bootstrap": 20}})
    return Path(run(cfg, run_id="main", progress=False).run_dir)


def test_run_keeps_validation_predictions_calibration_and_drift_reference(trained):
    from biosig.train.drift import load_reference
    for name in ("valid_predictions.csv", "calibration.json", "drift_reference.npz"):
        assert (trained / name).is_file(), name
    cal = json.loads((trained / "calibration.json").read_text())
    assert cal["method"] == "temperature" and cal["temperature"] > 0
    ref = load_reference(trained / "drift_reference.npz")
    assert ref.dist.mean.size == 2 * 16                      # mean and std of 16 mel bins
    assert len(ref.valid_scores) == 8 and np.all(ref.fs_hz == FS)


def test_report_sections_and_subgroup_counts_match_the_manifest(trained, toy):
    from biosig.cli import main
    from biosig.manifests import read_manifest
    assert main(["report", str(trained), "--prevalence", "0.02", "--min-sensitivity", "0.9",
                 "--no-progress"]) == 0
    md = (trained / "report" / "report.md").read_text()
    for heading in ("## Data", "## Performance", "## Calibration", "## Subgroups",
                    "## Operating points", "## Distance from the training data"):
        assert heading in md
    assert "Missing sections" not in md
    assert "PPV at 0.02" in md and "Se >= 0.9" in md
    for png in ("confusion_matrix.png", "roc.png", "pr.png", "reliability.png", "drift.png"):
        assert (trained / "report" / png).stat().st_size > 1000, png
    with open(trained / "test_predictions.csv") as f:
        test_ids = [r["record"] for r in csv.DictReader(f)]
    recs = {r.id: r for r in read_manifest(toy / "toy.jsonl")}
    for key, get in (("meta.sex", lambda r: r.meta["sex"]), ("location", lambda r: r.location)):
        want = Counter(get(recs[i]) for i in test_ids)
        block = md.split(f"**{key}**", 1)[1].split("\n\n", 2)[1]
        got = {m.group(1): int(m.group(2))
               for m in re.finditer(r"^\| (\w+) \| (\d+) \|", block, flags=re.M)}
        assert got == dict(want), key
    assert "**meta.age**" in md                              # 4 test ages: as they are


def test_subgroup_fields_bin_many_numbers_and_merge_identical_partitions(trained, toy):
    from biosig.fileio import load_yaml
    from biosig.manifests import read_manifest
    from biosig.train.config import validate_config
    from biosig.train.report import subgroup_fields
    cfg = validate_config(load_yaml((trained / "config.yaml").read_text()))
    recs = list(read_manifest(toy / "toy.jsonl"))
    fields = subgroup_fields(cfg, recs, [r.id for r in recs])
    assert set(fields) == {"location", "meta.sex", "meta.age"}   # not the label, not ids
    ages, note = fields["meta.age"]
    assert "quartile bins" in note and len(set(ages)) == 4       # 16 ages in 4 bins
    assert Counter(ages).most_common(1)[0][1] == 8
    assert Counter(fields["meta.sex"][0]) == Counter(r.meta["sex"] for r in recs)


def test_report_of_an_old_run_says_what_is_missing(trained, tmp_path):
    import shutil
    old = tmp_path / "old"
    shutil.copytree(trained, old)
    for name in ("valid_predictions.csv", "calibration.json", "drift_reference.npz"):
        (old / name).unlink()
    shutil.rmtree(old / "report", ignore_errors=True)   # written by another test, or not
    from biosig.train.report import write_report
    res = write_report(old, progress=False)
    assert set(res.missing) == {"calibration fit", "distance from the training data"}
    md = res.markdown.read_text()
    assert "## Missing sections" in md and "optimistic" in md


def test_report_refuses_a_bad_prevalence(trained):
    from biosig.errors import ConfigError
    from biosig.train.report import write_report
    with pytest.raises(ConfigError, match="--prevalence is 1.5"):
        write_report(trained, prevalence=1.5)


def test_score_model_flags_shifted_records_and_calibrates(trained, toy, tmp_path):
    from biosig.cli import main
    src = tmp_path / "in"
    src.mkdir()
    for p in sorted(toy.glob("s0[0-3]_0.wav")):
        (src / p.name).write_bytes(p.read_bytes())
    rng = np.random.default_rng(9)
    for k in range(4):                         # another device: loud broadband noise, chirps
        t = np.arange(2 * FS) / FS
        x = 0.9 * np.sin(2 * np.pi * (20 + 200 * t) * t) + 0.8 * rng.normal(size=t.size)
        sf.write(src / f"z_shift{k}.wav", np.clip(x, -1, 1).astype(np.float32), FS)
    out = tmp_path / "scored"
    assert main(["score", "model", str(trained), str(src), "--out", str(out), "--device",
                 "cpu", "--calibrate", "--no-progress"]) == 0
    with open(out / "predictions.csv") as f:
        rows = {r["record"]: r for r in csv.DictReader(f)}
    score = {k: float(r["ood_score"]) for k, r in rows.items()}
    same = [v for k, v in score.items() if not k.startswith("z_")]
    shifted = [v for k, v in score.items() if k.startswith("z_")]
    assert min(shifted) > max(same)
    assert all(rows[k]["ood_flag"] == "1" for k in rows if k.startswith("z_"))
    assert (out / "drift.md").is_file() and (out / "drift.png").is_file()
    assert f"**{sum(r['ood_flag'] == '1' for r in rows.values())} flagged" in \
        (out / "drift.md").read_text()
    cal = json.loads((trained / "calibration.json").read_text())
    p = np.array([[float(r["p_low"]), float(r["p_high"])] for r in rows.values()])
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    # calibrated = the temperature applied to the uncalibrated probabilities
    out2 = tmp_path / "raw"
    assert main(["score", "model", str(trained), str(src), "--out", str(out2), "--device",
                 "cpu", "--no-drift", "--no-progress"]) == 0
    with open(out2 / "predictions.csv") as f:
        raw = {r["record"]: r for r in csv.DictReader(f)}
    assert set(next(iter(raw.values()))) == {"record", "p_low", "p_high", "label"}
    q = np.array([[float(raw[k]["p_low"]), float(raw[k]["p_high"])] for k in rows])
    np.testing.assert_allclose(apply_temperature(q, cal["temperature"]), p, atol=2e-5)


def test_kfold_run_reports_pooled_out_of_fold_predictions(toy, tmp_path):
    from biosig.train.config import validate_config
    from biosig.train.drift import load_reference
    from biosig.train.engine import run
    from biosig.train.report import write_report
    cfg = validate_config({
        "recipe": "toy", "seed": 0, "device": "cpu", "output_dir": str(tmp_path),
        "data": {"manifest": str(toy / "toy.jsonl"), "root": str(toy), "label": "tone",
                 "classes": ["low", "high"], "crop_s": 1.0},
        "frontend": {"target_fs": float(FS), "kind": "log_mel", "frame_s": 0.064,
                     "hop_s": 0.032, "n_mels": 16,
                     "fmax_hz": 500.0},
        "model": {"name": "crnn", "channels": [4, 8], "pool_time": [2, 2], "gru_hidden": 8},
        "train": {"epochs": 1, "batch_size": 8, "patience": None, "monitor": "roc_auc"},
        "eval": {"positive_class": "high", "n_bootstrap": 10}, "cv": {"folds": 3}})
    d = Path(run(cfg, run_id="cv", progress=False).run_dir)
    for name in ("cv_valid_predictions.csv", "calibration.json", "drift_reference.npz"):
        assert (d / name).is_file(), name
    ref = load_reference(d / "drift_reference.npz")
    assert len(ref.valid_scores) == 32 and ref.how.startswith("cross-fitted")
    res = write_report(d, progress=False)
    md = res.markdown.read_text()
    assert "pooled out-of-fold predictions of 3 folds" in md and "32 items" in md
    assert not res.missing and "| fold 0 |" in md
