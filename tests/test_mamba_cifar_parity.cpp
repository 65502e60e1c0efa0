// test_mamba_cifar_parity.cpp: the image Mamba for CIFAR-10 (conv stem,
// LayerNorm, post-norm wiring) in the engine (mamba.cpp) against the trainer
// (LibTorch):
//   - the new ops one by one: stem conv + folded batch norm + GELU,
//     LayerNorm, GELU
//   - every parameter exported and used; logits within 1e-5 (relative to the largest logit) on real CIFAR-10
//     images for each new preset and norm variant
//   - each new preset trained briefly on real CIFAR-10, exported through
//     bin/export's path: logits within 1e-5 (relative to the largest logit) and the same accuracy on 500
//     test images; training with dropout deterministic and resumable
//   - bad files: every new header field refused with a clear error
// LibTorch before doctest: glog (pulled in by c10) defines CHECK too, and
// doctest's definitions must be the ones that win.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/data.h"
#include "engine/kernels.h"
#include "engine/mamba.h"
#include "export/model_export.h"
#include "tests/cli_check.h"
#include "tests/parity_helpers.h"
#include "tests/temp_dir.h"
#include "train/trainer.h"

using namespace mmia;

namespace {

// As bin/train does (trainer.h): this suite trains models for minutes.
const bool kKeepFreedMemory = [] {
    keep_freed_memory();
    return true;
}();

const Dataset& cifar() {
    static Dataset d = load_dataset("cifar10");  // throws (fails the test) if the data is missing
    return d;
}

// The first n images of a split, as the trainer takes them: pixels (n, C, H, W) in [0,1], labels (n).
struct Images {
    torch::Tensor x, y;
};
Images first_images(const ImageSet& set, int64_t n) {
    return {images_to_tensor(set).narrow(0, 0, n), labels_to_tensor(set).narrow(0, 0, n)};
}

InputSpec cifar_input() {
    const Dataset& d = cifar();
    return {d.train.channels, d.train.height, d.train.width, d.train.n_classes, d.mean, d.std};
}

MambaConfig preset_config(const std::string& preset) {
    return resolve_preset(load_config_file("config.json"), "mamba", preset).mamba;
}

MambaClassifier make_model(const MambaConfig& c) {
    InputSpec in = cifar_input();
    return MambaClassifier(c, in.channels, in.height, in.width, in.n_classes, in.mean, in.std);
}

// Moves every parameter and batch-norm statistic away from its initial value
// (running_var stays positive), so export and folding are tested on weights
// unlike a fresh model's.
void perturb(MambaClassifier& model, double scale) {
    torch::NoGradGuard g;
    for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * scale);
    for (auto& kv : model->named_buffers()) {
        if (kv.key().find("running_mean") != std::string::npos) kv.value().copy_(torch::randn_like(kv.value()) * 0.3);
        if (kv.key().find("running_var") != std::string::npos)
            kv.value().copy_(torch::rand_like(kv.value()) * 1.5 + 0.25);
    }
}

torch::Tensor torch_logits(MambaClassifier& model, const torch::Tensor& images) {
    return predict_logits(*model, [&](const torch::Tensor& x) { return model->forward(x); }, images);
}

// A small model with every new part (two-layer stem, LayerNorm, post-norm,
// dropout) for the tests that need many of them.
MambaConfig tiny_config() {
    MambaConfig c = preset_config("mamba-seed000");
    c.d_model = 16;
    c.n_layers = 2;
    c.d_state = 4;
    c.dt_rank = 2;
    c.stem = {4, 6};
    c.patch_h = c.patch_w = 8;
    return c;
}

// A training job on CIFAR-10 with `preset`'s training settings and model
// `model` (the preset's own unless given), quiet, writing `checkpoint`.
TrainJob cifar_job(const std::string& preset, const std::string& checkpoint, int epochs,
                   const MambaConfig* model = nullptr) {
    TrainJob job = quiet_train_job(preset, "cifar10", cifar_input(), checkpoint, epochs);
    if (model) job.spec.mamba = *model;
    return job;
}

