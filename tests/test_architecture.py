"""The import graph shows the architecture: no module reaches into another module's private
names, and imports only run down the layers (cli -> train -> ecg/pcg/plot -> asr/batch ->
manifests -> io/features -> dsp -> signal -> validate/errors/fileio/progress). Read from the source
with ``ast``, lazy imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "biosig"

# (module prefix, layer): the longest matching prefix decides; an import may only go to a
# module of the same or a lower layer
LAYERS = [
    ("biosig", 0),                        # `import biosig`: __version__, and in the CLI the
                                          # subpackages as lazy attributes (biosig.ecg...)
    ("biosig.errors", 0), ("biosig.fileio", 0), ("biosig.progress", 0), ("biosig.extras", 0),
    ("biosig.whisper_audio", 0), ("biosig.validate", 0),
    ("biosig.signal", 1),
    ("biosig.dsp", 2),
    ("biosig.io", 3), ("biosig.features", 3), ("biosig.models", 3), ("biosig.datasets", 3),
    ("biosig.manifests", 4), ("biosig.metrics", 4), ("biosig.calibration", 4),
    ("biosig.drift", 4),
    ("biosig.asr", 5), ("biosig.batch", 5),
    ("biosig.ecg", 6), ("biosig.pcg", 6), ("biosig.plot", 6),
    # synthetic data sits above what it imitates: signals use biosig.ecg, dictation biosig.asr
    ("biosig.features.presets", 7), ("biosig.synth", 7),
    ("biosig.train", 8),
    ("biosig.cli", 10), ("biosig.__main__", 10), ("biosig.warmup", 10),
]


# namespace packages that re-export a higher layer: lower layers import their submodules
EXACT = {"biosig.features": 7}


def _layer(module: str, *, importer: bool = False) -> int:
    if importer and module == "biosig":
        return 99                          # the package root re-exports the public API
    if module in EXACT:
        return EXACT[module]
    best, rank = "", 0
    for prefix, r in LAYERS:
        if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
            best, rank = prefix, r
    return rank


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports():
    """(importer, imported module, imported names, line) for every biosig import."""
    for path in sorted(PKG.rglob("*.py")):
        me = _module_name(path)
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:                        # relative: resolve against this package
                    base = me.split(".")
                    base = base[: len(base) - node.level + (1 if is_pkg else 0)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                if mod.split(".")[0] == "biosig":
                    yield me, mod, [a.name for a in node.names], node.lineno
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "biosig":
                        yield me, a.name, [], node.lineno


def _is_private_submodule(importer: str, module: str, name: str) -> bool:
    """``from biosig.io import _wfdb`` inside ``biosig.io``: a package's private module,
    used by its own package."""
    if not (PKG.parent / Path(*module.split(".")) / f"{name}.py").is_file() and not (
            PKG.parent / Path(*module.split(".")) / name / "__init__.py").is_file():
        return False
    return importer == module or importer.startswith(module + ".")


def test_no_module_imports_another_modules_private_names():
    bad = []
    for me, mod, names, line in _imports():
        if mod == me:
            continue
        for n in names:
            if n.startswith("_") and not n.startswith("__") \
                    and not _is_private_submodule(me, mod, n):
                bad.append(f"{me}:{line} imports {mod}.{n}")
        last = mod.split(".")[-1]
        if last.startswith("_") and not last.startswith("__") \
                and not (me == mod.rsplit(".", 1)[0] or me.startswith(mod.rsplit(".", 1)[0] + ".")):
            bad.append(f"{me}:{line} imports the private module {mod}")
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


def test_imports_run_down_the_layers():
    up = [f"{me}:{line} (layer {_layer(me, importer=True)}) imports {mod} (layer {_layer(mod)})"
          for me, mod, _, line in _imports() if _layer(mod) > _layer(me, importer=True)]
    assert not up, "imports running up the layers:\n" + "\n".join(up)


@pytest.mark.parametrize("module", ["biosig.train.engine", "biosig.train.whisper.task"])
def test_both_training_tasks_run_the_one_loop(module):
    """Neither task has a loop of its own: both subclass the loop's Task and call fit."""
    path = PKG.parent / Path(*module.split(".")).with_suffix(".py")
    src = path.read_text(encoding="utf-8")
    assert "(Task):" in src and "fit(" in src
    for own_loop in (".backward(", "optimizer.step(", "opt.step(", "clip_grad_norm_("):
        assert own_loop not in src, f"{module} has its own {own_loop}"


def test_lazy_subpackage_attributes_only_from_the_top():
    """``import biosig`` reaches every subpackage as a lazy attribute (``biosig.train``), which
    the import graph above cannot see: only the command line (the top layer) uses them; other
    modules use the package's own names (``biosig.__version__``, ``biosig.load``)."""
    import biosig
    own = set(biosig.__all__)
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        me = _module_name(path)
        if _layer(me, importer=True) >= _layer("biosig.cli"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "biosig" and node.attr not in own):
                bad.append(f"{me}:{node.lineno} uses biosig.{node.attr}")
    assert not bad, "lazy subpackage attributes below the command line:\n" + "\n".join(bad)
