"""``biosig info``, ``biosig features`` and ``biosig plot``: look at recordings.

Thin wrappers over :func:`biosig.io.info` / :func:`biosig.load`,
:func:`biosig.features.compute_features` and :func:`biosig.plot.plot_signal`, reached as
attributes of :mod:`biosig` (loaded on first use, so ``--help`` imports none of them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

import biosig
from biosig.cli._app import app
from biosig.errors import BiosigError, ConfigError, InputError


def _parse_overrides(items: list[str] | None) -> dict:
    """``["n_mels=128", "band_hz=[20, 500]"]`` -> ``{"n_mels": 128, "band_hz": [20, 500]}``."""
    import yaml  # with biosig.fileio, not at --help
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set n_mels=128")
        try:
            out[key.strip()] = biosig.fileio.load_yaml(value)
        except yaml.YAMLError:
            raise ConfigError(f"--set {item!r}: cannot parse the value {value!r}") from None
    return out


def _read_config_file(path: Path) -> dict:
    """A YAML mapping of preset fields."""
    if not path.is_file():
        raise InputError(path, "config file not found")
    import yaml  # with biosig.fileio, not at --help
    try:
        data = biosig.fileio.load_yaml(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of preset fields (e.g. 'n_mels: 128'), "
                          f"got a {type(data).__name__}")
    return data


def _read_annotation_arg(value: str, record: Path):
    """An annotation file path, or an extension read next to ``record``."""
    p = Path(value)
    if p.is_file():
        return p.name, biosig.io.read_annotations(p)
    if "/" in value or "\\" in value or value.startswith("."):
        raise InputError(p, "annotation file not found")
    return f"{record.stem}.{value}", biosig.io.read_annotations(record, extension=value)


@app.command("info")
def info_cmd(
    paths: Annotated[list[Path], typer.Argument(help="Recordings (any format biosig reads).")],
    check: Annotated[bool, typer.Option(
        "--check", help="Also load every sample to validate the data (NaNs, truncation, "
                        "silence).")] = False,
    source_fs: Annotated[float | None, typer.Option(
        "--source-fs", help="Sampling rate in Hz for formats without one.")] = None,
) -> None:
    """One line per recording: format, channels, rate, duration. Bad files print a one-line
    error; the command exits with status 2 after all paths when any failed."""
    n_bad = 0
    for path in paths:
        try:
            line = biosig.info(path, source_fs=source_fs).summary()
            if check:
                sig = biosig.load(path, source_fs=source_fs)
                n_ann = len(sig.annotations) if sig.annotations is not None else 0
                line += f"  check ok ({n_ann} annotations)"
        except BiosigError as exc:
            n_bad += 1
            typer.echo(f"biosig: error: {exc}", err=True)
            continue
        typer.echo(line)
    if n_bad:  # main() prints "biosig: error: ..." and exits with status 2
        raise BiosigError(f"{n_bad} of {len(paths)} recordings failed")


@app.command("features")
def features_cmd(
    path: Annotated[Path, typer.Argument(help="The recording.")],
    modality: Annotated[str, typer.Option(
        "--modality", "-m", help="pcg, lung, cough, speech, ecg or eeg.")],
    out: Annotated[Path, typer.Option(
        "--out", "-o", help="Output .npz (arrays + __meta__ JSON).")],
    overrides: Annotated[list[str] | None, typer.Option(
        "--set", "-s", help="Preset override KEY=VALUE (YAML value), e.g. --set n_mels=128 "
                            "--set 'band_hz=[20, 500]'.")] = None,
    config_file: Annotated[Path | None, typer.Option(
        "--config", help="YAML mapping of preset fields (n_mels: 128); --set wins.")] = None,
    cycles: Annotated[Path | None, typer.Option(
        "--cycles", help="lung: cycle table (start_s end_s ...); default <recording>.txt when "
                         "present (ICBHI layout).")] = None,
    beats: Annotated[str | None, typer.Option(
        "--beats", help="ecg: R peaks from this annotation extension or file (default: the "
                        "record's .atr beats).")] = None,
    device: Annotated[str | None, typer.Option(
        "--device", help="torch device for the spectrograms.")] = None,
) -> None:
    """Compute a modality's preset features and write them to an .npz file atomically."""
    features = biosig.features
    if modality not in features.MODALITIES:
        raise ConfigError(f"--modality is {modality!r}, expected one of "
                          f"{', '.join(features.MODALITIES)}")
    values = _read_config_file(config_file) if config_file is not None else {}
    values.update(_parse_overrides(overrides))
    cfg = features.make_config(modality, values)
    if cycles is not None and modality != "lung":
        raise ConfigError(f"--cycles applies to --modality lung, not {modality!r}")
    if beats is not None and modality != "ecg":
        raise ConfigError(f"--beats applies to --modality ecg, not {modality!r}")
    if device is not None:
        import torch  # heavy: only for --device, checked before any work
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise ConfigError(f"--device is {device!r}, expected a torch device such as cpu or "
                              f"cuda:0") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"--device is {device!r} but no CUDA device is available")
    sig = biosig.load(path)
    extra = {}
    if modality == "lung":
        table = cycles if cycles is not None else Path(sig.path).with_suffix(".txt")
        if cycles is not None or table.is_file():
            extra["cycles_s"] = biosig.manifests.read_icbhi_cycles(table).intervals()
    if beats is not None:
        _, ann = _read_annotation_arg(beats, Path(sig.path))
        is_beat = np.array([lab in biosig.ecg.BEAT_LABELS for lab in ann.labels], dtype=bool)
        extra["r_peaks"] = ann.samples(sig.fs)[is_beat]
    fset = features.compute_features(sig, modality=modality, config=cfg, device=device,
                                     **extra)
    out.parent.mkdir(parents=True, exist_ok=True)
    fset.save(out)
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in fset.arrays.items())
    typer.echo(f"wrote {out}: {shapes}")


@app.command("plot")
def plot_cmd(
    path: Annotated[Path, typer.Argument(help="The recording.")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="PNG to write (default: <recording name>.png here).")] = None,
    start_s: Annotated[float | None, typer.Option(
        "--start-s", help="Start time in seconds.")] = None,
    end_s: Annotated[float | None, typer.Option(
        "--end-s", help="End time in seconds.")] = None,
    channel: Annotated[str | None, typer.Option(
        "--channel", "-c", help="Channel name or index (default: the first).")] = None,
    annotations: Annotated[list[str] | None, typer.Option(
        "--annotations", "-a",
        help="More annotations, repeatable: an extension read next to the record (qrs) or an "
             "annotation file (runs/x/100.qrs). The record's own (.atr, EDF+) are always "
             "drawn.")] = None,
    spectrogram: Annotated[bool, typer.Option(
        "--spectrogram/--no-spectrogram",
        help="Draw the spectrogram below the waveform.")] = True,
) -> None:
    """Write a PNG of the waveform, its spectrogram and its annotations."""
    sig = biosig.load(path)
    extra = dict(_read_annotation_arg(v, Path(sig.path)) for v in annotations or [])
    target = out if out is not None else Path(f"{Path(sig.path).stem}.png")
    biosig.plot.plot_signal(sig, target, start_s=start_s, end_s=end_s, channel=channel,
                            annotations=extra, spectrogram=spectrogram)
    typer.echo(f"wrote {target}")
