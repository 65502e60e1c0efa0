// fuzz_cifar.cpp: libFuzzer target for the CIFAR-10 batch parser (and the
// gzip decoder in front of it).
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -I. fuzz/fuzz_cifar.cpp common/data.cpp -lz -o build/fuzz_cifar
//   build/fuzz_cifar -max_total_time=60 fuzz/corpus/fuzz_cifar
//
// Input: one batch file, raw or gzipped. Refusing bad input with
// std::runtime_error is the expected outcome; anything else is a finding.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <vector>

#include "common/data.h"

namespace {

// Decompression bombs are worth finding, but at the full 1 GiB cap each one
// would cost the fuzzer seconds; a small cap exercises the same code.
constexpr size_t kFuzzMaxBytes = size_t(1) << 20;  // room for 341 CIFAR records

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        std::vector<uint8_t> bytes(data, data + size);
        if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b)
            bytes = mmia::gunzip(data, size, "fuzz", kFuzzMaxBytes);
        const mmia::ImageSet set = mmia::parse_cifar_batch(bytes.data(), bytes.size(), "fuzz");
        // What a caller relies on after a successful parse.
        if (set.n < 1 || set.pixels.size() != size_t(set.n) * 3 * 32 * 32 ||
            set.labels.size() != size_t(set.n))
            __builtin_trap();
        for (uint8_t label : set.labels)
            if (label >= set.n_classes) __builtin_trap();
    } catch (const std::runtime_error&) {
    }
    return 0;
}
