"""The ``biosig`` command line: a thin layer over library functions.

Every sub-command module keeps heavy imports (torch, librosa, wfdb, mne ...) inside the command
functions so that ``biosig --help`` stays fast. A :class:`~biosig.errors.BiosigError` is printed
as one line on stderr (no traceback) and the command exits with status 2.
"""

from __future__ import annotations

import sys

import typer

from biosig.cli._app import app

__all__ = ["app", "main"]


def _register() -> None:
    # Sub-command modules register themselves on `app` (or add sub-apps) when imported.
    import importlib
    for name in ("biosig.cli.signal_cmds", "biosig.cli.manifest_cmds", "biosig.cli.ecg_cmds",
                 "biosig.cli.asr_cmds", "biosig.cli.asr_convert_cmds",
                 "biosig.cli.train_cmds", "biosig.cli.demo_cmds"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a module not written yet; any other error surfaces
            if exc.name != name:
                raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``biosig`` console script."""
    from biosig.errors import BiosigError
    _register()
    try:
        # with standalone_mode=False click returns a typer.Exit's code instead of exiting
        rv = app(args=argv, standalone_mode=False)
    except BiosigError as exc:
        print(f"biosig: error: {exc}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("biosig: aborted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("biosig: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # click usage errors and similar: print them the click way
        import click
        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return rv if isinstance(rv, int) else 0
