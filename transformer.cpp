// transformer.cpp: inference for the GPT-NeoX (Pythia) language model, in
// one readable file (kind 4, docs/FORMAT.md "Language models").
//
//   ./transformer lm.bin -i "prompt" -n 256 [-t 1.0] [-k 40] [-p 1.0] [-s seed]
//   ./transformer lm.bin --score texts.txt [--out logprobs.txt]
//
// The model, as Hugging Face's GPTNeoXForCausalLM computes it
// (transformers' modeling_gpt_neox.py; notes in ../shared/notes/lm.md):
//   x = embed_in[token]
//   per layer:  a = attn(LN1(x))
//               parallel (Pythia):  x = x + a + mlp(LN2(x))
//               sequential:         x = x + a;  x = x + mlp(LN2(x))
//   logits = head(LN_f(x))
// attn: qkv = W x + b, laid out per head ([H][3][dh] rows); rotary on the
// first r dims of each head's q and k, NeoX half-split pairs (j, j + r/2),
// angle = pos * base^(-2j/r) (in float32, as HF computes it); causal softmax(q.k / sqrt(dh)) over the K/V
// cache (keys stored after rotary); dense. mlp: fc2(gelu_erf(fc1 x)).
//
// The file is mmap'd and validated completely, then the weights are used in
// place. Prefill runs a whole prompt through each layer at once (matmuls
// over all its tokens) and fills the K/V cache; decode runs one token and
// attends over the cache. Only libc, libm and OpenMP. Compiled with
// -DTRANSFORMER_NO_MAIN it is a library (engine/transformer.h) for the
// tests, the fuzzer and ./attack. The command line is engine/lm.h's,
// shared with ./mamba.
//
// Shape legend: T new tokens, P positions in the cache, D d_model, H heads,
// dh = D/H head dim, r rotary dims, F d_ff, V vocabulary, L layers.
// Activations of the new tokens are feature-major ([D][T]: feature d of
// token t at d*T + t, see engine/kernels.h); the cache is token-major.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels.h"
#include "engine/lm.h"
#include "engine/packed.h"
#include "engine/transformer.h"

// ----------------------------------------------------------------------------
// State: the K/V cache and the scratch of one sequence

struct TransformerState {
    int64_t pos;      // tokens in the cache
    int64_t cap;      // positions the cache has room for (<= context)
    float* k_cache;   // [cap][L][D] keys after rotary (head h at h*dh)
    float* v_cache;   // [cap][L][D] values
    float* scores;    // [H][cap] attention weights, one row per head
    float* qo;        // [H][2][dh] one token's query and output, contiguous, per head
    float* scratch;   // per-call activations, grown on demand
    int64_t scratch_floats;
};

int64_t transformer_state_pos(const TransformerState* st) { return st->pos; }

TransformerState* transformer_state_new(const Transformer* m) {
    TransformerState* st = (TransformerState*)calloc(1, sizeof(TransformerState));
    if (!st) return NULL;
    st->qo = (float*)calloc((size_t)2 * m->d_model, sizeof(float));
    if (!st->qo) {
        free(st);
        return NULL;
    }
    return st;
}

void transformer_state_free(TransformerState* st) {
    if (!st) return;
    free(st->k_cache);
    free(st->v_cache);
    free(st->scores);
    free(st->qo);
    free(st->scratch);
    free(st);
}

// Room for `need` positions: grow the cache (doubling, at most the context).
static int cache_reserve(const Transformer* m, TransformerState* st, int64_t need) {
    if (need <= st->cap) return 0;
    int64_t cap = st->cap ? st->cap * 2 : 64;
    if (cap < need) cap = need;
    if (cap > m->info.context) cap = m->info.context;
    size_t per_pos = (size_t)m->n_layers * (size_t)m->d_model;
    float* k = (float*)realloc(st->k_cache, sizeof(float) * per_pos * (size_t)cap);
    if (!k) return -1;
    st->k_cache = k;
    float* v = (float*)realloc(st->v_cache, sizeof(float) * per_pos * (size_t)cap);
    if (!v) return -1;
    st->v_cache = v;
    float* s = (float*)realloc(st->scores, sizeof(float) * (size_t)m->n_heads * (size_t)cap);
    if (!s) return -1;
    st->scores = s;
    st->cap = cap;
    return 0;
}

