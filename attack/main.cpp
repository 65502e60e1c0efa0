// bin/attack: membership inference against Mamba and CNN classifiers (see
// attack/run.h for the protocols and the run directory).
//
//   bin/attack --shadow 10                      MNIST, both models, shokri protocol
//   bin/attack --protocol lira --shadow 15 --model mamba --dataset fashion
//   bin/attack --protocol lira --shadow 16 --run-dir R --plan --emit parallel,slurm
//   bin/attack --run-dir R --job 3              one model of R's plan (attack/jobs.h)
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <thread>
#include <unistd.h>

#include "attack/jobs.h"
#include "attack/run.h"
#include "common/command_line.h"
#include "train/trainer.h"

using namespace mmia;

// Every flag works in every mode it is accepted in; the combinations where
// one would do nothing are usage errors (docs/ATTACKS.md, "Flags"): the
// problem, or "" when there is none.
static std::string flag_combination_problem(const CLI::App& app, const AttackRunConfig& cfg,
                                            const std::string& model, const std::string& preset) {
    if (cfg.protocol == "lira" && app.count("--targets"))
        return "--targets: shokri protocol only (lira makes every model the target in turn)";
    for (const char* flag : {"--rmia-gamma", "--rmia-population"})
        if (cfg.protocol != "lira" && app.count(flag))
            return std::string(flag) + ": lira protocol only (RMIA needs reference models trained with and "
                                       "without each example)";
    if (!preset.empty() && model == "both")
        return "--preset needs one --model; use --mamba-preset/--cnn-preset";
    if (!preset.empty() && (app.count("--mamba-preset") || app.count("--cnn-preset")))
        return "--preset: give it or --mamba-preset/--cnn-preset, not both";
    if (model == "cnn" && app.count("--mamba-preset"))
        return "--mamba-preset: no Mamba model with --model cnn";
    if (model == "mamba" && app.count("--cnn-preset"))
        return "--cnn-preset: no CNN model with --model mamba";
    if (app.count("--emit") && !app.count("--plan")) return "--emit needs --plan";
    if (app.count("--slots") && !app.count("--emit")) return "--slots needs --emit";
    return "";
}

// Every flag's value, for the parts of main below.
struct Flags {
    AttackRunConfig cfg;
    std::string model = "both", preset;
    bool plan = false;                        // --plan [--emit LIST [--slots P]]
    std::string emit;
    int slots = 0;
    int64_t job = -1;                         // --job ID
    std::vector<std::string> defence_specs;   // --defence, as given
    std::string utility_plot;                 // --privacy-utility-plot OUT --from-run DIR...
    std::vector<std::string> from_runs;
};

