// test_attack_features.cpp: per-example features from logits
// (attack/features.h) and the threshold attacks built on them
// (attack/metric_attacks.h), and the label-only attack's augmented queries
// (attack/augment.h), against values worked out by hand.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <vector>

#include "attack/augment.h"
#include "attack/features.h"
#include "attack/metric_attacks.h"
#include "attack/metrics.h"

using namespace mmia;

namespace {

// Logits log(1), log(2), log(7): softmax (0.1, 0.2, 0.7). float logits carry
// ~1e-7 relative error, hence the tolerance.
const std::vector<float> kRow = {0.0f, float(std::log(2.0)), float(std::log(7.0))};
doctest::Approx near(double v) { return doctest::Approx(v).epsilon(1e-6); }

}  // namespace

TEST_CASE("softmax, loss, confidences, entropy of (0.1, 0.2, 0.7) by hand") {
    std::vector<double> p = softmax(kRow.data(), 3);
    CHECK(p[0] == near(0.1));
    CHECK(p[1] == near(0.2));
    CHECK(p[2] == near(0.7));
    CHECK(log_softmax(kRow.data(), 3)[1] == near(std::log(0.2)));
    CHECK(cross_entropy(kRow.data(), 3, 2) == near(0.35667494393873245));  // -ln 0.7
    CHECK(cross_entropy(kRow.data(), 3, 0) == near(2.302585092994046));    // -ln 0.1
    CHECK(max_confidence(kRow.data(), 3) == near(0.7));
    CHECK(true_class_confidence(kRow.data(), 3, 1) == near(0.2));
    // -(.1 ln .1 + .2 ln .2 + .7 ln .7) = .2302585 + .3218876 + .2496725
    CHECK(prediction_entropy(kRow.data(), 3) == near(0.8018185525433373));
    CHECK(is_correct(kRow.data(), 3, 2) == 1);
    CHECK(is_correct(kRow.data(), 3, 0) == 0);
}

TEST_CASE("modified entropy (Song & Mittal eq. 7) by hand") {
    // y = 2: -(1 - .7) ln .7 - (.1 ln(1 - .1) + .2 ln(1 - .2))
    //      = .3 * .3566749 + .1 * .1053605 + .2 * .2231436 = .1621673
    CHECK(modified_entropy(kRow.data(), 3, 2) == near(0.16216726));
    // y = 0: -(.9) ln .1 - (.2 ln .8 + .7 ln .3) = 2.0723266 + .0446287 + .8427810
    CHECK(modified_entropy(kRow.data(), 3, 0) == near(2.95973631));
    // A confident right answer scores below a confident wrong one (plain
    // entropy cannot tell them apart: it is the same for both labels).
    CHECK(modified_entropy(kRow.data(), 3, 2) < modified_entropy(kRow.data(), 3, 0));
}

TEST_CASE("logit-scaled confidence phi = log p_y - log(1 - p_y)") {
    CHECK(logit_scaled_confidence(kRow.data(), 3, 2) == near(std::log(0.7 / 0.3)));
    CHECK(logit_scaled_confidence(kRow.data(), 3, 0) == near(std::log(0.1 / 0.9)));
    // Two classes: phi is exactly the logit difference, even where p_y
    // rounds to 1 in double (1 - p_y = e^-40 ~ 4e-18 < 2^-53).
    std::vector<float> confident = {40.0f, 0.0f};
    CHECK(true_class_confidence(confident.data(), 2, 0) == 1.0);
    CHECK(logit_scaled_confidence(confident.data(), 2, 0) == doctest::Approx(40.0).epsilon(1e-12));
    CHECK(logit_scaled_confidence(confident.data(), 2, 1) == doctest::Approx(-40.0).epsilon(1e-12));
}

