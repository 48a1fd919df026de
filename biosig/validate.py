"""The argument validators of biosig: one per kind of input, shared by dsp, features, ecg, pcg,
io and asr (as librosa's ``valid_audio`` or MNE's ``_validate_type`` / ``_check_option``).

Each raises one error class with a one-line message that names the argument (and the file, when
there is one), the value received and what was expected:

=====================  ====================================================================
:func:`check_fs`       a sampling rate: :class:`~biosig.errors.ConfigError` for an argument,
                       :class:`~biosig.errors.InputError` for a rate read from a file
:func:`check_signal`   samples: :class:`~biosig.errors.InputError` (shape, empty, NaN/inf);
                       :class:`~biosig.errors.InputTypeError` (complex, text or object dtype)
:func:`check_channel`  one channel ``(n,)`` or ``(1, n)``, as :func:`check_signal`
:func:`check_option`   one of a fixed set of values: :class:`~biosig.errors.ConfigError`
:func:`check_type`     an instance of given types: :class:`~biosig.errors.InputTypeError`
=====================  ====================================================================

All three error classes derive from ``ValueError`` (``InputTypeError`` from ``TypeError`` too),
so ``except ValueError`` written against older versions keeps working.
"""

from __future__ import annotations

import math

import numpy as np

from biosig.errors import ConfigError, InputError, InputTypeError

__all__ = ["check_fs", "check_signal", "check_channel", "check_option", "check_type"]

_SHAPES = {1: "(n_samples,)", 2: "(channels, n_samples)"}


def check_fs(fs, *, name: str = "fs", path=None, min_hz: float = 0.0,
             max_hz: float = math.inf, purpose: str = "") -> float:
    """``fs`` as a float, checked to be a usable sampling rate in Hz.

    The one sampling-rate validator of biosig. A rate given as an argument (``path=None``) that
    is not a finite number with ``0 < fs``, ``min_hz <= fs <= max_hz`` raises
    :class:`~biosig.errors.ConfigError` (a ``ValueError``); a rate read from a file (``path=``
    the file) raises :class:`~biosig.errors.InputError` naming the file.

    Parameters
    ----------
    fs : number
        The rate to check.
    name : str
        How to call it in the message (``"fs"``, ``"target_fs"``, ``"sampling rate in header"``).
    path : str or PathLike, optional
        The file the rate was read from.
    min_hz, max_hz : float
        Inclusive bounds besides ``fs > 0``.
    purpose : str
        Appended to the expectation, e.g. ``" for ECG analysis"``.

    Returns
    -------
    float

    Examples
    --------
    >>> check_fs(360)
    360.0
    >>> check_fs(-1)
    Traceback (most recent call last):
    ...
    biosig.errors.ConfigError: fs is -1 Hz, expected a positive finite sampling rate in Hz
    """
    def fail(reason):
        if path is None:
            return ConfigError(f"{name} is {reason}")
        return InputError(path, f"{name} is {reason}")

    try:
        value = float(fs)
    except (TypeError, ValueError):
        raise fail(f"{fs!r}, expected a sampling rate in Hz (a positive number)") from None
    if not (math.isfinite(value) and value > 0):
        raise fail(f"{value:g} Hz, expected a positive finite sampling rate in Hz{purpose}")
    if value < min_hz:
        raise fail(f"{value:g} Hz, expected at least {min_hz:g} Hz{purpose}")
    if value > max_hz:
        raise fail(f"{value:g} Hz, expected at most {max_hz:g} Hz{purpose}")
    return value


def _is_tensor(x) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "is_complex")


