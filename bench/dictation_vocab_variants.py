"""Does ``--vocab`` hold on every CPU? The vocabulary bench under several CTranslate2 backends
and instruction sets, with the spread between them.

CTranslate2 picks its GEMM backend by CPU vendor (``CT2_USE_MKL=1``: Intel MKL, the default on
Intel; ``0``: oneDNN, the default elsewhere) and its kernels by instruction set
(``CT2_FORCE_CPU_ISA=GENERIC|AVX2|AVX512``). int8 decodes differ between them, and so did which
terms the biasing found (issue 29: a test passed on one machine and failed on another). This
runs ``bench/dictation_vocab.py`` (conditions ``plain`` and ``vocab``, the same held-out voices,
sentences and channels) once per variant, each in its own process, and writes per variant and
per voice/channel the WER and term recall, the spread (max - min over variants) and the worst
variant's figure, on which the biasing is judged::

    HF_HUB_OFFLINE=1 python bench/dictation_vocab_variants.py \\
        --variants 1/AVX512,0/AVX512,1/AVX2,0/GENERIC
    # -> bench/results/dictation_vocab_variants.json and .png

Each variant's predictions are cached in ``--work`` (the variant is part of the cache's name),
so a rerun resumes; an instruction set the CPU lacks is reported by CTranslate2 and the variant
is skipped. Figures from one machine: the CPU's name is in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_VARIANTS = "1/AVX512,0/AVX512,1/AVX2,0/GENERIC"


def parse_variant(text: str) -> tuple[str, str]:
    """``"0/AVX2"`` -> ("0", "AVX2"); ValueError naming the text otherwise."""
    mkl, _, isa = text.partition("/")
    if mkl not in ("0", "1") or isa.upper() not in ("GENERIC", "AVX", "AVX2", "AVX512",
                                                      "NEON"):
        raise ValueError(f"--variants: {text!r} is not MKL/ISA such as 0/AVX2 (MKL 0 or 1; "
                         "ISA GENERIC, AVX, AVX2, AVX512 or NEON)")
    return mkl, isa.upper()


def summarize(per_variant: dict[str, dict]) -> dict:
    """Per voice/channel: each variant's plain and vocab WER and recall, their spread and the
    worst variant's (highest WER, lowest recall)."""
    cells: dict[str, dict] = {}
    for v, res in per_variant.items():
        for group, conds in list(res["dictation"].items()) + list(res["real_speech"].items()):
            for cond in ("plain", "vocab", "vocab+correct"):
                if cond not in conds:
                    continue
                c = cells.setdefault(group, {}).setdefault(cond, {"wer": {}, "term_recall": {}})
                c["wer"][v] = conds[cond]["wer"]
                if conds[cond]["term_recall"] is not None:
                    c["term_recall"][v] = conds[cond]["term_recall"]
    for conds in cells.values():
        for c in conds.values():
            w, r = c["wer"], c["term_recall"]
            c["wer_spread"] = max(w.values()) - min(w.values())
            c["wer_worst"] = max(w.values())
            if r:
                c["recall_spread"] = max(r.values()) - min(r.values())
                c["recall_worst"] = min(r.values())
    return cells


