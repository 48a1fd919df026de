"""Using a trained run: load it, predict class probabilities for recordings, extract
embeddings (x-vectors), explain a prediction with Grad-CAM, and batch-score with the generic
runner (:func:`score_model`, behind ``biosig score model``)."""

from __future__ import annotations

import csv
import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from biosig.batch import atomic_path, run_batch
from biosig.errors import ConfigError, InputError, ManifestError
from biosig.fileio import load_yaml, write_text_atomic
from biosig.io import info, load
from biosig.manifests import read_manifest
from biosig.models import Ensemble, build_model
from biosig.signal import Signal
from biosig.train.cache import frame_windows, recording_features
from biosig.train.config import upgrade_run_config, validate_config
from biosig.train.data import eval_windows
from biosig.train.drift import REFERENCE_FILE, describe_signal, load_reference, write_drift_summary
from biosig.train.evaluation import (
    CALIBRATION_FILE,
    aggregate_any_index,
    aggregate_by_group,
    apply_calibration,
)
from biosig.train.hybrid import apply_decision, load_stages, stage_probs
from biosig.train.runs import pick_device

__all__ = ["LoadedRun", "load_run", "FoldEnsemble", "load_waveform", "predict_waveform",
           "embed_waveform", "GradCam", "grad_cam", "score_model",
           "ScoreModelSummary", "circor_patient"]


@dataclass
class LoadedRun:
    """A trained model with its front-end and config, ready for inference."""

    run_dir: Path
    cfg: object
    model: torch.nn.Module
    frontend: torch.nn.Module
    classes: list[str]
    device: torch.device


#: the K models of a K-fold run as one (probabilities averaged; see :class:`biosig.models.Ensemble`)
FoldEnsemble = Ensemble


def load_run(run_dir, *, checkpoint: str = "best", device: str = "auto") -> LoadedRun:
    """Load ``RUN_DIR/<checkpoint>.pt`` with the run's resolved ``config.yaml``.

    Parameters
    ----------
    run_dir : str or PathLike
        A run folder written by :func:`biosig.train.train`. For a K-fold run (``fold-k``
        folders), the K fold models together (:class:`FoldEnsemble`: probabilities averaged),
        or one fold's folder for that fold's model alone.
    checkpoint : {"best", "last"}
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """
    rd = Path(os.fspath(run_dir))
    ck_path = rd / f"{checkpoint}.pt"
    folds = sorted(rd.glob("fold-*"), key=lambda p: int(p.name.split("-")[1])
                   if p.name.split("-")[1].isdigit() else -1)
    if not ck_path.is_file() and folds:
        runs = [load_run(f, checkpoint=checkpoint, device=device) for f in folds]
        ens = FoldEnsemble([r.model for r in runs]).eval()
        return LoadedRun(rd, runs[0].cfg, ens, runs[0].frontend, runs[0].classes,
                         runs[0].device)
    if not ck_path.is_file():
        raise InputError(ck_path, "checkpoint not found")
    # the run's resolved front-end (``frontend`` in its config.yaml) rebuilds the transform;
    # folders saved before it existed (``features``, ``data.target_fs``) are read as they ran
    cfg = validate_config(upgrade_run_config(load_yaml((rd / "config.yaml").read_text(
        encoding="utf-8"))), source=str(rd / "config.yaml"))
    dev = pick_device(device)
    ck = torch.load(ck_path, map_location="cpu", weights_only=False)
    frontend = cfg.frontend.transform_module().to(dev)
    model = build_model(cfg.model, n_features=frontend.n_features,
                        n_classes=len(cfg.data.classes))
    model.load_state_dict(ck["model"])
    model.to(dev).eval()
    return LoadedRun(rd, cfg, model, frontend, list(cfg.data.classes), dev)


def load_waveform(run: LoadedRun, path, *, start_s: float | None = None,
                  end_s: float | None = None, source_fs: float | None = None) -> np.ndarray:
    """Load a recording the way the run's training data was loaded
    (:func:`~biosig.train.data.read_signal`): ``(n_samples,)`` float32 at
    ``frontend.target_fs``, the configured channel, cropped to ``[start_s, end_s)`` if given,
    then the front-end's :meth:`~biosig.features.FrontEnd.prepare` (notch, band-pass)."""
    d, fe = run.cfg.data, run.cfg.frontend
    sig = load(path, target_fs=fe.target_fs, source_fs=source_fs, annotations=None)
    if start_s is not None:
        sig = sig.crop(start_s, end_s)
    if d.channel == "mean":
        x = sig.data.mean(axis=0)
    elif d.channel >= sig.data.shape[0]:
        raise InputError(path, f"data.channel is {d.channel} but the recording has "
                               f"{sig.data.shape[0]} channel(s)")
    else:
        x = sig.data[d.channel]
    one = Signal(np.ascontiguousarray(x, dtype=np.float32)[None], sig.fs, ["x"], [""])
    return fe.prepare(one).data[0]


