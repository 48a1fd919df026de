"""Heart rate and HRV: known answers, ectopic handling, agreement with NeuroKit2."""

from __future__ import annotations

import numpy as np
import pytest

from biosig.ecg import ecg_rate, hrv, hrv_frequency, hrv_time, rr_intervals
from biosig.errors import ConfigError


def _beats(rr_ms, fs=1000.0):
    return np.r_[0, np.cumsum(np.round(np.asarray(rr_ms) * fs / 1000.0))].astype(np.int64)


def _modulated(duration_s=300.0, fs=1000.0, lf_amp=30.0, hf_amp=15.0):
    t, peaks = 0.0, [0]
    while t < duration_s:
        rr = 800 + lf_amp * np.sin(2 * np.pi * 0.1 * t) + hf_amp * np.sin(2 * np.pi * 0.25 * t)
        t += rr / 1000
        peaks.append(int(round(t * fs)))
    return np.asarray(peaks)


def test_ecg_rate():
    p = _beats([1000, 500, 750], fs=100.0)
    np.testing.assert_allclose(ecg_rate(p, fs=100.0), [60, 60, 120, 80])
    per_sample = ecg_rate(p, fs=100.0, n_samples=int(p[-1]) + 10)
    assert per_sample.shape == (int(p[-1]) + 10,)
    assert per_sample[0] == 60 and per_sample[-1] == 80
    assert np.isnan(ecg_rate(np.array([5]), fs=100.0)).all()
    with pytest.raises(ValueError, match=r"peaks are not strictly increasing \(peaks\[1\] = 3 "
                                         r"after 5\)"):
        ecg_rate(np.array([5, 3]), fs=100.0)
    with pytest.raises(ValueError, match=r"fs is 0 Hz, expected a positive"):
        ecg_rate(p, fs=0)
    with pytest.raises(ValueError, match=r"fs is -1 Hz, expected a positive"):
        hrv_time(p, fs=-1)


def test_time_domain_known_answer():
    rr = np.array([800, 850, 800, 900, 820, 780], dtype=float)
    h = hrv_time(_beats(rr), fs=1000.0, ectopic="none")
    d = np.diff(rr)
    assert h.mean_nn_ms == pytest.approx(rr.mean())
    assert h.sdnn_ms == pytest.approx(rr.std(ddof=1))
    assert h.rmssd_ms == pytest.approx(np.sqrt(np.mean(d ** 2)))
    assert h.pnn50 == pytest.approx(100 * np.mean(np.abs(d) > 50))


def test_ectopic_beat_removed():
    rr = np.full(40, 800.0)
    rr[20], rr[21] = 480.0, 1120.0  # premature beat with compensatory pause
    for rule in ("median", "malik"):
        r = rr_intervals(_beats(rr), fs=1000.0, ectopic=rule)
        assert not r.valid[20]
        h = hrv_time(_beats(rr), fs=1000.0, ectopic=rule)
        assert h.sdnn_ms == pytest.approx(0.0, abs=1e-9)
        assert h.rmssd_ms == pytest.approx(0.0, abs=1e-9)
    raw = hrv_time(_beats(rr), fs=1000.0, ectopic="none")
    assert raw.rmssd_ms > 50
    with pytest.raises(ConfigError, match=r"ectopic: expected"):
        rr_intervals(_beats(rr), fs=1000.0, ectopic="kubios")


@pytest.mark.parametrize("method", ["welch", "lomb"])
def test_frequency_domain_known_answer(method):
    # LF sinusoid of 30 ms (power 450 ms^2) and HF of 15 ms (112.5 ms^2)
    f = hrv_frequency(_modulated(600.0), fs=1000.0, method=method, ectopic="none")
    assert f.lf_ms2 == pytest.approx(450.0, rel=0.05)
    assert f.hf_ms2 == pytest.approx(112.5, rel=0.05)
    assert f.lf_hf == pytest.approx(4.0, rel=0.05)
    assert f.lf_nu + f.hf_nu == pytest.approx(100.0)


def test_frequency_too_short_is_nan():
    f = hrv_frequency(_beats([800] * 20), fs=1000.0)
    assert np.isnan(f.lf_ms2) and np.isnan(f.lf_hf)
    with pytest.raises(ConfigError, match=r"method: expected 'welch' or 'lomb'"):
        hrv_frequency(_modulated(), fs=1000.0, method="fft")


def test_against_neurokit2():
    nk = pytest.importorskip("neurokit2")
    rng = np.random.default_rng(0)
    peaks = _modulated(300.0)
    peaks = peaks + rng.integers(-3, 4, peaks.size)  # a little jitter, no ectopic beats
    ours = hrv(peaks, fs=1000.0, ectopic="none")
    t = nk.hrv_time(peaks, sampling_rate=1000)
    assert ours.time.mean_nn_ms == pytest.approx(t["HRV_MeanNN"].iloc[0], rel=1e-9)
    assert ours.time.sdnn_ms == pytest.approx(t["HRV_SDNN"].iloc[0], rel=1e-9)
    assert ours.time.rmssd_ms == pytest.approx(t["HRV_RMSSD"].iloc[0], rel=1e-9)
    assert ours.time.pnn50 == pytest.approx(t["HRV_pNN50"].iloc[0], rel=1e-9)
    # spectra: different interpolation and PSD settings; the LF/HF balance agrees
    f = nk.hrv_frequency(peaks, sampling_rate=1000, psd_method="welch")
    assert ours.frequency.lf_hf == pytest.approx(f["HRV_LFHF"].iloc[0], rel=0.15)


def test_lomb_against_neurokit2():
    nk = pytest.importorskip("neurokit2")
    pytest.importorskip("astropy")  # NeuroKit2's Lomb-Scargle needs it
    peaks = _modulated(300.0)
    ours = hrv_frequency(peaks, fs=1000.0, method="lomb", ectopic="none")
    f = nk.hrv_frequency(peaks, sampling_rate=1000, psd_method="lomb")
    assert ours.lf_hf == pytest.approx(f["HRV_LFHF"].iloc[0], rel=0.15)
