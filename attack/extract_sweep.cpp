// extract_sweep.cpp: bin/extract --summarize (see extract_sweep.h). Reads
// finished runs' metrics.json, never trains; plain C++ with nlohmann-json.
#include "attack/extract_sweep.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <tuple>

#include "attack/extract.h"
#include "common/svg_lines.h"
#include "common/write_text.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace mmia {

namespace {

// v[key] of a JSON object, or a "DIR/metrics.json: no <what>" error.
const json& need(const json& v, const char* key, const std::string& file, const std::string& what) {
    if (!v.is_object() || !v.contains(key)) throw std::runtime_error(file + ": no " + what);
    return v[key];
}

// The pooled greedy row of `rows` at (group field == value, k), or null.
const json* greedy_row(const json& rows, const char* field, const json& value, int k) {
    for (const auto& r : rows)
        if (r.at(field) == value && r.at("k") == k && r.at("decoding") == "greedy") return &r;
    return nullptr;
}

// "mamba-lm-s" -> "mamba"; "transformer-lm-m" -> "transformer".
std::string arch_of(const std::string& preset) {
    const size_t p = preset.find("-lm");
    return p == std::string::npos ? preset : preset.substr(0, p);
}

// "mamba-lm-s" -> "s": the preset's size, matched across architectures.
std::string size_of(const std::string& preset) { return preset.substr(preset.rfind('-') + 1); }

// An "exposure_by_insertions" key: a count 1..1e6 in decimal.
int insertion_count(const std::string& key, const std::string& file) {
    if (key.empty() || key.size() > 7 || key.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(key) < 1 || std::stoi(key) > 1000000)
        throw std::runtime_error(file + ": exposure_by_insertions: \"" + key + "\" is not an insertion count");
    return std::stoi(key);
}

// Refuses a row whose numbers cannot come from a run: a count outside
// 0..n, a loss, AUC, exposure or rate that is not finite or out of range.
void check_row(const SweepRow& r, const std::string& file) {
    auto count_ok = [](int64_t k, int64_t n) { return n >= 0 && k >= 0 && k <= n; };
    auto finite = [](std::initializer_list<double> v) {
        return std::all_of(v.begin(), v.end(), [](double x) { return std::isfinite(x); });
    };
    const char* bad =
        r.k_max <= 0                                              ? "no positive prefix length"
        : !count_ok(r.train_mem, r.train_n) || !count_ok(r.heldout_mem, r.heldout_n) ||
                !count_ok(r.top_copies_mem, r.top_copies_n) || (r.control_mem >= 0 && !count_ok(r.control_mem, r.control_n)) ||
                !count_ok(r.train_fuzzy, r.train_n) ||
                (r.untargeted_hits >= 0 && (!count_ok(r.untargeted_hits, r.untargeted_top) ||
                                            !count_ok(r.untargeted_random, r.untargeted_top)))
            ? "a memorized count outside 0..n"
        : !finite({r.loss_mean, r.loss_min, r.loss_max, r.top_exposure, r.auc_mean, r.auc_min, r.auc_max, r.loss_tpr1})
            ? "a value that is not a finite number"
        : r.auc_min < 0 || r.auc_max > 1 || r.loss_min < 0 || r.top_exposure < 0
            ? "an AUC, TPR, loss or exposure out of range"
            : nullptr;
    auto ordered = [](double lo, double mid, double hi) { return lo <= mid + 1e-12 && mid <= hi + 1e-12; };
    if (!bad && (!ordered(r.loss_min, r.loss_mean, r.loss_max) || !ordered(r.auc_min, r.auc_mean, r.auc_max)))
        bad = "a spread over seeds whose min, mean and max are out of order";
    if (!bad && (r.loss_tpr1 < 0 ? r.loss_tpr1 != -1 : r.loss_tpr1 > 1)) bad = "a TPR out of range";
    if (!bad && r.best_attack.empty() && r.auc_max > 0) bad = "a best MIA AUC without the attacks' AUCs";
    for (const auto& [c, rate] : r.copies_rate)
        if (c < 1 || !(rate >= 0 && rate <= 1)) bad = "a repeated-documents row out of range";
    for (const auto& [i, e] : r.exposure)
        if (!std::isfinite(e) || e < 0) bad = "an exposure that is not a finite number of bits";
    if (bad) throw std::runtime_error(file + ": " + r.model + ": " + bad);
}

// One model's row from the run's metrics.json (res) and its pooled record.
SweepRow row_of(const json& res, const std::string& name, const std::string& run, const std::string& file) {
    const json& pooled = need(need(res, "pooled", file, "\"pooled\" (not a training run of bin/extract)"), name.c_str(),
                              file, "pooled record of " + name);
    const json& seeds = need(res, "seeds", file, "\"seeds\"");
    if (seeds.empty()) throw std::runtime_error(file + ": no seeds");
    const json& first = need(need(seeds.begin().value(), "models", file, "models"), name.c_str(), file,
                             "model " + name + " in a seed");
    SweepRow r;
    r.run = run;
    r.corpus = res.at("corpus").value("name", "?");
    r.corpus_sha256 = res.at("corpus").value("sha256", "");
    r.model = name;
    r.arch = arch_of(name);
    r.params = first.value("non_embedding_parameters", int64_t(0));
    r.epochs = first.value("epochs", 0);
    r.seeds = int(seeds.size());
    for (const auto& k : need(res.at("config"), "prefix_lengths", file, "config.prefix_lengths"))
        r.k_max = std::max(r.k_max, k.get<int>());
    const json& hl = need(pooled, "heldout_loss", file, "heldout_loss of " + name);
    r.loss_mean = hl.at("mean").get<double>();
    r.loss_min = hl.at("min").get<double>();
    r.loss_max = hl.at("max").get<double>();
    for (const char* split : {"train", "heldout"})
        if (const json* row = greedy_row(need(pooled, "prefix", file, "prefix rows"), "split", split, r.k_max)) {
            (split[0] == 't' ? r.train_mem : r.heldout_mem) = (*row).at("memorized").get<int64_t>();
            (split[0] == 't' ? r.train_n : r.heldout_n) = (*row).at("n").get<int64_t>();
            if (split[0] == 't') r.train_fuzzy = (*row).at("bleu_fuzzy").get<int64_t>();
        }
    // Per seed, summed: the --control model (trained on held-out text only;
    // greedy, training split), and untargeted extraction (top-k 40 samples
    // ranked by perplexity).
    for (const auto& [sk, sj] : seeds.items()) {
        const json& m = sj.at("models").at(name);
        if (m.contains("control"))
            if (const json* row = greedy_row(m.at("control").at("prefix"), "split", "train", r.k_max)) {
                r.control_mem = std::max<int64_t>(r.control_mem, 0) + (*row).at("memorized").get<int64_t>();
                r.control_n += (*row).at("n").get<int64_t>();
            }
        if (!m.contains("untargeted") || !m.at("untargeted").contains("top-k40")) continue;
        const json& u = m.at("untargeted").at("top-k40");
        r.untargeted_hits = std::max<int64_t>(r.untargeted_hits, 0) +
                            u.at("rankings").at("perplexity").at("verbatim_in_top").get<int64_t>();
        r.untargeted_top += u.at("top").get<int64_t>();
        r.untargeted_random += u.at("random_baseline").at("verbatim_in_top").get<int64_t>();
    }
    if (pooled.contains("prefix_by_copies"))
        for (const auto& row : pooled.at("prefix_by_copies"))
            if (row.at("decoding") == "greedy" && row.at("k") == r.k_max) {
                const int c = row.at("copies").get<int>();
                r.copies_rate.push_back({c, row.at("memorized_rate").get<double>()});
                if (c > r.top_copies) {
                    r.top_copies = c;
                    r.top_copies_mem = row.at("memorized").get<int64_t>();
                    r.top_copies_n = row.at("n").get<int64_t>();
                }
            }
    std::sort(r.copies_rate.begin(), r.copies_rate.end());
    const json expo = pooled.value("exposure_by_insertions", json::object());
    for (const auto& [ins, v] : expo.items())
        r.exposure.push_back({insertion_count(ins, file), v.at("mean_exposure").at("mean").get<double>()});
    std::sort(r.exposure.begin(), r.exposure.end());
    if (!r.exposure.empty()) std::tie(r.top_insertions, r.top_exposure) = r.exposure.back();
    if (res.at("config").contains("candidates"))
        r.exposure_max = std::log2(double(res.at("config").at("candidates").get<int64_t>()) + 1.0);
    if (pooled.contains("best_mia_auc") && pooled.at("best_mia_auc").is_object()) {
        r.auc_mean = pooled.at("best_mia_auc").at("mean").get<double>();
        r.auc_min = pooled.at("best_mia_auc").at("min").get<double>();
        r.auc_max = pooled.at("best_mia_auc").at("max").get<double>();
        double best = -1;
        for (const auto& [a, v] : pooled.at("mia").items())
            if (v.at("auc").at("mean").get<double>() > best) {
                best = v.at("auc").at("mean").get<double>();
                r.best_attack = a;
            }
        if (pooled.at("mia").contains("loss")) r.loss_tpr1 = pooled.at("mia").at("loss").at("tpr_at_1pct_fpr").at("mean").get<double>();
    }
    return r;
}

// Text for a Markdown table cell: '|' escaped, line breaks as spaces.
std::string md_cell(const std::string& text) {
    std::string out;
    for (char c : text) out += c == '|' ? std::string("\\|") : c == '\n' || c == '\r' ? std::string(" ") : std::string(1, c);
    return out;
}

std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

// "k/n [lo, hi]" with the Wilson 95% interval; "n/a" when n = 0.
std::string rate_cell(int64_t k, int64_t n) {
    if (n <= 0) return "n/a";
    const auto ci = wilson_interval(k, n);
    return std::to_string(k) + "/" + std::to_string(n) + " [" + fmt("%.3f", ci.first) + ", " + fmt("%.3f", ci.second) +
           "]";
}

std::string spread_cell(double mean, double lo, double hi, int seeds, const char* f) {
    std::string s = fmt(f, mean);
    if (seeds > 1) s += " [" + fmt(f, lo) + ", " + fmt(f, hi) + "]";
    return s;
}

// The sentence for one Mamba/transformer pair of a run.
std::string pair_line(const SweepRow& m, const SweepRow& t) {
    const bool m_fits = m.loss_mean < t.loss_mean;
    // run | pair | held-out loss difference | ... | better fit
    auto row = [&](const std::string& auc_diff, const std::string& rest) {
        return "| " + md_cell(m.run) + " | " + md_cell(m.model) + " vs " + md_cell(t.model) + " | " +
               fmt("%+.3f", m.loss_mean - t.loss_mean) + " | " + auc_diff + " | " +
               md_cell(m_fits ? m.model : t.model) + " | " + rest + " |\n";
    };
    if (m.best_attack.empty() || t.best_attack.empty())  // a run whose MIA was skipped (no non-member)
        return row("n/a", "n/a | n/a | no membership inference in this run");
    const bool m_leaks = m.auc_mean > t.auc_mean;
    const bool overlap = m.seeds > 1 && !(m.auc_min > t.auc_max || t.auc_min > m.auc_max);
    return row(fmt("%+.3f", m.auc_mean - t.auc_mean),
               md_cell(m_leaks ? m.model : t.model) + " | " +
                   (m.seeds < 2 ? "one seed" : overlap ? "ranges overlap" : "no overlap in " + std::to_string(m.seeds) + " seeds") +
                   " | " +
                   (m_fits == m_leaks ? "the better fit leaks more: fit and architecture not separated"
                                      : "the worse fit leaks more: not explained by fit"));
}

// Series named "<arch> <condition>": one colour per condition, so a Mamba
// and a transformer of one run or setting share it and differ in style
// (solid / dashed, filled / hollow dots). With a single condition the
// colours stay by position (the Mamba blue, the transformer red).
void colour_by_condition(std::vector<LineSeries>& series) {
    std::set<std::string> conditions;
    auto condition_of = [](const std::string& name) {
        const size_t sp = name.find(' ');
        return sp == std::string::npos ? std::string() : name.substr(sp + 1);
    };
    for (const auto& s : series) conditions.insert(condition_of(s.name));
    if (conditions.size() < 2) return;
    for (auto& s : series)
        s.colour = int(std::distance(conditions.begin(), conditions.find(condition_of(s.name))));
}

// One plot over rows: the best MIA AUC (whiskers: the seeds' range; the
// axis from 0.5, chance) against x, a series per key (rows sorted by x); ""
// when x takes fewer than two values. names: categorical x labels.
std::string auc_plot(const std::vector<SweepRow>& rows, const std::function<double(const SweepRow&)>& x,
                      const std::function<std::string(const SweepRow&)>& key, const std::string& title,
                      const std::string& xlabel, const std::string& ylabel, bool logx, bool points_only,
                      const std::vector<std::string>& names = {}) {
    // per series: (x, y, seeds' min, seeds' max)
    std::map<std::string, std::vector<std::array<double, 4>>> by;
    std::set<double> xs;
    for (const auto& r : rows) {
        by[key(r)].push_back({x(r), r.auc_mean, r.auc_min, r.auc_max});
        xs.insert(x(r));
    }
    if (xs.size() < 2) return "";
    std::vector<LineSeries> series;
    for (auto& [k, pts] : by) {
        std::sort(pts.begin(), pts.end());
        LineSeries s{k, {}, {}, k.rfind("transformer", 0) == 0};
        s.points_only = points_only;
        for (const auto& p : pts) {
            s.x.push_back(p[0]);
            s.y.push_back(p[1]);
            s.y_lo.push_back(p[2]);
            s.y_hi.push_back(p[3]);
        }
        series.push_back(s);
    }
    colour_by_condition(series);
    return svg_lines(series, title, xlabel, ylabel, logx, names, 0.5);
}

// What varies across the rows besides the plotted axis, as a series label.
std::string condition(const SweepRow& r, bool corpus, bool size, bool epochs) {
    std::string s = r.arch;
    if (size) s += " " + size_of(r.model);
    if (corpus) s += " " + r.corpus;
    if (epochs) s += " e" + std::to_string(r.epochs);
    return s;
}

}  // namespace

