// test_attack_run.cpp: the whole attack pipeline (attack/run.h) on real
// MNIST, small: null sanity (members that are fresh data score AUC 0.5 for
// every attack), the run directory's contents, caching on a re-run, the
// refusals (bad configuration, ds too large, another run's directory), and
// runs stopped by SIGKILL or by a full disk (a small tmpfs), then resumed.
// LibTorch before doctest: glog's CHECK would otherwise replace doctest's.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <algorithm>
#include <torch/torch.h>

#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <cstring>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <sys/wait.h>
#include <string>
#include <thread>
#include <tuple>

#include "attack/features.h"
#include "attack/rmia.h"
#include "attack/run.h"
#include "common/data.h"
#include "tests/cli_check.h"
#include "tests/temp_dir.h"
#include "train/checkpoint.h"

using namespace mmia;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A small experiment: 2 shadows, 1 target, ds examples, both model kinds.
AttackRunConfig small(const std::string& dir, int64_t ds) {
    AttackRunConfig c;
    c.run_dir = dir;
    c.ds = ds;
    c.shadows = 2;
    c.targets = 1;
    c.epochs = 3;
    c.threads = 2;
    c.verbose = false;
    return c;
}


// The vulnerability per epoch of a run with one tracked model, `role` (a
// one-target shokri run's target0, lira's model0; docs/ATTACKS.md): one row
// per epoch; the gap is train - test accuracy; at the last epoch the model
// is the attacked one, so the accuracies are the trainer's final ones and
// the loss AUC is the pairwise AUC of scores/<kind>_<role>.csv's loss
// column (the engine's logits, an independent path); `overfits`: the last
// gap is above the first. Defined below.
void check_per_epoch(const std::string& dir, const json& r, const std::string& kind, const std::string& role,
                     int epochs, bool overfits);

// --- An outside tool's view of a run directory ---------------------------------
// Everything below reads only the run directory's files (scores/*.csv,
// outputs/*.npy, splits.json, membership.csv) and the dataset's labels, and
// recomputes the numbers of metrics.json with its own, brute-force
// definitions (pairwise AUC, ROC by counting at every threshold): a second
// implementation, not a call into attack/.

// scores/<kind>_<role>.csv: pool_index,label,is_member, then one column per attack
// (an empty field = not scored, NaN here).
struct ScoreTable {
    std::vector<std::string> attacks;
    std::vector<int64_t> pool;
    std::vector<int> label, member;
    std::map<std::string, std::vector<double>> col;
};

ScoreTable read_scores(const std::string& path) {
    ScoreTable t;
    std::istringstream in(cli_read_text(path));
    std::string line;
    REQUIRE(std::getline(in, line));
    std::vector<std::string> head;
    {
        std::istringstream h(line);
        for (std::string f; std::getline(h, f, ',');) head.push_back(f);
    }
    REQUIRE(head.size() > 3);
    REQUIRE(head[0] == "pool_index");
    REQUIRE(head[1] == "label");
    REQUIRE(head[2] == "is_member");
    t.attacks.assign(head.begin() + 3, head.end());
    while (std::getline(in, line)) {
        std::vector<std::string> f;
        size_t at = 0;
        for (;;) {
            size_t c = line.find(',', at);
            f.push_back(line.substr(at, c == std::string::npos ? std::string::npos : c - at));
            if (c == std::string::npos) break;
            at = c + 1;
        }
        REQUIRE(f.size() == head.size());
        t.pool.push_back(std::stoll(f[0]));
        t.label.push_back(std::stoi(f[1]));
        t.member.push_back(std::stoi(f[2]));
        for (size_t a = 3; a < f.size(); a++)
            t.col[head[a]].push_back(f[a].empty() ? std::nan("") : std::strtod(f[a].c_str(), nullptr));
    }
    return t;
}

// A .npy file of float32 rows (version 1 header, C order).
std::vector<std::vector<double>> read_npy_rows(const std::string& path) {
    const std::string b = cli_read_text(path);
    REQUIRE(b.size() > 10);
    REQUIRE(b.compare(0, 6, "\x93NUMPY") == 0);
    const size_t hlen = size_t(uint8_t(b[8])) | size_t(uint8_t(b[9])) << 8;
    const std::string header = b.substr(10, hlen);
    REQUIRE(header.find("'<f4'") != std::string::npos);
    long long rows = 0, cols = 0;
    REQUIRE(std::sscanf(header.c_str() + header.find("'shape'"), "'shape': (%lld, %lld)", &rows, &cols) == 2);
    REQUIRE(b.size() == 10 + hlen + size_t(rows * cols) * 4);
    std::vector<std::vector<double>> out(static_cast<size_t>(rows), std::vector<double>(static_cast<size_t>(cols)));
    for (long long r = 0; r < rows; r++)
        for (long long c = 0; c < cols; c++) {
            float v;
            std::memcpy(&v, b.data() + 10 + hlen + size_t(r * cols + c) * 4, 4);
            out[size_t(r)][size_t(c)] = v;
        }
    return out;
}

// log softmax(z)[y], by its definition with a max shift.
double ref_log_p(const std::vector<double>& z, int y) {
    double mx = *std::max_element(z.begin(), z.end()), sum = 0;
    for (double v : z) sum += std::exp(v - mx);
    return z[size_t(y)] - mx - std::log(sum);
}
// LiRA's phi = log p_y - log(1 - p_y) = z_y - logsumexp_{i != y} z_i.
double ref_phi(const std::vector<double>& z, int y) {
    double mx = -INFINITY, sum = 0;
    for (size_t i = 0; i < z.size(); i++)
        if (int(i) != y) mx = std::max(mx, z[i]);
    for (size_t i = 0; i < z.size(); i++)
        if (int(i) != y) sum += std::exp(z[i] - mx);
    return z[size_t(y)] - mx - std::log(sum);
}

// Clopper-Pearson bounds from their definition (P[Bin(n, p) >= k] = alpha
// for the lower, P[Bin(n, p) <= k] = alpha for the upper), by bisection on
// the binomial tail summed term by term: no beta function involved.
double ref_binom_ge(int64_t k, int64_t n, double p) {
    long double sum = 0;
    for (int64_t i = k; i <= n; i++)
        sum += std::exp(std::lgamma((long double)n + 1) - std::lgamma((long double)i + 1) -
                        std::lgamma((long double)(n - i) + 1) + i * std::log((long double)p) +
                        (n - i) * std::log1p(-(long double)p));
    return double(sum);
}
double ref_cp_uncached(int64_t k, int64_t n, double alpha, bool lower) {
    if (lower && k == 0) return 0;
    if (!lower && k == n) return 1;
    double lo = 0, hi = 1;
    for (int it = 0; it < 100; it++) {
        const double mid = (lo + hi) / 2;
        // lower: the tail P[>= k] grows with p; upper: P[<= k] = 1 - P[>= k+1] falls with p.
        const double v = lower ? ref_binom_ge(k, n, mid) : 1 - ref_binom_ge(k + 1, n, mid);
        ((lower ? v < alpha : v > alpha) ? lo : hi) = mid;
    }
    return (lo + hi) / 2;
}
// The same, remembered: the brute-force metrics below ask for the same few
// (k, n) pairs at every threshold of every attack, slice and target, and
// each bisection sums a binomial tail 100 times (most of this file's time
// before it was cached).
double ref_cp(int64_t k, int64_t n, double alpha, bool lower) {
    static std::map<std::tuple<int64_t, int64_t, double, bool>, double> seen;
    const auto key = std::make_tuple(k, n, alpha, lower);
    auto it = seen.find(key);
    if (it == seen.end()) it = seen.emplace(key, ref_cp_uncached(k, n, alpha, lower)).first;
    return it->second;
}

// Every metric of one attack, by brute force ("member iff score >= t").
struct RefMetrics {
    int64_t n_members = 0, n_nonmembers = 0;
    double auc = 0, advantage = 0, tpr_1 = 0, tpr_01 = 0, tpr_001 = 0, tpr_0 = 0, ppv = 0, eps_lb = 0;
    double balanced_accuracy = 0, accuracy = 0, precision = 0, recall = 0, fpr = 0;
};
RefMetrics ref_metrics(const std::vector<double>& s, const std::vector<int>& m, double threshold) {
    RefMetrics r;
    for (int v : m) (v ? r.n_members : r.n_nonmembers)++;
    REQUIRE(r.n_members > 0);
    REQUIRE(r.n_nonmembers > 0);
    double wins = 0;
    for (size_t i = 0; i < s.size(); i++)
        if (m[i])
            for (size_t j = 0; j < s.size(); j++)
                if (!m[j]) wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
    r.auc = wins / double(r.n_members * r.n_nonmembers);
    std::vector<double> ts(s);
    ts.push_back(INFINITY);
    for (double t : ts) {
        int64_t tp = 0, fp = 0;
        for (size_t i = 0; i < s.size(); i++)
            if (s[i] >= t) (m[i] ? tp : fp)++;
        const double tpr = double(tp) / double(r.n_members), fpr = double(fp) / double(r.n_nonmembers);
        r.advantage = std::max(r.advantage, tpr - fpr);
        if (fp * 100 <= r.n_nonmembers) r.tpr_1 = std::max(r.tpr_1, tpr);    // FPR <= 1%
        if (fp * 1000 <= r.n_nonmembers) r.tpr_01 = std::max(r.tpr_01, tpr);  // FPR <= 0.1%
        if (fp * 10000 <= r.n_nonmembers) r.tpr_001 = std::max(r.tpr_001, tpr);  // FPR <= 0.01%
        if (fp == 0) r.tpr_0 = std::max(r.tpr_0, tpr);
        const double ratio = double(r.n_nonmembers) / double(r.n_members);  // PPV at the set's prior
        r.ppv = std::max(r.ppv, tp + fp == 0 ? 1 / (1 + ratio) : tpr / (tpr + ratio * fpr));
        // The epsilon lower bound at 95%: both ratios, alpha/2 = 0.025 per bound.
        const int64_t fn = r.n_members - tp, tn = r.n_nonmembers - fp;
        const double a = 0.025, tpr_lo = ref_cp(tp, r.n_members, a, true), tnr_lo = ref_cp(tn, r.n_nonmembers, a, true);
        if (tpr_lo > 0) r.eps_lb = std::max(r.eps_lb, std::log(tpr_lo / ref_cp(fp, r.n_nonmembers, a, false)));
        if (tnr_lo > 0) r.eps_lb = std::max(r.eps_lb, std::log(tnr_lo / ref_cp(fn, r.n_members, a, false)));
    }
    int64_t tp = 0, fp = 0;
    for (size_t i = 0; i < s.size(); i++)
        if (s[i] >= threshold) (m[i] ? tp : fp)++;
    const int64_t tn = r.n_nonmembers - fp;
    r.recall = double(tp) / double(r.n_members);
    r.fpr = double(fp) / double(r.n_nonmembers);
    r.balanced_accuracy = (r.recall + double(tn) / double(r.n_nonmembers)) / 2;
    r.accuracy = double(tp + tn) / double(s.size());
    r.precision = tp + fp ? double(tp) / double(tp + fp) : 0.0;
    return r;
}

