"""Classification metrics that clinicians and the PhysioNet challenges ask for, with bootstrap CIs.

Labels are integer class indices ``0 .. n_classes - 1``; scores are probabilities or any
monotone score. Everything is plain numpy so it runs anywhere (tests compare with scikit-learn).

- :func:`confusion_matrix`, :func:`classification_report` -- per-class sensitivity (recall),
  specificity, PPV (precision), NPV, F1 and their macro means; accuracy; Cohen's kappa;
- :func:`roc_auc`, :func:`pr_auc` (average precision), :func:`roc_curve`, and the
  one-vs-rest macro :func:`roc_auc_ovr`;
- challenge scores: :func:`physionet2016_macc`, :func:`physionet2022_weighted_accuracy`,
  :func:`icbhi_score`, :func:`cinc2017_f1`;
- :func:`eer` -- equal error rate of verification trials (embeddings);
- :func:`bootstrap_ci` -- percentile bootstrap confidence interval of any of them.

Row ``i``, column ``j`` of a confusion matrix counts items of true class ``i`` predicted as
``j`` (scikit-learn's convention).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

__all__ = [
    "confusion_matrix", "ClassificationReport", "classification_report", "cohen_kappa",
    "roc_curve", "roc_auc", "roc_auc_ovr", "pr_auc", "physionet2016_macc",
    "physionet2022_weighted_accuracy", "PHYSIONET2022_MURMUR_WEIGHTS",
    "PHYSIONET2022_OUTCOME_WEIGHTS", "icbhi_score", "IcbhiScore", "cinc2017_f1", "eer",
    "ConfidenceInterval", "bootstrap_ci",
]

#: Class weights of the PhysioNet 2022 murmur score (Present, Unknown, Absent).
PHYSIONET2022_MURMUR_WEIGHTS = {"Present": 5.0, "Unknown": 3.0, "Absent": 1.0}
#: Class weights of the PhysioNet 2022 outcome score (Abnormal, Normal).
PHYSIONET2022_OUTCOME_WEIGHTS = {"Abnormal": 5.0, "Normal": 1.0}


def _labels(y, name: str) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim != 1:
        raise ValueError(f"{name} has shape {a.shape}, expected (n_items,)")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if np.issubdtype(a.dtype, np.bool_):
            return a.astype(np.int64)
        if not np.all(np.mod(a, 1) == 0):
            raise ValueError(f"{name} holds non-integer values, expected class indices")
        a = a.astype(np.int64)
    return a.astype(np.int64)


def _pair(y_true, y_pred, n_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} items and y_pred {p.size}, expected the same")
    k = int(max(t.max(initial=-1), p.max(initial=-1)) + 1) if n_classes is None else n_classes
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= k):
        raise ValueError(f"class indices must lie in [0, {k}), got {min(t.min(), p.min())}.."
                         f"{max(t.max(), p.max())}")
    return t, p, k


def confusion_matrix(y_true, y_pred, *, n_classes: int | None = None) -> np.ndarray:
    """Counts of true class ``i`` predicted as ``j``.

    Parameters
    ----------
    y_true, y_pred : array of int [shape=(n_items,)]
        Class indices.
    n_classes : int, optional
        Number of classes (default: the largest index seen + 1).

    Returns
    -------
    np.ndarray of int64 [shape=(n_classes, n_classes)]
    """
    t, p, k = _pair(y_true, y_pred, n_classes)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k).astype(np.int64)


def _div(a, b) -> float:
    return float(a) / float(b) if b else float("nan")


@dataclass(frozen=True)
class ClassificationReport:
    """Per-class and summary metrics of a hard classification.

    Attributes
    ----------
    sensitivity, specificity, ppv, npv, f1 : list of float [n_classes]
        One-vs-rest per class (sensitivity = recall, PPV = precision); NaN when undefined
        (no item of the class, or nothing predicted as it).
    macro_sensitivity, macro_specificity, macro_ppv, macro_npv, macro_f1 : float
        Unweighted means over classes, ignoring NaN.
    accuracy : float
    kappa : float
        Cohen's kappa.
    support : list of int
        True items per class.
    confusion : list of list of int
    """

    sensitivity: list[float]
    specificity: list[float]
    ppv: list[float]
    npv: list[float]
    f1: list[float]
    macro_sensitivity: float
    macro_specificity: float
    macro_ppv: float
    macro_npv: float
    macro_f1: float
    accuracy: float
    kappa: float
    support: list[int]
    confusion: list[list[int]]

    def to_dict(self) -> dict:
        return asdict(self)


def _nanmean(values) -> float:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


def _kappa_from_cm(cm: np.ndarray) -> float:
    n = cm.sum()
    if n == 0:
        return float("nan")
    po = np.trace(cm) / n
    pe = float((cm.sum(0) * cm.sum(1)).sum()) / float(n) ** 2
    return float((po - pe) / (1 - pe)) if pe != 1 else float("nan")


def classification_report(y_true, y_pred, *, n_classes: int | None = None
                          ) -> ClassificationReport:
    """Sensitivity, specificity, PPV, NPV, F1 per class and macro; accuracy; Cohen's kappa.

    Parameters
    ----------
    y_true, y_pred : array of int [shape=(n_items,)]
    n_classes : int, optional

    Returns
    -------
    ClassificationReport
    """
    cm = confusion_matrix(y_true, y_pred, n_classes=n_classes)
    n = cm.sum()
    tp = np.diag(cm)
    fn = cm.sum(1) - tp
    fp = cm.sum(0) - tp
    tn = n - tp - fn - fp
    se = [_div(a, a + b) for a, b in zip(tp, fn)]
    sp = [_div(a, a + b) for a, b in zip(tn, fp)]
    ppv = [_div(a, a + b) for a, b in zip(tp, fp)]
    npv = [_div(a, a + b) for a, b in zip(tn, fn)]
    f1 = [_div(2 * a, 2 * a + b + c) for a, b, c in zip(tp, fp, fn)]
    return ClassificationReport(
        sensitivity=se, specificity=sp, ppv=ppv, npv=npv, f1=f1,
        macro_sensitivity=_nanmean(se), macro_specificity=_nanmean(sp),
        macro_ppv=_nanmean(ppv), macro_npv=_nanmean(npv), macro_f1=_nanmean(f1),
        accuracy=_div(tp.sum(), n), kappa=_kappa_from_cm(cm),
        support=[int(x) for x in cm.sum(1)], confusion=cm.tolist())


def cohen_kappa(y_true, y_pred, *, n_classes: int | None = None) -> float:
    """Cohen's kappa ``(p_o - p_e) / (1 - p_e)`` (Cohen 1960); as sklearn's unweighted kappa."""
    return _kappa_from_cm(confusion_matrix(y_true, y_pred, n_classes=n_classes))


# ------------------------------------------------------------------------------ ranking

def _binary(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    y = _labels(y_true, "y_true")
    s = np.asarray(scores, dtype=float)
    if s.shape != y.shape:
        raise ValueError(f"scores has shape {s.shape}, expected {y.shape} like y_true")
    if y.size and (y.min() < 0 or y.max() > 1):
        raise ValueError("y_true must hold 0 (negative) and 1 (positive) for a binary metric")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores holds NaN or infinite values")
    return y, s


def roc_curve(y_true, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve at every distinct score: ``(fpr, tpr, thresholds)``, starting at (0, 0).

    Parameters
    ----------
    y_true : array of {0, 1} [shape=(n_items,)]
    scores : array of float [shape=(n_items,)]
        Higher means more likely positive.
    """
    y, s = _binary(y_true, scores)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1] if y.size else np.array([], int)
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    n_pos, n_neg = y.sum(), y.size - y.sum()
    tpr = np.r_[0.0, tps / n_pos] if n_pos else np.full(last.size + 1, np.nan)
    fpr = np.r_[0.0, fps / n_neg] if n_neg else np.full(last.size + 1, np.nan)
    return fpr, tpr, np.r_[np.inf, s[last]]


