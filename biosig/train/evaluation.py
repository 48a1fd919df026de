"""Metrics of a trained model on a split, the way the recipes report them."""

from __future__ import annotations

import csv
import math

import numpy as np

from biosig import metrics as M
from biosig.calibration import (
    IsotonicMaps,
    apply_isotonic,
    apply_temperature,
    fit_isotonic,
    fit_temperature,
)

__all__ = ["compute_metrics", "metrics_with_ci", "embedding_eer", "metric_names",
           "aggregate_by_group", "aggregate_any_index", "positive_class", "fit_calibration",
           "apply_calibration",
           "CALIBRATION_FILE", "CALIBRATION_METHODS", "read_predictions",
           "metric_functions"]


def positive_class(cfg) -> int | None:
    c = cfg.data.classes
    if cfg.eval.positive_class is not None:
        return c.index(cfg.eval.positive_class)
    return 1 if len(c) == 2 else None


def _metric_fns(cfg) -> dict:
    """name -> f(targets, probs) for every scalar the report gives."""
    classes = list(cfg.data.classes)
    k = len(classes)
    pos = positive_class(cfg)

    def pred(p):
        return np.argmax(p, axis=1)

    last: list = [None, None, None]

    def report(t, p):
        """The classification report, computed once for the same (targets, probs) objects
        (the metrics of one bootstrap resample share it)."""
        if last[0] is not t or last[1] is not p:
            last[:] = [t, p, M.classification_report(t, pred(p), n_classes=k)]
        return last[2]

    fns = {
        "accuracy": lambda t, p: report(t, p).accuracy,
        "macro_f1": lambda t, p: report(t, p).macro_f1,
        "macro_sensitivity": lambda t, p: report(t, p).macro_sensitivity,
        "macro_specificity": lambda t, p: report(t, p).macro_specificity,
        "kappa": lambda t, p: report(t, p).kappa,
        "roc_auc": (lambda t, p: M.roc_auc((t == pos).astype(int), p[:, pos])) if pos is not None
        else (lambda t, p: M.roc_auc_ovr(t, p)),
        "pr_auc": (lambda t, p: M.pr_auc((t == pos).astype(int), p[:, pos])) if pos is not None
        else (lambda t, p: float(np.nanmean([M.pr_auc((t == c).astype(int), p[:, c])
                                             if (t == c).any() else np.nan
                                             for c in range(k)]))
              if any((t == c).any() for c in range(k)) else float("nan")),
    }
    if pos is not None:
        for name in ("sensitivity", "specificity", "ppv", "npv", "f1"):
            fns[name] = lambda t, p, name=name: getattr(report(t, p), name)[pos]
    ch = cfg.eval.challenge
    if ch == "physionet2022":
        w = cfg.eval.class_weights
        fns["weighted_accuracy"] = lambda t, p: M.physionet2022_weighted_accuracy(
            t, pred(p), weights=w)
    elif ch == "physionet2016":
        fns["macc"] = lambda t, p: M.physionet2016_macc((t == pos).astype(int),
                                                        (pred(p) == pos).astype(int))
    elif ch == "icbhi2017":
        normal = classes.index(cfg.eval.normal_class)
        fns["icbhi_score"] = lambda t, p: M.icbhi_score(t, pred(p), normal_class=normal).score
        fns["icbhi_sensitivity"] = lambda t, p: M.icbhi_score(
            t, pred(p), normal_class=normal).sensitivity
        fns["icbhi_specificity"] = lambda t, p: M.icbhi_score(
            t, pred(p), normal_class=normal).specificity
    elif ch == "cinc2017":
        fns["cinc2017_f1"] = lambda t, p: M.cinc2017_f1(t, pred(p), classes=classes)
    return fns


def read_predictions(path, classes) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(probs (n, n_classes), targets (n,), ids)`` of a run's ``*_predictions.csv`` (columns
    ``<id>, p_<class>..., label, predicted``)."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    body = rows[1:]
    k = len(classes)
    probs = np.array([[float(v) for v in r[1:1 + k]] for r in body]).reshape(-1, k)
    targets = np.array([list(classes).index(r[1 + k]) for r in body], dtype=np.int64)
    return probs, targets, [r[0] for r in body]


def metric_functions(cfg) -> dict:
    """``name -> f(targets (n,), probs (n, n_classes)) -> float`` for every scalar metric a
    run of ``cfg`` reports (what :func:`metrics_with_ci` bootstraps)."""
    return _metric_fns(cfg)


def metric_names(cfg) -> list[str]:
    """Names of the scalar metrics a run of ``cfg`` reports (valid ``train.monitor`` values)."""
    return list(_metric_fns(cfg))


