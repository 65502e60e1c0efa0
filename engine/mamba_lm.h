// mamba_lm.h: public C-style API of the Mamba language model (kind 3,
// docs/FORMAT.md "Language models"), implemented in mamba.cpp beside the
// classifier. state-spaces/mamba's MambaLMHeadModel (= Hugging Face
// MambaForCausalLM): embedding -> n_layers pre-norm residual Mamba blocks
// (causal conv, RMSNorm) -> RMSNorm -> head (tied to the embedding or not).
//
// Link build/mamba_lib.o (mamba.cpp compiled with -DMAMBA_NO_MAIN).
//
//   MambaLm m;
//   char err[512];
//   if (mamba_lm_open(&m, "lm.bin", err, sizeof err) != 0) die(err);
//   MambaLmState* st = mamba_lm_state_new(&m);
//   float* logits = malloc(m.info.vocab * sizeof(float));
//   mamba_lm_prefill(&m, st, prompt, n_prompt, logits, err, sizeof err);  // whole prompt, one pass
//   mamba_lm_decode(&m, st, next_token, logits, err, sizeof err);         // O(1) per token
//   mamba_lm_state_free(st);
//   mamba_lm_close(&m);
//
// Or through the engine-neutral interface of engine/lm.h:
// mamba_lm_ops(&m) gives an LmOps for lm_generate / lm_score_texts.
//
// A MambaLm is immutable after opening (weights stay in the read-only
// mmap), so threads may share it, each with its own MambaLmState.
// Errors: "<what>: <why>" (callers add "error: ").
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "lm.h"
#include "mamba.h"
#include "packed.h"

typedef struct {
    LmInfo info;             // vocab V, context, tied, eos, tokenizer
    int n_layers;
    MambaBlockConfig block;  // D, E, N, K, R; causal conv, RMSNorm, pre-norm
    // weights (pointers into the mmap)
    const float* embedding;     // [V][D]
    MambaLayerWeights* layers;  // [n_layers], malloc'd
    const float* norm_f;        // [D]
    const float* head;          // [V][D] = embedding when tied
    PackedFile file;
} MambaLm;

typedef struct MambaLmState MambaLmState;

// Open + validate a kind-3 file (mmap). 0 = ok; else err = "<path>: <why>".
int mamba_lm_open(MambaLm* m, const char* path, char* err, size_t errlen);
// Same over bytes in memory (8-byte aligned, alive until mamba_lm_close).
// err = "<why>". Used by the fuzzer and tests.
int mamba_lm_open_memory(MambaLm* m, const void* bytes, uint64_t size, char* err, size_t errlen);
// Release; safe on a zeroed or failed-to-open model.
void mamba_lm_close(MambaLm* m);

// Per-sequence state: each layer's conv state [E][K-1] (the last K-1
// inputs of the conv) and SSM state [E][N], plus scratch. NULL when out of
// memory. Free with mamba_lm_state_free (NULL is fine).
MambaLmState* mamba_lm_state_new(const MambaLm* m);
void mamba_lm_state_free(MambaLmState* st);
// Tokens processed since the last prefill.
int64_t mamba_lm_state_pos(const MambaLmState* st);

// Prefill: a fresh sequence tokens[0..n) (ids in [0, V), n >= 1) through
// the whole model in one pass (the selective scan over the prompt), leaving
// every layer's conv and SSM state for decode. logits: [V] of the last
// position, or NULL. 0, or -1 and err (bad token, n out of range, scratch
// over the cap or out of memory).
int mamba_lm_prefill(const MambaLm* m, MambaLmState* st, const int* tokens, int n, float* logits, char* err,
                     size_t errlen);
// Decode: one more token through the recurrent step (constant time and
// memory per token). logits: [V] of the new position. Needs a prefill first.
int mamba_lm_decode(const MambaLm* m, MambaLmState* st, int token, float* logits, char* err, size_t errlen);
// Teacher forcing: logits of every position of a fresh sequence in one
// pass. all_logits: [n][V] (row t = the prediction of token t+1), or NULL;
// logprob: [n-1], log p(tokens[t+1] | tokens[0..t]) in double, or NULL.
// Leaves the state as prefill does.
int mamba_lm_forward(const MambaLm* m, MambaLmState* st, const int* tokens, int n, float* all_logits,
                     double* logprob, char* err, size_t errlen);

// The engine-neutral interface (engine/lm.h) over an open model.
LmOps mamba_lm_ops(const MambaLm* m);
