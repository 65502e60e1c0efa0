// lm_model.cpp: see lm_model.h.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include "train/lm_model.h"

#include <cmath>
#include <limits>
#include <stdexcept>

namespace mmia {

namespace nn = torch::nn;

// ---------------------------------------------------------------------------
// Mamba LM

MambaLMImpl::MambaLMImpl(const MambaLmConfig& c) : cfg(c) {
    const MambaConfig& b = c.block;
    embedding = register_module("embedding", nn::Embedding(c.vocab, b.d_model));
    layers = register_module("layers", nn::ModuleList());
    for (int i = 0; i < b.n_layers; i++) layers->push_back(MambaBlock(b));
    norm_f = register_module("norm_f", Norm(b.d_model, b.norm_eps, /*layernorm=*/false));

    torch::NoGradGuard no_grad;
    nn::init::normal_(embedding->weight, 0.0, 0.02);
    for (const auto& layer : *layers)
        layer->as<MambaBlock>()->out_proj->weight.div_(std::sqrt(double(b.n_layers)));
}

torch::Tensor MambaLMImpl::forward(const torch::Tensor& tokens) {
    auto h = embedding(tokens);  // (B, L, D)
    for (const auto& layer : *layers) h = layer->as<MambaBlock>()->forward(h);
    return torch::matmul(norm_f(h), embedding->weight.t());  // (B, L, V)
}

// ---------------------------------------------------------------------------
// GPT-NeoX

std::pair<torch::Tensor, torch::Tensor> rotary_tables(int64_t L, int64_t r, double base) {
    auto inv_freq = 1.0 / torch::pow(base, torch::arange(0, r, 2, torch::kFloat32) / float(r));  // (r/2)
    auto t = torch::arange(L, torch::kFloat32);                                           // (L)
    auto freqs = torch::outer(t, inv_freq);                                               // (L, r/2)
    auto emb = torch::cat({freqs, freqs}, -1);                                            // (L, r)
    return {emb.cos(), emb.sin()};
}

// [a, b] -> [-b, a] over the last dim's halves.
static torch::Tensor rotate_half(const torch::Tensor& x) {
    const int64_t h = x.size(-1) / 2;
    return torch::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
}

NeoXAttentionImpl::NeoXAttentionImpl(const TransformerLmConfig& c) : cfg(c) {
    const int64_t D = c.d_model;
    query_key_value = register_module("query_key_value", nn::Linear(D, 3 * D));
    dense = register_module("dense", nn::Linear(D, D));
}

torch::Tensor NeoXAttentionImpl::forward(const torch::Tensor& x) {
    const int64_t B = x.size(0), L = x.size(1), H = cfg.n_heads, dh = cfg.head_dim(), r = cfg.rotary_ndims();
    auto qkv = query_key_value(x).view({B, L, H, 3 * dh}).permute({0, 2, 1, 3});  // (B, H, L, 3d_h)
    auto q = qkv.narrow(-1, 0, dh);                                              // (B, H, L, d_h)
    auto k = qkv.narrow(-1, dh, dh);
    auto v = qkv.narrow(-1, 2 * dh, dh);
    if (r > 0) {
        auto [cos, sin] = rotary_tables(L, r, cfg.rotary_base);  // (L, r)
        auto rot = [&](const torch::Tensor& t) {
            auto a = t.narrow(-1, 0, r), pass = t.narrow(-1, r, dh - r);
            return torch::cat({a * cos + rotate_half(a) * sin, pass}, -1);
        };
        q = rot(q);
        k = rot(k);
    }
    auto scores = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(double(dh)));  // (B, H, L, L)
    auto future = torch::ones({L, L}, torch::kBool).triu(1);  // key s > query t
    scores = scores.masked_fill(future, -std::numeric_limits<float>::infinity());
    auto y = torch::matmul(torch::softmax(scores, -1), v);  // (B, H, L, d_h)
    return dense(y.permute({0, 2, 1, 3}).reshape({B, L, H * dh}));
}

NeoXMLPImpl::NeoXMLPImpl(const TransformerLmConfig& c) {
    dense_h_to_4h = register_module("dense_h_to_4h", nn::Linear(c.d_model, c.d_ff));
    dense_4h_to_h = register_module("dense_4h_to_h", nn::Linear(c.d_ff, c.d_model));
}

