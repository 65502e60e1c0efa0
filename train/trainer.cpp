// trainer.cpp: see trainer.h.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

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
#include "engine/io.h"
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

torch::Tensor classification_loss(const torch::Tensor& logits, const torch::Tensor& y, double label_smoothing) {
    return torch::nn::functional::cross_entropy(
        logits, y, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(label_smoothing));
}

double accuracy(const torch::Tensor& logits, const torch::Tensor& labels) {
    if (labels.size(0) == 0) return 0.0;
    return logits.argmax(1).eq(labels).sum().item<double>() / double(labels.size(0));
}

// Each image shifted by (dy, dx) in [-pad, pad] (zero fill) and, when
// may_mirror, mirrored on a coin: two or three draws per image.
static torch::Tensor shift_batch(const torch::Tensor& x, int pad, bool may_mirror, std::mt19937_64& rng) {
    const int64_t n = x.size(0), h = x.size(2), w = x.size(3);
    auto padded = torch::constant_pad_nd(x, {pad, pad, pad, pad}, 0.0);
    auto out = torch::empty_like(x);
    const uint64_t shifts = uint64_t(2 * pad + 1);
    for (int64_t i = 0; i < n; i++) {
        // rng() % k rather than a std:: distribution: the same numbers from
        // every standard library, so checkpoints agree across toolchains.
        const int64_t dy = int64_t(rng() % shifts), dx = int64_t(rng() % shifts);
        const bool mirror = may_mirror && (rng() & 1) != 0;
        auto crop = padded[i].narrow(1, dy, h).narrow(2, dx, w);
        out[i].copy_(mirror ? crop.flip({2}) : crop);
    }
    return out;
}

torch::Tensor augment_crop_flip(const torch::Tensor& x, int pad, std::mt19937_64& rng) {
    return shift_batch(x, pad, true, rng);
}

torch::Tensor augment_shift(const torch::Tensor& x, int pad, std::mt19937_64& rng) {
    return shift_batch(x, pad, false, rng);
}

torch::Tensor augment_images(const torch::Tensor& x, const std::string& mode, std::mt19937_64& rng) {
    if (mode == "none") return x;
    if (mode == "crop-flip") return augment_crop_flip(x, 4, rng);
    if (mode == "shift2") return augment_shift(x, 2, rng);
    if (mode == "shift2-flip") return augment_crop_flip(x, 2, rng);
    throw std::runtime_error("unknown augmentation \"" + mode + "\" (none, crop-flip, shift2, shift2-flip)");
}

bool EarlyStopping::update(int epoch, double loss) {
    if (loss < best) {  // false for NaN
        best = loss;
        best_epoch = epoch;
        bad_epochs = 0;
        return false;
    }
    return ++bad_epochs >= patience;
}

std::pair<std::vector<int64_t>, std::vector<int64_t>> early_stopping_split(int64_t n, uint64_t seed) {
    if (n < 2) throw std::runtime_error("early stopping needs at least 2 training examples to hold one out");
    std::vector<int64_t> p(static_cast<size_t>(n));
    std::iota(p.begin(), p.end(), 0);
    std::mt19937_64 rng(seed ^ 0x5eed5a1dull);
    for (int64_t i = n - 1; i > 0; i--) std::swap(p[size_t(i)], p[size_t(rng() % uint64_t(i + 1))]);
    const int64_t n_val = std::max<int64_t>(1, n / 10);
    std::vector<int64_t> val(p.begin(), p.begin() + n_val), train(p.begin() + n_val, p.end());
    std::sort(val.begin(), val.end());
    std::sort(train.begin(), train.end());
    return {train, val};
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
                          "extra", "dp"})
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

// --- DP-SGD ---------------------------------------------------------------

