// bench_lm.cpp: milliseconds per generated token against context length,
// for both language-model engines (Mamba: flat, the recurrent step;
// transformer: growing, attention over the K/V cache), plus prefill
// tokens/s. Random weights (speed does not depend on them), packed in
// memory with the format's writer, at a width typical of the presets.
//
//   bin/bench_lm [--threads N] [--d-model D] [--max-context C] [--svg FILE]
//
// For each context length P in 64, 128, ..., C: prefill P tokens (timed,
// once), then decode 32 tokens one at a time (timed, median per token over
// 3 repetitions of the whole prefill + decode). --svg FILE also draws ms per
// token against context (log2 axis), both engines, as an SVG plot.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <random>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "common/svg_lines.h"
#include "engine/lm.h"
#include "engine/mamba_lm.h"
#include "engine/transformer.h"
#include "export/packed_writer.h"

static std::vector<float> rnd(std::mt19937& g, size_t n, float a) {
    std::uniform_real_distribution<float> d(-a, a);
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
}

static std::vector<uint64_t> aligned(const std::vector<uint8_t>& b) {
    std::vector<uint64_t> a((b.size() + 7) / 8);
    memcpy(a.data(), b.data(), b.size());
    return a;
}

// Mamba LM: n_layers = 2 * tf_layers at the same width (the presets' pairing).
static std::vector<uint8_t> mamba_bytes(int D, int layers, int ctx) {
    std::mt19937 g(1);
    const uint32_t V = 256, E = 2 * D, N = 16, K = 4, R = (D + 15) / 16;
    MmiaHeader h;
    memset(&h, 0, sizeof h);
    h.kind = MMIA_KIND_MAMBA_LM;
    h.n_classes = V;
    int32_t hp[6] = {D, layers, (int)N, (int)K, (int)E, (int)R};
    memcpy(h.hp, hp, sizeof hp);
    h.hp[MMIA_LM_HP_CONTEXT] = ctx;
    h.hp[MMIA_LM_HP_TIED] = 1;
    h.hp[MMIA_LM_HP_EOS] = -1;
    h.fp[0] = 1e-5f;
    std::vector<PackedTensor> t;
    t.push_back({"embedding.weight", {V, (uint32_t)D}, rnd(g, V * D, 0.1f)});
    for (int l = 0; l < layers; l++) {
        std::string p = "layers." + std::to_string(l) + ".";
        t.push_back({p + "norm.weight", {(uint32_t)D}, std::vector<float>(D, 1.0f)});
        t.push_back({p + "in_proj.weight", {2 * E, (uint32_t)D}, rnd(g, 2 * E * D, 0.05f)});
        t.push_back({p + "conv1d.weight", {E, K}, rnd(g, E * K, 0.3f)});
        t.push_back({p + "conv1d.bias", {E}, rnd(g, E, 0.1f)});
        t.push_back({p + "x_proj.weight", {R + 2 * N, E}, rnd(g, (R + 2 * N) * E, 0.05f)});
        t.push_back({p + "dt_proj.weight", {E, R}, rnd(g, E * R, 0.3f)});
        t.push_back({p + "dt_proj.bias", {E}, std::vector<float>(E, -3.0f)});
        std::vector<float> A(E * N);
        for (uint32_t i = 0; i < E * N; i++) A[i] = -(float)(i % N + 1);
        t.push_back({p + "A", {E, N}, A});
        t.push_back({p + "D", {E}, std::vector<float>(E, 1.0f)});
        t.push_back({p + "out_proj.weight", {(uint32_t)D, E}, rnd(g, D * E, 0.05f)});
    }
    t.push_back({"norm_f.weight", {(uint32_t)D}, std::vector<float>(D, 1.0f)});
    return pack_model_bytes(h, t);
}

