"""Fine-tuning Whisper on (audio, text) manifests: the ``task: whisper_asr`` recipe engine.

``biosig train recipes/whisper_dictation/config.yaml`` validates the YAML into a
:class:`~biosig.train.config.WhisperTrainConfig` and calls :func:`train_whisper`, which

- starts from a transformers directory, a hub name, ``packaged:whisper-base`` or a CTranslate2
  directory (imported once into the run folder with
  :func:`biosig.asr.convert.import_ct2_whisper`);
- reads the JSONL manifests (:mod:`biosig.manifests`; ``text`` is the target), splits a
  validation set off by group (``data.group_by``, e.g. the phrase, so no sentence is on both
  sides) unless ``data.valid_manifest`` is given;
- computes the log-mel input with biosig's own front-end (:func:`biosig.features.whisper_log_mel`,
  equal to ``WhisperFeatureExtractor`` to 1.5e-5) on the training device, applies SpecAugment
  inside each clip's speech frames, and batches clips of similar length together;
- builds targets as Whisper was trained: ``<|startoftranscript|><|en|><|transcribe|>`` then
  either ``<|notimestamps|> text`` or, with probability ``data.timestamps_prob``,
  ``<|0.00|> text <|t_end|>`` (``t_end`` = the end of the speech), then ``<|endoftext|>``; the
  language and task tokens are given, not scored;
- trains with AdamW, warm-up then linear/cosine decay, gradient accumulation and clipping,
  bf16/fp16 autocast and gradient checkpointing on CUDA, DistributedDataParallel under
  ``torchrun`` (only rank 0 evaluates and writes), optional encoder freezing (the frozen encoder
  can run once per clip and be cached) and optional LoRA adapters through peft (merged into the
  weights when saved);
- decodes the validation set after every epoch (and once before training) and scores it with
  the dictation normaliser (:func:`biosig.asr.metrics.error_rates`), keeps the best epoch by WER
  in ``best/`` (transformers format, with the tokenizer, loadable by ``biosig transcribe
  --backend transformers`` and exportable with ``biosig asr export-ct2``), optionally exports it
  to CTranslate2 (``export.ct2_quantization``), and scores ``data.test_manifests`` with it.

A run folder ``<output_dir>/<recipe>/<run-id>/`` holds ``config.yaml``, ``env.json``,
``metrics.jsonl`` (one line per epoch; epoch 0 is the starting model), ``best/``, ``last.pt``
(everything ``--resume`` needs; runs resume at epoch boundaries, where the batch order is a
function of the seed and the epoch, so a resumed run equals an uninterrupted one),
``report.json``, ``valid_predictions.jsonl`` / ``test_predictions_<name>.jsonl`` (kept in the
run folder, never logged) and ``learning_curves.png``.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import yaml

from biosig.errors import ConfigError, ManifestError
from biosig.fileio import atomic_path, jsonable, write_text_atomic
from biosig.train.config import WhisperTrainConfig, config_to_dict

__all__ = ["Utterance", "load_utterances", "split_utterances", "target_ids", "TargetBuilder",
           "SpeechTextDataset", "BucketBatchSampler", "collate_speech", "resolve_base_model",
           "train_whisper", "decode_batch", "WhisperRunResult"]

log = logging.getLogger("biosig.train.whisper")

WHISPER_FS = 16000
N_SAMPLES_30S = 30 * WHISPER_FS
HOP = 160
TS_STEP_S = 0.02


# ------------------------------------------------------------------------------ data

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
    from biosig.asr.evaluate import record_terms
    from biosig.manifests import field_value, read_manifest
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


def split_utterances(utts: list[Utterance], *, valid_frac: float, seed: int = 0
                     ) -> tuple[list[Utterance], list[Utterance]]:
    """Split by ``Utterance.group``: every group lies wholly on one side."""
    groups = sorted({u.group for u in utts})
    if len(groups) < 2:
        raise ConfigError(f"data.group_by gives {len(groups)} group; cannot split a validation "
                          "set off (give data.valid_manifest or another data.group_by)")
    rng = np.random.default_rng(seed)
    order = [groups[i] for i in rng.permutation(len(groups))]
    n_valid = min(len(groups) - 1, max(1, round(valid_frac * len(groups))))
    vg = set(order[:n_valid])
    return [u for u in utts if u.group not in vg], [u for u in utts if u.group in vg]


def _speech_end_s(x: np.ndarray) -> float:
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
        from biosig.asr.audio import load_audio
        u = self.utts[i]
        x = load_audio(u.path)
        if u.start_s is not None:
            x = x[int(u.start_s * WHISPER_FS): int(u.end_s * WHISPER_FS)]
        x = x[:N_SAMPLES_30S]
        item = (x, _speech_end_s(x))
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
    audio = torch.zeros(b, N_SAMPLES_30S)
    n_frames = torch.zeros(b, dtype=torch.long)
    width = max(len(it["decoder_input_ids"]) for it in items)
    dec = torch.full((b, width), pad_id, dtype=torch.long)
    lab = torch.full((b, width), -100, dtype=torch.long)
    for k, it in enumerate(items):
        x = torch.from_numpy(np.asarray(it["audio"], dtype=np.float32))
        audio[k, : x.numel()] = x
        n_frames[k] = max(1, x.numel() // HOP)
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


# ------------------------------------------------------------------------------ model

def resolve_base_model(name_or_path: str, work_dir: Path) -> str:
    """A transformers-loadable model: CTranslate2 directories (and ``packaged:whisper-base``)
    are imported into ``work_dir/base_model`` once; other values pass through."""
    from biosig.asr.models import resolve_packaged
    src = resolve_packaged(name_or_path, what="model.name_or_path")
    p = Path(src).expanduser()
    if p.is_dir():
        hf = any((p / n).is_file() for n in ("model.safetensors", "pytorch_model.bin",
                                              "model.safetensors.index.json"))
        if hf:
            return str(p)
        if (p / "model.bin").is_file():
            from biosig.asr.convert import import_ct2_whisper
            dst = work_dir / "base_model"
            if not (dst / "config.json").is_file():
                log.info("importing CTranslate2 model %s into %s", p, dst)
                import_ct2_whisper(p, dst, overwrite=True)
            return str(dst)
        raise ConfigError(f"model.name_or_path {name_or_path}: directory holds neither a "
                          "transformers checkpoint nor a CTranslate2 model.bin")
    if os.sep in src and not (len(src.split("/")) == 2 and not src.startswith((".", "/", "~"))):
        raise ConfigError(f"model.name_or_path {name_or_path}: no such directory")
    return src  # a hub name (needs the network or the hub cache)


def _amp_dtype(spec: str, device: torch.device):
    """Autocast dtype: on CUDA bf16 (fp16 where bf16 is missing) for ``auto``; on other
    devices only an explicit ``bf16`` (CPU autocast), else full precision."""
    if spec == "off":
        return None
    if device.type != "cuda":
        return torch.bfloat16 if spec == "bf16" else None
    if spec == "fp16":
        return torch.float16
    if spec == "bf16" or (spec == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


def _lora_targets(lcfg) -> str:
    """peft's target regex: ``q_proj`` names the layer in every block of the scope,
    ``encoder_attn.q_proj`` only that one (the decoder's cross-attention)."""
    import re
    mods = "|".join(re.escape(m) if "." in m else rf"(?:\w+\.)?{re.escape(m)}"
                    for m in sorted(set(lcfg.target_modules)))
    where = {"decoder": r"model\.decoder", "encoder": r"model\.encoder",
             "both": r"model\.(?:encoder|decoder)"}[lcfg.scope]
    return rf"(?:.*\.)?{where}\.layers\.\d+\.(?:{mods})"


def _apply_lora(model, lcfg):
    from peft import LoraConfig, get_peft_model
    pc = LoraConfig(r=lcfg.r, lora_alpha=lcfg.alpha, lora_dropout=lcfg.dropout,
                    target_modules=_lora_targets(lcfg), bias="none")
    return get_peft_model(model, pc)


def _base(model):
    """The WhisperForConditionalGeneration inside DDP and peft wrappers."""
    m = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    return m.get_base_model() if hasattr(m, "get_base_model") else m


def _save_hf(model, processor, out_dir: Path, *, lora: bool,
             extra_files: dict[str, str] | None = None) -> None:
    """Save in transformers format (LoRA merged) atomically: written beside, then renamed;
    ``extra_files`` (name -> text) are written into the folder too."""
    from biosig.asr.convert import _commit_output, _prepare_output
    m = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    if lora:
        m = copy.deepcopy(m).merge_and_unload()
    tmp = _prepare_output(out_dir, True, "model")
    try:
        m.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        m.generation_config.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            write_text_atomic(Path(tmp) / name, text)
        _commit_output(tmp, out_dir)
    except BaseException:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ------------------------------------------------------------------------------ steps

def _features(audio: torch.Tensor, n_mels: int, device) -> torch.Tensor:
    from biosig.features import whisper_log_mel
    return whisper_log_mel(audio.to(device), fs=WHISPER_FS, n_mels=n_mels, pad_to_30s=True)


class EncoderCache:
    """Encoder outputs of a frozen encoder, kept in float16 on the CPU, keyed by item."""

    def __init__(self):
        self.store: dict[int, torch.Tensor] = {}

    def get(self, model, batch, *, n_mels: int, device, amp_dtype) -> torch.Tensor:
        idx = batch["index"].tolist()
        missing = [k for k, i in enumerate(idx) if i not in self.store]
        if missing:
            feats = _features(batch["audio"][missing], n_mels, device)
            with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                                 enabled=amp_dtype is not None):
                enc = _base(model).model.encoder(feats).last_hidden_state
            for k, e in zip(missing, enc):
                self.store[idx[k]] = e.to("cpu", torch.float16)
        return torch.stack([self.store[i] for i in idx]).to(device, torch.float32)


