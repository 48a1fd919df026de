"""What training on full corpora needs, checked on small data: corpus folders as released
(header rows, reserved records absent, an undecodable file), the feature cache, progress that
suits a log file, pooled K-fold reports, and scoring a folder laid out like the corpus."""

from __future__ import annotations

import io
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_train_engine import toy, toy_config  # noqa: F401  (the toy corpus fixture)

from biosig.manifests.build import build_manifest
from biosig.progress import Progress
from biosig.train.config import validate_config
from biosig.train.engine import run


def test_covid_build_skips_an_undecodable_file(data_root, tmp_path, caplog):
    src = data_root / "cough" / "covid19_cough"
    shutil.copytree(src, tmp_path / "c")
    meta = json.loads((tmp_path / "c" / "metadata.json").read_text())
    audio = sorted((tmp_path / "c" / "raw").glob("*"))
    broken = audio[0]
    broken.write_bytes(b"\xff\xfb\x90\x64" + bytes(257))        # one bogus MP3 frame
    present = {p.name for p in audio}
    n_listed = sum(1 for e in meta if e["filename"] in present)
    with caplog.at_level(logging.WARNING, logger="biosig.manifests"):
        res = build_manifest("covid19_cough", tmp_path / "c", tmp_path / "m.jsonl")
    assert res.n_lines == n_listed - 1
    msgs = [r.getMessage() for r in caplog.records]
    bad = [m for m in msgs if broken.name in m]
    assert len(bad) == 1 and "skipped" in bad[0] and "does not exist" not in bad[0]


def test_cinc2017_reference_with_header_and_absent_records(data_root, tmp_path, caplog):
    src = data_root / "ecg" / "cinc2017_af" / "training2017"
    dst = tmp_path / "training2017"
    shutil.copytree(src, dst)
    rows = (dst / "REFERENCE.csv").read_text().splitlines()
    (dst / "REFERENCE.csv").write_text("data_source,class\n" + "\n".join(rows)
                                       + "\nA99995,N\nA99990,A\n")
    with caplog.at_level(logging.WARNING, logger="biosig.manifests"):
        res = build_manifest("cinc2017", tmp_path, tmp_path / "m.jsonl")
    assert res.n_lines == len(rows)
    warn = [r.getMessage() for r in caplog.records if "not found" in r.getMessage()]
    assert len(warn) == 1 and warn[0].startswith("cinc2017: 2 records")


def test_progress_prints_lines_when_not_a_terminal(monkeypatch):
    monkeypatch.delenv("BIOSIG_PROGRESS", raising=False)
    buf = io.StringIO()                                        # not a tty
    p = Progress(4, desc="epoch 1/2", unit="batch", items_unit="rec", interval_s=0.0,
                 stream=buf)
    assert p.mode == "lines"
    for _ in range(4):
        p.update(1, items=8, loss="0.5")
    p.close()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 5 and "\r" not in buf.getvalue()
    assert lines[1].startswith("epoch 1/2: 2/4 batch (50 %)") and "ETA" in lines[1]
    assert "16 rec" in lines[1] and "loss 0.5" in lines[1]
    assert "took" in lines[-1]
    quiet = io.StringIO()
    p = Progress(10, desc="x", interval_s=3600.0, stream=quiet)
    for _ in range(10):
        p.update()
    p.close()
    assert quiet.getvalue() == ""                              # under one interval: silent
    monkeypatch.setenv("BIOSIG_PROGRESS", "off")
    assert Progress(1, desc="x", stream=io.StringIO()).mode == "off"


def _cached_cfg(toy, out, cache, **over):  # noqa: F811
    return validate_config(toy_config(toy, out, **{"data.feature_cache": str(cache),
                                                   "train.epochs": 3, **over}))


