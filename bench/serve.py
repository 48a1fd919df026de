"""How many clinicians can one `biosig serve` take? N real-time clients of the long-form
recording at once, on this machine.

Run (about 4 x the recording's length, plus start-up: ~20 min for the default 240 s)::

    HF_HUB_OFFLINE=1 python bench/serve.py             # -> bench/results/serve.json

The server (``biosig.asr.serve``, Whisper base int8, ``--threads`` threads, the default
streaming settings) runs in this process under uvicorn on 127.0.0.1; each client
(:func:`biosig.asr.client.stream_to_server`) sends the long-form recording of
``bench/dictation.py`` (LibriSpeech and FLEURS clips and synthesized dictation with pauses) in
1 s frames at the pace of real time, all clients starting together. Per stream: WER of the
committed text, commit latency (the wall time a ``final`` event reached the client minus the
end of its words in the audio, words spread evenly over the event's span: mean and p90 over
words) and end lag (the ``done`` message after the last frame). Reported for 1, 2, 4 and 8
streams, with the largest number that keeps mean latency <= 3 s and WER within 1 point of a
single stream. Each finished level is written at once; a rerun keeps the levels already in
``--out`` for the same recording length (``--fresh`` runs them again), so
``--levels 1,2,4,8`` after an interrupted run measures only what is missing. A run that writes
into ``bench/results`` also draws ``bench/results/serve.png`` (WER and latency against streams,
ours and every peer measured; ``--plot-only`` draws it alone).

``--peer whisperlivekit`` measures WhisperLiveKit (PyPI ``whisperlivekit``) the same way, on
the same recording and Whisper base, into ``bench/results/serve_whisperlivekit.json``::

    HF_HUB_OFFLINE=1 python bench/serve.py --peer whisperlivekit --levels 1 --long-s 120

Its server (``python -m whisperlivekit.basic_server`` of ``--peer-python``, a separate venv,
by default ``.venv-whisperlivekit`` in the repository: ``python3.11 -m venv
.venv-whisperlivekit && .venv-whisperlivekit/bin/pip install whisperlivekit==0.2.26
safetensors torch==2.14.1``) runs as a subprocess on 127.0.0.1, CPU, ``OMP_NUM_THREADS`` =
``--threads``, language en, its silero VAD (shipped in the package), raw s16le PCM input
(``--pcm-input``, no ffmpeg) and its default streaming policy, SimulStreaming (AlignAtt): the
CTranslate2 model (``compute_type=auto``: int8_float32) encodes and WhisperLiveKit's own PyTorch
Whisper decodes, with weights imported once from the same CTranslate2 directory
(``--peer-decoder-dir``; float16 -> float32, so the same model) and the model's alignment heads.
It is warmed up on the first real clip (its default downloads a sample). Each update it sends
(``mode=full``) holds every committed ``line`` (text, start and end in the audio, ``H:MM:SS.cc``)
and the uncommitted ``buffer_transcription``; only committed text is scored. Commit latency of
a word: the wall time of the first update whose committed lines hold it in its final form
(:func:`peer_word_times`; a later token may still complete the last word) minus its end in the
audio, where the words new in a line are spread evenly between the line's end in the previous
update (its start if the line is new) and its end now: WhisperLiveKit's own line timestamps,
as ours uses its events' spans. End lag: its ``ready_to_stop`` message after the empty message
that ends the audio.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import logging
import os
import platform
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
from websockets.exceptions import ConnectionClosed, WebSocketException  # noqa: E402
from websockets.sync.client import connect as ws_connect  # noqa: E402

from biosig.asr import ASR_FS, error_rates, load_model, packaged_model_dir  # noqa: E402
from biosig.asr.client import float_to_pcm16, stream_to_server  # noqa: E402
from biosig.asr.ct2 import import_ct2_whisper  # noqa: E402
from biosig.asr.serve import ServeConfig, create_app, free_port, serve_in_thread  # noqa: E402
from biosig.asr.streaming import COMMIT_RULES  # noqa: E402
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
    """Collects the server's per-session close records (:func:`biosig.asr.serve.session_stats`:
    seconds of audio, decodes, seconds dropped at Whisper's window, words per commit rule):
    numbers only, the server never logs audio or text."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.closed: list[dict] = []

    def emit(self, record):
        if record.msg.startswith("session %s closed"):
            self.closed.append(record.args[1])      # biosig.asr.serve.session_stats


