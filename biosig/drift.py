"""Distribution shift between the data a model trained on and the data it scores.

Each recording is summarised by a vector (e.g. the mean and standard deviation over time of
each feature bin: :func:`feature_statistics`); the training vectors define a Gaussian (mean and
a Ledoit-Wolf shrunk covariance, :func:`fit_feature_distribution`), a new recording's
:func:`mahalanobis_distance` from it is its out-of-distribution score, and the flag threshold
is a quantile of the scores of held-out (validation) recordings of the training data
(:func:`drift_threshold`), so that about ``1 - quantile`` of in-distribution recordings are
flagged (Lee et al., NeurIPS 2018, use the Mahalanobis distance of features the same way).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.covariance import LedoitWolf

__all__ = ["feature_statistics", "FeatureDistribution", "fit_feature_distribution",
           "mahalanobis_distance", "drift_threshold", "level_db"]


def feature_statistics(features) -> np.ndarray:
    """Mean and standard deviation over frames of each feature bin.

    Parameters
    ----------
    features : array of float [shape=(n_features, n_frames)]
        One recording's features (e.g. a log-mel spectrogram in dB).

    Returns
    -------
    np.ndarray [shape=(2 * n_features,)]
        ``[mean_0 .. mean_{F-1}, std_0 .. std_{F-1}]``.
    """
    f = np.asarray(features, dtype=float)
    if f.ndim != 2 or f.shape[1] == 0:
        raise ValueError(f"features has shape {f.shape}, expected (n_features, n_frames > 0)")
    return np.concatenate([f.mean(axis=1), f.std(axis=1)])


def level_db(signal) -> float:
    """Root-mean-square level of a signal in dB (``20 log10 rms``; -inf dB floored at -300)."""
    x = np.asarray(signal, dtype=float)
    if x.size == 0:
        raise ValueError("signal is empty, expected at least one sample")
    return float(20 * np.log10(max(np.sqrt(np.mean(x ** 2)), 1e-15)))


@dataclass(frozen=True)
class FeatureDistribution:
    """The training vectors' mean ``(dim,)``, the precision (inverse shrunk covariance)
    ``(dim, dim)`` and the per-dimension scale ``(dim,)`` the vectors were divided by."""

    mean: np.ndarray
    precision: np.ndarray
    scale: np.ndarray


def _matrix(vectors, name: str) -> np.ndarray:
    x = np.asarray(vectors, dtype=float)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} has shape {x.shape}, expected (n_items > 0, dim)")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return x


def fit_feature_distribution(vectors) -> FeatureDistribution:
    """Mean and Ledoit-Wolf shrunk precision of the training vectors
    (``sklearn.covariance.LedoitWolf``; Ledoit & Wolf, J. Multivar. Anal. 88 (2004) 365),
    after scaling each dimension to unit standard deviation (so dB and ratios weigh alike).
    Shrinkage keeps the precision finite with fewer recordings than dimensions.

    Parameters
    ----------
    vectors : array of float [shape=(n_items >= 2, dim)]
    """
    x = _matrix(vectors, "vectors")
    if x.shape[0] < 2:
        raise ValueError(f"vectors has {x.shape[0]} item, expected at least 2 to fit a "
                         f"covariance")
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    z = x / scale
    lw = LedoitWolf().fit(z)
    return FeatureDistribution(lw.location_ * scale, lw.precision_, scale)


def mahalanobis_distance(vectors, dist: FeatureDistribution) -> np.ndarray:
    """``sqrt((z - mu)^T P (z - mu))`` of each vector (scaled as in the fit) from ``dist``.

    Parameters
    ----------
    vectors : array of float [shape=(n_items, dim)]
    dist : FeatureDistribution

    Returns
    -------
    np.ndarray [shape=(n_items,)]
        0 at the training mean; higher is further.
    """
    x = _matrix(vectors, "vectors")
    if x.shape[1] != dist.mean.size:
        raise ValueError(f"vectors has dimension {x.shape[1]}, expected {dist.mean.size} as "
                         f"the training distribution")
    d = (x - dist.mean) / dist.scale
    return np.sqrt(np.maximum(np.einsum("nd,de,ne->n", d, dist.precision, d), 0.0))


def drift_threshold(scores, *, quantile: float = 0.95) -> float:
    """The flag threshold: the ``quantile`` of the scores of held-out in-distribution
    recordings (``numpy.quantile``, linear), so that about ``1 - quantile`` of such recordings
    score above it.

    Parameters
    ----------
    scores : array of float [shape=(n_items,)]
    quantile : float in (0, 1)
    """
    s = np.asarray(scores, dtype=float).ravel()
    if s.size == 0 or not np.all(np.isfinite(s)):
        raise ValueError(f"scores has {s.size} values (or NaN), expected finite values")
    if not 0 < quantile < 1:
        raise ValueError(f"quantile is {quantile!r}, expected a number in (0, 1)")
    return float(np.quantile(s, quantile))