// Queries per block of the prefill attention (attention_blocked).
#define ATT_CHUNK 64

// Floats of attention_blocked's scratch for one head over P positions.
static int64_t att_head_floats(int64_t dh, int64_t P) {
    return 3 * P * dh + 2 * dh * ATT_CHUNK + P * ATT_CHUNK + 2 * ATT_CHUNK;
}

// Scratch for T new tokens with P = pos + T positions in the cache: x, h,
// att, a [D][T] each; qkv [3D][T]; mlp [F][T]; LayerNorm statistics [2T];
// rotary cos, sin [r/2][T] each; the head's scratch; the blocked
// attention's, per head (T >= ATT_CHUNK only).
static int64_t scratch_floats(const Transformer* m, int64_t T, int64_t P) {
    int64_t D = m->d_model, F = m->d_ff, r2 = m->rotary_ndims / 2;
    int64_t att = T >= ATT_CHUNK ? m->n_heads * att_head_floats(m->head_dim, P) : 0;
    return 4 * D * T + 3 * D * T + F * T + 2 * T + 2 * T * r2 + lm_head_scratch_floats(D, m->info.vocab) + att;
}

// ----------------------------------------------------------------------------
// The forward pass of T new tokens at positions pos .. pos+T-1

// Rotate q or k of one head in place, NeoX half-split: for j < r/2,
// (v_j, v_{j+r/2}) -> (v_j cos - v_{j+r/2} sin, v_{j+r/2} cos + v_j sin).
// v: the head's first row in qkv [3D][T] (rows j of all T tokens are
// contiguous: vectorised over tokens); cs, sn: [r/2][T].
static void rotate_half(float* v, int T, int r2, const float* cs, const float* sn) {
    for (int j = 0; j < r2; j++) {
        float* a = v + (int64_t)j * T;
        float* b = v + (int64_t)(j + r2) * T;
        const float* c = cs + (int64_t)j * T;
        const float* sv = sn + (int64_t)j * T;
#pragma omp simd
        for (int t = 0; t < T; t++) {
            float at = a[t], bt = b[t];
            a[t] = at * c[t] - bt * sv[t];
            b[t] = bt * c[t] + at * sv[t];
        }
    }
}

// out = W x + b for T tokens: a matvec for one token (decode), else the
// feature-major matmul.
static void linear(float* out, const float* w, const float* x, const float* b, int O, int I, int T) {
    if (T == 1)
        lm_matvec(out, w, x, b, O, I);
    else
        k_matmul_fm(out, w, x, b, O, I, T, 0);
}

// x += w x_in + b (the residual adds), x: [O][T]; tmp: [O] scratch for
// T = 1. Several tokens: the matmul adds into x as it stores (its sums start
// from x + b), saving a pass over x and a buffer.
static void linear_add(float* x, const float* w, const float* in, const float* b, int O, int I, int T,
                       float* tmp) {
    if (T == 1) {
        lm_matvec(tmp, w, in, b, O, I);
        for (int o = 0; o < O; o++) x[o] += tmp[o];
    } else {
        k_matmul_fm(x, w, in, b, O, I, T, 1);
    }
}

