"""The one config layer: pydantic models whose mistakes are errors naming the key and value.

Every configuration in biosig (feature presets, :class:`~biosig.asr.StreamingConfig`, recipe
configs, the manifest :class:`~biosig.manifests.Record`) is a pydantic model. This module holds
what they share:

- :class:`ConfigModel` -- a frozen, strict base: unknown keys, wrong types (no string is parsed
  as a number, no boolean taken for one) and out-of-range values raise
  :class:`~biosig.errors.ConfigError` when the model is built, ``Model(key=value)`` as well as
  :meth:`ConfigModel.validate_mapping`;
- :func:`validate_model` -- a mapping (parsed YAML or JSON) into a model, errors naming the
  source (file, ``file:line``) and the dotted key;
- :func:`describe_validation_error` -- one line from a pydantic ``ValidationError``;
- :data:`Int` and :func:`pair` -- the two lenient spellings that YAML and JSON need: an integral
  float for an integer (``2.0``) and a list for a fixed-length tuple (``[25, 400]``);
  :data:`BandHz` -- a pass band ``(lo, hi)`` with ``0 <= lo < hi``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

from biosig.errors import ConfigError

__all__ = ["ConfigModel", "validate_model", "describe_validation_error", "Int", "pair",
           "BandHz"]

M = TypeVar("M", bound=BaseModel)


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


#: An ``int`` that also accepts an integral float (``2.0`` from YAML), never a string or bool.
Int = Annotated[int, BeforeValidator(_integral)]


def pair(item_type=float):
    """A ``tuple[item_type, item_type]`` that also accepts a two-item list (YAML, JSON)."""
    return Annotated[tuple[item_type, item_type], BeforeValidator(_as_tuple)]


def _ordered_band(band: tuple[float, float]) -> tuple[float, float]:
    lo, hi = band
    if not 0 <= lo < hi:
        raise ValueError(f"is ({lo:g}, {hi:g}), expected (lo, hi) with 0 <= lo < hi")
    return band


#: A pass band ``(lo, hi)`` in Hz with ``0 <= lo < hi`` (a two-item list is accepted).
BandHz = Annotated[tuple[float, float], BeforeValidator(_as_tuple), AfterValidator(_ordered_band)]


def _loc(err: dict, drop_loc: Iterable[str]) -> str:
    drop = set(drop_loc)
    parts = [str(x) for x in err["loc"]]
    # a tagged union puts its tag in the location; it is not a key of the file
    parts = [p for i, p in enumerate(parts) if not (i > 0 and p in drop)]
    return ".".join(parts)


def describe_validation_error(exc: ValidationError, source: str | None = None, *,
                              allowed: dict[str, Iterable[str]] | None = None,
                              drop_loc: Iterable[str] = ()) -> str:
    """One line naming each bad key and the value received.

    Parameters
    ----------
    exc : pydantic.ValidationError
    source : str, optional
        What was validated (a file, ``file:line``, a section); the line starts with it.
    allowed : dict of str to iterable of str, optional
        Valid keys by dotted parent location (``""`` for the top level), listed after an
        unknown key.
    drop_loc : iterable of str
        Location parts to leave out (the tags of discriminated unions).
    """
    parts = []
    for err in exc.errors():
        loc = _loc(err, drop_loc)
        kind, msg = err["type"], err["msg"]
        if kind == "extra_forbidden":
            msg = "unknown key"
            parent = loc.rpartition(".")[0]
            if allowed is not None and parent in allowed:
                msg += f" (expected one of {', '.join(allowed[parent])})"
        elif kind == "missing":
            msg = "missing required key"
        elif kind in ("value_error", "assertion_error"):     # biosig's own checks: the
            msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        elif "input" in err:                                    # message names the value
            msg = f"{msg} (got {err['input']!r})"
        parts.append(f"key {loc!r}: {msg}" if loc else msg)
    text = "; ".join(parts)
    return f"{source}: {text}" if source else text


def validate_model(cls: type[M], data: Any, *, source: str | None = None,
                   error: type[Exception] = ConfigError, drop_loc: Iterable[str] = ()) -> M:
    """Validate ``data`` (a mapping from YAML or JSON) into ``cls``.

    Raises
    ------
    ConfigError (or ``error``)
        Naming ``source``, each bad key and the value received.
    """
    if not isinstance(data, dict):
        where = f"{source}: " if source else ""
        raise error(f"{where}expected a mapping of {cls.__name__} keys, got "
                    f"{type(data).__name__}")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise error(describe_validation_error(exc, source, allowed={"": list(
            cls.model_fields)}, drop_loc=drop_loc)) from None


class ConfigModel(BaseModel):
    """Base of biosig's configs: frozen, strict, unknown keys forbidden, ranges checked.

    ``Model(key=value)`` raises :class:`~biosig.errors.ConfigError` (a ``ValueError``) naming
    the key, the value and, for an unknown key, the valid ones. A changed copy is
    ``Model.validate_mapping({**cfg.model_dump(), "key": value})`` (validated again), never
    ``model_copy(update=...)`` (not validated).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, validate_default=True,
                              allow_inf_nan=False)

    #: The exception raised for invalid values (a ``ValueError``).
    error_type: ClassVar[type[Exception]] = ConfigError

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            cls = type(self)
            raise cls.error_type(describe_validation_error(
                exc, cls.__name__, allowed={"": list(cls.model_fields)})) from None

    # Validation (model_validate, nested fields) keeps pydantic's own path and errors; only a
    # direct call converts them (as pydantic's RootModel and pydantic-settings do).
    __init__.__pydantic_base_init__ = True

    @classmethod
    def validate_mapping(cls: type[M], data: Any, *, source: str | None = None) -> M:
        """:func:`validate_model` of ``data``; errors (:attr:`error_type`) start with
        ``source``, default the class name."""
        return validate_model(cls, data, source=source or cls.__name__, error=cls.error_type)
