"""Optional and heavy dependencies are declared once, at a module's or a package's top: a
package ``__init__`` that loads its submodules on first use (``lazy_loader.attach``, as
:mod:`biosig.train` does), or a module that only the code needing it imports. An import inside
a function is the exception, and says why on its own line (``# optional extra: asr``,
``# heavy: torch, only for --device``, ``# cycle: ...``). And the light entry points stay
light: ``import biosig`` and ``import biosig.train.config`` (the CLI's ``--help``, config
validation) never import torch."""

from __future__ import annotations

import array
import ast
import io
import os
import subprocess
import sys
import tokenize
import wave
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "biosig"

def _comment_lines(source: str) -> set[int]:
    """Line numbers that carry a comment."""
    return {tok.start[0] for tok in tokenize.generate_tokens(io.StringIO(source).readline)
            if tok.type == tokenize.COMMENT}


def _function_level_imports(path: Path):
    """(line, statement's first line of text, has a comment) for each import inside a function."""
    source = path.read_text(encoding="utf-8")
    comments = _comment_lines(source)
    lines = source.splitlines()
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if in_function and isinstance(child, (ast.Import, ast.ImportFrom)):
                commented = any(n in comments for n in range(child.lineno, child.end_lineno + 1))
                found.append((child.lineno, lines[child.lineno - 1].strip(), commented))
            visit(child, in_function or isinstance(
                child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(source, filename=str(path)), False)
    return found


def test_function_level_imports_say_why():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        bad += [f"biosig/{rel}:{line}: {text}"
                for line, text, commented in _function_level_imports(path) if not commented]
    assert not bad, ("imports inside functions without a comment saying why (move them to the "
                     "module's top, or declare the submodule lazily in its package):\n"
                     + "\n".join(bad))


def test_the_checker_sees_a_bare_function_level_import(tmp_path):
    """The check above can fail: an uncommented import inside a function is found, a commented
    one and a module-level one are not."""
    src = tmp_path / "mod.py"
    src.write_text("import os\n\n\ndef f():\n    import json\n    from biosig import (\n"
                   "        io)  # heavy: example\n    return json, io, os\n")
    assert [(line, commented) for line, _, commented in _function_level_imports(src)] == [
        (5, False), (6, True)]


HEAVY = ("torch", "torchaudio", "librosa", "matplotlib", "mne", "numba", "sklearn",
         "faster_whisper", "ctranslate2", "transformers")


@pytest.mark.parametrize("statement", [
    "import biosig",
    "import biosig.train.config",
    "from biosig.cli import main; main(['--help'])",   # every command module, registered
])
def test_light_entry_points_do_not_import_torch(statement):
    code = (f"import sys\n{statement}\n"
            f"print('LOADED', *(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=PKG.parent)
    loaded = out.stdout.strip().splitlines()[-1].split()[1:]
    assert loaded == [], f"{statement!r} imports {loaded}"


def test_reading_a_format_loads_only_its_library(tmp_path):
    """The readers of :mod:`biosig.io` import their library at their top and are imported by
    format on first use: loading a WAV file loads soundfile, and not wfdb, mne or scipy."""
    wav = tmp_path / "ramp.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(array.array("h", range(-800, 800)).tobytes())
    libraries = ("soundfile", "wfdb", "mne", "scipy")
    code = (f"import sys, biosig\nsig = biosig.load({str(wav)!r})\n"
            f"print(sig.data.shape, *(m for m in {libraries!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=PKG.parent)
    assert out.stdout.split() == ["(1,", "1600)", "soundfile"]


def test_every_lazily_declared_name_resolves():
    """The names and submodules the packages declare with ``lazy_loader.attach`` exist (with
    ``EAGER_IMPORT=1``, lazy_loader resolves each one when its package is imported)."""
    packages = ["biosig", "biosig.asr", "biosig.ecg", "biosig.pcg", "biosig.synth", "biosig.train",
                "biosig.train.whisper", "biosig.cli"]
    code = "\n".join(f"import {p}" for p in packages)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=PKG.parent, env={**os.environ, "EAGER_IMPORT": "1"})
    assert out.returncode == 0, out.stderr[-2000:]


def test_a_lazy_name_is_not_shadowed_by_its_module():
    """``biosig.ecg.hrv`` is the function, also once the module ``biosig.ecg.hrv`` is imported
    (here by :mod:`biosig.ecg.scoring`): lazy_loader 0.6 keeps the import machinery from
    replacing the package's attribute with the module."""
    code = ("import types\nimport biosig.ecg.scoring\nfrom biosig.ecg import hrv\n"
            "import biosig.ecg\nprint(isinstance(hrv, types.FunctionType), "
            "biosig.ecg.hrv is hrv)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=PKG.parent)
    assert out.stdout.split() == ["True", "True"]


def _declared_submodules(package: str) -> set[str]:
    """The submodules ``package`` makes attributes of itself: declared with
    ``lazy_loader.attach`` (``submodules=`` and the keys of ``submod_attrs=``) or imported by its
    ``__init__``."""
    init = PKG.parent / Path(*package.split(".")) / "__init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    lists = {t.id: node.value for node in tree.body if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(package + "."):
                found.add(node.module[len(package) + 1:].split(".")[0])
            elif node.module == package:
                found.update(a.name for a in node.names)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "attach"):
            for kw in node.keywords:
                value = lists.get(kw.value.id) if isinstance(kw.value, ast.Name) else kw.value
                if kw.arg == "submodules" and isinstance(value, (ast.List, ast.Tuple)):
                    found.update(e.value for e in value.elts)
                elif kw.arg == "submod_attrs" and isinstance(value, ast.Dict):
                    found.update(k.value for k in value.keys)
    return found


def _attribute_chains(path: Path) -> set[str]:
    """``biosig.a.b.c`` attribute chains in a source file."""
    chains = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if parts and isinstance(node, ast.Name) and node.id == "biosig":
            chains.add(".".join(["biosig", *reversed(parts)]))
    return chains


def test_the_command_lines_attribute_chains_reach_declared_submodules():
    """``biosig.synth.dictation`` in a command works in a fresh process only if biosig.synth
    declares ``dictation`` (or imports it): each submodule along a chain the command line uses
    is declared by its package."""
    bad = []
    for path in sorted((PKG / "cli").glob("*.py")):
        for chain in sorted(_attribute_chains(path)):
            parts = chain.split(".")
            for i in range(1, len(parts)):
                package, name = ".".join(parts[:i]), parts[i]
                where = PKG.parent / Path(*parts[:i])
                if not ((where / f"{name}.py").is_file() or (where / name).is_dir()):
                    break                               # an attribute, not a submodule
                if name not in _declared_submodules(package):
                    bad.append(f"{path.name}: {chain}: {package} does not declare {name}")
                    break
    assert not bad, "\n".join(bad)
