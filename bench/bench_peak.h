// bench_peak.h: what the kernel benchmarks (bench_cnn, bench_lm_torch)
// share: this core's measured fp32 peak and a GEMM's error against a
// double-precision dot product.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "bench/bench_util.h"

// Peak fp32 FMA throughput of one core: 12 independent accumulator chains
// held in registers (enough to cover the FMA latency x 2 ports; the empty
// asm keeps the compiler from merging or spilling them), `iters` rounds;
// GFLOP/s counts 2 flops per lane per FMA. *sink gets the chains' sum so
// the loop cannot be dropped.
#define PEAK_CHAINS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define PEAK_BARRIER \
    __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7), \
                     "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11))
__attribute__((target("avx512f"))) static inline double peak_avx512_gflops(long iters, float* sink) {
    const __m512 m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
#define PEAK_DECL512(i) __m512 a##i = _mm512_set1_ps(1.0f + i);
#define PEAK_STEP512(i) a##i = _mm512_fmadd_ps(a##i, m, c);
#define PEAK_SUM512(i) t = _mm512_add_ps(t, a##i);
    PEAK_CHAINS(PEAK_DECL512)
    auto t0 = BenchClock::now();
    for (long i = 0; i < iters; i++) {
        PEAK_CHAINS(PEAK_STEP512)
        PEAK_BARRIER;
    }
    double s = seconds_since(t0);
    __m512 t = _mm512_setzero_ps();
    PEAK_CHAINS(PEAK_SUM512)
    float v[16];
    _mm512_storeu_ps(v, t);
    *sink = v[0] + v[15];
    return 2.0 * 16 * 12 * double(iters) / s / 1e9;
}
__attribute__((target("avx2,fma"))) static inline double peak_avx2_gflops(long iters, float* sink) {
    const __m256 m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
#define PEAK_DECL256(i) __m256 a##i = _mm256_set1_ps(1.0f + i);
#define PEAK_STEP256(i) a##i = _mm256_fmadd_ps(a##i, m, c);
#define PEAK_SUM256(i) t = _mm256_add_ps(t, a##i);
    PEAK_CHAINS(PEAK_DECL256)
    auto t0 = BenchClock::now();
    for (long i = 0; i < iters; i++) {
        PEAK_CHAINS(PEAK_STEP256)
        PEAK_BARRIER;
    }
    double s = seconds_since(t0);
    __m256 t = _mm256_setzero_ps();
    PEAK_CHAINS(PEAK_SUM256)
    float v[8];
    _mm256_storeu_ps(v, t);
    *sink = v[0] + v[7];
    return 2.0 * 8 * 12 * double(iters) / s / 1e9;
}
// Best of 40 bursts of ~5 ms: a peak is a maximum, and short bursts are
// what a busy machine still gives a thread whole (a long run measures the
// scheduler, not the core).
template <class F>
static inline double best_of_bursts(F&& f) {
    double best = 0;
    float sink = 0;
    for (int r = 0; r < 40; r++) best = std::max(best, f(1000000L, &sink));
    if (!std::isfinite(sink)) std::printf("(peak loop diverged)\n");
    return best;
}

// Largest |got - exact| / sum_i |W[o][i] X[i][t]| over all outputs, exact
// being the dot product in double: 0 for a perfect fp32 GEMM up to rounding
// (about I * 2^-24 at worst), O(1) for a wrong one.
static inline double gemm_rel_error(const std::vector<float>& got, const std::vector<float>& w, const std::vector<float>& x,
                             int O, int I, int T) {
    double worst = 0;
    std::vector<double> exact(T), mag(T);
    for (int o = 0; o < O; o++) {
        std::fill(exact.begin(), exact.end(), 0.0);
        std::fill(mag.begin(), mag.end(), 0.0);
        for (int i = 0; i < I; i++) {
            const double wi = w[size_t(o) * I + i];
            const float* xi = x.data() + size_t(i) * T;
            for (int t = 0; t < T; t++) {
                exact[t] += wi * xi[t];
                mag[t] += std::fabs(wi * xi[t]);
            }
        }
        for (int t = 0; t < T; t++)
            worst = std::max(worst, std::fabs(double(got[size_t(o) * T + t]) - exact[t]) / std::max(mag[t], 1e-30));
    }
    return worst;
}
