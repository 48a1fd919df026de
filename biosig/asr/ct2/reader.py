"""Read a CTranslate2 ``model.bin``: every variable as stored, no CTranslate2 needed.

The binary layout (``ctranslate2/specs/model_spec.py``, ``ModelSpec._serialize``, and
``src/models/model.cc``, ``Model::load``), all integers little-endian::

    uint32 binary_version                      (this reader: 1 to 6)
    string spec_name, uint32 spec_revision     (binary_version >= 2)
    uint32 n_variables, then per variable:
        string name, uint8 rank, uint32 dims[rank],
        uint8 dtype_id, uint32 n_bytes          (binary_version >= 4; dtype ids
                                                 float32, int8, int16, int32, float16, bfloat16)
        uint8 item_size, uint32 n_items         (binary_version < 4)
        bytes data
    uint32 n_aliases, then (string alias, string target) pairs  (binary_version >= 3)

where a string is ``uint16 length`` (including a trailing NUL) followed by the bytes. A weight
``W`` quantized to int8 is stored with ``W_scale`` (float32, one per output row):
``W = W_int8 / W_scale[:, None]``; int16 uses one scalar scale. An alias also aliases the
``_scale`` of its target.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from biosig.errors import BiosigError, InputError

__all__ = ["CT2Model", "ConversionError", "read_ct2_model"]

_CT2_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
_MAX_BINARY_VERSION = 6


class ConversionError(BiosigError, ValueError):
    """A model directory cannot be converted; the message names the file and the variable."""



@dataclass
class CT2Model:
    """The variables of a CTranslate2 ``model.bin``, as stored (no dequantization).

    Attributes
    ----------
    path : Path
        The ``model.bin`` read.
    binary_version : int
        Version of the binary layout (6 for CTranslate2 >= 3.x).
    spec_name : str
        Model specification, e.g. ``"WhisperSpec"``.
    spec_revision : int
        Revision of that specification.
    variables : dict of str to np.ndarray
        Stored arrays by name, with their stored dtype (bfloat16 is returned as float32; scalars
        are 0-d arrays). Quantization scales are separate entries named ``<weight>_scale``.
    aliases : dict of str to str
        ``alias -> target`` for variables stored once under another name (tied weights).
    stored_dtypes : dict of str to str
        The CTranslate2 dtype name of each variable as stored (``float16``, ``int8``...).
    """

    path: Path
    binary_version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)
    stored_dtypes: dict[str, str] = field(default_factory=dict)

    def resolve(self, name: str) -> str:
        """The stored name behind ``name`` (follows aliases, also for ``_scale`` names)."""
        seen = set()
        while name not in self.variables:
            if name in self.aliases:
                target = self.aliases[name]
            elif name.endswith("_scale") and name[: -len("_scale")] in self.aliases:
                target = self.aliases[name[: -len("_scale")]] + "_scale"
            else:
                return name
            if target in seen:
                raise ConversionError(f"{self.path}: alias cycle at variable {name!r}")
            seen.add(target)
            name = target
        return name

    def has(self, name: str) -> bool:
        """Whether a variable (or an alias of one) called ``name`` exists."""
        return self.resolve(name) in self.variables

    def raw(self, name: str) -> np.ndarray:
        """The stored array of ``name`` (after following aliases)."""
        key = self.resolve(name)
        if key not in self.variables:
            raise ConversionError(f"{self.path}: variable {name!r} not found")
        return self.variables[key]

    def scalar(self, name: str, default=None):
        """A scalar variable as a Python number, or ``default`` when absent."""
        if not self.has(name):
            return default
        return self.raw(name).item()

    def float32(self, name: str) -> np.ndarray:
        """Variable ``name`` as float32, dequantized with its ``_scale`` when int8/int16.

        Returns
        -------
        np.ndarray [shape=stored shape, dtype=float32]
        """
        value = self.raw(name)
        if value.dtype in (np.int8, np.int16):
            scale_name = name + "_scale"
            if not self.has(scale_name):
                raise ConversionError(f"{self.path}: quantized variable {name!r} has no "
                                      f"{scale_name!r}")
            scale = self.raw(scale_name).astype(np.float32)
            flat = value.astype(np.float32).reshape(value.shape[0], -1) if value.ndim else \
                value.astype(np.float32)
            if scale.ndim == 0 or scale.size == 1:
                out = flat / scale.reshape(())
            elif scale.shape == (value.shape[0],):
                out = flat / scale[:, None]
            else:
                raise ConversionError(f"{self.path}: scale {scale_name!r} has shape "
                                      f"{scale.shape}, expected () or ({value.shape[0]},)")
            return np.ascontiguousarray(out.reshape(value.shape), dtype=np.float32)
        if value.dtype.kind != "f":
            raise ConversionError(f"{self.path}: variable {name!r} has dtype {value.dtype}, "
                                  "expected a float or int8/int16 with a scale")
        return np.ascontiguousarray(value, dtype=np.float32)

    @property
    def weight_dtype(self) -> str:
        """Stored dtype of the weight matrices (``float16``, ``int8``, ``float32``...)."""
        kinds = {self.stored_dtypes[n] for n in self.variables if n.endswith("weight")}
        return "+".join(sorted(kinds)) if kinds else "none"


class _Reader:
    def __init__(self, path: Path, buf: memoryview):
        self.path, self.buf, self.pos = path, buf, 0

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.buf):
            raise InputError(self.path, f"truncated CTranslate2 model: wanted {n} bytes at "
                                        f"offset {self.pos}, file has {len(self.buf)}")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        n = self.unpack("H")
        raw = bytes(self.take(n))
        return raw.split(b"\0", 1)[0].decode("utf-8")


def read_ct2_model(path: str | os.PathLike) -> CT2Model:
    """Read every variable of a CTranslate2 ``model.bin``.

    Parameters
    ----------
    path : str or PathLike
        The ``model.bin`` file, or the CTranslate2 model directory that holds it.

    Returns
    -------
    CT2Model
        Variables as stored; see :class:`CT2Model`.

    Raises
    ------
    InputError
        Missing or truncated file, unknown binary version or dtype.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    if not path.is_file():
        raise InputError(path, "no CTranslate2 model.bin here")
    with open(path, "rb") as fh:
        data = fh.read()
    rd = _Reader(path, memoryview(data))
    version = rd.unpack("I")
    if not 1 <= version <= _MAX_BINARY_VERSION:
        raise InputError(path, f"unsupported CTranslate2 binary version {version}, expected "
                               f"1 to {_MAX_BINARY_VERSION} (is this a model.bin?)")
    spec_name, revision = "", 1
    if version >= 2:
        spec_name = rd.string()
        revision = rd.unpack("I")
    variables: dict[str, np.ndarray] = {}
    stored: dict[str, str] = {}
    for _ in range(rd.unpack("I")):
        name = rd.string()
        rank = rd.unpack("B")
        shape = tuple(rd.unpack("I") for _ in range(rank))
        if version >= 4:
            type_id = rd.unpack("B")
            n_bytes = rd.unpack("I")
            if type_id >= len(_CT2_DTYPES):
                raise InputError(path, f"variable {name!r} has unknown dtype id {type_id}")
            dtype = _CT2_DTYPES[type_id]
        else:
            item_size = rd.unpack("B")
            n_bytes = rd.unpack("I") * item_size
            dtype = {4: "float32", 2: "int16", 1: "int8"}.get(item_size)
            if dtype is None:
                raise InputError(path, f"variable {name!r} has unknown item size {item_size}")
        raw = rd.take(n_bytes)
        if dtype == "bfloat16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<"))
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise InputError(path, f"variable {name!r}: {arr.size} values for shape {shape}")
        variables[name] = arr.reshape(shape)
        stored[name] = dtype
    aliases: dict[str, str] = {}
    if version >= 3:
        for _ in range(rd.unpack("I")):
            alias = rd.string()
            aliases[alias] = rd.string()
    return CT2Model(path=path, binary_version=version, spec_name=spec_name,
                    spec_revision=revision, variables=variables, aliases=aliases,
                    stored_dtypes=stored)

