// test_extract_sweep.cpp: bin/extract --summarize (attack/extract_sweep.h).
// Two run directories are written here by hand, each metrics.json built as
// run_extract builds it (per-seed records pooled by pool_seeds), with
// numbers chosen so every cell of the table can be worked out below:
//   - the rows: counts at the longest k only, summed over seeds; the control
//     model's counts; the most-copied repeated documents; the exposure at the
//     most insertions; the best attack by mean AUC and its seed range
//   - the Markdown cells (Wilson intervals recomputed here), the pair lines
//     (which fits better, which leaks more, overlap of the seeds' ranges)
//   - which plots are drawn (an axis only when it varies) and their content
//   - runs that differ only in their seeds pooled into one row (named
//     "A + B", or x-{seed42,seed2}), with the numbers of one run of all the
//     seeds; reruns and other settings apart
//   - the errors: no metrics.json, bad JSON, a --models run, a run twice,
//     a seed record that cannot be pooled, and bin/extract's flag checks
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "attack/extract.h"
#include "attack/extract_sweep.h"
#include "tests/cli_check.h"
#include "tests/temp_dir.h"

using namespace mmia;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// One pooled prefix row of a seed's model record.
json prefix_row(const char* split, int k, const char* decoding, int64_t mem, int64_t n, int64_t fuzzy = 0) {
    return {{"split", split}, {"k", k}, {"decoding", decoding}, {"n", n}, {"memorized", mem},
            {"bleu_exact", 0},   {"bleu_fuzzy", fuzzy}};
}

// A seed's record of one model: loss, greedy counts at k = 8 and 128 (at
// 128 on the training split, train128 + 2 fuzzy matches), the AUCs of two
// attacks, exposure at 1 and 64 insertions.
json model_record(double loss, int64_t train128, int64_t heldout128, double auc_loss, double auc_ref, double e64,
                  int epochs, int64_t params) {
    return {{"heldout_loss", loss},
            {"epochs", epochs},
            {"non_embedding_parameters", params},
            {"prefix",
             {prefix_row("train", 8, "greedy", 7, 100), prefix_row("train", 128, "greedy", train128, 100, train128 + 2),
              prefix_row("heldout", 128, "greedy", heldout128, 100), prefix_row("train", 128, "topk", 50, 300)}},
            {"mia",
             {{"attacks",
               {{"loss", {{"auc", auc_loss}, {"tpr_at_1pct_fpr", 0.1}}},
                {"reference", {{"auc", auc_ref}, {"tpr_at_1pct_fpr", 0.2}}}}}}},
            {"exposure_by_insertions",
             {{"1", {{"n", 2}, {"mean_exposure", 1.5}, {"extracted", 0}}},
              {"64", {{"n", 2}, {"mean_exposure", e64}, {"extracted", 1}}}}}};
}

// Writes dir/metrics.json as run_extract does: config, corpus, seeds, pooled.
void write_run(const fs::path& dir, const std::string& corpus, const json& seeds) {
    fs::create_directories(dir);
    json res;
    res["config"] = {{"presets", {"mamba-lm-s", "transformer-lm-s"}}, {"prefix_lengths", {8, 128}}};
    res["corpus"] = {{"name", corpus}, {"sha256", "ab12"}};
    res["seeds"] = seeds;
    res["pooled"] = pool_seeds(seeds, {"mamba-lm-s", "transformer-lm-s"});
    std::ofstream(dir / "metrics.json") << res.dump(1);
}

std::string read(const fs::path& p) { return cli_read_text(p.string()); }

size_t count(const std::string& s, const std::string& needle) {
    size_t n = 0;
    for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + needle.size())) n++;
    return n;
}

std::string wilson_cell(int64_t k, int64_t n) {
    const auto ci = wilson_interval(k, n);
    char b[96];
    std::snprintf(b, sizeof b, "%lld/%lld [%.3f, %.3f]", (long long)k, (long long)n, ci.first, ci.second);
    return b;
}

// The untargeted record of one model in one seed: `hits` of the top 100
// top-k 40 samples by perplexity verbatim, `random` of 100 drawn at random.
json untargeted(int64_t hits, int64_t random) {
    return {{"top-k40",
             {{"n", 400},
              {"top", 100},
              {"rankings", {{"perplexity", {{"verbatim_in_top", hits}}}, {"zlib", {{"verbatim_in_top", 99}}}}},
              {"random_baseline", {{"verbatim_in_top", random}}}}},
            {"temperature-decay", {{"n", 400}, {"top", 100}, {"rankings", {{"perplexity", {{"verbatim_in_top", 50}}}}}}}};
}

