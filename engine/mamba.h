// mamba.h: public C-style API of the Mamba classifier engine (mamba.cpp).
//
// Link build/mamba_lib.o (mamba.cpp compiled with -DMAMBA_NO_MAIN).
// Typical use (./attack computing confidence vectors):
//
//   MambaModel m;
//   char err[512];
//   if (mamba_open(&m, "model.bin", err, sizeof err) != 0) die(err);
//   // images: [n][mamba_image_floats(&m)] float32 pixels in [0,1], CHW
//   if (mamba_check_images(&m, images, n, err, sizeof err) != 0) die(err);
//   std::vector<float> probs(n * mamba_n_classes(&m));
//   if (mamba_forward_probs(&m, images, n, probs.data()) != 0) die("out of memory or overflow");
//   mamba_close(&m);
//
// The model's weights stay in the read-only mmap of the file; a MambaModel
// is immutable after opening, so one model may serve many threads at once.
// Error strings follow the project convention "<what>: <why>" (the caller
// adds the leading "error: ").
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "packed.h"

// Caps on a model's dimensions (docs/FORMAT.md); files beyond them are refused.
#define MAMBA_MAX_WIDTH 16384        // d_model D, d_inner E, dt_rank R
#define MAMBA_MAX_STATE 1024         // d_state N
#define MAMBA_MAX_CONV 64            // d_conv K
#define MAMBA_MAX_LAYERS 256
#define MAMBA_MAX_CHANNELS 4         // input C
#define MAMBA_MAX_SIDE 4096          // input H, W
#define MAMBA_MAX_CLASSES 100000
#define MAMBA_MAX_SEQ 65536          // seq_len L
#define MAMBA_MAX_STEM_LAYERS MMIA_MAX_STEM_LAYERS  // 8
#define MAMBA_MAX_STEM_WIDTH 4096    // channels of a stem conv's output
#define MAMBA_MAX_SCRATCH_BYTES (1ll << 30)  // per-image working memory

// Hyperparameters of one Mamba block (shared by every layer of a model).
typedef struct {
    int d_model;         // D: residual stream width
    int d_inner;         // E: expanded width of the block
    int d_state;         // N: SSM state per channel
    int d_conv;          // K: depthwise conv kernel
    int dt_rank;         // R: rank of the delta projection
    int conv_mode;       // MMIA_CONV_CAUSAL or MMIA_CONV_SAME
    int norm;            // MMIA_NORM_RMS or MMIA_NORM_LAYER
    int norm_placement;  // MMIA_NORM_PRE or MMIA_NORM_POST
    float eps;           // norm epsilon
} MambaBlockConfig;

// One layer's weights: pointers into the mmap'd file (not owned).
typedef struct {
    const float* norm_w;     // [D]        norm weight
    const float* norm_b;     // [D]        LayerNorm bias; NULL for RMSNorm
    const float* in_proj;    // [2E][D]    rows 0..E-1 -> x branch, E..2E-1 -> gate z
    const float* conv_w;     // [E][K]     depthwise conv1d weight
    const float* conv_b;     // [E]        conv1d bias
    const float* x_proj;     // [R+2N][E]  rows: dt part (R), then B (N), then C (N)
    const float* dt_proj_w;  // [E][R]
    const float* dt_proj_b;  // [E]
    const float* A;          // [E][N]     = -exp(A_log), folded at export
    const float* D;          // [E]        skip connection
    const float* out_proj;   // [D][E]
} MambaLayerWeights;

// One conv stem layer: 3x3 conv, padding 1, stride 1, then its norm (batch
// norm folded into the conv at export, or group norm), then exact GELU:
// [in_c][H][W] -> [out_c][H][W].
typedef struct {
    int in_c, out_c;
    const float* weight;  // [out_c][in_c][3][3]
    const float* bias;    // [out_c]
    const float* norm_w;  // [out_c] group norm gamma; NULL with batch norm (folded)
    const float* norm_b;  // [out_c] group norm beta; NULL with batch norm
} MambaStemLayer;

