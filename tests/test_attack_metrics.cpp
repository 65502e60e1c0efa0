// test_attack_metrics.cpp: ROC, AUC, TPR at low FPR and threshold metrics
// (attack/metrics.h) against cases worked out by hand, and their conventions.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <unistd.h>

#include "attack/metrics.h"
#include "attack/report.h"

using namespace mmia;

namespace {

// The hand-worked example. Members (1) score {0.9, 0.8, 0.7, 0.6}; non-members
// (0) score {0.8, 0.6, 0.5, 0.3}; two member/non-member ties (0.8 and 0.6).
//
// Thresholds in decreasing order ("member iff score >= t"):
//   t      called members          TP FP   FPR   TPR   TPR-FPR
//   +inf   -                        0  0   0     0     0
//   0.9    m.9                      1  0   0     .25   .25
//   0.8    + m.8 n.8 (tie)          2  1   .25   .5    .25
//   0.7    + m.7                    3  1   .25   .75   .5   <- best, first
//   0.6    + m.6 n.6 (tie)          4  2   .5    1     .5
//   0.5    + n.5                    4  3   .75   1     .25
//   0.3    + n.3                    4  4   1     1     0
// AUC by pairs (member beats non-member = 1, tie = 1/2), out of 16:
//   m.9: 4;  m.8: 3 + 1/2;  m.7: 3;  m.6: 2 + 1/2   ->  13 / 16 = 0.8125.
// Trapezoids over the ROC: 0 + .25*.375 + 0 + .25*.875 + .25 + .25 = 0.8125.
const std::vector<double> kScores = {0.9, 0.8, 0.8, 0.7, 0.6, 0.6, 0.5, 0.3};
const std::vector<int> kMember = {1, 1, 0, 1, 0, 1, 0, 0};

double pairwise_auc(const std::vector<double>& s, const std::vector<int>& m) {
    double wins = 0, pairs = 0;
    for (size_t i = 0; i < s.size(); i++)
        for (size_t j = 0; j < s.size(); j++)
            if (m[i] == 1 && m[j] == 0) {
                pairs += 1;
                wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
            }
    return wins / pairs;
}

double trapezoid_area(const std::vector<RocPoint>& roc) {
    double a = 0;
    for (size_t i = 1; i < roc.size(); i++)
        a += (roc[i].fpr - roc[i - 1].fpr) * (roc[i].tpr + roc[i - 1].tpr) / 2;
    return a;
}

}  // namespace

TEST_CASE("ROC curve of the hand-worked example, ties moving together") {
    std::vector<RocPoint> roc = roc_curve(kScores, kMember);
    const double expect[][3] = {{INFINITY, 0, 0},   {0.9, 0, 0.25}, {0.8, 0.25, 0.5}, {0.7, 0.25, 0.75},
                                {0.6, 0.5, 1.0},    {0.5, 0.75, 1}, {0.3, 1, 1}};
    REQUIRE(roc.size() == 7);
    for (size_t i = 0; i < roc.size(); i++) {
        CAPTURE(i);
        CHECK(roc[i].threshold == expect[i][0]);
        CHECK(roc[i].fpr == doctest::Approx(expect[i][1]));
        CHECK(roc[i].tpr == doctest::Approx(expect[i][2]));
    }
}

TEST_CASE("AUC of the hand-worked example is 13/16, by ranks, pairs and trapezoids") {
    CHECK(roc_auc(kScores, kMember) == doctest::Approx(13.0 / 16));
    CHECK(pairwise_auc(kScores, kMember) == doctest::Approx(13.0 / 16));
    CHECK(trapezoid_area(roc_curve(kScores, kMember)) == doctest::Approx(13.0 / 16));
}