namespace {
// The rows of a parsed metrics.json (res); json errors become "FILE: ...".
std::vector<SweepRow> rows_of_json(const json& res, const std::string& run, const std::string& file) {
    try {
        std::vector<SweepRow> rows;
        const json& presets = need(need(res, "config", file, "config"), "presets", file, "config.presets");
        if (!presets.is_array() || presets.empty()) throw std::runtime_error(file + ": config.presets is not a list of presets");
        for (const auto& p : presets) {
            rows.push_back(row_of(res, p.get<std::string>(), run, file));
            check_row(rows.back(), file);
        }
        return rows;
    } catch (const json::exception& e) {
        throw std::runtime_error(file + ": " + e.what());
    }
}
}  // namespace

std::vector<SweepRow> sweep_rows_of(const std::string& text, const std::string& run, const std::string& file) {
    return sweep_rows_of_runs({{text, run, file}});  // one run: nothing to pool
}

namespace {
// A run's name: its directory's last component.
std::string sweep_rows_name(const std::string& run_dir) {
    fs::path p = fs::path(run_dir).lexically_normal();
    if (p.filename().empty()) p = p.parent_path();  // "runs/x/" names run "x"
    return p.filename().string();
}

// RUN_DIR/metrics.json's text, or the error saying why there is none.
std::string read_metrics(const std::string& run_dir) {
    std::error_code ec;
    if (!fs::exists(run_dir, ec)) throw std::runtime_error(run_dir + ": no such directory");
    if (!fs::is_directory(run_dir, ec)) throw std::runtime_error(run_dir + ": not a directory (give a bin/extract run directory)");
    const std::string file = (fs::path(run_dir) / "metrics.json").string();
    if (!fs::exists(file, ec)) throw std::runtime_error(file + ": no such file (not a finished bin/extract run)");
    if (!fs::is_regular_file(file, ec)) throw std::runtime_error(file + ": not a regular file");
    std::ifstream f(file, std::ios::binary);
    if (!f) throw std::runtime_error(file + ": cannot read");
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}
}  // namespace

