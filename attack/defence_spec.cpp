// defence_spec.cpp: see defence_spec.h.
#include "attack/defence_spec.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

#include "common/number_text.h"

namespace mmia {

namespace {

[[noreturn]] void bad(const std::string& why) { throw std::runtime_error("--defence: " + why); }

// The value of "name=value" as a finite number in [lo, hi] (lo_open: > lo).
double real_value(const std::string& item, const std::string& text, double lo, bool lo_open, double hi) {
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    // The whole text (a NUL inside ends no number), NaN failing every comparison.
    const bool ok = !text.empty() && end == text.c_str() + text.size() && (lo_open ? v > lo : v >= lo) && v <= hi;
    if (!ok)
        bad("'" + item + "': '" + text + "' is not a number in " + (lo_open ? "(" : "[") + number_text(lo) + ", " +
            number_text(hi) + "]");
    return v;
}

int int_value(const std::string& item, const std::string& text, int lo, int hi) {
    char* end = nullptr;
    const long v = std::strtol(text.c_str(), &end, 10);
    if (text.empty() || end != text.c_str() + text.size() || v < lo || v > hi)
        bad("'" + item + "': '" + text + "' is not an integer in [" + std::to_string(lo) + ", " +
            std::to_string(hi) + "]");
    return int(v);
}

const char* kGrammar =
    "none, dp:sigma=S|eps=E[,C=C,delta=D,q=Q], l2=WD, label-smoothing=EPS, early-stopping=PATIENCE, dropout=P, "
    "augment, top-k=K, round=D, label-only";

// The DP parameters: name, field, range (lo = 0; lo_open: > 0).
struct DpParam {
    const char* name;
    double Defences::*field;
    bool lo_open;
    double hi;
};
const DpParam kDpParams[] = {{"sigma", &Defences::dp_sigma, false, 1000},
                             {"eps", &Defences::dp_epsilon, true, 1000},
                             {"C", &Defences::dp_clip, true, 1e6},
                             {"delta", &Defences::dp_delta, true, 0.5},
                             {"q", &Defences::dp_q, true, 1}};

// One DP parameter "name=value" into d; false when name is not one. given:
// the names already given (each at most once: "dp:sigma=1,sigma=2" is refused).
bool dp_param(const std::string& item, Defences& d, std::vector<std::string>& given) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos) return false;
    const std::string name = item.substr(0, eq);
    for (const DpParam& p : kDpParams) {
        if (name != p.name) continue;
        if (std::find(given.begin(), given.end(), name) != given.end()) bad("'dp:" + name + "' given twice");
        given.push_back(name);
        d.*p.field = real_value(item, item.substr(eq + 1), 0, p.lo_open, p.hi);
        return true;
    }
    return false;
}

}  // namespace

bool Defences::training() const {
    return dp || l2 >= 0 || label_smoothing > 0 || early_stopping > 0 || dropout > 0 || augment;
}
bool Defences::output() const { return top_k > 0 || round_decimals > 0 || label_only; }

