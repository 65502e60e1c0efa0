// cnn.cpp: inference for the CNN image classifier, in one readable file.
//
//   ./cnn model.bin input.bin [--quiet | --probs] [--out FILE] [--threads N]
//
// The model file (docs/FORMAT.md, kind 2) is mmap'd and validated
// completely, then the weights are used in place. An image runs through the
// layer list the header describes: KxK convolutions (batch norm already
// folded in at export) as im2col + a packed, register-tiled GEMM, max
// pooling, global average pooling, flatten, dense layers. Built with
// -fopenmp, batches run in parallel over images.
//
// Only libc, libm and OpenMP. Compiled with -DCNN_NO_MAIN it is a library
// (engine/cnn.h) for ./attack, the tests and the fuzzers. The command line
// is engine/cli.h's, shared with ./mamba.
//
// Shape legend: C/H/W channels, height, width of the activation entering a
// layer, O output channels or units, K kernel, I = C*K*K (conv) or the
// dense input size. Activations are channel-major [C][H][W].
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/batch.h"
#include "engine/cli.h"
#include "engine/cnn.h"
#include "engine/io.h"
#include "engine/kernels.h"
#include "engine/packed.h"

// ----------------------------------------------------------------------------
// Forward pass

// logits[n_classes] for one image [C][H][W]. scratch: two activation
// buffers (ping-pong) and the packed im2col matrix.
static void cnn_forward_one(const void* model, const float* img, float* logits, float* scratch) {
    const CnnModel* m = (const CnnModel*)model;
    float* a = scratch;                 // [act_floats] the current activation
    float* b = a + m->act_floats;       // [act_floats] the next one
    float* col = b + m->act_floats;     // [col_floats] im2col panels
    const int C = m->in_channels, HW = m->in_height * m->in_width;
    for (int c = 0; c < C; c++) {  // normalise: (pixel - mean) / std
        const float mean = m->in_mean[c], inv = 1.0f / m->in_std[c];
        const float* src = img + (int64_t)c * HW;
        float* dst = a + (int64_t)c * HW;
#pragma omp simd
        for (int i = 0; i < HW; i++) dst[i] = (src[i] - mean) * inv;
    }
    for (int l = 0; l < m->n_layers; l++) {
        const CnnLayerRun* L = &m->layers[l];
        switch (L->op) {
            case MMIA_CNN_CONV:  // [C][H][W] -> [O][H'][W']
                k_conv2d(b, a, L->weight, L->bias, L->in_c, L->in_h, L->in_w, L->out_c, L->kernel, L->padding,
                         L->act, col);
                break;
            case MMIA_CNN_MAXPOOL:  // [C][H][W] -> [C][H/s][W/s]
                k_maxpool2d(b, a, L->in_c, L->in_h, L->in_w, L->kernel);
                break;
            case MMIA_CNN_GLOBAL_AVG_POOL:  // [C][H][W] -> [C]
                k_global_avgpool(b, a, L->in_c, L->in_h * L->in_w);
                break;
            case MMIA_CNN_FLATTEN:  // [C][H][W] -> [C*H*W]: the same floats
                continue;
            case MMIA_CNN_DENSE:  // [I] -> [O]
                k_matvec(b, L->weight, a, L->bias, L->out_c, L->in_c);
                k_activate(b, L->out_c, L->act);
                break;
        }
        float* t = a;
        a = b;
        b = t;
    }
    memcpy(logits, a, sizeof(float) * (size_t)m->n_classes);
}

int cnn_forward_logits(const CnnModel* m, const float* images, int64_t n, float* logits) {
    return engine_forward_batch(cnn_forward_one, m, m->scratch_floats, images, n, cnn_image_floats(m), m->n_classes,
                                logits);
}

int cnn_forward_probs(const CnnModel* m, const float* images, int64_t n, float* probs) {
    if (cnn_forward_logits(m, images, n, probs) != 0) return -1;
    engine_softmax_rows(probs, n, m->n_classes);
    return 0;
}

void cnn_gemm(float* out, const float* w, const float* xp, const float* bias, int O, int I, int T) {
    k_gemm_packed(out, w, xp, bias, O, I, T);
}

// ----------------------------------------------------------------------------
// Loading: every header field and tensor checked before use

int64_t cnn_image_floats(const CnnModel* m) { return (int64_t)m->in_channels * m->in_height * m->in_width; }
int cnn_n_classes(const CnnModel* m) { return m->n_classes; }

int cnn_check_images(const CnnModel* m, const float* images, int64_t n, char* err, size_t errlen) {
    int64_t got;
    if (n == 0) return 0;
    return input_validate(images, (uint64_t)n * (uint64_t)cnn_image_floats(m) * 4u, cnn_image_floats(m), &got, err,
                          errlen);
}

