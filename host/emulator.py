"""Emulator backend: the HLS kernel source compiled with g++ and called through ctypes.

The shared library is built from ``hls/src/sasp_gemm.cpp`` + ``hls/src/emu_wrapper.cpp`` against
the stand-in headers in ``hls/include`` and the ap_types headers shipped with hls4ml, cached by
(source hash, array size, chunk) under ``${SASP_CACHE:-~/.cache/sasp-asr}/kernels/``.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.util
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from host.blocksparse import BlockSparseWeights
from host.stream import expected_input_words, expected_output_words, pack_input, unpack_output

HLS_DIR = Path(__file__).resolve().parents[1] / "hls"
SOURCES = ("src/sasp_gemm.cpp", "src/emu_wrapper.cpp")
HEADERS = ("src/sasp_gemm.h", "include/hls_stream.h", "include/ap_axi_sdata.h")
DEFAULT_CHUNK = 96  # xc7z020 (PYNQ-Z2) build; see hls/README.md

_RC = {
    1: "stall",
    2: "output overflow",
    3: "input left over",
    4: "TLAST error",
    5: "C++ exception",
    6: "kernel status error",
}
_STATUS_BITS = {0x2: "bad arguments", 0x4: "bad header word", 0x8: "bad metadata (kidx or tile count)"}


OPT_FLAGS = ("-O3", "-march=native")  # about 1.6x faster C simulation than -O2 (measured on this x86 host)


class KernelStallError(TimeoutError):
    """The kernel waited on an empty input stream (on a board the DMA transfer would never complete)."""


class KernelProtocolError(RuntimeError):
    """The kernel and the host disagree on the stream (word counts, TLAST, status register)."""


def ap_types_dir() -> Path:
    """Directory of the ap_int.h headers bundled with hls4ml (the package is not imported)."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("ap_types headers not found: pip install hls4ml (its ap_int.h headers are used)")
    d = Path(list(spec.submodule_search_locations)[0]) / "templates" / "vivado" / "ap_types"
    if not (d / "ap_int.h").is_file():
        raise RuntimeError(f"ap_types headers missing in {d}: pip install hls4ml")
    return d


def cache_dir() -> Path:
    return Path(os.environ.get("SASP_CACHE", str(Path.home() / ".cache" / "sasp-asr"))) / "kernels"


def source_hash() -> str:
    h = hashlib.sha256()
    for rel in SOURCES + HEADERS:
        h.update(rel.encode())
        h.update((HLS_DIR / rel).read_bytes())
    return h.hexdigest()[:16]


def build_library(r: int, c: int, chunk: int) -> Path:
    """Compile (or reuse) the emulator library; returns its path."""
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise RuntimeError("no C++ compiler found: install g++ (e.g. apt-get install g++) to use the emulator")
    ap = ap_types_dir()
    out = cache_dir() / f"sasp_gemm_{source_hash()}_r{r}c{c}_ch{chunk}_{'_'.join(OPT_FLAGS).strip('-')}.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.stem + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    cmd = [
        cxx, "-std=c++14", *OPT_FLAGS, "-shared", "-fPIC", "-w",
        f"-I{HLS_DIR / 'include'}", "-isystem", str(ap), f"-I{HLS_DIR / 'src'}",
        f"-DSA_R={r}", f"-DSA_C={c}", f"-DSA_CHUNK={chunk}",
        *(str(HLS_DIR / s) for s in SOURCES), "-o", tmp,
    ]  # fmt: skip
    try:
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"emulator build failed ({' '.join(cmd)}):\n{res.stderr[-4000:]}")
        os.replace(tmp, out)  # atomic: parallel builders race harmlessly
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


_LIBS: Dict[Path, ctypes.CDLL] = {}
_LOCK = threading.Lock()  # the kernel keeps its buffers in static storage: one call at a time


def _load(path: Path) -> ctypes.CDLL:
    if path not in _LIBS:
        lib = ctypes.CDLL(str(path))
        u32p, i64p, u64p = (ctypes.POINTER(t) for t in (ctypes.c_uint32, ctypes.c_int64, ctypes.c_uint64))
        lib.sasp_emu_config.argtypes = [u32p]
        lib.sasp_emu_config.restype = ctypes.c_int
        lib.sasp_emu_run.argtypes = [u64p, ctypes.c_int64, u64p, ctypes.c_int64] + [ctypes.c_uint32] * 5 + [u32p, i64p]
        lib.sasp_emu_run.restype = ctypes.c_int
        _LIBS[path] = lib
    return _LIBS[path]


