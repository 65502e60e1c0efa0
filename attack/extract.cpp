// extract.cpp: bin/extract's library (attack/extract.h). run_extract's
// stages are the functions resolve_run (check_settings, resolve_presets,
// resolved_config, claim_run_dir), then per seed seed_outputs: plan_run,
// train_model, model_outputs per model (with the per-part helpers), then
// write_outputs (memorisation.csv, plots, metrics.json, report.md via
// markdown).
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include "attack/extract.h"

#include <torch/torch.h>
#include <zlib.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>

#include "attack/jobs.h"
#include "attack/lm_scores.h"
#include "attack/metrics.h"
#include "attack/report.h"
#include "attack/suffix_array.h"
#include "common/command_line.h"
#include "common/config.h"
#include "common/corpus.h"
#include "common/corpus_text.h"
#include "common/svg_lines.h"
#include "common/write_text.h"
#include "engine/mamba_lm.h"
#include "engine/transformer.h"
#include "export/model_export.h"
#include "train/checkpoint.h"
#include "train/lm_trainer.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace mmia {

namespace {

ExtractRunStats g_stats;

double now_s() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string join_ints(const std::vector<uint64_t>& v, const char* sep) {
    std::string s;
    for (size_t i = 0; i < v.size(); i++) s += (i ? sep : "") + std::to_string(v[i]);
    return s;
}

// A seeded stream of 64-bit values, independent per purpose (tag).
uint64_t mix_seed(uint64_t seed, uint64_t tag, uint64_t a = 0, uint64_t b = 0, uint64_t c = 0) {
    uint64_t s = seed ^ (tag * 0x9E3779B97F4A7C15ull);
    uint64_t x = corpus_splitmix64(s);
    s = x ^ (a + 0x632BE59BD9B4E019ull);
    x = corpus_splitmix64(s);
    s = x ^ (b * 0x85EBCA77C2B2AE63ull + 1);
    x = corpus_splitmix64(s);
    s = x ^ (c * 0xC2B2AE3D27D4EB4Full + 7);
    return corpus_splitmix64(s);
}

std::vector<int> to_tokens(const std::string& s) {
    std::vector<int> t(s.size());
    for (size_t i = 0; i < s.size(); i++) t[i] = (unsigned char)s[i];
    return t;
}
std::string to_text(const std::vector<int>& t) {
    std::string s(t.size(), '\0');
    for (size_t i = 0; i < t.size(); i++) s[i] = char(t[i] & 0xff);
    return s;
}

// An open packed LM of either kind, with its LmOps.
struct EngineLm {
    std::string kind;
    MambaLm mamba{};
    Transformer tf{};
    LmOps ops{};
    EngineLm(const std::string& k, const std::string& path) : kind(k) {
        char err[512];
        if (kind == "mamba-lm") {
            if (mamba_lm_open(&mamba, path.c_str(), err, sizeof err) != 0) throw std::runtime_error(err);
            ops = mamba_lm_ops(&mamba);
        } else {
            if (transformer_open(&tf, path.c_str(), err, sizeof err) != 0) throw std::runtime_error(err);
            ops = transformer_ops(&tf);
        }
    }
    ~EngineLm() {
        if (kind == "mamba-lm") mamba_lm_close(&mamba);
        else transformer_close(&tf);
    }
    EngineLm(const EngineLm&) = delete;
    EngineLm& operator=(const EngineLm&) = delete;
};

// ---- resolve ------------------------------------------------------------------

struct Run {
    ExtractConfig cfg;
    std::string dir;
    json config_json;
    Corpus corpus;
    std::vector<ModelSpec> specs;      // cfg.presets
    std::map<std::string, ModelSpec> refs;  // architecture -> its reference preset
    json resolved;
};

std::string model_of_preset(const json& config, const std::string& name) {
    if (!config.contains("presets") || !config["presets"].contains(name))
        throw std::runtime_error("unknown preset '" + name + "' (see config.json)");
    const json& p = config["presets"][name];
    std::string m = p.contains("model") && p["model"].is_string() ? p["model"].get<std::string>() : "";
    if (!is_lm_model(m)) throw std::runtime_error("preset '" + name + "' is not a language model (mamba-lm, transformer-lm)");
    return m;
}

std::string corpus_dir_of(const std::string& c) {
    return c.find('/') != std::string::npos ? c : "data/corpora/" + c;
}

// Refuses settings out of range (those the command line does not bound).
void check_settings(const ExtractConfig& cfg) {
    if (cfg.presets.empty()) throw std::runtime_error("--presets: no preset given");
    if (cfg.seeds.empty()) throw std::runtime_error("--seeds: no seed given");
    if (cfg.prefix_lengths.empty()) throw std::runtime_error("--prefix-lengths: no length given");
    for (int k : cfg.prefix_lengths)
        if (k < 1 || k > 4096) throw std::runtime_error("--prefix-lengths: " + std::to_string(k) + " is outside 1..4096");
    if (cfg.suffix_len < 1) throw std::runtime_error("suffix length must be at least 1");
    if (cfg.n_sequences < 1) throw std::runtime_error("--n-sequences must be at least 1");
    if (cfg.samples < 0) throw std::runtime_error("--samples must be at least 0");
    if (cfg.untargeted < 4) throw std::runtime_error("--untargeted must be at least 4");
    if (cfg.candidates < 1) throw std::runtime_error("--candidates must be at least 1");
    if (cfg.epochs < 0) throw std::runtime_error("--epochs must be at least 0");
}

// The presets and each architecture's reference preset from the config file
// into r.specs / r.refs; refuses a prefix + suffix longer than a context.
void resolve_presets(Run& r) {
    const ExtractConfig& cfg = r.cfg;
    r.config_json = load_config_file(cfg.config_path);
    for (const auto& p : cfg.presets) {
        std::string m = model_of_preset(r.config_json, p);
        r.specs.push_back(resolve_preset(r.config_json, m, p));
        if (!r.refs.count(m)) {
            std::string ref = m + "-ref";
            model_of_preset(r.config_json, ref);
            r.refs[m] = resolve_preset(r.config_json, m, ref);
        }
    }
    const int kmax = *std::max_element(cfg.prefix_lengths.begin(), cfg.prefix_lengths.end());
    for (const auto& s : r.specs) {
        const int ctx = s.model == "mamba-lm" ? s.mamba_lm.context : s.transformer_lm.context;
        if (kmax + cfg.suffix_len > ctx)
            throw std::runtime_error("--prefix-lengths: " + std::to_string(kmax) + " + the " +
                                     std::to_string(cfg.suffix_len) + "-token suffix exceeds " + s.preset +
                                     "'s context of " + std::to_string(ctx) + " tokens");
    }
    // Untargeted samples are untargeted_len tokens; a transformer (the
    // compared presets and the reference that scores their samples) holds
    // at most its context in the K/V cache. Refused here, before training.
    std::vector<const ModelSpec*> all;
    for (const auto& s : r.specs) all.push_back(&s);
    for (const auto& [m, s] : r.refs) all.push_back(&s);
    for (const ModelSpec* s : all)
        if (s->model == "transformer-lm" && cfg.untargeted_len > s->transformer_lm.context)
            throw std::runtime_error("untargeted samples are " + std::to_string(cfg.untargeted_len) +
                                     " tokens, more than " + s->preset + "'s context of " +
                                     std::to_string(s->transformer_lm.context) +
                                     " tokens (give the preset a context of at least " +
                                     std::to_string(cfg.untargeted_len) + " in the config)");
}

// The resolved configuration (extract_config.json): corpus, presets with
// their training, every setting and library version; a re-run must match it.
json resolved_config(const Run& r) {
    const ExtractConfig& cfg = r.cfg;
    json j;
    j["corpus"] = {{"name", r.corpus.name},
                   {"sha256", r.corpus.sha256},
                   {"packages", r.corpus.manifest.value("packages", json::array())}};
    j["presets"] = cfg.presets;
    for (const auto& s : r.specs) {
        TrainConfig tc = resolve_training(r.config_json, s.preset);
        if (cfg.epochs > 0) tc.epochs = cfg.epochs;
        j["training"][s.preset] = to_json(tc);
    }
    for (const auto& [m, s] : r.refs) {
        TrainConfig tc = resolve_training(r.config_json, s.preset);
        if (cfg.epochs > 0) tc.epochs = cfg.epochs;
        j["reference_presets"][m] = s.preset;
        j["training"][s.preset] = to_json(tc);
    }
    j["seeds"] = cfg.seeds;
    j["epochs"] = cfg.epochs;
    j["prefix_lengths"] = cfg.prefix_lengths;
    j["suffix_len"] = cfg.suffix_len;
    j["n_sequences"] = cfg.n_sequences;
    j["samples"] = cfg.samples;
    j["top_k"] = cfg.top_k;
    j["untargeted"] = cfg.untargeted;
    j["untargeted_len"] = cfg.untargeted_len;
    j["candidates"] = cfg.candidates;
    j["mia_docs"] = cfg.mia_docs;
    j["threads"] = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();
    if (cfg.control) j["control"] = "each preset also trained on the held-out documents only";
    j["libraries"] = {{"libtorch", TORCH_VERSION}, {"zlib", ZLIB_VERSION},
                      {"nlohmann_json", std::to_string(NLOHMANN_JSON_VERSION_MAJOR) + "." +
                                            std::to_string(NLOHMANN_JSON_VERSION_MINOR) + "." +
                                            std::to_string(NLOHMANN_JSON_VERSION_PATCH)}};
    return j;
}

// Claims the run directory: refuses one whose extract_config.json differs
// from r.resolved (unless --force), then creates it and writes that file.
void claim_run_dir(const Run& r) {
    // Every check before anything is written: a refused run leaves no
    // directory or extract_config.json behind to block the corrected command.
    const std::string cfg_path = r.dir + "/extract_config.json";
    if (regular_file_exists(cfg_path) && !r.cfg.force) {
        std::ifstream f(cfg_path);
        json old = json::parse(f, nullptr, false);
        if (old.is_discarded()) throw std::runtime_error(cfg_path + ": not valid JSON (a corrupt run directory?)");
        if (old != r.resolved) throw std::runtime_error(another_configuration(r.dir, old, r.resolved));
    }
    create_output_dir(r.dir);
    fs::create_directories(r.dir + "/models");
    fs::create_directories(r.dir + "/plots");
    write_text_atomic(cfg_path, r.resolved.dump(2) + "\n");
}

// Resolves the run: settings checked, presets and corpus loaded, the run
// directory claimed with its extract_config.json (r.resolved).
void resolve_run(Run& r) {
    ExtractConfig& cfg = r.cfg;
    check_settings(cfg);
    if (cfg.run_dir.empty()) cfg.run_dir = default_extract_run_dir(cfg);
    r.dir = cfg.run_dir;
    // The run directory is all output: no input may live in it.
    check_input_outside_dir(cfg.config_path, "--config", r.dir, "--run-dir");
    check_input_outside_dir(corpus_dir_of(cfg.corpus), "--corpus", r.dir, "--run-dir");
    if (cfg.threads > 0) {
        torch::set_num_threads(cfg.threads);
        omp_set_num_threads(cfg.threads);
    }
    resolve_presets(r);
    const std::string cdir = corpus_dir_of(cfg.corpus);
    if (!fs::exists(cdir + "/manifest.json") && cfg.corpus.find('/') == std::string::npos)
        throw std::runtime_error("corpus '" + cfg.corpus + "' is not built (" + cdir +
                                 "/manifest.json missing): bin/corpus build --name " + cfg.corpus + " --canaries 2");
    r.corpus = load_corpus(cdir);
    r.resolved = resolved_config(r);
    claim_run_dir(r);
}

// ---- plan -----------------------------------------------------------------------

struct PrefixSeq {
    int64_t doc = 0;
    bool train = true;
    int64_t pos = 0;  // the suffix starts here in the document
    int copies = 0;   // > 0: a repeated document (bin/corpus --repeat-docs) of that many copies; 0: the samples
};

// "train" and "heldout" (the seeded samples of ordinary documents), or
// "repeated" (every repeated document of the corpus, by its copies).
const char* split_of(const PrefixSeq& q) { return q.copies > 0 ? "repeated" : q.train ? "train" : "heldout"; }

struct Plan {
    std::vector<PrefixSeq> seqs;           // train ones, held-out ones, then the repeated documents
    std::vector<int64_t> mia_members, mia_nonmembers;
    int64_t near_duplicates_excluded = 0;  // held-out documents dropped
    int64_t eligible_train = 0, eligible_heldout = 0;
    std::vector<std::string> candidate_secrets;  // exposure
};

std::vector<int64_t> seeded_pick(std::vector<int64_t> pool, size_t n, uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::shuffle(pool.begin(), pool.end(), rng);
    if (pool.size() > n) pool.resize(n);
    std::sort(pool.begin(), pool.end());
    return pool;
}

Plan plan_run(const Run& r, uint64_t seed) {
    const ExtractConfig& cfg = r.cfg;
    const auto& docs = r.corpus.docs;
    Plan p;
    const std::vector<bool> near = corpus_near_duplicates(docs, 50);
    const int kmax = *std::max_element(cfg.prefix_lengths.begin(), cfg.prefix_lengths.end());
    std::vector<int64_t> tr, ho, mtr, mho;
    std::vector<const CorpusDocument*> repeated;
    for (const auto& d : docs) {
        const int64_t n = int64_t(d.text.size());
        if (!d.train && near[size_t(d.id)]) {
            p.near_duplicates_excluded++;
            continue;
        }
        // Repeated documents are extracted as their own groups (below) and
        // kept out of the samples of ordinary documents and of the MIA.
        if (d.repeated) {
            if (n >= kmax + cfg.suffix_len) repeated.push_back(&d);
            continue;
        }
        if (n >= kmax + cfg.suffix_len) (d.train ? tr : ho).push_back(d.id);
        if (n >= 32) (d.train ? mtr : mho).push_back(d.id);
    }
    p.eligible_train = int64_t(tr.size());
    p.eligible_heldout = int64_t(ho.size());
    // One sequence per document (stratified: no document twice), the suffix at
    // position kmax, so every prefix length ends at the same place.
    for (int64_t id : seeded_pick(tr, size_t(cfg.n_sequences), mix_seed(seed, 1)))
        p.seqs.push_back({id, true, kmax});
    for (int64_t id : seeded_pick(ho, size_t(cfg.n_sequences), mix_seed(seed, 2)))
        p.seqs.push_back({id, false, kmax});
    for (const CorpusDocument* d : repeated) p.seqs.push_back({d->id, true, kmax, d->copies});
    p.mia_members = seeded_pick(mtr, size_t(cfg.mia_docs), mix_seed(seed, 3));
    p.mia_nonmembers = seeded_pick(mho, size_t(cfg.mia_docs), mix_seed(seed, 4));
    // Exposure candidates: the canary template's secret space (9 digits,
    // space-separated), drawn uniformly, never an inserted secret, no repeats.
    std::set<std::string> taken;
    for (const auto& c : r.corpus.canaries) taken.insert(c.secret);
    std::mt19937_64 rng(mix_seed(seed, 5));
    while (int(p.candidate_secrets.size()) < cfg.candidates) {
        std::string s;
        for (int i = 0; i < kCanaryDigits; i++) {
            if (i) s += ' ';
            s += char('0' + rng() % 10);
        }
        if (taken.insert(s).second) p.candidate_secrets.push_back(s);
    }
    return p;
}

// ---- train ----------------------------------------------------------------------

struct TrainedModel {
    ModelSpec spec;
    std::string checkpoint, packed;
    json meta;
};

// tag: "" for the experiment's models, "-control" for the sanity control
// (trained on the held-out stream, its loss measured on the training stream).
std::string model_base(const Run& r, const std::string& preset, const std::string& tag, uint64_t seed) {
    return r.dir + "/models/" + preset + tag + "-seed" + std::to_string(seed);
}

// A model is complete when its checkpoint has the "final" record and its
// packed .bin exists and is not older (each is written to a temporary and
// renamed, the .bin after the .pt).
bool model_complete(const std::string& base) {
    if (!regular_file_exists(base + ".pt") || !regular_file_exists(base + ".bin")) return false;
    if (fs::last_write_time(base + ".bin") < fs::last_write_time(base + ".pt")) return false;
    try {
        return read_checkpoint_meta(base + ".pt").contains("final");
    } catch (const std::exception&) {
        return false;
    }
}

// Trains (or finds finished) one model under its lock (models/<name>.lock:
// a job and a run, or two jobs, never write one model at once). With
// `skipped` (a job), a complete model is left as it is and *skipped = true.
TrainedModel train_model(const Run& r, const ModelSpec& spec, uint64_t seed, const std::vector<uint8_t>& train_stream,
                         const std::vector<uint8_t>& heldout, const std::string& tag = "", bool* skipped = nullptr) {
    TrainedModel t;
    t.spec = spec;
    const std::string base = model_base(r, spec.preset, tag, seed);
    t.checkpoint = base + ".pt";
    t.packed = base + ".bin";
    ModelLock lock(base + ".lock");
    if (skipped && (*skipped = model_complete(base))) return t;
    // What a killed writer of this model left; nobody else writes it now.
    remove_stale_temporaries(t.checkpoint);
    remove_stale_temporaries(t.packed);
    TrainJob job;
    job.spec = spec;
    job.train = resolve_training(r.config_json, spec.preset);
    if (r.cfg.epochs > 0) job.train.epochs = r.cfg.epochs;
    job.train.seed = seed;
    job.dataset = r.corpus.name;
    job.dataset_sha256 = r.corpus.sha256;
    job.checkpoint = t.checkpoint;
    job.force = r.cfg.force;
    job.verbose = r.cfg.verbose;
    job.threads = r.cfg.threads > 0 ? r.cfg.threads : omp_get_max_threads();
    bool done_before = false;
    if (fs::exists(t.checkpoint)) {
        try {
            json old = read_checkpoint_meta(t.checkpoint);
            done_before = old.contains("final") && old.value("epochs_done", 0) >= job.train.epochs;
        } catch (const std::exception&) {
        }
    }
    if (r.cfg.verbose)
        std::printf("== train %s%s (seed %llu)\n", spec.preset.c_str(), tag.c_str(), (unsigned long long)seed);
    t.meta = train_lm(job, train_stream, heldout);
    bool cached = done_before && t.meta.value("epochs_done", 0) >= job.train.epochs;
    (cached ? g_stats.cached : g_stats.trained)++;
    if (!fs::exists(t.packed) || !cached || fs::last_write_time(t.packed) < fs::last_write_time(t.checkpoint))
        export_checkpoint(t.checkpoint, t.packed);
    return t;
}

// One training of the run: a preset (or reference) on a seed's stream; tag
// "-control" trains it on the held-out documents instead.
struct ExtractJob {
    uint64_t seed = 0;
    ModelSpec spec;
    std::string tag;
};

// Every training of the run, in the order extract.h gives (the job IDs).
std::vector<ExtractJob> extract_jobs(const Run& r) {
    std::vector<ExtractJob> jobs;
    std::set<std::string> listed;
    auto add = [&](uint64_t seed, const ModelSpec& s, const std::string& tag) {
        if (listed.insert(model_base(r, s.preset, tag, seed)).second) jobs.push_back({seed, s, tag});
    };
    for (uint64_t seed : r.cfg.seeds) {
        for (const auto& s : r.specs) add(seed, s, "");
        for (const auto& [m, s] : r.refs) add(seed, s, "");
        if (r.cfg.control)
            for (const auto& s : r.specs) add(seed, s, "-control");
    }
    return jobs;
}

}  // namespace

