// lira.h: the Likelihood Ratio Attack (Carlini et al., "Membership Inference
// Attacks From First Principles", IEEE S&P 2022).
//
// Setting (the `lira` protocol): M models, each trained on a random half of a
// pool of n examples. phi.at(m, j) is model m's logit-scaled confidence on
// example j (features.h: logit_scaled_confidence), membership[m * n + j] is 1
// when example j was in model m's training set, else 0. Every model serves
// as the target in turn; the OTHER M - 1 models are its reference ("shadow")
// models: the target's own phi and membership never enter its reference
// distributions.
//
// For example j and target t, from the reference models:
//   IN  = { phi(m, j) : m != t, membership(m, j) = 1 },
//   OUT = { phi(m, j) : m != t, membership(m, j) = 0 },
// each fitted by a Gaussian (mean, standard deviation). Scores, higher =
// member:
//   online  (IN and OUT): log N(phi_t; mu_in, sd_in) - log N(phi_t; mu_out, sd_out)
//   offline (OUT only):   (phi_t - mu_out) / sd_out
// The paper's offline score is the one-sided p-value 1 - Pr[Z > phi_t],
// Z ~ N(mu_out, sd_out^2), i.e. Phi((phi_t - mu_out) / sd_out): a monotone
// function of the z-score above, so every ROC metric is the same, and the
// z-score does not round to 1.0 (a tie) for confident members.
//
// Variance: per-example (each example's own IN / OUT standard deviation) or
// fixed (one standard deviation for all examples, IN and OUT each: the pooled
// within-example variance, sum of squared deviations from each example's own
// mean over sum of (count - 1)), which the paper finds better with few
// reference models. An example with fewer than 2 references of a kind uses
// the fixed one for that kind. Standard deviations are floored at 1e-6.
#pragma once
#include <cstdint>
#include <vector>

#include "attack/matrix.h"

namespace mmia {

struct LiraOptions {
    bool online = true;           // false: offline (OUT references only)
    bool fixed_variance = false;  // true: one pooled variance for all examples
};

struct LiraScores {
    // n scores, higher = member; NaN for an example the references cannot
    // score (online: no IN or no OUT reference model; offline: no OUT), so
    // metrics.h refuses them unless the caller keeps only `scored`.
    std::vector<double> score;
    std::vector<int64_t> scored;  // the examples with a score, increasing
};

// Scores of every example for target model `target` (0 <= target < M).
// Throws when phi and membership do not match (M x n, M >= 2), a phi is not
// finite, or a membership value is not 0/1.
LiraScores lira_scores(const Matrix& phi, const std::vector<int>& membership, int target,
                       const LiraOptions& options);

// v restricted to the given indices (e.g. LiraScores::scored), in their order.
std::vector<double> pick(const std::vector<double>& v, const std::vector<int64_t>& indices);
std::vector<int> pick(const std::vector<int>& v, const std::vector<int64_t>& indices);
std::vector<int64_t> pick(const std::vector<int64_t>& v, const std::vector<int64_t>& indices);

}  // namespace mmia