std::vector<SweepRow> sweep_rows(const std::string& run_dir) {
    return sweep_rows_of(read_metrics(run_dir), sweep_rows_name(run_dir), (fs::path(run_dir) / "metrics.json").string());
}

std::string sweep_markdown(const std::vector<SweepRow>& rows, const std::vector<std::string>& run_dirs,
                           const std::vector<std::string>& plots) {
    std::ostringstream o;
    o << "# Extraction sweep: Mamba against transformer\n\n"
      << run_dirs.size() << " run(s) of bin/extract, summarized by `bin/extract --summarize`:";
    for (const auto& d : run_dirs) o << " `" << d << "`";
    o << ". Rates: greedy decoding at each run's longest prefix k, counts summed over its seeds, Wilson 95% "
         "intervals; `[min, max]`: the spread over seeds. Fuzzy: the same greedy continuations whose BLEU-4 (method 1, "
         "first 100 characters) against the true suffix is above 0.75 but below 1 (exact matches not counted). Untargeted: of each seed's top-k 40 samples, "
         "the top ones by perplexity with 50 consecutive bytes (tokens) found verbatim in the training stream, against as many drawn at "
         "random. Runs of one configuration that differ only in their seeds (none in common) are pooled into one row named by "
         "their common start and the rest of each in braces (runs-{seed42,seed1}), as one run with all their seeds. Exposure is at most log2(candidates + 1) bits (10.97 for "
         "2,000 candidates): \"the maximum\" means every candidate ranked below the canary. Definitions: "
         "docs/EXTRACTION.md.\n\n"
      << "| run | corpus | model | non-embedding params | epochs | seeds | held-out loss (nats/byte) | train, greedy, "
         "k max | train, fuzzy (0.75 < BLEU < 1) | held-out, greedy | untargeted, top-k 40: verbatim in top by perplexity "
         "(random choice) | control model, train | repeated docs, most copies | exposure, most insertions "
         "(bits) | best MIA AUC (attack) | loss-attack TPR at 1% FPR |\n"
      << "|---|---|---|---:|---:|---:|---|---|---|---|---|---|---|---|---|---:|\n";
    for (const auto& r : rows) {
        o << "| " << md_cell(r.run) << " | " << md_cell(r.corpus) << " | " << md_cell(r.model) << " | " << r.params << " | " << r.epochs << " | "
          << r.seeds << " | " << spread_cell(r.loss_mean, r.loss_min, r.loss_max, r.seeds, "%.3f") << " | "
          << rate_cell(r.train_mem, r.train_n) << " (k=" << r.k_max << ") | " << rate_cell(r.train_fuzzy, r.train_n)
          << " | " << rate_cell(r.heldout_mem, r.heldout_n) << " | "
          << (r.untargeted_hits < 0 ? "n/a"
                                    : rate_cell(r.untargeted_hits, r.untargeted_top) + " (random " +
                                          std::to_string(r.untargeted_random) + ")")
          << " | " << (r.control_mem < 0 ? "n/a" : rate_cell(r.control_mem, r.control_n)) << " | "
          << (r.top_copies ? "x" + std::to_string(r.top_copies) + ": " + rate_cell(r.top_copies_mem, r.top_copies_n)
                           : "n/a")
          << " | "
          << (r.top_insertions ? fmt("%.2f", r.top_exposure) + " (x" + std::to_string(r.top_insertions) +
                                     (r.exposure_max > 0 && r.top_exposure >= r.exposure_max - 1e-9 ? ", the maximum" : "") + ")"
                               : "n/a")
          << " | " << (r.best_attack.empty() ? "n/a" : spread_cell(r.auc_mean, r.auc_min, r.auc_max, r.seeds, "%.3f") +
                                                          " (" + r.best_attack + ")")
          << " | " << (r.loss_tpr1 < 0 ? "n/a" : fmt("%.3f", r.loss_tpr1)) << " |\n";
    }
    o << "\n## Which fits better, which leaks more\n\nPer run, each Mamba against each transformer: the differences "
         "(Mamba minus transformer) of held-out loss and best MIA AUC. A model that fits better is expected to leak "
         "more, so a run where the better fit leaks more does not separate architecture from fit.\n\n"
      << "| run | pair | held-out loss difference | best AUC difference | better fit | leaks more (AUC) | seeds' AUC "
         "ranges | reading |\n|---|---|---:|---:|---|---|---|---|\n";
    size_t pairs = 0;
    for (const auto& m : rows)
        for (const auto& t : rows)
            if (m.run == t.run && m.arch == "mamba" && t.arch == "transformer") {
                o << pair_line(m, t);
                pairs++;
            }
    if (!pairs) o << "| (no run has both a Mamba and a transformer) | | | | | | | |\n";
    if (!plots.empty()) o << "\n## Plots\n\n";
    for (const auto& p : plots) o << "![" << p << "](plots/" << p << ")\n\n";
    return o.str();
}

