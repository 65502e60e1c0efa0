// bench_lm_torch: the LM engines (mamba.cpp kind 3, transformer.cpp kind 4)
// against LibTorch on the same weights, same threads, same run
// (`make bench` calls it). For each preset a freshly initialised LibTorch
// model (torch::manual_seed(1); speed does not depend on the weights) is
// packed with export/model_export.h's pack_lm and opened by the engine from
// memory, so both sides hold the same parameters.
//
//   bin/bench_lm_torch [--threads 2] [--presets mamba-lm-s,transformer-lm-s,...]
//                      [--train-presets ...] [--reps 3] [--prompt 64] [--gen 64]
//                      [--texts 16]
//
// Rows (tokens/s; median of --reps after one warm-up):
//   decode   --gen tokens after a --prompt-token prompt. Engine: prefill the
//            prompt (untimed), then one decode step per token (the Mamba
//            recurrent step; the transformer's attention over its K/V cache).
//            LibTorch: the models have no recurrent step or K/V cache, so
//            its best decode is a full forward over the growing sequence
//            (prompt + i tokens) per new token, keeping the last logits.
//   prefill  one pass over a full-context prompt (context tokens, batch 1):
//            engine prefill vs LibTorch forward.
//   score    teacher-forced log-probabilities of --texts texts of context
//            tokens: engine lm_score_texts (OpenMP over texts) vs LibTorch
//            forward of the batch + log_softmax + gather.
// Kernel: the matmul both engines run for every projection (k_matmul_fm as
// compiled into them) on each preset's shapes at T = context, all of one
// layer's projections plus the head back to back: GFLOP/s (fastest of
// 3 x --reps timings of ~5 ms: a kernel's speed on a shared machine), as a
// fraction of this core's fp32 peak measured here (12 FMA chains, AVX-512;
// bench/bench_peak.h), and the largest error against a double-precision dot
// product (relative to sum |w x|; ~I 2^-24 at worst for a correct fp32 sum).
// Training: one AdamW step (forward, next-token cross-entropy, backward,
// step) on a batch of the preset's batch size x context tokens with the
// fused selective scan (the Mamba default), tokens/s = batch x context /
// median step time.
#include <CLI/CLI.hpp>
#include <torch/torch.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <stdexcept>

#include "bench/bench_peak.h"
#include "bench/bench_util.h"
#include "common/config.h"
#include "engine/lm.h"
#include "engine/mamba_lm.h"
#include "engine/transformer.h"
#include "export/model_export.h"
#include "train/lm_model.h"

using namespace mmia;