def aggregate_by_group(probs, targets, groups, *, any_class: int | None = None
                       ) -> tuple[np.ndarray, np.ndarray, list]:
    """Class probabilities per group (e.g. per patient over their recordings): the mean over
    the group's items, or with ``any_class``, that class's maximum over the items.

    Parameters
    ----------
    probs : array [shape=(n_items, n_classes)]
    targets : array of int [shape=(n_items,)]
    groups : sequence [n_items]
        Group of each item; groups are returned in order of first appearance.
    any_class : int, optional
        A class the group has when any of its items has it (``eval.aggregate_any``; CirCor: a
        murmur heard at one location is the patient's murmur). Its probability is the maximum
        over the items; the other classes share the rest in proportion to their means.

    Returns
    -------
    (probs (n_groups, n_classes), targets (n_groups,), group names)
        A group's target is its most common item target (ties: the lowest index).
    """
    p = np.asarray(probs, dtype=float)
    t = np.asarray(targets, dtype=np.int64)
    order: dict = {}
    for g in groups:
        order.setdefault(g, len(order))
    idx = np.array([order[g] for g in groups], dtype=np.int64)
    n = len(order)
    gp = np.zeros((n, p.shape[1]))
    np.add.at(gp, idx, p)
    gp /= np.bincount(idx, minlength=n)[:, None]
    if any_class is not None:
        top = np.full(n, -np.inf)
        np.maximum.at(top, idx, p[:, any_class])
        rest = np.delete(gp, any_class, axis=1)
        tot = rest.sum(axis=1, keepdims=True)
        rest = np.where(tot > 0, rest / np.where(tot > 0, tot, 1.0), 1.0 / rest.shape[1])
        gp = np.insert(rest * (1.0 - top[:, None]), any_class, top, axis=1)
    votes = np.zeros((n, p.shape[1]), dtype=np.int64)
    np.add.at(votes, (idx, t), 1)
    return gp, votes.argmax(1), list(order)


def aggregate_any_index(cfg) -> int | None:
    """The class index of ``eval.aggregate_any`` for :func:`aggregate_by_group` (None: groups
    are scored on mean probabilities)."""
    a = cfg.eval.aggregate_any
    return None if a is None else list(cfg.data.classes).index(a)


def compute_metrics(targets, probs, cfg) -> dict:
    """Scalar metrics, per-class report and confusion matrix of ``probs`` against ``targets``.

    Parameters
    ----------
    targets : array of int [shape=(n_items,)]
    probs : array of float [shape=(n_items, n_classes)]
    cfg : TrainConfig

    Returns
    -------
    dict
        ``name -> float`` for every scalar (NaN where undefined, e.g. ROC-AUC with one class),
        plus ``per_class`` (sensitivity, specificity, PPV, NPV, F1, support by class name)
        and ``confusion`` (rows true, columns predicted).
    """
    t = np.asarray(targets, dtype=np.int64)
    p = np.asarray(probs, dtype=float)
    out = {name: float(fn(t, p)) for name, fn in _metric_fns(cfg).items()}
    rep = M.classification_report(t, np.argmax(p, axis=1), n_classes=len(cfg.data.classes))
    out["per_class"] = {c: {"sensitivity": rep.sensitivity[i], "specificity":
                            rep.specificity[i], "ppv": rep.ppv[i], "npv": rep.npv[i],
                            "f1": rep.f1[i], "support": rep.support[i]}
                        for i, c in enumerate(cfg.data.classes)}
    out["confusion"] = rep.confusion
    return out


def metrics_with_ci(targets, probs, cfg) -> dict:
    """:func:`compute_metrics` plus a bootstrap CI (``eval.n_bootstrap`` resamples of the
    items) for every scalar: ``{"name": {"estimate", "low", "high", ...}}`` under ``"ci"``."""
    out = compute_metrics(targets, probs, cfg)
    t = np.asarray(targets, dtype=np.int64)
    p = np.asarray(probs, dtype=float)
    cis = M.bootstrap_cis(_metric_fns(cfg), t, p, n_bootstrap=cfg.eval.n_bootstrap,
                          level=cfg.eval.bootstrap_level, seed=cfg.seed)
    out["ci"] = {name: r.to_dict() for name, r in cis.items()}
    return out


def embedding_eer(embeddings, targets) -> float:
    """EER of cosine-similarity trials between all pairs of items (target = same class).

    Parameters
    ----------
    embeddings : array [shape=(n_items, dim)]
    targets : array of int [shape=(n_items,)]
    """
    e = np.asarray(embeddings, dtype=float)
    e = e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)
    t = np.asarray(targets)
    i, j = np.triu_indices(len(t), k=1)
    if i.size == 0:
        return math.nan
    same = (t[i] == t[j]).astype(int)
    if same.min() == same.max():
        return math.nan
    return M.eer(same, np.einsum("nd,nd->n", e[i], e[j]))


# ----------------------------------------------------------------------------- calibration

#: a run's fitted calibration, next to its checkpoints
CALIBRATION_FILE = "calibration.json"
CALIBRATION_METHODS = ("temperature", "isotonic")


def fit_calibration(targets, probs, *, fitted_on: str = "valid") -> dict:
    """Temperature scaling and per-class isotonic maps fitted on ``(targets, probs)`` (the
    validation predictions), as ``calibration.json`` keeps them: ``{"method": "temperature",
    "temperature": T, "isotonic": {"x": [...], "y": [...]}, "fitted_on", "n_items"}``
    (``method`` is what ``biosig score model --calibrate`` applies by default)."""
    t = np.asarray(targets, dtype=np.int64)
    p = np.asarray(probs, dtype=float)
    return {"method": "temperature", "temperature": fit_temperature(t, p),
            "isotonic": fit_isotonic(t, p).to_dict(), "fitted_on": fitted_on,
            "n_items": int(t.size)}


def apply_calibration(probs, calibration: dict, *, method: str | None = None) -> np.ndarray:
    """``probs`` (n_items, n_classes) through a :func:`fit_calibration` result (its
    ``method`` unless ``method`` names the other)."""
    m = method or calibration.get("method", "temperature")
    if m not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method is {m!r}, expected one of "
                         f"{', '.join(CALIBRATION_METHODS)}")
    if m == "temperature":
        return apply_temperature(probs, calibration["temperature"])
    iso = calibration["isotonic"]
    return apply_isotonic(probs, IsotonicMaps(iso["x"], iso["y"]))
