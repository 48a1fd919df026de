"""Data for training: records from a manifest, labels, patient-wise splits and K folds,
fixed-length crops of recordings prepared by the front-end spec
(:class:`biosig.features.FrontEnd`: its transform runs on the training device) and
augmentation.

The datasets hold only the manifest records (small metadata); each item loads its recording
when asked (with an optional per-process cache), so they are safe to use from DataLoader
workers: no open files or CUDA state are shared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch

from biosig.errors import ConfigError, InputError
from biosig.features.frontend import FrontEnd
from biosig.manifests import Record, field_value, read_manifest
from biosig.manifests.splits import group_holdout, group_kfold
from biosig.signal import Signal, seconds_to_samples

__all__ = ["Example", "fitted_targets", "as_fitted", "load_examples", "assign_example_splits",
           "kfold_assign",
           "WindowDataset", "collate_train", "collate_eval", "augment_waveforms",
           "spec_augment", "mixup", "class_weights", "read_signal", "window_starts", "fit_window",
           "augment_features"]


@dataclass(frozen=True)
class Example:
    """A manifest record with its class index and its split; ``fit_target`` is the class a
    model is fitted on where ``data.train_label`` differs from the scored ``data.label``
    (None: ``target``)."""

    record: Record
    target: int
    split: str | None
    group: str
    fit_target: int | None = None


def fitted_targets(examples) -> list[int]:
    """The classes ``examples`` are fitted on: ``fit_target`` where there is one (``data.
    train_label``), else ``target``."""
    return [e.target if e.fit_target is None else e.fit_target for e in examples]


def as_fitted(examples) -> list[Example]:
    """``examples`` with ``target`` set to the class they are fitted on (a training split)."""
    return [e if e.fit_target is None else replace(e, target=e.fit_target, fit_target=None)
            for e in examples]


# ------------------------------------------------------------------------ records, labels

def _as_text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _class_of(rec, key: str, label_map: dict, index: dict) -> int | None:
    raw = rec.labels.get(key)
    if raw is None:
        return None
    return index.get(label_map.get(_as_text(raw), _as_text(raw)))


def load_examples(dcfg) -> tuple[list[Example], dict]:
    """Read the manifest lazily, keep the records that pass ``data.filter`` and have a label in
    ``data.classes`` (after ``data.label_map``), and, with ``data.train_label``, a class there
    too (``Example.fit_target``).

    Returns
    -------
    (examples, counts) : list of Example, dict
        ``counts`` says how many lines were read, filtered out and left without a class.
    """
    classes = list(dcfg.classes)
    index = {c: i for i, c in enumerate(classes)}
    out: list[Example] = []
    n_read = n_filtered = n_unlabeled = 0
    for rec in read_manifest(dcfg.manifest):
        n_read += 1
        if any(_as_text(field_value(rec, k)) != _as_text(v) for k, v in dcfg.filter.items()):
            n_filtered += 1
            continue
        target = _class_of(rec, dcfg.label, dcfg.label_map, index)
        fit = (None if dcfg.train_label is None else
               _class_of(rec, dcfg.train_label, dcfg.label_map, index))
        if target is None or (dcfg.train_label is not None and fit is None):
            n_unlabeled += 1
            continue
        g = field_value(rec, dcfg.group_by)
        group = f"{dcfg.group_by}:{g}" if g is not None else f"id:{rec.id}"
        out.append(Example(rec, target, rec.split, group, fit))
    if not out:
        also = ("" if dcfg.train_label is None else
                f" and data.train_label {dcfg.train_label!r}")
        raise ConfigError(f"{dcfg.manifest}: no record left with label {dcfg.label!r}{also} in "
                          f"{classes} after data.filter (read {n_read}, filtered out "
                          f"{n_filtered}, without class {n_unlabeled})")
    return out, {"read": n_read, "filtered_out": n_filtered, "without_class": n_unlabeled,
                 "kept": len(out)}


def assign_example_splits(examples: list[Example], *, seed: int, valid_frac: float,
                          test_frac: float) -> list[Example]:
    """Patient-wise (``group``-wise), label-stratified train/valid/test assignment
    (:func:`biosig.manifests.splits.group_holdout`)."""
    splits = group_holdout([e.group for e in examples], valid_frac=valid_frac,
                           test_frac=test_frac, seed=seed, labels=[e.target for e in examples])
    return [replace(e, split=s) for e, s in zip(examples, splits)]


#: the splits of a run, in order: ``select`` (``train.select_frac``) is carved from train and
#: chooses the network's best epoch in place of ``valid``
SPLITS = ("train", "select", "valid", "test")


def carve_select_split(examples: list[Example], *, frac: float, seed: int) -> list[Example]:
    """Move a patient-wise (``group``-wise), label-stratified ``frac`` of the ``train``
    examples to a ``select`` split (:func:`biosig.manifests.splits.group_holdout`); the other
    splits are untouched. ``train.select_frac``: the network's best epoch and early stopping
    are chosen on ``select``, so ``valid`` stays out of sample for the network."""
    idx = [i for i, e in enumerate(examples) if e.split == "train"]
    if not idx:
        return list(examples)
    sub = group_holdout([examples[i].group for i in idx], valid_frac=frac, test_frac=0.0,
                        seed=seed, labels=[examples[i].target for i in idx])
    out = list(examples)
    for i, s in zip(idx, sub):
        if s == "valid":
            out[i] = replace(out[i], split="select")
    return out


def kfold_assign(examples: list[Example], *, folds: int, seed: int) -> list[int]:
    """Stratified, group-wise K-fold (:func:`biosig.manifests.splits.group_kfold`): the fold
    index of each example. Each fold gets every class in proportion (up to whole groups) and
    a patient never lies in two folds."""
    return group_kfold([e.group for e in examples], n_folds=folds, seed=seed,
                       labels=[e.target for e in examples]).tolist()


def class_weights(targets, n_classes: int, *, power: float = 1.0) -> torch.Tensor:
    """Inverse-frequency class weights to the ``power`` (1: fully balanced, 0.5: the square
    root, a softer balance), normalised to mean 1 (absent classes get 0)."""
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=n_classes).astype(float)
    w = np.where(counts > 0, (counts.sum() / np.maximum(counts, 1) / n_classes) ** power, 0.0)
    present = w > 0
    w[present] /= w[present].mean()
    return torch.as_tensor(w, dtype=torch.float32)


# ---------------------------------------------------------------------------- windows

def read_signal(rec: Record, *, root, frontend: FrontEnd, channel) -> Signal:
    """Load a record (segment) as training sees it: resampled to ``frontend.target_fs``, one
    channel (or the mean of all), then :meth:`FrontEnd.prepare` (notch, band-pass).

    Returns
    -------
    biosig.Signal
        ``data [shape=(1, n_samples), dtype=float32]`` at ``fs = frontend.target_fs``.
    """
    sig = rec.load(root, annotations=None, target_fs=frontend.target_fs)
    data = sig.data
    if channel == "mean":
        x, name = data.mean(axis=0), "mean"
    else:
        if channel >= data.shape[0]:
            raise InputError(sig.path, f"data.channel is {channel} but the recording has "
                                       f"{data.shape[0]} channel(s)")
        x, name = data[channel], sig.channels[channel]
    one = Signal(np.ascontiguousarray(x, dtype=np.float32)[None], sig.fs, [name], [""],
                 path=sig.path)
    return frontend.prepare(one)


def fit_window(x: np.ndarray, n: int, start: int = 0) -> np.ndarray:
    """``x[start:start + n]``, zero-padded at the end to ``n`` samples."""
    seg = x[start:start + n]
    if seg.size < n:
        seg = np.pad(seg, (0, n - seg.size))
    return seg


def eval_windows(x: np.ndarray, n: int, *, mode: str, max_windows: int) -> np.ndarray:
    """Cut ``x`` into windows of ``n`` samples: ``(n_windows, n)``.

    ``mode="center"`` gives the central window; ``"all"`` covers the signal with
    non-overlapping windows (the last one zero-padded), keeping at most ``max_windows``
    evenly spaced ones.
    """
    return np.stack([fit_window(x, n, s) for s in window_starts(x.size, n, mode=mode,
                                                          max_windows=max_windows)])


def window_starts(length: int, n: int, *, mode: str, max_windows: int) -> list[int]:
    """Where the evaluation windows of ``n`` steps start in a sequence of ``length`` steps
    (samples or feature frames); see :func:`eval_windows`."""
    if mode == "center" or length <= n:
        return [max(0, (length - n) // 2)]
    k = math.ceil(length / n)
    starts = [i * n for i in range(k)]
    if k > max_windows:
        starts = [starts[int(round(j))] for j in np.linspace(0, k - 1, max_windows)]
    return starts


class WindowDataset(torch.utils.data.Dataset):
    """Fixed-length windows of manifest records.

    Training items are ``(window (n_samples,), target)`` with a random crop (torch's RNG, so
    seeded runs repeat and each DataLoader worker draws its own); evaluation items are
    ``(windows (n_windows, n_samples), target)`` (see :func:`eval_windows`).

    Parameters
    ----------
    examples : list of Example
    root : str or None
        Corpus root (default: each record's ``root`` under the data root).
    frontend : FrontEnd
        Prepares each recording (:func:`read_signal`) and gives its rate.
    crop_s : float
        Crop (evaluation window) length in seconds.
    train : bool
    channel : int or "mean"
    eval_mode : {"center", "all"}
    max_eval_windows : int
    cache : bool
        Keep loaded signals in memory (per process).
    """

    def __init__(self, examples, *, root, frontend: FrontEnd, crop_s: float, train: bool,
                 channel=0, eval_mode: str = "all", max_eval_windows: int = 8,
                 cache: bool = True):
        self.examples = list(examples)
        self.root, self.frontend, self.train = root, frontend, bool(train)
        self.n_samples = frontend.samples(crop_s)
        self.channel, self.eval_mode = channel, eval_mode
        self.max_eval_windows, self.cache = int(max_eval_windows), bool(cache)
        self._cache: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.examples)

    @property
    def targets(self) -> list[int]:
        return [e.target for e in self.examples]

    def signal(self, i: int) -> np.ndarray:
        if i in self._cache:
            return self._cache[i]
        x = read_signal(self.examples[i].record, root=self.root, frontend=self.frontend,
                        channel=self.channel).data[0]
        if self.cache:
            self._cache[i] = x
        return x

    def __getitem__(self, i: int):
        x = self.signal(i)
        n = self.n_samples
        target = self.examples[i].target
        if self.train:
            start = int(torch.randint(0, x.size - n + 1, ()).item()) if x.size > n else 0
            return torch.from_numpy(fit_window(x, n, start).copy()), target
        w = eval_windows(x, n, mode=self.eval_mode, max_windows=self.max_eval_windows)
        return torch.from_numpy(w), target


def collate_train(batch):
    """``[(window (n,), target)]`` -> ``(waves (batch, n), targets (batch,))``."""
    waves = torch.stack([b[0] for b in batch])
    return waves, torch.as_tensor([b[1] for b in batch], dtype=torch.long)


def collate_eval(batch):
    """``[(windows (k_i, n), target)]`` -> ``(waves (sum k_i, n), owner (sum k_i,),
    targets (batch,))``; ``owner`` maps each window to its item."""
    waves = torch.cat([b[0] for b in batch])
    owner = torch.cat([torch.full((b[0].shape[0],), i, dtype=torch.long)
                       for i, b in enumerate(batch)])
    return waves, owner, torch.as_tensor([b[1] for b in batch], dtype=torch.long)


# ------------------------------------------------------------------------ augmentation

def augment_waveforms(waves: torch.Tensor, acfg, *, fs: float,
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """Random circular time shift, gain and additive white noise, per item.

    Parameters
    ----------
    waves : torch.Tensor [shape=(batch, n_samples)]
    acfg : AugmentConfig
    fs : float
        Sampling rate (for the shift in seconds).

    Returns
    -------
    torch.Tensor [shape=(batch, n_samples)]
    """
    b, n = waves.shape
    dev = waves.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator).to(dev)

    x = waves
    max_shift = seconds_to_samples(acfg.time_shift_s, fs=fs)
    if max_shift > 0:
        shifts = (rand(b) * (2 * max_shift + 1)).long() - max_shift
        idx = (torch.arange(n, device=dev)[None, :] - shifts[:, None]) % n
        x = torch.gather(x, 1, idx)
    if acfg.gain_db > 0:
        gain_db = (rand(b) * 2 - 1) * acfg.gain_db
        x = x * (10.0 ** (gain_db / 20.0))[:, None]
    if acfg.noise_prob > 0:
        lo, hi = acfg.noise_snr_db
        snr_db = lo + rand(b) * (hi - lo)
        power = x.pow(2).mean(-1).clamp(min=1e-12)
        noise_power = power / (10.0 ** (snr_db / 10.0))
        use = (rand(b) < acfg.noise_prob).to(x.dtype)
        noise = torch.randn(b, n, generator=generator).to(dev)
        x = x + use[:, None] * noise * noise_power.sqrt()[:, None]
    return x


def augment_features(features: torch.Tensor, acfg, *, frames_per_s: float, kind: str,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """The waveform augmentations that have an exact feature-domain equivalent, for features
    read from the cache (:mod:`biosig.train.cache`): a random circular shift of up to
    ``time_shift_s`` (in frames) and, for features in dB (``log_mel``, ``log_spectrogram``),
    a random gain of up to ``gain_db`` (an added constant). Additive noise has no such
    equivalent; the config schema refuses it together with a feature cache.

    ``features`` ``(batch, n_features, n_frames)`` -> same shape.
    """
    b, _, nt = features.shape
    dev = features.device
    x = features
    max_shift = seconds_to_samples(acfg.time_shift_s, fs=frames_per_s)
    if max_shift > 0:
        shifts = (torch.rand(b, generator=generator) * (2 * max_shift + 1)).long() - max_shift
        idx = (torch.arange(nt)[None, :] - shifts[:, None]) % nt
        x = torch.gather(x, 2, idx[:, None, :].expand(x.shape).to(dev))
    if acfg.gain_db > 0 and kind in ("log_mel", "log_spectrogram"):
        gain_db = ((torch.rand(b, generator=generator) * 2 - 1) * acfg.gain_db).to(dev)
        x = x + gain_db[:, None, None]
    return x


def spec_augment(features: torch.Tensor, acfg, *, generator: torch.Generator | None = None,
                 lengths: torch.Tensor | None = None) -> torch.Tensor:
    """SpecAugment frequency and time masking (Park et al., Interspeech 2019), per item;
    masked cells take the item's mean.

    ``features`` ``(batch, n_features, n_frames)`` -> same shape. ``lengths`` ``(batch,)``, if
    given, is each item's number of valid frames: time masks fall inside them (not in padding).
    """
    if acfg.freq_masks == 0 and acfg.time_masks == 0:
        return features
    b, nf, nt = features.shape
    dev = features.device
    out = features.clone()
    fill = features.mean(dim=(1, 2), keepdim=True).expand_as(features)
    keep = torch.ones_like(features, dtype=torch.bool)
    span = (torch.full((b,), nt) if lengths is None
            else lengths.detach().cpu().long().clamp(1, nt))
    for axis, count, width, size in ((1, acfg.freq_masks, acfg.freq_mask_width, nf),
                                     (2, acfg.time_masks, acfg.time_mask_width, nt)):
        limit = torch.full((b,), size) if axis == 1 else span
        for _ in range(count):
            w = (torch.rand(b, generator=generator) * (torch.clamp(limit, max=width) + 1)).long()
            start = (torch.rand(b, generator=generator) * (limit - w + 1).float()).long()
            pos = torch.arange(size)[None, :]
            m = ((pos >= start[:, None]) & (pos < (start + w)[:, None])).to(dev)
            keep &= ~(m[:, :, None] if axis == 1 else m[:, None, :])
    return torch.where(keep, out, fill)


def mixup(features: torch.Tensor, targets: torch.Tensor, *, n_classes: int, alpha: float,
          generator: torch.Generator | None = None):
    """mixup (Zhang et al., ICLR 2018): convex combinations of pairs of items and of their
    one-hot targets.

    Returns
    -------
    (features (batch, F, T), soft_targets (batch, n_classes))
    """
    onehot = torch.nn.functional.one_hot(targets, n_classes).float()
    if alpha <= 0:
        return features, onehot
    lam = float(np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,),
                                                        generator=generator))).beta(alpha,
                                                                                    alpha))
    perm = torch.randperm(features.shape[0], generator=generator).to(features.device)
    return (lam * features + (1 - lam) * features[perm],
            lam * onehot + (1 - lam) * onehot[perm])
