"""The hybrid stage (network outputs + hand-crafted features into a second classifier) and the
decision rule tuned on validation (:mod:`biosig.train.hybrid`), on problems with known answers:
a corpus whose classes differ only in level, which a per-recording normalised network cannot
see and the presets' log-mel statistics can; a probability table whose best weighted-accuracy
rule is known."""

from __future__ import annotations

import base64
import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from toy_corpus import FS, write_toy_corpus

from biosig.errors import ConfigError
from biosig.train.config import HybridCandidate, validate_config
from biosig.train.engine import run
from biosig.train.evaluation import apply_calibration
from biosig.train.hybrid import (
    apply_decision,
    assemble_inputs,
    fit_candidates,
    fit_decision,
    load_stage,
    make_classifier,
    rule_weights,
    stage_predict,
)
from biosig.train.inference import score_model


@pytest.fixture(scope="module")
def levels(tmp_path_factory):
    """40 two-second recordings of 20 subjects: the same tone in noise, 'loud' 20 dB above
    'quiet'. Instance normalisation removes the level from the network's input."""
    def tone(s, t, rng):
        gain = 0.05 if s % 2 else 0.5
        return gain * (np.sin(2 * np.pi * 80 * t + rng.uniform(0, 6))
                       + 0.5 * rng.normal(size=t.size))
    return write_toy_corpus(tmp_path_factory.mktemp("levels"), "levels.jsonl", n_subjects=20,
                            signal=tone,
                            labels=lambda s: {"level": "quiet" if s % 2 else "loud"})


def level_config(root: Path, out: Path, **over) -> dict:
    cfg = {
        "recipe": "levels", "seed": 0, "device": "cpu", "output_dir": str(out),
        "data": {"manifest": str(root / "levels.jsonl"), "root": str(root), "label": "level",
                 "classes": ["quiet", "loud"], "splits": "auto", "valid_frac": 0.25,
                 "test_frac": 0.25, "crop_s": 1.0},
        "frontend": {"target_fs": float(FS), "kind": "log_mel", "frame_s": 0.064,
                     "hop_s": 0.032, "n_mels": 16,
                     "fmax_hz": 500.0, "normalize": "instance"},
        "model": {"name": "crnn", "channels": [4, 8], "pool_time": [2, 2], "gru_hidden": 8},
        "optim": {"lr": 0.01},
        "train": {"epochs": 2, "batch_size": 8, "patience": None, "monitor": "accuracy"},
        "augment": {"gain_db": 0.0},
        "eval": {"positive_class": "loud", "n_bootstrap": 10},
        "hybrid": {"enabled": True,
                   "features": [{"preset": "pcg", "overrides": {"n_mels": 8},
                                 "keep": ["log_mel_mean"]}],
                   "candidates": [{"inputs": ["probs", "features"], "classifier": "logistic"},
                                  {"inputs": ["embedding"], "classifier": "histgb"}],
                   "max_iter": 50},
    }
    for k, v in over.items():
        node = cfg
        *head, last = k.split(".")
        for h in head:
            node = node.setdefault(h, {})
        node[last] = v
    return cfg


