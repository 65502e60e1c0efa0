// The report's newer plots and numbers (attack/report.h, metric_attacks.h):
// the kinds' shared log-log ROC, the logit-scaled confidence histogram that
// stays spread where the loss histogram collapses, and the vulnerability per
// epoch (loss_attack_exposure, its table and plot), and the line plot shared
// with bin/extract and bin/bench_lm (common/svg_lines.h), each checked
// against a definition written out here.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "attack/features.h"
#include "attack/metric_attacks.h"
#include "attack/metrics.h"
#include "attack/report.h"
#include "common/svg_lines.h"

using namespace mmia;
using json = nlohmann::json;

namespace {

size_t count(const std::string& s, const std::string& needle) {
    size_t n = 0;
    for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + needle.size())) n++;
    return n;
}

int svg_width(const std::string& svg) {
    std::smatch m;
    REQUIRE(std::regex_search(svg, m, std::regex("<svg[^>]* width=\"([0-9]+)\"")));
    return std::stoi(m[1]);
}

// Every legend text (x = 495) of the SVG: its label.
std::vector<std::string> legend_labels(const std::string& svg) {
    std::vector<std::string> out;
    std::regex re("<text x=\"495\" y=\"[0-9.]+\">([^<]*)</text>");
    for (auto it = std::sregex_iterator(svg.begin(), svg.end(), re); it != std::sregex_iterator(); ++it)
        out.push_back((*it)[1]);
    return out;
}

NamedRoc straight(const std::string& name) { return {name, {{INFINITY, 0, 0}, {0.5, 0.01, 0.3}, {0, 1, 1}}}; }

}  // namespace

TEST_CASE("strongest_rocs: the 3 highest AUCs of the first target, then lira_online, seed000_on_target never") {
    std::vector<NamedRoc> curves;
    for (const char* a : {"loss", "seed000_on_target", "shokri_mlp", "entropy", "lira_online", "rmia_online", "x"})
        curves.push_back(straight(a));
    const json m = {{"loss", {{"auc", 0.61}}},        {"seed000_on_target", {{"auc", 0.99}}},
                    {"shokri_mlp", {{"auc", 0.70}}},  {"entropy", {{"auc", 0.55}}},
                    {"lira_online", {{"auc", 0.58}}}, {"rmia_online", {{"auc", 0.66}}},
                    {"x", {{"n_unscored", 3}}}};
    std::vector<std::string> names;
    for (const NamedRoc& c : strongest_rocs(curves, m, 3, "lira_online")) names.push_back(c.name);
    CHECK(names == std::vector<std::string>{"shokri_mlp", "rmia_online", "loss", "lira_online"});
    names.clear();
    for (const NamedRoc& c : strongest_rocs(curves, m, 5, "lira_online")) names.push_back(c.name);
    CHECK(names == std::vector<std::string>{"shokri_mlp", "rmia_online", "loss", "lira_online", "entropy"});
    CHECK(strongest_rocs(curves, m, 2, "absent").size() == 2);
}

TEST_CASE("svg_roc_kinds: labels '<kind> <attack>', one colour family and line style per kind, legend inside") {
    const std::string longest = "modified_entropy_per_class";
    const std::string svg = svg_roc_kinds(
        {{"cnn", {straight("loss"), straight("lira_online_fixed_var_aug")}}, {"mamba", {straight(longest)}}},
        "both kinds");
    const auto labels = legend_labels(svg);
    CHECK(labels == std::vector<std::string>{"cnn loss", "cnn lira_online_fixed_var_aug", "mamba " + longest});
    // 8 px per character bounds 12 px sans-serif's advances: the canvas
    // holds the longest label after x = 495 (headless Chromium measures the
    // rendered text too: test_report_html).
    CHECK(svg_width(svg) >= 495 + 8 * int(("mamba " + longest).size()));
    // The first kind solid blues, the second dashed reds: 3 curves + 3
    // legend lines; the dashed ones are the mamba curve and its legend line.
    CHECK(count(svg, "stroke=\"#08306b\"") == 2);
    CHECK(count(svg, "stroke=\"#2171b5\"") == 2);
    CHECK(count(svg, "stroke=\"#67000d\"") == 2);
    CHECK(count(svg, "stroke-dasharray=\"6 3\"") == 2);
    // Log-log axes from 1e-4.
    CHECK(svg.find(">0.0001</text>") != std::string::npos);
    // The per-kind plot widens for its long names too (it clipped before).
    CHECK(svg_width(svg_roc({straight(longest)}, true, "t")) >= 495 + 8 * int(longest.size()));
    CHECK(svg_width(svg_roc({straight("loss")}, true, "t")) == 640);
}

