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

// report.md from the content of metrics.json (run.cpp's result).
std::string markdown_report(const nlohmann::json& result);

}  // namespace mmia
