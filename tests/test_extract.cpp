// test_extract.cpp: bin/extract (attack/extract.h).
//   - the Wilson interval against hand-worked values
//   - CSV fields: RFC 4180 quoting and the escape of control bytes, read back
//   - prompt repetition, ASCII lowercasing
//   - the verbatim flags (SuffixArray) against a brute-force search
//   - the `memorized` column on a verbatim continuation whose text has
//     multi-byte UTF-8 (seed 003 compared a character slice with a token
//     count, so such a row was 0)
//   - a whole run on a fixture corpus written here with tiny presets: the
//     CSV's seed 003 columns, every row's memorized / verbatim flag
//     recomputed from the CSV text by brute force, held-out random text
//     extracted at rate 0, metrics in range, and a re-run trains nothing
//
// LibTorch before doctest: glog (pulled in by c10) defines CHECK too.
#include <torch/torch.h>

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "attack/extract.h"
#include "attack/lm_scores.h"
#include "common/corpus.h"
#include "engine/mamba_lm.h"
#include "tests/cli_check.h"
#include "tests/temp_dir.h"
#include "train/checkpoint.h"

using namespace mmia;

namespace {

// RFC 4180 reader for one CSV file (quoted fields, "" inside quotes).
std::vector<std::vector<std::string>> read_csv(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string s = ss.str();
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> row;
    std::string field;
    bool quoted = false;
    for (size_t i = 0; i < s.size(); i++) {
        char c = s[i];
        if (quoted) {
            if (c == '"' && i + 1 < s.size() && s[i + 1] == '"') {
                field += '"';
                i++;
            } else if (c == '"') {
                quoted = false;
            } else {
                field += c;
            }
        } else if (c == '"') {
            quoted = true;
        } else if (c == ',') {
            row.push_back(field);
            field.clear();
        } else if (c == '\n') {
            row.push_back(field);
            field.clear();
            rows.push_back(row);
            row.clear();
        } else {
            field += c;
        }
    }
    return rows;
}

// The inverse of csv_text's escapes (docs/EXTRACTION.md).
std::string unescape(const std::string& s) {
    std::string out;
    for (size_t i = 0; i < s.size(); i++) {
        if (s[i] != '\\') {
            out += s[i];
            continue;
        }
        char n = s[++i];
        if (n == '\\') out += '\\';
        else if (n == 'n') out += '\n';
        else if (n == 't') out += '\t';
        else if (n == 'r') out += '\r';
        else if (n == 'x') {
            out += char(std::stoi(s.substr(i + 1, 2), nullptr, 16));
            i += 2;
        } else FAIL("bad escape");
    }
    return out;
}

int col(const std::vector<std::string>& header, const std::string& name) {
    for (size_t i = 0; i < header.size(); i++)
        if (header[i] == name) return int(i);
    FAIL("no column " << name);
    return -1;
}

bool brute_verbatim(const std::string& stream, const std::string& sample, size_t n) {
    if (sample.size() < n) return false;
    for (size_t i = 0; i + n <= sample.size(); i++)
        if (stream.find(sample.substr(i, n)) != std::string::npos) return true;
    return false;
}

std::string random_text(std::mt19937_64& rng, size_t n) {
    std::string s;
    for (size_t i = 0; i < n; i++) s += char('a' + rng() % 26);
    return s;
}

}  // namespace

TEST_CASE("wilson_interval: hand-worked values") {
    // k = 5, n = 10, z = 1.96: p = 0.5, z^2 = 3.8416; denom = 1.38416;
    // centre = (0.5 + 0.19208) / 1.38416 = 0.5; half = 1.96 sqrt(0.025 +
    // 0.009604) / 1.38416 = 1.96 * 0.186022 / 1.38416 = 0.263413.
    auto [lo, hi] = wilson_interval(5, 10, 1.96);
    CHECK(lo == doctest::Approx(0.236587).epsilon(1e-5));
    CHECK(hi == doctest::Approx(0.763413).epsilon(1e-5));
    // k = 0, n = 20: lower 0, upper z^2/n / (1 + z^2/n) = 0.19208/1.19208 = 0.161130
    auto [lo0, hi0] = wilson_interval(0, 20, 1.96);
    CHECK(lo0 == 0.0);
    CHECK(hi0 == doctest::Approx(0.161130).epsilon(1e-5));
    auto [lon, hin] = wilson_interval(20, 20, 1.96);
    CHECK(lon == doctest::Approx(1 - 0.161130).epsilon(1e-5));
    CHECK(hin == 1.0);
    auto [le, he] = wilson_interval(0, 0);
    CHECK(le == 0.0);
    CHECK(he == 1.0);
}

