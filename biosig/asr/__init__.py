"""Clinical dictation: Whisper transcription of files and a streaming dictation engine.

- :func:`load_model` -- a Whisper model (local directory or hub name) behind one interface,
  run by faster-whisper (CTranslate2: int8/float16/float32) or transformers (PyTorch).
- :func:`transcribe` / :func:`transcribe_file` -- whole recordings with word timestamps, VAD
  and medical-vocabulary biasing; :func:`format_transcript` writes txt/json/srt/vtt.
- :class:`Vocabulary` (:mod:`biosig.asr.vocab`) -- medical terms: biased decoding with a guard
  against degenerate output, fuzzy restoration of misheard terms.
- :class:`DictationEngine` -- streaming: rolling buffer, local-agreement commits, VAD
  endpoints, bounded latency; :func:`simulate_stream` runs it on an honest simulated clock.
- :class:`WhisperEmbedder` (:mod:`biosig.asr.encoder`) -- Whisper's frozen encoder as a
  front-end for any audio: the mean and standard deviation of its states over a recording.
- :func:`apply_commands` / :class:`CommandTable` -- spoken commands ("period", "new
  paragraph", "scratch that").
- :mod:`biosig.asr.live` -- :func:`~biosig.asr.live.run_live` drives the engine from a live
  source (microphone, stdin, a recording at real-time pace).
- :mod:`biosig.asr.metrics` -- normaliser, WER/CER, term recall, latency statistics;
  :mod:`biosig.asr.evaluate` -- manifest evaluation; :mod:`biosig.asr.ct2` -- Whisper between
  CTranslate2 and transformers.
- :mod:`biosig.asr.serve` -- the local dictation service (``biosig serve``, extra ``serve``);
  :mod:`biosig.asr.client` -- its client (``biosig dictate --server``).

Synthesized dictation audio for tests and benchmarks is :mod:`biosig.synth.dictation`.

faster-whisper, ctranslate2, transformers and jiwer come with the ``asr`` extra (``pip install
'biosig[asr]'``) and are imported only when used, so importing this package needs only the core;
using a model or WER without the extra raises :class:`biosig.extras.MissingExtraError`.
"""

import lazy_loader as _lazy

from biosig.asr.audio import ASR_FS, load_audio, prepare_audio
from biosig.asr.commands import CommandTable, apply_commands
from biosig.asr.encoder import WhisperEmbedder, pool_states
from biosig.asr.metrics import error_rates, latency_stats, normalize_text, term_recall
from biosig.asr.models import AsrModel, DecodeOptions, load_model, packaged_model_dir
from biosig.asr.streaming import DictationEngine, StreamingConfig, StreamRun, simulate_stream
from biosig.asr.transcribe import (
    FORMATS,
    format_transcript,
    transcribe,
    transcribe_file,
    write_transcript,
)
from biosig.asr.types import Segment, StreamEvent, Transcript, Word
from biosig.asr.vocab import Vocabulary

__all__ = [
    "ASR_FS", "load_audio", "prepare_audio", "CommandTable", "apply_commands", "error_rates",
    "latency_stats", "normalize_text", "term_recall", "AsrModel", "DecodeOptions", "load_model",
    "packaged_model_dir", "DictationEngine", "StreamingConfig", "StreamRun", "simulate_stream",
    "format_transcript", "transcribe", "transcribe_file", "write_transcript", "FORMATS",
    "Segment", "StreamEvent",
    "Transcript", "Word", "Vocabulary", "WhisperEmbedder", "pool_states",
]

# The modules the names above do not import, declared once and loaded on first use
# (``biosig.asr.live.run_live``): the server and its client need the ``serve`` extra.
_SUBMODULES = ["client", "ct2", "degenerate", "evaluate", "live", "serve", "speakers", "vad"]
__getattr__, _lazy_dir, _ = _lazy.attach(__name__, submodules=_SUBMODULES)


def __dir__():
    return sorted(set(globals()) | set(_lazy_dir()))
