"""Every public function that takes samples or a sampling rate fails the same way on the same bad
input: one error class per kind of mistake and a one-line message naming the argument
(:mod:`biosig.validate`).

=====================================  ==============================================
complex samples                        InputTypeError (an InputError and a TypeError)
NaN, inf, no samples, wrong ndim       InputError
fs = 0, -1 or nan                      ConfigError (an argument mistake)
=====================================  ==============================================

The tables below list the functions; :func:`test_the_tables_cover_the_public_api` fails when a
package exports a function with a ``signal``/``audio``/``fs`` argument that is in no table and
not skipped with a reason.
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest

from biosig.errors import ConfigError, InputError, InputTypeError

PACKAGES = ("biosig.dsp", "biosig.features", "biosig.ecg", "biosig.io", "biosig.asr",
            "biosig.pcg")

RNG = np.random.default_rng(0)


def _fn(qualname):
    """``biosig.pkg.name`` or ``biosig.pkg.Class.method``."""
    parts = qualname.split(".")
    obj = importlib.import_module(".".join(parts[:2]))
    for part in parts[2:]:
        obj = getattr(obj, part)
    return obj


def _sos():
    from biosig.dsp import butter_sos
    return butter_sos("lowpass", 40.0, fs=250.0)


def _engine():
    from biosig.asr import DictationEngine
    return DictationEngine(None)


_SEGMENTATION = np.array([[0.0, 0.1, 1], [0.1, 0.4, 2], [0.4, 0.5, 3], [0.5, 1.0, 4]])

# name -> (call(x, fs), good fs, n_samples of a good signal, name of the samples argument,
#          accepted numbers of dimensions (None: any from 1 up), whether no samples is accepted)
# ``call`` takes fs=None for functions without a sampling rate.
SIGNAL = {
    "biosig.dsp.resample": (lambda x, fs: _fn("biosig.dsp.resample")(x, fs=fs, target_fs=125.0),
                            250.0, 1000, "signal", None, False),
    "biosig.dsp.sosfilt": (lambda x, fs: _fn("biosig.dsp.sosfilt")(_sos(), x),
                           None, 1000, "signal", None, False),
    "biosig.dsp.sosfiltfilt": (lambda x, fs: _fn("biosig.dsp.sosfiltfilt")(_sos(), x),
                               None, 1000, "signal", None, False),
    "biosig.dsp.SosFilter.process": (
        lambda x, fs: _fn("biosig.dsp.SosFilter")(_sos()).process(x),
        None, 1000, "chunk", None, True),          # a stream may deliver an empty chunk
    "biosig.dsp.bandpass": (
        lambda x, fs: _fn("biosig.dsp.bandpass")(x, fs=fs, band_hz=(1.0, 40.0)),
        250.0, 1000, "signal", None, False),
    "biosig.dsp.highpass": (
        lambda x, fs: _fn("biosig.dsp.highpass")(x, fs=fs, cutoff_hz=1.0),
        250.0, 1000, "signal", None, False),
    "biosig.dsp.lowpass": (
        lambda x, fs: _fn("biosig.dsp.lowpass")(x, fs=fs, cutoff_hz=40.0),
        250.0, 1000, "signal", None, False),
    "biosig.dsp.notch": (lambda x, fs: _fn("biosig.dsp.notch")(x, fs=fs),
                         250.0, 1000, "signal", None, False),
    "biosig.dsp.remove_baseline": (
        lambda x, fs: _fn("biosig.dsp.remove_baseline")(x, fs=fs, method="median"),
        250.0, 1000, "signal", None, False),
    "biosig.dsp.envelope_hilbert": (lambda x, fs: _fn("biosig.dsp.envelope_hilbert")(x),
                                    None, 1000, "signal", None, False),
    "biosig.dsp.envelope_homomorphic": (
        lambda x, fs: _fn("biosig.dsp.envelope_homomorphic")(x, fs=fs),
        250.0, 1000, "signal", None, False),
    "biosig.dsp.moving_window_integration": (
        lambda x, fs: _fn("biosig.dsp.moving_window_integration")(x, fs=fs, window_s=0.1),
        250.0, 1000, "signal", None, False),
    "biosig.features.stft": (lambda x, fs: _fn("biosig.features.stft")(x, n_fft=256),
                             None, 4000, "signal", None, False),
    "biosig.features.spectrogram": (
        lambda x, fs: _fn("biosig.features.spectrogram")(x, n_fft=256),
        None, 4000, "signal", None, False),
    "biosig.features.mel_spectrogram": (
        lambda x, fs: _fn("biosig.features.mel_spectrogram")(x, fs=fs, n_fft=256, n_mels=20),
        16000.0, 4000, "signal", None, False),
    "biosig.features.log_mel_spectrogram": (
        lambda x, fs: _fn("biosig.features.log_mel_spectrogram")(x, fs=fs, n_fft=256,
                                                                 n_mels=20),
        16000.0, 4000, "signal", None, False),
    "biosig.features.mfcc": (
        lambda x, fs: _fn("biosig.features.mfcc")(x, fs=fs, n_fft=256, n_mels=20, n_mfcc=13),
        16000.0, 4000, "signal", None, False),
    "biosig.features.welch": (lambda x, fs: _fn("biosig.features.welch")(x, fs=fs),
                              256.0, 2560, "signal", None, False),
    "biosig.features.band_powers": (lambda x, fs: _fn("biosig.features.band_powers")(x, fs=fs),
                                    256.0, 2560, "signal", None, False),
    "biosig.features.whisper_log_mel": (
        lambda x, fs: _fn("biosig.features.whisper_log_mel")(x, fs=fs, pad_to_30s=False),
        16000.0, 4000, "signal", None, False),
    "biosig.features.pad_or_trim": (lambda x, fs: _fn("biosig.features.pad_or_trim")(x, 100),
                                    None, 4000, "signal", None, False),
    "biosig.features.kaldi_fbank": (lambda x, fs: _fn("biosig.features.kaldi_fbank")(x, fs=fs),
                                    16000.0, 4000, "signal", None, False),
    "biosig.features.compute_features": (
        lambda x, fs: _fn("biosig.features.compute_features")(x, modality="eeg", fs=fs),
        173.61, 4097, "signal", (1, 2), False),
    "biosig.features.extract_features": (
        lambda x, fs: _fn("biosig.features.extract_features")(x, modality="eeg", fs=fs),
        173.61, 4097, "signal", (1, 2), False),
    "biosig.ecg.ecg_clean": (lambda x, fs: _fn("biosig.ecg.ecg_clean")(x, fs=fs),
                             250.0, 2500, "signal", None, False),
    "biosig.ecg.ecg_peaks": (lambda x, fs: _fn("biosig.ecg.ecg_peaks")(x, fs=fs),
                             250.0, 2500, "signal", (1,), False),
    "biosig.io.validate_signal": (lambda x, fs: _fn("biosig.io.validate_signal")(x),
                                  None, 1000, "signal", (1, 2), False),
    "biosig.asr.prepare_audio": (lambda x, fs: _fn("biosig.asr.prepare_audio")(x, fs=fs),
                                 16000.0, 1600, "audio", (1, 2), True),   # transcribes to ""
    "biosig.asr.transcribe": (
        lambda x, fs: _fn("biosig.asr.transcribe")(x, fs=fs, model=None),
        16000.0, 1600, "audio", (1, 2), True),
    "biosig.asr.simulate_stream": (
        lambda x, fs: _fn("biosig.asr.simulate_stream")(_engine(), x),
        None, 1600, "audio", (1,), True),
    "biosig.asr.DictationEngine.push": (lambda x, fs: _engine().push(x),
                                        None, 1600, "audio", (1,), True),
    "biosig.pcg.pcg_segment": (lambda x, fs: _fn("biosig.pcg.pcg_segment")(x, fs=fs),
                               2000.0, 4000, "signal", (1,), False),
    "biosig.pcg.pcg_envelopes": (lambda x, fs: _fn("biosig.pcg.pcg_envelopes")(x, fs=fs),
                                 2000.0, 4000, "signal", (1,), False),
    "biosig.pcg.pcg_cycle_features": (
        lambda x, fs: _fn("biosig.pcg.pcg_cycle_features")(x, _SEGMENTATION, fs=fs),
        2000.0, 2000, "signal", (1,), False),
    "biosig.ecg.write_wfdb_record": (
        lambda x, fs: _fn("biosig.ecg.write_wfdb_record")("/nonexistent/never-written", "r", x,
                                                          fs=fs),
        250.0, 1000, "signal", (1, 2), False),
}

SIGNAL.update({
    "biosig.features.FrontEnd.prepare": (
        lambda x, fs: _fn("biosig.features.FrontEnd").from_preset("eeg").prepare(x, fs),
        173.61, 4097, "signal", (1, 2), False),
    "biosig.features.FrontEnd.features": (
        lambda x, fs: _fn("biosig.features.FrontEnd").from_preset("eeg").features(x, fs),
        173.61, 4097, "signal", (1, 2), False),
})

# functions with a sampling rate but no samples: name -> call(fs)
FS_ONLY = {
    "biosig.features.frame_lengths": lambda fs: _fn("biosig.features.frame_lengths")(
        0.064, 0.016, fs=fs),
    "biosig.features.FrontEnd.rate": lambda fs: _fn("biosig.features.FrontEnd")().rate(fs),
    "biosig.features.FrontEnd.samples": lambda fs: _fn("biosig.features.FrontEnd")().samples(
        1.0, fs),
    "biosig.features.FrontEnd.frames": lambda fs: _fn("biosig.features.FrontEnd")().frames(fs),
    "biosig.features.FrontEnd.mel_band": lambda fs: _fn("biosig.features.FrontEnd")().mel_band(
        fs),
    "biosig.features.FrontEnd.transform_module": lambda fs: _fn(
        "biosig.features.FrontEnd")().transform_module(fs),
    "biosig.dsp.butter_sos": lambda fs: _fn("biosig.dsp.butter_sos")("lowpass", 1.0, fs=fs),
    "biosig.dsp.notch_sos": lambda fs: _fn("biosig.dsp.notch_sos")(fs=fs),
    "biosig.features.mel_filterbank": lambda fs: _fn("biosig.features.mel_filterbank")(
        fs=fs, n_fft=256),
    "biosig.features.fft_frequencies": lambda fs: _fn("biosig.features.fft_frequencies")(
        fs=fs, n_fft=256),
    "biosig.features.frame_times": lambda fs: _fn("biosig.features.frame_times")(
        10, fs=fs, hop_length=64),
    "biosig.ecg.ecg_rate": lambda fs: _fn("biosig.ecg.ecg_rate")(np.array([10, 300]), fs=fs),
    "biosig.ecg.hrv": lambda fs: _fn("biosig.ecg.hrv")(np.array([10, 300, 600]), fs=fs),
    "biosig.ecg.hrv_time": lambda fs: _fn("biosig.ecg.hrv_time")(np.array([10, 300]), fs=fs),
    "biosig.ecg.hrv_frequency": lambda fs: _fn("biosig.ecg.hrv_frequency")(
        np.array([10, 300]), fs=fs),
    "biosig.ecg.rr_intervals": lambda fs: _fn("biosig.ecg.rr_intervals")(
        np.array([10, 300]), fs=fs),
    "biosig.ecg.rr_statistics": lambda fs: _fn("biosig.ecg.rr_statistics")(
        np.array([10, 300, 600]), fs=fs),
    "biosig.ecg.rr_patterns": lambda fs: _fn("biosig.ecg.rr_patterns")(
        np.array([10, 300, 600, 900, 1200, 1500]), fs=fs),
    "biosig.ecg.beat_morphology": lambda fs: _fn("biosig.ecg.beat_morphology")(
        np.zeros((4, 210)), fs=fs, offset_s=0.25),
    "biosig.ecg.write_qrs_annotations": lambda fs: _fn("biosig.ecg.write_qrs_annotations")(
        "/nonexistent/never-written/r.qrs", np.array([10, 300]), fs=fs),
    "biosig.ecg.ecg_simulate": lambda fs: _fn("biosig.ecg.ecg_simulate")(duration_s=2.0, fs=fs),
    "biosig.pcg.states_to_intervals": lambda fs: _fn("biosig.pcg.states_to_intervals")(
        np.array([1, 1, 2, 2]), fs=fs),
    "biosig.pcg.pcg_heart_cycle": lambda fs: _fn("biosig.pcg.pcg_heart_cycle")(
        np.zeros(500), fs=fs),
    "biosig.pcg.heart_cycle_candidates": lambda fs: _fn("biosig.pcg.heart_cycle_candidates")(
        np.zeros(500), np.zeros(500), fs=fs),
    "biosig.pcg.reference_frame_states": lambda fs: _fn("biosig.pcg.reference_frame_states")(
        _SEGMENTATION, n_frames=50, fs=fs),
}

# exported functions with such an argument that take neither samples nor a rate to check here
SKIP = {
    "biosig.asr.AsrModel.decode": "a backend's decode of audio that transcribe() and the "
                                  "streaming engine have already checked (prepare_audio, push)",
    "biosig.asr.WhisperEmbedder.states": "needs the Whisper model; its bad inputs (NaN, "
                                              "2-D, too short, bad fs) are in "
                                              "tests/test_encoder.py",
}

SAMPLE_ARGS = ("signal", "audio", "x", "data", "chunk")


def _public_functions():
    """(qualified name, parameter names) of every exported function and public method."""
    for pkg in PACKAGES:
        module = importlib.import_module(pkg)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj):
                yield f"{pkg}.{name}", list(inspect.signature(obj).parameters)
            elif inspect.isclass(obj) and obj.__module__.startswith("biosig"):
                for meth_name, meth in vars(obj).items():
                    if inspect.isfunction(meth) and not meth_name.startswith("_"):
                        params = list(inspect.signature(meth).parameters)[1:]
                        yield f"{pkg}.{name}.{meth_name}", params


def test_the_tables_cover_the_public_api():
    missing = []
    for qualname, params in _public_functions():
        if not ("fs" in params or any(p in SAMPLE_ARGS for p in params)):
            continue
        if qualname not in SIGNAL and qualname not in FS_ONLY and qualname not in SKIP:
            missing.append(qualname)
    assert not missing, ("public functions with a signal/fs argument in no table of "
                         f"tests/test_failures.py (add them, or to SKIP with a reason): {missing}")
    stale = [q for table in (SIGNAL, FS_ONLY, SKIP) for q in table if not callable(_fn(q))]
    assert not stale


def _bad_signals(n, ndim_ok):
    """(case, bad samples, exception class, text the message must hold)."""
    x = RNG.standard_normal(n)
    nan, inf = x.copy(), x.copy()
    nan[n // 2], inf[n // 3] = np.nan, np.inf
    cases = [("complex", x.astype(np.complex128), InputTypeError, "complex128"),
             ("nan", nan, InputError, "NaN"),
             ("inf", inf, InputError, "inf"),
             ("empty", np.zeros(0), InputError, "0 samples"),
             ("scalar", np.float64(1.0), InputError, "shape ()")]
    if ndim_ok is not None:
        too_many = np.zeros((2,) * (max(ndim_ok) + 1) + (n,))
        cases.append(("ndim", too_many, InputError, f"shape {too_many.shape}"))
    return cases


_SIGNAL_CASES = [(name, case) for name, (_, _, n, _, ndim_ok, _) in SIGNAL.items()
                 for case, *_ in _bad_signals(8, ndim_ok)]


def _check_message(exc, *words):
    msg = str(exc)
    assert "\n" not in msg, f"message spans several lines: {msg!r}"
    for w in words:
        assert w in msg, f"{w!r} not in message {msg!r}"


@pytest.mark.parametrize("name, case", _SIGNAL_CASES, ids=[f"{n}-{c}" for n, c in _SIGNAL_CASES])
def test_bad_samples_raise_one_error_class_naming_the_argument(name, case):
    call, fs, n, arg, ndim_ok, empty_ok = SIGNAL[name]
    if case == "empty" and empty_ok:
        pytest.skip(f"{name} accepts no samples (documented)")
    (_, x, cls, text), = [c for c in _bad_signals(n, ndim_ok) if c[0] == case]
    with pytest.raises(cls) as e:
        call(x, fs)
    assert isinstance(e.value, InputError)
    if case == "complex":
        assert isinstance(e.value, TypeError)
    else:
        assert not isinstance(e.value, InputTypeError)
    _check_message(e.value, arg, text)


_FS_CASES = [(name, fs) for name in [*(k for k, v in SIGNAL.items() if v[1] is not None),
                                     *FS_ONLY] for fs in (0, -1, float("nan"))]


@pytest.mark.parametrize("name, fs", _FS_CASES, ids=[f"{n}-{f}" for n, f in _FS_CASES])
def test_bad_fs_is_a_config_error_naming_the_argument(name, fs):
    if name in SIGNAL:
        call, _, n, _, _, _ = SIGNAL[name]
        x = RNG.standard_normal(n)
        run = lambda: call(x, fs)            # noqa: E731
    else:
        run = lambda: FS_ONLY[name](fs)      # noqa: E731
    with pytest.raises(ConfigError) as e:
        run()
    assert not isinstance(e.value, InputError)    # an argument mistake, not a data problem
    _check_message(e.value, "fs is", f"{float(fs):g} Hz")


def test_a_signal_object_is_checked_like_an_array():
    from biosig.dsp import bandpass
    from biosig.signal import Signal
    x = RNG.standard_normal((1, 1000))
    x[0, 10] = np.nan
    with pytest.raises(InputError, match=r"^signal: 1 of 1000 samples are NaN or inf"):
        bandpass(Signal(x, 250.0, ["a"], ["mV"]), band_hz=(1.0, 40.0))


def test_torch_tensors_are_checked_too():
    torch = pytest.importorskip("torch")
    from biosig.features import stft
    with pytest.raises(InputError, match=r"^signal: 1 of 4000 samples are NaN"):
        stft(torch.tensor(np.r_[np.zeros(3999), np.nan]), n_fft=256)
    with pytest.raises(InputTypeError, match=r"^signal has dtype torch.complex64, expected a "
                                             r"real numeric array$"):
        stft(torch.zeros(4000, dtype=torch.complex64), n_fft=256)


def test_stream_push_rejects_several_channels_instead_of_flattening():
    eng = _engine()
    eng.push(np.zeros((1, 1600), np.float32))          # (1, n) is one channel
    eng.push(np.zeros(1600, np.float32))
    assert eng.audio_s == pytest.approx(0.2)
    with pytest.raises(InputError, match=r"^audio has shape \(2, 1600\), expected mono audio "
                                         r"\(n_samples,\)$"):
        eng.push(np.zeros((2, 1600), np.float32))
    assert eng.audio_s == pytest.approx(0.2)


def test_simulate_stream_names_a_wrong_engine():
    from biosig.asr import simulate_stream
    with pytest.raises(InputTypeError, match=r"^engine is a str \('whisper'\), expected "
                                             r"DictationEngine$"):
        simulate_stream("whisper", np.zeros(1600, np.float32))


def test_validators_directly():
    from biosig.validate import check_channel, check_option, check_signal, check_type
    x = np.arange(4.0)
    assert check_signal(x) is x
    assert check_channel(x[None]).shape == (4,)
    assert np.isnan(check_signal(np.r_[x, np.nan], allow_nan=True)).any()
    big = np.full(4, np.finfo(np.float64).max)         # a sum that overflows is not a NaN
    assert check_signal(big) is big
    with pytest.raises(InputError, match=r"^rec\.wav: signal has 3 samples on its last \(time\) "
                                         r"axis \(shape \(3,\)\), expected at least 8$") as e:
        check_signal(np.zeros(3), min_samples=8, path="rec.wav")
    assert e.value.path == "rec.wav"
    assert check_option("a", "mode", ("a", "b")) == "a"
    with pytest.raises(ConfigError, match=r"^mode is 'c', expected one of 'a', 'b', 'd'$"):
        check_option("c", "mode", ("a", "b", "d"))
    with pytest.raises(ConfigError, match=r"^mode is \[1\], expected 'a' or 'b'$"):
        check_option([1], "mode", {"a": 1, "b": 2})
    assert check_type(3, "order", int) == 3
    with pytest.raises(InputTypeError, match=r"^order is a str \('3'\), expected int or "
                                             r"float$"):
        check_type("3", "order", (int, float))


def test_errors_keep_their_class_through_pickling():
    import pickle
    err = InputTypeError(None, "signal has dtype complex128, expected a real numeric array",
                         what="")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is InputTypeError and str(back) == str(err)