json to_json(const DpConfig& dp) {
    json j = {{"noise_multiplier", dp.noise_multiplier},
              {"max_grad_norm", dp.max_grad_norm},
              {"sample_rate", dp.sample_rate},
              {"delta", dp.delta},
              {"sampling", "poisson"},
              {"clipping", "flat"},
              {"per_example_gradients", dp.per_example_gradients}};
    if (dp.target_epsilon > 0) j["target_epsilon"] = dp.target_epsilon;
    return j;
}

DpConfig resolve_dp(double noise_multiplier, double target_epsilon, double max_grad_norm, double sample_rate,
                    double delta, int batch_size, int epochs, int64_t n_train) {
    DpConfig dp;
    dp.enabled = true;
    dp.max_grad_norm = max_grad_norm;
    dp.delta = delta;
    dp.sample_rate = sample_rate > 0 ? sample_rate : std::min(1.0, double(batch_size) / double(n_train));
    if (target_epsilon > 0) {
        const int64_t steps = int64_t(epochs) * dp_steps_per_epoch(dp.sample_rate);
        dp.target_epsilon = target_epsilon;
        dp.noise_multiplier = dp::sigma_for_epsilon(dp_accounting(dp, steps), target_epsilon, 0.005 * target_epsilon);
    } else {
        dp.noise_multiplier = noise_multiplier;
    }
    return dp;
}

void check_dp_model(const ModelSpec& spec) {
    // Batch norm mixes the examples of a batch, so an example's gradient
    // depends on the others and clipping bounds nothing.
    const std::string mixes = ", which mixes the examples of a batch (no per-example gradient); ";
    if (spec.model == "mamba" && !spec.mamba.stem.empty() && spec.mamba.stem_norm == "batch")
        throw std::runtime_error("DP-SGD: preset " + spec.preset + ": its conv stem has batch norm" + mixes +
                                 "give the stem group norm (\"stem_norm\": \"group\", as preset "
                                 "mamba-cifar-gn) or choose a preset without a stem (mamba-mnist)");
    if (spec.model == "cnn")
        for (const CnnLayer& l : spec.cnn.layers)
            if (l.batch_norm)
                throw std::runtime_error("DP-SGD: preset " + spec.preset + ": a conv layer has batch norm" + mixes +
                                         "the CNN engine has no group norm to replace it; choose a CNN preset "
                                         "without batch norm (shokri)");
}

int64_t dp_steps_per_epoch(double q) {
    return std::max<int64_t>(1, int64_t(std::floor(1.0 / q)));
}

std::vector<int64_t> poisson_sample(int64_t n, double q, std::mt19937_64& rng) {
    std::vector<int64_t> out;
    out.reserve(size_t(double(n) * q * 1.2) + 16);
    for (int64_t i = 0; i < n; i++)
        if (double(rng() >> 11) * 0x1.0p-53 < q) out.push_back(i);
    return out;
}

