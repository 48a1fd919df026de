"""biosig.signal: the one sampling-rate validator, the two ways of passing a recording (a Signal,
or an array with fs=), and argument errors of Signal itself."""

from __future__ import annotations

import numpy as np
import pytest

from biosig.errors import InputError
from biosig.signal import Annotations, Signal, as_signal, check_fs, signal_data


# ---------------------------------------------------------------- check_fs
@pytest.mark.parametrize("fs", [360, 173.61, np.float32(250.0), "8000"])
def test_check_fs_returns_a_float(fs):
    value = check_fs(fs)
    assert isinstance(value, float) and value == pytest.approx(float(fs))


@pytest.mark.parametrize("fs, match", [
    (0, r"fs is 0 Hz, expected a positive finite sampling rate in Hz"),
    (-360, r"fs is -360 Hz, expected a positive finite"),
    (float("nan"), r"fs is nan Hz, expected a positive finite"),
    (float("inf"), r"fs is inf Hz, expected a positive finite"),
    (None, r"fs is None, expected a sampling rate in Hz \(a positive number\)"),
    ("fast", r"fs is 'fast', expected a sampling rate in Hz"),
])
def test_check_fs_argument_mistakes_are_value_errors(fs, match):
    with pytest.raises(ValueError, match=match) as e:
        check_fs(fs)
    assert not isinstance(e.value, InputError)


def test_check_fs_bounds_name_and_file():
    with pytest.raises(ValueError, match=r"^target_fs is 20 Hz, expected at least 50 Hz for ECG "
                                         r"analysis$"):
        check_fs(20, name="target_fs", min_hz=50, purpose=" for ECG analysis")
    with pytest.raises(InputError, match=r"^rec\.hea: sampling rate in header is 2e\+06 Hz, "
                                         r"expected at most 1e\+06 Hz$") as e:
        check_fs(2e6, name="sampling rate in header", path="rec.hea", max_hz=1e6)
    assert e.value.path == "rec.hea"
    assert check_fs(50, min_hz=50) == 50.0 and check_fs(1e6, max_hz=1e6) == 1e6


def test_one_check_fs_in_the_package():
    """The sampling-rate checks of dsp, ecg, io and features are this one function."""
    import biosig.dsp.filters
    import biosig.ecg.clean
    import biosig.features._tensor
    import biosig.io.core
    for module in (biosig.dsp.filters, biosig.ecg.clean, biosig.io.core):
        assert not hasattr(module, "_check_fs"), module.__name__
    assert biosig.features._tensor.check_fs is check_fs


# ---------------------------------------------------------------- a Signal or an array with fs
def test_signal_data_two_ways_in():
    x = np.arange(12.0).reshape(2, 6)
    sig = Signal(x, 100.0, ["a", "b"], ["mV", "mV"])
    data, fs = signal_data(sig)
    assert data is sig.data and fs == 100.0
    assert signal_data(sig, 100)[1] == 100.0                      # an agreeing fs is fine
    data, fs = signal_data(x, fs=100)
    assert data is x and fs == 100.0                             # no copy, no cast
    with pytest.raises(ValueError, match=r"fs is 200 but the Signal's rate is 100 Hz"):
        signal_data(sig, 200)
    with pytest.raises(ValueError, match=r"signal is a ndarray: pass its sampling rate as fs= "
                                         r"\(or a biosig.Signal\)"):
        signal_data(x)
    with pytest.raises(ValueError, match=r"fs is 20 Hz, expected at least 50 Hz"):
        signal_data(x, 20, min_hz=50)


def test_as_signal_from_array():
    sig = as_signal(np.zeros(10), fs=4)
    assert sig.data.shape == (1, 10) and sig.channels == ["ch0"] and sig.fs == 4.0
    with pytest.raises(ValueError, match=r"signal has shape \(2, 2, 2\)"):
        as_signal(np.zeros((2, 2, 2)), fs=4)
    with pytest.raises(ValueError, match=r"fs is -4 Hz"):
        as_signal(np.zeros(10), fs=-4)


def test_kaldi_fbank_takes_a_signal_or_an_array():
    """biosig.features: the kaldi filterbank gives the same features either way."""
    from biosig.features import kaldi_fbank
    x = np.random.default_rng(0).standard_normal((2, 8000)).astype(np.float32) * 1000
    sig = Signal(x, 16000.0, ["l", "r"], ["", ""])
    np.testing.assert_array_equal(kaldi_fbank(sig, num_mel_bins=40),
                                  kaldi_fbank(x, fs=16000, num_mel_bins=40))
    with pytest.raises(ValueError, match="pass its sampling rate as fs="):
        kaldi_fbank(x)


# ---------------------------------------------------------------- Signal's own argument errors
def test_signal_channel_errors_name_the_channel():
    sig = Signal(np.zeros((2, 5)), 10.0, ["MLII", "V5"], ["mV", "mV"], path="100.hea")
    with pytest.raises(ValueError, match=r"100.hea: no channel 'II'; channels are "
                                         r"\['MLII', 'V5'\]"):
        sig.channel("II")
    with pytest.raises(ValueError, match=r"100.hea: channels \['II'\] not found"):
        sig.pick(["II"])
    with pytest.raises(IndexError, match=r"channel index 2 out of range; the recording has 2"):
        sig.pick([2])
    assert sig.pick([-1]).channels == ["V5"]
    with pytest.raises(ValueError, match=r"onset_s \(2\), duration_s \(2\), labels \(1\)"):
        Annotations([0.0, 1.0], [0.0, 0.0], ["N"])
