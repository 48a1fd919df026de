"""numba filters against scipy (to 1e-10 in float64), streaming equals one-shot, known answers."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.signal

from biosig.dsp import (
    SosFilter,
    bandpass,
    butter_sos,
    envelope_hilbert,
    envelope_homomorphic,
    highpass,
    lowpass,
    moving_window_integration,
    notch,
    remove_baseline,
    resample,
    sosfilt,
    sosfiltfilt,
)
from biosig.errors import InputError

RNG = np.random.default_rng(1234)


@pytest.mark.parametrize("shape", [(1000,), (1, 1000), (3, 1000), (8, 777), (11, 1200),
                                   (2, 3, 900), (17, 64)])
@pytest.mark.parametrize("btype,cut,order", [("bandpass", (0.5, 40.0), 4),
                                             ("highpass", 0.5, 2), ("lowpass", 25.0, 6),
                                             ("bandstop", (45.0, 55.0), 3)])
def test_sosfiltfilt_equals_scipy(shape, btype, cut, order):
    sos = butter_sos(btype, cut, fs=360.0, order=order)
    x = RNG.standard_normal(shape)
    y = sosfiltfilt(sos, x)
    np.testing.assert_allclose(y, scipy.signal.sosfiltfilt(sos, x), rtol=0, atol=1e-10)
    np.testing.assert_allclose(sosfilt(sos, x), scipy.signal.sosfilt(sos, x), rtol=0, atol=1e-10)


@pytest.mark.parametrize("padtype", ["odd", "even", "constant", None])
@pytest.mark.parametrize("padlen", [None, 0, 5, 100])
def test_sosfiltfilt_padding_equals_scipy(padtype, padlen):
    sos = butter_sos("bandpass", (1.0, 30.0), fs=250.0)
    x = RNG.standard_normal((5, 600))
    ref = scipy.signal.sosfiltfilt(sos, x, padtype=padtype, padlen=padlen)
    np.testing.assert_allclose(sosfiltfilt(sos, x, padtype=padtype, padlen=padlen), ref,
                               rtol=0, atol=1e-10)


def test_sosfilt_with_state_equals_scipy():
    sos = butter_sos("lowpass", 40.0, fs=360.0, order=4)
    x = RNG.standard_normal((9, 500))
    zi = RNG.standard_normal((9, sos.shape[0], 2))
    y, zf = sosfilt(sos, x, zi=zi)
    y_ref, zf_ref = scipy.signal.sosfilt(sos, x, zi=zi.transpose(1, 0, 2))
    np.testing.assert_allclose(y, y_ref, atol=1e-12, rtol=0)
    np.testing.assert_allclose(zf, zf_ref.transpose(1, 0, 2), atol=1e-12, rtol=0)


def test_dtype_preserved_and_float32_close():
    sos = butter_sos("bandpass", (0.5, 40.0), fs=360.0)
    x = RNG.standard_normal((4, 2000)).astype(np.float32)
    y = sosfiltfilt(sos, x)
    assert y.dtype == np.float32 and y.shape == x.shape
    ref = scipy.signal.sosfiltfilt(sos, x.astype(np.float64))
    np.testing.assert_allclose(y, ref, atol=1e-5)
    assert sosfiltfilt(sos, x.astype(np.int16)).dtype == np.float64


@pytest.mark.parametrize("chunk", [1, 7, 100, 333, 1000])
@pytest.mark.parametrize("initial", ["zeros", "steady"])
def test_streaming_equals_one_shot(chunk, initial):
    sos = butter_sos("bandpass", (0.5, 40.0), fs=360.0)
    x = RNG.standard_normal((3, 2500))
    f = SosFilter(sos, initial=initial)
    y = np.concatenate([f.process(x[:, a:a + chunk]) for a in range(0, x.shape[1], chunk)], -1)
    zi = None
    if initial == "steady":
        zi = scipy.signal.sosfilt_zi(sos)[None] * x[:, :1, None]
        ref, _ = sosfilt(sos, x, zi=zi)
    else:
        ref = scipy.signal.sosfilt(sos, x)
    np.testing.assert_allclose(y, ref, atol=1e-12, rtol=0)
    f.reset()
    assert f.state is None


def test_streaming_rejects_changed_channels():
    f = SosFilter(butter_sos("lowpass", 10.0, fs=100.0))
    f.process(np.zeros((2, 10)))
    with pytest.raises(ValueError, match=r"chunk has leading shape \(3,\), expected the "
                                         r"stream's \(2,\)"):
        f.process(np.zeros((3, 10)))


def test_bandpass_known_answer():
    fs = 500.0
    t = np.arange(int(10 * fs)) / fs
    inside = np.sin(2 * np.pi * 10 * t)
    outside = np.sin(2 * np.pi * 0.05 * t) + np.sin(2 * np.pi * 120 * t)
    y = bandpass(inside + outside, fs=fs, band_hz=(5.0, 20.0))
    mid = slice(1000, -1000)
    np.testing.assert_allclose(y[mid], inside[mid], atol=0.02)


def test_highpass_lowpass_and_baseline():
    fs = 360.0
    t = np.arange(int(20 * fs)) / fs
    ecg_like = np.sin(2 * np.pi * 5 * t)
    wander = 2.0 * np.sin(2 * np.pi * 0.1 * t)
    mid = slice(2000, -2000)
    for method in ("highpass", "median"):
        y = remove_baseline(ecg_like + wander, fs=fs, method=method)
        assert np.abs(y[mid] - ecg_like[mid]).max() < (0.1 if method == "highpass" else 0.35)
    y = highpass(ecg_like + wander, fs=fs, cutoff_hz=1.0)
    assert np.abs(y[mid] - ecg_like[mid]).max() < 0.05
    y = lowpass(ecg_like + np.sin(2 * np.pi * 150 * t), fs=fs, cutoff_hz=40.0)
    assert np.abs(y[mid] - ecg_like[mid]).max() < 0.02


@pytest.mark.parametrize("mains", [50.0, 60.0])
def test_notch_removes_mains_and_harmonics(mains):
    fs = 500.0
    t = np.arange(int(10 * fs)) / fs
    clean = np.sin(2 * np.pi * 7 * t)
    hum = 0.5 * np.sin(2 * np.pi * mains * t) + 0.3 * np.sin(2 * np.pi * 2 * mains * t)
    y = notch(clean + hum, fs=fs, powerline_hz=mains)
    mid = slice(1500, -1500)
    assert np.abs(y[mid] - clean[mid]).max() < 0.02
    y1 = notch(clean + hum, fs=fs, powerline_hz=mains, harmonics=False)
    assert np.abs(y1[mid] - clean[mid]).max() > 0.2  # the harmonic stays


def test_envelopes():
    fs = 4000.0
    t = np.arange(int(2 * fs)) / fs
    am = 1.0 + 0.5 * np.sin(2 * np.pi * 1.5 * t)
    x = am * np.sin(2 * np.pi * 200 * t)
    mid = slice(800, -800)
    np.testing.assert_allclose(envelope_hilbert(x)[mid], am[mid], atol=0.01)
    env = envelope_homomorphic(x, fs=fs, cutoff_hz=8.0)
    np.testing.assert_allclose(env[mid], am[mid], rtol=0.05)
    assert envelope_homomorphic(x.astype(np.float32), fs=fs).dtype == np.float32


def test_moving_window_integration_known_answer():
    x = RNG.standard_normal((3, 300000))
    y = moving_window_integration(x, fs=100.0, window_s=0.3)
    w = 30
    ref = np.convolve(x[1], np.ones(w) / w)[: x.shape[1]]
    np.testing.assert_allclose(y[1], ref, atol=1e-10)


def test_resample_anti_aliasing_and_length():
    fs = 1000.0
    t = np.arange(int(4 * fs)) / fs
    tone_kept = np.sin(2 * np.pi * 40 * t)
    tone_aliased = np.sin(2 * np.pi * 180 * t)  # above the new Nyquist (125 Hz): must vanish
    y = resample((tone_kept + tone_aliased).astype(np.float32), fs=fs, target_fs=250.0)
    assert y.dtype == np.float32 and y.shape == (1000,)
    t2 = np.arange(1000) / 250.0
    mid = slice(100, -100)
    np.testing.assert_allclose(y[mid], np.sin(2 * np.pi * 40 * t2)[mid], atol=0.02)
    bonn = resample(RNG.standard_normal((2, 4097)), fs=173.61, target_fs=128.0)
    assert bonn.shape == (2, int(np.ceil(4097 * 128 / 173.61)))


@pytest.mark.parametrize("btype,cutoff,fs,match", [
    ("bandpass", (40.0, 0.5), 360.0,
     r"band_hz is \(40.0, 0.5\) Hz, expected 0 < low < high < the Nyquist frequency 180 Hz"),
    ("lowpass", 200.0, 360.0, r"cutoff_hz is 200.0 Hz, expected 0 < cutoff < the Nyquist"),
    ("lowpass", 10.0, 0.0, r"fs is 0 Hz, expected a positive finite sampling rate"),
    ("lowpass", 10.0, None, r"fs is None, expected a sampling rate in Hz"),
    ("comb", 10.0, 100.0, r"btype is 'comb', expected one of"),
    ("bandpass", 10.0, 100.0, r"band_hz is 10.0: bandpass needs a \(low, high\) pair"),
])
def test_design_errors_are_value_errors_naming_the_argument(btype, cutoff, fs, match):
    with pytest.raises(ValueError, match=match) as e:
        butter_sos(btype, cutoff, fs=fs)
    assert not isinstance(e.value, InputError)  # an argument mistake, not a data problem


def test_argument_errors_of_the_filters():
    x = np.zeros(1000)
    with pytest.raises(ValueError, match=r"powerline_hz is 300.0 Hz, expected 0 < "
                                         r"powerline_hz < the Nyquist frequency 250 Hz"):
        notch(x, fs=500.0, powerline_hz=300.0)
    with pytest.raises(ValueError, match=r"method is 'mean', expected 'highpass' or 'median'"):
        remove_baseline(x, fs=500.0, method="mean")
    with pytest.raises(ValueError, match=r"window_s is 0.001 s, shorter than one sample"):
        moving_window_integration(x, fs=100.0, window_s=0.001)
    with pytest.raises(ValueError, match=r"target_fs is -1 Hz, expected a positive"):
        resample(x, fs=100.0, target_fs=-1)
    with pytest.raises(ValueError, match=r"signal is a ndarray: pass its sampling rate as fs="):
        bandpass(x, band_hz=(1.0, 10.0))
    with pytest.raises(TypeError, match="positional"):   # the band has one keyword: band_hz
        butter_sos("bandpass", cutoff_hz=(1.0, 10.0), fs=100.0)


def test_too_short_for_zero_phase_is_a_data_problem():
    sos = butter_sos("bandpass", (0.5, 40.0), fs=360.0)
    with pytest.raises(InputError, match=r"signal: 10 samples; zero-phase filtering with this "
                                         r"filter needs more than padlen=27"):
        sosfiltfilt(sos, np.zeros(10))


def test_signal_in_signal_out():
    """Every function with fs= takes a biosig.Signal too, and gives one back with the same
    channels, units and annotations; the data equal the array call's."""
    from biosig.signal import Annotations, Signal
    x = RNG.standard_normal((2, 3000)).astype(np.float32)
    ann = Annotations([1.0], [0.0], ["N"], source="t")
    sig = Signal(x, 250.0, ["a", "b"], ["mV", "mV"], annotations=ann)
    calls = [
        (lambda s, **k: bandpass(s, band_hz=(1.0, 40.0), **k)),
        (lambda s, **k: highpass(s, cutoff_hz=1.0, **k)),
        (lambda s, **k: lowpass(s, cutoff_hz=40.0, **k)),
        (lambda s, **k: notch(s, powerline_hz=50.0, **k)),
        (lambda s, **k: remove_baseline(s, method="median", **k)),
        (lambda s, **k: envelope_homomorphic(s, cutoff_hz=8.0, **k)),
        (lambda s, **k: moving_window_integration(s, window_s=0.1, **k)),
        (lambda s, **k: resample(s, target_fs=125.0, **k)),
    ]
    for call in calls:
        out = call(sig)
        assert isinstance(out, Signal)
        assert (out.channels, out.units, out.annotations) == (sig.channels, sig.units, ann)
        np.testing.assert_array_equal(out.data, call(x, fs=250.0))
        np.testing.assert_array_equal(call(sig, fs=250.0).data, out.data)  # fs may agree
    assert resample(sig, target_fs=125.0).fs == 125.0
    env = envelope_hilbert(sig)
    assert isinstance(env, Signal)
    np.testing.assert_array_equal(env.data, envelope_hilbert(x))
    with pytest.raises(ValueError, match=r"fs is 500.0 but the Signal's rate is 250 Hz"):
        bandpass(sig, fs=500.0, band_hz=(1.0, 40.0))
