"""Data and targets of the Whisper fine-tuning task: utterances read from JSONL manifests, the
group-wise validation split, Whisper's decoder targets (with or without timestamps), the dataset,
padding and length-bucketed batches."""

from __future__ import annotations

import json
import logging
import math
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from biosig.asr.audio import load_audio
from biosig.asr.evaluate import record_terms
from biosig.errors import ConfigError, ManifestError
from biosig.features.whisper import WHISPER_FS, WHISPER_HOP_LENGTH, WHISPER_N_SAMPLES
from biosig.fileio import write_text_atomic
from biosig.manifests import field_value, read_manifest
from biosig.manifests.splits import group_holdout
from biosig.train.config import WhisperTrainConfig

__all__ = ["Utterance", "load_utterances", "spread_evenly", "split_utterances", "speech_end_s",
           "TargetBuilder", "target_ids", "SpeechTextDataset", "collate_speech",
           "BucketBatchSampler", "make_datasets", "write_jsonl", "TS_STEP_S"]

log = logging.getLogger("biosig.train.whisper")

TS_STEP_S = 0.02     # Whisper's timestamp tokens are 20 ms apart


@dataclass(frozen=True)
class Utterance:
    """One training or evaluation clip."""

    id: str
    path: Path
    text: str
    duration_s: float
    group: str
    terms: tuple[str, ...] = ()
    start_s: float | None = None
    end_s: float | None = None


def load_utterances(manifest, *, root=None, filter: dict | None = None, group_by: str = "subject",
                    max_duration_s: float = 30.0, limit: int | None = None,
                    require_text: bool = True) -> list[Utterance]:
    """Lines of a JSONL manifest that have ``text`` (any line when ``require_text`` is false)
    and last at most ``max_duration_s``.

    Raises :class:`~biosig.errors.ManifestError` naming the manifest when none is usable or an
    audio file is missing.
    """
    man = Path(manifest)
    out, too_long = [], 0
    for rec in read_manifest(man):
        if require_text and (rec.text is None or not rec.text.strip()):
            continue
        if any(str(field_value(rec, k)) != str(v) for k, v in (filter or {}).items()):
            continue
        dur = float(rec.duration_s or 0.0)
        if rec.is_segment:
            dur = float(rec.end_s - rec.start_s)
        if dur > max_duration_s:
            too_long += 1
            continue
        path = rec.resolve_path(root, manifest_dir=man.parent)
        if not Path(path).exists():
            raise ManifestError(f"{man}: line {rec.id!r}: audio file {path} not found")
        g = field_value(rec, group_by)
        out.append(Utterance(rec.id, Path(path), (rec.text or "").strip(), dur,
                             str(g if g is not None else rec.id), tuple(record_terms(rec)),
                             rec.start_s if rec.is_segment else None,
                             rec.end_s if rec.is_segment else None))
        if limit is not None and len(out) >= limit:
            break
    if too_long:
        log.info("%s: %d lines longer than %.0f s skipped", man, too_long, max_duration_s)
    if not out:
        what = "with 'text' and " if require_text else ""
        raise ManifestError(f"{man}: no line {what}with at most {max_duration_s:g} s of audio")
    return out


def spread_evenly(utts: list[Utterance], n: int | None) -> list[Utterance]:
    """``n`` of ``utts`` at equal steps (the first and the last included), in order; all of
    them where ``n`` is None or not smaller. A corpus sorted by speaker then gives every
    speaker a share, where the first ``n`` lines would give a few speakers all of it."""
    if n is None or n >= len(utts):
        return list(utts)
    keep = np.unique(np.linspace(0, len(utts) - 1, n).round().astype(int))
    return [utts[i] for i in keep]


def split_utterances(utts: list[Utterance], *, valid_frac: float, seed: int = 0
                     ) -> tuple[list[Utterance], list[Utterance]]:
    """Split by ``Utterance.group`` (:func:`biosig.manifests.splits.group_holdout`): every
    group lies wholly on one side, and both sides get at least one."""
    groups = [u.group for u in utts]
    if len(set(groups)) < 2:
        raise ConfigError(f"data.group_by gives {len(set(groups))} group; cannot split a "
                          "validation set off (give data.valid_manifest or another "
                          "data.group_by)")
    side = group_holdout(groups, valid_frac=valid_frac, test_frac=0.0, seed=seed)
    return ([u for u, s in zip(utts, side) if s == "train"],
            [u for u, s in zip(utts, side) if s == "valid"])