def _encoder_states(model, batch, *, cfg, n_mels, device, amp_dtype, train: bool,
                    cache: EncoderCache | None, frozen: bool, generator=None):
    """(input_features, encoder_hidden_states): exactly one is not None."""
    if cache is not None:
        return None, cache.get(model, batch, n_mels=n_mels, device=device, amp_dtype=amp_dtype)
    feats = _features(batch["audio"], n_mels, device)
    if train:
        from biosig.train.data import spec_augment
        feats = spec_augment(feats, cfg.augment, generator=generator,
                             lengths=batch["n_frames"])
    if frozen or not train:
        with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                             enabled=amp_dtype is not None):
            return None, _base(model).model.encoder(feats).last_hidden_state.float()
    return feats, None


def _forward(model, batch, feats, enc, *, device, amp_dtype, rows=None) -> torch.Tensor:
    """Teacher-forced logits ``(batch, tokens, vocab)`` (of ``rows`` only when given)."""
    from transformers.modeling_outputs import BaseModelOutput
    dec = batch["decoder_input_ids"].to(device)
    if rows is not None:
        dec = dec[rows]
        feats = feats[rows] if feats is not None else None
        enc = enc[rows] if enc is not None else None
    kw = ({"input_features": feats} if feats is not None
          else {"encoder_outputs": BaseModelOutput(last_hidden_state=enc)})
    with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                        enabled=amp_dtype is not None):
        return model(decoder_input_ids=dec, use_cache=False, **kw).logits


