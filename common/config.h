// config.h: config.json (named model presets + training defaults), resolved
// into typed structs. Shared by train/, export/ and attack/.
//
// Resolution order, later wins: config.json "training" defaults -> the preset
// (its model fields, and any training fields it overrides) -> CLI flags.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mmia {

using json = nlohmann::json;

// Hyperparameters of the Mamba classifier (train/mamba_model.h, mamba.cpp).
struct MambaConfig {
    int d_model = 64;       // D: residual stream width
    int n_layers = 2;
    int d_state = 16;       // N
    int d_conv = 4;         // K: depthwise conv kernel
    int expand = 2;         // E = expand * D
    int dt_rank = 0;        // R; 0 in JSON as "auto" = ceil(D / 16)
    double dt_min = 1e-3;   // dt bias init: softplus^-1 of log-uniform [dt_min, dt_max]
    double dt_max = 1e-1;
    double dt_init_floor = 1e-4;
    int patch_h = 4;        // image -> tokens: non-overlapping patches
    int patch_w = 4;
    std::string pool = "mean";    // "mean" | "last"
    std::string conv = "causal";  // "causal" (paper) | "same" (seed 000)
    double norm_eps = 1e-5;
    // Optional conv stem before the patch embedding (seed 000): one 3x3
    // conv (padding 1, no bias) + BatchNorm + GELU per entry, of that many
    // output channels; the patches are then cut from its last feature map.
    // Empty (or absent in JSON) = patches of the normalised image.
    std::vector<int> stem;
    // The stem's norm after each conv: "batch" (BatchNorm2d, folded into the
    // conv at export; mixes the examples of a batch, so DP-SGD refuses it) or
    // "group" (GroupNorm of stem_groups groups, eps norm_eps: per example,
    // Wu & He 2018; the stand-in for batch norm under DP-SGD).
    std::string stem_norm = "batch";
    int stem_groups = 0;  // group norm: G, dividing every stem width; 0 with batch norm
    std::string norm = "rmsnorm";        // "rmsnorm" | "layernorm" (every norm of the model)
    // "pre": x = x + block(norm(x)), final norm on the tokens, then pool.
    // "post" (seed 000): x = norm(x + block(x)), pool, then the final norm.
    std::string norm_placement = "pre";
    double dropout = 0.0;       // on each block's output before the residual add (training only)
    double head_dropout = 0.0;  // on the pooled vector before the head (training only)

    int d_inner() const { return expand * d_model; }
    // Channels of the feature map the patches are cut from.
    int patch_channels(int image_channels) const { return stem.empty() ? image_channels : stem.back(); }
};

// Caps on the conv stem (the engine's are the same, engine/mamba.h).
constexpr int kMambaMaxStemLayers = 8;   // what the packed header's hp slots hold
constexpr int kMambaMaxStemWidth = 4096;

// One entry of a CNN's layer list (train/cnn_model.h, cnn.cpp).
struct CnnLayer {
    std::string type;                 // "conv" | "maxpool" | "global_avg_pool" | "flatten" | "dense"
    int out = 0;                      // conv: output channels; dense: units, 0 = n_classes
    int kernel = 0;                   // conv: K of the KxK kernel (stride 1); maxpool: window = stride
    int padding = 0;                  // conv: zeros added on each side
    bool batch_norm = false;          // conv: BatchNorm2d before the activation (folded at export)
    std::string activation = "none";  // conv, dense: "none" | "relu" | "tanh" | "gelu"
};

// Hyperparameters of the CNN classifier: its layers in order. The last is
// the dense head with n_classes outputs and no activation.
struct CnnConfig {
    std::vector<CnnLayer> layers;
    double bn_eps = 1e-5;  // BatchNorm2d epsilon
};

// Caps a CNN must respect (the engine's are the same, engine/cnn.h).
constexpr int kCnnMaxLayers = 15;     // what the packed header's hp slots hold
constexpr int kCnnMaxWidth = 4096;    // conv channels, dense units
constexpr int kCnnMaxKernel = 31;

struct TrainConfig {
    int batch_size = 128;
    int epochs = 10;
    double learning_rate = 1e-3;
    double weight_decay = 0.01;
    std::string lr_schedule = "cosine";  // "cosine" | "constant"
    // Training-time augmentation: "none" | "crop-flip" (shift by up to 4
    // pixels with zero fill, mirror left-right half the time; CIFAR's usual)
    // | "shift2" (up to 2 pixels, no mirror: digits) | "shift2-flip" (up to
    // 2 pixels and the mirror) (train/trainer.h, augment_images).
    // Optional in config.json ("none" when absent) and recorded in a
    // checkpoint only when not "none", so older checkpoints still resume.
    std::string augment = "none";
    std::string save_dir = "checkpoints";
    uint64_t seed = 42;
    // Language models: also checkpoint every this many optimizer steps inside
    // an epoch (0 = at the end of each epoch only). Optional in config.json,
    // recorded only when non-zero.
    int checkpoint_every = 0;
    // The learning rate under DP-SGD (0: learning_rate). Clipped, noised
    // gradients are smaller and noisier, so DP-SGD trains best at another
    // rate (BENCHMARKS.md "A DP learning rate per architecture"). Optional
    // in config.json, never written by to_json: a run records the rate it
    // used (use_dp_learning_rate) in learning_rate.
    double dp_learning_rate = 0;
};

// Under DP-SGD: learning_rate becomes dp_learning_rate when one is set.
void use_dp_learning_rate(TrainConfig& c);

