// metrics.cpp: ROC, AUC, TPR at low FPR, threshold metrics (see metrics.h for
// the conventions).
#include "attack/metrics.h"

#include "engine/io.h"  // io_write_file_atomic

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace mmia {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

struct ClassCounts {
    int64_t members = 0, nonmembers = 0;
};

// Throws unless scores and labels line up, every score is finite and every
// label is 0 or 1. Returns the class counts.
ClassCounts check_scored_set(const std::vector<double>& scores, const std::vector<int>& is_member,
                             const char* what) {
    if (scores.size() != is_member.size())
        throw std::invalid_argument(std::string(what) + ": " + std::to_string(scores.size()) +
                                    " scores but " + std::to_string(is_member.size()) +
                                    " membership labels");
    if (scores.empty()) throw std::invalid_argument(std::string(what) + ": no examples");
    ClassCounts c;
    for (size_t i = 0; i < scores.size(); i++) {
        if (!std::isfinite(scores[i]))
            throw std::invalid_argument(std::string(what) + ": score " + std::to_string(i) +
                                        " is not finite (" + std::to_string(scores[i]) + ")");
        if (is_member[i] == 1) c.members++;
        else if (is_member[i] == 0) c.nonmembers++;
        else
            throw std::invalid_argument(std::string(what) + ": membership label " +
                                        std::to_string(i) + " is " + std::to_string(is_member[i]) +
                                        " (must be 1 = member or 0 = non-member)");
    }
    return c;
}

ClassCounts check_both_classes(const std::vector<double>& scores, const std::vector<int>& is_member,
                               const char* what) {
    ClassCounts c = check_scored_set(scores, is_member, what);
    if (c.members == 0 || c.nonmembers == 0)
        throw std::invalid_argument(std::string(what) + ": needs members and non-members, got " +
                                    std::to_string(c.members) + " members and " +
                                    std::to_string(c.nonmembers) + " non-members");
    return c;
}

// Indices sorted by decreasing score (stable, so the order is deterministic).
std::vector<size_t> order_by_decreasing_score(const std::vector<double>& scores) {
    std::vector<size_t> order(scores.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return scores[a] > scores[b]; });
    return order;
}

}  // namespace

std::vector<RocPoint> roc_curve(const std::vector<double>& scores, const std::vector<int>& is_member) {
    ClassCounts c = check_both_classes(scores, is_member, "roc_curve");
    std::vector<size_t> order = order_by_decreasing_score(scores);
    std::vector<RocPoint> roc;
    roc.push_back({kInf, 0.0, 0.0});
    int64_t tp = 0, fp = 0;
    for (size_t i = 0; i < order.size();) {
        double t = scores[order[i]];
        // The whole group of tied scores crosses the threshold at once.
        for (; i < order.size() && scores[order[i]] == t; i++) {
            if (is_member[order[i]]) tp++;
            else fp++;
        }
        roc.push_back({t, double(fp) / double(c.nonmembers), double(tp) / double(c.members)});
    }
    return roc;
}

double roc_auc(const std::vector<double>& scores, const std::vector<int>& is_member) {
    ClassCounts c = check_both_classes(scores, is_member, "roc_auc");
    // Midranks (1-based, ascending); U = sum of member ranks - m(m+1)/2.
    std::vector<size_t> order = order_by_decreasing_score(scores);
    std::reverse(order.begin(), order.end());
    double member_rank_sum = 0;
    for (size_t i = 0; i < order.size();) {
        size_t j = i;
        while (j < order.size() && scores[order[j]] == scores[order[i]]) j++;
        double midrank = 0.5 * double(i + 1 + j);  // mean of ranks i+1 .. j
        for (size_t k = i; k < j; k++)
            if (is_member[order[k]]) member_rank_sum += midrank;
        i = j;
    }
    double m = double(c.members), n = double(c.nonmembers);
    double u = member_rank_sum - m * (m + 1) / 2;
    return u / (m * n);
}

double tpr_at_fpr(const std::vector<RocPoint>& roc, double max_fpr) {
    if (roc.empty()) throw std::invalid_argument("tpr_at_fpr: empty ROC curve");
    if (!(max_fpr >= 0 && max_fpr <= 1))
        throw std::invalid_argument("tpr_at_fpr: max_fpr must be in [0, 1], got " +
                                    std::to_string(max_fpr));
    double best = 0;
    // A tiny tolerance so that FPR = k/n computed in floating point still
    // counts as <= a target written as the same fraction (0.01 vs 10/1000).
    for (const RocPoint& p : roc)
        if (p.fpr <= max_fpr * (1 + 1e-12)) best = std::max(best, p.tpr);
    return best;
}

