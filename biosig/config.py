"""The one config layer: pydantic models whose mistakes are errors naming the key and value.

Every configuration in biosig (feature presets, :class:`~biosig.asr.StreamingConfig`, the
server's and the decoder's options, the dictation command table, recipe configs, the manifest
:class:`~biosig.manifests.Record`) is a :class:`ConfigModel`. This module holds what they share:

- :class:`ConfigModel` -- a frozen, strict base: unknown keys, wrong types (no string is parsed
  as a number, no boolean taken for one) and out-of-range values raise
  :class:`~biosig.errors.ConfigError` (one line naming the key and the value) when the model is
  built, ``Model(key=value)`` and ``Model.model_validate(mapping)`` as well as
  :meth:`ConfigModel.validate_mapping` (whose errors name the file); assigning to a field is an
  error too, :meth:`ConfigModel.replace` makes a changed, validated copy;
- :func:`validate_model` -- a mapping (parsed YAML or JSON) into a model, errors naming the
  source (file, ``file:line``) and the dotted key;
- :func:`describe_validation_error` -- one line from a pydantic ``ValidationError``;
- :data:`Int` and :func:`pair` -- the two lenient spellings that YAML and JSON need: an integral
  float for an integer (``2.0``) and a list for a fixed-length tuple (``[25, 400]``);
  :data:`BandHz` -- a pass band ``(lo, hi)`` with ``0 <= lo < hi``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Any, ClassVar, TypeVar, get_args

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError

from biosig.errors import ConfigError

__all__ = ["ConfigModel", "validate_model", "describe_validation_error", "Int", "pair",
           "BandHz"]

M = TypeVar("M", bound=BaseModel)
_NONE = object()


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


#: pydantic's name of a member of a plain union, appended to the location of its error
#: (``channel.int``, ``channel.literal['mean']``): not a key.
_UNION_MEMBER = re.compile(r"(str|int|float|bool|none|bytes|[a-z]+(-[a-z]+)*\[.*\])")


def _loc(err: dict, drop_loc: Iterable[str]) -> tuple[str, bool]:
    """The dotted key of ``err``, and whether it is one member of a union's errors."""
    drop = set(drop_loc)
    parts = [str(x) for x in err["loc"]]
    # a tagged union puts its tag in the location; it is not a key of the file
    parts = [p for i, p in enumerate(parts) if not (i > 0 and p in drop)]
    member = len(parts) > 1 and _UNION_MEMBER.fullmatch(parts[-1]) is not None
    return ".".join(parts[:-1] if member else parts), member


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models a field's annotation can hold (``X``, ``X | None``, ``list[X]``,
    a union of models)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _keys_at(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """The valid keys of the model that holds ``loc`` (the error's location up to the unknown
    key) inside ``model``; ``None`` when it is not a model's."""
    i = 0
    while i < len(loc):
        part, i = loc[i], i + 1
        if isinstance(part, int):                       # an item of a list
            continue
        field = model.model_fields.get(part)
        models = _models_in(field.annotation) if field is not None else []
        key = field.discriminator if field is not None else None
        if len(models) > 1 and isinstance(key, str) and i < len(loc):    # tagged: by its tag
            tag, i = loc[i], i + 1
            models = [m for m in models if key in m.model_fields
                      and tag in get_args(m.model_fields[key].annotation)]
        if len(models) != 1:
            return None
        model = models[0]
    return list(model.model_fields)


def describe_validation_error(exc: ValidationError, source: str | None = None, *,
                              allowed: dict[str, Iterable[str]] | None = None,
                              drop_loc: Iterable[str] = (),
                              model: type[BaseModel] | None = None) -> str:
    """One line naming each bad key and the value received.

    The errors of one value against each member of a union (``int | Literal["mean"]``) make
    one entry: ``key 'channel': Input should be a valid integer or 'mean' (got 'x')``.

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
    model : pydantic model class, optional
        What was validated: an unknown key at any depth is followed by the valid keys of the
        model that holds it (where ``allowed`` does not give them).
    """
    entries: list[list] = []                    # [key, message, value or _NONE, member]
    for err in exc.errors():
        loc, member = _loc(err, drop_loc)
        kind, msg, value = err["type"], err["msg"], _NONE
        if kind == "extra_forbidden":
            msg = "unknown key"
            parent = loc.rpartition(".")[0]
            keys = (allowed[parent] if allowed is not None and parent in allowed else
                    _keys_at(model, err["loc"][:-1]) if model is not None else None)
            if keys is not None:
                msg += f" (expected one of {', '.join(keys)})"
        elif kind == "missing":
            msg = "missing required key"
        elif kind == "frozen_instance":
            msg = (f"cannot be set to {err['input']!r}, the config is frozen (a changed copy "
                   f"is .replace({loc.rpartition('.')[2]}=...))")
        elif kind in ("value_error", "assertion_error"):     # biosig's own checks: the
            msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        elif "input" in err:                                    # message names the value
            value = err["input"]
        last = entries[-1] if entries else None
        if member and last is not None and last[3] and last[0] == loc:
            last[1] += " or " + msg.removeprefix("Input should be ")
            continue
        entries.append([loc, msg, value, member])
    parts = []
    for loc, msg, value, _ in entries:
        if value is not _NONE:
            msg = f"{msg} (got {value!r})"
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
    try:    # pydantic's own validation, whatever the class makes of model_validate's errors
        return cls.__pydantic_validator__.validate_python(data)
    except ValidationError as exc:
        raise error(describe_validation_error(exc, source, drop_loc=drop_loc,
                                              model=cls)) from None


class ConfigModel(BaseModel):
    """Base of biosig's configs: frozen, strict, unknown keys forbidden, ranges checked.

    ``Model(key=value)`` and ``Model.model_validate(mapping)`` raise :attr:`error_type`
    (:class:`~biosig.errors.ConfigError`, a ``ValueError``, unless the class says otherwise),
    one line that starts with the class name and names the dotted key, the value and, for an
    unknown key, the valid ones; :meth:`validate_mapping` names a file or other source instead.
    Assigning to a field is an error of the same kind: a changed copy is
    ``cfg.replace(key=value)`` (validated again), never ``model_copy(update=...)`` (not
    validated).

    Subclasses add fields with their ranges (``Field(ge=1)``, :data:`Int`, :data:`BandHz`) and
    cross-field checks as ``model_validator(mode="after")`` methods that raise ``ValueError``
    with a message naming the keys. Lists and mappings held by a config are not copied on
    access: treat them as read-only.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, validate_default=True,
                              allow_inf_nan=False)

    #: The exception raised for invalid values (a ``ValueError``).
    error_type: ClassVar[type[Exception]] = ConfigError
    #: Tags of discriminated unions among the fields (``model.name: crnn`` puts ``crnn`` in
    #: pydantic's error location); they are not keys, and errors leave them out.
    union_tags: ClassVar[tuple[str, ...]] = ()

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise type(self)._config_error(exc) from None

    # Validation of a nested field keeps pydantic's own path and errors (the outer model names
    # the whole path); only a direct call converts them (as pydantic's RootModel and
    # pydantic-settings do).
    __init__.__pydantic_base_init__ = True

    @classmethod
    def _config_error(cls, exc: ValidationError) -> Exception:
        return cls.error_type(describe_validation_error(
            exc, cls.__name__, drop_loc=cls.union_tags, model=cls))

    @classmethod
    def model_validate(cls: type[M], obj: Any, **kwargs: Any) -> M:
        """pydantic's ``model_validate``, errors converted as in ``Model(...)``."""
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise cls._config_error(exc) from None

    @classmethod
    def validate_mapping(cls: type[M], data: Any, *, source: str | None = None) -> M:
        """:func:`validate_model` of ``data``; errors (:attr:`error_type`) start with
        ``source``, default the class name."""
        return validate_model(cls, data, source=source or cls.__name__, error=cls.error_type,
                              drop_loc=cls.union_tags)

    def replace(self: M, **changes: Any) -> M:
        """A copy with ``changes`` (``key=value``), validated again like ``Model(...)``.

        >>> from biosig.asr import DecodeOptions
        >>> DecodeOptions(beam_size=5).replace(beam_size=1).beam_size
        1
        """
        return type(self)(**{**{k: getattr(self, k) for k in type(self).model_fields},
                             **changes})

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:          # frozen: one line naming the key, as above
            cls = type(self)
            if name not in cls.model_fields:
                raise cls.error_type(f"{cls.__name__}: key {name!r}: unknown key (expected one "
                                     f"of {', '.join(cls.model_fields)})") from None
            raise cls._config_error(exc) from None
