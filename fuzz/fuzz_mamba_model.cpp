// fuzz_mamba_model.cpp: libFuzzer target for the Mamba model loader
// (engine/packed.h validation + mamba.cpp's kind/dims/tensor checks), and
// for the forward pass of any model the loader accepts.
//   clang++ -std=c++17 -g -O1 -fopenmp-simd -Wno-pass-failed -fsanitize=fuzzer,address,undefined -I. \
//       -DMAMBA_NO_MAIN fuzz/fuzz_mamba_model.cpp mamba.cpp -o build/fuzz_mamba_model
//   build/fuzz_mamba_model -max_total_time=60 fuzz/corpus/fuzz_mamba_model
//
// Input: a model file's bytes. A refusal (non-zero return with an error
// string) is the expected outcome; a crash or sanitizer report is a finding.
// The checksum would stop almost every mutation at the door, so when bit 0
// of the header's reserved0 field is set the target first rewrites
// file_bytes and checksum to match the bytes (the seed has it set), letting
// mutations reach the table, dimension and tensor checks behind it.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"
#include "engine/format.h"
#include "engine/mamba.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    // The loader wants 8-byte-aligned bytes (mmap gives a page).
    uint64_t* buf = (uint64_t*)malloc(size / 8 * 8 + 8);
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
    MambaModel m;
    char err[512];
    err[0] = 0;  // a refusal that wrote no reason must be seen as one, not as stale stack bytes
    if (mamba_open_memory(&m, bytes, size, err, sizeof err) == 0) {
        // Accepted: run one image through it, if that is cheap enough to
        // keep the fuzzer fast (work ~ weights x positions: tokens for the
        // blocks, pixels for a conv stem).
        int64_t fpi = mamba_image_floats(&m);
        int64_t positions = m.n_stem ? (int64_t)m.in_height * m.in_width : m.seq_len;
        if (fpi <= 4096 && (int64_t)(size / 4) * positions <= 4000000 && m.scratch_floats <= (1 << 20)) {
            float* img = (float*)malloc(sizeof(float) * (size_t)fpi);
            float* out = (float*)malloc(sizeof(float) * (size_t)mamba_n_classes(&m));
            if (img && out) {
                for (int64_t i = 0; i < fpi; i++) img[i] = (float)(i % 7) / 6.0f;
                if (mamba_check_images(&m, img, 1, err, sizeof err) != 0) abort();  // our own pixels are valid
                // Finite weights can still overflow; then the call says so.
                // What it calls a success must be finite.
                int rc = mamba_forward_probs(&m, img, 1, out);
                if (rc == ENGINE_OK && engine_first_nonfinite(out, mamba_n_classes(&m)) >= 0) abort();
                if (rc != ENGINE_OK && rc != ENGINE_ERR_NONFINITE && rc != ENGINE_ERR_NOMEM) abort();
            }
            free(img);
            free(out);
        }
        mamba_close(&m);
    } else if (err[0] == 0) {
        abort();  // every refusal must say why
    }
    free(buf);
    return 0;
}
