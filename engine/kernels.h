// kernels.h: the math the engines are made of. Header-only, static inline,
// C-style (raw pointers + explicit sizes), only libc/libm; loops are written
// so that -O3 -march=native -fassociative-math -fopenmp-simd vectorises them.
//
// Layout convention: activations are FEATURE-MAJOR, x[f][t] (feature f of
// token t at x[f*T + t]), so a weight element w[o][i] (PyTorch's [out][in])
// multiplies a contiguous row of T tokens. That gives matmuls with no
// horizontal reductions while still reading the weights in place from the
// mmap'd file. Kernels that also take token-major data say so.
//
// Contents: k_expf / k_log1pf (vectorisable, ~1-2 ulp), silu, softplus,
// softmax, rmsnorm, layernorm, matmul, depthwise conv1d, the selective scan; for
// images: tanh/relu/gelu, im2col + packed GEMM (conv2d), max and average pooling.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "format.h"  // MmiaAct codes

// The `omp simd` pragmas need -fopenmp or -fopenmp-simd (the Makefile sets
// the latter for every engine build); no threads are used in here.

// Loops over exactly 16 lanes (a register tile's row, the scan's 16
// channels) say so with K_SIMD16: GCC's default for -march=native on
// AVX-512 CPUs is 256-bit vectors (-mprefer-vector-width=256), which splits
// each such loop into two ymm halves and halves the FMAs per instruction;
// simdlen(16) asks for one 512-bit vector instead (two 256-bit ones on AVX2
// machines: no loss there). The element-wise loops over transcendental
// functions (silu, softplus, tanh, GELU, the attention's exp) use it too,
// each element going through the same scalar function: measured over 131072
// elements on one core, GELU 0.98 -> 0.66 ns per element, softplus 0.68 ->
// 0.50, k_expf 0.35 -> 0.25 (GELU was ~10% of transformer-lm-m's prefill).
#define K_SIMD16 _Pragma("omp simd simdlen(16)")

// ---------------------------------------------------------------------------
// Scalar functions, written branch-free so they vectorise inside simd loops
// (libm's expf/log1pf are not vectorised without -ffast-math).

// p * 2^n for an integer-valued float n, by adding n to p's exponent bits
// (no libm ldexpf: that does not vectorise). The caller keeps the sum of
// exponents inside the normal range 1..254; unsigned arithmetic: no UB.
static inline float k_scale_pow2(float p, float n) {
    uint32_t bits;
    memcpy(&bits, &p, 4);
    bits += (uint32_t)(int32_t)n << 23;
    float y;
    memcpy(&y, &bits, 4);
    return y;
}

// exp(x), Cephes-style: x = n*ln2 + r, |r| <= ln2/2 (ln2 split in two so
// the reduction is exact), degree-7 Horner polynomial (Cephes' coefficients),
// scale by 2^n by adding n to the exponent bits. Max relative error ~2e-7.
// About 16 vector ops: the selective scan spends most of its time here.
// Saturates at exp(88.37) ~ 2.4e38; below -86.64 returns exp(-86.64) ~ 2.3e-38
// (keeps 2^n normal for the bit trick; no caller can see the difference).
// NaN in gives NaN out, with no undefined float->int conversion on the way.
static inline float k_expf(float x) {
    float xc = x > -86.6433525f ? x : -86.6433525f;  // written so NaN -> bound (maxps)
    xc = xc < 88.3762626647949f ? xc : 88.3762626647949f;
    float n = floorf(xc * 1.44269504088896341f + 0.5f);  // in [-125, 127]
    // fmaf, not a*b+c: under -fassociative-math the compiler may otherwise
    // merge the two halves of ln2 back into one and lose the exact reduction.
    // (Without hardware FMA fmaf is a slow libm call, and such builds do not
    // reassociate anyway: plain arithmetic there.)
#ifdef __FMA__
    float r = fmaf(n, -0.693359375f, xc);  // exact: 0.693359375 has 9 bits
    r = fmaf(n, 2.12194440e-4f, r);
#else
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
#endif
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;  // p = e^r in [0.70, 1.42]
    float y = k_scale_pow2(p, n);  // exponent + n stays in 1..254
    return x == x ? y : x;
}

