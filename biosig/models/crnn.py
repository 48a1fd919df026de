"""CRNN: convolutional blocks, a bidirectional GRU and attention pooling (as in sound-event
detection systems, e.g. Cakir et al., IEEE/ACM TASLP 25 (2017) 1291)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from biosig.models._checks import check_features, check_lengths, frame_mask

__all__ = ["CRNN", "AttentionPool"]


class AttentionPool(nn.Module):
    """Attention-weighted mean over time.

    ``forward(h (batch, n_frames, dim), mask (batch, n_frames) | None) -> (pooled (batch, dim),
    weights (batch, n_frames))``.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1))

    def forward(self, h: torch.Tensor, mask: torch.Tensor | None = None):
        e = self.score(h).squeeze(-1)                          # (batch, n_frames)
        if mask is not None:
            e = e.masked_fill(~mask, torch.finfo(e.dtype).min)
        w = torch.softmax(e, dim=-1)
        return torch.einsum("bt,btd->bd", w, h), w


class CRNN(nn.Module):
    """Conv2d blocks over (feature, time) -> BiGRU over time -> attention pooling -> logits.

    Parameters
    ----------
    n_features : int
        Feature bins (e.g. mel bands).
    n_classes : int
    channels : sequence of int
        Output channels of the conv blocks (conv 3x3, batch norm, ReLU, max-pool).
    pool_time : sequence of int
        Max-pool factor along time per block (1 keeps the frame rate); the feature axis is
        always pooled by 2.
    gru_hidden, gru_layers : int
    dropout : float
    """

    def __init__(self, *, n_features: int, n_classes: int,
                 channels: Sequence[int] = (32, 64, 128), pool_time: Sequence[int] = (2, 2, 1),
                 gru_hidden: int = 64, gru_layers: int = 1, dropout: float = 0.2):
        super().__init__()
        if len(channels) != len(pool_time) or not channels:
            raise ValueError(f"channels and pool_time must have one non-zero length, got "
                             f"{len(channels)} and {len(pool_time)}")
        self.n_features, self.n_classes = int(n_features), int(n_classes)
        blocks = []
        c_in, f = 1, self.n_features
        for c, pt in zip(channels, pool_time):
            blocks.append(nn.Sequential(nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c),
                                        nn.ReLU(), nn.MaxPool2d((2 if f >= 2 else 1, pt)),
                                        nn.Dropout(dropout)))
            f = f // 2 if f >= 2 else f
            c_in = c
        self.conv = nn.Sequential(*blocks)
        self.time_factor = 1
        for pt in pool_time:
            self.time_factor *= int(pt)
        self.gru = nn.GRU(c_in * f, gru_hidden, num_layers=gru_layers, batch_first=True,
                          bidirectional=True, dropout=dropout if gru_layers > 1 else 0.0)
        self.pool = AttentionPool(2 * gru_hidden)
        self.frame_head = nn.Linear(2 * gru_hidden, self.n_classes)
        self.head = nn.Linear(2 * gru_hidden, self.n_classes)

    def cam_layer(self) -> nn.Module:
        """The last conv block (for Grad-CAM)."""
        return self.conv[-1]

    def _sequence(self, features, lengths):
        check_features(features, n_features=self.n_features, min_frames=self.time_factor)
        check_lengths(lengths, features)
        h = self.conv(features[:, None])                   # (batch, C, F', T')
        b, c, f, t = h.shape
        h = h.permute(0, 3, 1, 2).reshape(b, t, c * f)     # (batch, T', C*F')
        h, _ = self.gru(h)                                 # (batch, T', 2*hidden)
        return h, frame_mask(lengths, t, features.shape[-1], h.device)

    def frame_logits(self, features: torch.Tensor, lengths: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """Frame-level logits ``(batch, n_frames // time_factor, n_classes)``."""
        h, _ = self._sequence(features, lengths)
        return self.frame_head(h)

    def embed(self, features: torch.Tensor, lengths: torch.Tensor | None = None
              ) -> torch.Tensor:
        """The recording's embedding: the attention-pooled GRU states the head reads,
        ``(batch, 2 * gru_hidden)`` (the hybrid stage's ``embedding`` input)."""
        h, mask = self._sequence(features, lengths)
        pooled, _ = self.pool(h, mask)
        return pooled

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> torch.Tensor:
        """``(batch, n_features, n_frames)`` -> logits ``(batch, n_classes)``."""
        return self.head(self.embed(features, lengths))
