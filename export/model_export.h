// model_export.h: maps a trained LibTorch model to the packed format
// (docs/FORMAT.md). Every parameter the forward pass uses is exported; what
// inference need not recompute is folded here (A = -exp(A_log), conv1d
// weights squeezed to (E, K), batch norms into their convs).
#pragma once
#include <string>
#include <vector>

#include "common/corpus.h"
#include "common/data.h"
#include "engine/format.h"
#include "export/packed_writer.h"
#include "train/checkpoint.h"
#include "train/cnn_model.h"
#include "train/lm_model.h"
#include "train/mamba_model.h"

namespace mmia {

struct PackedModelData {
    MmiaHeader header;  // magic, version, sizes and checksum are filled by the writer
    std::vector<PackedTensor> tensors;
    std::vector<uint8_t> tokenizer;  // a BPE tokenizer blob (LMs with hp[24] = 1), or empty
};

// A batch norm folded into the conv before it: in eval mode
// bn(conv(x)) = s * (W x + b - mean) + beta with s = gamma / sqrt(var + eps),
// i.e. a conv with weight s*W and bias s*(b - mean) + beta. `bias` may be
// undefined (a conv without bias: b = 0).
struct FoldedConv {
    torch::Tensor weight;  // (O, C, K, K)
    torch::Tensor bias;    // (O)
};
FoldedConv fold_batch_norm(const torch::Tensor& weight, const torch::Tensor& bias,
                           const torch::nn::BatchNorm2d& bn);

// A conv stem's batch norms are folded (fold_batch_norm); a group-norm stem
// keeps its gamma and beta (stem.{i}.norm.weight, .bias; docs/FORMAT.md).
PackedModelData pack_mamba(MambaClassifier& model);

// Each batch norm is folded into the conv before it (fold_batch_norm).
PackedModelData pack_cnn(CnnClassifier& model);

// Language models (docs/FORMAT.md kinds 3 and 4): every parameter under the
// format's names; the Mamba LM's A = -exp(A_log) folded and conv1d squeezed
// to (E, K), its head tied (no lm_head tensor, hp[26] = 1); the transformer's
// embed_out untied (hp[26] = 0). Byte tokenizer, EOS = kCorpusEos.
PackedModelData pack_mamba_lm(MambaLM& model);

// Every field of a language model's packed header (docs/FORMAT.md,
// "Language models"): the one place that writes them, for our own LMs
// (pack_*_lm) and imported ones (export/hf.cpp).
struct LmHeaderFields {
    uint32_t kind = MMIA_KIND_MAMBA_LM;  // 3 or 4
    int vocab = 0, context = 0;          // n_classes = V; hp[25]
    bool tied = false;                   // hp[26]
    int eos = kCorpusEos;                // hp[27]: an id in [0, V), or -1
    int32_t tokenizer = MMIA_TOKENIZER_BYTES;  // hp[24]
    int d_model = 0, n_layers = 0;
    int d_state = 0, d_conv = 0, d_inner = 0, dt_rank = 0;  // kind 3: N, K, E, R
    int n_heads = 0, d_ff = 0, rotary_ndims = 0;            // kind 4
    bool parallel = true;                                   // kind 4: parallel residual
    double eps = 1e-5;                                      // fp[0]: RMSNorm (3) / LayerNorm (4) eps
    double rotary_base = 10000;                             // kind 4: fp[1]
};
// A zeroed header with those slots filled (magic, sizes, checksum: the writer's).
MmiaHeader lm_header(const LmHeaderFields& f);
PackedModelData pack_transformer_lm(TransformerLM& model);
PackedModelData pack_lm(LanguageModel& model);

// Checkpoint in, packed model file out (atomically).
void export_mamba_checkpoint(const std::string& checkpoint, const std::string& output);
// The same for a checkpoint of any kind: its meta's "model" picks the packer.
void export_checkpoint(const std::string& checkpoint, const std::string& output);

// Writes images [first, first+count) of `set` to images_path as raw float32
// pixels in [0,1] (C*H*W floats per image) and, when labels_path is not
// empty, their labels to labels_path, one decimal per line. All or nothing:
// the range and both paths are checked first, both files are written to
// temporaries and renamed into place only when both are complete, so a
// failure leaves whatever was at either path untouched. Throws "images
// [a, b) are outside the N images of this split", or "<path>: <why>".
void write_images(const std::string& images_path, const std::string& labels_path, const ImageSet& set,
                  int64_t first, int64_t count);

}  // namespace mmia
