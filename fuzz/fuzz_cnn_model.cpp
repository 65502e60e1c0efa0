// fuzz_cnn_model.cpp: libFuzzer target for the CNN model loader
// (engine/packed.h validation + cnn.cpp's kind/layer/tensor checks), and for
// the forward pass of any model the loader accepts.
//   clang++ -std=c++17 -g -O1 -fopenmp-simd -Wno-pass-failed -fsanitize=fuzzer,address,undefined -I. \
//       -DCNN_NO_MAIN fuzz/fuzz_cnn_model.cpp cnn.cpp -o build/fuzz/fuzz_cnn_model
//   build/fuzz/fuzz_cnn_model -max_total_time=60 fuzz/corpus/fuzz_cnn_model
//
// Input: a model file's bytes. A refusal (with an error string) is the
// expected outcome; a crash or sanitizer report is a finding. As in
// fuzz_mamba_model, bit 0 of the header's reserved0 makes the target fix up
// file_bytes and the checksum first (the seeds have it set), so mutations
// reach the layer and tensor checks behind them.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cnn.h"
#include "engine/batch.h"
#include "engine/format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    uint64_t* buf = (uint64_t*)malloc(size / 8 * 8 + 8);  // the loader wants 8-byte alignment
    if (!buf) return 0;
    memcpy(buf, data, size);
    uint8_t* bytes = (uint8_t*)buf;
    if (size >= sizeof(MmiaHeader)) {
        MmiaHeader* h = (MmiaHeader*)bytes;
        if (h->reserved0 & 1u) {
            h->file_bytes = size;
            h->checksum = mmia_checksum(bytes + MMIA_HEADER_BYTES, size - MMIA_HEADER_BYTES);
        }
    }
    CnnModel m;
    char err[512];
    err[0] = 0;
    if (cnn_open_memory(&m, bytes, size, err, sizeof err) == 0) {
        // Accepted: run one image through it when that is cheap (work ~ the
        // scratch it needs), so the fuzzer stays fast.
        int64_t fpi = cnn_image_floats(&m);
        if (fpi <= 4096 && m.scratch_floats <= (1 << 20)) {
            float* img = (float*)malloc(sizeof(float) * (size_t)fpi);
            float* out = (float*)malloc(sizeof(float) * (size_t)cnn_n_classes(&m));
            if (img && out) {
                for (int64_t i = 0; i < fpi; i++) img[i] = (float)(i % 7) / 6.0f;
                if (cnn_check_images(&m, img, 1, err, sizeof err) != 0) abort();  // our own pixels are valid
                // Finite weights can still overflow; then the call says so.
                // What it calls a success must be finite.
                int rc = cnn_forward_probs(&m, img, 1, out);
                if (rc == ENGINE_OK && engine_first_nonfinite(out, cnn_n_classes(&m)) >= 0) abort();
                if (rc != ENGINE_OK && rc != ENGINE_ERR_NONFINITE && rc != ENGINE_ERR_NOMEM) abort();
            }
            free(img);
            free(out);
        }
        cnn_close(&m);
    } else if (err[0] == 0) {
        abort();  // every refusal must say why
    }
    free(buf);
    return 0;
}
