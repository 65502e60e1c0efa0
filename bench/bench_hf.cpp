// bench_hf.cpp: decode speed of an imported Hugging Face model (a packed
// LM file of either kind, BPE or bytes) through the engines' C API by token
// ids, as scripts/hf_bench.sh runs it at mamba-130m's and pythia-160m's
// true shapes. Peak RSS comes from /usr/bin/time -v around it.
//
//   bin/bench_hf model.bin [--tokens N] [--threads T]
//
// Prefills 16 ids, then decodes N (default 64) greedily; prints the decode
// tokens/s (wall time of the N steps) and the prefill time. Then the
// 16-bit question (docs/HF.md): the bytes of weights one decode step
// streams (every tensor once, but only one row of an untied input
// embedding), the machine's read bandwidth on those same mapped bytes (a
// float sum over them with the same threads, best of 5 passes), and the
// decode rates that bandwidth allows with float32 and with 16-bit weights.
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
    // bytes streamed per decoded token, and the read bandwidth over them
    const PackedFile& f = kind == MMIA_KIND_MAMBA_LM ? mm.file : tf.file;
    const bool untied = !ops.info.tied;
    double per_token = 0;
    for (uint32_t i = 0; i < f.n_tensors; i++) {
        const MmiaTensorEntry* e = &f.table[i];
        const bool input_embedding = !strcmp(e->name, "embed_in.weight") || !strcmp(e->name, "embedding.weight");
        per_token += input_embedding && untied ? (double)e->nbytes / e->shape[0] : (double)e->nbytes;
    }
    double best_s = 1e30, sink = 0;
    for (int pass = 0; pass < 5; pass++) {
        auto tb = BenchClock::now();
        double total = 0;
        for (uint32_t i = 0; i < f.n_tensors; i++) {
            const float* w = (const float*)(f.bytes + f.table[i].offset);
            const int64_t n = (int64_t)(f.table[i].nbytes / 4);
            double s = 0;
#pragma omp parallel for simd reduction(+ : s) schedule(static)
            for (int64_t j = 0; j < n; j++) s += w[j];
            total += s;
        }
        const double t = seconds_since(tb);
        if (t < best_s) best_s = t;
        sink += total;
    }
    double file_tensor_bytes = 0;
    for (uint32_t i = 0; i < f.n_tensors; i++) file_tensor_bytes += (double)f.table[i].nbytes;
    const double bw = file_tensor_bytes / best_s;  // bytes/s
    printf("  streamed per token: %.1f MB float32 (16-bit: %.1f MB); read bandwidth %.2f GB/s (sum over the %.1f MB of "
           "mapped weights, best of 5; checksum %.3g)\n",
           per_token / 1e6, per_token / 2e6, bw / 1e9, file_tensor_bytes / 1e6, sink);
    printf("  bandwidth bound: %.1f tokens/s float32, %.1f tokens/s 16-bit; measured %.1f tokens/s = %.0f%% of the "
           "float32 bound\n",
           bw / per_token, 2 * bw / per_token, n_tokens / decode_s, 100.0 * (n_tokens / decode_s) / (bw / per_token));
    ops.state_free(st);
    if (kind == MMIA_KIND_MAMBA_LM) mamba_lm_close(&mm);
    else transformer_close(&tf);
    return 0;
}