typedef struct {
    // input and head
    int in_channels, in_height, in_width;  // C, H, W of one image
    int n_classes;
    float in_mean[4], in_std[4];           // per channel: (pixel - mean) / std
    int n_stem;                            // conv stem layers (0 = patches of the image)
    MambaStemLayer stem[MAMBA_MAX_STEM_LAYERS];
    int stem_norm;                         // MMIA_STEM_BATCH_NORM or MMIA_STEM_GROUP_NORM
    int stem_groups;                       // G of the group norm (divides every stem width); 0 with batch norm
    int patch_channels;                    // Cp: C, or the last stem layer's out_c
    int patch_h, patch_w;                  // ph, pw
    int seq_len;                           // L = (H/ph) * (W/pw)
    int64_t patch_dim;                     // P = Cp*ph*pw (P*L fits the scratch cap)
    int n_layers;
    int pool;                              // MMIA_POOL_MEAN or MMIA_POOL_LAST
    MambaBlockConfig block;
    // weights (pointers into the mmap)
    const float* embed_w;                  // [D][P]
    const float* embed_b;                  // [D]
    MambaLayerWeights* layers;             // [n_layers], malloc'd
    const float* norm_f;                   // [D]
    const float* norm_f_b;                 // [D] LayerNorm bias; NULL for RMSNorm
    const float* head_w;                   // [n_classes][D]
    const float* head_b;                   // [n_classes]
    // working memory for one image, in floats
    int64_t fmap_floats;                   // largest feature map: the image or a stem output
    int64_t col_floats;                    // largest stem im2col matrix (0 without a stem)
    int64_t scratch_floats;                // all of it
    PackedFile file;
} MambaModel;

// Open + validate a model file (mmap). 0 = ok; else err = "<path>: <why>".
int mamba_open(MambaModel* m, const char* path, char* err, size_t errlen);
// Same over bytes in memory (8-byte aligned, kept alive by the caller until
// mamba_close). err = "<why>". Used by the fuzzer and tests.
int mamba_open_memory(MambaModel* m, const void* bytes, uint64_t size, char* err, size_t errlen);
// Release; safe on a zeroed or failed-to-open model.
void mamba_close(MambaModel* m);

int64_t mamba_image_floats(const MambaModel* m);  // C*H*W
int mamba_n_classes(const MambaModel* m);

// 0 if all n images hold finite pixels in [0,1]; else -1 and err names the
// first bad pixel. The forward functions do not check.
int mamba_check_images(const MambaModel* m, const float* images, int64_t n, char* err, size_t errlen);

// images: [n][C*H*W]; logits/probs: [n][n_classes]. Parallel over images
// with OpenMP (the caller's omp_set_num_threads applies). Returns 0; -1
// (ENGINE_ERR_NOMEM) if per-thread scratch could not be allocated; -2
// (ENGINE_ERR_NONFINITE) if a logit overflowed to inf/NaN (finite weights
// can still overflow float32); engine/batch.h names them.
int mamba_forward_logits(const MambaModel* m, const float* images, int64_t n, float* logits);
int mamba_forward_probs(const MambaModel* m, const float* images, int64_t n, float* probs);

// --- the block, for reuse (e.g. a language model over token embeddings) ----
// Floats of scratch mamba_block_forward needs for a sequence of L tokens.
int64_t mamba_block_scratch_floats(const MambaBlockConfig* c, int L);
// One residual block over one whole sequence, state starting at 0:
// x = x + MambaBlock(norm(x)) (pre-norm) or x = norm(x + MambaBlock(x)) (post-norm).
// x: [D][L] FEATURE-MAJOR (feature d of token t at x[d*L + t]), in/out.
// scratch: mamba_block_scratch_floats(c, L) floats.
void mamba_block_forward(const MambaBlockConfig* c, const MambaLayerWeights* w, int L, float* x,
                         float* scratch);

// The selective scan, token-major, over channels e < E:
//   h[e][n] = exp(delta[t][e] * A[e][n]) * h[e][n] + delta[t][e] * B[t][n] * u[t][e]
//   y[t][e] = (sum_n C[t][n] * h[e][n] + D[e] * u[t][e]) * (z ? silu(z[t][e]) : 1)
// h is carried in and out (zero it for a fresh sequence; L = 1 is a
// one-token step with carried state).
void mamba_scan(int L, int E, int N, const float* u /*[L][E]*/, const float* delta /*[L][E], after softplus*/,
                const float* A /*[E][N]*/, const float* B /*[L][N]*/, const float* C /*[L][N]*/,
                const float* D /*[E]*/, const float* z /*[L][E] or NULL*/, float* y /*[L][E]*/,
                float* h /*[E][N] state in/out*/);
