// mamba.cpp: inference for the Mamba image classifier, in one readable file.
//
//   ./mamba model.bin input.bin [--quiet | --probs] [--out FILE] [--threads N]
//
// The model file (docs/FORMAT.md) is mmap'd and validated completely, then
// the weights are used in place. Images are normalised, optionally run
// through a conv stem (3x3 conv + folded batch norm or group norm + GELU layers), cut into
// patches -> tokens, run through n_layers residual Mamba blocks (pre- or
// post-norm, RMSNorm or LayerNorm), final norm and pooling, and a linear head
// gives logits. Built with -fopenmp, batches run in parallel over images.
//
// Only libc, libm and OpenMP. Compiled with -DMAMBA_NO_MAIN it is a library
// (engine/mamba.h) for ./attack, the tests and the fuzzers. The command line
// is engine/cli.h's, shared with ./cnn.
//
// Shape legend: L tokens, D d_model, E d_inner, N d_state, K d_conv,
// R dt_rank, Cp channels the patches are cut from (C, or the stem's last
// width), P = Cp*ph*pw patch size. Activations inside the engine are
// feature-major ([D][L]: feature d of token t at d*L + t; images [C][H][W]),
// see kernels.h.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"  // OpenMP over images (and omp.h with -fopenmp)
#include "engine/cli.h"
#include "engine/io.h"
#include "engine/kernels.h"
#include "engine/lm.h"
#include "engine/mamba.h"
#include "engine/mamba_lm.h"
#include "engine/packed.h"

// ----------------------------------------------------------------------------
// The selective scan (public, token-major; the engine calls the same kernel
// on its feature-major activations).

void mamba_scan(int L, int E, int N, const float* u, const float* delta, const float* A, const float* B,
                const float* C, const float* D, const float* z, float* y, float* h) {
    // Blocks of 16 channels run the vectorised kernel straight on the
    // token-major data (lane stride 1, token stride E); the state is moved
    // to the kernel's [N][16] layout and back. Leftover channels (and the
    // whole call if scratch cannot be had) go one channel at a time.
    int E16 = E / K_SCAN_LANES * K_SCAN_LANES;
    // The fast kernel needs Mamba's signs (delta >= 0, A <= 0); anything else
    // takes the general per-channel path, so the result is right either way.
    int signs_ok = 1;
    for (int64_t i = 0; i < (int64_t)E * N; i++) signs_ok &= !(A[i] > 0.0f);
    for (int64_t i = 0; i < (int64_t)L * E; i++) signs_ok &= !(delta[i] < 0.0f);
    if (!signs_ok) E16 = 0;
    float* hs = E16 ? (float*)malloc(sizeof(float) * 2 * K_SCAN_LANES * (size_t)N) : NULL;
    if (!hs) E16 = 0;
    float* at = hs + (size_t)K_SCAN_LANES * N;
    for (int e0 = 0; e0 < E16; e0 += K_SCAN_LANES) {
        for (int j = 0; j < K_SCAN_LANES; j++)
            for (int n = 0; n < N; n++) hs[n * K_SCAN_LANES + j] = h[(int64_t)(e0 + j) * N + n];
        k_scan_lanes16(L, N, u + e0, delta + e0, z ? z + e0 : NULL, y + e0, E, A + (int64_t)e0 * N, B, C, D + e0,
                       hs, at);
        for (int j = 0; j < K_SCAN_LANES; j++)
            for (int n = 0; n < N; n++) h[(int64_t)(e0 + j) * N + n] = hs[n * K_SCAN_LANES + j];
    }
    free(hs);
    for (int e = E16; e < E; e++)
        k_scan_channel(L, N, u + e, delta + e, z ? z + e : NULL, y + e, E, A + (int64_t)e * N, B, C, D[e],
                       h + (int64_t)e * N);
}

// ----------------------------------------------------------------------------
// The Mamba block (no classifier knowledge: a language model can reuse it)

// out = norm(x) over the D features of each of T tokens, feature-major
// [D][T] (out may alias x); scratch: [2T].
static void block_norm(const MambaBlockConfig* c, float* out, const float* x, const float* w, const float* b, int T,
                       float* scratch) {
    if (c->norm == MMIA_NORM_LAYER)
        k_layernorm_fm(out, x, w, b, c->d_model, T, c->eps, scratch);
    else
        k_rmsnorm_fm(out, x, w, c->d_model, T, c->eps, scratch);
}

// Scratch layout for one sequence of L tokens, all feature-major except bt/ct.
typedef struct {
    float* hn;     // [D][L]     norm(x) (pre-norm)
    float* xs;     // [E][L]     x branch of in_proj, later reused for y
    float* z;      // [E][L]     gate branch of in_proj (right after xs)
    float* u;      // [E][L]     silu(conv(xs))
    float* dbl;    // [R+2N][L]  x_proj(u): dt_in rows, B rows, C rows
    float* bt;     // [L][N]     B token-major, as the scan reads it
    float* ct;     // [L][N]     C token-major
    float* delta;  // [E][L]     softplus(dt_proj(dt_in))
    float* h;      // [N][16]    scan state of the 16 channels being scanned
    float* at;     // [N][16]    their rows of A, transposed
    float* lanes;  // [3][L][16] u, delta, y of those channels, token-major
    float* ss;     // [2][L]     the norm's per-token statistics
} BlockScratch;

int64_t mamba_block_scratch_floats(const MambaBlockConfig* c, int L) {
    int64_t D = c->d_model, E = c->d_inner, N = c->d_state, R = c->dt_rank;
    return D * L + 4 * E * L + (R + 2 * N) * L + 2 * N * L + 2 * 16 * N + 3 * 16 * L + 2 * L;
}

static BlockScratch block_scratch_carve(const MambaBlockConfig* c, int L, float* s) {
    int64_t D = c->d_model, E = c->d_inner, N = c->d_state, R = c->dt_rank;
    BlockScratch b;
    b.hn = s;         s += D * L;
    b.xs = s;         s += E * L;
    b.z = s;          s += E * L;
    b.u = s;          s += E * L;
    b.dbl = s;        s += (R + 2 * N) * L;
    b.bt = s;         s += N * L;
    b.ct = s;         s += N * L;
    b.delta = s;      s += E * L;
    b.h = s;          s += 16 * N;
    b.at = s;         s += 16 * N;
    b.lanes = s;      s += 3 * 16 * L;
    b.ss = s;
    return b;
}

