"""Corpus builders on the real shared slices, checked against the source files; the committed
manifests in data_manifests/ are rebuilt with the README's commands and must be identical."""

from __future__ import annotations

import csv
import json
import re
import shlex
from collections import Counter
from pathlib import Path

import pytest

from biosig.errors import InputError, ManifestError
from biosig.manifests import (
    CORPORA,
    prepare_bonn,
    prepare_wfdb,
    read_circor_segmentation,
    read_icbhi_cycles,
    read_manifest,
)
from biosig.manifests.corpora import MITDB_SAME_SUBJECT, parse_icbhi_filename

REPO = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[list[str]]:
    text = (REPO / "data_manifests" / "README.md").read_text(encoding="utf-8")
    return [shlex.split(line)[3:] for line in text.splitlines()
            if line.startswith("python -m biosig manifest build ")]


def _out_name(args: list[str]) -> str:
    return Path(args[args.index("--out") + 1]).name


@pytest.fixture(scope="module")
def built(data_root, tmp_path_factory) -> dict[str, Path]:
    """Every README build command run through the CLI into a temporary folder."""
    from biosig.cli import main
    out_dir = tmp_path_factory.mktemp("manifests")
    out = {}
    for args in _readme_commands():
        args = [a.replace("$D", str(data_root)) for a in args]
        i = args.index("--out")
        args[i + 1] = str(out_dir / Path(args[i + 1]).name)
        rc = main(args)
        out[_out_name(args)] = (rc, Path(args[i + 1]))
    return out


def _manifest(built, name) -> list:
    rc, path = built[name]
    assert rc == 0, name
    return list(read_manifest(path))


#: Corpora with no slice in ../shared/data, hence no committed manifest: the README says how to
#: build theirs where the full corpus is.
FULL_CORPUS_ONLY = {"speechocean762"}


def test_readme_lists_every_corpus_and_committed_manifest():
    cmds = _readme_commands()
    assert {c[2] for c in cmds} == set(CORPORA) - FULL_CORPUS_ONLY
    text = (REPO / "data_manifests" / "README.md").read_text(encoding="utf-8")
    for name in FULL_CORPUS_ONLY:
        assert f"biosig manifest build {name} " in text
    for args in cmds:
        assert "--seed" in args and "--overwrite" in args


def test_readme_table_matches_committed_manifests():
    text = (REPO / "data_manifests" / "README.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([\w.]+\.jsonl)` \| `(\w+)` \| (\d+) \|", text, re.MULTILINE)
    assert len(rows) == len(_readme_commands())
    for name, corpus, n_lines in rows:
        recs = list(read_manifest(REPO / "data_manifests" / name))
        assert len(recs) == int(n_lines), name
        assert {r.corpus for r in recs} == {corpus}


@pytest.mark.parametrize("name", [_out_name(a) for a in _readme_commands()])
def test_committed_manifest_is_rebuilt_identically_and_portable(built, name, data_root):
    records = _manifest(built, name)
    committed = REPO / "data_manifests" / name
    assert committed.is_file(), f"{committed} missing: run the README commands"
    assert committed.read_bytes() == built[name][1].read_bytes(), \
        f"{name} is stale: rebuild it with the command in data_manifests/README.md"
    text = committed.read_text(encoding="utf-8")
    for secret in {str(data_root), str(data_root.resolve()), str(REPO), "/work/", "/home/",
                   "/tmp/"}:
        assert secret not in text
    for r in records:
        assert not Path(r.path).is_absolute() and ".." not in Path(r.path).parts
        assert r.root is not None and not Path(r.root).is_absolute()
        assert r.resolve_path().is_file()
        for a in (r.annotations or {}).values():
            assert not Path(a).is_absolute()


# ------------------------------------------------------------------ per corpus

def test_wfdb_mitdb(built, data_root):
    recs = _manifest(built, "mitdb.jsonl")
    assert [r.id for r in recs] == ["100", "208"]
    r100 = recs[0]
    assert (r100.fs, r100.num_samples, r100.channels) == (360.0, 650000, ["MLII", "V5"])
    assert r100.annotations == {"atr": "100.atr"}
    assert r100.meta["age"] == 69 and r100.meta["sex"] == "M"
    assert recs[1].meta["sex"] == "F"
    assert all(r.modality == "ecg" and r.subject == r.id for r in recs)
    merged = list(prepare_wfdb(data_root / "ecg/mitdb", subject_map={"208": "100"}))
    assert {r.subject for r in merged} == {"100"}
    assert MITDB_SAME_SUBJECT == {"202": "201"}