def _windows(run: LoadedRun, x: np.ndarray) -> torch.Tensor:
    d = run.cfg.data
    n = run.cfg.frontend.samples(d.crop_s)
    w = eval_windows(x, n, mode=d.eval_windows, max_windows=d.max_eval_windows)
    return torch.from_numpy(w).to(run.device)                # (n_windows, n_samples)


@torch.no_grad()
def _inputs(run: LoadedRun, x: np.ndarray) -> torch.Tensor:
    """The model's input windows ``(n_windows, n_features, n_frames)`` for one signal, made as
    in training: waveform windows through the front-end, or (runs trained on the feature
    cache) the whole signal's features cut into windows of frames, then normalised."""
    d = run.cfg.data
    if d.feature_cache is None:
        return run.frontend(_windows(run, x))
    fe = run.frontend
    n = fe.n_frames(run.cfg.frontend.samples(d.crop_s))
    wins = frame_windows(recording_features(fe, x), n, mode=d.eval_windows,
                         max_windows=d.max_eval_windows)
    return fe.normalize(torch.from_numpy(wins).to(run.device))


@torch.no_grad()
def predict_waveform(run: LoadedRun, x: np.ndarray) -> np.ndarray:
    """Class probabilities ``(n_classes,)`` of one signal, averaged over its windows."""
    feats = _inputs(run, x)
    return torch.softmax(run.model(feats).float(), -1).mean(0).cpu().numpy()


@torch.no_grad()
def embed_waveform(run: LoadedRun, x: np.ndarray) -> np.ndarray:
    """The model's segment embedding ``(dim,)`` (x-vector), averaged over windows."""
    if not hasattr(run.model, "embed"):
        raise ConfigError(f"{run.run_dir}: model {run.cfg.model.name!r} has no embeddings "
                          f"(use a tdnn model)")
    return run.model.embed(_inputs(run, x)).float().mean(0).cpu().numpy()


# ---------------------------------------------------------------------------- Grad-CAM

@dataclass
class GradCam:
    """``features`` (n_features, n_frames) of the explained window, ``heat`` (n_features,
    n_frames) in [0, 1], the explained class index ``target``, ``probs`` (n_classes,) and
    ``method`` ("grad-cam" or "saliency" for models without conv layers)."""

    features: np.ndarray
    heat: np.ndarray
    target: int
    probs: np.ndarray
    method: str


def grad_cam(run: LoadedRun, x: np.ndarray, *, target: int | None = None,
             window: int | None = None) -> GradCam:
    """Grad-CAM (Selvaraju et al., ICCV 2017) over the input features of one window.

    The class score's gradients, averaged over the last conv layer's positions, weight its
    feature maps; the ReLU of the sum is upsampled to the input's (feature, frame) grid. For
    models without a conv layer (BiLSTM) the map is the input-gradient saliency ``|d y / d X|``.

    Parameters
    ----------
    x : np.ndarray [shape=(n_samples,)]
        The signal at ``frontend.target_fs`` (:func:`load_waveform`).
    target : int, optional
        Class index to explain (default: the predicted class).
    window : int, optional
        Which evaluation window (default: the one with the highest target probability).
    """
    model = run.model
    with torch.no_grad():
        feats_all = _inputs(run, x)                             # (n_windows, F, T)
        p_all = torch.softmax(model(feats_all).float(), -1)
    probs = p_all.mean(0).cpu().numpy()
    tgt = int(np.argmax(probs)) if target is None else int(target)
    if not 0 <= tgt < len(run.classes):
        raise ConfigError(f"target is {tgt}, expected a class index below {len(run.classes)}")
    w = int(torch.argmax(p_all[:, tgt]).item()) if window is None else int(window)
    feats = feats_all[w:w + 1].clone().requires_grad_(True)     # (1, F, T)
    acts: dict = {}
    layer = model.cam_layer() if hasattr(model, "cam_layer") else None
    handle = None
    if layer is not None:
        def hook(_m, _i, out):
            out.retain_grad()
            acts["a"] = out
        handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
            score = model(feats)[0, tgt]
            model.zero_grad(set_to_none=True)
            score.backward()
    finally:
        if handle is not None:
            handle.remove()
    F, T = feats.shape[1:]
    if layer is not None:
        a, g = acts["a"].detach(), acts["a"].grad.detach()
        if a.ndim == 4:                                      # (1, C, F', T')
            cam = torch.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))
            cam = torch.nn.functional.interpolate(cam, size=(F, T), mode="bilinear",
                                                  align_corners=False)[0, 0]
        else:                                                # (1, C, T')
            cam = torch.relu((g.mean(dim=2, keepdim=True) * a).sum(1, keepdim=True))
            cam = torch.nn.functional.interpolate(cam, size=T, mode="linear",
                                                  align_corners=False)[0, 0]
            cam = cam[None, :].expand(F, T)
        method = "grad-cam"
    else:
        cam = feats.grad[0].abs()
        method = "saliency"
    cam = cam.cpu().numpy().astype(float)
    rng = cam.max() - cam.min()
    heat = (cam - cam.min()) / rng if rng > 0 else np.zeros_like(cam)
    return GradCam(feats.detach()[0].cpu().numpy(), heat, tgt, probs, method)


