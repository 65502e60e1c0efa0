// test_attack_models.cpp: the trained attacks (attack/classifiers.h), LiRA
// (attack/lira.h), and the sanity checks every attack must pass: chance
// (AUC 0.5 within noise) when members and non-members come from the same
// distribution, and a clear signal when they do not.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "attack/classifiers.h"
#include "attack/features.h"
#include "attack/lira.h"
#include "attack/metric_attacks.h"
#include "attack/metrics.h"

using namespace mmia;

namespace {

// Standard error of the AUC of a useless attack (Mann-Whitney under the null
// hypothesis, no ties): sqrt((n1 + n0 + 1) / (12 n1 n0)).
double null_auc_se(int64_t n1, int64_t n0) { return std::sqrt(double(n1 + n0 + 1) / (12.0 * double(n1) * double(n0))); }

// 2-D points: class 1 around (+c, +c), class 0 around (-c, -c), sd 0.5.
void blobs(int n, double c, uint64_t seed, Matrix& x, std::vector<int>& y) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> noise(0, 0.5);
    x = Matrix(n, 2);
    y.assign(n, 0);
    for (int i = 0; i < n; i++) {
        y[i] = i % 2;
        double center = y[i] ? c : -c;
        x.at(i, 0) = center + noise(rng);
        x.at(i, 1) = center + noise(rng);
    }
}

// XOR: label 1 when x1 * x2 > 0; not linearly separable.
void xor_points(int n, uint64_t seed, Matrix& x, std::vector<int>& y) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(-1, 1);
    x = Matrix(n, 2);
    y.assign(n, 0);
    for (int i = 0; i < n; i++) {
        double a = u(rng), b = u(rng);
        x.at(i, 0) = a;
        x.at(i, 1) = b;
        y[i] = a * b > 0;
    }
}

double training_accuracy(const std::vector<double>& scores, const std::vector<int>& y) {
    int right = 0;
    for (size_t i = 0; i < y.size(); i++) right += (scores[i] >= 0) == (y[i] == 1);
    return double(right) / double(y.size());
}

}  // namespace

// --- classifiers ---------------------------------------------------------------

TEST_CASE("logistic regression separates two blobs; log-odds > 0 means member") {
    Matrix x;
    std::vector<int> y;
    blobs(200, 2.0, 1, x, y);
    BinaryClassifier lr;
    ClassifierSpec spec = logistic_regression_spec(3);
    spec.epochs = 100;  // 200 examples: 400 Adam steps
    spec.learning_rate = 1e-2;
    lr.fit(x, y, spec);
    std::vector<double> s = lr.score(x);
    CHECK(training_accuracy(s, y) == 1.0);
    Matrix probe(2, 2);
    probe.at(0, 0) = probe.at(0, 1) = 2.0;   // the member blob
    probe.at(1, 0) = probe.at(1, 1) = -2.0;  // the non-member blob
    std::vector<double> p = lr.score(probe);
    CHECK(p[0] > 0);
    CHECK(p[1] < 0);
    CHECK(lr.loss_history().back() < lr.loss_history().front());
    // Held-out points from the same blobs.
    Matrix xt;
    std::vector<int> yt;
    blobs(200, 2.0, 2, xt, yt);
    CHECK(roc_auc(lr.score(xt), yt) == 1.0);
}

TEST_CASE("inputs are standardised: a feature at offset 1e6, scale 1e4 is learned as easily") {
    Matrix x;
    std::vector<int> y;
    blobs(200, 1.0, 4, x, y);
    Matrix big = x;
    for (double& v : big.values) v = 1e6 + 1e4 * v;
    BinaryClassifier a, b;
    ClassifierSpec spec = logistic_regression_spec(5);
    spec.epochs = 100;
    spec.learning_rate = 1e-2;
    a.fit(x, y, spec);
    b.fit(big, y, spec);
    CHECK(roc_auc(b.score(big), y) == doctest::Approx(roc_auc(a.score(x), y)).epsilon(1e-9));
    CHECK(roc_auc(b.score(big), y) > 0.95);
}