// 2^x for x <= 0 or NaN only (NaN gives ~2e-38, i.e. ~0): the selective
// scan's exp(delta * A) = 2^(delta * A log2(e)), with delta >= 0 (softplus)
// and A <= 0 (= -exp(A_log), checked at load); the scan multiplies A by
// log2(e) once per block, so base 2 saves the per-element multiply and the
// two-step exact ln2 reduction of k_expf. x = n + f with n = rint(x) and
// f = x - n in [-1/2, 1/2] (exact); 2^f by a degree-6 polynomial
// (Chebyshev interpolation at 7 nodes, coefficients rounded to float; the
// constant rounds to exactly 1): max relative error 7.6e-8 including the
// float evaluation (tests/test_engine.cpp checks < 2e-7 against exp2). A
// degree-5 fit (2.2e-7, its constant 1.0000001) was one FMA cheaper but
// biased: over a 512-token recurrence test_lm_parity's largest logit
// difference grew from 3.6e-6 to 1.7e-5. 2^n by adding n to the exponent
// bits. Only the low clamp, at -125 (2^n must stay a normal float's scale):
// 13 vector ops against k_expf's ~20 (the scan does N = 16 of them per
// token and channel). For x > 0 the result is wrong: callers keep the domain.
static inline float k_exp2_nonpos(float x) {
    float xc = x > -125.0f ? x : -125.0f;  // NaN -> bound (maxps)
    float n = rintf(xc);                   // in [-125, 0]; one vrndscaleps
    float f = xc - n;                      // exact
    float p = 1.546144485e-04f;
    p = p * f + 1.340042800e-03f;
    p = p * f + 9.618056938e-03f;
    p = p * f + 5.550327152e-02f;
    p = p * f + 2.402265072e-01f;
    p = p * f + 6.931471825e-01f;
    p = p * f + 1.0f;  // p = 2^f in [0.70, 1.42]
    return k_scale_pow2(p, n);  // exponent + n stays in 1..127
}

// log(1 + y) for y in [0, 1] (what softplus needs): 2*atanh(s) with
// s = y / (2 + y) in [0, 1/3], so no cancellation for tiny y. Series to s^15:
// truncation < 2e-9 relative.
static inline float k_log1pf01(float y) {
    float s = y / (2.0f + y);
    float s2 = s * s;
    float p = 1.0f / 15.0f;
    p = p * s2 + 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    return 2.0f * s * p;
}

// silu(x) = x * sigmoid(x)
static inline float k_silu(float x) { return x / (1.0f + k_expf(-x)); }

// softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^-|x|). Equals x (in
// float) for x > 20, like PyTorch's threshold, without a branch.
static inline float k_softplus(float x) {
    float m = x > 0.0f ? x : 0.0f;
    return m + k_log1pf01(k_expf(-fabsf(x)));
}

// ---------------------------------------------------------------------------
// Vector ops

// x[i] = silu(x[i]), i < n
static inline void k_silu_inplace(float* x, int64_t n) {
K_SIMD16
    for (int64_t i = 0; i < n; i++) x[i] = k_silu(x[i]);
}

// x[i] = softplus(x[i]), i < n
static inline void k_softplus_inplace(float* x, int64_t n) {
K_SIMD16
    for (int64_t i = 0; i < n; i++) x[i] = k_softplus(x[i]);
}