TEST_CASE("pool_seeds: counts summed with Wilson intervals, spreads over seeds, by hand") {
    // Two seeds of one model. Prefix row (greedy, train, k 8): 3/10 and
    // 2/10 -> 5/20 = 0.25; Wilson(5, 20) = [0.111862, 0.468701] (z 1.959964:
    // centre (0.25 + 0.096036) / 1.192073 = 0.290281, half 1.959964 *
    // sqrt(0.009375 + 0.0024010) / 1.192073 = 0.178419).
    // AUCs: loss 0.6 / 0.8, zlib 0.7 / 0.5 -> loss mean 0.7 [0.6, 0.8];
    // best per seed 0.7 and 0.8 -> mean 0.75 [0.7, 0.8]. Exposure at x4:
    // 3 and 5 bits -> mean 4 [3, 5]; extracted 0 + 1 = 1 of 2 + 2 = 4.
    auto model = [](int mem, double loss_auc, double zlib_auc, double tpr, double expo, int extracted, double hl) {
        return json{{"heldout_loss", hl},
                     {"prefix", {{{"split", "train"}, {"k", 8}, {"decoding", "greedy"}, {"n", 10}, {"memorized", mem},
                                  {"bleu_exact", mem + 1}, {"bleu_fuzzy", mem + 2}}}},
                     {"mia", {{"attacks", {{"loss", {{"auc", loss_auc}, {"tpr_at_1pct_fpr", tpr}}},
                                          {"zlib", {{"auc", zlib_auc}, {"tpr_at_1pct_fpr", 0.0}}}}}}},
                     {"exposure_by_insertions", {{"4", {{"n", 2}, {"mean_exposure", expo}, {"extracted", extracted}}}}}};
    };
    json seeds = {{"1", {{"models", {{"m", model(3, 0.6, 0.7, 0.02, 3.0, 0, 1.5)}}}}},
                  {"2", {{"models", {{"m", model(2, 0.8, 0.5, 0.04, 5.0, 1, 2.5)}}}}}};
    json p = pool_seeds(seeds, {"m"})["m"];
    CHECK(p["seeds"] == 2);
    const json& row = p["prefix"][0];
    CHECK(row["n"] == 20);
    CHECK(row["memorized"] == 5);
    CHECK(row["memorized_rate"].get<double>() == 0.25);
    CHECK(row["memorized_ci95"][0].get<double>() == doctest::Approx(0.111862).epsilon(1e-5));
    CHECK(row["memorized_ci95"][1].get<double>() == doctest::Approx(0.468701).epsilon(1e-5));
    CHECK(row["bleu_exact"] == 7);   // 4 + 3
    CHECK(row["bleu_fuzzy"] == 9);   // 5 + 4
    CHECK(row["bleu_fuzzy_rate"].get<double>() == 0.45);
    CHECK(p["heldout_loss"]["mean"].get<double>() == 2.0);
    CHECK(p["mean_heldout_loss"].get<double>() == 2.0);
    CHECK(p["heldout_loss"]["per_seed"] == json({1.5, 2.5}));
    CHECK(p["mia"]["loss"]["auc"]["mean"].get<double>() == doctest::Approx(0.7));
    CHECK(p["mia"]["loss"]["auc"]["min"].get<double>() == 0.6);
    CHECK(p["mia"]["loss"]["auc"]["max"].get<double>() == 0.8);
    CHECK(p["mia"]["zlib"]["auc"]["mean"].get<double>() == doctest::Approx(0.6));
    CHECK(p["mia"]["loss"]["tpr_at_1pct_fpr"]["mean"].get<double>() == doctest::Approx(0.03));
    CHECK(p["best_mia_auc"]["per_seed"] == json({0.7, 0.8}));
    CHECK(p["best_mia_auc"]["mean"].get<double>() == doctest::Approx(0.75));
    const json& e = p["exposure_by_insertions"]["4"];
    CHECK(e["mean_exposure"]["mean"].get<double>() == 4.0);
    CHECK(e["mean_exposure"]["min"].get<double>() == 3.0);
    CHECK(e["extracted"] == 1);
    CHECK(e["n"] == 4);
    CHECK_THROWS_WITH_AS(pool_seeds(seeds, {"other"}), "pool_seeds: seed 1 has no model other", std::runtime_error);
}

