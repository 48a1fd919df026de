"""Per-clinician enrollment (issue 29, item 3): WER before/after a speaker adapter, per speaker.

Run (a few minutes per speaker on 2 shared cores; resumable)::

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python bench/enroll.py \
        --manifest /data/corpora/speechocean762.jsonl --speakers 12 --resume
    # -> bench/results/enroll.json, bench/results/enroll.png, bench/results/enroll_cache.jsonl

Data: speechocean762 (read English sentences by Mandarin speakers, adults and children; the
manifest of ``biosig manifest build speechocean762``). ``--split valid`` (default) is its test
speakers, our dev speakers; the enrollment settings were chosen on ``--split train`` only.

For each speaker: its utterances sorted by id; the first half is written as an enrollment
folder (``<utt>.wav`` linked, ``<utt>.txt`` the reference in sentence case: the corpus writes
upper case, a clinician would not) and enrolled with :func:`biosig.train.whisper.enroll_speaker`;
the second half is transcribed by the base model and by the speaker's model through
:func:`biosig.asr.transcribe_file` with ``biosig transcribe``'s defaults (int8, beam 5, VAD)
and scored with :func:`biosig.asr.metrics.error_rates` (the project's normalisation). One JSON
line per speaker goes to the cache, so ``--resume`` skips the speakers done with the same
settings.

Speakers: each age group sorted by speaker id, children and adults taken alternately; the
first ``--speakers N`` of that order (all with ``--speakers 0``). The rule never looks at
results.

Figures: the relative WER reduction per speaker ``(before - after) / before``, its mean over
speakers (and over adults and children apart), the worst change in points, enrollment time
mean and max.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from biosig.asr import DecodeOptions, load_model, transcribe_file  # noqa: E402
from biosig.asr.metrics import error_rates  # noqa: E402
from biosig.config import describe_validation_error  # noqa: E402,F401
from biosig.errors import ConfigError  # noqa: E402
from biosig.fileio import atomic_path, write_text_atomic  # noqa: E402
from biosig.manifests import resolve_path  # noqa: E402
from biosig.train.config import parse_override  # noqa: E402
from biosig.train.whisper.enroll import EnrollSettings, enroll_speaker  # noqa: E402


def sentence_case(text: str) -> str:
    """``"WE CALL IT BEAR"`` -> ``"We call it bear."`` (``I`` and ``I'M`` stay capital)."""
    words = text.strip().lower().split()
    words = [w.upper() if w == "i" else ("I" + w[1:] if w.startswith("i'") else w)
             for w in words]
    out = " ".join(words)
    out = out[:1].upper() + out[1:]
    return out if out.endswith((".", "?", "!")) else out + "."


def speakers_of(manifest: Path, split: str) -> dict[str, list[dict]]:
    spk: dict[str, list[dict]] = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        d = json.loads(line)
        if d.get("split") == split and d.get("text"):
            spk.setdefault(d["subject"], []).append(d)
    return {k: sorted(v, key=lambda d: d["id"]) for k, v in spk.items()}


def select(speakers: dict[str, list[dict]], n: int) -> list[str]:
    """Children and adults alternately, each group sorted by speaker id; the first ``n``."""
    groups = {g: sorted(s for s, u in speakers.items() if u[0]["labels"].get("age_group") == g)
              for g in ("child", "adult")}
    order, i = [], 0
    while any(i < len(v) for v in groups.values()):
        for g in ("child", "adult"):
            if i < len(groups[g]):
                order.append(groups[g][i])
        i += 1
    return order if n <= 0 else order[:n]


def transcribe_all(model, utts, opts, root: Path) -> list[str]:
    return [transcribe_file(resolve_path(u["path"], root=root), model=model, options=opts).text
            for u in utts]


def summarize(rows: list[dict]) -> dict:
    import numpy as np

    def rel(r):
        b, a = r["wer_before"], r["wer_after"]
        return 0.0 if b == 0 else (b - a) / b

    def pooled(rs, key):
        n = sum(r["n_test_words"] for r in rs)
        return float(sum(r[key] * r["n_test_words"] for r in rs) / n) if n else None

    def block(rs):
        if not rs:
            return None
        rels = [rel(r) for r in rs]
        ch = [100 * (r["wer_after"] - r["wer_before"]) for r in rs]
        return {"n_speakers": len(rs),
                "mean_relative_wer_reduction": float(np.mean(rels)),
                "median_relative_wer_reduction": float(np.median(rels)),
                "worst_change_points": float(max(ch)),
                "n_worse_by_more_than_1_point": int(sum(c > 1.0 for c in ch)),
                "mean_wer_before": float(np.mean([r["wer_before"] for r in rs])),
                "mean_wer_after": float(np.mean([r["wer_after"] for r in rs])),
                # all the speakers' test words together (errors / words)
                "pooled_wer_before": pooled(rs, "wer_before"),
                "pooled_wer_after": pooled(rs, "wer_after"),
                "enroll_s_mean": float(np.mean([r["enroll_s"] for r in rs])),
                "enroll_s_max": float(max(r["enroll_s"] for r in rs))}

    return {"all": block(rows),
            "adults": block([r for r in rows if r["age_group"] == "adult"]),
            "children": block([r for r in rows if r["age_group"] == "child"])}


def plot(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(rows) + 2), 4))
    ax.bar(x - 0.2, [100 * r["wer_before"] for r in rows], 0.4, label="base model")
    ax.bar(x + 0.2, [100 * r["wer_after"] for r in rows], 0.4, label="speaker model")
    ax.set_xticks(x, [f"{r['speaker']}\n{r['age_group'][0]}" for r in rows], fontsize=7)
    ax.set_ylabel("WER (%) on the speaker's held-out half")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def cached_rows(cache: Path, args, settings) -> dict:
    """The cache's rows of these ``--tag``, ``--split`` and settings, by speaker (the last
    row of a speaker wins). A row's settings match once the schema fills the keys it predates
    with their defaults (a setting added later, e.g. ``holdout``, matches at its default)."""
    def same(saved) -> bool:
        try:
            return EnrollSettings.validate_mapping(saved or {}, source=str(cache)) == settings
        except ConfigError:
            return False

    rows: dict = {}
    if cache.is_file():
        for line in cache.read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            if r.get("tag") == args.tag and r.get("split") == args.split \
                    and same(r.get("settings")):
                rows[r["speaker"]] = r
    return rows


