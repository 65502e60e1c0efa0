// defence.cpp: see defence.h.
#include "attack/defence.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "attack/features.h"
#include "train/trainer.h"

namespace mmia {

namespace {

using json = nlohmann::json;

[[noreturn]] void bad(const std::string& why) { throw std::runtime_error("--defence: " + why); }

// "%g" with enough digits to read back the same double.
std::string num(double v) {
    char b[40];
    std::snprintf(b, sizeof b, "%.10g", v);
    return b;
}

// The value of "name=value" as a finite number in [lo, hi] (lo_open: > lo).
double real_value(const std::string& item, const std::string& text, double lo, bool lo_open, double hi) {
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    const bool ok = !text.empty() && *end == 0 && (lo_open ? v > lo : v >= lo) && v <= hi;  // false for nan
    if (!ok)
        bad("'" + item + "': '" + text + "' is not a number in " + (lo_open ? "(" : "[") + num(lo) + ", " + num(hi) +
            "]");
    return v;
}

int int_value(const std::string& item, const std::string& text, int lo, int hi) {
    char* end = nullptr;
    const long v = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || *end != 0 || v < lo || v > hi)
        bad("'" + item + "': '" + text + "' is not an integer in [" + std::to_string(lo) + ", " +
            std::to_string(hi) + "]");
    return int(v);
}

const char* kGrammar =
    "none, dp:sigma=S|eps=E[,C=C,delta=D,q=Q], l2=WD, label-smoothing=EPS, early-stopping=PATIENCE, dropout=P, "
    "augment, top-k=K, round=D, label-only";

// One DP parameter "name=value" into d; false when name is not one.
bool dp_param(const std::string& item, Defences& d, bool& sigma_set, bool& eps_set) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos) return false;
    const std::string name = item.substr(0, eq), v = item.substr(eq + 1);
    if (name == "sigma") d.dp_sigma = real_value(item, v, 0, false, 1000), sigma_set = true;
    else if (name == "eps") d.dp_epsilon = real_value(item, v, 0, true, 1000), eps_set = true;
    else if (name == "C") d.dp_clip = real_value(item, v, 0, true, 1e6);
    else if (name == "delta") d.dp_delta = real_value(item, v, 0, true, 0.5);
    else if (name == "q") d.dp_q = real_value(item, v, 0, true, 1);
    else return false;
    return true;
}

}  // namespace

bool Defences::training() const {
    return dp || l2 >= 0 || label_smoothing > 0 || early_stopping > 0 || dropout > 0 || augment;
}
bool Defences::output() const { return top_k > 0 || round_decimals > 0 || label_only; }

