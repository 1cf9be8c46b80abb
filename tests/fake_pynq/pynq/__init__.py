"""TEST DOUBLE for CI only: a fake ``pynq`` (Overlay, allocate, AXI DMA channels, HLS kernel registers) whose
DMA feeds the raw stream words, and whose memory feeds the weight segment, to the C-simulated kernel
(host.emulator). Its register map comes from tests/fake_pynq/xsasp_gemm_hw.h (a fixture in the format of the
driver header Vitis HLS exports), never from hls/interface.json. See tests/fake_pynq/README.md."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

__version__ = "0.0-fake"
FAKE = True
ROOT = Path(__file__).resolve().parents[3]
HW_HEADER = Path(__file__).resolve().parents[1] / "xsasp_gemm_hw.h"


def header_offsets(path: Path = HW_HEADER) -> dict:
    """Register name -> offset from a Vitis-format driver header; ``<name>_ap_vld`` for the control words."""
    control = {"AP_CTRL": "ap_ctrl", "GIE": "GIE", "IER": "IER", "ISR": "ISR"}
    out = {}
    for full, off in re.findall(r"#define\s+XSASP_GEMM_CONTROL_ADDR_(\w+)\s+0x([0-9a-f]+)", path.read_text()):
        if full in control:
            out[control[full]] = int(off, 16)
        elif full.endswith("_DATA"):
            out[full[:-5].lower()] = int(off, 16)
        elif full.endswith("_CTRL"):
            out[full[:-5].lower() + "_ap_vld"] = int(off, 16)
    return out


@dataclass
class FakeConfig:
    array: int = 8
    chunk: int = 16
    length_width: int = 26
    mode: str = "normal"  # normal | hang | drop_last_word | extra_word
    id_version: Optional[int] = None  # override the kernel's ID register
    array_size: Optional[int] = None  # override the array_size register
    hwh_offsets: Optional[dict] = None  # override register offsets in ip_dict (as if the .hwh said so)
    hwh_registers: bool = True  # False: the .hwh names no registers (the backend cannot cross-check)


CONFIG = FakeConfig()
STATS = {"allocate": 0, "overlays": 0, "runs": 0, "flush": 0, "invalidate": 0, "writes": [], "cacheable": []}
_MEMORY = {}  # physical address -> buffer: what the kernel's m_axi port reads (the flushed device copy)
_NEXT_ADDR = [0x1000_0000]


def reset_stats() -> None:
    STATS.update({"allocate": 0, "overlays": 0, "runs": 0, "flush": 0, "invalidate": 0, "writes": [], "cacheable": []})


# ---- buffers -----------------------------------------------------------------------------------------------
class PynqBuffer(np.ndarray):
    """Host view + separate device copy: flush() host -> device, invalidate() device -> host."""

    def __array_finalize__(self, obj):
        self._device = getattr(obj, "_device", None)
        self._base_buf = getattr(obj, "_base_buf", None)

    def flush(self):
        STATS["flush"] += 1
        root = self._base_buf if self._base_buf is not None else self
        root._device[...] = np.asarray(root)

    def invalidate(self):
        STATS["invalidate"] += 1
        root = self._base_buf if self._base_buf is not None else self
        np.asarray(root)[...] = root._device

    def freebuffer(self):
        _MEMORY.pop(getattr(self, "_addr", None), None)

    @property
    def physical_address(self):
        root = self._base_buf if self._base_buf is not None else self
        return root._addr

    def close(self):
        pass


def allocate(shape, dtype="u4", target=None, cacheable=False, **kwargs):
    STATS["allocate"] += 1
    STATS["cacheable"].append(bool(cacheable))
    host = np.zeros(shape, dtype=dtype)
    buf = host.view(PynqBuffer)
    buf._device = np.zeros(shape, dtype=dtype)
    buf._base_buf = buf
    buf._addr = _NEXT_ADDR[0]
    _NEXT_ADDR[0] += (buf.nbytes + 0xFFF) & ~0xFFF
    _MEMORY[buf._addr] = buf
    return buf


# ---- DMA ---------------------------------------------------------------------------------------------------
class _Channel:
    def __init__(self, dma, tx: bool, max_size: int):
        self._dma, self._tx, self._max_size = dma, tx, max_size
        self.transferred = 0
        self.buffer = None
        self.nbytes = 0
        self.pending = False
        self.error = False
        self.started = True  # pynq starts a channel when its driver is created; a bitstream download halts it

    @property
    def running(self):
        return self.started

    @property
    def idle(self):
        return not self.pending

    def transfer(self, array, start=0, nbytes=0):
        if not self.started:
            raise RuntimeError("DMA channel not started")
        if self.pending:
            raise RuntimeError("DMA channel not idle")
        if nbytes == 0:
            nbytes = array.nbytes - start
        if nbytes > self._max_size:
            raise ValueError(f"Transfer size is {nbytes} bytes, over the maximum DMA buffer size {self._max_size}")
        if self._tx:
            array.flush()  # pynq flushes send buffers in transfer()
        self.buffer, self.nbytes, self.pending, self.transferred = array, nbytes, True, 0
        self._dma._kernel._maybe_run()

    def wait(self):
        if self.pending:
            raise RuntimeError("fake DMA: wait() on a channel that never completes would block forever")
        if not self._tx and self.buffer is not None:
            self.buffer.invalidate()  # pynq invalidates receive buffers in wait()


class AxiDMA:
    def __init__(self, kernel, length_width: int):
        self.buffer_max_size = (1 << length_width) - 1
        self._kernel = kernel
        self.sendchannel = _Channel(self, True, self.buffer_max_size)
        self.recvchannel = _Channel(self, False, self.buffer_max_size)


# ---- kernel ------------------------------------------------------------------------------------------------
class SaspKernel:
    """AXI-Lite register file of sasp_gemm at the offsets of the driver-header fixture, backed by the C-sim kernel."""

    def __init__(self, emu):
        self.off = header_offsets()
        self.regs = {v: 0 for v in self.off.values()}
        self.regs[self.off["ap_ctrl"]] = 0x4  # ap_idle after reset
        self.emu = emu
        self.started = False
        self.dma: Optional[AxiDMA] = None

    def read(self, offset=0):
        return self.regs.get(offset, 0)

    def write(self, offset, value):
        STATS["writes"].append((offset, value))
        if offset == self.off["ap_ctrl"]:
            if value & 0x1:
                self._start()
            return
        self.regs[offset] = value & 0xFFFFFFFF

    def _reg(self, name):
        return self.regs[self.off[name]]

    def _set(self, name, v):
        self.regs[self.off[name]] = v & 0xFFFFFFFF

    def _start(self):
        self.regs[self.off["ap_ctrl"]] = 0x0  # busy
        flags = self._reg("flags")
        if flags == 0x1:  # probe: registers only, no stream traffic
            self._set("id_version", CONFIG.id_version if CONFIG.id_version is not None else self.emu.id_version)
            r, c = self.emu.tile
            arr = r | (c << 8) | (self.emu.chunk << 16)
            self._set("array_size", CONFIG.array_size if CONFIG.array_size is not None else arr)
            self._set("cycles", 0)
            self._set("hw_cycles", 0)
            self._set("status", 0x10)
            self.regs[self.off["ap_ctrl"]] = 0x4 | 0x2
            return
        self.started = True
        self._maybe_run()

    def _maybe_run(self):
        send, recv = self.dma.sendchannel, self.dma.recvchannel
        if not (self.started and send.pending and recv.pending) or CONFIG.mode == "hang":
            return
        self.started = False
        STATS["runs"] += 1
        assert self._reg("chunk") == self.emu.chunk, (
            f"fake pynq: the emulator runs chunk {self.emu.chunk}, the backend wrote {self._reg('chunk')}"
        )
        words = np.asarray(send.buffer._device).view(np.uint64).reshape(-1)[: send.nbytes // 8]
        if CONFIG.mode == "drop_last_word":
            words = words[:-1]
        elif CONFIG.mode == "extra_word":
            words = np.concatenate([words, np.zeros(1, np.uint64)])
        cap = recv.nbytes // 8
        wbuf = _MEMORY.get(self._reg("wmem"))
        wlen = self._reg("wlen")
        if wbuf is None or wlen > wbuf._device.nbytes // 8:  # the AXI master would read unmapped memory
            recv.error = True
            return
        seg = np.asarray(wbuf._device).view(np.uint64).reshape(-1)
        res = self.emu.run_words(
            words, seg, self._reg("m"), self._reg("k"), self._reg("n"), cap, flags=self._reg("flags"), wlen=wlen
        )
        for name in ("id_version", "array_size", "cycles", "hw_cycles", "status"):
            self._set(name, res.regs[name])
        out, rc, consumed, produced, first_last = res.out, res.rc, res.consumed, res.produced, res.tlast
        if rc == 1:  # kernel waits for input that never comes: it never finishes, S2MM never sees TLAST
            send.pending = False
            return
        if produced > cap:  # more words than the receive length: S2MM internal error, kernel blocks
            recv.error = True
            return
        dev = recv.buffer._device.view(np.uint64).reshape(-1)
        n = produced if first_last < 0 else first_last + 1
        dev[:n] = out[:n]
        if first_last >= 0:
            recv.transferred, recv.pending = 8 * n, False
        self.regs[self.off["ap_ctrl"]] = 0x4 | 0x2  # idle + done
        if consumed >= len(words):
            send.transferred, send.pending = send.nbytes, False
        # else: the kernel stopped reading, MM2S keeps waiting to push the rest


class Overlay:
    def __init__(self, bitfile_name, download=True, **kwargs):
        from host.emulator import EmulatedKernel

        STATS["overlays"] += 1
        self.bitfile_name = str(bitfile_name)
        vlnv = "sasp.edge:hls:sasp_gemm:1.0"  # the IP's VLNV as hls/scripts/export_ip.tcl sets it
        self._emu = EmulatedKernel(CONFIG.array, CONFIG.chunk)
        self.ip_dict = {
            "axi_dma": {
                "type": "xilinx.com:ip:axi_dma:7.1",
                "parameters": {"c_sg_length_width": str(CONFIG.length_width), "c_include_sg": "0"},
            },
            "sasp_gemm": {
                "type": vlnv,
                "registers": {name: {"address_offset": off, "size": 32} for name, off in header_offsets().items()}
                if CONFIG.hwh_registers
                else {},
            },
        }
        for name, off in (CONFIG.hwh_offsets or {}).items():
            self.ip_dict["sasp_gemm"]["registers"][name]["address_offset"] = hex(off)

        self.sasp_gemm = SaspKernel(self._emu)
        self.axi_dma = AxiDMA(self.sasp_gemm, CONFIG.length_width)
        self.sasp_gemm.dma = self.axi_dma
        self.downloads = 0
        if download:
            self.download()

    def download(self):
        """Load the bitstream again: the kernel resets; the existing DMA driver objects stay but come back
        halted (pynq starts a channel only when its driver is created)."""
        self.downloads += 1
        self.sasp_gemm.regs = {v: 0 for v in self.sasp_gemm.off.values()}
        self.sasp_gemm.regs[self.sasp_gemm.off["ap_ctrl"]] = 0x4
        if self.downloads > 1:
            for ch in (self.axi_dma.sendchannel, self.axi_dma.recvchannel):
                ch.started = False
                ch.pending = False


def get_rails():
    return {}
