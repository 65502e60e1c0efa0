// trainer.cpp: see trainer.h.
#include "train/trainer.h"

#include <malloc.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <random>

#include <torch/version.h>

#include "common/progress.h"
#include "train/cnn_model.h"

namespace mmia {

void keep_freed_memory() {
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
}

torch::Tensor images_to_tensor(const ImageSet& set) {
    auto bytes = torch::from_blob(const_cast<uint8_t*>(set.pixels.data()),
                                  {set.n, set.channels, set.height, set.width}, torch::kUInt8);
    return bytes.to(torch::kFloat32).div_(255.0f);
}

torch::Tensor labels_to_tensor(const ImageSet& set) {
    auto bytes = torch::from_blob(const_cast<uint8_t*>(set.labels.data()), {set.n}, torch::kUInt8);
    return bytes.to(torch::kInt64);
}

torch::Tensor predict_logits(torch::nn::Module& model,
                             const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                             const torch::Tensor& images, int64_t batch) {
    torch::NoGradGuard no_grad;
    bool was_training = model.is_training();
    model.eval();
    std::vector<torch::Tensor> out;
    for (int64_t i = 0; i < images.size(0); i += batch)
        out.push_back(forward(images.narrow(0, i, std::min(batch, images.size(0) - i))));
    model.train(was_training);
    return torch::cat(out);
}

double accuracy(const torch::Tensor& logits, const torch::Tensor& labels) {
    if (labels.size(0) == 0) return 0.0;
    return logits.argmax(1).eq(labels).sum().item<double>() / double(labels.size(0));
}

torch::Tensor augment_crop_flip(const torch::Tensor& x, int pad, std::mt19937_64& rng) {
    const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
    auto padded = torch::constant_pad_nd(x, {pad, pad, pad, pad}, 0.0);
    auto out = torch::empty_like(x);
    const uint64_t shifts = uint64_t(2 * pad + 1);
    for (int64_t i = 0; i < n; i++) {
        // rng() % k rather than a std:: distribution: the same numbers from
        // every standard library, so checkpoints agree across toolchains.
        const int64_t dy = int64_t(rng() % shifts), dx = int64_t(rng() % shifts);
        const bool mirror = (rng() & 1) != 0;
        auto crop = padded[i].narrow(1, dy, h).narrow(2, dx, w);
        out[i].copy_(mirror ? crop.flip({2}) : crop);
    }
    return out;
}

// The part of the meta record that must match for a checkpoint to be resumed:
// anything else would silently continue a different experiment.
json run_environment(uint64_t seed, const std::string& preset) {
    return {{"threads", torch::get_num_threads()},
            {"seed", seed},
            {"preset", preset},
            {"libtorch", TORCH_VERSION},
            {"compiler", std::string("g++ ") + __VERSION__},
            {"cpu_features", __builtin_cpu_supports("avx512f") ? "avx512f" : __builtin_cpu_supports("avx2") ? "avx2" : "baseline"}};
}

static json identity_of(const json& meta) {
    json id;
    for (const char* k : {"model", "preset", "mamba", "cnn", "training", "dataset", "input", "n_train",
                          "extra"})
        if (meta.contains(k)) id[k] = meta[k];
    return id;
}

// "<checkpoint>: epoch 2 of 10, step 17 of 469" for error messages.
static std::string where_in_run(const TrainJob& job, int epoch, int64_t step, int64_t steps_per_epoch) {
    return job.checkpoint + ": epoch " + std::to_string(epoch + 1) + " of " + std::to_string(job.train.epochs) +
           ", step " + std::to_string(step + 1) + " of " + std::to_string(steps_per_epoch);
}
static const char* kDiverged =
    "training diverged and was stopped; no checkpoint of this epoch was written (try a lower --lr)";

// The first non-finite parameter after a step, or "". Cheap on the
// common path: one sum per parameter (a NaN or inf anywhere makes the sum
// non-finite; the exact place is looked up only then).
static std::string first_nonfinite_step(torch::nn::Module& model) {
    torch::NoGradGuard no_grad;
    bool suspect = false;
    for (const auto& p : model.parameters())
        if (!std::isfinite(p.sum().item<double>())) suspect = true;
    return suspect ? first_nonfinite_weight(model) : "";
}

static void set_lr(torch::optim::AdamW& opt, double lr) {
    for (auto& group : opt.param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

// The loop itself, for any classifier: `model` holds the parameters,
// `forward` maps images (B, C, H, W) to logits (B, n_classes).
static json train_loop(const TrainJob& job, torch::nn::Module& model,
                       const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                       const torch::Tensor& train_x, const torch::Tensor& train_y,
                       const torch::Tensor& test_x, const torch::Tensor& test_y) {
    const TrainConfig& tc = job.train;
    json meta = {{"model", job.spec.model},
                 {"preset", job.spec.preset},
                 {"training", to_json(tc)},
                 {"dataset", job.dataset},
                 {"input", to_json(job.input)},
                 {"n_train", train_x.size(0)},
                 {"extra", job.extra_meta},
                 {"epochs_done", 0},
                 {"history", json::array()}};
    if (job.spec.model == "mamba") meta["mamba"] = to_json(job.spec.mamba);
    if (job.spec.model == "cnn") meta["cnn"] = to_json(job.spec.cnn);
    // What decides the bits besides the configuration above: results are
    // bit-identical only for the same thread count and libraries. Not part
    // of identity_of (a resume on another machine is allowed), so each
    // epoch's history entry records the thread count it ran with too.
    const json reproducibility = run_environment(tc.seed, job.spec.preset);
    meta["reproducibility"] = reproducibility;

    torch::optim::AdamW optimizer(
        model.parameters(),
        torch::optim::AdamWOptions(tc.learning_rate).weight_decay(tc.weight_decay));

    int start_epoch = 0;
    if (std::filesystem::exists(job.checkpoint)) {
        json old = read_checkpoint_meta(job.checkpoint);
        if (identity_of(old) != identity_of(meta) && !job.force)
            throw std::runtime_error(job.checkpoint +
                                     ": exists and was trained with another configuration; "
                                     "pass --force to overwrite it or choose another --output");
        if (identity_of(old) == identity_of(meta)) {
            start_epoch = old.value("epochs_done", 0);
            if (start_epoch >= tc.epochs && old.contains("final")) {
                if (job.verbose)
                    std::printf("%s: already trained (%d epochs), nothing to do\n",
                                job.checkpoint.c_str(), start_epoch);
                return old;
            }
            load_checkpoint_state(job.checkpoint, model, &optimizer);
            meta = old;
            // The run that finishes it: as at the start; the threads of
            // earlier epochs stay in their history entries.
            meta["reproducibility"] = reproducibility;
            if (job.verbose && start_epoch > 0)
                std::printf("resuming %s after epoch %d\n", job.checkpoint.c_str(), start_epoch);
        }
    }

    const int64_t n = train_x.size(0);
    const int64_t steps_per_epoch = (n + tc.batch_size - 1) / tc.batch_size;
    const int64_t total_steps = steps_per_epoch * tc.epochs;
    std::vector<int64_t> order(n);

    for (int epoch = start_epoch; epoch < tc.epochs; epoch++) {
        model.train();
        // The shuffle depends only on (seed, epoch): resuming replays it exactly.
        std::iota(order.begin(), order.end(), 0);
        std::mt19937_64 rng(tc.seed * 1000003ull + uint64_t(epoch));
        std::shuffle(order.begin(), order.end(), rng);
        auto perm = torch::from_blob(order.data(), {n}, torch::kInt64);
        // So does LibTorch's generator (dropout masks): a model without
        // dropout never draws from it while training.
        torch::manual_seed(tc.seed * 1000003ull + uint64_t(epoch));

        Progress bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(tc.epochs),
                     steps_per_epoch);
        double loss_sum = 0;
        int64_t correct = 0;
        for (int64_t s = 0; s < steps_per_epoch; s++) {
            const int64_t step = int64_t(epoch) * steps_per_epoch + s;
            double lr = tc.learning_rate;
            if (tc.lr_schedule == "cosine")
                lr *= 0.5 * (1.0 + std::cos(M_PI * double(step) / double(total_steps)));
            set_lr(optimizer, lr);

            auto idx = perm.narrow(0, s * tc.batch_size, std::min<int64_t>(tc.batch_size, n - s * tc.batch_size));
            auto x = train_x.index_select(0, idx);
            if (tc.augment == "crop-flip") x = augment_crop_flip(x, 4, rng);
            auto y = train_y.index_select(0, idx);
            optimizer.zero_grad();
            auto logits = forward(x);
            auto loss = torch::nn::functional::cross_entropy(logits, y);
            // A non-finite loss or weight stops the run here, before any
            // checkpoint of it exists (the last one written stays).
            const double loss_value = loss.item<double>();
            if (!std::isfinite(loss_value))
                throw std::runtime_error(where_in_run(job, epoch, s, steps_per_epoch) + ": the training loss is " +
                                         (std::isnan(loss_value) ? "NaN" : "inf") + "; " + kDiverged);
            loss.backward();
            optimizer.step();
            if (std::string bad = first_nonfinite_step(model); !bad.empty())
                throw std::runtime_error(where_in_run(job, epoch, s, steps_per_epoch) + ": after the optimizer step " +
                                         bad + "; " + kDiverged);
            loss_sum += loss_value * double(idx.size(0));
            correct += logits.argmax(1).eq(y).sum().item<int64_t>();
            if (job.verbose) bar.update(s + 1, "loss " + std::to_string(loss.item<double>()).substr(0, 6));
        }
        if (job.verbose) bar.finish();
        double test_acc = accuracy(predict_logits(model, forward, test_x), test_y);
        json h = {{"epoch", epoch + 1},
                  {"loss", loss_sum / double(n)},
                  {"train_acc_running", double(correct) / double(n)},
                  {"test_acc", test_acc},
                  {"seconds", bar.seconds()},
                  {"threads", torch::get_num_threads()}};
        meta["history"].push_back(h);
        meta["epochs_done"] = epoch + 1;
        if (job.verbose)
            std::printf("epoch %d/%d  loss %.4f  train acc %.4f (running)  test acc %.4f  %.1fs\n",
                        epoch + 1, tc.epochs, h["loss"].get<double>(),
                        h["train_acc_running"].get<double>(), test_acc, bar.seconds());
        std::fflush(stdout);
        if (epoch + 1 < tc.epochs) save_checkpoint(job.checkpoint, model, &optimizer, meta);
        if (epoch + 1 == job.stop_after_epochs) return meta;
    }

    // Final accuracies in eval mode over the whole sets: what the engine's
    // accuracy is checked against, and the train/test gap the attack reports.
    double train_acc = accuracy(predict_logits(model, forward, train_x), train_y);
    double test_acc = accuracy(predict_logits(model, forward, test_x), test_y);
    meta["final"] = {{"train_acc", train_acc}, {"test_acc", test_acc}};
    save_checkpoint(job.checkpoint, model, &optimizer, meta);
    if (job.verbose)
        std::printf("final: train acc %.4f  test acc %.4f  -> %s\n", train_acc, test_acc,
                    job.checkpoint.c_str());
    return meta;
}

json train_classifier(const TrainJob& job, const torch::Tensor& train_x, const torch::Tensor& train_y,
                      const torch::Tensor& test_x, const torch::Tensor& test_y) {
    const InputSpec& in = job.input;
    torch::manual_seed(job.train.seed);  // the initial weights depend on the seed only
    if (job.spec.model == "mamba") {
        MambaClassifier model(job.spec.mamba, in.channels, in.height, in.width, in.n_classes, in.mean,
                              in.std);
        return train_loop(job, *model, [&](const torch::Tensor& x) { return model->forward(x); }, train_x,
                          train_y, test_x, test_y);
    }
    if (job.spec.model == "cnn") {
        CnnClassifier model(job.spec.cnn, in.channels, in.height, in.width, in.n_classes, in.mean, in.std);
        return train_loop(job, *model, [&](const torch::Tensor& x) { return model->forward(x); }, train_x,
                          train_y, test_x, test_y);
    }
    throw std::runtime_error("unknown model \"" + job.spec.model + "\" (known: mamba, cnn)");
}

json train_mamba(const TrainJob& job, const torch::Tensor& train_x, const torch::Tensor& train_y,
                 const torch::Tensor& test_x, const torch::Tensor& test_y) {
    if (job.spec.model != "mamba")
        throw std::runtime_error("train_mamba: the job is a \"" + job.spec.model + "\" model");
    return train_classifier(job, train_x, train_y, test_x, test_y);
}

}  // namespace mmia