TEST_CASE("csv_text: quoted, quotes doubled, control bytes escaped, one line") {
    CHECK(csv_text("plain") == "\"plain\"");
    CHECK(csv_text("a,\"b\"") == "\"a,\"\"b\"\"\"");
    CHECK(csv_text(std::string("x\ny\t\r\\z\x01\x7f", 9) + std::string(1, '\0')) ==
          "\"x\\ny\\t\\r\\\\z\\x01\\x7f\\x00\"");
    CHECK(csv_text("caf\xc3\xa9") == "\"caf\xc3\xa9\"");  // UTF-8 passes unchanged
    CHECK(csv_num(0.1) == "0.10000000000000001");
    CHECK(csv_num(NAN) == "nan");
    // every byte value round-trips through the escape
    std::string all;
    for (int b = 0; b < 256; b++) all += char(b);
    std::string f = csv_text(all);
    CHECK(f.find('\n') == std::string::npos);
    std::string inner = f.substr(1, f.size() - 2), unq;
    for (size_t i = 0; i < inner.size(); i++) {
        unq += inner[i];
        if (inner[i] == '"') i++;  // "" -> "
    }
    CHECK(unescape(unq) == all);
}

TEST_CASE("prompt repetition and lowercasing") {
    CHECK(prompt_repetition("abc the cat sat", "the cat"));
    CHECK_FALSE(prompt_repetition("abc the ca", "the cat"));
    CHECK(ascii_lower("AbC \xc3\x89Z") == "abc \xc3\x89z");  // only ASCII letters change
}

TEST_CASE("verbatim_flags agree with brute force") {
    std::mt19937_64 rng(7);
    std::string stream = random_text(rng, 3000);
    std::vector<std::string> samples;
    for (int i = 0; i < 40; i++) {
        std::string s = random_text(rng, 120);
        if (i % 3 == 0) s.replace(size_t(i), 50, stream.substr(size_t(37 * i), 50));  // exactly 50 verbatim
        if (i % 5 == 0) s.replace(10, 49, stream.substr(1000, 49));                     // 49: not enough
        samples.push_back(s);
    }
    samples.push_back(stream.substr(5, 49));  // shorter than the window
    std::vector<uint8_t> bytes(stream.begin(), stream.end());
    auto flags = verbatim_flags(bytes, samples, 50);
    int n_true = 0;
    for (size_t i = 0; i < samples.size(); i++) {
        CHECK(flags[i] == brute_verbatim(stream, samples[i], 50));
        n_true += flags[i];
    }
    // the 14 planted (i % 3 == 0) but for i = 0, 15, 30, which the 49-byte plant cuts
    CHECK(n_true >= 11);
}

TEST_CASE("memorized is computed on tokens: a verbatim multi-byte continuation is 1") {
    // 50 tokens (bytes) of which many belong to 2-byte characters: 25 'é'.
    std::string suffix;
    for (int i = 0; i < 25; i++) suffix += "\xc3\xa9";
    std::vector<int> s, g;
    for (unsigned char c : suffix) s.push_back(c);
    g = s;
    CHECK(s.size() == 50);
    CHECK(suffix_exact_match(g, s));
    // seed 003's rule: text[:n_tokens] of the decoded generation compared with
    // the reference text; in characters that is 50 chars of a 25-char text,
    // so its slice never equalled a multi-byte reference in its own units.
    CHECK(first_chars(suffix, 50) == suffix);
    g[49] ^= 1;
    CHECK_FALSE(suffix_exact_match(g, s));
}