@pytest.fixture(scope="module")
def hybrid_run(levels, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return run(validate_config(level_config(levels, out)), run_id="h", progress=False)


def _rows(path) -> dict:
    with open(path, newline="") as f:
        return {r[next(iter(r))]: r for r in csv.DictReader(f)}


def test_hybrid_sees_what_the_network_cannot(hybrid_run):
    rep = hybrid_run.report
    # the network sees instance-normalised spectra: level is invisible to it
    assert rep["metrics"]["accuracy"] <= 0.8
    h = rep["hybrid"]
    assert h["metrics"]["accuracy"] == 1.0
    assert h["metrics"]["accuracy"] > rep["metrics"]["accuracy"]
    assert "ci" in h["metrics"] and "accuracy" in h["metrics"]["ci"]
    assert rep["model"] == h["adopted"] == "hybrid"
    assert h["hybrid_valid"] == 1.0 and h["hybrid_valid"] >= h["network_valid"]
    # the CRNN's embedding (its attention-pooled states) is an input too; instance
    # normalisation hides the level from it as well, so the candidate is scored and loses
    assert h["candidates"][1]["valid"] is not None and "skipped" not in h["candidates"][1]
    assert h["candidates"][1]["valid"] < h["hybrid_valid"]
    rd = Path(hybrid_run.run_dir)
    stage, desc = load_stage(rd)
    assert desc["inputs"] == ["probs", "features"] and desc["classifier"] == "logistic"
    assert stage["feature_names"] == desc["feature_names"]
    assert all(n.startswith("log_mel_mean") for n in desc["feature_names"])
    assert (rd / "hybrid_test_predictions.csv").is_file()
    cal = json.loads((rd / "calibration.json").read_text())
    assert "hybrid" in cal["fitted_on"]


def test_score_model_applies_the_stage(hybrid_run, levels, tmp_path):
    rd = Path(hybrid_run.run_dir)
    trained = _rows(rd / "hybrid_test_predictions.csv")
    recs = [json.loads(x) for x in (levels / "levels.jsonl").read_text().splitlines()]
    test = [r for r in recs if r["id"] in trained]
    assert len(test) == len(trained) > 0
    for r in test:
        r["path"] = str(levels / r["path"])
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    score_model(rd, tmp_path / "test.jsonl", tmp_path / "scored", progress=False,
                drift=False)
    scored = _rows(tmp_path / "scored" / "predictions.csv")
    for rid, row in trained.items():
        for c in ("quiet", "loud"):
            assert float(scored[rid][f"p_{c}"]) == pytest.approx(float(row[f"p_{c}"]),
                                                                 abs=2e-6)
        assert scored[rid]["label"] == row["predicted"]


def test_calibration_is_the_adopted_hybrids(hybrid_run, levels, tmp_path):
    """calibration.json is fitted on the hybrid's validation outputs, and `score model
    --calibrate` applies it to the hybrid's probabilities."""
    from biosig.calibration import apply_temperature, fit_temperature
    from biosig.train.evaluation import read_predictions
    rd = Path(hybrid_run.run_dir)
    cal = json.loads((rd / "calibration.json").read_text())
    vp, vt, _ = read_predictions(rd / "hybrid_valid_predictions.csv", ["quiet", "loud"])
    np_, nt, _ = read_predictions(rd / "valid_predictions.csv", ["quiet", "loud"])
    assert cal["temperature"] == pytest.approx(fit_temperature(vt, vp), rel=1e-3)
    assert cal["temperature"] != pytest.approx(fit_temperature(nt, np_), rel=1e-2)
    trained = _rows(rd / "hybrid_test_predictions.csv")
    recs = [json.loads(x) for x in (levels / "levels.jsonl").read_text().splitlines()]
    test = [{**r, "path": str(levels / r["path"])} for r in recs if r["id"] in trained]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    score_model(rd, tmp_path / "test.jsonl", tmp_path / "scored", progress=False,
                drift=False, calibrate=True)
    scored = _rows(tmp_path / "scored" / "predictions.csv")
    ids = sorted(trained)
    raw = np.array([[float(trained[i][f"p_{c}"]) for c in ("quiet", "loud")] for i in ids])
    got = np.array([[float(scored[i][f"p_{c}"]) for c in ("quiet", "loud")] for i in ids])
    np.testing.assert_allclose(got, apply_temperature(raw, cal["temperature"]), atol=1e-4)


def _ci_text(d: dict) -> str:
    return f"{d['estimate']:.3f} ({d['low']:.3f}–{d['high']:.3f})"


def _headline(md: str) -> str:
    return re.search(r"^Headline metric \*\*(\w+)\*\*: \*\*(.+?)\*\*$", md, flags=re.M).group(2)


def test_report_describes_the_adopted_hybrid(hybrid_run):
    """The report's headline, per-class table and calibration are the hybrid's (accuracy 1.0
    on test), not the network's (at most 0.8); the network alone is one row beside it; the
    HTML page shows the same with every PNG embedded."""
    from html.parser import HTMLParser

    from biosig.train.report import write_report
    rd = Path(hybrid_run.run_dir)
    rep = hybrid_run.report
    res = write_report(rd, html=True, progress=False)
    md = res.markdown.read_text()
    assert _headline(md) == _ci_text(rep["hybrid"]["metrics"]["ci"]["accuracy"])
    assert _headline(md) != _ci_text(rep["metrics"]["ci"]["accuracy"])
    assert "the hybrid stage (probs+features into logistic)" in md
    row = next(x for x in md.splitlines() if x.startswith("| network alone"))
    assert _ci_text(rep["metrics"]["ci"]["accuracy"]) in row
    per_class = md.split("Per class", 1)[1].split("\n\n", 2)[1]
    for c in ("quiet", "loud"):                       # the hybrid classifies every item right
        assert re.search(rf"^\| {c} \| \d+ \| 1\.000 \| 1\.000 \|", per_class, flags=re.M)
    assert "fitted on valid (hybrid stage)" in md
    # the HTML page: the same blocks, the PNGs inside it
    page = res.html.read_text()

    class Collect(HTMLParser):
        def __init__(self):
            super().__init__()
            self.imgs, self.tables, self.text = [], 0, []

        def handle_starttag(self, tag, attrs):
            if tag == "img":
                self.imgs.append(dict(attrs)["src"])
            self.tables += tag == "table"

        def handle_data(self, data):
            self.text.append(data)

    parser = Collect()
    parser.feed(page)
    parser.close()
    want = {"data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()
            for p in res.pngs}
    assert len(res.pngs) >= 5 and set(parser.imgs) == want
    text = "".join(parser.text)
    assert f"Headline metric accuracy: {_headline(md)}" in text
    assert parser.tables == md.count("\n|---|") and "|---|" not in page
    assert "**" not in text and "`" not in text       # inline markup rendered, not shown


def test_report_applies_the_decision_rule(hybrid_run, tmp_path):
    """A run with a decision rule: the report's predictions are the adopted model's
    re-weighted by it, and its headline is the rule's test metric of report.json."""
    import shutil

    from biosig.fileio import load_yaml
    from biosig.train.evaluation import metrics_with_ci, read_predictions
    from biosig.train.hybrid import adopted_model
    from biosig.train.report import write_report
    rd = tmp_path / "ruled"
    shutil.copytree(hybrid_run.run_dir, rd)
    shutil.rmtree(rd / "report", ignore_errors=True)
    cfg = validate_config(load_yaml((rd / "config.yaml").read_text()))
    rep = json.loads((rd / "report.json").read_text())
    tp, tt, _ = read_predictions(rd / "hybrid_test_predictions.csv", cfg.data.classes)
    w = [1.0, 1e6]                                    # a rule that calls nearly all 'loud'
    rep["decision"] = {"weights": w, "metrics": metrics_with_ci(tt, apply_decision(tp, w),
                                                                cfg)}
    (rd / "report.json").write_text(json.dumps(rep))
    m = adopted_model(rd, cfg)
    assert m.name == "hybrid" and m.has_rule and not m.is_network
    np.testing.assert_allclose(m.test.probs, tp)
    np.testing.assert_array_equal(m.test.decided.argmax(1), (tp * w).argmax(1))
    assert m.valid is not None and m.valid.decided.shape == m.valid.probs.shape
    assert rep["decision"]["metrics"]["accuracy"] < rep["hybrid"]["metrics"]["accuracy"]
    md = write_report(rd, progress=False).markdown.read_text()
    assert _headline(md) == _ci_text(rep["decision"]["metrics"]["ci"]["accuracy"])
    assert "hybrid stage (arg-max)" in md and "weights quiet 1, loud 1e+06" in md
    # the same rule, set aside by the cross-fitted check: the run decides by arg-max
    rep["decision"] = {"weights": [1.0, 1.0], "fitted_weights": w, "argmax_score": 0.9,
                       "crossfit": {"folds": 5, "scores": [0.8, 0.85, 0.8], "mean": 0.8167,
                                    "kept": False},
                       "metrics": metrics_with_ci(tt, tp, cfg)}
    (rd / "report.json").write_text(json.dumps(rep))
    m = adopted_model(rd, cfg)
    assert not m.has_rule and m.weights == [None]
    np.testing.assert_array_equal(m.test.decided, tp)
    md = write_report(rd, progress=False).markdown.read_text()
    assert "decision rule tuned on validation was set aside" in md and "0.817" in md


@pytest.mark.slow
def test_kfold_resume_adds_stages_and_decision(levels, tmp_path):
    cfg = level_config(levels, tmp_path, **{"cv.folds": 3, "hybrid.enabled": False})
    first = run(validate_config(cfg), run_id="cv", progress=False)
    assert "pooled_hybrid" not in first.report
    cfg["hybrid"]["enabled"] = True
    cfg["eval"]["decision"] = "tuned"
    again = run(validate_config(cfg), run_id="cv", resume=True, progress=False)
    rep = again.report
    assert rep["pooled_hybrid"]["metrics"]["accuracy"] > rep["pooled"]["metrics"]["accuracy"]
    assert rep["model"] == "hybrid" and rep["models"] == ["hybrid"] * 3
    assert len(rep["hybrid_valid"]["candidates"]) == 2
    assert "weights_per_fold" in rep["pooled_decision"]
    rd = Path(again.run_dir)
    # the report: each fold's hybrid under its own rule, pooled out of fold
    from biosig.train.report import write_report
    md = write_report(rd, progress=False).markdown.read_text()
    assert _headline(md) == _ci_text(rep["pooled_decision"]["metrics"]["ci"]["accuracy"])
    ruled = any(rule_weights(json.loads((rd / f"fold-{k}" / "report.json").read_text())
                             .get("decision")) for k in range(3))
    # a rule whose weights are all 1 (a flat optimum) is arg-max, and the report says none
    assert ("each fold's decision rule" in md) == ruled and "pooled out of fold" in md
    dec = json.loads((rd / "decision.json").read_text())
    assert dec["metric"] == "accuracy" and len(dec["weights"]) == 2
    assert "crossfit" not in dec
    # the cross-fitted check asked for: the stages run again, the rules carry its record
    cfg["eval"]["decision_crossfit"] = 2
    checked = run(validate_config(cfg), run_id="cv", resume=True, progress=False)
    assert checked.report["pooled_model"] == rep["pooled_model"]     # no training again
    dec = json.loads((rd / "decision.json").read_text())
    assert dec["crossfit"]["folds"] == 2 and len(dec["crossfit"]["scores"]) == 3
    fold = json.loads((rd / "fold-0" / "report.json").read_text())
    assert fold["decision"]["crossfit"]["kept"] in (True, False)
    assert fold["stage_settings"]["decision_crossfit"] == 2
    cfg["eval"]["decision_crossfit"] = 0
    for k in range(3):
        assert (rd / f"fold-{k}" / "hybrid.joblib").is_file()
        r = json.loads((rd / f"fold-{k}" / "report.json").read_text())
        assert r["stage_settings"]["hybrid"]["enabled"] is True
    # scoring the K-fold run: each fold's hybrid, averaged
    score_model(rd, levels / "levels.jsonl", tmp_path / "scored", progress=False, drift=False)
    scored = _rows(tmp_path / "scored" / "predictions.csv")
    truth = {json.loads(x)["id"]: json.loads(x)["labels"]["level"]
             for x in (levels / "levels.jsonl").read_text().splitlines()}
    assert np.mean([scored[i]["label"] == truth[i] for i in truth]) >= 0.95
    # switched off again: the stage files go
    cfg["hybrid"]["enabled"] = False
    cfg["eval"]["decision"] = "argmax"
    off = run(validate_config(cfg), run_id="cv", resume=True, progress=False)
    assert "pooled_hybrid" not in off.report
    assert not (rd / "fold-0" / "hybrid.json").exists() and not (rd / "decision.json").exists()


def test_fit_candidates_keeps_the_best_on_validation():
    rng = np.random.default_rng(1)
    n = 200
    y = rng.integers(0, 2, n)
    feats = np.c_[y + 0.1 * rng.normal(size=n), rng.normal(size=n)]     # informative
    probs = np.full((n, 2), 0.5)                                        # uninformative
    blocks = {"probs": probs, "features": feats, "embedding": None}
    tr, va = np.arange(n) < 150, np.arange(n) >= 150

    def part(m):
        return {k: (v[m] if v is not None else None) for k, v in blocks.items()}

    C = HybridCandidate
    cands = [C(inputs=["probs"], classifier="logistic"),
             C(inputs=["embedding"], classifier="histgb"),
             C(inputs=["probs", "features"], classifier="logistic"),
             C(inputs=["features"], classifier="logistic", network_weight=0.5)]
    fit = fit_candidates(part(tr), y[tr], part(va), cands, n_classes=2,
                         score=lambda p: float(np.mean(p.argmax(1) == y[va])))
    assert fit.index == 2 and fit.scores[2] == 1.0 and fit.scores[1] is None
    assert fit.scores[0] <= 0.7
    assert fit.scores[3] == 1.0              # averaging with flat probabilities keeps its order
    X = assemble_inputs(blocks, ["probs", "features"])
    assert X.shape == (n, 4) and np.allclose(X[:, :2], np.log(0.5))
    # the average: w * network + (1 - w) * classifier
    clf = make_classifier("logistic").fit(feats[tr], y[tr])
    avg = stage_predict(clf, part(va), ["features"], 2, network_weight=0.25)
    assert np.allclose(avg, 0.25 * 0.5 + 0.75 * clf.predict_proba(feats[va]))


def test_decision_rule_reaches_the_known_optimum():
    from biosig.metrics import physionet2022_weighted_accuracy as wacc
    # classes Present, Unknown, Absent; weights 5, 3, 1 by true class
    groups = [((0.30, 0.10, 0.60), {0: 10, 2: 20}),   # best: call Present (50 vs 20)
              ((0.05, 0.35, 0.60), {1: 10, 2: 10}),   # best: call Unknown (30 vs 10)
              ((0.20, 0.05, 0.75), {2: 30})]          # best: call Absent (30)
    P = np.array([p for p, n in groups for c, m in n.items() for _ in range(m)])
    T = np.array([c for p, n in groups for c, m in n.items() for _ in range(m)])
    denom = 5 * 10 + 3 * 10 + 1 * 60

    def metric(t, p):
        return wacc(t, p.argmax(1), weights=[5, 3, 1])

    assert metric(T, P) == pytest.approx((20 + 10 + 30) / denom)           # arg-max
    dec = fit_decision(T, P, metric)
    assert dec["score"] == pytest.approx((50 + 30 + 30) / denom)            # the optimum
    assert dec["argmax_score"] == pytest.approx((20 + 10 + 30) / denom)
    pred = apply_decision(P, dec["weights"]).argmax(1)
    assert (pred[:30] == 0).all() and (pred[30:50] == 1).all() and (pred[50:] == 2).all()
    # a flat optimum keeps arg-max
    flat = fit_decision(np.array([0, 1]), np.array([[0.9, 0.1], [0.1, 0.9]]),
                        lambda t, p: float(np.mean(p.argmax(1) == t)))
    assert flat["weights"] == [1.0, 1.0]


def test_the_crossfit_check_keeps_a_real_rule_and_sets_aside_a_chance_one():
    """A rule that corrects a real bias survives cross-fitting; one that only fits the noise
    of 120 calibrated items does not, and then decides as arg-max."""
    rng = np.random.default_rng(0)
    grid = np.exp2(np.linspace(-3, 3, 13))

    def macro_recall(t, p):
        pred = p.argmax(1)
        return float(np.mean([np.mean(pred[t == c] == c) for c in np.unique(t)]))
    # a real bias: class 1's probabilities shrunk by 4
    t = np.repeat([0, 1, 2], 100)
    p = np.exp(rng.normal(size=(300, 3)) + 1.5 * np.eye(3)[t]) * np.array([1, 0.25, 1])
    p /= p.sum(1, keepdims=True)
    real = fit_decision(t, p, macro_recall, crossfit=5, grid=grid)
    assert real["crossfit"]["kept"] and real["crossfit"]["mean"] > real["argmax_score"]
    assert real["weights"][1] >= 2 and "fitted_weights" not in real
    # calibrated probabilities: the search still finds a rule that fits these items better
    t0 = np.repeat([0, 1, 2], 40)
    p0 = np.exp(rng.normal(size=(120, 3)) + 1.0 * np.eye(3)[t0])
    p0 /= p0.sum(1, keepdims=True)
    noise = fit_decision(t0, p0, macro_recall, crossfit=5, grid=grid)
    assert noise["fitted_weights"] != [1.0] * 3 and noise["crossfit"]["kept"] is False
    assert noise["crossfit"]["mean"] < noise["argmax_score"]
    assert noise["weights"] == [1.0] * 3 and noise["score"] == noise["argmax_score"]
    assert rule_weights(noise) is None and rule_weights(real) == real["weights"]
    assert rule_weights(None) is None
    tiny = fit_decision(t0[:1], p0[:1], macro_recall, crossfit=5, grid=grid)   # one item
    assert tiny["crossfit"] == {"folds": 1, "scores": [], "mean": None, "kept": False}
    assert tiny["weights"] == [1.0] * 3
    three = fit_decision(t0[[0, 40, 80]], p0[[0, 40, 80]], macro_recall, crossfit=5, grid=grid)
    assert three["crossfit"]["folds"] == 3 and len(three["crossfit"]["scores"]) == 3
    with pytest.raises(ConfigError, match="crossfit is 1"):
        fit_decision(t0, p0, macro_recall, crossfit=1)


@pytest.mark.parametrize("key, value, match", [
    ("hybrid.enabeld", True, r"hybrid\.enabeld"),
    ("hybrid.candidates", [{"inputs": ["probs"], "classifier": "svm"}],
     r"hybrid\.candidates\.0\.classifier"),
    ("hybrid.candidates", [{"inputs": ["logits"]}], r"hybrid\.candidates\.0\.inputs"),
    ("hybrid.candidates", [{"inputs": ["features"], "bag": 1}], r"hybrid\.candidates\.0\.bag"),
    ("hybrid.candidates", [{"inputs": ["features"], "histgb": {"max_leaf_nodes": 1}}],
     r"hybrid\.candidates\.0\.histgb\.max_leaf_nodes"),
    ("hybrid.candidates", [{"inputs": ["features"], "histgb": {"max_features": 1.5}}],
     r"hybrid\.candidates\.0\.histgb\.max_features"),
    ("hybrid.candidates", [{"inputs": ["features"], "classifier": "logistic",
                            "histgb": {"max_iter": 10}}],
     r"hybrid\.candidates\.0.*apply to histgb only"),
    ("hybrid.features", [{"preset": "ecg", "overides": {}}], r"hybrid\.features\.0\.overides"),
    ("eval.decision", "best", r"eval\.decision"),
    ("eval.decision_crossfit", 1, r"eval\.decision_crossfit is 1"),
    ("hybrid.features", [], r"hybrid\.features is empty"),
    ("hybrid.candidates", [{"inputs": ["probs"], "network_weight": 0.5}],
     r"hybrid\.candidates\.0.*inputs must not include probs"),
])
def test_config_errors_name_the_key(levels, tmp_path, key, value, match):
    cfg = level_config(levels, tmp_path)
    head, last = key.rsplit(".", 1)
    node = cfg
    for h in head.split("."):
        node = node[h]
    node[last] = value
    with pytest.raises(ConfigError, match=match):
        validate_config(cfg)


def test_decision_metric_must_be_reported(levels, tmp_path):
    cfg = level_config(levels, tmp_path, **{"eval.decision": "tuned",
                                            "eval.decision_metric": "cinc2017_f1"})
    with pytest.raises(ConfigError, match="eval.decision_metric is 'cinc2017_f1'"):
        validate_config(cfg)


@pytest.fixture(scope="module")
def murmurs(tmp_path_factory):
    """A CirCor-like folder: 12 patients with two locations each (``s<SS>_<k>.wav``), three
    murmur classes told apart by pitch."""
    def tone(s, t, rng):
        f0 = (50.0, 120.0, 250.0)[s % 3]
        return 0.5 * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 6)) + 0.3 * rng.normal(
            size=t.size)
    return write_toy_corpus(tmp_path_factory.mktemp("murmurs"), "murmurs.jsonl",
                            n_subjects=12, signal=tone,
                            labels=lambda s: {"murmur": ("Present", "Unknown", "Absent")[s % 3]})


