"""The Whisper model side of the fine-tuning task: the starting model, LoRA adapters, the
log-mel input and encoder states (cached when the encoder is frozen), teacher-forced loss,
distillation from the starting model, decoding and WER-scored evaluation."""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
import os
import re
from pathlib import Path

import torch

from biosig.asr.ct2 import import_ct2_whisper
from biosig.asr.metrics import error_rates, term_recall
from biosig.asr.models import resolve_packaged
from biosig.errors import ConfigError
from biosig.features import whisper_log_mel
from biosig.features.whisper import WHISPER_FS
from biosig.fileio import atomic_path
from biosig.progress import track
from biosig.train.data import spec_augment
from biosig.train.whisper.data import BucketBatchSampler, SpeechTextDataset, collate_speech

__all__ = ["resolve_base_model", "amp_dtype_for", "lora_target_regex", "apply_lora",
           "base_model_of", "log_mel_batch", "encoder_mid", "encoder_top", "EncoderCache",
           "FixedCache", "encoder_states",
           "forward_logits", "token_loss", "distill_kl", "StartingModel", "decode_batch",
           "decode_dataset", "evaluate_wer"]

log = logging.getLogger("biosig.train.whisper")


def resolve_base_model(name_or_path: str, work_dir: Path) -> str:
    """A transformers-loadable model: CTranslate2 directories (and ``packaged:whisper-base``)
    are imported into ``work_dir/base_model`` once; other values pass through."""
    src = resolve_packaged(name_or_path, what="model.name_or_path")
    p = Path(src).expanduser()
    if p.is_dir():
        hf = any((p / n).is_file() for n in ("model.safetensors", "pytorch_model.bin",
                                              "model.safetensors.index.json"))
        if hf:
            return str(p)
        if (p / "model.bin").is_file():
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


def amp_dtype_for(spec: str, device: torch.device):
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


def lora_target_regex(lcfg) -> str:
    """peft's target regex: ``q_proj`` names the layer in every block of the scope,
    ``encoder_attn.q_proj`` only that one (the decoder's cross-attention)."""
    mods = "|".join(re.escape(m) if "." in m else rf"(?:\w+\.)?{re.escape(m)}"
                    for m in sorted(set(lcfg.target_modules)))
    where = {"decoder": r"model\.decoder", "encoder": r"model\.encoder",
             "both": r"model\.(?:encoder|decoder)"}[lcfg.scope]
    return rf"(?:.*\.)?{where}\.layers\.\d+\.(?:{mods})"


def apply_lora(model, lcfg):
    from peft import LoraConfig, get_peft_model  # optional extra: train
    pc = LoraConfig(r=lcfg.r, lora_alpha=lcfg.alpha, lora_dropout=lcfg.dropout,
                    target_modules=lora_target_regex(lcfg), bias="none")
    return get_peft_model(model, pc)


def base_model_of(model):
    """The WhisperForConditionalGeneration inside DDP and peft wrappers."""
    m = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    return m.get_base_model() if hasattr(m, "get_base_model") else m



def log_mel_batch(audio: torch.Tensor, n_mels: int, device) -> torch.Tensor:
    return whisper_log_mel(audio.to(device), fs=WHISPER_FS, n_mels=n_mels, pad_to_30s=True)


def encoder_mid(encoder, feats: torch.Tensor, start: int) -> torch.Tensor:
    """The input of encoder layer ``start``: the convolutions, the positions and the layers
    before it (no final layer norm), as ``WhisperEncoder.forward`` computes them."""
    h = torch.nn.functional.gelu(encoder.conv1(feats))
    h = torch.nn.functional.gelu(encoder.conv2(h)).permute(0, 2, 1)
    h = h + encoder.embed_positions.weight[: h.shape[1]]
    for layer in encoder.layers[:start]:
        h = _layer_out(layer(h, None))
    return h


def encoder_top(encoder, mid: torch.Tensor, start: int) -> torch.Tensor:
    """The encoder's output from the input of its layer ``start`` (:func:`encoder_mid`)."""
    h = mid
    for layer in encoder.layers[start:]:
        h = _layer_out(layer(h, None))
    return encoder.layer_norm(h)


def _layer_out(out):
    return out[0] if isinstance(out, tuple) else out


