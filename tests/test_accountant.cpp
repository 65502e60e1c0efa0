// test_accountant.cpp: the DP-SGD accountant (train/dp_accountant.h)
// against three independent definitions: a hand-worked A_alpha, numerical
// integration of A_alpha's defining expectation, and the reference values
// of the libraries' own test suites and tutorials
// (../shared/notes/defences.md section 1.4 quotes them with their sources).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

#include "tests/cli_check.h"
#include "tests/temp_dir.h"
#include "train/dp_accountant.h"

using namespace dp;

namespace {

const double kInf = std::numeric_limits<double>::infinity();

// |a - b| <= rtol |b|.
bool close_rel(double a, double b, double rtol) { return std::fabs(a - b) <= rtol * std::fabs(b); }

// The defining expectation (arXiv 1908.10530 Thm 4):
// A_alpha = E_{z ~ N(0, sigma^2)} [(1 - q + q e^{(2z - 1)/(2 sigma^2)})^alpha],
// by composite Simpson on [-40 sigma, alpha + 40 sigma] in long double.
// Returns RDP = ln A / (alpha - 1): an oracle that shares no code or
// series with the accountant.
double rdp_by_integration(double q, double sigma, double alpha) {
    const long double s = sigma, lo = -40.0L * s, hi = (long double)alpha + 40.0L * s;
    const int n = 400000;  // even
    const long double h = (hi - lo) / n;
    auto f = [&](long double z) {
        long double phi = std::exp(-z * z / (2 * s * s)) / (s * std::sqrt(2 * M_PIl));
        long double m = 1 - (long double)q + (long double)q * std::exp((2 * z - 1) / (2 * s * s));
        return phi * std::pow(m, (long double)alpha);
    };
    long double sum = f(lo) + f(hi);
    for (int i = 1; i < n; i++) sum += (i % 2 ? 4 : 2) * f(lo + i * h);
    long double a = sum * h / 3;
    return double(std::log(a) / (alpha - 1));
}

}  // namespace

TEST_CASE("order lists: the counts and ends of dp_accounting's, Opacus's and TF-Privacy's old list") {
    std::vector<double> d = default_orders(OrderSet::dp_accounting), o = default_orders(OrderSet::opacus),
                        t = default_orders(OrderSet::tf_old);
    CHECK(d.size() == 156);
    CHECK(o.size() == 151);
    CHECK(t.size() == 72);
    CHECK(d.front() == 1.1);
    CHECK(d[98] == 1 + 99 / 10.0);
    CHECK(d[99] == 11);
    CHECK(d.back() == 1024);
    CHECK(o[99] == 12);  // Opacus has no 11
    CHECK(o.back() == 63);
    CHECK(t.front() == 1.25);
    CHECK(t.back() == 512);
    OrderSet s;
    CHECK(parse_order_set("tf-old", &s));
    CHECK(s == OrderSet::tf_old);
    CHECK_FALSE(parse_order_set("tf_old", &s));
}

TEST_CASE("A_alpha at an integer order equals the hand-worked binomial sum") {
    // q = 0.5, sigma = 1, alpha = 2: (1-q)^2 + 2 q (1-q) e^0 + q^2 e^{(4-2)/2} = 0.75 + 0.25 e.
    double expect = std::log(0.75 + 0.25 * std::exp(1.0));
    CHECK(close_rel(log_a(0.5, 1.0, 2.0, FracSeries::abs_terms), expect, 1e-14));
    CHECK(close_rel(rdp_one_step(0.5, 1.0, 2.0, FracSeries::abs_terms), expect, 1e-14));
    // alpha = 3, q = 0.1, sigma = 2: sum_k C(3,k) 0.9^{3-k} 0.1^k e^{(k^2-k)/8}.
    double a3 = 0.729 + 3 * 0.81 * 0.1 + 3 * 0.9 * 0.01 * std::exp(2.0 / 8) + 0.001 * std::exp(6.0 / 8);
    CHECK(close_rel(rdp_one_step(0.1, 2.0, 3.0, FracSeries::abs_terms), std::log(a3) / 2, 1e-12));
}

TEST_CASE("edge cases: q = 0 spends nothing, q = 1 is the Gaussian mechanism, sigma = 0 and alpha = inf are infinite") {
    CHECK(rdp_one_step(0.0, 1.0, 5.0, FracSeries::abs_terms) == 0);
    CHECK(rdp_one_step(1.0, 2.0, 5.0, FracSeries::abs_terms) == doctest::Approx(5.0 / 8).epsilon(1e-15));
    CHECK(rdp_one_step(0.5, 0.0, 5.0, FracSeries::abs_terms) == kInf);
    CHECK(rdp_one_step(0.5, 1.0, kInf, FracSeries::abs_terms) == kInf);
    CHECK(rdp_steps(0.1, 1.0, 0, {2.0, 3.5}, FracSeries::abs_terms) == std::vector<double>{0.0, 0.0});
    CHECK(rdp_steps(1.0, 2.0, 7, {4.0}, FracSeries::abs_terms)[0] == doctest::Approx(7 * 4.0 / 8).epsilon(1e-15));
}

