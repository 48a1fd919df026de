"""The manifest record: one recording (or one segment of a recording) per JSONL line.

Modelled on lhotse's ``Recording``/``SupervisionSegment`` and NeMo's JSONL manifests. A line is a
JSON object whose keys are the fields of :class:`Record`, a pydantic model; unknown keys, wrong
types, values out of range and missing required fields are :class:`~biosig.errors.ManifestError`
naming ``file:line``, the key and the value.

``fs``, ``num_samples`` and ``channels`` describe the *file* (what :func:`biosig.info` reads from
its header), so ``biosig manifest check`` can compare them with the header. ``duration_s`` is the
duration of what the line describes: the segment ``end_s - start_s`` when the line is a segment,
the whole file (``num_samples / fs``) otherwise.

The machine-readable JSON Schema (``data_manifests/schema.json``) is generated from the model by
:func:`record_json_schema`; ``python scripts/manifest_schema.py`` writes it again, and a test
keeps the file and the model identical.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PlainValidator, WithJsonSchema, model_validator

from biosig.config import ConfigModel, Int, validate_model
from biosig.datasets import data_root
from biosig.errors import ManifestError
from biosig.fileio import write_text_atomic
from biosig.io import load as load_recording

__all__ = ["Record", "MODALITIES", "SPLITS", "REQUIRED_FIELDS", "OPTIONAL_FIELDS",
           "SCHEMA_VERSION", "record_json_schema", "write_record_json_schema", "validate_record",
           "resolve_path"]

SCHEMA_VERSION = "1.0"

#: Allowed values of ``modality``.
MODALITIES = ("pcg", "lung", "cough", "speech", "ecg", "eeg")
#: Allowed values of ``split``.
SPLITS = ("train", "valid", "test")

#: Absolute tolerance (seconds) when ``duration_s`` is compared with ``num_samples / fs`` or
#: ``end_s - start_s`` (the values are rounded to microseconds when written).
DURATION_TOL_S = 1e-5


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"is {value!r}, expected a finite number")
        return value
    raise ValueError(f"is {type(value).__name__} {value!r}, expected a string, number, boolean "
                     f"or null")


#: A label value: string, number, boolean or null.
LabelValue = Annotated[Any, PlainValidator(_scalar),
                       WithJsonSchema({"type": ["string", "number", "boolean", "null"]})]
NonEmpty = Annotated[str, Field(min_length=1)]


def _schema_extra(schema: dict) -> None:
    # The schema's frame; a line's keys are its properties (pydantic's generated titles are
    # the field names again, and are left out).
    for prop in schema["properties"].values():
        prop.pop("title", None)
    schema.pop("title", None)
    schema.update({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/biosig/biosig/data_manifests/schema.json",
        "title": f"biosig manifest line (schema {SCHEMA_VERSION})",
        "description": "One recording or segment of a recording per JSONL line.",
        "dependentRequired": {"start_s": ["end_s"], "end_s": ["start_s"]},
    })


class Record(ConfigModel):
    """One manifest line: a recording, or a segment of one.

    A frozen pydantic model; building one checks types, ranges and the cross-field rules and
    raises :class:`~biosig.errors.ManifestError` naming the key. A changed copy is
    ``rec.model_copy(update={"split": "test"})`` for values known to be valid.

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

    model_config = {**ConfigModel.model_config, "json_schema_extra": _schema_extra}
    error_type: ClassVar[type[Exception]] = ManifestError

    id: NonEmpty = Field(description="Unique identifier of the line within the manifest.")
    path: NonEmpty = Field(description="The recording file, POSIX-style, relative to the corpus "
                                       "root (see `root`).")
    modality: Literal[MODALITIES] = Field(description="Kind of signal.")
    fs: float = Field(gt=0, description="Sampling rate of the file in Hz (as biosig.info reads "
                                        "it).")
    num_samples: Int = Field(ge=1, description="Samples per channel in the file.")
    duration_s: float = Field(gt=0, description="Duration in seconds of the segment (end_s - "
                                                "start_s) or of the whole file (num_samples / "
                                                "fs).")
    channels: list[str] = Field(min_length=1, description="Channel names of the file, in file "
                                                          "order.")
    subject: str | None = Field(description="Patient/subject/speaker id; null when the corpus "
                                            "does not say (each line is then its own group when "
                                            "splitting).")
    labels: dict[str, LabelValue] = Field(description="Labels of this line: name -> scalar "
                                                      "(string, number, boolean or null).")
    start_s: float | None = Field(default=None, ge=0, description="Segment start in seconds "
                                  "from the start of the file (with end_s).")
    end_s: float | None = Field(default=None, gt=0, description="Segment end in seconds from "
                                "the start of the file (with start_s).")
    text: str | None = Field(default=None, description="Transcript or other reference text.")
    split: Literal[SPLITS] | None = Field(default=None, description="Patient-wise data split.")
    corpus: str | None = Field(default=None, description="Corpus name (the builder that wrote "
                                                         "the line).")
    root: str | None = Field(default=None, description="Corpus root relative to the biosig data "
                             "root ($BIOSIG_DATA_ROOT or ../shared/data); used to resolve `path` "
                             "when no root is given.")
    source_fs: float | None = Field(default=None, gt=0, description="Sampling rate to pass to "
                                    "biosig.load/info for formats that store none (MATLAB, "
                                    "plain text).")
    source: str | None = Field(default=None, description="Acquisition channel or campaign (e.g. "
                               "covid19-cough call-center/telegram) so that confounds can be "
                               "checked.")
    device: str | None = Field(default=None, description="Recording device (e.g. ICBHI "
                                                         "stethoscope model).")
    location: str | None = Field(default=None, description="Body location (auscultation site, "
                                                           "chest location).")
    annotations: dict[str, NonEmpty] | None = Field(default=None, description="Annotation "
                                                    "files: name -> path relative to the corpus "
                                                    "root.")
    meta: dict[str, Any] | None = Field(default=None, description="Free-form extra information "
                                        "(JSON values), e.g. age, sex, chapter, run.")

    @model_validator(mode="after")
    def _segment_and_duration(self):
        start, end, dur = self.start_s, self.end_s, self.duration_s
        if (start is None) != (end is None):
            missing = "end_s" if end is None else "start_s"
            raise ValueError(f"key {missing!r}: is missing; a segment needs both start_s and "
                             f"end_s")
        if start is not None:
            if end <= start:
                raise ValueError(f"key 'end_s': is {end:g}, expected more than start_s "
                                 f"{start:g}")
            if abs(dur - (end - start)) > DURATION_TOL_S:
                raise ValueError(f"key 'duration_s': is {dur:g}, expected end_s - start_s = "
                                 f"{end - start:g}")
        elif abs(dur - self.num_samples / self.fs) > DURATION_TOL_S + 0.5 / self.fs:
            raise ValueError(f"key 'duration_s': is {dur:g}, expected num_samples / fs = "
                             f"{self.num_samples / self.fs:g}")
        return self

    # ------------------------------------------------------------------ conversion
    @property
    def is_segment(self) -> bool:
        """Whether the line describes a segment (``start_s``/``end_s`` set)."""
        return self.start_s is not None

    def to_dict(self) -> dict:
        """The JSON object of the line: required keys always, optional keys when set."""
        return {k: v for k, v in self.model_dump().items()
                if v is not None or k in REQUIRED_FIELDS}

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
        if self.source_fs is not None:
            kwargs.setdefault("source_fs", self.source_fs)
        sig = load_recording(self.resolve_path(root, manifest_dir=manifest_dir), **kwargs)
        if self.is_segment:
            sig = sig.crop(self.start_s, self.end_s)
        return sig


