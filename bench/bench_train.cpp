// bench_train: one training step (forward, cross-entropy, backward, AdamW)
// of the MNIST Mamba presets on a real batch, with the fused selective-scan
// op and with the plain loop of LibTorch ops it replaced; same model, same
// batch, same threads, same run (`make bench` calls it). The epoch time is
// the step time x the steps in one epoch of 60,000 images.
//
//   bin/bench_train [--threads 2] [--steps 5] [--loop-steps 3]
//                   [--presets mamba-mnist,mamba-mnist-p4,mamba-mnist-pixel]
//                   [--loop-max-len 256]
//
// The loop is skipped for presets longer than --loop-max-len tokens (at 784
// tokens one looped step takes minutes); bench_scan times the scan alone
// there.
#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>

#include "bench/bench_util.h"
#include "common/config.h"
#include "common/data.h"
#include "train/mamba_model.h"
#include "train/trainer.h"

using namespace mmia;

int main(int argc, char** argv) {
    CLI::App app{"Training-step time of the MNIST Mamba presets: fused scan vs the LibTorch loop."};
    int threads = 2, steps = 5, loop_steps = 3, loop_max_len = 256;
    std::vector<std::string> presets = {"mamba-mnist", "mamba-mnist-p4", "mamba-mnist-pixel"};
    app.add_option("--threads", threads, "LibTorch threads")->check(CLI::Range(1, 256));
    app.add_option("--steps", steps, "timed steps with the fused op (median)")->check(CLI::Range(1, 1000));
    app.add_option("--loop-steps", loop_steps, "timed steps with the loop (median)")->check(CLI::Range(1, 1000));
    app.add_option("--presets", presets, "config.json presets")->delimiter(',');
    app.add_option("--loop-max-len", loop_max_len, "skip the loop above this many tokens");
    CLI11_PARSE(app, argc, argv);

    try {
        torch::set_num_threads(threads);
        json cfg = load_config_file("config.json");
        Dataset d = load_dataset("mnist");
        const int64_t n_train = d.train.n;
        std::printf("one training step (batch of the preset's batch size, real MNIST), %d threads; "
                    "epoch = %lld images\n", threads, (long long)n_train);
        std::printf("%-20s %6s %6s %12s %12s %9s %14s %14s\n", "preset", "tokens", "batch", "fused ms",
                    "loop ms", "speedup", "epoch (fused)", "epoch (loop)");
        for (const auto& name : presets) {
            ModelSpec spec = resolve_preset(cfg, "mamba", name);
            TrainConfig tc = resolve_training(cfg, name);
            const MambaConfig& mc = spec.mamba;
            validate_mamba(mc, d.train.channels, d.train.height, d.train.width);
            const int64_t L = (d.train.height / mc.patch_h) * (d.train.width / mc.patch_w);
            torch::manual_seed(tc.seed);
            MambaClassifier model(mc, d.train.channels, d.train.height, d.train.width, d.train.n_classes,
                                  d.mean, d.std);
            torch::optim::AdamW opt(model->parameters(),
                                    torch::optim::AdamWOptions(tc.learning_rate).weight_decay(tc.weight_decay));
            auto x = images_to_tensor(d.train).narrow(0, 0, tc.batch_size);
            auto y = labels_to_tensor(d.train).narrow(0, 0, tc.batch_size);
            auto step = [&] {
                opt.zero_grad();
                auto loss = torch::nn::functional::cross_entropy(model->forward(x), y);
                loss.backward();
                opt.step();
            };
            const double steps_per_epoch = std::ceil(double(n_train) / tc.batch_size);
            model->set_loop_scan(false);
            const double fused = median_seconds(steps, step);
            double loop = NAN;
            if (L <= loop_max_len) {
                model->set_loop_scan(true);
                loop = median_seconds(loop_steps, step);
            }
            char loop_ms[32] = "skipped", ratio[32] = "-", loop_epoch[32] = "-";
            if (!std::isnan(loop)) {
                std::snprintf(loop_ms, sizeof loop_ms, "%.1f", loop * 1e3);
                std::snprintf(ratio, sizeof ratio, "%.2fx", loop / fused);
                std::snprintf(loop_epoch, sizeof loop_epoch, "%.0f s", loop * steps_per_epoch);
            }
            char fused_epoch[32];
            std::snprintf(fused_epoch, sizeof fused_epoch, "%.0f s", fused * steps_per_epoch);
            std::printf("%-20s %6lld %6d %12.1f %12s %9s %14s %14s\n", name.c_str(), (long long)L, tc.batch_size,
                        fused * 1e3, loop_ms, ratio, fused_epoch, loop_epoch);
            std::fflush(stdout);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
