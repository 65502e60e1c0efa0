// test_parity.cpp: the engine (mamba.cpp) against the trainer (LibTorch) on
// real MNIST: logits within 1e-5 (relative to the largest logit), the same accuracy on all 10,000 test
// images, every parameter exported; and the trainer's determinism and resume.
// LibTorch before doctest: glog (pulled in by c10) defines CHECK too, and
// doctest's definitions must be the ones that win.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <string>

#include "common/config.h"
#include "common/data.h"
#include "engine/mamba.h"
#include "export/model_export.h"
#include "tests/parity_helpers.h"
#include "tests/temp_dir.h"
#include "train/trainer.h"

using namespace mmia;
namespace fs = std::filesystem;

namespace {

const Dataset& mnist() {
    static Dataset d = load_dataset("mnist");  // throws (fails the test) if `make setup` was not run
    return d;
}

json config() { return load_config_file("config.json"); }

InputSpec mnist_input() {
    const Dataset& d = mnist();
    return {d.train.channels, d.train.height, d.train.width, d.train.n_classes, d.mean, d.std};
}

torch::Tensor torch_logits(MambaClassifier& model, const torch::Tensor& images) {
    return predict_logits(*model, [&](const torch::Tensor& x) { return model->forward(x); }, images);
}

TrainJob small_job(const std::string& preset, const std::string& ckpt, int epochs) {
    return quiet_train_job(preset, "mnist", mnist_input(), ckpt, epochs);
}

}  // namespace

TEST_CASE("every parameter the forward pass uses is exported") {
    torch::manual_seed(1);
    json cfg = config();
    for (const char* preset : {"mamba-mnist", "mamba-seed002"}) {
        MambaConfig c = resolve_preset(cfg, "mamba", preset).mamba;
        InputSpec in = mnist_input();
        MambaClassifier model(c, in.channels, in.height, in.width, in.n_classes, in.mean, in.std);
        int64_t param_values = 0;
        for (const auto& p : model->parameters()) param_values += p.numel();
        PackedModelData packed = pack_mamba(model);
        int64_t exported_values = 0;
        for (const auto& t : packed.tensors) exported_values += int64_t(t.data.size());
        CHECK_MESSAGE(exported_values == param_values, preset);
    }
}

TEST_CASE("engine logits match LibTorch on real MNIST images, every preset and block variant") {
    torch::manual_seed(2);
    torch::set_num_threads(2);
    TempDir tmp("mmia_parity");
    const Dataset& d = mnist();
    auto images = images_to_tensor(d.test).narrow(0, 0, 64).contiguous();
    json cfg = config();
    struct Variant { const char* preset; const char* conv; const char* pool; };
    for (Variant v : {Variant{"mamba-mnist", "causal", "mean"}, Variant{"mamba-mnist", "same", "last"},
                      Variant{"mamba-seed002", "causal", "mean"}}) {
        CAPTURE(v.preset);
        CAPTURE(v.conv);
        MambaConfig c = resolve_preset(cfg, "mamba", v.preset).mamba;
        c.conv = v.conv;
        c.pool = v.pool;
        InputSpec in = mnist_input();
        MambaClassifier model(c, in.channels, in.height, in.width, in.n_classes, in.mean, in.std);
        // Random init has tiny dt and A near -1..-N; perturb every parameter so
        // the test exercises weights unlike their initial values.
        {
            torch::NoGradGuard g;
            for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.05);
        }
        auto ref = torch_logits(model, images);
        auto got = mamba_engine_logits(model, images, tmp.file("variant.bin"));
        double max_diff = (ref - got).abs().max().item<double>(), rel = parity_error(ref, got);
        CHECK_MESSAGE(rel <= kParityTol, "max |engine - LibTorch| logit " << max_diff);
    }
}

