"""Pictures of recordings: waveform, spectrogram and annotations in one PNG.

Figures are drawn with matplotlib's Agg canvas (a plain :class:`~matplotlib.figure.Figure`: no
display, no pyplot state), so this works on servers and in worker processes. Only the code that
plots imports this module (the command line reaches it as ``biosig.plot``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from biosig.errors import ConfigError
from biosig.features.spectral import power_to_db
from biosig.features.spectral import spectrogram as power_spectrogram
from biosig.fileio import atomic_path
from biosig.signal import Annotations, Signal, as_signal

__all__ = ["plot_signal", "save_png"]

_MARKERS = ("v", "o", "^", "x", "s", "+", "D", "*")
#: Above this many samples in view the waveform is drawn as a min/max envelope.
_MAX_LINE_SAMPLES = 20_000
#: Beat labels are written next to their markers when at most this many events are in view.
_MAX_TEXT_LABELS = 150


def _channel_index(signal: Signal, channel) -> int:
    if channel is None:
        return 0
    if isinstance(channel, str):
        if channel in signal.channels:
            return signal.channels.index(channel)
        if channel.lstrip("-").isdigit():
            channel = int(channel)
        else:
            raise ConfigError(f"channel {channel!r} not found; channels are {signal.channels}")
    idx = int(channel)
    if not -signal.n_channels <= idx < signal.n_channels:
        raise ConfigError(f"channel index {idx} out of range; the recording has "
                          f"{signal.n_channels} channels {signal.channels}")
    return idx % signal.n_channels


def _time_range(signal: Signal, start_s, end_s) -> tuple[float, float]:
    start = 0.0 if start_s is None else float(start_s)
    end = signal.duration_s if end_s is None else min(float(end_s), signal.duration_s)
    if not (math.isfinite(start) and 0 <= start < signal.duration_s):
        raise ConfigError(f"start_s is {start:g}, expected 0 <= start_s < the duration "
                          f"{signal.duration_s:.3f} s")
    if not end > start:
        raise ConfigError(f"end_s is {end:g}, expected more than start_s={start:g}")
    return start, end


def _spectrogram_params(fs: float, n: int) -> tuple[int, int]:
    window_s = 0.032 if fs >= 2000 else 1.0
    n_fft = 2 ** int(round(math.log2(max(16.0, fs * window_s))))
    n_fft = max(4, min(n_fft, 2 ** int(math.log2(n))))
    hop = max(1, n_fft // 4, math.ceil(n / 4000))
    return n_fft, hop


def plot_signal(signal, out_png, *, fs: float | None = None, start_s: float | None = None,
                end_s: float | None = None, channel: str | int | None = None,
                annotations: dict[str, Annotations] | None = None, spectrogram: bool = True,
                title: str | None = None, dpi: int = 110) -> Path:
    """Draw one channel's waveform (and spectrogram) with its annotations into a PNG.

    Parameters
    ----------
    signal : biosig.Signal or np.ndarray [shape=(n_samples,) or (channels, n_samples)]
        The recording; a Signal's own annotations (``signal.annotations``, e.g. WFDB ``.atr``)
        are drawn when present.
    out_png : str or PathLike
        Where to write the picture (written atomically).
    fs : float > 0
        Sampling rate in Hz of an array; may be omitted for a Signal.
    start_s, end_s : float, optional
        The time range in seconds from the recording's start; default all of it.
    channel : str or int, optional
        Channel name or index; default the first channel.
    annotations : dict of str to Annotations, optional
        More event sets to draw, by legend label, e.g. ``{"reference": ref, "detected": det}``.
        Point events (duration 0) are markers above the waveform, one row per set; events with
        a duration are shaded spans.
    spectrogram : bool
        Add a spectrogram (dB, 80 dB range) below the waveform, on the same time axis.
    title : str, optional
        Default: the file name, channel and time range.
    dpi : int

    Returns
    -------
    Path
        ``out_png``.
    """
    signal = as_signal(signal, fs)
    ch = _channel_index(signal, channel)
    start, end = _time_range(signal, start_s, end_s)
    fs = signal.fs
    a = int(round(start * fs))
    b = max(a + 1, min(signal.n_samples, int(round(end * fs))))
    y = np.asarray(signal.data[ch, a:b], dtype=np.float64)
    t = start + np.arange(y.size) / fs

    sets: list[tuple[str, Annotations]] = []
    if signal.annotations is not None and len(signal.annotations):
        sets.append((signal.annotations.source or "annotations", signal.annotations))
    for name, ann in (annotations or {}).items():
        if not isinstance(ann, Annotations):
            raise TypeError(f"annotations[{name!r}] is a {type(ann).__name__}, expected "
                            f"biosig.Annotations")
        sets.append((str(name), ann))

    n_rows = 2 if spectrogram and y.size >= 16 else 1
    fig = Figure(figsize=(12, 3.2 * n_rows + 0.6), dpi=dpi, layout="constrained")
    axes = fig.subplots(n_rows, 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [1.2] + [1] * (n_rows - 1)})[:, 0]
    ax = axes[0]
    if y.size > _MAX_LINE_SAMPLES:
        # min/max of 4000 bins drawn as steps held over each bin, so that the shaded band
        # contains every sample (a line through the bin starts would cut peaks off)
        n_bins = 4000
        edges = np.linspace(0, y.size, n_bins + 1).astype(np.int64)
        lo = np.minimum.reduceat(y, edges[:-1])
        hi = np.maximum.reduceat(y, edges[:-1])
        ax.fill_between(np.append(t[edges[:-1]], t[-1]), np.append(lo, lo[-1]),
                        np.append(hi, hi[-1]), step="post", color="C0", linewidth=0.4,
                        label="signal")
    else:
        ax.plot(t, y, color="C0", linewidth=0.7, label="signal")
    span = float(np.ptp(y)) or 1.0
    y_top = float(y.max())

    n_point_sets = 0
    for k, (name, ann) in enumerate(sets):
        view = ann.crop(start, end)
        color = f"C{(k + 1) % 10}"
        point = view.duration_s <= 0
        if point.any():
            onset = view.onset_s[point] + start
            idx = np.clip(np.round((onset - start) * fs).astype(np.int64), 0, y.size - 1)
            level = np.full(idx.size, y_top + (0.08 + 0.1 * n_point_sets) * span)
            ax.scatter(onset, level, marker=_MARKERS[n_point_sets % len(_MARKERS)], s=22,
                       color=color, label=f"{name} ({int(point.sum())})", zorder=3)
            ax.vlines(onset, y[idx], level, colors=color, linewidth=0.4, alpha=0.35)
            labels = [view.labels[i] for i in np.flatnonzero(point)]
            if idx.size <= _MAX_TEXT_LABELS:
                for x_s, lev, lab in zip(onset, level, labels):
                    if lab not in ("N", ""):
                        ax.annotate(lab, (x_s, lev), textcoords="offset points",
                                    xytext=(2, 4), fontsize=7, color=color)
            n_point_sets += 1
        spans = np.flatnonzero(~point)
        for j, i in enumerate(spans):
            t0 = view.onset_s[i] + start
            t1 = min(t0 + view.duration_s[i], end)
            ax.axvspan(t0, t1, color=color, alpha=0.12, linewidth=0,
                       label=f"{name} ({spans.size})" if j == 0 else None)
            ax.annotate(view.labels[i], (t0, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(2, -10), textcoords="offset points", fontsize=7, color=color)
    ax.set_ylim(float(y.min()) - 0.05 * span, y_top + (0.15 + 0.1 * n_point_sets) * span)
    unit = signal.units[ch] if signal.units[ch] else "a.u."
    ax.set_ylabel(f"{signal.channels[ch]} ({unit})")
    ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=min(4, 1 + len(sets)),
              fontsize=8, frameon=False, borderaxespad=0.2)
    ax.grid(True, linewidth=0.3, alpha=0.5)
    name = Path(signal.path).name if signal.path else "signal"
    ax.set_title(title or f"{name}  channel {signal.channels[ch]}  {fs:g} Hz  "
                          f"{start:.2f}-{end:.2f} s", fontsize=10, loc="left")

    if n_rows == 2:
        n_fft, hop = _spectrogram_params(fs, y.size)
        spec = power_to_db(power_spectrogram(y, n_fft=n_fft, hop_length=hop), ref="max",
                           top_db=80.0)
        sax = axes[1]
        im = sax.imshow(spec, origin="lower", aspect="auto", cmap="magma",
                        extent=(start - hop / (2 * fs), start + (spec.shape[-1] - 0.5) * hop / fs,
                                0.0, fs / 2), interpolation="nearest")
        sax.set_ylabel("frequency (Hz)")
        cax = sax.inset_axes((1.005, 0.0, 0.012, 1.0))
        fig.colorbar(im, cax=cax, label="dB re max")
        sax.set_title(f"spectrogram: n_fft {n_fft} ({n_fft / fs:.3g} s), hop {hop}",
                      fontsize=9)
    axes[-1].set_xlabel("time (s)")
    axes[-1].set_xlim(start, end)

    return save_png(fig, out_png, close=False)


def save_png(fig, path, *, dpi: float | None = None, close: bool = True) -> Path:
    """Write a matplotlib figure as PNG atomically (temporary file, then rename)."""
    out = Path(os.fspath(path))
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    if close:
        import matplotlib.pyplot as plt  # pyplot closes its own figures only
        plt.close(fig)
    return out