// The attention of one layer for the T new tokens (their keys and values
// already in the cache): att[h*dh + i][t] = sum_{s <= pos+t} softmax_s(q.k_s
// / sqrt(dh)) v_s[i]. q from qkv [3D][T]. Heads run in parallel when it pays.
static void attention(const Transformer* m, TransformerState* st, int l, int64_t pos0, int T, const float* qkv,
                      float* att) {
    const int D = m->d_model, H = m->n_heads, dh = m->head_dim, L = m->n_layers;
    const float scale = 1.0f / sqrtf((float)dh);
    const int64_t stride = (int64_t)L * D;  // between positions in the cache
    OMP(omp parallel for schedule(static) if ((int64_t)T * (pos0 + T) * D >= (1 << 18)))
    for (int h = 0; h < H; h++) {
        float* sc = st->scores + (int64_t)h * st->cap;
        const float* q = qkv + (int64_t)h * 3 * dh * T;  // [dh][T] this head's q rows
        const float* kh = st->k_cache + (int64_t)l * D + (int64_t)h * dh;
        const float* vh = st->v_cache + (int64_t)l * D + (int64_t)h * dh;
        float* qv = st->qo + (int64_t)h * 2 * dh;  // [dh] this token's query
        float* ov = qv + dh;                       // [dh] its output
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < dh; i++) qv[i] = q[(int64_t)i * T + t];
            int64_t P = pos0 + t + 1;  // causal: positions 0 .. pos0+t
            float mx = -INFINITY;
            for (int64_t s = 0; s < P; s++) {
                const float* ks = kh + s * stride;
                float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                for (int i = 0; i < dh; i++) dot += qv[i] * ks[i];
                sc[s] = dot * scale;
                mx = sc[s] > mx ? sc[s] : mx;
            }
            float sum = 0.0f;
            for (int64_t s = 0; s < P; s++) {
                sc[s] = expf(sc[s] - mx);
                sum += sc[s];
            }
            float inv = 1.0f / sum;
            for (int i = 0; i < dh; i++) ov[i] = 0.0f;
            for (int64_t s = 0; s < P; s++) {
                const float* vs = vh + s * stride;
                float p = sc[s] * inv;
#pragma omp simd
                for (int i = 0; i < dh; i++) ov[i] += p * vs[i];
            }
            for (int i = 0; i < dh; i++) att[(int64_t)(h * dh + i) * T + t] = ov[i];
        }
    }
}

// The same attention for many new tokens, as blocked matrix products (the
// prefill and teacher forcing): per head, keys K [P][dh] and values are
// gathered from the cache once (compact: the cache's rows are L*D apart);
// then per block
// of up to ATT_CHUNK queries (positions pos0+t0 ..), with P1 = pos0 + t1
// keys, the only ones the block can see (Vt gathered for them):
//   S[s][t] = k_s . (q_t / sqrt(dh))          k_matmul_fm, [P1][Tc]
//   S[s][t] = exp(S[s][t] - max_s), 0 where s > pos0 + t (causal mask)
//   att[t] = (Vt S)[.][t] / sum_s S[s][t]     k_matmul_fm, [dh][Tc]
// The softmax runs down the columns of S, vectorised over the block's
// queries. Heads in parallel when it pays; buf: H * att_head_floats(dh, P).
static void attention_blocked(const Transformer* m, TransformerState* st, int l, int64_t pos0, int T,
                              const float* qkv, float* att, float* buf) {
    const int D = m->d_model, H = m->n_heads, dh = m->head_dim, L = m->n_layers;
    const int P = (int)(pos0 + T);
    const float scale = 1.0f / sqrtf((float)dh);
    const int64_t stride = (int64_t)L * D;  // between positions in the cache
    OMP(omp parallel for schedule(static) if ((int64_t)T * P * D >= (1 << 20)))
    for (int h = 0; h < H; h++) {
        float* kt = buf + (int64_t)h * att_head_floats(dh, P);  // [P][dh] keys, token-major
        float* vs = kt + (int64_t)P * dh;                       // [P][dh] values, token-major
        float* vt = vs + (int64_t)P * dh;                       // [dh][P1] values, feature-major
        float* qc = vt + (int64_t)dh * P;                       // [dh][Tc] the block's scaled queries
        float* oc = qc + (int64_t)dh * ATT_CHUNK;               // [dh][Tc] its outputs
        float* sc = oc + (int64_t)dh * ATT_CHUNK;               // [P1][Tc] scores, then weights
        float* mx = sc + (int64_t)P * ATT_CHUNK;                // [Tc] column maxima
        float* sum = mx + ATT_CHUNK;                            // [Tc] column sums
        const float* kh = st->k_cache + (int64_t)l * D + (int64_t)h * dh;
        const float* vh = st->v_cache + (int64_t)l * D + (int64_t)h * dh;
        for (int s = 0; s < P; s++) {
            memcpy(kt + (int64_t)s * dh, kh + s * stride, sizeof(float) * (size_t)dh);
            memcpy(vs + (int64_t)s * dh, vh + s * stride, sizeof(float) * (size_t)dh);
        }
        const float* q = qkv + (int64_t)h * 3 * dh * T;  // [dh][T] this head's q rows
        for (int t0 = 0; t0 < T; t0 += ATT_CHUNK) {
            const int Tc = T - t0 < ATT_CHUNK ? T - t0 : ATT_CHUNK;
            const int P1 = (int)(pos0 + t0 + Tc);
            for (int i = 0; i < dh; i++)
                for (int t = 0; t < Tc; t++) qc[i * Tc + t] = q[(int64_t)i * T + t0 + t] * scale;
            k_transpose(vt, P1, vs, dh, P1, dh);  // vt [dh][P1]: the matmul's weight rows are P1 long
            k_matmul_fm(sc, kt, qc, NULL, P1, dh, Tc, 0);
            // query t (of the block) sees keys s <= pos0 + t0 + t: row s
            // is live from column lo(s) = s - pos0 - t0 on
            for (int t = 0; t < Tc; t++) {
                mx[t] = -INFINITY;
                sum[t] = 0.0f;
            }
            for (int s = 0; s < P1; s++) {
                const float* r = sc + (int64_t)s * Tc;
                int64_t lo = s - pos0 - t0 > 0 ? s - pos0 - t0 : 0;
#pragma omp simd
                for (int t = (int)lo; t < Tc; t++) mx[t] = r[t] > mx[t] ? r[t] : mx[t];
            }
            for (int s = 0; s < P1; s++) {
                float* r = sc + (int64_t)s * Tc;
                int lo = (int)(s - pos0 - t0 > 0 ? s - pos0 - t0 : 0);
                for (int t = 0; t < lo; t++) r[t] = 0.0f;
K_SIMD16
                for (int t = lo; t < Tc; t++) {
                    r[t] = k_expf(r[t] - mx[t]);
                    sum[t] += r[t];
                }
            }
            k_matmul_fm(oc, vt, sc, NULL, dh, P1, Tc, 0);
            for (int i = 0; i < dh; i++) {
                float* a = att + (int64_t)(h * dh + i) * T + t0;
#pragma omp simd
                for (int t = 0; t < Tc; t++) a[t] = oc[i * Tc + t] / sum[t];
            }
        }
    }
}