double max_advantage(const std::vector<RocPoint>& roc) {
    if (roc.empty()) throw std::invalid_argument("max_advantage: empty ROC curve");
    double best = 0;
    for (const RocPoint& p : roc) best = std::max(best, p.tpr - p.fpr);
    return best;
}

Confusion confusion_at(const std::vector<double>& scores, const std::vector<int>& is_member,
                       double threshold) {
    check_scored_set(scores, is_member, "confusion_at");
    if (std::isnan(threshold)) throw std::invalid_argument("confusion_at: threshold is NaN");
    Confusion c;
    for (size_t i = 0; i < scores.size(); i++) {
        bool called_member = scores[i] >= threshold;
        if (is_member[i]) (called_member ? c.tp : c.fn)++;
        else (called_member ? c.fp : c.tn)++;
    }
    return c;
}

namespace {
double ratio_or_zero(int64_t num, int64_t den) { return den == 0 ? 0.0 : double(num) / double(den); }
}  // namespace

double balanced_accuracy(const Confusion& c) {
    if (c.tp + c.fn == 0 || c.tn + c.fp == 0)
        throw std::invalid_argument("balanced_accuracy: needs members and non-members");
    return 0.5 * (ratio_or_zero(c.tp, c.tp + c.fn) + ratio_or_zero(c.tn, c.tn + c.fp));
}
double accuracy(const Confusion& c) {
    int64_t all = c.tp + c.fp + c.tn + c.fn;
    if (all == 0) throw std::invalid_argument("accuracy: no examples");
    return double(c.tp + c.tn) / double(all);
}
double precision(const Confusion& c) { return ratio_or_zero(c.tp, c.tp + c.fp); }
double recall(const Confusion& c) {
    if (c.tp + c.fn == 0) throw std::invalid_argument("recall: no members");
    return double(c.tp) / double(c.tp + c.fn);
}

double select_threshold(const std::vector<double>& scores, const std::vector<int>& is_member) {
    std::vector<RocPoint> roc = roc_curve(scores, is_member);
    size_t best = 0;  // (0, 0) at +inf: "nobody is a member"
    for (size_t i = 1; i < roc.size(); i++)
        if (roc[i].tpr - roc[i].fpr > roc[best].tpr - roc[best].fpr) best = i;
    if (best == 0) return std::nextafter(roc[1].threshold, kInf);  // just above the highest score
    // The last point (everyone a member) has advantage 0 and never beats (0, 0).
    double here = roc[best].threshold, below = roc[best + 1].threshold;
    double mid = here / 2 + below / 2;  // halves first: no overflow
    return mid > below ? mid : here;    // adjacent doubles: stay on this point
}

