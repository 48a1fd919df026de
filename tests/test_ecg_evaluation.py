"""EC57 beat-by-beat comparator on hand-made cases, files and the CLI."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from biosig.ecg import (
    BeatCounts,
    QrsEvaluation,
    RecordScore,
    compare_beats,
    evaluate_qrs,
    match_beats,
    write_qrs_annotations,
)
from biosig.errors import ConfigError, InputError
from biosig.signal import Annotations

REF = np.array([1.0, 2.0, 3.0, 4.0])


def counts(ref, test, window_s=0.15):
    c = match_beats(ref, test, window_s=window_s).counts
    return c.tp, c.fn, c.fp


def test_exact_match():
    assert counts(REF, REF) == (4, 0, 0)
    c = BeatCounts(4, 0, 0)
    assert (c.se, c.ppv, c.f1) == (1.0, 1.0, 1.0)


def test_shift_within_and_outside_window():
    assert counts(REF, REF + 0.149) == (4, 0, 0)
    assert counts(REF, REF - 0.15) == (4, 0, 0)  # the window is inclusive
    assert counts(REF, REF + 0.151) == (0, 4, 4)
    assert counts(REF, REF + np.array([0.0, 0.2, 0.0, -0.3])) == (2, 2, 2)


def test_double_detection_is_one_tp_one_fp():
    test = np.sort(np.r_[REF, 2.05])
    assert counts(REF, test) == (4, 0, 1)
    m = match_beats(REF, test)
    np.testing.assert_array_equal(m.false, [2])  # the farther of the two (2.05) is false
    np.testing.assert_array_equal(m.test_index, [0, 1, 3, 4])


def test_one_to_one_closest_first():
    # one detection between two beats 0.2 s apart: it goes to the closer beat only
    assert counts(np.array([1.0, 1.2]), np.array([1.12])) == (1, 1, 0)
    m = match_beats(np.array([1.0, 1.2]), np.array([1.12]))
    np.testing.assert_array_equal(m.ref_index, [1])
    np.testing.assert_array_equal(m.missed, [0])


def test_missing_and_empty():
    assert counts(REF, REF[[0, 2]]) == (2, 2, 0)
    assert counts(REF, np.zeros(0)) == (0, 4, 0)
    assert counts(np.zeros(0), REF) == (0, 0, 4)
    c = BeatCounts(0, 0, 0)
    assert math.isnan(c.se) and math.isnan(c.ppv) and math.isnan(c.f1)


def test_counts_arithmetic():
    c = BeatCounts(90, 10, 5)
    assert c.se == pytest.approx(0.9) and c.ppv == pytest.approx(90 / 95)
    assert c.f1 == pytest.approx(180 / 195)
    assert c + BeatCounts(1, 2, 3) == BeatCounts(91, 12, 8)


def test_non_beat_annotations_ignored():
    ref = Annotations(np.array([0.5, 1.0, 1.5, 2.0, 3.0]), 0.0, ["+", "N", "~", "V", "|"],
                      ["(N", "", "", "", ""])
    test = Annotations(np.array([1.01, 1.52, 2.0]), 0.0, ["N", '"', "N"])
    # reference beats: N at 1.0 and V at 2.0; the test comment at 1.52 does not count
    assert compare_beats(ref, test) == BeatCounts(2, 0, 0)
    assert compare_beats(ref, test, start_s=1.5) == BeatCounts(1, 0, 0)


def test_bad_window():
    with pytest.raises(ConfigError, match=r"window_s: expected a positive number"):
        match_beats(REF, REF, window_s=0)


def test_gross_and_average():
    ev = QrsEvaluation([RecordScore("a", BeatCounts(100, 0, 0)),
                        RecordScore("b", BeatCounts(50, 50, 0))])
    assert ev.gross == BeatCounts(150, 50, 0)
    assert ev.gross.se == pytest.approx(0.75)
    assert ev.average["se"] == pytest.approx(0.75)  # (1.0 + 0.5) / 2
    assert ev.average["ppv"] == pytest.approx(1.0)
    text = ev.format_table()
    assert "gross" in text and "average" in text and " 75.00" in text


def _write_pair(tmp_path, name, ref_s, test_s, fs=250.0, ref_labels=None):
    ref_dir, test_dir = tmp_path / "ref", tmp_path / "test"
    write_qrs_annotations(ref_dir / f"{name}.atr", np.round(np.asarray(ref_s) * fs), fs=fs)
    if ref_labels is not None:  # rewrite with labels
        import wfdb
        wfdb.wrann(name, "atr", np.round(np.asarray(ref_s) * fs).astype(int),
                   symbol=ref_labels, fs=fs, write_dir=str(ref_dir))
    if test_s is not None:
        write_qrs_annotations(test_dir / f"{name}.qrs", np.round(np.asarray(test_s) * fs),
                              fs=fs)
    return ref_dir, test_dir


def test_evaluate_qrs_files_json_csv(tmp_path):
    ref_dir, test_dir = _write_pair(tmp_path, "r1", [1, 2, 3, 4], [1.01, 2.0, 2.05, 3.3],
                                    ref_labels=["N", "V", "+", "N"])
    _write_pair(tmp_path, "r2", [1, 2], [1, 2])
    _write_pair(tmp_path, "r3", [1, 2], None)  # no detector output
    ev = evaluate_qrs(ref_dir, test_dir, out_dir=tmp_path / "eval")
    by = {r.record: r.counts for r in ev.records}
    # r1: beats at 1, 2, 4 (the '+' at 3 is not a beat); test 1.01, 2.0 match; 2.05, 3.3 false
    assert by == {"r1": BeatCounts(2, 1, 2), "r2": BeatCounts(2, 0, 0)}
    assert ev.missing == ["r3"]
    data = json.loads((tmp_path / "eval" / "qrs_evaluation.json").read_text())
    assert data["gross"]["tp"] == 4 and data["gross"]["fn"] == 1 and data["gross"]["fp"] == 2
    assert data["missing"] == ["r3"] and data["window_s"] == 0.15
    rows = list(csv.DictReader(open(tmp_path / "eval" / "qrs_evaluation.csv")))
    assert [r["record"] for r in rows] == ["r1", "r2", "gross", "average"]
    assert float(rows[2]["se"]) == pytest.approx(0.8)


def test_evaluate_qrs_errors(tmp_path):
    with pytest.raises(InputError, match=r"REF_DIR is not a directory"):
        evaluate_qrs(tmp_path / "nope", tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no \*.atr reference annotation files found"):
        evaluate_qrs(tmp_path / "empty", tmp_path)


def test_cli_evaluate_qrs(tmp_path, capsys):
    from biosig.cli import main
    ref_dir, test_dir = _write_pair(tmp_path, "r1", [1, 2, 3], [1, 2, 3])
    rc = main(["evaluate", "qrs", str(ref_dir), str(test_dir), "--out", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "r1" in out and "100.00" in out
    assert (tmp_path / "o" / "qrs_evaluation.json").exists()
    rc = main(["evaluate", "qrs", str(ref_dir), str(test_dir), "--test-ext", "xyz"])
    assert rc == 0 and "not scored" in capsys.readouterr().out


def test_write_qrs_annotations_roundtrip_and_empty(tmp_path):
    import wfdb

    from biosig.io import read_annotations
    p = write_qrs_annotations(tmp_path / "sub" / "rec.qrs", [10, 400, 100_000], fs=360.0)
    a = wfdb.rdann(str(tmp_path / "sub" / "rec"), "qrs")
    assert list(a.sample) == [10, 400, 100_000] and a.symbol == ["N"] * 3 and a.fs == 360
    assert sorted(x.name for x in p.parent.iterdir()) == ["rec.qrs"]  # nothing left over
    write_qrs_annotations(tmp_path / "none.qrs", [], fs=250.0)  # WFDB files cannot be empty
    ann = read_annotations(tmp_path / "none.qrs")
    assert ann.labels == ['"'] and ann.aux == ["no QRS detected"]
    ref = Annotations(np.array([1.0, 2.0]), 0.0, ["N", "N"])
    assert compare_beats(ref, ann) == BeatCounts(0, 2, 0)