static int cnn_check_range(const char* what, int64_t v, int64_t lo, int64_t hi, char* err, size_t errlen) {
    if (v >= lo && v <= hi) return 0;
    packed_err(err, errlen, "%s is %lld, outside %lld..%lld", what, (long long)v, (long long)lo, (long long)hi);
    return -1;
}

static const char* cnn_op_name(int op) {
    switch (op) {
        case MMIA_CNN_CONV: return "conv";
        case MMIA_CNN_MAXPOOL: return "maxpool";
        case MMIA_CNN_GLOBAL_AVG_POOL: return "global_avg_pool";
        case MMIA_CNN_FLATTEN: return "flatten";
        case MMIA_CNN_DENSE: return "dense";
    }
    return "?";
}

// The weight and bias of layer l: weight has ndim dims, its shape read from
// the table and checked by the caller; both marked used. NULL + err if missing.
static const MmiaTensorEntry* cnn_weight_entry(const PackedFile* pf, int l, uint32_t ndim, char* err, size_t errlen) {
    char name[64];
    snprintf(name, sizeof name, "layers.%d.weight", l);
    int i = packed_find(pf, name);
    if (i < 0) {
        packed_err(err, errlen, "missing tensor '%s'", name);
        return NULL;
    }
    if (pf->table[i].ndim != ndim) {
        packed_err(err, errlen, "tensor '%s' has %u dims, a %s weight has %u", name, pf->table[i].ndim,
                   ndim == 4 ? "conv" : "dense", ndim);
        return NULL;
    }
    return &pf->table[i];
}