def report(args, argv, settings, cache, speakers, chosen, done) -> None:
    """Write ``--out`` (JSON) and its plot from every row of the cache for ``chosen``."""
    for spk, r in cached_rows(cache, args, settings).items():   # the other shards' rows
        done.setdefault(spk, r)
    rows = [done[s] for s in chosen if s in done]
    summ = summarize(rows)
    given = list(argv or sys.argv[1:])
    if "--shard" in given:                  # the same command whichever shard wrote last
        i = given.index("--shard")
        del given[i:i + 2]
    given = [a for a in given if a != "--report-only"]
    cmd = "python bench/enroll.py " + " ".join(shlex.quote(a) for a in given)
    total = len(speakers)
    result = {
        "what": "per-speaker enrollment on speechocean762: enroll on the first half of each "
                "speaker's utterances (sorted by id), WER on the second half, base vs speaker "
                "model (int8, beam 5, VAD: biosig transcribe's defaults)",
        "split": args.split, "tag": args.tag,
        "speakers_rule": "each age group sorted by speaker id, children and adults "
                         f"alternately, the first {args.speakers or total}",
        "speakers_done": "the speakers of that order finished when this was written (they "
                         "run in that order, in --shard processes)",
        "n_speakers": len(rows), "n_speakers_in_split": total,
        "partial": len(rows) < total,
        "model": args.model, "settings": settings.model_dump(mode="json"),
        "summary": summ, "speakers": rows, "command": cmd,
        "machine": {"cpu_threads": args.threads, "cpu_count": os.cpu_count(),
                    "platform": platform.platform()},
    }
    write_text_atomic(args.out, json.dumps(result, indent=1) + "\n")
    a = summ["all"]
    if a:
        title = (f"speechocean762 {args.split}: {len(rows)} of {total} speakers"
                 f"{' (partial)' if len(rows) < total else ''}\nmean relative WER reduction "
                 f"{100 * a['mean_relative_wer_reduction']:.1f} %, worst speaker "
                 f"{a['worst_change_points']:+.1f} pts")
        plot(rows, args.out.with_suffix(".png"), title)
        print(title.replace("\n", "; "))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="packaged:whisper-base")
    ap.add_argument("--manifest", type=Path, required=True,
                    help="speechocean762 manifest (biosig manifest build speechocean762)")
    ap.add_argument("--root", type=Path, default=None,
                    help="corpus root the manifest's paths are relative to (default: the "
                         "folder beside the manifest with its name, e.g. "
                         "corpora/speechocean762 for corpora/speechocean762.jsonl)")
    ap.add_argument("--split", default="valid", help="valid: the dev speakers; train: tuning")
    ap.add_argument("--speakers", type=int, default=12, help="first N of the order (0: all)")
    ap.add_argument("--set", action="append", default=[], dest="overrides",
                    help="EnrollSettings key=value (e.g. lr=5e-4)")
    ap.add_argument("--tag", default="default", help="name of these settings in the cache")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--report-only", action="store_true",
                    help="write the JSON and plot from the cache; enroll nobody")
    ap.add_argument("--shard", default="0/1",
                    help="K/N: enroll only every N-th chosen speaker from the K-th (run N "
                         "processes on one cache; the report covers every speaker in it)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/enroll.json")
    ap.add_argument("--cache", type=Path, default=None,
                    help="default: <out stem>_cache.jsonl beside --out")
    args = ap.parse_args(argv)
    if not args.manifest.is_file():
        ap.error(f"--manifest: {args.manifest} not found (biosig manifest build "
                 "speechocean762 writes it)")
    root = args.root or args.manifest.with_suffix("")
    if not root.is_dir():
        ap.error(f"--root: {root} is not a folder (the corpus the manifest's paths are in)")
    import torch
    torch.set_num_threads(args.threads)
    settings = EnrollSettings.validate_mapping(dict(parse_override(t) for t in args.overrides),
                                               source="--set")
    cache = args.cache or args.out.with_name(args.out.stem + "_cache.jsonl")
    speakers = speakers_of(args.manifest, args.split)
    chosen = select(speakers, args.speakers)
    done = cached_rows(cache, args, settings) if args.resume else {}
    opts = DecodeOptions(language="en", beam_size=5, word_timestamps=True, vad=True)
    base = None if args.report_only else load_model(args.model, compute_type="int8",
                                                     cpu_threads=args.threads)
    shard_k, shard_n = (int(x) for x in args.shard.split("/"))
    for k, spk in enumerate(chosen):
        if args.report_only or spk in done or k % shard_n != shard_k:
            continue
        utts = speakers[spk]
        half = len(utts) // 2
        enroll_u, test_u = utts[:half], utts[half:]
        t0 = time.perf_counter()
        refs = [u["text"] for u in test_u]
        before = error_rates(refs, transcribe_all(base, test_u, opts, root))
        with tempfile.TemporaryDirectory(prefix="enroll-bench-") as tmp:
            tmp = Path(tmp)
            folder = tmp / "recordings"
            folder.mkdir()
            for u in enroll_u:
                stem = u["id"]
                (folder / f"{stem}.wav").symlink_to(resolve_path(u["path"], root=root))
                (folder / f"{stem}.txt").write_text(sentence_case(u["text"]) + "\n",
                                                    encoding="utf-8")
            t1 = time.perf_counter()
            prof = enroll_speaker(f"so762-{spk}", folder, model=args.model,
                                  speakers_dir=tmp / "speakers", settings=settings,
                                  work_dir=tmp, progress=False)
            enroll_s = time.perf_counter() - t1
            if prof.uses_base:          # the gate kept the base model: the same decode
                after = before
            else:
                tuned = load_model(str(prof.model_dir), compute_type="int8",
                                   cpu_threads=args.threads)
                after = error_rates(refs, transcribe_all(tuned, test_u, opts, root))
                del tuned
        row = {"tag": args.tag, "split": args.split, "speaker": spk,
               "age_group": utts[0]["labels"].get("age_group"),
               "n_enroll": len(enroll_u), "n_test": len(test_u),
               "enroll_audio_s": prof.provenance["audio_s"],
               "n_test_words": before.n_ref_words,
               "wer_before": before.wer, "wer_after": after.wer,
               "best_epoch": prof.provenance.get("best_epoch"),
               "kept": prof.provenance.get("kept"),
               "gate": prof.provenance.get("gate"),
               "enroll_s": round(enroll_s, 1), "speaker_s": round(time.perf_counter() - t0, 1),
               "settings": settings.model_dump(mode="json")}
        with open(cache, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        done[spk] = row
        print(f"[{k + 1}/{len(chosen)}] speaker {spk} ({row['age_group']}): WER "
              f"{100 * before.wer:.1f} -> {100 * after.wer:.1f} %, enrolled in "
              f"{enroll_s:.0f} s (best epoch {row['best_epoch']})", flush=True)
        report(args, argv, settings, cache, speakers, chosen, done)     # partial, each time
    report(args, argv, settings, cache, speakers, chosen, done)
    return 0


if __name__ == "__main__":
    sys.exit(main())
