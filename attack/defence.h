// defence.h: the defences of bin/attack --defence SPEC (docs/PRIVACY.md,
// "Defences in bin/attack"), parsed, described and applied in one place.
//
// Training defences go into every model's TrainJob (target, shadows and
// reference models alike: the attacker knows the defence and trains its
// shadows the same way); output defences transform every released output row
// before any attack reads it. With target_only (pg1647's mitigation, a
// contrast only) both apply to the target models alone.
//
// Grammar (a comma list; --defence may be repeated, the lists are joined):
//   SPEC   := ITEM (',' ITEM)*
//   ITEM   := 'none'
//           | 'dp:' DPARAM (',' DPARAM)*      DP-SGD (bin/train --dp-*)
//           | 'l2=' WD                        AdamW weight decay, [0, 10]
//           | 'label-smoothing=' EPS          [0, 0.99]
//           | 'early-stopping=' PATIENCE      epochs, [1, 1000]
//           | 'dropout=' P                    [0, 0.99]
//           | 'augment'                       digits: shifts <= 2 px; CIFAR-10: and mirror
//           | 'top-k=' K                      release the K largest probabilities, [1, classes - 1]
//           | 'round=' D                      release probabilities rounded to D decimals, [1, 15]
//           | 'label-only'                    release the one-hot of the argmax
//   DPARAM := 'sigma=' S | 'eps=' E            exactly one of these two
//           | 'C=' C | 'delta=' D | 'q=' Q     defaults 1, 1e-5, batch / ds
// A DPARAM after 'dp:...' belongs to it, so "dp:sigma=1.1,C=1,l2=5e-4" is DP
// with C = 1, then L2. Each item at most once; 'none' alone.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mmia {

struct TrainJob;

struct Defences {
    // Training defences.
    bool dp = false;
    double dp_sigma = 0;    // the noise multiplier, or (dp_epsilon > 0) found by the accountant
    double dp_epsilon = 0;  // > 0: the target epsilon
    double dp_clip = 1.0;   // C
    double dp_delta = 1e-5;
    double dp_q = 0;        // 0: batch size / ds
    double l2 = -1;         // >= 0: the weight decay (else the preset's)
    double label_smoothing = 0;
    int early_stopping = 0;  // patience in epochs; 0 = off
    double dropout = 0;
    bool augment = false;
    // Output defences, applied in this order.
    int top_k = 0;           // 0 = off
    int round_decimals = 0;  // 0 = off
    bool label_only = false;
    // pg1647's mitigation: only the targets defended (shokri protocol only).
    bool target_only = false;

    bool training() const;
    bool output() const;
    bool any() const { return training() || output(); }
};

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

// Parses the --defence values (each a SPEC). Throws std::runtime_error with
// "--defence: <why>" naming the offending item.
Defences parse_defences(const std::vector<std::string>& specs);

// The canonical SPEC ("none" when there is no defence), e.g.
// "dp:eps=8,C=1,delta=1e-05,l2=0.0005,top-k=3"; what the report prints.
std::string defence_spec(const Defences& d);

// The same for a directory name: only [A-Za-z0-9.+-] ("dp-eps-8-C-1-delta-1e-05+l2-0.0005+top-k-3"),
// with "+target-only" appended for the contrast.
std::string defence_slug(const Defences& d);

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
