"""The hybrid stage: a second classifier over a trained network's outputs and hand-crafted
features, and the decision rule tuned on validation.

After the network of a classifier recipe is trained (each fold, for K-fold), every recording of
the run gets three blocks of inputs, all computed the way ``biosig score model`` computes them
(:mod:`biosig.train.inference`: the whole recording loaded at ``frontend.target_fs``, the run's
evaluation windows, probabilities and embeddings averaged over windows):

- ``probs``: the network's class probabilities (as log-probabilities);
- ``embedding``: its pooled segment embedding (models with an ``embed`` method: TDNN);
- ``features``: the whole-recording features of the modality presets
  (:func:`biosig.features.extract_features`), the same sets ``bench/recipes.py``'s classical
  baseline uses;
- ``encoder`` (with ``hybrid.encoder``): a pretrained audio encoder's pooled states
  (:class:`biosig.asr.WhisperEmbedder`: Whisper's encoder, trained on far more audio than
  any of the recipes' corpora).

Each candidate of ``hybrid.candidates`` (which blocks, which classifier: scikit-learn's
``HistGradientBoostingClassifier`` with balanced class weights, a standardised balanced
logistic regression, or a random forest with balanced class weights; with ``bag: N``, N copies
fitted on bootstrap resamples and averaged) is fitted on the **training** split only, with the
network's in-sample outputs there (out-of-fold network outputs would need one more network per
fold); the candidate with the best validation score (``train.monitor``) is the hybrid, and it
is the run's model when its validation score is at least the network's. The network's
validation score is optimistic when its best epoch was chosen on that same split; with
``train.select_frac`` the epoch is chosen on a ``select`` split carved from train instead (the
classifier is then fitted on train and select together), so neither score was selected on
valid. With ``hybrid.refit`` the chosen candidate is then fitted again on the training and
validation splits together (as the classical baseline is); its validation outputs from the fit
on train alone stay the ones the adoption, the decision rule and the calibration are fitted on
(out of sample). A candidate with ``network_weight`` w averages its classifier's probabilities
with the network's (``w * p_network + (1 - w) * p_classifier``): a stacked ensemble of network
and boosting that needs no network outputs on the training split, so the in-sample optimism of
the network's training-split outputs cannot mislead it. With ``hybrid.select_folds`` K the
choice among candidates is made by K-fold cross-validation instead (:func:`cross_validated_scores`
over the rows of ``hybrid.select_splits``, grouped by patient), which scores each candidate on
more rows than the validation split alone holds; the adoption over the network then compares
the two on the scored rows whose network outputs are out of sample.

The decision rule (``eval.decision: tuned``): per-class multiplicative weights on the
probabilities, ``argmax(p * w)``, chosen on the validation predictions to maximise the
challenge metric (CirCor 2022's weighted accuracy, CinC 2017's F1) or ``train.monitor``.
Applying it is the same as re-weighting the probabilities and renormalising them
(:func:`apply_decision`), so every arg-max metric of :mod:`biosig.train.evaluation` scores it.

This module holds the math (pure functions on arrays) and the small file formats; the hooks
that call it live in :mod:`biosig.train.engine` (training) and :mod:`biosig.train.inference`
(scoring).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
from sklearn.ensemble import (
    BaggingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from biosig.errors import BiosigError, ConfigError, InputError
from biosig.features import extract_features
from biosig.fileio import atomic_path, jsonable, write_text_atomic
from biosig.manifests.splits import group_kfold, group_of
from biosig.progress import Progress
from biosig.signal import as_signal
from biosig.train.config import HybridConfig
from biosig.train.data import fitted_targets, read_signal
from biosig.train.engine import EvalOutput, scored_items, write_predictions
from biosig.train.evaluation import (
    CALIBRATION_FILE,
    fit_calibration,
    metric_functions,
    metrics_with_ci,
    read_predictions,
)

__all__ = ["HYBRID_FILE", "HYBRID_MODEL_FILE", "DECISION_FILE", "INPUT_BLOCKS",
           "feature_sets", "recording_features", "assemble_inputs", "make_classifier",
           "predict_proba", "stage_predict", "load_stages", "stage_probs", "RunStages",
           "finish_stages", "pooled_stage_report", "stage_settings", "same_stage_settings",
           "fit_candidates", "cross_validated_scores", "CrossValidated", "best_candidate",
           "selection_text",
           "CANDIDATE_KEYS", "candidate_entry", "candidate_settings_text", "HybridFit",
           "save_stage", "load_stage",
           "fit_decision", "apply_decision", "rule_weights", "save_decision", "load_decision",
           "decision_metric_name", "AdoptedPredictions", "AdoptedModel", "adopted_model"]

log = logging.getLogger("biosig.train")

#: the fitted stage (joblib) and its description (JSON), in a run (or fold) folder
HYBRID_MODEL_FILE = "hybrid.joblib"
HYBRID_FILE = "hybrid.json"
#: the decision rule tuned on validation
DECISION_FILE = "decision.json"
#: the input blocks a candidate can name
INPUT_BLOCKS = ("probs", "embedding", "features", "encoder")
#: the keys of a candidate as ``hybrid.json``, ``report.json`` and the pooled report list it
CANDIDATE_KEYS = ("inputs", "classifier", "network_weight", "c", "bag", "histgb")


# --------------------------------------------------------------------------- features

def feature_sets(cfg) -> list[tuple[str, dict, tuple[str, ...] | None]]:
    """``[(preset, overrides, kept name prefixes or None)]`` of ``hybrid.features``."""
    return [(s.preset, dict(s.overrides), tuple(s.keep) if s.keep is not None else None)
            for s in cfg.hybrid.features]


def recording_features(x: np.ndarray, *, fs: float, sets) -> dict[str, float]:
    """Whole-recording hand-crafted features of one signal.

    Parameters
    ----------
    x : np.ndarray [shape=(n_samples,)]
        One channel at ``fs``.
    fs : float > 0
        Sampling rate in Hz.
    sets : list of (preset, overrides, kept prefixes or None)
        As :func:`feature_sets` returns; a name already taken by an earlier set is prefixed
        with ``<preset>_`` (as ``bench/recipes.py`` names them).

    Returns
    -------
    dict
        ``name -> value`` (NaN where a feature is undefined).
    """
    sig = as_signal(np.asarray(x, dtype=np.float64), fs)
    out: dict[str, float] = {}
    for preset, over, keep in sets:
        g = extract_features(sig, modality=preset, **over)
        if keep is not None:
            g = {k: v for k, v in g.items() if k.startswith(keep)}
        out.update({(k if k not in out else f"{preset}_{k}"): float(v) for k, v in g.items()})
    return out


def feature_matrix(rows: list[dict], names: list[str] | None = None):
    """``(X (n, n_names), names)``: rows of :func:`recording_features` in a fixed column order
    (``names``, default: the sorted names of the first row); missing values are NaN."""
    if names is None:
        names = sorted(rows[0]) if rows else []
    X = np.array([[r.get(k, np.nan) for k in names] for r in rows], dtype=np.float64)
    return X.reshape(len(rows), len(names)), list(names)


def assemble_inputs(blocks: dict, inputs) -> np.ndarray:
    """The second stage's input matrix: the named blocks side by side.

    Parameters
    ----------
    blocks : dict
        ``probs`` (n, n_classes), ``embedding`` (n, dim), ``features`` (n, n_features); only
        the named ones are needed. Probabilities enter as log-probabilities (clipped at 1e-6).
    inputs : sequence of {"probs", "embedding", "features"}

    Returns
    -------
    np.ndarray [shape=(n, sum of the blocks' widths)]
    """
    parts = []
    for name in inputs:
        if name not in INPUT_BLOCKS:
            raise ConfigError(f"hybrid input is {name!r}, expected one of {INPUT_BLOCKS}")
        b = blocks.get(name)
        if b is None:
            raise ConfigError(f"hybrid input {name!r} is not available for this run")
        b = np.asarray(b, dtype=np.float64)
        parts.append(np.log(np.clip(b, 1e-6, 1.0)) if name == "probs" else b)
    n = {p.shape[0] for p in parts}
    if len(n) != 1:
        raise ValueError(f"hybrid input blocks have different numbers of rows: {sorted(n)}")
    return np.concatenate(parts, axis=1)


# ------------------------------------------------------------------------- classifiers

#: trees of the ``forest`` classifier
FOREST_TREES = 500


def make_classifier(kind: str, *, seed: int = 0, max_iter: int = 300,
                    learning_rate: float = 0.05, max_leaf_nodes: int = 31,
                    max_features: float = 1.0, l2_regularization: float = 0.0, c: float = 1.0,
                    bag: int | None = None):
    """An unfitted second-stage classifier: ``histgb`` (HistGradientBoosting, balanced class
    weights, missing values handled natively; ``max_iter`` trees of at most ``max_leaf_nodes``
    leaves at ``learning_rate``, each split among a ``max_features`` share of the features,
    with ``l2_regularization``; the defaults are the baseline's settings), ``logistic``
    (median imputation, standardisation, balanced logistic regression with inverse
    regularisation ``c``) or ``forest`` (a random forest of :data:`FOREST_TREES` trees,
    class weights balanced in each bootstrap sample, missing values handled natively).

    With ``bag`` N (>= 2), N copies of it, each fitted on its own bootstrap resample of the
    training rows (seeds from ``seed``), with their probabilities averaged."""
    if kind == "histgb":
        clf = HistGradientBoostingClassifier(class_weight="balanced", random_state=seed,
                                             max_iter=max_iter, learning_rate=learning_rate,
                                             max_leaf_nodes=max_leaf_nodes,
                                             max_features=max_features,
                                             l2_regularization=l2_regularization)
    elif kind == "logistic":
        clf = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                            StandardScaler(),
                            LogisticRegression(C=c, class_weight="balanced", max_iter=5000))
    elif kind == "forest":
        clf = RandomForestClassifier(n_estimators=FOREST_TREES,
                                     class_weight="balanced_subsample", random_state=seed)
    else:
        raise ConfigError(f"hybrid classifier is {kind!r}, expected histgb, logistic or "
                          "forest")
    if bag is None:
        return clf
    if bag < 2:
        raise ConfigError(f"hybrid bag is {bag}; expected at least 2 (or none)")
    return BaggingClassifier(clf, n_estimators=bag, random_state=seed)


def predict_proba(model, X: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n, n_classes)`` probabilities of a fitted classifier, zero for classes it never saw."""
    P = np.zeros((X.shape[0], n_classes))
    P[:, np.asarray(model.classes_, dtype=np.int64)] = model.predict_proba(X)
    return P


def stage_predict(model, blocks: dict, inputs, n_classes: int, *,
                  network_weight: float | None = None) -> np.ndarray:
    """``(n, n_classes)`` probabilities of a fitted stage: the classifier's on the named input
    blocks, averaged with the network's (``blocks["probs"]``) as ``w * p_network + (1 - w) *
    p_classifier`` when ``network_weight`` w is given."""
    P = predict_proba(model, assemble_inputs(blocks, inputs), n_classes)
    if network_weight is None:
        return P
    return network_weight * np.asarray(blocks["probs"], float) + (1 - network_weight) * P


@dataclass
class HybridFit:
    """What :func:`fit_candidates` chose: ``index`` into the candidates, the fitted ``model``,
    its ``inputs`` and ``classifier``, the validation ``scores`` of every candidate (None for
    a skipped one) and why candidates were skipped (``skipped``)."""

    index: int
    model: object
    inputs: list[str]
    classifier: str
    scores: list[float | None]
    skipped: dict[int, str] = field(default_factory=dict)
    network_weight: float | None = None


def fit_candidates(train_blocks: dict, y_train, valid_blocks: dict, candidates, *,
                   n_classes: int, score, seed: int = 0, chosen: int | None = None,
                   **classifier_kw) -> HybridFit:
    """Fit every candidate on the training rows and keep the best on validation (or
    ``chosen``).

    Parameters
    ----------
    train_blocks, valid_blocks : dict
        Input blocks (see :func:`assemble_inputs`) of the training and validation rows; a
        block that is None (no embedding) skips the candidates that need it.
    y_train : array of int [shape=(n_train,)]
    candidates : sequence
        Each with ``inputs`` (block names), ``classifier`` (``histgb``, ``logistic`` or
        ``forest``) and optionally ``network_weight``, ``c``, ``histgb`` and ``bag``.
    n_classes : int
    score : callable
        ``score(valid_probs (n_valid, n_classes)) -> float``, higher is better (the
        validation metric, with any per-patient aggregation inside it).
    seed : int
    chosen : int, optional
        The candidate to keep, chosen otherwise (``hybrid.select_folds``); every candidate is
        still fitted and scored on validation.
    **classifier_kw
        Passed to :func:`make_classifier`.

    Returns
    -------
    HybridFit
        Ties go to the earlier candidate.
    """
    y = np.asarray(y_train, dtype=np.int64)
    models, scores, skipped = {}, [], {}
    for i, cand in enumerate(candidates):
        if (why := _skip_reason(cand, train_blocks)) is not None:
            skipped[i] = why
            scores.append(None)
            continue
        w = getattr(cand, "network_weight", None)
        models[i] = _candidate_classifier(cand, seed=seed, **classifier_kw)
        models[i].fit(assemble_inputs(train_blocks, cand.inputs), y)
        scores.append(float(score(stage_predict(models[i], valid_blocks, cand.inputs,
                                                n_classes, network_weight=w))))
    i = best_candidate(scores, skipped) if chosen is None else chosen
    return HybridFit(i, models[i], list(candidates[i].inputs), candidates[i].classifier,
                     scores, skipped, getattr(candidates[i], "network_weight", None))


@dataclass
class CrossValidated:
    """What :func:`cross_validated_scores` found: each candidate's ``scores`` and its
    out-of-fold ``probs`` of the scored rows, in row order (None for a skipped candidate),
    and why candidates were ``skipped``."""

    scores: list[float | None]
    probs: list[np.ndarray | None]
    skipped: dict[int, str] = field(default_factory=dict)


def cross_validated_scores(blocks: dict, y, candidates, *, folds, n_classes, score,
                           seed: int = 0, desc: str | None = None, **classifier_kw
                           ) -> CrossValidated:
    """Each candidate's score out of fold (``hybrid.select_folds``).

    Parameters
    ----------
    blocks : dict
        Input blocks of every row of the stage (see :func:`assemble_inputs`).
    y : array of int [shape=(n_rows,)]
        The classes the candidates are fitted on.
    candidates : sequence
        As for :func:`fit_candidates`.
    folds : array of int [shape=(n_rows,)]
        Fold ``0 .. K - 1`` of each row that is scored, -1 for a row that is only fitted on.
        Fold k's rows are predicted by the candidate fitted on every row outside fold k.
    n_classes : int
    score : callable
        ``score(probs (n_scored, n_classes)) -> float`` of the scored rows' out-of-fold
        probabilities, in row order; higher is better.
    seed : int
    desc : str, optional
        Show progress (one step per fit) under this name.
    **classifier_kw
        Passed to :func:`make_classifier`.

    Returns
    -------
    CrossValidated
        A candidate that needs a block that is None is skipped.
    """
    y = np.asarray(y, dtype=np.int64)
    folds = np.asarray(folds, dtype=np.int64)
    scored = folds >= 0
    ks = np.unique(folds[scored])
    bar = Progress(len(candidates) * len(ks), desc=desc or "", unit="fit",
                   enabled=desc is not None)
    res = CrossValidated([], [])
    for i, cand in enumerate(candidates):
        if (why := _skip_reason(cand, blocks)) is not None:
            res.skipped[i] = why
            res.scores.append(None)
            res.probs.append(None)
            bar.update(len(ks))
            continue
        X = assemble_inputs(blocks, cand.inputs)
        w = getattr(cand, "network_weight", None)
        oof = np.zeros((len(y), n_classes))
        for k in ks:
            held = folds == k
            model = _candidate_classifier(cand, seed=seed, **classifier_kw)
            model.fit(X[~held], y[~held])
            rows = {b: (None if v is None else np.asarray(v)[held]) for b, v in blocks.items()}
            oof[held] = stage_predict(model, rows, cand.inputs, n_classes, network_weight=w)
            bar.update(1)
        res.probs.append(oof[scored])
        res.scores.append(float(score(oof[scored])))
    bar.close()
    return res


def best_candidate(scores, skipped: dict[int, str] | None = None) -> int:
    """Index of the highest score (None, a skipped candidate, and NaN left out); ties go to
    the earlier candidate, and so does a choice among NaN scores only. A ``ConfigError``
    (with the reasons in ``skipped``) when every candidate was skipped."""
    if all(s is None for s in scores):
        raise ConfigError("hybrid.candidates: every candidate needs an input this model does "
                          f"not give ({'; '.join((skipped or {}).values())})")
    finite = [(s, -i) for i, s in enumerate(scores) if s is not None and np.isfinite(s)]
    if not finite:
        return next(i for i, s in enumerate(scores) if s is not None)
    return -max(finite)[1]


def _skip_reason(cand, blocks: dict) -> str | None:
    """Why a candidate cannot be fitted on these blocks (one it needs is None), or None."""
    missing = [b for b in cand.inputs if blocks.get(b) is None]
    return f"no {', '.join(missing)} for this model" if missing else None


def _candidate_classifier(cand, *, seed: int = 0, **classifier_kw):
    """:func:`make_classifier` for one candidate (its own ``c`` and ``histgb`` settings, where
    it sets them, and its ``bag``)."""
    own = {"c": getattr(cand, "c", None)}
    if getattr(cand, "histgb", None) is not None:
        own.update(cand.histgb.model_dump())
    classifier_kw = {**classifier_kw, **{k: v for k, v in own.items() if v is not None}}
    return make_classifier(cand.classifier, seed=seed, bag=getattr(cand, "bag", None),
                           **classifier_kw)


def refit_candidate(cand, blocks: list[dict], targets: list, *, seed: int = 0,
                    **classifier_kw):
    """The candidate fitted again on several splits' rows together (``hybrid.refit``).

    Parameters
    ----------
    cand
        The chosen candidate (``inputs``, ``classifier``, ``c``).
    blocks : list of dict
        Each split's input blocks (see :func:`assemble_inputs`).
    targets : list of array of int
        Each split's targets.
    """
    X = np.concatenate([assemble_inputs(b, cand.inputs) for b in blocks])
    y = np.concatenate([np.asarray(t, dtype=np.int64) for t in targets])
    return _candidate_classifier(cand, seed=seed, **classifier_kw).fit(X, y)


def save_stage(folder, fit: HybridFit, description: dict) -> None:
    """``hybrid.joblib`` (the fitted classifier with its inputs) and ``hybrid.json`` (the
    description: candidates and their validation scores, the choice, feature names, ...)."""
    folder = Path(folder)
    with atomic_path(folder / HYBRID_MODEL_FILE) as tmp:
        joblib.dump({"model": fit.model, "inputs": fit.inputs, "classifier": fit.classifier,
                     "network_weight": fit.network_weight,
                     "feature_names": description.get("feature_names"),
                     "encoder": description.get("encoder")}, tmp)
    write_text_atomic(folder / HYBRID_FILE,
                      json.dumps(jsonable(description), indent=2) + "\n")


def load_stage(folder) -> tuple[dict, dict] | None:
    """``(stage, description)`` of a run (fold) folder, or None when it has no hybrid."""
    folder = Path(folder)
    if not (folder / HYBRID_FILE).is_file():
        return None
    desc = json.loads((folder / HYBRID_FILE).read_text(encoding="utf-8"))
    path = folder / HYBRID_MODEL_FILE
    if not path.is_file():
        raise InputError(path, f"missing, but {HYBRID_FILE} describes a hybrid stage")
    return joblib.load(path), desc


# ------------------------------------------------------------------------ decision rule

def decision_metric_name(cfg) -> str:
    """What ``eval.decision: tuned`` maximises: ``eval.decision_metric``, else the challenge
    metric (``weighted_accuracy``, ``cinc2017_f1``, ``macc``, ``icbhi_score``), else
    ``train.monitor``."""
    if cfg.eval.decision_metric is not None:
        return cfg.eval.decision_metric
    return {"physionet2022": "weighted_accuracy", "cinc2017": "cinc2017_f1",
            "physionet2016": "macc", "icbhi2017": "icbhi_score"}.get(cfg.eval.challenge,
                                                                    cfg.train.monitor)


def apply_decision(probs, weights) -> np.ndarray:
    """Probabilities re-weighted by the decision rule and renormalised: their arg-max is the
    rule's decision ``argmax(p * w)``.

    Parameters
    ----------
    probs : array [shape=(n, n_classes)]
    weights : array [shape=(n_classes,)], > 0
    """
    p = np.asarray(probs, dtype=float) * np.asarray(weights, dtype=float)[None, :]
    return p / np.maximum(p.sum(axis=1, keepdims=True), 1e-300)


def fit_decision(targets, probs, metric, *, grid=None, crossfit: int = 0,
                 seed: int = 0) -> dict:
    """Per-class weights ``w`` (``w[0] = 1``) maximising ``metric(targets, argmax(p * w))``.

    An exhaustive search over ``grid`` (log-spaced factors, default 2**-4 ... 2**4 in 33 steps)
    for the other classes' weights; among equal scores the rule closest to arg-max (smallest
    sum of ``|log w|``) wins, so a flat optimum keeps arg-max.

    With ``crossfit`` K >= 2 the rule must also earn its place out of sample: the items are
    split into K stratified parts (three times, shuffled with ``seed``, ``seed + 1``,
    ``seed + 2``); each part is decided by the rule fitted on the other K-1 and the pooled
    decisions are scored. The rule fitted on all items is kept only when the mean of the
    three cross-fitted scores beats arg-max's; otherwise the weights are all 1 (arg-max). A
    search over three or more weights finds a rule that fits a few hundred validation items
    by chance; this tells one that generalises from one that does not.

    Parameters
    ----------
    targets : array of int [shape=(n,)]
    probs : array [shape=(n, n_classes)]
    metric : callable
        ``metric(targets, probs) -> float`` of the arg-max of ``probs`` (higher is better), as
        :func:`biosig.train.evaluation.metric_functions` gives.
    grid : array, optional
        The weights tried for each class.

    crossfit : int >= 0
        Parts of the out-of-sample check (0: none).
    seed : int
        Shuffles of the check.

    Returns
    -------
    dict
        ``weights`` (list), ``score`` (with the rule), ``argmax_score`` (without it), ``n``;
        with ``crossfit``, ``crossfit`` (``folds``, ``scores`` of the three shuffles, their
        ``mean``, ``kept``) and, where the rule is not kept, ``fitted_weights`` and
        ``fitted_score`` (the rule that was set aside) with ``weights`` all 1 and ``score``
        the arg-max score.
    """
    t = np.asarray(targets, dtype=np.int64)
    p = np.asarray(probs, dtype=float)
    base = float(metric(t, p))
    best_w, best_s = _search_weights(t, p, metric, grid, base)
    out = {"rule": "argmax(p * weights)", "weights": best_w.tolist(), "score": best_s,
           "argmax_score": base, "n": int(len(t))}
    if crossfit:
        if crossfit < 2:
            raise ConfigError(f"crossfit is {crossfit}, expected 0 (off) or at least 2")
        parts = min(int(crossfit), len(t))          # a tiny validation split: fewer parts
        scores = ([_crossfit_score(t, p, metric, grid, folds=parts, seed=seed + r)
                   for r in range(3)] if parts >= 2 else [])
        mean = float(np.mean(scores)) if scores else None   # under 2 items: unchecked, set aside
        kept = mean is not None and mean > base + 1e-12
        out["crossfit"] = {"folds": parts, "scores": scores, "mean": mean, "kept": kept}
        if not kept:
            out.update(fitted_weights=out["weights"], fitted_score=out["score"],
                       weights=[1.0] * p.shape[1], score=base)
    return out


def _search_weights(t, p, metric, grid, base: float) -> tuple[np.ndarray, float]:
    """The exhaustive search of :func:`fit_decision`. Many weights give the same decisions;
    the metric (of the arg-max) is computed once per distinct set of decisions."""
    k = p.shape[1]
    grid = np.exp2(np.linspace(-4, 4, 33)) if grid is None else np.asarray(grid, float)
    best_w, best_s, best_d = np.ones(k), base, 0.0
    scores: dict[bytes, float] = {}
    rests = itertools.product(grid, repeat=k - 1)
    while chunk := list(itertools.islice(rests, 1024)):
        ws = np.concatenate([np.ones((len(chunk), 1)), np.array(chunk)], axis=1)
        decided = np.argmax(p[None, :, :] * ws[:, None, :], axis=2)       # (weights, items)
        for w, dec in zip(ws, decided):
            key = dec.tobytes()
            s = scores.get(key)
            if s is None:
                s = scores[key] = float(metric(t, apply_decision(p, w)))
            d = float(np.abs(np.log(w)).sum())
            if s > best_s + 1e-12 or (abs(s - best_s) <= 1e-12 and d < best_d):
                best_w, best_s, best_d = w, s, d
    return best_w, best_s


def _crossfit_score(t, p, metric, grid, *, folds: int, seed: int) -> float:
    """The metric of decisions each made by a rule fitted without its own part."""
    counts = np.bincount(t)
    strat = counts[counts > 0].min() >= folds
    split = (StratifiedKFold(folds, shuffle=True, random_state=seed).split(p, t) if strat
             else KFold(folds, shuffle=True, random_state=seed).split(p))
    decided = np.empty_like(p)
    for fit_idx, held in split:
        w, _ = _search_weights(t[fit_idx], p[fit_idx], metric, grid,
                               float(metric(t[fit_idx], p[fit_idx])))
        decided[held] = apply_decision(p[held], w)
    return float(metric(t, decided))


def rule_weights(decision: dict | None) -> list[float] | None:
    """A decision rule's weights, or None where it decides as arg-max does (no rule, or one
    whose weights are all 1: a flat optimum, or a rule the cross-fitted check set aside)."""
    w = (decision or {}).get("weights")
    return None if w is None or all(float(x) == 1.0 for x in w) else [float(x) for x in w]


def save_decision(folder, decision: dict) -> None:
    """``decision.json`` in a run (fold) folder."""
    write_text_atomic(Path(folder) / DECISION_FILE,
                      json.dumps(jsonable(decision), indent=2) + "\n")


def load_decision(folder) -> dict | None:
    """A run's ``decision.json``, or None when it has none (arg-max)."""
    path = Path(folder) / DECISION_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


# ------------------------------------------------------------------ run-folder hooks
# Called by biosig.train.engine (training) and biosig.train.inference (scoring): per-recording
# network outputs through the scoring path, so training and `biosig score model` agree.

_WAVES: dict = {}
_FEATS: dict = {}
_WAVE_BYTES = [0]
_WAVE_BUDGET = 1 << 30          # bytes of waveforms kept between folds of one process


def _waveform(rec, cfg) -> np.ndarray:
    dcfg = cfg.data
    key = (rec.id, rec.path, str(dcfg.root), repr(cfg.frontend), str(dcfg.channel))
    x = _WAVES.get(key)
    if x is None:
        x = read_signal(rec, root=dcfg.root, frontend=cfg.frontend, channel=dcfg.channel).data[0]
        if _WAVE_BYTES[0] + x.nbytes <= _WAVE_BUDGET:
            _WAVES[key] = x
            _WAVE_BYTES[0] += x.nbytes
    return x


def _safe_features(x: np.ndarray, fs: float, sets, what) -> dict:
    """:func:`recording_features`, or none (NaN features, which both classifiers take) for a
    recording the presets cannot describe (too short, flat), as ``bench/recipes.py`` does."""
    try:
        return recording_features(x, fs=fs, sets=sets)
    except BiosigError as exc:
        log.warning("hybrid features of %s: %s (left missing)", what, exc)
        return {}


def _features_of(key, x: np.ndarray, fs: float, sets) -> dict:
    k = (key, fs, repr(sets))
    if k not in _FEATS:
        _FEATS[k] = _safe_features(x, fs, sets, key[0])
    return _FEATS[k]


_EMBEDDERS: dict = {}
_ENCODED: dict = {}


def encoder_spec(cfg) -> dict | None:
    """``hybrid.encoder`` as a plain dict (what a stage records), or None."""
    enc = cfg.hybrid.encoder
    return None if enc is None else jsonable(enc.model_dump())


def _embedder(spec: dict):
    max_s, layer = spec.get("max_s"), spec.get("layer")
    key = (spec["model"], spec["compute_type"], max_s, layer)
    if key not in _EMBEDDERS:
        from biosig.asr.encoder import WhisperEmbedder  # ctranslate2: the asr extra
        _EMBEDDERS[key] = WhisperEmbedder(spec["model"], compute_type=spec["compute_type"],
                                          max_s=max_s, layer=layer)
    return _EMBEDDERS[key]


def _safe_encoded(x: np.ndarray, fs: float, spec: dict, what) -> np.ndarray:
    """One recording's encoder embedding, or NaN where the encoder cannot take the recording
    (too short), which both classifiers accept (as :func:`_safe_features`)."""
    emb = _embedder(spec)
    try:
        return emb(x, fs=fs)
    except InputError as exc:
        log.warning("hybrid encoder input of %s: %s (left missing)", what, exc)
        return np.full(emb.dim, np.nan)


def _encoded_of(key, x: np.ndarray, fs: float, spec: dict) -> np.ndarray:
    """:func:`_safe_encoded`, cached in the process (the folds of a K-fold run share
    recordings), as :func:`_features_of`."""
    k = (key, float(fs), repr(sorted(spec.items())))
    if k not in _ENCODED:
        _ENCODED[k] = _safe_encoded(x, fs, spec, key[0])
    return _ENCODED[k]


def _blocks_one(run, x: np.ndarray, *, feats: dict, names, need_embedding: bool,
                encoded: np.ndarray | None = None) -> dict:
    """One recording's input blocks (each with one row); ``encoded``: its encoder embedding
    (None: no such block)."""
    from biosig.train.inference import (  # cycle: inference imports hybrid
        embed_waveform,
        predict_waveform,
    )
    out = {"probs": predict_waveform(run, x)[None],                  # (1, n_classes)
           "features": feature_matrix([feats], names)[0]}             # (1, n_features)
    out["embedding"] = (embed_waveform(run, x)[None]
                        if need_embedding and hasattr(run.model, "embed") else None)
    out["encoder"] = None if encoded is None else np.asarray(encoded)[None]
    return out


def _needs_embedding(cfg) -> bool:
    return any("embedding" in c.inputs for c in cfg.hybrid.candidates)


def _needs_encoder(cfg) -> bool:
    return any("encoder" in c.inputs for c in cfg.hybrid.candidates)


def _split_blocks(run, cfg, examples, *, desc: str) -> tuple[dict, np.ndarray]:
    """Input blocks (probs, embedding) and targets of ``examples``; their features go to the
    in-process cache, from which :func:`_reorder` builds the ``features`` block."""
    sets = feature_sets(cfg)
    need_emb = _needs_embedding(cfg) and hasattr(run.model, "embed")
    enc = encoder_spec(cfg) if _needs_encoder(cfg) else None
    probs, embs, encs = [], [], []
    bar = Progress(len(examples), desc=desc, unit="rec")
    for e in examples:
        x = _waveform(e.record, cfg)
        key = (e.record.id, e.record.path)
        _features_of(key, x, cfg.frontend.target_fs, sets)
        b = _blocks_one(run, x, feats={}, names=[], need_embedding=need_emb,
                        encoded=(None if enc is None else
                                 _encoded_of(key, x, cfg.frontend.target_fs, enc)))
        probs.append(b["probs"][0])
        if need_emb:
            embs.append(b["embedding"][0])
        if enc is not None:
            encs.append(b["encoder"][0])
        bar.update(1)
    bar.close()
    k = len(cfg.data.classes)
    blocks = {"probs": np.array(probs).reshape(-1, k), "features": None,  # see _reorder
              "embedding": np.array(embs) if need_emb else None,
              "encoder": np.array(encs) if enc is not None else None}
    return blocks, np.array([e.target for e in examples], dtype=np.int64)


def same_stage_settings(stored: dict | None, cfg) -> bool:
    """Whether a finished run's ``stage_settings`` are what ``cfg`` asks for. A stored
    ``hybrid`` block is read through today's schema first, so a setting added since (with its
    default) does not make an older run's stage stale."""
    want = stage_settings(cfg)
    if stored is None or want is None or "hybrid" not in stored:
        return stored == want
    try:
        filled = HybridConfig.model_validate(stored["hybrid"]).model_dump()
    except ValueError:                        # not today's schema: stale
        return False
    return jsonable({**stored, "hybrid": filled}) == want


def stage_settings(cfg) -> dict | None:
    """What a finished run's stages were made with (``report.json``'s ``stage_settings``): a
    resumed run whose config asks for other settings runs them again without training."""
    if not cfg.hybrid.enabled and cfg.eval.decision == "argmax":
        return None
    settings = {"hybrid": cfg.hybrid.model_dump(), "decision": cfg.eval.decision,
                "decision_metric": cfg.eval.decision_metric}
    if cfg.eval.decision_crossfit:            # absent when off: older runs stay finished
        settings["decision_crossfit"] = cfg.eval.decision_crossfit
    return jsonable(settings)


def _scored(cfg, probs, targets, examples):
    return scored_items(cfg, EvalOutput(probs, targets, float("nan")), examples)


def _write_csv(path, cfg, ids, probs, targets) -> None:
    write_predictions(path, cfg, ids, probs, targets)


def finish_stages(cfg, model, frontend, ds, out, *, device, report: dict) -> dict:
    """The hybrid stage and the decision rule of one trained network (one fold).

    Writes ``hybrid.joblib``, ``hybrid.json``, ``hybrid_valid_predictions.csv`` and
    ``hybrid_<split>_predictions.csv`` (``hybrid.enabled``), ``decision.json``
    (``eval.decision: tuned``) and, when the hybrid is adopted, ``calibration.json`` refitted
    on its validation predictions.

    Returns
    -------
    dict
        Entries for ``report.json``: ``hybrid`` (candidates with validation scores and, with
        ``hybrid.select_folds``, out-of-fold ones; the chosen one; the network's validation
        score by the same path; ``adopted_on``: the two scores the adoption compared, and on
        which rows; test metrics with CIs),
        ``model`` (``hybrid`` or ``network``: the run's model), ``decision`` and
        ``stage_settings``.
    """
    out = Path(out)
    if stage_settings(cfg) is None:           # none configured: no stale stage files either
        for name in (HYBRID_FILE, HYBRID_MODEL_FILE, DECISION_FILE):
            (out / name).unlink(missing_ok=True)
        return {}
    classes = list(cfg.data.classes)
    fns = metric_functions(cfg)
    split = report["evaluated_split"]
    entries: dict = {"stage_settings": stage_settings(cfg), "model": "network"}
    valid_ex = ds["valid"].examples
    test_ex = ds[split].examples
    net_vp, net_vt, _ = read_predictions(out / "valid_predictions.csv", classes)
    net_tp, net_tt, _ = read_predictions(out / f"{split}_predictions.csv", classes)
    chosen_vp, chosen_vt, chosen_tp, chosen_tt = net_vp, net_vt, net_tp, net_tt
    if cfg.hybrid.enabled:
        if cfg.train.monitor not in fns:
            raise ConfigError(f"train.monitor is {cfg.train.monitor!r}; not a metric of this "
                              "config")
        from biosig.train.inference import LoadedRun  # cycle: inference imports hybrid
        run = LoadedRun(out, cfg, model.eval(), frontend, classes, device)
        # the classifier is fitted on train and (train.select_frac) the split the network's
        # best epoch was chosen on; valid is kept for the choice among candidates
        train_ex = [e for s in ("train", "select") if s in ds for e in ds[s].examples]
        tr, ytr_scored = _split_blocks(run, cfg, train_ex, desc="hybrid inputs (train)")
        va, yva = _split_blocks(run, cfg, valid_ex, desc="hybrid inputs (valid)")
        # fitted on data.train_label where set; scored (yva, yte) on data.label
        ytr = np.array(fitted_targets(train_ex), dtype=np.int64)
        yva_fit = np.array(fitted_targets(valid_ex), dtype=np.int64)
        te, yte = _split_blocks(run, cfg, test_ex, desc=f"hybrid inputs ({split})")
        # one column order for every split: the training split's names
        tr_names = _feature_names(cfg, train_ex)
        for blocks, exs in ((tr, train_ex), (va, valid_ex), (te, test_ex)):
            blocks["features"] = _reorder(cfg, exs, tr_names)
        monitor = fns[cfg.train.monitor]
        score = _scorer(cfg, monitor, yva, valid_ex)
        net_valid = float(score(va["probs"]))
        clf_kw = {"seed": cfg.seed, "max_iter": cfg.hybrid.max_iter,
                  "learning_rate": cfg.hybrid.learning_rate,
                  "max_leaf_nodes": cfg.hybrid.max_leaf_nodes,
                  "max_features": cfg.hybrid.max_features,
                  "l2_regularization": cfg.hybrid.l2_regularization, "c": cfg.hybrid.c}
        cv = (_choose_by_cv(cfg, ds, (tr, va), (ytr, yva_fit), (ytr_scored, yva), monitor,
                            clf_kw) if cfg.hybrid.select_folds else None)
        fit = fit_candidates(tr, ytr, va, cfg.hybrid.candidates, n_classes=len(classes),
                             score=score, chosen=None if cv is None else cv.index,
                             **clf_kw)
        hv = stage_predict(fit.model, va, fit.inputs, len(classes),
                           network_weight=fit.network_weight)
        if cfg.hybrid.refit:                  # the chosen candidate on train + valid
            fit = dataclasses.replace(fit, model=refit_candidate(
                cfg.hybrid.candidates[fit.index], [tr, va], [ytr, yva_fit], **clf_kw))
        ht = stage_predict(fit.model, te, fit.inputs, len(classes),
                           network_weight=fit.network_weight)
        hvp, hvt, hvids = _scored(cfg, hv, yva, valid_ex)
        htp, htt, htids = _scored(cfg, ht, yte, test_ex)
        _write_csv(out / "hybrid_valid_predictions.csv", cfg, hvids, hvp, hvt)
        _write_csv(out / f"hybrid_{split}_predictions.csv", cfg, htids, htp, htt)
        hybrid_valid = fit.scores[fit.index]
        # the network and the chosen candidate compared on the rows the choice was scored on
        # (hybrid.select_folds), else on validation
        adoption = ((cv and cv.adoption)
                    or {"on": "valid", "hybrid": hybrid_valid, "network": net_valid})
        adopted = "hybrid" if adoption["hybrid"] >= adoption["network"] else "network"
        chosen = candidate_entry(cfg.hybrid.candidates[fit.index])
        desc = {"inputs": fit.inputs, "classifier": fit.classifier,
                "network_weight": fit.network_weight, "bag": chosen["bag"],
                "histgb": chosen["histgb"],
                "candidates": [{**candidate_entry(c), "valid": s,
                                **({"cv": cv.scores[i]} if cv is not None else {}),
                                **({"skipped": fit.skipped[i]} if i in fit.skipped
                                   else {})}
                               for i, (c, s) in enumerate(zip(cfg.hybrid.candidates,
                                                              fit.scores))],
                "selected_by": (f"valid {cfg.train.monitor}" if cv is None
                                else selection_text(cv.selection)),
                "selection": None if cv is None else cv.selection,
                "hybrid_valid": hybrid_valid,
                "network_valid": net_valid, "adopted": adopted, "adopted_on": adoption,
                "feature_sets": [list(s) for s in feature_sets(cfg)],
                "feature_names": tr_names,
                "encoder": encoder_spec(cfg) if "encoder" in fit.inputs else None,
                "n_train": int(len(ytr) + (len(yva) if cfg.hybrid.refit else 0)),
                "fitted_on": ("train + valid splits, after the choice on valid (its valid "
                              "outputs: the fit on train alone); the network's in-sample "
                              "outputs on train" if cfg.hybrid.refit else
                              "train split; the network's in-sample outputs there"),
                "network_outputs": "the scoring path (whole recordings, as biosig score "
                                   "model computes them)"}
        save_stage(out, fit, desc)
        entries["hybrid"] = {**{k: desc[k] for k in ("inputs", "classifier",
                                                     "network_weight", "bag", "histgb",
                                                     "candidates",
                                                     "selected_by", "hybrid_valid",
                                                     "network_valid", "adopted",
                                                     "adopted_on")},
                             "metrics": metrics_with_ci(htt, htp, cfg)}
        entries["model"] = adopted
        if adopted == "hybrid":
            chosen_vp, chosen_vt, chosen_tp, chosen_tt = hvp, hvt, htp, htt
            cal = fit_calibration(hvt, hvp, fitted_on="valid (hybrid stage)")
            write_text_atomic(out / CALIBRATION_FILE, json.dumps(jsonable(cal), indent=2)
                              + "\n")
    else:
        for name in (HYBRID_FILE, HYBRID_MODEL_FILE):
            (out / name).unlink(missing_ok=True)
    if cfg.eval.decision == "tuned":
        entries["decision"] = _tune_decision(cfg, out, chosen_vt, chosen_vp, chosen_tt,
                                             chosen_tp, model_name=entries["model"])
    else:
        (out / DECISION_FILE).unlink(missing_ok=True)
    return entries


@dataclass
class CVChoice:
    """What ``hybrid.select_folds`` chose: the candidate's ``index``, every candidate's
    out-of-fold ``scores``, the ``selection`` (folds, metric, splits, rows, groups) and what
    the adoption compares (``adoption``; None where every scored row is a training row)."""

    index: int
    scores: list[float | None]
    selection: dict
    adoption: dict | None


def selection_text(selection: dict, *, counts: bool = True) -> str:
    """How ``hybrid.select_folds`` chose, as text: ``"5-fold cross-validated
    weighted_accuracy over train+select+valid"``, and with ``counts`` ``" (1955 rows, 579
    groups)"`` after it."""
    text = (f"{selection['folds']}-fold cross-validated {selection['metric']} over "
            f"{'+'.join(selection['splits'])}")
    return text + (f" ({selection['rows']} rows, {selection['groups']} groups)" if counts
                   else "")


def _scorer(cfg, monitor, targets, examples):
    """``score(probs) -> train.monitor`` of these examples' probabilities (per
    ``eval.aggregate_by`` group where set), as validation is scored."""
    def score(p):
        sp, st, _ = _scored(cfg, p, targets, examples)
        return monitor(st, sp)
    return score


def _choose_by_cv(cfg, ds, blocks, fitted, scored_targets, monitor, clf_kw) -> CVChoice:
    """``hybrid.select_folds``: the candidate with the best out-of-fold score over the rows of
    ``hybrid.select_splits``, and what the adoption compares: its out-of-fold score and the
    network's on the scored rows whose network outputs are out of sample (select, valid).
    ``blocks``, ``fitted`` and ``scored_targets`` are the pairs (train + select rows, valid
    rows) of input blocks, fitted classes and scored classes."""
    tr, va = blocks
    n_train = len(ds["train"].examples)
    split_of = np.array(["train"] * n_train + ["select"] * (len(fitted[0]) - n_train)
                        + ["valid"] * len(fitted[1]))
    examples = [e for s in ("train", "select", "valid") if s in ds for e in ds[s].examples]
    rows = {b: (None if tr[b] is None or va[b] is None
                else np.concatenate([np.asarray(tr[b]), np.asarray(va[b])])) for b in tr}
    y_fit = np.concatenate(fitted)
    y_scored = np.concatenate(scored_targets)
    scored = np.isin(split_of, cfg.hybrid.select_splits)
    if not scored.any():
        raise ConfigError(f"hybrid.select_splits is {cfg.hybrid.select_splits}: this run has "
                          "no rows in them")
    groups = [group_of(examples[i].record) for i in np.flatnonzero(scored)]
    k = cfg.hybrid.select_folds
    if k > len(set(groups)):
        raise ConfigError(f"hybrid.select_folds is {k}: the rows of "
                          f"{'+'.join(cfg.hybrid.select_splits)} hold {len(set(groups))} "
                          "groups, fewer than the folds")
    folds = np.full(len(y_fit), -1, dtype=np.int64)
    folds[scored] = group_kfold(groups, n_folds=k, seed=cfg.seed, labels=y_fit[scored])

    def score_on(mask):
        return _scorer(cfg, monitor, y_scored[mask],
                       [examples[j] for j in np.flatnonzero(mask)])

    res = cross_validated_scores(rows, y_fit, cfg.hybrid.candidates, folds=folds,
                                 n_classes=len(cfg.data.classes), score=score_on(scored),
                                 desc=f"hybrid candidates ({k}-fold CV)", **clf_kw)
    i = best_candidate(res.scores, res.skipped)
    outside = scored & (split_of != "train")                # the network out of sample
    adoption = None
    if outside.any():
        on = outside[scored]                                 # among the scored rows
        adoption = {"on": "out of fold, " + "+".join(
                        s for s in ("select", "valid") if s in split_of[outside])
                    + f" ({int(outside.sum())} rows)",
                    "hybrid": float(score_on(outside)(res.probs[i][on])),
                    "network": float(score_on(outside)(np.asarray(rows["probs"])[outside]))}
    selection = {"folds": k, "metric": cfg.train.monitor,
                 "splits": [s for s in cfg.hybrid.select_splits if s in split_of],
                 "rows": int(scored.sum()), "groups": len(set(groups))}
    return CVChoice(i, res.scores, selection, adoption)


def _feature_names(cfg, examples) -> list[str]:
    sets = feature_sets(cfg)
    names: set = set()
    for e in examples:
        k = ((e.record.id, e.record.path), cfg.frontend.target_fs, repr(sets))
        names |= set(_FEATS.get(k, {}))
    return sorted(names)


def _reorder(cfg, examples, names) -> np.ndarray:
    sets = feature_sets(cfg)
    rows = [_FEATS.get(((e.record.id, e.record.path), cfg.frontend.target_fs, repr(sets)), {})
            for e in examples]
    return feature_matrix(rows, names)[0]


def _fit_rule(cfg, vt, vp, *, model_name: str, fitted_on: str) -> dict:
    fns = metric_functions(cfg)
    name = decision_metric_name(cfg)
    if name not in fns:
        raise ConfigError(f"eval.decision_metric is {name!r}; this config reports "
                          f"{', '.join(fns)}")
    dec = fit_decision(vt, vp, fns[name], crossfit=cfg.eval.decision_crossfit, seed=cfg.seed)
    dec.update(metric=name, classes=list(cfg.data.classes), model=model_name,
               fitted_on=fitted_on)
    return dec


def _tune_decision(cfg, out: Path, vt, vp, tt, tp, *, model_name: str) -> dict:
    dec = _fit_rule(cfg, vt, vp, model_name=model_name, fitted_on="valid")
    save_decision(out, dec)
    return {**dec, "metrics": metrics_with_ci(tt, apply_decision(tp, dec["weights"]), cfg)}

def _describe(c: dict) -> str:
    """``features / histgb``, ``features / histgb max_leaf_nodes 63``, ``features / histgb
    x5 bagged`` or ``features / histgb, averaged with the network (w 0.5)``."""
    w = c.get("network_weight")
    return (f"{'+'.join(c['inputs'])} / {c['classifier']}{candidate_settings_text(c)}"
            + (f", averaged with the network (w {w:g})" if w is not None else ""))



def candidate_entry(cand) -> dict:
    """A :class:`~biosig.train.config.HybridCandidate` as the run's files list it
    (:data:`CANDIDATE_KEYS`; ``histgb`` holds only the settings it sets)."""
    return {"inputs": list(cand.inputs), "classifier": cand.classifier,
            "network_weight": cand.network_weight, "c": cand.c, "bag": cand.bag,
            "histgb": (None if cand.histgb is None
                       else cand.histgb.model_dump(exclude_none=True))}


def candidate_settings_text(c: dict) -> str:
    """A listed candidate's own HistGB settings and bagging as text: ``" max_leaf_nodes 63
    x10 bagged"`` ('' for neither); what the stage's descriptions, the report and the tried
    plot append to the classifier's name."""
    return ("".join(f" {k} {v:g}" for k, v in (c.get("histgb") or {}).items())
            + (f" x{c['bag']} bagged" if c.get("bag") else ""))


def _fold_predictions(cfg, r: dict, which: str, split: str):
    name = f"{split}_predictions.csv" if which == "network" else f"hybrid_{split}_predictions.csv"
    return read_predictions(Path(r["run_dir"]) / name, cfg.data.classes)


def pooled_stage_report(cfg, reports: list[dict], out) -> dict:
    """The stages of a K-fold run over its folds: ``cv_report.json`` entries and the run-level
    ``decision.json`` (fitted on the pooled validation predictions of each fold's model, for
    ``biosig score model`` on the fold ensemble). Nothing (and no stale ``decision.json``)
    when neither stage is configured.

    Returns
    -------
    dict
        ``model`` (``hybrid``, ``network`` or ``per fold``), ``models`` (each fold's),
        ``hybrid_valid`` (mean over folds of each candidate's and the network's validation
        score), ``pooled_hybrid`` and ``pooled_model`` (every fold's test predictions of the
        hybrid / of the fold's model, pooled, with CIs), ``pooled_decision`` (each fold's
        test predictions under its own tuned rule, pooled) and ``decision`` (the run-level
        rule).
    """
    out = Path(out)
    if stage_settings(cfg) is None:           # none configured: no stale rule either
        (out / DECISION_FILE).unlink(missing_ok=True)
        return {}
    res: dict = {}
    models = [r.get("model", "network") for r in reports]
    res["models"] = models
    res["model"] = models[0] if len(set(models)) == 1 else "per fold"

    def pool(which_of, split_of):
        parts = [_fold_predictions(cfg, r, which_of(i, r), split_of(r))
                 for i, r in enumerate(reports)]
        return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                [i for p in parts for i in p[2]])

    if all("hybrid" in r for r in reports):
        cands = [r["hybrid"]["candidates"] for r in reports]
        res["hybrid_valid"] = {
            "network": float(np.mean([r["hybrid"]["network_valid"] for r in reports])),
            "candidates": [{**{k: c.get(k) for k in CANDIDATE_KEYS},
                            **{f"{key}_mean": (float(np.mean([f[i][key] for f in cands]))
                                               if all(f[i].get(key) is not None
                                                      for f in cands) else None)
                               for key in ("valid", "cv") if key in c}}
                           for i, c in enumerate(cands[0])],
            "chosen_per_fold": [_describe(r["hybrid"]) for r in reports],
            "hybrid": float(np.mean([r["hybrid"]["hybrid_valid"] for r in reports]))}
        p, t, ids = pool(lambda i, r: "hybrid", lambda r: r["evaluated_split"])
        _write_csv(out / "cv_hybrid_test_predictions.csv", cfg, ids, p, t)
        res["pooled_hybrid"] = {"n_items": int(len(t)), "metrics": metrics_with_ci(t, p, cfg),
                                "predictions": str(out / "cv_hybrid_test_predictions.csv")}
    p, t, _ = pool(lambda i, r: models[i], lambda r: r["evaluated_split"])
    res["pooled_model"] = {"n_items": int(len(t)), "metrics": metrics_with_ci(t, p, cfg)}
    vp, vt, _ = pool(lambda i, r: models[i], lambda r: "valid")
    if "hybrid" in models:
        cal = fit_calibration(vt, vp, fitted_on="pooled validation folds (each fold's model)")
        write_text_atomic(out / CALIBRATION_FILE, json.dumps(jsonable(cal), indent=2) + "\n")
    if cfg.eval.decision == "tuned" and all("decision" in r for r in reports):
        parts = [_fold_predictions(cfg, r, models[i], r["evaluated_split"])
                 for i, r in enumerate(reports)]
        p = np.concatenate([apply_decision(q[0], r["decision"]["weights"])
                            for q, r in zip(parts, reports)])
        t = np.concatenate([q[1] for q in parts])
        _write_csv(out / "cv_decision_test_predictions.csv", cfg,
                   [i for q in parts for i in q[2]], p, t)
        res["pooled_decision"] = {"n_items": int(len(t)), "metrics": metrics_with_ci(t, p, cfg),
                                  "predictions": str(out / "cv_decision_test_predictions.csv"),
                                  "probabilities": "re-weighted by each fold's rule",
                                  "weights_per_fold": [r["decision"]["weights"]
                                                       for r in reports]}
        res["decision"] = _fit_rule(cfg, vt, vp, model_name=res["model"],
                                    fitted_on="pooled validation folds")
        save_decision(out, res["decision"])
    else:
        (out / DECISION_FILE).unlink(missing_ok=True)
    return res


# ------------------------------------------------------------ the adopted model's outputs

@dataclass
class AdoptedPredictions:
    """One split's predictions of a run's model, per scored item.

    ``probs`` (n, n_classes) are the model's probabilities (the ``p_<class>`` columns of
    ``biosig score model``: the hybrid's where it was adopted, else the network's);
    ``decided`` are the same re-weighted by the tuned decision rule (:func:`apply_decision`:
    their arg-max is the rule's decision; equal to ``probs`` without a rule)."""

    probs: np.ndarray
    decided: np.ndarray
    targets: np.ndarray
    ids: list[str]


@dataclass
class AdoptedModel:
    """The model a finished run adopted, as ``biosig score model`` applies it (stage and
    decision rule), with its predictions and the network's alone.

    ``name``: ``network``, ``hybrid`` or ``per fold`` (K-fold folds that adopted different
    stages); ``models``: each fold's (one entry for a single run); ``weights``: each fold's
    decision-rule weights (None: arg-max); ``metrics``: its test metrics with CIs as the
    run's report gives them; ``network_metrics``: the network's alone; ``stage_metrics``:
    the hybrid stage's arg-max metrics where one was fitted in every fold (else None);
    ``test`` and ``valid`` (None for a run that kept no validation predictions): its
    predictions, a K-fold run's pooled over folds (each item once, by the fold model that
    did not train on it)."""

    name: str
    models: list[str]
    weights: list[list[float] | None]
    metrics: dict
    network_metrics: dict
    stage_metrics: dict | None
    test: AdoptedPredictions
    valid: AdoptedPredictions | None

    @property
    def has_rule(self) -> bool:
        return any(w is not None for w in self.weights)

    @property
    def is_network(self) -> bool:
        """The network's arg-max alone: no stage adopted, no rule."""
        return all(m == "network" for m in self.models) and not self.has_rule


def adopted_model(run_dir, cfg) -> AdoptedModel:
    """The model a finished run (or K-fold run) adopted, from the files it wrote.

    Parameters
    ----------
    run_dir : str or PathLike
        A run folder with ``report.json`` (one model) or ``cv_report.json`` (K-fold: its
        ``fold-k`` folders).
    cfg : TrainConfig
        The run's resolved config.

    Returns
    -------
    AdoptedModel
        For a single run, the predictions are ``hybrid_<split>_predictions.csv`` where the
        hybrid was adopted (else ``<split>_predictions.csv``), re-weighted by
        ``report.json``'s decision rule; for a K-fold run, each fold's model under its own
        rule, pooled (the predictions behind ``cv_report.json``'s ``pooled_decision`` or
        ``pooled_model``).
    """
    rd = Path(run_dir)
    classes = list(cfg.data.classes)
    if (rd / "cv_report.json").is_file():
        cv = json.loads((rd / "cv_report.json").read_text(encoding="utf-8"))
        n = int(cv["folds"])
        dirs = [rd / f"fold-{k}" for k in range(n)]
        reports = [json.loads((d / "report.json").read_text(encoding="utf-8")) for d in dirs]
        network_metrics = cv["pooled"]["metrics"]
        stage_metrics = (cv.get("pooled_hybrid") or {}).get("metrics")
        if "pooled_decision" in cv:
            metrics = cv["pooled_decision"]["metrics"]
        elif "pooled_model" in cv:
            metrics = cv["pooled_model"]["metrics"]
        else:
            metrics = network_metrics
    elif (rd / "report.json").is_file():
        rep = json.loads((rd / "report.json").read_text(encoding="utf-8"))
        dirs, reports = [rd], [rep]
        network_metrics = rep["metrics"]
        stage_metrics = (rep.get("hybrid") or {}).get("metrics")
        metrics = ((rep.get("decision") or {}).get("metrics")
                   or (stage_metrics if rep.get("model") == "hybrid" else None)
                   or network_metrics)
    else:
        raise InputError(rd, "holds neither report.json nor cv_report.json (training not "
                             "finished?)")
    models = [r.get("model", "network") for r in reports]
    weights = [rule_weights(r.get("decision")) for r in reports]

    def pooled(split_of) -> AdoptedPredictions | None:
        parts = []
        for d, r, m, w in zip(dirs, reports, models, weights):
            split = split_of(r)
            path = d / (f"hybrid_{split}_predictions.csv" if m == "hybrid"
                        else f"{split}_predictions.csv")
            if not path.is_file():
                if split == "valid":
                    return None                   # a run of an older release
                raise InputError(path, f"not found: the {split} predictions of the run's "
                                       f"model ({m})")
            p, t, ids = read_predictions(path, classes)
            parts.append((p, apply_decision(p, w) if w is not None else p, t, ids))
        return AdoptedPredictions(*(np.concatenate([q[i] for q in parts]) for i in range(3)),
                                  [i for q in parts for i in q[3]])

    name = models[0] if len(set(models)) == 1 else "per fold"
    return AdoptedModel(name, models, weights, metrics, network_metrics, stage_metrics,
                        pooled(lambda r: r.get("evaluated_split", "test")),
                        pooled(lambda r: "valid"))


# ----------------------------------------------------------------------------- scoring

@dataclass
class RunStages:
    """The stages of a trained run as ``biosig score model`` applies them: per fold (one
    entry for a single run) the fitted hybrid or None (the fold's model is its network), the
    feature sets, and the decision rule's ``weights`` (None: arg-max)."""

    folds: list
    sets: list
    need_embedding: bool
    weights: list[float] | None


def load_stages(run_dir, cfg) -> RunStages | None:
    """:class:`RunStages` of a run folder (K-fold: of each ``fold-k``), or None when it has
    neither an adopted hybrid nor a decision rule (the network's arg-max as before)."""
    rd = Path(run_dir)
    folds = sorted(rd.glob("fold-*"), key=lambda p: int(p.name.split("-")[1])
                   if p.name.split("-")[1].isdigit() else -1)
    dirs = folds if (folds and not (rd / "best.pt").is_file()) else [rd]
    stages = []
    for d in dirs:
        st = load_stage(d)
        stages.append(st[0] if st is not None and st[1].get("adopted") == "hybrid" else None)
    weights = rule_weights(load_decision(rd))
    if all(s is None for s in stages) and weights is None:
        return None
    need = any(s is not None and "embedding" in s["inputs"] for s in stages)
    return RunStages(stages, feature_sets(cfg), need, weights)


def stage_probs(run, x: np.ndarray, stages: RunStages) -> np.ndarray:
    """Class probabilities ``(n_classes,)`` of one signal from the run's model: per fold the
    hybrid (network outputs and features into the fitted stage) or the network alone,
    averaged over folds.

    Parameters
    ----------
    run : LoadedRun
        As :func:`biosig.train.inference.load_run` gives (a K-fold run's model is the
        :class:`~biosig.train.inference.FoldEnsemble` of its folds).
    x : np.ndarray [shape=(n_samples,)]
        The signal at ``frontend.target_fs`` (:func:`~biosig.train.inference.load_waveform`).
    stages : RunStages
    """
    k = len(run.classes)
    models = (list(run.model.models) if len(stages.folds) > 1 else [run.model])
    if len(models) != len(stages.folds):
        raise InputError(run.run_dir, f"{len(models)} fold models but {len(stages.folds)} "
                                      "fold stages")
    from biosig.train.inference import predict_waveform  # cycle: inference imports hybrid
    feats = None
    encoded: dict = {}
    out = []
    for model, stage in zip(models, stages.folds):
        sub = dataclasses.replace(run, model=model)
        if stage is None:
            out.append(predict_waveform(sub, x))
            continue
        if feats is None:
            feats = _safe_features(x, run.cfg.frontend.target_fs, stages.sets, run.run_dir)
        spec = stage.get("encoder") if "encoder" in stage["inputs"] else None
        if spec is not None and repr(spec) not in encoded:   # once per recording
            encoded[repr(spec)] = _safe_encoded(x, run.cfg.frontend.target_fs, spec,
                                                run.run_dir)
        b = _blocks_one(sub, x, feats=feats, names=stage["feature_names"],
                        need_embedding="embedding" in stage["inputs"],
                        encoded=None if spec is None else encoded[repr(spec)])
        out.append(stage_predict(stage["model"], b, stage["inputs"], k,
                                 network_weight=stage.get("network_weight"))[0])
    return np.mean(out, axis=0)
