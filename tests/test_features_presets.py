"""biosig.features presets: every modality on a real recording, configs, FeatureSet files."""

from __future__ import annotations

import numpy as np
import pytest

import biosig
import biosig.features as bf
from biosig.ecg import BEAT_LABELS
from biosig.errors import ConfigError, InputError
from biosig.manifests import read_icbhi_cycles

ICBHI = "lung/icbhi2017/audio_and_txt_files/104_1b1_Al_sc_Litt3200"
RECORDINGS = {
    "pcg": ("pcg/circor2022/training_data/49823_PV.wav", {}),
    "lung": (ICBHI + ".wav", {}),
    "cough": ("cough/covid19_cough/raw/002f642a-8406-49c0-bf19-310ad1c342de.mp3", {}),
    "speech": ("speech/librispeech_test_clean_mini/test-clean/1089/134686/1089-134686-0000.flac",
               {}),
    "ecg": ("ecg/mitdb/100.hea", {}),
    "eeg-bonn": ("eeg/bonn/A_Z/Z001.txt", {}),
    "eeg-eegmmidb": ("eeg/eegmmidb/S001/S001R01.edf", {"powerline_hz": 60.0}),
}


@pytest.fixture(scope="module")
def mitdb_100(data_root):
    return biosig.load(data_root / "ecg/mitdb/100.hea").crop(0.0, 120.0)


def _load(data_root, key, mitdb_100):
    if key == "ecg":
        return mitdb_100
    return biosig.load(data_root / RECORDINGS[key][0])


@pytest.mark.parametrize("key", list(RECORDINGS))
def test_preset_shapes_axes_and_summary_on_real_recording(data_root, mitdb_100, key):
    modality = key.split("-")[0]
    sig = _load(data_root, key, mitdb_100)
    fset = bf.compute_features(sig, modality=modality, **RECORDINGS[key][1])
    assert fset.modality == modality and fset.channels == sig.channels
    assert set(fset.axes) == set(fset.arrays)
    for name, arr in fset.arrays.items():
        assert arr.ndim == len(fset.axes[name]), name
        assert np.isfinite(arr).all(), name
        if "channel" in fset.axes[name]:
            assert arr.shape[fset.axes[name].index("channel")] == sig.n_channels, name
        if fset.axes[name][-1] in ("time", "frame"):
            # the last axis spans the recording at rate_hz (frames: one extra when centred)
            span_s = arr.shape[-1] / fset.rate_hz[name]
            if not name.startswith(("beats", "cycle")):
                assert abs(span_s - sig.duration_s) < 0.1 * sig.duration_s + 1.0, name
    # the summary row holds the arrays' own statistics
    row = bf.summarize(fset)
    for name in ("log_mel", "mfcc", "spectrogram"):
        if name in fset:
            arr = fset[name]
            last = arr.shape[1] - 1
            w = max(2, len(str(last)))                 # zero-padded coefficient index
            assert row[f"{name}_mean_{0:0{w}d}"] == pytest.approx(float(arr[:, 0].mean()),
                                                                  rel=1e-5)
            assert row[f"{name}_std_{last:0{w}d}"] == pytest.approx(float(arr[:, last].std()),
                                                                    rel=1e-4)
    if "relative_band_power" in fset:
        ch, band = fset.channels[0], fset.labels["band"][2]
        assert row[f"relative_band_power_{ch}_{band}"] == fset["relative_band_power"][0, 2]


# ---------------------------------------------------------------- values against references

