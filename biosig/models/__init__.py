"""Neural networks for biosignal classification.

Every model takes features ``(batch, n_features, n_frames)`` (time last, as the front-ends in
:mod:`biosig.features` produce them) and returns class logits ``(batch, n_classes)``.

- :class:`XVector` -- TDNN/x-vector: dilated 1-D convolutions over frames, statistics pooling,
  segment-level embedding (:meth:`XVector.embed`) (Snyder et al. 2018);
- :class:`CRNN` -- 2-D conv blocks, bidirectional GRU and attention pooling, with frame-level
  logits (:meth:`CRNN.frame_logits`);
- :class:`BiLSTM` -- bidirectional LSTM with attention pooling, for rhythm and EEG sequences;
- :class:`Ensemble` -- several of them as one (probabilities averaged): a run's
  ``model.members``, or a K-fold run's fold models;
- :func:`build_model` -- one of them (or an :class:`Ensemble` of ``members``) from a
  :mod:`biosig.train` model config.
"""

from biosig.models.build import build_model
from biosig.models.crnn import CRNN, AttentionPool
from biosig.models.ensemble import Ensemble
from biosig.models.lstm import BiLSTM
from biosig.models.tdnn import XVector, stats_pool

__all__ = ["XVector", "CRNN", "BiLSTM", "AttentionPool", "Ensemble", "stats_pool",
           "build_model"]