void check_per_epoch(const std::string& dir, const json& r, const std::string& kind, const std::string& role,
                     int epochs, bool overfits) {
    const json& km = r["models"][kind];
    REQUIRE(km.contains("per_epoch"));
    const json& pe = km["per_epoch"];
    REQUIRE(pe.size() == size_t(epochs));
    CHECK(km["targets"][0]["per_epoch"].size() == size_t(epochs));
    for (int e = 0; e < epochs; e++) {
        CAPTURE(e);
        CHECK(pe[e]["epoch"] == e + 1);
        CHECK(pe[e]["targets"] == 1);
        CHECK(pe[e]["gap"].get<double>() ==
              doctest::Approx(pe[e]["train_acc"].get<double>() - pe[e]["test_acc"].get<double>()).epsilon(1e-12));
        for (const char* key : {"loss_auc", "loss_tpr_at_1pct_fpr", "train_acc", "test_acc"})
            CHECK((pe[e][key].get<double>() >= 0 && pe[e][key].get<double>() <= 1));
    }
    const json& last = pe[epochs - 1];
    CHECK(last["train_acc"].get<double>() == km["targets"][0]["train_acc"].get<double>());
    CHECK(last["test_acc"].get<double>() == km["targets"][0]["test_acc"].get<double>());
    const ScoreTable t = read_scores(dir + "/scores/" + kind + "_" + role + ".csv");
    const RefMetrics ref = ref_metrics(t.col.at("loss"), t.member, 0);
    MESSAGE("per-epoch loss AUC at epoch " << epochs << ": " << last["loss_auc"].get<double>()
                                           << ", from scores/: " << ref.auc);
    CHECK(last["loss_auc"].get<double>() == doctest::Approx(ref.auc).epsilon(1e-12));
    CHECK(last["loss_tpr_at_1pct_fpr"].get<double>() == doctest::Approx(ref.tpr_1).epsilon(1e-12));
    if (overfits) CHECK(last["gap"].get<double>() > pe[0]["gap"].get<double>());
}

// The shadow-chosen threshold (docs/ATTACKS.md): the ROC point of largest
// TPR - FPR, the highest threshold among ties, placed midway to the next
// lower distinct score; above the highest score when nothing beats 0.
double ref_threshold(const std::vector<double>& s, const std::vector<int>& m) {
    std::vector<double> d(s);
    std::sort(d.begin(), d.end(), std::greater<double>());
    d.erase(std::unique(d.begin(), d.end()), d.end());
    int64_t nm = std::count(m.begin(), m.end(), 1), nn = int64_t(m.size()) - nm;
    double best = 0;
    size_t at = d.size();
    for (size_t k = 0; k < d.size(); k++) {
        int64_t tp = 0, fp = 0;
        for (size_t i = 0; i < s.size(); i++)
            if (s[i] >= d[k]) (m[i] ? tp : fp)++;
        const double adv = double(tp) / double(nm) - double(fp) / double(nn);
        if (adv > best) best = adv, at = k;
    }
    if (at == d.size()) return std::nextafter(d[0], INFINITY);
    const double mid = d[at] / 2 + d[at + 1] / 2;
    return mid > d[at + 1] ? mid : d[at];
}

// Compares one metrics.json entry (an attack, or one of its slices) with
// the recomputation on the given CSV rows: counts, every number to 1e-9.
void check_metrics_on_rows(const ScoreTable& t, const std::string& name, const json& j, const std::vector<size_t>& rows) {
    std::vector<double> s;
    std::vector<int> m;
    int64_t unscored = 0;
    for (size_t i : rows) {
        const double v = t.col.at(name)[i];
        if (std::isnan(v)) {
            unscored++;
            continue;
        }
        s.push_back(v), m.push_back(t.member[i]);
    }
    CHECK(j.at("n_unscored").get<int64_t>() == unscored);
    if (j.contains("not_evaluated")) {
        const int64_t nm = std::count(m.begin(), m.end(), 1);
        CHECK((nm == 0 || nm == int64_t(m.size())));
        return;
    }
    const RefMetrics r = ref_metrics(s, m, j.at("threshold").get<double>());
    CHECK(j.at("n_members").get<int64_t>() == r.n_members);
    CHECK(j.at("n_nonmembers").get<int64_t>() == r.n_nonmembers);
    const std::pair<const char*, double> fields[] = {
        {"auc", r.auc}, {"advantage", r.advantage}, {"tpr_at_1pct_fpr", r.tpr_1},
        {"tpr_at_01pct_fpr", r.tpr_01}, {"tpr_at_001pct_fpr", r.tpr_001}, {"tpr_at_0_fpr", r.tpr_0},
        {"fpr_resolution", 1.0 / double(r.n_nonmembers)}, {"ppv", r.ppv}, {"balanced_accuracy", r.balanced_accuracy},
        {"accuracy", r.accuracy}, {"precision", r.precision}, {"recall", r.recall}, {"fpr", r.fpr}};
    for (const auto& [key, want] : fields) {
        INFO(key << ": metrics.json " << j.at(key).get<double>() << ", recomputed " << want);
        CHECK(std::fabs(j.at(key).get<double>() - want) <= 1e-9);
    }
    // The bound goes through two root-findings (bisection here, a beta
    // quantile there): equal to 1e-7.
    INFO("epsilon_lower_bound: metrics.json " << j.at("epsilon_lower_bound").get<double>() << ", recomputed "
                                              << r.eps_lb);
    CHECK(std::fabs(j.at("epsilon_lower_bound").get<double>() - r.eps_lb) <= 1e-7);
}

// Compares one target's metrics.json entry with the recomputation from its
// scores CSV: every attack present in both, every number to 1e-9; and each
// attack's slices (TF-Privacy's): class_<c> = the rows labelled c, correct /
// incorrect = the rows the target classifies right / wrong (the CSV's
// correctness column, checked against the logits' argmax by the callers).
void check_metrics_from_csv(const ScoreTable& t, const json& attacks) {
    std::set<std::string> in_json, in_csv(t.attacks.begin(), t.attacks.end());
    for (auto& [name, m] : attacks.items()) in_json.insert(name);
    CHECK(in_json == in_csv);
    std::map<std::string, std::vector<size_t>> slices;
    for (size_t i = 0; i < t.member.size(); i++) {
        for (int c = 0; c < 10; c++) slices["class_" + std::to_string(c)];  // every class, even an empty one
        slices["class_" + std::to_string(t.label[i])].push_back(i);
        slices[t.col.at("correctness")[i] == 1.0 ? "correct" : "incorrect"].push_back(i);
    }
    slices["correct"], slices["incorrect"];
    std::vector<size_t> all(t.member.size());
    for (size_t i = 0; i < all.size(); i++) all[i] = i;
    for (const std::string& name : t.attacks) {
        INFO("attack " << name);
        REQUIRE(attacks.contains(name));
        check_metrics_on_rows(t, name, attacks[name], all);
        REQUIRE(attacks[name].contains("slices"));
        CHECK(attacks[name]["slices"].size() == slices.size());
        for (const auto& [slice, rows] : slices) {
            INFO("slice " << slice << " of " << rows.size() << " rows");
            REQUIRE(attacks[name]["slices"].contains(slice));
            check_metrics_on_rows(t, name, attacks[name]["slices"][slice], rows);
        }
    }
}

// The label of a pool index: the dataset's train part, then its test part.
int pool_label(const Dataset& d, int64_t i) {
    return i < int64_t(d.train.n) ? d.train.labels[size_t(i)] : d.test.labels[size_t(i - int64_t(d.train.n))];
}

const json* split_of(const json& splits, const std::string& role) {
    for (const auto& m : splits["models"])
        if (m["role"] == role) return &m;
    FAIL("no split for " << role);
    return nullptr;
}

// The summary over targets: mean and sample standard deviation of each number.
void check_summary(const json& km) {
    for (auto& [name, sm] : km["summary"]["attacks"].items())
        for (auto& [key, ms] : sm.items()) {
            std::vector<double> v;
            for (const auto& tj : km["targets"])
                if (tj["attacks"].contains(name) && tj["attacks"][name].contains(key))
                    v.push_back(tj["attacks"][name][key].get<double>());
            double mean = 0, ss = 0;
            for (double x : v) mean += x / double(v.size());
            for (double x : v) ss += (x - mean) * (x - mean);
            INFO(name << " " << key);
            CHECK(ms["n"].get<size_t>() == v.size());
            CHECK(std::fabs(ms["mean"].get<double>() - mean) <= 1e-9);
            CHECK(std::fabs(ms["std"].get<double>() - (v.size() > 1 ? std::sqrt(ss / double(v.size() - 1)) : 0.0)) <=
                  1e-9);
        }
}

