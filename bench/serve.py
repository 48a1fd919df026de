"""How many clinicians can one `biosig serve` take? N real-time clients of the long-form
recording at once, on this machine.

Run (about 4 x the recording's length, plus start-up: ~20 min for the default 240 s)::

    HF_HUB_OFFLINE=1 python bench/serve.py             # -> bench/results/serve.json

The server (``biosig.asr.serve``, Whisper base int8, ``--threads`` threads, the default
streaming settings) runs in this process under uvicorn on 127.0.0.1; each client
(:func:`biosig.asr.serve.stream_to_server`) sends the long-form recording of
``bench/dictation.py`` (LibriSpeech and FLEURS clips and synthesized dictation with pauses) in
1 s frames at the pace of real time, all clients starting together. Per stream: WER of the
committed text, commit latency (the wall time a ``final`` event reached the client minus the
end of its words in the audio, words spread evenly over the event's span: mean and p90 over
words) and end lag (the ``done`` message after the last frame). Reported for 1, 2, 4 and 8
streams, with the largest number that keeps mean latency <= 3 s and WER within 1 point of a
single stream. Each finished level is written at once; a rerun keeps the levels already in
``--out`` for the same recording length (``--fresh`` runs them again), so
``--levels 1,2,4,8`` after an interrupted run measures only what is missing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402

from biosig.asr import ASR_FS, error_rates, load_model, packaged_model_dir  # noqa: E402
from biosig.asr.serve import (  # noqa: E402
    ServeConfig,
    create_app,
    free_port,
    serve_in_thread,
    stream_to_server,
)
from biosig.fileio import write_json_atomic  # noqa: E402


def realtime_chunks(x: np.ndarray, t0: float, frame_s: float = 1.0):
    """1 s frames, each released when its last sample would have been recorded."""
    n = int(frame_s * ASR_FS)
    for k in range(0, x.size, n):
        due = t0 + (k + n) / ASR_FS
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        yield x[k:k + n]


def one_client(url: str, x: np.ndarray, t0: float, out: dict) -> None:
    finals = []

    def emit(ev):
        if ev["type"] == "final":
            finals.append((time.monotonic() - t0, ev))

    try:
        doc = stream_to_server(url, realtime_chunks(x, t0), emit=emit)
        out.update(finals=finals, document=doc, done_s=time.monotonic() - t0)
    except ConnectionError as exc:
        out.update(error=str(exc), finals=finals)


def word_latencies(finals) -> list[float]:
    lat = []
    for arrived, ev in finals:
        words = ev["text"].split()
        if not words:
            continue
        span = ev["end"] - ev["start"]
        for i in range(len(words)):
            end = ev["start"] + span * (i + 1) / len(words)
            lat.append(arrived - end)
    return lat


class _SessionStats(logging.Handler):
    """Collects the server's per-session close records (seconds of audio, decodes, seconds
    dropped at Whisper's window): numbers only, the server never logs audio or text."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.closed: list[dict] = []

    def emit(self, record):
        if record.msg.startswith("session %s closed"):
            _, audio_s, decodes, dropped_s, _ = record.args
            self.closed.append({"audio_s": audio_s, "decodes": decodes, "dropped_s": dropped_s})


