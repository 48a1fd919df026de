"""The one config base (:class:`biosig.config.ConfigModel`): every validated config in biosig
derives from it, is frozen, and every mistake -- an unknown key, a wrong type, a value out of
range, an assignment -- is one line of ConfigError (ManifestError for a manifest line) that
names the key, whether the config is built in Python, from a mapping (YAML) or by --set."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from pydantic import BaseModel

import biosig
from biosig.asr import CommandTable, DecodeOptions, StreamingConfig
from biosig.config import ConfigModel
from biosig.errors import BiosigError, ConfigError, ManifestError
from biosig.train.config import OptimConfig, TrainConfig, load_config

TRAIN = {"recipe": "toy", "data": {"manifest": "m.jsonl", "label": "y", "classes": ["a", "b"],
                                   "crop_s": 2.0},
         "frontend": {"target_fs": 100.0}, "model": {"name": "crnn"}}
#: The smallest valid keys of each config with required fields.
REQUIRED = {
    "Record": dict(id="r0", path="a/r0.wav", modality="pcg", fs=4000.0, num_samples=8000,
                   duration_s=2.0, channels=["audio"], subject="p0", labels={"y": "a"}),
    "TrainConfig": TRAIN,
    "DataConfig": TRAIN["data"],
    "CRNNConfig": {"name": "crnn"},
    "TDNNConfig": {"name": "tdnn"},
    "LSTMConfig": {"name": "lstm"},
    "HybridFeatureSet": {"preset": "pcg"},
    "HybridCandidate": {"inputs": ["features"]},
    "WhisperTrainConfig": {"task": "whisper_asr", "recipe": "toy",
                           "model": {"name_or_path": "base"},
                           "data": {"train_manifest": "m.jsonl"}},
    "WhisperDataConfig": {"train_manifest": "m.jsonl"},
    "WhisperModelConfig": {"name_or_path": "base"},
}


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _import_biosig() -> None:
    for mod in pkgutil.walk_packages(biosig.__path__, "biosig."):
        if mod.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(mod.name)
        except ModuleNotFoundError as exc:  # an optional extra that is not installed
            if (exc.name or "").startswith("biosig"):
                raise


_import_biosig()
CONFIGS = sorted((c for c in set(_subclasses(ConfigModel))
                  if c.__module__.startswith("biosig.") and c.model_fields),
                 key=lambda c: (c.__module__, c.__name__))


class _Wrong:
    """A value no config field accepts."""

    def __repr__(self) -> str:
        return "<wrong>"


def _one_line(exc: pytest.ExceptionInfo, cls) -> str:
    assert isinstance(exc.value, cls.error_type) and isinstance(exc.value, BiosigError)
    assert isinstance(exc.value, ValueError)
    msg = str(exc.value)
    assert msg and "\n" not in msg, msg
    return msg


def test_every_config_is_found_and_derives_from_the_base():
    names = {c.__name__ for c in CONFIGS}
    assert {"TrainConfig", "WhisperTrainConfig", "OptimConfig", "StreamingConfig",
            "DecodeOptions", "CommandTable", "PCGConfig", "EnrollSettings", "Record"} <= names
    # no second base: every pydantic model of biosig is a ConfigModel
    others = [c for c in _subclasses(BaseModel)
              if c.__module__.startswith("biosig.") and not issubclass(c, ConfigModel)]
    assert others == []
    assert set(REQUIRED) <= names


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_builds_from_its_defaults_and_is_frozen(cls):
    data = REQUIRED.get(cls.__name__, {})
    assert all(k in data for k, f in cls.model_fields.items() if f.is_required()), \
        f"add the required keys of {cls.__name__} to REQUIRED"
    cfg = cls(**data)
    assert cls.model_config["frozen"] and cls.model_config["extra"] == "forbid"
    key = next(iter(cls.model_fields))
    with pytest.raises(cls.error_type) as exc:
        setattr(cfg, key, getattr(cfg, key))
    msg = _one_line(exc, cls)
    assert msg.startswith(f"{cls.__name__}: key {key!r}: ") and "frozen" in msg
    with pytest.raises(cls.error_type, match=rf"^{cls.__name__}: key 'no_such_key': unknown "):
        cfg.no_such_key = 1
    # a changed copy is validated again; the original is untouched
    assert cfg.replace() == cfg
    with pytest.raises(cls.error_type):
        cfg.replace(no_such_key=1)


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_unknown_key_names_the_key_and_the_valid_ones(cls):
    data = {**REQUIRED.get(cls.__name__, {}), "no_such_key": 1}
    with pytest.raises(cls.error_type) as exc:                # Python
        cls(**data)
    assert _one_line(exc, cls) == (f"{cls.__name__}: key 'no_such_key': unknown key (expected "
                                   f"one of {', '.join(cls.model_fields)})")
    with pytest.raises(cls.error_type) as exc:                # pydantic's own entry point
        cls.model_validate(data)
    assert _one_line(exc, cls).startswith(f"{cls.__name__}: key 'no_such_key': unknown key")
    with pytest.raises(cls.error_type) as exc:                # a mapping read from a file
        cls.validate_mapping(data, source="c.yaml")
    assert _one_line(exc, cls).startswith("c.yaml: key 'no_such_key': unknown key")


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_wrong_type_names_the_key_and_the_value(cls):
    base = REQUIRED.get(cls.__name__, {})
    for key in cls.model_fields:
        with pytest.raises(cls.error_type) as exc:
            cls(**{**base, key: _Wrong()})
        msg = _one_line(exc, cls)
        assert msg.startswith(f"{cls.__name__}: key '{key}"), msg
        assert msg.count("<wrong>") == 1, msg           # one entry per key, unions included
        with pytest.raises(cls.error_type) as exc:
            cls.validate_mapping({**base, key: _Wrong()}, source="c.yaml")
        assert _one_line(exc, cls).startswith(f"c.yaml: key '{key}")


def test_nested_keys_are_dotted_paths():
    with pytest.raises(ConfigError, match=r"^TrainConfig: key 'optim.lr': Input should be "
                                          r"greater than 0 \(got -1\.0\)$"):
        TrainConfig(**{**TRAIN, "optim": {"lr": -1.0}})
    # the model family's tag (model.name) is not part of the key; an unknown key at any depth
    # lists the valid keys of the section that holds it (the family's, a list item's)
    with pytest.raises(ConfigError, match=r"^TrainConfig: key 'model.gru_hiden': unknown key "
                                          r"\(expected one of members, name, channels, "
                                          r"pool_time, gru_hidden, gru_layers, dropout\)$"):
        TrainConfig(**{**TRAIN, "model": {"name": "crnn", "gru_hiden": 3}})
    with pytest.raises(ConfigError, match=r"^TrainConfig: key 'model.channel': unknown key "
                                          r"\(expected one of members, name, channels, "
                                          r"kernel_sizes, "):
        TrainConfig(**{**TRAIN, "model": {"name": "tdnn", "channel": [8]}})
    with pytest.raises(ConfigError, match=r"^TrainConfig: key 'hybrid.features.1.kep': unknown "
                                          r"key \(expected one of preset, overrides, keep\)$"):
        TrainConfig(**{**TRAIN, "hybrid": {"features": [{"preset": "pcg"},
                                                        {"preset": "ecg", "kep": ["a"]}]}})
    with pytest.raises(ConfigError, match=r"^OptimConfig: key 'lr': Input should be greater "
                                          r"than 0 \(got 0\.0\)$"):
        OptimConfig(lr=0.0)
    with pytest.raises(ConfigError, match=r"^OptimConfig: key 'lr': Input should be a valid "
                                          r"number \(got '1e-3'\)$"):
        OptimConfig(lr="1e-3")
    cfg = TrainConfig(**TRAIN)
    assert cfg.replace(optim=cfg.optim.replace(lr=0.1)).optim.lr == 0.1 and cfg.optim.lr == 1e-3
    with pytest.raises(ConfigError, match=r"^OptimConfig: key 'lr': cannot be set to 0\.1, the "
                                          r"config is frozen \(a changed copy is "
                                          r"\.replace\(lr=\.\.\.\)\)$"):
        cfg.optim.lr = 0.1


def test_a_union_is_one_entry_naming_the_key():
    from biosig.train.config import DataConfig, WhisperLoopConfig
    with pytest.raises(ConfigError, match=r"^DataConfig: key 'channel': Input should be a valid "
                                          r"integer or 'mean' \(got 'left'\)$"):
        DataConfig(**{**TRAIN["data"], "channel": "left"})
    with pytest.raises(ConfigError, match=r"^c.yaml: key 'train.cache_encoder_outputs': Input "
                                          r"should be a valid boolean or 'disk' \(got 'yes'\)$"):
        from biosig.train.config import validate_config
        validate_config({**REQUIRED["WhisperTrainConfig"],
                         "train": {"cache_encoder_outputs": "yes"}}, source="c.yaml")
    with pytest.raises(ConfigError, match=r"^WhisperLoopConfig: key 'gradient_checkpointing'"):
        WhisperLoopConfig(gradient_checkpointing="on")


def test_training_config_from_yaml_and_set_names_the_file_and_key(tmp_path):
    import yaml
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({**TRAIN, "optim": {"lr": -1.0}}))
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value) == (f"{p}: key 'optim.lr': Input should be greater than 0 "
                              "(got -1.0)")
    p.write_text(yaml.safe_dump(TRAIN))
    with pytest.raises(ConfigError) as exc:
        load_config(p, overrides=["optim.lr=fast"])
    assert str(exc.value) == f"{p}: key 'optim.lr': Input should be a valid number (got 'fast')"
    cfg = load_config(p, overrides=["optim.lr=0.01"])   # the loaded config is frozen too
    assert cfg.optim.lr == 0.01 and cfg.data.manifest.endswith("m.jsonl")
    with pytest.raises(ConfigError, match="frozen"):
        cfg.data.manifest = "other.jsonl"


@pytest.mark.parametrize("key, value, match", [
    ("beam_size", 0, r"Input should be greater than or equal to 1 \(got 0\)"),
    ("beam_size", "5", r"Input should be a valid integer \(got '5'\)"),
    ("max_new_tokens", 0, r"Input should be greater than or equal to 1 \(got 0\)"),
    ("audio_ctx_pad_s", -1.0, r"Input should be greater than or equal to 0 \(got -1\.0\)"),
    ("seed", -1, r"Input should be greater than or equal to 0 \(got -1\)"),
    ("vad", "yes", r"Input should be a valid boolean \(got 'yes'\)"),
])
def test_decode_options_are_checked(key, value, match):
    with pytest.raises(ConfigError, match=rf"^DecodeOptions: key '{key}': {match}$"):
        DecodeOptions(**{key: value})
    opts = DecodeOptions(beam_size=2.0)                 # an integral float from YAML is an int
    assert opts.beam_size == 2 and isinstance(opts.beam_size, int)
    with pytest.raises(ConfigError, match=rf"^DecodeOptions: key '{key}': {match}$"):
        opts.replace(**{key: value})
    assert opts.replace(vad=True).vad and not opts.vad


def test_transcribe_cli_beam_size_is_checked_by_decode_options(tmp_path, capsys):
    from biosig.cli import main
    # checked before the model or the audio is touched
    assert main(["transcribe", "--model", "nope", "--beam-size", "0",
                 str(tmp_path / "a.wav")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("biosig: error: DecodeOptions: key 'beam_size': Input should be greater "
                   "than or equal to 1 (got 0)")


def test_command_table_in_python():
    with pytest.raises(ConfigError, match=r"^CommandTable: key 'insert.period': Input should be "
                                          r"a valid string \(got 1\)$"):
        CommandTable(insert={"period": 1})
    with pytest.raises(ConfigError, match=r"^CommandTable: key 'scratch': phrase '!!' has no "
                                          r"words$"):
        CommandTable(scratch=["!!"])
    table = CommandTable(insert={"Full Stop": "."})
    assert table.max_len == 2 and table == CommandTable.from_dict({"insert": {"Full Stop": "."}})


def test_error_types():
    assert issubclass(ConfigError, BiosigError) and issubclass(ConfigError, ValueError)
    record = next(c for c in CONFIGS if c.__name__ == "Record")
    assert record.error_type is ManifestError
    assert StreamingConfig.error_type is ConfigError
