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

// "parameter '<name>' element <i> is NaN" (or +inf, -inf; buffers too) for
// the first non-finite value in model's parameters and buffers, else "".
std::string first_nonfinite_weight(torch::nn::Module& model);

// Throws std::runtime_error("<path>: refusing to write a checkpoint whose
// parameter ... is NaN") if any weight is not finite; I/O errors likewise.
void save_checkpoint(const std::string& path, torch::nn::Module& model,
                     torch::optim::Optimizer* optimizer, const json& meta);

// Reads only the meta record; throws std::runtime_error("<path>: <why>") for a
// missing, truncated or foreign file.
json read_checkpoint_meta(const std::string& path);

// Builds the model the meta describes and loads its weights (and the
// optimizer state, when `optimizer` is given).
MambaClassifier load_mamba_checkpoint(const std::string& path, json* meta_out = nullptr);
// Throws "<path>: <why>" for an unreadable file, a mismatch, or a
// non-finite weight ("<path>: parameter 'head.bias' element 3 is NaN (a
// checkpoint's weights must be finite)").
void load_checkpoint_state(const std::string& path, torch::nn::Module& model,
                           torch::optim::Optimizer* optimizer);

}  // namespace mmia