TEST_CASE("advantage, TPR at FPR and the shadow-chosen threshold of the hand-worked example") {
    std::vector<RocPoint> roc = roc_curve(kScores, kMember);
    CHECK(max_advantage(roc) == doctest::Approx(0.5));
    CHECK(tpr_at_fpr(roc, 0.0) == doctest::Approx(0.25));   // only the point at 0.9
    CHECK(tpr_at_fpr(roc, 0.01) == doctest::Approx(0.25));
    CHECK(tpr_at_fpr(roc, 0.25) == doctest::Approx(0.75));  // the point at 0.7
    CHECK(tpr_at_fpr(roc, 0.49) == doctest::Approx(0.75));  // no interpolation towards (0.5, 1)
    CHECK(tpr_at_fpr(roc, 1.0) == doctest::Approx(1.0));
    // First best point is t = 0.7; midway to the next lower score 0.6.
    CHECK(select_threshold(kScores, kMember) == doctest::Approx(0.65));
    AttackMetrics m = evaluate_attack(kScores, kMember, 0.65);
    // At 0.65: TP = 3 (0.9, 0.8, 0.7), FP = 1 (0.8), TN = 3, FN = 1.
    CHECK(m.n_members == 4);
    CHECK(m.n_nonmembers == 4);
    CHECK(m.balanced_accuracy == doctest::Approx(0.75));
    CHECK(m.accuracy == doctest::Approx(0.75));
    CHECK(m.precision == doctest::Approx(0.75));
    CHECK(m.recall == doctest::Approx(0.75));
    CHECK(m.fpr == doctest::Approx(0.25));
    CHECK(m.auc == doctest::Approx(0.8125));
    CHECK(m.advantage == doctest::Approx(0.5));
    CHECK(m.tpr_at_1pct_fpr == doctest::Approx(0.25));
}

TEST_CASE("a score equal to the threshold is called a member (>=)") {
    Confusion c = confusion_at(kScores, kMember, 0.8);  // 0.9, 0.8 (m), 0.8 (n)
    CHECK(c.tp == 2);
    CHECK(c.fp == 1);
    CHECK(c.tn == 3);
    CHECK(c.fn == 2);
    CHECK(precision(c) == doctest::Approx(2.0 / 3));
    CHECK(recall(c) == doctest::Approx(0.5));
    CHECK(balanced_accuracy(c) == doctest::Approx((0.5 + 0.75) / 2));
    // Nobody called a member: precision is 0 by convention, not NaN.
    Confusion none = confusion_at(kScores, kMember, 1.0);
    CHECK(none.tp + none.fp == 0);
    CHECK(precision(none) == 0.0);
}

TEST_CASE("TPR at 0.1% FPR with 1,000 non-members allows exactly one false positive") {
    // Non-members score 0..999. Members: three at 5000 (above everyone), two
    // at 998.5 (below the top non-member 999), five at -1 (below everyone).
    // ROC: t=5000 (0, .3); t=999 (.001, .3); t=998.5 (.001, .5); t=998 (.002, .5) ...
    std::vector<double> s;
    std::vector<int> m;
    for (int i = 0; i < 1000; i++) s.push_back(i), m.push_back(0);
    for (int i = 0; i < 3; i++) s.push_back(5000), m.push_back(1);
    for (int i = 0; i < 2; i++) s.push_back(998.5), m.push_back(1);
    for (int i = 0; i < 5; i++) s.push_back(-1), m.push_back(1);
    std::vector<RocPoint> roc = roc_curve(s, m);
    CHECK(tpr_at_fpr(roc, 0.0) == doctest::Approx(0.3));
    CHECK(tpr_at_fpr(roc, 0.001) == doctest::Approx(0.5));
    CHECK(tpr_at_fpr(roc, 0.01) == doctest::Approx(0.5));
    AttackMetrics em = evaluate_attack(s, m, 998.5);
    CHECK(em.tpr_at_01pct_fpr == doctest::Approx(0.5));
    CHECK(em.tpr_at_1pct_fpr == doctest::Approx(0.5));
    CHECK(em.precision == doctest::Approx(5.0 / 6));
}

TEST_CASE("positive-class and direction conventions") {
    // Perfect separation, members above: AUC 1, advantage 1.
    std::vector<double> s = {3, 2, 1, 0};
    std::vector<int> m = {1, 1, 0, 0};
    CHECK(roc_auc(s, m) == 1.0);
    CHECK(max_advantage(roc_curve(s, m)) == 1.0);
    // The same scores with members below: AUC 0 (the attack is anti-correlated,
    // metrics do not silently flip it), advantage 0.
    std::vector<int> flipped = {0, 0, 1, 1};
    CHECK(roc_auc(s, flipped) == 0.0);
    CHECK(max_advantage(roc_curve(s, flipped)) == 0.0);
    // Negating scores or swapping labels gives 1 - AUC.
    std::vector<double> neg;
    for (double v : kScores) neg.push_back(-v);
    CHECK(roc_auc(neg, kMember) == doctest::Approx(1 - 0.8125));
    // All tied: AUC 0.5; the threshold calls nobody a member.
    std::vector<double> same(4, 7.0);
    CHECK(roc_auc(same, m) == 0.5);
    double t = select_threshold(same, m);
    CHECK(t > 7.0);
    CHECK(std::isfinite(t));
    CHECK(confusion_at(same, m, t).tp + confusion_at(same, m, t).fp == 0);
}