// p[n] = softmax(logits[n]), max-subtracted so large logits do not overflow.
// Uses libm expf: it runs once per image on n_classes values.
static inline void k_softmax(float* p, const float* logits, int n) {
    float mx = logits[0];
    for (int i = 1; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        p[i] = expf(logits[i] - mx);
        sum += p[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) p[i] *= inv;
}

// RMSNorm over the feature axis, feature-major:
// out[f][t] = x[f][t] / sqrt(mean_f(x[f][t]^2) + eps) * w[f]
// x, out: [F][T] (may alias); w: [F]; ss: scratch [T]
static inline void k_rmsnorm_fm(float* out, const float* x, const float* w, int F, int T, float eps,
                                float* ss) {
    for (int t = 0; t < T; t++) ss[t] = 0.0f;
    for (int f = 0; f < F; f++) {
        const float* xf = x + (int64_t)f * T;
#pragma omp simd
        for (int t = 0; t < T; t++) ss[t] += xf[t] * xf[t];
    }
    float invF = 1.0f / (float)F;
#pragma omp simd
    for (int t = 0; t < T; t++) ss[t] = 1.0f / sqrtf(ss[t] * invF + eps);
    for (int f = 0; f < F; f++) {
        const float* xf = x + (int64_t)f * T;
        float* of = out + (int64_t)f * T;
        float wf = w[f];
#pragma omp simd
        for (int t = 0; t < T; t++) of[t] = xf[t] * ss[t] * wf;
    }
}

// LayerNorm over the feature axis, feature-major:
// out[f][t] = (x[f][t] - mu[t]) / sqrt(var[t] + eps) * w[f] + b[f], with mu
// and the biased var over f. Two passes (mean first), so the variance is a
// sum of squares of small numbers; the mean is summed relative to feature 0,
// so a large offset common to all features costs no precision either.
// x, out: [F][T] (may alias: out is written last); w, b: [F]; scratch: [2T]
static inline void k_layernorm_fm(float* out, const float* x, const float* w, const float* b, int F, int T,
                                  float eps, float* scratch) {
    float* mu = scratch;      // [T]
    float* rstd = mu + T;     // [T]
    for (int t = 0; t < T; t++) mu[t] = rstd[t] = 0.0f;
    for (int f = 1; f < F; f++) {
        const float* xf = x + (int64_t)f * T;
#pragma omp simd
        for (int t = 0; t < T; t++) mu[t] += xf[t] - x[t];
    }
    float invF = 1.0f / (float)F;
#pragma omp simd
    for (int t = 0; t < T; t++) mu[t] = x[t] + mu[t] * invF;
    for (int f = 0; f < F; f++) {
        const float* xf = x + (int64_t)f * T;
#pragma omp simd
        for (int t = 0; t < T; t++) rstd[t] += (xf[t] - mu[t]) * (xf[t] - mu[t]);
    }
#pragma omp simd
    for (int t = 0; t < T; t++) rstd[t] = 1.0f / sqrtf(rstd[t] * invF + eps);
    for (int f = 0; f < F; f++) {
        const float* xf = x + (int64_t)f * T;
        float* of = out + (int64_t)f * T;
        float wf = w[f], bf = b[f];
#pragma omp simd
        for (int t = 0; t < T; t++) of[t] = (xf[t] - mu[t]) * rstd[t] * wf + bf;
    }
}

// Matmul, feature-major: out[o][t] (+)= sum_i w[o][i] * x[i][t] + bias[o]
// w: [O][I] row-major (PyTorch nn.Linear layout, used in place)
// x: [I][T]; out: [O][T], must not alias x; bias: [O] or NULL
// accumulate: 0 = overwrite out, 1 = add to it (residual connections)
//
// Register tile: 8 outputs x 32 tokens (16 accumulators of 16 floats: half
// the registers, no horizontal sums); per input feature two vector loads of
// x and 8 broadcasts feed 16 FMAs. The tile's 32 tokens of x are first
// copied into a contiguous panel [i][32] (at most K_MM_KB features at a
// time, on the stack; not for I < 32, where the copy costs more than it
// saves), so the tile reads one 128-byte row per feature
// instead of rows T floats apart that collide in the L1 cache's sets.
// Measured on one AVX-512 core (~214-230 GFLOP/s peak): ~105 GFLOP/s for the
// earlier 8 x 16 tile on x in place, ~130-150 for 8 x 32, ~155-160 with the
// panel, on the LM presets' shapes. Every output still sums over i in order
// (a partial sum between panels goes through out, exactly), so the result is
// bit-identical to the plain loop. Leftover outputs use a 4-row tile, then
// 1-row tiles; 16 <= T < 32 uses 16-token tiles. When T is not a multiple of
// the tile width the last tile is the one ending at T, overlapping the
// previous one; it only stores its new columns, so nothing is computed
// twice into out.
#define K_MM_TO 8
#define K_MM_TT 32
#define K_MM_KB 128  // input features per panel: 16 KB, a third of the L1

// One tile: outputs o0..o0+rows-1, tokens t0..t0+nt-1 (nt = 16 or 32), input
// features i0..i1-1 read from xp (feature i0 + i at xp + i * ldx); stores tokens
// t0+j0.. The sum starts from bias (+ out when accumulate) when i0 == 0,
// else from out (the previous panels' partial sum). rows and nt are
// literals at each call site, so after inlining the loops unroll and acc
// lives in registers.
__attribute__((always_inline)) static inline void k_mm_tile(float* out, const float* w, const float* xp,
                                                            const float* bias, int rows, int nt, int I, int i0,
                                                            int i1, int64_t ldx, int T, int o0, int t0, int j0,
                                                            int accumulate) {
    float acc[K_MM_TO][K_MM_TT];
    const int fresh = i0 == 0;
#pragma GCC unroll 8
    for (int k = 0; k < rows; k++) {
        float b = bias && fresh ? bias[o0 + k] : 0.0f;
        const float* prev = out + (int64_t)(o0 + k) * T + t0;
K_SIMD16
        for (int j = 0; j < nt; j++) acc[k][j] = accumulate || !fresh ? prev[j] + b : b;
    }
    const float* w0 = w + (int64_t)o0 * I;
    for (int i = i0; i < i1; i++) {
        const float* xi = xp + (i - i0) * ldx;
#pragma GCC unroll 8
        for (int k = 0; k < rows; k++) {
            float wk = w0[(int64_t)k * I + i];
K_SIMD16
            for (int j = 0; j < nt; j++) acc[k][j] += wk * xi[j];
        }
    }
    if (j0 == 0) {  // a plain store: no read of out (it may be cold, and the read would wait for it)
#pragma GCC unroll 8
        for (int k = 0; k < rows; k++) {
            float* ok = out + (int64_t)(o0 + k) * T + t0;
K_SIMD16
            for (int j = 0; j < nt; j++) ok[j] = acc[k][j];
        }
        return;
    }
#pragma GCC unroll 8
    for (int k = 0; k < rows; k++) {
        float* ok = out + (int64_t)(o0 + k) * T + t0;
        // a fixed-width blend rather than a loop from j0, so acc stays in registers
K_SIMD16
        for (int j = 0; j < nt; j++) ok[j] = j >= j0 ? acc[k][j] : ok[j];
    }
}

// All tiles of width nt (a literal: 16 or 32) over T >= nt tokens.
__attribute__((always_inline)) static inline void k_mm_sweep(float* out, const float* w, const float* x,
                                                             const float* bias, int nt, int O, int I, int T,
                                                             int accumulate) {
    float xp[K_MM_KB * K_MM_TT];  // the panel: x[i0 + i][t0 + j] at xp[i * nt + j]
    const int O8 = O / K_MM_TO * K_MM_TO;
    for (int t0 = 0; t0 < T; t0 += nt) {
        int j0 = 0;
        if (t0 + nt > T) {  // last, partial tile: shift it back, store the new part
            j0 = t0 - (T - nt);
            t0 = T - nt;
        }
        for (int i0 = 0; i0 < I; i0 += K_MM_KB) {
            const int i1 = I - i0 < K_MM_KB ? I : i0 + K_MM_KB;
            const float* xt = x + (int64_t)i0 * T + t0;  // few features (dt_proj's dt_rank): x in place
            int64_t ldx = T;
            if (I >= 32) {
                for (int i = i0; i < i1; i++) {
                    const float* xi = x + (int64_t)i * T + t0;
                    float* pi = xp + (int64_t)(i - i0) * nt;
K_SIMD16
                    for (int j = 0; j < nt; j++) pi[j] = xi[j];
                }
                xt = xp;
                ldx = nt;
            }
            for (int o0 = 0; o0 < O8; o0 += K_MM_TO)
                k_mm_tile(out, w, xt, bias, K_MM_TO, nt, I, i0, i1, ldx, T, o0, t0, j0, accumulate);
            int o0 = O8;
            if (O - o0 >= 4) {  // e.g. x_proj's dt_rank + 2 d_state = 36 rows
                k_mm_tile(out, w, xt, bias, 4, nt, I, i0, i1, ldx, T, o0, t0, j0, accumulate);
                o0 += 4;
            }
            for (; o0 < O; o0++) k_mm_tile(out, w, xt, bias, 1, nt, I, i0, i1, ldx, T, o0, t0, j0, accumulate);
        }
        if (j0) break;
    }
}

static inline void k_matmul_fm(float* out, const float* w, const float* x, const float* bias, int O,
                               int I, int T, int accumulate) {
    if (T < 16) {  // short sequences (one token...): row by row
        for (int o = 0; o < O; o++) {
            const float* wo = w + (int64_t)o * I;
            float* oo = out + (int64_t)o * T;
            float acc[16];
            float b = bias ? bias[o] : 0.0f;
            for (int t = 0; t < T; t++) acc[t] = accumulate ? oo[t] + b : b;
            for (int i = 0; i < I; i++) {
                const float* xi = x + (int64_t)i * T;
                float wv = wo[i];
                for (int t = 0; t < T; t++) acc[t] += wv * xi[t];
            }
            for (int t = 0; t < T; t++) oo[t] = acc[t];
        }
    } else if (T < K_MM_TT) {
        k_mm_sweep(out, w, x, bias, 16, O, I, T, accumulate);
    } else {
        k_mm_sweep(out, w, x, bias, K_MM_TT, O, I, T, accumulate);
    }
}

// Matrix-vector: out[o] = sum_i w[o][i] * x[i] + bias[o]
// w: [O][I]; x: [I]; out: [O]; bias: [O] or NULL
static inline void k_matvec(float* out, const float* w, const float* x, const float* bias, int O, int I) {
    for (int o = 0; o < O; o++) {
        const float* wo = w + (int64_t)o * I;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < I; i++) s += wo[i] * x[i];
        out[o] = s + (bias ? bias[o] : 0.0f);
    }
}

