"""Recipes on full corpora: each trained recipe next to a classical baseline, same split, same
metrics, in one table (``bench/results/recipes.json``).

For every recipe the deep figures come from a finished run of its ``cpu`` profile (the newest
one under ``--runs``, or ``--run RECIPE=DIR``): its ``report.json`` (held-out test split) or
``cv_report.json`` (5-fold CV: every item tested once, pooled). The baseline is computed here:
whole-recording features from the modality presets of :mod:`biosig.features`
(``extract_features``: RR-interval statistics for ECG, log-mel statistics for PCG, log-mel and
MFCC statistics with deltas for cough, band powers for EEG) and scikit-learn's
``HistGradientBoostingClassifier`` (balanced class weights) fitted on the same training records
(train + valid: it needs no early-stopping set) and the same training labels (the profile's
``data.train_label`` where it sets one: CirCor's per-location murmur), scored on the same test
records (or the same folds) with the same metrics, bootstrap CIs and per-patient aggregation
(``eval.aggregate_any`` included; :func:`biosig.train.evaluation.metrics_with_ci`).

A run trained with the hybrid stage (``hybrid.enabled``, :mod:`biosig.train.hybrid`) adds two
rows from its own reports: the hybrid (network outputs and the same preset features into a
second classifier fitted on each fold's training split, chosen on its validation fold), pooled
like the network, and, with ``eval.decision: tuned``, the run's model under its decision rule;
the row of the run's model (network or hybrid, chosen on validation) is marked.

Extra checks printed beside the figures: for cough, the source confound (how well the same
baseline features tell the call-centre recordings from the Telegram ones, 5-fold CV ROC-AUC over
every development recording); for Bonn, seizure-vs-rest sensitivity and specificity read from
the 3-class predictions (ictal = predicted class ictal).

The corpora are the development portions laid out by ``../shared/tools/get_corpus.py`` (the
RESERVED portions are never extracted, so they cannot enter here). Usage::

    python bench/recipes.py --corpora /data/corpora [--runs runs] [--only bonn,cough]
    python bench/recipes.py --corpora - --replot        # the tried plots again, from the JSON

``--corpora`` holds ``cinc2017/``, ``circor2022/``, ``covid19_cough/`` and ``bonn/``; their
manifests are built into ``--work`` (default ``runs/bench_recipes``) when missing, together
with the baseline feature tables (reused by later runs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

RR_KEYS = ("n_beats", "heart_rate_bpm", "rr_", "rmssd", "pnn50")
#: MFCC statistics (the cough preset's MFCCs and deltas) with a heart-sound band
PCG_MFCC = ("cough", {"target_fs": None, "frame_s": 0.064, "hop_s": 0.016, "n_mels": 40,
                      "fmin_hz": 25.0, "fmax_hz": 800.0}, ("mfcc",))
#: The EEG preset's spectrogram as when bench/results/recipes.md was measured (2 s frames in a
#: 347-point FFT from 0 Hz, no dB floor); the preset itself now uses training's rule (n_fft:
#: pow2, bins from 0.5 Hz, top_db 80), which changes the baseline's spectrogram statistics
EEG_AS_MEASURED = {"n_fft": "exact", "fmin_hz": 0.0, "top_db": None}
RECIPES = {
    # row: corpus, profile, baseline feature sets [(preset, overrides, kept name prefixes)];
    # a row named <recipe>:<task> runs that recipe folder with another profile
    "ecg_af_cinc2017": ("cinc2017", "cpu", [("ecg", {}, RR_KEYS)]),
    "pcg_murmur_circor2022": ("circor2022", "cpu", [("pcg", {}, None), PCG_MFCC]),
    "cough_covid_xvector": ("covid19_cough", "cpu", [("cough", {}, None)]),
    "eeg_seizure_bonn": ("bonn", "cpu", [("eeg", EEG_AS_MEASURED, None)]),
    "eeg_seizure_bonn:seizure": ("bonn", "cpu,seizure", [("eeg", EEG_AS_MEASURED, None)]),
}
# issue #28's targets
TARGETS = {"ecg_af_cinc2017": ("cinc2017_f1", 0.83),
           "pcg_murmur_circor2022": ("weighted_accuracy", 0.78),
           "cough_covid_xvector": ("roc_auc", 0.87),
           "eeg_seizure_bonn": ("accuracy", 0.985),          # and seizure Se, Sp >= 0.98
           "eeg_seizure_bonn:seizure": ("sensitivity", 0.98)}   # and specificity >= 0.98
ROOT = Path(__file__).resolve().parents[1]


def _config(recipe: str, manifest: Path, corpus_root: Path):
    from biosig.train.config import load_config
    profile = RECIPES[recipe][1]
    folder = recipe.split(":")[0]
    return load_config(ROOT / "recipes" / folder / "config.yaml", profile=profile,
                       overrides=[f"data.manifest={manifest}", f"data.root={corpus_root}"])


def _manifest(corpus: str, corpora: Path, work: Path) -> Path:
    from biosig.manifests.build import build_manifest
    out = work / f"{corpus}.jsonl"
    if not out.is_file():
        build_manifest(corpus, corpora / corpus, out, seed=0)
    return out


def _features(examples, cfg, specs, cache: Path) -> tuple[np.ndarray, list]:
    """Baseline feature matrix (one row per example): the :func:`extract_features` numbers of
    every ``(preset, overrides, kept prefixes)`` in ``specs``, cached in ``cache`` (.npz)."""
    import hashlib
    tag = hashlib.sha1(json.dumps(specs, sort_keys=True).encode()).hexdigest()[:8]
    cache = cache.with_name(f"{cache.stem}_{tag}.npz")
    from biosig.errors import BiosigError
    from biosig.features import extract_features
    from biosig.progress import Progress
    from biosig.signal import as_signal
    ids = [e.record.id for e in examples]
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        have = dict(zip(z["ids"].tolist(), z["X"]))
        names = z["names"].tolist()
        if all(i in have for i in ids):
            return np.stack([have[i] for i in ids]), names
    rows, names = [], None
    bar = Progress(len(examples), desc=f"baseline features ({cache.stem})", unit="rec")
    for e in examples:
        try:
            sig = e.record.load(cfg.data.root, target_fs=cfg.frontend.target_fs,
                                annotations=None)
            if sig.data.shape[0] > 1:       # one channel, as the recipe reads it
                ch = cfg.data.channel
                sig = (as_signal(sig.data.mean(0), sig.fs) if ch == "mean"
                       else sig.pick([ch]))
            f = {}
            for modality, over, keep in specs:
                g = extract_features(sig, modality=modality, **over)
                if keep is not None:
                    g = {k: v for k, v in g.items() if k.startswith(keep)}
                f.update({(k if k not in f else f"{modality}_{k}"): v for k, v in g.items()})
        except BiosigError as exc:
            print(f"  skipped {e.record.id}: {exc}", file=sys.stderr)
            f = {}
        if names is None and f:
            names = sorted(f)
        rows.append([f.get(k, np.nan) for k in names] if names else [])
        bar.update(1)
    bar.close()
    X = np.array(rows, dtype=np.float64)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, ids=np.array(ids), X=X, names=np.array(names))
    return X, names


def _hgb(seed: int = 0):
    from sklearn.ensemble import HistGradientBoostingClassifier
    return HistGradientBoostingClassifier(class_weight="balanced", random_state=seed,
                                          max_iter=300, learning_rate=0.05)


def _fold_probs(X, y, folds, n_classes) -> np.ndarray:
    """Out-of-fold probabilities: fold k tested by a model fitted on every other fold."""
    P = np.zeros((len(y), n_classes))
    for k in sorted(set(folds)):
        te = folds == k
        m = _hgb().fit(X[~te], y[~te])
        P[np.ix_(te, m.classes_)] = m.predict_proba(X[te])
    return P


def _scored(cfg, probs, targets, examples):
    from biosig.train.engine import EvalOutput, scored_items
    return scored_items(cfg, EvalOutput(probs, targets, float("nan")), examples)


def _scalar(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float)) or v is None}


def _baseline(recipe: str, cfg, work: Path) -> dict:
    from biosig.train.data import fitted_targets, kfold_assign, load_examples
    from biosig.train.evaluation import metrics_with_ci
    corpus, _, specs = RECIPES[recipe]
    examples, _ = load_examples(cfg.data)
    X, names = _features(examples, cfg, specs, work / f"features_{corpus}.npz")
    y = np.array([e.target for e in examples])
    # fitted on what the recipe's network learns (data.train_label), scored on data.label
    y_fit = np.array(fitted_targets(examples))
    k = len(cfg.data.classes)
    t0 = time.perf_counter()
    if cfg.cv.folds:
        folds = np.array(kfold_assign(examples, folds=cfg.cv.folds, seed=cfg.data.split_seed))
        P = _fold_probs(X, y_fit, folds, k)
        test = np.ones(len(y), bool)
        protocol = f"{cfg.cv.folds}-fold CV (the recipe's folds), pooled out-of-fold"
    else:
        split = np.array([e.split for e in examples])
        test = split == "test"
        m = _hgb().fit(X[~test], y_fit[~test])
        P = np.zeros((len(y), k))
        P[np.ix_(test, m.classes_)] = m.predict_proba(X[test])
        protocol = "fit on train+valid, scored on the manifest's test split"
    fit_s = time.perf_counter() - t0
    ex_test = [e for e, t in zip(examples, test) if t]
    probs, targets, ids = _scored(cfg, P[test], y[test], ex_test)
    res = metrics_with_ci(targets, probs, cfg)
    return {"protocol": protocol, "n_features": len(names), "features": names[:12] +
            (["..."] if len(names) > 12 else []), "n_items": int(len(targets)),
            "fit_s": fit_s, "metrics": res, "_probs": probs, "_targets": targets}


def _latest_run(runs: Path, recipe: str, classes: list[str]) -> Path | None:
    """The newest finished run of ``recipe`` trained on ``classes`` (the task)."""
    import yaml
    base = runs / recipe.split(":")[0]
    done = []
    for p in base.glob("*"):
        cfg = next(iter(sorted(p.glob("config.yaml")) or sorted(p.glob("fold-0/config.yaml"))),
                   None)
        if cfg is None or not ((p / "report.json").is_file() or
                               (p / "cv_report.json").is_file()):
            continue
        if yaml.safe_load(cfg.read_text())["data"]["classes"] == classes:
            done.append(p)
    return max(done, key=lambda p: p.stat().st_mtime) if done else None


def _deep(run_dir: Path) -> dict:
    if (run_dir / "cv_report.json").is_file():
        r = json.loads((run_dir / "cv_report.json").read_text())
        return {"run_dir": str(run_dir), "protocol": f"{r['folds']}-fold CV, pooled "
                "out-of-fold", "n_items": r["pooled"]["n_items"],
                "metrics": r["pooled"]["metrics"], "train_s": r.get("train_s"),
                "wall_s": r.get("wall_s"),
                "throughput": r.get("throughput"),
                "predictions": str(run_dir / "cv_test_predictions.csv"),
                "confusion_png": str(run_dir / "confusion_matrix.png")}
    r = json.loads((run_dir / "report.json").read_text())
    return {"run_dir": str(run_dir), "protocol": f"{r['evaluated_split']} split",
            "n_items": r["n_items"], "metrics": r["metrics"], "train_s": r.get("train_s"),
            "wall_s": r.get("wall_s"),
            "epochs_run": r.get("epochs_run"), "best_epoch": r.get("best_epoch"),
            "throughput": r.get("throughput"),
            "predictions": str(run_dir / f"{r['evaluated_split']}_predictions.csv"),
            "confusion_png": str(run_dir / "confusion_matrix.png")}


def _stages(run_dir: Path, deep: dict) -> dict:
    """The run's hybrid stage and tuned decision rule, as rows like :func:`_deep`'s: the
    hybrid alone (pooled over folds, or on the test split), and the run's model under its
    decision rule (where it has one that is not arg-max; a rule the cross-fitted check set
    aside is ``rule_set_aside``); plus which of network and hybrid is the run's model."""
    from biosig.train.hybrid import rule_weights
    out: dict = {}
    if (run_dir / "cv_report.json").is_file():
        r = json.loads((run_dir / "cv_report.json").read_text())
        if "pooled_hybrid" in r:
            out["hybrid"] = {"run_dir": str(run_dir), "protocol": deep["protocol"],
                             "n_items": r["pooled_hybrid"]["n_items"],
                             "metrics": r["pooled_hybrid"]["metrics"],
                             "predictions": r["pooled_hybrid"]["predictions"],
                             "valid": r.get("hybrid_valid"), "models": r.get("models")}
        if "pooled_decision" in r and any(
                rule_weights({"weights": w}) for w in r["pooled_decision"]["weights_per_fold"]):
            out["decision"] = {"run_dir": str(run_dir), "protocol": deep["protocol"] +
                               ", each fold's rule", "n_items": r["pooled_decision"]["n_items"],
                               "metrics": r["pooled_decision"]["metrics"],
                               "predictions": r["pooled_decision"]["predictions"],
                               "rule": r.get("decision")}
        out["model"] = r.get("model", "network")
        if out["model"] == "per fold":            # hybrid in some folds, network in others
            out["per_fold"] = {"run_dir": str(run_dir), "protocol": deep["protocol"],
                               "n_items": r["pooled_model"]["n_items"],
                               "metrics": r["pooled_model"]["metrics"],
                               "models": r.get("models")}
        return out
    r = json.loads((run_dir / "report.json").read_text())
    split = r["evaluated_split"]
    if "hybrid" in r:
        out["hybrid"] = {"run_dir": str(run_dir), "protocol": deep["protocol"],
                         "n_items": r["n_items"], "metrics": r["hybrid"]["metrics"],
                         "predictions": str(run_dir / f"hybrid_{split}_predictions.csv"),
                         "valid": {k: r["hybrid"][k] for k in ("candidates", "hybrid_valid",
                                                               "network_valid")}}
    if "decision" in r and rule_weights(r["decision"]) is not None:
        out["decision"] = {"run_dir": str(run_dir), "protocol": deep["protocol"],
                           "n_items": r["n_items"], "metrics": r["decision"]["metrics"],
                           "rule": {k: v for k, v in r["decision"].items() if k != "metrics"}}
    elif "fitted_weights" in (r.get("decision") or {}):     # set aside by the cross-fit
        out["rule_set_aside"] = {k: r["decision"][k] for k in
                                 ("fitted_weights", "fitted_score", "argmax_score",
                                  "crossfit") if k in r["decision"]}
    out["model"] = r.get("model", "network")
    return out