namespace {

// Deterministic byte tokens (no model depends on their meaning here).
std::vector<int> bench_tokens(int64_t n, int salt) {
    std::vector<int> t(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; i++) t[size_t(i)] = int((i * 131 + 7 + salt * 17) % 251);
    return t;
}

torch::Tensor as_tensor(const std::vector<int>& t, int64_t rows) {
    std::vector<int64_t> v(t.begin(), t.end());
    return torch::tensor(v).view({rows, int64_t(v.size()) / rows});
}

// The engine side of one preset, opened from the packed bytes in memory.
struct EngineModel {
    bool is_mamba = false;
    MambaLm mamba;
    Transformer tf;
    std::vector<uint64_t> storage;  // 8-byte aligned packed bytes
    LmOps ops;
    EngineModel(const std::string& kind, const std::vector<uint8_t>& bytes) : is_mamba(kind == "mamba-lm") {
        std::memset(&mamba, 0, sizeof mamba);
        std::memset(&tf, 0, sizeof tf);
        storage.resize((bytes.size() + 7) / 8);
        std::memcpy(storage.data(), bytes.data(), bytes.size());
        char err[512] = "";
        const int rc = is_mamba ? mamba_lm_open_memory(&mamba, storage.data(), bytes.size(), err, sizeof err)
                                : transformer_open_memory(&tf, storage.data(), bytes.size(), err, sizeof err);
        if (rc) throw std::runtime_error(std::string("engine: ") + err);
        ops = is_mamba ? mamba_lm_ops(&mamba) : transformer_ops(&tf);
    }
    ~EngineModel() {
        if (is_mamba) mamba_lm_close(&mamba);
        else transformer_close(&tf);
    }
};

// The LM preset `name`, whichever kind config.json says it is.
ModelSpec resolve_lm(const json& cfg, const std::string& name) {
    if (!cfg.contains("presets") || !cfg["presets"].contains(name) || !cfg["presets"][name].contains("model"))
        throw std::runtime_error("no preset \"" + name + "\" in config.json");
    const std::string kind = cfg["presets"][name]["model"].get<std::string>();
    if (!is_lm_model(kind)) throw std::runtime_error("preset \"" + name + "\" is not a language model");
    return resolve_preset(cfg, kind, name);
}

// The projections of one layer and the head, as (O, I) = (outputs, inputs).
std::vector<std::pair<int, int>> matmul_shapes(const EngineModel& e) {
    if (e.is_mamba) {
        const MambaBlockConfig& c = e.mamba.block;
        return {{c.d_inner, c.d_model},  {c.d_inner, c.d_model},  // in_proj: x and z halves
                {c.dt_rank + 2 * c.d_state, c.d_inner},            // x_proj
                {c.d_inner, c.dt_rank},                            // dt_proj
                {c.d_model, c.d_inner},                            // out_proj
                {e.mamba.info.vocab, c.d_model}};                  // head
    }
    const Transformer& t = e.tf;
    return {{3 * t.d_model, t.d_model}, {t.d_model, t.d_model}, {t.d_ff, t.d_model}, {t.d_model, t.d_ff},
            {t.info.vocab, t.d_model}};
}

// GFLOP/s of those matmuls over T tokens, back to back, and their largest
// error relative to sum |w x| (gemm_rel_error); above 4 I 2^-24 is refused.
std::pair<double, double> matmul_gflops(const EngineModel& e, int T, int reps) {
    std::mt19937 g(1);
    std::uniform_real_distribution<float> d(-1, 1);
    struct Mm {
        int O, I;
        std::vector<float> w, x, out;
    };
    std::vector<Mm> mm;
    double flops = 0;
    for (auto [O, I] : matmul_shapes(e)) {
        Mm m{O, I, std::vector<float>(size_t(O) * I), std::vector<float>(size_t(I) * T),
             std::vector<float>(size_t(O) * T)};
        for (auto& v : m.w) v = d(g);
        for (auto& v : m.x) v = d(g);
        mm.push_back(std::move(m));
        flops += 2.0 * O * I * T;
    }
    const int inner = std::max(1, int(0.005 * 100e9 / flops));
    const double t = min_seconds(3 * reps, [&] {
        for (int r = 0; r < inner; r++)
            for (auto& m : mm) transformer_matmul_fm(m.out.data(), m.w.data(), m.x.data(), nullptr, m.O, m.I, T);
    });
    double err = 0;
    for (auto& m : mm) {
        const double e_m = gemm_rel_error(m.out, m.w, m.x, m.O, m.I, T);
        if (!(e_m <= 4.0 * m.I * std::ldexp(1.0, -24)))
            throw std::runtime_error("matmul " + std::to_string(m.O) + " x " + std::to_string(m.I) + ": error " +
                                     std::to_string(e_m) + " x sum|wx|, above 4 I 2^-24");
        err = std::max(err, e_m);
    }
    return {flops * inner / t / 1e9, err};
}

void check(int rc, const char* what, const char* err) {
    if (rc) throw std::runtime_error(std::string(what) + ": " + err);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"LM engines vs LibTorch on the same weights: decode, prefill, scoring; training tokens/s."};
    int threads = 2, reps = 3, prompt = 64, gen = 64, texts = 16, train_steps = 2;
    std::vector<std::string> presets = {"mamba-lm-s", "transformer-lm-s", "mamba-lm-m", "transformer-lm-m"};
    std::vector<std::string> train_presets = {"mamba-lm-s", "transformer-lm-s", "mamba-lm-m",
                                              "transformer-lm-m", "mamba-lm-l", "transformer-lm-l"};
    app.add_option("--threads", threads, "threads for both sides")->check(CLI::Range(1, 256));
    app.add_option("--presets", presets, "config.json LM presets compared with LibTorch ('none': skip)")->delimiter(',');
    app.add_option("--train-presets", train_presets, "LM presets timed for training ('none': skip)")
        ->delimiter(',');
    app.add_option("--reps", reps, "timed repetitions (median)")->check(CLI::Range(1, 100));
    app.add_option("--train-steps", train_steps, "timed training steps (median)")->check(CLI::Range(1, 100));
    app.add_option("--prompt", prompt, "decode: prompt tokens")->check(CLI::Range(1, 4096));
    app.add_option("--gen", gen, "decode: generated tokens")->check(CLI::Range(1, 4096));
    app.add_option("--texts", texts, "score: texts of context tokens")->check(CLI::Range(1, 4096));
    CLI11_PARSE(app, argc, argv);

