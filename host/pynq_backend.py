"""PYNQ backend: the sasp_gemm overlay on a PYNQ-Z2 / Ultra96-V2 board, driven through AXI-Lite and AXI DMA.

One GEMM is: pack the input stream with ``host.stream.pack_input`` (the same words the emulator consumes), copy
it into a contiguous ``pynq.allocate`` buffer and flush it, write m/k/n/chunk/flags at the offsets of
``hls/interface.json``, arm the S2MM (receive) channel, start the MM2S (send) channel, set ap_start, poll the
channels and the kernel's ap_idle with a deadline, invalidate the output buffer, check the status register and
the received byte count, read the cycle counter, unpack with ``host.stream.unpack_output``.

``pynq`` is imported inside ``PynqBackend.__init__`` only, so this module imports anywhere (CI without pynq).
Register offsets are read from ``hls/interface.json`` at run time (one source of truth) and cross-checked
against the register map in the overlay's ``.hwh`` when PYNQ exposes it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from host.blocksparse import BlockSparseWeights
from host.cycle_model import array_rc, input_words, output_words
from host.stream import pack_input, unpack_output

ROOT = Path(__file__).resolve().parents[1]
INTERFACE_JSON = ROOT / "hls" / "interface.json"
OVERLAY_BUILD = ROOT / "overlay" / "build"
DMA_LENGTH_WIDTH = 26  # c_sg_length_width of the overlay (overlay/scripts/config.tcl)
BOARD_ALIASES = {"pynq-z2": "pynq-z2", "pynqz2": "pynq-z2", "ultra96-v2": "ultra96-v2", "ultra96v2": "ultra96-v2"}
BOARD_ALIASES.update({"ultra96": "ultra96-v2"})

# ap_ctrl bits (Vitis HLS s_axilite ap_ctrl_hs)
AP_START, AP_DONE, AP_IDLE = 0x1, 0x2, 0x4
# status register bits (hls/src/sasp_gemm.h)
ST_OK, ST_BAD_ARGS, ST_BAD_HEADER, ST_BAD_META, ST_PROBE = 0x1, 0x2, 0x4, 0x8, 0x10
FLAG_PROBE = 0x1
STATUS_TEXT = {ST_BAD_ARGS: "bad arguments", ST_BAD_HEADER: "bad header word", ST_BAD_META: "bad metadata"}

# Largest row counts per GEMM in Whisper tiny.en (30 s window): conv1 im2col 3000 rows, the encoder and the
# cross-attention K/V 1500 rows, decoder steps a few tokens (the prompt) then 1.
MAX_ROWS_ENCODER, MAX_ROWS_CONV1, MAX_ROWS_DECODER = 1500, 3000, 32


class PynqBackendError(RuntimeError):
    """The overlay cannot be used as asked (missing files, wrong kernel, wrong array, kernel error)."""


# ---- interface description -----------------------------------------------------------------------------------
def load_interface(path: Optional[Union[str, Path]] = None) -> dict:
    """hls/interface.json plus ``offsets``: register name -> byte offset (ints), and the expected id."""
    path = Path(path or INTERFACE_JSON)
    if not path.is_file():
        raise PynqBackendError(f"{path} not found: the backend takes the kernel's register map from it")
    iface = json.loads(path.read_text())
    offsets: Dict[str, int] = {}
    for reg in iface["s_axilite"]["registers"]:
        offsets[reg["name"]] = int(str(reg["offset"]), 0)
        if "ap_vld_offset" in reg:
            offsets[reg["name"] + "_ap_vld"] = int(str(reg["ap_vld_offset"]), 0)
    need = {"ap_ctrl", "m", "k", "n", "chunk", "flags", "id_version", "array_size", "cycles", "status"}
    missing = need - set(offsets)
    if missing:
        raise PynqBackendError(f"{path}: registers {sorted(missing)} missing from s_axilite.registers")
    iface["offsets"] = offsets
    iface["id_expected"] = int(str(iface["id_version"]), 0)
    iface["limits_int"] = {"K_max": int(iface["limits"]["K_max"]), "N_max": int(iface["limits"]["N_max"])}
    ip = iface["ip"]
    iface["vlnv"] = ":".join(ip[k] for k in ("vendor", "library", "name", "version"))
    return iface


def decode_array_size(value: int) -> Tuple[int, int, int]:
    """``array_size`` register (R | C << 8 | SA_CHUNK << 16) -> (R, C, SA_CHUNK)."""
    return value & 0xFF, (value >> 8) & 0xFF, (value >> 16) & 0xFFFF


def decode_id(value: int) -> str:
    tag = chr((value >> 24) & 0xFF) + chr((value >> 16) & 0xFF)
    return f"0x{value:08x} (id '{tag}', v{(value >> 8) & 0xFF}.{value & 0xFF})"


# ---- board / bitstream ----------------------------------------------------------------------------------------
def resolve_board(name: Optional[str]) -> str:
    """``--board`` or the PYNQ image's $BOARD ("Pynq-Z2", "Ultra96V2") -> pynq-z2 | ultra96-v2."""
    raw = name or os.environ.get("BOARD", "")
    key = raw.strip().lower().replace("_", "-")
    if key in BOARD_ALIASES:
        return BOARD_ALIASES[key]
    if "ultra96" in key:
        return "ultra96-v2"
    if "z2" in key:
        return "pynq-z2"
    raise PynqBackendError(
        f"unknown board {raw!r}: pass board='pynq-z2' or 'ultra96-v2' (or --board), or a bitfile explicitly"
    )