def _seizure_vs_rest(probs, targets, classes) -> dict:
    ictal = classes.index("ictal")
    pred = np.argmax(probs, axis=1) == ictal
    true = np.asarray(targets) == ictal
    se = float((pred & true).sum() / max(true.sum(), 1))
    sp = float((~pred & ~true).sum() / max((~true).sum(), 1))
    return {"sensitivity": se, "specificity": sp, "n_ictal": int(true.sum()),
            "n_rest": int((~true).sum())}


def _deep_probs(deep: dict, classes) -> tuple[np.ndarray, np.ndarray]:
    import csv
    with open(deep["predictions"], newline="") as f:
        rows = list(csv.reader(f))[1:]
    P = np.array([[float(v) for v in r[1:1 + len(classes)]] for r in rows])
    T = np.array([classes.index(r[1 + len(classes)]) for r in rows])
    return P, T


def _encoder_source_auc(examples, cfg, src, folds, cache: Path) -> dict:
    """How well the hybrid stage's Whisper-encoder embeddings (the recipe's ``hybrid.encoder``)
    tell the two sources apart: 5-fold logistic regression (C 0.003, the stage's), ROC-AUC."""
    if cfg.hybrid.encoder is None:
        return {}
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from biosig.asr.encoder import WhisperEmbedder
    from biosig.metrics import roc_auc
    from biosig.progress import Progress
    ids = [e.record.id for e in examples]
    E = None
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if z["ids"].tolist() == ids:
            E = z["E"]
    if E is None:
        enc = cfg.hybrid.encoder
        emb = WhisperEmbedder(enc.model, compute_type=enc.compute_type, max_s=enc.max_s,
                              layer=enc.layer)
        rows = []
        bar = Progress(len(examples), desc="encoder embeddings (confound)", unit="rec")
        for e in examples:
            sig = e.record.load(cfg.data.root, target_fs=cfg.frontend.target_fs,
                                annotations=None)
            rows.append(emb(sig.data.mean(axis=0), fs=sig.fs))
            bar.update(1)
        bar.close()
        E = np.array(rows)
        np.savez(cache, ids=np.array(ids), E=E)
    P = np.zeros(len(src))
    for k in sorted(set(folds)):
        te = folds == k
        m = make_pipeline(StandardScaler(), LogisticRegression(C=0.003, max_iter=5000))
        P[te] = m.fit(E[~te], src[~te]).predict_proba(E[te])[:, 1]
    return {"source_auc_encoder": roc_auc(src, P)}


