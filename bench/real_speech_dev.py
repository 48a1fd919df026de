"""Real-speech development set: WER of a Whisper model on speechocean762's dev speakers, adults
and children apart, wideband and through a telephone channel.

The dev set is the manifest's ``split == "valid"`` lines (the corpus's own ``test`` speakers;
``biosig manifest build speechocean762`` writes it). It is what model selection may use
(issue 29); the reserved speakers (id a multiple of 5) are never extracted, and the ``train``
speakers are replay audio, never scored here. Non-native read English (Mandarin L1), 16 kHz:
short sentences, words and digit strings.

Run (decodes are cached per clip in ``--work``, keyed by the model, so a rerun resumes and a
second model decodes only its own clips)::

    HF_HUB_OFFLINE=1 python bench/real_speech_dev.py --manifest /data/corpora/speechocean762.jsonl
    HF_HUB_OFFLINE=1 python bench/real_speech_dev.py --manifest ... --model runs/.../ct2 \\
        --out bench/results/real_speech_dev_<name>.json

Decoding is ``biosig.asr.transcribe``'s default (beam 5, int8), as ``biosig transcribe`` runs
it. The telephone copy is :func:`biosig.synth.dictation.telephone_channel` (pink room noise at a
10-20 dB SNR drawn per clip from its id, 300-3400 Hz, 8 kHz, mu-law): the vocabulary bench's
channel. WER uses the project's normaliser (:func:`biosig.asr.metrics.normalize_text`);
digit strings read digit by digit ("THREE TWO TWO SEVEN") against Whisper's "3227" count as
errors for every model alike.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import zlib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from biosig.asr import load_model, transcribe  # noqa: E402
from biosig.asr.audio import ASR_FS, load_audio  # noqa: E402
from biosig.asr.metrics import error_rates  # noqa: E402
from biosig.synth.dictation import TELEPHONE_FS, telephone_channel  # noqa: E402

CHANNELS = ("wideband", "telephone")


def telephone_copy(x, clip_id: str):
    """The clip through the telephone channel, its noise and SNR drawn from the clip's id."""
    import numpy as np
    rng = np.random.default_rng(zlib.crc32(clip_id.encode()))
    return telephone_channel(x, fs=ASR_FS, snr_db=float(rng.uniform(10.0, 20.0)), rng=rng)


def model_tag(model: str) -> str:
    sys.path.insert(0, str(REPO / "bench"))
    from dictation_vocab import model_tag as tag
    return tag(model)


def dev_records(manifest: Path, *, every: int = 1, age_group: str | None = None):
    """The dev lines (split valid), every ``every``-th utterance of each speaker by id."""
    from biosig.manifests import read_manifest
    by_spk: dict[str, list] = {}
    for r in read_manifest(manifest):
        if r.split != "valid" or not r.text:
            continue
        if age_group and r.labels.get("age_group") != age_group:
            continue
        by_spk.setdefault(r.subject, []).append(r)
    out = []
    for spk in sorted(by_spk):
        out.extend(sorted(by_spk[spk], key=lambda r: r.id)[::every])
    return out