// An overfit model's outputs, made by hand with 10 classes: the label's
// logit is the margin m, the others 0, so p_y = e^m / (e^m + 9) and
// phi = log(p_y / (1 - p_y)) = m - log 9 exactly; the loss is
// log(1 + 9 e^-m), below 0.37 for every m >= 3. 100 members at margins 8..30,
// 90 non-members at 3..20, 10 non-members wrong by 20 (another class's logit
// is 20, the label's 0: loss log(e^20 + 9), phi -log(e^20 + 8)).
TEST_CASE("logit-scaled confidence histogram: spread over many bins where the loss histogram is one bar") {
    const int k = 10;
    std::vector<float> logits;
    std::vector<int> labels, is_member;
    std::vector<double> phi_exact;
    auto row = [&](int y, int other, float zy, float zo, int member) {
        std::vector<float> z(k, 0.0f);
        z[size_t(y)] = zy;
        z[size_t(other)] = zo;
        logits.insert(logits.end(), z.begin(), z.end());
        labels.push_back(y);
        is_member.push_back(member);
    };
    for (int i = 0; i < 100; i++) {
        const float m = 8.0f + 22.0f * float(i) / 99.0f;
        row(i % k, (i + 1) % k, m, 0.0f, 1);
        phi_exact.push_back(double(m) - std::log(9.0));
    }
    for (int i = 0; i < 90; i++) {
        const float m = 3.0f + 17.0f * float(i) / 89.0f;
        row(i % k, (i + 1) % k, m, 0.0f, 0);
        phi_exact.push_back(double(m) - std::log(9.0));
    }
    for (int i = 0; i < 10; i++) {
        row(i % k, (i + 1) % k, 0.0f, 20.0f, 0);
        phi_exact.push_back(-std::log(std::exp(20.0) + 8.0));
    }
    // The values: the closed forms above, and the plain formula where p_y is
    // far enough from 1 for it to be exact in doubles.
    const std::vector<double> phi = logit_scaled_confidences(logits, k, labels);
    for (size_t i = 0; i < phi.size(); i++) {
        CAPTURE(i);
        CHECK(phi[i] == doctest::Approx(phi_exact[i]).epsilon(1e-12));
        const double zy = logits[i * k + size_t(labels[i])];
        double denom = 0;
        for (int c = 0; c < k; c++) denom += std::exp(double(logits[i * k + size_t(c)]));
        const double p = std::exp(zy) / denom;
        if (p < 0.999) CHECK(phi[i] == doctest::Approx(std::log(p / (1 - p))).epsilon(1e-9));
    }
    // The histograms, 40 bins each.
    const ScoreHistogram lh = score_histogram(metric_scores(MetricAttack::loss, logits, k, labels), is_member, 40);
    const ScoreHistogram ph = logit_confidence_histogram(logits, k, labels, is_member, 40);
    auto occupied = [](const ScoreHistogram& h) {
        int n = 0;
        for (size_t b = 0; b < h.members.size(); b++) n += h.members[b] + h.nonmembers[b] > 0;
        return n;
    };
    // -loss: the 190 right answers all sit in the top bin (within 0.37 of 0,
    // the bins 0.5 wide), the 10 wrong ones in the bottom one.
    CHECK(lh.members[39] == 100);
    CHECK(lh.nonmembers[39] == 90);
    CHECK(lh.nonmembers[0] == 10);
    CHECK(occupied(lh) == 2);
    // phi: the same examples over 23 bins of width 1.2, none with more than
    // 10; and every count is the bin of the closed-form phi.
    CHECK(occupied(ph) >= 20);
    std::vector<int64_t> want_m(40, 0), want_n(40, 0);
    const double lo = *std::min_element(phi_exact.begin(), phi_exact.end());
    const double hi = *std::max_element(phi_exact.begin(), phi_exact.end());
    for (size_t i = 0; i < phi_exact.size(); i++) {
        const int b = std::min(39, int(std::floor((phi_exact[i] - lo) / (hi - lo) * 40)));
        (is_member[i] ? want_m : want_n)[size_t(b)]++;
    }
    CHECK(ph.members == want_m);
    CHECK(ph.nonmembers == want_n);
    CHECK(*std::max_element(ph.members.begin(), ph.members.end()) <= 10);
    CHECK(ph.edges.front() == doctest::Approx(lo).epsilon(1e-12));
    CHECK(ph.edges.back() == doctest::Approx(hi).epsilon(1e-12));
}

