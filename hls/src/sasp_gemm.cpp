// sasp_gemm v2: R x C int8 GEMM on block-compressed weights, fused fp16 dequantization epilogue.
// Stream protocol, schedule and the reasoning behind every pragma: hls/README.md.
//
// Structure (DATAFLOW, UG1399 "Dataflow"): five processes joined only by FIFOs and one
// stream_of_blocks, so no memory is shared between processes and each memory has at most one
// reader and one writer per cycle:
//
//   in_stream --> act_load --(activation chunks, ping-pong)--> compute --(accumulator rows)--> drain --> out_stream
//                    \--(row scales)------------------------------------------------------------/
//   wmem (m_axi) --> w_load --(tiles)--> compute        w_load --(column scales, biases)--> drain
//                                                                   drain --(done)--> hw_count
//
// The array is a broadcast multiply block with one adder tree per column (not a chain of registered
// neighbours): every iteration one activation K-block (R int8) meets the R x C weight tile held in
// registers, R*C multipliers feed C adder trees, and the C sums accumulate into one accumulator row.
// Vitis pipelines the trees; one int8 x int8 product maps to one DSP48 (or LUTs), and no operand
// travels farther than one pipeline register, which is what sets the clock of a large array.
#include "sasp_gemm.h"

#include <hls_streamofblocks.h>

namespace {

const int R = SA_R;
const int C = SA_C;
const int R8 = R / 8;        // 64-bit stream words per activation K-block
const int KB_MAX = SA_K_MAX / R;
const int WW = R * C / 8;    // 64-bit words per weight tile
const int PW = C;            // epilogue parameter words per column block: scale | bias << 32 per column

static_assert(R % 8 == 0 && R >= 8, "SA_R must be a multiple of 8");
static_assert(C % 4 == 0 && C >= 8, "SA_C must be a multiple of 4, at least 8");
static_assert(SA_K_MAX % R == 0, "SA_K_MAX must be a multiple of SA_R");
static_assert(SA_CHUNK >= 1 && SA_CHUNK < 65536, "SA_CHUNK out of range");

typedef ap_uint<8 * R> kblk_t;                 // one K-block of one activation row: byte r = x[r]
typedef kblk_t act_blk_t[SA_CHUNK][KB_MAX];    // one chunk of activations
// FIFO payloads: structs in an hls::stream are packed into one FIFO word (UG1399, "Structs": aggregated)
struct row_t {  // one accumulator row
    int32_t v[C];
};

struct tile_t {  // one R x C weight tile
    int8_t w[R][C];
};

struct par_t {  // epilogue parameters of one column block
    float sw[C];
    float bias[C];
};

struct tok_t {  // w_load -> compute: a block head (nt) or one tile (kidx, weights)
    tile_t t;
    ap_uint<16> kidx;
    ap_uint<16> nt;
    bool head;
};

enum WState { W_HEAD = 0, W_KIDX = 1, W_PARAM = 2, W_TILE = 3 };
enum CPhase { P_HEAD = 0, P_LEAD = 1, P_STEP = 2, P_ZERO = 3, P_TAIL = 4, P_CHUNK_TAIL = 5 };

inline float bits_to_float(uint32_t u) {
    union {
        uint32_t u;
        float f;
    } v;
    v.u = u;
    return v.f;
}

inline int cdiv(int a, int b) { return (a + b - 1) / b; }

// ---- act_load: header-less activation rows from the AXI4-Stream into one chunk buffer ----------------
// Row layout: word 0 = float32 row scale (low 32 bits), words 1..KB*R8 = int8 activations.
void act_load(hls::stream<axis_word_t>& in, hls::stream_of_blocks<act_blk_t>& acts,
              hls::stream<ap_uint<32> >& sx_s, uint32_t M, int CH, int KB) {
    const int row_words = 1 + KB * R8;
act_chunks:
    for (uint32_t r0 = 0; r0 < M; r0 += CH) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 32
        const int mr = (M - r0) < (uint32_t)CH ? (int)(M - r0) : CH;
        hls::write_lock<act_blk_t> a(acts);
        int row = 0, w = 0, kb = 0, part = 0;
        kblk_t sh = 0;
    act_words:
        for (int i = 0; i < mr * row_words; ++i) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 18528
            const ap_uint<64> d = in.read().data;
            if (w == 0) {
                sx_s.write(d.range(31, 0));
            } else {
                for (int p = 0; p < R8; ++p) {
#pragma HLS UNROLL
                    if (p == part) sh.range(64 * p + 63, 64 * p) = d;
                }
                if (part == R8 - 1) {
                    a[row][kb] = sh;  // one buffer write per cycle at most
                    ++kb;
                    part = 0;
                } else {
                    ++part;
                }
            }
            if (++w == row_words) {
                w = 0;
                kb = 0;
                ++row;
            }
        }
    }
}