// Run A: prose, 2 seeds, 12 epochs; the Mamba fits better and leaks more;
// seed 2 also has --control records; both seeds ran untargeted extraction. Run B: legal, 1 seed, 3 epochs, with
// repeated documents; the transformer fits better but the Mamba leaks more.
struct Fixture {
    TempDir tmp{"mmia_sweep"};
    fs::path a = tmp.path / "runA", b = tmp.path / "runB/";
    Fixture() {
        json s1 = {{"models",
                    {{"mamba-lm-s", model_record(1.8, 2, 0, 0.70, 0.76, 10.9, 12, 98176)},
                     {"transformer-lm-s", model_record(2.1, 0, 0, 0.60, 0.62, 8.0, 12, 100096)}}}};
        json s2 = {{"models",
                    {{"mamba-lm-s", model_record(1.7, 3, 1, 0.71, 0.74, 10.9, 12, 98176)},
                     {"transformer-lm-s", model_record(2.2, 1, 0, 0.61, 0.64, 9.0, 12, 100096)}}}};
        s2["models"]["mamba-lm-s"]["control"] = {{"prefix", {prefix_row("train", 128, "greedy", 1, 100)}}};
        s2["models"]["transformer-lm-s"]["control"] = {{"prefix", {prefix_row("train", 128, "greedy", 0, 100)}}};
        s1["models"]["mamba-lm-s"]["untargeted"] = untargeted(7, 2);
        s2["models"]["mamba-lm-s"]["untargeted"] = untargeted(5, 3);
        s1["models"]["transformer-lm-s"]["untargeted"] = untargeted(0, 1);
        s2["models"]["transformer-lm-s"]["untargeted"] = untargeted(1, 0);
        write_run(a, "prose", {{"42", s1}, {"1", s2}});
        json b1 = {{"models",
                    {{"mamba-lm-s", model_record(2.5, 0, 0, 0.55, 0.58, 6.0, 3, 98176)},
                     {"transformer-lm-s", model_record(2.4, 0, 0, 0.52, 0.53, 5.0, 3, 100096)}}}};
        for (const char* m : {"mamba-lm-s", "transformer-lm-s"})
            b1["models"][m]["prefix_by_copies"] = {
                {{"copies", 1}, {"k", 128}, {"decoding", "greedy"}, {"n", 4}, {"memorized", 0}, {"bleu_exact", 0}, {"bleu_fuzzy", 0}},
                {{"copies", 64}, {"k", 128}, {"decoding", "greedy"}, {"n", 4}, {"memorized", m[0] == 'm' ? 3 : 1}, {"bleu_exact", 0}, {"bleu_fuzzy", 0}},
                {{"copies", 64}, {"k", 8}, {"decoding", "greedy"}, {"n", 4}, {"memorized", 0}, {"bleu_exact", 0}, {"bleu_fuzzy", 0}}};
        write_run(b, "legal", {{"7", b1}});
    }
};

}  // namespace

TEST_CASE("sweep_rows: counts at the longest k summed over seeds, control, copies, exposure, the best attack") {
    Fixture f;
    const auto rows = sweep_rows(f.a.string());
    REQUIRE(rows.size() == 2);
    const SweepRow& m = rows[0];
    CHECK(m.run == "runA");
    CHECK(m.corpus == "prose");
    CHECK(m.arch == "mamba");
    CHECK(m.params == 98176);
    CHECK(m.epochs == 12);
    CHECK(m.seeds == 2);
    CHECK(m.k_max == 128);
    CHECK(m.loss_mean == doctest::Approx(1.75));
    CHECK(m.loss_min == doctest::Approx(1.7));
    CHECK(m.loss_max == doctest::Approx(1.8));
    CHECK(m.train_mem == 5);  // 2 + 3 at k = 128; the k = 8 rows (7 each) and top-k rows are not counted
    CHECK(m.train_n == 200);
    CHECK(m.train_fuzzy == 9);  // (2 + 2) + (3 + 2): the greedy training rows at k = 128 only
    CHECK(m.untargeted_hits == 12);  // 7 + 5 by perplexity (not zlib's 99, not temperature-decay's 50)
    CHECK(m.untargeted_top == 200);
    CHECK(m.untargeted_random == 5);
    CHECK(rows[1].untargeted_hits == 1);
    CHECK(m.heldout_mem == 1);
    CHECK(m.heldout_n == 200);
    CHECK(m.control_mem == 1);  // only seed 1 ran the control
    CHECK(m.control_n == 100);
    CHECK(m.top_copies == 0);
    CHECK(m.top_insertions == 64);
    CHECK(m.top_exposure == doctest::Approx(10.9));
    CHECK(m.best_attack == "reference");  // mean 0.75 against the loss attack's 0.705
    CHECK(m.auc_mean == doctest::Approx(0.75));
    CHECK(m.auc_min == doctest::Approx(0.74));
    CHECK(m.auc_max == doctest::Approx(0.76));
    CHECK(m.loss_tpr1 == doctest::Approx(0.1));
    CHECK(rows[1].arch == "transformer");
    CHECK(rows[1].top_exposure == doctest::Approx(8.5));
    const auto rb = sweep_rows(f.b.string());  // "runB/": the name is the last non-empty component
    CHECK(rb[0].run == "runB");
    CHECK(rb[0].control_mem == -1);
    CHECK(rb[0].untargeted_hits == -1);  // no untargeted run
    CHECK(rb[0].train_fuzzy == 2);
    CHECK(rb[0].top_copies == 64);
    CHECK(rb[0].top_copies_mem == 3);  // the k = 128 row, not k = 8
    CHECK(rb[0].top_copies_n == 4);
    REQUIRE(rb[0].copies_rate.size() == 2);
    CHECK(rb[0].copies_rate[1].second == doctest::Approx(0.75));
    CHECK(rb[1].top_copies_mem == 1);
}

