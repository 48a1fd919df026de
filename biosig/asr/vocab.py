"""Medical-term biasing: a vocabulary steers decoding, a guard keeps a biased decode from going
wrong, and fuzzy restoration puts terms back where the decoder misheard them.

How ``--vocab`` decodes a stretch of audio (:func:`decode_with_vocab`)
----------------------------------------------------------------------
1. **Plain decode**, without any bias.
2. **Which terms were spoken?** Spans of one to four words of the plain text are compared with
   every term by sound (:func:`sound_similarity`: the Metaphone keys' edit distance, or the
   letters' when that is closer); the terms that come close (``"listen April"`` ->
   lisinopril) are the candidates, at most :data:`MAX_PROMPT_TERMS`. None: the plain decode
   is the result (a term list can then not hurt).
   The plain decode is often too garbled for its spans to sound like the terms, so a
   second decode with the whole vocabulary as its prompt (as many terms as fit) is
   listened to as well ("colon mice are 5,000 grams" -> "colonisoprilol 5mg, and apixaban
   5mg"), and the candidates are those of either decode. Which terms the plain decode
   garbles beyond recognition depends on small differences in the int8 arithmetic, that is
   on the CPU: on one clip, CTranslate2's GENERIC kernels gave "bisapral" (a candidate) and
   its AVX2 and AVX512 kernels "colonized are" (none), so the plain decode alone made the
   biasing work on some machines and not on others. The listening decode heard both drugs
   under every backend and instruction set (``bench/dictation_vocab_variants.py``). On
   telephone audio it also took the tuning voice's WER from 88.5 to 84.7 % and term recall
   from 44 to 52 % (issue 15, when only narrow-band audio was listened to).
3. **Biased decode** with the candidates as the decoder's prompt (``"Terms: apixaban,
   lisinopril."``) and nothing else: no faster-whisper ``hotwords`` on top of the prompt (the
   two together put the same list twice before the transcript, and Whisper base continues a
   repetitive context by repeating itself: a 4 s sentence came back 15 times), and a short
   list, not the whole vocabulary (70 terms fill the 223-token prompt and make every clip
   look like a list). It is a beam search without the temperature fallback, as in
   streaming: the guard below replaces the fallback, and the result does not depend on
   the sampler's state (CTranslate2 seeds each worker thread's sampler once, at its first
   use, so a sampled fallback differs from one call to the next in one process).
4. **Guard** (:func:`vocab_guard`): a biased hypothesis that
   :func:`biosig.asr.degenerate.looks_degenerate` rejects (repeated n-grams or sentences,
   more words than the audio can hold, a text that compresses too well), that copies the
   prompt (a term said twice back to back, or four prompt terms in a row with only
   punctuation between them: ``"sleep apnoea, wheeze, pleuritic pain, warfarin."``; a
   dictated list of four terms then keeps the plain decode), or that has far more
   words than the plain one (more than 1.5 times plus 3) is dropped, and the plain decode
   is kept.
5. **Only for a term, on wideband audio.** There a biased decode is kept only where it holds
   more of the prompted terms than the plain decode (the dictation normaliser's word match):
   otherwise the prompt only perturbed a good decode. Read speech whose words merely sound
   like a term (FLEURS: "to foreigners" came back as "to four owners" under the prompt) keeps
   the plain decode. Narrow-band audio skips this rule: its plain decode is too garbled to
   be the baseline, and the prompt's clinical context helps it even where no term comes out.
   On the tuning voice: wideband 24.6 -> 22.4 % WER with this rule; applying it to the
   telephone clips too cost 2.2 points there (84.7 -> 86.9 %), and keeping any biased decode
   that holds at least one term and no fewer than the plain one was worse on both.

:func:`correct_terms` (``--vocab-correct``) then replaces spans whose words the decoder was
unsure of (mean word probability below ``max_probability``) and that sound like a term
(similarity at least ``min_similarity``) by the term.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, replace
from pathlib import Path

from biosig.asr.audio import ASR_FS, is_narrowband
from biosig.asr.degenerate import looks_degenerate
from biosig.asr.metrics import normalize_text, term_recall
from biosig.asr.types import Word
from biosig.errors import ConfigError, InputError
from biosig.extras import require

__all__ = ["Vocabulary", "read_vocab", "vocab_prompt", "sound_similarity", "correct_terms",
           "Correction", "decode_with_vocab", "vocab_guard", "prompted_decode_guard",
           "MAX_PROMPT_TERMS"]

log = logging.getLogger(__name__)

#: Whisper's prompt holds at most 223 tokens; the vocabulary part stays well inside it.
MAX_PROMPT_CHARS = 400
#: Terms put in one biased decode's prompt (the closest to what the plain decode heard).
MAX_PROMPT_TERMS = 12
#: A biased decode with this many prompt terms in a row (only punctuation between them) copied
#: the prompt's list (:func:`vocab_guard`). Three is a dictated medication list often enough.
LIST_TERMS = 4
#: Terms shorter than this (letters) are never restored by :func:`correct_terms`: "gout" or
#: "fever" sound like too many everyday words.
MIN_CORRECT_LETTERS = 6
#: Span length (words) compared with a term: up to the term's words plus this.
_EXTRA_WORDS = 1
_LETTERS = re.compile(r"[^a-z]+")


def _letters(text: str) -> str:
    return _LETTERS.sub("", text.lower())


@functools.cache
def _kernels():
    """(metaphone, normalised Levenshtein similarity), looked up once: both run thousands of
    times per decode."""
    return (require("jellyfish", extra="asr").metaphone,
            require("rapidfuzz", extra="asr").distance.Levenshtein.normalized_similarity)


def _metaphone(letters: str) -> str:
    return _kernels()[0](letters) if letters else ""


def _similarity(a: str, b: str) -> float:
    return float(_kernels()[1](a, b)) if a and b else 0.0


def _sound(letters_a: str, key_a: str, letters_b: str, key_b: str) -> float:
    return max(_similarity(key_a, key_b), _similarity(letters_a, letters_b))


def sound_similarity(a: str, b: str) -> float:
    """How alike two words or phrases sound, in [0, 1]: the larger of the normalised
    Levenshtein similarities of their Metaphone keys and of their letters (spaces and
    punctuation ignored). ``sound_similarity("listen april", "lisinopril")`` is 0.86,
    ``sound_similarity("malitis", "mellitus")`` 1.0."""
    la, lb = _letters(a), _letters(b)
    return _sound(la, _metaphone(la), lb, _metaphone(lb))


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
    if not terms:
        raise InputError(p, "vocabulary holds no terms (one term per line expected)")
    return terms


def vocab_prompt(terms, *, max_chars: int = MAX_PROMPT_CHARS) -> str | None:
    """The decoder prompt for ``terms``: ``"Terms: a, b, c."`` (first terms win when they do
    not all fit in ``max_chars``)."""
    text = ""
    for t in terms:
        piece = (", " if text else "Terms: ") + t
        if len(text) + len(piece) + 1 > max_chars:
            break
        text += piece
    return text + "." if text else None


@dataclass(frozen=True)
class _Term:
    text: str
    letters: str
    key: str
    n_words: int


@dataclass(frozen=True)
class Correction:
    """One span replaced by :func:`correct_terms` (``start``/``end``: word indices)."""

    start: int
    end: int
    heard: str
    term: str
    similarity: float
    probability: float


class Vocabulary:
    """Terms to bias decoding towards, with their phonetic keys.

    Parameters
    ----------
    terms : iterable of str
        One term per item (a drug, a finding: ``"lisinopril"``, ``"diabetes mellitus"``);
        duplicates (ignoring case) are dropped, order is kept.

    Examples
    --------
    >>> v = Vocabulary(["lisinopril", "apixaban"])
    >>> v.candidates("started listen april ten milligrams")[0][0]
    'lisinopril'
    """

    def __init__(self, terms):
        out, seen = [], set()
        for t in terms:
            t = str(t).strip()
            if t and t.lower() not in seen:
                seen.add(t.lower())
                letters = _letters(t)
                if letters:
                    out.append(_Term(t, letters, _metaphone(letters), len(t.split())))
        if not out:
            raise ConfigError("vocabulary: expected at least one term with letters")
        self._terms = tuple(out)

    @classmethod
    def read(cls, path) -> Vocabulary:
        """From a file of one term per line (:func:`read_vocab`)."""
        return cls(read_vocab(path))

    @property
    def terms(self) -> list[str]:
        return [t.text for t in self._terms]

    def __len__(self) -> int:
        return len(self._terms)

    def prompt(self, terms=None) -> str | None:
        """:func:`vocab_prompt` of ``terms`` (default: all, as many as fit)."""
        return vocab_prompt(self.terms if terms is None else terms)

    def _spans(self, words: list[str]):
        """(start, end, letters, key) of every span of 1 to 4 words."""
        longest = min(max(t.n_words for t in self._terms) + _EXTRA_WORDS, 4)
        for i in range(len(words)):
            for j in range(i + 1, min(i + longest, len(words)) + 1):
                letters = "".join(_letters(w) for w in words[i:j])
                if letters:
                    yield i, j, letters, _metaphone(letters)

    def _score(self, term: _Term, letters: str, key: str) -> float:
        # spans much longer or shorter than the term cannot sound like it
        if not 0.5 * len(term.letters) <= len(letters) <= 2.0 * len(term.letters) + 2:
            return 0.0
        return _sound(term.letters, term.key, letters, key)

    def candidates(self, text: str, *, min_similarity: float = 0.6,
                   max_terms: int = MAX_PROMPT_TERMS) -> list[tuple[str, float]]:
        """Terms that sound like a span of ``text``, most similar first.

        Returns
        -------
        list of (term, similarity)
            At most ``max_terms``, each with similarity >= ``min_similarity``.
        """
        words = text.split()
        best: dict[str, float] = {}
        spans = list(self._spans(words))
        for t in self._terms:
            s = max((self._score(t, letters, key) for _, _, letters, key in spans), default=0.0)
            if s >= min_similarity:
                best[t.text] = s
        ranked = sorted(best.items(), key=lambda kv: -kv[1])
        return ranked[:max_terms]


def correct_terms(words, vocab: Vocabulary, *, min_similarity: float = 0.85,
                  max_probability: float = 0.6):
    """Replace spans of words that sound like a vocabulary term and that the decoder was
    unsure of by the term (fuzzy term restoration, ``--vocab-correct``).

    Parameters
    ----------
    words : sequence of Word
        Decoded words in order (their ``probability`` is the decoder's confidence).
    vocab : Vocabulary
    min_similarity : float in (0, 1]
        :func:`sound_similarity` a span needs with a term.
    max_probability : float in [0, 1]
        A span is replaced only when its words' mean probability is below this: a word the
        decoder is sure of is kept, however much it sounds like a term.

    Terms of fewer than :data:`MIN_CORRECT_LETTERS` letters are not restored, and a span that
    already holds a term's letters is left alone (``"a diabetes mellitus"`` stays).

    Returns
    -------
    (list of Word, list of Correction)
        The words with replacements (a replaced span becomes one word spanning its times,
        keeping the first word's leading space and the last word's trailing punctuation), and
        what was replaced.
    """
    if not 0 < min_similarity <= 1:
        raise ConfigError(f"min_similarity: expected in (0, 1], got {min_similarity}")
    if not 0 <= max_probability <= 1:
        raise ConfigError(f"max_probability: expected in [0, 1], got {max_probability}")
    words = list(words)
    texts = [w.text for w in words]
    found = []
    for i, j, letters, key in vocab._spans(texts):
        prob = sum(w.probability for w in words[i:j]) / (j - i)
        if prob >= max_probability:
            continue
        for t in vocab._terms:
            if len(t.letters) < MIN_CORRECT_LETTERS or t.letters in letters:
                continue  # a short term sounds like too many words; the term is already there
            s = vocab._score(t, letters, key)
            if s >= min_similarity:
                found.append((s, -(j - i), i, j, t, prob))
    found.sort(key=lambda f: (-f[0], f[1]))
    taken = [False] * len(words)
    chosen = []
    for s, _, i, j, t, prob in found:
        if any(taken[i:j]):
            continue
        # a span that is already the term followed or preceded by other words is not a match
        for k in range(i, j):
            taken[k] = True
        chosen.append(Correction(i, j, "".join(texts[i:j]).strip(), t.text, s, prob))
    if not chosen:
        return words, []
    out, k = [], 0
    by_start = {c.start: c for c in chosen}
    while k < len(words):
        c = by_start.get(k)
        if c is None:
            out.append(words[k])
            k += 1
            continue
        first, last = words[c.start], words[c.end - 1]
        lead = first.text[: len(first.text) - len(first.text.lstrip())]
        trail = re.search(r"[^\w]*$", last.text.strip()).group(0)
        out.append(Word(lead + c.term + trail, first.start_s, last.end_s, c.probability))
        k = c.end
    return out, sorted(chosen, key=lambda c: c.start)


def _copies_prompt(text: str, terms) -> str | None:
    """Why ``text`` looks like the prompt's term list carried into the transcript, or
    ``None``: one of ``terms`` said twice back to back, or :data:`LIST_TERMS` of them in a
    row with nothing but punctuation between them."""
    words = normalize_text(text).split()
    hits = []   # (start, end, term) of every occurrence of a term
    for k, term in enumerate(terms):
        tw = normalize_text(term).split()
        n = len(tw)
        if n:
            hits.extend((i, i + n, k) for i in range(len(words) - n + 1)
                        if words[i:i + n] == tw)
    ends: dict[int, list[tuple[int, int]]] = {}   # end -> (term, terms in a row there)
    for a, b, k in sorted(hits):
        before = ends.get(a, [])
        if any(pk == k for pk, _ in before):
            return "a vocabulary term repeated"
        run = 1 + max((n for _, n in before), default=0)
        if run >= LIST_TERMS:
            return "a list of vocabulary terms"
        ends.setdefault(b, []).append((k, run))
    return None


def vocab_guard(words, terms, *, audio_s: float,
                speech_end_s: float | None = None) -> str | None:
    """Why a decode biased with ``terms`` must be dropped, or ``None``: it looks degenerate
    (:func:`biosig.asr.degenerate.looks_degenerate`, with ``audio_s`` and ``speech_end_s``)
    or it copies the prompt (a term twice back to back, or :data:`LIST_TERMS` terms in a
    row). The one check of offline (:func:`decode_with_vocab`) and streaming decodes."""
    words = list(words)
    if not words:
        return None
    why = looks_degenerate(words, audio_s=audio_s, speech_end_s=speech_end_s)
    if why is None and terms:
        why = _copies_prompt("".join(w.text for w in words), terms)
    return why


def prompted_decode_guard(plain, prompted, terms, *, audio_s: float) -> str | None:
    """Why a decode with a prompt (``prompted``: a ``DecodeResult`` or a ``Transcript``,
    anything with ``segments``) must give way to the plain decode of the same audio, or
    ``None``: :func:`vocab_guard` on its words, or far
    more words than the plain decode (more than 1.5 times plus 3)."""
    why = vocab_guard([w for s in prompted.segments for w in s.words], terms, audio_s=audio_s)
    n_plain = sum(len(s.text.split()) for s in plain.segments)
    n_prompted = sum(len(s.text.split()) for s in prompted.segments)
    if why is None and n_prompted > 1.5 * n_plain + 3:
        why = "far more words than the plain decode"
    return why


def _terms_in(terms, segments) -> int:
    """How many of ``terms`` a decode's text holds (the dictation normaliser's word match)."""
    return term_recall(list(terms), " ".join(s.text for s in segments))[0]


def decode_with_vocab(model, audio, options, vocab: Vocabulary, *,
                      max_terms: int = MAX_PROMPT_TERMS, min_similarity: float = 0.6):
    """Decode 16 kHz ``audio`` biased towards the terms it seems to contain (module
    docstring: plain decode, candidate terms, biased decode, guard).

    ``options.initial_prompt`` (earlier text, for context) is kept after the terms;
    ``options.hotwords`` must be empty.

    Returns
    -------
    (DecodeResult, dict)
        The result, and what happened: ``terms`` (how many were in the prompt),
        ``narrowband`` (the audio was: the wideband rule of step 5 was skipped),
        ``biased`` (the biased decode was kept), ``rejected`` (why the guard dropped it, or
        ``None``).
    """
    if options.hotwords:
        raise ConfigError("decode_with_vocab: options.hotwords must be empty (the vocabulary "
                          "goes in the prompt)")

    def prompted(terms):
        return " ".join(p for p in (vocab_prompt(terms), options.initial_prompt) if p)

    plain = model.decode(audio, options)
    spent = plain.decode_time_s
    heard = [" ".join(s.text for s in plain.segments)]
    narrow = is_narrowband(audio, fs=ASR_FS)
    listened = model.decode(audio, options.replace(initial_prompt=prompted(vocab.terms),
                                                   temperature_fallback=False))
    spent += listened.decode_time_s
    heard.append(" ".join(s.text for s in listened.segments))
    best: dict[str, float] = {}
    for text in heard:
        for t, sim in vocab.candidates(text, min_similarity=min_similarity,
                                       max_terms=max_terms):
            best[t] = max(best.get(t, 0.0), sim)
    cands = [t for t, _ in sorted(best.items(), key=lambda kv: -kv[1])][:max_terms]
    info = {"terms": len(cands), "narrowband": narrow, "biased": False, "rejected": None}
    if not cands:
        return replace(plain, decode_time_s=spent), info
    biased = model.decode(audio, options.replace(initial_prompt=prompted(cands),
                                                 temperature_fallback=False))
    spent += biased.decode_time_s
    why = prompted_decode_guard(plain, biased, cands, audio_s=len(audio) / ASR_FS)
    if why is None and not narrow and (_terms_in(cands, biased.segments)
                                       <= _terms_in(cands, plain.segments)):
        why = "no more prompted terms than the plain decode"
    if why is not None:
        log.info("biased decode rejected (%s): kept the plain decode", why)
        info["rejected"] = why
        return replace(plain, decode_time_s=spent), info
    info["biased"] = True
    return replace(biased, decode_time_s=spent), info