    try {
        torch::set_num_threads(threads);
#ifdef _OPENMP
        omp_set_num_threads(threads);
#endif
        json cfg = load_config_file("config.json");
        std::printf("engine vs LibTorch, same weights (fresh LibTorch init, seed 1, packed by pack_lm), %d thread%s; "
                    "median of %d\n",
                    threads, threads == 1 ? "" : "s", reps);
        std::printf("LibTorch decode = full forward over the growing sequence (the models have no recurrent "
                    "step / K/V cache in LibTorch)\n");
        const double peak = __builtin_cpu_supports("avx512f") ? best_of_bursts(peak_avx512_gflops) : 0.0;
        std::printf("measured fp32 peak, one core, 12 FMA chains: AVX-512 %.1f GFLOP/s\n", peak);
        std::printf("%-18s %-8s %7s %14s %14s %8s\n", "preset", "row", "tokens", "engine tok/s", "torch tok/s",
                    "ratio");
        for (const auto& name : presets) {
            if (name == "none") continue;
            const ModelSpec spec = resolve_lm(cfg, name);
            torch::manual_seed(1);
            LanguageModel model = LanguageModel::build(spec);
            model.module().eval();
            PackedModelData packed = pack_lm(model);
            EngineModel e(spec.model, pack_model_bytes(packed.header, packed.tensors));
            const int V = e.ops.info.vocab, L = model.context();
            torch::NoGradGuard no_grad;
            char err[512] = "";
            auto row = [&](const char* what, int64_t n_tok, double t_engine, double t_torch) {
                std::printf("%-18s %-8s %7lld %14.0f %14.0f %7.1fx\n", name.c_str(), what, (long long)n_tok,
                            n_tok / t_engine, n_tok / t_torch, t_torch / t_engine);
                std::fflush(stdout);
            };

            // the kernel behind prefill and scoring, on this preset's shapes
            {
                const auto [gf, rel] = matmul_gflops(e, L, reps);
                std::printf("%-18s %-8s %7d   %.1f GFLOP/s = %.0f%% of peak (max error %.1e x sum|wx|)\n",
                            name.c_str(), "matmul", L, gf, peak > 0 ? 100 * gf / peak : 0.0, rel);
            }
            // decode
            {
                const int P = std::min(prompt, L - 1), G = std::min(gen, L - P);
                const auto toks = bench_tokens(P + G, 0);
                std::vector<float> logits(size_t(V), 0.0f);
                void* st = e.ops.state_new(e.ops.model);
                if (!st) throw std::runtime_error("engine: out of memory");
                std::vector<double> te, tt;
                for (int r = 0; r <= reps; r++) {
                    check(e.ops.prefill(e.ops.model, st, toks.data(), P, logits.data(), err, sizeof err), "prefill",
                          err);
                    auto t0 = BenchClock::now();
                    for (int i = 0; i < G; i++)
                        check(e.ops.decode(e.ops.model, st, toks[size_t(P + i)], logits.data(), err, sizeof err),
                              "decode", err);
                    if (r) te.push_back(seconds_since(t0));
                }
                e.ops.state_free(st);
                const auto all = as_tensor(toks, 1);
                float sink = 0;
                for (int r = 0; r <= reps; r++) {
                    auto t0 = BenchClock::now();
                    for (int i = 0; i < G; i++) {
                        auto out = model.forward(all.narrow(1, 0, P + i + 1));
                        sink += out[0][P + i][0].item<float>();
                    }
                    if (r) tt.push_back(seconds_since(t0));
                }
                if (!std::isfinite(sink)) throw std::runtime_error("LibTorch decode: non-finite logits");
                row("decode", G, median(te), median(tt));
            }
            // prefill
            {
                const auto toks = bench_tokens(L, 1);
                std::vector<float> logits(size_t(V), 0.0f);
                void* st = e.ops.state_new(e.ops.model);
                if (!st) throw std::runtime_error("engine: out of memory");
                const double te = median_seconds(reps, [&] {
                    check(e.ops.prefill(e.ops.model, st, toks.data(), L, logits.data(), err, sizeof err), "prefill",
                          err);
                });
                e.ops.state_free(st);
                const auto in = as_tensor(toks, 1);
                const double tt = median_seconds(reps, [&] { (void)model.forward(in); });
                row("prefill", L, te, tt);
            }
            // teacher-forced scoring
            {
                const auto toks = bench_tokens(int64_t(texts) * L, 2);
                std::vector<int64_t> start(size_t(texts) + 1);
                for (int i = 0; i <= texts; i++) start[size_t(i)] = int64_t(i) * L;
                std::vector<double> lp(toks.size());
                const double te = median_seconds(reps, [&] {
                    check(lm_score_texts(&e.ops, toks.data(), start.data(), texts, lp.data(), err, sizeof err),
                          "score", err);
                });
                const auto in = as_tensor(toks, texts);
                torch::Tensor got;
                const double tt = median_seconds(reps, [&] {
                    auto logp = torch::log_softmax(model.forward(in.narrow(1, 0, L - 1)), -1);
                    got = logp.gather(-1, in.narrow(1, 1, L - 1).unsqueeze(-1)).squeeze(-1);
                });
                // the two sides score the same thing: compare the totals
                const double a = got.to(torch::kFloat64).sum().item<double>();
                double b = 0;
                for (int i = 0; i < texts; i++)
                    for (int j = 0; j < L - 1; j++) b += lp[size_t(start[size_t(i)] - i + j)];
                if (!(std::fabs(a - b) <= 1e-3 * std::fabs(a) + 1e-3))
                    throw std::runtime_error("score: engine total " + std::to_string(b) + " vs LibTorch " +
                                             std::to_string(a));
                row("score", int64_t(texts) * L, te, tt);
            }
        }

        if (!(train_presets.size() == 1 && train_presets[0] == "none")) {
            std::printf("\ntraining step (AdamW; forward, cross-entropy, backward, step), fused selective scan, "
                        "%d thread%s, median of %d\n",
                        threads, threads == 1 ? "" : "s", train_steps);
            std::printf("%-18s %6s %8s %12s %12s\n", "preset", "batch", "context", "ms/step", "tokens/s");
            for (const auto& name : train_presets) {
                const ModelSpec spec = resolve_lm(cfg, name);
                const TrainConfig tc = resolve_training(cfg, name);
                torch::manual_seed(1);
                LanguageModel model = LanguageModel::build(spec);
                model.module().train();
                torch::optim::AdamW opt(model.module().parameters(),
                                        torch::optim::AdamWOptions(tc.learning_rate).weight_decay(tc.weight_decay));
                const int64_t B = tc.batch_size, L = model.context();
                const auto toks = bench_tokens(B * (L + 1), 3);
                const auto all = as_tensor(toks, B);
                const auto x = all.narrow(1, 0, L), y = all.narrow(1, 1, L);
                const double t = median_seconds(train_steps, [&] {
                    opt.zero_grad();
                    auto logits = model.forward(x);
                    auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}),
                                                                     y.reshape({-1}));
                    loss.backward();
                    opt.step();
                });
                std::printf("%-18s %6lld %8lld %12.1f %12.0f\n", name.c_str(), (long long)B, (long long)L, 1000 * t,
                            double(B * L) / t);
                std::fflush(stdout);
            }
        }
    } catch (const std::exception& ex) {
        std::fprintf(stderr, "error: bench_lm_torch: %s\n", ex.what());
        return 1;
    }
    return 0;
}