// ---- public pieces ---------------------------------------------------------------

std::string default_extract_run_dir(const ExtractConfig& cfg) {
    std::string name = fs::path(cfg.corpus).filename().string();
    std::string p;
    for (size_t i = 0; i < cfg.presets.size(); i++) p += (i ? "-vs-" : "") + cfg.presets[i];
    std::string d = "runs/extract-" + name + "-" + p + "-seed" + join_ints(cfg.seeds, "_");
    if (cfg.epochs > 0) d += "-e" + std::to_string(cfg.epochs);
    return d;
}

const ExtractRunStats& last_extract_run_stats() { return g_stats; }

bool prompt_repetition(const std::string& prompt, const std::string& suffix) {
    return prompt.find(suffix) != std::string::npos;
}

std::vector<bool> verbatim_flags(const std::vector<uint8_t>& stream, const std::vector<std::string>& samples,
                                 size_t min_len) {
    SuffixArray sa(stream);
    std::vector<bool> out(samples.size());
    for (size_t i = 0; i < samples.size(); i++) out[i] = sa.has_verbatim_window(samples[i], min_len);
    return out;
}

std::string ascii_lower(const std::string& text) {
    std::string s = text;
    for (char& c : s)
        if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
    return s;
}

int lm_generate_decaying(const LmOps* ops, const int* prompt, int n_prompt, int n_new, double t0, double t1,
                         int steps, int top_k, uint64_t seed, std::vector<int>& out, char* err, size_t errlen) {
    out.clear();
    const int V = ops->info.vocab;
    void* st = ops->state_new(ops->model);
    std::vector<float> logits((size_t)V);
    std::vector<LmCand> cand((size_t)V);
    std::vector<double> prob((size_t)V);
    if (!st) {
        packed_err(err, errlen, "out of memory");
        return -1;
    }
    uint64_t rng = lm_rng_seed(seed);
    int rc = ops->prefill(ops->model, st, prompt, n_prompt, logits.data(), err, errlen);
    if (rc == 0) rc = lm_check_logits(logits.data(), V, n_prompt - 1, err, errlen);
    for (int i = 0; rc == 0 && i < n_new; i++) {
        LmSampler s;
        s.temperature = float(i >= steps ? t1 : t0 + (t1 - t0) * double(i) / double(steps));
        s.top_k = top_k;
        s.top_p = 1.0;
        int tok = lm_sample(&s, &ops->info, logits.data(), V, &rng, cand.data(), prob.data());
        out.push_back(tok);
        if (tok == ops->info.eos || i + 1 == n_new) break;
        rc = ops->decode(ops->model, st, tok, logits.data(), err, errlen);
        if (rc == 0) rc = lm_check_logits(logits.data(), V, int64_t(n_prompt) + i, err, errlen);
    }
    ops->state_free(st);
    return rc;
}

std::vector<std::vector<double>> engine_logprobs(const LmOps& ops, const std::vector<std::vector<int>>& seqs) {
    std::vector<int> tokens;
    std::vector<int64_t> start{0};
    for (const auto& s : seqs) {
        if (s.size() < 2) throw std::runtime_error("a scored sequence needs at least 2 tokens");
        tokens.insert(tokens.end(), s.begin(), s.end());
        start.push_back(int64_t(tokens.size()));
    }
    std::vector<double> lp(tokens.size() - seqs.size() + 1);
    char err[512];
    if (!seqs.empty() && lm_score_texts(&ops, tokens.data(), start.data(), int64_t(seqs.size()), lp.data(), err,
                                        sizeof err) != 0)
        throw std::runtime_error(std::string("engine scoring: ") + err);
    std::vector<std::vector<double>> out(seqs.size());
    for (size_t i = 0; i < seqs.size(); i++) {
        const int64_t off = start[i] - int64_t(i), n = start[i + 1] - start[i] - 1;
        out[i].assign(lp.begin() + off, lp.begin() + off + n);
    }
    return out;
}

