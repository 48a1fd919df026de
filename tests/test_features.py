"""biosig.features spectral functions: librosa, Whisper and Kaldi compatibility, batch
consistency, known answers, modules, devices."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

import biosig.features as bf
from biosig.features import transforms

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
SPEECH = "speech/librispeech_test_clean_mini/test-clean/1089/134686/1089-134686-0000.flac"


@pytest.fixture(scope="module")
def speech(data_root):
    import soundfile as sf
    y, fs = sf.read(data_root / SPEECH, dtype="float32")
    assert fs == 16000
    return y[: 4 * fs]          # 4 s keeps the module fast


@pytest.fixture(scope="module")
def librosa():
    return pytest.importorskip("librosa")


def _noise(shape, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------------------------------
# librosa compatibility (float64 in: tight; float32 in: float32 rounding)

@pytest.mark.parametrize("n_fft,hop,win,pad_mode", [
    (512, 128, None, "constant"), (512, 128, None, "reflect"), (400, 160, 256, "reflect"),
    (255, 64, None, "constant"),
])
def test_stft_matches_librosa(librosa, speech, n_fft, hop, win, pad_mode):
    y = speech.astype(np.float64)
    ref = librosa.stft(y, n_fft=n_fft, hop_length=hop, win_length=win, pad_mode=pad_mode)
    ours = bf.stft(y, n_fft=n_fft, hop_length=hop, win_length=win, pad_mode=pad_mode)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9 * np.abs(ref).max())


@pytest.mark.parametrize("window", ["hamming", "blackman"])
def test_stft_windows_match_librosa(librosa, speech, window):
    y = speech[:8000].astype(np.float64)
    ref = librosa.stft(y, n_fft=256, hop_length=64, window=window)
    np.testing.assert_allclose(bf.stft(y, n_fft=256, hop_length=64, window=window), ref,
                               atol=1e-9 * np.abs(ref).max())


def test_center_false_matches_librosa(librosa, speech):
    y = speech[:8000].astype(np.float64)
    ref = np.abs(librosa.stft(y, n_fft=256, hop_length=100, center=False)) ** 2
    ours = bf.spectrogram(y, n_fft=256, hop_length=100, center=False)
    np.testing.assert_allclose(ours, ref, atol=1e-9 * ref.max())


def test_mel_scale_known_answers():
    # Slaney: linear at 200/3 Hz per mel up to 1 kHz (= 15 mels), then x6.4 every 27 mels
    np.testing.assert_allclose(bf.hz_to_mel([0.0, 500.0, 1000.0, 6400.0]), [0, 7.5, 15, 42])
    np.testing.assert_allclose(bf.mel_to_hz([7.5, 42.0]), [500.0, 6400.0])
    assert bf.hz_to_mel(700.0, htk=True) == pytest.approx(2595 * np.log10(2))
    assert bf.mel_to_hz(2595 * np.log10(2), htk=True) == pytest.approx(700.0)
    np.testing.assert_allclose(bf.mel_frequencies(5, fmax_hz=800.0), [0, 200, 400, 600, 800])
    assert bf.hz_to_mel(1000.0).shape == ()


@pytest.mark.parametrize("fs,n_fft,n_mels,fmin,fmax,htk", [
    (16000, 400, 80, 0.0, None, False), (16000, 400, 128, 0.0, None, False),
    (4000, 256, 64, 25.0, 1000.0, False), (8000, 512, 40, 20.0, 3800.0, True),
])
def test_mel_filterbank_matches_torchaudio(fs, n_fft, n_mels, fmin, fmax, htk):
    import torchaudio.functional as AF
    ref = AF.melscale_fbanks(n_fft // 2 + 1, fmin, fmax or fs / 2, n_mels, fs, norm="slaney",
                             mel_scale="htk" if htk else "slaney").numpy().T
    ours = bf.mel_filterbank(fs=fs, n_fft=n_fft, n_mels=n_mels, fmin_hz=fmin, fmax_hz=fmax,
                             htk=htk)
    assert ours.shape == ref.shape and ours.dtype == np.float64
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5 * ref.max())   # ref is float32


@pytest.mark.parametrize("norm", ["slaney", None])
def test_mel_filterbank_fractional_rate_known_answer(norm):
    # The Bonn EEG rate: below 1 kHz the Slaney scale is linear, so the filters are triangles
    # with corners equally spaced in Hz, step d = (fmax - fmin) / (n_mels + 1), bins k fs / n_fft.
    fs, n_fft, n_mels, fmin, fmax = 173.61, 256, 20, 0.5, 45.0
    d = (fmax - fmin) / (n_mels + 1)
    centres = fmin + d * np.arange(1, n_mels + 1)
    bins = np.arange(n_fft // 2 + 1) * fs / n_fft
    ref = np.maximum(0.0, 1.0 - np.abs(bins[None, :] - centres[:, None]) / d)
    if norm == "slaney":
        ref /= d                                         # 2 / (width of the triangle, 2 d)
    ours = bf.mel_filterbank(fs=fs, n_fft=n_fft, n_mels=n_mels, fmin_hz=fmin, fmax_hz=fmax,
                             norm=norm)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)


def test_mel_filterbank_rejects_bad_arguments():
    with pytest.raises(ValueError, match="fmin_hz=500 and fmax_hz=400"):
        bf.mel_filterbank(fs=1000, n_fft=64, fmin_hz=500.0, fmax_hz=400.0)
    with pytest.raises(ValueError, match="norm is 'l2'"):
        bf.mel_filterbank(fs=1000, n_fft=64, norm="l2")
    with pytest.raises(ValueError, match="n_fft is 0"):
        bf.mel_filterbank(fs=1000, n_fft=0)


def test_mel_and_log_mel_match_librosa(librosa, speech):
    y = speech.astype(np.float64)
    kw = dict(n_fft=512, hop_length=128, n_mels=64)
    ref = librosa.feature.melspectrogram(y=y, sr=16000, fmin=20.0, fmax=7600.0, **kw)
    ours = bf.mel_spectrogram(y, fs=16000, fmin_hz=20.0, fmax_hz=7600.0, **kw)
    np.testing.assert_allclose(ours, ref, rtol=1e-7, atol=1e-10 * ref.max())
    ref_db = librosa.power_to_db(ref, ref=1.0, amin=1e-10, top_db=80.0)
    ours_db = bf.log_mel_spectrogram(y, fs=16000, fmin_hz=20.0, fmax_hz=7600.0, **kw)
    np.testing.assert_allclose(ours_db, ref_db, atol=1e-6)
    # float32 in, float32 out: the same within float32 rounding of the dB values
    ours32 = bf.log_mel_spectrogram(speech, fs=16000, fmin_hz=20.0, fmax_hz=7600.0, **kw)
    assert ours32.dtype == np.float32
    assert np.abs(ours32 - ref_db).max() < 2e-3


def test_power_to_db_ref_max_matches_librosa(librosa):
    s = np.abs(_noise((40, 30), dtype=np.float64)) ** 2
    np.testing.assert_allclose(bf.power_to_db(s, ref="max", top_db=60.0),
                               librosa.power_to_db(s, ref=np.max, top_db=60.0), atol=1e-10)
    np.testing.assert_allclose(bf.power_to_db(s, ref=0.5, top_db=None),
                               librosa.power_to_db(s, ref=0.5, top_db=None), atol=1e-10)


@pytest.mark.parametrize("lifter", [0.0, 22.0])
def test_mfcc_matches_librosa(librosa, speech, lifter):
    y = speech.astype(np.float64)
    kw = dict(n_fft=512, hop_length=160, n_mels=40)
    ref = librosa.feature.mfcc(y=y, sr=16000, n_mfcc=13, lifter=lifter, **kw)
    ours = bf.mfcc(y, fs=16000, n_mfcc=13, lifter=lifter, **kw)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-6 * np.abs(ref).max())


def test_deltas_match_librosa_inside(librosa, speech):
    c = bf.mfcc(speech.astype(np.float64), fs=16000, n_mfcc=13, n_fft=512, hop_length=160)
    ref = librosa.feature.delta(c, width=9, order=1)
    ours = bf.deltas(c, width=9)
    np.testing.assert_allclose(ours[:, 4:-4], ref[:, 4:-4], atol=1e-9)   # edges differ
    # order 2 is the regression applied twice (HTK / Kaldi)
    np.testing.assert_allclose(bf.deltas(c, width=9, order=2), bf.deltas(ours, width=9),
                               atol=1e-12)


def test_welch_matches_scipy():
    import scipy.signal
    x = _noise((3, 5000), dtype=np.float64)
    for nper, nover in [(256, None), (500, 100), (257, None)]:
        f_ref, p_ref = scipy.signal.welch(x, fs=250.0, nperseg=nper, noverlap=nover)
        spec = bf.welch(x, fs=250.0, segment_length=nper, overlap=nover)
        np.testing.assert_allclose(spec.freqs_hz, f_ref)
        np.testing.assert_allclose(spec.psd, p_ref, rtol=1e-10, atol=1e-14)


# ------------------------------------------------------------------------------------------
# Whisper and Kaldi front-ends

@pytest.fixture(scope="module")
def whisper_extractors():
    tf = pytest.importorskip("transformers")
    return {n: tf.WhisperFeatureExtractor(feature_size=n) for n in (80, 128)}


@pytest.mark.parametrize("n_mels", [80, 128])
def test_whisper_log_mel_matches_hf_numpy(whisper_extractors, speech, n_mels):
    fe = whisper_extractors[n_mels]
    # transformers' numpy path (float64 inside), unpadded and padded to 30 s
    ref = fe._np_extract_fbank_features(speech[None].astype(np.float32), "cpu")[0]
    ours = bf.whisper_log_mel(speech, fs=16000, n_mels=n_mels, pad_to_30s=False)
    assert ours.shape == ref.shape == (n_mels, speech.size // 160)
    assert np.abs(ours - ref).max() < 5e-5
    ours64 = bf.whisper_log_mel(speech.astype(np.float64), fs=16000, n_mels=n_mels,
                                pad_to_30s=False)
    assert np.abs(ours64 - ref).max() < 1e-6        # ref is rounded to float32 at the end
    ours30 = bf.whisper_log_mel(speech, fs=16000, n_mels=n_mels)
    assert ours30.shape == (n_mels, 3000)
    if n_mels == 80:     # the numpy path loops over frames in Python: once is enough
        ref30 = fe._np_extract_fbank_features(bf.pad_or_trim(speech)[None], "cpu")[0]
        assert np.abs(ours30 - ref30).max() < 5e-5
    # and the extractor's default call (torch path when torch is installed)
    call = fe(speech, sampling_rate=16000, return_tensors="np").input_features[0]
    assert np.abs(ours30 - call).max() < 5e-5


def test_whisper_filters_equal_hf(whisper_extractors):
    for n, fe in whisper_extractors.items():
        np.testing.assert_allclose(bf.whisper_mel_filters(n), fe.mel_filters.T, atol=1e-12)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_whisper_filters_equal_faster_whisper(n_mels):
    fw = pytest.importorskip("faster_whisper.feature_extractor")
    ref = fw.FeatureExtractor.get_mel_filters(16000, 400, n_mels=n_mels)
    np.testing.assert_allclose(bf.whisper_mel_filters(n_mels), ref, rtol=1e-12, atol=1e-15)


def test_whisper_rejects_wrong_rate_and_mels(speech):
    with pytest.raises(ValueError, match="fs is 8000 Hz, expected 16000 Hz"):
        bf.whisper_log_mel(speech, fs=8000)
    with pytest.raises(ValueError, match="n_mels is 64"):
        bf.whisper_log_mel(speech, fs=16000, n_mels=64)


def test_whisper_trims_long_audio():
    x = _noise(16000 * 31)
    out = bf.whisper_log_mel(x, fs=16000)
    assert out.shape == (80, 3000)
    np.testing.assert_allclose(out, bf.whisper_log_mel(x[: 16000 * 30], fs=16000), atol=1e-6)


def test_kaldi_fbank_equals_torchaudio_per_channel(speech):
    import torchaudio.compliance.kaldi as kaldi
    x = np.stack([speech[:16000], speech[16000:32000] * 0.5, speech[32000:48000]]) * 32768
    batch = np.stack([x, x[::-1]])                                   # (2, 3, n)
    ours = bf.kaldi_fbank(batch, fs=16000, num_mel_bins=40)
    assert ours.shape == (2, 3, 40, 98)
    for b in range(2):
        for c in range(3):
            ref = kaldi.fbank(torch.from_numpy(batch[b, c][None].copy()),
                              sample_frequency=16000, num_mel_bins=40, dither=0.0)
            np.testing.assert_array_equal(ours[b, c], ref.numpy().T)


def _kaldi_per_row(batch, *, fs, num_mel_bins, frame_length_ms=25.0, frame_shift_ms=10.0,
                   dither=0.0, **options):
    """torchaudio's fbank on every row of ``batch`` (..., n), stacked as biosig lays it out."""
    import torchaudio.compliance.kaldi as kaldi
    rows = torch.as_tensor(batch).reshape(-1, batch.shape[-1])
    ref = torch.stack([kaldi.fbank(row[None].clone(), sample_frequency=fs,
                                   num_mel_bins=num_mel_bins, frame_length=frame_length_ms,
                                   frame_shift=frame_shift_ms, dither=dither, **options).T
                       for row in rows])
    return ref.reshape(*batch.shape[:-1], *ref.shape[-2:]).numpy()


