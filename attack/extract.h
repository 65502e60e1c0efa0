// extract.h: bin/extract, training-data memorization and extraction in
// language models, Mamba against a GPT-NeoX transformer (issue 11; seed 003
// done right). docs/EXTRACTION.md defines every number.
//
// Stages of run_extract, in order, each a named function in extract.cpp:
//   resolve  config, corpus (name, sha256, packages), run directory
//   plan     the prefix-extraction sequences (train and held-out), the MIA
//            documents, the exposure candidates, all seeded
//   train    each model of --presets and its architecture's reference model
//            (mamba-lm-ref / transformer-lm-ref) on the same training stream
//            (train_lm: cached, resumable), exported to packed kinds 3 / 4
//   engine   everything model-dependent through the mmap'd engines (LmOps:
//            lm_generate, prefill/decode, lm_score_texts), never LibTorch
//   scores   attack/lm_scores.h per sample, SuffixArray for "verbatim"
//   metrics  metrics.json, CSVs, SVG plots, report.md
//
// Parts (per model): 1 prefix extraction (greedy and top-k 40), 2 the
// Carlini 2021 scores per sample, 3 the CSVs, 4 untargeted extraction, 5
// membership inference on documents and canary exposure.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "attack/jobs.h"
#include "engine/lm.h"

