// fuzz_input.cpp: libFuzzer target for input.bin validation (engine/io.h),
// which every engine runs on untrusted pixels before use.
//   clang++ -std=c++17 -g -O1 -fopenmp-simd -Wno-pass-failed -fsanitize=fuzzer,address,undefined -I. \
//       fuzz/fuzz_input.cpp -o build/fuzz_input
//   build/fuzz_input -max_total_time=60 fuzz/corpus/fuzz_input
//
// Input: 2 bytes choosing the image size (1..4096 floats, little-endian,
// modulo 4096, plus 1), then the input.bin bytes. Checked: acceptance
// agrees with an independent scalar check, and a refusal says why.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    int64_t fpi = 1 + ((int64_t)data[0] | ((int64_t)data[1] << 8)) % 4096;
    size_t n = size - 2;
    float* buf = (float*)malloc(n / 4 * 4 + 4);  // 4-byte aligned copy
    if (!buf) return 0;
    memcpy(buf, data + 2, n);
    int64_t images = -1;
    char err[512] = {0};
    int rc = input_validate(buf, n, fpi, &images, err, sizeof err);

    // The independent answer.
    int want_ok = n > 0 && n % (size_t)(fpi * 4) == 0;
    for (size_t i = 0; want_ok && i < n / 4; i++) want_ok = buf[i] >= 0.0f && buf[i] <= 1.0f;
    if ((rc == 0) != (want_ok != 0)) abort();
    if (rc == 0 && images != (int64_t)(n / (size_t)(fpi * 4))) abort();
    if (rc != 0 && err[0] == 0) abort();
    free(buf);
    return 0;
}