def plot(cells: dict, variants: list[str], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from biosig.plot import save_png
    groups = [g for g in cells if "vocab" in cells[g]]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, key, label in ((axes[0], "wer", "WER (%)"), (axes[1], "term_recall",
                                                         "term recall with --vocab (%)")):
        w = 0.8 / max(len(variants), 1)
        for k, v in enumerate(variants):
            vals = [100 * cells[g]["vocab"][key].get(v, float("nan")) for g in groups]
            xs = [i - 0.4 + w * (k + 0.5) for i in range(len(groups))]
            ax.bar(xs, vals, w, label=f"MKL={v.replace('/', ', ISA=')}")
        if key == "wer":
            for i, g in enumerate(groups):       # plain decode's worst variant, for scale
                ax.plot([i - 0.4, i + 0.4], [100 * cells[g]["plain"]["wer_worst"]] * 2,
                        "k--", lw=0.8, label="plain, worst variant" if i == 0 else None)
        ax.set_xticks(range(len(groups)), [g.replace("espeak-", "") for g in groups],
                      fontsize=8, rotation=10)
        ax.set_ylabel(label)
    axes[1].axhline(80, color="k", lw=0.8, ls=":")
    axes[0].legend(fontsize=7)
    fig.suptitle("--vocab under CTranslate2 backends (MKL / oneDNN) and instruction sets, "
                 "Whisper base int8")
    fig.tight_layout()
    save_png(fig, path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default=DEFAULT_VARIANTS,
                    help="Comma-separated MKL/ISA pairs (default: %(default)s).")
    ap.add_argument("--model", default="packaged:whisper-base")
    ap.add_argument("--sentences", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=REPO / "work" / "dictation_vocab")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" /
                    "dictation_vocab_variants.json")
    args = ap.parse_args()
    try:
        variants = [parse_variant(v) for v in args.variants.split(",") if v]
    except ValueError as exc:
        ap.error(str(exc))
    per_dir = args.out.with_suffix("")
    per_dir.mkdir(parents=True, exist_ok=True)
    per_variant, failed = {}, {}
    t0 = time.time()
    for mkl, isa in variants:
        name = f"{mkl}/{isa}"
        out = per_dir / f"mkl{mkl}-{isa.lower()}.json"
        env = {**os.environ, "CT2_USE_MKL": mkl, "CT2_FORCE_CPU_ISA": isa,
               "HF_HUB_OFFLINE": "1"}
        cmd = [sys.executable, str(REPO / "bench" / "dictation_vocab.py"), "--conditions",
               "plain,vocab", "--model", args.model, "--sentences", str(args.sentences),
               "--threads", str(args.threads), "--work", str(args.work), "--out", str(out),
               "--label", f"Whisper, CT2 MKL={mkl} ISA={isa}"]
        print(f"== variant {name}", flush=True)
        proc = subprocess.run(cmd, env=env)
        if proc.returncode != 0 or not out.is_file():
            failed[name] = f"exit status {proc.returncode}"
            continue
        per_variant[name] = json.loads(out.read_text())
    if not per_variant:
        print("no variant ran", file=sys.stderr)
        return 1
    cells = summarize(per_variant)
    first = next(iter(per_variant.values()))
    result = {
        "command": "HF_HUB_OFFLINE=1 python bench/dictation_vocab_variants.py "
                   + " ".join(sys.argv[1:]),
        "model": args.model, "variants": list(per_variant), "failed": failed,
        "cpu": first["machine"].get("cpu"), "threads": args.threads,
        "sentences": args.sentences, "cells": cells, "time_s": time.time() - t0,
        "per_variant_files": {v: str((per_dir / f"mkl{v.split('/')[0]}-"
                                      f"{v.split('/')[1].lower()}.json").relative_to(REPO))
                              for v in per_variant},
    }
    dict_cells = {g: c for g, c in cells.items() if g != "real read speech"}
    result["checks"] = {
        "vocab_recall_worst_variant_min": min(c["vocab"]["recall_worst"]
                                              for c in dict_cells.values()),
        "vocab_wer_below_plain_every_variant_and_cell": all(
            c["vocab"]["wer"][v] < c["plain"]["wer"][v]
            for c in dict_cells.values() for v in c["vocab"]["wer"]),
    }
    rs = cells.get("real read speech")
    if rs:
        result["checks"]["real_speech_not_raised_every_variant"] = all(
            rs["vocab"]["wer"][v] <= rs["plain"]["wer"][v] for v in rs["vocab"]["wer"])
    from biosig.fileio import write_text_atomic
    write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")
    plot(cells, list(per_variant), args.out.with_suffix(".png"))
    print(f"\n{'voice / channel':<28}{'condition':<10}" + "".join(f"{v:>16}" for v in
                                                                 per_variant)
          + f"{'spread':>10}{'worst':>10}")
    for g, conds in cells.items():
        for cond in ("plain", "vocab"):
            c = conds.get(cond)
            if c is None:
                continue
            row = "".join(
                f"{100 * c['wer'][v]:>8.1f}%" + (f" {100 * c['term_recall'][v]:>4.0f}%t"
                                                 if v in c["term_recall"] else " " * 7)
                for v in per_variant)
            print(f"{g:<28}{cond:<10}{row}{100 * c['wer_spread']:>9.1f}%"
                  f"{100 * c['wer_worst']:>9.1f}%"
                  + (f"  recall spread {100 * c['recall_spread']:.0f} pts, worst "
                     f"{100 * c['recall_worst']:.0f}%" if "recall_worst" in c else ""))
    for k, v in result["checks"].items():
        print(f"{k}: {v}")
    if failed:
        print(f"variants that did not run: {failed}")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