// Transpose: out[c * ldo + r] = in[r * ldi + c] for r < R, c < C (in and
// out must not overlap). Moves data between the feature-major activations
// and token-major layouts: the scan's 16-channel lanes, the K/V cache rows,
// the embedding rows. Full 16 x 16 blocks are 16 vector loads, 4 rounds of
// 16 two-source shuffles (round s swaps bit s of the row and column index:
// after all four, element (r, c) holds (c, r)) and 16 vector stores. GCC
// leaves the element loop scalar; measured on one core (16 rows of 256,
// loaded machine) 2.7-3.4x faster than it, and in mamba-lm-m's prefill the
// scan's moves fell from 9.4% of the time (four element loops) to 3.8%
// (three of these). GCC's vector extension, so other compilers take the
// plain loop. Edges (R or C not a multiple of 16): the plain loop.
#if defined(__GNUC__) && !defined(__clang__)
// aligned(4): rows need not be 64-byte aligned; may_alias: read and written
// through float pointers. (Not memcpy: GCC splits that into two 256-bit
// moves through the stack, whose 512-bit reload cannot be forwarded: 3x
// slower.)
typedef float k_v16f __attribute__((vector_size(64), aligned(4), may_alias));
typedef int32_t k_v16i __attribute__((vector_size(64)));
// r[0..16) = the 16 rows of a block, transposed in place.
static inline void k_transpose16_regs(k_v16f* r) {
    // round s: for rows a (bit s clear) and b = a + s, a takes its own
    // columns with bit s clear and b's columns - s for the others; b takes
    // a's columns + s and its own columns with bit s set
    static const k_v16i lo[4] = {{0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30},
                                 {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29},
                                 {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27},
                                 {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}};
    static const k_v16i hi[4] = {{1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31},
                                 {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31},
                                 {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31},
                                 {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31}};
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        const int s = 1 << k;
#pragma GCC unroll 16
        for (int a = 0; a < 16; a++) {
            if (a & s) continue;
            k_v16f x = r[a], y = r[a + s];
            r[a] = __builtin_shuffle(x, y, lo[k]);
            r[a + s] = __builtin_shuffle(x, y, hi[k]);
        }
    }
}
#endif

