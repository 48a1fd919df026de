"""Build a model from its config section (``model.name`` picks the family)."""

from __future__ import annotations

from torch import nn

from biosig.errors import ConfigError
from biosig.models.crnn import CRNN
from biosig.models.ensemble import Ensemble
from biosig.models.lstm import BiLSTM
from biosig.models.tdnn import XVector

__all__ = ["build_model"]


def build_model(cfg, *, n_features: int, n_classes: int) -> nn.Module:
    """A fresh model for ``cfg`` (a :mod:`biosig.train.config` model section): one network,
    or with ``cfg.members`` N > 1 an :class:`~biosig.models.Ensemble` of N, each from its own
    random initialisation.

    Parameters
    ----------
    cfg : CRNNConfig or TDNNConfig or LSTMConfig
    n_features : int
        Feature bins per frame the front-end gives.
    n_classes : int
    """
    if cfg.members > 1:
        return Ensemble([_one(cfg, n_features=n_features, n_classes=n_classes)
                         for _ in range(cfg.members)])
    return _one(cfg, n_features=n_features, n_classes=n_classes)


def _one(cfg, *, n_features: int, n_classes: int) -> nn.Module:
    if cfg.name == "crnn":
        return CRNN(n_features=n_features, n_classes=n_classes, channels=cfg.channels,
                    pool_time=cfg.pool_time, gru_hidden=cfg.gru_hidden,
                    gru_layers=cfg.gru_layers, dropout=cfg.dropout)
    if cfg.name == "tdnn":
        return XVector(n_features=n_features, n_classes=n_classes, channels=cfg.channels,
                       kernel_sizes=cfg.kernel_sizes, dilations=cfg.dilations,
                       embedding_dim=cfg.embedding_dim, dropout=cfg.dropout)
    if cfg.name == "lstm":
        return BiLSTM(n_features=n_features, n_classes=n_classes, hidden=cfg.hidden,
                      layers=cfg.layers, dropout=cfg.dropout)
    raise ConfigError(f"model.name is {cfg.name!r}, expected crnn, tdnn or lstm")