def _loss(model, batch, feats, enc, *, device, amp_dtype
          ) -> tuple[torch.Tensor, int, torch.Tensor]:
    """(mean token cross-entropy, number of target tokens, logits)."""
    lab = batch["labels"].to(device)
    logits = _forward(model, batch, feats, enc, device=device, amp_dtype=amp_dtype)
    n_tok = int((lab != -100).sum())
    loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), lab.flatten(),
                                             ignore_index=-100, reduction="sum")
    return loss / max(n_tok, 1), n_tok, logits


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
               labels: torch.Tensor) -> torch.Tensor:
    """Mean over target tokens (``labels != -100``) of KL(teacher || student) between the
    next-token distributions; logits ``(batch, tokens, vocab)``, labels ``(batch, tokens)``."""
    mask = labels != -100
    if not bool(mask.any()):
        return student_logits.sum() * 0.0
    ls = torch.log_softmax(student_logits[mask].float(), dim=-1)
    lt = torch.log_softmax(teacher_logits[mask].float(), dim=-1)
    return torch.nn.functional.kl_div(ls, lt, log_target=True, reduction="batchmean")


class StartingModel:
    """The model as it was before training, for the distillation term: with LoRA the same
    network with its adapters switched off (no copy), otherwise a frozen copy."""

    def __init__(self, model, *, lora: bool):
        self.copy = None
        if not lora:
            self.copy = copy.deepcopy(model).eval()
            for p in self.copy.parameters():
                p.requires_grad_(False)

    @torch.no_grad()
    def logits(self, model, batch, feats, enc, *, device, amp_dtype, rows) -> torch.Tensor:
        if self.copy is not None:
            return _forward(self.copy, batch, feats, enc, device=device, amp_dtype=amp_dtype,
                            rows=rows)
        with model.disable_adapter():
            return _forward(model, batch, feats, enc, device=device, amp_dtype=amp_dtype,
                            rows=rows)