namespace {

// ---- engine outputs and scores ------------------------------------------------------

// Carlini 2021's scores of one scored text under the model (XL), the
// reference (S) and of the lowercased text under the model.
struct SampleScores {
    double ppl_xl = NAN, ppl_s = NAN, ppl_lower = NAN, window = NAN, min_k = NAN, loss = NAN, ref_loss = NAN;
    int64_t zlib = 0;
    double ratio_small() const { return std::log(ppl_xl) / std::log(ppl_s); }
    double ratio_lower() const { return std::log(ppl_lower) / std::log(ppl_xl); }
    double ratio_zlib() const { return double(zlib) / std::log(ppl_xl); }
};

double mean_neg(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s -= x;
    return s / double(v.size());
}

// Scores texts: each scored sequence is `lead` (0 or 1 eos tokens) followed
// by the text's bytes, cut at `cap` tokens in all.
std::vector<SampleScores> score_texts(const EngineLm& xl, const EngineLm& ref, const std::vector<std::string>& texts,
                                      bool lead_eos, int cap) {
    std::vector<std::vector<int>> seqs, lower;
    for (const auto& t : texts) {
        std::vector<int> s;
        if (lead_eos) s.push_back(kCorpusEos);
        for (unsigned char c : t) s.push_back(c);
        if (int(s.size()) > cap) s.resize(size_t(cap));
        if (s.size() < 2) s.push_back(kCorpusEos);  // an empty generation: score the eos
        std::vector<int> l = s;
        for (int& c : l)
            if (c >= 'A' && c <= 'Z') c += 'a' - 'A';
        seqs.push_back(std::move(s));
        lower.push_back(std::move(l));
    }
    auto a = engine_logprobs(xl.ops, seqs), b = engine_logprobs(ref.ops, seqs), c = engine_logprobs(xl.ops, lower);
    std::vector<SampleScores> out(texts.size());
    for (size_t i = 0; i < texts.size(); i++) {
        SampleScores& s = out[i];
        s.ppl_xl = perplexity(a[i]);
        s.ppl_s = perplexity(b[i]);
        s.ppl_lower = perplexity(c[i]);
        s.window = min_window_perplexity(a[i], 50);
        s.min_k = min_k_percent(a[i], 0.2);
        s.loss = mean_neg(a[i]);
        s.ref_loss = mean_neg(b[i]);
        s.zlib = zlib_bytes(texts[i]);
    }
    return out;
}

struct PrefixRow {
    int seq = 0;  // index into plan.seqs
    int k = 0;
    std::string decoding;  // "greedy" | "top-k40"
    int sample = 0;
    std::string prompt, suffix, generated;
    bool memorized = false;
    int match_len = 0;
    double mem_score = 0, bleu = 0;
    bool prompt_rep = false;
    SampleScores sc;
};

std::vector<PrefixRow> prefix_extraction(const Run& r, const Plan& p, const EngineLm& xl, const EngineLm& ref,
                                         uint64_t seed) {
    const ExtractConfig& cfg = r.cfg;
    std::vector<PrefixRow> rows;
    for (size_t q = 0; q < p.seqs.size(); q++)
        for (int k : cfg.prefix_lengths)
            for (int s = -1; s < cfg.samples; s++) {
                PrefixRow row;
                row.seq = int(q);
                row.k = k;
                row.decoding = s < 0 ? "greedy" : "top-k" + std::to_string(cfg.top_k);
                row.sample = s < 0 ? 0 : s;
                const std::string& text = r.corpus.docs[size_t(p.seqs[q].doc)].text;
                row.prompt = text.substr(size_t(p.seqs[q].pos - k), size_t(k));
                row.suffix = text.substr(size_t(p.seqs[q].pos), size_t(cfg.suffix_len));
                rows.push_back(std::move(row));
            }
    int failed = 0;
    std::string first_err;
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t i = 0; i < int64_t(rows.size()); i++) {
        PrefixRow& row = rows[size_t(i)];
        std::vector<int> prompt = to_tokens(row.prompt), out(size_t(cfg.suffix_len));
        LmSampler smp{0.0f, 0, 1.0};
        if (row.decoding != "greedy") smp = LmSampler{1.0f, cfg.top_k, 1.0};
        int n_out = 0;
        char err[512];
        if (lm_generate(&xl.ops, prompt.data(), int(prompt.size()), cfg.suffix_len, &smp,
                        mix_seed(seed, 10, uint64_t(row.seq), uint64_t(row.k), uint64_t(row.sample)), out.data(),
                        &n_out, err, sizeof err) != 0) {
#pragma omp critical(extract_err)
            {
                if (!failed) first_err = err;
                failed = 1;
            }
            continue;
        }
        out.resize(size_t(n_out));
        row.generated = to_text(out);
        std::vector<int> suffix = to_tokens(row.suffix);
        row.memorized = suffix_exact_match(out, suffix);
        row.match_len = matching_prefix_length(out, suffix);
        row.mem_score = memorization_score(out, suffix);
        row.bleu = seed003_bleu(row.suffix, row.generated);
        row.prompt_rep = prompt_repetition(row.prompt, row.suffix);
    }
    if (failed) throw std::runtime_error("generation: " + first_err);
    std::vector<std::string> texts;
    for (const auto& row : rows) texts.push_back(row.prompt + row.generated);
    auto sc = score_texts(xl, ref, texts, false, xl.ops.info.context);
    for (size_t i = 0; i < rows.size(); i++) rows[i].sc = sc[i];
    return rows;
}

struct UntargetedSample {
    std::string strategy;
    std::string text;
    bool verbatim = false;
    size_t longest = 0;
    SampleScores sc;
};

// The six rankings of Carlini et al. 2021, each "more suspicious first".
const std::vector<std::pair<std::string, std::function<double(const SampleScores&)>>>& rankings() {
    static const std::vector<std::pair<std::string, std::function<double(const SampleScores&)>>> r = {
        {"perplexity", [](const SampleScores& s) { return -std::log(s.ppl_xl); }},
        {"small", [](const SampleScores& s) { return -s.ratio_small(); }},
        {"lowercase", [](const SampleScores& s) { return s.ratio_lower(); }},
        {"zlib", [](const SampleScores& s) { return s.ratio_zlib(); }},
        {"window", [](const SampleScores& s) { return -s.window; }},
        {"min_k", [](const SampleScores& s) { return -s.min_k; }},
    };
    return r;
}

std::vector<UntargetedSample> untargeted_extraction(const Run& r, const EngineLm& xl, const EngineLm& ref,
                                                    const SuffixArray& sa, uint64_t seed) {
    const ExtractConfig& cfg = r.cfg;
    std::vector<UntargetedSample> out(size_t(2 * cfg.untargeted));
    int failed = 0;
    std::string first_err;
#pragma omp parallel for schedule(dynamic, 2)
    for (int64_t i = 0; i < int64_t(out.size()); i++) {
        const bool decay = i >= cfg.untargeted;
        const int prompt[1] = {kCorpusEos};
        std::vector<int> gen;
        char err[512];
        int rc;
        if (decay) {
            rc = lm_generate_decaying(&xl.ops, prompt, 1, cfg.untargeted_len, 10.0, 1.0, 20, cfg.top_k,
                                      mix_seed(seed, 20, uint64_t(i)), gen, err, sizeof err);
        } else {
            gen.resize(size_t(cfg.untargeted_len));
            LmSampler smp{1.0f, cfg.top_k, 1.0};
            int n = 0;
            rc = lm_generate(&xl.ops, prompt, 1, cfg.untargeted_len, &smp, mix_seed(seed, 20, uint64_t(i)),
                             gen.data(), &n, err, sizeof err);
            gen.resize(size_t(n));
        }
        if (rc != 0) {
#pragma omp critical(extract_err)
            {
                if (!failed) first_err = err;
                failed = 1;
            }
            continue;
        }
        if (!gen.empty() && gen.back() == kCorpusEos) gen.pop_back();
        UntargetedSample& u = out[size_t(i)];
        u.strategy = decay ? "temperature-decay" : "top-k" + std::to_string(cfg.top_k);
        u.text = to_text(gen);
    }
    if (failed) throw std::runtime_error("generation: " + first_err);
    std::vector<std::string> texts;
    for (auto& u : out) {
        u.verbatim = sa.has_verbatim_window(u.text, 50);
        u.longest = sa.longest_verbatim_run(u.text);
        texts.push_back(u.text);
    }
    auto sc = score_texts(xl, ref, texts, true, xl.ops.info.context);
    for (size_t i = 0; i < out.size(); i++) out[i].sc = sc[i];
    return out;
}

json untargeted_metrics(const ExtractConfig& cfg, const std::vector<UntargetedSample>& all, uint64_t seed) {
    json j;
    for (const std::string& strat : {std::string("top-k") + std::to_string(cfg.top_k), std::string("temperature-decay")}) {
        std::vector<const UntargetedSample*> v;
        for (const auto& u : all)
            if (u.strategy == strat) v.push_back(&u);
        const size_t T = std::min<size_t>(100, v.size() / 4);
        json s;
        int64_t total = 0;
        for (auto* u : v) total += u->verbatim;
        s["n"] = v.size();
        s["top"] = T;
        s["verbatim_all"] = total;
        for (const auto& [name, f] : rankings()) {
            std::vector<size_t> idx(v.size());
            std::iota(idx.begin(), idx.end(), 0);
            std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return f(v[a]->sc) > f(v[b]->sc); });
            int64_t c = 0;
            for (size_t i = 0; i < T; i++) c += v[idx[i]]->verbatim;
            auto ci = wilson_interval(c, int64_t(T));
            s["rankings"][name] = {{"verbatim_in_top", c}, {"rate", double(c) / double(T)}, {"ci95", {ci.first, ci.second}}};
        }
        std::vector<size_t> idx(v.size());
        std::iota(idx.begin(), idx.end(), 0);
        std::mt19937_64 rng(mix_seed(seed, 30));
        std::shuffle(idx.begin(), idx.end(), rng);
        int64_t c = 0;
        for (size_t i = 0; i < T; i++) c += v[idx[i]]->verbatim;
        auto ci = wilson_interval(c, int64_t(T));
        s["random_baseline"] = {{"verbatim_in_top", c}, {"rate", double(c) / double(T)}, {"ci95", {ci.first, ci.second}}};
        j[strat] = s;
    }
    return j;
}

struct MiaResult {
    json metrics;
    std::vector<NamedRoc> rocs;
};

MiaResult membership_inference(const Run& r, const Plan& p, const EngineLm& xl, const EngineLm& ref) {
    std::vector<std::string> texts;
    std::vector<int> is_member;
    for (int64_t id : p.mia_members) {
        texts.push_back(r.corpus.docs[size_t(id)].text);
        is_member.push_back(1);
    }
    for (int64_t id : p.mia_nonmembers) {
        texts.push_back(r.corpus.docs[size_t(id)].text);
        is_member.push_back(0);
    }
    MiaResult res;
    res.metrics["members"] = p.mia_members.size();
    res.metrics["nonmembers"] = p.mia_nonmembers.size();
    res.metrics["near_duplicates_excluded"] = p.near_duplicates_excluded;
    if (p.mia_members.empty() || p.mia_nonmembers.empty()) {
        // No ROC without both classes (e.g. every held-out document a near-
        // duplicate of training text): the run reports the other parts.
        res.metrics["skipped"] = "needs members and non-members of >= 32 bytes, got " +
                                 std::to_string(p.mia_members.size()) + " members and " +
                                 std::to_string(p.mia_nonmembers.size()) + " non-members";
        return res;
    }
    const int cap = xl.ops.info.context;
    // zlib of the scored part only: the text's first cap - 1 bytes
    std::vector<std::string> cut;
    for (const auto& t : texts) cut.push_back(t.substr(0, size_t(cap - 1)));
    auto sc = score_texts(xl, ref, cut, true, cap);
    // Each attack: higher = more likely a member.
    const std::vector<std::pair<std::string, std::function<double(const SampleScores&)>>> attacks = {
        {"loss", [](const SampleScores& s) { return -s.loss; }},
        {"zlib", [](const SampleScores& s) { return -s.loss / double(s.zlib); }},
        {"lowercase", [](const SampleScores& s) { return s.ratio_lower(); }},
        {"min_k", [](const SampleScores& s) { return -s.min_k; }},
        {"reference", [](const SampleScores& s) { return -(s.loss - s.ref_loss); }},
    };
    double loss_m = 0, loss_n = 0;
    for (size_t i = 0; i < sc.size(); i++) (is_member[i] ? loss_m : loss_n) += sc[i].loss;
    res.metrics["mean_loss_members"] = loss_m / double(p.mia_members.size());
    res.metrics["mean_loss_nonmembers"] = loss_n / double(p.mia_nonmembers.size());
    for (const auto& [name, f] : attacks) {
        std::vector<double> s;
        for (const auto& x : sc) s.push_back(f(x));
        auto roc = roc_curve(s, is_member);
        res.metrics["attacks"][name] = {{"auc", roc_auc(s, is_member)},
                                        {"tpr_at_1pct_fpr", tpr_at_fpr(roc, 0.01)},
                                        {"tpr_at_0.1pct_fpr", tpr_at_fpr(roc, 0.001)}};
        res.rocs.push_back({name, roc});
    }
    return res;
}