MURMUR_CLASSES = ["Present", "Unknown", "Absent"]


def _murmur_config(murmurs, tmp_path, **eval_over) -> dict:
    """A one-epoch CRNN on the toy murmurs, scored per patient as the CirCor recipe is."""
    return level_config(murmurs, tmp_path, **{
        "recipe": "murmurs", "hybrid.enabled": False,
        "data.manifest": str(murmurs / "murmurs.jsonl"), "data.label": "murmur",
        "data.classes": MURMUR_CLASSES,
        "frontend.normalize": "none", "train.epochs": 1, "train.monitor": "weighted_accuracy",
        "eval": {"challenge": "physionet2022", "class_weights": [5.0, 3.0, 1.0],
                 "aggregate_by": "subject", "n_bootstrap": 10, **eval_over}})


def _scored_by_file(out: Path) -> tuple[list[dict], dict]:
    """``score model``'s prediction rows and each recording file's prefix (the CirCor
    patient) -> its recordings' probabilities."""
    with open(out / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    by: dict = {}
    for r in rows:
        by.setdefault(r["record"].split("_")[0], []).append([float(r[f"p_{c}"])
                                                             for c in MURMUR_CLASSES])
    return rows, by


def test_score_model_writes_circor_answers_with_the_rule(murmurs, tmp_path):
    """One answer file per patient in the challenge's layout; its probabilities are the mean
    over the patient's recordings and its label the run's decision rule on them."""
    import shutil

    from biosig.train.hybrid import save_decision
    cfg = _murmur_config(murmurs, tmp_path)
    rd = tmp_path / "ruled"
    shutil.copytree(run(validate_config(cfg), run_id="m", progress=False).run_dir, rd)
    w = [1.0, 30.0, 1.0]                          # a rule that often calls Unknown
    save_decision(rd, {"rule": "argmax(p * weights)", "weights": w})
    out = tmp_path / "scored"
    score_model(rd, murmurs, out, progress=False, drift=False)
    rows, by = _scored_by_file(out)
    classes = MURMUR_CLASSES
    files = sorted((out / "answers").glob("*.csv"))
    assert [f.stem for f in files] == sorted(by) and len(files) == 12
    changed = 0
    for f in files:
        lines = f.read_text().splitlines()
        assert len(lines) == 4 and lines[0] == f"#{f.stem}"
        assert lines[1] == "Present,Unknown,Absent"
        label = [int(v) for v in lines[2].split(",")]
        p = np.array([float(v) for v in lines[3].split(",")])
        mean = np.mean(by[f.stem], axis=0)
        np.testing.assert_allclose(p, mean, atol=2e-6)
        want = int(np.argmax(mean * w))
        assert label == [int(c == want) for c in range(3)]
        changed += want != int(np.argmax(mean))
    assert changed > 0                             # the rule, not the arg-max, decided
    # --calibrate: the files carry the calibrated patient means (the calibration was fitted on
    # patient probabilities), the labels stay the rule's on the raw means
    cal = tmp_path / "calibrated"
    score_model(rd, murmurs, cal, progress=False, drift=False, calibrate=True)
    calibration = json.loads((rd / "calibration.json").read_text())
    with open(cal / "predictions.csv", newline="") as f:
        crow = {r["record"]: r for r in csv.DictReader(f)}
    cby: dict = {}
    for r in rows:
        c = crow[r["record"]]
        for k in classes:                          # raw columns: the uncalibrated scores
            assert float(c[f"raw_p_{k}"]) == pytest.approx(float(r[f"p_{k}"]), abs=2e-6)
        cby.setdefault(r["record"].split("_")[0], []).append([float(c[f"p_{k}"])
                                                              for k in classes])
    moved = differs = 0
    for f in files:
        lines = (cal / "answers" / f.name).read_text().splitlines()
        assert lines[2] == f.read_text().splitlines()[2]          # the same label
        p = np.array([float(v) for v in lines[3].split(",")])
        mean = np.mean(by[f.stem], axis=0)
        np.testing.assert_allclose(p, apply_calibration(mean[None], calibration)[0], atol=1e-5)
        moved += not np.allclose(p, mean, atol=1e-3)
        differs = max(differs, float(np.abs(p - np.mean(cby[f.stem], axis=0)).max()))
    assert moved > 0                               # calibration changed the probabilities
    assert differs > 1e-4                          # not the mean of calibrated recordings


def test_aggregate_any_scores_patients_and_writes_the_answers(murmurs, tmp_path):
    """``eval.aggregate_any: Present``: a patient's Present is the maximum over its
    recordings (the others share the rest by their means), in the run's own patient scores
    and in ``score model``'s answer files alike."""
    cfg = _murmur_config(murmurs, tmp_path, aggregate_any="Present")
    rd = Path(run(validate_config(cfg), run_id="any", progress=False).run_dir)
    out = tmp_path / "scored"
    score_model(rd, murmurs, out, progress=False, drift=False)
    rows, by = _scored_by_file(out)
    classes = MURMUR_CLASSES

    def any_present(q):
        q = np.asarray(q)
        top, rest = q[:, 0].max(), q[:, 1:].mean(axis=0)
        return np.array([top, *(rest / rest.sum() * (1 - top))])

    differs = 0
    for f in sorted((out / "answers").glob("*.csv")):
        p = np.array([float(v) for v in f.read_text().splitlines()[3].split(",")])
        np.testing.assert_allclose(p, any_present(by[f.stem]), atol=2e-6)
        differs += not np.allclose(p, np.mean(by[f.stem], axis=0), atol=1e-3)
    assert differs > 0                             # not the mean
    subject = {Path(r["path"]).stem: r["subject"] for r in map(
        json.loads, (murmurs / "murmurs.jsonl").read_text().splitlines())}
    by_subject: dict = {}
    for r in rows:
        by_subject.setdefault(subject[Path(r["record"]).stem], []).append(
            [float(r[f"p_{c}"]) for c in classes])
    with open(rd / "test_predictions.csv", newline="") as f:
        test = list(csv.DictReader(f))
    assert test
    for r in test:                                 # the run scored its patients the same way
        want = any_present(by_subject[r["subject"]])
        got = [float(r[f"p_{c}"]) for c in classes]
        np.testing.assert_allclose(got, want, atol=1e-5)


def _score_model_reproduces(rd: Path, levels: Path, tmp_path: Path, *, abs_tol: float):
    """`score model` on the run's test recordings gives the hybrid's test predictions."""
    trained = _rows(rd / "hybrid_test_predictions.csv")
    recs = [json.loads(x) for x in (levels / "levels.jsonl").read_text().splitlines()]
    test = [dict(r, path=str(levels / r["path"])) for r in recs if r["id"] in trained]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in test))
    score_model(rd, tmp_path / "test.jsonl", tmp_path / "scored", progress=False, drift=False)
    scored = _rows(tmp_path / "scored" / "predictions.csv")
    assert set(scored) >= set(trained) and trained
    for rid, row in trained.items():
        assert float(scored[rid]["p_loud"]) == pytest.approx(float(row["p_loud"]), abs=abs_tol)