static std::vector<uint8_t> tf_bytes(int D, int layers, int ctx) {
    std::mt19937 g(2);
    const uint32_t V = 256, F = 4 * D, H = D / 64 > 0 ? D / 64 : 1;
    MmiaHeader h;
    memset(&h, 0, sizeof h);
    h.kind = MMIA_KIND_TRANSFORMER_LM;
    h.n_classes = V;
    int32_t hp[6] = {D, layers, (int)H, (int)F, (int)(D / H / 4), 1};
    memcpy(h.hp, hp, sizeof hp);
    h.hp[MMIA_LM_HP_CONTEXT] = ctx;
    h.hp[MMIA_LM_HP_TIED] = 0;
    h.hp[MMIA_LM_HP_EOS] = -1;
    h.fp[0] = 1e-5f;
    h.fp[1] = 10000.0f;
    const uint32_t d = D;
    std::vector<PackedTensor> t;
    t.push_back({"embed_in.weight", {V, d}, rnd(g, V * d, 0.1f)});
    for (int l = 0; l < layers; l++) {
        std::string p = "layers." + std::to_string(l) + ".";
        for (const char* ln : {"input_layernorm", "post_attention_layernorm"}) {
            t.push_back({p + ln + ".weight", {d}, std::vector<float>(d, 1.0f)});
            t.push_back({p + ln + ".bias", {d}, std::vector<float>(d, 0.0f)});
        }
        t.push_back({p + "attention.query_key_value.weight", {3 * d, d}, rnd(g, 3 * d * d, 0.05f)});
        t.push_back({p + "attention.query_key_value.bias", {3 * d}, rnd(g, 3 * d, 0.01f)});
        t.push_back({p + "attention.dense.weight", {d, d}, rnd(g, d * d, 0.05f)});
        t.push_back({p + "attention.dense.bias", {d}, rnd(g, d, 0.01f)});
        t.push_back({p + "mlp.dense_h_to_4h.weight", {F, d}, rnd(g, F * d, 0.05f)});
        t.push_back({p + "mlp.dense_h_to_4h.bias", {F}, rnd(g, F, 0.01f)});
        t.push_back({p + "mlp.dense_4h_to_h.weight", {d, F}, rnd(g, d * F, 0.05f)});
        t.push_back({p + "mlp.dense_4h_to_h.bias", {d}, rnd(g, d, 0.01f)});
    }
    t.push_back({"final_layer_norm.weight", {d}, std::vector<float>(d, 1.0f)});
    t.push_back({"final_layer_norm.bias", {d}, std::vector<float>(d, 0.0f)});
    t.push_back({"embed_out.weight", {V, d}, rnd(g, V * d, 0.05f)});
    return pack_model_bytes(h, t);
}

struct Row {
    double prefill_tok_s, decode_ms;
};

// prefill P tokens, then 32 decode steps; median of 3
static Row measure(const LmOps& ops, int P) {
    const int n_dec = 32;
    std::vector<int> toks(P + n_dec);
    for (size_t i = 0; i < toks.size(); i++) toks[i] = (int)((i * 131 + 7) % 251);
    std::vector<float> logits(ops.info.vocab);
    std::vector<double> pre, dec;
    char err[256];
    void* st = ops.state_new(ops.model);
    for (int rep = 0; rep < 3; rep++) {
        auto t0 = BenchClock::now();
        if (ops.prefill(ops.model, st, toks.data(), P, logits.data(), err, sizeof err)) {
            fprintf(stderr, "error: %s\n", err);
            exit(1);
        }
        pre.push_back(seconds_since(t0));
        t0 = BenchClock::now();
        for (int i = 0; i < n_dec; i++)
            if (ops.decode(ops.model, st, toks[P + i], logits.data(), err, sizeof err)) {
                fprintf(stderr, "error: %s\n", err);
                exit(1);
            }
        dec.push_back(seconds_since(t0) / n_dec);
    }
    ops.state_free(st);
    return {P / median(pre), 1000.0 * median(dec)};
}

static void usage(FILE* f) {
    fprintf(f,
            "usage: bin/bench_lm [--threads N] [--d-model D] [--max-context C] [--svg FILE]\n"
            "  ms per generated token and prefill tokens/s against context 64, 128, ..., C for both LM engines\n"
            "  (random weights: a Mamba LM of 8 layers and a 4-layer transformer of width D)\n"
            "  --threads N      OpenMP threads, 1..256 (default 1)\n"
            "  --d-model D      width, 16..1024, a multiple of 16 (default 256)\n"
            "  --max-context C  longest context, 64..16384 (default 4096)\n"
            "  --svg FILE       also draw ms per token against context as an SVG plot\n");
}