// A finished shokri run, from its files alone: for every kind and target,
// the rows are the target's members then non-members (splits.json) with the
// dataset's labels; the metric attacks' scores are the target's own logits
// (outputs/); their thresholds come from the shadows' logits with the
// shadows' membership; train / test accuracy are the target's, on its
// members / non-members; every metric and summary follows from the CSV.
void check_shokri_run_dir(const std::string& dir, const json& r, const Dataset& d) {
    const json splits = json::parse(cli_read_text(dir + "/splits.json"));
    const int shadows = r["config"]["shadows"], targets = r["config"]["targets"];
    for (auto& [kind, km] : r["models"].items()) {
        for (int ti = 0; ti < targets; ti++) {
            const std::string role = "target" + std::to_string(ti);
            INFO(kind << " " << role);
            const json& tj = km["targets"][size_t(ti)];
            REQUIRE(tj["role"] == role);
            const ScoreTable t = read_scores(dir + "/scores/" + kind + "_" + role + ".csv");
            const json* sp = split_of(splits, role);
            std::vector<int64_t> members = (*sp)["members"], nonmembers = (*sp)["nonmembers"];
            const int64_t ds = int64_t(members.size());
            REQUIRE(int64_t(t.pool.size()) == 2 * ds);
            const auto logits = read_npy_rows(dir + "/outputs/" + kind + "/" + role + ".npy");
            REQUIRE(logits.size() == t.pool.size());
            int64_t right_in = 0, right_out = 0;
            for (int64_t i = 0; i < 2 * ds; i++) {
                const int64_t want = i < ds ? members[size_t(i)] : nonmembers[size_t(i - ds)];
                CHECK(t.pool[size_t(i)] == want);
                CHECK(t.member[size_t(i)] == (i < ds ? 1 : 0));
                CHECK(t.label[size_t(i)] == pool_label(d, want));
                const auto& z = logits[size_t(i)];
                const double lp = ref_log_p(z, t.label[size_t(i)]);
                CHECK(std::fabs(t.col.at("loss")[size_t(i)] - lp) <= 1e-9);
                CHECK(std::fabs(t.col.at("confidence")[size_t(i)] - std::exp(lp)) <= 1e-9);
                const bool right = std::max_element(z.begin(), z.end()) - z.begin() == t.label[size_t(i)];
                CHECK(t.col.at("correctness")[size_t(i)] == (right ? 1.0 : 0.0));
                (i < ds ? right_in : right_out) += right;
            }
            // The trainer's accuracies (LibTorch) against the engine's
            // argmax: the same model, so at most a near-tie apart.
            CHECK(std::fabs(tj["train_acc"].get<double>() - double(right_in) / double(ds)) <= 2.0 / double(ds));
            CHECK(std::fabs(tj["test_acc"].get<double>() - double(right_out) / double(ds)) <= 2.0 / double(ds));
            // The label-only attack's counts: the target's argmax on the 12
            // shifted queries (outputs/<kind>/augmented/, query-major).
            const auto aug = read_npy_rows(dir + "/outputs/" + kind + "/augmented/" + role + ".npy");
            REQUIRE(aug.size() == 12 * size_t(2 * ds));
            for (int64_t i = 0; i < 2 * ds; i++) {
                double right = 0;
                for (size_t q = 0; q < 12; q++) {
                    const auto& z = aug[q * size_t(2 * ds) + size_t(i)];
                    right += std::max_element(z.begin(), z.end()) - z.begin() == t.label[size_t(i)];
                }
                CHECK(t.col.at("label_only_augment")[size_t(i)] == right);
            }
            // The loss attack's threshold, chosen on the shadows alone.
            std::vector<double> shadow_loss;
            std::vector<int> shadow_member;
            for (int s = 0; s < shadows; s++) {
                const std::string srole = "shadow" + std::to_string(s);
                const json* ss = split_of(splits, srole);
                const auto sl = read_npy_rows(dir + "/outputs/" + kind + "/" + srole + ".npy");
                std::vector<int64_t> sm = (*ss)["members"], sn = (*ss)["nonmembers"];
                REQUIRE(sl.size() == sm.size() + sn.size());
                for (size_t i = 0; i < sl.size(); i++) {
                    const int64_t idx = i < sm.size() ? sm[i] : sn[i - sm.size()];
                    shadow_loss.push_back(ref_log_p(sl[i], pool_label(d, idx)));
                    shadow_member.push_back(i < sm.size());
                }
            }
            const double th = ref_threshold(shadow_loss, shadow_member);
            CHECK(std::fabs(tj["attacks"]["loss"]["threshold"].get<double>() - th) <= 1e-9 * std::max(1.0, std::fabs(th)));
            check_metrics_from_csv(t, tj["attacks"]);
        }
        check_summary(km);
    }
}


// LiRA's per-example reference statistics (count, mean, sum of squared
// deviations) and the pieces both recomputations below use: the pooled
// spread over examples with >= 2 references, the per-example spread (or the
// pooled one when fixed or too few), the Gaussian log density up to a
// constant.
struct LiraRef { int64_t c = 0; double mean = 0, ss = 0; };
double lira_pooled_sd(const std::vector<LiraRef>& refs) {
    double ss = 0, dof = 0;
    for (const LiraRef& q : refs)
        if (q.c >= 2) ss += q.ss, dof += double(q.c - 1);
    return dof > 0 ? std::max(std::sqrt(ss / dof), 1e-6) : NAN;
}
double lira_sd(const LiraRef& q, double pooled, bool fixed) {
    return fixed || q.c < 2 ? pooled : std::max(std::sqrt(q.ss / double(q.c - 1)), 1e-6);
}
double lira_log_n(double x, double mu, double s) { return -std::log(s) - 0.5 * (x - mu) * (x - mu) / (s * s); }
LiraRef lira_ref_of(const std::vector<double>& v) {
    LiraRef r;
    r.c = int64_t(v.size());
    for (double x : v) r.mean += x / double(v.size());
    for (double x : v) r.ss += (x - r.mean) * (x - r.mean);
    return r;
}

// LiRA's four scores of target t from phi (M x n) and membership, by the
// definitions of docs/ATTACKS.md (a second implementation): per example the
// IN / OUT references' mean and spread, the pooled spreads, then online
// log N(in) - log N(out) and offline (phi - mu_out) / sd_out; NaN where
// the references cannot score. Keys: lira_online, lira_online_fixed_var,
// lira_offline, lira_offline_fixed_var.
std::map<std::string, std::vector<double>> ref_lira(const std::vector<std::vector<double>>& phi,
                                                    const std::vector<std::vector<int>>& mem, int t) {
    const int M = int(phi.size());
    const size_t n = phi[0].size();
    std::vector<LiraRef> in(n), out(n);
    for (size_t j = 0; j < n; j++) {
        std::vector<double> vin, vout;
        for (int m = 0; m < M; m++)
            if (m != t) (mem[size_t(m)][j] ? vin : vout).push_back(phi[size_t(m)][j]);
        in[j] = lira_ref_of(vin);
        out[j] = lira_ref_of(vout);
    }
    const double pin = lira_pooled_sd(in), pout = lira_pooled_sd(out);
    std::map<std::string, std::vector<double>> res;
    for (bool fixed : {false, true}) {
        const std::string suffix = fixed ? "_fixed_var" : "";
        auto& on = res["lira_online" + suffix];
        auto& off = res["lira_offline" + suffix];
        for (size_t j = 0; j < n; j++) {
            const LiraRef& qi = in[j];
            const LiraRef& qo = out[j];
            const double x = phi[size_t(t)][j];
            off.push_back(qo.c > 0 ? (x - qo.mean) / lira_sd(qo, pout, fixed) : NAN);
            on.push_back(qo.c > 0 && qi.c > 0 ? lira_log_n(x, qi.mean, lira_sd(qi, pin, fixed)) - lira_log_n(x, qo.mean, lira_sd(qo, pout, fixed))
                                              : NAN);
        }
    }
    return res;
}

// The augmented-query attacks of a lira run from outputs/<kind>/augmented/
// (every model's logits on the 12 shifted queries of every pool example,
// query-major, pool order): label_only_augment = how many queries the
// target labels right; lira_*_aug = the mean over the example itself and
// the 12 queries of ref_lira's per-query scores.
void check_augmented_lira(const std::string& dir, const std::string& kind,
                          const std::vector<std::vector<std::vector<double>>>& logits /*[m][j]*/,
                          const std::vector<std::vector<int>>& mem, const std::vector<int>& labels) {
    const int M = int(logits.size());
    const size_t n = labels.size();
    std::vector<std::vector<std::vector<double>>> phi(13, std::vector<std::vector<double>>(size_t(M)));
    std::vector<std::vector<double>> right(size_t(M), std::vector<double>(n, 0.0));
    for (int m = 0; m < M; m++) {
        const auto aug = read_npy_rows(dir + "/outputs/" + kind + "/augmented/model" + std::to_string(m) + ".npy");
        REQUIRE(aug.size() == 12 * n);
        for (size_t j = 0; j < n; j++) phi[0][size_t(m)].push_back(ref_phi(logits[size_t(m)][j], labels[j]));
        for (size_t q = 0; q < 12; q++)
            for (size_t j = 0; j < n; j++) {
                const auto& z = aug[q * n + j];
                phi[q + 1][size_t(m)].push_back(ref_phi(z, labels[j]));
                right[size_t(m)][j] += std::max_element(z.begin(), z.end()) - z.begin() == labels[j];
            }
    }
    for (int t = 0; t < M; t++) {
        const ScoreTable tab = read_scores(dir + "/scores/" + kind + "_model" + std::to_string(t) + ".csv");
        INFO(kind << " model" << t);
        CHECK(tab.col.at("label_only_augment") == right[size_t(t)]);
        std::map<std::string, std::vector<double>> mean;
        for (const auto& p : phi)
            for (auto& [name, v] : ref_lira(p, mem, t)) {
                auto& acc = mean[name];
                acc.resize(n, 0.0);
                for (size_t j = 0; j < n; j++) acc[j] += v[j] / 13.0;
            }
        for (const auto& [name, want] : mean)
            for (size_t j = 0; j < n; j++) {
                const double got = tab.col.at(name + "_aug")[j];
                INFO(name << "_aug example " << j << ": csv " << got << ", recomputed " << want[j]);
                CHECK(std::isnan(got) == std::isnan(want[j]));
                if (!std::isnan(want[j])) CHECK(std::fabs(got - want[j]) <= 1e-9 * std::max(1.0, std::fabs(want[j])));
            }
    }
}

