"""biosig.plot.plot_signal: PNGs of waveform, spectrogram and annotations."""

from __future__ import annotations

import numpy as np
import pytest

import biosig
from biosig.errors import ConfigError
from biosig.plot import plot_signal
from biosig.signal import Annotations


@pytest.fixture(scope="module")
def ecg_2min(mitdb_208):
    return mitdb_208.crop(0.0, 120.0)


@pytest.fixture
def drawn(monkeypatch):
    """The matplotlib Figures plot_signal saves, to look at what was drawn."""
    from matplotlib.figure import Figure
    figures = []
    save = Figure.savefig

    def keep(self, *args, **kwargs):
        figures.append(self)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return figures


def _image(path):
    import matplotlib.image
    return matplotlib.image.imread(path)


def test_plot_ecg_with_reference_and_detected_beats(tmp_path, ecg_2min):
    ref = ecg_2min.annotations
    detected = Annotations(ref.onset_s[5:] + 0.01, 0.0, ["N"] * (len(ref) - 5), source="det")
    out = plot_signal(ecg_2min, tmp_path / "sub" / "208.png", start_s=60, end_s=75,
                      channel="MLII", annotations={"detected": detected})
    img = _image(out)
    assert img.ndim == 3 and img.shape[0] > 400 and img.shape[1] > 1000
    assert img[..., :3].std() > 0.1                          # not a blank canvas
    assert [p.name for p in out.parent.iterdir()] == ["208.png"]   # written atomically


def test_plot_whole_long_record_uses_an_envelope(tmp_path, ecg_2min, drawn):
    """Over 20 000 samples in view the waveform is a min/max band: no long line is drawn, the
    band holds every sample, and its edges are the bins' minima and maxima (computed here with
    numpy over the 4000 bins)."""
    from matplotlib.path import Path as MplPath
    plot_signal(ecg_2min, tmp_path / "all.png", channel=1, spectrogram=False)
    ax = drawn[-1].axes[0]
    y = ecg_2min.data[1].astype(np.float64)
    t = np.arange(y.size) / ecg_2min.fs
    assert y.size == 43200
    assert all(len(line.get_xdata()) < 20_000 for line in ax.get_lines())
    bands = [c for c in ax.collections if c.get_label() == "signal"]
    assert len(bands) == 1
    vertices = np.concatenate([p.vertices for p in bands[0].get_paths()])
    edges = np.linspace(0, y.size, 4001).astype(np.int64)
    bins = [slice(edges[k], edges[k + 1]) for k in range(4000)]
    # the samples that could stick out: each bin's lowest and highest (checking all 43200
    # against the polygon takes seconds)
    extreme = np.array([b.start + f(y[b]) for b in bins for f in (np.argmin, np.argmax)])
    points = np.column_stack([t[extreme], y[extreme]])
    polygon = MplPath(vertices)
    inside = polygon.contains_points(points, radius=1e-9) | \
        polygon.contains_points(points, radius=-1e-9)
    assert inside.all(), f"{(~inside).sum()} bin extremes outside the drawn envelope"
    per_bin = {float(v) for b in bins for v in (y[b].min(), y[b].max())}
    assert {float(v) for v in vertices[:, 1]} == per_bin
    # a short view is drawn as a line of every sample instead
    plot_signal(ecg_2min, tmp_path / "short.png", channel=1, end_s=5.0, spectrogram=False)
    line = drawn[-1].axes[0].get_lines()[0]
    np.testing.assert_array_equal(line.get_ydata(), y[:1800])


def test_plot_interval_annotations_eeg(tmp_path, data_root):
    sig = biosig.load(data_root / "eeg/eegmmidb/S001/S001R01.edf")
    events = Annotations([1.0, 4.0], [2.0, 1.5], ["T1", "T2"], source="test")
    out = plot_signal(sig, tmp_path / "eeg.png", channel="Fc5.", end_s=10.0,
                      annotations={"tasks": events})
    assert out.stat().st_size > 10_000


def test_plot_array_with_fs_equals_signal(tmp_path, drawn):
    """plot_signal takes an array with fs= as well as a Signal, and draws the same."""
    from biosig.signal import Signal
    x = np.sin(2 * np.pi * 3.0 * np.arange(2000) / 250.0).astype(np.float32)
    plot_signal(x, tmp_path / "a.png", fs=250.0)
    plot_signal(Signal(x, 250.0, ["ch0"], [""]), tmp_path / "s.png")
    lines = [f.axes[0].get_lines()[0] for f in drawn]
    np.testing.assert_array_equal(lines[0].get_xydata(), lines[1].get_xydata())
    np.testing.assert_allclose(lines[0].get_xdata()[[0, -1]], [0.0, 1999 / 250.0])
    assert drawn[0].axes[1].get_ylim()[1] == 125.0          # spectrogram up to Nyquist
    with pytest.raises(ValueError, match="pass its sampling rate as fs="):
        plot_signal(x, tmp_path / "b.png")
    assert not (tmp_path / "b.png").exists()


def test_plot_argument_errors(tmp_path, ecg_2min):
    with pytest.raises(ConfigError, match=r"channel 'II' not found; channels are \['MLII', 'V1'\]"):
        plot_signal(ecg_2min, tmp_path / "x.png", channel="II")
    with pytest.raises(ConfigError, match="channel index 5 out of range"):
        plot_signal(ecg_2min, tmp_path / "x.png", channel=5)
    with pytest.raises(ConfigError, match="start_s is 500, expected 0 <= start_s < the duration"):
        plot_signal(ecg_2min, tmp_path / "x.png", start_s=500.0)
    with pytest.raises(ConfigError, match="end_s is 1, expected more than start_s=2"):
        plot_signal(ecg_2min, tmp_path / "x.png", start_s=2.0, end_s=1.0)
    with pytest.raises(TypeError, match="expected biosig.Annotations"):
        plot_signal(ecg_2min, tmp_path / "x.png", annotations={"x": np.zeros(3)})
    assert not (tmp_path / "x.png").exists()