TEST_CASE("huge logits stay finite and exact (no overflow, no log(0))") {
    std::vector<float> z = {1000.0f, 0.0f, -1000.0f};
    CHECK(cross_entropy(z.data(), 3, 0) == doctest::Approx(0.0));
    CHECK(cross_entropy(z.data(), 3, 2) == doctest::Approx(2000.0));
    CHECK(logit_scaled_confidence(z.data(), 3, 0) == doctest::Approx(1000.0));
    CHECK(logit_scaled_confidence(z.data(), 3, 2) == doctest::Approx(-2000.0));
    for (int y = 0; y < 3; y++) {
        CAPTURE(y);
        CHECK(std::isfinite(modified_entropy(z.data(), 3, y)));
    }
    CHECK(prediction_entropy(z.data(), 3) == doctest::Approx(0.0));
    // Adding a constant to every logit changes no probability-based feature
    // (integer logits, so the shifted floats are exact).
    std::vector<float> row = {0.0f, 1.0f, 3.0f}, shifted = {50.0f, 51.0f, 53.0f};
    CHECK(modified_entropy(shifted.data(), 3, 1) == doctest::Approx(modified_entropy(row.data(), 3, 1)));
    CHECK(logit_scaled_confidence(shifted.data(), 3, 1) ==
          doctest::Approx(logit_scaled_confidence(row.data(), 3, 1)));
}

TEST_CASE("seed 000's 22 features: 10 logits, 10 softmax, top1 - top2, entropy") {
    std::vector<float> z(10, 0.0f);
    z[3] = float(std::log(4.0));  // p = (1,1,1,4,1,1,1,1,1,1) / 13
    z[7] = float(std::log(2.0));  // then z[7]: (1,1,1,4,1,1,1,2,1,1) / 14
    REQUIRE(seed000_feature_count(10) == 22);
    std::vector<double> f(22);
    seed000_features(z.data(), 10, f.data());
    for (int i = 0; i < 10; i++) CHECK(f[i] == doctest::Approx(z[i]));
    CHECK(f[10 + 3] == near(4.0 / 14));
    CHECK(f[10 + 7] == near(2.0 / 14));
    CHECK(f[10 + 0] == near(1.0 / 14));
    CHECK(f[20] == near(2.0 / 14));  // 4/14 - 2/14
    double h = -(4.0 / 14 * std::log(4.0 / 14) + 2.0 / 14 * std::log(2.0 / 14) + 8 * (1.0 / 14) * std::log(1.0 / 14));
    CHECK(f[21] == near(h));
    std::vector<float> two_rows = z;
    two_rows.insert(two_rows.end(), z.begin(), z.end());
    Matrix m = seed000_feature_matrix(two_rows, 10);
    CHECK(m.rows == 2);
    CHECK(m.cols == 22);
    CHECK(m.at(1, 21) == f[21]);
}

