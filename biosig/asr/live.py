"""Live dictation: :func:`run_live` feeds a live audio source to a
:class:`~biosig.asr.streaming.DictationEngine` (what ``biosig dictate --mic``, ``--stdin`` and
``--file --realtime`` run), and the sources it reads: the microphone (:func:`mic_chunks`),
16-bit PCM on standard input (:func:`stdin_chunks`) and a recording at the pace of real time
(:func:`realtime_chunks`). A recording decoded on a simulated clock is
:func:`~biosig.asr.streaming.simulate_stream` instead.
"""

from __future__ import annotations

import queue
import sys
import threading
import time

import numpy as np

from biosig.asr.audio import ASR_FS, pcm16_to_float
from biosig.errors import ConfigError
from biosig.extras import require

__all__ = ["run_live", "mic_chunks", "stdin_chunks", "realtime_chunks"]


def stdin_chunks(*, chunk_s: float):
    """Raw 16 kHz mono signed 16-bit little-endian PCM from standard input, as float32 chunks
    of ``chunk_s`` seconds (the last one shorter) until end of file; an odd trailing byte is
    dropped."""
    n = max(int(chunk_s * ASR_FS), 1) * 2
    buf = sys.stdin.buffer
    rest = b""
    while True:
        data = buf.read(n)
        if not data:
            break
        data = rest + data
        k = len(data) // 2 * 2
        rest = data[k:]
        yield pcm16_to_float(data[:k])


def realtime_chunks(audio, *, chunk_s: float):
    """``audio`` (16 kHz) in chunks of ``chunk_s`` seconds, each released when its last sample
    would have been recorded: a recording played as a live source."""
    n = max(int(chunk_s * ASR_FS), 1)
    t0 = time.monotonic()
    for k in range(0, audio.size, n):
        end = min(k + n, audio.size)
        delay = t0 + end / ASR_FS - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield audio[k:end]


def mic_chunks(*, chunk_s: float):
    """The default microphone (sounddevice, extra ``mic``) at 16 kHz mono, in chunks of
    ``chunk_s`` seconds, until the generator is closed or Ctrl+C."""
    try:
        sd = require("sounddevice", extra="mic")
    except OSError as exc:  # sounddevice is installed, the PortAudio library is not
        raise ConfigError(f"--mic: sounddevice cannot load PortAudio ({exc}); install it, e.g. "
                          "apt-get install libportaudio2") from None
    q: queue.Queue = queue.Queue()

    def cb(indata, frames, t, status):
        q.put(np.asarray(indata[:, 0], dtype=np.float32).copy())

    # the stream is stopped and closed when the generator is closed (run_live does that from
    # the thread that iterates it), so that Ctrl+C never leaves PortAudio running at exit
    with sd.InputStream(samplerate=ASR_FS, channels=1, dtype="float32",
                        blocksize=int(chunk_s * ASR_FS), callback=cb):
        try:
            while True:
                yield q.get()
        except KeyboardInterrupt:
            return


def run_live(engine, chunks, emit) -> None:
    """Feed ``chunks`` (an iterator that blocks like a live source) to ``engine``.

    A reader thread queues the chunks; the decoding loop takes *everything* queued at each
    step, so when decoding is slower than real time the pending audio is merged into one decode
    instead of piling up.

    Parameters
    ----------
    engine : DictationEngine
    chunks : iterable of np.ndarray [shape=(n,), dtype=float32]
        16 kHz audio: :func:`mic_chunks`, :func:`stdin_chunks`, :func:`realtime_chunks` or any
        iterator; a generator is closed when the loop ends (Ctrl+C included).
    emit : callable
        Called with each :class:`~biosig.asr.types.StreamEvent`, the last ones from
        ``engine.finish()``.
    """
    q: queue.Queue = queue.Queue()
    done = threading.Event()
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader():
        it = iter(chunks)
        try:
            for c in it:
                q.put(c)
                if stop.is_set():
                    break
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)
        finally:
            close = getattr(it, "close", None)
            if close is not None:   # a generator source (the microphone) closes its stream
                try:
                    close()
                except BaseException as exc:
                    errors.append(exc)
            done.set()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    try:
        while True:
            try:
                got = [q.get(timeout=0.05)]
            except queue.Empty:
                if done.is_set() and q.empty():
                    break
                continue
            while True:
                try:
                    got.append(q.get_nowait())
                except queue.Empty:
                    break
            engine.push(np.concatenate(got))
            for ev in engine.step():
                emit(ev)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
    # a live source delivers its next chunk within one chunk length, then the reader stops
    # and closes it; the audio it queued meanwhile is still decoded
    done.wait(timeout=5.0)
    rest = []
    while not q.empty():
        rest.append(q.get_nowait())
    if rest:
        engine.push(np.concatenate(rest))
    if errors:
        raise errors[0]
    for ev in engine.finish():
        emit(ev)
