// per_example.h: the ops of a model's forward with per-example parameters
// (DP-SGD's per-example gradients in one batched backward, the "expanded
// weights" method of Opacus): every parameter p may be given a stand-in of
// shape (B, *p.shape) whose row b batch element b uses instead of p. The
// gradient of the summed loss w.r.t. a stand-in is then each example's own
// gradient of p (train/trainer.h, dp_sgd_gradients).
//
// Each op below takes its parameters either shared (the ordinary op, the
// same call the nn module makes) or per example (a batched equivalent).
// Shape legend: B batch, L tokens, D features, O/C output/input channels,
// K kernel size, H/W the feature map.
#pragma once
#include <torch/torch.h>

#include <unordered_map>

namespace mmia {

// parameter (by its TensorImpl) -> its per-example stand-in (B, *shape). A
// parameter not in the map is shared.
using PerExampleParams = std::unordered_map<const c10::TensorImpl*, torch::Tensor>;

// p, or its per-example stand-in when pe maps it.
inline const torch::Tensor& pe_param(const torch::Tensor& p, const PerExampleParams* pe) {
    if (!pe || !p.defined()) return p;
    auto it = pe->find(p.unsafeGetTensorImpl());
    return it == pe->end() ? p : it->second;
}

// A vector v of D values, shared (D) or per example (B, D), broadcastable
// against x (B, L, D) or (B, D).
inline torch::Tensor pe_rows(const torch::Tensor& v, const torch::Tensor& x) {
    return v.dim() == 2 && x.dim() == 3 ? v.unsqueeze(1) : v;
}

// y = x W^T + b for x (B, L, in) or (B, in); W (out, in) shared (nn::Linear's
// op) or (B, out, in) per example; b (out), (B, out) or undefined.
inline torch::Tensor pe_linear(const torch::Tensor& x, const torch::Tensor& W, const torch::Tensor& b) {
    if (W.dim() == 2) return torch::linear(x, W, b);
    const bool seq = x.dim() == 3;
    auto y = torch::matmul(seq ? x : x.unsqueeze(1), W.transpose(1, 2));  // (B, L or 1, out)
    if (b.defined()) y = y + b.unsqueeze(1);
    return seq ? y : y.squeeze(1);
}

// Ghost clipping of a dense layer on 2-D input (Li et al. 2022, "Large
// language models can be strong differentially private learners", after
// Goodfellow 2015): its parameters stay shared; the layer records its input
// x (B, in) and output z (B, out). Example b's gradient of W is the outer
// product dz_b x_b^T (dz: the loss's gradient w.r.t. z), so its squared norm
// is |dz_b|^2 |x_b|^2 (plus |dz_b|^2 for the bias) and the clipped sum is
// (f * dz)^T x: the (B, out, in) per-example gradients are never formed.
struct GhostLinear {
    torch::Tensor x, z;                    // (B, in) detached; (B, out) in the graph
    const c10::TensorImpl* weight;         // the layer's parameters
    const c10::TensorImpl* bias;           // null without a bias
};
using GhostTaps = std::vector<GhostLinear>;

// torch::linear(x, W, b) with x (B, in), recorded in *taps.
inline torch::Tensor ghost_linear(const torch::Tensor& x, const torch::Tensor& W, const torch::Tensor& b,
                                  GhostTaps* taps) {
    auto z = torch::linear(x, W, b);
    taps->push_back({x.detach(), z, W.unsafeGetTensorImpl(), b.defined() ? b.unsafeGetTensorImpl() : nullptr});
    return z;
}

// Stride-1 convolution of x (B, C, H, W) with zero padding on each side: W
// (O, C, K, K) shared (nn::Conv2d's op) or (B, O, C, K, K) per example (im2col
// and a batched matmul); b (O), (B, O) or undefined. -> (B, O, H', W').
inline torch::Tensor pe_conv2d(const torch::Tensor& x, const torch::Tensor& W, const torch::Tensor& b,
                               int64_t padding) {
    if (W.dim() == 4) return torch::conv2d(x, W, b, 1, padding);
    const int64_t B = x.size(0), O = W.size(1), K = W.size(3);
    const int64_t Ho = x.size(2) + 2 * padding - K + 1, Wo = x.size(3) + 2 * padding - K + 1;
    auto cols = torch::im2col(x, {K, K}, {1, 1}, {padding, padding}, {1, 1});  // (B, C*K*K, Ho*Wo)
    auto y = torch::bmm(W.reshape({B, O, -1}), cols);                           // (B, O, Ho*Wo)
    if (b.defined()) y = y + b.unsqueeze(-1);
    return y.view({B, O, Ho, Wo});
}

}  // namespace mmia