torch::Tensor NeoXMLPImpl::forward(const torch::Tensor& x) {
    return dense_4h_to_h(torch::gelu(dense_h_to_4h(x)));  // exact erf GELU
}

NeoXLayerImpl::NeoXLayerImpl(const TransformerLmConfig& c) : cfg(c) {
    auto ln = [&] { return nn::LayerNorm(nn::LayerNormOptions({c.d_model}).eps(c.norm_eps)); };
    input_layernorm = register_module("input_layernorm", ln());
    post_attention_layernorm = register_module("post_attention_layernorm", ln());
    attention = register_module("attention", NeoXAttention(c));
    mlp = register_module("mlp", NeoXMLP(c));
}

torch::Tensor NeoXLayerImpl::forward(const torch::Tensor& x) {
    auto a = attention(input_layernorm(x));
    if (cfg.parallel_residual) return x + a + mlp(post_attention_layernorm(x));
    auto h = x + a;
    return h + mlp(post_attention_layernorm(h));
}

TransformerLMImpl::TransformerLMImpl(const TransformerLmConfig& c) : cfg(c) {
    embed_in = register_module("embed_in", nn::Embedding(c.vocab, c.d_model));
    layers = register_module("layers", nn::ModuleList());
    for (int i = 0; i < c.n_layers; i++) layers->push_back(NeoXLayer(c));
    final_layer_norm = register_module(
        "final_layer_norm", nn::LayerNorm(nn::LayerNormOptions({c.d_model}).eps(c.norm_eps)));
    embed_out = register_module("embed_out", nn::Linear(nn::LinearOptions(c.d_model, c.vocab).bias(false)));

    torch::NoGradGuard no_grad;
    for (auto& p : named_parameters()) {
        const std::string& name = p.key();
        const bool is_norm = name.find("layernorm") != std::string::npos ||
                             name.find("layer_norm") != std::string::npos;
        if (is_norm) continue;  // LayerNorm: weight 1, bias 0 already
        if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0)
            p.value().zero_();
        else
            nn::init::normal_(p.value(), 0.0, c.init_std);
    }
}

torch::Tensor TransformerLMImpl::forward(const torch::Tensor& tokens) {
    TORCH_CHECK(tokens.dim() == 2 && tokens.size(1) <= cfg.context, "transformer-lm: a sequence of ",
                tokens.size(1), " tokens is longer than the context of ", cfg.context);
    auto h = embed_in(tokens);  // (B, L, D)
    for (const auto& layer : *layers) h = layer->as<NeoXLayer>()->forward(h);
    return embed_out(final_layer_norm(h));  // (B, L, V)
}

// ---------------------------------------------------------------------------
// Either model

LanguageModel LanguageModel::build(const ModelSpec& spec) {
    LanguageModel m;
    m.kind = spec.model;
    if (spec.model == "mamba-lm")
        m.mamba = MambaLM(spec.mamba_lm);
    else if (spec.model == "transformer-lm")
        m.transformer = TransformerLM(spec.transformer_lm);
    else
        throw std::runtime_error("\"" + spec.model + "\" is not a language model (known: mamba-lm, transformer-lm)");
    return m;
}

torch::nn::Module& LanguageModel::module() {
    if (mamba) return *mamba;
    return *transformer;
}

torch::Tensor LanguageModel::forward(const torch::Tensor& tokens) {
    return mamba ? mamba->forward(tokens) : transformer->forward(tokens);
}

int LanguageModel::context() const { return mamba ? mamba->cfg.context : transformer->cfg.context; }
int LanguageModel::vocab() const { return mamba ? mamba->cfg.vocab : transformer->cfg.vocab; }

int64_t LanguageModel::non_embedding_parameters() {
    int64_t n = 0;
    for (auto& p : module().named_parameters()) {
        const std::string& k = p.key();
        if (k == "embedding.weight" || k == "embed_in.weight" || k == "embed_out.weight") continue;
        n += p.value().numel();
    }
    return n;
}

}  // namespace mmia
