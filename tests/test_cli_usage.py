"""Every usage error (missing argument, unknown option, unknown command) is one line on stderr
and exit status 2, whichever click typer uses (typer >= 0.25 vendors its own)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from biosig.cli import main


@pytest.mark.parametrize("argv, words", [
    (["train"], "Missing argument 'config'"),
    (["nosuchcmd"], "No such command 'nosuchcmd'"),
    (["score", "qrs", "--bogus", "x"], "No such option: --bogus"),
    (["features", "x.wav", "--modality"], "requires an argument"),
])
def test_usage_errors_are_one_line_and_exit_2(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("biosig: error: ") and words in err
    assert "Traceback" not in err and "--help" in err


def test_usage_error_from_the_console_script():
    p = subprocess.run([sys.executable, "-m", "biosig", "train"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "biosig: error: Missing argument 'config'. (see 'python -m biosig train --help')"]