TEST_CASE("write_sweep_report: the table's cells, the pair readings, the plots of the axes that vary") {
    Fixture f;
    const fs::path out = f.tmp.path / "summary";
    const auto plots = write_sweep_report({f.a.string(), f.b.string()}, out.string());
    // corpus and epochs vary, the preset size does not
    CHECK(plots == std::vector<std::string>{"leakage_vs_fit.svg", "best_auc_vs_epochs.svg", "best_auc_by_corpus.svg",
                                            "exposure_vs_insertions.svg", "extraction_vs_copies.svg"});
    CHECK_FALSE(fs::exists(out / "plots/best_auc_vs_params.svg"));
    const std::string md = read(out / "sweep.md");
    CHECK(md.find("| runA | prose | mamba-lm-s | 98176 | 12 | 2 | 1.750 [1.700, 1.800] | " + wilson_cell(5, 200) +
                  " (k=128) | " + wilson_cell(9, 200) + " | " + wilson_cell(1, 200) + " | " + wilson_cell(12, 200) +
                  " (random 5) | " + wilson_cell(1, 100) + " | n/a | 10.90 (x64) | " +
                  "0.750 [0.740, 0.760] (reference) | 0.100 |") != std::string::npos);
    CHECK(md.find("| runB | legal | transformer-lm-s | 100096 | 3 | 1 | 2.400 | " + wilson_cell(0, 100) + " (k=128) | " +
                  wilson_cell(2, 100) + " | " + wilson_cell(0, 100) + " | n/a | n/a | x64: " + wilson_cell(1, 4) + " | 5.00 (x64) | 0.530 (reference) |") !=
          std::string::npos);
    // Run A: Mamba fits better (1.75 vs 2.15) and leaks more (0.75 vs 0.63), ranges [0.74, 0.76] and [0.62, 0.64].
    CHECK(md.find("| runA | mamba-lm-s vs transformer-lm-s | -0.400 | +0.120 | mamba-lm-s | mamba-lm-s | no overlap in "
                  "2 seeds | the better fit leaks more: fit and architecture not separated |") != std::string::npos);
    // Run B: the transformer fits better (2.4 vs 2.5) yet the Mamba leaks more (0.58 vs 0.53).
    CHECK(md.find("| runB | mamba-lm-s vs transformer-lm-s | +0.100 | +0.050 | transformer-lm-s | mamba-lm-s | one seed | "
                  "the worse fit leaks more: not explained by fit |") != std::string::npos);
    for (const auto& p : plots) CHECK(md.find("](plots/" + p + ")") != std::string::npos);
    // leakage against fit: a scatter of 4 points, two series (mamba, transformer), no line
    const std::string fit = read(out / "plots/leakage_vs_fit.svg");
    CHECK(count(fit, "<circle") == 4 + 2);  // and a dot swatch per legend entry
    CHECK(count(fit, "<polyline") == 0);
    CHECK(count(fit, "class=\"whisker\"") == 2);  // run A's two models (2 seeds); run B has one seed
    CHECK(fit.find(">0.5</text>") != std::string::npos);  // the AUC axis starts at chance
    CHECK(fit.find(">mamba</text>") != std::string::npos);
    CHECK(fit.find(">transformer</text>") != std::string::npos);
    const std::string by_corpus = read(out / "plots/best_auc_by_corpus.svg");
    CHECK(by_corpus.find(">legal</text>") != std::string::npos);
    CHECK(by_corpus.find(">prose</text>") != std::string::npos);
    CHECK(by_corpus.find(">mamba e12</text>") != std::string::npos);  // epochs vary, so series say which
    // one colour per condition: a Mamba and a transformer of one setting
    // share it (the transformer's dots hollow), another setting differs
    auto legend_colour = [](const std::string& svg, const std::string& name) {
        const size_t at = svg.find("\">" + name + "</text>");
        REQUIRE(at != std::string::npos);
        return svg.substr(at - 7, 7);
    };
    CHECK(legend_colour(by_corpus, "mamba e12") == legend_colour(by_corpus, "transformer e12"));
    CHECK(legend_colour(by_corpus, "mamba e3") == legend_colour(by_corpus, "transformer e3"));
    CHECK(legend_colour(by_corpus, "mamba e12") != legend_colour(by_corpus, "mamba e3"));
    CHECK(count(by_corpus, "fill=\"white\" stroke=") == 2 + 2);  // the transformers' 2 dots and 2 swatches
    // leakage against fit has one condition: blue Mamba, red transformer
    CHECK(legend_colour(fit, "mamba") == "#1f77b4");
    CHECK(legend_colour(fit, "transformer") == "#d62728");
    const std::string copies = read(out / "plots/extraction_vs_copies.svg");
    CHECK(count(copies, "<polyline") == 2);  // run B's two models; run A has no repeated documents
    const std::string csv = read(out / "sweep.csv");
    CHECK(count(csv, "\n") == 5);  // header + 4 rows
    CHECK(csv.find("\"runA\",\"prose\",ab12,mamba-lm-s,mamba,98176,12,2,128,1.75,") != std::string::npos);
    // fuzzy; untargeted hits, top, random; run B: no untargeted run
    CHECK_MESSAGE(csv.find(",reference,0.10000000000000001,9,12,200,5\n") != std::string::npos, csv);
    CHECK_MESSAGE(csv.find(",reference,0.10000000000000001,2,,,\n") != std::string::npos, csv);
}

