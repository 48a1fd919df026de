"""Is a decoded hypothesis broken? The one check used wherever a decode can go wrong: the
streaming engine's shortened encoder window and the vocabulary guard
(:func:`biosig.asr.vocab.decode_with_vocab`)."""

from __future__ import annotations

import zlib

from biosig.asr.metrics import normalize_text

__all__ = ["looks_degenerate"]


def looks_degenerate(words, *, audio_s: float, speech_end_s: float | None = None) -> str | None:
    """Why a hypothesis over ``audio_s`` seconds looks broken, or ``None``.

    Broken: more than 5 words per second plus 3 (speech rarely passes 4), an n-gram of 1-6
    words repeated back to back (4 times for one word, 3 for two to six), a phrase of 4 or
    more words said twice in a row (a repeated sentence), a gzip compression
    ratio of the text above 2.4 (Whisper's own threshold, from 60 characters), or, when
    ``speech_end_s`` (seconds from the start of the audio) is given, the words ending more
    than 2.5 s before the speech does (the decoder stopped early).
    """
    keys = [normalize_text(w.text) for w in words]
    keys = [k for k in keys if k]
    if len(keys) > 5 * audio_s + 3:
        return "too many words"
    for n in range(1, 7):
        need = 4 if n == 1 else 3
        for i in range(0, len(keys) - n * need + 1):
            gram = keys[i:i + n]
            if all(keys[i + r * n: i + (r + 1) * n] == gram for r in range(1, need)):
                return f"{n}-gram repeated"
    for n in range(4, len(keys) // 2 + 1):
        for i in range(0, len(keys) - 2 * n + 1):
            if keys[i:i + n] == keys[i + n:i + 2 * n]:
                return "phrase repeated"
    text = " ".join(keys)
    if len(text) >= 60:
        b = text.encode("utf-8")
        if len(b) / len(zlib.compress(b)) > 2.4:
            return "compression ratio"
    if speech_end_s is not None and speech_end_s > 3.0:
        last = max((w.end_s for w in words), default=0.0)
        if last < speech_end_s - 2.5:
            return "stopped early"
    return None
