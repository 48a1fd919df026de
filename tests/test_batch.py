"""The generic resumable batch runner (biosig.batch), with a toy per-record function."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from biosig.batch import BatchItem, atomic_path, count_inputs, iter_inputs, run_batch
from biosig.errors import ConfigError, InputError

COLUMNS = ("record", "size", "doubled", "status")


def toy(item: BatchItem, out_dir: str) -> dict:
    """Reads the number in the file, writes <record>.out, fails on 'bad'."""
    text = Path(item.path).read_text().strip()
    if text == "bad":
        raise ValueError(f"{item.path}: not a number\n(second line of the message)")
    value = int(text)
    with atomic_path(out_dir, f"{item.key}.out") as tmp:
        tmp.write_text(str(2 * value))
    return {"size": value, "doubled": 2 * value, "status": "ok"}


def crashing_toy(item: BatchItem, out_dir: str) -> dict:
    if Path(item.path).read_text().strip() == "crash":
        os._exit(3)  # a crash in native code, the out-of-memory killer...
    return toy(item, out_dir)


_CALLS = [0]


def hanging_toy(item: BatchItem, out_dir: str) -> dict:
    """As toy for the first 8 records; the 9th leaves a marker beside the output folder and
    never finishes (until the process is killed): a run interrupted mid-way whatever the
    machine's speed."""
    _CALLS[0] += 1
    if _CALLS[0] > 8:
        (Path(out_dir).parent / "hanging").touch()
        time.sleep(3600)
    return toy(item, out_dir)


def make_tree(root: Path, n: int = 12, bad=(3, 7)) -> Path:
    src = root / "in"
    for i in range(n):
        sub = src / ("a" if i % 2 else "b") / ("deep" if i % 3 == 0 else "")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"r{i:03d}.txt").write_text("bad" if i in bad else str(i))
    (src / ".hidden").mkdir()
    (src / ".hidden" / "x.txt").write_text("1")
    return src


def files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*"))
            if p.is_file()}


def test_inputs_folder_list_manifest(tmp_path):
    src = make_tree(tmp_path, n=4, bad=())
    keys = [it.key for it in iter_inputs(src, pattern="*.txt")]
    assert keys == ["a/deep/r003", "a/r001", "b/deep/r000", "b/r002"]  # sorted, no hidden
    lst = src / "RECORDS"
    lst.write_text("# comment\nb/r002.txt\n\na/r001.txt\n")
    items = list(iter_inputs(lst))
    assert [(i.key, Path(i.path).read_text()) for i in items] == [("b/r002", "2"),
                                                                  ("a/r001", "1")]
    man = tmp_path / "m.jsonl"
    lines = [{"id": f"rec{i}", "path": "in/b/r002.txt", "modality": m, "fs": 100.0,
              "num_samples": 10, "duration_s": 0.1, "channels": ["x"], "subject": None,
              "labels": {}} for i, m in enumerate(["ecg", "eeg"])]
    man.write_text("".join(json.dumps(x) + "\n" for x in lines))
    items = list(iter_inputs(man, select=lambda r: r.modality == "ecg"))
    assert [i.key for i in items] == ["rec0"] and Path(items[0].path).read_text() == "2"
    assert items[0].meta["modality"] == "ecg"
    with pytest.raises(InputError, match=r"input not found"):
        list(iter_inputs(tmp_path / "missing"))


def test_duplicate_names_rejected(tmp_path):
    src = make_tree(tmp_path, n=2, bad=())
    lst = tmp_path / "list.txt"
    lst.write_text("in/a/r001.txt\nin/a/r001.txt\n")
    with pytest.raises(ConfigError, match=r"record name 'in/a/r001' occurs twice"):
        count_inputs(lst)
    del src