TEST_CASE("write_sweep_report: a second summary in the same directory leaves no plot of the first; a run directory is refused") {
    Fixture f;
    const fs::path out = f.tmp.path / "summary";
    write_sweep_report({f.a.string(), f.b.string()}, out.string());
    CHECK(fs::exists(out / "plots/best_auc_by_corpus.svg"));
    const auto plots = write_sweep_report({f.a.string()}, out.string());
    CHECK(plots == std::vector<std::string>{"leakage_vs_fit.svg", "exposure_vs_insertions.svg"});
    CHECK_FALSE(fs::exists(out / "plots/best_auc_by_corpus.svg"));
    CHECK_FALSE(fs::exists(out / "plots/extraction_vs_copies.svg"));
    CHECK_FALSE(fs::exists(out / "plots/best_auc_vs_epochs.svg"));
    // --run-dir one of the runs: refused before anything is written.
    const std::string before = read(f.b / "metrics.json");
    try {
        write_sweep_report({f.a.string(), f.b.string()}, f.b.string());
        FAIL("a run directory was accepted as the summary's");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()) == f.b.string() + ": a bin/extract run directory (it holds metrics.json; the summary "
                                                     "would replace its plots): give the summary its own --run-dir");
    }
    CHECK_FALSE(fs::exists(f.b / "plots"));
    CHECK(read(f.b / "metrics.json") == before);
}

TEST_CASE("write_sweep_report: runs of one name by their paths; n/a for a missing loss attack; the exposure maximum; Markdown-safe cells") {
    Fixture f;
    json res = json::parse(read(f.a / "metrics.json"));
    res["config"]["candidates"] = 2000;  // exposure at most log2(2001) = 10.97 bits
    for (const char* m : {"mamba-lm-s", "transformer-lm-s"})
        for (auto* e : {&res["pooled"][m]["exposure_by_insertions"]["64"]["mean_exposure"]})
            (*e)["mean"] = (*e)["min"] = (*e)["max"] = std::log2(2001.0);
    res["pooled"]["transformer-lm-s"]["mia"].erase("loss");
    res["corpus"]["name"] = "pro|se";
    for (const char* d : {"x/run", "y/run"}) {
        fs::create_directories(f.tmp.path / d);
        std::ofstream(f.tmp.path / d / "metrics.json") << res.dump();
    }
    const std::string x = (f.tmp.path / "x/run").string(), y = (f.tmp.path / "y/run").string();
    write_sweep_report({x, y}, (f.tmp.path / "s").string());
    const std::string md = read(f.tmp.path / "s/sweep.md");
    CHECK(md.find("| " + x + " | pro\\|se | mamba-lm-s |") != std::string::npos);
    CHECK(md.find("| " + y + " | pro\\|se | mamba-lm-s |") != std::string::npos);
    CHECK(md.find("| 10.97 (x64, the maximum) |") != std::string::npos);
    CHECK(md.find("(reference) | n/a |") != std::string::npos);  // the transformer has no loss attack here
}