// Fill m from a validated file. err = "<why>".
static int cnn_load(CnnModel* m, char* err, size_t errlen) {
    const MmiaHeader* h = m->file.header;
    if (h->kind != MMIA_KIND_CNN) {
        if (h->kind == MMIA_KIND_MAMBA)
            packed_err(err, errlen, "model kind 1 is a Mamba model (run it with ./mamba); this engine runs kind 2 = CNN");
        else if (h->kind == MMIA_KIND_MAMBA_LM)
            packed_err(err, errlen, "model kind 3 is a Mamba language model (run it with ./mamba); this engine runs kind 2 = CNN");
        else if (h->kind == MMIA_KIND_TRANSFORMER_LM)
            packed_err(err, errlen, "model kind 4 is a transformer language model (run it with ./transformer); this engine runs kind 2 = CNN");
        else
            packed_err(err, errlen, "unknown model kind %u; this engine runs kind 2 = CNN", h->kind);
        return -1;
    }
    const int32_t* hp = h->hp;
    if (cnn_check_range("in_channels", h->in_channels, 1, CNN_MAX_CHANNELS, err, errlen) ||
        cnn_check_range("in_height", h->in_height, 1, CNN_MAX_SIDE, err, errlen) ||
        cnn_check_range("in_width", h->in_width, 1, CNN_MAX_SIDE, err, errlen) ||
        cnn_check_range("n_classes", h->n_classes, 1, CNN_MAX_CLASSES, err, errlen) ||
        cnn_check_range("n_layers", hp[MMIA_CNN_HP_N_LAYERS], 1, CNN_MAX_LAYERS, err, errlen))
        return -1;
    m->in_channels = (int)h->in_channels;
    m->in_height = (int)h->in_height;
    m->in_width = (int)h->in_width;
    m->n_classes = (int)h->n_classes;
    m->n_layers = hp[MMIA_CNN_HP_N_LAYERS];
    for (int s = MMIA_CNN_HP_OP(m->n_layers); s < 32; s++) {
        if (hp[s] != 0) {
            packed_err(err, errlen, "hp[%d] is %d but a %d-layer CNN leaves it 0", s, hp[s], m->n_layers);
            return -1;
        }
    }
    for (int ch = 0; ch < m->in_channels; ch++) {
        m->in_mean[ch] = h->in_mean[ch];
        m->in_std[ch] = h->in_std[ch];
        if (!isfinite(h->in_mean[ch]) || !(h->in_std[ch] > 0.0f) || !isfinite(h->in_std[ch])) {
            packed_err(err, errlen, "channel %d normalisation mean %g / std %g is not finite with std > 0", ch,
                       (double)h->in_mean[ch], (double)h->in_std[ch]);
            return -1;
        }
    }

    // Walk the layers, shapes from the input on; every size is capped before
    // it is multiplied, so the int64 products below cannot overflow.
    unsigned char used[PACKED_MAX_TENSORS] = {0};
    int64_t C = m->in_channels, H = m->in_height, W = m->in_width;
    int64_t act = C * H * W, col = 0;
    int flat = 0;  // after flatten / global_avg_pool: a vector of C values
    int n_weighted = 0;
    for (int l = 0; l < m->n_layers; l++) {
        CnnLayerRun* L = &m->layers[l];
        const int32_t code = hp[MMIA_CNN_HP_OP(l)], arg = hp[MMIA_CNN_HP_ARG(l)];
        L->op = code & 0xff;
        L->act = code >> 8;  // arithmetic shift: a negative code gives a negative act
        L->in_c = (int)C;
        L->in_h = (int)H;
        L->in_w = (int)W;
        char what[64];
        snprintf(what, sizeof what, "layer %d", l);
        if (L->op < MMIA_CNN_CONV || L->op > MMIA_CNN_DENSE) {
            packed_err(err, errlen, "layer %d: unknown op %d (hp[%d] = %d)", l, L->op, MMIA_CNN_HP_OP(l), code);
            return -1;
        }
        snprintf(what, sizeof what, "layer %d (%s): activation", l, cnn_op_name(L->op));
        int weighted = L->op == MMIA_CNN_CONV || L->op == MMIA_CNN_DENSE;
        if (cnn_check_range(what, L->act, 0, weighted ? MMIA_ACT_GELU : 0, err, errlen)) return -1;
        if (flat && L->op != MMIA_CNN_DENSE) {
            packed_err(err, errlen, "layer %d (%s): only dense layers may follow flatten / global_avg_pool", l,
                       cnn_op_name(L->op));
            return -1;
        }
        if (L->op != MMIA_CNN_CONV && L->op != MMIA_CNN_MAXPOOL && arg != 0) {
            packed_err(err, errlen, "layer %d (%s): hp[%d] is %d, must be 0", l, cnn_op_name(L->op),
                       MMIA_CNN_HP_ARG(l), arg);
            return -1;
        }
        char name[64];
        if (L->op == MMIA_CNN_CONV) {
            const MmiaTensorEntry* e = cnn_weight_entry(&m->file, l, 4, err, errlen);
            if (!e) return -1;
            snprintf(what, sizeof what, "layer %d (conv): output channels", l);
            if (cnn_check_range(what, e->shape[0], 1, CNN_MAX_WIDTH, err, errlen)) return -1;
            snprintf(what, sizeof what, "layer %d (conv): kernel", l);
            if (cnn_check_range(what, e->shape[2], 1, CNN_MAX_KERNEL, err, errlen)) return -1;
            L->out_c = (int)e->shape[0];
            L->kernel = (int)e->shape[2];
            snprintf(what, sizeof what, "layer %d (conv): padding", l);
            if (cnn_check_range(what, arg, 0, L->kernel - 1, err, errlen)) return -1;
            L->padding = arg;
            L->out_h = (int)(H + 2 * L->padding - L->kernel + 1);
            L->out_w = (int)(W + 2 * L->padding - L->kernel + 1);
            if (L->out_h < 1 || L->out_w < 1) {
                packed_err(err, errlen, "layer %d (conv): a %dx%d kernel does not fit the %lldx%lld input", l,
                           L->kernel, L->kernel, (long long)H, (long long)W);
                return -1;
            }
            uint32_t wshape[4] = {(uint32_t)L->out_c, (uint32_t)C, (uint32_t)L->kernel, (uint32_t)L->kernel};
            snprintf(name, sizeof name, "layers.%d.weight", l);
            if (!(L->weight = packed_tensor(&m->file, name, 4, wshape, err, errlen))) return -1;
            int64_t I = C * L->kernel * L->kernel, T = (int64_t)L->out_h * L->out_w;
            int64_t need = k_im2col_packed_floats(I, T);
            col = need > col ? need : col;
            C = L->out_c;
            H = L->out_h;
            W = L->out_w;
        } else if (L->op == MMIA_CNN_MAXPOOL) {
            snprintf(what, sizeof what, "layer %d (maxpool): window", l);
            if (cnn_check_range(what, arg, 1, H < W ? H : W, err, errlen)) return -1;
            L->kernel = arg;
            H /= arg;
            W /= arg;
        } else if (L->op == MMIA_CNN_GLOBAL_AVG_POOL) {
            H = W = 1;
            flat = 1;
        } else if (L->op == MMIA_CNN_FLATTEN) {
            if (C * H * W > CNN_MAX_DENSE_IN) {
                packed_err(err, errlen, "layer %d (flatten): %lld values, more than the %d a dense layer takes", l,
                           (long long)(C * H * W), CNN_MAX_DENSE_IN);
                return -1;
            }
            C = C * H * W;
            H = W = 1;
            flat = 1;
        } else {  // dense
            if (!flat) {
                packed_err(err, errlen, "layer %d (dense): needs a flatten or global_avg_pool layer before it", l);
                return -1;
            }
            const MmiaTensorEntry* e = cnn_weight_entry(&m->file, l, 2, err, errlen);
            if (!e) return -1;
            snprintf(what, sizeof what, "layer %d (dense): units", l);
            if (cnn_check_range(what, e->shape[0], 1, CNN_MAX_WIDTH, err, errlen)) return -1;
            L->out_c = (int)e->shape[0];
            uint32_t wshape[2] = {(uint32_t)L->out_c, (uint32_t)C};
            snprintf(name, sizeof name, "layers.%d.weight", l);
            if (!(L->weight = packed_tensor(&m->file, name, 2, wshape, err, errlen))) return -1;
            C = L->out_c;
        }
        if (weighted) {
            used[packed_find(&m->file, name)] = 1;
            uint32_t bshape[1] = {(uint32_t)L->out_c};
            snprintf(name, sizeof name, "layers.%d.bias", l);
            if (!(L->bias = packed_tensor(&m->file, name, 1, bshape, err, errlen))) return -1;
            used[packed_find(&m->file, name)] = 1;
            n_weighted++;
        }
        if (L->op != MMIA_CNN_CONV) {
            L->out_c = (int)C;
            L->out_h = (int)H;
            L->out_w = (int)W;
        }
        act = C * H * W > act ? C * H * W : act;
    }
    if (!flat || C != m->n_classes) {
        packed_err(err, errlen, "the last layer gives %lld values per image, not a vector of n_classes = %d",
                   (long long)(C * H * W), m->n_classes);
        return -1;
    }
    for (uint32_t i = 0; i < m->file.n_tensors; i++) {
        if (!used[i]) {
            packed_err(err, errlen, "unknown tensor '%s' (this %d-layer CNN has exactly %d tensors)",
                       m->file.table[i].name, m->n_layers, 2 * n_weighted);
            return -1;
        }
    }
    m->act_floats = act;
    m->col_floats = col;
    m->scratch_floats = 2 * act + col;
    if (m->scratch_floats * 4 > CNN_MAX_SCRATCH_BYTES) {
        packed_err(err, errlen, "model needs %lld MiB of working memory per image (cap %lld MiB)",
                   (long long)(m->scratch_floats * 4 >> 20), (long long)(CNN_MAX_SCRATCH_BYTES >> 20));
        return -1;
    }
    return 0;
}

