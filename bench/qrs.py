"""QRS detection benchmark: biosig against wfdb's XQRS and NeuroKit2, on the same records.

For every WFDB record with reference annotations (default: the MIT-BIH slice in
``$BIOSIG_DATA_ROOT/ecg/mitdb``; point ``--records`` at a full mitdb for the whole database),
lead 0 of the whole record goes to each detector; detections are scored beat by beat against
the ``.atr`` beats (ANSI/AAMI EC57, 150 ms window, :func:`biosig.ecg.match_beats`). Each
detector's time is the wall time of one call on the in-memory lead (file reading excluded,
numba compilation excluded by a warm-up call; NeuroKit2 timed with its own cleaning step, as its
pipeline runs). Results are printed side by side and written to ``bench/results/qrs.json``.

Usage::

    python bench/qrs.py [--records DIR] [--detectors biosig,xqrs,nk_default,nk_pantompkins]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np


def _biosig(x, fs):
    from biosig.ecg import ecg_peaks
    return ecg_peaks(x, fs=fs).samples


def _xqrs(x, fs):
    import wfdb.processing
    return wfdb.processing.xqrs_detect(x, fs=fs, verbose=False)


def _nk(method):
    def run(x, fs):
        import neurokit2 as nk
        clean = nk.ecg_clean(x, sampling_rate=int(round(fs)), method=method)
        _, info = nk.ecg_peaks(clean, sampling_rate=int(round(fs)), method=method)
        return np.asarray(info["ECG_R_Peaks"])
    return run


DETECTORS = {
    "biosig": ("biosig ecg_peaks", _biosig),
    "xqrs": ("wfdb xqrs", _xqrs),
    "nk_default": ("neurokit2 default", _nk("neurokit")),
    "nk_pantompkins": ("neurokit2 pantompkins1985", _nk("pantompkins1985")),
}


def main(argv=None) -> int:
    import wfdb

    from biosig.datasets import data_root
    from biosig.ecg import BEAT_LABELS, BeatCounts, match_beats

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = data_root()
    ap.add_argument("--records", type=Path,
                    default=(root / "ecg" / "mitdb") if root is not None else None,
                    help="folder of WFDB records with .atr annotations")
    ap.add_argument("--detectors", default=",".join(DETECTORS))
    ap.add_argument("--window-s", type=float, default=0.15)
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).resolve().parent / "results" / "qrs.json")
    args = ap.parse_args(argv)
    if args.records is None or not args.records.is_dir():
        print("bench/qrs.py: no records folder (set BIOSIG_DATA_ROOT or --records)",
              file=sys.stderr)
        return 2
    names = [d.strip() for d in args.detectors.split(",") if d.strip()]
    unknown = [d for d in names if d not in DETECTORS]
    if unknown:
        print(f"bench/qrs.py: unknown detectors {unknown}; choose from {list(DETECTORS)}",
              file=sys.stderr)
        return 2
    records = sorted(p.with_suffix("") for p in args.records.glob("*.atr"))
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None

    # warm-up (numba compilation, imports) on 20 s of the first record
    rec0 = wfdb.rdrecord(str(records[0]), channels=[0], sampto=7200)
    for key in names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            DETECTORS[key][1](rec0.p_signal[:, 0].astype(np.float64), float(rec0.fs))

    per = {k: [] for k in names}
    for rec_path in records:
        rec = wfdb.rdrecord(str(rec_path), channels=[0])
        ann = wfdb.rdann(str(rec_path), "atr")
        fs = float(rec.fs)
        x = np.ascontiguousarray(rec.p_signal[:, 0], dtype=np.float64)
        ref = np.array([s for s, sym in zip(ann.sample, ann.symbol) if sym in BEAT_LABELS])
        for key in names:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                det = DETECTORS[key][1](x, fs)
                dt = time.perf_counter() - t0
            c = match_beats(ref / fs, np.asarray(det) / fs, window_s=args.window_s).counts
            per[key].append({"record": rec_path.name, "tp": c.tp, "fn": c.fn, "fp": c.fp,
                             "se": c.se, "ppv": c.ppv, "f1": c.f1, "seconds": dt,
                             "duration_s": x.size / fs})

    summary = {}
    for key in names:
        g = BeatCounts(0, 0, 0)
        for r in per[key]:
            g = g + BeatCounts(r["tp"], r["fn"], r["fp"])
        secs = [r["seconds"] for r in per[key]]
        summary[key] = {"label": DETECTORS[key][0], "tp": g.tp, "fn": g.fn, "fp": g.fp,
                        "se": g.se, "ppv": g.ppv, "f1": g.f1,
                        "seconds_per_record": float(np.mean(secs)), "records": per[key]}
    if "biosig" in summary:
        ours = summary["biosig"]["seconds_per_record"]
        for key in names:
            summary[key]["biosig_speedup"] = summary[key]["seconds_per_record"] / ours

    print(f"QRS detection, {len(records)} records from {args.records}, lead 0, whole records, "
          f"EC57 {args.window_s * 1000:g} ms window")
    head = f"{'detector':<28}{'Se %':>8}{'+P %':>8}{'F1 %':>8}{'s/record':>10}{'vs biosig':>11}"
    print(head)
    print("-" * len(head))
    for key in names:
        s = summary[key]
        sp = f"{s.get('biosig_speedup', float('nan')):.1f}x"
        print(f"{s['label']:<28}{100 * s['se']:>8.2f}{100 * s['ppv']:>8.2f}{100 * s['f1']:>8.2f}"
              f"{s['seconds_per_record']:>10.3f}{sp:>11}")
    print("per record (Se / +P):")
    for i, rec_path in enumerate(records):
        cells = "  ".join(f"{k} {100 * per[k][i]['se']:.2f}/{100 * per[k][i]['ppv']:.2f}"
                          for k in names)
        print(f"  {rec_path.name}: {cells}")

    result = {
        "benchmark": "qrs", "records_dir": str(args.records),
        "records": [p.name for p in records], "lead": 0, "window_s": args.window_s,
        "timing": "wall time of one detector call on the in-memory lead, file reading "
                  "excluded, after a warm-up call; NeuroKit2 includes its ecg_clean",
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "loadavg_at_start": load_start,
                    "note": "shared machine (other jobs running): timings are noisy"},
        "detectors": summary,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
