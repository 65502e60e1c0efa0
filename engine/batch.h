// batch.h: what every engine does around its one-image forward pass: run
// it over a batch of images in parallel (OpenMP, one scratch buffer per
// thread), and turn logits into probabilities.
//
// Header-only, static inline, C-style. Built without -fopenmp the OMP()
// pragmas vanish and the batch runs serially.
#pragma once
#include <stdint.h>
#include <stdlib.h>
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

// images: [n][image_floats]; logits: [n][n_classes]. Returns 0, or -1 if a
// thread's scratch could not be allocated.
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
    return failed ? -1 : 0;
}

// Each row of x [n][n_classes] replaced by its softmax.
static inline void engine_softmax_rows(float* x, int64_t n, int n_classes) {
    for (int64_t i = 0; i < n; i++) k_softmax(x + i * n_classes, x + i * n_classes, n_classes);
}