// mamba_block_forward, also leaving the state a recurrent step continues
// from (the language model's prefill): conv_state [E][K-1] = the conv's
// last K-1 inputs (0 before the first token), ssm_state [E][N] = the scan's
// final state. Either may be NULL; the result in x is the same.
static void block_forward_state(const MambaBlockConfig* c, const MambaLayerWeights* w, int L, float* x,
                                float* scratch, float* conv_state, float* ssm_state) {
    const int D = c->d_model, E = c->d_inner, N = c->d_state, K = c->d_conv, R = c->dt_rank;
    BlockScratch s = block_scratch_carve(c, L, scratch);

    // h = norm(x) (pre-norm), or x itself (post-norm: the norm comes after
    // the residual add, at the end)
    const float* h = x;
    if (c->norm_placement == MMIA_NORM_PRE) {
        block_norm(c, s.hn, x, w->norm_w, w->norm_b, L, s.ss);
        h = s.hn;
    }
    // xs = in_proj[0:E] @ h, z = in_proj[E:2E] @ h            [E][L] each
    // (one matmul of 2E rows: z follows xs in the scratch)
    k_matmul_fm(s.xs, w->in_proj, h, NULL, 2 * E, D, L, 0);
    if (conv_state) {  // the inputs t = L-(K-1) .. L-1 of each channel
        for (int e = 0; e < E; e++)
            for (int j = 0; j < K - 1; j++) {
                int t = L - (K - 1) + j;
                conv_state[(int64_t)e * (K - 1) + j] = t >= 0 ? s.xs[(int64_t)e * L + t] : 0.0f;
            }
    }
    // u = silu(depthwise_conv(xs) + conv_b)                    [E][L]
    int left = c->conv_mode == MMIA_CONV_CAUSAL ? K - 1 : (K - 1) / 2;
    k_conv1d_dw_fm(s.u, s.xs, w->conv_w, w->conv_b, E, L, K, left, 1);
    // dbl = x_proj @ u: rows [0,R) dt_in, [R,R+N) B, [R+N,R+2N) C
    k_matmul_fm(s.dbl, w->x_proj, s.u, NULL, R + 2 * N, E, L, 0);
    const float* Bf = s.dbl + (int64_t)R * L;
    const float* Cf = s.dbl + (int64_t)(R + N) * L;
    for (int n = 0; n < N; n++)
        for (int t = 0; t < L; t++) {
            s.bt[(int64_t)t * N + n] = Bf[(int64_t)n * L + t];
            s.ct[(int64_t)t * N + n] = Cf[(int64_t)n * L + t];
        }
    // delta = softplus(dt_proj_w @ dt_in + dt_proj_b)          [E][L]
    k_matmul_fm(s.delta, w->dt_proj_w, s.dbl, w->dt_proj_b, E, R, L, 0);
    k_softplus_inplace(s.delta, (int64_t)E * L);
    // y = scan(u, delta, A, B, C, D) * silu(z); y -> xs. 16 channels at a
    // time: their rows of u and delta are moved to token-major [L][16] so
    // every step of the recurrence is one 16-wide vector op, the scan's y
    // moved back, then gated by silu(z) along the rows (so z needs no
    // move); leftover channels one by one.
    float* y = s.xs;
    const int E16 = E / K_SCAN_LANES * K_SCAN_LANES;
    float* ut = s.lanes;
    float* dt = ut + 16 * L;
    float* yt = dt + 16 * L;
    for (int e0 = 0; e0 < E16; e0 += K_SCAN_LANES) {
        k_transpose(ut, 16, s.u + (int64_t)e0 * L, L, 16, L);
        k_transpose(dt, 16, s.delta + (int64_t)e0 * L, L, 16, L);
        for (int i = 0; i < 16 * N; i++) s.h[i] = 0.0f;
        k_scan_lanes16(L, N, ut, dt, NULL, yt, 16, w->A + (int64_t)e0 * N, s.bt, s.ct, w->D + e0, s.h, s.at);
        if (ssm_state)  // s.h is [N][16]
            for (int j = 0; j < K_SCAN_LANES; j++)
                for (int n = 0; n < N; n++) ssm_state[(int64_t)(e0 + j) * N + n] = s.h[n * K_SCAN_LANES + j];
        float* yb = y + (int64_t)e0 * L;
        const float* zb = s.z + (int64_t)e0 * L;
        k_transpose(yb, L, yt, 16, L, 16);
K_SIMD16
        for (int64_t i = 0; i < (int64_t)16 * L; i++) yb[i] *= k_silu(zb[i]);
    }
    for (int e = E16; e < E; e++) {
        for (int n = 0; n < N; n++) s.h[n] = 0.0f;
        int64_t o = (int64_t)e * L;
        k_scan_channel(L, N, s.u + o, s.delta + o, s.z + o, y + o, 1, w->A + (int64_t)e * N, s.bt, s.ct,
                       w->D[e], s.h);
        if (ssm_state)
            for (int n = 0; n < N; n++) ssm_state[(int64_t)e * N + n] = s.h[n];
    }
    // x += out_proj @ y                                        [D][L]
    k_matmul_fm(x, w->out_proj, y, NULL, D, E, L, 1);
    // post-norm: x = norm(x + block(x))
    if (c->norm_placement == MMIA_NORM_POST) block_norm(c, x, x, w->norm_w, w->norm_b, L, s.ss);
}

void mamba_block_forward(const MambaBlockConfig* c, const MambaLayerWeights* w, int L, float* x,
                         float* scratch) {
    block_forward_state(c, w, L, x, scratch, NULL, NULL);
}

// ----------------------------------------------------------------------------
// The classifier: [stem] -> patches -> embed -> blocks -> norm + pool -> head

// Per-image scratch: x [D][L], patches [P][L], pooled [D], two feature maps
// (ping-pong through the stem), the stem's im2col matrix, then the block's.
static int64_t model_scratch_floats(const MambaModel* m) {
    int64_t L = m->seq_len, D = m->block.d_model;
    return D * L + m->patch_dim * L + D + 2 * m->fmap_floats + m->col_floats +
           mamba_block_scratch_floats(&m->block, m->seq_len);
}

