"""Classification metrics that clinicians and the PhysioNet challenges ask for, with bootstrap CIs.

Labels are integer class indices ``0 .. n_classes - 1``; scores are probabilities or any
monotone score. The general metrics are scikit-learn's (``sklearn.metrics``) behind argument
checks that name the argument; the challenge scores are written here after their papers.

- :func:`confusion_matrix`, :func:`classification_report` -- per-class sensitivity (recall),
  specificity, PPV (precision), NPV, F1 and their macro means; accuracy; Cohen's kappa;
- :func:`roc_auc`, :func:`pr_auc` (average precision), :func:`roc_curve`, and the
  one-vs-rest macro :func:`roc_auc_ovr`;
- challenge scores: :func:`physionet2016_macc`, :func:`physionet2022_weighted_accuracy`,
  :func:`icbhi_score`, :func:`cinc2017_f1`;
- :func:`eer` -- equal error rate of verification trials (embeddings);
- :func:`bootstrap_ci`, :func:`bootstrap_cis` -- percentile bootstrap confidence intervals of
  any of them (several on the same resamples);
- operating points of a score: :func:`operating_points` (Se/Sp/PPV/NPV at thresholds, PPV and
  NPV also at another prevalence, :func:`predictive_values`) and
  :func:`threshold_for_sensitivity`;
- :func:`subgroup_metrics` -- a metric with its bootstrap CI in each subgroup, flagged where
  the interval lies below the overall estimate.

Row ``i``, column ``j`` of a confusion matrix counts items of true class ``i`` predicted as
``j`` (scikit-learn's convention). Where a metric is undefined (no item of a class, one class
only for ROC-AUC) the result is NaN, without a warning.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import sklearn
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

__all__ = [
    "confusion_matrix", "ClassificationReport", "classification_report", "cohen_kappa",
    "roc_curve", "roc_auc", "roc_auc_ovr", "pr_auc", "physionet2016_macc",
    "physionet2022_weighted_accuracy", "PHYSIONET2022_MURMUR_WEIGHTS",
    "PHYSIONET2022_OUTCOME_WEIGHTS", "icbhi_score", "IcbhiScore", "cinc2017_f1", "eer",
    "ConfidenceInterval", "bootstrap_ci", "bootstrap_cis", "predictive_values",
    "OperatingPoints", "operating_points", "threshold_for_sensitivity", "SubgroupResult",
    "subgroup_metrics",
]

#: Class weights of the PhysioNet 2022 murmur score (Present, Unknown, Absent).
PHYSIONET2022_MURMUR_WEIGHTS = {"Present": 5.0, "Unknown": 3.0, "Absent": 1.0}
#: Class weights of the PhysioNet 2022 outcome score (Abnormal, Normal).
PHYSIONET2022_OUTCOME_WEIGHTS = {"Abnormal": 5.0, "Normal": 1.0}


def _labels(y, name: str) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim != 1 or a.size == 0:
        raise ValueError(f"{name} has shape {a.shape}, expected (n_items,) with n_items > 0")
    if a.dtype != bool and not np.issubdtype(a.dtype, np.integer) and np.any(np.mod(a, 1)):
        raise ValueError(f"{name} holds non-integer values, expected class indices")
    return a.astype(np.int64)


def _pair(y_true, y_pred, n_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} items and y_pred {p.size}, expected the same")
    k = int(max(t.max(), p.max()) + 1) if n_classes is None else n_classes
    if min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= k:
        raise ValueError(f"class indices must lie in [0, {k}), got {min(t.min(), p.min())}.."
                         f"{max(t.max(), p.max())}")
    return t, p, k


def confusion_matrix(y_true, y_pred, *, n_classes: int | None = None) -> np.ndarray:
    """Counts of true class ``i`` predicted as ``j`` (``sklearn.metrics.confusion_matrix``).

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
    with warnings.catch_warnings():      # sklearn warns about a 1 x 1 matrix, even asked for
        warnings.filterwarnings("ignore", "A single label was found", UserWarning)
        return skm.confusion_matrix(t, p, labels=np.arange(k)).astype(np.int64)


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


def _div(a, b) -> float:
    return float(a) / float(b) if b else float("nan")


def _nanmean(values) -> float:
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else float("nan")


def _ratio(num: np.ndarray, den: np.ndarray) -> list[float]:
    return np.where(den > 0, num / np.maximum(den, 1), np.nan).tolist()