TEST_CASE("write_sweep_report: a run whose MIA was skipped (no non-member) shows n/a and stays out of the AUC plots") {
    Fixture f;
    // run C: one seed, both models' MIA skipped as run_extract records it
    json c1 = {{"models",
                {{"mamba-lm-s", model_record(1.9, 1, 0, 0.5, 0.5, 7.0, 12, 98176)},
                 {"transformer-lm-s", model_record(2.3, 0, 0, 0.5, 0.5, 6.0, 12, 100096)}}}};
    for (const char* m : {"mamba-lm-s", "transformer-lm-s"})
        c1["models"][m]["mia"] = {{"members", 49}, {"nonmembers", 0}, {"near_duplicates_excluded", 11}, {"skipped", "why"}};
    const fs::path c = f.tmp.path / "runC";
    write_run(c, "man", {{"42", c1}});
    const fs::path out = f.tmp.path / "summary";
    const auto plots = write_sweep_report({f.a.string(), f.b.string(), c.string()}, out.string());
    const std::string md = read(out / "sweep.md");
    CHECK(md.find("| runC | man | mamba-lm-s | 98176 | 12 | 1 | 1.900 | " + wilson_cell(1, 100) + " (k=128) | " +
                  wilson_cell(3, 100) + " | " + wilson_cell(0, 100) + " | n/a | n/a | n/a | 7.00 (x64) | n/a | n/a |") !=
          std::string::npos);
    CHECK(md.find("| runC | mamba-lm-s vs transformer-lm-s | -0.400 | n/a | mamba-lm-s | n/a | n/a | no membership "
                  "inference in this run |") != std::string::npos);
    // the AUC plots hold runs A and B only: 4 points, and no "man" corpus
    CHECK(count(read(out / "plots/leakage_vs_fit.svg"), "<circle") == 4 + 2);
    CHECK(read(out / "plots/best_auc_by_corpus.svg").find(">man</text>") == std::string::npos);
    // its exposure still plotted: 3 runs x 2 models
    CHECK(count(read(out / "plots/exposure_vs_insertions.svg"), "<polyline") == 6);
    CHECK(std::find(plots.begin(), plots.end(), "best_auc_by_corpus.svg") != plots.end());
    // sweep.csv: empty cells for what run C did not measure (no control, no
    // repeated documents, no MIA), never a 0 or -1 a reader could average
    const std::string csv = read(out / "sweep.csv");
    const size_t at = csv.find("\"runC\",\"man\",ab12,mamba-lm-s,");
    REQUIRE(at != std::string::npos);
    const std::string line = csv.substr(at, csv.find('\n', at) - at);
    // train 1/100, held-out 0/100, then control (2), copies (3): empty;
    // canaries x64 at 7 bits; AUC mean, min, max, attack, loss TPR: empty;
    // 3 fuzzy matches; untargeted (not run): empty
    const std::string tail = ",1,100,0,100,,,,,,64,7,,,,,,3,,,";
    CHECK(line.substr(line.size() - tail.size()) == tail);
    CHECK(line.find(",-1") == std::string::npos);
}

TEST_CASE("write_sweep_report: model size as categories in order of size, each named with its parameters") {
    Fixture f;
    // run M: the m pair on prose at 12 epochs (parameters 816384 and 793344)
    json m1 = {{"models",
                {{"mamba-lm-m", model_record(1.6, 2, 0, 0.85, 0.88, 10.9, 12, 816384)},
                 {"transformer-lm-m", model_record(2.0, 0, 0, 0.64, 0.66, 9.0, 12, 793344)}}}};
    const fs::path m = f.tmp.path / "runM";
    fs::create_directories(m);
    json res;
    res["config"] = {{"presets", {"mamba-lm-m", "transformer-lm-m"}}, {"prefix_lengths", {8, 128}}};
    res["corpus"] = {{"name", "prose"}, {"sha256", "ab12"}};
    res["seeds"] = {{"42", m1}};
    res["pooled"] = pool_seeds(res["seeds"], {"mamba-lm-m", "transformer-lm-m"});
    std::ofstream(m / "metrics.json") << res.dump(1);
    const fs::path out = f.tmp.path / "summary";
    write_sweep_report({f.a.string(), m.string()}, out.string());
    const std::string svg = read(out / "plots/best_auc_vs_params.svg");
    // two categories over the plot area 60..390 px: s at 142.5, m at 307.5
    CHECK(svg.find("<text x=\"142.5\" y=\"345\" text-anchor=\"middle\">s (98176)</text>") != std::string::npos);
    CHECK(svg.find("<text x=\"307.5\" y=\"345\" text-anchor=\"middle\">m (793344)</text>") != std::string::npos);
    CHECK(svg.find(">816384<") == std::string::npos);  // no raw parameter tick
    CHECK(count(svg, "<polyline") == 2);  // a line per architecture from s to m
}

TEST_CASE("write_sweep_report: two corpora of one name are told apart by their checksums") {
    Fixture f;
    json res = json::parse(read(f.a / "metrics.json"));
    res["corpus"]["sha256"] = "cd34ef567890";
    fs::create_directories(f.tmp.path / "rep");
    std::ofstream(f.tmp.path / "rep/metrics.json") << res.dump();
    write_sweep_report({f.a.string(), (f.tmp.path / "rep").string(), f.b.string()}, (f.tmp.path / "s").string());
    const std::string md = read(f.tmp.path / "s/sweep.md");
    CHECK(md.find("| runA | prose@ab12 | mamba-lm-s |") != std::string::npos);
    CHECK(md.find("| rep | prose@cd34ef56 | mamba-lm-s |") != std::string::npos);
    // A corpus with repeated documents beside one without: NAME+rep.
    res["pooled"]["mamba-lm-s"]["prefix_by_copies"] = json::parse(read(f.b / "metrics.json"))["pooled"]["mamba-lm-s"]["prefix_by_copies"];
    res["pooled"]["transformer-lm-s"]["prefix_by_copies"] = res["pooled"]["mamba-lm-s"]["prefix_by_copies"];
    std::ofstream(f.tmp.path / "rep/metrics.json") << res.dump();
    write_sweep_report({f.a.string(), (f.tmp.path / "rep").string()}, (f.tmp.path / "s2").string());
    const std::string md2 = read(f.tmp.path / "s2/sweep.md");
    CHECK(md2.find("| runA | prose | mamba-lm-s |") != std::string::npos);
    CHECK(md2.find("| rep | prose+rep | mamba-lm-s |") != std::string::npos);
    CHECK(md.find("| runB | legal | mamba-lm-s |") != std::string::npos);  // one checksum: the name alone
    const std::string by_corpus = read(f.tmp.path / "s/plots/best_auc_by_corpus.svg");
    CHECK(by_corpus.find(">prose@cd34ef56</text>") != std::string::npos);
}

