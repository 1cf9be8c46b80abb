// sasp_gemm: weight-stationary R x C systolic-array GEMM, int8 x int8 -> int32, on block-compressed
// weights streamed over AXI4-Stream. Stream protocol and schedule: hls/README.md.
//
// Per chunk of up to SA_CHUNK activation rows (held on chip, double-buffered):
//   prologue : read the chunk's remaining activation words, then the metadata and weights up to
//              the first tile (plus trailing metadata), draining pending output meanwhile.
//   compute  : ONE pipelined loop (II=1), one activation row per cycle through the array. Tile step j
//              takes max(rows, STEP_MIN, words of the next tile unit) iterations; while it computes,
//              the loader fills the other weight buffer (tile j+1), then idle input slots carry the
//              NEXT chunk's activations, and the drainer emits the previous column block's outputs.
//              A column block is closed once the previous block's output has fully drained.
// The cycle counter adds one per loop iteration plus a fixed pipeline depth per loop invocation,
// so host/cycle_model.py reproduces it exactly.
#include "sasp_gemm.h"

namespace {

const int R = SA_R;
const int C = SA_C;
const int KB_MAX = SA_K_MAX / R;
const int NB_MAX = (SA_N_MAX + C - 1) / C;
const int WW = R * C / 8;       // stream words per tile
const int OWPR = C / 2;         // output words per row per column block
const int KR = 2 * KB_MAX;      // kidx ring entries

static_assert((R * C) % 8 == 0, "R*C must be a multiple of 8");
static_assert(C % 2 == 0, "C must be even (two int32 per output word)");
static_assert(SA_K_MAX % 8 == 0 && SA_K_MAX % R == 0, "SA_K_MAX must be a multiple of 8 and of R");
static_assert(SA_CHUNK >= 1 && SA_CHUNK < 65536, "SA_CHUNK out of range");

enum Mode { STEP = 0, CLOSE = 1, DONE = 2 };

// Reader of the per-chunk weight segment: [meta(b), tiles(b)...] for every column block b.
struct Loader {
    int blk;        // next column block whose metadata header is read
    int meta_left;  // continuation metadata words left in the current block
    int kleft;      // kidx fields still to store for the current block
    int tl;         // tiles of the current block whose weights are still to be read
    int tile;       // chunk-local index of the tile whose weights come next
    int wpos;       // word within that tile
    int kpos;       // chunk-local tile index of the next kidx stored

    void reset() { blk = meta_left = kleft = tl = tile = wpos = kpos = 0; }
    bool next_is_meta(int nb) const { return meta_left > 0 || (tl == 0 && blk < nb); }
    bool seg_left(int nb) const { return meta_left > 0 || tl > 0 || blk < nb; }
    // The loader may read while words remain and the next word is metadata or belongs to a tile
    // no further ahead than cur+1 (the free weight buffer).
    bool can_read(int cur, int nb) const { return seg_left(nb) && (next_is_meta(nb) || tile <= cur + 1); }
};

}  // namespace

