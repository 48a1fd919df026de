"""The training config schema: recipe files validate; unknown keys, wrong types and bad
values are ConfigError naming the key; --set overrides and profiles."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from biosig.cli import main
from biosig.errors import ConfigError
from biosig.features import FrontEnd, make_config
from biosig.train.config import (
    WhisperTrainConfig,
    apply_overrides,
    config_to_dict,
    load_config,
    parse_override,
    profiles_of,
    upgrade_run_config,
    validate_config,
)

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*/config.yaml"))

BASE = {"recipe": "toy", "data": {"manifest": "m.jsonl", "label": "y", "classes": ["a", "b"],
                                  "crop_s": 2.0},
        "frontend": {"target_fs": 100.0}, "model": {"name": "crnn"}}
FE = {"target_fs": 100.0}


def test_recipes_exist():
    names = {p.parent.name for p in RECIPES}
    assert {"pcg_murmur_circor2022", "lung_cycles_icbhi2017", "cough_covid_xvector",
            "ecg_af_cinc2017", "eeg_seizure_bonn"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.parent.name)
def test_every_recipe_and_profile_validates(path):
    cfg = load_config(path)
    assert cfg.recipe == path.parent.name
    profiles = profiles_of(path)
    assert "smoke" in profiles
    for name in profiles:
        load_config(path, profile=name)
    if isinstance(cfg, WhisperTrainConfig):
        # the full config trains on a manifest the user synthesizes (README); the smoke
        # profile's manifests are committed
        smoke = load_config(path, profile="smoke")
        assert Path(smoke.data.train_manifest).is_file()
        assert Path(smoke.data.valid_manifest).is_file()
    else:
        assert Path(cfg.data.manifest).is_file()


@pytest.mark.parametrize("patch, message", [
    ({"train": {"epochs": "ten"}}, r"key 'train.epochs': Input should be a valid integer "
                                   r"\(got 'ten'\)"),
    ({"train": {"epochs": 2.5}}, r"key 'train.epochs'"),
    ({"train": {"amp": "yes"}}, r"key 'train.amp'"),
    ({"trian": {"epochs": 3}}, r"key 'trian': unknown key"),
    ({"model": {"name": "crnn", "gru_hiden": 3}}, r"key 'model.gru_hiden': unknown key"),
    ({"model": {"name": "cnn"}}, r"key 'model'.*'crnn', 'tdnn', 'lstm'"),
    ({"augment": {"spec_augment": True}}, r"key 'augment.spec_augment': unknown key"),
    ({"frontend": {**FE, "kind": "wavelets"}}, r"key 'frontend.kind'"),
    ({"eval": {"challenge": "icbhi2017"}}, r"eval.normal_class is required"),
    ({"eval": {"positive_class": "c"}}, r"eval.positive_class is 'c', expected one of"),
    ({"cv": {"folds": 2}}, r"cv.folds is 2, expected 0 \(off\) or at least 3"),
    ({"device": "tpu"}, r"device is 'tpu'"),
    # ranges
    ({"seed": -1}, r"key 'seed': Input should be greater than or equal to 0 \(got -1\)"),
    ({"frontend": {**FE, "frame_s": -0.1}}, r"key 'frontend.frame_s': Input should be "
                                             r"greater than 0 \(got -0\.1\)"),
    ({"frontend": {**FE, "top_db": 0}}, r"key 'frontend.top_db': Input should be greater "
                                        r"than 0"),
    ({"frontend": {**FE, "fmin_hz": 30.0, "fmax_hz": 20.0}},
     r"key 'frontend': fmin_hz is 30 and fmax_hz 20, expected fmin_hz < fmax_hz"),
    ({"frontend": {**FE, "fmax_hz": 80.0}}, r"frontend.fmin_hz/fmax_hz \(0, 80.0\) must lie "
                                            r"within frontend.target_fs / 2 = 50 Hz"),
    ({"frontend": {**FE, "kind": "mfcc", "n_mels": 10, "n_mfcc": 13}},
     r"key 'frontend': n_mfcc is 13, expected at most n_mels \(10\)"),
    ({"frontend": {**FE, "hop_s": 0.5, "frame_s": 0.25}},
     r"key 'frontend': hop_s is 0.5 and frame_s 0.25, expected hop_s <= frame_s"),
    ({"frontend": {**FE, "frame_s": 2.0, "hop_s": 0.5}},
     r"frontend.frame_s \(2 s\) must be shorter than data.crop_s \(2 s\)"),
    ({"frontend": {**FE, "preset": "emg"}}, r"key 'frontend': Input tag 'emg' .* 'custom', "
                                            r"'pcg', 'lung', 'cough', 'ecg', 'eeg', 'speech'"),
    ({"frontend": {**FE, "preset": "pcg", "n_mel": 32}},
     r"key 'frontend.n_mel': unknown key \(expected one of preset, target_fs, band_hz, "),
    ({"frontend": {**FE, "preset": "pcg", "band_hz": [400, 25]}},
     r"key 'frontend.band_hz': is \(400, 25\), expected \(lo, hi\) with 0 <= lo < hi"),
    ({"frontend": {"preset": "pcg"}}, r"frontend.target_fs is required for training"),
    # renamed keys: one line saying what to write now
    ({"features": {"preset": "pcg"}}, r"^toy.yaml: key 'features' is now 'frontend' \(the "
                                      r"same keys with window_s -> frame_s, plus target_fs"),
    ({"data": {**BASE["data"], "window_s": 2.0}},
     r"^toy.yaml: key 'data.window_s' is now 'data.crop_s' \(the training crop"),
    ({"data": {**BASE["data"], "target_fs": 100.0}},
     r"^toy.yaml: key 'data.target_fs' is now 'frontend.target_fs'"),
    ({"frontend": {**FE, "window_s": 0.5}},
     r"^toy.yaml: key 'frontend.window_s' is now 'frontend.frame_s'"),
    ({"model": {"name": "crnn", "dropout": 1.0}}, r"key 'model.dropout': Input should be less "
                                                  r"than 1 \(got 1\.0\)"),
    ({"model": {"name": "crnn", "channels": [8, 16]}},
     r"key 'model': pool_time has 3 values, expected 2 \(one per channels\)"),
    ({"model": {"name": "tdnn", "dilations": [1, 2]}},
     r"key 'model': dilations has 2 values, expected 5"),
    ({"model": {"name": "lstm", "hidden": 0}}, r"key 'model.hidden': Input should be greater "
                                               r"than or equal to 1 \(got 0\)"),
    ({"optim": {"momentum": 1.5}}, r"key 'optim.momentum'"),
])
def test_errors_name_the_key(patch, message):
    data = {**BASE, **patch}
    with pytest.raises(ConfigError, match=message):
        validate_config(data, source="toy.yaml")


def test_data_ranges_name_the_key():
    data = {**BASE, "data": {**BASE["data"], "valid_frac": 1.2}}
    with pytest.raises(ConfigError, match=r"key 'data.valid_frac': Input should be less than 1 "
                                          r"\(got 1\.2\)"):
        validate_config(data, source="toy.yaml")


def test_frontend_preset_plus_overrides():
    # the modality's preset fills what the section leaves out; the section overrides the rest
    cfg = validate_config({**BASE, "frontend": {"preset": "pcg", "target_fs": 2000.0,
                                                "fmax_hz": 800.0}})
    pcg = make_config("pcg")
    f = cfg.frontend
    assert type(f) is type(pcg) and f == pcg.replace(target_fs=2000.0, fmax_hz=800.0)
    assert f == FrontEnd.from_preset("pcg", target_fs=2000.0, fmax_hz=800.0)
    assert (f.kind, f.band_hz, f.frame_s, f.n_mels, f.fmin_hz) == ("log_mel", (25.0, 400.0),
                                                                  0.064, 64, 25.0)
    # no preset: a custom front-end with the base class's defaults
    custom = validate_config(BASE).frontend
    assert type(custom) is FrontEnd and custom.preset == "custom" and custom.band_hz is None
    # the resolved spec is what is saved (every value, with the preset's name), and it
    # validates to the same config again
    saved = config_to_dict(cfg)
    assert saved["frontend"]["preset"] == "pcg" and saved["frontend"]["fmax_hz"] == 800.0
    assert saved["frontend"]["band_hz"] == [25.0, 400.0] and "envelope_fs" in saved["frontend"]
    assert validate_config(saved) == cfg


def test_old_run_configs_are_read_as_they_ran():
    """A run folder saved with `features` / `data.target_fs` / `data.window_s` loads as a custom
    front-end with training's values then: power-of-2 n_fft, no band-pass."""
    old = {**BASE, "data": {**{k: v for k, v in BASE["data"].items() if k != "crop_s"},
                            "target_fs": 173.61, "window_s": 20.0},
           "features": {"kind": "log_spectrogram", "window_s": 1.0, "hop_s": 0.25,
                        "n_mels": 64, "n_mfcc": 20, "fmin_hz": 0.5, "fmax_hz": 45.0,
                        "top_db": 80.0, "normalize": "none"}}
    old.pop("frontend")
    old["hybrid"] = {"enabled": True, "features": [{"preset": "eeg"}, {"preset": "ecg"},
                                                   {"preset": "pcg",
                                                    "overrides": {"window_s": 0.032}}]}
    cfg = validate_config(upgrade_run_config(old))
    # the hybrid's feature sets compute what they did: ECG/EEG spectrograms as they were
    assert [(s.preset, s.overrides) for s in cfg.hybrid.features] == [
        ("eeg", {"n_fft": "exact", "fmin_hz": 0.0, "top_db": None}),
        ("ecg", {"n_fft": "exact", "fmin_hz": 0.0}), ("pcg", {"frame_s": 0.032})]
    assert cfg.data.crop_s == 20.0 and cfg.frontend.preset == "custom"
    assert cfg.frontend.band_hz is None and cfg.frontend.powerline_hz is None
    assert cfg.frontend.frames() == cfg.frontend.frames(173.61)
    assert (cfg.frontend.frames().win_length, cfg.frontend.frames().n_fft) == (174, 256)
    assert upgrade_run_config(config_to_dict(cfg)) == config_to_dict(cfg)   # new: as it is


