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
from pathlib import Path

import yaml
from pydantic import PrivateAttr, field_validator, model_validator

from biosig.config import ConfigModel
from biosig.errors import ConfigError
from biosig.fileio import load_yaml

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


class CommandTable(ConfigModel):
    """Spoken command phrases (a :class:`~biosig.config.ConfigModel`: frozen, and a mistake is
    a one-line :class:`~biosig.errors.ConfigError` naming the key).

    Build with :meth:`default`, :meth:`from_yaml`, :meth:`from_dict` (errors naming the
    source) or ``CommandTable(insert={...}, scratch=[...])``.

    Attributes
    ----------
    insert : dict of str to str
        Spoken phrase -> text inserted in its place.
    scratch : list of str
        Phrases that delete the sentence in progress (or the last one).
    """

    insert: dict[str, str] = {}
    scratch: list[str] = []

    # the phrases as lower-case word tuples, the form apply_commands matches
    _insert_words: dict[tuple[str, ...], str] = PrivateAttr(default_factory=dict)
    _scratch_words: frozenset[tuple[str, ...]] = PrivateAttr(default_factory=frozenset)

    @field_validator("insert", "scratch", mode="before")
    @classmethod
    def _empty_section(cls, value, info):
        if value is None:                      # ``insert:`` with nothing under it in YAML
            return {} if info.field_name == "insert" else []
        return value

    @field_validator("insert")
    @classmethod
    def _insert_phrases(cls, value: dict[str, str]) -> dict[str, str]:
        for phrase in value:
            if not _words(phrase):
                raise ValueError(f"phrase {phrase!r} has no words")
        return value

    @field_validator("scratch")
    @classmethod
    def _scratch_phrases(cls, value: list[str]) -> list[str]:
        for phrase in value:
            if not _words(phrase):
                raise ValueError(f"phrase {phrase!r} has no words")
        return value

    @model_validator(mode="after")
    def _no_clash(self):
        clash = {_words(s) for s in self.scratch} & {_words(k) for k in self.insert}
        if clash:
            raise ValueError(f"phrase(s) {sorted(' '.join(c) for c in clash)} are both insert "
                             "and scratch")
        return self

    def model_post_init(self, context, /) -> None:
        self._insert_words = {_words(k): v for k, v in self.insert.items()}
        self._scratch_words = frozenset(_words(s) for s in self.scratch)

    @classmethod
    def default(cls) -> CommandTable:
        return cls.from_dict(DEFAULT_COMMANDS)

    @classmethod
    def from_dict(cls, d: dict, *, source: str = "commands") -> CommandTable:
        """:meth:`validate_mapping` of ``d``, errors starting with ``source``."""
        return cls.validate_mapping(d, source=source)

    @classmethod
    def from_yaml(cls, path) -> CommandTable:
        p = Path(path)
        try:
            d = load_yaml(p.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{p}: cannot read command table ({type(exc).__name__})") from exc
        return cls.from_dict(d or {}, source=str(p))

    @property
    def max_len(self) -> int:
        """Words in the longest phrase."""
        return max((len(k) for k in [*self._insert_words, *self._scratch_words]), default=0)


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
            if key in table._insert_words:
                matched = (k, "insert", table._insert_words[key])
            elif key in table._scratch_words:
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
