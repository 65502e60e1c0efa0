// defence.h: the defences of bin/attack --defence SPEC (docs/PRIVACY.md,
// "Defences in bin/attack"), parsed, described and applied in one place.
//
// The SPEC grammar, the Defences record and its parser: attack/defence_spec.h.
//
// Training defences go into every model's TrainJob (target, shadows and
// reference models alike: the attacker knows the defence and trains its
// shadows the same way); output defences transform every released output row
// before any attack reads it. With target_only (pg1647's mitigation, a
// contrast only) both apply to the target models alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attack/defence_spec.h"

namespace mmia {

struct TrainJob;

// Whether the model of this role is defended: every model, or with
// target_only the targets ("target<t>") alone.
bool defended(const Defences& d, const std::string& role);

// The privacy each DP model of a run is planned to get (no DP: null):
// {"noise_multiplier", "sample_rate", "steps", "delta", "epsilon"} for
// `epochs` epochs of batch_size over ds examples (resolve_dp, the
// accountant's improved conversion; early stopping can only take fewer
// steps, so a smaller epsilon: each checkpoint's .privacy.json has its own).
nlohmann::json defence_privacy(const Defences& d, int batch_size, int epochs, int64_t ds);

// Checks that need the run: target_only with the shokri protocol and some
// defence; top-k below the number of classes. Throws "--defence...: <why>".
void check_defences(const Defences& d, const std::string& protocol, int n_classes);

// metrics.json's config["defence"]: {"spec", "training": {...}, "output":
// {...}, "applied_to": "all models" | "targets only (pg1647's mitigation, a
// contrast)"}.
nlohmann::json defence_json(const Defences& d);

// Puts the training defences into a job whose spec, train and input are set
// (n_train: its training examples, for DP's q and accounting; dataset:
// "mnist" | "fashion" | "cifar10", for the augmentation). Throws when the
// preset cannot take DP-SGD (check_dp_model) or the accountant finds no sigma.
void apply_training_defences(const Defences& d, const std::string& dataset, int64_t n_train, TrainJob& job);

// The augmentation 'augment' means for a dataset: "shift2" for the digit
// sets, "shift2-flip" for cifar10 (train/trainer.h, augment_images).
const char* defence_augmentation(const std::string& dataset);

// The floor a released zero probability is read as (see
// apply_output_defences): 1e-30.
constexpr double kReleasedFloor = 1e-30;

// Output defences on n rows of k logits (the engine's), in place. The
// released vector r (probabilities) is, from p = softmax(logits):
//   top-k       r_i = p_i / sum_{j in top k} p_j for the k largest p_i
//               (ties: the lower class index first), 0 elsewhere
//               (renormalised: what a top-k API returns, summing to 1);
//   round=D     r_i = round(p_i * 10^D) / 10^D (half away from zero; not
//               renormalised, as an API printing D decimals would);
//   label-only  r = one-hot of argmax p (the first maximum).
// The rows are then written back as logits log(max(r_i, 1e-30)), so every
// attack (which reads logits) sees softmax = r / sum(r) up to the floor
// (k * 1e-30): a zero probability reads as 1e-30, and after rounding the
// attacks see the rounded vector renormalised. No-op without an output
// defence. Throws std::invalid_argument for a non-finite logit.
void apply_output_defences(const Defences& d, std::vector<float>& logits, int k);

}  // namespace mmia
