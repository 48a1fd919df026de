"""Soak: 30 minutes of audio through `biosig serve` (Whisper base, real speech every minute,
silence between, sent 30x faster than real time): every utterance is transcribed to the end,
and the server's memory stays flat once its allocators are warm (the last 10 minutes).

The server is its own process (the CLI, as deployed), so its memory is read from /proc for that
process alone, whatever else the test process (or a test worker) has allocated."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

pytest.importorskip("starlette", reason="needs the [serve] extra")
pytest.importorskip("uvicorn", reason="needs the [serve] extra")
pytest.importorskip("websockets", reason="needs the [serve] extra")

CLIPS = ["1089-134686-0000", "1089-134686-0001", "1089-134691-0000", "1089-134691-0001"]
MINUTES = 30
SPEED = 30.0          # times real time


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _wait_healthy(url: str, proc: subprocess.Popen, log, timeout_s: float = 120.0) -> None:
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            raise RuntimeError(f"biosig serve exited with {proc.returncode}: "
                               f"{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"biosig serve did not answer {url} within {timeout_s:.0f} s")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                    reason="reads the memory from /proc (Linux)")
def test_thirty_minutes_of_dictation_with_flat_memory(whisper_model_dir, librispeech_clip,
                                                      tmp_path):
    from biosig.asr import ASR_FS, error_rates, load_audio
    from biosig.asr.serve import free_port, stream_to_server
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

    port = free_port()
    log = tmp_path / "serve.log"             # a file, not a pipe nobody reads while it runs
    with open(log, "w") as log_fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "biosig", "serve", "--model", str(whisper_model_dir),
             "--port", str(port), "--threads", "2"],
            stdout=log_fh, stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"})

    def emit(ev):
        if ev["type"] == "final":
            samples.append((ev["end"], _rss_mb(proc.pid)))

    try:
        _wait_healthy(f"http://127.0.0.1:{port}/health", proc, log)
        doc = stream_to_server(f"ws://127.0.0.1:{port}/ws", paced(), emit=emit)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    t = np.array([s[0] for s in samples]) / 60
    rss = np.array([s[1] for s in samples])
    # The first minutes grow the allocators' caches (CTranslate2, torch, numpy: one per new
    # buffer length). Alone, that is done within a minute or two and RSS then wanders by a few
    # tens of MiB with each decode's buffer; on a busy machine the server falls behind, meets
    # longer buffers, and the caches keep growing for up to 20 minutes before they level off.
    # Either way a leak shows as the last 10 minutes standing above everything before them:
    # their median above the earlier peak (one busy decode's spike does not decide; a leak of
    # a few MiB per minute of audio does).
    warm = rss[(t >= 2) & (t < MINUTES - 10)]
    last = rss[t >= MINUTES - 10]
    wer = error_rates([" ".join(refs)], [doc]).wer
    print("RSS (MiB) by minute:", {int(m): round(float(r), 1) for m, r in zip(t, rss)})
    print(f"{len(samples)} commits; RSS peak minutes 2-{MINUTES - 10}: {warm.max():.1f} MiB; "
          f"last 10 minutes: median {np.median(last):.1f}, max {last.max():.1f} MiB; "
          f"WER {wer:.3f}")
    assert t.max() > MINUTES - 1, "the last minute's words were not committed"
    assert wer < 0.15
    assert np.median(last) - warm.max() < 10.0, (
        f"server memory kept growing: peak {warm.max():.1f} MiB before minute {MINUTES - 10}, "
        f"median {np.median(last):.1f} and max {last.max():.1f} MiB after")