class EncoderCache:
    """The frozen part of the encoder run once per item and kept in float16 on the CPU, keyed
    by item: the encoder's output, or with ``start`` the input of encoder layer ``start`` (the
    layers from ``start`` on train; :meth:`get` runs them on the cached states).

    With ``folder`` the states are also written there, one file per clip named by a digest of
    its id and audio path (:meth:`name_items` says which item is which clip), and read back by
    a later run or a resumed one instead of running the encoder again.
    """

    def __init__(self, start: int | None = None, *, folder: Path | None = None):
        self.start = start
        self.folder = Path(folder) if folder is not None else None
        self.store: dict[int, torch.Tensor] = {}
        self.names: list[str] | None = None

    def name_items(self, utts) -> None:
        """Name the items (dataset positions) by their clips, for the files in ``folder``."""
        self.names = [hashlib.sha1(f"{u.id}\0{u.path}".encode()).hexdigest()[:20]
                      for u in utts]

    def _file(self, i: int) -> Path | None:
        if self.folder is None:
            return None
        if self.names is None:
            raise RuntimeError("EncoderCache with a folder: call name_items first")
        return self.folder / f"{self.names[i]}.pt"

    def frozen_states(self, model, batch, *, n_mels: int, device, amp_dtype) -> torch.Tensor:
        """The cached states of ``batch`` (computed for the items not seen yet), float32."""
        idx = batch["index"].tolist()
        for i in idx:
            f = self._file(i)
            if i not in self.store and f is not None and f.is_file():
                self.store[i] = torch.load(f, map_location="cpu", weights_only=True)
        missing = [k for k, i in enumerate(idx) if i not in self.store]
        if missing:
            feats = log_mel_batch(batch["audio"][missing], n_mels, device)
            encoder = base_model_of(model).model.encoder
            with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                                 enabled=amp_dtype is not None):
                enc = (encoder(feats).last_hidden_state if self.start is None
                       else encoder_mid(encoder, feats, self.start))
            for k, e in zip(missing, enc):
                self.store[idx[k]] = e.to("cpu", torch.float16).clone()
                f = self._file(idx[k])
                if f is not None:
                    f.parent.mkdir(parents=True, exist_ok=True)
                    with atomic_path(f) as tmp:
                        torch.save(self.store[idx[k]], tmp)
        return torch.stack([self.store[i] for i in idx]).to(device, torch.float32)

    def get(self, model, batch, *, n_mels: int, device, amp_dtype) -> torch.Tensor:
        """The encoder's output for ``batch`` (through the trainable layers, with gradients
        when enabled, where ``start`` is set)."""
        h = self.frozen_states(model, batch, n_mels=n_mels, device=device, amp_dtype=amp_dtype)
        if self.start is None:
            return h
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                            enabled=amp_dtype is not None):
            return encoder_top(base_model_of(model).model.encoder, h, self.start).float()


def encoder_states(model, batch, *, cfg, n_mels, device, amp_dtype, train: bool,
                    cache: EncoderCache | None, frozen: bool, generator=None):
    """(input_features, encoder_hidden_states): exactly one is not None."""
    if cache is not None:
        return None, cache.get(model, batch, n_mels=n_mels, device=device, amp_dtype=amp_dtype)
    feats = log_mel_batch(batch["audio"], n_mels, device)
    if train:
        feats = spec_augment(feats, cfg.augment, generator=generator,
                             lengths=batch["n_frames"])
    if frozen or not train:
        with torch.no_grad(), torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                             enabled=amp_dtype is not None):
            return None, base_model_of(model).model.encoder(feats).last_hidden_state.float()
    return feats, None


def forward_logits(model, batch, feats, enc, *, device, amp_dtype, rows=None) -> torch.Tensor:
    """Teacher-forced logits ``(batch, tokens, vocab)`` (of ``rows`` only when given)."""
    from transformers.modeling_outputs import BaseModelOutput  # optional extra: asr
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