// A fixture corpus: training documents of random words (some 4 copies) and
// four of one repeated letter, held-out documents of random letters
// (unpredictable), one canary.
static std::string write_fixture_corpus(const std::string& dir) {
    std::mt19937_64 rng(3);
    Corpus c;
    c.name = "fixture";
    const char* words[] = {"the", "cat", "sat", "on", "mat", "a", "dog", "ran", "in", "park"};
    for (int i = 0; i < 24; i++) {
        CorpusDocument d;
        d.id = i;
        d.source = "test:" + std::to_string(i);
        d.train = i < 16;
        d.copies = d.train && i % 2 == 0 ? 4 : 1;
        if (d.train && i >= 12) {
            // a predictable document, 4 copies each: a tiny model learns it in
            // a few steps, so some greedy rows are verbatim continuations
            d.text = std::string(size_t(140 + i), 'x');
            d.copies = 4;
        } else if (d.train) {
            std::string t;
            while (t.size() < 140) t += std::string(words[rng() % 10]) + " ";
            d.text = t;
        } else {
            d.text = random_text(rng, 140);
        }
        c.docs.push_back(d);
    }
    Canary k;
    k.id = 0;
    k.secret = "1 2 3 4 5 6 7 8 9";
    k.text = std::string(kCanaryPrefix) + k.secret;
    k.insertions = 1;
    k.doc_ids = {1};
    k.offsets = {int64_t(c.docs[1].text.size())};
    c.docs[1].text += k.text;
    c.canaries.push_back(k);
    c.manifest = {{"name", "fixture"}, {"n_documents", c.docs.size()}, {"packages", json::array()}};
    write_corpus(c, dir);
    return dir;
}

static void write_tiny_config(const std::string& path) {
    json mamba = {{"model", "mamba-lm"}, {"d_model", 16}, {"n_layers", 1}, {"d_state", 4}, {"d_conv", 4},
                  {"expand", 2}, {"dt_rank", "auto"}, {"dt_min", 0.001}, {"dt_max", 0.1},
                  {"dt_init_floor", 0.0001}, {"norm_eps", 1e-5}, {"context", 96}};
    json tf = {{"model", "transformer-lm"}, {"d_model", 16}, {"n_layers", 1}, {"n_heads", 2}, {"d_ff", 32},
               {"rotary_pct", 0.5}, {"rotary_base", 10000}, {"norm_eps", 1e-5}, {"parallel_residual", true},
               {"init_std", 0.02}, {"context", 96}};
    json cfg = {{"training",
                 {{"batch_size", 8}, {"epochs", 1}, {"learning_rate", 0.01}, {"weight_decay", 0.0},
                  {"lr_schedule", "constant"}, {"save_dir", "checkpoints"}, {"seed", 1}}},
                {"default_preset", json::object()},
                {"presets",
                 {{"tiny-mamba", mamba}, {"tiny-transformer", tf}, {"mamba-lm-ref", mamba},
                  {"transformer-lm-ref", tf}}}};
    std::ofstream(path) << cfg.dump(2);
}

