// sasp_gemm v2: R x C int8 GEMM on block-compressed weights with a fused dequantization epilogue.
// The single declaration of the kernel interface (see hls/README.md; hls/interface.json is derived from it).
#ifndef SASP_GEMM_H
#define SASP_GEMM_H

#include <ap_axi_sdata.h>
#include <ap_int.h>
#include <hls_stream.h>
#include <stdint.h>

// ---- synthesis-time parameters -------------------------------------------------------------
#ifndef SA_R
#define SA_R 8  // array rows (K direction): a multiple of 8
#endif
#ifndef SA_C
#define SA_C SA_R  // array columns (N direction): a multiple of 4
#endif
#ifndef SA_CHUNK
#define SA_CHUNK 96  // max activation rows held on chip; each board's build: kernel_chunk in host/data/boards.json
#endif
#ifndef SA_DSP_PACK
#define SA_DSP_PACK 0  // 1: two int8 MACs per DSP48E2 (Ultra96-V2 builds only; WP486 packing)
#endif
#ifndef SA_K_MAX
#define SA_K_MAX 1536  // max K (padded to a multiple of R)
#endif
#ifndef SA_N_MAX
#define SA_N_MAX 4096  // max N (padded to C)
#endif

#define SASP_ID_VERSION 0x53410200u  // 'S''A' id, version 2.0
#define SASP_MAGIC 0x50534153u       // "SASP" (little-endian) in the header word
#define SASP_STREAM_VERSION 2u

// status register bits
#define SASP_ST_OK 0x1u          // run completed
#define SASP_ST_BAD_ARGS 0x2u    // m/k/n/chunk/flags out of range: one error word sent, input untouched
#define SASP_ST_BAD_HEADER 0x4u  // header word mismatch: one error word sent
#define SASP_ST_BAD_META 0x8u    // a kidx >= K_blocks or nt > K_blocks in the weight segment (clamped)
#define SASP_ST_PROBE 0x10u      // flags.probe: registers written, no stream or memory traffic

// flags register bits
#define SASP_FLAG_PROBE 0x1u  // write id_version / array_size / status only
#define SASP_FLAG_FP16 0x2u   // fused epilogue: fp16(acc * sx[row] * sw[col] + bias[col]); else raw int32
#define SASP_ERROR_WORD 0xBAD0BAD0BAD0BAD0ull

// ---- schedule constants (host/cycle_model.py reads them from this file) ------------------------
// STEP_MIN: fewest iterations between two accumulations into the same accumulator row; the DEPENDENCE
//           pragma on the accumulator tells Vitis this distance, so a longer read-modify-write raises the
//           II (reported by csynth and failed by `make synth`) instead of producing stale sums.
#define SASP_STEP_MIN 8
#define SASP_D_ACT 2     // act_load pipeline depth (stream read -> buffer write)
#define SASP_D_COMP 12   // compute pipeline depth (buffer read, multiply, adder tree, accumulate, FIFO write)
#define SASP_D_DRAIN 16  // drain pipeline depth (FIFO read, int->float, 2 fmul, fadd, ->fp16, stream write)

typedef ap_axiu<64, 0, 0, 0> axis_word_t;

void sasp_gemm(hls::stream<axis_word_t>& in_stream, hls::stream<axis_word_t>& out_stream, const ap_uint<64>* wmem,
               ap_uint<32> wlen, ap_uint<32> m, ap_uint<32> k, ap_uint<32> n, ap_uint<32> chunk, ap_uint<32> flags,
               ap_uint<32>& id_version, ap_uint<32>& array_size, ap_uint<32>& cycles, ap_uint<32>& hw_cycles,
               ap_uint<32>& status);

// fp32 -> fp16 bits, round to nearest even, overflow to infinity (numpy's float32.astype(float16))
uint16_t sasp_f32_to_f16(float f);

#endif
