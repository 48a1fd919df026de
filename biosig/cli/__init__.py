"""The ``biosig`` command line: a thin layer over library functions.

The sub-command modules reach the library as attributes of :mod:`biosig`
(``biosig.ecg.score_qrs``), which packages load on first use, so that ``biosig --help`` imports
none of torch, numba, librosa, wfdb, mne or pydantic. A :class:`~biosig.errors.BiosigError` is
printed as one line on stderr (no traceback) and the command exits with status 2; so is a missing
optional extra (:class:`~biosig.extras.MissingExtraError`, or a ``ModuleNotFoundError`` naming a
module of an extra), as ``biosig[asr] is needed for transcription: pip install 'biosig[asr]'
(missing module: faster_whisper)``. Any other import error propagates with its traceback.
"""

from __future__ import annotations

import importlib
import sys

import lazy_loader as _lazy
import typer

from biosig.cli._app import app
from biosig.errors import BiosigError
from biosig.extras import MissingExtraError, extra_of

__all__ = ["app", "main"]

# the demo's driver (it imports most of biosig), loaded when `biosig demo` runs
__getattr__, _, _ = _lazy.attach(__name__, submodules=["demo"])


def _register() -> None:
    # Sub-command modules register themselves on `app` (or add sub-apps) when imported.
    for name in ("biosig.cli.signal_cmds", "biosig.cli.manifest_cmds", "biosig.cli.ecg_cmds",
                 "biosig.cli.pcg_cmds", "biosig.cli.asr_cmds", "biosig.cli.asr_convert_cmds",
                 "biosig.cli.train_cmds", "biosig.cli.enroll_cmds", "biosig.cli.demo_cmds"):
        importlib.import_module(name)


def _click_errors() -> tuple[type, ...]:
    """Click's exception base classes: the installed click's and the copy that typer >= 0.25
    vendors (``typer._click``), whose exceptions are not click's."""
    found = []
    for mod, attr in (("click", "ClickException"), ("typer._click.exceptions", "ClickException")):
        try:
            found.append(getattr(importlib.import_module(mod), attr))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def _usage_line(exc) -> str:
    """One line for a usage error: the message and where help is."""
    msg = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "biosig"
    return f"biosig: error: {msg} (see '{where} --help')"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``biosig`` console script."""
    _register()
    try:
        # with standalone_mode=False click returns a typer.Exit's code instead of exiting
        rv = app(args=argv, standalone_mode=False)
    except BiosigError as exc:
        print(f"biosig: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an extra imported without biosig.extras.require
        extra = extra_of(exc.name or "")
        if extra is None:
            raise
        print(f"biosig: error: {MissingExtraError(extra, exc.name)}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("biosig: aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("biosig: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # click usage errors (missing argument, unknown option ...)
        if isinstance(exc, _click_errors()):
            print(_usage_line(exc), file=sys.stderr)
            return 2 if exc.exit_code in (None, 0, 1) else exc.exit_code
        raise
    return rv if isinstance(rv, int) else 0