// "--flag VALUE" as an integer in [lo, hi] (engine/lm.h's lm_parse_int, as
// the engines' own flags); 0, or -1 after one error line.
static int int_flag(const char* flag, const char* v, long lo, long hi, int* out) {
    long long x = 0;
    if (lm_parse_int(v, lo, hi, &x) != 0) {
        fprintf(stderr, "error: %s: expected an integer in %ld..%ld, got '%s'\n", flag, lo, hi, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int main(int argc, char** argv) {
    int threads = 1, D = 256, max_ctx = 4096;
    const char* svg = NULL;
    for (int i = 1; i < argc; i++) {
        const char* f = argv[i];
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage(stdout);
            return 0;
        }
        const bool known = !strcmp(f, "--threads") || !strcmp(f, "--d-model") || !strcmp(f, "--max-context") ||
                           !strcmp(f, "--svg");
        if (!known) {
            fprintf(stderr, "error: unknown flag '%s' (see --help)\n", f);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "error: %s needs a value (see --help)\n", f);
            return 2;
        }
        const char* v = argv[++i];
        int rc = 0;
        if (!strcmp(f, "--threads")) rc = int_flag(f, v, 1, 256, &threads);
        else if (!strcmp(f, "--d-model")) rc = int_flag(f, v, 16, 1024, &D);
        else if (!strcmp(f, "--max-context")) rc = int_flag(f, v, 64, 16384, &max_ctx);
        else svg = v;
        if (rc) return 2;
        if (!strcmp(f, "--d-model") && D % 16) {
            fprintf(stderr, "error: --d-model: %d is not a multiple of 16\n", D);
            return 2;
        }
    }
    FILE* svg_file = svg ? fopen(svg, "wb") : NULL;  // opened now: a bad path fails before the minutes of timing
    if (svg && !svg_file) {
        fprintf(stderr, "error: --svg: cannot write %s: %s\n", svg, strerror(errno));
        return 1;
    }
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    const int tf_layers = 4;
    std::vector<uint8_t> mraw = mamba_bytes(D, 2 * tf_layers, max_ctx), traw = tf_bytes(D, tf_layers, max_ctx + 32);
    std::vector<uint64_t> mb = aligned(mraw), tb = aligned(traw);
    MambaLm mamba;
    Transformer tf;
    char err[512];
    if (mamba_lm_open_memory(&mamba, mb.data(), mraw.size(), err, sizeof err) ||
        transformer_open_memory(&tf, tb.data(), traw.size(), err, sizeof err)) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    LmOps mo = mamba_lm_ops(&mamba), to = transformer_ops(&tf);
    printf("byte-level LMs, random weights, d_model %d: Mamba %d layers (E %d, N 16), transformer %d layers "
           "(%d heads, F %d); %d thread%s\n",
           D, 2 * tf_layers, 2 * D, tf_layers, tf.n_heads, 4 * D, threads, threads == 1 ? "" : "s");
    printf("%8s | %14s %14s | %14s %14s\n", "context", "Mamba ms/token", "prefill tok/s", "tf ms/token",
           "prefill tok/s");
    mmia::LineSeries ms{"Mamba LM", {}, {}, false}, ts{"transformer LM", {}, {}, true};
    for (int P = 64; P <= max_ctx; P *= 2) {
        Row a = measure(mo, P), b = measure(to, P);
        printf("%8d | %14.3f %14.0f | %14.3f %14.0f\n", P, a.decode_ms, a.prefill_tok_s, b.decode_ms, b.prefill_tok_s);
        fflush(stdout);
        ms.x.push_back(P), ms.y.push_back(a.decode_ms);
        ts.x.push_back(P), ts.y.push_back(b.decode_ms);
    }
    if (svg) {
        char title[160];
        snprintf(title, sizeof title, "ms per generated token vs context (d_model %d, %d thread%s)", D, threads,
                 threads == 1 ? "" : "s");
        std::string doc = mmia::svg_lines({ms, ts}, title, "context tokens (log2 axis)", "ms per token", true);
        FILE* f = svg_file;
        if (fwrite(doc.data(), 1, doc.size(), f) != doc.size() || fclose(f)) {
            fprintf(stderr, "error: cannot write %s\n", svg);
            return 1;
        }
        printf("plot: %s\n", svg);
    }
    mamba_lm_close(&mamba);
    transformer_close(&tf);
    return 0;
}
