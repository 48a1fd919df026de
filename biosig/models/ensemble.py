"""Several classifiers as one: their class probabilities averaged.

One class serves both uses in biosig:

- the ``members`` of one run (``model.members: N``): N networks of the same family, each from
  its own random initialisation, trained side by side on the same batches, each with its own
  cross-entropy (a deep ensemble, Lakshminarayanan et al. 2017); the run keeps them in one
  checkpoint and every later step (validation, the hybrid stage, ``biosig score model``) sees
  one model;
- the K fold models of a K-fold run (:func:`biosig.train.inference.load_run`).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Ensemble"]


class Ensemble(nn.Module):
    """Models ``(batch, n_features, n_frames) -> (batch, n_classes)`` as one.

    In evaluation mode ``forward`` gives the log of the members' mean class probabilities (a
    softmax of it is that mean); in training mode it gives every member's logits,
    ``(batch, n_members, n_classes)``, so that each member is trained on its own loss
    (:func:`biosig.train.engine.compute_loss` averages them). ``embed`` is the members' mean
    embedding, where every member has one; ``cam_layer`` (Grad-CAM) is the first member's.

    Parameters
    ----------
    models : sequence of nn.Module
        At least one; all give the same number of classes.
    """

    def __init__(self, models):
        super().__init__()
        models = list(models)
        if not models:
            raise ValueError("an Ensemble needs at least one model")
        self.models = nn.ModuleList(models)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([m(features) for m in self.models], dim=1)   # (batch, m, class)
        return logits if self.training else self.mean_log_probs(logits)

    @staticmethod
    def mean_log_probs(logits: torch.Tensor) -> torch.Tensor:
        """``(batch, n_classes)`` log of the mean class probabilities of members' logits
        ``(batch, n_members, n_classes)``."""
        return torch.log(torch.softmax(logits.float(), -1).mean(1).clamp_min(1e-12))

    def __getattr__(self, name):
        if name == "embed":                  # only where every member has embeddings
            models = super().__getattr__("models")
            if all(hasattr(m, "embed") for m in models):
                return lambda f: torch.stack([m.embed(f).float() for m in models]).mean(0)
            raise AttributeError(name)
        if name == "cam_layer":              # Grad-CAM explains one model: the first member's
            return getattr(super().__getattr__("models")[0], name)
        return super().__getattr__(name)
