// mamba_model.h: the Mamba image classifier in LibTorch.
//
// The engine (mamba.cpp) computes exactly this forward pass, op for op; the
// parameter names below are the ones export/ maps to the packed format
// (docs/FORMAT.md). Shape legend: B batch, L tokens, D d_model, E d_inner,
// N d_state, K d_conv, R dt_rank, C/H/W the image, S stem channels, P pixels
// per patch (C*ph*pw, or S*ph*pw of the stem's last feature map).
#pragma once
#include <torch/torch.h>

#include "common/config.h"
#include "train/per_example.h"

namespace mmia {

// The model's norm over the last dim (cfg.norm):
//   rmsnorm:   y = x / sqrt(mean(x^2) + eps) * weight
//   layernorm: y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias  (biased var)
struct NormImpl : torch::nn::Module {
    NormImpl(int64_t dim, double eps, bool layernorm);
    // x (B, L, D) or (B, D); pe: see PerExampleParams
    torch::Tensor forward(const torch::Tensor& x, const PerExampleParams* pe = nullptr);
    torch::Tensor weight;  // (D)
    torch::Tensor bias;    // (D), layernorm only (undefined for rmsnorm)
    double eps;
    bool layernorm;
};
TORCH_MODULE(Norm);

// One layer of the conv stem: gelu(norm(conv(x))), GELU in its exact erf
// form; norm is batch norm (cfg.stem_norm "batch": export folds it into the
// conv, its eval-mode affine map) or group norm ("group", G = stem_groups,
// eps = norm_eps; per example, so DP-SGD can clip it, Wu & He 2018).
struct StemLayerImpl : torch::nn::Module {
    StemLayerImpl(int64_t in_channels, int64_t out_channels, const MambaConfig& c);
    // (B, C, H, W) -> (B, S, H, W); pe: see PerExampleParams (group norm only)
    torch::Tensor forward(const torch::Tensor& x, const PerExampleParams* pe = nullptr);
    torch::nn::Conv2d conv{nullptr};     // weight (S, C, 3, 3), padding 1, no bias (the norm has one)
    torch::nn::BatchNorm2d bn{nullptr};  // weight, bias, running_mean, running_var (S); batch norm only
    torch::nn::GroupNorm gn{nullptr};    // weight (S) gamma, bias (S) beta; group norm only
};
TORCH_MODULE(StemLayer);

// One residual Mamba block, pre-norm x + mixer(norm(x)) or post-norm
// norm(x + mixer(x)) (cfg.norm_placement), with dropout on the mixer's
// output while training; mixer is in_proj -> depthwise conv1d + SiLU ->
// x_proj -> softplus(dt_proj) -> selective scan (+ D*u, * silu(z)) -> out_proj.
struct MambaBlockImpl : torch::nn::Module {
    explicit MambaBlockImpl(const MambaConfig& c);
    // (B, L, D) -> (B, L, D); pe: see PerExampleParams
    torch::Tensor forward(const torch::Tensor& x, const PerExampleParams* pe = nullptr);
    // (B, L, D) -> (B, L, D), no residual
    torch::Tensor mixer(const torch::Tensor& h, const PerExampleParams* pe = nullptr);

    MambaConfig cfg;
    Norm norm{nullptr};                   // weight (D) [, bias (D)]
    torch::nn::Linear in_proj{nullptr};   // weight (2E, D): rows [0,E) x branch, [E,2E) gate z
    torch::nn::Conv1d conv1d{nullptr};    // weight (E, 1, K), bias (E); depthwise
    torch::nn::Linear x_proj{nullptr};    // weight (R+2N, E): dt input, B, C
    torch::nn::Linear dt_proj{nullptr};   // weight (E, R), bias (E): softplus^-1 of dt init
    torch::nn::Linear out_proj{nullptr};  // weight (D, E)
    torch::Tensor A_log;                  // (E, N); A = -exp(A_log)
    torch::Tensor D;                      // (E) skip connection
    // Benchmarks only: run the scan as the plain loop of LibTorch ops
    // (selective_scan_ref) instead of the fused op, to time the difference.
    bool loop_scan = false;
};
TORCH_MODULE(MambaBlock);

// images -> normalise -> [stem] -> patches -> embed -> blocks -> final norm
// and pool (norm then pool for pre-norm, pool then norm for post-norm) ->
// [dropout] -> head.
struct MambaClassifierImpl : torch::nn::Module {
    MambaClassifierImpl(const MambaConfig& c, int channels, int height, int width, int n_classes,
                        const std::vector<float>& mean, const std::vector<float>& std);
    // images: (B, C, H, W) pixels in [0,1] -> logits (B, n_classes). With
    // pe (PerExampleParams), example b runs with its own copy of every
    // parameter pe maps; a model with a batch-norm stem takes none (its
    // batch norm mixes the examples anyway).
    torch::Tensor forward(const torch::Tensor& images, const PerExampleParams* pe = nullptr);
    // feature map (B, C', H, W) -> tokens (B, L, C'*ph*pw): patches in
    // row-major order over the patch grid, each flattened (c, y, x)
    torch::Tensor patchify(const torch::Tensor& features) const;
    void set_loop_scan(bool on);  // every block: see MambaBlockImpl::loop_scan

    MambaConfig cfg;
    int channels, height, width, n_classes;
    torch::Tensor in_mean, in_std;        // buffers (C): input normalisation
    torch::nn::ModuleList stem{nullptr};  // a StemLayer per cfg.stem entry; null without a stem
    torch::nn::Linear embed{nullptr};     // weight (D, P), bias (D)
    torch::nn::ModuleList layers{nullptr};
    Norm norm_f{nullptr};                 // weight (D) [, bias (D)]
    torch::nn::Linear head{nullptr};      // weight (n_classes, D), bias (n_classes)
};
TORCH_MODULE(MambaClassifier);

}  // namespace mmia