TEST_CASE("write_sweep_report: runs that differ only in their seeds are pooled into one row, as one run with all the seeds") {
    Fixture f;
    // Run A2: run A's configuration (but threads and the training seed), seed 2.
    json s3 = {{"models",
                {{"mamba-lm-s", model_record(1.6, 4, 0, 0.72, 0.80, 10.9, 12, 98176)},
                 {"transformer-lm-s", model_record(2.0, 2, 0, 0.62, 0.66, 9.5, 12, 100096)}}}};
    s3["models"]["mamba-lm-s"]["untargeted"] = untargeted(6, 1);
    s3["models"]["transformer-lm-s"]["untargeted"] = untargeted(0, 0);
    auto with_config = [&](const fs::path& dir, const std::function<void(json&)>& edit) {
        json res = json::parse(read(dir / "metrics.json"));
        edit(res["config"]);
        std::ofstream(dir / "metrics.json") << res.dump(1);
    };
    const fs::path a2 = f.tmp.path / "runA2";
    write_run(a2, "prose", {{"2", s3}});
    with_config(f.a, [](json& c) {
        c["threads"] = 2;
        c["seeds"] = {42, 1};
        c["training"] = {{"mamba-lm-s", {{"epochs", 12}, {"seed", 42}}}};
    });
    with_config(a2, [](json& c) {
        c["threads"] = 1;
        c["seeds"] = {2};
        c["training"] = {{"mamba-lm-s", {{"epochs", 12}, {"seed", 2}}}};
    });
    const fs::path out = f.tmp.path / "summary";
    write_sweep_report({f.a.string(), f.b.string(), a2.string()}, out.string());
    const std::string md = read(out / "sweep.md");
    // Seeds 42, 1, 2 of the Mamba: greedy at k = 128 2 + 3 + 4 of 300, fuzzy
    // (each seed's count + 2) 15, held-out 0 + 1 + 0; loss 1.8, 1.7, 1.6;
    // untargeted 7 + 5 + 6 (random 2 + 3 + 1); the control model (seed 1
    // only) 1/100; best AUC per seed (reference) 0.76, 0.74, 0.80.
    CHECK_MESSAGE(md.find("| runA + runA2 | prose | mamba-lm-s | 98176 | 12 | 3 | 1.700 [1.600, 1.800] | " + wilson_cell(9, 300) +
                              " (k=128) | " + wilson_cell(15, 300) + " | " + wilson_cell(1, 300) + " | " +
                              wilson_cell(18, 300) + " (random 6) | " + wilson_cell(1, 100) +
                              " | n/a | 10.90 (x64) | 0.767 [0.740, 0.800] (reference) | 0.100 |") != std::string::npos,
                  md);
    // The transformer: loss 2.1, 2.2, 2.0; best AUCs 0.62, 0.64, 0.66.
    CHECK(md.find("| runA + runA2 | prose | transformer-lm-s | 100096 | 12 | 3 | 2.100 [2.000, 2.200] | " +
                  wilson_cell(3, 300) + " (k=128) |") != std::string::npos);
    CHECK(md.find("| runA + runA2 | mamba-lm-s vs transformer-lm-s | -0.400 | +0.127 | mamba-lm-s | mamba-lm-s | no "
                  "overlap in 3 seeds |") != std::string::npos);
    CHECK(md.find("| runA2 |") == std::string::npos);
    CHECK(md.find("| runB | legal |") != std::string::npos);  // another configuration: its own rows
    // The same numbers as one run of all three seeds (run_extract's pooling).
    const fs::path all = f.tmp.path / "runAll";
    json seeds = json::parse(read(f.a / "metrics.json"))["seeds"];
    seeds["2"] = s3;
    write_run(all, "prose", seeds);
    write_sweep_report({all.string()}, (f.tmp.path / "one").string());
    auto csv_rows = [&](const fs::path& csv, const std::string& run) {
        std::vector<std::string> lines;
        std::istringstream in(read(csv));
        for (std::string l; std::getline(in, l);)
            if (l.rfind(run + ",", 0) == 0) lines.push_back(l.substr(run.size()));
        return lines;
    };
    const auto pooled = csv_rows(out / "sweep.csv", "\"runA + runA2\"");
    REQUIRE(pooled.size() == 2);
    CHECK(pooled == csv_rows(f.tmp.path / "one/sweep.csv", "\"runAll\""));
    // Names with a common start up to a '-': that start, the rest in braces.
    for (const auto& [from, to] : {std::pair{f.a, "x-e12-seed42"}, std::pair{a2, "x-e12-seed2"}}) {
        fs::create_directories(f.tmp.path / to);
        fs::copy_file(from / "metrics.json", f.tmp.path / to / "metrics.json");
    }
    write_sweep_report({(f.tmp.path / "x-e12-seed42").string(), (f.tmp.path / "x-e12-seed2").string()},
                       (f.tmp.path / "named").string());
    CHECK(read(f.tmp.path / "named/sweep.md").find("| x-e12-{seed42,seed2} | prose | mamba-lm-s | 98176 | 12 | 3 |") !=
          std::string::npos);
    // Not pooled: another training length; a seed in common (a rerun).
    with_config(a2, [](json& c) { c["training"]["mamba-lm-s"]["epochs"] = 6; });
    write_sweep_report({f.a.string(), a2.string()}, out.string());
    CHECK(read(out / "sweep.md").find("| runA2 | prose | mamba-lm-s | 98176 | 12 | 1 |") != std::string::npos);
    with_config(a2, [](json& c) { c["training"]["mamba-lm-s"]["epochs"] = 12; });
    write_run(f.tmp.path / "rerun", "prose", {{"42", s3}});
    with_config(f.tmp.path / "rerun", [](json& c) {
        c["threads"] = 2;
        c["seeds"] = {42};
        c["training"] = {{"mamba-lm-s", {{"epochs", 12}, {"seed", 42}}}};
    });
    write_sweep_report({f.a.string(), (f.tmp.path / "rerun").string()}, out.string());
    CHECK(read(out / "sweep.md").find("| rerun | prose | mamba-lm-s | 98176 | 12 | 1 |") != std::string::npos);
    CHECK(read(out / "sweep.md").find("| runA | prose | mamba-lm-s | 98176 | 12 | 2 |") != std::string::npos);
    // A seed's record that cannot be pooled (no held-out loss): one error
    // naming the run that has it, and no summary written.
    json bad = json::parse(read(a2 / "metrics.json"));
    bad["seeds"]["2"]["models"]["mamba-lm-s"].erase("heldout_loss");
    std::ofstream(a2 / "metrics.json") << bad.dump(1);
    try {
        write_sweep_report({f.a.string(), a2.string()}, (f.tmp.path / "bad").string());
        FAIL("an unpoolable seed record was accepted");
    } catch (const std::runtime_error& e) {
        CHECK_MESSAGE(std::string(e.what()).rfind((a2 / "metrics.json").string() +
                                                      ": a seed record that cannot be pooled with the other runs of its "
                                                      "configuration: ",
                                                  0) == 0,
                      e.what());
        CHECK(std::string(e.what()).find("heldout_loss") != std::string::npos);
    }
    CHECK_FALSE(fs::exists(f.tmp.path / "bad/sweep.md"));
}