void sasp_gemm(hls::stream<axis_word_t>& in_stream, hls::stream<axis_word_t>& out_stream, ap_uint<32> m,
               ap_uint<32> k, ap_uint<32> n, ap_uint<32> chunk, ap_uint<32> flags, ap_uint<32>& id_version,
               ap_uint<32>& array_size, ap_uint<32>& cycles, ap_uint<32>& status) {
#pragma HLS INTERFACE mode = axis port = in_stream
#pragma HLS INTERFACE mode = axis port = out_stream
#pragma HLS INTERFACE mode = s_axilite port = m bundle = control
#pragma HLS INTERFACE mode = s_axilite port = k bundle = control
#pragma HLS INTERFACE mode = s_axilite port = n bundle = control
#pragma HLS INTERFACE mode = s_axilite port = chunk bundle = control
#pragma HLS INTERFACE mode = s_axilite port = flags bundle = control
#pragma HLS INTERFACE mode = s_axilite port = id_version bundle = control
#pragma HLS INTERFACE mode = s_axilite port = array_size bundle = control
#pragma HLS INTERFACE mode = s_axilite port = cycles bundle = control
#pragma HLS INTERFACE mode = s_axilite port = status bundle = control
#pragma HLS INTERFACE mode = s_axilite port = return bundle = control

    static int8_t act[2][SA_CHUNK][SA_K_MAX];
#pragma HLS ARRAY_PARTITION variable = act complete dim = 1
#pragma HLS ARRAY_PARTITION variable = act cyclic factor = SASP_ACT_P dim = 3
    static int8_t wbuf[2][R][C];
#pragma HLS ARRAY_PARTITION variable = wbuf complete dim = 0
    static int32_t acc[2][SA_CHUNK][C];
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 1
#pragma HLS ARRAY_PARTITION variable = acc complete dim = 3
    static uint16_t kring[KR];
    static uint16_t ntb[NB_MAX];

    id_version = SASP_ID_VERSION;
    array_size = (ap_uint<32>)(R | (C << 8) | ((uint32_t)SA_CHUNK << 16));

    const uint32_t M = m, K = k, N = n, CH = chunk, FL = flags;
    if (FL == SASP_FLAG_PROBE) {
        cycles = 0;
        status = SASP_ST_PROBE;
        return;
    }
    axis_word_t err;
    err.data = SASP_ERROR_WORD;
    err.keep = 0xFF;
    err.strb = 0xFF;
    err.last = 1;
    if (M == 0 || K == 0 || K > SA_K_MAX || N == 0 || N > SA_N_MAX || CH == 0 || CH > SA_CHUNK || FL != 0) {
        out_stream.write(err);
        cycles = 0;
        status = SASP_ST_BAD_ARGS;
        return;
    }

    uint64_t cyc = 1;  // header word
    const uint64_t hdr = in_stream.read().data;
    const uint64_t hdr_expect = (uint64_t)SASP_MAGIC | ((uint64_t)SASP_STREAM_VERSION << 32) |
                                ((uint64_t)R << 40) | ((uint64_t)C << 48);
    if (hdr != hdr_expect) {
        out_stream.write(err);
        cycles = (uint32_t)cyc;
        status = SASP_ST_BAD_HEADER;
        return;
    }

    const int KB = (K + R - 1) / R;
    const int KW = (KB * R + 7) / 8;
    const int NB = (N + C - 1) / C;
    const int NCH = (M + CH - 1) / CH;
    const uint64_t total_out = (uint64_t)M * NB * OWPR;
    bool meta_err = false;

    // output drainer
    uint32_t pend = 0;
    int obank = 0, om = 0, oq = 0;
    bool ozero = false;
    uint64_t ocount = 0;
    // activation writer
    int a_buf = 0, a_row = 0, a_w = 0;
    uint32_t a_left = (CH < M ? CH : M) * KW;
    // global column-block counter (accumulator bank parity)
    uint32_t gb = 0;
    Loader L;

// -------- helpers (inlined in the loops below) --------
#define SASP_EMIT()                                                                               \
    do {                                                                                          \
        uint64_t wd = 0;                                                                          \
        if (!ozero)                                                                               \
            wd = (uint64_t)(uint32_t)acc[obank][om][2 * oq] |                                     \
                 ((uint64_t)(uint32_t)acc[obank][om][2 * oq + 1] << 32);                          \
        axis_word_t o;                                                                            \
        o.data = wd;                                                                              \
        o.keep = 0xFF;                                                                            \
        o.strb = 0xFF;                                                                            \
        o.last = (ocount == total_out - 1) ? 1 : 0;                                               \
        out_stream.write(o);                                                                      \
        ++ocount;                                                                                 \
        --pend;                                                                                   \
        if (++oq == OWPR) {                                                                       \
            oq = 0;                                                                               \
            ++om;                                                                                 \
        }                                                                                         \
    } while (0)

#define SASP_ACT_WRITE(W)                                                                         \
    do {                                                                                          \
        const uint64_t aw_ = (W);                                                                 \
        for (int b = 0; b < 8; ++b) {                                                             \
            _Pragma("HLS UNROLL") act[a_buf][a_row][a_w * 8 + b] = (int8_t)(aw_ >> (8 * b));      \
        }                                                                                         \
        if (++a_w == KW) {                                                                        \
            a_w = 0;                                                                              \
            ++a_row;                                                                              \
        }                                                                                         \
        --a_left;                                                                                 \
    } while (0)

#define SASP_KPUT(V)                                                                              \
    do {                                                                                          \
        uint32_t v_ = (V);                                                                        \
        if ((int)v_ >= KB) {                                                                      \
            meta_err = true;                                                                      \
            v_ = 0;                                                                               \
        }                                                                                         \
        kring[L.kpos % KR] = (uint16_t)v_;                                                        \
        ++L.kpos;                                                                                 \
        --L.kleft;                                                                                \
    } while (0)

#define SASP_SEG_WORD(W)                                                                          \
    do {                                                                                          \
        const uint64_t sw_ = (W);                                                                 \
        if (L.meta_left > 0) {                                                                    \
            for (int q = 0; q < 4; ++q) {                                                         \
                _Pragma("HLS UNROLL") if (L.kleft > 0) SASP_KPUT((uint32_t)(sw_ >> (16 * q)) & 0xFFFF); \
            }                                                                                     \
            --L.meta_left;                                                                        \
        } else if (L.tl == 0) {                                                                   \
            const int nt_ = (int)(sw_ & 0xFFFF);                                                  \
            if (nt_ > KB) meta_err = true;                                                        \
            ntb[L.blk] = (uint16_t)nt_;                                                           \
            L.kleft = nt_;                                                                        \
            for (int q = 1; q < 4; ++q) {                                                         \
                _Pragma("HLS UNROLL") if (L.kleft > 0) SASP_KPUT((uint32_t)(sw_ >> (16 * q)) & 0xFFFF); \
            }                                                                                     \
            L.meta_left = nt_ > 3 ? (nt_ - 3 + 3) / 4 : 0;                                        \
            L.tl = nt_;                                                                           \
            ++L.blk;                                                                              \
        } else {                                                                                  \
            for (int b = 0; b < 8; ++b) {                                                         \
                _Pragma("HLS UNROLL") const int p_ = L.wpos * 8 + b;                              \
                wbuf[L.tile & 1][p_ / C][p_ % C] = (int8_t)(sw_ >> (8 * b));                      \
            }                                                                                     \
            if (++L.wpos == WW) {                                                                 \
                L.wpos = 0;                                                                       \
                ++L.tile;                                                                         \
                --L.tl;                                                                           \
            }                                                                                     \
        }                                                                                         \
    } while (0)

chunks:
    for (int ci = 0; ci < NCH; ++ci) {
#pragma HLS LOOP_TRIPCOUNT min = 1 max = 16
        const int mr = (int)((M - (uint32_t)ci * CH) < CH ? (M - (uint32_t)ci * CH) : CH);
        const int cb = ci & 1;
        L.reset();

    prologue:
        while (a_left > 0 || L.can_read(-1, NB)) {
#pragma HLS PIPELINE II = 1
            ++cyc;
            const uint64_t w = in_stream.read().data;
            if (a_left > 0) {
                SASP_ACT_WRITE(w);
            } else {
                SASP_SEG_WORD(w);
            }
            if (pend > 0) SASP_EMIT();
        }
        cyc += SASP_D_LOAD;

        // the activation writer now fills the other buffer with the next chunk
        if (ci + 1 < NCH) {
            const uint32_t rest = M - (uint32_t)(ci + 1) * CH;
            a_buf = cb ^ 1;
            a_row = 0;
            a_w = 0;
            a_left = (rest < CH ? rest : CH) * KW;
        } else {
            a_left = 0;
        }

        // compute walk state
        int lb = 0;       // chunk-local column block being computed / closed
        int cur = 0;      // chunk-local index of the tile being computed
        int cb_left = 0;  // tiles of block lb not finished
        int i = 0;        // iteration within the tile step
        int ki = 0;       // kidx of tile cur
        bool first = false;
        int mode = DONE;

#define SASP_ENTER()                                                                              \
    do {                                                                                          \
        if (lb >= NB) {                                                                           \
            mode = DONE;                                                                          \
        } else if (ntb[lb] == 0) {                                                                \
            mode = CLOSE;                                                                         \
        } else {                                                                                  \
            mode = STEP;                                                                          \
            cb_left = ntb[lb];                                                                    \
            i = 0;                                                                                \
            first = true;                                                                         \
            ki = kring[cur % KR];                                                                 \
        }                                                                                         \
    } while (0)

// close block lb once the previous block's output has drained: its output becomes pending
#define SASP_RESOLVE()                                                                            \
    do {                                                                                          \
        if (mode == CLOSE && pend == 0) {                                                         \
            pend = (uint32_t)mr * OWPR;                                                           \
            obank = gb & 1;                                                                       \
            ozero = (ntb[lb] == 0);                                                               \
            om = 0;                                                                               \
            oq = 0;                                                                               \
            ++gb;                                                                                 \
            ++lb;                                                                                 \
            SASP_ENTER();                                                                         \
        }                                                                                         \
    } while (0)

        SASP_ENTER();
        SASP_RESOLVE();
    compute:
        while (mode != DONE) {
#pragma HLS PIPELINE II = 1
#pragma HLS DEPENDENCE variable = acc inter false
#pragma HLS DEPENDENCE variable = act inter false
#pragma HLS DEPENDENCE variable = wbuf inter false
            ++cyc;
            if (mode == STEP && L.can_read(cur, NB)) {
                SASP_SEG_WORD(in_stream.read().data);
            } else if (a_left > 0) {
                SASP_ACT_WRITE(in_stream.read().data);
            }
            if (pend > 0) SASP_EMIT();
            if (mode == STEP) {
                if (i < mr) {
                    const int bank = gb & 1;
                    const int wb = cur & 1;
                    for (int c = 0; c < C; ++c) {
#pragma HLS UNROLL
                        int32_t s = 0;
                        for (int r = 0; r < R; ++r) {
#pragma HLS UNROLL
                            s += (int32_t)act[cb][i][ki * R + r] * (int32_t)wbuf[wb][r][c];
                        }
                        acc[bank][i][c] = (first ? 0 : acc[bank][i][c]) + s;
                    }
                }
                ++i;
                if (i >= mr && i >= SASP_STEP_MIN && !L.can_read(cur, NB)) {
                    ++cur;
                    if (--cb_left > 0) {
                        i = 0;
                        first = false;
                        ki = kring[cur % KR];
                    } else {
                        mode = CLOSE;
                    }
                }
            }
            SASP_RESOLVE();
        }
        cyc += SASP_D_COMP;
#undef SASP_ENTER
#undef SASP_RESOLVE
    }

final_drain:
    while (pend > 0) {
#pragma HLS PIPELINE II = 1
        ++cyc;
        SASP_EMIT();
    }
    cyc += SASP_D_OUT;

#undef SASP_EMIT
#undef SASP_ACT_WRITE
#undef SASP_KPUT
#undef SASP_SEG_WORD

    cycles = (uint32_t)cyc;
    status = SASP_ST_OK | (meta_err ? SASP_ST_BAD_META : 0u);
}
