"""Optional extras: what each one enables, and one error when one is missing.

``pip install biosig`` installs the core (loading, DSP, features, manifests, ECG, batch scoring,
training of the signal classifiers). The extras add:

- ``asr`` (faster-whisper, ctranslate2, transformers, jiwer): transcription, dictation,
  ``biosig asr eval/import-ct2/export-ct2``;
- ``train`` (``asr`` + peft): Whisper fine-tuning (``biosig train`` of a Whisper recipe);
- ``mic`` (sounddevice, and the PortAudio library): ``biosig dictate --mic``;
- ``scale`` (dask[distributed]): ``--executor dask``;
- ``all``: all of the above.

Code that needs an extra imports it with :func:`require`, inside the function that uses it, so
that importing the core never imports an extra. A missing extra raises
:class:`MissingExtraError`, whose message is one line naming the extra to install, e.g.
``biosig[asr] is needed for transcription: pip install 'biosig[asr]' (missing module:
faster_whisper)``; the command line prints it and exits with status 2.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from biosig.errors import BiosigError

__all__ = ["EXTRAS", "MissingExtraError", "require", "extra_of", "missing_module"]

#: Each extra: what it enables (for the message) and the top-level modules it provides.
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "asr": ("transcription", ("faster_whisper", "ctranslate2", "transformers", "jiwer",
                              "tokenizers", "huggingface_hub", "rapidfuzz", "jellyfish")),
    "train": ("Whisper fine-tuning", ("peft",)),
    "mic": ("live microphone input", ("sounddevice",)),
    "scale": ("the Dask executor", ("dask", "distributed")),
    "serve": ("the dictation server", ("starlette", "uvicorn", "websockets")),
}


class MissingExtraError(BiosigError, ImportError):
    """An optional extra is not installed; the message names the extra to install.

    Parameters
    ----------
    extra : str
        Key of :data:`EXTRAS` (``"asr"``, ``"train"``, ``"mic"``, ``"scale"``).
    module : str
        The module that could not be imported.
    """

    def __init__(self, extra: str, module: str):
        if extra not in EXTRAS:
            raise ValueError(f"extra: expected one of {sorted(EXTRAS)}, got {extra!r}")
        self.extra, self.module = extra, module
        purpose = EXTRAS[extra][0]
        super().__init__(f"biosig[{extra}] is needed for {purpose}: pip install "
                         f"'biosig[{extra}]' (missing module: {module})", name=module)

    def __reduce__(self):  # picklable across processes (ImportError's own reduce drops args)
        return (MissingExtraError, (self.extra, self.module))


def extra_of(module: str) -> str | None:
    """The extra that provides ``module`` (a dotted name; its top-level package counts), or
    ``None`` for a module no extra provides."""
    top = module.split(".", 1)[0]
    for extra, (_, modules) in EXTRAS.items():
        if top in modules:
            return extra
    return None


def require(module: str, *, extra: str | None = None) -> ModuleType:
    """Import ``module`` from an optional extra.

    Parameters
    ----------
    module : str
        Dotted module name, e.g. ``"faster_whisper"`` or ``"ctranslate2.converters"``.
    extra : str, optional
        The extra to name in the error (default: the one :func:`extra_of` finds; for a module
        two features need, such as transformers for training, the caller names the extra that
        covers its whole use).

    Returns
    -------
    module

    Raises
    ------
    MissingExtraError
        ``module`` (or its top-level package) is not installed.
    ModuleNotFoundError
        ``module`` is installed but something it imports is not (a broken installation: the
        original error, with its traceback, is what helps).
    """
    extra = extra or extra_of(module)
    if extra is None:
        raise ValueError(f"module {module!r} belongs to no extra of {sorted(EXTRAS)}")
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        parts = module.split(".")
        if exc.name not in {".".join(parts[:i]) for i in range(1, len(parts) + 1)}:
            raise
        raise MissingExtraError(extra, exc.name) from exc


def missing_module(extra: str) -> str | None:
    """The first module of ``extra`` that cannot be found (nothing is imported), or ``None``
    when the extra is installed."""
    if extra not in EXTRAS:
        raise ValueError(f"extra: expected one of {sorted(EXTRAS)}, got {extra!r}")
    return next((m for m in EXTRAS[extra][1] if importlib.util.find_spec(m) is None), None)