// logits[n_classes] for one image [C][H][W] (an EngineForwardOne, batch.h)
static void forward_one(const void* model, const float* img, float* logits, float* scratch) {
    const MambaModel* m = (const MambaModel*)model;
    const int L = m->seq_len, D = m->block.d_model, P = (int)m->patch_dim;  // P*L < 2^28: the scratch cap
    const int C = m->in_channels, H = m->in_height, W = m->in_width, HW = H * W;
    const int ph = m->patch_h, pw = m->patch_w, gw = W / pw;
    float* x = scratch;                        // [D][L] residual stream
    float* patches = x + (int64_t)D * L;       // [P][L]
    float* pooled = patches + (int64_t)P * L;  // [D]
    float* fmap = pooled + D;                  // [Cp][H][W] (fmap_floats) the map the patches come from
    float* fnext = fmap + m->fmap_floats;      // [fmap_floats] the stem's next map
    float* im2col = fnext + m->fmap_floats;    // [col_floats] panels of a stem conv's input
    float* bs = im2col + m->col_floats;        // block scratch

    // 1. normalise per channel: fmap = (pixel - mean) / std      [C][H][W]
    for (int c = 0; c < C; c++) {
        const float mean = m->in_mean[c], sd = m->in_std[c];
        const float* src = img + (int64_t)c * HW;
        float* dst = fmap + (int64_t)c * HW;
        for (int i = 0; i < HW; i++) dst[i] = (src[i] - mean) / sd;
    }
    // 2. the conv stem, per layer [S][H][W]: fmap = gelu(conv3x3(fmap) + b)
    // (batch norm folded in), or gelu(group_norm(conv3x3(fmap) + b))
    for (int i = 0; i < m->n_stem; i++) {
        const MambaStemLayer* s = &m->stem[i];
        if (m->stem_norm == MMIA_STEM_GROUP_NORM) {
            k_conv2d(fnext, fmap, s->weight, s->bias, s->in_c, H, W, s->out_c, 3, 1, MMIA_ACT_NONE, im2col);
            k_group_norm(fnext, s->norm_w, s->norm_b, s->out_c, HW, m->stem_groups, m->block.eps);
            k_activate(fnext, (int64_t)s->out_c * HW, MMIA_ACT_GELU);
        } else {
            k_conv2d(fnext, fmap, s->weight, s->bias, s->in_c, H, W, s->out_c, 3, 1, MMIA_ACT_GELU, im2col);
        }
        float* t = fmap;
        fmap = fnext;
        fnext = t;
    }
    // 3. cut into patches: token t = (py, px) in row-major patch-grid order,
    // feature p = c*ph*pw + y*pw + x
    for (int c = 0; c < m->patch_channels; c++) {
        for (int row = 0; row < H; row++) {
            const float* src = fmap + ((int64_t)c * H + row) * W;
            int py = row / ph, y = row % ph;
            for (int col = 0; col < W; col++) {
                int px = col / pw, xx = col % pw;
                int t = py * gw + px;
                int p = (c * ph + y) * pw + xx;
                patches[(int64_t)p * L + t] = src[col];
            }
        }
    }
    // x = embed_w @ patches + embed_b                           [D][L]
    k_matmul_fm(x, m->embed_w, patches, m->embed_b, D, P, L, 0);

    // 4. the blocks
    for (int l = 0; l < m->n_layers; l++) mamba_block_forward(&m->block, &m->layers[l], L, x, bs);

    // 5. final norm and pool: pre-norm norms every token, then pools;
    // post-norm (seed 000's head) pools, then norms the pooled vector. The
    // block scratch is free again, so the norm's statistics go there.
    const int post = m->block.norm_placement == MMIA_NORM_POST;
    if (!post) block_norm(&m->block, x, x, m->norm_f, m->norm_f_b, L, bs);
    for (int d = 0; d < D; d++) {
        const float* xd = x + (int64_t)d * L;
        if (m->pool == MMIA_POOL_LAST) {
            pooled[d] = xd[L - 1];
        } else {
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (int t = 0; t < L; t++) sum += xd[t];
            pooled[d] = sum / (float)L;
        }
    }
    if (post) block_norm(&m->block, pooled, pooled, m->norm_f, m->norm_f_b, 1, bs);  // [D] = [D][1]
    // 6. the head
    k_matvec(logits, m->head_w, pooled, m->head_b, m->n_classes, D);
}

int mamba_forward_logits(const MambaModel* m, const float* images, int64_t n, float* logits) {
    return engine_forward_batch(forward_one, m, m->scratch_floats, images, n, mamba_image_floats(m), m->n_classes,
                                logits);
}

int mamba_forward_probs(const MambaModel* m, const float* images, int64_t n, float* probs) {
    int rc = mamba_forward_logits(m, images, n, probs);
    if (rc != ENGINE_OK) return rc;
    engine_softmax_rows(probs, n, m->n_classes);  // finite logits: finite probabilities
    return ENGINE_OK;
}

// ----------------------------------------------------------------------------
// Loading: every header field and tensor checked before use

int64_t mamba_image_floats(const MambaModel* m) {
    return (int64_t)m->in_channels * m->in_height * m->in_width;
}
int mamba_n_classes(const MambaModel* m) { return m->n_classes; }

int mamba_check_images(const MambaModel* m, const float* images, int64_t n, char* err, size_t errlen) {
    int64_t got;
    if (n == 0) return 0;
    return input_validate(images, (uint64_t)n * (uint64_t)mamba_image_floats(m) * 4u, mamba_image_floats(m),
                          &got, err, errlen);
}

// Lookup helper: tensor `name` with exactly this shape, marked as used.
typedef struct {
    const PackedFile* pf;
    unsigned char* used;  // [n_tensors]
    char* err;
    size_t errlen;
} Loader;

static const float* get_tensor_nd(Loader* ld, const char* name, uint32_t ndim, const uint32_t* shape) {
    const float* p = packed_tensor(ld->pf, name, ndim, shape, ld->err, ld->errlen);
    if (p) ld->used[packed_find(ld->pf, name)] = 1;
    return p;
}

// shape (d0) when d1 = 0, else (d0, d1)
static const float* get_tensor(Loader* ld, const char* name, uint32_t d0, uint32_t d1) {
    uint32_t shape[2] = {d0, d1};
    return get_tensor_nd(ld, name, d1 ? 2 : 1, shape);
}

static int check_range(const char* what, int64_t v, int64_t lo, int64_t hi, char* err, size_t errlen) {
    if (v >= lo && v <= hi) return 0;
    packed_err(err, errlen, "%s is %lld, outside %lld..%lld", what, (long long)v, (long long)lo, (long long)hi);
    return -1;
}