def _confound(cfg, work: Path) -> dict:
    """How well the baseline features tell the two sources apart (every development record)."""
    from biosig.metrics import roc_auc
    from biosig.train.data import load_examples
    dcfg = cfg.data.replace(filter={}, label="covid19",
                            label_map={"false": "negative", "true": "positive"})
    examples, _ = load_examples(dcfg)
    cfg = cfg.replace(data=dcfg)
    X, names = _features(examples, cfg,
                         RECIPES["cough_covid_xvector"][2],
                         work / "features_covid19_cough_all.npz")
    src = np.array([1 if e.record.source == "call-center" else 0 for e in examples])
    rng = np.random.default_rng(0)
    folds = rng.permutation(np.arange(len(src)) % 5)
    P = _fold_probs(X, src, folds, 2)
    cov = np.array([e.target for e in examples])
    Pc = _fold_probs(X, cov, folds, 2)
    cc = src == 1
    dur = X[cc, names.index("duration_s")]
    dur_auc = roc_auc(cov[cc], dur)
    layer = cfg.hybrid.encoder.layer if cfg.hybrid.encoder is not None else None
    enc = _encoder_source_auc(examples, cfg, src, folds, work / (
        "encoder_covid19_cough_all" + (f"_layer{layer}" if layer is not None else "") + ".npz"))
    return {"source_auc": roc_auc(src, P[:, 1]), **enc,
            "call_center_covid_auc_from_duration_alone": max(dur_auc, 1 - dur_auc),
            "pooled_covid_auc_both_sources": roc_auc(cov, Pc[:, 1]),
            "n": int(len(src)), "n_call_center": int(src.sum()),
            "positives_by_source": {
                "call-center": f"{int(cov[src == 1].sum())}/{int((src == 1).sum())}",
                "telegram": f"{int(cov[src == 0].sum())}/{int((src == 0).sum())}"},
            "note": "5-fold CV, baseline features; a source AUC near 1 means a pooled COVID "
                    "AUC partly measures the recording channel, so only the within-call-centre "
                    "figure is the result. Within the call centre every negative entry of "
                    "metadata.json carries a 'kind' field and no 'verified' field, every "
                    "positive the reverse: the two classes were probably collected in separate "
                    "campaigns, a confound these data cannot rule out."}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpora", type=Path, required=True)
    ap.add_argument("--runs", type=Path, default=ROOT / "runs")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--run", action="append", default=[], help="RECIPE=RUN_DIR")
    ap.add_argument("--only", default=None, help="comma-separated recipes or corpora")
    ap.add_argument("--tried", action="append", default=[],
                    help="RECIPE=RUN_DIR: an earlier run on the same splits whose stage "
                         "candidates the what-was-tried plot also shows, marked [RUN]")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "recipes.json")
    ap.add_argument("--replot", action="store_true",
                    help="only draw the what-was-tried plots again from --out's stored rows "
                         "(no corpora, runs or baselines needed)")
    a = ap.parse_args(argv)
    if a.replot:
        return _replot(a.out, only=set(a.only.split(",")) if a.only else None)
    work = a.work or (a.runs / "bench_recipes")
    work.mkdir(parents=True, exist_ok=True)
    chosen = dict(r.split("=", 1) for r in a.run)
    only = set(a.only.split(",")) if a.only else None
    out = json.loads(a.out.read_text()) if a.out.is_file() else {}
    out.setdefault("recipes", {})
    import sklearn
    import torch
    out["environment"] = {"machine": platform.machine(), "cpus": os.cpu_count(),
                          "python": platform.python_version(), "torch": torch.__version__,
                          "sklearn": sklearn.__version__}
    for recipe, (corpus, profile, _) in RECIPES.items():
        if only and recipe not in only and corpus not in only:
            continue
        if not (a.corpora / corpus).is_dir():
            print(f"{recipe}: {a.corpora / corpus} not found, skipped", file=sys.stderr)
            continue
        manifest = _manifest(corpus, a.corpora, work)
        cfg = _config(recipe, manifest, a.corpora / corpus)
        classes = list(cfg.data.classes)
        run_dir = (Path(chosen[recipe]) if recipe in chosen
                   else _latest_run(a.runs, recipe, classes))
        entry = {"corpus": corpus, "profile": profile, "classes": classes,
                 "scored_by": cfg.eval.aggregate_by or "record",
                 "target": dict(zip(("metric", "value"), TARGETS[recipe]))}
        base = _baseline(recipe, cfg, work)
        deep = _deep(run_dir) if run_dir is not None else None
        stages = _stages(run_dir, deep) if run_dir is not None else {}
        if recipe == "eeg_seizure_bonn":
            base["seizure_vs_rest"] = _seizure_vs_rest(base["_probs"], base["_targets"],
                                                       classes)
            for m in (deep, stages.get("hybrid")):
                if m is not None and "predictions" not in m:
                    continue
                if m is not None:
                    m["seizure_vs_rest"] = _seizure_vs_rest(*_deep_probs(m, classes), classes)
        if recipe == "cough_covid_xvector":
            entry["confound"] = _confound(cfg, work)
        base.pop("_probs"), base.pop("_targets")
        entry["baseline"], entry["deep"] = base, deep
        entry["hybrid"], entry["decision"] = stages.get("hybrid"), stages.get("decision")
        entry["rule_set_aside"] = stages.get("rule_set_aside")
        entry["model"] = stages.get("model", "network")
        entry["per_fold"] = stages.get("per_fold")
        from biosig.train.runs import git_hash
        entry["measured"] = {"git": git_hash(ROOT), "date": time.strftime("%Y-%m-%d"),
                             "splits": "scikit-learn group splitters (biosig >= 587bb4a)"}
        _confusion_pngs(recipe, entry, a.out.parent / "recipes")
        _tried_png(recipe, entry, a.out.parent / "recipes",
                   [Path(v) for k, v in (t.split("=", 1) for t in a.tried) if k == recipe])
        out["recipes"][recipe] = entry
        _print(recipe, entry)
    from biosig.fileio import write_json_atomic, write_text_atomic
    write_json_atomic(a.out, out)
    md = a.out.with_suffix(".md")
    write_text_atomic(md, _markdown(out))
    print(f"written: {a.out}, {md}")
    return 0


