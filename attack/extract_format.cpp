// extract_format.cpp: the LibTorch-free pieces of attack/extract.h that
// both bin/extract's runs and its sweep summary (attack/extract_sweep.cpp)
// use: the Wilson interval and the CSV field formats. Kept apart so the
// summary's fuzz target builds with clang alone.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "attack/extract.h"
#include "engine/bpe.h"  // bpe_utf8: one UTF-8 character, or the byte that starts none

namespace mmia {

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

}  // namespace mmia