// Fill m from a validated file. err = "<why>".
static int mamba_load(MambaModel* m, char* err, size_t errlen) {
    const MmiaHeader* h = m->file.header;
    if (h->kind != MMIA_KIND_MAMBA) {
        if (h->kind == MMIA_KIND_CNN)
            packed_err(err, errlen, "model kind 2 is a CNN (run it with ./cnn); this engine runs kind 1 = Mamba");
        else if (h->kind == MMIA_KIND_MAMBA_LM || h->kind == MMIA_KIND_TRANSFORMER_LM)
            lm_wrong_kind(h->kind, "kind 1 = Mamba", err, errlen);
        else
            packed_err(err, errlen, "unknown model kind %u; this engine runs kind 1 = Mamba", h->kind);
        return -1;
    }
    const int32_t* hp = h->hp;
    // Each value is range-checked before any product is formed; the caps keep
    // every product below used in int64 far from overflow.
    if (check_range("in_channels", h->in_channels, 1, MAMBA_MAX_CHANNELS, err, errlen) ||
        check_range("in_height", h->in_height, 1, MAMBA_MAX_SIDE, err, errlen) ||
        check_range("in_width", h->in_width, 1, MAMBA_MAX_SIDE, err, errlen) ||
        check_range("n_classes", h->n_classes, 1, MAMBA_MAX_CLASSES, err, errlen) ||
        check_range("d_model", hp[MMIA_HP_D_MODEL], 1, MAMBA_MAX_WIDTH, err, errlen) ||
        check_range("n_layers", hp[MMIA_HP_N_LAYERS], 1, MAMBA_MAX_LAYERS, err, errlen) ||
        check_range("d_state", hp[MMIA_HP_D_STATE], 1, MAMBA_MAX_STATE, err, errlen) ||
        check_range("d_conv", hp[MMIA_HP_D_CONV], 1, MAMBA_MAX_CONV, err, errlen) ||
        check_range("d_inner", hp[MMIA_HP_D_INNER], 1, MAMBA_MAX_WIDTH, err, errlen) ||
        check_range("dt_rank", hp[MMIA_HP_DT_RANK], 1, MAMBA_MAX_WIDTH, err, errlen) ||
        check_range("patch_h", hp[MMIA_HP_PATCH_H], 1, h->in_height, err, errlen) ||
        check_range("patch_w", hp[MMIA_HP_PATCH_W], 1, h->in_width, err, errlen) ||
        check_range("seq_len", hp[MMIA_HP_SEQ_LEN], 1, MAMBA_MAX_SEQ, err, errlen) ||
        check_range("pool", hp[MMIA_HP_POOL], 0, 1, err, errlen) ||
        check_range("conv_mode", hp[MMIA_HP_CONV_MODE], 0, 1, err, errlen) ||
        check_range("norm", hp[MMIA_HP_NORM], 0, 1, err, errlen) ||
        check_range("norm_placement", hp[MMIA_HP_NORM_PLACEMENT], 0, 1, err, errlen) ||
        check_range("stem_layers", hp[MMIA_HP_STEM_LAYERS], 0, MAMBA_MAX_STEM_LAYERS, err, errlen))
        return -1;
    // The stem's widths, then every slot past them 0 (a file from a newer
    // writer that uses one is refused rather than misread).
    m->n_stem = hp[MMIA_HP_STEM_LAYERS];
    for (int i = 0; i < m->n_stem; i++) {
        char what[32];
        snprintf(what, sizeof what, "stem layer %d width", i);
        if (check_range(what, hp[MMIA_HP_STEM_WIDTH(i)], 1, MAMBA_MAX_STEM_WIDTH, err, errlen)) return -1;
    }
    // The stem's norm: batch norm (folded) or group norm, whose G divides
    // every width; no stem, no norm.
    m->stem_norm = hp[MMIA_HP_STEM_NORM];
    m->stem_groups = hp[MMIA_HP_STEM_GROUPS];
    if (check_range("stem_norm", m->stem_norm, 0, m->n_stem ? 1 : 0, err, errlen)) return -1;
    if (m->stem_norm == MMIA_STEM_GROUP_NORM) {
        if (check_range("stem_groups", m->stem_groups, 1, MAMBA_MAX_STEM_WIDTH, err, errlen)) return -1;
        for (int i = 0; i < m->n_stem; i++)
            if (hp[MMIA_HP_STEM_WIDTH(i)] % m->stem_groups) {
                packed_err(err, errlen, "stem layer %d width %d is not a multiple of stem_groups %d", i,
                           hp[MMIA_HP_STEM_WIDTH(i)], m->stem_groups);
                return -1;
            }
    } else if (m->stem_groups != 0) {
        packed_err(err, errlen, "hp[%d] (stem_groups) is %d but a model without group norm leaves it 0",
                   MMIA_HP_STEM_GROUPS, m->stem_groups);
        return -1;
    }
    for (int slot = MMIA_HP_STEM_WIDTH(m->n_stem); slot < 32; slot++) {
        if (slot == MMIA_HP_STEM_NORM || slot == MMIA_HP_STEM_GROUPS) continue;
        if (hp[slot] != 0) {
            packed_err(err, errlen, "hp[%d] is %d but a model with %d stem layers leaves it 0", slot, hp[slot],
                       m->n_stem);
            return -1;
        }
    }
    m->in_channels = (int)h->in_channels;
    m->in_height = (int)h->in_height;
    m->in_width = (int)h->in_width;
    m->n_classes = (int)h->n_classes;
    m->patch_h = hp[MMIA_HP_PATCH_H];
    m->patch_w = hp[MMIA_HP_PATCH_W];
    m->seq_len = hp[MMIA_HP_SEQ_LEN];
    m->n_layers = hp[MMIA_HP_N_LAYERS];
    m->pool = hp[MMIA_HP_POOL];
    MambaBlockConfig* c = &m->block;
    c->d_model = hp[MMIA_HP_D_MODEL];
    c->d_inner = hp[MMIA_HP_D_INNER];
    c->d_state = hp[MMIA_HP_D_STATE];
    c->d_conv = hp[MMIA_HP_D_CONV];
    c->dt_rank = hp[MMIA_HP_DT_RANK];
    c->conv_mode = hp[MMIA_HP_CONV_MODE];
    c->norm = hp[MMIA_HP_NORM];
    c->norm_placement = hp[MMIA_HP_NORM_PLACEMENT];
    c->eps = h->fp[MMIA_FP_NORM_EPS];

    if (m->in_height % m->patch_h || m->in_width % m->patch_w) {
        packed_err(err, errlen, "patch %dx%d does not tile the %dx%d image", m->patch_h, m->patch_w, m->in_height,
                   m->in_width);
        return -1;
    }
    int64_t L = (int64_t)(m->in_height / m->patch_h) * (m->in_width / m->patch_w);
    if (L != m->seq_len) {
        packed_err(err, errlen, "seq_len is %d but %dx%d patches of a %dx%d image make %lld tokens", m->seq_len,
                   m->patch_h, m->patch_w, m->in_height, m->in_width, (long long)L);
        return -1;
    }
    if (!(c->eps > 0.0f && c->eps <= 1.0f)) {  // also false for NaN
        packed_err(err, errlen, "norm eps is %g, outside (0, 1]", (double)c->eps);
        return -1;
    }
    for (int ch = 0; ch < m->in_channels; ch++) {
        m->in_mean[ch] = h->in_mean[ch];
        m->in_std[ch] = h->in_std[ch];
        if (!isfinite(h->in_mean[ch]) || !(h->in_std[ch] > 0.0f) || !isfinite(h->in_std[ch])) {
            packed_err(err, errlen, "channel %d normalisation mean %g / std %g is not finite with std > 0", ch,
                       (double)h->in_mean[ch], (double)h->in_std[ch]);
            return -1;
        }
    }
    // Sizes in int64 (capped values: no overflow), checked against the
    // working-memory cap before any is narrowed to int: the stem's feature
    // maps and im2col matrices, and the patch size.
    const int64_t HW = (int64_t)m->in_height * m->in_width;
    int64_t stem_in = m->in_channels, fmap = stem_in * HW, col = 0;
    for (int i = 0; i < m->n_stem; i++) {
        m->stem[i].in_c = (int)stem_in;
        m->stem[i].out_c = hp[MMIA_HP_STEM_WIDTH(i)];
        int64_t need = k_im2col_packed_floats(stem_in * 9, HW);
        col = need > col ? need : col;
        stem_in = m->stem[i].out_c;
        fmap = stem_in * HW > fmap ? stem_in * HW : fmap;
    }
    m->patch_channels = (int)stem_in;
    m->patch_dim = stem_in * m->patch_h * m->patch_w;  // <= 4096 * 2^24
    m->fmap_floats = fmap;
    m->col_floats = col;
    m->scratch_floats = model_scratch_floats(m);
    if (m->scratch_floats * 4 > MAMBA_MAX_SCRATCH_BYTES) {
        packed_err(err, errlen, "model needs %lld MiB of working memory per image (cap %lld MiB)",
                   (long long)(m->scratch_floats * 4 >> 20), (long long)(MAMBA_MAX_SCRATCH_BYTES >> 20));
        return -1;
    }
    const int layernorm = c->norm == MMIA_NORM_LAYER;
    const int group_norm = m->stem_norm == MMIA_STEM_GROUP_NORM;
    int64_t expected = 5 + 10 * (int64_t)m->n_layers + (group_norm ? 4 : 2) * (int64_t)m->n_stem +
                       (layernorm ? m->n_layers + 1 : 0);

    // Tensors: each must exist with exactly its shape; any extra is an error.
    const uint32_t D = (uint32_t)c->d_model, E = (uint32_t)c->d_inner, N = (uint32_t)c->d_state;
    const uint32_t K = (uint32_t)c->d_conv, R = (uint32_t)c->dt_rank, P = (uint32_t)m->patch_dim;
    const uint32_t NC = (uint32_t)m->n_classes;
    Loader ld = {&m->file, (unsigned char*)calloc(m->file.n_tensors, 1), err, errlen};
    m->layers = (MambaLayerWeights*)calloc((size_t)m->n_layers, sizeof(MambaLayerWeights));
    if (!ld.used || !m->layers) {
        free(ld.used);
        packed_err(err, errlen, "out of memory");
        return -1;
    }
    int ok = 1;
    for (int i = 0; ok && i < m->n_stem; i++) {
        MambaStemLayer* st = &m->stem[i];
        char name[MMIA_NAME_BYTES + 16];
        const uint32_t wshape[4] = {(uint32_t)st->out_c, (uint32_t)st->in_c, 3, 3};
        snprintf(name, sizeof name, "stem.%d.weight", i);
        ok = ok && (st->weight = get_tensor_nd(&ld, name, 4, wshape));
        snprintf(name, sizeof name, "stem.%d.bias", i);
        ok = ok && (st->bias = get_tensor(&ld, name, (uint32_t)st->out_c, 0));
        st->norm_w = st->norm_b = NULL;
        if (group_norm) {
            snprintf(name, sizeof name, "stem.%d.norm.weight", i);
            ok = ok && (st->norm_w = get_tensor(&ld, name, (uint32_t)st->out_c, 0));
            snprintf(name, sizeof name, "stem.%d.norm.bias", i);
            ok = ok && (st->norm_b = get_tensor(&ld, name, (uint32_t)st->out_c, 0));
        }
    }
    ok = ok && (m->embed_w = get_tensor(&ld, "embed.weight", D, P));
    ok = ok && (m->embed_b = get_tensor(&ld, "embed.bias", D, 0));
    for (int l = 0; ok && l < m->n_layers; l++) {
        MambaLayerWeights* w = &m->layers[l];
        char name[MMIA_NAME_BYTES + 16];
#define LAYER_TENSOR(field, suffix, d0, d1)                              \
    snprintf(name, sizeof name, "layers.%d." suffix, l);                 \
    ok = ok && (w->field = get_tensor(&ld, name, d0, d1));
        LAYER_TENSOR(norm_w, "norm.weight", D, 0)
        if (layernorm) {
            LAYER_TENSOR(norm_b, "norm.bias", D, 0)
        }
        LAYER_TENSOR(in_proj, "in_proj.weight", 2 * E, D)
        LAYER_TENSOR(conv_w, "conv1d.weight", E, K)
        LAYER_TENSOR(conv_b, "conv1d.bias", E, 0)
        LAYER_TENSOR(x_proj, "x_proj.weight", R + 2 * N, E)
        LAYER_TENSOR(dt_proj_w, "dt_proj.weight", E, R)
        LAYER_TENSOR(dt_proj_b, "dt_proj.bias", E, 0)
        LAYER_TENSOR(A, "A", E, N)
        for (int64_t i = 0; ok && i < (int64_t)E * N; i++) {
            if (!(w->A[i] <= 0.0f)) {  // the scan relies on it (k_exp2_nonpos)
                packed_err(err, errlen, "tensor '%s' has entry %lld = %g; A = -exp(A_log) must be <= 0", name,
                           (long long)i, (double)w->A[i]);
                ok = 0;
            }
        }
        LAYER_TENSOR(D, "D", E, 0)
        LAYER_TENSOR(out_proj, "out_proj.weight", D, E)
#undef LAYER_TENSOR
    }
    ok = ok && (m->norm_f = get_tensor(&ld, "norm_f.weight", D, 0));
    if (layernorm) ok = ok && (m->norm_f_b = get_tensor(&ld, "norm_f.bias", D, 0));
    ok = ok && (m->head_w = get_tensor(&ld, "head.weight", NC, D));
    ok = ok && (m->head_b = get_tensor(&ld, "head.bias", NC, 0));
    for (uint32_t i = 0; ok && i < m->file.n_tensors; i++) {
        if (!ld.used[i]) {
            packed_err(err, errlen, "unknown tensor '%s' (a %d-layer Mamba model has exactly %lld tensors)",
                       m->file.table[i].name, m->n_layers, (long long)expected);
            ok = 0;
        }
    }
    free(ld.used);
    return ok ? 0 : -1;
}

