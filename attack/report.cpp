// report.cpp: report.md and the SVG plots of an attack run (see report.h).
#include "attack/report.h"

#include "attack/features.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace mmia {

using json = nlohmann::json;

namespace {

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

std::string escape_xml(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '<') o += "&lt;";
        else if (c == '>') o += "&gt;";
        else if (c == '&') o += "&amp;";
        else o += c;
    }
    return o;
}

// Plot area: 60..460 x 40..400 in a 640 x 460 canvas (legend on the right).
constexpr double X0 = 60, X1 = 460, Y0 = 400, Y1 = 40;

// width: the canvas's (the legend's room grows with it).
std::string svg_open(const std::string& title, int width = 640) {
    const std::string w = std::to_string(width);
    return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + w + "\" height=\"460\" font-family=\"sans-serif\" "
           "font-size=\"12\">\n<rect width=\"" + w + "\" height=\"460\" fill=\"white\"/>\n<text x=\"20\" y=\"22\" "
           "font-size=\"14\">" + escape_xml(title) + "</text>\n" +
           "<rect x=\"60\" y=\"40\" width=\"400\" height=\"360\" fill=\"none\" stroke=\"black\"/>\n";
}

}  // namespace

int legend_width(size_t longest) { return std::max(640, 505 + 8 * int(longest)); }

namespace {

// The ROC axes: ticks, grid, labels and the chance diagonal (TPR = FPR).
template <class PX, class PY>
void roc_axes(std::ostream& o, bool loglog, PX px, PY py) {
    std::vector<double> ticks = loglog ? std::vector<double>{1e-4, 1e-3, 1e-2, 1e-1, 1}
                                       : std::vector<double>{0, 0.2, 0.4, 0.6, 0.8, 1};
    for (double t : ticks) {
        std::string lab = loglog ? fmt("%g", t) : fmt("%.1f", t);
        o << "<text x=\"" << px(t) - 10 << "\" y=\"416\">" << lab << "</text>\n";
        o << "<text x=\"20\" y=\"" << py(t) + 4 << "\">" << lab << "</text>\n";
        o << "<line x1=\"" << px(t) << "\" y1=\"400\" x2=\"" << px(t) << "\" y2=\"40\" stroke=\"#eee\"/>\n";
        o << "<line x1=\"60\" y1=\"" << py(t) << "\" x2=\"460\" y2=\"" << py(t) << "\" stroke=\"#eee\"/>\n";
    }
    o << "<text x=\"220\" y=\"440\">false positive rate</text>\n";
    o << "<text x=\"14\" y=\"36\">TPR</text>\n";
    o << "<polyline fill=\"none\" stroke=\"#999\" stroke-dasharray=\"4 3\" points=\"";
    for (int i = 0; i <= 40; i++) {
        double v = loglog ? std::pow(10.0, -4.0 + 4.0 * i / 40) : i / 40.0;
        o << px(v) << "," << py(v) << " ";
    }
    o << "\"/>\n";
}

// Legend entry `row` (0 at the top) of the right-hand column: a short line
// in the curve's colour and style, and its name.
void legend_line(std::ostream& o, size_t row, const std::string& col, bool dashed, const std::string& name) {
    o << "<line x1=\"470\" y1=\"" << 50 + 18 * row << "\" x2=\"490\" y2=\"" << 50 + 18 * row << "\" stroke=\""
      << col << "\" stroke-width=\"2\"" << (dashed ? " stroke-dasharray=\"6 3\"" : "") << "/><text x=\"495\" y=\""
      << 54 + 18 * row << "\">" << escape_xml(name) << "</text>\n";
}

}  // namespace

std::string svg_roc(const std::vector<NamedRoc>& curves, bool loglog, const std::string& title) {
    const double lo = 1e-4;
    auto ax = [&](double v) {
        if (!loglog) return v;
        return (std::log10(std::max(v, lo)) - std::log10(lo)) / -std::log10(lo);
    };
    auto px = [&](double fpr) { return X0 + (X1 - X0) * ax(fpr); };
    auto py = [&](double tpr) { return Y0 + (Y1 - Y0) * ax(tpr); };
    size_t longest = 0;
    for (const NamedRoc& c : curves) longest = std::max(longest, c.name.size());
    std::ostringstream o;
    o << svg_open(title, legend_width(longest));
    roc_axes(o, loglog, px, py);
    for (size_t c = 0; c < curves.size(); c++) {
        const std::string col = curves[c].color.empty() ? kColors[c % 8] : curves[c].color;
        o << "<polyline fill=\"none\" stroke=\"" << col << "\" stroke-width=\"1.5\""
          << (curves[c].dashed ? " stroke-dasharray=\"6 3\"" : "") << " points=\"";
        // A ROC has up to n points: keep one per pixel column and row change.
        double lx = -1, ly = -1;
        for (const auto& p : curves[c].roc) {
            double x = px(p.fpr), y = py(p.tpr);
            if (std::fabs(x - lx) < 0.5 && std::fabs(y - ly) < 0.5) continue;
            o << fmt("%.1f", x) << "," << fmt("%.1f", y) << " ";
            lx = x, ly = y;
        }
        o << "\"/>\n";
        legend_line(o, c, col, curves[c].dashed, curves[c].name);
    }
    o << "</svg>\n";
    return o.str();
}

