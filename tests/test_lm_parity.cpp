// test_lm_parity.cpp: the LM engines (mamba.cpp kind 3, transformer.cpp
// kind 4) against LibTorch on the same trained checkpoints, through the real
// path: train_lm -> checkpoint -> export_checkpoint -> packed file -> engine.
//   - logits at every position of a 512-token text agree within 1e-4
//   - greedy generation of 256 tokens is token-identical (the engine's
//     prefill + decode against LibTorch's argmax at every step, read off one
//     teacher-forced forward of the prompt and the engine's tokens), and
//     lm_generate's greedy output is the same up to its stop at end-of-text
//   - Mamba: prefill of the text in one pass and feeding it one token at a
//     time (prefill 1, decode the rest) give the same logits within 1e-4
//   - the preset sizes (mamba-lm-s, transformer-lm-s), briefly trained, agree
//     on a full-context text as well
//
// LibTorch before doctest: glog (pulled in by c10) defines CHECK too.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "common/corpus.h"
#include "engine/lm.h"
#include "engine/mamba_lm.h"
#include "engine/transformer.h"
#include "export/model_export.h"
#include "tests/temp_dir.h"
#include "train/lm_trainer.h"

using namespace mmia;

namespace {

// English-like training text: sentences in a seeded order, documents ended by byte 0.
std::vector<uint8_t> text_stream(int n_docs, uint64_t seed) {
    const char* sentences[] = {"The cat sat on the mat and looked at the door. ",
                               "A dog ran in the park while children played. ",
                               "We like to read old books by the window. ",
                               "The sun is hot today, so we stay inside. ",
                               "Rain fell on the roofs of the quiet town. "};
    std::vector<uint8_t> out;
    uint64_t s = seed;
    for (int d = 0; d < n_docs; d++) {
        for (int i = 0; i < 4; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            const char* t = sentences[(s >> 33) % 5];
            out.insert(out.end(), t, t + std::strlen(t));
        }
        out.push_back(uint8_t(kCorpusEos));
    }
    return out;
}

// The first n bytes of held-out-like text (another seed), as token ids.
std::vector<int> eval_tokens(int n) {
    auto s = text_stream(n / 100 + 2, 99);
    std::vector<int> t(s.begin(), s.begin() + n);
    return t;
}

// The engine side behind one face.
struct Engine {
    MambaLm mamba;
    Transformer tf;
    bool is_mamba = false;
    LmOps ops;
    Engine(const std::string& path, bool mamba_kind) : is_mamba(mamba_kind) {
        std::memset(&mamba, 0, sizeof mamba);
        std::memset(&tf, 0, sizeof tf);
        char err[512] = "";
        if (is_mamba) {
            REQUIRE_MESSAGE(mamba_lm_open(&mamba, path.c_str(), err, sizeof err) == 0, err);
            ops = mamba_lm_ops(&mamba);
        } else {
            REQUIRE_MESSAGE(transformer_open(&tf, path.c_str(), err, sizeof err) == 0, err);
            ops = transformer_ops(&tf);
        }
    }
    ~Engine() {
        if (is_mamba) mamba_lm_close(&mamba);
        else transformer_close(&tf);
    }
    // Logits [n][V] of every position, teacher-forced in one pass.
    std::vector<float> forward(const std::vector<int>& tokens) {
        const int V = ops.info.vocab, n = int(tokens.size());
        std::vector<float> all(size_t(n) * size_t(V));
        char err[512] = "";
        int rc;
        if (is_mamba) {
            MambaLmState* st = mamba_lm_state_new(&mamba);
            rc = mamba_lm_forward(&mamba, st, tokens.data(), n, all.data(), nullptr, err, sizeof err);
            mamba_lm_state_free(st);
        } else {
            TransformerState* st = transformer_state_new(&tf);
            rc = transformer_forward(&tf, st, tokens.data(), n, all.data(), nullptr, err, sizeof err);
            transformer_state_free(st);
        }
        REQUIRE_MESSAGE(rc == 0, err);
        return all;
    }
};

// LibTorch's logits (n, V) for tokens, eval mode, no grad.
torch::Tensor torch_logits(LanguageModel& m, const std::vector<int>& tokens) {
    torch::NoGradGuard no_grad;
    m.module().eval();
    std::vector<int64_t> t(tokens.begin(), tokens.end());
    return m.forward(torch::tensor(t).view({1, int64_t(t.size())}))[0].contiguous();
}

double max_diff(const torch::Tensor& a, const std::vector<float>& b) {
    REQUIRE(size_t(a.numel()) == b.size());
    auto x = a.to(torch::kFloat32).contiguous();
    double m = 0;
    for (size_t i = 0; i < b.size(); i++) m = std::max(m, double(std::fabs(x.data_ptr<float>()[i] - b[i])));
    return m;
}

int argmax(const float* v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

ModelSpec tiny_spec(const std::string& kind, int context) {
    ModelSpec spec;
    spec.model = kind;
    spec.preset = "tiny-" + kind;
    if (kind == "mamba-lm") {
        MambaLmConfig& c = spec.mamba_lm;
        c.block.d_model = 32;
        c.block.n_layers = 2;
        c.block.d_state = 8;
        c.block.d_conv = 4;
        c.block.expand = 2;
        c.block.dt_rank = 2;
        c.context = context;
    } else {
        TransformerLmConfig& c = spec.transformer_lm;
        c.d_model = 32;
        c.n_layers = 2;
        c.n_heads = 2;  // d_h 16, rotary 4 (0.25): partial rotary
        c.d_ff = 128;
        c.context = context;
    }
    return spec;
}

// Trains `spec` briefly on the text stream, exports it, and returns the
// LibTorch model read back from the checkpoint.
LanguageModel train_and_export(const ModelSpec& spec, const TempDir& dir, const std::string& bin, int steps,
                               int batch, double lr) {
    TrainJob job;
    job.spec = spec;
    job.train.batch_size = batch;
    job.train.epochs = 1;
    job.train.learning_rate = lr;
    job.train.lr_schedule = "constant";
    job.train.seed = 3;
    job.dataset = "parity-text";
    job.checkpoint = dir.file(spec.preset + ".pt");
    job.verbose = false;
    job.threads = torch::get_num_threads();
    job.stop_after_steps = steps;
    const int L = spec.model == "mamba-lm" ? spec.mamba_lm.context : spec.transformer_lm.context;
    // Enough windows for `steps` steps, with a final save at the stop.
    job.train.checkpoint_every = steps;
    const auto stream = text_stream(int64_t(steps + 1) * batch * (L + 1) / 190 + 2, 1);
    train_lm(job, stream, text_stream(4, 2));
    export_checkpoint(job.checkpoint, bin);
    return load_lm_checkpoint(job.checkpoint);
}

void check_parity(const std::string& kind, LanguageModel& m, const std::string& bin, int n_text, int n_prompt,
                  int n_gen) {
    Engine e(bin, kind == "mamba-lm");
    const int V = e.ops.info.vocab;
    REQUIRE(V == 256);

    // 1. Logits at every position of the text.
    const auto text = eval_tokens(n_text);
    auto ref = torch_logits(m, text);
    const auto eng = e.forward(text);
    const double d = max_diff(ref, eng);
    MESSAGE(kind << ": engine vs LibTorch, max |logit diff| over " << n_text << " positions x 256: " << d);
    CHECK(d < 1e-4);

    // 2. Greedy: the engine's prefill + decode vs LibTorch's argmax at each step.
    std::vector<int> prompt(text.begin(), text.begin() + n_prompt);
    std::vector<int> seq = prompt, engine_out, torch_out;
    {
        void* st = e.ops.state_new(e.ops.model);
        std::vector<float> logits(size_t(V), 0.0f);
        char err[512] = "";
        REQUIRE(e.ops.prefill(e.ops.model, st, prompt.data(), n_prompt, logits.data(), err, sizeof err) == 0);
        for (int i = 0; i < n_gen; i++) {
            const int tok = argmax(logits.data(), V);
            engine_out.push_back(tok);
            if (i + 1 < n_gen) REQUIRE_MESSAGE(e.ops.decode(e.ops.model, st, tok, logits.data(), err, sizeof err) == 0, err);
        }
        e.ops.state_free(st);
    }
    // LibTorch's greedy chain, in one teacher-forced forward of the prompt and
    // the engine's tokens: position n_prompt - 1 + i's argmax is LibTorch's
    // greedy token i whenever the engine's tokens before it are LibTorch's
    // (induction over i), so the first position where the two differ is the
    // first difference of the two greedy chains, and with none they are the
    // same chain. One forward instead of n_gen growing ones (O(n_gen^2)).
    seq.insert(seq.end(), engine_out.begin(), engine_out.end() - 1);
    {
        auto l = torch_logits(m, seq);
        for (int i = 0; i < n_gen; i++)
            torch_out.push_back(int(l[int64_t(n_prompt - 1 + i)].argmax().item<int64_t>()));
    }
    int first_diff = -1;
    for (int i = 0; i < n_gen && first_diff < 0; i++)
        if (engine_out[size_t(i)] != torch_out[size_t(i)]) first_diff = i;
    MESSAGE(kind << ": greedy " << n_gen << " tokens after a " << n_prompt << "-token prompt, first difference at "
                 << first_diff << " (-1 = none); text: "
                 << std::string(torch_out.begin(), torch_out.begin() + std::min(n_gen, 80)));
    // A trained model's greedy text is more than one repeated byte: the chain is worth comparing.
    CHECK(std::set<int>(torch_out.begin(), torch_out.end()).size() >= 4);
    CHECK(first_diff == -1);

    // lm_generate's greedy (temperature 0) is the same chain, up to its stop after end-of-text.
    LmSampler greedy{0.0f, 0, 1.0};
    std::vector<int> gen(static_cast<size_t>(n_gen));
    int n_out = 0;
    char err[512] = "";
    REQUIRE(lm_generate(&e.ops, prompt.data(), n_prompt, n_gen, &greedy, 1, gen.data(), &n_out, err, sizeof err) == 0);
    REQUIRE(n_out >= 1);
    for (int i = 0; i < n_out; i++) CHECK(gen[size_t(i)] == torch_out[size_t(i)]);
    if (n_out < n_gen) CHECK(gen[size_t(n_out - 1)] == e.ops.info.eos);

    // 3. Mamba: one token at a time = the one-pass logits.
    if (kind == "mamba-lm") {
        MambaLmState* st = mamba_lm_state_new(&e.mamba);
        std::vector<float> step(static_cast<size_t>(V));
        double worst = 0;
        REQUIRE(mamba_lm_prefill(&e.mamba, st, text.data(), 1, step.data(), err, sizeof err) == 0);
        for (int t = 0; t < n_text; t++) {
            if (t > 0) REQUIRE(mamba_lm_decode(&e.mamba, st, text[size_t(t)], step.data(), err, sizeof err) == 0);
            for (int v = 0; v < V; v++)
                worst = std::max(worst, double(std::fabs(step[size_t(v)] - eng[size_t(t) * size_t(V) + size_t(v)])));
        }
        // And a prefill of the whole text ends in the same state: its last logits, and the next decode.
        std::vector<float> last(static_cast<size_t>(V)), next_a(static_cast<size_t>(V)), next_b(static_cast<size_t>(V));
        REQUIRE(mamba_lm_decode(&e.mamba, st, 65, next_a.data(), err, sizeof err) == 0);
        MambaLmState* st2 = mamba_lm_state_new(&e.mamba);
        REQUIRE(mamba_lm_prefill(&e.mamba, st2, text.data(), n_text, last.data(), err, sizeof err) == 0);
        REQUIRE(mamba_lm_decode(&e.mamba, st2, 65, next_b.data(), err, sizeof err) == 0);
        for (int v = 0; v < V; v++) {
            worst = std::max(worst, double(std::fabs(last[size_t(v)] - eng[size_t(n_text - 1) * size_t(V) + size_t(v)])));
            worst = std::max(worst, double(std::fabs(next_a[size_t(v)] - next_b[size_t(v)])));
        }
        mamba_lm_state_free(st);
        mamba_lm_state_free(st2);
        MESSAGE("mamba-lm: prefill vs one token at a time, max |logit diff|: " << worst);
        CHECK(worst < 1e-4);
    }
}

}  // namespace

TEST_CASE("LM parity: tiny trained models, engine vs LibTorch on a 512-token text and 256 greedy tokens") {
    torch::set_num_threads(1);
    TempDir dir("mmia_lm_parity");
    for (std::string kind : {"mamba-lm", "transformer-lm"}) {
        CAPTURE(kind);
        // Context 512: the transformer runs the 512-token text, and a 256-token
        // prompt plus 255 decoded tokens (the 256th generated is not fed back), in its cache.
        ModelSpec spec = tiny_spec(kind, 512);
        const std::string bin = dir.file(kind + ".bin");
        const bool mb = kind == "mamba-lm";  // the transformer learns the text at a lower rate, in more steps
        LanguageModel m = train_and_export(spec, dir, bin, mb ? 40 : 150, 2, mb ? 1e-2 : 5e-3);
        check_parity(kind, m, bin, 512, 256, 256);
    }
}

TEST_CASE("LM parity: the smallest presets (mamba-lm-s, transformer-lm-s), briefly trained, on a full context") {
    torch::set_num_threads(1);
    TempDir dir("mmia_lm_parity");
    json cfg = load_config_file("config.json");
    for (std::string kind : {"mamba-lm", "transformer-lm"}) {
        CAPTURE(kind);
        ModelSpec spec = resolve_preset(cfg, kind, kind + "-s");
        const std::string bin = dir.file(kind + ".bin");
        const bool mb = kind == "mamba-lm";
        LanguageModel m = train_and_export(spec, dir, bin, mb ? 20 : 40, 4, mb ? 5e-3 : 2e-3);
        const int L = kind == "mamba-lm" ? spec.mamba_lm.context : spec.transformer_lm.context;
        check_parity(kind, m, bin, L, L / 2, L / 2);
    }
}