TEST_CASE("write_sweep_report: errors name the run and what is wrong; nothing is written for a bad run") {
    Fixture f;
    const fs::path out = f.tmp.path / "summary";
    auto fails = [&](const std::vector<std::string>& dirs, const std::string& what) {
        try {
            write_sweep_report(dirs, out.string());
            FAIL("no error; expected: " << what);
        } catch (const std::runtime_error& e) {
            CHECK_MESSAGE(std::string(e.what()).find(what) != std::string::npos, e.what());
        }
    };
    fails({}, "no run directories");
    fs::create_directories(f.tmp.path / "nothing");
    fails({(f.tmp.path / "nothing").string()}, "nothing/metrics.json: no such file (not a finished bin/extract run)");
    fs::create_directories(f.tmp.path / "bad");
    std::ofstream(f.tmp.path / "bad/metrics.json") << "{\"config\": ";
    fails({(f.tmp.path / "bad").string()}, "bad/metrics.json: [json.exception.parse_error");
    fs::create_directories(f.tmp.path / "given");
    std::ofstream(f.tmp.path / "given/metrics.json") << R"({"config": {"presets": ["mamba-lm-s"]}, "models": []})";
    fails({(f.tmp.path / "given").string()}, "given/metrics.json: no \"pooled\" (not a training run of bin/extract)");
    fails({f.a.string(), f.a.string() + "/"}, "given twice");
    // Numbers no run writes: more memorized than sequences, an insertion count that is not one.
    auto edited = [&](const char* name, const std::function<void(json&)>& edit) {
        json res = json::parse(read(f.a / "metrics.json"));
        edit(res);
        fs::create_directories(f.tmp.path / name);
        std::ofstream(f.tmp.path / name / "metrics.json") << res.dump();
        return (f.tmp.path / name).string();
    };
    fails({edited("over", [](json& r) { r["pooled"]["mamba-lm-s"]["prefix"][1]["memorized"] = 201; })},
          "over/metrics.json: mamba-lm-s: a memorized count outside 0..n");
    fails({edited("fuzzy", [](json& r) { r["pooled"]["mamba-lm-s"]["prefix"][1]["bleu_fuzzy"] = 201; })},
          "fuzzy/metrics.json: mamba-lm-s: a memorized count outside 0..n");
    fails({edited("untargeted", [](json& r) { r["seeds"]["42"]["models"]["transformer-lm-s"]["untargeted"]["top-k40"]["rankings"]["perplexity"]["verbatim_in_top"] = 200; })},
          "untargeted/metrics.json: transformer-lm-s: a memorized count outside 0..n");
    fails({edited("ins", [](json& r) { r["pooled"]["transformer-lm-s"]["exposure_by_insertions"]["x"] =
                                           r["pooled"]["transformer-lm-s"]["exposure_by_insertions"]["1"]; })},
          "ins/metrics.json: exposure_by_insertions: \"x\" is not an insertion count");
    fails({edited("noloss", [](json& r) { r["pooled"]["mamba-lm-s"].erase("heldout_loss"); })},
          "noloss/metrics.json: no heldout_loss of mamba-lm-s");
    fails({edited("order", [](json& r) { r["pooled"]["mamba-lm-s"]["best_mia_auc"]["min"] = 0.99; })},
          "order/metrics.json: mamba-lm-s: a spread over seeds whose min, mean and max are out of order");
    fails({edited("nomia", [](json& r) { r["pooled"]["mamba-lm-s"]["mia"] = json::object(); })},
          "nomia/metrics.json: mamba-lm-s: a best MIA AUC without the attacks' AUCs");
    fails({(f.tmp.path / "typo").string()}, "typo: no such directory");
    fs::create_directories(f.tmp.path / "dirjson/metrics.json");
    fails({(f.tmp.path / "dirjson").string()}, "dirjson/metrics.json: not a regular file");
    fails({(f.tmp.path / "dirjson/metrics.json/..").string() + "x"}, "no such directory");
    fails({edited("auc", [](json& r) { r["pooled"]["mamba-lm-s"]["best_mia_auc"]["max"] = 1.5; })},
          "auc/metrics.json: mamba-lm-s: an AUC, TPR, loss or exposure out of range");
    CHECK_FALSE(fs::exists(out / "sweep.md"));
}

