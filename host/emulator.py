"""Emulator backend: the HLS kernel source compiled with g++ and called through ctypes.

The shared library is built from ``hls/src/sasp_gemm.cpp`` + ``hls/src/emu_wrapper.cpp`` against
the stand-in headers in ``hls/include`` and the ap_types headers shipped with hls4ml, cached by
(source hash, array size, chunk) under ``host.cache.cache_root() / "kernels"``.
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
from typing import Dict, NamedTuple, Optional, Tuple, Union

import numpy as np

from host.boards import board_for_array, board_spec
from host.cache import cache_root
from host.cycle_model import array_rc, check_array, input_words, output_words
from host.kernel_spec import FLAG_FP16, STATUS_TEXT
from host.stream import GemmOperand, pack_input, unpack_output

HLS_DIR = Path(__file__).resolve().parents[1] / "hls"
SOURCES = ("src/sasp_gemm.cpp", "src/emu_wrapper.cpp")
HEADERS = ("src/sasp_gemm.h", "include/hls_stream.h", "include/hls_streamofblocks.h", "include/ap_axi_sdata.h")

_RC = {
    1: "stall",
    2: "output overflow",
    3: "input left over",
    4: "TLAST error",
    5: "C++ exception",
    6: "kernel status error",
}


# -O3 -march=native: about 1.6x faster C simulation than -O2 (measured on this x86 host); -ffp-contract=off: no
# fused multiply-add, so the epilogue rounds after every float32 operation like the fabric operators and numpy
OPT_FLAGS = ("-O3", "-march=native", "-ffp-contract=off")


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


def board_chunk(array: Union[int, Tuple[int, int]], board: Optional[str] = None) -> int:
    """The activation chunk (SA_CHUNK) of ``board``'s build (host/data/boards.json ``kernel_chunk``); without a
    board, of the board ``array`` is modeled on (``host.boards.board_for_array``: the PYNQ-Z2 for 8x8)."""
    return board_spec(board or board_for_array(array)).kernel_chunk


def cache_dir() -> Path:
    """Where compiled kernels are cached (``host.cache.cache_root()/kernels``)."""
    return cache_root() / "kernels"


def source_hash() -> str:
    h = hashlib.sha256()
    for rel in SOURCES + HEADERS:
        h.update(rel.encode())
        h.update((HLS_DIR / rel).read_bytes())
    return h.hexdigest()[:16]


def build_library(r: int, c: int, chunk: int, dsp_pack: bool = False) -> Path:
    """Compile (or reuse) the emulator library; returns its path. ``dsp_pack``: the DSP48E2 packing build."""
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")
    if not cxx:
        raise RuntimeError("no C++ compiler found: install g++ (e.g. apt-get install g++) to use the emulator")
    ap = ap_types_dir()
    flags = "_".join(f.strip("-") for f in OPT_FLAGS)
    out = cache_dir() / f"sasp_gemm_{source_hash()}_r{r}c{c}_ch{chunk}_p{int(dsp_pack)}_{flags}.so"
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=out.stem + ".", suffix=".tmp", dir=out.parent)
    os.close(fd)
    cmd = [
        cxx, "-std=c++14", *OPT_FLAGS, "-shared", "-fPIC", "-w",
        f"-I{HLS_DIR / 'include'}", "-isystem", str(ap), f"-I{HLS_DIR / 'src'}",
        f"-DSA_R={r}", f"-DSA_C={c}", f"-DSA_CHUNK={chunk}", f"-DSA_DSP_PACK={int(dsp_pack)}",
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
_LOAD_LOCK = threading.Lock()


def _load(path: Path) -> ctypes.CDLL:
    with _LOAD_LOCK:
        return _LIBS[path] if path in _LIBS else _open(path)


def _open(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    u32p, i64p, u64p = (ctypes.POINTER(t) for t in (ctypes.c_uint32, ctypes.c_int64, ctypes.c_uint64))
    lib.sasp_emu_config.argtypes = [u32p]
    lib.sasp_emu_config.restype = ctypes.c_int
    lib.sasp_emu_run.argtypes = (
        [u64p, ctypes.c_int64, u64p, ctypes.c_int64, u64p] + [ctypes.c_uint32] * 6 + [u32p, i64p]
    )
    lib.sasp_emu_run.restype = ctypes.c_int
    lib.sasp_emu_f16.argtypes = [ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_uint16), ctypes.c_int64]
    lib.sasp_emu_f16.restype = None
    _LIBS[path] = lib
    return _LIBS[path]


class RawRun(NamedTuple):
    """One kernel call as the hardware sees it."""

    out: np.ndarray  # output stream words
    regs: Dict[str, int]  # id_version, array_size, cycles, hw_cycles (1 in C simulation), status
    consumed: int  # input words read
    produced: int  # output words written
    tlast: int  # index of the first output word with TLAST (-1: none)
    rc: int


class EmulatedKernel:
    """C simulation of ``sasp_gemm`` for an ``R x C`` array (``array``: int for square, or ``(R, C)``).

    ``chunk``: the build's SA_CHUNK, by default that of ``board`` (:func:`board_chunk`); ``dsp_pack``: the build
    with two int8 MACs per DSP48E2 (same results by construction, tested)."""

    def __init__(
        self,
        array: Union[int, Tuple[int, int]],
        chunk: Optional[int] = None,
        dsp_pack: bool = False,
        *,
        board: Optional[str] = None,
    ) -> None:
        r, c = check_array(array_rc(array))
        self._rc = (r, c)
        self.chunk = int(chunk or board_chunk((r, c), board))
        self._lib = _load(build_library(r, c, self.chunk, dsp_pack))
        cfg = (ctypes.c_uint32 * 6)()
        self._lib.sasp_emu_config(cfg)
        self.k_max, self.n_max, self._id = int(cfg[3]), int(cfg[4]), int(cfg[5])

    @property
    def tile(self) -> Tuple[int, int]:
        return self._rc

    @property
    def id_version(self) -> int:
        return self._id

    def f32_to_f16(self, x: np.ndarray) -> np.ndarray:
        """The kernel's own fp32 -> fp16 conversion (bit patterns as uint16)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.empty(x.shape, dtype=np.uint16)
        self._lib.sasp_emu_f16(
            x.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), y.ctypes.data_as(ctypes.POINTER(ctypes.c_uint16)), x.size
        )
        return y

    def run_words(
        self, words: np.ndarray, segment: np.ndarray, m: int, k: int, n: int, out_words: int, flags: int = FLAG_FP16,
        wlen: Optional[int] = None,
    ) -> RawRun:  # fmt: skip
        """Raw call on stream words and a weight segment (``wlen`` defaults to the segment's length)."""
        words = np.ascontiguousarray(words, dtype=np.uint64)
        seg = np.ascontiguousarray(segment, dtype=np.uint64)
        out = np.zeros(max(out_words, 1), dtype=np.uint64)
        regs = (ctypes.c_uint32 * 5)()
        counts = (ctypes.c_int64 * 3)()
        u64p = ctypes.POINTER(ctypes.c_uint64)
        # The C simulation keeps no state between calls (every buffer is local), and ctypes releases the GIL
        # during the call: independent calls may run in parallel threads.
        rc = self._lib.sasp_emu_run(
            words.ctypes.data_as(u64p), words.size, out.ctypes.data_as(u64p), out_words, seg.ctypes.data_as(u64p),
            seg.size if wlen is None else wlen, m, k, n, self.chunk, flags, regs, counts,
        )  # fmt: skip
        names = ("id_version", "array_size", "cycles", "hw_cycles", "status")
        return RawRun(out[:out_words], dict(zip(names, (int(v) for v in regs))), *(int(v) for v in counts), int(rc))

    def run(self, x_q: np.ndarray, scale_x: np.ndarray, op: GemmOperand, fp16: bool = True) -> Tuple[np.ndarray, int]:
        """``(fp16[M, N] epilogue output (int32 if not fp16), schedule counter)`` for ``x_q @ W``."""
        w = op.w
        if tuple(w.tile) != self._rc:
            raise ValueError(f"weights are tiled {w.tile}, the kernel array is {self._rc}")
        if w.k > self.k_max or w.n > self.n_max:
            raise ValueError(f"K={w.k} / N={w.n} exceed the kernel limits K<={self.k_max}, N<={self.n_max}")
        m = int(x_q.shape[0])
        words = pack_input(x_q, scale_x, self._rc)
        return self.run_packed(words, op.segment, m, w.k, w.n, fp16)

    def run_packed(
        self, words: np.ndarray, segment: np.ndarray, m: int, k: int, n: int, fp16: bool = True
    ) -> Tuple[np.ndarray, int]:
        """Run on already packed words; raises on every protocol error the board would show as a hang or fault."""
        n_out = output_words(m, n, self._rc, fp16)
        n_in = input_words(m, k, self._rc)
        res = self.run_words(words, segment, m, k, n, n_out, FLAG_FP16 if fp16 else 0)
        st = res.regs["status"]
        if res.rc == 1:
            raise KernelStallError(
                f"kernel stalled waiting for input word {res.consumed + 1} of {n_in}: the host sent fewer stream "
                f"words ({len(words)}) than the kernel expects (on a board the DMA would never complete)"
            )
        if res.rc == 6:
            bits = [txt for bit, txt in STATUS_TEXT.items() if st & bit]
            raise KernelProtocolError(f"kernel status 0x{st:x}: {', '.join(bits) or 'unknown error'}")
        if res.rc == 2 or res.produced != n_out:
            raise KernelProtocolError(f"kernel produced {res.produced} output words, the host expects {n_out}")
        if res.rc == 3:
            raise KernelProtocolError(
                f"kernel finished after {res.consumed} input words but the host sent {len(words)} "
                f"(expected {n_in}); on a board the MM2S DMA would never complete"
            )
        if res.rc == 4:
            raise KernelProtocolError(f"TLAST on output word {res.tlast}, expected on the last word {n_out - 1}")
        if res.rc != 0:
            raise KernelProtocolError(f"emulator error {res.rc} ({_RC.get(res.rc, 'unknown')})")
        return unpack_output(res.out, m, n, self._rc, self.chunk, fp16), res.regs["cycles"]