static inline void k_transpose(float* out, int64_t ldo, const float* in, int64_t ldi, int R, int C) {
    int R16 = 0, C16 = 0;
#if defined(__GNUC__) && !defined(__clang__)
    R16 = R / 16 * 16;
    C16 = C / 16 * 16;
    for (int r0 = 0; r0 < R16; r0 += 16)
        for (int c0 = 0; c0 < C16; c0 += 16) {
            k_v16f v[16];
            for (int i = 0; i < 16; i++) v[i] = *(const k_v16f*)(in + (r0 + i) * ldi + c0);
            k_transpose16_regs(v);
            for (int i = 0; i < 16; i++) *(k_v16f*)(out + (c0 + i) * ldo + r0) = v[i];
        }
#endif
    for (int r = 0; r < R; r++)  // the edges: columns past C16 of every row, then rows past R16
        for (int c = r < R16 ? C16 : 0; c < C; c++) out[c * ldo + r] = in[r * ldi + c];
}

// Depthwise 1-D convolution along tokens, feature-major, zero padding,
// optionally followed by silu (the Mamba block's u = silu(conv(x))):
// out[e][t] = act(b[e] + sum_{k<K} w[e][k] * x[e][t - left + k])  (x = 0 outside 0..T-1)
// left = K-1: causal (output t sees inputs <= t); left = (K-1)/2: "same".
// x, out: [E][T] (must not alias); w: [E][K]; b: [E]
// One pass per row: the taps are summed in registers for each token (the
// interior, where every tap is inside the row, has no bounds checks).
// out[t] = b + sum_{k<K} w[k] * xs[t + k] for t in [t0, t1): no bounds checks.
__attribute__((always_inline)) static inline void k_conv_interior(float* out, const float* xs, const float* w,
                                                                  float b, int t0, int t1, int K) {
    if (K > 5) {  // long kernels: tap-outer passes over the row (vectorise over t)
        for (int t = t0; t < t1; t++) out[t] = b;
        for (int k = 0; k < K; k++) {
            float wk = w[k];
#pragma omp simd
            for (int t = t0; t < t1; t++) out[t] += wk * xs[t + k];
        }
        return;
    }
#pragma omp simd
    for (int t = t0; t < t1; t++) {
        float s = b;
        for (int k = 0; k < K; k++) s += w[k] * xs[t + k];
        out[t] = s;
    }
}

static inline void k_conv1d_dw_fm(float* out, const float* x, const float* w, const float* b, int E,
                                  int T, int K, int left, int apply_silu) {
    // interior tokens: t - left >= 0 and t - left + K - 1 <= T - 1
    int t_in0 = left < T ? left : T;
    int t_in1 = T - (K - 1 - left);
    if (t_in1 < t_in0) t_in1 = t_in0;
    for (int e = 0; e < E; e++) {
        const float* xe = x + (int64_t)e * T;
        const float* we = w + (int64_t)e * K;
        float* oe = out + (int64_t)e * T;
        const float be = b[e];
        for (int t = 0; t < t_in0; t++) {  // left edge
            float s = be;
            for (int k = 0; k < K; k++) {
                int src = t - left + k;
                if (src >= 0 && src < T) s += we[k] * xe[src];
            }
            oe[t] = s;
        }
        const float* xs = xe - left;  // xs[t + k] = x[t - left + k]
        switch (K) {  // literal K for the usual sizes, so the taps unroll into registers
            case 2: k_conv_interior(oe, xs, we, be, t_in0, t_in1, 2); break;
            case 3: k_conv_interior(oe, xs, we, be, t_in0, t_in1, 3); break;
            case 4: k_conv_interior(oe, xs, we, be, t_in0, t_in1, 4); break;
            case 5: k_conv_interior(oe, xs, we, be, t_in0, t_in1, 5); break;
            default: k_conv_interior(oe, xs, we, be, t_in0, t_in1, K); break;
        }
        for (int t = t_in1 > t_in0 ? t_in1 : t_in0; t < T; t++) {  // right edge
            float s = be;
            for (int k = 0; k < K; k++) {
                int src = t - left + k;
                if (src >= 0 && src < T) s += we[k] * xe[src];
            }
            oe[t] = s;
        }
        if (apply_silu) {
K_SIMD16
            for (int t = 0; t < T; t++) oe[t] = k_silu(oe[t]);
        }
    }
}

