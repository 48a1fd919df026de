"""Kaldi filterbanks: biosig's batched ``kaldi_fbank`` against torchaudio's per-row loop, one run.

    .venv/bin/python bench/kaldi_fbank.py [--rows 48] [--cough-seconds 2] [--speech-rows 32]
                                          [--speech-seconds 10] [--repeats 15] [--threads 1,2]
                                          [--quick]

Two real batches from ``../shared/data`` (``$BIOSIG_DATA_ROOT``), loaded with ``biosig.load``
and resampled to 16 kHz, mono, at 16-bit integer scale:

* cough: the covid19-cough clips (8 kHz mp3, 0.4-4.6 s), ``--rows`` of them, each cut or
  zero-padded to ``--cough-seconds`` -- short clips, as an x-vector or cough classifier batch;
* speech: LibriSpeech + FLEURS utterances tiled into ``--speech-rows`` rows of
  ``--speech-seconds`` -- long recordings.

Both go through 80-bin Kaldi filterbanks with torchaudio's defaults (25 ms povey window, 10 ms
shift, pre-emphasis 0.97, power spectrum, log) plus the log energy (``use_energy=True``).
The peer is what ``kaldi_fbank`` did before and what torchaudio offers for a batch: one
``torchaudio.compliance.kaldi.fbank`` call per row, stacked. Each figure is the median of
``--repeats`` calls, ours and the peer's interleaved so that load from other jobs falls on both;
the minimum is recorded too. Runs for every torch thread count in ``--threads``. The largest
absolute difference between the two outputs is reported (0 means bit-identical).

Prints our figure next to the peer's and writes bench/results/kaldi_fbank.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FS = 16000
N_MELS = 80


def _mono16k(path) -> np.ndarray:
    import biosig
    return biosig.load(path, target_fs=FS).data.mean(axis=0).astype(np.float32)


def cough_batch(rows: int, seconds: float) -> tuple[np.ndarray, str]:
    from biosig.datasets import data_root
    root = data_root()
    paths = sorted((root / "cough/covid19_cough").rglob("*.mp3")) if root is not None else []
    if not paths:
        raise SystemExit("cough clips not found: set BIOSIG_DATA_ROOT or check out shared/data")
    n = int(seconds * FS)
    batch = np.zeros((rows, n), dtype=np.float32)
    for i in range(rows):
        clip = _mono16k(paths[i % len(paths)])[:n]
        batch[i, : clip.shape[0]] = clip
    source = (f"covid19-cough, {min(rows, len(paths))} clips at 16 kHz, cut or zero-padded to "
              f"{seconds:g} s")
    return batch * 32768.0, source


def speech_batch(rows: int, seconds: float) -> tuple[np.ndarray, str]:
    from biosig.datasets import data_root
    root = data_root()
    paths = [p for p in sorted((root / "speech").rglob("*")) if p.suffix in (".flac", ".ogg")] \
        if root is not None else []
    if not paths:
        raise SystemExit("speech clips not found: set BIOSIG_DATA_ROOT or check out shared/data")
    audio = np.concatenate([_mono16k(p) for p in paths])
    n = int(seconds * FS)
    batch = np.stack([np.roll(np.resize(audio, n), 7919 * i) for i in range(rows)])
    source = f"LibriSpeech + FLEURS ({len(paths)} clips tiled) into {seconds:g} s rows"
    return np.ascontiguousarray(batch, dtype=np.float32) * 32768.0, source


def timed(fns: dict, repeats: int) -> dict:
    """Median and minimum seconds per call of each function, calls interleaved."""
    for fn in fns.values():
        fn()                                                 # warm up
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: {"median_s": statistics.median(t), "min_s": min(t)} for name, t in times.items()}


def bench_batch(name: str, batch: np.ndarray, source: str, threads: list[int],
                repeats: int) -> dict:
    import torch
    import torchaudio.compliance.kaldi as kaldi

    from biosig.features import kaldi_fbank
    x = torch.from_numpy(batch)

    def ours():
        return kaldi_fbank(x, fs=FS, num_mel_bins=N_MELS, use_energy=True)

    def torchaudio_loop():
        return torch.stack([kaldi.fbank(row[None], sample_frequency=FS, num_mel_bins=N_MELS,
                                        use_energy=True, dither=0.0).T for row in x])

    diff = float((ours() - torchaudio_loop()).abs().max())
    audio_s = batch.shape[0] * batch.shape[1] / FS
    print(f"{name}: {batch.shape[0]} x {batch.shape[1] / FS:g} s from {source}; "
          f"max |biosig - torchaudio| = {diff:.3g}")
    out = {"input": source, "shape": list(batch.shape), "max_abs_diff_vs_torchaudio": diff,
           "by_threads": {}}
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        t = timed({"biosig": ours, "torchaudio": torchaudio_loop}, repeats)
        speedup = t["torchaudio"]["median_s"] / t["biosig"]["median_s"]
        out["by_threads"][str(n_threads)] = {
            "biosig_s": t["biosig"]["median_s"], "torchaudio_s": t["torchaudio"]["median_s"],
            "biosig_min_s": t["biosig"]["min_s"], "torchaudio_min_s": t["torchaudio"]["min_s"],
            "speedup": speedup,
            "speedup_of_minimum": t["torchaudio"]["min_s"] / t["biosig"]["min_s"],
            "biosig_audio_s_per_s": audio_s / t["biosig"]["median_s"],
            "torchaudio_audio_s_per_s": audio_s / t["torchaudio"]["median_s"],
        }
        print(f"  {n_threads} thread{'s' if n_threads > 1 else ' '}  "
              f"biosig {t['biosig']['median_s'] * 1e3:8.1f} ms "
              f"({audio_s / t['biosig']['median_s']:7.0f} s audio/s)   "
              f"torchaudio loop {t['torchaudio']['median_s'] * 1e3:8.1f} ms "
              f"({audio_s / t['torchaudio']['median_s']:7.0f} s audio/s)   "
              f"speed-up x{speedup:.2f} (of minima x"
              f"{out['by_threads'][str(n_threads)]['speedup_of_minimum']:.2f})")
    return out


def main(argv=None) -> int:
    import torch
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=48, help="cough clips in the batch")
    ap.add_argument("--cough-seconds", type=float, default=2.0)
    ap.add_argument("--speech-rows", type=int, default=32)
    ap.add_argument("--speech-seconds", type=float, default=10.0)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", default=f"1,{torch.get_num_threads()}",
                    help="comma-separated torch thread counts to time with")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).parent / "results" / "kaldi_fbank.json")
    args = ap.parse_args(argv)
    threads = sorted({int(t) for t in args.threads.split(",")})
    if args.quick:
        args.rows, args.speech_rows, args.speech_seconds, args.repeats = 8, 4, 3.0, 2
    import torchaudio
    result = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__,
                    "torchaudio": torchaudio.__version__},
        "settings": {"fs": FS, "num_mel_bins": N_MELS, "use_energy": True,
                     "frame_length_ms": 25.0, "frame_shift_ms": 10.0, "repeats": args.repeats,
                     "statistic": "median of interleaved calls"},
        "cough": bench_batch("cough", *cough_batch(args.rows, args.cough_seconds), threads,
                             args.repeats),
        "speech": bench_batch("speech", *speech_batch(args.speech_rows, args.speech_seconds),
                              threads, args.repeats),
    }
    if not args.quick:
        from biosig.fileio import write_text_atomic
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
