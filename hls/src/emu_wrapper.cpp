// Thin C ABI around sasp_gemm for host/emulator.py (ctypes). Not part of the synthesized kernel.
#include <stdint.h>

#include <exception>

#include "sasp_gemm.h"

extern "C" {

enum {
    EMU_OK = 0,
    EMU_STALL = 1,          // kernel read an empty input stream (board: DMA never completes)
    EMU_OUT_OVERFLOW = 2,   // kernel wrote more words than the host expects
    EMU_IN_LEFTOVER = 3,    // kernel finished with input words unread
    EMU_TLAST = 4,          // TLAST missing on the last word or set early
    EMU_EXCEPTION = 5,
    EMU_KERNEL_STATUS = 6,  // kernel reported an error in its status register
};

int sasp_emu_config(uint32_t* cfg) {
    cfg[0] = SA_R;
    cfg[1] = SA_C;
    cfg[2] = SA_CHUNK;
    cfg[3] = SA_K_MAX;
    cfg[4] = SA_N_MAX;
    cfg[5] = SASP_ID_VERSION;
    return 0;
}

// regs[5] = id_version, array_size, cycles, hw_cycles, status; counts[3] = input words consumed,
// output words produced, index of the first word with TLAST (-1 if none). wmem: the weight segment
// (the kernel's m_axi memory), wlen words.
int sasp_emu_run(const uint64_t* in, int64_t n_in, uint64_t* out, int64_t out_cap, const uint64_t* wmem,
                 uint32_t wlen, uint32_t m, uint32_t k, uint32_t n, uint32_t chunk, uint32_t flags, uint32_t* regs,
                 int64_t* counts) {
    hls::stream<axis_word_t> sin("in_stream"), sout("out_stream");
    for (int64_t i = 0; i < n_in; ++i) {
        axis_word_t w;
        w.data = in[i];
        w.keep = 0xFF;
        w.strb = 0xFF;
        w.last = (i == n_in - 1) ? 1 : 0;
        sin.write(w);
    }
    ap_uint<32> idv = 0, arr = 0, cyc = 0, hw = 0, st = 0;
    int rc = EMU_OK;
    try {
        sasp_gemm(sin, sout, reinterpret_cast<const ap_uint<64>*>(wmem), wlen, m, k, n, chunk, flags, idv, arr, cyc,
                  hw, st);
    } catch (const hls::stream_underrun&) {
        rc = EMU_STALL;
    } catch (const std::exception&) {
        rc = EMU_EXCEPTION;
    }
    regs[0] = (uint32_t)idv;
    regs[1] = (uint32_t)arr;
    regs[2] = (uint32_t)cyc;
    regs[3] = (uint32_t)hw;
    regs[4] = (uint32_t)st;
    counts[0] = (int64_t)sin.reads();
    int64_t produced = 0, first_last = -1;
    while (!sout.empty()) {
        axis_word_t w = sout.read();
        if (produced < out_cap) out[produced] = (uint64_t)w.data;
        if (w.last && first_last < 0) first_last = produced;
        ++produced;
    }
    counts[1] = produced;
    counts[2] = first_last;
    if (rc != EMU_OK) return rc;
    if ((uint32_t)st != SASP_ST_OK && (uint32_t)st != SASP_ST_PROBE) return EMU_KERNEL_STATUS;
    if (produced > out_cap) return EMU_OUT_OVERFLOW;
    if (counts[0] != n_in) return EMU_IN_LEFTOVER;
    if (produced > 0 && first_last != produced - 1) return EMU_TLAST;
    return EMU_OK;
}

// The kernel's fp32 -> fp16 conversion, for the host's bit-exactness test against numpy.
void sasp_emu_f16(const float* x, uint16_t* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = sasp_f32_to_f16(x[i]);
}
}
