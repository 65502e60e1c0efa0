// test_lm_train.cpp: training and exporting the language models
// (train/lm_trainer.h, export/model_export.h), on byte streams written here.
//   - lm_stream_loss equals the mean of -log p(byte) computed position by
//     position from separate forwards of each window
//   - a few steps of training lower the held-out loss of both kinds
//   - a run interrupted (mid-epoch and at an epoch end) and resumed ends
//     bit for bit equal to an uninterrupted run: weights, losses, held-out bpb
//   - a checkpoint of another configuration is refused without force
//   - export: the packed file's header and table read back by hand hold every
//     parameter under the format's names, A = -exp(A_log) folded, conv1d
//     squeezed, a tied Mamba head (no lm_head) and an untied transformer head
//
// LibTorch before doctest: glog (pulled in by c10) defines CHECK too.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <doctest/doctest.h>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <thread>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "common/corpus.h"
#include "engine/format.h"
#include "export/model_export.h"
#include "tests/cli_check.h"
#include "tests/temp_dir.h"
#include "train/checkpoint.h"
#include "train/lm_trainer.h"

using namespace mmia;

namespace {

// Text with structure a tiny model learns in a few steps: a handful of
// sentences repeated in a seeded order, documents ended by byte 0.
std::vector<uint8_t> toy_stream(int n_docs, uint64_t seed) {
    const char* sentences[] = {"the cat sat on the mat. ", "a dog ran in the park. ",
                               "we like to read books. ", "the sun is hot today. "};
    std::vector<uint8_t> out;
    uint64_t s = seed;
    for (int d = 0; d < n_docs; d++) {
        for (int i = 0; i < 3; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            const char* t = sentences[(s >> 33) % 4];
            out.insert(out.end(), t, t + std::strlen(t));
        }
        out.push_back(uint8_t(kCorpusEos));
    }
    return out;
}

ModelSpec tiny_spec(const std::string& kind) {
    ModelSpec spec;
    spec.model = kind;
    spec.preset = "tiny-" + kind;
    if (kind == "mamba-lm") {
        MambaLmConfig& c = spec.mamba_lm;
        c.block.d_model = 16;
        c.block.n_layers = 2;
        c.block.d_state = 4;
        c.block.d_conv = 4;
        c.block.expand = 2;
        c.block.dt_rank = 1;
        c.context = 32;
    } else {
        TransformerLmConfig& c = spec.transformer_lm;
        c.d_model = 16;
        c.n_layers = 2;
        c.n_heads = 2;
        c.d_ff = 64;
        c.rotary_pct = 0.5;
        c.context = 32;
    }
    return spec;
}

TrainJob tiny_job(const std::string& kind, const std::string& checkpoint) {
    TrainJob job;
    job.spec = tiny_spec(kind);
    job.train.batch_size = 8;
    job.train.epochs = 2;
    job.train.learning_rate = 3e-3;
    job.train.seed = 5;
    job.dataset = "toy";
    job.dataset_sha256 = "00";
    job.checkpoint = checkpoint;
    job.verbose = false;
    job.threads = 1;
    return job;
}

std::map<std::string, torch::Tensor> state_of(LanguageModel& m) {
    std::map<std::string, torch::Tensor> s;
    for (auto& p : m.module().named_parameters()) s[p.key()] = p.value().detach().clone();
    return s;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// The packed file read back with format.h's structs only: name -> (shape, data).
struct PackedView {
    MmiaHeader h;
    std::map<std::string, std::pair<std::vector<uint32_t>, std::vector<float>>> t;
    std::vector<std::string> order;
};
PackedView read_packed(const std::vector<uint8_t>& bytes) {
    PackedView v;
    REQUIRE(bytes.size() >= MMIA_HEADER_BYTES);
    std::memcpy(&v.h, bytes.data(), sizeof v.h);
    REQUIRE(std::memcmp(v.h.magic, MMIA_MAGIC, 8) == 0);
    REQUIRE(v.h.file_bytes == bytes.size());
    CHECK(v.h.checksum == mmia_checksum(bytes.data() + MMIA_HEADER_BYTES, bytes.size() - MMIA_HEADER_BYTES));
    for (uint32_t i = 0; i < v.h.n_tensors; i++) {
        MmiaTensorEntry e;
        std::memcpy(&e, bytes.data() + MMIA_HEADER_BYTES + i * MMIA_TENSOR_ENTRY_BYTES, sizeof e);
        std::string name(e.name, strnlen(e.name, MMIA_NAME_BYTES));
        std::vector<uint32_t> shape(e.shape, e.shape + e.ndim);
        REQUIRE(e.offset % MMIA_ALIGN == 0);
        REQUIRE(e.offset + e.nbytes <= bytes.size());
        std::vector<float> data(e.nbytes / 4);
        std::memcpy(data.data(), bytes.data() + e.offset, e.nbytes);
        REQUIRE(!v.t.count(name));
        v.t[name] = {shape, data};
        v.order.push_back(name);
    }
    return v;
}

// Checks that packed tensor `name` holds exactly `expect` in `shape`.
void check_tensor(const PackedView& v, const std::string& name, const torch::Tensor& expect,
                  std::vector<uint32_t> shape) {
    CAPTURE(name);
    auto it = v.t.find(name);
    REQUIRE(it != v.t.end());
    CHECK(it->second.first == shape);
    auto e = expect.detach().contiguous().to(torch::kFloat32);
    REQUIRE(size_t(e.numel()) == it->second.second.size());
    CHECK(std::memcmp(e.data_ptr<float>(), it->second.second.data(), it->second.second.size() * 4) == 0);
}

}  // namespace

TEST_CASE("lm_stream_loss is the mean -log p of every byte after the first, window by window") {
    torch::manual_seed(4);
    LanguageModel m = LanguageModel::build(tiny_spec("transformer-lm"));
    auto stream = toy_stream(2, 3);  // 2 docs of ~70 bytes: windows of 8, the last one short
    if ((stream.size() - 1) % 8 == 0) stream.push_back('x');
    const int64_t L = 8, n = int64_t(stream.size());
    REQUIRE((n - 1) % L != 0);
    double sum = 0;
    torch::NoGradGuard no_grad;
    for (int64_t start = 0; start < n - 1; start += L) {
        const int64_t len = std::min(L, n - 1 - start);
        std::vector<int64_t> x(stream.begin() + start, stream.begin() + start + len);
        auto lp = torch::log_softmax(m.forward(torch::tensor(x).view({1, len})).to(torch::kFloat64), -1);
        for (int64_t t = 0; t < len; t++) sum -= lp[0][t][stream[size_t(start + t + 1)]].item<double>();
    }
    for (int64_t batch : {1, 3, 100}) {
        auto [loss, count] = lm_stream_loss(m, stream, L, batch);
        CHECK(count == n - 1);
        CHECK(loss == doctest::Approx(sum / double(n - 1)).epsilon(1e-6));
    }
    CHECK(std::isnan(lm_stream_loss(m, {65}, L, 4).first));
    CHECK(lm_window_count(n, L) == (n - 1) / L);
    CHECK(lm_window_count(1, L) == 0);
}

TEST_CASE("a few training steps lower the held-out loss of both kinds") {
    torch::set_num_threads(1);
    TempDir dir("mmia_lm_train");
    const auto train = toy_stream(60, 1), heldout = toy_stream(10, 2);
    for (std::string kind : {"mamba-lm", "transformer-lm"}) {
        CAPTURE(kind);
        TrainJob job = tiny_job(kind, dir.file(kind + ".pt"));
        job.train.learning_rate = 1e-2;
        job.train.epochs = 3;
        torch::manual_seed(job.train.seed);
        LanguageModel fresh = LanguageModel::build(job.spec);
        const double before = lm_stream_loss(fresh, heldout, 32, 8).first;
        json meta = train_lm(job, train, heldout);
        REQUIRE(meta.contains("final"));
        const double after = meta["final"]["heldout_loss"].get<double>();
        MESSAGE(kind << ": held-out loss " << before << " -> " << after << " nats/byte");
        CHECK(before > 5.0);             // ~ln 256 = 5.55 at initialisation
        CHECK(after < 0.7 * before);
        CHECK(meta["final"]["heldout_bpb"].get<double>() == doctest::Approx(after / std::log(2.0)));
        CHECK(meta["history"].size() == 3);
        CHECK(meta["corpus"]["name"] == "toy");
        CHECK(meta["threads"] == 1);
        // Everything else that decides the bits, in the checkpoint itself
        // (read back from the file, not the returned meta).
        const json stored = read_checkpoint_meta(job.checkpoint);
        REQUIRE(stored.contains("reproducibility"));
        CHECK(stored["reproducibility"]["threads"] == 1);
        CHECK(stored["reproducibility"]["seed"] == job.train.seed);
        CHECK(stored["reproducibility"]["preset"] == job.spec.preset);
        CHECK(stored["reproducibility"]["libtorch"] == TORCH_VERSION);
        CHECK(stored["reproducibility"]["compiler"] == std::string("g++ ") + __VERSION__);
        // The checkpoint's model gives the recorded held-out loss again.
        LanguageModel back = load_lm_checkpoint(job.checkpoint);
        CHECK(lm_stream_loss(back, heldout, 32, 8).first == doctest::Approx(after).epsilon(1e-9));
    }
}

TEST_CASE("an interrupted and resumed LM run equals an uninterrupted one bit for bit") {
    torch::set_num_threads(1);
    TempDir dir("mmia_lm_resume");
    const auto train = toy_stream(40, 7), heldout = toy_stream(6, 8);
    for (std::string kind : {"mamba-lm", "transformer-lm"}) {
        CAPTURE(kind);
        // ~ 2800 bytes / 32 = 87 windows = 11 steps per epoch, 2 epochs;
        // a checkpoint every 4 steps as well as at each epoch's end.
        TrainJob whole = tiny_job(kind, dir.file(std::string(kind) + "_whole.pt"));
        whole.train.checkpoint_every = 4;
        json a = train_lm(whole, train, heldout);
        // Stopped after step 6 (last save at 4: steps 5, 6 are lost as in a
        // kill), then after step 13 (epoch 1 ended at 11, save at 12), then to the end.
        TrainJob cut = whole;
        cut.checkpoint = dir.file(std::string(kind) + "_cut.pt");
        for (int64_t stop : {6, 13, 0}) {
            cut.stop_after_steps = stop;
            // The save frequency is not part of the identity: the last leg
            // saves at epoch ends only and still resumes.
            cut.train.checkpoint_every = stop == 0 ? 0 : 4;
            train_lm(cut, train, heldout);
        }
        json b = read_checkpoint_meta(cut.checkpoint);
        REQUIRE(b.contains("final"));
        REQUIRE(a["history"].size() == b["history"].size());
        for (size_t e = 0; e < a["history"].size(); e++) {
            CHECK(a["history"][e]["loss"].get<double>() == b["history"][e]["loss"].get<double>());
            CHECK(a["history"][e]["heldout_loss"].get<double>() == b["history"][e]["heldout_loss"].get<double>());
            CHECK(a["history"][e]["tokens"] == b["history"][e]["tokens"]);
        }
        CHECK(a["steps_done"] == b["steps_done"]);
        LanguageModel ma = load_lm_checkpoint(whole.checkpoint), mb = load_lm_checkpoint(cut.checkpoint);
        auto sa = state_of(ma), sb = state_of(mb);
        REQUIRE(sa.size() == sb.size());
        for (auto& [k, v] : sa) {
            CAPTURE(k);
            CHECK(torch::equal(v, sb[k]));
        }
        // Finished: a re-run does nothing and returns the same record.
        CHECK(train_lm(cut, train, heldout)["final"] == b["final"]);
    }
}

TEST_CASE("an LM checkpoint of another configuration is refused unless forced") {
    torch::set_num_threads(1);
    TempDir dir("mmia_lm_refuse");
    const auto train = toy_stream(10, 1), heldout = toy_stream(2, 2);
    TrainJob job = tiny_job("transformer-lm", dir.file("lm.pt"));
    job.train.epochs = 1;
    train_lm(job, train, heldout);
    TrainJob other = job;
    other.train.learning_rate = 1e-3;
    CHECK_THROWS_WITH_AS(train_lm(other, train, heldout), doctest::Contains("another configuration"),
                         std::runtime_error);
    other = job;
    other.dataset_sha256 = "11";  // another corpus
    CHECK_THROWS_WITH_AS(train_lm(other, train, heldout), doctest::Contains("another configuration"),
                         std::runtime_error);
    other.force = true;
    CHECK(train_lm(other, train, heldout).contains("final"));
    CHECK(read_checkpoint_meta(job.checkpoint)["corpus"]["sha256"] == "11");
    // A stream shorter than one window.
    CHECK_THROWS_WITH_AS(train_lm(tiny_job("mamba-lm", dir.file("short.pt")), std::vector<uint8_t>(32, 65), heldout),
                         doctest::Contains("fewer than one window"), std::runtime_error);
}

TEST_CASE("export of a Mamba LM checkpoint: every parameter under the format's names, A folded, head tied") {
    torch::set_num_threads(1);
    TempDir dir("mmia_lm_export");
    TrainJob job = tiny_job("mamba-lm", dir.file("m.pt"));
    job.train.epochs = 1;
    train_lm(job, toy_stream(10, 1), toy_stream(2, 2));
    export_checkpoint(job.checkpoint, dir.file("m.bin"));
    PackedView v = read_packed(read_bytes(dir.file("m.bin")));
    LanguageModel m = load_lm_checkpoint(job.checkpoint);
    const MambaConfig& c = job.spec.mamba_lm.block;
    const uint32_t D = 16, E = 32, N = 4, K = 4, R = 1, V = 256;
    CHECK(v.h.kind == MMIA_KIND_MAMBA_LM);
    CHECK(v.h.n_classes == V);
    CHECK(v.h.in_channels == 0);
    CHECK(v.h.hp[MMIA_HP_D_MODEL] == 16);
    CHECK(v.h.hp[MMIA_HP_N_LAYERS] == 2);
    CHECK(v.h.hp[MMIA_HP_D_STATE] == 4);
    CHECK(v.h.hp[MMIA_HP_D_CONV] == 4);
    CHECK(v.h.hp[MMIA_HP_D_INNER] == 32);
    CHECK(v.h.hp[MMIA_HP_DT_RANK] == 1);
    CHECK(v.h.hp[MMIA_LM_HP_TOKENIZER] == MMIA_TOKENIZER_BYTES);
    CHECK(v.h.hp[MMIA_LM_HP_CONTEXT] == 32);
    CHECK(v.h.hp[MMIA_LM_HP_TIED] == 1);
    CHECK(v.h.hp[MMIA_LM_HP_EOS] == 0);
    for (int i = 6; i < 24; i++) CHECK(v.h.hp[i] == 0);
    for (int i = 28; i < 32; i++) CHECK(v.h.hp[i] == 0);
    CHECK(v.h.fp[MMIA_FP_NORM_EPS] == float(c.norm_eps));
    auto P = state_of(m);
    CHECK(v.t.size() == 1 + 10 * 2 + 1);  // no lm_head: the head is the embedding
    CHECK(!v.t.count("lm_head.weight"));
    check_tensor(v, "embedding.weight", P["embedding.weight"], {V, D});
    for (int i = 0; i < 2; i++) {
        const std::string p = "layers." + std::to_string(i) + ".";
        check_tensor(v, p + "norm.weight", P[p + "norm.weight"], {D});
        check_tensor(v, p + "in_proj.weight", P[p + "in_proj.weight"], {2 * E, D});
        check_tensor(v, p + "conv1d.weight", P[p + "conv1d.weight"].view({E, K}), {E, K});
        check_tensor(v, p + "conv1d.bias", P[p + "conv1d.bias"], {E});
        check_tensor(v, p + "x_proj.weight", P[p + "x_proj.weight"], {R + 2 * N, E});
        check_tensor(v, p + "dt_proj.weight", P[p + "dt_proj.weight"], {E, R});
        check_tensor(v, p + "dt_proj.bias", P[p + "dt_proj.bias"], {E});
        check_tensor(v, p + "A", -torch::exp(P[p + "A_log"]), {E, N});
        check_tensor(v, p + "D", P[p + "D"], {E});
        check_tensor(v, p + "out_proj.weight", P[p + "out_proj.weight"], {D, E});
        // Folded, not copied: A is negative where A_log is its log.
        CHECK(v.t.at(p + "A").second[0] < 0);
    }
    check_tensor(v, "norm_f.weight", P["norm_f.weight"], {D});
}

TEST_CASE("export of a transformer LM checkpoint: every parameter, qkv rows as stored, head untied") {
    torch::set_num_threads(1);
    TempDir dir("mmia_lm_export");
    TrainJob job = tiny_job("transformer-lm", dir.file("t.pt"));
    job.train.epochs = 1;
    train_lm(job, toy_stream(10, 1), toy_stream(2, 2));
    export_checkpoint(job.checkpoint, dir.file("t.bin"));
    PackedView v = read_packed(read_bytes(dir.file("t.bin")));
    LanguageModel m = load_lm_checkpoint(job.checkpoint);
    const uint32_t D = 16, F = 64, V = 256;
    CHECK(v.h.kind == MMIA_KIND_TRANSFORMER_LM);
    CHECK(v.h.n_classes == V);
    CHECK(v.h.hp[MMIA_TF_HP_D_MODEL] == 16);
    CHECK(v.h.hp[MMIA_TF_HP_N_LAYERS] == 2);
    CHECK(v.h.hp[MMIA_TF_HP_N_HEADS] == 2);
    CHECK(v.h.hp[MMIA_TF_HP_D_FF] == 64);
    CHECK(v.h.hp[MMIA_TF_HP_ROTARY_NDIMS] == 4);  // int(8 * 0.5)
    CHECK(v.h.hp[MMIA_TF_HP_PARALLEL] == 1);
    CHECK(v.h.hp[MMIA_LM_HP_CONTEXT] == 32);
    CHECK(v.h.hp[MMIA_LM_HP_TIED] == 0);
    CHECK(v.h.hp[MMIA_LM_HP_EOS] == 0);
    for (int i = 6; i < 24; i++) CHECK(v.h.hp[i] == 0);
    CHECK(v.h.fp[MMIA_TF_FP_NORM_EPS] == 1e-5f);
    CHECK(v.h.fp[MMIA_TF_FP_ROTARY_BASE] == 10000.0f);
    auto P = state_of(m);
    CHECK(v.t.size() == P.size());  // every parameter, nothing else
    check_tensor(v, "embed_in.weight", P["embed_in.weight"], {V, D});
    check_tensor(v, "embed_out.weight", P["embed_out.weight"], {V, D});
    check_tensor(v, "final_layer_norm.weight", P["final_layer_norm.weight"], {D});
    check_tensor(v, "final_layer_norm.bias", P["final_layer_norm.bias"], {D});
    for (int i = 0; i < 2; i++) {
        const std::string p = "layers." + std::to_string(i) + ".";
        for (const char* ln : {"input_layernorm", "post_attention_layernorm"}) {
            check_tensor(v, p + ln + ".weight", P[p + ln + ".weight"], {D});
            check_tensor(v, p + ln + ".bias", P[p + ln + ".bias"], {D});
        }
        check_tensor(v, p + "attention.query_key_value.weight", P[p + "attention.query_key_value.weight"], {3 * D, D});
        check_tensor(v, p + "attention.query_key_value.bias", P[p + "attention.query_key_value.bias"], {3 * D});
        check_tensor(v, p + "attention.dense.weight", P[p + "attention.dense.weight"], {D, D});
        check_tensor(v, p + "attention.dense.bias", P[p + "attention.dense.bias"], {D});
        check_tensor(v, p + "mlp.dense_h_to_4h.weight", P[p + "mlp.dense_h_to_4h.weight"], {F, D});
        check_tensor(v, p + "mlp.dense_h_to_4h.bias", P[p + "mlp.dense_h_to_4h.bias"], {F});
        check_tensor(v, p + "mlp.dense_4h_to_h.weight", P[p + "mlp.dense_4h_to_h.weight"], {D, F});
        check_tensor(v, p + "mlp.dense_4h_to_h.bias", P[p + "mlp.dense_4h_to_h.bias"], {D});
    }
}

namespace {

std::string train_bin() { return cli_env_or("TRAIN_BIN", "bin/train"); }
std::string export_bin() { return cli_env_or("EXPORT_BIN", "bin/export"); }

// A corpus directory in the documented layout (common/corpus.h), built by the
// corpus code from toy documents: name "toy", 20% held out.
std::string write_fixture_corpus(const TempDir& dir, int n_docs) {
    std::vector<CorpusDocument> raw;
    const auto stream = toy_stream(n_docs, 17);
    std::string doc;
    for (uint8_t b : stream) {
        if (b == kCorpusEos) {
            CorpusDocument d;
            d.source = "test:toy";
            d.text = doc + std::to_string(raw.size());  // distinct documents
            raw.push_back(d);
            doc.clear();
        } else {
            doc += char(b);
        }
    }
    CorpusBuildOptions opt;
    opt.name = "toy";
    Corpus c = assemble_corpus(raw, opt);
    const std::string path = dir.file("corpus");
    write_corpus(c, path);
    return path;
}

// A config.json with tiny LM presets, so bin/train runs in about a second.
std::string write_tiny_config(const TempDir& dir) {
    json cfg = load_config_file("config.json");
    json m = cfg["presets"]["mamba-lm-s"];
    m["d_model"] = 16;
    m["n_layers"] = 2;
    m["context"] = 32;
    m["training"] = {{"batch_size", 8}, {"learning_rate", 0.003}, {"epochs", 2}};
    json t = cfg["presets"]["transformer-lm-s"];
    t["d_model"] = 16;
    t["n_heads"] = 2;
    t["d_ff"] = 64;
    t["context"] = 32;
    t["training"] = m["training"];
    cfg["presets"]["tiny-mamba-lm"] = m;
    cfg["presets"]["tiny-transformer-lm"] = t;
    const std::string path = dir.file("config.json");
    std::ofstream(path) << cfg.dump(2);
    return path;
}

}  // namespace

TEST_CASE("bin/train with a language model: bad flags and inputs get one error line") {
    TempDir dir("mmia_lm_cli");
    const std::string corpus = write_fixture_corpus(dir, 40);
    struct Case {
        std::string args;
        int code;
        std::string message;
    };
    const std::vector<Case> cases = {
        {"--model mamba-lm", 2, "error: --model mamba-lm needs --corpus DIR (see --help)"},
        {"--model mamba-lm --corpus " + corpus + " --dataset mnist", 2,
         "error: --dataset is for image models; a language model trains on --corpus (see --help)"},
        {"--model transformer-lm --corpus " + corpus + " --augment crop-flip", 2,
         "error: --augment is for image models; a language model trains on --corpus (see --help)"},
        {"--model transformer-lm --corpus " + corpus + " --limit-train 5", 2,
         "error: --limit-train is for image models; a language model trains on --corpus (see --help)"},
        {"--model mamba --corpus " + corpus, 2,
         "error: --corpus is for language models (--model mamba-lm | transformer-lm) (see --help)"},
        {"--model cnn --checkpoint-every 5", 2,
         "error: --checkpoint-every is for language models (--model mamba-lm | transformer-lm) (see --help)"},
        {"--model mamba-lm --corpus " + corpus + " --checkpoint-every -1", 2,
         "error: --checkpoint-every: '-1' is not an integer in [0, 1073741824] (see --help)"},
        {"--model gpt --corpus " + corpus, 2, "error: --model: gpt not in {mamba,cnn,mamba-lm,transformer-lm} (see --help)"},
        {"--model mamba-lm --corpus " + dir.file("nothing"), 1,
         "error: " + dir.file("nothing") + ": cannot open corpus directory (No such file or directory)"},
        {"--model mamba-lm --preset transformer-lm-s --corpus " + corpus, 1,
         "error: preset \"transformer-lm-s\" is a \"transformer-lm\" model, not \"mamba-lm\""},
    };
    for (const Case& c : cases) {
        CAPTURE(c.args);
        CliRun r = cli_run(train_bin(), c.args + " --output " + dir.file("x.pt"), dir.path.string());
        CHECK(r.code == c.code);
        CHECK(r.err == c.message + "\n");  // the whole line, docs/BAD_INPUT.md's row
        CHECK(!cli_file_exists(dir.file("x.pt")));
    }
}

TEST_CASE("bin/train on a corpus directory: killed with SIGKILL and resumed, it ends equal to an uninterrupted run") {
    torch::set_num_threads(1);
    TempDir dir("mmia_lm_cli");
    const std::string corpus = write_fixture_corpus(dir, 400);  // ~28 KB: ~80 steps per epoch
    const std::string config = write_tiny_config(dir);
    const Corpus c = load_corpus(corpus);
    for (std::string kind : {"mamba-lm", "transformer-lm"}) {
        CAPTURE(kind);
        auto args = [&](const std::string& out) {
            return std::vector<std::string>{train_bin(), "--config", config, "--model", kind, "--preset", "tiny-" + kind,
                                            "--corpus", corpus, "--threads", "1", "--checkpoint-every", "10",
                                            "--output", out};
        };
        const std::string whole = dir.file(kind + "_whole.pt"), cut = dir.file(kind + "_cut.pt");
        CliRun a = cli_run_argv(args(whole), dir.file("whole.log"));
        REQUIRE_MESSAGE(a.code == 0, a.err);
        CHECK(a.out.find("held-out loss") != std::string::npos);
        CHECK(a.out.find("bpb") != std::string::npos);
        CHECK(a.out.find("tok/s") != std::string::npos);
        // Kill right after the first checkpoints appear, twice, then finish.
        int kills = 0;
        for (int attempt = 0; attempt < 2; attempt++) {
            const int64_t before = std::filesystem::exists(cut) ? read_checkpoint_meta(cut)["steps_done"].get<int64_t>() : 0;
            pid_t pid = cli_spawn(args(cut), dir.file("cut.log"));
            int st = 0;
            const auto t0 = std::chrono::steady_clock::now();
            auto steps = [&]() -> int64_t {
                try {
                    return std::filesystem::exists(cut) ? read_checkpoint_meta(cut)["steps_done"].get<int64_t>() : 0;
                } catch (const std::exception&) {
                    return 0;
                }
            };
            while (waitpid(pid, &st, WNOHANG) == 0 && steps() <= before &&
                   std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60))
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
            kill(pid, SIGKILL);
            if (cli_wait(pid, 60) == -SIGKILL) kills++;
        }
        CHECK(kills == 2);
        const int64_t resumed_from = read_checkpoint_meta(cut)["steps_done"].get<int64_t>();
        CHECK(resumed_from > 0);
        CliRun b = cli_run_argv(args(cut), dir.file("cut.log"));
        REQUIRE_MESSAGE(b.code == 0, b.err);
        CHECK(b.out.find("resuming") != std::string::npos);
        json ma = read_checkpoint_meta(whole), mb = read_checkpoint_meta(cut);
        CHECK(ma["corpus"]["name"] == "toy");
        CHECK(ma["corpus"]["sha256"] == c.sha256);
        CHECK(ma["threads"] == 1);
        REQUIRE(ma["history"].size() == 2);
        REQUIRE(mb["history"].size() == 2);
        for (size_t e = 0; e < 2; e++) {
            CHECK(ma["history"][e]["loss"].get<double>() == mb["history"][e]["loss"].get<double>());
            CHECK(ma["history"][e]["heldout_bpb"].get<double>() == mb["history"][e]["heldout_bpb"].get<double>());
        }
        LanguageModel la = load_lm_checkpoint(whole), lb = load_lm_checkpoint(cut);
        auto sa = state_of(la), sb = state_of(lb);
        for (auto& [k, v] : sa) {
            CAPTURE(k);
            CHECK(torch::equal(v, sb[k]));
        }
        // The same command at another learning rate over the finished
        // checkpoint: refused, left as it was (docs/BAD_INPUT.md's row).
        {
            const std::string before = cli_read_text(whole);
            std::vector<std::string> other = args(whole);
            other.insert(other.end(), {"--lr", "0.0005"});
            CliRun o = cli_run_argv(other, dir.file("other.log"));
            CHECK(o.code == 1);
            CHECK(o.err == "error: " + whole +
                               ": exists and was trained with another configuration; pass --force to overwrite it or "
                               "choose another --output\n");
            CHECK(cli_read_text(whole) == before);
        }
        // And it exports.
        CliRun e = cli_run(export_bin(), "model --checkpoint " + whole + " --output " + dir.file(kind + ".bin"),
                           dir.path.string());
        CHECK_MESSAGE(e.code == 0, e.err);
        PackedView v = read_packed(read_bytes(dir.file(kind + ".bin")));
        CHECK(v.h.kind == (kind == "mamba-lm" ? MMIA_KIND_MAMBA_LM : MMIA_KIND_TRANSFORMER_LM));
    }
}

