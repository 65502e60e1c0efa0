// lm.h: what the language-model engines share (mamba.cpp kind 3,
// transformer.cpp kind 4): the file's LM slots, the byte tokenizer, the
// sampler, per-token scoring, generation, and the LM command line
//
//   ./mamba lm.bin -i "prompt" -n 256 [-t 1.0] [-k 40] [-p 1.0] [-s seed] [--show-tokens]
//   ./mamba lm.bin --score texts.txt [--out logprobs.txt] [--show-tokens]
//
// An engine describes itself by an LmOps (its model plus four calls:
// state_new/state_free, prefill, decode, score); everything here works
// through it, so the two engines cannot drift apart.
//
// Header-only, static inline, C-style: libc + libm (+ OpenMP when compiled
// with it). Error strings are "<why>"; callers add "error: <what>: ".
#pragma once
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "bpe.h"
#include "format.h"
#include "io.h"
#include "kernels.h"
#include "packed.h"

#ifndef OMP
#ifdef _OPENMP
#define OMP(directive) _Pragma(#directive)
#else
#define OMP(directive)
#endif
#endif

// Caps shared by both LM kinds (docs/FORMAT.md, "Language models").
#define LM_MAX_VOCAB 262144        // V
#define LM_MAX_CONTEXT 65536       // hp[25]
#define LM_MAX_NEW_TOKENS 1048576  // -n
#define LM_MAX_SCRATCH_BYTES (1ll << 30)  // working memory of one sequence

// ----------------------------------------------------------------------------
// The LM slots of the header (hp[24..27], n_classes = V)

typedef struct {
    int vocab;      // V: logits per token
    int tokenizer;  // MMIA_TOKENIZER_BYTES, or MMIA_TOKENIZER_BPE
    int context;    // hp[25]: the transformer's cache cap; the Mamba LM's training window
    int tied;       // 1 = the head is the embedding matrix
    int eos;        // end-of-text id in [0, V), or -1
    const Bpe* bpe; // BPE with a blob: the loaded tokenizer (lm_read_tokenizer; lm_info_free
                    // frees it); NULL for bytes and for a BPE model run by token ids only
} LmInfo;

// Check the slots both kinds share and every header field an LM leaves 0
// (image fields; hp[28..31]). Fills info. err = "<why>".
static inline int lm_read_info(const MmiaHeader* h, LmInfo* info, char* err, size_t errlen) {
    const int32_t* hp = h->hp;
    int image0 = h->in_channels == 0 && h->in_height == 0 && h->in_width == 0;
    for (int c = 0; c < 4; c++) image0 = image0 && h->in_mean[c] == 0.0f && h->in_std[c] == 0.0f;
    if (!image0) {
        packed_err(err, errlen, "a language model leaves the image fields (in_channels .. in_std) 0");
        return -1;
    }
    if (h->n_classes < 1 || h->n_classes > LM_MAX_VOCAB) {
        packed_err(err, errlen, "vocabulary size (n_classes) is %u, outside 1..%d", h->n_classes, LM_MAX_VOCAB);
        return -1;
    }
    info->vocab = (int)h->n_classes;
    if (hp[MMIA_LM_HP_TOKENIZER] != MMIA_TOKENIZER_BYTES && hp[MMIA_LM_HP_TOKENIZER] != MMIA_TOKENIZER_BPE) {
        packed_err(err, errlen, "tokenizer hp[24] is %d, outside 0..1", hp[MMIA_LM_HP_TOKENIZER]);
        return -1;
    }
    // BPE (an imported Hugging Face model): the model runs on token ids (the
    // API); the command line, which takes text, refuses it (lm_cli_main).
    info->tokenizer = hp[MMIA_LM_HP_TOKENIZER];
    if (info->tokenizer == MMIA_TOKENIZER_BYTES && info->vocab < 256) {
        packed_err(err, errlen, "vocabulary size %d is below the byte tokenizer's 256", info->vocab);
        return -1;
    }
    if (hp[MMIA_LM_HP_CONTEXT] < 1 || hp[MMIA_LM_HP_CONTEXT] > LM_MAX_CONTEXT) {
        packed_err(err, errlen, "context length hp[25] is %d, outside 1..%d", hp[MMIA_LM_HP_CONTEXT], LM_MAX_CONTEXT);
        return -1;
    }
    info->context = hp[MMIA_LM_HP_CONTEXT];
    if (hp[MMIA_LM_HP_TIED] != 0 && hp[MMIA_LM_HP_TIED] != 1) {
        packed_err(err, errlen, "tied head hp[26] is %d, not 0 or 1", hp[MMIA_LM_HP_TIED]);
        return -1;
    }
    info->tied = hp[MMIA_LM_HP_TIED];
    if (hp[MMIA_LM_HP_EOS] < -1 || hp[MMIA_LM_HP_EOS] >= info->vocab) {
        packed_err(err, errlen, "eos token hp[27] is %d, outside -1..%d", hp[MMIA_LM_HP_EOS], info->vocab - 1);
        return -1;
    }
    info->eos = hp[MMIA_LM_HP_EOS];
    info->bpe = NULL;  // lm_read_tokenizer
    for (int s = 30; s < 32; s++) {
        if (hp[s] != 0) {
            packed_err(err, errlen, "hp[%d] is %d but a language model leaves it 0", s, hp[s]);
            return -1;
        }
    }
    return 0;
}