def _replot(out_path: Path, *, only: set | None = None) -> int:
    """Draw each recipe's what-was-tried plot again from the rows stored in ``out_path``."""
    from biosig.fileio import write_json_atomic
    out = json.loads(out_path.read_text())
    for recipe, entry in out.get("recipes", {}).items():
        if only and recipe not in only and entry.get("corpus") not in only:
            continue
        if not entry.get("tried"):
            print(f"{recipe}: no stored rows (measured before they were kept; rerun it)",
                  file=sys.stderr)
            continue
        _draw_tried(recipe, entry, out_path.parent / "recipes")
        print(f"{recipe}: {entry['tried_png']}")
    write_json_atomic(out_path, out)
    return 0


def _cell(m: dict, name: str, *, sep: str = "-", brackets: str = "()") -> str:
    """``value (low-high)``: a metric with its bootstrap CI."""
    v = m["metrics"].get(name)
    ci = (m["metrics"].get("ci") or {}).get(name)
    if v is None:
        return "n/a"
    return f"{v:.3f}" + (f" {brackets[0]}{ci['low']:.3f}{sep}{ci['high']:.3f}{brackets[1]}"
                         if ci else "")


def _markdown(out: dict) -> str:
    """The tables the recipe READMEs quote: headline metrics with 95 % CIs, per-class
    Se/Sp/PPV/F1, time and throughput, deep next to the baseline."""
    lines = ["# Recipes on full corpora (written by `bench/recipes.py`)", ""]
    env = out.get("environment", {})
    lines += [f"Machine: {env.get('cpus')} CPUs ({env.get('machine')}), torch "
              f"{env.get('torch')}, scikit-learn {env.get('sklearn')}. GPU: not run (no GPU "
              f"machine was lent). 95 % bootstrap CIs in brackets.", ""]
    for recipe, e in out["recipes"].items():
        name, target = TARGETS[recipe]
        measured = e.get("measured")
        when = (f"Measured {measured['date']} at commit {measured['git']}, on the "
                f"{measured['splits']}." if measured else
                "**Measured on the previous release's hand-written splits (before 587bb4a) and "
                "not rerun since: `biosig manifest build` and K-fold CV now split with "
                "scikit-learn, so the current code tests on other records.**")
        lines += [f"## {recipe}", "",
                  f"Corpus `{e['corpus']}` (development portion), scored per "
                  f"{e['scored_by']}; target {name} >= {target}. {when}", ""]
        cols = list(dict.fromkeys([name, *(["specificity"] if name == "sensitivity" else []),
                                   "macro_f1", "accuracy", "roc_auc", "kappa"]))
        lines += ["| model | protocol | n | " + " | ".join(cols) + " |",
                  "|---|---|---|" + "---|" * len(cols)]
        rows = _rows(e)
        for label, m in rows:
            if m is None:
                continue
            lines.append(f"| {label} | {m['protocol']} | {m['n_items']} | "
                         + " | ".join(_cell(m, c) for c in cols) + " |")
        lines += ["", "| model | class | Se | Sp | PPV | F1 | support |",
                  "|---|---|---|---|---|---|---|"]
        for label, m in rows:
            if m is None:
                continue
            for c, pc in m["metrics"]["per_class"].items():
                vals = [("n/a" if pc[k] is None else f"{pc[k]:.3f}")   # NaN is null in JSON
                        for k in ("sensitivity", "specificity", "ppv", "f1")]
                lines.append(f"| {label} | {c} | {' | '.join(vals)} | {pc['support']} |")
        for label, m in rows:
            if m is not None and "seizure_vs_rest" in m:
                sv = m["seizure_vs_rest"]
                lines.append(f"\n{label}: seizure vs rest Se {sv['sensitivity']:.3f}, Sp "
                             f"{sv['specificity']:.3f} ({sv['n_ictal']} ictal, {sv['n_rest']} "
                             f"other segments).")
        d = e["deep"]
        if d is not None:
            tp = d.get("throughput") or {}
            lines += ["", f"Deep run `{Path(d['run_dir']).name}`: wall "
                      f"{(d.get('wall_s') or d.get('train_s') or 0) / 60:.1f} min, training "
                      f"loop {(d.get('train_s') or 0) / 60:.1f} min, training "
                      f"{tp.get('train_rec_per_s', float('nan')):.1f} rec/s, inference "
                      f"{tp.get('inference_rec_per_s', float('nan')):.1f} rec/s (whole "
                      f"recordings)."]
        if e.get("rule_set_aside") and e["rule_set_aside"]["crossfit"]["mean"] is not None:
            ra = e["rule_set_aside"]
            c = ra["crossfit"]
            fitted = (f", {ra['fitted_score']:.4f} on the validation it was fitted on"
                      if "fitted_score" in ra else "")
            lines += ["", f"The decision rule tuned on validation (weights "
                      f"{', '.join(f'{w:.3g}' for w in ra['fitted_weights'])}{fitted}) was "
                      f"set aside by `eval.decision_crossfit`: fitted on {c['folds'] - 1} of "
                      f"{c['folds']} "
                      f"parts of validation and scored on the part left out, it reached "
                      f"{c['mean']:.4f} (mean of {len(c['scores'])} shuffles) against "
                      f"arg-max's {ra['argmax_score']:.4f}; the run decides by arg-max."]
        if "confound" in e:
            c = e["confound"]
            lines += ["", f"Confound check: the same baseline features tell call centre from "
                      f"Telegram with ROC-AUC {c['source_auc']:.3f}; COVID ROC-AUC pooled over "
                      f"both sources {c['pooled_covid_auc_both_sources']:.3f} (invalid, shown "
                      f"only as the confound's size); within the call centre, clip duration "
                      f"alone gives {c['call_center_covid_auc_from_duration_alone']:.3f}"
                      + (f"; the hybrid stage's Whisper-encoder embeddings tell the sources "
                         f"apart with ROC-AUC {c['source_auc_encoder']:.3f}"
                         if "source_auc_encoder" in c else "")
                      + f". {c['note']}"]
        pngs = [f"`{m['confusion_png']}`" for _, m in rows if m and m.get('confusion_png')]
        lines += ["", f"Confusion matrices ({', '.join(r[0] for r in rows if r[1])}): "
                  f"{', '.join(pngs)}.", ""]
    return "\n".join(lines) + "\n"