Defences parse_defences(const std::vector<std::string>& specs) {
    Defences d;
    std::vector<std::string> items;
    for (const std::string& s : specs) {
        size_t start = 0;
        while (true) {
            const size_t comma = s.find(',', start);
            items.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
            if (comma == std::string::npos) break;
            start = comma + 1;
        }
    }
    std::vector<std::string> seen;  // item names, for "given twice"
    std::vector<std::string> dp_given;  // DP parameter names, the same
    bool in_dp = false, none = false;
    for (const std::string& item : items) {
        if (item.empty()) bad("an empty item (a stray comma?); items: " + std::string(kGrammar));
        if (in_dp && dp_param(item, d, dp_given)) continue;
        in_dp = false;
        const size_t eq = item.find('=');
        std::string name = item.substr(0, std::min(eq, item.find(':')));
        const std::string value = eq == std::string::npos ? "" : item.substr(eq + 1);
        if (std::find(seen.begin(), seen.end(), name) != seen.end()) bad("'" + name + "' given twice");
        seen.push_back(name);
        const bool has_value = eq != std::string::npos;
        auto no_value = [&] {
            if (has_value || item != name) bad("'" + item + "': " + name + " takes no value");
        };
        auto needs_value = [&](const char* what) {
            if (!has_value || item.substr(0, eq) != name) bad("'" + item + "': write " + name + "=" + what);
        };
        if (name == "none") {
            no_value();
            none = true;
        } else if (name == "dp") {
            if (item.rfind("dp:", 0) != 0) bad("'" + item + "': write dp:sigma=S or dp:eps=E (then ,C=..,delta=..,q=..)");
            d.dp = in_dp = true;
            if (!dp_param(item.substr(3), d, dp_given))
                bad("'" + item + "': '" + item.substr(3) + "' is not a DP-SGD parameter (sigma, eps, C, delta, q)");
        } else if (name == "l2") {
            needs_value("WD");
            d.l2 = real_value(item, value, 0, false, 10);
        } else if (name == "label-smoothing") {
            needs_value("EPS");
            d.label_smoothing = real_value(item, value, 0, false, 0.99);
        } else if (name == "early-stopping") {
            needs_value("PATIENCE");
            d.early_stopping = int_value(item, value, 1, 1000);
        } else if (name == "dropout") {
            needs_value("P");
            d.dropout = real_value(item, value, 0, false, 0.99);
        } else if (name == "augment") {
            no_value();
            d.augment = true;
        } else if (name == "top-k") {
            needs_value("K");
            d.top_k = int_value(item, value, 1, 1000000);
        } else if (name == "round") {
            needs_value("D");
            d.round_decimals = int_value(item, value, 1, 15);
        } else if (name == "label-only") {
            no_value();
            d.label_only = true;
        } else {
            bad("'" + item + "' is not a defence (" + kGrammar + ")");
        }
    }
    const bool sigma_set = std::count(dp_given.begin(), dp_given.end(), "sigma") > 0,
               eps_set = std::count(dp_given.begin(), dp_given.end(), "eps") > 0;
    if (d.dp && sigma_set == eps_set) bad("dp: give sigma=S or eps=E (one of them)");
    if (none && seen.size() > 1) bad("'none' with another defence");
    if (d.label_only && (d.top_k || d.round_decimals))
        bad("label-only releases the label alone; top-k and round would change nothing (give one)");
    return d;
}

std::string defence_spec(const Defences& d) {
    std::vector<std::string> parts;
    if (d.dp)
        parts.push_back("dp:" +
                        (d.dp_epsilon > 0 ? "eps=" + number_text(d.dp_epsilon) : "sigma=" + number_text(d.dp_sigma)) +
                        ",C=" + number_text(d.dp_clip) + ",delta=" + number_text(d.dp_delta) +
                        (d.dp_q > 0 ? ",q=" + number_text(d.dp_q) : ""));
    if (d.l2 >= 0) parts.push_back("l2=" + number_text(d.l2));
    if (d.label_smoothing > 0) parts.push_back("label-smoothing=" + number_text(d.label_smoothing));
    if (d.early_stopping > 0) parts.push_back("early-stopping=" + std::to_string(d.early_stopping));
    if (d.dropout > 0) parts.push_back("dropout=" + number_text(d.dropout));
    if (d.augment) parts.push_back("augment");
    if (d.top_k > 0) parts.push_back("top-k=" + std::to_string(d.top_k));
    if (d.round_decimals > 0) parts.push_back("round=" + std::to_string(d.round_decimals));
    if (d.label_only) parts.push_back("label-only");
    if (parts.empty()) return "none";
    std::string s;
    for (const auto& p : parts) s += (s.empty() ? "" : ",") + p;
    return s;
}

std::string defence_slug(const Defences& d) {
    std::string s;
    // Items are separated by '+', a name from its value by '-'.
    for (char c : defence_spec(d)) {
        if (c == ',') {
            // A DP parameter stays in its item; any other comma separates items.
            s += '~';
        } else if (c == ':' || c == '=') {
            s += '-';
        } else {
            s += c;
        }
    }
    // '~' before a DP parameter name is '-', before an item '+'.
    std::string out;
    for (size_t i = 0; i < s.size(); i++) {
        if (s[i] != '~') {
            out += s[i];
            continue;
        }
        const std::string rest = s.substr(i + 1);
        bool dp_param = false;
        for (const char* p : {"C-", "delta-", "q-"})
            if (rest.rfind(p, 0) == 0) dp_param = true;
        out += dp_param ? '-' : '+';
    }
    if (d.target_only) out += "+target-only";
    return out;
}

}  // namespace mmia