# Each recipe's front-end: what training computed before the front-end became one object
# (the resolved `features` section, `data.target_fs`, power-of-2 n_fft, no filter) must be
# what the recipe's `frontend` resolves to, so the recipes' numbers do not move.
RESOLVED_FRONTEND = {
    "pcg_murmur_circor2022": dict(target_fs=2000.0, band_hz=None, powerline_hz=None,
                                  kind="log_mel", frame_s=0.064, hop_s=0.016, n_fft="pow2",
                                  n_mels=64, fmin_hz=25.0, fmax_hz=800.0, top_db=80.0,
                                  normalize="instance"),
    "lung_cycles_icbhi2017": dict(target_fs=4000.0, band_hz=None, powerline_hz=None,
                                  kind="log_mel", frame_s=0.064, hop_s=0.016, n_fft="pow2",
                                  n_mels=64, fmin_hz=50.0, fmax_hz=2000.0, top_db=80.0,
                                  normalize="instance"),
    "cough_covid_xvector": dict(target_fs=8000.0, band_hz=None, powerline_hz=None,
                                kind="log_mel", frame_s=0.025, hop_s=0.010, n_fft="pow2",
                                n_mels=40, fmin_hz=20.0, fmax_hz=None, top_db=80.0,
                                normalize="cmvn"),
    "ecg_af_cinc2017": dict(target_fs=300.0, band_hz=None, powerline_hz=None,
                            kind="log_spectrogram", frame_s=0.5, hop_s=0.125, n_fft="pow2",
                            fmin_hz=0.5, fmax_hz=50.0, top_db=80.0, normalize="instance"),
    "eeg_seizure_bonn": dict(target_fs=173.61, band_hz=None, powerline_hz=None,
                             kind="log_spectrogram", frame_s=1.0, hop_s=0.25, n_fft="pow2",
                             fmin_hz=0.5, fmax_hz=45.0, top_db=80.0, normalize="none"),
}