TEST_CASE("the series agree with numerical integration of A_alpha's definition, integer and fractional orders") {
    struct Case {
        double q, sigma, alpha;
    } cases[] = {{0.04, 1.5, 3.9}, {0.04, 1.5, 1.5}, {0.01, 2.5, 2.5}, {0.2, 1.0, 7.3},
                 {0.04, 1.5, 4.0}, {0.3, 0.8, 2.0}, {0.01, 0.7, 12.0}, {0.1, 3.0, 1.1}};
    for (const Case& c : cases) {
        CAPTURE(c.q);
        CAPTURE(c.sigma);
        CAPTURE(c.alpha);
        double integral = rdp_by_integration(c.q, c.sigma, c.alpha);
        double signed_sum = rdp_one_step(c.q, c.sigma, c.alpha, FracSeries::signed_terms);
        double abs_sum = rdp_one_step(c.q, c.sigma, c.alpha, FracSeries::abs_terms);
        CHECK(close_rel(signed_sum, integral, 1e-7));
        // |terms| is an upper bound (equal at integer orders).
        CHECK(abs_sum >= integral * (1 - 1e-9));
        if (c.alpha == std::floor(c.alpha)) CHECK(close_rel(abs_sum, integral, 1e-7));
    }
}

TEST_CASE("per-step RDP at q 0.04, sigma 1.5: the signed and |terms| series' published values") {
    // defences.md 1.2 [C]: alpha 3.9: integral 1.83320220e-3 = signed series,
    // |terms| 1.83330155e-3; alpha 1.5: 6.63112e-4 signed, 7.28090e-4 |terms|.
    CHECK(close_rel(rdp_one_step(0.04, 1.5, 3.9, FracSeries::signed_terms), 1.83320220e-3, 1e-8));
    CHECK(close_rel(rdp_one_step(0.04, 1.5, 3.9, FracSeries::abs_terms), 1.83330155e-3, 1e-8));
    CHECK(close_rel(rdp_one_step(0.04, 1.5, 1.5, FracSeries::signed_terms), 6.63112e-4, 1e-5));
    CHECK(close_rel(rdp_one_step(0.04, 1.5, 1.5, FracSeries::abs_terms), 7.28090e-4, 1e-5));
}

TEST_CASE("dp_accounting's test: q 0.01, sigma 2.5, 50 steps at six orders") {
    std::vector<double> orders = {1.5, 2.5, 5, 50, 100, kInf};
    std::vector<double> expect = {6.70579741e-4, 1.08548710e-3, 2.18075656e-3, 2.38460375e-2, 1.67416308e2, kInf};
    std::vector<double> r = rdp_steps(0.01, 2.5, 50, orders, FracSeries::abs_terms);
    for (size_t i = 0; i + 1 < orders.size(); i++) {
        CAPTURE(orders[i]);
        CHECK(close_rel(r[i], expect[i], 1e-4));
    }
    CHECK(r.back() == kInf);
}

TEST_CASE("dp_accounting's tests of the conversion: pure DP, the Gaussian mechanism's (1, 1e-6), and round trips") {
    // RDP = 1.1 at orders 2..32, delta 1e-5 -> epsilon 1.32783806176 at order 32.
    std::vector<double> orders, rdp;
    for (int a = 2; a <= 32; a++) {
        orders.push_back(a);
        rdp.push_back(1.1);
    }
    EpsilonAt e = epsilon_from_rdp(orders, rdp, 1e-5, Conversion::improved);
    CHECK(close_rel(e.epsilon, 1.32783806176, 1e-10));
    CHECK(e.order == 32);
    // q = 1, sigma 4.530877117, orders 1.000 .. 99.999 step 0.001: epsilon(1e-6) = 1, delta(1) = 1e-6.
    std::vector<double> fine;
    for (int i = 0; i < 99000; i++) fine.push_back(1 + i / 1000.0);
    std::vector<double> g = rdp_steps(1.0, 4.530877117, 1, fine, FracSeries::abs_terms);
    CHECK(close_rel(epsilon_from_rdp(fine, g, 1e-6, Conversion::improved).epsilon, 1.0, 1e-6));
    CHECK(close_rel(delta_from_rdp(fine, g, 1.0).delta, 1e-6, 1e-5));
    // delta -> epsilon -> delta: the same order is optimal both ways.
    std::vector<double> d = default_orders(OrderSet::dp_accounting);
    for (double q : {0.01, 0.1, 0.8})
        for (double sigma : {1.0, 10.0}) {
            std::vector<double> r = rdp_steps(q, sigma, 100, d, FracSeries::abs_terms);
            EpsilonAt ea = epsilon_from_rdp(d, r, 1e-5, Conversion::improved);
            CAPTURE(q);
            CAPTURE(sigma);
            if (ea.epsilon > 0) CHECK(close_rel(delta_from_rdp(d, r, ea.epsilon).delta, 1e-5, 1e-6));
        }
}