def stream_stats(ref: str, text: str, latencies, done_s: float, audio_s: float) -> dict:
    """One stream's figures.

    Parameters
    ----------
    ref, text : str
        Reference and committed text.
    latencies : list of float
        Commit latency of each word (s).
    done_s, audio_s : float
        When the stream was done (s after the start) and the recording's length.

    Returns
    -------
    dict
        ``wer``, ``latency_mean_s`` and ``latency_p90_s`` (over words), ``end_lag_s``.
    """
    lat = np.asarray(latencies)
    return {"wer": error_rates([ref], [text]).wer,
            "latency_mean_s": float(lat.mean()) if lat.size else float("nan"),
            "latency_p90_s": float(np.percentile(lat, 90)) if lat.size else float("nan"),
            "end_lag_s": done_s - audio_s}


def level_summary(n: int, streams: list[dict], threads_note: str) -> dict:
    """A level's figures: WER and mean latency averaged over the streams that ran, p90 and end
    lag of the worst one, and how many streams were refused (an ``error`` entry)."""
    ok = [s for s in streams if "error" not in s]
    return {"streams": n, "per_stream": streams, "threads": threads_note,
            "wer_mean": float(np.mean([s["wer"] for s in ok])) if ok else float("nan"),
            "latency_mean_s": float(np.mean([s["latency_mean_s"] for s in ok])) if ok
            else float("nan"),
            "latency_p90_s": float(np.max([s["latency_p90_s"] for s in ok])) if ok
            else float("nan"),
            "end_lag_s": float(np.max([s["end_lag_s"] for s in ok])) if ok else float("nan"),
            "refused": len(streams) - len(ok)}


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
        streams.append(stream_stats(ref, text, word_latencies(o["finals"]), o["done_s"],
                                    audio_s))
    return {**level_summary(n, streams, threads_note),
            "sessions": stats.closed,
            "audio_dropped_s": float(sum(c["dropped_s"] for c in stats.closed)),
            "committed_by": {r: sum(c["committed_by"][r] for c in stats.closed)
                             for r in COMMIT_RULES}}


# --- the peer: WhisperLiveKit ---------------------------------------------------------------

PEER_PACKAGES = ("whisperlivekit", "faster-whisper", "ctranslate2", "torch", "torchaudio",
                 "onnxruntime", "safetensors", "numpy", "fastapi", "uvicorn")
PEER_INSTALL = ("python3.11 -m venv .venv-whisperlivekit && .venv-whisperlivekit/bin/pip "
                "install whisperlivekit==0.2.26 safetensors torch==2.14.1")
PEER_LATENCY = ("wall time of the first update (mode=full) whose committed lines hold the word "
                "in its final form (lower-cased, punctuation aside) minus the word's end in the "
                "audio; the words new in a line are spread evenly "
                "between the line's end in the previous update (its start if the line is new) "
                "and its end now (WhisperLiveKit's own line timestamps, H:MM:SS.cc); "
                "buffer_transcription (uncommitted) is not scored")
_VERSIONS_PY = """
import importlib.metadata as m, json, sys
def version(name):
    try:
        return m.version(name)
    except m.PackageNotFoundError:
        return None
print(json.dumps({"python": sys.version.split()[0], **{p: version(p) for p in sys.argv[1:]}}))
"""


def peer_versions(python: Path) -> dict:
    """The peer environment's Python and package versions (``None``: not installed).

    Raises
    ------
    subprocess.CalledProcessError
        ``python`` does not run.
    """
    res = subprocess.run([str(python), "-c", _VERSIONS_PY, *PEER_PACKAGES], check=True,
                         capture_output=True, text=True, timeout=120)
    return json.loads(res.stdout)