def test_run_rows_errors_and_outputs(tmp_path):
    src = make_tree(tmp_path)
    out = tmp_path / "out"
    s = run_batch(src, toy, out, columns=COLUMNS, pattern="*.txt", progress=False)
    assert (s.n_inputs, s.n_ok, s.n_failed, s.n_skipped) == (12, 10, 2, 0)
    scores = (out / "scores.csv").read_text().splitlines()
    assert scores[0] == "record,size,doubled,status"
    assert scores[1:3] == ["a/deep/r009,9,18,ok", "a/r001,1,2,ok"]  # input order
    errors = (out / "errors.csv").read_text().splitlines()
    assert errors[0] == "record,reason"
    assert errors[1] == "a/deep/r003,ValueError: " + str(src / "a/deep/r003.txt") + \
        ": not a number (second line of the message)"
    assert (out / "b/deep/r000.out").read_text() == "0"
    assert not (out / ".partial").exists()
    # rerun: everything skipped, files unchanged
    before = files(out)
    s2 = run_batch(src, toy, out, columns=COLUMNS, pattern="*.txt", progress=False)
    assert (s2.n_skipped, s2.n_ok, s2.n_failed) == (12, 0, 0)
    assert files(out) == before


def test_resume_after_partial_write_equals_uninterrupted(tmp_path):
    src = make_tree(tmp_path)
    full, part = tmp_path / "full", tmp_path / "part"
    run_batch(src, toy, full, columns=COLUMNS, pattern="*.txt", progress=False)
    # a run killed mid-way: the first 5 records' rows, a torn row, a stale temporary file
    ref_rows = (full / "scores.csv").read_text().splitlines(keepends=True)
    part.mkdir()
    (part / "scores.csv").write_text("".join(ref_rows[:4]) + "b/r00")
    (part / "errors.csv").write_text((full / "errors.csv").read_text().splitlines(True)[0])
    for rec in [row.split(",")[0] for row in ref_rows[1:4]]:
        (part / f"{rec}.out").parent.mkdir(parents=True, exist_ok=True)
        (part / f"{rec}.out").write_text((full / f"{rec}.out").read_text())
    (part / ".partial").mkdir()
    (part / ".partial" / "junk-b.out").write_text("half")
    s = run_batch(src, toy, part, columns=COLUMNS, pattern="*.txt", progress=False)
    assert s.n_skipped == 3
    assert files(part) == files(full)


def test_jobs_and_retry_errors(tmp_path):
    src = make_tree(tmp_path)
    one, two = tmp_path / "one", tmp_path / "two"
    run_batch(src, toy, one, columns=COLUMNS, pattern="*.txt", progress=False)
    run_batch(src, toy, two, columns=COLUMNS, pattern="*.txt", progress=False, jobs=2,
              max_in_flight=3)
    assert files(one) == files(two)
    (src / "a" / "deep" / "r003.txt").write_text("3")  # fixed
    s = run_batch(src, toy, one, columns=COLUMNS, pattern="*.txt", progress=False,
                  retry_errors=True)
    assert (s.n_ok, s.n_failed) == (1, 1)
    assert "a/deep/r003,3,6,ok" in (one / "scores.csv").read_text()
    assert "a/deep/r003" not in (one / "errors.csv").read_text()


def test_worker_crash_is_an_error_row(tmp_path):
    from biosig.batch import WORKER_DIED
    src = make_tree(tmp_path, n=8, bad=(3,))
    crash = next(src.rglob("r005.txt"))
    crash.write_text("crash")
    out = tmp_path / "out"
    s = run_batch(src, crashing_toy, out, columns=COLUMNS, pattern="*.txt", progress=False,
                  jobs=2, max_in_flight=4)
    assert (s.n_ok, s.n_failed) == (6, 2)
    errors = (out / "errors.csv").read_text().splitlines()[1:]
    assert errors[1] == f"a/r005,{WORKER_DIED}"
    crash.write_text("5")
    ref = run_batch(src, toy, tmp_path / "ref", columns=COLUMNS, pattern="*.txt",
                    progress=False)
    assert ref.n_ok == 7
    rows = (out / "scores.csv").read_text().splitlines()
    assert rows == [r for r in (tmp_path / "ref" / "scores.csv").read_text().splitlines()
                    if not r.startswith("a/r005,")]  # input order kept


