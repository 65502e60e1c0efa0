// test_attack_rmia.cpp: RMIA (attack/rmia.h) against a hand-worked case and
// a brute-force O(n |Z|) implementation of the paper's definition.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "attack/metrics.h"
#include "attack/rmia.h"

using namespace mmia;

namespace {

// Three models, two pool examples, three population points (hand-worked in
// the test case below). Target 0.
Matrix hand_p() {
    Matrix p(3, 2);
    p.values = {0.9, 0.4,   // model 0 (target): x0 IN, x1 OUT
                0.5, 0.8,   // model 1: x0 OUT, x1 IN
                0.7, 0.2};  // model 2: x0 IN, x1 OUT
    return p;
}
const std::vector<int> kHandIn = {1, 0, 0, 1, 1, 0};
Matrix hand_pop() {
    Matrix z(3, 3);
    z.values = {0.6, 0.3, 0.9, 0.5, 0.5, 0.5, 0.7, 0.1, 0.9};
    return z;
}
const std::vector<int> kPopOut(9, 0);

// The definition, written out: Pr from the references of the mode, then
// the fraction of z with ratio(x) / ratio(z) >= gamma, by a double loop.
std::vector<double> brute_force(const Matrix& p, const std::vector<int>& in, const Matrix& z,
                                const std::vector<int>& zin, int t, const RmiaOptions& o) {
    auto ratio = [&](const Matrix& q, const std::vector<int>& qin, int64_t j) {
        double s = 0;
        int c = 0;
        for (int64_t m = 0; m < q.rows; m++)
            if (m != t && (o.online || !qin[size_t(m * q.cols + j)])) s += q.at(m, j), c++;
        if (c == 0) return double(NAN);
        double pr = o.online ? s / c : 0.5 * ((1 + o.a) * (s / c) + (1 - o.a));
        return q.at(t, j) / pr;
    };
    std::vector<double> out(size_t(p.cols));
    for (int64_t x = 0; x < p.cols; x++) {
        double rx = ratio(p, in, x);
        if (std::isnan(rx)) {
            out[size_t(x)] = NAN;
            continue;
        }
        int64_t above = 0;
        for (int64_t k = 0; k < z.cols; k++)
            if (rx / ratio(z, zin, k) >= o.gamma) above++;
        out[size_t(x)] = double(above) / double(z.cols);
    }
    return out;
}

}  // namespace

TEST_CASE("RMIA on a hand-worked case, offline and online") {
    // Offline, a = 0.5: Pr(x0) = (1.5 * 0.5 + 0.5) / 2 = 0.625 (OUT ref: model 1),
    // ratio 1.44; Pr(x1) = (1.5 * 0.2 + 0.5) / 2 = 0.4 (model 2), ratio 1.
    // Population (OUT everywhere), refs 1 and 2: means 0.6, 0.3, 0.7 ->
    // Pr 0.7, 0.475, 0.775 -> ratios 0.857, 0.632, 1.161.
    // gamma 1: x0 beats all three (1); x1: 1/0.857, 1/0.632 > 1, 1/1.161 < 1 (2/3).
    // gamma 1.5: x0: 1.68, 2.28 > 1.5, 1.24 not (2/3); x1: 1.17, 1.58, 0.86 (1/3).
    RmiaOptions o;
    o.a = 0.5;
    LiraScores s = rmia_scores(hand_p(), kHandIn, hand_pop(), kPopOut, 0, o);
    CHECK(s.scored == std::vector<int64_t>{0, 1});
    CHECK(s.score[0] == 1.0);
    CHECK(s.score[1] == doctest::Approx(2.0 / 3));
    o.gamma = 1.5;
    s = rmia_scores(hand_p(), kHandIn, hand_pop(), kPopOut, 0, o);
    CHECK(s.score[0] == doctest::Approx(2.0 / 3));
    CHECK(s.score[1] == doctest::Approx(1.0 / 3));
    // Online: Pr = the mean of both references. x0: 0.6 -> 1.5; x1: 0.5 -> 0.8;
    // z: 0.6, 0.3, 0.7 -> ratios 1, 1, 1.286. gamma 1: x0 beats all (1.5,
    // 1.5, 1.17); x1 none (0.8, 0.8, 0.62).
    o.online = true;
    o.gamma = 1;
    s = rmia_scores(hand_p(), kHandIn, hand_pop(), kPopOut, 0, o);
    CHECK(s.score[0] == 1.0);
    CHECK(s.score[1] == 0.0);
    // An exact tie: at gamma 1.5, LR(x0, z0) = LR(x0, z1) = 1.5 / 1 = gamma
    // (every quotient here is exact in binary), which the paper's >= counts:
    // 2 of 3 (z2: 1.5 / 1.286 < 1.5).
    o.gamma = 1.5;
    s = rmia_scores(hand_p(), kHandIn, hand_pop(), kPopOut, 0, o);
    CHECK(s.score[0] == doctest::Approx(2.0 / 3));
}