def roc_auc(y_true, scores) -> float:
    """Area under the ROC curve (Mann-Whitney U with ties counted half); NaN for one class."""
    y, s = _binary(y_true, scores)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata
    ranks = rankdata(s)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc_ovr(y_true, probabilities) -> float:
    """Macro one-vs-rest ROC-AUC over the classes present in ``y_true`` (sklearn's
    ``roc_auc_score(multi_class="ovr", average="macro")`` when every class is present).

    Parameters
    ----------
    y_true : array of int [shape=(n_items,)]
    probabilities : array of float [shape=(n_items, n_classes)]
    """
    y = _labels(y_true, "y_true")
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 2 or p.shape[0] != y.size:
        raise ValueError(f"probabilities has shape {p.shape}, expected ({y.size}, n_classes)")
    if p.shape[1] == 2:
        return roc_auc(y, p[:, 1])
    aucs = [roc_auc((y == c).astype(int), p[:, c]) for c in range(p.shape[1])]
    return _nanmean(aucs)


def pr_auc(y_true, scores) -> float:
    """Area under the precision-recall curve as average precision
    ``sum_n (R_n - R_{n-1}) P_n`` (sklearn's ``average_precision_score``); NaN without
    positives."""
    y, s = _binary(y_true, scores)
    if y.sum() == 0:
        return float("nan")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), y.size - 1]
    tps = np.cumsum(y)[last]
    precision = tps / (last + 1)
    recall = tps / y.sum()
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def eer(y_true, scores) -> float:
    """Equal error rate of verification trials: where false acceptance equals false rejection.

    Parameters
    ----------
    y_true : array of {0, 1} [shape=(n_trials,)]
        1 for target (same-class) trials, 0 for non-target trials.
    scores : array of float [shape=(n_trials,)]
        Similarity (e.g. cosine of two embeddings); higher means "same".

    Returns
    -------
    float in [0, 1]
        The EER, linearly interpolated between the two ROC points where
        ``fnr - fpr`` changes sign.
    """
    fpr, tpr, _ = roc_curve(y_true, scores)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return float("nan")
    fnr = 1.0 - tpr
    d = fnr - fpr                      # decreasing from 1 to -1 along the curve
    i = int(np.flatnonzero(d <= 0)[0])
    if i == 0 or d[i] == 0:
        return float((fpr[i] + fnr[i]) / 2)
    w = d[i - 1] / (d[i - 1] - d[i])
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