namespace {

// The regularized incomplete beta function I_x(a, b), a, b > 0, x in [0, 1],
// by its continued fraction (modified Lentz; Numerical Recipes 6.4), applied
// directly where it converges fast (x < (a + 1) / (a + b + 2)) and through
// I_x(a, b) = 1 - I_{1-x}(b, a) elsewhere.
double beta_cf(double a, double b, double x) {
    const double tiny = 1e-300;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    if (std::fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 10000; m++) {
        const double m2 = 2.0 * m;
        double aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
        d = 1 + aa * d;
        if (std::fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (std::fabs(c) < tiny) c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
        d = 1 + aa * d;
        if (std::fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (std::fabs(c) < tiny) c = tiny;
        d = 1 / d;
        const double del = d * c;
        h *= del;
        if (std::fabs(del - 1) < 1e-15) break;
    }
    return h;
}

double beta_inc(double a, double b, double x) {
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    const double front =
        std::exp(std::lgamma(a + b) - std::lgamma(a) - std::lgamma(b) + a * std::log(x) + b * std::log1p(-x));
    if (x < (a + 1) / (a + b + 2)) return front * beta_cf(a, b, x) / a;
    return 1 - front * beta_cf(b, a, 1 - x) / b;
}

// The p-quantile of Beta(a, b) by bisection on I_x(a, b) (monotone in x),
// to the resolution of doubles.
double beta_quantile(double p, double a, double b) {
    double lo = 0, hi = 1;
    for (int i = 0; i < 200 && hi - lo > 1e-17; i++) {
        const double mid = lo / 2 + hi / 2;
        if (mid <= lo || mid >= hi) break;
        (beta_inc(a, b, mid) < p ? lo : hi) = mid;
    }
    return lo / 2 + hi / 2;
}

void check_proportion(int64_t k, int64_t n, double alpha) {
    if (n < 1 || k < 0 || k > n) throw std::invalid_argument("clopper_pearson: needs 0 <= k <= n and n >= 1");
    if (!(alpha > 0 && alpha < 1)) throw std::invalid_argument("clopper_pearson: alpha must be in (0, 1)");
}

}  // namespace

double clopper_pearson_lower(int64_t k, int64_t n, double alpha) {
    check_proportion(k, n, alpha);
    if (k == 0) return 0;
    if (k == n) return std::pow(alpha, 1.0 / double(n));  // closed form of Beta(n, 1)
    return beta_quantile(alpha, double(k), double(n - k + 1));
}

double clopper_pearson_upper(int64_t k, int64_t n, double alpha) {
    check_proportion(k, n, alpha);
    if (k == n) return 1;
    if (k == 0) return 1 - std::pow(alpha, 1.0 / double(n));  // closed form of Beta(1, n)
    return beta_quantile(1 - alpha, double(k + 1), double(n - k));
}

double epsilon_lower_bound(const std::vector<RocPoint>& roc, int64_t n_members, int64_t n_nonmembers, double alpha) {
    if (n_members < 1 || n_nonmembers < 1) throw std::invalid_argument("epsilon_lower_bound: needs members and non-members");
    double best = 0;
    for (const RocPoint& p : roc) {
        const int64_t tp = std::llround(p.tpr * double(n_members)), fp = std::llround(p.fpr * double(n_nonmembers));
        const int64_t fn = n_members - tp, tn = n_nonmembers - fp;
        const double tpr_low = clopper_pearson_lower(tp, n_members, alpha / 2);
        const double fpr_high = clopper_pearson_upper(fp, n_nonmembers, alpha / 2);
        const double tnr_low = clopper_pearson_lower(tn, n_nonmembers, alpha / 2);
        const double fnr_high = clopper_pearson_upper(fn, n_members, alpha / 2);
        if (tpr_low > 0) best = std::max(best, std::log(tpr_low / fpr_high));
        if (tnr_low > 0) best = std::max(best, std::log(tnr_low / fnr_high));
    }
    return best;
}

double max_ppv(const std::vector<RocPoint>& roc, double r) {
    if (!(r > 0) || std::isinf(r)) throw std::invalid_argument("max_ppv: the ratio of non-members to members must be > 0");
    double best = 0;
    for (const RocPoint& p : roc) {
        const double ppv = p.tpr == 0 && p.fpr == 0 ? 1 / (1 + r) : p.tpr / (p.tpr + r * p.fpr);
        best = std::max(best, ppv);
    }
    return best;
}

AttackMetrics evaluate_attack(const std::vector<double>& scores, const std::vector<int>& is_member,
                              double threshold) {
    std::vector<RocPoint> roc = roc_curve(scores, is_member);
    AttackMetrics m;
    Confusion c = confusion_at(scores, is_member, threshold);
    m.n_members = c.tp + c.fn;
    m.n_nonmembers = c.tn + c.fp;
    m.auc = roc_auc(scores, is_member);
    m.advantage = max_advantage(roc);
    m.tpr_at_1pct_fpr = tpr_at_fpr(roc, 0.01);
    m.tpr_at_01pct_fpr = tpr_at_fpr(roc, 0.001);
    m.tpr_at_001pct_fpr = tpr_at_fpr(roc, 0.0001);
    m.tpr_at_0_fpr = tpr_at_fpr(roc, 0.0);
    m.fpr_resolution = 1.0 / double(m.n_nonmembers);
    m.ppv = max_ppv(roc, double(m.n_nonmembers) / double(m.n_members));
    m.epsilon_lower_bound = epsilon_lower_bound(roc, m.n_members, m.n_nonmembers, 0.05);
    m.threshold = threshold;
    m.balanced_accuracy = balanced_accuracy(c);
    m.accuracy = accuracy(c);
    m.precision = precision(c);
    m.recall = recall(c);
    m.fpr = double(c.fp) / double(m.n_nonmembers);
    return m;
}

MeanStd mean_std(const std::vector<double>& values) {
    if (values.empty()) throw std::invalid_argument("mean_std: no values");
    MeanStd r;
    r.n = int64_t(values.size());
    for (double v : values) {
        if (!std::isfinite(v)) throw std::invalid_argument("mean_std: a value is not finite");
        r.mean += v;
    }
    r.mean /= double(r.n);
    if (r.n > 1) {
        double ss = 0;
        for (double v : values) ss += (v - r.mean) * (v - r.mean);
        r.std = std::sqrt(ss / double(r.n - 1));
    }
    return r;
}

namespace {

// One table of (name, field) so to_json and summarize never disagree.
struct MetricField {
    const char* name;
    double AttackMetrics::*field;
};
const MetricField kMetricFields[] = {
    {"auc", &AttackMetrics::auc},
    {"advantage", &AttackMetrics::advantage},
    {"tpr_at_1pct_fpr", &AttackMetrics::tpr_at_1pct_fpr},
    {"tpr_at_01pct_fpr", &AttackMetrics::tpr_at_01pct_fpr},
    {"tpr_at_001pct_fpr", &AttackMetrics::tpr_at_001pct_fpr},
    {"tpr_at_0_fpr", &AttackMetrics::tpr_at_0_fpr},
    {"fpr_resolution", &AttackMetrics::fpr_resolution},
    {"ppv", &AttackMetrics::ppv},
    {"epsilon_lower_bound", &AttackMetrics::epsilon_lower_bound},
    {"balanced_accuracy", &AttackMetrics::balanced_accuracy},
    {"accuracy", &AttackMetrics::accuracy},
    {"precision", &AttackMetrics::precision},
    {"recall", &AttackMetrics::recall},
    {"fpr", &AttackMetrics::fpr},
};

}  // namespace

nlohmann::json to_json(const AttackMetrics& m) {
    nlohmann::json j;
    j["n_members"] = m.n_members;
    j["n_nonmembers"] = m.n_nonmembers;
    for (const MetricField& f : kMetricFields) j[f.name] = m.*(f.field);
    if (std::isfinite(m.threshold)) j["threshold"] = m.threshold;
    else j["threshold"] = nullptr;
    return j;
}

nlohmann::json summarize(const std::vector<AttackMetrics>& repeats) {
    if (repeats.empty()) throw std::invalid_argument("summarize: no repeats");
    nlohmann::json j;
    for (const MetricField& f : kMetricFields) {
        std::vector<double> v;
        for (const AttackMetrics& m : repeats) v.push_back(m.*(f.field));
        MeanStd s = mean_std(v);
        j[f.name] = {{"mean", s.mean}, {"std", s.std}, {"n", s.n}};
    }
    return j;
}

ScoreHistogram score_histogram(const std::vector<double>& scores, const std::vector<int>& is_member, int bins) {
    check_scored_set(scores, is_member, "score_histogram");
    if (bins < 1 || bins > 100000)
        throw std::invalid_argument("score_histogram: bins must be in [1, 100000], got " + std::to_string(bins));
    auto [lo_it, hi_it] = std::minmax_element(scores.begin(), scores.end());
    double lo = *lo_it, hi = *hi_it;
    if (lo == hi) lo -= 0.5, hi += 0.5;
    ScoreHistogram h;
    for (int i = 0; i <= bins; i++) h.edges.push_back(i == bins ? hi : lo + (hi - lo) * double(i) / bins);
    h.members.assign(size_t(bins), 0);
    h.nonmembers.assign(size_t(bins), 0);
    for (size_t i = 0; i < scores.size(); i++) {
        // (s - lo) / (hi - lo) in [0, 1]; halves first so hi - lo cannot overflow.
        double u = (scores[i] / 2 - lo / 2) / (hi / 2 - lo / 2);
        int b = std::min(bins - 1, int(u * bins));
        (is_member[i] ? h.members : h.nonmembers)[size_t(b)]++;
    }
    return h;
}

void write_roc_csv(const std::string& path, const std::vector<RocPoint>& roc) {
    if (roc.empty()) throw std::invalid_argument("write_roc_csv: empty ROC curve");
    std::string text = "threshold,fpr,tpr\n";
    char line[96];
    for (const RocPoint& p : roc) {
        if (std::isinf(p.threshold))
            std::snprintf(line, sizeof line, "%sinf,%.17g,%.17g\n", p.threshold < 0 ? "-" : "", p.fpr, p.tpr);
        else
            std::snprintf(line, sizeof line, "%.17g,%.17g,%.17g\n", p.threshold, p.fpr, p.tpr);
        text += line;
    }
    // engine/io.h: <path>.tmp.<pid>, fsync, rename; nothing left on failure.
    char err[512];
    if (io_write_file_atomic(path.c_str(), text.data(), text.size(), err, sizeof err) != 0)
        throw std::runtime_error(path + ": " + err);
}

}  // namespace mmia
