// batch.h: what every engine does around its one-image forward pass: run
// it over a batch of images in parallel (OpenMP, one scratch buffer per
// thread), and turn logits into probabilities.
//
// Header-only, static inline, C-style. Built without -fopenmp the OMP()
// pragmas vanish and the batch runs serially.
#pragma once
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
// Thread-level pragmas only with -fopenmp (the simd pragmas need only
// -fopenmp-simd, which the Makefile always sets).
#define OMP(directive) _Pragma(#directive)
#else
#define OMP(directive)
#endif

#include "kernels.h"  // k_softmax

// logits[n_classes] for one image, using scratch_floats of scratch.
typedef void (*EngineForwardOne)(const void* model, const float* image, float* logits, float* scratch);

// What engine_forward_batch and the engines' forward calls return.
#define ENGINE_OK 0
#define ENGINE_ERR_NOMEM (-1)      // a thread's scratch could not be allocated
#define ENGINE_ERR_NONFINITE (-2)  // a logit came out NaN or inf

// Index of the first non-finite float among x[0..n), or -1. Weights and
// pixels are checked finite when read, but finite weights can still
// overflow float32 inside a forward pass (e.g. a head of 1e30s), so every
// engine output is checked too. Integer test on the exponent bits, so no
// compiler flag can drop it.
static inline int64_t engine_first_nonfinite(const float* x, int64_t n) {
    int64_t bad = 0;
#pragma omp simd reduction(+ : bad)
    for (int64_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, x + i, 4);
        bad += (w & 0x7f800000u) == 0x7f800000u;
    }
    if (!bad) return -1;
    for (int64_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, x + i, 4);
        if ((w & 0x7f800000u) == 0x7f800000u) return i;
    }
    return -1;
}

// images: [n][image_floats]; logits: [n][n_classes]. Returns ENGINE_OK,
// ENGINE_ERR_NOMEM if a thread's scratch could not be allocated, or
// ENGINE_ERR_NONFINITE if any logit is NaN or inf (overflow in the model).
static inline int engine_forward_batch(EngineForwardOne forward_one, const void* model, int64_t scratch_floats,
                                       const float* images, int64_t n, int64_t image_floats, int n_classes,
                                       float* logits) {
    int failed = 0;
    // One image runs on the calling thread: starting a team would cost more
    // than the forward pass itself.
OMP(omp parallel if (n > 1))
    {
        // One scratch buffer per thread per call; images are independent.
        float* scratch = (float*)calloc((size_t)scratch_floats, sizeof(float));
        if (!scratch) {
OMP(omp atomic write)
            failed = 1;
        }
OMP(omp for schedule(dynamic, 4))
        for (int64_t i = 0; i < n; i++)
            if (scratch) forward_one(model, images + i * image_floats, logits + i * n_classes, scratch);
        free(scratch);
    }
    if (failed) return ENGINE_ERR_NOMEM;
    return engine_first_nonfinite(logits, n * n_classes) < 0 ? ENGINE_OK : ENGINE_ERR_NONFINITE;
}

// Each row of x [n][n_classes] replaced by its softmax.
static inline void engine_softmax_rows(float* x, int64_t n, int n_classes) {
    for (int64_t i = 0; i < n; i++) k_softmax(x + i * n_classes, x + i * n_classes, n_classes);
}
