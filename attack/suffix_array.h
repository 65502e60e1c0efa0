// suffix_array.h: an exact substring index over a training corpus, so that
// "this generated text occurs verbatim in the training data" is a lookup,
// not a guess (Carlini et al. 2021 checked candidates against the training
// set; Lee et al. 2022 deduplicate the same way).
//
//   SuffixArray sa(training_stream);            // libdivsufsort, O(n log n), 4n bytes
//   sa.count(text)                              // occurrences, O(m log n)
//   sa.longest_verbatim_run(sample)             // longest substring of sample in the corpus
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mmia {

class SuffixArray {
public:
    // Indexes `text` (bytes; any value, 0 included). Texts up to 2^31 - 1 bytes.
    explicit SuffixArray(std::vector<uint8_t> text);

    // Number of (possibly overlapping) occurrences of `pattern`; an empty
    // pattern occurs size() + 1 times, as std::string::find would count.
    int64_t count(const uint8_t* pattern, size_t m) const;
    int64_t count(const std::string& p) const { return count(reinterpret_cast<const uint8_t*>(p.data()), p.size()); }
    // Whether some window of `min_len` consecutive bytes of `sample` occurs in
    // the corpus (the "memorized if >= 50 tokens verbatim" test). A sample
    // shorter than min_len never does.
    bool has_verbatim_window(const std::string& sample, size_t min_len) const;
    // The length of the longest substring of `sample` that occurs in the
    // corpus (0 if no byte of it does).
    size_t longest_verbatim_run(const std::string& sample) const;

    size_t size() const { return text_.size(); }
    const std::vector<int32_t>& suffixes() const { return sa_; }  // sorted suffix starts

private:
    // [lo, hi) of the suffixes that start with pattern.
    void range(const uint8_t* p, size_t m, int64_t& lo, int64_t& hi) const;
    std::vector<uint8_t> text_;
    std::vector<int32_t> sa_;
};

}  // namespace mmia
