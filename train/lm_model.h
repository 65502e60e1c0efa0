// lm_model.h: the two language models of seed 003 in LibTorch, a Mamba LM
// and a GPT-NeoX (Pythia) transformer LM, byte-level (V = 256).
//
// The engines (mamba.cpp kind 3, transformer.cpp kind 4) compute exactly these
// forward passes; the parameter names below are the packed format's
// (docs/FORMAT.md, "Language models"), which are Hugging Face's with the
// "backbone." / "gpt_neox." prefix dropped. Shape legend: B batch, L tokens,
// V vocabulary, D d_model, E d_inner, N d_state, K d_conv, R dt_rank, H heads,
// d_h = D / H head dim, r rotary dims, F d_ff.
#pragma once
#include <torch/torch.h>

#include "common/config.h"
#include "train/mamba_model.h"

namespace mmia {

// state-spaces/mamba MambaLMHeadModel (= HF MambaForCausalLM):
//   h = embedding[tokens]; h = h + mixer(RMSNorm(h)) per layer (the
//   classifier's MambaBlock: causal conv, fused selective scan);
//   logits = RMSNorm(h) @ embedding^T (head tied to the embedding).
// Initialisation as mamba_ssm's _init_weights (mixer_seq_simple.py): the
// embedding ~ N(0, 0.02); each block as MambaBlock (dt_proj, A_log = log(1..N),
// D = 1, LibTorch's kaiming-uniform Linear/conv); out_proj then divided by
// sqrt(n_layers) (rescale_prenorm_residual, one residual per layer).
struct MambaLMImpl : torch::nn::Module {
    explicit MambaLMImpl(const MambaLmConfig& c);
    // tokens (B, L) int64 in [0, V) -> logits (B, L, V)
    torch::Tensor forward(const torch::Tensor& tokens);

    MambaLmConfig cfg;
    torch::nn::Embedding embedding{nullptr};  // weight (V, D); also the head
    torch::nn::ModuleList layers{nullptr};    // n_layers MambaBlock: norm.weight (D), in_proj (2E, D),
                                              // conv1d (E, 1, K) + (E), x_proj (R+2N, E),
                                              // dt_proj (E, R) + (E), A_log (E, N), D (E), out_proj (D, E)
    Norm norm_f{nullptr};                     // weight (D), RMSNorm
};
TORCH_MODULE(MambaLM);

// GPT-NeoX attention as HF GPTNeoXAttention (modeling_gpt_neox.py):
//   qkv = query_key_value(x) viewed (B, L, H, 3 d_h): per head q = [0, d_h),
//   k = [d_h, 2 d_h), v = [2 d_h, 3 d_h); rotary on q, k's first r dims
//   (NeoX half-split: x' = x cos + rotate_half(x) sin, rotate_half([a, b]) =
//   [-b, a], angle p * base^(-2j/r) for pair (j, j + r/2)); causal softmax of
//   q k^T * d_h^-0.5; heads concatenated -> dense.
struct NeoXAttentionImpl : torch::nn::Module {
    explicit NeoXAttentionImpl(const TransformerLmConfig& c);
    torch::Tensor forward(const torch::Tensor& x);  // (B, L, D) -> (B, L, D)

    TransformerLmConfig cfg;
    torch::nn::Linear query_key_value{nullptr};  // weight (3D, D), bias (3D); row h*3d_h + j
    torch::nn::Linear dense{nullptr};            // weight (D, D), bias (D)
};
TORCH_MODULE(NeoXAttention);

// dense_4h_to_h(gelu(dense_h_to_4h(x))), GELU in its exact erf form.
struct NeoXMLPImpl : torch::nn::Module {
    explicit NeoXMLPImpl(const TransformerLmConfig& c);
    torch::Tensor forward(const torch::Tensor& x);  // (B, L, D) -> (B, L, D)

    torch::nn::Linear dense_h_to_4h{nullptr};  // weight (F, D), bias (F)
    torch::nn::Linear dense_4h_to_h{nullptr};  // weight (D, F), bias (D)
};
TORCH_MODULE(NeoXMLP);

// One GPT-NeoX layer: parallel x + attn(LN1 x) + mlp(LN2 x), or sequential
// x' = x + attn(LN1 x); x' + mlp(LN2 x') (cfg.parallel_residual).
struct NeoXLayerImpl : torch::nn::Module {
    explicit NeoXLayerImpl(const TransformerLmConfig& c);
    torch::Tensor forward(const torch::Tensor& x);  // (B, L, D) -> (B, L, D)

    TransformerLmConfig cfg;
    torch::nn::LayerNorm input_layernorm{nullptr};           // weight (D), bias (D)
    torch::nn::LayerNorm post_attention_layernorm{nullptr};  // weight (D), bias (D)
    NeoXAttention attention{nullptr};
    NeoXMLP mlp{nullptr};
};
TORCH_MODULE(NeoXLayer);

// HF GPTNeoXForCausalLM (Pythia): embed_in -> layers -> final_layer_norm ->
// embed_out (untied). Initialisation as HF's _init_weights: Linear and
// Embedding weights ~ N(0, init_std), biases 0, LayerNorm 1 and 0.
struct TransformerLMImpl : torch::nn::Module {
    explicit TransformerLMImpl(const TransformerLmConfig& c);
    // tokens (B, L) int64 in [0, V), L <= context -> logits (B, L, V)
    torch::Tensor forward(const torch::Tensor& tokens);

    TransformerLmConfig cfg;
    torch::nn::Embedding embed_in{nullptr};           // weight (V, D)
    torch::nn::ModuleList layers{nullptr};            // n_layers NeoXLayer
    torch::nn::LayerNorm final_layer_norm{nullptr};   // weight (D), bias (D)
    torch::nn::Linear embed_out{nullptr};             // weight (V, D), no bias
};
TORCH_MODULE(TransformerLM);

// Rotary tables for positions [0, L) and r rotary dims, computed in float as
// HF's GPTNeoXRotaryEmbedding: inv_freq = 1 / base^(arange(0, r, 2) / r),
// freqs = outer(p, inv_freq) (L, r/2), emb = cat(freqs, freqs). Returns
// {cos(emb), sin(emb)}, each (L, r).
std::pair<torch::Tensor, torch::Tensor> rotary_tables(int64_t L, int64_t r, double base);

// Either model behind one face, as the trainer and the exporter need it.
struct LanguageModel {
    std::string kind;  // "mamba-lm" | "transformer-lm"
    MambaLM mamba{nullptr};
    TransformerLM transformer{nullptr};

    // Builds the model spec.model names from spec (weights from LibTorch's
    // current generator: seed it first).
    static LanguageModel build(const ModelSpec& spec);
    torch::nn::Module& module();
    torch::Tensor forward(const torch::Tensor& tokens);  // (B, L) -> (B, L, V)
    int context() const;
    int vocab() const;
    // Parameters outside the token embedding and the output head (Pythia's
    // "non-embedding" count; a tied head is the embedding).
    int64_t non_embedding_parameters();
};

}  // namespace mmia
