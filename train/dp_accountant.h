// dp_accountant.h: the privacy accountant of DP-SGD. Renyi differential
// privacy (RDP) of the Poisson-subsampled Gaussian mechanism, composed over
// training steps, and its conversion to (epsilon, delta)-DP. Plain C++ and
// libm: no C/C++ library implements this accountant and Debian packages none.
//
// Sources (formulas as ../shared/notes/defences.md section 1.2 gives them):
// - Mironov, Talwar, Zhang 2019, "Renyi Differential Privacy of the Sampled
//   Gaussian Mechanism", arXiv 1908.10530: A_alpha for integer orders (sec.
//   3.2) and the series for fractional orders (sec. 3.3).
// - The conversion to (epsilon, delta): Balle et al. 2020 Thm 21 =
//   Canonne, Kamath, Steinke 2020 Prop 12 ("improved", what Opacus and
//   Google's dp_accounting use today); Mironov 2017 Prop 3 ("basic", what
//   older papers and tutorials quote).
// - The numerical conventions of Google's dp_accounting
//   (rdp_privacy_accountant.py) and of Opacus (accountants/analysis/rdp.py):
//   order lists, the KL-divergence shortcut, alpha > 1.01, the two ways of
//   summing the fractional series, and Opacus's bisection for sigma.
//
// Units: epsilon and RDP in nats; q a probability (the expected batch
// size / dataset size); sigma the noise multiplier (noise stddev / clipping
// norm C); steps the number of noisy gradient steps. Add/remove-one
// neighbouring datasets throughout.
//
// Errors: functions throw std::invalid_argument with a one-line message
// naming the bad value (q outside [0, 1], sigma < 0, steps < 0, an order
// < 1, delta outside (0, 1), a NaN anywhere).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace dp {

// How the series for a fractional order is summed (arXiv 1908.10530 sec.
// 3.3; its binomial coefficients alternate in sign for i > alpha + 1).
enum class FracSeries {
    // dp_accounting: |terms| summed, stopped when both halves decrease and
    // are 30 nats below the total; +inf (the order is dropped) after 1000
    // terms. An upper bound on A_alpha, so epsilon stays valid.
    abs_terms,
    // Opacus: signed terms (log-space add and subtract), stopped when both
    // new terms are below e^-30; +inf after 1000 terms, as abs_terms. Equal
    // to the integral up to rounding.
    signed_terms,
};

// epsilon from RDP at each order.
enum class Conversion {
    // eps = min_a [RDP(a) + ln(1 - 1/a) - (ln delta + ln a) / (a - 1)],
    // a > 1.01 only; 0 where delta^2 + expm1(-RDP) > 0 (KL bound).
    improved,
    // eps = min_a [RDP(a) + ln(1/delta) / (a - 1)] (Mironov 2017 Prop 3).
    basic,
};

// The order lists of the two libraries and of TF-Privacy's deprecated
// compute_dp_sgd_privacy.
//   dp_accounting: 1.1..10.9 step 0.1, 11..63, 128, 256, 512, 1024 (156)
//   opacus:        1.1..10.9 step 0.1, 12..63                      (151)
//   tf_old:        1.25 1.5 1.75 2 2.25 2.5 3 3.5 4 4.5, 5..63, 128, 256, 512 (72)
enum class OrderSet { dp_accounting, opacus, tf_old };
std::vector<double> default_orders(OrderSet set);
// "dp_accounting", "opacus", "tf-old"; parse returns false for other names.
const char* order_set_name(OrderSet set);
bool parse_order_set(const std::string& name, OrderSet* out);

// ln A_alpha of one step, 0 < q < 1, sigma > 0, alpha > 1 (integer alphas
// use the exact binomial sum whatever `series` says). May be +inf
// (abs_terms that did not converge).
double log_a(double q, double sigma, double alpha, FracSeries series);

// RDP of one step of the Poisson-subsampled Gaussian at order alpha:
// 0 if q == 0; +inf if sigma == 0 or alpha is +inf; alpha / (2 sigma^2)
// if q == 1; else ln A_alpha / (alpha - 1).
double rdp_one_step(double q, double sigma, double alpha, FracSeries series);

// RDP after `steps` steps (composition adds): steps * rdp_one_step, per
// order. Shape: [orders.size()].
std::vector<double> rdp_steps(double q, double sigma, int64_t steps, const std::vector<double>& orders,
                              FracSeries series);

struct EpsilonAt {
    double epsilon;  // >= 0, may be +inf
    double order;    // the order that gave it
};

// The smallest epsilon over the orders for this delta (0 < delta < 1).
// rdp.size() must equal orders.size().
EpsilonAt epsilon_from_rdp(const std::vector<double>& orders, const std::vector<double>& rdp, double delta,
                           Conversion conversion);

// delta for a given epsilon (improved conversion, dp_accounting's
// compute_delta: min over orders of the RDP bound and the KL bound
// 0.5 ln(1 - e^-RDP)); at most 1.
struct DeltaAt {
    double delta;
    double order;
};
DeltaAt delta_from_rdp(const std::vector<double>& orders, const std::vector<double>& rdp, double epsilon);

// Everything that decides an epsilon, in one place (what a privacy statement
// records).
struct Accounting {
    double q = 0;
    double sigma = 0;
    int64_t steps = 0;
    double delta = 1e-5;
    OrderSet orders = OrderSet::dp_accounting;
    Conversion conversion = Conversion::improved;
    FracSeries series = FracSeries::abs_terms;
};
EpsilonAt epsilon(const Accounting& a);

// The noise multiplier that reaches target_epsilon, by Opacus's procedure
// (get_noise_multiplier): double sigma_high from 10 until epsilon <= target,
// then bisect [0, sigma_high] until target - epsilon(sigma_high) <=
// tolerance; returns sigma_high (the side that meets the target). a.sigma is
// ignored. Throws when sigma_high passes 2000 (the budget is too small:
// "target epsilon ... needs a noise multiplier above 2000").
double sigma_for_epsilon(Accounting a, double target_epsilon, double tolerance);

// The privacy statement of one accounting as a JSON object (one line):
// mechanism, sampling, q, sigma, steps, delta, epsilon, order, conversion,
// orders (name and count), series. Numbers at full precision (%.17g);
// epsilon +inf is written as the string "inf".
std::string statement_json(const Accounting& a, const EpsilonAt& e);

const char* conversion_name(Conversion c);  // "improved", "basic"
const char* series_name(FracSeries s);      // "abs", "signed"

}  // namespace dp