@pytest.mark.parametrize("recipe", sorted(RESOLVED_FRONTEND))
def test_recipe_frontend_is_what_training_computed(recipe):
    path = RECIPES[[p.parent.name for p in RECIPES].index(recipe)]
    assert yaml.safe_load(path.read_text())["frontend"]["preset"] in recipe
    fe = load_config(path).frontend
    assert {k: getattr(fe, k) for k in RESOLVED_FRONTEND[recipe]} == RESOLVED_FRONTEND[recipe]


def test_missing_required_key():
    data = {**BASE, "data": {k: v for k, v in BASE["data"].items() if k != "label"}}
    with pytest.raises(ConfigError, match=r"toy.yaml: key 'data.label': missing required key"):
        validate_config(data, source="toy.yaml")


def test_overrides():
    assert parse_override("train.epochs=3") == ("train.epochs", 3)
    assert parse_override("data.classes=[x, y]") == ("data.classes", ["x", "y"])
    assert parse_override("eval.positive_class=null") == ("eval.positive_class", None)
    # exponent floats without a dot are floats (YAML 1.2), in overrides and in config files
    assert parse_override("optim.lr=3e-4") == ("optim.lr", 3e-4)
    assert parse_override("x=-1E+2") == ("x", -100.0)
    assert parse_override("x=1e") == ("x", "1e")
    out = apply_overrides(BASE, ["train.epochs=3", "model.gru_hidden=8"])
    cfg = validate_config(out)
    assert cfg.train.epochs == 3 and cfg.model.gru_hidden == 8
    assert "train" not in BASE                      # input untouched
    with pytest.raises(ConfigError, match="expected key.sub=value"):
        parse_override("train.epochs")
    with pytest.raises(ConfigError, match="cannot set 'recipe.x'"):
        apply_overrides(BASE, ["recipe.x=1"])


def test_exponent_floats_in_config_files(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(BASE) + "optim:\n  lr: 5e-4\n")
    assert load_config(p).optim.lr == 5e-4


def test_load_config_profiles_and_errors(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({**BASE, "profiles": {"small": {"train.epochs": 1,
                                                                 "train.batch": 2}}}))
    assert load_config(p).train.epochs == 50
    with pytest.raises(ConfigError, match=r"key 'train.batch': unknown key"):
        load_config(p, profile="small")
    with pytest.raises(ConfigError, match="profile 'big' not found"):
        load_config(p, profile="big")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_cli_check_and_error_exit(tmp_path, capsys):
    path = RECIPES[0]
    assert main(["train", str(path), "--check", "--set", "train.epochs=7"]) == 0
    assert "epochs: 7" in capsys.readouterr().out
    assert main(["train", str(path), "--check", "--set", "train.epochz=7"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("biosig: error: ") and "key 'train.epochz': unknown key" in err
    assert len(err.strip().splitlines()) == 1
