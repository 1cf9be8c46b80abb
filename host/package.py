"""Weight package: one file per (model, tile shape, pruning), safetensors layout, read with numpy alone.

Layout: 8-byte little-endian header length, a JSON header (tensor name -> dtype, shape, byte offsets into
the data section, plus ``__metadata__``), then the raw little-endian tensors. Per GEMM layer ``L``:
``L.tiles`` int8 [nnz, R, C], ``L.colptr`` int32 [N/C + 1], ``L.kidx`` int32 [nnz], ``L.scale`` float32 [N],
``L.bias`` float32 [N]. Host-side tensors (layer norms, embeddings) keep their Whisper names. The metadata
holds the format version, model config, tile shape, per-layer pruning, quantization scheme and a SHA-256
digest of the whole file: the header (canonical JSON, without the digest itself) and the data section.
:func:`load_package` memory-maps the file, checks the digest and cross-checks every count and shape the
metadata states (config, tile counts, rates, MAC sparsity) against the tensors.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from host.blocksparse import BlockSparseWeights
from host.whisper_layers import DEFAULT_PRUNABLE, LOGITS_LAYER, is_prunable, layer_rows
from host.whisper_weights import TINY_EN_CONFIG, WhisperWeights

FORMAT_NAME = "sasp-weight-package"
FORMAT_VERSION = 2  # 2: the digest covers the header too (version 1 covered the data section only)
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


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A unique temporary path beside ``path`` to write; renamed onto ``path`` when the block completes,
    removed when it raises (an interrupted writer leaves neither a partial ``path`` nor a temporary file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def package_digest(header: Dict[str, object], data: memoryview | bytes) -> str:
    """SHA-256 of the header (canonical JSON, its metadata ``digest`` left out) followed by the data section.

    Canonical JSON (sorted keys, no spaces) is one string per parsed header, so a header that verifies
    parses to exactly the header that was written."""
    meta = {k: v for k, v in dict(header.get("__metadata__", {})).items() if k != "digest"}
    canon = json.dumps({**header, "__metadata__": meta}, sort_keys=True, separators=(",", ":")).encode()
    h = hashlib.sha256(struct.pack("<Q", len(canon)))
    h.update(canon)
    h.update(data)
    return "sha256:" + h.hexdigest()


def write_package(path: str | Path, tensors: Dict[str, np.ndarray], metadata: Dict[str, object]) -> Path:
    """Write ``tensors`` in safetensors layout with ``metadata`` (JSON-encoded values) and the digest,
    atomically (temporary file + rename)."""
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
    header["__metadata__"] = {k: json.dumps(v) for k, v in metadata.items() if k != "digest"}
    header["__metadata__"]["digest"] = json.dumps(package_digest(header, data))
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        f.write(data)
    return path


def read_tensors(path: Path) -> Tuple[Dict[str, np.ndarray], Dict[str, object]]:
    """The tensors (memory-mapped, read-only) and decoded metadata of a package whose digest verifies."""
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
        meta = {k: json.loads(v) for k, v in header["__metadata__"].items()}
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, AttributeError, TypeError, RecursionError) as e:
        raise PackageError(f"{path}: header is not valid package JSON ({e!r})") from e
    data = raw[8 + hlen :]
    if meta.get("format") != FORMAT_NAME:
        raise PackageError(f"{path}: not a {FORMAT_NAME} file (format={meta.get('format')!r})")
    if meta.get("version") == 1:
        raise PackageError(
            f"{path}: package format version 1 is no longer read (its header is not covered by the digest): "
            f"rebuild it with python -m model.export (the demo rebuilds its cached packages by itself)"
        )
    if meta.get("version") != FORMAT_VERSION:
        raise PackageError(
            f"{path}: unknown package version {meta.get('version')!r} (this host reads {FORMAT_VERSION})"
        )
    end = 0
    tensors: Dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
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
        if stop - begin != math.prod(shape) * dtype.itemsize:
            raise PackageError(f"{path}: tensor {name!r}: {stop - begin} bytes do not match shape {shape} {dtype}")
        tensors[name] = data[begin:stop].view(dtype).reshape(shape)
        end = stop
    if end != data.size:
        raise PackageError(f"{path}: {data.size - end} unexpected bytes after the last tensor")
    if meta.get("digest") != package_digest(header, memoryview(data)):
        raise PackageError(f"{path}: digest mismatch: the file is corrupt or was modified after export")
    return tensors, meta


def counted_mac_sparsity(
    tiles: Dict[str, Tuple[int, int, int, int]], prunable: str | re.Pattern = DEFAULT_PRUNABLE
) -> float:
    """Fraction of the prunable layers' MACs per utterance in pruned tiles; ``tiles``: layer -> (K, N, kept,
    total). The logits layer is never prunable."""
    macs = {n: layer_rows(n) * k * n_ for n, (k, n_, _, _) in tiles.items() if is_prunable(n, prunable)}
    total = sum(macs.values())
    pruned = sum(m * (1 - tiles[n][2] / tiles[n][3]) for n, m in macs.items())
    return pruned / total if total else 0.0


def expected_shapes(config: Dict[str, int]) -> Tuple[Dict[str, Tuple[int, int]], Dict[str, Tuple[int, ...]]]:
    """``({GEMM layer: (K, N)}, {host tensor: shape})`` of a Whisper model with ``config``."""
    da, dt = config["n_audio_state"], config["n_text_state"]
    gemm = {"encoder.conv1": (3 * config["n_mels"], da), "encoder.conv2": (3 * da, da)}
    host: Dict[str, Tuple[int, ...]] = {
        "encoder.positional_embedding": (config["n_audio_ctx"], da),
        "encoder.ln_post.weight": (da,),
        "encoder.ln_post.bias": (da,),
        "decoder.token_embedding.weight": (config["n_vocab"], dt),
        "decoder.positional_embedding": (config["n_text_ctx"], dt),
        "decoder.ln.weight": (dt,),
        "decoder.ln.bias": (dt,),
    }
    for side, d, n_layers in (("encoder", da, config["n_audio_layer"]), ("decoder", dt, config["n_text_layer"])):
        for i in range(n_layers):
            b = f"{side}.blocks.{i}"
            gemm.update({f"{b}.attn.{p}": (d, d) for p in ("query", "key", "value", "out")})
            gemm.update({f"{b}.mlp.0": (d, 4 * d), f"{b}.mlp.2": (4 * d, d)})
            lns = ("attn_ln", "mlp_ln") + (("cross_attn_ln",) if side == "decoder" else ())
            host.update({f"{b}.{ln}.{p}": (d,) for ln in lns for p in ("weight", "bias")})
            if side == "decoder":
                gemm.update({f"{b}.cross_attn.{p}": (dt, dt) for p in ("query", "out")})
                gemm.update({f"{b}.cross_attn.{p}": (da, dt) for p in ("key", "value")})
    gemm[LOGITS_LAYER] = (dt, config["n_vocab"])
    return gemm, host


@dataclass(frozen=True)
class LayerInfo:
    """What the metadata states about one GEMM layer (cross-checked against its tensors)."""

    k: int
    n: int
    tiles_kept: int
    tiles_total: int
    rate: float


def _gemm_layer(path: Path, name: str, t: Dict[str, np.ndarray], info: LayerInfo, tile: Tuple[int, int]) -> QuantLayer:
    where = f"{path}: layer {name!r}"
    try:
        tiles, colptr, kidx = (t[f"{name}.{s}"] for s in ("tiles", "colptr", "kidx"))
        scale, bias = t[f"{name}.scale"], t[f"{name}.bias"]
    except KeyError as e:
        raise PackageError(f"{where}: missing {e.args[0]}") from e
    if tiles.ndim != 3 or tiles.shape[1:] != tile:
        raise PackageError(f"{where}: tile shape {tiles.shape[1:]} does not match the package tile shape {tile}")
    if scale.shape != (info.n,) or bias.shape != (info.n,):
        raise PackageError(f"{where}: scale/bias shapes {scale.shape}/{bias.shape}, expected ({info.n},)")
    if not (np.all(np.isfinite(scale)) and np.all(scale > 0) and np.all(np.isfinite(bias))):
        raise PackageError(f"{where}: scale must be finite and positive, bias finite")
    w = BlockSparseWeights(tiles=tiles, colptr=colptr, kidx=kidx, k=info.k, n=info.n, tile=tile)
    try:
        w.validate(name)
    except ValueError as e:
        raise PackageError(f"{path}: {e}") from e
    kept, total = info.tiles_kept, info.tiles_total
    if (kept, total) != (w.nnz_tiles, w.total_tiles) or not abs(info.rate - (1 - kept / total)) <= 1e-9:
        raise PackageError(
            f"{where}: metadata says {kept} of {total} tiles kept (rate {info.rate}) but the tensors hold "
            f"{w.nnz_tiles} of {w.total_tiles}"
        )
    return QuantLayer(w, scale.astype(np.float32), bias.astype(np.float32))


def _check_model(path: Path, config: Dict[str, int], infos: Dict[str, LayerInfo], t: Dict[str, np.ndarray]) -> None:
    """The config against the tensors: every GEMM layer and host tensor it implies, with its shape, and no other."""
    missing = sorted(set(TINY_EN_CONFIG) - set(config))
    if missing or min(config.values()) < 1:
        raise PackageError(f"{path}: model config incomplete or not positive (missing {missing}): {config}")
    for side in ("audio", "text"):
        if config[f"n_{side}_state"] % config[f"n_{side}_head"]:
            raise PackageError(f"{path}: n_{side}_state is not a multiple of n_{side}_head in the config {config}")
    gemm, host = expected_shapes(config)
    if set(infos) != set(gemm):
        extra, absent = sorted(set(infos) - set(gemm)), sorted(set(gemm) - set(infos))
        raise PackageError(f"{path}: GEMM layers do not match the config (unexpected {extra}, missing {absent})")
    for name, (k, n) in gemm.items():
        if (infos[name].k, infos[name].n) != (k, n):
            raise PackageError(f"{path}: layer {name!r} is {infos[name].k}x{infos[name].n}, the config implies {k}x{n}")
    gemm_keys = {f"{name}.{s}" for name in gemm for s in GEMM_SUFFIXES}
    rest = {name: a.shape for name, a in t.items() if name not in gemm_keys and not name.startswith("tokenizer.")}
    if rest != host:
        bad = sorted(n for n in set(rest) | set(host) if rest.get(n) != host.get(n))
        raise PackageError(
            f"{path}: host tensors do not match the config: "
            + ", ".join(f"{n} {rest.get(n, 'missing')} (expected {host.get(n, 'none')})" for n in bad[:4])
        )


def load_package(path: str | Path, expect_tile: Optional[Tuple[int, int]] = None) -> Package:
    """Memory-map and validate a weight package; ``expect_tile`` = the accelerator's array shape.

    ``metadata["mac_sparsity"]`` is the count from the tensors (a stated value must agree with it)."""
    path = Path(path)
    if not path.is_file():
        raise PackageError(f"{path}: weight package not found")
    t, meta = read_tensors(path)
    try:
        tile = tuple(int(x) for x in meta["tile"])
        infos = {
            str(name): LayerInfo(
                int(i["k"]), int(i["n"]), int(i["tiles_kept"]), int(i["tiles_total"]), float(i["rate"])
            )
            for name, i in dict(meta["layers"]).items()
        }
        config = {k: int(v) for k, v in dict(meta["config"]).items()}
        prunable = re.compile(str(meta.get("prunable", DEFAULT_PRUNABLE)))
        stated = float(meta.get("mac_sparsity", "nan"))
    except (KeyError, TypeError, ValueError, re.error) as e:
        raise PackageError(f"{path}: metadata incomplete or malformed ({e!r})") from e
    if len(tile) != 2 or min(tile) < 1:
        raise PackageError(f"{path}: bad tile shape {tile}")
    if expect_tile is not None and tuple(expect_tile) != tile:
        raise PackageError(
            f"{path}: package was built for {tile[0]}x{tile[1]} tiles but the accelerator array is "
            f"{expect_tile[0]}x{expect_tile[1]}: export a package with --tile {expect_tile[0]}"
        )
    _check_model(path, config, infos, t)
    layers = {name: _gemm_layer(path, name, t, info, tile) for name, info in infos.items()}
    counted = counted_mac_sparsity({n: (i.k, i.n, i.tiles_kept, i.tiles_total) for n, i in infos.items()}, prunable)
    if "mac_sparsity" in meta and not abs(stated - counted) <= 1e-9:
        raise PackageError(f"{path}: metadata says MAC sparsity {stated} but the tensors give {counted:.6f}")
    meta["mac_sparsity"] = counted
    try:
        vocab = t[VOCAB_KEY].tobytes().decode("utf-8").split("\n")
        suppress, begin = (t[k].astype(int).tolist() for k in SUPPRESS_KEYS)
    except (KeyError, UnicodeDecodeError) as e:
        raise PackageError(f"{path}: tokenizer tensors missing or corrupt ({e!r})") from e
    if len(vocab) != config["n_vocab"] or not all(0 <= i < len(vocab) for i in suppress + begin):
        raise PackageError(
            f"{path}: the tokenizer has {len(vocab)} tokens for n_vocab={config['n_vocab']} or suppresses an id "
            "out of range"
        )
    gemm_keys = {f"{name}.{s}" for name in layers for s in GEMM_SUFFIXES}
    params = {
        k: np.asarray(v, dtype=np.float32)
        for k, v in t.items()
        if k not in gemm_keys and not k.startswith("tokenizer.")
    }
    weights = WhisperWeights(params=params, config=config, vocab=vocab, suppress_ids=suppress, suppress_ids_begin=begin)
    return Package(path=path, metadata=meta, layers=layers, weights=weights)
