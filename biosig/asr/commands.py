"""Spoken dictation commands ("period", "new paragraph", "scratch that") applied to text.

The table is data: a YAML file or dict with two keys, both optional::

    insert:            # spoken phrase -> text inserted in place of the phrase
      period: "."
      full stop: "."
      comma: ","
      colon: ":"
      question mark: "?"
      new line: "\\n"
      new paragraph: "\\n\\n"
    scratch: ["scratch that"]   # phrases that delete the last phrase

Unknown keys are errors. Phrases are matched case-insensitively on whole words, ignoring the
punctuation the recogniser attached to them (Whisper often writes "Period." for a spoken
"period"), longest phrase first. A phrase is a sentence: it ends at an inserted ".", "?", "!" or
line break, or at a sentence end the recogniser wrote itself; "scratch that" deletes the
sentence in progress or, if it is empty, the last complete sentence with its symbol.

A command word is always a command: "a period of two weeks" becomes "A. Of two weeks"; as in
other dictation systems, say "period" only as a command.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from biosig.errors import ConfigError

__all__ = ["CommandTable", "DEFAULT_COMMANDS", "apply_commands"]

DEFAULT_COMMANDS = {
    "insert": {"period": ".", "full stop": ".", "comma": ",", "colon": ":",
               "question mark": "?", "new line": "\n", "new paragraph": "\n\n"},
    "scratch": ["scratch that"],
}

_SENTENCE_END = (".", "?", "!")
_TRAILING_PUNCT = ".,:;?!"


def _words(phrase: str) -> tuple[str, ...]:
    return tuple(re.sub(r"[^\w' ]+", " ", phrase.lower()).split())


@dataclass(frozen=True)
class CommandTable:
    """Spoken command phrases; build with :meth:`default`, :meth:`from_dict`, :meth:`from_yaml`."""

    insert: dict[tuple[str, ...], str] = field(default_factory=dict)
    scratch: frozenset[tuple[str, ...]] = frozenset()

    @classmethod
    def default(cls) -> CommandTable:
        return cls.from_dict(DEFAULT_COMMANDS)

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "commands") -> CommandTable:
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a mapping with keys insert, scratch; got "
                              f"{type(d).__name__}")
        unknown = set(d) - {"insert", "scratch"}
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)}; expected insert, "
                              "scratch")
        ins = d.get("insert") or {}
        if not isinstance(ins, dict):
            raise ConfigError(f"{source}.insert: expected a mapping phrase -> text, got "
                              f"{type(ins).__name__}")
        insert = {}
        for k, v in ins.items():
            if not isinstance(k, str) or not isinstance(v, str) or not _words(k):
                raise ConfigError(f"{source}.insert: {k!r}: expected a spoken phrase mapped to "
                                  f"a string, got {v!r}")
            insert[_words(k)] = v
        sc = d.get("scratch") or []
        if isinstance(sc, str) or not all(isinstance(s, str) and _words(s) for s in sc):
            raise ConfigError(f"{source}.scratch: expected a list of phrases, got {sc!r}")
        scratch = frozenset(_words(s) for s in sc)
        clash = scratch & set(insert)
        if clash:
            raise ConfigError(f"{source}: phrase(s) {[' '.join(c) for c in clash]} are both "
                              "insert and scratch")
        return cls(insert, scratch)

    @classmethod
    def from_yaml(cls, path) -> CommandTable:
        import yaml

        from biosig.fileio import load_yaml
        p = Path(path)
        try:
            d = load_yaml(p.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{p}: cannot read command table ({type(exc).__name__})") from exc
        return cls.from_dict(d or {}, source=str(p))

    @property
    def max_len(self) -> int:
        return max((len(k) for k in list(self.insert) + list(self.scratch)), default=0)


def _strip_trailing(word: str) -> str:
    return word.rstrip(_TRAILING_PUNCT) or word


def apply_commands(words: list[str], table: CommandTable | None = None) -> str:
    """Render recognised words into a document, executing spoken commands.

    Parameters
    ----------
    words : list of str
        Recognised words in order (Whisper's text split on whitespace, punctuation attached).
    table : CommandTable, optional
        Default :meth:`CommandTable.default`.

    Returns
    -------
    str
        The document text.

    Examples
    --------
    >>> apply_commands("the patient is stable period new paragraph plan colon rest".split())
    'The patient is stable.\\n\\nPlan: rest'
    >>> apply_commands("no cough period no fever comma rash scratch that".split())
    'No cough.'
    """
    table = table or CommandTable.default()
    tokens = [w for w in " ".join(words).split()]
    norm = [_words(w) for w in tokens]
    phrases: list[list] = [[[], None]]  # each phrase: [words, terminator or None]
    i, n, kmax = 0, len(tokens), table.max_len
    while i < n:
        matched = None
        flat: list[str] = []
        for k in range(1, min(kmax, n - i) + 1):
            flat.extend(norm[i + k - 1])
            key = tuple(flat)
            if key in table.insert:
                matched = (k, "insert", table.insert[key])
            elif key in table.scratch:
                matched = (k, "scratch", None)
        if matched is None:
            cur = phrases[-1]
            cur[0].append(tokens[i])
            if tokens[i].endswith(_SENTENCE_END):  # the recogniser's own sentence end
                cur[1] = ""
                phrases.append([[], None])
            i += 1
            continue
        k, kind, sym = matched
        if kind == "insert":
            cur = phrases[-1]
            if not cur[0] and len(phrases) > 1 and phrases[-2][1] == "":
                # "stable. Period." -> the command replaces the recogniser's own sentence end
                phrases.pop()
                cur = phrases[-1]
            if cur[0]:
                cur[0][-1] = _strip_trailing(cur[0][-1])
            if _closes(sym):
                cur[1] = sym
                phrases.append([[], None])
            elif cur[0]:
                cur[0][-1] = cur[0][-1] + sym
            else:
                cur[0].append(sym)
        else:  # scratch: the sentence in progress, or the last complete one
            if phrases[-1][0]:
                phrases[-1] = [[], None]
            elif len(phrases) > 1:
                phrases.pop()
                phrases[-1] = [[], None]
        i += k
    return _render(phrases)


def _closes(sym: str) -> bool:
    return sym.strip(" ").endswith(_SENTENCE_END) or "\n" in sym


def _render(phrases) -> str:
    out = ""
    cap = True
    for words, term in phrases:
        for w in words:
            if cap and w[:1].islower():
                w = w[0].upper() + w[1:]
            elif not cap and out.rstrip(" ").endswith((",", ":", ";")) and w[:1].isupper() \
                    and w[1:].islower() and w != "I":
                w = w[0].lower() + w[1:]
            cap = False
            if out and not out.endswith(("\n", " ")):
                out += " "
            out += w
        if term:
            out = out.rstrip(" ") + term
            if term.strip(" ").endswith(_SENTENCE_END) or term.endswith("\n"):
                cap = True
        elif term == "" and words:
            cap = True
    return out.strip(" ")