// Feature-major [F][T] copy of a token-major (T, F) tensor, as the engine holds activations.
std::vector<float> to_feature_major(const torch::Tensor& x) {
    auto t = x.t().contiguous();
    return std::vector<float>(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
}

// Used, and used right: after changing any one of `tensors` (the model's
// parameters, buffers maybe), the engine's logits on `images` move, and
// still equal LibTorch's. (A tensor the engine ignored would leave its
// logits bit-identical; one it misused would break the parity.) Returns
// how many float tensors were checked.
int check_each_tensor_used(MambaClassifier& model, const std::vector<torch::Tensor>& tensors,
                           const torch::Tensor& images, const TempDir& tmp) {
    auto base = mamba_engine_logits(model, images, tmp.file("base.bin"));
    CHECK(parity_error(torch_logits(model, images), base) <= kParityTol);
    int checked = 0;
    for (size_t i = 0; i < tensors.size(); i++) {
        torch::Tensor t = tensors[i];
        if (t.dtype() != torch::kFloat32) continue;  // num_batches_tracked
        CAPTURE(i);
        torch::NoGradGuard g;
        auto saved = t.clone();
        // each entry scaled by its own factor in [0.5, 1.5): not a shift common
        // to all features (LayerNorm removes those), and signs kept (std, var > 0)
        t.mul_(torch::rand_like(t) + 0.5);
        auto moved = mamba_engine_logits(model, images, tmp.file("moved.bin"));
        auto moved_ref = torch_logits(model, images);
        t.copy_(saved);
        CHECK((moved - base).abs().max().item<double>() > 0);
        CHECK((moved - moved_ref).abs().max().item<double>() <= 1e-5);
        checked++;
    }
    return checked;
}

}  // namespace

// ===========================================================================
// The new ops, one at a time

