"""Fine-tuning Whisper on (audio, text) manifests: the ``task: whisper_asr`` recipe, run by the
one training loop (:func:`biosig.train.loop.fit`) through :class:`WhisperTask`'s hooks.

``biosig train recipes/whisper_dictation/config.yaml`` validates the YAML into a
:class:`~biosig.train.config.WhisperTrainConfig` and calls :func:`train_whisper`, which

- starts from a transformers directory, a hub name, ``packaged:whisper-base`` or a CTranslate2
  directory (imported once into the run folder with
  :func:`biosig.asr.ct2.import_ct2_whisper`);
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
  ``torchrun`` (only rank 0 evaluates and writes), optional encoder freezing (all of it, or all but
  its last ``train.encoder_train_layers`` layers; the frozen part can run once per clip and be
  cached) and optional LoRA adapters through peft (merged into the weights when saved);
- decodes the validation set after every epoch (and once before training) and scores it with
  the dictation normaliser (:func:`biosig.asr.metrics.error_rates`), keeps the best epoch by WER
  in ``best/`` (transformers format, with the tokenizer, loadable by ``biosig transcribe
  --backend transformers`` and exportable with ``biosig asr export-ct2``), optionally exports it
  to CTranslate2 (``export.ct2_quantization``), and scores ``data.test_manifests`` with it.

A run folder ``<output_dir>/<recipe>/<run-id>/`` holds ``config.yaml``, ``env.json``,
``metrics.jsonl`` (one line per epoch; epoch 0 is the starting model), ``best/``, ``last.pt``
(everything ``--resume`` needs; runs resume at epoch boundaries, where the batch order is a
function of the seed and the epoch, so a resumed run equals an uninterrupted one),
``best_adapter/`` (with LoRA: the best epoch's adapter alone, peft format),
``report.json``, ``valid_predictions.jsonl`` / ``test_predictions_<name>.jsonl`` (kept in the
run folder, never logged) and ``learning_curves.png``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from biosig.errors import ConfigError
from biosig.extras import require
from biosig.train.config import WhisperTrainConfig
from biosig.train.loop import LoopResult, RunContext, StepOutput, Task, fit
from biosig.train.plots import plot_learning_curves
from biosig.train.runs import run_folder
from biosig.train.whisper.data import (
    BucketBatchSampler,
    SpeechTextDataset,
    TargetBuilder,
    Utterance,
    collate_speech,
    load_utterances,
    make_datasets,
    spread_evenly,
    write_jsonl,
)
from biosig.train.whisper.export import (
    export_ct2,
    interpolate_best,
    restore_tuned_best,
    save_adapter,
    save_hf,
)
from biosig.train.whisper.model import (
    EncoderCache,
    StartingModel,
    amp_dtype_for,
    apply_lora,
    base_model_of,
    decode_dataset,
    distill_kl,
    encoder_states,
    evaluate_wer,
    resolve_base_model,
    token_loss,
)
from biosig.train.whisper.select import select_interpolation

__all__ = ["WhisperTask", "train_whisper", "WhisperRunResult", "lr_lambda",
           "replay_utterances"]

log = logging.getLogger("biosig.train.whisper")


@dataclass
class WhisperRunResult:
    run_dir: Path
    best_dir: Path
    report: dict
    history: list[dict] = field(default_factory=list)



def lr_lambda(cfg, total_steps: int):
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


def replay_utterances(cfg: WhisperTrainConfig, out: Path, model, *, targets: TargetBuilder,
                      tokenizer, n_mels: int, device, amp_dtype, dist, progress: bool,
                      cache: EncoderCache | None) -> tuple[list[Utterance], list[int]]:
    """The replay clips (``data.replay``) with their targets, and their positions among the
    manifest's usable lines. ``targets: model`` decodes them once with the starting model (rank
    0) and keeps the transcripts in ``replay_targets.jsonl`` in the run folder, which a resumed
    run reads back; clips the model finds no words in are left out. With ``cache``, the encoder
    outputs computed for that decoding stay in it, keyed by position."""
    r = cfg.data.replay
    if r.manifest is None:
        return [], []
    utts = spread_evenly(load_utterances(r.manifest, root=r.root or cfg.data.root,
                                         filter=r.filter, max_duration_s=cfg.data.max_duration_s,
                                         require_text=r.targets == "reference"), r.limit)
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
            if cache is not None:
                cache.name_items(utts)
            texts, _ = decode_dataset(model, ds, cfg=cfg, n_mels=n_mels, device=device,
                                      amp_dtype=amp_dtype, tokenizer=tokenizer, cache=cache,
                                      progress=progress, desc="replay targets",
                                      with_loss=False)
            write_jsonl(path, [{"id": u.id, "text": t} for u, t in zip(utts, texts)])
            log.info("replay: %d clips transcribed by the starting model", len(utts))
    if dist.distributed:
        obj = [texts]
        torch.distributed.broadcast_object_list(obj, src=0)
        texts = obj[0]
    keep = [i for i, t in enumerate(texts) if t.strip()]
    return [replace(utts[i], text=texts[i].strip()) for i in keep], keep


class WhisperTask(Task):
    """The Whisper fine-tuning hooks into :func:`biosig.train.loop.fit`: WER on the validation
    set decides (lower is better; the starting model is epoch 0), the learning rate follows a
    per-step warm-up and decay, ``best/`` holds the best epoch in transformers format, and the
    test manifests are scored at the end."""

    monitor = "wer"
    mode = "min"
    validate_first = True
    scheduler_interval = "step"
    items_unit = "clip"

    def __init__(self, cfg: WhisperTrainConfig):
        self.cfg = cfg
        self.grad_accum_steps = cfg.train.grad_accum_steps
        self.grad_clip_norm = cfg.train.grad_clip_norm or None
        self.max_steps = cfg.train.max_steps or None
        self.patience = cfg.train.patience or None

    def setup(self, ctx: RunContext) -> None:
        from transformers import (  # optional extra: asr (require()d in WhisperTask)
            WhisperForConditionalGeneration,
            WhisperProcessor,
        )
        cfg, dist, device = self.cfg, ctx.dist, ctx.device
        self.ctx, self.device = ctx, device
        self.amp_dtype = amp_dtype_for(cfg.train.amp, device)
        base_name = resolve_base_model(cfg.model.name_or_path, ctx.out) if dist.is_main else None
        if dist.distributed:
            obj = [base_name]
            torch.distributed.broadcast_object_list(obj, src=0)
            base_name = obj[0]
        self.base_name = base_name
        self.processor = WhisperProcessor.from_pretrained(base_name)
        self.tokenizer = self.processor.tokenizer
        model = WhisperForConditionalGeneration.from_pretrained(base_name)
        self.n_mels = int(model.config.num_mel_bins)
        model.generation_config.forced_decoder_ids = None
        model.config.forced_decoder_ids = None
        if cfg.train.freeze_encoder:
            for p in model.model.encoder.parameters():
                p.requires_grad_(False)
        n_enc, k = len(model.model.encoder.layers), cfg.train.encoder_train_layers
        if k > n_enc:
            raise ConfigError(f"train.encoder_train_layers is {k} but {base_name} has "
                              f"{n_enc} encoder layers")
        # the input of the first trainable encoder layer, where only the top layers train
        self.encoder_start = n_enc - k if k else None
        ckpt = cfg.train.gradient_checkpointing
        if ckpt is True or (ckpt == "auto" and device.type == "cuda"):
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False})
        if cfg.lora.enabled:
            model = apply_lora(model, cfg.lora)
        if self.encoder_start is not None:          # after peft, which freezes the rest
            enc = base_model_of(model).model.encoder
            for p in (*enc.layers[self.encoder_start:].parameters(),
                      *enc.layer_norm.parameters()):
                p.requires_grad_(True)
        self.model = model.to(device)
        self.w_kl = (cfg.data.replay.distill_weight if cfg.data.replay.manifest is not None
                     else 0.0)
        self.teacher = (StartingModel(model, lora=cfg.lora.enabled,
                                      encoder_start=self.encoder_start)
                        if self.w_kl > 0 else None)
        self.encoder_frozen = not any(p.requires_grad
                                      for p in base_model_of(model).model.encoder.parameters())
        # below encoder_start (or all of it) the encoder never changes: its states are cached
        cacheable = self.encoder_frozen or self.encoder_start is not None
        cache_start = None if self.encoder_frozen else self.encoder_start
        targets = TargetBuilder(self.tokenizer, language=cfg.model.language, task=cfg.model.task)
        self.train_ds, self.valid_ds = make_datasets(cfg, targets)
        folder = None
        if cacheable and cfg.train.cache_encoder_outputs == "disk":
            folder = ctx.out / "encoder_cache" / ("output" if cache_start is None
                                                  else f"layer{cache_start}_input")
        self.train_cache = (EncoderCache(cache_start, folder=folder)
                            if cfg.train.cache_encoder_outputs else None)
        replay_cache = (EncoderCache(cache_start, folder=folder)
                        if self.train_cache is not None else None)
        replay, kept = replay_utterances(cfg, ctx.out, model, targets=targets,
                                         tokenizer=self.tokenizer, n_mels=self.n_mels,
                                         device=device, amp_dtype=self.amp_dtype, dist=dist,
                                         progress=ctx.show, cache=replay_cache)
        self.n0 = len(self.train_ds.utts)
        if replay:
            self.train_ds.utts = self.train_ds.utts + replay
            if replay_cache is not None:
                for k, i in enumerate(kept):
                    if i in replay_cache.store:
                        self.train_cache.store[self.n0 + k] = replay_cache.store[i]
            log.info("training on %d clips + %d replay clips", self.n0, len(replay))
        self.sampler = BucketBatchSampler([u.duration_s for u in self.train_ds.utts],
                                          cfg.train.batch_size, shuffle=True, seed=cfg.seed,
                                          bucket=cfg.train.bucket_by_length, rank=dist.rank,
                                          world_size=dist.world_size)
        self.loader = torch.utils.data.DataLoader(
            self.train_ds, batch_sampler=self.sampler, num_workers=cfg.train.num_workers,
            collate_fn=functools.partial(collate_speech, pad_id=self.tokenizer.eos_token_id))
        if self.train_cache is not None:
            self.train_cache.name_items(self.train_ds.utts)
        self.valid_cache = EncoderCache(cache_start, folder=folder) if cacheable else None
        if self.valid_cache is not None:
            self.valid_cache.name_items(self.valid_ds.utts)
        self.best_dir = ctx.out / "best"
        self._valid_rows: list[dict] = []
        self.n_trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def configure_optimizers(self, params):
        cfg = self.cfg
        opt = torch.optim.AdamW(params, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        steps_per_epoch = math.ceil(len(self.sampler) / cfg.train.grad_accum_steps)
        total_steps = cfg.train.max_steps or steps_per_epoch * cfg.train.epochs
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg, total_steps))

    def train_batches(self, epoch: int):
        self.sampler.set_epoch(epoch)
        self.train_ds.set_epoch(epoch)
        return self.loader

    def training_step(self, net, batch, *, generator) -> StepOutput:
        kw = dict(device=self.device, amp_dtype=self.amp_dtype)
        feats, enc = encoder_states(net, batch, cfg=self.cfg, n_mels=self.n_mels, train=True,
                                    cache=self.train_cache, frozen=self.encoder_frozen,
                                    generator=generator, **kw)
        loss, n, logits = token_loss(net, batch, feats, enc, **kw)
        total, extras = loss, {}
        if self.teacher is not None:
            rows = (batch["index"] >= self.n0).nonzero().flatten().to(self.device)
            if rows.numel():                                   # replay clips in the batch
                mid = (self.train_cache.frozen_states(net, batch, n_mels=self.n_mels, **kw)
                       if self.teacher.start is not None and self.train_cache is not None
                       else None)                              # cached: a look-up
                t_logits = self.teacher.logits(self.model, batch, feats, enc, rows=rows,
                                               mid=mid, **kw)
                kl = distill_kl(logits[rows], t_logits, batch["labels"][rows.cpu()].to(
                    self.device))
                total = loss + self.w_kl * kl
                extras["distill_kl"] = float(kl.detach())
        return StepOutput(total, n=n, items=int(batch["index"].numel()), extras=extras,
                          logged=float(loss.detach()))

    def validate(self, epoch: int) -> tuple[dict, float]:
        m, self._valid_rows = evaluate_wer(self.model, self.valid_ds, cfg=self.cfg,
                                           n_mels=self.n_mels, device=self.device,
                                           amp_dtype=self.amp_dtype, tokenizer=self.tokenizer,
                                           cache=self.valid_cache, progress=self.ctx.show,
                                           desc=f"valid {epoch}")
        return m, m["loss"]

    def on_best(self, epoch: int, metrics: dict, state: dict) -> None:
        save_hf(self.model, self.processor, self.best_dir, lora=self.cfg.lora.enabled)
        if self.cfg.lora.enabled:      # the adapter alone too (a few MB; peft format)
            save_adapter(self.model, self.ctx.out / "best_adapter")
        write_jsonl(self.ctx.out / "valid_predictions.jsonl", self._valid_rows)

    def export_changed(self, report: dict) -> bool:
        # a report without ct2_quantization (older biosig) counts as the config's where it
        # exported at all
        exp = self.cfg.export
        q_done = report.get("ct2_quantization",
                            exp.ct2_quantization if "ct2_dir" in report else None)
        sel = self.cfg.select
        if sel.manifest is not None or "selection" in report:
            # the weight is chosen on real speech: finished again when how it is chosen
            # changed (a run finished with export.interpolation has no selection)
            return (report.get("selection", {}).get("config") != sel.model_dump()
                    or q_done != exp.ct2_quantization)
        return (float(report.get("interpolation", 1.0)) != exp.interpolation
                or q_done != exp.ct2_quantization)

    def finish(self, result: LoopResult) -> dict:
        return finish_run(self.cfg, self.ctx.out, self.best_dir, result.history,
                          result.best_epoch, self.n_trainable, base_name=self.base_name,
                          valid_ds=self.valid_ds, valid_cache=self.valid_cache,
                          device=self.device, amp_dtype=self.amp_dtype,
                          progress=self.ctx.show)


def train_whisper(cfg: WhisperTrainConfig, *, run_dir=None, run_id: str | None = None,
                  resume: bool = False, progress: bool = True) -> WhisperRunResult:
    """Fine-tune, validate every epoch, keep the best, score the test manifests.

    Parameters
    ----------
    cfg : WhisperTrainConfig
    run_dir : path, optional
        The run folder; default: the one ``run_id`` names (refused when it already holds a
        run, unless ``resume``), the latest run with ``resume``, else a new
        ``<output_dir>/<recipe>/<UTC time>``.
    run_id : str, optional
    resume : bool
        Continue from ``last.pt`` (the next epoch). A finished run is returned as it is, or,
        where ``cfg.export`` differs from what it was finished with (``export.interpolation``,
        ``export.ct2_quantization``), finished again from its saved best model: interpolated,
        validated, tested and exported without training.
    progress : bool
        Progress on stderr (rank 0).

    Returns
    -------
    WhisperRunResult
    """
    for module in ("transformers", "peft"):      # before anything is written
        require(module, extra="train")
    out = Path(run_dir) if run_dir is not None else run_folder(cfg, run_id=run_id,
                                                                resume=resume)
    out, report, result = fit(WhisperTask(cfg), cfg, run_dir=out, resume=resume,
                              progress=progress)
    if result is not None:
        history = result.history
    else:
        history = [json.loads(x) for x in
                   (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines() if x]
    return WhisperRunResult(out, out / "best", report, history)


def finish_run(cfg, out: Path, best_dir: Path, history, best_epoch: int, n_trainable: int, *,
               base_name: str, valid_ds: SpeechTextDataset, valid_cache: EncoderCache | None,
               device, amp_dtype, progress: bool) -> dict:
    """Interpolate (``export.interpolation``; the saved model is validated again, with the
    frozen encoder's cached outputs where there are), score the test manifests with the best
    model, export, plot; returns the report (the loop writes report.json)."""
    from transformers import (  # optional extra: asr
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    rows = [dict(h, train_loss=(np.nan if h["train_loss"] is None else h["train_loss"]))
            for h in history]
    plot_learning_curves(rows, out / "learning_curves.png", monitor="wer")
    best = next((h for h in history if h["epoch"] == best_epoch), history[-1] if history else {})
    start = next((h for h in history if h["epoch"] == 0), None)
    report = {"recipe": cfg.recipe, "best_epoch": best_epoch, "trainable_parameters": n_trainable,
              "valid": best.get("valid"), "valid_start": start["valid"] if start else None,
              "test": {}}
    alpha, chosen_valid = cfg.export.interpolation, None
    if cfg.select.manifest is not None:          # the weight is chosen on real speech
        sel = select_interpolation(cfg, out, best_dir, base_name=base_name, valid_ds=valid_ds,
                                   valid_cache=valid_cache, valid_tuned=report["valid"],
                                   valid_start=report["valid_start"], device=device,
                                   amp_dtype=amp_dtype, progress=progress)
        alpha = sel["alpha"]
        chosen_valid = next(r["valid"] for r in sel["rows"] if r["alpha"] == alpha)
        report["selection"] = {k: v for k, v in sel.items() if k != "rows"}
        report["selection"]["rows"] = [{k: v for k, v in r.items() if k != "valid"}
                                       for r in sel["rows"]]
    if alpha < 1.0:
        interpolate_best(base_name, best_dir, alpha)
    else:
        restore_tuned_best(best_dir)     # a finished run finished again without interpolation
    if (alpha < 1.0 and chosen_valid is None) or cfg.data.test_manifests:
        processor = WhisperProcessor.from_pretrained(best_dir)
        model = WhisperForConditionalGeneration.from_pretrained(best_dir).to(device).eval()
    if alpha < 1.0:
        report["interpolation"] = alpha
        report["valid_tuned"] = report["valid"]
        if chosen_valid is not None:
            report["valid"] = chosen_valid
        else:
            report["valid"], _ = evaluate_wer(model, valid_ds, cfg=cfg,
                                              n_mels=int(model.config.num_mel_bins),
                                              device=device, amp_dtype=amp_dtype,
                                              tokenizer=processor.tokenizer,
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
            m, pred = evaluate_wer(model, ds, cfg=cfg, n_mels=int(model.config.num_mel_bins),
                                   device=device, amp_dtype=amp_dtype,
                                   tokenizer=processor.tokenizer, cache=None,
                                   progress=progress, desc=f"test {name}")
            report["test"][name] = m
            write_jsonl(out / f"test_predictions_{name}.jsonl", pred)
    q = cfg.export.ct2_quantization
    if q is not None:
        export_ct2(best_dir, out / "ct2", quantization=q)
        report["ct2_dir"] = str(out / "ct2")
        report["ct2_quantization"] = q
    return report
