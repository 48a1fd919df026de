"""The README's main job: commands and outputs."""

from __future__ import annotations

import csv
import json
import re
import shutil

import pytest

from biosig.cli import main


def _readme_commands(repo_root):
    text = (repo_root / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", text, flags=re.S)
    return blocks[0].strip(), blocks[1].strip()


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second(repo_root):
    run_cmd, test_cmd = _readme_commands(repo_root)
    assert "biosig demo" in run_cmd and "pytest" in test_cmd
    head = (repo_root / "README.md").read_text().split("```bash")[0]
    assert head.count("\n") < 6, "the README must open with the two commands"
    ci = (repo_root / ".ci" / "run").read_text()
    assert test_cmd in ci


@pytest.mark.slow
def test_demo_synthetic_writes_plots_and_tables(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--synthetic", "--out", str(out)]) == 0
    pngs = sorted((out / "plots").glob("*.png"))
    assert {p.name.split("__")[0] for p in pngs} == {"ecg", "pcg", "lung", "cough", "speech",
                                                      "eeg"}
    assert all(p.stat().st_size > 10_000 for p in pngs)
    with open(out / "features_eeg.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    alpha = [float(v) for k, v in rows[0].items() if k.endswith("_alpha")]
    beta = [float(v) for k, v in rows[0].items() if k.endswith("_beta")]
    assert alpha and sum(alpha) > sum(beta)  # the synthetic EEG carries a 10 Hz rhythm
    with open(out / "recordings.csv") as f:
        assert all(r["status"] == "ok" for r in csv.DictReader(f))
    # ECG stage on simulated records with known beats
    with open(out / "qrs" / "qrs_evaluation.csv") as f:
        rows = {r["record"]: r for r in csv.DictReader(f)}
    assert {"sim0", "sim1", "sim2"} <= set(rows)
    assert float(rows["gross"]["se"]) > 0.99 and float(rows["gross"]["ppv"]) > 0.99
    # dictation stage: a synthesized dictated sentence streamed with the offline Whisper base
    from biosig.asr.models import packaged_model_dir
    if packaged_model_dir(build=False) is not None and shutil.which("festival"):
        events = (out / "dictation" / "events.jsonl").read_text().splitlines()
        finals = [json.loads(e) for e in events if json.loads(e)["type"] == "final"]
        assert finals and all(f["emitted_at"] >= f["end"] for f in finals)
        doc = (out / "dictation" / "document.txt").read_text().lower()
        assert "hypertension" in doc and "." in doc  # "period" became a full stop


@pytest.mark.slow
def test_demo_on_real_data(tmp_path, data_root):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--data-root", str(data_root),
                 "--max-per-modality", "1"]) == 0
    with open(out / "recordings.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["modality"] for r in rows} == {"ecg", "pcg", "lung", "cough", "speech", "eeg"}
    assert all(r["status"] == "ok" and r["recording"] != "synthetic" for r in rows)
