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
// softmax, rmsnorm, matmul, depthwise conv1d, the selective scan.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

// The `omp simd` pragmas need -fopenmp or -fopenmp-simd (the Makefile sets
// the latter for every engine build); no threads are used in here.

// ---------------------------------------------------------------------------
// Scalar functions, written branch-free so they vectorise inside simd loops
// (libm's expf/log1pf are not vectorised without -ffast-math).

static inline float k_bits_to_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// exp(x), Cephes-style: x = n*ln2 + r, |r| <= ln2/2, degree-6 polynomial,
// scale by 2^n built from bits. Max relative error ~2e-7. Saturates at
// exp(88.37) ~ 2.4e38 and returns 0 below exp(-88.37); NaN stays NaN.
static inline float k_expf(float x) {
    float xc = x < -88.3762626647949f ? -88.3762626647949f : x;
    xc = xc > 88.3762626647949f ? 88.3762626647949f : xc;
    xc = xc == xc ? xc : 0.0f;  // NaN: compute on 0, return NaN below (no UB int cast)
    float n = floorf(xc * 1.44269504088896341f + 0.5f);
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    int32_t e = (int32_t)n + 127;  // n in [-127, 127]: e in [0, 254]
    y = y * k_bits_to_float((uint32_t)e << 23);
    return x == x ? y : x;
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
#pragma omp simd
    for (int64_t i = 0; i < n; i++) x[i] = k_silu(x[i]);
}

// x[i] = softplus(x[i]), i < n
static inline void k_softplus_inplace(float* x, int64_t n) {
#pragma omp simd
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

// Matmul, feature-major: out[o][t] (+)= sum_i w[o][i] * x[i][t] + bias[o]
// w: [O][I] row-major (PyTorch nn.Linear layout, used in place)
// x: [I][T]; out: [O][T], must not alias x; bias: [O] or NULL
// accumulate: 0 = overwrite out, 1 = add to it (residual connections)
//
// Register tile: 8 outputs x 16 tokens (8 vector accumulators); per input
// feature one vector load of x and 8 broadcast FMAs. Leftover tokens and
// outputs go through a plain loop.
#define K_MM_TO 8
#define K_MM_TT 16
static inline void k_matmul_fm(float* out, const float* w, const float* x, const float* bias, int O,
                               int I, int T, int accumulate) {
    int T16 = T / K_MM_TT * K_MM_TT;
    int O8 = O / K_MM_TO * K_MM_TO;
    for (int t0 = 0; t0 < T16; t0 += K_MM_TT) {
        for (int o0 = 0; o0 < O8; o0 += K_MM_TO) {
            float acc[K_MM_TO][K_MM_TT];
            for (int k = 0; k < K_MM_TO; k++) {
                float b = bias ? bias[o0 + k] : 0.0f;
                const float* prev = out + (int64_t)(o0 + k) * T + t0;
#pragma omp simd
                for (int j = 0; j < K_MM_TT; j++) acc[k][j] = accumulate ? prev[j] + b : b;
            }
            const float* w0 = w + (int64_t)o0 * I;
            for (int i = 0; i < I; i++) {
                const float* xi = x + (int64_t)i * T + t0;
#pragma GCC unroll 8
                for (int k = 0; k < K_MM_TO; k++) {
                    float wk = w0[(int64_t)k * I + i];
#pragma omp simd
                    for (int j = 0; j < K_MM_TT; j++) acc[k][j] += wk * xi[j];
                }
            }
            for (int k = 0; k < K_MM_TO; k++) {
                float* ok = out + (int64_t)(o0 + k) * T + t0;
#pragma omp simd
                for (int j = 0; j < K_MM_TT; j++) ok[j] = acc[k][j];
            }
        }
    }
    // Leftovers: outputs O8..O-1 over the tiled tokens, and every output over
    // tokens T16..T-1. Dot products over i, one (o, t) at a time.
    for (int o = 0; o < O; o++) {
        const float* wo = w + (int64_t)o * I;
        float b = bias ? bias[o] : 0.0f;
        for (int t = (o < O8 ? T16 : 0); t < T; t++) {
            float s = 0.0f;
#pragma omp simd reduction(+ : s)
            for (int i = 0; i < I; i++) s += wo[i] * x[(int64_t)i * T + t];
            float* dst = out + (int64_t)o * T + t;
            *dst = (accumulate ? *dst : 0.0f) + s + b;
        }
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

// Depthwise 1-D convolution along tokens, feature-major, zero padding:
// out[e][t] = b[e] + sum_{k<K} w[e][k] * x[e][t - left + k]  (0 outside 0..T-1)
// left = K-1: causal (output t sees inputs <= t); left = (K-1)/2: "same".
// x, out: [E][T] (must not alias); w: [E][K]; b: [E]
static inline void k_conv1d_dw_fm(float* out, const float* x, const float* w, const float* b, int E,
                                  int T, int K, int left) {
    for (int e = 0; e < E; e++) {
        const float* xe = x + (int64_t)e * T;
        const float* we = w + (int64_t)e * K;
        float* oe = out + (int64_t)e * T;
        float be = b[e];
        for (int t = 0; t < T; t++) oe[t] = be;
        for (int k = 0; k < K; k++) {
            // out[t] += w[k] * x[t + s] for the t where 0 <= t + s < T
            int s = k - left;
            int t_lo = s < 0 ? -s : 0;
            int t_hi = s > 0 ? T - s : T;
            float wk = we[k];
#pragma omp simd
            for (int t = t_lo; t < t_hi; t++) oe[t] += wk * xe[t + s];
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
