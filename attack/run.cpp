// run.cpp: the experiment pipeline behind bin/attack (see run.h).
//
// Layout of a run directory:
//   attack_config.json          the resolved configuration (a re-run must match it)
//   splits.json                 pool order and every model's member / non-member indices
//   membership.csv              lira: M rows of 0/1 over the pool
//   models/<kind>/<role>.pt     checkpoints (cached: a re-run skips finished ones)
//   models/<kind>/<role>.bin    the same models, packed for the engines
//   outputs/<kind>/<role>.npy   engine logits on the examples the attacks read
//   outputs/<kind>/population/<role>.npy   lira: logits on RMIA's population points
//   outputs/<kind>/augmented/<role>.npy    logits on the 12 (CIFAR-10: 25) shifted /
//                               mirrored queries, query-major (label-only, LiRA-aug)
//   scores/<kind>_<target>.csv  per-example scores of every attack
//   roc/<kind>_<target>_<attack>.csv
//   metrics.json, report.md, report.html, plots/*.svg
//
// The stages of run_attack, each a function below, in this order:
//   1 resolve the run     check_config, resolve_run, claim_run_dir
//   2 plan                Protocol::plan (every model as a ModelSplit: role,
//                         members, non-members, seed), write_plan, log_plan
//   3 train the models    train_models -> train_model, one plan entry each
//   4 engine outputs      engine_outputs -> model_outputs, Protocol::outputs
//   5 attacks             attack_targets -> Protocol::targets, ::attacks,
//                         evaluate_and_write
//   6 metrics and report  write_results
// Everything that differs between protocols is a row of kProtocols.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include "attack/run.h"

#include <omp.h>
#include <signal.h>
#include <unistd.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "attack/augment.h"
#include "attack/classifiers.h"
#include "attack/defence.h"
#include "attack/features.h"
#include "attack/jobs.h"
#include "attack/lira.h"
#include "attack/metric_attacks.h"
#include "attack/metrics.h"
#include "attack/report.h"
#include "attack/report_html.h"
#include "attack/rmia.h"
#include "common/command_line.h"
#include "common/config.h"
#include "common/data.h"
#include "engine/cnn.h"
#include "common/write_text.h"
#include "engine/mamba.h"
#include "engine/packed.h"
#include "export/model_export.h"
#include "train/checkpoint_meta.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace mmia {

namespace {

AttackRunStats g_stats;

using Clock = std::chrono::steady_clock;

// Deterministic permutation of 0..n-1 (our own Fisher-Yates over
// mt19937_64, so the split does not depend on the standard library).
std::vector<int64_t> permutation(int64_t n, uint64_t seed) {
    std::vector<int64_t> p(n);
    for (int64_t i = 0; i < n; i++) p[i] = i;
    std::mt19937_64 rng(seed);
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = int64_t(rng() % uint64_t(i + 1));
        std::swap(p[i], p[j]);
    }
    return p;
}

uint64_t fnv1a(const std::vector<int64_t>& v) {
    uint64_t h = 1469598103934665603ull;
    for (int64_t x : v)
        for (int b = 0; b < 8; b++) {
            h ^= uint64_t(x >> (8 * b)) & 0xff;
            h *= 1099511628211ull;
        }
    return h;
}

// One model to train: its members, and the non-members it is tested on.
// --- The plan: every model of the run, as training jobs ------------------------

// One model to train (one job of the plan): its members, the non-members it
// is tested on, and its training seed. The same plan serves every kind.
struct ModelSplit {
    std::string role;              // "target0", "shadow3", "model5"
    std::vector<int64_t> members;  // pool indices
    std::vector<int64_t> nonmembers;
    uint64_t seed = 0;             // the trainer's seed
};

// Everything the protocol decided before any training.
struct Plan {
    std::vector<int64_t> order;      // the pool permutation (seed)
    std::vector<ModelSplit> models;  // the training jobs, in run order
    // shokri --null-members: per target, the fresh examples called members
    std::vector<std::vector<int64_t>> fresh;
    // lira: the pool is order[0, lira_n); membership is M x lira_n
    int64_t lira_n = 0;
    std::vector<int> membership;
    // lira --null-members: per model, the pool rows it is evaluated on and their fake membership
    std::vector<std::pair<std::vector<int64_t>, std::vector<int>>> lira_null;
    // lira: RMIA's population points (dataset indices outside the pool, no model's member)
    std::vector<int64_t> population;
    // shokri: classes the per-class attacks score with the global attack (metrics.json, log)
    json fallback_note = nullptr;
    std::string fallback_line;
};

// Everything the attacks need from one trained model.
struct ModelResult {
    std::vector<float> member_logits, nonmember_logits;  // engine logits, rows of n_classes
    double train_acc = 0, test_acc = 0;                  // trainer's, on members / non-members
};

struct Pool {
    torch::Tensor images;  // (n, C, H, W) float in [0,1]: train then test part of the dataset
    torch::Tensor labels;  // (n) int64
    std::vector<int> label_vec;
    int64_t n_train_part = 0;
    InputSpec input;
};

Pool make_pool(const Dataset& d) {
    Pool p;
    p.images = torch::cat({images_to_tensor(d.train), images_to_tensor(d.test)}).contiguous();
    p.labels = torch::cat({labels_to_tensor(d.train), labels_to_tensor(d.test)}).contiguous();
    p.label_vec.assign(p.labels.data_ptr<int64_t>(), p.labels.data_ptr<int64_t>() + p.labels.size(0));
    p.n_train_part = d.train.n;
    p.input = {d.train.channels, d.train.height, d.train.width, d.train.n_classes, d.mean, d.std};
    return p;
}

torch::Tensor rows_of(const torch::Tensor& t, const std::vector<int64_t>& idx) {
    auto i = torch::from_blob(const_cast<int64_t*>(idx.data()), {int64_t(idx.size())}, torch::kInt64);
    return t.index_select(0, i).contiguous();
}

std::vector<int> labels_of(const Pool& p, const std::vector<int64_t>& idx) {
    std::vector<int> out;
    out.reserve(idx.size());
    for (int64_t i : idx) out.push_back(p.label_vec[size_t(i)]);
    return out;
}

// Logits of a packed model on images (n, C, H, W), from the mmap'd engine.
std::vector<float> engine_logits(const std::string& kind, const std::string& bin, const torch::Tensor& images) {
    char err[512];
    const int64_t n = images.size(0);
    std::vector<float> out;
    const float* x = images.data_ptr<float>();
    if (kind == "mamba") {
        MambaModel m;
        if (mamba_open(&m, bin.c_str(), err, sizeof err) != 0) throw std::runtime_error(err);
        out.resize(size_t(n * mamba_n_classes(&m)));
        int rc = mamba_image_floats(&m) * n == images.numel() ? mamba_forward_logits(&m, x, n, out.data()) : -2;
        mamba_close(&m);
        if (rc != 0) throw std::runtime_error(bin + ": the engine could not run this model on these images");
    } else {
        CnnModel m;
        if (cnn_open(&m, bin.c_str(), err, sizeof err) != 0) throw std::runtime_error(err);
        out.resize(size_t(n * cnn_n_classes(&m)));
        int rc = cnn_image_floats(&m) * n == images.numel() ? cnn_forward_logits(&m, x, n, out.data()) : -2;
        cnn_close(&m);
        if (rc != 0) throw std::runtime_error(bin + ": the engine could not run this model on these images");
    }
    return out;
}

std::string default_preset(const std::string& kind, const std::string& dataset) {
    // The default Mamba preset cuts 28x28 images into 7x7 patches; 32x32
    // CIFAR images take the 4x4-patch preset.
    if (kind == "mamba" && dataset == "cifar10") return "mamba-mnist-p4";
    return "";
}

// Ctrl-C (SIGINT) or SIGTERM during a run: the log's open "[3/6] mamba
// shadow1: " line is ended before the process dies, with a line saying how
// to go on (finished models are kept; an interrupted training resumes from
// its last epoch). Only async-signal-safe calls in the handler; the default
// action then ends the process with the signal's status, as before. The
// open line is engine/packed.h's packed_stdout_line_open, the flag its
// SIGBUS handler reads too.
void on_interrupt(int sig) {
    if (packed_stdout_line_open) (void)!write(STDOUT_FILENO, "\n", 1);
    static const char msg[] = "interrupted: finished models are kept; run the same command to resume\n";
    (void)!write(STDERR_FILENO, msg, sizeof msg - 1);
    signal(sig, SIG_DFL);
    raise(sig);
}

// Installs on_interrupt for SIGINT and SIGTERM for one run; the previous
// handlers come back when it ends (run_attack is also called from tests).
struct InterruptGuard {
    struct sigaction old_int {}, old_term {};
    InterruptGuard() {
        struct sigaction sa {};
        sa.sa_handler = on_interrupt;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, &old_int);
        sigaction(SIGTERM, &sa, &old_term);
    }
    ~InterruptGuard() {
        sigaction(SIGINT, &old_int, nullptr);
        sigaction(SIGTERM, &old_term, nullptr);
        packed_stdout_line_open = 0;
    }
};

// The resolved run: configuration, data, and where the time goes.
struct Experiment {
    AttackRunConfig cfg;
    json config_json;
    std::map<std::string, ModelSpec> specs;  // per kind
    Dataset data;
    Pool pool;
    int k = 0;                               // classes
    std::string dir;
    json resolved, environment;              // attack_config.json
    int step = 0, n_steps = 0;
    // LibTorch threads for training: a run with a plan (plan.json) trains
    // with the plan's count, whatever its --threads (0 = cfg.threads).
    int train_threads = 0;
    // Per kind, its first target's strongest attacks' ROC curves (the kinds'
    // shared log-log plot).
    std::vector<std::pair<std::string, std::vector<NamedRoc>>> strongest_rocs;
    // Where the run's time goes (metrics.json "seconds", and the last log line).
    double seconds_training = 0, seconds_engine = 0, seconds_attacks = 0;

    void log(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
        if (!cfg.verbose) return;
        char buf[1024];
        va_list ap;
        va_start(ap, fmt);
        const int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
        va_end(ap);
        if (n <= 0) return;
        std::fputs(buf, stdout);  // (a line over 1023 bytes is cut: none is that long)
        std::fflush(stdout);
        packed_stdout_line_open = buf[std::min(n, int(sizeof buf) - 1) - 1] != '\n';
    }
    std::string bin_path(const std::string& kind, const std::string& role) const {
        return dir + "/models/" + kind + "/" + role + ".bin";
    }
};