class EmulatedKernel:
    """C-simulation of ``sasp_gemm`` for an ``array x array`` systolic array (or ``(R, C)``)."""

    def __init__(self, array: Union[int, Tuple[int, int]], chunk: Optional[int] = None):
        r, c = (int(array), int(array)) if np.isscalar(array) else (int(array[0]), int(array[1]))
        self._rc = (r, c)
        self.chunk = int(chunk or DEFAULT_CHUNK)
        self._lib = _load(build_library(r, c, self.chunk))
        cfg = (ctypes.c_uint32 * 6)()
        self._lib.sasp_emu_config(cfg)
        self.k_max, self.n_max, self._id = int(cfg[3]), int(cfg[4]), int(cfg[5])
        self.last_regs: Tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def array(self) -> int:
        """Array rows R (== columns C for square arrays)."""
        return self._rc[0]

    @property
    def tile(self) -> Tuple[int, int]:
        return self._rc

    @property
    def id_version(self) -> int:
        return self._id

    def run_words(self, words: np.ndarray, m: int, k: int, n: int, out_words: int, flags: int = 0):
        """Raw call: returns (output words, regs(id, array, cycles, status), counts(in, out, tlast_pos), rc)."""
        words = np.ascontiguousarray(words, dtype=np.uint64)
        out = np.zeros(max(out_words, 1), dtype=np.uint64)
        regs = (ctypes.c_uint32 * 4)()
        counts = (ctypes.c_int64 * 3)()
        u64p = ctypes.POINTER(ctypes.c_uint64)
        with _LOCK:
            rc = self._lib.sasp_emu_run(
                words.ctypes.data_as(u64p), words.size, out.ctypes.data_as(u64p), out_words,
                m, k, n, self.chunk, flags, regs, counts,
            )  # fmt: skip
        self.last_regs = tuple(int(v) for v in regs)
        return out[:out_words], self.last_regs, tuple(int(v) for v in counts), int(rc)

    def run(self, x_q: np.ndarray, w: BlockSparseWeights) -> Tuple[np.ndarray, int]:
        """``(int32[M, N], kernel cycle counter)`` for ``x_q @ W``."""
        if tuple(w.tile) != self._rc:
            raise ValueError(f"weights are tiled {w.tile}, the kernel array is {self._rc}")
        if w.k > self.k_max or w.n > self.n_max:
            raise ValueError(f"K={w.k} / N={w.n} exceed the kernel limits K<={self.k_max}, N<={self.n_max}")
        m = int(x_q.shape[0])
        words = pack_input(x_q, w, self.chunk)
        return self.run_packed(words, m, w)

    def run_packed(self, words: np.ndarray, m: int, w: BlockSparseWeights) -> Tuple[np.ndarray, int]:
        """Run on already packed stream words (used to test malformed streams)."""
        n_out = expected_output_words(m, w.n, w.tile)
        n_in = expected_input_words(m, w, self.chunk)
        out, regs, counts, rc = self.run_words(words, m, w.k, w.n, n_out)
        if rc == 1:
            raise KernelStallError(
                f"kernel stalled waiting for input word {counts[0] + 1} of {n_in}: the host sent fewer stream "
                f"words ({len(words)}) than the kernel expects (on a board the DMA would never complete)"
            )
        if rc == 6:
            bits = [txt for bit, txt in _STATUS_BITS.items() if regs[3] & bit]
            raise KernelProtocolError(f"kernel status 0x{regs[3]:x}: {', '.join(bits) or 'unknown error'}")
        if rc == 2 or counts[1] != n_out:
            raise KernelProtocolError(f"kernel produced {counts[1]} output words, the host expects {n_out}")
        if rc == 3:
            raise KernelProtocolError(
                f"kernel finished after {counts[0]} input words but the host sent {len(words)} "
                f"(expected {n_in}); on a board the MM2S DMA would never complete"
            )
        if rc == 4:
            raise KernelProtocolError(f"TLAST on output word {counts[2]}, expected on the last word {n_out - 1}")
        if rc != 0:
            raise KernelProtocolError(f"emulator error {rc} ({_RC.get(rc, 'unknown')})")
        return unpack_output(out, m, w.n, w.tile, self.chunk), regs[2]