#: Keys every line has (``subject`` may be null), in the order they are written.
REQUIRED_FIELDS = tuple(k for k, f in Record.model_fields.items() if f.is_required())
#: Keys a line may leave out.
OPTIONAL_FIELDS = tuple(k for k in Record.model_fields if k not in REQUIRED_FIELDS)


def validate_record(data: Any, where: str | None = None) -> Record:
    """Validate one parsed manifest line (a JSON object) into a :class:`Record`.

    Parameters
    ----------
    data : dict
        One parsed manifest line.
    where : str, optional
        ``file:line`` to name in errors.

    Raises
    ------
    ManifestError
        Not an object, unknown key, missing required key, wrong type or value; the message
        starts with ``where`` and names the key and the value.
    """
    return validate_model(Record, data, source=where, error=ManifestError)


def record_json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of one manifest line, generated from :class:`Record`
    (as committed in ``data_manifests/schema.json``).

    Cross-field rules that JSON Schema cannot express compactly (``duration_s`` consistent with
    ``num_samples / fs`` or ``end_s - start_s``, ``start_s < end_s``) are enforced by
    :class:`Record` and described in ``data_manifests/SCHEMA.md``.
    """
    return Record.model_json_schema()


def write_record_json_schema(path) -> Path:
    """Write :func:`record_json_schema` to ``path`` (two-space indented, final newline)."""
    p = Path(os.fspath(path))
    write_text_atomic(p, json.dumps(record_json_schema(), indent=2, ensure_ascii=False) + "\n")
    return p


def resolve_path(path: str, *, root=None, hint: str | None = None, manifest_dir=None) -> Path:
    """Resolve a manifest ``path`` (see :meth:`Record.resolve_path`)."""
    p = Path(path)
    if p.is_absolute():
        return p
    if root is not None:
        return Path(os.fspath(root)) / p
    if hint is not None:
        dr = data_root()
        if dr is not None:
            return dr / hint / p
    if manifest_dir is not None:
        return Path(os.fspath(manifest_dir)) / p
    return p