# ----------------------------------------------------------------------------- scoring

_RUNS: dict = {}


def _cached_run(run_dir: str, checkpoint: str, device: str) -> LoadedRun:
    key = (run_dir, checkpoint, device)
    if key not in _RUNS:
        _RUNS[key] = load_run(run_dir, checkpoint=checkpoint, device=device)
    return _RUNS[key]


def _cached_stages(run_dir: str, run: LoadedRun):
    """The run's hybrid stage and decision rule (:mod:`biosig.train.hybrid`), or None."""
    key = ("stages", run_dir)
    if key not in _RUNS:
        _RUNS[key] = load_stages(run_dir, run.cfg)
    return _RUNS[key]


@functools.lru_cache(maxsize=4)
def _cached_reference(path: str):
    return load_reference(path)


def _score_one(item, out_dir: str, *, run_dir: str, checkpoint: str, device: str,
               embeddings: bool, calibration: dict | None = None,
               drift_reference: str | None = None) -> dict:
    run = _cached_run(run_dir, checkpoint, device)
    m = item.meta
    x = load_waveform(run, item.path, start_s=m.get("start_s"), end_s=m.get("end_s"),
                      source_fs=m.get("source_fs"))
    if x.size == 0:
        raise InputError(item.path, "the recording (segment) holds no samples")
    stages = _cached_stages(run_dir, run)
    probs = predict_waveform(run, x) if stages is None else stage_probs(run, x, stages)
    decided = None
    if stages is not None and stages.weights is not None:   # the rule tuned on validation
        decided = int(np.argmax(apply_decision(probs[None], stages.weights)[0]))
    raw = probs
    if calibration is not None:
        probs = apply_calibration(probs[None], calibration)[0]
    row = {f"p_{c}": f"{p:.6f}" for c, p in zip(run.classes, probs)}
    row["label"] = run.classes[int(np.argmax(probs)) if decided is None else decided]
    if calibration is not None:           # what the decision rule was tuned on (CirCor answers)
        row.update({f"raw_p_{c}": f"{p:.6f}" for c, p in zip(run.classes, raw)})
    if drift_reference is not None:
        ref = _cached_reference(drift_reference)
        fs_hz = m.get("source_fs") or info(item.path, source_fs=m.get("source_fs")).fs
        vec, fs_hz, duration_s, level = describe_signal(run.frontend, x, fs_hz=fs_hz)
        score = float(ref.score(vec[None])[0])
        row.update(ood_score=f"{score:.4f}", ood_flag=int(score > ref.threshold),
                   fs_hz=f"{fs_hz:g}", duration_s=f"{duration_s:.3f}", level_db=f"{level:.2f}")
    if embeddings:
        with atomic_path(out_dir, f"embeddings/{item.key}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, embed_waveform(run, x))
    return row


@dataclass(frozen=True)
class ScoreModelSummary:
    """The batch summary plus the files written (``drift_md``: the drift summary, None for a
    run without a drift reference or with ``drift=False``) and what was applied."""

    batch: object
    predictions_csv: str
    answers_txt: str | None
    drift_md: str | None = None
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        extra = "".join(f", {p}" for p in (self.answers_txt, self.drift_md) if p)
        return "\n".join([f"{self.batch}\nwritten: {self.predictions_csv}{extra}",
                          *self.notes])


def _default_pattern(cfg) -> str:
    try:
        for rec in read_manifest(cfg.data.manifest, check_ids=False):
            suffix = Path(rec.path).suffix
            return f"*{suffix}" if suffix else "*"
    except (ManifestError, OSError) as exc:
        raise ConfigError(f"--pattern not given and the run's manifest {cfg.data.manifest} "
                          f"cannot tell it ({exc}); pass --pattern") from None
    return "*"


def score_model(run_dir, source, out_dir, *, checkpoint: str = "best", device: str = "auto",
                pattern: str | None = None, jobs: int = 1, executor: str = "local",
                scheduler: str | None = None, progress: bool = True,
                retry_errors: bool = False, embeddings: bool = False, calibrate: bool = False,
                drift: bool = True) -> ScoreModelSummary:
    """Class probabilities for every record of ``source`` with a trained run.

    Runs :func:`biosig.batch.run_batch` (resumable, ``errors.csv`` rows, progress bar,
    ``--jobs``/Dask) with ``predictions.csv`` (``record, p_<class>..., label``) as its results
    table, then writes, for PhysioNet 2022 (CirCor) runs, one answer file per patient in
    ``answers/`` (see :func:`_write_circor_answers`), and for CinC 2017 runs, the challenge's
    ``answers.txt`` (``record,label``
    per line) atomically. A run with a hybrid stage or a tuned decision rule
    (:mod:`biosig.train.hybrid`: ``hybrid.joblib``, ``decision.json``) is scored with them:
    the ``p_`` columns are the run's model's probabilities (per fold, averaged), the label and
    the answer files follow the rule.

    Parameters
    ----------
    run_dir : str or PathLike
    source : str or PathLike
        Folder, ``.jsonl`` manifest or record list (see :func:`biosig.batch.iter_inputs`).
    out_dir : str or PathLike
    pattern : str, optional
        File pattern for folders (default: the suffix of the run's manifest paths).
    embeddings : bool
        Also write ``embeddings/<record>.npy`` (TDNN/x-vector runs).
    calibrate : bool
        Pass the probabilities through the run's ``calibration.json`` (fitted on its
        validation predictions at the end of training; its ``method``, temperature scaling
        by default); the ``p_<class>`` columns are then the calibrated ones, with the
        uncalibrated ones beside them (``raw_p_<class>``); a tuned decision rule still
        decides on the uncalibrated ones (it was tuned on them), else the label is the
        calibrated arg-max.
    drift : bool
        Compare each record with the run's training data (``drift_reference.npz``, see
        :mod:`biosig.train.drift`): the columns ``ood_score`` (higher is further),
        ``ood_flag`` (1 above the threshold about 5 % of the run's own validation recordings
        exceed), ``fs_hz``, ``duration_s``, ``level_db``, and ``drift.md`` / ``drift.png``.
        A run without a reference (trained by an older release) is scored without them.
    """
    run = load_run(run_dir, checkpoint=checkpoint, device=device)   # fail early, in-process
    if embeddings and not hasattr(run.model, "embed"):
        raise ConfigError(f"--embeddings: model {run.cfg.model.name!r} has no embeddings")
    notes: list[str] = []
    calibration = None
    if calibrate:
        cal_path = Path(run_dir) / CALIBRATION_FILE
        if not cal_path.is_file():
            raise InputError(cal_path, "not found: --calibrate needs a run trained with this "
                                       "release (it fits calibration.json at the end)")
        calibration = json.loads(cal_path.read_text(encoding="utf-8"))
        notes.append(f"probabilities calibrated: {calibration['method']}"
                     + (f" (T = {calibration['temperature']:.3f})"
                        if calibration["method"] == "temperature" else "")
                     + f", fitted on {calibration.get('fitted_on', 'valid')}")
    ref_path = Path(run_dir).resolve() / REFERENCE_FILE
    if drift and not ref_path.is_file():
        notes.append(f"no drift check: {ref_path} not found (a run of an older release)")
    use_drift = drift and ref_path.is_file()
    func = functools.partial(_score_one, run_dir=str(Path(run_dir).resolve()),
                             checkpoint=checkpoint, device=device, embeddings=embeddings,
                             calibration=calibration,
                             drift_reference=str(ref_path) if use_drift else None)
    columns = ["record", *[f"p_{c}" for c in run.classes], "label"]
    if calibration is not None:
        columns += [f"raw_p_{c}" for c in run.classes]
    if use_drift:
        columns += ["ood_score", "ood_flag", "fs_hz", "duration_s", "level_db"]
    summary = run_batch(source, func, out_dir, columns=columns,
                        pattern=pattern or _default_pattern(run.cfg), jobs=jobs,
                        executor=executor, scheduler=scheduler, progress=progress,
                        retry_errors=retry_errors, description="scoring",
                        scores_name="predictions.csv")
    out = Path(out_dir)
    pred = out / "predictions.csv"
    answers = None
    if run.cfg.eval.challenge == "cinc2017":
        answers = out / "answers.txt"
        with open(pred, newline="", encoding="utf-8") as f:
            rows = [(Path(r["record"]).name, r["label"]) for r in csv.DictReader(f)]
        write_text_atomic(answers, "".join(f"{r},{lab}\n" for r, lab in rows))
    elif run.cfg.eval.challenge == "physionet2022":
        answers = out / "answers"
        stages = load_stages(run_dir, run.cfg)
        _write_circor_answers(pred, answers, run.classes,
                              weights=stages.weights if stages is not None else None,
                              any_class=aggregate_any_index(run.cfg),
                              calibration=calibration)
    drift_md = None
    if use_drift:
        drift_md, _ = write_drift_summary(pred, load_reference(ref_path), out)
    return ScoreModelSummary(summary, str(pred), str(answers) if answers else None,
                             str(drift_md) if drift_md else None, tuple(notes))


def circor_patient(record: str) -> str:
    """The CirCor patient of a recording: its file name up to the first ``_``
    (``49823_PV.wav`` and ``49823_AV_1.wav`` -> ``49823``)."""
    return Path(record).name.split("_")[0]


def _write_circor_answers(pred: Path, folder: Path, classes: list[str], *,
                          weights=None, any_class: int | None = None,
                          calibration: dict | None = None) -> list[Path]:
    """PhysioNet 2022 answer files, one per patient, from the per-recording predictions.

    ``<patient>.csv`` holds four lines, as the challenge's ``save_challenge_outputs`` writes
    them: ``#<patient>``, the class names, the binary labels (one 1) and the probabilities. A
    patient's probabilities are the mean over its recordings (all locations; patient by
    :func:`circor_patient`), or with ``any_class`` (the run's ``eval.aggregate_any``) that
    class's maximum, by :func:`biosig.train.evaluation.aggregate_by_group`, the function the
    recipe scores patients with (``eval.aggregate_by: subject``); the label is
    the arg-max of ``p * weights`` (the run's tuned decision rule, which was fitted on those
    patient means; None: arg-max). Scored with ``--calibrate`` (``calibration``, the run's
    ``calibration.json``), the file's probabilities are the patient's uncalibrated ones
    (``raw_p_<class>``, aggregated as above) through the calibration, which was fitted on
    patient probabilities aggregated the same way, and its label still the rule on the
    uncalibrated ones, as the rule was tuned. Only the murmur task: this recipe does not
    predict the challenge's outcome classes.
    """
    with open(pred, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    k = len(classes)
    def patient_means(prefix):
        p = np.array([[float(r[f"{prefix}{c}"]) for c in classes] for r in rows]).reshape(-1, k)
        return aggregate_by_group(p, np.zeros(len(rows), dtype=np.int64), patients,
                                  any_class=any_class)

    patients = [circor_patient(r["record"]) for r in rows]
    # --calibrate: the rule and the calibration both read the uncalibrated columns; the
    # calibration was fitted on patient probabilities, so it is applied to them
    rp, _, names = patient_means("p_" if calibration is None else "raw_p_")
    pp = rp if calibration is None else apply_calibration(rp, calibration)
    decided = (rp if weights is None else apply_decision(rp, weights)).argmax(axis=1)
    written = []
    for patient, p, d in sorted(zip(names, pp, decided), key=lambda x: x[0]):
        onehot = (np.arange(k) == d).astype(int)
        text = (f"#{patient}\n{','.join(classes)}\n{','.join(map(str, onehot))}\n"
                f"{','.join(f'{v:.6f}' for v in p)}\n")
        written.append(write_text_atomic(Path(folder) / f"{patient}.csv", text))
    return written
