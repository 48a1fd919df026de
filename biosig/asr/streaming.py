"""Streaming dictation: a rolling-buffer Whisper decoder with local-agreement commits.

How it works (:class:`DictationEngine`)
---------------------------------------
Audio is pushed in chunks (:meth:`~DictationEngine.push`). Each :meth:`~DictationEngine.step`
decodes the whole rolling buffer once, however much audio arrived since the previous decode:
when decoding falls behind, pending audio is merged into one decode instead of queued (a
machine that decodes faster than real time on average catches up). A step takes in at most
what keeps the buffer within ``max_buffer_s`` (Whisper hears 30 s at most: audio past its
window would be lost); the rest waits in the engine's inbox for the next step
(:attr:`~DictationEngine.inbox_s`), so a client that sends faster than real time, or a
machine that falls far behind, costs time, never audio.
A word is committed (becomes ``final``) when

- **local agreement** (Machacek et al. 2023, "Turning Whisper into Real-Time Transcription
  System"): the last ``agreement`` hypotheses (default 2) agree on it, as a common prefix of
  the not-yet-committed words, or
- **endpoint**: Silero VAD sees at least ``endpoint_silence_s`` of silence after the last speech
  in the buffer; the speaker paused, so the whole hypothesis is committed at once instead of
  waiting for a second decode, or
- **stable margin** (off by default): words that end at least ``stable_margin_s`` before the
  end of the buffer are committed at once (with that much audio after a word, Whisper rarely
  changes it; this bounds latency when decodes are slower than the chunks arrive), or
- **bound**: the buffer is longer than ``max_buffer_s`` with nothing committed (Whisper keeps
  changing its mind); words that end 2 s before the buffer end are committed, or
- the stream ends (:meth:`~DictationEngine.finish`).

The buffer is trimmed at the end of the last segment whose words are all committed once it is
longer than ``trim_buffer_s`` (at the last committed word once longer than ``max_buffer_s``;
right after the speech at an endpoint). Committed text before the buffer is the decoder's
prompt (after an optional vocabulary prompt). When the uncommitted part of the buffer holds no
speech, no decode is run and the silence is dropped.

Events are :class:`~biosig.asr.types.StreamEvent`: ``partial`` (the current uncommitted
hypothesis) and ``final`` (newly committed words). Spoken commands are applied to the committed
words by :attr:`DictationEngine.document` (:mod:`biosig.asr.commands`).

Simulated real time
-------------------
:func:`simulate_stream` feeds a recording as if it arrived live in ``chunk_s`` pieces and runs
the engine on a clock that counts both audio time and compute time: a chunk is available at the
moment its last sample would have been recorded; a decode starts when the previous one has
finished (or, if the engine is idle, when the next chunk arrives) and takes everything that has
arrived by then; it finishes after its measured wall-clock duration. Every event gets that
finishing time as ``emitted_at``. So a decode that takes 0.8 s delays everything after it by
0.8 s, exactly as on a live microphone on the same machine.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
from pydantic import Field, model_validator

from biosig.asr.audio import ASR_FS
from biosig.asr.commands import CommandTable, apply_commands
from biosig.asr.degenerate import looks_degenerate
from biosig.asr.metrics import normalize_text
from biosig.asr.models import AsrModel, DecodeOptions
from biosig.asr.types import StreamEvent, Word
from biosig.asr.vad import VAD_FRAME, speech_probabilities
from biosig.asr.vocab import Vocabulary, correct_terms, vocab_guard, vocab_prompt
from biosig.config import ConfigModel, Int
from biosig.errors import ConfigError
from biosig.validate import check_channel, check_type
from biosig.whisper_audio import WHISPER_N_SAMPLES

__all__ = ["StreamingConfig", "DictationEngine", "StreamRun", "simulate_stream",
           "looks_degenerate"]

log = logging.getLogger(__name__)

#: the rules that commit words (:attr:`DictationEngine.committed_by`)
COMMIT_RULES = ("agreement", "stable", "forced", "endpoint", "final")


class StreamingConfig(ConfigModel):
    """Settings of :class:`DictationEngine` (all times in seconds).

    A frozen pydantic model: unknown keys, wrong types and values out of range are
    :class:`~biosig.errors.ConfigError` naming the key (``StreamingConfig(vad_threshold=1.5)``,
    ``StreamingConfig.validate_mapping(yaml_dict, source=path)``).

    Attributes
    ----------
    language : str or None
    beam_size : int >= 1
        Beam of each re-decode (1: greedy, the fastest).
    min_chunk_s : float >= 0
        :meth:`DictationEngine.step` decodes only when at least this much new audio is pending.
    agreement : int >= 1
        How many consecutive hypotheses must agree before words are committed.
    vad : bool
        Use Silero VAD to skip silence and to detect endpoints.
    vad_threshold : float in [0, 1]
        Speech probability above which a 32 ms frame is speech.
    loud_dbfs : float <= 0
        A frame louder than this (RMS, dB full scale) also counts as speech: Silero VAD misses
        some voices (synthetic, distant), so audio is skipped or taken as a pause only when it
        is both unvoiced for the VAD and quiet.
    endpoint_silence_s : float > 0
        Silence after speech that commits the whole hypothesis.
    trim_buffer_s, max_buffer_s : float
        Buffer lengths that trigger trimming (see the module docstring);
        ``0 < trim_buffer_s <= max_buffer_s <= 30``.
    prompt_chars : int >= 0
        Characters of committed text fed back as the prompt.
    initial_prompt : str or None
        Prompt placed before the committed text (fixed context; a medical vocabulary goes
        through ``DictationEngine(vocab=...)`` instead).
    hotwords : str or None
        faster-whisper's ``hotwords``, passed through as they are. Not for vocabularies:
        together with a prompt they made Whisper repeat itself (:mod:`biosig.asr.vocab`).
    overlap_tolerance_s : float >= 0
        Hypothesis words starting this much before the last committed word's end are taken as
        already committed.
    audio_ctx_pad_s : float >= 0 or None
        Encode only the buffer plus this much padding instead of Whisper's 30 s window
        (faster-whisper backend; see :class:`~biosig.asr.models.DecodeOptions`): an 8 s
        buffer encodes about 9x faster (0.06 s against 0.56 s on 2 CPU cores, Whisper base
        int8). Whisper was trained on 30 s windows only, and on a shortened one it sometimes
        loops or stops early; such a hypothesis (:func:`looks_degenerate`) is decoded again
        on the full window (about one decode in eight on the dictation benchmark).
        ``None``: always the full window.
    max_tokens_per_s : float > 0
        Cap on the tokens of one decode (this rate times the buffer length, plus 10): a
        degenerate repetition cannot stall the stream (fast speech is about 4 tokens/s).
    stable_margin_s : float >= 0 or None
        Also commit, on first sighting, the leading words that end at least this long before
        the end of the buffer: with that much audio after them their transcription no longer
        depends on what comes next. This matters when decoding is slower than the chunks
        (merged audio puts new words deep in the buffer); ``None`` (default) is pure local
        agreement. With the shortened encoder window decodes keep up with 1 s chunks, and on
        the dictation benchmark a 1.5 s margin cost 4 points of WER for 0.1 s of latency.
    stable_min_probability : float in [0, 1]
        Words committed by the stable margin must also have at least this decoder probability
        (Whisper's word probability); a less certain word waits for agreement.
    """

    language: str | None = "en"
    beam_size: Int = Field(default=1, ge=1)
    min_chunk_s: float = Field(default=0.5, ge=0)
    agreement: Int = Field(default=2, ge=1)
    vad: bool = True
    vad_threshold: float = Field(default=0.5, ge=0, le=1)
    loud_dbfs: float = Field(default=-40.0, le=0)
    endpoint_silence_s: float = Field(default=0.6, gt=0)
    trim_buffer_s: float = Field(default=8.0, gt=0, le=30)
    max_buffer_s: float = Field(default=20.0, gt=0, le=30)
    prompt_chars: Int = Field(default=200, ge=0)
    initial_prompt: str | None = None
    hotwords: str | None = None
    overlap_tolerance_s: float = Field(default=0.1, ge=0)
    audio_ctx_pad_s: float | None = Field(default=2.0, ge=0)
    max_tokens_per_s: float = Field(default=8.0, gt=0)
    stable_margin_s: float | None = Field(default=None, ge=0)
    stable_min_probability: float = Field(default=0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _buffers(self):
        if self.trim_buffer_s > self.max_buffer_s:
            raise ValueError(f"trim_buffer_s is {self.trim_buffer_s:g}, expected at most "
                             f"max_buffer_s ({self.max_buffer_s:g})")
        return self


def _key(w: Word) -> str:
    return normalize_text(w.text)


def _join(words) -> str:
    return "".join(w.text for w in words).strip()


class DictationEngine:
    """Streaming dictation state: rolling audio buffer, hypotheses, committed words.

    Parameters
    ----------
    model : AsrModel
        From :func:`biosig.asr.load_model`.
    config : StreamingConfig, optional
        Default ``StreamingConfig()``.
    commands : CommandTable, optional
        Spoken commands applied by :attr:`document` (default table when omitted).
    clock : callable, optional
        Returns the current time in seconds for ``emitted_at`` (default: seconds since the
        engine was created, monotonic).
    vocab : Vocabulary, optional
        Medical terms (:mod:`biosig.asr.vocab`): each decode's prompt starts with the terms
        that sound like the previous hypothesis or the last committed words (at most
        :data:`~biosig.asr.vocab.MAX_PROMPT_TERMS`), and a decode that the vocabulary guard
        rejects (:func:`biosig.asr.vocab.vocab_guard`: degenerate, or copying the term list)
        is run again without them, as in offline transcription.
    vocab_correct : bool
        Replace low-confidence spans that sound like a term by the term as words are committed
        (:func:`biosig.asr.vocab.correct_terms`); needs ``vocab``.

    Examples
    --------
    >>> eng = DictationEngine(model)                              # doctest: +SKIP
    >>> for chunk in chunks:                                      # doctest: +SKIP
    ...     eng.push(chunk)
    ...     for ev in eng.step():
    ...         print(ev.to_dict())
    >>> eng.finish(); print(eng.document)                         # doctest: +SKIP
    """

    def __init__(self, model: AsrModel, config: StreamingConfig | None = None, *,
                 commands: CommandTable | None = None, clock=None,
                 vocab: Vocabulary | None = None, vocab_correct: bool = False):
        if vocab_correct and vocab is None:
            raise ConfigError("vocab_correct: needs a vocabulary (vocab=...)")
        self.model = model
        self.vocab = vocab
        self.vocab_correct = vocab_correct
        self.config = config = StreamingConfig() if config is None else config
        self.commands = commands or CommandTable.default()
        t0 = time.monotonic()
        self._clock = clock or (lambda: time.monotonic() - t0)
        self._buf = np.zeros(0, dtype=np.float32)
        self._buf_start = 0          # absolute sample index of _buf[0]
        self._total = 0              # absolute sample index of the buffer's end
        self._inbox: collections.deque = collections.deque()   # pushed, not yet in _buf
        self._inbox_n = 0
        self.n_dropped_s = 0.0       # audio that had to fall off Whisper's window (see step)
        self._decoded_upto = 0       # _total at the last decode
        self._probs = np.zeros(0, dtype=np.float32)   # VAD probability per absolute frame
        self.committed: list[Word] = []
        self.commit_times: list[float] = []
        self._hyps: collections.deque = collections.deque(maxlen=max(config.agreement - 1, 1))
        self.n_decodes = 0
        self.n_full_window_retries = 0
        self.n_vocab_rejected = 0
        self.n_degenerate_dropped = 0
        self.n_terms_restored = 0
        # committed words by the rule that committed them: ``agreement`` (the last decodes
        # agree), ``stable`` (old and probable enough in one decode: stable_margin_s),
        # ``forced`` (the buffer passed max_buffer_s), ``endpoint`` (a pause) and ``final``
        self.committed_by = dict.fromkeys(COMMIT_RULES, 0)
        self.decode_time_s = 0.0
        self.finished = False

    # -- audio in ---------------------------------------------------------------------------
    def push(self, audio: np.ndarray) -> None:
        """Append 16 kHz mono float32 samples [shape=(n,) or (1, n)] to the stream.

        Raises :class:`~biosig.errors.InputError` for several channels, NaN/inf or complex
        samples (:func:`biosig.validate.check_channel`); an empty chunk is accepted.
        """
        if self.finished:
            raise RuntimeError("push() after finish()")
        x = np.asarray(check_channel(audio, name="audio", what="mono audio", min_samples=0),
                       dtype=np.float32)
        if x.size:
            self._inbox.append(x)
            self._inbox_n += x.size

    @property
    def audio_s(self) -> float:
        """Seconds of audio pushed so far."""
        return (self._total + self._inbox_n) / ASR_FS

    @property
    def inbox_s(self) -> float:
        """Seconds of audio pushed but not yet taken into the buffer (a step takes in at most
        what keeps the buffer within ``max_buffer_s``): while it is above zero, the caller
        should call :meth:`step` again."""
        return self._inbox_n / ASR_FS

    def _intake(self) -> None:
        """Move inbox audio into the buffer, up to ``max_buffer_s`` (at least ``min_chunk_s``,
        so a step always moves on), never past Whisper's 30 s window."""
        cfg = self.config
        window = WHISPER_N_SAMPLES - ASR_FS // 2
        room = max(min(int(cfg.max_buffer_s * ASR_FS), window) - self._buf.size,
                   int(max(cfg.min_chunk_s, 0.1) * ASR_FS))
        over = self._buf.size + min(room, self._inbox_n) - window
        if over > 0:
            # The buffer's head never became words (Whisper heard noise, or nothing it could
            # commit) for max_buffer_s: it falls off the window rather than the new audio.
            log.warning("stream buffer at Whisper's 30 s window with nothing committed: "
                        "%.1f s of its head dropped", over / ASR_FS)
            self.n_dropped_s += over / ASR_FS
            self._trim_to(self._buf_start + over)
        take = []
        while self._inbox and room > 0:
            x = self._inbox.popleft()
            if x.size > room:
                self._inbox.appendleft(x[room:])
                x = x[:room]
            take.append(x)
            room -= x.size
            self._inbox_n -= x.size
        if take:
            self._buf = np.concatenate([self._buf, *take])
            self._total += sum(x.size for x in take)

    @property
    def buffer_s(self) -> float:
        return self._buf.size / ASR_FS

    @property
    def text(self) -> str:
        """Committed words as recognised (commands not applied)."""
        return _join(self.committed)

    @property
    def document(self) -> str:
        """Committed words with the spoken commands applied."""
        # Whisper's words carry their own spacing (" 62", "-year"): join them as they are
        return apply_commands(_join(self.committed).split(), self.commands)

    # -- VAD -----------------------------------------------------------------------------------
    def _update_vad(self) -> None:
        done = self._probs.size * VAD_FRAME
        end = (self._total // VAD_FRAME) * VAD_FRAME
        if end <= done:
            return
        ctx = max(done - 16 * VAD_FRAME, -(-self._buf_start // VAD_FRAME) * VAD_FRAME)
        if ctx > done:  # frames already trimmed away: count them as silence
            self._probs = np.concatenate(
                [self._probs, np.zeros((ctx - done) // VAD_FRAME, np.float32)])
            done = ctx
        seg = self._buf[ctx - self._buf_start: end - self._buf_start]
        p = speech_probabilities(seg)
        frames = seg.reshape(-1, VAD_FRAME).astype(np.float64)
        rms_db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-20)
        p = np.where(rms_db >= self.config.loud_dbfs, np.maximum(p, 1.0), p)
        self._probs = np.concatenate([self._probs, p[(done - ctx) // VAD_FRAME:]])

    def _speech_frames(self, start_s: float, end_s: float) -> np.ndarray:
        a = max(int(start_s * ASR_FS) // VAD_FRAME, 0)
        b = min(int(math.ceil(end_s * ASR_FS / VAD_FRAME)), self._probs.size)
        idx = np.nonzero(self._probs[a:b] >= self.config.vad_threshold)[0]
        return idx + a

    # -- decoding ------------------------------------------------------------------------------
    def _prompt(self) -> str | None:
        start_s = self._buf_start / ASR_FS
        before = [w for w in self.committed if w.end_s <= start_s + 0.05]
        tail = _join(before)[-self.config.prompt_chars:]
        if tail and " " in tail and len(tail) == self.config.prompt_chars:
            tail = tail.split(" ", 1)[1]
        parts = [p for p in (self.config.initial_prompt, tail) if p]
        return " ".join(parts) or None

    def _vocab_terms(self) -> list[str]:
        if self.vocab is None:
            return []
        heard = " ".join(w.text for w in self.committed[-10:])
        if self._hyps and self._hyps[-1]:
            heard += " " + _join(self._hyps[-1])
        return [t for t, _ in self.vocab.candidates(heard)]

    def _decode(self, speech_end_s: float | None = None):
        """Segments of the buffer on the stream's clock. ``speech_end_s`` (stream time): where
        the VAD saw the speech end, for the early-stop check of a shortened encoder window."""
        context = self._prompt()
        terms = self._vocab_terms()
        prompt = " ".join(p for p in (vocab_prompt(terms), context) if p) or None
        opts = DecodeOptions(language=self.config.language, beam_size=self.config.beam_size,
                             initial_prompt=prompt, hotwords=self.config.hotwords,
                             word_timestamps=True, vad=False, temperature_fallback=False,
                             condition_on_previous_text=False,
                             audio_ctx_pad_s=self.config.audio_ctx_pad_s,
                             max_new_tokens=min(int(self.config.max_tokens_per_s
                                                    * self.buffer_s) + 10, 220))
        off = self._buf_start / ASR_FS
        short = opts.audio_ctx_pad_s is not None and getattr(self.model, "short_window", False)

        def run(o):
            r = self.model.decode(self._buf, o)
            self.decode_time_s += r.decode_time_s
            if not (short or terms):
                return r, None
            why = vocab_guard([w for s in r.segments for w in s.words],
                              terms if o.initial_prompt == prompt else (),
                              audio_s=self.buffer_s,
                              speech_end_s=None if speech_end_s is None or not short
                              else speech_end_s - off)
            return r, why

        res, why = run(opts)
        self.n_decodes += 1
        if why is not None and terms:   # the vocabulary guard: again without the terms
            log.debug("biased decode %s: without the terms", why)
            self.n_vocab_rejected += 1
            opts = opts.replace(initial_prompt=context)
            res, why = run(opts)
        if why is not None and short:   # decode again on Whisper's full 30 s window
            log.debug("short-window decode %s: full window", why)
            self.n_full_window_retries += 1
            res, _ = run(opts.replace(audio_ctx_pad_s=None))
        if looks_degenerate([w for s in res.segments for w in s.words], audio_s=self.buffer_s):
            # Still a repetition loop (or far too many words) on the full window: no
            # hypothesis this time rather than hundreds of committed words; the next decode,
            # with more audio, tries again.
            log.debug("decode still degenerate on the full window: no hypothesis")
            self.n_degenerate_dropped += 1
            return []
        return [s.shifted(off) for s in res.segments]

    def _new_words(self, segments) -> list[Word]:
        words = [w for s in segments for w in s.words if w.text.strip()]
        if self.committed:
            last_end = self.committed[-1].end_s
            words = [w for w in words if w.start_s > last_end - self.config.overlap_tolerance_s]
            # drop a head that repeats the committed tail (up to 5 words)
            tail = [_key(w) for w in self.committed[-5:]]
            head = [_key(w) for w in words[:5]]
            for i in range(min(len(tail), len(head)), 0, -1):
                if tail[-i:] == head[:i]:
                    words = words[i:]
                    break
        return words

    def _agreed(self, hyp: list[Word]) -> int:
        if self.config.agreement == 1:
            return len(hyp)
        if len(self._hyps) < self.config.agreement - 1:
            return 0
        n = len(hyp)
        for prev in self._hyps:
            k = 0
            while k < min(n, len(prev)) and _key(prev[k]) == _key(hyp[k]):
                k += 1
            n = k
        return n

    def step(self, now: float | None = None, *, final: bool = False) -> list[StreamEvent]:
        """Decode the buffer once (if enough new audio is pending) and commit what is stable.

        Parameters
        ----------
        now : float, optional
            ``emitted_at`` for the events (default: the engine's clock after decoding).
        final : bool
            The stream has ended: commit the whole hypothesis.

        Returns
        -------
        list of StreamEvent
            A ``final`` event for newly committed words (if any), then a ``partial`` event with
            the uncommitted hypothesis (if it changed).
        """
        cfg = self.config
        self._intake()
        final = final and not self._inbox_n      # the end is reached when the inbox is empty
        pending = self._total - self._decoded_upto
        if not final and pending < cfg.min_chunk_s * ASR_FS:
            return []
        prev_decoded_s = self._decoded_upto / ASR_FS
        self._decoded_upto = self._total
        buf_start_s = self._buf_start / ASR_FS
        end_s = self._total / ASR_FS
        last_commit_s = self.committed[-1].end_s if self.committed else 0.0
        region_s = max(buf_start_s, last_commit_s)
        if cfg.vad:
            self._update_vad()
            speech = self._speech_frames(region_s, end_s)
            if speech.size == 0:  # nothing but silence to decode: skip it
                self._trim_to(max(self._total - int(0.3 * ASR_FS), self._buf_start))
                had = any(len(h) for h in self._hyps)
                self._hyps.clear()
                return [self._event("partial", [], now)] if had else []
            last_speech_end_s = (speech[-1] + 1) * VAD_FRAME / ASR_FS
        else:
            last_speech_end_s = end_s
        if self._buf.size < ASR_FS // 10:
            return []
        if (final and cfg.vad and self._hyps and self._hyps[-1]
                and last_speech_end_s <= prev_decoded_s):
            # End of stream and nothing but silence since the last decode: its hypothesis
            # already heard all the speech, commit it without decoding again.
            return self._commit_all(list(self._hyps[-1]), now)
        segments = self._decode(last_speech_end_s if cfg.vad else None)
        hyp = self._new_words(segments)
        endpoint = cfg.vad and end_s - last_speech_end_s >= cfg.endpoint_silence_s
        if final or endpoint:
            n_commit = len(hyp)
            self.committed_by["final" if final else "endpoint"] += n_commit
        else:
            n_commit = agreed = self._agreed(hyp)
            if cfg.stable_margin_s is not None:
                deep = 0
                while (deep < len(hyp) and hyp[deep].end_s <= end_s - cfg.stable_margin_s
                       and hyp[deep].probability >= cfg.stable_min_probability):
                    deep += 1
                n_commit = max(n_commit, deep)
            if n_commit == 0 and self.buffer_s > cfg.max_buffer_s:
                n_commit = sum(1 for w in hyp if w.end_s < end_s - 2.0)
                self.committed_by["forced"] += n_commit
            else:
                self.committed_by["agreement"] += agreed
                self.committed_by["stable"] += n_commit - agreed
        new = hyp[:n_commit]
        rest = hyp[n_commit:]
        if self.vocab_correct and new:
            new, fixed = correct_terms(new, self.vocab)
            self.n_terms_restored += len(fixed)
        events = []
        t = self._clock() if now is None else now
        if new:
            self.committed.extend(new)
            self.commit_times.extend([t] * len(new))
            events.append(self._event("final", new, t))
        prev_rest = self._hyps[-1] if self._hyps else []
        self._hyps.append(rest)
        if [w.text for w in rest] != [w.text for w in prev_rest]:
            events.append(self._event("partial", rest, t))
        # trimming
        if endpoint or final:
            cut = max(last_speech_end_s, self.committed[-1].end_s if self.committed else 0.0)
            self._trim_to(min(int(cut * ASR_FS), self._total))
            self._hyps.clear()
        elif self.buffer_s > cfg.trim_buffer_s and self.committed:
            last_commit_s = self.committed[-1].end_s
            cut_s = None
            for s in segments:
                if s.words and s.words[-1].end_s <= last_commit_s + 1e-6:
                    cut_s = s.words[-1].end_s
            if cut_s is None and self.buffer_s > cfg.max_buffer_s:
                cut_s = last_commit_s
            if cut_s is not None and cut_s > self._buf_start / ASR_FS:
                self._trim_to(int(cut_s * ASR_FS))
        return events

    def _commit_all(self, words, now) -> list[StreamEvent]:
        t = self._clock() if now is None else now
        self.committed_by["final"] += len(words)
        if self.vocab_correct and words:
            words, fixed = correct_terms(words, self.vocab)
            self.n_terms_restored += len(fixed)
        self.committed.extend(words)
        self.commit_times.extend([t] * len(words))
        self._hyps.clear()
        self._trim_to(self._total)
        return [self._event("final", words, t)] if words else []

    def finish(self, now: float | None = None) -> list[StreamEvent]:
        """End of stream: decode what is left (in as many steps as the inbox needs) and commit
        everything."""
        events = []
        while self._inbox_n:
            events += self.step(now)
        if self._total > 0:
            events += self.step(now, final=True)
        self.finished = True
        return events

    def _trim_to(self, sample: int) -> None:
        sample = min(max(sample, self._buf_start), self._total)
        self._buf = self._buf[sample - self._buf_start:].copy()
        self._buf_start = sample

    def _event(self, kind: str, words, now) -> StreamEvent:
        t = self._clock() if now is None else now
        if words:
            return StreamEvent(kind, _join(words), words[0].start_s, words[-1].end_s, t,
                               tuple(words))
        end = self._total / ASR_FS
        return StreamEvent(kind, "", end, end, t, ())


@dataclass
class StreamRun:
    """Result of :func:`simulate_stream`.

    Attributes
    ----------
    events : list of StreamEvent
        With ``emitted_at`` on the simulated clock.
    words : list of Word
        Committed words.
    commit_times_s : list of float
        Simulated time at which each word was committed.
    audio_s : float
        Duration of the audio.
    compute_s : float
        Total wall-clock time spent in the engine.
    end_clock_s : float
        Simulated time when the last event was emitted.
    text, document : str
        Committed text, raw and with the commands applied.
    """

    events: list[StreamEvent]
    words: list[Word]
    commit_times_s: list[float]
    audio_s: float
    compute_s: float
    end_clock_s: float
    text: str
    document: str
    n_decodes: int = 0
    decode_times_s: list[float] = field(default_factory=list)
    n_full_window_retries: int = 0


def simulate_stream(engine: DictationEngine, audio: np.ndarray, *, chunk_s: float = 1.0,
                    on_event=None, timer=None) -> StreamRun:
    """Run ``engine`` over ``audio`` as if it arrived live, on a simulated clock.

    The clock is audio time plus compute time (see the module docstring): chunk ``k`` arrives
    at ``min((k + 1) * chunk_s, duration)``; a step starts at ``max(clock, next arrival)``,
    takes all audio arrived by then, and moves the clock on by its measured wall time.

    Parameters
    ----------
    engine : DictationEngine
        A fresh engine.
    audio : np.ndarray [shape=(n,)]
        16 kHz mono float32.
    chunk_s : float > 0
    on_event : callable, optional
        Called with each event as it is emitted.
    timer : callable, optional
        Clock that measures compute (default :func:`time.perf_counter`, wall time). Passing
        e.g. ``lambda: time.process_time() / n_threads`` estimates an unshared machine from
        CPU time; label such results as estimates.

    Returns
    -------
    StreamRun
    """
    check_type(engine, "engine", DictationEngine)
    if chunk_s <= 0:
        raise ConfigError(f"chunk_s: expected > 0, got {chunk_s}")
    timer = timer or time.perf_counter
    x = np.asarray(check_channel(audio, name="audio", what="mono audio", min_samples=0),
                   dtype=np.float32)
    n = x.size
    chunk = max(int(round(chunk_s * ASR_FS)), 1)
    clock, pos, compute = 0.0, 0, 0.0
    events: list[StreamEvent] = []
    decode_times = []

    def run(fn):
        nonlocal clock, compute
        t0 = timer()
        evs = fn()
        dt = timer() - t0
        compute += dt
        clock += dt
        if evs:
            decode_times.append(dt)
        out = [replace(e, emitted_at=clock) for e in evs]
        for e in out:
            if on_event is not None:
                on_event(e)
        events.extend(out)
        return out

    while pos < n:
        arrived = min((int(clock * ASR_FS + 1e-6) // chunk) * chunk, n)
        if arrived <= pos:  # idle: wait for the next chunk
            nxt = min((pos // chunk + 1) * chunk, n)
            clock = max(clock, nxt / ASR_FS)
            if nxt >= n:
                arrived = n
            else:
                continue
        engine.push(x[pos:arrived])
        pos = arrived
        run(lambda: engine.step(now=0.0))
    clock = max(clock, n / ASR_FS)
    run(lambda: engine.finish(now=0.0))
    # commit times: the emitted_at of the final event that committed each word
    commit_times = [e.emitted_at for e in events if e.type == "final" for _ in e.words]
    return StreamRun(events, list(engine.committed), commit_times, n / ASR_FS, compute, clock,
                     engine.text, engine.document, engine.n_decodes, decode_times,
                     engine.n_full_window_retries)