def test_refit_candidate_is_the_fit_on_both_splits():
    from biosig.train.hybrid import refit_candidate
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 120)
    feats = np.c_[y + 0.5 * rng.normal(size=120), rng.normal(size=120)]
    a = {"features": feats[:80], "probs": None}
    b = {"features": feats[80:], "probs": None}
    cand = HybridCandidate(inputs=["features"], classifier="logistic", c=0.01)
    m = refit_candidate(cand, [a, b], [y[:80], y[80:]])
    direct = make_classifier("logistic", c=0.01).fit(feats, y)
    assert np.allclose(m[-1].coef_, direct[-1].coef_)
    # the candidate's own c is used, not the stage's default
    assert m[-1].C == 0.01
    assert not np.allclose(m[-1].coef_, make_classifier("logistic").fit(feats, y)[-1].coef_)


def test_forest_and_bagged_classifiers():
    """``forest`` takes missing values as they are; ``bag`` N averages N copies, each fitted on
    its own bootstrap resample, and differs from the single fit."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 150)
    X = np.c_[y + 0.7 * rng.normal(size=150), rng.normal(size=(150, 3))]
    X[::5, 1] = np.nan
    forest = make_classifier("forest", seed=1).fit(X, y)
    assert len(forest.estimators_) == 500 and np.mean(forest.predict(X) == y) > 0.9
    bagged = make_classifier("histgb", bag=4, seed=1, max_iter=20).fit(X, y)
    assert len(bagged.estimators_) == 4
    samples = [set(s) for s in bagged.estimators_samples_]
    assert all(a != b for i, a in enumerate(samples) for b in samples[i + 1:])
    members = np.mean([m.predict_proba(X) for m in bagged.estimators_], axis=0)
    assert np.allclose(bagged.predict_proba(X), members)
    single = make_classifier("histgb", seed=1, max_iter=20).fit(X, y)
    assert not np.allclose(bagged.predict_proba(X), single.predict_proba(X))
    small = make_classifier("histgb", max_leaf_nodes=4, max_iter=5).fit(X, y)
    assert all(p.nodes.size <= 2 * 4 for t in small._predictors for p in t)
    cand = HybridCandidate(inputs=["features"], histgb={"max_leaf_nodes": 4,
                                                         "l2_regularization": 2.0})
    from biosig.train.hybrid import refit_candidate
    fitted = refit_candidate(cand, [{"features": X}], [y], max_leaf_nodes=31, max_iter=5,
                             learning_rate=0.2)
    # the candidate's own settings, the stage's for the keys it leaves out
    assert (fitted.max_leaf_nodes, fitted.l2_regularization) == (4, 2.0)
    assert (fitted.max_iter, fitted.learning_rate, fitted.max_features) == (5, 0.2, 1.0)
    with pytest.raises(ConfigError, match="bag is 1"):
        make_classifier("logistic", bag=1)
    with pytest.raises(ConfigError, match="'svm'"):
        make_classifier("svm")


def test_bagged_forest_stage_is_saved_and_applied(levels, tmp_path):
    cfg = level_config(levels, tmp_path, **{"hybrid.candidates": [
        {"inputs": ["features"], "classifier": "forest", "bag": 3}]})
    res = run(validate_config(cfg), run_id="b", progress=False)
    rd = Path(res.run_dir)
    stage, desc = load_stage(rd)
    assert desc["classifier"] == "forest" and desc["bag"] == 3 and desc["histgb"] is None
    assert desc["candidates"][0]["bag"] == 3 and res.report["hybrid"]["bag"] == 3
    assert res.report["hybrid"]["hybrid_valid"] == 1.0
    assert res.report["model"] == "hybrid"
    from biosig.train.report import write_report
    md = write_report(rd, progress=False).markdown.read_text()
    assert "the hybrid stage (features into forest x3 bagged)" in md
    _score_model_reproduces(rd, levels, tmp_path, abs_tol=2e-6)


def test_chosen_histgb_settings_are_recorded(levels, tmp_path):
    """A candidate's own HistGB settings reach the fitted model (the stage's for the keys it
    leaves out) and are recorded with the stage and named where it is described."""
    from biosig.train.hybrid import _describe
    cfg = level_config(levels, tmp_path, **{"hybrid.candidates": [
        {"inputs": ["features"], "histgb": {"max_leaf_nodes": 4, "learning_rate": 0.5}}]})
    res = run(validate_config(cfg), run_id="s", progress=False)
    stage, desc = load_stage(Path(res.run_dir))
    want = {"learning_rate": 0.5, "max_leaf_nodes": 4}
    assert desc["histgb"] == want and res.report["hybrid"]["histgb"] == want
    assert desc["candidates"][0]["histgb"] == want
    m = stage["model"]
    assert (m.max_iter, m.max_leaf_nodes, m.learning_rate) == (50, 4, 0.5)   # max_iter: stage's
    assert _describe(desc) == "features / histgb learning_rate 0.5 max_leaf_nodes 4"


def test_stage_settings_of_an_older_run_still_match(levels, tmp_path):
    """A run whose stored stage settings predate a setting (stored without it) is not stale
    when the config asks for that setting's default; another value, or another candidate, is."""
    import copy

    from biosig.train.hybrid import same_stage_settings, stage_settings
    cfg = validate_config(level_config(levels, tmp_path))
    stored = copy.deepcopy(stage_settings(cfg))
    for key in ("max_leaf_nodes", "max_features", "l2_regularization"):
        del stored["hybrid"][key]
    for c in stored["hybrid"]["candidates"]:
        del c["bag"], c["histgb"]
    assert stored != stage_settings(cfg) and same_stage_settings(stored, cfg)
    assert same_stage_settings(None, cfg) is False
    other = validate_config(level_config(levels, tmp_path, **{"hybrid.max_leaf_nodes": 15}))
    assert not same_stage_settings(stored, other)
    stored["hybrid"]["candidates"][0]["classifier"] = "forest"
    assert not same_stage_settings(stored, cfg)
    stored["hybrid"]["candidates"][0]["classifer"] = "histgb"     # not today's schema
    assert not same_stage_settings(stored, cfg)


