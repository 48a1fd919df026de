"""The result of a preset: :class:`FeatureSet` (named arrays with their axes) and its .npz file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biosig.errors import InputError
from biosig.fileio import atomic_path

__all__ = ["FeatureSet", "load_feature_set"]


@dataclass
class FeatureSet:
    """Named feature arrays of one recording, with what their axes mean.

    Attributes
    ----------
    modality : str
    fs : float
        Sampling rate in Hz of the (resampled) signal the features were computed from.
    channels : list of str
    arrays : dict of str to np.ndarray
        The features, e.g. ``"log_mel" [shape=(channel, mel, frame)]``.
    axes : dict of str to tuple of str
        Axis names of each array (``"channel"``, ``"time"``, ``"frame"``, ``"freq"``,
        ``"mel"``, ``"mfcc"``, ``"band"``, ``"beat"``, ``"cycle"`` ...).
    rate_hz : dict of str to float
        Samples (or frames) per second along the last axis of arrays that have a time axis;
        frame ``t`` is centred on ``t / rate_hz`` seconds.
    labels : dict of str to list of str
        Names along labelled axes (``"band"``: ``["delta", ...]``).
    config : dict
        The resolved preset plus derived values (``n_fft``, ``hop_length``).
    path : str or None
        The recording.
    """

    modality: str
    fs: float
    channels: list[str]
    arrays: dict[str, np.ndarray]
    axes: dict[str, tuple[str, ...]]
    rate_hz: dict[str, float] = field(default_factory=dict)
    labels: dict[str, list[str]] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    path: str | None = None

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    def __contains__(self, name: str) -> bool:
        return name in self.arrays

    def metadata(self) -> dict:
        """Everything but the arrays, JSON-serialisable."""
        return {"modality": self.modality, "fs": self.fs, "channels": list(self.channels),
                "axes": {k: list(v) for k, v in self.axes.items()}, "rate_hz": self.rate_hz,
                "labels": self.labels, "config": self.config, "path": self.path,
                "shapes": {k: list(v.shape) for k, v in self.arrays.items()}}

    def save(self, path) -> Path:
        """Write the arrays and a ``__meta__`` JSON string to ``path`` (.npz) atomically."""
        path = Path(os.fspath(path))
        if "__meta__" in self.arrays:
            raise ValueError("FeatureSet: '__meta__' is reserved and cannot name an array")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, __meta__=np.array(json.dumps(self.metadata())), **self.arrays)
        return path


def load_feature_set(path) -> FeatureSet:
    """Read a :class:`FeatureSet` written by :meth:`FeatureSet.save`."""
    path = Path(os.fspath(path))
    if not path.is_file():
        raise InputError(path, "file not found")
    with np.load(path, allow_pickle=False) as z:
        if "__meta__" not in z.files:
            raise InputError(path, "not a biosig feature file (no __meta__ entry)")
        meta = json.loads(str(z["__meta__"]))
        arrays = {k: z[k] for k in z.files if k != "__meta__"}
    return FeatureSet(modality=meta["modality"], fs=meta["fs"], channels=meta["channels"],
                      arrays=arrays, axes={k: tuple(v) for k, v in meta["axes"].items()},
                      rate_hz=meta["rate_hz"], labels=meta["labels"], config=meta["config"],
                      path=meta["path"])

