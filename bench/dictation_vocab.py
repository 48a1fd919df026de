"""Does ``--vocab`` help, and never hurt? Vocabulary biasing on unseen voices, wideband and
telephone, next to faster-whisper given the term list as its prompt.

Run (about an hour on 2 shared cores for the default 15 sentences, most of it the previous
release's ``--vocab`` with its temperature fallbacks; results are cached per clip in ``--work``,
so a rerun resumes and a rerun with more ``--sentences`` only decodes the new clips; a
``vocab`` prediction is decoded again when the vocabulary method's code has changed since)::

    HF_HUB_OFFLINE=1 python bench/dictation_vocab.py        # -> bench/results/dictation_vocab.json

Data
----
- **Sentences** never used for tuning: :func:`biosig.synth.dictation.held_out_dictation` (sentence
  shapes that the fine-tuning data, :func:`~biosig.synth.dictation.generated_dictation`, never
  makes), seed 7, over the clinic vocabulary of drugs, conditions, symptoms, tests and
  findings.
- **Voices** never used for development or tuning:
  :data:`biosig.synth.dictation.HELD_OUT_VOICES` (espeak-ng en-us-nyc, an accent no development
  voice has, and en-us+f5). They were picked among five candidates for being intelligible to
  plain Whisper base (screened on six sentences, plain decoding only); the vocabulary code
  was developed on another voice (:data:`~biosig.synth.dictation.TUNING_VOICES`) and other
  sentences.
- **Channels**: wideband (16 kHz, as synthesized) and telephone
  (:func:`biosig.synth.dictation.telephone_channel`: pink room noise at 10-20 dB SNR, 300-3400 Hz,
  8 kHz, mu-law).
- **Vocabulary**: every term of the clinic vocabulary (drugs, conditions, symptoms, tests,
  findings: 119 terms), not only those dictated, as a clinic's list would be.
- **Real read speech** (LibriSpeech and FLEURS slices of ``../shared/data/speech``, which
  hold none of the terms): biasing and restoration must not raise WER there.

Conditions (all Whisper base int8 through ``biosig.asr.transcribe``, beam 5, VAD)
---------------------------------------------------------------------------------
``plain``; ``vocab`` (``--vocab``: :func:`biosig.asr.vocab.decode_with_vocab`);
``vocab+correct`` (``--vocab --vocab-correct``, the restoration applied to the ``vocab``
decode's words); ``before`` (the previous release's ``--vocab``: the list as the prompt
*and* as faster-whisper hotwords, no guard); ``peer``: faster-whisper itself, default
settings, the term list as ``initial_prompt``.

Targets (issue 15): with ``--vocab``, WER below plain on every voice and channel and term
recall >= 80 %; ``--vocab-correct`` does not raise WER on real read speech.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import platform
import sys
import textwrap
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


from biosig.asr import DecodeOptions, load_model, transcribe  # noqa: E402
from biosig.asr.audio import ASR_FS, load_audio  # noqa: E402
from biosig.asr.degenerate import looks_degenerate  # noqa: E402
from biosig.asr.metrics import error_rates, term_recall  # noqa: E402
from biosig.asr.types import Word  # noqa: E402
from biosig.asr.vocab import Vocabulary, correct_terms  # noqa: E402
from biosig.synth.dictation import clinic_terms  # noqa: E402

CONDITIONS = ("plain", "vocab", "peer", "before")
REAL = {"librispeech": REPO / "data_manifests" / "librispeech_test_clean_mini.jsonl",
        "fleurs": REPO / "data_manifests" / "fleurs_en.jsonl"}


def old_prompt_and_hotwords(terms, max_chars=400):
    """The previous release's ``--vocab`` (biosig <= dcef735): both strings from the list."""
    prompt = "Clinical note. Terms: "
    for i, t in enumerate(terms):
        piece = (", " if i else "") + t
        if len(prompt) + len(piece) + 1 > max_chars:
            break
        prompt += piece
    hot = ""
    for t in terms:
        if len(hot) + len(t) + 1 > max_chars:
            break
        hot += (" " if hot else "") + t
    return prompt + ".", hot