def default_bitfile(board: str, array: int) -> Path:
    return OVERLAY_BUILD / board / f"sasp_gemm_{array}.bit"


# ---- GEMM splitting (exact) -------------------------------------------------------------------------------------
def split_columns(w: BlockSparseWeights, n_max: int) -> List[Tuple[int, BlockSparseWeights]]:
    """``[(col0, W[:, col0:col0+n])]`` with every part at most ``n_max`` columns (whole column blocks)."""
    c = w.tile[1]
    per = max(1, n_max // c)
    if w.n_blocks <= per:
        return [(0, w)]
    parts = []
    cp = np.asarray(w.colptr, dtype=np.int64)
    for b0 in range(0, w.n_blocks, per):
        b1 = min(w.n_blocks, b0 + per)
        lo, hi = int(cp[b0]), int(cp[b1])
        n = min(w.n, b1 * c) - b0 * c
        sub = BlockSparseWeights(
            tiles=w.tiles[lo:hi],
            colptr=(cp[b0 : b1 + 1] - lo).astype(np.int32),
            kidx=np.asarray(w.kidx[lo:hi], dtype=np.int32),
            k=w.k,
            n=int(n),
            tile=w.tile,
        )
        parts.append((b0 * c, sub))
    return parts


def split_rows_k(w: BlockSparseWeights, k_max: int) -> List[Tuple[int, int, BlockSparseWeights]]:
    """``[(k0, k1, W[k0:k1, :])]`` with every part at most ``k_max`` rows (whole row blocks); the int32 partial
    products of the parts add up exactly to the full GEMM."""
    r = w.tile[0]
    per = max(1, k_max // r)
    if w.k_blocks <= per:
        return [(0, w.k, w)]
    parts = []
    kidx = np.asarray(w.kidx, dtype=np.int64)
    col = np.repeat(np.arange(w.n_blocks), w.nnz_per_colblock)
    for kb0 in range(0, w.k_blocks, per):
        kb1 = min(w.k_blocks, kb0 + per)
        sel = (kidx >= kb0) & (kidx < kb1)
        counts = np.bincount(col[sel], minlength=w.n_blocks)
        colptr = np.zeros(w.n_blocks + 1, dtype=np.int32)
        np.cumsum(counts, out=colptr[1:])
        k0, k1 = kb0 * r, min(w.k, kb1 * r)
        sub = BlockSparseWeights(
            tiles=w.tiles[sel], colptr=colptr, kidx=(kidx[sel] - kb0).astype(np.int32), k=k1 - k0, n=w.n, tile=w.tile
        )
        parts.append((k0, k1, sub))
    return parts


def rows_per_call(m: int, w: BlockSparseWeights, chunk: int, in_limit: int, out_limit: int) -> int:
    """Largest row count (a multiple of ``chunk``, or ``m``) whose input and output streams fit the limits
    (bytes); splitting along M at chunk boundaries leaves every result bit identical."""
    nnz = w.nnz_per_colblock

    def fits(rows: int) -> bool:
        return (
            8 * input_words(rows, w.k, w.n, nnz, w.tile, chunk) <= in_limit
            and 8 * output_words(rows, w.n, w.tile) <= out_limit
        )

    if fits(m):
        return m
    rows = chunk
    if not fits(rows):
        raise PynqBackendError(
            f"one chunk of {chunk} rows (K={w.k}, N={w.n}) needs more than the DMA/buffer limit "
            f"(in {in_limit} B, out {out_limit} B)"
        )
    while rows + chunk < m and fits(rows + chunk):
        rows += chunk
    return rows


def max_rows_for_layer(name: str) -> int:
    """Planning row count of a Whisper tiny.en GEMM by layer name (buffers grow if a call needs more)."""
    if name == "encoder.conv1":
        return MAX_ROWS_CONV1
    if name.startswith("encoder.") or ".cross_attn.key" in name or ".cross_attn.value" in name:
        return MAX_ROWS_ENCODER
    return MAX_ROWS_DECODER


class PynqBackend:
    """The sasp_gemm overlay as a ``host.driver`` backend: ``gemm(x_q, w) -> (int32[M, N], cycles)``.

    ``array``: the weight package's tile shape, checked against the overlay's ``array_size`` register.
    ``bitfile``: overlay ``.bit`` (its ``.hwh`` beside it); default ``overlay/build/<board>/sasp_gemm_<A>.bit``.
    ``chunk``: activation rows per chunk (default and maximum: the kernel's SA_CHUNK).
    ``timeout_s``: deadline of one kernel run (DMA in + compute + DMA out).
    ``package``: optional weight package (or path) to size the DMA buffers for its largest GEMM up front.
    """

    def __init__(
        self,
        array: Union[int, Tuple[int, int]] = 8,
        bitfile: Optional[Union[str, Path]] = None,
        board: Optional[str] = None,
        chunk: Optional[int] = None,
        timeout_s: float = 10.0,
        package=None,
        interface: Optional[Union[str, Path]] = None,
        download: bool = True,
        poll_interval_s: float = 0.0,
    ):
        try:
            import pynq  # board only: keep module import free of pynq
        except ImportError as e:
            raise PynqBackendError(
                "the pynq backend needs the pynq package (a PYNQ board image); use --backend emulated elsewhere"
            ) from e
        self._pynq = pynq
        self.array = array_rc(array)
        self.iface = load_interface(interface)
        self.off = self.iface["offsets"]
        self.timeout_s = float(timeout_s)
        self.poll_interval_s = float(poll_interval_s)
        if bitfile is None:
            self.board = resolve_board(board)
            bitfile = default_bitfile(self.board, self.array[0])
        else:
            self.board = resolve_board(board) if board or os.environ.get("BOARD") else "unknown"
        self.bitfile = Path(bitfile)
        if not self.bitfile.is_file():
            raise PynqBackendError(
                f"overlay bitstream {self.bitfile} not found: build it with `make -C overlay BOARD={self.board} "
                f"ARRAY={self.array[0]}` (or copy sasp_gemm_{self.array[0]}.bit and .hwh there), or pass --bitfile"
            )
        if not self.bitfile.with_suffix(".hwh").is_file():
            raise PynqBackendError(
                f"{self.bitfile.with_suffix('.hwh')} not found: pynq.Overlay needs the .hwh with the same basename "
                f"next to the .bit"
            )
        self.overlay = pynq.Overlay(str(self.bitfile), download=download)
        self.dma, self.kernel = self._find_ips()
        self.dma_max_bytes = int(getattr(self.dma, "buffer_max_size", (1 << DMA_LENGTH_WIDTH) - 1))
        self._check_hwh_offsets()
        self.id_version, (r, c, sa_chunk) = self._probe()
        self.sa_chunk = sa_chunk
        if self.id_version != self.iface["id_expected"]:
            raise PynqBackendError(
                f"overlay {self.bitfile.name}: kernel ID/version register reads {decode_id(self.id_version)}, this "
                f"host expects {decode_id(self.iface['id_expected'])} (hls/interface.json): rebuild the overlay "
                f"from this checkout (make -C overlay) or check out the matching host version"
            )
        if (r, c) != self.array:
            raise PynqBackendError(
                f"overlay {self.bitfile.name} holds a {r}x{c} array but the weight package is tiled "
                f"{self.array[0]}x{self.array[1]}: load sasp_gemm_{self.array[0]}.bit or export a package with "
                f"--tile {r}"
            )
        if chunk is not None and not 1 <= int(chunk) <= sa_chunk:
            raise PynqBackendError(f"chunk {chunk} out of range: this kernel holds at most {sa_chunk} rows (SA_CHUNK)")
        self.chunk = int(chunk or sa_chunk)
        self.k_max = self.iface["limits_int"]["K_max"]
        self.n_max = self.iface["limits_int"]["N_max"]
        self._in_buf = None
        self._out_buf = None
        self._broken: Optional[str] = None
        self.last_cycles: List[int] = []  # cycle counter of each kernel run of the last gemm()
        self.last_run_s: List[float] = []  # wall time from ap_start to DMA + kernel idle, per run
        self.reallocations = 0
        if package is not None:
            self.reserve_for_package(package)

    # ---- setup ---------------------------------------------------------------------------------------------
    def _find_ips(self):
        ip_dict = self.overlay.ip_dict
        dmas = [n for n, d in ip_dict.items() if ":axi_dma:" in str(d.get("type", ""))]
        vlnv_name = ":" + self.iface["ip"]["name"] + ":"
        kernels = [n for n, d in ip_dict.items() if vlnv_name in str(d.get("type", ""))]
        if len(dmas) != 1 or len(kernels) != 1:
            raise PynqBackendError(
                f"overlay {self.bitfile.name}: expected one AXI DMA and one {self.iface['vlnv']} IP, found DMA "
                f"{dmas} and kernels {kernels} (IPs: {sorted(ip_dict)})"
            )
        self._dma_name, self._kernel_name = dmas[0], kernels[0]
        params = ip_dict[dmas[0]].get("parameters", {})
        width = params.get("c_sg_length_width")
        if width is not None and int(width) < DMA_LENGTH_WIDTH:
            raise PynqBackendError(
                f"overlay {self.bitfile.name}: the AXI DMA buffer-length register is {width} bits "
                f"(max {(1 << int(width)) - 1} B per transfer); the largest Whisper GEMM stream needs 24 bits, the "
                f"overlay is built with {DMA_LENGTH_WIDTH}: rebuild with overlay/scripts"
            )
        return getattr(self.overlay, dmas[0]), getattr(self.overlay, kernels[0])

    def _check_hwh_offsets(self) -> None:
        """Registers named in the .hwh must sit at the offsets of hls/interface.json."""
        regs = self.overlay.ip_dict[self._kernel_name].get("registers") or {}
        bad = []
        for name, info in regs.items():
            key = name if name in self.off else name.lower()
            if key not in self.off or "address_offset" not in info:
                continue
            hwh = int(str(info["address_offset"]), 0)
            if hwh != self.off[key]:
                bad.append(f"{name}: hwh 0x{hwh:x}, interface.json 0x{self.off[key]:x}")
        if bad:
            raise PynqBackendError(
                f"overlay {self.bitfile.name} register offsets differ from hls/interface.json ({'; '.join(bad)}): "
                f"the overlay was built from another kernel version"
            )

    def _rd(self, name: str) -> int:
        return int(self.kernel.read(self.off[name])) & 0xFFFFFFFF

    def _wr(self, name: str, value: int) -> None:
        self.kernel.write(self.off[name], int(value) & 0xFFFFFFFF)

    def _wait_kernel_idle(self, deadline: float, what: str) -> None:
        while not self._rd("ap_ctrl") & AP_IDLE:
            if time.monotonic() > deadline:
                raise self._timeout(what, kernel_only=True)
            if self.poll_interval_s:
                time.sleep(self.poll_interval_s)

    def _probe(self) -> Tuple[int, Tuple[int, int, int]]:
        """Run the kernel with flags=probe (no stream traffic) so that id_version and array_size are written."""
        deadline = time.monotonic() + min(self.timeout_s, 2.0)
        self._wait_kernel_idle(deadline, "kernel idle before the probe")
        for name, v in (("m", 1), ("k", 1), ("n", 1), ("chunk", 1), ("flags", FLAG_PROBE)):
            self._wr(name, v)
        self._wr("ap_ctrl", AP_START)
        self._wait_kernel_idle(deadline, "probe run (flags=probe)")
        status = self._rd("status")
        if not status & ST_PROBE:
            raise PynqBackendError(
                f"overlay {self.bitfile.name}: probe run left status 0x{status:x} (expected the probe bit 0x10): the "
                f"IP at {self._kernel_name} is not a sasp_gemm kernel of this version"
            )
        return self._rd("id_version"), decode_array_size(self._rd("array_size"))

    # ---- buffers --------------------------------------------------------------------------------------------
    def _ensure_buffers(self, in_words: int, out_words: int) -> None:
        if self._in_buf is None or self._in_buf.shape[0] < in_words:
            if self._in_buf is not None:
                self._in_buf.freebuffer()
                self.reallocations += 1
            self._in_buf = self._pynq.allocate(shape=(max(in_words, 1),), dtype=np.uint64)
        if self._out_buf is None or self._out_buf.shape[0] < out_words:
            if self._out_buf is not None:
                self._out_buf.freebuffer()
                self.reallocations += 1
            self._out_buf = self._pynq.allocate(shape=(max(out_words, 1),), dtype=np.uint64)

    def stream_words(self, m: int, w: BlockSparseWeights) -> Tuple[int, int]:
        """(input, output) stream words of the largest single kernel run for ``x[m, K] @ w``."""
        limit = self.dma_max_bytes
        wi = wo = 0
        for _, _, wk in split_rows_k(w, self.k_max):
            for _, wn in split_columns(wk, self.n_max):
                rows = rows_per_call(m, wn, self.chunk, limit, limit)
                wi = max(wi, input_words(rows, wn.k, wn.n, wn.nnz_per_colblock, wn.tile, self.chunk))
                wo = max(wo, output_words(rows, wn.n, wn.tile))
        return wi, wo

    def reserve(self, shapes: Iterable[Tuple[int, BlockSparseWeights]]) -> Tuple[int, int]:
        """Allocate the DMA buffers once for the largest of ``(m, w)``; returns their sizes in bytes."""
        wi = wo = 1
        for m, w in shapes:
            a, b = self.stream_words(int(m), w)
            wi, wo = max(wi, a), max(wo, b)
        self._ensure_buffers(wi, wo)
        return 8 * wi, 8 * wo

    def reserve_for_package(self, package) -> Tuple[int, int]:
        """Size the buffers for the largest GEMM of a weight package (``Package`` or path)."""
        if isinstance(package, (str, Path)):
            from host.package import load_package

            package = load_package(package, expect_tile=self.array)
        return self.reserve((max_rows_for_layer(name), q.weights) for name, q in package.layers.items())

    # ---- one kernel run -------------------------------------------------------------------------------------
    def _timeout(self, what: str, kernel_only: bool = False) -> Exception:
        from host.driver import AcceleratorTimeoutError

        state = [f"kernel ap_ctrl=0x{self._rd('ap_ctrl'):x}"]
        if not kernel_only:
            for nm in ("sendchannel", "recvchannel"):
                ch = getattr(self.dma, nm)
                state.append(f"{nm} idle={bool(ch.idle)} error={bool(getattr(ch, 'error', False))}")
        self._broken = what
        return AcceleratorTimeoutError(
            f"{what} did not finish within {self.timeout_s:.1f} s ({', '.join(state)}). Likely causes: the kernel "
            f"never asserted TLAST on its last output word (S2MM waits for it); the AXI DMA buffer-length register "
            f"is too narrow (the 14-bit default allows 16 KiB per transfer, this overlay needs "
            f"{DMA_LENGTH_WIDTH} bits); the host and the kernel disagree on the stream word count (m/k/n/chunk "
            f"registers vs. host.stream packing, or a kernel built with another array/chunk). Reload the overlay "
            f"(PynqBackend.reset()) before the next run."
        )

    def _run_once(self, x_q: np.ndarray, w: BlockSparseWeights) -> Tuple[np.ndarray, int]:
        m = int(x_q.shape[0])
        words = pack_input(x_q, w, self.chunk)
        n_in, n_out = int(words.size), output_words(m, w.n, w.tile)
        self._ensure_buffers(n_in, n_out)
        inb, outb = self._in_buf, self._out_buf
        inb[:n_in] = words
        inb.flush()
        outb.invalidate()  # no stale dirty lines may be written back over the DMA's data
        for name, v in (("m", m), ("k", w.k), ("n", w.n), ("chunk", self.chunk), ("flags", 0)):
            self._wr(name, v)
        send, recv = self.dma.sendchannel, self.dma.recvchannel
        recv.transfer(outb, 0, 8 * n_out)
        send.transfer(inb, 0, 8 * n_in)
        self._wr("ap_ctrl", AP_START)
        t_start = time.perf_counter()
        deadline = time.monotonic() + self.timeout_s
        what = f"GEMM M={m} K={w.k} N={w.n} ({n_in} words in, {n_out} out)"
        while True:
            if getattr(send, "error", False) or getattr(recv, "error", False):
                self._broken = what
                raise PynqBackendError(
                    f"{what}: AXI DMA error (send error={bool(send.error)}, recv error={bool(recv.error)}): an "
                    f"internal error on S2MM usually means the kernel sent more words than the receive length "
                    f"(host/kernel word-count mismatch); reload the overlay"
                )
            if send.idle and recv.idle and self._rd("ap_ctrl") & AP_IDLE:
                self.last_run_s.append(time.perf_counter() - t_start)
                break
            if time.monotonic() > deadline:
                raise self._timeout(what)
            if self.poll_interval_s:
                time.sleep(self.poll_interval_s)
        send.wait()  # already idle: returns at once; records transferred bytes
        recv.wait()  # already idle: invalidates the receive buffer
        outb.invalidate()
        status, cycles = self._rd("status"), self._rd("cycles")
        if status != ST_OK:
            bits = [t for b, t in STATUS_TEXT.items() if status & b]
            raise PynqBackendError(f"{what}: kernel status 0x{status:x} ({', '.join(bits) or 'unknown'})")
        got = int(getattr(recv, "transferred", 8 * n_out) or 8 * n_out)
        if got != 8 * n_out:
            raise PynqBackendError(f"{what}: received {got} bytes, expected {8 * n_out} (TLAST at the wrong word)")
        y = unpack_output(np.asarray(outb[:n_out]), m, w.n, w.tile, self.chunk)
        return y, cycles

    # ---- backend protocol -------------------------------------------------------------------------------------
    def gemm(self, x_q: np.ndarray, w) -> Tuple[np.ndarray, Optional[int]]:
        """int32 ``x_q @ w`` on the FPGA and the kernel's cycle count (sum over the runs it took)."""
        if self._broken:
            from host.driver import AcceleratorTimeoutError

            raise AcceleratorTimeoutError(f"overlay unusable after an earlier failure ({self._broken}): call reset()")
        w = getattr(w, "weights", w)  # a QuantLayer or the BlockSparseWeights
        x_q = np.ascontiguousarray(x_q)
        if x_q.dtype != np.int8 or x_q.ndim != 2 or x_q.shape[1] != w.k:
            raise ValueError(f"gemm: expected int8[M, {w.k}], got {x_q.dtype}{list(x_q.shape)}")
        if tuple(w.tile) != self.array:
            raise ValueError(f"weights are tiled {w.tile}, the overlay array is {self.array}")
        m = int(x_q.shape[0])
        y = np.zeros((m, w.n), dtype=np.int32)
        total = 0
        self.last_cycles = []
        self.last_run_s = []
        limit = self.dma_max_bytes
        for k0, k1, wk in split_rows_k(w, self.k_max):
            xk = np.ascontiguousarray(x_q[:, k0:k1])
            for c0, wn in split_columns(wk, self.n_max):
                rows = rows_per_call(m, wn, self.chunk, limit, limit)
                for r0 in range(0, m, rows):
                    part, cyc = self._run_once(np.ascontiguousarray(xk[r0 : r0 + rows]), wn)
                    y[r0 : r0 + rows, c0 : c0 + wn.n] += part
                    total += cyc
                    self.last_cycles.append(cyc)
        return y, total

    def reset(self) -> None:
        """Reload the bitstream (resets kernel and DMA) after a time-out or DMA error."""
        self.overlay.download()
        self.dma, self.kernel = self._find_ips()
        self._broken = None
        self._probe()

    def close(self) -> None:
        for buf in (self._in_buf, self._out_buf):
            if buf is not None:
                buf.freebuffer()
        self._in_buf = self._out_buf = None