// The run's flags: protocol, models, data, training, RMIA.
static void add_run_flags(CLI::App& app, Flags& f) {
    app.add_option("--protocol", f.cfg.protocol, "shokri (pg1647's shadow split) or lira (Carlini et al.)")
        ->check(CLI::IsMember({"shokri", "lira"}))
        ->capture_default_str();
    app.add_option("--model", f.model, "mamba, cnn or both")->check(CLI::IsMember({"mamba", "cnn", "both"}))
        ->capture_default_str();
    app.add_option("--dataset", f.cfg.dataset, "mnist, fashion or cifar10")
        ->check(CLI::IsMember({"mnist", "fashion", "cifar10"}))
        ->capture_default_str();
    app.add_option("--shadow", f.cfg.shadows, "shadow models (lira: reference models; M = N + 1)")
        ->check(int_in<int>(1, 1000))
        ->capture_default_str();
    app.add_option("--targets", f.cfg.targets, "shokri: independent target models (repeats)")
        ->check(int_in<int>(1, 100))
        ->capture_default_str();
    app.add_option("--ds", f.cfg.ds, "examples each model trains on (as many non-members)")
        ->check(int_in<int64_t>(10, int64_t(1) << 30))
        ->capture_default_str();
    app.add_option("--preset", f.preset, "config.json preset (with one --model)");
    app.add_option("--mamba-preset", f.cfg.mamba_preset, "Mamba preset (default: the dataset's)");
    app.add_option("--cnn-preset", f.cfg.cnn_preset, "CNN preset (default: the dataset's)");
    app.add_option("--epochs", f.cfg.epochs, "training epochs (0 = the preset's)")->check(int_in<int>(0, 100000));
    app.add_option("--seed", f.cfg.seed, "seed of the splits and of every model")->check(seed_range())->capture_default_str();
    app.add_option("--threads", f.cfg.threads, "threads (LibTorch and the engines)")->check(int_in<int>(1, 1024));
    app.add_option("--data-dir", f.cfg.data_dir, "dataset directory (default: the dataset's)");
    app.add_option("--config", f.cfg.config_path, "config.json")->capture_default_str();
    app.add_option("--run-dir", f.cfg.run_dir, "run directory (default: runs/<dataset>-<protocol>-...)");
    app.add_flag("--force", f.cfg.force, "reuse a run directory made with another configuration");
    app.add_flag("--null-members", f.cfg.null_members,
                 "sanity run: the targets' members are fresh examples they never saw (AUC must be 0.5)");
    app.add_option("--rmia-gamma", f.cfg.rmia_gamma,
                   "lira: RMIA's likelihood-ratio threshold gamma (the paper's CIFAR-10 value)")
        ->check(CLI::Validator(
            [](std::string& s) -> std::string {
                char* end = nullptr;
                const double v = std::strtod(s.c_str(), &end);
                if (s.empty() || *end != 0 || !(v > 0 && v <= 1e6))  // false for nan
                    return "'" + s + "' is not a gamma in (0, 1000000]";
                return "";
            },
            "GAMMA"))
        ->capture_default_str();
    app.add_option("--rmia-population", f.cfg.rmia_population,
                   "lira: RMIA's population points, at most (taken from outside the pool)")
        ->check(int_in<int64_t>(1, int64_t(1) << 30))
        ->capture_default_str();
}

// The run as scheduler jobs (attack/jobs.h).
static void add_job_flags(CLI::App& app, Flags& f) {
    app.add_flag("--plan", f.plan,
                 "write the run's plan and its training jobs (jobs.txt, jobs.json) to the run directory, train "
                 "nothing (docs/ATTACKS.md, \"From one machine to a cluster\")");
    app.add_option("--emit", f.emit, "with --plan: scheduler files too: parallel, slurm, sge (comma-separated)")
        ->check(CLI::Validator(
            [](std::string& s) -> std::string {
                std::stringstream in(s);
                for (std::string w; std::getline(in, w, ',');)
                    if (w != "parallel" && w != "slurm" && w != "sge")
                        return "'" + w + "' is not a scheduler (parallel, slurm, sge)";
                return s.empty() || s.back() == ',' ? "'" + s + "' is not a list of schedulers" : "";
            },
            "LIST"));
    app.add_option("--slots", f.slots, "with --emit: at most this many jobs at once (parallel -j, Slurm %P)")
        ->check(int_in<int>(1, 100000));
    app.add_option("--job", f.job,
                   "with --run-dir only: train job ID of the run's plan (0-based: kind index x models + model "
                   "index), arguments from the plan; nothing when it is complete")
        ->check(int_in<int64_t>(0, int64_t(1) << 30));
}

// Defences (attack/defence.h) and the privacy-utility plot of finished runs.
static void add_defence_flags(CLI::App& app, Flags& f) {
    app.add_option("--defence", f.defence_specs,
                   "defences, a comma list, repeatable (docs/PRIVACY.md): none, dp:sigma=S|eps=E[,C=C,delta=D,q=Q], "
                   "l2=WD, label-smoothing=EPS, early-stopping=PATIENCE, dropout=P, augment, top-k=K, round=D, "
                   "label-only; applied to every model (a defence-aware attacker)")
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    app.add_flag("--defence-target-only", f.cfg.defences.target_only,
                 "shokri: defend the targets only (pg1647's mitigation, a contrast; the shadows stay undefended)");
    app.add_option("--privacy-utility-plot", f.utility_plot,
                   "write one privacy-utility SVG of the finished runs given by --from-run (no training) and exit");
    app.add_option("--from-run", f.from_runs, "a finished run directory for --privacy-utility-plot (repeatable)")
        ->expected(1)
        ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
}

