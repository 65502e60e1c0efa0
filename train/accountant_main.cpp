// bin/accountant: the DP-SGD accountant on the command line
// (train/dp_accountant.h). Epsilon for given settings, or the noise
// multiplier for a target epsilon.
//
//   bin/accountant --q 0.04 --sigma 1.5 --steps 2250 [--delta 1e-5]
//   bin/accountant --dataset-size 60000 --batch-size 256 --epochs 60 --sigma 1.1
//   bin/accountant --q 0.04 --steps 2250 --target-epsilon 8 [--tolerance 0.01]
//   ... [--orders dp_accounting|opacus|tf-old] [--conversion improved|basic]
//       [--series abs|signed] [--json]
//
// Steps from epochs: ceil(epochs / q) (TF-Privacy's ceil(epochs N / B));
// Opacus's get_noise_multiplier uses int(epochs / q): give --steps to match
// it exactly. Prints one line (or the JSON privacy statement with --json);
// a bad value is one "error: ..." line and exit 2.
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>

#include "common/command_line.h"
#include "train/dp_accountant.h"

int main(int argc, char** argv) {
    CLI::App app{"DP-SGD accountant: RDP of the Poisson-subsampled Gaussian mechanism, composed over steps, "
                 "converted to (epsilon, delta). Prints epsilon, or with --target-epsilon the noise multiplier."};
    double q = NAN, sigma = NAN, epochs = NAN, target = NAN, tolerance = 0.01, delta = 1e-5;
    int64_t steps = -1, dataset_size = -1, batch_size = -1;
    std::string orders = "dp_accounting", conversion = "improved", series = "abs";
    bool json = false;
    app.add_option("--q", q, "sampling rate (expected batch size / dataset size), in [0, 1]")
        ->check(mmia::real_in(0, false, 1, "a sampling rate"));
    app.add_option("--dataset-size", dataset_size, "N: with --batch-size, q = B / N")->check(CLI::Range(int64_t(1), int64_t(1) << 50));
    app.add_option("--batch-size", batch_size, "B (expected batch size): with --dataset-size, q = B / N")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 50));
    app.add_option("--sigma", sigma, "noise multiplier (noise stddev / clipping norm)")
        ->check(mmia::real_in(0, false, 1e6, "a noise multiplier"));
    app.add_option("--steps", steps, "noisy gradient steps")->check(CLI::Range(int64_t(0), int64_t(1) << 50));
    app.add_option("--epochs", epochs, "epochs: steps = ceil(epochs / q)")->check(mmia::real_in(0, false, 1e9, "an epoch count"));
    app.add_option("--delta", delta, "delta, in (0, 1)")->capture_default_str()->check(mmia::real_in(0, true, 1, "a delta", true));
    app.add_option("--target-epsilon", target, "print the noise multiplier that reaches this epsilon instead")
        ->check(mmia::real_in(0, true, 1e6, "an epsilon"));
    app.add_option("--tolerance", tolerance, "with --target-epsilon: stop when epsilon is within this of the target "
                                             "(Opacus's epsilon_tolerance)")->capture_default_str()
        ->check(mmia::real_in(0, true, 1e6, "a tolerance"));
    app.add_option("--orders", orders, "RDP orders: dp_accounting (156), opacus (151), tf-old (72)")->capture_default_str();
    app.add_option("--conversion", conversion, "RDP to (epsilon, delta): improved (Balle et al. 2020, today's "
                                               "libraries) or basic (Mironov 2017)")->capture_default_str();
    app.add_option("--series", series, "fractional orders: abs (dp_accounting, an upper bound) or signed (Opacus)")->capture_default_str();
    app.add_flag("--json", json, "print the privacy statement as JSON");
    int rc = mmia::parse_command_line(app, argc, argv);
    if (rc >= 0) return rc;

    auto usage = [](const std::string& msg) {
        std::fprintf(stderr, "error: %s (see --help)\n", msg.c_str());
        return 2;
    };
    // Unset is NaN for --q, --sigma, --epochs and --target-epsilon; their
    // real_in checks refuse a typed "nan", so NaN here means "not given".
    dp::Accounting a;
    if (!dp::parse_order_set(orders, &a.orders)) return usage("--orders " + orders + ": must be dp_accounting, opacus or tf-old");
    if (conversion == "improved") a.conversion = dp::Conversion::improved;
    else if (conversion == "basic") a.conversion = dp::Conversion::basic;
    else return usage("--conversion " + conversion + ": must be improved or basic");
    if (series == "abs") a.series = dp::FracSeries::abs_terms;
    else if (series == "signed") a.series = dp::FracSeries::signed_terms;
    else return usage("--series " + series + ": must be abs or signed");

    const bool have_q = !std::isnan(q), have_nb = dataset_size > 0 || batch_size > 0;
    if (have_q == have_nb) return usage("give the sampling rate as --q, or as --dataset-size with --batch-size");
    if (have_nb) {
        if (dataset_size <= 0 || batch_size <= 0) return usage("--dataset-size and --batch-size go together");
        if (batch_size > dataset_size) return usage("--batch-size must be <= --dataset-size");
        q = double(batch_size) / double(dataset_size);
    }
    const bool have_steps = steps >= 0, have_epochs = !std::isnan(epochs);
    if (have_steps == have_epochs) return usage("give the length of training as --steps or as --epochs");
    if (have_epochs) {
        if (!(q > 0 && q <= 1)) return usage("--epochs needs a sampling rate in (0, 1]");
        // ceil(epochs N / B) with integers when N and B are given (no rounding of q).
        double s = have_nb ? std::ceil(epochs * double(dataset_size) / double(batch_size)) : std::ceil(epochs / q);
        if (s > 1e15) return usage("--epochs: more than 1e15 steps");
        steps = int64_t(s);
    }
    const bool want_sigma = !std::isnan(target);
    if (want_sigma == !std::isnan(sigma)) return usage("give --sigma (to get epsilon) or --target-epsilon (to get sigma), not both");
    a.q = q;
    a.steps = steps;
    a.delta = delta;
    try {
        if (want_sigma) a.sigma = dp::sigma_for_epsilon(a, target, tolerance);
        else a.sigma = sigma;
        dp::EpsilonAt e = dp::epsilon(a);
        if (json) {
            std::printf("%s\n", dp::statement_json(a, e).c_str());
        } else {
            if (want_sigma) std::printf("sigma %.6g reaches epsilon %.6g <= %.6g (tolerance %g)\n", a.sigma, e.epsilon, target, tolerance);
            std::printf("epsilon %.6g at order %g for q %.6g, sigma %.6g, %lld steps, delta %g "
                        "(RDP of the Poisson-subsampled Gaussian, %s conversion, %s orders, %s series)\n",
                        e.epsilon, e.order, a.q, a.sigma, (long long)a.steps, a.delta, dp::conversion_name(a.conversion),
                        dp::order_set_name(a.orders), dp::series_name(a.series));
        }
    } catch (const std::invalid_argument& e) {
        return usage(e.what());
    }
    return 0;
}
