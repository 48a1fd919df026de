"""Signal processing: numba-accelerated IIR filtering, powerline notch, baseline removal,
envelopes, moving-window integration and polyphase resampling.

All functions take ``signal`` with time on the last axis, ``(..., n_samples)``, and an explicit
sampling rate ``fs`` in Hz where one is needed.
"""

from biosig.dsp.filters import (
    SosFilter,
    bandpass,
    butter_sos,
    envelope_hilbert,
    envelope_homomorphic,
    highpass,
    lowpass,
    moving_window_integration,
    notch,
    notch_sos,
    remove_baseline,
    sosfilt,
    sosfiltfilt,
)
from biosig.dsp.resample import resample

__all__ = [
    "resample", "butter_sos", "sosfilt", "sosfiltfilt", "SosFilter", "bandpass", "highpass",
    "lowpass", "notch", "notch_sos", "remove_baseline", "envelope_hilbert",
    "envelope_homomorphic", "moving_window_integration",
]