TEST_CASE("the MLP learns XOR, which logistic regression cannot") {
    Matrix x, xt;
    std::vector<int> y, yt;
    xor_points(400, 6, x, y);
    xor_points(400, 7, xt, yt);
    ClassifierSpec spec = mlp_spec({16, 16}, 11);
    spec.epochs = 150;
    spec.learning_rate = 1e-2;
    BinaryClassifier mlp, lr;
    mlp.fit(x, y, spec);
    ClassifierSpec lspec = logistic_regression_spec(11);
    lspec.epochs = 150;
    lspec.learning_rate = 1e-2;
    lr.fit(x, y, lspec);
    double mlp_auc = roc_auc(mlp.score(xt), yt), lr_auc = roc_auc(lr.score(xt), yt);
    MESSAGE("XOR held-out AUC: MLP " << mlp_auc << ", logistic regression " << lr_auc);
    CHECK(mlp_auc > 0.95);
    CHECK(lr_auc < 0.65);
}

TEST_CASE("the backward pass matches central finite differences, parameter by parameter") {
    Matrix x;
    std::vector<int> y;
    xor_points(40, 12, x, y);
    for (std::vector<int> hidden : {std::vector<int>{}, std::vector<int>{5}, std::vector<int>{6, 4}}) {
        CAPTURE(hidden.size());
        ClassifierSpec spec = mlp_spec(hidden, 13);
        spec.epochs = 3;  // away from the initialisation, standardisation fitted
        BinaryClassifier m;
        m.fit(x, y, spec);
        std::vector<double> grad;
        m.loss_and_gradient(x, y, &grad);
        std::vector<double> p = m.parameters();
        REQUIRE(grad.size() == p.size());
        const double h = 1e-6;
        double worst = 0;
        for (size_t i = 0; i < p.size(); i++) {
            std::vector<double> q = p;
            q[i] = p[i] + h;
            m.set_parameters(q);
            double up = m.loss_and_gradient(x, y, nullptr);
            q[i] = p[i] - h;
            m.set_parameters(q);
            double down = m.loss_and_gradient(x, y, nullptr);
            double numeric = (up - down) / (2 * h);
            worst = std::max(worst, std::fabs(numeric - grad[i]) / std::max(1e-3, std::fabs(grad[i])));
        }
        m.set_parameters(p);
        CAPTURE(worst);
        CHECK(worst < 1e-5);
    }
}

TEST_CASE("training is deterministic for a seed and changes with it") {
    Matrix x;
    std::vector<int> y;
    xor_points(300, 8, x, y);
    ClassifierSpec spec = mlp_spec({8}, 42);
    spec.epochs = 10;
    BinaryClassifier a, b, c;
    a.fit(x, y, spec);
    b.fit(x, y, spec);
    spec.seed = 43;
    c.fit(x, y, spec);
    CHECK(a.score(x) == b.score(x));  // bit for bit
    CHECK(a.score(x) != c.score(x));
    CHECK(a.loss_history() == b.loss_history());
}

