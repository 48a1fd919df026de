"""The exception hierarchy of biosig.

Every error a user can cause derives from :class:`BiosigError`. Its message is one line that names
the file or argument, the value received and what was expected, so that command-line tools can
print it without a traceback.

- :class:`InputError` -- a recording cannot be used: missing file, unknown extension, corrupt or
  truncated header, data shorter than the header says, NaNs, empty or silent signal, wrong or zero
  sampling rate in a file; an in-memory signal of the wrong shape. Derives from both ``OSError``
  and ``ValueError`` so that existing ``except`` clauses for either catch it.
- :class:`InputTypeError` -- an :class:`InputError` for samples of the wrong kind (complex, text,
  objects) or an argument of the wrong type; also a ``TypeError``.
- :class:`ConfigError` -- a configuration, command-line or function argument value is invalid
  (unknown key or option, wrong type, missing value, a sampling rate argument of 0 Hz).
- :class:`ManifestError` -- a manifest line is malformed or disagrees with the files.
"""

from __future__ import annotations

from os import PathLike

__all__ = ["BiosigError", "InputError", "InputTypeError", "ConfigError", "ManifestError"]


class BiosigError(Exception):
    """Base class of every error biosig raises on purpose."""


class InputError(BiosigError, OSError, ValueError):
    """A recording (file or in-memory signal) cannot be used.

    Parameters
    ----------
    path : str or PathLike or None
        The file concerned, or ``None`` for an in-memory signal (then ``what`` names it).
    reason : str
        What is wrong, including the value received and what was expected.
    what : str, optional
        Name used instead of the path, e.g. ``"signal"`` for an argument (the default); ``""``
        when ``reason`` names the argument itself (``"signal has shape (2, 3, 4), ..."``).
    """

    def __init__(self, path: str | PathLike | None, reason: str, *, what: str | None = None):
        self.path = None if path is None else str(path)
        self.reason = reason
        subject = self.path if self.path is not None else ("signal" if what is None else what)
        super().__init__(f"{subject}: {reason}" if subject else reason)

    def __str__(self) -> str:  # OSError would otherwise format errno-style
        return self.args[0]

    def __reduce__(self):  # picklable across processes (multiprocessing, dask)
        return (_rebuild_input_error, (self.path, self.reason, self.args[0], type(self)))


def _rebuild_input_error(path, reason, message, cls=None):
    cls = InputError if cls is None else cls
    err = cls.__new__(cls)
    err.path, err.reason = path, reason
    err.args = (message,)
    return err


class InputTypeError(InputError, TypeError):
    """Samples of the wrong kind (complex, text, objects) or an argument of the wrong type.

    An :class:`InputError` (the data cannot be used) that is also a ``TypeError``, as numpy and
    torch raise for such input.
    """


class ConfigError(BiosigError, ValueError):
    """A configuration value, command-line or function argument is invalid (an unknown option, a
    sampling rate of 0 Hz); the message names the key or argument."""


class ManifestError(BiosigError, ValueError):
    """A manifest is malformed or disagrees with the files it lists; the message names the line."""
