"""The manifest record: one recording (or one segment of a recording) per JSONL line.

Modelled on lhotse's ``Recording``/``SupervisionSegment`` and NeMo's JSONL manifests. A line is a
JSON object whose keys are the fields of :class:`Record`; unknown keys, wrong types and missing
required fields are :class:`~biosig.errors.ManifestError` naming ``file:line`` and the key.

``fs``, ``num_samples`` and ``channels`` describe the *file* (what :func:`biosig.info` reads from
its header), so ``biosig manifest check`` can compare them with the header. ``duration_s`` is the
duration of what the line describes: the segment ``end_s - start_s`` when the line is a segment,
the whole file (``num_samples / fs``) otherwise.

The machine-readable JSON Schema (``data_manifests/schema.json``) is generated from this module by
:func:`json_schema`; a test keeps the two identical.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from biosig.errors import ManifestError

__all__ = ["Record", "MODALITIES", "SPLITS", "REQUIRED_FIELDS", "OPTIONAL_FIELDS",
           "SCHEMA_VERSION", "json_schema", "record_from_dict"]

SCHEMA_VERSION = "1.0"

#: Allowed values of ``modality``.
MODALITIES = ("pcg", "lung", "cough", "speech", "ecg", "eeg")
#: Allowed values of ``split``.
SPLITS = ("train", "valid", "test")

#: Absolute tolerance (seconds) when ``duration_s`` is compared with ``num_samples / fs`` or
#: ``end_s - start_s`` (the values are rounded to microseconds when written).
DURATION_TOL_S = 1e-5

_SCALAR = (str, int, float, bool, type(None))

# name -> (JSON Schema fragment, description); order is the order of keys on a written line.
_FIELDS: dict[str, tuple[dict, str]] = {
    "id": ({"type": "string", "minLength": 1},
           "Unique identifier of the line within the manifest."),
    "path": ({"type": "string", "minLength": 1},
             "The recording file, POSIX-style, relative to the corpus root (see `root`)."),
    "modality": ({"enum": list(MODALITIES)}, "Kind of signal."),
    "fs": ({"type": "number", "exclusiveMinimum": 0},
           "Sampling rate of the file in Hz (as biosig.info reads it)."),
    "num_samples": ({"type": "integer", "minimum": 1}, "Samples per channel in the file."),
    "duration_s": ({"type": "number", "exclusiveMinimum": 0},
                   "Duration in seconds of the segment (end_s - start_s) or of the whole file "
                   "(num_samples / fs)."),
    "channels": ({"type": "array", "items": {"type": "string"}, "minItems": 1},
                 "Channel names of the file, in file order."),
    "subject": ({"type": ["string", "null"]},
                "Patient/subject/speaker id; null when the corpus does not say (each line is "
                "then its own group when splitting)."),
    "labels": ({"type": "object",
                "additionalProperties": {"type": ["string", "number", "boolean", "null"]}},
               "Labels of this line: name -> scalar (string, number, boolean or null)."),
    "start_s": ({"type": "number", "minimum": 0},
                "Segment start in seconds from the start of the file (with end_s)."),
    "end_s": ({"type": "number", "exclusiveMinimum": 0},
              "Segment end in seconds from the start of the file (with start_s)."),
    "text": ({"type": "string"}, "Transcript or other reference text."),
    "split": ({"enum": list(SPLITS)}, "Patient-wise data split."),
    "corpus": ({"type": "string"}, "Corpus name (the builder that wrote the line)."),
    "root": ({"type": "string"},
             "Corpus root relative to the biosig data root ($BIOSIG_DATA_ROOT or "
             "../shared/data); used to resolve `path` when no root is given."),
    "source_fs": ({"type": "number", "exclusiveMinimum": 0},
                  "Sampling rate to pass to biosig.load/info for formats that store none "
                  "(MATLAB, plain text)."),
    "source": ({"type": "string"},
               "Acquisition channel or campaign (e.g. covid19-cough call-center/telegram) so "
               "that confounds can be checked."),
    "device": ({"type": "string"}, "Recording device (e.g. ICBHI stethoscope model)."),
    "location": ({"type": "string"}, "Body location (auscultation site, chest location)."),
    "annotations": ({"type": "object", "additionalProperties": {"type": "string"}},
                    "Annotation files: name -> path relative to the corpus root."),
    "meta": ({"type": "object"},
             "Free-form extra information (JSON values), e.g. age, sex, chapter, run."),
}

REQUIRED_FIELDS = ("id", "path", "modality", "fs", "num_samples", "duration_s", "channels",
                   "subject", "labels")
OPTIONAL_FIELDS = tuple(k for k in _FIELDS if k not in REQUIRED_FIELDS)


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of one manifest line, as committed in
    ``data_manifests/schema.json``.

    Cross-field rules that JSON Schema cannot express compactly (``duration_s`` consistent with
    ``num_samples / fs`` or ``end_s - start_s``, ``start_s < end_s``) are enforced by
    :class:`Record` and described in ``data_manifests/SCHEMA.md``.
    """
    props = {}
    for name, (frag, desc) in _FIELDS.items():
        props[name] = {**frag, "description": desc}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/biosig/biosig/data_manifests/schema.json",
        "title": f"biosig manifest line (schema {SCHEMA_VERSION})",
        "description": "One recording or segment of a recording per JSONL line.",
        "type": "object",
        "required": list(REQUIRED_FIELDS),
        "properties": props,
        "additionalProperties": False,
        "dependentRequired": {"start_s": ["end_s"], "end_s": ["start_s"]},
    }