def peer_decoder_dir(ct2_dir: Path, hf_dir: Path) -> Path:
    """Decoder weights for WhisperLiveKit's SimulStreaming, which runs only the encoder in
    CTranslate2 and decodes with its own PyTorch Whisper: the same model, imported once from
    ``ct2_dir`` into ``hf_dir`` (transformers layout; float16 weights written as float32)."""
    if not (hf_dir / "config.json").is_file():
        print(f"importing {ct2_dir} into {hf_dir} (the peer's decoder weights)", flush=True)
        import_ct2_whisper(ct2_dir, hf_dir, overwrite=True)
    return hf_dir


def alignment_heads_b85(ct2_dir: Path, hf_dir: Path) -> str:
    """The model's alignment heads (``config.json`` of the CTranslate2 model) in openai-whisper's
    encoding, base85 of a gzipped (layers x heads) boolean mask: WhisperLiveKit's
    ``--custom-alignment-heads``, which it needs for a model given by path."""
    heads = json.loads((ct2_dir / "config.json").read_text())["alignment_heads"]
    cfg = json.loads((hf_dir / "config.json").read_text())
    mask = np.zeros((cfg["decoder_layers"], cfg["decoder_attention_heads"]), dtype=bool)
    for layer, head in heads:
        mask[layer, head] = True
    return base64.b85encode(gzip.compress(mask.tobytes(), mtime=0)).decode()


def wlk_command(python: Path, ct2_dir: Path, decoder_dir: Path | None, policy: str,
                warmup: Path) -> list[str]:
    """The WhisperLiveKit server's command line, less ``--port``: 127.0.0.1, faster-whisper
    backend, Whisper base from ``ct2_dir``, English, raw s16le PCM input, its VAD on, warmed up
    on ``warmup`` (its default would download a sample)."""
    cmd = [str(python), "-m", "whisperlivekit.basic_server", "--host", "127.0.0.1",
           "--backend", "faster-whisper", "--model", "base", "--language", "en", "--pcm-input",
           "--warmup-file", str(warmup), "--log-level", "INFO"]
    if policy == "simulstreaming":              # its default policy
        return cmd + ["--encoder-model-path", str(ct2_dir),
                      "--decoder-model-path", str(decoder_dir),
                      "--custom-alignment-heads", alignment_heads_b85(ct2_dir, decoder_dir)]
    return cmd + ["--backend-policy", policy, "--model_dir", str(ct2_dir)]


def peer_setup(args, warmup: Path) -> dict:
    """What the peer's levels need (``cmd``, ``env``) and what the results record (``info``:
    versions, command, model, policy, how latency is computed)."""
    ct2_dir = packaged_model_dir()
    decoder = (peer_decoder_dir(ct2_dir, args.peer_decoder_dir)
               if args.peer_policy == "simulstreaming" else None)
    cmd = wlk_command(args.peer_python, ct2_dir, decoder, args.peer_policy, warmup)
    env_set = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(args.threads)}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | env_set
    info = {"name": "whisperlivekit", "versions": peer_versions(args.peer_python),
            "server_command": cmd + ["--port", "<free port>"], "env": env_set,
            "policy": args.peer_policy,
            "model": {"ct2_encoder": str(ct2_dir), "compute_type": "auto (int8_float32 on CPU)",
                      "pytorch_decoder": str(decoder) if decoder else None},
            "input": "s16le 16 kHz mono PCM, 1 s frames at real time, then an empty message",
            "latency": PEER_LATENCY}
    return {"cmd": cmd, "env": env, "info": info}


