"""Manifest schema, lazy reader and resumable writer (no real data needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biosig.errors import ManifestError
from biosig.manifests import (
    ManifestWriter,
    Record,
    read_manifest,
    record_json_schema,
    validate_record,
    write_manifest,
)
from biosig.manifests.schema import OPTIONAL_FIELDS, REQUIRED_FIELDS, write_record_json_schema


def _rec(i: int = 0, **kw) -> Record:
    base = dict(id=f"r{i:03d}", path=f"a/r{i:03d}.wav", modality="pcg", fs=4000.0,
                num_samples=8000, duration_s=2.0, channels=["audio"], subject=f"p{i % 3}",
                labels={"murmur": "Present"})
    base.update(kw)
    return Record(**base)


def _line(**kw) -> dict:
    d = _rec().to_dict()
    d.update(kw)
    return d


def _write_lines(path: Path, objs) -> Path:
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs),
                    encoding="utf-8")
    return path


# ---------------------------------------------------------------- schema

def test_record_roundtrip_and_optional_keys_omitted():
    r = _rec(start_s=0.5, end_s=1.5, duration_s=1.0, split="test", meta={"age": 3})
    d = r.to_dict()
    assert list(d)[:9] == list(REQUIRED_FIELDS)
    assert "text" not in d and "device" not in d      # unset optional keys are not written
    assert d["subject"] == "p0"
    assert validate_record(json.loads(json.dumps(d))) == r


@pytest.mark.parametrize("key, value, match", [
    ("sampling_rate", 4000, r"m\.jsonl:2: key 'sampling_rate': unknown key \(expected one of "
                            r"id, path, modality, fs,"),
    ("fs", "4000", r"m\.jsonl:2: key 'fs': Input should be a valid number \(got '4000'\)"),
    ("fs", float("nan"), r"m\.jsonl:2: key 'fs': Input should be a finite number"),
    ("num_samples", 8000.5, r"m\.jsonl:2: key 'num_samples': Input should be a valid integer "
                            r"\(got 8000\.5\)"),
    ("num_samples", True, r"m\.jsonl:2: key 'num_samples': .* \(got True\)"),
    ("num_samples", 0, r"m\.jsonl:2: key 'num_samples': Input should be greater than or equal "
                       r"to 1 \(got 0\)"),
    ("modality", "mri", r"m\.jsonl:2: key 'modality': Input should be 'pcg', 'lung', .* "
                        r"\(got 'mri'\)"),
    ("channels", "audio", r"m\.jsonl:2: key 'channels': Input should be a valid list "
                          r"\(got 'audio'\)"),
    ("channels", [], r"m\.jsonl:2: key 'channels': List should have at least 1 item"),
    ("labels", {"murmur": [1, 2]}, r"m\.jsonl:2: key 'labels\.murmur': is list \[1, 2\], "
                                   r"expected a string, number, boolean or null"),
    ("split", "dev", r"m\.jsonl:2: key 'split': Input should be 'train', 'valid' or 'test' "
                     r"\(got 'dev'\)"),
    ("duration_s", 3.0, r"m\.jsonl:2: key 'duration_s': is 3, expected num_samples / fs = 2"),
    ("start_s", 0.5, r"m\.jsonl:2: key 'end_s': is missing; a segment needs both"),
    ("fs", -1, r"m\.jsonl:2: key 'fs': Input should be greater than 0 \(got -1\)"),
    ("annotations", {"tsv": 3}, r"m\.jsonl:2: key 'annotations\.tsv': Input should be a valid "
                                r"string \(got 3\)"),
    ("annotations", {"tsv": ""}, r"m\.jsonl:2: key 'annotations\.tsv': String should have at "
                                 r"least 1 character"),
])
def test_schema_errors_name_file_line_and_key(tmp_path, key, value, match):
    p = _write_lines(tmp_path / "m.jsonl", [_line(), _line(id="x", **{key: value})])
    it = read_manifest(p)
    assert next(it).id == "r000"
    with pytest.raises(ManifestError, match=match):
        next(it)


@pytest.mark.parametrize("key", ["id", "fs", "subject", "labels", "channels"])
def test_missing_required_key(tmp_path, key):
    d = _line()
    del d[key]
    p = _write_lines(tmp_path / "m.jsonl", [d])
    with pytest.raises(ManifestError, match=rf"m\.jsonl:1: key '{key}': missing required key"):
        list(read_manifest(p))


def test_invalid_json_duplicate_id_and_missing_file(tmp_path):
    p = _write_lines(tmp_path / "m.jsonl", [_line(), '{"id": "x", '])
    with pytest.raises(ManifestError, match=r"m\.jsonl:2: invalid JSON"):
        list(read_manifest(p))
    p = _write_lines(tmp_path / "d.jsonl", [_line(), _line()])
    with pytest.raises(ManifestError, match=r"d\.jsonl:2: key 'id': duplicate id 'r000'"):
        list(read_manifest(p))
    with pytest.raises(ManifestError, match=r"nope\.jsonl: manifest not found"):
        list(read_manifest(tmp_path / "nope.jsonl"))


def test_segment_rules():
    seg = _rec(start_s=0.25, end_s=1.0, duration_s=0.75)
    assert seg.is_segment and not _rec().is_segment
    with pytest.raises(ManifestError, match=r"key 'end_s': is 0\.25, expected more than start_s"):
        _rec(start_s=0.5, end_s=0.25, duration_s=0.25)
    with pytest.raises(ManifestError, match=r"key 'duration_s': is 2, expected end_s - start_s"):
        _rec(start_s=0.0, end_s=1.0)


def test_record_built_in_python_is_validated_and_frozen():
    with pytest.raises(ManifestError, match=r"Record: key 'fs': Input should be greater than 0 "
                                            r"\(got -2\.0\)"):
        _rec(fs=-2.0)
    with pytest.raises(ManifestError, match=r"Record: key 'sampling_rate': unknown key"):
        _rec(sampling_rate=4000)
    r = _rec()
    with pytest.raises(ValueError, match="frozen"):
        r.fs = 1.0
    assert r.model_copy(update={"split": "test"}).split == "test" and r.split is None
    assert _rec(num_samples=8000.0).num_samples == 8000          # an integral float is an int


def test_committed_json_schema_is_generated_from_the_model(repo_root, tmp_path):
    # data_manifests/schema.json is what scripts/manifest_schema.py writes from Record
    committed = json.loads((repo_root / "data_manifests" / "schema.json").read_text())
    assert committed == record_json_schema()
    assert (write_record_json_schema(tmp_path / "s.json").read_bytes()
            == (repo_root / "data_manifests" / "schema.json").read_bytes())
    assert set(committed["properties"]) == set(REQUIRED_FIELDS) | set(OPTIONAL_FIELDS)
    assert committed["required"] == list(REQUIRED_FIELDS)
    assert committed["additionalProperties"] is False
    assert committed["properties"]["fs"]["exclusiveMinimum"] == 0


def test_json_schema_accepts_and_rejects_like_record(repo_root):
    jsonschema = pytest.importorskip("jsonschema")
    v = jsonschema.Draft202012Validator(record_json_schema())
    jsonschema.Draft202012Validator.check_schema(record_json_schema())
    assert not list(v.iter_errors(_rec(start_s=0.0, end_s=1.0, duration_s=1.0).to_dict()))
    for bad in (_line(extra=1), _line(fs="x"), {k: v for k, v in _line().items() if k != "id"},
                _line(start_s=0.0), _line(fs=-1), _line(modality="mri"),
                _line(labels={"a": [1]}), _line(channels=[])):
        assert list(v.iter_errors(bad)), bad
        with pytest.raises(ManifestError):
            validate_record(bad)


def test_resolve_path_order(tmp_path, monkeypatch):
    monkeypatch.setenv("BIOSIG_DATA_ROOT", str(tmp_path))
    r = _rec(root="pcg/circor2022")
    assert r.resolve_path() == tmp_path.resolve() / "pcg/circor2022" / r.path
    assert r.resolve_path("/x") == Path("/x") / r.path
    r2 = _rec()
    assert r2.resolve_path(manifest_dir=tmp_path) == tmp_path / r2.path
    assert _rec(path="/abs/f.wav").resolve_path("/x") == Path("/abs/f.wav")


# ---------------------------------------------------------------- reader laziness

def test_reader_is_lazy(tmp_path):
    # A broken line after the first two: the reader yields those before failing, so it never
    # parses (or reads) the whole file up front.
    p = _write_lines(tmp_path / "m.jsonl", [_line(id="a"), _line(id="b"), "garbage"] +
                     [_line(id=f"z{i}") for i in range(1000)])
    it = read_manifest(p)
    assert [next(it).id, next(it).id] == ["a", "b"]
    with pytest.raises(ManifestError, match=r"m\.jsonl:3: invalid JSON"):
        next(it)


def test_reader_skips_blank_lines_and_counts_them(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps(_line(id="a")) + "\n\n" + json.dumps(_line(id="b", fs="x")) + "\n")
    it = read_manifest(p)
    next(it)
    with pytest.raises(ManifestError, match=r"m\.jsonl:3: key 'fs'"):
        next(it)


# ---------------------------------------------------------------- writer

def test_writer_resume_after_crash_with_partial_line(tmp_path):
    p = tmp_path / "out" / "m.jsonl"
    recs = [_rec(i) for i in range(10)]
    with ManifestWriter(p, batch_size=2) as w:
        for r in recs[:5]:
            w.write(r)
    # A crash in the middle of the next batch leaves half a line without a newline.
    full = json.dumps(recs[5].to_dict())
    with open(p, "a", encoding="utf-8") as f:
        f.write(full[: len(full) // 2])
    with ManifestWriter(p, batch_size=3) as w:
        assert w.dropped_partial_line
        assert w.existing_ids == {r.id for r in recs[:5]}
        assert "r004" in w and "r005" not in w
        written = [w.write(r) for r in recs]
    assert written == [False] * 5 + [True] * 5
    assert [r.id for r in read_manifest(p)] == [r.id for r in recs]
    assert list(read_manifest(p)) == recs
    assert p.read_text().endswith("\n")


def test_writer_partial_line_is_the_whole_file(tmp_path):
    p = tmp_path / "m.jsonl"
    p.write_text('{"id": "r0')
    assert write_manifest([_rec(1)], p) == 1
    assert [r.id for r in read_manifest(p)] == ["r001"]


def test_writer_rejects_corruption_before_the_last_line(tmp_path):
    p = _write_lines(tmp_path / "m.jsonl", [_line(id="a"), "{broken", _line(id="c")])
    with pytest.raises(ManifestError, match=r"m\.jsonl:2: invalid JSON"):
        ManifestWriter(p)


def test_writer_overwrite_and_batches_flushed_on_error(tmp_path):
    p = tmp_path / "m.jsonl"
    write_manifest([_rec(i) for i in range(3)], p)
    with pytest.raises(RuntimeError):
        with ManifestWriter(p, overwrite=True, batch_size=100) as w:
            w.write(_rec(7))
            raise RuntimeError("crash")
    # Lines queued before the crash are complete records: kept for the resume.
    assert [r.id for r in read_manifest(p)] == ["r007"]
