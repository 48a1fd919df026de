"""The pretrained Whisper encoder as a front-end (:mod:`biosig.asr.encoder`): the pooling
math on known arrays, the real Whisper base on sounds with known answers, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from biosig.asr import pool_states
from biosig.asr.encoder import WhisperEmbedder
from biosig.errors import ConfigError, InputError


def test_pool_states_is_mean_then_std():
    h = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 40.0]])
    v = pool_states(h)
    assert v.shape == (4,)
    assert np.allclose(v, [3.0, 20.0, np.std([1, 3, 5]), np.std([10, 10, 40])])
    with pytest.raises(ValueError, match="n_frames"):
        pool_states(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="n_frames"):
        pool_states(np.zeros(4))


@pytest.fixture(scope="module")
def embedder(whisper_model_dir):
    return WhisperEmbedder(str(whisper_model_dir), cpu_threads=2)


def _tone(f_hz, fs, s, rng):
    t = np.arange(int(s * fs)) / fs
    return 0.3 * np.sin(2 * np.pi * f_hz * t + rng.uniform(0, 6)) + 0.01 * rng.normal(size=t.size)


def _noise_bursts(fs, s, rng):
    x = 0.05 * rng.normal(size=int(s * fs))
    for start in rng.uniform(0, s - 0.3, size=3):
        i = int(start * fs)
        x[i:i + int(0.2 * fs)] += 0.5 * rng.normal(size=int(0.2 * fs))
    return x


def test_embedding_shape_rate_and_determinism(embedder):
    rng = np.random.default_rng(0)
    x16 = _tone(440.0, 16000, 2.0, rng)
    v = embedder(x16, fs=16000.0)
    assert v.shape == (embedder.dim,) == (1024,)
    assert np.all(np.isfinite(v)) and np.all(v[512:] >= 0)
    # 20 ms per frame on the recording's own length (no 30 s padding)
    assert embedder.states(x16, fs=16000.0).shape == (100, 512)
    assert np.array_equal(embedder(x16, fs=16000.0), v)       # float32: the same each time
    # any rate in: resampled to 16 kHz first
    from biosig.dsp import resample
    x8 = resample(x16, fs=16000.0, target_fs=8000.0)
    assert np.allclose(embedder(x8, fs=8000.0),
                       embedder(resample(x8, fs=8000.0, target_fs=16000.0), fs=16000.0))


def test_embedding_tells_tones_from_noise_bursts(embedder):
    """A linear classifier on 12 embeddings separates 12 held-out ones without error: the
    encoder's states describe the sound (a random or constant embedding would not)."""
    from sklearn.linear_model import LogisticRegression
    rng = np.random.default_rng(1)
    X, y = [], []
    for i in range(24):
        fs = (8000.0, 16000.0)[i % 2]
        x = (_tone(rng.uniform(200, 1200), fs, 1.5, rng) if i % 4 < 2
             else _noise_bursts(fs, 1.5, rng))
        X.append(embedder(x, fs=fs))
        y.append(int(i % 4 >= 2))
    X, y = np.array(X), np.array(y)
    clf = LogisticRegression(C=0.1, max_iter=5000).fit(X[:12], y[:12])
    assert (clf.predict(X[12:]) == y[12:]).all()


def test_embedder_errors_name_the_problem(embedder, tmp_path):
    with pytest.raises(InputError, match="too short"):
        embedder(np.zeros(100), fs=16000.0)
    with pytest.raises(InputError):
        embedder(np.full(16000, np.nan), fs=16000.0)
    with pytest.raises(InputError):
        embedder(np.zeros((2, 16000)), fs=16000.0)
    with pytest.raises(ConfigError, match="fs"):
        embedder(np.zeros(16000), fs=-1.0)
    with pytest.raises(ConfigError, match="compute_type"):
        WhisperEmbedder(str(embedder.path), compute_type="int4")
    with pytest.raises(ConfigError, match="no model.bin"):
        WhisperEmbedder(str(tmp_path))


def test_long_recordings_are_encoded_in_30_s_windows(embedder):
    """65 s: two whole 30 s windows (1,500 states each) and a 5 s tail (250), the first window's
    states those of the first 30 s alone; max_s keeps only the start."""
    rng = np.random.default_rng(3)
    x = np.concatenate([_tone(f, 16000, s, rng) for f, s in ((300.0, 30.0), (900.0, 35.0))])
    h = embedder.states(x, fs=16000.0)
    assert h.shape == (1500 + 1500 + 250, 512)
    assert np.array_equal(h[:1500], embedder.states(x[:480000], fs=16000.0))
    # the second tone is heard: the pooled embedding differs from the first window's alone
    assert not np.allclose(embedder(x, fs=16000.0), embedder(x[:480000], fs=16000.0), atol=1e-3)
    short = WhisperEmbedder(str(embedder.path), max_s=2.0)
    assert short.states(x, fs=16000.0).shape == (100, 512)
    with pytest.raises(ConfigError, match="max_s"):
        WhisperEmbedder(str(embedder.path), max_s=0.0)


def test_an_earlier_layer_is_the_encoder_stopped_early(embedder, whisper_model_dir,
                                                        tmp_path, monkeypatch):
    """``layer``: block k's states through transformers on the recording's own length; all
    six blocks plus the final layer norm give CTranslate2's output, so the manual forward is
    Whisper's; an earlier block gives other states of the same shape."""
    pytest.importorskip("transformers")
    monkeypatch.setenv("BIOSIG_CACHE", str(tmp_path))      # the imported copy goes here
    from biosig.asr.encoder import _torch_encoder
    rng = np.random.default_rng(3)
    x = _noise_bursts(16000, 2.0, rng)
    six = WhisperEmbedder(str(whisper_model_dir), layer=6)
    h6 = six.states(x, fs=16000.0)
    import torch
    with torch.inference_mode():
        normed = _torch_encoder(str(whisper_model_dir), 6).layer_norm(torch.from_numpy(h6))
    ct2 = embedder.states(x, fs=16000.0)
    assert h6.shape == ct2.shape == (100, 512)
    np.testing.assert_allclose(normed.numpy(), ct2, atol=2e-3, rtol=1e-3)
    two = WhisperEmbedder(str(whisper_model_dir), layer=2)
    v2 = two(x, fs=16000.0)
    assert v2.shape == (1024,) and np.all(np.isfinite(v2))
    assert not np.allclose(v2, six(x, fs=16000.0))
    assert "layer=2" in repr(two)
    with pytest.raises(ConfigError, match="layer is 7, expected 0 to 6"):
        WhisperEmbedder(str(whisper_model_dir), layer=7)