// ---- w_load: the weight segment from DDR (m_axi), re-read once per chunk ----------------------------
// Per column block: [nt] [ceil(nt/4) words of 4 x 16-bit kidx] [C words scale|bias] [nt tiles x WW words].
// The parse always emits exactly one head, nt tiles and one parameter word per column block, whatever
// the data (nt and kidx are clamped, a short segment is completed with zeros): a corrupt segment gives
// wrong numbers and the BAD_META status, never a hang.
struct WParser {  // scalar parse state; the arrays it fills are separate locals of w_load (partitioned there)
    int state, blk, cnt, nt, t, wpos;
    bool err;
};

inline void w_step(WParser& P, const ap_uint<64> d, int KB, ap_uint<16> kl[KB_MAX], int8_t tw[R][C], float psw[C],
                   float pbias[C], hls::stream<tok_t>& toks, hls::stream<par_t>& pars) {
#pragma HLS INLINE
    if (P.state == W_HEAD) {
        int nt = (int)d.range(15, 0);
        if (nt > KB) {
            P.err = true;
            nt = KB;
        }
        P.nt = nt;
        tok_t h;  // a head carries no weights
        for (int r = 0; r < R; ++r) {
#pragma HLS UNROLL
            for (int c = 0; c < C; ++c) {
#pragma HLS UNROLL
                h.t.w[r][c] = 0;
            }
        }
        h.kidx = 0;
        h.nt = nt;
        h.head = true;
        toks.write(h);
        P.cnt = 0;
        P.t = 0;
        P.wpos = 0;
        P.state = nt > 0 ? W_KIDX : W_PARAM;
    } else if (P.state == W_KIDX) {
        for (int q = 0; q < 4; ++q) {
#pragma HLS UNROLL
            ap_uint<16> v = d.range(16 * q + 15, 16 * q);
            const int j = 4 * P.cnt + q;
            if (j < P.nt) {
                if ((int)v >= KB) {
                    P.err = true;
                    v = 0;
                }
                kl[j] = v;  // bank j % 4 == q: one write per bank per cycle
            }
        }
        ++P.cnt;
        if (4 * P.cnt >= P.nt) {
            P.cnt = 0;
            P.state = W_PARAM;
        }
    } else if (P.state == W_PARAM) {
        for (int p = 0; p < PW; ++p) {
#pragma HLS UNROLL
            if (p == P.cnt) {
                psw[p] = bits_to_float(d.range(31, 0));
                pbias[p] = bits_to_float(d.range(63, 32));
            }
        }
        if (++P.cnt == PW) {
            par_t par;
            for (int c = 0; c < C; ++c) {
#pragma HLS UNROLL
                par.sw[c] = psw[c];
                par.bias[c] = pbias[c];
            }
            pars.write(par);
            P.cnt = 0;
            if (P.nt > 0) {
                P.state = W_TILE;
            } else {
                P.state = W_HEAD;
                ++P.blk;
            }
        }
    } else {
        for (int p = 0; p < WW; ++p) {
#pragma HLS UNROLL
            if (p == P.wpos) {
                for (int j = 0; j < 8; ++j) {  // byte 8p + j of the tile = W[(8p + j) / C][(8p + j) % C]
#pragma HLS UNROLL
                    const int pos = 8 * p + j;
                    tw[pos / C][pos % C] = (int8_t)(uint8_t)d.range(8 * j + 7, 8 * j);
                }
            }
        }
        if (++P.wpos == WW) {
            tok_t tk;
            for (int r = 0; r < R; ++r) {
#pragma HLS UNROLL
                for (int c = 0; c < C; ++c) {
#pragma HLS UNROLL
                    tk.t.w[r][c] = tw[r][c];
                }
            }
            tk.kidx = kl[P.t];  // one read per cycle (4 banks, muxed)
            tk.nt = P.nt;
            tk.head = false;
            toks.write(tk);
            P.wpos = 0;
            if (++P.t == P.nt) {
                P.state = W_HEAD;
                ++P.blk;
            }
        }
    }
}

