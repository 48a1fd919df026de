"""A speaker's own texts as decoding context, without an adapter (issue 29, item 3): WER of
base Whisper on each speaker's test half, plain and with context from the enrollment half.

Run (about 2 min per speaker on 2 cores)::

    HF_HUB_OFFLINE=1 python bench/enroll_context.py \
        --manifest /data/corpora/speechocean762.jsonl --split train --speakers 5
    # -> bench/results/enroll_context.json

The speakers, halves and decoding are :mod:`bench/enroll.py`'s (``biosig transcribe``'s
defaults: int8, beam 5, VAD). Context, from the enrollment half's texts in sentence case:

- ``prompt``: the sentences as the decoder's prompt (``DecodeOptions.initial_prompt``);
- ``prompt_guarded``: the same, falling back to the plain decode where
  :func:`biosig.asr.vocab.prompted_decode_guard` rejects it (the ``--vocab`` guard);
- ``vocab``: the texts' distinct words of five or more letters as a ``--vocab`` list.

Figures: per speaker and variant the WER, and per variant the mean relative WER reduction
against plain, the worst change in points and how many speakers got worse.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from enroll import select, sentence_case, speakers_of  # noqa: E402

from biosig.asr import DecodeOptions, load_model, transcribe_file  # noqa: E402
from biosig.asr.metrics import error_rates  # noqa: E402
from biosig.asr.vocab import Vocabulary, prompted_decode_guard  # noqa: E402
from biosig.fileio import write_json_atomic  # noqa: E402
from biosig.manifests import resolve_path  # noqa: E402

VARIANTS = ("plain", "prompt", "prompt_guarded", "vocab")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="packaged:whisper-base")
    ap.add_argument("--manifest", type=Path, required=True)
    ap.add_argument("--split", default="train", help="train: tuning speakers; valid: dev")
    ap.add_argument("--speakers", type=int, default=5, help="first N of enroll.py's order")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/enroll_context.json")
    args = ap.parse_args(argv)
    if not args.manifest.is_file():
        ap.error(f"--manifest: {args.manifest} not found (biosig manifest build "
                 "speechocean762 writes it)")
    root = args.manifest.with_suffix("")
    speakers = speakers_of(args.manifest, args.split)
    model = load_model(args.model, compute_type="int8", cpu_threads=args.threads)
    opts = DecodeOptions(language="en", beam_size=5, word_timestamps=True, vad=True)
    rows = []
    for k, spk in enumerate(select(speakers, args.speakers)):
        utts = speakers[spk]
        enroll_u, test_u = utts[:len(utts) // 2], utts[len(utts) // 2:]
        prompt = " ".join(sentence_case(u["text"]) for u in enroll_u)
        words = sorted({w for u in enroll_u for w in re.findall(r"[a-z']+", u["text"].lower())
                        if len(w) >= 5})
        vocab = Vocabulary(words) if words else None
        hyps = {v: [] for v in VARIANTS}
        for u in test_u:
            path = resolve_path(u["path"], root=root)
            plain = transcribe_file(path, model=model, options=opts)
            prompted = transcribe_file(path, model=model,
                                       options=opts.replace(initial_prompt=prompt))
            rejected = prompted_decode_guard(plain, prompted, [], audio_s=plain.duration_s)
            hyps["plain"].append(plain.text)
            hyps["prompt"].append(prompted.text)
            hyps["prompt_guarded"].append(plain.text if rejected else prompted.text)
            hyps["vocab"].append(plain.text if vocab is None else transcribe_file(
                path, model=model, options=opts, vocab=vocab).text)
        refs = [u["text"] for u in test_u]
        row = {"speaker": spk, "age_group": utts[0]["labels"].get("age_group"),
               "n_test_words": error_rates(refs, hyps["plain"]).n_ref_words,
               "n_vocab_terms": len(words),
               "wer": {v: error_rates(refs, hyps[v]).wer for v in VARIANTS}}
        rows.append(row)
        print(f"[{k + 1}] speaker {spk} ({row['age_group']}): "
              + ", ".join(f"{v} {100 * w:.1f} %" for v, w in row["wer"].items()), flush=True)

    def summary(v):
        ch = [r["wer"][v] - r["wer"]["plain"] for r in rows]
        rel = [0.0 if r["wer"]["plain"] == 0 else -c / r["wer"]["plain"]
               for r, c in zip(rows, ch)]
        return {"mean_relative_wer_reduction": sum(rel) / len(rel),
                "worst_change_points": 100 * max(ch),
                "n_worse": sum(c > 0 for c in ch), "n_better": sum(c < 0 for c in ch)}

    out = {"what": "base Whisper on each speaker's test half, plain and with context from "
                   "the same speaker's enrollment texts (speechocean762, " + args.split
                   + " speakers)",
           "command": " ".join(["python", "bench/enroll_context.py", *(argv or sys.argv[1:])]),
           "model": args.model, "rows": rows,
           "summary": {v: summary(v) for v in VARIANTS[1:]}}
    write_json_atomic(args.out, out)
    for v, s in out["summary"].items():
        print(f"{v}: mean relative reduction {100 * s['mean_relative_wer_reduction']:.1f} %, "
              f"worst {s['worst_change_points']:+.1f} pts, {s['n_worse']} worse, "
              f"{s['n_better']} better")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
