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
    std::vector<double> scores;  // one per target example
    double threshold = 0;        // the decision threshold (chosen without the target's membership)
};

// Shadow-trained attacks and the metric attacks, scored on the target.
std::vector<AttackScores> shadow_attacks(const Labelled& shadow, const Labelled& target, int k, uint64_t seed) {
    std::vector<AttackScores> out;
    Matrix sp = softmax_matrix(shadow.logits, k), tp = softmax_matrix(target.logits, k);
    {
        ShokriAttack a;
        a.fit(sp, shadow.labels, shadow.is_member, mlp_spec({64}, seed));
        out.push_back({"shokri_mlp", a.score(tp, target.labels), 0.0});
    }
    {
        ShokriAttack a;
        a.fit(sp, shadow.labels, shadow.is_member, logistic_regression_spec(seed));
        out.push_back({"shokri_logreg", a.score(tp, target.labels), 0.0});
    }
    {
        BinaryClassifier c;
        c.fit(seed000_feature_matrix(shadow.logits, k), shadow.is_member, mlp_spec({64, 64}, seed));
        out.push_back({"seed000_mlp", c.score(seed000_feature_matrix(target.logits, k)), 0.0});
    }
    for (MetricAttack m : all_metric_attacks()) {
        auto s_scores = metric_scores(m, shadow.logits, k, shadow.labels);
        auto t_scores = metric_scores(m, target.logits, k, target.labels);
        out.push_back({metric_attack_name(m), t_scores, select_threshold(s_scores, shadow.is_member)});
        if (m == MetricAttack::correctness) continue;  // one bit: per-class thresholds add nothing
        auto th = per_class_thresholds(s_scores, shadow.labels, shadow.is_member, k);
        out.push_back({metric_attack_name(m) + "_per_class", subtract_class_thresholds(t_scores, target.labels, th),
                       0.0});
    }
    return out;
}

std::string csv_number(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", v);
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
    for (const auto& a : attacks) {
        metrics[a.name] = to_json(evaluate_attack(a.scores, t.is_member, a.threshold));
        auto roc = roc_curve(a.scores, t.is_member);
        write_roc_csv(dir + "/roc/" + kind + "_" + target + "_" + a.name + ".csv", roc);
        if (plot_attacks.count(a.name)) curves.push_back({a.name, std::move(roc)});
    }
    if (with_plots) {
        fs::create_directories(dir + "/plots");
        const std::string title = kind + " " + target;
        write_file_atomic(dir + "/plots/" + kind + "_roc.svg", svg_roc(curves, false, title + ": ROC"));
        write_file_atomic(dir + "/plots/" + kind + "_roc_loglog.svg", svg_roc(curves, true, title + ": ROC, log-log"));
        for (const auto& a : attacks)
            if (a.name == "loss" || a.name == "lira_online")
                write_file_atomic(dir + "/plots/" + kind + "_hist_" + a.name + ".svg",
                                  svg_histogram(score_histogram(a.scores, t.is_member, 40),
                                                title + ": " + a.name + " score, members vs non-members"));
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
    fs::create_directories(ex.dir);
    const std::string cfg_path = ex.dir + "/attack_config.json";
    if (fs::exists(cfg_path) && !cfg.force) {
        std::ifstream f(cfg_path);
        json old = json::parse(f, nullptr, /*allow_exceptions=*/false);
        if (old.is_discarded()) throw std::runtime_error(cfg_path + ": not valid JSON (a corrupt run directory?)");
        if (old != resolved)
            throw std::runtime_error(ex.dir + " holds a run with another configuration; choose another --run-dir "
                                     "or pass --force");
    }
    write_file_atomic(cfg_path, resolved.dump(2) + "\n");

    // --- Splits ----------------------------------------------------------------
    const auto order = permutation(n_pool, cfg.seed);
    std::vector<ModelSplit> splits;       // every model of the protocol, same for every kind
    std::vector<std::vector<int64_t>> fresh;  // shokri null mode: per target, the fake "members"
    std::vector<int> membership;          // lira: M x n
    int64_t lira_n = 0;
    if (cfg.protocol == "shokri") {
        const int64_t reserved = 2 * ds * cfg.targets + (cfg.null_members ? ds * cfg.targets : 0);
        if (reserved + 2 * ds > n_pool)
            throw std::runtime_error("--ds " + std::to_string(ds) + " is too large: " + std::to_string(cfg.targets) +
                                     " target(s) and the shadows need " + std::to_string(reserved + 2 * ds) +
                                     " examples, the dataset has " + std::to_string(n_pool));
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
        if (lira_n > n_pool)
            throw std::runtime_error("--ds " + std::to_string(ds) + " is too large: lira needs a pool of " +
                                     std::to_string(lira_n) + " examples, the dataset has " + std::to_string(n_pool));
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
        write_file_atomic(ex.dir + "/splits.json", sj.dump() + "\n");
    }

    // --- Models ------------------------------------------------------------------
    ex.n_steps = int(splits.size() * cfg.models.size());
    ex.log("%s: %s protocol on %s, models %s, ds %lld, %d %s%s -> %s\n", "attack", cfg.protocol.c_str(),
           cfg.dataset.c_str(), json(cfg.models).dump().c_str(), (long long)ds, cfg.shadows,
           cfg.protocol == "shokri" ? "shadows" : "reference models",
           cfg.protocol == "shokri" ? (", " + std::to_string(cfg.targets) + " target(s)").c_str() : "",
           ex.dir.c_str());

    json result = {{"config", resolved}, {"models", json::object()}};
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
                json m = evaluate_and_write(ex.dir, kind, sp.role, idx, target, attacks, t == 0);
                // Seed 000's own protocol (attack trained on the target's outputs), for
                // comparison with its published numbers: scored on its held-out 20%.
                auto held = train_on_target_outputs(seed000_feature_matrix(target.logits, k), target.is_member,
                                                    mlp_spec({64, 64}, cfg.seed + 17 * t), 0.2);
                m["seed000_on_target"] = to_json(evaluate_attack(held.score, pick(target.is_member, held.rows), 0.0));
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
                Labelled target;
                target.logits = logits[size_t(t)];
                target.labels = pool_labels;
                target.is_member.assign(membership.begin() + t * lira_n, membership.begin() + (t + 1) * lira_n);
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
                std::map<std::string, int> unscorable;  // per LiRA variant
                for (bool online : {true, false})
                    for (bool fixed : {false, true}) {
                        LiraScores ls = lira_scores(phi, membership, t, {online, fixed});
                        const std::string name = std::string("lira_") + (online ? "online" : "offline") +
                                                 (fixed ? "_fixed_var" : "");
                        // Unscorable examples (no IN or OUT reference) rank lowest;
                        // how many there were goes into the metrics.
                        for (double& s : ls.score)
                            if (std::isnan(s)) s = -1e300, unscorable[name]++;
                        // Decision thresholds, fixed in advance: online, a likelihood
                        // ratio of 1; offline, phi above the OUT references' mean.
                        attacks.push_back({name, ls.score, 0.0});
                    }
                for (MetricAttack m : all_metric_attacks()) {
                    auto s_scores = metric_scores(m, refs.logits, k, refs.labels);
                    attacks.push_back({metric_attack_name(m), metric_scores(m, target.logits, k, target.labels),
                                       select_threshold(s_scores, refs.is_member)});
                }
                json mt = evaluate_and_write(ex.dir, kind, splits[size_t(t)].role, lira_pool, target, attacks, t == 0);
                for (const auto& [name, n] : unscorable) mt[name]["unscorable"] = n;
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
