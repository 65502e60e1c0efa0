// mamba_model.cpp: see mamba_model.h. Initialisation follows the reference
// implementation (state-spaces/mamba, mamba_simple.py).
#include "train/mamba_model.h"

#include <cmath>

#include "train/selective_scan.h"

namespace mmia {

namespace nn = torch::nn;

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_) : eps(eps_) {
    weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
    return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * weight;
}

MambaBlockImpl::MambaBlockImpl(const MambaConfig& c) : cfg(c) {
    const int64_t D_ = c.d_model, E = c.d_inner(), N = c.d_state, K = c.d_conv, R = c.dt_rank;
    norm = register_module("norm", RMSNorm(D_, c.norm_eps));
    in_proj = register_module("in_proj", nn::Linear(nn::LinearOptions(D_, 2 * E).bias(false)));
    conv1d = register_module(
        "conv1d", nn::Conv1d(nn::Conv1dOptions(E, E, K).groups(E).bias(true)));
    x_proj = register_module("x_proj", nn::Linear(nn::LinearOptions(E, R + 2 * N).bias(false)));
    dt_proj = register_module("dt_proj", nn::Linear(nn::LinearOptions(R, E).bias(true)));
    out_proj = register_module("out_proj", nn::Linear(nn::LinearOptions(E, D_).bias(false)));

    torch::NoGradGuard no_grad;
    // dt_proj: small uniform weights, and a bias whose softplus is a
    // log-uniform step size in [dt_min, dt_max], so each channel starts with
    // its own time scale.
    const double dt_init_std = 1.0 / std::sqrt(static_cast<double>(R));
    dt_proj->weight.uniform_(-dt_init_std, dt_init_std);
    auto dt = torch::exp(torch::rand({E}) * (std::log(c.dt_max) - std::log(c.dt_min)) +
                         std::log(c.dt_min))
                  .clamp_min(c.dt_init_floor);
    dt_proj->bias.copy_(dt + torch::log(-torch::expm1(-dt)));  // inverse of softplus
    // S4D-real initialisation: A[e, n] = -(n + 1).
    A_log = register_parameter(
        "A_log", torch::log(torch::arange(1, N + 1, torch::kFloat32)).repeat({E, 1}).contiguous());
    D = register_parameter("D", torch::ones({E}));
}

torch::Tensor MambaBlockImpl::mixer(const torch::Tensor& h) {
    const int64_t L = h.size(1);
    const int64_t E = cfg.d_inner(), N = cfg.d_state, K = cfg.d_conv, R = cfg.dt_rank;
    auto xz = in_proj(h);                       // (B, L, 2E)
    auto xs = xz.narrow(-1, 0, E);              // (B, L, E)
    auto z = xz.narrow(-1, E, E).contiguous();  // (B, L, E)

    // Depthwise conv over time as K shifted multiply-adds on the (B, L, E)
    // layout: LibTorch's grouped Conv1d backward is ~30x slower on the CPU
    // for these sizes. The conv1d module only holds the parameters.
    // Causal: pad K-1 on the left, so output t sees inputs <= t.
    // Same (seed 000): pad (K-1)/2 on the left, the rest on the right.
    const int64_t left = cfg.conv == "causal" ? K - 1 : (K - 1) / 2;
    const int64_t right = K - 1 - left;
    auto xpad = torch::constant_pad_nd(xs, {0, 0, left, right});  // (B, L+K-1, E)
    auto w = conv1d->weight.view({E, K});                          // (E, K)
    auto c = conv1d->bias + xpad.narrow(1, 0, L) * w.select(1, 0);
    for (int64_t k = 1; k < K; k++) c = c + xpad.narrow(1, k, L) * w.select(1, k);
    auto u = torch::silu(c);  // (B, L, E)

    auto xdbl = x_proj(u);                                              // (B, L, R+2N)
    auto dt_in = xdbl.narrow(-1, 0, R);                                 // (B, L, R)
    auto Bm = xdbl.narrow(-1, R, N).contiguous();                       // (B, L, N)
    auto Cm = xdbl.narrow(-1, R + N, N).contiguous();                   // (B, L, N)
    auto delta = torch::matmul(dt_in, dt_proj->weight.t()).contiguous();  // (B, L, E), bias in scan
    auto A = -torch::exp(A_log);                                        // (E, N)
    auto scan = loop_scan ? selective_scan_ref : selective_scan;
    auto y = scan(u, delta, A, Bm, Cm, D, z, dt_proj->bias, /*delta_softplus=*/true);
    return out_proj(y);  // (B, L, D)
}

torch::Tensor MambaBlockImpl::forward(const torch::Tensor& x) { return x + mixer(norm(x)); }

MambaClassifierImpl::MambaClassifierImpl(const MambaConfig& c, int channels_, int height_,
                                         int width_, int n_classes_,
                                         const std::vector<float>& mean,
                                         const std::vector<float>& std)
    : cfg(c), channels(channels_), height(height_), width(width_), n_classes(n_classes_) {
    validate_mamba(c, channels, height, width);
    TORCH_CHECK(static_cast<int>(mean.size()) == channels && static_cast<int>(std.size()) == channels,
                "normalisation needs one mean and std per channel");
    in_mean = register_buffer("in_mean", torch::tensor(mean));
    in_std = register_buffer("in_std", torch::tensor(std));
    const int64_t P = int64_t(channels) * c.patch_h * c.patch_w;
    embed = register_module("embed", nn::Linear(P, c.d_model));
    layers = register_module("layers", nn::ModuleList());
    for (int i = 0; i < c.n_layers; i++) layers->push_back(MambaBlock(c));
    norm_f = register_module("norm_f", RMSNorm(c.d_model, c.norm_eps));
    head = register_module("head", nn::Linear(c.d_model, n_classes));
}

torch::Tensor MambaClassifierImpl::patchify(const torch::Tensor& images) const {
    const int64_t Bsz = images.size(0), ph = cfg.patch_h, pw = cfg.patch_w;
    const int64_t Hp = height / ph, Wp = width / pw;
    auto x = (images - in_mean.view({1, -1, 1, 1})) / in_std.view({1, -1, 1, 1});
    // (B, C, Hp, ph, Wp, pw) -> (B, Hp, Wp, C, ph, pw) -> (B, L, P)
    return x.view({Bsz, channels, Hp, ph, Wp, pw})
        .permute({0, 2, 4, 1, 3, 5})
        .reshape({Bsz, Hp * Wp, channels * ph * pw});
}

torch::Tensor MambaClassifierImpl::forward(const torch::Tensor& images) {
    TORCH_CHECK(images.dim() == 4 && images.size(1) == channels && images.size(2) == height &&
                    images.size(3) == width,
                "expected images of shape (B, ", channels, ", ", height, ", ", width, ")");
    auto x = embed(patchify(images));  // (B, L, D)
    for (const auto& layer : *layers) x = layer->as<MambaBlock>()->forward(x);
    x = norm_f(x);
    auto pooled = cfg.pool == "mean" ? x.mean(1) : x.select(1, x.size(1) - 1);  // (B, D)
    return head(pooled);                                                      // (B, n_classes)
}

void MambaClassifierImpl::set_loop_scan(bool on) {
    for (const auto& layer : *layers) layer->as<MambaBlock>()->loop_scan = on;
}

}  // namespace mmia
