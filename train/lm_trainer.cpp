// lm_trainer.cpp: see lm_trainer.h.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include "train/lm_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <numeric>
#include <random>

#include "common/progress.h"
#include "train/checkpoint.h"

namespace mmia {

int64_t lm_window_count(int64_t stream_bytes, int64_t context) {
    return stream_bytes < 2 ? 0 : (stream_bytes - 1) / context;
}

// The stream as an int64 tensor (n) of token ids.
static torch::Tensor stream_tokens(const std::vector<uint8_t>& stream) {
    auto bytes = torch::from_blob(const_cast<uint8_t*>(stream.data()), {int64_t(stream.size())}, torch::kUInt8);
    return bytes.to(torch::kInt64);
}

std::pair<double, int64_t> lm_stream_loss(LanguageModel& model, const std::vector<uint8_t>& stream,
                                          int64_t context, int64_t batch) {
    const int64_t n = int64_t(stream.size());
    if (n < 2) return {std::numeric_limits<double>::quiet_NaN(), 0};
    torch::NoGradGuard no_grad;
    torch::nn::Module& m = model.module();
    const bool was_training = m.is_training();
    m.eval();
    auto tokens = stream_tokens(stream);
    const int64_t full = (n - 1) / context;
    double sum = 0;
    auto add = [&](const torch::Tensor& x, const torch::Tensor& y) {  // (b, l) each
        auto logits = model.forward(x);
        sum += torch::nn::functional::cross_entropy(
                   logits.reshape({-1, logits.size(-1)}), y.reshape({-1}),
                   torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                   .item<double>();
    };
    for (int64_t w0 = 0; w0 < full; w0 += batch) {
        const int64_t b = std::min(batch, full - w0);
        auto win = tokens.narrow(0, w0 * context, b * context + 1);  // consecutive windows
        auto x = win.narrow(0, 0, b * context).view({b, context});
        auto y = win.narrow(0, 1, b * context).view({b, context});
        add(x, y);
    }
    const int64_t rest = n - 1 - full * context;  // the last, shorter window
    if (rest > 0) {
        auto win = tokens.narrow(0, full * context, rest + 1);
        add(win.narrow(0, 0, rest).view({1, rest}), win.narrow(0, 1, rest).view({1, rest}));
    }
    m.train(was_training);
    return {sum / double(n - 1), n - 1};
}

// The part of the meta record that must match for a checkpoint to be resumed
// (how often it is saved is not: a resume may change --checkpoint-every).
static json lm_identity(const json& meta) {
    json id;
    for (const char* k : {"model", "preset", "lm", "training", "corpus", "n_train_bytes", "n_heldout_bytes", "extra"})
        if (meta.contains(k)) id[k] = meta[k];
    if (id.contains("training") && id["training"].is_object()) id["training"].erase("checkpoint_every");
    return id;
}

static json lm_config_json(const ModelSpec& spec) {
    return spec.model == "mamba-lm" ? to_json(spec.mamba_lm) : to_json(spec.transformer_lm);
}

static void set_lr(torch::optim::AdamW& opt, double lr) {
    for (auto& group : opt.param_groups())
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

static double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

json train_lm(const TrainJob& job, const std::vector<uint8_t>& train_stream,
              const std::vector<uint8_t>& heldout_stream) {
    const TrainConfig& tc = job.train;
    torch::manual_seed(tc.seed);  // the initial weights depend on the seed only
    LanguageModel model = LanguageModel::build(job.spec);
    torch::nn::Module& module = model.module();
    const int64_t L = model.context(), V = model.vocab();
    const int64_t n_windows = lm_window_count(int64_t(train_stream.size()), L);
    if (n_windows < 1)
        throw std::runtime_error("the training stream has " + std::to_string(train_stream.size()) +
                                 " bytes, fewer than one window of context + 1 = " + std::to_string(L + 1));

    int64_t n_params = 0;
    for (const auto& p : module.parameters()) n_params += p.numel();
    json meta = {{"model", job.spec.model},
                 {"preset", job.spec.preset},
                 {"lm", lm_config_json(job.spec)},
                 {"training", to_json(tc)},
                 {"corpus", {{"name", job.dataset}, {"sha256", job.dataset_sha256}}},
                 {"n_train_bytes", int64_t(train_stream.size())},
                 {"n_heldout_bytes", int64_t(heldout_stream.size())},
                 {"parameters", n_params},
                 {"non_embedding_parameters", model.non_embedding_parameters()},
                 {"extra", job.extra_meta},
                 {"epochs_done", 0},
                 {"steps_done", 0},
                 {"history", json::array()}};

    torch::optim::AdamW optimizer(
        module.parameters(), torch::optim::AdamWOptions(tc.learning_rate).weight_decay(tc.weight_decay));

    const int64_t B = tc.batch_size;
    const int64_t steps_per_epoch = (n_windows + B - 1) / B;
    const int64_t total_steps = steps_per_epoch * tc.epochs;
    int64_t start_step = 0;
    if (std::filesystem::exists(job.checkpoint)) {
        json old = read_checkpoint_meta(job.checkpoint);
        if (lm_identity(old) != lm_identity(meta) && !job.force)
            throw std::runtime_error(job.checkpoint +
                                     ": exists and was trained with another configuration; "
                                     "pass --force to overwrite it or choose another --output");
        if (lm_identity(old) == lm_identity(meta)) {
            if (old.value("epochs_done", 0) >= tc.epochs && old.contains("final")) {
                if (job.verbose)
                    std::printf("%s: already trained (%d epochs), nothing to do\n", job.checkpoint.c_str(),
                                old.value("epochs_done", 0));
                return old;
            }
            start_step = old.value("steps_done", int64_t(0));
            if (start_step < 0 || start_step > total_steps)
                throw std::runtime_error(job.checkpoint + ": corrupt checkpoint meta: steps_done " +
                                         std::to_string(start_step) + " is outside 0.." +
                                         std::to_string(total_steps));
            load_checkpoint_state(job.checkpoint, module, &optimizer);
            meta = old;
            if (job.verbose && start_step > 0)
                std::printf("resuming %s after step %lld (epoch %lld, step %lld of %lld)\n",
                            job.checkpoint.c_str(), (long long)start_step,
                            (long long)(start_step / steps_per_epoch + 1),
                            (long long)(start_step % steps_per_epoch), (long long)steps_per_epoch);
        }
    }
    meta["threads"] = job.threads;
    // What else decides the bits (as the classifiers' meta records it): the
    // seed, preset, library and compiler versions; not part of lm_identity.
    meta["reproducibility"] = run_environment(tc.seed, job.spec.preset);

    auto tokens = stream_tokens(train_stream);
    std::vector<int64_t> order(size_t(n_windows), 0);
    int current_epoch = -1;
    // Sums over the epoch so far; carried in the meta by a mid-epoch checkpoint.
    double loss_sum = 0, seconds = 0;
    int64_t tokens_seen = 0;
    Progress bar("", 0);
    double t_start = now_seconds();
    auto save = [&](int64_t steps_done) {
        meta["steps_done"] = steps_done;
        meta["partial"] = {{"loss_sum", loss_sum}, {"tokens", tokens_seen},
                           {"seconds", seconds + now_seconds() - t_start}};
        save_checkpoint(job.checkpoint, module, &optimizer, meta);
    };

    for (int64_t step = start_step; step < total_steps; step++) {
        const int epoch = int(step / steps_per_epoch);
        const int64_t s = step % steps_per_epoch;
        if (epoch != current_epoch) {
            current_epoch = epoch;
            module.train();
            // The window order depends only on (seed, epoch): resuming replays it.
            std::iota(order.begin(), order.end(), 0);
            std::mt19937_64 rng(tc.seed * 1000003ull + uint64_t(epoch));
            std::shuffle(order.begin(), order.end(), rng);
            torch::manual_seed(tc.seed * 1000003ull + uint64_t(epoch));
            loss_sum = 0;
            tokens_seen = 0;
            seconds = 0;
            if (s > 0 && meta.contains("partial")) {  // resumed inside this epoch
                loss_sum = meta["partial"].value("loss_sum", 0.0);
                tokens_seen = meta["partial"].value("tokens", int64_t(0));
                seconds = meta["partial"].value("seconds", 0.0);
            }
            t_start = now_seconds();
            bar = Progress("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(tc.epochs), steps_per_epoch);
        }
        double lr = tc.learning_rate;
        if (tc.lr_schedule == "cosine") lr *= 0.5 * (1.0 + std::cos(M_PI * double(step) / double(total_steps)));
        set_lr(optimizer, lr);

        const int64_t b = std::min(B, n_windows - s * B);
        std::vector<torch::Tensor> rows;
        rows.reserve(size_t(b));
        for (int64_t i = 0; i < b; i++) rows.push_back(tokens.narrow(0, order[size_t(s * B + i)] * L, L + 1));
        auto win = torch::stack(rows);  // (b, L+1)
        auto x = win.narrow(1, 0, L), y = win.narrow(1, 1, L);
        optimizer.zero_grad();
        auto logits = model.forward(x);  // (b, L, V)
        auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, V}), y.reshape({-1}));
        loss.backward();
        optimizer.step();
        const double l = loss.item<double>();
        loss_sum += l * double(b * L);
        tokens_seen += b * L;
        const double secs = seconds + now_seconds() - t_start;
        if (job.verbose) {
            char extra[96];
            std::snprintf(extra, sizeof extra, "loss %.4f  %.0f tok/s", l, double(tokens_seen) / std::max(secs, 1e-9));
            bar.update(s + 1, extra);
        }
        const bool epoch_end = s + 1 == steps_per_epoch;
        if (!epoch_end && tc.checkpoint_every > 0 && (step + 1) % tc.checkpoint_every == 0) {
            save(step + 1);
            if (job.verbose) {
                bar.finish();
                std::printf("epoch %d/%d step %lld/%lld  loss %.4f (epoch mean so far)  %.0f tok/s  checkpoint saved\n",
                            epoch + 1, tc.epochs, (long long)(s + 1), (long long)steps_per_epoch,
                            loss_sum / double(tokens_seen), double(tokens_seen) / std::max(secs, 1e-9));
                std::fflush(stdout);
            }
        }
        if (epoch_end) {
            if (job.verbose) bar.finish();
            const double train_secs = seconds + now_seconds() - t_start;
            auto [hl, hn] = lm_stream_loss(model, heldout_stream, L, B);
            json h = {{"epoch", epoch + 1},
                      {"loss", loss_sum / double(tokens_seen)},
                      {"tokens", tokens_seen},
                      {"seconds", train_secs},
                      {"tokens_per_s", double(tokens_seen) / std::max(train_secs, 1e-9)},
                      {"threads", job.threads}};
            h["heldout_loss"] = hn > 0 ? json(hl) : json(nullptr);
            h["heldout_bpb"] = hn > 0 ? json(hl / std::log(2.0)) : json(nullptr);
            meta["history"].push_back(h);
            meta["epochs_done"] = epoch + 1;
            if (job.verbose) {
                std::printf("epoch %d/%d  loss %.4f  held-out loss %.4f  bpb %.4f  %.0f tok/s  %.1fs\n",
                            epoch + 1, tc.epochs, h["loss"].get<double>(), hn > 0 ? hl : NAN,
                            hn > 0 ? hl / std::log(2.0) : NAN, h["tokens_per_s"].get<double>(), train_secs);
                std::fflush(stdout);
            }
            loss_sum = 0;
            tokens_seen = 0;
            seconds = 0;
            t_start = now_seconds();
            if (epoch + 1 == tc.epochs) {
                meta["final"] = {{"heldout_loss", h["heldout_loss"]}, {"heldout_bpb", h["heldout_bpb"]},
                                 {"train_loss", h["loss"]}};
                meta.erase("partial");
                meta["steps_done"] = step + 1;
                save_checkpoint(job.checkpoint, module, &optimizer, meta);
                if (job.verbose)
                    std::printf("final: held-out bpb %.4f -> %s\n", hn > 0 ? hl / std::log(2.0) : NAN,
                                job.checkpoint.c_str());
            } else {
                save(step + 1);
            }
            if (epoch + 1 == job.stop_after_epochs) return meta;
        }
        if (job.stop_after_steps > 0 && step + 1 == job.stop_after_steps) return meta;
    }
    return meta;
}

LanguageModel load_lm_checkpoint(const std::string& path, json* meta_out) {
    json meta = read_checkpoint_meta(path);
    ModelSpec spec;
    try {
        spec.model = meta.value("model", "");
        spec.preset = meta.value("preset", "");
        if (spec.model == "mamba-lm")
            spec.mamba_lm = mamba_lm_from_json(meta.at("lm"));
        else if (spec.model == "transformer-lm")
            spec.transformer_lm = transformer_lm_from_json(meta.at("lm"));
        else
            throw std::runtime_error("model is \"" + spec.model + "\", not a language model");
    } catch (const std::exception& e) {
        throw std::runtime_error(path + ": bad checkpoint meta: " + e.what());
    }
    LanguageModel model = LanguageModel::build(spec);
    load_checkpoint_state(path, model.module(), nullptr);
    if (meta_out) *meta_out = meta;
    return model;
}

}  // namespace mmia