// loss_attack_exposure against definitions written out: accuracy by argmax,
// the loss by log-sum-exp in doubles, AUC by counting member / non-member
// pairs, TPR at 1% FPR by the threshold that lets floor(1% of the
// non-members) of them through.
TEST_CASE("loss_attack_exposure: accuracies, gap, pairwise AUC and TPR at 1% FPR by hand") {
    const int k = 4, n_m = 120, n_n = 250;
    std::mt19937_64 rng(7);
    std::normal_distribution<float> g(0.0f, 2.0f);
    std::vector<float> zm, zn;
    std::vector<int> ym, yn;
    for (int i = 0; i < n_m + n_n; i++) {
        const bool member = i < n_m;
        const int y = int(rng() % k);
        for (int c = 0; c < k; c++) (member ? zm : zn).push_back(g(rng) + (c == y ? (member ? 2.5f : 1.0f) : 0.0f));
        (member ? ym : yn).push_back(y);
    }
    const json e = loss_attack_exposure(zm, ym, zn, yn, k);
    auto loss = [&](const std::vector<float>& z, int i, int y) {
        double mx = -INFINITY, s = 0;
        for (int c = 0; c < k; c++) mx = std::max(mx, double(z[size_t(i * k + c)]));
        for (int c = 0; c < k; c++) s += std::exp(double(z[size_t(i * k + c)]) - mx);
        return mx + std::log(s) - double(z[size_t(i * k + y)]);
    };
    auto acc = [&](const std::vector<float>& z, const std::vector<int>& y) {
        int right = 0;
        for (size_t i = 0; i < y.size(); i++) {
            int best = 0;
            for (int c = 1; c < k; c++)
                if (z[i * k + size_t(c)] > z[i * k + size_t(best)]) best = c;
            right += best == y[i];
        }
        return double(right) / double(y.size());
    };
    std::vector<double> sm, sn;
    for (int i = 0; i < n_m; i++) sm.push_back(-loss(zm, i, ym[size_t(i)]));
    for (int i = 0; i < n_n; i++) sn.push_back(-loss(zn, i, yn[size_t(i)]));
    double pairs = 0;
    for (double a : sm)
        for (double b : sn) pairs += a > b ? 1.0 : a == b ? 0.5 : 0.0;
    CHECK(e["train_acc"].get<double>() == acc(zm, ym));
    CHECK(e["test_acc"].get<double>() == acc(zn, yn));
    CHECK(e["gap"].get<double>() == acc(zm, ym) - acc(zn, yn));
    CHECK(e["train_acc"].get<double>() > e["test_acc"].get<double>());
    CHECK(e["loss_auc"].get<double>() == doctest::Approx(pairs / (double(n_m) * n_n)).epsilon(1e-12));
    // 1% of 250 non-members: 2 may score at or above the threshold; the
    // members above the third-highest non-member are caught.
    std::vector<double> sorted_n = sn;
    std::sort(sorted_n.rbegin(), sorted_n.rend());
    const double third = sorted_n[2];
    const double tpr = double(std::count_if(sm.begin(), sm.end(), [&](double s) { return s > third; })) / n_m;
    CHECK(e["loss_tpr_at_1pct_fpr"].get<double>() == doctest::Approx(tpr).epsilon(1e-12));
    CHECK(tpr > 0);
}

