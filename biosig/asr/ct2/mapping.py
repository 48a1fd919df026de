"""CTranslate2 Whisper -> transformers: parameter names, architecture and configs.

The weight mapping undoes the converter in ``ctranslate2/converters/transformers.py``
(``WhisperLoader`` / ``BartLoader``): self-attention query/key/value are fused in ``linear_0``
(rows ``[q; k; v]``), cross-attention keys/values in ``linear_1`` (rows ``[k; v]``); transformers'
key projections have no bias, so CTranslate2 stores zeros there. A key bias, were one present,
adds the same constant to every attention logit of a query and cancels in the softmax, so dropping
it is exact.

Whisper exists in CTranslate2 since 3.0, which writes binary version 6; this mapping reads
binary versions 4 to 6 (dtype ids stored with each variable).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biosig.asr.ct2.reader import ConversionError, CT2Model
from biosig.errors import InputError
from biosig.extras import require

__all__ = ["WhisperDims", "whisper_dims", "ct2_whisper_state_dict", "read_ct2_config",
           "whisper_configs"]

_MIN_WHISPER_BINARY_VERSION = 4
_MAX_WHISPER_REVISION = 3
_GELU = 3  # ctranslate2.specs.common_spec.Activation.GELU


@dataclass(frozen=True)
class WhisperDims:
    """Architecture read off the variable shapes of a CTranslate2 Whisper."""

    vocab_size: int
    num_mel_bins: int
    d_model: int
    encoder_layers: int
    decoder_layers: int
    encoder_attention_heads: int
    decoder_attention_heads: int
    encoder_ffn_dim: int
    decoder_ffn_dim: int
    max_source_positions: int
    max_target_positions: int
    tie_word_embeddings: bool


def _count_layers(model: CT2Model, prefix: str) -> int:
    pat = re.compile(re.escape(prefix) + r"/layer_(\d+)/")
    idx = {int(m.group(1)) for n in model.variables if (m := pat.match(n))}
    if idx != set(range(len(idx))):
        raise ConversionError(f"{model.path}: {prefix} layers are not numbered 0..n-1: "
                              f"{sorted(idx)}")
    return len(idx)


def _check_whisper(model: CT2Model) -> None:
    if model.binary_version < _MIN_WHISPER_BINARY_VERSION:
        raise ConversionError(f"{model.path}: CTranslate2 binary version {model.binary_version} "
                              f"is older than Whisper support (binary version "
                              f"{_MIN_WHISPER_BINARY_VERSION} or newer; CTranslate2 >= 3 writes "
                              "6): convert the model again with a current CTranslate2")
    if model.spec_name != "WhisperSpec":
        raise ConversionError(f"{model.path}: spec is {model.spec_name!r}, expected "
                              "'WhisperSpec' (a faster-whisper / CTranslate2 Whisper model)")
    if model.spec_revision > _MAX_WHISPER_REVISION:
        raise ConversionError(f"{model.path}: WhisperSpec revision {model.spec_revision} is newer "
                              f"than this importer knows ({_MAX_WHISPER_REVISION})")
    expected = {"decoder/activation": _GELU, "decoder/pre_norm": 1,
                "decoder/scale_embeddings": 0, "decoder/alibi": 0}
    for name, want in expected.items():
        got = model.scalar(name)
        if got is not None and int(got) != want:
            raise ConversionError(f"{model.path}: {name} = {got}, expected {want} for Whisper")
    if model.scalar("decoder/start_from_zero_embedding", 0):
        raise ConversionError(f"{model.path}: decoder/start_from_zero_embedding is set, "
                              "which transformers' Whisper does not support")


def whisper_dims(model: CT2Model) -> WhisperDims:
    """Read the Whisper architecture from the shapes of a CTranslate2 Whisper model."""
    _check_whisper(model)
    emb = model.raw("decoder/embeddings/weight").shape
    conv1 = model.raw("encoder/conv1/weight").shape
    n_enc = _count_layers(model, "encoder")
    n_dec = _count_layers(model, "decoder")
    if n_enc == 0 or n_dec == 0:
        raise ConversionError(f"{model.path}: found {n_enc} encoder and {n_dec} decoder layers")
    tied = (not model.has("decoder/projection/weight")
            or model.resolve("decoder/projection/weight") == "decoder/embeddings/weight")
    enc_heads = int(model.scalar("encoder/num_heads", 0))
    dec_heads = int(model.scalar("decoder/num_heads", enc_heads))
    if enc_heads <= 0 or dec_heads <= 0:
        raise ConversionError(f"{model.path}: no encoder/num_heads scalar; cannot infer heads")
    return WhisperDims(
        vocab_size=int(emb[0]), num_mel_bins=int(conv1[1]), d_model=int(emb[1]),
        encoder_layers=n_enc, decoder_layers=n_dec,
        encoder_attention_heads=enc_heads, decoder_attention_heads=dec_heads,
        encoder_ffn_dim=int(model.raw("encoder/layer_0/ffn/linear_0/weight").shape[0]),
        decoder_ffn_dim=int(model.raw("decoder/layer_0/ffn/linear_0/weight").shape[0]),
        max_source_positions=int(model.raw("encoder/position_encodings/encodings").shape[0]),
        max_target_positions=int(model.raw("decoder/position_encodings/encodings").shape[0]),
        tie_word_embeddings=tied,
    )


def ct2_whisper_state_dict(model: CT2Model) -> tuple[dict[str, np.ndarray], WhisperDims]:
    """Map a CTranslate2 Whisper to ``WhisperForConditionalGeneration`` parameter names.

    Parameters
    ----------
    model : CT2Model
        From :func:`read_ct2_model`; spec ``WhisperSpec``.

    Returns
    -------
    state_dict : dict of str to np.ndarray [dtype=float32]
        transformers names (``model.encoder.layers.0.self_attn.q_proj.weight`` ...) to
        dequantized weights; ``proj_out.weight`` only when not tied to the embeddings.
    dims : WhisperDims
        The architecture.

    Raises
    ------
    ConversionError
        Not a Whisper spec, shapes that disagree, or variables this mapping does not consume
        (nothing is dropped silently).
    """
    dims = whisper_dims(model)
    d = dims.d_model
    sd: dict[str, np.ndarray] = {}
    used: set[str] = set()

    def get(name: str) -> np.ndarray:
        used.add(model.resolve(name))
        if model.has(name + "_scale"):
            used.add(model.resolve(name + "_scale"))
        return model.float32(name)

    def expect(name: str, arr: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        if arr.shape != shape:
            raise ConversionError(f"{model.path}: {name} has shape {arr.shape}, expected {shape}")
        return arr

    def linear(ct2: str, hf: str, *, bias: bool = True) -> None:
        sd[hf + ".weight"] = get(ct2 + "/weight")
        if bias:
            sd[hf + ".bias"] = get(ct2 + "/bias")

    def norm(ct2: str, hf: str) -> None:
        sd[hf + ".weight"] = expect(ct2 + "/gamma", get(ct2 + "/gamma"), (d,))
        sd[hf + ".bias"] = expect(ct2 + "/beta", get(ct2 + "/beta"), (d,))

    def split_rows(ct2: str, hf_names: list[str]) -> None:
        w = get(ct2 + "/weight")
        b = get(ct2 + "/bias") if model.has(ct2 + "/bias") else None
        n = len(hf_names)
        expect(ct2 + "/weight", w, (n * d, d))
        for i, hf in enumerate(hf_names):
            sd[hf + ".weight"] = np.ascontiguousarray(w[i * d:(i + 1) * d])
            is_key = hf.endswith("k_proj")
            if is_key:
                continue  # transformers has no key bias; it cancels in the softmax anyway
            sd[hf + ".bias"] = (np.ascontiguousarray(b[i * d:(i + 1) * d]) if b is not None
                                else np.zeros(d, np.float32))

    for side, n_layers in (("encoder", dims.encoder_layers), ("decoder", dims.decoder_layers)):
        hf_side = f"model.{side}"
        sd[f"{hf_side}.embed_positions.weight"] = get(f"{side}/position_encodings/encodings")
        norm(f"{side}/layer_norm", f"{hf_side}.layer_norm")
        for i in range(n_layers):
            c, h = f"{side}/layer_{i}", f"{hf_side}.layers.{i}"
            split_rows(f"{c}/self_attention/linear_0",
                       [f"{h}.self_attn.q_proj", f"{h}.self_attn.k_proj", f"{h}.self_attn.v_proj"])
            linear(f"{c}/self_attention/linear_1", f"{h}.self_attn.out_proj")
            norm(f"{c}/self_attention/layer_norm", f"{h}.self_attn_layer_norm")
            if side == "decoder":
                split_rows(f"{c}/attention/linear_0", [f"{h}.encoder_attn.q_proj"])
                split_rows(f"{c}/attention/linear_1",
                           [f"{h}.encoder_attn.k_proj", f"{h}.encoder_attn.v_proj"])
                linear(f"{c}/attention/linear_2", f"{h}.encoder_attn.out_proj")
                norm(f"{c}/attention/layer_norm", f"{h}.encoder_attn_layer_norm")
            linear(f"{c}/ffn/linear_0", f"{h}.fc1")
            linear(f"{c}/ffn/linear_1", f"{h}.fc2")
            norm(f"{c}/ffn/layer_norm", f"{h}.final_layer_norm")
    for conv in ("conv1", "conv2"):
        linear(f"encoder/{conv}", f"model.encoder.{conv}")
    sd["model.decoder.embed_tokens.weight"] = get("decoder/embeddings/weight")
    if not dims.tie_word_embeddings:
        sd["proj_out.weight"] = get("decoder/projection/weight")
    elif model.has("decoder/projection/weight"):
        used.add(model.resolve("decoder/projection/weight"))
    if model.has("decoder/projection/bias"):
        bias = get("decoder/projection/bias")
        if np.any(bias != 0):
            raise ConversionError(f"{model.path}: decoder/projection/bias is non-zero; "
                                  "transformers' Whisper has no output bias")

    leftover = sorted(n for n, v in model.variables.items()
                      if v.ndim > 0 and n not in used)
    if leftover:
        raise ConversionError(f"{model.path}: {len(leftover)} variables not mapped to "
                              f"transformers, first {leftover[0]!r}")
    return sd, dims


_NON_LANGUAGE_SPECIALS = {"<|endoftext|>", "<|startoftranscript|>", "<|translate|>",
                          "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>",
                          "<|notimestamps|>"}



def read_ct2_config(ct2_dir: Path) -> dict:
    """The ``config.json`` of a CTranslate2 directory (suppress ids, language ids, alignment
    heads), or ``{}`` when absent."""
    cfg_file = ct2_dir / "config.json"
    if not cfg_file.is_file():
        return {}
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(cfg_file, f"invalid JSON: {exc}") from exc
    if not isinstance(cfg, dict):
        raise InputError(cfg_file, f"expected a JSON object, got {type(cfg).__name__}")
    return cfg


def whisper_configs(dims: WhisperDims, ct2_cfg: dict, tokenizer, cfg_path: Path):
    """WhisperConfig and GenerationConfig from the shapes, CTranslate2's config and tokenizer."""
    transformers = require("transformers", extra="asr")
    GenerationConfig, WhisperConfig = transformers.GenerationConfig, transformers.WhisperConfig

    def tid(token: str) -> int | None:  # None when absent (the tokenizer maps it to unk)
        i = tokenizer.convert_tokens_to_ids(token)
        if i is None or (i == tokenizer.unk_token_id and token != tokenizer.unk_token):
            return None
        return int(i)

    eot, sot = tid("<|endoftext|>"), tid("<|startoftranscript|>")
    suppress = [int(i) for i in ct2_cfg.get("suppress_ids") or []]
    begin_suppress = [int(i) for i in ct2_cfg.get("suppress_ids_begin") or [220, eot]]
    # Whisper's rule (openai/whisper, transformers): multilingual checkpoints have >= 51865
    # tokens; English-only ones (*.en) have 51864 and no language/task prompt.
    multilingual = dims.vocab_size >= 51865
    lang_ids = [int(i) for i in ct2_cfg.get("lang_ids") or []] if multilingual else []
    if multilingual and not lang_ids:  # older conversions: the non-control special tokens
        specials = getattr(tokenizer, "additional_special_tokens", None) or []
        lang_ids = [int(tokenizer.convert_tokens_to_ids(t)) for t in specials
                    if t not in _NON_LANGUAGE_SPECIALS and not re.fullmatch(r"<\|\d+\.\d+\|>", t)]
    lang_to_id = {}
    for i in lang_ids:
        token = tokenizer.convert_ids_to_tokens(i)
        if not (isinstance(token, str) and re.fullmatch(r"<\|[a-z_A-Z-]+\|>", token)):
            raise InputError(cfg_path, f"lang_ids entry {i} is token {token!r}, not a language")
        lang_to_id[token] = i
    heads = ct2_cfg.get("alignment_heads")
    if heads is None:  # CTranslate2's default: every head of the last half of the layers
        heads = [[layer, h] for layer in range(dims.decoder_layers // 2, dims.decoder_layers)
                 for h in range(dims.decoder_attention_heads)]
    heads = [[int(a), int(b)] for a, b in heads]
    for a, b in heads:
        if not (0 <= a < dims.decoder_layers and 0 <= b < dims.decoder_attention_heads):
            raise InputError(cfg_path, f"alignment head {[a, b]} outside "
                                       f"{dims.decoder_layers} layers x "
                                       f"{dims.decoder_attention_heads} heads")
    multilingual = multilingual and bool(lang_to_id)
    task_to_id = {t: tid(f"<|{t}|>") for t in ("transcribe", "translate")} if multilingual else {}

    config = WhisperConfig(
        vocab_size=dims.vocab_size, num_mel_bins=dims.num_mel_bins, d_model=dims.d_model,
        encoder_layers=dims.encoder_layers, decoder_layers=dims.decoder_layers,
        encoder_attention_heads=dims.encoder_attention_heads,
        decoder_attention_heads=dims.decoder_attention_heads,
        encoder_ffn_dim=dims.encoder_ffn_dim, decoder_ffn_dim=dims.decoder_ffn_dim,
        max_source_positions=dims.max_source_positions,
        max_target_positions=dims.max_target_positions,
        activation_function="gelu", scale_embedding=False,
        tie_word_embeddings=dims.tie_word_embeddings,
        pad_token_id=eot, bos_token_id=eot, eos_token_id=eot, decoder_start_token_id=sot,
        suppress_tokens=suppress, begin_suppress_tokens=begin_suppress,
        architectures=["WhisperForConditionalGeneration"],
    )
    gen = dict(
        decoder_start_token_id=sot, bos_token_id=eot, eos_token_id=eot, pad_token_id=eot,
        max_length=dims.max_target_positions, suppress_tokens=suppress,
        begin_suppress_tokens=begin_suppress, alignment_heads=heads,
        no_timestamps_token_id=tid("<|notimestamps|>"), prev_sot_token_id=tid("<|startofprev|>"),
        is_multilingual=multilingual, return_timestamps=False,
        max_initial_timestamp_index=50,
    )
    if multilingual:
        gen.update(lang_to_id=lang_to_id, task_to_id=task_to_id)
    generation = GenerationConfig(**{k: v for k, v in gen.items() if v is not None})
    return config, generation