int mamba_open_memory(MambaModel* m, const void* bytes, uint64_t size, char* err, size_t errlen) {
    memset(m, 0, sizeof *m);
    if (packed_validate(&m->file, bytes, size, err, errlen) != 0) return -1;
    if (mamba_load(m, err, errlen) != 0) {
        mamba_close(m);
        return -1;
    }
    return 0;
}

int mamba_open(MambaModel* m, const char* path, char* err, size_t errlen) {
    memset(m, 0, sizeof *m);
    char why[400];
    int rc = packed_open(&m->file, path, why, sizeof why);
    if (rc == 0) rc = mamba_load(m, why, sizeof why);
    if (rc != 0) {
        packed_err(err, errlen, "%s: %s", path, why);
        mamba_close(m);
        return -1;
    }
    return 0;
}

void mamba_close(MambaModel* m) {
    free(m->layers);
    packed_close(&m->file);
    memset(m, 0, sizeof *m);
}

// ----------------------------------------------------------------------------
// The language model (kind 3): embedding -> blocks -> RMSNorm -> head.
// Prefill and teacher forcing run the blocks over the whole sequence (the
// classifier's block code, keeping the final states); decode is the
// recurrent step on those states. Activations of a sequence are
// feature-major [D][L] like the classifier's; a decode step works on
// vectors [D].