def test_pcg_preset_matches_scipy_and_librosa(data_root):
    """Band-pass as scipy's zero-phase Butterworth, log-mel as librosa's, on a real PCG."""
    librosa = pytest.importorskip("librosa")
    from scipy import signal as ss
    sig = biosig.load(data_root / RECORDINGS["pcg"][0]).crop(0.0, 10.0)
    assert sig.fs == 4000.0
    fset = bf.compute_features(sig, modality="pcg")
    sos = ss.butter(4, (25.0, 400.0), btype="bandpass", fs=4000.0, output="sos")
    ref = ss.sosfiltfilt(sos, sig.data[0].astype(np.float64))
    np.testing.assert_allclose(fset["signal"][0], ref, atol=1e-4 * np.abs(ref).max())
    y = fset["signal"][0].astype(np.float64)          # n_fft 256 (64 ms), hop 64 (16 ms)
    mel = librosa.feature.melspectrogram(y=y, sr=4000, n_fft=256, hop_length=64, n_mels=64,
                                         fmin=25.0, fmax=1000.0, pad_mode="constant")
    ref_db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)
    assert fset["log_mel"].shape == (1, *ref_db.shape)
    assert np.abs(fset["log_mel"][0] - ref_db).max() < 5e-3     # float32 dB rounding
    assert fset.config["n_fft"] == 256 and fset.config["hop_length"] == 64


