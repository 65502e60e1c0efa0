// format.h: the packed model format, shared by the writer (export/) and the
// readers (mamba.cpp, cnn.cpp). docs/FORMAT.md describes it byte by byte;
// change both together and bump MMIA_FORMAT_VERSION when the layout changes.
//
// Layout (all little-endian):
//   [0, 256)                      MmiaHeader
//   [256, 256 + 96*n_tensors)     MmiaTensorEntry table
//   padding to 64 bytes, then each tensor's data, each 64-byte aligned
//
// Plain C-style: no STL, nothing but <stdint.h> and <string.h>, so the
// dependency-free engines can include it.
#pragma once
#include <stdint.h>
#include <string.h>

#define MMIA_MAGIC "MAMBAMIA"           // 8 bytes, no terminator in the file
#define MMIA_FORMAT_VERSION 1u
#define MMIA_HEADER_BYTES 256u
#define MMIA_TENSOR_ENTRY_BYTES 96u
#define MMIA_ALIGN 64u
#define MMIA_NAME_BYTES 56u             // tensor name, NUL-padded

// Model kinds: a file for one engine is refused by the other.
enum MmiaKind : uint32_t {
    MMIA_KIND_MAMBA = 1,  // Mamba classifier (mamba.cpp)
    MMIA_KIND_CNN = 2,    // CNN classifier (cnn.cpp)
    MMIA_KIND_MAMBA_LM = 3,        // Mamba language model (mamba.cpp): MambaLMHeadModel
    MMIA_KIND_TRANSFORMER_LM = 4,  // GPT-NeoX (Pythia) language model (transformer.cpp)
};

enum MmiaDtype : uint32_t {
    MMIA_DTYPE_F32 = 0,
};

// Slots of MmiaHeader.hp for MMIA_KIND_MAMBA. Each is an int32.
enum MmiaMambaHp {
    MMIA_HP_D_MODEL = 0,     // residual stream width D
    MMIA_HP_N_LAYERS = 1,    // number of Mamba blocks
    MMIA_HP_D_STATE = 2,     // SSM state size N
    MMIA_HP_D_CONV = 3,      // depthwise conv kernel K
    MMIA_HP_D_INNER = 4,     // expand * d_model = E
    MMIA_HP_DT_RANK = 5,     // R
    MMIA_HP_PATCH_H = 6,     // image -> tokens: non-overlapping patch_h x patch_w
    MMIA_HP_PATCH_W = 7,     //   patches in row-major order, each flattened (c, y, x)
    MMIA_HP_SEQ_LEN = 8,     // L = (H / patch_h) * (W / patch_w)
    MMIA_HP_POOL = 9,        // MmiaPool
    MMIA_HP_CONV_MODE = 10,  // MmiaConvMode
    // Added within version 1 in slots every earlier file leaves 0, and 0 is
    // what those files computed: RMSNorm, pre-norm, no stem.
    MMIA_HP_NORM = 11,            // MmiaNorm
    MMIA_HP_NORM_PLACEMENT = 12,  // MmiaNormPlacement
    MMIA_HP_STEM_LAYERS = 13,     // conv stem layers before the patches, 0..MMIA_MAX_STEM_LAYERS
    MMIA_HP_STEM_WIDTH0 = 14,     // hp[14 + i] = output channels of stem layer i; 0 past the last
    MMIA_HP_STEM_NORM = 22,       // MmiaStemNorm of every stem layer (0 with no stem)
    MMIA_HP_STEM_GROUPS = 23,     // group norm: G groups, dividing every stem width; else 0
};
#define MMIA_MAX_STEM_LAYERS 8  // slots 14..21; hp[24..31] stay 0
#define MMIA_HP_STEM_WIDTH(i) (MMIA_HP_STEM_WIDTH0 + (i))

enum MmiaNorm : int32_t {
    MMIA_NORM_RMS = 0,    // x / sqrt(mean(x^2) + eps) * w
    MMIA_NORM_LAYER = 1,  // (x - mean) / sqrt(var + eps) * w + b
};

// The stem's normalisation after each conv. Batch norm is folded into the
// conv at export (inference computes its eval-mode affine map); group norm
// (Wu & He 2018) normalises each image's own channel groups, so it stays.
enum MmiaStemNorm : int32_t {
    MMIA_STEM_BATCH_NORM = 0,  // gelu(conv(x) + b), batch norm folded into the conv
    MMIA_STEM_GROUP_NORM = 1,  // gelu(group_norm(conv(x) + b) * gamma + beta), eps = the norm eps
};