TEST_CASE("TF-Privacy's compute_dp_sgd_privacy reference rows (Poisson, TF's old orders, steps ceil(epochs N / B))") {
    struct Row {
        double n, batch, sigma, epochs, delta, epsilon, order;
    } rows[] = {{60000, 150, 1.3, 15, 1e-5, 0.7242234026109595, 19},
                {100000, 100, 1.0, 30, 1e-7, 1.4154988495444842, 13},
                {1e8, 1024, 0.1, 10, 1e-7, 5907982.3113984, 1.25}};
    for (const Row& r : rows) {
        Accounting a;
        a.q = r.batch / r.n;
        a.sigma = r.sigma;
        a.steps = int64_t(std::ceil(r.epochs * r.n / r.batch));
        a.delta = r.delta;
        a.orders = OrderSet::tf_old;
        EpsilonAt e = epsilon(a);
        CAPTURE(r.n);
        CHECK(close_rel(e.epsilon, r.epsilon, 1e-9));
        CHECK(e.order == r.order);
    }
}

TEST_CASE("TF-Privacy's example-level statement: epochs 1.2, sigma 0.7, delta 1e-5, with and without microbatch doubling") {
    // Poisson q 0.01 (120 steps) and once per epoch (q 1, ceil(1.2) = 2 steps);
    // doubling halves sigma. RDP column of defences.md 1.4.
    struct Row {
        double q;
        int64_t steps;
        double sigma, epsilon;
    } rows[] = {{1.0, 2, 0.7, 10.8602036}, {1.0, 2, 0.35, 26.2880374}, {0.01, 120, 0.7, 3.2392676},
                {0.01, 120, 0.35, 22.6248601}};
    for (const Row& r : rows) {
        Accounting a;
        a.q = r.q;
        a.steps = r.steps;
        a.sigma = r.sigma;
        a.delta = 1e-5;
        CAPTURE(r.q);
        CAPTURE(r.sigma);
        CHECK(close_rel(epsilon(a).epsilon, r.epsilon, 1e-7));
    }
    // The statement test: N 10000, B 64, 5 epochs, sigma 2 halved, delta 1e-6:
    // 13.376 once per epoch, 1.616 Poisson (782 steps).
    Accounting once;
    once.q = 1;
    once.steps = 5;
    once.sigma = 1;
    once.delta = 1e-6;
    CHECK(std::fabs(epsilon(once).epsilon - 13.376) < 5e-4);
    Accounting poisson = once;
    poisson.q = 64.0 / 10000;
    poisson.steps = int64_t(std::ceil(5 * 10000 / 64.0));
    CHECK(poisson.steps == 782);
    CHECK(std::fabs(epsilon(poisson).epsilon - 1.616) < 5e-4);
}

TEST_CASE("Opacus's accountant test: sigma 1.5, q 0.04, 2250 steps, delta 1e-5 -> 7.32911117143 (signed series)") {
    Accounting a;
    a.q = 0.04;
    a.sigma = 1.5;
    a.steps = 2250;
    a.delta = 1e-5;
    a.orders = OrderSet::opacus;
    a.series = FracSeries::signed_terms;
    EpsilonAt e = epsilon(a);
    CHECK(close_rel(e.epsilon, 7.32911117143, 1e-10));
    CHECK(e.order == doctest::Approx(3.9));
    a.series = FracSeries::abs_terms;  // the |terms| upper bound: 7.329335
    CHECK(std::fabs(epsilon(a).epsilon - 7.329335) < 1e-6);
}

