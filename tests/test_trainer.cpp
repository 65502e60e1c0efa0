// test_trainer.cpp: pieces of the training loop that are easy to get subtly
// wrong without any test noticing a drop in accuracy.
//   - augment_crop_flip: every output image is exactly one shifted (zero
//     filled) and possibly mirrored copy of its input, every shift and both
//     mirror states occur, and the same generator state replays the batch
// (The loop's determinism under resume, augmentation included, is
// test_checkpoint's SIGKILL test.)
//
// LibTorch before doctest: glog (pulled in by c10) defines CHECK too.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <doctest/doctest.h>

#include <random>
#include <set>
#include <tuple>

#include "common/config.h"
#include "tests/temp_dir.h"
#include "train/cnn_model.h"
#include "train/trainer.h"

using namespace mmia;

namespace {

// The image x (C, H, W) shifted by (dy, dx) in [-pad, pad] with zero fill,
// then mirrored left-right if `mirror`: written out pixel by pixel, the
// definition augment_crop_flip must meet.
torch::Tensor shifted_reference(const torch::Tensor& x, int dy, int dx, bool mirror) {
    const int64_t c_n = x.size(0), h = x.size(1), w = x.size(2);
    auto out = torch::zeros_like(x);
    auto in = x.accessor<float, 3>();
    auto o = out.accessor<float, 3>();
    for (int64_t c = 0; c < c_n; c++)
        for (int64_t i = 0; i < h; i++)
            for (int64_t j = 0; j < w; j++) {
                // Output pixel (i, j) of the crop at offset (dy+pad, dx+pad) of the
                // padded image is input pixel (i + dy, j + dx).
                const int64_t jj = mirror ? w - 1 - j : j;
                const int64_t si = i + dy, sj = jj + dx;
                if (si >= 0 && si < h && sj >= 0 && sj < w) o[c][i][j] = in[c][si][sj];
            }
    return out;
}

}  // namespace

TEST_CASE("augment_crop_flip: each image is one shifted, maybe mirrored copy; the generator replays it") {
    const int pad = 2;
    torch::manual_seed(3);
    auto x = torch::rand({1000, 3, 6, 5}) + 0.5f;  // no zeros in the input: fill is visible
    std::mt19937_64 rng(11);
    auto y = augment_crop_flip(x, pad, rng);
    REQUIRE(y.sizes() == x.sizes());

    std::set<std::tuple<int, int, bool>> seen;
    for (int64_t i = 0; i < x.size(0); i++) {
        int matches = 0;
        for (int dy = -pad; dy <= pad; dy++)
            for (int dx = -pad; dx <= pad; dx++)
                for (bool mirror : {false, true})
                    if (torch::equal(y[i], shifted_reference(x[i], dy, dx, mirror))) {
                        matches++;
                        seen.insert({dy, dx, mirror});
                    }
        // Random pixel values: one and only one (shift, mirror) explains the output.
        REQUIRE_MESSAGE(matches == 1, "image " << i);
    }
    CHECK(seen.size() == size_t(2 * (2 * pad + 1) * (2 * pad + 1)));  // 50 cases, 1000 draws

    std::mt19937_64 same(11), other(12);
    CHECK(torch::equal(augment_crop_flip(x, pad, same), y));
    CHECK_FALSE(torch::equal(augment_crop_flip(x, pad, other), y));
    // pad 0: only mirroring is left.
    std::mt19937_64 r0(5);
    auto z = augment_crop_flip(x, 0, r0);
    for (int64_t i = 0; i < 20; i++)
        CHECK((torch::equal(z[i], x[i]) || torch::equal(z[i], x[i].flip({2}))));
}

// TrainJob::per_epoch (bin/attack's vulnerability per epoch) looks at the
// model and changes nothing: a CNN with batch norm (whose running statistics
// a forward pass in train mode would move) and dropout trains to the same
// bits with and without the hook; the hook sees each epoch's eval-mode
// logits, and its JSON lands in that epoch's history entry.
TEST_CASE("the per-epoch hook leaves the trained weights bit for bit as they are") {
    torch::set_num_threads(1);
    TempDir dir("mmia_hook");
    TrainJob job;
    job.spec = resolve_preset(load_config_file("config.json"), "cnn", "mambaris-cnn");
    job.spec.cnn.layers[0].out = 4;  // small: a few seconds
    job.spec.cnn.layers[2].out = 8;
    job.train = resolve_training(load_config_file("config.json"), "mambaris-cnn");
    job.train.epochs = 3;
    job.train.batch_size = 16;
    job.input = {1, 28, 28, 10, {0.13f}, {0.31f}};
    job.dropout = 0.25;
    job.verbose = false;
    torch::manual_seed(5);
    const auto x = torch::rand({48, 1, 28, 28}), xt = torch::rand({20, 1, 28, 28});
    const auto y = torch::randint(0, 10, {48}, torch::kInt64), yt = torch::randint(0, 10, {20}, torch::kInt64);

    job.checkpoint = dir.file("plain.pt");
    const json plain = train_classifier(job, x, y, xt, yt);
    std::vector<int> epochs;
    std::vector<torch::Tensor> seen_train;
    job.per_epoch = [&](int epoch, const torch::Tensor& tr, const torch::Tensor& te) {
        epochs.push_back(epoch);
        seen_train.push_back(tr.clone());
        CHECK(tr.sizes() == torch::IntArrayRef({48, 10}));
        CHECK(te.sizes() == torch::IntArrayRef({20, 10}));
        return json{{"probe", epoch * 10}, {"test_acc", -1}};  // the trainer's own key is kept
    };
    job.checkpoint = dir.file("hooked.pt");
    const json hooked = train_classifier(job, x, y, xt, yt);
    CHECK(epochs == std::vector<int>{1, 2, 3});
    REQUIRE(hooked["history"].size() == 3);
    for (int e = 0; e < 3; e++) {
        CHECK(hooked["history"][e]["probe"] == 10 * (e + 1));
        CHECK(hooked["history"][e]["test_acc"] == plain["history"][e]["test_acc"]);
        CHECK(hooked["history"][e]["loss"] == plain["history"][e]["loss"]);
    }
    CHECK_FALSE(plain["history"][0].contains("probe"));
    CHECK(hooked["final"] == plain["final"]);

    auto load = [&](const std::string& path) {
        const InputSpec& in = job.input;
        CnnClassifier m(job.spec.cnn, in.channels, in.height, in.width, in.n_classes, in.mean, in.std);
        load_checkpoint_state(path, *m, nullptr);
        return m;
    };
    CnnClassifier a = load(dir.file("plain.pt")), b = load(dir.file("hooked.pt"));
    const auto pa = a->named_parameters(), pb = b->named_parameters();
    REQUIRE(pa.size() == pb.size());
    for (const auto& kv : pa) {
        CAPTURE(kv.key());
        CHECK(torch::equal(kv.value(), pb[kv.key()]));
    }
    const auto ba = a->named_buffers(), bb = b->named_buffers();
    REQUIRE(ba.size() == bb.size());
    REQUIRE(ba.size() > 0);  // batch norm's running statistics
    for (const auto& kv : ba) {
        CAPTURE(kv.key());
        CHECK(torch::equal(kv.value(), bb[kv.key()]));
    }
    // The last epoch's logits the hook saw are the trained model's, in eval mode.
    b->eval();
    torch::NoGradGuard no_grad;
    CHECK(torch::allclose(seen_train.back(), b->forward(x), 1e-5, 1e-5));
}