// The selective scan for ONE channel e over L tokens, with state h[N]:
//   h[n] = exp(delta[t] * A[n]) * h[n] + delta[t] * B[t][n] * u[t]
//   y[t] = sum_n C[t][n] * h[n] + Dskip * u[t];  y[t] *= silu(z[t]) if z
// u, delta, z, y: this channel's values, token t at [t * stride] (stride 1
// for feature-major data, E for token-major [L][E]);
// A: [N] (this channel's row of A = -exp(A_log)); B, C: [L][N] token-major;
// h: [N], carried in and out (zero it for a fresh sequence).
static inline void k_scan_channel(int L, int N, const float* u, const float* delta, const float* z,
                                  float* y, ptrdiff_t stride, const float* A, const float* B,
                                  const float* C, float Dskip, float* h) {
    for (int t = 0; t < L; t++) {
        float dt = delta[t * stride];
        float ut = u[t * stride];
        float du = dt * ut;
        const float* Bt = B + (int64_t)t * N;
        const float* Ct = C + (int64_t)t * N;
        float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
        for (int n = 0; n < N; n++) {
            float hn = k_expf(dt * A[n]) * h[n] + du * Bt[n];
            h[n] = hn;
            acc += Ct[n] * hn;
        }
        float yt = acc + Dskip * ut;
        if (z) yt *= k_silu(z[t * stride]);
        y[t * stride] = yt;
    }
}

// The selective scan for 16 channels at once (lanes j = 0..15), so that
// every operation is a 16-wide vector op with no horizontal sums, and the N
// state chains run side by side instead of one after the other:
//   h[n][j] = exp(delta[t][j] * A[j][n]) * h[n][j] + delta[t][j] * B[t][n] * u[t][j]
//   y[t][j] = sum_n C[t][n] * h[n][j] + Dskip[j] * u[t][j];  y *= silu(z) if z
// u, delta, z, y: lane j of token t at [t * ld + j] (ld = 16 for a packed
// block, E for token-major [L][E] data); A: [16][N] (rows of A[E][N]);
// B, C: [L][N]; Dskip: [16]; h: [N][16] state (lane-minor!), in/out;
// at: scratch [N][16] (A transposed and scaled by log2(e), so that
// exp(delta * A) = 2^(delta * at): k_exp2_nonpos).
// Requires delta >= 0 and A <= 0 (NaN allowed): see k_exp2_nonpos.
#define K_SCAN_LANES 16
static inline void k_scan_lanes16(int L, int N, const float* u, const float* delta, const float* z, float* y,
                                  ptrdiff_t ld, const float* A, const float* B, const float* C,
                                  const float* Dskip, float* h, float* at) {
    for (int n = 0; n < N; n++)
        for (int j = 0; j < K_SCAN_LANES; j++)
            at[n * K_SCAN_LANES + j] = A[(int64_t)j * N + n] * 1.44269504088896341f;
    for (int t = 0; t < L; t++) {
        const float* ut = u + t * ld;
        const float* dt = delta + t * ld;
        const float* Bt = B + (int64_t)t * N;
        const float* Ct = C + (int64_t)t * N;
        float du[K_SCAN_LANES], acc[K_SCAN_LANES];
K_SIMD16
        for (int j = 0; j < K_SCAN_LANES; j++) {
            du[j] = dt[j] * ut[j];
            acc[j] = Dskip[j] * ut[j];
        }
        for (int n = 0; n < N; n++) {
            float b = Bt[n], c = Ct[n];
            float* hn = h + n * K_SCAN_LANES;
            const float* an = at + n * K_SCAN_LANES;
K_SIMD16
            for (int j = 0; j < K_SCAN_LANES; j++) {
                float hv = k_exp2_nonpos(dt[j] * an[j]) * hn[j] + du[j] * b;
                hn[j] = hv;
                acc[j] += c * hv;
            }
        }
        float* yt = y + t * ld;
        if (z) {
            const float* zt = z + t * ld;
K_SIMD16
            for (int j = 0; j < K_SCAN_LANES; j++) yt[j] = acc[j] * k_silu(zt[j]);
        } else {
K_SIMD16
            for (int j = 0; j < K_SCAN_LANES; j++) yt[j] = acc[j];
        }
    }
}

// ---------------------------------------------------------------------------
// Image ops: activations, 2-D convolution as im2col + GEMM, pooling.
// Activations are CHANNEL-MAJOR images, x[c][y][x] (the feature-major layout
// above with the H*W pixels as tokens), so a conv is one GEMM whose output
// is already the next layer's input.

// tanh(x) = sign(x) (1 - e) / (1 + e), e = exp(-2|x|) in (0, 1]: vectorises
// (libm's tanhf does not), absolute error ~2e-7.
static inline float k_tanhf(float x) {
    float e = k_expf(-2.0f * fabsf(x));
    float t = (1.0f - e) / (1.0f + e);
    return x < 0.0f ? -t : t;
}

// erfc(z) for z >= 0: Numerical Recipes' erfcc (Press et al., 2nd ed.,
// section 6.2), a Chebyshev fit with fractional error < 1.2e-7 for every
// z >= 0, so the tail keeps its relative precision (1 + erf(-z) would
// cancel). One k_expf and one division: vectorises.
static inline float k_erfc_nonneg(float z) {
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    return t * k_expf(p - z * z);
}

// gelu(x) = x/2 (1 + erf(x/sqrt2)) = x/2 erfc(-x/sqrt2), the exact erf form
// (PyTorch's default): with e = erfc(|x|/sqrt2), x/2 e for x < 0 (relative
// precision kept in the negative tail) and x/2 (2 - e) for x >= 0.
static inline float k_gelu(float x) {
    float e = k_erfc_nonneg(fabsf(x) * 0.70710678118654752f);
    return 0.5f * x * (x < 0.0f ? e : 2.0f - e);
}