TEST_CASE("Opacus's get_noise_multiplier: epsilon 8, q 0.04, 90 epochs (2250 steps) -> 1.416 at tolerance 0.01") {
    Accounting a;
    a.q = 0.04;
    a.steps = 2250;
    a.delta = 1e-5;
    a.orders = OrderSet::opacus;
    a.series = FracSeries::signed_terms;
    double sigma = sigma_for_epsilon(a, 8.0, 0.01);
    CHECK(std::fabs(sigma - 1.416) < 5e-5);
    a.sigma = sigma;
    double eps = epsilon(a).epsilon;
    CHECK(eps <= 8.0);
    CHECK(eps >= 8.0 - 0.01);
    // A tight tolerance lands on the target itself.
    a.sigma = sigma_for_epsilon(a, 8.0, 1e-9);
    CHECK(std::fabs(epsilon(a).epsilon - 8.0) <= 1e-9);
}

TEST_CASE("the MNIST tutorials' epsilons, recomputed (basic = the README's, improved = today's)") {
    struct Row {
        double q, sigma;
        int64_t steps;
        OrderSet orders;
        Conversion conv;
        double epsilon;
    } rows[] = {
        // TF tutorial: N 60000, B 256, 60 epochs = 14063 steps.
        {256.0 / 60000, 1.1, 14063, OrderSet::tf_old, Conversion::basic, 3.0092},
        {256.0 / 60000, 1.1, 14063, OrderSet::tf_old, Conversion::improved, 2.5971},
        {256.0 / 60000, 1.1, 14063, OrderSet::dp_accounting, Conversion::improved, 2.5967},
    };
    for (const Row& r : rows) {
        Accounting a;
        a.q = r.q;
        a.sigma = r.sigma;
        a.steps = r.steps;
        a.orders = r.orders;
        a.conversion = r.conv;
        CAPTURE(r.epsilon);
        CHECK(std::fabs(epsilon(a).epsilon - r.epsilon) < 5e-5);
    }
}