def _where_prefix(where: str | None) -> str:
    return f"{where}: " if where else ""


@dataclass
class Record:
    """One manifest line: a recording, or a segment of one.

    Attributes
    ----------
    id : str
        Unique within the manifest.
    path : str
        Recording file, POSIX-style, relative to the corpus root (or absolute).
    modality : {"pcg", "lung", "cough", "speech", "ecg", "eeg"}
    fs : float > 0
        Sampling rate of the file in Hz.
    num_samples : int > 0
        Samples per channel in the file.
    duration_s : float > 0
        Seconds covered by the line: ``end_s - start_s`` for a segment, else ``num_samples / fs``.
    channels : list of str
        Channel names of the file.
    subject : str or None
        Patient, subject or speaker id; ``None`` when unknown.
    labels : dict of str to scalar
        Labels of the line.
    start_s, end_s : float, optional
        Segment bounds in seconds from the start of the file; both or neither.
    text : str, optional
    split : {"train", "valid", "test"}, optional
    corpus, root, source, device, location : str, optional
        See ``data_manifests/SCHEMA.md``; ``root`` is the corpus root relative to the data root.
    source_fs : float, optional
        Rate to pass to :func:`biosig.load` for formats that store none.
    annotations : dict of str to str, optional
        Annotation files, relative to the corpus root.
    meta : dict, optional
        Free-form extra information.
    """

    id: str
    path: str
    modality: str
    fs: float
    num_samples: int
    duration_s: float
    channels: list[str]
    subject: str | None
    labels: dict[str, Any] = field(default_factory=dict)
    start_s: float | None = None
    end_s: float | None = None
    text: str | None = None
    split: str | None = None
    corpus: str | None = None
    root: str | None = None
    source_fs: float | None = None
    source: str | None = None
    device: str | None = None
    location: str | None = None
    annotations: dict[str, str] | None = None
    meta: dict[str, Any] | None = None

    def __post_init__(self):
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self, where: str | None = None) -> Record:
        """Check types, ranges and cross-field rules; raise ManifestError naming the key."""
        pre = _where_prefix(where)

        def bad(key, msg):
            raise ManifestError(f"{pre}key {key!r}: {msg}")

        def check_str(key, value, *, optional, nonempty=False):
            if value is None:
                if optional:
                    return
                bad(key, "is null, expected a string")
            if not isinstance(value, str):
                bad(key, f"is {type(value).__name__} {value!r}, expected a string")
            if nonempty and not value:
                bad(key, "is an empty string")

        def check_num(key, value, *, optional, positive=False, nonneg=False):
            if value is None:
                if optional:
                    return None
                bad(key, "is null, expected a number")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                bad(key, f"is {type(value).__name__} {value!r}, expected a number")
            v = float(value)
            if not math.isfinite(v):
                bad(key, f"is {value!r}, expected a finite number")
            if positive and v <= 0:
                bad(key, f"is {value!r}, expected a number > 0")
            if nonneg and v < 0:
                bad(key, f"is {value!r}, expected a number >= 0")
            return v

        check_str("id", self.id, optional=False, nonempty=True)
        check_str("path", self.path, optional=False, nonempty=True)
        check_str("modality", self.modality, optional=False)
        if self.modality not in MODALITIES:
            bad("modality", f"is {self.modality!r}, expected one of {'|'.join(MODALITIES)}")
        self.fs = check_num("fs", self.fs, optional=False, positive=True)
        if isinstance(self.num_samples, bool) or not isinstance(self.num_samples, int):
            if isinstance(self.num_samples, float) and self.num_samples.is_integer():
                self.num_samples = int(self.num_samples)
            else:
                bad("num_samples", f"is {type(self.num_samples).__name__} "
                                   f"{self.num_samples!r}, expected an integer")
        if self.num_samples <= 0:
            bad("num_samples", f"is {self.num_samples}, expected an integer > 0")
        self.duration_s = check_num("duration_s", self.duration_s, optional=False,
                                    positive=True)
        if not isinstance(self.channels, list) or not self.channels:
            bad("channels", f"is {self.channels!r}, expected a non-empty list of strings")
        for c in self.channels:
            if not isinstance(c, str):
                bad("channels", f"holds {type(c).__name__} {c!r}, expected strings")
        check_str("subject", self.subject, optional=True)
        if not isinstance(self.labels, dict):
            bad("labels", f"is {type(self.labels).__name__}, expected an object "
                          f"(name -> scalar)")
        for k, v in self.labels.items():
            if not isinstance(k, str):
                bad("labels", f"has key {k!r}, expected string keys")
            if not isinstance(v, _SCALAR) or (isinstance(v, float) and not math.isfinite(v)):
                bad(f"labels.{k}", f"is {type(v).__name__} {v!r}, expected a string, number, "
                                   f"boolean or null")
        self.start_s = check_num("start_s", self.start_s, optional=True, nonneg=True)
        self.end_s = check_num("end_s", self.end_s, optional=True, positive=True)
        if (self.start_s is None) != (self.end_s is None):
            missing = "end_s" if self.end_s is None else "start_s"
            bad(missing, "is missing; a segment needs both start_s and end_s")
        file_duration = self.num_samples / self.fs
        if self.start_s is not None:
            if self.end_s <= self.start_s:
                bad("end_s", f"is {self.end_s:g}, expected more than start_s "
                             f"{self.start_s:g}")
            expected = self.end_s - self.start_s
            if abs(self.duration_s - expected) > DURATION_TOL_S:
                bad("duration_s", f"is {self.duration_s:g}, expected end_s - start_s = "
                                  f"{expected:g}")
        elif abs(self.duration_s - file_duration) > DURATION_TOL_S + 0.5 / self.fs:
            bad("duration_s", f"is {self.duration_s:g}, expected num_samples / fs = "
                              f"{file_duration:g}")
        check_str("text", self.text, optional=True)
        if self.split is not None and self.split not in SPLITS:
            bad("split", f"is {self.split!r}, expected one of {'|'.join(SPLITS)}")
        for key in ("corpus", "root", "source", "device", "location"):
            check_str(key, getattr(self, key), optional=True)
        self.source_fs = check_num("source_fs", self.source_fs, optional=True, positive=True)
        if self.annotations is not None:
            if not isinstance(self.annotations, dict):
                bad("annotations", f"is {type(self.annotations).__name__}, expected an object "
                                   f"(name -> path)")
            for k, v in self.annotations.items():
                if not isinstance(v, str) or not v:
                    bad(f"annotations.{k}", f"is {v!r}, expected a non-empty path string")
        if self.meta is not None and not isinstance(self.meta, dict):
            bad("meta", f"is {type(self.meta).__name__}, expected an object")
        return self

    # ------------------------------------------------------------------ conversion
    @property
    def is_segment(self) -> bool:
        """Whether the line describes a segment (``start_s``/``end_s`` set)."""
        return self.start_s is not None

    def to_dict(self) -> dict:
        """The JSON object of the line: required keys always, optional keys when set."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in REQUIRED_FIELDS or v is not None:
                out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, data: dict, where: str | None = None) -> Record:
        """Build and validate a record; errors name ``where`` (``file:line``) and the key."""
        return record_from_dict(data, where)

    def resolve_path(self, root=None, *, manifest_dir=None) -> Path:
        """The file of this record on this machine.

        Parameters
        ----------
        root : str or PathLike, optional
            Corpus root; ``path`` is taken relative to it.
        manifest_dir : str or PathLike, optional
            Folder of the manifest, the last resort for relative paths.

        Notes
        -----
        Order: an absolute ``path`` as is; ``root / path``; ``data_root() / self.root / path``
        when the record names its corpus root and a data root exists; ``manifest_dir / path``;
        ``path`` relative to the current directory.
        """
        return resolve_path(self.path, root=root, hint=self.root, manifest_dir=manifest_dir)

    def load(self, root=None, *, manifest_dir=None, **kwargs):
        """Load the recording with :func:`biosig.load`, cropped to the segment if any.

        ``source_fs`` comes from the record; other keyword arguments go to :func:`biosig.load`.
        """
        from biosig.io import load
        if self.source_fs is not None:
            kwargs.setdefault("source_fs", self.source_fs)
        sig = load(self.resolve_path(root, manifest_dir=manifest_dir), **kwargs)
        if self.is_segment:
            sig = sig.crop(self.start_s, self.end_s)
        return sig


_FIELD_NAMES = tuple(f.name for f in fields(Record))
if set(_FIELD_NAMES) != set(_FIELDS):  # keeps the dataclass and the schema table in step
    raise RuntimeError("biosig.manifests.schema: Record fields and _FIELDS disagree")


def record_from_dict(data, where: str | None = None) -> Record:
    """Validate a parsed JSON object and build a :class:`Record`.

    Parameters
    ----------
    data : dict
        One parsed manifest line.
    where : str, optional
        ``file:line`` to name in errors.

    Raises
    ------
    ManifestError
        Not an object, unknown key, missing required key, wrong type or value.
    """
    pre = _where_prefix(where)
    if not isinstance(data, dict):
        raise ManifestError(f"{pre}expected a JSON object, got {type(data).__name__}")
    for key in data:
        if key not in _FIELDS:
            raise ManifestError(f"{pre}key {key!r}: unknown key (allowed: "
                                f"{', '.join(_FIELD_NAMES)})")
    for key in REQUIRED_FIELDS:
        if key not in data:
            raise ManifestError(f"{pre}key {key!r}: missing required key")
    rec = Record.__new__(Record)
    for name in _FIELD_NAMES:
        object.__setattr__(rec, name, data.get(name))
    rec.validate(where)
    return rec


def resolve_path(path: str, *, root=None, hint: str | None = None, manifest_dir=None) -> Path:
    """Resolve a manifest ``path`` (see :meth:`Record.resolve_path`)."""
    p = Path(path)
    if p.is_absolute():
        return p
    if root is not None:
        return Path(os.fspath(root)) / p
    if hint is not None:
        from biosig.datasets import data_root
        dr = data_root()
        if dr is not None:
            return dr / hint / p
    if manifest_dir is not None:
        return Path(os.fspath(manifest_dir)) / p
    return p