// x[i] = act(x[i]), i < n; act is an MmiaAct (format.h). GELU is the exact
// erf form (k_gelu; it replaced libm's erff, which does not vectorise and
// took ~18% of mamba-seed000's engine time in its stem).
static inline void k_activate(float* x, int64_t n, int act) {
    if (act == MMIA_ACT_RELU) {
#pragma omp simd
        for (int64_t i = 0; i < n; i++) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
    } else if (act == MMIA_ACT_TANH) {
K_SIMD16
        for (int64_t i = 0; i < n; i++) x[i] = k_tanhf(x[i]);
    } else if (act == MMIA_ACT_GELU) {
K_SIMD16
        for (int64_t i = 0; i < n; i++) x[i] = k_gelu(x[i]);
    }
}

// The GEMM works on the im2col matrix X [I][T] stored in PANELS of
// K_GEMM_NR tokens: panel p holds tokens [p*NR, p*NR + NR) as [I][NR], zero
// past T. A register tile then reads one contiguous NR-float row per input
// feature (no strided rows that alias in the L1 cache), and one panel
// (I*NR floats, 27 KB for I = 432) stays in L1 while all of W streams past
// it from L2: the cache blocking.
#define K_GEMM_NR 16
#define K_GEMM_MR 8

// Floats of the packed im2col buffer for I input features and T tokens.
static inline int64_t k_im2col_packed_floats(int64_t I, int64_t T) {
    return (T + K_GEMM_NR - 1) / K_GEMM_NR * K_GEMM_NR * I;
}

// im2col of one image for a KxK conv, stride 1, zero padding `pad`, into the
// panel layout: feature i = (c*K + ky)*K + kx (PyTorch's weight order
// [O][C][K][K] flattened), token t = oy*Wo + ox, value x[c][oy+ky-pad][ox+kx-pad]
// (0 outside the image). x: [C][H][W]; xp: k_im2col_packed_floats(C*K*K, Ho*Wo).
static inline void k_im2col_packed(float* xp, const float* x, int C, int H, int W, int K, int pad, int Ho,
                                   int Wo) {
    const int T = Ho * Wo, I = C * K * K, np = (T + K_GEMM_NR - 1) / K_GEMM_NR;
    for (int p = 0; p < np; p++) {
        int oy[K_GEMM_NR], ox[K_GEMM_NR];  // token coordinates of this panel; oy = -1 past T
        for (int j = 0; j < K_GEMM_NR; j++) {
            int t = p * K_GEMM_NR + j;
            oy[j] = t < T ? t / Wo : -1;
            ox[j] = t < T ? t % Wo : 0;
        }
        float* panel = xp + (int64_t)p * I * K_GEMM_NR;
        for (int c = 0; c < C; c++) {
            const float* xc = x + (int64_t)c * H * W;
            for (int ky = 0; ky < K; ky++) {
                for (int kx = 0; kx < K; kx++) {
                    float* dst = panel + (int64_t)((c * K + ky) * K + kx) * K_GEMM_NR;
                    for (int j = 0; j < K_GEMM_NR; j++) {
                        int iy = oy[j] + ky - pad, ix = ox[j] + kx - pad;
                        int inside = oy[j] >= 0 && iy >= 0 && iy < H && ix >= 0 && ix < W;
                        dst[j] = inside ? xc[iy * W + ix] : 0.0f;
                    }
                }
            }
        }
    }
}

// One register tile: outputs o0..o0+rows-1 over the NR tokens of one panel,
// of which the first nt are stored. rows is a literal at each call site, so
// after inlining the loops unroll and acc lives in registers.
__attribute__((always_inline)) static inline void k_gemm_tile(float* out, const float* w, const float* panel,
                                                              const float* bias, int rows, int I, int T,
                                                              int o0, int t0, int nt) {
    float acc[K_GEMM_MR][K_GEMM_NR];
#pragma GCC unroll 8
    for (int k = 0; k < rows; k++) {
        float b = bias ? bias[o0 + k] : 0.0f;
K_SIMD16
        for (int j = 0; j < K_GEMM_NR; j++) acc[k][j] = b;
    }
    const float* w0 = w + (int64_t)o0 * I;
    for (int i = 0; i < I; i++) {
        const float* xi = panel + (int64_t)i * K_GEMM_NR;
#pragma GCC unroll 8
        for (int k = 0; k < rows; k++) {
            float wk = w0[(int64_t)k * I + i];
K_SIMD16
            for (int j = 0; j < K_GEMM_NR; j++) acc[k][j] += wk * xi[j];
        }
    }
#pragma GCC unroll 8
    for (int k = 0; k < rows; k++) {
        float* ok = out + (int64_t)(o0 + k) * T + t0;
        if (nt == K_GEMM_NR) {
K_SIMD16
            for (int j = 0; j < K_GEMM_NR; j++) ok[j] = acc[k][j];
        } else {
            for (int j = 0; j < nt; j++) ok[j] = acc[k][j];
        }
    }
}