namespace {

// A run's configuration but its seeds: metrics.json's config without
// "seeds", "threads" and training.<preset>.seed, and the corpus's name and
// checksum. Runs with one key differ only in their seeds.
std::string config_key(const json& res) {
    json c = res.value("config", json::object());
    c.erase("seeds");
    c.erase("threads");
    if (c.contains("training") && c["training"].is_object())
        for (auto& [preset, t] : c["training"].items())
            if (t.is_object()) t.erase("seed");
    return c.dump() + "|" + res.value("corpus", json::object()).dump();
}

// The name of pooled runs: their names' common start up to its last '-',
// '_', '.' or '/', then the rest of each in braces, as a shell would expand
// it ("x-e12-seed42", "x-e12-seed1" -> "x-e12-{seed42,seed1}"); with no such
// start, the names joined by " + ".
std::string pooled_name(const std::vector<std::string>& names) {
    size_t common = names[0].size();
    for (const auto& n : names) {
        size_t i = 0;
        while (i < common && i < n.size() && n[i] == names[0][i]) i++;
        common = i;
    }
    while (common > 0 && std::string("-_./").find(names[0][common - 1]) == std::string::npos) common--;
    std::string out;
    if (common == 0) {
        for (const auto& n : names) out += (out.empty() ? "" : " + ") + n;
        return out;
    }
    out = names[0].substr(0, common) + "{";
    for (size_t j = 0; j < names.size(); j++) out += (j ? "," : "") + names[j].substr(common);
    return out + "}";
}

// The seeds of a run's metrics.json (the keys of "seeds"), or none.
std::set<std::string> seeds_of(const json& res) {
    std::set<std::string> out;
    if (res.contains("seeds") && res["seeds"].is_object())
        for (const auto& [k, v] : res["seeds"].items()) out.insert(k);
    return out;
}

}  // namespace

