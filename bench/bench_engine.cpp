// bench_engine: the mmap'd engine against LibTorch on the same checkpoint,
// same thread count, same run (`make bench` calls it).
//
//   bin/bench_engine --checkpoint CKPT --model MODEL.bin [--threads 2] [--reps 5]
//
// 1. Batch throughput on the 10,000 MNIST test images: LibTorch eval-mode,
//    no-grad forward (batches of 1000) vs mamba_forward_logits; median of
//    --reps runs each; prints images/s and the ratio.
// 2. Whole-process time of `./mamba MODEL.bin input.bin` on one image
//    (fork + exec + mmap + validate + forward + print), median of 50 runs.
#include <CLI/CLI.hpp>
#include <omp.h>
#include <spawn.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fcntl.h>

#include "bench/bench_util.h"
#include "common/data.h"
#include "engine/mamba.h"
#include "export/model_export.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

using namespace mmia;

extern char** environ;

// Median wall time of running `argv` to completion, stdout to /dev/null.
static double median_process_seconds(std::vector<std::string> args, int reps) {
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<double> t;
    for (int i = 0; i < reps + 3; i++) {
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        auto t0 = BenchClock::now();
        pid_t pid;
        if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0)
            throw std::runtime_error(std::string("cannot run ") + argv[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        double s = seconds_since(t0);
        posix_spawn_file_actions_destroy(&fa);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            throw std::runtime_error(std::string(argv[0]) + " failed");
        if (i >= 3) t.push_back(s);  // the first runs warm the page cache
    }
    return median(t);
}

int main(int argc, char** argv) {
    CLI::App app{"Engine vs LibTorch benchmark (MNIST test set)."};
    std::string ckpt, model_bin, engine_exe = "./mamba", input_bin = "input.bin";
    int threads = 2, reps = 5;
    app.add_option("--checkpoint", ckpt, "checkpoint from bin/train")->required();
    app.add_option("--model", model_bin, "the same model, exported")->required();
    app.add_option("--engine", engine_exe, "engine executable for the whole-process timing");
    app.add_option("--input", input_bin, "one-image input.bin for the whole-process timing");
    app.add_option("--threads", threads, "threads for both sides")->check(CLI::Range(1, 256));
    app.add_option("--reps", reps, "timed repetitions")->check(CLI::Range(1, 1000));
    CLI11_PARSE(app, argc, argv);

    try {
        torch::set_num_threads(threads);
        omp_set_num_threads(threads);
        Dataset d = load_dataset("mnist");
        auto images = images_to_tensor(d.test).contiguous();
        auto labels = labels_to_tensor(d.test);
        const int64_t n = images.size(0);

        MambaClassifier model = load_mamba_checkpoint(ckpt);
        model->eval();
        torch::Tensor torch_out;
        double t_torch = median_seconds(reps, [&] {
            torch_out = predict_logits(*model, [&](const torch::Tensor& x) { return model->forward(x); },
                                       images, 1000);
        });

        MambaModel m;
        char err[512];
        if (mamba_open(&m, model_bin.c_str(), err, sizeof err) != 0)
            throw std::runtime_error(err);
        auto engine_out = torch::empty({n, mamba_n_classes(&m)});
        double t_engine = median_seconds(reps, [&] {
            if (mamba_forward_logits(&m, images.data_ptr<float>(), n, engine_out.data_ptr<float>()) != 0)
                throw std::runtime_error("engine: out of memory");
        });
        mamba_close(&m);

        double max_diff = (torch_out - engine_out).abs().max().item<double>();
        std::printf("batch throughput, MNIST test set (%lld images), %d threads, median of %d:\n",
                    (long long)n, threads, reps);
        std::printf("  libtorch eval forward : %9.0f images/s  (%.3f s)  acc %.4f\n", n / t_torch,
                    t_torch, accuracy(torch_out, labels));
        std::printf("  engine (mamba.cpp)    : %9.0f images/s  (%.3f s)  acc %.4f\n", n / t_engine,
                    t_engine, accuracy(engine_out, labels));
        std::printf("  engine / libtorch     : %9.2fx   (max |logit diff| %.2e)\n", t_torch / t_engine,
                    max_diff);

        double t_proc = median_process_seconds({engine_exe, model_bin, input_bin}, 50);
        std::printf("one image, whole process (%s %s %s), median of 50: %.2f ms\n",
                    engine_exe.c_str(), model_bin.c_str(), input_bin.c_str(), t_proc * 1e3);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
