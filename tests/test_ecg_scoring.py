"""Batch QRS scoring (`biosig score qrs`) on a synthetic WFDB set with broken records:
annotation files, scores/errors rows, kill-and-resume, local pool and Dask equality."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from biosig.ecg import SCORE_COLUMNS, ecg_simulate, evaluate_qrs, score_qrs, write_wfdb_record

GOOD = ["mitdb/100", "sim/s128", "sim/s250", "sim/s500", "sim/sub/s360"]
BAD = {"bad/corrupt": "corrupt WFDB header", "bad/nodat": "signal file nodat.dat named in the "
       "header is missing", "bad/nan": "channel 0 has no finite value",
       "bad/lowfs": "lowfs.hea: sampling rate is 30 Hz, expected at least 50 Hz for QRS "
                    "detection"}


def _write_set(root: Path, with_mitdb: bool) -> Path:
    import wfdb
    src = root / "in"
    for rel, fs, pvc in [("sim/s128", 128.0, 0.0), ("sim/s250", 250.0, 0.15),
                         ("sim/s500", 500.0, 0.1), ("sim/sub/s360", 360.0, 0.2)]:
        sim = ecg_simulate(duration_s=60, fs=fs, pvc_fraction=pvc, seed=len(rel))
        two = np.stack([sim.signal, -0.5 * sim.signal])
        write_wfdb_record(src / Path(rel).parent, Path(rel).name, two, fs=fs,
                          beats=sim.r_peaks, labels=sim.labels)
    if with_mitdb:  # MIT-BIH 100 cut to 60 s, with its reference annotations
        from biosig.datasets import data_root
        rec = wfdb.rdrecord(str(data_root() / "ecg" / "mitdb" / "100"), sampto=21600)
        ann = wfdb.rdann(str(data_root() / "ecg" / "mitdb" / "100"), "atr", sampto=21600)
        (src / "mitdb").mkdir(parents=True)
        wfdb.wrsamp("100", fs=rec.fs, units=rec.units, sig_name=rec.sig_name,
                    p_signal=rec.p_signal, fmt=["16", "16"], write_dir=str(src / "mitdb"))
        wfdb.wrann("100", "atr", ann.sample, symbol=ann.symbol, aux_note=ann.aux_note,
                   fs=rec.fs, write_dir=str(src / "mitdb"))
    bad = src / "bad"
    bad.mkdir(parents=True)
    (bad / "corrupt.hea").write_text("corrupt 2 this-is-not-a-rate\n")
    (bad / "corrupt.dat").write_bytes(b"\0" * 100)
    write_wfdb_record(bad, "nodat", np.ones((1, 500)), fs=250.0)
    low = ecg_simulate(duration_s=20, fs=30.0, seed=0)   # readable, but too slow for QRS
    write_wfdb_record(bad, "lowfs", low.signal[None], fs=30.0)
    (bad / "nodat.dat").unlink()
    x = np.ones((1000, 2))
    x[:, 0] = np.nan
    wfdb.wrsamp("nan", fs=250, units=["mV", "mV"], sig_name=["a", "b"], p_signal=x,
                fmt=["16", "16"], adc_gain=[200.0, 200.0], baseline=[0, 0], write_dir=str(bad))
    return src


@pytest.fixture(scope="module")
def wfdb_set(tmp_path_factory) -> Path:
    from biosig.datasets import data_root
    root = data_root()
    with_mitdb = root is not None and (root / "ecg" / "mitdb" / "100.hea").exists()
    return _write_set(tmp_path_factory.mktemp("wfdbset"), with_mitdb)


@pytest.fixture(scope="module")
def scored(wfdb_set, tmp_path_factory):
    """The library's outputs on the set (computed once), with the run summary."""
    out = tmp_path_factory.mktemp("scored") / "out"
    return out, score_qrs(wfdb_set, out, progress=False)


def files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file()}