TEST_CASE("run_extract on a fixture corpus: CSV columns, flags recomputed, held-out 0, re-run trains nothing") {
    TempDir tmp("mmia_extract");
    write_fixture_corpus(tmp.file("corpus"));
    write_tiny_config(tmp.file("config.json"));
    ExtractConfig cfg;
    cfg.corpus = tmp.file("corpus");
    cfg.config_path = tmp.file("config.json");
    cfg.presets = {"tiny-mamba", "tiny-transformer"};
    cfg.seeds = {5};
    cfg.prefix_lengths = {8, 16};
    cfg.suffix_len = 50;
    cfg.n_sequences = 6;
    cfg.samples = 1;
    cfg.untargeted = 8;
    cfg.untargeted_len = 90;
    cfg.candidates = 50;
    cfg.mia_docs = 8;
    cfg.threads = 2;
    cfg.run_dir = tmp.file("run");
    cfg.verbose = false;
    cfg.control = true;
    json res = run_extract(cfg);
    CHECK(last_extract_run_stats().trained == 6);  // two models, two references, two controls
    CHECK(last_extract_run_stats().cached == 0);

    Corpus corpus = load_corpus(cfg.corpus);
    std::vector<uint8_t> st = training_stream(corpus, 5);
    const std::string stream(st.begin(), st.end());

    for (const std::string m : {"tiny-mamba", "tiny-transformer"}) {
        auto rows = read_csv(cfg.run_dir + "/prefix_" + m + "-seed5.csv");
        REQUIRE(rows.size() == 1 + 12 * 2 * 2);  // 6 train + 6 held-out sequences x 2 k x (greedy + 1 sample)
        const auto& h = rows[0];
        // seed 003's columns first, in its order
        const std::vector<std::string> seed003 = {"sample", "prompt", "suffix", "memorized",
                                                  "PPL_XL", "PPL_S",  "PPL_Lower", "Zlib"};
        for (size_t i = 0; i < seed003.size(); i++) CHECK(h[i] == seed003[i]);
        const int c_mem = col(h, "memorized"), c_suf = col(h, "suffix"), c_gen = col(h, "generated"),
                  c_split = col(h, "split"), c_prompt = col(h, "prompt"), c_sample = col(h, "sample"),
                  c_zlib = col(h, "Zlib"), c_ppl = col(h, "PPL_XL"), c_mlen = col(h, "matching_prefix_len");
        int held_mem = 0, train_mem = 0;
        for (size_t i = 1; i < rows.size(); i++) {
            const auto& r = rows[i];
            REQUIRE(r.size() == h.size());
            const std::string suffix = unescape(r[size_t(c_suf)]), gen = unescape(r[size_t(c_gen)]);
            const std::string prompt = unescape(r[size_t(c_prompt)]);
            CHECK(suffix.size() == 50);
            CHECK(unescape(r[size_t(c_sample)]) == prompt + gen);
            // memorized recomputed from the texts: all 50 bytes equal
            const bool verbatim = gen.size() >= 50 && gen.compare(0, 50, suffix) == 0;
            CHECK(r[size_t(c_mem)] == (verbatim ? "1" : "0"));
            size_t ml = 0;
            while (ml < suffix.size() && ml < gen.size() && gen[ml] == suffix[ml]) ml++;
            CHECK(std::stoul(r[size_t(c_mlen)]) == ml);
            CHECK(std::stoll(r[size_t(c_zlib)]) == zlib_bytes(prompt + gen));
            CHECK(std::stod(r[size_t(c_ppl)]) >= 1.0);
            if (r[size_t(c_split)] == "heldout") held_mem += verbatim;
            else train_mem += verbatim;
            // the true suffix of a training row occurs in the training stream
            if (r[size_t(c_split)] == "train") CHECK(stream.find(prompt + suffix) != std::string::npos);
        }
        CHECK(held_mem == 0);  // random letters cannot be continued
        CHECK(train_mem > 0);  // the all-'x' documents are, and their rows say memorized = 1
        // The control (same preset, trained on the held-out random letters
        // only) never saw the training documents: it can continue only what
        // is predictable without them (a run of one repeated letter), never a
        // random-word document, so it extracts at most the sampled one-letter
        // sequences, whatever the model it is the control of extracts.
        {
            const json& mj = res["seeds"]["5"]["models"][m];
            REQUIRE(mj["control"]["prefix"].size() == 2);  // k = 8, 16; greedy, train split
            int64_t one_letter = 0;  // greedy training rows (both k) whose suffix is one repeated letter
            const int c_dec = col(h, "decoding");
            for (size_t i = 1; i < rows.size(); i++) {
                const std::string suffix = unescape(rows[i][size_t(c_suf)]);
                if (rows[i][size_t(c_split)] == "train" && rows[i][size_t(c_dec)] == "greedy" &&
                    suffix.find_first_not_of(suffix[0]) == std::string::npos)
                    one_letter++;
            }
            int64_t control_greedy = 0;
            for (const auto& row : mj["control"]["prefix"]) {
                CHECK(row["split"] == "train");
                CHECK(row["n"] == 6);
                control_greedy += row["memorized"].get<int64_t>();
            }
            MESSAGE(m << ": control extracted " << control_greedy << " greedy training sequences (k 8 + k 16) of "
                      << one_letter << " one-letter ones");
            CHECK(control_greedy <= one_letter);
            CHECK(one_letter < 12);  // random-word documents were sampled too: the bound is not vacuous
            // it never saw the training documents: they cost it more than the model that trained on them
            CHECK(mj["control"]["loss_on_training_documents"].get<double>() > mj["train_loss"].get<double>());
        }

        auto un = read_csv(cfg.run_dir + "/untargeted_" + m + "-seed5.csv");
        REQUIRE(un.size() == 1 + 16);
        const int c_text = col(un[0], "text"), c_v = col(un[0], "verbatim_50");
        int64_t n_verb = 0;
        for (size_t i = 1; i < un.size(); i++) {
            const bool b = brute_verbatim(stream, unescape(un[i][size_t(c_text)]), 50);
            CHECK(un[i][size_t(c_v)] == (b ? "1" : "0"));
            n_verb += b;
        }
        const json& mj = res["seeds"]["5"]["models"][m];
        CHECK(mj["untargeted"]["top-k40"]["verbatim_all"].get<int64_t>() +
                  mj["untargeted"]["temperature-decay"]["verbatim_all"].get<int64_t>() ==
              n_verb);
        for (const auto& [a, v] : mj["mia"]["attacks"].items()) {
            CHECK(v["auc"].get<double>() >= 0.0);
            CHECK(v["auc"].get<double>() <= 1.0);
        }
        REQUIRE(mj["exposure"].size() == 1);
        const double e = mj["exposure"][0]["exposure"].get<double>();
        CHECK(e >= 0.0);
        CHECK(e <= std::log2(51.0) + 1e-12);
    }
    for (const char* f : {"metrics.json", "report.md", "memorisation.csv", "extract_config.json",
                          "plots/extraction_vs_prefix.svg", "plots/exposure_vs_insertions.svg"})
        CHECK(std::ifstream(cfg.run_dir + "/" + f).good());

    // What decides the bits, recorded in the run directory and in each
    // model's checkpoint (read back from the files).
    {
        const json ec = json::parse(cli_read_text(cfg.run_dir + "/extract_config.json"));
        CHECK(ec["threads"] == 2);
        CHECK(ec["seeds"] == json::array({5}));
        CHECK(ec["presets"] == json::array({"tiny-mamba", "tiny-transformer"}));
        CHECK(ec["libraries"]["libtorch"] == TORCH_VERSION);
        for (const char* lib : {"zlib", "nlohmann_json"})
            CHECK_MESSAGE(!ec["libraries"][lib].get<std::string>().empty(), lib);
        const json meta = read_checkpoint_meta(cfg.run_dir + "/models/tiny-mamba-seed5.pt");
        REQUIRE(meta.contains("reproducibility"));
        CHECK(meta["reproducibility"]["threads"] == 2);
        CHECK(meta["reproducibility"]["seed"] == 5);
        CHECK(meta["reproducibility"]["preset"] == "tiny-mamba");
        CHECK(meta["reproducibility"]["libtorch"] == TORCH_VERSION);
    }

    // The decaying-temperature sampler with top-k 1 at any temperature is
    // greedy: it equals lm_generate's greedy output on the run's model.
    {
        MambaLm lm;
        char err[512];
        REQUIRE(mamba_lm_open(&lm, (cfg.run_dir + "/models/tiny-mamba-seed5.bin").c_str(), err, sizeof err) == 0);
        LmOps ops = mamba_lm_ops(&lm);
        const int prompt[3] = {0, 't', 'h'};
        std::vector<int> dec, greedy(40);
        REQUIRE(lm_generate_decaying(&ops, prompt, 3, 40, 10.0, 1.0, 20, 1, 9, dec, err, sizeof err) == 0);
        LmSampler g{0.0f, 0, 1.0};
        int n = 0;
        REQUIRE(lm_generate(&ops, prompt, 3, 40, &g, 0, greedy.data(), &n, err, sizeof err) == 0);
        greedy.resize(size_t(n));
        CHECK(dec == greedy);
        mamba_lm_close(&lm);
    }

    // A re-run trains nothing and gives the same numbers.
    json again = run_extract(cfg);
    CHECK(last_extract_run_stats().trained == 0);
    CHECK(last_extract_run_stats().cached == 6);
    CHECK(again["seeds"]["5"]["models"]["tiny-mamba"]["prefix"] == res["seeds"]["5"]["models"]["tiny-mamba"]["prefix"]);

    // Another configuration in the same directory is refused.
    ExtractConfig other = cfg;
    other.n_sequences = 5;
    CHECK_THROWS_WITH_AS(run_extract(other), doctest::Contains("another configuration"), std::runtime_error);
}