TEST_CASE("bad values are refused with one line naming them") {
    auto message = [](auto f) {
        try {
            f();
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("(no error)");
    };
    CHECK(message([] { rdp_one_step(1.5, 1, 2, FracSeries::abs_terms); }) == "sampling rate q 1.5: must be in [0, 1]");
    CHECK(message([] { rdp_one_step(NAN, 1, 2, FracSeries::abs_terms); }) == "sampling rate q nan: must be in [0, 1]");
    CHECK(message([] { rdp_one_step(0.1, -1, 2, FracSeries::abs_terms); }) ==
          "noise multiplier sigma -1: must be finite and >= 0");
    CHECK(message([] { rdp_one_step(0.1, 1, 0.5, FracSeries::abs_terms); }) == "RDP order 0.5: must be >= 1");
    CHECK(message([] { rdp_steps(0.1, 1, -3, {2.0}, FracSeries::abs_terms); }) == "steps -3: must be >= 0");
    CHECK(message([] { epsilon_from_rdp({2.0}, {1.0}, 0.0, Conversion::improved); }) == "delta 0: must be in (0, 1)");
    Accounting a;
    a.q = 0.01;
    a.steps = 100;
    CHECK(message([&] { sigma_for_epsilon(a, 1e-9, 1e-12); }) ==
          "target epsilon 1e-09: needs a noise multiplier above 2000 (budget too small)");
    a.steps = 0;
    CHECK(message([&] { sigma_for_epsilon(a, 1, 0.01); }) ==
          "target epsilon: with q = 0 or no steps nothing is spent; any noise multiplier meets it");
}

// --- bin/accountant ---------------------------------------------------------

namespace {
CliRun accountant(const std::string& args, const std::string& dir) {
    return cli_run(cli_env_or("ACCOUNTANT_BIN", "bin/accountant"), args, dir);
}
}  // namespace

TEST_CASE("bin/accountant prints the epsilon of the library, one line, and the same number at full precision in --json") {
    TempDir t("accountant");
    CliRun r = accountant("--q 0.04 --sigma 1.5 --steps 2250 --delta 1e-5 --orders opacus --series signed", t.path);
    CHECK(r.code == 0);
    CHECK(r.err == "");
    CHECK(r.out ==
          "epsilon 7.32911 at order 3.9 for q 0.04, sigma 1.5, 2250 steps, delta 1e-05 (RDP of the Poisson-subsampled "
          "Gaussian, improved conversion, opacus orders, signed series)\n");
    // TF-Privacy's first row from N, B and epochs (ceil(15 * 60000 / 150) = 6000 steps).
    r = accountant("--dataset-size 60000 --batch-size 150 --epochs 15 --sigma 1.3 --orders tf-old", t.path);
    CHECK(r.code == 0);
    CHECK(r.out.rfind("epsilon 0.724223 at order 19 for q 0.0025, sigma 1.3, 6000 steps, delta 1e-05 ", 0) == 0);
    // --json: the statement, with epsilon at full precision equal to the library's.
    r = accountant("--q 0.01 --sigma 0.7 --steps 120 --json", t.path);
    CHECK(r.code == 0);
    Accounting a;
    a.q = 0.01;
    a.sigma = 0.7;
    a.steps = 120;
    CHECK(r.out == statement_json(a, epsilon(a)) + "\n");
    size_t at = r.out.find("\"epsilon\": ");
    REQUIRE(at != std::string::npos);
    CHECK(std::stod(r.out.substr(at + 11)) == epsilon(a).epsilon);
    CHECK(close_rel(std::stod(r.out.substr(at + 11)), 3.2392676, 1e-7));
    CHECK(r.out.find("\"n_orders\": 156") != std::string::npos);
}

TEST_CASE("bin/accountant --target-epsilon prints the noise multiplier (Opacus's 1.416 case)") {
    TempDir t("accountant");
    CliRun r = accountant("--q 0.04 --steps 2250 --target-epsilon 8 --orders opacus --series signed", t.path);
    CHECK(r.code == 0);
    CHECK(r.out.rfind("sigma 1.41602 reaches epsilon 7.99", 0) == 0);
    CHECK(r.out.find("<= 8 (tolerance 0.01)\nepsilon 7.99") != std::string::npos);
}

TEST_CASE("bin/accountant refuses bad settings with one line and exit 2") {
    TempDir t("accountant");
    struct Case {
        const char* args;
        const char* line;
    } cases[] = {
        {"--sigma 1 --steps 10", "error: give the sampling rate as --q, or as --dataset-size with --batch-size (see --help)"},
        {"--q 2 --sigma 1 --steps 10", "error: --q: '2' is not a sampling rate in [0, 1] (see --help)"},
        {"--q nan --sigma 1 --steps 10", "error: --q: 'nan' is not a sampling rate in [0, 1] (see --help)"},
        {"--q 0.1 --sigma nan --steps 10", "error: --sigma: 'nan' is not a noise multiplier in [0, 1e+06] (see --help)"},
        {"--q 0.1 --sigma 1 --epochs NaN", "error: --epochs: 'NaN' is not an epoch count in [0, 1e+09] (see --help)"},
        {"--q 0.1 --sigma 1 --epochs inf", "error: --epochs: 'inf' is not an epoch count in [0, 1e+09] (see --help)"},
        {"--q 0.1 --steps 10 --target-epsilon nan", "error: --target-epsilon: 'nan' is not an epsilon in (0, 1e+06] (see --help)"},
        {"--q 0.1 --steps 10 --target-epsilon 1 --tolerance 0", "error: --tolerance: '0' is not a tolerance in (0, 1e+06] (see --help)"},
        {"--q 0.1 --sigma -1 --steps 10", "error: --sigma: '-1' is not a noise multiplier in [0, 1e+06] (see --help)"},
        {"--q 0.1 --sigma 1", "error: give the length of training as --steps or as --epochs (see --help)"},
        {"--q 0.1 --sigma 1 --steps 10 --epochs 1", "error: give the length of training as --steps or as --epochs (see --help)"},
        {"--q 0.1 --steps 10", "error: give --sigma (to get epsilon) or --target-epsilon (to get sigma), not both (see --help)"},
        {"--q 0.1 --sigma 1 --steps 10 --target-epsilon 1",
         "error: give --sigma (to get epsilon) or --target-epsilon (to get sigma), not both (see --help)"},
        {"--q 0.1 --sigma 1 --steps 10 --delta 0", "error: --delta: '0' is not a delta in (0, 1) (see --help)"},
        {"--q 0.1 --sigma 1 --steps 10 --delta 1", "error: --delta: '1' is not a delta in (0, 1) (see --help)"},
        {"--q 0.1 --sigma 1 --steps 10 --orders tf", "error: --orders tf: must be dp_accounting, opacus or tf-old (see --help)"},
        {"--q 0.1 --sigma 1 --steps 10 --conversion tight", "error: --conversion tight: must be improved or basic (see --help)"},
        {"--q 0.1 --sigma 1 --steps 10 --series exact", "error: --series exact: must be abs or signed (see --help)"},
        {"--dataset-size 10 --batch-size 20 --sigma 1 --steps 10", "error: --batch-size must be <= --dataset-size (see --help)"},
        {"--q 0.01 --steps 100 --target-epsilon 1e-9",
         "error: target epsilon 1e-09: needs a noise multiplier above 2000 (budget too small) (see --help)"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.args);
        CliRun r = accountant(c.args, t.path);
        CHECK(r.code == 2);
        CHECK(r.out == "");
        CHECK(r.err == std::string(c.line) + "\n");
    }
}