// Adds the clipped per-example gradients of examples x (B, ...), y (B) to
// sum (one per parameter), from one batched backward through per-example
// parameters and ghost layers (dp_sgd_gradients with per_example), and
// their loss, correct count and largest norm to st. B >= 1.
static void add_clipped_expanded(const std::vector<torch::Tensor>& params, const PerExampleForward& per_example,
                                 const torch::Tensor& x, const torch::Tensor& y, double clip, double label_smoothing,
                                 std::vector<torch::Tensor>& sum, DpStepStats& st) {
    const int64_t b = x.size(0);
    std::vector<torch::Tensor> pe;  // (B, *shape): views of the parameters
    for (const auto& p : params) {
        std::vector<int64_t> shape{b};
        shape.insert(shape.end(), p.sizes().begin(), p.sizes().end());
        pe.push_back(p.unsqueeze(0).expand(shape));
    }
    GhostTaps ghost;
    auto logits = per_example(x, pe, &ghost);  // (B, n_classes)
    auto losses = torch::nn::functional::cross_entropy(  // (B): each example's own loss
        logits, y,
        torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(label_smoothing).reduction(torch::kNone));
    std::vector<torch::Tensor> inputs = pe;  // then each ghost layer's output z
    for (const GhostLinear& t : ghost) inputs.push_back(t.z);
    std::vector<torch::Tensor> g = torch::autograd::grad({losses.sum()}, inputs, {}, false, false, true);
    torch::NoGradGuard no_grad;
    // Which parameters a ghost layer holds, by index: their sums come from its taps.
    std::vector<bool> is_ghost(params.size(), false);
    auto index_of = [&](const c10::TensorImpl* impl) {
        for (size_t j = 0; j < params.size(); j++)
            if (params[j].unsafeGetTensorImpl() == impl) return j;
        throw std::logic_error("DP-SGD: a ghost layer's parameter is not the model's");
    };
    for (const GhostLinear& t : ghost) {
        is_ghost[index_of(t.weight)] = true;
        if (t.bias) is_ghost[index_of(t.bias)] = true;
    }
    auto sq = torch::zeros({b}, x.options());  // per-example squared norm over all parameters
    for (size_t j = 0; j < params.size(); j++) {
        if (is_ghost[j]) continue;
        if (!g[j].defined()) g[j] = torch::zeros_like(pe[j]);
        g[j] = g[j].reshape({b, -1});
        sq += g[j].pow(2).sum(1);
    }
    for (size_t k = 0; k < ghost.size(); k++) {  // |dz_b|^2 (|x_b|^2 [+ 1 for the bias])
        const torch::Tensor& dz = g[params.size() + k];
        sq += dz.pow(2).sum(1) * (ghost[k].x.pow(2).sum(1) + (ghost[k].bias ? 1.0 : 0.0));
    }
    auto norms = sq.sqrt();
    auto factor = (clip / (norms + 1e-6)).clamp_max(1.0).unsqueeze(0);  // (1, B)
    for (size_t j = 0; j < params.size(); j++)
        if (!is_ghost[j]) sum[j].add_(factor.mm(g[j]).view(params[j].sizes()));
    for (size_t k = 0; k < ghost.size(); k++) {  // (f * dz)^T x, and the bias's sum_b f_b dz_b
        const torch::Tensor fdz = g[params.size() + k] * factor.t();  // (B, out)
        sum[index_of(ghost[k].weight)].add_(fdz.t().mm(ghost[k].x));
        if (ghost[k].bias) sum[index_of(ghost[k].bias)].add_(fdz.sum(0));
    }
    st.loss_sum += losses.detach().to(torch::kFloat64).sum().item<double>();
    st.correct += logits.detach().argmax(1).eq(y).sum().item<int64_t>();
    st.max_norm = std::max(st.max_norm, norms.max().item<double>());
}