def test_score_qrs_outputs(wfdb_set, scored):
    import wfdb
    out, s = scored
    good = [g for g in GOOD if (wfdb_set / f"{g}.hea").exists()]
    assert (s.n_ok, s.n_failed) == (len(good), len(BAD))
    rows = list(csv.DictReader(open(out / "scores.csv")))
    assert list(rows[0].keys()) == list(SCORE_COLUMNS)
    assert [r["record"] for r in rows] == sorted(good)
    for r in rows:
        assert r["status"] == "ok" and r["quality"] == "good"
        assert 50 < float(r["heart_rate_mean_bpm"]) < 100
        assert float(r["heart_rate_min_bpm"]) <= float(r["heart_rate_mean_bpm"]) \
            <= float(r["heart_rate_max_bpm"])
        assert float(r["duration_s"]) == pytest.approx(60.0)
        ann = wfdb.rdann(str(out / r["record"]), "qrs")  # readable by wfdb
        assert len(ann.sample) == int(r["beats"]) and ann.fs == float(r["fs"])
    assert not [p for p in out.rglob(".*")], "temporary files or folders left behind"
    errors = {r["record"]: r["reason"] for r in csv.DictReader(open(out / "errors.csv"))}
    assert set(errors) == set(BAD)
    for rec, reason in BAD.items():
        assert reason in errors[rec] and "\n" not in errors[rec]
    # the detections agree with the references (synthetic truth, MIT-BIH 100 annotations)
    ev = evaluate_qrs(wfdb_set, out)
    assert {r.record for r in ev.records} == set(good)
    assert ev.gross.se == 1.0 and ev.gross.ppv == 1.0


def test_cli_score_then_evaluate(wfdb_set, scored, tmp_path, capsys):
    from biosig.cli import main
    out = tmp_path / "cli"
    assert main(["score", "qrs", str(wfdb_set), "--out", str(out), "--no-progress",
                 "--jobs", "1"]) == 0
    text = capsys.readouterr().out
    assert f"{len(BAD)} failed" in text
    assert files(out) == files(scored[0])  # the CLI equals the library call
    assert main(["evaluate", "qrs", str(wfdb_set), str(out)]) == 0
    table = capsys.readouterr().out
    assert "gross" in table and "100.00" in table
    assert main(["score", "qrs", str(wfdb_set), "--out", str(out), "--executor",
                 "dask"]) == 2
    assert "--scheduler" in capsys.readouterr().err


def test_record_list_input(wfdb_set, tmp_path):
    lst = wfdb_set / "RECORDS.txt"
    lst.write_text("sim/s250\nsim/sub/s360\nbad/nodat\n")
    try:
        s = score_qrs(lst, tmp_path / "o", progress=False)
    finally:
        lst.unlink()
    assert (s.n_ok, s.n_failed) == (2, 1)
    assert (tmp_path / "o" / "sim" / "sub" / "s360.qrs").exists()
    lst.write_text("sim/s250\n")
    try:
        s = score_qrs(lst, tmp_path / "lead5", lead=5, progress=False)
    finally:
        lst.unlink()
    reason = next(csv.DictReader(open(tmp_path / "lead5" / "errors.csv")))["reason"]
    assert reason.endswith("s250.hea: lead 5 does not exist; the record has 2 channels "
                           "['ECG0', 'ECG1']")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a named pipe (POSIX)")
