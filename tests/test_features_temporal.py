"""Time-domain and wavelet statistics (biosig.features.temporal) and the EEG preset's
``time_features``: known answers on synthetic signals."""

import numpy as np
import pytest

from biosig.features import compute_features
from biosig.features.presets.summary import extract_features
from biosig.features.temporal import (
    hjorth,
    line_length,
    permutation_entropy,
    time_features,
    wavelet_band_statistics,
    zero_crossing_rate,
)

FS = 200.0


def _sine(f=5.0, amp=3.0, n=4000):
    return amp * np.sin(2 * np.pi * f * np.arange(n) / FS)


def test_hjorth_of_a_sine_is_its_variance_frequency_and_unit_complexity():
    act, mob, comp = hjorth(_sine())
    assert act == pytest.approx(4.5, rel=1e-3)
    assert mob == pytest.approx(2 * np.sin(np.pi * 5.0 / FS), rel=1e-3)   # first differences
    assert comp == pytest.approx(1.0, abs=2e-3)


def test_hjorth_of_white_noise_has_higher_mobility_than_a_slow_sine():
    noise = np.random.default_rng(0).standard_normal(4000)
    assert hjorth(noise)[1] == pytest.approx(np.sqrt(2), rel=0.02)   # var(diff) = 2 var


def test_line_length_and_zero_crossings_of_a_sine():
    assert line_length(_sine(), fs=FS) == pytest.approx(4 * 3.0 * 5.0, rel=1e-3)
    assert zero_crossing_rate(_sine(), fs=FS) == pytest.approx(10.0, rel=0.01)


def test_permutation_entropy_bounds():
    assert permutation_entropy(np.arange(200.0)) == 0.0
    noise = np.random.default_rng(1).standard_normal(50_000)
    assert permutation_entropy(noise, order=4) == pytest.approx(1.0, abs=2e-3)
    assert 0 < permutation_entropy(_sine(), order=4) < 0.5


@pytest.mark.parametrize("kwargs", [{"order": 1}, {"order": 9}, {"delay": 0}])
def test_permutation_entropy_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        permutation_entropy(np.arange(100.0), **kwargs)


def test_wavelet_energy_lands_in_the_band_of_the_tone():
    # fs 200 Hz: d1 50-100, d2 25-50, d3 12.5-25, d4 6.25-12.5, d5 3.1-6.25, a5 below
    values, names = wavelet_band_statistics(_sine(f=37.0), levels=5)
    energy = {n.split("_")[1]: v for n, v in zip(names, values) if n.endswith("_energy")}
    assert max(energy, key=energy.get) == "d2"
    assert sum(energy.values()) == pytest.approx(1.0)
    assert len(names) == 18


def test_time_features_keep_leading_axes_and_handle_a_flat_channel():
    x = np.stack([np.stack([_sine(), np.zeros(4000)])] * 3)              # (3, 2, 4000)
    values, names = time_features(x, fs=FS)
    assert values.shape == (3, 2, len(names)) and len(set(names)) == len(names)
    assert np.isfinite(values).all()
    flat = dict(zip(names, values[0, 1]))
    assert flat["hjorth_mobility"] == 0 and flat["kurtosis"] == 0 and flat["skewness"] == 0


def test_time_features_reject_too_short_input():
    with pytest.raises(ValueError, match="at least 3 samples"):
        time_features(np.zeros(2), fs=FS)


def test_eeg_preset_adds_time_features_per_channel_when_asked():
    x = np.random.default_rng(2).standard_normal((2, 4097))
    assert "time_features" not in compute_features(x, fs=173.61, modality="eeg").arrays
    fset = compute_features(x, fs=173.61, modality="eeg", time_features=True)
    assert fset["time_features"].shape == (2, len(fset.labels["statistic"]))
    assert fset.axes["time_features"] == ("channel", "statistic")
    row = extract_features(x, fs=173.61, modality="eeg", time_features=True)
    assert "time_features_ch1_hjorth_mobility" in row
    assert "relative_band_power_ch0_alpha" in row
    off = extract_features(x, fs=173.61, modality="eeg")
    assert not any(k.startswith("time_features") for k in off)
    assert set(off) < set(row)
