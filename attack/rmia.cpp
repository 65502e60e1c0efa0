// rmia.cpp: RMIA offline / online (see rmia.h).
#include "attack/rmia.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

#include "attack/metrics.h"

namespace mmia {

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

void check_table(const Matrix& p, const std::vector<int>& membership, const char* what) {
    if (p.values.size() != size_t(p.rows * p.cols) || membership.size() != p.values.size())
        throw std::invalid_argument(std::string("rmia_scores: ") + what + ": probabilities and membership differ in shape");
    for (size_t i = 0; i < p.values.size(); i++) {
        const double v = p.values[i];
        if (!(v > 0 && v <= 1))
            throw std::invalid_argument(std::string("rmia_scores: ") + what + ": probability of model " +
                                        std::to_string(i / size_t(p.cols)) + ", example " +
                                        std::to_string(i % size_t(p.cols)) + " is " + std::to_string(v) +
                                        " (must be in (0, 1])");
        if (membership[i] != 0 && membership[i] != 1)
            throw std::invalid_argument(std::string("rmia_scores: ") + what + ": membership must be 0 or 1");
    }
}

// p(x | theta_t) / Pr(x) for every column, the references being every model
// but `target` and `skip` (-1: none); NaN where the mode has no reference.
std::vector<double> ratios(const Matrix& p, const std::vector<int>& membership, int target, int skip,
                           const RmiaOptions& o) {
    std::vector<double> r(size_t(p.cols), kNaN);
    for (int64_t j = 0; j < p.cols; j++) {
        double sum = 0;
        int64_t count = 0;
        for (int64_t m = 0; m < p.rows; m++) {
            if (m == target || m == skip) continue;
            if (!o.online && membership[size_t(m * p.cols + j)]) continue;
            sum += p.at(m, j);
            count++;
        }
        if (count == 0) continue;
        const double mean = sum / double(count);
        const double pr = o.online ? mean : 0.5 * ((1 + o.a) * mean + (1 - o.a));
        r[size_t(j)] = p.at(target, j) / pr;
    }
    return r;
}

// rmia_scores with the model `skip` left out of the references as well (the
// real target, while a reference model plays the target to tune a).
LiraScores rmia_scores_excluding(const Matrix& p, const std::vector<int>& membership, const Matrix& p_pop,
                                 const std::vector<int>& membership_pop, int target, int skip,
                                 const RmiaOptions& o) {
    if (p.rows < 2) throw std::invalid_argument("rmia_scores: needs at least 2 models, got " + std::to_string(p.rows));
    if (p_pop.rows != p.rows) throw std::invalid_argument("rmia_scores: the population table has another number of models");
    if (p_pop.cols < 1) throw std::invalid_argument("rmia_scores: no population points");
    check_table(p, membership, "pool");
    check_table(p_pop, membership_pop, "population");
    if (target < 0 || target >= p.rows)
        throw std::invalid_argument("rmia_scores: target " + std::to_string(target) + " outside [0, " +
                                    std::to_string(p.rows) + ")");
    if (!(o.a >= 0 && o.a <= 1)) throw std::invalid_argument("rmia_scores: a must be in [0, 1]");
    if (!(o.gamma > 0) || std::isinf(o.gamma)) throw std::invalid_argument("rmia_scores: gamma must be finite and > 0");

    std::vector<double> rz = ratios(p_pop, membership_pop, target, skip, o);
    for (size_t j = 0; j < rz.size(); j++)
        if (std::isnan(rz[j]))
            throw std::invalid_argument("rmia_scores: population point " + std::to_string(j) +
                                        " has no reference model to estimate Pr(z)");
    std::sort(rz.begin(), rz.end());
    const std::vector<double> rx = ratios(p, membership, target, skip, o);
    LiraScores s;
    s.score.assign(rx.size(), kNaN);
    for (size_t j = 0; j < rx.size(); j++) {
        if (std::isnan(rx[j])) continue;
        // LR(x, z) >= gamma  <=>  ratio(z) <= ratio(x) / gamma (all positive).
        const double bound = rx[j] / o.gamma;
        const size_t below = size_t(std::upper_bound(rz.begin(), rz.end(), bound) - rz.begin());
        s.score[j] = double(below) / double(rz.size());
        s.scored.push_back(int64_t(j));
    }
    return s;
}

}  // namespace

LiraScores rmia_scores(const Matrix& p, const std::vector<int>& membership, const Matrix& p_pop,
                       const std::vector<int>& membership_pop, int target, const RmiaOptions& options) {
    return rmia_scores_excluding(p, membership, p_pop, membership_pop, target, -1, options);
}

std::vector<double> rmia_offline_a_aucs(const Matrix& p, const std::vector<int>& membership, const Matrix& p_pop,
                                        const std::vector<int>& membership_pop, int target, double gamma,
                                        int pseudo_targets) {
    if (p.rows < 3) throw std::invalid_argument("rmia_tune_offline_a: needs at least 3 models (a target and 2 references)");
    if (pseudo_targets < 1) throw std::invalid_argument("rmia_tune_offline_a: needs at least one pseudo-target");
    std::vector<int> pseudo;
    for (int m = 0; m < p.rows && int(pseudo.size()) < pseudo_targets; m++)
        if (m != target) pseudo.push_back(m);
    std::vector<double> aucs;
    for (int step = 0; step <= 10; step++) {
        RmiaOptions o;
        o.online = false;
        o.a = step / 10.0;
        o.gamma = gamma;
        double auc_sum = 0;
        int used = 0;
        for (int pt : pseudo) {
            // The pseudo-target pt is scored by the references other than pt
            // and the real target, which never enters.
            LiraScores s = rmia_scores_excluding(p, membership, p_pop, membership_pop, pt, target, o);
            std::vector<int> in;
            for (int64_t j : s.scored) in.push_back(membership[size_t(int64_t(pt) * p.cols + j)]);
            const int64_t members = std::count(in.begin(), in.end(), 1);
            if (members == 0 || members == int64_t(in.size())) continue;
            auc_sum += roc_auc(pick(s.score, s.scored), in);
            used++;
        }
        if (used == 0) throw std::invalid_argument("rmia_tune_offline_a: no pseudo-target has members and non-members");
        aucs.push_back(auc_sum / used);
    }
    return aucs;
}

double rmia_tune_offline_a(const Matrix& p, const std::vector<int>& membership, const Matrix& p_pop,
                           const std::vector<int>& membership_pop, int target, double gamma, int pseudo_targets) {
    const std::vector<double> aucs = rmia_offline_a_aucs(p, membership, p_pop, membership_pop, target, gamma, pseudo_targets);
    size_t best = 0;
    for (size_t i = 1; i < aucs.size(); i++)
        if (aucs[i] > aucs[best]) best = i;  // the smallest a among equals
    return double(best) / 10.0;
}

}  // namespace mmia