enum MmiaNormPlacement : int32_t {
    MMIA_NORM_PRE = 0,   // x = x + block(norm(x)); final norm on the tokens, then pool
    MMIA_NORM_POST = 1,  // seed 000: x = norm(x + block(x)); pool, then the final norm
};

enum MmiaPool : int32_t {
    MMIA_POOL_MEAN = 0,  // mean of the final-normed tokens
    MMIA_POOL_LAST = 1,  // last token
};

enum MmiaConvMode : int32_t {
    MMIA_CONV_CAUSAL = 0,  // paper: left padding K-1, output t sees inputs <= t
    MMIA_CONV_SAME = 1,    // seed 000: symmetric padding, output t sees t-K/2..
};

// Slots of MmiaHeader.hp for MMIA_KIND_CNN: hp[0] = n_layers, then two
// slots per layer i (0-based, in forward order):
//   hp[MMIA_CNN_HP_OP(i)]  = MmiaCnnOp | MmiaAct << 8   (act: conv and dense only)
//   hp[MMIA_CNN_HP_ARG(i)] = conv: zero padding on each side; maxpool: window
//                            (= stride); other ops 0
// Conv and dense layers own the tensors "layers.<i>.weight" and
// "layers.<i>.bias"; their shapes give the kernel size and widths (docs/FORMAT.md).
#define MMIA_CNN_HP_N_LAYERS 0
#define MMIA_CNN_MAX_LAYERS 15  // (32 - 1) / 2 slots
#define MMIA_CNN_HP_OP(i) (1 + 2 * (i))
#define MMIA_CNN_HP_ARG(i) (2 + 2 * (i))

enum MmiaCnnOp : int32_t {
    MMIA_CNN_CONV = 1,             // KxK conv, stride 1, batch norm folded in; [C][H][W] -> [O][H'][W']
    MMIA_CNN_MAXPOOL = 2,          // s x s windows, stride s, floor; [C][H][W] -> [C][H/s][W/s]
    MMIA_CNN_GLOBAL_AVG_POOL = 3,  // mean over H, W; [C][H][W] -> [C]
    MMIA_CNN_FLATTEN = 4,          // [C][H][W] -> [C*H*W] (channel-major, no data movement)
    MMIA_CNN_DENSE = 5,            // [I] -> [O]
};

enum MmiaAct : int32_t {
    MMIA_ACT_NONE = 0,
    MMIA_ACT_RELU = 1,
    MMIA_ACT_TANH = 2,
    MMIA_ACT_GELU = 3,  // exact erf form
};

// ---------------------------------------------------------------------------
// Language models (kinds 3 and 4). The header's image fields (in_channels,
// in_height, in_width, in_mean, in_std) are 0; n_classes holds the vocabulary
// size V (logits per token). docs/FORMAT.md, "Language models".
//
// Kind 3, Mamba LM: hp[0..5] are the Mamba slots above (D_MODEL, N_LAYERS,
// D_STATE, D_CONV, D_INNER, DT_RANK); hp[6..23] are 0 (causal conv, RMSNorm,
// pre-norm: the only LM block); fp[MMIA_FP_NORM_EPS] is the RMSNorm eps.
// Kind 4, transformer LM: the MmiaTransformerHp slots; fp[0] LayerNorm eps,
// fp[1] rotary base.
// Both kinds: the MmiaLmHp slots 24..29; every other slot 0.
enum MmiaTransformerHp {
    MMIA_TF_HP_D_MODEL = 0,       // D, hidden_size
    MMIA_TF_HP_N_LAYERS = 1,      // num_hidden_layers
    MMIA_TF_HP_N_HEADS = 2,       // H; head dim d_h = D / H
    MMIA_TF_HP_D_FF = 3,          // F, intermediate_size (4D in Pythia)
    MMIA_TF_HP_ROTARY_NDIMS = 4,  // int(d_h * rotary_pct), even, <= d_h
    MMIA_TF_HP_PARALLEL = 5,      // 1 = parallel residual (Pythia), 0 = sequential
};
enum MmiaTransformerFloatHp {
    MMIA_TF_FP_NORM_EPS = 0,     // LayerNorm eps (1e-5)
    MMIA_TF_FP_ROTARY_BASE = 1,  // rotary base (10000)
};
enum MmiaLmHp {
    MMIA_LM_HP_TOKENIZER = 24,  // MmiaTokenizer
    MMIA_LM_HP_CONTEXT = 25,    // context length: the transformer's K/V cache cap
                                //   (max_position_embeddings); the Mamba LM's training window
    MMIA_LM_HP_TIED = 26,       // 1 = logits use the embedding matrix (no head tensor)
    MMIA_LM_HP_EOS = 27,        // end-of-text token id, or -1 for none
    // The BPE tokenizer blob (docs/FORMAT.md "BPE tokenizer blob") a BPE
    // file may carry after its tensors, as the last bytes of the file; both
    // 0 when there is none (the byte tokenizer; a BPE model run by ids only).
    MMIA_LM_HP_BPE_AT = 28,     // the blob's file offset / 64 (MMIA_ALIGN)
    MMIA_LM_HP_BPE_BYTES = 29,  // the blob's length in bytes
};
enum MmiaTokenizer : int32_t {
    MMIA_TOKENIZER_BYTES = 0,  // token id = byte value 0..255; V >= 256, ids >= 256 never produced
    MMIA_TOKENIZER_BPE = 1,    // byte-level BPE (GPT-2, GPT-NeoX): the blob at hp[28..29], or none (ids only)
};

