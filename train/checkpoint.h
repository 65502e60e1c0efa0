// checkpoint.h: training checkpoints. One file holds the model weights, the
// optimizer state and a JSON "meta" record (everything needed to rebuild the
// model and to resume: model config, input shape and normalisation, training
// config, epochs done, per-epoch history, final accuracies).
//
// Files are serialised in memory, written to "<path>.tmp.<pid>", flushed to
// disk and renamed over <path> (engine/io.h), so a crash or a full disk leaves
// either the old checkpoint or the new one, never half of one.
#pragma once
#include <torch/torch.h>

#include <string>

#include "common/config.h"
#include "train/checkpoint_meta.h"
#include "train/mamba_model.h"

namespace mmia {

void save_checkpoint(const std::string& path, torch::nn::Module& model,
                     torch::optim::Optimizer* optimizer, const json& meta);

// Reads only the meta record; throws std::runtime_error("<path>: <why>") for a
// missing, truncated or foreign file.
json read_checkpoint_meta(const std::string& path);

// Builds the model the meta describes and loads its weights (and the
// optimizer state, when `optimizer` is given).
MambaClassifier load_mamba_checkpoint(const std::string& path, json* meta_out = nullptr);
void load_checkpoint_state(const std::string& path, torch::nn::Module& model,
                           torch::optim::Optimizer* optimizer);

}  // namespace mmia