TEST_CASE("bin/extract: bad flags and impossible configurations get one error line") {
    TempDir tmp("mmia_extract_cli");
    const std::string bin = cli_env_or("EXTRACT_BIN", "bin/extract");
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "no executable " << bin << " (make bin/extract)");
    struct Case {
        std::string args;
        int code;
        std::string line;  // the whole of stderr (docs/BAD_INPUT.md's row)
    };
    const std::string run_dir = tmp.file("run");
    const Case cases[] = {
        {"--bogus", 2, "error: The following argument was not expected: --bogus (see --help)"},
        {"--n-sequences 0", 2, "error: --n-sequences: Value 0 not in range 1 to 1000000 (see --help)"},
        {"--prefix-lengths 8,0", 2, "error: --prefix-lengths: Value 0 not in range 1 to 4096 (see --help)"},
        {"--untargeted 2", 2, "error: --untargeted: Value 2 not in range 4 to 10000000 (see --help)"},
        {"--seeds x", 2, "error: --seeds: 'x' is not an integer in [0, 18446744073709551615] (see --help)"},
        {"--seeds 1,,2", 2, "error: --seeds: an empty element in '1,,2' (see --help)"},
        {"--seeds 1 --seeds 2", 2, "error: --seeds: given twice (give one comma-separated list) (see --help)"},
        {"--seeds 1,1", 2, "error: --seeds: 1 given twice (each value once) (see --help)"},
        {"--presets mamba-lm-s,mamba-lm-s", 2, "error: --presets: mamba-lm-s given twice (each value once) (see --help)"},
        {"--prefix-lengths 8,8", 2, "error: --prefix-lengths: 8 given twice (each value once) (see --help)"},
        {"--prefix-lengths=8, --presets mamba-lm-s", 2, "error: --prefix-lengths: an empty element in '8,' (see --help)"},
        {"--presets nosuch", 1, "error: unknown preset 'nosuch' (see config.json)"},
        {"--presets shokri", 1, "error: preset 'shokri' is not a language model (mamba-lm, transformer-lm)"},
        {"--prefix-lengths 8,300", 1,
         "error: --prefix-lengths: 300 + the 50-token suffix exceeds mamba-lm-s's context of 256 tokens"},
        {"--corpus /nonexistent/corpus", 1,
         "error: /nonexistent/corpus: cannot open corpus directory (No such file or directory)"},
        {"--corpus nosuch", 1,
         "error: corpus 'nosuch' is not built (data/corpora/nosuch/manifest.json missing): bin/corpus build --name nosuch "
         "--canaries 2"},
        {"--config /nonexistent.json", 1,
         "error: /nonexistent.json: cannot open (run from the project root, or pass --config)"},
    };
    for (const Case& c : cases) {
        CliRun r = cli_run(bin, c.args + " --run-dir " + cli_quote(run_dir), tmp.path.string());
        INFO("args: " << c.args << "\nstdout: " << r.out << "\nstderr: " << r.err);
        CHECK(r.code == c.code);
        CHECK(r.err == c.line + "\n");
        CHECK(!cli_file_exists(run_dir + "/metrics.json"));
    }
    // A run directory made with another configuration (its recorded
    // extract_config.json differs): refused before any work, left as it was.
    const std::string other = tmp.file("other");
    std::filesystem::create_directories(other);
    {
        std::ofstream f(other + "/extract_config.json");
        f << "{\"seeds\": [7]}\n";
    }
    // a corpus of its own: a fresh clone has no data/corpora/prose
    const std::string corpus = tmp.file("fixture_corpus");
    write_fixture_corpus(corpus);
    CliRun r = cli_run(bin, "--corpus " + cli_quote(corpus) + " --run-dir " + cli_quote(other), tmp.path.string());
    INFO("stderr: " << r.err);
    CHECK(r.code == 1);
    CHECK(r.err == "error: " + other + " holds a run with another configuration; choose another --run-dir or pass --force\n");
    CHECK(cli_read_text(other + "/extract_config.json") == "{\"seeds\": [7]}\n");
    CHECK(!cli_file_exists(other + "/metrics.json"));
}