def test_cinc2017_labels_match_reference(built, data_root):
    recs = _manifest(built, "cinc2017.jsonl")
    ref_path = data_root / "ecg/cinc2017_af/training2017/REFERENCE.csv"
    with open(ref_path, newline="") as f:
        ref = {row[0]: row[1] for row in csv.reader(f) if row}
    assert {r.id: r.labels["rhythm"] for r in recs} == ref
    assert Counter(r.labels["rhythm"] for r in recs) == {"N": 25, "A": 25, "O": 25, "~": 25}
    assert all(r.fs == 300.0 and r.channels == ["ECG"] for r in recs)


def test_circor_murmur_labels_match_training_data(built, data_root):
    recs = _manifest(built, "circor2022.jsonl")
    root = data_root / "pcg/circor2022"
    wavs = sorted((root / "training_data").glob("*.wav"))
    assert sorted(r.id for r in recs) == sorted(w.stem for w in wavs)
    with open(root / "training_data.csv", newline="") as f:
        table = {row["Patient ID"]: row for row in csv.DictReader(f)}
    for r in recs:
        row = table[r.subject]
        assert r.id.startswith(r.subject + "_")
        assert r.labels["murmur"] == row["Murmur"]
        assert r.labels["outcome"] == row["Outcome"]
        locs = row["Murmur locations"].split("+")
        expected = ("Present" if r.location in locs else "Absent") \
            if row["Murmur"] == "Present" else row["Murmur"]
        assert r.labels["murmur_at_location"] == expected
        assert r.source == row["Campaign"]
        assert r.location == r.id.split("_")[1]
        assert r.annotations["segmentation"] == f"training_data/{r.id}.tsv"
        assert r.fs == 4000.0
    assert {r.labels["murmur"] for r in recs} == {"Present", "Absent", "Unknown"}


def test_circor_segmentation_reader(data_root):
    tsv = data_root / "pcg/circor2022/training_data/49823_PV.tsv"
    rows = [line.split() for line in tsv.read_text().splitlines() if line.strip()]
    ann = read_circor_segmentation(tsv)
    states = [int(r[2]) for r in rows]
    assert len(ann) == sum(s != 0 for s in states)
    assert set(ann.labels) <= {"S1", "systole", "S2", "diastole"}
    first = next(r for r in rows if r[2] != "0")
    assert ann.onset_s[0] == pytest.approx(float(first[0]))
    assert ann.duration_s[0] == pytest.approx(float(first[1]) - float(first[0]))
    assert (ann.duration_s >= 0).all() and (ann.onset_s[1:] >= ann.onset_s[:-1]).all()
    # S1 is followed by systole, then S2, then diastole.
    order = {"S1": "systole", "systole": "S2", "S2": "diastole", "diastole": "S1"}
    assert all(order[a] == b for a, b in zip(ann.labels, ann.labels[1:]))
    assert len(read_circor_segmentation(tsv, keep_unannotated=True)) == len(rows)


def test_circor_segmentation_reader_errors(tmp_path):
    bad = tmp_path / "x.tsv"
    bad.write_text("0.1\t0.2\t1\n0.2\tzz\t2\n")
    with pytest.raises(InputError, match=r"x\.tsv:2: expected 'start<TAB>end<TAB>state'"):
        read_circor_segmentation(bad)
    with pytest.raises(InputError, match="segmentation file not found"):
        read_circor_segmentation(tmp_path / "none.tsv")


def test_icbhi_cycles_match_txt_files(built, data_root):
    recs = _manifest(built, "icbhi2017.jsonl")
    folder = data_root / "lung/icbhi2017/audio_and_txt_files"
    rows = {}
    for txt in sorted(folder.glob("*.txt")):
        rows[txt.stem] = [line.split() for line in txt.read_text().splitlines() if line.strip()]
    assert len(recs) == sum(len(v) for v in rows.values()) == 55
    by_file = Counter(Path(r.path).stem for r in recs)
    assert by_file == {k: len(v) for k, v in rows.items()}
    for r in recs:
        stem, i = r.id.rsplit("_c", 1)
        start, end, c, w = rows[stem][int(i)]
        assert (r.start_s, r.end_s) == (float(start), float(end))
        assert r.duration_s == pytest.approx(float(end) - float(start), abs=1e-6)
        assert (r.labels["crackles"], r.labels["wheezes"]) == (int(c), int(w))
        expected = {(0, 0): "normal", (1, 0): "crackle", (0, 1): "wheeze", (1, 1): "both"}
        assert r.labels["cycle_class"] == expected[(int(c), int(w))]
        assert r.labels["diagnosis"] == "COPD" and r.subject == "104"
        assert r.device == "Litt3200" and r.location == stem.split("_")[2]
        assert r.end_s <= r.num_samples / r.fs + 0.01
    assert Counter(r.labels["cycle_class"] for r in recs)["wheeze"] > 0


