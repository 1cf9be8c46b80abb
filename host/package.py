"""Weight package: one file per (model, tile shape, pruning), safetensors layout, read with numpy alone.

Layout: 8-byte little-endian header length, a JSON header (tensor name -> dtype, shape, byte offsets into
the data section, plus ``__metadata__``), then the raw little-endian tensors. Per GEMM layer ``L``:
``L.tiles`` int8 [nnz, R, C], ``L.colptr`` int32 [N/C + 1], ``L.kidx`` int32 [nnz], ``L.scale`` float32 [N],
``L.bias`` float32 [N]. Host-side tensors (layer norms, embeddings) keep their Whisper names. The metadata
holds the format version, model config, tile shape, per-layer pruning, quantization scheme and a SHA-256
digest of the data section. :func:`load_package` memory-maps the file and checks all of it.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from host.blocksparse import BlockSparseWeights
from host.whisper_weights import WhisperWeights

FORMAT_NAME = "sasp-weight-package"
FORMAT_VERSION = 1
QUANT_SCHEME = "int8 symmetric per output channel weights; int8 symmetric per row activations (dynamic); int32 acc"
GEMM_SUFFIXES = ("tiles", "colptr", "kidx", "scale", "bias")
VOCAB_KEY = "tokenizer.vocab"
SUPPRESS_KEYS = ("tokenizer.suppress_ids", "tokenizer.suppress_ids_begin")
MAX_HEADER_BYTES = 64 << 20

DTYPES = {"I8": np.int8, "U8": np.uint8, "I32": np.int32, "F16": np.float16, "F32": np.float32}
DTYPE_NAMES = {np.dtype(v).str: k for k, v in DTYPES.items()}


class PackageError(ValueError):
    """A weight package that cannot be used; the message names the file, the layer and the fault."""


@dataclass
class QuantLayer:
    """One int8 block-sparse GEMM layer: ``y = (x_q @ W_q) * scale_x[:, None] * scale[None, :] + bias``."""

    weights: BlockSparseWeights
    scale: np.ndarray
    bias: np.ndarray

    def dequantized(self) -> np.ndarray:
        """Float32 ``W[K, N]`` with pruned tiles exactly zero."""
        return self.weights.to_dense().astype(np.float32) * self.scale[None, :]


@dataclass
class Package:
    path: Optional[Path]
    metadata: Dict[str, object]
    layers: Dict[str, QuantLayer]
    weights: WhisperWeights  # host-side tensors, config and tokenizer (no GEMM weights)

    @property
    def tile(self) -> Tuple[int, int]:
        r, c = self.metadata["tile"]
        return int(r), int(c)


def data_digest(data: memoryview | bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_package(path: str | Path, tensors: Dict[str, np.ndarray], metadata: Dict[str, object]) -> Path:
    """Write ``tensors`` in safetensors layout with ``metadata`` (JSON-encoded values) and the data digest."""
    path = Path(path)
    header: Dict[str, object] = {}
    chunks: List[bytes] = []
    offset = 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": DTYPE_NAMES[arr.dtype.str.replace(">", "<")],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        chunks.append(raw)
        offset += len(raw)
    data = b"".join(chunks)
    meta = {k: json.dumps(v) for k, v in metadata.items()}
    meta["digest"] = json.dumps(data_digest(data))
    header["__metadata__"] = meta
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        f.write(data)
    tmp.replace(path)
    return path


def read_tensors(path: Path) -> Tuple[Dict[str, np.ndarray], Dict[str, object]]:
    try:
        raw = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as e:
        raise PackageError(f"{path}: cannot read weight package ({e})") from e
    if raw.size < 8:
        raise PackageError(f"{path}: truncated (only {raw.size} bytes)")
    (hlen,) = struct.unpack("<Q", raw[:8].tobytes())
    if hlen > min(MAX_HEADER_BYTES, raw.size - 8):
        raise PackageError(f"{path}: header length {hlen} exceeds the file ({raw.size} bytes): truncated or corrupt")
    try:
        header = json.loads(raw[8 : 8 + hlen].tobytes().decode("utf-8"))
        meta = {k: json.loads(v) for k, v in header.pop("__metadata__").items()}
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, AttributeError, TypeError) as e:
        raise PackageError(f"{path}: header is not valid package JSON ({e})") from e
    if not isinstance(header, dict):
        raise PackageError(f"{path}: header is not a JSON object")
    data = raw[8 + hlen :]
    if meta.get("format") != FORMAT_NAME:
        raise PackageError(f"{path}: not a {FORMAT_NAME} file (format={meta.get('format')!r})")
    if meta.get("version") != FORMAT_VERSION:
        raise PackageError(
            f"{path}: unknown package version {meta.get('version')!r} (this host reads {FORMAT_VERSION})"
        )
    end = 0
    tensors: Dict[str, np.ndarray] = {}
    for name, info in header.items():
        try:
            dtype = np.dtype(DTYPES[info["dtype"]])
            shape = tuple(int(s) for s in info["shape"])
            begin, stop = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as e:
            raise PackageError(f"{path}: tensor {name!r}: malformed header entry ({e!r})") from e
        if min(shape, default=0) < 0 or begin != end or stop < begin or stop > data.size:
            raise PackageError(
                f"{path}: tensor {name!r}: byte range [{begin}, {stop}) is out of order or past the "
                f"end of the data ({data.size} bytes): truncated or corrupt"
            )
        if (stop - begin) != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            raise PackageError(f"{path}: tensor {name!r}: {stop - begin} bytes do not match shape {shape} {dtype}")
        tensors[name] = data[begin:stop].view(dtype).reshape(shape)
        end = stop
    if end != data.size:
        raise PackageError(f"{path}: {data.size - end} unexpected bytes after the last tensor")
    if meta.get("digest") != data_digest(memoryview(data)):
        raise PackageError(f"{path}: data digest mismatch: the file is corrupt or was modified after export")
    return tensors, meta


def _gemm_layer(path: Path, name: str, t: Dict[str, np.ndarray], info: dict, tile: Tuple[int, int]) -> QuantLayer:
    where = f"{path}: layer {name!r}"
    try:
        k, n = int(info["k"]), int(info["n"])
        tiles, colptr, kidx = (t[f"{name}.{s}"] for s in ("tiles", "colptr", "kidx"))
        scale, bias = t[f"{name}.scale"], t[f"{name}.bias"]
    except KeyError as e:
        raise PackageError(f"{where}: missing {e.args[0]}") from e
    if tiles.ndim != 3 or tiles.shape[1:] != tile:
        raise PackageError(f"{where}: tile shape {tiles.shape[1:]} does not match the package tile shape {tile}")
    if scale.shape != (n,) or bias.shape != (n,):
        raise PackageError(f"{where}: scale/bias shapes {scale.shape}/{bias.shape}, expected ({n},)")
    if not (np.all(np.isfinite(scale)) and np.all(scale > 0) and np.all(np.isfinite(bias))):
        raise PackageError(f"{where}: scale must be finite and positive, bias finite")
    w = BlockSparseWeights(tiles=tiles, colptr=colptr, kidx=kidx, k=k, n=n, tile=tile)
    try:
        w.validate(name)
    except ValueError as e:
        raise PackageError(f"{path}: {e}") from e
    return QuantLayer(w, scale.astype(np.float32), bias.astype(np.float32))


def load_package(path: str | Path, expect_tile: Optional[Tuple[int, int]] = None) -> Package:
    """Memory-map and validate a weight package; ``expect_tile`` = the accelerator's array shape."""
    path = Path(path)
    if not path.is_file():
        raise PackageError(f"{path}: weight package not found")
    t, meta = read_tensors(path)
    try:
        tile = tuple(int(x) for x in meta["tile"])
        layers_info = dict(meta["layers"])
        config = {k: int(v) for k, v in dict(meta["config"]).items()}
    except (KeyError, TypeError, ValueError) as e:
        raise PackageError(f"{path}: metadata incomplete or malformed ({e!r})") from e
    if len(tile) != 2 or min(tile) < 1:
        raise PackageError(f"{path}: bad tile shape {tile}")
    if expect_tile is not None and tuple(expect_tile) != tile:
        raise PackageError(
            f"{path}: package was built for {tile[0]}x{tile[1]} tiles but the accelerator array is "
            f"{expect_tile[0]}x{expect_tile[1]}: export a package with --tile {expect_tile[0]}"
        )
    layers = {name: _gemm_layer(path, name, t, info, tile) for name, info in layers_info.items()}
    gemm_keys = {f"{name}.{s}" for name in layers for s in GEMM_SUFFIXES}
    try:
        vocab = t[VOCAB_KEY].tobytes().decode("utf-8").split("\n")
        suppress, begin = (t[k].astype(int).tolist() for k in SUPPRESS_KEYS)
    except (KeyError, UnicodeDecodeError) as e:
        raise PackageError(f"{path}: tokenizer tensors missing or corrupt ({e!r})") from e
    params = {
        k: np.asarray(v, dtype=np.float32)
        for k, v in t.items()
        if k not in gemm_keys and not k.startswith("tokenizer.")
    }
    weights = WhisperWeights(params=params, config=config, vocab=vocab, suppress_ids=suppress, suppress_ids_begin=begin)
    return Package(path=path, metadata=meta, layers=layers, weights=weights)