namespace mmia {

struct ExtractConfig {
    std::string corpus = "prose";       // a corpus name under data/corpora/, or a directory
    std::string config_path = "config.json";
    // Presets to compare, each trained on the same stream; the default is
    // the smallest matched pair.
    std::vector<std::string> presets = {"mamba-lm-s", "transformer-lm-s"};
    std::vector<uint64_t> seeds = {42};  // data order, initialisation, sampling
    int epochs = 0;                      // 0 = each preset's
    std::vector<int> prefix_lengths = {8, 16, 32, 64, 128};
    int suffix_len = 50;                 // tokens compared with the model's continuation
    int n_sequences = 100;               // prefix sequences per split (train, held-out)
    int samples = 3;                     // top-k samples per prompt
    int top_k = 40;
    int untargeted = 400;                // samples per untargeted strategy
    int untargeted_len = 256;            // tokens per untargeted sample
    int candidates = 2000;               // exposure: never-inserted candidates per canary template
    int mia_docs = 500;                  // documents per side (members, non-members), at most
    int threads = 0;                     // 0 = all cores
    std::string run_dir;                 // "" = runs/extract-<corpus>-<presets>-seed<seeds>
    // Sanity control (issue 11): also train each preset on the held-out
    // documents only, a model that never saw the training documents, and run
    // greedy prefix extraction with it on the same training sequences. What
    // it "extracts" there is generalization, not memorization (expected ~0).
    bool control = false;
    bool force = false;
    bool verbose = true;
    // Already-packed models on a user's corpus (run_extract_models): no
    // training, no held-out split.
    std::vector<std::string> models;  // packed LM files (ours or bin/export hf's), one tokenizer
    std::string text;                 // the corpus (common/corpus_text.h): text or JSONL, optionally .zst
};

std::string default_extract_run_dir(const ExtractConfig& cfg);

// Runs (or resumes: cached models are reused) the experiment; returns the
// content of metrics.json. Throws std::runtime_error("<why>").
nlohmann::json run_extract(const ExtractConfig& cfg);

// bin/extract --models A.bin[,B.bin...] --text CORPUS: prefix extraction
// and per-sequence scores of already-packed language models (ours, or
// imported by bin/export hf, byte or BPE) on a user's corpus. Every model
// must have the same tokenizer (the corpus is tokenized once, with it). The
// sequences: the first max(prefix_lengths) + suffix_len tokens of up to
// n_sequences documents that have that many (seeded pick, seeds[0]); for
// each prefix length k the prompt is the k tokens before the suffix, the
// model continues it greedily for suffix_len tokens, and the row is
// `exact` when all of them equal the document's (as run_extract's
// `memorized`). Each sequence is also scored whole by every model (mean
// -log p per predicted token, perplexity, zlib bytes of its text).
// Writes run_dir (default runs/extract-text-<file stem>-seed<seed>):
// metrics.json, prefix.csv, scores.csv, report.md; returns metrics.json.
// Throws std::runtime_error("<why>"): no model, no --text, a file that is
// not a language model or has a BPE kind without its tokenizer, models with
// different tokenizers, the corpus errors of load_text_documents, a
// document the tokenizer cannot encode, no document long enough, a
// sequence longer than a transformer's context.
nlohmann::json run_extract_models(const ExtractConfig& cfg);

// ---- the run as scheduler jobs (bin/extract --plan, --job; attack/jobs.h) ----
//
// Job ID (0-based), in this order for each seed of --seeds in turn: each
// preset of --presets, then each architecture's reference model
// (mamba-lm-ref, transformer-lm-ref, by name), then with --control each
// preset's control; a model listed before (a preset that is also a
// reference) is not listed again. Files in the run directory: plan.json
// (plan_version, program, cwd, args, run_dir, threads, n_jobs), jobs.json
// (id, preset, tag "" or "-control", seed, checkpoint, packed, command
// per job; score_command and attack_command: the plain run that scores),
// jobs.txt, and the --emit files (attack/jobs.h). docs/EXTRACTION.md.

// The plan format this bin/extract writes and reads (plan.json "plan_version").
constexpr int kExtractPlanVersion = 1;

// bin/extract --plan: resolves the run as run_extract does (config, corpus,
// presets, references, extract_config.json claimed in the run directory),
// then writes jobs.json, jobs.txt and plan.json (last: a plan exists once
// it is there) and each `emit` scheduler's files; trains nothing. Returns
// jobs.json's content. Throws as run_extract does, and the write errors.
nlohmann::json plan_extract(const ExtractConfig& cfg, const PlanRecord& rec, const std::vector<std::string>& emit,
                            int slots);

// DIR/plan.json of bin/extract --plan, checked (read_plan_file's errors).
nlohmann::json read_extract_plan(const std::string& dir);

// bin/extract --run-dir DIR --job ID, cfg parsed from the plan's arguments:
// trains model ID of the plan (the numbering above) under its lock
// (models/<name>.lock), removes a killed writer's temporaries, exports it
// to the packed .bin, each file written to a temporary and renamed; the
// same bits as the sequential run (same seed, same --threads, which the
// run's extract_config.json pins). Does nothing when the model is complete
// (its checkpoint has the "final" record and the .bin is not older).
// Returns true when it trained (or exported) the model, false when it was
// complete. Throws "--job ID: the plan in DIR has jobs 0 to N-1", "DIR/jobs.json:
// job ID is not the model this bin/extract plans ..." and the errors of
// read_extract_plan and run_extract.
bool run_extract_job(const ExtractConfig& cfg, int64_t id);

// What run_extract did, for tests: models trained now vs found finished.
struct ExtractRunStats {
    int trained = 0, cached = 0;
};
const ExtractRunStats& last_extract_run_stats();

// ---- pieces, exposed for the tests ------------------------------------------

// The Wilson score interval (Wilson 1927) for k successes in n trials at
// z (1.959964 = 95%): centre (p + z^2/2n) / (1 + z^2/n), half-width
// z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n). n = 0 gives [0, 1].
std::pair<double, double> wilson_interval(int64_t k, int64_t n, double z = 1.959963984540054);

// Pools the per-seed results of run_extract (metrics.json's "seeds" object:
// seed -> {"models": name -> {heldout_loss, prefix[], mia.attacks{}, 
// exposure_by_insertions{}}}) for each model in `models`:
//   prefix rows: counts summed over seeds (each seed draws other prompts),
//     rate and Wilson 95% interval of the sums;
//   heldout_loss, each MIA attack's auc and tpr_at_1pct_fpr, the best AUC
//     over attacks, and each insertion count's mean exposure: {"mean",
//     "min", "max", "per_seed"} over seeds (seeds in the object's order);
//   mean_heldout_loss (= heldout_loss.mean, kept for older readers).
// Seeds are few (3 for the headline): the spread is given as min..max, not
// as a normal interval. Throws std::runtime_error if a model is missing from
// a seed, a nlohmann::json::exception for a record that lacks a field or
// holds the wrong type (--summarize pools records read from other runs'
// metrics.json). In attack/extract_format.cpp (no LibTorch). Tested on a
// hand-built case in tests/test_extract.cpp.
nlohmann::json pool_seeds(const nlohmann::json& seeds, const std::vector<std::string>& models);

// One CSV field (RFC 4180): always quoted, '"' doubled. First the bytes
// are made one printable line: backslash -> \\, newline -> \n, tab -> \t,
// CR -> \r, any other byte 0x00-0x1f or 0x7f -> \xHH (two lowercase hex
// digits); valid UTF-8 characters pass unchanged, and any byte >= 0x80 that
// is not part of one (a byte model may sample any byte) -> \xHH, so the
// file is valid UTF-8 for any input. docs/EXTRACTION.md.
std::string csv_text(const std::string& bytes);
// A number at full precision (%.17g); NaN as "nan".
std::string csv_num(double v);

// Seed 003's prompt_rep: the reference suffix text occurs in the prompt text.
bool prompt_repetition(const std::string& prompt, const std::string& suffix);

// How many of `samples` contain a window of `min_len` bytes that occurs
// verbatim in `stream` (SuffixArray over the stream).
std::vector<bool> verbatim_flags(const std::vector<uint8_t>& stream, const std::vector<std::string>& samples,
                                 size_t min_len);

// The generation of the decaying-temperature strategy (Carlini et al.
// 2021): temperature t0 at the first generated token falling linearly to
// t1 at token `steps` and t1 after, top-k `top_k`; prefill/decode and
// lm_sample per step. out: the tokens (stops after eos).
int lm_generate_decaying(const LmOps* ops, const int* prompt, int n_prompt, int n_new, double t0, double t1,
                         int steps, int top_k, uint64_t seed, std::vector<int>& out, char* err, size_t errlen);

// Per-token log-probabilities of each token sequence (>= 2 tokens) through
// the engine (lm_score_texts): result[i] has seqs[i].size() - 1 entries.
std::vector<std::vector<double>> engine_logprobs(const LmOps& ops, const std::vector<std::vector<int>>& seqs);

// Tokens (bytes) of text, with ASCII letters lowercased (PPL_Lower).
std::string ascii_lower(const std::string& text);

}  // namespace mmia
