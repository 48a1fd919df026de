"""Loading every format in ../shared/data, and one clear InputError for each kind of bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import biosig
from biosig.errors import BiosigError, InputError


# ---------------------------------------------------------------- real recordings, every format
@pytest.mark.parametrize("rel,fs,n_ch,n_samples", [
    ("ecg/mitdb/100.hea", 360.0, 2, 650000),
    ("ecg/mitdb/208", 360.0, 2, 650000),
    ("ecg/mitdb/208.dat", 360.0, 2, 650000),
    ("ecg/cinc2017_af/training2017/A00155.mat", 300.0, 1, 9000),
    ("pcg/circor2022/training_data/49823_PV.wav", 4000.0, 1, 95168),
    ("pcg/circor2022/training_data/49823_PV.hea", 4000.0, 1, 95168),
    ("lung/icbhi2017/audio_and_txt_files/104_1b1_Al_sc_Litt3200.wav", None, 1, None),
    ("eeg/bonn/A_Z/Z001.txt", 173.61, 1, 4097),
    ("eeg/eegmmidb/S001/S001R01.edf", 160.0, 64, 9760),
    ("speech/fleurs_en/fleurs-en-000.ogg", 16000.0, 1, None),
    ("speech/librispeech_test_clean_mini/test-clean/1089/134686/1089-134686-0000.flac",
     16000.0, 1, 166960),
])
def test_load_real_formats(data_root, rel, fs, n_ch, n_samples):
    sig = biosig.load(data_root / rel)
    assert sig.data.dtype == np.float32 and sig.data.ndim == 2
    assert sig.n_channels == n_ch
    if fs is not None:
        assert sig.fs == pytest.approx(fs)
    if n_samples is not None:
        assert sig.n_samples == n_samples
    assert np.isfinite(sig.data).all()
    rec = biosig.info(data_root / rel)
    assert (rec.fs, rec.n_samples, rec.n_channels) == (sig.fs, sig.n_samples, sig.n_channels)


def test_mp3_cough(data_root):
    mp3 = sorted((data_root / "cough/covid19_cough/raw").glob("*.mp3"))[0]
    sig = biosig.load(mp3)
    assert sig.fs > 0 and sig.n_samples > 1000 and sig.units[0] == "FS"
    assert np.abs(sig.data).max() <= 1.0


def test_wfdb_annotations_and_physical_units(data_root, mitdb_100):
    import wfdb
    sig = mitdb_100
    ref = wfdb.rdann(str(data_root / "ecg/mitdb/100"), "atr")
    assert len(sig.annotations) == len(ref.sample)
    np.testing.assert_array_equal(sig.annotations.samples(sig.fs), ref.sample)
    assert sig.annotations.labels == list(ref.symbol)
    assert sig.channels == ["MLII", "V5"] and sig.units == ["mV", "mV"]
    rec = wfdb.rdrecord(str(data_root / "ecg/mitdb/100"), sampto=1000)
    np.testing.assert_allclose(sig.data[:, :1000], rec.p_signal.T, atol=1e-6)
    assert "(N" in sig.annotations.aux  # rhythm annotation text is kept
    none = biosig.load(data_root / "ecg/mitdb/100.hea", annotations=None)
    assert none.annotations is None


def test_edf_plus_annotations_in_microvolts(data_root):
    import mne
    path = data_root / "eeg/eegmmidb/S001/S001R01.edf"
    sig = biosig.load(path)
    raw = mne.io.read_raw_edf(path, preload=True, verbose="error", encoding="latin1")
    np.testing.assert_allclose(sig.data, raw.get_data() * 1e6, rtol=1e-5, atol=1e-3)
    assert sig.units[0] == "uV" and sig.start_time is not None
    assert len(sig.annotations) >= 1 and sig.annotations.labels[0].startswith("T")


def test_resample_on_load_keeps_annotation_times(data_root, mitdb_100):
    sig = mitdb_100
    r = biosig.load(data_root / "ecg/mitdb/100.hea", target_fs=250.0)
    assert r.fs == 250.0 and r.n_samples == int(np.ceil(650000 * 250 / 360))
    np.testing.assert_array_equal(r.annotations.onset_s, sig.annotations.onset_s)
    assert r.duration_s == pytest.approx(sig.duration_s, abs=0.01)


def test_channels_and_crop(data_root, mitdb_100):
    sig = biosig.load(data_root / "ecg/mitdb/100.hea", channels=["V5"])
    assert sig.channels == ["V5"] and sig.n_channels == 1
    np.testing.assert_array_equal(sig.data[0], mitdb_100.channel("V5"))
    c = mitdb_100.crop(10.0, 20.0)
    assert c.n_samples == 3600
    assert all(0 <= t < 10.0 for t in c.annotations.onset_s)
    with pytest.raises(InputError, match=r"channels \['XX'\] not found"):
        biosig.load(data_root / "ecg/mitdb/100.hea", channels=["XX"])


def test_delhi_mat_needs_source_fs(data_root):
    path = data_root / "eeg/delhi_epilepsy/ictal/ictal1.mat"
    with pytest.raises(InputError, match="source_fs"):
        biosig.load(path)
    assert biosig.load(path, source_fs=200).duration_s == pytest.approx(5.12)


# ---------------------------------------------------------------- bad input: one clear line each
def _one_line_naming(exc: BaseException, path: Path) -> None:
    msg = str(exc)
    assert "\n" not in msg
    assert str(path) in msg or path.name in msg
    assert isinstance(exc, BiosigError) and isinstance(exc, (OSError, ValueError))


def _copy_record(data_root: Path, tmp_path: Path, name: str = "100") -> Path:
    for ext in ("hea", "dat", "atr"):
        shutil.copy(data_root / f"ecg/mitdb/{name}.{ext}", tmp_path / f"{name}.{ext}")
    return tmp_path / f"{name}.hea"


def test_missing_file(tmp_path):
    p = tmp_path / "nope.wav"
    with pytest.raises(InputError, match="file not found") as e:
        biosig.load(p)
    _one_line_naming(e.value, p)
    assert isinstance(e.value, OSError)


def test_unknown_extension(tmp_path):
    p = tmp_path / "x.xyz"
    p.write_bytes(b"123")
    with pytest.raises(InputError, match="unknown file extension '.xyz'") as e:
        biosig.load(p)
    _one_line_naming(e.value, p)


def test_corrupt_wfdb_header(tmp_path, data_root):
    hea = _copy_record(data_root, tmp_path)
    hea.write_text("this is not a header\n")
    with pytest.raises(InputError, match="corrupt WFDB header") as e:
        biosig.load(hea)
    _one_line_naming(e.value, hea)


def test_truncated_dat(tmp_path, data_root):
    hea = _copy_record(data_root, tmp_path)
    dat = tmp_path / "100.dat"
    dat.write_bytes(dat.read_bytes()[:100000])
    with pytest.raises(InputError, match="truncated") as e:
        biosig.load(hea)
    _one_line_naming(e.value, hea)


def test_missing_dat(tmp_path, data_root):
    hea = _copy_record(data_root, tmp_path)
    (tmp_path / "100.dat").unlink()
    with pytest.raises(InputError, match="100.dat named in the header is missing"):
        biosig.load(hea)
    with pytest.raises(InputError, match="missing"):
        biosig.info(hea)


@pytest.mark.parametrize("fs_text", ["0", "-360"])
def test_zero_or_negative_fs_in_header(tmp_path, data_root, fs_text):
    hea = _copy_record(data_root, tmp_path)
    lines = hea.read_text().splitlines()
    lines[0] = f"100 2 {fs_text} 650000"
    hea.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="sampling rate|corrupt WFDB header") as e:
        biosig.load(hea)
    _one_line_naming(e.value, hea)


def test_wrong_sampling_rate(tmp_path, data_root):
    with pytest.raises(InputError, match="sampling rate is 360 Hz, expected 250 Hz"):
        biosig.load(data_root / "ecg/mitdb/100.hea", expected_fs=250)


def test_nan_samples(tmp_path):
    p = tmp_path / "nan.wav"
    x = np.sin(np.linspace(0, 100, 8000)).astype(np.float32)
    x[100:110] = np.nan
    sf.write(p, x, 8000, subtype="FLOAT")
    with pytest.raises(InputError, match="10 NaN/inf samples") as e:
        biosig.load(p)
    _one_line_naming(e.value, p)
    fixed = biosig.load(p, on_nan="interpolate")
    assert np.isfinite(fixed.data).all()


def test_all_nan_channel(tmp_path):
    p = tmp_path / "allnan.wav"
    x = np.full((4000, 2), np.nan, dtype=np.float32)
    x[:, 0] = np.sin(np.arange(4000))
    sf.write(p, x, 4000, subtype="FLOAT")
    with pytest.raises(InputError, match="channel 1 has no finite value"):
        biosig.load(p, on_nan="interpolate")


def test_empty_files(tmp_path):
    zero_bytes = tmp_path / "empty.wav"
    zero_bytes.write_bytes(b"")
    with pytest.raises(InputError, match="empty") as e:
        biosig.load(zero_bytes)
    _one_line_naming(e.value, zero_bytes)
    no_frames = tmp_path / "noframes.wav"
    sf.write(no_frames, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(InputError, match="empty"):
        biosig.load(no_frames)
    txt = tmp_path / "empty.txt"
    txt.write_text("\n\n")
    with pytest.raises(InputError, match="empty"):
        biosig.load(txt)


def test_silent_file(tmp_path):
    p = tmp_path / "silent.wav"
    sf.write(p, np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(InputError, match="silent") as e:
        biosig.load(p)
    _one_line_naming(e.value, p)
    assert biosig.load(p, allow_silent=True).n_samples == 16000


@pytest.mark.parametrize("name", ["bad.wav", "bad.flac", "bad.mp3", "bad.edf", "bad.mat"])
def test_corrupt_content(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(b"\x00\x01garbage" * 50)
    with pytest.raises(InputError) as e:
        biosig.load(p, source_fs=100)
    _one_line_naming(e.value, p)


def test_text_not_numbers(tmp_path):
    p = tmp_path / "words.txt"
    p.write_text("hello\nworld\n")
    with pytest.raises(InputError, match="not a number"):
        biosig.load(p, source_fs=100)


def test_errors_pickle_for_worker_processes(tmp_path):
    import pickle
    err = InputError(tmp_path / "a.wav", "file not found")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) and back.path == err.path


# ---------------------------------------------------------------- sampling-rate arguments
def test_fs_argument_mistakes_are_value_errors(tmp_path, data_root):
    path = data_root / "eeg/bonn/A_Z/Z001.txt"
    for kwargs, match in [({"source_fs": -1}, r"source_fs is -1 Hz, expected a positive"),
                          ({"target_fs": 0}, r"target_fs is 0 Hz, expected a positive"),
                          ({"target_fs": "fast"}, r"target_fs is 'fast', expected a sampling "
                                                  r"rate in Hz")]:
        with pytest.raises(ValueError, match=match) as e:
            biosig.load(path, **kwargs)
        assert not isinstance(e.value, InputError)   # the argument is wrong, not the file
    with pytest.raises(ValueError, match=r"source_fs is nan Hz"):
        biosig.info(path, source_fs=float("nan"))


def test_absurd_fs_in_header_names_the_file(tmp_path, data_root):
    hea = _copy_record(data_root, tmp_path)
    lines = hea.read_text().splitlines()
    lines[0] = "100 2 5000000 650000"
    hea.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"sampling rate in header is 5e\+06 Hz, expected at "
                                         r"most 1e\+06 Hz") as e:
        biosig.info(hea)
    _one_line_naming(e.value, hea)


# ---------------------------------------------------------------- MATLAB orientation
@pytest.mark.parametrize("stored", ["channels_last", "channels_first", "vector", "column"])
def test_mat_orientation_time_last(tmp_path, stored):
    """A MATLAB array (n_samples, n_channels) or (n_channels, n_samples) is read with time on
    the last axis: the longer dimension is time."""
    import scipy.io
    x = np.stack([np.arange(1000.0), -np.arange(1000.0), np.full(1000, 7.0)])  # (3, 1000)
    if stored in ("vector", "column"):
        x = x[:1]
    arr = {"channels_last": x.T, "channels_first": x, "vector": x[0],
           "column": x[0][:, None]}[stored]
    p = tmp_path / f"{stored}.mat"
    scipy.io.savemat(p, {"eeg": arr, "small": np.ones((2, 2))})   # the largest array is read
    sig = biosig.load(p, source_fs=250)
    assert sig.data.shape == x.shape and sig.fs == 250.0
    np.testing.assert_array_equal(sig.data, x.astype(np.float32))
    assert sig.channels == (["eeg"] if x.shape[0] == 1 else ["eeg0", "eeg1", "eeg2"])
    rec = biosig.info(p, source_fs=250)
    assert (rec.n_channels, rec.n_samples) == x.shape


# ---------------------------------------------------------------- EDF units per channel
def _write_edf(path: Path, channels, *, fs: int, duration_s: int) -> None:
    """A plain EDF (one-second records, 16-bit) written by hand after the EDF specification
    (Kemp et al. 1992): ``channels`` is a list of (label, unit, physical values, phys min,
    phys max)."""
    ns = len(channels)

    def field(value, width):
        text = str(value)
        assert len(text) <= width, (text, width)
        return text.ljust(width).encode("latin-1")

    head = (field("0", 8) + field("X X X X", 80) + field("Startdate 01-JAN-2020 X X X", 80)
            + field("01.01.20", 8) + field("00.00.00", 8) + field(256 * (ns + 1), 8)
            + field("", 44) + field(duration_s, 8) + field(1, 8) + field(ns, 4))
    for k in range(10):
        for label, unit, _, lo, hi in channels:
            head += (field(label, 16), field("", 80), field(unit, 8), field(lo, 8),
                     field(hi, 8), field(-32768, 8), field(32767, 8), field("", 80),
                     field(fs, 8), field("", 32))[k]
    digital = [np.round((x - lo) / (hi - lo) * 65535 - 32768).astype("<i2").reshape(-1, fs)
               for _, _, x, lo, hi in channels]
    body = b"".join(np.concatenate([d[r] for d in digital]).tobytes()
                    for r in range(duration_s))
    path.write_bytes(head + body)


def test_edf_channels_keep_their_own_units(tmp_path):
    """EEG in uV, ECG in mV, a temperature in degC in one EDF: each channel comes back in the
    unit its header declares, with its physical values (to the 16-bit resolution)."""
    fs, dur = 100, 3
    t = np.arange(fs * dur) / fs
    eeg = 50.0 * np.sin(2 * np.pi * 5 * t)          # uV
    ecg = 1.5 * np.sin(2 * np.pi * 1 * t)           # mV
    temp = 36.6 + 0.1 * np.sin(2 * np.pi * 0.5 * t)  # degC
    p = tmp_path / "psg.edf"
    _write_edf(p, [("EEG Fz", "uV", eeg, -200, 200), ("ECG", "mV", ecg, -5, 5),
                   ("Temp", "degC", temp, 30, 40)], fs=fs, duration_s=dur)
    sig = biosig.load(p)
    assert sig.channels == ["EEG Fz", "ECG", "Temp"] and sig.fs == 100.0
    assert sig.units == ["uV", "mV", "degC"]
    assert biosig.info(p).units == sig.units
    lsb = np.array([400, 10, 10]) / 65535                       # one digital step per channel
    err = np.abs(sig.data - np.stack([eeg, ecg, temp])).max(axis=1)
    assert np.all(err <= lsb), err