// T tokens appended to the sequence in the state; outputs as in
// lm_head_outputs (all_logits and logprob only make sense for a fresh
// sequence: row t is position pos+t).
static int forward(const Transformer* m, TransformerState* st, const int* tokens, int T, float* all_logits,
                   double* logprob, float* last, char* err, size_t errlen) {
    const int D = m->d_model, H = m->n_heads, dh = m->head_dim, F = m->d_ff, L = m->n_layers;
    const int V = m->info.vocab, r2 = m->rotary_ndims / 2;
    const int64_t pos0 = st->pos;
    if (T < 1 || pos0 + T > m->info.context) {
        if (pos0 == 0)
            packed_err(err, errlen, "a sequence of %d tokens does not fit the model's context of %d", T,
                       m->info.context);
        else
            packed_err(err, errlen, "the K/V cache holds %lld tokens; %d more exceed the model's context of %d",
                       (long long)pos0, T, m->info.context);
        return -1;
    }
    for (int t = 0; t < T; t++) {
        if (tokens[t] < 0 || tokens[t] >= V) {
            packed_err(err, errlen, "token %d at position %d is outside the vocabulary 0..%d", tokens[t], t, V - 1);
            return -1;
        }
    }
    int64_t need = scratch_floats(m, T, pos0 + T);
    if (need * 4 > LM_MAX_SCRATCH_BYTES) {
        packed_err(err, errlen, "a sequence of %d tokens needs %lld MiB of working memory (cap %lld MiB)", T,
                   (long long)(need * 4 >> 20), (long long)(LM_MAX_SCRATCH_BYTES >> 20));
        return -1;
    }
    if (need > st->scratch_floats) {
        float* p = (float*)realloc(st->scratch, sizeof(float) * (size_t)need);
        if (!p) {
            packed_err(err, errlen, "out of memory for %d tokens", T);
            return -1;
        }
        st->scratch = p;
        st->scratch_floats = need;
    }
    if (cache_reserve(m, st, pos0 + T) != 0) {
        packed_err(err, errlen, "out of memory for a K/V cache of %lld tokens", (long long)(pos0 + T));
        return -1;
    }
    float* x = st->scratch;                   // [D][T] residual stream
    float* h = x + (int64_t)D * T;            // [D][T] LayerNorm output
    float* att = h + (int64_t)D * T;          // [D][T] attention output (heads concatenated)
    float* a = att + (int64_t)D * T;          // [D][T] (decode: the residual branch, linear_add)
    float* qkv = a + (int64_t)D * T;          // [3D][T]
    float* mlp = qkv + (int64_t)3 * D * T;    // [F][T]
    float* ss = mlp + (int64_t)F * T;         // [2T]
    float* cs = ss + 2 * T;                   // [r/2][T] cos
    float* sn = cs + (int64_t)T * r2;         // [r/2][T] sin
    float* hs = sn + (int64_t)T * r2;         // the head's scratch
    float* ab = hs + lm_head_scratch_floats(D, V);  // attention_blocked's (T >= ATT_CHUNK)

    // x[d][t] = embed[token t][d]: the rows gathered token-major into h
    // (free until the first LayerNorm), then transposed
    for (int t = 0; t < T; t++) memcpy(h + (int64_t)t * D, m->embed + (int64_t)tokens[t] * D, sizeof(float) * D);
    k_transpose(x, T, h, D, T, D);
    // rotary angles as Hugging Face's GPTNeoXRotaryEmbedding makes them, in
    // float32: inv_freq[j] = 1 / base^(2j/r), angle = pos * inv_freq[j]
    // (both rounded to float: at pos 2000 that rounding alone moves an angle
    // by ~1e-4 rad, so matching it matters for parity); cos and sin of that
    // float angle, correctly rounded.
    for (int t = 0; t < T; t++)
        for (int j = 0; j < r2; j++) {
            float e = (float)(2 * j) / (float)m->rotary_ndims;
            float inv_freq = 1.0f / (float)pow((double)m->rotary_base, (double)e);
            float ang = (float)(pos0 + t) * inv_freq;
            cs[(int64_t)j * T + t] = (float)cos((double)ang);
            sn[(int64_t)j * T + t] = (float)sin((double)ang);
        }
    const int64_t stride = (int64_t)L * D;
    for (int l = 0; l < L; l++) {
        const TransformerLayer* w = &m->layers[l];
        // qkv = W LN1(x) + b                                    [3D][T]
        k_layernorm_fm(h, x, w->ln1_w, w->ln1_b, D, T, m->eps, ss);
        linear(qkv, w->qkv_w, h, w->qkv_b, 3 * D, D, T);
        // rotary on q and k of every head, then k, v into the cache
        for (int hd = 0; hd < H; hd++) {
            float* q = qkv + (int64_t)hd * 3 * dh * T;
            float* k = q + (int64_t)dh * T;
            const float* v = k + (int64_t)dh * T;
            rotate_half(q, T, r2, cs, sn);
            rotate_half(k, T, r2, cs, sn);
            // cache row pos0 + t, this layer's and head's dh floats = column t of k, v
            const int64_t at = pos0 * stride + (int64_t)l * D + (int64_t)hd * dh;
            k_transpose(st->k_cache + at, stride, k, T, dh, T);
            k_transpose(st->v_cache + at, stride, v, T, dh, T);
        }
        if (T >= ATT_CHUNK)
            attention_blocked(m, st, l, pos0, T, qkv, att, ab);
        else
            attention(m, st, l, pos0, T, qkv, att);
        if (m->parallel) {
            // x = x + dense(att) + mlp(LN2(x)), LN2 of the block's input
            k_layernorm_fm(h, x, w->ln2_w, w->ln2_b, D, T, m->eps, ss);
            linear_add(x, w->dense_w, att, w->dense_b, D, D, T, a);
        } else {
            // x = x + dense(att); x = x + mlp(LN2(x))
            linear_add(x, w->dense_w, att, w->dense_b, D, D, T, a);
            k_layernorm_fm(h, x, w->ln2_w, w->ln2_b, D, T, m->eps, ss);
        }
        // mlp = gelu(fc1 h + b1) [F][T]; x += fc2 mlp + b2    [D][T]
        linear(mlp, w->fc1_w, h, w->fc1_b, F, D, T);
        k_activate(mlp, (int64_t)F * T, MMIA_ACT_GELU);
        linear_add(x, w->fc2_w, mlp, w->fc2_b, D, F, T, a);
    }
    k_layernorm_fm(x, x, m->ln_f_w, m->ln_f_b, D, T, m->eps, ss);
    lm_head_outputs(x, D, T, m->head, V, tokens, all_logits, logprob, last, hs);
    st->pos = pos0 + T;
    return 0;
}