def build_clips(work: Path, n: int, seed: int, tuning: bool = False):
    from biosig.manifests import read_manifest
    from biosig.synth.dictation import (
        HELD_OUT_VOICES,
        TUNING_VOICES,
        generated_dictation,
        held_out_dictation,
        synth_dictation,
    )
    if tuning:   # the development set: another voice, the fine-tuning sentence shapes
        phrases = generated_dictation(n, seed=seed)
        voices, out = list(TUNING_VOICES), work / "synth_tuning"
    else:
        phrases = held_out_dictation(n, seed=seed)
        voices, out = list(HELD_OUT_VOICES), work / "synth"
    res = synth_dictation(phrases, out, voices=voices, telephone_frac=1.0, seed=seed,
                          progress=True)
    return list(read_manifest(res.manifest)), res.manifest.parent


def real_clips():
    from biosig.manifests import read_manifest
    out = []
    for name, man in REAL.items():
        if man.is_file():
            for r in read_manifest(man):
                if r.text:
                    out.append((name, r, man))
    return out


@functools.cache
def code_digest(condition: str) -> str | None:
    """A digest of the code behind ``condition``'s decodes (the vocabulary method's modules for
    ``vocab``), so a cached prediction made by an earlier version of the method is decoded
    again; ``None`` for the conditions that do not use it."""
    if condition != "vocab":
        return None
    h = hashlib.sha1()
    for mod in ("vocab.py", "degenerate.py", "audio.py"):
        h.update((REPO / "biosig" / "asr" / mod).read_bytes())
    return h.hexdigest()[:10]


class Cache:
    """One JSON line per (condition, clip): reruns skip what is done, unless the code behind
    the condition changed since (:func:`code_digest`)."""

    def __init__(self, path: Path):
        self.path = path
        self.rows = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    d = json.loads(line)
                    self.rows[(d["condition"], d["id"])] = d

    def get(self, cond, rid):
        d = self.rows.get((cond, rid))
        return d if d is not None and d.get("code") == code_digest(cond) else None

    def put(self, d):
        d = {**d, "code": code_digest(d["condition"])}
        self.rows[(d["condition"], d["id"])] = d
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")


def run_condition(cond, x, model, vocab, terms):
    t0 = time.perf_counter()
    if cond == "plain":
        tr = transcribe(x, fs=ASR_FS, model=model)
    elif cond == "vocab":
        tr = transcribe(x, fs=ASR_FS, model=model, vocab=vocab)
    elif cond == "before":
        prompt, hot = old_prompt_and_hotwords(terms)
        tr = transcribe(x, fs=ASR_FS, model=model,
                        options=DecodeOptions(vad=True, initial_prompt=prompt, hotwords=hot))
    elif cond == "peer":
        import ctranslate2
        ctranslate2.set_random_seed(0)
        segs, _ = model.model.transcribe(x, language="en", initial_prompt=", ".join(terms))
        text = " ".join(s.text.strip() for s in segs)
        return {"text": text, "words": None, "s": time.perf_counter() - t0}
    else:
        raise ValueError(cond)
    words = [[w.text, w.start_s, w.end_s, w.probability] for s in tr.segments for w in s.words]
    return {"text": tr.text, "words": words, "s": time.perf_counter() - t0}


def corrected(row, vocab):
    words = [Word(t, a, b, p) for t, a, b, p in row["words"]]
    out, fixed = correct_terms(words, vocab)
    return "".join(w.text for w in out).strip(), len(fixed)


def score(rows, refs, terms_of, durations):
    hyps = [r["text"] for r in rows]
    er = error_rates(refs, hyps)
    found = total = 0
    for r, t in zip(hyps, terms_of):
        f, n = term_recall(t, r)
        found, total = found + f, total + n
    broken = 0
    for h, ref, d in zip(hyps, refs, durations):
        ws = [Word(" " + t, 0.0, 0.0) for t in h.split()]
        if looks_degenerate(ws, audio_s=d) or len(ws) > 1.5 * len(ref.split()) + 3:
            broken += 1
    return {"wer": er.wer, "n_ref_words": er.to_dict()["n_ref_words"],
            "term_recall": found / total if total else None, "terms": total,
            "broken": broken, "n": len(rows), "decode_s": sum(r["s"] for r in rows)}


