"""Shape checks shared by the models (errors name the argument, the shape and what is expected)."""

from __future__ import annotations

import torch


def check_features(x: torch.Tensor, *, n_features: int, name: str = "features",
                   min_frames: int = 1) -> None:
    """Raise ``ValueError`` unless ``x`` is ``(batch, n_features, n_frames >= min_frames)``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} is {type(x).__name__}, expected a torch.Tensor")
    if x.ndim != 3 or x.shape[1] != n_features:
        raise ValueError(f"{name} has shape {tuple(x.shape)}, expected (batch, {n_features}, "
                         f"n_frames)")
    if x.shape[2] < min_frames:
        raise ValueError(f"{name} has {x.shape[2]} frames, expected at least {min_frames}")


def check_lengths(lengths: torch.Tensor | None, x: torch.Tensor) -> None:
    if lengths is None:
        return
    if lengths.ndim != 1 or lengths.shape[0] != x.shape[0]:
        raise ValueError(f"lengths has shape {tuple(lengths.shape)}, expected ({x.shape[0]},)")
    if (lengths < 1).any() or (lengths > x.shape[-1]).any():
        raise ValueError(f"lengths must lie in [1, {x.shape[-1]}]")


def frame_mask(lengths: torch.Tensor | None, n_frames: int, n_in: int,
               device) -> torch.Tensor | None:
    """Boolean ``(batch, n_frames)`` mask of valid frames after downsampling ``n_in`` frames
    to ``n_frames``."""
    if lengths is None:
        return None
    scaled = torch.ceil(lengths.to(device).float() * n_frames / n_in).clamp(1, n_frames)
    return torch.arange(n_frames, device=device)[None, :] < scaled[:, None]