def classification_report(y_true, y_pred, *, n_classes: int | None = None
                          ) -> ClassificationReport:
    """Sensitivity, specificity, PPV, NPV, F1 per class and macro; accuracy; Cohen's kappa.

    Precision, recall and F1 are ``sklearn.metrics.precision_recall_fscore_support``
    (``zero_division=nan``); specificity and NPV are the recall and precision of "not this
    class", read from ``sklearn.metrics.multilabel_confusion_matrix``; macro means leave NaN
    out, as scikit-learn's ``average="macro"`` does with ``zero_division=nan``.

    Parameters
    ----------
    y_true, y_pred : array of int [shape=(n_items,)]
    n_classes : int, optional

    Returns
    -------
    ClassificationReport
    """
    t, p, k = _pair(y_true, y_pred, n_classes)
    labels = np.arange(k)
    cm = confusion_matrix(t, p, n_classes=k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        ppv, se, f1, support = skm.precision_recall_fscore_support(
            t, p, labels=labels, zero_division=np.nan)
        kappa = float(skm.cohen_kappa_score(t, p, labels=labels))
    (tn, fp), (fn, _) = skm.multilabel_confusion_matrix(t, p, labels=labels).transpose(1, 2, 0)
    sp, npv = _ratio(tn, tn + fp), _ratio(tn, tn + fn)
    return ClassificationReport(
        sensitivity=se.tolist(), specificity=sp, ppv=ppv.tolist(), npv=npv, f1=f1.tolist(),
        macro_sensitivity=_nanmean(se), macro_specificity=_nanmean(sp),
        macro_ppv=_nanmean(ppv), macro_npv=_nanmean(npv), macro_f1=_nanmean(f1),
        accuracy=float(np.trace(cm) / t.size), kappa=kappa, support=support.tolist(),
        confusion=cm.tolist())


def cohen_kappa(y_true, y_pred, *, n_classes: int | None = None) -> float:
    """Cohen's kappa ``(p_o - p_e) / (1 - p_e)`` (Cohen 1960): ``sklearn.metrics.cohen_kappa_score``
    (unweighted); NaN when undefined (``p_e = 1``)."""
    t, p, k = _pair(y_true, y_pred, n_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return float(skm.cohen_kappa_score(t, p, labels=np.arange(k)))


# ------------------------------------------------------------------------------ ranking

def _binary(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    y = _labels(y_true, "y_true")
    s = np.asarray(scores, dtype=float)
    if s.shape != y.shape:
        raise ValueError(f"scores has shape {s.shape}, expected {y.shape} like y_true")
    if y.min() < 0 or y.max() > 1:
        raise ValueError("y_true must hold 0 (negative) and 1 (positive) for a binary metric")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores holds NaN or infinite values")
    return y, s


def roc_curve(y_true, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve at every distinct score: ``(fpr, tpr, thresholds)``, starting at (0, 0)
    with threshold ``inf`` (``sklearn.metrics.roc_curve(drop_intermediate=False)``); the rates
    are NaN when ``y_true`` lacks positives (tpr) or negatives (fpr).

    Parameters
    ----------
    y_true : array of {0, 1} [shape=(n_items,)]
    scores : array of float [shape=(n_items,)]
        Higher means more likely positive.
    """
    y, s = _binary(y_true, scores)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        fpr, tpr, thresholds = skm.roc_curve(y, s, pos_label=1, drop_intermediate=False)
    return fpr, tpr, thresholds


def roc_auc(y_true, scores) -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``: the Mann-Whitney U with
    ties counted half); NaN for one class."""
    y, s = _binary(y_true, scores)
    if y.min() == y.max():
        return float("nan")
    return float(skm.roc_auc_score(y, s))


def roc_auc_ovr(y_true, probabilities) -> float:
    """Macro one-vs-rest ROC-AUC over the classes present in ``y_true`` (sklearn's
    ``roc_auc_score(multi_class="ovr", average="macro")`` when every class is present).

    sklearn's multi-class form refuses a class missing from ``y_true`` (as in a bootstrap
    resample) and rows that do not sum to 1, so each class is scored with :func:`roc_auc`.

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
    ``sum_n (R_n - R_{n-1}) P_n`` (``sklearn.metrics.average_precision_score``, no
    interpolation); NaN without positives."""
    y, s = _binary(y_true, scores)
    if y.sum() == 0:
        return float("nan")
    return float(skm.average_precision_score(y, s))


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
    """Percentile bootstrap CI of ``metric(*arrays)``, resampling items with replacement:
    :func:`bootstrap_cis` with the one metric (see there for the parameters and resamples).

    Returns
    -------
    ConfidenceInterval
    """
    return bootstrap_cis({"": metric}, *arrays, n_bootstrap=n_bootstrap, level=level,
                         seed=seed)[""]


def bootstrap_cis(metrics: Mapping[str, Callable[..., float]], *arrays, n_bootstrap: int = 1000,
                  level: float = 0.95, seed: int = 0) -> dict[str, ConfidenceInterval]:
    """Percentile bootstrap CIs of several metrics, each evaluated on the same resamples.

    The arrays are resampled together (paired): resample ``b`` takes the items
    ``numpy.random.default_rng(seed).integers(0, n, n)`` (the ``b``-th such draw) from each,
    which are the resamples ``scipy.stats.bootstrap`` draws with that generator; every metric
    is called on the same resampled arrays (so a metric may share work, e.g. one
    classification report, across the others).

    Parameters
    ----------
    metrics : mapping of str to callable
        Name -> metric taking the arrays and returning a float; NaN results (e.g. a resample
        with one class for ROC-AUC) are left out and counted in ``n_undefined``.
    *arrays : array [shape=(n_items, ...)]
    n_bootstrap : int > 0
    level : float in (0, 1)
    seed : int

    Returns
    -------
    dict of str to ConfidenceInterval

    Notes
    -----
    Not ``scipy.stats.bootstrap`` itself: its percentile interval is NaN as soon as one
    resample is (a ROC-AUC resample with one class), where the interval here leaves such
    resamples out and counts them; and its paired resampling moves the item axis last and
    broadcasts the samples against each other, so ``(n_items,)`` labels do not go in beside
    ``(n_items, n_classes)`` probabilities.
    """
    if not arrays:
        raise ValueError("bootstrap_cis needs at least one array")
    arrs = [np.asarray(a) for a in arrays]
    n = arrs[0].shape[0]
    if any(a.shape[0] != n for a in arrs):
        raise ValueError(f"arrays have {[a.shape[0] for a in arrs]} items, expected the same "
                         f"number in each")
    if not 0 < level < 1:
        raise ValueError(f"level is {level!r}, expected a number in (0, 1)")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap is {n_bootstrap!r}, expected a positive integer")
    rng = np.random.default_rng(seed)
    values = np.empty((len(metrics), int(n_bootstrap)))
    # the resamples are slices of arrays the point estimates below validate: skip
    # scikit-learn's per-call parameter checks (about a fifth of its time here)
    with sklearn.config_context(skip_parameter_validation=True, assume_finite=True):
        for b in range(int(n_bootstrap)):
            idx = rng.integers(0, n, n)
            resample = [a[idx] for a in arrs]
            values[:, b] = [fn(*resample) for fn in metrics.values()]
    out = {}
    for (name, fn), vals in zip(metrics.items(), values):
        ok = vals[~np.isnan(vals)]
        lo, hi = (np.quantile(ok, [(1 - level) / 2, 1 - (1 - level) / 2]) if ok.size
                  else (math.nan, math.nan))
        out[name] = ConfidenceInterval(float(fn(*arrs)), float(lo), float(hi), level,
                                       n_bootstrap, n_bootstrap - ok.size)
    return out


# -------------------------------------------------------------------- operating points

def predictive_values(sensitivity, specificity, prevalence) -> tuple[np.ndarray, np.ndarray]:
    """PPV and NPV at a prevalence by Bayes' rule:
    ``PPV = Se pi / (Se pi + (1 - Sp)(1 - pi))``, ``NPV = Sp (1 - pi) / (Sp (1 - pi) +
    (1 - Se) pi)`` (Altman & Bland, BMJ 309 (1994) 102); NaN where a denominator is 0.

    Parameters
    ----------
    sensitivity, specificity : float or array of float in [0, 1]
    prevalence : float in (0, 1)
    """
    if not 0 < prevalence < 1:
        raise ValueError(f"prevalence is {prevalence!r}, expected a number in (0, 1)")
    se = np.asarray(sensitivity, dtype=float)
    sp = np.asarray(specificity, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ppv = se * prevalence / (se * prevalence + (1 - sp) * (1 - prevalence))
        npv = sp * (1 - prevalence) / (sp * (1 - prevalence) + (1 - se) * prevalence)
    return ppv, npv


@dataclass(frozen=True)
class OperatingPoints:
    """Se/Sp/PPV/NPV of the rule ``score >= threshold`` at each threshold.

    Attributes
    ----------
    thresholds, sensitivity, specificity, ppv, npv : np.ndarray [shape=(n_thresholds,)]
        PPV and NPV at the prevalence of the data (NaN where nothing is predicted positive,
        respectively negative).
    prevalence : float
        Of the data.
    ppv_at, npv_at : np.ndarray or None
        PPV and NPV at ``prevalence_at`` (:func:`predictive_values`), when one was given.
    prevalence_at : float or None
    """

    thresholds: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    ppv: np.ndarray
    npv: np.ndarray
    prevalence: float
    ppv_at: np.ndarray | None = None
    npv_at: np.ndarray | None = None
    prevalence_at: float | None = None

    def to_dict(self) -> dict:
        return {k: (np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
                for k, v in asdict(self).items()}


def operating_points(y_true, scores, thresholds, *, prevalence: float | None = None
                     ) -> OperatingPoints:
    """Sensitivity, specificity, PPV and NPV of ``scores >= t`` for each threshold ``t``.

    Parameters
    ----------
    y_true : array of {0, 1} [shape=(n_items,)]
    scores : array of float [shape=(n_items,)]
    thresholds : array of float [shape=(n_thresholds,)]
    prevalence : float in (0, 1), optional
        Also give PPV and NPV at this prevalence (e.g. the clinic's), from Se and Sp.

    Returns
    -------
    OperatingPoints
    """
    y, s = _binary(y_true, scores)
    t = np.asarray(thresholds, dtype=float).ravel()
    pred = s[None, :] >= t[:, None]                               # (n_thresholds, n_items)
    pos = y.astype(bool)
    tp = (pred & pos).sum(1)
    fp = (pred & ~pos).sum(1)
    fn = (~pred & pos).sum(1)
    tn = (~pred & ~pos).sum(1)
    se, sp = np.array(_ratio(tp, tp + fn)), np.array(_ratio(tn, tn + fp))
    ppv, npv = np.array(_ratio(tp, tp + fp)), np.array(_ratio(tn, tn + fn))
    at = predictive_values(se, sp, prevalence) if prevalence is not None else (None, None)
    return OperatingPoints(t, se, sp, ppv, npv, float(pos.mean()), at[0], at[1], prevalence)


def threshold_for_sensitivity(y_true, scores, min_sensitivity: float) -> float:
    """The highest threshold ``t`` at which ``scores >= t`` reaches ``min_sensitivity``: the
    most specific rule that still finds that share of the positives.

    Parameters
    ----------
    y_true : array of {0, 1} [shape=(n_items,)]
    scores : array of float [shape=(n_items,)]
    min_sensitivity : float in (0, 1]

    Returns
    -------
    float
        A score of one of the positives; NaN without positives.
    """
    if not 0 < min_sensitivity <= 1:
        raise ValueError(f"min_sensitivity is {min_sensitivity!r}, expected a number in (0, 1]")
    y, s = _binary(y_true, scores)
    pos = np.sort(s[y == 1])[::-1]                 # positives' scores, highest first
    if pos.size == 0:
        return float("nan")
    k = int(math.ceil(min_sensitivity * pos.size - 1e-9))   # positives to find
    return float(pos[max(k, 1) - 1])


# ---------------------------------------------------------------------------- subgroups

@dataclass(frozen=True)
class SubgroupResult:
    """A metric in one subgroup: its value, ``n`` items, the CI, and ``below``: the
    interval's upper end lies below the overall point estimate."""

    value: str
    n: int
    ci: ConfidenceInterval
    below: bool

    def to_dict(self) -> dict:
        return {"value": self.value, "n": self.n, **self.ci.to_dict(), "below": self.below}


def subgroup_metrics(metric: Callable[..., float], groups: Sequence, *arrays,
                     overall: float | None = None, n_bootstrap: int = 1000,
                     level: float = 0.95, seed: int = 0) -> list[SubgroupResult]:
    """``metric`` with its percentile bootstrap CI (:func:`bootstrap_ci`) in each subgroup.

    Parameters
    ----------
    metric : callable
        Takes the arrays of a subgroup and returns a float (NaN where undefined).
    groups : sequence [n_items]
        The subgroup of each item (e.g. ``"female"``); ``None`` items are left out.
    *arrays : array [shape=(n_items, ...)]
        E.g. labels and probabilities.
    overall : float, optional
        The point estimate on all items (default: ``metric(*arrays)``); a subgroup is flagged
        when its interval's upper end is below it.

    Returns
    -------
    list of SubgroupResult
        In order of the subgroups' values (as strings).
    """
    arrs = [np.asarray(a) for a in arrays]
    g = np.array(["" if v is None else str(v) for v in groups], dtype=object)
    keep = np.array([v is not None for v in groups])
    if g.size != arrs[0].shape[0]:
        raise ValueError(f"groups has {g.size} items, expected {arrs[0].shape[0]} as the "
                         f"arrays")
    ref = float(metric(*arrs)) if overall is None else float(overall)
    out = []
    for v in sorted(set(g[keep])):
        m = keep & (g == v)
        ci = bootstrap_ci(metric, *[a[m] for a in arrs], n_bootstrap=n_bootstrap, level=level,
                          seed=seed)
        out.append(SubgroupResult(v, int(m.sum()), ci,
                                  bool(np.isfinite(ci.high) and ci.high < ref)))
    return out
