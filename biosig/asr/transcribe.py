"""Whole-file transcription and the txt / json / srt / vtt writers."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from biosig.asr.audio import ASR_FS, load_audio, prepare_audio
from biosig.asr.models import AsrModel, DecodeOptions
from biosig.asr.types import Transcript
from biosig.asr.vad import VAD_FRAME, speech_probabilities
from biosig.asr.vocab import MAX_PROMPT_TERMS, Vocabulary, correct_terms, decode_with_vocab
from biosig.errors import ConfigError
from biosig.fileio import write_text_atomic

__all__ = ["transcribe", "transcribe_file", "speech_regions", "speech_windows",
           "format_transcript",
           "write_transcript", "FORMATS", "DEFAULT_OPTIONS"]

log = logging.getLogger(__name__)

FORMATS = ("txt", "json", "srt", "vtt")
#: Offline defaults: English, beam 5, word timestamps, silence skipped with the VAD.
DEFAULT_OPTIONS = DecodeOptions(vad=True)
#: Characters of earlier text carried into the next stretch of speech as its prompt (Whisper's
#: prompt holds at most 223 tokens, about 900 characters).
PROMPT_CHARS = 600


def transcribe(audio: np.ndarray, *, fs: float, model: AsrModel,
               options: DecodeOptions | None = None, path=None,
               max_window_s: float = 28.0, context_chars: int = 0,
               min_silence_s: float = 8.0, vocab: Vocabulary | None = None,
               vocab_correct: bool = False) -> Transcript:
    """Transcribe an audio array of any length.

    Parameters
    ----------
    audio : np.ndarray [shape=(n_samples,) or (channels, n_samples)]
        Audio in [-1, 1]; channels are averaged and the rate converted to 16 kHz.
    fs : float > 0
        Sampling rate of ``audio`` in Hz.
    model : AsrModel
        From :func:`biosig.asr.load_model`.
    options : DecodeOptions, optional
        Default :data:`DEFAULT_OPTIONS`: English, beam 5, word timestamps, Silero VAD. With
        ``vad=True`` silences of at least ``min_silence_s`` are dropped
        (:func:`speech_regions`) and each stretch of speech between them is decoded by the
        backend's own long-form algorithm where it has one (faster-whisper: sequential 30 s
        windows placed by the timestamps and conditioned on the previous text, exactly as
        calling it directly), else cut at pauses into windows of at most ``max_window_s``
        (:func:`speech_windows`) decoded one by one. With ``vad=False`` the whole audio goes
        to the backend as it is. Pauses shorter than ``min_silence_s`` stay in: Whisper's own
        windows handle them better than cuts do (on the dictation benchmark's 241 s long-form
        recording with 0.4-1.2 s pauses, faster-whisper's windows over the whole recording
        gave 16.4 % WER; cutting it at 2 s silences 18.1-21.1 %; into VAD windows of at most
        28 s, 20.0 %).
    path : str, optional
        Recorded in the transcript.
    max_window_s : float <= 30
        Longest decode window (see :func:`speech_windows`).
    context_chars : int
        With :func:`speech_windows`, feed this much of the previous window's text as the
        next window's prompt. Off by default (on the benchmark's long-form recording it
        raised WER, errors carried across windows).
    min_silence_s : float > 0
        Shortest silence that is dropped (see :func:`speech_regions`); long silences are
        where Whisper hallucinates.
    vocab : Vocabulary, optional
        Medical terms to bias decoding towards: every piece of audio is decoded with
        :func:`biosig.asr.vocab.decode_with_vocab` (a plain decode, the terms it seems to hold
        as the prompt of a second decode, which is dropped if it looks degenerate).
        ``options.hotwords`` must then be empty.
    vocab_correct : bool
        Also replace low-confidence spans that sound like a term by the term
        (:func:`biosig.asr.vocab.correct_terms`); needs ``vocab``.

    Returns
    -------
    Transcript
    """
    options = DEFAULT_OPTIONS if options is None else options
    if vocab_correct and vocab is None:
        raise ConfigError("vocab_correct: needs a vocabulary (vocab=...)")
    x = prepare_audio(audio, fs=fs)
    duration_s = x.size / ASR_FS
    if x.size == 0 or float(np.max(np.abs(x))) == 0.0:
        return Transcript("", [], options.language, duration_s, 0.0, None if path is None
                          else str(path))
    t0 = time.perf_counter()
    segments, language = [], options.language
    stats = {"decodes": 0, "biased": 0, "rejected": 0, "narrowband": 0}

    def decode(piece, opts):
        stats["decodes"] += 1
        if vocab is None:
            return model.decode(piece, opts)
        max_terms = min(MAX_PROMPT_TERMS * max(1, int(np.ceil(piece.size / ASR_FS / 30))), 30)
        res, info = decode_with_vocab(model, piece, opts, vocab, max_terms=max_terms)
        stats["biased"] += info["biased"]
        stats["rejected"] += info["rejected"] is not None
        stats["narrowband"] += info["narrowband"]
        return res

    if options.vad:
        regions = speech_regions(x, min_silence_s=min_silence_s)
        if getattr(model, "long_form", False):
            opts = options.replace(vad=False)
            for a, b in regions:
                if options.condition_on_previous_text and segments:
                    # the text so far as the prompt, as the backend does between its windows
                    tail = " ".join(s.text for s in segments[-8:])[-PROMPT_CHARS:]
                    opts = opts.replace(initial_prompt=" ".join(
                        p for p in (options.initial_prompt, tail.split(" ", 1)[-1]) if p))
                res = decode(x[a:b], opts)
                segments.extend(s.shifted(a / ASR_FS) for s in res.segments)
                language = res.language
        else:
            # windows cut at pauses, each decoded on its own
            opts = options.replace(vad=False, condition_on_previous_text=False)
            prev = ""
            for ra, rb in regions:
                for a, b in speech_windows(x[ra:rb], max_window_s=max_window_s):
                    a, b = a + ra, b + ra
                    if context_chars > 0 and prev:
                        # the previous window's text as context, after any vocabulary prompt
                        tail = prev[-context_chars:].split(" ", 1)[-1]
                        opts = opts.replace(initial_prompt=" ".join(
                            p for p in (options.initial_prompt, tail) if p))
                    res = decode(x[a:b], opts)
                    segments.extend(s.shifted(a / ASR_FS) for s in res.segments)
                    prev = " ".join(s.text for s in res.segments) or prev
                    language = res.language
    else:
        res = decode(x, options)
        segments, language = res.segments, res.language
    n_fixed = 0
    if vocab_correct:
        fixed = []
        for s in segments:
            words, corr = correct_terms(s.words, vocab)
            n_fixed += len(corr)
            fixed.append(replace(s, text="".join(w.text for w in words).strip(),
                                 words=tuple(words)) if corr else s)
        segments = fixed
    decode_s = time.perf_counter() - t0
    text = " ".join(s.text for s in segments).strip()
    log.info("transcribed %s: %.1f s of audio in %.1f s, %d segments",
             path or "audio", duration_s, decode_s, len(segments))
    if vocab is not None:   # counts only: no text in the log
        log.info("vocabulary: %d of %d decodes biased (%d on narrow-band audio), %d biased "
                 "decodes rejected by the guard, %d terms restored", stats["biased"],
                 stats["decodes"], stats["narrowband"], stats["rejected"], n_fixed)
    return Transcript(text, segments, language, duration_s, decode_s,
                      None if path is None else str(path))


def speech_regions(audio: np.ndarray, *, min_silence_s: float = 8.0, pad_s: float = 0.3,
                   ) -> list[tuple[int, int]]:
    """Stretches of 16 kHz audio that hold speech, split where it is silent for at least
    ``min_silence_s``.

    A 32 ms frame counts as speech when Silero VAD gives it at least 0.2 or it is louder than
    -50 dBFS (VAD models miss some synthetic or distant voices, so a loud frame is kept);
    each stretch is widened by ``pad_s`` on both sides.

    Returns
    -------
    list of (start, end) sample indices, in order, not overlapping; ``[]`` for silence.
    """
    n = audio.size
    if n == 0:
        return []
    if min_silence_s <= 0:
        raise ConfigError(f"min_silence_s: expected > 0, got {min_silence_s}")
    xp = np.pad(audio, (0, (-n) % VAD_FRAME))
    probs = speech_probabilities(xp)
    frames = xp.reshape(-1, VAD_FRAME).astype(np.float64)
    loud = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-20) >= -50.0
    idx = np.nonzero((probs >= 0.2) | loud)[0]
    if idx.size == 0:
        return []
    gap = int(np.ceil(min_silence_s * ASR_FS / VAD_FRAME))
    pad = int(round(pad_s * ASR_FS))
    cuts = np.nonzero(np.diff(idx) > gap)[0]
    starts = np.concatenate([[idx[0]], idx[cuts + 1]])
    ends = np.concatenate([idx[cuts], [idx[-1]]]) + 1
    out = []
    for fa, fb in zip(starts, ends):
        a = max(int(fa) * VAD_FRAME - pad, 0)
        b = min(int(fb) * VAD_FRAME + pad, n)
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def speech_windows(audio: np.ndarray, *, max_window_s: float = 28.0,
                   min_window_s: float = 8.0) -> list[tuple[int, int]]:
    """Cut 16 kHz audio into decode windows at pauses found by Silero VAD.

    The audio is partitioned from the start: each window ends at a pause between
    ``min_window_s`` and ``max_window_s`` after its start, namely in the middle of the last
    stretch where the speech probability (Silero VAD, smoothed over 0.5 s) is at its minimum.
    Nothing is dropped except windows that are silent by both measures (no VAD frame above
    0.2 and RMS below -50 dBFS): VAD models can miss synthetic or distant speech, so they only
    choose where to cut.

    Returns
    -------
    list of (start, end) sample indices, in order, each at most ``max_window_s`` long.
    """
    n = audio.size
    if n == 0:
        return []
    probs = speech_probabilities(np.pad(audio, (0, (-n) % VAD_FRAME)))
    k = max(int(0.5 * ASR_FS / VAD_FRAME), 1)
    smooth = np.convolve(probs, np.ones(k) / k, mode="same") if probs.size > k else probs
    n_frames = probs.size
    max_f = int(max_window_s * ASR_FS / VAD_FRAME)
    min_f = min(int(min_window_s * ASR_FS / VAD_FRAME), max_f - 1)
    bounds, pos = [], 0
    while pos < n_frames:
        if n_frames - pos <= max_f:
            end = n_frames
        else:
            seg = smooth[pos + min_f: pos + max_f]
            low = seg <= seg.min() + 0.02
            last = len(low) - 1 - int(np.argmax(low[::-1]))       # end of the last low run
            first = last
            while first > 0 and low[first - 1]:
                first -= 1
            end = pos + min_f + (first + last + 1) // 2
        bounds.append((pos, end))
        pos = end
    out = []
    for fa, fb in bounds:
        a, b = fa * VAD_FRAME, min(fb * VAD_FRAME, n)
        if b <= a:
            continue
        rms = float(np.sqrt(np.mean(np.square(audio[a:b], dtype=np.float64))))
        if probs[fa:fb].max(initial=0.0) < 0.2 and rms < 10 ** (-50 / 20):
            continue
        out.append((a, b))
    return out


def transcribe_file(path, *, model: AsrModel, options: DecodeOptions | None = None,
                    vocab: Vocabulary | None = None, vocab_correct: bool = False) -> Transcript:
    """Load ``path`` with :func:`biosig.load` (mono, 16 kHz) and transcribe it
    (:func:`transcribe`)."""
    return transcribe(load_audio(path), fs=ASR_FS, model=model, options=options, path=path,
                      vocab=vocab, vocab_correct=vocab_correct)


def _clock(t_s: float, sep: str) -> str:
    ms = int(round(max(t_s, 0.0) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def format_transcript(tr: Transcript, fmt: str) -> str:
    """Render a transcript as ``txt``, ``json`` (segments, word timestamps), ``srt``, ``vtt``."""
    if fmt == "txt":
        return tr.text + "\n"
    if fmt == "json":
        return json.dumps(tr.to_dict(), ensure_ascii=False, indent=1) + "\n"
    if fmt == "srt":
        blocks = [f"{i}\n{_clock(s.start_s, ',')} --> {_clock(s.end_s, ',')}\n{s.text}\n"
                  for i, s in enumerate(tr.segments, 1)]
        return "\n".join(blocks)
    if fmt == "vtt":
        blocks = [f"{_clock(s.start_s, '.')} --> {_clock(s.end_s, '.')}\n{s.text}\n"
                  for s in tr.segments]
        return "WEBVTT\n\n" + "\n".join(blocks)
    raise ConfigError(f"format: expected one of {FORMATS}, got {fmt!r}")


def write_transcript(tr: Transcript, path, fmt: str) -> Path:
    """Write atomically (temporary file in the same folder, then rename)."""
    p = write_text_atomic(path, format_transcript(tr, fmt))
    return p
