// suffix_array.cpp: see suffix_array.h. The suffixes are sorted by
// libdivsufsort (Debian's libdivsufsort-dev, Yuta Mori's induced sorting,
// O(n log n) worst case); the queries are binary searches.
#include "attack/suffix_array.h"

#include <divsufsort.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace mmia {

SuffixArray::SuffixArray(std::vector<uint8_t> text) : text_(std::move(text)) {
    if (text_.size() >= size_t(INT32_MAX)) throw std::invalid_argument("SuffixArray: corpus over 2 GiB");
    sa_.resize(text_.size());
    if (text_.empty()) return;
    if (divsufsort(text_.data(), sa_.data(), saidx_t(text_.size())) != 0)
        throw std::runtime_error("SuffixArray: divsufsort failed (out of memory?)");
}

void SuffixArray::range(const uint8_t* p, size_t m, int64_t& lo, int64_t& hi) const {
    // Compare the suffix at s with p over min(m, suffix length) bytes; a
    // suffix shorter than p that matches so far sorts before it.
    auto cmp = [&](int32_t s) {  // <0: suffix < p, 0: p is a prefix of suffix, >0: suffix > p
        const size_t len = text_.size() - size_t(s);
        const int c = std::memcmp(text_.data() + s, p, std::min(len, m));
        if (c != 0) return c;
        return len < m ? -1 : 0;
    };
    int64_t a = 0, b = int64_t(sa_.size());
    while (a < b) {  // first suffix >= p
        const int64_t mid = (a + b) / 2;
        if (cmp(sa_[size_t(mid)]) < 0) a = mid + 1; else b = mid;
    }
    lo = a;
    b = int64_t(sa_.size());
    while (a < b) {  // first suffix > p (not starting with it)
        const int64_t mid = (a + b) / 2;
        if (cmp(sa_[size_t(mid)]) <= 0) a = mid + 1; else b = mid;
    }
    hi = a;
}

int64_t SuffixArray::count(const uint8_t* p, size_t m) const {
    if (m == 0) return int64_t(text_.size()) + 1;
    int64_t lo, hi;
    range(p, m, lo, hi);
    return hi - lo;
}

bool SuffixArray::has_verbatim_window(const std::string& sample, size_t min_len) const {
    if (min_len == 0) return true;
    const auto* s = reinterpret_cast<const uint8_t*>(sample.data());
    for (size_t i = 0; i + min_len <= sample.size(); i++)
        if (count(s + i, min_len) > 0) return true;
    return false;
}

size_t SuffixArray::longest_verbatim_run(const std::string& sample) const {
    // For each start, the longest match grows monotonically with a binary
    // search on the length (occurrence is monotone: a prefix of a match matches).
    const auto* s = reinterpret_cast<const uint8_t*>(sample.data());
    size_t best = 0;
    for (size_t i = 0; i + best < sample.size(); i++) {
        size_t lo = best, hi = sample.size() - i;  // lo: known to match (or best so far), try > lo
        if (count(s + i, best + 1) == 0) continue;
        lo = best + 1;
        while (lo < hi) {
            const size_t mid = lo + (hi - lo + 1) / 2;
            if (count(s + i, mid) > 0) lo = mid; else hi = mid - 1;
        }
        best = lo;
    }
    return best;
}

}  // namespace mmia
