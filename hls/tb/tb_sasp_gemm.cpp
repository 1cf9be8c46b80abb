// C-simulation testbench for sasp_gemm v2: block-sparse GEMMs vs. an int64 golden model and an
// independent fp16 rounding (the compiler's _Float16). Builds its own input stream and weight segment
// (same protocol as host/stream.py) and checks outputs, TLAST, word counts, status and the schedule
// counter against its own closed-form schedule (the formula of host/cycle_model.py).
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <algorithm>
#include <random>
#include <vector>

#include "sasp_gemm.h"

namespace {

const int R = SA_R, C = SA_C, WW = R * C / 8;

struct Bsr {
    int K, N, KB, NB;
    std::vector<int8_t> tiles;  // [nnz][R][C]
    std::vector<int> colptr, kidx;
};

int cdiv(int a, int b) { return (a + b - 1) / b; }

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
                for (int c = 0; c < C; ++c) b.tiles.push_back(kb * R + r < K && nb * C + c < N ? val() : 0);
        }
        b.colptr.push_back((int)b.kidx.size());
    }
    return b;
}

uint32_t fbits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

std::vector<uint64_t> weight_segment(const Bsr& b, const std::vector<float>& sw, const std::vector<float>& bias) {
    std::vector<uint64_t> s;
    for (int nb = 0; nb < b.NB; ++nb) {
        const int lo = b.colptr[nb], nt = b.colptr[nb + 1] - lo;
        s.push_back((uint64_t)nt);
        for (int w = 0; w < cdiv(nt, 4); ++w) {
            uint64_t v = 0;
            for (int q = 0; q < 4; ++q)
                if (4 * w + q < nt) v |= (uint64_t)b.kidx[lo + 4 * w + q] << (16 * q);
            s.push_back(v);
        }
        for (int c = 0; c < C; ++c) {
            const int col = nb * C + c;
            s.push_back(col < b.N ? ((uint64_t)fbits(sw[col]) | ((uint64_t)fbits(bias[col]) << 32)) : 0);
        }
        for (int t = lo; t < lo + nt; ++t)
            for (int w = 0; w < WW; ++w) {
                uint64_t v = 0;
                for (int i = 0; i < 8; ++i) v |= (uint64_t)(uint8_t)b.tiles[(size_t)t * R * C + w * 8 + i] << (8 * i);
                s.push_back(v);
            }
    }
    return s;
}

std::vector<uint64_t> pack_input(const std::vector<int8_t>& x, const std::vector<float>& sx, int M, int K) {
    const int KW = cdiv(K, R) * R / 8;
    std::vector<uint64_t> s(1 + (size_t)M * (1 + KW), 0);
    s[0] = (uint64_t)SASP_MAGIC | ((uint64_t)SASP_STREAM_VERSION << 32) | ((uint64_t)R << 40) | ((uint64_t)C << 48);
    for (int m = 0; m < M; ++m) {
        uint64_t* row = &s[1 + (size_t)m * (1 + KW)];
        row[0] = fbits(sx[m]);
        for (int k = 0; k < K; ++k) row[1 + k / 8] |= (uint64_t)(uint8_t)x[(size_t)m * K + k] << (8 * (k % 8));
    }
    return s;
}

// The schedule the kernel's counter follows (hls/README.md, "Schedule"; host/cycle_model.py).
uint64_t model_cycles(const Bsr& b, int M, int CH, bool fp16) {
    const int OW = fp16 ? C / 4 : C / 2, RW = 1 + b.KB * R / 8;
    std::vector<int> rows;
    for (int r0 = 0; r0 < M; r0 += CH) rows.push_back(std::min(CH, M - r0));
    uint64_t cyc = 1 + (uint64_t)rows[0] * RW + SASP_D_ACT;
    for (size_t ci = 0; ci < rows.size(); ++ci) {
        const int mr = rows[ci];
        const uint64_t S = std::max({mr, SASP_STEP_MIN, WW});
        uint64_t sum = 0;
        for (int nb = 0; nb < b.NB; ++nb) {
            const int nt = b.colptr[nb + 1] - b.colptr[nb];
            const uint64_t lead = 1 + cdiv(nt, 4) + C + (nt ? WW : 0);
            const uint64_t work = nt ? nt * S : (uint64_t)mr;
            sum += std::max(lead + work, (uint64_t)mr * OW + SASP_D_DRAIN);
        }
        const uint64_t next = ci + 1 < rows.size() ? (uint64_t)rows[ci + 1] * RW + SASP_D_ACT : 0;
        cyc += std::max(sum, next) + SASP_D_COMP;
    }
    return cyc + (uint64_t)rows.back() * OW + SASP_D_DRAIN;
}

