// run.cpp: the experiment pipeline behind bin/attack (see run.h).
//
// Layout of a run directory:
//   attack_config.json          the resolved configuration (a re-run must match it)
//   splits.json                 pool order and every model's member / non-member indices
//   membership.csv              lira: M rows of 0/1 over the pool
//   models/<kind>/<role>.pt     checkpoints (cached: a re-run skips finished ones)
//   models/<kind>/<role>.bin    the same models, packed for the engines
//   outputs/<kind>/<role>.npy   engine logits on the examples the attacks read
//   scores/<kind>_<target>.csv  per-example scores of every attack
//   roc/<kind>_<target>_<attack>.csv
//   metrics.json, report.md, plots/*.svg
#include "attack/run.h"

#include <omp.h>
#include <torch/torch.h>
#include <torch/version.h>

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

#include "attack/classifiers.h"
#include "attack/features.h"
#include "attack/lira.h"
#include "attack/metric_attacks.h"
#include "attack/metrics.h"
#include "attack/report.h"
#include "common/command_line.h"
#include "common/config.h"
#include "common/data.h"
#include "engine/cnn.h"
#include "engine/io.h"
#include "engine/mamba.h"
#include "export/model_export.h"
#include "train/checkpoint_meta.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace mmia {

namespace {

AttackRunStats g_stats;

using Clock = std::chrono::steady_clock;

void write_file_atomic(const std::string& path, const std::string& text) {
    char err[512];
    if (io_write_file_atomic(path.c_str(), text.data(), text.size(), err, sizeof err) != 0)
        throw std::runtime_error(path + ": " + err);
}

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
struct ModelSplit {
    std::string role;              // "target0", "shadow3", "model5"
    std::vector<int64_t> members;  // pool indices
    std::vector<int64_t> nonmembers;
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

struct Experiment {
    AttackRunConfig cfg;
    json config_json;
    Dataset data;
    Pool pool;
    std::string dir;
    int step = 0, n_steps = 0;
    // Where the run's time goes (metrics.json "seconds", and the last log line).
    double seconds_training = 0, seconds_engine = 0, seconds_attacks = 0;

    void log(const char* fmt, ...) __attribute__((format(printf, 2, 3))) {
        if (!cfg.verbose) return;
        va_list ap;
        va_start(ap, fmt);
        std::vfprintf(stdout, fmt, ap);
        va_end(ap);
        std::fflush(stdout);
    }

    ModelSpec spec_for(const std::string& kind) const {
        std::string preset = kind == "mamba" ? cfg.mamba_preset : cfg.cnn_preset;
        if (preset.empty()) preset = default_preset(kind, cfg.dataset);
        ModelSpec spec = resolve_preset(config_json, kind, preset);
        if (spec.model != kind)
            throw std::runtime_error("preset '" + spec.preset + "' is a " + spec.model + " preset, not " + kind);
        return spec;
    }