TEST_CASE("feature functions refuse bad input") {
    std::vector<float> nan_row = {0.0f, NAN};
    CHECK_THROWS_WITH_AS(softmax(kRow.data(), 1), doctest::Contains("at least 2 classes"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(cross_entropy(kRow.data(), 3, 3), doctest::Contains("label 3 outside"),
                         std::invalid_argument);
    CHECK_THROWS_AS(modified_entropy(kRow.data(), 3, -1), std::invalid_argument);
    CHECK_THROWS_WITH_AS(logit_scaled_confidence(nan_row.data(), 2, 0), doctest::Contains("not finite"),
                         std::invalid_argument);
    CHECK_THROWS_AS(is_correct(nan_row.data(), 2, 0), std::invalid_argument);
    CHECK_THROWS_WITH_AS(seed000_feature_matrix({1, 2, 3}, 2), doctest::Contains("whole number"),
                         std::invalid_argument);
    CHECK_THROWS_AS(seed000_feature_matrix({}, 2), std::invalid_argument);
    CHECK_THROWS_WITH_AS(logit_scaled_confidences({1, 2, 3, 4}, 2, {0}), doctest::Contains("1 labels"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(metric_scores(MetricAttack::loss, {1, 2, 3, 4}, 2, {0, 5}),
                         doctest::Contains("label 5 of row 1"), std::invalid_argument);
}

TEST_CASE("metric attack scores: higher = member for a confident right answer") {
    // Row 0: confident and right (member-like); row 1: unsure and wrong.
    std::vector<float> logits = {5.0f, 0.0f, 0.0f, 0.3f, 0.5f, 0.0f};
    std::vector<int> labels = {0, 0};
    for (MetricAttack a : all_metric_attacks()) {
        CAPTURE(metric_attack_name(a));
        std::vector<double> s = metric_scores(a, logits, 3, labels);
        REQUIRE(s.size() == 2);
        CHECK(s[0] > s[1]);
        CHECK(metric_attack_from_name(metric_attack_name(a)) == a);
    }
    // And each is the feature it names, with the sign that makes it so.
    CHECK(metric_scores(MetricAttack::loss, logits, 3, labels)[1] == -cross_entropy(&logits[3], 3, 0));
    CHECK(metric_scores(MetricAttack::confidence, logits, 3, labels)[1] == true_class_confidence(&logits[3], 3, 0));
    CHECK(metric_scores(MetricAttack::entropy, logits, 3, labels)[1] == -prediction_entropy(&logits[3], 3));
    CHECK(metric_scores(MetricAttack::modified_entropy, logits, 3, labels)[1] ==
          -modified_entropy(&logits[3], 3, 0));
    CHECK(metric_scores(MetricAttack::correctness, logits, 3, labels) == std::vector<double>{1, 0});
    CHECK_THROWS_WITH_AS(metric_attack_from_name("los"), doctest::Contains("known: loss, confidence"),
                         std::invalid_argument);
}

TEST_CASE("per-class thresholds (Song & Mittal) by hand: they separate what one global threshold cannot") {
    // Class 0: members {6, 5}, non-members {2, 1} -> best at 5, threshold (5 + 2) / 2 = 3.5.
    // Class 1: members {.5, .4}, non-members {.2, .1} -> best at .4, threshold (.4 + .2) / 2 = .3.
    std::vector<double> s = {6, 5, 2, 1, 0.5, 0.4, 0.2, 0.1};
    std::vector<int> y = {0, 0, 0, 0, 1, 1, 1, 1};
    std::vector<int> m = {1, 1, 0, 0, 1, 1, 0, 0};
    std::vector<double> t = per_class_thresholds(s, y, m, 2);
    CHECK(t[0] == doctest::Approx(3.5));
    CHECK(t[1] == doctest::Approx(0.3));
    // Globally, descending 6m 5m 2n 1n .5m .4m .2n .1n: TPR-FPR peaks at .5 first
    // at t = 5 -> threshold 3.5, which misses class 1's members: balanced accuracy .75.
    double g = select_threshold(s, m);
    CHECK(g == doctest::Approx(3.5));
    CHECK(evaluate_attack(s, m, g).balanced_accuracy == doctest::Approx(0.75));
    // Shifted by class thresholds: 2.5 1.5 -1.5 -2.5 .2 .1 -.1 -.2: perfect at 0.
    std::vector<double> shifted = subtract_class_thresholds(s, y, t);
    CHECK(shifted[1] == doctest::Approx(1.5));
    CHECK(shifted[5] == doctest::Approx(0.1));
    AttackMetrics pc = evaluate_attack(shifted, m, 0.0);
    CHECK(pc.balanced_accuracy == 1.0);
    CHECK(pc.auc == 1.0);
    CHECK(roc_auc(s, m) == doctest::Approx(0.75));  // 12 of 16 pairs for the raw scores

    CHECK_THROWS_WITH_AS(per_class_thresholds(s, y, {1, 1, 1, 1, 1, 1, 0, 0}, 2), doctest::Contains("class 0"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(per_class_thresholds(s, y, m, 3), doctest::Contains("class 2"), std::invalid_argument);
    CHECK_THROWS_AS(per_class_thresholds(s, {0, 0, 0, 0, 1, 1, 1, 7}, m, 2), std::invalid_argument);
    CHECK_THROWS_AS(per_class_thresholds(s, y, {1, 0}, 2), std::invalid_argument);
    CHECK_THROWS_AS(subtract_class_thresholds(s, y, {3.5}), std::invalid_argument);

    // With a fallback list, a class without members or non-members takes the
    // global threshold and is listed; the others keep their own.
    // Built element by element: g++ 12.2 -O2 -march=native on this machine
    // compiled the braced list {1, 1, 1, 1, 1, 1, 0, 0} here as eight 1s
    // (right at -O0, at -O2 without -march=native, or with -fno-tree-vectorize).
    std::vector<int> fallback;
    std::vector<int> class0_all_members(8, 1);
    class0_all_members[6] = class0_all_members[7] = 0;
    REQUIRE(std::count(class0_all_members.begin(), class0_all_members.end(), 0) == 2);
    std::vector<double> tf = per_class_thresholds(s, y, class0_all_members, 2, &fallback);
    CHECK(fallback == std::vector<int>{0});
    CHECK(tf[0] == select_threshold(s, class0_all_members));
    CHECK(tf[0] == doctest::Approx(0.3));  // globally: members 6 5 2 1 .5 .4 above non-members .2 .1
    CHECK(tf[1] == doctest::Approx(0.3));  // class 1's own: members {.5, .4} over {.2, .1}
    fallback.clear();
    std::vector<double> t3 = per_class_thresholds(s, y, m, 3, &fallback);  // class 2: no examples at all
    CHECK(fallback == std::vector<int>{2});
    CHECK(t3[0] == doctest::Approx(3.5));
    CHECK(t3[1] == doctest::Approx(0.3));
    CHECK(t3[2] == doctest::Approx(3.5));
}

TEST_CASE("augmented queries: the shifts (and CIFAR-10's mirrors) and the images they make, by hand") {
    // 12 shifts with |dx| + |dy| in {1, 2}, none twice, never the identity.
    const auto q = augmented_queries("mnist");
    REQUIRE(q.size() == 12);
    for (size_t i = 0; i < q.size(); i++) {
        const int d = std::abs(q[i].dx) + std::abs(q[i].dy);
        CHECK((d == 1 || d == 2));
        CHECK(!q[i].mirror);
        for (size_t j = 0; j < i; j++) CHECK((q[i].dx != q[j].dx || q[i].dy != q[j].dy));
    }
    CHECK(augmented_queries("fashion").size() == 12);
    const auto qc = augmented_queries("cifar10");
    REQUIRE(qc.size() == 25);  // the 12 shifts, the mirror, the 12 mirrored shifts
    CHECK(std::count_if(qc.begin(), qc.end(), [](const Augmentation& a) { return a.mirror; }) == 13);

    // One channel, 2 x 3:   1 2 3
    //                       4 5 6
    const std::vector<float> img = {1, 2, 3, 4, 5, 6};
    auto apply = [&](Augmentation a) {
        std::vector<float> out(6, -1.0f);
        augment_image(img.data(), 1, 2, 3, a, out.data());
        return out;
    };
    CHECK(apply({1, 0, false}) == std::vector<float>{0, 1, 2, 0, 4, 5});    // right by 1
    CHECK(apply({-2, 0, false}) == std::vector<float>{3, 0, 0, 6, 0, 0});   // left by 2
    CHECK(apply({0, 1, false}) == std::vector<float>{0, 0, 0, 1, 2, 3});    // down by 1
    CHECK(apply({-1, -1, false}) == std::vector<float>{5, 6, 0, 0, 0, 0});  // up and left
    CHECK(apply({0, 0, true}) == std::vector<float>{3, 2, 1, 6, 5, 4});     // mirror
    CHECK(apply({1, 0, true}) == std::vector<float>{0, 3, 2, 0, 6, 5});     // mirror, then right by 1
    // Two channels move together.
    const std::vector<float> two = {1, 2, 3, 4, 10, 20, 30, 40};  // 2 channels of 2 x 2
    std::vector<float> out(8);
    augment_image(two.data(), 2, 2, 2, {1, 0, false}, out.data());
    CHECK(out == std::vector<float>{0, 1, 0, 3, 0, 10, 0, 30});
    CHECK(augment_batch(two, 2, 1, 2, 2, {0, -1, false}) == std::vector<float>{3, 4, 0, 0, 30, 40, 0, 0});
}

TEST_CASE("label-only augmentation score: how many queries keep the right label, by hand") {
    // 3 examples, 3 classes, labels 0, 1, 2; three queries.
    const std::vector<int> y = {0, 1, 2};
    const std::vector<std::vector<float>> q = {
        {5, 1, 1, /**/ 0, 3, 1, /**/ 1, 1, 1},   // right, right, wrong (a tie: the first maximum, class 0)
        {5, 6, 1, /**/ 0, 3, 4, /**/ 0, 0, 2},   // wrong, wrong, right
        {9, 1, 1, /**/ 2, 3, 1, /**/ 0, 2, 2}};  // right, right, wrong (tie 1 and 2: class 1 first)
    CHECK(correct_query_counts(q, 3, y) == std::vector<double>{2, 2, 1});
    CHECK_THROWS_AS(correct_query_counts({{1, 2}}, 3, y), std::invalid_argument);
}