void w_load(const ap_uint<64>* wmem, hls::stream<tok_t>& toks, hls::stream<par_t>& pars,
            hls::stream<ap_uint<1> >& err_s, uint32_t wlen, uint32_t M, int CH, int KB, int NB) {
    ap_uint<16> kl[KB_MAX];  // kidx of the current block
#pragma HLS ARRAY_PARTITION variable = kl cyclic factor = 4 dim = 1
    int8_t tw[R][C];  // the tile being assembled
#pragma HLS ARRAY_PARTITION variable = tw complete dim = 0
    float psw[C], pbias[C];  // the block's epilogue parameters being assembled
#pragma HLS ARRAY_PARTITION variable = psw complete dim = 1
#pragma HLS ARRAY_PARTITION variable = pbias complete dim = 1
    WParser P;
    P.err = false;
w_chunks:
    for (uint32_t r0 = 0; r0 < M; r0 += CH) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 32
        P.state = W_HEAD;
        P.blk = P.cnt = P.nt = P.t = P.wpos = 0;
    w_words:  // a counted loop over sequential addresses: Vitis infers AXI bursts (UG1399, "Burst Transfers")
        for (uint32_t i = 0; i < wlen; ++i) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 815616
            const ap_uint<64> d = wmem[i];
            if (P.blk < NB) {
                w_step(P, d, KB, kl, tw, psw, pbias, toks, pars);
            } else {
                P.err = true;  // words beyond the last column block
            }
        }
    w_complete:  // only for a short (corrupt) segment: finish the blocks with zero words
        while (P.blk < NB) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 0 max = 1
            P.err = true;
            w_step(P, 0, KB, kl, tw, psw, pbias, toks, pars);
        }
    }
    err_s.write(P.err ? 1 : 0);
}

// ---- the multiply block: one dot product of R int8 pairs per column ----------------------------------
#if SA_DSP_PACK
// Two int8 multiplies per DSP48E2 sharing the activation operand (Xilinx WP486): the 27-bit pre-adder forms
// w1 * 2^18 + w0, the 27x18 multiplier multiplies it by x, the 48-bit accumulator sums the products of up to
// PACK_TERMS rows. The low 18 bits then hold sum(w0 * x) exactly while |sum(w0 * x)| < 2^17, i.e. for at most
// 7 products of magnitude <= 2^14 (8 products of -128 * -128 would reach 2^17), and the high part is
// (P >> 18) + (sign of the low part). Not for DSP48E1 (Zynq-7000): its pre-adder is 25 bits wide.
const int PACK_TERMS = 7;
static_assert(C % 2 == 0, "packing pairs columns");

inline void column_dots(const int8_t xv[R], const int8_t w[R][C], int32_t dot[C]) {
#pragma HLS INLINE
    for (int c = 0; c < C; c += 2) {
#pragma HLS UNROLL
        int32_t lo_sum = 0, hi_sum = 0;
        for (int g = 0; g < R; g += PACK_TERMS) {
#pragma HLS UNROLL
            ap_int<48> p = 0;
            for (int r = g; r < g + PACK_TERMS && r < R; ++r) {
#pragma HLS UNROLL
                const ap_int<27> packed = ((ap_int<27>)w[r][c + 1] << 18) + (ap_int<27>)w[r][c];
                p += packed * (ap_int<18>)xv[r];
            }
            const ap_int<18> lo = p.range(17, 0);
            const ap_int<30> hi = (ap_int<30>)(p >> 18) + (lo < 0 ? 1 : 0);
            lo_sum += (int32_t)lo;
            hi_sum += (int32_t)hi;
        }
        dot[c] = lo_sum;
        dot[c + 1] = hi_sum;
    }
}
#else
inline void column_dots(const int8_t xv[R], const int8_t w[R][C], int32_t dot[C]) {
#pragma HLS INLINE
    for (int c = 0; c < C; ++c) {
#pragma HLS UNROLL
        dot[c] = 0;
    }
    for (int r = 0; r < R; ++r) {
#pragma HLS UNROLL
        for (int c = 0; c < C; ++c) {
#pragma HLS UNROLL
            dot[c] += (int32_t)xv[r] * (int32_t)w[r][c];
        }
    }
}
#endif