TEST_CASE("classifier bad input") {
    Matrix x;
    std::vector<int> y;
    blobs(20, 1.0, 9, x, y);
    BinaryClassifier m;
    CHECK_THROWS_AS(m.score(x), std::logic_error);
    CHECK_THROWS_WITH_AS(m.fit(x, std::vector<int>(19, 0), logistic_regression_spec(0)),
                         doctest::Contains("20 rows but 19 labels"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(m.fit(x, std::vector<int>(20, 1), logistic_regression_spec(0)),
                         doctest::Contains("needs members and non-members"), std::invalid_argument);
    std::vector<int> bad = y;
    bad[3] = 2;
    CHECK_THROWS_AS(m.fit(x, bad, logistic_regression_spec(0)), std::invalid_argument);
    Matrix nan_x = x;
    nan_x.at(5, 1) = NAN;
    CHECK_THROWS_WITH_AS(m.fit(nan_x, y, logistic_regression_spec(0)), doctest::Contains("row 5 is not finite"),
                         std::invalid_argument);
    CHECK_THROWS_AS(m.fit(Matrix(0, 2), {}, logistic_regression_spec(0)), std::invalid_argument);
    ClassifierSpec s = mlp_spec({0}, 0);
    CHECK_THROWS_AS(m.fit(x, y, s), std::invalid_argument);
    s = logistic_regression_spec(0);
    s.learning_rate = NAN;
    CHECK_THROWS_AS(m.fit(x, y, s), std::invalid_argument);
    m.fit(x, y, logistic_regression_spec(0));
    CHECK_THROWS_WITH_AS(m.score(Matrix(3, 5)), doctest::Contains("trained on 2"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(m.set_parameters({1.0}), doctest::Contains("1 values for 3 parameters"),
                         std::invalid_argument);
}

// --- simulated model outputs -----------------------------------------------------

namespace {

// What a trained classifier emits, in miniature: 10 classes, logits N(0, 1)
// plus a true-class boost ~ N(boost_mean, 1). A model fits its members better,
// so members get a larger boost_mean than non-members.
struct SimulatedOutputs {
    std::vector<float> logits;  // n x 10
    std::vector<int> labels, is_member;
};
constexpr int kClasses = 10;

SimulatedOutputs simulate_outputs(int n_per_side, double member_boost, double nonmember_boost, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0, 1);
    SimulatedOutputs o;
    for (int i = 0; i < 2 * n_per_side; i++) {
        int member = i % 2;
        int y = int(rng() % kClasses);
        for (int c = 0; c < kClasses; c++) o.logits.push_back(float(normal(rng)));
        o.logits[o.logits.size() - kClasses + y] += float((member ? member_boost : nonmember_boost) + normal(rng));
        o.labels.push_back(y);
        o.is_member.push_back(member);
    }
    return o;
}

// Every shadow-trained attack on simulated outputs: trained / thresholded on
// `shadow`, scored on `target`. Returns (name, target AUC, target balanced accuracy).
struct AttackResult {
    std::string name;
    double auc, balanced_accuracy;
    int64_t members, nonmembers;
};

std::vector<AttackResult> run_every_output_attack(const SimulatedOutputs& shadow, const SimulatedOutputs& target) {
    std::vector<AttackResult> out;
    auto add = [&](const std::string& name, const std::vector<double>& s, double threshold) {
        AttackMetrics m = evaluate_attack(s, target.is_member, threshold);
        out.push_back({name, m.auc, m.balanced_accuracy, m.n_members, m.n_nonmembers});
    };
    for (MetricAttack a : all_metric_attacks()) {
        std::vector<double> sh = metric_scores(a, shadow.logits, kClasses, shadow.labels);
        std::vector<double> tg = metric_scores(a, target.logits, kClasses, target.labels);
        add(metric_attack_name(a) + " (global)", tg, select_threshold(sh, shadow.is_member));
        std::vector<double> t = per_class_thresholds(sh, shadow.labels, shadow.is_member, kClasses);
        add(metric_attack_name(a) + " (per class)", subtract_class_thresholds(tg, target.labels, t), 0.0);
    }
    Matrix shadow_probs = softmax_matrix(shadow.logits, kClasses);
    Matrix target_probs = softmax_matrix(target.logits, kClasses);
    ClassifierSpec lr = logistic_regression_spec(1), mlp = mlp_spec({32}, 1);
    lr.epochs = mlp.epochs = 30;
    for (const auto& [name, spec] : {std::pair<std::string, ClassifierSpec>{"shokri lr", lr}, {"shokri mlp", mlp}}) {
        ShokriAttack attack;
        attack.fit(shadow_probs, shadow.labels, shadow.is_member, spec);
        add(name, attack.score(target_probs, target.labels), 0.0);
    }
    BinaryClassifier seed000;
    ClassifierSpec s000 = mlp_spec({64, 32}, 1);
    s000.epochs = 30;
    seed000.fit(seed000_feature_matrix(shadow.logits, kClasses), shadow.is_member, s000);
    add("seed000 mlp", seed000.score(seed000_feature_matrix(target.logits, kClasses)), 0.0);
    return out;
}

}  // namespace

TEST_CASE("null sanity: members and non-members from one distribution -> every attack at chance") {
    // 1,000 + 1,000 target examples: the AUC of a useless attack has standard
    // error 0.0129, so 3 SE = 0.039; a balanced accuracy at a fixed threshold
    // has standard error <= 0.0112 (3 SE = 0.034). Fixed seeds: this either
    // always passes or always fails; a failure means an attack sees labels it
    // should not, not bad luck.
    SimulatedOutputs shadow = simulate_outputs(1000, 2.0, 2.0, 100);
    SimulatedOutputs target = simulate_outputs(1000, 2.0, 2.0, 200);
    std::vector<AttackResult> results = run_every_output_attack(shadow, target);
    CHECK(results.size() == 13);
    for (const AttackResult& r : results) {
        CAPTURE(r.name);
        CAPTURE(r.auc);
        CAPTURE(r.balanced_accuracy);
        double se = null_auc_se(r.members, r.nonmembers);
        CHECK(std::fabs(r.auc - 0.5) < 3 * se);
        CHECK(std::fabs(r.balanced_accuracy - 0.5) < 0.034);
    }
}

TEST_CASE("separated: members fitted better -> every attack finds it") {
    // Members' true-class boost 3.5 vs 1.5: AUC above 0.65 and balanced
    // accuracy above 0.6 for every attack (observed AUC 0.70-0.82: correctness,
    // a single ROC point, and Shokri's logistic regression on saturated
    // probabilities are the weakest; the null test's 3 SE is 0.039).
    SimulatedOutputs shadow = simulate_outputs(1000, 3.5, 1.5, 300);
    SimulatedOutputs target = simulate_outputs(1000, 3.5, 1.5, 400);
    for (const AttackResult& r : run_every_output_attack(shadow, target)) {
        CAPTURE(r.name);
        MESSAGE(r.name << ": AUC " << r.auc << ", balanced accuracy " << r.balanced_accuracy);
        CHECK(r.auc > 0.65);
        CHECK(r.balanced_accuracy > 0.6);
    }
}

TEST_CASE("seed 000's protocol (trained on the target's own outputs): stratified held-out split") {
    SimulatedOutputs sep = simulate_outputs(500, 3.5, 1.5, 600);
    Matrix x = seed000_feature_matrix(sep.logits, kClasses);
    ClassifierSpec spec = mlp_spec({32}, 3);
    spec.epochs = 30;
    HeldOutScores h = train_on_target_outputs(x, sep.is_member, spec, 0.2);
    REQUIRE(h.rows.size() == 200);  // 20% of 500 members + 20% of 500 non-members
    REQUIRE(h.score.size() == 200);
    CHECK(std::is_sorted(h.rows.begin(), h.rows.end()));
    CHECK(std::adjacent_find(h.rows.begin(), h.rows.end()) == h.rows.end());
    std::vector<int> held_member = pick(sep.is_member, h.rows);
    CHECK(std::count(held_member.begin(), held_member.end(), 1) == 100);
    CHECK(roc_auc(h.score, held_member) > 0.7);
    // Same seed, same split and scores; null outputs: chance (3 SE = 0.087 at 100 + 100).
    CHECK(train_on_target_outputs(x, sep.is_member, spec, 0.2).score == h.score);
    SimulatedOutputs null = simulate_outputs(500, 2.0, 2.0, 700);
    HeldOutScores hn = train_on_target_outputs(seed000_feature_matrix(null.logits, kClasses), null.is_member, spec, 0.2);
    CHECK(std::fabs(roc_auc(hn.score, pick(null.is_member, hn.rows)) - 0.5) < 3 * null_auc_se(100, 100));
    CHECK_THROWS_AS(train_on_target_outputs(x, sep.is_member, spec, 1.0), std::invalid_argument);
    CHECK_THROWS_AS(train_on_target_outputs(x, sep.is_member, spec, NAN), std::invalid_argument);
    std::vector<int> one_nonmember(sep.is_member.size(), 1);
    one_nonmember[0] = 0;
    CHECK_THROWS_WITH_AS(train_on_target_outputs(x, one_nonmember, spec, 0.2), doctest::Contains("at least 2 non-members"),
                         std::invalid_argument);
}

TEST_CASE("Shokri attack: a class without shadow non-members falls back to the global model, and says so") {
    SimulatedOutputs s = simulate_outputs(200, 2, 2, 5);
    Matrix probs = softmax_matrix(s.logits, kClasses);
    std::vector<int> m = s.is_member;
    for (size_t i = 0; i < m.size(); i++)
        if (s.labels[i] == 3) m[i] = 1;  // class 3: members only
    ShokriAttack strict;
    CHECK_THROWS_WITH_AS(strict.fit(probs, s.labels, m, logistic_regression_spec(0)), doctest::Contains("class 3"),
                         std::invalid_argument);
    ShokriAttack a;
    a.fit(probs, s.labels, m, logistic_regression_spec(0), true);
    CHECK(a.fallback_classes() == std::vector<int>{3});
    // The fallback class is scored by one model trained on every row (seed
    // + k): the same scores as a BinaryClassifier fitted that way by hand;
    // every other class by its own model (seed + c).
    BinaryClassifier global;
    global.fit(probs, m, logistic_regression_spec(kClasses));
    const std::vector<double> got = a.score(probs, s.labels), want_global = global.score(probs);
    int n3 = 0;
    for (size_t i = 0; i < got.size(); i++)
        if (s.labels[i] == 3) {
            CHECK(got[i] == want_global[i]);
            n3++;
        }
    CHECK(n3 > 0);
    std::vector<int64_t> rows5;
    std::vector<int> y5;
    for (size_t i = 0; i < s.labels.size(); i++)
        if (s.labels[i] == 5) rows5.push_back(int64_t(i)), y5.push_back(m[i]);
    Matrix p5(int64_t(rows5.size()), probs.cols);
    for (size_t r = 0; r < rows5.size(); r++)
        for (int64_t c = 0; c < probs.cols; c++) p5.at(int64_t(r), c) = probs.at(rows5[r], c);
    BinaryClassifier own5;
    own5.fit(p5, y5, logistic_regression_spec(5));
    const std::vector<double> want5 = own5.score(p5);
    for (size_t r = 0; r < rows5.size(); r++) CHECK(got[size_t(rows5[r])] == want5[r]);
    // Every class fitted: no fallback.
    ShokriAttack full;
    full.fit(probs, s.labels, s.is_member, logistic_regression_spec(0), true);
    CHECK(full.fallback_classes().empty());
}

TEST_CASE("Shokri attack: bad input") {
    SimulatedOutputs s = simulate_outputs(50, 2, 2, 5);
    Matrix probs = softmax_matrix(s.logits, kClasses);
    ShokriAttack a;
    CHECK_THROWS_AS(a.score(probs, s.labels), std::logic_error);
    std::vector<int> only_class_0(s.labels.size(), 0);
    CHECK_THROWS_WITH_AS(a.fit(probs, only_class_0, s.is_member, logistic_regression_spec(0)),
                         doctest::Contains("no shadow examples of class 1"), std::invalid_argument);
    CHECK_THROWS_AS(a.fit(probs, s.labels, std::vector<int>(3, 0), logistic_regression_spec(0)),
                    std::invalid_argument);
    std::vector<int> bad = s.labels;
    bad[0] = 10;
    CHECK_THROWS_WITH_AS(a.fit(probs, bad, s.is_member, logistic_regression_spec(0)),
                         doctest::Contains("label 10 of row 0"), std::invalid_argument);
    a.fit(probs, s.labels, s.is_member, logistic_regression_spec(0));
    CHECK(a.n_classes() == 10);
    CHECK_THROWS_AS(a.score(Matrix(2, 3), {0, 1}), std::invalid_argument);
}

// --- LiRA ------------------------------------------------------------------------

TEST_CASE("LiRA by hand: 5 models, 2 examples, target 4 excluded from its references") {
    // Example 0: phi (2, 3, 0, 1, 5), membership (1, 1, 0, 0, 1).
    //   References (models 0-3): IN {2, 3}: mean 2.5, sd sqrt(.5); OUT {0, 1}: mean .5, sd sqrt(.5).
    //   offline = (5 - .5) / sqrt(.5) = 6.3640
    //   online  = [(5 - .5)^2 - (5 - 2.5)^2] / (2 * .5) = (20.25 - 6.25) / 1 = 14
    //   (with the target counted, IN would be {2, 3, 5}: another answer.)
    // Example 1: phi (0, 4, 2, 2, 9), membership (0, 1, 1, 0, 0).
    //   IN {4, 2}: mean 3, sd sqrt(2); OUT {0, 2}: mean 1, sd sqrt(2).
    //   offline = 8 / sqrt(2) = 5.6569;  online = (64 - 36) / 4 = 7
    // Fixed variance: pooled IN = (.5 + 2) / (1 + 1) = 1.25, pooled OUT = 1.25.
    //   offline: 4.5 / sqrt(1.25) = 4.0249, 8 / sqrt(1.25) = 7.1554
    //   online:  14 / (2 * 1.25) = 5.6,    28 / (2 * 1.25) = 11.2
    Matrix phi(5, 2);
    const double v[5][2] = {{2, 0}, {3, 4}, {0, 2}, {1, 2}, {5, 9}};
    const int in[5][2] = {{1, 0}, {1, 1}, {0, 1}, {0, 0}, {1, 0}};
    std::vector<int> membership;
    for (int m = 0; m < 5; m++)
        for (int j = 0; j < 2; j++) {
            phi.at(m, j) = v[m][j];
            membership.push_back(in[m][j]);
        }
    auto scores = [&](bool online, bool fixed) {
        LiraScores s = lira_scores(phi, membership, 4, LiraOptions{online, fixed});
        CHECK(s.scored == std::vector<int64_t>{0, 1});
        return s.score;
    };
    std::vector<double> off = scores(false, false), on = scores(true, false);
    std::vector<double> off_fixed = scores(false, true), on_fixed = scores(true, true);
    CHECK(off[0] == doctest::Approx(4.5 / std::sqrt(0.5)));
    CHECK(off[1] == doctest::Approx(8 / std::sqrt(2.0)));
    CHECK(on[0] == doctest::Approx(14.0));
    CHECK(on[1] == doctest::Approx(7.0));
    CHECK(off_fixed[0] == doctest::Approx(4.5 / std::sqrt(1.25)));
    CHECK(off_fixed[1] == doctest::Approx(8 / std::sqrt(1.25)));
    CHECK(on_fixed[0] == doctest::Approx(5.6));
    CHECK(on_fixed[1] == doctest::Approx(11.2));
}

TEST_CASE("LiRA by hand with unequal IN and OUT spreads: the -log(sd) term of the Gaussian density counts") {
    // 5 models, 1 example, target 0 with phi 1. IN references {2, 4}: mean 3,
    // sd sqrt(2); OUT references {0, 0.5}: mean 0.25, sd sqrt(1/8).
    //   log N(1; 3, sqrt 2)      = -log sqrt 2 - (1 - 3)^2 / (2 * 2)        = -0.5 ln 2 - 1
    //   log N(1; .25, sqrt(1/8)) = -log sqrt(1/8) - (.75)^2 / (2 / 8)      = 1.5 ln 2 - 2.25
    //   online = 1.25 - 2 ln 2 = -0.13629436...  (without the -log(sd) terms: 1.25)
    //   offline = .75 / sqrt(1/8) = .75 sqrt 8 = 2.12132034...
    // One example: the pooled (fixed) spreads are the same as its own.
    Matrix phi(5, 1);
    phi.values = {1, 2, 4, 0, 0.5};
    const std::vector<int> membership = {1, 1, 1, 0, 0};
    for (bool fixed : {false, true}) {
        INFO("fixed variance " << fixed);
        LiraScores on = lira_scores(phi, membership, 0, LiraOptions{true, fixed});
        LiraScores off = lira_scores(phi, membership, 0, LiraOptions{false, fixed});
        REQUIRE(on.scored == std::vector<int64_t>{0});
        CHECK(on.score[0] == doctest::Approx(1.25 - 2 * std::log(2.0)).epsilon(1e-14));
        CHECK(off.score[0] == doctest::Approx(0.75 * std::sqrt(8.0)).epsilon(1e-14));
    }
}

TEST_CASE("LiRA: an example without IN references is unscored online, scored offline") {
    // 3 models, 2 examples; example 1 is OUT for every model.
    Matrix phi(3, 2);
    phi.values = {1, 0, 2, 1, 3, 2};
    std::vector<int> membership = {1, 0, 0, 0, 1, 0};
    LiraScores on = lira_scores(phi, membership, 0, LiraOptions{true, false});
    // Target 0. Example 0: IN {3}, OUT {2}, one reference each, so each kind
    // falls back to the pooled sd; no example has 2 IN references, so there
    // is no pooled IN sd and example 0 is unscored online. Example 1: no IN.
    CHECK(on.scored.empty());
    CHECK(std::isnan(on.score[0]));
    CHECK(std::isnan(on.score[1]));
    LiraScores off = lira_scores(phi, membership, 0, LiraOptions{false, false});
    // OUT of example 1 = {1, 2}: mean 1.5, sd sqrt(.5), the pooled OUT sd too.
    CHECK(off.scored == std::vector<int64_t>{0, 1});
    CHECK(off.score[0] == doctest::Approx((1 - 2) / std::sqrt(0.5)));
    CHECK(off.score[1] == doctest::Approx(-1.5 / std::sqrt(0.5)));
    CHECK_THROWS_AS(roc_auc(on.score, {1, 0}), std::invalid_argument);  // NaN refused
    CHECK(pick(off.score, {1}) == std::vector<double>{off.score[1]});
    CHECK(pick(std::vector<int>{7, 8}, {1, 0}) == std::vector<int>{8, 7});
    CHECK_THROWS_AS(pick(std::vector<int>{7, 8}, {2}), std::invalid_argument);
}

namespace {

// M models, each trained on a random half of n examples; phi(m, j) =
// mu_j + delta * in(m, j) + N(0, 1), with per-example difficulty mu_j ~
// N(0, 3^2). LiRA's per-example calibration removes mu_j; a global threshold
// on phi cannot.
void gaussian_lira_world(int M, int n, double delta, uint64_t seed, Matrix& phi, std::vector<int>& membership) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0, 1);
    std::vector<double> mu(n);
    for (double& m : mu) m = 3 * normal(rng);
    phi = Matrix(M, n);
    membership.assign(size_t(M) * n, 0);
    std::vector<int> idx(n);
    for (int m = 0; m < M; m++) {
        std::iota(idx.begin(), idx.end(), 0);
        for (int i = n - 1; i > 0; i--) std::swap(idx[i], idx[rng() % uint64_t(i + 1)]);
        for (int i = 0; i < n / 2; i++) membership[size_t(m) * n + idx[i]] = 1;
        for (int j = 0; j < n; j++) phi.at(m, j) = mu[j] + delta * membership[size_t(m) * n + j] + normal(rng);
    }
}

double standard_normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

}  // namespace

TEST_CASE("LiRA on synthetic Gaussians recovers the known AUC, and is at chance under the null") {
    const int M = 33, n = 4000;
    Matrix phi;
    std::vector<int> membership;
    gaussian_lira_world(M, n, 1.0, 77, phi, membership);
    // With the true mu_j every variant ranks by phi - mu_j: members ~ N(1, 1),
    // non-members ~ N(0, 1), AUC = Phi(1 / sqrt 2) = 0.7602. Estimating mu_j
    // from ~16 references adds variance 1/16 to each score: Phi(1 / sqrt(2 + 1/8))
    // = 0.7534. Raw phi (a global threshold) only reaches Phi(1 / sqrt(2 + 18)) = 0.588.
    double expected = standard_normal_cdf(1 / std::sqrt(2.0 + 1.0 / 8));
    for (int target : {0, 17}) {
        std::vector<int> is_member(membership.begin() + size_t(target) * n, membership.begin() + size_t(target + 1) * n);
        std::vector<double> raw(phi.row(target), phi.row(target) + n);
        double raw_auc = roc_auc(raw, is_member);
        CHECK(raw_auc == doctest::Approx(standard_normal_cdf(1 / std::sqrt(20.0))).epsilon(0.05));
        for (bool online : {true, false})
            for (bool fixed : {true, false}) {
                LiraScores s = lira_scores(phi, membership, target, LiraOptions{online, fixed});
                REQUIRE(s.scored.size() == size_t(n));  // 32 references: every example has IN and OUT
                double auc = roc_auc(s.score, is_member);
                CAPTURE(target);
                CAPTURE(online);
                CAPTURE(fixed);
                CAPTURE(auc);
                CHECK(std::fabs(auc - expected) < 0.025);  // ~3 SE at n = 4000
                CHECK(auc > raw_auc + 0.12);
            }
    }
    // Null: IN and OUT identical (delta = 0) -> chance for every variant.
    gaussian_lira_world(M, n, 0.0, 78, phi, membership);
    std::vector<int> is_member(membership.begin(), membership.begin() + n);
    double se = null_auc_se(n / 2, n / 2);  // 0.0091
    for (bool online : {true, false})
        for (bool fixed : {true, false}) {
            LiraScores s = lira_scores(phi, membership, 0, LiraOptions{online, fixed});
            double auc = roc_auc(s.score, is_member);
            CAPTURE(online);
            CAPTURE(fixed);
            CAPTURE(auc);
            CHECK(std::fabs(auc - 0.5) < 3 * se);
        }
}

TEST_CASE("LiRA: per-example variance wins when examples differ in spread") {
    // Half the examples are noisy (sd 4), half quiet (sd 0.25), same shift 1.
    // Per-example variance down-weights the noisy ones; a global variance
    // cannot. (The paper's advice for few shadows is the other regime.)
    const int M = 65, n = 2000;
    std::mt19937_64 rng(5);
    std::normal_distribution<double> normal(0, 1);
    Matrix phi(M, n);
    std::vector<int> membership(size_t(M) * n);
    for (int m = 0; m < M; m++)
        for (int j = 0; j < n; j++) {
            int in = int(rng() % 2);
            membership[size_t(m) * n + j] = in;
            double sd = j % 2 ? 4.0 : 0.25;
            phi.at(m, j) = in * 1.0 + sd * normal(rng);
        }
    std::vector<int> is_member(membership.begin(), membership.begin() + n);
    double per_example = roc_auc(lira_scores(phi, membership, 0, LiraOptions{false, false}).score, is_member);
    double fixed = roc_auc(lira_scores(phi, membership, 0, LiraOptions{false, true}).score, is_member);
    MESSAGE("offline AUC, per-example variance " << per_example << ", fixed " << fixed);
    CHECK(per_example > fixed + 0.05);
}

TEST_CASE("LiRA bad input") {
    Matrix phi(3, 2, 0.5);
    std::vector<int> membership = {1, 0, 0, 1, 1, 0};
    CHECK_THROWS_WITH_AS(lira_scores(Matrix(1, 2), {1, 0}, 0, {}), doctest::Contains("at least 2 models"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(lira_scores(phi, {1, 0}, 0, {}), doctest::Contains("3 models x 2 examples"),
                         std::invalid_argument);
    CHECK_THROWS_AS(lira_scores(phi, membership, 3, {}), std::invalid_argument);
    CHECK_THROWS_AS(lira_scores(phi, membership, -1, {}), std::invalid_argument);
    std::vector<int> bad = membership;
    bad[4] = 2;
    CHECK_THROWS_WITH_AS(lira_scores(phi, bad, 0, {}), doctest::Contains("model 2, example 0 is 2"),
                         std::invalid_argument);
    Matrix nan_phi = phi;
    nan_phi.at(1, 1) = NAN;
    CHECK_THROWS_WITH_AS(lira_scores(nan_phi, membership, 0, {}), doctest::Contains("not finite"),
                         std::invalid_argument);
}