// A finished lira run, from its files alone: every model's logits on every
// pool example (outputs/, rows = its members then non-members), phi from
// them, and for each target the LiRA scores from the OTHER models' phi with
// their membership (membership.csv), per-example and pooled spreads as
// docs/ATTACKS.md defines them; an empty CSV field exactly where the
// references cannot score; the metric attacks' thresholds from the
// references; every metric from the CSV.
void check_lira_run_dir(const std::string& dir, const json& r, const Dataset& d) {
    const json splits = json::parse(cli_read_text(dir + "/splits.json"));
    const std::vector<int64_t> pool = splits["lira_pool"];
    const int64_t n = int64_t(pool.size());
    const int M = r["config"]["shadows"].get<int>() + 1;
    std::vector<std::vector<int>> mem;
    {
        std::istringstream in(cli_read_text(dir + "/membership.csv"));
        for (std::string l; std::getline(in, l);) {
            mem.emplace_back();
            for (char c : l)
                if (c != ',') mem.back().push_back(c == '1');
        }
    }
    REQUIRE(int(mem.size()) == M);
    for (auto& [kind, km] : r["models"].items()) {
        // logits[m][j]: model m on pool position j.
        std::vector<std::vector<std::vector<double>>> logits(static_cast<size_t>(M));
        for (int m = 0; m < M; m++) {
            const std::string role = "model" + std::to_string(m);
            const json* sp = split_of(splits, role);
            std::vector<int64_t> order = (*sp)["members"], no = (*sp)["nonmembers"];
            order.insert(order.end(), no.begin(), no.end());
            const auto rows = read_npy_rows(dir + "/outputs/" + kind + "/" + role + ".npy");
            REQUIRE(rows.size() == order.size());
            std::map<int64_t, size_t> at;
            for (size_t i = 0; i < order.size(); i++) at[order[i]] = i;
            for (int64_t j = 0; j < n; j++) {
                REQUIRE(at.count(pool[size_t(j)]));
                logits[size_t(m)].push_back(rows[at[pool[size_t(j)]]]);
                // membership.csv agrees with the split the model trained on.
                CHECK(mem[size_t(m)][size_t(j)] == int(at[pool[size_t(j)]] < (*sp)["members"].size()));
            }
        }
        for (int t = 0; t < M; t++) {
            const std::string role = "model" + std::to_string(t);
            INFO(kind << " " << role);
            const json& tj = km["targets"][size_t(t)];
            REQUIRE(tj["role"] == role);
            const ScoreTable tab = read_scores(dir + "/scores/" + kind + "_" + role + ".csv");
            REQUIRE(int64_t(tab.pool.size()) == n);
            std::vector<double> phi_t(static_cast<size_t>(n));
            std::vector<LiraRef> in(static_cast<size_t>(n)), out(static_cast<size_t>(n));
            for (int64_t j = 0; j < n; j++) {
                const int y = pool_label(d, pool[size_t(j)]);
                CHECK(tab.pool[size_t(j)] == pool[size_t(j)]);
                CHECK(tab.label[size_t(j)] == y);
                CHECK(tab.member[size_t(j)] == mem[size_t(t)][size_t(j)]);
                CHECK(std::fabs(tab.col.at("loss")[size_t(j)] - ref_log_p(logits[size_t(t)][size_t(j)], y)) <= 1e-9);
                const auto& z = logits[size_t(t)][size_t(j)];
                CHECK(tab.col.at("correctness")[size_t(j)] == double(std::max_element(z.begin(), z.end()) - z.begin() == y));
                phi_t[size_t(j)] = ref_phi(logits[size_t(t)][size_t(j)], y);
                std::vector<double> vin, vout;
                for (int m = 0; m < M; m++)
                    if (m != t) (mem[size_t(m)][size_t(j)] ? vin : vout).push_back(ref_phi(logits[size_t(m)][size_t(j)], y));
                in[size_t(j)] = lira_ref_of(vin);
                out[size_t(j)] = lira_ref_of(vout);
            }
            const double pin = lira_pooled_sd(in), pout = lira_pooled_sd(out);
            for (bool fixed : {false, true}) {
                const std::string on = std::string("lira_online") + (fixed ? "_fixed_var" : "");
                const std::string off = std::string("lira_offline") + (fixed ? "_fixed_var" : "");
                for (int64_t j = 0; j < n; j++) {
                    const LiraRef& qi = in[size_t(j)];
                    const LiraRef& qo = out[size_t(j)];
                    const double x = phi_t[size_t(j)];
                    double want_on = NAN, want_off = NAN;
                    if (qo.c > 0) want_off = (x - qo.mean) / lira_sd(qo, pout, fixed);
                    if (qo.c > 0 && qi.c > 0)
                        want_on = lira_log_n(x, qi.mean, lira_sd(qi, pin, fixed)) - lira_log_n(x, qo.mean, lira_sd(qo, pout, fixed));
                    for (auto [name, want] : {std::pair{on, want_on}, std::pair{off, want_off}}) {
                        const double got = tab.col.at(name)[size_t(j)];
                        INFO(name << " example " << j << ": csv " << got << ", recomputed " << want);
                        CHECK(std::isnan(got) == !std::isfinite(want));
                        if (std::isfinite(want)) CHECK(std::fabs(got - want) <= 1e-9 * std::max(1.0, std::fabs(want)));
                    }
                }
            }
            // The metric attacks' threshold, from the references (all but t).
            std::vector<double> rl;
            std::vector<int> rm;
            for (int m = 0; m < M; m++)
                if (m != t)
                    for (int64_t j = 0; j < n; j++) {
                        rl.push_back(ref_log_p(logits[size_t(m)][size_t(j)], pool_label(d, pool[size_t(j)])));
                        rm.push_back(mem[size_t(m)][size_t(j)]);
                    }
            const double th = ref_threshold(rl, rm);
            CHECK(std::fabs(tj["attacks"]["loss"]["threshold"].get<double>() - th) <= 1e-9 * std::max(1.0, std::fabs(th)));
            check_metrics_from_csv(tab, tj["attacks"]);
        }
        if (!r["config"]["null_members"].get<bool>()) {
            std::vector<int> labels;
            for (int64_t j = 0; j < n; j++) labels.push_back(pool_label(d, pool[size_t(j)]));
            check_augmented_lira(dir, kind, logits, mem, labels);
        }
        check_summary(km);
    }
}

}  // namespace

TEST_CASE("null members: every attack scores AUC 0.5 within noise") {
    TempDir tmp("mmia_attack");
    AttackRunConfig c = small((tmp.path / "null").string(), 400);
    c.null_members = true;
    json r = run_attack(c);
    // Standard error of an AUC between n1 = n2 = 400 exchangeable scores:
    // sqrt((n1 + n2 + 1) / (12 n1 n2)) = 0.0204; four of them covers every
    // attack (about 15 per model, correlated) without flaking.
    const double n1 = 400, n2 = 400;
    const double bound = 4 * std::sqrt((n1 + n2 + 1) / (12 * n1 * n2));
    int checked = 0;
    for (const char* kind : {"mamba", "cnn"}) {
        for (auto& [name, m] : r["models"][kind]["targets"][0]["attacks"].items()) {
            if (name == "seed000_on_target") continue;  // scored on 20% only: its own noise
            INFO(kind, " ", name, " AUC ", m["auc"].get<double>());
            CHECK(std::fabs(m["auc"].get<double>() - 0.5) < bound);
            checked++;
        }
    }
    CHECK(checked >= 20);
    // No vulnerability per epoch: the attacked "members" are not the targets' own.
    for (const char* kind : {"mamba", "cnn"}) {
        CHECK_FALSE(r["models"][kind].contains("per_epoch"));
        CHECK(r["models"][kind]["per_epoch_not_recorded"].get<std::string>().find("null-members run") !=
              std::string::npos);
    }
    CHECK(cli_read_text(c.run_dir + "/report.md").find("- cnn: not recorded (a null-members run") != std::string::npos);
}

