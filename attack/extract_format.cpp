// extract_format.cpp: the LibTorch-free pieces of attack/extract.h that
// both bin/extract's runs and its sweep summary (attack/extract_sweep.cpp)
// use: the Wilson interval, pooling over seeds (pool_seeds) and the CSV
// field formats. Kept apart so the summary's fuzz target builds with clang
// alone.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "attack/extract.h"
#include "engine/bpe.h"  // bpe_utf8: one UTF-8 character, or the byte that starts none

namespace mmia {

using json = nlohmann::json;

std::pair<double, double> wilson_interval(int64_t k, int64_t n, double z) {
    if (n <= 0) return {0.0, 1.0};
    const double nn = double(n), p = double(k) / nn, z2 = z * z;
    const double denom = 1.0 + z2 / nn;
    const double centre = (p + z2 / (2 * nn)) / denom;
    const double half = z * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn)) / denom;
    // At k = 0 (k = n) the lower (upper) end is exactly 0 (1): centre and
    // half are equal there, but rounding can leave 5.6e-17.
    return {k == 0 ? 0.0 : std::max(0.0, centre - half), k == n ? 1.0 : std::min(1.0, centre + half)};
}

std::string csv_text(const std::string& bytes) {
    std::string out = "\"";
    const uint8_t* s = reinterpret_cast<const uint8_t*>(bytes.data());
    for (size_t i = 0; i < bytes.size(); i++) {
        const unsigned char c = s[i];
        if (c >= 0x80) {
            uint32_t cp;
            const int len = bpe_utf8(s + i, bytes.size() - i, &cp);
            if (!(cp & BPE_INVALID)) {  // a whole valid UTF-8 character, written as it is
                out.append(bytes, i, size_t(len));
                i += size_t(len) - 1;
                continue;
            }
        }
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else if (c < 0x20 || c >= 0x7f) {  // control bytes, and bytes of no valid UTF-8 sequence
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            out += b;
        } else if (c == '"') out += "\"\"";
        else out += char(c);
    }
    return out + "\"";
}

std::string csv_num(double v) {
    if (std::isnan(v)) return "nan";
    char b[40];
    std::snprintf(b, sizeof b, "%.17g", v);
    return b;
}

namespace {
// {"mean", "min", "max", "per_seed"} of a few values (one per seed).
json spread(const std::vector<double>& v) {
    double sum = 0, lo = INFINITY, hi = -INFINITY;
    for (double x : v) {
        sum += x;
        lo = std::min(lo, x);
        hi = std::max(hi, x);
    }
    return {{"mean", v.empty() ? NAN : sum / double(v.size())}, {"min", lo}, {"max", hi}, {"per_seed", v}};
}
}  // namespace

namespace {
// The rows of array `what` ("prefix", "prefix_by_copies") of one model over
// seeds, pooled per (group, k, decoding) with group the field `group`
// ("split", "copies"): counts summed, Wilson 95% intervals on the sums.
json pooled_rates(const std::vector<const json*>& per, const char* what, const char* group) {
    json pooled = json::array();
    for (const auto& row0 : per[0]->at(what)) {
        int64_t n = 0, mem = 0, ex = 0, fz = 0;
        for (const json* m : per)
            for (const auto& row : m->at(what))
                if (row.at(group) == row0.at(group) && row.at("k") == row0.at("k") && row.at("decoding") == row0.at("decoding")) {
                    n += row.at("n").get<int64_t>();
                    mem += row.at("memorized").get<int64_t>();
                    ex += row.at("bleu_exact").get<int64_t>();
                    fz += row.at("bleu_fuzzy").get<int64_t>();
                }
        const auto ci = wilson_interval(mem, n), cie = wilson_interval(ex, n), cif = wilson_interval(fz, n);
        const double nn = double(std::max<int64_t>(n, 1));
        pooled.push_back({{group, row0.at(group)}, {"k", row0.at("k")}, {"decoding", row0.at("decoding")}, {"n", n},
                          {"memorized", mem}, {"memorized_rate", double(mem) / nn},
                          {"memorized_ci95", {ci.first, ci.second}}, {"bleu_exact", ex},
                          {"bleu_exact_rate", double(ex) / nn}, {"bleu_exact_ci95", {cie.first, cie.second}},
                          {"bleu_fuzzy", fz}, {"bleu_fuzzy_rate", double(fz) / nn},
                          {"bleu_fuzzy_ci95", {cif.first, cif.second}}});
    }
    return pooled;
}
}  // namespace

json pool_seeds(const json& seeds, const std::vector<std::string>& models) {
    json out = json::object();
    for (const std::string& name : models) {
        std::vector<const json*> per;  // this model's result in each seed
        for (const auto& [sk, sj] : seeds.items()) {
            if (!sj.is_object() || !sj.contains("models") || !sj.at("models").contains(name))
                throw std::runtime_error("pool_seeds: seed " + sk + " has no model " + name);
            per.push_back(&sj.at("models").at(name));
        }
        if (per.empty()) throw std::runtime_error("pool_seeds: no seeds");
        json pooled = pooled_rates(per, "prefix", "split");
        std::vector<double> hl, best;
        for (const json* m : per) hl.push_back(m->at("heldout_loss").get<double>());
        json mia = json::object();
        // pooled only when every seed ran the attacks (a seed with no
        // non-member skips them)
        if (std::all_of(per.begin(), per.end(), [](const json* m) { return m->contains("mia") && m->at("mia").contains("attacks"); })) {
            for (const json* m : per) {
                double b = -INFINITY;
                for (const auto& [a, v] : m->at("mia").at("attacks").items()) b = std::max(b, v.at("auc").get<double>());
                best.push_back(b);
            }
            for (const auto& [a, v0] : per[0]->at("mia").at("attacks").items()) {
                std::vector<double> auc, tpr;
                for (const json* m : per) {
                    auc.push_back(m->at("mia").at("attacks").at(a).at("auc").get<double>());
                    tpr.push_back(m->at("mia").at("attacks").at(a).at("tpr_at_1pct_fpr").get<double>());
                }
                mia[a] = {{"auc", spread(auc)}, {"tpr_at_1pct_fpr", spread(tpr)}};
            }
        }
        json expo = json::object();
        if (per[0]->contains("exposure_by_insertions"))
            for (const auto& [ins, v0] : per[0]->at("exposure_by_insertions").items()) {
                std::vector<double> e;
                int64_t extracted = 0, n = 0;
                for (const json* m : per) {
                    const json& v = m->at("exposure_by_insertions").at(ins);
                    e.push_back(v.at("mean_exposure").get<double>());
                    extracted += v.at("extracted").get<int64_t>();
                    n += v.at("n").get<int64_t>();
                }
                expo[ins] = {{"mean_exposure", spread(e)}, {"extracted", extracted}, {"n", n}};
            }
        const json hls = spread(hl);
        out[name] = {{"seeds", per.size()},     {"mean_heldout_loss", hls["mean"]},
                     {"heldout_loss", hls},     {"prefix", pooled},
                     {"mia", mia},              {"best_mia_auc", best.empty() ? json() : spread(best)},
                     {"exposure_by_insertions", expo}};
        if (per[0]->contains("prefix_by_copies"))
            out[name]["prefix_by_copies"] = pooled_rates(per, "prefix_by_copies", "copies");
    }
    return out;
}

}  // namespace mmia