// --privacy-utility-plot OUT --from-run DIR...: one SVG of finished runs.
// Returns the exit code.
static int privacy_utility_plot(const Flags& f) {
    if (f.utility_plot.empty() || f.from_runs.empty()) {
        std::fprintf(stderr, "error: --privacy-utility-plot and --from-run go together (see --help)\n");
        return 2;
    }
    try {
        write_privacy_utility_plot(f.utility_plot, f.from_runs);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", error_text(e).c_str());
        return 1;
    }
    std::printf("privacy-utility plot: %s (%zu runs)\n", f.utility_plot.c_str(), f.from_runs.size());
    return 0;
}

// --defence SPEC... into f.cfg.defences (attack/defence.h); prints one
// usage error line and returns 2 for a bad spec or combination, else -1.
static int parse_defence_flags(Flags& f) {
    if (!f.defence_specs.empty()) {
        try {
            const bool target_only = f.cfg.defences.target_only;
            f.cfg.defences = parse_defences(f.defence_specs);
            f.cfg.defences.target_only = target_only;
            // Flag combinations (usage errors): the same checks run_attack makes.
            if (f.cfg.defences.target_only) check_defences(f.cfg.defences, f.cfg.protocol, 1000000);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "error: %s (see --help)\n", e.what());
            return 2;
        }
    }
    if (f.cfg.defences.target_only && f.defence_specs.empty()) {
        std::fprintf(stderr, "error: --defence-target-only: no defence to apply (give --defence) (see --help)\n");
        return 2;
    }
    return -1;
}

// The run, one of its jobs, or its plan, by the flags. Returns the exit code.
static int run(Flags& f, const CLI::App& app, int argc, char** argv) {
    AttackRunConfig& cfg = f.cfg;
    try {
        cfg.models = f.model == "both" ? std::vector<std::string>{"mamba", "cnn"} : std::vector<std::string>{f.model};
        if (!f.preset.empty()) (f.model == "mamba" ? cfg.mamba_preset : cfg.cnn_preset) = f.preset;
        if (app.count("--job")) {
            run_attack_job(cfg, f.job);
            return 0;
        }
        if (f.plan) {
            std::vector<std::string> schedulers;
            std::stringstream in(f.emit);
            for (std::string w; std::getline(in, w, ',');) schedulers.push_back(w);
            plan_attack(cfg, plan_record(argc, argv, app.count("--threads") > 0, cfg.threads), schedulers, f.slots);
            return 0;
        }
        run_attack(cfg);
        std::string dir = cfg.run_dir.empty() ? default_run_dir(cfg) : cfg.run_dir;
        std::printf("report: %s/report.md, %s/report.html (metrics: %s/metrics.json)\n", dir.c_str(), dir.c_str(), dir.c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", error_text(e).c_str());
        return 1;
    }
    return 0;
}

int main(int argc, char** argv) {
    keep_freed_memory();
    // --job: parse the plan's arguments instead of the caller's.
    JobArguments job_args;
    if (int code = use_plan_arguments(argc, argv, "bin/attack", read_attack_plan, job_args); code >= 0) return code;
    CLI::App app{"Membership inference: train targets and shadows, attack them with every attack, report."};
    Flags f;
    f.cfg.threads = int(std::max(1u, std::thread::hardware_concurrency()));
    add_run_flags(app, f);
    add_job_flags(app, f);
    add_defence_flags(app, f);
    if (int code = parse_command_line(app, argc, argv); code >= 0) return code;
    if (!f.utility_plot.empty() || !f.from_runs.empty()) return privacy_utility_plot(f);
    if (int code = parse_defence_flags(f); code >= 0) return code;
    if (std::string problem = flag_combination_problem(app, f.cfg, f.model, f.preset); !problem.empty()) {
        std::fprintf(stderr, "error: %s (see --help)\n", problem.c_str());
        return 2;
    }
    return run(f, app, argc, argv);
}
