"""Data for training: records from a manifest, labels, patient-wise splits and K folds,
fixed-window datasets, the feature front-end (run on the training device) and augmentation.

The datasets hold only the manifest records (small metadata); each item loads its recording
when asked (with an optional per-process cache), so they are safe to use from DataLoader
workers: no open files or CUDA state are shared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from biosig.errors import ConfigError, InputError
from biosig.features import kaldi_fbank
from biosig.features.spectral import power_to_db
from biosig.features.transforms import MFCC, LogMelSpectrogram, Spectrogram
from biosig.manifests import Record, field_value, read_manifest
from biosig.manifests.splits import group_holdout, group_kfold

__all__ = ["Example", "load_examples", "assign_example_splits", "kfold_assign",
           "WindowDataset", "collate_train", "collate_eval", "FrontEnd", "augment_waveforms",
           "spec_augment", "mixup", "class_weights", "read_window", "window_starts", "fit_window",
           "augment_features"]


@dataclass(frozen=True)
class Example:
    """A manifest record with its class index and its split."""

    record: Record
    target: int
    split: str | None
    group: str


# ------------------------------------------------------------------------ records, labels

def _as_text(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def load_examples(dcfg) -> tuple[list[Example], dict]:
    """Read the manifest lazily, keep the records that pass ``data.filter`` and have a label in
    ``data.classes`` (after ``data.label_map``).

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
        raw = rec.labels.get(dcfg.label)
        if raw is None:
            n_unlabeled += 1
            continue
        name = dcfg.label_map.get(_as_text(raw), _as_text(raw))
        if name not in index:
            n_unlabeled += 1
            continue
        g = field_value(rec, dcfg.group_by)
        group = f"{dcfg.group_by}:{g}" if g is not None else f"id:{rec.id}"
        out.append(Example(rec, index[name], rec.split, group))
    if not out:
        raise ConfigError(f"{dcfg.manifest}: no record left with label {dcfg.label!r} in "
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

def read_window(rec: Record, *, root, target_fs: float, channel) -> np.ndarray:
    """Load a record (segment) as one float32 channel at ``target_fs``: ``(n_samples,)``."""
    sig = rec.load(root, annotations=None, target_fs=target_fs)
    data = sig.data
    if channel == "mean":
        x = data.mean(axis=0)
    else:
        if channel >= data.shape[0]:
            raise InputError(sig.path, f"data.channel is {channel} but the recording has "
                                       f"{data.shape[0]} channel(s)")
        x = data[channel]
    return np.ascontiguousarray(x, dtype=np.float32)


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
    target_fs : float
        Sampling rate the recordings are resampled to.
    window_s : float
        Window length in seconds.
    train : bool
    channel : int or "mean"
    eval_mode : {"center", "all"}
    max_eval_windows : int
    cache : bool
        Keep loaded signals in memory (per process).
    """

    def __init__(self, examples, *, root, target_fs: float, window_s: float, train: bool,
                 channel=0, eval_mode: str = "all", max_eval_windows: int = 8,
                 cache: bool = True):
        self.examples = list(examples)
        self.root, self.target_fs, self.train = root, float(target_fs), bool(train)
        self.n_samples = int(round(window_s * target_fs))
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
        x = read_window(self.examples[i].record, root=self.root, target_fs=self.target_fs,
                        channel=self.channel)
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


# --------------------------------------------------------------------------- front-end

class FrontEnd(nn.Module):
    """Waveforms ``(batch, n_samples)`` -> features ``(batch, n_features, n_frames)``.

    Wraps the torch front-ends of :mod:`biosig.features` so they run on the training device:
    ``log_mel`` / ``mfcc`` (mel filters as librosa), ``log_spectrogram`` (power in dB, bins up
    to ``fmax_hz``), ``kaldi_fbank`` (torchaudio's Kaldi filterbanks) and ``frames`` (the raw
    signal cut into frames, for sequence models). Then optional normalisation: ``instance``
    (each item to zero mean, unit variance) or ``cmvn`` (each bin over time).
    """

    def __init__(self, fcfg, *, fs: float):
        super().__init__()
        self.kind, self.fs, self.normalization = fcfg.kind, float(fs), fcfg.normalize
        self.win = max(2, int(round(fcfg.window_s * fs)))
        self.hop = max(1, int(round(fcfg.hop_s * fs)))
        self.n_fft = 1 << (self.win - 1).bit_length()
        self.fcfg = fcfg
        fmax = fcfg.fmax_hz if fcfg.fmax_hz is not None else fs / 2
        if fmax > fs / 2 or fcfg.fmin_hz >= fmax:
            raise ConfigError(f"features.fmin_hz/fmax_hz ({fcfg.fmin_hz}, {fmax}) must satisfy "
                              f"fmin < fmax <= fs / 2 = {fs / 2} (data.target_fs)")
        mel = dict(fs=fs, n_fft=self.n_fft, win_length=self.win, hop_length=self.hop,
                   n_mels=fcfg.n_mels, fmin_hz=fcfg.fmin_hz, fmax_hz=fmax)
        if self.kind == "log_mel":
            self.transform = LogMelSpectrogram(top_db=fcfg.top_db, **mel)
            self.n_features = fcfg.n_mels
        elif self.kind == "mfcc":
            self.transform = MFCC(n_mfcc=fcfg.n_mfcc, top_db=fcfg.top_db, **mel)
            self.n_features = fcfg.n_mfcc
        elif self.kind == "log_spectrogram":
            self.transform = Spectrogram(n_fft=self.n_fft, win_length=self.win,
                                         hop_length=self.hop)
            self.n_bins = int(math.floor(fmax * self.n_fft / fs)) + 1
            self.first_bin = int(math.ceil(fcfg.fmin_hz * self.n_fft / fs))
            self.n_features = self.n_bins - self.first_bin
        elif self.kind == "kaldi_fbank":
            self.transform = None
            self.n_features = fcfg.n_mels
        elif self.kind == "frames":
            self.transform = None
            self.n_features = self.win
        else:  # guarded by the config schema
            raise ConfigError(f"features.kind is {self.kind!r}")

    @property
    def frames_per_s(self) -> float:
        """Feature frames per second of signal."""
        return self.fs / self.hop

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """``(batch, n_samples)`` float32 -> ``(batch, n_features, n_frames)`` float32:
        :meth:`raw` then :meth:`normalize`."""
        return self.normalize(self.raw(waves))

    def raw(self, waves: torch.Tensor) -> torch.Tensor:
        """The features before normalisation (what :mod:`biosig.train.cache` keeps on disk)."""
        if waves.ndim != 2:
            raise ValueError(f"waves has shape {tuple(waves.shape)}, expected "
                             f"(batch, n_samples)")
        x = waves.float()
        if self.kind in ("log_mel", "mfcc"):
            f = self.transform(x)
        elif self.kind == "log_spectrogram":
            f = power_to_db(self.transform(x)[:, self.first_bin:self.n_bins], ref=1.0,
                            amin=1e-10, top_db=self.fcfg.top_db)
        elif self.kind == "kaldi_fbank":
            fmax = self.fcfg.fmax_hz or 0.0
            f = kaldi_fbank(x * 32768.0, fs=self.fs, num_mel_bins=self.fcfg.n_mels,
                            frame_length_ms=1000.0 * self.win / self.fs,
                            frame_shift_ms=1000.0 * self.hop / self.fs,
                            low_freq=self.fcfg.fmin_hz, high_freq=fmax if fmax else 0.0)
        else:
            f = x.unfold(-1, self.win, self.hop).transpose(1, 2)   # (batch, win, n_frames)
        return f

    def normalize(self, f: torch.Tensor) -> torch.Tensor:
        """``features.normalize`` of ``(batch, n_features, n_frames)``: ``instance`` (each item
        to zero mean, unit variance), ``cmvn`` (each bin over time) or ``none``."""
        if self.normalization == "instance":
            f = (f - f.mean(dim=(1, 2), keepdim=True)) / (f.std(dim=(1, 2), keepdim=True)
                                                          + 1e-5)
        elif self.normalization == "cmvn":
            f = (f - f.mean(dim=2, keepdim=True)) / (f.std(dim=2, keepdim=True) + 1e-5)
        return f

    def n_frames(self, n_samples: int) -> int:
        """Frames the front-end gives for ``n_samples`` samples."""
        with torch.no_grad():
            return int(self.forward(torch.zeros(1, n_samples,
                                                device=self.device)).shape[-1])

    @property
    def device(self) -> torch.device:
        """Where the front-end's buffers live (CPU when it has none)."""
        for b in self.buffers():
            return b.device
        return torch.device("cpu")


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
    max_shift = int(round(acfg.time_shift_s * fs))
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
    max_shift = int(round(acfg.time_shift_s * frames_per_s))
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