def _confusion_pngs(recipe: str, entry: dict, folder: Path) -> None:
    """``<recipe>_deep_confusion.png`` and ``<recipe>_baseline_confusion.png`` in ``folder``."""
    from biosig.train.plots import plot_confusion
    for who in ("deep", "hybrid", "baseline"):
        m = entry.get(who)
        if m is None:
            continue
        path = folder / f"{recipe.replace(':', '_')}_{who}_confusion.png"
        plot_confusion(m["metrics"]["confusion"], entry["classes"], path,
                       title=f"{recipe}: {who}, {m['n_items']} {entry['scored_by']}s")
        m["confusion_png"] = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) \
            else str(path)


def _stage_candidates(run_dir: Path) -> list[dict]:
    """The stage's candidates of a finished run, with ``valid_mean`` (K-fold) or ``valid`` and
    ``c`` (from the run's config where the report predates it)."""
    import yaml
    if (run_dir / "cv_report.json").is_file():
        rep = json.loads((run_dir / "cv_report.json").read_text())
        cands = [dict(c) for c in (rep.get("hybrid_valid") or {}).get("candidates", [])]
        cfg_path = run_dir / "fold-0" / "config.yaml"
    else:                                     # one train/valid/test run
        rep = json.loads((run_dir / "report.json").read_text())
        cands = [dict(c) for c in (rep.get("hybrid") or {}).get("candidates", [])]
        cfg_path = run_dir / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    listed = (cfg.get("hybrid") or {}).get("candidates") or []
    for c, d in zip(cands, listed):
        c.setdefault("c", d.get("c"))
    return cands