int transformer_prefill(const Transformer* m, TransformerState* st, const int* tokens, int n, float* logits,
                        char* err, size_t errlen) {
    st->pos = 0;
    return forward(m, st, tokens, n, NULL, NULL, logits, err, errlen);
}

int transformer_decode(const Transformer* m, TransformerState* st, int token, float* logits, char* err,
                       size_t errlen) {
    if (st->pos == 0) {
        packed_err(err, errlen, "decode before prefill: start a sequence with transformer_prefill");
        return -1;
    }
    return forward(m, st, &token, 1, NULL, NULL, logits, err, errlen);
}

int transformer_forward(const Transformer* m, TransformerState* st, const int* tokens, int n, float* all_logits,
                        double* logprob, char* err, size_t errlen) {
    st->pos = 0;
    return forward(m, st, tokens, n, all_logits, logprob, NULL, err, errlen);
}

// --- LmOps over the functions above
static void* ops_state_new(const void* m) { return transformer_state_new((const Transformer*)m); }
static void ops_state_free(void* st) { transformer_state_free((TransformerState*)st); }
static int ops_prefill(const void* m, void* st, const int* tokens, int n, float* logits, char* err, size_t errlen) {
    return transformer_prefill((const Transformer*)m, (TransformerState*)st, tokens, n, logits, err, errlen);
}
static int ops_decode(const void* m, void* st, int token, float* logits, char* err, size_t errlen) {
    return transformer_decode((const Transformer*)m, (TransformerState*)st, token, logits, err, errlen);
}
static int ops_score(const void* m, void* st, const int* tokens, int n, double* logprob, char* err,
                     size_t errlen) {
    if (n < 2) {
        packed_err(err, errlen, "scoring needs at least 2 tokens, got %d", n);
        return -1;
    }
    return transformer_forward((const Transformer*)m, (TransformerState*)st, tokens, n, NULL, logprob, err,
                               errlen);
}