// Secret Sharer exposure of every canary, and whether greedy decoding from
// the template's prefix reproduces the secret.
json canary_exposure(const Run& r, const Plan& p, const EngineLm& xl) {
    json out = json::array();
    if (r.corpus.canaries.empty()) return out;
    std::vector<std::vector<int>> seqs;
    for (const auto& c : r.corpus.canaries) seqs.push_back(to_tokens(c.text));
    // candidates: each canary's text with its secret replaced; canaries of the
    // same template (the text outside the secret) share one candidate set
    std::map<std::string, std::vector<double>> cand_ppl;
    for (const auto& c : r.corpus.canaries) {
        const size_t at = c.text.rfind(c.secret);
        if (at == std::string::npos) throw std::runtime_error("canary " + std::to_string(c.id) + ": secret not in text");
        std::string tmpl = c.text.substr(0, at) + "\x01" + c.text.substr(at + c.secret.size());
        if (cand_ppl.count(tmpl)) continue;
        std::vector<std::vector<int>> cs;
        for (const auto& s : p.candidate_secrets)
            cs.push_back(to_tokens(c.text.substr(0, at) + s + c.text.substr(at + c.secret.size())));
        auto lp = engine_logprobs(xl.ops, cs);
        auto& v = cand_ppl[tmpl];
        for (const auto& x : lp) v.push_back(perplexity(x));
    }
    auto lp = engine_logprobs(xl.ops, seqs);
    for (size_t i = 0; i < r.corpus.canaries.size(); i++) {
        const Canary& c = r.corpus.canaries[i];
        const size_t at = c.text.rfind(c.secret);
        std::string tmpl = c.text.substr(0, at) + "\x01" + c.text.substr(at + c.secret.size());
        const double ppl = perplexity(lp[i]);
        // greedy from the text before the secret
        std::vector<int> prompt = to_tokens(c.text.substr(0, at)), gen(c.secret.size());
        LmSampler g{0.0f, 0, 1.0};
        int n = 0;
        char err[512];
        if (lm_generate(&xl.ops, prompt.data(), int(prompt.size()), int(c.secret.size()), &g, 0, gen.data(), &n, err,
                        sizeof err) != 0)
            throw std::runtime_error(std::string("canary generation: ") + err);
        gen.resize(size_t(n));
        out.push_back({{"id", c.id},
                       {"insertions", c.insertions},
                       {"perplexity", ppl},
                       {"exposure", exposure(ppl, cand_ppl[tmpl])},
                       {"max_exposure", std::log2(double(cand_ppl[tmpl].size() + 1))},
                       {"extracted", to_text(gen) == c.secret}});
    }
    return out;
}

// ---- outputs --------------------------------------------------------------------------

std::string prefix_csv(const Run& r, const Plan& p, const std::string& model, uint64_t seed,
                       const std::vector<PrefixRow>& rows) {
    std::ostringstream o;
    o << "sample,prompt,suffix,memorized,PPL_XL,PPL_S,PPL_Lower,Zlib,"
         "model,seed,split,doc_id,suffix_pos,k,decoding,sample_index,generated,matching_prefix_len,"
         "memorization_score,bleu,bleu_exact,bleu_fuzzy,prompt_rep,ratio_small,ratio_lower,ratio_zlib,"
         "min_window_ppl,min_k_pct,copies\n";
    for (const auto& row : rows) {
        const PrefixSeq& q = p.seqs[size_t(row.seq)];
        o << csv_text(row.prompt + row.generated) << ',' << csv_text(row.prompt) << ',' << csv_text(row.suffix) << ','
          << int(row.memorized) << ',' << csv_num(row.sc.ppl_xl) << ',' << csv_num(row.sc.ppl_s) << ','
          << csv_num(row.sc.ppl_lower) << ',' << row.sc.zlib << ',' << model << ',' << seed << ','
          << split_of(q) << ',' << q.doc << ',' << q.pos << ',' << row.k << ',' << row.decoding
          << ',' << row.sample << ',' << csv_text(row.generated) << ',' << row.match_len << ','
          << csv_num(row.mem_score) << ',' << csv_num(row.bleu) << ',' << int(seed003_exact(row.bleu)) << ','
          << int(seed003_fuzzy(row.bleu)) << ',' << int(row.prompt_rep) << ',' << csv_num(row.sc.ratio_small())
          << ',' << csv_num(row.sc.ratio_lower()) << ',' << csv_num(row.sc.ratio_zlib()) << ','
          << csv_num(row.sc.window) << ',' << csv_num(row.sc.min_k) << ','
          << r.corpus.docs[size_t(q.doc)].copies << '\n';
    }
    return o.str();
}

// One rate record of the prefix rows `in` (n, memorized, seed 003's BLEU
// exact and fuzzy, each with its Wilson 95% interval, prompt repetitions,
// mean memorization score and matching-prefix length); the caller adds the
// group's keys. Empty when no row is in.
json prefix_rate(const std::vector<PrefixRow>& rows, const std::function<bool(const PrefixRow&)>& in) {
    int64_t n = 0, mem = 0, ex = 0, fz = 0, rep = 0;
    double ms = 0, ml = 0;
    for (const auto& row : rows) {
        if (!in(row)) continue;
        n++;
        mem += row.memorized;
        ex += seed003_exact(row.bleu);
        fz += seed003_fuzzy(row.bleu);
        rep += row.prompt_rep;
        ms += row.mem_score;
        ml += row.match_len;
    }
    if (n == 0) return json();
    auto ci = wilson_interval(mem, n), cie = wilson_interval(ex, n), cif = wilson_interval(fz, n);
    return {{"n", n},
            {"memorized", mem},
            {"memorized_rate", double(mem) / double(n)},
            {"memorized_ci95", {ci.first, ci.second}},
            {"bleu_exact", ex},
            {"bleu_exact_rate", double(ex) / double(n)},
            {"bleu_exact_ci95", {cie.first, cie.second}},
            {"bleu_fuzzy", fz},
            {"bleu_fuzzy_rate", double(fz) / double(n)},
            {"bleu_fuzzy_ci95", {cif.first, cif.second}},
            {"prompt_rep", rep},
            {"mean_memorization_score", ms / double(n)},
            {"mean_matching_prefix_len", ml / double(n)}};
}

// Rates per (split, k, decoding) over the samples of ordinary documents
// ("train", "heldout"; the repeated documents: prefix_by_copies).
json prefix_metrics(const Run& r, const Plan& p, const std::vector<PrefixRow>& rows) {
    json out = json::array();
    for (std::string split : {"train", "heldout"})
        for (int k : r.cfg.prefix_lengths)
            for (std::string dec : {std::string("greedy"), "top-k" + std::to_string(r.cfg.top_k)}) {
                json rate = prefix_rate(rows, [&](const PrefixRow& row) {
                    return split_of(p.seqs[size_t(row.seq)]) == split && row.k == k && row.decoding == dec;
                });
                if (rate.is_null()) continue;
                json keys = {{"split", split}, {"k", k}, {"decoding", dec}};
                keys.update(rate);
                out.push_back(keys);
            }
    return out;
}

// Rates of the repeated documents per (copies, k, decoding), copies
// ascending; an empty array when the corpus repeats none.
json prefix_by_copies(const Run& r, const Plan& p, const std::vector<PrefixRow>& rows) {
    std::set<int> counts;
    for (const auto& q : p.seqs)
        if (q.copies > 0) counts.insert(q.copies);
    json out = json::array();
    for (int c : counts)
        for (int k : r.cfg.prefix_lengths)
            for (std::string dec : {std::string("greedy"), "top-k" + std::to_string(r.cfg.top_k)}) {
                json rate = prefix_rate(rows, [&](const PrefixRow& row) {
                    return p.seqs[size_t(row.seq)].copies == c && row.k == k && row.decoding == dec;
                });
                if (rate.is_null()) continue;
                json keys = {{"copies", c}, {"k", k}, {"decoding", dec}};
                keys.update(rate);
                out.push_back(keys);
            }
    return out;
}

std::string fmt_rate(const json& m, const std::string& count, const std::string& rate, const std::string& ci) {
    char b[128];
    std::snprintf(b, sizeof b, "%lld/%lld = %.3f [%.3f, %.3f]", (long long)m[count].get<int64_t>(),
                  (long long)m["n"].get<int64_t>(), m[rate].get<double>(), m[ci][0].get<double>(),
                  m[ci][1].get<double>());
    return b;
}

// A reported number in the report's tables: 4 significant digits
// (metrics.json keeps full precision); integers as they are; null as n/a.
std::string g4(const json& v) {
    if (v.is_null()) return "n/a";
    if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
    char b[32];
    std::snprintf(b, sizeof b, "%.4g", v.get<double>());
    return b;
}

// "mean [min, max]" of a pool_seeds spread.
std::string spread_text(const json& s) {
    if (s.is_null()) return "n/a";
    if (s["per_seed"].size() == 1) return g4(s["mean"]);
    return g4(s["mean"]) + " [" + g4(s["min"]) + ", " + g4(s["max"]) + "]";
}

// The report's title and the paragraph of settings and definitions.
void md_intro(std::ostringstream& o, const json& res) {
    const json& c = res["config"];
    o << "# Memorization and extraction: " << res["corpus"]["name"].get<std::string>() << "\n\n";
    o << "Corpus sha256 `" << res["corpus"]["sha256"].get<std::string>() << "`; presets "
      << c["presets"].dump() << "; seeds " << c["seeds"].dump() << "; prefix lengths " << c["prefix_lengths"].dump()
      << ", suffix " << c["suffix_len"] << " tokens; " << c["n_sequences"] << " sequences per split, "
      << c["samples"] << " top-k samples per prompt. Definitions: docs/EXTRACTION.md. Rates are token-exact "
      << "matches of the whole suffix (`memorized`), with Wilson 95% intervals; sampled rates count samples "
      << "(several per prompt, not independent).\n\n";
}

// Headline: every model over all seeds (pool_seeds): the largest prefix
// length's pooled extraction rates, exposure at the most insertions, the
// best MIA AUC, each as mean [min, max] over seeds where it varies.
void md_headline(std::ostringstream& o, const json& res) {
    const int kmax = res["config"]["prefix_lengths"].back().get<int>();
    o << "## Headline over " << res["seeds"].size() << " seed(s)\n\n"
      << "Extraction at k = " << kmax << " (training split; counts summed over seeds, Wilson 95%), "
      << "exposure at the most insertions and MIA as mean [min, max] over seeds.\n\n"
      << "| model | held-out loss (nats/byte) | greedy memorized | top-k BLEU exact | top-k BLEU fuzzy | "
         "held-out greedy memorized | max-insertion exposure (bits) | best MIA AUC | loss-attack TPR at 1% FPR |\n"
      << "|---|---|---|---|---|---|---|---|---|\n";
    for (const auto& [name, m] : res["pooled"].items()) {
        std::string g = "n/a", ex = "n/a", fz = "n/a", hg = "n/a", expo = "n/a", tpr = "n/a";
        for (const auto& row : m["prefix"]) {
            if (row["k"] != kmax) continue;
            if (row["decoding"] == "greedy")
                (row["split"] == "train" ? g : hg) = fmt_rate(row, "memorized", "memorized_rate", "memorized_ci95");
            else if (row["split"] == "train") {
                ex = fmt_rate(row, "bleu_exact", "bleu_exact_rate", "bleu_exact_ci95");
                fz = fmt_rate(row, "bleu_fuzzy", "bleu_fuzzy_rate", "bleu_fuzzy_ci95");
            }
        }
        int most = -1;
        for (const auto& [ins, v] : m["exposure_by_insertions"].items())
            if (std::stoi(ins) > most) {
                most = std::stoi(ins);
                expo = spread_text(v["mean_exposure"]) + " (x" + ins + ")";
            }
        if (m["mia"].contains("loss")) tpr = spread_text(m["mia"]["loss"]["tpr_at_1pct_fpr"]);
        o << "| " << name << " | " << spread_text(m["heldout_loss"]) << " | " << g << " | " << ex << " | " << fz
          << " | " << hg << " | " << expo << " | " << spread_text(m["best_mia_auc"]) << " | " << tpr << " |\n";
    }
    o << "\n";
}