def check_signal(signal, *, name: str = "signal", ndim=None, min_samples: int = 1,
                 allow_nan: bool = False, path=None, expected: str | None = None):
    """``signal`` as an array (a torch tensor stays a tensor), checked to hold usable samples.

    Checks, in this order: the number of dimensions, the dtype (real: float, integer or bool),
    the number of samples on the last (time) axis, and NaN/inf. Nothing is copied or cast.

    Parameters
    ----------
    signal : array-like or torch.Tensor [shape=(..., n_samples)]
    name : str
        The argument's name in messages (``"signal"``, ``"audio"``).
    ndim : int or tuple of int, optional
        Accepted numbers of dimensions; by default any from 1 up.
    min_samples : int >= 0
        Fewest samples on the last axis (0 accepts empty signals).
    allow_nan : bool
        Accept NaN and inf samples.
    path : str or PathLike, optional
        The file the samples came from, named first in messages.
    expected : str, optional
        What to say was expected instead of a wrong shape (default: the accepted shapes).

    Returns
    -------
    np.ndarray or torch.Tensor

    Raises
    ------
    InputError
        Wrong number of dimensions, too few samples, NaN/inf (one line naming ``name``).
    InputTypeError
        Complex, text or object samples.

    Examples
    --------
    >>> check_signal([[0.0, 1.0]], name="audio", ndim=1)
    Traceback (most recent call last):
    ...
    biosig.errors.InputError: audio has shape (1, 2), expected (n_samples,)
    """
    def fail(cls, reason, subject=""):
        return cls(path, reason, what=subject)

    tensor = _is_tensor(signal)
    x = signal if tensor else np.asarray(signal)
    shape = tuple(x.shape)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if len(shape) == 0 or (allowed is not None and len(shape) not in allowed):
        if expected is None:
            expected = (" or ".join(_SHAPES.get(k, f"{k}-D") for k in allowed)
                        if allowed is not None else "an array (..., n_samples)")
        raise fail(InputError, f"{name} has shape {shape}, expected {expected}")
    if tensor:
        real = not x.is_complex()
    else:
        real = x.dtype.kind in "fiub"
    if not real:
        raise fail(InputTypeError, f"{name} has dtype {x.dtype}, expected a real numeric array")
    if shape[-1] < min_samples:
        raise fail(InputError, f"{name} has {shape[-1]} samples on its last (time) axis "
                               f"(shape {shape}), expected at least {min_samples}")
    floating = x.is_floating_point() if tensor else x.dtype.kind == "f"
    if floating and not allow_nan:
        if tensor:
            finite = bool(x.isfinite().all())
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                finite = bool(np.isfinite(np.add.reduce(x, axis=None)))  # no temporary array
        if not finite:
            bad = int((~(x.isfinite() if tensor else np.isfinite(x))).sum())
            if bad:   # (a finite sum that overflowed is not an error)
                n = math.prod(shape)
                raise fail(InputError, f"{bad} of {n} samples are NaN or inf, expected finite "
                                       f"values; repair or crop them first", name)
    return x


def check_channel(signal, *, name: str = "signal", what: str = "one channel",
                  hint: str = "", **kwargs) -> np.ndarray:
    """One channel of samples ``(n_samples,)`` (``(1, n_samples)`` is accepted and flattened),
    checked by :func:`check_signal`; never a silent flattening of several channels.

    Parameters
    ----------
    signal : array-like [shape=(n_samples,) or (1, n_samples)]
    name : str
        The argument's name in messages.
    what : str
        What one channel is called (``"one lead"`` for an ECG).
    hint : str
        Appended to the shape message, e.g. ``"; pick a lead first (signal[0])"``.
    **kwargs
        ``min_samples``, ``allow_nan``, ``path`` of :func:`check_signal`.

    Returns
    -------
    np.ndarray [shape=(n_samples,)]
    """
    x = np.asarray(signal)
    if x.ndim == 2 and x.shape[0] == 1:
        x = x[0]
    return check_signal(x, name=name, ndim=1, expected=f"{what} (n_samples,){hint}", **kwargs)


def _one_of(allowed) -> str:
    items = [repr(a) for a in allowed]
    if len(items) == 2:
        return f"{items[0]} or {items[1]}"
    return f"one of {', '.join(items)}"


def check_option(value, name: str, allowed):
    """``value`` if it is one of ``allowed``, else :class:`~biosig.errors.ConfigError`.

    Examples
    --------
    >>> check_option("median", "method", ("highpass", "median"))
    'median'
    >>> check_option("mean", "method", ("highpass", "median"))
    Traceback (most recent call last):
    ...
    biosig.errors.ConfigError: method is 'mean', expected 'highpass' or 'median'
    """
    try:
        ok = value in allowed
    except TypeError:          # an unhashable value against a dict or set
        ok = False
    if not ok:
        raise ConfigError(f"{name} is {value!r}, expected {_one_of(allowed)}")
    return value


def check_type(value, name: str, types, *, what: str | None = None):
    """``value`` if it is an instance of ``types``, else
    :class:`~biosig.errors.InputTypeError` (a ``TypeError``).

    Parameters
    ----------
    value : object
    name : str
        The argument's name in messages.
    types : type or tuple of type
    what : str, optional
        How to describe the expected types (default: their names).

    Examples
    --------
    >>> check_type("4", "order", int)
    Traceback (most recent call last):
    ...
    biosig.errors.InputTypeError: order is a str ('4'), expected int
    """
    if not isinstance(value, types):
        if what is None:
            names = [t.__name__ for t in (types if isinstance(types, tuple) else (types,))]
            what = " or ".join(names)
        shown = repr(value)
        if len(shown) > 40 or "\n" in shown:
            shown = shown[:37].split("\n")[0] + "..."
        raise InputTypeError(None, f"{name} is a {type(value).__name__} ({shown}), expected "
                                   f"{what}", what="")
    return value