KALDI_OPTIONS = [
    {},
    {"snip_edges": False},
    {"use_energy": True},
    {"use_energy": True, "htk_compat": True, "raw_energy": False, "energy_floor": 0.0},
    {"window_type": "hamming"},
    {"window_type": "hanning"},
    {"window_type": "rectangular"},
    {"window_type": "blackman", "blackman_coeff": 0.40},
    {"round_to_power_of_two": False},
    {"use_power": False},
    {"subtract_mean": True, "use_energy": True},
    {"use_log_fbank": False},
    {"remove_dc_offset": False, "preemphasis_coefficient": 0.0},
    {"low_freq": 60.0, "high_freq": -400.0, "vtln_warp": 0.9},
    {"snip_edges": False, "frame_length_ms": 20.0, "frame_shift_ms": 30.0},  # shift > length
    {"snip_edges": False, "frame_length_ms": 32.0, "frame_shift_ms": 32.0},
]


def _option_id(options: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in options.items()) or "defaults"


@pytest.mark.parametrize("options", KALDI_OPTIONS, ids=_option_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kaldi_fbank_batched_equals_torchaudio_per_row(speech, options, dtype):
    x = np.stack([speech[i * 8000: i * 8000 + 12345] for i in range(6)]) * 32768
    batch = x.reshape(2, 3, -1).astype(dtype)                        # (2, 3, n)
    ours = bf.kaldi_fbank(batch, fs=16000, num_mel_bins=40, **options)
    ref = _kaldi_per_row(batch, fs=16000, num_mel_bins=40, **options)
    n_features = 40 + bool(options.get("use_energy"))
    assert ours.shape == ref.shape and ours.shape[:3] == (2, 3, n_features)
    assert ours.dtype == dtype
    if options.get("use_log_fbank", True):
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-4)
    else:                                                # linear energies up to ~1e12
        np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("budget", [1, 3 * 75 * 512])
