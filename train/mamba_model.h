// mamba_model.h: the Mamba image classifier in LibTorch.
//
// The engine (mamba.cpp) computes exactly this forward pass, op for op; the
// parameter names below are the ones export/ maps to the packed format
// (docs/FORMAT.md). Shape legend: B batch, L tokens, D d_model, E d_inner,
// N d_state, K d_conv, R dt_rank, P pixels per patch (C*ph*pw).
#pragma once
#include <torch/torch.h>

#include "common/config.h"

namespace mmia {

// y = x / sqrt(mean(x^2) + eps) * weight, over the last dim.
struct RMSNormImpl : torch::nn::Module {
    RMSNormImpl(int64_t dim, double eps);
    torch::Tensor forward(const torch::Tensor& x);
    torch::Tensor weight;  // (D)
    double eps;
};
TORCH_MODULE(RMSNorm);

// One pre-norm residual Mamba block: x + mixer(norm(x)), where mixer is
// in_proj -> depthwise conv1d + SiLU -> x_proj -> softplus(dt_proj) ->
// selective scan (+ D*u, * silu(z)) -> out_proj.
struct MambaBlockImpl : torch::nn::Module {
    explicit MambaBlockImpl(const MambaConfig& c);
    torch::Tensor forward(const torch::Tensor& x);  // (B, L, D) -> (B, L, D)
    torch::Tensor mixer(const torch::Tensor& h);    // (B, L, D) -> (B, L, D), no residual

    MambaConfig cfg;
    RMSNorm norm{nullptr};             // weight (D)
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

struct MambaClassifierImpl : torch::nn::Module {
    MambaClassifierImpl(const MambaConfig& c, int channels, int height, int width, int n_classes,
                        const std::vector<float>& mean, const std::vector<float>& std);
    // images: (B, C, H, W) pixels in [0,1] -> logits (B, n_classes)
    torch::Tensor forward(const torch::Tensor& images);
    // images -> tokens (B, L, P), normalised, patches in row-major order
    torch::Tensor patchify(const torch::Tensor& images) const;
    void set_loop_scan(bool on);  // every block: see MambaBlockImpl::loop_scan

    MambaConfig cfg;
    int channels, height, width, n_classes;
    torch::Tensor in_mean, in_std;        // buffers (C): input normalisation
    torch::nn::Linear embed{nullptr};     // weight (D, P), bias (D)
    torch::nn::ModuleList layers{nullptr};
    RMSNorm norm_f{nullptr};              // weight (D)
    torch::nn::Linear head{nullptr};      // weight (n_classes, D), bias (n_classes)
};
TORCH_MODULE(MambaClassifier);

}  // namespace mmia