def test_kill_and_resume_equals_uninterrupted(tmp_path, capsys):
    """A run killed mid-way (SIGKILL) and run again equals one uninterrupted run. The kill point
    is deterministic: record r06's header is a named pipe, the run blocks reading it after
    r00..r05 (r05 fails), and the test kills it exactly then -- when the pipe has a reader."""
    import errno

    from biosig.cli import main
    sim = ecg_simulate(duration_s=60, fs=360.0, pvc_fraction=0.1, seed=5)
    src = tmp_path / "in"
    for i in range(12):
        write_wfdb_record(src, f"r{i:02d}", sim.signal * (1 + 0.1 * i), fs=360.0)
    (src / "r05.dat").unlink()  # one failure in the middle
    full, killed = tmp_path / "full", tmp_path / "killed"
    score_qrs(src, full, progress=False)
    fifo = src / "r06.hea"
    header = fifo.read_bytes()
    fifo.unlink()
    os.mkfifo(fifo)
    args = ["score", "qrs", str(src), "--out", str(killed), "--no-progress", "--jobs", "1"]
    proc = subprocess.Popen([sys.executable, "-m", "biosig", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    writer = None
    try:
        deadline = time.monotonic() + 120     # a bound, not a threshold: normally ~2 s
        while writer is None and proc.poll() is None and time.monotonic() < deadline:
            try:  # succeeds once the run has opened r06.hea for reading, i.e. reached r06
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                assert exc.errno == errno.ENXIO, exc
                time.sleep(0.02)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert writer is not None, "the run never reached record r06"
    finally:
        proc.kill()           # SIGKILL while it waits for r06's header
        proc.wait()
        if writer is not None:
            os.close(writer)
    fifo.unlink()
    fifo.write_bytes(header)
    done = sum(len((killed / name).read_text().splitlines()) - 1
               for name in ("scores.csv", "errors.csv"))
    assert 0 < done <= 6, "the run was not interrupted mid-way"
    assert main(args) == 0  # the same command again
    assert f"{done} already done" in capsys.readouterr().out
    assert files(killed) == files(full)


def test_dask_same_outputs(wfdb_set, scored, tmp_path):
    distributed = pytest.importorskip("distributed")
    local, viadask = scored[0], tmp_path / "dask"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp://", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        score_qrs(wfdb_set, viadask, executor="dask", scheduler=cluster.scheduler_address,
                  progress=False)
    assert files(local) == files(viadask)


def test_plot_with_annotations(wfdb_set, tmp_path):
    """Part 7: `biosig plot RECORD --annotations DIR/REC.qrs` (command owned by the signal
    area); skipped until that command exists."""
    from biosig.cli import _register, app
    _register()
    import typer.main
    names = {c.name for c in typer.main.get_command(app).commands.values()} \
        if hasattr(typer.main.get_command(app), "commands") else set()
    if "plot" not in names:
        pytest.skip("`biosig plot` is not available yet")
    from biosig.cli import main
    out = tmp_path / "o"
    score_qrs(wfdb_set / "sim" / "sub", out, progress=False)
    png = tmp_path / "plot.png"
    rc = main(["plot", str(wfdb_set / "sim" / "sub" / "s360.hea"), "--annotations",
               str(out / "s360.qrs"), "--start-s", "5", "--end-s", "15", "--out", str(png)])
    assert rc == 0 and png.exists() and png.stat().st_size > 0


def test_quality_flag():
    from biosig.ecg import ecg_peaks
    from biosig.ecg.scoring import qrs_quality
    fs = 250.0
    sim = ecg_simulate(duration_s=60, fs=fs, pvc_fraction=0.2, seed=2)
    p = ecg_peaks(sim.signal, fs=fs).samples
    assert qrs_quality(p, fs=fs, n_samples=sim.signal.size, lead=sim.signal) == "good"
    noise = np.random.default_rng(0).standard_normal(sim.signal.size)
    pn = ecg_peaks(noise, fs=fs).samples
    assert len(pn) > 30  # the detector finds "beats" in noise ...
    assert qrs_quality(pn, fs=fs, n_samples=noise.size, lead=noise) == "poor"  # ... flagged
    gap = np.r_[p[p < 20 * fs], p[p > 26 * fs]]  # 6 s without beats
    assert qrs_quality(gap, fs=fs, n_samples=sim.signal.size) == "poor"
    assert qrs_quality(p[:2], fs=fs, n_samples=sim.signal.size) == "unusable"


def test_manifest_input_with_segments(wfdb_set, tmp_path):
    import json

    import wfdb
    base = {"modality": "ecg", "fs": 250.0, "num_samples": 15000, "channels": ["ECG0", "ECG1"],
            "subject": None, "labels": {}}
    lines = [dict(base, id="whole", path=str(wfdb_set / "sim" / "s250.hea"), duration_s=60.0),
             dict(base, id="seg/first20", path=str(wfdb_set / "sim" / "s250.hea"),
                  duration_s=20.0, start_s=0.0, end_s=20.0),
             dict(base, id="eeg", path=str(wfdb_set / "sim" / "s250.hea"), duration_s=60.0,
                  modality="eeg")]
    man = tmp_path / "m.jsonl"
    man.write_text("".join(json.dumps(x) + "\n" for x in lines))
    s = score_qrs(man, tmp_path / "o", progress=False)
    assert (s.n_inputs, s.n_ok) == (2, 2)  # ECG lines only
    rows = {r["record"]: r for r in csv.DictReader(open(tmp_path / "o" / "scores.csv"))}
    assert float(rows["seg/first20"]["duration_s"]) == pytest.approx(20.0)
    whole = wfdb.rdann(str(tmp_path / "o" / "whole"), "qrs").sample
    seg = wfdb.rdann(str(tmp_path / "o" / "seg" / "first20"), "qrs").sample
    inner = whole[(whole > 500) & (whole < 4500)]
    np.testing.assert_array_equal(seg[(seg > 500) & (seg < 4500)], inner)
