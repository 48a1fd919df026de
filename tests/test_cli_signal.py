"""``biosig info``, ``biosig features`` and ``biosig plot``."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from biosig.cli import main

MITDB = "ecg/mitdb/100.hea"
ICBHI = "lung/icbhi2017/audio_and_txt_files/104_1b1_Al_sc_Litt3200"
BONN = "eeg/bonn/A_Z/Z001.txt"


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_info_one_line_per_recording(capsys, data_root):
    rc, out, err = _run(capsys, "info", data_root / MITDB, data_root / BONN,
                        data_root / (ICBHI + ".wav"))
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert len(lines) == 3
    assert "wfdb  2 ch [MLII,V5]  360 Hz  1805.56 s" in lines[0]
    assert "173.61 Hz" in lines[1]


def test_info_bad_files_reported_after_all_paths(capsys, data_root, tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    rc, out, err = _run(capsys, "info", tmp_path / "missing.wav", data_root / BONN,
                        tmp_path / "empty.wav")
    assert rc == 2
    assert len(out.splitlines()) == 1 and "Z001.txt" in out        # the good one still listed
    errs = err.splitlines()
    assert errs[0] == f"biosig: error: {tmp_path / 'missing.wav'}: file not found"
    assert errs[1].startswith(f"biosig: error: {tmp_path / 'empty.wav'}: ")
    assert errs[-1] == "biosig: error: 2 of 3 recordings failed"
    assert len(errs) == 3


def test_info_check_loads_the_data(capsys, data_root, tmp_path):
    # a WFDB record whose signal file is cut short: the header reads, the data does not
    for ext in ("hea", "atr"):
        shutil.copy(data_root / f"ecg/mitdb/100.{ext}", tmp_path / f"100.{ext}")
    (tmp_path / "100.dat").write_bytes((data_root / "ecg/mitdb/100.dat").read_bytes()[:3000])
    rc, out, err = _run(capsys, "info", tmp_path / "100.hea")
    assert rc == 0 and "650000 samples" in out
    rc, out, err = _run(capsys, "info", "--check", tmp_path / "100.hea", data_root / BONN)
    assert rc == 2
    assert "check ok" in out and len(out.splitlines()) == 1
    assert err.splitlines()[0].startswith(f"biosig: error: {tmp_path / '100.hea'}")


def test_features_writes_npz(capsys, data_root, tmp_path):
    out_file = tmp_path / "feats" / "lung.npz"
    rc, out, err = _run(capsys, "features", data_root / (ICBHI + ".wav"), "--modality", "lung",
                        "--out", out_file, "--set", "n_mels=32", "--set", "band_hz=[100, 1800]")
    assert rc == 0, err
    assert out.startswith(f"wrote {out_file}: signal (1, ")
    from biosig.features import load_feature_set
    fset = load_feature_set(out_file)
    assert fset.config["n_mels"] == 32 and fset.config["band_hz"] == [100.0, 1800.0]
    assert fset["log_mel"].shape[1] == 32
    assert fset["cycle_log_mel"].shape[0] == 6            # cycles read from the ICBHI .txt
    assert sorted(p.name for p in out_file.parent.iterdir()) == ["lung.npz"]
    with np.load(out_file, allow_pickle=False) as z:     # plain npz, readable anywhere
        assert "__meta__" in z.files and "log_mel" in z.files


def test_features_eeg_and_ecg_beats_from_other_annotations(capsys, data_root, tmp_path):
    rc, out, err = _run(capsys, "features", data_root / BONN, "-m", "eeg", "-o",
                        tmp_path / "eeg.npz", "-s", "powerline_hz=null")
    assert rc == 0, err
    assert "relative_band_power (1, 5)" in out
    (tmp_path / "eeg.yaml").write_text("powerline_hz: null\n"
                                       "bands_hz: {alpha: [8, 13], beta: [13, 30]}\n")
    rc, out, err = _run(capsys, "features", data_root / BONN, "-m", "eeg", "-o",
                        tmp_path / "eeg2.npz", "--config", tmp_path / "eeg.yaml",
                        "--set", "welch_segment_s=4")
    assert rc == 0, err
    from biosig.features import load_feature_set
    fset = load_feature_set(tmp_path / "eeg2.npz")
    assert fset.labels["band"] == ["alpha", "beta"] and fset.config["welch_segment_s"] == 4.0
    import wfdb
    wfdb.wrann("100", "qrs", np.array([1000, 1300, 1600]), ["N", "V", "N"], fs=360,
               write_dir=str(tmp_path))
    rc, out, err = _run(capsys, "features", data_root / MITDB, "-m", "ecg", "-o",
                        tmp_path / "ecg.npz", "--beats", tmp_path / "100.qrs")
    assert rc == 0, err
    fset = load_feature_set(tmp_path / "ecg.npz")
    np.testing.assert_array_equal(fset["beat_samples"], [1000, 1300, 1600])
    assert fset.config["beat_source"] == "r_peaks"


@pytest.mark.parametrize("argv,message", [
    (["features", "{tmp}/missing.wav", "-m", "pcg", "-o", "{tmp}/x.npz"],
     "biosig: error: {tmp}/missing.wav: file not found"),
    (["features", "{data}/" + BONN, "-m", "emg", "-o", "{tmp}/x.npz"],
     "biosig: error: --modality is 'emg', expected one of pcg, lung, cough, speech, ecg, eeg"),
    (["features", "{data}/" + BONN, "-m", "eeg", "-o", "{tmp}/x.npz", "--set", "n_mel=3"],
     "biosig: error: eeg: key 'n_mel': unknown key (expected one of preset, target_fs, "
     "band_hz, filter_order, powerline_hz, kind, frame_s, hop_s, n_fft, n_mels, n_mfcc, "
     "fmin_hz, fmax_hz, top_db, normalize, welch_segment_s, bands_hz, time_features, "
     "wavelet_levels)"),
    (["features", "{data}/" + BONN, "-m", "eeg", "-o", "{tmp}/x.npz", "--set", "powerline_hz"],
     "biosig: error: --set 'powerline_hz': expected KEY=VALUE, e.g. --set n_mels=128"),
    (["features", "{data}/" + BONN, "-m", "eeg", "-o", "{tmp}/x.npz", "--beats", "qrs"],
     "biosig: error: --beats applies to --modality ecg, not 'eeg'"),
    (["features", "{data}/" + BONN, "-m", "eeg", "-o", "{tmp}/x.npz", "--config",
      "{tmp}/none.yaml"], "biosig: error: {tmp}/none.yaml: config file not found"),
    (["features", "{data}/" + BONN, "-m", "eeg", "-o", "{tmp}/x.npz", "--device", "gpu7"],
     "biosig: error: --device is 'gpu7', expected a torch device such as cpu or cuda:0"),
    (["plot", "{tmp}/missing.hea"], "biosig: error: {tmp}/missing.hea: file not found"),
    (["plot", "{data}/" + MITDB, "-o", "{tmp}/x.png", "-a", "{tmp}/100.qrs"],
     "biosig: error: {tmp}/100.qrs: annotation file not found"),
    (["plot", "{data}/" + MITDB, "-o", "{tmp}/x.png", "-a", "xyz"],
     "biosig: error: {data}/ecg/mitdb/100.xyz: annotation file not found"),
    (["plot", "{data}/" + MITDB, "-o", "{tmp}/x.png", "--channel", "II"],
     "biosig: error: channel 'II' not found; channels are ['MLII', 'V5']"),
])
def test_cli_errors_are_one_line_with_status_2(capsys, data_root, tmp_path, argv, message):
    fill = {"tmp": tmp_path, "data": data_root}
    rc, out, err = _run(capsys, *[a.format(**fill) for a in argv])
    assert rc == 2
    assert err.strip() == message.format(**fill)
    assert not (tmp_path / "x.npz").exists() and not (tmp_path / "x.png").exists()


def test_plot_writes_png_with_extra_annotations(capsys, data_root, tmp_path):
    import wfdb
    ref = wfdb.rdann(str(data_root / "ecg/mitdb/100"), "atr")
    wfdb.wrann("100", "qrs", ref.sample[2:] + 3, ["N"] * (len(ref.sample) - 2), fs=360,
               write_dir=str(tmp_path))
    png = tmp_path / "100.png"
    rc, out, err = _run(capsys, "plot", data_root / MITDB, "--out", png, "--start-s", "10",
                        "--end-s", "20", "--channel", "V5", "--annotations", tmp_path / "100.qrs")
    assert rc == 0, err
    assert out.strip() == f"wrote {png}"
    import matplotlib.image
    assert matplotlib.image.imread(png).shape[1] > 1000


def test_plot_default_output_name(capsys, data_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc, out, err = _run(capsys, "plot", data_root / BONN, "--no-spectrogram")
    assert rc == 0, err
    assert (tmp_path / "Z001.png").is_file()
