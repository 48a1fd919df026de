"""Soak: 45 minutes of audio through `biosig serve` (Whisper base, real speech every minute,
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
# 45, not 30: on a loaded machine the allocators' caches still grew by steps to minute 24 of
# 30 (session 27's CI: +8.8 MiB there, so the last 10 minutes stood +12.0 on the earlier peak
# and grew +9.1), while alone at 60 minutes they level off by minute 44 (+0.7 MiB over the
# last 10); the longer warm-up, not looser limits, keeps a cache step out of the leak rule
MINUTES = 45
SPEED = 30.0          # times real time


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _n_threads(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return int(next(line for line in fh if line.startswith("Threads:")).split()[1])


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
@pytest.mark.soak
@pytest.mark.timeout(1800)     # 2-3 min alone; a loaded machine falls far behind
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"),
                    reason="reads the memory from /proc (Linux)")
def test_forty_five_minutes_of_dictation_with_flat_memory(whisper_model_dir, librispeech_clip,
                                                          tmp_path):
    from biosig.asr import ASR_FS, error_rates, load_audio
    from biosig.asr.client import stream_to_server
    from biosig.asr.serve import free_port
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
            samples.append((ev["end"], _rss_mb(proc.pid), _n_threads(proc.pid)))

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
    # The first minutes grow the allocators' caches (CTranslate2, MKL, glibc: kept for every
    # size of decode buffer met so far). Alone that levels off within minutes; on a busy
    # machine the server falls behind, meets more buffer sizes, and RSS climbs by steps of
    # 10-20 MiB for up to 20 minutes (CI: 334 -> 490 MiB by minute 20, then flat to 0.1 MiB).
    # Cache growth stops; a leak goes on. So a leak is memory that both stands above the
    # earlier peak (median of the last 10 minutes) and is still growing in those 10 minutes
    # (their second half above their first). Holding a session's audio (3.7 MiB a minute)
    # fails both by about 18 MiB; one late cache step fails at most one.
    warm = rss[(t >= 2) & (t < MINUTES - 10)]
    last = rss[t >= MINUTES - 10]
    tl = t[t >= MINUTES - 10]
    late_growth = float(np.median(last[tl >= MINUTES - 5]) - np.median(last[tl < MINUTES - 5]))
    above_peak = float(np.median(last) - warm.max())
    wer = error_rates([" ".join(refs)], [doc]).wer
    threads = [s[2] for s in samples]
    print("RSS (MiB) by minute:", {int(m): round(float(r), 1) for m, r in zip(t, rss)})
    print("server threads by minute:", {int(m): n for m, n in zip(t, threads)})
    print(f"{len(samples)} commits; RSS peak minutes 2-{MINUTES - 10}: {warm.max():.1f} MiB; "
          f"last 10 minutes: median {np.median(last):.1f} ({above_peak:+.1f} on that peak), "
          f"max {last.max():.1f} MiB, growth over them {late_growth:+.1f} MiB; WER {wer:.3f}")
    assert t.max() > MINUTES - 1, "the last minute's words were not committed"
    assert wer < 0.15
    assert not (above_peak > 10.0 and late_growth > 5.0), (
        f"server memory kept growing: the last 10 minutes stand {above_peak:+.1f} MiB on the "
        f"peak before minute {MINUTES - 10} and grew {late_growth:+.1f} MiB over those minutes")
