"""Bidirectional LSTM classifier for rhythm (beat/RR sequences, framed ECG) and EEG segments."""

from __future__ import annotations

import torch
from torch import nn

from biosig.models._checks import check_features, check_lengths, frame_mask
from biosig.models.crnn import AttentionPool

__all__ = ["BiLSTM"]


class BiLSTM(nn.Module):
    """Linear input projection -> bidirectional LSTM -> attention pooling -> logits.

    Parameters
    ----------
    n_features : int
        Values per time step (feature bins, or samples per frame for framed raw signals).
    n_classes : int
    hidden, layers : int
    dropout : float
    """

    def __init__(self, *, n_features: int, n_classes: int, hidden: int = 64, layers: int = 2,
                 dropout: float = 0.2):
        super().__init__()
        self.n_features, self.n_classes = int(n_features), int(n_classes)
        self.proj = nn.Sequential(nn.Linear(self.n_features, hidden), nn.ReLU())
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True,
                            bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.pool = AttentionPool(2 * hidden)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, self.n_classes))

    def embed(self, features: torch.Tensor, lengths: torch.Tensor | None = None
              ) -> torch.Tensor:
        """The recording's embedding: the attention-pooled LSTM states the head reads,
        ``(batch, 2 * hidden)`` (the hybrid stage's ``embedding`` input)."""
        check_features(features, n_features=self.n_features)
        check_lengths(lengths, features)
        h = self.proj(features.transpose(1, 2))            # (batch, n_frames, hidden)
        h, _ = self.lstm(h)                                # (batch, n_frames, 2*hidden)
        pooled, _ = self.pool(h, frame_mask(lengths, h.shape[1], features.shape[-1], h.device))
        return pooled

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> torch.Tensor:
        """``(batch, n_features, n_frames)`` -> logits ``(batch, n_classes)``."""
        return self.head(self.embed(features, lengths))