TEST_CASE("a real run writes every output; a re-run trains nothing and replaces corrupt packed models and logits") {
    TempDir tmp("mmia_attack");
    const std::string dir = (tmp.path / "run").string();
    // 100 images for 24 epochs: the same training cost as 300 for 8 (which
    // measured loss AUC 0.604, 2.2 standard errors from both 0.5 and itself),
    // but a model that fits its members far more closely: train acc 1.000,
    // test 0.840, loss AUC 0.7236 (2 threads; bin/attack --model cnn --ds 100
    // --shadow 2 --targets 1 --epochs 24 --threads 2 measures the same).
    AttackRunConfig c = small(dir, 100);
    c.models = {"cnn"};
    c.epochs = 24;
    json r = run_attack(c);
    CHECK(last_attack_run_stats().trained == 3);
    for (const char* f : {"attack_config.json", "splits.json", "metrics.json", "report.md", "plots/cnn_roc.svg",
                          "plots/cnn_roc_loglog.svg", "plots/cnn_hist_loss.svg", "scores/cnn_target0.csv",
                          "roc/cnn_target0_loss.csv", "models/cnn/target0.pt", "models/cnn/target0.bin",
                          "outputs/cnn/shadow1.npy"})
        CHECK_MESSAGE(fs::exists(dir + "/" + f), f);
    const json& t = r["models"]["cnn"]["targets"][0];
    CHECK(t["train_acc"].get<double>() > t["test_acc"].get<double>());  // it overfits...
    // ...and the loss attack sees it. The bound sits as many standard errors
    // below what this configuration measures as above what a useless attack
    // scores, n1 = n2 = 100 members and non-members:
    //   measured A = 0.7236. Its standard error (Hanley & McNeil 1982):
    //     Q1 = A / (2 - A) = 0.5669, Q2 = 2 A^2 / (1 + A) = 0.6076, A^2 = 0.5236
    //     SE^2 = [A (1 - A) + (n1 - 1)(Q1 - A^2) + (n2 - 1)(Q2 - A^2)] / (n1 n2)
    //          = [0.2000 + 99 x 0.0433 + 99 x 0.0840] / 10^4 = 12.80e-4, SE = 0.0358
    //   a useless attack (exchangeable scores): AUC 0.5, its standard error
    //     SE0 = sqrt((n1 + n2 + 1) / (12 n1 n2)) = sqrt(201 / 120000) = 0.0409
    //   bound 0.62: 0.1036 = 2.9 SE below the measured value, 0.12 = 2.9 SE0
    //   above chance (a random score passes with probability ~0.2%), and
    //   above the null test's band (0.5 + 4 x 0.0204 = 0.582 on 400 + 400).
    // Scores mutated to random (tests/mutations/attack.txt) fail it.
    const double n1 = 100, n2 = 100;
    const double se0 = std::sqrt((n1 + n2 + 1) / (12 * n1 * n2));
    const double bound = 0.62;
    CHECK(bound - 0.5 > 2.9 * se0);
    CHECK(bound > 0.5 + 4 * std::sqrt((400.0 + 400 + 1) / (12 * 400.0 * 400)));
    MESSAGE("loss AUC " << t["attacks"]["loss"]["auc"].get<double>() << " (bound " << bound << ")");
    CHECK(t["attacks"]["loss"]["auc"].get<double>() > bound);
    // Every number from the run directory's files alone (an outside tool's view).
    check_shokri_run_dir(dir, r, load_dataset("mnist"));
    // 100 members + 100 non-members, one line each plus the header.
    std::ifstream scores(dir + "/scores/cnn_target0.csv");
    int lines = 0;
    for (std::string l; std::getline(scores, l);) lines++;
    CHECK(lines == 201);
    check_per_epoch(dir, r, "cnn", "target0", 24, true);  // overfits: train acc 1.000, test 0.840

    // The packed models and confidence files are outputs, never inputs: a
    // re-run derives them again from the checkpoints, so corrupt ones (a
    // crash, a bad disk) are replaced, not read.
    const std::string npy = cli_read_text(dir + "/outputs/cnn/target0.npy");
    for (const char* f : {"/outputs/cnn/target0.npy", "/models/cnn/target0.bin", "/models/cnn/shadow1.bin"}) {
        std::ofstream bad(dir + f, std::ios::binary | std::ios::trunc);
        bad << "\x93NUMPY garbage";
    }
    json again = run_attack(c);
    CHECK(last_attack_run_stats().trained == 0);
    CHECK(last_attack_run_stats().cached == 3);
    CHECK(again["models"]["cnn"]["targets"][0]["attacks"] == t["attacks"]);  // deterministic
    CHECK(again["models"]["cnn"]["per_epoch"] == r["models"]["cnn"]["per_epoch"]);  // from the cached checkpoints
    CHECK(cli_read_text(dir + "/outputs/cnn/target0.npy") == npy);

    // What decides the bits besides the configuration is recorded (and not
    // compared on a re-run): the thread count, the seed, the library versions.
    const json cfg_file = json::parse(cli_read_text(dir + "/attack_config.json"));
    CHECK(cfg_file["environment"]["threads"] == 2);
    CHECK(cfg_file["environment"]["seed"] == 42);
    CHECK(cfg_file["presets"]["cnn"] == "shokri");
    for (const char* lib : {"libtorch", "nlohmann_json", "compiler"})
        CHECK_MESSAGE(!cfg_file["environment"][lib].get<std::string>().empty(), lib);
    CHECK(r["environment"] == cfg_file["environment"]);

    // The same directory with another configuration is refused.
    AttackRunConfig other = c;
    other.seed = 7;
    CHECK_THROWS_WITH_AS(run_attack(other), doctest::Contains("another configuration"), std::runtime_error);
}

TEST_CASE("bad configurations are refused before any work") {
    TempDir tmp("mmia_attack");
    AttackRunConfig c = small((tmp.path / "bad").string(), 300);
    c.ds = 40000;  // 2 x ds for the target + 2 x ds per shadow > 70,000
    CHECK_THROWS_WITH_AS(run_attack(c), doctest::Contains("too large"), std::runtime_error);
    c = small((tmp.path / "bad").string(), 300);
    c.shadows = 0;
    CHECK_THROWS_WITH_AS(run_attack(c), doctest::Contains("--shadow"), std::runtime_error);
    c = small((tmp.path / "bad").string(), 300);
    c.protocol = "yeom";
    CHECK_THROWS_WITH_AS(run_attack(c), doctest::Contains("unknown protocol"), std::runtime_error);
    c = small((tmp.path / "bad").string(), 300);
    c.models = {"transformer"};
    CHECK_THROWS_WITH_AS(run_attack(c), doctest::Contains("unknown model"), std::runtime_error);
    c = small((tmp.path / "bad").string(), 300);
    c.mamba_preset = "shokri";  // a CNN preset for the Mamba
    CHECK_THROWS_AS(run_attack(c), std::runtime_error);
}

TEST_CASE("a corrupt cached model is an error, not a crash") {
    TempDir tmp("mmia_attack");
    const std::string dir = (tmp.path / "corrupt").string();
    AttackRunConfig c = small(dir, 100);
    c.models = {"cnn"};
    c.epochs = 1;
    run_attack(c);
    {
        std::ofstream f(dir + "/models/cnn/shadow0.pt", std::ios::binary | std::ios::trunc);
        f << "not a checkpoint";
    }
    CHECK_THROWS_AS(run_attack(c), std::exception);
}

TEST_CASE("lira protocol: every model is a target, the membership matrix is saved") {
    TempDir tmp("mmia_attack");
    const std::string dir = (tmp.path / "lira").string();
    AttackRunConfig c = small(dir, 150);
    c.protocol = "lira";
    c.models = {"cnn"};
    c.shadows = 3;  // M = 4 models on random halves of a 300-example pool
    c.rmia_population = 300;
    json r = run_attack(c);
    const json& targets = r["models"]["cnn"]["targets"];
    REQUIRE(targets.size() == 4);
    // Vulnerability per epoch: model 0 only (the cost), as its attack sees it.
    check_per_epoch(dir, r, "cnn", "model0", 3, false);
    for (int t = 1; t < 4; t++) CHECK_FALSE(targets[size_t(t)].contains("per_epoch"));
    for (const auto& t : targets)
        for (const char* a : {"lira_online", "lira_offline", "lira_online_fixed_var", "lira_offline_fixed_var", "loss"})
            CHECK_MESSAGE(t["attacks"].contains(a), a);
    std::ifstream m(dir + "/membership.csv");
    std::vector<std::vector<int>> in;  // in[model][example]
    for (std::string l; std::getline(m, l);) {
        in.emplace_back();
        for (char ch : l)
            if (ch != ',') in.back().push_back(ch == '1');
        CHECK(in.back().size() == 300);
        CHECK(std::count(in.back().begin(), in.back().end(), 1) == 150);  // each model trains on half the pool
    }
    REQUIRE(in.size() == 4);
    // The examples LiRA cannot score, counted from the saved matrix: online
    // needs an IN and an OUT reference among the other three models,
    // offline an OUT one. Each count is reported per target.
    for (int t = 0; t < 4; t++) {
        int no_in_or_out = 0, no_out = 0;
        for (int j = 0; j < 300; j++) {
            int refs_in = 0;
            for (int r = 0; r < 4; r++) refs_in += r != t && in[size_t(r)][size_t(j)];
            no_in_or_out += refs_in == 0 || refs_in == 3;
            no_out += refs_in == 3;
        }
        const json& a = targets[size_t(t)]["attacks"];
        CHECK(no_in_or_out > 0);  // with 3 references some always are
        CHECK(a["lira_online"]["n_unscored"] == no_in_or_out);
        CHECK(a["lira_online_fixed_var"]["n_unscored"] == no_in_or_out);
        CHECK(a["lira_offline"]["n_unscored"] == no_out);
        CHECK(a["loss"]["n_unscored"] == 0);
        // Left out, not ranked: the metrics count only the scored examples.
        CHECK(a["lira_online"]["n_members"].get<int>() + a["lira_online"]["n_nonmembers"].get<int>() ==
              300 - no_in_or_out);
    }
    CHECK(r["seconds"]["total"].get<double>() > 0);
    CHECK(r["seconds"]["training"].get<double>() > 0);
    check_lira_run_dir(dir, r, load_dataset("mnist"));
}

TEST_CASE("lira null members: each model's members are examples it never saw, every attack at chance") {
    TempDir tmp("mmia_attack");
    AttackRunConfig c = small((tmp.path / "lira_null").string(), 200);
    c.protocol = "lira";
    c.models = {"cnn"};
    c.shadows = 3;
    c.rmia_population = 300;
    c.null_members = true;
    json r = run_attack(c);
    CHECK(r["config"]["null_members"] == true);
    const json splits = json::parse(cli_read_text(c.run_dir + "/splits.json"));
    int checked = 0;
    for (int t = 0; t < 4; t++) {
        const std::string role = "model" + std::to_string(t);
        const json* sp = split_of(splits, role);
        const std::vector<int64_t> trained_on = (*sp)["members"];
        const std::set<int64_t> trained(trained_on.begin(), trained_on.end());
        const std::vector<int64_t> fake = splits["null_members"][role];
        CHECK(fake.size() == 100);  // half of the 200 examples the model never trained on
        const ScoreTable tab = read_scores(c.run_dir + "/scores/cnn_" + role + ".csv");
        CHECK(tab.pool.size() == 200);
        std::set<int64_t> fake_set(fake.begin(), fake.end());
        for (size_t i = 0; i < tab.pool.size(); i++) {
            CHECK(trained.count(tab.pool[i]) == 0);  // every evaluated example is one the target never saw
            CHECK(tab.member[i] == int(fake_set.count(tab.pool[i])));
        }
        for (auto& [name, m] : r["models"]["cnn"]["targets"][size_t(t)]["attacks"].items()) {
            if (!m.contains("auc")) continue;
            const double n1 = m["n_members"], n0 = m["n_nonmembers"];
            const double bound = 4 * std::sqrt((n1 + n0 + 1) / (12 * n1 * n0));
            INFO(role << " " << name << " AUC " << m["auc"].get<double>() << " on " << n1 << " + " << n0);
            CHECK(std::fabs(m["auc"].get<double>() - 0.5) < bound);
            checked++;
        }
    }
    CHECK(checked >= 30);
    CHECK(cli_read_text(c.run_dir + "/report.md").find("Sanity run") != std::string::npos);
}

