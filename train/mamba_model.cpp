// mamba_model.cpp: see mamba_model.h. Initialisation follows the reference
// implementation (state-spaces/mamba, mamba_simple.py).
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include "train/mamba_model.h"

#include <cmath>

#include "train/selective_scan.h"

namespace mmia {

namespace nn = torch::nn;

NormImpl::NormImpl(int64_t dim, double eps_, bool layernorm_) : eps(eps_), layernorm(layernorm_) {
    weight = register_parameter("weight", torch::ones({dim}));
    if (layernorm) bias = register_parameter("bias", torch::zeros({dim}));
}

torch::Tensor NormImpl::forward(const torch::Tensor& x, const PerExampleParams* pe) {
    const torch::Tensor& w = pe_param(weight, pe);
    if (layernorm) {
        if (w.dim() == 1) return torch::layer_norm(x, {weight.size(0)}, weight, bias, eps);
        return torch::layer_norm(x, {weight.size(0)}, {}, {}, eps) * pe_rows(w, x) + pe_rows(pe_param(bias, pe), x);
    }
    return x * torch::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + eps) * pe_rows(w, x);
}

StemLayerImpl::StemLayerImpl(int64_t in_channels, int64_t out_channels, const MambaConfig& c) {
    conv = register_module(
        "conv", nn::Conv2d(nn::Conv2dOptions(in_channels, out_channels, 3).padding(1).bias(false)));
    if (c.stem_norm == "group")
        gn = register_module("gn", nn::GroupNorm(nn::GroupNormOptions(c.stem_groups, out_channels).eps(c.norm_eps)));
    else
        bn = register_module("bn", nn::BatchNorm2d(out_channels));
}

torch::Tensor StemLayerImpl::forward(const torch::Tensor& x, const PerExampleParams* pe) {
    if (bn) {
        TORCH_CHECK(!pe, "per-example parameters: a batch-norm stem takes none");
        return torch::gelu(bn(conv(x)));  // exact (erf) GELU, as the engine computes it
    }
    const auto& w = pe_param(conv->weight, pe);
    const auto& g = pe_param(gn->weight, pe);
    const auto& b = pe_param(gn->bias, pe);
    auto y = pe_conv2d(x, w, {}, 1);  // (B, S, H, W)
    if (g.dim() == 1) return torch::gelu(gn(y));
    // per-example gamma, beta (B, S): the normalisation itself has no parameters
    y = torch::group_norm(y, gn->options.num_groups(), {}, {}, gn->options.eps());
    return torch::gelu(y * g.unsqueeze(-1).unsqueeze(-1) + b.unsqueeze(-1).unsqueeze(-1));
}

// Dropout on the training path only; p = 0 adds no op (and draws nothing from
// the generator), so models without dropout train as before.
static torch::Tensor dropout_if(const torch::Tensor& x, double p, bool training) {
    return p > 0 && training ? torch::dropout(x, p, /*train=*/true) : x;
}

