"""Heart-cycle segmentation on CirCor 2022: the logistic-regression HSMM (Springer et al. 2016,
:func:`biosig.pcg.pcg_segment`) next to an envelope peak-picking baseline, S1 and S2 Se/PPV/F1
(60 ms centre tolerance, annotated stretch only) on the patient-wise valid and test splits.

    biosig manifest build circor2022 /data/corpora/circor2022 --out /tmp/circor2022.jsonl
    python bench/pcg_segment.py --manifest /tmp/circor2022.jsonl \\
        --root /data/corpora/circor2022 [--train] [--cache /tmp/pcgseg_cache]

``--train`` fits the emission and duration models on split ``train`` and writes them to the
package's weights file (``biosig/pcg/weights/springer2016_circor2022.json``); without it the
shipped weights are evaluated. Writes ``bench/results/pcg_segment.json`` and
``bench/results/pcg_segment.png``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _cached_examples(manifest: Path, root: Path | None, cache: Path) -> dict:
    """Envelopes, usable mask, reference rows and split of every annotated recording, cached
    as one ``.npz`` per recording (the cache is a pure function of the recording)."""
    from biosig.errors import InputError
    from biosig.io import load
    from biosig.manifests import read_circor_segmentation, read_manifest
    from biosig.pcg import as_state_intervals, pcg_envelopes
    cache.mkdir(parents=True, exist_ok=True)
    out, skipped = {}, []
    for rec in read_manifest(manifest):
        seg = (rec.annotations or {}).get("segmentation")
        if not seg:
            continue
        f = cache / f"{rec.id}.npz"
        if f.is_file():
            z = np.load(f)
            out[rec.id] = {k: z[k] for k in z.files} | {"split": rec.split, "cached": True}
            continue
        wav = rec.resolve_path(root, manifest_dir=manifest.parent)
        try:
            ref = as_state_intervals(read_circor_segmentation(wav.with_suffix(".tsv")))
        except InputError as exc:  # CirCor ships a few malformed .tsv files
            skipped.append(str(exc))
            continue
        sig = load(wav, annotations=False)
        env = pcg_envelopes(sig.data[0], fs=sig.fs)
        d = {"values": env.values, "usable": env.usable, "ref": ref,
             "n_samples": np.int64(sig.data.shape[1]), "fs": np.float64(sig.fs)}
        np.savez(f, **d)
        out[rec.id] = d | {"split": rec.split}
    for reason in skipped:
        print(f"skipped (segmentation unreadable): {reason}")
    return out


def peak_baseline(homomorphic: np.ndarray, *, fs: float, duration_s: float,
                  s1_s: float = 0.13, s2_s: float = 0.11) -> np.ndarray:
    """Envelope peak picking with duration rules: peaks of the homomorphic envelope at least
    200 ms apart and above its median; a peak is S1 when the interval that follows it is the
    shorter of its two neighbours (systole is shorter than diastole), else S2; each sound is a
    fixed-length interval centred on its peak. Returns ``[start_s, end_s, state]`` rows."""
    import scipy.signal
    e = np.asarray(homomorphic, dtype=np.float64)
    peaks, _ = scipy.signal.find_peaks(e, distance=max(1, int(0.2 * fs)), height=np.median(e))
    rows = []
    t = peaks / fs
    for i, c in enumerate(t):
        nxt = t[i + 1] - c if i + 1 < t.size else np.inf
        prv = c - t[i - 1] if i > 0 else np.inf
        if not np.isfinite(nxt) and not np.isfinite(prv):
            continue
        is_s1 = nxt < prv
        half = (s1_s if is_s1 else s2_s) / 2
        rows.append([max(0.0, c - half), min(duration_s, c + half), 1.0 if is_s1 else 3.0])
    return np.asarray(rows).reshape(-1, 3)


def _evaluate(examples: dict, ids: list[str], weights) -> tuple:
    from biosig.pcg import (
        PcgEnvelopes,
        evaluate_pcg_segmentation,
        states_to_intervals,
    )
    from biosig.pcg.segment import decode_pcg_states
    pairs, base_pairs, detected = [], [], {}
    t0 = time.perf_counter()
    for rid in ids:
        ex = examples[rid]
        env = PcgEnvelopes(ex["values"], 50.0, ex["usable"].astype(bool))
        states, _ = decode_pcg_states(env, weights=weights)
        dur = float(ex["n_samples"]) / float(ex["fs"])
        det = states_to_intervals(states, fs=50.0, duration_s=dur)
        detected[rid] = det
        pairs.append((ex["ref"], det))
        base_pairs.append((ex["ref"], peak_baseline(ex["values"][0], fs=50.0, duration_s=dur)))
    decode_s = time.perf_counter() - t0
    return (evaluate_pcg_segmentation(pairs), evaluate_pcg_segmentation(base_pairs), detected,
            decode_s)


def _plot(path: Path, rid: str, wav: Path, ref: np.ndarray, det: np.ndarray, scores: dict):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from biosig.io import load
    sig = load(wav, annotations=False)
    x = sig.data[0]
    t = np.arange(x.size) / sig.fs
    lo, hi = 2.0, 8.0
    fig, axes = plt.subplots(2, 1, figsize=(11, 6.5), gridspec_kw={"height_ratios": [2.2, 1]})
    ax = axes[0]
    m = (t >= lo) & (t < hi)
    ax.plot(t[m], x[m] / (np.abs(x[m]).max() or 1), color="0.3", lw=0.5)
    colours = {1: "tab:red", 2: "tab:orange", 3: "tab:blue", 4: "tab:green"}
    names = {1: "S1", 2: "systole", 3: "S2", 4: "diastole"}
    for y0, rows, lab in ((1.15, ref, "reference"), (-1.45, det, "detected")):
        for a, b, s in rows:
            if s > 0 and b > lo and a < hi:
                ax.axvspan(max(a, lo), min(b, hi), ymin=(y0 + 1.6) / 3.2,
                           ymax=(y0 + 1.6 + 0.3) / 3.2, color=colours[int(s)], lw=0)
        ax.text(lo, y0 + 0.32, lab, fontsize=8)
    for s, c in colours.items():
        ax.plot([], [], color=c, lw=6, label=names[s])
    ax.set_ylim(-1.6, 1.6)
    ax.set_xlim(lo, hi)
    ax.set_xlabel("time (s)")
    ax.set_title(f"CirCor {rid} (test split): reference (top) vs detected (bottom) states")
    ax.legend(loc="upper right", ncol=4, fontsize=8)
    ax = axes[1]
    labels, vals = [], []
    for split in ("valid", "test"):
        for model in ("hsmm", "baseline"):
            for snd in ("S1", "S2"):
                labels.append(f"{split}\n{model}\n{snd}")
                vals.append(scores[split][model][snd]["f1"])
    bars = ax.bar(range(len(vals)), vals,
                  color=["tab:red", "tab:blue", "salmon", "lightblue"] * 2)
    for b, v in zip(bars, vals, strict=True):
        ax.text(b.get_x() + b.get_width() / 2, v + 0.01, f"{v:.3f}", ha="center", fontsize=7)
    ax.axhline(0.95, color="k", ls="--", lw=0.8)
    ax.set_xticks(range(len(vals)))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("F1 (60 ms)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--root", type=Path, default=None)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/pcgseg_cache"))
    ap.add_argument("--train", action="store_true", help="fit on split train and write the "
                                                          "package's weights file")
    ap.add_argument("--c", type=float, default=1.0, help="inverse L2 strength (sklearn C)")
    ap.add_argument("--hidden", default=None,
                    help="hidden sizes of the emission MLP, e.g. 64,32; 'none' for the "
                         "logistic regression (default: the library's DEFAULT_HIDDEN)")
    ap.add_argument("--emission-scales", default="0.5,0.75,1.0",
                    help="emission weights tried on split valid; the best is stored")
    ap.add_argument("--weights-out", type=Path, default=None,
                    help="where --train writes (default: the package's weights file)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "pcg_segment.json")
    args = ap.parse_args(argv)

    import dataclasses

    import biosig
    from biosig.pcg import PcgSegmenterWeights, fit_pcg_segmenter, reference_frame_states
    from biosig.pcg.segment import DEFAULT_WEIGHTS
    from biosig.pcg.training import DEFAULT_CONTEXT, DEFAULT_HIDDEN

    t0 = time.perf_counter()
    examples = _cached_examples(args.manifest, args.root, args.cache)
    features_s = time.perf_counter() - t0
    by_split = {s: sorted(k for k, v in examples.items() if v["split"] == s)
                for s in ("train", "valid", "test")}
    print(f"{len(examples)} annotated recordings: "
          + ", ".join(f"{s} {len(v)}" for s, v in by_split.items())
          + f"; envelopes {features_s:.1f} s")
    train_s = None
    if args.train:
        t1 = time.perf_counter()
        envs, states, refs = [], [], []
        for rid in by_split["train"]:
            ex = examples[rid]
            st = reference_frame_states(ex["ref"], n_frames=ex["values"].shape[1])
            st[~ex["usable"].astype(bool)] = 0
            envs.append(ex["values"])
            states.append(st)
            refs.append(ex["ref"])
        hidden = DEFAULT_HIDDEN if args.hidden is None else (
            () if args.hidden == "none" else tuple(int(h) for h in args.hidden.split(",")))
        weights = fit_pcg_segmenter(
            envs, states, refs, c=args.c, hidden=hidden, context=DEFAULT_CONTEXT,
            meta={"corpus": "circor2022", "split": "train", "recordings": len(envs),
                  "patients": len({r.split("_")[0] for r in by_split["train"]}),
                  "biosig": biosig.__version__})
        train_s = time.perf_counter() - t1
        # the one setting chosen on split valid: the emissions' weight in the decoder
        tried = {}
        for es in (float(v) for v in args.emission_scales.split(",")):
            ev = _evaluate(examples, by_split["valid"], dataclasses.replace(
                weights, emission_scale=es))[0]
            tried[es] = (ev.s1.f1 + ev.s2.f1) / 2
            print(f"valid, emission_scale {es:g}: mean S1/S2 F1 {tried[es]:.4f}")
        best = max(tried, key=tried.get)
        weights = dataclasses.replace(weights, emission_scale=best)
        weights.meta["emission_scale_on_valid"] = {f"{k:g}": round(v, 4)
                                                   for k, v in tried.items()}
        weights.meta["training_time_s"] = round(train_s, 1)
        out_w = args.weights_out or (HERE.parent / "biosig" / "pcg" / "weights" / DEFAULT_WEIGHTS)
        weights.save(out_w)
        print(f"trained on {len(envs)} recordings in {train_s:.1f} s "
              f"(+ envelopes); weights -> {out_w}")
    else:
        weights = PcgSegmenterWeights.load(args.weights_out)
    scores, detected_test = {}, {}
    for split in ("valid", "test"):
        ev, base, detected, decode_s = _evaluate(examples, by_split[split], weights)
        scores[split] = {"hsmm": ev.to_dict(), "baseline": base.to_dict(),
                         "decode_s": round(decode_s, 2)}
        print(f"{split:5s} HSMM     {ev}")
        print(f"{split:5s} baseline {base}")
        if split == "test":
            detected_test = detected
    # example figure: the test recording whose S1+S2 F1 is closest to the split's median
    from biosig.pcg import compare_heart_sounds
    per = []
    for rid, det in detected_test.items():
        c = compare_heart_sounds(examples[rid]["ref"], det)
        if c.s1.tp + c.s1.fn >= 8:
            per.append(((c.s1.f1 + c.s2.f1) / 2, rid))
    per.sort()
    rid = per[len(per) // 2][1]
    root = args.root or args.manifest.parent
    wav = root / "training_data" / f"{rid}.wav"
    png = args.out.with_suffix(".png")
    _plot(png, rid, wav, examples[rid]["ref"], detected_test[rid], scores)
    result = {
        "task": "PCG heart-cycle segmentation (S1, systole, S2, diastole)",
        "corpus": "CirCor 2022 development portion, patient-wise splits of biosig manifest "
                  "build (seed 0)",
        "criterion": "a reference S1/S2 is found when a detected sound of the same kind has its "
                     "centre within 60 ms; detections outside the annotated stretch ignored; "
                     "counts pooled over recordings",
        "recordings": {s: len(v) for s, v in by_split.items()},
        "method": "springer2016 HSMM (biosig.pcg.pcg_segment), emission "
                  + (f"MLP {list(weights.meta.get('hidden'))}" if weights.meta.get("hidden")
                     else "logistic regression") + " on +-240 ms of the four envelopes",
        "baseline": "homomorphic-envelope peak picking, S1/S2 by the shorter following "
                    "interval (bench/pcg_segment.py:peak_baseline)",
        "weights": {"context": list(weights.context), "durations": weights.durations,
                    "meta": weights.meta},
        "scores": scores,
        "envelopes_s": round(features_s, 1),
        "envelopes_from_cache": sum(bool(v.get("cached")) for v in examples.values()),
        "training_s": None if train_s is None else round(train_s, 1),
        "example_figure": {"record": rid, "png": png.name},
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "biosig": biosig.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"written: {args.out}, {png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