TEST_CASE("report: the per-epoch table, its plot, and 'not recorded' for models trained before it existed") {
    json ms = {{"mean", 0.9}, {"std", 0.0}, {"n", 1}};
    json per_epoch = json::array();
    for (int e = 1; e <= 3; e++)
        per_epoch.push_back({{"epoch", e},
                             {"targets", 2},
                             {"train_acc", 0.5 + 0.1 * e},
                             {"test_acc", 0.5},
                             {"gap", 0.1 * e},
                             {"loss_auc", 0.5 + 0.05 * e},
                             {"loss_tpr_at_1pct_fpr", 0.01 * e}});
    auto kind = [&](bool recorded) {
        json m = {{"preset", "p"},
                  {"targets", {{{"role", "target0"}, {"attacks", json::object()}}}},
                  {"summary", {{"train_acc", ms}, {"test_acc", ms}, {"gap", ms}, {"attacks", json::object()}}}};
        if (recorded) m["per_epoch"] = per_epoch;
        else m["per_epoch_not_recorded"] = "not recorded (model trained before this was added)";
        return m;
    };
    json r = {{"config", {{"protocol", "shokri"}, {"dataset", "mnist"}, {"ds", 10}, {"shadows", 2}, {"targets", 2},
                          {"seed", 1}}},
              {"models", {{"cnn", kind(true)}, {"mamba", kind(false)}}}};
    const std::string md = markdown_report(r);
    CHECK(md.find("## Vulnerability per epoch") != std::string::npos);
    CHECK(md.find("](plots/vulnerability_per_epoch.svg)") != std::string::npos);
    CHECK(md.find("| 2 | 2 | 0.7000 | 0.5000 | 0.2000 | 0.600 | 0.020 |") != std::string::npos);
    CHECK(md.find("- mamba: not recorded (model trained before this was added)") != std::string::npos);
    CHECK(md.find("](plots/roc_loglog_both.svg)") != std::string::npos);
    CHECK(md.find("](plots/cnn_hist_logit_conf.svg)") != std::string::npos);
    CHECK(md.find("collapses to one bar") != std::string::npos);
    // The plot: cnn's two lines (AUC solid, gap dashed), 3 markers each, at
    // the epochs' x (60, 260, 460) and the values' y (400 - 360 v).
    const std::string svg = svg_vulnerability_per_epoch(r, "v");
    CHECK(count(svg, "<polyline") == 2);
    CHECK(count(svg, "<circle") == 6);
    CHECK(svg.find("points=\"60.0,202.0 260.0,184.0 460.0,166.0 \"") != std::string::npos);  // AUC 0.55..0.65
    CHECK(svg.find("points=\"60.0,364.0 260.0,328.0 460.0,292.0 \"") != std::string::npos);  // gap 0.1..0.3
    CHECK(legend_labels(svg) == std::vector<std::string>{"cnn loss attack AUC", "cnn gap (train - test acc)"});
    // A negative gap (more accurate on unseen examples) is drawn below 0, not
    // at 0: the axis then runs from -0.2 (y 400) to 1 (y 40), y = 400 - 300 (v + 0.2).
    r["models"]["cnn"]["per_epoch"][0]["gap"] = -0.1;
    const std::string neg = svg_vulnerability_per_epoch(r, "v");
    CHECK(neg.find("points=\"60.0,370.0 260.0,280.0 460.0,250.0 \"") != std::string::npos);  // gap -0.1, 0.2, 0.3
    CHECK(neg.find(">-0.2</text>") != std::string::npos);
    r["models"]["cnn"]["per_epoch"][0]["gap"] = 0.1;
    // No kind recorded: no plot linked, each kind says why.
    r["models"]["cnn"] = kind(false);
    const std::string none = markdown_report(r);
    CHECK(none.find("vulnerability_per_epoch.svg") == std::string::npos);
    CHECK(count(none, "not recorded (model trained before this was added)") == 2);
}

