// defence.cpp: see defence.h.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include "attack/defence.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "attack/features.h"
#include "train/trainer.h"

namespace mmia {

using json = nlohmann::json;

json defence_json(const Defences& d) {
    json j = {{"spec", defence_spec(d)}};
    json t = json::object(), o = json::object();
    if (d.dp) {
        t["dp"] = {{"max_grad_norm", d.dp_clip}, {"delta", d.dp_delta}};
        if (d.dp_epsilon > 0) t["dp"]["target_epsilon"] = d.dp_epsilon;
        else t["dp"]["noise_multiplier"] = d.dp_sigma;
        if (d.dp_q > 0) t["dp"]["sample_rate"] = d.dp_q;
    }
    if (d.l2 >= 0) t["weight_decay"] = d.l2;
    if (d.label_smoothing > 0) t["label_smoothing"] = d.label_smoothing;
    if (d.early_stopping > 0) t["early_stopping_patience"] = d.early_stopping;
    if (d.dropout > 0) t["dropout"] = d.dropout;
    if (d.augment) t["augment"] = true;
    if (d.top_k > 0) o["top_k"] = d.top_k;
    if (d.round_decimals > 0) o["round_decimals"] = d.round_decimals;
    if (d.label_only) o["label_only"] = true;
    j["training"] = t;
    j["output"] = o;
    j["applied_to"] = d.target_only ? "targets only (pg1647's mitigation, a contrast: the shadows are undefended)"
                                    : "all models (targets, shadows and reference models: a defence-aware attacker)";
    return j;
}

bool defended(const Defences& d, const std::string& role) { return !d.target_only || role.rfind("target", 0) == 0; }

json defence_privacy(const Defences& d, int batch_size, int epochs, int64_t ds) {
    if (!d.dp) return nullptr;
    const DpConfig dp = resolve_dp(d.dp_sigma, d.dp_epsilon, d.dp_clip, d.dp_q, d.dp_delta, batch_size, epochs, ds);
    const int64_t steps = int64_t(epochs) * dp_steps_per_epoch(dp.sample_rate);
    const dp::EpsilonAt e = dp::epsilon(dp_accounting(dp, steps));
    json j = {{"noise_multiplier", dp.noise_multiplier}, {"sample_rate", dp.sample_rate}, {"steps", steps},
              {"delta", dp.delta}, {"conversion", "improved (RDP)"}};
    if (std::isfinite(e.epsilon)) j["epsilon"] = e.epsilon;
    else j["epsilon"] = "inf";
    return j;
}

void check_defences(const Defences& d, const std::string& protocol, int n_classes) {
    if (d.target_only && protocol != "shokri")
        throw std::runtime_error("--defence-target-only: shokri protocol only (lira makes every model the target "
                                 "in turn)");
    if (d.target_only && !d.any())
        throw std::runtime_error("--defence-target-only: no defence to apply (give --defence)");
    if (d.top_k >= n_classes)
        throw std::runtime_error("--defence: top-k=" + std::to_string(d.top_k) + " keeps all " +
                                 std::to_string(n_classes) +
                                 " classes, so it releases everything (K must be below the number of classes)");
}

const char* defence_augmentation(const std::string& dataset) {
    return dataset == "cifar10" ? "shift2-flip" : "shift2";
}

void apply_training_defences(const Defences& d, const std::string& dataset, int64_t n_train, TrainJob& job) {
    if (d.l2 >= 0) job.train.weight_decay = d.l2;
    job.label_smoothing = d.label_smoothing;
    job.early_stopping = d.early_stopping;
    job.dropout = d.dropout;
    if (d.augment) job.train.augment = defence_augmentation(dataset);
    if (d.dp) {
        check_dp_model(job.spec);
        use_dp_learning_rate(job.train);
        job.dp = resolve_dp(d.dp_sigma, d.dp_epsilon, d.dp_clip, d.dp_q, d.dp_delta, job.train.batch_size,
                            job.train.epochs, n_train);
    }
}

void apply_output_defences(const Defences& d, std::vector<float>& logits, int k) {
    if (!d.output()) return;
    const int64_t n = check_logits(logits, k, nullptr, "apply_output_defences");
    std::vector<int> order(size_t(k), 0);
    for (int64_t i = 0; i < n; i++) {
        float* z = logits.data() + i * k;
        std::vector<double> r = softmax(z, k);
        if (d.top_k > 0 && d.top_k < k) {
            for (int c = 0; c < k; c++) order[size_t(c)] = c;
            std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return r[size_t(a)] > r[size_t(b)]; });
            double kept = 0;
            for (int j = 0; j < d.top_k; j++) kept += r[size_t(order[size_t(j)])];
            for (int j = 0; j < k; j++) {
                const size_t c = size_t(order[size_t(j)]);
                r[c] = j < d.top_k ? r[c] / kept : 0.0;
            }
        }
        if (d.round_decimals > 0) {
            const double scale = std::pow(10.0, d.round_decimals);
            for (double& v : r) v = std::round(v * scale) / scale;
        }
        if (d.label_only) {
            const int arg = int(std::max_element(r.begin(), r.end()) - r.begin());
            for (int c = 0; c < k; c++) r[size_t(c)] = c == arg ? 1.0 : 0.0;
        }
        for (int c = 0; c < k; c++) z[c] = float(std::log(std::max(r[size_t(c)], kReleasedFloor)));
    }
}

}  // namespace mmia
