"""IIR filtering with numba kernels: Butterworth design, ``sosfilt``/``sosfiltfilt``, streaming
state, powerline notch, baseline removal, envelopes and moving-window integration.

Every function takes ``signal`` of shape ``(..., n_samples)`` (time on the last axis, any leading
batch/channel axes) and returns the same shape. ``float32`` input gives ``float32`` output; every
other input is computed and returned in ``float64``. The arithmetic runs in float64 either way.
The functions that need a sampling rate take either an array with ``fs=`` or a
:class:`biosig.Signal` (its ``fs`` is used, and a Signal comes back with the filtered data).

Argument mistakes (a cut-off above Nyquist, an unknown ``btype``, ``fs=0``) raise ``ValueError``
(:class:`~biosig.errors.ConfigError` where :mod:`biosig.validate` checks them); a signal that
cannot be filtered (complex, NaN or inf samples, empty, too short for zero-phase filtering)
raises :class:`~biosig.errors.InputError` (see :func:`biosig.validate.check_signal`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import scipy.ndimage
import scipy.signal

from biosig.dsp import _kernels
from biosig.dsp._arrays import as_2d, unpack
from biosig.errors import InputError
from biosig.signal import Signal
from biosig.validate import check_fs, check_option, check_signal

__all__ = [
    "butter_sos", "sosfilt", "sosfiltfilt", "SosFilter", "bandpass", "highpass", "lowpass",
    "notch", "notch_sos", "remove_baseline", "envelope_hilbert", "envelope_homomorphic",
    "moving_window_integration",
]

_BTYPES = ("lowpass", "highpass", "bandpass", "bandstop")
_PADTYPES = {"odd": 1, "even": 2, "constant": 3, None: 0}


def _check_sos(sos):
    sos = np.ascontiguousarray(np.atleast_2d(np.asarray(sos, dtype=np.float64)))
    if sos.ndim != 2 or sos.shape[1] != 6:
        raise ValueError(f"sos has shape {sos.shape}, expected (n_sections, 6)")
    if not np.all(sos[:, 3] == 1.0):
        if np.any(sos[:, 3] == 0):
            raise ValueError("sos: a0 of some section is 0, expected a nonzero a0")
        sos = np.ascontiguousarray(sos / sos[:, 3:4])  # normalise each section so a0 == 1
        sos = np.concatenate([sos[:, :3], sos[:, 3:]], axis=1)
    return sos


def butter_sos(btype: str, cutoff_hz, /, *, fs: float, order: int = 4) -> np.ndarray:
    """Design a digital Butterworth filter as second-order sections.

    Parameters
    ----------
    btype : {"lowpass", "highpass", "bandpass", "bandstop"}
    cutoff_hz : float or (float, float), positional
        Cut-off frequency in Hz; for band filters the band edges ``(low, high)`` (the
        ``band_hz`` of :func:`bandpass`), as :func:`scipy.signal.butter`'s ``Wn``.
    fs : float > 0
        Sampling rate in Hz.
    order : int > 0
        Filter order (a band filter has ``2 * order`` poles).

    Returns
    -------
    sos : np.ndarray [shape=(n_sections, 6)]

    References
    ----------
    Butterworth, S. (1930). On the theory of filter amplifiers. Wireless Engineer 7, 536-541.
    Designed with :func:`scipy.signal.butter`.
    """
    fs = check_fs(fs)
    check_option(btype, "btype", _BTYPES)
    if not isinstance(order, (int, np.integer)) or order < 1:
        raise ValueError(f"order is {order!r}, expected a positive integer")
    nyq = fs / 2
    name = "band_hz" if btype in ("bandpass", "bandstop") else "cutoff_hz"
    try:
        cut = np.atleast_1d(np.asarray(cutoff_hz, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(f"{name} is {cutoff_hz!r}, expected frequencies in Hz") from None
    want = 2 if btype in ("bandpass", "bandstop") else 1
    if cut.size != want:
        raise ValueError(f"{name} is {cutoff_hz!r}: {btype} needs "
                         f"{'a (low, high) pair' if want == 2 else 'one frequency'} in Hz")
    if not np.all(np.isfinite(cut)) or np.any(cut <= 0) or np.any(cut >= nyq) \
            or (want == 2 and cut[0] >= cut[1]):
        raise ValueError(f"{name} is {cutoff_hz!r} Hz, expected "
                         f"{'0 < low < high' if want == 2 else '0 < cutoff'} < the Nyquist "
                         f"frequency {nyq:g} Hz (fs={fs:g} Hz)")
    return scipy.signal.butter(order, cut if want == 2 else cut[0], btype=btype, fs=fs,
                               output="sos")


def sosfilt(sos, signal, *, zi=None):
    """Causal filtering with second-order sections (direct form II transposed), like
    :func:`scipy.signal.sosfilt` along the last axis.

    Parameters
    ----------
    sos : np.ndarray [shape=(n_sections, 6)]
    signal : np.ndarray [shape=(..., n_samples)]
    zi : np.ndarray [shape=(..., n_sections, 2)], optional
        Initial state; when given, the final state is returned too.

    Returns
    -------
    y : np.ndarray [shape=(..., n_samples)]
    zf : np.ndarray [shape=(..., n_sections, 2)]
        Only when ``zi`` is given.
    """
    sos = _check_sos(sos)
    x2, restore = as_2d(signal)
    lead = np.shape(signal)[:-1]
    n_sec = sos.shape[0]
    if zi is None:
        state = np.zeros((x2.shape[0], n_sec, 2))
    else:
        zi = np.asarray(zi, dtype=np.float64)
        want = (*lead, n_sec, 2)
        if zi.shape != want:
            raise ValueError(f"zi has shape {zi.shape}, expected {want}")
        state = np.ascontiguousarray(zi.reshape(-1, n_sec, 2)).copy()
    with _kernels.slp_vectorize():
        y = restore(_kernels.sosfilt_2d(sos, x2, state))
    if zi is None:
        return y
    return y, state.reshape(*lead, n_sec, 2)


def _default_padlen(sos) -> int:
    ntaps = 2 * sos.shape[0] + 1
    ntaps -= min(int((sos[:, 2] == 0).sum()), int((sos[:, 5] == 0).sum()))
    return 3 * ntaps


def sosfiltfilt(sos, signal, *, padtype: str | None = "odd", padlen: int | None = None):
    """Zero-phase forward-backward filtering, equal to :func:`scipy.signal.sosfiltfilt` along the
    last axis (same padding and initial conditions).

    Parameters
    ----------
    sos : np.ndarray [shape=(n_sections, 6)]
    signal : np.ndarray [shape=(..., n_samples)]
    padtype : {"odd", "even", "constant", None}
        Extension at both ends before filtering.
    padlen : int >= 0, optional
        Extension length; scipy's default (``3 * (2 * n_sections + 1)`` less trivial taps).

    Returns
    -------
    y : np.ndarray [shape=(..., n_samples)]
    """
    sos = _check_sos(sos)
    check_option(padtype, "padtype", tuple(_PADTYPES))
    x2, restore = as_2d(signal)
    n = x2.shape[1]
    if padtype is None:
        padlen = 0
    elif padlen is None:
        padlen = _default_padlen(sos)
    if padlen < 0:
        raise ValueError(f"padlen is {padlen!r}, expected a non-negative integer")
    if padlen > 0 and n <= padlen:
        raise InputError(None, f"{n} samples; zero-phase filtering with this filter needs more "
                               f"than padlen={padlen}", what="signal")
    zi_unit = np.ascontiguousarray(scipy.signal.sosfilt_zi(sos))
    mode = _PADTYPES[padtype] if padlen > 0 else 0
    with _kernels.slp_vectorize():
        return restore(_kernels.sosfiltfilt_2d(sos, x2, zi_unit, int(padlen), mode))


class SosFilter:
    """Streaming causal filter: keeps each channel's state across chunks.

    Filtering a signal chunk by chunk gives exactly the one-shot :func:`sosfilt` result.

    Parameters
    ----------
    sos : np.ndarray [shape=(n_sections, 6)]
    initial : {"zeros", "steady"}
        Start from rest, or from the steady state for the first sample (no onset transient,
        like ``sosfilt(sos, x, zi=sosfilt_zi(sos) * x[..., :1])``).

    Examples
    --------
    >>> import numpy as np
    >>> from biosig.dsp import SosFilter, butter_sos, sosfilt
    >>> sos = butter_sos("lowpass", 40.0, fs=360.0)
    >>> x = np.random.default_rng(0).standard_normal((2, 1000))
    >>> f = SosFilter(sos)
    >>> y = np.concatenate([f.process(x[:, :300]), f.process(x[:, 300:])], axis=-1)
    >>> bool(np.allclose(y, sosfilt(sos, x)))
    True
    """

    def __init__(self, sos, *, initial: str = "zeros"):
        check_option(initial, "initial", ("zeros", "steady"))
        self.sos = _check_sos(sos)
        self.initial = initial
        self._zi_unit = scipy.signal.sosfilt_zi(self.sos)
        self.state: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the state; the next chunk starts a new stream."""
        self.state = None

    def process(self, chunk) -> np.ndarray:
        """Filter the next chunk ``[shape=(..., n)]``; leading shape must stay the same."""
        chunk = check_signal(np.asarray(chunk), name="chunk", min_samples=0)
        lead = chunk.shape[:-1]
        n_sec = self.sos.shape[0]
        if self.state is None:
            if self.initial == "steady" and chunk.shape[-1]:
                first = np.asarray(chunk[..., :1], dtype=np.float64)[..., None]
                self.state = self._zi_unit * first
            else:
                self.state = np.zeros((*lead, n_sec, 2))
        elif self.state.shape[:-2] != lead:
            raise ValueError(f"chunk has leading shape {lead}, expected the stream's "
                             f"{self.state.shape[:-2]} (call reset() to start a new stream)")
        if chunk.shape[-1] == 0:
            return chunk.astype(np.float32 if chunk.dtype == np.float32 else np.float64)
        y, self.state = sosfilt(self.sos, chunk, zi=self.state)
        return y


