// transformer.h: public C-style API of the transformer language model
// engine (transformer.cpp, kind 4 in docs/FORMAT.md "Language models"):
// GPT-NeoX as Pythia uses it (Hugging Face GPTNeoXForCausalLM).
//
// Link build/transformer_lib.o (transformer.cpp compiled with
// -DTRANSFORMER_NO_MAIN).
//
//   Transformer m;
//   char err[512];
//   if (transformer_open(&m, "lm.bin", err, sizeof err) != 0) die(err);
//   TransformerState* st = transformer_state_new(&m);
//   float* logits = malloc(m.info.vocab * sizeof(float));
//   transformer_prefill(&m, st, prompt, n_prompt, logits, err, sizeof err);  // fills the K/V cache
//   transformer_decode(&m, st, next_token, logits, err, sizeof err);         // attends over the cache
//   transformer_state_free(st);
//   transformer_close(&m);
//
// Or through engine/lm.h: transformer_ops(&m) gives an LmOps for
// lm_generate / lm_score_texts.
//
// A Transformer is immutable after opening (weights stay in the read-only
// mmap), so threads may share it, each with its own TransformerState.
// Errors: "<what>: <why>" (callers add "error: ").
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "lm.h"
#include "packed.h"

// Caps on a model's dimensions (docs/FORMAT.md); files beyond them are refused.
#define TRANSFORMER_MAX_WIDTH 16384   // d_model D
#define TRANSFORMER_MAX_FF 65536      // d_ff F
#define TRANSFORMER_MAX_LAYERS 256
#define TRANSFORMER_MAX_HEADS 1024
#define TRANSFORMER_MAX_CACHE_BYTES (1ll << 32)  // K + V cache of one sequence at the full context

// One layer's weights: pointers into the mmap'd file (not owned).
typedef struct {
    const float* ln1_w;   // [D]      input_layernorm
    const float* ln1_b;   // [D]
    const float* ln2_w;   // [D]      post_attention_layernorm
    const float* ln2_b;   // [D]
    const float* qkv_w;   // [3D][D]  row h*3*dh + j: q (j < dh), k (dh <= j < 2dh), v of head h
    const float* qkv_b;   // [3D]
    const float* dense_w; // [D][D]   attention output
    const float* dense_b; // [D]
    const float* fc1_w;   // [F][D]   dense_h_to_4h
    const float* fc1_b;   // [F]
    const float* fc2_w;   // [D][F]   dense_4h_to_h
    const float* fc2_b;   // [D]
} TransformerLayer;

typedef struct {
    LmInfo info;        // vocab V, context (the K/V cache cap), tied, eos, tokenizer
    int d_model;        // D
    int n_layers;
    int n_heads;        // H
    int head_dim;       // dh = D / H
    int d_ff;           // F
    int rotary_ndims;   // r: rotated dims of each head (even, <= dh)
    int parallel;       // 1 = x + attn(ln1 x) + mlp(ln2 x); 0 = sequential
    float eps;          // LayerNorm eps
    float rotary_base;  // 10000 in Pythia
    // weights (pointers into the mmap)
    const float* embed;         // [V][D] embed_in
    TransformerLayer* layers;   // [n_layers], malloc'd
    const float* ln_f_w;        // [D] final_layer_norm
    const float* ln_f_b;        // [D]
    const float* head;          // [V][D] embed_out (= embed when tied)
    PackedFile file;
} Transformer;

typedef struct TransformerState TransformerState;

// Open + validate a kind-4 file (mmap). 0 = ok; else err = "<path>: <why>".
int transformer_open(Transformer* m, const char* path, char* err, size_t errlen);
// Same over bytes in memory (8-byte aligned, alive until transformer_close).
// err = "<why>". Used by the fuzzer and tests.
int transformer_open_memory(Transformer* m, const void* bytes, uint64_t size, char* err, size_t errlen);
// Release; safe on a zeroed or failed-to-open model.
void transformer_close(Transformer* m);

// Per-sequence state: the K/V cache [position][layer][D] (keys after
// rotary), grown on demand up to the context, plus scratch. NULL when out
// of memory. Free with transformer_state_free (NULL is fine).
TransformerState* transformer_state_new(const Transformer* m);
void transformer_state_free(TransformerState* st);
// Tokens in the cache.
int64_t transformer_state_pos(const TransformerState* st);

// Prefill: a fresh sequence tokens[0..n) (ids in [0, V), 1 <= n <=
// context) in one pass, filling the cache. logits: [V] of the last
// position, or NULL. 0, or -1 and err.
int transformer_prefill(const Transformer* m, TransformerState* st, const int* tokens, int n, float* logits,
                        char* err, size_t errlen);
// Decode: one more token at position pos, attending over the cache.
// logits: [V]. Refused once the cache holds `context` tokens.
int transformer_decode(const Transformer* m, TransformerState* st, int token, float* logits, char* err,
                       size_t errlen);
// Teacher forcing: a fresh sequence in one pass (= prefill), with
// all_logits [n][V] (row t predicts token t+1) and/or logprob [n-1]
// (log p(tokens[t+1] | tokens[0..t]), double); either may be NULL.
int transformer_forward(const Transformer* m, TransformerState* st, const int* tokens, int n, float* all_logits,
                        double* logprob, char* err, size_t errlen);

// The engine-neutral interface (engine/lm.h) over an open model.
LmOps transformer_ops(const Transformer* m);

// The matmul every projection of both LM engines runs over a sequence, as
// compiled into the engines (kernels.h k_matmul_fm), for benchmarks:
// out[O][T] = W[O][I] x[I][T] + bias[O] (bias may be NULL), feature-major.
void transformer_matmul_fm(float* out, const float* w, const float* x, const float* bias, int O, int I, int T);
