"""Voice-activity detection with Silero VAD (the ONNX model shipped inside faster-whisper)."""

from __future__ import annotations

import numpy as np

__all__ = ["speech_probabilities", "VAD_FRAME"]

#: Samples per Silero VAD frame at 16 kHz (32 ms).
VAD_FRAME = 512


def speech_probabilities(audio: np.ndarray) -> np.ndarray:
    """Per-frame speech probability of 16 kHz mono audio.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,), dtype=float32]
        ``n`` is rounded down to a multiple of 512.

    Returns
    -------
    np.ndarray [shape=(n // 512,)]
        Probability that each 32 ms frame holds speech (Silero VAD v6, Silero Team 2024).
    """
    from faster_whisper.vad import get_vad_model
    n = (audio.size // VAD_FRAME) * VAD_FRAME
    if n == 0:
        return np.zeros(0, dtype=np.float32)
    x = np.ascontiguousarray(audio[:n], dtype=np.float32)
    return np.asarray(get_vad_model()(x), dtype=np.float32).reshape(-1)