TEST_CASE("svg_lines: points on a log2 x axis at equal spacing per doubling, y linear from 0, one legend per series") {
    // Two series over x = 64, 128, 256, 1024: on the log2 axis the steps are
    // 1, 1 and 2 units wide; y is linear from 0 to 1.05 * the largest y.
    LineSeries a{"flat", {64, 128, 256, 1024}, {2, 2, 2, 2}, false};
    LineSeries b{"growing", {64, 128, 256, 1024}, {1, 2, 4, 8}, true};
    std::string svg = svg_lines({a, b}, "t", "context", "ms", true);
    CHECK(count(svg, "<polyline") == 2);
    CHECK(count(svg, "stroke-dasharray") == 2);  // b's line and its legend swatch
    CHECK(count(svg, "<circle") == 8);
    CHECK(count(svg, "<line x1=\"400\"") == 2);  // a swatch per legend entry, right of the plot area (390 px)
    CHECK(svg_width(svg) == 560);
    CHECK(svg.find(">flat</text>") != std::string::npos);
    CHECK(svg.find(">growing</text>") != std::string::npos);
    std::smatch m;
    std::string rest = svg;
    std::vector<std::vector<std::pair<double, double>>> lines;
    std::regex poly("points=\"([^\"]*)\"");
    while (std::regex_search(rest, m, poly)) {
        std::vector<std::pair<double, double>> pts;
        std::istringstream in(m[1].str());
        std::string xy;
        while (in >> xy) {
            size_t c = xy.find(',');
            pts.push_back({std::stod(xy.substr(0, c)), std::stod(xy.substr(c + 1))});
        }
        lines.push_back(pts);
        rest = m.suffix();
    }
    REQUIRE(lines.size() == 2);
    REQUIRE(lines[1].size() == 4);
    // The plot area: x from 60 to 560 - 170 = 390 px; y from 380 - 50 = 330 px (y = 0) up to 30 px (1.05 * 8).
    const double unit = (390.0 - 60.0) / 4;  // log2(1024 / 64) = 4 units
    for (int i = 0; i < 4; i++) CHECK(lines[1][i].first == doctest::Approx(60 + unit * std::log2(b.x[i] / 64)));
    for (int i = 0; i < 4; i++)
        CHECK(lines[1][i].second == doctest::Approx(330 - b.y[i] / (1.05 * 8) * (330 - 30)).epsilon(1e-4));
    for (const auto& p : lines[0]) CHECK(p.second == doctest::Approx(330 - 2 / (1.05 * 8) * 300).epsilon(1e-4));
}

