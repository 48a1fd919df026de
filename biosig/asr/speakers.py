"""Enrolled speakers: where their models live and which one a decode uses.

``biosig enroll NAME FOLDER --model M`` (:func:`biosig.train.whisper.enroll.enroll_speaker`)
writes one folder per speaker under the speakers folder (:func:`speakers_dir`)::

    <speakers_dir>/<NAME>/
        speaker.json      provenance: base model and the digest of its weights, biosig version,
                          git hash, date, recordings (count, seconds, a digest of each file:
                          never their text or audio), settings, enrollment time
        ct2/              the speaker's model, CTranslate2 int8 (what the decoders load)
        adapter/          the LoRA adapter (peft format, a few MB) it was merged from

A speaker for whom the enrollment's cross-validation (``gate_folds``) found no adapter better
than the base model has no ``ct2/`` and ``adapter/``: ``speaker.json`` says ``"kept":
"base"`` and ``"model": {"format": "base"}``, and ``--speaker`` decodes with ``--model``
itself.

``--speaker NAME`` on ``biosig transcribe``, ``dictate`` and ``serve`` resolves that folder
with :func:`speaker_model`, which refuses an adapter trained from another base model than
``--model``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from biosig.asr.models import resolve_packaged
from biosig.errors import ConfigError

__all__ = ["SPEAKERS_ENV", "SpeakerProfile", "speakers_dir", "check_speaker_name",
           "model_digest", "file_digest", "load_speaker", "speaker_model", "list_speakers",
           "SpeakerModels"]

#: Environment variable naming another speakers folder.
SPEAKERS_ENV = "BIOSIG_SPEAKERS"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_WEIGHTS = ("model.bin", "model.safetensors", "pytorch_model.bin")


@dataclass(frozen=True)
class SpeakerProfile:
    """An enrolled speaker's folder.

    Attributes
    ----------
    name : str
    folder : Path
        ``<speakers_dir>/<name>``.
    provenance : dict
        The content of ``speaker.json``.
    """

    name: str
    folder: Path
    provenance: dict

    @property
    def model_dir(self) -> Path:
        """The speaker's CTranslate2 model (``ct2/``)."""
        return self.folder / "ct2"

    @property
    def adapter_dir(self) -> Path:
        """The LoRA adapter (``adapter/``)."""
        return self.folder / "adapter"

    @property
    def uses_base(self) -> bool:
        """The enrollment kept the base model itself (no ``ct2/`` of the speaker's own)."""
        return (self.provenance.get("model") or {}).get("format") == "base"


def speakers_dir(folder=None) -> Path:
    """The speakers folder: ``folder`` when given, else ``$BIOSIG_SPEAKERS``, else
    ``$XDG_DATA_HOME/biosig/speakers`` (``~/.local/share/biosig/speakers``)."""
    if folder is not None:
        return Path(os.fspath(folder)).expanduser()
    env = os.environ.get(SPEAKERS_ENV)
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(data) / "biosig" / "speakers"


