"""Soak: 30 minutes of audio through `biosig serve` (Whisper base, real speech every minute,
silence between, sent 30x faster than real time): every utterance is transcribed to the end,
and the server's memory stays flat once its allocators are warm (the last 10 minutes)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytest.importorskip("starlette", reason="needs the [serve] extra")
pytest.importorskip("uvicorn", reason="needs the [serve] extra")
pytest.importorskip("websockets", reason="needs the [serve] extra")

CLIPS = ["1089-134686-0000", "1089-134686-0001", "1089-134691-0000", "1089-134691-0001"]
MINUTES = 30
SPEED = 30.0          # times real time


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                    reason="reads the memory from /proc (Linux)")
def test_thirty_minutes_of_dictation_with_flat_memory(whisper_model, librispeech_clip):
    from biosig.asr import ASR_FS, error_rates, load_audio
    from biosig.asr.serve import (
        ServeConfig,
        create_app,
        free_port,
        serve_in_thread,
        stream_to_server,
    )
    clips = [librispeech_clip(c) for c in CLIPS]
    audio = [load_audio(p) for p, _ in clips]
    minute = 60 * ASR_FS
    refs = []
    x = np.zeros(MINUTES * minute, np.float32)
    for m in range(MINUTES):                 # an utterance at the start of every minute
        k = m % len(clips)
        x[m * minute: m * minute + audio[k].size] = audio[k]
        refs.append(clips[k][1])

    def paced():
        t0 = time.monotonic()
        for i in range(0, x.size, ASR_FS):
            wait = t0 + i / ASR_FS / SPEED - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            yield x[i:i + ASR_FS]

    samples = []                             # (stream time of the words, RSS in MiB)

    def emit(ev):
        if ev["type"] == "final":
            samples.append((ev["end"], _rss_mb()))

    port = free_port()
    with serve_in_thread(create_app(whisper_model, ServeConfig(port=port)), port=port) as srv:
        doc = stream_to_server(srv.ws_url, paced(), emit=emit)
    t = np.array([s[0] for s in samples]) / 60
    rss = np.array([s[1] for s in samples])
    # The first minutes grow the allocators' caches (CTranslate2, torch, numpy: new buffer
    # lengths); after that a leak would keep growing: the last third must be flat.
    early = rss[t >= 20].min()
    late = rss[t >= 20].max()
    wer = error_rates([" ".join(refs)], [doc]).wer
    print("RSS (MiB) by minute:", {int(m): round(float(r), 1) for m, r in zip(t, rss)})
    print(f"{len(samples)} commits; RSS after minute 20: {early:.1f} to {late:.1f} MiB; "
          f"WER {wer:.3f}")
    assert t.max() > MINUTES - 1, "the last minute's words were not committed"
    assert wer < 0.15
    assert late - early < 10.0, f"memory grew from {early:.1f} to {late:.1f} MiB in the last third"
