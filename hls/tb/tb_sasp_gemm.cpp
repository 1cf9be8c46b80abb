// C-simulation testbench for sasp_gemm: random block-sparse GEMMs vs. a dense golden model.
// Builds its own input stream (same protocol and schedule as host/stream.py + host/cycle_model.py)
// and checks outputs, TLAST, word counts, status and the cycle counter.
#include <stdint.h>
#include <stdio.h>

#include <algorithm>
#include <random>
#include <vector>

#include "sasp_gemm.h"

namespace {

const int R = SA_R, C = SA_C, WW = R * C / 8, OWPR = C / 2;

struct Bsr {
    int K, N, KB, NB;
    std::vector<int8_t> tiles;  // [nnz][R][C]
    std::vector<int> colptr, kidx;
};

int cdiv(int a, int b) { return (a + b - 1) / b; }

// keep(kb, nb) decides which tiles are stored; val() draws weight values
template <class Keep, class Val>
Bsr make_bsr(int K, int N, Keep keep, Val val) {
    Bsr b;
    b.K = K;
    b.N = N;
    b.KB = cdiv(K, R);
    b.NB = cdiv(N, C);
    b.colptr.push_back(0);
    for (int nb = 0; nb < b.NB; ++nb) {
        for (int kb = 0; kb < b.KB; ++kb) {
            if (!keep(kb, nb)) continue;
            b.kidx.push_back(kb);
            for (int r = 0; r < R; ++r)
                for (int c = 0; c < C; ++c) {
                    const bool inside = kb * R + r < K && nb * C + c < N;
                    b.tiles.push_back(inside ? val() : 0);
                }
        }
        b.colptr.push_back((int)b.kidx.size());
    }
    return b;
}

int meta_words(int nt) { return 1 + cdiv(std::max(nt - 3, 0), 4); }

std::vector<uint64_t> weight_segment(const Bsr& b) {
    std::vector<uint64_t> s;
    for (int nb = 0; nb < b.NB; ++nb) {
        const int lo = b.colptr[nb], nt = b.colptr[nb + 1] - lo;
        std::vector<uint64_t> f(meta_words(nt) * 4, 0);
        f[0] = (uint64_t)nt;
        for (int t = 0; t < nt; ++t) f[1 + t] = (uint64_t)b.kidx[lo + t];
        for (size_t w = 0; w < f.size() / 4; ++w)
            s.push_back(f[4 * w] | (f[4 * w + 1] << 16) | (f[4 * w + 2] << 32) | (f[4 * w + 3] << 48));
        for (int t = lo; t < lo + nt; ++t)
            for (int w = 0; w < WW; ++w) {
                uint64_t v = 0;
                for (int i = 0; i < 8; ++i) v |= (uint64_t)(uint8_t)b.tiles[(size_t)t * R * C + w * 8 + i] << (8 * i);
                s.push_back(v);
            }
    }
    return s;
}

// Packs the input stream and returns the modeled cycle count (mirror of host/cycle_model.schedule).
std::vector<uint64_t> pack(const std::vector<int8_t>& x, int M, const Bsr& b, int CH, uint64_t* cycles) {
    const int KW = cdiv(b.KB * R, 8);
    std::vector<uint64_t> acts((size_t)M * KW, 0);
    for (int m = 0; m < M; ++m)
        for (int k = 0; k < b.K; ++k)
            acts[(size_t)m * KW + k / 8] |= (uint64_t)(uint8_t)x[(size_t)m * b.K + k] << (8 * (k % 8));
    const std::vector<uint64_t> seg = weight_segment(b);
    // tile units and compute events
    std::vector<int> nts(b.NB);
    for (int nb = 0; nb < b.NB; ++nb) nts[nb] = b.colptr[nb + 1] - b.colptr[nb];
    std::vector<int> unit;
    std::vector<std::pair<int, int> > events;  // (0, tile) step / (1, block) close
    int lead = 0, fb = 0;
    while (fb < b.NB && nts[fb] == 0) lead += meta_words(nts[fb++]);
    if (fb < b.NB) lead += meta_words(nts[fb]);
    for (int nb = 0; nb < b.NB; ++nb) {
        for (int t = 0; t < nts[nb]; ++t) {
            int extra = 0;
            if (t == nts[nb] - 1)
                for (int b2 = nb + 1; b2 < b.NB; ++b2) {
                    extra += meta_words(nts[b2]);
                    if (nts[b2] > 0) break;
                }
            events.push_back(std::make_pair(0, (int)unit.size()));
            unit.push_back(WW + extra);
        }
        events.push_back(std::make_pair(1, nb));
    }
    const int u0 = unit.empty() ? (int)seg.size() : lead + unit[0];
    const int NCH = cdiv(M, CH);
    std::vector<uint64_t> out;
    out.push_back((uint64_t)SASP_MAGIC | ((uint64_t)SASP_STREAM_VERSION << 32) | ((uint64_t)R << 40) |
                  ((uint64_t)C << 48));
    uint64_t cyc = 1, pend = 0;
    size_t act_next = 0;  // next activation word (global index) to send
    for (int ci = 0; ci < NCH; ++ci) {
        const int mr = std::min(CH, M - ci * CH);
        const size_t chunk_end = (size_t)(ci * CH + mr) * KW;
        const uint64_t pro = (chunk_end - act_next) + u0;
        while (act_next < chunk_end) out.push_back(acts[act_next++]);
        out.insert(out.end(), seg.begin(), seg.begin() + u0);
        pend -= std::min<uint64_t>(pend, pro);
        cyc += pro + SASP_D_LOAD;
        const size_t next_end = ci + 1 < NCH ? (size_t)(ci * CH + mr + std::min(CH, M - (ci + 1) * CH)) * KW : act_next;
        size_t seg_pos = u0;
        for (size_t e = 0; e < events.size(); ++e) {
            uint64_t trip = 0, free_slots;
            if (events[e].first == 0) {
                const int j = events[e].second;
                const int u = j + 1 < (int)unit.size() ? unit[j + 1] : 0;
                trip = std::max(std::max(mr, (int)SASP_STEP_MIN), u);
                out.insert(out.end(), seg.begin() + seg_pos, seg.begin() + seg_pos + u);
                seg_pos += u;
                free_slots = trip - u;
                pend -= std::min<uint64_t>(pend, trip);
            } else {
                trip = pend;
                free_slots = pend;
                pend = (uint64_t)mr * OWPR;
            }
            for (uint64_t a = 0; a < free_slots && act_next < next_end; ++a) out.push_back(acts[act_next++]);
            cyc += trip;
        }
        cyc += SASP_D_COMP;
    }
    cyc += pend + SASP_D_OUT;
    *cycles = cyc;
    return out;
}

int g_fail = 0, g_cases = 0;

void run_case(const char* name, int M, const Bsr& b, const std::vector<int8_t>& x, int CH) {
    ++g_cases;
    uint64_t model_cyc = 0;
    const std::vector<uint64_t> words = pack(x, M, b, CH, &model_cyc);
    hls::stream<axis_word_t> sin("in_stream"), sout("out_stream");
    for (size_t i = 0; i < words.size(); ++i) {
        axis_word_t w;
        w.data = words[i];
        w.keep = 0xFF;
        w.strb = 0xFF;
        w.last = i + 1 == words.size();
        sin.write(w);
    }
    ap_uint<32> idv, arr, cyc, st;
#ifdef SASP_HLS_STREAM_STANDIN  // g++ build: an empty-stream read throws instead of hanging
    try {
        sasp_gemm(sin, sout, M, b.K, b.N, CH, 0, idv, arr, cyc, st);
    } catch (const hls::stream_underrun& e) {
        printf("FAIL %-28s kernel stalled after %zu input words (sent %zu)\n", name, e.reads_done, words.size());
        ++g_fail;
        return;
    }
#else
    sasp_gemm(sin, sout, M, b.K, b.N, CH, 0, idv, arr, cyc, st);
#endif
    // golden: dense W from the tiles, int64 accumulation
    std::vector<int64_t> wd((size_t)b.KB * R * b.NB * C, 0);
    for (int nb = 0; nb < b.NB; ++nb)
        for (int t = b.colptr[nb]; t < b.colptr[nb + 1]; ++t)
            for (int r = 0; r < R; ++r)
                for (int c = 0; c < C; ++c)
                    wd[(size_t)(b.kidx[t] * R + r) * b.NB * C + nb * C + c] = b.tiles[(size_t)t * R * C + r * C + c];
    const size_t expect_words = (size_t)M * b.NB * OWPR;
    bool ok = sout.size() == expect_words && sin.empty() && (uint32_t)st == SASP_ST_OK &&
              (uint64_t)(uint32_t)cyc == (model_cyc & 0xFFFFFFFFull) && (uint32_t)idv == SASP_ID_VERSION;
    size_t bad = 0, tlast_bad = 0, idx = 0;
    const int NCH = cdiv(M, CH);
    for (int ci = 0; ci < NCH && ok; ++ci) {
        const int mr = std::min(CH, M - ci * CH);
        for (int nb = 0; nb < b.NB; ++nb)
            for (int m = ci * CH; m < ci * CH + mr; ++m)
                for (int q = 0; q < OWPR; ++q, ++idx) {
                    const axis_word_t o = sout.read();
                    if ((o.last == 1) != (idx + 1 == expect_words)) ++tlast_bad;
                    for (int h = 0; h < 2; ++h) {
                        const int n = nb * C + 2 * q + h;
                        int64_t ref = 0;
                        if (n < b.N)
                            for (int k = 0; k < b.K; ++k)
                                ref += (int64_t)x[(size_t)m * b.K + k] * wd[(size_t)k * b.NB * C + n];
                        const int32_t got = (int32_t)(uint32_t)(o.data >> (32 * h));
                        if (ref < INT32_MIN || ref > INT32_MAX || (int64_t)got != ref) ++bad;
                    }
                }
    }
    ok = ok && bad == 0 && tlast_bad == 0;
    printf("%s %-28s M=%-4d K=%-4d N=%-4d chunk=%-3d tiles=%zu/%d cycles=%u (model %llu) status=0x%x words=%zu\n",
           ok ? "ok  " : "FAIL", name, M, b.K, b.N, CH, b.kidx.size(), b.KB * b.NB, (unsigned)(uint32_t)cyc,
           (unsigned long long)model_cyc, (unsigned)(uint32_t)st, words.size());
    if (!ok) {
        printf("     out words %zu (expect %zu), input left %zu, mismatches %zu, TLAST errors %zu\n", sout.size() + idx,
               expect_words, sin.size(), bad, tlast_bad);
        ++g_fail;
    }
}

}  // namespace