def _apply(sos, signal, zero_phase):
    return sosfiltfilt(sos, signal) if zero_phase else sosfilt(sos, signal)


def bandpass(signal, *, fs: float | None = None, band_hz: tuple[float, float], order: int = 4,
             zero_phase: bool = True):
    """Butterworth band-pass over ``band_hz``.

    Parameters
    ----------
    signal : np.ndarray [shape=(..., n_samples)] or biosig.Signal
    fs : float > 0
        Sampling rate in Hz; may be omitted for a Signal.
    band_hz : (float, float)
        Pass band ``(low, high)`` in Hz, ``0 < low < high < fs / 2``.
    order : int
        Butterworth order.
    zero_phase : bool
        Forward-backward (:func:`sosfiltfilt`, order doubled, no delay) or causal
        (:func:`sosfilt`).

    Returns
    -------
    np.ndarray [shape=(..., n_samples)] or biosig.Signal
        The kind that came in.
    """
    x, fs, give_back = unpack(signal, fs)
    return give_back(_apply(butter_sos("bandpass", band_hz, fs=fs, order=order), x,
                            zero_phase))


def highpass(signal, *, fs: float | None = None, cutoff_hz: float, order: int = 4,
             zero_phase: bool = True):
    """Butterworth high-pass at ``cutoff_hz`` (see :func:`bandpass`)."""
    x, fs, give_back = unpack(signal, fs)
    return give_back(_apply(butter_sos("highpass", cutoff_hz, fs=fs, order=order), x,
                            zero_phase))


