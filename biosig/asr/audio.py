"""Audio for speech recognition: mono float32 at 16 kHz, loaded through :func:`biosig.load`."""

from __future__ import annotations

import numpy as np

from biosig.io import load
from biosig.validate import check_fs, check_signal
from biosig.whisper_audio import WHISPER_FS

__all__ = ["ASR_FS", "load_audio", "prepare_audio", "is_narrowband", "pcm16_to_float",
           "float_to_pcm16"]

#: Sampling rate Whisper models expect, in Hz (:data:`biosig.whisper_audio.WHISPER_FS`).
ASR_FS = WHISPER_FS


def prepare_audio(signal, *, fs: float, what: str = "audio") -> np.ndarray:
    """Turn an array into the mono float32 16 kHz signal the recognisers take.

    Parameters
    ----------
    signal : np.ndarray [shape=(n_samples,) or (channels, n_samples)]
        Audio in [-1, 1]; channels are averaged.
    fs : float > 0
        Sampling rate of ``signal`` in Hz; resampled to 16 kHz when different.
    what : str
        Name used in error messages.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]

    Raises
    ------
    InputError
        Wrong shape, NaN/inf or complex samples (:func:`biosig.validate.check_signal`).
    ConfigError
        ``fs`` not a positive finite number (:func:`biosig.validate.check_fs`).
    """
    fs = check_fs(fs)
    x = np.asarray(check_signal(signal, name=what, ndim=(1, 2), min_samples=0), dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if fs != ASR_FS and x.size:
        from biosig.dsp import resample  # heavy: numba and scipy.signal, only to resample
        x = resample(x, fs=float(fs), target_fs=float(ASR_FS)).astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def load_audio(path) -> np.ndarray:
    """Load a recording as mono float32 at 16 kHz (channels averaged).

    Silent recordings are accepted (they transcribe to nothing); empty, corrupt or missing files
    raise :class:`~biosig.errors.InputError` with a one-line message naming the file.

    Returns
    -------
    np.ndarray [shape=(n,), dtype=float32]
    """
    sig = load(path, target_fs=ASR_FS, annotations=None, allow_silent=True)
    x = sig.data.mean(axis=0) if sig.data.shape[0] > 1 else sig.data[0]
    return np.ascontiguousarray(x, dtype=np.float32)


def is_narrowband(audio, *, fs: float, split_hz: float = 4200.0,
                  threshold_db: float = -45.0) -> bool:
    """Whether ``audio`` is narrow-band speech (a telephone line, 8 kHz audio resampled): its
    power above ``split_hz`` is more than ``-threshold_db`` dB below its power in the
    telephone band (300-3400 Hz).

    Wideband speech sits at -8 to -36 dB (LibriSpeech, FLEURS, synthesized voices), telephone
    copies (:func:`biosig.synth.dictation.telephone_channel`) at about -58 dB. Audio sampled at
    ``2 * split_hz`` or less is narrow-band by definition; audio too short to tell (under 512
    samples) or silent in the telephone band is not.

    Parameters
    ----------
    audio : np.ndarray [shape=(n,)]
    fs : float > 0
        Sampling rate in Hz.
    """
    fs = check_fs(fs)
    if fs <= 2 * split_hz:
        return True
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1 or x.size < 512:
        return False
    from scipy.signal import welch  # heavy: scipy.signal, kept out of import biosig.asr
    f, p = welch(x, fs=fs, nperseg=512)
    band = float(p[(f >= 300) & (f <= 3400)].sum())
    if band <= 0:
        return False
    high = float(p[f >= split_hz].sum())
    return 10 * np.log10(max(high, 1e-30) / band) < threshold_db


def pcm16_to_float(frame: bytes) -> np.ndarray:
    """Signed 16-bit little-endian PCM -> float32 in [-1, 1]; an odd byte count is an error.
    What the server receives and ``biosig dictate --stdin`` reads."""
    if len(frame) % 2:
        raise ValueError(f"odd byte count ({len(frame)}): expected 16-bit samples")
    return np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(x) -> bytes:
    """float samples in [-1, 1] (clipped) -> signed 16-bit little-endian PCM: what a client
    sends (the inverse of :func:`pcm16_to_float`)."""
    return (np.clip(np.asarray(x, np.float32), -1, 1) * 32767).astype("<i2").tobytes()