def speech_end_s(x: np.ndarray) -> float:
    """End of the last 20 ms frame within 40 dB of the loudest one (trailing silence cut)."""
    n = x.size // 320
    if n == 0:
        return x.size / WHISPER_FS
    rms = np.sqrt(np.mean(x[: n * 320].reshape(n, 320).astype(np.float64) ** 2, axis=1))
    loud = np.nonzero(rms >= rms.max() * 0.01)[0]
    return (loud[-1] + 1) * 320 / WHISPER_FS if loud.size else x.size / WHISPER_FS


class TargetBuilder:
    """Whisper decoder inputs and labels for a text (see the module docstring)."""

    def __init__(self, tokenizer, *, language: str = "en", task: str = "transcribe"):
        ids = tokenizer.convert_tokens_to_ids
        self.tokenizer = tokenizer
        self.sot = ids("<|startoftranscript|>")
        self.lang = ids(f"<|{language}|>")
        self.task = ids(f"<|{task}|>")
        self.no_ts = ids("<|notimestamps|>")
        self.ts0 = ids("<|0.00|>")
        self.eot = tokenizer.eos_token_id
        unk = tokenizer.unk_token_id
        for name, v in (("<|startoftranscript|>", self.sot), (f"<|{language}|>", self.lang),
                        (f"<|{task}|>", self.task), ("<|notimestamps|>", self.no_ts),
                        ("<|0.00|>", self.ts0)):
            if v is None or (unk is not None and v == unk):
                raise ConfigError(f"tokenizer has no {name} token (model.language is "
                                  f"{language!r}; a Whisper tokenizer with timestamp tokens is "
                                  "needed)")

    def __call__(self, text: str, *, timestamps: bool = False, end_s: float = 0.0
                 ) -> tuple[list[int], list[int]]:
        """``(decoder_input_ids, labels)``; labels are -100 where nothing is scored."""
        return target_ids(self, text, timestamps=timestamps, end_s=end_s)


def target_ids(tb: TargetBuilder, text: str, *, timestamps: bool = False, end_s: float = 0.0
               ) -> tuple[list[int], list[int]]:
    body = tb.tokenizer.encode(" " + text.strip(), add_special_tokens=False)
    if timestamps:
        end = int(min(max(round(end_s / TS_STEP_S), 1), 1500))
        seq = [tb.sot, tb.lang, tb.task, tb.ts0, *body, tb.ts0 + end, tb.eot]
        n_given = 2  # lang, task are given; <|0.00|> is predicted
    else:
        seq = [tb.sot, tb.lang, tb.task, tb.no_ts, *body, tb.eot]
        n_given = 3  # lang, task, <|notimestamps|>
    dec, lab = seq[:-1], seq[1:]
    lab = [-100] * n_given + lab[n_given:]
    return dec, lab


class SpeechTextDataset(torch.utils.data.Dataset):
    """Lazy (audio, targets) items; the timestamp choice is a function of (seed, epoch, item)."""

    def __init__(self, utts: list[Utterance], targets: TargetBuilder, *,
                 timestamps_prob: float = 0.0, seed: int = 0, cache_audio: bool = True):
        self.utts = utts
        self.targets = targets
        self.timestamps_prob = timestamps_prob
        self.seed = seed
        self.epoch = 0
        self._cache: dict[int, tuple[np.ndarray, float]] | None = {} if cache_audio else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.utts)

    def audio(self, i: int) -> tuple[np.ndarray, float]:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        u = self.utts[i]
        x = load_audio(u.path)
        if u.start_s is not None:
            x = x[int(u.start_s * WHISPER_FS): int(u.end_s * WHISPER_FS)]
        x = x[:WHISPER_N_SAMPLES]
        item = (x, speech_end_s(x))
        if self._cache is not None:
            self._cache[i] = item
        return item

    def __getitem__(self, i: int) -> dict:
        x, end_s = self.audio(i)
        r = random.Random(hash((self.seed, self.epoch, i)) & 0xFFFFFFFF)
        ts = self.timestamps_prob > 0 and r.random() < self.timestamps_prob
        dec, lab = self.targets(self.utts[i].text, timestamps=ts, end_s=end_s)
        return {"index": i, "audio": x, "decoder_input_ids": dec, "labels": lab}