def test_pcg_band_pass_and_envelope_of_tones():
    """Known answers: 25-400 Hz keeps a 100 Hz tone and removes a 900 Hz one; the
    homomorphic envelope of a steady tone is its amplitude."""
    fs = 4000.0
    t = np.arange(int(4 * fs)) / fs
    x = 0.5 * np.sin(2 * np.pi * 100 * t) + 0.5 * np.sin(2 * np.pi * 900 * t)
    fset = bf.compute_features(x.astype(np.float32), fs=fs, modality="pcg")
    mid = slice(int(fs), int(3 * fs))                  # away from the filter's edges
    kept = fset["signal"][0, mid]
    assert np.sqrt(np.mean(kept ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
    resid = kept - 0.5 * np.sin(2 * np.pi * 100 * t[mid])
    assert np.sqrt(np.mean(resid ** 2)) < 0.01          # the 900 Hz tone is gone (< -30 dB)
    env = fset["envelope"][0]
    assert fset.rate_hz["envelope"] == 50.0 and env.size == 200
    assert np.median(env[50:150]) == pytest.approx(0.5, rel=0.05)
    # the log-mel peaks in the band holding 100 Hz (librosa's mel band centres)
    librosa = pytest.importorskip("librosa")
    centres = librosa.mel_frequencies(n_mels=66, fmin=25.0, fmax=1000.0)[1:-1]
    peak = int(np.argmax(fset["log_mel"][0].mean(axis=-1)))
    assert abs(centres[peak] - 100.0) <= np.diff(centres)[max(peak - 1, 0)]


def test_lung_preset_resamples_and_keeps_a_tone():
    fs = 44100.0
    t = np.arange(int(3 * fs)) / fs
    x = np.sin(2 * np.pi * 300 * t) + 0.3 * np.sin(2 * np.pi * 20 * t)   # 20 Hz: below band
    fset = bf.compute_features(x.astype(np.float32), fs=fs, modality="lung")
    assert fset.fs == 4000.0 and fset["signal"].shape[-1] == 12000
    # 50-2000 Hz at 4 kHz is a 50 Hz high-pass: the 300 Hz tone stays, the 20 Hz one goes
    mid = fset["signal"][0, 2000:10000]
    spec = np.abs(np.fft.rfft(mid)) / mid.size * 2
    f = np.fft.rfftfreq(mid.size, 1 / 4000)
    assert spec[np.argmin(abs(f - 300))] == pytest.approx(1.0, rel=0.02)
    assert spec[np.argmin(abs(f - 20))] < 0.3 * 0.1
    librosa = pytest.importorskip("librosa")
    centres = librosa.mel_frequencies(n_mels=66, fmin=50.0, fmax=2000.0)[1:-1]
    peak = int(np.argmax(fset["log_mel"][0].mean(axis=-1)))
    assert abs(centres[peak] - 300.0) <= np.diff(centres)[max(peak - 1, 0)]


def test_cough_preset_matches_librosa(data_root):
    librosa = pytest.importorskip("librosa")
    sig = biosig.load(data_root / RECORDINGS["cough"][0], target_fs=16000)
    fset = bf.compute_features(sig, modality="cough")
    y = sig.data[0].astype(np.float64)                 # n_fft 512 (32 ms), hop 160 (10 ms)
    kw = dict(sr=16000, n_fft=512, hop_length=160, n_mels=64, fmin=0.0, fmax=8000.0,
              pad_mode="constant")
    ref_db = librosa.power_to_db(librosa.feature.melspectrogram(y=y, **kw), ref=1.0,
                                 amin=1e-10, top_db=80.0)
    assert np.abs(fset["log_mel"][0] - ref_db).max() < 5e-3
    ref_mfcc = librosa.feature.mfcc(S=ref_db, n_mfcc=13)
    np.testing.assert_allclose(fset["mfcc"][0], ref_mfcc, atol=2e-2)
    # deltas: librosa's regression away from the edges (librosa pads by interpolation)
    d = librosa.feature.delta(fset["mfcc"][0].astype(np.float64), width=9)
    np.testing.assert_allclose(fset["mfcc_delta"][0][:, 4:-4], d[:, 4:-4], atol=1e-3)


def test_ecg_spectrogram_and_beats_of_a_synthetic_ecg():
    fs = 360.0
    n = int(20 * fs)
    x = 0.2 * np.sin(2 * np.pi * 10 * np.arange(n) / fs)
    peaks = np.arange(180, n - 180, 270)               # every 0.75 s: 80 bpm
    x[peaks] += 2.0
    fset = bf.compute_features(x.astype(np.float32), fs=fs, modality="ecg", r_peaks=peaks)
    pre = fset.config["beat_offset_samples"]
    assert pre == 90 and fset["beats"].shape == (len(peaks), 1, 90 + 162)
    np.testing.assert_array_equal(fset["beats"][:, 0, pre], fset["signal"][0, peaks])
    freqs = fset["spectrogram_freqs_hz"]
    # 2 s frames (720 samples) in a 1024-point FFT (n_fft: pow2), bins from 0.5 to 50 Hz
    assert (fset.config["win_length"], fset.config["n_fft"]) == (720, 1024)
    assert freqs.min() >= 0.5 and freqs.max() <= 50.0
    np.testing.assert_allclose(np.diff(freqs), fs / 1024)
    # the 10 Hz sine is the strongest line once the impulses' flat spectrum is averaged out
    assert abs(freqs[np.argmax(fset["spectrogram"][0].mean(axis=-1))] - 10.0) <= fs / 720
    row = bf.summarize(fset)
    assert row["heart_rate_bpm"] == pytest.approx(80.0) and row["n_beats"] == len(peaks)


def test_eeg_band_power_of_a_sine_is_its_variance():
    fs = 173.61
    t = np.arange(4097) / fs
    x = (2.0 * np.sin(2 * np.pi * 10 * t)).astype(np.float32)
    fset = bf.compute_features(x, fs=fs, modality="eeg")
    alpha = fset.labels["band"].index("alpha")
    # Welch PSD integrates to the variance A^2 / 2 = 2, all of it in the alpha band
    assert fset["band_power"][0, alpha] == pytest.approx(2.0, rel=0.05)
    assert fset["psd_freqs_hz"][np.argmax(fset["psd"][0])] == pytest.approx(10.0, abs=0.5)
    assert fset["psd_freqs_hz"].max() <= 45.0


def test_lung_cycles_from_icbhi_table(data_root):
    sig = biosig.load(data_root / (ICBHI + ".wav"))
    cycles = read_icbhi_cycles(data_root / (ICBHI + ".txt")).intervals()
    n_lines = len((data_root / (ICBHI + ".txt")).read_text().split())
    assert cycles.shape == (n_lines // 4, 2)
    fset = bf.compute_features(sig, modality="lung", cycles_s=cycles, cycle_duration_s=4.0)
    hop = fset.config["hop_length"]
    assert fset.fs == 4000.0
    assert fset["cycle_log_mel"].shape == (len(cycles), 1, 64, 1 + 16000 // hop)
    lengths = np.minimum(cycles[:, 1] - cycles[:, 0], 4.0)
    np.testing.assert_allclose(fset["cycle_n_frames"], 1 + np.round(lengths * 4000) // hop,
                               atol=1)
    # a cycle's crop equals the same part of the whole-recording log-mel away from its edges
    # (up to the per-item 80 dB floor)
    with pytest.raises(InputError, match="cycles_s: cycle 0 is"):
        bf.compute_features(sig, modality="lung", cycles_s=[[3.0, 2.0]])


def test_ecg_beats_are_detected_by_default_and_match_reference(mitdb_100):
    # no reference labels leak into features unless asked: beats come from ecg_peaks
    fset = bf.compute_features(mitdb_100, modality="ecg")
    assert fset.config["beat_source"] == "ecg_peaks"
    ann = mitdb_100.annotations
    beats = np.array([lab in BEAT_LABELS for lab in ann.labels])
    ref = ann.samples(mitdb_100.fs)[beats]
    det = fset["r_peaks"]
    tol = int(0.15 * mitdb_100.fs)                   # EC57 matching window
    nearest = np.abs(ref[:, None] - det[None, :]).min(axis=1)
    assert np.mean(nearest <= tol) > 0.99 and abs(det.size - ref.size) <= 5
    row = bf.extract_features(mitdb_100, modality="ecg")
    assert row["n_beats"] == det.size and 60 < row["heart_rate_bpm"] < 90
    assert 0 < row["rr_cv"] < 0.2 and 0 <= row["pnn50"] <= 1   # sinus rhythm: regular


def test_rr_statistics_by_hand():
    from biosig.ecg.hrv import rr_statistics
    peaks = np.array([0, 100, 210, 300, 420])        # fs 100 Hz: RR 1.0, 1.1, 0.9, 1.2 s
    st = rr_statistics(peaks, fs=100.0)
    rr = np.array([1.0, 1.1, 0.9, 1.2])
    d = np.diff(rr)
    assert st["n_beats"] == 5 and st["rr_mean_s"] == pytest.approx(rr.mean())
    assert st["rr_std_s"] == pytest.approx(rr.std())
    assert st["rmssd_s"] == pytest.approx(np.sqrt(np.mean(d ** 2)))
    assert st["pnn50"] == pytest.approx(1.0)          # every |difference| > 50 ms
    assert st["heart_rate_bpm"] == pytest.approx(60 / np.median(rr))
    assert st["rr_iqr_s"] == pytest.approx(np.percentile(rr, 75) - np.percentile(rr, 25))
    assert np.isnan(rr_statistics(np.array([5]), fs=100.0)["rr_mean_s"])


def test_ecg_beats_from_annotations_when_asked(mitdb_100):
    fset = bf.compute_features(mitdb_100, modality="ecg", beats="annotations")
    ann = mitdb_100.annotations
    beats = [lab in BEAT_LABELS for lab in ann.labels]
    ref = ann.samples(mitdb_100.fs)[np.array(beats)]
    pre = fset.config["beat_offset_samples"]
    inside = ref[(ref >= pre) & (ref + int(round(0.45 * 360)) <= mitdb_100.n_samples)]
    np.testing.assert_array_equal(fset["beat_samples"], inside)
    np.testing.assert_array_equal(fset["beats"][:, :, pre], fset["signal"][:, inside].T)
    assert fset["beats"].shape[1:] == (2, int(round(0.25 * 360)) + int(round(0.45 * 360)))
    row = bf.extract_features(mitdb_100, modality="ecg", beats="annotations")
    assert 60 < row["heart_rate_bpm"] < 90           # record 100: sinus rhythm about 75 bpm
    # explicit R peaks win over the record's annotations
    fset2 = bf.compute_features(mitdb_100, modality="ecg", r_peaks=inside[:10])
    assert fset2["beats"].shape[0] == 10 and fset2.config["beat_source"] == "r_peaks"


def test_ecg_band_pass_removes_baseline(mitdb_100):
    fset = bf.compute_features(mitdb_100, modality="ecg")
    assert abs(float(np.mean(mitdb_100.data[0]))) > 0.2          # raw MLII sits near -0.3 mV
    assert abs(float(np.mean(fset["signal"][0]))) < 0.02


def test_eeg_relative_band_powers(data_root):
    sig = biosig.load(data_root / "eeg/bonn/A_Z/Z001.txt")
    fset = bf.compute_features(sig, modality="eeg")
    assert fset.labels["band"] == ["delta", "theta", "alpha", "beta", "gamma"]
    np.testing.assert_allclose(fset["relative_band_power"].sum(axis=-1), 1.0, rtol=1e-5)
    # a 10 Hz sine with the same metadata is dominated by alpha
    t = np.arange(sig.n_samples) / sig.fs
    sine = biosig.Signal(np.sin(2 * np.pi * 10 * t)[None].astype(np.float32), fs=sig.fs,
                         channels=["EEG"], units=["uV"])
    rel = bf.compute_features(sine, modality="eeg")["relative_band_power"][0]
    assert np.argmax(rel) == 2 and rel[2] > 0.95


def test_speech_preset_is_whisper_log_mel(data_root):
    sig = biosig.load(data_root / RECORDINGS["speech"][0]).crop(0.0, 3.0)
    fset = bf.compute_features(sig, modality="speech")
    np.testing.assert_array_equal(fset["log_mel"],
                                  bf.whisper_log_mel(sig.data, fs=16000, pad_to_30s=False))
    assert fset.rate_hz["log_mel"] == 100.0


def test_config_overrides_are_typed():
    cfg = bf.make_config("eeg", {"band_hz": [1, 30], "powerline_hz": None, "filter_order": 2.0,
                                 "bands_hz": {"alpha": [8, 13]}})
    assert cfg.band_hz == (1.0, 30.0) and cfg.powerline_hz is None and cfg.filter_order == 2
    assert cfg.bands_hz == {"alpha": (8.0, 13.0)}
    assert isinstance(cfg.band_hz[0], float) and isinstance(cfg.filter_order, int)
    assert bf.make_config("eeg", {"frame_s": 1.0}, base=cfg).band_hz == (1.0, 30.0)
    with pytest.raises(ConfigError, match="modality is 'emg'"):
        bf.make_config("emg")
    with pytest.raises(ValueError, match="frozen"):
        cfg.frame_s = 3.0


@pytest.mark.parametrize("modality, overrides, match", [
    ("pcg", {"n_mel": 32}, r"^pcg: key 'n_mel': unknown key \(expected one of .*n_mels"),
    ("cough", {"n_mfcc": "many"}, r"^cough: key 'n_mfcc': Input should be a valid integer "
                                  r"\(got 'many'\)"),
    ("cough", {"n_mfcc": 2.5}, r"key 'n_mfcc': Input should be a valid integer \(got 2\.5\)"),
    ("pcg", {"frame_s": "0.1"}, r"key 'frame_s': Input should be a valid number"),
    ("pcg", {"frame_s": -0.064}, r"^pcg: key 'frame_s': Input should be greater than 0 "
                                  r"\(got -0\.064\)"),
    ("pcg", {"band_hz": [400, 25]}, r"^pcg: key 'band_hz': is \(400, 25\), expected \(lo, hi\) "
                                    r"with 0 <= lo < hi"),
    ("ecg", {"band_hz": [40, 40]}, r"key 'band_hz': is \(40, 40\)"),
    ("ecg", {"band_hz": [1, 2, 3]}, r"^ecg: key 'band_hz': Tuple should have at most 2 items"),
    ("ecg", {"beat_window_s": [-0.1, 0.4]}, r"key 'beat_window_s': is \(-0\.1, 0\.4\), "
                                            r"expected \(before_s >= 0, after_s > 0\)"),
    ("ecg", {"beats": "reference"}, r"key 'beats': Input should be 'detect' or 'annotations' "
                                    r"\(got 'reference'\)"),
    ("eeg", {"bands_hz": {"alpha": [13, 8]}}, r"key 'bands_hz\.alpha': is \(13, 8\)"),
    ("eeg", {"powerline_hz": 0}, r"key 'powerline_hz': Input should be greater than 0 \(got 0\)"),
    ("lung", {"fmin_hz": 2000.0}, r"^lung: fmin_hz is 2000 and fmax_hz 2000, expected "
                                  r"fmin_hz < fmax_hz"),
    ("lung", {"cycle_duration_s": 0}, r"key 'cycle_duration_s': Input should be greater than 0"),
    ("cough", {"delta_width": 4}, r"key 'delta_width': is 4, expected an odd integer >= 3"),
    ("cough", {"n_mfcc": 80}, r"n_mfcc is 80, expected at most n_mels \(64\)"),
    ("speech", {"target_fs": 8000.0}, r"key 'target_fs': is 8000, expected 16000"),
    ("speech", {"n_mels": 64}, r"key 'n_mels': Input should be 80 or 128 \(got 64\)"),
    ("speech", {"pad_to_30s": 1}, r"key 'pad_to_30s': Input should be a valid boolean"),
])
def test_config_errors_name_the_key_and_value(modality, overrides, match):
    with pytest.raises(ConfigError, match=match):
        bf.make_config(modality, overrides)


def test_config_classes_check_ranges_when_built():
    with pytest.raises(ConfigError, match=r"^PCGConfig: key 'band_hz': is \(400, 25\)"):
        bf.PCGConfig(band_hz=(400.0, 25.0))
    with pytest.raises(ConfigError, match=r"^EEGConfig: key 'windows': unknown key"):
        bf.EEGConfig(windows=2.0)
    assert bf.ECGConfig(band_hz=[1, 30]).band_hz == (1.0, 30.0)


def test_compute_features_argument_errors():
    sig = biosig.Signal(np.random.default_rng(0).standard_normal((1, 8000)).astype(np.float32),
                        fs=4000.0, channels=["pcg"], units=["FS"])
    with pytest.raises(ValueError, match="pass its sampling rate as fs="):
        bf.compute_features(sig.data, modality="pcg")
    with pytest.raises(ValueError, match="fs is 2000.0 but the Signal's rate is 4000 Hz"):
        bf.compute_features(sig, modality="pcg", fs=2000.0)
    # an array with its rate gives the same numbers as the Signal
    a = bf.extract_features(sig.data[0], modality="pcg", fs=4000.0)
    b = bf.extract_features(sig, modality="pcg")
    assert a.keys() == b.keys() and all(np.isclose(a[k], b[k], equal_nan=True) for k in a)
    with pytest.raises(ConfigError, match="cycles_s applies to modality 'lung'"):
        bf.compute_features(sig, modality="pcg", cycles_s=[[0, 1]])
    with pytest.raises(ConfigError, match="pcg: frame_s=0.0001 s"):
        bf.compute_features(sig, modality="pcg", frame_s=0.0001, hop_s=0.0001)


def test_feature_set_round_trip(tmp_path):
    t = np.arange(8000) / 4000
    sig = biosig.Signal((np.sin(2 * np.pi * 60 * t) * np.sin(2 * np.pi * t))[None]
                        .astype(np.float32), fs=4000.0, channels=["pcg"], units=["FS"],
                        path="x.wav")
    fset = bf.compute_features(sig, modality="pcg", n_mels=32)
    out = fset.save(tmp_path / "f.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npz"]     # no temporary left
    back = bf.load_feature_set(out)
    assert back.metadata() == fset.metadata()
    for k in fset.arrays:
        np.testing.assert_array_equal(back[k], fset[k])
    assert back.config["n_mels"] == 32 and back.rate_hz["envelope"] == 50.0