TEST_CASE("RMIA equals the brute-force definition on random tables, both modes, several gamma and a") {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> u(0.01, 1.0);
    const int M = 6, n = 300, nz = 200;
    Matrix p(M, n), z(M, nz);
    std::vector<int> in(size_t(M * n)), zin(size_t(M * nz), 0);
    for (auto& v : p.values) v = u(rng);
    for (auto& v : z.values) v = u(rng);
    for (auto& v : in) v = int(rng() % 2);
    for (int online = 0; online < 2; online++)
        for (double gamma : {0.5, 1.0, 2.0})
            for (double a : {0.0, 0.3, 1.0})
                for (int t : {0, 3}) {
                    RmiaOptions o;
                    o.online = online;
                    o.gamma = gamma;
                    o.a = a;
                    LiraScores s = rmia_scores(p, in, z, zin, t, o);
                    std::vector<double> want = brute_force(p, in, z, zin, t, o);
                    CAPTURE(online);
                    CAPTURE(gamma);
                    CAPTURE(a);
                    int64_t mismatches = 0, scored = 0;
                    for (int64_t j = 0; j < n; j++) {
                        if (std::isnan(want[size_t(j)])) {
                            CHECK(std::isnan(s.score[size_t(j)]));
                            continue;
                        }
                        scored++;
                        if (s.score[size_t(j)] != want[size_t(j)]) mismatches++;
                    }
                    CHECK(mismatches == 0);
                    CHECK(int64_t(s.scored.size()) == scored);
                }
}

TEST_CASE("RMIA: an example with no OUT reference is unscored offline and scored online") {
    Matrix p = hand_p();
    std::vector<int> in = {1, 0, 1, 1, 1, 0};  // x0 IN for every model
    RmiaOptions o;
    LiraScores s = rmia_scores(p, in, hand_pop(), kPopOut, 0, o);
    CHECK(std::isnan(s.score[0]));
    CHECK(s.scored == std::vector<int64_t>{1});
    o.online = true;
    CHECK(rmia_scores(p, in, hand_pop(), kPopOut, 0, o).scored == std::vector<int64_t>{0, 1});
}

TEST_CASE("RMIA's a is tuned on the reference models alone: the target's outputs never change it") {
    // Members of every model get their probability raised: a signal RMIA can use.
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<double> u(0.05, 0.6);
    const int M = 5, n = 400, nz = 100;
    Matrix p(M, n), z(M, nz);
    std::vector<int> in(size_t(M * n)), zin(size_t(M * nz), 0);
    for (int64_t m = 0; m < M; m++)
        for (int64_t j = 0; j < n; j++) {
            in[size_t(m * n + j)] = int(rng() % 2);
            p.at(m, j) = std::min(1.0, u(rng) + (in[size_t(m * n + j)] ? 0.35 : 0.0));
        }
    for (auto& v : z.values) v = u(rng);
    const double a = rmia_tune_offline_a(p, in, z, zin, 0, 1.0);
    CHECK(a >= 0);
    CHECK(a <= 1);
    CHECK(std::fabs(a * 10 - std::round(a * 10)) < 1e-12);
    Matrix p2 = p, z2 = z;
    for (int64_t j = 0; j < n; j++) p2.at(0, j) = 0.5;
    for (int64_t j = 0; j < nz; j++) z2.at(0, j) = 0.01;
    CHECK(rmia_tune_offline_a(p2, in, z2, zin, 0, 1.0) == a);
    // Not only the argmax: every AUC of the grid is the same without the target.
    const std::vector<double> aucs = rmia_offline_a_aucs(p, in, z, zin, 0, 1.0);
    CHECK(aucs.size() == 11);
    CHECK(aucs == rmia_offline_a_aucs(p2, in, z2, zin, 0, 1.0));
    CHECK(aucs[size_t(std::lround(a * 10))] == *std::max_element(aucs.begin(), aucs.end()));
    // The tuned attack separates members: AUC well above chance on the target.
    RmiaOptions o;
    o.a = a;
    LiraScores s = rmia_scores(p, in, z, zin, 0, o);
    std::vector<int> member;
    for (int64_t j : s.scored) member.push_back(in[size_t(j)]);
    CHECK(roc_auc(pick(s.score, s.scored), member) > 0.8);
}

TEST_CASE("RMIA refuses tables it cannot use, one line each") {
    Matrix p = hand_p();
    RmiaOptions o;
    Matrix bad = p;
    bad.at(1, 0) = 0.0;
    CHECK_THROWS_WITH(rmia_scores(bad, kHandIn, hand_pop(), kPopOut, 0, o),
                      "rmia_scores: pool: probability of model 1, example 0 is 0.000000 (must be in (0, 1])");
    CHECK_THROWS_WITH(rmia_scores(p, kHandIn, hand_pop(), kPopOut, 3, o), "rmia_scores: target 3 outside [0, 3)");
    CHECK_THROWS_WITH(rmia_scores(p, std::vector<int>(5, 0), hand_pop(), kPopOut, 0, o),
                      "rmia_scores: pool: probabilities and membership differ in shape");
    o.gamma = 0;
    CHECK_THROWS_WITH(rmia_scores(p, kHandIn, hand_pop(), kPopOut, 0, o), "rmia_scores: gamma must be finite and > 0");
    o.gamma = 1;
    std::vector<int> pop_in(9, 1);  // every population point IN every model: no Pr(z) offline
    CHECK_THROWS_WITH(rmia_scores(p, kHandIn, hand_pop(), pop_in, 0, o),
                      "rmia_scores: population point 0 has no reference model to estimate Pr(z)");
}
