// run.h: a whole membership-inference experiment, as bin/attack runs it:
// data splits -> target and shadow models trained (LibTorch, cached in the
// run directory) -> exported and run by the mmap'd engines (mamba.cpp,
// cnn.cpp) for their logits -> every attack scored on the same targets ->
// metrics.json, per-example scores, ROC data, plots and report.md.
//
// Protocols
//   shokri  (pg1647's split) the dataset's train and test parts merged and
//           shuffled (seed); target t trains on pool[2t*ds, 2t*ds + ds), the
//           next ds examples are its non-members; shadow s draws ds members
//           + ds non-members at random from the pool after the targets.
//           Every model kind sees the same splits, so Mamba and CNN are
//           compared on identical members and non-members.
//   lira    (Carlini et al. 2022) M = shadows + 1 models, each trained on a
//           random half of a pool of 2*ds examples; every model serves as
//           the target in turn, the other M - 1 as its references. RMIA
//           compares each example with population points Z taken from
//           outside the pool (splits.json "rmia_population"), every
//           model's logits on them in outputs/<kind>/population/.
//
// Membership convention everywhere: is_member = 1 for a training example
// (the positive class), 0 for a non-member; scores: higher = member.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attack/defence.h"

namespace mmia {

struct AttackRunConfig {
    std::string protocol = "shokri";                   // "shokri" | "lira"
    std::vector<std::string> models = {"mamba", "cnn"};  // model kinds, compared side by side
    std::string dataset = "mnist";                     // "mnist" | "fashion" | "cifar10"
    std::string data_dir;                              // "" = the dataset's default
    std::string config_path = "config.json";
    std::string mamba_preset, cnn_preset;              // "" = the default for the dataset
    int shadows = 10;        // shokri: shadow models; lira: reference models (M = shadows + 1)
    int targets = 3;         // shokri: independent targets (repeats), each with its own members
    int64_t ds = 2500;       // examples each model trains on (and as many non-members)
    int epochs = 0;          // 0 = the preset's
    uint64_t seed = 42;
    int threads = 0;         // 0 = all cores
    std::string run_dir;     // "" = runs/<dataset>-<protocol>-ds<ds>-s<shadows>-t<targets>-seed<seed>[-e<epochs>][-<defence slug>]
    bool force = false;      // reuse a run directory made with another configuration
    bool verbose = true;     // progress lines on stdout
    // Sanity mode: the targets' "members" are replaced by fresh examples no
    // target ever trained on, so every attack must score AUC 0.5 within noise.
    bool null_members = false;
    // RMIA (lira protocol; attack/rmia.h): the LR threshold gamma (the
    // paper's CIFAR-10 configuration: 2) and the population size |Z|: Z is
    // the first examples of the shuffled dataset after the lira pool, at most
    // this many (the paper's research code scores against the 25,000
    // non-members of its pool), never a member of any model.
    double rmia_gamma = 2.0;
    int64_t rmia_population = 25000;
    // Defences (attack/defence.h, --defence, --defence-target-only): part of
    // the run directory's name and of attack_config.json when any is given.
    Defences defences;
};

// The default run directory name for cfg (see AttackRunConfig::run_dir).
std::string default_run_dir(const AttackRunConfig& cfg);

// Runs (or resumes) the experiment; returns the content of metrics.json.
// Throws std::runtime_error with a one-line reason on bad configuration,
// bad data, a corrupt cached model, or a failed write; results already
// written stay intact (every file is written to a temporary and renamed).
nlohmann::json run_attack(const AttackRunConfig& cfg);

// One privacy-utility SVG (attack/report.h, svg_privacy_utility) of the
// finished runs in run_dirs, their points in the order given (each run's
// privacy_utility_points). Throws "<dir>/metrics.json: <why>" for a
// directory without a readable metrics.json, and a write failure.
void write_privacy_utility_plot(const std::string& output, const std::vector<std::string>& run_dirs);

// What run_attack did, for tests: models trained now vs found finished.
struct AttackRunStats {
    int trained = 0, cached = 0;
};
const AttackRunStats& last_attack_run_stats();

}  // namespace mmia