TEST_CASE("a run whose shadows lack a class's members or non-members finishes, falling back to the global attack") {
    // The case: --ds 10 --shadow 1 used to train everything and then
    // die in ShokriAttack::fit with no results.
    TempDir tmp("mmia_attack");
    AttackRunConfig c = small((tmp.path / "tiny").string(), 10);
    c.models = {"cnn"};
    c.shadows = 1;
    c.epochs = 1;
    json r = run_attack(c);
    // The classes without shadow members or non-members, counted from splits.json.
    const Dataset d = load_dataset("mnist");
    const json splits = json::parse(cli_read_text(c.run_dir + "/splits.json"));
    const json* sp = split_of(splits, "shadow0");
    std::vector<int> members(10, 0), nonmembers(10, 0);
    for (int64_t i : (*sp)["members"]) members[size_t(pool_label(d, i))]++;
    for (int64_t i : (*sp)["nonmembers"]) nonmembers[size_t(pool_label(d, i))]++;
    std::vector<int> thin;
    for (int k = 0; k < 10; k++)
        if (!members[size_t(k)] || !nonmembers[size_t(k)]) thin.push_back(k);
    REQUIRE(!thin.empty());
    CHECK(r["per_class_fallback"]["classes"] == thin);
    const json& a = r["models"]["cnn"]["targets"][0]["attacks"];
    for (const char* name : {"shokri_mlp", "shokri_logreg", "loss_per_class", "confidence_per_class",
                             "entropy_per_class", "modified_entropy_per_class"}) {
        INFO(name);
        CHECK(a[name]["fallback_classes"] == thin);
        CHECK(a[name].contains("auc"));
    }
    CHECK(!a["loss"].contains("fallback_classes"));
    CHECK(fs::exists(c.run_dir + "/report.md"));
    CHECK(cli_read_text(c.run_dir + "/report.md").find("scored them with their global version") != std::string::npos);
    check_shokri_run_dir(c.run_dir, r, d);
}

// RMIA through bin/attack, from the run directory's files alone: the
// population (splits.json) lies outside the lira pool and is no model's
// member; every model's logits on it are saved (outputs/cnn/population/);
// each target's rmia_offline / rmia_online columns equal
//   (a) attack/rmia.h's functions on the true-label probabilities of the
//       saved logits, a re-tuned on the references alone (rmia_a), and
//   (b) the paper's definition computed here, example by population point:
//       score(x) = |{z : (p_t(x) / Pr(x)) / (p_t(z) / Pr(z)) >= gamma}| / |Z|,
//       Pr = the mean over the references (online: all; offline: the OUT
//       ones, 1/2 [(1 + a) mean + (1 - a)]), p from a softmax of our own;
// and every metric of the rows follows from the CSV (check_lira_run_dir).
TEST_CASE("bin/attack lira: RMIA's rows recompute from the saved outputs, by attack/rmia and by the paper's formula") {
    TempDir tmp("mmia_attack_rmia");
    const std::string bin = cli_env_or("ATTACK_BIN", "bin/attack");
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "no executable " << bin << " (make bin/attack)");
    const std::string dir = tmp.file("run");
    const int64_t n_pop = 150;
    const double gamma = 1.5;
    CliRun run = cli_run_argv({bin, "--protocol", "lira", "--model", "cnn", "--ds", "60", "--shadow", "3", "--epochs",
                               "3", "--threads", "2", "--rmia-gamma", "1.5", "--rmia-population", "150", "--run-dir",
                               dir},
                              tmp.file("log"), 300);
    REQUIRE_MESSAGE(run.code == 0, run.err);
    const json r = json::parse(cli_read_text(dir + "/metrics.json"));
    const Dataset d = load_dataset("mnist");
    check_lira_run_dir(dir, r, d);  // every metric of every row, RMIA's among them, from the CSV
    {  // report.md states the parameters metrics.json records
        const json& a = r["models"]["cnn"]["targets"][0]["attacks"]["rmia_offline"];
        char want[200];
        std::snprintf(want, sizeof want,
                      "RMIA (cnn, model0): gamma 1.5, 150 population points, 3 reference models, offline a = %g",
                      a["rmia_a"].get<double>());
        CHECK(a["rmia_reference_models"] == 3);
        CHECK_MESSAGE(cli_read_text(dir + "/report.md").find(want) != std::string::npos, want);
    }

    const json splits = json::parse(cli_read_text(dir + "/splits.json"));
    const std::vector<int64_t> pool = splits["lira_pool"], pop = splits["rmia_population"];
    REQUIRE(int64_t(pop.size()) == n_pop);
    std::set<int64_t> members_of_any;
    for (const auto& m : splits["models"])
        for (int64_t i : m["members"].get<std::vector<int64_t>>()) members_of_any.insert(i);
    const std::set<int64_t> pool_set(pool.begin(), pool.end()), pop_set(pop.begin(), pop.end());
    CHECK(pop_set.size() == pop.size());
    for (int64_t z : pop) {
        CHECK(pool_set.count(z) == 0);
        CHECK(members_of_any.count(z) == 0);
    }
    const int M = 4, k = 10;
    const int64_t n = int64_t(pool.size());
    // logits[m][j] on the pool (outputs/cnn/<role>.npy: members then
    // non-members) and zlogits[m][i] on the population.
    std::vector<std::vector<std::vector<double>>> logits(M), zlogits(M);
    std::vector<int> membership(size_t(M * n));
    for (int m = 0; m < M; m++) {
        const std::string role = "model" + std::to_string(m);
        const json* sp = split_of(splits, role);
        std::vector<int64_t> order = (*sp)["members"], no = (*sp)["nonmembers"];
        const size_t n_members = order.size();
        order.insert(order.end(), no.begin(), no.end());
        const auto rows = read_npy_rows(dir + "/outputs/cnn/" + role + ".npy");
        std::map<int64_t, size_t> at;
        for (size_t i = 0; i < order.size(); i++) at[order[i]] = i;
        for (int64_t j = 0; j < n; j++) {
            logits[size_t(m)].push_back(rows[at.at(pool[size_t(j)])]);
            membership[size_t(m * n + j)] = int(at.at(pool[size_t(j)]) < n_members);
        }
        zlogits[size_t(m)] = read_npy_rows(dir + "/outputs/cnn/population/" + role + ".npy");
        REQUIRE(int64_t(zlogits[size_t(m)].size()) == n_pop);
    }
    auto labels_at = [&](const std::vector<int64_t>& idx) {
        std::vector<int> y;
        for (int64_t i : idx) y.push_back(pool_label(d, i));
        return y;
    };
    const std::vector<int> y = labels_at(pool), yz = labels_at(pop);
    // (a) attack/rmia.h on the saved logits.
    auto lib_p = [&](const std::vector<std::vector<std::vector<double>>>& lg, const std::vector<int>& lab) {
        Matrix p(M, int64_t(lab.size()));
        for (int m = 0; m < M; m++)
            for (size_t j = 0; j < lab.size(); j++) {
                std::vector<float> z(lg[size_t(m)][j].begin(), lg[size_t(m)][j].end());
                p.at(m, int64_t(j)) = std::max(true_class_confidence(z.data(), k, lab[j]), 1e-300);
            }
        return p;
    };
    const Matrix p = lib_p(logits, y), pz = lib_p(zlogits, yz);
    const std::vector<int> mz(size_t(M * n_pop), 0);
    // (b) the paper's definition, with p from our own softmax.
    auto ref_p = [](const std::vector<double>& z, int label) { return std::exp(ref_log_p(z, label)); };
    int compared = 0;
    for (int t = 0; t < M; t++) {
        const std::string role = "model" + std::to_string(t);
        INFO(role);
        const json& a = r["models"]["cnn"]["targets"][size_t(t)]["attacks"];
        const ScoreTable tab = read_scores(dir + "/scores/cnn_" + role + ".csv");
        REQUIRE(int64_t(tab.pool.size()) == n);
        const double a_used = a["rmia_offline"]["rmia_a"].get<double>();
        CHECK(a_used == rmia_tune_offline_a(p, membership, pz, mz, t, gamma));
        CHECK(a["rmia_offline"]["rmia_gamma"].get<double>() == gamma);
        CHECK(a["rmia_online"]["rmia_population"].get<int64_t>() == n_pop);
        for (bool online : {false, true}) {
            const std::string name = online ? "rmia_online" : "rmia_offline";
            RmiaOptions o;
            o.online = online, o.a = a_used, o.gamma = gamma;
            const LiraScores lib = rmia_scores(p, membership, pz, mz, t, o);
            // Pr over the references: online all of them, offline the OUT ones, corrected by a.
            auto pr = [&](const std::vector<double>& ps, const std::vector<int>& in) -> double {
                double s = 0;
                int c = 0;
                for (size_t i = 0; i < ps.size(); i++)
                    if (online || !in[i]) s += ps[i], c++;
                if (c == 0) return NAN;
                return online ? s / c : 0.5 * ((1 + a_used) * s / c + (1 - a_used));
            };
            std::vector<double> ratio_z;
            for (int64_t i = 0; i < n_pop; i++) {
                std::vector<double> ps;
                for (int m = 0; m < M; m++)
                    if (m != t) ps.push_back(ref_p(zlogits[size_t(m)][size_t(i)], yz[size_t(i)]));
                ratio_z.push_back(ref_p(zlogits[size_t(t)][size_t(i)], yz[size_t(i)]) /
                                  pr(ps, std::vector<int>(ps.size(), 0)));
            }
            for (int64_t j = 0; j < n; j++) {
                const double got = tab.col.at(name)[size_t(j)];
                INFO(name << " example " << j);
                CHECK(((std::isnan(got) && std::isnan(lib.score[size_t(j)])) || got == lib.score[size_t(j)]));
                std::vector<double> ps;
                std::vector<int> in;
                for (int m = 0; m < M; m++)
                    if (m != t) {
                        ps.push_back(ref_p(logits[size_t(m)][size_t(j)], y[size_t(j)]));
                        in.push_back(membership[size_t(m * n + j)]);
                    }
                const double prx = pr(ps, in);
                CHECK(std::isnan(got) == std::isnan(prx));  // offline: no OUT reference
                if (std::isnan(prx)) continue;
                const double rx = ref_p(logits[size_t(t)][size_t(j)], y[size_t(j)]) / prx;
                int64_t count = 0, near = 0;
                for (double rz : ratio_z) {
                    const double lr = rx / rz;
                    count += lr >= gamma;
                    near += std::fabs(lr / gamma - 1) < 1e-9;  // a tie within rounding may fall either way
                }
                CHECK(std::fabs(got - double(count) / double(n_pop)) <= double(near) / double(n_pop) + 1e-15);
                compared++;
            }
        }
    }
    CHECK(compared > 4 * 60);  // online scores every example, offline most
}

