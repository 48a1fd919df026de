"""The training config schema: recipe files validate; unknown keys, wrong types and bad
values are ConfigError naming the key; --set overrides and profiles."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from biosig.cli import main
from biosig.errors import ConfigError
from biosig.train.config import (
    WhisperTrainConfig,
    apply_overrides,
    load_config,
    parse_override,
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
])
def test_errors_name_the_key(patch, message):
    data = {**BASE, **patch}
    with pytest.raises(ConfigError, match=message):
        validate_config(data, source="toy.yaml")


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