// The tokenizer blob slots hp[28..29] of a validated file pf whose LM slots
// lm_read_info read into info; a BPE blob is loaded (bpe_load: every rule
// of docs/FORMAT.md "BPE tokenizer blob") into info->bpe. Byte tokenizer:
// both slots 0. BPE: both 0 (no blob: the model runs by token ids only),
// or the blob is the last bytes of the file, 64-byte aligned after every
// tensor, with at most V tokens, and eos (if any) one of its ids and one of
// its special tokens when it has some. 0, or -1 and err = "<why>" (info->bpe
// NULL). Free with lm_info_free.
static inline int lm_read_tokenizer(const PackedFile* pf, LmInfo* info, char* err, size_t errlen) {
    const int32_t at = pf->header->hp[MMIA_LM_HP_BPE_AT], nb = pf->header->hp[MMIA_LM_HP_BPE_BYTES];
    info->bpe = NULL;
    if (info->tokenizer == MMIA_TOKENIZER_BYTES || (at == 0 && nb == 0)) {
        if (at != 0 || nb != 0) {
            packed_err(err, errlen, "hp[%d] is %d but a byte-tokenizer model carries no tokenizer blob (hp[28..29] = 0)",
                       at ? 28 : 29, at ? at : nb);
            return -1;
        }
        return 0;
    }
    uint64_t tensors_end = 0;
    for (uint32_t i = 0; i < pf->n_tensors; i++) {
        uint64_t e = pf->table[i].offset + pf->table[i].nbytes;
        tensors_end = e > tensors_end ? e : tensors_end;
    }
    const uint64_t off = (uint64_t)(at > 0 ? at : 0) * MMIA_ALIGN;
    if (at <= 0 || nb <= 0 || off < tensors_end || off > pf->size || (uint64_t)nb != pf->size - off) {
        packed_err(err, errlen,
                   "tokenizer blob at hp[28] = %d (x 64 bytes), hp[29] = %d bytes is not the end of the file after "
                   "the tensors (they end at byte %llu, the file at %llu)",
                   at, nb, (unsigned long long)tensors_end, (unsigned long long)pf->size);
        return -1;
    }
    Bpe* t = (Bpe*)malloc(sizeof(Bpe));
    if (!t) {
        packed_err(err, errlen, "out of memory loading the tokenizer");
        return -1;
    }
    char why[384];
    if (bpe_load(t, pf->bytes + off, (uint64_t)nb, why, sizeof why) != 0) {
        packed_err(err, errlen, "tokenizer blob: %s", why);
        free(t);
        return -1;
    }
    // The tokenizer must fit the model: at most V tokens (V may be larger:
    // padded rows, Pythia's 50304 for 50277 tokens), and eos one of its ids
    // and one of its special tokens when it has any (bin/export hf's rule
    // for config.json's eos_token_id).
    uint32_t special = BPE_NONE;
    int bad = 1;
    if ((int64_t)t->vocab > info->vocab)
        packed_err(err, errlen, "the tokenizer has %u tokens, more than the model's vocabulary of %d", t->vocab,
                   info->vocab);
    else if (info->eos >= 0 && (uint32_t)info->eos >= t->vocab)
        packed_err(err, errlen, "eos token hp[27] is %d, outside the tokenizer's %u tokens (ids 0..%u)", info->eos,
                   t->vocab, t->vocab - 1);
    else if (info->eos >= 0 && !bpe_is_special(t, (uint32_t)info->eos, &special) && special != BPE_NONE)
        packed_err(err, errlen, "eos token hp[27] is %d, not one of the tokenizer's special tokens (%u is one)",
                   info->eos, special);
    else
        bad = 0;
    if (bad) {
        bpe_free(t);
        free(t);
        return -1;
    }
    info->bpe = t;
    return 0;
}

// Frees what lm_read_tokenizer loaded (NULL-safe; info->bpe = NULL).
static inline void lm_info_free(LmInfo* info) {
    if (info->bpe) {
        bpe_free((Bpe*)info->bpe);
        free((void*)info->bpe);
    }
    info->bpe = NULL;
}

// 0 if hp[from..to) and fp[ffrom..8) are all 0, else -1 naming the first.
static inline int lm_check_zero_slots(const MmiaHeader* h, int from, int to, int ffrom, char* err, size_t errlen) {
    for (int s = from; s < to; s++) {
        if (h->hp[s] != 0) {
            packed_err(err, errlen, "hp[%d] is %d but a language model of this kind leaves it 0", s, h->hp[s]);
            return -1;
        }
    }
    for (int s = ffrom; s < 8; s++) {
        if (h->fp[s] != 0.0f) {  // NaN is != 0 too
            packed_err(err, errlen, "fp[%d] is %g but a language model of this kind leaves it 0", s, (double)h->fp[s]);
            return -1;
        }
    }
    return 0;
}

// "model kind K is X (run it with ./Y)" for a file of the wrong kind, so
// each engine names the right one. err = "<why>".
static inline void lm_wrong_kind(uint32_t kind, const char* this_engine, char* err, size_t errlen) {
    const char* what = NULL;
    const char* prog = NULL;
    switch (kind) {
        case MMIA_KIND_MAMBA: what = "a Mamba classifier"; prog = "./mamba model.bin input.bin"; break;
        case MMIA_KIND_CNN: what = "a CNN"; prog = "./cnn"; break;
        case MMIA_KIND_MAMBA_LM: what = "a Mamba language model"; prog = "./mamba"; break;
        case MMIA_KIND_TRANSFORMER_LM: what = "a transformer language model"; prog = "./transformer"; break;
    }
    if (what)
        packed_err(err, errlen, "model kind %u is %s (run it with %s); this engine runs %s", kind, what, prog,
                   this_engine);
    else
        packed_err(err, errlen, "unknown model kind %u; this engine runs %s", kind, this_engine);
}

// ----------------------------------------------------------------------------
// Byte tokenizer (MMIA_TOKENIZER_BYTES): token id = byte value. Every byte
// string encodes (bytes that are not UTF-8 are tokens like any other);
// decoding writes ids 0..255 back as bytes.

static inline void lm_encode_bytes(const void* text, int64_t n, int* tokens) {
    const unsigned char* s = (const unsigned char*)text;
    for (int64_t i = 0; i < n; i++) tokens[i] = s[i];
}

// Text -> the model's token ids, appended to out: one id per byte (byte
// tokenizer), or info->bpe's bpe_encode (special added tokens such as
// <|endoftext|> not matched in the text: bin/tokenize's default). The BPE
// case needs the blob (info->bpe != NULL). 0, or -1 and err = "<why>" (a
// byte the BPE vocabulary has no token for; out of memory).
static inline int lm_encode_text(const LmInfo* info, const void* text, size_t n, BpeIds* out, char* err,
                                 size_t errlen) {
    if (info->tokenizer == MMIA_TOKENIZER_BPE) return bpe_encode(info->bpe, (const char*)text, n, 0, out, err, errlen);
    const unsigned char* s = (const unsigned char*)text;
    for (size_t i = 0; i < n; i++)
        if (bpe_push(out, s[i]) != 0) {
            packed_err(err, errlen, "out of memory for %zu tokens", n);
            return -1;
        }
    return 0;
}

// One token id -> its bytes, appended to out: the byte of an id < 256
// (byte tokenizer; eos and other ids >= 256 have no text), or the BPE
// token's string (info->bpe needed; special tokens print as their text).
// 0, or -1 and err = "<why>" (an id without text; out of memory).
static inline int lm_decode_token(const LmInfo* info, int id, BpeBytes* out, char* err, size_t errlen) {
    if (info->tokenizer == MMIA_TOKENIZER_BPE) {
        int32_t i = id;
        return bpe_decode(info->bpe, &i, 1, out, err, errlen);
    }
    if (id < 0 || id > 255) {
        packed_err(err, errlen, "token id %d has no text (the byte tokenizer's ids are 0..255)", id);
        return -1;
    }
    if (bpe_bytes_reserve(out, 1) != 0) {
        packed_err(err, errlen, "out of memory decoding token %d", id);
        return -1;
    }
    out->bytes[out->n++] = (uint8_t)id;
    return 0;
}