def _tried_png(recipe: str, entry: dict, folder: Path, earlier: list[Path] = ()) -> None:
    """``<recipe>_tried.png``: the validation score of everything the run's stage tried (the
    network alone and each hybrid candidate; mean over folds for K-fold runs) beside the test
    figures of the network, the hybrid, the run's model and the baseline (issue 28: what was
    tried against validation score). The plot's rows are kept in ``entry["tried"]``, from which
    ``--replot`` draws it again without the corpora or the run folders."""
    h = entry.get("hybrid") or {}
    valid = h.get("valid") or {}
    cands = list(valid.get("candidates") or [])
    if h.get("run_dir"):
        cands = _stage_candidates(Path(h["run_dir"]))        # with each candidate's C
    for run_dir in earlier:                   # earlier runs of the same splits
        cands += [dict(c, run=Path(run_dir).name) for c in _stage_candidates(Path(run_dir))]
    if not cands:
        return
    from biosig.train.hybrid import candidate_settings_text

    def label(c):
        w, cc = c.get("network_weight"), c.get("c")
        return (f"{'+'.join(c['inputs'])} / {c['classifier']}"
                + (f" C {cc:g}" if cc is not None else "")
                + candidate_settings_text(c)
                + (f" (w {w:g})" if w is not None else "")
                + (f" [{c['run']}]" if c.get("run") else ""))

    names = ["network alone"] + [label(c) for c in cands]
    scores = ([valid.get("network", valid.get("network_valid"))]
              + [c.get("valid_mean", c.get("valid")) for c in cands])
    cvs = [None] + [c.get("cv_mean", c.get("cv")) for c in cands]
    # an earlier run's candidate with the run's own settings and scores is shown once
    plain = ["network alone"] + [label(dict(c, run=None)) for c in cands]
    rows, seen = [], set()
    for n, p, v, cv in zip(names, plain, scores, cvs):
        if v is not None and n not in seen and (p, v, cv) not in seen:
            seen.update((n, (p, v, cv)))
            rows.append({"label": n, "valid": v, "cv": cv})
    metric = entry["target"]["metric"]
    tests = [(who, entry.get(key)) for who, key in
             (("network", "deep"), ("hybrid", "hybrid"), ("baseline", "baseline"))]
    if entry.get("per_fold"):
        tests.insert(2, ("run's model", entry["per_fold"]))
    if entry.get("decision"):
        tests.insert(len(tests) - 1, ("run's model + rule", entry["decision"]))
    entry["tried"] = {"per_fold": "chosen_per_fold" in valid, "rows": rows,
                      "test": [{"label": w, "value": m["metrics"].get(metric)} for w, m in tests
                               if m is not None and m["metrics"].get(metric) is not None]}
    _draw_tried(recipe, entry, folder)


