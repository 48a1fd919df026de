"""The training config schema: recipe files validate; unknown keys, wrong types and bad
values are ConfigError naming the key; --set overrides and profiles."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from biosig.cli import main
from biosig.errors import ConfigError
from biosig.features import make_config
from biosig.train.config import (
    WhisperTrainConfig,
    apply_overrides,
    config_to_dict,
    load_config,
    parse_override,
    preset_frontend,
    profiles_of,
    validate_config,
)

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*/config.yaml"))

BASE = {"recipe": "toy", "data": {"manifest": "m.jsonl", "label": "y", "classes": ["a", "b"],
                                  "target_fs": 100.0, "window_s": 2.0},
        "model": {"name": "crnn"}}


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
    ({"features": {"kind": "wavelets"}}, r"key 'features.kind'"),
    ({"eval": {"challenge": "icbhi2017"}}, r"eval.normal_class is required"),
    ({"eval": {"positive_class": "c"}}, r"eval.positive_class is 'c', expected one of"),
    ({"cv": {"folds": 2}}, r"cv.folds is 2, expected 0 \(off\) or at least 3"),
    ({"device": "tpu"}, r"device is 'tpu'"),
    # ranges
    ({"seed": -1}, r"key 'seed': Input should be greater than or equal to 0 \(got -1\)"),
    ({"features": {"window_s": -0.1}}, r"key 'features.window_s': Input should be greater "
                                       r"than 0 \(got -0\.1\)"),
    ({"features": {"top_db": 0}}, r"key 'features.top_db': Input should be greater than 0"),
    ({"features": {"fmin_hz": 30.0, "fmax_hz": 20.0}},
     r"key 'features': fmin_hz is 30 and fmax_hz 20, expected fmin_hz < fmax_hz"),
    ({"features": {"fmax_hz": 80.0}}, r"features.fmin_hz/fmax_hz \(0, 80.0\) must lie within "
                                      r"data.target_fs / 2 = 50 Hz"),
    ({"features": {"kind": "mfcc", "n_mels": 10, "n_mfcc": 13}},
     r"key 'features': n_mfcc is 13, expected at most n_mels \(10\)"),
    ({"features": {"preset": "speech"}}, r"key 'features.preset': Input should be 'pcg', "
                                         r"'lung', 'cough', 'ecg' or 'eeg' \(got 'speech'\)"),
    ({"features": {"preset": "pcg", "band_hz": [25, 400]}},
     r"key 'features.band_hz': unknown key"),
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


def test_features_preset_plus_overrides():
    # the modality's preset fills what the section leaves out; the section overrides the rest
    cfg = validate_config({**BASE, "data": {**BASE["data"], "target_fs": 2000.0},
                           "features": {"preset": "pcg", "fmax_hz": 800.0}})
    pcg = make_config("pcg")
    f = cfg.features
    assert (f.kind, f.window_s, f.hop_s, f.n_mels, f.fmin_hz, f.top_db) == \
        ("log_mel", pcg.window_s, pcg.hop_s, pcg.n_mels, pcg.fmin_hz, pcg.top_db)
    assert f.fmax_hz == 800.0 and pcg.fmax_hz == 1000.0
    # spectrogram presets give their pass band, the kind of their front-end and no mel count
    eeg = preset_frontend("eeg")
    assert eeg == {"kind": "log_spectrogram", "window_s": 2.0, "hop_s": 0.5, "fmin_hz": 0.5,
                   "fmax_hz": 45.0}
    assert preset_frontend("ecg")["fmin_hz"] == make_config("ecg").band_hz[0]
    assert preset_frontend("cough", "mfcc")["n_mfcc"] == 13
    assert "n_mfcc" not in preset_frontend("cough")      # log_mel does not use it
    # the resolved values are what is saved, and they validate to the same config again
    saved = config_to_dict(cfg)
    assert "preset" not in saved["features"] and saved["features"]["fmax_hz"] == 800.0
    assert validate_config(saved) == cfg


# Each recipe's front-end as its config spelled it out before `features.preset` existed: the
# preset plus overrides must resolve to exactly these values (and so to the same cache key).
RESOLVED_FEATURES = {
    "pcg_murmur_circor2022": dict(kind="log_mel", window_s=0.064, hop_s=0.016, n_mels=64,
                                  n_mfcc=20, fmin_hz=25.0, fmax_hz=800.0, top_db=80.0,
                                  normalize="instance"),
    "lung_cycles_icbhi2017": dict(kind="log_mel", window_s=0.064, hop_s=0.016, n_mels=64,
                                  n_mfcc=20, fmin_hz=50.0, fmax_hz=2000.0, top_db=80.0,
                                  normalize="instance"),
    "cough_covid_xvector": dict(kind="log_mel", window_s=0.025, hop_s=0.010, n_mels=40,
                                n_mfcc=20, fmin_hz=20.0, fmax_hz=None, top_db=80.0,
                                normalize="cmvn"),
    "ecg_af_cinc2017": dict(kind="log_spectrogram", window_s=0.5, hop_s=0.125, n_mels=64,
                            n_mfcc=20, fmin_hz=0.5, fmax_hz=50.0, top_db=80.0,
                            normalize="instance"),
    "eeg_seizure_bonn": dict(kind="log_spectrogram", window_s=1.0, hop_s=0.25, n_mels=64,
                             n_mfcc=20, fmin_hz=0.5, fmax_hz=45.0, top_db=80.0,
                             normalize="none"),
}


@pytest.mark.parametrize("recipe", sorted(RESOLVED_FEATURES))
def test_recipe_features_are_the_preset_plus_overrides(recipe):
    path = RECIPES[[p.parent.name for p in RECIPES].index(recipe)]
    assert yaml.safe_load(path.read_text())["features"]["preset"] in recipe
    assert load_config(path).features.model_dump() == RESOLVED_FEATURES[recipe]


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
