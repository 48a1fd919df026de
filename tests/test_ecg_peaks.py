"""QRS detection: kernels against references, detection rules on signals with known answers,
accuracy on MIT-BIH records 100 and 208."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from biosig.ecg import _kernels, ecg_clean, ecg_peaks, ecg_simulate, match_beats
from biosig.ecg._common import filtfilt_lead
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
    got = filtfilt_lead(sos, x, overlap=int(2 * fs))
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


def test_nan_samples_are_a_data_problem():
    with pytest.raises(InputError, match=r"signal: 1 of 1001 samples are NaN"):
        ecg_peaks(np.r_[np.zeros(500), np.nan, np.zeros(500)], fs=250)
    with pytest.raises(InputError, match=r"signal: ECG has 10 samples, too short to filter"):
        ecg_clean(np.zeros(10), fs=250)


def test_bad_arguments():
    x = np.zeros(1000)
    with pytest.raises(ValueError, match=r"signal has shape \(2, 1000\), expected one lead"):
        ecg_peaks(np.zeros((2, 1000)), fs=250)
    with pytest.raises(ValueError, match=r"fs is 20 Hz, expected at least 50 Hz for ECG "
                                         r"analysis"):
        ecg_peaks(x, fs=20)
    with pytest.raises(ValueError, match=r"fs is 20 Hz, expected at least 50 Hz"):
        ecg_clean(x, fs=20)
    with pytest.raises(ConfigError, match=r"method: unknown QRS detector 'xqrs'"):
        ecg_peaks(x, fs=250, method="xqrs")
    with pytest.raises(ConfigError, match=r"band_hz: expected 0 < low < high"):
        ecg_peaks(x, fs=250, band_hz=(15, 5))


def _band_power(x, fs, lo, hi):
    """Power of ``x`` in ``[lo, hi)`` Hz from scipy's Welch periodogram (40 s segments)."""
    f, pxx = scipy.signal.welch(np.asarray(x, dtype=np.float64), fs=fs, nperseg=int(40 * fs))
    keep = (f >= lo) & (f < hi)
    return float(pxx[keep].sum() * (f[1] - f[0]))


def test_ecg_clean_removes_wander_keeps_shape():
    """The same simulated ECG with and without a 1 mV, 0.15 Hz baseline wander (noise off, so
    the difference is the wander alone): cleaning takes the power below 0.3 Hz down by more
    than 35 dB, leaves under 1 % of the wander, and keeps the QRS band and the waveform."""
    fs = 500.0
    clean = ecg_simulate(duration_s=60, fs=fs, wander_mv=0.0, noise_std_mv=0.0, seed=1)
    sim = ecg_simulate(duration_s=60, fs=fs, wander_mv=1.0, noise_std_mv=0.0, seed=1)
    wander = sim.signal.astype(np.float64) - clean.signal
    assert np.abs(wander).max() == pytest.approx(1.0, abs=1e-3)
    y = ecg_clean(sim.signal, fs=fs)
    assert y.dtype == np.float32 and y.shape == sim.signal.shape
    mid = slice(int(5 * fs), -int(5 * fs))
    # wander removed: band power below 0.3 Hz, measured by scipy
    before, after = _band_power(sim.signal, fs, 0.0, 0.3), _band_power(y, fs, 0.0, 0.3)
    assert before > 0.4                                  # a 1 mV sine holds 0.5 mV^2
    assert 10 * np.log10(after / before) < -35.0
    # ... and what is left of it (the filter is linear) is under 1 % of its amplitude
    residual = y.astype(np.float64) - ecg_clean(clean.signal, fs=fs)
    assert np.abs(residual[mid]).max() < 0.01
    # shape kept: the QRS energy band within 5 %, the waveform correlates with the clean ECG
    qrs_kept = _band_power(y, fs, 5.0, 15.0) / _band_power(clean.signal, fs, 5.0, 15.0)
    assert 0.95 < qrs_kept < 1.05
    assert np.corrcoef(y[mid], clean.signal[mid])[0, 1] > 0.99
    both = ecg_clean(np.stack([sim.signal, sim.signal]), fs=fs)
    np.testing.assert_allclose(both[1], y, atol=1e-6)  # batch consistency


def test_signal_or_array_with_fs():
    """ecg_clean and ecg_peaks take a biosig.Signal (its fs) as well as an array with fs=."""
    from biosig.signal import Signal
    fs = 250.0
    sim = ecg_simulate(duration_s=30, fs=fs, seed=3)
    sig = Signal(sim.signal, fs, ["II"], ["mV"])
    cleaned = ecg_clean(sig, powerline_hz=50.0)
    assert isinstance(cleaned, Signal) and cleaned.channels == ["II"] and cleaned.fs == fs
    np.testing.assert_array_equal(cleaned.data[0], ecg_clean(sim.signal, fs=fs,
                                                             powerline_hz=50.0))
    from_signal, from_array = ecg_peaks(sig), ecg_peaks(sim.signal, fs=fs)
    np.testing.assert_array_equal(from_signal.samples, from_array.samples)
    assert from_signal.fs == fs and len(from_signal) == len(sim.r_peaks)
    two = Signal(np.stack([sim.signal, sim.signal]), fs, ["I", "II"], ["mV", "mV"])
    with pytest.raises(ValueError, match=r"expected one lead .*Signal.pick"):
        ecg_peaks(two)
    np.testing.assert_array_equal(ecg_peaks(two.pick(["II"])).samples, from_array.samples)
    with pytest.raises(ValueError, match="pass its sampling rate as fs="):
        ecg_peaks(sim.signal)


# ----------------------------------------------------------------------------- real data

@pytest.mark.parametrize("record", ["100", "208"])
def test_mitdb_accuracy(request, record):
    from biosig.ecg import BEAT_LABELS
    sig = request.getfixturevalue(f"mitdb_{record}").pick([0])   # conftest, loaded once
    peaks = ecg_peaks(sig)
    ann = sig.annotations
    ref = ann.onset_s[[lab in BEAT_LABELS for lab in ann.labels]]
    c = match_beats(ref, peaks.times_s, window_s=0.15).counts
    assert c.se >= 0.995 and c.ppv >= 0.995, c
