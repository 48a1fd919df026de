"""TDNN / x-vector (Snyder et al., "X-vectors: robust DNN embeddings for speaker recognition",
ICASSP 2018)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from biosig.models._checks import check_features, check_lengths, frame_mask

__all__ = ["XVector", "stats_pool"]


def stats_pool(x: torch.Tensor, mask: torch.Tensor | None = None,
               eps: float = 1e-5) -> torch.Tensor:
    """Mean and standard deviation over time.

    Parameters
    ----------
    x : torch.Tensor [shape=(batch, channels, n_frames)]
    mask : torch.Tensor of bool [shape=(batch, n_frames)], optional
        Valid frames (padding excluded).

    Returns
    -------
    torch.Tensor [shape=(batch, 2 * channels)]
        ``[mean, std]`` concatenated.
    """
    if mask is None:
        mean = x.mean(-1)
        var = x.var(-1, unbiased=False)
    else:
        m = mask[:, None, :].to(x.dtype)
        n = m.sum(-1).clamp(min=1.0)
        mean = (x * m).sum(-1) / n
        var = (((x - mean[..., None]) ** 2) * m).sum(-1) / n
    return torch.cat([mean, torch.sqrt(var.clamp(min=eps))], dim=-1)


class XVector(nn.Module):
    """Frame-level dilated TDNN layers, statistics pooling, segment-level embedding, classifier.

    Parameters
    ----------
    n_features : int
        Feature bins per frame (e.g. 24-80 filterbanks or MFCCs).
    n_classes : int
    channels : sequence of int
        Output channels of the frame-level layers (the paper: 512, 512, 512, 512, 1500).
    kernel_sizes, dilations : sequence of int
        Per frame-level layer (the paper: 5, 3, 3, 1, 1 and 1, 2, 3, 1, 1).
    embedding_dim : int
        Size of the segment-level embedding ("x-vector", layer 6, before its ReLU).
    dropout : float
    """

    def __init__(self, *, n_features: int, n_classes: int,
                 channels: Sequence[int] = (512, 512, 512, 512, 1500),
                 kernel_sizes: Sequence[int] = (5, 3, 3, 1, 1),
                 dilations: Sequence[int] = (1, 2, 3, 1, 1),
                 embedding_dim: int = 512, dropout: float = 0.0):
        super().__init__()
        if not (len(channels) == len(kernel_sizes) == len(dilations)) or not channels:
            raise ValueError(f"channels, kernel_sizes and dilations must have one equal, "
                             f"non-zero length, got {len(channels)}, {len(kernel_sizes)}, "
                             f"{len(dilations)}")
        self.n_features, self.n_classes = int(n_features), int(n_classes)
        layers = []
        c_in = self.n_features
        for c, k, d in zip(channels, kernel_sizes, dilations):
            layers += [nn.Conv1d(c_in, c, k, dilation=d, padding=d * (k - 1) // 2),
                       nn.ReLU(), nn.BatchNorm1d(c)]
            c_in = c
        self.frame_layers = nn.Sequential(*layers)
        self.receptive_field = 1 + sum(d * (k - 1) for k, d in zip(kernel_sizes, dilations))
        self.segment1 = nn.Linear(2 * c_in, embedding_dim)
        self.segment_rest = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(embedding_dim),
                                          nn.Dropout(dropout),
                                          nn.Linear(embedding_dim, embedding_dim), nn.ReLU(),
                                          nn.BatchNorm1d(embedding_dim), nn.Dropout(dropout))
        self.classifier = nn.Linear(embedding_dim, self.n_classes)

    def cam_layer(self) -> nn.Module:
        """The last frame-level layer (for Grad-CAM)."""
        return self.frame_layers

    def embed(self, features: torch.Tensor, lengths: torch.Tensor | None = None
              ) -> torch.Tensor:
        """Segment embedding (the x-vector).

        Parameters
        ----------
        features : torch.Tensor [shape=(batch, n_features, n_frames)]
        lengths : torch.Tensor of int [shape=(batch,)], optional
            Valid frames per item (the rest is padding).

        Returns
        -------
        torch.Tensor [shape=(batch, embedding_dim)]
        """
        check_features(features, n_features=self.n_features)
        check_lengths(lengths, features)
        h = self.frame_layers(features)                   # (batch, channels[-1], n_frames)
        pooled = stats_pool(h, frame_mask(lengths, h.shape[-1], features.shape[-1], h.device))
        return self.segment1(pooled)                       # (batch, embedding_dim)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> torch.Tensor:
        """``(batch, n_features, n_frames)`` -> logits ``(batch, n_classes)``."""
        return self.classifier(self.segment_rest(self.embed(features, lengths)))