def run_level(model, x, ref, n: int, threads_note: str, max_sessions: int) -> dict:
    stats = _SessionStats()
    server_log = logging.getLogger("biosig.asr.serve")
    server_log.addHandler(stats)
    server_log.setLevel(logging.INFO)
    port = free_port()
    app = create_app(model, ServeConfig(port=port, max_sessions=max_sessions))
    t0 = time.monotonic() + 0.5
    outs = [{} for _ in range(n)]
    with serve_in_thread(app, port=port) as srv:
        clients = [threading.Thread(target=one_client, args=(srv.ws_url, x, t0, o))
                   for o in outs]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
    server_log.removeHandler(stats)
    if len(stats.closed) != n:      # the log line changed: say so rather than report 0 s dropped
        raise RuntimeError(f"{len(stats.closed)} session records for {n} streams: has the "
                           "'session ... closed' log line of biosig.asr.serve changed?")
    audio_s = x.size / ASR_FS
    streams = []
    for o in outs:
        if "error" in o:
            streams.append({"error": o["error"]})
            continue
        text = " ".join(ev["text"] for _, ev in o["finals"])
        lat = np.asarray(word_latencies(o["finals"]))
        streams.append({"wer": error_rates([ref], [text]).wer,
                        "latency_mean_s": float(lat.mean()) if lat.size else float("nan"),
                        "latency_p90_s": float(np.percentile(lat, 90)) if lat.size
                        else float("nan"),
                        "end_lag_s": o["done_s"] - audio_s})
    ok = [s for s in streams if "error" not in s]
    return {"streams": n, "per_stream": streams, "threads": threads_note,
            "wer_mean": float(np.mean([s["wer"] for s in ok])) if ok else float("nan"),
            "latency_mean_s": float(np.mean([s["latency_mean_s"] for s in ok])) if ok
            else float("nan"),
            "latency_p90_s": float(np.max([s["latency_p90_s"] for s in ok])) if ok
            else float("nan"),
            "end_lag_s": float(np.max([s["end_lag_s"] for s in ok])) if ok else float("nan"),
            "refused": len(streams) - len(ok),
            "sessions": stats.closed,
            "audio_dropped_s": float(sum(c["dropped_s"] for c in stats.closed))}


def main(argv=None) -> int:
    from dictation import build_long_form, real_clips, synth_clips

    from biosig.datasets import data_root
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--levels", default="1,2,4,8")
    ap.add_argument("--long-s", type=float, default=240.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path,     # bench/dictation.py's, so its audio is reused
                    default=Path.home() / ".cache" / "biosig" / "bench-dictation")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serve.json")
    ap.add_argument("--fresh", action="store_true",
                    help="Run every level again; by default levels already in --out for the "
                         "same recording length are kept and skipped.")
    args = ap.parse_args(argv)
    levels = [int(v) for v in args.levels.split(",") if v]
    real = real_clips(data_root())
    synth = synth_clips(args.work, ["festival-slt-hts", "espeak-en-us-f3"])
    x, ref, _ = build_long_form(real, synth, args.long_s)
    model = load_model(str(packaged_model_dir()), compute_type="int8", cpu_threads=args.threads)
    audio_s = x.size / ASR_FS
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "loadavg_start": os.getloadavg(), "threads": args.threads},
               "audio_s": audio_s, "levels": []}
    if args.out.is_file() and not args.fresh:       # resume: keep the levels already measured
        old = json.loads(args.out.read_text())
        if abs(old.get("audio_s", -1) - audio_s) < 1e-6:
            results["levels"] = [r for r in old["levels"] if r["streams"] in levels]
            results["machine"] = old["machine"]
    done = {r["streams"] for r in results["levels"]}
    for n in levels:
        if n in done:
            print(f"{n} streams: kept from {args.out}", flush=True)
            continue
        r = run_level(model, x, ref, n, str(args.threads), max_sessions=max(levels))
        results["levels"].append(r)
        results["levels"].sort(key=lambda r: r["streams"])
        write_json_atomic(args.out, results)        # each finished level is kept
        print(f"{n} streams: WER {100 * r['wer_mean']:.1f} %, latency mean "
              f"{r['latency_mean_s']:.2f} s, p90 {r['latency_p90_s']:.2f} s, end lag "
              f"{r['end_lag_s']:.2f} s, audio dropped {r['audio_dropped_s']:.1f} s",
              flush=True)
    one = [r for r in results["levels"] if r["streams"] == 1]
    base = (one or results["levels"])[0]["wer_mean"]     # WER of a single stream
    good = [r["streams"] for r in results["levels"]
            if r["latency_mean_s"] <= 3.0 and r["wer_mean"] <= base + 0.01 and not r["refused"]]
    results["max_streams_ok"] = max(good) if good else 0
    results["machine"]["loadavg_end"] = os.getloadavg()
    write_json_atomic(args.out, results)
    print(f"largest number of streams with mean latency <= 3 s and WER within 1 point of one "
          f"stream: {results['max_streams_ok']}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
