"""biosig.features.FrontEnd: one spec per modality shared by compute_features, training,
scoring and the feature cache; every sample count from one function."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import biosig
import biosig.features as bf
from biosig.errors import ConfigError
from biosig.features import FrontEnd, frame_lengths
from biosig.signal import seconds_to_samples

PKG = Path(__file__).resolve().parents[1] / "biosig"


def test_frame_lengths_known_answers():
    # Bonn EEG at 173.61 Hz: a 1 s frame is 174 samples in a 256-point FFT, hop 43
    assert frame_lengths(1.0, 0.25, fs=173.61) == bf.FrameLengths(174, 43, 256)
    assert frame_lengths(1.0, 0.25, fs=173.61, n_fft="exact").n_fft == 174
    assert frame_lengths(1.0, 0.25, fs=173.61, n_fft=300).n_fft == 300
    assert frame_lengths(0.064, 0.016, fs=2000.0) == bf.FrameLengths(128, 32, 128)
    with pytest.raises(ConfigError, match=r"^eeg: n_fft is 128, expected at least the "
                                          r"frame's 174 samples"):
        frame_lengths(1.0, 0.25, fs=173.61, n_fft=128, where="eeg")
    with pytest.raises(ConfigError, match=r"win_length=2 and hop_length=1 samples at "
                                          r"fs=100 Hz; expected win_length >= 4"):
        frame_lengths(0.02, 0.01, fs=100.0)
    fe = FrontEnd.from_preset("eeg", target_fs=173.61, frame_s=1.0, hop_s=0.25)
    assert fe.frames() == frame_lengths(1.0, 0.25, fs=173.61)
    assert fe.samples(20.0) == seconds_to_samples(20.0, fs=173.61) == 3472
    assert FrontEnd().samples(1.5, fs=1000.0) == 1500        # no target_fs: the recording's
    with pytest.raises(ConfigError, match="target_fs is None; give the recording's fs"):
        FrontEnd().frames()


def test_sample_counts_come_from_one_function():
    """Seconds become samples only in biosig.signal.seconds_to_samples: no `round(... fs ...)`
    or `int(... * fs)` in the front-end, the presets or training."""
    pattern = re.compile(r"round\([^\n]*\bfs\b|int\([^\n]*\*\s*(self\.)?\w*fs\b")
    files = [*sorted((PKG / "features").rglob("*.py")), *sorted((PKG / "train").glob("*.py"))]
    bad = [f"{p.relative_to(PKG.parent)}:{i}: {line.strip()}" for p in files
           for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not bad, "sample counts computed outside seconds_to_samples:\n" + "\n".join(bad)


def test_presets_are_front_ends_with_overrides():
    eeg = FrontEnd.from_preset("eeg")
    assert isinstance(eeg, FrontEnd) and type(eeg) is bf.EEGConfig
    assert (eeg.kind, eeg.band_hz, eeg.powerline_hz, eeg.fmin_hz, eeg.fmax_hz, eeg.n_fft) == \
        ("log_spectrogram", (0.5, 45.0), 50.0, 0.5, 45.0, "pow2")
    assert bf.make_config("eeg") == eeg
    assert FrontEnd.from_preset("pcg", fmax_hz=800.0) == bf.make_config("pcg", {"fmax_hz": 800.0})
    assert FrontEnd.from_preset("ecg").replace(band_hz=None).band_hz is None
    with pytest.raises(ConfigError, match=r"front-end preset is 'emg', expected one of "
                                          r"custom, pcg, lung, cough, ecg, eeg, speech"):
        FrontEnd.from_preset("emg")
    # speech is Whisper's fixed front-end: 400-sample frames, 160-sample hop at 16 kHz
    speech = FrontEnd.from_preset("speech", n_mels=128)
    assert speech.frames() == bf.FrameLengths(400, 160, 400) and speech.kind == "whisper_log_mel"
    with pytest.raises(ConfigError, match=r"Whisper's front-end is fixed at 400, 160 and 400"):
        FrontEnd.from_preset("speech", frame_s=0.032)
    with pytest.raises(ConfigError, match=r"^PCGConfig: key 'window_s': unknown key"):
        FrontEnd.from_preset("pcg", window_s=0.5)


def test_prepare_keeps_fs_with_the_signal():
    fs = 4000.0
    t = np.arange(int(2 * fs)) / fs
    x = (np.sin(2 * np.pi * 100 * t) + np.sin(2 * np.pi * 1500 * t)).astype(np.float32)
    fe = FrontEnd.from_preset("pcg", target_fs=2000.0)                   # 25-400 Hz band-pass
    sig = fe.prepare(x, fs)
    assert isinstance(sig, biosig.Signal) and sig.fs == 2000.0 and sig.data.dtype == np.float32
    assert sig.data.shape == (1, 4000)
    spec = np.abs(np.fft.rfft(sig.data[0]))
    freqs = np.fft.rfftfreq(sig.data.shape[-1], 1 / sig.fs)
    assert spec[np.argmin(abs(freqs - 100))] > 100 * spec[freqs > 600].max()  # 1.5 kHz gone
    same = FrontEnd(target_fs=2000.0).prepare(sig)                     # nothing to do
    assert same is sig


def _pcg_corpus(root: Path):
    """One 3 s 'PCG' recording at 4 kHz (tones at 60, 300 and 1200 Hz in noise) with its
    manifest record."""
    from biosig.manifests import Record
    fs = 4000
    t = np.arange(3 * fs) / fs
    rng = np.random.default_rng(0)
    x = (0.4 * np.sin(2 * np.pi * 60 * t) + 0.3 * np.sin(2 * np.pi * 300 * t)
         + 0.3 * np.sin(2 * np.pi * 1200 * t) + 0.05 * rng.normal(size=t.size))
    sf.write(root / "r0.wav", x.astype(np.float32), fs)
    return Record(id="r0", path="r0.wav", modality="pcg", fs=float(fs), num_samples=t.size,
                  duration_s=3.0, channels=["audio"], subject="p0", labels={"y": "a"})


@pytest.mark.parametrize("frontend", [
    {"preset": "pcg", "target_fs": 2000.0, "fmax_hz": 800.0},             # with its band-pass
    {"preset": "pcg", "target_fs": 2000.0, "fmax_hz": 800.0, "band_hz": None, "kind": "mfcc"},
    {"preset": "ecg", "target_fs": 300.0, "frame_s": 0.5, "hop_s": 0.125},
    {"preset": "eeg", "target_fs": 173.61, "frame_s": 1.0, "hop_s": 0.25},
    {"preset": "speech"},                                                # Whisper's, 16 kHz
])
def test_compute_features_equals_the_training_frontend(tmp_path, frontend):
    """The same recording and preset give the same features through compute_features and
    through training's loader and transform (and the feature cache)."""
    from biosig.train.cache import FeatureCache
    from biosig.train.config import validate_config
    from biosig.train.data import Example, read_signal
    rec = _pcg_corpus(tmp_path)
    cfg = validate_config({"recipe": "t", "data": {"manifest": "m.jsonl", "root": str(tmp_path),
                                                   "label": "y", "classes": ["a", "b"],
                                                   "crop_s": 2.0},
                           "frontend": frontend, "model": {"name": "crnn"}})
    spec = cfg.frontend
    # training: the record loaded at target_fs, prepared, through the transform module
    sig = read_signal(rec, root=str(tmp_path), frontend=spec, channel=0)
    assert sig.fs == spec.target_fs
    module = spec.transform_module()
    with torch.no_grad():
        train_feats = module.raw(torch.from_numpy(sig.data))[0].numpy()
    # the feature cache computes the same
    cache = FeatureCache.__new__(FeatureCache)
    cache.frontend, cache.dcfg = module, cfg.data
    np.testing.assert_array_equal(cache.compute(Example(rec, 0, "train", "g")), train_feats)
    # compute_features with the same spec, from the file at its own rate
    fset = bf.compute_features(biosig.load(tmp_path / "r0.wav"), modality=spec.preset,
                               config=spec)
    name = {"log_mel": "log_mel", "mfcc": "mfcc", "log_spectrogram": "spectrogram",
            "whisper_log_mel": "log_mel"}[spec.kind]
    assert fset.fs == spec.target_fs and fset.config["n_fft"] == module.n_fft
    np.testing.assert_allclose(fset[name][0], train_feats, rtol=1e-5, atol=1e-4)
    if spec.kind == "log_spectrogram":
        np.testing.assert_array_equal(fset["spectrogram_freqs_hz"], module.frequencies_hz)
    # and FrontEnd.features is the same again
    np.testing.assert_allclose(spec.features(biosig.load(tmp_path / "r0.wav"))[0], train_feats,
                               rtol=1e-5, atol=1e-4)


def test_compute_features_follows_the_training_n_fft_rule(data_root):
    """Bonn EEG at 173.61 Hz with 1 s frames: a 174-sample window in a 256-point FFT in
    compute_features, as in training (one rule, n_fft: pow2)."""
    sig = biosig.load(data_root / "eeg/bonn/A_Z/Z001.txt")
    fset = bf.compute_features(sig, modality="eeg", frame_s=1.0, hop_s=0.25)
    assert (fset.config["win_length"], fset.config["n_fft"], fset.config["hop_length"]) == \
        (174, 256, 43)
    freqs = fset["spectrogram_freqs_hz"]
    np.testing.assert_allclose(np.diff(freqs), 173.61 / 256)
    assert freqs[0] >= 0.5 and freqs[-1] <= 45.0
    exact = bf.compute_features(sig, modality="eeg", frame_s=1.0, hop_s=0.25, n_fft="exact")
    assert exact.config["n_fft"] == 174
