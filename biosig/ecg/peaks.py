"""QRS detection: :func:`ecg_peaks`."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from biosig import dsp
from biosig.ecg import _kernels
from biosig.ecg._common import as_lead, ecg_data, filtfilt_lead
from biosig.errors import ConfigError

__all__ = ["ecg_peaks", "QrsPeaks", "METHODS"]

METHODS = ("biosig",)


@dataclass(frozen=True)
class QrsPeaks:
    """Detected QRS complexes of one ECG lead.

    Attributes
    ----------
    samples : np.ndarray [shape=(n_beats,), dtype=int64]
        R-peak sample indices, increasing.
    fs : float
        Sampling rate in Hz of the signal the indices refer to.
    n_samples : int
        Length of that signal.
    method : str
        Detector used.
    """

    samples: np.ndarray
    fs: float
    n_samples: int
    method: str = "biosig"

    def __len__(self) -> int:
        return int(self.samples.size)

    @property
    def times_s(self) -> np.ndarray:
        """R-peak times in seconds."""
        return self.samples / self.fs

    @property
    def rr_ms(self) -> np.ndarray:
        """Intervals between successive R peaks in milliseconds, shape ``(n_beats - 1,)``."""
        return np.diff(self.samples) * (1000.0 / self.fs)


@functools.lru_cache(maxsize=32)
def _band_sos(band_hz: tuple[float, float], fs: float) -> np.ndarray:
    sos = dsp.butter_sos("bandpass", band_hz, fs=fs, order=2)
    sos.setflags(write=False)
    return sos


def ecg_peaks(signal, *, fs: float | None = None, method: str = "biosig",
              band_hz: tuple[float, float] = (5.0, 15.0), refractory_s: float = 0.2,
              twave_s: float = 0.36, searchback_factor: float = 1.66) -> QrsPeaks:
    """Detect QRS complexes (R peaks) in one ECG lead at any sampling rate.

    The ``"biosig"`` method follows Pan & Tompkins (1985) with the decision rules of Hamilton &
    Tompkins (1986):

    1. zero-phase Butterworth band-pass ``band_hz`` (default 5-15 Hz, the QRS energy band);
    2. five-point derivative, squaring and a 150 ms moving-window integration, centred so that
       the integrated energy peaks at the complex rather than 150 ms later;
    3. every local maximum of the energy is classified sequentially against adaptive signal and
       noise levels (threshold ``noise + 0.25 (signal - noise)``); a 200 ms refractory period
       keeps the larger of two peaks of one complex; a peak within 360 ms of the previous complex
       whose maximum slope is below half of that complex's is a T wave;
    4. search-back: when no beat came for ``searchback_factor`` times the mean of the last eight
       RR intervals, the largest noise peak above half the threshold (and outside the refractory
       period and the T-wave test) is taken as a missed beat, repeatedly;
    5. each detection is moved to the largest absolute deflection of the ECG within +-80 ms of
       the energy peak, measured from the straight baseline joining the 20 ms just outside that
       window (baseline wander is locally linear), so that the reported sample is the R (or
       dominant QS/PVC) peak rather than the energy centre.

    The band-pass is :func:`biosig.dsp.sosfiltfilt` (run on 8 overlapping chunks of the lead at
    once); the sequential decision rules and the localisation run as numba kernels. Unlike the
    original real-time algorithm there is no learning delay (levels are initialised from the
    medians of one-second maxima over the first 8 s) and no filter delay (zero-phase filters).

    Parameters
    ----------
    signal : np.ndarray [shape=(n_samples,)] or biosig.Signal
        One ECG lead (any unit; the detector is scale invariant): an array, or a one-channel
        Signal (``sig.pick(["MLII"])``).
    fs : float >= 50
        Sampling rate in Hz; may be omitted for a Signal.
    method : {"biosig"}
        Detector.
    band_hz : (float, float)
        Pass band of the QRS energy filter.
    refractory_s : float
        No two complexes closer than this (seconds).
    twave_s : float
        Window after a complex in which the T-wave slope test applies (seconds).
    searchback_factor : float
        Search back after this many average RR intervals without a beat.

    Returns
    -------
    QrsPeaks

    Raises
    ------
    ConfigError
        Sampling rate below 50 Hz, unknown ``method``, ``band_hz`` out of range.
    InputError
        Not one lead, no samples, NaN/inf or complex samples (see
        :func:`biosig.validate.check_signal`).

    References
    ----------
    Pan, J. & Tompkins, W. J. (1985). A real-time QRS detection algorithm. IEEE Trans. Biomed.
    Eng. 32(3), 230-236. Hamilton, P. S. & Tompkins, W. J. (1986). Quantitative investigation of
    QRS detection rules using the MIT/BIH arrhythmia database. IEEE Trans. Biomed. Eng. 33(12),
    1157-1165.

    Examples
    --------
    >>> import biosig
    >>> from biosig.ecg import ecg_peaks
    >>> sig = biosig.load("mitdb/100.hea")                       # doctest: +SKIP
    >>> peaks = ecg_peaks(sig.data[0], fs=sig.fs)                # doctest: +SKIP
    >>> len(peaks)                                               # doctest: +SKIP
    2273
    """
    if method not in METHODS:
        raise ConfigError(f"method: unknown QRS detector {method!r}; expected one of "
                          f"{', '.join(METHODS)}")
    data, fs = ecg_data(signal, fs)
    x = as_lead(data)
    lo, hi = float(band_hz[0]), float(band_hz[1])
    if not 0 < lo < hi < fs / 2:
        raise ConfigError(f"band_hz: expected 0 < low < high < {fs / 2:g} Hz, got {band_hz!r}")
    n = x.size
    if n < int(fs):  # under one second: no complex can be told from noise
        return QrsPeaks(np.zeros(0, dtype=np.int64), fs, n, method)
    sos = _band_sos((lo, hi), fs)
    bp = filtfilt_lead(sos, x, overlap=int(round(2 * fs)))
    slope, mwi = _kernels.energy_kernel(bp, max(1, int(round(0.15 * fs))))
    refractory = max(1, int(round(refractory_s * fs)))
    centres = _kernels.detect_kernel(mwi, slope, refractory, int(round(twave_s * fs)),
                                     max(1, int(round(0.075 * fs))), int(round(8 * fs)),
                                     float(searchback_factor), 0.5)
    samples = _kernels.locate_raw_kernel(x, centres, max(1, int(round(0.08 * fs))),
                                         max(1, int(round(0.02 * fs))), refractory)
    return QrsPeaks(samples.astype(np.int64), fs, n, method)