DpStepStats dp_sgd_gradients(torch::nn::Module& model,
                             const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                             const torch::Tensor& x, const torch::Tensor& y, const DpConfig& dp,
                             int64_t n_train, double label_smoothing, const PerExampleForward& per_example) {
    std::vector<torch::Tensor> params = model.parameters();
    std::vector<torch::Tensor> sum;  // one per parameter: the clipped gradients' sum
    for (const auto& p : params) sum.push_back(torch::zeros_like(p));
    DpStepStats st;
    const int64_t b = x.size(0);
    if (per_example) {
        // Chunks of examples, so that at most expanded_max_values
        // per-example gradient values are held at once.
        int64_t n_values = 0;
        for (const auto& p : params) n_values += p.numel();
        const int64_t chunk = std::max<int64_t>(1, dp.expanded_max_values / std::max<int64_t>(1, n_values));
        for (int64_t i = 0; i < b; i += chunk) {
            const int64_t n = std::min(chunk, b - i);
            add_clipped_expanded(params, per_example, x.narrow(0, i, n), y.narrow(0, i, n), dp.max_grad_norm,
                                 label_smoothing, sum, st);
        }
    }
    std::vector<torch::Tensor> losses, logits_all;  // per example, for the stats at the end
    for (int64_t i = 0; i < (per_example ? 0 : b); i++) {
        auto logits = forward(x.narrow(0, i, 1));  // (1, n_classes)
        auto loss = classification_loss(logits, y.narrow(0, i, 1), label_smoothing);
        std::vector<torch::Tensor> g = torch::autograd::grad({loss}, params, {}, false, false, true);
        for (size_t j = 0; j < g.size(); j++)
            if (!g[j].defined()) g[j] = torch::zeros_like(params[j]);
        // The norm over all parameters; the foreach ops keep the per-example
        // overhead to a few dispatches (this loop is DP-SGD's cost).
        const double norm = torch::stack(at::_foreach_norm(g, 2)).norm().item<double>();
        const double factor = std::min(1.0, dp.max_grad_norm / (norm + 1e-6));
        torch::NoGradGuard no_grad;
        at::_foreach_add_(sum, g, factor);
        losses.push_back(loss.detach());
        logits_all.push_back(logits.detach());
        st.max_norm = std::max(st.max_norm, norm);
    }
    if (b > 0 && !per_example) {
        st.loss_sum = torch::stack(losses).to(torch::kFloat64).sum().item<double>();
        st.correct = torch::cat(logits_all).argmax(1).eq(y).sum().item<int64_t>();
    }
    torch::NoGradGuard no_grad;
    const double std_noise = dp.noise_multiplier * dp.max_grad_norm;
    const double expected_batch = dp.sample_rate * double(n_train);
    for (size_t j = 0; j < params.size(); j++) {
        if (std_noise > 0) sum[j].add_(torch::randn_like(sum[j]), std_noise);
        sum[j].div_(expected_batch);
        params[j].mutable_grad() = sum[j];
    }
    return st;
}

// parameter -> its stand-in: params[j] -> pe[j].
static PerExampleParams param_map(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& pe) {
    PerExampleParams map;
    for (size_t j = 0; j < params.size(); j++) map[params[j].unsafeGetTensorImpl()] = pe[j];
    return map;
}

PerExampleForward mamba_per_example_forward(MambaClassifier model) {
    if (model->stem && model->cfg.stem_norm != "group") return nullptr;  // batch norm: no per-example forward
    return [model](const torch::Tensor& x, const std::vector<torch::Tensor>& pe, GhostTaps*) mutable {
        const PerExampleParams map = param_map(model->parameters(), pe);
        return model->forward(x, &map);  // no ghost layers: its linear layers take sequences
    };
}

PerExampleForward cnn_per_example_forward(CnnClassifier model) {
    for (const CnnLayer& l : model->cfg.layers)
        if (l.batch_norm) return nullptr;
    return [model](const torch::Tensor& x, const std::vector<torch::Tensor>& pe, GhostTaps* ghost) mutable {
        const PerExampleParams map = param_map(model->parameters(), pe);
        return model->forward(x, &map, ghost);  // dense layers ghost, convs expanded
    };
}

dp::Accounting dp_accounting(const DpConfig& dp, int64_t steps) {
    dp::Accounting a;
    a.q = dp.sample_rate;
    a.sigma = dp.noise_multiplier;
    a.steps = steps;
    a.delta = dp.delta;
    return a;
}

json dp_statement(const DpConfig& dp, int64_t steps, int64_t n_train, int epochs_done,
                  const std::string& checkpoint) {
    const dp::Accounting a = dp_accounting(dp, steps);
    json j = json::parse(dp::statement_json(a, dp::epsilon(a)));
    j["max_grad_norm"] = dp.max_grad_norm;
    j["noise_stddev"] = dp.noise_multiplier * dp.max_grad_norm;
    j["dataset_size"] = n_train;
    j["expected_batch_size"] = dp.sample_rate * double(n_train);
    j["steps_per_epoch"] = dp_steps_per_epoch(dp.sample_rate);
    j["epochs_done"] = epochs_done;
    if (dp.target_epsilon > 0) j["target_epsilon"] = dp.target_epsilon;
    j["checkpoint"] = std::filesystem::path(checkpoint).filename().string();
    return j;
}