TEST_CASE("trained model: engine accuracy on all 10,000 MNIST test images equals the trainer's") {
    torch::set_num_threads(2);
    TempDir tmp("mmia_parity");
    const Dataset& d = mnist();
    // One epoch on 12,000 images with the preset's own settings: a real,
    // imperfect classifier in seconds.
    TrainJob job = small_job("mamba-mnist", tmp.file("m.pt"), 1);
    auto train_x = images_to_tensor(d.train).narrow(0, 0, 12000);
    auto train_y = labels_to_tensor(d.train).narrow(0, 0, 12000);
    auto test_x = images_to_tensor(d.test);
    auto test_y = labels_to_tensor(d.test);
    json meta = train_mamba(job, train_x, train_y, test_x, test_y);
    double trainer_acc = meta["final"]["test_acc"].get<double>();
    MESSAGE("trainer test accuracy after one epoch on 12,000 images: " << trainer_acc);
    CHECK(trainer_acc > 0.5);

    MambaClassifier model = load_mamba_checkpoint(job.checkpoint);
    auto ref = torch_logits(model, test_x);
    auto got = mamba_engine_logits(model, test_x, tmp.file("m.bin"));
    double max_diff = (ref - got).abs().max().item<double>(), rel = parity_error(ref, got);
    int64_t flipped = (ref.argmax(1) != got.argmax(1)).sum().item<int64_t>();
    MESSAGE("max |engine - LibTorch| logit: " << max_diff << " (relative " << rel << ")" << ", predictions that differ: " << flipped);
    CHECK(rel <= kParityTol);
    CHECK(accuracy(got, test_y) == trainer_acc);
}

TEST_CASE("training is deterministic and a resumed run equals an uninterrupted one") {
    torch::set_num_threads(2);
    TempDir tmp("mmia_parity");
    const Dataset& d = mnist();
    auto train_x = images_to_tensor(d.train).narrow(0, 0, 512);
    auto train_y = labels_to_tensor(d.train).narrow(0, 0, 512);
    auto test_x = images_to_tensor(d.test).narrow(0, 0, 256);
    auto test_y = labels_to_tensor(d.test).narrow(0, 0, 256);

    TrainJob a = small_job("mamba-mnist", tmp.file("a.pt"), 2);
    TrainJob b = small_job("mamba-mnist", tmp.file("b.pt"), 2);
    train_mamba(a, train_x, train_y, test_x, test_y);
    train_mamba(b, train_x, train_y, test_x, test_y);

    // c: stopped after epoch 1 (as a killed run leaves it), then resumed.
    TrainJob c = small_job("mamba-mnist", tmp.file("c.pt"), 2);
    c.stop_after_epochs = 1;
    json partial = train_mamba(c, train_x, train_y, test_x, test_y);
    CHECK(partial["epochs_done"].get<int>() == 1);
    CHECK_FALSE(partial.contains("final"));
    c.stop_after_epochs = 0;
    train_mamba(c, train_x, train_y, test_x, test_y);

    MambaClassifier ma = load_mamba_checkpoint(a.checkpoint);
    MambaClassifier mb = load_mamba_checkpoint(b.checkpoint);
    MambaClassifier mc = load_mamba_checkpoint(c.checkpoint);
    auto pa = ma->parameters(), pb = mb->parameters(), pc = mc->parameters();
    REQUIRE(pa.size() == pb.size());
    REQUIRE(pa.size() == pc.size());
    for (size_t i = 0; i < pa.size(); i++) {
        CHECK(torch::equal(pa[i], pb[i]));  // same seed, same threads: same bits
        CHECK(torch::equal(pa[i], pc[i]));  // resumed == uninterrupted
    }

    // A finished checkpoint is not retrained; another config is refused.
    json again = train_mamba(a, train_x, train_y, test_x, test_y);
    CHECK(again["epochs_done"].get<int>() == 2);
    TrainJob other = a;
    other.train.seed = 7;
    CHECK_THROWS_WITH_AS(train_mamba(other, train_x, train_y, test_x, test_y),
                         doctest::Contains("another configuration"), std::runtime_error);
}