def test_kaldi_fbank_chunked_equals_torchaudio(speech, monkeypatch, budget):
    """Rows go through in cache-sized chunks (one row, or some rows and a remainder)."""
    import biosig.features.kaldi as bk
    monkeypatch.setattr(bk, "_CPU_CHUNK_ELEMENTS", budget)
    batch = np.stack([speech[i * 8000: i * 8000 + 12345] for i in range(7)]) * 32768
    for options in ({}, {"use_energy": True, "subtract_mean": True}):
        np.testing.assert_allclose(bf.kaldi_fbank(batch, fs=16000, num_mel_bins=23, **options),
                                   _kaldi_per_row(batch, fs=16000, num_mel_bins=23, **options),
                                   rtol=0, atol=1e-4)


def test_kaldi_fbank_dither_is_random_and_seedable(speech):
    batch = np.stack([speech[:8000], speech[8000:16000]]) * 32768
    torch.manual_seed(7)
    first = bf.kaldi_fbank(batch, fs=16000, num_mel_bins=40, dither=1.0)
    second = bf.kaldi_fbank(batch, fs=16000, num_mel_bins=40, dither=1.0)
    assert not np.allclose(first, second)
    clean = bf.kaldi_fbank(batch, fs=16000, num_mel_bins=40)
    assert 0 < np.abs(first - clean).max() < 1.0     # small noise on speech at int16 scale
    np.testing.assert_array_equal(clean, bf.kaldi_fbank(batch, fs=16000, num_mel_bins=40))
    torch.manual_seed(7)                             # drawn row by row as torchaudio does
    ref = _kaldi_per_row(batch, fs=16000, num_mel_bins=40, dither=1.0)
    np.testing.assert_allclose(first, ref, rtol=0, atol=1e-4)