// Generated ids -> the text printed for them, appended to out: each id's
// lm_decode_token, eos not printed. ids: what lm_generate produced
// (lm_token_allowed ids only). 0, or -1 and err.
static inline int lm_decode_text(const LmInfo* info, const int* ids, int n, BpeBytes* out, char* err, size_t errlen) {
    for (int i = 0; i < n; i++)
        if (ids[i] != info->eos && lm_decode_token(info, ids[i], out, err, errlen) != 0) return -1;
    return 0;
}

// The tokenizer of the language model at path, read as the engines read it
// (lm_read_info, lm_read_tokenizer) without the weights: bin/tokenize
// --model. Opens pf (the blob stays in it at hp[28] * 64, hp[29] bytes);
// the caller frees with lm_info_free, then packed_close. A BPE file without
// a blob opens with info->bpe NULL. 0, or -1 and err = "<path>: <why>"
// (pf closed).
static inline int lm_open_tokenizer(PackedFile* pf, const char* path, LmInfo* info, char* err, size_t errlen) {
    char why[400];
    memset(info, 0, sizeof *info);
    int rc = packed_open(pf, path, why, sizeof why);
    if (rc == 0 && pf->header->kind != MMIA_KIND_MAMBA_LM && pf->header->kind != MMIA_KIND_TRANSFORMER_LM) {
        packed_err(why, sizeof why, "model kind %u is not a language model (only kinds 3 and 4 carry a tokenizer)",
                   pf->header->kind);
        rc = -1;
    }
    if (rc == 0) rc = lm_read_info(pf->header, info, why, sizeof why);
    if (rc == 0) rc = lm_read_tokenizer(pf, info, why, sizeof why);
    if (rc != 0) {
        packed_err(err, errlen, "%s: %s", path, why);
        packed_close(pf);
        return -1;
    }
    return 0;
}

// ----------------------------------------------------------------------------
// Random numbers: xorshift64* (llama2.c's), seeded through splitmix64 so
// any seed (0 included) gives a good state.

static inline uint64_t lm_rng_seed(uint64_t seed) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return z ? z : 0x2545F4914F6CDD1Dull;
}
static inline uint64_t lm_rng_u64(uint64_t* state) {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 0x2545F4914F6CDD1Dull;
}
// uniform double in [0, 1), 53 random bits
static inline double lm_rng_uniform(uint64_t* state) { return (double)(lm_rng_u64(state) >> 11) * (1.0 / 9007199254740992.0); }

// ----------------------------------------------------------------------------
// Log-softmax

// log p(target) = logits[target] - logsumexp(logits), with the max
// subtracted: stable for any finite logits. logits: [V]. The exponentials
// are k_expf's (vectorised, ~2e-7 relative), summed in double: the result
// is within ~3e-7 of the exact log-probability (scoring calls this once per
// token, and libm's double exp made it a fifth of a small model's time).
static inline double lm_log_softmax_at(const float* logits, int V, int target) {
    float mx = logits[0];
#pragma omp simd reduction(max : mx)
    for (int i = 1; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < V; i++) s += (double)k_expf(logits[i] - mx);
    return (double)logits[target] - (double)mx - log(s);
}

// ----------------------------------------------------------------------------
// Sampler, in Hugging Face's order (transformers' LogitsProcessors):
//   temperature == 0: greedy, the first index of the largest logit;
//   else logits / temperature (TemperatureLogitsWarper), then top-k (keep
//   every token whose logit is >= the k-th largest: ties at the boundary
//   stay, TopKLogitsWarper), then top-p (sort ascending, drop the tokens
//   whose cumulative probability is <= 1 - p, always keep the most likely:
//   TopPLogitsWarper), then one draw from the softmax of what is left.
// Tokens the tokenizer cannot produce (ids >= 256 other than eos for the
// byte tokenizer) are masked out before anything else.

typedef struct {
    float temperature;  // 0 = greedy; else > 0
    int top_k;          // 0 = off; else keep the k most likely
    double top_p;       // 1 = off; else in (0, 1] (double, like the Python float HF compares with)
} LmSampler;

typedef struct {
    int id;
    float logit;
} LmCand;

