// bin/train: trains a classifier on a real dataset, or a language model on a
// corpus, and writes a checkpoint.
//
//   bin/train --model mamba|cnn --dataset mnist|fashion|cifar10 [--preset mamba-mnist] [--epochs 10]
//             [--seed 42] [--threads 2] [--output checkpoints/mnist_mamba-mnist.pt]
//   bin/train --model mamba|cnn ... --dp-noise-multiplier 1.1 | --target-epsilon 8
//             [--dp-max-grad-norm 1] [--dp-sample-rate q (default batch/N)] [--dp-delta 1e-5]
//   bin/train --model mamba-lm|transformer-lm --corpus data/corpora/NAME [--preset mamba-lm-s]
//             [--epochs 1] [--batch-size 16] [--lr 0.002] [--seed 42] [--threads 2]
//             [--checkpoint-every STEPS] [--output checkpoints/NAME_mamba-lm-s.pt] [--force]
//
// Re-running the same command resumes an interrupted run (or does nothing if
// it finished); a checkpoint from another configuration is never overwritten
// without --force.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <thread>

#include "common/command_line.h"
#include "common/config.h"
#include "common/corpus.h"
#include "common/data.h"
#include "train/lm_trainer.h"
#include "train/trainer.h"

using namespace mmia;

int main(int argc, char** argv) {
    keep_freed_memory();
    CLI::App app{"Train a classifier (LibTorch) and write a checkpoint for bin/export."};
    std::string model = "mamba", dataset = "mnist", preset, data_dir, output, augment, corpus_dir,
                config_path = "config.json";
    int epochs = 0, batch_size = 0, threads = 0, checkpoint_every = -1;
    double lr = 0;
    uint64_t seed = 0;
    int64_t limit_train = 0;
    bool force = false;
    app.add_option("--model", model, "model kind: mamba | cnn (images), mamba-lm | transformer-lm (text)")
        ->check(CLI::IsMember({"mamba", "cnn", "mamba-lm", "transformer-lm"}));
    auto* dataset_opt = app.add_option("--dataset", dataset, "images: mnist | fashion | cifar10");
    auto* corpus_opt = app.add_option("--corpus", corpus_dir, "language models: a built corpus directory (common/corpus.h)");
    auto* every_opt = app.add_option("--checkpoint-every", checkpoint_every,
                                     "language models: also checkpoint every N steps inside an epoch (0 = per epoch)")
                          ->check(int_in(0, 1 << 30));
    app.add_option("--preset", preset, "preset in config.json (default: the model's default)");
    app.add_option("--config", config_path, "config file")->capture_default_str();
    auto* data_dir_opt = app.add_option("--data-dir", data_dir, "images: directory holding the dataset files");
    app.add_option("--epochs", epochs, "override the preset's epochs")->check(int_in(1, 100000));
    auto* batch_opt = app.add_option("--batch-size", batch_size, "override the batch size")->check(int_in(1, 1 << 20));
    // The range config.json allows: CLI::PositiveNumber would let inf and
    // nan through (nan <= 0 is false), and training would diverge at once.
    app.add_option("--lr", lr, "override the learning rate (1e-12..10)")
        ->check(real_in(1e-12, false, 10, "a learning rate"));
    auto* augment_opt =
        app.add_option("--augment", augment,
                       "images: override the augmentation: none | crop-flip (shift <= 4 px, mirror) | shift2 "
                       "(shift <= 2 px: digits) | shift2-flip (shift <= 2 px, mirror), seeded")
            ->check(CLI::IsMember({"none", "crop-flip", "shift2", "shift2-flip"}));
    auto* seed_opt = app.add_option("--seed", seed, "override the seed")->check(seed_range());
    app.add_option("--threads", threads, "intra-op threads (default: all cores)")->check(int_in(1, 1024));
    auto* limit_opt = app.add_option("--limit-train", limit_train, "images: train on the first N training images only")
        ->check(int_in(int64_t(1), int64_t(1) << 40));
    double weight_decay = -1, label_smoothing = 0;
    app.add_option("--weight-decay", weight_decay,
                   "override the preset's AdamW weight decay (decoupled: each step w -= lr * wd * w)")
        ->check(real_in(0, false, 10, "a weight decay"));
    auto* smooth_opt = app.add_option("--label-smoothing", label_smoothing,
                                      "images: targets (1 - eps) onehot + eps / classes (default 0)")
                           ->check(real_in(0, false, 0.99, "a label smoothing"));
    double dropout = 0;
    int early_stopping = 0;
    auto* dropout_opt = app.add_option("--dropout", dropout,
                                       "images: dropout probability while training (Mamba: block outputs and the "
                                       "pooled vector; CNN: every dense layer's input); off at eval")
                            ->check(real_in(0, false, 0.99, "a dropout probability"));
    auto* es_opt = app.add_option("--early-stopping", early_stopping,
                                  "images: stop after PATIENCE epochs without a lower validation loss (validation: "
                                  "a seeded 10% of the training images, not trained on); keep the best epoch")
                       ->check(int_in(1, 1000));
    // DP-SGD (image models): on with --dp-noise-multiplier or --target-epsilon.
    double dp_sigma = -1, dp_clip = 1.0, dp_q = 0, dp_delta = 1e-5, target_epsilon = 0;
    auto* sigma_opt = app.add_option("--dp-noise-multiplier", dp_sigma,
                                     "DP-SGD: noise stddev / clipping norm (sigma); turns DP-SGD on")
                          ->check(real_in(0, false, 1000, "a noise multiplier"));
    auto* target_opt = app.add_option("--target-epsilon", target_epsilon,
                                      "DP-SGD: find sigma by bisection so that epsilon <= this (within 1%); turns DP-SGD on")
                           ->check(real_in(0, true, 1000, "an epsilon"));
    auto* clip_opt = app.add_option("--dp-max-grad-norm", dp_clip, "DP-SGD: per-example gradient clipping norm C (default 1)")
                         ->check(real_in(0, true, 1e6, "a clipping norm"));
    auto* q_opt = app.add_option("--dp-sample-rate", dp_q,
                                 "DP-SGD: Poisson sampling rate q (default batch size / training images)")
                      ->check(real_in(0, true, 1, "a sampling rate"));
    auto* delta_opt = app.add_option("--dp-delta", dp_delta,
                                     "DP-SGD: the statement's delta (default 1e-5, below 1/N for MNIST and CIFAR-10)")
                          ->check(real_in(0, true, 0.5, "a delta"));
    std::string dp_per_example;
    auto* per_example_opt = app.add_option("--dp-per-example-grads", dp_per_example,
                   "DP-SGD: how per-example gradients are computed: expanded (expanded weights, one batched "
                   "backward; models without batch norm) or microbatch (a backward per example; any model); "
                   "default: expanded where the model has it (the faster measured)")
        ->check(CLI::IsMember({"expanded", "microbatch"}));
    app.add_option("--output", output, "checkpoint path (default: <save_dir>/<dataset>_<preset>.pt)");
    app.add_flag("--force", force, "overwrite a checkpoint made with another configuration");
    if (int code = parse_command_line(app, argc, argv); code >= 0) return code;
    // Flags of the other family of models: a usage error, like any bad flag.
    const bool lm = is_lm_model(model);
    for (auto* opt : {dataset_opt, data_dir_opt, augment_opt, limit_opt, smooth_opt, dropout_opt, es_opt})
        if (lm && opt->count() > 0) {
            std::fprintf(stderr, "error: %s is for image models; a language model trains on --corpus (see --help)\n",
                         opt->get_name().c_str());
            return 2;
        }
    for (auto* opt : {corpus_opt, every_opt})
        if (!lm && opt->count() > 0) {
            std::fprintf(stderr, "error: %s is for language models (--model mamba-lm | transformer-lm) (see --help)\n",
                         opt->get_name().c_str());
            return 2;
        }
    const bool dp_on = sigma_opt->count() > 0 || target_opt->count() > 0;
    if (sigma_opt->count() > 0 && target_opt->count() > 0) {
        std::fprintf(stderr, "error: --target-epsilon and --dp-noise-multiplier: give one (--target-epsilon finds the "
                             "noise multiplier) (see --help)\n");
        return 2;
    }
    for (auto* opt : {clip_opt, q_opt, delta_opt, per_example_opt})
        if (!dp_on && opt->count() > 0) {
            std::fprintf(stderr, "error: %s is a DP-SGD setting: DP-SGD is on with --dp-noise-multiplier or "
                                 "--target-epsilon (see --help)\n", opt->get_name().c_str());
            return 2;
        }
    if (q_opt->count() > 0 && batch_opt->count() > 0) {
        std::fprintf(stderr, "error: --batch-size and --dp-sample-rate: give one (DP-SGD's expected batch is q * N) "
                             "(see --help)\n");
        return 2;
    }
    if (lm && dp_on) {
        std::fprintf(stderr, "error: %s: DP-SGD is for image models (--model mamba | cnn); bin/train has no DP-SGD "
                             "for language models (see --help)\n",
                     (sigma_opt->count() ? sigma_opt : target_opt)->get_name().c_str());
        return 2;
    }
    if (lm && corpus_dir.empty()) {
        std::fprintf(stderr, "error: --model %s needs --corpus DIR (see --help)\n", model.c_str());
        return 2;
    }

    if (lm) {
        try {
            json config = load_config_file(config_path);
            TrainJob job;
            job.spec = resolve_preset(config, model, preset);
            job.train = resolve_training(config, job.spec.preset);
            if (epochs) job.train.epochs = epochs;
            if (batch_size) job.train.batch_size = batch_size;
            if (lr > 0) job.train.learning_rate = lr;
            if (weight_decay >= 0) job.train.weight_decay = weight_decay;
            if (seed_opt->count()) job.train.seed = seed;
            if (checkpoint_every >= 0) job.train.checkpoint_every = checkpoint_every;
            job.force = force;
            const int n_threads = threads ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
            torch::set_num_threads(n_threads);
            job.threads = n_threads;

            // Before any work: the checkpoint is no input (it would be
            // renamed over it at the first checkpoint). The default output
            // lies under save_dir, named after the corpus.
            if (!output.empty())
                check_output_not_input(output, "--output",
                                       {config_path, corpus_dir + "/manifest.json", corpus_dir + "/documents.jsonl",
                                        corpus_dir + "/canaries.json"});
            Corpus corpus = load_corpus(corpus_dir);
            job.dataset = corpus.name;
            job.dataset_sha256 = corpus.sha256;
            job.checkpoint = output.empty() ? job.train.save_dir + "/" + corpus.name + "_" + job.spec.preset + ".pt"
                                            : output;
            // The training stream's document order is seeded by the run's seed.
            const std::vector<uint8_t> train_stream = training_stream(corpus, job.train.seed);
            const std::vector<uint8_t> heldout = heldout_stream(corpus);
            std::printf("training %s (preset %s) on corpus %s (sha256 %.12s...): %zu training / %zu held-out bytes, "
                        "%d epochs, batch %d windows, lr %g, seed %llu, %d threads\n",
                        model.c_str(), job.spec.preset.c_str(), corpus.name.c_str(), corpus.sha256.c_str(),
                        train_stream.size(), heldout.size(), job.train.epochs, job.train.batch_size,
                        job.train.learning_rate, (unsigned long long)job.train.seed, n_threads);
            std::fflush(stdout);
            train_lm(job, train_stream, heldout);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "error: %s\n", e.what());
            return 1;
        }
        return 0;
    }

    try {
        json config = load_config_file(config_path);
        TrainJob job;
        job.spec = resolve_preset(config, model, preset);
        job.train = resolve_training(config, job.spec.preset);
        if (epochs) job.train.epochs = epochs;
        if (batch_size) job.train.batch_size = batch_size;
        if (dp_on) use_dp_learning_rate(job.train);  // --lr, given, wins
        if (lr > 0) job.train.learning_rate = lr;
        if (weight_decay >= 0) job.train.weight_decay = weight_decay;
        if (seed_opt->count()) job.train.seed = seed;
        if (!augment.empty()) job.train.augment = augment;
        job.label_smoothing = label_smoothing;
        job.dropout = dropout;
        job.early_stopping = early_stopping;
        job.dataset = dataset;
        job.force = force;
        // Opacus swaps batch norm for group norm; the engines have no group
        // norm to run the result, so such presets are refused.
        if (dp_on) check_dp_model(job.spec);

        job.checkpoint = output.empty()
                             ? job.train.save_dir + "/" + dataset + "_" + job.spec.preset + ".pt"
                             : output;
        // Before any work: the checkpoint is no input (it would be renamed
        // over it at the first epoch's end).
        std::vector<std::string> inputs = dataset_files(dataset, data_dir);
        inputs.push_back(config_path);
        check_output_not_input(job.checkpoint, "--output", inputs);

        int n_threads = threads ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
        torch::set_num_threads(n_threads);

        Dataset data = load_dataset(dataset, data_dir);
        if (limit_train > 0 && limit_train < data.train.n) {
            data.train.n = limit_train;
            const int64_t per = int64_t(data.train.channels) * data.train.height * data.train.width;
            data.train.pixels.resize(size_t(limit_train * per));
            data.train.labels.resize(size_t(limit_train));
        }
        job.input = {data.train.channels, data.train.height, data.train.width,
                     data.train.n_classes, data.mean, data.std};
        if (model == "mamba")
            validate_mamba(job.spec.mamba, job.input.channels, job.input.height, job.input.width);
        else
            validate_cnn(job.spec.cnn, job.input.channels, job.input.height, job.input.width,
                         job.input.n_classes);
        if (limit_train > 0) job.extra_meta["limit_train"] = limit_train;
        if (dp_on) {
            job.dp = resolve_dp(dp_sigma, target_opt->count() ? target_epsilon : 0, dp_clip,
                                q_opt->count() ? dp_q : 0, dp_delta, job.train.batch_size, job.train.epochs,
                                data.train.n);
            if (!dp_per_example.empty())
                job.dp.per_example_gradients = dp_per_example == "expanded" ? "expanded weights" : "microbatches of one";
            const DpConfig& dp = job.dp;
            const int64_t steps = int64_t(job.train.epochs) * dp_steps_per_epoch(dp.sample_rate);
            const dp::EpsilonAt e = dp::epsilon(dp_accounting(dp, steps));
            std::printf("DP-SGD: Poisson sampling q %g (expected batch %.1f), %lld steps (%lld per epoch), clip C %g, "
                        "noise multiplier %.6g%s: epsilon %.4g at delta %g (RDP, improved conversion)\n",
                        dp.sample_rate, dp.sample_rate * double(data.train.n), (long long)steps,
                        (long long)dp_steps_per_epoch(dp.sample_rate), dp.max_grad_norm, dp.noise_multiplier,
                        dp.target_epsilon > 0 ? " (from --target-epsilon)" : "", e.epsilon, dp.delta);
        }

        std::printf("training %s (preset %s) on %s: %lld train / %lld test images, %d epochs, "
                    "batch %d, lr %g, weight decay %g, label smoothing %g, dropout %g, augment %s, early stopping %d, seed %llu, "
                    "%d threads\n",
                    model.c_str(), job.spec.preset.c_str(), dataset.c_str(),
                    (long long)data.train.n, (long long)data.test.n, job.train.epochs,
                    job.train.batch_size, job.train.learning_rate, job.train.weight_decay, job.label_smoothing,
                    job.dropout, job.train.augment.c_str(), job.early_stopping,
                    (unsigned long long)job.train.seed, n_threads);
        std::fflush(stdout);
        train_classifier(job, images_to_tensor(data.train), labels_to_tensor(data.train),
                    images_to_tensor(data.test), labels_to_tensor(data.test));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