class PeerServer:
    """The peer's server as a subprocess (output to ``log``), ready once ``/health`` answers;
    stopped (SIGTERM, then SIGKILL) on leaving the ``with`` block.

    Raises
    ------
    RuntimeError
        It exited or did not answer within ``timeout_s``; the end of its log is quoted.
    """

    def __init__(self, cmd: list[str], env: dict, log: Path, timeout_s: float = 600.0):
        port = free_port()
        self.ws_url = f"ws://127.0.0.1:{port}/asr"
        self._health = f"http://127.0.0.1:{port}/health"
        self._no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log, "w")      # closed in stop()
        self.proc = subprocess.Popen(cmd + ["--port", str(port)], env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() - t0 > timeout_s:
                self.stop()
                raise RuntimeError(f"the WhisperLiveKit server did not start; end of {log}:\n"
                                   f"{log.read_text()[-3000:]}")
            time.sleep(0.5)

    def _ready(self) -> bool:
        try:
            with self._no_proxy.open(self._health, timeout=2) as resp:
                return json.load(resp).get("ready") is True
        except (OSError, ValueError):
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _receive_updates(ws, t0: float, out: dict) -> None:
    try:
        for raw in ws:
            arrived = time.monotonic() - t0
            msg = json.loads(raw)
            if msg.get("type") == "ready_to_stop":
                out["done_s"] = arrived
                return
            if msg.get("error"):
                out.setdefault("server_errors", []).append(msg["error"])
            out["updates"].append((arrived, msg))
    except ConnectionClosed as exc:
        out["error"] = f"connection closed before ready_to_stop: {exc}"


def one_peer_client(url: str, x: np.ndarray, t0: float, out: dict, wait_s: float) -> None:
    """One WhisperLiveKit session: ``x`` in 1 s s16le frames at real time from ``t0``, then the
    empty message that ends the audio; ``out`` gets every update with its arrival (s after
    ``t0``) in ``updates`` and the arrival of ``ready_to_stop`` in ``done_s``, or ``error``."""
    out["updates"] = []
    try:
        with ws_connect(url, max_size=None, proxy=None, ping_interval=None,
                        open_timeout=60) as ws:
            receiver = threading.Thread(target=_receive_updates, args=(ws, t0, out),
                                        daemon=True)
            receiver.start()
            for frame in realtime_chunks(x, t0):
                ws.send(float_to_pcm16(frame))
            ws.send(b"")
            receiver.join(wait_s)
    except (OSError, WebSocketException) as exc:
        out.setdefault("error", f"{type(exc).__name__}: {exc}")
    if "done_s" not in out:
        out.setdefault("error", f"no ready_to_stop within {wait_s:.0f} s after the audio")


def _clock_s(stamp: str) -> float:
    """WhisperLiveKit's ``H:MM:SS.cc`` in seconds."""
    h, m, s = stamp.split(":")
    return 3600 * int(h) + 60 * int(m) + float(s)


def _word_key(word: str) -> str:
    return re.sub(r"\W", "", word.lower())


def peer_word_times(updates) -> tuple[list, str, int]:
    """When each finally committed word of a WhisperLiveKit session arrived, and where it ends.

    Each update (``mode=full``) holds every committed line (silence lines, ``speaker`` -2, hold
    no text). The words an update adds to a line are spread evenly, as :func:`word_latencies`
    does, between that line's end in the previous update (its start if the line is new) and
    its end now. Committed text can still change at its end: a later token may complete the
    last word (``flour`` -> ``flour-fatten``) or punctuate it (``man`` -> ``man,``). Words are
    compared lower-cased without punctuation; a word that changes counts as arriving when its
    final form did, so every word of the final text is counted once.

    Parameters
    ----------
    updates : list of (float, dict)
        Arrival time and message.

    Returns
    -------
    times : list of (float, float)
        (arrival, end in the audio) of each word of ``text``.
    text : str
        The committed text of the last update.
    rewritten : int
        Words that changed after they were committed (punctuation aside).
    """
    times, prev_keys, prev_ends, rewritten, text = [], [], [], 0, ""
    for arrived, msg in updates:
        if "lines" not in msg:
            continue
        lines = [(ln["text"].split(), _clock_s(ln["start"]), _clock_s(ln["end"]))
                 for ln in msg["lines"] if ln.get("text") and ln.get("speaker") != -2]
        words = [w for line_words, _, _ in lines for w in line_words]
        keys = [_word_key(w) for w in words]
        keep = 0
        while keep < min(len(keys), len(prev_keys)) and keys[keep] == prev_keys[keep]:
            keep += 1
        rewritten += len(prev_keys) - keep
        del times[keep:]
        first = 0                       # index of the line's first word in ``words``
        for k, (line_words, start, end) in enumerate(lines):
            n_new = len(line_words) - max(keep - first, 0)
            if n_new > 0:
                grown = n_new < len(line_words) and k < len(prev_ends)
                span_start = min(prev_ends[k], end) if grown else start
                times += [(arrived, span_start + (end - span_start) * (i + 1) / n_new)
                          for i in range(n_new)]
            first += len(line_words)
        prev_keys, prev_ends, text = keys, [end for _, _, end in lines], " ".join(words)
    return times, text, rewritten


def run_peer_level(peer: dict, log: Path, x, ref, n: int, threads_note: str) -> dict:
    """``n`` real-time clients of the recording at once against a fresh peer server."""
    audio_s = x.size / ASR_FS
    outs = [{} for _ in range(n)]
    with PeerServer(peer["cmd"], peer["env"], log) as srv:
        t0 = time.monotonic() + 0.5
        clients = [threading.Thread(target=one_peer_client,
                                    args=(srv.ws_url, x, t0, o, 2 * audio_s + 300))
                   for o in outs]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
    streams = []
    for o in outs:
        if "error" in o:
            streams.append({"error": o["error"]})
            continue
        times, text, rewritten = peer_word_times(o["updates"])
        lat = [arrived - end for arrived, end in times]
        last = next((m for _, m in reversed(o["updates"]) if "lines" in m), {})
        streams.append({**stream_stats(ref, text, lat, o["done_s"], audio_s),
                        "words": len(text.split()), "updates": len(o["updates"]),
                        "words_rewritten": rewritten,
                        "buffer_words_at_end": len(last.get("buffer_transcription", "").split()),
                        "server_errors": o.get("server_errors", [])})
    return level_summary(n, streams, threads_note)


def plot(results_dir: Path, path: Path) -> Path | None:
    """WER and mean commit latency against streams, ours and every peer measured
    (``serve*.json`` in ``results_dir``), as a PNG; None when nothing is measured yet."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from biosig.plot import save_png
    runs = {"biosig serve" if f.stem == "serve" else f.stem.removeprefix("serve_"):
            json.loads(f.read_text()) for f in sorted(results_dir.glob("serve*.json"))
            if f.stem != "serve_batching"}
    if not runs:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, res in runs.items():
        n = [r["streams"] for r in res["levels"]]
        axes[0].plot(n, [100 * r["wer_mean"] for r in res["levels"]], "o-", label=name)
        axes[1].plot(n, [r["latency_mean_s"] for r in res["levels"]], "o-", label=name)
    for ax, label in zip(axes, ("WER (%)", "mean commit latency (s), log scale")):
        ax.set_xscale("log", base=2)
        ax.set_xticks([1, 2, 4, 8], ["1", "2", "4", "8"])
        ax.set_xlabel("real-time streams at once")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[1].set_yticks([1, 3, 10, 30, 100], ["1", "3", "10", "30", "100"])
    axes[1].axhline(3.0, color="grey", ls=":", lw=1)
    axes[0].legend(fontsize=8)
    fig.suptitle("Dictation servers, Whisper base on 2 CPU cores, 126 s recording per stream")
    fig.tight_layout()
    return save_png(fig, path, dpi=110)


def main(argv=None) -> int:
    from dictation import build_long_form, real_clips, synth_clips

    from biosig.datasets import data_root
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--levels", default="1,2,4,8")
    ap.add_argument("--long-s", type=float, default=240.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path,     # bench/dictation.py's, so its audio is reused
                    default=Path.home() / ".cache" / "biosig" / "bench-dictation")
    ap.add_argument("--out", type=Path, default=None,
                    help="Default: bench/results/serve.json; with --peer, "
                         "bench/results/serve_<peer>.json.")
    ap.add_argument("--fresh", action="store_true",
                    help="Run every level again; by default levels already in --out for the "
                         "same recording length are kept and skipped.")
    ap.add_argument("--peer", choices=["whisperlivekit"], default=None,
                    help="Measure this peer's server instead of ours (module docstring).")
    ap.add_argument("--peer-python", type=Path,
                    default=REPO / ".venv-whisperlivekit" / "bin" / "python",
                    help="Python of the venv the peer is installed in.")
    ap.add_argument("--peer-policy", choices=["simulstreaming", "localagreement"],
                    default="simulstreaming",
                    help="WhisperLiveKit's streaming policy (its default: simulstreaming).")
    ap.add_argument("--peer-decoder-dir", type=Path,
                    default=Path.home() / ".cache" / "biosig" / "whisper-base-ct2-hf",
                    help="Where the model is imported once for SimulStreaming's decoder.")
    ap.add_argument("--plot-only", action="store_true",
                    help="Only draw bench/results/serve.png from the results already there.")
    args = ap.parse_args(argv)
    results_dir = REPO / "bench" / "results"
    if args.plot_only:
        print(f"wrote {plot(results_dir, results_dir / 'serve.png')}")
        return 0
    if args.peer and not args.peer_python.is_file():
        print(f"--peer-python {args.peer_python}: no such file (make it: {PEER_INSTALL})",
              file=sys.stderr)
        return 2
    out = args.out or REPO / "bench" / "results" / (
        f"serve_{args.peer}.json" if args.peer else "serve.json")
    levels = [int(v) for v in args.levels.split(",") if v]
    real = real_clips(data_root())
    synth = synth_clips(args.work, ["festival-slt-hts", "espeak-en-us-f3"])
    x, ref, _ = build_long_form(real, synth, args.long_s)
    audio_s = x.size / ASR_FS
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "loadavg_start": os.getloadavg(), "threads": args.threads},
               "audio_s": audio_s, "levels": []}
    if args.peer:
        try:
            peer = peer_setup(args, warmup=Path(real[0][1]))
        except subprocess.CalledProcessError as exc:
            print(f"--peer-python {args.peer_python} does not run: {exc.stderr.strip()}",
                  file=sys.stderr)
            return 2
        if peer["info"]["versions"].get("whisperlivekit") is None:
            print(f"whisperlivekit is not installed for {args.peer_python} ({PEER_INSTALL})",
                  file=sys.stderr)
            return 2
        results["peer"] = peer["info"]
        log = args.work / "whisperlivekit-server.log"
    else:
        model = load_model(str(packaged_model_dir()), compute_type="int8",
                           cpu_threads=args.threads)
    if out.is_file() and not args.fresh:       # resume: keep the levels already measured
        old = json.loads(out.read_text())
        if abs(old.get("audio_s", -1) - audio_s) < 1e-6 and old.get("peer") == results.get(
                "peer"):
            results["levels"] = [r for r in old["levels"] if r["streams"] in levels]
            results["machine"] = old["machine"]
    done = {r["streams"] for r in results["levels"]}
    for n in levels:
        if n in done:
            print(f"{n} streams: kept from {out}", flush=True)
            continue
        if args.peer:
            r = run_peer_level(peer, log, x, ref, n, str(args.threads))
        else:
            r = run_level(model, x, ref, n, str(args.threads), max_sessions=max(levels))
        results["levels"].append(r)
        results["levels"].sort(key=lambda r: r["streams"])
        write_json_atomic(out, results)        # each finished level is kept
        dropped = (f", audio dropped {r['audio_dropped_s']:.1f} s" if "audio_dropped_s" in r
                   else f", refused {r['refused']}")
        print(f"{n} streams: WER {100 * r['wer_mean']:.1f} %, latency mean "
              f"{r['latency_mean_s']:.2f} s, p90 {r['latency_p90_s']:.2f} s, end lag "
              f"{r['end_lag_s']:.2f} s{dropped}", flush=True)
    one = [r for r in results["levels"] if r["streams"] == 1]
    base = (one or results["levels"])[0]["wer_mean"]     # WER of a single stream
    good = [r["streams"] for r in results["levels"]
            if r["latency_mean_s"] <= 3.0 and r["wer_mean"] <= base + 0.01 and not r["refused"]]
    results["max_streams_ok"] = max(good) if good else 0
    results["machine"]["loadavg_end"] = os.getloadavg()
    write_json_atomic(out, results)
    if out.parent == results_dir:
        plot(results_dir, results_dir / "serve.png")
    print(f"largest number of streams with mean latency <= 3 s and WER within 1 point of one "
          f"stream: {results['max_streams_ok']}; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