// What the attacker receives from a model: the engine's logits after the
// output defences (attack/defence.h), for every query of every attack.
std::vector<float> released_logits(const Experiment& ex, const std::string& kind, const std::string& role,
                                   const torch::Tensor& images) {
    std::vector<float> z = engine_logits(kind, ex.bin_path(kind, role), images);
    if (defended(ex.cfg.defences, role)) apply_output_defences(ex.cfg.defences, z, ex.k);
    return z;
}

// A trained (or cached) model, exported for the engines.
struct TrainedModel {
    double train_acc = 0, test_acc = 0;  // trainer's, on members / non-members
    json history = json::array();        // the checkpoint meta's, one entry per epoch
};

// What the engines computed for one kind: every model's logits on its
// members and non-members, and what the protocol adds (outputs hook).
struct KindOutputs {
    std::vector<ModelResult> models;                 // plan order
    std::vector<std::vector<float>> fresh_logits;    // shokri null: target t on plan.fresh[t]
    std::vector<std::vector<float>> pool_logits;     // lira: model m on the whole pool, pool order
    Matrix phi;                                      // lira: M x lira_n logit-scaled confidences
    Matrix p, p_pop;  // lira: true-label probabilities, M x lira_n and M x |population| (RMIA)
    // The label-only augmentation attack's counts (augment.h), per model: on
    // its members then non-members (shokri) or on the whole pool (lira);
    // shokri null: target t's on plan.fresh[t].
    std::vector<std::vector<double>> label_only, label_only_fresh;
    std::vector<Matrix> phi_aug;  // lira: per augmented query, M x lira_n phi (LiRA with augmented queries)
};

// --- Attacks on one target ---------------------------------------------------

// The data an attack sees: logits, true labels and membership of the
// examples, rows in the same order.
struct Labelled {
    std::vector<float> logits;
    std::vector<int> labels, is_member;
    void add(const std::vector<float>& lg, const std::vector<int>& lb, int member) {
        logits.insert(logits.end(), lg.begin(), lg.end());
        labels.insert(labels.end(), lb.begin(), lb.end());
        is_member.insert(is_member.end(), lb.size(), member);
    }
};

struct AttackScores {
    std::string name;
    std::vector<double> scores;  // one per target example; NaN = not scored (left out of every metric)
    double threshold = 0;        // the decision threshold (chosen without the target's membership)
    std::vector<int> fallback_classes;  // per-class attacks: classes scored by the global attack instead
    std::string unscored_reason;        // what a NaN score means for this attack ("" = none expected)
    json parameters = nullptr;          // the attack's parameters, copied into its metrics
};

// Shadow-trained attacks and the metric attacks, scored on the target.
std::vector<AttackScores> shadow_attacks(const Labelled& shadow, const Labelled& target, int k, uint64_t seed) {
    std::vector<AttackScores> out;
    Matrix sp = softmax_matrix(shadow.logits, k), tp = softmax_matrix(target.logits, k);
    // A class without shadow members or non-members (possible with few,
    // small shadows) is scored by the global attack: fallback_to_global.
    {
        ShokriAttack a;
        a.fit(sp, shadow.labels, shadow.is_member, mlp_spec({64}, seed), true);
        out.push_back({"shokri_mlp", a.score(tp, target.labels), 0.0, a.fallback_classes(), ""});
    }
    {
        ShokriAttack a;
        a.fit(sp, shadow.labels, shadow.is_member, logistic_regression_spec(seed), true);
        out.push_back({"shokri_logreg", a.score(tp, target.labels), 0.0, a.fallback_classes(), ""});
    }
    {
        BinaryClassifier c;
        c.fit(seed000_feature_matrix(shadow.logits, k), shadow.is_member, mlp_spec({64, 64}, seed));
        out.push_back({"seed000_mlp", c.score(seed000_feature_matrix(target.logits, k)), 0.0, {}, ""});
    }
    for (MetricAttack m : all_metric_attacks()) {
        auto s_scores = metric_scores(m, shadow.logits, k, shadow.labels);
        auto t_scores = metric_scores(m, target.logits, k, target.labels);
        out.push_back({metric_attack_name(m), t_scores, select_threshold(s_scores, shadow.is_member), {}, ""});
        if (m == MetricAttack::correctness) continue;  // one bit: per-class thresholds add nothing
        std::vector<int> fallback;
        auto th = per_class_thresholds(s_scores, shadow.labels, shadow.is_member, k, &fallback);
        out.push_back({metric_attack_name(m) + "_per_class", subtract_class_thresholds(t_scores, target.labels, th),
                       0.0, fallback, ""});
    }
    return out;
}