def test_refit_stage_is_fitted_on_train_and_valid(levels, tmp_path):
    cfg = level_config(levels, tmp_path, **{"hybrid.refit": True})
    res = run(validate_config(cfg), run_id="r", progress=False)
    rd = Path(res.run_dir)
    stage, desc = load_stage(rd)
    n_valid = sum(1 for _ in open(rd / "valid_predictions.csv")) - 1
    n_test = sum(1 for _ in open(rd / "test_predictions.csv")) - 1
    assert "train + valid" in desc["fitted_on"]
    assert desc["n_train"] == 40 - n_test > 40 - n_test - n_valid   # train and valid rows
    # the valid outputs are the out-of-sample ones (the fit on train alone) ...
    assert res.report["hybrid"]["hybrid_valid"] == 1.0
    # ... and `score model` applies the refitted stage: it reproduces the test predictions
    _score_model_reproduces(rd, levels, tmp_path, abs_tol=2e-6)


def test_encoder_block_through_training_and_scoring(levels, whisper_model_dir, tmp_path):
    """A candidate on the Whisper encoder's pooled states alone, chosen, saved with the
    encoder's spec, and applied again by `score model` (same numbers)."""
    cfg = level_config(levels, tmp_path, **{
        "hybrid.encoder": {"model": str(whisper_model_dir)},
        "hybrid.candidates": [{"inputs": ["encoder"], "classifier": "logistic", "c": 0.01}]})
    res = run(validate_config(cfg), run_id="enc", progress=False)
    rd = Path(res.run_dir)
    stage, desc = load_stage(rd)
    assert desc["inputs"] == ["encoder"] and stage["encoder"]["model"] == str(whisper_model_dir)
    assert res.report["hybrid"]["candidates"][0]["valid"] >= 0.9     # level: easy to hear
    _score_model_reproduces(rd, levels, tmp_path, abs_tol=1e-5)


