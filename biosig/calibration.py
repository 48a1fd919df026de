"""Calibration of predicted probabilities: how far they are from observed frequencies, and two
ways of fitting a correction on validation data.

- :func:`reliability_bins` -- equal-width bins of predicted probability with the observed
  frequency in each (the points of a reliability diagram);
- :func:`expected_calibration_error` -- ECE, the bin-size weighted mean of
  ``|observed - predicted|`` (Naeini et al., AAAI 2015; Guo et al., ICML 2017);
- :func:`brier_score` -- mean squared error of the probabilities (Brier 1950);
- :func:`fit_temperature`, :func:`apply_temperature` -- temperature scaling, one parameter
  ``T`` dividing the log-probabilities before the softmax (Guo et al., ICML 2017);
- :func:`fit_isotonic`, :func:`apply_isotonic` -- isotonic regression of each class's
  one-vs-rest probability (Zadrozny & Elkan, KDD 2002; ``sklearn.isotonic``), renormalised.

Probabilities are ``(n_items, n_classes)`` rows (a binary model has two columns); labels are
class indices. A binary reliability diagram and ECE read the positive class's probability
(``positive=1``); a multi-class one reads the top-label confidence (``positive=None``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.isotonic import IsotonicRegression

__all__ = ["ReliabilityBins", "reliability_bins", "expected_calibration_error", "brier_score",
           "fit_temperature", "apply_temperature", "IsotonicMaps", "fit_isotonic",
           "apply_isotonic"]


def _check(y_true, probs) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probs has shape {p.shape}, expected (n_items, n_classes >= 2)")
    if y.ndim != 1 or y.size != p.shape[0] or y.size == 0:
        raise ValueError(f"y_true has shape {y.shape}, expected ({p.shape[0]},) with at least "
                         f"one item")
    if y.min() < 0 or y.max() >= p.shape[1] or np.any(np.mod(y, 1)):
        raise ValueError(f"y_true holds values outside the class indices 0..{p.shape[1] - 1}")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("probs holds values outside [0, 1] (or NaN)")
    return y.astype(np.int64), p


@dataclass(frozen=True)
class ReliabilityBins:
    """Equal-width bins of predicted probability.

    Attributes
    ----------
    edges : np.ndarray [shape=(n_bins + 1,)]
    mean_predicted, observed : np.ndarray [shape=(n_bins,)]
        Mean predicted probability and observed frequency of the event in each bin (NaN for an
        empty bin).
    count : np.ndarray of int [shape=(n_bins,)]
    """

    edges: np.ndarray
    mean_predicted: np.ndarray
    observed: np.ndarray
    count: np.ndarray

    def to_dict(self) -> dict:
        return {k: np.asarray(v).tolist() for k, v in asdict(self).items()}


def _event(y, p, positive: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(predicted probability, 0/1 event) of a binary class or of the top label."""
    if positive is None:
        return p.max(axis=1), (p.argmax(axis=1) == y).astype(float)
    if not 0 <= positive < p.shape[1]:
        raise ValueError(f"positive is {positive}, expected a class index below {p.shape[1]}")
    return p[:, positive], (y == positive).astype(float)


def reliability_bins(y_true, probs, *, n_bins: int = 10, positive: int | None = 1
                     ) -> ReliabilityBins:
    """Reliability diagram points: items binned by predicted probability.

    Parameters
    ----------
    y_true : array of int [shape=(n_items,)]
    probs : array of float [shape=(n_items, n_classes)]
    n_bins : int > 0
        Equal-width bins over [0, 1]; a probability of exactly 1 falls in the last.
    positive : int or None
        The class whose probability is binned (event: ``y_true == positive``); None bins the
        top-label confidence ``max(probs)`` (event: the arg-max is right).

    Returns
    -------
    ReliabilityBins
    """
    y, p = _check(y_true, probs)
    if int(n_bins) < 1:
        raise ValueError(f"n_bins is {n_bins!r}, expected a positive integer")
    conf, hit = _event(y, p, positive)
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=False), 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(idx, conf, minlength=n_bins) / count
        obs = np.bincount(idx, hit, minlength=n_bins) / count
    return ReliabilityBins(edges, mean_p, obs, count.astype(np.int64))


def expected_calibration_error(y_true, probs, *, n_bins: int = 10, positive: int | None = 1
                               ) -> float:
    """Expected calibration error ``sum_b (n_b / n) |observed_b - mean_predicted_b|``.

    Equal-width bins as :func:`reliability_bins` (Naeini et al., AAAI 2015; with
    ``positive=None`` the top-label ECE of Guo et al., ICML 2017). A perfectly calibrated
    predictor has an ECE that tends to 0 as the items grow (about ``sqrt(n_bins / n)`` from
    sampling alone).

    Returns
    -------
    float in [0, 1]
    """
    b = reliability_bins(y_true, probs, n_bins=n_bins, positive=positive)
    ok = b.count > 0
    return float(np.sum(b.count[ok] * np.abs(b.observed[ok] - b.mean_predicted[ok]))
                 / b.count.sum())


