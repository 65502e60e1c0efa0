// dp_accountant.cpp: RDP of the Poisson-subsampled Gaussian and its
// conversion to (epsilon, delta). Formulas and sources: dp_accountant.h.
#include "train/dp_accountant.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>

namespace dp {

namespace {

const double kInf = std::numeric_limits<double>::infinity();

[[noreturn]] void fail(const char* fmt, double v) {
    char buf[200];
    std::snprintf(buf, sizeof buf, fmt, v);
    throw std::invalid_argument(buf);
}

// ln(e^x + e^y).
double log_add(double x, double y) {
    double a = std::min(x, y), b = std::max(x, y);
    if (a == -kInf) return b;
    return std::log1p(std::exp(a - b)) + b;
}

// ln(e^x - e^y) for x >= y; -inf when equal.
double log_sub(double x, double y) {
    if (y == -kInf) return x;
    if (x == y) return -kInf;
    return x + std::log1p(-std::exp(y - x));
}

// ln erfc(x), accurate where erfc underflows. erfc(x) is representable
// down to about 1e-308 (x ~ 26.5); above 25 the asymptotic series
// erfc(x) = e^{-x^2} / (x sqrt(pi)) * (1 - 1/(2x^2) + 3/(4x^4) - 15/(8x^6) + ...)
// is accurate to below 1e-10 relative.
double log_erfc(double x) {
    if (x < 25.0) return std::log(std::erfc(x));
    double x2 = x * x, inv = 1.0 / (2.0 * x2);
    double series = 1.0 - inv + 3.0 * inv * inv - 15.0 * inv * inv * inv + 105.0 * inv * inv * inv * inv;
    return -x2 - std::log(x) - 0.5 * std::log(M_PI) + std::log(series);
}

// ln |C(n, k)| for real n and integer k >= 0 (the generalised binomial):
// lgamma of |Gamma|, as scipy's gammaln.
double log_abs_binom(double n, double k) { return std::lgamma(n + 1) - std::lgamma(k + 1) - std::lgamma(n - k + 1); }

// The sign of the generalised binomial C(alpha, i) = prod_{m<i} (alpha - m) / i!.
// For alpha > 0 non-integer it is + while i <= alpha + 1, then alternates.
bool binom_positive(double alpha, int64_t i) {
    int64_t negatives = 0;
    for (int64_t m = 0; m < i; m++)
        if (alpha - double(m) < 0) negatives++;
    return negatives % 2 == 0;
}

// Integer order: A = sum_{k=0..alpha} C(alpha,k) (1-q)^{alpha-k} q^k e^{(k^2-k)/(2 sigma^2)}.
double log_a_int(double q, double sigma, int64_t alpha) {
    double la = -kInf, log1mq = std::log1p(-q), lq = std::log(q);
    for (int64_t k = 0; k <= alpha; k++) {
        double s = log_abs_binom(double(alpha), double(k)) + double(k) * lq + double(alpha - k) * log1mq +
                   double(k * k - k) / (2 * sigma * sigma);
        la = log_add(la, s);
    }
    return la;
}

// One term pair of the fractional series (arXiv 1908.10530 sec. 3.3) at
// index i: log|s0|, log|s1|.
void frac_terms(double q, double sigma, double alpha, double z0, int64_t ii, double* ls0, double* ls1) {
    double i = double(ii), j = alpha - i;
    double log_coef = log_abs_binom(alpha, i);
    double lq = std::log(q), log1mq = std::log1p(-q);
    double log_t0 = log_coef + i * lq + j * log1mq;
    double log_t1 = log_coef + j * lq + i * log1mq;
    double log_e0 = std::log(0.5) + log_erfc((i - z0) / (std::sqrt(2.0) * sigma));
    double log_e1 = std::log(0.5) + log_erfc((z0 - j) / (std::sqrt(2.0) * sigma));
    *ls0 = log_t0 + (i * i - i) / (2 * sigma * sigma) + log_e0;
    *ls1 = log_t1 + (j * j - j) / (2 * sigma * sigma) + log_e1;
}

double log_a_frac(double q, double sigma, double alpha, FracSeries series) {
    double z0 = sigma * sigma * std::log(1 / q - 1) + 0.5;
    if (series == FracSeries::abs_terms) {
        double a0 = -kInf, a1 = -kInf, last0 = -kInf, last1 = -kInf;
        for (int64_t i = 0; i < 1000; i++) {
            double s0, s1;
            frac_terms(q, sigma, alpha, z0, i, &s0, &s1);
            a0 = log_add(a0, s0);
            a1 = log_add(a1, s1);
            double total = log_add(a0, a1);
            if (s0 < last0 && s1 < last1 && std::max(s0, s1) < total - 30) return total;
            last0 = s0;
            last1 = s1;
        }
        return kInf;  // did not converge: the order is dropped, as dp_accounting does
    }
    // Signed: keep each half as (sign, log magnitude).
    double a0 = -kInf, a1 = -kInf;
    bool pos0 = true, pos1 = true;
    auto accumulate = [](double* acc, bool* pos, double term, bool term_pos) {
        if (*acc == -kInf) {
            *acc = term;
            *pos = term_pos;
        } else if (*pos == term_pos) {
            *acc = log_add(*acc, term);
        } else if (*acc >= term) {
            *acc = log_sub(*acc, term);
        } else {
            *acc = log_sub(term, *acc);
            *pos = term_pos;
        }
    };
    for (int64_t i = 0;; i++) {
        double s0, s1;
        frac_terms(q, sigma, alpha, z0, i, &s0, &s1);
        bool positive = binom_positive(alpha, i);
        accumulate(&a0, &pos0, s0, positive);
        accumulate(&a1, &pos1, s1, positive);
        if (std::max(s0, s1) < -30) break;
        if (i >= 1000) return kInf;  // no convergence: the order is dropped (dp_accounting's cap)
    }
    // Both halves are integrals of positive functions: a negative half means
    // the series lost its precision (not seen on the reference cases).
    if (!pos0 || !pos1) return kInf;
    return log_add(a0, a1);
}

void check_q_sigma(double q, double sigma) {
    if (!(q >= 0 && q <= 1)) fail("sampling rate q %g: must be in [0, 1]", q);
    if (!(sigma >= 0) || std::isinf(sigma)) fail("noise multiplier sigma %g: must be finite and >= 0", sigma);
}

void check_delta(double delta) {
    if (!(delta > 0 && delta < 1)) fail("delta %g: must be in (0, 1)", delta);
}

}  // namespace

std::vector<double> default_orders(OrderSet set) {
    std::vector<double> o;
    if (set == OrderSet::tf_old) {
        o = {1.25, 1.5, 1.75, 2., 2.25, 2.5, 3., 3.5, 4., 4.5};
        for (int a = 5; a < 64; a++) o.push_back(a);
        o.insert(o.end(), {128, 256, 512});
        return o;
    }
    for (int x = 1; x < 100; x++) o.push_back(1 + x / 10.0);
    for (int a = set == OrderSet::opacus ? 12 : 11; a < 64; a++) o.push_back(a);
    if (set == OrderSet::dp_accounting) o.insert(o.end(), {128, 256, 512, 1024});
    return o;
}

const char* order_set_name(OrderSet set) {
    switch (set) {
        case OrderSet::dp_accounting: return "dp_accounting";
        case OrderSet::opacus: return "opacus";
        case OrderSet::tf_old: return "tf-old";
    }
    return "?";
}

bool parse_order_set(const std::string& name, OrderSet* out) {
    for (OrderSet s : {OrderSet::dp_accounting, OrderSet::opacus, OrderSet::tf_old})
        if (name == order_set_name(s)) {
            *out = s;
            return true;
        }
    return false;
}

double log_a(double q, double sigma, double alpha, FracSeries series) {
    if (alpha == std::floor(alpha) && alpha < 1e9) return log_a_int(q, sigma, int64_t(alpha));
    return log_a_frac(q, sigma, alpha, series);
}

double rdp_one_step(double q, double sigma, double alpha, FracSeries series) {
    check_q_sigma(q, sigma);
    if (!(alpha >= 1)) fail("RDP order %g: must be >= 1", alpha);
    if (q == 0) return 0;
    if (std::isinf(alpha) || sigma == 0) return kInf;
    if (q == 1) return alpha / (2 * sigma * sigma);
    if (alpha == 1) fail("RDP order %g: the series needs an order > 1", alpha);
    return log_a(q, sigma, alpha, series) / (alpha - 1);
}

std::vector<double> rdp_steps(double q, double sigma, int64_t steps, const std::vector<double>& orders,
                              FracSeries series) {
    if (steps < 0) fail("steps %g: must be >= 0", double(steps));
    std::vector<double> r(orders.size());
    for (size_t i = 0; i < orders.size(); i++) {
        double one = rdp_one_step(q, sigma, orders[i], series);
        r[i] = steps == 0 ? 0 : double(steps) * one;
    }
    return r;
}

EpsilonAt epsilon_from_rdp(const std::vector<double>& orders, const std::vector<double>& rdp, double delta,
                           Conversion conversion) {
    check_delta(delta);
    if (orders.size() != rdp.size() || orders.empty())
        throw std::invalid_argument("epsilon_from_rdp: orders and RDP values differ in number (or none)");
    EpsilonAt best{kInf, orders[0]};
    for (size_t i = 0; i < orders.size(); i++) {
        double a = orders[i], r = rdp[i];
        if (!(a >= 1)) fail("RDP order %g: must be >= 1", a);
        if (std::isnan(r)) fail("RDP value %g: not a number", r);
        double eps;
        if (conversion == Conversion::basic) {
            eps = a > 1 ? r + std::log(1 / delta) / (a - 1) : kInf;
        } else if (r < 0 || delta * delta + std::expm1(-r) > 0) {
            eps = 0;  // KL bound: delta <= sqrt(1 - e^-KL)
        } else if (a > 1.01) {
            eps = r + std::log1p(-1 / a) - std::log(delta * a) / (a - 1);
        } else {
            eps = kInf;
        }
        if (eps < best.epsilon) best = {eps, a};
    }
    best.epsilon = std::max(0.0, best.epsilon);
    return best;
}

DeltaAt delta_from_rdp(const std::vector<double>& orders, const std::vector<double>& rdp, double epsilon) {
    if (!(epsilon >= 0)) fail("epsilon %g: must be >= 0", epsilon);
    if (orders.size() != rdp.size() || orders.empty())
        throw std::invalid_argument("delta_from_rdp: orders and RDP values differ in number (or none)");
    DeltaAt best{kInf, orders[0]};
    double best_log = kInf;
    for (size_t i = 0; i < orders.size(); i++) {
        double a = orders[i], r = rdp[i];
        if (!(a >= 1)) fail("RDP order %g: must be >= 1", a);
        double logdelta = r <= 0 ? -kInf : 0.5 * std::log1p(-std::exp(-r));
        if (a > 1.01) logdelta = std::min(logdelta, (a - 1) * (r - epsilon + std::log1p(-1 / a)) - std::log(a));
        if (logdelta < best_log) {
            best_log = logdelta;
            best.order = a;
        }
    }
    best.delta = std::min(std::exp(best_log), 1.0);
    return best;
}

EpsilonAt epsilon(const Accounting& a) {
    std::vector<double> orders = default_orders(a.orders);
    return epsilon_from_rdp(orders, rdp_steps(a.q, a.sigma, a.steps, orders, a.series), a.delta, a.conversion);
}

double sigma_for_epsilon(Accounting a, double target_epsilon, double tolerance) {
    if (!(target_epsilon > 0) || std::isinf(target_epsilon))
        fail("target epsilon %g: must be finite and > 0", target_epsilon);
    if (!(tolerance > 0)) fail("epsilon tolerance %g: must be > 0", tolerance);
    check_q_sigma(a.q, 1.0);
    check_delta(a.delta);
    if (a.q == 0 || a.steps == 0)
        throw std::invalid_argument("target epsilon: with q = 0 or no steps nothing is spent; any noise multiplier meets it");
    const double max_sigma = 2000;
    double sigma_low = 0, sigma_high = 10, eps_high = kInf;
    while (eps_high > target_epsilon) {
        sigma_high *= 2;
        a.sigma = sigma_high;
        eps_high = epsilon(a).epsilon;
        if (sigma_high > max_sigma) {
            char buf[200];
            std::snprintf(buf, sizeof buf, "target epsilon %g: needs a noise multiplier above %g (budget too small)",
                          target_epsilon, max_sigma);
            throw std::invalid_argument(buf);
        }
    }
    while (target_epsilon - eps_high > tolerance) {
        double sigma = (sigma_low + sigma_high) / 2;
        if (sigma == sigma_low || sigma == sigma_high) break;  // the interval cannot shrink further
        a.sigma = sigma;
        double eps = epsilon(a).epsilon;
        if (eps < target_epsilon) {
            sigma_high = sigma;
            eps_high = eps;
        } else {
            sigma_low = sigma;
        }
    }
    return sigma_high;
}

const char* conversion_name(Conversion c) { return c == Conversion::improved ? "improved" : "basic"; }
const char* series_name(FracSeries s) { return s == FracSeries::abs_terms ? "abs" : "signed"; }

std::string statement_json(const Accounting& a, const EpsilonAt& e) {
    auto num = [](double v) {
        if (std::isinf(v)) return std::string("\"inf\"");
        char b[40];
        std::snprintf(b, sizeof b, "%.17g", v);
        return std::string(b);
    };
    char steps[32];
    std::snprintf(steps, sizeof steps, "%lld", (long long)a.steps);
    return std::string("{\"mechanism\": \"subsampled_gaussian\", \"accountant\": \"rdp\", \"sampling\": \"poisson\", ") +
           "\"neighbouring\": \"add_or_remove_one\", \"q\": " + num(a.q) + ", \"sigma\": " + num(a.sigma) +
           ", \"steps\": " + steps + ", \"delta\": " + num(a.delta) + ", \"epsilon\": " + num(e.epsilon) +
           ", \"order\": " + num(e.order) + ", \"conversion\": \"" + conversion_name(a.conversion) +
           "\", \"orders\": \"" + order_set_name(a.orders) + "\", \"n_orders\": " +
           std::to_string(default_orders(a.orders).size()) + ", \"series\": \"" + series_name(a.series) + "\"}";
}

}  // namespace dp