int main() {
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> i8(-128, 127);
    std::uniform_real_distribution<double> u01(0.0, 1.0);
    auto rnd = [&]() { return (int8_t)i8(rng); };
    auto xrand = [&](int M, int K) {
        std::vector<int8_t> x((size_t)M * K);
        for (size_t i = 0; i < x.size(); ++i) x[i] = rnd();
        return x;
    };
    auto prob = [&](double p) { return [&, p](int, int) { return u01(rng) >= p; }; };
    const int CH = SA_CHUNK;
    printf("sasp_gemm C-sim: array %dx%d, chunk %d, K_MAX %d\n", R, C, CH, SA_K_MAX);

    {
        Bsr b = make_bsr(100, 72, prob(0.5), rnd);
        run_case("random 50%", 40, b, xrand(40, 100), CH);
        run_case("random 50%, chunk 5", 40, b, xrand(40, 100), std::min(5, CH));
    }
    {
        const int K = 6 * R, N = 5 * C;
        Bsr b = make_bsr(K, N, [](int, int nb) { return nb != 0 && nb != 2 && nb != 4; }, rnd);
        run_case("column blocks all pruned", 30, b, xrand(30, K), CH);
        run_case("column blocks all pruned, ch3", 30, b, xrand(30, K), std::min(3, CH));
    }
    {
        Bsr b = make_bsr(64, 64, [](int, int) { return true; }, rnd);
        run_case("fully dense", 33, b, xrand(33, 64), CH);
    }
    {
        const int K = 5 * R, N = 4 * C;
        Bsr b = make_bsr(K, N, [](int kb, int nb) { return kb == 3 && nb == 2; }, rnd);
        run_case("single nonzero tile", 17, b, xrand(17, K), CH);
    }
    {
        Bsr b = make_bsr(96, 80, [](int, int) { return false; }, rnd);
        run_case("everything pruned", 9, b, xrand(9, 96), CH);
    }
    {
        Bsr b = make_bsr(384, 384, prob(0.3), rnd);
        run_case("M=1 (decoder GEMV)", 1, b, xrand(1, 384), CH);
    }
    {
        Bsr b = make_bsr(64, 3 * C, prob(0.2), rnd);
        run_case("M > chunk", 2 * CH + 3, b, xrand(2 * CH + 3, 64), CH);
    }
    {
        const int K = 4 * R + 3, N = 3 * C + 1;
        Bsr b = make_bsr(K, N, prob(0.25), rnd);
        run_case("K, N not multiples of array", 21, b, xrand(21, K), CH);
    }
    const int ext[3][2] = {{-128, -128}, {127, -128}, {-128, 127}};
    for (int e = 0; e < 3; ++e) {
        const int xv = ext[e][0], wv = ext[e][1];
        Bsr b = make_bsr(SA_K_MAX, 2 * C, [](int, int) { return true; }, [wv]() { return (int8_t)wv; });
        std::vector<int8_t> x((size_t)3 * SA_K_MAX, (int8_t)xv);
        run_case(e == 0 ? "extreme -128*-128, K=1536" : e == 1 ? "extreme 127*-128, K=1536" : "extreme -128*127, K=1536",
                 3, b, x, CH);
    }
    {
        Bsr b = make_bsr(384, 384, prob(0.5), rnd);
        run_case("whisper q/k/v/out 50%", 24, b, xrand(24, 384), CH);
    }
    printf("%s: %d/%d cases passed\n", g_fail ? "CSIM FAILED" : "CSIM PASSED", g_cases - g_fail, g_cases);
    return g_fail ? 1 : 0;
}