TEST_CASE("AUC equals the pairwise Mann-Whitney count and the ROC area on random data with ties") {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> normal(0, 1);
    for (int trial = 0; trial < 20; trial++) {
        int n = 50 + trial * 13;
        std::vector<double> s(n);
        std::vector<int> m(n);
        for (int i = 0; i < n; i++) {
            m[i] = (rng() % 3) == 0;  // unbalanced on purpose
            // Rounded so that about a third of the scores tie with another.
            s[i] = std::round((normal(rng) + 0.7 * m[i]) * 4) / 4;
        }
        m[0] = 1, m[1] = 0;
        CAPTURE(trial);
        double a = roc_auc(s, m);
        CHECK(a == doctest::Approx(pairwise_auc(s, m)).epsilon(1e-12));
        CHECK(a == doctest::Approx(trapezoid_area(roc_curve(s, m))).epsilon(1e-12));
    }
}

TEST_CASE("mean and sample standard deviation over repeats") {
    MeanStd r = mean_std({1, 2, 3, 4});
    CHECK(r.mean == doctest::Approx(2.5));
    CHECK(r.std == doctest::Approx(std::sqrt(5.0 / 3)));  // squares 2.25+.25+.25+2.25 = 5, over n-1 = 3
    CHECK(r.n == 4);
    MeanStd one = mean_std({0.7});
    CHECK(one.mean == doctest::Approx(0.7));
    CHECK(one.std == 0.0);
    CHECK_THROWS_AS(mean_std({}), std::invalid_argument);
    CHECK_THROWS_WITH_AS(mean_std({1.0, NAN}), doctest::Contains("not finite"), std::invalid_argument);
    CHECK_THROWS_AS(mean_std({1.0, INFINITY}), std::invalid_argument);

    AttackMetrics a = evaluate_attack(kScores, kMember, 0.65);
    AttackMetrics b = a;
    b.auc = 0.6125;
    nlohmann::json j = summarize({a, b});
    CHECK(j["auc"]["mean"].get<double>() == doctest::Approx(0.7125));
    CHECK(j["auc"]["std"].get<double>() == doctest::Approx(std::sqrt(0.02)));
    CHECK(j["auc"]["n"].get<int>() == 2);
    CHECK(j["precision"]["std"].get<double>() == 0.0);
    nlohmann::json one_j = to_json(a);
    CHECK(one_j["tpr_at_01pct_fpr"].get<double>() == doctest::Approx(0.25));
    CHECK(one_j["threshold"].get<double>() == doctest::Approx(0.65));
}

TEST_CASE("score histogram by hand") {
    // Scores 0 .5 1 2 4 (m n m n m), 4 bins over [0, 4]: edges 0 1 2 3 4.
    // [0,1): 0 (m), .5 (n); [1,2): 1 (m); [2,3): 2 (n); [3,4]: 4 (m, the closed end).
    ScoreHistogram h = score_histogram({0, 0.5, 1, 2, 4}, {1, 0, 1, 0, 1}, 4);
    CHECK(h.edges == std::vector<double>{0, 1, 2, 3, 4});
    CHECK(h.members == std::vector<int64_t>{1, 1, 0, 1});
    CHECK(h.nonmembers == std::vector<int64_t>{1, 0, 1, 0});
    ScoreHistogram same = score_histogram({3, 3, 3}, {1, 1, 0}, 2);
    CHECK(same.edges == std::vector<double>{2.5, 3, 3.5});
    CHECK(same.members == std::vector<int64_t>{0, 2});
    CHECK(same.nonmembers == std::vector<int64_t>{0, 1});
    // Extreme but finite scores: no overflow in the span.
    ScoreHistogram wide = score_histogram({-1e308, 1e308}, {0, 1}, 2);
    CHECK(wide.members == std::vector<int64_t>{0, 1});
    CHECK(wide.nonmembers == std::vector<int64_t>{1, 0});
    CHECK_THROWS_AS(score_histogram({1, 2}, {1, 0}, 0), std::invalid_argument);
    CHECK_THROWS_AS(score_histogram({1, NAN}, {1, 0}, 3), std::invalid_argument);
}