std::string dp_statement_path(const std::string& checkpoint) { return checkpoint + ".privacy.json"; }

// Writes the checkpoint and, for a DP run, its privacy statement for the
// steps taken so far (each atomically; the statement after the checkpoint,
// so a statement never claims fewer steps than the checkpoint beside it has).
static void save_with_statement(const TrainJob& job, torch::nn::Module& model, torch::optim::Optimizer* optimizer,
                                json& meta, int64_t steps_done) {
    if (job.dp.enabled) {
        const int epochs_done = meta["epochs_done"].get<int>();
        json st = dp_statement(job.dp, steps_done, meta["n_train"].get<int64_t>(), epochs_done, job.checkpoint);
        meta["privacy"] = st;
        save_checkpoint(job.checkpoint, model, optimizer, meta);
        const std::string text = st.dump(2) + "\n";
        const std::string path = dp_statement_path(job.checkpoint);
        char err[512];
        if (io_write_file_atomic(path.c_str(), text.data(), text.size(), err, sizeof err) != 0)
            throw std::runtime_error(path + ": " + err);
        return;
    }
    save_checkpoint(job.checkpoint, model, optimizer, meta);
}

// The loop itself, for any classifier: `model` holds the parameters,
// `forward` maps images (B, C, H, W) to logits (B, n_classes).
// Every parameter and buffer of `model`, copied (early stopping's best epoch).
static std::vector<torch::Tensor> copy_state(torch::nn::Module& model) {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> out;
    for (const auto& p : model.parameters()) out.push_back(p.detach().clone());
    for (const auto& b : model.buffers()) out.push_back(b.detach().clone());
    return out;
}
static void restore_state(torch::nn::Module& model, const std::vector<torch::Tensor>& state) {
    torch::NoGradGuard no_grad;
    size_t i = 0;
    for (auto& p : model.parameters()) p.copy_(state[i++]);
    for (auto& b : model.buffers()) b.copy_(state[i++]);
}