def test_bad_arguments(tmp_path):
    src = make_tree(tmp_path, n=2, bad=())
    with pytest.raises(ConfigError, match=r"--jobs: expected a positive integer, got 0"):
        run_batch(src, toy, tmp_path / "o", columns=COLUMNS, jobs=0, progress=False)
    with pytest.raises(ConfigError, match=r"--executor: expected 'local' or 'dask'"):
        run_batch(src, toy, tmp_path / "o", columns=COLUMNS, executor="ray", progress=False)
    with pytest.raises(ConfigError, match=r"--scheduler: the dask executor needs"):
        run_batch(src, toy, tmp_path / "o", columns=COLUMNS, executor="dask", progress=False)
    assert not (tmp_path / "o").exists()  # nothing written for a bad command line
    (tmp_path / "o2").mkdir()
    (tmp_path / "o2" / "scores.csv").write_text("record,other\n")
    with pytest.raises(ConfigError, match=r"scores.csv: was written with other columns"):
        run_batch(src, toy, tmp_path / "o2", columns=COLUMNS, progress=False)


_KILL_SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from test_batch import hanging_toy, COLUMNS
from biosig.batch import run_batch
run_batch({src!r}, hanging_toy, {out!r}, columns=COLUMNS, pattern="*.txt", progress=False)
"""


def test_kill_and_resume_subprocess(tmp_path):
    src = make_tree(tmp_path, n=16)
    full, killed = tmp_path / "full", tmp_path / "killed"
    run_batch(src, toy, full, columns=COLUMNS, pattern="*.txt", progress=False)
    script = _KILL_SCRIPT.format(tests=str(Path(__file__).parent), src=str(src),
                                 out=str(killed))
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (tmp_path / "hanging").exists():
        time.sleep(0.01)                       # 8 records done, the 9th hangs
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_rows = (killed / "scores.csv").read_text().count("\n") - 1
    n_err = (killed / "errors.csv").read_text().count("\n") - 1
    assert (tmp_path / "hanging").exists()
    assert 0 < n_rows + n_err <= 8  # really interrupted mid-way (rows are written behind)
    s = run_batch(src, toy, killed, columns=COLUMNS, pattern="*.txt", progress=False)
    assert s.n_skipped == n_rows + n_err
    assert files(killed) == files(full)


def test_dask_executor_same_outputs(tmp_path):
    distributed = pytest.importorskip("distributed")
    src = make_tree(tmp_path, n=6)
    local, viadask = tmp_path / "local", tmp_path / "dask"
    run_batch(src, toy, local, columns=COLUMNS, pattern="*.txt", progress=False)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  protocol="tcp://", host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        s = run_batch(src, toy, viadask, columns=COLUMNS, pattern="*.txt", progress=False,
                      executor="dask", scheduler=cluster.scheduler_address)
    assert (s.n_ok, s.n_failed) == (5, 1)
    assert files(local) == files(viadask)


def test_atomic_writes_get_the_permissions_of_a_plain_write(tmp_path):
    """A file or folder written atomically ends up with the mode open()/mkdir() would give it
    under the process's umask, not mkstemp's/mkdtemp's owner-only 0600/0700."""
    import os
    import stat

    from biosig.fileio import atomic_dir, write_text_atomic
    old = os.umask(0o022)
    try:
        f = write_text_atomic(tmp_path / "out.json", "{}")
        with atomic_dir(tmp_path / "model") as d:
            (d / "w.bin").write_bytes(b"0")
        plain = tmp_path / "plain.json"
        plain.write_text("{}")
        assert stat.S_IMODE(f.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o644
        assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755
    finally:
        os.umask(old)
