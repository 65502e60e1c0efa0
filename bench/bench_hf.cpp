// bench_hf.cpp: decode speed of an imported Hugging Face model (a packed
// LM file of either kind, BPE or bytes) through the engines' C API by token
// ids, as scripts/hf_bench.sh runs it at mamba-130m's and pythia-160m's
// true shapes. Peak RSS comes from /usr/bin/time -v around it.
//
//   bin/bench_hf model.bin [--tokens N] [--threads T]
//
// Prefills 16 ids, then decodes N (default 64) greedily; prints the decode
// tokens/s (wall time of the N steps) and the prefill time.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <vector>

#include "bench/bench_util.h"
#include "engine/lm.h"
#include "engine/mamba_lm.h"
#include "engine/packed.h"
#include "engine/transformer.h"

int main(int argc, char** argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bin/bench_hf model.bin [--tokens N] [--threads T]\n");
        return 2;
    }
    int n_tokens = 64;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--tokens")) n_tokens = atoi(argv[i + 1]);
#ifdef _OPENMP
        else if (!strcmp(argv[i], "--threads")) omp_set_num_threads(atoi(argv[i + 1]));
#endif
    }
    char err[512];
    PackedFile pf;
    if (packed_open(&pf, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    const uint32_t kind = pf.header->kind;
    packed_close(&pf);
    MambaLm mm;
    Transformer tf;
    LmOps ops;
    auto t_open = BenchClock::now();
    int rc = kind == MMIA_KIND_MAMBA_LM ? mamba_lm_open(&mm, argv[1], err, sizeof err)
                                        : transformer_open(&tf, argv[1], err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    const double open_s = seconds_since(t_open);
    ops = kind == MMIA_KIND_MAMBA_LM ? mamba_lm_ops(&mm) : transformer_ops(&tf);
    const int V = ops.info.vocab;
    void* st = ops.state_new(ops.model);
    std::vector<float> logits((size_t)V);
    std::vector<int> prompt(16);
    for (int i = 0; i < 16; i++) prompt[(size_t)i] = (i * 7919) % V;
    auto t0 = BenchClock::now();
    if (ops.prefill(ops.model, st, prompt.data(), 16, logits.data(), err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    const double prefill_s = seconds_since(t0);
    t0 = BenchClock::now();
    for (int i = 0; i < n_tokens; i++) {
        int best = 0;
        for (int v = 1; v < V; v++)
            if (logits[(size_t)v] > logits[(size_t)best]) best = v;
        if (ops.decode(ops.model, st, best, logits.data(), err, sizeof err) != 0) {
            fprintf(stderr, "error: %s\n", err);
            return 1;
        }
    }
    const double decode_s = seconds_since(t0);
    printf("%s: kind %u, V %d: open %.3f s, prefill 16 tokens %.3f s, decode %d tokens %.3f s = %.1f tokens/s\n",
           argv[1], kind, V, open_s, prefill_s, n_tokens, decode_s, n_tokens / decode_s);
    ops.state_free(st);
    if (kind == MMIA_KIND_MAMBA_LM) mamba_lm_close(&mm);
    else transformer_close(&tf);
    return 0;
}