TEST_CASE("LM checkpoint meta: the lm config, steps_done and the weight count are checked before use") {
    json m = {{"checkpoint_version", kCheckpointVersion}, {"model", "mamba-lm"}, {"epochs_done", 0},
              {"steps_done", 3}, {"history", json::array()}, {"lm", to_json(tiny_spec("mamba-lm").mamba_lm)}};
    CHECK(parse_checkpoint_meta(m.dump(), "m.pt", 1 << 20)["model"] == "mamba-lm");  // no "input" needed
    struct Bad {
        std::string why;
        json meta;
    };
    std::vector<Bad> bad;
    json b = m;
    b.erase("lm");
    bad.push_back({"missing \"lm\"", b});
    b = m;
    b["lm"]["d_state"] = 0;
    bad.push_back({"\"d_state\" = 0 is outside", b});
    b = m;
    b["lm"]["n_heads"] = 2;  // a transformer field in a Mamba config
    bad.push_back({"unknown field \"n_heads\"", b});
    b = m;
    b["steps_done"] = -4;
    bad.push_back({"\"steps_done\" must be a non-negative integer", b});
    b = m;
    b["lm"]["d_model"] = 16384;  // 2 GB of weights claimed by a 1 MiB file
    bad.push_back({"more than the 1048576-byte file holds", b});
    b = m;
    b["model"] = "transformer-lm";  // its lm config is a Mamba one
    bad.push_back({"transformer-lm config: unknown field", b});
    for (const Bad& x : bad) {
        CAPTURE(x.why);
        CHECK_THROWS_WITH_AS(parse_checkpoint_meta(x.meta.dump(), "m.pt", 1 << 20),
                             doctest::Contains("m.pt: corrupt checkpoint meta: " ), std::runtime_error);
        CHECK_THROWS_WITH_AS(parse_checkpoint_meta(x.meta.dump(), "m.pt", 1 << 20), doctest::Contains(x.why.c_str()),
                             std::runtime_error);
    }
    // Through bin/export, whole lines (docs/BAD_INPUT.md's rows): a
    // checkpoint file holding only the meta record, read before any weight.
    TempDir dir("mmia_lm_meta");
    auto export_err = [&](const json& meta) {
        const std::string p = dir.file("m.pt"), out = dir.file("m.bin");
        torch::serialize::OutputArchive a;
        a.write("meta", c10::IValue(meta.dump()));
        a.save_to(p);
        CliRun r = cli_run_argv({export_bin(), "model", "--checkpoint", p, "--output", out}, dir.file("export.log"));
        CHECK(r.code == 1);
        CHECK_FALSE(cli_file_exists(out));
        return std::make_pair(p, r.err);
    };
    b = m;
    b["model"] = "transformer-lm";
    auto [p1, err1] = export_err(b);
    CHECK(err1 == "error: " + p1 + ": corrupt checkpoint meta: transformer-lm config: unknown field \"d_conv\"\n");
    b = m;
    b["lm"]["d_model"] = 16384;
    auto [p2, err2] = export_err(b);
    // the weight count is the reader's (a 16384-wide model: over 10^8)
    const std::string head = "error: " + p2 + ": corrupt checkpoint meta: the model it describes has ";
    const std::string tail = " weights, more than the " + std::to_string(std::filesystem::file_size(p2)) + "-byte file holds\n";
    INFO(err2);
    REQUIRE(err2.size() > head.size() + tail.size());
    CHECK(err2.substr(0, head.size()) == head);
    CHECK(err2.substr(err2.size() - tail.size()) == tail);
    const std::string count = err2.substr(head.size(), err2.size() - head.size() - tail.size());
    CHECK(count.find_first_not_of("0123456789") == std::string::npos);
    CHECK(std::stod(count) > 1e8);
}
