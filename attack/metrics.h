// metrics.h: how well a membership-inference attack separates members from
// non-members.
//
// Conventions, pinned by tests/test_attack_metrics.cpp:
//   - is_member[i] == 1: example i was in the target's training set (a
//     member; the POSITIVE class); 0: a non-member. No other values.
//   - scores[i]: the attack's score, HIGHER = MORE LIKELY A MEMBER. Every
//     attack in attack/ returns scores in this direction.
//   - At a threshold t the attack says "member" iff scores[i] >= t.
//   - TPR = members called members / members (= recall);
//     FPR = non-members called members / non-members.
// Scores must be finite (NaN or +-inf throw): an attack that cannot score an
// example must say so instead of hiding it among the ranks.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mmia {

// One point of the ROC curve: "member iff score >= threshold" gives (fpr, tpr).
struct RocPoint {
    double threshold;
    double fpr;
    double tpr;
};

// The full ROC curve: the point (0, 0) at threshold +inf, then one point per
// distinct score in decreasing order (tied scores move together: a tie
// between a member and a non-member is a diagonal step), ending at (1, 1) at
// the lowest score. Needs at least one member and one non-member.
std::vector<RocPoint> roc_curve(const std::vector<double>& scores, const std::vector<int>& is_member);

// Area under the ROC curve, exact and tie-aware: the probability that a random
// member scores above a random non-member, ties counting one half (the
// Mann-Whitney U statistic / (members * non-members)). Computed from midranks
// in O(n log n); equal to the trapezoidal area under roc_curve().
double roc_auc(const std::vector<double>& scores, const std::vector<int>& is_member);

// The largest TPR over the ROC points with FPR <= max_fpr: the best recall an
// attacker can actually reach with one threshold without exceeding that false
// positive rate. No interpolation between points, so with few non-members it
// is honest about granularity (with 1,000 non-members FPR 0.1% allows exactly
// one false positive; with fewer than 1,000 it allows none).
double tpr_at_fpr(const std::vector<RocPoint>& roc, double max_fpr);

// max over the ROC of TPR - FPR (Yeom et al.'s membership advantage); >= 0
// because (0, 0) is on every curve.
double max_advantage(const std::vector<RocPoint>& roc);

// Clopper-Pearson (exact binomial) one-sided bounds on a proportion, k
// successes of n trials, at level alpha in (0, 1): the lower bound is the p
// with P[Bin(n, p) >= k] = alpha (0 when k == 0), the upper the p with
// P[Bin(n, p) <= k] = alpha (1 when k == n); computed as quantiles of
// Beta(k, n - k + 1) at alpha and of Beta(k + 1, n - k) at 1 - alpha
// (Clopper, Pearson 1934). Throws on k outside [0, n] or n < 1.
double clopper_pearson_lower(int64_t k, int64_t n, double alpha);
double clopper_pearson_upper(int64_t k, int64_t n, double alpha);

// The pure-DP epsilon an attack's ROC proves at confidence 1 - alpha
// (TF-Privacy privacy_tests/epsilon_lower_bound.py, Clopper-Pearson method;
// Kairouz et al. 2015's hypothesis-testing view of DP): at every ROC point,
// ln(CP_low(TP, P) / CP_high(FP, N)) and ln(CP_low(TN, N) / CP_high(FN, P)),
// each bound at alpha / 2; the largest over points and both ratios, at least
// 0. P = members, N = non-members, the counts recovered from the rates. An
// epsilon-DP training could not let any attack exceed it (with probability
// 1 - alpha), so it is a lower bound on the epsilon the model leaks.
double epsilon_lower_bound(const std::vector<RocPoint>& roc, int64_t n_members, int64_t n_nonmembers,
                           double alpha = 0.05);

// Positive predictive value at the prior these counts imply (TF-Privacy's
// get_ppv): max over ROC points of TPR / (TPR + r FPR), r = non-members /
// members; 1 / (1 + r) (the prior) at a point with TPR = FPR = 0.
double max_ppv(const std::vector<RocPoint>& roc, double r);

