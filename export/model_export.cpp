// model_export.cpp: see model_export.h.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include "export/model_export.h"

#include <cstdio>
#include <stdexcept>

#include "common/corpus.h"
#include "engine/io.h"
#include "train/lm_trainer.h"

namespace mmia {

static PackedTensor to_packed(const std::string& name, const torch::Tensor& t,
                              std::vector<uint32_t> shape) {
    auto c = t.detach().to(torch::kFloat32).contiguous();
    int64_t numel = 1;
    for (uint32_t d : shape) numel *= d;
    if (numel != c.numel())
        throw std::runtime_error("export: " + name + " has " + std::to_string(c.numel()) +
                                 " values, expected " + std::to_string(numel));
    PackedTensor p;
    p.name = name;
    p.shape = std::move(shape);
    p.data.assign(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
    return p;
}

// A zeroed header with the kind and what every classifier has: the input
// shape, its normalisation (the in_mean / in_std buffers) and n_classes.
template <class Classifier>
static MmiaHeader input_header(uint32_t kind, const Classifier& model) {
    MmiaHeader h;
    memset(&h, 0, sizeof h);
    h.kind = kind;
    h.in_channels = model.channels;
    h.in_height = model.height;
    h.in_width = model.width;
    h.n_classes = model.n_classes;
    for (int i = 0; i < model.channels; i++) {
        h.in_mean[i] = model.in_mean[i].template item<float>();
        h.in_std[i] = model.in_std[i].template item<float>();
    }
    return h;
}

FoldedConv fold_batch_norm(const torch::Tensor& weight, const torch::Tensor& bias,
                           const torch::nn::BatchNorm2d& bn) {
    torch::NoGradGuard no_grad;
    const int64_t O = weight.size(0);
    auto scale = bn->weight / torch::sqrt(bn->running_var + bn->options.eps());  // (O)
    auto b = bias.defined() ? bias : torch::zeros({O});
    return {weight * scale.view({O, 1, 1, 1}), (b - bn->running_mean) * scale + bn->bias};
}

// A conv's weight (O, C, K, K) and bias (O) as two packed tensors.
static void push_conv(std::vector<PackedTensor>& t, const std::string& prefix, const FoldedConv& conv) {
    const auto& w = conv.weight;
    const uint32_t O = uint32_t(w.size(0));
    t.push_back(to_packed(prefix + "weight", w, {O, uint32_t(w.size(1)), uint32_t(w.size(2)), uint32_t(w.size(3))}));
    t.push_back(to_packed(prefix + "bias", conv.bias, {O}));
}

PackedModelData pack_mamba(MambaClassifier& model) {
    const MambaConfig& c = model->cfg;
    const uint32_t D = c.d_model, E = c.d_inner(), N = c.d_state, K = c.d_conv, R = c.dt_rank;
    const uint32_t P = uint32_t(c.patch_channels(model->channels)) * c.patch_h * c.patch_w;
    const uint32_t n_cls = model->n_classes;
    const bool layernorm = c.norm == "layernorm";

    PackedModelData out;
    MmiaHeader& h = out.header;
    h = input_header(MMIA_KIND_MAMBA, *model);
    h.hp[MMIA_HP_D_MODEL] = int32_t(D);
    h.hp[MMIA_HP_N_LAYERS] = c.n_layers;
    h.hp[MMIA_HP_D_STATE] = int32_t(N);
    h.hp[MMIA_HP_D_CONV] = int32_t(K);
    h.hp[MMIA_HP_D_INNER] = int32_t(E);
    h.hp[MMIA_HP_DT_RANK] = int32_t(R);
    h.hp[MMIA_HP_PATCH_H] = c.patch_h;
    h.hp[MMIA_HP_PATCH_W] = c.patch_w;
    h.hp[MMIA_HP_SEQ_LEN] = (model->height / c.patch_h) * (model->width / c.patch_w);
    h.hp[MMIA_HP_POOL] = c.pool == "mean" ? MMIA_POOL_MEAN : MMIA_POOL_LAST;
    h.hp[MMIA_HP_CONV_MODE] = c.conv == "causal" ? MMIA_CONV_CAUSAL : MMIA_CONV_SAME;
    h.hp[MMIA_HP_NORM] = layernorm ? MMIA_NORM_LAYER : MMIA_NORM_RMS;
    h.hp[MMIA_HP_NORM_PLACEMENT] = c.norm_placement == "post" ? MMIA_NORM_POST : MMIA_NORM_PRE;
    if (int(c.stem.size()) > MMIA_MAX_STEM_LAYERS)
        throw std::runtime_error("export: a stem of " + std::to_string(c.stem.size()) +
                                 " layers does not fit the format (at most " + std::to_string(MMIA_MAX_STEM_LAYERS) + ")");
    h.hp[MMIA_HP_STEM_LAYERS] = int32_t(c.stem.size());
    for (size_t i = 0; i < c.stem.size(); i++) h.hp[MMIA_HP_STEM_WIDTH(i)] = c.stem[i];
    const bool group_norm = !c.stem.empty() && c.stem_norm == "group";
    h.hp[MMIA_HP_STEM_NORM] = group_norm ? MMIA_STEM_GROUP_NORM : MMIA_STEM_BATCH_NORM;
    h.hp[MMIA_HP_STEM_GROUPS] = group_norm ? c.stem_groups : 0;
    h.fp[MMIA_FP_NORM_EPS] = float(c.norm_eps);

    torch::NoGradGuard no_grad;
    auto& t = out.tensors;
    for (size_t i = 0; i < c.stem.size(); i++) {
        auto layer = model->stem[i]->as<StemLayer>();
        const std::string p = "stem." + std::to_string(i) + ".";
        if (!group_norm) {  // conv + folded batch norm
            push_conv(t, p, fold_batch_norm(layer->conv->weight, {}, layer->bn));
            continue;
        }
        // conv (a zero bias: the format's stem conv has one), then the group norm's gamma and beta
        const uint32_t S = uint32_t(c.stem[i]);
        push_conv(t, p, FoldedConv{layer->conv->weight, torch::zeros({int64_t(S)})});
        t.push_back(to_packed(p + "norm.weight", layer->gn->weight, {S}));
        t.push_back(to_packed(p + "norm.bias", layer->gn->bias, {S}));
    }
    t.push_back(to_packed("embed.weight", model->embed->weight, {D, P}));
    t.push_back(to_packed("embed.bias", model->embed->bias, {D}));
    for (int i = 0; i < c.n_layers; i++) {
        auto block = model->layers[i]->as<MambaBlock>();
        const std::string p = "layers." + std::to_string(i) + ".";
        t.push_back(to_packed(p + "norm.weight", block->norm->weight, {D}));
        if (layernorm) t.push_back(to_packed(p + "norm.bias", block->norm->bias, {D}));
        t.push_back(to_packed(p + "in_proj.weight", block->in_proj->weight, {2 * E, D}));
        t.push_back(to_packed(p + "conv1d.weight", block->conv1d->weight, {E, K}));  // (E,1,K) squeezed
        t.push_back(to_packed(p + "conv1d.bias", block->conv1d->bias, {E}));
        t.push_back(to_packed(p + "x_proj.weight", block->x_proj->weight, {R + 2 * N, E}));
        t.push_back(to_packed(p + "dt_proj.weight", block->dt_proj->weight, {E, R}));
        t.push_back(to_packed(p + "dt_proj.bias", block->dt_proj->bias, {E}));
        t.push_back(to_packed(p + "A", -torch::exp(block->A_log), {E, N}));  // folded
        t.push_back(to_packed(p + "D", block->D, {E}));
        t.push_back(to_packed(p + "out_proj.weight", block->out_proj->weight, {D, E}));
    }
    t.push_back(to_packed("norm_f.weight", model->norm_f->weight, {D}));
    if (layernorm) t.push_back(to_packed("norm_f.bias", model->norm_f->bias, {D}));
    t.push_back(to_packed("head.weight", model->head->weight, {n_cls, D}));
    t.push_back(to_packed("head.bias", model->head->bias, {n_cls}));
    return out;
}

void export_mamba_checkpoint(const std::string& checkpoint, const std::string& output) {
    MambaClassifier model = load_mamba_checkpoint(checkpoint);
    PackedModelData packed = pack_mamba(model);
    write_packed_model(output, packed.header, packed.tensors);
}

PackedModelData pack_cnn(CnnClassifier& model) {
    const CnnConfig& c = model->cfg;
    PackedModelData out;
    MmiaHeader& h = out.header;
    h = input_header(MMIA_KIND_CNN, *model);
    if (int(c.layers.size()) > MMIA_CNN_MAX_LAYERS)
        throw std::runtime_error("export: a CNN of " + std::to_string(c.layers.size()) + " layers does not fit the format (at most " +
                                 std::to_string(MMIA_CNN_MAX_LAYERS) + ")");
    h.hp[MMIA_CNN_HP_N_LAYERS] = int32_t(c.layers.size());

    torch::NoGradGuard no_grad;
    auto& t = out.tensors;
    for (size_t i = 0; i < c.layers.size(); i++) {
        const CnnLayer& l = c.layers[i];
        const std::string p = "layers." + std::to_string(i) + ".";
        int32_t op = 0, arg = 0;
        if (l.type == "conv") {
            op = MMIA_CNN_CONV;
            arg = l.padding;
            const auto& conv = model->conv[i];  // weight (O, C, K, K)
            push_conv(t, p, l.batch_norm ? fold_batch_norm(conv->weight, conv->bias, model->bn[i])
                                         : FoldedConv{conv->weight, conv->bias});
        } else if (l.type == "maxpool") {
            op = MMIA_CNN_MAXPOOL;
            arg = l.kernel;
        } else if (l.type == "global_avg_pool") {
            op = MMIA_CNN_GLOBAL_AVG_POOL;
        } else if (l.type == "flatten") {
            op = MMIA_CNN_FLATTEN;
        } else if (l.type == "dense") {
            op = MMIA_CNN_DENSE;
            auto& d = model->dense[i];
            t.push_back(to_packed(p + "weight", d->weight, {uint32_t(d->weight.size(0)), uint32_t(d->weight.size(1))}));
            t.push_back(to_packed(p + "bias", d->bias, {uint32_t(d->bias.size(0))}));
        } else {
            throw std::runtime_error("export: unknown cnn layer type \"" + l.type + "\"");
        }
        int32_t act = l.activation == "relu"   ? MMIA_ACT_RELU
                      : l.activation == "tanh" ? MMIA_ACT_TANH
                      : l.activation == "gelu" ? MMIA_ACT_GELU
                                               : MMIA_ACT_NONE;
        h.hp[MMIA_CNN_HP_OP(i)] = op | act << 8;
        h.hp[MMIA_CNN_HP_ARG(i)] = arg;
    }
    return out;
}

MmiaHeader lm_header(const LmHeaderFields& f) {
    MmiaHeader h;
    memset(&h, 0, sizeof h);
    h.kind = f.kind;
    h.n_classes = uint32_t(f.vocab);
    h.hp[MMIA_LM_HP_TOKENIZER] = f.tokenizer;
    h.hp[MMIA_LM_HP_CONTEXT] = f.context;
    h.hp[MMIA_LM_HP_TIED] = f.tied ? 1 : 0;
    h.hp[MMIA_LM_HP_EOS] = f.eos;
    if (f.kind == MMIA_KIND_MAMBA_LM) {
        h.hp[MMIA_HP_D_MODEL] = f.d_model;
        h.hp[MMIA_HP_N_LAYERS] = f.n_layers;
        h.hp[MMIA_HP_D_STATE] = f.d_state;
        h.hp[MMIA_HP_D_CONV] = f.d_conv;
        h.hp[MMIA_HP_D_INNER] = f.d_inner;
        h.hp[MMIA_HP_DT_RANK] = f.dt_rank;
        h.fp[MMIA_FP_NORM_EPS] = float(f.eps);  // every RMSNorm of the LM
    } else {
        h.hp[MMIA_TF_HP_D_MODEL] = f.d_model;
        h.hp[MMIA_TF_HP_N_LAYERS] = f.n_layers;
        h.hp[MMIA_TF_HP_N_HEADS] = f.n_heads;
        h.hp[MMIA_TF_HP_D_FF] = f.d_ff;
        h.hp[MMIA_TF_HP_ROTARY_NDIMS] = f.rotary_ndims;
        h.hp[MMIA_TF_HP_PARALLEL] = f.parallel ? 1 : 0;
        h.fp[MMIA_TF_FP_NORM_EPS] = float(f.eps);
        h.fp[MMIA_TF_FP_ROTARY_BASE] = float(f.rotary_base);
    }
    return h;
}

PackedModelData pack_mamba_lm(MambaLM& model) {
    const MambaLmConfig& lc = model->cfg;
    const MambaConfig& c = lc.block;
    const uint32_t D = c.d_model, E = c.d_inner(), N = c.d_state, K = c.d_conv, R = c.dt_rank;
    const uint32_t V = uint32_t(lc.vocab);
    PackedModelData out;
    MmiaHeader& h = out.header;
    LmHeaderFields f;
    f.kind = MMIA_KIND_MAMBA_LM;
    f.vocab = lc.vocab;
    f.context = lc.context;
    f.tied = true;
    f.d_model = int(D);
    f.n_layers = c.n_layers;
    f.d_state = int(N);
    f.d_conv = int(K);
    f.d_inner = int(E);
    f.dt_rank = int(R);
    f.eps = c.norm_eps;
    h = lm_header(f);

    torch::NoGradGuard no_grad;
    auto& t = out.tensors;
    t.push_back(to_packed("embedding.weight", model->embedding->weight, {V, D}));
    for (int i = 0; i < c.n_layers; i++) {
        auto block = model->layers[i]->as<MambaBlock>();
        const std::string p = "layers." + std::to_string(i) + ".";
        t.push_back(to_packed(p + "norm.weight", block->norm->weight, {D}));
        t.push_back(to_packed(p + "in_proj.weight", block->in_proj->weight, {2 * E, D}));
        t.push_back(to_packed(p + "conv1d.weight", block->conv1d->weight, {E, K}));  // (E,1,K) squeezed
        t.push_back(to_packed(p + "conv1d.bias", block->conv1d->bias, {E}));
        t.push_back(to_packed(p + "x_proj.weight", block->x_proj->weight, {R + 2 * N, E}));
        t.push_back(to_packed(p + "dt_proj.weight", block->dt_proj->weight, {E, R}));
        t.push_back(to_packed(p + "dt_proj.bias", block->dt_proj->bias, {E}));
        t.push_back(to_packed(p + "A", -torch::exp(block->A_log), {E, N}));  // folded
        t.push_back(to_packed(p + "D", block->D, {E}));
        t.push_back(to_packed(p + "out_proj.weight", block->out_proj->weight, {D, E}));
    }
    t.push_back(to_packed("norm_f.weight", model->norm_f->weight, {D}));
    return out;
}

PackedModelData pack_transformer_lm(TransformerLM& model) {
    const TransformerLmConfig& c = model->cfg;
    const uint32_t D = c.d_model, F = c.d_ff, V = uint32_t(c.vocab);
    PackedModelData out;
    MmiaHeader& h = out.header;
    LmHeaderFields f;
    f.kind = MMIA_KIND_TRANSFORMER_LM;
    f.vocab = c.vocab;
    f.context = c.context;
    f.tied = false;
    f.d_model = int(D);
    f.n_layers = c.n_layers;
    f.n_heads = c.n_heads;
    f.d_ff = int(F);
    f.rotary_ndims = c.rotary_ndims();
    f.parallel = c.parallel_residual;
    f.eps = c.norm_eps;
    f.rotary_base = c.rotary_base;
    h = lm_header(f);

    torch::NoGradGuard no_grad;
    auto& t = out.tensors;
    t.push_back(to_packed("embed_in.weight", model->embed_in->weight, {V, D}));
    for (int i = 0; i < c.n_layers; i++) {
        auto layer = model->layers[i]->as<NeoXLayer>();
        const std::string p = "layers." + std::to_string(i) + ".";
        t.push_back(to_packed(p + "input_layernorm.weight", layer->input_layernorm->weight, {D}));
        t.push_back(to_packed(p + "input_layernorm.bias", layer->input_layernorm->bias, {D}));
        t.push_back(to_packed(p + "post_attention_layernorm.weight", layer->post_attention_layernorm->weight, {D}));
        t.push_back(to_packed(p + "post_attention_layernorm.bias", layer->post_attention_layernorm->bias, {D}));
        auto& qkv = layer->attention->query_key_value;  // per-head rows, as stored
        t.push_back(to_packed(p + "attention.query_key_value.weight", qkv->weight, {3 * D, D}));
        t.push_back(to_packed(p + "attention.query_key_value.bias", qkv->bias, {3 * D}));
        t.push_back(to_packed(p + "attention.dense.weight", layer->attention->dense->weight, {D, D}));
        t.push_back(to_packed(p + "attention.dense.bias", layer->attention->dense->bias, {D}));
        t.push_back(to_packed(p + "mlp.dense_h_to_4h.weight", layer->mlp->dense_h_to_4h->weight, {F, D}));
        t.push_back(to_packed(p + "mlp.dense_h_to_4h.bias", layer->mlp->dense_h_to_4h->bias, {F}));
        t.push_back(to_packed(p + "mlp.dense_4h_to_h.weight", layer->mlp->dense_4h_to_h->weight, {D, F}));
        t.push_back(to_packed(p + "mlp.dense_4h_to_h.bias", layer->mlp->dense_4h_to_h->bias, {D}));
    }
    t.push_back(to_packed("final_layer_norm.weight", model->final_layer_norm->weight, {D}));
    t.push_back(to_packed("final_layer_norm.bias", model->final_layer_norm->bias, {D}));
    t.push_back(to_packed("embed_out.weight", model->embed_out->weight, {V, D}));
    return out;
}

PackedModelData pack_lm(LanguageModel& model) {
    return model.mamba ? pack_mamba_lm(model.mamba) : pack_transformer_lm(model.transformer);
}

void export_checkpoint(const std::string& checkpoint, const std::string& output) {
    const std::string kind = read_checkpoint_meta(checkpoint).value("model", "");
    PackedModelData packed;
    if (kind == "mamba") {
        MambaClassifier model = load_mamba_checkpoint(checkpoint);
        packed = pack_mamba(model);
    } else if (kind == "cnn") {
        CnnClassifier model = load_cnn_checkpoint(checkpoint);
        packed = pack_cnn(model);
    } else if (is_lm_model(kind)) {
        LanguageModel model = load_lm_checkpoint(checkpoint);
        packed = pack_lm(model);
    } else {
        throw std::runtime_error(checkpoint + ": unknown model kind \"" + kind +
                                 "\" (known: mamba, cnn, mamba-lm, transformer-lm)");
    }
    write_packed_model(output, packed.header, packed.tensors);
}

static void check_range(const ImageSet& set, int64_t first, int64_t count) {
    if (first < 0 || count < 1 || first + count > set.n)
        throw std::runtime_error("images [" + std::to_string(first) + ", " +
                                 std::to_string(first + count) + ") are outside the " +
                                 std::to_string(set.n) + " images of this split");
}

void write_images(const std::string& images_path, const std::string& labels_path, const ImageSet& set,
                  int64_t first, int64_t count) {
    check_range(set, first, count);
    const int64_t per = int64_t(set.channels) * set.height * set.width;
    std::vector<float> floats(size_t(count * per));
    for (int64_t i = 0; i < count * per; i++)
        floats[size_t(i)] = float(set.pixels[size_t(first * per + i)]) / 255.0f;
    std::string text;
    for (int64_t i = first; i < first + count; i++) text += std::to_string(set.labels[size_t(i)]) + "\n";
    // engine/io.h: temporaries, fsync, renames only when both are written;
    // a FIFO, device or directory at either path is refused, never replaced.
    const char* paths[2] = {images_path.c_str(), labels_path.c_str()};
    const void* bufs[2] = {floats.data(), text.data()};
    const size_t lens[2] = {floats.size() * sizeof(float), text.size()};
    int failed = 0;
    char err[512];
    if (io_write_files_atomic(labels_path.empty() ? 1 : 2, paths, bufs, lens, &failed, err, sizeof err) != 0)
        throw std::runtime_error(std::string(paths[failed]) + ": " + err);
}

}  // namespace mmia