// One seed's models table and greedy prefix extraction (k x split rows,
// a column per model).
void md_seed_models_greedy(std::ostringstream& o, const json& c, const std::string& seed, const json& sj) {
    o << "## Seed " << seed << "\n\n### Models\n\n| model | non-embedding params | epochs | train loss | held-out loss (nats/byte) | held-out bpb |\n|---|---|---|---|---|---|\n";
    for (const auto& [name, m] : sj["models"].items())
        o << "| " << name << " | " << m["non_embedding_parameters"] << " | " << m["epochs"] << " | "
          << g4(m["train_loss"]) << " | " << g4(m["heldout_loss"]) << " | " << g4(m["heldout_bpb"]) << " |\n";
    o << "\n### Prefix extraction (greedy), memorized = all " << c["suffix_len"]
      << " suffix tokens reproduced\n\n| k | split |";
    for (const auto& [name, m] : sj["models"].items())
        o << " " << name << " (held-out loss " << g4(m["heldout_loss"]) << ") |";
    o << "\n|---|---|";
    for (size_t i = 0; i < sj["models"].size(); i++) o << "---|";
    o << "\n";
    for (int k : c["prefix_lengths"].get<std::vector<int>>())
        for (std::string split : {"train", "heldout"}) {
            o << "| " << k << " | " << split << " |";
            for (const auto& [name, m] : sj["models"].items()) {
                std::string cell = "n/a (no sequence)";  // e.g. every held-out document a near-duplicate
                for (const auto& row : m["prefix"])
                    if (row["k"] == k && row["split"] == split && row["decoding"] == "greedy")
                        cell = fmt_rate(row, "memorized", "memorized_rate", "memorized_ci95");
                o << " " << cell << " |";
            }
            o << "\n";
        }
}

// One seed's sanity control (when run) and top-k sampling extraction tables.
void md_seed_control_topk(std::ostringstream& o, const json& c, const json& sj) {
    if (c.contains("control")) {
        o << "\n### Sanity control: the same presets trained on the held-out documents only\n\n"
          << "Greedy extraction of the same training sequences by a model that never saw them: "
             "generalization, not memorization (expected ~0).\n\n| k | model | control memorized | "
             "control loss on the training documents (nats/byte) |\n|---|---|---|---|\n";
        for (int k : c["prefix_lengths"].get<std::vector<int>>())
            for (const auto& [name, m] : sj["models"].items())
                for (const auto& row : m["control"]["prefix"])
                    if (row["k"] == k)
                        o << "| " << k << " | " << name << " | "
                          << fmt_rate(row, "memorized", "memorized_rate", "memorized_ci95") << " | "
                          << g4(m["control"]["loss_on_training_documents"]) << " |\n";
    }
    o << "\n### Prefix extraction (top-k sampling), seed 003's BLEU exact (>= 1) and fuzzy (> 0.75), train split\n\n| k | model | held-out loss | memorized | BLEU exact | BLEU fuzzy |\n|---|---|---|---|---|---|\n";
    for (int k : c["prefix_lengths"].get<std::vector<int>>())
        for (const auto& [name, m] : sj["models"].items())
            for (const auto& row : m["prefix"])
                if (row["k"] == k && row["split"] == "train" && row["decoding"] != "greedy")
                    o << "| " << k << " | " << name << " | " << g4(m["heldout_loss"]) << " | "
                      << fmt_rate(row, "memorized", "memorized_rate", "memorized_ci95") << " | "
                      << fmt_rate(row, "bleu_exact", "bleu_exact_rate", "bleu_exact_ci95") << " | "
                      << fmt_rate(row, "bleu_fuzzy", "bleu_fuzzy_rate", "bleu_fuzzy_ci95") << " |\n";
}

// "verbatim/top | rate [lo, hi]" cells of one untargeted ranking.
std::string untargeted_cells(const json& v, const json& top) {
    char b[160];
    std::snprintf(b, sizeof b, "%lld/%lld | %.3f [%.3f, %.3f]", (long long)v["verbatim_in_top"].get<int64_t>(),
                  (long long)top.get<int64_t>(), v["rate"].get<double>(), v["ci95"][0].get<double>(),
                  v["ci95"][1].get<double>());
    return b;
}

// One seed's untargeted extraction (every ranking and the random baseline)
// and membership inference tables.
void md_seed_untargeted_mia(std::ostringstream& o, const json& sj) {
    o << "\n### Untargeted extraction: samples with a >= 50-byte window verbatim in the training stream\n\n| model | strategy | ranking | in top | rate [95% CI] | held-out loss |\n|---|---|---|---|---|---|\n";
    for (const auto& [name, m] : sj["models"].items())
        for (const auto& [strat, s] : m["untargeted"].items()) {
            for (const auto& [rk, v] : s["rankings"].items())
                o << "| " << name << " | " << strat << " | " << rk << " | " << untargeted_cells(v, s["top"]) << " | "
                  << g4(m["heldout_loss"]) << " |\n";
            o << "| " << name << " | " << strat << " | random (baseline) | "
              << untargeted_cells(s["random_baseline"], s["top"]) << " | " << g4(m["heldout_loss"]) << " |\n";
        }
    o << "\n### Membership inference on documents\n";
    const json& first = sj["models"].begin().value()["mia"];
    if (first.contains("skipped")) {
        o << "\nNot run: " << first["skipped"].get<std::string>()
          << " (held-out near-duplicates of training text excluded: " << first["near_duplicates_excluded"] << ").\n";
        return;
    }
    o << "\n| model | attack | AUC | TPR at 1% FPR | TPR at 0.1% FPR | held-out loss |\n|---|---|---|---|---|---|\n";
    for (const auto& [name, m] : sj["models"].items())
        for (const auto& [a, v] : m["mia"]["attacks"].items())
            o << "| " << name << " | " << a << " | " << g4(v["auc"]) << " | " << g4(v["tpr_at_1pct_fpr"]) << " | "
              << g4(v["tpr_at_0.1pct_fpr"]) << " | " << g4(m["heldout_loss"]) << " |\n";
    o << "\nMembers " << first["members"] << ", non-members " << first["nonmembers"]
      << " (held-out near-duplicates of training text excluded: " << first["near_duplicates_excluded"] << ").\n";
}

// One seed's canary exposure table (insertion counts in numeric order) and
// its verdict in words.
void md_seed_exposure_verdict(std::ostringstream& o, const json& sj) {
    o << "\n### Canary exposure (Secret Sharer), mean per insertion count\n\n| model | insertions | canaries | mean exposure (bits) | extracted greedily | held-out loss |\n|---|---|---|---|---|---|\n";
    for (const auto& [name, m] : sj["models"].items()) {
        if (!m.contains("exposure_by_insertions")) {  // a corpus without canaries
            o << "| " << name << " | - | 0 (the corpus has no canaries) | - | - | " << g4(m["heldout_loss"]) << " |\n";
            continue;
        }
        // JSON object keys sort as strings ("1", "16", "2"): list the counts numerically.
        std::vector<std::pair<int, std::string>> counts;
        for (const auto& [ins, v] : m["exposure_by_insertions"].items()) counts.emplace_back(std::stoi(ins), ins);
        std::sort(counts.begin(), counts.end());
        for (const auto& [n_ins, ins] : counts) {
            const json& v = m["exposure_by_insertions"][ins];
            o << "| " << name << " | " << n_ins << " | " << v["n"] << " | " << g4(v["mean_exposure"]) << " | "
              << v["extracted"] << " | " << g4(m["heldout_loss"]) << " |\n";
        }
    }
    o << "\n### In plain words\n\n" << sj["verdict"].get<std::string>() << "\n\n";
}

// Greedy extraction pooled over seeds (only with more than one seed).
void md_pooled(std::ostringstream& o, const json& res) {
    if (res["seeds"].size() <= 1) return;
    const json& c = res["config"];
    o << "## Pooled over " << res["seeds"].size() << " seeds (greedy, counts summed)\n\n| k | split | model | memorized [95% CI] | held-out loss, mean [min, max] |\n|---|---|---|---|---|\n";
    for (int k : c["prefix_lengths"].get<std::vector<int>>())
        for (std::string split : {"train", "heldout"})
            for (const auto& [name, m] : res["pooled"].items())
                for (const auto& row : m["prefix"])
                    if (row["k"] == k && row["split"] == split && row["decoding"] == "greedy")
                        o << "| " << k << " | " << split << " | " << name << " | "
                          << fmt_rate(row, "memorized", "memorized_rate", "memorized_ci95") << " | "
                          << spread_text(m["heldout_loss"]) << " |\n";
    o << "\n";
}

// Greedy extraction of the repeated documents (bin/corpus --repeat-docs) per
// copies and prompt length, a column per model, counts summed over seeds;
// nothing when the corpus repeats none.
void md_by_copies(std::ostringstream& o, const json& res) {
    const json& first = res["pooled"].begin().value();
    if (!first.contains("prefix_by_copies")) return;
    o << "## Extraction against duplication (repeated documents, greedy, " << res["seeds"].size()
      << " seed(s) summed)\n\nEach repeated document is in the training stream `copies` times (copies 1: the "
         "control group, chosen by the same rule); memorized = all "
      << res["config"]["suffix_len"] << " suffix tokens reproduced.\n\n| copies | k |";
    for (const auto& [name, m] : res["pooled"].items()) o << " " << name << " |";
    o << "\n|---|---|";
    for (size_t i = 0; i < res["pooled"].size(); i++) o << "---|";
    o << "\n";
    for (const auto& row0 : first["prefix_by_copies"]) {
        if (row0["decoding"] != "greedy") continue;
        o << "| " << row0["copies"] << " | " << row0["k"] << " |";
        for (const auto& [name, m] : res["pooled"].items())
            for (const auto& row : m["prefix_by_copies"])
                if (row["copies"] == row0["copies"] && row["k"] == row0["k"] && row["decoding"] == "greedy")
                    o << " " << fmt_rate(row, "memorized", "memorized_rate", "memorized_ci95") << " |";
        o << "\n";
    }
    o << "\nPlot: plots/extraction_vs_copies.svg (the longest k).\n\n";
}

// report.md of a run from its metrics.json object: intro, headline, each
// seed's tables, the pooled table.
std::string markdown(const json& res) {
    std::ostringstream o;
    md_intro(o, res);
    md_headline(o, res);
    md_by_copies(o, res);
    for (const auto& [seed, sj] : res["seeds"].items()) {
        md_seed_models_greedy(o, res["config"], seed, sj);
        md_seed_control_topk(o, res["config"], sj);
        md_seed_untargeted_mia(o, sj);
        md_seed_exposure_verdict(o, sj);
    }
    md_pooled(o, res);
    o << "Plots: plots/*.svg. Per-sample CSVs: prefix_*.csv, untargeted_*.csv; summary: memorisation.csv.\n";
    return o.str();
}

