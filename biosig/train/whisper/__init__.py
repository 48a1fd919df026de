"""The Whisper fine-tuning task (``task: whisper_asr``), split by concern:

- :mod:`~biosig.train.whisper.data` -- utterances from manifests, the group-wise split, Whisper's
  decoder targets, dataset, padding and length-bucketed batches;
- :mod:`~biosig.train.whisper.model` -- the starting model, LoRA, encoder states and their
  cache, loss, distillation, decoding and WER evaluation;
- :mod:`~biosig.train.whisper.task` -- :class:`WhisperTask`, the hooks the one training loop
  (:func:`biosig.train.loop.fit`) runs, and :func:`train_whisper`;
- :mod:`~biosig.train.whisper.export` -- the best model in transformers format, WiSE-FT
  interpolation, CTranslate2 export.
"""

import lazy_loader as _lazy

from biosig.train.whisper.data import (
    BucketBatchSampler,
    SpeechTextDataset,
    TargetBuilder,
    Utterance,
    collate_speech,
    load_utterances,
    split_utterances,
    target_ids,
)
from biosig.train.whisper.export import interpolate_state
from biosig.train.whisper.model import (
    EncoderCache,
    StartingModel,
    apply_lora,
    decode_batch,
    distill_kl,
    encoder_mid,
    encoder_top,
    lora_target_regex,
    resolve_base_model,
    token_loss,
)
from biosig.train.whisper.task import WhisperRunResult, WhisperTask, train_whisper

__all__ = ["Utterance", "load_utterances", "split_utterances", "target_ids", "TargetBuilder",
           "SpeechTextDataset", "BucketBatchSampler", "collate_speech", "resolve_base_model",
           "train_whisper", "WhisperTask", "decode_batch", "WhisperRunResult",
           "interpolate_state", "distill_kl", "StartingModel", "apply_lora",
           "lora_target_regex", "token_loss", "EncoderCache", "encoder_mid", "encoder_top"]

# Enrollment (a speaker's adapter) and the interpolation weight's selection, loaded on first use
# (``biosig.train.whisper.enroll.enroll_speaker``).
__getattr__, _lazy_dir, _ = _lazy.attach(__name__, submodules=["enroll", "select"])


def __dir__():
    return sorted(set(globals()) | set(_lazy_dir()))