// descending logit, then ascending id: a total order, so the sort result
// does not depend on qsort's algorithm
static inline int lm_cand_cmp(const void* a, const void* b) {
    const LmCand* x = (const LmCand*)a;
    const LmCand* y = (const LmCand*)b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

// 1 if token id may be produced by a model with this info: ids < 256 and
// eos for the byte tokenizer; the tokenizer's ids for BPE with a blob (the
// model's rows past them, padding such as Pythia's 50277..50303, have no
// text); every id of a BPE model run by ids only.
static inline int lm_token_allowed(const LmInfo* info, int id) {
    if (info->tokenizer == MMIA_TOKENIZER_BPE) return !info->bpe || (uint32_t)id < info->bpe->vocab || id == info->eos;
    return id < 256 || id == info->eos;
}

// The kept candidates after temperature, top-k and top-p, with their
// probabilities (renormalised, double) in prob; returns how many (>= 1).
// cand: scratch [V]; prob: [V]. Exposed for the tests.
static inline int lm_sampler_filter(const LmSampler* s, const LmInfo* info, const float* logits, int V, LmCand* cand,
                                    double* prob) {
    int n = 0;
    for (int i = 0; i < V; i++)
        if (lm_token_allowed(info, i)) cand[n++] = (LmCand){i, logits[i] / s->temperature};
    qsort(cand, (size_t)n, sizeof *cand, lm_cand_cmp);
    // top-k: the k-th largest logit is the threshold, ties kept
    if (s->top_k > 0 && s->top_k < n) {
        float kth = cand[s->top_k - 1].logit;
        int keep = s->top_k;
        while (keep < n && cand[keep].logit >= kth) keep++;
        n = keep;
    }
    double mx = cand[0].logit, z = 0.0;
    for (int i = 0; i < n; i++) z += (prob[i] = exp((double)cand[i].logit - mx));
    for (int i = 0; i < n; i++) prob[i] /= z;
    // top-p: from the least likely up, drop while the cumulative mass of
    // what is dropped (this one included) is <= 1 - p; keep the first
    if (s->top_p < 1.0) {
        double cum = 0.0, limit = 1.0 - s->top_p;
        int keep = n;
        for (int i = n - 1; i >= 1; i--) {
            cum += prob[i];
            if (cum <= limit) keep = i;
            else break;
        }
        n = keep;
        z = 0.0;
        for (int i = 0; i < n; i++) z += prob[i];
        for (int i = 0; i < n; i++) prob[i] /= z;
    }
    return n;
}

// The next token. rng: the generator's state (advanced by one draw unless
// greedy). cand, prob: scratch [V] each.
static inline int lm_sample(const LmSampler* s, const LmInfo* info, const float* logits, int V, uint64_t* rng,
                            LmCand* cand, double* prob) {
    if (s->temperature == 0.0f) {
        int best = -1;
        for (int i = 0; i < V; i++)
            if (lm_token_allowed(info, i) && (best < 0 || logits[i] > logits[best])) best = i;
        return best;
    }
    int n = lm_sampler_filter(s, info, logits, V, cand, prob);
    double u = lm_rng_uniform(rng), cum = 0.0;
    for (int i = 0; i < n; i++) {
        cum += prob[i];
        if (u < cum) return cand[i].id;
    }
    return cand[n - 1].id;  // rounding: u just below 1
}

// ----------------------------------------------------------------------------
// The engine interface

typedef struct {
    const void* model;
    LmInfo info;
    // Per-sequence state (the Mamba conv/SSM state or the K/V cache, plus
    // scratch); NULL when out of memory. One state serves one sequence at a
    // time; states are independent, so threads may each use their own.
    void* (*state_new)(const void* model);
    void (*state_free)(void* state);
    // Start a fresh sequence with tokens[0..n) (n >= 1) in one pass; logits
    // [V] of the last position, or NULL. 0, or -1 and err.
    int (*prefill)(const void* model, void* state, const int* tokens, int n, float* logits, char* err, size_t errlen);
    // Append one token to the sequence; logits [V] of the new position.
    int (*decode)(const void* model, void* state, int token, float* logits, char* err, size_t errlen);
    // Teacher-forced scoring of a fresh sequence tokens[0..n), n >= 2, in
    // one pass: logprob[i] = log p(tokens[i+1] | tokens[0..i]), i < n-1.
    int (*score)(const void* model, void* state, const int* tokens, int n, double* logprob, char* err, size_t errlen);
} LmOps;

// Generate up to n_new tokens after the prompt (n_prompt >= 1): prefill,
// then sample/decode one at a time; stops early after eos (eos is stored
// as the last token). out: [n_new]; *n_out: tokens written. seed: the RNG
// seed (the same seed gives the same tokens on any thread count: the
// sampler is serial and every logit is computed the same way by any
// thread). 0, or -1 and err.
// Finite weights can still overflow float32 inside the model (issue 16):
// a NaN or inf logit must stop the run, never be sampled from or printed.
// logits: [V] the output at position pos (0-based, prompt included).
// 0, or -1 and err "position P: the model's output is not finite (...)".
static inline int lm_check_logits(const float* logits, int V, int64_t pos, char* err, size_t errlen) {
    for (int v = 0; v < V; v++)
        if (!isfinite(logits[v])) {
            packed_err(err, errlen,
                       "position %lld: the model's output is not finite (NaN or inf: float32 overflow inside the model)",
                       (long long)pos);
            return -1;
        }
    return 0;
}

// Streaming: on_token(ctx, token) is called with each token as soon as it is
// sampled (before the next decode step), so a CLI can print while the model
// runs. A non-zero return stops the run: lm_generate_stream returns -1 with
// err "output: write failed". on_token NULL: no calls (lm_generate).
typedef int (*LmTokenFn)(void* ctx, int token);

static inline int lm_generate_stream(const LmOps* ops, const int* prompt, int n_prompt, int n_new,
                                     const LmSampler* s, uint64_t seed, int* out, int* n_out, LmTokenFn on_token,
                                     void* ctx, char* err, size_t errlen) {
    *n_out = 0;
    const int V = ops->info.vocab;
    void* st = ops->state_new(ops->model);
    float* logits = (float*)malloc(sizeof(float) * (size_t)V);
    LmCand* cand = (LmCand*)malloc(sizeof(LmCand) * (size_t)V);
    double* prob = (double*)malloc(sizeof(double) * (size_t)V);
    int rc = 0;
    if (!st || !logits || !cand || !prob) {
        packed_err(err, errlen, "out of memory");
        rc = -1;
    }
    uint64_t rng = lm_rng_seed(seed);
    if (rc == 0) rc = ops->prefill(ops->model, st, prompt, n_prompt, logits, err, errlen);
    if (rc == 0) rc = lm_check_logits(logits, V, n_prompt - 1, err, errlen);
    for (int i = 0; rc == 0 && i < n_new; i++) {
        int tok = lm_sample(s, &ops->info, logits, V, &rng, cand, prob);
        out[(*n_out)++] = tok;
        if (on_token && on_token(ctx, tok) != 0) {
            packed_err(err, errlen, "output: write failed");
            rc = -1;
            break;
        }
        if (tok == ops->info.eos || i + 1 == n_new) break;
        rc = ops->decode(ops->model, st, tok, logits, err, errlen);
        if (rc == 0) rc = lm_check_logits(logits, V, (int64_t)n_prompt + i, err, errlen);
    }
    if (st) ops->state_free(st);
    free(logits);
    free(cand);
    free(prob);
    return rc;
}

static inline int lm_generate(const LmOps* ops, const int* prompt, int n_prompt, int n_new, const LmSampler* s,
                              uint64_t seed, int* out, int* n_out, char* err, size_t errlen) {
    return lm_generate_stream(ops, prompt, n_prompt, n_new, s, seed, out, n_out, NULL, NULL, err, errlen);
}

// Score n_texts token sequences, in parallel over texts (OpenMP, one state
// per thread). Text i is tokens[start[i] .. start[i+1]) and must have >= 2
// tokens; its log-probs go to logprob[start[i] - i ..] (n_i - 1 of them).
// The results do not depend on the thread count. 0, or -1 and err (the
// lowest-numbered failing text's, on any thread count).
static inline int lm_score_texts(const LmOps* ops, const int* tokens, const int64_t* start, int64_t n_texts,
                                 double* logprob, char* err, size_t errlen) {
    // The error reported is the lowest-numbered failing text's, whatever
    // the thread count: each thread stops at its own first failure (later
    // texts it is handed have higher numbers), and the lowest of those wins.
    int64_t failed_at = -1;
    OMP(omp parallel if (n_texts > 1))
    {
        void* st = ops->state_new(ops->model);
        char my_err[256] = "out of memory";
        int my_failed = st == NULL;
        int64_t my_at = st == NULL ? 0 : -1;
        OMP(omp for schedule(dynamic, 1))
        for (int64_t i = 0; i < n_texts; i++) {
            if (my_failed) continue;
            int64_t n = start[i + 1] - start[i];
            double* lp = logprob + start[i] - i;
            if (ops->score(ops->model, st, tokens + start[i], (int)n, lp, my_err, sizeof my_err)) {
                my_failed = 1;
                my_at = i;
                continue;
            }
            // finite logits give finite log-probs: a non-finite one is an overflow inside the model
            for (int64_t t = 0; t + 1 < n; t++)
                if (!isfinite(lp[t])) {
                    packed_err(my_err, sizeof my_err,
                               "line %lld, position %lld: the model's output is not finite (NaN or inf: float32 "
                               "overflow inside the model)",
                               (long long)(i + 1), (long long)t);
                    my_failed = 1;
                    my_at = i;
                    break;
                }
        }
        if (my_failed) {
            OMP(omp critical(lm_score_err))
            {
                if (failed_at < 0 || my_at < failed_at) {
                    packed_err(err, errlen, "%s", my_err);
                    failed_at = my_at;
                }
            }
        }
        if (st) ops->state_free(st);
    }
    return failed_at >= 0 ? -1 : 0;
}

// ----------------------------------------------------------------------------
// Matrix-vector product for one-token steps, out[o] = w[o] . x + b[o],
// w: [O][I]. Rows split over threads when big enough to pay for it; each
// row is one thread's fixed-order sum, so the result does not depend on
// the thread count. Inside a parallel region (scoring) it stays serial.
static inline void lm_matvec(float* out, const float* w, const float* x, const float* bias, int O, int I) {
    OMP(omp parallel for schedule(static) if ((int64_t)O * I >= (1 << 20)))
    for (int o = 0; o < O; o++) {
        const float* wo = w + (int64_t)o * I;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < I; i++) s += wo[i] * x[i];
        out[o] = s + (bias ? bias[o] : 0.0f);
    }
}

