// test_cnn_parity.cpp: the CNN engine (cnn.cpp) against the trainer
// (LibTorch): every parameter exported, batch norm folded correctly, logits
// within 1e-5 (relative to the largest logit) on real MNIST and CIFAR-10 images for every preset, the same
// accuracy on all 10,000 test images after brief training, and the CNN
// trainer's determinism and resume.
// LibTorch before doctest: glog (pulled in by c10) defines CHECK too, and
// doctest's definitions must be the ones that win.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include "common/config.h"
#include "common/data.h"
#include "engine/cnn.h"
#include "export/model_export.h"
#include "train/cnn_model.h"
#include "train/trainer.h"
#include "tests/parity_helpers.h"
#include "tests/temp_dir.h"

using namespace mmia;
namespace {

const Dataset& dataset(const std::string& name) {
    static std::map<std::string, Dataset> cache;
    if (!cache.count(name)) cache[name] = load_dataset(name);  // throws (fails the test) if missing
    return cache[name];
}

InputSpec input_of(const Dataset& d) {
    return {d.train.channels, d.train.height, d.train.width, d.train.n_classes, d.mean, d.std};
}

CnnClassifier make_model(const std::string& preset, const Dataset& d) {
    CnnConfig c = resolve_preset(load_config_file("config.json"), "cnn", preset).cnn;
    InputSpec in = input_of(d);
    return CnnClassifier(c, in.channels, in.height, in.width, in.n_classes, in.mean, in.std);
}

// Moves every parameter and batch-norm statistic away from its initial
// value (running_var stays positive), so export and folding are tested on
// weights unlike a fresh model's.
void perturb(CnnClassifier& model, double scale) {
    torch::NoGradGuard g;
    for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * scale);
    for (auto& bn : model->bn)
        if (bn) {
            bn->running_mean.copy_(torch::randn_like(bn->running_mean) * 0.3);
            bn->running_var.copy_(torch::rand_like(bn->running_var) * 1.5 + 0.25);
        }
}

// Packs `model`, opens it with the engine, returns the engine's logits.
torch::Tensor engine_logits(CnnClassifier& model, const torch::Tensor& images, const std::string& bin_path) {
    PackedModelData packed = pack_cnn(model);
    write_packed_model(bin_path, packed.header, packed.tensors);
    CnnModel m;
    char err[512];
    REQUIRE_MESSAGE(cnn_open(&m, bin_path.c_str(), err, sizeof err) == 0, err);
    auto x = images.contiguous();
    const int64_t n = x.size(0);
    REQUIRE(cnn_image_floats(&m) == x.numel() / n);
    auto out = torch::empty({n, cnn_n_classes(&m)});
    REQUIRE(cnn_check_images(&m, x.data_ptr<float>(), n, err, sizeof err) == 0);
    REQUIRE(cnn_forward_logits(&m, x.data_ptr<float>(), n, out.data_ptr<float>()) == 0);
    cnn_close(&m);
    return out;
}

torch::Tensor torch_logits(CnnClassifier& model, const torch::Tensor& images) {
    return predict_logits(*model, [&](const torch::Tensor& x) { return model->forward(x); }, images);
}

TrainJob mnist_job(const std::string& ckpt, int epochs) {
    json cfg = load_config_file("config.json");
    TrainJob job;
    job.spec = resolve_preset(cfg, "cnn", "shokri");
    job.train = resolve_training(cfg, "shokri");
    job.train.epochs = epochs;
    job.input = input_of(dataset("mnist"));
    job.dataset = "mnist";
    job.checkpoint = ckpt;
    job.verbose = false;
    return job;
}

}  // namespace