// ---- compute: one chunk at a time, one iteration per cycle, paced so that no other process stalls it ----
// Per column block b with nt tiles: iteration 0 reads the head; the lead (H_b = 1 + ceil(nt/4) + C words,
// plus WW for the first tile) is the time w_load needs to deliver the head, kidx, parameters and tile 0;
// then nt steps of S = max(rows, STEP_MIN, WW) iterations (row i of step t accumulates tile t; the next
// tile arrives within S >= WW cycles); an empty block pushes `rows` zero rows instead. The block lasts at
// least rows*OW + D_DRAIN iterations so the drain keeps up, and a chunk lasts at least the next chunk's
// activation load. Every wait is thus counted here, which is the schedule counter (host/cycle_model.py).
void compute(hls::stream_of_blocks<act_blk_t>& acts, hls::stream<tok_t>& toks, hls::stream<row_t>& rows_s,
             hls::stream<ap_uint<32> >& sched_s, uint32_t M, int CH, int KB, int NB, int OW) {
    int32_t acc[SA_CHUNK][C];
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 2
    // acc[i][c] is read (step t+1) S >= SASP_STEP_MIN iterations after it was written (step t): the true
    // distance, so Vitis raises the II rather than read a stale row if the read-modify-write is longer.
#pragma HLS DEPENDENCE variable = acc type = inter direction = RAW distance = SASP_STEP_MIN dependent = true
    int8_t wreg[R][C];  // the tile being computed, in registers
#pragma HLS ARRAY_PARTITION variable = wreg complete dim = 0
    row_t zero_row;
    for (int c = 0; c < C; ++c) {
#pragma HLS UNROLL
        zero_row.v[c] = 0;
    }
    const int row_words = 1 + KB * R8;
    const int mr0 = M < (uint32_t)CH ? (int)M : CH;
    uint32_t cyc = 1 + (uint32_t)mr0 * row_words + SASP_D_ACT;  // header + chunk 0's exposed activation load
    int mr_last = mr0;
comp_chunks:
    for (uint32_t r0 = 0; r0 < M; r0 += CH) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 32
        const int mr = (M - r0) < (uint32_t)CH ? (int)(M - r0) : CH;
        const uint32_t r1 = r0 + CH;
        const int mr_next = r1 >= M ? 0 : ((M - r1) < (uint32_t)CH ? (int)(M - r1) : CH);
        const int S = mr > SASP_STEP_MIN ? (mr > WW ? mr : WW) : (SASP_STEP_MIN > WW ? SASP_STEP_MIN : WW);
        const uint32_t DR = (uint32_t)mr * OW + SASP_D_DRAIN;
        const uint32_t A_next = mr_next ? (uint32_t)mr_next * row_words + SASP_D_ACT : 0;
        mr_last = mr;
        hls::read_lock<act_blk_t> a(acts);
        int b = 0, phase = P_HEAD, nt = 0, t = 0, i = 0;
        uint32_t lead = 0, el = 0, cel = 0;
        ap_uint<16> kcur = 0;
        bool done = false;
    walk:
        while (!done) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 1000000
            ++el;
            ++cel;
            if (phase == P_HEAD) {
                const tok_t h = toks.read();
                nt = h.nt;
                lead = 1 + cdiv(nt, 4) + PW + (nt > 0 ? WW : 0);
                t = 0;
                i = 0;
                phase = P_LEAD;
            } else if (phase == P_LEAD) {
                if (el == lead) phase = nt > 0 ? P_STEP : P_ZERO;
            } else if (phase == P_STEP) {
                if (i == 0) {
                    const tok_t tk = toks.read();
                    kcur = tk.kidx;
                    for (int r = 0; r < R; ++r) {
#pragma HLS UNROLL
                        for (int c = 0; c < C; ++c) {
#pragma HLS UNROLL
                            wreg[r][c] = tk.t.w[r][c];
                        }
                    }
                }
                if (i < mr) {
                    const kblk_t x = a[i][kcur];
                    int8_t xv[R];
#pragma HLS ARRAY_PARTITION variable = xv complete dim = 1
                    for (int q = 0; q < R8; ++q) {  // bytes of each 64-bit part (wiring only)
#pragma HLS UNROLL
                        const uint64_t part = x.range(64 * q + 63, 64 * q).to_uint64();
                        for (int j = 0; j < 8; ++j) {
#pragma HLS UNROLL
                            xv[8 * q + j] = (int8_t)(uint8_t)(part >> (8 * j));
                        }
                    }
                    int32_t dot[C];
#pragma HLS ARRAY_PARTITION variable = dot complete dim = 1
                    column_dots(xv, wreg, dot);
                    for (int c = 0; c < C; ++c) {
#pragma HLS UNROLL
                        acc[i][c] = (t > 0 ? acc[i][c] : 0) + dot[c];
                    }
                    if (t == nt - 1) {
                        row_t out;
                        for (int c = 0; c < C; ++c) {
#pragma HLS UNROLL
                            out.v[c] = acc[i][c];
                        }
                        rows_s.write(out);
                    }
                }
                if (++i == S) {
                    i = 0;
                    if (++t == nt) phase = P_TAIL;
                }
            } else if (phase == P_ZERO) {
                rows_s.write(zero_row);
                if (++i == mr) phase = P_TAIL;
            }
            if (phase == P_TAIL && el >= DR) {  // block done: the next head, or the end of the chunk
                el = 0;
                phase = ++b < NB ? P_HEAD : P_CHUNK_TAIL;
            }
            if (phase == P_CHUNK_TAIL && cel >= A_next) done = true;  // the next chunk's activations are in
        }
        cyc += cel + SASP_D_COMP;
    }
    cyc += (uint32_t)mr_last * OW + SASP_D_DRAIN;  // the last block's output after the compute ends
    sched_s.write(cyc);
}

