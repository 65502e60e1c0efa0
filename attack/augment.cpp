// augment.cpp: shifted and mirrored queries (see augment.h).
#include "attack/augment.h"

#include <cstdlib>
#include <stdexcept>

#include "attack/features.h"

namespace mmia {

std::vector<Augmentation> augmented_queries(const std::string& dataset) {
    std::vector<Augmentation> q;
    for (int d = 1; d <= 2; d++)
        for (int dy = -2; dy <= 2; dy++)
            for (int dx = -2; dx <= 2; dx++)
                if (std::abs(dx) + std::abs(dy) == d) q.push_back({dx, dy, false});
    if (dataset == "cifar10") {
        const size_t shifts = q.size();
        q.push_back({0, 0, true});
        for (size_t i = 0; i < shifts; i++) q.push_back({q[i].dx, q[i].dy, true});
    }
    return q;
}

void augment_image(const float* image, int c, int h, int w, const Augmentation& a, float* out) {
    for (int ch = 0; ch < c; ch++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                const int sy = y - a.dy, sx0 = x - a.dx;
                float v = 0;
                if (sy >= 0 && sy < h && sx0 >= 0 && sx0 < w) {
                    const int sx = a.mirror ? w - 1 - sx0 : sx0;
                    v = image[(size_t(ch) * h + sy) * w + sx];
                }
                out[(size_t(ch) * h + y) * w + x] = v;
            }
}

std::vector<float> augment_batch(const std::vector<float>& images, int64_t n, int c, int h, int w,
                                 const Augmentation& a) {
    const size_t per = size_t(c) * h * w;
    std::vector<float> out(images.size());
    for (int64_t i = 0; i < n; i++) augment_image(images.data() + i * per, c, h, w, a, out.data() + i * per);
    return out;
}

std::vector<double> correct_query_counts(const std::vector<std::vector<float>>& query_logits, int n_classes,
                                         const std::vector<int>& labels) {
    std::vector<double> count(labels.size(), 0.0);
    for (const auto& lg : query_logits) {
        if (lg.size() != labels.size() * size_t(n_classes))
            throw std::invalid_argument("correct_query_counts: a query's logits are not n x n_classes");
        for (size_t i = 0; i < labels.size(); i++) count[i] += is_correct(lg.data() + i * size_t(n_classes), n_classes, labels[i]);
    }
    return count;
}

}  // namespace mmia