LmOps transformer_ops(const Transformer* m) {
    LmOps o;
    o.model = m;
    o.info = m->info;
    o.state_new = ops_state_new;
    o.state_free = ops_state_free;
    o.prefill = ops_prefill;
    o.decode = ops_decode;
    o.score = ops_score;
    return o;
}

void transformer_matmul_fm(float* out, const float* w, const float* x, const float* bias, int O, int I, int T) {
    k_matmul_fm(out, w, x, bias, O, I, T, 0);
}

// ----------------------------------------------------------------------------
// Loading: every header field and tensor checked before use

static int check_range(const char* what, int64_t v, int64_t lo, int64_t hi, char* err, size_t errlen) {
    if (v >= lo && v <= hi) return 0;
    packed_err(err, errlen, "%s is %lld, outside %lld..%lld", what, (long long)v, (long long)lo, (long long)hi);
    return -1;
}

// Lookup helper: tensor `name` of shape (d0) when d1 = 0, else (d0, d1),
// marked as used.
typedef struct {
    const PackedFile* pf;
    unsigned char* used;  // [n_tensors]
    char* err;
    size_t errlen;
} Loader;

static const float* get_tensor(Loader* ld, const char* name, uint32_t d0, uint32_t d1) {
    uint32_t shape[2] = {d0, d1};
    const float* p = packed_tensor(ld->pf, name, d1 ? 2 : 1, shape, ld->err, ld->errlen);
    if (p) ld->used[packed_find(ld->pf, name)] = 1;
    return p;
}

