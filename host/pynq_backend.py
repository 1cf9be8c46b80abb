"""PYNQ backend: the sasp_gemm v2 overlay on a PYNQ-Z2 / Ultra96-V2 board, driven through AXI-Lite, one AXI DMA
(activations in, results out) and the kernel's own AXI master (weights).

Weights: each layer's weight segment (``host.stream.GemmOperand.segment``: metadata, epilogue scales and biases,
tiles) is copied once into its own cacheable ``pynq.allocate`` buffer and flushed; the kernel reads it over its
``m_axi`` port at the address written to the ``wmem`` register, once per activation chunk. Per call the host only
packs the activation rows (``host.stream.pack_input_into``: one vectorized copy into the DMA buffer, which the
send channel flushes), writes wmem/wlen/m/k/n/chunk/flags at the offsets of ``hls/interface.json``, arms S2MM,
starts MM2S and the kernel, polls with a deadline, and reads the fp16 results through views
(``host.stream.unpack_output``), with the schedule counter and the hardware cycle counter.

``pynq`` is imported inside ``PynqBackend.__init__`` only, so this module imports anywhere (CI without pynq).
Register offsets are read from ``hls/interface.json`` at run time and cross-checked against the register map in
the overlay's ``.hwh`` when PYNQ exposes it. PYNQ API used: ``Overlay``, ``allocate(shape, dtype,
cacheable=True)`` with ``flush()``/``invalidate()``, ``AxiDMA.sendchannel/recvchannel.transfer(buf, start,
nbytes)``, ``Clocks.fclk0_mhz`` (pynq/ps.py, pynq/buffer.py, pynq/lib/dma.py of PYNQ 3.0).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

import numpy as np

from host.boards import resolve_board
from host.cycle_model import array_rc, input_words, output_words
from host.errors import AcceleratorTimeoutError
from host.kernel_spec import FLAG_FP16, FLAG_PROBE, ID_VERSION, ST_OK, ST_PROBE, STATUS_TEXT
from host.stream import GemmOperand, pack_input_into, unpack_output
from host.whisper_layers import layer_rows

ROOT = Path(__file__).resolve().parents[1]
INTERFACE_JSON = ROOT / "hls" / "interface.json"
OVERLAY_BUILD = ROOT / "overlay" / "build"
DMA_LENGTH_WIDTH = 26  # c_sg_length_width of the overlay (overlay/scripts/config.tcl)

# ap_ctrl bits (Vitis HLS s_axilite ap_ctrl_hs)
AP_START, AP_DONE, AP_IDLE = 0x1, 0x2, 0x4
ADDR_LIMIT = 1 << 32  # the kernel's m_axi address register is 32 bits wide (hls/scripts/common.tcl)

# Largest row count of a decoder GEMM (a few prompt tokens at once, then 1 per step); the encoder's are those of
# a 30-s window (host.whisper_layers.layer_rows).
MAX_ROWS_DECODER = 32


class PynqBackendError(RuntimeError):
    """The overlay cannot be used as asked (missing files, wrong kernel, wrong array, kernel error)."""


# ---- interface description -----------------------------------------------------------------------------------
def load_interface(path: Optional[Union[str, Path]] = None) -> dict:
    """hls/interface.json plus ``offsets``: register name -> byte offset (ints)."""
    path = Path(path or INTERFACE_JSON)
    if not path.is_file():
        raise PynqBackendError(f"{path} not found: the backend takes the kernel's register map from it")
    iface = json.loads(path.read_text())
    offsets: Dict[str, int] = {}
    for reg in iface["s_axilite"]["registers"]:
        offsets[reg["name"]] = int(str(reg["offset"]), 0)
        if "ap_vld_offset" in reg:
            offsets[reg["name"] + "_ap_vld"] = int(str(reg["ap_vld_offset"]), 0)
    need = {
        "ap_ctrl",
        "wmem",
        "wlen",
        "m",
        "k",
        "n",
        "chunk",
        "flags",
        "id_version",
        "array_size",
        "cycles",
        "hw_cycles",
        "status",
    }
    missing = need - set(offsets)
    if missing:
        raise PynqBackendError(f"{path}: registers {sorted(missing)} missing from s_axilite.registers")
    iface["offsets"] = offsets
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
def default_bitfile(board: str, array: int) -> Path:
    return OVERLAY_BUILD / board / f"sasp_gemm_{array}.bit"


# ---- splitting along M (exact) ---------------------------------------------------------------------------------
def rows_per_call(m: int, k: int, n: int, tile, chunk: int, limit: int) -> int:
    """Largest row count (a multiple of ``chunk``, or ``m``) whose input and output streams fit ``limit`` bytes;
    splitting along M at chunk boundaries leaves every result bit identical."""

    def fits(rows: int) -> bool:
        return 8 * max(input_words(rows, k, tile), output_words(rows, n, tile)) <= limit

    if fits(m):
        return m
    if not fits(chunk):
        raise PynqBackendError(f"one chunk of {chunk} rows (K={k}, N={n}) needs more than the DMA limit {limit} B")
    return limit // (8 * max(input_words(chunk, k, tile), output_words(chunk, n, tile))) * chunk


def max_rows_for_layer(name: str) -> int:
    """Planning row count of a Whisper tiny.en GEMM by layer name (buffers grow if a call needs more)."""
    return layer_rows(name, decoder_tokens=MAX_ROWS_DECODER)


class PynqBackend:
    """The sasp_gemm overlay as a ``host.driver`` backend: ``gemm(x_q, scale_x, op) -> (fp16[M, N], cycles)``.

    ``array``: the weight package's tile shape, checked against the overlay's ``array_size`` register.
    ``bitfile``: overlay ``.bit`` (its ``.hwh`` beside it); default ``overlay/build/<board>/sasp_gemm_<A>.bit``.
    ``chunk``: activation rows per chunk (default and maximum: the kernel's SA_CHUNK).
    ``timeout_s``: deadline of one kernel run (DMA in + compute + DMA out).
    ``package``: optional weight package (or path) to size the DMA buffers for its largest GEMM up front.
    """

    on_board = True  # its wall times are measurements on the board (host.driver.Backend)

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
        if not timeout_s > 0:
            raise PynqBackendError(f"timeout_s must be > 0, got {timeout_s}")
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
        self._open_overlay(download)
        self.id_version, (r, c, sa_chunk) = self._probe()
        self.sa_chunk = sa_chunk
        if self.id_version != ID_VERSION:
            raise PynqBackendError(
                f"overlay {self.bitfile.name}: kernel ID/version register reads {decode_id(self.id_version)}, this "
                f"host expects {decode_id(ID_VERSION)} (host/kernel_spec.py): rebuild the overlay "
                f"from this checkout (make -C overlay) or check out the matching host version"
            )
        if (r, c) != self.array:
            raise PynqBackendError(
                f"overlay {self.bitfile.name} holds a {r}x{c} array but the weight package is tiled "
                f"{self.array[0]}x{self.array[1]}: load sasp_gemm_{r}.bit or export a package with --tile {r}"
            )
        if chunk is not None and not 1 <= int(chunk) <= sa_chunk:
            raise PynqBackendError(f"chunk {chunk} out of range: this kernel holds at most {sa_chunk} rows (SA_CHUNK)")
        self.chunk = int(chunk or sa_chunk)
        self.k_max = self.iface["limits_int"]["K_max"]
        self.n_max = self.iface["limits_int"]["N_max"]
        self._in_buf = None
        self._out_buf = None
        self._scratch = None  # weight buffer of operands that are not resident (attention's right-hand side)
        self._resident: Dict[int, Tuple[GemmOperand, object]] = {}
        self._broken: Optional[str] = None
        self.last_cycles: List[int] = []  # schedule counter of each kernel run of the last gemm()
        self.last_hw_cycles: List[int] = []  # free-running PL-cycle counter of each run
        self.last_run_s: List[float] = []  # wall time from ap_start to DMA + kernel idle, per run
        self.reallocations = 0
        if package is not None:
            self.reserve_for_package(package)

    # ---- setup ---------------------------------------------------------------------------------------------
    def _open_overlay(self, download: bool = True) -> None:
        """A fresh ``pynq.Overlay`` (downloading the bitstream): new driver objects, so the DMA channels are
        started (a channel is started when its driver is created; after ``download()`` the old ones are halted)."""
        self.overlay = self._pynq.Overlay(str(self.bitfile), download=download)
        self.dma, self.kernel = self._find_ips()
        self.dma_max_bytes = int(getattr(self.dma, "buffer_max_size", (1 << DMA_LENGTH_WIDTH) - 1))
        self._check_hwh_offsets()

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
        self.dma_name, self.kernel_name = dmas[0], kernels[0]
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
        regs = self.overlay.ip_dict[self.kernel_name].get("registers") or {}
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

    def pl_clock_hz(self) -> Optional[float]:
        """The PL clock the kernel runs at, as PYNQ reports it (``pynq.Clocks.fclk0_mhz``), or None."""
        clocks = getattr(self._pynq, "Clocks", None)
        mhz = getattr(clocks, "fclk0_mhz", None) if clocks is not None else None
        return float(mhz) * 1e6 if mhz else None

    def read_register(self, name: str) -> int:
        """The kernel's AXI-Lite register ``name`` (an ``hls/interface.json`` name), 32 bits."""
        return int(self.kernel.read(self.off[name])) & 0xFFFFFFFF

    def write_register(self, name: str, value: int) -> None:
        """Write the low 32 bits of ``value`` to the kernel's AXI-Lite register ``name``."""
        self.kernel.write(self.off[name], int(value) & 0xFFFFFFFF)

    def _wait_kernel_idle(self, deadline: float, what: str) -> None:
        while not self.read_register("ap_ctrl") & AP_IDLE:
            if time.monotonic() > deadline:
                raise self._timeout(what, kernel_only=True)
            if self.poll_interval_s:
                time.sleep(self.poll_interval_s)

    def _probe(self) -> Tuple[int, Tuple[int, int, int]]:
        """Run the kernel with flags=probe (no stream traffic) so that id_version and array_size are written."""
        deadline = time.monotonic() + min(self.timeout_s, 2.0)
        self._wait_kernel_idle(deadline, "kernel idle before the probe")
        for name, v in (("wmem", 0), ("wlen", 0), ("m", 1), ("k", 1), ("n", 1), ("chunk", 1), ("flags", FLAG_PROBE)):
            self.write_register(name, v)
        self.write_register("ap_ctrl", AP_START)
        self._wait_kernel_idle(deadline, "probe run (flags=probe)")
        status = self.read_register("status")
        if not status & ST_PROBE:
            raise PynqBackendError(
                f"overlay {self.bitfile.name}: probe run left status 0x{status:x} (expected the probe bit "
                f"0x{ST_PROBE:x}): the IP at {self.kernel_name} is not a sasp_gemm kernel of this version"
            )
        return self.read_register("id_version"), decode_array_size(self.read_register("array_size"))

    # ---- buffers --------------------------------------------------------------------------------------------
    def _alloc(self, words: int):
        return self._pynq.allocate(shape=(max(int(words), 1),), dtype=np.uint64, cacheable=True)

    def _ensure_buffers(self, in_words: int, out_words: int) -> None:
        if self._in_buf is None or self._in_buf.shape[0] < in_words:
            if self._in_buf is not None:
                self._in_buf.freebuffer()
                self.reallocations += 1
            self._in_buf = self._alloc(in_words)
        if self._out_buf is None or self._out_buf.shape[0] < out_words:
            if self._out_buf is not None:
                self._out_buf.freebuffer()
                self.reallocations += 1
            self._out_buf = self._alloc(out_words)

    def _weights(self, op: GemmOperand):
        """The DDR buffer holding ``op``'s weight segment: resident per operand (copied and flushed once), or the
        scratch buffer for operands built per call."""
        seg = op.segment
        if op.resident:
            entry = self._resident.get(id(op))
            if entry is None or entry[0] is not op:
                buf = self._alloc(seg.size)
                buf[: seg.size] = seg
                buf.flush()
                entry = self._resident[id(op)] = (op, buf)
            buf = entry[1]
        else:
            if self._scratch is None or self._scratch.shape[0] < seg.size:
                if self._scratch is not None:
                    self._scratch.freebuffer()
                    self.reallocations += 1
                self._scratch = self._alloc(seg.size)
            buf = self._scratch
            buf[: seg.size] = seg
            buf.flush()
        addr = int(buf.physical_address)
        if addr + 8 * seg.size > ADDR_LIMIT:
            raise PynqBackendError(f"weight buffer at 0x{addr:x} lies above the kernel's 32-bit address range")
        return addr, int(seg.size)

    def reserve(self, shapes: Iterable[Tuple[int, int, int]]) -> Tuple[int, int]:
        """Allocate the DMA buffers once for the largest of ``(m, k, n)``; returns their sizes in bytes."""
        wi = wo = 1
        for m, k, n in shapes:
            rows = rows_per_call(int(m), k, n, self.array, self.chunk, self.dma_max_bytes)
            wi = max(wi, input_words(rows, k, self.array))
            wo = max(wo, output_words(rows, min(n, self.n_max), self.array))
        self._ensure_buffers(wi, wo)
        return 8 * wi, 8 * wo

    def reserve_for_package(self, package) -> Tuple[int, int]:
        """Size the buffers for the largest GEMM of a weight package (``Package`` or path)."""
        if isinstance(package, (str, Path)):
            from host.package import load_package

            package = load_package(package, expect_tile=self.array)
        return self.reserve((max_rows_for_layer(name), q.weights.k, q.weights.n) for name, q in package.layers.items())

    # ---- one kernel run -------------------------------------------------------------------------------------
    def _timeout(self, what: str, kernel_only: bool = False) -> Exception:
        state = [f"kernel ap_ctrl=0x{self.read_register('ap_ctrl'):x}"]
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

    def _run_once(
        self, x_q: np.ndarray, scale_x: np.ndarray, k: int, n: int, waddr: int, wlen: int
    ) -> Tuple[np.ndarray, int, int]:
        m = int(x_q.shape[0])
        n_in, n_out = input_words(m, k, self.array), output_words(m, n, self.array)
        self._ensure_buffers(n_in, n_out)
        inb, outb = self._in_buf, self._out_buf
        pack_input_into(inb, x_q, scale_x, self.array)  # sendchannel.transfer() flushes it (pynq/lib/dma.py)
        outb.invalidate()  # no stale dirty lines may be written back over the DMA's data
        regs = (("wmem", waddr), ("wlen", wlen), ("m", m), ("k", k), ("n", n), ("chunk", self.chunk),
                ("flags", FLAG_FP16))  # fmt: skip
        for name, v in regs:
            self.write_register(name, v)
        send, recv = self.dma.sendchannel, self.dma.recvchannel
        recv.transfer(outb, 0, 8 * n_out)
        send.transfer(inb, 0, 8 * n_in)
        self.write_register("ap_ctrl", AP_START)
        t_start = time.perf_counter()
        deadline = time.monotonic() + self.timeout_s
        what = f"GEMM M={m} K={k} N={n} ({n_in} words in, {n_out} out, {wlen} weight words)"
        while True:
            if getattr(send, "error", False) or getattr(recv, "error", False):
                self._broken = what
                raise PynqBackendError(
                    f"{what}: AXI DMA error (send error={bool(send.error)}, recv error={bool(recv.error)}): an "
                    f"internal error on S2MM usually means the kernel sent more words than the receive length "
                    f"(host/kernel word-count mismatch); reload the overlay"
                )
            if send.idle and recv.idle and self.read_register("ap_ctrl") & AP_IDLE:
                self.last_run_s.append(time.perf_counter() - t_start)
                break
            if time.monotonic() > deadline:
                raise self._timeout(what)
            if self.poll_interval_s:
                time.sleep(self.poll_interval_s)
        send.wait()  # already idle: returns at once; records transferred bytes
        recv.wait()  # already idle: invalidates the receive buffer (pynq/lib/dma.py)
        status, cycles, hw = self.read_register("status"), self.read_register("cycles"), self.read_register("hw_cycles")
        if status != ST_OK:
            bits = [t for b, t in STATUS_TEXT.items() if status & b]
            raise PynqBackendError(f"{what}: kernel status 0x{status:x} ({', '.join(bits) or 'unknown'})")
        got = int(getattr(recv, "transferred", 8 * n_out) or 8 * n_out)
        if got != 8 * n_out:
            raise PynqBackendError(f"{what}: received {got} bytes, expected {8 * n_out} (TLAST at the wrong word)")
        return unpack_output(outb[:n_out], m, n, self.array, self.chunk), cycles, hw

    # ---- backend protocol -------------------------------------------------------------------------------------
    def gemm(self, x_q: np.ndarray, scale_x: np.ndarray, op: GemmOperand) -> Tuple[np.ndarray, Optional[int]]:
        """fp16 ``epilogue(x_q @ op.w)`` on the FPGA and the schedule counter (summed over the runs it took)."""
        if self._broken:
            raise AcceleratorTimeoutError(f"overlay unusable after an earlier failure ({self._broken}): call reset()")
        w = op.w
        x_q = np.ascontiguousarray(x_q)
        if x_q.dtype != np.int8 or x_q.ndim != 2 or x_q.shape[1] != w.k:
            raise ValueError(f"gemm: expected int8[M, {w.k}], got {x_q.dtype}{list(x_q.shape)}")
        if tuple(w.tile) != self.array:
            raise ValueError(f"weights are tiled {w.tile}, the overlay array is {self.array}")
        if w.k > self.k_max or w.n > self.n_max:
            raise ValueError(f"K={w.k} / N={w.n} exceed the kernel limits K<={self.k_max}, N<={self.n_max}")
        m = int(x_q.shape[0])
        waddr, wlen = self._weights(op)
        y = np.empty((m, w.n), dtype=np.float16)
        self.last_cycles, self.last_hw_cycles, self.last_run_s = [], [], []
        rows = rows_per_call(m, w.k, w.n, self.array, self.chunk, self.dma_max_bytes)
        for r0 in range(0, m, rows):
            part, cyc, hw = self._run_once(x_q[r0 : r0 + rows], scale_x[r0 : r0 + rows], w.k, w.n, waddr, wlen)
            y[r0 : r0 + rows] = part
            self.last_cycles.append(cyc)
            self.last_hw_cycles.append(hw)
        return y, sum(self.last_cycles)

    def reset(self) -> None:
        """Recover after a time-out or DMA error: a new Overlay object (bitstream downloaded again, DMA drivers
        recreated and started); resident weight buffers stay valid."""
        self._open_overlay(download=True)
        self._broken = None
        self._probe()

    def close(self) -> None:
        bufs = [self._in_buf, self._out_buf, self._scratch] + [b for _, b in self._resident.values()]
        for buf in bufs:
            if buf is not None:
                buf.freebuffer()
        self._in_buf = self._out_buf = self._scratch = None
        self._resident.clear()
