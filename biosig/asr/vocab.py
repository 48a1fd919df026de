"""Medical-term biasing: a vocabulary list turned into a decoder prompt and hotwords."""

from __future__ import annotations

from pathlib import Path

from biosig.errors import InputError

__all__ = ["read_vocab", "vocab_prompt", "vocab_hotwords"]

#: Whisper's prompt holds at most 223 tokens; keep the vocabulary part well inside it.
MAX_PROMPT_CHARS = 400


def read_vocab(path) -> list[str]:
    """Read a vocabulary file: one term per line, ``#`` comments and blank lines ignored."""
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(p, f"cannot read vocabulary ({type(exc).__name__}: {exc})") from exc
    terms, seen = [], set()
    for line in lines:
        term = line.split("#", 1)[0].strip()
        if term and term.lower() not in seen:
            seen.add(term.lower())
            terms.append(term)
    return terms


def vocab_prompt(terms: list[str], *, max_chars: int = MAX_PROMPT_CHARS) -> str | None:
    """A prompt that primes the decoder with the spelling of ``terms`` (first terms win)."""
    if not terms:
        return None
    text = "Clinical note. Terms: "
    for i, t in enumerate(terms):
        piece = (", " if i else "") + t
        if len(text) + len(piece) + 1 > max_chars:
            break
        text += piece
    return text + "."


def vocab_hotwords(terms: list[str], *, max_chars: int = MAX_PROMPT_CHARS) -> str | None:
    """The same terms as faster-whisper ``hotwords`` (a space-separated prefix)."""
    if not terms:
        return None
    out = ""
    for t in terms:
        if len(out) + len(t) + 1 > max_chars:
            break
        out += (" " if out else "") + t
    return out