// Language models (seed 003; train/lm_model.h, docs/FORMAT.md kinds 3 and 4).
// Tokens are bytes: the vocabulary is the 256 byte values (MMIA_TOKENIZER_BYTES).
constexpr int kByteVocab = 256;

// Mamba LM (state-spaces/mamba MambaLMHeadModel): embedding (V, D) -> n_layers
// pre-norm RMSNorm Mamba blocks with a causal conv -> RMSNorm -> head tied to
// the embedding. `block` holds the block's sizes (d_model, n_layers, d_state,
// d_conv, expand, dt_rank, dt init, norm_eps); its image fields are unused and
// fixed at conv "causal", norm "rmsnorm", norm_placement "pre", no dropout.
struct MambaLmConfig {
    MambaConfig block;
    int vocab = kByteVocab;  // V
    int context = 256;       // training window in tokens (the engine runs any length)
};

// GPT-NeoX as Pythia uses it (HF GPTNeoXForCausalLM): embed_in (V, D) ->
// n_layers blocks x + attn(LN1 x) + mlp(LN2 x) (LayerNorm eps norm_eps) ->
// final LayerNorm -> untied embed_out (V, D). Attention: H heads of d_h = D/H,
// fused qkv laid out per head, rotary (NeoX half-split, rotary_base) on the
// first rotary_ndims() dims of each head; MLP D -> d_ff -> D with erf GELU.
struct TransformerLmConfig {
    int d_model = 64;        // D
    int n_layers = 2;
    int n_heads = 4;         // H; D % H == 0
    int d_ff = 256;          // F (4D in Pythia)
    double rotary_pct = 0.25;
    double rotary_base = 10000.0;
    double norm_eps = 1e-5;
    bool parallel_residual = true;
    double init_std = 0.02;  // HF initializer_range: Linear and Embedding weights ~ N(0, std)
    int vocab = kByteVocab;  // V
    int context = 256;       // max_position_embeddings: the longest sequence the model runs

    int head_dim() const { return d_model / n_heads; }
    // HF: int(d_h * rotary_pct); validated even.
    int rotary_ndims() const { return int(double(head_dim()) * rotary_pct); }
};

// A preset resolved against a dataset's image shape.
struct ModelSpec {
    std::string preset;
    // "mamba" | "cnn" | "mamba-lm" | "transformer-lm": which config below applies
    std::string model;
    MambaConfig mamba;
    CnnConfig cnn;
    MambaLmConfig mamba_lm;
    TransformerLmConfig transformer_lm;
};

// True for "mamba-lm" and "transformer-lm".
bool is_lm_model(const std::string& model);

// Caps on JSON this project reads (config.json, checkpoint meta records).
// nlohmann copies, compares and prints values recursively, so a hostile file
// nested a million levels deep would overflow the stack; real files nest 4.
constexpr int kMaxJsonDepth = 64;
constexpr size_t kMaxConfigBytes = size_t(1) << 20;

// Throws std::runtime_error("<what>: JSON nested more than 64 levels deep")
// if text (JSON, not yet parsed) nests deeper than kMaxJsonDepth.
void check_json_depth(const std::string& text, const std::string& what);

// Reads and parses config.json (a regular file of at most kMaxConfigBytes);
// throws std::runtime_error("<path>: <why>").
json load_config_file(const std::string& path);

// Creates a directory a program writes its run into (and its parents), or
// accepts an existing one; throws std::runtime_error("<dir>: cannot create
// directory (<why>)"), "(Not a directory)" for a path that is a file, a FIFO
// or a device (bin/corpus build's words for --out).
void create_output_dir(const std::string& dir);

// The same refusal as create_output_dir, without creating anything: the
// path, or the nearest of its ancestors that exists, must be a directory. A
// run calls it before its work and creates the directory when it writes.
void check_output_dir(const std::string& dir);

// Whether a file a run directory holds (its recorded configuration) is
// there to read: false if missing, true if a regular file; throws
// std::runtime_error("<path>: not a regular file") otherwise (a FIFO would
// block the read forever).
bool regular_file_exists(const std::string& path);

// The preset named `name` ("" = the default for `model`); throws listing the
// known presets when there is no such preset.
ModelSpec resolve_preset(const json& config, const std::string& model, const std::string& name);
TrainConfig resolve_training(const json& config, const std::string& preset_name);

// Checks dimensions against the image (patches tile it, sizes in range).
void validate_mamba(const MambaConfig& c, int channels, int height, int width);

// Walks the layer list over a channels x height x width image: every size
// stays >= 1, no conv or pool after flatten / global_avg_pool, dense only
// after one of them, the last layer dense with n_classes outputs and no
// activation. Throws std::runtime_error naming the layer.
void validate_cnn(const CnnConfig& c, int channels, int height, int width, int n_classes);

json to_json(const MambaConfig& c);
MambaConfig mamba_from_json(const json& j);  // strict: unknown or bad fields throw
json to_json(const TrainConfig& c);
json to_json(const CnnConfig& c);
CnnConfig cnn_from_json(const json& j);  // strict: unknown or bad fields throw
// Strict like mamba_from_json; also checks the model is well formed
// (D % H == 0, rotary_ndims even and <= d_h, ...), throwing "<kind> config: <why>".
json to_json(const MambaLmConfig& c);
MambaLmConfig mamba_lm_from_json(const json& j);
json to_json(const TransformerLmConfig& c);
TransformerLmConfig transformer_lm_from_json(const json& j);

}  // namespace mmia