// Fill m from a validated file. err = "<why>".
static int transformer_load(Transformer* m, char* err, size_t errlen) {
    const MmiaHeader* h = m->file.header;
    if (h->kind != MMIA_KIND_TRANSFORMER_LM) {
        lm_wrong_kind(h->kind, "kind 4 = transformer LM", err, errlen);
        return -1;
    }
    const int32_t* hp = h->hp;
    if (lm_read_info(h, &m->info, err, errlen) ||
        check_range("d_model", hp[MMIA_TF_HP_D_MODEL], 1, TRANSFORMER_MAX_WIDTH, err, errlen) ||
        check_range("n_layers", hp[MMIA_TF_HP_N_LAYERS], 1, TRANSFORMER_MAX_LAYERS, err, errlen) ||
        check_range("n_heads", hp[MMIA_TF_HP_N_HEADS], 1, TRANSFORMER_MAX_HEADS, err, errlen) ||
        check_range("d_ff", hp[MMIA_TF_HP_D_FF], 1, TRANSFORMER_MAX_FF, err, errlen) ||
        check_range("parallel residual", hp[MMIA_TF_HP_PARALLEL], 0, 1, err, errlen) ||
        lm_check_zero_slots(h, 6, 24, 2, err, errlen) ||
        lm_read_tokenizer(&m->file, &m->info, err, errlen))
        return -1;
    m->d_model = hp[MMIA_TF_HP_D_MODEL];
    m->n_layers = hp[MMIA_TF_HP_N_LAYERS];
    m->n_heads = hp[MMIA_TF_HP_N_HEADS];
    m->d_ff = hp[MMIA_TF_HP_D_FF];
    m->parallel = hp[MMIA_TF_HP_PARALLEL];
    if (m->d_model % m->n_heads) {
        packed_err(err, errlen, "d_model %d is not a multiple of n_heads %d", m->d_model, m->n_heads);
        return -1;
    }
    m->head_dim = m->d_model / m->n_heads;
    m->rotary_ndims = hp[MMIA_TF_HP_ROTARY_NDIMS];
    if (check_range("rotary_ndims", m->rotary_ndims, 0, m->head_dim, err, errlen)) return -1;
    if (m->rotary_ndims % 2) {
        packed_err(err, errlen, "rotary_ndims is %d, not even", m->rotary_ndims);
        return -1;
    }
    m->eps = h->fp[MMIA_TF_FP_NORM_EPS];
    if (!(m->eps > 0.0f && m->eps <= 1.0f)) {  // also false for NaN
        packed_err(err, errlen, "LayerNorm eps is %g, outside (0, 1]", (double)m->eps);
        return -1;
    }
    m->rotary_base = h->fp[MMIA_TF_FP_ROTARY_BASE];
    if (!(m->rotary_base > 0.0f && isfinite(m->rotary_base))) {
        packed_err(err, errlen, "rotary base is %g, not a finite number > 0", (double)m->rotary_base);
        return -1;
    }
    // The K/V cache of one sequence at the full context, under the cap.
    int64_t cache_bytes = 2 * 4 * (int64_t)m->info.context * m->n_layers * m->d_model;
    if (cache_bytes > TRANSFORMER_MAX_CACHE_BYTES) {
        packed_err(err, errlen, "a K/V cache of %d tokens needs %lld MiB (cap %lld MiB)", m->info.context,
                   (long long)(cache_bytes >> 20), (long long)(TRANSFORMER_MAX_CACHE_BYTES >> 20));
        return -1;
    }
    const uint32_t D = (uint32_t)m->d_model, F = (uint32_t)m->d_ff, V = (uint32_t)m->info.vocab;
    int64_t expected = 3 + 12 * (int64_t)m->n_layers + (m->info.tied ? 0 : 1);
    Loader ld = {&m->file, (unsigned char*)calloc(m->file.n_tensors, 1), err, errlen};
    m->layers = (TransformerLayer*)calloc((size_t)m->n_layers, sizeof(TransformerLayer));
    if (!ld.used || !m->layers) {
        free(ld.used);
        packed_err(err, errlen, "out of memory");
        return -1;
    }
    int ok = 1;
    ok = ok && (m->embed = get_tensor(&ld, "embed_in.weight", V, D));
    for (int l = 0; ok && l < m->n_layers; l++) {
        TransformerLayer* w = &m->layers[l];
        char name[MMIA_NAME_BYTES + 16];
#define LAYER_TENSOR(field, suffix, d0, d1)              \
    snprintf(name, sizeof name, "layers.%d." suffix, l); \
    ok = ok && (w->field = get_tensor(&ld, name, d0, d1));
        LAYER_TENSOR(ln1_w, "input_layernorm.weight", D, 0)
        LAYER_TENSOR(ln1_b, "input_layernorm.bias", D, 0)
        LAYER_TENSOR(ln2_w, "post_attention_layernorm.weight", D, 0)
        LAYER_TENSOR(ln2_b, "post_attention_layernorm.bias", D, 0)
        LAYER_TENSOR(qkv_w, "attention.query_key_value.weight", 3 * D, D)
        LAYER_TENSOR(qkv_b, "attention.query_key_value.bias", 3 * D, 0)
        LAYER_TENSOR(dense_w, "attention.dense.weight", D, D)
        LAYER_TENSOR(dense_b, "attention.dense.bias", D, 0)
        LAYER_TENSOR(fc1_w, "mlp.dense_h_to_4h.weight", F, D)
        LAYER_TENSOR(fc1_b, "mlp.dense_h_to_4h.bias", F, 0)
        LAYER_TENSOR(fc2_w, "mlp.dense_4h_to_h.weight", D, F)
        LAYER_TENSOR(fc2_b, "mlp.dense_4h_to_h.bias", D, 0)
#undef LAYER_TENSOR
    }
    ok = ok && (m->ln_f_w = get_tensor(&ld, "final_layer_norm.weight", D, 0));
    ok = ok && (m->ln_f_b = get_tensor(&ld, "final_layer_norm.bias", D, 0));
    if (ok && m->info.tied) {
        m->head = m->embed;
        if (packed_find(&m->file, "embed_out.weight") >= 0) {
            packed_err(err, errlen, "tensor 'embed_out.weight' is present but hp[26] = 1 says the head is tied to the embedding");
            ok = 0;
        }
    } else {
        ok = ok && (m->head = get_tensor(&ld, "embed_out.weight", V, D));
    }
    for (uint32_t i = 0; ok && i < m->file.n_tensors; i++) {
        if (!ld.used[i]) {
            packed_err(err, errlen, "unknown tensor '%s' (a %d-layer %s transformer LM has exactly %lld tensors)",
                       m->file.table[i].name, m->n_layers, m->info.tied ? "tied" : "untied", (long long)expected);
            ok = 0;
        }
    }
    free(ld.used);
    return ok ? 0 : -1;
}