def _draw_tried(recipe: str, entry: dict, folder: Path) -> None:
    """Draw ``<recipe>_tried.png`` from ``entry["tried"]`` (see :func:`_tried_png`)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tried = entry["tried"]
    keep = [(textwrap.fill(r["label"], 58), r["valid"], r["cv"]) for r in tried["rows"]]
    tests = [(t["label"], t["value"], None) for t in tried["test"]]
    metric = entry["target"]["metric"]
    per_fold = tried["per_fold"]
    lines = sum(n.count("\n") + 1 for n, _, _ in keep)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 0.3 * max(lines, len(keep) * 1.5,
                                                              len(tests)) + 1.8),
                                 gridspec_kw={"width_ratios": [3, 1.4]})

    def bars(ax, rows, color, xlabel, second=None):
        y = np.arange(len(rows))
        twin = second is not None and any(cv is not None for _, _, cv in rows)
        h = 0.4 if twin else 0.8
        off = -h / 2 if twin else 0.0
        ax.barh(y + off, [v for _, v, _ in rows], height=h, color=color,
                label=xlabel if twin else None)
        if twin:
            ax.barh(y + h / 2, [np.nan if cv is None else cv for _, _, cv in rows], height=h,
                    color=second[0], label=second[1])
            ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2,
                      frameon=False)
        ax.set_yticks(y, [n for n, _, _ in rows], fontsize=7)
        ax.invert_yaxis()
        lo = min(min(v, v if cv is None else cv) for _, v, cv in rows)
        ax.set_xlim(max(0.0, lo - 0.05), 1.0)
        ax.set_xlabel(xlabel, fontsize=8)
        for i, (_, v, cv) in enumerate(rows):
            ax.text(v, i + off, f" {v:.3f}", va="center", fontsize=7)
            if twin and cv is not None:
                ax.text(cv, i + h / 2, f" {cv:.3f}", va="center", fontsize=7)

    bars(a1, keep, "#4c72b0", "validation score (the run's train.monitor"
         + (", mean over folds)" if per_fold else ")"),
         second=("#55a868", "cross-validated over the stage's select_splits"
                 + (" (mean over folds)" if per_fold else "")))
    bars(a2, tests, "#dd8452", f"test {metric} (pooled)")
    fig.suptitle(f"{recipe}: what the stage tried (validation) and what it gave (test)",
                 fontsize=10)
    fig.tight_layout()
    path = folder / f"{recipe.replace(':', '_')}_tried.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    entry["tried_png"] = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _rows(e: dict) -> list[tuple[str, dict | None]]:
    """``(label, figures)`` of the table: the network, the hybrid, the run's model under its
    tuned decision rule, the baseline; the run's model is marked."""
    model = e.get("model", "network")
    mark = {"network": "network", "hybrid": "hybrid"}

    def tag(who):
        return " (run's model)" if model == mark.get(who, "") else ""
    return [(f"deep: network{tag('network')}", e["deep"]),
            (f"deep: hybrid{tag('hybrid')}", e.get("hybrid")),
            ("deep: run's model (hybrid or network per fold)", e.get("per_fold")),
            ("deep: run's model, tuned decision rule", e.get("decision")),
            ("baseline (HistGB)", e["baseline"])]