// The head over a whole sequence and what the callers want from it.
// x: [D][n] final-normed hidden states, feature-major; head: [V][D].
// Outputs, each optional: all_logits [n][V]; logprob [n-1] = log p(tokens[t+1])
// from position t; last [V] = the last position's logits. Only the last
// position is computed when the first two are NULL. scratch:
// lm_head_scratch_floats(D, V).
#define LM_HEAD_CHUNK K_MM_TT  // tokens per head matmul: one register tile wide
static inline int64_t lm_head_scratch_floats(int64_t D, int64_t V) {
    return D * LM_HEAD_CHUNK + V * LM_HEAD_CHUNK + V;
}
static inline void lm_head_outputs(const float* x, int D, int n, const float* head, int V, const int* tokens,
                                   float* all_logits, double* logprob, float* last, float* scratch) {
    float* xc = scratch;                           // [D][chunk] a chunk of tokens
    float* lc = xc + (int64_t)D * LM_HEAD_CHUNK;   // [V][chunk] their logits
    float* col = lc + (int64_t)V * LM_HEAD_CHUNK;  // [V] one token's logits
    int first = all_logits || logprob ? 0 : n - 1;
    for (int t0 = first; t0 < n; t0 += LM_HEAD_CHUNK) {
        int T = n - t0 < LM_HEAD_CHUNK ? n - t0 : LM_HEAD_CHUNK;
        for (int d = 0; d < D; d++)
            for (int j = 0; j < T; j++) xc[d * T + j] = x[(int64_t)d * n + t0 + j];
        if (T == 1)
            lm_matvec(lc, head, xc, NULL, V, D);
        else
            k_matmul_fm(lc, head, xc, NULL, V, D, T, 0);
        for (int j = 0; j < T; j++) {
            int t = t0 + j;
            for (int v = 0; v < V; v++) col[v] = lc[(int64_t)v * T + j];
            if (all_logits) memcpy(all_logits + (int64_t)t * V, col, sizeof(float) * (size_t)V);
            if (logprob && t + 1 < n) logprob[t] = lm_log_softmax_at(col, V, tokens[t + 1]);
            if (last && t == n - 1) memcpy(last, col, sizeof(float) * (size_t)V);
        }
    }
}

// ----------------------------------------------------------------------------
// The command line

typedef struct {
    const char* name;  // "mamba" -> "./mamba"
    const char* kind;  // "Mamba" (usage text)
    // Open a model of this engine's LM kind: fills ops. err = "<path>: <why>".
    int (*open)(void* model, const char* path, LmOps* ops, char* err, size_t errlen);
    void (*close)(void* model);
    void* model;
    int context_is_cap;  // 1: prompt + -n beyond the context is refused (transformer)
} LmCli;

static inline void lm_cli_usage(const LmCli* e) {
    printf("usage: ./%s lm.bin -i PROMPT [-n N] [-t T] [-k K] [-p P] [-s SEED] [--show-tokens] [--threads N]\n"
           "       ./%s lm.bin --score TEXTS [--out FILE] [--show-tokens] [--threads N]\n"
           "\n"
           "Run the %s language model in lm.bin with its tokenizer: bytes (one token per\n"
           "byte), or the BPE tokenizer the file carries (bin/export hf with tokenizer.json).\n"
           "\n"
           "generation (prints the text of the N generated tokens, then a newline; stops\n"
           "early at eos, which is not printed):\n"
           "  -i PROMPT      the prompt (at least one byte; any bytes, UTF-8 or not, that\n"
           "                 the tokenizer encodes; <|endoftext|> in it is plain text)\n"
           "  -n N           tokens to generate, 1..%d (default 256)\n"
           "  -t T           temperature >= 0; 0 = greedy (default 1.0)\n"
           "  -k K           top-k, 0 = off (default 0)\n"
           "  -p P           top-p in (0, 1], 1 = off (default 1.0)\n"
           "  -s SEED        random seed, an integer (default 0); the same seed gives\n"
           "                 the same text on any thread count\n"
           "scoring:\n"
           "  --score TEXTS  score each line of TEXTS (without its newline; at least 2\n"
           "                 tokens): prints 'tokens<TAB>loss<TAB>perplexity' per line,\n"
           "                 tokens = the line's tokens - 1 predicted, loss = mean -log p\n"
           "                 in nats\n"
           "  --out FILE     also write each line's per-token log-probs (natural log,\n"
           "                 p(token i+1 | tokens 0..i), space-separated %%.9g), one line\n"
           "                 per input line, atomically\n"
           "both:\n"
           "  --show-tokens  also print the token ids on stderr, one line each:\n"
           "                 'prompt ids (N): ...' then 'generated ids (M): ...' (eos\n"
           "                 included) with -i; 'line K ids (N): ...' with --score\n"
           "  --threads N    OpenMP threads (default: all cores)\n"
           "  --help         this text\n"
           "\n"
           "Errors: 'error: <what>: <why>' on stderr, exit 1 (2 for usage errors).\n",
           e->name, e->name, e->kind, LM_MAX_NEW_TOKENS);
}