def collate_speech(items: list[dict], *, pad_id: int) -> dict:
    """Pad audio to 30 s and token rows to the longest; ``n_frames`` = valid log-mel frames."""
    b = len(items)
    audio = torch.zeros(b, WHISPER_N_SAMPLES)
    n_frames = torch.zeros(b, dtype=torch.long)
    width = max(len(it["decoder_input_ids"]) for it in items)
    dec = torch.full((b, width), pad_id, dtype=torch.long)
    lab = torch.full((b, width), -100, dtype=torch.long)
    for k, it in enumerate(items):
        x = torch.from_numpy(np.asarray(it["audio"], dtype=np.float32))
        audio[k, : x.numel()] = x
        n_frames[k] = max(1, x.numel() // WHISPER_HOP_LENGTH)
        d, la = it["decoder_input_ids"], it["labels"]
        dec[k, : len(d)] = torch.tensor(d)
        lab[k, : len(la)] = torch.tensor(la)
    return {"index": torch.tensor([it["index"] for it in items]), "audio": audio,
            "n_frames": n_frames, "decoder_input_ids": dec, "labels": lab}


class BucketBatchSampler(torch.utils.data.Sampler):
    """Batches of indices, clips of similar length together (less padding in the decoder).

    Each epoch the items are shuffled (seed + epoch), cut into pools of ``50 * batch_size``,
    each pool sorted by length and cut into batches, and the batches shuffled. Under
    DistributedDataParallel every rank gets the same number of batches (the list is padded by
    repeating batches) and takes every ``world_size``-th one.
    """

    def __init__(self, lengths, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 bucket: bool = True, rank: int = 0, world_size: int = 1):
        self.lengths = np.asarray(lengths, dtype=float)
        self.batch_size = int(batch_size)
        self.shuffle, self.seed, self.bucket = shuffle, seed, bucket
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        n = self.lengths.size
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        out: list[list[int]] = []
        pool = self.batch_size * 50
        for s in range(0, n, pool):
            chunk = order[s: s + pool]
            if self.bucket:
                chunk = chunk[np.argsort(-self.lengths[chunk], kind="stable")]
            out += [chunk[k: k + self.batch_size].tolist()
                    for k in range(0, chunk.size, self.batch_size)]
        if self.shuffle:
            out = [out[i] for i in rng.permutation(len(out))]
        if self.world_size > 1:
            k = 0
            while out and len(out) % self.world_size:
                out.append(out[k])
                k += 1
            out = out[self.rank:: self.world_size]
        return out

    def __iter__(self):
        return iter(self.batches())

    def __len__(self) -> int:
        nb = math.ceil(self.lengths.size / self.batch_size) if self.lengths.size else 0
        return math.ceil(nb / self.world_size)


def make_datasets(cfg: WhisperTrainConfig, targets: TargetBuilder):
    d = cfg.data
    train_u = load_utterances(d.train_manifest, root=d.root, filter=d.filter,
                              group_by=d.group_by, max_duration_s=d.max_duration_s)
    if d.valid_manifest:
        valid_u = load_utterances(d.valid_manifest, root=d.root, filter=d.filter,
                                  group_by=d.group_by, max_duration_s=d.max_duration_s)
    else:
        train_u, valid_u = split_utterances(train_u, valid_frac=d.valid_frac, seed=d.split_seed)
    if d.limit_train:
        train_u = train_u[: d.limit_train]
    if d.limit_valid:
        valid_u = valid_u[: d.limit_valid]
    cache_audio = cfg.train.num_workers == 0
    return (SpeechTextDataset(train_u, targets, timestamps_prob=d.timestamps_prob,
                              seed=cfg.seed, cache_audio=cache_audio),
            SpeechTextDataset(valid_u, targets, seed=cfg.seed, cache_audio=True))


def write_jsonl(path: Path, rows: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
