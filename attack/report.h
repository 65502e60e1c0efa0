// report.h: what a person reads after an attack run: report.md (Mamba and
// CNN side by side) and small self-contained SVG plots (no plotting
// library: a polyline per curve).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "attack/metrics.h"

namespace mmia {

struct NamedRoc {
    std::string name;
    std::vector<RocPoint> roc;
};

// ROC curves, TPR against FPR; loglog: both axes log10 from 1e-4 to 1 (where
// the low-FPR regime that matters for privacy is visible), with the chance
// diagonal.
std::string svg_roc(const std::vector<NamedRoc>& curves, bool loglog, const std::string& title);

// Member and non-member score histograms over the same bins.
std::string svg_histogram(const ScoreHistogram& h, const std::string& title);

// One point of the privacy-utility plot: a model kind under one setting.
struct UtilityPoint {
    std::string label;    // "cnn (dp:eps=8,C=1,delta=1e-05)"
    double test_acc = 0;  // mean over the targets
    double auc = 0;       // the strongest attack's mean AUC
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

// Privacy against utility: test accuracy (x, 0..1) against the strongest
// attack's AUC (y, 0.5..1, lower = more private), one labelled marker per
// point.
std::string svg_privacy_utility(const std::vector<UtilityPoint>& points, const std::string& title);

// report.md from the content of metrics.json (run.cpp's result).
std::string markdown_report(const nlohmann::json& result);

}  // namespace mmia
