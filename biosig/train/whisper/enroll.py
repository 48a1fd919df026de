"""Per-speaker enrollment: a small LoRA adapter trained on one clinician's read sentences.

:func:`enroll_speaker` reads a folder of ``<utt>.wav`` (or ``.flac`` ...) recordings, each
beside ``<utt>.txt`` holding what was said, writes it as a manifest with the ``audio_folder``
builder (:func:`biosig.manifests.corpora.prepare_audio_folder`), and runs the one Whisper
fine-tuning task (:func:`biosig.train.whisper.train_whisper`) on it with an enrollment config
(:func:`enrollment_config`): the encoder frozen and run once per clip, LoRA adapters on the
decoder, the enrollment clips as the validation set (epoch 0 is the base model, so a speaker
the adapter does not help keeps the base model's weights), the saved weights
``export.interpolation`` of the way from the base model to the adapted one, and a CTranslate2
int8 export. The speaker's folder (:mod:`biosig.asr.speakers`) is built in a temporary folder
and renamed into place.

Nothing of the audio or the text is logged or stored: ``speaker.json`` holds the digests of the
files used, their count and duration.

The default :class:`EnrollSettings` were chosen on speechocean762's train speakers
(``bench/enroll.py --split train``; README: the figures).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from pydantic import Field, model_validator

import biosig
from biosig.asr.ct2 import transformers_folder
from biosig.asr.speakers import (
    SpeakerProfile,
    check_speaker_name,
    file_digest,
    model_digest,
)
from biosig.asr.speakers import speakers_dir as resolve_speakers_dir
from biosig.config import ConfigModel, Int
from biosig.errors import ConfigError, InputError
from biosig.fileio import atomic_dir, write_text_atomic
from biosig.manifests import Record, write_manifest
from biosig.manifests.corpora.audio_folder import AUDIO_FOLDER_EXTENSIONS, prepare_audio_folder
from biosig.train.config import validate_config
from biosig.train.runs import git_hash
from biosig.train.whisper.task import train_whisper

__all__ = ["EnrollSettings", "EnrollmentClip", "enrollment_clips", "enrollment_config",
           "enroll_speaker", "held_out_indices", "gate_fold_of"]

log = logging.getLogger("biosig.train.whisper")


class EnrollSettings(ConfigModel):
    """How a speaker is enrolled (a :class:`~biosig.config.ConfigModel`: unknown keys and
    values out of range are :class:`~biosig.errors.ConfigError` naming the key).

    Attributes
    ----------
    epochs : int >= 1
        Passes over the enrollment clips (the best by WER on them is kept; epoch 0 is the
        base model).
    lr : float > 0
        AdamW learning rate (constant after ``warmup_steps``).
    batch_size : int >= 1
    warmup_steps : int >= 0
    lora_r, lora_alpha : int, float
        Rank and scale of the adapters.
    lora_targets : list of str
        Decoder layers that get an adapter (:func:`~biosig.train.whisper.lora_target_regex`:
        ``encoder_attn.q_proj`` is the cross-attention's query, ``fc1`` every feed-forward).
    encoder_train_layers : int >= 0
        The encoder's last N layers train too (their input is cached instead of its output).
    interpolation : float in (0, 1]
        The saved model is ``base + interpolation * (adapted - base)``.
    timestamps_prob : float in [0, 1]
        Share of targets with timestamp tokens (Whisper decodes with them).
    min_audio_s : float >= 0
        Least audio accepted in the folder.
    max_steps : int or None
        Cap on optimizer steps (tests).
    holdout : float in [0, 1)
        Share of the recordings (spread evenly over the sorted ids, at least one) kept out of
        training: the epoch, and whether the adapter is kept at all, are chosen by WER on them
        (epoch 0 is the base model, so a speaker whose held-out recordings the adapter does
        not help keeps the base weights). 0: both are chosen on the training recordings
        themselves, where the adapter nearly always wins.
    gate_folds : int, 0 or >= 2
        Decide by cross-validation over the recordings whether to keep an adapter, and for how
        many epochs to train it: the recordings (sorted by id) are dealt to ``gate_folds``
        folds; an adapter trained on the others is scored on each fold's recordings after
        every epoch, and the word errors are pooled over folds (epoch 0 is the base model).
        The best epoch count (the base model on a tie) decides: 0 keeps the base model
        (nothing more is trained); otherwise the adapter is trained on every recording for that
        many epochs. Every recording is judged, unlike ``holdout``, at ``gate_folds`` more
        trainings. 0: off.
    seed : int
    """

    epochs: Int = Field(default=4, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    batch_size: Int = Field(default=4, ge=1)
    warmup_steps: Int = Field(default=2, ge=0)
    lora_r: Int = Field(default=8, ge=1)
    lora_alpha: float = Field(default=16.0, gt=0)
    lora_targets: list[str] = Field(
        default_factory=lambda: ["encoder_attn.q_proj", "encoder_attn.k_proj",
                                 "encoder_attn.v_proj", "encoder_attn.out_proj"],
        min_length=1)
    encoder_train_layers: Int = Field(default=0, ge=0)
    interpolation: float = Field(default=1.0, gt=0, le=1)
    timestamps_prob: float = Field(default=0.5, ge=0, le=1)
    min_audio_s: float = Field(default=15.0, ge=0)
    max_steps: Int | None = Field(default=None, ge=1)
    holdout: float = Field(default=0.0, ge=0, lt=1)
    gate_folds: Int = Field(default=0, ge=0)
    seed: Int = 0

    @model_validator(mode="after")
    def _one_gate(self):
        if self.gate_folds == 1:
            raise ValueError("gate_folds is 1, expected 0 (off) or at least 2")
        if self.gate_folds and self.holdout:
            raise ValueError(f"gate_folds is {self.gate_folds} and holdout is "
                             f"{self.holdout:g}; use one of them")
        return self


@dataclass(frozen=True)
class EnrollmentClip:
    """One recording of the enrollment folder and its transcript file; ``record`` is its
    manifest record (what training reads)."""

    id: str
    audio: Path
    text_file: Path
    duration_s: float
    record: Record


def enrollment_clips(folder, *, min_audio_s: float = 15.0, max_clip_s: float = 30.0
                     ) -> list[EnrollmentClip]:
    """The recordings of an enrollment folder (any depth), each with its ``.txt``.

    Parameters
    ----------
    folder : path
        ``<utt>.wav`` (or any :data:`~biosig.manifests.corpora.AUDIO_FOLDER_EXTENSIONS`)
        beside ``<utt>.txt``.
    min_audio_s : float
        Least total audio.
    max_clip_s : float
        Longest recording (Whisper's window).

    Returns
    -------
    list of EnrollmentClip
        Sorted by id.

    Raises
    ------
    InputError
        One line naming the folder and the file(s): no recordings, a recording without its
        ``.txt`` or a ``.txt`` without its recording, an empty ``.txt``, an unreadable or too
        long recording, less than ``min_audio_s`` of audio in all.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise InputError(root, "enrollment folder not found")
    audio = sorted(p for p in root.rglob("*")
                   if p.suffix.lower() in AUDIO_FOLDER_EXTENSIONS and p.is_file())
    texts = sorted(p for p in root.rglob("*.txt") if p.is_file())
    stems = {p.with_suffix("") for p in audio}
    if not audio:
        raise InputError(root, "no recordings (expected <utt>.wav or .flac beside <utt>.txt)")

    def names(ps):
        ps = [str(p.relative_to(root)) for p in ps]
        return ", ".join(ps[:5]) + (f" and {len(ps) - 5} more" if len(ps) > 5 else "")

    dup = sorted({p for p in audio if sum(q.with_suffix("") == p.with_suffix("")
                                          for q in audio) > 1})
    if dup:
        raise InputError(root, f"several recordings share a name: {names(dup)}")
    no_text = [p for p in audio if not p.with_suffix(".txt").is_file()]
    if no_text:
        raise InputError(root, f"{len(no_text)} recording(s) without their .txt: "
                               f"{names(no_text)}")
    no_audio = [p for p in texts if p.with_suffix("") not in stems]
    if no_audio:
        raise InputError(root, f"{len(no_audio)} .txt file(s) without their recording: "
                               f"{names(no_audio)}")
    empty = [p for p in texts if not p.read_text(encoding="utf-8", errors="replace").strip()]
    if empty:
        raise InputError(root, f"{len(empty)} empty .txt file(s): {names(empty)}")
    clips = [EnrollmentClip(r.id, root / r.path, (root / r.path).with_suffix(".txt"),
                            float(r.duration_s), r) for r in prepare_audio_folder(root)]
    bad = sorted(set(audio) - {c.audio for c in clips})     # the builder skips unreadable ones
    if bad:
        raise InputError(root, f"{len(bad)} recording(s) cannot be read: {names(bad)}")
    long = [c.audio for c in clips if c.duration_s > max_clip_s]
    if long:
        raise InputError(root, f"{len(long)} recording(s) longer than {max_clip_s:g} s: "
                               f"{names(long)}")
    total = sum(c.duration_s for c in clips)
    if total < min_audio_s:
        raise InputError(root, f"{total:.1f} s of audio in {len(clips)} recording(s), expected "
                               f"at least {min_audio_s:g} s")
    return sorted(clips, key=lambda c: c.id)


def held_out_indices(n: int, share: float) -> set[int]:
    """The recordings (indices into the ``n`` sorted by id) that ``EnrollSettings.holdout``
    keeps out of training: ``round(share * n)``, at least one when ``share > 0``, spread
    evenly from the second recording on."""
    if share <= 0 or n == 0:
        return set()
    k = max(1, round(share * n))
    return {int(i) for i in np.linspace(1, n - 1, k).round()} if n > 1 else {0}


def gate_fold_of(n: int, folds: int) -> list[int]:
    """The fold of each of ``n`` recordings (sorted by id) under ``EnrollSettings.gate_folds``:
    dealt in turn, recording ``i`` to fold ``i % folds``."""
    return [i % folds for i in range(n)]


def _epoch_errors(history: list[dict]) -> dict[int, tuple[float, int]]:
    """Word errors and reference words on the validation recordings after each epoch of an
    enrollment run's history (epoch 0: the base model)."""
    out = {}
    for row in history:
        v = row.get("valid") or {}
        if v.get("wer") is not None and v.get("n_ref_words"):
            out[int(row["epoch"])] = (float(v["wer"]) * int(v["n_ref_words"]),
                                      int(v["n_ref_words"]))
    return out


def _train_run(folder: Path, train: list, valid: list | None, settings: EnrollSettings, *,
               src: Path, hf_base: str, device: str, language: str, progress: bool):
    """One enrollment training in ``folder``: the ``train`` records train, the ``valid`` ones
    (None: the same) choose the epoch."""
    folder.mkdir(exist_ok=True)
    write_manifest(train, folder / "enroll.jsonl", overwrite=True)
    valid_path = None
    if valid is not None:
        valid_path = folder / "held_out.jsonl"
        write_manifest(valid, valid_path, overwrite=True)
    cfg = enrollment_config(folder / "enroll.jsonl", base_model=hf_base, settings=settings,
                            root=src, output_dir=folder, device=device, language=language,
                            valid_manifest=valid_path)
    return train_whisper(cfg, run_dir=folder / "run", progress=progress)


def _gate(records, s: EnrollSettings, *, tmp: Path, **run_kw) -> dict:
    """Cross-validated choice of the epoch count (0: keep the base model); see
    ``EnrollSettings.gate_folds``. Only epochs scored in every fold count."""
    fold = gate_fold_of(len(records), s.gate_folds)
    per_fold = []
    for k in range(s.gate_folds):
        run = _train_run(tmp / f"gate-{k}", [r for r, f in zip(records, fold) if f != k],
                         [r for r, f in zip(records, fold) if f == k], s, **run_kw)
        per_fold.append(_epoch_errors(run.history))
        shutil.rmtree(tmp / f"gate-{k}", ignore_errors=True)
    epochs = sorted(set.intersection(*(set(p) for p in per_fold)))
    if 0 not in epochs:
        raise RuntimeError("enrollment gate: the base model was not scored on the held-out "
                           "recordings")
    wer = {e: sum(p[e][0] for p in per_fold) / sum(p[e][1] for p in per_fold) for e in epochs}
    best = min(wer, key=lambda e: (round(wer[e], 9), e))       # the base model on a tie
    return {"folds": s.gate_folds, "wer_by_epochs": {str(e): w for e, w in wer.items()},
            "epochs": best, "n_ref_words": sum(p[0][1] for p in per_fold)}


def enrollment_config(manifest, *, base_model: str, settings: EnrollSettings, root,
                      output_dir, device: str = "cpu", language: str = "en",
                      valid_manifest=None):
    """The :class:`~biosig.train.config.WhisperTrainConfig` of an enrollment: the clips of
    ``manifest`` train, those of ``valid_manifest`` (default: the same) choose the epoch
    (epoch 0 = the base model), the encoder is frozen and its outputs cached, LoRA adapters
    sit on the decoder, the result is exported to CTranslate2 int8."""
    s = settings
    valid = manifest if valid_manifest is None else valid_manifest
    data = {
        "task": "whisper_asr", "recipe": "enroll", "seed": s.seed, "device": device,
        "output_dir": str(output_dir),
        "model": {"name_or_path": str(base_model), "language": language},
        "data": {"train_manifest": str(manifest), "valid_manifest": str(valid),
                 "root": str(root), "group_by": "id", "timestamps_prob": s.timestamps_prob},
        "train": {"epochs": s.epochs, "batch_size": s.batch_size, "lr": s.lr,
                  "warmup_steps": s.warmup_steps, "scheduler": "constant",
                  "max_steps": s.max_steps, "amp": "off", "freeze_encoder": True,
                  "encoder_train_layers": s.encoder_train_layers,
                  "cache_encoder_outputs": "disk", "bucket_by_length": True},
        "augment": {"freq_masks": 0, "time_masks": 0},
        "lora": {"enabled": True, "r": s.lora_r, "alpha": s.lora_alpha, "dropout": 0.0,
                 "target_modules": list(s.lora_targets), "scope": "decoder"},
        "eval": {"batch_size": 8, "max_new_tokens": 128, "num_beams": 1},
        "export": {"ct2_quantization": "int8", "interpolation": s.interpolation},
    }
    return validate_config(data, source="enrollment settings")


def enroll_speaker(name: str, folder, *, model: str, speakers_dir=None,
                   settings: EnrollSettings | None = None, overwrite: bool = False,
                   device: str = "cpu", language: str = "en", work_dir=None,
                   progress: bool = True) -> SpeakerProfile:
    """Train a speaker adapter on ``folder`` and store it as speaker ``name``.

    Parameters
    ----------
    name : str
        The speaker (letters, digits, ``_.-``): the folder ``<speakers_dir>/<name>``.
    folder : path
        The speaker's recordings, each beside its ``.txt`` (:func:`enrollment_clips`).
    model : str
        The base model: a local CTranslate2 or transformers folder, or
        ``packaged:whisper-base``; ``--speaker`` later needs the same one.
    speakers_dir : path, optional
        Where speakers are kept (default :func:`biosig.asr.speakers.speakers_dir`:
        ``$BIOSIG_SPEAKERS``, else the user's data folder).
    settings : EnrollSettings, optional
    overwrite : bool
        Replace a speaker already enrolled under ``name``.
    device : str
        ``cpu`` or ``cuda``.
    language : str
    work_dir : path, optional
        Where the temporary training run goes (default: the system's temporary folder);
        removed at the end.
    progress : bool

    Returns
    -------
    SpeakerProfile

    Raises
    ------
    InputError
        The folder's recordings and texts do not match (:func:`enrollment_clips`).
    ConfigError
        A bad name, a speaker already enrolled (without ``overwrite``), a base model that is
        not a local folder.
    """
    t0 = time.perf_counter()
    check_speaker_name(name)
    s = settings if settings is not None else EnrollSettings()
    root = resolve_speakers_dir(speakers_dir)
    dest = root / name
    if (dest / "speaker.json").is_file() and not overwrite:
        raise ConfigError(f"speaker {name!r}: already enrolled in {root}; pass --overwrite "
                          "to replace it")
    src = Path(folder).expanduser().resolve()
    clips = enrollment_clips(src, min_audio_s=s.min_audio_s)
    _, digest = model_digest(model)
    hf_base = transformers_folder(model)
    audio_s = sum(c.duration_s for c in clips)
    log.info("enrolling speaker %s: %d recordings, %.1f s of audio", name, len(clips), audio_s)
    root.mkdir(parents=True, exist_ok=True)
    records = [c.record for c in clips]                 # sorted by id
    held = held_out_indices(len(records), s.holdout)
    if held and len(held) >= len(records):
        raise InputError(src, f"{len(records)} recording(s): holdout {s.holdout:g} leaves none "
                              "to train on")
    if s.gate_folds and len(records) < s.gate_folds:
        raise InputError(src, f"{len(records)} recording(s): gate_folds {s.gate_folds} needs "
                              "at least one per fold")
    with tempfile.TemporaryDirectory(prefix="biosig-enroll-", dir=work_dir) as tmp:
        tmp = Path(tmp)
        run_kw = {"src": src, "hf_base": hf_base, "device": device, "language": language,
                  "progress": progress}
        gate = None
        if s.gate_folds:
            gate = _gate(records, s, tmp=tmp, **run_kw)
            log.info("speaker %s: cross-validated over %d folds, %d epoch(s) kept", name,
                     s.gate_folds, gate["epochs"])
        run, report = None, {"best_epoch": 0}
        if gate is None or gate["epochs"] > 0:
            final = s if gate is None else s.replace(epochs=gate["epochs"])
            run = _train_run(tmp, [r for i, r in enumerate(records) if i not in held],
                             [records[i] for i in sorted(held)] if held else None, final,
                             **run_kw)
            report = run.report
        if gate is not None:
            scored = {"base": gate["wer_by_epochs"]["0"],
                      "speaker": gate["wer_by_epochs"][str(gate["epochs"])],
                      "scored_on": f"each recording once, {s.gate_folds}-fold cross-validated"}
        else:
            scored = {"base": (report.get("valid_start") or {}).get("wer"),
                      "speaker": (report.get("valid") or {}).get("wer"),
                      "scored_on": ("the held-out recordings" if held else
                                    "the training recordings")}
        kept = "adapter" if (report.get("best_epoch") or 0) > 0 else "base"
        prov = {
            "name": name,
            "base_model": {"name": model, "digest": digest},
            "biosig_version": biosig.__version__,
            "git": git_hash(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "n_recordings": len(clips),
            "audio_s": round(audio_s, 3),
            "recordings": [{"id": c.id, "audio": file_digest(c.audio),
                            "text": file_digest(c.text_file),
                            "duration_s": round(c.duration_s, 3)} for c in clips],
            "settings": s.model_dump(mode="json"),
            "language": language,
            "best_epoch": report.get("best_epoch"),
            "kept": kept,
            "n_held_out": len(held),
            "gate": gate,
            "wer_enrollment_clips": scored,
            "trainable_parameters": report.get("trainable_parameters"),
            "adapter_scale": s.interpolation,
            "model": ({"format": "base"} if run is None else
                      {"format": "ctranslate2", "quantization": "int8", "folder": "ct2"}),
            "enroll_s": None,
        }
        with atomic_dir(dest, overwrite=True, what="speaker") as new:
            if run is not None:
                shutil.copytree(run.run_dir / "ct2", new / "ct2")
                if (run.run_dir / "best_adapter").is_dir():
                    shutil.copytree(run.run_dir / "best_adapter", new / "adapter")
            prov["enroll_s"] = round(time.perf_counter() - t0, 1)
            write_text_atomic(new / "speaker.json", json.dumps(prov, indent=1) + "\n")
    log.info("speaker %s enrolled in %s (%.0f s)", name, dest, prov["enroll_s"])
    return SpeakerProfile(name, dest, prov)