TEST_CASE("bin/extract --summarize: the report's path, one error line and exit 1 for a bad run, 2 for a flag it does not take") {
    Fixture f;
    const std::string bin = cli_program("EXTRACT_BIN", "bin/extract");
    const std::string out = (f.tmp.path / "s").string();
    CliRun r = cli_run(bin, "--summarize " + cli_quote(f.a.string() + "," + f.b.string()) + " --run-dir " + cli_quote(out),
                       f.tmp.path.string());
    CHECK(r.code == 0);
    CHECK(r.out.find("report: " + out + "/sweep.md") != std::string::npos);
    CHECK(fs::exists(out + "/plots/best_auc_by_corpus.svg"));
    r = cli_run(bin, "--summarize " + cli_quote((f.tmp.path / "none").string()), f.tmp.path.string());
    CHECK(r.code == 1);
    CHECK(r.err == "error: " + (f.tmp.path / "none").string() + ": no such directory\n");
    std::ofstream(f.tmp.path / "plain") << "x";
    r = cli_run(bin, "--summarize " + cli_quote(f.a.string()) + " --run-dir " + cli_quote((f.tmp.path / "plain").string()),
                f.tmp.path.string());
    CHECK(r.code == 1);
    CHECK(r.err == "error: " + (f.tmp.path / "plain").string() + "/plots: Not a directory\n");
    r = cli_run(bin, "--summarize " + cli_quote(f.a.string()) + " --epochs 3", f.tmp.path.string());
    CHECK(r.code == 2);
    CHECK(r.err.find("error: --epochs: --summarize reads finished runs and takes only --run-dir") != std::string::npos);
    r = cli_run(bin, "--summarize " + cli_quote(f.a.string()) + ",", f.tmp.path.string());
    CHECK(r.code == 2);
    CHECK(r.err == "error: --summarize: an empty element in '" + f.a.string() + ",' (see --help)\n");
    r = cli_run(bin, "--summarize " + cli_quote(f.a.string()) + " --summarize " + cli_quote(f.b.string()),
                f.tmp.path.string());
    CHECK(r.code == 2);
    CHECK(r.err == "error: --summarize: given twice (give one comma-separated list) (see --help)\n");
    r = cli_run(bin, "--summarize " + cli_quote(f.a.string() + "," + f.a.string() + "/"), f.tmp.path.string());
    CHECK(r.code == 1);
    CHECK(r.err == "error: " + f.a.string() + "/ given twice\n");
}
