// test_trainer.cpp: pieces of the training loop that are easy to get subtly
// wrong without any test noticing a drop in accuracy.
//   - augment_crop_flip: every output image is exactly one shifted (zero
//     filled) and possibly mirrored copy of its input, every shift and both
//     mirror states occur, and the same generator state replays the batch
// (The loop's determinism under resume, augmentation included, is
// test_checkpoint's SIGKILL test.)
//
// LibTorch before doctest: glog (pulled in by c10) defines CHECK too.
#include <torch/torch.h>

#include <doctest/doctest.h>

#include <random>
#include <set>
#include <tuple>

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