std::vector<NamedRoc> strongest_rocs(const std::vector<NamedRoc>& curves, const json& attack_metrics, size_t n,
                                     const std::string& also) {
    std::vector<std::pair<double, size_t>> ranked;  // (AUC, index in curves)
    for (size_t i = 0; i < curves.size(); i++) {
        const std::string& a = curves[i].name;
        if (a != "seed000_on_target" && attack_metrics.contains(a) && attack_metrics[a].contains("auc"))
            ranked.push_back({attack_metrics[a]["auc"].get<double>(), i});
    }
    // Highest AUC first; equal AUCs keep the curves' order.
    std::stable_sort(ranked.begin(), ranked.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
    std::vector<NamedRoc> out;
    for (size_t i = 0; i < ranked.size() && i < n; i++) out.push_back(curves[ranked[i].second]);
    bool have = also.empty();
    for (const NamedRoc& c : out) have = have || c.name == also;
    for (const NamedRoc& c : curves)
        if (!have && c.name == also) out.push_back(c), have = true;
    return out;
}

std::string svg_roc_kinds(const std::vector<std::pair<std::string, std::vector<NamedRoc>>>& per_kind,
                          const std::string& title) {
    // Colour families, dark to light; a kind's curves take its family in order.
    static const std::vector<std::vector<std::string>> families = {
        {"#08306b", "#2171b5", "#4292c6", "#6baed6", "#9ecae1"},
        {"#67000d", "#cb181d", "#ef3b2c", "#fb6a4a", "#fc9272"},
        {"#00441b", "#238b45", "#41ab5d", "#74c476", "#a1d99b"},
        {"#3f007d", "#6a51a3", "#807dba", "#9e9ac8", "#bcbddc"}};
    std::vector<NamedRoc> all;
    for (size_t k = 0; k < per_kind.size(); k++) {
        const auto& fam = families[k % families.size()];
        for (size_t c = 0; c < per_kind[k].second.size(); c++) {
            NamedRoc r = per_kind[k].second[c];
            r.name = per_kind[k].first + " " + r.name;
            r.color = fam[c % fam.size()];
            r.dashed = k % 2 == 1;
            all.push_back(std::move(r));
        }
    }
    return svg_roc(all, true, title);
}

ScoreHistogram logit_confidence_histogram(const std::vector<float>& logits, int k, const std::vector<int>& labels,
                                          const std::vector<int>& is_member, int bins) {
    return score_histogram(logit_scaled_confidences(logits, k, labels), is_member, bins);
}

std::string svg_histogram(const ScoreHistogram& h, const std::string& title, const std::string& xlabel) {
    std::ostringstream o;
    o << svg_open(title);
    const size_t bins = h.members.size();
    int64_t top = 1;
    for (size_t i = 0; i < bins; i++) top = std::max({top, h.members[i], h.nonmembers[i]});
    const double w = (X1 - X0) / double(std::max<size_t>(bins, 1));
    auto bar = [&](const std::vector<int64_t>& v, const char* col) {
        for (size_t i = 0; i < bins; i++) {
            const double hgt = (Y0 - Y1) * double(v[i]) / double(top);
            o << "<rect x=\"" << fmt("%.1f", X0 + w * i) << "\" y=\"" << fmt("%.1f", Y0 - hgt) << "\" width=\""
              << fmt("%.1f", w) << "\" height=\"" << fmt("%.1f", hgt) << "\" fill=\"" << col
              << "\" fill-opacity=\"0.5\"/>\n";
        }
    };
    bar(h.nonmembers, kColors[0]);
    bar(h.members, kColors[1]);
    if (!h.edges.empty()) {
        o << "<text x=\"60\" y=\"416\">" << fmt("%.3g", h.edges.front()) << "</text>\n";
        o << "<text x=\"430\" y=\"416\">" << fmt("%.3g", h.edges.back()) << "</text>\n";
    }
    o << "<text x=\"14\" y=\"36\">count (max " << top << ")</text>\n";
    o << "<text x=\"220\" y=\"440\">" << escape_xml(xlabel) << "</text>\n";
    o << "<rect x=\"470\" y=\"44\" width=\"14\" height=\"10\" fill=\"" << kColors[1]
      << "\" fill-opacity=\"0.5\"/><text x=\"490\" y=\"54\">members</text>\n";
    o << "<rect x=\"470\" y=\"62\" width=\"14\" height=\"10\" fill=\"" << kColors[0]
      << "\" fill-opacity=\"0.5\"/><text x=\"490\" y=\"72\">non-members</text>\n";
    o << "</svg>\n";
    return o.str();
}

std::vector<LineSeries> privacy_utility_series(const std::vector<UtilityPoint>& points) {
    std::vector<std::string> kinds, families;  // colour and line style: the position of first appearance
    std::vector<std::pair<std::string, std::vector<const UtilityPoint*>>> groups;  // "kind\nhead\ntail" -> points
    auto index_of = [](std::vector<std::string>& v, const std::string& x) {
        auto it = std::find(v.begin(), v.end(), x);
        if (it != v.end()) return size_t(it - v.begin());
        v.push_back(x);
        return v.size() - 1;
    };
    for (const UtilityPoint& p : points) {
        const std::string key = p.kind + "\n" + p.head + "\n" + p.tail;
        auto g = std::find_if(groups.begin(), groups.end(), [&](const auto& e) { return e.first == key; });
        if (g == groups.end()) groups.push_back({key, {&p}});
        else g->second.push_back(&p);
    }
    std::vector<LineSeries> out;
    for (auto& [key, pts] : groups) {
        // By strength, NaN (no number) last: a strict weak order even if both kinds meet.
        std::stable_sort(pts.begin(), pts.end(), [](const UtilityPoint* x, const UtilityPoint* y) {
            if (std::isnan(x->strength) || std::isnan(y->strength))
                return !std::isnan(x->strength) && std::isnan(y->strength);
            return x->strength < y->strength;
        });
        const UtilityPoint& first = *pts.front();
        LineSeries s;
        s.colour = int(index_of(families, first.head + "\n" + first.tail));
        s.dashed = index_of(kinds, first.kind) > 0;
        s.points_only = pts.size() == 1;
        if (s.points_only) {
            s.name = escape_xml(first.label);
        } else {
            std::string values;
            for (const UtilityPoint* p : pts) values += (values.empty() ? "" : ", ") + p->strength_text;
            s.name = escape_xml(first.kind + " " + first.head + "{" + values + "}" + first.tail);
        }
        for (const UtilityPoint* p : pts) {
            s.x.push_back(p->test_acc);
            s.y.push_back(p->auc);
        }
        out.push_back(std::move(s));
    }
    return out;
}

std::string svg_privacy_utility(const std::vector<UtilityPoint>& points, const std::string& title) {
    return svg_lines(privacy_utility_series(points), escape_xml(title), "test accuracy (utility)",
                     "strongest attack AUC (0.5 = chance)", false, {}, 0.5);
}

namespace {

// The kinds of a result with a recorded "per_epoch" array, and the last epoch.
std::vector<std::pair<std::string, const json*>> per_epoch_kinds(const json& r, int* max_epoch) {
    std::vector<std::pair<std::string, const json*>> kinds;
    *max_epoch = 1;
    for (auto& [k, m] : r.at("models").items())
        if (m.contains("per_epoch") && m["per_epoch"].is_array() && !m["per_epoch"].empty()) {
            kinds.push_back({k, &m["per_epoch"]});
            for (const json& e : m["per_epoch"]) *max_epoch = std::max(*max_epoch, e.at("epoch").get<int>());
        }
    return kinds;
}

}  // namespace

std::string svg_vulnerability_per_epoch(const json& r, const std::string& title) {
    int last = 1;
    const auto kinds = per_epoch_kinds(r, &last);
    auto px = [&](double e) { return X0 + (X1 - X0) * (last == 1 ? 0.5 : (e - 1) / (last - 1)); };
    // y from 1 down to 0, or lower in steps of 0.2 when a gap is negative
    // (a model more accurate on unseen examples than on its members).
    double lo = 0;
    for (const auto& k : kinds)
        for (const json& e : *k.second)
            for (const char* key : {"loss_auc", "gap"}) lo = std::min(lo, e[key].get<double>());
    lo = std::max(-1.0, std::floor(lo * 5) / 5);
    auto py = [&](double v) { return Y0 + (Y1 - Y0) * (std::clamp(v, lo, 1.0) - lo) / (1 - lo); };
    size_t longest = 0;
    for (const auto& k : kinds) longest = std::max(longest, k.first.size() + 24);  // "<kind> gap (train - test acc)"
    std::ostringstream o;
    o << svg_open(title, legend_width(longest));
    for (int i = int(std::lround(lo * 5)); i <= 5; i++) {
        o << "<text x=\"20\" y=\"" << py(i / 5.0) + 4 << "\">" << fmt("%.1f", i / 5.0) << "</text>\n";
        o << "<line x1=\"60\" y1=\"" << py(i / 5.0) << "\" x2=\"460\" y2=\"" << py(i / 5.0) << "\" stroke=\""
          << (i == 0 && lo < 0 ? "#999" : "#eee") << "\"/>\n";
    }
    const int step = std::max(1, (last + 9) / 10);  // at most about 10 epoch labels
    for (int e = 1; e <= last; e += step)
        o << "<text x=\"" << fmt("%.1f", px(e) - 4) << "\" y=\"416\">" << e << "</text>\n";
    o << "<line x1=\"60\" y1=\"" << py(0.5) << "\" x2=\"460\" y2=\"" << py(0.5)
      << "\" stroke=\"#999\" stroke-dasharray=\"2 3\"/>\n";  // AUC 0.5: chance
    o << "<text x=\"240\" y=\"440\">epoch</text>\n<text x=\"60\" y=\"32\">loss attack AUC; gap</text>\n";
    for (size_t c = 0; c < kinds.size(); c++) {
        const char* col = kColors[c % 8];
        for (const char* key : {"loss_auc", "gap"}) {
            const bool dashed = std::string(key) == "gap";
            o << "<polyline fill=\"none\" stroke=\"" << col << "\" stroke-width=\"1.5\""
              << (dashed ? " stroke-dasharray=\"6 3\"" : "") << " points=\"";
            for (const json& e : *kinds[c].second)
                o << fmt("%.1f", px(e["epoch"].get<double>())) << "," << fmt("%.1f", py(e[key].get<double>())) << " ";
            o << "\"/>\n";
            for (const json& e : *kinds[c].second)
                o << "<circle cx=\"" << fmt("%.1f", px(e["epoch"].get<double>())) << "\" cy=\""
                  << fmt("%.1f", py(e[key].get<double>())) << "\" r=\"2.5\" fill=\"" << col << "\"/>\n";
            legend_line(o, 2 * c + (dashed ? 1 : 0), col, dashed,
                        kinds[c].first + (dashed ? " gap (train - test acc)" : " loss attack AUC"));
        }
    }
    o << "</svg>\n";
    return o.str();
}

std::string strongest_attack(const json& summary_attacks, const char* key) {
    std::string best;
    double bm = -1;
    for (auto& [a, m] : summary_attacks.items())
        if (a != "seed000_on_target" && m.contains(key) && m[key]["mean"].get<double>() > bm)
            best = a, bm = m[key]["mean"].get<double>();
    return best;
}

std::vector<UtilityPoint> privacy_utility_points(const json& r) {
    std::vector<UtilityPoint> out;
    const json& c = r.at("config");
    const std::string spec = c.contains("defence") ? c["defence"]["spec"].get<std::string>() : "none";
    const std::string suffix =
        c.contains("defence") && c["defence"]["applied_to"].get<std::string>().rfind("targets only", 0) == 0
            ? ", targets only"
            : "";
    const std::string setting = spec + suffix;
    for (auto& [kind, m] : r.at("models").items()) {
        const std::string best = strongest_attack(m["summary"]["attacks"], "auc");
        if (best.empty()) continue;
        std::string eps;  // DP: the planned epsilon
        if (c.contains("defence") && c["defence"].contains("privacy") && c["defence"]["privacy"].contains(kind)) {
            const json& e = c["defence"]["privacy"][kind]["epsilon"];
            eps = ", ε " + (e.is_number() ? fmt("%.3g", e.get<double>()) : std::string("inf"));
        }
        UtilityPoint p;
        p.label = kind + " (" + setting + eps + ")";
        p.test_acc = m["summary"]["test_acc"]["mean"].get<double>();
        p.auc = m["summary"]["attacks"][best]["auc"]["mean"].get<double>();
        p.kind = kind;
        p.head = setting;
        // The first "=NUMBER" of the spec is the strength: "dp:eps=8,C=1" -> "dp:eps=" 8 ",C=1".
        for (size_t eq = spec.find('='); eq != std::string::npos; eq = spec.find('=', eq + 1)) {
            const char* from = spec.c_str() + eq + 1;
            char* end = nullptr;
            const double v = std::strtod(from, &end);
            if (end == from || !std::isfinite(v)) continue;
            p.head = spec.substr(0, eq + 1);
            p.strength = v;
            p.strength_text = std::string(from, static_cast<const char*>(end));
            p.tail = std::string(end) + suffix;
            break;
        }
        out.push_back(std::move(p));
    }
    return out;
}

namespace {

// "0.912 ± 0.004" from {"mean", "std", "n"}; without ± for one repeat.
std::string pm(const json& ms, const char* f = "%.3f") {
    std::string s = fmt(f, ms.at("mean").get<double>());
    if (ms.at("n").get<int64_t>() > 1) s += " ± " + fmt(f, ms.at("std").get<double>());
    return s;
}

}  // namespace

namespace {

// The title and what the run was.
void report_intro(std::ostream& o, const json& r) {
    const json& c = r.at("config");
    const std::string protocol = c.at("protocol");
    o << "# Membership inference: " << c.at("dataset").get<std::string>() << ", " << protocol << " protocol\n\n";
    o << "Each model trains on ds = " << c.at("ds") << " examples; ";
    if (protocol == "shokri")
        o << c.at("targets") << " target model(s) per kind, each attacked with " << c.at("shadows")
          << " shadow models (the same splits for every kind).";
    else
        o << (c.at("shadows").get<int>() + 1) << " models per kind, each on a random half of a pool of "
          << 2 * c.at("ds").get<int64_t>() << "; every model is the target in turn, the others its references.";
    o << " Seed " << c.at("seed") << ".";
    if (c.value("null_members", false))
        o << " **Sanity run: the targets' \"members\" are fresh examples they never saw; every AUC should be 0.5.**";
    if (c.contains("defence")) {
        const json& d = c["defence"];
        o << "\n\n**Defence: `" << d["spec"].get<std::string>() << "`, applied to " << d["applied_to"].get<std::string>()
          << ".**";
        if (d["applied_to"].get<std::string>().rfind("targets only", 0) == 0)
            o << " This reproduces pg1647's mitigation as a contrast: the attacker's shadows are trained without the "
                 "defence, a threat-model mismatch that overstates the protection (docs/PRIVACY.md).";
        if (d.contains("privacy"))
            for (auto& [kind, p] : d["privacy"].items())
                o << " " << kind << ": DP-SGD noise multiplier " << fmt("%.4g", p["noise_multiplier"].get<double>())
                  << ", q " << fmt("%.4g", p["sample_rate"].get<double>()) << ", " << p["steps"] << " steps: epsilon "
                  << (p["epsilon"].is_number() ? fmt("%.3g", p["epsilon"].get<double>()) : std::string("inf"))
                  << " at delta " << fmt("%g", p["delta"].get<double>())
                  << " (planned; each model's .privacy.json has the steps it took)"
                  << (p.contains("learning_rate") ? ", learning rate " + fmt("%g", p["learning_rate"].get<double>()) : std::string())
                  << ".";
    }
    o << "\nValues are mean ± standard deviation over the targets (one number where there is one target). "
         "Membership is the positive class; "
         "scores are higher for members. Definitions: docs/ATTACKS.md.\n\n";

}

// Train and test accuracy per kind.
void report_models(std::ostream& o, const json& r, const std::vector<std::string>& kinds) {
    o << "## Models\n\n| model | preset | targets | train acc | test acc | gap |\n| --- | --- | --- | --- | --- | --- |\n";
    for (const auto& k : kinds) {
        const json& m = r["models"][k];
        const json& s = m["summary"];
        o << "| " << k << " | " << m["preset"].get<std::string>() << " | " << s["train_acc"]["n"] << " | "
          << pm(s["train_acc"], "%.4f") << " | " << pm(s["test_acc"], "%.4f") << " | " << pm(s["gap"], "%.4f")
          << " |\n";
    }

}

// AUC, TPR at 1% and 0.1% FPR, advantage and balanced accuracy of every attack.
void report_attacks(std::ostream& o, const json& r, const std::vector<std::string>& kinds,
                    const std::vector<std::string>& attacks) {
    o << "\n## Attacks\n\n| attack |";
    for (const auto& k : kinds) o << " " << k << " AUC | " << k << " TPR@1%FPR | " << k << " TPR@0.1%FPR | " << k
                                  << " advantage | " << k << " bal. acc |";
    o << "\n| --- |";
    for (size_t i = 0; i < kinds.size(); i++) o << " --- | --- | --- | --- | --- |";
    o << "\n";
    for (const auto& a : attacks) {
        o << "| " << a << " |";
        for (const auto& k : kinds) {
            const json& s = r["models"][k]["summary"]["attacks"];
            if (!s.contains(a)) {
                o << " | | | | |";
                continue;
            }
            const json& m = s[a];
            if (!m.contains("auc")) {  // not evaluated on any target (see metrics.json)
                o << " n/a | n/a | n/a | n/a | n/a |";
                continue;
            }
            o << " " << pm(m["auc"]) << " | " << pm(m["tpr_at_1pct_fpr"]) << " | " << pm(m["tpr_at_01pct_fpr"])
              << " | " << pm(m["advantage"]) << " | " << pm(m["balanced_accuracy"]) << " |";
        }
        o << "\n";
    }

}

// Low-FPR rates, PPV and the epsilon each attack proves (metrics.h).
void report_low_fpr(std::ostream& o, const json& r, const std::vector<std::string>& kinds,
                    const std::vector<std::string>& attacks) {
    o << "\n## Low false-positive rates and proven leakage\n\nTPR at 0.01% and at 0 FPR (a level below 1 / "
         "non-members is out of reach: it shows the TPR at 0 FPR), PPV (the best over the ROC) at the evaluation set's prior "
         "(non-members per member: the counts in metrics.json), and the "
         "pure-DP epsilon lower bound the attack proves (Clopper-Pearson, 95%; TF-Privacy's definition).\n\n| attack |";
    for (const auto& k : kinds) o << " " << k << " TPR@0.01%FPR | " << k << " TPR@0FPR | " << k << " PPV | " << k
                                  << " ε lower bound |";
    o << "\n| --- |";
    for (size_t i = 0; i < kinds.size(); i++) o << " --- | --- | --- | --- |";
    o << "\n";
    for (const auto& a : attacks) {
        o << "| " << a << " |";
        for (const auto& k : kinds) {
            const json& s = r["models"][k]["summary"]["attacks"];
            if (!s.contains(a) || !s[a].contains("epsilon_lower_bound")) {
                o << " n/a | n/a | n/a | n/a |";
                continue;
            }
            const json& m = s[a];
            o << " " << pm(m["tpr_at_001pct_fpr"]) << " | " << pm(m["tpr_at_0_fpr"]) << " | " << pm(m["ppv"])
              << " | " << pm(m["epsilon_lower_bound"]) << " |";
        }
        o << "\n";
    }
    for (const auto& k : kinds) {
        const json& s = r["models"][k]["summary"]["attacks"];
        for (auto& [a, m] : s.items())
            if (m.contains("fpr_resolution")) {
                o << "\n" << k << ": about " << fmt("%.0f", 1 / m["fpr_resolution"]["mean"].get<double>())
                  << " non-members per target, so the smallest FPR above 0 is " << fmt("%.2g", m["fpr_resolution"]["mean"].get<double>())
                  << ".\n";
                break;
            }
    }

}

// The question the project exists for, answered from the numbers above.
void report_which_leaks(std::ostream& o, const json& r, const std::vector<std::string>& kinds) {
    const std::string protocol = r.at("config").at("protocol");
    o << "\n## Which model leaks more?\n\n";
    for (const char* key : {"auc", "tpr_at_1pct_fpr"}) {
        o << "- Strongest attack by " << (std::string(key) == "auc" ? "AUC" : "TPR at 1% FPR") << ": ";
        for (size_t i = 0; i < kinds.size(); i++) {
            const json& s = r["models"][kinds[i]]["summary"]["attacks"];
            const std::string best = strongest_attack(s, key);
            if (best.empty())  // no attack evaluated: no number, not a -1 placeholder
                o << (i ? "; " : "") << kinds[i] << " n/a";
            else
                o << (i ? "; " : "") << kinds[i] << " " << pm(s[best][key]) << " (" << best << ")";
        }
        o << ".\n";
    }
    if (kinds.size() == 2) {
        o << "- Read the difference against the spread across targets: a gap smaller than about two standard "
             "deviations is not evidence that one architecture leaks more. The generalisation gap (train - test "
             "accuracy) above is the main driver of these attacks; compare it too.\n";
    }
    if (protocol == "shokri")
        o << "- `seed000_on_target` is seed 000's own protocol (its attack MLP trained on 80% of the target's own "
             "outputs with their true membership, scored on the other 20%): an upper bound on separability, not an "
             "attack an outsider can run; it is left out of \"strongest attack\".\n";

}

// Unscored examples (one rule for every attack, docs/ATTACKS.md), fallbacks, time.
void report_notes(std::ostream& o, const json& r, const std::vector<std::string>& kinds) {
    for (const auto& k : kinds) {
        const json& s = r["models"][k]["summary"]["attacks"];
        std::string list;
        for (auto& [a, m] : s.items())
            if (a != "seed000_on_target" && m.contains("n_unscored") && m["n_unscored"]["mean"].get<double>() > 0)
                list += (list.empty() ? "" : ", ") + a + " " + pm(m["n_unscored"], "%.1f");
        if (!list.empty())
            o << "- " << k << ": examples per target an attack could not score (LiRA: no IN or no OUT reference "
              << "model; offline: no OUT one), left out of its metrics (not ranked): " << list
              << ". More reference models (--shadow) leave fewer.\n";
    }
    if (r.contains("per_class_fallback"))
        o << "- Per-class attacks: class(es) " << r["per_class_fallback"]["classes"].dump()
          << " had no shadow members or no shadow non-members, so shokri_mlp, shokri_logreg and the *_per_class "
             "attacks scored them with their global version (use a larger --ds or more --shadow models).\n";
    for (const auto& k : kinds)
        for (const auto& t : r["models"][k]["targets"])
            for (auto& [a, m] : t["attacks"].items())
                if (m.contains("not_evaluated"))
                    o << "- " << k << " " << t["role"].get<std::string>() << ": " << a << " not evaluated: "
                      << m["not_evaluated"].get<std::string>() << ".\n";
    if (r.contains("seconds"))
        o << "- Time: training " << fmt("%.0f", r["seconds"]["training"].get<double>()) << " s ("
          << r["trained_now"] << " models trained, " << r["cached"] << " cached), export and engine logits "
          << fmt("%.0f", r["seconds"]["export_and_engine_logits"].get<double>()) << " s, attacks "
          << fmt("%.0f", r["seconds"]["attacks"].get<double>()) << " s, total "
          << fmt("%.0f", r["seconds"]["total"].get<double>()) << " s.\n";

}

// RMIA's parameters as each kind's first target ran it (lira runs):
// gamma, the population size, the reference models and the offline a
// (tuned on reference models only, attack/rmia.h).
void report_rmia_parameters(std::ostream& o, const json& r, const std::vector<std::string>& kinds) {
    for (const auto& k : kinds) {
        const json& t = r["models"][k]["targets"][0]["attacks"];
        if (!t.contains("rmia_offline") || !t["rmia_offline"].contains("rmia_gamma")) continue;
        const json& a = t["rmia_offline"];
        o << "\nRMIA (" << k << ", " << r["models"][k]["targets"][0]["role"].get<std::string>() << "): gamma "
          << fmt("%g", a["rmia_gamma"].get<double>()) << ", " << a["rmia_population"] << " population points, "
          << a["rmia_reference_models"] << " reference models, offline a = "
          << (a.contains("rmia_a") ? fmt("%g", a["rmia_a"].get<double>()) : std::string("n/a"))
          << " (tuned on the reference models only); docs/ATTACKS.md.\n";
    }
}

// TF-Privacy's slices (per class, correctly / incorrectly classified) of
// the first target: counts and the AUC of the headline attacks; every
// attack's every metric per slice is in metrics.json ("slices").
void report_slices(std::ostream& o, const json& r, const std::vector<std::string>& kinds) {
    const char* headline[] = {"shokri_mlp", "loss", "lira_online", "lira_offline_fixed_var", "rmia_offline",
                              "rmia_online"};
    for (const auto& k : kinds) {
        const json& t = r["models"][k]["targets"][0];
        std::vector<std::string> shown;
        for (const char* a : headline)
            if (t["attacks"].contains(a)) shown.push_back(a);
        if (shown.empty() || !t["attacks"][shown[0]].contains("slices")) continue;
        o << "\n### " << k << " " << t["role"].get<std::string>() << ": slices\n\n| slice | members | non-members |";
        for (const auto& a : shown) o << " " << a << " AUC |";
        o << "\n| --- | --- | --- |";
        for (size_t i = 0; i < shown.size(); i++) o << " --- |";
        o << "\n";
        for (auto& [name, sl] : t["attacks"][shown[0]]["slices"].items()) {
            o << "| " << name << " | " << sl["n_members"] << " | " << sl["n_nonmembers"] << " |";
            for (const auto& a : shown) {
                const json& m = t["attacks"][a]["slices"][name];
                o << " " << (m.contains("auc") ? fmt("%.3f", m["auc"].get<double>()) : std::string("n/a")) << " |";
            }
            o << "\n";
        }
    }
}

// One row per model kind: the setting, utility and the strongest attack.
void report_privacy_utility(std::ostream& o, const json& r, const std::vector<std::string>& kinds) {
    o << "\n## Privacy and utility\n\n| model | defence | test acc | strongest attack (AUC) | AUC | TPR@0.1%FPR | "
         "ε lower bound |\n| --- | --- | --- | --- | --- | --- | --- |\n";
    const json& c = r.at("config");
    const std::string setting = c.contains("defence") ? c["defence"]["spec"].get<std::string>() : "none";
    for (const auto& k : kinds) {
        const json& s = r["models"][k]["summary"];
        const std::string best = strongest_attack(s["attacks"], "auc");
        if (best.empty()) continue;
        const json& m = s["attacks"][best];
        o << "| " << k << " | " << setting << " | " << pm(s["test_acc"], "%.4f") << " | " << best << " | "
          << pm(m["auc"]) << " | " << pm(m["tpr_at_01pct_fpr"]) << " | "
          << (m.contains("epsilon_lower_bound") ? pm(m["epsilon_lower_bound"]) : std::string("n/a")) << " |\n";
    }
    o << "\n[Privacy-utility plot](plots/privacy_utility.svg): one point per model kind under this run's setting "
         "(a run is one setting; `bin/attack --privacy-utility-plot OUT.svg --from-run DIR ...` draws several runs in "
         "one).\n";
}

// The epochs a table of n shows: all when n <= 12, else 12 evenly spaced
// (the first and the last among them).
std::vector<size_t> shown_epochs(size_t n) {
    std::vector<size_t> out;
    for (size_t i = 0; i < std::min<size_t>(n, 12); i++) {
        const size_t at = n <= 12 ? i : size_t(std::lround(double(i) * double(n - 1) / 11.0));
        if (out.empty() || out.back() != at) out.push_back(at);
    }
    return out;
}

// The loss attack and the gap after every epoch of the targets' training.
void report_per_epoch(std::ostream& o, const json& r, const std::vector<std::string>& kinds) {
    o << "\n## Vulnerability per epoch\n\nAfter each training epoch, the target models (shokri: every target, "
         "the mean shown; lira: model 0) in eval mode on their own members and non-members: train and test "
         "accuracy, the generalisation gap (train - test) and the loss attack (score -loss, threshold-free) on the "
         "model's raw logits (before any output defence).\n\n";
    int last = 1;
    if (!per_epoch_kinds(r, &last).empty())
        o << "[Loss attack AUC and gap per epoch](plots/vulnerability_per_epoch.svg)\n\n";
    for (const auto& k : kinds) {
        const json& m = r["models"][k];
        if (!m.contains("per_epoch") || !m["per_epoch"].is_array() || m["per_epoch"].empty()) {
            o << "- " << k << ": " << m.value("per_epoch_not_recorded", std::string("not recorded")) << "\n";
            continue;
        }
        const json& pe = m["per_epoch"];
        o << "| " << k << " epoch | targets | train acc | test acc | gap | loss AUC | loss TPR@1%FPR |\n"
          << "| --- | --- | --- | --- | --- | --- | --- |\n";
        for (size_t i : shown_epochs(pe.size())) {
            const json& e = pe[i];
            o << "| " << e["epoch"] << " | " << e["targets"] << " | " << fmt("%.4f", e["train_acc"].get<double>())
              << " | " << fmt("%.4f", e["test_acc"].get<double>()) << " | " << fmt("%.4f", e["gap"].get<double>())
              << " | " << fmt("%.3f", e["loss_auc"].get<double>()) << " | "
              << fmt("%.3f", e["loss_tpr_at_1pct_fpr"].get<double>()) << " |\n";
        }
        if (pe.size() > 12) o << "\nEvery epoch: metrics.json, models." << k << ".per_epoch.\n";
        o << "\n";
    }
}

void report_plots(std::ostream& o, const json& r, const std::vector<std::string>& kinds) {
    const std::string protocol = r.at("config").at("protocol");
    o << "\n## Plots (first target)\n\n";
    if (kinds.size() >= 2)
        o << "- [All kinds on the same log-log ROC axes: each kind's 3 strongest attacks by AUC, and LiRA online]"
             "(plots/roc_loglog_both.svg)\n";
    for (const auto& k : kinds) {
        o << "- " << k << ": [ROC](plots/" << k << "_roc.svg), [ROC log-log](plots/" << k << "_roc_loglog.svg), "
          << "[logit-scaled confidence histogram](plots/" << k << "_hist_logit_conf.svg), ";
        if (protocol == "shokri")
            o << "[loss score histogram](plots/" << k << "_hist_loss.svg)\n";
        else
            o << "[loss score histogram](plots/" << k << "_hist_loss.svg), [LiRA online histogram](plots/" << k
              << "_hist_lira_online.svg)\n";
    }
    o << "\nThe logit-scaled confidence phi = log(p_y / (1 - p_y)) (LiRA's statistic, computed from the logits) "
         "is histogrammed beside the loss because an overfit model gives nearly every example a loss within a "
         "hair of 0: the loss histogram then collapses to one bar, while phi still spreads members and "
         "non-members over the whole range.\n";
    o << "\nPer-example scores: scores/; ROC points: roc/; engine logits: outputs/; splits: splits.json; "
         "all numbers: metrics.json.\n";
}

}  // namespace

std::string markdown_report(const json& r) {
    std::ostringstream o;
    std::vector<std::string> kinds;
    for (auto& [k, v] : r.at("models").items()) kinds.push_back(k);
    std::vector<std::string> attacks;
    for (auto& [a, v] : r["models"][kinds[0]]["summary"]["attacks"].items()) attacks.push_back(a);
    report_intro(o, r);
    report_models(o, r, kinds);
    report_attacks(o, r, kinds, attacks);
    report_low_fpr(o, r, kinds, attacks);
    report_rmia_parameters(o, r, kinds);
    report_which_leaks(o, r, kinds);
    report_privacy_utility(o, r, kinds);
    report_notes(o, r, kinds);
    o << "\n## Slices (first target)\n\nTF-Privacy's slicing: the target's examples per true class and by whether "
         "the target classifies them correctly; counts of the scored members and non-members of the first attack "
         "shown (LiRA and RMIA offline leave unscored examples out). Every metric of every attack per slice: "
         "metrics.json, \"slices\".\n";
    report_slices(o, r, kinds);
    report_per_epoch(o, r, kinds);
    report_plots(o, r, kinds);
    return o.str();
}

}  // namespace mmia