// Full precision (%.17g round-trips every double), so an outside tool
// recomputes every metric from the file exactly; an unscored example (NaN)
// is an empty field, never a number.
std::string csv_number(double v) {
    if (std::isnan(v)) return "";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

// The attacks drawn in the ROC plots (all are in roc/ as CSV).
const std::set<std::string> plot_attacks = {"shokri_mlp", "seed000_mlp", "loss", "loss_per_class",
                                            "modified_entropy_per_class", "lira_online", "lira_offline",
                                            "lira_online_fixed_var", "lira_online_aug", "rmia_offline",
                                            "rmia_online", "label_only_augment"};

// scores/<kind>_<target>.csv: pool_index,label,is_member, then one column per attack.
void write_scores_csv(const std::string& path, const std::vector<int64_t>& pool_index, const Labelled& t,
                      const std::vector<AttackScores>& attacks) {
    std::ostringstream csv;
    csv << "pool_index,label,is_member";
    for (const auto& a : attacks) csv << "," << a.name;
    csv << "\n";
    for (size_t i = 0; i < t.labels.size(); i++) {
        csv << pool_index[i] << "," << t.labels[i] << "," << t.is_member[i];
        for (const auto& a : attacks) csv << "," << csv_number(a.scores[i]);
        csv << "\n";
    }
    write_text_atomic(path, csv.str());
}

// The metrics of one attack on the given rows, or why there are none;
// n_unscored counts the rows without a score (left out).
json metrics_on_rows(const AttackScores& a, const std::vector<int>& is_member, const std::vector<int64_t>& among) {
    std::vector<int64_t> rows;
    for (int64_t i : among)
        if (!std::isnan(a.scores[size_t(i)])) rows.push_back(i);
    const auto s = pick(a.scores, rows);
    const auto m = pick(is_member, rows);
    const int64_t members = std::count(m.begin(), m.end(), 1);
    json j;
    if (members == 0 || members == int64_t(m.size())) {
        // Nothing to rank: say so instead of failing the whole run.
        j["not_evaluated"] = "the scored examples hold " + std::string(members ? "no non-member" : "no member");
        j["n_members"] = members, j["n_nonmembers"] = int64_t(m.size()) - members;
    } else {
        j = to_json(evaluate_attack(s, m, a.threshold));
    }
    j["n_unscored"] = int64_t(among.size() - rows.size());
    return j;
}

// TF-Privacy's slices of the target's rows: per true class ("class_<c>")
// and by whether the target classifies the example correctly (argmax of
// its logits = label: "correct", "incorrect").
std::vector<std::pair<std::string, std::vector<int64_t>>> slices_of(const Labelled& t) {
    const size_t n = t.labels.size();
    const int k = n ? int(t.logits.size() / n) : 0;
    std::vector<std::pair<std::string, std::vector<int64_t>>> out;
    for (int c = 0; c < k; c++) out.push_back({"class_" + std::to_string(c), {}});
    out.push_back({"correct", {}});
    out.push_back({"incorrect", {}});
    for (size_t i = 0; i < n; i++) {
        out[size_t(t.labels[i])].second.push_back(int64_t(i));
        out[size_t(k) + (is_correct(t.logits.data() + i * size_t(k), k, t.labels[i]) ? 0 : 1)].second.push_back(
            int64_t(i));
    }
    return out;
}

// plots/<kind>_roc.svg and _roc_loglog.svg (the plot_attacks), the loss and
// LiRA online score histograms, and the logit-scaled confidence histogram
// of every row of the target (members vs non-members).
// x with every value below its q-quantile raised to it and every value
// above its (1 - q)-quantile lowered to it (order statistics floor(q (n-1))
// and ceil((1-q)(n-1)) of the sorted values), for histograms whose tails
// would squeeze everything else into one bar.
std::vector<double> clamp_to_quantiles(std::vector<double> x, double q) {
    if (x.empty()) return x;
    std::vector<double> s = x;
    std::sort(s.begin(), s.end());
    const double lo = s[size_t(std::floor(q * double(s.size() - 1)))];
    const double hi = s[size_t(std::ceil((1 - q) * double(s.size() - 1)))];
    for (double& v : x) v = std::clamp(v, lo, hi);
    return x;
}

void write_plots(const std::string& dir, const std::string& kind, const std::string& target,
                 const std::vector<NamedRoc>& curves, const Labelled& t,
                 const std::map<std::string, std::pair<std::vector<double>, std::vector<int>>>& scored_sets) {
    fs::create_directories(dir + "/plots");
    const std::string title = kind + " " + target;
    std::vector<NamedRoc> drawn;
    for (const NamedRoc& c : curves)
        if (plot_attacks.count(c.name)) drawn.push_back(c);
    write_text_atomic(dir + "/plots/" + kind + "_roc.svg", svg_roc(drawn, false, title + ": ROC"));
    write_text_atomic(dir + "/plots/" + kind + "_roc_loglog.svg", svg_roc(drawn, true, title + ": ROC, log-log"));
    for (const auto& [name, sm] : scored_sets) {
        if (name == "loss")
            write_text_atomic(dir + "/plots/" + kind + "_hist_loss.svg",
                              svg_histogram(score_histogram(sm.first, sm.second, 40),
                                            title + ": loss score, members vs non-members (scored only)"));
        if (name == "lira_online")  // heavy-tailed (per-example variances of a few references): its 1% tails clamped
            write_text_atomic(dir + "/plots/" + kind + "_hist_lira_online.svg",
                              svg_histogram(score_histogram(clamp_to_quantiles(sm.first, 0.01), sm.second, 40),
                                            title + ": lira_online score, members vs non-members (scored only; "
                                                    "the lowest and highest 1% in the end bins)"));
    }
    const int k = int(t.logits.size() / std::max<size_t>(t.labels.size(), 1));
    write_text_atomic(dir + "/plots/" + kind + "_hist_logit_conf.svg",
                      svg_histogram(logit_confidence_histogram(t.logits, k, t.labels, t.is_member, 40),
                                    title + ": logit-scaled confidence, members vs non-members",
                                    "phi = log(p_y / (1 - p_y)) (higher = member)"));
}

// Writes scores/<kind>_<target>.csv and roc/<kind>_<target>_<attack>.csv,
// and when `strongest` is given (the first target), plots/<kind>_*.svg and
// into *strongest the curves of the 3 strongest attacks by AUC and LiRA
// online (strongest_rocs) for the kinds' shared plot; returns {attack name:
// metrics}, each with its "slices" (slices_of).
json evaluate_and_write(const std::string& dir, const std::string& kind, const std::string& target,
                        const std::vector<int64_t>& pool_index, const Labelled& t,
                        const std::vector<AttackScores>& attacks, std::vector<NamedRoc>* strongest) {
    fs::create_directories(dir + "/scores");
    fs::create_directories(dir + "/roc");
    write_scores_csv(dir + "/scores/" + kind + "_" + target + ".csv", pool_index, t, attacks);
    const auto slices = slices_of(t);
    std::vector<int64_t> all(t.labels.size());
    for (size_t i = 0; i < all.size(); i++) all[i] = int64_t(i);
    json metrics = json::object();
    std::vector<NamedRoc> curves;
    std::map<std::string, std::pair<std::vector<double>, std::vector<int>>> scored_sets;  // for the histograms
    for (const auto& a : attacks) {
        // The one rule for unscored examples (NaN): left out of every metric,
        // the ROC file and the histogram; metrics.json counts them.
        json j = metrics_on_rows(a, t.is_member, all);
        if (!j.contains("not_evaluated")) {
            std::vector<int64_t> rows;
            for (int64_t i : all)
                if (!std::isnan(a.scores[size_t(i)])) rows.push_back(i);
            const auto s = pick(a.scores, rows);
            const auto m = pick(t.is_member, rows);
            auto roc = roc_curve(s, m);
            write_roc_csv(dir + "/roc/" + kind + "_" + target + "_" + a.name + ".csv", roc);
            if (strongest) curves.push_back({a.name, std::move(roc)});
            scored_sets[a.name] = {s, m};
        }
        if (!a.unscored_reason.empty()) j["unscored_are"] = a.unscored_reason;
        if (!a.fallback_classes.empty()) j["fallback_classes"] = a.fallback_classes;
        if (!a.parameters.is_null()) j.update(a.parameters);
        for (const auto& [name, rows] : slices) j["slices"][name] = metrics_on_rows(a, t.is_member, rows);
        metrics[a.name] = j;
    }
    if (strongest) {
        write_plots(dir, kind, target, curves, t, scored_sets);
        *strongest = strongest_rocs(curves, metrics, 3, "lira_online");
    }
    return metrics;
}

json summarize_targets(const json& per_target) {
    // per_target: [{train_acc, test_acc, attacks: {name: metrics}}]
    json out;
    std::vector<double> tr, te, gap;
    std::map<std::string, std::map<std::string, std::vector<double>>> vals;
    for (const auto& t : per_target) {
        tr.push_back(t["train_acc"]), te.push_back(t["test_acc"]);
        gap.push_back(t["train_acc"].get<double>() - t["test_acc"].get<double>());
        for (auto& [name, m] : t["attacks"].items())
            for (auto& [key, v] : m.items())
                if (v.is_number()) vals[name][key].push_back(v.get<double>());
    }
    auto ms = [](const std::vector<double>& v) {
        MeanStd s = mean_std(v);
        return json{{"mean", s.mean}, {"std", s.std}, {"n", s.n}};
    };
    out["train_acc"] = ms(tr), out["test_acc"] = ms(te), out["gap"] = ms(gap);
    for (auto& [name, keys] : vals)
        for (auto& [key, v] : keys) out["attacks"][name][key] = ms(v);
    return out;
}

// One target as the attacks see it: the rows evaluated, their pool indices,
// logits, labels and membership.
struct TargetCase {
    int index = 0;                    // position among the targets (0 draws the plots)
    std::string role;
    std::vector<int64_t> pool_index;  // per row
    std::vector<int64_t> rows;        // lira: per row, its column of the lira pool
    Labelled data;
    std::vector<double> label_only;   // per row: augmented queries labelled correctly
    double train_acc = 0, test_acc = 0;
};

// --- Protocols: everything that differs between them ---------------------------
//
// A protocol is a row of this table: how many examples it needs, its plan
// (the models and their splits), what the engines compute beyond each
// model's members and non-members, the targets it evaluates and the attacks
// it runs on each. A new protocol, attack or defence is a new row or a new
// entry in one of these functions, not a branch in run_attack.
struct Protocol {
    const char* name;
    const char* references;        // what its --shadow models are ("shadows", "reference models")
    bool separate_targets;         // --targets applies (shokri)
    const char* null_members_what; // the null-members sanity line's middle part
    void (*describe)(const AttackRunConfig& cfg, json& resolved);  // its own keys of attack_config.json
    int64_t (*examples_needed)(const AttackRunConfig& cfg);
    std::string (*who_needs)(const AttackRunConfig& cfg);  // for the "--ds is too large" line
    Plan (*plan)(const Experiment& ex);
    void (*outputs)(Experiment& ex, const std::string& kind, const Plan& plan, KindOutputs& out);
    std::vector<TargetCase> (*targets)(Experiment& ex, const Plan& plan, const KindOutputs& out);
    std::vector<AttackScores> (*attacks)(const Experiment& ex, const Plan& plan, const KindOutputs& out,
                                         const TargetCase& t);
};

// --- What the protocols share -------------------------------------------------

// The model's logits on the augmented queries (augment.h) of the pool
// examples idx, one engine run per query; also written to
// outputs/<kind>/augmented/<file>.npy, (queries x |idx|) rows, query-major.
std::vector<std::vector<float>> augmented_logits(const Experiment& ex, const std::string& kind,
                                                 const std::string& role, const std::vector<int64_t>& idx,
                                                 const std::string& file) {
    const torch::Tensor x = rows_of(ex.pool.images, idx);
    const std::vector<float> images(x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
    const InputSpec& in = ex.pool.input;
    std::vector<std::vector<float>> per_query;
    std::vector<float> all;
    for (const Augmentation& a : augmented_queries(ex.cfg.dataset)) {
        std::vector<float> aug = augment_batch(images, int64_t(idx.size()), in.channels, in.height, in.width, a);
        per_query.push_back(
            released_logits(ex, kind, role, torch::from_blob(aug.data(), x.sizes(), torch::kFloat32)));
        all.insert(all.end(), per_query.back().begin(), per_query.back().end());
    }
    fs::create_directories(ex.dir + "/outputs/" + kind + "/augmented");
    char err[512];
    const std::string path = ex.dir + "/outputs/" + kind + "/augmented/" + file + ".npy";
    if (io_write_npy_f32(path.c_str(), all.data(), int64_t(all.size()) / ex.k, ex.k, err, sizeof err) != 0)
        throw std::runtime_error(err);
    return per_query;
}

// How many of the augmented queries the model labels correctly, for each
// pool example of idx.
std::vector<double> augmented_correct(const Experiment& ex, const std::string& kind, const std::string& role,
                                      const std::vector<int64_t>& idx, const std::string& file) {
    return correct_query_counts(augmented_logits(ex, kind, role, idx, file), ex.k, labels_of(ex.pool, idx));
}

// The label-only augmentation attack (Choquette-Choo et al. 2021): the
// target's counts, thresholded where the reference counts (shadows' or the
// other models', with their membership) separate best.
AttackScores label_only_attack(const Experiment& ex, const TargetCase& t, const std::vector<double>& ref_counts,
                               const std::vector<int>& ref_member) {
    return {"label_only_augment", t.label_only, select_threshold(ref_counts, ref_member), {}, "",
            {{"augmented_queries", augmented_queries(ex.cfg.dataset).size()}}};
}

// --- shokri: targets and shadows on disjoint splits of the pool ----------------

int64_t shokri_examples_needed(const AttackRunConfig& c) {
    return 2 * c.ds * c.targets + (c.null_members ? c.ds * c.targets : 0) + 2 * c.ds;
}

// Decided before any training: a class with no shadow members or no shadow
// non-members cannot have its own per-class attack; those attacks score it
// with their global version, said in the log and in metrics.json.
void shokri_fallback_note(const Experiment& ex, Plan& plan) {
    const AttackRunConfig& cfg = ex.cfg;
    std::vector<int64_t> cm(size_t(ex.k), 0), cn(size_t(ex.k), 0);
    for (int s = 0; s < cfg.shadows; s++) {
        const ModelSplit& sp = plan.models[size_t(cfg.targets + s)];
        for (int y : labels_of(ex.pool, sp.members)) cm[size_t(y)]++;
        for (int y : labels_of(ex.pool, sp.nonmembers)) cn[size_t(y)]++;
    }
    std::vector<int> thin;
    std::string list;
    for (int c = 0; c < ex.k; c++)
        if (cm[size_t(c)] == 0 || cn[size_t(c)] == 0) {
            thin.push_back(c);
            list += (list.empty() ? "" : ", ") + std::to_string(c) + " (" + std::to_string(cm[size_t(c)]) +
                    " members, " + std::to_string(cn[size_t(c)]) + " non-members)";
        }
    if (thin.empty()) return;
    plan.fallback_note = {{"classes", thin},
                          {"reason", "no shadow members or no shadow non-members of the class; use a larger "
                                     "--ds or more --shadow models"},
                          {"attacks", "shokri_mlp, shokri_logreg and every *_per_class attack score these "
                                      "classes with their global version"}};
    plan.fallback_line = "note: --ds " + std::to_string(cfg.ds) + " with " + std::to_string(cfg.shadows) +
                         " shadow(s) leaves class(es) " + list +
                         "; the per-class attacks score them with the global attack (use a larger --ds or more "
                         "--shadow models)\n";
}

// Target t trains on order[2t ds, 2t ds + ds), the next ds are its
// non-members; (null) the ds after all targets' are its fresh "members";
// shadow s draws ds + ds at random from the rest.
Plan shokri_plan(const Experiment& ex) {
    const AttackRunConfig& cfg = ex.cfg;
    const int64_t ds = cfg.ds;
    Plan plan;
    plan.order = permutation(ex.pool.images.size(0), cfg.seed);
    const auto& order = plan.order;
    const int64_t reserved = 2 * ds * cfg.targets + (cfg.null_members ? ds * cfg.targets : 0);
    for (int t = 0; t < cfg.targets; t++) {
        ModelSplit s{"target" + std::to_string(t), {}, {}, 0};
        s.members.assign(order.begin() + 2 * ds * t, order.begin() + 2 * ds * t + ds);
        s.nonmembers.assign(order.begin() + 2 * ds * t + ds, order.begin() + 2 * ds * (t + 1));
        plan.models.push_back(s);
        if (cfg.null_members) {
            const int64_t at = 2 * ds * cfg.targets + ds * t;
            plan.fresh.emplace_back(order.begin() + at, order.begin() + at + ds);
        }
    }
    const std::vector<int64_t> rest(order.begin() + reserved, order.end());
    for (int s = 0; s < cfg.shadows; s++) {
        auto pick_order = permutation(int64_t(rest.size()), cfg.seed * 7919 + 1 + s);
        ModelSplit sp{"shadow" + std::to_string(s), {}, {}, 0};
        for (int64_t i = 0; i < ds; i++) sp.members.push_back(rest[size_t(pick_order[i])]);
        for (int64_t i = ds; i < 2 * ds; i++) sp.nonmembers.push_back(rest[size_t(pick_order[i])]);
        plan.models.push_back(sp);
    }
    for (size_t i = 0; i < plan.models.size(); i++) plan.models[i].seed = cfg.seed + 1 + i;
    shokri_fallback_note(ex, plan);
    return plan;
}

// null: each target's logits on its fresh "members".
// Every model's label-only counts on its members and non-members.
void shokri_outputs(Experiment& ex, const std::string& kind, const Plan& plan, KindOutputs& out) {
    for (size_t t = 0; t < plan.fresh.size(); t++) {
        out.fresh_logits.push_back(
            released_logits(ex, kind, plan.models[t].role, rows_of(ex.pool.images, plan.fresh[t])));
        out.label_only_fresh.push_back(
            augmented_correct(ex, kind, plan.models[t].role, plan.fresh[t], plan.models[t].role + "_null_members"));
    }
    for (const ModelSplit& s : plan.models) {
        std::vector<int64_t> idx = s.members;
        idx.insert(idx.end(), s.nonmembers.begin(), s.nonmembers.end());
        out.label_only.push_back(augmented_correct(ex, kind, s.role, idx, s.role));
    }
}

std::vector<TargetCase> shokri_targets(Experiment& ex, const Plan& plan, const KindOutputs& out) {
    std::vector<TargetCase> cases;
    for (int t = 0; t < ex.cfg.targets; t++) {
        const ModelSplit& sp = plan.models[size_t(t)];
        const ModelResult& r = out.models[size_t(t)];
        TargetCase c;
        c.index = t, c.role = sp.role, c.train_acc = r.train_acc, c.test_acc = r.test_acc;
        const std::vector<double>& lo = out.label_only[size_t(t)];
        if (ex.cfg.null_members) {
            // Fresh examples the target never saw, labelled "member".
            c.data.add(out.fresh_logits[size_t(t)], labels_of(ex.pool, plan.fresh[size_t(t)]), 1);
            c.pool_index = plan.fresh[size_t(t)];
            c.label_only = out.label_only_fresh[size_t(t)];
        } else {
            c.data.add(r.member_logits, labels_of(ex.pool, sp.members), 1);
            c.pool_index = sp.members;
            c.label_only.assign(lo.begin(), lo.begin() + int64_t(sp.members.size()));
        }
        c.label_only.insert(c.label_only.end(), lo.begin() + int64_t(sp.members.size()), lo.end());
        c.data.add(r.nonmember_logits, labels_of(ex.pool, sp.nonmembers), 0);
        c.pool_index.insert(c.pool_index.end(), sp.nonmembers.begin(), sp.nonmembers.end());
        cases.push_back(std::move(c));
    }
    return cases;
}

// The shadow-trained and metric attacks, and seed 000's own protocol.
std::vector<AttackScores> shokri_attacks(const Experiment& ex, const Plan& plan, const KindOutputs& out,
                                         const TargetCase& t) {
    const AttackRunConfig& cfg = ex.cfg;
    Labelled shadow;
    std::vector<double> shadow_label_only;
    for (int s = 0; s < cfg.shadows; s++) {
        const ModelSplit& sp = plan.models[size_t(cfg.targets + s)];
        const ModelResult& r = out.models[size_t(cfg.targets + s)];
        shadow.add(r.member_logits, labels_of(ex.pool, sp.members), 1);
        shadow.add(r.nonmember_logits, labels_of(ex.pool, sp.nonmembers), 0);
        const auto& lo = out.label_only[size_t(cfg.targets + s)];
        shadow_label_only.insert(shadow_label_only.end(), lo.begin(), lo.end());
    }
    const uint64_t seed = cfg.seed + 17 * uint64_t(t.index);
    auto attacks = shadow_attacks(shadow, t.data, ex.k, seed);
    // Seed 000's own protocol (attack trained on the target's outputs), for
    // comparison with its published numbers: scored on its held-out 20%,
    // the rows it trained on have no score.
    auto held = train_on_target_outputs(seed000_feature_matrix(t.data.logits, ex.k), t.data.is_member,
                                        mlp_spec({64, 64}, seed), 0.2);
    AttackScores own{"seed000_on_target",
                     std::vector<double>(t.data.is_member.size(), std::nan("")),
                     0.0,
                     {},
                     "the 80% of the target's rows the attack trained on (scored: the held-out 20%)"};
    for (size_t i = 0; i < held.rows.size(); i++) own.scores[size_t(held.rows[i])] = held.score[i];
    attacks.push_back(std::move(own));
    attacks.push_back(label_only_attack(ex, t, shadow_label_only, shadow.is_member));
    return attacks;
}

// --- lira: M = shadows + 1 models on random halves of one pool ------------------

int64_t lira_examples_needed(const AttackRunConfig& c) { return 2 * c.ds; }

// Null mode: model m is evaluated only on the ds examples it never trained
// on; a seeded random half of them are its "members". Every attack must
// then score AUC 0.5 within noise.
void lira_null_rows(const AttackRunConfig& cfg, Plan& plan) {
    const int M = cfg.shadows + 1;
    for (int m = 0; m < M; m++) {
        std::vector<int64_t> out_rows;
        for (int64_t j = 0; j < plan.lira_n; j++)
            if (!plan.membership[size_t(m * plan.lira_n + j)]) out_rows.push_back(j);
        auto p = permutation(int64_t(out_rows.size()), cfg.seed * 15485863 + 1 + m);
        std::vector<int> fake(out_rows.size(), 0);
        for (size_t i = 0; i < out_rows.size() / 2; i++) fake[size_t(p[i])] = 1;
        plan.lira_null.push_back({out_rows, fake});
    }
}

// Model m trains on a seeded random half of the pool order[0, 2 ds).
Plan lira_plan(const Experiment& ex) {
    const AttackRunConfig& cfg = ex.cfg;
    const int64_t ds = cfg.ds;
    Plan plan;
    plan.order = permutation(ex.pool.images.size(0), cfg.seed);
    const int64_t n = plan.lira_n = 2 * ds;
    const int M = cfg.shadows + 1;
    plan.membership.assign(size_t(M * n), 0);
    for (int m = 0; m < M; m++) {
        auto half = permutation(n, cfg.seed * 104729 + 1 + m);
        ModelSplit sp{"model" + std::to_string(m), {}, {}, cfg.seed + 1 + uint64_t(m)};
        for (int64_t i = 0; i < n; i++) {
            const int64_t j = half[size_t(i)];
            if (i < ds) {
                plan.membership[size_t(m * n + j)] = 1;
                sp.members.push_back(plan.order[size_t(j)]);
            } else {
                sp.nonmembers.push_back(plan.order[size_t(j)]);
            }
        }
        plan.models.push_back(sp);
    }
    if (cfg.null_members) lira_null_rows(cfg, plan);
    const int64_t n_pop = std::min<int64_t>(cfg.rmia_population, int64_t(plan.order.size()) - n);
    plan.population.assign(plan.order.begin() + n, plan.order.begin() + n + n_pop);
    return plan;
}

std::vector<int64_t> lira_pool(const Plan& plan) {
    return std::vector<int64_t>(plan.order.begin(), plan.order.begin() + plan.lira_n);
}

// M x n true-label softmax probabilities of each model's logits (RMIA's
// signal), floored at the smallest normal double so that a probability
// that underflows stays in rmia_scores' (0, 1].
Matrix true_label_probabilities(const std::vector<std::vector<float>>& logits, int k, const std::vector<int>& labels) {
    Matrix p(int64_t(logits.size()), int64_t(labels.size()));
    for (int64_t m = 0; m < p.rows; m++)
        for (int64_t j = 0; j < p.cols; j++)
            p.at(m, j) = std::max(true_class_confidence(logits[size_t(m)].data() + j * k, k, labels[size_t(j)]),
                                  std::numeric_limits<double>::min());
    return p;
}

// Every model's logits on the population points, saved to
// outputs/<kind>/population/<role>.npy (rows in splits.json's
// "rmia_population" order).
void population_outputs(Experiment& ex, const std::string& kind, const Plan& plan, KindOutputs& out) {
    if (plan.population.empty()) return;
    fs::create_directories(ex.dir + "/outputs/" + kind + "/population");
    std::vector<std::vector<float>> logits;
    for (const ModelSplit& s : plan.models) {
        logits.push_back(released_logits(ex, kind, s.role, rows_of(ex.pool.images, plan.population)));
        char err[512];
        const std::string path = ex.dir + "/outputs/" + kind + "/population/" + s.role + ".npy";
        if (io_write_npy_f32(path.c_str(), logits.back().data(), int64_t(plan.population.size()), ex.k, err,
                             sizeof err) != 0)
            throw std::runtime_error(err);
    }
    out.p_pop = true_label_probabilities(logits, ex.k, labels_of(ex.pool, plan.population));
}

// Every model's logits, phi and true-label probability on the whole lira
// pool (pool order), and on RMIA's population.
void lira_outputs(Experiment& ex, const std::string& kind, const Plan& plan, KindOutputs& out) {
    const int M = int(plan.models.size());
    const int64_t n = plan.lira_n;
    const std::vector<int64_t> pool = lira_pool(plan);
    const std::vector<int> labels = labels_of(ex.pool, pool);
    out.phi = Matrix(M, n);
    for (int m = 0; m < M; m++) {
        out.pool_logits.push_back(
            released_logits(ex, kind, plan.models[size_t(m)].role, rows_of(ex.pool.images, pool)));
        auto p = logit_scaled_confidences(out.pool_logits.back(), ex.k, labels);
        for (int64_t j = 0; j < n; j++) out.phi.at(m, j) = p[size_t(j)];
    }
    out.p = true_label_probabilities(out.pool_logits, ex.k, labels);
    out.phi_aug.assign(augmented_queries(ex.cfg.dataset).size(), Matrix(M, n));
    for (int m = 0; m < M; m++) {
        const std::string& role = plan.models[size_t(m)].role;
        const auto per_query = augmented_logits(ex, kind, role, pool, role);
        out.label_only.push_back(correct_query_counts(per_query, ex.k, labels));
        for (size_t q = 0; q < per_query.size(); q++) {
            auto phi = logit_scaled_confidences(per_query[q], ex.k, labels);
            for (int64_t j = 0; j < n; j++) out.phi_aug[q].at(m, j) = phi[size_t(j)];
        }
    }
    population_outputs(ex, kind, plan, out);
}

// Every model is the target in turn, on all the pool with its true
// membership, or (null) on the rows of lira_null.
std::vector<TargetCase> lira_targets(Experiment& ex, const Plan& plan, const KindOutputs& out) {
    const int64_t n = plan.lira_n;
    const int k = ex.k;
    const std::vector<int64_t> pool = lira_pool(plan);
    const std::vector<int> labels = labels_of(ex.pool, pool);
    std::vector<TargetCase> cases;
    for (int t = 0; t < int(plan.models.size()); t++) {
        TargetCase c;
        c.index = t, c.role = plan.models[size_t(t)].role;
        c.train_acc = out.models[size_t(t)].train_acc, c.test_acc = out.models[size_t(t)].test_acc;
        if (ex.cfg.null_members) {
            c.rows = plan.lira_null[size_t(t)].first;
            c.data.is_member = plan.lira_null[size_t(t)].second;
        } else {
            for (int64_t j = 0; j < n; j++) c.rows.push_back(j);
            c.data.is_member.assign(plan.membership.begin() + t * n, plan.membership.begin() + (t + 1) * n);
        }
        const std::vector<float>& lg = out.pool_logits[size_t(t)];
        for (int64_t j : c.rows) c.data.logits.insert(c.data.logits.end(), lg.begin() + j * k, lg.begin() + (j + 1) * k);
        c.data.labels = pick(labels, c.rows);
        c.pool_index = pick(pool, c.rows);
        c.label_only = pick(out.label_only[size_t(t)], c.rows);
        cases.push_back(std::move(c));
    }
    return cases;
}

// LiRA with augmented queries (Carlini et al. 2022, section 5.2): the
// example itself and each augmented query get their own Gaussians from the
// references, and the score is the mean over the 1 + Q queries of the
// per-query LiRA score (online: log-likelihood ratios; offline: z-scores).
std::vector<AttackScores> lira_augmented_attacks(const Plan& plan, const KindOutputs& out, const TargetCase& t) {
    std::vector<AttackScores> attacks;
    for (bool online : {true, false})
        for (bool fixed : {false, true}) {
            std::vector<double> mean = lira_scores(out.phi, plan.membership, t.index, {online, fixed}).score;
            for (const Matrix& phi : out.phi_aug) {
                const std::vector<double> s = lira_scores(phi, plan.membership, t.index, {online, fixed}).score;
                for (size_t j = 0; j < mean.size(); j++) mean[j] += s[j];  // NaN stays NaN: same references
            }
            for (double& v : mean) v /= double(1 + out.phi_aug.size());
            const std::string name =
                std::string("lira_") + (online ? "online" : "offline") + (fixed ? "_fixed_var" : "") + "_aug";
            attacks.push_back({name, pick(mean, t.rows), 0.0, {},
                               online ? "examples with no IN or no OUT reference model"
                                      : "examples with no OUT reference model",
                               {{"queries", 1 + out.phi_aug.size()}}});
        }
    return attacks;
}

// RMIA offline (a tuned on the reference models alone) and online, against
// the population; none when the dataset leaves no example outside the pool.
// Decision threshold, fixed in advance: x dominates half the population.
std::vector<AttackScores> rmia_attacks(const Experiment& ex, const Plan& plan, const KindOutputs& out,
                                       const TargetCase& t) {
    std::vector<AttackScores> attacks;
    if (out.p_pop.cols == 0) return attacks;
    const std::vector<int> membership_pop(out.p_pop.values.size(), 0);
    const std::vector<int>& membership = plan.membership;
    RmiaOptions o;
    o.gamma = ex.cfg.rmia_gamma;
    const json common = {{"rmia_gamma", o.gamma}, {"rmia_population", out.p_pop.cols},
                         {"rmia_reference_models", out.p.rows - 1}};
    o.a = rmia_tune_offline_a(out.p, membership, out.p_pop, membership_pop, t.index, o.gamma);
    o.online = false;
    LiraScores off = rmia_scores(out.p, membership, out.p_pop, membership_pop, t.index, o);
    json pa = common;
    pa["rmia_a"] = o.a;
    attacks.push_back({"rmia_offline", pick(off.score, t.rows), 0.5, {}, "examples with no OUT reference model", pa});
    o.online = true;
    LiraScores on = rmia_scores(out.p, membership, out.p_pop, membership_pop, t.index, o);
    attacks.push_back({"rmia_online", pick(on.score, t.rows), 0.5, {}, "", common});
    return attacks;
}

// LiRA online / offline, per-example / fixed variance, RMIA, then the
// metric attacks with thresholds from the other models.
std::vector<AttackScores> lira_attacks(const Experiment& ex, const Plan& plan, const KindOutputs& out,
                                       const TargetCase& t) {
    const int64_t n = plan.lira_n;
    std::vector<AttackScores> attacks;
    for (bool online : {true, false})
        for (bool fixed : {false, true}) {
            LiraScores ls = lira_scores(out.phi, plan.membership, t.index, {online, fixed});
            const std::string name = std::string("lira_") + (online ? "online" : "offline") + (fixed ? "_fixed_var" : "");
            // Unscorable examples (NaN: no IN or OUT reference) are left out
            // of the metrics and counted (n_unscored). Decision thresholds,
            // fixed in advance: online, a likelihood ratio of 1; offline, phi
            // above the OUT references' mean.
            attacks.push_back({name, pick(ls.score, t.rows), 0.0, {},
                               online ? "examples with no IN or no OUT reference model"
                                      : "examples with no OUT reference model"});
        }
    for (AttackScores& a : lira_augmented_attacks(plan, out, t)) attacks.push_back(std::move(a));
    for (AttackScores& a : rmia_attacks(ex, plan, out, t)) attacks.push_back(std::move(a));
    // The other models, as shadows for the metric attacks' thresholds.
    Labelled refs;
    const std::vector<int> labels = labels_of(ex.pool, lira_pool(plan));
    for (int m = 0; m < int(plan.models.size()); m++) {
        if (m == t.index) continue;
        const auto& lg = out.pool_logits[size_t(m)];
        refs.logits.insert(refs.logits.end(), lg.begin(), lg.end());
        refs.labels.insert(refs.labels.end(), labels.begin(), labels.end());
        refs.is_member.insert(refs.is_member.end(), plan.membership.begin() + m * n,
                              plan.membership.begin() + (m + 1) * n);
    }
    for (MetricAttack m : all_metric_attacks()) {
        auto s_scores = metric_scores(m, refs.logits, ex.k, refs.labels);
        attacks.push_back({metric_attack_name(m), metric_scores(m, t.data.logits, ex.k, t.data.labels),
                           select_threshold(s_scores, refs.is_member), {}, ""});
    }
    std::vector<double> ref_label_only;
    for (int m = 0; m < int(plan.models.size()); m++)
        if (m != t.index)
            ref_label_only.insert(ref_label_only.end(), out.label_only[size_t(m)].begin(), out.label_only[size_t(m)].end());
    attacks.push_back(label_only_attack(ex, t, ref_label_only, refs.is_member));
    return attacks;
}

const Protocol kProtocols[] = {
    {"shokri", "shadows", true, "each target's \"members\" are fresh examples it never trained on",
     [](const AttackRunConfig& c, json& r) { r["targets"] = c.targets; }, shokri_examples_needed,
     [](const AttackRunConfig& c) { return std::to_string(c.targets) + " target(s) and the shadows need "; },
     shokri_plan, shokri_outputs, shokri_targets, shokri_attacks},
    {"lira", "reference models", false,
     "each model is scored on examples it never trained on, a random half of them called members",
     [](const AttackRunConfig& c, json& r) {
         r["rmia_gamma"] = c.rmia_gamma;
         r["rmia_population"] = c.rmia_population;
     },
     lira_examples_needed, [](const AttackRunConfig&) { return std::string("lira needs a pool of "); }, lira_plan,
     lira_outputs, lira_targets, lira_attacks},
};

// The protocol of that name; nullptr when there is none.
const Protocol* find_protocol(const std::string& name) {
    for (const Protocol& p : kProtocols)
        if (name == p.name) return &p;
    return nullptr;
}

// --- Stage 1: resolve the run ---------------------------------------------------

// The checks that need no data; returns the protocol.
const Protocol& check_config(AttackRunConfig& cfg) {
    const Protocol* proto = find_protocol(cfg.protocol);
    if (!proto) throw std::runtime_error("unknown protocol '" + cfg.protocol + "' (shokri, lira)");
    if (cfg.models.empty()) throw std::runtime_error("no model kind to attack");
    for (const auto& m : cfg.models)
        if (m != "mamba" && m != "cnn") throw std::runtime_error("unknown model '" + m + "' (mamba, cnn)");
    if (cfg.shadows < 1) throw std::runtime_error("--shadow must be at least 1");
    if (cfg.protocol == "lira" && cfg.shadows < 2)
        throw std::runtime_error("lira needs at least 2 reference models (--shadow 2)");
    if (cfg.targets < 1) throw std::runtime_error("--targets must be at least 1");
    if (cfg.ds < 10) throw std::runtime_error("--ds must be at least 10");
    if (cfg.run_dir.empty()) cfg.run_dir = default_run_dir(cfg);
    // The run directory is all output (files replaced, --force reuses it):
    // no input may live in it.
    check_input_outside_dir(cfg.config_path, "--config", cfg.run_dir, "--run-dir");
    if (!cfg.data_dir.empty()) check_input_outside_dir(cfg.data_dir, "--data-dir", cfg.run_dir, "--run-dir");
    return *proto;
}

ModelSpec spec_for(const Experiment& ex, const std::string& kind) {
    std::string preset = kind == "mamba" ? ex.cfg.mamba_preset : ex.cfg.cnn_preset;
    if (preset.empty()) preset = default_preset(kind, ex.cfg.dataset);
    ModelSpec spec = resolve_preset(ex.config_json, kind, preset);
    if (spec.model != kind)
        throw std::runtime_error("preset '" + spec.preset + "' is a " + spec.model + " preset, not " + kind);
    return spec;
}

// The resolved configuration (a run directory holds one experiment) and
// what else decides the bits of the results (LibTorch's and the engines'
// reductions depend on the thread count): recorded, not compared, so a run
// can be resumed elsewhere; the file says who wrote it last.
void describe_run(Experiment& ex) {
    const AttackRunConfig& cfg = ex.cfg;
    ex.resolved = {{"protocol", cfg.protocol}, {"models", cfg.models}, {"dataset", cfg.dataset},
                   {"shadows", cfg.shadows},   {"ds", cfg.ds},         {"epochs", cfg.epochs},
                   {"seed", cfg.seed},         {"null_members", cfg.null_members}};
    find_protocol(cfg.protocol)->describe(cfg, ex.resolved);
    if (cfg.defences.any()) ex.resolved["defence"] = defence_json(cfg.defences);
    for (const auto& [kind, spec] : ex.specs) {
        ex.resolved["presets"][kind] = spec.preset;
        TrainConfig tc = resolve_training(ex.config_json, spec.preset);
        if (cfg.epochs > 0) tc.epochs = cfg.epochs;
        ex.resolved["training"][kind] = to_json(tc);
        if (cfg.defences.dp) {
            check_dp_model(spec);
            json& privacy = ex.resolved["defence"]["privacy"][kind];
            privacy = defence_privacy(cfg.defences, tc.batch_size, tc.epochs, cfg.ds);
            use_dp_learning_rate(tc);  // the preset's dp_learning_rate, if any
            privacy["learning_rate"] = tc.learning_rate;  // the rate the DP-trained models use
        }
        ex.resolved["model_config"][kind] = kind == "mamba" ? to_json(spec.mamba) : to_json(spec.cnn);
    }
    ex.environment = {
        {"threads", cfg.threads > 0 ? cfg.threads : torch::get_num_threads()},
        {"seed", cfg.seed},
        {"libtorch", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                         std::to_string(TORCH_VERSION_PATCH)},
        {"nlohmann_json", std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." +
                              std::to_string(NLOHMANN_JSON_VERSION_MINOR) + "." +
                              std::to_string(NLOHMANN_JSON_VERSION_PATCH)},
        {"compiler", __VERSION__},
        {"openmp", _OPENMP}};
}

// config.json, the presets, the dataset and its pool; the size check.
void resolve_run(Experiment& ex, const Protocol& proto) {
    const AttackRunConfig& cfg = ex.cfg;
    ex.dir = cfg.run_dir;
    if (cfg.threads > 0) {
        torch::set_num_threads(cfg.threads);
        omp_set_num_threads(cfg.threads);
    }
    ex.config_json = load_config_file(cfg.config_path);
    for (const auto& kind : cfg.models) ex.specs[kind] = spec_for(ex, kind);
    ex.data = cfg.data_dir.empty() ? load_dataset(cfg.dataset) : load_dataset(cfg.dataset, cfg.data_dir);
    for (const auto& [kind, spec] : ex.specs)
        if (kind == "mamba") validate_mamba(spec.mamba, ex.data.train.channels, ex.data.train.height, ex.data.train.width);
    ex.pool = make_pool(ex.data);
    ex.k = ex.pool.input.n_classes;
    check_defences(cfg.defences, cfg.protocol, ex.k);
    describe_run(ex);
    const int64_t need = proto.examples_needed(cfg), n_pool = ex.pool.images.size(0);
    if (need > n_pool)
        throw std::runtime_error("--ds " + std::to_string(cfg.ds) + " is too large: " + proto.who_needs(cfg) +
                                 std::to_string(need) + " examples, the dataset has " + std::to_string(n_pool));
}

// Every check before anything is written: a refused run leaves no directory
// or attack_config.json behind to block the corrected command.
void claim_run_dir(Experiment& ex) {
    const std::string cfg_path = ex.dir + "/attack_config.json";
    if (regular_file_exists(cfg_path) && !ex.cfg.force) {
        std::ifstream f(cfg_path);
        json old = json::parse(f, nullptr, /*allow_exceptions=*/false);
        if (old.is_discarded()) throw std::runtime_error(cfg_path + ": not valid JSON (a corrupt run directory?)");
        if (old.is_object()) old.erase("environment");
        if (old != ex.resolved) throw std::runtime_error(another_configuration(ex.dir, old, ex.resolved));
    }
    create_output_dir(ex.dir);
    json written = ex.resolved;
    written["environment"] = ex.environment;
    write_text_atomic(cfg_path, written.dump(2) + "\n");
}

// --- Stage 2: plan the splits and the models (written before any training) ------

void write_plan(const Experiment& ex, const Plan& plan) {
    if (plan.lira_n > 0) {
        std::ostringstream mcsv;
        for (size_t m = 0; m < plan.models.size(); m++) {
            for (int64_t j = 0; j < plan.lira_n; j++)
                mcsv << (j ? "," : "") << plan.membership[size_t(int64_t(m) * plan.lira_n + j)];
            mcsv << "\n";
        }
        write_text_atomic(ex.dir + "/membership.csv", mcsv.str());
    }
    json sj = {{"pool", "dataset train part (indices 0.." + std::to_string(ex.pool.n_train_part - 1) +
                            ") then test part"},
               {"models", json::array()}};
    for (const auto& s : plan.models)
        sj["models"].push_back({{"role", s.role}, {"members", s.members}, {"nonmembers", s.nonmembers}});
    if (plan.lira_n > 0) sj["lira_pool"] = lira_pool(plan);
    if (!plan.population.empty()) sj["rmia_population"] = plan.population;
    for (size_t t = 0; t < plan.fresh.size(); t++) sj["null_members"]["target" + std::to_string(t)] = plan.fresh[t];
    for (size_t m = 0; m < plan.lira_null.size(); m++) {
        std::vector<int64_t> fake_members;
        for (size_t i = 0; i < plan.lira_null[m].first.size(); i++)
            if (plan.lira_null[m].second[i]) fake_members.push_back(plan.order[size_t(plan.lira_null[m].first[i])]);
        sj["null_members"]["model" + std::to_string(m)] = fake_members;
    }
    write_text_atomic(ex.dir + "/splits.json", sj.dump() + "\n");
}

// The line a null-member run prints first (docs/ATTACKS.md).
std::string null_members_line(const Protocol& proto) {
    return std::string("null-members sanity run (not a real experiment): ") + proto.null_members_what +
           ", so every attack should score AUC about 0.5 (within noise); a clearly higher AUC means a leak in the "
           "pipeline";
}

// The run's first lines on stdout (docs/ATTACKS.md).
void log_plan(Experiment& ex, const Protocol& proto, const Plan& plan) {
    const AttackRunConfig& cfg = ex.cfg;
    ex.n_steps = int(plan.models.size() * cfg.models.size());
    ex.log("%s: %s protocol on %s, models %s, ds %lld, %d %s%s -> %s\n", "attack", cfg.protocol.c_str(),
           cfg.dataset.c_str(), json(cfg.models).dump().c_str(), (long long)cfg.ds, cfg.shadows, proto.references,
           proto.separate_targets ? (", " + std::to_string(cfg.targets) + " target(s)").c_str() : "",
           ex.dir.c_str());
    if (cfg.null_members) ex.log("%s\n", null_members_line(proto).c_str());
    if (!plan.fallback_line.empty()) ex.log("%s", plan.fallback_line.c_str());
}

// Stages 1 and 2: the run resolved, its directory claimed, the plan made,
// written and logged.
Plan resolve_and_plan(Experiment& ex, const Protocol& proto) {
    resolve_run(ex, proto);
    claim_run_dir(ex);
    Plan plan = proto.plan(ex);
    write_plan(ex, plan);
    log_plan(ex, proto, plan);
    return plan;
}

// --- Stage 3: train the models (one plan entry = one job) ------------------------

// A model's checkpoint holds its "final" record and its packed .bin exists
// (each is written to a temporary and renamed, the .bin after the .pt).
bool model_complete(const std::string& base) {
    return regular_file_exists(base + ".pt") && regular_file_exists(base + ".bin") &&
           read_checkpoint_meta(base + ".pt").contains("final");
}

// The models whose exposure is measured after every epoch: the targets
// (shokri: every target; lira: model 0 only, to keep the cost down); none
// in a null-members run (the "members" attacked there are not the ones the
// model trained on).
bool tracks_epochs(const AttackRunConfig& cfg, const std::string& role) {
    return !cfg.null_members && (role.rfind("target", 0) == 0 || role == "model0");
}

// TrainJob::per_epoch for a tracked model: {"vulnerability":
// loss_attack_exposure(...)} of its logits on its members and non-members.
std::function<json(int, const torch::Tensor&, const torch::Tensor&)> exposure_hook(std::vector<int> member_labels,
                                                                                   std::vector<int> nonmember_labels,
                                                                                   int k) {
    return [member_labels, nonmember_labels, k](int, const torch::Tensor& members, const torch::Tensor& nonmembers) {
        auto rows = [](const torch::Tensor& t) {
            const torch::Tensor c = t.to(torch::kFloat32).contiguous();
            return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
        };
        return json{{"vulnerability",
                     loss_attack_exposure(rows(members), member_labels, rows(nonmembers), nonmember_labels, k)}};
    };
}

// Trains (or finds finished) the model of one plan entry and exports it for
// the engines: models/<kind>/<role>.pt and .bin, under the model's lock
// (models/<kind>/<role>.lock: a job and a run, or two jobs, never write one
// model at once). With skip_complete (a job), a complete model is left as
// it is (nothing written) and *skipped = true.
TrainedModel train_model(Experiment& ex, const std::string& kind, const ModelSplit& s, bool* skipped = nullptr) {
    const std::string base = ex.dir + "/models/" + kind + "/" + s.role;
    fs::create_directories(ex.dir + "/models/" + kind);
    ModelLock lock(base + ".lock");
    if (skipped && (*skipped = model_complete(base))) return {};
    // What a killed writer of this model left; nobody else writes it now.
    remove_stale_temporaries(base + ".pt");
    remove_stale_temporaries(base + ".bin");
    TrainJob job;
    job.spec = ex.specs.at(kind);
    job.train = resolve_training(ex.config_json, job.spec.preset);
    if (ex.cfg.epochs > 0) job.train.epochs = ex.cfg.epochs;
    job.train.seed = s.seed;
    job.input = ex.pool.input;
    job.dataset = ex.cfg.dataset;
    job.checkpoint = base + ".pt";
    job.verbose = false;
    job.force = ex.cfg.force;
    // The defences (attack/defence.h); early stopping watches the model's
    // non-members (the defender's held-out set: splitting the members
    // would call examples the model never trained on members).
    if (defended(ex.cfg.defences, s.role)) {
        apply_training_defences(ex.cfg.defences, ex.cfg.dataset, int64_t(s.members.size()), job);
        if (job.early_stopping > 0)
            job.val_x = rows_of(ex.pool.images, s.nonmembers), job.val_y = rows_of(ex.pool.labels, s.nonmembers);
    }
    job.extra_meta = {{"attack_role", s.role},
                      {"members_fnv1a", std::to_string(fnv1a(s.members))},
                      {"nonmembers_fnv1a", std::to_string(fnv1a(s.nonmembers))}};
    if (tracks_epochs(ex.cfg, s.role))
        job.per_epoch = exposure_hook(labels_of(ex.pool, s.members), labels_of(ex.pool, s.nonmembers), ex.k);

    ex.step++;
    ex.log("[%d/%d] %s %s: ", ex.step, ex.n_steps, kind.c_str(), s.role.c_str());
    bool finished = false;
    int resumed_after = 0;  // > 0: an interrupted training's epochs already done (resumed, not started over)
    if (fs::exists(job.checkpoint)) {
        const json old = read_checkpoint_meta(job.checkpoint);
        finished = old.contains("final");
        if (!finished) resumed_after = old.value("epochs_done", 0);
    }
    auto t0 = Clock::now();
    const int threads_before = torch::get_num_threads();
    if (!finished && ex.train_threads > 0) torch::set_num_threads(ex.train_threads);
    json meta = train_classifier(job, rows_of(ex.pool.images, s.members), rows_of(ex.pool.labels, s.members),
                                 rows_of(ex.pool.images, s.nonmembers), rows_of(ex.pool.labels, s.nonmembers));
    torch::set_num_threads(threads_before);
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    ex.seconds_training += secs;
    (finished ? g_stats.cached : g_stats.trained)++;
    const auto t_export = Clock::now();
    export_checkpoint(job.checkpoint, base + ".bin");
    ex.seconds_engine += std::chrono::duration<double>(Clock::now() - t_export).count();
    TrainedModel r;
    r.train_acc = meta.at("final").at("train_acc").get<double>();
    r.test_acc = meta.at("final").at("test_acc").get<double>();
    r.history = meta.value("history", json::array());
    const std::string how = finished ? "cached"
                            : resumed_after > 0 ? "resumed after epoch " + std::to_string(resumed_after) + ", trained"
                                                : "trained";
    ex.log("%s in %.1f s, train acc %.4f, test acc %.4f\n", how.c_str(), secs, r.train_acc, r.test_acc);
    return r;
}

std::vector<TrainedModel> train_models(Experiment& ex, const std::string& kind, const Plan& plan) {
    std::vector<TrainedModel> out;
    for (const ModelSplit& s : plan.models) out.push_back(train_model(ex, kind, s));
    return out;
}

// --- Stage 4: engine outputs ----------------------------------------------------------

// One model's engine logits on its members and non-members, also written
// to outputs/<kind>/<role>.npy (members then non-members) for other tools.
ModelResult model_outputs(Experiment& ex, const std::string& kind, const ModelSplit& s, const TrainedModel& tm) {
    fs::create_directories(ex.dir + "/outputs/" + kind);
    ModelResult r;
    r.train_acc = tm.train_acc, r.test_acc = tm.test_acc;
    r.member_logits = released_logits(ex, kind, s.role, rows_of(ex.pool.images, s.members));
    r.nonmember_logits = released_logits(ex, kind, s.role, rows_of(ex.pool.images, s.nonmembers));
    std::vector<float> all(r.member_logits);
    all.insert(all.end(), r.nonmember_logits.begin(), r.nonmember_logits.end());
    char err[512];
    if (io_write_npy_f32((ex.dir + "/outputs/" + kind + "/" + s.role + ".npy").c_str(), all.data(),
                         int64_t(all.size()) / ex.k, ex.k, err, sizeof err) != 0)
        throw std::runtime_error(err);
    return r;
}

KindOutputs engine_outputs(Experiment& ex, const Protocol& proto, const std::string& kind, const Plan& plan,
                           const std::vector<TrainedModel>& trained) {
    const auto t0 = Clock::now();
    KindOutputs out;
    for (size_t i = 0; i < plan.models.size(); i++) out.models.push_back(model_outputs(ex, kind, plan.models[i], trained[i]));
    proto.outputs(ex, kind, plan, out);
    ex.seconds_engine += std::chrono::duration<double>(Clock::now() - t0).count();
    return out;
}

// --- Stage 5: attacks, every one on every target --------------------------------------

json attack_targets(Experiment& ex, const Protocol& proto, const std::string& kind, const Plan& plan,
                    const KindOutputs& out) {
    const auto t0 = Clock::now();
    json per_target = json::array();
    for (const TargetCase& t : proto.targets(ex, plan, out)) {
        const std::vector<AttackScores> attacks = proto.attacks(ex, plan, out, t);
        std::vector<NamedRoc> strongest;
        json m = evaluate_and_write(ex.dir, kind, t.role, t.pool_index, t.data, attacks,
                                    t.index == 0 ? &strongest : nullptr);
        if (t.index == 0) ex.strongest_rocs.push_back({kind, std::move(strongest)});
        per_target.push_back({{"role", t.role}, {"train_acc", t.train_acc}, {"test_acc", t.test_acc}, {"attacks", m}});
    }
    ex.seconds_attacks += std::chrono::duration<double>(Clock::now() - t0).count();
    return per_target;
}

// --- Stage 6: metrics and report --------------------------------------------------------

// A tracked model's history as rows {"epoch", "train_acc", "test_acc",
// "gap", "loss_auc", "loss_tpr_at_1pct_fpr"}; null when an epoch lacks
// them (a model trained before bin/attack recorded them) or there is none.
json exposure_rows(const json& history) {
    json rows = json::array();
    for (const json& h : history) {
        if (!h.contains("vulnerability")) return nullptr;
        json row = h["vulnerability"];
        row["epoch"] = h.at("epoch");
        rows.push_back(row);
    }
    return rows.empty() ? json(nullptr) : rows;
}

// The vulnerability per epoch of one kind: each tracked target's rows in
// its targets[i]["per_epoch"], their mean per epoch in "per_epoch" (with
// "targets": how many reached that epoch), or "per_epoch_not_recorded".
void add_per_epoch(const Experiment& ex, const Plan& plan, const std::vector<TrainedModel>& trained, json& kind) {
    std::map<size_t, json> per_target;  // plan index = target index (both protocols)
    for (size_t i = 0; i < plan.models.size(); i++)
        if (tracks_epochs(ex.cfg, plan.models[i].role)) per_target[i] = exposure_rows(trained[i].history);
    std::map<int, std::map<std::string, std::vector<double>>> by_epoch;
    for (const auto& [i, rows] : per_target)
        if (rows.is_null()) {
            kind["per_epoch_not_recorded"] = "not recorded (model trained before this was added)";
            return;
        }
    if (per_target.empty()) {
        kind["per_epoch_not_recorded"] = "not recorded (a null-members run: the attacked \"members\" are not the "
                                         "ones the targets trained on)";
        return;
    }
    for (const auto& [i, rows] : per_target) {
        kind["targets"][i]["per_epoch"] = rows;
        for (const json& row : rows)
            for (auto& [key, v] : row.items())
                if (key != "epoch") by_epoch[row["epoch"].get<int>()][key].push_back(v.get<double>());
    }
    kind["per_epoch"] = json::array();
    for (const auto& [e, keys] : by_epoch) {
        json row = {{"epoch", e}, {"targets", keys.begin()->second.size()}};
        for (const auto& [key, v] : keys) row[key] = mean_std(v).mean;
        kind["per_epoch"].push_back(row);
    }
}

void write_results(Experiment& ex, json& result, Clock::time_point t_run) {
    result["trained_now"] = g_stats.trained;
    result["cached"] = g_stats.cached;
    const double total = std::chrono::duration<double>(Clock::now() - t_run).count();
    result["seconds"] = {{"training", ex.seconds_training}, {"export_and_engine_logits", ex.seconds_engine},
                         {"attacks", ex.seconds_attacks}, {"total", total}};
    ex.log("time: training %.0f s (%d models trained, %d cached), export + engine logits %.0f s, attacks %.0f s, "
           "total %.0f s\n",
           ex.seconds_training, g_stats.trained, g_stats.cached, ex.seconds_engine, ex.seconds_attacks, total);
    write_text_atomic(ex.dir + "/metrics.json", result.dump(2) + "\n");
    const std::string md = markdown_report(result);
    fs::create_directories(ex.dir + "/plots");
    write_text_atomic(ex.dir + "/plots/privacy_utility.svg",
                      svg_privacy_utility(privacy_utility_points(result), "Privacy and utility"));
    if (md.find("](plots/vulnerability_per_epoch.svg)") != std::string::npos)
        write_text_atomic(ex.dir + "/plots/vulnerability_per_epoch.svg",
                          svg_vulnerability_per_epoch(result, "Vulnerability per epoch (targets)"));
    if (ex.strongest_rocs.size() >= 2)  // report.md links it then
        write_text_atomic(ex.dir + "/plots/roc_loglog_both.svg",
                          svg_roc_kinds(ex.strongest_rocs, "First targets: strongest attacks, ROC, log-log"));
    write_text_atomic(ex.dir + "/report.md", md);
    // The same report for a browser, plots inline (attack/report_html.h).
    const std::string title = "Membership inference: " + result["config"]["dataset"].get<std::string>() + ", " +
                              result["config"]["protocol"].get<std::string>() + " protocol";
    write_text_atomic(ex.dir + "/report.html", html_report(md, title, plot_reader_in(ex.dir)));
}

// --- The run as jobs (bin/attack --plan, --job; attack/jobs.h) --------------------

json read_json_file(const std::string& path, const std::string& what_if_bad) {
    std::ifstream f(path);
    json j = json::parse(f, nullptr, /*allow_exceptions=*/false);
    if (!f.is_open() || j.is_discarded() || !j.is_object()) throw std::runtime_error(path + ": " + what_if_bad);
    return j;
}

// A run with a plan trains with the plan's thread count, said when it
// differs from --threads (the same bits as the plan's jobs).
void pin_plan_threads(Experiment& ex) {
    const int t = read_attack_plan(ex.dir).at("threads").get<int>();
    if (t != ex.cfg.threads)
        ex.log("note: models are trained with the plan's %d thread(s) (%s/plan.json), not --threads %d, so they "
               "are the same bits as its jobs'\n",
               t, ex.dir.c_str(), ex.cfg.threads);
    ex.train_threads = t;
}

// jobs.json, jobs.txt and plan.json for the planned run in `dir` (absolute).
json write_jobs(const Experiment& ex, const Plan& plan, const AttackPlanRecord& rec, const std::string& dir) {
    std::vector<std::string> attack = {rec.program};
    attack.insert(attack.end(), rec.args.begin(), rec.args.end());
    attack.insert(attack.end(), {"--run-dir", dir});
    json jobs = {{"plan_version", kAttackPlanVersion},
                 {"run_dir", dir},
                 {"program", rec.program},
                 {"threads", ex.cfg.threads},
                 {"attack_command", "cd " + shell_word(rec.cwd) + " && " + shell_command(attack)},
                 {"jobs", json::array()}};
    std::string txt;
    for (const std::string& kind : ex.cfg.models)
        for (const ModelSplit& s : plan.models) {
            const int64_t id = int64_t(jobs["jobs"].size());
            const std::string command =
                shell_command({rec.program, "--run-dir", dir, "--job", std::to_string(id)});
            jobs["jobs"].push_back({{"id", id},
                                    {"kind", kind},
                                    {"role", s.role},
                                    {"seed", s.seed},
                                    {"checkpoint", dir + "/models/" + kind + "/" + s.role + ".pt"},
                                    {"packed", dir + "/models/" + kind + "/" + s.role + ".bin"},
                                    {"members_fnv1a", std::to_string(fnv1a(s.members))},
                                    {"nonmembers_fnv1a", std::to_string(fnv1a(s.nonmembers))},
                                    {"command", command}});
            txt += command + "\n";
        }
    write_text_atomic(dir + "/jobs.json", jobs.dump(2) + "\n");
    write_text_atomic(dir + "/jobs.txt", txt);
    write_plan_file(dir, kAttackPlanVersion, rec, ex.cfg.threads, jobs["jobs"].size(),
                    {{"kinds", ex.cfg.models}, {"models_per_kind", plan.models.size()}});
    return jobs;
}

}  // namespace

json read_attack_plan(const std::string& dir) { return read_plan_file(dir, "bin/attack", kAttackPlanVersion); }

json plan_attack(const AttackRunConfig& cfg_in, const AttackPlanRecord& rec, const std::vector<std::string>& emit,
                 int slots) {
    g_stats = {};
    Experiment ex;
    ex.cfg = cfg_in;
    const Protocol& proto = check_config(ex.cfg);
    // A plan again over one made with another thread count would mix the
    // models' bits (those already trained keep the old count's).
    if (std::ifstream f(ex.cfg.run_dir + "/plan.json"); f && !ex.cfg.force) {
        const json old = json::parse(f, nullptr, /*allow_exceptions=*/false);
        if (old.is_object() && old.contains("threads") && old["threads"] != ex.cfg.threads)
            throw std::runtime_error(ex.cfg.run_dir + "/plan.json: planned with --threads " + old["threads"].dump() +
                                     ", not " + std::to_string(ex.cfg.threads) +
                                     " (its trained models would not be the same bits); give --threads " +
                                     old["threads"].dump() + ", another --run-dir, or --force");
    }
    const Plan plan = resolve_and_plan(ex, proto);
    const std::string dir = fs::canonical(ex.dir).string();
    const json jobs = write_jobs(ex, plan, rec, dir);
    ex.log("plan: %zu training jobs (%zu kind(s) x %zu models, %d thread(s) each) -> %s/jobs.txt\n",
           jobs["jobs"].size(), ex.cfg.models.size(), plan.models.size(), ex.cfg.threads, dir.c_str());
    for (const std::string& path : remove_unemitted_scheduler_files(dir, jobs, emit))
        ex.log("removed (not emitted this time): %s\n", path.c_str());
    for (const std::string& e : emit)
        for (const std::string& path : emit_scheduler_files(dir, jobs, e, slots, ex.cfg.threads))
            ex.log("%s: %s\n", e.c_str(), path.c_str());
    ex.log("then the attack: %s\n", jobs["attack_command"].get<std::string>().c_str());
    return jobs;
}

bool run_attack_job(const AttackRunConfig& cfg_in, int64_t id) {
    g_stats = {};
    Experiment ex;
    ex.cfg = cfg_in;
    const std::string dir = ex.cfg.run_dir;
    read_attack_plan(dir);
    const json jobs = read_json_file(dir + "/jobs.json", "missing or not valid JSON (write the plan again with "
                                                         "bin/attack --plan)");
    const int64_t n = int64_t(jobs.at("jobs").size());
    if (id < 0 || id >= n)
        throw std::runtime_error("--job " + std::to_string(id) + ": the plan in " + dir + " has jobs 0 to " +
                                 std::to_string(n - 1));
    {
        // A complete model needs no data: say so before loading any.
        const std::string kind = jobs["jobs"][size_t(id)].value("kind", ""), role = jobs["jobs"][size_t(id)].value("role", "");
        const std::string base = dir + "/models/" + kind + "/" + role;
        if (regular_file_exists(base + ".lock")) {
            ModelLock lock(base + ".lock");
            if (model_complete(base)) {
                ex.log("job %lld: %s %s: already complete\n", (long long)id, kind.c_str(), role.c_str());
                return false;
            }
        }
    }
    const Protocol& proto = check_config(ex.cfg);
    resolve_run(ex, proto);
    const Plan plan = proto.plan(ex);
    const int64_t m = int64_t(plan.models.size());
    const std::string& kind = ex.cfg.models[size_t(id / m)];
    const ModelSplit& s = plan.models[size_t(id % m)];
    const json& e = jobs["jobs"][size_t(id)];
    // The model this bin/attack derives from the plan's arguments must be the
    // one the plan listed (another version could split differently).
    if (n != m * int64_t(ex.cfg.models.size()) || e.value("kind", "") != kind || e.value("role", "") != s.role ||
        e.value("members_fnv1a", "") != std::to_string(fnv1a(s.members)) ||
        e.value("nonmembers_fnv1a", "") != std::to_string(fnv1a(s.nonmembers)))
        throw std::runtime_error(dir + "/jobs.json: job " + std::to_string(id) +
                                 " is not the model this bin/attack plans from the run's arguments (a plan from "
                                 "another version?); write the plan again with this bin/attack --plan");
    ex.n_steps = int(n);
    ex.step = int(id);
    bool skipped = false;
    train_model(ex, kind, s, &skipped);
    if (skipped) ex.log("job %lld: %s %s: already complete\n", (long long)id, kind.c_str(), s.role.c_str());
    return !skipped;
}

const AttackRunStats& last_attack_run_stats() { return g_stats; }

void write_privacy_utility_plot(const std::string& output, const std::vector<std::string>& run_dirs) {
    std::vector<UtilityPoint> points;
    for (const std::string& d : run_dirs) {
        const std::string path = d + "/metrics.json";
        std::ifstream f(path);
        const json m = json::parse(f, nullptr, /*allow_exceptions=*/false);
        if (!f.is_open() || m.is_discarded() || !m.is_object() || !m.contains("models") || !m.contains("config"))
            throw std::runtime_error(path + ": not the metrics.json of a finished bin/attack run");
        for (UtilityPoint& p : privacy_utility_points(m)) points.push_back(std::move(p));
    }
    write_text_atomic(output, svg_privacy_utility(points, "Privacy and utility"));
}

std::string default_run_dir(const AttackRunConfig& c) {
    const Protocol* p = find_protocol(c.protocol);
    std::string d = "runs/" + c.dataset + "-" + c.protocol + "-ds" + std::to_string(c.ds) + "-s" +
                    std::to_string(c.shadows) + (p && p->separate_targets ? "-t" + std::to_string(c.targets) : "") +
                    "-seed" + std::to_string(c.seed);
    if (c.epochs > 0) d += "-e" + std::to_string(c.epochs);
    if (c.null_members) d += "-null";
    if (c.defences.any()) d += "-" + defence_slug(c.defences);
    return d;
}

// The stages, in order; each is a function above.
json run_attack(const AttackRunConfig& cfg_in) {
    const auto t_run = Clock::now();
    g_stats = {};
    InterruptGuard interrupt_guard;
    Experiment ex;
    ex.cfg = cfg_in;
    const Protocol& proto = check_config(ex.cfg);
    const Plan plan = resolve_and_plan(ex, proto);
    if (regular_file_exists(ex.dir + "/plan.json")) pin_plan_threads(ex);

    json result = {{"config", ex.resolved}, {"environment", ex.environment}, {"models", json::object()}};
    if (!plan.fallback_note.is_null()) result["per_class_fallback"] = plan.fallback_note;
    for (const auto& kind : ex.cfg.models) {
        const std::vector<TrainedModel> trained = train_models(ex, kind, plan);
        const KindOutputs out = engine_outputs(ex, proto, kind, plan, trained);
        const json per_target = attack_targets(ex, proto, kind, plan, out);
        result["models"][kind] = {{"preset", ex.specs.at(kind).preset},
                                  {"targets", per_target},
                                  {"summary", summarize_targets(per_target)}};
        add_per_epoch(ex, plan, trained, result["models"][kind]);
    }
    write_results(ex, result, t_run);
    return result;
}

}  // namespace mmia