TEST_CASE("bin/extract: a FIFO, device or file where a file or directory goes: one exact line, never a wait; stdin closed") {
    TempDir tmp("mmia_extract_special");
    const std::string bin = cli_env_or("EXTRACT_BIN", "bin/extract");
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "no executable " << bin << " (make bin/extract)");
    const std::string corpus = tmp.file("corpus"), config = tmp.file("config.json"), fifo = tmp.file("x.fifo");
    write_fixture_corpus(corpus);
    write_tiny_config(config);
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    auto check_line = [&](std::vector<std::string> args, const std::string& line) {
        args.insert(args.begin(), bin);
        for (const char* a : {"--presets", "tiny-mamba,tiny-transformer", "--prefix-lengths", "8,16", "--threads", "1"})
            args.push_back(a);
        CliRun r = cli_run_argv(args, tmp.file("special.log"), 60);  // cli_wait fails the test on a hang
        INFO(args[1] << " " << args[2] << " ... stderr: " << r.err);
        CHECK(r.code == 1);
        CHECK(r.out.empty());
        CHECK(r.err == line + "\n");
    };
    const std::string run = tmp.file("run");
    for (const std::string& bad : {fifo, std::string("/dev/zero"), tmp.path.string()})
        check_line({"--config", bad, "--corpus", corpus, "--run-dir", run}, "error: " + bad + ": not a regular file");
    for (const std::string& bad : {fifo, std::string("/dev/zero")})
        check_line({"--config", config, "--corpus", bad, "--run-dir", run},
                   "error: " + bad + ": not a directory (a corpus is a directory built by bin/corpus build)");
    // the run directory: a FIFO, a device (a link to /dev/null), a file
    const std::string null_link = tmp.file("null_run"), plain = tmp.file("plain_run");
    REQUIRE(symlink("/dev/null", null_link.c_str()) == 0);
    std::ofstream(plain) << "x";
    for (const std::string& bad : {fifo, null_link, plain})
        check_line({"--config", config, "--corpus", corpus, "--run-dir", bad},
                   "error: " + bad + ": cannot create directory (Not a directory)");
    // a run directory whose recorded configuration is a FIFO
    std::filesystem::create_directories(run);
    REQUIRE(mkfifo((run + "/extract_config.json").c_str(), 0600) == 0);
    check_line({"--config", config, "--corpus", corpus, "--run-dir", run},
               "error: " + run + "/extract_config.json: not a regular file");
    // a corpus file that is a FIFO
    std::filesystem::remove(corpus + "/documents.jsonl");
    REQUIRE(mkfifo((corpus + "/documents.jsonl").c_str(), 0600) == 0);
    check_line({"--config", config, "--corpus", corpus, "--run-dir", tmp.file("run2")},
               "error: " + corpus + "/documents.jsonl: not a regular file");
    // stdin closed: never read (the same refusal, reached with fd 0 closed)
    CliRun r = cli_run("sh", "-c " + cli_quote(cli_quote(bin) + " --config " + cli_quote(config) + " --corpus " + cli_quote(corpus) +
                                               " --presets tiny-mamba,tiny-transformer --prefix-lengths 8,16 --run-dir " + cli_quote(fifo) + " <&-"),
                       tmp.path.string());
    CHECK(r.code == 1);
    CHECK(r.err == "error: " + corpus + "/documents.jsonl: not a regular file\n");
}
