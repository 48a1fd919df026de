"""``biosig manifest build|check``: problems found, exit codes, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biosig.cli import main as _main
from biosig.manifests import check_manifest, read_manifest

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    """The CLI's exit status: main()'s return value, or the code of a SystemExit."""
    try:
        return _main(argv)
    except SystemExit as exc:
        return exc.code


def _copy_with(tmp_path: Path, name: str, edits: dict[int, dict]) -> Path:
    """Copy a committed manifest, changing keys on some (0-based) lines."""
    lines = (REPO / "data_manifests" / name).read_text(encoding="utf-8").splitlines()
    for i, change in edits.items():
        d = json.loads(lines[i])
        d.update(change)
        lines[i] = json.dumps(d)
    out = tmp_path / name
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "data_manifests").glob("*.jsonl")))
def test_committed_manifests_check_clean(data_root, name, capsys):
    assert main(["manifest", "check", str(REPO / "data_manifests" / name)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "ok" in captured.err


def test_check_catches_missing_file_wrong_fs_and_schema(data_root, tmp_path, capsys):
    m = _copy_with(tmp_path, "bonn.jsonl", {
        2: {"path": "A_Z/Z999.txt"},
        5: {"fs": 256.0, "duration_s": round(4097 / 256.0, 6)},
        7: {"num_samples": 4000, "duration_s": round(4000 / 173.61, 6)},
        9: {"channels": ["Fz"]},
        11: {"sampling_rate": 1},
    })
    rc = main(["manifest", "check", str(m), "--root", str(data_root / "eeg/bonn")])
    assert rc == 1
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert len(lines) == 5, lines
    assert lines[0].startswith(f"{m}:3: key 'path': file not found:")
    assert "Z999.txt" in lines[0]
    assert lines[1].startswith(f"{m}:6: key 'fs': 256 Hz in the manifest, 173.61 Hz in ")
    assert lines[2].startswith(f"{m}:8: key 'num_samples': 4000 in the manifest, 4097 in ")
    assert lines[3].startswith(f"{m}:10: key 'channels': ['Fz'] in the manifest, ['EEG'] in ")
    assert lines[4].startswith(f"{m}:12: key 'sampling_rate': unknown key")
    assert out.err.strip().endswith("5 problems")


def test_check_segments_annotations_and_duplicates(data_root, tmp_path):
    m = _copy_with(tmp_path, "icbhi2017.jsonl", {
        0: {"end_s": 99.0, "duration_s": 99.0},
        1: {"annotations": {"cycles": "audio_and_txt_files/none.txt"}},
        3: {"id": "104_1b1_Al_sc_Litt3200_c000"},
    })
    problems = [str(p) for p in check_manifest(m)]   # resolves through the line's root
    assert len(problems) == 3, problems
    assert "key 'end_s': 99 s is beyond the end of" in problems[0]
    assert "key 'annotations.cycles': file not found" in problems[1]
    assert f"{m}:4: key 'id': duplicate id '104_1b1_Al_sc_Litt3200_c000' (first on line 1)" \
        == problems[2]
    # Schema only: the file problems are not looked for.
    assert [str(p) for p in check_manifest(m, check_files=False)] == [problems[2]]


def test_check_resolves_relative_to_manifest_folder(data_root, tmp_path, monkeypatch):
    # No --root and no data root: paths resolve against the manifest's folder.
    monkeypatch.setenv("BIOSIG_DATA_ROOT", str(tmp_path / "no-such-dir"))
    m = _copy_with(tmp_path, "fleurs_en.jsonl", {})
    problems = list(check_manifest(m))
    assert len(problems) == 5 and all("file not found" in str(p) for p in problems)
    for p in (data_root / "speech/fleurs_en").iterdir():
        (tmp_path / p.name).symlink_to(p)
    assert list(check_manifest(m)) == []


def test_check_exit_code_2_on_unreadable_manifest(tmp_path, capsys):
    assert main(["manifest", "check", str(tmp_path / "none.jsonl")]) == 2
    assert "biosig: error: " in capsys.readouterr().err
    bad = tmp_path / "bin.jsonl"
    bad.write_bytes(b"\xff\xfe\x00garbage\n")
    assert main(["manifest", "check", str(bad)]) == 2
    assert "bin.jsonl:1: not UTF-8 text" in capsys.readouterr().err


def test_check_progress_bar_on_request(data_root, capsys):
    m = REPO / "data_manifests" / "delhi_epilepsy.jsonl"
    assert main(["manifest", "check", str(m), "--progress"]) == 0
    assert "checking" in capsys.readouterr().err


def test_build_exit_codes_and_resume(data_root, tmp_path, capsys):
    out = tmp_path / "bonn.jsonl"
    root = str(data_root / "eeg/bonn")
    assert main(["manifest", "build", "nosuch", root, "--out", str(out)]) == 2
    assert "unknown corpus 'nosuch'" in capsys.readouterr().err
    assert main(["manifest", "build", "bonn", root, "--out", str(out), "--test-frac",
                 "0.95"]) == 2
    assert "valid_frac + test_frac is 1.05" in capsys.readouterr().err
    assert main(["manifest", "build", "bonn", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert main(["manifest", "build", "bonn", root, "--out", str(out), "--modality",
                 "ecg"]) == 2
    assert not out.exists()

    assert main(["manifest", "build", "bonn", root, "--out", str(out)]) == 0
    full = out.read_bytes()
    # Simulate a crash: keep 20 lines and half of the 21st.
    lines = full.splitlines(keepends=True)
    out.write_bytes(b"".join(lines[:20]) + lines[20][:30])
    capsys.readouterr()
    assert main(["manifest", "build", "bonn", root, "--out", str(out)]) == 0
    assert "50 lines, 30 written (20 already there)" in capsys.readouterr().out
    assert out.read_bytes() == full
    # Resuming with another seed would mix two splits: refused, naming the line.
    assert main(["manifest", "build", "bonn", root, "--out", str(out), "--seed", "7"]) == 2
    err = capsys.readouterr().err
    assert f"{out}:" in err and "differs from the rebuilt line (key 'split'" in err
    assert main(["manifest", "build", "bonn", root, "--out", str(out), "--seed", "7",
                 "--overwrite"]) == 0
    assert out.read_bytes() != full
    assert {r.split for r in read_manifest(out)} == {"train", "valid", "test"}


def test_build_no_split_and_modality(data_root, tmp_path, capsys):
    out = tmp_path / "f.jsonl"
    assert main(["manifest", "build", "audio_folder", str(data_root / "speech/fleurs_en"),
                 "--out", str(out), "--no-split", "--modality", "speech"]) == 0
    recs = list(read_manifest(out))
    assert len(recs) == 5 and all(r.split is None for r in recs)


def test_stats_shows_the_covid_source_confound(capsys):
    m = REPO / "data_manifests" / "covid19_cough.jsonl"
    assert main(["manifest", "stats", str(m), "--by", "source", "--by", "labels.covid19"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["source", "labels.covid19", "lines", "groups"]
    counts = {(r[0], r[1]): int(r[2]) for r in rows[1:]}
    assert counts == {("call-center", "False"): 10, ("call-center", "True"): 30,
                      ("telegram", "False"): 20}
    assert main(["manifest", "stats", str(m), "--by", "labels"]) == 2
    assert "key 'labels': expected a manifest field" in capsys.readouterr().err