MambaBlockImpl::MambaBlockImpl(const MambaConfig& c) : cfg(c) {
    const int64_t D_ = c.d_model, E = c.d_inner(), N = c.d_state, K = c.d_conv, R = c.dt_rank;
    norm = register_module("norm", Norm(D_, c.norm_eps, c.norm == "layernorm"));
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

torch::Tensor MambaBlockImpl::mixer(const torch::Tensor& h, const PerExampleParams* pe) {
    const int64_t L = h.size(1);
    const int64_t E = cfg.d_inner(), N = cfg.d_state, K = cfg.d_conv, R = cfg.dt_rank;
    auto xz = pe_linear(h, pe_param(in_proj->weight, pe), {});  // (B, L, 2E)
    auto xs = xz.narrow(-1, 0, E);                               // (B, L, E)
    auto z = xz.narrow(-1, E, E).contiguous();  // (B, L, E)

    // Depthwise conv over time as K shifted multiply-adds on the (B, L, E)
    // layout: LibTorch's grouped Conv1d backward is ~30x slower on the CPU
    // for these sizes. The conv1d module only holds the parameters.
    // Causal: pad K-1 on the left, so output t sees inputs <= t.
    // Same (seed 000): pad (K-1)/2 on the left, the rest on the right.
    const int64_t left = cfg.conv == "causal" ? K - 1 : (K - 1) / 2;
    const int64_t right = K - 1 - left;
    auto xpad = torch::constant_pad_nd(xs, {0, 0, left, right});  // (B, L+K-1, E)
    const torch::Tensor& cw = pe_param(conv1d->weight, pe);  // (E, 1, K) or per example (B, E, 1, K)
    auto w = cw.dim() == 3 ? cw.view({E, K}) : cw.reshape({cw.size(0), E, K});  // (E, K) or (B, E, K)
    auto c = pe_rows(pe_param(conv1d->bias, pe), xs) + xpad.narrow(1, 0, L) * pe_rows(w.select(-1, 0), xs);
    for (int64_t k = 1; k < K; k++) c = c + xpad.narrow(1, k, L) * pe_rows(w.select(-1, k), xs);
    auto u = torch::silu(c);  // (B, L, E)

    auto xdbl = pe_linear(u, pe_param(x_proj->weight, pe), {});        // (B, L, R+2N)
    auto dt_in = xdbl.narrow(-1, 0, R);                                 // (B, L, R)
    auto Bm = xdbl.narrow(-1, R, N).contiguous();                       // (B, L, N)
    auto Cm = xdbl.narrow(-1, R + N, N).contiguous();                   // (B, L, N)
    // (B, L, E), bias in scan
    auto delta = torch::matmul(dt_in, pe_param(dt_proj->weight, pe).transpose(-1, -2)).contiguous();
    auto A = -torch::exp(pe_param(A_log, pe));  // (E, N) or per example (B, E, N)
    auto scan = loop_scan ? selective_scan_ref : selective_scan;
    auto y = scan(u, delta, A, Bm, Cm, pe_param(D, pe), z, pe_param(dt_proj->bias, pe), /*delta_softplus=*/true);
    return pe_linear(y, pe_param(out_proj->weight, pe), {});  // (B, L, D)
}

torch::Tensor MambaBlockImpl::forward(const torch::Tensor& x, const PerExampleParams* pe) {
    if (cfg.norm_placement == "post")
        return norm->forward(x + dropout_if(mixer(x, pe), cfg.dropout, is_training()), pe);
    return x + dropout_if(mixer(norm->forward(x, pe), pe), cfg.dropout, is_training());
}

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
    if (!c.stem.empty()) {  // registered only when used: checkpoints without one load unchanged
        stem = register_module("stem", nn::ModuleList());
        int64_t stem_in = channels;
        for (int width : c.stem) {
            stem->push_back(StemLayer(stem_in, width, c));
            stem_in = width;
        }
    }
    const int64_t P = int64_t(c.patch_channels(channels)) * c.patch_h * c.patch_w;
    embed = register_module("embed", nn::Linear(P, c.d_model));
    layers = register_module("layers", nn::ModuleList());
    for (int i = 0; i < c.n_layers; i++) layers->push_back(MambaBlock(c));
    norm_f = register_module("norm_f", Norm(c.d_model, c.norm_eps, c.norm == "layernorm"));
    head = register_module("head", nn::Linear(c.d_model, n_classes));
}

torch::Tensor MambaClassifierImpl::patchify(const torch::Tensor& features) const {
    const int64_t Bsz = features.size(0), C = features.size(1), ph = cfg.patch_h, pw = cfg.patch_w;
    const int64_t Hp = height / ph, Wp = width / pw;
    // (B, C, Hp, ph, Wp, pw) -> (B, Hp, Wp, C, ph, pw) -> (B, L, P); reshape,
    // not view: a stem's output is channels-last
    return features.reshape({Bsz, C, Hp, ph, Wp, pw})
        .permute({0, 2, 4, 1, 3, 5})
        .reshape({Bsz, Hp * Wp, C * ph * pw});
}

torch::Tensor MambaClassifierImpl::forward(const torch::Tensor& images, const PerExampleParams* pe) {
    TORCH_CHECK(images.dim() == 4 && images.size(1) == channels && images.size(2) == height &&
                    images.size(3) == width,
                "expected images of shape (B, ", channels, ", ", height, ", ", width, ")");
    TORCH_CHECK(!(pe && stem && cfg.stem_norm != "group"),
                "per-example parameters: a model with a batch-norm stem takes none");
    auto x = (images - in_mean.view({1, -1, 1, 1})) / in_std.view({1, -1, 1, 1});
    if (stem) {
        // Channels-last sends LibTorch's conv2d to oneDNN (~3x faster here,
        // as for the CNN); values and their logical order are the same.
        x = x.contiguous(torch::MemoryFormat::ChannelsLast);
        for (const auto& layer : *stem) x = layer->as<StemLayer>()->forward(x, pe);  // (B, S, H, W)
    }
    auto h = pe_linear(patchify(x), pe_param(embed->weight, pe), pe_param(embed->bias, pe));  // (B, L, D)
    for (const auto& layer : *layers) h = layer->as<MambaBlock>()->forward(h, pe);
    auto pool = [&](const torch::Tensor& t) {  // (B, L, D) -> (B, D)
        return cfg.pool == "mean" ? t.mean(1) : t.select(1, t.size(1) - 1);
    };
    // Pre-norm: the stream is un-normalised, so norm every token, then pool.
    // Post-norm (seed 000's head): pool the normed tokens, then norm the result.
    auto pooled = cfg.norm_placement == "post" ? norm_f->forward(pool(h), pe) : pool(norm_f->forward(h, pe));
    // (B, n_classes)
    return pe_linear(dropout_if(pooled, cfg.head_dropout, is_training()), pe_param(head->weight, pe),
                     pe_param(head->bias, pe));
}

void MambaClassifierImpl::set_loop_scan(bool on) {
    for (const auto& layer : *layers) layer->as<MambaBlock>()->loop_scan = on;
}

}  // namespace mmia