def brier_score(y_true, probs, *, positive: int | None = 1) -> float:
    """Brier score: mean squared difference between probability and outcome.

    Binary form ``mean((p_pos - [y == pos])^2)`` with ``positive`` (0 is perfect, 0.25 a
    constant 0.5); with ``positive=None`` the multi-class form
    ``mean(sum_c (p_c - [y == c])^2)`` (Brier 1950; twice the binary form for two classes).
    """
    y, p = _check(y_true, probs)
    if positive is not None:
        q, hit = _event(y, p, positive)
        return float(np.mean((q - hit) ** 2))
    onehot = np.eye(p.shape[1])[y]
    return float(np.mean(np.sum((p - onehot) ** 2, axis=1)))


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(p, 1e-12, 1.0))


def apply_temperature(probs, temperature: float) -> np.ndarray:
    """``softmax(log(probs) / T)``: temperature scaling of probabilities.

    ``T > 1`` softens over-confident probabilities, ``T < 1`` sharpens them; the arg-max (and
    so every hard prediction) is unchanged. The log-probabilities stand for the logits: they
    differ by a per-item constant, which the softmax ignores.

    Parameters
    ----------
    probs : array of float [shape=(n_items, n_classes)]
    temperature : float > 0
    """
    p = np.asarray(probs, dtype=float)
    if not (np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature is {temperature!r}, expected a number > 0")
    z = _log(p) / float(temperature)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(y_true, probs, *, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature ``T`` minimising the negative log-likelihood of
    :func:`apply_temperature` on (validation) data (Guo et al., ICML 2017).

    A bounded 1-D search in ``log T`` (``scipy.optimize.minimize_scalar``); the NLL is convex
    in ``1 / T``, so the minimum is unique.

    Parameters
    ----------
    y_true : array of int [shape=(n_items,)]
    probs : array of float [shape=(n_items, n_classes)]
    bounds : (float, float)
        Range of ``T`` searched.

    Returns
    -------
    float
    """
    y, p = _check(y_true, probs)
    z = _log(p)
    rows = np.arange(y.size)

    def nll(log_t: float) -> float:
        s = z / np.exp(log_t)
        s = s - s.max(axis=1, keepdims=True)
        return float(-np.mean(s[rows, y] - np.log(np.exp(s).sum(axis=1))))

    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    res = minimize_scalar(nll, bounds=(lo, hi), method="bounded",
                          options={"xatol": 1e-4})
    return float(np.exp(res.x))


@dataclass(frozen=True)
class IsotonicMaps:
    """Per-class isotonic maps of one-vs-rest probabilities: ``x[c]`` and ``y[c]`` are the
    knots of class ``c``'s non-decreasing map (``np.interp`` between them, constant beyond)."""

    x: list[list[float]]
    y: list[list[float]]

    def to_dict(self) -> dict:
        return asdict(self)


def fit_isotonic(y_true, probs) -> IsotonicMaps:
    """Isotonic regression of ``[y == c]`` on ``probs[:, c]`` for each class
    (``sklearn.isotonic.IsotonicRegression``, clipped to [0, 1]; Zadrozny & Elkan, KDD 2002).

    A class absent from ``y_true`` (or present alone) gets the identity map.
    """
    y, p = _check(y_true, probs)
    xs, ys = [], []
    for c in range(p.shape[1]):
        hit = (y == c).astype(float)
        if hit.min() == hit.max():
            xs.append([0.0, 1.0])
            ys.append([0.0, 1.0])
            continue
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p[:, c], hit)
        xs.append(iso.X_thresholds_.tolist())
        ys.append(iso.y_thresholds_.tolist())
    return IsotonicMaps(xs, ys)


def apply_isotonic(probs, maps: IsotonicMaps) -> np.ndarray:
    """Each class's probability through its isotonic map, rows renormalised to sum 1 (a row
    mapped to all zeros keeps its input)."""
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or p.shape[1] != len(maps.x):
        raise ValueError(f"probs has shape {p.shape}, expected (n_items, {len(maps.x)})")
    q = np.stack([np.interp(p[:, c], maps.x[c], maps.y[c]) for c in range(p.shape[1])], 1)
    s = q.sum(axis=1, keepdims=True)
    return np.where(s > 0, q / np.where(s > 0, s, 1.0), p)