static json train_loop(const TrainJob& job, torch::nn::Module& model,
                       const std::function<torch::Tensor(const torch::Tensor&)>& forward,
                       const PerExampleForward& per_example,
                       const torch::Tensor& all_x, const torch::Tensor& all_y,
                       const torch::Tensor& test_x, const torch::Tensor& test_y) {
    const TrainConfig& tc = job.train;
    // Early stopping's validation set: given, or a seeded tenth of the
    // training examples, which are then not trained on.
    torch::Tensor train_x = all_x, train_y = all_y, val_x = job.val_x, val_y = job.val_y;
    json es_meta = nullptr;
    if (job.early_stopping > 0) {
        es_meta = {{"patience", job.early_stopping}};
        if (val_x.defined()) {
            es_meta["validation"] = "given: " + std::to_string(val_x.size(0)) + " examples";
        } else {
            auto [tr, va] = early_stopping_split(all_x.size(0), tc.seed);
            auto pick = [](const torch::Tensor& t, std::vector<int64_t>& idx) {
                return t.index_select(0, torch::from_blob(idx.data(), {int64_t(idx.size())}, torch::kInt64)).contiguous();
            };
            train_x = pick(all_x, tr), train_y = pick(all_y, tr), val_x = pick(all_x, va), val_y = pick(all_y, va);
            es_meta["validation"] = std::to_string(va.size()) + " of the " + std::to_string(all_x.size(0)) +
                                    " training examples (seeded split, not trained on)";
        }
    }
    json meta = {{"model", job.spec.model},
                 {"preset", job.spec.preset},
                 {"training", to_json(tc)},  // + label_smoothing below
                 {"dataset", job.dataset},
                 {"input", to_json(job.input)},
                 {"n_train", train_x.size(0)},
                 {"extra", job.extra_meta},
                 {"epochs_done", 0},
                 {"history", json::array()}};
    if (job.spec.model == "mamba") meta["mamba"] = to_json(job.spec.mamba);
    if (job.spec.model == "cnn") meta["cnn"] = to_json(job.spec.cnn);
    if (job.dp.enabled) meta["dp"] = to_json(job.dp);
    if (job.label_smoothing > 0) meta["training"]["label_smoothing"] = job.label_smoothing;
    if (job.dropout > 0) meta["training"]["dropout"] = job.dropout;
    if (job.early_stopping > 0) meta["training"]["early_stopping"] = es_meta;
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
        json old_id = identity_of(old), new_id = identity_of(meta);
        const int old_epochs = old_id["training"].value("epochs", 0);
        old_id["training"]["epochs"] = tc.epochs;
        if (old_id == new_id && old_epochs != tc.epochs && !job.force)
            // No resume mode adds epochs: the cosine schedule (and DP-SGD's
            // accounting) are fixed by the total at the start.
            throw std::runtime_error(job.checkpoint + ": exists and was trained for " + std::to_string(old_epochs) +
                                     " epochs; bin/train cannot add epochs to a run (its learning-rate schedule "
                                     "is set by the total): pass --force to train " + std::to_string(tc.epochs) +
                                     " epochs from scratch over it, or choose another --output");
        if (identity_of(old) != identity_of(meta) && !job.force)
            throw std::runtime_error(job.checkpoint +
                                     ": exists and was trained with another configuration; "
                                     "pass --force to overwrite it or choose another --output");
        if (identity_of(old) == identity_of(meta)) {
            start_epoch = old.value("epochs_done", 0);
            // (An early-stopped run is finished with fewer epochs.)
            if ((start_epoch >= tc.epochs || job.early_stopping > 0) && old.contains("final")) {
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
    // DP-SGD: floor(1/q) Poisson-sampled steps per epoch (Opacus's count).
    const int64_t steps_per_epoch =
        job.dp.enabled ? dp_steps_per_epoch(job.dp.sample_rate) : (n + tc.batch_size - 1) / tc.batch_size;
    const int64_t total_steps = steps_per_epoch * tc.epochs;
    std::vector<int64_t> order(n);

    EarlyStopping stopper;
    stopper.patience = job.early_stopping;
    std::vector<torch::Tensor> best_state;
    int epochs_run = start_epoch;
    for (int epoch = start_epoch; epoch < tc.epochs; epoch++) {
        model.train();
        // The shuffle depends only on (seed, epoch): resuming replays it exactly.
        std::iota(order.begin(), order.end(), 0);
        std::mt19937_64 rng(tc.seed * 1000003ull + uint64_t(epoch));
        // DP-SGD samples each step's batch from the same generator instead.
        if (!job.dp.enabled) std::shuffle(order.begin(), order.end(), rng);
        auto perm = torch::from_blob(order.data(), {n}, torch::kInt64);
        // So does LibTorch's generator (dropout masks): a model without
        // dropout never draws from it while training.
        torch::manual_seed(tc.seed * 1000003ull + uint64_t(epoch));

        Progress bar("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(tc.epochs),
                     steps_per_epoch);
        double loss_sum = 0;
        int64_t correct = 0, seen = 0;
        for (int64_t s = 0; s < steps_per_epoch; s++) {
            const int64_t step = int64_t(epoch) * steps_per_epoch + s;
            double lr = tc.learning_rate;
            if (tc.lr_schedule == "cosine")
                lr *= 0.5 * (1.0 + std::cos(M_PI * double(step) / double(total_steps)));
            set_lr(optimizer, lr);

            if (job.dp.enabled) {
                std::vector<int64_t> batch = poisson_sample(n, job.dp.sample_rate, rng);
                auto idx = torch::tensor(batch, torch::kInt64);
                auto x = train_x.index_select(0, idx);
                x = augment_images(x, tc.augment, rng);
                auto y = train_y.index_select(0, idx);
                DpStepStats st = dp_sgd_gradients(model, forward, x, y, job.dp, n, job.label_smoothing, per_example);
                if (!std::isfinite(st.loss_sum))
                    throw std::runtime_error(where_in_run(job, epoch, s, steps_per_epoch) + ": the training loss is " +
                                             (std::isnan(st.loss_sum) ? "NaN" : "inf") + "; " + kDiverged);
                optimizer.step();
                if (std::string bad = first_nonfinite_step(model); !bad.empty())
                    throw std::runtime_error(where_in_run(job, epoch, s, steps_per_epoch) +
                                             ": after the optimizer step " + bad + "; " + kDiverged);
                loss_sum += st.loss_sum;
                correct += st.correct;
                seen += int64_t(batch.size());
                if (job.verbose)
                    bar.update(s + 1, "batch " + std::to_string(batch.size()) + " loss " +
                                          std::to_string(batch.empty() ? 0.0 : st.loss_sum / double(batch.size()))
                                              .substr(0, 6));
                continue;
            }
            auto idx = perm.narrow(0, s * tc.batch_size, std::min<int64_t>(tc.batch_size, n - s * tc.batch_size));
            auto x = train_x.index_select(0, idx);
            x = augment_images(x, tc.augment, rng);
            auto y = train_y.index_select(0, idx);
            optimizer.zero_grad();
            auto logits = forward(x);
            auto loss = classification_loss(logits, y, job.label_smoothing);
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
            seen += idx.size(0);
            correct += logits.argmax(1).eq(y).sum().item<int64_t>();
            if (job.verbose) bar.update(s + 1, "loss " + std::to_string(loss.item<double>()).substr(0, 6));
        }
        if (job.verbose) bar.finish();
        const torch::Tensor test_logits = predict_logits(model, forward, test_x);
        double test_acc = accuracy(test_logits, test_y);
        json h = {{"epoch", epoch + 1},
                  {"loss", loss_sum / double(std::max<int64_t>(seen, 1))},
                  {"train_acc_running", double(correct) / double(std::max<int64_t>(seen, 1))},
                  {"test_acc", test_acc},
                  {"seconds", bar.seconds()},
                  {"threads", torch::get_num_threads()}};
        if (job.per_epoch) {  // predict_logits: eval mode, no grad; the trainer's own keys win
            const json extra = job.per_epoch(epoch + 1, predict_logits(model, forward, train_x), test_logits);
            for (auto& [key, v] : extra.items())
                if (!h.contains(key)) h[key] = v;
        }
        bool stop = false;
        if (job.early_stopping > 0) {
            const double val_loss = classification_loss(predict_logits(model, forward, val_x), val_y, 0).item<double>();
            h["val_loss"] = val_loss;
            stop = stopper.update(epoch + 1, val_loss);
            if (stopper.best_epoch == epoch + 1) best_state = copy_state(model);
        }
        meta["history"].push_back(h);
        meta["epochs_done"] = epoch + 1;
        epochs_run = epoch + 1;
        if (job.verbose)
            std::printf("epoch %d/%d  loss %.4f  train acc %.4f (running)  test acc %.4f  %.1fs\n",
                        epoch + 1, tc.epochs, h["loss"].get<double>(),
                        h["train_acc_running"].get<double>(), test_acc, bar.seconds());
        std::fflush(stdout);
        // Early stopping writes no intermediate checkpoint (the best
        // epoch's weights live in memory): an interrupted run starts over.
        if (epoch + 1 < tc.epochs && job.early_stopping == 0)
            save_with_statement(job, model, &optimizer, meta, int64_t(epoch + 1) * steps_per_epoch);
        if (epoch + 1 == job.stop_after_epochs) return meta;
        if (stop) break;
    }
    if (job.early_stopping > 0) {
        if (!best_state.empty()) restore_state(model, best_state);
        meta["early_stopping"] = {{"patience", job.early_stopping},
                                  {"best_epoch", stopper.best_epoch},
                                  {"best_val_loss", std::isfinite(stopper.best) ? json(stopper.best) : json("none")},
                                  {"epochs_run", epochs_run},
                                  {"stopped_early", epochs_run < tc.epochs}};
        if (job.verbose)
            std::printf("early stopping: %d of %d epochs run, best validation loss %.4f at epoch %d (its weights "
                        "kept)\n", epochs_run, tc.epochs, stopper.best, stopper.best_epoch);
    }

    // Final accuracies in eval mode over the whole sets: what the engine's
    // accuracy is checked against, and the train/test gap the attack reports.
    double train_acc = accuracy(predict_logits(model, forward, train_x), train_y);
    double test_acc = accuracy(predict_logits(model, forward, test_x), test_y);
    meta["final"] = {{"train_acc", train_acc}, {"test_acc", test_acc}};
    // DP accounts for every step taken (early stopping looked at them all).
    save_with_statement(job, model, &optimizer, meta, int64_t(epochs_run) * steps_per_epoch);
    if (job.verbose)
        std::printf("final: train acc %.4f  test acc %.4f  -> %s\n", train_acc, test_acc,
                    job.checkpoint.c_str());
    if (job.verbose && job.dp.enabled)
        std::printf("privacy: epsilon %.4g at delta %g after %lld steps (q %g, sigma %g, C %g) -> %s\n",
                    meta["privacy"]["epsilon"].is_string() ? INFINITY : meta["privacy"]["epsilon"].get<double>(),
                    job.dp.delta, (long long)(int64_t(epochs_run) * steps_per_epoch), job.dp.sample_rate,
                    job.dp.noise_multiplier, job.dp.max_grad_norm, dp_statement_path(job.checkpoint).c_str());
    return meta;
}

json train_classifier(const TrainJob& job, const torch::Tensor& train_x, const torch::Tensor& train_y,
                      const torch::Tensor& test_x, const torch::Tensor& test_y) {
    const InputSpec& in = job.input;
    torch::manual_seed(job.train.seed);  // the initial weights depend on the seed only
    if (job.spec.model == "mamba" && job.dropout > 0) {
        // --dropout: the Mamba's own dropout slots (recorded in its config).
        TrainJob with_dropout = job;
        with_dropout.spec.mamba.dropout = with_dropout.spec.mamba.head_dropout = job.dropout;
        with_dropout.dropout = 0;
        return train_classifier(with_dropout, train_x, train_y, test_x, test_y);
    }
    // DP-SGD's per-example gradients: as asked, else expanded weights where
    // the model has them (the faster measured for both kinds, BENCHMARKS.md
    // "DP-SGD epoch against a normal epoch").
    TrainJob j = job;
    auto choose = [&](const PerExampleForward& expanded) {
        std::string& how = j.dp.per_example_gradients;
        if (how == "expanded weights" && !expanded)
            throw std::runtime_error("DP-SGD: per-example gradients by expanded weights exist for models "
                                     "without batch norm only; use microbatches of one for " +
                                     job.spec.preset);
        if (how.empty()) how = expanded ? "expanded weights" : "microbatches of one";
        return how == "expanded weights" ? expanded : PerExampleForward();
    };
    if (job.spec.model == "mamba") {
        MambaClassifier model(job.spec.mamba, in.channels, in.height, in.width, in.n_classes, in.mean,
                              in.std);
        const PerExampleForward pe = choose(mamba_per_example_forward(model));
        return train_loop(j, *model, [&](const torch::Tensor& x) { return model->forward(x); }, pe, train_x,
                          train_y, test_x, test_y);
    }
    if (job.spec.model == "cnn") {
        CnnClassifier model(job.spec.cnn, in.channels, in.height, in.width, in.n_classes, in.mean, in.std);
        model->dropout = job.dropout;
        const PerExampleForward pe = choose(cnn_per_example_forward(model));
        return train_loop(j, *model, [&](const torch::Tensor& x) { return model->forward(x); }, pe, train_x,
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
