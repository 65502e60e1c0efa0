// rmia.h: the Robust Membership Inference Attack (Zarifzadeh, Liu, Shokri,
// "Low-Cost High-Power Membership Inference Attacks", ICML 2024, arXiv
// 2312.03262), in the `lira` protocol's setting (lira.h): M models, each
// trained on a random half of a pool of n examples; every model is the
// target in turn and the other M - 1 are its reference models.
//
// Signal: p(x | theta), the model's softmax probability of x's true label.
// For target t and example x:
//   Pr(x)     = the mean of p(x | theta') over the reference models:
//               online:  all of them (x is IN about half);
//               offline: the OUT ones only, corrected for the missing IN
//                        half as Pr(x) = 1/2 [(1 + a) mean_OUT + (1 - a)]
//                        (the paper's linear fit Pr_IN ~ a Pr_OUT + 1 - a);
//   ratio(x)  = p(x | theta_t) / Pr(x);
//   LR(x, z)  = ratio(x) / ratio(z) for population points z (examples no
//               model of the run trained on, the same rule for Pr(z));
//   score(x)  = the fraction of z with LR(x, z) >= gamma (higher = member;
//               the paper's definition; Privacy Meter counts > gamma, which
//               differs only on exact ties).
// The score is a rank statistic: ratio(z) is sorted once and each x costs
// one binary search, O((n + |Z|) log |Z|) instead of the n x |Z| table.
//
// Parameters (docs/ATTACKS.md): gamma 1 (Privacy Meter; the paper's CIFAR-10
// configuration uses 2), a 0.3 (the paper's CIFAR-10 value) or tuned on the
// reference models alone (rmia_tune_offline_a), the number of references
// M - 1, the population size |Z|.
#pragma once
#include <cstdint>
#include <vector>

#include "attack/lira.h"
#include "attack/matrix.h"

namespace mmia {

struct RmiaOptions {
    bool online = false;  // false: offline (OUT references only, with a)
    double a = 0.3;       // offline correction, in [0, 1]
    double gamma = 1.0;   // LR threshold, > 0
};

// Scores of every pool example for target model `target`.
//   p:            M x n true-label probabilities of each model on the pool, in (0, 1]
//   membership:   M x n, 1 where the pool example was in the model's training set
//   p_pop:        M x nz the same on the population points (nz >= 1)
//   membership_pop: M x nz (0 where a model never saw the point)
// An example without references of the kind the mode needs (offline: no
// OUT reference; online: none at all) gets NaN and is left out of `scored`,
// as in LiraScores. Throws on shapes that disagree, M < 2, a probability
// outside (0, 1] or not finite, a membership other than 0/1, a target out
// of range, a outside [0, 1] or gamma <= 0, and a population point whose
// Pr(z) cannot be formed.
LiraScores rmia_scores(const Matrix& p, const std::vector<int>& membership, const Matrix& p_pop,
                       const std::vector<int>& membership_pop, int target, const RmiaOptions& options);

// The offline a chosen on reference models only (never the target's
// outputs): each of up to `pseudo_targets` reference models in turn plays
// the target, scored offline against the remaining references (the target
// excluded); the a in {0, 0.1, ..., 1} with the best mean AUC over them
// wins (the smallest a among equals). Needs M >= 3.
double rmia_tune_offline_a(const Matrix& p, const std::vector<int>& membership, const Matrix& p_pop,
                           const std::vector<int>& membership_pop, int target, double gamma, int pseudo_targets = 2);

// The mean AUC behind rmia_tune_offline_a at each a = 0, 0.1, ..., 1 (11
// values), for reports and tests: it must not depend on the target's row.
std::vector<double> rmia_offline_a_aucs(const Matrix& p, const std::vector<int>& membership, const Matrix& p_pop,
                                        const std::vector<int>& membership_pop, int target, double gamma,
                                        int pseudo_targets = 2);

}  // namespace mmia