// ---- drain: epilogue and output stream, one output word per cycle, one loop for the whole call ----------
void drain(hls::stream<row_t>& rows_s, hls::stream<par_t>& pars, hls::stream<ap_uint<32> >& sx_s,
           hls::stream<axis_word_t>& out, hls::stream<ap_uint<1> >& done_s, uint32_t M, int CH, int NB, bool fp16) {
    float sxl[SA_CHUNK];
    // sxl[i] is written in column block 0 of a chunk and read in blocks 1.. of the same chunk, at least
    // OW >= C/4 >= 2 iterations later (row i of block 1 comes rows*OW iterations after row i of block 0).
#pragma HLS DEPENDENCE variable = sxl type = inter direction = RAW distance = 2 dependent = true
    const int OW = fp16 ? C / 4 : C / 2;
    const uint64_t total = (uint64_t)M * NB * OW;
    uint32_t r0 = 0;
    int mr = M < (uint32_t)CH ? (int)M : CH;
    int b = 0, i = 0, q = 0;
    int32_t rowv[C];  // the row being drained
    float psw[C], pbias[C];  // its column block's parameters
#pragma HLS ARRAY_PARTITION variable = rowv complete dim = 1
#pragma HLS ARRAY_PARTITION variable = psw complete dim = 1
#pragma HLS ARRAY_PARTITION variable = pbias complete dim = 1
    for (int c = 0; c < C; ++c) {
#pragma HLS UNROLL
        rowv[c] = 0;
        psw[c] = 0.0f;
        pbias[c] = 0.0f;
    }
    float sx = 0.0f;
drain_words:
    for (uint64_t o = 0; o < total; ++o) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 6144000
        if (i == 0 && q == 0) {
            const par_t par = pars.read();
            for (int c = 0; c < C; ++c) {
#pragma HLS UNROLL
                psw[c] = par.sw[c];
                pbias[c] = par.bias[c];
            }
        }
        if (q == 0) {
            const row_t row = rows_s.read();
            for (int c = 0; c < C; ++c) {
#pragma HLS UNROLL
                rowv[c] = row.v[c];
            }
            if (b == 0) {
                sx = bits_to_float(sx_s.read());
                sxl[i] = sx;
            } else {
                sx = sxl[i];
            }
        }
        ap_uint<64> wd = 0;
        if (fp16) {
            for (int j = 0; j < 4; ++j) {
#pragma HLS UNROLL
                const int c = 4 * q + j;
                const float prod = (float)rowv[c] * sx;  // same order as host.quant.dequantize
                const float scaled = prod * psw[c];
                const float y = scaled + pbias[c];
                // the adders in LUTs: the DSP48s go to the array (UG1399, BIND_OP: op=fadd impl=fabric)
#pragma HLS BIND_OP variable = y op = fadd impl = fabric
                wd.range(16 * j + 15, 16 * j) = sasp_f32_to_f16(y);
            }
        } else {
            wd.range(31, 0) = (uint32_t)rowv[2 * q];
            wd.range(63, 32) = (uint32_t)rowv[2 * q + 1];
        }
        axis_word_t ow;
        ow.data = wd;
        ow.keep = 0xFF;
        ow.strb = 0xFF;
        ow.last = (o == total - 1) ? 1 : 0;
        out.write(ow);
        if (++q == OW) {
            q = 0;
            if (++i == mr) {
                i = 0;
                if (++b == NB) {
                    b = 0;
                    r0 += CH;
                    mr = (M - r0) < (uint32_t)CH ? (int)(M - r0) : CH;
                }
            }
        }
    }
    done_s.write(1);
}

