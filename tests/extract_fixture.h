// extract_fixture.h: the fixture corpus and tiny LM presets of bin/extract's
// tests (tests/test_extract.cpp, tests/test_extract_jobs.cpp).
#pragma once

#include <fstream>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "common/corpus.h"

namespace mmia {

// n random lowercase letters.
inline std::string random_text(std::mt19937_64& rng, size_t n) {
    std::string s;
    for (size_t i = 0; i < n; i++) s += char('a' + rng() % 26);
    return s;
}

// A fixture corpus: training documents of random words (some 4 copies) and
// four of one repeated letter, held-out documents of random letters
// (unpredictable), one canary.
inline std::string write_fixture_corpus(const std::string& dir) {
    std::mt19937_64 rng(3);
    Corpus c;
    c.name = "fixture";
    const char* words[] = {"the", "cat", "sat", "on", "mat", "a", "dog", "ran", "in", "park"};
    for (int i = 0; i < 24; i++) {
        CorpusDocument d;
        d.id = i;
        d.source = "test:" + std::to_string(i);
        d.train = i < 16;
        d.copies = d.train && i % 2 == 0 ? 4 : 1;
        if (d.train && i >= 12) {
            // a predictable document, 4 copies each: a tiny model learns it in
            // a few steps, so some greedy rows are verbatim continuations
            d.text = std::string(size_t(140 + i), 'x');
            d.copies = 4;
        } else if (d.train) {
            std::string t;
            while (t.size() < 140) t += std::string(words[rng() % 10]) + " ";
            d.text = t;
        } else {
            d.text = random_text(rng, 140);
        }
        c.docs.push_back(d);
    }
    Canary k;
    k.id = 0;
    k.secret = "1 2 3 4 5 6 7 8 9";
    k.text = std::string(kCanaryPrefix) + k.secret;
    k.insertions = 1;
    k.doc_ids = {1};
    k.offsets = {int64_t(c.docs[1].text.size())};
    c.docs[1].text += k.text;
    c.canaries.push_back(k);
    c.manifest = {{"name", "fixture"}, {"n_documents", c.docs.size()}, {"packages", nlohmann::json::array()}};
    write_corpus(c, dir);
    return dir;
}

// The tiny presets (context tokens each; bin/extract's untargeted samples
// are 256 tokens, so a run of the program needs context >= 256).
inline void write_tiny_config(const std::string& path, int context = 96) {
    nlohmann::json mamba = {{"model", "mamba-lm"}, {"d_model", 16}, {"n_layers", 1}, {"d_state", 4}, {"d_conv", 4},
                  {"expand", 2}, {"dt_rank", "auto"}, {"dt_min", 0.001}, {"dt_max", 0.1},
                  {"dt_init_floor", 0.0001}, {"norm_eps", 1e-5}, {"context", context}};
    nlohmann::json tf = {{"model", "transformer-lm"}, {"d_model", 16}, {"n_layers", 1}, {"n_heads", 2}, {"d_ff", 32},
               {"rotary_pct", 0.5}, {"rotary_base", 10000}, {"norm_eps", 1e-5}, {"parallel_residual", true},
               {"init_std", 0.02}, {"context", context}};
    nlohmann::json cfg = {{"training",
                 {{"batch_size", 8}, {"epochs", 1}, {"learning_rate", 0.01}, {"weight_decay", 0.0},
                  {"lr_schedule", "constant"}, {"save_dir", "checkpoints"}, {"seed", 1}}},
                {"default_preset", nlohmann::json::object()},
                {"presets",
                 {{"tiny-mamba", mamba}, {"tiny-transformer", tf}, {"mamba-lm-ref", mamba},
                  {"transformer-lm-ref", tf}}}};
    std::ofstream(path) << cfg.dump(2);
}

}  // namespace mmia