def test_encoder_candidate_needs_hybrid_encoder(levels, tmp_path):
    cfg = level_config(levels, tmp_path, **{
        "hybrid.candidates": [{"inputs": ["encoder", "features"], "classifier": "logistic"}]})
    with pytest.raises(ConfigError, match="hybrid.encoder is not set"):
        validate_config(cfg)


def test_carve_select_split_is_patient_wise_from_train_only():
    from biosig.train.data import Example, carve_select_split
    ex = [Example(None, i % 2, "train" if i < 60 else "valid", f"p{i // 3}")
          for i in range(80)]
    out = carve_select_split(ex, frac=0.25, seed=0)
    assert out == carve_select_split(ex, frac=0.25, seed=0)             # deterministic
    assert [e.split for e in out[60:]] == ["valid"] * 20               # other splits kept
    sel = [e for e in out if e.split == "select"]
    assert 9 <= len(sel) <= 21 and {e.target for e in sel} == {0, 1}   # stratified
    sel_groups = {e.group for e in sel}
    assert not sel_groups & {e.group for e in out if e.split == "train"}   # whole patients


def test_select_split_keeps_valid_out_of_sample(levels, tmp_path):
    """train.select_frac: the best epoch is chosen on a split carved from train; valid stays
    apart from it, and the hybrid's classifier is fitted on train and select."""
    cfg = level_config(levels, tmp_path, **{"train.select_frac": 0.25, "train.epochs": 3})
    res = run(validate_config(cfg), run_id="sel", progress=False)
    rep, rd = res.report, Path(res.run_dir)
    n = rep["splits"]
    assert rep["selected_on"] == "select" and n["select"] > 0
    assert n["train"] + n["select"] + n["valid"] + n["test"] == 40
    # the split is carved from train: valid and test are those of the run without it
    plain = run(validate_config(level_config(levels, tmp_path / "plain")), run_id="p",
                progress=False).report["splits"]
    assert (n["valid"], n["test"], n["train"] + n["select"]) == \
           (plain["valid"], plain["test"], plain["train"])
    valid_ids = set(_rows(rd / "valid_predictions.csv"))
    assert len(valid_ids) == n["valid"]
    _, desc = load_stage(rd)
    assert desc["n_train"] == n["train"] + n["select"]
    assert rep["hybrid"]["network_valid"] is not None
    from biosig.train.report import write_report
    md = Path(write_report(rd, progress=False).markdown).read_text()
    assert "| select |" in md and "`train.select_frac` 0.25" in md


