"""Private helpers: numpy/torch in, the same kind out; argument checks (``check_fs`` is
:func:`biosig.validate.check_fs`, samples are checked by :func:`biosig.validate.check_signal`)."""

from __future__ import annotations

import numpy as np
import torch

from biosig.validate import check_fs, check_signal  # noqa: F401  (the validators of biosig)

__all__ = ["as_tensor", "restore", "check_fs", "check_positive_int", "make_window"]


def as_tensor(signal, *, device=None, name: str = "signal",
              allow_nan: bool = False) -> tuple[torch.Tensor, bool]:
    """Return ``signal`` as a floating tensor on ``device`` and whether it came in as numpy.

    float64 stays float64 (for tight comparisons with references); any other real dtype becomes
    float32. Complex samples, NaN/inf (unless ``allow_nan``: spectra, features), no samples or a
    scalar raise (see :func:`biosig.validate.check_signal`).
    """
    if isinstance(signal, torch.Tensor):
        x = check_signal(signal, name=name, allow_nan=allow_nan)
        if x.dtype not in (torch.float32, torch.float64):
            x = x.to(torch.float32)
        was_numpy = False
    else:
        arr = check_signal(np.asarray(signal), name=name, allow_nan=allow_nan)
        arr = arr.astype(np.float64 if arr.dtype == np.float64 else np.float32, copy=False)
        x = torch.from_numpy(np.ascontiguousarray(arr))
        was_numpy = True
    if device is not None:
        x = x.to(device)
    return x, was_numpy


def restore(x: torch.Tensor, was_numpy: bool):
    """Give back numpy when the caller passed numpy, else the tensor."""
    if was_numpy:
        return x.detach().cpu().numpy()
    return x


def check_positive_int(value, *, name: str) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) <= 0:
        raise ValueError(f"{name} is {value!r}, expected a positive integer")
    return int(value)


_WINDOWS = {
    "hann": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
    "boxcar": lambda n, **kw: torch.ones(n, **kw),
}


def make_window(window, win_length: int, *, dtype=torch.float32, device=None) -> torch.Tensor:
    """A periodic window of ``win_length`` samples (``scipy.signal.get_window``, fftbins=True).

    ``window`` is a name (``"hann"``, ``"hamming"``, ``"blackman"``, ``"boxcar"``) or an array of
    ``win_length`` values.
    """
    if isinstance(window, str):
        try:
            make = _WINDOWS[window]
        except KeyError:
            raise ValueError(f"window is {window!r}, expected one of {sorted(_WINDOWS)} or an "
                             f"array of win_length={win_length} values") from None
        if window == "boxcar":
            return make(win_length, dtype=dtype, device=device)
        return make(win_length, periodic=True, dtype=dtype, device=device)
    w = torch.as_tensor(np.asarray(window) if not isinstance(window, torch.Tensor) else window)
    if w.ndim != 1 or w.shape[0] != win_length:
        raise ValueError(f"window has shape {tuple(w.shape)}, expected ({win_length},)")
    return w.to(dtype=dtype, device=device)