struct MambaLmState {
    int64_t pos;         // tokens since the last prefill (0 = no sequence yet)
    float* conv;         // [n_layers][E][K-1] the conv's last K-1 inputs
    float* ssm;          // [n_layers][E][N]
    float* step;         // decode buffers (lm_step_floats)
    float* seq;          // prefill / teacher-forcing scratch, grown on demand
    int64_t seq_floats;  // its size
};

int64_t mamba_lm_state_pos(const MambaLmState* st) { return st->pos; }

// Decode buffers: x [D], hn [D], out [D], xz [2E], u [E], delta [E], y [E],
// dbl [R+2N], ss [2].
static int64_t lm_step_floats(const MambaLm* m) {
    const MambaBlockConfig* c = &m->block;
    int64_t D = c->d_model, E = c->d_inner, N = c->d_state, R = c->dt_rank;
    return 3 * D + 5 * E + R + 2 * N + 2;
}

// Sequence scratch for L tokens: x [D][L], the block's scratch, the head's.
static int64_t lm_seq_floats(const MambaLm* m, int64_t L) {
    int64_t D = m->block.d_model;
    return D * L + mamba_block_scratch_floats(&m->block, (int)L) + lm_head_scratch_floats(D, m->info.vocab);
}

void mamba_lm_state_free(MambaLmState* st) {
    if (!st) return;
    free(st->conv);
    free(st->ssm);
    free(st->step);
    free(st->seq);
    free(st);
}

MambaLmState* mamba_lm_state_new(const MambaLm* m) {
    const MambaBlockConfig* c = &m->block;
    int64_t E = c->d_inner, N = c->d_state, K = c->d_conv, nl = m->n_layers;
    MambaLmState* st = (MambaLmState*)calloc(1, sizeof *st);
    if (!st) return NULL;
    st->conv = (float*)calloc((size_t)(nl * E * (K - 1) + 1), sizeof(float));
    st->ssm = (float*)calloc((size_t)(nl * E * N), sizeof(float));
    st->step = (float*)calloc((size_t)lm_step_floats(m), sizeof(float));
    if (!st->conv || !st->ssm || !st->step) {
        mamba_lm_state_free(st);
        return NULL;
    }
    return st;
}

static int lm_check_tokens(const MambaLm* m, const int* tokens, int n, char* err, size_t errlen) {
    for (int t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= m->info.vocab) {
            packed_err(err, errlen, "token %d at position %d is outside the vocabulary 0..%d", tokens[t], t,
                       m->info.vocab - 1);
            return -1;
        }
    }
    return 0;
}

// The whole sequence in one pass, fresh state. Outputs (each optional):
// all_logits [n][V], logprob [n-1], last [V] (the last position's logits).
static int lm_forward_seq(const MambaLm* m, MambaLmState* st, const int* tokens, int n, float* all_logits,
                          double* logprob, float* last, char* err, size_t errlen) {
    if (n < 1 || n > MAMBA_MAX_SEQ * 16) {
        packed_err(err, errlen, "sequence of %d tokens, outside 1..%d", n, MAMBA_MAX_SEQ * 16);
        return -1;
    }
    if (lm_check_tokens(m, tokens, n, err, errlen)) return -1;
    int64_t need = lm_seq_floats(m, n);
    if (need * 4 > LM_MAX_SCRATCH_BYTES) {
        packed_err(err, errlen, "a sequence of %d tokens needs %lld MiB of working memory (cap %lld MiB)", n,
                   (long long)(need * 4 >> 20), (long long)(LM_MAX_SCRATCH_BYTES >> 20));
        return -1;
    }
    if (need > st->seq_floats) {
        float* p = (float*)realloc(st->seq, sizeof(float) * (size_t)need);
        if (!p) {
            packed_err(err, errlen, "out of memory for a sequence of %d tokens", n);
            return -1;
        }
        st->seq = p;
        st->seq_floats = need;
    }
    const MambaBlockConfig* c = &m->block;
    const int D = c->d_model, E = c->d_inner, N = c->d_state, K = c->d_conv, V = m->info.vocab;
    float* x = st->seq;                                      // [D][n] residual stream
    float* bs = x + (int64_t)D * n;                          // block scratch
    float* hs = bs + mamba_block_scratch_floats(c, n);       // the head's scratch

    // x[d][t] = embedding[token t][d]: the rows gathered token-major into
    // the block scratch (free until the first block), then transposed
    for (int t = 0; t < n; t++) memcpy(bs + (int64_t)t * D, m->embedding + (int64_t)tokens[t] * D, sizeof(float) * D);
    k_transpose(x, n, bs, D, n, D);
    for (int l = 0; l < m->n_layers; l++)
        block_forward_state(c, &m->layers[l], n, x, bs, st->conv + (int64_t)l * E * (K - 1),
                            st->ssm + (int64_t)l * E * N);
    k_rmsnorm_fm(x, x, m->norm_f, D, n, c->eps, bs);
    lm_head_outputs(x, D, n, m->head, V, tokens, all_logits, logprob, last, hs);
    st->pos = n;
    return 0;
}

int mamba_lm_prefill(const MambaLm* m, MambaLmState* st, const int* tokens, int n, float* logits, char* err,
                     size_t errlen) {
    return lm_forward_seq(m, st, tokens, n, NULL, NULL, logits, err, errlen);
}

int mamba_lm_forward(const MambaLm* m, MambaLmState* st, const int* tokens, int n, float* all_logits,
                     double* logprob, char* err, size_t errlen) {
    return lm_forward_seq(m, st, tokens, n, all_logits, logprob, NULL, err, errlen);
}

