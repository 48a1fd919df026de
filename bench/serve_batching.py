"""Would `biosig serve` gain from decoding several sessions in one CTranslate2 batch?

`biosig serve` gives each session one decode at a time through a FIFO lock. The alternative is
to gather the sessions waiting for a decode and run them as one batch: one ``encode``, one
``generate`` and one ``align`` (the word timestamps the streaming engine commits by) over B
buffers. This script measures that trade on this machine with the decode the streaming engine
makes (Whisper base int8, greedy, a prompt of the words committed before, the encoder window
shortened to the buffer plus 2 s of padding: a batch pads every buffer to its longest one):

- ``sequential``: B single decodes one after another (what the FIFO lock does today);
- ``batched``: the same B decodes as one batch.

For each batch size it prints the wall time of both, the throughput gain (sequential time over
batched time), each session's mean wait for its words (sequential: its turn in the queue ends
when its own decode does; batched: everyone waits for the whole batch) and how many words of
the batched transcripts differ from the sequential ones (the padding can change a decode).

Run (about 3 minutes; alone, the timings are the result)::

    HF_HUB_OFFLINE=1 python bench/serve_batching.py     # -> bench/results/serve_batching.json
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
from dictation import real_clips  # noqa: E402

from biosig.asr import ASR_FS, error_rates, load_audio, load_model, packaged_model_dir  # noqa: E402
from biosig.asr.streaming import StreamingConfig  # noqa: E402
from biosig.datasets import data_root  # noqa: E402
from biosig.fileio import write_json_atomic  # noqa: E402

# streaming buffers: the engine decodes what is not yet committed, typically 3-12 s
BUFFER_S = (4.0, 6.0, 8.0, 10.0, 5.0, 7.0, 9.0, 12.0)
ENGINE = StreamingConfig()      # the engine's defaults: encoder padding, cap on new tokens
PAD_S = ENGINE.audio_ctx_pad_s


def clips(n: int) -> list[tuple[np.ndarray, str]]:
    """n buffers cut from the LibriSpeech clips of ../shared/data (bench/dictation.py's
    ``real_clips``), joined into one 21 s stream: the lengths above, from staggered offsets,
    each with the text of a clip from another chapter as the prompt (the words committed
    before)."""
    speech = [(path, text.lower()) for _, path, text in real_clips(data_root(required=True))
              if path.suffix == ".flac"]
    if not speech:
        raise SystemExit("no LibriSpeech clips in the data root (see ../shared/data/DATA.md)")
    stream = np.concatenate([load_audio(path) for path, _ in speech])
    out = []
    for i in range(n):
        n_s = int(BUFFER_S[i % len(BUFFER_S)] * ASR_FS)
        start = int(i * 2.3 * ASR_FS) % max(stream.size - n_s, 1)
        prompt = speech[(i + len(speech) // 2) % len(speech)][1]
        out.append((stream[start:start + n_s], prompt))
    return out


class Decoder:
    """The streaming engine's decode, straight on CTranslate2, for B buffers at once."""

    def __init__(self, fw):
        from faster_whisper.tokenizer import Tokenizer
        self.fw = fw
        self.ct2 = fw.model
        self.tok = Tokenizer(fw.hf_tokenizer, True, task="transcribe", language="en")

    def prompts(self, previous: list[str]) -> list[list[int]]:
        """CTranslate2 needs <|startoftranscript|> at one position across a batch, so every
        prompt keeps as many of its last tokens as the shortest one has."""
        prev = [self.tok.encode(" " + p.strip())[-223:] for p in previous]
        n = min(len(p) for p in prev)
        return [[self.tok.sot_prev, *p[len(p) - n:], *self.tok.sot_sequence,
                 self.tok.no_timestamps] for p in prev]

    def __call__(self, batch: list[tuple[np.ndarray, str]]) -> list[str]:
        import ctranslate2
        ctx = max(int(np.ceil((x.size / ASR_FS + PAD_S) * 100)) for x, _ in batch)
        ctx += ctx % 2
        feats = np.stack([self.fw.feature_extractor(np.pad(x, (0, 30 * ASR_FS - x.size)))
                          [:, :ctx] for x, _ in batch]).astype(np.float32)
        enc = self.ct2.encode(ctranslate2.StorageView.from_array(np.ascontiguousarray(feats)),
                              to_cpu=False)
        # the engine's cap on new tokens (StreamingConfig.max_tokens_per_s), for the longest
        max_new = min(int(ENGINE.max_tokens_per_s * max(x.size for x, _ in batch) / ASR_FS)
                      + 10, 220)
        res = self.ct2.generate(enc, self.prompts([p for _, p in batch]), beam_size=1,
                                max_length=max_new, suppress_blank=True, suppress_tokens=[-1])
        eot = self.tok.eot
        tokens = [[t for t in r.sequences_ids[0] if t < eot] for r in res]
        # word timestamps: cross-attention alignment of the decoded tokens (as faster-whisper's
        # word_timestamps=True does), batched the same way
        frames = [int(np.ceil(x.size / ASR_FS * 100)) for x, _ in batch]
        self.ct2.align(enc, self.tok.sot_sequence, tokens, frames, median_filter_width=7)
        return [self.tok.decode(t).strip() for t in tokens]


def timed(fn, *args, repeats: int = 3):
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args)
        dt = time.perf_counter() - t0
        best = dt if best is None or dt < best else best
    return best, out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,2,4,8", help="Batch sizes (sessions decoded at once).")
    ap.add_argument("--threads", type=int, default=2, help="CTranslate2 CPU threads.")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" /
                    "serve_batching.json")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    model = load_model(str(packaged_model_dir()), cpu_threads=args.threads)
    dec = Decoder(model.model)
    data = clips(max(sizes))
    dec(data[:1])                                   # warm-up
    rows = []
    print(f"{'B':>2} {'sequential':>11} {'batched':>9} {'gain':>6} "
          f"{'wait seq':>9} {'wait batch':>11} {'words differ':>13}")
    for b in sizes:
        batch = data[:b]
        singles = [timed(dec, [item]) for item in batch]
        t_seq = sum(t for t, _ in singles)
        text_seq = [o[0] for _, o in singles]
        t_bat, text_bat = timed(dec, batch)
        wait_seq = float(np.mean(np.cumsum([t for t, _ in singles])))
        differ = error_rates([" ".join(text_seq)], [" ".join(text_bat)]).wer
        row = {"batch": b, "audio_s": round(sum(x.size for x, _ in batch) / ASR_FS, 1),
               "sequential_s": round(t_seq, 3), "batched_s": round(t_bat, 3),
               "gain": round(t_seq / t_bat, 2), "mean_wait_sequential_s": round(wait_seq, 3),
               "mean_wait_batched_s": round(t_bat, 3), "words_differ": round(differ, 3)}
        rows.append(row)
        print(f"{b:>2} {t_seq:>10.2f}s {t_bat:>8.2f}s {t_seq / t_bat:>5.2f}x "
              f"{wait_seq:>8.2f}s {t_bat:>10.2f}s {100 * differ:>12.1f}%")
    result = {"machine": {"cpu": platform.processor() or platform.machine(),
                          "cores": os.cpu_count(), "threads": args.threads},
              "model": "whisper-base int8 (CTranslate2)", "pad_s": PAD_S, "rows": rows}
    write_json_atomic(args.out, result)
    print(f"-> {args.out}")
    return result


if __name__ == "__main__":
    main()
