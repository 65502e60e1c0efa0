// bench_lm_torch.cpp: the LM engines against LibTorch on the same trained
// checkpoint (issue 10's speed ratios), measured in one run, same threads.
//
//   make bin/bench_lm_torch
//   bin/bench_lm_torch CHECKPOINT.pt [--threads 1] [--text 256] [--prompt 64] [--new 64] [--reps 5]
//
// For the checkpoint's model (mamba-lm or transformer-lm), exported to a
// temporary packed file:
//   - teacher-forced scoring of a --text-token text: LibTorch's forward (no
//     grad, eval) vs the engine's *_forward; tokens/s
//   - greedy generation of --new tokens after a --prompt-token prompt:
//     LibTorch re-runs its forward over the whole sequence for each token (the
//     module has no incremental state) vs the engine's prefill + decode;
//     tokens/s of the generated tokens, prefill included
// Medians of --reps runs; the logits of the two sides are also compared.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/lm.h"
#include "engine/mamba_lm.h"
#include "engine/transformer.h"
#include "export/model_export.h"
#include "train/lm_trainer.h"

using namespace mmia;

static double now() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s CHECKPOINT.pt [--threads N] [--text N] [--prompt N] [--new N] [--reps N]\n", argv[0]);
        return 2;
    }
    std::string ckpt = argv[1];
    int threads = 1, n_text = 256, n_prompt = 64, n_new = 64, reps = 5;
    for (int i = 2; i + 1 < argc; i += 2) {
        std::string f = argv[i];
        int v = std::atoi(argv[i + 1]);
        if (f == "--threads") threads = v;
        else if (f == "--text") n_text = v;
        else if (f == "--prompt") n_prompt = v;
        else if (f == "--new") n_new = v;
        else if (f == "--reps") reps = v;
        else {
            std::fprintf(stderr, "error: unknown flag %s\n", f.c_str());
            return 2;
        }
    }
    try {
        torch::set_num_threads(threads);
        json meta;
        LanguageModel m = load_lm_checkpoint(ckpt, &meta);
        m.module().eval();
        const std::string bin = "/tmp/bench_lm_torch_" + std::to_string(getpid()) + ".bin";
        export_checkpoint(ckpt, bin);
        const bool mb = m.kind == "mamba-lm";
        MambaLm em;
        Transformer et;
        std::memset(&em, 0, sizeof em);
        std::memset(&et, 0, sizeof et);
        char err[512] = "";
        if ((mb ? mamba_lm_open(&em, bin.c_str(), err, sizeof err) : transformer_open(&et, bin.c_str(), err, sizeof err)) != 0)
            throw std::runtime_error(err);
        LmOps ops = mb ? mamba_lm_ops(&em) : transformer_ops(&et);
        const int V = ops.info.vocab;
        if (!mb) n_text = std::min(n_text, m.context());
        if (!mb && n_prompt + n_new > m.context()) n_new = m.context() - n_prompt;

        const char* sample = "Permission is hereby granted, free of charge, to any person obtaining a copy of this "
                             "software and associated documentation files (the \"Software\"), to deal in the Software "
                             "without restriction, including without limitation the rights to use, copy, modify, merge, "
                             "publish, distribute, sublicense, and/or sell copies of the Software. ";
        std::vector<int> text;
        while (int(text.size()) < n_text) text.push_back((unsigned char)sample[text.size() % std::strlen(sample)]);
        std::vector<int64_t> text64(text.begin(), text.end());

        // Scoring.
        std::vector<double> t_torch, t_engine;
        std::vector<float> all(size_t(n_text) * size_t(V));
        torch::Tensor ref;
        for (int r = 0; r < reps; r++) {
            torch::NoGradGuard ng;
            double t0 = now();
            ref = m.forward(torch::tensor(text64).view({1, n_text}));
            t_torch.push_back(now() - t0);
            void* st = ops.state_new(ops.model);
            t0 = now();
            int rc = mb ? mamba_lm_forward(&em, (MambaLmState*)st, text.data(), n_text, all.data(), nullptr, err, sizeof err)
                        : transformer_forward(&et, (TransformerState*)st, text.data(), n_text, all.data(), nullptr, err, sizeof err);
            t_engine.push_back(now() - t0);
            ops.state_free(st);
            if (rc != 0) throw std::runtime_error(err);
        }
        auto refc = ref.contiguous();
        double diff = 0;
        for (size_t i = 0; i < all.size(); i++) diff = std::max(diff, double(std::fabs(refc.data_ptr<float>()[i] - all[i])));

        // Greedy generation.
        std::vector<double> g_torch, g_engine;
        int agree = 0;
        for (int r = 0; r < reps; r++) {
            std::vector<int64_t> seq(text64.begin(), text64.begin() + n_prompt);
            std::vector<int> out_t, out_e;
            double t0 = now();
            {
                torch::NoGradGuard ng;
                for (int i = 0; i < n_new; i++) {
                    auto l = m.forward(torch::tensor(seq).view({1, int64_t(seq.size())}));
                    int tok = int(l[0][int64_t(seq.size()) - 1].argmax().item<int64_t>());
                    out_t.push_back(tok);
                    seq.push_back(tok);
                }
            }
            g_torch.push_back(now() - t0);
            std::vector<float> logits(static_cast<size_t>(V));
            void* st = ops.state_new(ops.model);
            t0 = now();
            if (ops.prefill(ops.model, st, text.data(), n_prompt, logits.data(), err, sizeof err) != 0) throw std::runtime_error(err);
            for (int i = 0; i < n_new; i++) {
                int tok = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
                out_e.push_back(tok);
                if (i + 1 < n_new && ops.decode(ops.model, st, tok, logits.data(), err, sizeof err) != 0)
                    throw std::runtime_error(err);
            }
            g_engine.push_back(now() - t0);
            ops.state_free(st);
            agree = out_t == out_e;
        }
        const double st = n_text / median(t_torch), se = n_text / median(t_engine);
        const double gt = n_new / median(g_torch), ge = n_new / median(g_engine);
        std::printf("%s (preset %s), %d thread(s), median of %d\n", m.kind.c_str(), meta.value("preset", "?").c_str(),
                    threads, reps);
        std::printf("  scoring %d tokens: LibTorch %.0f tok/s, engine %.0f tok/s, ratio %.2fx; max |logit diff| %.2g\n",
                    n_text, st, se, se / st, diff);
        std::printf("  greedy %d tokens after %d: LibTorch %.1f tok/s (full forward per token), engine %.1f tok/s "
                    "(prefill + decode), ratio %.1fx; tokens identical: %s\n",
                    n_new, n_prompt, gt, ge, ge / gt, agree ? "yes" : "no");
        if (mb) mamba_lm_close(&em);
        else transformer_close(&et);
        std::remove(bin.c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