TEST_CASE("bad input is refused with a message") {
    CHECK_THROWS_WITH_AS(roc_auc({0.1, 0.2}, {1}), doctest::Contains("2 scores but 1"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(roc_auc({}, {}), doctest::Contains("no examples"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(roc_auc({0.1, NAN}, {1, 0}), doctest::Contains("not finite"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(roc_auc({0.1, INFINITY}, {1, 0}), doctest::Contains("not finite"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(roc_auc({0.1, 0.2}, {1, 2}), doctest::Contains("must be 1 = member"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(roc_curve({0.1, 0.2}, {1, 1}), doctest::Contains("2 members and 0 non-members"),
                         std::invalid_argument);
    CHECK_THROWS_AS(select_threshold({0.1, 0.2}, {0, 0}), std::invalid_argument);
    CHECK_THROWS_AS(evaluate_attack({0.1, 0.2}, {1, 1}, 0.0), std::invalid_argument);
    CHECK_THROWS_AS(confusion_at({0.1, 0.2}, {1, 0}, NAN), std::invalid_argument);
    CHECK_THROWS_AS(tpr_at_fpr(roc_curve(kScores, kMember), 1.5), std::invalid_argument);
    CHECK_THROWS_AS(tpr_at_fpr(roc_curve(kScores, kMember), NAN), std::invalid_argument);
    CHECK_THROWS_AS(tpr_at_fpr({}, 0.01), std::invalid_argument);
    CHECK_THROWS_AS(summarize({}), std::invalid_argument);
}

TEST_CASE("ROC CSV: header, exact values, atomic replace, unwritable path") {
    char dir[] = "/tmp/mmia_roc_XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    std::string path = std::string(dir) + "/roc.csv";
    write_roc_csv(path, roc_curve(kScores, kMember));
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    std::string text = ss.str();
    CHECK(text.rfind("threshold,fpr,tpr\ninf,0,0\n0.90000000000000002,0,0.25\n", 0) == 0);
    CHECK(text.find("0.29999999999999999,1,1\n") != std::string::npos);
    // no temporary (<path>.tmp.<pid>) left behind
    CHECK(system(("ls '" + path + "'.tmp* >/dev/null 2>&1").c_str()) != 0);
    CHECK_THROWS_AS(write_roc_csv(std::string(dir) + "/no/such/dir/roc.csv", roc_curve(kScores, kMember)),
                    std::runtime_error);
    std::remove(path.c_str());
    rmdir(dir);
}

// A fixture where TPR at 0.1%, at 1% FPR and below 0.1% all differ (every
// other fixture has them equal, so a metric computed at the wrong level
// passed). 2,000 non-members score 0, 1, ..., 1999; 100 members:
//   30 at 5000 (above every non-member), 20 at 1998.5 (1 non-member above),
//   20 at 1990.5 (9 non-members above), 30 at 100.5 (1899 above).
// ROC points (FP, TP): (0, 30), (1, 30), (1, 50), (2, 50), ..., (9, 50), (9, 70), ..., (1899, 70), (1899, 100), ...
//   FPR <= 0.0004 (0 FP):  TPR 0.3
//   FPR <= 0.001  (2 FP):  TPR 0.5
//   FPR <= 0.01   (20 FP): TPR 0.7
// AUC by pairs: (30*2000 + 20*1999 + 20*1991 + 30*101) / (100*2000) = 142830 / 200000 = 0.71415.
TEST_CASE("TPR at 0.1% and at 1% FPR differ, and each level has its own value (hand-worked)") {
    std::vector<double> s;
    std::vector<int> m;
    for (int i = 0; i < 2000; i++) s.push_back(i), m.push_back(0);
    auto add = [&](int count, double score) {
        for (int i = 0; i < count; i++) s.push_back(score), m.push_back(1);
    };
    add(30, 5000), add(20, 1998.5), add(20, 1990.5), add(30, 100.5);
    auto roc = roc_curve(s, m);
    CHECK(tpr_at_fpr(roc, 0.0004) == 0.3);
    CHECK(tpr_at_fpr(roc, 0.0005) == 0.5);     // exactly 1 FP allowed: on the boundary
    CHECK(tpr_at_fpr(roc, 0.00049) == 0.3);    // just below it
    CHECK(tpr_at_fpr(roc, 0.001) == 0.5);
    CHECK(tpr_at_fpr(roc, 0.0045) == 0.7);     // 9 FP, on the boundary
    CHECK(tpr_at_fpr(roc, 0.00449) == 0.5);    // just below it
    CHECK(tpr_at_fpr(roc, 0.01) == 0.7);
    AttackMetrics a = evaluate_attack(s, m, 1990.5);
    CHECK(a.tpr_at_01pct_fpr == 0.5);
    CHECK(a.tpr_at_1pct_fpr == 0.7);
    CHECK(a.auc == doctest::Approx(0.71415).epsilon(1e-12));
    CHECK(a.auc == doctest::Approx(pairwise_auc(s, m)).epsilon(1e-12));
    // At threshold 1990.5: TP 70, FP 9 (1991..1999), FN 30, TN 1991.
    CHECK(a.recall == 0.7);
    CHECK(a.fpr == doctest::Approx(9.0 / 2000).epsilon(1e-15));
    CHECK(a.precision == doctest::Approx(70.0 / 79).epsilon(1e-15));
    CHECK(a.accuracy == doctest::Approx(2061.0 / 2100).epsilon(1e-15));
    CHECK(a.balanced_accuracy == doctest::Approx((0.7 + 1991.0 / 2000) / 2).epsilon(1e-15));
    // Advantage: max TPR - FPR over the ROC: at (9, 70): 0.7 - 0.0045 = 0.6955.
    CHECK(a.advantage == doctest::Approx(0.6955).epsilon(1e-12));
    CHECK(a.n_members == 100);
    CHECK(a.n_nonmembers == 2000);
}

// A placeholder never stands in for a number in the report: an attack that
// was not evaluated on any target (its scored examples held one class only)
// shows "n/a", and so does "strongest attack" when no attack has the number.
TEST_CASE("report: attacks without metrics are n/a, never -1 or another placeholder") {
    nlohmann::json ms = {{"mean", 0.9}, {"std", 0.0}, {"n", 1}};
    nlohmann::json unscored = {{"mean", 7.0}, {"std", 0.0}, {"n", 1}};
    nlohmann::json r = {
        {"config", {{"protocol", "lira"}, {"dataset", "mnist"}, {"ds", 10}, {"shadows", 2}, {"seed", 1}}},
        {"models",
         {{"cnn",
           {{"preset", "shokri"},
            {"targets",
             {{{"role", "model0"},
               {"attacks", {{"lira_online", {{"n_unscored", 7}, {"not_evaluated", "the scored examples hold no member"}}}}}}}},
            {"summary",
             {{"train_acc", ms}, {"test_acc", ms}, {"gap", ms}, {"attacks", {{"lira_online", {{"n_unscored", unscored}}}}}}}}}}}};
    const std::string md = markdown_report(r);
    CHECK(md.find("| lira_online | n/a | n/a | n/a | n/a | n/a |") != std::string::npos);
    CHECK(md.find("cnn n/a") != std::string::npos);
    CHECK(md.find("-1.000") == std::string::npos);
    CHECK(md.find("lira_online not evaluated: the scored examples hold no member") != std::string::npos);
    CHECK(md.find("lira_online 7.0") != std::string::npos);  // the unscored count, per target
}

TEST_CASE("TPR at 1%, 0.1%, 0.01% and 0 FPR differ where the non-members allow it (10,000 non-members)") {
    // Non-members score 0..9999. Members: 5 above everyone (0 FP), 3 at 9998.5
    // (1 FP: 9999), 4 at 9989.5 (10 FP), 6 at 9899.5 (100 FP), 2 below all.
    // 20 members: TPR at 0 FPR 5/20, at 0.01% (1 FP) 8/20, at 0.1% (10 FP)
    // 12/20, at 1% (100 FP) 18/20.
    std::vector<double> s;
    std::vector<int> m;
    for (int i = 0; i < 10000; i++) s.push_back(i), m.push_back(0);
    const std::pair<double, int> members[] = {{1e6, 5}, {9998.5, 3}, {9989.5, 4}, {9899.5, 6}, {-1, 2}};
    for (auto [score, count] : members)
        for (int i = 0; i < count; i++) s.push_back(score), m.push_back(1);
    AttackMetrics em = evaluate_attack(s, m, 9899.5);
    CHECK(em.tpr_at_0_fpr == 0.25);
    CHECK(em.tpr_at_001pct_fpr == 0.4);
    CHECK(em.tpr_at_01pct_fpr == 0.6);
    CHECK(em.tpr_at_1pct_fpr == 0.9);
    CHECK(em.fpr_resolution == 1e-4);
    nlohmann::json j = to_json(em);
    CHECK(j["tpr_at_001pct_fpr"].get<double>() == 0.4);
    CHECK(j["tpr_at_0_fpr"].get<double>() == 0.25);
}

namespace {

// P[Bin(n, p) >= k] by direct summation in long double: the definition the
// Clopper-Pearson bounds invert, sharing no code with the beta functions.
long double binom_tail_ge(int64_t k, int64_t n, long double p) {
    long double sum = 0;
    for (int64_t i = k; i <= n; i++) {
        long double lc = std::lgamma((long double)n + 1) - std::lgamma((long double)i + 1) -
                         std::lgamma((long double)(n - i) + 1);
        sum += std::exp(lc + i * std::log(p) + (n - i) * std::log1p(-p));
    }
    return sum;
}

}  // namespace

TEST_CASE("Clopper-Pearson bounds invert the binomial tail; closed forms at k = 0 and k = n") {
    const std::pair<int64_t, int64_t> cases[] = {{3, 10}, {7, 20}, {50, 100}, {1, 1000}, {999, 1000}, {2500, 5000}};
    for (auto [k, n] : cases)
        for (double alpha : {0.025, 0.005}) {
            CAPTURE(k);
            CAPTURE(n);
            CAPTURE(alpha);
            double lo = clopper_pearson_lower(k, n, alpha), hi = clopper_pearson_upper(k, n, alpha);
            CHECK(lo < double(k) / double(n));
            CHECK(hi > double(k) / double(n));
            // P[Bin(n, lo) >= k] = alpha and P[Bin(n, hi) <= k] = alpha.
            CHECK(double(binom_tail_ge(k, n, lo)) == doctest::Approx(alpha).epsilon(1e-7));
            CHECK(double(1 - binom_tail_ge(k + 1, n, hi)) == doctest::Approx(alpha).epsilon(1e-7));
        }
    CHECK(clopper_pearson_lower(0, 10, 0.025) == 0);
    CHECK(clopper_pearson_upper(10, 10, 0.025) == 1);
    CHECK(clopper_pearson_lower(10, 10, 0.025) == doctest::Approx(std::pow(0.025, 0.1)).epsilon(1e-15));
    CHECK(clopper_pearson_upper(0, 10, 0.025) == doctest::Approx(1 - std::pow(0.025, 0.1)).epsilon(1e-15));
    CHECK_THROWS_WITH(clopper_pearson_lower(11, 10, 0.025), "clopper_pearson: needs 0 <= k <= n and n >= 1");
    CHECK_THROWS_WITH(clopper_pearson_upper(1, 10, 1.0), "clopper_pearson: alpha must be in (0, 1)");
}

TEST_CASE("the epsilon lower bound: TF-Privacy's published case (500 of 500 members, 0 of 500 non-members, alpha 0.01) is 4.5419") {
    std::vector<double> s;
    std::vector<int> m;
    for (int i = 0; i < 500; i++) s.push_back(1), m.push_back(1);
    for (int i = 0; i < 500; i++) s.push_back(0), m.push_back(0);
    std::vector<RocPoint> roc = roc_curve(s, m);
    // ln(0.005^(1/500) / (1 - 0.005^(1/500))), both ratios equal here.
    const double closed = std::log(std::pow(0.005, 1.0 / 500) / (1 - std::pow(0.005, 1.0 / 500)));
    CHECK(epsilon_lower_bound(roc, 500, 500, 0.01) == doctest::Approx(closed).epsilon(1e-12));
    CHECK(std::fabs(epsilon_lower_bound(roc, 500, 500, 0.01) - 4.5419) < 5e-5);
    // A random-guess attack proves nothing: the bound is 0.
    std::vector<double> s2;
    std::vector<int> m2;
    for (int i = 0; i < 400; i++) s2.push_back(i / 2), m2.push_back(i % 2);
    CHECK(epsilon_lower_bound(roc_curve(s2, m2), 200, 200) == 0);
    // The hand-worked example (4 + 4): its best point (TP 1, FP 0) gives
    // ln(CP_low(1, 4) / CP_high(0, 4)) < 0 at alpha/2 = 0.025, and so does
    // every other: 0.
    CHECK(epsilon_lower_bound(roc_curve(kScores, kMember), 4, 4) == 0);
    // 9 of 10 members and 1 of 10 non-members above t: by hand,
    // ln(CP_low(9, 10) / CP_high(1, 10)) = ln(0.554984 / 0.445016) < the
    // TNR/FNR ratio, which is the same by symmetry: ln(1.24711) = 0.22083.
    std::vector<double> s3;
    std::vector<int> m3;
    for (int i = 0; i < 10; i++) s3.push_back(i < 9 ? 2 : 0), m3.push_back(1);
    for (int i = 0; i < 10; i++) s3.push_back(i < 1 ? 2 : 0), m3.push_back(0);
    const double by_def = std::log(clopper_pearson_lower(9, 10, 0.025) / clopper_pearson_upper(1, 10, 0.025));
    CHECK(epsilon_lower_bound(roc_curve(s3, m3), 10, 10) == doctest::Approx(by_def).epsilon(1e-12));
    CHECK(by_def == doctest::Approx(std::log(0.554984 / 0.445016)).epsilon(1e-5));
}

TEST_CASE("PPV: the best TPR / (TPR + r FPR) over the ROC, the prior where nothing is called") {
    // A non-member on top (0.9), two members (0.8, 0.7), a non-member (0.6).
    // Points: (0,0) prior 1/(1+r); (.5,0) 0; (.5,.5) .5/(.5+.5r); (.5,1) 1/(1+.5r); (1,1) 1/(1+r).
    std::vector<double> s = {0.9, 0.8, 0.7, 0.6};
    std::vector<int> m = {0, 1, 1, 0};
    std::vector<RocPoint> roc = roc_curve(s, m);
    CHECK(max_ppv(roc, 1.0) == doctest::Approx(2.0 / 3).epsilon(1e-15));
    CHECK(max_ppv(roc, 4.0) == doctest::Approx(1.0 / 3).epsilon(1e-15));
    CHECK(max_ppv(roc_curve(kScores, kMember), 1.0) == 1.0);  // m.9 alone: no false positive
    AttackMetrics em = evaluate_attack(s, m, 0.75);
    CHECK(em.ppv == doctest::Approx(2.0 / 3).epsilon(1e-15));
    CHECK_THROWS_WITH(max_ppv(roc, 0.0), "max_ppv: the ratio of non-members to members must be > 0");
}

// One target: its number alone, never "± 0.000" (a spread of one value is not
// a spread); two or more: mean ± standard deviation.
TEST_CASE("report: 'which model leaks more' writes ± only over two or more targets") {
    auto run = [](int n, double sd) {
        nlohmann::json ms = {{"mean", 0.9}, {"std", sd}, {"n", n}};
        nlohmann::json loss = {{"auc", {{"mean", 0.6}, {"std", sd}, {"n", n}}},
                               {"tpr_at_1pct_fpr", {{"mean", 0.05}, {"std", sd}, {"n", n}}}};
        for (const char* k : {"tpr_at_01pct_fpr", "tpr_at_001pct_fpr", "tpr_at_0_fpr", "advantage",
                              "balanced_accuracy", "ppv", "epsilon_lower_bound", "fpr_resolution"})
            loss[k] = {{"mean", 0.5}, {"std", sd}, {"n", n}};
        nlohmann::json target = {{"role", "target0"}, {"attacks", nlohmann::json::object()}};
        nlohmann::json r = {
            {"config", {{"protocol", "lira"}, {"dataset", "mnist"}, {"ds", 10}, {"shadows", 2}, {"seed", 1}}},
            {"models",
             {{"cnn",
               {{"preset", "shokri"},
                {"targets", nlohmann::json::array({target})},
                {"summary", {{"train_acc", ms}, {"test_acc", ms}, {"gap", ms}, {"attacks", {{"loss", loss}}}}}}}}}};
        return markdown_report(r);
    };
    const std::string one = run(1, 0.0), two = run(2, 0.01);
    CHECK(one.find("by AUC: cnn 0.600 (loss)") != std::string::npos);
    CHECK(one.find("by TPR at 1% FPR: cnn 0.050 (loss)") != std::string::npos);
    CHECK(one.find("± 0.000") == std::string::npos);
    CHECK(two.find("by AUC: cnn 0.600 ± 0.010 (loss)") != std::string::npos);
}
