// bin/extract: training-data memorization and extraction, Mamba against
// transformer language models (attack/extract.h; docs/EXTRACTION.md).
//
//   bin/extract                                   prose, mamba-lm-s vs transformer-lm-s, seed 42
//   bin/extract --corpus code --presets mamba-lm-m,transformer-lm-m --seeds 1,2,3
//   bin/extract --models mamba.bin,pythia.bin --text pile.jsonl.zst   already-packed models, a user's corpus
//   bin/extract --seeds 1,2,3 --run-dir R --plan --emit parallel,slurm   the trainings as scheduler jobs
//   bin/extract --run-dir R --job 3                                      one model of R's plan (attack/jobs.h)
//   bin/extract --summarize R1,R2,... --run-dir OUT                     one table and plots over finished runs
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <CLI/CLI.hpp>
#include <torch/torch.h>

#include <cstdio>
#include <sstream>
#include <thread>

#include "attack/extract.h"
#include "attack/extract_sweep.h"
#include "common/command_line.h"
#include "train/trainer.h"

using namespace mmia;

namespace {

// --plan, --emit, --slots, --job: the plan and job flags' values.
struct PlanFlags {
    bool plan = false;
    std::string emit;
    int slots = 0;
    int64_t job = -1;
    std::vector<std::string> summarize;  // --summarize: finished run directories
};

// The run's flags (corpus, presets, seeds, lengths, counts, --models/--text) into cfg.
void add_run_flags(CLI::App& app, ExtractConfig& cfg) {
    app.add_option("--corpus", cfg.corpus, "corpus name (data/corpora/NAME, built by bin/corpus) or directory")
        ->capture_default_str();
    app.add_option("--presets", cfg.presets, "LM presets compared (comma-separated; matched pairs)")
        ->delimiter(',')
        ->capture_default_str();
    app.add_option("--seeds", cfg.seeds, "seeds (data order, initialisation, sampling), comma-separated")
        ->delimiter(',')
        ->check(seed_range())
        ->capture_default_str();
    app.add_option("--epochs", cfg.epochs, "training epochs of every model (0 = each preset's)")
        ->check(CLI::Range(0, 100000));
    app.add_option("--prefix-lengths", cfg.prefix_lengths, "prompt lengths k in tokens, comma-separated")
        ->delimiter(',')
        ->check(CLI::Range(1, 4096))
        ->capture_default_str();
    app.add_option("--n-sequences", cfg.n_sequences, "prefix sequences per split (train, held-out)")
        ->check(CLI::Range(1, 1000000))
        ->capture_default_str();
    app.add_option("--samples", cfg.samples, "top-k samples per prompt")->check(CLI::Range(0, 1000))->capture_default_str();
    app.add_option("--untargeted", cfg.untargeted, "untargeted samples per strategy")
        ->check(CLI::Range(4, 10000000))
        ->capture_default_str();
    app.add_option("--candidates", cfg.candidates, "exposure: never-inserted candidates per canary template")
        ->check(CLI::Range(1, 100000000))
        ->capture_default_str();
    app.add_option("--mia-docs", cfg.mia_docs, "membership inference: documents per side, at most")
        ->check(CLI::Range(2, 10000000))
        ->capture_default_str();
    app.add_option("--threads", cfg.threads, "threads (LibTorch and the engines)")->check(CLI::Range(1, 1024));
    app.add_option("--config", cfg.config_path, "config.json")->capture_default_str();
    app.add_option("--run-dir", cfg.run_dir, "run directory (default runs/extract-<corpus>-<presets>-seed<seeds>)");
    app.add_flag("--control", cfg.control,
                 "sanity control: also train each preset on the held-out documents only and extract the training "
                 "sequences with it (generalization, expected ~0)");
    app.add_flag("--force", cfg.force, "reuse a run directory (and checkpoints) made with another configuration");
    app.add_option("--models", cfg.models,
                   "instead of training: already-packed language models (ours or bin/export hf's, one tokenizer), "
                   "comma-separated, run on --text")
        ->delimiter(',');
    app.add_option("--text", cfg.text,
                   "with --models: the corpus, plain text (documents separated by blank lines) or JSON lines with a "
                   "\"text\" field, optionally zstd-compressed (.zst)");
}

// The plan and job flags (--plan, --emit, --slots, --job) into pf.
void add_plan_flags(CLI::App& app, PlanFlags& pf) {
    app.add_option("--summarize", pf.summarize,
                   "instead of a run: one table and plots over finished run directories (comma-separated), "
                   "written to --run-dir (default runs/extract-summary): sweep.md, sweep.csv, plots/")
        ->delimiter(',');
    app.add_flag("--plan", pf.plan,
                 "write the run's plan and its training jobs (jobs.txt, jobs.json, plan.json) to the run directory, "
                 "train nothing (docs/EXTRACTION.md)");
    app.add_option("--emit", pf.emit, "with --plan: scheduler files too: parallel, slurm, sge (comma-separated)");
    app.add_option("--slots", pf.slots, "with --emit: at most this many jobs at once (parallel -j, Slurm %P, SGE -tc)")
        ->check(CLI::Range(1, 1000000));
    app.add_option("--job", pf.job,
                   "with --run-dir only: train job ID of the run's plan (0-based, jobs.json), arguments from the "
                   "plan; nothing when it is complete");
}

// Flag combinations and list values the parser cannot check: an error line on
// stderr and 2 at the first problem, -1 when the flags are consistent.
int check_flags(const CLI::App& app, int argc, char** argv, const ExtractConfig& cfg, const PlanFlags& pf) {
    const char* combination = app.count("--emit") && !pf.plan                 ? "--emit needs --plan"
                              : app.count("--slots") && !app.count("--emit") ? "--slots needs --emit"
                                                                             : nullptr;
    if (combination) {
        std::fprintf(stderr, "error: %s (see --help)\n", combination);
        return 2;
    }
    // The list flags: once each, no empty element, no value twice (a seed or
    // preset given twice would repeat a model or compare one with itself).
    for (const char* flag : {"--presets", "--seeds", "--prefix-lengths", "--models"})
        if (std::string why = list_flag_problem(argc, argv, flag); !why.empty()) {
            std::fprintf(stderr, "error: %s (see --help)\n", why.c_str());
            return 2;
        }
    const std::pair<const char*, std::string> repeats[] = {{"--presets", first_repeat(cfg.presets)},
                                                          {"--seeds", first_repeat(cfg.seeds)},
                                                          {"--prefix-lengths", first_repeat(cfg.prefix_lengths)}};
    for (const auto& [flag, value] : repeats)
        if (!value.empty()) {
            std::fprintf(stderr, "error: %s: %s given twice (each value once) (see --help)\n", flag, value.c_str());
            return 2;
        }
    if (!pf.summarize.empty())
        for (const auto* opt : app.get_options())
            if (opt->count() && opt->get_name() != "--summarize" && opt->get_name() != "--run-dir") {
                std::fprintf(stderr, "error: %s: --summarize reads finished runs and takes only --run-dir (see --help)\n",
                             opt->get_name().c_str());
                return 2;
            }
    if (std::string why = list_flag_problem(argc, argv, "--summarize"); !why.empty()) {
        std::fprintf(stderr, "error: %s (see --help)\n", why.c_str());
        return 2;
    }
    const bool given_models = !cfg.models.empty() || !cfg.text.empty();
    if (given_models && cfg.seeds.size() > 1) {
        std::fprintf(stderr, "error: --seeds: --models/--text runs one seed (it picks the sequences); give one (see --help)\n");
        return 2;
    }
    if (given_models)
        for (const char* flag : {"--corpus", "--presets", "--epochs", "--control", "--config", "--force", "--plan"})
            for (int i = 1; i < argc; i++)
                if (std::string(argv[i]) == flag || std::string(argv[i]).rfind(std::string(flag) + "=", 0) == 0) {
                    std::fprintf(stderr, "error: %s trains models; --models/--text run packed ones: give one or the other (see --help)\n", flag);
                    return 2;
                }
    return -1;
}

// --models/--text: run the packed models, print each one's exact counts and
// the report's path; the exit code (1 with an error line on failure).
int run_given_models(const ExtractConfig& cfg) {
    try {
        const nlohmann::json res = run_extract_models(cfg);
        const std::string dir = res["run_dir"].get<std::string>();
        for (const auto& m : res["models"])
            for (int k : cfg.prefix_lengths) {
                const auto& e = m["prefix"][std::to_string(k)];
                std::printf("%s: k=%d exact %lld/%lld\n", m["path"].get<std::string>().c_str(), k,
                            (long long)e["exact"].get<int64_t>(), (long long)e["n"].get<int64_t>());
            }
        std::printf("report: %s/report.md (metrics: %s/metrics.json)\n", dir.c_str(), dir.c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", error_text(e).c_str());
        return 1;
    }
    return 0;
}

// --summarize: the sweep report over finished runs; the exit code.
int run_summary(const PlanFlags& pf, const ExtractConfig& cfg) {
    const std::string out = cfg.run_dir.empty() ? "runs/extract-summary" : cfg.run_dir;
    try {
        const auto plots = write_sweep_report(pf.summarize, out);
        std::printf("report: %s/sweep.md (table: %s/sweep.csv; %zu plot(s) in %s/plots)\n", out.c_str(), out.c_str(),
                    plots.size(), out.c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", error_text(e).c_str());
        return 1;
    }
    return 0;
}

// Training runs: one plan job (--job), the plan (--plan), or the whole run;
// the exit code (1 with an error line on failure).
int run_trained(const CLI::App& app, int argc, char** argv, ExtractConfig& cfg, const PlanFlags& pf) {
    try {
        if (app.count("--job")) {
            run_extract_job(cfg, pf.job);
            return 0;
        }
        if (pf.plan) {
            std::vector<std::string> schedulers;
            std::stringstream in(pf.emit);
            for (std::string w; std::getline(in, w, ',');) schedulers.push_back(w);
            plan_extract(cfg, plan_record(argc, argv, app.count("--threads") > 0, cfg.threads), schedulers, pf.slots);
            return 0;
        }
        run_extract(cfg);
        std::string dir = cfg.run_dir.empty() ? default_extract_run_dir(cfg) : cfg.run_dir;
        std::printf("report: %s/report.md (metrics: %s/metrics.json)\n", dir.c_str(), dir.c_str());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", error_text(e).c_str());
        return 1;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    keep_freed_memory();
    // --job: parse the plan's arguments instead of the caller's.
    JobArguments job_args;
    if (int code = use_plan_arguments(argc, argv, "bin/extract", read_extract_plan, job_args); code >= 0) return code;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // progress lines appear as they happen in a log
    CLI::App app{"Memorization and extraction: train Mamba and transformer LMs on a corpus, run prefix and "
                 "untargeted extraction, membership inference and canary exposure through the engines, report."};
    ExtractConfig cfg;
    cfg.threads = int(std::max(1u, std::thread::hardware_concurrency()));
    PlanFlags pf;
    add_run_flags(app, cfg);
    add_plan_flags(app, pf);
    if (int code = parse_command_line(app, argc, argv); code >= 0) return code;
    if (int code = check_flags(app, argc, argv, cfg, pf); code >= 0) return code;
    if (!pf.summarize.empty()) return run_summary(pf, cfg);
    if (!cfg.models.empty() || !cfg.text.empty()) return run_given_models(cfg);
    return run_trained(app, argc, argv, cfg, pf);
}