def plot(result, path: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from biosig.plot import save_png
    groups = list(result["dictation"])
    conds = [c for c in ("plain", "vocab", "vocab+correct", "before", "peer")
             if c in result["dictation"][groups[0]]]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, key, label in ((axes[0], "wer", "WER (%)"), (axes[1], "term_recall",
                                                         "term recall (%)")):
        w = 0.8 / len(conds)
        for k, c in enumerate(conds):
            vals = [100 * (result["dictation"][g][c][key] or 0) for g in groups]
            xs = [i - 0.4 + w * (k + 0.5) for i in range(len(groups))]
            ax.bar(xs, vals, w, label=c)
            for xx, v in zip(xs, vals):
                ax.text(xx, v, f"{v:.0f}", ha="center", va="bottom", fontsize=6)
        ax.set_xticks(range(len(groups)), [g.replace("espeak-", "") for g in groups],
                      fontsize=8)
        ax.set_ylabel(label)
    axes[1].axhline(80, color="k", lw=0.8, ls="--")
    axes[0].legend(fontsize=7)
    name = result.get("label", "Whisper base")
    # wrapped: a long --label would run off the figure
    fig.suptitle(textwrap.fill(f"Vocabulary biasing on unseen voices ({name} int8, 2 CPU "
                               "cores)", 100))
    fig.tight_layout()
    save_png(fig, path, dpi=110)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def ct2_variant() -> str:
    """The CTranslate2 backend and kernels this process was asked for (``CT2_USE_MKL``,
    ``CT2_FORCE_CPU_ISA``; ``default`` where neither is set), e.g. ``mkl0-avx2``: part of the
    prediction cache's name, since int8 decodes differ between them."""
    mkl, isa = os.environ.get("CT2_USE_MKL"), os.environ.get("CT2_FORCE_CPU_ISA")
    if mkl is None and isa is None:
        return "default"
    return f"mkl{mkl if mkl is not None else '-'}-{(isa or 'auto').lower()}"


def model_tag(model: str) -> str:
    """The prediction cache's name for ``model``: a directory's name with a digest of its
    resolved path and its ``model.bin`` (size, modification time), so two runs' ``ct2``
    folders, or a folder exported again, never share cached predictions."""
    path = Path(model).expanduser()
    if not path.is_dir():
        return str(model).replace(":", "_").replace("/", "_")
    stamp = str(path.resolve())
    weights = path / "model.bin"
    if weights.is_file():
        st = weights.stat()
        stamp += f":{st.st_size}:{st.st_mtime_ns}"
    return f"{path.name}_{hashlib.sha1(stamp.encode()).hexdigest()[:10]}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="packaged:whisper-base")
    ap.add_argument("--sentences", type=int, default=15)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--conditions", default=",".join(CONDITIONS))
    ap.add_argument("--tuning", action="store_true",
                    help="The development set instead (TUNING_VOICES, generated_dictation "
                         "sentences, seed 15): what the settings were chosen on.")
    ap.add_argument("--no-real", action="store_true", help="Skip the real read speech.")
    ap.add_argument("--label", default=None,
                    help="The model's name in the plot (default: Whisper base for the packaged "
                         "model, else the name of the folder holding the model's folder, e.g. "
                         "the run id).")
    ap.add_argument("--note", default=None, help="Kept in the JSON: what the model is.")
    ap.add_argument("--work", type=Path, default=REPO / "work" / "dictation_vocab")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" /
                    "dictation_vocab.json")
    args = ap.parse_args()
    if args.tuning:
        args.seed = 15 if args.seed == 7 else args.seed
        if args.out == ap.get_default("out"):
            args.out = args.out.with_name("dictation_vocab_tuning.json")
    conds = [c for c in args.conditions.split(",") if c]
    for c in conds:
        if c not in CONDITIONS:
            ap.error(f"--conditions: {c!r} is not one of {CONDITIONS}")
    args.work.mkdir(parents=True, exist_ok=True)
    recs, root = build_clips(args.work, args.sentences, args.seed, args.tuning)
    terms = clinic_terms()
    vocab = Vocabulary(terms)
    (args.work / "vocab.txt").write_text("\n".join(terms) + "\n", encoding="utf-8")
    model = load_model(args.model, compute_type="int8", cpu_threads=args.threads)
    tag = model_tag(args.model)
    variant = ct2_variant()
    cache = Cache(args.work / (f"predictions_{tag}{'_tuning' if args.tuning else ''}"
                               f"{'' if variant == 'default' else '_' + variant}.jsonl"))
    from biosig.progress import track
    items = [("dictation", r, root) for r in recs] + ([] if args.no_real else real_clips())
    # the previous release's --vocab on the dictation clips only: on real speech its
    # temperature fallbacks take 2-3 minutes per clip (tests/test_asr_vocab.py has the clip)
    jobs = [(c, it) for c in conds for it in items
            if not (c == "before" and it[0] != "dictation")]
    t0 = time.time()
    for cond, (kind, rec, base) in track(jobs, desc="dictation-vocab", unit="clip"):
        if cache.get(cond, rec.id) is None:
            path = rec.resolve_path(manifest_dir=base if kind == "dictation" else base.parent)
            x = load_audio(path)
            cache.put({"condition": cond, "id": rec.id, **run_condition(cond, x, model, vocab,
                                                                        terms)})
    # scoring
    from biosig.asr.evaluate import record_terms
    result = {"dictation": {}, "real_speech": {}}
    groups = {}
    for r in recs:
        groups.setdefault(f"{r.labels['voice']} {r.labels['channel']}", []).append(r)
    real_items = [it for it in items if it[0] != "dictation"]
    for name, group, refs_terms in (
            [(g, rs, [record_terms(r) for r in rs]) for g, rs in sorted(groups.items())]
            + ([("real read speech", [r for _, r, _ in real_items],
                 [[] for _ in real_items])] if real_items else [])):
        refs = [r.text for r in group]
        durs = [r.duration_s for r in group]
        out = {}
        for c in conds:
            rows = [cache.get(c, r.id) for r in group]
            if any(row is None for row in rows):
                continue
            out[c] = score(rows, refs, refs_terms, durs)
            if c == "vocab":
                fixed_rows, n_fixed = [], 0
                for row in rows:
                    text, k = corrected(row, vocab)
                    fixed_rows.append({"text": text, "s": row["s"]})
                    n_fixed += k
                out["vocab+correct"] = {**score(fixed_rows, refs, refs_terms, durs),
                                        "restored": n_fixed}
        (result["real_speech"] if name == "real read speech" else result["dictation"])[
            name] = out
    d = result["dictation"]
    checks = {}
    if "plain" in conds and "vocab" in conds:
        checks["vocab_wer_below_plain_everywhere"] = all(
            g["vocab"]["wer"] < g["plain"]["wer"] for g in d.values())
        checks["vocab_term_recall_min"] = min(g["vocab"]["term_recall"] for g in d.values())
        checks["vocab_term_recall_ok"] = checks["vocab_term_recall_min"] >= 0.8
    rs = result["real_speech"].get("real read speech")
    if rs and "plain" in rs and "vocab" in rs:
        checks["real_speech_wer_plain"] = rs["plain"]["wer"]
        checks["real_speech_wer_vocab"] = rs["vocab"]["wer"]
        checks["real_speech_wer_vocab_correct"] = rs["vocab+correct"]["wer"]
        checks["real_speech_not_raised"] = (rs["vocab+correct"]["wer"] <= rs["plain"]["wer"]
                                            and rs["vocab"]["wer"] <= rs["plain"]["wer"])
    result.update({
        "command": "HF_HUB_OFFLINE=1 python bench/dictation_vocab.py " + " ".join(sys.argv[1:]),
        "model": args.model, "sentences": args.sentences, "seed": args.seed,
        "vocabulary_terms": len(terms), "clips": len(recs),
        "machine": {"platform": platform.platform(), "cpu": cpu_name(),
                    "cpu_count": os.cpu_count(), "threads": args.threads,
                    "loadavg": os.getloadavg(), "ct2_variant": variant},
        "checks": checks, "time_s": time.time() - t0,
        "label": args.label or ("Whisper base" if args.model == "packaged:whisper-base"
                                else Path(args.model).expanduser().resolve().parent.name)})
    if args.note:
        result["note"] = args.note
    from biosig.fileio import write_text_atomic
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(args.out, json.dumps(result, indent=1, default=float) + "\n")
    plot(result, args.out.with_suffix(".png"))
    shown = [c for c in ("plain", "vocab", "vocab+correct", "before", "peer")
             if c in next(iter(d.values()))]
    print(f"\n{'voice / channel':<30}" + "".join(f"{c:>16}" for c in shown))
    for name, g in list(d.items()) + list(result["real_speech"].items()):
        cells = []
        for c in shown:
            if c not in g:
                cells.append(f"{'-':>16}")
                continue
            tr = g[c]["term_recall"]
            cells.append(f"{100 * g[c]['wer']:>7.1f}%" + (f" {100 * tr:>5.0f}%t"
                                                          if tr is not None else " " * 8))
        print(f"{name:<30}" + "".join(cells))
    print("(WER, and term recall with 't'; peer = faster-whisper with the term list as "
          "initial_prompt)")
    for k, v in checks.items():
        print(f"{k}: {v}")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