int cnn_open_memory(CnnModel* m, const void* bytes, uint64_t size, char* err, size_t errlen) {
    memset(m, 0, sizeof *m);
    if (packed_validate(&m->file, bytes, size, err, errlen) != 0) return -1;
    if (cnn_load(m, err, errlen) != 0) {
        cnn_close(m);
        return -1;
    }
    return 0;
}

int cnn_open(CnnModel* m, const char* path, char* err, size_t errlen) {
    memset(m, 0, sizeof *m);
    char why[400];
    int rc = packed_open(&m->file, path, why, sizeof why);
    if (rc == 0) rc = cnn_load(m, why, sizeof why);
    if (rc != 0) {
        packed_err(err, errlen, "%s: %s", path, why);
        cnn_close(m);
        return -1;
    }
    return 0;
}

void cnn_close(CnnModel* m) {
    packed_close(&m->file);
    memset(m, 0, sizeof *m);
}

// ----------------------------------------------------------------------------
// CLI (engine/cli.h)

#ifndef CNN_NO_MAIN

static int cli_open(void* m, const char* path, char* err, size_t errlen) { return cnn_open((CnnModel*)m, path, err, errlen); }
static void cli_close(void* m) { cnn_close((CnnModel*)m); }
static int64_t cli_image_floats(const void* m) { return cnn_image_floats((const CnnModel*)m); }
static int cli_n_classes(const void* m) { return cnn_n_classes((const CnnModel*)m); }
static int cli_forward_probs(const void* m, const float* images, int64_t n, float* probs) {
    return cnn_forward_probs((const CnnModel*)m, images, n, probs);
}

int main(int argc, char** argv) {
    CnnModel model;
    memset(&model, 0, sizeof model);
    EngineCli cli = {"cnn", "CNN", &model, cli_open, cli_close, cli_image_floats, cli_n_classes, cli_forward_probs};
    return engine_cli_main(argc, argv, &cli);
}

#endif  // CNN_NO_MAIN
