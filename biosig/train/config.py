"""Typed training configuration: YAML -> pydantic models; unknown keys and wrong types are
:class:`~biosig.errors.ConfigError` naming the key; ``key.sub=value`` overrides.

A recipe's ``config.yaml`` holds the sections below and, under ``profiles``, named sets of
overrides (``profiles.smoke`` makes a run small enough for CI). :func:`load_config` applies a
profile, then the ``--set`` overrides, then validates the whole.

Nothing in a config runs code: values are plain YAML scalars, lists and mappings, and the model
family is chosen by ``model.name`` (a typo there is an error, not a silent default).

Every section is a :class:`~biosig.config.ConfigModel`: frozen, and built in Python
(``OptimConfig(lr=-1)``) its mistakes are the same one-line ``ConfigError`` naming the key; a
changed copy is ``cfg.replace(train=cfg.train.replace(epochs=3))``.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from biosig.config import ConfigModel
from biosig.errors import ConfigError
from biosig.features.frontend import (
    FRONTEND_PRESETS,
    CoughConfig,
    ECGConfig,
    EEGConfig,
    FrontEnd,
    LungConfig,
    PCGConfig,
    SpeechConfig,
)
from biosig.fileio import load_yaml

__all__ = ["TrainConfig", "DataConfig", "FrontEndConfig", "CRNNConfig", "TDNNConfig",
           "LSTMConfig", "OptimConfig", "LoopConfig", "AugmentConfig", "EvalConfig", "CVConfig",
           "load_config", "validate_config", "apply_overrides", "parse_override",
           "config_to_dict", "CHALLENGES", "WhisperTrainConfig", "WhisperModelConfig",
           "WhisperDataConfig", "WhisperReplayConfig", "WhisperLoopConfig", "LoraConfig",
           "WhisperEvalConfig", "WhisperSelectConfig", "AnyTrainConfig", "RENAMED_KEYS",
           "upgrade_run_config", "HybridConfig", "HybridCandidate", "HybridFeatureSet"]

#: Challenge scores that ``eval.challenge`` can name.
CHALLENGES = ("none", "physionet2022", "physionet2016", "icbhi2017", "cinc2017")

PositiveInt = Annotated[int, Field(ge=1)]
Probability = Annotated[float, Field(ge=0, lt=1)]


def _check_device(device: str) -> None:
    if not (device in ("auto", "cpu", "cuda") or device.startswith("cuda:")):
        raise ValueError(f"device is {device!r}, expected auto, cpu, cuda or cuda:N")


class DataConfig(ConfigModel):
    """Which records, which label, which crops (the rate and the features are the
    front-end's: ``frontend``)."""

    manifest: str
    root: str | None = None                       # corpus root (default: manifest's `root`)
    label: str                                    # key in the record's `labels`
    # the key the network and the hybrid stage are fitted on, where it differs from what is
    # scored (CirCor: murmur_at_location, the murmur where it is heard, while the challenge
    # scores the patient's murmur); every split but train (and select, the hybrid's second
    # training split) keeps `label`
    train_label: str | None = None
    classes: list[str] = Field(min_length=2)      # class names, index order
    label_map: dict[str, str] = {}                # raw label (as text) -> class name
    filter: dict[str, str | int | float | bool] = {}  # field or labels.x -> required value
    splits: Literal["manifest", "auto"] = "manifest"
    group_by: str = "subject"                     # record field grouping patients in splits
    valid_frac: float = Field(default=0.1, ge=0, lt=1)
    test_frac: float = Field(default=0.2, ge=0, lt=1)
    split_seed: int = Field(default=0, ge=0)
    channel: int | Literal["mean"] = 0           # channel index, or the mean of all
    crop_s: float = Field(gt=0)                   # training crop / evaluation window, seconds
    eval_windows: Literal["center", "all"] = "all"
    max_eval_windows: int = Field(default=8, ge=1)
    balance: Literal["none", "weights", "sqrt_weights", "sampler"] = "weights"
    cache: bool = True                            # keep loaded signals in memory
    feature_cache: str | None = None              # folder: front-end output kept on disk
    num_workers: int = Field(default=0, ge=0)
    limit_per_split: int | None = Field(default=None, ge=1)


#: The front-end of a classifier recipe: a preset of :mod:`biosig.features` (``preset: eeg``)
#: with overrides, or a custom one (no ``preset``); the resolved spec keeps its preset's name.
FrontEndConfig = Annotated[FrontEnd | PCGConfig | LungConfig | CoughConfig | ECGConfig
                           | EEGConfig | SpeechConfig, Field(discriminator="preset")]

#: Keys that moved when the front-end became one object (issue 30): old key -> new key, note.
RENAMED_KEYS = {
    "features": ("frontend", " (the same keys with window_s -> frame_s, plus target_fs "
                             "from data.target_fs), e.g. frontend: {preset: eeg, frame_s: 1.0}"),
    "data.target_fs": ("frontend.target_fs", " (the front-end owns the sampling rate)"),
    "data.window_s": ("data.crop_s", " (the training crop; an STFT frame is frontend.frame_s)"),
    "frontend.window_s": ("frontend.frame_s", " (the STFT frame; a training crop is "
                                              "data.crop_s)"),
}


class NetworkConfig(ConfigModel):
    """What every network family shares: ``members`` N > 1 trains N networks side by side,
    each from its own initialisation and on its own loss, and uses their mean probabilities
    (:class:`biosig.models.Ensemble`; N times the training and inference time)."""
    members: int = Field(default=1, ge=1)


class CRNNConfig(NetworkConfig):
    name: Literal["crnn"]
    channels: list[PositiveInt] = Field(default=[32, 64, 128], min_length=1)
    pool_time: list[PositiveInt] = [2, 2, 1]      # one per conv block (channels)
    gru_hidden: int = Field(default=64, ge=1)
    gru_layers: int = Field(default=1, ge=1)
    dropout: Probability = 0.2

    @model_validator(mode="after")
    def _blocks(self):
        if len(self.pool_time) != len(self.channels):
            raise ValueError(f"pool_time has {len(self.pool_time)} values, expected "
                             f"{len(self.channels)} (one per channels)")
        return self


class TDNNConfig(NetworkConfig):
    name: Literal["tdnn"]
    channels: list[PositiveInt] = Field(default=[512, 512, 512, 512, 1500], min_length=1)
    kernel_sizes: list[PositiveInt] = [5, 3, 3, 1, 1]
    dilations: list[PositiveInt] = [1, 2, 3, 1, 1]
    embedding_dim: int = Field(default=512, ge=1)
    dropout: Probability = 0.0

    @model_validator(mode="after")
    def _layers(self):
        n = len(self.channels)
        for key in ("kernel_sizes", "dilations"):
            if len(getattr(self, key)) != n:
                raise ValueError(f"{key} has {len(getattr(self, key))} values, expected {n} "
                                 f"(one per channels)")
        return self


class LSTMConfig(NetworkConfig):
    name: Literal["lstm"]
    hidden: int = Field(default=64, ge=1)
    layers: int = Field(default=2, ge=1)
    dropout: Probability = 0.2


ModelConfig = Annotated[CRNNConfig | TDNNConfig | LSTMConfig, Field(discriminator="name")]


class OptimConfig(ConfigModel):
    optimizer: Literal["adam", "adamw", "sgd"] = "adamw"
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    momentum: Probability = 0.9
    scheduler: Literal["none", "cosine", "plateau"] = "cosine"


class LoopConfig(ConfigModel):
    epochs: int = Field(default=50, ge=1)
    batch_size: int = Field(default=32, ge=1)
    grad_clip_norm: float | None = 5.0
    amp: bool = True                              # mixed precision (CUDA only)
    patience: int | None = Field(default=10, ge=1)  # early stopping; null disables
    monitor: str = "macro_f1"                     # validation metric, higher is better
    # a patient-wise, stratified fraction of the training split (the "select" split) on which
    # the best epoch and early stopping are chosen; null: on valid. With it, valid stays out
    # of sample for the network, so the hybrid stage's adoption compares two scores neither
    # model was selected on (the network's epoch-selected valid score is optimistic)
    select_frac: float | None = Field(default=None, gt=0, lt=1)
    max_steps_per_epoch: int | None = Field(default=None, ge=1)


class AugmentConfig(ConfigModel):
    """Training-time augmentation; every switch is an explicit number (0 disables)."""

    time_shift_s: float = Field(default=0.0, ge=0)     # random circular shift, up to +-
    gain_db: float = Field(default=0.0, ge=0)          # random gain, up to +-
    noise_prob: float = Field(default=0.0, ge=0, le=1)  # chance of additive white noise
    noise_snr_db: list[float] = [10.0, 30.0]           # SNR range of that noise
    freq_masks: int = Field(default=0, ge=0)           # SpecAugment
    freq_mask_width: int = Field(default=8, ge=1)
    time_masks: int = Field(default=0, ge=0)
    time_mask_width: int = Field(default=10, ge=1)
    mixup_alpha: float = Field(default=0.0, ge=0)      # 0 disables mixup


class EvalConfig(ConfigModel):
    challenge: Literal["none", "physionet2022", "physionet2016", "icbhi2017", "cinc2017"] = \
        "none"
    positive_class: str | None = None            # for binary ROC/PR curves and Se/Sp
    normal_class: str | None = None              # ICBHI: the normal cycle class
    class_weights: list[Annotated[float, Field(ge=0)]] | None = None  # PhysioNet 2022 weights
    aggregate_by: str | None = None              # e.g. subject: score patients, not records
    # how a group's probabilities come from its items': the mean (None), or, naming a class,
    # that class's maximum over the items (the group has it where any item has it: a murmur
    # heard at any location) with the other classes sharing the rest by their means
    aggregate_any: str | None = None
    decision: Literal["argmax", "tuned"] = "argmax"   # tuned: per-class weights on validation
    decision_metric: str | None = None           # what "tuned" maximises (default: challenge)
    # K >= 2: the tuned rule is kept only when, fitted on K-1 parts of validation and scored
    # on the part left out (K ways, 3 shuffles), it beats arg-max; 0: kept as fitted
    decision_crossfit: int = Field(default=0, ge=0)
    n_bootstrap: int = Field(default=200, ge=1)
    bootstrap_level: float = Field(default=0.95, gt=0, lt=1)


class HybridFeatureSet(ConfigModel):
    """One set of hand-crafted features: a preset of :mod:`biosig.features` with overrides."""
    preset: Literal["pcg", "lung", "cough", "ecg", "eeg"]
    overrides: dict[str, bool | int | float | str | None] = {}
    keep: list[str] | None = None                # keep only names with these prefixes


class HistGBSettings(ConfigModel):
    """A stage candidate's own HistGradientBoosting settings; a key left out is the hybrid's
    (``hybrid.max_iter``, ``learning_rate``, ``max_leaf_nodes``, ``max_features``,
    ``l2_regularization``)."""
    max_iter: int | None = Field(default=None, ge=1)
    learning_rate: float | None = Field(default=None, gt=0)
    max_leaf_nodes: int | None = Field(default=None, ge=2)
    max_features: float | None = Field(default=None, gt=0, le=1)   # share of features per split
    l2_regularization: float | None = Field(default=None, ge=0)


class HybridCandidate(ConfigModel):
    """One second-stage candidate: which input blocks, which classifier; with
    ``network_weight`` w, the classifier's probabilities averaged with the network's,
    ``w * p_network + (1 - w) * p_classifier`` (a stacked ensemble that needs no network
    outputs on the training split; ``inputs`` must not include ``probs`` then)."""
    inputs: list[Literal["probs", "embedding", "features", "encoder"]] = Field(min_length=1)
    classifier: Literal["histgb", "logistic", "forest"] = "histgb"
    network_weight: float | None = Field(default=None, gt=0, lt=1)
    c: float | None = Field(default=None, gt=0)   # logistic: this candidate's own hybrid.c
    # histgb: this candidate's own boosting settings (each key overrides the hybrid's)
    histgb: HistGBSettings | None = None
    # N >= 2: N copies of the classifier, each fitted on a bootstrap resample of the training
    # rows with its own seed, their probabilities averaged (bagging: several models in one)
    bag: int | None = Field(default=None, ge=2)

    @model_validator(mode="after")
    def _histgb_settings_for_histgb(self):
        if self.histgb is not None and self.classifier != "histgb":
            raise ValueError(f"histgb settings are given but classifier is "
                             f"{self.classifier!r}; they apply to histgb only")
        return self

    @model_validator(mode="after")
    def _average_without_probs(self):
        if self.network_weight is not None and "probs" in self.inputs:
            raise ValueError(f"network_weight is {self.network_weight}: the network's "
                             "probabilities are averaged in, so inputs must not include probs")
        return self


class HybridEncoder(ConfigModel):
    """A pretrained audio encoder as one more input block of the hybrid stage (``encoder``):
    the mean and standard deviation over time of its last-layer states, or of block ``layer``'s
    (:class:`biosig.asr.WhisperEmbedder`)."""
    model: str = "packaged:whisper-base"          # a CTranslate2 Whisper folder, or packaged
    compute_type: Literal["float32", "int8", "int8_float32"] = "float32"
    max_s: float | None = Field(default=None, gt=0)   # None: the whole recording, 30 s windows
    # an earlier block's states (1 to 6 for base; 0: the convolutions), through transformers
    # (the train extra); None: the encoder's output (CTranslate2)
    layer: int | None = Field(default=None, ge=0)


class HybridConfig(ConfigModel):
    """The hybrid stage after the network (see :mod:`biosig.train.hybrid`)."""
    enabled: bool = False
    features: list[HybridFeatureSet] = []        # required when enabled
    encoder: HybridEncoder | None = None         # required by candidates with input encoder
    # after the candidate is chosen on validation, fit it again on train + valid (as the
    # classical baseline is fitted); adoption, the decision rule and calibration still use its
    # out-of-sample validation outputs from the fit on train alone
    refit: bool = False
    candidates: list[HybridCandidate] = Field(default=[
        HybridCandidate(inputs=["probs", "features"], classifier="histgb"),
        HybridCandidate(inputs=["probs", "features"], classifier="logistic"),
        HybridCandidate(inputs=["features"], classifier="histgb"),
        HybridCandidate(inputs=["embedding", "features"], classifier="logistic"),
        HybridCandidate(inputs=["features"], classifier="histgb", network_weight=0.5)],
        min_length=1)
    max_iter: int = Field(default=300, ge=1)           # histgb
    learning_rate: float = Field(default=0.05, gt=0)   # histgb
    max_leaf_nodes: int = Field(default=31, ge=2)      # histgb: leaves per tree
    max_features: float = Field(default=1.0, gt=0, le=1)   # histgb: share of features per split
    l2_regularization: float = Field(default=0.0, ge=0)    # histgb
    c: float = Field(default=1.0, gt=0)                # logistic: inverse regularisation
    # K >= 2: the candidate is chosen by K-fold cross-validation instead of by its validation
    # score alone. The rows of the splits in select_splits are dealt to K patient-grouped
    # folds (stratified by class); each fold's rows are predicted by the candidate fitted on
    # every other row of the stage (train, select, valid), and the pooled out-of-fold
    # predictions are scored as validation is (train.monitor, with eval.aggregate_by).
    # The adoption over the network compares the chosen candidate's out-of-fold score and
    # the network's on the scored rows of select and valid (the network's outputs are out of
    # sample there); the decision rule and calibration still use the chosen candidate's
    # validation outputs from its fit on train
    select_folds: int = Field(default=0, ge=0)
    # the splits scored out of fold; train only where no candidate reads the network's
    # outputs (they are in sample on train)
    select_splits: list[Literal["train", "select", "valid"]] = Field(
        default=["select", "valid"], min_length=1)

    @model_validator(mode="after")
    def _select_folds(self):
        if self.select_folds == 1:
            raise ValueError("select_folds is 1: 0 (choose on validation) or at least 2 folds")
        if len(set(self.select_splits)) != len(self.select_splits):
            raise ValueError(f"select_splits is {self.select_splits}: a split is repeated")
        if self.select_folds and "train" in self.select_splits:
            reads = [i for i, c in enumerate(self.candidates)
                     if {"probs", "embedding"} & set(c.inputs) or c.network_weight is not None]
            if reads:
                raise ValueError(
                    f"select_splits includes train, but candidates {reads} read the network's "
                    "outputs, which are in sample on train; leave train out of select_splits "
                    "or those candidates out")
        return self


class PretrainConfig(ConfigModel):
    """Self-supervised pre-training of the network on the training split's recordings before
    its supervised training (:mod:`biosig.train.pretrain`: two random crops of each recording
    must find each other, SimCLR's NT-Xent on the network's embedding); ``epochs`` 0: none."""

    epochs: int = Field(default=0, ge=0)
    lr: float | None = Field(default=None, gt=0)            # default: optim.lr
    batch_size: int | None = Field(default=None, ge=2)      # default: train.batch_size
    temperature: float = Field(default=0.1, gt=0)
    projection_dim: int = Field(default=64, ge=2)
    # the views' augmentation (default: the run's `augment`); e.g. gain_db: 0 where the
    # level is a feature the network must keep (Bonn's absolute EEG power)
    augment: AugmentConfig | None = None


class CVConfig(ConfigModel):
    folds: int = Field(default=0, ge=0)          # 0: one train/valid/test run; K >= 3: K-fold


class TrainConfig(ConfigModel):
    """The whole training configuration of one recipe."""

    # model.name and frontend.preset: not keys of the file
    union_tags = ("crnn", "tdnn", "lstm", "custom", *FRONTEND_PRESETS)

    recipe: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(default=0, ge=0)
    device: str = "auto"                          # auto | cpu | cuda | cuda:N
    output_dir: str = "runs"
    data: DataConfig
    frontend: FrontEndConfig
    model: ModelConfig
    optim: OptimConfig = OptimConfig()
    train: LoopConfig = LoopConfig()
    augment: AugmentConfig = AugmentConfig()
    eval: EvalConfig = EvalConfig()
    cv: CVConfig = CVConfig()
    hybrid: HybridConfig = HybridConfig()
    pretrain: PretrainConfig = PretrainConfig()

    @model_validator(mode="before")
    @classmethod
    def _renamed_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        sections = {"": data, **{k: v for k, v in data.items() if isinstance(v, dict)}}
        for old, (new, note) in RENAMED_KEYS.items():
            section, _, key = old.rpartition(".")
            if key in sections.get(section, {}):
                raise ValueError(f"key {old!r} is now {new!r}{note}")
        fe = data.get("frontend")
        if isinstance(fe, dict) and "preset" not in fe:   # no preset: a custom front-end
            data = {**data, "frontend": {**fe, "preset": "custom"}}
        return data

    @model_validator(mode="after")
    def _cross_checks(self):
        c = self.data.classes
        if len(set(c)) != len(c):
            raise ValueError(f"data.classes has duplicates: {c}")
        for key in ("positive_class", "normal_class", "aggregate_any"):
            v = getattr(self.eval, key)
            if v is not None and v not in c:
                raise ValueError(f"eval.{key} is {v!r}, expected one of data.classes {c}")
        if self.eval.aggregate_any is not None and self.eval.aggregate_by is None:
            raise ValueError(f"eval.aggregate_any is {self.eval.aggregate_any!r} but "
                             "eval.aggregate_by is not set (nothing is aggregated)")
        if self.eval.class_weights is not None and len(self.eval.class_weights) != len(c):
            raise ValueError(f"eval.class_weights has {len(self.eval.class_weights)} values, "
                             f"expected {len(c)} (one per class)")
        if self.eval.challenge == "physionet2022" and self.eval.class_weights is None:
            raise ValueError("eval.class_weights is required when eval.challenge is "
                             "physionet2022 (e.g. [5, 3, 1] for Present, Unknown, Absent)")
        if self.eval.challenge == "cinc2017" and not {"N", "A", "O"} <= set(c):
            raise ValueError(f"eval.challenge cinc2017 needs classes N, A, O; got {c}")
        if self.eval.challenge == "icbhi2017" and self.eval.normal_class is None:
            raise ValueError("eval.normal_class is required when eval.challenge is icbhi2017")
        if self.eval.challenge == "physionet2016" and (len(c) != 2 or
                                                      self.eval.positive_class is None):
            raise ValueError("eval.challenge physionet2016 needs two classes and "
                             "eval.positive_class (the abnormal class)")
        if self.hybrid.enabled and not self.hybrid.features:
            raise ValueError("hybrid.features is empty; name the feature presets, e.g. "
                             "[{preset: eeg}] (the sets of bench/recipes.py's baseline)")
        if self.hybrid.enabled and self.hybrid.encoder is None:
            uses = [i for i, cand in enumerate(self.hybrid.candidates) if "encoder" in cand.inputs]
            if uses:
                raise ValueError(f"hybrid.candidates {uses} take input encoder but "
                                 "hybrid.encoder is not set (e.g. {model: "
                                 "packaged:whisper-base})")
        if self.eval.decision_metric is not None:
            from biosig.train.evaluation import metric_names  # heavy: sklearn (biosig.metrics)
            if self.eval.decision_metric not in metric_names(self):
                raise ValueError(f"eval.decision_metric is {self.eval.decision_metric!r}, "
                                 f"expected one of {', '.join(metric_names(self))}")
        if self.eval.decision_crossfit == 1:
            raise ValueError("eval.decision_crossfit is 1, expected 0 (off) or at least 2")
        if self.cv.folds in (1, 2):
            raise ValueError(f"cv.folds is {self.cv.folds}, expected 0 (off) or at least 3")
        if self.data.valid_frac + self.data.test_frac >= 1:
            raise ValueError("data.valid_frac + data.test_frac must be below 1")
        if len(self.augment.noise_snr_db) != 2:
            raise ValueError("augment.noise_snr_db must be [low, high]")
        fe = self.frontend
        if fe.target_fs is None:
            raise ValueError("frontend.target_fs is required for training (the rate every "
                             "recording is resampled to)")
        if fe.frame_s >= self.data.crop_s:
            raise ValueError(f"frontend.frame_s ({fe.frame_s:g} s) must be shorter than "
                             f"data.crop_s ({self.data.crop_s:g} s)")
        nyquist = fe.target_fs / 2
        if (fe.fmax_hz or 0) > nyquist or fe.fmin_hz >= nyquist:
            raise ValueError(f"frontend.fmin_hz/fmax_hz ({fe.fmin_hz:g}, {fe.fmax_hz}) must "
                             f"lie within frontend.target_fs / 2 = {nyquist:g} Hz")
        if fe.band_hz is not None and fe.band_hz[0] >= nyquist:
            raise ValueError(f"frontend.band_hz {fe.band_hz} must start below "
                             f"frontend.target_fs / 2 = {nyquist:g} Hz")
        for key, aug in (("augment", self.augment), ("pretrain.augment", self.pretrain.augment)):
            if self.data.feature_cache is not None and aug is not None and aug.noise_prob > 0:
                raise ValueError(f"{key}.noise_prob is {aug.noise_prob} but additive noise "
                                 f"needs the waveform, and data.feature_cache is set: set "
                                 f"{key}.noise_prob: 0 or data.feature_cache: null")
        _check_device(self.device)
        return self


# ------------------------------------------------------------------- Whisper fine-tuning
# A recipe whose top level says ``task: whisper_asr`` fine-tunes a Whisper model on (audio, text)
# manifests (see :mod:`biosig.train.whisper`); its sections differ from the classifiers'.

class WhisperModelConfig(ConfigModel):
    """The model to start from: a transformers directory, a hub name, or a CTranslate2
    directory (imported with :func:`biosig.asr.ct2.import_ct2_whisper`)."""

    name_or_path: str
    language: str = "en"
    task: Literal["transcribe", "translate"] = "transcribe"


class WhisperReplayConfig(ConfigModel):
    """Rehearsal against forgetting: general (not dictation) speech mixed into every epoch.

    With ``targets: model`` the clips' targets are the starting model's own greedy transcripts,
    made once before training (self-distillation, as in "learning without forgetting", Li and
    Hoiem 2016): on speech outside the fine-tuning domain the model is trained to keep saying
    what it said, in its own casing and punctuation. ``targets: reference`` uses the manifest's
    ``text`` instead. ``filter`` keeps the lines whose fields have the given values (e.g.
    ``{split: train}``); ``limit`` keeps that many of them, spread evenly over the manifest
    (every speaker of a speaker-sorted corpus gets a share).

    ``distill_weight > 0`` adds, on the replay clips only, the KL divergence from the starting
    model's next-token distribution to the model's (teacher-forced on the replay targets, mean
    over target tokens), times that weight, to the loss: the whole distribution is kept, not
    only its arg-max (Hinton et al. 2015; Li and Hoiem 2016). With LoRA the starting model is
    the same network with its adapters switched off; otherwise a frozen copy is kept.
    """

    manifest: str | None = None                   # null: no replay
    root: str | None = None                       # its corpus root (default: data.root)
    filter: dict[str, str | int | float | bool] = {}  # field or labels.x -> required value
    targets: Literal["model", "reference"] = "model"
    limit: int | None = Field(default=None, ge=1)
    distill_weight: float = Field(default=0.0, ge=0)  # KL to the starting model on replay clips


class WhisperDataConfig(ConfigModel):
    train_manifest: str
    valid_manifest: str | None = None             # default: valid_frac of train, by group_by
    test_manifests: dict[str, str] = {}           # name -> manifest scored at the end
    root: str | None = None
    filter: dict[str, str | int | float | bool] = {}  # field or labels.x -> required value
    group_by: str = "labels.phrase_id"            # keeps a group on one side of the split
    valid_frac: float = Field(default=0.1, gt=0, lt=1)
    split_seed: int = 0
    max_duration_s: float = Field(default=30.0, gt=0, le=30.0)
    timestamps_prob: float = Field(default=0.5, ge=0, le=1)  # targets with timestamp tokens
    limit_train: int | None = Field(default=None, ge=1)
    limit_valid: int | None = Field(default=None, ge=1)
    replay: WhisperReplayConfig = WhisperReplayConfig()


class LoraConfig(ConfigModel):
    """LoRA adapters through peft; merged into the weights when the model is saved."""

    enabled: bool = False
    r: int = Field(default=16, ge=1)
    alpha: float = Field(default=32.0, gt=0)
    dropout: float = Field(default=0.05, ge=0, lt=1)
    target_modules: list[str] = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"]
    scope: Literal["decoder", "encoder", "both"] = "decoder"


class WhisperLoopConfig(ConfigModel):
    epochs: int = Field(default=5, ge=1)
    batch_size: int = Field(default=8, ge=1)
    grad_accum_steps: int = Field(default=1, ge=1)
    max_steps: int | None = Field(default=None, ge=1)  # optimizer steps over the whole run
    lr: float = Field(default=1e-5, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_steps: int = Field(default=50, ge=0)
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    grad_clip_norm: float | None = 1.0
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"  # auto: CUDA bf16 (or fp16), CPU off
    gradient_checkpointing: bool | Literal["auto"] = "auto"  # auto: on when on CUDA
    freeze_encoder: bool = False
    encoder_train_layers: int = Field(default=0, ge=0)  # with freeze_encoder: the last N train
    # run the frozen layers once per clip (no SpecAugment); "disk": also keep their output in
    # the run folder (encoder_cache/, float16) for --resume and reruns
    cache_encoder_outputs: bool | Literal["disk"] = False
    bucket_by_length: bool = True
    patience: int | None = Field(default=None, ge=1)  # epochs without a better valid WER
    num_workers: int = Field(default=0, ge=0)


class WhisperAugmentConfig(ConfigModel):
    """SpecAugment on the log-mel input (time masks fall inside the speech, not the padding)."""

    freq_masks: int = Field(default=2, ge=0)
    freq_mask_width: int = Field(default=10, ge=1)
    time_masks: int = Field(default=2, ge=0)
    time_mask_width: int = Field(default=40, ge=1)


class WhisperEvalConfig(ConfigModel):
    batch_size: int = Field(default=8, ge=1)
    max_new_tokens: int = Field(default=160, ge=1, le=440)
    num_beams: int = Field(default=1, ge=1)


class WhisperExportConfig(ConfigModel):
    """What the run saves. ``interpolation`` < 1 saves ``start + a * (best - start)`` as
    ``best/`` (weight-space ensembling, WiSE-FT: Wortsman et al. 2022), keeps the fine-tuned
    weights in ``best_tuned/`` and scores the saved model on the validation set again."""

    ct2_quantization: Literal["int8", "int8_float16", "int8_float32", "float16", "bfloat16",
                              "float32"] | None = None  # also write best as CTranslate2
    interpolation: float = Field(default=1.0, gt=0, le=1)


class WhisperSelectConfig(ConfigModel):
    """Choosing the saved model on real speech (issue 29): the interpolation weight ``a`` of
    ``start + a * (fine-tuned - start)`` (WiSE-FT) is picked among ``interpolations`` as the
    one with the lowest validation WER (the task's own validation set) whose WER on
    ``manifest`` (real speech, e.g. speechocean762's dev speakers, never the test speakers
    or replay clips) is at most the starting model's plus ``max_wer_increase`` (absolute:
    0.005 is half a point). Where no weight stays within it, the one with the lowest WER on
    ``manifest`` is saved and the report says the limit was missed.

    ``filter`` picks the lines (``{split: valid, labels.age_group: adult}``), ``limit`` keeps
    that many spread evenly over them, ``report_by`` (a field, e.g. ``labels.age_group``)
    splits the reported WER into groups. ``null`` manifest: ``export.interpolation`` is
    used as it is.
    """

    manifest: str | None = None
    root: str | None = None
    filter: dict[str, str | int | float | bool] = {}
    limit: int | None = Field(default=None, ge=1)
    report_by: str | None = None
    interpolations: list[float] = [0.25, 0.5, 0.75, 1.0]
    max_wer_increase: float = Field(default=0.005, ge=0, le=1)

    @field_validator("interpolations")
    @classmethod
    def _weights(cls, v):
        if not v or any(not 0 < a <= 1 for a in v):
            raise ValueError(f"expected weights in (0, 1], got {v}")
        return sorted(set(float(a) for a in v))


class WhisperTrainConfig(ConfigModel):
    """Fine-tuning a Whisper model (``task: whisper_asr``)."""

    task: Literal["whisper_asr"]
    recipe: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = 0
    device: str = "auto"
    output_dir: str = "runs"
    model: WhisperModelConfig
    data: WhisperDataConfig
    train: WhisperLoopConfig = WhisperLoopConfig()
    augment: WhisperAugmentConfig = WhisperAugmentConfig()
    lora: LoraConfig = LoraConfig()
    eval: WhisperEvalConfig = WhisperEvalConfig()
    export: WhisperExportConfig = WhisperExportConfig()
    select: WhisperSelectConfig = WhisperSelectConfig()

    @model_validator(mode="after")
    def _cross_checks(self):
        t = self.train
        if self.select.manifest is not None and self.export.interpolation != 1.0:
            raise ValueError(f"export.interpolation is {self.export.interpolation} but "
                             "select.manifest chooses the weight: set one of them")
        spec = self.augment.freq_masks or self.augment.time_masks
        if t.encoder_train_layers and not t.freeze_encoder:
            raise ValueError("train.encoder_train_layers needs train.freeze_encoder: true "
                             "(without it every encoder layer trains)")
        if t.cache_encoder_outputs and not t.freeze_encoder:
            raise ValueError("train.cache_encoder_outputs needs train.freeze_encoder: true")
        if t.cache_encoder_outputs and spec:
            raise ValueError("train.cache_encoder_outputs cannot be combined with SpecAugment "
                             "(set augment.freq_masks and augment.time_masks to 0)")
        if self.lora.enabled and t.freeze_encoder and self.lora.scope != "decoder":
            raise ValueError(f"lora.scope is {self.lora.scope!r} but train.freeze_encoder is "
                             "true: encoder adapters would not train")
        _check_device(self.device)
        return self


AnyTrainConfig = TrainConfig | WhisperTrainConfig


# ------------------------------------------------------------------------------ loading

def parse_override(text: str) -> tuple[str, Any]:
    """``"train.epochs=3"`` -> ``("train.epochs", 3)``; the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key.sub=value")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({exc.problem})") from None
    return key, value


def apply_overrides(data: dict, overrides: dict[str, Any] | list[str], *,
                    source: str = "--set") -> dict:
    """Return a copy of ``data`` with dotted keys set (``{"train.epochs": 3}`` or
    ``["train.epochs=3"]``). Setting a whole section replaces it; unknown keys are caught
    later by validation."""
    out = copy.deepcopy(data)
    items = ([parse_override(t) for t in overrides] if isinstance(overrides, list)
             else list(overrides.items()))
    for key, value in items:
        parts = key.split(".")
        node = out
        for i, p in enumerate(parts[:-1]):
            nxt = node.get(p)
            if nxt is None:
                nxt = node[p] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError(f"{source}: key {'.'.join(parts[:i + 1])!r} is "
                                  f"{type(nxt).__name__}, cannot set {key!r} inside it")
            node = nxt
        node[parts[-1]] = value
    return out


def validate_config(data: dict, *, source: str = "config") -> AnyTrainConfig:
    """Validate a parsed mapping into a :class:`TrainConfig`, or a
    :class:`WhisperTrainConfig` when it says ``task: whisper_asr`` (``ConfigError`` naming
    keys)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got "
                          f"{type(data).__name__}")
    task = data.get("task", "classify")
    if task not in ("classify", "whisper_asr"):
        raise ConfigError(f"{source}: key 'task' is {task!r}, expected classify (default) or "
                          "whisper_asr")
    if task == "whisper_asr":
        return WhisperTrainConfig.validate_mapping(data, source=source)
    return TrainConfig.validate_mapping({k: v for k, v in data.items() if k != "task"},
                                        source=source)


def load_config(path, *, overrides: list[str] | None = None, profile: str | None = None,
                ) -> AnyTrainConfig:
    """Read a recipe YAML, apply ``profiles[profile]`` and ``--set`` overrides, validate.

    Parameters
    ----------
    path : str or PathLike
        The YAML file.
    overrides : list of str, optional
        ``key.sub=value`` strings (values parsed as YAML).
    profile : str, optional
        Name of a set of overrides under the file's ``profiles`` key (e.g. ``"smoke"``), or
        several separated by commas (``"cpu,three_class"``), applied in that order.

    Returns
    -------
    TrainConfig
        Relative ``data.manifest``/``data.root`` paths are resolved against the current
        folder, else against the config's folder and its parents.
    """
    p = Path(os.fspath(path))
    if not p.is_file():
        raise ConfigError(f"{p}: config file not found")
    try:
        data = load_yaml(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    profiles = data.pop("profiles", None) or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{p}: key 'profiles' must map names to overrides")
    for name in ([n.strip() for n in profile.split(",")] if profile is not None else []):
        if name not in profiles:
            raise ConfigError(f"{p}: profile {name!r} not found (have: "
                              f"{', '.join(profiles) or 'none'})")
        prof = profiles[name]
        if not isinstance(prof, dict):
            raise ConfigError(f"{p}: profiles.{name} must map dotted keys to values")
        data = apply_overrides(data, prof, source=f"{p}: profiles.{name}")
    if overrides:
        data = apply_overrides(data, list(overrides))
    return _resolve_paths(validate_config(data, source=str(p)), p.parent)


def _resolve_paths(cfg: AnyTrainConfig, base: Path) -> AnyTrainConfig:
    """``cfg`` with its manifest and root paths resolved (:func:`_resolve`)."""
    def fix(v: str | None) -> str | None:
        return None if v is None else str(_resolve(v, base))

    if isinstance(cfg, WhisperTrainConfig):
        d, r, sel = cfg.data, cfg.data.replay, cfg.select
        return cfg.replace(
            data=d.replace(train_manifest=fix(d.train_manifest),
                           valid_manifest=fix(d.valid_manifest), root=fix(d.root),
                           test_manifests={k: fix(v) for k, v in d.test_manifests.items()},
                           replay=r.replace(manifest=fix(r.manifest), root=fix(r.root))),
            select=sel.replace(manifest=fix(sel.manifest), root=fix(sel.root)))
    return cfg.replace(data=cfg.data.replace(manifest=fix(cfg.data.manifest),
                                             root=fix(cfg.data.root)))


def profiles_of(path) -> dict[str, dict]:
    """The ``profiles`` mapping of a recipe YAML (empty when none)."""
    data = load_yaml(Path(os.fspath(path)).read_text(encoding="utf-8")) or {}
    return data.get("profiles") or {}


def _resolve(value: str, base: Path) -> Path:
    q = Path(value).expanduser()
    if q.is_absolute() or q.exists():
        return q.resolve() if q.exists() else q
    for d in (base, *base.resolve().parents):
        if (d / q).exists():
            return (d / q).resolve()
    return q


def config_to_dict(cfg: TrainConfig) -> dict:
    """Plain, YAML-ready mapping of a config (the resolved config saved in a run folder): its
    ``frontend`` holds every value of the resolved front-end, with its preset's name."""
    return cfg.model_dump(mode="json")


#: What the ECG and EEG presets' spectrograms were before issue 30 (an FFT of the frame's own
#: length, bins from 0 Hz, EEG without a dB floor): the overrides an old run's hybrid feature
#: sets get, so that scoring it computes the features its classifiers were fitted on.
_SPECTROGRAM_BEFORE_FRONTEND = {"ecg": {"n_fft": "exact", "fmin_hz": 0.0},
                                "eeg": {"n_fft": "exact", "fmin_hz": 0.0, "top_db": None}}


def upgrade_run_config(data: dict) -> dict:
    """A run folder's saved config written before the front-end became one object (a
    ``features`` section, ``data.target_fs``, ``data.window_s``), as the same config now:
    a custom ``frontend`` with the values training used (``n_fft: pow2``, no band-pass),
    ``data.crop_s``, and hybrid feature sets that compute what they computed then
    (``window_s`` -> ``frame_s``; the ECG/EEG spectrograms as they were). Newer configs are
    returned as they are."""
    if not isinstance(data, dict) or "features" not in data or "frontend" in data:
        return data
    out = dict(data)
    feats = dict(out.pop("features") or {})
    dcfg = dict(out.get("data") or {})
    feats.pop("preset", None)
    if "window_s" in feats:
        feats["frame_s"] = feats.pop("window_s")
    if "target_fs" in dcfg:
        feats["target_fs"] = dcfg.pop("target_fs")
    if "window_s" in dcfg:
        dcfg["crop_s"] = dcfg.pop("window_s")
    out["data"], out["frontend"] = dcfg, {"preset": "custom", "n_fft": "pow2", **feats}
    hybrid = out.get("hybrid")
    if isinstance(hybrid, dict) and isinstance(hybrid.get("features"), list):
        sets = []
        for fset in hybrid["features"]:
            if isinstance(fset, dict):
                over = dict(fset.get("overrides") or {})
                if "window_s" in over:
                    over["frame_s"] = over.pop("window_s")
                over = {**_SPECTROGRAM_BEFORE_FRONTEND.get(fset.get("preset"), {}), **over}
                fset = {**fset, "overrides": over}
            sets.append(fset)
        out["hybrid"] = {**hybrid, "features": sets}
    return out