def lowpass(signal, *, fs: float | None = None, cutoff_hz: float, order: int = 4,
            zero_phase: bool = True):
    """Butterworth low-pass at ``cutoff_hz`` (see :func:`bandpass`)."""
    x, fs, give_back = unpack(signal, fs)
    return give_back(_apply(butter_sos("lowpass", cutoff_hz, fs=fs, order=order), x,
                            zero_phase))


def notch_sos(*, fs: float, powerline_hz: float = 50.0, harmonics: bool = True,
              quality: float = 30.0) -> np.ndarray:
    """Second-order sections of a powerline notch at ``powerline_hz`` and, with ``harmonics``, at
    every multiple below the Nyquist frequency (:func:`scipy.signal.iirnotch` per frequency)."""
    fs = check_fs(fs)
    if not (0 < powerline_hz < fs / 2):
        raise ValueError(f"powerline_hz is {powerline_hz!r} Hz, expected 0 < powerline_hz < "
                         f"the Nyquist frequency {fs / 2:g} Hz")
    if not quality > 0:
        raise ValueError(f"quality is {quality!r}, expected a positive quality factor")
    freqs = [powerline_hz]
    if harmonics:
        k = 2
        while k * powerline_hz < fs / 2 * 0.98:
            freqs.append(k * powerline_hz)
            k += 1
    sections = [scipy.signal.tf2sos(*scipy.signal.iirnotch(f, quality, fs=fs)) for f in freqs]
    return np.concatenate(sections, axis=0)


def notch(signal, *, fs: float | None = None, powerline_hz: float = 50.0,
          harmonics: bool = True, quality: float = 30.0, zero_phase: bool = True):
    """Remove powerline interference at ``powerline_hz`` (50 or 60 Hz) and its harmonics.

    Parameters
    ----------
    signal : np.ndarray [shape=(..., n_samples)] or biosig.Signal
    fs : float > 0
        Sampling rate in Hz; may be omitted for a Signal.
    powerline_hz : float
        Mains frequency.
    harmonics : bool
        Also notch 2, 3, ... times ``powerline_hz`` below the Nyquist frequency.
    quality : float > 0
        Quality factor ``freq / bandwidth`` of each notch.
    zero_phase : bool
        Forward-backward (no phase distortion) or causal.
    """
    x, fs, give_back = unpack(signal, fs)
    return give_back(_apply(notch_sos(fs=fs, powerline_hz=powerline_hz, harmonics=harmonics,
                                      quality=quality), x, zero_phase))