uint16_t ref_f16(float f) {  // the compiler's conversion: independent of the kernel's bit manipulation
    _Float16 h = (_Float16)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

struct Run {
    std::vector<uint64_t> out;
    uint32_t cycles, hw_cycles, status;
    int tlast;
    size_t left;
};

Run run(const std::vector<uint64_t>& in, const std::vector<uint64_t>& seg, uint32_t wlen, int M, int K, int N, int CH,
        uint32_t flags) {
    hls::stream<axis_word_t> sin("in"), sout("out");
    for (size_t i = 0; i < in.size(); ++i) {
        axis_word_t w;
        w.data = in[i];
        w.keep = 0xFF;
        w.strb = 0xFF;
        w.last = i + 1 == in.size();
        sin.write(w);
    }
    ap_uint<32> idv, arr, cyc, hw, st;
    sasp_gemm(sin, sout, reinterpret_cast<const ap_uint<64>*>(seg.data()), wlen, M, K, N, CH, flags, idv, arr, cyc, hw,
              st);
    Run r;
    r.cycles = cyc;
    r.hw_cycles = hw;
    r.status = st;
    r.tlast = -1;
    r.left = sin.size();
    while (!sout.empty()) {
        axis_word_t w = sout.read();
        if (w.last && r.tlast < 0) r.tlast = (int)r.out.size();
        r.out.push_back((uint64_t)w.data);
    }
    return r;
}

int failures = 0;

void check(bool ok, const char* name, const char* what) {
    if (!ok) {
        printf("FAIL %s: %s\n", name, what);
        ++failures;
    }
}

// One GEMM in both output modes; golden int64 sums, fp16 via the compiler's rounding.
template <class Keep, class Val>
void gemm_case(const char* name, int M, int K, int N, int CH, Keep keep, Val val, std::mt19937& rng) {
    const Bsr b = make_bsr(K, N, keep, val);
    std::vector<int8_t> x((size_t)M * K);
    for (auto& v : x) v = (int8_t)val();
    std::uniform_real_distribution<float> us(1e-4f, 2e-2f), ub(-2.0f, 2.0f);
    std::vector<float> sx(M), sw(N), bias(N);
    for (auto& v : sx) v = us(rng);
    for (auto& v : sw) v = us(rng);
    for (auto& v : bias) v = ub(rng);
    std::vector<int64_t> gold((size_t)M * N, 0);
    for (int nb = 0; nb < b.NB; ++nb)
        for (int t = b.colptr[nb]; t < b.colptr[nb + 1]; ++t)
            for (int r = 0; r < R; ++r)
                for (int c = 0; c < C; ++c) {
                    const int k = b.kidx[t] * R + r, n = nb * C + c;
                    if (k >= K || n >= N) continue;
                    const int64_t wv = b.tiles[(size_t)t * R * C + r * C + c];
                    for (int m = 0; m < M; ++m) gold[(size_t)m * N + n] += (int64_t)x[(size_t)m * K + k] * wv;
                }
    const std::vector<uint64_t> in = pack_input(x, sx, M, K), seg = weight_segment(b, sw, bias);
    bool ok_all = true;
    for (int fp16 = 0; fp16 < 2; ++fp16) {
        const int OW = fp16 ? C / 4 : C / 2;
        const Run res = run(in, seg, (uint32_t)seg.size(), M, K, N, CH, fp16 ? SASP_FLAG_FP16 : 0);
        const size_t n_out = (size_t)M * b.NB * OW;
        bool ok = res.status == SASP_ST_OK && res.out.size() == n_out && res.tlast == (int)n_out - 1 && res.left == 0;
        check(ok, name, fp16 ? "status / word count / TLAST (fp16)" : "status / word count / TLAST (int32)");
        check(res.cycles == model_cycles(b, M, CH, fp16 != 0), name, "schedule counter != closed-form schedule");
        check(res.hw_cycles >= 1, name, "hw_cycles register not written");
        if (!ok) {
            ok_all = false;
            continue;
        }
        size_t pos = 0, bad = 0;
        for (int r0 = 0; r0 < M; r0 += CH) {
            const int mr = std::min(CH, M - r0);
            for (int nb = 0; nb < b.NB; ++nb)
                for (int i = 0; i < mr; ++i)
                    for (int q = 0; q < OW; ++q, ++pos) {
                        const uint64_t wd = res.out[pos];
                        const int per = fp16 ? 4 : 2;
                        for (int j = 0; j < per; ++j) {
                            const int n = nb * C + per * q + j, m = r0 + i;
                            if (n >= N) continue;
                            const int64_t g = gold[(size_t)m * N + n];
                            if (fp16) {
                                const float v = ((float)(int32_t)g * sx[m]) * sw[n] + bias[n];
                                bad += ((wd >> (16 * j)) & 0xFFFF) != ref_f16(v);
                            } else {
                                bad += (int32_t)(uint32_t)(wd >> (32 * j)) != (int32_t)g;
                            }
                        }
                    }
        }
        if (bad) {
            printf("FAIL %s: %zu mismatching outputs (%s)\n", name, bad, fp16 ? "fp16" : "int32");
            ++failures;
            ok_all = false;
        }
    }
    if (ok_all) printf("ok %s (M=%d K=%d N=%d chunk=%d)\n", name, M, K, N, CH);
}

}  // namespace