def test_kaldi_fbank_falls_back_to_torchaudio_for_unknown_options(speech, monkeypatch):
    """An fbank option the batched path does not implement goes through torchaudio row by
    row instead of being ignored."""
    import torchaudio.compliance.kaldi as kaldi

    import biosig.features.kaldi as bk
    monkeypatch.setattr(bk, "_BATCHED_OPTIONS", bk._BATCHED_OPTIONS - {"vtln_warp"})
    calls = []

    @functools.wraps(kaldi.fbank)
    def counting_fbank(*args, **kwargs):
        calls.append(kwargs)
        return real_fbank(*args, **kwargs)

    real_fbank = kaldi.fbank
    monkeypatch.setattr(kaldi, "fbank", counting_fbank)
    batch = np.stack([speech[:8000], speech[8000:16000], speech[16000:24000]]) * 32768
    ours = bf.kaldi_fbank(batch, fs=16000, num_mel_bins=30, vtln_warp=1.1)
    assert len(calls) == 3 and all(kw["vtln_warp"] == 1.1 for kw in calls)
    ref = _kaldi_per_row(batch, fs=16000, num_mel_bins=30, vtln_warp=1.1)
    np.testing.assert_array_equal(ours, ref)
    calls.clear()
    bf.kaldi_fbank(batch, fs=16000, num_mel_bins=30)              # known options: batched
    assert not calls