def test_feature_cache_trains_reads_back_and_invalidates(toy, tmp_path, monkeypatch):  # noqa: F811
    from biosig.train import cache as C
    cache = tmp_path / "cache"
    res = run(_cached_cfg(toy, tmp_path / "r", cache), run_id="a", progress=False)
    assert res.report["metrics"]["accuracy"] >= 0.8            # tones stay easy
    assert res.report["throughput"]["train_rec_per_s"] > 0
    (key_dir,) = [d for d in cache.iterdir() if d.is_dir()]
    files = sorted(key_dir.glob("*.npy"))
    assert len(files) == 24 and (key_dir / "config.json").is_file()
    f = np.load(files[0])
    assert f.dtype == np.float16 and f.shape[0] == 16           # n_mels bins, whole recording

    calls = []
    orig = C.FeatureCache.compute
    monkeypatch.setattr(C.FeatureCache, "compute",
                        lambda self, ex: calls.append(ex) or orig(self, ex))
    run(_cached_cfg(toy, tmp_path / "r", cache), run_id="b", progress=False)
    assert calls == []                                         # read back, nothing recomputed
    # normalisation is applied per batch, so it does not change the key ...
    run(_cached_cfg(toy, tmp_path / "r", cache, **{"frontend.normalize": "cmvn"}),
        run_id="c", progress=False)
    assert calls == []
    # ... but any front-end change does
    run(_cached_cfg(toy, tmp_path / "r", cache, **{"frontend.n_mels": 12}), run_id="d",
        progress=False)
    assert len(calls) == 24 and len([d for d in cache.iterdir() if d.is_dir()]) == 2
    # ... a band-pass too (the spec's prepare runs before the cache)
    calls.clear()
    run(_cached_cfg(toy, tmp_path / "r", cache, **{"frontend.band_hz": [20.0, 400.0]}),
        run_id="e", progress=False)
    assert len(calls) == 24 and len([d for d in cache.iterdir() if d.is_dir()]) == 3


def test_cached_features_equal_the_frontend(toy):  # noqa: F811
    from biosig.manifests import read_manifest
    from biosig.train.cache import FeatureCache, FeatureWindowDataset
    from biosig.train.data import Example
    cfg = validate_config(toy_config(toy, toy, **{"data.feature_cache": "unused"}))
    fe = cfg.frontend.transform_module()
    rec = next(iter(read_manifest(cfg.data.manifest)))
    ex = Example(rec, 0, "train", "g")
    c = FeatureCache.__new__(FeatureCache)
    c.frontend, c.dcfg = fe, cfg.data
    whole = c.compute(ex)
    wave, _ = sf.read(Path(cfg.data.root) / rec.path, dtype="float32")
    ref = fe.raw(torch.from_numpy(wave)[None])[0].numpy()
    np.testing.assert_allclose(whole, ref, rtol=1e-5, atol=1e-4)
    n = fe.n_frames(cfg.frontend.samples(cfg.data.crop_s))
    ds = FeatureWindowDataset([ex], [whole], n_frames=n, train=False, eval_mode="all",
                              max_eval_windows=8)
    w, t = ds[0]
    assert w.shape == (2, 16, n) and t == 0                    # 2 s cut in two 1 s windows
    np.testing.assert_array_equal(w[0].numpy(), whole[:, :n])


def test_noise_augmentation_with_feature_cache_is_refused(toy, tmp_path):  # noqa: F811
    from biosig.errors import ConfigError
    with pytest.raises((ConfigError, ValueError), match="augment.noise_prob"):
        validate_config(toy_config(toy, tmp_path, **{"data.feature_cache": "c",
                                                     "augment.noise_prob": 0.5}))


def test_cv_pools_every_fold_with_confidence_intervals(toy, tmp_path):  # noqa: F811
    cfg = validate_config(toy_config(toy, tmp_path, **{"cv": {"folds": 3}, "train.epochs": 1,
                                                       "data.feature_cache":
                                                       str(tmp_path / "c")}))
    d = Path(run(cfg, progress=False).run_dir)
    cv = json.loads((d / "cv_report.json").read_text())
    pooled = cv["pooled"]
    assert pooled["n_items"] == 24                              # every record tested once
    m = pooled["metrics"]
    assert m["ci"]["accuracy"]["low"] <= m["accuracy"] <= m["ci"]["accuracy"]["high"]
    assert (d / "confusion_matrix.png").is_file() and (d / "cv_test_predictions.csv").is_file()
    assert cv["throughput"]["train_rec_per_s"] > 0