def remove_baseline(signal, *, fs: float | None = None, cutoff_hz: float = 0.5,
                    method: str = "highpass"):
    """Remove baseline wander.

    Parameters
    ----------
    signal : np.ndarray [shape=(..., n_samples)] or biosig.Signal
    fs : float > 0
        Sampling rate in Hz; may be omitted for a Signal.
    cutoff_hz : float
        High-pass cut-off for ``method="highpass"`` (0.5 Hz keeps the ECG's ST segment usable).
    method : {"highpass", "median"}
        ``"highpass"``: zero-phase 2nd-order Butterworth high-pass. ``"median"``: subtract the
        baseline estimated by a 200 ms then a 600 ms median filter (de Chazal, O'Dwyer & Reilly
        2004, IEEE Trans. Biomed. Eng. 51(7)).
    """
    x, fs, give_back = unpack(signal, fs)
    check_option(method, "method", ("highpass", "median"))
    if method == "highpass":
        return give_back(highpass(x, fs=fs, cutoff_hz=cutoff_hz, order=2))
    x2, restore = as_2d(x)
    w1 = max(1, int(round(0.2 * fs)) | 1)
    w2 = max(1, int(round(0.6 * fs)) | 1)
    base = scipy.ndimage.median_filter(x2, size=(1, w1), mode="nearest")
    base = scipy.ndimage.median_filter(base, size=(1, w2), mode="nearest")
    return give_back(restore(x2 - base))


def envelope_hilbert(signal):
    """Amplitude envelope ``|x + i H(x)|`` from the analytic signal (FFT Hilbert transform).

    Parameters
    ----------
    signal : np.ndarray [shape=(..., n_samples)] or biosig.Signal
    """
    if isinstance(signal, Signal):
        return replace(signal, data=envelope_hilbert(signal.data))
    x2, restore = as_2d(signal)
    return restore(np.abs(scipy.signal.hilbert(x2, axis=-1)))


def envelope_homomorphic(signal, *, fs: float | None = None, cutoff_hz: float = 8.0):
    """Homomorphic envelope: ``exp(lowpass(log |analytic signal|))``, the envelope used for heart
    sound segmentation.

    Parameters
    ----------
    signal : np.ndarray [shape=(..., n_samples)] or biosig.Signal
    fs : float > 0
        Sampling rate in Hz; may be omitted for a Signal.
    cutoff_hz : float
        Cut-off of the zero-phase first-order Butterworth low-pass on the log envelope.

    References
    ----------
    Gupta, C. N. et al. (2007). Neural network classification of homomorphic segmented heart
    sounds. Applied Soft Computing 7(1), 286-297. Springer, D. B., Tarassenko, L. & Clifford,
    G. D. (2016). Logistic regression-HSMM-based heart sound segmentation. IEEE TBME 63(4).
    """
    x, fs, give_back = unpack(signal, fs)
    env = envelope_hilbert(np.asarray(x, dtype=np.float64))
    tiny = np.finfo(np.float64).tiny
    log_env = np.log(np.maximum(env, tiny))
    out = np.exp(sosfiltfilt(butter_sos("lowpass", cutoff_hz, fs=fs, order=1), log_env))
    return give_back(out.astype(np.float32) if np.asarray(x).dtype == np.float32 else out)


def moving_window_integration(signal, *, fs: float | None = None, window_s: float):
    """Trailing moving average over ``window_s`` seconds (Pan & Tompkins 1985 integration stage).

    ``y[n] = (x[n - w + 1] + ... + x[n]) / w`` with ``w = round(window_s * fs)``; the first
    ``w - 1`` outputs average the zero-padded start.

    References
    ----------
    Pan, J. & Tompkins, W. J. (1985). A real-time QRS detection algorithm. IEEE TBME 32(3).
    """
    x, fs, give_back = unpack(signal, fs)
    width = int(round(window_s * fs))
    if width < 1:
        raise ValueError(f"window_s is {window_s!r} s, shorter than one sample at {fs:g} Hz")
    x2, restore = as_2d(x)
    return give_back(restore(_kernels.moving_sum_2d(x2, width) / width))