def score(rows: list[dict]) -> dict:
    er = error_rates([r["ref"] for r in rows], [r["hyp"] for r in rows])
    return {"wer": er.wer, "n_utterances": len(rows), "n_ref_words": er.n_ref_words,
            "substitutions": er.substitutions, "deletions": er.deletions,
            "insertions": er.insertions, "decode_s": sum(r["s"] for r in rows),
            "speakers": len({r["speaker"] for r in rows})}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--manifest", type=Path, required=True,
                    help="speechocean762 manifest (biosig manifest build speechocean762).")
    ap.add_argument("--root", type=Path, default=None,
                    help="Corpus root (default: the manifest's folder, where "
                         "data_manifests/README.md builds it).")
    ap.add_argument("--model", default="packaged:whisper-base")
    ap.add_argument("--label", default=None)
    ap.add_argument("--channels", default=",".join(CHANNELS))
    ap.add_argument("--every", type=int, default=1,
                    help="Every k-th utterance of each speaker (1: all).")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=REPO / "work" / "real_speech_dev")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" /
                    "real_speech_dev.json")
    args = ap.parse_args()
    channels = [c for c in args.channels.split(",") if c]
    for c in channels:
        if c not in CHANNELS:
            ap.error(f"--channels: {c!r} is not one of {CHANNELS}")
    if not args.manifest.is_file():
        ap.error(f"--manifest: {args.manifest} not found (biosig manifest build "
                 "speechocean762 CORPUS --out FILE)")
    recs = dev_records(args.manifest, every=args.every)
    if not recs:
        ap.error(f"--manifest: {args.manifest} has no split=valid lines with text")
    args.work.mkdir(parents=True, exist_ok=True)
    cache_path = args.work / f"predictions_{model_tag(args.model)}.jsonl"
    done = {}
    if cache_path.is_file():
        for line in cache_path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                done[(d["channel"], d["id"])] = d
    model = load_model(args.model, compute_type="int8", cpu_threads=args.threads)
    from biosig.progress import track
    jobs = [(c, r) for c in channels for r in recs if (c, r.id) not in done]
    t0 = time.time()
    with open(cache_path, "a", encoding="utf-8") as fh:
        for ch, r in track(jobs, desc=f"real-speech dev ({len(recs)} utterances)", unit="clip"):
            x = load_audio(r.resolve_path(args.root, manifest_dir=args.manifest.parent))
            fs = ASR_FS
            if ch == "telephone":
                x, fs = telephone_copy(x, r.id), TELEPHONE_FS
            t = time.perf_counter()
            hyp = transcribe(x, fs=fs, model=model).text
            d = {"channel": ch, "id": r.id, "hyp": hyp, "s": time.perf_counter() - t}
            fh.write(json.dumps(d) + "\n")
            fh.flush()
            done[(ch, r.id)] = d
    result: dict = {"cells": {}, "per_speaker": {}}
    for ch in channels:
        rows = [{"ref": r.text, "hyp": done[(ch, r.id)]["hyp"], "s": done[(ch, r.id)]["s"],
                 "speaker": r.subject, "group": r.labels.get("age_group")} for r in recs]
        result["cells"][ch] = {"all": score(rows)}
        for g in ("adult", "child"):
            sub = [x for x in rows if x["group"] == g]
            if sub:
                result["cells"][ch][g] = score(sub)
        spk: dict[str, list] = {}
        for x in rows:
            spk.setdefault(x["speaker"], []).append(x)
        result["per_speaker"][ch] = {}
        for s, v in sorted(spk.items()):
            sc = score(v)
            result["per_speaker"][ch][s] = {"wer": sc["wer"], "group": v[0]["group"],
                                            "n_ref_words": sc["n_ref_words"]}
    result.update({
        "command": "HF_HUB_OFFLINE=1 python bench/real_speech_dev.py " + " ".join(sys.argv[1:]),
        "model": args.model, "label": args.label or args.model,
        "dev_set": "speechocean762 split valid (the corpus's test speakers, reserved ones "
                   "never extracted)", "every": args.every,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "threads": args.threads},
        "time_s": time.time() - t0})
    from biosig.fileio import write_text_atomic
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")
    print(f"\n{result['label']}: WER on the speechocean762 dev speakers")
    print(f"{'channel':<12}{'group':<8}{'WER':>8}{'words':>8}{'utts':>7}{'speakers':>10}")
    for ch, cells in result["cells"].items():
        for g, c in cells.items():
            print(f"{ch:<12}{g:<8}{100 * c['wer']:>7.2f}%{c['n_ref_words']:>8}"
                  f"{c['n_utterances']:>7}{c['speakers']:>10}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