# ------------------------------------------------------------------------- challenges

def physionet2016_macc(y_true, y_pred) -> float:
    """PhysioNet/CinC 2016 modified accuracy ``(Se + Sp) / 2`` with abnormal = 1.

    Uses the unweighted form (every recording counts once; the challenge's signal-quality
    weights are not applied). Liu et al., Physiol. Meas. 37 (2016) 2181.
    """
    cm = confusion_matrix(y_true, y_pred, n_classes=2)
    se = _div(cm[1, 1], cm[1].sum())
    sp = _div(cm[0, 0], cm[0].sum())
    return (se + sp) / 2


def physionet2022_weighted_accuracy(y_true, y_pred, *, weights: Sequence[float]) -> float:
    """PhysioNet/CinC 2022 weighted accuracy ``sum_c w_c m_cc / sum_c w_c n_c``.

    ``m_cc`` counts patients of class ``c`` predicted as ``c`` and ``n_c`` patients of class
    ``c``; the murmur weights are Present 5, Unknown 3, Absent 1
    (:data:`PHYSIONET2022_MURMUR_WEIGHTS`), the outcome weights Abnormal 5, Normal 1.
    Reyna et al., PLOS Digit. Health 2 (2023) e0000324.

    Parameters
    ----------
    y_true, y_pred : array of int [shape=(n_items,)]
    weights : sequence of float [n_classes]
        Weight of each class index.
    """
    w = np.asarray(weights, dtype=float)
    cm = confusion_matrix(y_true, y_pred, n_classes=w.size)
    return _div((w * np.diag(cm)).sum(), (w * cm.sum(1)).sum())