// out[o][t] = bias[o] + sum_i w[o][i] * X[i][t]
// w: [O][I] row-major (used in place); xp: X packed by k_im2col_packed (or
// any [I][T] matrix in that panel layout); out: [O][T]; bias: [O] or NULL.
static inline void k_gemm_packed(float* out, const float* w, const float* xp, const float* bias, int O, int I,
                                 int T) {
    const int np = (T + K_GEMM_NR - 1) / K_GEMM_NR, O8 = O / K_GEMM_MR * K_GEMM_MR;
    for (int p = 0; p < np; p++) {
        const float* panel = xp + (int64_t)p * I * K_GEMM_NR;
        const int t0 = p * K_GEMM_NR, nt = T - t0 < K_GEMM_NR ? T - t0 : K_GEMM_NR;
        for (int o0 = 0; o0 < O8; o0 += K_GEMM_MR) k_gemm_tile(out, w, panel, bias, K_GEMM_MR, I, T, o0, t0, nt);
        for (int o0 = O8; o0 < O; o0++) k_gemm_tile(out, w, panel, bias, 1, I, T, o0, t0, nt);
    }
}

// KxK convolution, stride 1, zero padding pad, then the activation:
// out[o][oy][ox] = act(b[o] + sum_{c,ky,kx} w[o][c][ky][kx] * x[c][oy+ky-pad][ox+kx-pad])
// x: [C][H][W]; w: [O][C][K][K]; b: [O] or NULL; out: [O][Ho][Wo] with
// Ho = H + 2 pad - K + 1 (same for Wo); col: k_im2col_packed_floats(C*K*K, Ho*Wo) scratch.
static inline void k_conv2d(float* out, const float* x, const float* w, const float* b, int C, int H, int W,
                            int O, int K, int pad, int act, float* col) {
    const int Ho = H + 2 * pad - K + 1, Wo = W + 2 * pad - K + 1;
    k_im2col_packed(col, x, C, H, W, K, pad, Ho, Wo);
    k_gemm_packed(out, w, col, b, O, C * K * K, Ho * Wo);
    k_activate(out, (int64_t)O * Ho * Wo, act);
}

// Group norm (Wu & He 2018; PyTorch's group_norm): the C channels of one
// image are cut into G groups of C/G consecutive channels; each group is
// normalised by its own mean and biased variance over its (C/G)*HW values,
// then every channel gets its affine map:
// x[c][i] = (x[c][i] - mu_g) / sqrt(var_g + eps) * w[c] + b[c], g = c / (C/G).
// In place on x [C][HW]; w, b: [C]; G divides C. Sums in double, two passes
// (mean first), so a large offset costs no precision.
static inline void k_group_norm(float* x, const float* w, const float* b, int C, int HW, int G, float eps) {
    const int cpg = C / G;
    const int64_t n = (int64_t)cpg * HW;
    for (int g = 0; g < G; g++) {
        float* xg = x + (int64_t)g * n;
        double s = 0.0;
        for (int64_t i = 0; i < n; i++) s += xg[i];
        const double mu = s / (double)n;
        double ss = 0.0;
        for (int64_t i = 0; i < n; i++) ss += ((double)xg[i] - mu) * ((double)xg[i] - mu);
        const float rstd = (float)(1.0 / sqrt(ss / (double)n + (double)eps));
        const float muf = (float)mu;
        for (int c = 0; c < cpg; c++) {
            float* xc = xg + (int64_t)c * HW;
            const float sc = rstd * w[g * cpg + c], sh = b[g * cpg + c];
#pragma omp simd
            for (int i = 0; i < HW; i++) xc[i] = (xc[i] - muf) * sc + sh;
        }
    }
}

// Max over non-overlapping s x s windows (stride s, leftover rows/columns
// dropped, as PyTorch's max_pool2d(x, s, s)): x [C][H][W] -> out [C][H/s][W/s].
static inline void k_maxpool2d(float* out, const float* x, int C, int H, int W, int s) {
    const int Ho = H / s, Wo = W / s;
    for (int c = 0; c < C; c++) {
        const float* xc = x + (int64_t)c * H * W;
        float* oc = out + (int64_t)c * Ho * Wo;
        for (int oy = 0; oy < Ho; oy++) {
            float* orow = oc + (int64_t)oy * Wo;
            const float* r0 = xc + (int64_t)oy * s * W;
            for (int ox = 0; ox < Wo; ox++) orow[ox] = r0[ox * s];
            for (int dy = 0; dy < s; dy++) {
                const float* r = r0 + (int64_t)dy * W;
                for (int ox = 0; ox < Wo; ox++)
                    for (int dx = 0; dx < s; dx++) {
                        float v = r[ox * s + dx];
                        orow[ox] = v > orow[ox] ? v : orow[ox];
                    }
            }
        }
    }
}

// out[c] = mean of x[c][*][*]: global average pooling, x [C][H*W] -> out [C].
static inline void k_global_avgpool(float* out, const float* x, int C, int HW) {
    for (int c = 0; c < C; c++) {
        const float* xc = x + (int64_t)c * HW;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < HW; i++) s += xc[i];
        out[c] = s / (float)HW;
    }
}
