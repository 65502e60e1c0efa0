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
#include "attack/jobs.h"

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

// --- The run as scheduler jobs (attack/jobs.h; docs/ATTACKS.md) ---------------

// How --plan was called, for the jobs to call it again: the run's
// command-line arguments without --plan, --emit, --slots and --run-dir
// (with --threads added when it was not given: the plan fixes it, since
// LibTorch's CNN training gives other bits with another thread count), the
// directory they are relative to, and bin/attack's absolute path.
using AttackPlanRecord = PlanRecord;

// bin/attack --plan: stages 1 and 2 of run_attack (the run directory
// claimed, attack_config.json, splits.json, membership.csv), then
// jobs.json, jobs.txt and plan.json (written last: a plan exists once it
// is there), and for each scheduler in `emit` ("parallel", "slurm", "sge")
// its files (attack/jobs.h); trains nothing. Returns jobs.json's content.
// Throws as run_attack does.
nlohmann::json plan_attack(const AttackRunConfig& cfg, const AttackPlanRecord& rec,
                           const std::vector<std::string>& emit, int slots);

// DIR/plan.json, checked; throws "--run-dir <dir>: no such directory ..."
// (or "...: not a directory ..."), "<dir>: no plan.json ..." when there is
// none, "<dir>/plan.json: not valid JSON ..." or "<dir>/plan.json: plan
// version V, this bin/attack reads version 1 ..." (docs/BAD_INPUT.md).
nlohmann::json read_attack_plan(const std::string& dir);

// bin/attack --run-dir DIR --job ID, cfg parsed from the plan's arguments
// (cfg.run_dir = DIR): trains model ID of the plan (jobs.h's numbering)
// under its lock and packs it for the engines, each file written to a
// temporary and renamed; does nothing when the model is complete (its
// checkpoint has the "final" record and its packed .bin exists). Returns
// true when it trained (or finished) the model, false when it was already
// complete. Throws "--job ID: the plan in DIR has jobs 0 to N-1" and the
// errors of read_attack_plan and run_attack.
bool run_attack_job(const AttackRunConfig& cfg, int64_t id);

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