int transformer_open_memory(Transformer* m, const void* bytes, uint64_t size, char* err, size_t errlen) {
    memset(m, 0, sizeof *m);
    if (packed_validate(&m->file, bytes, size, err, errlen) != 0) return -1;
    if (transformer_load(m, err, errlen) != 0) {
        transformer_close(m);
        return -1;
    }
    return 0;
}

int transformer_open(Transformer* m, const char* path, char* err, size_t errlen) {
    memset(m, 0, sizeof *m);
    char why[400];
    int rc = packed_open(&m->file, path, why, sizeof why);
    if (rc == 0) rc = transformer_load(m, why, sizeof why);
    if (rc != 0) {
        packed_err(err, errlen, "%s: %s", path, why);
        transformer_close(m);
        return -1;
    }
    return 0;
}

void transformer_close(Transformer* m) {
    free(m->layers);
    lm_info_free(&m->info);
    packed_close(&m->file);
    memset(m, 0, sizeof *m);
}

// ----------------------------------------------------------------------------
// CLI (engine/lm.h)

#ifndef TRANSFORMER_NO_MAIN

static int cli_open(void* m, const char* path, LmOps* ops, char* err, size_t errlen) {
    if (transformer_open((Transformer*)m, path, err, errlen) != 0) return -1;
    *ops = transformer_ops((const Transformer*)m);
    return 0;
}
static void cli_close(void* m) { transformer_close((Transformer*)m); }

int main(int argc, char** argv) {
    Transformer model;
    memset(&model, 0, sizeof model);
    // A packed file of another kind is refused before the flags are parsed
    // (they belong to another command line), naming the engine to use.
    const char* path;
    uint32_t kind = lm_cli_peek_kind(argc, argv, &path);
    if (kind != 0 && kind != MMIA_KIND_TRANSFORMER_LM) {
        char err[512];
        if (transformer_open(&model, path, err, sizeof err) == 0) transformer_close(&model);  // cannot happen
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    LmCli cli = {"transformer", "GPT-NeoX transformer", cli_open, cli_close, &model, 1};
    return lm_cli_main(argc, argv, &cli);
}

#endif  // TRANSFORMER_NO_MAIN
