// augment.h: the augmented queries of label-only and augmented-query attacks
// (Choquette-Choo, Tramer, Carlini, Papernot, "Label-Only Membership
// Inference Attacks", ICML 2021, arXiv 2007.14321, section 4: a member's
// label tends to survive small translations and flips; LiRA's augmented
// queries, Carlini et al. 2022, section 5.2, the same shifts and mirror).
//
// Images are (C, H, W) float rows, as the engines take them. A shift by
// (dx, dy) moves the content dx pixels right and dy pixels down; the pixels
// it uncovers are 0 (the paper's zero padding). The queries of a dataset:
//   every shift with |dx| + |dy| in {1, 2} (4 at distance 1, 8 at distance
//   2: 12 in all), and for CIFAR-10 also their horizontal mirrors and the
//   mirror of the image itself (25 queries); the unshifted image is not
//   one of them (the plain attacks read it).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mmia {

struct Augmentation {
    int dx = 0, dy = 0;   // shift, pixels (right, down)
    bool mirror = false;  // horizontal flip, applied before the shift
};

// The queries for a dataset ("mnist", "fashion": shifts; "cifar10": shifts
// and mirrors), in a fixed order.
std::vector<Augmentation> augmented_queries(const std::string& dataset);

// out (C, H, W) = image (C, H, W) under a: out[c][y][x] = src[c][y - dy][x' - dx]
// where src is the image, mirrored (x' = W - 1 - x) when a.mirror; 0 where
// (y - dy, x - dx) falls outside. out and image must not overlap.
void augment_image(const float* image, int c, int h, int w, const Augmentation& a, float* out);

// Every image of a batch (n x c*h*w floats) under a.
std::vector<float> augment_batch(const std::vector<float>& images, int64_t n, int c, int h, int w,
                                 const Augmentation& a);

// The label-only augmentation attack's score of each example: how many of
// the queries the model still labels correctly (argmax = label, the first
// maximum on ties, as is_correct). query_logits[q] holds the logits of
// every example under query q (n x n_classes); 0..queries, higher = member.
std::vector<double> correct_query_counts(const std::vector<std::vector<float>>& query_logits, int n_classes,
                                         const std::vector<int>& labels);

}  // namespace mmia