@dataclass(frozen=True)
class IcbhiScore:
    """ICBHI 2017 challenge score: ``score = (sensitivity + specificity) / 2``."""

    sensitivity: float
    specificity: float
    score: float


def icbhi_score(y_true, y_pred, *, normal_class: int = 0) -> IcbhiScore:
    """ICBHI 2017 score over respiratory cycles (Rocha et al., Physiol. Meas. 40 (2019) 035001).

    Sensitivity is the fraction of abnormal cycles (crackle, wheeze, both) given exactly
    their class; specificity the fraction of normal cycles predicted normal.
    """
    t, p, k = _pair(y_true, y_pred, None)
    normal = t == normal_class
    sp = _div(np.sum(p[normal] == normal_class), normal.sum())
    se = _div(np.sum(p[~normal] == t[~normal]), (~normal).sum())
    return IcbhiScore(se, sp, (se + sp) / 2)


def cinc2017_f1(y_true, y_pred, *, classes: Sequence[str]) -> float:
    """PhysioNet/CinC 2017 score: mean F1 of Normal, AF and Other rhythm
    ``F1_c = 2 N_cc / (sum_j N_cj + sum_i N_ic)`` (the noisy class is not averaged).
    Clifford et al., Computing in Cardiology 44 (2017).

    Parameters
    ----------
    y_true, y_pred : array of int [shape=(n_items,)]
    classes : sequence of str
        Class names by index; must contain ``"N"``, ``"A"`` and ``"O"``.
    """
    names = list(classes)
    missing = [c for c in ("N", "A", "O") if c not in names]
    if missing:
        raise ValueError(f"classes {names} lack {missing}; CinC 2017 needs N, A and O")
    cm = confusion_matrix(y_true, y_pred, n_classes=len(names))
    f1 = [_div(2 * cm[i, i], cm[i].sum() + cm[:, i].sum())
          for i in (names.index("N"), names.index("A"), names.index("O"))]
    return float(np.mean(f1))


# -------------------------------------------------------------------------- bootstrap

@dataclass(frozen=True)
class ConfidenceInterval:
    """A point estimate with a percentile bootstrap interval."""

    estimate: float
    low: float
    high: float
    level: float
    n_bootstrap: int
    n_undefined: int

    def to_dict(self) -> dict:
        return asdict(self)


def bootstrap_ci(metric: Callable[..., float], *arrays, n_bootstrap: int = 1000,
                 level: float = 0.95, seed: int = 0) -> ConfidenceInterval:
    """Percentile bootstrap CI of ``metric(*arrays)``, resampling items with replacement.

    Parameters
    ----------
    metric : callable
        Takes the arrays (same first axis) and returns a float; NaN results (e.g. a resample
        with one class for ROC-AUC) are left out and counted in ``n_undefined``.
    *arrays : array [shape=(n_items, ...)]
    n_bootstrap : int > 0
    level : float in (0, 1)
    seed : int

    Returns
    -------
    ConfidenceInterval
    """
    if not arrays:
        raise ValueError("bootstrap_ci needs at least one array")
    arrs = [np.asarray(a) for a in arrays]
    n = arrs[0].shape[0]
    if any(a.shape[0] != n for a in arrs):
        raise ValueError("bootstrap_ci: arrays differ in length")
    if not 0 < level < 1:
        raise ValueError(f"level is {level!r}, expected a number in (0, 1)")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap is {n_bootstrap!r}, expected a positive integer")
    est = float(metric(*arrs))
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(int(n_bootstrap)):
        idx = rng.integers(0, n, n)
        v = float(metric(*[a[idx] for a in arrs]))
        if not math.isnan(v):
            vals.append(v)
    if not vals:
        return ConfidenceInterval(est, float("nan"), float("nan"), level, n_bootstrap,
                                  n_bootstrap)
    lo, hi = np.quantile(vals, [(1 - level) / 2, 1 - (1 - level) / 2])
    return ConfidenceInterval(est, float(lo), float(hi), level, n_bootstrap,
                              n_bootstrap - len(vals))