// Which model memorizes more, where, and how sure, in words.
std::string verdict(const ExtractConfig& cfg, const json& models) {
    std::ostringstream o;
    std::vector<std::string> names;
    for (const auto& [n, m] : models.items()) names.push_back(n);
    if (names.size() < 2) return "Only one model: no comparison.";
    const std::string& a = names[0];
    const std::string& b = names[1];
    auto hl = [&](const std::string& n) { return models[n]["heldout_loss"].get<double>(); };
    o << "Held-out loss: " << a << " " << hl(a) << ", " << b << " " << hl(b) << " nats/byte; "
      << (hl(a) < hl(b) ? a : b) << " fits the held-out text better, which by itself predicts more memorization.\n";
    for (int k : cfg.prefix_lengths) {
        const json *ra = nullptr, *rb = nullptr, *ha = nullptr, *hb = nullptr;
        for (const auto& row : models[a]["prefix"])
            if (row["k"] == k && row["decoding"] == "greedy") (row["split"] == "train" ? ra : ha) = &row;
        for (const auto& row : models[b]["prefix"])
            if (row["k"] == k && row["decoding"] == "greedy") (row["split"] == "train" ? rb : hb) = &row;
        if (!ra || !rb) continue;
        double pa = (*ra)["memorized_rate"], pb = (*rb)["memorized_rate"];
        double la = (*ra)["memorized_ci95"][0], ua = (*ra)["memorized_ci95"][1];
        double lb = (*rb)["memorized_ci95"][0], ub = (*rb)["memorized_ci95"][1];
        o << "- k = " << k << ": greedy extraction of training suffixes " << a << " " << pa << " vs " << b << " "
          << pb;
        if (ha && hb) o << " (held-out: " << (*ha)["memorized_rate"] << " vs " << (*hb)["memorized_rate"] << ")";
        if (pa == pb) o << ": equal.";
        else if (ua < lb || ub < la)
            o << ": " << (pa > pb ? a : b) << " memorizes more, and the 95% intervals do not overlap.";
        else
            o << ": " << (pa > pb ? a : b) << " is higher but the 95% intervals overlap: not a sure difference.";
        o << "\n";
    }
    auto best_auc = [&](const std::string& n) {
        double best = 0;
        for (const auto& [x, v] : models[n]["mia"]["attacks"].items()) best = std::max(best, v["auc"].get<double>());
        return best;
    };
    if (models[a]["mia"].contains("skipped"))
        o << "- Membership inference: not run (" << models[a]["mia"]["skipped"].get<std::string>() << ").\n";
    else
        o << "- Membership inference, best AUC: " << a << " " << best_auc(a) << ", " << b << " " << best_auc(b)
          << ".\n";
    auto mean_exp = [&](const std::string& n) {
        double s = 0;
        int c = 0;
        for (const auto& e : models[n]["exposure"]) {
            s += e["exposure"].get<double>();
            c++;
        }
        return c ? s / c : NAN;
    };
    o << "- Canary exposure, mean over all canaries: " << a << " " << mean_exp(a) << ", " << b << " "
      << mean_exp(b) << " bits.";
    return o.str();
}

// What the run accumulates over seeds and models for its summary files:
// memorisation.csv's rows and the two plots' series.
struct RunSummary {
    std::ostringstream csv;
    std::vector<LineSeries> rate_series, exp_series, copies_series;
};

// A trained model's record in metrics.json: files, size and losses (its
// own and its reference's).
json model_record(const TrainedModel& t, const TrainedModel& ref) {
    json m;
    m["packed"] = t.packed;
    m["reference"] = ref.spec.preset;
    m["non_embedding_parameters"] = t.meta.value("non_embedding_parameters", int64_t(0));
    m["epochs"] = t.meta.value("epochs_done", 0);
    m["heldout_loss"] = t.meta["final"]["heldout_loss"];
    m["heldout_bpb"] = t.meta["final"]["heldout_bpb"];
    m["train_loss"] = t.meta["final"]["train_loss"];
    m["reference_heldout_loss"] = ref.meta["final"]["heldout_loss"];
    return m;
}

// The sanity control: the same preset trained on the held-out documents
// only; on the training sequences its greedy rate is generalization.
json control_metrics(const Run& r, const Plan& plan, const TrainedModel& t, const EngineLm& ref, uint64_t seed,
                     const std::vector<uint8_t>& train_stream, const std::vector<uint8_t>& heldout) {
    TrainedModel c = train_model(r, t.spec, seed, heldout, train_stream, "-control");
    EngineLm cl(c.spec.model, c.packed);
    auto crows = prefix_extraction(r, plan, cl, ref, seed);
    json ctl = {{"trained_on", "held-out documents"},
                {"loss_on_training_documents", c.meta["final"]["heldout_loss"]},
                {"prefix", json::array()}};
    for (const auto& row : prefix_metrics(r, plan, crows))
        if (row["split"] == "train" && row["decoding"] == "greedy") ctl["prefix"].push_back(row);
    for (const auto& row : prefix_by_copies(r, plan, crows))
        if (row["decoding"] == "greedy") ctl["prefix_by_copies"].push_back(row);
    return ctl;
}

// One model's prefix rows into memorisation.csv and its greedy rate-vs-k
// series (train, held-out) into the plot.
void add_prefix_summary(RunSummary& sum, const std::string& name, uint64_t seed, const json& m) {
    const std::string sk = std::to_string(seed);
    for (const auto& row : m["prefix"])
        sum.csv << name << ',' << seed << ',' << row["split"].get<std::string>() << ',' << row["k"] << ','
                << row["decoding"].get<std::string>() << ',' << row["n"] << ',' << row["memorized"] << ','
                << csv_num(row["memorized_rate"]) << ',' << csv_num(row["memorized_ci95"][0]) << ','
                << csv_num(row["memorized_ci95"][1]) << ',' << row["bleu_exact"] << ',' << row["bleu_fuzzy"]
                << ',' << row["prompt_rep"] << ',' << csv_num(row["bleu_exact_rate"]) << ','
                << csv_num(row["bleu_fuzzy_rate"]) << ','
                << csv_num(double(row["prompt_rep"].get<int64_t>()) / row["n"].get<double>()) << ','
                << csv_num(m["heldout_loss"].get<double>()) << '\n';
    for (bool train : {true, false}) {
        LineSeries s{name + (train ? " train" : " held-out") + " s" + sk, {}, {}, !train};
        for (const auto& row : m["prefix"])
            if (row["decoding"] == "greedy" && row["split"] == (train ? "train" : "heldout")) {
                s.x.push_back(row["k"].get<double>());
                s.y.push_back(row["memorized_rate"].get<double>());
            }
        sum.rate_series.push_back(s);
    }
    // Greedy extraction of the repeated documents against their copies, at the longest prompt.
    if (m.contains("prefix_by_copies")) {
        LineSeries c{name + " s" + sk, {}, {}, false};
        int kmax = 0;
        for (const auto& row : m["prefix_by_copies"]) kmax = std::max(kmax, row["k"].get<int>());
        for (const auto& row : m["prefix_by_copies"])
            if (row["decoding"] == "greedy" && row["k"] == kmax) {
                c.x.push_back(row["copies"].get<double>());
                c.y.push_back(row["memorized_rate"].get<double>());
            }
        sum.copies_series.push_back(c);
    }
}

// untargeted_<model>-seed<s>.csv: one row per sample, its scores and ratios.
std::string untargeted_csv(const std::vector<UntargetedSample>& un) {
    std::ostringstream o;
    o << "strategy,text,verbatim_50,longest_verbatim,PPL_XL,PPL_S,PPL_Lower,Zlib,ratio_small,ratio_lower,"
         "ratio_zlib,min_window_ppl,min_k_pct\n";
    for (const auto& u : un)
        o << u.strategy << ',' << csv_text(u.text) << ',' << int(u.verbatim) << ',' << u.longest << ','
          << csv_num(u.sc.ppl_xl) << ',' << csv_num(u.sc.ppl_s) << ',' << csv_num(u.sc.ppl_lower) << ','
          << u.sc.zlib << ',' << csv_num(u.sc.ratio_small()) << ',' << csv_num(u.sc.ratio_lower()) << ','
          << csv_num(u.sc.ratio_zlib()) << ',' << csv_num(u.sc.window) << ',' << csv_num(u.sc.min_k) << '\n';
    return o.str();
}

// m["exposure_by_insertions"] from m["exposure"] (per insertion count: n,
// mean exposure in bits, extracted), and its series into the exposure plot.
void add_exposure_by_insertions(RunSummary& sum, const std::string& name, uint64_t seed, json& m) {
    std::map<int, std::vector<const json*>> by;
    for (const auto& e : m["exposure"]) by[e["insertions"].get<int>()].push_back(&e);
    LineSeries es{name + " s" + std::to_string(seed), {}, {}, false};
    for (const auto& [ins, v] : by) {
        double s = 0;
        int ex = 0;
        for (auto* e : v) {
            s += (*e)["exposure"].get<double>();
            ex += (*e)["extracted"].get<bool>();
        }
        m["exposure_by_insertions"][std::to_string(ins)] = {
            {"n", v.size()}, {"mean_exposure", s / double(v.size())}, {"extracted", ex}};
        es.x.push_back(ins);
        es.y.push_back(s / double(v.size()));
    }
    sum.exp_series.push_back(es);
}

// One model's engine outputs on one seed: prefix extraction (and the
// control), untargeted extraction, membership inference and canary
// exposure, with their CSVs and ROC plot; returns its metrics.json record.
json model_outputs(const Run& r, const Plan& plan, const TrainedModel& t, const TrainedModel& ref_model,
                   uint64_t seed, const std::vector<uint8_t>& train_stream, const std::vector<uint8_t>& heldout,
                   const SuffixArray& sa, RunSummary& sum) {
    const ExtractConfig& cfg = r.cfg;
    const std::string& name = t.spec.preset;
    const std::string sk = std::to_string(seed);
    if (cfg.verbose) std::printf("== engine outputs: %s (seed %s)\n", name.c_str(), sk.c_str());
    std::fflush(stdout);
    EngineLm xl(t.spec.model, t.packed), ref(t.spec.model, ref_model.packed);
    json m = model_record(t, ref_model);
    double ts = now_s();
    auto rows = prefix_extraction(r, plan, xl, ref, seed);
    m["seconds"]["prefix"] = now_s() - ts;
    m["prefix"] = prefix_metrics(r, plan, rows);
    if (json by = prefix_by_copies(r, plan, rows); !by.empty()) m["prefix_by_copies"] = by;
    if (cfg.control) m["control"] = control_metrics(r, plan, t, ref, seed, train_stream, heldout);
    write_text_atomic(r.dir + "/prefix_" + name + "-seed" + sk + ".csv", prefix_csv(r, plan, name, seed, rows));
    add_prefix_summary(sum, name, seed, m);
    ts = now_s();
    auto un = untargeted_extraction(r, xl, ref, sa, seed);
    m["seconds"]["untargeted"] = now_s() - ts;
    m["untargeted"] = untargeted_metrics(cfg, un, seed);
    write_text_atomic(r.dir + "/untargeted_" + name + "-seed" + sk + ".csv", untargeted_csv(un));
    ts = now_s();
    MiaResult mia = membership_inference(r, plan, xl, ref);
    m["mia"] = mia.metrics;
    if (mia.metrics.contains("skipped"))
        std::fprintf(stderr, "note: %s (seed %s): membership inference skipped: %s\n", name.c_str(), sk.c_str(),
                     mia.metrics["skipped"].get<std::string>().c_str());
    else
        write_text_atomic(r.dir + "/plots/mia_roc_loglog_" + name + "-seed" + sk + ".svg",
                          svg_roc(mia.rocs, true, name + ": membership ROC, log-log"));
    m["exposure"] = canary_exposure(r, plan, xl);
    m["seconds"]["mia_exposure"] = now_s() - ts;
    add_exposure_by_insertions(sum, name, seed, m);
    return m;
}

// One seed of the run: plan, train the models and references, every
// model's engine outputs, the verdict; returns result["seeds"][seed]
// (t0: the run's start, for the seconds it reports).
json seed_outputs(const Run& r, uint64_t seed, double t0, RunSummary& sum) {
    const ExtractConfig& cfg = r.cfg;
    const std::vector<uint8_t> train_stream = training_stream(r.corpus, seed), heldout = heldout_stream(r.corpus);
    const Plan plan = plan_run(r, seed);
    std::vector<TrainedModel> models;
    std::map<std::string, TrainedModel> refs;
    for (const auto& s : r.specs) models.push_back(train_model(r, s, seed, train_stream, heldout));
    for (const auto& [m, s] : r.refs) refs[m] = train_model(r, s, seed, train_stream, heldout);
    const double t_trained = now_s();
    SuffixArray sa(train_stream);
    json sj;
    sj["plan"] = {{"train_sequences", plan.eligible_train > 0 ? std::min<int64_t>(plan.eligible_train, cfg.n_sequences) : 0},
                  {"heldout_sequences", std::min<int64_t>(plan.eligible_heldout, cfg.n_sequences)},
                  {"eligible_train_documents", plan.eligible_train},
                  {"eligible_heldout_documents", plan.eligible_heldout},
                  {"near_duplicates_excluded", plan.near_duplicates_excluded}};
    for (const auto& t : models)
        sj["models"][t.spec.preset] =
            model_outputs(r, plan, t, refs[t.spec.model], seed, train_stream, heldout, sa, sum);
    sj["verdict"] = verdict(cfg, sj["models"]);
    sj["seconds"] = {{"train", t_trained - t0}, {"total", now_s() - t0}};
    return sj;
}