// ---- hw_count: clock cycles from the start of the dataflow region until the drain is done ------------
// A free-running II=1 loop that stops at the drain's done token. In C simulation the processes run one
// after another, so it reads 1 there; on the board it is the kernel's real run time in PL cycles.
void hw_count(hls::stream<ap_uint<1> >& done_s, hls::stream<ap_uint<32> >& hw_s) {
    uint32_t n = 0;
    bool fin = false;
hw_loop:
    while (!fin) {
#pragma HLS PIPELINE II = 1
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 100000000
        ap_uint<1> d;
        ++n;
        fin = done_s.read_nb(d);
    }
    hw_s.write(n);
}

void core(hls::stream<axis_word_t>& in, hls::stream<axis_word_t>& out, const ap_uint<64>* wmem, uint32_t wlen,
          uint32_t M, int CH, int KB, int NB, bool fp16, hls::stream<ap_uint<32> >& sched_s,
          hls::stream<ap_uint<32> >& hw_s, hls::stream<ap_uint<1> >& err_s) {
#pragma HLS DATAFLOW
    hls::stream_of_blocks<act_blk_t, 2> acts;  // ping-pong: chunk c+1 loads while chunk c computes
    hls::stream<ap_uint<32> > sx_s("sx_s");
    hls::stream<tok_t> toks("toks");
    hls::stream<par_t> pars("pars");
    hls::stream<row_t> rows_s("rows_s");
    hls::stream<ap_uint<1> > done_s("done_s");
    // sx_s: act_load runs at most one chunk ahead of the drain's reads; rows_s: one block of rows
    // pushed in a burst while the previous one drains; toks/pars: w_load runs a few tokens ahead.
#pragma HLS STREAM variable = sx_s depth = 2 * SA_CHUNK
#pragma HLS STREAM variable = rows_s depth = 2 * SA_CHUNK
#pragma HLS STREAM variable = toks depth = 4
#pragma HLS STREAM variable = pars depth = 4
#pragma HLS STREAM variable = done_s depth = 2
    const int OW = fp16 ? C / 4 : C / 2;
    act_load(in, acts, sx_s, M, CH, KB);
    w_load(wmem, toks, pars, err_s, wlen, M, CH, KB, NB);
    compute(acts, toks, rows_s, sched_s, M, CH, KB, NB, OW);
    drain(rows_s, pars, sx_s, out, done_s, M, CH, NB, fp16);
    hw_count(done_s, hw_s);  // last: in the sequential C simulation it must find the done token
}

}  // namespace

uint16_t sasp_f32_to_f16(float f) {
    union {
        float f;
        uint32_t u;
    } v;
    v.f = f;
    const uint32_t x = v.u;
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t a = x & 0x7FFFFFFFu;
    uint32_t h;
    if (a >= 0x7F800000u) {  // inf / NaN
        h = a > 0x7F800000u ? (0x7E00u | ((a >> 13) & 0x3FFu)) : 0x7C00u;
    } else if (a >= 0x477FF000u) {  // >= 65520: rounds to infinity
        h = 0x7C00u;
    } else if (a >= 0x38800000u) {  // normal fp16: rebias the exponent, round the 13 dropped bits
        const uint32_t base = (a >> 13) - (112u << 10);
        const uint32_t rem = a & 0x1FFFu;
        h = base + ((rem > 0x1000u || (rem == 0x1000u && (base & 1u))) ? 1u : 0u);
    } else if (a > 0x33000000u) {  // subnormal fp16: value / 2^-24, rounded to nearest even
        const uint32_t e = a >> 23;
        const uint32_t mant = (a & 0x7FFFFFu) | 0x800000u;
        const uint32_t shift = 126u - e;  // 14 .. 24
        const uint32_t q = mant >> shift;
        const uint32_t rem = mant & ((1u << shift) - 1u);
        const uint32_t half = 1u << (shift - 1u);
        h = q + ((rem > half || (rem == half && (q & 1u))) ? 1u : 0u);
    } else {  // |f| <= 2^-25: rounds to zero
        h = 0;
    }
    return (uint16_t)(sign | h);
}