TEST_CASE("svg_lines: points_only draws dots without a line; xnames label categories on a linear x axis") {
    LineSeries a{"mamba", {0, 1, 2}, {0.7, 0.6, 0.8}, false};
    a.points_only = true;
    LineSeries b{"transformer", {0, 2}, {0.5, 0.55}, true};
    b.points_only = true;
    const std::string svg = svg_lines({a, b}, "t", "corpus", "AUC", false, {"code", "legal", "prose"});
    CHECK(count(svg, "<polyline") == 0);
    CHECK(count(svg, "<circle") == 5 + 2);  // the points and a dot swatch per legend entry
    // Each category's name at its x: the axis runs from -0.5 to 2.5 over the
    // plot area 60..390 px, so 0 -> 115 px, 1 -> 225 px, 2 -> 335 px.
    CHECK(svg.find("<text x=\"115\" y=\"345\" text-anchor=\"middle\">code</text>") != std::string::npos);
    CHECK(svg.find("<text x=\"225\" y=\"345\" text-anchor=\"middle\">legal</text>") != std::string::npos);
    CHECK(svg.find("<text x=\"335\" y=\"345\" text-anchor=\"middle\">prose</text>") != std::string::npos);
    CHECK(svg.find(">1</text>") == std::string::npos);  // no numeric tick label left
    // A value outside the names keeps its number.
    LineSeries c{"c", {0, 3}, {1, 1}, false};
    const std::string svg2 = svg_lines({c}, "t", "x", "y", false, {"only"});
    CHECK(svg2.find(">only</text>") != std::string::npos);
    CHECK(svg2.find(">3</text>") != std::string::npos);
    // A linear axis without names: five even ticks over the data, 3 significant
    // digits, a 5% margin (x 1.7 .. 2.1 over 1.68 .. 2.12: 1.7 -> 75 px, 2.1 -> 375 px).
    LineSeries d{"d", {1.7, 1.77935, 2.1}, {0.7, 0.75, 0.6}, false};
    d.points_only = true;
    const std::string svg3 = svg_lines({d}, "t", "loss", "AUC", false);
    for (const char* t : {">1.7<", ">1.8<", ">1.9<", ">2<", ">2.1<"}) CHECK_MESSAGE(svg3.find(t) != std::string::npos, t);
    CHECK(svg3.find("1.77935") == std::string::npos);
    CHECK(svg3.find("<text x=\"75\" y=\"345\" text-anchor=\"middle\">1.7</text>") != std::string::npos);
    CHECK(svg3.find("<text x=\"375\" y=\"345\" text-anchor=\"middle\">2.1</text>") != std::string::npos);
    // A long legend label widens the SVG (7 px per character after the 40 px swatch), not the plot area.
    LineSeries e{std::string(60, 'x'), {1, 2}, {1, 2}, false};
    const std::string svg4 = svg_lines({e}, "t", "x", "y", false);
    CHECK(svg_width(svg4) == 390 + 40 + 7 * 60 + 10);
    CHECK(svg4.find("<line x1=\"60\" y1=\"330\" x2=\"390\" y2=\"330\"") != std::string::npos);  // the x axis
}

TEST_CASE("svg_lines: y_from starts the y axis (lowered by a point or whisker below it); whiskers with caps") {
    // y from 0.5: AUCs 0.6 and 0.8, whiskers [0.55, 0.7] and [0.75, 0.9].
    // The axis runs 0.5 .. 0.5 + 1.05 * (0.9 - 0.5) = 0.92 over y 330..30 px.
    LineSeries a{"mamba", {1, 2}, {0.6, 0.8}, false};
    a.points_only = true;
    a.y_lo = {0.55, 0.75};
    a.y_hi = {0.7, 0.9};
    const std::string svg = svg_lines({a}, "t", "x", "AUC", false, {}, 0.5);
    auto Y = [](double y) { return 330 - (y - 0.5) / 0.42 * 300; };
    CHECK(count(svg, "class=\"whisker\"") == 2);
    CHECK(svg.find(">0.5</text>") != std::string::npos);  // the lowest y tick
    CHECK(svg.find(">0.92</text>") != std::string::npos);  // the highest
    // the first point's dot and whisker: x 1 -> 75 px (a 5% margin on x 1..2)
    char b[160];
    std::snprintf(b, sizeof b, "<circle cx=\"75\" cy=\"%g\"", Y(0.6));
    CHECK(svg.find(b) != std::string::npos);
    std::snprintf(b, sizeof b, "d=\"M75,%g V%g M71,%g h8 M71,%g h8\"", Y(0.55), Y(0.7), Y(0.55), Y(0.7));
    CHECK(svg.find(b) != std::string::npos);
    // A whisker below y_from lowers the axis to it: 0.4 .. 0.4 + 1.05 * 0.5 = 0.925.
    a.y_lo[0] = 0.4;
    const std::string low = svg_lines({a}, "t", "x", "AUC", false, {}, 0.5);
    CHECK(low.find(">0.4</text>") != std::string::npos);
    CHECK(low.find(">0.925</text>") != std::string::npos);
    // Equal ends (one seed): no whisker at that point.
    a.y_lo = {0.6, 0.75};
    a.y_hi = {0.6, 0.9};
    CHECK(count(svg_lines({a}, "t", "x", "AUC", false, {}, 0.5), "class=\"whisker\"") == 1);
    // Without y_from the axis starts at 0 as before.
    CHECK(svg_lines({a}, "t", "x", "AUC", false).find(">0</text>") != std::string::npos);
}