def test_icbhi_cycle_reader_and_filename(data_root):
    txt = data_root / "lung/icbhi2017/audio_and_txt_files/104_1b1_Ar_sc_Litt3200.txt"
    ann = read_icbhi_cycles(txt)
    lines = [line.split() for line in txt.read_text().splitlines() if line.strip()]
    assert len(ann) == len(lines)
    assert ann.labels[0] == "wheeze" and ann.aux[0] == "crackles=0,wheezes=1"
    assert ann.onset_s[1] == pytest.approx(float(lines[1][0]))
    n = parse_icbhi_filename("226_1b1_Pl_sc_LittC2SE.wav")
    assert (n.patient, n.recording_index, n.location, n.acquisition_mode, n.device) == \
        ("226", "1b1", "Pl", "sc", "LittC2SE")
    assert parse_icbhi_filename("101_1b1_Tc_mc_AKGC417L").location == "Tc"
    with pytest.raises(ManifestError, match=r"104_1b1_Xx_sc_Litt3200: icbhi2017: file name"):
        parse_icbhi_filename("104_1b1_Xx_sc_Litt3200")


def test_covid19_cough_labels_and_source(built, data_root):
    recs = _manifest(built, "covid19_cough.jsonl")
    meta = json.loads((data_root / "cough/covid19_cough/metadata.json").read_text())
    by_name = {Path(m["filename"]).stem: m for m in meta}
    assert len(recs) == len(meta) == 60
    for r in recs:
        m = by_name[r.id]
        assert r.labels == {"covid19": m["covid19"], "verified": m.get("verified"),
                            "asymptomatic": m.get("asymptomatic")}
        assert r.source == m["source"]
    assert Counter(r.labels["covid19"] for r in recs) == {True: 30, False: 30}
    # Free-text comments (may describe the participant) are not copied.
    text = (REPO / "data_manifests/covid19_cough.jsonl").read_text(encoding="utf-8")
    assert "comment" not in text and "контакт" not in text


def test_bonn_sets(built):
    recs = _manifest(built, "bonn.jsonl")
    assert len(recs) == 50
    assert Counter(r.labels["set"] for r in recs) == {s: 10 for s in "ABCDE"}
    letters = {"A": "Z", "B": "O", "C": "N", "D": "F", "E": "S"}
    class3 = {"A": "healthy", "B": "healthy", "C": "interictal", "D": "interictal",
              "E": "ictal"}
    for r in recs:
        s = r.labels["set"]
        assert r.id[0] == letters[s] == r.labels["set_letter"] == Path(r.path).stem[0]
        assert r.labels["class3"] == class3[s] and r.labels["seizure"] == (s == "E")
        assert (r.fs, r.num_samples, r.subject) == (173.61, 4097, None)


def test_bonn_ignores_folder_names(tmp_path, data_root):
    flat = tmp_path / "flat"
    flat.mkdir()
    for p in sorted((data_root / "eeg/bonn").rglob("*.txt"))[:12]:
        (flat / p.name.upper()).write_bytes(p.read_bytes())
    recs = list(prepare_bonn(flat))
    assert len(recs) == 12 and recs[0].root is None
    assert {r.labels["set"] for r in recs} <= set("ABCDE")


def test_delhi_epilepsy(built):
    recs = _manifest(built, "delhi_epilepsy.jsonl")
    assert Counter(r.labels["stage"] for r in recs) == {"ictal": 50, "interictal": 50,
                                                       "preictal": 50}
    for r in recs:
        assert (r.fs, r.source_fs, r.num_samples, r.duration_s) == (200.0, 200.0, 1024, 5.12)
        assert r.path.startswith(r.labels["stage"] + "/")
        assert r.labels["seizure"] == (r.labels["stage"] == "ictal")


def test_eegmmidb(built):
    recs = _manifest(built, "eegmmidb.jsonl")
    assert len(recs) == 1
    r = recs[0]
    assert (r.id, r.subject, r.labels) == ("S001R01", "S001",
                                           {"run": 1, "task": "baseline_eyes_open"})
    assert (r.fs, len(r.channels)) == (160.0, 64)
    assert r.annotations == {"events": "S001/S001R01.edf.event"}


def test_librispeech_transcripts(built, data_root):
    recs = _manifest(built, "librispeech_test_clean_mini.jsonl")
    expected = {}
    for t in (data_root / "speech/librispeech_test_clean_mini").rglob("*.trans.txt"):
        for line in t.read_text().splitlines():
            utt, _, text = line.partition(" ")
            expected[utt] = text
    assert {r.id: r.text for r in recs} == expected
    assert all(r.subject == "1089" and r.split == "test" and r.fs == 16000.0 for r in recs)
    assert {r.meta["chapter"] for r in recs} == {"134686", "134691"}


def test_audio_folder_fleurs(built, data_root):
    recs = _manifest(built, "fleurs_en.jsonl")
    folder = data_root / "speech/fleurs_en"
    assert [r.id for r in recs] == sorted(p.stem for p in folder.glob("*.ogg"))
    for r in recs:
        assert r.text == (folder / f"{r.id}.txt").read_text().strip()
        assert r.modality == "speech" and r.subject is None


