"""QRS detection: kernels against references, detection rules on signals with known answers,
accuracy on MIT-BIH records 100 and 208."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from biosig.ecg import _kernels, ecg_clean, ecg_peaks, ecg_simulate, match_beats
from biosig.ecg.clean import _filtfilt_lead
from biosig.errors import ConfigError, InputError


def _spikes(n, fs, at_s, widths_s, amps):
    t = np.arange(n) / fs
    x = np.zeros(n)
    for c, w, a in zip(at_s, widths_s, amps):
        x += a * np.exp(-0.5 * ((t - c) / w) ** 2)
    return x


# ----------------------------------------------------------------------------- kernels

def test_energy_kernel_matches_numpy():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000)
    width = 7
    slope, mwi = _kernels.energy_kernel(x, width)
    d = np.zeros_like(x)
    d[2:-2] = (2 * x[4:] + x[3:-1] - x[1:-3] - 2 * x[:-4]) / 8
    np.testing.assert_allclose(slope, np.abs(d), atol=1e-12)
    sq = np.pad(d ** 2, (width // 2, width - width // 2 - 1))
    ref = np.convolve(sq, np.ones(width) / width, mode="valid")
    np.testing.assert_allclose(mwi, ref, atol=1e-12)


def test_locate_raw_kernel_matches_python():
    rng = np.random.default_rng(1)
    x = np.cumsum(rng.standard_normal(2000)) * 0.01 + _spikes(2000, 100.0, [3, 7.5, 7.8, 15],
                                                               [0.02] * 4, [1, 1, 2, -1.5])
    centres = np.array([305, 748, 777, 1503], dtype=np.int64)
    got = _kernels.locate_raw_kernel(x, centres, 8, 2, 50)
    ref = _kernels.locate_raw_kernel.py_func(x, centres, 8, 2, 50)
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_array_equal(got, [300, 780, 1500])  # 750/780 merged: the larger wins


def test_detect_kernel_compiled_equals_interpreted():
    sim = ecg_simulate(duration_s=20, fs=250, pvc_fraction=0.2, seed=3)
    sos = scipy.signal.butter(2, [5, 15], btype="band", fs=250, output="sos")
    bp = scipy.signal.sosfiltfilt(sos, sim.signal.astype(np.float64))
    slope, mwi = _kernels.energy_kernel(bp, 38)
    args = (mwi, slope, 50, 90, 19, 2000, 1.66, 0.5)
    np.testing.assert_array_equal(_kernels.detect_kernel(*args),
                                  _kernels.detect_kernel.py_func(*args))


def test_chunked_zero_phase_equals_scipy_inside():
    rng = np.random.default_rng(2)
    fs = 360.0
    x = rng.standard_normal(200_000)
    sos = scipy.signal.butter(2, [5, 15], btype="band", fs=fs, output="sos")
    ref = scipy.signal.sosfiltfilt(sos, x)
    got = _filtfilt_lead(sos, x, overlap=int(2 * fs))
    assert got.shape == x.shape
    inner = slice(int(2 * fs), -int(2 * fs))
    np.testing.assert_allclose(got[inner], ref[inner], atol=1e-9)
    assert np.max(np.abs(got - ref)) < 0.1 * np.max(np.abs(ref))  # ends: other extension


# ------------------------------------------------------------------------- known answers

@pytest.mark.parametrize("fs", [100.0, 128.0, 250.0, 360.0, 500.0, 1000.0])
@pytest.mark.parametrize("pvc_fraction", [0.0, 0.2])
def test_simulated_beats_found_at_any_rate(fs, pvc_fraction):
    sim = ecg_simulate(duration_s=60, fs=fs, pvc_fraction=pvc_fraction, seed=7)
    peaks = ecg_peaks(sim.signal, fs=fs)
    m = match_beats(sim.r_peaks / fs, peaks.times_s, window_s=0.15)
    assert (m.counts.fn, m.counts.fp) == (0, 0)
    err_s = np.abs(peaks.samples[m.test_index] - sim.r_peaks[m.ref_index]) / fs
    assert err_s.max() <= 0.015  # R peak located within 15 ms


def test_scale_and_offset_invariant():
    sim = ecg_simulate(duration_s=30, fs=250, seed=2)
    a = ecg_peaks(sim.signal, fs=250).samples
    b = ecg_peaks(1000 * sim.signal.astype(np.float64) + 5, fs=250).samples
    np.testing.assert_array_equal(a, b)


def test_refractory_period_keeps_one_peak_per_complex():
    fs = 250.0
    beats = np.arange(1.0, 20.0, 0.8)
    # every complex has a notched second peak 60 ms later (e.g. RSR')
    x = _spikes(int(21 * fs), fs, np.r_[beats, beats + 0.06], [0.012] * (2 * beats.size),
                np.r_[np.ones(beats.size), 0.8 * np.ones(beats.size)])
    peaks = ecg_peaks(x, fs=fs)
    assert len(peaks) == beats.size
    np.testing.assert_allclose(peaks.times_s, beats, atol=0.01)


def test_t_wave_not_counted():
    fs = 360.0
    beats = np.arange(1.0, 30.0, 1.0)
    # tall, slow T waves 250 ms after each R: their energy passes the threshold, their slope
    # does not pass the T-wave test
    x = _spikes(int(31 * fs), fs, np.r_[beats, beats + 0.25], np.r_[[0.012] * beats.size,
                [0.04] * beats.size], np.r_[np.ones(beats.size), 1.0 * np.ones(beats.size)])
    assert len(ecg_peaks(x, fs=fs, twave_s=0.0)) == 2 * beats.size  # without the test
    peaks = ecg_peaks(x, fs=fs)
    np.testing.assert_allclose(peaks.times_s, beats, atol=0.01)


def test_searchback_recovers_small_beat():
    fs = 360.0
    beats = np.arange(1.0, 40.0, 0.8)
    amps = np.ones(beats.size)
    small = [20, 35]
    amps[small] = 0.38  # energy 0.14 of the others: under the threshold, found by search-back
    x = _spikes(int(41 * fs), fs, beats, [0.012] * beats.size, amps)
    x += 0.003 * np.random.default_rng(0).standard_normal(x.size)
    assert len(ecg_peaks(x, fs=fs, searchback_factor=1e9)) == beats.size - len(small)
    peaks = ecg_peaks(x, fs=fs)
    np.testing.assert_allclose(peaks.times_s, beats, atol=0.01)


def test_flat_and_short_signals():
    assert len(ecg_peaks(np.zeros(10_000), fs=250)) == 0
    assert len(ecg_peaks(np.ones(100), fs=250)) == 0  # under one second


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 1000)), r"signal: expected one lead"),
    (np.r_[np.zeros(500), np.nan, np.zeros(500)], r"signal: 1 of 1001 samples are NaN"),
])
def test_bad_signal_errors(bad, match):
    with pytest.raises(InputError, match=match):
        ecg_peaks(bad, fs=250)


def test_bad_arguments():
    x = np.zeros(1000)
    with pytest.raises(InputError, match=r"fs: sampling rate 20.0 Hz is too low"):
        ecg_peaks(x, fs=20)
    with pytest.raises(ConfigError, match=r"method: unknown QRS detector 'xqrs'"):
        ecg_peaks(x, fs=250, method="xqrs")
    with pytest.raises(ConfigError, match=r"band_hz: expected 0 < low < high"):
        ecg_peaks(x, fs=250, band_hz=(15, 5))


def test_ecg_clean_removes_wander_keeps_shape():
    fs = 500.0
    sim = ecg_simulate(duration_s=20, fs=fs, wander_mv=1.0, noise_std_mv=0.0, seed=1)
    y = ecg_clean(sim.signal, fs=fs)
    assert y.dtype == np.float32 and y.shape == sim.signal.shape
    t = np.arange(y.size) / fs
    lowband = np.abs(np.fft.rfft(y))[np.fft.rfftfreq(y.size, 1 / fs) < 0.2]
    assert lowband.max() < 0.05 * np.abs(np.fft.rfft(sim.signal))[1:int(0.2 * 20)].max() + 1e-3
    both = ecg_clean(np.stack([sim.signal, sim.signal]), fs=fs)
    np.testing.assert_allclose(both[1], y, atol=1e-6)  # batch consistency
    del t


# ----------------------------------------------------------------------------- real data

@pytest.mark.parametrize("record", ["100", "208"])
def test_mitdb_accuracy(data_root, record):
    import biosig
    from biosig.ecg import BEAT_LABELS
    path = data_root / "ecg" / "mitdb" / f"{record}.hea"
    sig = biosig.load(path, channels=[0])
    peaks = ecg_peaks(sig.data[0], fs=sig.fs)
    ann = sig.annotations
    ref = ann.onset_s[[lab in BEAT_LABELS for lab in ann.labels]]
    c = match_beats(ref, peaks.times_s, window_s=0.15).counts
    assert c.se >= 0.995 and c.ppv >= 0.995, c