Defences parse_defences(const std::vector<std::string>& specs) {
    Defences d;
    std::vector<std::string> items;
    for (const std::string& s : specs) {
        size_t start = 0;
        while (true) {
            const size_t comma = s.find(',', start);
            items.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
    }
    std::vector<std::string> seen;  // item names, for "given twice"
    bool in_dp = false, sigma_set = false, eps_set = false, none = false;
    for (const std::string& item : items) {
        if (item.empty()) bad("an empty item (a stray comma?); items: " + std::string(kGrammar));
        if (in_dp && dp_param(item, d, sigma_set, eps_set)) continue;
        in_dp = false;
        const size_t eq = item.find('=');
        std::string name = item.substr(0, std::min(eq, item.find(':')));
        const std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
        if (std::find(seen.begin(), seen.end(), name) != seen.end()) bad("'" + name + "' given twice");
        seen.push_back(name);
        const bool has_value = eq != std::string::npos;
        auto no_value = [&] {
            if (has_value || item != name) bad("'" + item + "': " + name + " takes no value");
        };
        auto needs_value = [&](const char* what) {
            if (!has_value || item.substr(0, eq) != name) bad("'" + item + "': write " + name + "=" + what);
        };
        if (name == "none") {
            no_value();
            none = true;
        } else if (name == "dp") {
            if (item.rfind("dp:", 0) != 0) bad("'" + item + "': write dp:sigma=S or dp:eps=E (then ,C=..,delta=..,q=..)");
            d.dp = in_dp = true;
            if (!dp_param(item.substr(3), d, sigma_set, eps_set))
                bad("'" + item + "': '" + item.substr(3) + "' is not a DP-SGD parameter (sigma, eps, C, delta, q)");
        } else if (name == "l2") {
            needs_value("WD");
            d.l2 = real_value(item, value, 0, false, 10);
        } else if (name == "label-smoothing") {
            needs_value("EPS");
            d.label_smoothing = real_value(item, value, 0, false, 0.99);
        } else if (name == "early-stopping") {
            needs_value("PATIENCE");
            d.early_stopping = int_value(item, value, 1, 1000);
        } else if (name == "dropout") {
            needs_value("P");
            d.dropout = real_value(item, value, 0, false, 0.99);
        } else if (name == "augment") {
            no_value();
            d.augment = true;
        } else if (name == "top-k") {
            needs_value("K");
            d.top_k = int_value(item, value, 1, 1000000);
        } else if (name == "round") {
            needs_value("D");
            d.round_decimals = int_value(item, value, 1, 15);
        } else if (name == "label-only") {
            no_value();
            d.label_only = true;
        } else {
            bad("'" + item + "' is not a defence (" + kGrammar + ")");
        }
    }
    if (d.dp && sigma_set == eps_set) bad("dp: give sigma=S or eps=E (one of them)");
    if (none && seen.size() > 1) bad("'none' with another defence");
    if (d.label_only && (d.top_k || d.round_decimals))
        bad("label-only releases the label alone; top-k and round would change nothing (give one)");
    return d;
}

std::string defence_spec(const Defences& d) {
    std::vector<std::string> parts;
    if (d.dp)
        parts.push_back("dp:" + (d.dp_epsilon > 0 ? "eps=" + num(d.dp_epsilon) : "sigma=" + num(d.dp_sigma)) +
                        ",C=" + num(d.dp_clip) + ",delta=" + num(d.dp_delta) + (d.dp_q > 0 ? ",q=" + num(d.dp_q) : ""));
    if (d.l2 >= 0) parts.push_back("l2=" + num(d.l2));
    if (d.label_smoothing > 0) parts.push_back("label-smoothing=" + num(d.label_smoothing));
    if (d.early_stopping > 0) parts.push_back("early-stopping=" + std::to_string(d.early_stopping));
    if (d.dropout > 0) parts.push_back("dropout=" + num(d.dropout));
    if (d.augment) parts.push_back("augment");
    if (d.top_k > 0) parts.push_back("top-k=" + std::to_string(d.top_k));
    if (d.round_decimals > 0) parts.push_back("round=" + std::to_string(d.round_decimals));
    if (d.label_only) parts.push_back("label-only");
    if (parts.empty()) return "none";
    std::string s;
    for (const auto& p : parts) s += (s.empty() ? "" : ",") + p;
    return s;
}

std::string defence_slug(const Defences& d) {
    std::string s;
    // Items are separated by '+', a name from its value by '-'.
    for (char c : defence_spec(d)) {
        if (c == ',') {
            // A DP parameter stays in its item; any other comma separates items.
            s += '~';
        } else if (c == ':' || c == '=') {
            s += '-';
        } else {
            s += c;
        }
    }
    // '~' before a DP parameter name is '-', before an item '+'.
    std::string out;
    for (size_t i = 0; i < s.size(); i++) {
        if (s[i] != '~') {
            out += s[i];
            continue;
        }
        const std::string rest = s.substr(i + 1);
        bool dp_param = false;
        for (const char* p : {"C-", "delta-", "q-"})
            if (rest.rfind(p, 0) == 0) dp_param = true;
        out += dp_param ? '-' : '+';
    }
    if (d.target_only) out += "+target-only";
    return out;
}

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
        bad("top-k=" + std::to_string(d.top_k) + " keeps all " + std::to_string(n_classes) +
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
