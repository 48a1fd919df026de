"""Scoring: the text normaliser, WER/CER, medical-term recall and streaming latency.

The normaliser (:func:`normalize_text`) is applied to reference and hypothesis alike:

1. Unicode NFKC, lower case; curly apostrophes become ``'``.
2. Numbers become words: ``25`` -> ``twenty five``, ``2.5`` -> ``two point five``,
   ``1,000`` -> ``one thousand``, ``3rd`` -> ``third``, ``50%`` -> ``fifty percent``.
3. ``&`` -> ``and``; hyphens, slashes and all other punctuation become spaces, except an
   apostrophe inside a word (``don't`` stays).
4. Whitespace collapsed.

No spelling or contraction mapping is done (unlike Whisper's English normaliser), so ``colour``
and ``color`` differ; references with digits (FLEURS) and with words (LibriSpeech) compare fairly.
"""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from dataclasses import asdict, dataclass

import numpy as np

from biosig.extras import require

__all__ = ["normalize_text", "number_to_words", "ErrorRates", "error_rates", "term_recall",
           "LatencyStats", "latency_stats", "align_word_times"]

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
         "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
_ORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
        "nine": "ninth", "twelve": "twelfth"}


def number_to_words(n: int) -> str:
    """Spell a non-negative integer in English words without "and" (``115`` -> one hundred
    fifteen)."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n < 20:
        return _ONES[n]
    if n < 100:
        t, o = divmod(n, 10)
        return _TENS[t] + ("" if o == 0 else " " + _ONES[o])
    for value, name in _SCALES:
        if n >= value:
            q, r = divmod(n, value)
            return number_to_words(q) + " " + name + ("" if r == 0 else " " + number_to_words(r))
    raise AssertionError("unreachable")  # pragma: no cover


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in _ORD:
        last = _ORD[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return (head + " " if head else "") + last


_NUM = re.compile(r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(st|nd|rd|th)?(%?)")


def _spell(m: re.Match) -> str:
    whole, frac, ordsuf, pct = m.group(1), m.group(2), m.group(3), m.group(4)
    n = int(whole.replace(",", ""))
    if len(whole) > 1 and whole.startswith("0") and "," not in whole:
        out = " ".join(_ONES[int(d)] for d in whole)  # 007 -> zero zero seven
    else:
        out = number_to_words(n)
    if frac:
        out += " point " + " ".join(_ONES[int(d)] for d in frac)
    elif ordsuf:
        out = _ordinal(out)
    if pct:
        out += " percent"
    return f" {out} "


def normalize_text(text: str) -> str:
    """Normalise text for WER/CER (see the module docstring for the exact rules)."""
    s = unicodedata.normalize("NFKC", text).lower()
    s = s.replace("\u2019", "'").replace("\u2018", "'").replace("&", " and ")
    s = _NUM.sub(_spell, s)
    s = re.sub(r"(?<=\w)'(?=\w)", "\x00", s)  # protect in-word apostrophes
    s = re.sub(r"[^\w\x00]+|_", " ", s)
    s = s.replace("\x00", "'")
    return " ".join(s.split())


@dataclass
class ErrorRates:
    """Corpus-level error rates (errors summed over utterances / reference length)."""

    wer: float
    cer: float
    substitutions: int
    deletions: int
    insertions: int
    n_ref_words: int
    n_ref_chars: int

    def to_dict(self) -> dict:
        return asdict(self)


def error_rates(references: list[str], hypotheses: list[str], *,
                normalize: bool = True) -> ErrorRates:
    """WER and CER over a corpus with :mod:`jiwer`, after :func:`normalize_text`.

    Empty references are allowed (their hypothesis words count as insertions).
    """
    jiwer = require("jiwer", extra="asr")
    if len(references) != len(hypotheses):
        raise ValueError(f"references and hypotheses differ in length: {len(references)} vs "
                         f"{len(hypotheses)}")
    refs = [normalize_text(r) if normalize else r for r in references]
    hyps = [normalize_text(h) if normalize else h for h in hypotheses]
    s = d = i = nw = 0
    ce = nc = 0
    for r, h in zip(refs, hyps):
        rw, hw = r.split(), h.split()
        if not rw:
            i += len(hw)
            ce += len(h)
            continue
        if not hw:
            d += len(rw)
            nw += len(rw)
            ce += len(r)
            nc += len(r)
            continue
        o = jiwer.process_words(r, h)
        s, d, i = s + o.substitutions, d + o.deletions, i + o.insertions
        nw += len(rw)
        c = jiwer.process_characters(r, h)
        ce += c.substitutions + c.deletions + c.insertions
        nc += len(r)
    wer = (s + d + i) / nw if nw else (0.0 if i == 0 else math.inf)
    cer = ce / nc if nc else (0.0 if ce == 0 else math.inf)
    return ErrorRates(wer, cer, s, d, i, nw, nc)


def term_recall(terms: list[str], hypothesis: str) -> tuple[int, int]:
    """How many of ``terms`` occur (normalised, on word boundaries) in ``hypothesis``.

    Returns
    -------
    (found, total) : tuple of int
    """
    hyp = f" {normalize_text(hypothesis)} "
    found = sum(1 for t in terms if normalize_text(t) and f" {normalize_text(t)} " in hyp)
    return found, len(terms)


@dataclass
class LatencyStats:
    """Commit latency of a stream, in seconds.

    ``mean_s``, ``p50_s``, ``p90_s``, ``max_s`` summarise (commit time - end time of the word in
    the audio) over committed words; ``last_word_delay_s`` is the commit time of the last word
    minus the end of the audio.
    """

    n_words: int
    mean_s: float
    p50_s: float
    p90_s: float
    max_s: float
    last_word_delay_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def latency_stats(commit_times_s, word_end_s, *, audio_end_s: float) -> LatencyStats:
    """Latency summary from per-word commit times and word end times.

    Parameters
    ----------
    commit_times_s : array_like [shape=(n_words,)]
        When each word was committed, on the stream clock (seconds since the stream started).
    word_end_s : array_like [shape=(n_words,)]
        When each word ends in the audio (seconds from its start).
    audio_end_s : float
        Duration of the audio.

    Percentiles use linear interpolation (numpy's default).
    """
    c = np.asarray(commit_times_s, dtype=float)
    e = np.asarray(word_end_s, dtype=float)
    if c.shape != e.shape:
        raise ValueError(f"commit_times_s and word_end_s differ in shape: {c.shape} vs {e.shape}")
    if c.size == 0:
        nan = float("nan")
        return LatencyStats(0, nan, nan, nan, nan, nan)
    lat = c - e
    return LatencyStats(int(c.size), float(lat.mean()), float(np.percentile(lat, 50)),
                        float(np.percentile(lat, 90)), float(lat.max()),
                        float(c.max() - audio_end_s))


def align_word_times(hyp_words: list[str], hyp_end_s, ref_words: list[str], ref_end_s):
    """Replace hypothesis word end times by those of matching reference words.

    Used to measure latency against one common time reference (an offline transcription with
    word timestamps) instead of each streaming system's own timestamps. Words are matched with
    :class:`difflib.SequenceMatcher` on normalised text; unmatched words keep their own time.

    Returns
    -------
    np.ndarray [shape=(len(hyp_words),)]
    """
    out = np.asarray(hyp_end_s, dtype=float).copy()
    a = [normalize_text(w) for w in hyp_words]
    b = [normalize_text(w) for w in ref_words]
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for blk in sm.get_matching_blocks():
        for k in range(blk.size):
            out[blk.a + k] = float(ref_end_s[blk.b + k])
    return out