TEST_CASE("svg_lines: a series' colour index picks its palette colour; dashed points-only series draw hollow dots") {
    LineSeries a{"a", {1, 2}, {1, 2}, false}, b{"b", {1, 2}, {2, 1}, true};
    a.colour = 2;   // tab10 green
    b.colour = 12;  // 12 mod 10 = 2: the same green
    b.points_only = true;
    const std::string svg = svg_lines({a, b}, "t", "x", "y", false);
    CHECK(count(svg, "stroke=\"#2ca02c\" stroke-width=\"2\"") == 2);  // a's line and its legend swatch
    CHECK(count(svg, "r=\"3\" fill=\"#2ca02c\"") == 2);              // a's two dots
    CHECK(count(svg, "fill=\"white\" stroke=\"#2ca02c\"") == 2 + 1);  // b's two hollow dots and its swatch
    CHECK(svg.find("#1f77b4") == std::string::npos);                     // no colour by position
    // Without an index, by position through 10 colours: the 11th is blue again.
    std::vector<LineSeries> many;
    for (int i = 0; i < 11; i++) many.push_back({"s" + std::to_string(i), {1, 2}, {1, 2}, false});
    const std::string m = svg_lines(many, "t", "x", "y", false);
    CHECK(count(m, "stroke=\"#17becf\"") == 2);  // the 10th: line and swatch
    CHECK(count(m, "stroke=\"#1f77b4\"") == 4);  // the 1st and the 11th
}

namespace {

// A finished run's metrics.json as privacy_utility_points reads it: the
// defence spec (absent: none), and per kind a test accuracy and two attacks.
json utility_run(const std::string& spec, double cnn_acc, double cnn_auc, double mamba_acc, double mamba_auc,
                 bool targets_only = false) {
    json r;
    r["config"] = json::object();
    if (!spec.empty()) {
        r["config"]["defence"] = {{"spec", spec},
                                  {"applied_to", targets_only ? "targets only (pg1647's mitigation)" : "all models"}};
        if (spec.rfind("dp:", 0) == 0)
            r["config"]["defence"]["privacy"] = {{"cnn", {{"epsilon", 7.987}}}, {"mamba", {{"epsilon", 7.981}}}};
    }
    auto kind = [](double acc, double auc) {
        return json{{"summary",
                     {{"test_acc", {{"mean", acc}}},
                      {"attacks", {{"loss", {{"auc", {{"mean", auc - 0.01}}}}}, {"shokri_mlp", {{"auc", {{"mean", auc}}}}}}}}}};
    };
    r["models"] = {{"cnn", kind(cnn_acc, cnn_auc)}, {"mamba", kind(mamba_acc, mamba_auc)}};
    return r;
}

}  // namespace