static inline int lm_cli_usage_error(const LmCli* e, const char* fmt, const char* arg) {
    fprintf(stderr, "error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see ./%s lm.bin --help)\n", e->name);
    return 2;
}

// Parse an integer in [lo, hi]; 0 ok.
static inline int lm_parse_int(const char* v, long long lo, long long hi, long long* out) {
    char* end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*v == 0 || *end != 0 || errno || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}
static inline int lm_parse_float(const char* v, double* out) {
    char* end;
    errno = 0;
    double x = strtod(v, &end);
    if (*v == 0 || *end != 0 || errno || !isfinite(x)) return -1;
    *out = x;
    return 0;
}

// --show-tokens: "<label> ids (N): id id ...\n" on stderr.
static inline void lm_cli_show_ids(const char* label, long long k, const int* ids, int64_t n) {
    if (k > 0) fprintf(stderr, "%s %lld ids (%lld):", label, k, (long long)n);
    else fprintf(stderr, "%s ids (%lld):", label, (long long)n);
    for (int64_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fputc('\n', stderr);
}

// -i: each generated token printed as soon as it is sampled (streaming, as
// llama2.c prints): its lm_decode_token bytes to stdout, flushed, eos not
// printed. Used as lm_generate_stream's on_token; on failure err says why.
typedef struct {
    const LmInfo* info;
    BpeBytes text;  // the token's bytes (reused)
    char err[256];
} LmPrintTokens;

static inline int lm_print_token(void* ctx, int token) {
    LmPrintTokens* p = (LmPrintTokens*)ctx;
    if (token == p->info->eos) return 0;
    p->text.n = 0;
    if (lm_decode_token(p->info, token, &p->text, p->err, sizeof p->err) != 0) return -1;
    if ((p->text.n && fwrite(p->text.bytes, 1, p->text.n, stdout) != p->text.n) || fflush(stdout) != 0) {
        snprintf(p->err, sizeof p->err, "stdout: write failed");
        return -1;
    }
    if (p->text.n) packed_stdout_line_open = p->text.bytes[p->text.n - 1] != '\n';
    return 0;
}

// --score's input: the n_lines lines of bytes[0, size) (a last line without
// its newline counts; the newlines are not scored) -> their tokens back to
// back in ids (lm_encode_text), line i at ids[start[i], start[i + 1]);
// start: n_lines + 1 entries, the caller's. Fails, with one error line
// naming path and the line, on a line the tokenizer refuses, a line of
// fewer than 2 tokens (nothing to predict), or one longer than the context
// when the context is a cap.
static inline int lm_cli_tokenize_lines(const LmCli* e, const LmOps* ops, const char* path, const uint8_t* bytes,
                                        uint64_t size, int64_t n_lines, BpeIds* ids, int64_t* start) {
    char err[512];
    const int bpe = ops->info.tokenizer == MMIA_TOKENIZER_BPE;
    uint64_t at = 0;
    start[0] = 0;
    for (int64_t line = 0; line < n_lines; line++) {
        uint64_t end = at;
        while (end < size && bytes[end] != '\n') end++;
        int64_t len = (int64_t)(end - at);
        if (len > INT32_MAX / 2) {
            fprintf(stderr, "error: %s: line %lld is too long (%lld bytes)\n", path, (long long)(line + 1),
                    (long long)len);
            return 1;
        }
        if (lm_encode_text(&ops->info, bytes + at, (size_t)len, ids, err, sizeof err) != 0) {
            fprintf(stderr, "error: %s: line %lld: %s\n", path, (long long)(line + 1), err);
            return 1;
        }
        int64_t nt = (int64_t)ids->n - start[line];
        if (nt < 2) {
            fprintf(stderr, "error: %s: line %lld has %lld %s%s: scoring needs at least 2 (one to predict)\n", path,
                    (long long)(line + 1), (long long)nt, bpe ? "token" : "byte", nt == 1 ? "" : "s");
            return 1;
        }
        if (e->context_is_cap && nt > ops->info.context) {
            fprintf(stderr, "error: %s: line %lld has %lld tokens, more than the model's context of %d\n", path,
                    (long long)(line + 1), (long long)nt, ops->info.context);
            return 1;
        }
        if (nt > INT32_MAX / 2) {
            fprintf(stderr, "error: %s: line %lld is too long (%lld tokens)\n", path, (long long)(line + 1),
                    (long long)nt);
            return 1;
        }
        start[line + 1] = (int64_t)ids->n;
        at = end + 1;
    }
    return 0;
}

// --score: each line of the mapped file scored (lm_cli_tokenize_lines, then
// lm_score_texts): "tokens<TAB>loss<TAB>perplexity" per line on stdout
// (loss: mean negative log-probability, nats per token), and with out_path
// every predicted token's log-probability, a line per input line, written
// atomically before stdout. Fails on an empty file or any line
// lm_cli_tokenize_lines refuses. show: --show-tokens.
static inline int lm_cli_score(const LmCli* e, const LmOps* ops, const char* path, const char* out_path, int show) {
    const uint8_t* bytes;
    uint64_t size;
    void* map;
    size_t map_len;
    char err[512];
    if (packed_map_file(path, &bytes, &size, &map, &map_len, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s: %s\n", path, err);
        return 1;
    }
    int64_t n_lines = 0;
    for (uint64_t i = 0; i < size; i++)
        if (bytes[i] == '\n') n_lines++;
    if (size > 0 && bytes[size - 1] != '\n') n_lines++;  // a last line without its newline
    int rc = 0;
    if (n_lines == 0) {
        fprintf(stderr, "error: %s: no lines to score (the file is empty)\n", path);
        rc = 1;
    }
    // ids holds the lines' tokens back to back (without their newlines)
    BpeIds ids = {NULL, 0, 0};
    int64_t* start = rc ? NULL : (int64_t*)malloc(sizeof(int64_t) * (size_t)(n_lines + 1));
    if (rc == 0 && !start) {
        fprintf(stderr, "error: %s: out of memory for %lld lines\n", path, (long long)n_lines);
        rc = 1;
    }
    if (rc == 0) rc = lm_cli_tokenize_lines(e, ops, path, bytes, size, n_lines, &ids, start);
    const int* tokens = (const int*)ids.ids;  // int32_t ids
    for (int64_t i = 0; rc == 0 && show && i < n_lines; i++)
        lm_cli_show_ids("line", (long long)(i + 1), tokens + start[i], start[i + 1] - start[i]);
    double* lp = rc ? NULL : (double*)malloc(sizeof(double) * (ids.n ? ids.n : 1));
    if (rc == 0 && !lp) {
        fprintf(stderr, "error: %s: out of memory for %lld lines\n", path, (long long)n_lines);
        rc = 1;
    }
    if (rc == 0 && lm_score_texts(ops, tokens, start, n_lines, lp, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s: %s\n", path, err);
        rc = 1;
    }
    IoBuf ob = {NULL, 0, 0, 0}, sb = {NULL, 0, 0, 0};
    char num[64];
    for (int64_t i = 0; rc == 0 && i < n_lines; i++) {
        int64_t n = start[i + 1] - start[i] - 1;
        const double* l = lp + start[i] - i;
        double sum = 0.0;
        for (int64_t j = 0; j < n; j++) {
            sum += l[j];
            if (out_path) {
                int w = snprintf(num, sizeof num, j ? " %.9g" : "%.9g", l[j]);
                io_buf_append(&ob, num, (size_t)w);
            }
        }
        if (out_path) io_buf_append(&ob, "\n", 1);
        double loss = -sum / (double)n;
        int w = snprintf(num, sizeof num, "%lld\t%.6f\t%.6f\n", (long long)n, loss, exp(loss));
        io_buf_append(&sb, num, (size_t)w);
    }
    if (rc == 0 && (ob.failed || sb.failed)) {
        fprintf(stderr, "error: %s: out of memory formatting the results\n", path);
        rc = 1;
    }
    // The output file first: if it fails, the run failed and stdout stays empty.
    if (rc == 0 && out_path && io_write_file_atomic(out_path, ob.p, ob.len, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s: %s\n", out_path, err);
        rc = 1;
    }
    if (rc == 0 && sb.len && fwrite(sb.p, 1, sb.len, stdout) != sb.len) rc = 1;
    free(ob.p);
    free(sb.p);
    free(ids.ids);
    free(start);
    free(lp);
    packed_unmap_file(map, map_len);
    return rc;
}

// The LM command line's settings (lm_cli_parse).
typedef struct {
    const char* model_path;
    const char* prompt;      // -i
    const char* score_path;  // --score
    const char* out_path;    // --out
    long long n_new, top_k, threads;
    double temperature, top_p;
    uint64_t seed;
    int show_tokens;
} LmCliArgs;

// argv -> a: -1 when the program goes on, else main's exit code (0 after
// --help, 2 after one usage error line).
static inline int lm_cli_parse(int argc, char** argv, const LmCli* e, LmCliArgs* a) {
    memset(a, 0, sizeof *a);
    a->n_new = 256;
    a->temperature = 1.0;
    a->top_p = 1.0;
    // A flag with a value given twice is a usage error, never "the last wins".
    static const char* const value_flags[] = {"-i", "--score", "--out", "-n", "-t", "-k", "-p", "-s", "--threads"};
    int seen[sizeof value_flags / sizeof value_flags[0]] = {0};
    for (int i = 1; i < argc; i++) {
        const char* f = argv[i];
        int has_value = i + 1 < argc;
        const char* v = has_value ? argv[i + 1] : NULL;
        for (size_t k = 0; k < sizeof value_flags / sizeof value_flags[0]; k++)
            if (strcmp(f, value_flags[k]) == 0 && seen[k]++)
                return lm_cli_usage_error(e, "%s: given twice (give it once)", f);
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
            lm_cli_usage(e);
            return 0;
        } else if (strcmp(f, "--show-tokens") == 0) {
            a->show_tokens = 1;
            continue;
        } else if (f[0] == '-' && f[1] != 0) {
            int known = 0;
            for (size_t k = 0; k < sizeof value_flags / sizeof value_flags[0]; k++) known |= !strcmp(f, value_flags[k]);
            if (!known) return lm_cli_usage_error(e, "unknown flag '%s'", f);
            if (!has_value)
                return lm_cli_usage_error(e, strcmp(f, "--threads") ? "%s: missing value" : "%s: missing N", f);
            i++;
        } else if (!a->model_path) {
            a->model_path = f;
            continue;
        } else {
            return lm_cli_usage_error(e, "unexpected extra argument '%s'", f);
        }
        if (strcmp(f, "-i") == 0) {
            a->prompt = v;
        } else if (strcmp(f, "--score") == 0) {
            a->score_path = v;
        } else if (strcmp(f, "--out") == 0) {
            a->out_path = v;
        } else if (strcmp(f, "-n") == 0) {
            if (lm_parse_int(v, 1, LM_MAX_NEW_TOKENS, &a->n_new))
                return lm_cli_usage_error(e, "-n: '%s' is not a token count in 1..1048576", v);
        } else if (strcmp(f, "-t") == 0) {
            if (lm_parse_float(v, &a->temperature) || a->temperature < 0)
                return lm_cli_usage_error(e, "-t: '%s' is not a temperature >= 0", v);
        } else if (strcmp(f, "-k") == 0) {
            if (lm_parse_int(v, 0, LM_MAX_VOCAB, &a->top_k))
                return lm_cli_usage_error(e, "-k: '%s' is not a top-k in 0..262144", v);
        } else if (strcmp(f, "-p") == 0) {
            if (lm_parse_float(v, &a->top_p) || !(a->top_p > 0 && a->top_p <= 1))
                return lm_cli_usage_error(e, "-p: '%s' is not a top-p in (0, 1]", v);
        } else if (strcmp(f, "-s") == 0) {
            char* end;
            errno = 0;
            unsigned long long sv = strtoull(v, &end, 10);  // a sign would wrap: digits only
            if (!(*v >= '0' && *v <= '9') || *end != 0 || errno)
                return lm_cli_usage_error(e, "-s: '%s' is not an integer seed in [0, 18446744073709551615]", v);
            a->seed = (uint64_t)sv;
        } else if (lm_parse_int(v, 1, 1024, &a->threads)) {  // --threads
            return lm_cli_usage_error(e, "--threads: '%s' is not a thread count in 1..1024", v);
        }
    }
    if (!a->model_path) return lm_cli_usage_error(e, "%s", "missing argument: need lm.bin");
    if (!a->prompt && !a->score_path) return lm_cli_usage_error(e, "%s", "nothing to do: give -i PROMPT or --score TEXTS");
    if (a->prompt && a->score_path) return lm_cli_usage_error(e, "%s", "-i and --score cannot be combined");
    if (a->out_path && !a->score_path) return lm_cli_usage_error(e, "%s", "--out goes with --score");
    return -1;
}

// -i: encode the prompt, check it against -n and the context, generate
// with the text streamed to stdout (lm_print_token), then a newline.
// 0, or 1 after one error line.
static inline int lm_cli_generate(const LmCliArgs* a, const LmCli* e, const LmOps* ops) {
    char err[512];
    int rc = 0;
    BpeIds pids = {NULL, 0, 0};
    if (lm_encode_text(&ops->info, a->prompt, strlen(a->prompt), &pids, err, sizeof err) != 0) {
        fprintf(stderr, "error: -i: %s\n", err);
        rc = 1;
    }
    const int64_t n_prompt = (int64_t)pids.n;
    const long long n_new = a->n_new;
    if (rc) {
    } else if (n_prompt == 0) {
        fprintf(stderr, "error: -i: the prompt is empty (give at least one byte)\n");
        rc = 1;
    } else if (e->context_is_cap && n_prompt + n_new > ops->info.context) {
        fprintf(stderr, "error: -i/-n: the prompt (%lld tokens) + -n %lld = %lld tokens exceeds the model's context of %d\n",
                (long long)n_prompt, n_new, (long long)n_prompt + n_new, ops->info.context);
        rc = 1;
    } else if (n_prompt > INT32_MAX / 2) {
        fprintf(stderr, "error: -i: the prompt is too long (%lld tokens)\n", (long long)n_prompt);
        rc = 1;
    }
    if (rc == 0 && a->show_tokens) lm_cli_show_ids("prompt", 0, (const int*)pids.ids, n_prompt);  // before the run
    int* toks = rc ? NULL : (int*)malloc(sizeof(int) * (size_t)(n_prompt + n_new));
    if (rc == 0 && !toks) {
        fprintf(stderr, "error: -n: out of memory for %lld tokens\n", n_new);
        rc = 1;
    }
    int n_out = 0;
    LmPrintTokens pr = {&ops->info, {NULL, 0, 0}, ""};
    if (rc == 0) {
        memcpy(toks, pids.ids, sizeof(int) * (size_t)n_prompt);
        LmSampler s = {(float)a->temperature, (int)a->top_k, a->top_p};
        if (lm_generate_stream(ops, toks, (int)n_prompt, (int)n_new, &s, a->seed, toks + n_prompt, &n_out,
                               lm_print_token, &pr, err, sizeof err) != 0) {
            if (packed_stdout_line_open) fputc('\n', stdout);  // end the streamed text's line first
            fprintf(stderr, "error: %s: %s\n", a->model_path, pr.err[0] ? pr.err : err);
            rc = 1;
        }
    }
    if (rc == 0 && fputc('\n', stdout) == EOF) rc = 1;
    packed_stdout_line_open = 0;
    if (rc == 0 && a->show_tokens) lm_cli_show_ids("generated", 0, toks + n_prompt, n_out);
    free(pr.text.bytes);
    free(pids.ids);
    free(toks);
    return rc;
}

// The whole LM program: returns main's exit code (0 ok, 1 bad file or
// I/O, 2 usage).
static inline int lm_cli_main(int argc, char** argv, const LmCli* e) {
    LmCliArgs a;
    if (int code = lm_cli_parse(argc, argv, e, &a); code >= 0) return code;
#ifdef _OPENMP
    if (a.threads > 0) omp_set_num_threads((int)a.threads);
#endif
    char err[512];
    const char* inputs[2] = {a.model_path, a.score_path};
    if (a.out_path && (io_check_output_path(a.out_path, err, sizeof err) != 0 ||  // before any work
                       io_check_not_input(a.out_path, "--out", inputs, 2, err, sizeof err) != 0)) {
        fprintf(stderr, "error: %s: %s\n", a.out_path, err);
        return 1;
    }
    LmOps ops;
    if (e->open(e->model, a.model_path, &ops, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    int rc = 0;
    if (ops.info.tokenizer == MMIA_TOKENIZER_BPE && !ops.info.bpe) {
        fprintf(stderr, "error: %s: the model's tokenizer is BPE but the file carries none (imported without "
                        "tokenizer.json): -i and --score take text (the C API takes token ids)\n", a.model_path);
        rc = 1;
    } else if (a.score_path) {
        rc = lm_cli_score(e, &ops, a.score_path, a.out_path, a.show_tokens);
    } else {
        rc = lm_cli_generate(&a, e, &ops);
    }
    if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout))) {
        fprintf(stderr, "error: stdout: write failed\n");
        rc = 1;
    }
    e->close(e->model);
    return rc;
}

// The first flag only the LM command line knows (-i, -n, -t, -k, -p, -s,
// --score, --show-tokens), or NULL: ./mamba then runs the LM CLI whatever the file (but a
// classifier), so a missing or wrong file gets the LM reader's error, not
// "unknown flag".
static inline const char* lm_cli_first_lm_flag(int argc, char** argv) {
    static const char* lm_flags[] = {"-i", "-n", "-t", "-k", "-p", "-s", "--score", "--show-tokens", NULL};
    for (int i = 1; i < argc; i++)
        for (int f = 0; lm_flags[f]; f++)
            if (strcmp(argv[i], lm_flags[f]) == 0) return lm_flags[f];
    return NULL;
}

// Which CLI a program runs: the kind of the first argument that is not a
// flag or a flag's value (*path = it), or 0 when there is none or it is not
// a readable packed file (the CLI then reports that when it opens it).
static inline uint32_t lm_cli_peek_kind(int argc, char** argv, const char** path) {
    *path = NULL;
    static const char* value_flags[] = {"-i", "-n", "-t", "-k", "-p", "-s", "--score", "--out", "--threads", NULL};
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        int takes = 0;
        for (int f = 0; value_flags[f]; f++) takes |= strcmp(a, value_flags[f]) == 0;
        if (takes) {
            i++;
            continue;
        }
        if (a[0] == '-' && a[1] != 0) continue;
        *path = a;
        // O_NONBLOCK and regular files only: a FIFO must not hang the peek
        int fd = open(a, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) return 0;
        struct stat st;
        MmiaHeader h;
        ssize_t got = 0;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) got = read(fd, &h, sizeof h);
        close(fd);
        if (got < 16 || memcmp(h.magic, MMIA_MAGIC, 8) != 0) return 0;
        return h.kind;
    }
    return 0;
}