TEST_CASE("every parameter is exported and used; batch norm leaves only its folded conv bias") {
    torch::manual_seed(1);
    TempDir tmp("mmia_cnn_parity");
    for (std::string preset : {"shokri", "mambaris-cnn"}) {
        for (std::string ds : {"mnist", "cifar10"}) {
            CAPTURE(preset);
            CAPTURE(ds);
            CnnClassifier model = make_model(preset, dataset(ds));
            int64_t param_values = 0, bn_channels = 0;
            for (const auto& p : model->parameters()) param_values += p.numel();
            for (const auto& bn : model->bn)
                if (bn) bn_channels += bn->weight.numel();
            PackedModelData packed = pack_cnn(model);
            int64_t exported = 0;
            for (const auto& t : packed.tensors) exported += int64_t(t.data.size());
            // gamma and beta (2 per channel) become the conv's bias (1 per channel)
            CHECK(exported == param_values - bn_channels);
        }
        // pg1647's count for the CIFAR-10 shape
        if (preset == "shokri") {
            CnnClassifier m = make_model(preset, dataset("cifar10"));
            int64_t n = 0;
            for (const auto& p : m->parameters()) n += p.numel();
            CHECK(n == 160554);
        }
    }
    // Used: changing any one parameter tensor (or batch-norm statistic) changes the engine's logits.
    CnnClassifier model = make_model("mambaris-cnn", dataset("cifar10"));
    perturb(model, 0.05);
    auto images = images_to_tensor(dataset("cifar10").test).narrow(0, 0, 4);
    auto base = engine_logits(model, images, tmp.file("base.bin"));
    std::vector<torch::Tensor> all = model->parameters();
    for (auto& b : model->buffers()) all.push_back(b);  // running stats, in_mean, in_std
    for (size_t i = 0; i < all.size(); i++) {
        if (all[i].dtype() != torch::kFloat32) continue;  // num_batches_tracked
        CAPTURE(i);
        torch::NoGradGuard g;
        auto saved = all[i].clone();
        all[i].add_(0.1);
        auto moved = engine_logits(model, images, tmp.file("moved.bin"));
        all[i].copy_(saved);
        CHECK((moved - base).abs().max().item<double>() > 1e-4);
    }
}

TEST_CASE("batch norm folds into the conv: hand-computed weights, engine equals LibTorch eval") {
    torch::manual_seed(3);
    TempDir tmp("mmia_cnn_parity");
    CnnConfig c;
    c.layers = {{"conv", 5, 3, 1, true, "relu"}, {"global_avg_pool"}, {"dense", 0, 0, 0, false, "none"}};
    CnnClassifier model(c, 2, 6, 6, 3, std::vector<float>{0.5f, 0.4f}, std::vector<float>{0.2f, 0.3f});
    perturb(model, 0.2);
    auto& bn = model->bn[0];
    PackedModelData packed = pack_cnn(model);
    REQUIRE(packed.tensors.size() == 4);
    auto s = bn->weight / torch::sqrt(bn->running_var + c.bn_eps);
    auto w_want = model->conv[0]->weight * s.view({5, 1, 1, 1});
    auto b_want = bn->bias - bn->running_mean * s;
    auto w_got = torch::from_blob(packed.tensors[0].data.data(), {5, 2, 3, 3});
    auto b_got = torch::from_blob(packed.tensors[1].data.data(), {5});
    CHECK(torch::allclose(w_got, w_want, 1e-6, 1e-7));
    CHECK(torch::allclose(b_got, b_want, 1e-6, 1e-7));
    auto images = torch::rand({16, 2, 6, 6});
    auto diff = (torch_logits(model, images) - engine_logits(model, images, tmp.file("bn.bin"))).abs().max();
    CHECK(diff.item<double>() <= 1e-5);
}

TEST_CASE("engine logits match LibTorch within 1e-5 (relative to the largest logit) on real MNIST and CIFAR-10 images, every preset") {
    torch::manual_seed(2);
    torch::set_num_threads(2);
    TempDir tmp("mmia_cnn_parity");
    for (std::string preset : {"shokri", "mambaris-cnn"}) {
        for (std::string ds : {"mnist", "cifar10"}) {
            CAPTURE(preset);
            CAPTURE(ds);
            CnnClassifier model = make_model(preset, dataset(ds));
            perturb(model, 0.02);
            auto images = images_to_tensor(dataset(ds).test).narrow(0, 0, 64).contiguous();
            auto ref = torch_logits(model, images);
            auto got = engine_logits(model, images, tmp.file("p.bin"));
            double max_diff = (ref - got).abs().max().item<double>(), rel = parity_error(ref, got);
            MESSAGE(preset << " on " << ds << ": max |engine - LibTorch| logit " << max_diff << " (relative " << rel << ")");
            CHECK(rel <= kParityTol);
        }
    }
}