int main() {
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> u8(-128, 127);
    auto rnd = [&]() { return (int8_t)u8(rng); };
    std::bernoulli_distribution half(0.5);
    auto dense = [](int, int) { return true; };
    printf("sasp_gemm csim: array %dx%d, chunk %d\n", R, C, SA_CHUNK);

    gemm_case("random 50%", 40, 100, 70, 16, [&](int, int) { return half(rng); }, rnd, rng);
    gemm_case("many chunks (3)", 20, 64, 48, 3, [&](int, int) { return half(rng); }, rnd, rng);
    gemm_case("many chunks (5)", 23, 72, 40, 5, [&](int, int) { return half(rng); }, rnd, rng);
    for (int m = 1; m <= 4; ++m) {  // trailing all-pruned column blocks after the last stored tile, few rows
        char nm[64];
        snprintf(nm, sizeof nm, "trailing pruned blocks, M=%d", m);
        gemm_case(nm, m, 64, 6 * C, 16, [](int kb, int nb) { return nb < 2 && kb % 2 == 0; }, rnd, rng);
    }
    gemm_case("first + middle blocks pruned", 9, 48, 5 * C, 16, [](int, int nb) { return nb != 0 && nb != 2; }, rnd,
              rng);
    gemm_case("dense", 17, 3 * R, 2 * C, 16, dense, rnd, rng);
    gemm_case("single tile", 5, 4 * R, 3 * C, 16, [](int kb, int nb) { return kb == 2 && nb == 1; }, rnd, rng);
    gemm_case("everything pruned (bias only)", 6, 40, 3 * C, 4, [](int, int) { return false; }, rnd, rng);
    gemm_case("activation-load bound (pruned, K=1536)", 40, 1536, 2 * C, 16, [](int kb, int nb) { return nb == 0 && kb < 2; },
              rnd, rng);
    gemm_case("M=1 GEMV", 1, 96, 64, 16, [&](int, int) { return half(rng); }, rnd, rng);
    gemm_case("K, N not multiples", 11, 3 * R + 5, 2 * C + 3, 16, dense, rnd, rng);
    gemm_case("chunk = SA_CHUNK, M > chunk", SA_CHUNK + 7, 2 * R, C, SA_CHUNK, dense, rnd, rng);
    gemm_case("extreme -128*-128, K=1536", 3, 1536, C, 16, dense, []() { return (int8_t)-128; }, rng);
    gemm_case("whisper q/k/v 384x384 M=1", 1, 384, 384, SA_CHUNK, [&](int, int) { return half(rng); }, rnd, rng);
    gemm_case("whisper fc2 1536x384 M=2", 2, 1536, 384, SA_CHUNK, [&](int, int nb) { return nb < 40 && half(rng); },
              rnd, rng);

    // protocol errors: the DMA transfers must still complete with the documented word counts
    {
        const Bsr b = make_bsr(16, C, dense, rnd);
        std::vector<int8_t> x(16, 1);
        std::vector<float> sx(1, 1.0f), sw(C, 1.0f), bias(C, 0.0f);
        std::vector<uint64_t> in = pack_input(x, sx, 1, 16), seg = weight_segment(b, sw, bias);
        Run p = run({}, seg, 0, 1, 1, 1, 1, SASP_FLAG_PROBE);
        check(p.status == SASP_ST_PROBE && p.out.empty() && p.cycles == 0, "probe", "status / traffic");
        Run a = run(in, seg, (uint32_t)seg.size(), 1, 16, C, 0, SASP_FLAG_FP16);
        check(a.status == SASP_ST_BAD_ARGS && a.out.size() == 1 && a.tlast == 0 && a.left == in.size(), "bad args",
              "expected one error word with TLAST and no input read");
        Run f = run(in, seg, (uint32_t)seg.size(), 1, 16, C, 1, 0x4);
        check(f.status == SASP_ST_BAD_ARGS, "unknown flag", "status");
        std::vector<uint64_t> bad = in;
        bad[0] ^= 1;
        Run h = run(bad, seg, (uint32_t)seg.size(), 1, 16, C, 1, SASP_FLAG_FP16);
        check(h.status == SASP_ST_BAD_HEADER && h.out.size() == 1 && h.tlast == 0, "bad header", "status / error word");
        std::vector<uint64_t> badk = seg;
        badk[1] = 0x7777;  // kidx 0x7777 >= K_blocks
        Run k = run(in, badk, (uint32_t)badk.size(), 1, 16, C, 1, SASP_FLAG_FP16);
        check(k.status == (SASP_ST_OK | SASP_ST_BAD_META) && k.out.size() == (size_t)C / 4 && k.left == 0,
              "bad kidx", "status / word counts");
        Run s = run(in, seg, (uint32_t)seg.size() - 3, 1, 16, C, 1, SASP_FLAG_FP16);
        check(s.status == (SASP_ST_OK | SASP_ST_BAD_META) && s.out.size() == (size_t)C / 4 && s.tlast == C / 4 - 1,
              "short segment", "status / word counts (must complete, not hang)");
        std::vector<uint64_t> longer = seg;
        longer.push_back(0);
        Run l = run(in, longer, (uint32_t)longer.size(), 1, 16, C, 1, SASP_FLAG_FP16);
        check(l.status == (SASP_ST_OK | SASP_ST_BAD_META) && l.out.size() == (size_t)C / 4, "long segment", "status");
        std::vector<uint64_t> big = seg;
        big[0] = 0xFFFF;  // nt > K_blocks
        Run t = run(in, big, (uint32_t)big.size(), 1, 16, C, 1, SASP_FLAG_FP16);
        check((t.status & SASP_ST_BAD_META) && t.out.size() == (size_t)C / 4, "nt > K_blocks", "status / word counts");
        if (!failures) printf("ok protocol errors (probe, bad args, bad header, bad kidx, short/long segment, big nt)\n");
    }
    // the kernel's fp16 rounding against the compiler's on edge values
    {
        const float edge[] = {0.0f,      -0.0f,      65504.0f,    65519.99f, 65520.0f, -65520.0f,  1e-8f,    2.98e-8f,
                              5.96e-8f,  6.1e-5f,    6.1035156e-5f, 0.1f,    1.0f,     1.0009765f, 3.14159f, -2.5e-5f,
                              1e30f,     -1e-40f,    2049.0f,     2051.0f,   4097.0f,  0.33333f,   1e-7f,    -7.7e-6f};
        int bad = 0;
        for (float f : edge) bad += sasp_f32_to_f16(f) != ref_f16(f);
        std::uniform_int_distribution<uint32_t> bits(0, 0xFFFFFFFFu);
        for (int i = 0; i < 200000; ++i) {
            uint32_t u = bits(rng);
            if ((u & 0x7F800000u) == 0x7F800000u) continue;  // NaN / inf: not produced by the epilogue
            float f;
            memcpy(&f, &u, 4);
            bad += sasp_f32_to_f16(f) != ref_f16(f);
        }
        check(bad == 0, "fp16 rounding", "kernel conversion differs from the compiler's");
        if (!bad) printf("ok fp16 rounding (edge values + 200000 random floats)\n");
    }
    if (failures) {
        printf("CSIM FAILED: %d check(s)\n", failures);
        return 1;
    }
    printf("CSIM PASSED\n");
    return 0;
}