void sasp_gemm(hls::stream<axis_word_t>& in_stream, hls::stream<axis_word_t>& out_stream, const ap_uint<64>* wmem,
               ap_uint<32> wlen, ap_uint<32> m, ap_uint<32> k, ap_uint<32> n, ap_uint<32> chunk, ap_uint<32> flags,
               ap_uint<32>& id_version, ap_uint<32>& array_size, ap_uint<32>& cycles, ap_uint<32>& hw_cycles,
               ap_uint<32>& status) {
#pragma HLS INTERFACE mode = axis port = in_stream
#pragma HLS INTERFACE mode = axis port = out_stream
#pragma HLS INTERFACE mode = m_axi port = wmem offset = slave bundle = gmem depth = 815616 max_read_burst_length = 256 num_read_outstanding = 16 max_widen_bitwidth = 64
#pragma HLS INTERFACE mode = s_axilite port = wmem bundle = control
#pragma HLS INTERFACE mode = s_axilite port = wlen bundle = control
#pragma HLS INTERFACE mode = s_axilite port = m bundle = control
#pragma HLS INTERFACE mode = s_axilite port = k bundle = control
#pragma HLS INTERFACE mode = s_axilite port = n bundle = control
#pragma HLS INTERFACE mode = s_axilite port = chunk bundle = control
#pragma HLS INTERFACE mode = s_axilite port = flags bundle = control
#pragma HLS INTERFACE mode = s_axilite port = id_version bundle = control
#pragma HLS INTERFACE mode = s_axilite port = array_size bundle = control
#pragma HLS INTERFACE mode = s_axilite port = cycles bundle = control
#pragma HLS INTERFACE mode = s_axilite port = hw_cycles bundle = control
#pragma HLS INTERFACE mode = s_axilite port = status bundle = control
#pragma HLS INTERFACE mode = s_axilite port = return bundle = control

    id_version = SASP_ID_VERSION;
    array_size = (ap_uint<32>)(R | (C << 8) | ((uint32_t)SA_CHUNK << 16));

    const uint32_t M = m, K = k, N = n, CH = chunk, FL = flags;
    if (FL == SASP_FLAG_PROBE) {
        cycles = 0;
        hw_cycles = 0;
        status = SASP_ST_PROBE;
        return;
    }
    axis_word_t err;
    err.data = SASP_ERROR_WORD;
    err.keep = 0xFF;
    err.strb = 0xFF;
    err.last = 1;
    if (M == 0 || K == 0 || K > SA_K_MAX || N == 0 || N > SA_N_MAX || CH == 0 || CH > SA_CHUNK ||
        (FL & ~SASP_FLAG_FP16) != 0) {
        out_stream.write(err);
        cycles = 0;
        hw_cycles = 0;
        status = SASP_ST_BAD_ARGS;
        return;
    }
    const uint64_t hdr = in_stream.read().data;
    const uint64_t hdr_expect = (uint64_t)SASP_MAGIC | ((uint64_t)SASP_STREAM_VERSION << 32) |
                                ((uint64_t)R << 40) | ((uint64_t)C << 48);
    if (hdr != hdr_expect) {
        out_stream.write(err);
        cycles = 1;
        hw_cycles = 0;
        status = SASP_ST_BAD_HEADER;
        return;
    }
    const int KB = cdiv((int)K, R);
    const int NB = cdiv((int)N, C);
    hls::stream<ap_uint<32> > sched_s("sched_s"), hw_s("hw_s");
    hls::stream<ap_uint<1> > err_s("err_s");
#pragma HLS STREAM variable = sched_s depth = 2
#pragma HLS STREAM variable = hw_s depth = 2
#pragma HLS STREAM variable = err_s depth = 2
    core(in_stream, out_stream, wmem, (uint32_t)wlen, M, (int)CH, KB, NB, (FL & SASP_FLAG_FP16) != 0, sched_s, hw_s,
         err_s);
    cycles = sched_s.read();
    hw_cycles = hw_s.read();
    status = SASP_ST_OK | (err_s.read() ? SASP_ST_BAD_META : 0u);
}