@pytest.mark.parametrize("device", DEVICES)
def test_kaldi_fbank_tensor_in_tensor_out_on_device(speech, device):
    x = torch.from_numpy(np.stack([speech[:16000], speech[16000:32000]]) * 32768).to(device)
    out = bf.kaldi_fbank(x, fs=16000, num_mel_bins=40, use_energy=True)
    assert isinstance(out, torch.Tensor) and out.device.type == device
    assert out.shape == (2, 41, 98) and out.dtype == torch.float32
    ref = _kaldi_per_row(x.cpu().numpy(), fs=16000, num_mel_bins=40, use_energy=True)
    np.testing.assert_allclose(out.cpu().numpy(), ref, rtol=0, atol=1e-3)


# ------------------------------------------------------------------------------------------
# Batch consistency, modules, devices

@pytest.mark.parametrize("device", DEVICES)
def test_batch_equals_one_by_one(device):
    x = torch.from_numpy(_noise((2, 3, 6000))).to(device)
    fns = {
        "stft": lambda s: bf.stft(s, n_fft=256, hop_length=64),
        "log_mel": lambda s: bf.log_mel_spectrogram(s, fs=8000, n_fft=256, hop_length=64,
                                                    n_mels=40),
        "mfcc": lambda s: bf.mfcc(s, fs=8000, n_fft=256, hop_length=64, n_mels=40),
        "whisper": lambda s: bf.whisper_log_mel(s, fs=16000, pad_to_30s=False),
        "band_powers": lambda s: bf.band_powers(s, fs=200.0).relative,
    }
    for name, fn in fns.items():
        batched = fn(x)
        assert batched.device.type == device, name
        for i in range(2):
            for j in range(3):
                torch.testing.assert_close(batched[i, j], fn(x[i, j]), rtol=1e-5, atol=1e-4,
                                           msg=name)