def test_cross_validated_scores_predict_each_fold_out_of_sample():
    """Fold k's rows are predicted by the candidate fitted on every other row (the rows that
    are never scored included), and the score sees the scored rows' predictions in order."""
    from biosig.train.hybrid import best_candidate, cross_validated_scores
    rng = np.random.default_rng(4)
    n = 90
    y = rng.integers(0, 2, n)
    feats = np.c_[y + 0.8 * rng.normal(size=n), rng.normal(size=n)]
    blocks = {"features": feats, "probs": np.full((n, 2), 0.5), "embedding": None}
    folds = np.r_[np.full(30, -1), np.arange(60) % 3]       # 30 rows only fitted on
    seen = []

    def score(p):
        seen.append(p)
        return float(np.mean(p.argmax(1) == y[folds >= 0]))

    C = HybridCandidate
    cands = [C(inputs=["features"], classifier="logistic"),
             C(inputs=["embedding"], classifier="logistic"),
             C(inputs=["features"], classifier="logistic", network_weight=0.5)]
    res = cross_validated_scores(blocks, y, cands, folds=folds, n_classes=2, score=score)
    assert res.scores[1] is None and res.probs[1] is None and "embedding" in res.skipped[1]
    want = np.zeros((n, 2))
    for k in range(3):
        held = folds == k
        want[held] = make_classifier("logistic").fit(feats[~held], y[~held]).predict_proba(
            feats[held])
    assert seen[0].shape == (60, 2) and np.allclose(seen[0], want[folds >= 0])
    assert np.array_equal(res.probs[0], seen[0]) and res.scores[0] == score(seen[0])
    # the network's probabilities are averaged in per row, as on validation
    assert np.allclose(seen[1], 0.5 * 0.5 + 0.5 * want[folds >= 0])
    # not the fit on every row: in-sample predictions differ
    every = make_classifier("logistic").fit(feats, y).predict_proba(feats[folds >= 0])
    assert not np.allclose(seen[0], every)
    assert best_candidate([None, 0.5, np.nan, 0.7, 0.7]) == 3
    assert best_candidate([None, np.nan]) == 1
    with pytest.raises(ConfigError, match="every candidate needs an input.*no embedding"):
        best_candidate([None], {0: "no embedding for this model"})