def _print(recipe: str, e: dict) -> None:
    name, target = TARGETS[recipe]
    print(f"\n{recipe} ({e['corpus']}, scored per {e['scored_by']}; target {name} >= {target})")
    for label, m in _rows(e):
        if m is None:
            continue
        extra = ""
        if "seizure_vs_rest" in m:
            s = m["seizure_vs_rest"]
            extra = f"  seizure Se {s['sensitivity']:.3f} Sp {s['specificity']:.3f}"
        head = _cell(m, name, sep=", ", brackets="[]")
        if name == "sensitivity":
            head += f"  specificity {_cell(m, 'specificity', sep=', ', brackets='[]')}"
        mf1 = _cell(m, "macro_f1", sep=", ", brackets="[]")
        print(f"  {label:24s} {name} {head}  macro_f1 {mf1}  n={m['n_items']}  "
              f"[{m['protocol']}]{extra}")
    if e.get("rule_set_aside") and e["rule_set_aside"]["crossfit"]["mean"] is not None:
        c = e["rule_set_aside"]["crossfit"]
        print(f"  the tuned rule was set aside: cross-fitted on validation {c['mean']:.4f} "
              f"against arg-max {e['rule_set_aside']['argmax_score']:.4f} "
              f"({c['folds']} parts, {len(c['scores'])} shuffles)")
    if "confound" in e:
        c = e["confound"]
        print(f"  confound: source AUC {c['source_auc']:.3f} (same features), pooled COVID "
              f"AUC over both sources {c['pooled_covid_auc_both_sources']:.3f}, call-centre "
              f"COVID AUC from clip duration alone "
              f"{c['call_center_covid_auc_from_duration_alone']:.3f}"
              + (f", source AUC from the Whisper encoder {c['source_auc_encoder']:.3f}"
                 if "source_auc_encoder" in c else ""))


if __name__ == "__main__":
    sys.exit(main())
