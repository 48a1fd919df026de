"""Evaluate a model on a manifest: WER/CER, medical-term recall, real-time factor, and for
streaming the commit latency on the simulated clock of :func:`biosig.asr.simulate_stream`."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from biosig.asr.audio import ASR_FS, load_audio
from biosig.asr.metrics import error_rates, latency_stats, term_recall
from biosig.asr.models import AsrModel, DecodeOptions
from biosig.asr.streaming import DictationEngine, StreamingConfig, simulate_stream
from biosig.asr.transcribe import transcribe
from biosig.asr.vocab import Vocabulary
from biosig.errors import ManifestError
from biosig.manifests import read_manifest
from biosig.progress import track

__all__ = ["EvalItem", "EvalReport", "evaluate_manifest", "record_terms"]

log = logging.getLogger(__name__)


@dataclass
class EvalItem:
    id: str
    reference: str
    hypothesis: str
    duration_s: float
    compute_s: float
    terms_found: int = 0
    terms_total: int = 0
    commit_times_s: list[float] = field(default_factory=list)
    word_end_s: list[float] = field(default_factory=list)


@dataclass
class EvalReport:
    """What ``biosig asr eval`` writes (``to_dict`` is the JSON).

    ``latency`` (streaming only) pools the words of all recordings: commit time minus the
    word's end in the audio, both on the recording's own clock; ``last_word_delay_s`` is the
    mean over recordings of (last commit - end of audio).
    """

    manifest: str
    model: str
    mode: str
    n_recordings: int
    audio_s: float
    compute_s: float
    rtf: float
    wer: float
    cer: float
    errors: dict
    term_recall: float | None
    latency: dict | None
    settings: dict
    items: list[EvalItem]

    def to_dict(self, *, with_text: bool = False) -> dict:
        d = asdict(self)
        d["items"] = [{k: v for k, v in asdict(it).items()
                       if with_text or k not in ("reference", "hypothesis")}
                      for it in self.items]
        for it in d["items"]:
            it.pop("commit_times_s", None)
            it.pop("word_end_s", None)
        return d


def record_terms(rec) -> list[str]:
    """Medical terms of a manifest record: ``labels.terms`` (``;``-separated) or
    ``meta.terms`` (a list)."""
    t = rec.labels.get("terms") if rec.labels else None
    if isinstance(t, str) and t.strip():
        return [x.strip() for x in t.split(";") if x.strip()]
    m = (rec.meta or {}).get("terms") if rec.meta else None
    if isinstance(m, list):
        return [str(x) for x in m if str(x).strip()]
    return []


def evaluate_manifest(manifest, model: AsrModel, *, streaming: bool = False,
                      chunk_s: float = 1.0, options: DecodeOptions | None = None,
                      stream_config: StreamingConfig | None = None, root=None,
                      limit: int | None = None, progress: bool = True,
                      vocab: Vocabulary | None = None, vocab_correct: bool = False
                      ) -> EvalReport:
    """Transcribe every line of a manifest that has ``text`` and score it.

    Parameters
    ----------
    manifest : path
        JSONL manifest (:mod:`biosig.manifests`); ``path`` and ``text`` are used.
    model : AsrModel
    streaming : bool
        Run :class:`DictationEngine` through :func:`simulate_stream` with ``chunk_s`` chunks.
    root : path, optional
        Corpus root for relative paths (else the record's ``root`` under the data root, else
        the manifest's folder).
    limit : int, optional
        Only the first ``limit`` lines with text.
    vocab, vocab_correct
        Vocabulary biasing and term restoration (:mod:`biosig.asr.vocab`), offline and
        streaming alike.
    """
    options = DecodeOptions(vad=True) if options is None else options
    stream_config = StreamingConfig() if stream_config is None else stream_config
    man = Path(manifest)
    recs = [r for r in read_manifest(man) if r.text is not None]
    if limit is not None:
        recs = recs[:limit]
    if not recs:
        raise ManifestError(f"{man}: no line has a 'text' reference to score against")
    it = track(recs, desc="asr eval", unit="rec", enabled=progress)
    items = []
    for rec in it:
        x = load_audio(rec.resolve_path(root, manifest_dir=man.parent))
        if rec.is_segment:
            x = x[int(rec.start_s * ASR_FS): int(rec.end_s * ASR_FS)]
        terms = record_terms(rec)
        if streaming:
            eng = DictationEngine(model, stream_config, vocab=vocab,
                                  vocab_correct=vocab_correct)
            run = simulate_stream(eng, x, chunk_s=chunk_s)
            hyp, compute = run.text, run.compute_s
            ct, we = run.commit_times_s, [w.end_s for w in run.words]
        else:
            tr = transcribe(x, fs=ASR_FS, model=model, options=options, vocab=vocab,
                            vocab_correct=vocab_correct)
            hyp, compute, ct, we = tr.text, tr.decode_time_s, [], []
        found, total = term_recall(terms, hyp)
        items.append(EvalItem(rec.id, rec.text, hyp, x.size / ASR_FS, compute, found, total,
                              list(ct), list(we)))
    er = error_rates([i.reference for i in items], [i.hypothesis for i in items])
    audio_s = float(sum(i.duration_s for i in items))
    compute_s = float(sum(i.compute_s for i in items))
    tt = sum(i.terms_total for i in items)
    lat = None
    if streaming:
        ct = np.concatenate([np.asarray(i.commit_times_s, float) for i in items])
        we = np.concatenate([np.asarray(i.word_end_s, float) for i in items])
        st = latency_stats(ct, we, audio_end_s=0.0).to_dict()
        delays = [max(i.commit_times_s) - i.duration_s for i in items if i.commit_times_s]
        st["last_word_delay_s"] = float(np.mean(delays)) if delays else float("nan")
        st["last_word_delay_max_s"] = float(np.max(delays)) if delays else float("nan")
        lat = st
    settings = ({"chunk_s": chunk_s, **stream_config.model_dump()} if streaming
                else options.model_dump())
    settings["vocab_terms"] = None if vocab is None else len(vocab)
    settings["vocab_correct"] = vocab_correct
    return EvalReport(str(man), getattr(model, "name", ""), "streaming" if streaming else
                      "offline", len(items), audio_s, compute_s,
                      compute_s / audio_s if audio_s else float("nan"), er.wer, er.cer,
                      er.to_dict(), (sum(i.terms_found for i in items) / tt) if tt else None,
                      lat, settings, items)
