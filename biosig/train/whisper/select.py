"""Choosing the saved model on real speech: the WiSE-FT interpolation weight that fits the task
best while the model stays as good as it started on real voices (``select:`` in a
``whisper_asr`` recipe; :class:`~biosig.train.config.WhisperSelectConfig`).

Fine-tuning on synthesized dictation moves the model towards the synthetic voices' acoustics;
saving ``start + a * (fine-tuned - start)`` with ``a < 1`` gives some of that back (Wortsman et
al., "Robust fine-tuning of zero-shot models", CVPR 2022). Which ``a`` is chosen on a real-speech
development set, apart from the replay clips and from any test: every candidate weight is
decoded on the task's validation set and on the real speech, and the weight with the lowest
validation WER among those whose real-speech WER is within ``max_wer_increase`` of the starting
model's is saved.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from biosig.asr.metrics import error_rates
from biosig.fileio import write_text_atomic
from biosig.plot import save_png
from biosig.train.whisper.data import (
    SpeechTextDataset,
    TargetBuilder,
    Utterance,
    load_utterances,
    spread_evenly,
)
from biosig.train.whisper.export import interpolate_state
from biosig.train.whisper.model import EncoderCache, evaluate_wer

__all__ = ["choose_interpolation", "select_utterances", "first_changed_encoder_layer",
           "select_interpolation"]

log = logging.getLogger("biosig.train.whisper")


def choose_interpolation(rows: list[dict], *, start_select_wer: float,
                         max_increase: float) -> tuple[float, bool]:
    """The weight to save from candidate ``rows`` (``alpha``, ``valid_wer``, ``select_wer``).

    Among the rows whose ``select_wer`` is at most ``start_select_wer + max_increase``, the
    one with the lowest ``valid_wer`` (ties: the smaller weight, nearer the start); where none
    is, the row with the lowest ``select_wer``.

    Returns
    -------
    (alpha, within_limit)

    Examples
    --------
    >>> rows = [{"alpha": 0.5, "valid_wer": 0.20, "select_wer": 0.101},
    ...         {"alpha": 1.0, "valid_wer": 0.10, "select_wer": 0.130}]
    >>> choose_interpolation(rows, start_select_wer=0.10, max_increase=0.005)
    (0.5, True)
    """
    if not rows:
        raise ValueError("choose_interpolation: no candidate weights")
    limit = start_select_wer + max_increase + 1e-12
    ok = [r for r in rows if r["select_wer"] <= limit]
    if ok:
        best = min(ok, key=lambda r: (r["valid_wer"], r["alpha"]))
        return float(best["alpha"]), True
    best = min(rows, key=lambda r: (r["select_wer"], r["alpha"]))
    return float(best["alpha"]), False


def select_utterances(sel, *, default_root=None) -> list[Utterance]:
    """The lines of ``sel.manifest`` that ``sel.filter`` keeps (every length up to 30 s),
    ``sel.limit`` of them spread evenly (first, last and equal steps between, in manifest
    order), grouped by ``sel.report_by``."""
    utts = load_utterances(sel.manifest, root=sel.root or default_root, filter=sel.filter,
                           group_by=sel.report_by or "subject", max_duration_s=30.0)
    return spread_evenly(utts, sel.limit)


def first_changed_encoder_layer(start: dict, tuned: dict, n_layers: int) -> int | None:
    """The index of the first encoder layer whose weights differ between two Whisper state
    dicts (the convolutions and positions count as layer 0); ``n_layers`` where the encoder
    is unchanged, None where its front (convolutions) changed. Everything below that layer
    is the same for every interpolation weight, so its output can be cached once."""
    def differs(prefix: str) -> bool:
        return any(not torch.equal(start[k], tuned[k]) for k in tuned
                   if k.startswith(prefix))
    if differs("model.encoder.conv") or differs("model.encoder.embed_positions"):
        return None
    for i in range(n_layers):
        if differs(f"model.encoder.layers.{i}."):
            return i
    return n_layers if not differs("model.encoder.layer_norm") else n_layers - 1


def _group_wer(utts: list[Utterance], rows: list[dict]) -> dict[str, dict]:
    groups: dict[str, list[int]] = {}
    for k, u in enumerate(utts):
        groups.setdefault(u.group, []).append(k)
    if len(groups) > 20:                 # grouped by speaker or line: not a report
        return {}
    out = {}
    for g, ks in sorted(groups.items()):
        er = error_rates([rows[k]["reference"] for k in ks], [rows[k]["hypothesis"] for k in ks])
        out[g] = {"wer": er.wer, "n": len(ks), "n_ref_words": er.n_ref_words}
    return out


def select_interpolation(cfg, out: Path, best_dir: Path, *, base_name: str,
                         valid_ds: SpeechTextDataset, valid_cache: EncoderCache | None,
                         valid_tuned: dict | None, valid_start: dict | None, device, amp_dtype,
                         progress: bool) -> dict:
    """Decode every weight of ``cfg.select.interpolations`` (and the starting model) on the
    validation set and on ``cfg.select.manifest``; choose with :func:`choose_interpolation`.

    ``best_dir`` holds the fine-tuned weights (or, once interpolated, ``best_tuned/`` beside
    it does). ``valid_tuned``/``valid_start`` (the best and the starting epoch's validation
    metrics) are reused for weights 1 and 0 instead of decoding again.

    Returns
    -------
    dict
        ``alpha`` (chosen), ``within_limit``, ``start`` (the starting model's real-speech WER),
        ``limit`` (the WER allowed), ``rows`` (per weight: validation and real-speech WER, by
        group where ``report_by`` is set), ``manifest``, ``n``, ``n_ref_words``. Also written
        to ``selection.json`` and plotted in ``selection.png`` in ``out``.
    """
    from transformers import (  # optional extra: asr
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )
    sel = cfg.select
    tuned_dir = best_dir.with_name("best_tuned")
    if not (best_dir / "interpolation.json").is_file():
        tuned_dir = best_dir
    processor = WhisperProcessor.from_pretrained(tuned_dir)
    model = WhisperForConditionalGeneration.from_pretrained(tuned_dir)
    tuned_sd = {k: v.clone() for k, v in model.state_dict().items()}
    start_sd = WhisperForConditionalGeneration.from_pretrained(base_name).state_dict()
    model = model.to(device).eval()
    n_mels = int(model.config.num_mel_bins)
    n_enc = len(model.model.encoder.layers)
    first = first_changed_encoder_layer(start_sd, tuned_sd, n_enc)
    utts = select_utterances(sel, default_root=cfg.data.root)
    targets = TargetBuilder(processor.tokenizer, language=cfg.model.language,
                            task=cfg.model.task)
    ds = SpeechTextDataset(utts, targets)
    cache = None
    if first is not None:            # the unchanged part of the encoder runs once per clip
        folder = None
        if cfg.train.cache_encoder_outputs == "disk":
            folder = out / "encoder_cache" / ("select_output" if first == n_enc
                                              else f"select_layer{first}_input")
        cache = EncoderCache(None if first == n_enc else first, folder=folder)
        cache.name_items(utts)
    kw = dict(cfg=cfg, n_mels=n_mels, device=device, amp_dtype=amp_dtype,
              tokenizer=processor.tokenizer, progress=progress)
    rows = []
    for alpha in [0.0, *sel.interpolations]:
        model.load_state_dict(tuned_sd if alpha == 1.0 else start_sd if alpha == 0.0
                              else interpolate_state(start_sd, tuned_sd, alpha))
        if alpha == 1.0 and valid_tuned is not None:
            v = valid_tuned
        elif alpha == 0.0 and valid_start is not None:
            v = valid_start
        else:
            v, _ = evaluate_wer(model, valid_ds, cache=valid_cache, desc=f"valid a={alpha:g}",
                                **kw)
        m, pred = evaluate_wer(model, ds, cache=cache, desc=f"real speech a={alpha:g}", **kw)
        row = {"alpha": alpha, "valid_wer": v["wer"], "valid_term_recall": v.get("term_recall"),
               "valid": v, "select_wer": m["wer"], "select_groups": _group_wer(utts, pred)}
        rows.append(row)
        log.info("a=%.2f: valid WER %.4f, real-speech WER %.4f", alpha, v["wer"], m["wer"])
    start = rows[0]["select_wer"]
    alpha, ok = choose_interpolation(rows[1:], start_select_wer=start,
                                     max_increase=sel.max_wer_increase)
    result = {"alpha": alpha, "within_limit": ok, "start": start,
              "limit": start + sel.max_wer_increase, "max_wer_increase": sel.max_wer_increase,
              "manifest": sel.manifest, "filter": dict(sel.filter), "n": len(utts),
              "n_ref_words": int(sum(len(u.text.split()) for u in utts)),
              "config": sel.model_dump(), "rows": rows}
    write_text_atomic(out / "selection.json", json.dumps(result, indent=1) + "\n")
    plot_selection(result, out / "selection.png")
    if not ok:
        log.warning("no interpolation weight keeps the real-speech WER within %.1f points of "
                    "the starting model's (%.2f %%): saved a=%.2f, the lowest there",
                    100 * sel.max_wer_increase, 100 * start, alpha)
    return result


def plot_selection(result: dict, path: Path) -> None:
    """Validation and real-speech WER against the interpolation weight, with the limit."""
    import matplotlib  # the backend is set at the first plot (as in biosig.train.plots)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # after the backend is set

    rows = result["rows"]
    a = [r["alpha"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(a, [100 * r["valid_wer"] for r in rows], "o-", label="validation (task)")
    ax.plot(a, [100 * r["select_wer"] for r in rows], "s-", label="real speech")
    ax.axhline(100 * result["limit"], color="k", ls="--", lw=0.8,
               label="real-speech limit (start + %.1f pts)" % (100 * result["max_wer_increase"]))
    ax.axvline(result["alpha"], color="g", ls=":", lw=1.2, label=f"saved: a = {result['alpha']:g}")
    ax.set_xlabel("interpolation weight a (0 = starting model, 1 = fine-tuned)")
    ax.set_ylabel("WER (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path, dpi=110)
