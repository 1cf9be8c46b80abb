"""Reader for CTranslate2 ``model.bin`` files (binary format version 6 and earlier >= 4).

Layout (little endian): uint32 version, string spec name, uint32 spec revision, uint32 variable count,
then per variable: string name, uint8 rank, uint32 dims[rank], uint8 dtype id, uint32 byte count, raw data;
then uint32 alias count and pairs of strings (alias, target). Strings are uint16 length (including the
terminating NUL) followed by the bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
SUPPORTED_VERSIONS = (4, 5, 6)


class CT2FormatError(ValueError):
    """The file is not a CTranslate2 model this reader understands."""


class _Cursor:
    def __init__(self, data: memoryview, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise CT2FormatError(f"{self.path}: truncated at byte {self.pos} (needed {n} more bytes)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str) -> Tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        (length,) = self.unpack("H")
        return bytes(self.take(length)).rstrip(b"\0").decode("utf-8")


def read_ct2_model(path: str | Path) -> Tuple[str, Dict[str, np.ndarray]]:
    """Return ``(spec_name, {variable name: array})``; aliases resolve to the same array."""
    path = Path(path)
    data = memoryview(path.read_bytes())
    cur = _Cursor(data, path)
    (version,) = cur.unpack("I")
    if version not in SUPPORTED_VERSIONS:
        raise CT2FormatError(f"{path}: CTranslate2 binary version {version} not supported {SUPPORTED_VERSIONS}")
    spec = cur.string()
    cur.unpack("I")  # spec revision
    (count,) = cur.unpack("I")
    variables: Dict[str, np.ndarray] = {}
    for _ in range(count):
        name = cur.string()
        (rank,) = cur.unpack("B")
        dims = cur.unpack(f"{rank}I") if rank else ()
        dtype_id, nbytes = cur.unpack("BI")
        if dtype_id not in _DTYPES:
            raise CT2FormatError(f"{path}: variable {name!r} has unknown dtype id {dtype_id}")
        dtype = np.dtype(_DTYPES[dtype_id])
        expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
        if nbytes != expected:
            raise CT2FormatError(f"{path}: variable {name!r} has {nbytes} bytes, dims {dims} need {expected}")
        variables[name] = np.frombuffer(cur.take(nbytes), dtype=dtype).reshape(dims)
    if cur.pos < len(data):
        (n_alias,) = cur.unpack("I")
        for _ in range(n_alias):
            alias, target = cur.string(), cur.string()
            if target not in variables:
                raise CT2FormatError(f"{path}: alias {alias!r} points to missing {target!r}")
            variables[alias] = variables[target]
    return spec, variables