// The run's summary files: memorisation.csv, the two plots, metrics.json
// and report.md.
void write_outputs(const Run& r, const json& result, const RunSummary& sum) {
    write_text_atomic(r.dir + "/memorisation.csv", sum.csv.str());
    write_text_atomic(r.dir + "/plots/extraction_vs_prefix.svg",
                      svg_lines(sum.rate_series, "greedy extraction rate (all suffix tokens) vs prefix length",
                                "prefix length k (tokens, log2 axis)", "rate", true));
    if (!sum.copies_series.empty())
        write_text_atomic(r.dir + "/plots/extraction_vs_copies.svg",
                          svg_lines(sum.copies_series, "greedy extraction of repeated documents vs copies (longest k)",
                                    "copies in the training stream (log2 axis)", "rate", true));
    if (!r.corpus.canaries.empty())
        write_text_atomic(r.dir + "/plots/exposure_vs_insertions.svg",
                          svg_lines(sum.exp_series, "canary exposure vs insertions", "insertions (log2 axis)",
                                    "mean exposure (bits)", true));
    write_text_atomic(r.dir + "/metrics.json", result.dump(2) + "\n");
    write_text_atomic(r.dir + "/report.md", markdown(result));
}

}  // namespace

json run_extract(const ExtractConfig& cfg_in) {
    g_stats = {};
    Run r;
    r.cfg = cfg_in;
    const double t0 = now_s();
    resolve_run(r);
    json result;
    result["corpus"] = r.resolved["corpus"];
    result["config"] = r.resolved;
    RunSummary sum;
    sum.csv << "model,seed,split,k,decoding,n,memorized,memorized_rate,memorized_lo,memorized_hi,exact,fuzzy,"
               "prompt_rep,exact_rate,fuzzy_rate,prompt_rep_rate,heldout_loss\n";
    for (uint64_t seed : r.cfg.seeds) result["seeds"][std::to_string(seed)] = seed_outputs(r, seed, t0, sum);
    {
        std::vector<std::string> names;
        for (const auto& spec : r.specs) names.push_back(spec.preset);
        result["pooled"] = pool_seeds(result["seeds"], names);
    }
    result["seconds"] = now_s() - t0;
    result["models_trained"] = g_stats.trained;
    result["models_cached"] = g_stats.cached;
    write_outputs(r, result, sum);
    return result;
}

// ---- already-packed models on a user's corpus -------------------------------------

namespace {

const PackedFile& file_of(const EngineLm& m) { return m.kind == "mamba-lm" ? m.mamba.file : m.tf.file; }

// What two models must share to be compared on one tokenized corpus:
// "bytes", or the BPE blob's bytes.
std::string tokenizer_key(const EngineLm& m) {
    if (m.ops.info.tokenizer == MMIA_TOKENIZER_BYTES) return "bytes";
    const MmiaHeader* h = file_of(m).header;
    return std::string(reinterpret_cast<const char*>(file_of(m).bytes) + uint64_t(h->hp[MMIA_LM_HP_BPE_AT]) * 64,
                       size_t(h->hp[MMIA_LM_HP_BPE_BYTES]));
}
std::string tokenizer_desc(const EngineLm& m) {
    if (m.ops.info.tokenizer == MMIA_TOKENIZER_BYTES) return "bytes";
    return "BPE, " + std::to_string(m.ops.info.bpe->vocab) + " tokens";
}

std::string decode_ids(const LmInfo& info, const std::vector<int>& ids) {
    BpeBytes b = {nullptr, 0, 0};
    char err[256];
    if (lm_decode_text(&info, ids.data(), int(ids.size()), &b, err, sizeof err) != 0) {
        free(b.bytes);
        throw std::runtime_error(std::string("decoding: ") + err);
    }
    std::string s(reinterpret_cast<const char*>(b.bytes), b.n);
    free(b.bytes);
    return s;
}

// The run directory of --models/--text: --run-dir, or runs/extract-text-<stem of
// --text>-seed<seed>; checked (not created) so a bad one is said before any work.
std::string models_run_dir(const ExtractConfig& cfg, uint64_t seed) {
    std::string stem = fs::path(cfg.text).filename().string();
    for (const char* ext : {".zst", ".jsonl", ".json", ".txt"})
        if (stem.size() > strlen(ext) && stem.compare(stem.size() - strlen(ext), strlen(ext), ext) == 0)
            stem.resize(stem.size() - strlen(ext));
    const std::string dir = cfg.run_dir.empty() ? "runs/extract-text-" + stem + "-seed" + std::to_string(seed) : cfg.run_dir;
    check_output_dir(dir);
    return dir;
}

// Opens --models as engine LMs; throws on a file that is not a language model,
// a BPE model without its tokenizer, or two models with different tokenizers.
std::vector<std::unique_ptr<EngineLm>> open_given_models(const ExtractConfig& cfg) {
    std::vector<std::unique_ptr<EngineLm>> models;
    for (const std::string& path : cfg.models) {
        PackedFile pf;
        char err[512];
        if (packed_open(&pf, path.c_str(), err, sizeof err) != 0) throw std::runtime_error(path + ": " + err);
        const uint32_t kind = pf.header->kind;
        packed_close(&pf);
        if (kind != MMIA_KIND_MAMBA_LM && kind != MMIA_KIND_TRANSFORMER_LM)
            throw std::runtime_error(path + ": model kind " + std::to_string(kind) +
                                     " is not a language model (--models takes kinds 3 and 4, the files ./mamba and "
                                     "./transformer run as language models)");
        models.push_back(std::make_unique<EngineLm>(kind == MMIA_KIND_MAMBA_LM ? "mamba-lm" : "transformer-lm", path));
        const LmInfo& info = models.back()->ops.info;
        if (info.tokenizer == MMIA_TOKENIZER_BPE && !info.bpe)
            throw std::runtime_error(path + ": the model's tokenizer is BPE but the file carries none (imported without "
                                     "tokenizer.json): a text corpus needs it");
    }
    for (size_t i = 1; i < models.size(); i++)
        if (tokenizer_key(*models[i]) != tokenizer_key(*models[0]))
            throw std::runtime_error("--models: " + cfg.models[0] + " (" + tokenizer_desc(*models[0]) + ") and " +
                                     cfg.models[i] + " (" + tokenizer_desc(*models[i]) +
                                     ") have different tokenizers: one corpus would be different token sequences "
                                     "for each (compare models that share a tokenizer)");
    return models;
}

// The --text corpus as token sequences: every document's first `need` tokens
// (kmax prefix + suffix), the eligible ones and the seeded pick among them.
struct TextSequences {
    std::vector<std::string> docs;
    std::vector<std::vector<int>> tokens;  // [document], empty when too short
    std::vector<int64_t> eligible, picked;  // document indices
    int kmax = 0, need = 0;
};

// Loads and tokenizes --text for the models; throws when a transformer's
// context is shorter than `need`, on an encoding error, or when no document is long enough.
TextSequences text_sequences(const ExtractConfig& cfg, const std::vector<std::unique_ptr<EngineLm>>& models,
                             uint64_t seed) {
    const LmInfo& info = models[0]->ops.info;
    TextSequences ts;
    ts.docs = load_text_documents(cfg.text);
    ts.kmax = *std::max_element(cfg.prefix_lengths.begin(), cfg.prefix_lengths.end());
    ts.need = ts.kmax + cfg.suffix_len;
    const int need = ts.need;
    for (size_t i = 0; i < models.size(); i++)
        if (models[i]->kind == "transformer-lm" && need > models[i]->ops.info.context)
            throw std::runtime_error("--prefix-lengths: the longest prefix + the " + std::to_string(cfg.suffix_len) +
                                     "-token suffix = " + std::to_string(need) + " tokens, more than " + cfg.models[i] +
                                     "'s context of " + std::to_string(models[i]->ops.info.context));
    // tokenize: the first `need` tokens of every document that has them
    ts.tokens.resize(ts.docs.size());
    size_t longest = 0;
    for (size_t d = 0; d < ts.docs.size(); d++) {
        BpeIds ids = {nullptr, 0, 0};
        char err[256];
        if (lm_encode_text(&info, ts.docs[d].data(), ts.docs[d].size(), &ids, err, sizeof err) != 0) {
            free(ids.ids);
            throw std::runtime_error(cfg.text + ": document " + std::to_string(d + 1) + ": " + err);
        }
        longest = std::max(longest, ids.n);
        if (ids.n >= size_t(need)) {
            ts.tokens[d].assign(ids.ids, ids.ids + need);
            ts.eligible.push_back(int64_t(d));
        }
        free(ids.ids);
    }
    if (ts.eligible.empty())
        throw std::runtime_error(cfg.text + ": no document has " + std::to_string(need) +
                                 " tokens (the longest prefix length + the suffix length; the longest document has " +
                                 std::to_string(longest) + ")");
    ts.picked = seeded_pick(ts.eligible, size_t(cfg.n_sequences), mix_seed(seed, 20));
    return ts;
}

// One greedy continuation: model, picked sequence, prefix length k, and how it matches the suffix.
struct GivenRow {
    size_t model = 0, seq = 0;
    int k = 0;
    std::vector<int> generated;
    bool exact = false;
    int match_len = 0;
    double mem_score = 0;
};

// Greedy generation of every (model, sequence, k), in parallel; throws
// "generation: ..." with the first engine error.
std::vector<GivenRow> given_prefix_extraction(const ExtractConfig& cfg,
                                               const std::vector<std::unique_ptr<EngineLm>>& models,
                                               const TextSequences& ts) {
    const int kmax = ts.kmax;
    std::vector<GivenRow> rows;
    for (size_t m = 0; m < models.size(); m++)
        for (size_t q = 0; q < ts.picked.size(); q++)
            for (int k : cfg.prefix_lengths) rows.push_back(GivenRow{m, q, k, {}, false, 0, 0});
    int failed = 0;
    std::string first_err;
#pragma omp parallel for schedule(dynamic, 4)
    for (int64_t i = 0; i < int64_t(rows.size()); i++) {
        GivenRow& row = rows[size_t(i)];
        const std::vector<int>& t = ts.tokens[size_t(ts.picked[row.seq])];
        std::vector<int> out(size_t(cfg.suffix_len));
        const LmSampler greedy{0.0f, 0, 1.0};
        int n_out = 0;
        char err[512];
        if (lm_generate(&models[row.model]->ops, t.data() + (kmax - row.k), row.k, cfg.suffix_len, &greedy, 0,
                        out.data(), &n_out, err, sizeof err) != 0) {
#pragma omp critical(extract_models_err)
            {
                if (!failed) first_err = cfg.models[row.model] + ": " + err;
                failed = 1;
            }
            continue;
        }
        out.resize(size_t(n_out));
        const std::vector<int> suffix(t.begin() + kmax, t.end());
        row.generated = out;
        row.exact = suffix_exact_match(out, suffix);
        row.match_len = matching_prefix_length(out, suffix);
        row.mem_score = memorization_score(out, suffix);
    }
    if (failed) throw std::runtime_error("generation: " + first_err);
    return rows;
}

// Model m's prefix metrics per k (n, exact, rate, ci95, mean match length and memorization score).
json given_prefix_metrics(const ExtractConfig& cfg, const std::vector<GivenRow>& rows, size_t m) {
    json per_k = json::object();
    for (int k : cfg.prefix_lengths) {
        int64_t n = 0, exact = 0;
        double match = 0, mem = 0;
        for (const GivenRow& row : rows)
            if (row.model == m && row.k == k) {
                n++;
                exact += row.exact;
                match += row.match_len;
                mem += row.mem_score;
            }
        const auto ci = wilson_interval(exact, n);
        per_k[std::to_string(k)] = {{"n", n},
                                    {"exact", exact},
                                    {"rate", double(exact) / double(n)},
                                    {"ci95", {ci.first, ci.second}},
                                    {"mean_match_len", match / double(n)},
                                    {"mean_mem_score", mem / double(n)}};
    }
    return per_k;
}

// prefix.csv: one line per generation, with the prompt, the true suffix and the generated text decoded.
std::string given_prefix_csv(const ExtractConfig& cfg, const LmInfo& info, const TextSequences& ts,
                             const std::vector<GivenRow>& rows) {
    const int kmax = ts.kmax;
    std::string prefix_csv = "model,sequence,document,k,exact,match_len,mem_score,prompt,suffix,generated\n";
    for (const GivenRow& row : rows) {
        const std::vector<int>& t = ts.tokens[size_t(ts.picked[row.seq])];
        prefix_csv += csv_text(cfg.models[row.model]) + "," + std::to_string(row.seq) + "," +
                      std::to_string(ts.picked[row.seq] + 1) + "," + std::to_string(row.k) + "," + (row.exact ? "1" : "0") +
                      "," + std::to_string(row.match_len) + "," + csv_num(row.mem_score) + "," +
                      csv_text(decode_ids(info, std::vector<int>(t.begin() + (kmax - row.k), t.begin() + kmax))) + "," +
                      csv_text(decode_ids(info, std::vector<int>(t.begin() + kmax, t.end()))) + "," +
                      csv_text(decode_ids(info, row.generated)) + "\n";
    }
    return prefix_csv;
}

// report.md of a --models/--text run, from its metrics (res) and the sampling counts.
std::string given_models_markdown(const ExtractConfig& cfg, const json& res, const TextSequences& ts, uint64_t seed) {
    std::string md = "# Prefix extraction on " + cfg.text + "\n\n" + std::to_string(ts.picked.size()) + " sequences of " +
                     std::to_string(ts.need) + " tokens, a seeded sample (seed " + std::to_string(seed) + ") of the " +
                     std::to_string(ts.eligible.size()) + " of " + std::to_string(ts.docs.size()) +
                     " documents long enough (their first tokens), greedy continuation of " +
                     std::to_string(cfg.suffix_len) + " tokens after a prefix of k tokens; exact = all of them equal "
                     "the document's.\n\n| model | tokenizer | k | exact | rate | 95% CI | mean matching prefix |\n|---|---|---|---|---|---|---|\n";
    for (const json& m : res["models"])
        for (int k : cfg.prefix_lengths) {
            const json& e = m["prefix"][std::to_string(k)];
            md += "| " + m["path"].get<std::string>() + " | " + m["tokenizer"].get<std::string>() + " | " + std::to_string(k) +
                  " | " + std::to_string(e["exact"].get<int64_t>()) + " / " + std::to_string(e["n"].get<int64_t>()) + " | " +
                  g4(e["rate"]) + " | [" + g4(e["ci95"][0]) + ", " + g4(e["ci95"][1]) + "] | " + g4(e["mean_match_len"]) + " |\n";
        }
    md += "\nMean loss per predicted token (nats) over the whole sequences:";
    for (const json& m : res["models"]) md += " " + m["path"].get<std::string>() + " " + g4(m["mean_loss"]) + ";";
    md += "\n";
    return md;
}

}  // namespace

