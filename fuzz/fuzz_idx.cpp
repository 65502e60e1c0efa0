// fuzz_idx.cpp: libFuzzer target for the IDX parser (and the gzip decoder
// in front of it).
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_idx.cpp common/data.cpp -lz -o build/fuzz_idx
//   build/fuzz_idx -max_total_time=60 fuzz/corpus/fuzz_idx
//
// Input: a 4-byte big-endian length L, then L bytes of image file, then the
// label file (L is clamped to what is there). Either file may be gzipped, as
// on disk. Refusing bad input with std::runtime_error is the expected
// outcome; anything else (a crash, a sanitizer report, another exception) is
// a finding.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "common/data.h"

namespace {

// Decompression bombs are worth finding, but at the full 1 GiB cap each one
// would cost the fuzzer seconds; a small cap exercises the same code.
constexpr size_t kFuzzMaxBytes = size_t(1) << 20;  // room for 341 CIFAR records

std::vector<uint8_t> maybe_gunzip(const uint8_t* data, size_t len) {
    if (len >= 2 && data[0] == 0x1f && data[1] == 0x8b)
        return mmia::gunzip(data, len, "fuzz", kFuzzMaxBytes);
    return std::vector<uint8_t>(data, data + len);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 4) return 0;
    size_t images_len = size_t(data[0]) << 24 | size_t(data[1]) << 16 | size_t(data[2]) << 8 | data[3];
    data += 4;
    size -= 4;
    if (images_len > size) images_len = size;
    try {
        const std::vector<uint8_t> images = maybe_gunzip(data, images_len);
        const std::vector<uint8_t> labels = maybe_gunzip(data + images_len, size - images_len);
        const mmia::ImageSet set =
            mmia::parse_idx(images.data(), images.size(), labels.data(), labels.size(), "fuzz");
        // What a caller relies on after a successful parse.
        if (set.pixels.size() != size_t(set.n) * set.channels * set.height * set.width ||
            set.labels.size() != size_t(set.n))
            __builtin_trap();
        for (uint8_t label : set.labels)
            if (label >= set.n_classes) __builtin_trap();
    } catch (const std::runtime_error&) {
    }
    return 0;
}
