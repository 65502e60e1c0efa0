// fuzz_defence_spec.cpp: libFuzzer target for bin/attack's --defence SPEC
// parser (attack/defence_spec.cpp parse_defences) and its canonical forms
// (defence_spec, defence_slug).
//   make build/fuzz/fuzz_defence_spec
//   build/fuzz/fuzz_defence_spec -max_total_time=60 fuzz/corpus/fuzz_defence_spec
//
// Input: the --defence values, one per line ('\n' separates them, as a
// repeated --defence would). A std::runtime_error of the form
// "--defence: <why>" is the expected refusal; any other exception or a
// sanitizer report is a finding. On acceptance: every number is finite and
// in its documented range; the canonical SPEC parses back to the same
// record, field by field (so it prints the same SPEC); the directory name
// holds only [A-Za-z0-9.+-], with and without target-only.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "attack/defence_spec.h"

namespace {

bool in(double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; }

// The ranges of defence_spec.h's grammar (0: off).
bool sane(const mmia::Defences& d) {
    if (d.dp && !(in(d.dp_sigma, 0, 1000) && in(d.dp_epsilon, 0, 1000) && in(d.dp_clip, 0, 1e6) && d.dp_clip > 0 &&
                  in(d.dp_delta, 0, 0.5) && d.dp_delta > 0 && in(d.dp_q, 0, 1)))
        return false;
    if (d.dp_epsilon > 0 && d.dp_sigma != 0) return false;  // sigma or eps, not both
    return (d.l2 == -1 || in(d.l2, 0, 10)) && in(d.label_smoothing, 0, 0.99) && in(d.dropout, 0, 0.99) &&
           d.early_stopping >= 0 && d.early_stopping <= 1000 && d.top_k >= 0 && d.top_k <= 1000000 &&
           d.round_decimals >= 0 && d.round_decimals <= 15 && !(d.label_only && (d.top_k || d.round_decimals));
}

bool same(const mmia::Defences& a, const mmia::Defences& b) {
    return a.dp == b.dp && a.dp_sigma == b.dp_sigma && a.dp_epsilon == b.dp_epsilon && a.dp_clip == b.dp_clip &&
           a.dp_delta == b.dp_delta && a.dp_q == b.dp_q && a.l2 == b.l2 && a.label_smoothing == b.label_smoothing &&
           a.early_stopping == b.early_stopping && a.dropout == b.dropout && a.augment == b.augment &&
           a.top_k == b.top_k && a.round_decimals == b.round_decimals && a.label_only == b.label_only &&
           a.target_only == b.target_only;
}

bool slug_ok(const std::string& s) {
    if (s.empty()) return false;
    for (char c : s)
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '+' ||
              c == '-'))
            return false;
    return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> specs;
    for (size_t start = 0;;) {
        const size_t nl = text.find('\n', start);
        specs.push_back(text.substr(start, nl == std::string::npos ? std::string::npos : nl - start));
        if (nl == std::string::npos) break;
        start = nl + 1;
    }
    mmia::Defences d;
    try {
        d = mmia::parse_defences(specs);
    } catch (const std::runtime_error& e) {
        const std::string m = e.what();
        if (m.rfind("--defence: ", 0) != 0 || m.size() == 11) abort();  // every refusal says why
        return 0;
    }
    if (!sane(d)) abort();
    const std::string spec = mmia::defence_spec(d);
    mmia::Defences back;
    try {
        back = mmia::parse_defences({spec});
    } catch (const std::runtime_error&) {
        abort();  // the canonical SPEC must parse
    }
    if (!same(back, d) || mmia::defence_spec(back) != spec) abort();
    if (!slug_ok(mmia::defence_slug(d))) abort();
    d.target_only = true;
    if (!slug_ok(mmia::defence_slug(d))) abort();
    return 0;
}