TEST_CASE("GELU: the engine's exact erf form equals LibTorch's default gelu") {
    auto x = torch::linspace(-12, 12, 4801);
    auto ref = torch::gelu(x);
    std::vector<float> got(x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
    k_activate(got.data(), int64_t(got.size()), MMIA_ACT_GELU);
    double worst = 0;
    for (int64_t i = 0; i < x.numel(); i++) worst = std::max(worst, std::fabs(got[i] - ref[i].item<double>()));
    MESSAGE("GELU: max |engine - LibTorch| over [-12, 12]: " << worst);
    CHECK(worst <= 1e-6);
}

TEST_CASE("LayerNorm over features (feature-major) equals torch::layer_norm, offsets and one token included") {
    torch::manual_seed(5);
    for (int F : {7, 64}) {  // d_model-like widths (F = 2 is ill-conditioned in any float LayerNorm)
        for (int T : {1, 5, 256}) {
            for (double offset : {0.0, 100.0}) {
                CAPTURE(F);
                CAPTURE(T);
                CAPTURE(offset);
                auto x = torch::randn({T, F}) * 3 + offset;  // token-major, as LibTorch holds it
                auto w = torch::rand({F}) + 0.5, b = torch::randn({F});
                auto ref = torch::layer_norm(x, {F}, w, b, 1e-5);
                auto exact = torch::layer_norm(x.to(torch::kDouble), {F}, w.to(torch::kDouble), b.to(torch::kDouble), 1e-5);
                std::vector<float> xf = to_feature_major(x), out(xf.size()), scratch(2 * size_t(T));
                k_layernorm_fm(out.data(), xf.data(), w.data_ptr<float>(), b.data_ptr<float>(), F, T, 1e-5f,
                               scratch.data());
                auto got = torch::from_blob(out.data(), {F, T}).t();
                // Both float results stay close to the double one; with a
                // large offset the inputs themselves carry only ~7 digits
                // past it, and LibTorch's moments lose a few more.
                CHECK((got - exact).abs().max().item<double>() <= (offset ? 2e-5 : 2e-6));
                CHECK((got - ref).abs().max().item<double>() <= (offset ? 1e-4 : 4e-6));
                // in place, as the engine runs it
                k_layernorm_fm(xf.data(), xf.data(), w.data_ptr<float>(), b.data_ptr<float>(), F, T, 1e-5f,
                               scratch.data());
                CHECK(std::memcmp(xf.data(), out.data(), out.size() * 4) == 0);
            }
        }
    }
}

TEST_CASE("stem layer: conv + batch norm folded at export + GELU equals LibTorch's eval forward") {
    torch::manual_seed(6);
    for (int C : {1, 3}) {
        for (int O : {5, 32}) {
            CAPTURE(C);
            CAPTURE(O);
            const int H = 7, W = 9;  // odd and unequal: rows and columns cannot be swapped unnoticed
            StemLayer layer(C, O, MambaConfig{});  // stem_norm "batch", the default
            {
                torch::NoGradGuard g;
                layer->bn->weight.copy_(torch::rand({O}) + 0.5);
                layer->bn->bias.copy_(torch::randn({O}) * 0.3);
                layer->bn->running_mean.copy_(torch::randn({O}) * 0.3);
                layer->bn->running_var.copy_(torch::rand({O}) * 1.5 + 0.25);
            }
            layer->eval();
            auto x = torch::randn({1, C, H, W});
            auto ref = layer->forward(x).squeeze(0);  // (O, H, W)
            FoldedConv folded = fold_batch_norm(layer->conv->weight, {}, layer->bn);
            auto w = folded.weight.contiguous(), b = folded.bias.contiguous();
            std::vector<float> out(size_t(O) * H * W), col(size_t(k_im2col_packed_floats(int64_t(C) * 9, H * W)));
            k_conv2d(out.data(), x.contiguous().data_ptr<float>(), w.data_ptr<float>(), b.data_ptr<float>(), C, H, W,
                     O, 3, 1, MMIA_ACT_GELU, col.data());
            auto got = torch::from_blob(out.data(), {O, H, W});
            CHECK((got - ref).abs().max().item<double>() <= 1e-5);
        }
    }
}

TEST_CASE("stem layer with group norm: conv + group norm + GELU equals LibTorch's (train and eval: no running statistics)") {
    torch::manual_seed(7);
    for (int C : {1, 3}) {
        for (auto [O, G] : {std::pair{8, 2}, std::pair{32, 8}, std::pair{6, 1}, std::pair{5, 5}}) {
            for (double offset : {0.0, 50.0}) {
                CAPTURE(C);
                CAPTURE(O);
                CAPTURE(G);
                CAPTURE(offset);
                const int H = 7, W = 9;
                MambaConfig cfg;
                cfg.stem_norm = "group";
                cfg.stem_groups = G;
                StemLayer layer(C, O, cfg);
                REQUIRE(!layer->bn);
                {
                    torch::NoGradGuard g;
                    layer->gn->weight.copy_(torch::rand({O}) + 0.5);
                    layer->gn->bias.copy_(torch::randn({O}) * 0.3);
                }
                auto x = torch::randn({1, C, H, W}) + offset;
                auto ref = layer->forward(x).squeeze(0).detach();  // (O, H, W)
                layer->eval();
                CHECK(torch::equal(layer->forward(x).squeeze(0).detach(), ref));
                auto w = layer->conv->weight.detach().contiguous();
                std::vector<float> out(size_t(O) * H * W), zero(size_t(O), 0.0f),
                    col(size_t(k_im2col_packed_floats(int64_t(C) * 9, H * W)));
                k_conv2d(out.data(), x.contiguous().data_ptr<float>(), w.data_ptr<float>(), zero.data(), C, H, W, O, 3,
                         1, MMIA_ACT_NONE, col.data());
                k_group_norm(out.data(), layer->gn->weight.data_ptr<float>(), layer->gn->bias.data_ptr<float>(), O,
                             H * W, G, 1e-5f);
                k_activate(out.data(), int64_t(out.size()), MMIA_ACT_GELU);
                auto got = torch::from_blob(out.data(), {O, H, W});
                CHECK((got - ref).abs().max().item<double>() <= 2e-5);
            }
        }
    }
}

// ===========================================================================
// Whole models: export and parity on real images

TEST_CASE("every parameter the forward pass uses is exported, batch norms folded, and each one used") {
    torch::manual_seed(1);
    TempDir tmp("mmia_cifar_parity");
    for (std::string preset : {"mamba-cifar", "mamba-seed000"}) {
        CAPTURE(preset);
        MambaClassifier model = make_model(preset_config(preset));
        int64_t param_values = 0, bn_channels = 0;
        for (const auto& p : model->parameters()) param_values += p.numel();
        for (const auto& layer : *model->stem) bn_channels += layer->as<StemLayer>()->bn->weight.numel();
        CHECK(bn_channels > 0);
        PackedModelData packed = pack_mamba(model);
        int64_t exported = 0;
        for (const auto& t : packed.tensors) exported += int64_t(t.data.size());
        // a batch norm's gamma and beta (2 per channel) become its conv's bias (1 per channel)
        CHECK(exported == param_values - bn_channels);
    }
    // Used, and used right: every parameter tensor and batch-norm statistic
    // (check_each_tensor_used).
    MambaClassifier model = make_model(tiny_config());
    perturb(model, 0.05);
    auto images = images_to_tensor(cifar().test).narrow(0, 0, 4);
    std::vector<torch::Tensor> all = model->parameters();
    for (auto& b : model->buffers()) all.push_back(b);  // running stats, in_mean, in_std
    const int checked = check_each_tensor_used(model, all, images, tmp);
    // 2 stem layers x (conv weight, bn weight, bias, running mean, var), embed 2, 2 layers x 11,
    // norm_f 2, head 2, in_mean and in_std
    CHECK(checked == 2 * 5 + 2 + 2 * 11 + 2 + 2 + 2);
}

TEST_CASE("a group-norm stem: every parameter exported unfolded (the conv's bias 0) and each one used") {
    torch::manual_seed(11);
    TempDir tmp("mmia_cifar_parity");
    {
        MambaClassifier model = make_model(preset_config("mamba-cifar-gn"));
        int64_t param_values = 0;
        for (const auto& p : model->parameters()) param_values += p.numel();
        PackedModelData packed = pack_mamba(model);
        CHECK(packed.header.hp[MMIA_HP_STEM_NORM] == MMIA_STEM_GROUP_NORM);
        CHECK(packed.header.hp[MMIA_HP_STEM_GROUPS] == 8);
        int64_t exported = 0;
        for (const auto& t : packed.tensors) {
            exported += int64_t(t.data.size());
            if (t.name == "stem.0.bias")
                for (float v : t.data) CHECK(v == 0.0f);
        }
        CHECK(exported == param_values + 32);  // + the conv's zero bias
    }
    MambaConfig c = tiny_config();  // stem [4, 6], layernorm, post-norm
    c.stem_norm = "group";
    c.stem_groups = 2;
    MambaClassifier model = make_model(c);
    perturb(model, 0.05);
    model->eval();
    auto images = images_to_tensor(cifar().test).narrow(0, 0, 4);
    const int checked = check_each_tensor_used(model, model->parameters(), images, tmp);
    // 2 stem layers x (conv weight, gn weight, gn bias), embed 2, 2 layers x 11, norm_f 2, head 2
    CHECK(checked == 2 * 3 + 2 + 2 * 11 + 2 + 2);
}

TEST_CASE("engine logits match LibTorch within 1e-5 (relative to the largest logit) on real CIFAR-10 images: each new preset and norm variant") {
    torch::manual_seed(2);
    torch::set_num_threads(2);
    TempDir tmp("mmia_cifar_parity");
    auto images = images_to_tensor(cifar().test).narrow(0, 0, 32).contiguous();
    struct Variant {
        std::string preset, norm, placement, pool;
    };
    for (Variant v : {Variant{"mamba-seed000", "layernorm", "post", "mean"},
                      Variant{"mamba-seed000", "rmsnorm", "post", "last"},
                      Variant{"mamba-cifar", "rmsnorm", "pre", "mean"},
                      Variant{"mamba-cifar", "layernorm", "pre", "last"},
                      Variant{"mamba-cifar", "layernorm", "post", "mean"},
                      Variant{"mamba-cifar-gn", "rmsnorm", "pre", "mean"}}) {
        CAPTURE(v.preset);
        CAPTURE(v.norm);
        CAPTURE(v.placement);
        MambaConfig c = preset_config(v.preset);
        c.norm = v.norm;
        c.norm_placement = v.placement;
        c.pool = v.pool;
        MambaClassifier model = make_model(c);
        perturb(model, 0.02);
        auto ref = torch_logits(model, images);
        auto got = mamba_engine_logits(model, images, tmp.file("variant.bin"));
        double max_diff = (ref - got).abs().max().item<double>(), rel = parity_error(ref, got);
        MESSAGE(v.preset << " (" << v.norm << ", " << v.placement << ", " << v.pool
                         << " pool): max |engine - LibTorch| logit " << max_diff << " (relative " << rel << ")");
        CHECK(rel <= kParityTol);
    }
}

TEST_CASE("trained on real CIFAR-10: engine logits within 1e-5 (relative to the largest logit) and the same accuracy on 500 test images, each new preset") {
    torch::set_num_threads(2);
    TempDir tmp("mmia_cifar_parity");
    const Images test = first_images(cifar().test, 500);
    // One brisk epoch with each preset's own settings: a real, imperfect
    // classifier (batch norm statistics and all) in seconds.
    struct Run {
        std::string preset;
        int64_t n_train;
    };
    for (Run r : {Run{"mamba-cifar", 3000}, Run{"mamba-cifar-gn", 3000}, Run{"mamba-seed000", 1024}}) {
        CAPTURE(r.preset);
        TrainJob job = cifar_job(r.preset, tmp.file(r.preset + ".pt"), 1);
        const Images train = first_images(cifar().train, r.n_train);
        json meta = train_classifier(job, train.x, train.y, test.x, test.y);
        double trainer_acc = meta["final"]["test_acc"].get<double>();

        // export through the kind-detecting path bin/export uses
        const std::string bin = tmp.file(r.preset + ".bin");
        export_checkpoint(job.checkpoint, bin);
        auto got = mamba_file_logits(bin, test.x);
        MambaClassifier model = load_mamba_checkpoint(job.checkpoint);
        auto ref = torch_logits(model, test.x);
        double max_diff = (ref - got).abs().max().item<double>(), rel = parity_error(ref, got);
        MESSAGE(r.preset << ", one epoch on " << r.n_train << " CIFAR-10 images: trainer test accuracy "
                         << trainer_acc << ", engine " << accuracy(got, test.y)
                         << "; max |engine - LibTorch| logit over 500 images: " << max_diff << " (relative " << rel << ")");
        CHECK(trainer_acc > 0.15);
        CHECK(rel <= kParityTol);
        CHECK(accuracy(got, test.y) == trainer_acc);
    }
}

TEST_CASE("training with a stem, batch norm and dropout resumes exactly: a resumed run equals an uninterrupted one") {
    torch::set_num_threads(2);
    TempDir tmp("mmia_cifar_parity");
    const Images train = first_images(cifar().train, 256), test = first_images(cifar().test, 64);
    const MambaConfig tiny = tiny_config();
    TrainJob whole = cifar_job("mamba-seed000", tmp.file("whole.pt"), 2, &tiny);
    TrainJob resumed = cifar_job("mamba-seed000", tmp.file("resumed.pt"), 2, &tiny);
    train_classifier(whole, train.x, train.y, test.x, test.y);
    resumed.stop_after_epochs = 1;  // as a killed run leaves it, dropout masks drawn and all
    train_classifier(resumed, train.x, train.y, test.x, test.y);
    resumed.stop_after_epochs = 0;
    train_classifier(resumed, train.x, train.y, test.x, test.y);

    json meta;
    MambaClassifier a = load_mamba_checkpoint(whole.checkpoint, &meta), b = load_mamba_checkpoint(resumed.checkpoint);
    CHECK(meta["mamba"]["stem"] == json::array({4, 6}));
    CHECK(meta["mamba"]["dropout"] == 0.1);
    auto state_a = a->named_parameters(), state_b = b->named_parameters();
    for (const auto& kv : a->named_buffers()) state_a.insert(kv.key(), kv.value());  // batch-norm statistics
    for (const auto& kv : b->named_buffers()) state_b.insert(kv.key(), kv.value());
    REQUIRE(state_a.size() == state_b.size());
    for (const auto& kv : state_a) {
        CAPTURE(kv.key());
        CHECK(torch::equal(kv.value(), state_b[kv.key()]));
    }
}

// ===========================================================================
// Bad files: the new header fields

TEST_CASE("bad stem and norm header fields are refused with a clear error (library and CLI)") {
    torch::manual_seed(4);
    TempDir tmp("mmia_cifar_parity");
    MambaClassifier model = make_model(tiny_config());  // stem [4, 6], layernorm, post-norm
    PackedModelData packed = pack_mamba(model);
    const std::vector<uint8_t> good = pack_model_bytes(packed.header, packed.tensors);
    const std::string input = tmp.file("input.bin");
    {
        auto img = images_to_tensor(cifar().test).narrow(0, 0, 1).contiguous();
        std::ofstream(input, std::ios::binary).write((const char*)img.data_ptr<float>(), img.numel() * 4);
    }
    int n_file = 0;
    // library and ./mamba both refuse the bytes, naming `text`; exact: the
    // whole line is "error: PATH: text" (docs/BAD_INPUT.md's rows)
    auto check_refused = [&](const std::vector<uint8_t>& bytes, const std::string& text, bool exact) {
        const std::string path = tmp.file("bad_" + std::to_string(n_file++) + ".bin");
        std::ofstream(path, std::ios::binary).write((const char*)bytes.data(), std::streamsize(bytes.size()));
        MambaModel m;
        char err[512];
        INFO("text: " << text);
        REQUIRE(mamba_open(&m, path.c_str(), err, sizeof err) != 0);
        INFO("library error: " << err);
        CHECK(std::string(err).rfind(path + ": ", 0) == 0);
        CHECK(std::string(err).find(text) != std::string::npos);
        if (exact) CHECK(std::string(err) == path + ": " + text);
        const std::string bin = cli_env_or("MAMBA_BIN", "./mamba"), args = cli_quote(path) + " " + cli_quote(input);
        if (exact)
            cli_check_fails_exact(bin, args, "error: " + path + ": " + text, tmp.path.string());
        else
            cli_check_fails(bin, args, text, tmp.path.string());
    };
    auto refused = [&](const std::vector<uint8_t>& bytes, const std::string& needle) { check_refused(bytes, needle, false); };
    auto refused_exact = [&](const std::vector<uint8_t>& bytes, const std::string& why) { check_refused(bytes, why, true); };
    auto with_hp = [&](std::initializer_list<std::pair<int, int32_t>> slots) {
        std::vector<uint8_t> b = good;
        for (auto [slot, v] : slots) std::memcpy(b.data() + offsetof(MmiaHeader, hp) + 4 * slot, &v, 4);
        return b;  // the checksum covers the table and data, not the header
    };
    {  // the good file opens and runs
        MambaModel m;
        char err[512];
        const std::string path = tmp.file("good.bin");
        std::ofstream(path, std::ios::binary).write((const char*)good.data(), std::streamsize(good.size()));
        REQUIRE_MESSAGE(mamba_open(&m, path.c_str(), err, sizeof err) == 0, err);
        CHECK(m.n_stem == 2);
        CHECK(m.patch_dim == 6 * 8 * 8);
        mamba_close(&m);
    }
    refused_exact(with_hp({{MMIA_HP_STEM_LAYERS, 9}}), "stem_layers is 9, outside 0..8");
    refused(with_hp({{MMIA_HP_STEM_LAYERS, -1}}), "stem_layers is -1");
    refused_exact(with_hp({{MMIA_HP_STEM_WIDTH(0), 0}}), "stem layer 0 width is 0, outside 1..4096");
    refused(with_hp({{MMIA_HP_STEM_WIDTH(1), 1000000000}}), "stem layer 1 width is 1000000000");
    refused(with_hp({{MMIA_HP_STEM_WIDTH(1), -6}}), "stem layer 1 width is -6");
    // plausible widths that disagree with the tensors
    refused(with_hp({{MMIA_HP_STEM_WIDTH(0), 5}}), "tensor 'stem.0.weight' has shape [4, 3, 3, 3], expected [5, 3, 3, 3]");
    refused(with_hp({{MMIA_HP_STEM_WIDTH(1), 7}}), "expected [7, 4, 3, 3]");
    // fewer stem layers than widths: the leftover slot must be 0
    refused_exact(with_hp({{MMIA_HP_STEM_LAYERS, 1}}), "hp[15] is 6 but a model with 1 stem layers leaves it 0");
    // no stem at all: the patches then come from the image, and embed.weight does not fit
    refused(with_hp({{MMIA_HP_STEM_LAYERS, 0}, {MMIA_HP_STEM_WIDTH(0), 0}, {MMIA_HP_STEM_WIDTH(1), 0}}),
            "tensor 'embed.weight' has shape [16, 384], expected [16, 192]");
    // a third layer the file does not hold
    refused(with_hp({{MMIA_HP_STEM_LAYERS, 3}, {MMIA_HP_STEM_WIDTH(2), 6}}), "missing tensor 'stem.2.weight'");
    // the stem's norm: batch (0, folded) or group (1) with G dividing every width
    refused_exact(with_hp({{MMIA_HP_STEM_NORM, 2}}), "stem_norm is 2, outside 0..1");
    refused(with_hp({{MMIA_HP_STEM_NORM, -1}}), "stem_norm is -1, outside 0..1");
    refused_exact(with_hp({{MMIA_HP_STEM_NORM, 1}}), "stem_groups is 0, outside 1..4096");
    refused_exact(with_hp({{MMIA_HP_STEM_NORM, 1}, {MMIA_HP_STEM_GROUPS, 4}}),
                  "stem layer 1 width 6 is not a multiple of stem_groups 4");
    refused_exact(with_hp({{MMIA_HP_STEM_NORM, 1}, {MMIA_HP_STEM_GROUPS, 2}}), "missing tensor 'stem.0.norm.weight'");
    refused_exact(with_hp({{MMIA_HP_STEM_GROUPS, 2}}), "hp[23] (stem_groups) is 2 but a model without group norm leaves it 0");
    refused_exact(with_hp({{MMIA_HP_STEM_LAYERS, 0}, {MMIA_HP_STEM_WIDTH(0), 0}, {MMIA_HP_STEM_WIDTH(1), 0}, {MMIA_HP_STEM_NORM, 1}}),
                  "stem_norm is 1, outside 0..0");
    refused_exact(with_hp({{24, 1}}), "hp[24] is 1 but a model with 2 stem layers leaves it 0");
    {  // a group-norm file read as batch norm: its norm tensors are unknown; one without them is refused
        MambaConfig c = tiny_config();
        c.stem_norm = "group";
        c.stem_groups = 2;
        MambaClassifier gm = make_model(c);
        PackedModelData gp = pack_mamba(gm);
        std::vector<PackedTensor> kept;
        for (const auto& t : gp.tensors)
            if (t.name != "stem.1.norm.bias") kept.push_back(t);
        refused_exact(pack_model_bytes(gp.header, kept), "missing tensor 'stem.1.norm.bias'");
        gp.header.hp[MMIA_HP_STEM_NORM] = MMIA_STEM_BATCH_NORM;
        gp.header.hp[MMIA_HP_STEM_GROUPS] = 0;
        refused(pack_model_bytes(gp.header, gp.tensors), "unknown tensor 'stem.0.norm.weight'");
    }
    refused(with_hp({{31, -5}}), "hp[31] is -5");
    refused(with_hp({{MMIA_HP_NORM, 2}}), "norm is 2, outside 0..1");
    refused(with_hp({{MMIA_HP_NORM_PLACEMENT, 7}}), "norm_placement is 7, outside 0..1");
    refused(with_hp({{MMIA_HP_NORM, MMIA_NORM_RMS}}), "unknown tensor 'layers.0.norm.bias'");
    // within every cap but needing far more than 1 GiB per image: refused before any allocation
    {
        std::vector<uint8_t> b = with_hp({{MMIA_HP_STEM_WIDTH(0), 4096}, {MMIA_HP_STEM_WIDTH(1), 4096},
                                          {MMIA_HP_PATCH_H, 64}, {MMIA_HP_PATCH_W, 64}, {MMIA_HP_SEQ_LEN, 4096}});
        uint32_t side = 4096;
        std::memcpy(b.data() + offsetof(MmiaHeader, in_height), &side, 4);
        std::memcpy(b.data() + offsetof(MmiaHeader, in_width), &side, 4);
        refused(b, "working memory");
    }
    // a LayerNorm file whose norm biases are gone
    {
        PackedModelData p = packed;
        std::vector<PackedTensor> kept;
        for (const auto& t : p.tensors)
            if (t.name != "layers.1.norm.bias") kept.push_back(t);
        refused(pack_model_bytes(p.header, kept), "missing tensor 'layers.1.norm.bias'");
    }
    // a stem conv of another kernel size
    {
        PackedModelData p = packed;
        for (auto& t : p.tensors)
            if (t.name == "stem.0.weight") {
                t.shape = {4, 3, 1, 1};
                t.data.resize(12);
            }
        refused(pack_model_bytes(p.header, p.tensors), "expected [4, 3, 3, 3]");
    }
}