std::vector<SweepRow> sweep_rows_of_runs(const std::vector<SweepRunText>& texts, std::vector<size_t>* source) {
    struct Run {
        std::string name, file;
        json res;
    };
    std::vector<Run> runs;
    for (const auto& t : texts) {
        Run r{t.name, t.file, json()};
        try {
            r.res = json::parse(t.text);
        } catch (const json::exception& e) {
            throw std::runtime_error(t.file + ": " + e.what());
        }
        rows_of_json(r.res, r.name, r.file);  // each run's own errors first, named by its file
        runs.push_back(std::move(r));
    }
    // Group by configuration; pool a group whose seeds are disjoint.
    std::map<std::string, std::vector<size_t>> groups;
    for (size_t i = 0; i < runs.size(); i++) groups[config_key(runs[i].res)].push_back(i);
    std::vector<bool> absorbed(runs.size(), false);
    for (const auto& [key, members] : groups) {
        if (members.size() < 2) continue;
        std::set<std::string> all;
        size_t total = 0;
        bool seedless = false;
        for (size_t i : members) {
            const auto s = seeds_of(runs[i].res);
            all.insert(s.begin(), s.end());
            total += s.size();
            seedless = seedless || s.empty();
        }
        if (seedless || all.size() != total) continue;  // a seed run twice: reruns, kept apart
        // Each run's own records first, so an error names the run that has
        // a seed record pool_seeds cannot read.
        std::vector<std::string> presets;
        for (const auto& p : runs[members[0]].res.at("config").at("presets")) presets.push_back(p.get<std::string>());
        for (size_t i : members) try {
                (void)pool_seeds(runs[i].res.at("seeds"), presets);
            } catch (const std::exception& e) {
                throw std::runtime_error(runs[i].file + ": a seed record that cannot be pooled with the other runs of its "
                                                        "configuration: " + e.what());
            }
        Run& head = runs[members[0]];
        json seeds = json::object();
        std::vector<std::string> names;
        std::string file = head.file;
        for (size_t j = 0; j < members.size(); j++) {
            const Run& r = runs[members[j]];
            for (const auto& [k, v] : r.res.at("seeds").items()) seeds[k] = v;
            names.push_back(r.name);
            if (j) {
                file += " + " + r.file;
                absorbed[members[j]] = true;
            }
        }
        const std::string name = pooled_name(names);
        try {
            head.res["pooled"] = pool_seeds(seeds, presets);
        } catch (const std::exception& e) {
            throw std::runtime_error(file + ": pooling their seeds: " + e.what());
        }
        head.res["seeds"] = seeds;
        head.name = name;
        head.file = file;
    }
    std::vector<SweepRow> rows;
    if (source) source->clear();
    for (size_t i = 0; i < runs.size(); i++) {
        if (absorbed[i]) continue;
        for (auto& r : rows_of_json(runs[i].res, runs[i].name, runs[i].file)) {
            rows.push_back(std::move(r));
            if (source) source->push_back(i);
        }
    }
    return rows;
}

