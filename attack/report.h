// report.h: what a person reads after an attack run: report.md (Mamba and
// CNN side by side) and small self-contained SVG plots (no plotting
// library: a polyline per curve).
#pragma once

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/svg_lines.h"

#include "attack/metrics.h"

namespace mmia {

struct NamedRoc {
    std::string name;
    std::vector<RocPoint> roc;
    std::string color = "";  // "" = the c-th of the plot's palette
    bool dashed = false;  // drawn dashed (svg_roc_kinds: the second kind)
};

// ROC curves, TPR against FPR; loglog: both axes log10 from 1e-4 to 1 (where
// the low-FPR regime that matters for privacy is visible), with the chance
// diagonal. The canvas widens with the longest name (legend_width), so no
// legend entry is clipped.
std::string svg_roc(const std::vector<NamedRoc>& curves, bool loglog, const std::string& title);

// The canvas width (px) whose legend column (from x = 495) holds a label of
// `longest` characters at 12 px sans-serif: max(640, 505 + 8 * longest)
// (8 px bounds the advance of the characters in our labels).
int legend_width(size_t longest);

// The curves to compare across kinds: the `n` of `curves` with the highest
// "auc" in `attack_metrics` ({name: {"auc", ...}}, one target's metrics;
// seed000_on_target and attacks without an AUC left out), highest first,
// then `also` (e.g. "lira_online") when it is among the curves and not yet
// chosen.
std::vector<NamedRoc> strongest_rocs(const std::vector<NamedRoc>& curves, const nlohmann::json& attack_metrics,
                                     size_t n, const std::string& also);

// Several model kinds' curves on the same log-log ROC axes, each labelled
// "<kind> <attack>": the first kind in solid blues, the second dashed in
// reds (then greens, purples), so a reader tells the kinds apart by colour
// family and by line style.
std::string svg_roc_kinds(const std::vector<std::pair<std::string, std::vector<NamedRoc>>>& per_kind,
                          const std::string& title);

// Member and non-member score histograms over the same bins; xlabel names
// the score.
std::string svg_histogram(const ScoreHistogram& h, const std::string& title,
                          const std::string& xlabel = "attack score (higher = member)");

// LiRA's logit-scaled confidence phi = log(p_y / (1 - p_y)) of every row
// (attack/features.h logit_scaled_confidences, stable from the logits:
// finite where p_y rounds to 1) in `bins` equal-width bins (score_histogram),
// members vs non-members. logits: n rows of k; labels, is_member: n each.
// Unlike the loss, which an overfit model squeezes into [0, ~1e-6) for
// nearly every example, phi keeps the confident examples apart (a margin of
// 20 vs 30 is phi 20 - log 9 vs 30 - log 9 for 10 classes). Throws
// what logit_scaled_confidences and score_histogram throw.
ScoreHistogram logit_confidence_histogram(const std::vector<float>& logits, int k, const std::vector<int>& labels,
                                          const std::vector<int>& is_member, int bins);

// Vulnerability per epoch: for each model kind with a "per_epoch" array in
// result["models"][kind] (run.cpp: {"epoch", "loss_auc", "gap", ...}), the
// loss attack's AUC (solid) and the generalisation gap (dashed) against the
// epoch, every kind on the same axes (y 0..1); kinds without one are left
// out.
std::string svg_vulnerability_per_epoch(const nlohmann::json& result, const std::string& title);

// One point of the privacy-utility plot: a model kind under one setting.
// The setting's first number is its strength ("dp:eps=8,C=1" -> 8, "l2=1"
// -> 1); points whose settings differ only there form one curve.
struct UtilityPoint {
    std::string label;    // "cnn (dp:eps=8,C=1,delta=1e-05, ε 7.99)"
    double test_acc = 0;  // mean over the targets
    double auc = 0;       // the strongest attack's mean AUC
    std::string kind;     // "cnn", "mamba"
    // The setting with its first number cut out, as {head, tail}:
    // "dp:eps=8,C=1" -> {"dp:eps=", ",C=1"}; with ", targets only" appended
    // for the pg1647 contrast. A setting without a number ("none",
    // "label-only"): {setting, ""} and strength NaN.
    std::string head, tail;
    double strength = NAN;     // that number
    std::string strength_text; // as the setting writes it ("8", "1e-05")
};

// The strongest attack by `key` ("auc", "tpr_at_1pct_fpr", ...) in a
// summary's "attacks" ({name: {key: {"mean", ...}}}): the largest mean,
// leaving out seed000_on_target (not an outsider's attack); "" when none has
// the key.
std::string strongest_attack(const nlohmann::json& summary_attacks, const char* key);

// The run's points: per model kind, its test accuracy and its strongest
// attack's AUC, labelled with the kind and the defence spec (and "targets
// only" for the pg1647 contrast).
std::vector<UtilityPoint> privacy_utility_points(const nlohmann::json& result);

// The plot's series (common/svg_lines.h), one per model kind and setting
// family in the order of first appearance: a family's points sorted by
// strength and joined by a line (named "cnn dp:eps={1, 2, 4, 8},C=1"), a
// lone point a dot named by its label. Colour by family, so the kinds under
// one defence share it; line style by kind (the first solid / filled dots,
// the others dashed / hollow dots).
std::vector<LineSeries> privacy_utility_series(const std::vector<UtilityPoint>& points);

// Privacy against utility: test accuracy (x) against the strongest attack's
// AUC (y, from 0.5 = chance; lower = more private), privacy_utility_series'
// curves and dots. Names are XML-escaped.
std::string svg_privacy_utility(const std::vector<UtilityPoint>& points, const std::string& title);

// report.md from the content of metrics.json (run.cpp's result).
std::string markdown_report(const nlohmann::json& result);

}  // namespace mmia
