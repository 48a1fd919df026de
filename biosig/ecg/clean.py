"""ECG cleaning: baseline and high-frequency noise removal."""

from __future__ import annotations

from dataclasses import replace

from biosig import dsp
from biosig.ecg._common import ecg_data
from biosig.errors import ConfigError, InputError
from biosig.signal import Signal

__all__ = ["ecg_clean"]

def ecg_clean(signal, *, fs: float | None = None, method: str = "biosig",
              powerline_hz: float | None = None):
    """Remove baseline wander and high-frequency noise from an ECG.

    Parameters
    ----------
    signal : np.ndarray [shape=(..., n_samples)] or biosig.Signal
        ECG leads, time last.
    fs : float >= 50
        Sampling rate in Hz; may be omitted for a Signal.
    method : {"biosig"}
        ``"biosig"``: zero-phase 2nd-order Butterworth band-pass from 0.5 Hz (keeps the ST
        segment, AHA recommendation for monitoring) to ``min(40 Hz, 0.4 fs)``.
    powerline_hz : float, optional
        Also notch the mains frequency (50 or 60 Hz) and its harmonics, when below the Nyquist
        frequency.

    Returns
    -------
    np.ndarray [shape=(..., n_samples)] or biosig.Signal
        float32 for float32 input, else float64; a Signal with the cleaned data for a Signal.

    Raises
    ------
    ConfigError
        Unknown ``method``, ``fs`` below 50 Hz.
    InputError
        Fewer than 16 samples, NaN/inf or complex samples (see
        :func:`biosig.validate.check_signal`).
    """
    data, fs = ecg_data(signal, fs)
    if method != "biosig":
        raise ConfigError(f"method: unknown ECG cleaning method {method!r}; expected 'biosig'")
    if data.shape[-1] < 16:
        raise InputError(None, f"ECG has {data.shape[-1]} samples, too short to filter "
                               f"(expected at least 16)", what="signal")
    y = dsp.bandpass(data, fs=fs, band_hz=(0.5, min(40.0, 0.4 * fs)), order=2)
    if powerline_hz is not None and powerline_hz < fs / 2:
        y = dsp.notch(y, fs=fs, powerline_hz=powerline_hz)
    return replace(signal, data=y) if isinstance(signal, Signal) else y