    // Trains (or finds cached) one model, exports it, and runs the engine on
    // its members and non-members.
    ModelResult run_model(const std::string& kind, const ModelSpec& spec, const ModelSplit& s, uint64_t seed) {
        const std::string base = dir + "/models/" + kind + "/" + s.role;
        fs::create_directories(dir + "/models/" + kind);
        fs::create_directories(dir + "/outputs/" + kind);
        TrainJob job;
        job.spec = spec;
        job.train = resolve_training(config_json, spec.preset);
        if (cfg.epochs > 0) job.train.epochs = cfg.epochs;
        job.train.seed = seed;
        job.input = pool.input;
        job.dataset = cfg.dataset;
        job.checkpoint = base + ".pt";
        job.verbose = false;
        job.force = cfg.force;
        job.extra_meta = {{"attack_role", s.role},
                          {"members_fnv1a", std::to_string(fnv1a(s.members))},
                          {"nonmembers_fnv1a", std::to_string(fnv1a(s.nonmembers))}};

        step++;
        log("[%d/%d] %s %s: ", step, n_steps, kind.c_str(), s.role.c_str());
        bool finished = false;
        if (fs::exists(job.checkpoint)) finished = read_checkpoint_meta(job.checkpoint).contains("final");
        auto t0 = Clock::now();
        auto xin = rows_of(pool.images, s.members), xout = rows_of(pool.images, s.nonmembers);
        json meta = train_classifier(job, xin, rows_of(pool.labels, s.members), xout,
                                     rows_of(pool.labels, s.nonmembers));
        const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
        seconds_training += secs;
        (finished ? g_stats.cached : g_stats.trained)++;
        const auto t_engine = Clock::now();

        ModelResult r;
        r.train_acc = meta.at("final").at("train_acc").get<double>();
        r.test_acc = meta.at("final").at("test_acc").get<double>();
        export_checkpoint(job.checkpoint, base + ".bin");
        r.member_logits = engine_logits(kind, base + ".bin", xin);
        r.nonmember_logits = engine_logits(kind, base + ".bin", xout);

        // The logits the attacks read, for other tools: members then non-members.
        std::vector<float> all(r.member_logits);
        all.insert(all.end(), r.nonmember_logits.begin(), r.nonmember_logits.end());
        char err[512];
        const int k = pool.input.n_classes;
        if (io_write_npy_f32((dir + "/outputs/" + kind + "/" + s.role + ".npy").c_str(), all.data(),
                             int64_t(all.size() / k), k, err, sizeof err) != 0)
            throw std::runtime_error(err);
        seconds_engine += std::chrono::duration<double>(Clock::now() - t_engine).count();
        log("%s in %.1f s, train acc %.4f, test acc %.4f\n", finished ? "cached" : "trained", secs, r.train_acc,
            r.test_acc);
        return r;
    }
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
                                            "lira_online_fixed_var"};

// Writes scores/<kind>_<target>.csv and roc/<kind>_<target>_<attack>.csv,
// and with_plots, plots/<kind>_*.svg; returns {attack name: metrics}.
json evaluate_and_write(const std::string& dir, const std::string& kind, const std::string& target,
                        const std::vector<int64_t>& pool_index, const Labelled& t,
                        const std::vector<AttackScores>& attacks, bool with_plots) {
    fs::create_directories(dir + "/scores");
    fs::create_directories(dir + "/roc");
    json metrics = json::object();
    std::ostringstream csv;
    csv << "pool_index,label,is_member";
    for (const auto& a : attacks) csv << "," << a.name;
    csv << "\n";
    for (size_t i = 0; i < t.labels.size(); i++) {
        csv << pool_index[i] << "," << t.labels[i] << "," << t.is_member[i];
        for (const auto& a : attacks) csv << "," << csv_number(a.scores[i]);
        csv << "\n";
    }
    write_file_atomic(dir + "/scores/" + kind + "_" + target + ".csv", csv.str());
    std::vector<NamedRoc> curves;
    std::map<std::string, std::pair<std::vector<double>, std::vector<int>>> scored_sets;  // for the histograms
    for (const auto& a : attacks) {
        // The one rule for unscored examples (NaN): left out of every metric,
        // the ROC file and the histogram; metrics.json counts them.
        std::vector<int64_t> rows;
        for (size_t i = 0; i < a.scores.size(); i++)
            if (!std::isnan(a.scores[i])) rows.push_back(int64_t(i));
        const auto s = pick(a.scores, rows);
        const auto m = pick(t.is_member, rows);
        const int64_t members = std::count(m.begin(), m.end(), 1);
        json j;
        if (members == 0 || members == int64_t(m.size())) {
            // Nothing to rank: say so instead of failing the whole run.
            j["not_evaluated"] = "the scored examples hold " + std::string(members ? "no non-member" : "no member");
        } else {
            j = to_json(evaluate_attack(s, m, a.threshold));
            auto roc = roc_curve(s, m);
            write_roc_csv(dir + "/roc/" + kind + "_" + target + "_" + a.name + ".csv", roc);
            if (plot_attacks.count(a.name)) curves.push_back({a.name, std::move(roc)});
            scored_sets[a.name] = {s, m};
        }
        j["n_unscored"] = int64_t(a.scores.size() - rows.size());
        if (!a.unscored_reason.empty()) j["unscored_are"] = a.unscored_reason;
        if (!a.fallback_classes.empty()) j["fallback_classes"] = a.fallback_classes;
        metrics[a.name] = j;
    }
    if (with_plots) {
        fs::create_directories(dir + "/plots");
        const std::string title = kind + " " + target;
        write_file_atomic(dir + "/plots/" + kind + "_roc.svg", svg_roc(curves, false, title + ": ROC"));
        write_file_atomic(dir + "/plots/" + kind + "_roc_loglog.svg", svg_roc(curves, true, title + ": ROC, log-log"));
        for (const auto& [name, sm] : scored_sets)
            if (name == "loss" || name == "lira_online")
                write_file_atomic(dir + "/plots/" + kind + "_hist_" + name + ".svg",
                                  svg_histogram(score_histogram(sm.first, sm.second, 40),
                                                title + ": " + name + " score, members vs non-members (scored only)"));
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

}  // namespace

const AttackRunStats& last_attack_run_stats() { return g_stats; }

std::string default_run_dir(const AttackRunConfig& c) {
    std::string d = "runs/" + c.dataset + "-" + c.protocol + "-ds" + std::to_string(c.ds) + "-s" +
                    std::to_string(c.shadows) + (c.protocol == "shokri" ? "-t" + std::to_string(c.targets) : "") +
                    "-seed" + std::to_string(c.seed);
    if (c.epochs > 0) d += "-e" + std::to_string(c.epochs);
    if (c.null_members) d += "-null";
    return d;
}

// The line a null-member run prints first (docs/ATTACKS.md), for either protocol.
static std::string null_members_line(const std::string& protocol) {
    return "null-members sanity run (not a real experiment): " +
           std::string(protocol == "lira" ? "each model is scored on examples it never trained on, a random half "
                                            "of them called members"
                                          : "each target's \"members\" are fresh examples it never trained on") +
           ", so every attack should score AUC about 0.5 (within noise); a clearly higher AUC means a leak in the "
           "pipeline";
}

json run_attack(const AttackRunConfig& cfg_in) {
    const auto t_run = Clock::now();
    g_stats = {};
    Experiment ex;
    ex.cfg = cfg_in;
    AttackRunConfig& cfg = ex.cfg;
    if (cfg.protocol != "shokri" && cfg.protocol != "lira")
        throw std::runtime_error("unknown protocol '" + cfg.protocol + "' (shokri, lira)");
    if (cfg.models.empty()) throw std::runtime_error("no model kind to attack");
    for (const auto& m : cfg.models)
        if (m != "mamba" && m != "cnn") throw std::runtime_error("unknown model '" + m + "' (mamba, cnn)");
    if (cfg.shadows < 1) throw std::runtime_error("--shadow must be at least 1");
    if (cfg.protocol == "lira" && cfg.shadows < 2)
        throw std::runtime_error("lira needs at least 2 reference models (--shadow 2)");
    if (cfg.targets < 1) throw std::runtime_error("--targets must be at least 1");
    if (cfg.ds < 10) throw std::runtime_error("--ds must be at least 10");
    if (cfg.run_dir.empty()) cfg.run_dir = default_run_dir(cfg);
    ex.dir = cfg.run_dir;
    // The run directory is all output (files replaced, --force reuses it):
    // no input may live in it.
    check_input_outside_dir(cfg.config_path, "--config", ex.dir, "--run-dir");
    if (!cfg.data_dir.empty()) check_input_outside_dir(cfg.data_dir, "--data-dir", ex.dir, "--run-dir");

    if (cfg.threads > 0) {
        torch::set_num_threads(cfg.threads);
        omp_set_num_threads(cfg.threads);
    }
    ex.config_json = load_config_file(cfg.config_path);
    std::map<std::string, ModelSpec> specs;
    for (const auto& kind : cfg.models) specs[kind] = ex.spec_for(kind);

    ex.data = cfg.data_dir.empty() ? load_dataset(cfg.dataset) : load_dataset(cfg.dataset, cfg.data_dir);
    for (const auto& [kind, spec] : specs)
        if (kind == "mamba")
            validate_mamba(spec.mamba, ex.data.train.channels, ex.data.train.height, ex.data.train.width);
    ex.pool = make_pool(ex.data);
    const int64_t n_pool = ex.pool.images.size(0), ds = cfg.ds;
    const int k = ex.pool.input.n_classes;

    // The resolved configuration: a run directory holds one experiment.
    json resolved = {{"protocol", cfg.protocol},  {"models", cfg.models}, {"dataset", cfg.dataset},
                     {"shadows", cfg.shadows},    {"ds", ds},             {"epochs", cfg.epochs},
                     {"seed", cfg.seed},          {"null_members", cfg.null_members}};
    if (cfg.protocol == "shokri") resolved["targets"] = cfg.targets;
    for (const auto& [kind, spec] : specs) {
        resolved["presets"][kind] = spec.preset;
        TrainConfig tc = resolve_training(ex.config_json, spec.preset);
        if (cfg.epochs > 0) tc.epochs = cfg.epochs;
        resolved["training"][kind] = to_json(tc);
        resolved["model_config"][kind] = kind == "mamba" ? to_json(spec.mamba) : to_json(spec.cnn);
    }
    // What else decides the bits of the results (LibTorch's and the engines'
    // reductions depend on the thread count): recorded, not compared, so a
    // run can be resumed elsewhere; the file says who wrote it last.
    const json environment = {
        {"threads", cfg.threads > 0 ? cfg.threads : torch::get_num_threads()},
        {"seed", cfg.seed},
        {"libtorch", std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                         std::to_string(TORCH_VERSION_PATCH)},
        {"nlohmann_json", std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." +
                              std::to_string(NLOHMANN_JSON_VERSION_MINOR) + "." +
                              std::to_string(NLOHMANN_JSON_VERSION_PATCH)},
        {"compiler", __VERSION__},
        {"openmp", _OPENMP}};
    // Every check before anything is written: a refused run leaves no
    // directory or attack_config.json behind to block the corrected command.
    if (cfg.protocol == "shokri") {
        const int64_t need = 2 * ds * cfg.targets + (cfg.null_members ? ds * cfg.targets : 0) + 2 * ds;
        if (need > n_pool)
            throw std::runtime_error("--ds " + std::to_string(ds) + " is too large: " + std::to_string(cfg.targets) +
                                     " target(s) and the shadows need " + std::to_string(need) +
                                     " examples, the dataset has " + std::to_string(n_pool));
    } else if (2 * ds > n_pool) {
        throw std::runtime_error("--ds " + std::to_string(ds) + " is too large: lira needs a pool of " +
                                 std::to_string(2 * ds) + " examples, the dataset has " + std::to_string(n_pool));
    }
    const std::string cfg_path = ex.dir + "/attack_config.json";
    if (regular_file_exists(cfg_path) && !cfg.force) {
        std::ifstream f(cfg_path);
        json old = json::parse(f, nullptr, /*allow_exceptions=*/false);
        if (old.is_discarded()) throw std::runtime_error(cfg_path + ": not valid JSON (a corrupt run directory?)");
        if (old.is_object()) old.erase("environment");
        if (old != resolved)
            throw std::runtime_error(ex.dir + " holds a run with another configuration; choose another --run-dir "
                                     "or pass --force");
    }
    create_output_dir(ex.dir);
    {
        json written = resolved;
        written["environment"] = environment;
        write_file_atomic(cfg_path, written.dump(2) + "\n");
    }

    // --- Splits ----------------------------------------------------------------
    const auto order = permutation(n_pool, cfg.seed);
    std::vector<ModelSplit> splits;       // every model of the protocol, same for every kind
    std::vector<std::vector<int64_t>> fresh;  // shokri null mode: per target, the fake "members"
    std::vector<int> membership;          // lira: M x n
    int64_t lira_n = 0;
    // lira null mode: per model, the pool rows it is evaluated on and their fake membership.
    std::vector<std::pair<std::vector<int64_t>, std::vector<int>>> lira_null;
    if (cfg.protocol == "shokri") {
        const int64_t reserved = 2 * ds * cfg.targets + (cfg.null_members ? ds * cfg.targets : 0);
        for (int t = 0; t < cfg.targets; t++) {
            ModelSplit s{"target" + std::to_string(t), {}, {}};
            s.members.assign(order.begin() + 2 * ds * t, order.begin() + 2 * ds * t + ds);
            s.nonmembers.assign(order.begin() + 2 * ds * t + ds, order.begin() + 2 * ds * (t + 1));
            splits.push_back(s);
            if (cfg.null_members) {
                const int64_t at = 2 * ds * cfg.targets + ds * t;
                fresh.emplace_back(order.begin() + at, order.begin() + at + ds);
            }
        }
        const std::vector<int64_t> rest(order.begin() + reserved, order.end());
        for (int s = 0; s < cfg.shadows; s++) {
            auto pick_order = permutation(int64_t(rest.size()), cfg.seed * 7919 + 1 + s);
            ModelSplit sp{"shadow" + std::to_string(s), {}, {}};
            for (int64_t i = 0; i < ds; i++) sp.members.push_back(rest[size_t(pick_order[i])]);
            for (int64_t i = ds; i < 2 * ds; i++) sp.nonmembers.push_back(rest[size_t(pick_order[i])]);
            splits.push_back(sp);
        }
    } else {
        lira_n = 2 * ds;
        const int M = cfg.shadows + 1;
        membership.assign(size_t(M * lira_n), 0);
        for (int m = 0; m < M; m++) {
            auto half = permutation(lira_n, cfg.seed * 104729 + 1 + m);
            ModelSplit sp{"model" + std::to_string(m), {}, {}};
            for (int64_t i = 0; i < lira_n; i++) {
                const int64_t j = half[size_t(i)];
                if (i < ds) {
                    membership[size_t(m * lira_n + j)] = 1;
                    sp.members.push_back(order[size_t(j)]);
                } else {
                    sp.nonmembers.push_back(order[size_t(j)]);
                }
            }
            splits.push_back(sp);
        }
        if (cfg.null_members)
            for (int m = 0; m < M; m++) {
                // Sanity run: model m is evaluated only on the ds examples it
                // never trained on; a seeded random half of them are its
                // "members". Every attack must then score AUC 0.5 within noise.
                std::vector<int64_t> out_rows;
                for (int64_t j = 0; j < lira_n; j++)
                    if (!membership[size_t(m * lira_n + j)]) out_rows.push_back(j);
                auto p = permutation(int64_t(out_rows.size()), cfg.seed * 15485863 + 1 + m);
                std::vector<int> fake(out_rows.size(), 0);
                for (size_t i = 0; i < out_rows.size() / 2; i++) fake[size_t(p[i])] = 1;
                lira_null.push_back({out_rows, fake});
            }
        std::ostringstream mcsv;
        for (int m = 0; m < M; m++) {
            for (int64_t j = 0; j < lira_n; j++) mcsv << (j ? "," : "") << membership[size_t(m * lira_n + j)];
            mcsv << "\n";
        }
        write_file_atomic(ex.dir + "/membership.csv", mcsv.str());
    }
    {
        json sj = {{"pool", "dataset train part (indices 0.." + std::to_string(ex.pool.n_train_part - 1) +
                                ") then test part"},
                   {"models", json::array()}};
        for (const auto& s : splits) sj["models"].push_back({{"role", s.role}, {"members", s.members},
                                                            {"nonmembers", s.nonmembers}});
        if (cfg.protocol == "lira") sj["lira_pool"] = std::vector<int64_t>(order.begin(), order.begin() + lira_n);
        for (size_t t = 0; t < fresh.size(); t++) sj["null_members"]["target" + std::to_string(t)] = fresh[t];
        for (size_t m = 0; m < lira_null.size(); m++) {
            std::vector<int64_t> fake_members;
            for (size_t i = 0; i < lira_null[m].first.size(); i++)
                if (lira_null[m].second[i]) fake_members.push_back(order[size_t(lira_null[m].first[i])]);
            sj["null_members"]["model" + std::to_string(m)] = fake_members;
        }
        write_file_atomic(ex.dir + "/splits.json", sj.dump() + "\n");
    }

    // --- Models ------------------------------------------------------------------
    ex.n_steps = int(splits.size() * cfg.models.size());
    ex.log("%s: %s protocol on %s, models %s, ds %lld, %d %s%s -> %s\n", "attack", cfg.protocol.c_str(),
           cfg.dataset.c_str(), json(cfg.models).dump().c_str(), (long long)ds, cfg.shadows,
           cfg.protocol == "shokri" ? "shadows" : "reference models",
           cfg.protocol == "shokri" ? (", " + std::to_string(cfg.targets) + " target(s)").c_str() : "",
           ex.dir.c_str());
    if (cfg.null_members)
        ex.log("%s\n", null_members_line(cfg.protocol).c_str());

    // Decided before any training: a class with no shadow members or no
    // shadow non-members cannot have its own per-class attack; those attacks
    // score it with their global version, said here and in metrics.json.
    json fallback_note = nullptr;
    if (cfg.protocol == "shokri") {
        std::vector<int64_t> cm(size_t(k), 0), cn(size_t(k), 0);
        for (int s = 0; s < cfg.shadows; s++) {
            const ModelSplit& sp = splits[size_t(cfg.targets + s)];
            for (int y : labels_of(ex.pool, sp.members)) cm[size_t(y)]++;
            for (int y : labels_of(ex.pool, sp.nonmembers)) cn[size_t(y)]++;
        }
        std::vector<int> thin;
        std::string list;
        for (int c = 0; c < k; c++)
            if (cm[size_t(c)] == 0 || cn[size_t(c)] == 0) {
                thin.push_back(c);
                list += (list.empty() ? "" : ", ") + std::to_string(c) + " (" + std::to_string(cm[size_t(c)]) +
                        " members, " + std::to_string(cn[size_t(c)]) + " non-members)";
            }
        if (!thin.empty()) {
            fallback_note = {{"classes", thin},
                             {"reason", "no shadow members or no shadow non-members of the class; use a larger "
                                        "--ds or more --shadow models"},
                             {"attacks", "shokri_mlp, shokri_logreg and every *_per_class attack score these "
                                         "classes with their global version"}};
            ex.log("note: --ds %lld with %d shadow(s) leaves class(es) %s; the per-class attacks score them with "
                   "the global attack (use a larger --ds or more --shadow models)\n",
                   (long long)ds, cfg.shadows, list.c_str());
        }
    }

    json result = {{"config", resolved}, {"environment", environment}, {"models", json::object()}};
    if (!fallback_note.is_null()) result["per_class_fallback"] = fallback_note;
    for (const auto& kind : cfg.models) {
        std::vector<ModelResult> res;
        for (size_t i = 0; i < splits.size(); i++)
            res.push_back(ex.run_model(kind, specs[kind], splits[i], cfg.seed + 1 + i));

        const auto t_attacks = Clock::now();
        json per_target = json::array();
        if (cfg.protocol == "shokri") {
            Labelled shadow;
            for (int s = 0; s < cfg.shadows; s++) {
                const ModelSplit& sp = splits[size_t(cfg.targets + s)];
                const ModelResult& r = res[size_t(cfg.targets + s)];
                shadow.add(r.member_logits, labels_of(ex.pool, sp.members), 1);
                shadow.add(r.nonmember_logits, labels_of(ex.pool, sp.nonmembers), 0);
            }
            for (int t = 0; t < cfg.targets; t++) {
                const ModelSplit& sp = splits[size_t(t)];
                const ModelResult& r = res[size_t(t)];
                Labelled target;
                std::vector<int64_t> idx;
                if (cfg.null_members) {
                    // Fresh examples the target never saw, labelled "member".
                    const std::string bin = ex.dir + "/models/" + kind + "/" + sp.role + ".bin";
                    target.add(engine_logits(kind, bin, rows_of(ex.pool.images, fresh[size_t(t)])),
                               labels_of(ex.pool, fresh[size_t(t)]), 1);
                    idx = fresh[size_t(t)];
                } else {
                    target.add(r.member_logits, labels_of(ex.pool, sp.members), 1);
                    idx = sp.members;
                }
                target.add(r.nonmember_logits, labels_of(ex.pool, sp.nonmembers), 0);
                idx.insert(idx.end(), sp.nonmembers.begin(), sp.nonmembers.end());
                auto attacks = shadow_attacks(shadow, target, k, cfg.seed + 17 * t);
                // Seed 000's own protocol (attack trained on the target's outputs), for
                // comparison with its published numbers: scored on its held-out 20%,
                // the rows it trained on have no score.
                auto held = train_on_target_outputs(seed000_feature_matrix(target.logits, k), target.is_member,
                                                    mlp_spec({64, 64}, cfg.seed + 17 * t), 0.2);
                AttackScores own{"seed000_on_target",
                                 std::vector<double>(target.is_member.size(), std::nan("")),
                                 0.0,
                                 {},
                                 "the 80% of the target's rows the attack trained on (scored: the held-out 20%)"};
                for (size_t i = 0; i < held.rows.size(); i++) own.scores[size_t(held.rows[i])] = held.score[i];
                attacks.push_back(std::move(own));
                json m = evaluate_and_write(ex.dir, kind, sp.role, idx, target, attacks, t == 0);
                per_target.push_back({{"role", sp.role}, {"train_acc", r.train_acc}, {"test_acc", r.test_acc},
                                      {"attacks", m}});
            }
        } else {
            const int M = cfg.shadows + 1;
            // phi and logits of every model on the whole lira pool, pool order.
            Matrix phi(M, lira_n);
            std::vector<std::vector<float>> logits(M);
            const std::vector<int64_t> lira_pool(order.begin(), order.begin() + lira_n);
            const std::vector<int> pool_labels = labels_of(ex.pool, lira_pool);
            for (int m = 0; m < M; m++) {
                const std::string bin = ex.dir + "/models/" + kind + "/" + splits[size_t(m)].role + ".bin";
                logits[size_t(m)] = engine_logits(kind, bin, rows_of(ex.pool.images, lira_pool));
                auto p = logit_scaled_confidences(logits[size_t(m)], k, pool_labels);
                for (int64_t j = 0; j < lira_n; j++) phi.at(m, j) = p[size_t(j)];
            }
            for (int t = 0; t < M; t++) {
                // The rows of the lira pool this target is evaluated on, and
                // their membership: all of them with the true membership, or
                // (null_members) only the examples the target never trained
                // on, a fixed random half of them labelled "member".
                std::vector<int64_t> rows;
                std::vector<int> is_member;
                if (cfg.null_members) {
                    rows = lira_null[size_t(t)].first;
                    is_member = lira_null[size_t(t)].second;
                } else {
                    for (int64_t j = 0; j < lira_n; j++) rows.push_back(j);
                    is_member.assign(membership.begin() + t * lira_n, membership.begin() + (t + 1) * lira_n);
                }
                Labelled target;
                for (int64_t j : rows)
                    target.logits.insert(target.logits.end(), logits[size_t(t)].begin() + j * k,
                                         logits[size_t(t)].begin() + (j + 1) * k);
                target.labels = pick(pool_labels, rows);
                target.is_member = is_member;
                // The other models, as shadows for the metric attacks' thresholds.
                Labelled refs;
                for (int m = 0; m < M; m++) {
                    if (m == t) continue;
                    refs.logits.insert(refs.logits.end(), logits[size_t(m)].begin(), logits[size_t(m)].end());
                    refs.labels.insert(refs.labels.end(), pool_labels.begin(), pool_labels.end());
                    refs.is_member.insert(refs.is_member.end(), membership.begin() + m * lira_n,
                                          membership.begin() + (m + 1) * lira_n);
                }
                std::vector<AttackScores> attacks;
                for (bool online : {true, false})
                    for (bool fixed : {false, true}) {
                        LiraScores ls = lira_scores(phi, membership, t, {online, fixed});
                        const std::string name = std::string("lira_") + (online ? "online" : "offline") +
                                                 (fixed ? "_fixed_var" : "");
                        // Unscorable examples (NaN: no IN or OUT reference) are
                        // left out of the metrics and counted (n_unscored).
                        // Decision thresholds, fixed in advance: online, a likelihood
                        // ratio of 1; offline, phi above the OUT references' mean.
                        attacks.push_back({name, pick(ls.score, rows), 0.0, {},
                                           online ? "examples with no IN or no OUT reference model"
                                                  : "examples with no OUT reference model"});
                    }
                for (MetricAttack m : all_metric_attacks()) {
                    auto s_scores = metric_scores(m, refs.logits, k, refs.labels);
                    attacks.push_back({metric_attack_name(m), metric_scores(m, target.logits, k, target.labels),
                                       select_threshold(s_scores, refs.is_member), {}, ""});
                }
                json mt = evaluate_and_write(ex.dir, kind, splits[size_t(t)].role, pick(lira_pool, rows), target,
                                             attacks, t == 0);
                per_target.push_back({{"role", splits[size_t(t)].role},
                                      {"train_acc", res[size_t(t)].train_acc},
                                      {"test_acc", res[size_t(t)].test_acc},
                                      {"attacks", mt}});
            }
        }
        ex.seconds_attacks += std::chrono::duration<double>(Clock::now() - t_attacks).count();
        result["models"][kind] = {{"preset", specs[kind].preset},
                                  {"targets", per_target},
                                  {"summary", summarize_targets(per_target)}};
    }
    result["trained_now"] = g_stats.trained;
    result["cached"] = g_stats.cached;
    const double total = std::chrono::duration<double>(Clock::now() - t_run).count();
    // "attacks" includes the engine runs the LiRA and null-member paths make there.
    result["seconds"] = {{"training", ex.seconds_training}, {"export_and_engine_logits", ex.seconds_engine},
                         {"attacks", ex.seconds_attacks}, {"total", total}};
    ex.log("time: training %.0f s (%d models trained, %d cached), export + engine logits %.0f s, attacks %.0f s, "
           "total %.0f s\n",
           ex.seconds_training, g_stats.trained, g_stats.cached, ex.seconds_engine, ex.seconds_attacks, total);
    write_file_atomic(ex.dir + "/metrics.json", result.dump(2) + "\n");
    write_file_atomic(ex.dir + "/report.md", markdown_report(result));
    return result;
}

}  // namespace mmia
