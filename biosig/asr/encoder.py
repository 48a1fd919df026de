"""A pretrained audio encoder as a front-end: pooled Whisper encoder states of a recording.

Whisper's encoder was trained on 680,000 hours of audio; its states describe sounds far more
richly than a network trained from scratch on a few hundred coughs can learn to. The embedding
of a recording is the mean and the standard deviation over time of the encoder's last-layer
states, or of an earlier layer's (``layer``; the lower layers describe sound rather than
speech), ``2 * d_model`` numbers (1,024 for Whisper base), computed on the recording's own length
(no padding to Whisper's 30 s window: the CTranslate2 encoder takes any even number of frames up
to 3,000, and a 2 s cough then costs about 20 ms on a CPU core instead of 0.8 s). A recording
longer than 30 s is encoded in consecutive 30 s windows, as Whisper reads long audio, and the
states of all windows are pooled together.

:func:`pool_states` holds the math; :class:`WhisperEmbedder` holds the loaded model
(CTranslate2, the ``asr`` extra). The hybrid stage of the training recipes (``hybrid.encoder``
in :mod:`biosig.train.config`) uses it as one input block beside the network's outputs and the
presets' hand-crafted features.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from biosig.asr.models import COMPUTE_TYPES, resolve_packaged
from biosig.errors import ConfigError, InputError
from biosig.extras import require
from biosig.validate import check_fs, check_signal
from biosig.whisper_audio import (
    WHISPER_FS,
    WHISPER_HOP_LENGTH,
    WHISPER_N_FRAMES,
    WHISPER_N_SAMPLES,
)

__all__ = ["pool_states", "WhisperEmbedder"]


def pool_states(states: np.ndarray) -> np.ndarray:
    """Mean and standard deviation over time of encoder states.

    Parameters
    ----------
    states : np.ndarray [shape=(n_frames, d)]
        One recording's encoder states, time first (as the encoder returns them).

    Returns
    -------
    np.ndarray [shape=(2 * d,), dtype=float64]
        ``[mean_0 ... mean_{d-1}, std_0 ... std_{d-1}]``.
    """
    h = np.asarray(states, dtype=np.float64)
    if h.ndim != 2 or h.shape[0] < 1:
        raise ValueError(f"states: expected shape (n_frames >= 1, d), got {h.shape}")
    return np.concatenate([h.mean(axis=0), h.std(axis=0)])


class WhisperEmbedder:
    """Pooled Whisper encoder states of recordings (see the module docstring).

    Parameters
    ----------
    model : str
        A CTranslate2 Whisper folder (``model.bin``, ``config.json``) or ``packaged:whisper-base``
        (the Whisper base the project's PyPI packages ship).
    compute_type : str
        CTranslate2 quantisation; ``float32`` (default) gives the same embedding on every CPU,
        ``int8`` is about twice as fast and differs between CPUs in the last digits.
    cpu_threads : int >= 0
        Threads for the CTranslate2 encoder (0: its default; ``layer`` runs with torch's).
    max_s : float > 0, optional
        Encode only the first ``max_s`` seconds of a recording (None: all of it, in 30 s
        windows).
    layer : int, optional
        The states of an earlier encoder layer: the output of block ``layer`` (1 to the
        number of blocks, 6 for base; 0: the convolutional front-end with positions), before
        the final layer norm. Computed with the transformers Whisper encoder (the ``train``
        extra's torch and transformers; a CTranslate2 model is imported once, see
        :func:`biosig.asr.ct2.transformers_folder`), on the recording's own length as the
        last layer is, in float32 (``compute_type`` does not apply). None: the encoder's
        output (CTranslate2).

    Examples
    --------
    >>> emb = WhisperEmbedder("packaged:whisper-base")            # doctest: +SKIP
    >>> emb(cough, fs=8000.0).shape                               # doctest: +SKIP
    (1024,)
    """

    def __init__(self, model: str, *, compute_type: str = "float32", cpu_threads: int = 0,
                 max_s: float | None = None, layer: int | None = None):
        if compute_type not in COMPUTE_TYPES:
            raise ConfigError(f"compute_type is {compute_type!r}, expected one of "
                              f"{COMPUTE_TYPES}")
        if max_s is not None and not max_s > 0:
            raise ConfigError(f"max_s is {max_s!r}, expected a positive number of seconds or "
                              "None")
        ct2 = require("ctranslate2", extra="asr")
        path = Path(resolve_packaged(str(model), what="encoder model")).expanduser()
        if not (path / "model.bin").is_file():
            raise ConfigError(f"encoder model {model}: not a CTranslate2 Whisper folder "
                              "(no model.bin)")
        self.model_name = str(model)
        self.path = path
        self.compute_type = compute_type
        self.max_s = None if max_s is None else float(max_s)
        self.layer = None if layer is None else int(layer)
        self._ct2 = ct2
        self._model = self._torch_encoder = None
        if self.layer is not None:               # an earlier block: transformers only
            self._torch_encoder = _torch_encoder(str(model), self.layer)
            self.n_mels = int(self._torch_encoder.conv1.in_channels)
            return
        try:
            self._model = ct2.models.Whisper(str(path), device="cpu", compute_type=compute_type,
                                             intra_threads=int(cpu_threads))
        except (RuntimeError, ValueError, OSError) as exc:
            raise ConfigError(f"encoder model {model}: cannot load ({exc})") from exc
        self.n_mels = int(getattr(self._model, "n_mels", 80) or 80)

    def _encode(self, mel: np.ndarray) -> np.ndarray:
        """``(n_frames // 2, d)`` states of one window's log-mel ``(n_mels, n_frames)``."""
        if self._torch_encoder is None:
            out = self._model.encode(self._ct2.StorageView.from_array(mel[None]), to_cpu=True)
            return np.asarray(out)[0]
        import torch  # the train extra: only for an earlier layer's states
        enc = self._torch_encoder
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(mel))[None]
            h = torch.nn.functional.gelu(enc.conv1(x))
            h = torch.nn.functional.gelu(enc.conv2(h)).permute(0, 2, 1)
            h = h + enc.embed_positions.weight[: h.shape[1]]
            for block in enc.layers[: self.layer]:
                out = block(h, None)
                h = out[0] if isinstance(out, tuple) else out   # transformers 4 / 5
        return h[0].numpy()

    def states(self, x: np.ndarray, *, fs: float) -> np.ndarray:
        """``(n_frames, d)`` encoder states of one recording (``layer``'s; 20 ms per frame;
        a recording over 30 s: its 30 s windows' states one after the other)."""
        from biosig.dsp import resample  # numba-backed: loaded on first use
        from biosig.features.whisper import whisper_log_mel  # torch: loaded on first use
        fs = check_fs(fs)
        x = np.asarray(check_signal(x, ndim=1, min_samples=1), dtype=np.float64)
        if fs != WHISPER_FS:
            x = resample(x, fs=fs, target_fs=float(WHISPER_FS))
        if self.max_s is not None:
            x = x[: int(self.max_s * WHISPER_FS)]
        x = np.asarray(x, dtype=np.float32)
        if x.size < 2 * WHISPER_HOP_LENGTH:
            raise InputError(None, f"{x.size / WHISPER_FS:.3f} s of audio: too short for the "
                                   "encoder (at least 20 ms)", what="signal")
        out = []
        for start in range(0, x.size, WHISPER_N_SAMPLES):      # Whisper's 30 s windows
            chunk = x[start:start + WHISPER_N_SAMPLES]
            if chunk.size < 2 * WHISPER_HOP_LENGTH:             # a tail under 20 ms
                break
            mel = np.asarray(whisper_log_mel(chunk, fs=WHISPER_FS, n_mels=self.n_mels,
                                             pad_to_30s=False), dtype=np.float32)
            n = min(mel.shape[-1] - mel.shape[-1] % 2, WHISPER_N_FRAMES)   # even, <= 3000
            out.append(self._encode(np.ascontiguousarray(mel[:, :n])))
        return np.concatenate(out, axis=0)

    @functools.cached_property
    def dim(self) -> int:
        """Length of an embedding (``2 * d_model``; one encoder pass over 0.1 s of silence)."""
        return 2 * int(self.states(np.zeros(WHISPER_FS // 10), fs=WHISPER_FS).shape[-1])

    def __call__(self, x: np.ndarray, *, fs: float) -> np.ndarray:
        """``(2 * d,)`` embedding of one recording: :func:`pool_states` of :meth:`states`."""
        return pool_states(self.states(x, fs=fs))

    def __repr__(self) -> str:
        return (f"WhisperEmbedder(model={self.model_name!r}, "
                f"compute_type={self.compute_type!r}"
                + (f", layer={self.layer}" if self.layer is not None else "") + ")")


@functools.lru_cache(maxsize=2)
def _torch_encoder(model: str, layer: int):
    """The transformers Whisper encoder of ``model`` (float32, eval), its blocks after
    ``layer`` dropped."""
    require("torch", extra="train")
    transformers = require("transformers", extra="train")
    from biosig.asr.ct2 import transformers_folder  # torch: loaded only for an earlier layer
    enc = transformers.WhisperModel.from_pretrained(transformers_folder(model)).encoder
    n = len(enc.layers)
    if not 0 <= layer <= n:
        raise ConfigError(f"layer is {layer}, expected 0 to {n} (the encoder of {model} has "
                          f"{n} blocks)")
    enc.layers = enc.layers[:layer]
    return enc.float().eval()