def check_speaker_name(name: str) -> str:
    """``name`` when it is a usable folder name (letters, digits, ``_.-``, at most 64, not
    starting with a dot or dash), else :class:`~biosig.errors.ConfigError`."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"speaker name {name!r}: expected letters, digits, '_', '.' or '-' "
                          "(at most 64, starting with a letter or digit)")
    return name


def file_digest(path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


_DIGESTS: dict[tuple, str] = {}


def model_digest(model: str) -> tuple[str, str]:
    """``(folder, digest)`` of a local Whisper model: its folder (``packaged:whisper-base``
    resolved) and the :func:`file_digest` of its weights (``model.bin`` of a CTranslate2
    model, ``model.safetensors`` or ``pytorch_model.bin`` of a transformers one). Computed
    once per file version in a process.

    Raises
    ------
    ConfigError
        ``model`` is a hub name or a folder without weights: an enrolled speaker must name
        the exact base model it was trained from.
    """
    folder = Path(resolve_packaged(model, what="--model")).expanduser()
    weights = next((folder / n for n in _WEIGHTS if (folder / n).is_file()), None)
    if not folder.is_dir() or weights is None:
        raise ConfigError(f"--model {model}: speakers need a local model folder (with "
                          f"{' or '.join(_WEIGHTS)}) or packaged:whisper-base")
    st = weights.stat()
    key = (str(weights.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = file_digest(weights)
    return str(folder), _DIGESTS[key]


def load_speaker(name: str, *, folder=None) -> SpeakerProfile:
    """The enrolled speaker ``name`` in :func:`speakers_dir` ``(folder)``.

    Raises
    ------
    ConfigError
        Not enrolled there, or its folder is incomplete.
    """
    check_speaker_name(name)
    root = speakers_dir(folder)
    d = root / name
    meta = d / "speaker.json"
    if not meta.is_file():
        raise ConfigError(f"speaker {name!r}: not enrolled in {root} (enroll with: biosig "
                          f"enroll {name} FOLDER --model MODEL)")
    try:
        prov = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{meta}: cannot read ({type(exc).__name__})") from None
    prof = SpeakerProfile(name, d, prov)
    if not prof.uses_base and not (prof.model_dir / "model.bin").is_file():
        raise ConfigError(f"speaker {name!r}: {prof.model_dir} holds no model.bin (enroll "
                          "again with --overwrite)")
    return prof


def speaker_model(name: str, *, model: str, folder=None) -> str:
    """The folder of speaker ``name``'s model, after checking that it was trained from
    ``model`` (the same weights, by digest).

    Parameters
    ----------
    name : str
        An enrolled speaker.
    model : str
        The base model the command was given (``--model``).
    folder : path, optional
        The speakers folder (default :func:`speakers_dir`).

    Returns
    -------
    str
        The speaker's CTranslate2 model folder, for :func:`biosig.asr.load_model`; ``model``
        itself for a speaker whose enrollment kept the base model.

    Raises
    ------
    ConfigError
        Unknown speaker, or one enrolled on another base model.
    """
    prof = load_speaker(name, folder=folder)
    base = prof.provenance.get("base_model") or {}
    _, digest = model_digest(model)
    if base.get("digest") != digest:
        raise ConfigError(f"speaker {name!r}: enrolled on base model {base.get('name')!r} "
                          f"({str(base.get('digest'))[:19]}), not on --model {model} "
                          f"({digest[:19]}); enroll again with that model")
    return model if prof.uses_base else str(prof.model_dir)


def list_speakers(folder=None) -> list[str]:
    """Names of the speakers enrolled in :func:`speakers_dir` ``(folder)``, sorted."""
    root = speakers_dir(folder)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if _NAME.match(p.name) and (p / "speaker.json").is_file())


class SpeakerModels:
    """Enrolled speakers' models for a server: each loaded once, the ``max_models`` most
    recently used kept (a session holds on to its model whatever the cache drops).

    Parameters
    ----------
    base_model : str
        The server's ``--model``: every speaker must have been enrolled on it.
    folder : path, optional
        The speakers folder (default :func:`speakers_dir`).
    load : callable
        ``load(model_folder) -> AsrModel`` (e.g. :func:`biosig.asr.load_model` with the
        server's compute type and threads).
    max_models : int >= 1
    """

    def __init__(self, base_model: str, *, folder=None, load, max_models: int = 4):
        if max_models < 1:
            raise ConfigError(f"max_models: expected >= 1, got {max_models}")
        self.base_model = base_model
        self.folder = folder
        self._load = load
        self.max_models = max_models
        self._models: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, name: str):
        """Speaker ``name``'s loaded model; :class:`~biosig.errors.ConfigError` naming the
        speaker when it is not enrolled or was enrolled on another base model."""
        with self._lock:      # one load at a time: two sessions of a new speaker load it once
            if name in self._models:
                self._models.move_to_end(name)
                return self._models[name]
            model = self._load(speaker_model(name, model=self.base_model, folder=self.folder))
            self._models[name] = model
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
            return model

    def __len__(self) -> int:
        return len(self._models)