def _cv_config(levels, out, **over):
    return level_config(levels, out, **{
        "hybrid.candidates": [{"inputs": ["features"], "classifier": "logistic"},
                              {"inputs": ["features"], "classifier": "histgb"}],
        "hybrid.select_folds": 2, "hybrid.select_splits": ["train", "valid"], **over})


def test_stage_chosen_by_cross_validation(levels, tmp_path, monkeypatch):
    """hybrid.select_folds: every candidate's out-of-fold score is recorded, the choice
    follows it (not the validation scores, which are still recorded, and still decide the
    adoption over the network), and `score model` applies the chosen candidate."""
    import biosig.train.hybrid as H
    res = run(validate_config(_cv_config(levels, tmp_path)), run_id="cv", progress=False)
    _, desc = load_stage(Path(res.run_dir))
    cv = [c["cv"] for c in desc["candidates"]]
    # the level is in the features: the regression finds it in every fold; a boosting of 50
    # trees on 15 rows per fold cannot split (20 rows a leaf) and stays near chance
    assert cv[0] == 1.0 and cv[1] < 0.7
    assert desc["selected_by"].startswith("2-fold cross-validated accuracy over train+valid")
    assert desc["selection"] == {"folds": 2, "metric": "accuracy", "splits": ["train", "valid"],
                                 "rows": res.report["splits"]["train"]
                                 + res.report["splits"]["valid"], "groups": 15}
    assert desc["classifier"] == ["logistic", "histgb"][H.best_candidate(cv)]
    assert res.report["hybrid"]["candidates"][0]["cv"] == cv[0]
    assert res.report["hybrid"]["hybrid_valid"] == \
        desc["candidates"][H.best_candidate(cv)]["valid"]
    # adopted over the network on the scored rows whose network outputs are out of sample:
    # valid here (train is scored too, but the network trained on it)
    on = desc["adopted_on"]
    assert on["on"] == f"out of fold, valid ({res.report['splits']['valid']} rows)"
    assert on == res.report["hybrid"]["adopted_on"]
    assert desc["adopted"] == ("hybrid" if on["hybrid"] >= on["network"] else "network")
    assert on["network"] == desc["network_valid"]          # the same rows, the same outputs
    # a choice against the validation scores: forced through the out-of-fold scores
    real = H.cross_validated_scores

    def forced(*a, **k):
        r = real(*a, **k)
        return H.CrossValidated([0.1, 0.9], r.probs, r.skipped)
    monkeypatch.setattr(H, "cross_validated_scores", forced)
    res = run(validate_config(_cv_config(levels, tmp_path / "forced", **{
        "hybrid.candidates": [{"inputs": ["features"], "classifier": "logistic"},
                              {"inputs": ["features"], "classifier": "logistic", "c": 0.001}]})),
              run_id="forced", progress=False)
    rd = Path(res.run_dir)
    stage, desc = load_stage(rd)
    # validation alone ties them, and a tie goes to the first
    assert [c["valid"] for c in desc["candidates"]] == [1.0, 1.0]
    assert [c["cv"] for c in desc["candidates"]] == [0.1, 0.9]
    assert stage["model"][-1].C == 0.001 and res.report["model"] == "hybrid"
    from biosig.train.report import write_report
    md = write_report(rd, progress=False).markdown.read_text()
    assert ("the hybrid stage (features into logistic, chosen by 2-fold cross-validated "
            "accuracy over train+valid)") in md
    _score_model_reproduces(rd, levels, tmp_path, abs_tol=2e-6)


def test_cross_validation_over_select_and_valid(levels, tmp_path):
    """The default select_splits: the rows whose network outputs are out of sample, so
    candidates that read them may be chosen this way; with train.select_frac both splits."""
    cfg = level_config(levels, tmp_path, **{"hybrid.select_folds": 2,
                                            "train.select_frac": 0.25, "train.epochs": 1})
    res = run(validate_config(cfg), run_id="sv", progress=False)
    n = res.report["splits"]
    _, desc = load_stage(Path(res.run_dir))
    assert desc["selected_by"].startswith("2-fold cross-validated accuracy over select+valid "
                                          f"({n['select'] + n['valid']} rows")
    assert desc["candidates"][0]["cv"] is not None
    on = desc["adopted_on"]
    assert on["on"] == f"out of fold, select+valid ({n['select'] + n['valid']} rows)"
    assert desc["adopted"] == ("hybrid" if on["hybrid"] >= on["network"] else "network")
    # without select_folds the adoption is on validation, as before
    plain = run(validate_config(level_config(levels, tmp_path / "plain")), run_id="p",
                progress=False).report["hybrid"]
    assert plain["adopted_on"] == {"on": "valid", "hybrid": plain["hybrid_valid"],
                                   "network": plain["network_valid"]}


@pytest.mark.parametrize("over, match", [
    ({"hybrid.select_folds": 1}, r"hybrid.*select_folds is 1"),
    ({"hybrid.select_folds": 3, "hybrid.select_splits": ["train"]},
     r"hybrid.*select_splits includes train, but candidates \[0, 1\] read the network"),
    ({"hybrid.select_splits": ["valid", "valid"]}, r"hybrid.*a split is repeated"),
    ({"hybrid.select_splits": ["test"]}, r"hybrid\.select_splits\.0"),
])
def test_cross_validation_config_errors(levels, tmp_path, over, match):
    with pytest.raises(ConfigError, match=match):
        validate_config(level_config(levels, tmp_path, **over))