@pytest.mark.parametrize("device", DEVICES)
def test_modules_equal_functions(device):
    x = torch.from_numpy(_noise((2, 4000))).to(device)
    kw = dict(n_fft=256, hop_length=100, n_mels=32, fmin_hz=20.0)
    pairs = [
        (transforms.Spectrogram(n_fft=256, hop_length=100),
         bf.spectrogram(x, n_fft=256, hop_length=100)),
        (transforms.MelSpectrogram(fs=8000, **kw), bf.mel_spectrogram(x, fs=8000, **kw)),
        (transforms.LogMelSpectrogram(fs=8000, **kw), bf.log_mel_spectrogram(x, fs=8000, **kw)),
        (transforms.MFCC(fs=8000, n_mfcc=13, **kw), bf.mfcc(x, fs=8000, n_mfcc=13, **kw)),
        (transforms.WhisperLogMel(pad_to_30s=False),
         bf.whisper_log_mel(x, fs=16000, pad_to_30s=False)),
    ]
    for module, expected in pairs:
        module = module.to(device)
        assert all(b.device.type == device for b in module.buffers())
        torch.testing.assert_close(module(x), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu():
    x = _noise((2, 16000))
    cpu = bf.log_mel_spectrogram(x, fs=16000, n_fft=512, hop_length=160, n_mels=64)
    gpu = bf.log_mel_spectrogram(x, fs=16000, n_fft=512, hop_length=160, n_mels=64,
                                 device="cuda")
    assert isinstance(gpu, np.ndarray)
    np.testing.assert_allclose(gpu, cpu, atol=1e-3)
    np.testing.assert_allclose(bf.whisper_log_mel(x, fs=16000, device="cuda"),
                               bf.whisper_log_mel(x, fs=16000), atol=1e-4)


def test_numpy_in_numpy_out_tensor_in_tensor_out():
    x = _noise(4000)
    assert isinstance(bf.mfcc(x, fs=8000, n_fft=256), np.ndarray)
    out = bf.mfcc(torch.from_numpy(x), fs=8000, n_fft=256)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert bf.mfcc(x.astype(np.float64), fs=8000, n_fft=256).dtype == np.float64
    assert bf.spectrogram(np.arange(3000), n_fft=64).dtype == np.float32   # ints -> float32


# ------------------------------------------------------------------------------------------
# Known answers

@pytest.mark.parametrize("fs,n_fft,f_hz", [(8000, 512, 1000.0), (360, 256, 12.0),
                                          (173.61, 256, 10.0)])
def test_sine_peaks_in_its_bin(fs, n_fft, f_hz):
    t = np.arange(int(10 * fs)) / fs
    spec = bf.spectrogram(np.sin(2 * np.pi * f_hz * t), n_fft=n_fft, hop_length=n_fft // 4)
    freqs = bf.fft_frequencies(fs=fs, n_fft=n_fft)
    peak = freqs[np.argmax(spec[:, spec.shape[1] // 2])]
    assert abs(peak - f_hz) <= fs / n_fft / 2


def test_sine_energy_in_mel_band_containing_it():
    fs, f_hz = 16000, 1500.0
    t = np.arange(fs) / fs
    mel = bf.mel_spectrogram(np.sin(2 * np.pi * f_hz * t), fs=fs, n_fft=1024, hop_length=256,
                             n_mels=40)
    centres = bf.mel_frequencies(42, fmin_hz=0.0, fmax_hz=fs / 2)[1:-1]
    best = np.argmax(mel[:, mel.shape[1] // 2])
    assert abs(centres[best] - f_hz) < np.diff(centres)[best]


def test_welch_sine_power():
    fs = 200.0
    t = np.arange(int(60 * fs)) / fs
    amp = 3.0
    spec = bf.welch(amp * np.sin(2 * np.pi * 10.0 * t), fs=fs, segment_length=400)
    df = spec.freqs_hz[1]
    assert spec.freqs_hz[np.argmax(spec.psd)] == pytest.approx(10.0)
    assert spec.psd.sum() * df == pytest.approx(amp ** 2 / 2, rel=1e-3)   # Parseval


def test_band_powers_alpha_sine():
    fs = 173.61
    t = np.arange(4097) / fs
    x = np.sin(2 * np.pi * 10.0 * t) + 0.05 * _noise(t.size, dtype=np.float64)
    bp = bf.band_powers(x, fs=fs)
    assert bp.names == ["delta", "theta", "alpha", "beta", "gamma"]
    assert bp.relative[2] > 0.95
    assert bp.relative.sum() == pytest.approx(1.0)
    assert bp.absolute[2] == pytest.approx(0.5, rel=0.05)


def test_band_powers_caps_at_nyquist_and_rejects_bands_above():
    x = _noise(2000, dtype=np.float64)
    bp = bf.band_powers(x, fs=80.0)
    assert bp.bands_hz["gamma"][1] == pytest.approx(40.0)
    with pytest.raises(ValueError, match="band 'hi' starts at 50 Hz"):
        bf.band_powers(x, fs=80.0, bands_hz={"hi": (50.0, 60.0)})


# ------------------------------------------------------------------------------------------
# Errors

def test_argument_errors_name_the_argument():
    x = _noise(1000)
    with pytest.raises(ValueError, match="n_fft is 0, expected a positive integer"):
        bf.stft(x, n_fft=0)
    with pytest.raises(ValueError, match="win_length is 512, expected at most n_fft=256"):
        bf.stft(x, n_fft=256, win_length=512)
    with pytest.raises(ValueError, match="fs is -1"):
        bf.mel_spectrogram(x, fs=-1)
    with pytest.raises(ValueError, match="window is 'kaiser'"):
        bf.stft(x, n_fft=256, window="kaiser")
    with pytest.raises(ValueError, match="too short for pad_mode='reflect'"):
        bf.stft(x[:100], n_fft=256, pad_mode="reflect")
    with pytest.raises(ValueError, match="has 0 samples"):
        bf.spectrogram(np.zeros((2, 0)), n_fft=16)
    with pytest.raises(ValueError, match="n_mfcc is 50, expected at most n_mels=40"):
        bf.mfcc(x, fs=8000, n_fft=256, n_mels=40, n_mfcc=50)
    with pytest.raises(ValueError, match="width is 4"):
        bf.deltas(np.zeros((3, 10)), width=4)
    with pytest.raises(TypeError, match="expected a real numeric array"):
        bf.stft(np.array(["a", "b"]), n_fft=4)


def test_kaldi_fbank_rejects_short_input_and_bad_options():
    x = _noise((2, 4000)) * 1000
    with pytest.raises(ValueError, match="signal: 399 samples, fewer than one frame: "
                                         "frame_length_ms=25 is 400 samples at fs=16000 Hz"):
        bf.kaldi_fbank(x[:, :399], fs=16000)
    with pytest.raises(ValueError, match="signal: 399 samples"):       # either edge mode
        bf.kaldi_fbank(x[:, :399], fs=16000, snip_edges=False)
    with pytest.raises(ValueError, match="has 0 samples"):
        bf.kaldi_fbank(np.zeros((2, 0)), fs=16000)
    with pytest.raises(ValueError, match=r"signal: 4000 samples \(0.25 s at fs=16000 Hz\), "
                                         r"shorter than min_duration=0.5 s"):
        bf.kaldi_fbank(x, fs=16000, min_duration=0.5)
    with pytest.raises(ValueError, match="frame_shift_ms is 0.01, which is 0 samples"):
        bf.kaldi_fbank(x, fs=16000, frame_shift_ms=0.01)
    with pytest.raises(ValueError, match="frame_length_ms is 25.0625, an odd 401 samples"):
        bf.kaldi_fbank(x, fs=16000, frame_length_ms=25.0625, round_to_power_of_two=False)
    with pytest.raises(ValueError, match="num_mel_bins is 3, expected more than 3"):
        bf.kaldi_fbank(x, fs=16000, num_mel_bins=3)
    with pytest.raises(ValueError, match="window_type is 'kaiser'"):
        bf.kaldi_fbank(x, fs=16000, window_type="kaiser")
    with pytest.raises(ValueError, match="preemphasis_coefficient is 1.5"):
        bf.kaldi_fbank(x, fs=16000, preemphasis_coefficient=1.5)
    with pytest.raises(ValueError, match="low_freq is 9000 and high_freq is 0"):
        bf.kaldi_fbank(x, fs=16000, low_freq=9000.0)
    with pytest.raises(ValueError, match="dither is -1.0"):
        bf.kaldi_fbank(x, fs=16000, dither=-1)
    with pytest.raises(ValueError, match="channel is 1"):
        bf.kaldi_fbank(x, fs=16000, channel=1)
    with pytest.raises(TypeError, match="'use_enrgy' is not an option"):
        bf.kaldi_fbank(x, fs=16000, use_enrgy=True)
    with pytest.raises(TypeError, match="pass 'sample_frequency' as fs="):
        bf.kaldi_fbank(x, fs=16000, sample_frequency=8000)
