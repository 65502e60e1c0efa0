// parity_helpers.h: what the Mamba parity suites (test_parity,
// test_mamba_cifar_parity) share: the engine's logits for a batch of LibTorch
// images, and a quiet training job for a preset. Header-only.
#pragma once
// LibTorch before doctest: glog (pulled in by c10) defines CHECK too.
#include <torch/torch.h>

#include <doctest/doctest.h>

#include <algorithm>
#include <string>

#include "common/config.h"
#include "engine/mamba.h"
#include "export/model_export.h"
#include "train/trainer.h"

// The engine's logits (n, n_classes) for images (n, C, H, W) in [0,1], from
// the packed model file at bin_path.
// The engine's logit error against LibTorch, relative to the batch's
// largest logit (absolute when every logit is below 1):
// max |got - ref| / max(1, max |ref|). The engines achieve 2e-7..3e-6, so
// the parity tests allow kParityTol = 1e-5: the old absolute 1e-4 let a
// batch-norm fold without eps or a wrong norm eps pass (issue 17).
constexpr double kParityTol = 1e-5;
inline double parity_error(const torch::Tensor& ref, const torch::Tensor& got) {
    const double scale = std::max(1.0, ref.abs().max().item<double>());
    return (ref - got).abs().max().item<double>() / scale;
}

inline torch::Tensor mamba_file_logits(const std::string& bin_path, const torch::Tensor& images) {
    MambaModel m;
    char err[512];
    REQUIRE_MESSAGE(mamba_open(&m, bin_path.c_str(), err, sizeof err) == 0, err);
    auto x = images.contiguous();
    const int64_t n = x.size(0);
    REQUIRE(mamba_image_floats(&m) == x.numel() / n);
    auto out = torch::empty({n, mamba_n_classes(&m)});
    REQUIRE(mamba_check_images(&m, x.data_ptr<float>(), n, err, sizeof err) == 0);
    REQUIRE(mamba_forward_logits(&m, x.data_ptr<float>(), n, out.data_ptr<float>()) == 0);
    mamba_close(&m);
    return out;
}

// Packs `model` to bin_path and returns the engine's logits for images.
inline torch::Tensor mamba_engine_logits(mmia::MambaClassifier& model, const torch::Tensor& images,
                                         const std::string& bin_path) {
    mmia::PackedModelData packed = mmia::pack_mamba(model);
    write_packed_model(bin_path, packed.header, packed.tensors);
    return mamba_file_logits(bin_path, images);
}

// A job training `preset` (model and training settings from config.json) for
// `epochs` epochs on `dataset` images of shape `input`, quiet, writing `checkpoint`.
inline mmia::TrainJob quiet_train_job(const std::string& preset, const std::string& dataset,
                                      const mmia::InputSpec& input, const std::string& checkpoint, int epochs) {
    mmia::json cfg = mmia::load_config_file("config.json");
    mmia::TrainJob job;
    job.spec = mmia::resolve_preset(cfg, "mamba", preset);
    job.train = mmia::resolve_training(cfg, preset);
    job.train.epochs = epochs;
    job.input = input;
    job.dataset = dataset;
    job.checkpoint = checkpoint;
    job.verbose = false;
    return job;
}