def token_loss(model, batch, feats, enc, *, device, amp_dtype
          ) -> tuple[torch.Tensor, int, torch.Tensor]:
    """(mean token cross-entropy, number of target tokens, logits)."""
    lab = batch["labels"].to(device)
    logits = forward_logits(model, batch, feats, enc, device=device, amp_dtype=amp_dtype)
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
    network with its adapters switched off (no copy), otherwise a frozen copy. Where encoder
    layers from ``encoder_start`` on train (``train.encoder_train_layers``) with LoRA, a frozen
    copy of the starting encoder is kept too, as switching the adapters off does not undo
    them."""

    def __init__(self, model, *, lora: bool, encoder_start: int | None = None):
        self.copy = None
        self.encoder, self.start = None, encoder_start
        if not lora:
            self.copy = copy.deepcopy(model).eval()
            for p in self.copy.parameters():
                p.requires_grad_(False)
        if encoder_start is not None:
            self.encoder = (base_model_of(self.copy).model.encoder if self.copy is not None
                            else copy.deepcopy(base_model_of(model).model.encoder).eval())
            for p in self.encoder.parameters():
                p.requires_grad_(False)

    @torch.no_grad()
    def logits(self, model, batch, feats, enc, *, device, amp_dtype, rows,
               mid: torch.Tensor | None = None) -> torch.Tensor:
        """The starting model's logits for ``rows`` of ``batch``; where encoder layers train,
        from its own encoder output: on ``mid`` (the input of layer ``encoder_start``, from
        the cache) or on ``feats``."""
        if self.start is not None:
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                enabled=amp_dtype is not None):
                enc = (encoder_top(self.encoder, mid[rows], self.start) if mid is not None
                       else self.encoder(feats[rows]).last_hidden_state).float()
            batch = {"decoder_input_ids": batch["decoder_input_ids"][rows.cpu()]}
            feats, rows = None, None
        if self.copy is not None:
            return forward_logits(self.copy, batch, feats, enc, device=device, amp_dtype=amp_dtype,
                            rows=rows)
        with model.disable_adapter():
            return forward_logits(model, batch, feats, enc, device=device, amp_dtype=amp_dtype,
                            rows=rows)


@torch.no_grad()
def decode_batch(model, batch, *, cfg, n_mels: int, device, amp_dtype, tokenizer,
                 cache: EncoderCache | None = None) -> list[str]:
    """Greedy (or beam) transcripts of a batch without timestamps."""
    from transformers.modeling_outputs import BaseModelOutput  # optional extra: asr
    base = base_model_of(model)
    if cache is not None:
        enc = cache.get(model, batch, n_mels=n_mels, device=device, amp_dtype=amp_dtype)
    else:
        feats = log_mel_batch(batch["audio"], n_mels, device)
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


def decode_dataset(model, ds: SpeechTextDataset, *, cfg, n_mels, device, amp_dtype, tokenizer,
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
    it = track(loader, desc=desc, unit="batch", enabled=progress)
    hyps: dict[int, str] = {}
    loss_sum, tok_sum = 0.0, 0
    try:
        for batch in it:
            with torch.no_grad():
                _, enc = encoder_states(model, batch, cfg=cfg, n_mels=n_mels, device=device,
                                         amp_dtype=amp_dtype, train=False, cache=cache,
                                         frozen=True)
                if with_loss:
                    loss, n, _ = token_loss(model, batch, None, enc, device=device,
                                       amp_dtype=amp_dtype)
                    loss_sum += float(loss) * n
                    tok_sum += n
                texts = decode_batch(model, batch, cfg=cfg, n_mels=n_mels, device=device,
                                     amp_dtype=amp_dtype, tokenizer=tokenizer,
                                     cache=FixedCache(batch, enc))
            for i, t in zip(batch["index"].tolist(), texts):
                hyps[i] = t
    finally:
        ds.timestamps_prob = saved_prob
        model.train(was_training)
    return [hyps[i] for i in range(len(ds.utts))], loss_sum / max(tok_sum, 1)


def evaluate_wer(model, ds: SpeechTextDataset, *, cfg, n_mels, device, amp_dtype, tokenizer,
              cache, progress: bool, desc: str) -> tuple[dict, list[dict]]:
    """Validation loss (teacher forced, no timestamps) and WER/CER/term recall of decoding."""
    hyp, loss = decode_dataset(model, ds, cfg=cfg, n_mels=n_mels, device=device,
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


class FixedCache(EncoderCache):
    """An EncoderCache holding one batch's already computed states."""

    def __init__(self, batch, enc):
        super().__init__()
        self.enc = enc

    def get(self, model, batch, **kw):
        return self.enc