namespace {

// Every run's rows, in the order given, pooled by sweep_rows_of_runs;
// corpora that share a name but not a checksum get NAME@<sha256 prefix>.
std::vector<SweepRow> read_runs(const std::vector<std::string>& run_dirs) {
    if (run_dirs.empty()) throw std::runtime_error("no run directories");
    std::vector<SweepRunText> texts;
    std::set<std::string> seen;
    for (const auto& d : run_dirs) {
        fs::path canon = fs::weakly_canonical(d);
        if (canon.filename().empty()) canon = canon.parent_path();  // "run/" and "run" are one run
        if (!seen.insert(canon.string()).second) throw std::runtime_error(d + " given twice");
        texts.push_back({read_metrics(d), sweep_rows_name(d), (fs::path(d) / "metrics.json").string()});
    }
    std::vector<size_t> from;  // each row's run, as an index into run_dirs
    std::vector<SweepRow> rows = sweep_rows_of_runs(texts, &from);
    std::vector<std::string> source;  // each row's run directory, as given
    for (size_t i : from) source.push_back(run_dirs[i]);
    // Two runs of one name (runs/a/x, runs/b/x): named by their paths as given.
    std::map<std::string, std::set<std::string>> paths;
    for (size_t i = 0; i < rows.size(); i++) paths[rows[i].run].insert(source[i]);
    for (size_t i = 0; i < rows.size(); i++)
        if (paths[rows[i].run].size() > 1) rows[i].run = source[i];
    // Corpora with one name: one with repeated documents (bin/corpus
    // --repeat-docs) is NAME+rep; any still alike get their checksum's start.
    std::map<std::string, std::set<std::string>> shas;
    for (const auto& r : rows) shas[r.corpus].insert(r.corpus_sha256);
    for (auto& r : rows)
        if (shas[r.corpus].size() > 1 && r.top_copies > 0) r.corpus += "+rep";
    shas.clear();
    for (const auto& r : rows) shas[r.corpus].insert(r.corpus_sha256);
    for (auto& r : rows)
        if (shas[r.corpus].size() > 1) r.corpus += "@" + r.corpus_sha256.substr(0, 8);
    return rows;
}

// The best MIA AUC against the preset size. The matched pairs' parameter
// counts differ by a few percent, so sizes are categories on x (in order of
// size), each labelled with its smallest count: "s (98176)". vc, ve: the
// corpus and epochs vary across the runs (the series say which).
std::string auc_by_size_plot(const std::vector<SweepRow>& mia_rows, bool vc, bool ve) {
    std::map<std::string, int64_t> smallest;
    for (const auto& r : mia_rows)
        if (!smallest.count(size_of(r.model)) || r.params < smallest[size_of(r.model)])
            smallest[size_of(r.model)] = r.params;
    std::vector<std::pair<int64_t, std::string>> order;
    for (const auto& [size, n] : smallest) order.push_back({n, size});
    std::sort(order.begin(), order.end());
    std::vector<std::string> labels;
    for (const auto& [n, size] : order) labels.push_back(size + " (" + std::to_string(n) + ")");
    return auc_plot(
        mia_rows,
        [&](const SweepRow& r) {
            return double(std::find_if(order.begin(), order.end(),
                                       [&](const auto& o) { return o.second == size_of(r.model); }) -
                          order.begin());
        },
        [&](const SweepRow& r) { return condition(r, vc, false, ve); }, "best membership AUC against model size",
        "preset size (non-embedding parameters)", "best MIA AUC", false, false, labels);
}

// The plots' (file name, SVG) pairs; an empty SVG is a plot not drawn.
std::vector<std::pair<std::string, std::string>> sweep_plots(const std::vector<SweepRow>& rows) {
    std::set<std::string> corpora, sizes;
    std::set<int> epochs;
    for (const auto& r : rows) {
        corpora.insert(r.corpus);
        sizes.insert(size_of(r.model));
        epochs.insert(r.epochs);
    }
    const bool vc = corpora.size() > 1, vs = sizes.size() > 1, ve = epochs.size() > 1;
    // the AUC plots: runs with membership inference only
    std::vector<SweepRow> mia_rows;
    std::set<std::string> mia_corpora;
    for (const auto& r : rows)
        if (!r.best_attack.empty()) {
            mia_rows.push_back(r);
            mia_corpora.insert(r.corpus);
        }
    const std::vector<std::string> corpus_names(mia_corpora.begin(), mia_corpora.end());
    // Each axis is drawn when it varies across the runs (leakage against
    // fit: when the held-out losses do).
    std::vector<std::pair<std::string, std::string>> plots = {
        {"leakage_vs_fit.svg",
         auc_plot(mia_rows, [](const SweepRow& r) { return r.loss_mean; },
                   [&](const SweepRow& r) { return condition(r, false, false, false); },
                   "best membership AUC against held-out loss (every run with membership inference)", "held-out loss (nats/byte)",
                   "best MIA AUC", false, true)}};
    if (vs)
        plots.push_back({"best_auc_vs_params.svg", auc_by_size_plot(mia_rows, vc, ve)});
    if (ve)
        plots.push_back({"best_auc_vs_epochs.svg",
                         auc_plot(mia_rows, [](const SweepRow& r) { return double(r.epochs); },
                                   [&](const SweepRow& r) { return condition(r, vc, vs, false); },
                                   "best membership AUC against epochs", "epochs (log2 axis)", "best MIA AUC", true,
                                   false)});
    if (vc)
        plots.push_back(
            {"best_auc_by_corpus.svg",
             auc_plot(mia_rows,
                       [&](const SweepRow& r) {
                           return double(std::find(corpus_names.begin(), corpus_names.end(), r.corpus) -
                                         corpus_names.begin());
                       },
                       [&](const SweepRow& r) { return condition(r, false, vs, ve); },
                       "best membership AUC by corpus (data type)", "corpus", "best MIA AUC", false, true,
                       corpus_names)});
    std::vector<LineSeries> expo, copies;
    for (const auto& r : rows) {
        const std::string k = condition(r, vc, vs, ve) + (rows.size() > 2 ? " " + r.run : "");
        LineSeries e{k, {}, {}, r.arch == "transformer"}, c{k, {}, {}, r.arch == "transformer"};
        for (const auto& [x, y] : r.exposure) e.x.push_back(x), e.y.push_back(y);
        for (const auto& [x, y] : r.copies_rate) c.x.push_back(x), c.y.push_back(y);
        if (e.x.size() > 1) expo.push_back(e);
        if (c.x.size() > 1) copies.push_back(c);
    }
    colour_by_condition(expo);
    colour_by_condition(copies);
    if (!expo.empty())
        plots.push_back({"exposure_vs_insertions.svg", svg_lines(expo, "canary exposure against insertions",
                                                                  "insertions (log2 axis)", "mean exposure (bits)", true)});
    if (!copies.empty())
        plots.push_back({"extraction_vs_copies.svg",
                         svg_lines(copies, "greedy extraction of repeated documents against copies (longest k)",
                                   "copies in the training stream (log2 axis)", "rate", true)});
    // The names not drawn, with no SVG: an earlier summary's file of that name goes.
    for (const char* name : {"leakage_vs_fit.svg", "best_auc_vs_params.svg", "best_auc_vs_epochs.svg",
                             "best_auc_by_corpus.svg", "exposure_vs_insertions.svg", "extraction_vs_copies.svg"})
        if (std::none_of(plots.begin(), plots.end(), [&](const auto& p) { return p.first == name; }))
            plots.push_back({name, ""});
    return plots;
}

// sweep.csv: one line per row, the table's numbers at full precision; an
// empty cell where the run did not measure it (no --control model, no
// repeated documents, no canaries, no membership inference or loss attack).
std::string sweep_csv(const std::vector<SweepRow>& rows) {
    auto num = [](bool measured, double v) { return measured ? csv_num(v) : std::string(); };
    auto count = [](bool measured, int64_t v) { return measured ? std::to_string(v) : std::string(); };
    std::ostringstream csv;
    csv << "run,corpus,corpus_sha256,model,arch,non_embedding_parameters,epochs,seeds,k_max,heldout_loss_mean,"
           "heldout_loss_min,heldout_loss_max,train_memorized,train_n,heldout_memorized,heldout_n,control_memorized,"
           "control_n,top_copies,top_copies_memorized,top_copies_n,top_insertions,top_exposure_bits,best_auc_mean,"
           "best_auc_min,best_auc_max,best_attack,loss_tpr_at_1pct_fpr,train_fuzzy,untargeted_verbatim_in_top,"
           "untargeted_top,untargeted_random_verbatim_in_top\n";
    for (const auto& r : rows) {
        const bool control = r.control_mem >= 0, copies = r.top_copies > 0, canaries = r.top_insertions > 0,
                   mia = !r.best_attack.empty(), untargeted = r.untargeted_hits >= 0;
        csv << csv_text(r.run) << ',' << csv_text(r.corpus) << ',' << r.corpus_sha256 << ',' << r.model << ','
            << r.arch << ',' << r.params << ',' << r.epochs << ',' << r.seeds << ',' << r.k_max << ','
            << csv_num(r.loss_mean) << ',' << csv_num(r.loss_min) << ',' << csv_num(r.loss_max) << ',' << r.train_mem
            << ',' << r.train_n << ',' << r.heldout_mem << ',' << r.heldout_n << ',' << count(control, r.control_mem)
            << ',' << count(control, r.control_n) << ',' << count(copies, r.top_copies) << ','
            << count(copies, r.top_copies_mem) << ',' << count(copies, r.top_copies_n) << ','
            << count(canaries, r.top_insertions) << ',' << num(canaries, r.top_exposure) << ','
            << num(mia, r.auc_mean) << ',' << num(mia, r.auc_min) << ',' << num(mia, r.auc_max) << ','
            << r.best_attack << ',' << num(r.loss_tpr1 >= 0, r.loss_tpr1) << ',' << r.train_fuzzy << ','
            << count(untargeted, r.untargeted_hits) << ',' << count(untargeted, r.untargeted_top) << ','
            << count(untargeted, r.untargeted_random) << '\n';
    }
    return csv.str();
}

}  // namespace