@torch.no_grad()
def decode_batch(model, batch, *, cfg, n_mels: int, device, amp_dtype, tokenizer,
                 cache: EncoderCache | None = None) -> list[str]:
    """Greedy (or beam) transcripts of a batch without timestamps."""
    from transformers.modeling_outputs import BaseModelOutput
    base = _base(model)
    if cache is not None:
        enc = cache.get(model, batch, n_mels=n_mels, device=device, amp_dtype=amp_dtype)
    else:
        feats = _features(batch["audio"], n_mels, device)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):
            enc = base.model.encoder(feats).last_hidden_state.float()
    with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                        enabled=amp_dtype is not None):
        out = base.generate(encoder_outputs=BaseModelOutput(last_hidden_state=enc),
                            language=cfg.model.language, task=cfg.model.task,
                            max_new_tokens=cfg.eval.max_new_tokens, num_beams=cfg.eval.num_beams,
                            return_timestamps=False)
    seqs = out.sequences if hasattr(out, "sequences") else out
    return [t.strip() for t in tokenizer.batch_decode(seqs, skip_special_tokens=True)]


def _decode_dataset(model, ds: SpeechTextDataset, *, cfg, n_mels, device, amp_dtype, tokenizer,
                    cache, progress: bool, desc: str, with_loss: bool = True
                    ) -> tuple[list[str], float]:
    """Greedy transcripts of every item (in order) and, with ``with_loss``, the teacher-forced
    loss per token (no timestamps)."""
    was_training = model.training
    model.eval()
    sampler = BucketBatchSampler([u.duration_s for u in ds.utts], cfg.eval.batch_size,
                                 shuffle=False, bucket=True)
    pad = tokenizer.eos_token_id
    saved_prob, ds.timestamps_prob = ds.timestamps_prob, 0.0
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler, num_workers=0,
                                         collate_fn=functools.partial(collate_speech,
                                                                      pad_id=pad))
    from biosig.progress import track
    it = track(loader, desc=desc, unit="batch", enabled=progress)
    hyps: dict[int, str] = {}
    loss_sum, tok_sum = 0.0, 0
    try:
        for batch in it:
            with torch.no_grad():
                _, enc = _encoder_states(model, batch, cfg=cfg, n_mels=n_mels, device=device,
                                         amp_dtype=amp_dtype, train=False, cache=cache,
                                         frozen=True)
                if with_loss:
                    loss, n, _ = _loss(model, batch, None, enc, device=device,
                                       amp_dtype=amp_dtype)
                    loss_sum += float(loss) * n
                    tok_sum += n
                texts = decode_batch(model, batch, cfg=cfg, n_mels=n_mels, device=device,
                                     amp_dtype=amp_dtype, tokenizer=tokenizer,
                                     cache=_FixedCache(batch, enc))
            for i, t in zip(batch["index"].tolist(), texts):
                hyps[i] = t
    finally:
        ds.timestamps_prob = saved_prob
        model.train(was_training)
    return [hyps[i] for i in range(len(ds.utts))], loss_sum / max(tok_sum, 1)


def _evaluate(model, ds: SpeechTextDataset, *, cfg, n_mels, device, amp_dtype, tokenizer,
              cache, progress: bool, desc: str) -> tuple[dict, list[dict]]:
    """Validation loss (teacher forced, no timestamps) and WER/CER/term recall of decoding."""
    from biosig.asr.metrics import error_rates, term_recall
    hyp, loss = _decode_dataset(model, ds, cfg=cfg, n_mels=n_mels, device=device,
                                amp_dtype=amp_dtype, tokenizer=tokenizer, cache=cache,
                                progress=progress, desc=desc)
    refs = [u.text for u in ds.utts]
    er = error_rates(refs, hyp)
    found = total = 0
    for u, h in zip(ds.utts, hyp):
        f, t = term_recall(list(u.terms), h)
        found, total = found + f, total + t
    metrics = {"wer": er.wer, "cer": er.cer, "n": len(refs), "n_ref_words": er.n_ref_words,
               "term_recall": (found / total) if total else None, "terms_total": total,
               "loss": loss}
    rows = [{"id": u.id, "reference": u.text, "hypothesis": h} for u, h in zip(ds.utts, hyp)]
    return metrics, rows


class _FixedCache(EncoderCache):
    """An EncoderCache holding one batch's already computed states."""

    def __init__(self, batch, enc):
        super().__init__()
        self.enc = enc

    def get(self, model, batch, **kw):
        return self.enc


# ------------------------------------------------------------------------------ run

@dataclass
class WhisperRunResult:
    run_dir: Path
    best_dir: Path
    report: dict
    history: list[dict] = field(default_factory=list)