// Counts at one threshold ("member iff score >= threshold").
struct Confusion {
    int64_t tp = 0, fp = 0, tn = 0, fn = 0;
};
Confusion confusion_at(const std::vector<double>& scores, const std::vector<int>& is_member,
                       double threshold);
double balanced_accuracy(const Confusion& c);  // (TPR + TNR) / 2
double accuracy(const Confusion& c);           // (tp + tn) / all
// tp / (tp + fp); 0 when nothing is called a member (sklearn's zero_division=0).
double precision(const Confusion& c);
double recall(const Confusion& c);             // tp / (tp + fn) = TPR

// The threshold that maximises TPR - FPR (equivalently balanced accuracy) on
// this set; meant for shadow models' scores, then applied to the target with
// evaluate_attack(). Among equally good ROC points the highest threshold
// wins; the threshold returned lies midway between that point's score and
// the next lower distinct score (so it generalises symmetrically instead of
// sitting on a shadow example). When no threshold beats "nobody is a member"
// (e.g. all scores equal) it is the next double above the highest score:
// finite, so per-class thresholds can shift scores (metric_attacks.h).
double select_threshold(const std::vector<double>& scores, const std::vector<int>& is_member);

// Every number the report shows for one attack on one target.
struct AttackMetrics {
    int64_t n_members = 0, n_nonmembers = 0;
    // threshold-free
    double auc = 0;
    double advantage = 0;          // max(TPR - FPR) over the ROC
    double tpr_at_1pct_fpr = 0;    // tpr_at_fpr(roc, 0.01)
    double tpr_at_01pct_fpr = 0;   // tpr_at_fpr(roc, 0.001)
    double tpr_at_001pct_fpr = 0;  // tpr_at_fpr(roc, 0.0001)
    double tpr_at_0_fpr = 0;       // tpr_at_fpr(roc, 0): no false positive at all
    // The smallest non-zero FPR this set can show, 1 / n_nonmembers: a TPR at
    // an FPR level below it is the TPR at 0 FPR (the level is out of reach).
    double fpr_resolution = 0;
    double ppv = 0;                // max_ppv(roc, n_nonmembers / n_members)
    double epsilon_lower_bound = 0;  // epsilon_lower_bound(roc, ..., 0.05)
    // at the given threshold (chosen on shadows)
    double threshold = 0;
    double balanced_accuracy = 0;
    double accuracy = 0;
    double precision = 0;
    double recall = 0;             // = TPR at the threshold
    double fpr = 0;                // FPR at the threshold
};

AttackMetrics evaluate_attack(const std::vector<double>& scores, const std::vector<int>& is_member,
                              double threshold);

// Mean and sample standard deviation (n - 1 in the denominator) of repeated
// measurements; std is 0 for a single value (n says how many there were).
struct MeanStd {
    double mean = 0, std = 0;
    int64_t n = 0;
};
MeanStd mean_std(const std::vector<double>& values);

// Every field under its own name ({"auc": .., "tpr_at_01pct_fpr": .., ...});
// an infinite threshold becomes null.
nlohmann::json to_json(const AttackMetrics& m);
// Each field of AttackMetrics over repeats (targets, seeds):
// {"auc": {"mean": .., "std": .., "n": ..}, ...}. Needs at least one.
nlohmann::json summarize(const std::vector<AttackMetrics>& repeats);

// Member and non-member counts over `bins` equal-width bins spanning the
// lowest to the highest score, for the report's score histograms. Bin i is
// [edges[i], edges[i+1]), the last one closed; when every score is equal the
// single span is [score - 0.5, score + 0.5]. bins in [1, 100000].
struct ScoreHistogram {
    std::vector<double> edges;             // bins + 1, increasing
    std::vector<int64_t> members, nonmembers;  // bins each
};
ScoreHistogram score_histogram(const std::vector<double>& scores, const std::vector<int>& is_member, int bins);

// Writes the curve as CSV "threshold,fpr,tpr" (17 significant digits, the
// +inf threshold as "inf"), atomically: a temporary file renamed into place,
// so a crash or a full disk never leaves a half-written file under `path`.
void write_roc_csv(const std::string& path, const std::vector<RocPoint>& roc);

}  // namespace mmia
