"""Feature cache: the front-end's output for each recording, computed once and kept on disk.

On a CPU, decoding, resampling and the spectrogram of every recording in every epoch can cost
as much as the model. With ``data.feature_cache: DIR`` the un-normalised front-end output
(:meth:`biosig.features.FrontEndTransform.raw`) of each whole recording is written once to
``DIR/<config key>/<record key>.npy`` (float16) and training crops windows of feature frames
from it; normalisation, SpecAugment, mixup, circular shifts and gains in dB are applied per
batch as before (:func:`biosig.train.data.augment_features`).

The config key hashes everything that changes the numbers (the resolved ``frontend`` spec,
its rate and band-pass included, except ``normalize``; ``data.channel``; a format version), so
a changed front-end starts a new folder instead of reading stale features. The record key hashes
the file's resolved path, size and modification time and the segment bounds, so an edited
recording is recomputed. Each file is written atomically; an interrupted fill resumes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from biosig.fileio import atomic_path, write_text_atomic
from biosig.progress import Progress
from biosig.train.data import Example, fit_window, read_signal, window_starts

__all__ = ["FeatureCache", "FeatureWindowDataset", "config_key", "recording_features",
           "crop_frames", "frame_windows"]

#: Bumped when the stored layout or the front-end's numbers change (2: the key is the
#: resolved ``frontend`` spec).
CACHE_VERSION = 2


def _description(spec, dcfg) -> dict:
    return {"version": CACHE_VERSION, "channel": dcfg.channel,
            "frontend": spec.model_dump(mode="json")}


def config_key(spec, dcfg) -> str:
    """16 hex digits naming the front-end ``spec`` (everything but ``normalize``, which is
    applied per batch) and ``data.channel``."""
    desc = _description(spec.replace(normalize="none"), dcfg)
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:16]


class FeatureCache:
    """The on-disk cache of one feature config.

    Parameters
    ----------
    directory : str or PathLike
        The cache root (``data.feature_cache``); the config's folder is made under it.
    frontend : biosig.features.FrontEndTransform
        Computes the features (on its device); its ``spec`` prepares the recordings.
    dcfg : DataConfig
        Channel and corpus root of the recordings.
    """

    def __init__(self, directory, *, frontend, dcfg):
        self.frontend, self.dcfg = frontend, dcfg
        self.key = config_key(frontend.spec, dcfg)
        self.dir = Path(os.fspath(directory)).expanduser() / self.key
        self.dir.mkdir(parents=True, exist_ok=True)
        desc = self.dir / "config.json"
        if not desc.is_file():
            write_text_atomic(desc, json.dumps(_description(frontend.spec, dcfg), indent=2))

    def path(self, ex: Example) -> Path:
        rec = ex.record
        src = rec.resolve_path(self.dcfg.root)
        try:
            st = src.stat()
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h = hashlib.sha1(f"{src.resolve()}|{rec.start_s}|{rec.end_s}|{stamp}".encode())
        return self.dir / f"{h.hexdigest()[:20]}.npy"

    @torch.no_grad()
    def compute(self, ex: Example) -> np.ndarray:
        """Features ``(n_features, n_frames)`` float32 of the whole recording (not cached)."""
        x = read_signal(ex.record, root=self.dcfg.root, frontend=self.frontend.spec,
                        channel=self.dcfg.channel).data[0]
        return recording_features(self.frontend, x)

    def get(self, ex: Example) -> np.ndarray:
        """Features of ``ex`` from disk, computing and storing them first when absent."""
        p = self.path(ex)
        if p.is_file():
            try:
                return np.load(p).astype(np.float32)
            except (OSError, ValueError):   # a damaged file: compute it again
                pass
        f = self.compute(ex)
        with atomic_path(p) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, f.astype(np.float16))
        return f

    def load_all(self, examples, *, desc: str = "feature cache",
                 show: bool = True) -> list[np.ndarray]:
        """:meth:`get` of every example, with progress (items computed or read)."""
        out = []
        bar = Progress(len(examples), desc=desc, unit="rec", enabled=show)
        for ex in examples:
            out.append(self.get(ex))
            bar.update(1)
        bar.close()
        return out


class FeatureWindowDataset(torch.utils.data.Dataset):
    """Windows of cached feature frames: the feature-domain twin of
    :class:`~biosig.train.data.WindowDataset`.

    Training items are ``(features (n_features, n_frames), target)`` at a random frame offset
    (torch's RNG); evaluation items ``(windows (n_windows, n_features, n_frames), target)`` at
    the offsets of :func:`~biosig.train.data.window_starts`. Recordings shorter than a window
    are padded with their own lowest value (the silence floor of features in dB).
    """

    def __init__(self, examples, features: list[np.ndarray], *, n_frames: int, train: bool,
                 eval_mode: str = "all", max_eval_windows: int = 8):
        if len(examples) != len(features):
            raise ValueError(f"{len(examples)} examples but {len(features)} feature arrays")
        self.examples, self.features = list(examples), features
        self.n_frames, self.train = int(n_frames), bool(train)
        self.eval_mode, self.max_eval_windows = eval_mode, int(max_eval_windows)

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def targets(self) -> list[int]:
        return [e.target for e in self.examples]

    def __getitem__(self, i: int):
        f = self.features[i]
        target = self.examples[i].target
        length = f.shape[1]
        if self.train:
            start = (int(torch.randint(0, length - self.n_frames + 1, ()).item())
                     if length > self.n_frames else 0)
            return torch.from_numpy(crop_frames(f, start, self.n_frames)), target
        return torch.from_numpy(frame_windows(f, self.n_frames, mode=self.eval_mode,
                                              max_windows=self.max_eval_windows)), target


@torch.no_grad()
def recording_features(frontend, x: np.ndarray) -> np.ndarray:
    """Un-normalised features ``(n_features, n_frames)`` float32 of a whole signal
    ``(n_samples,)`` (padded to one frame when shorter)."""
    if x.size < frontend.win:
        x = fit_window(x, frontend.win)
    w = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None].to(frontend.device)
    return frontend.raw(w)[0].float().cpu().numpy()


def crop_frames(f: np.ndarray, start: int, n: int) -> np.ndarray:
    """Frames ``start .. start + n`` of ``f`` ``(n_features, n_frames)``, padded at the end
    with the recording's lowest value (the silence floor of features in dB)."""
    seg = f[:, start:start + n]
    if seg.shape[1] < n:
        seg = np.pad(seg, ((0, 0), (0, n - seg.shape[1])), constant_values=float(f.min()))
    return np.ascontiguousarray(seg)


def frame_windows(f: np.ndarray, n: int, *, mode: str, max_windows: int) -> np.ndarray:
    """The evaluation windows of one recording's features: ``(n_windows, n_features, n)`` at
    the offsets of :func:`~biosig.train.data.window_starts` (as training evaluates and
    :func:`biosig.train.inference.predict_waveform` scores)."""
    return np.stack([crop_frames(f, s, n) for s in window_starts(f.shape[1], n, mode=mode,
                                                                 max_windows=max_windows)])