def _lr_lambda(cfg, total_steps: int):
    warm = cfg.train.warmup_steps
    kind = cfg.train.scheduler

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if kind == "constant":
            return 1.0
        frac = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 1.0 - frac if kind == "linear" else 0.5 * (1 + math.cos(math.pi * frac))
    return f


def _datasets(cfg: WhisperTrainConfig, targets: TargetBuilder):
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


def _replay_utterances(cfg: WhisperTrainConfig, out: Path, model, *, targets: TargetBuilder,
                       tokenizer, n_mels: int, device, amp_dtype, dist, progress: bool,
                       cache: EncoderCache | None) -> tuple[list[Utterance], list[int]]:
    """The replay clips (``data.replay``) with their targets, and their positions among the
    manifest's usable lines. ``targets: model`` decodes them once with the starting model (rank
    0) and keeps the transcripts in ``replay_targets.jsonl`` in the run folder, which a resumed
    run reads back; clips the model finds no words in are left out. With ``cache``, the encoder
    outputs computed for that decoding stay in it, keyed by position."""
    from dataclasses import replace
    r = cfg.data.replay
    if r.manifest is None:
        return [], []
    utts = load_utterances(r.manifest, root=cfg.data.root, max_duration_s=cfg.data.max_duration_s,
                           limit=r.limit, require_text=r.targets == "reference")
    if r.targets == "reference":
        return utts, list(range(len(utts)))
    path = out / "replay_targets.jsonl"
    texts: list[str] | None = None
    if dist.is_main:
        if path.is_file():
            got = {d["id"]: d["text"] for d in
                   (json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x)}
            if set(got) == {u.id for u in utts}:
                texts = [got[u.id] for u in utts]
        if texts is None:
            ds = SpeechTextDataset(utts, targets)
            texts, _ = _decode_dataset(model, ds, cfg=cfg, n_mels=n_mels, device=device,
                                       amp_dtype=amp_dtype, tokenizer=tokenizer, cache=cache,
                                       progress=progress, desc="replay targets",
                                       with_loss=False)
            _write_jsonl(path, [{"id": u.id, "text": t} for u, t in zip(utts, texts)])
            log.info("replay: %d clips transcribed by the starting model", len(utts))
    if dist.distributed:
        obj = [texts]
        torch.distributed.broadcast_object_list(obj, src=0)
        texts = obj[0]
    keep = [i for i, t in enumerate(texts) if t.strip()]
    return [replace(utts[i], text=texts[i].strip()) for i in keep], keep


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def train_whisper(cfg: WhisperTrainConfig, *, run_dir=None, resume: bool = False,
                  progress: bool = True) -> WhisperRunResult:
    """Fine-tune, validate every epoch, keep the best, score the test manifests.

    Parameters
    ----------
    cfg : WhisperTrainConfig
    run_dir : path, optional
        The run folder (default: a new ``<output_dir>/<recipe>/<UTC time>``).
    resume : bool
        Continue from ``run_dir/last.pt`` (the next epoch).
    progress : bool
        Progress bars on stderr (rank 0).

    Returns
    -------
    WhisperRunResult
    """
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from biosig.train.runs import (
        env_info,
        init_device,
        new_run_dir,
        save_checkpoint,
        seed_everything,
    )
    dist, device = init_device(cfg.device)
    amp_dtype = _amp_dtype(cfg.train.amp, device)
    seed_everything(cfg.seed + dist.rank)
    out = Path(run_dir) if run_dir is not None else new_run_dir(cfg, dist)
    main = dist.is_main
    if main:
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "config.yaml", yaml.safe_dump(config_to_dict(cfg),
                                                              sort_keys=False))
        write_text_atomic(out / "env.json", json.dumps(
            env_info(cfg, device, dist, amp_dtype is not None), indent=2) + "\n")
    if dist.distributed:
        torch.distributed.barrier()

    base_name = resolve_base_model(cfg.model.name_or_path, out) if main else None
    if dist.distributed:
        obj = [base_name]
        torch.distributed.broadcast_object_list(obj, src=0)
        base_name = obj[0]
    processor = WhisperProcessor.from_pretrained(base_name)
    tokenizer = processor.tokenizer
    model = WhisperForConditionalGeneration.from_pretrained(base_name)
    n_mels = int(model.config.num_mel_bins)
    model.generation_config.forced_decoder_ids = None
    model.config.forced_decoder_ids = None
    if cfg.train.freeze_encoder:
        for p in model.model.encoder.parameters():
            p.requires_grad_(False)
    ckpt = cfg.train.gradient_checkpointing
    if ckpt is True or (ckpt == "auto" and device.type == "cuda"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant":
                                                                           False})
    if cfg.lora.enabled:
        model = _apply_lora(model, cfg.lora)
    model.to(device)
    w_kl = cfg.data.replay.distill_weight if cfg.data.replay.manifest is not None else 0.0
    teacher = StartingModel(model, lora=cfg.lora.enabled) if w_kl > 0 else None
    encoder_frozen = not any(p.requires_grad for p in _base(model).model.encoder.parameters())
    targets = TargetBuilder(tokenizer, language=cfg.model.language, task=cfg.model.task)
    train_ds, valid_ds = _datasets(cfg, targets)
    train_cache = EncoderCache() if cfg.train.cache_encoder_outputs else None
    replay_cache = EncoderCache() if train_cache is not None else None
    replay, kept = _replay_utterances(cfg, out, model, targets=targets, tokenizer=tokenizer,
                                      n_mels=n_mels, device=device, amp_dtype=amp_dtype,
                                      dist=dist, progress=progress and main, cache=replay_cache)
    n0 = len(train_ds.utts)
    if replay:
        train_ds.utts = train_ds.utts + replay
        if replay_cache is not None:
            for k, i in enumerate(kept):
                if i in replay_cache.store:
                    train_cache.store[n0 + k] = replay_cache.store[i]
        log.info("training on %d clips + %d replay clips", n0, len(replay))

    net = model
    if dist.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    params = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    sampler = BucketBatchSampler([u.duration_s for u in train_ds.utts], cfg.train.batch_size,
                                 shuffle=True, seed=cfg.seed, bucket=cfg.train.bucket_by_length,
                                 rank=dist.rank, world_size=dist.world_size)
    steps_per_epoch = math.ceil(len(sampler) / cfg.train.grad_accum_steps)
    total_steps = cfg.train.max_steps or steps_per_epoch * cfg.train.epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg, total_steps))
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    pad = tokenizer.eos_token_id
    loader = torch.utils.data.DataLoader(
        train_ds, batch_sampler=sampler, num_workers=cfg.train.num_workers,
        collate_fn=functools.partial(collate_speech, pad_id=pad))
    valid_cache = EncoderCache() if encoder_frozen else None
    gen = torch.Generator().manual_seed(cfg.seed * 1000 + dist.rank)

    start_epoch, step, best_wer, best_epoch, bad = 1, 0, math.inf, -1, 0
    history: list[dict] = []
    if resume:
        ck = torch.load(out / "last.pt", map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        if scaler is not None and ck.get("scaler"):
            scaler.load_state_dict(ck["scaler"])
        start_epoch, step = ck["epoch"] + 1, ck["step"]
        best_wer, best_epoch, bad, history = (ck["best_wer"], ck["best_epoch"], ck["bad_epochs"],
                                              ck["history"])
        gen.set_state(ck["generator"])
        torch.set_rng_state(ck["torch_rng"])
        log.info("resumed %s at epoch %d", out, start_epoch)

    def validate(epoch: int) -> dict:
        m, rows = _evaluate(model, valid_ds, cfg=cfg, n_mels=n_mels, device=device,
                            amp_dtype=amp_dtype, tokenizer=tokenizer, cache=valid_cache,
                            progress=progress, desc=f"valid {epoch}")
        return m, rows

    best_dir = out / "best"
    if main and not resume:
        t0 = time.time()
        m, rows = validate(0)
        history.append({"epoch": 0, "step": 0, "train_loss": None, "valid_loss": m["loss"],
                        "valid": m, "lr": 0.0, "time_s": time.time() - t0})
        best_wer, best_epoch = m["wer"], 0
        _save_hf(model, processor, best_dir, lora=cfg.lora.enabled)
        _write_jsonl(out / "valid_predictions.jsonl", rows)
        with atomic_path(out / "metrics.jsonl") as tmp:
            Path(tmp).write_text(json.dumps(jsonable(history[0])) + "\n")
        log.info("epoch 0 (starting model): valid WER %.4f", m["wer"])

    stop = False
    for epoch in range(start_epoch, cfg.train.epochs + 1):
        if stop or (cfg.train.max_steps and step >= cfg.train.max_steps):
            break
        t0 = time.time()
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        net.train()
        from biosig.progress import track
        it = track(loader, desc=f"{cfg.recipe} epoch {epoch}", unit="batch",
                   enabled=bool(progress and main))
        loss_sum, tok_sum, micro, kl_sum, kl_n = 0.0, 0, 0, 0.0, 0
        opt.zero_grad(set_to_none=True)
        for batch in it:
            feats, enc = _encoder_states(net, batch, cfg=cfg, n_mels=n_mels, device=device,
                                         amp_dtype=amp_dtype, train=True, cache=train_cache,
                                         frozen=encoder_frozen, generator=gen)
            loss, n, logits = _loss(net, batch, feats, enc, device=device, amp_dtype=amp_dtype)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss is {float(loss)} at epoch {epoch}, "
                                         f"step {step} (lower train.lr or use amp: bf16)")
            total = loss
            rows = None if teacher is None else (batch["index"] >= n0).nonzero().flatten()
            if rows is not None and rows.numel():                 # replay clips in the batch
                t_logits = teacher.logits(model, batch, feats, enc, device=device,
                                          amp_dtype=amp_dtype, rows=rows.to(device))
                kl = distill_kl(logits[rows.to(device)], t_logits,
                                batch["labels"][rows].to(device))
                total = loss + w_kl * kl
                kl_sum += float(kl.detach())
                kl_n += 1
            scaled = total / cfg.train.grad_accum_steps
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
            loss_sum += float(loss.detach()) * n
            tok_sum += n
            micro += 1
            if micro % cfg.train.grad_accum_steps == 0:
                if scaler is not None:
                    scaler.unscale_(opt)
                if cfg.train.grad_clip_norm:
                    torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip_norm)
                if scaler is not None:
                    scaler.step(opt)
                    scaler.update()
                else:
                    opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                if progress and main and hasattr(it, "set_postfix"):
                    it.set_postfix(loss=f"{float(loss):.3f}", step=step)
                if cfg.train.max_steps and step >= cfg.train.max_steps:
                    break
        train_loss = loss_sum / max(tok_sum, 1)
        if dist.distributed:
            t = torch.tensor([loss_sum, tok_sum], dtype=torch.float64, device=device)
            torch.distributed.all_reduce(t)
            train_loss = float(t[0] / max(t[1], 1))
        decision = [False, False]
        if main:
            m, rows = validate(epoch)
            row = {"epoch": epoch, "step": step, "train_loss": train_loss,
                   "valid_loss": m["loss"], "valid": m, "lr": sched.get_last_lr()[0],
                   "time_s": time.time() - t0}
            if teacher is not None:
                row["train_distill_kl"] = kl_sum / max(kl_n, 1)  # rank 0's replay batches
            history.append(row)
            improved = m["wer"] < best_wer
            if improved:
                best_wer, best_epoch, bad = m["wer"], epoch, 0
                _save_hf(model, processor, best_dir, lora=cfg.lora.enabled)
                _write_jsonl(out / "valid_predictions.jsonl", rows)
            else:
                bad += 1
            with open(out / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(jsonable(row)) + "\n")
            log.info("epoch %d: train loss %.4f, valid loss %.4f, valid WER %.4f%s", epoch,
                     train_loss, m["loss"], m["wer"], " (best)" if improved else "")
            stop = bool(cfg.train.patience and bad >= cfg.train.patience)
            decision = [improved, stop]
            save_checkpoint({
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "epoch": epoch, "step": step, "best_wer": best_wer, "best_epoch": best_epoch,
                "bad_epochs": bad, "history": history, "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state()}, out / "last.pt")
        if dist.distributed:
            torch.distributed.broadcast_object_list(decision, src=0)
        stop = bool(decision[1])

    report: dict = {}
    if main:
        report = _finish(cfg, out, best_dir, history, best_epoch, n_trainable,
                         base_name=base_name, valid_ds=valid_ds, valid_cache=valid_cache,
                         device=device, amp_dtype=amp_dtype, progress=progress)
    if dist.distributed:
        torch.distributed.barrier()
    return WhisperRunResult(out, best_dir, report, history)


def interpolate_state(start: dict, tuned: dict, alpha: float) -> dict:
    """``start + alpha * (tuned - start)`` for every floating-point tensor (others from
    ``tuned``); both state dicts must have the same keys and shapes."""
    if set(start) != set(tuned):
        diff = sorted(set(start) ^ set(tuned))[:3]
        raise ValueError(f"the two models' weights differ in names (e.g. {diff})")
    out = {}
    for k, t in tuned.items():
        s = start[k]
        if s.shape != t.shape:
            raise ValueError(f"weight {k}: shape {tuple(s.shape)} vs {tuple(t.shape)}")
        out[k] = (s + alpha * (t.to(s.dtype) - s)).to(t.dtype) if t.is_floating_point() else t
    return out


def _interpolate_best(base_name: str, best_dir: Path, alpha: float) -> None:
    """Replace ``best/`` by its interpolation with the starting model; the fine-tuned weights
    move to ``best_tuned/`` first. An interpolated ``best/`` carries ``interpolation.json``, so
    a rerun (or a resumed run whose best epoch did not change) starts from ``best_tuned/``
    again, and a newly saved best epoch replaces ``best_tuned/``."""
    import shutil

    from transformers import WhisperForConditionalGeneration, WhisperProcessor
    tuned_dir = best_dir.with_name("best_tuned")
    if not (best_dir / "interpolation.json").is_file():      # best/ holds fine-tuned weights
        shutil.rmtree(tuned_dir, ignore_errors=True)
        os.replace(best_dir, tuned_dir)
    tuned = WhisperForConditionalGeneration.from_pretrained(tuned_dir)
    start = WhisperForConditionalGeneration.from_pretrained(base_name)
    tuned.load_state_dict(interpolate_state(start.state_dict(), tuned.state_dict(), alpha))
    marker = {"alpha": alpha, "start": str(base_name), "tuned": tuned_dir.name}
    _save_hf(tuned, WhisperProcessor.from_pretrained(tuned_dir), best_dir, lora=False,
             extra_files={"interpolation.json": json.dumps(marker) + "\n"})
    log.info("best/ = starting model + %.2f x (fine-tuned - starting model)", alpha)


def _finish(cfg, out: Path, best_dir: Path, history, best_epoch: int, n_trainable: int, *,
            base_name: str, valid_ds: SpeechTextDataset, valid_cache: EncoderCache | None,
            device, amp_dtype, progress: bool) -> dict:
    """Interpolate (``export.interpolation``; the saved model is validated again, with the
    frozen encoder's cached outputs where there are), score the test manifests with the best
    model, export, plot, write report.json."""
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    from biosig.train.plots import plot_learning_curves
    rows = [dict(h, train_loss=(np.nan if h["train_loss"] is None else h["train_loss"]))
            for h in history]
    plot_learning_curves(rows, out / "learning_curves.png", monitor="wer")
    best = next((h for h in history if h["epoch"] == best_epoch), history[-1] if history else {})
    start = next((h for h in history if h["epoch"] == 0), None)
    report = {"recipe": cfg.recipe, "best_epoch": best_epoch, "trainable_parameters": n_trainable,
              "valid": best.get("valid"), "valid_start": start["valid"] if start else None,
              "test": {}}
    alpha = cfg.export.interpolation
    if alpha < 1.0:
        _interpolate_best(base_name, best_dir, alpha)
    if alpha < 1.0 or cfg.data.test_manifests:
        processor = WhisperProcessor.from_pretrained(best_dir)
        model = WhisperForConditionalGeneration.from_pretrained(best_dir).to(device).eval()
    if alpha < 1.0:
        report["interpolation"] = alpha
        report["valid_tuned"] = report["valid"]
        report["valid"], _ = _evaluate(model, valid_ds, cfg=cfg,
                                       n_mels=int(model.config.num_mel_bins), device=device,
                                       amp_dtype=amp_dtype, tokenizer=processor.tokenizer,
                                       cache=valid_cache, progress=progress,
                                       desc="valid interpolated")
        log.info("interpolated model (%.2f): valid WER %.4f (fine-tuned %.4f)", alpha,
                 report["valid"]["wer"], report["valid_tuned"]["wer"])
    if cfg.data.test_manifests:
        targets = TargetBuilder(processor.tokenizer, language=cfg.model.language,
                                task=cfg.model.task)
        for name, man in cfg.data.test_manifests.items():
            utts = load_utterances(man, root=cfg.data.root, max_duration_s=30.0)
            ds = SpeechTextDataset(utts, targets)
            m, pred = _evaluate(model, ds, cfg=cfg, n_mels=int(model.config.num_mel_bins),
                                device=device, amp_dtype=amp_dtype,
                                tokenizer=processor.tokenizer, cache=None, progress=progress,
                                desc=f"test {name}")
            report["test"][name] = m
            _write_jsonl(out / f"test_predictions_{name}.jsonl", pred)
    q = cfg.export.ct2_quantization
    if q is not None:
        from biosig.asr.convert import export_ct2_whisper
        export_ct2_whisper(best_dir, out / "ct2", quantization=q, overwrite=True)
        report["ct2_dir"] = str(out / "ct2")
    write_text_atomic(out / "report.json", json.dumps(jsonable(report), indent=2) + "\n")
    return report
