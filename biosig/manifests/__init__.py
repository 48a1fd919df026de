"""Corpus manifests: JSONL, one recording (or segment) per line, modelled on lhotse and NeMo.

- :class:`Record` -- the typed, validated line (schema in ``data_manifests/SCHEMA.md`` and
  ``data_manifests/schema.json``);
- :func:`read_manifest` -- lazy reader; :class:`ManifestWriter` -- append-only writer that
  resumes by skipping ids already written;
- ``prepare_<corpus>(root)`` -- one builder per corpus (:data:`CORPORA`);
- :func:`assign_splits` -- patient-wise, stratified, deterministic train/valid/test splits;
- :func:`build_manifest` and :func:`check_manifest` -- what ``biosig manifest build|check`` run;
- :func:`count_by` -- lines and subjects per field values (``biosig manifest stats``), to see
  splits and confounds (label vs. source/device/location).

Examples
--------
>>> from biosig.manifests import read_manifest
>>> for rec in read_manifest("data_manifests/icbhi2017.jsonl"):   # doctest: +SKIP
...     sig = rec.load()            # the cycle, cropped from its recording
"""

from biosig.manifests.build import BuildResult, build_manifest
from biosig.manifests.check import Problem, check_manifest
from biosig.manifests.corpora import (
    CORPORA,
    Corpus,
    get_corpus,
    parse_icbhi_filename,
    prepare_audio_folder,
    prepare_bonn,
    prepare_cinc2017,
    prepare_circor2022,
    prepare_covid19_cough,
    prepare_delhi_epilepsy,
    prepare_eegmmidb,
    prepare_icbhi2017,
    prepare_librispeech,
    prepare_wfdb,
    read_circor_segmentation,
    read_icbhi_cycles,
)
from biosig.manifests.io import ManifestWriter, read_manifest, write_manifest
from biosig.manifests.schema import (
    MODALITIES,
    SPLITS,
    Record,
    record_json_schema,
    resolve_path,
    validate_record,
)
from biosig.manifests.splits import assign_splits, group_of, summarize_splits
from biosig.manifests.stats import count_by, field_value, format_counts

__all__ = [
    "Record", "MODALITIES", "SPLITS", "record_json_schema", "validate_record", "resolve_path",
    "read_manifest", "ManifestWriter", "write_manifest",
    "assign_splits", "group_of", "summarize_splits",
    "build_manifest", "BuildResult", "check_manifest", "Problem",
    "count_by", "field_value", "format_counts",
    "CORPORA", "Corpus", "get_corpus",
    "prepare_wfdb", "prepare_cinc2017", "prepare_circor2022", "prepare_icbhi2017",
    "prepare_covid19_cough", "prepare_bonn", "prepare_delhi_epilepsy", "prepare_eegmmidb",
    "prepare_librispeech", "prepare_audio_folder",
    "read_circor_segmentation", "read_icbhi_cycles", "parse_icbhi_filename",
]