TEST_CASE("privacy-utility plot: a setting's first number is its strength; one curve per kind and family, by strength") {
    // The points of one run: its spec split at the first "=NUMBER".
    std::vector<UtilityPoint> p = privacy_utility_points(utility_run("dp:eps=8,C=1,delta=1e-05", 0.89, 0.519, 0.68, 0.542));
    REQUIRE(p.size() == 2);
    CHECK(p[0].kind == "cnn");
    CHECK(p[0].label == "cnn (dp:eps=8,C=1,delta=1e-05, ε 7.99)");
    CHECK((p[0].head == "dp:eps=" && p[0].tail == ",C=1,delta=1e-05" && p[0].strength == 8 && p[0].strength_text == "8"));
    CHECK((p[0].test_acc == 0.89 && p[0].auc == 0.519));  // the strongest attack (shokri_mlp), not the loss attack
    CHECK((p[1].kind == "mamba" && p[1].auc == 0.542));
    auto one = [](const std::string& spec, bool targets_only = false) {
        return privacy_utility_points(utility_run(spec, 0.9, 0.55, 0.8, 0.56, targets_only)).at(0);
    };
    CHECK((one("l2=0.05").head == "l2=" && one("l2=0.05").tail.empty() && one("l2=0.05").strength_text == "0.05"));
    CHECK((one("").head == "none" && std::isnan(one("").strength)));
    CHECK((one("label-only").head == "label-only" && std::isnan(one("label-only").strength)));
    // A first "=" without a number is skipped; "targets only" joins the tail.
    const UtilityPoint t = one("top-k=x,l2=1e-05", true);
    CHECK((t.head == "top-k=x,l2=" && t.strength == 1e-05 && t.strength_text == "1e-05" && t.tail == ", targets only"));

    // A sweep: none, DP at epsilon 8, 1, 2 (out of order), L2 1 and 10, label-only.
    std::vector<UtilityPoint> all;
    for (const json& r : {utility_run("", 0.97, 0.554, 0.92, 0.562), utility_run("dp:eps=8,C=1", 0.89, 0.519, 0.68, 0.542),
                          utility_run("dp:eps=1,C=1", 0.79, 0.519, 0.34, 0.524), utility_run("dp:eps=2,C=1", 0.85, 0.52, 0.5, 0.53),
                          utility_run("l2=10", 0.9, 0.51, 0.8, 0.52), utility_run("l2=1", 0.96, 0.531, 0.91, 0.554),
                          utility_run("label-only", 0.97, 0.5, 0.92, 0.5)})
        for (UtilityPoint& q : privacy_utility_points(r)) all.push_back(q);
    const std::vector<LineSeries> s = privacy_utility_series(all);
    REQUIRE(s.size() == 8);  // {none, DP, L2, label-only} x {cnn, mamba}, in order of first appearance
    CHECK(s[0].name == "cnn (none)");
    CHECK(s[1].name == "mamba (none)");
    CHECK(s[2].name == "cnn dp:eps={1, 2, 8},C=1");
    CHECK(s[3].name == "mamba dp:eps={1, 2, 8},C=1");
    CHECK(s[4].name == "cnn l2={1, 10}");
    CHECK(s[6].name == "cnn (label-only)");
    // Sorted by strength: epsilon 1, 2, 8; each point where the runs put it.
    CHECK(s[2].x == std::vector<double>{0.79, 0.85, 0.89});
    CHECK(s[2].y == std::vector<double>{0.519, 0.52, 0.519});
    CHECK(s[3].x == std::vector<double>{0.34, 0.5, 0.68});
    CHECK(s[5].y == std::vector<double>{0.554, 0.52});
    // Colour by family (the kinds under one defence share it), style by kind.
    for (int i = 0; i < 8; i++) {
        CAPTURE(i);
        CHECK(s[i].colour == i / 2);
        CHECK(s[i].dashed == (i % 2 == 1));
        CHECK(s[i].points_only == (i < 2 || i >= 6));  // a lone point is a dot, a family of several a curve
    }

    // The SVG: the y axis from chance (0.5), both curves and every name, escaped.
    const std::string svg = svg_privacy_utility(all, "Privacy & utility");
    CHECK(svg.find("Privacy &amp; utility") != std::string::npos);
    CHECK(svg.find(">0.5</text>") != std::string::npos);
    CHECK(count(svg, "<polyline") == 4);
    CHECK(count(svg, "<circle") == 7 * 2 + 4);  // every point, and the 4 lone points' legend dots
    CHECK(svg.find(">mamba dp:eps={1, 2, 8},C=1</text>") != std::string::npos);
    std::vector<UtilityPoint> odd = {all[0]};
    odd[0].label = "cnn (<script>)";
    CHECK(svg_privacy_utility(odd, "t").find("cnn (&lt;script&gt;)") != std::string::npos);
}
