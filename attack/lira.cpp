// lira.cpp: LiRA online / offline, per-example / fixed variance (see lira.h).
#include "attack/lira.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace mmia {

namespace {

constexpr double kMinStd = 1e-6;

// Sums over one example's reference models of one kind (IN or OUT).
struct RefStats {
    int64_t count = 0;
    double mean = 0;
    double sq_dev = 0;  // sum of squared deviations from mean
};

// log N(x; mu, sd) up to the constant -log(sqrt(2 pi)), which cancels in a ratio.
double log_normal_density(double x, double mu, double sd) {
    double z = (x - mu) / sd;
    return -std::log(sd) - 0.5 * z * z;
}

}  // namespace

LiraScores lira_scores(const Matrix& phi, const std::vector<int>& membership, int target,
                       const LiraOptions& options) {
    const int64_t M = phi.rows, n = phi.cols;
    if (M < 2) throw std::invalid_argument("lira_scores: needs at least 2 models, got " + std::to_string(M));
    if (n < 1) throw std::invalid_argument("lira_scores: no examples");
    if (phi.values.size() != size_t(M * n))
        throw std::invalid_argument("lira_scores: phi storage does not match its shape");
    if (int64_t(membership.size()) != M * n)
        throw std::invalid_argument("lira_scores: membership has " + std::to_string(membership.size()) +
                                    " entries, phi is " + std::to_string(M) + " models x " +
                                    std::to_string(n) + " examples");
    if (target < 0 || target >= M)
        throw std::invalid_argument("lira_scores: target " + std::to_string(target) + " outside [0, " +
                                    std::to_string(M) + ")");
    for (size_t i = 0; i < phi.values.size(); i++) {
        if (!std::isfinite(phi.values[i]))
            throw std::invalid_argument("lira_scores: phi of model " + std::to_string(i / n) + ", example " +
                                        std::to_string(i % n) + " is not finite");
        if (membership[i] != 0 && membership[i] != 1)
            throw std::invalid_argument("lira_scores: membership of model " + std::to_string(i / n) +
                                        ", example " + std::to_string(i % n) + " is " +
                                        std::to_string(membership[i]) + " (must be 0 or 1)");
    }

    // Per-example IN / OUT statistics over the reference models (all but
    // the target), by Welford's update so large phi offsets cost no precision.
    std::vector<RefStats> in(static_cast<size_t>(n)), out(static_cast<size_t>(n));
    for (int64_t m = 0; m < M; m++) {
        if (m == target) continue;
        for (int64_t j = 0; j < n; j++) {
            RefStats& s = membership[size_t(m * n + j)] ? in[size_t(j)] : out[size_t(j)];
            double x = phi.at(m, j);
            s.count++;
            double d = x - s.mean;
            s.mean += d / double(s.count);
            s.sq_dev += d * (x - s.mean);
        }
    }

    // Fixed (pooled within-example) standard deviations.
    auto pooled_std = [&](const std::vector<RefStats>& stats) {
        double ss = 0;
        int64_t dof = 0;
        for (const RefStats& s : stats)
            if (s.count >= 2) {
                ss += s.sq_dev;
                dof += s.count - 1;
            }
        return dof > 0 ? std::max(std::sqrt(ss / double(dof)), kMinStd) : std::numeric_limits<double>::quiet_NaN();
    };
    const double fixed_in = pooled_std(in), fixed_out = pooled_std(out);
    auto std_of = [&](const RefStats& s, double fixed) {
        if (options.fixed_variance || s.count < 2) return fixed;
        return std::max(std::sqrt(s.sq_dev / double(s.count - 1)), kMinStd);
    };

    LiraScores r;
    r.score.assign(size_t(n), std::numeric_limits<double>::quiet_NaN());
    for (int64_t j = 0; j < n; j++) {
        const RefStats& o = out[size_t(j)];
        const RefStats& i = in[size_t(j)];
        if (o.count == 0 || (options.online && i.count == 0)) continue;
        double sd_out = std_of(o, fixed_out);
        double x = phi.at(target, j);
        double s;
        if (options.online) {
            double sd_in = std_of(i, fixed_in);
            s = log_normal_density(x, i.mean, sd_in) - log_normal_density(x, o.mean, sd_out);
        } else {
            s = (x - o.mean) / sd_out;
        }
        if (!std::isfinite(s)) continue;  // no usable variance (e.g. every example has 1 reference)
        r.score[size_t(j)] = s;
        r.scored.push_back(j);
    }
    return r;
}

namespace {
template <class T>
std::vector<T> pick_impl(const std::vector<T>& v, const std::vector<int64_t>& indices) {
    std::vector<T> out;
    out.reserve(indices.size());
    for (int64_t i : indices) {
        if (i < 0 || size_t(i) >= v.size())
            throw std::invalid_argument("pick: index " + std::to_string(i) + " outside [0, " +
                                        std::to_string(v.size()) + ")");
        out.push_back(v[size_t(i)]);
    }
    return out;
}
}  // namespace

std::vector<double> pick(const std::vector<double>& v, const std::vector<int64_t>& indices) {
    return pick_impl(v, indices);
}
std::vector<int> pick(const std::vector<int>& v, const std::vector<int64_t>& indices) {
    return pick_impl(v, indices);
}
std::vector<int64_t> pick(const std::vector<int64_t>& v, const std::vector<int64_t>& indices) {
    return pick_impl(v, indices);
}

}  // namespace mmia