def test_segment_record_loads_cropped(built):
    """A respiratory cycle of an ICBHI recording loads as exactly its samples of the file
    (read here with soundfile), not the whole recording or a shifted window."""
    import numpy as np
    import soundfile as sf
    _, manifest_path = built["icbhi2017.jsonl"]
    rec = _manifest(built, "icbhi2017.jsonl")[1]
    assert rec.is_segment and rec.start_s > 0            # a cycle inside the file
    sig = rec.load(manifest_dir=manifest_path.parent)
    a, b = round(rec.start_s * rec.fs), round(rec.end_s * rec.fs)
    path = rec.resolve_path(manifest_dir=manifest_path.parent)
    ref, sr = sf.read(path, start=a, stop=b, dtype="float32", always_2d=True)
    assert sr == rec.fs == sig.fs
    assert sig.n_samples == b - a and b - a < sf.info(path).frames
    np.testing.assert_array_equal(sig.data, ref.T)
    assert len(sig.data[0]) > 0 and np.ptp(sig.data) > 0


def test_builders_name_the_problem(tmp_path):
    with pytest.raises(ManifestError, match=r"cinc2017: REFERENCE\.csv not found"):
        list(CORPORA["cinc2017"].prepare(tmp_path))
    with pytest.raises(ManifestError, match=r"nowhere: circor2022 corpus root is not a folder"):
        list(CORPORA["circor2022"].prepare(tmp_path / "nowhere"))
    (tmp_path / "REFERENCE.csv").write_text("A1,N\nA2,X\n")
    with pytest.raises(ManifestError, match=r"REFERENCE\.csv:2: expected 'record,label'"):
        list(CORPORA["cinc2017"].prepare(tmp_path))
    assert re.search("delhi", str(CORPORA["delhi_epilepsy"].prepare))


def _speechocean_layout(root):
    """A two-speaker speechocean762 layout (one train, one test speaker) and a reserved one."""
    import numpy as np
    import soundfile as sf
    rows = {"train": [("0001", "000010011", "WE CALL IT BEAR", 6, "m")],
            "test": [("0003", "000030012", "MARK IS GOING TO SEE ELEPHANT", 24, "f"),
                     ("0005", "000050003", "THREE TWO ONE", 30, "m")]}   # 0005: reserved
    for subset, utts in rows.items():
        d = root / subset
        d.mkdir(parents=True)
        (d / "text").write_text("".join(f"{u}\t{t}\n" for _, u, t, _, _ in utts))
        (d / "wav.scp").write_text("".join(f"{u}\tWAVE/SPEAKER{s}/{u}.WAV\n"
                                           for s, u, _, _, _ in utts))
        (d / "utt2spk").write_text("".join(f"{u} {s}\n" for s, u, _, _, _ in utts))
        (d / "spk2age").write_text("".join(f"{s}\t{a}\n" for s, _, _, a, _ in utts))
        (d / "spk2gender").write_text("".join(f"{s}\t{g}\n" for s, _, _, _, g in utts))
        for s, u, _, _, _ in utts:
            if s == "0005":
                continue                                   # never extracted
            (root / f"WAVE/SPEAKER{s}").mkdir(parents=True, exist_ok=True)
            sf.write(root / f"WAVE/SPEAKER{s}/{u}.WAV", np.zeros(8000, "float32"), 16000)


def test_speechocean762_splits_ages_and_reserved(tmp_path, caplog):
    """Train speakers -> train, test speakers -> valid (the dev set), age groups from spk2age,
    reserved speakers (no audio) skipped with one warning."""
    from biosig.manifests.corpora import prepare_speechocean762
    _speechocean_layout(tmp_path)
    recs = list(prepare_speechocean762(tmp_path))
    assert [(r.id, r.split, r.subject, r.labels["age_group"]) for r in recs] == [
        ("so762-000010011", "train", "0001", "child"),
        ("so762-000030012", "valid", "0003", "adult")]
    assert recs[1].text == "MARK IS GOING TO SEE ELEPHANT" and recs[1].meta["age"] == 24
    assert recs[0].duration_s == 0.5 and recs[0].fs == 16000.0
    assert "1 utterances listed in text" in caplog.text and "000050003" in caplog.text


def test_speechocean762_missing_table_names_file(tmp_path):
    from biosig.errors import ManifestError
    from biosig.manifests.corpora import prepare_speechocean762
    _speechocean_layout(tmp_path)
    (tmp_path / "test/spk2age").unlink()
    with pytest.raises(ManifestError, match=r"test/spk2age: speechocean762: file not found"):
        list(prepare_speechocean762(tmp_path))