TEST_CASE("trained CNN: engine accuracy on all 10,000 MNIST test images equals the trainer's") {
    torch::set_num_threads(2);
    TempDir tmp("mmia_cnn_parity");
    const Dataset& d = dataset("mnist");
    TrainJob job = mnist_job(tmp.file("shokri.pt"), 1);
    job.train.batch_size = 128;  // one brisk epoch: a real, imperfect classifier in seconds
    auto train_x = images_to_tensor(d.train).narrow(0, 0, 4000);
    auto train_y = labels_to_tensor(d.train).narrow(0, 0, 4000);
    auto test_x = images_to_tensor(d.test);
    auto test_y = labels_to_tensor(d.test);
    json meta = train_classifier(job, train_x, train_y, test_x, test_y);
    CHECK(meta["model"] == "cnn");
    double trainer_acc = meta["final"]["test_acc"].get<double>();
    MESSAGE("shokri, one epoch on 4,000 MNIST images: trainer test accuracy " << trainer_acc);
    CHECK(trainer_acc > 0.7);

    // export through the kind-detecting path bin/export uses
    export_checkpoint(job.checkpoint, tmp.file("shokri.bin"));
    CnnModel m;
    char err[512];
    REQUIRE_MESSAGE(cnn_open(&m, tmp.file("shokri.bin").c_str(), err, sizeof err) == 0, err);
    auto got = torch::empty({test_x.size(0), 10});
    REQUIRE(cnn_forward_logits(&m, test_x.contiguous().data_ptr<float>(), test_x.size(0), got.data_ptr<float>()) == 0);
    cnn_close(&m);
    // LibTorch's eval forward is the slow part here: compare logits on 1,000.
    CnnClassifier model = load_cnn_checkpoint(job.checkpoint);
    auto ref = torch_logits(model, test_x.narrow(0, 0, 1000));
    double max_diff = (ref - got.narrow(0, 0, 1000)).abs().max().item<double>(),
           rel = parity_error(ref, got.narrow(0, 0, 1000));
    MESSAGE("max |engine - LibTorch| logit over 1,000 images: " << max_diff << " (relative " << rel << ")");
    CHECK(rel <= kParityTol);
    CHECK(accuracy(got, test_y) == trainer_acc);
}

TEST_CASE("CNN training is deterministic and a resumed run equals an uninterrupted one") {
    torch::set_num_threads(2);
    TempDir tmp("mmia_cnn_parity");
    const Dataset& d = dataset("mnist");
    auto train_x = images_to_tensor(d.train).narrow(0, 0, 384);
    auto train_y = labels_to_tensor(d.train).narrow(0, 0, 384);
    auto test_x = images_to_tensor(d.test).narrow(0, 0, 128);
    auto test_y = labels_to_tensor(d.test).narrow(0, 0, 128);
    TrainJob a = mnist_job(tmp.file("a.pt"), 2), b = mnist_job(tmp.file("b.pt"), 2), c = mnist_job(tmp.file("c.pt"), 2);
    // mambaris-cnn: batch norm's running statistics must resume too
    json cfg = load_config_file("config.json");
    for (TrainJob* j : {&a, &b, &c}) j->spec = resolve_preset(cfg, "cnn", "mambaris-cnn");
    train_classifier(a, train_x, train_y, test_x, test_y);
    train_classifier(b, train_x, train_y, test_x, test_y);
    c.stop_after_epochs = 1;
    json partial = train_classifier(c, train_x, train_y, test_x, test_y);
    CHECK(partial["epochs_done"].get<int>() == 1);
    c.stop_after_epochs = 0;
    train_classifier(c, train_x, train_y, test_x, test_y);
    json meta;
    CnnClassifier ma = load_cnn_checkpoint(a.checkpoint, &meta), mb = load_cnn_checkpoint(b.checkpoint),
                  mc = load_cnn_checkpoint(c.checkpoint);
    CHECK(meta["cnn"] == to_json(a.spec.cnn));
    auto sa = ma->named_buffers(), sb = mb->named_buffers(), sc = mc->named_buffers();
    auto pa = ma->parameters(), pb = mb->parameters(), pc = mc->parameters();
    REQUIRE(pa.size() == pc.size());
    for (size_t i = 0; i < pa.size(); i++) {
        CHECK(torch::equal(pa[i], pb[i]));
        CHECK(torch::equal(pa[i], pc[i]));
    }
    for (const auto& kv : sa) {
        CAPTURE(kv.key());
        CHECK(torch::equal(kv.value(), sb[kv.key()]));
        CHECK(torch::equal(kv.value(), sc[kv.key()]));
    }
    // a Mamba checkpoint is not a CNN one
    CHECK_THROWS_WITH_AS(train_mamba(a, train_x, train_y, test_x, test_y), doctest::Contains("\"cnn\""),
                         std::runtime_error);
}
