// cnn_model.h: the CNN image classifier in LibTorch, built from the layer
// list of a config.json preset (common/config.h: CnnConfig).
//
// The engine (cnn.cpp) computes the same forward pass op for op; export/
// maps these modules to the packed format (docs/FORMAT.md, kind 2), folding
// each batch norm into the conv before it. Shape legend: B batch, C/H/W the
// activation's channels/height/width at that layer.
#pragma once
#include <torch/torch.h>

#include <vector>

#include "common/config.h"
#include "train/checkpoint.h"
#include "train/per_example.h"

namespace mmia {

struct CnnClassifierImpl : torch::nn::Module {
    CnnClassifierImpl(const CnnConfig& c, int channels, int height, int width, int n_classes,
                      const std::vector<float>& mean, const std::vector<float>& std);
    // images: (B, C, H, W) pixels in [0,1] -> logits (B, n_classes). With
    // pe (PerExampleParams, train/per_example.h), example b runs with its
    // own copy of every parameter pe maps; a model with batch norm takes
    // none (it mixes the examples). With ghost too, the dense layers run
    // shared and are recorded there instead (GhostLinear).
    torch::Tensor forward(const torch::Tensor& images, const PerExampleParams* pe = nullptr,
                          GhostTaps* ghost = nullptr);

    CnnConfig cfg;
    int channels, height, width, n_classes;
    torch::Tensor in_mean, in_std;  // buffers (C): input normalisation
    // One slot per entry of cfg.layers; null where the layer is of another type.
    std::vector<torch::nn::Conv2d> conv;      // "conv<i>": weight (O, C, K, K), bias (O) unless bn
    std::vector<torch::nn::BatchNorm2d> bn;   // "bn<i>": weight, bias, running_mean, running_var (O)
    std::vector<torch::nn::Linear> dense;     // "dense<i>": weight (O, I), bias (O)
    // Training only (bin/train --dropout): dropout with this probability on
    // the input of every dense layer; not a weight, not exported.
    double dropout = 0;
};
TORCH_MODULE(CnnClassifier);

// Builds the CNN a checkpoint's meta describes and loads its weights; throws
// std::runtime_error("<path>: <why>") for a missing, corrupt or non-CNN file.
CnnClassifier load_cnn_checkpoint(const std::string& path, json* meta_out = nullptr);

}  // namespace mmia
