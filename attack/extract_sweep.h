// extract_sweep.h: bin/extract --summarize, one report over many finished
// bin/extract runs (scripts/extract_sweep.sh's grid: preset pairs x corpora x
// training lengths x seeds). Issue 11's sweep outputs: the headline table
// (Mamba against transformer: extraction, exposure, best membership AUC and
// TPR at 1% FPR, held-out loss beside every rate), which architecture fits
// better and which leaks more in each run, and plots of leakage against
// fit, model size, corpus and epochs with both architectures on the same
// axes. It reads each run's metrics.json ("pooled", written by run_extract)
// and trains nothing. docs/EXTRACTION.md, "Sweeps".
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mmia {

// One (run, model) row of a sweep, from RUN/metrics.json. Rates are the
// run's pooled counts over its seeds at its longest prefix length k_max,
// greedy decoding, with Wilson 95% intervals; spreads are {mean, min, max}
// over seeds.
struct SweepRow {
    std::string run;             // the run directory's last component (more of its path when two runs share it)
    std::string corpus;          // manifest name, e.g. "prose"
    std::string corpus_sha256;   // documents.jsonl, as the run recorded it
    std::string model;           // preset, e.g. "mamba-lm-s"
    std::string arch;            // "mamba" or "transformer" (the preset's family)
    int64_t params = 0;          // non-embedding parameters
    int epochs = 0;              // epochs trained (the first seed's record)
    int seeds = 0;
    int k_max = 0;               // longest prefix length of the run (tokens)
    double loss_mean = 0, loss_min = 0, loss_max = 0;      // held-out loss, nats per byte
    int64_t train_mem = 0, train_n = 0;                     // greedy, training split, k_max
    int64_t train_fuzzy = 0;                                // the same rows' 0.75 < BLEU-4 < 1 (seed 003's fuzzy match)
    int64_t heldout_mem = 0, heldout_n = 0;                 // greedy, held-out split, k_max
    int64_t control_mem = -1, control_n = 0;                // --control model on the training split (-1: none)
    int top_copies = 0;                                     // repeated documents: most copies (0: none)
    int64_t top_copies_mem = 0, top_copies_n = 0;
    int top_insertions = 0;                                 // canaries: most insertions (0: none)
    double top_exposure = 0;                                // their mean exposure, bits (mean over seeds)
    double exposure_max = 0;                                // log2(candidates + 1): the largest exposure measurable
    double auc_mean = 0, auc_min = 0, auc_max = 0;         // best membership AUC over attacks, per seed
    std::string best_attack;                                // attack with the highest mean AUC
    double loss_tpr1 = -1;                                  // loss attack's TPR at 1% FPR, mean over seeds (-1: none)
    // Untargeted extraction (Carlini et al. 2021), top-k 40 samples: how many
    // of each seed's top-ranked by perplexity hold 50 consecutive bytes of
    // the training stream, summed over seeds, out of untargeted_top; the same
    // count for as many samples chosen at random. -1: no untargeted run.
    int64_t untargeted_hits = -1, untargeted_top = 0, untargeted_random = 0;
    std::vector<std::pair<int, double>> exposure;           // (insertions, mean exposure bits), ascending
    std::vector<std::pair<int, double>> copies_rate;        // (copies, greedy rate at k_max), ascending
};

// The rows of one finished run directory, in its presets' order. Throws
// std::runtime_error("DIR/metrics.json: <why>") when the file is missing or
// not JSON, or is not a training run of bin/extract (a --models run has no
// "pooled" object), or lacks a field the table needs.
std::vector<SweepRow> sweep_rows(const std::string& run_dir);
// The same from metrics.json's text: `run` names the rows, `file` starts
// every error message. Any JSON is either rows or a std::runtime_error
// (fuzz/fuzz_extract_sweep.cpp).
std::vector<SweepRow> sweep_rows_of(const std::string& text, const std::string& run, const std::string& file);

// The rows of several runs' metrics.json texts, as write_sweep_report reads
// them: each run checked alone (sweep_rows_of's errors), then runs that
// differ only in their seeds pooled (see write_sweep_report). source, when
// given, receives each row's run as an index into texts (a pooled row: its
// first run). Any texts are either rows or a std::runtime_error whose
// message starts with a run's file (fuzz/fuzz_extract_sweep.cpp).
struct SweepRunText {
    std::string text;  // metrics.json
    std::string name;  // the rows' run name
    std::string file;  // starts every error message
};
std::vector<SweepRow> sweep_rows_of_runs(const std::vector<SweepRunText>& texts, std::vector<size_t>* source = nullptr);

// sweep.md's text for the rows of several runs: the table, one line per
// Mamba/transformer pair of a run (which fits better, which leaks more,
// whether the seeds' AUC ranges overlap), and links to `plots` (file names
// under plots/).
std::string sweep_markdown(const std::vector<SweepRow>& rows, const std::vector<std::string>& run_dirs,
                           const std::vector<std::string>& plots);

// bin/extract --summarize: reads every run (sweep_rows); runs that differ
// only in their seeds (the same config but "seeds", "threads" and
// training.*.seed, the same corpus), with no seed in common, are pooled by
// pool_seeds into one row per model, as one run
// with all their seeds (if a seed repeats among one configuration's runs,
// a rerun, none of them are pooled). The row's run: the runs' names'
// common start up to a '-', '_', '.' or '/' and the rest of each in braces
// (x-e12-{seed42,seed1}), or with no such start the names joined by " + ".
// Writes
// out_dir/sweep.md, out_dir/sweep.csv (one line per row) and
// out_dir/plots/*.svg (a corpus with repeated documents is named NAME+rep;
// corpora still sharing a name but not a checksum get @<first 8 hex digits
// of the sha256>): leakage_vs_fit (best AUC against held-out loss,
// when the losses differ), best_auc_vs_params / best_auc_vs_epochs /
// best_auc_by_corpus (each when the runs differ in preset size, epochs,
// corpus), exposure_vs_insertions (runs with canaries), extraction_vs_copies
// (runs on a corpus with repeated documents); a plot of these names left
// from an earlier summary in out_dir is removed. Returns the plots' names.
// Throws sweep_rows' errors, "no run directories", "RUN given twice",
// "OUT: a bin/extract run directory ..." (out_dir holds a metrics.json: the
// summary would replace that run's plots), and the write errors.
std::vector<std::string> write_sweep_report(const std::vector<std::string>& run_dirs, const std::string& out_dir);

}  // namespace mmia