int mamba_lm_decode(const MambaLm* m, MambaLmState* st, int token, float* logits, char* err, size_t errlen) {
    if (st->pos == 0) {
        packed_err(err, errlen, "decode before prefill: start a sequence with mamba_lm_prefill");
        return -1;
    }
    if (lm_check_tokens(m, &token, 1, err, errlen)) return -1;
    const MambaBlockConfig* c = &m->block;
    const int D = c->d_model, E = c->d_inner, N = c->d_state, K = c->d_conv, R = c->dt_rank;
    float* x = st->step;        // [D] residual stream
    float* hn = x + D;          // [D] norm(x)
    float* out = hn + D;        // [D] out_proj(y)
    float* xz = out + D;        // [2E] in_proj(hn): x branch, then gate z
    float* u = xz + 2 * E;      // [E] silu(conv)
    float* delta = u + E;       // [E]
    float* y = delta + E;       // [E]
    float* dbl = y + E;         // [R+2N] dt_in, B, C
    float* ss = dbl + R + 2 * N;  // [2]
    memcpy(x, m->embedding + (int64_t)token * D, sizeof(float) * D);
    for (int l = 0; l < m->n_layers; l++) {
        const MambaLayerWeights* w = &m->layers[l];
        float* conv = st->conv + (int64_t)l * E * (K - 1);  // [E][K-1]
        float* h = st->ssm + (int64_t)l * E * N;            // [E][N]
        k_rmsnorm_fm(hn, x, w->norm_w, D, 1, c->eps, ss);
        lm_matvec(xz, w->in_proj, hn, NULL, 2 * E, D);
        const float* xs = xz;
        const float* z = xz + E;
        // the causal conv over (the K-1 kept inputs, this one), then shift
        for (int e = 0; e < E; e++) {
            const float* we = w->conv_w + (int64_t)e * K;
            float* ce = conv + (int64_t)e * (K - 1);
            float acc = w->conv_b[e];
            for (int k = 0; k < K - 1; k++) acc += we[k] * ce[k];
            acc += we[K - 1] * xs[e];
            for (int k = 0; k + 1 < K - 1; k++) ce[k] = ce[k + 1];
            if (K > 1) ce[K - 2] = xs[e];
            u[e] = k_silu(acc);
        }
        lm_matvec(dbl, w->x_proj, u, NULL, R + 2 * N, E);
        lm_matvec(delta, w->dt_proj_w, dbl, w->dt_proj_b, E, R);
        k_softplus_inplace(delta, E);
        for (int e = 0; e < E; e++)
            k_scan_channel(1, N, u + e, delta + e, z + e, y + e, 1, w->A + (int64_t)e * N, dbl + R, dbl + R + N,
                           w->D[e], h + (int64_t)e * N);
        lm_matvec(out, w->out_proj, y, NULL, D, E);
        for (int d = 0; d < D; d++) x[d] += out[d];
    }
    k_rmsnorm_fm(hn, x, m->norm_f, D, 1, c->eps, ss);
    lm_matvec(logits, m->head, hn, NULL, m->info.vocab, D);
    st->pos++;
    return 0;
}

// --- LmOps over the functions above
static void* lm_ops_state_new(const void* m) { return mamba_lm_state_new((const MambaLm*)m); }
static void lm_ops_state_free(void* st) { mamba_lm_state_free((MambaLmState*)st); }
static int lm_ops_prefill(const void* m, void* st, const int* tokens, int n, float* logits, char* err,
                          size_t errlen) {
    return mamba_lm_prefill((const MambaLm*)m, (MambaLmState*)st, tokens, n, logits, err, errlen);
}
static int lm_ops_decode(const void* m, void* st, int token, float* logits, char* err, size_t errlen) {
    return mamba_lm_decode((const MambaLm*)m, (MambaLmState*)st, token, logits, err, errlen);
}
static int lm_ops_score(const void* m, void* st, const int* tokens, int n, double* logprob, char* err,
                        size_t errlen) {
    if (n < 2) {
        packed_err(err, errlen, "scoring needs at least 2 tokens, got %d", n);
        return -1;
    }
    return mamba_lm_forward((const MambaLm*)m, (MambaLmState*)st, tokens, n, NULL, logprob, err, errlen);
}

LmOps mamba_lm_ops(const MambaLm* m) {
    LmOps o;
    o.model = m;
    o.info = m->info;
    o.state_new = lm_ops_state_new;
    o.state_free = lm_ops_state_free;
    o.prefill = lm_ops_prefill;
    o.decode = lm_ops_decode;
    o.score = lm_ops_score;
    return o;
}

// --- Loading kind 3: every slot and tensor checked, like kind 1
static int mamba_lm_load(MambaLm* m, char* err, size_t errlen) {
    const MmiaHeader* h = m->file.header;
    if (h->kind != MMIA_KIND_MAMBA_LM) {
        lm_wrong_kind(h->kind, "kind 3 = Mamba LM", err, errlen);
        return -1;
    }
    const int32_t* hp = h->hp;
    if (lm_read_info(h, &m->info, err, errlen) ||
        check_range("d_model", hp[MMIA_HP_D_MODEL], 1, MAMBA_MAX_WIDTH, err, errlen) ||
        check_range("n_layers", hp[MMIA_HP_N_LAYERS], 1, MAMBA_MAX_LAYERS, err, errlen) ||
        check_range("d_state", hp[MMIA_HP_D_STATE], 1, MAMBA_MAX_STATE, err, errlen) ||
        check_range("d_conv", hp[MMIA_HP_D_CONV], 1, MAMBA_MAX_CONV, err, errlen) ||
        check_range("d_inner", hp[MMIA_HP_D_INNER], 1, MAMBA_MAX_WIDTH, err, errlen) ||
        check_range("dt_rank", hp[MMIA_HP_DT_RANK], 1, MAMBA_MAX_WIDTH, err, errlen) ||
        lm_check_zero_slots(h, 6, 24, 1, err, errlen) ||
        lm_read_tokenizer(&m->file, &m->info, err, errlen))
        return -1;
    MambaBlockConfig* c = &m->block;
    m->n_layers = hp[MMIA_HP_N_LAYERS];
    c->d_model = hp[MMIA_HP_D_MODEL];
    c->d_inner = hp[MMIA_HP_D_INNER];
    c->d_state = hp[MMIA_HP_D_STATE];
    c->d_conv = hp[MMIA_HP_D_CONV];
    c->dt_rank = hp[MMIA_HP_DT_RANK];
    c->conv_mode = MMIA_CONV_CAUSAL;
    c->norm = MMIA_NORM_RMS;
    c->norm_placement = MMIA_NORM_PRE;
    c->eps = h->fp[MMIA_FP_NORM_EPS];
    if (!(c->eps > 0.0f && c->eps <= 1.0f)) {  // NaN fails this too
        packed_err(err, errlen, "norm eps is %g, outside (0, 1]", (double)c->eps);
        return -1;
    }
    // The state of one sequence (conv + SSM over every layer) under the cap.
    int64_t state_floats = (int64_t)m->n_layers * c->d_inner * (c->d_conv - 1 + c->d_state);
    if (state_floats * 4 > LM_MAX_SCRATCH_BYTES) {
        packed_err(err, errlen, "model needs %lld MiB of state per sequence (cap %lld MiB)",
                   (long long)(state_floats * 4 >> 20), (long long)(LM_MAX_SCRATCH_BYTES >> 20));
        return -1;
    }
    const uint32_t D = (uint32_t)c->d_model, E = (uint32_t)c->d_inner, N = (uint32_t)c->d_state;
    const uint32_t K = (uint32_t)c->d_conv, R = (uint32_t)c->dt_rank, V = (uint32_t)m->info.vocab;
    int64_t expected = 2 + 10 * (int64_t)m->n_layers + (m->info.tied ? 0 : 1);
    Loader ld = {&m->file, (unsigned char*)calloc(m->file.n_tensors, 1), err, errlen};
    m->layers = (MambaLayerWeights*)calloc((size_t)m->n_layers, sizeof(MambaLayerWeights));
    if (!ld.used || !m->layers) {
        free(ld.used);
        packed_err(err, errlen, "out of memory");
        return -1;
    }
    int ok = 1;
    ok = ok && (m->embedding = get_tensor(&ld, "embedding.weight", V, D));
    for (int l = 0; ok && l < m->n_layers; l++) {
        MambaLayerWeights* w = &m->layers[l];
        char name[MMIA_NAME_BYTES + 16];
#define LAYER_TENSOR(field, suffix, d0, d1)                              \
    snprintf(name, sizeof name, "layers.%d." suffix, l);                 \
    ok = ok && (w->field = get_tensor(&ld, name, d0, d1));
        LAYER_TENSOR(norm_w, "norm.weight", D, 0)
        LAYER_TENSOR(in_proj, "in_proj.weight", 2 * E, D)
        LAYER_TENSOR(conv_w, "conv1d.weight", E, K)
        LAYER_TENSOR(conv_b, "conv1d.bias", E, 0)
        LAYER_TENSOR(x_proj, "x_proj.weight", R + 2 * N, E)
        LAYER_TENSOR(dt_proj_w, "dt_proj.weight", E, R)
        LAYER_TENSOR(dt_proj_b, "dt_proj.bias", E, 0)
        LAYER_TENSOR(A, "A", E, N)
        for (int64_t i = 0; ok && i < (int64_t)E * N; i++) {
            if (!(w->A[i] <= 0.0f)) {  // the scan relies on it (k_exp2_nonpos)
                packed_err(err, errlen, "tensor '%s' has entry %lld = %g; A = -exp(A_log) must be <= 0", name,
                           (long long)i, (double)w->A[i]);
                ok = 0;
            }
        }
        LAYER_TENSOR(D, "D", E, 0)
        LAYER_TENSOR(out_proj, "out_proj.weight", D, E)
#undef LAYER_TENSOR
    }
    ok = ok && (m->norm_f = get_tensor(&ld, "norm_f.weight", D, 0));
    if (ok && m->info.tied) {
        m->head = m->embedding;
        if (packed_find(&m->file, "lm_head.weight") >= 0) {
            packed_err(err, errlen, "tensor 'lm_head.weight' is present but hp[26] = 1 says the head is tied to the embedding");
            ok = 0;
        }
    } else {
        ok = ok && (m->head = get_tensor(&ld, "lm_head.weight", V, D));
    }
    for (uint32_t i = 0; ok && i < m->file.n_tensors; i++) {
        if (!ld.used[i]) {
            packed_err(err, errlen, "unknown tensor '%s' (a %d-layer %s Mamba LM has exactly %lld tensors)",
                       m->file.table[i].name, m->n_layers, m->info.tied ? "tied" : "untied", (long long)expected);
            ok = 0;
        }
    }
    free(ld.used);
    return ok ? 0 : -1;
}