std::vector<std::string> write_sweep_report(const std::vector<std::string>& run_dirs, const std::string& out_dir) {
    const std::vector<SweepRow> rows = read_runs(run_dirs);
    std::error_code ec0;
    if (fs::exists(fs::path(out_dir) / "metrics.json", ec0))
        throw std::runtime_error(out_dir + ": a bin/extract run directory (it holds metrics.json; the summary would "
                                           "replace its plots): give the summary its own --run-dir");
    std::error_code ec;
    fs::create_directories(fs::path(out_dir) / "plots", ec);
    if (ec) throw std::runtime_error(out_dir + "/plots: " + ec.message());
    std::vector<std::string> written;
    for (const auto& [name, svg] : sweep_plots(rows)) {
        const fs::path p = fs::path(out_dir) / "plots" / name;
        if (svg.empty()) {
            fs::remove(p, ec);  // an earlier summary's plot of an axis that no longer varies
            continue;
        }
        write_text_atomic(p.string(), svg);
        written.push_back(name);
    }
    write_text_atomic((fs::path(out_dir) / "sweep.csv").string(), sweep_csv(rows));
    write_text_atomic((fs::path(out_dir) / "sweep.md").string(), sweep_markdown(rows, run_dirs, written));
    return written;
}

}  // namespace mmia
