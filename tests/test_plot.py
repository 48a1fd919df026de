"""biosig.plot.plot_signal: PNGs of waveform, spectrogram and annotations."""

from __future__ import annotations

import numpy as np
import pytest

import biosig
from biosig.errors import ConfigError
from biosig.plot import plot_signal
from biosig.signal import Annotations


@pytest.fixture(scope="module")
def mitdb_208(data_root):
    return biosig.load(data_root / "ecg/mitdb/208.hea").crop(0.0, 120.0)


def _image(path):
    import matplotlib.image
    return matplotlib.image.imread(path)


def test_plot_ecg_with_reference_and_detected_beats(tmp_path, mitdb_208):
    ref = mitdb_208.annotations
    detected = Annotations(ref.onset_s[5:] + 0.01, 0.0, ["N"] * (len(ref) - 5), source="det")
    out = plot_signal(mitdb_208, tmp_path / "sub" / "208.png", start_s=60, end_s=75,
                      channel="MLII", annotations={"detected": detected})
    img = _image(out)
    assert img.ndim == 3 and img.shape[0] > 400 and img.shape[1] > 1000
    assert img[..., :3].std() > 0.1                          # not a blank canvas
    assert [p.name for p in out.parent.iterdir()] == ["208.png"]   # written atomically


def test_plot_whole_long_record_uses_an_envelope(tmp_path, mitdb_208):
    out = plot_signal(mitdb_208, tmp_path / "all.png", channel=1, spectrogram=False)
    assert _image(out).shape[0] < _image(
        plot_signal(mitdb_208, tmp_path / "spec.png", end_s=5.0)).shape[0]


def test_plot_interval_annotations_eeg(tmp_path, data_root):
    sig = biosig.load(data_root / "eeg/eegmmidb/S001/S001R01.edf")
    events = Annotations([1.0, 4.0], [2.0, 1.5], ["T1", "T2"], source="test")
    out = plot_signal(sig, tmp_path / "eeg.png", channel="Fc5.", end_s=10.0,
                      annotations={"tasks": events})
    assert out.stat().st_size > 10_000


def test_plot_argument_errors(tmp_path, mitdb_208):
    with pytest.raises(ConfigError, match=r"channel 'II' not found; channels are \['MLII', 'V1'\]"):
        plot_signal(mitdb_208, tmp_path / "x.png", channel="II")
    with pytest.raises(ConfigError, match="channel index 5 out of range"):
        plot_signal(mitdb_208, tmp_path / "x.png", channel=5)
    with pytest.raises(ConfigError, match="start_s is 500, expected 0 <= start_s < the duration"):
        plot_signal(mitdb_208, tmp_path / "x.png", start_s=500.0)
    with pytest.raises(ConfigError, match="end_s is 1, expected more than start_s=2"):
        plot_signal(mitdb_208, tmp_path / "x.png", start_s=2.0, end_s=1.0)
    with pytest.raises(TypeError, match="expected biosig.Annotations"):
        plot_signal(mitdb_208, tmp_path / "x.png", annotations={"x": np.zeros(3)})
    assert not (tmp_path / "x.png").exists()