def test_score_model_on_a_cached_run_matches_training_scores(toy, tmp_path):  # noqa: F811
    from biosig.train.inference import load_run, load_waveform, predict_waveform
    res = run(_cached_cfg(toy, tmp_path / "r", tmp_path / "c"), run_id="a", progress=False)
    import csv
    with open(Path(res.run_dir) / "test_predictions.csv") as f:
        row = next(csv.DictReader(f))
    lr = load_run(res.run_dir, device="cpu")
    p = predict_waveform(lr, load_waveform(lr, Path(toy) / f"{row['record']}.wav"))
    assert p[1] == pytest.approx(float(row["p_high"]), abs=2e-3)   # float16 cache vs float32


def test_batch_folder_pattern_ignores_case(tmp_path):
    from biosig.batch import iter_inputs
    for name in ("Z001.txt", "N001.TXT"):
        (tmp_path / name).write_text("1\n2\n")
    assert sorted(i.key for i in iter_inputs(tmp_path, pattern="*.txt")) == ["N001", "Z001"]


def test_one_recording_named_directly_is_one_input(data_root):
    from biosig.batch import iter_inputs
    items = list(iter_inputs(data_root / "ecg" / "mitdb" / "100.hea", pattern="*.hea"))
    assert [i.key for i in items] == ["100"]


@pytest.mark.parametrize("marker", ["last.pt", "report.json", "cv_report.json", "fold-0"])
def test_run_id_reuse_is_refused_for_every_task(tmp_path, marker):
    from types import SimpleNamespace

    from biosig.errors import ConfigError
    from biosig.train.runs import resolve_run_dir
    cfg = SimpleNamespace(output_dir=str(tmp_path), recipe="whisper_dictation")
    assert resolve_run_dir(cfg, run_id="x", resume=False) == tmp_path / "whisper_dictation/x"
    (tmp_path / "whisper_dictation" / "x").mkdir(parents=True)
    (tmp_path / "whisper_dictation" / "x" / marker).touch()
    with pytest.raises(ConfigError, match="already holds a run"):
        resolve_run_dir(cfg, run_id="x", resume=False)
    assert resolve_run_dir(cfg, run_id="x", resume=True) == tmp_path / "whisper_dictation/x"
    assert resolve_run_dir(cfg, run_id=None, resume=False) is None


def test_class_weights_full_and_square_root():
    from biosig.train.data import class_weights
    t = [0] * 60 + [1] * 30 + [2] * 10                  # frequencies 0.6, 0.3, 0.1
    full = class_weights(t, 3).numpy()
    inv = np.array([1 / 0.6, 1 / 0.3, 1 / 0.1])
    np.testing.assert_allclose(full, inv / inv.mean(), rtol=1e-6)
    soft = class_weights(t, 3, power=0.5).numpy()
    np.testing.assert_allclose(soft, np.sqrt(inv) / np.sqrt(inv).mean(), rtol=1e-6)
    assert class_weights([0, 0, 2], 3).numpy()[1] == 0    # an absent class gets 0


def test_one_field_accessor_typos_are_errors(repo_root):
    """Recipes of both tasks read manifest fields through one accessor: a typo in a filter is
    an error naming the key, never a silent empty selection."""
    from biosig.errors import ConfigError
    from biosig.train.whisper import load_utterances
    man = repo_root / "data_manifests" / "librispeech_test_clean_mini.jsonl"
    assert load_utterances(man, filter={"corpus": "librispeech"})
    with pytest.raises(ConfigError, match="key 'corpsu'"):
        load_utterances(man, filter={"corpsu": "librispeech"})
    with pytest.raises(ConfigError, match="key 'labels'"):
        load_utterances(man, group_by="labels")