// Slots of MmiaHeader.fp (float hyperparameters).
enum MmiaFloatHp {
    MMIA_FP_NORM_EPS = 0,  // RMSNorm / LayerNorm epsilon (Mamba; a CNN uses no fp slot)
};

// Exactly 256 bytes; field offsets are in docs/FORMAT.md.
struct MmiaHeader {
    char magic[8];          // MMIA_MAGIC
    uint32_t version;       // MMIA_FORMAT_VERSION
    uint32_t kind;          // MmiaKind
    uint64_t file_bytes;    // total size of the file; a truncated file fails this
    uint64_t checksum;      // mmia_checksum of bytes [256, file_bytes)
    uint32_t n_tensors;     // entries in the tensor table
    uint32_t in_channels;   // input image C
    uint32_t in_height;     // input image H
    uint32_t in_width;      // input image W
    uint32_t n_classes;     // logits per image
    uint32_t reserved0;
    float in_mean[4];       // per-channel normalisation: x = (pixel - mean) / std,
    float in_std[4];        //   pixel in [0,1] as stored in input.bin
    int32_t hp[32];         // integer hyperparameters, meaning per kind
    float fp[8];            // float hyperparameters, meaning per kind
    uint8_t pad[256 - 56 - 32 - 128 - 32];
};

struct MmiaTensorEntry {
    char name[MMIA_NAME_BYTES];  // NUL-padded, e.g. "layers.0.in_proj.weight"
    uint32_t dtype;              // MmiaDtype
    uint32_t ndim;               // 1..4
    uint32_t shape[4];           // unused dims are 1
    uint64_t offset;             // from the start of the file, 64-byte aligned
    uint64_t nbytes;             // = 4 * prod(shape) for f32
};

static_assert(sizeof(MmiaHeader) == MMIA_HEADER_BYTES, "header must be 256 bytes");
static_assert(sizeof(MmiaTensorEntry) == MMIA_TENSOR_ENTRY_BYTES, "entry must be 96 bytes");

// 64-bit FNV-1a over 8-byte little-endian words (the tail byte by byte).
// Word-wise so it runs at memory speed: a 10 MB model costs a few ms.
#define MMIA_CHECKSUM_INIT 14695981039346656037ull

// Continue checksum state h over n more bytes. Feeding a buffer in pieces
// gives mmia_checksum of the whole as long as every piece but the last is
// a multiple of 8 bytes long (packed.h's one-pass validation does this).
static inline uint64_t mmia_checksum_update(uint64_t h, const uint8_t* p, uint64_t n) {
    const uint64_t prime = 1099511628211ull;
    uint64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * prime;
    }
    for (; i < n; i++) h = (h ^ p[i]) * prime;
    return h;
}

static inline uint64_t mmia_checksum(const uint8_t* p, uint64_t n) {
    return mmia_checksum_update(MMIA_CHECKSUM_INIT, p, n);
}
