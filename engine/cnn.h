// cnn.h: public C-style API of the CNN classifier engine (cnn.cpp).
//
// Link build/cnn_lib.o (cnn.cpp compiled with -DCNN_NO_MAIN). The same
// calls as engine/mamba.h, so ./attack treats both engines alike:
//
//   CnnModel m;
//   char err[512];
//   if (cnn_open(&m, "model.bin", err, sizeof err) != 0) die(err);
//   // images: [n][cnn_image_floats(&m)] float32 pixels in [0,1], CHW
//   if (cnn_check_images(&m, images, n, err, sizeof err) != 0) die(err);
//   std::vector<float> probs(n * cnn_n_classes(&m));
//   if (cnn_forward_probs(&m, images, n, probs.data()) != 0) die("out of memory or overflow");
//   cnn_close(&m);
//
// Weights stay in the read-only mmap; a CnnModel is immutable after opening,
// so one model may serve many threads at once. Errors are "<what>: <why>"
// (the caller adds "error: ").
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "packed.h"

// Caps on a model's dimensions (docs/FORMAT.md); files beyond them are refused.
#define CNN_MAX_LAYERS MMIA_CNN_MAX_LAYERS  // 15
#define CNN_MAX_WIDTH 4096                  // conv channels, dense units
#define CNN_MAX_KERNEL 31
#define CNN_MAX_DENSE_IN (1 << 24)          // inputs of a dense layer
#define CNN_MAX_CHANNELS 4                  // input C
#define CNN_MAX_SIDE 4096                   // input H, W
#define CNN_MAX_CLASSES 100000
#define CNN_MAX_SCRATCH_BYTES (1ll << 30)   // per-image working memory

// One layer as the engine runs it (a batch norm is already folded into its conv).
typedef struct {
    int op;                   // MmiaCnnOp
    int act;                  // MmiaAct (conv, dense)
    int in_c, in_h, in_w;     // shape entering the layer ([C][H][W]; a vector is [C][1][1])
    int out_c, out_h, out_w;  // shape leaving it
    int kernel, padding;      // conv: K, pad; maxpool: window in kernel
    const float* weight;      // conv [O][C][K][K], dense [O][I]; into the mmap
    const float* bias;        // [O]
} CnnLayerRun;

typedef struct {
    int in_channels, in_height, in_width;  // C, H, W of one image
    int n_classes;
    float in_mean[4], in_std[4];           // per channel: (pixel - mean) / std
    int n_layers;
    CnnLayerRun layers[CNN_MAX_LAYERS];
    int64_t act_floats;                    // largest activation of any layer
    int64_t col_floats;                    // largest packed im2col matrix
    int64_t scratch_floats;                // working memory for one image
    PackedFile file;
} CnnModel;

// Open + validate a model file (mmap). 0 = ok; else err = "<path>: <why>".
int cnn_open(CnnModel* m, const char* path, char* err, size_t errlen);
// Same over bytes in memory (8-byte aligned, kept alive by the caller until
// cnn_close). err = "<why>". Used by the fuzzer and tests.
int cnn_open_memory(CnnModel* m, const void* bytes, uint64_t size, char* err, size_t errlen);
// Release; safe on a zeroed or failed-to-open model.
void cnn_close(CnnModel* m);

int64_t cnn_image_floats(const CnnModel* m);  // C*H*W
int cnn_n_classes(const CnnModel* m);

// 0 if all n images hold finite pixels in [0,1]; else -1 and err names the
// first bad pixel. The forward functions do not check.
int cnn_check_images(const CnnModel* m, const float* images, int64_t n, char* err, size_t errlen);

// images: [n][C*H*W]; logits/probs: [n][n_classes]. Parallel over images
// with OpenMP. Returns 0; -1 (ENGINE_ERR_NOMEM) if per-thread scratch could
// not be allocated; -2 (ENGINE_ERR_NONFINITE) if a logit overflowed to
// inf/NaN (finite weights can still overflow float32); engine/batch.h.
int cnn_forward_logits(const CnnModel* m, const float* images, int64_t n, float* logits);
int cnn_forward_probs(const CnnModel* m, const float* images, int64_t n, float* probs);

// The GEMM every conv layer runs, as compiled into the engine (kernels.h
// k_gemm_packed), for benchmarks: out[O][T] = bias[O] + W[O][I] X[I][T], X in
// k_im2col_packed's panel layout, bias may be NULL. One thread.
void cnn_gemm(float* out, const float* w, const float* xp, const float* bias, int O, int I, int T);
