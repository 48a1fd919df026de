"""The Whisper tokenizer of a CTranslate2 directory, completed with the timestamp tokens."""

from __future__ import annotations

import json
from pathlib import Path

from biosig.errors import InputError
from biosig.extras import require

__all__ = ["build_tokenizer", "read_ct2_vocabulary", "timestamp_token"]


def timestamp_token(i: int) -> str:
    """Whisper's timestamp token ``i`` (0.02 s steps): ``<|0.00|>``, ``<|0.02|>`` ..."""
    return "<|%.2f|>" % (i * 0.02)


def build_tokenizer(ct2_dir: Path, vocab_size: int, work_dir: Path):
    """A WhisperTokenizer from CTranslate2's tokenizer.json, completed to ``vocab_size``.

    Returns the tokenizer and the number of timestamp tokens appended.

    CTranslate2 directories converted from the hub carry the tokenizer.json of the original
    model, which (for older checkpoints) stops after ``<|notimestamps|>``; the timestamp tokens
    ``<|0.00|>`` ... ``<|30.00|>`` are then appended as added tokens, as in the current hub
    tokenizers. ``vocabulary.txt`` (or ``vocabulary.json``), when present, must agree.
    """
    tokenizers = require("tokenizers", extra="asr")
    WhisperTokenizer = require("transformers", extra="asr").WhisperTokenizer
    AddedToken, Tokenizer = tokenizers.AddedToken, tokenizers.Tokenizer

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
        first = backend.token_to_id(timestamp_token(0))
        if first is not None:
            raise InputError(tok_file, f"has timestamp tokens but {n_missing} tokens fewer than "
                                       f"the model's {vocab_size}")
        backend.add_tokens([AddedToken(timestamp_token(i), single_word=False, lstrip=False,
                                       rstrip=False, normalized=False, special=False)
                            for i in range(n_missing)])
    ids = {t: backend.token_to_id(t) for t in ("<|endoftext|>", "<|startoftranscript|>")}
    if None in ids.values():
        raise InputError(tok_file, "lacks <|endoftext|> or <|startoftranscript|>: not a "
                                   "Whisper tokenizer")

    vocab_list = read_ct2_vocabulary(ct2_dir)
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


def read_ct2_vocabulary(ct2_dir: Path) -> list[str] | None:
    """The tokens of ``vocabulary.json`` (or ``vocabulary.txt``, one per line) in a CTranslate2
    directory, or ``None`` when it has neither."""
    txt, js = ct2_dir / "vocabulary.txt", ct2_dir / "vocabulary.json"
    if js.is_file():
        return json.loads(js.read_text(encoding="utf-8"))
    if txt.is_file():
        lines = txt.read_text(encoding="utf-8").split("\n")
        return lines[:-1] if lines and lines[-1] == "" else lines
    return None
