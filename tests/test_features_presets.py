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
    "eeg-eegmmidb": ("eeg/eegmmidb/S001/S001R01.edf", {"notch_hz": 60.0}),
}


@pytest.fixture(scope="module")
def mitdb_100(data_root):
    return biosig.load(data_root / "ecg/mitdb/100.hea").crop(0.0, 120.0)


def _load(data_root, key, mitdb_100):
    if key == "ecg":
        return mitdb_100
    return biosig.load(data_root / RECORDINGS[key][0])


@pytest.mark.parametrize("key", list(RECORDINGS))
def test_preset_runs_on_real_recording(data_root, mitdb_100, key):
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
    row = bf.summarize(fset)
    assert row and all(np.isfinite(v) for v in row.values())


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
    cfg = bf.make_config("eeg", {"band_hz": [1, 30], "notch_hz": None, "filter_order": 2.0,
                                 "bands_hz": {"alpha": [8, 13]}})
    assert cfg.band_hz == (1.0, 30.0) and cfg.notch_hz is None and cfg.filter_order == 2
    assert cfg.bands_hz == {"alpha": (8.0, 13.0)}
    with pytest.raises(ConfigError, match="unknown key 'n_mel' for modality 'pcg'; expected one "
                                          "of .*n_mels"):
        bf.make_config("pcg", {"n_mel": 32})
    with pytest.raises(ConfigError, match=r"cough.n_mfcc: expected int, got 'many'"):
        bf.make_config("cough", {"n_mfcc": "many"})
    with pytest.raises(ConfigError, match=r"ecg.band_hz: expected tuple"):
        bf.make_config("ecg", {"band_hz": [1, 2, 3]})
    with pytest.raises(ConfigError, match="modality is 'emg'"):
        bf.make_config("emg")


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
    with pytest.raises(ConfigError, match="pcg: window_s=0.0001 s"):
        bf.compute_features(sig, modality="pcg", window_s=0.0001)


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
