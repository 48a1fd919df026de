"""The exception hierarchy of biosig.

Every error a user can cause derives from :class:`BiosigError`. Its message is one line that names
the file or argument, the value received and what was expected, so that command-line tools can
print it without a traceback.

- :class:`InputError` -- a recording cannot be used: missing file, unknown extension, corrupt or
  truncated header, data shorter than the header says, NaNs, empty or silent signal, wrong or zero
  sampling rate. Derives from both ``OSError`` and ``ValueError`` so that existing ``except``
  clauses for either catch it.
- :class:`ConfigError` -- a configuration or command-line value is invalid (unknown key, wrong
  type, missing value).
- :class:`ManifestError` -- a manifest line is malformed or disagrees with the files.
"""

from __future__ import annotations

from os import PathLike

__all__ = ["BiosigError", "InputError", "ConfigError", "ManifestError"]


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
        Name used instead of the path, e.g. ``"signal"`` for an argument.
    """

    def __init__(self, path: str | PathLike | None, reason: str, *, what: str | None = None):
        self.path = None if path is None else str(path)
        self.reason = reason
        subject = self.path if self.path is not None else (what or "signal")
        super().__init__(f"{subject}: {reason}")

    def __str__(self) -> str:  # OSError would otherwise format errno-style
        return self.args[0]

    def __reduce__(self):  # picklable across processes (multiprocessing, dask)
        return (_rebuild_input_error, (self.path, self.reason, self.args[0]))


def _rebuild_input_error(path, reason, message):
    err = InputError.__new__(InputError)
    err.path, err.reason = path, reason
    err.args = (message,)
    return err


class ConfigError(BiosigError, ValueError):
    """A configuration value or command-line argument is invalid; the message names the key."""


class ManifestError(BiosigError, ValueError):
    """A manifest is malformed or disagrees with the files it lists; the message names the line."""
