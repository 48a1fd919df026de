"""Whisper's audio constants: the one place that says 16 kHz, 25 ms / 10 ms frames, 30 s windows.

Used by the log-mel front-end (:mod:`biosig.features.whisper`), speech recognition
(:mod:`biosig.asr`: ``ASR_FS``), the CTranslate2 import (:mod:`biosig.asr.ct2`) and Whisper
fine-tuning. This module imports nothing, so that :mod:`biosig.asr` can use the constants
without importing torch through :mod:`biosig.features`.
"""

__all__ = ["WHISPER_FS", "WHISPER_N_FFT", "WHISPER_HOP_LENGTH", "WHISPER_CHUNK_S",
           "WHISPER_N_SAMPLES", "WHISPER_N_FRAMES"]

#: Sampling rate of Whisper's input, in Hz.
WHISPER_FS = 16000
#: FFT size (25 ms periodic Hann window at 16 kHz).
WHISPER_N_FFT = 400
#: Hop between frames in samples (10 ms).
WHISPER_HOP_LENGTH = 160
#: Length of one Whisper window, in seconds.
WHISPER_CHUNK_S = 30
#: Samples in one window (480000).
WHISPER_N_SAMPLES = WHISPER_CHUNK_S * WHISPER_FS
#: Frames in one window (3000).
WHISPER_N_FRAMES = WHISPER_N_SAMPLES // WHISPER_HOP_LENGTH