def test_kfold_run_scores_with_its_folds_averaged(toy, tmp_path):  # noqa: F811
    from biosig.train.inference import (
        FoldEnsemble,
        load_run,
        load_waveform,
        predict_waveform,
    )
    cfg = validate_config(toy_config(toy, tmp_path, **{"cv": {"folds": 3}, "train.epochs": 1,
                                                       "model": {"name": "tdnn",
                                                                 "channels": [8, 8, 8, 8, 16],
                                                                 "embedding_dim": 8}}))
    d = Path(run(cfg, progress=False).run_dir)
    ens = load_run(d, device="cpu")
    assert isinstance(ens.model, FoldEnsemble) and len(ens.model.models) == 3
    x = load_waveform(ens, Path(toy) / "s00_0.wav")
    folds = [predict_waveform(load_run(d / f"fold-{k}", device="cpu"), x) for k in range(3)]
    np.testing.assert_allclose(predict_waveform(ens, x), np.mean(folds, axis=0), atol=1e-5)
    assert hasattr(ens.model, "embed")                 # TDNN folds: x-vectors averaged
    from biosig.cli import main
    out = tmp_path / "scored"
    assert main(["score", "model", str(d), str(toy), "--out", str(out), "--device", "cpu",
                 "--pattern", "*.wav", "--no-progress", "--embeddings"]) == 0
    assert len((out / "predictions.csv").read_text().splitlines()) == 25


def test_a_run_of_members_is_one_model_everywhere(toy, tmp_path):  # noqa: F811
    """``model.members: 2``: both networks in one checkpoint, their mean probabilities in the
    test report, the hybrid stage and ``score model``; a resumed run is the same run."""
    from biosig.cli import main
    from biosig.models import Ensemble
    from biosig.train.inference import load_run, load_waveform, predict_waveform
    over = {"model.members": 2, "train.epochs": 2, "hybrid": {
        "enabled": True, "features": [{"preset": "cough", "overrides": {"n_mfcc": 8}}],
        "candidates": [{"inputs": ["probs", "features"], "classifier": "logistic"}]}}
    cfg = validate_config(toy_config(toy, tmp_path, **over))
    res = run(cfg, run_id="members", progress=False)
    d = Path(res.run_dir)
    loaded = load_run(d, device="cpu")
    assert isinstance(loaded.model, Ensemble) and len(loaded.model.models) == 2
    x = load_waveform(loaded, Path(toy) / "s00_0.wav")
    p = predict_waveform(loaded, x)
    one = []
    for m in loaded.model.models:                      # each member alone, as the run holds it
        loaded.model.models, keep = torch.nn.ModuleList([m]), loaded.model.models
        one.append(predict_waveform(loaded, x))
        loaded.model.models = keep
    np.testing.assert_allclose(p, np.mean(one, axis=0), atol=1e-5)
    assert not np.allclose(one[0], one[1])             # two different networks
    assert (d / "hybrid.json").is_file()
    out = tmp_path / "scored"
    assert main(["score", "model", str(d), str(toy), "--out", str(out), "--device", "cpu",
                 "--pattern", "*.wav", "--no-progress"]) == 0
    assert len((out / "predictions.csv").read_text().splitlines()) == 25
    again = run(cfg, run_id="members", resume=True, progress=False)
    assert again.report["metrics"] == res.report["metrics"]


def test_track_wraps_an_iterable_and_closes(monkeypatch):
    from biosig.progress import track
    monkeypatch.setenv("BIOSIG_PROGRESS", "lines")
    monkeypatch.setenv("BIOSIG_PROGRESS_INTERVAL", "0")
    assert list(track(range(3), desc="t", unit="x")) == [0, 1, 2]
    assert list(track(iter([5]), desc="t", enabled=False)) == [5]     # no length: no total