json run_extract_models(const ExtractConfig& cfg) {
    if (cfg.models.empty()) throw std::runtime_error("--models: give at least one packed language model");
    if (cfg.text.empty())
        throw std::runtime_error("--models needs --text CORPUS (plain text or JSON lines with a \"text\" field, optionally .zst)");
    if (cfg.prefix_lengths.empty()) throw std::runtime_error("--prefix-lengths: give at least one");
    // One seed picks the sequences (extract_main refuses several).
    const uint64_t seed = cfg.seeds.empty() ? 42 : cfg.seeds[0];
    const std::string dir = models_run_dir(cfg, seed);
    const std::vector<std::unique_ptr<EngineLm>> models = open_given_models(cfg);
    const LmInfo& info = models[0]->ops.info;
    const TextSequences ts = text_sequences(cfg, models, seed);
    const std::vector<GivenRow> rows = given_prefix_extraction(cfg, models, ts);

    std::vector<std::vector<int>> seqs;
    for (int64_t d : ts.picked) seqs.push_back(ts.tokens[size_t(d)]);
    std::vector<std::vector<std::vector<double>>> lp;  // [model][seq][token]
    for (const auto& m : models) lp.push_back(engine_logprobs(m->ops, seqs));

    json res = {{"mode", "models"},
                {"text", cfg.text},
                {"documents", ts.docs.size()},
                {"eligible_documents", ts.eligible.size()},
                {"sequences", ts.picked.size()},
                {"suffix_len", cfg.suffix_len},
                {"prefix_lengths", cfg.prefix_lengths},
                {"seed", seed},
                {"models", json::array()}};
    std::string scores_csv = "model,sequence,document,tokens,loss,perplexity,zlib_bytes,min_k_20\n";
    for (size_t m = 0; m < models.size(); m++) {
        double loss_sum = 0;
        for (size_t q = 0; q < ts.picked.size(); q++) {
            const double loss = -std::accumulate(lp[m][q].begin(), lp[m][q].end(), 0.0) / double(lp[m][q].size());
            loss_sum += loss;
            scores_csv += csv_text(cfg.models[m]) + "," + std::to_string(q) + "," + std::to_string(ts.picked[q] + 1) + "," +
                          std::to_string(seqs[q].size()) + "," + csv_num(loss) + "," + csv_num(perplexity(lp[m][q])) + "," +
                          std::to_string(zlib_bytes(decode_ids(info, seqs[q]))) + "," + csv_num(min_k_percent(lp[m][q], 0.2)) + "\n";
        }
        res["models"].push_back({{"path", cfg.models[m]},
                                 {"kind", models[m]->kind},
                                 {"tokenizer", tokenizer_desc(*models[m])},
                                 {"prefix", given_prefix_metrics(cfg, rows, m)},
                                 {"mean_loss", loss_sum / double(ts.picked.size())}});
    }
    create_output_dir(dir);
    write_text_atomic(dir + "/prefix.csv", given_prefix_csv(cfg, info, ts, rows));
    write_text_atomic(dir + "/scores.csv", scores_csv);
    write_text_atomic(dir + "/metrics.json", res.dump(2) + "\n");
    write_text_atomic(dir + "/report.md", given_models_markdown(cfg, res, ts, seed));
    res["run_dir"] = dir;
    return res;
}

}  // namespace mmia

// ---- the run as scheduler jobs (bin/extract --plan, --job) -----------------------

namespace mmia {

json read_extract_plan(const std::string& dir) { return read_plan_file(dir, "bin/extract", kExtractPlanVersion); }

json plan_extract(const ExtractConfig& cfg_in, const PlanRecord& rec, const std::vector<std::string>& emit, int slots) {
    g_stats = {};
    for (const std::string& e : emit)  // before anything is written
        if (e != "parallel" && e != "slurm" && e != "sge")
            throw std::runtime_error("--emit: unknown scheduler '" + e + "' (parallel, slurm, sge)");
    Run r;
    r.cfg = cfg_in;
    resolve_run(r);
    const std::string dir = fs::canonical(r.dir).string();
    const int threads = r.resolved.at("threads").get<int>();
    std::vector<std::string> score = {rec.program};
    score.insert(score.end(), rec.args.begin(), rec.args.end());
    score.insert(score.end(), {"--run-dir", dir});
    const std::string score_command = "cd " + shell_word(rec.cwd) + " && " + shell_command(score);
    json jobs = {{"plan_version", kExtractPlanVersion},
                 {"planner", "bin/extract --plan"},
                 {"docs", "docs/EXTRACTION.md, \"The run as scheduler jobs\""},
                 {"run_dir", dir},
                 {"program", rec.program},
                 {"threads", threads},
                 {"final_step", "score"},  // attack/jobs.h's emitters: score.sbatch, score.sge, mmia-score
                 {"score_command", score_command},
                 {"jobs", json::array()}};
    std::string txt;
    for (const ExtractJob& j : extract_jobs(r)) {
        const int64_t id = int64_t(jobs["jobs"].size());
        const std::string base = dir + "/models/" + j.spec.preset + j.tag + "-seed" + std::to_string(j.seed);
        const std::string command = shell_command({rec.program, "--run-dir", dir, "--job", std::to_string(id)});
        jobs["jobs"].push_back({{"id", id},
                                {"preset", j.spec.preset},
                                {"tag", j.tag},
                                {"seed", j.seed},
                                {"checkpoint", base + ".pt"},
                                {"packed", base + ".bin"},
                                {"command", command}});
        txt += command + "\n";
    }
    write_text_atomic(dir + "/jobs.json", jobs.dump(2) + "\n");
    write_text_atomic(dir + "/jobs.txt", txt);
    write_plan_file(dir, kExtractPlanVersion, rec, threads, jobs["jobs"].size(), json::object());
    if (r.cfg.verbose)
        std::printf("plan: %zu training jobs (%d thread(s) each) -> %s/jobs.txt\n", jobs["jobs"].size(), threads,
                    dir.c_str());
    for (const std::string& path : remove_unemitted_scheduler_files(dir, jobs, emit))
        if (r.cfg.verbose) std::printf("removed (not emitted this time): %s\n", path.c_str());
    for (const std::string& e : emit)
        for (const std::string& path : emit_scheduler_files(dir, jobs, e, slots, threads))
            if (r.cfg.verbose) std::printf("%s: %s\n", e.c_str(), path.c_str());
    if (r.cfg.verbose) std::printf("then the scoring run: %s\n", score_command.c_str());
    return jobs;
}

bool run_extract_job(const ExtractConfig& cfg_in, int64_t id) {
    g_stats = {};
    const std::string dir = cfg_in.run_dir;
    read_extract_plan(dir);
    std::ifstream f(dir + "/jobs.json");
    const json jobs = json::parse(f, nullptr, /*allow_exceptions=*/false);
    if (!f.is_open() || !jobs.is_object() || !jobs.contains("jobs") || !jobs["jobs"].is_array())
        throw std::runtime_error(dir + "/jobs.json: missing or not valid JSON (write the plan again with bin/extract "
                                       "--plan)");
    const int64_t n = int64_t(jobs["jobs"].size());
    if (id < 0 || id >= n)
        throw std::runtime_error("--job " + std::to_string(id) + ": the plan in " + dir + " has jobs 0 to " +
                                 std::to_string(n - 1));
    const json& e = jobs["jobs"][size_t(id)];
    const std::string what = "job " + std::to_string(id) + ": " + e.value("preset", "") + e.value("tag", "") +
                             " seed " + std::to_string(e.value("seed", uint64_t(0)));
    {
        // A complete model needs no corpus: say so before loading it.
        const std::string packed = e.value("packed", "");
        const std::string base = packed.size() > 4 ? packed.substr(0, packed.size() - 4) : "";
        if (!base.empty() && regular_file_exists(base + ".lock")) {
            ModelLock lock(base + ".lock");
            if (model_complete(base)) {
                std::printf("%s: already complete\n", what.c_str());
                return false;
            }
        }
    }
    Run r;
    r.cfg = cfg_in;
    resolve_run(r);
    const std::vector<ExtractJob> all = extract_jobs(r);
    // The model this bin/extract derives from the plan's arguments must be
    // the one the plan listed (another version could number them otherwise).
    if (int64_t(all.size()) != n || e.value("preset", "") != all[size_t(id)].spec.preset ||
        e.value("tag", "") != all[size_t(id)].tag || e.value("seed", uint64_t(0)) != all[size_t(id)].seed)
        throw std::runtime_error(dir + "/jobs.json: job " + std::to_string(id) +
                                 " is not the model this bin/extract plans from the run's arguments (a plan from "
                                 "another version?); write the plan again with this bin/extract --plan");
    const ExtractJob& j = all[size_t(id)];
    const std::vector<uint8_t> train_stream = training_stream(r.corpus, j.seed), heldout = heldout_stream(r.corpus);
    bool skipped = false;
    if (j.tag == "-control")
        train_model(r, j.spec, j.seed, heldout, train_stream, j.tag, &skipped);
    else
        train_model(r, j.spec, j.seed, train_stream, heldout, j.tag, &skipped);
    std::printf("%s: %s\n", what.c_str(), skipped ? "already complete" : "trained");
    return !skipped;
}

}  // namespace mmia
