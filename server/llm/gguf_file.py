"""A GGUF file's metadata and tensors, read in ~0.1 s instead of ~3.7 s.

The ``gguf`` package's reader builds a numpy memmap view for every part of every field: for
SmolLM2's 49,152 tokens and 48,900 merges that is ~1 M views and 3.7 s, most of an LLM-only
server's start. This reader parses the header with ``struct`` over one ``mmap`` of the file and
hands out tensors as zero-copy numpy views, with the same shapes and types as ``gguf.GGUFReader``
(tests/unit/test_gguf_file.py holds it to that reader on the packaged models). Only what the server
reads is offered: ``fields`` (key → ``Field`` with ``contents()`` and ``data``) and ``tensors``
(``name``, ``tensor_type``, ``shape``, ``data``). Format: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
# GGUF value types: (struct format, numpy dtype) of the scalars; 8 = string, 9 = array
_SCALARS = {0: ("<B", np.uint8), 1: ("<b", np.int8), 2: ("<H", np.uint16), 3: ("<h", np.int16),
            4: ("<I", np.uint32), 5: ("<i", np.int32), 6: ("<f", np.float32), 7: ("<?", np.bool_),
            10: ("<Q", np.uint64), 11: ("<q", np.int64), 12: ("<d", np.float64)}
_STRING, _ARRAY = 8, 9
_PLAIN = {GGMLQuantizationType.F16: np.float16, GGMLQuantizationType.F32: np.float32,
          GGMLQuantizationType.F64: np.float64, GGMLQuantizationType.I8: np.int8,
          GGMLQuantizationType.I16: np.int16, GGMLQuantizationType.I32: np.int32,
          GGMLQuantizationType.I64: np.int64}


class GGUFFormatError(ValueError):
    """The file is not a GGUF this reader understands (says where and why)."""


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    value: Any  # a Python scalar, a str, or a list of them

    @property
    def data(self) -> list[Any]:
        """The elements of an array field (its length is the array's)."""
        return self.value if isinstance(self.value, list) else [self.value]

    def contents(self) -> Any:
        return self.value


@dataclass(frozen=True, slots=True)
class Tensor:
    name: str
    tensor_type: GGMLQuantizationType
    shape: tuple[int, ...]  # GGUF order: innermost dimension first
    data: np.ndarray  # numpy order; quantized types as [rows..., bytes per row] of uint8


class _Cursor:
    def __init__(self, buf: mmap.mmap, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def take(self, fmt: str) -> Any:
        try:
            (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        except struct.error:
            raise GGUFFormatError(f"{self.path}: truncated at byte {self.pos}") from None
        self.pos += struct.calcsize(fmt)
        return v

    def string(self) -> str:
        n = self.take("<Q")
        end = self.pos + n
        if end > len(self.buf):
            raise GGUFFormatError(f"{self.path}: a string of {n} bytes at byte {self.pos} runs past the end")
        s = self.buf[self.pos:end].decode("utf-8", errors="replace")
        self.pos = end
        return s

    def value(self, vtype: int) -> Any:
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            sub, n = self.take("<I"), self.take("<Q")
            if sub == _STRING:
                return [self.string() for _ in range(n)]
            if sub in _SCALARS:
                fmt, dtype = _SCALARS[sub]
                size = struct.calcsize(fmt)
                arr = np.frombuffer(self.buf, dtype=dtype, count=n, offset=self.pos)
                self.pos += n * size
                return arr.tolist()
            return [self.value(sub) for _ in range(n)]  # arrays of arrays
        if vtype not in _SCALARS:
            raise GGUFFormatError(f"{self.path}: unknown value type {vtype} at byte {self.pos}")
        return self.take(_SCALARS[vtype][0])


class GGUFFile:
    """One GGUF, mapped read-only for the life of this object (its tensors are views of the map)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as f:
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        c = _Cursor(self._map, self.path)
        if self._map[:4] != MAGIC:
            raise GGUFFormatError(f"{self.path}: not a GGUF file (magic {bytes(self._map[:4])!r})")
        c.pos = 4
        version = c.take("<I")
        if version not in (2, 3):
            raise GGUFFormatError(f"{self.path}: GGUF version {version} (2 and 3 are read)")
        n_tensors, n_kv = c.take("<Q"), c.take("<Q")
        # the header as pseudo-fields, as gguf.GGUFReader has them
        self.fields: dict[str, Field] = {"GGUF.version": Field("GGUF.version", version),
                                         "GGUF.tensor_count": Field("GGUF.tensor_count", n_tensors),
                                         "GGUF.kv_count": Field("GGUF.kv_count", n_kv)}
        for _ in range(n_kv):
            key = c.string()
            self.fields[key] = Field(key, c.value(c.take("<I")))
        infos = []
        for _ in range(n_tensors):
            name = c.string()
            dims = tuple(c.take("<Q") for _ in range(c.take("<I")))
            infos.append((name, dims, c.take("<I"), c.take("<Q")))
        given = self.fields.get("general.alignment")
        alignment = int(given.value) if given is not None else DEFAULT_ALIGNMENT
        start = -(-c.pos // alignment) * alignment
        self.tensors = [self._tensor(name, dims, raw, start + off) for name, dims, raw, off in infos]
        if len({t.name for t in self.tensors}) != len(self.tensors):
            raise GGUFFormatError(f"{self.path}: duplicate tensor names")

    def _tensor(self, name: str, dims: tuple[int, ...], raw_type: int, offset: int) -> Tensor:
        try:
            kind = GGMLQuantizationType(raw_type)
        except ValueError:
            raise GGUFFormatError(f"{self.path}: tensor {name!r} has unknown type {raw_type}") from None
        n = int(np.prod(dims)) if dims else 1
        np_dims = tuple(reversed(dims))
        if kind in _PLAIN:
            dtype, count = _PLAIN[kind], n
        else:
            block, size = GGML_QUANT_SIZES[kind]
            dtype, count = np.uint8, n * size // block
            np_dims = (*np_dims[:-1], np_dims[-1] // block * size)
        if offset + count * np.dtype(dtype).itemsize > len(self._map):
            raise GGUFFormatError(f"{self.path}: tensor {name!r} runs past the end of the file")
        data = np.frombuffer(self._map, dtype=dtype, count=count, offset=offset).reshape(np_dims)
        return Tensor(name, kind, dims, data)
