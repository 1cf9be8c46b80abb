// sasp_gemm: weight-stationary R x C systolic-array GEMM on block-compressed int8 weights.
// The single declaration of the kernel interface (see hls/README.md and hls/interface.json).
#ifndef SASP_GEMM_H
#define SASP_GEMM_H

#include <ap_axi_sdata.h>
#include <ap_int.h>
#include <hls_stream.h>
#include <stdint.h>

// ---- synthesis-time parameters -------------------------------------------------------------
#ifndef SA_R
#define SA_R 8  // array rows (K direction)
#endif
#ifndef SA_C
#define SA_C SA_R  // array columns (N direction)
#endif
#ifndef SA_CHUNK
#define SA_CHUNK 96  // max activation rows held on chip (xc7z020: 96, xczu3eg: 192)
#endif
#ifndef SA_K_MAX
#define SA_K_MAX 1536  // max K (padded to R, rounded up to 8)
#endif
#ifndef SA_N_MAX
#define SA_N_MAX 4096  // max N (padded to C)
#endif

#define SASP_ID_VERSION 0x53410100u  // 'S''A' id, version 1.0
#define SASP_MAGIC 0x50534153u       // "SASP" (little-endian) in the header word
#define SASP_STREAM_VERSION 1u

// status register bits
#define SASP_ST_OK 0x1u          // run completed
#define SASP_ST_BAD_ARGS 0x2u    // m/k/n/chunk/flags out of range: one error word sent, input untouched
#define SASP_ST_BAD_HEADER 0x4u  // header word mismatch: one error word sent
#define SASP_ST_BAD_META 0x8u    // a kidx >= K_blocks or nt > K_blocks (results undefined)
#define SASP_ST_PROBE 0x10u      // flags.probe: registers written, no stream traffic

#define SASP_FLAG_PROBE 0x1u
#define SASP_ERROR_WORD 0xBAD0BAD0BAD0BAD0ull

// pipeline depths added to the cycle counter once per loop invocation (host/cycle_model.py)
#define SASP_D_LOAD 2
#define SASP_D_OUT 2
#define SASP_D_COMP (SA_R + SA_C)
#define SASP_STEP_MIN 4

// activation buffer banks: >= R bytes read and 8 bytes written per cycle without conflicts
#if SA_R >= 8
#define SASP_ACT_P SA_R
#else
#define SASP_ACT_P 8
#endif

typedef ap_axiu<64, 0, 0, 0> axis_word_t;

void sasp_gemm(hls::stream<axis_word_t>& in_stream, hls::stream<axis_word_t>& out_stream, ap_uint<32> m,
               ap_uint<32> k, ap_uint<32> n, ap_uint<32> chunk, ap_uint<32> flags, ap_uint<32>& id_version,
               ap_uint<32>& array_size, ap_uint<32>& cycles, ap_uint<32>& status);

#endif
