// cnn_model.cpp: see cnn_model.h. LibTorch's default initialisation
// (Kaiming-uniform weights, as in PyTorch).
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include "train/cnn_model.h"

namespace mmia {

namespace nn = torch::nn;

static torch::Tensor activate(const torch::Tensor& x, const std::string& act) {
    if (act == "relu") return torch::relu(x);
    if (act == "tanh") return torch::tanh(x);
    if (act == "gelu") return torch::gelu(x);  // exact (erf) form, as the engine computes it
    return x;
}

CnnClassifierImpl::CnnClassifierImpl(const CnnConfig& c, int channels_, int height_, int width_,
                                     int n_classes_, const std::vector<float>& mean,
                                     const std::vector<float>& std)
    : cfg(c), channels(channels_), height(height_), width(width_), n_classes(n_classes_) {
    validate_cnn(c, channels, height, width, n_classes);
    TORCH_CHECK(int(mean.size()) == channels && int(std.size()) == channels,
                "normalisation needs one mean and std per channel");
    in_mean = register_buffer("in_mean", torch::tensor(mean));
    in_std = register_buffer("in_std", torch::tensor(std));
    const size_t n = c.layers.size();
    conv.assign(n, nullptr);
    bn.assign(n, nullptr);
    dense.assign(n, nullptr);
    int64_t C = channels, H = height, W = width;  // the shape entering layer i
    for (size_t i = 0; i < n; i++) {
        const CnnLayer& l = c.layers[i];
        const std::string id = std::to_string(i);
        if (l.type == "conv") {
            conv[i] = register_module("conv" + id, nn::Conv2d(nn::Conv2dOptions(C, l.out, l.kernel)
                                                                   .padding(l.padding)
                                                                   .bias(!l.batch_norm)));
            if (l.batch_norm)
                bn[i] = register_module("bn" + id, nn::BatchNorm2d(nn::BatchNorm2dOptions(l.out).eps(c.bn_eps)));
            C = l.out;
            H += 2 * l.padding - l.kernel + 1;
            W += 2 * l.padding - l.kernel + 1;
        } else if (l.type == "maxpool") {
            H /= l.kernel;
            W /= l.kernel;
        } else if (l.type == "global_avg_pool") {
            H = W = 1;
        } else if (l.type == "flatten") {
            C *= H * W;
            H = W = 1;
        } else if (l.type == "dense") {
            const int64_t out = l.out == 0 ? n_classes : l.out;
            dense[i] = register_module("dense" + id, nn::Linear(C, out));
            C = out;
        }
    }
}

torch::Tensor CnnClassifierImpl::forward(const torch::Tensor& images, const PerExampleParams* pe, GhostTaps* ghost) {
    TORCH_CHECK(images.dim() == 4 && images.size(1) == channels && images.size(2) == height &&
                    images.size(3) == width,
                "expected images of shape (B, ", channels, ", ", height, ", ", width, ")");
    auto x = (images - in_mean.view({1, -1, 1, 1})) / in_std.view({1, -1, 1, 1});
    // Channels-last activations send LibTorch's conv2d (forward and
    // backward) to oneDNN; in the default layout it takes a path ~3x
    // slower on this CPU build. Values and their logical order are the same.
    x = x.contiguous(torch::MemoryFormat::ChannelsLast);
    for (size_t i = 0; i < cfg.layers.size(); i++) {
        const CnnLayer& l = cfg.layers[i];
        if (l.type == "conv") {
            TORCH_CHECK(!(pe && l.batch_norm), "per-example parameters: a model with batch norm takes none");
            x = pe ? pe_conv2d(x, pe_param(conv[i]->weight, pe), pe_param(conv[i]->bias, pe), l.padding)
                   : conv[i](x);            // (B, O, H', W')
            if (l.batch_norm) x = bn[i](x);
            x = activate(x, l.activation);
        } else if (l.type == "maxpool") {
            x = torch::max_pool2d(x, l.kernel, l.kernel);  // floor: leftover rows/cols dropped
        } else if (l.type == "global_avg_pool") {
            x = x.mean({2, 3});             // (B, C)
        } else if (l.type == "flatten") {
            x = x.flatten(1);               // (B, C*H*W), channel-major
        } else if (l.type == "dense") {
            if (dropout > 0 && is_training()) x = torch::dropout(x, dropout, /*train=*/true);
            if (pe && ghost) x = ghost_linear(x, dense[i]->weight, dense[i]->bias, ghost);
            else if (pe) x = pe_linear(x, pe_param(dense[i]->weight, pe), pe_param(dense[i]->bias, pe));
            else x = dense[i](x);
            x = activate(x, l.activation);
        }
    }
    return x;  // (B, n_classes)
}

CnnClassifier load_cnn_checkpoint(const std::string& path, json* meta_out) {
    json meta = read_checkpoint_meta(path);
    CnnClassifier model{nullptr};
    try {
        if (meta.value("model", "") != "cnn")
            throw std::runtime_error("model is \"" + meta.value("model", "?") + "\", not cnn");
        CnnConfig cfg = cnn_from_json(meta.at("cnn"));
        InputSpec in = input_from_json(meta.at("input"));
        model = CnnClassifier(cfg, in.channels, in.height, in.width, in.n_classes, in.mean, in.std);
    } catch (const std::exception& e) {
        throw std::runtime_error(path + ": bad checkpoint meta: " + e.what());
    }
    load_checkpoint_state(path, *model, nullptr);
    if (meta_out) *meta_out = meta;
    return model;
}

}  // namespace mmia
