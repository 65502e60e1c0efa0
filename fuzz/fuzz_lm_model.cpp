// fuzz_lm_model.cpp: libFuzzer target for the language-model loaders of
// both kinds (engine/packed.h validation + mamba.cpp's kind-3 checks +
// transformer.cpp's kind-4 checks), and for prefill, decode and scoring of
// any model a loader accepts.
//   clang++ -std=c++17 -g -O1 -fopenmp-simd -Wno-pass-failed -fsanitize=fuzzer,address,undefined -I. \
//       -DMAMBA_NO_MAIN -DTRANSFORMER_NO_MAIN fuzz/fuzz_lm_model.cpp mamba.cpp transformer.cpp \
//       -o build/fuzz/fuzz_lm_model
//   build/fuzz/fuzz_lm_model -max_total_time=60 fuzz/corpus/fuzz_lm_model
//
// Input: a model file's bytes, given to both loaders (one of them refuses
// it for its kind). A refusal with an error string is the expected
// outcome; a crash, a sanitizer report or a refusal without a message is a
// finding. As in fuzz_mamba_model, bit 0 of reserved0 makes the target
// rewrite file_bytes and the checksum first (the seeds have it set).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/format.h"
#include "engine/lm.h"
#include "engine/mamba_lm.h"
#include "engine/transformer.h"

// A few tokens through an accepted model, if cheap enough to keep the
// fuzzer fast: prefill 5, decode 3, score 8.
static void exercise(const LmOps* ops, uint64_t weights) {
    if (weights > 2000000 || ops->info.vocab > 4096) return;
    const int n = 8;
    int toks[n];
    for (int i = 0; i < n; i++) toks[i] = (i * 37) % 256 % ops->info.vocab;  // a BPE model may have V < 256
    float* logits = (float*)malloc(sizeof(float) * (size_t)ops->info.vocab);
    double lp[n];
    char err[256];
    void* st = ops->state_new(ops->model);
    if (st && logits) {
        int ctx = ops->info.context;
        int np = ctx < 5 ? ctx : 5;
        if (ops->prefill(ops->model, st, toks, np, logits, err, sizeof err) != 0) abort();  // within the context
        for (int i = 0; i < 3 && np + i < ctx; i++)
            if (ops->decode(ops->model, st, toks[np + i], logits, err, sizeof err) != 0) abort();
        if (ctx >= n && ops->score(ops->model, st, toks, n, lp, err, sizeof err) != 0) abort();
        // past the context the transformer must refuse, with a message
        if (ops->prefill(ops->model, st, toks, n, logits, err, sizeof err) != 0 && err[0] == 0) abort();
    }
    if (st) ops->state_free(st);
    free(logits);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    uint64_t* buf = (uint64_t*)malloc(size / 8 * 8 + 8);  // loaders want 8-byte alignment
    if (!buf) return 0;
    memcpy(buf, data, size);
    uint8_t* bytes = (uint8_t*)buf;
    if (size >= sizeof(MmiaHeader)) {
        MmiaHeader* h = (MmiaHeader*)bytes;
        if (h->reserved0 & 1u) {
            h->file_bytes = size;
            h->checksum = mmia_checksum(bytes + MMIA_HEADER_BYTES, size - MMIA_HEADER_BYTES);
        }
    }
    char err[512] = "";
    MambaLm m;
    if (mamba_lm_open_memory(&m, bytes, size, err, sizeof err) == 0) {
        LmOps ops = mamba_lm_ops(&m);
        exercise(&ops, size / 4);
        mamba_lm_close(&m);
    } else if (err[0] == 0) {
        abort();  // every refusal must say why
    }
    err[0] = 0;
    Transformer t;
    if (transformer_open_memory(&t, bytes, size, err, sizeof err) == 0) {
        LmOps ops = transformer_ops(&t);
        exercise(&ops, size / 4);
        transformer_close(&t);
    } else if (err[0] == 0) {
        abort();
    }
    free(buf);
    return 0;
}
