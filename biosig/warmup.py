"""Compile the numba kernels once, ahead of first use (``python -m biosig.warmup``).

numba compiles each kernel on its first call and keeps the machine code in ``__pycache__``
(``cache=True``); on a fresh install that first call takes tens of seconds. ``scripts/setup.sh``
runs this module, which scores one synthetic WFDB record exactly as ``biosig score qrs`` does
(and runs the filters at float32 and float64, and segments a synthetic PCG), so that the first
real command starts warm. The cache is tied to this machine's CPU and to the source files:
another machine, or an edited kernel, compiles again on first use (once).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from biosig import dsp
from biosig.ecg.scoring import score_qrs
from biosig.ecg.simulate import ecg_simulate, write_wfdb_record
from biosig.pcg import compare_heart_sounds, pcg_segment
from biosig.synth import synth_pcg


def warm_up() -> float:
    """Run every cached kernel once; returns the seconds it took."""
    t0 = time.perf_counter()
    sim = ecg_simulate(duration_s=20.0, fs=360.0, seed=0)
    x = np.asarray(sim.signal, dtype=np.float64)
    with tempfile.TemporaryDirectory() as tmp:
        write_wfdb_record(tmp, "warm", x, fs=360.0)
        score_qrs(Path(tmp), Path(tmp) / "out", progress=False)
    sos = dsp.butter_sos("bandpass", (0.5, 40.0), fs=360.0, order=4)
    for dtype in (np.float32, np.float64):
        for shape in ((x.size,), (2, x.size)):
            y = np.broadcast_to(x.astype(dtype), shape).copy()
            dsp.sosfilt(sos, y)
            dsp.sosfiltfilt(sos, y)
    pcg = synth_pcg(4.0, fs=4000.0, seed=0)              # the PCG segmenter's decoder, matcher
    seg = pcg_segment(pcg.data[0], fs=pcg.fs)
    compare_heart_sounds(seg, seg)
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(f"biosig: numba kernels ready ({warm_up():.1f} s)", file=sys.stderr)