// Ctrl-C (SIGINT) while a model trains: the open "[1/6] mamba target0: "
// log line is ended, one line on stderr says how to go on, the process ends
// by the signal (status 130 in a shell), and the same command then finishes.
TEST_CASE("bin/attack interrupted by SIGINT ends its log line, says how to resume, and resumes") {
    TempDir tmp("mmia_attack_sigint");
    const std::string bin = cli_env_or("ATTACK_BIN", "bin/attack");
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "no executable " << bin << " (make bin/attack)");
    const std::string dir = tmp.file("run");
    // ds 60: 40 epochs of 60 examples outlast the 300 ms wait below, and the resumed run stays short.
    const std::vector<std::string> args{bin,   "--model", "cnn", "--ds",     "60", "--shadow", "1", "--targets",
                                        "1",   "--epochs", "40",  "--threads", "1", "--run-dir", dir};
    pid_t pid = cli_spawn(args, tmp.file("int.log"));
    const auto start = std::chrono::steady_clock::now();
    while (cli_read_text(tmp.file("int.log")).find("target0: ") == std::string::npos &&
           std::chrono::steady_clock::now() - start < std::chrono::seconds(120))
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // inside the 40-epoch training
    kill(pid, SIGINT);
    CHECK(cli_wait(pid, 60) == -SIGINT);
    const std::string out = cli_read_text(tmp.file("int.log")), err = cli_read_text(tmp.file("int.log.err"));
    REQUIRE(out.find("target0: ") != std::string::npos);
    CHECK(out.back() == '\n');  // the open line was ended
    CHECK(err.find("interrupted: finished models are kept; run the same command to resume\n") != std::string::npos);
    // The same command resumes the interrupted training (from its last epoch's checkpoint, when one was
    // written) and finishes.
    CliRun again = cli_run_argv(args, tmp.file("again.log"), 300);
    REQUIRE_MESSAGE(again.code == 0, again.err);
    CHECK(std::regex_search(again.out, std::regex("\\[1/2\\] cnn target0: (resumed after epoch [0-9]+, )?trained in")));
}

// bin/attack killed with SIGKILL at random points and started again each time
// ends with the same metrics and per-example scores as an uninterrupted run,
// and whatever a killed run leaves is either absent or complete.
TEST_CASE("bin/attack killed with SIGKILL at random points resumes to the uninterrupted result") {
    TempDir tmp("mmia_attack_kill");
    const std::string bin = cli_env_or("ATTACK_BIN", "bin/attack");
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "no executable " << bin << " (make bin/attack)");
    auto args = [&](const std::string& run_dir) {
        return std::vector<std::string>{bin, "--model", "both", "--ds", "200", "--shadow", "2", "--targets", "1",
                                        "--epochs", "2", "--threads", "2", "--run-dir", run_dir};
    };
    // metrics.json without what legitimately differs between the runs.
    auto metrics = [](const std::string& dir) {
        json m = json::parse(cli_read_text(dir + "/metrics.json"));
        m.erase("seconds"), m.erase("trained_now"), m.erase("cached");
        return m;
    };
    const std::string ref = tmp.file("ref");
    const auto t0 = std::chrono::steady_clock::now();
    CliRun r = cli_run_argv(args(ref), tmp.file("ref.log"), 600);
    const double whole = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE_MESSAGE(r.code == 0, r.err);

    const std::string dir = tmp.file("killed");
    // Finished models (a checkpoint with its "final" record) in the run directory.
    auto finished_models = [&]() {
        int done = 0;
        for (const char* kind : {"mamba", "cnn"})
            for (const char* role : {"target0", "shadow0", "shadow1"}) {
                const std::string pt = dir + "/models/" + kind + "/" + role + ".pt";
                if (fs::exists(pt) && read_checkpoint_meta(pt).contains("final")) done++;
            }
        return done;
    };
    // True once the child has exited (the exit status is left for cli_wait).
    auto exited = [](pid_t pid) {
        siginfo_t info{};
        return waitid(P_PID, pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
    };
    // The first kills wait for the resumed run to finish one more model and
    // land at once, while the next model trains: a fixed fraction of the
    // uninterrupted run's time did not, when loading and the attacks took
    // most of it (CI failed on a quiet machine with one kill in training).
    // Later kills come after seeded delays (a failure replays) and land
    // anywhere, writing results included.
    std::mt19937 g(20261130);
    std::uniform_real_distribution<double> when(0.05, 0.6);
    int kills = 0, kills_in_training = 0;
    std::string log;
    for (int attempt = 0; attempt < 12 && (kills < 4 || kills_in_training < 2); attempt++) {
        const bool in_training = attempt < 2;
        const double delay = when(g) * whole;
        const int before = finished_models();
        const auto start = std::chrono::steady_clock::now();
        pid_t pid = cli_spawn(args(dir), tmp.file("killed.log"));
        if (in_training)
            while (!exited(pid) && finished_models() == before &&
                   std::chrono::steady_clock::now() - start < std::chrono::duration<double>(2 * whole + 30))
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
        else
            std::this_thread::sleep_for(std::chrono::duration<double>(delay));
        kill(pid, SIGKILL);
        const double at = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const int code = cli_wait(pid, 600);
        const int done = finished_models();
        log += (log.empty() ? "" : ", ") + std::to_string(at).substr(0, 4) + "s" +
               (code == -SIGKILL ? " (" + std::to_string(done) + "/6 models)" : " (finished)");
        if (code == -SIGKILL) {
            kills++;
            kills_in_training += done < 6;
        } else {
            REQUIRE_MESSAGE(code == 0, cli_read_text(tmp.file("killed.log.err")));
            // A finished run: start again from nothing, so later kills meet training again.
            fs::remove_all(dir);
        }
        // Nothing a kill leaves under a result's name is half-written (a
        // temp file beside it may be; it is never read).
        for (const char* f : {"/metrics.json", "/attack_config.json", "/splits.json"})
            if (fs::exists(dir + f)) CHECK(!json::parse(cli_read_text(dir + f), nullptr, false).is_discarded());
    }
    CliRun fin = cli_run_argv(args(dir), tmp.file("final.log"), 600);  // resumes whatever is left; trains nothing if done
    REQUIRE_MESSAGE(fin.code == 0, fin.err);
    MESSAGE("uninterrupted run " << whole << " s; killed at " << log << "; " << kills << " kills");
    CHECK(kills >= 3);
    CHECK(kills_in_training >= 2);  // killed before every model existed, not only while writing results
    CHECK(metrics(dir) == metrics(ref));
    for (const char* f : {"scores/mamba_target0.csv", "scores/cnn_target0.csv", "outputs/mamba/shadow1.npy",
                          "outputs/cnn/target0.npy"}) {
        INFO(f);
        CHECK(cli_read_text(dir + "/" + f) == cli_read_text(ref + "/" + f));
    }
}