int mamba_lm_open_memory(MambaLm* m, const void* bytes, uint64_t size, char* err, size_t errlen) {
    memset(m, 0, sizeof *m);
    if (packed_validate(&m->file, bytes, size, err, errlen) != 0) return -1;
    if (mamba_lm_load(m, err, errlen) != 0) {
        mamba_lm_close(m);
        return -1;
    }
    return 0;
}

int mamba_lm_open(MambaLm* m, const char* path, char* err, size_t errlen) {
    memset(m, 0, sizeof *m);
    char why[400];
    int rc = packed_open(&m->file, path, why, sizeof why);
    if (rc == 0) rc = mamba_lm_load(m, why, sizeof why);
    if (rc != 0) {
        packed_err(err, errlen, "%s: %s", path, why);
        mamba_lm_close(m);
        return -1;
    }
    return 0;
}

void mamba_lm_close(MambaLm* m) {
    free(m->layers);
    lm_info_free(&m->info);
    packed_close(&m->file);
    memset(m, 0, sizeof *m);
}

// ----------------------------------------------------------------------------
// CLI

#ifndef MAMBA_NO_MAIN

static int cli_open(void* m, const char* path, char* err, size_t errlen) {
    return mamba_open((MambaModel*)m, path, err, errlen);
}
static void cli_close(void* m) { mamba_close((MambaModel*)m); }
static int64_t cli_image_floats(const void* m) { return mamba_image_floats((const MambaModel*)m); }
static int cli_n_classes(const void* m) { return mamba_n_classes((const MambaModel*)m); }
static int cli_forward_probs(const void* m, const float* images, int64_t n, float* probs) {
    return mamba_forward_probs((const MambaModel*)m, images, n, probs);
}

static int cli_lm_open(void* m, const char* path, LmOps* ops, char* err, size_t errlen) {
    if (mamba_lm_open((MambaLm*)m, path, err, errlen) != 0) return -1;
    *ops = mamba_lm_ops((const MambaLm*)m);
    return 0;
}
static void cli_lm_close(void* m) { mamba_lm_close((MambaLm*)m); }

// The file's kind picks the command line: a kind-3 file (or any file but a
// classifier with an LM-only flag such as -i or --score: a classifier with
// one is a usage error naming the flag) runs the LM CLI (engine/lm.h), a
// transformer LM is refused naming ./transformer, anything else runs the
// classifier's (engine/cli.h), which also gives the errors for files that
// are neither.
int main(int argc, char** argv) {
    const char* path;
    uint32_t kind = lm_cli_peek_kind(argc, argv, &path);
    if (kind == MMIA_KIND_TRANSFORMER_LM) {
        MambaLm lm;
        char err[512];
        if (mamba_lm_open(&lm, path, err, sizeof err) == 0) mamba_lm_close(&lm);  // cannot happen: wrong kind
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    const char* lm_flag = lm_cli_first_lm_flag(argc, argv);
    if (kind == MMIA_KIND_MAMBA && lm_flag) {  // a classifier given an LM flag: say which flag and why
        fprintf(stderr,
                "error: %s is a language-model flag, but %s is a Mamba classifier (model kind 1): run it as "
                "./mamba model.bin input.bin (see ./mamba --help)\n",
                lm_flag, path);
        return 2;
    }
    if (kind == MMIA_KIND_MAMBA_LM || lm_flag) {
        MambaLm lm;
        memset(&lm, 0, sizeof lm);
        LmCli cli = {"mamba", "Mamba", cli_lm_open, cli_lm_close, &lm, 0};
        return lm_cli_main(argc, argv, &cli);
    }
    MambaModel model;
    memset(&model, 0, sizeof model);
    EngineCli cli = {"mamba", "Mamba", &model, cli_open, cli_close, cli_image_floats, cli_n_classes, cli_forward_probs};
    int rc = engine_cli_main(argc, argv, &cli);
    for (int i = 1; rc == 0 && i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("\nA Mamba language model (kind 3) file runs the LM command line instead:\n"
                   "  ./mamba lm.bin -i PROMPT [-n N] [-t T] [-k K] [-p P] [-s SEED] [--show-tokens]\n"
                   "  ./mamba lm.bin --score TEXTS [--out FILE]   (./mamba lm.bin --help for details)\n");
            break;
        }
    return rc;
}

#endif  // MAMBA_NO_MAIN
