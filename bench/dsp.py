"""Filtering and log-mel throughput: biosig against scipy, librosa and torchaudio, one run.

    .venv/bin/python bench/dsp.py [--channels 64] [--minutes 30] [--repeats 3] [--quick]

Filtering: a batch of ``channels`` x ``minutes`` of ECG at 360 Hz (the four 30-minute leads of
MIT-BIH records 100 and 208 from ``../shared/data``, tiled with offsets to ``channels`` rows;
synthetic ECG when the data is absent), 4th-order Butterworth band-pass 0.5-40 Hz, float64.
biosig's numba ``sosfiltfilt``/``sosfilt`` against ``scipy.signal``'s, best of ``repeats``.

Log-mel: 16 kHz audio (LibriSpeech/FLEURS slices tiled to a batch of 32 x 30 s, or noise),
n_fft 512, hop 160, 80 mels, dB: biosig (torch) vs librosa vs torchaudio, batched where the
library can batch.

Prints every figure next to the peer's and writes bench/results/dsp.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def best_time(fn, repeats: int) -> float:
    fn()  # warm up (numba compilation, torch kernels, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def ecg_batch(channels: int, minutes: float) -> tuple[np.ndarray, str]:
    import biosig
    from biosig.datasets import data_root
    n = int(minutes * 60 * 360)
    root = data_root()
    leads = []
    if root is not None and (root / "ecg/mitdb/100.hea").exists():
        for rec in ("100", "208"):
            leads.extend(biosig.load(root / f"ecg/mitdb/{rec}.hea").data.astype(np.float64))
        source = "MIT-BIH 100 and 208 (4 leads, tiled)"
    else:
        from biosig.synth import synth_ecg
        leads = [synth_ecg(minutes * 60, fs=360.0, seed=s).data[0].astype(np.float64)
                 for s in range(4)]
        source = "synthetic ECG (no ../shared/data)"
    rows = []
    for c in range(channels):
        lead = leads[c % len(leads)]
        shift = (c // len(leads)) * 3607
        rows.append(np.roll(np.resize(lead, n), shift))
    return np.ascontiguousarray(rows), source


def speech_batch(batch: int, seconds: float) -> tuple[np.ndarray, str]:
    import biosig
    from biosig.datasets import data_root
    n = int(seconds * 16000)
    root = data_root()
    clips = []
    if root is not None:
        for p in sorted((root / "speech").rglob("*")):
            if p.suffix in (".flac", ".ogg"):
                clips.append(biosig.load(p, target_fs=16000).data.mean(axis=0))
    if clips:
        audio = np.concatenate(clips)
        source = f"LibriSpeech + FLEURS slices ({len(clips)} clips, tiled)"
    else:
        audio = np.random.default_rng(0).standard_normal(n).astype(np.float32) * 0.1
        source = "white noise (no ../shared/data)"
    rows = [np.roll(np.resize(audio, n), 7919 * i) for i in range(batch)]
    return np.ascontiguousarray(rows, dtype=np.float32), source


def bench_filters(args) -> dict:
    import numba
    import scipy.signal

    from biosig.dsp import butter_sos, sosfilt, sosfiltfilt
    x, source = ecg_batch(args.channels, args.minutes)
    sos = butter_sos("bandpass", (0.5, 40.0), fs=360.0, order=4)
    print(f"filtering: {x.shape[0]} channels x {x.shape[1]} samples (float64) from {source}; "
          f"numba threads {numba.get_num_threads()}")
    out = {"input": source, "shape": list(x.shape)}
    diff = float(np.abs(sosfiltfilt(sos, x) - scipy.signal.sosfiltfilt(sos, x)).max())
    for name, ours, theirs in (
        ("sosfiltfilt", lambda: sosfiltfilt(sos, x), lambda: scipy.signal.sosfiltfilt(sos, x)),
        ("sosfilt", lambda: sosfilt(sos, x), lambda: scipy.signal.sosfilt(sos, x)),
    ):
        t_ours = best_time(ours, args.repeats)
        t_scipy = best_time(theirs, args.repeats)
        msamples = x.size / 1e6
        out[name] = {"biosig_s": t_ours, "scipy_s": t_scipy, "speedup": t_scipy / t_ours,
                     "biosig_Msamples_per_s": msamples / t_ours,
                     "scipy_Msamples_per_s": msamples / t_scipy}
        print(f"  {name:12s} biosig {t_ours:7.3f} s ({msamples / t_ours:7.1f} MS/s)   "
              f"scipy {t_scipy:7.3f} s ({msamples / t_scipy:7.1f} MS/s)   "
              f"speed-up x{t_scipy / t_ours:.2f}")
    out["max_abs_diff_vs_scipy"] = diff
    print(f"  max |biosig - scipy| sosfiltfilt = {diff:.3g}")
    return out


def bench_logmel(args) -> dict:
    import librosa
    import torch
    import torchaudio

    from biosig.features import log_mel_spectrogram
    audio, source = speech_batch(args.batch, args.seconds)
    n_fft, hop, n_mels = 512, 160, 80
    print(f"log-mel: {audio.shape[0]} x {args.seconds:g} s at 16 kHz from {source}; "
          f"n_fft {n_fft}, hop {hop}, {n_mels} mels; torch threads {torch.get_num_threads()}")
    xt = torch.from_numpy(audio)

    def ours():
        return log_mel_spectrogram(xt, fs=16000, n_fft=n_fft, hop_length=hop, n_mels=n_mels)

    ta = torch.nn.Sequential(
        torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=n_fft, hop_length=hop,
                                             n_mels=n_mels, norm="slaney", mel_scale="slaney",
                                             pad_mode="constant"),
        torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80.0))

    def torchaudio_fn():
        with torch.no_grad():
            return ta(xt)

    def librosa_fn():
        s = librosa.feature.melspectrogram(y=audio, sr=16000, n_fft=n_fft, hop_length=hop,
                                           n_mels=n_mels)
        return librosa.power_to_db(s, top_db=80.0)

    a = ours()
    b = librosa_fn()
    diff = float(np.abs(np.asarray(a) - b).max())
    seconds_audio = audio.shape[0] * args.seconds
    out = {"input": source, "shape": list(audio.shape), "max_abs_db_diff_vs_librosa": diff}
    for name, fn in (("biosig", ours), ("torchaudio", torchaudio_fn), ("librosa", librosa_fn)):
        t = best_time(fn, args.repeats)
        out[name] = {"seconds": t, "audio_seconds_per_s": seconds_audio / t}
        print(f"  {name:10s} {t:7.3f} s   {seconds_audio / t:9.0f} s of audio per second")
    out["biosig_vs_torchaudio"] = out["torchaudio"]["seconds"] / out["biosig"]["seconds"]
    out["biosig_vs_librosa"] = out["librosa"]["seconds"] / out["biosig"]["seconds"]
    print(f"  biosig vs torchaudio x{out['biosig_vs_torchaudio']:.2f}, vs librosa "
          f"x{out['biosig_vs_librosa']:.2f}; max |dB difference| vs librosa {diff:.3g}")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "dsp.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.channels, args.minutes, args.batch, args.seconds, args.repeats = 16, 2.0, 4, 10.0, 1
    result = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version()},
        "filters": bench_filters(args),
        "log_mel": bench_logmel(args),
    }
    if not args.quick:
        from biosig.fileio import write_text_atomic
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.out, json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