TEST_CASE("bin/attack: bad flags and impossible configurations get one error line") {
    TempDir tmp("mmia_attack_cli");
    const std::string bin = cli_env_or("ATTACK_BIN", "bin/attack");
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "no executable " << bin << " (make bin/attack)");
    struct Case {
        const char* args;
        int code;
        const char* line;  // the whole of stderr
    };
    const Case cases[] = {
        {"--protocol foo", 2, "error: --protocol: foo not in {shokri,lira} (see --help)"},
        {"--model rnn", 2, "error: --model: rnn not in {mamba,cnn,both} (see --help)"},
        {"--dataset svhn", 2, "error: --dataset: svhn not in {mnist,fashion,cifar10} (see --help)"},
        {"--shadow 0", 2, "error: --shadow: '0' is not an integer in [1, 1000] (see --help)"},
        {"--targets 0", 2, "error: --targets: '0' is not an integer in [1, 100] (see --help)"},
        {"--ds 5", 2, "error: --ds: '5' is not an integer in [10, 1073741824] (see --help)"},
        {"--ds 1e3", 2, "error: --ds: '1e3' is not an integer in [10, 1073741824] (see --help)"},
        {"--epochs 2.5", 2, "error: --epochs: '2.5' is not an integer in [0, 100000] (see --help)"},
        {"--threads 0x10", 2, "error: --threads: '0x10' is not an integer in [1, 1024] (see --help)"},
        {"--protocol lira --rmia-gamma 0", 2, "error: --rmia-gamma: '0' is not a gamma in (0, 1000000] (see --help)"},
        {"--protocol lira --rmia-gamma nan", 2,
         "error: --rmia-gamma: 'nan' is not a gamma in (0, 1000000] (see --help)"},
        {"--protocol lira --rmia-population 0", 2,
         "error: --rmia-population: '0' is not an integer in [1, 1073741824] (see --help)"},
        {"--rmia-gamma 2", 2,
         "error: --rmia-gamma: lira protocol only (RMIA needs reference models trained with and without each "
         "example) (see --help)"},
        {"--protocol shokri --rmia-population 100", 2,
         "error: --rmia-population: lira protocol only (RMIA needs reference models trained with and without each "
         "example) (see --help)"},
        {"--bogus", 2, "error: The following argument was not expected: --bogus (see --help)"},
        {"--ds 40000", 1,
         "error: --ds 40000 is too large: 3 target(s) and the shadows need 320000 examples, the dataset has 70000"},
        {"--protocol lira --shadow 1", 1, "error: lira needs at least 2 reference models (--shadow 2)"},
        {"--model both --preset shokri", 2,
         "error: --preset needs one --model; use --mamba-preset/--cnn-preset (see --help)"},
        {"--model cnn --preset mamba-mnist", 1, "error: preset \"mamba-mnist\" is a \"mamba\" model, not \"cnn\""},
        {"--config /nonexistent.json", 1,
         "error: /nonexistent.json: cannot open (run from the project root, or pass --config)"},
        // Flags that would do nothing in a mode are refused there (docs/ATTACKS.md, "Flags").
        {"--protocol lira --targets 2", 2,
         "error: --targets: shokri protocol only (lira makes every model the target in turn) (see --help)"},
        {"--protocol lira --targets 3", 2,
         "error: --targets: shokri protocol only (lira makes every model the target in turn) (see --help)"},
        {"--model cnn --mamba-preset mamba-mnist", 2,
         "error: --mamba-preset: no Mamba model with --model cnn (see --help)"},
        {"--model mamba --cnn-preset shokri", 2, "error: --cnn-preset: no CNN model with --model mamba (see --help)"},
        {"--model cnn --preset shokri --cnn-preset shokri", 2,
         "error: --preset: give it or --mamba-preset/--cnn-preset, not both (see --help)"},
    };
    for (const Case& c : cases) {
        const std::string run_dir = tmp.file("run");
        CliRun r = cli_run(bin, std::string(c.args) + " --run-dir " + cli_quote(run_dir), tmp.path.string());
        INFO("args: " << std::string(c.args) << "\nstdout: " << r.out << "\nstderr: " << r.err);
        CHECK(r.code == c.code);
        CHECK(r.err == std::string(c.line) + "\n");
        CHECK(!fs::exists(run_dir + "/metrics.json"));
    }
}

TEST_CASE("a full disk while writing: one error line, a non-zero exit, nothing complete lost, and the run resumes") {
    TempDir tmp("mmia_attack_full");
    const std::string bin = cli_env_or("ATTACK_BIN", "bin/attack");
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "no executable " << bin << " (make bin/attack)");
    const std::string mnt = tmp.file("mnt");
    fs::create_directories(mnt);
    if (!cli_small_disk_available(mnt, tmp.file("probe.log"))) return;
    auto args = [&](const std::string& run_dir) {
        return "--model cnn --ds 200 --shadow 2 --targets 1 --epochs 2 --threads 2 --run-dir " + cli_quote(run_dir);
    };
    const std::string ref = tmp.file("ref");
    CliRun r = cli_run(bin, args(ref), tmp.path.string());
    REQUIRE_MESSAGE(r.code == 0, r.err);
    uintmax_t ref_bytes = 0;
    for (const auto& e : fs::recursive_directory_iterator(ref))
        if (e.is_regular_file()) ref_bytes += e.file_size();

    // The same run on a disk with room for about half of its files: it must
    // stop at the first write that does not fit, with a clear error.
    const std::string out = tmp.file("out");
    const int kib = int(ref_bytes / 2 / 1024);
    const std::string script = cli_quote(bin) + " " + args(mnt + "/run") + " >" + cli_quote(tmp.file("full.out")) +
                               " 2>" + cli_quote(tmp.file("full.err")) + "; rc=$?; cp -a " + cli_quote(mnt + "/run") +
                               " " + cli_quote(out) + " || exit 98; exit $rc";
    CliRun full = cli_run_on_small_disk(mnt, kib, script, tmp.file("full.log"));
    const std::string err = cli_read_text(tmp.file("full.err"));
    INFO("disk of " << kib << " KiB for a run of " << ref_bytes / 1024 << " KiB; stderr: " << err << full.err);
    CHECK(full.code == 1);  // not 0, not a crash (134 = abort)
    // One line naming a file of the run on the full disk, ending in the
    // system's reason. Which file meets the full disk depends on the sizes,
    // so the line is checked around its path: docs/BAD_INPUT.md's row.
    const std::string head = "error: " + mnt + "/run/", tail = ": No space left on device\n";
    REQUIRE(err.size() > head.size() + tail.size());
    CHECK(err.substr(0, head.size()) == head);
    CHECK(err.substr(err.size() - tail.size()) == tail);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);

    // What the full disk holds is complete: no temp file is left, every JSON
    // parses, every cached model is a complete checkpoint whose record reads.
    int checked = 0;
    for (const auto& e : fs::recursive_directory_iterator(out)) {
        if (!e.is_regular_file()) continue;
        const std::string p = e.path().string();
        INFO(p);
        CHECK(p.find(".tmp") == std::string::npos);
        if (e.path().extension() == ".json") CHECK(!json::parse(cli_read_text(p), nullptr, false).is_discarded());
        if (e.path().extension() == ".pt") {
            CHECK_NOTHROW(read_checkpoint_meta(p));
            checked++;
        }
    }
    MESSAGE("the full disk held " << checked << " cached model(s) when the run stopped: " << err);

    // With room again, the same command finishes the run, equal to the
    // uninterrupted one.
    CliRun fin = cli_run(bin, args(out), tmp.path.string());
    REQUIRE_MESSAGE(fin.code == 0, fin.err);
    auto metrics = [](const std::string& dir) {
        json m = json::parse(cli_read_text(dir + "/metrics.json"));
        m.erase("seconds"), m.erase("trained_now"), m.erase("cached");
        return m;
    };
    CHECK(metrics(out) == metrics(ref));
    CHECK(cli_read_text(out + "/scores/cnn_target0.csv") == cli_read_text(ref + "/scores/cnn_target0.csv"));
}

TEST_CASE("bin/attack: a FIFO, device, directory or file where a file or directory goes: one exact line, never a wait; stdin closed") {
    TempDir tmp("mmia_attack_special");
    const std::string bin = cli_env_or("ATTACK_BIN", "bin/attack");
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "no executable " << bin << " (make bin/attack)");
    const std::string fifo = tmp.file("x.fifo"), run = tmp.file("run"), mnist = fs::absolute("data/mnist").string();
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    const std::vector<std::string> tiny = {"--model", "cnn", "--shadow", "1", "--targets", "1", "--ds", "10", "--epochs", "1",
                                           "--threads", "1"};
    auto check_line = [&](std::vector<std::string> args, const std::string& line) {
        args.insert(args.begin(), bin);
        args.insert(args.end(), tiny.begin(), tiny.end());
        CliRun r = cli_run_argv(args, tmp.file("special.log"), 60);  // cli_wait fails the test on a hang
        INFO(args[1] << " " << args[2] << " ... stderr: " << r.err);
        CHECK(r.code == 1);
        CHECK(r.out.empty());
        CHECK(r.err == line + "\n");
        CHECK(!fs::exists(run + "/metrics.json"));
    };
    for (const std::string& bad : {fifo, std::string("/dev/zero"), tmp.path.string()})
        check_line({"--config", bad, "--run-dir", run}, "error: " + bad + ": not a regular file");
    // --data-dir: a FIFO is not a directory; a directory whose labels file is a FIFO
    check_line({"--data-dir", fifo, "--run-dir", run},
               "error: dataset mnist: files not found; looked in:\n  " + fifo +
                   ": not a directory\n  run `make setup` (it fetches MNIST into data/mnist), or pass the directory "
                   "holding the files with --data-dir");
    const std::string data = tmp.file("mnist");
    fs::create_directories(data);
    for (const char* f : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"})
        fs::create_symlink(mnist + "/" + f, data + "/" + f);
    REQUIRE(mkfifo((data + "/t10k-labels-idx1-ubyte").c_str(), 0600) == 0);
    check_line({"--data-dir", data, "--run-dir", run}, "error: " + data + "/t10k-labels-idx1-ubyte: not a regular file");
    // --run-dir: a FIFO, a device (a link to /dev/null), a plain file
    const std::string null_link = tmp.file("null_run"), plain = tmp.file("plain_run");
    fs::create_symlink("/dev/null", null_link);
    std::ofstream(plain) << "x";
    for (const std::string& bad : {fifo, null_link, plain})
        check_line({"--run-dir", bad}, "error: " + bad + ": cannot create directory (Not a directory)");
    // a run directory whose recorded configuration is a FIFO
    fs::create_directories(run);
    REQUIRE(mkfifo((run + "/attack_config.json").c_str(), 0600) == 0);
    check_line({"--run-dir", run}, "error: " + run + "/attack_config.json: not a regular file");
    // stdin closed: never read (the same refusal, reached with fd 0 closed)
    std::string cmd = cli_quote(bin) + " --run-dir " + cli_quote(run);
    for (const std::string& a : tiny) cmd += " " + a;
    CliRun r = cli_run("sh", "-c " + cli_quote(cmd + " <&-"), tmp.path.string());
    CHECK(r.code == 1);
    CHECK(r.err == "error: " + run + "/attack_config.json: not a regular file\n");
}
