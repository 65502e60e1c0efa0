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
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <zstd.h>

#include "attack/extract.h"
#include "attack/lm_scores.h"
#include "engine/bpe.h"
#include "common/corpus.h"
#include "common/tokenizer_json.h"
#include "export/model_export.h"
#include "engine/mamba_lm.h"
#include "tests/cli_batch.h"
#include "tests/cli_check.h"
#include "tests/extract_fixture.h"
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
    // Exact ends where rounding would leave 5.6e-17 (0 of 3 at the default z).
    CHECK(wilson_interval(0, 3).first == 0.0);
    CHECK(wilson_interval(3, 3).second == 1.0);
    CHECK(wilson_interval(0, 3).second == doctest::Approx(0.56151).epsilon(1e-4));
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
    CHECK(!p.contains("prefix_by_copies"));  // a corpus without repeated documents
    {
        // A seed whose MIA was skipped (no non-member): no pooled attack, no best AUC.
        json s2 = seeds;
        s2["2"]["models"]["m"]["mia"] = {{"members", 3}, {"nonmembers", 0}, {"skipped", "why"}};
        json q = pool_seeds(s2, {"m"})["m"];
        CHECK(q["mia"].empty());
        CHECK(q["best_mia_auc"].is_null());
        CHECK(q["prefix"][0]["memorized"] == 5);
    }
    // Repeated documents pool by (copies, k, decoding) the same way: copies 8
    // 1/2 and 2/2 -> 3/4; copies 1 0/2 and 0/2 -> 0/4, Wilson(0, 4) upper
    // z^2 / (4 + z^2) = 3.841459 / 7.841459 = 0.489891.
    auto by = [](int mem8) {
        return json::array({{{"copies", 1}, {"k", 8}, {"decoding", "greedy"}, {"n", 2}, {"memorized", 0},
                             {"bleu_exact", 0}, {"bleu_fuzzy", 0}},
                            {{"copies", 8}, {"k", 8}, {"decoding", "greedy"}, {"n", 2}, {"memorized", mem8},
                             {"bleu_exact", mem8}, {"bleu_fuzzy", 2}}});
    };
    seeds["1"]["models"]["m"]["prefix_by_copies"] = by(1);
    seeds["2"]["models"]["m"]["prefix_by_copies"] = by(2);
    const json pc = pool_seeds(seeds, {"m"})["m"]["prefix_by_copies"];
    REQUIRE(pc.size() == 2);
    CHECK(pc[0]["copies"] == 1);
    CHECK(pc[0]["n"] == 4);
    CHECK(pc[0]["memorized"] == 0);
    CHECK(pc[0]["memorized_ci95"][0].get<double>() == 0.0);
    CHECK(pc[0]["memorized_ci95"][1].get<double>() == doctest::Approx(0.489891).epsilon(1e-5));
    CHECK(pc[1]["copies"] == 8);
    CHECK(pc[1]["memorized"] == 3);
    CHECK(pc[1]["memorized_rate"].get<double>() == 0.75);
    CHECK(pc[1]["bleu_fuzzy"] == 4);
    CHECK(!pc[1].contains("split"));
}

TEST_CASE("csv_text: quoted, quotes doubled, control bytes escaped, one line") {
    CHECK(csv_text("plain") == "\"plain\"");
    CHECK(csv_text("a,\"b\"") == "\"a,\"\"b\"\"\"");
    CHECK(csv_text(std::string("x\ny\t\r\\z\x01\x7f", 9) + std::string(1, '\0')) ==
          "\"x\\ny\\t\\r\\\\z\\x01\\x7f\\x00\"");
    CHECK(csv_text("caf\xc3\xa9") == "\"caf\xc3\xa9\"");  // UTF-8 passes unchanged
    CHECK(csv_text("\xf0\x9f\x98\x80!") == "\"\xf0\x9f\x98\x80!\"");  // a 4-byte character too
    // bytes of no valid character are escaped: a lone continuation byte, a
    // truncated sequence, an overlong "/", a surrogate, 0xff
    CHECK(csv_text("a\xb8" "b") == "\"a\\xb8b\"");
    CHECK(csv_text("\xc3") == "\"\\xc3\"");
    CHECK(csv_text("\xe2\x82x") == "\"\\xe2\\x82x\"");
    CHECK(csv_text("\xc0\xaf") == "\"\\xc0\\xaf\"");
    CHECK(csv_text("\xed\xa0\x80") == "\"\\xed\\xa0\\x80\"");
    CHECK(csv_text("\xff") == "\"\\xff\"");
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
    // and the field is valid UTF-8 whatever the bytes: every byte >= 0x80 of
    // `all` is alone, so none passes unescaped
    for (unsigned char ch : f) CHECK(ch < 0x80);
    // random bytes: the field decodes as UTF-8 (bpe_utf8 finds no invalid
    // byte) and unescapes back to them
    std::mt19937_64 rng(7);
    for (int t = 0; t < 200; t++) {
        std::string r;
        for (int i = 0; i < 40; i++) r += char(rng() % 4 ? 0x80 + rng() % 0x80 : rng() % 0x80);
        const std::string g = csv_text(r);
        for (size_t i = 0; i < g.size();) {
            uint32_t cp;
            i += size_t(bpe_utf8(reinterpret_cast<const uint8_t*>(g.data()) + i, g.size() - i, &cp));
            REQUIRE(!(cp & BPE_INVALID));
        }
        std::string in = g.substr(1, g.size() - 2), u;
        for (size_t i = 0; i < in.size(); i++) {
            u += in[i];
            if (in[i] == '"') i++;
        }
        CHECK(unescape(u) == r);
    }
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

// A small run of both tiny presets on tmp/corpus (written by the caller),
// the tiny config written to tmp/config.json, outputs in tmp/run.
static ExtractConfig tiny_run_config(const TempDir& tmp) {
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
    return cfg;
}

TEST_CASE("run_extract on a fixture corpus: CSV columns, flags recomputed, held-out 0, re-run trains nothing") {
    TempDir tmp("mmia_extract");
    write_fixture_corpus(tmp.file("corpus"));
    ExtractConfig cfg = tiny_run_config(tmp);
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

TEST_CASE("run_extract with repeated documents: every one extracted by its copies, rates recomputed from the CSV") {
    TempDir tmp("mmia_extract_rep");
    // Documents of random words, 200-300 bytes (kRepeatMinBytes..), split and
    // repeated by bin/corpus's own rules: 2 documents with 1 copy, 2 with 8.
    std::mt19937_64 rng(11);
    const char* words[] = {"the", "cat", "sat", "on", "mat", "a", "dog", "ran", "in", "park"};
    std::vector<CorpusDocument> raw;
    for (int i = 0; i < 40; i++) {
        CorpusDocument d;
        d.source = "test:" + std::to_string(i);
        while (d.text.size() < 200 + size_t(i)) d.text += std::string(words[rng() % 10]) + " ";
        raw.push_back(d);
    }
    CorpusBuildOptions opt;
    opt.name = "repeats";
    opt.heldout = 0.3;
    opt.repeats_per_count = 2;
    opt.repeat_counts = {1, 8};
    Corpus built = assemble_corpus(raw, opt);
    write_corpus(built, tmp.file("corpus"));
    ExtractConfig cfg = tiny_run_config(tmp);
    cfg.presets = {"tiny-mamba"};
    cfg.n_sequences = 5;
    cfg.candidates = 10;
    cfg.mia_docs = 6;
    json res = run_extract(cfg);

    const Corpus corpus = load_corpus(cfg.corpus);
    std::set<int64_t> repeated;
    for (const auto& d : corpus.docs)
        if (d.repeated) repeated.insert(d.id);
    REQUIRE(repeated.size() == 4);
    auto rows = read_csv(cfg.run_dir + "/prefix_tiny-mamba-seed5.csv");
    const auto& h = rows[0];
    const int c_split = col(h, "split"), c_doc = col(h, "doc_id"), c_copies = col(h, "copies"), c_k = col(h, "k"),
              c_dec = col(h, "decoding"), c_mem = col(h, "memorized");
    std::map<std::pair<int, int>, std::pair<int64_t, int64_t>> greedy;  // (copies, k) -> (n, memorized)
    std::set<int64_t> seen_repeated;
    int64_t n_train = 0;
    for (size_t i = 1; i < rows.size(); i++) {
        const auto& r = rows[i];
        const int64_t doc = std::stoll(r[size_t(c_doc)]);
        CHECK(std::stoi(r[size_t(c_copies)]) == corpus.docs[size_t(doc)].copies);
        if (r[size_t(c_split)] == "repeated") {
            CHECK(repeated.count(doc) == 1);
            seen_repeated.insert(doc);
            if (r[size_t(c_dec)] == "greedy") {
                auto& g = greedy[{std::stoi(r[size_t(c_copies)]), std::stoi(r[size_t(c_k)])}];
                g.first++;
                g.second += r[size_t(c_mem)] == "1";
            }
        } else {
            CHECK(repeated.count(doc) == 0);  // the samples of ordinary documents leave them out
            n_train += r[size_t(c_split)] == "train";
        }
    }
    CHECK(seen_repeated == repeated);  // every repeated document, once per (k, decoding, sample)
    CHECK(n_train == 5 * 2 * 2);      // 5 sequences x 2 k x (greedy + 1 sample)
    const json& by = res["seeds"]["5"]["models"]["tiny-mamba"]["prefix_by_copies"];
    int checked = 0;
    for (const auto& e : by) {
        if (e["decoding"] != "greedy") continue;
        const auto g = greedy.at({e["copies"].get<int>(), e["k"].get<int>()});
        CHECK(e["n"] == g.first);
        CHECK(g.first == 2);
        CHECK(e["memorized"] == g.second);
        const auto ci = wilson_interval(g.second, g.first);
        CHECK(e["memorized_ci95"][0].get<double>() == ci.first);
        CHECK(e["memorized_ci95"][1].get<double>() == ci.second);
        checked++;
    }
    CHECK(checked == 4);  // copies {1, 8} x k {8, 16}
    CHECK(res["pooled"]["tiny-mamba"]["prefix_by_copies"].size() == by.size());
    const std::string report = cli_read_text(cfg.run_dir + "/report.md");
    CHECK(report.find("## Extraction against duplication") != std::string::npos);
    CHECK(std::filesystem::exists(cfg.run_dir + "/plots/extraction_vs_copies.svg"));
}

TEST_CASE("run_extract with no non-member left: membership inference skipped with a note, the other parts reported") {
    // Every held-out document is a near-duplicate of a training document
    // (its first 100 bytes are one), so the MIA has members and 0
    // non-members: no ROC exists. The run must not die (man pages at 400 kB
    // did: "roc_curve: needs members and non-members").
    TempDir tmp("mmia_extract_nomia");
    write_fixture_corpus(tmp.file("corpus"));
    Corpus c = load_corpus(tmp.file("corpus"));
    for (auto& d : c.docs)
        if (!d.train) d.text = c.docs[size_t(d.id % 12)].text.substr(0, 100) + d.text;
    write_corpus(c, tmp.file("corpus"));
    ExtractConfig cfg = tiny_run_config(tmp);
    json res = run_extract(cfg);
    const json& sj = res["seeds"]["5"];
    CHECK(sj["plan"]["near_duplicates_excluded"] == 8);
    CHECK(sj["plan"]["heldout_sequences"] == 0);
    for (const std::string m : {"tiny-mamba", "tiny-transformer"}) {
        const json& mia = sj["models"][m]["mia"];
        CHECK(mia["nonmembers"] == 0);
        CHECK(mia["members"].get<int>() > 0);
        CHECK(!mia.contains("attacks"));
        CHECK(mia["skipped"].get<std::string>().find("0 non-members") != std::string::npos);
        CHECK(!std::filesystem::exists(cfg.run_dir + "/plots/mia_roc_loglog_" + m + "-seed5.svg"));
        // the other parts ran
        CHECK(!sj["models"][m]["prefix"].empty());
        CHECK(!sj["models"][m]["exposure"].empty());
        CHECK(res["pooled"][m]["mia"].empty());
        CHECK(res["pooled"][m]["best_mia_auc"].is_null());
    }
    const std::string report = cli_read_text(cfg.run_dir + "/report.md");
    CHECK(report.find("Not run: needs members and non-members") != std::string::npos);
    CHECK(report.find("Membership inference: not run (") != std::string::npos);
    CHECK(report.find("### Prefix extraction (greedy)") != std::string::npos);
    // no held-out sequence: every held-out row says so, one cell per model
    CHECK(report.find("| 8 | heldout | n/a (no sequence) | n/a (no sequence) |\n") != std::string::npos);
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
    const std::string run_dir = tmp.file("run"), tiny96 = tmp.file("tiny96.json");
    write_tiny_config(tiny96);  // context 96, shorter than the 256-token untargeted samples
    const Case cases[] = {
        {"--config " + cli_quote(tiny96) + " --presets tiny-mamba,tiny-transformer --prefix-lengths 8,16", 1,
         "error: untargeted samples are 256 tokens, more than tiny-transformer's context of 96 tokens (give the "
         "preset a context of at least 256 in the config)"},
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
    // side by side (cli_run_batch: each run is mostly bin/extract's LibTorch start-up), each
    // with its own run directory, which none of the lines names
    std::vector<std::string> cmds;
    for (size_t i = 0; i < std::size(cases); i++)
        cmds.push_back(cli_quote(bin) + " " + cases[i].args + " --run-dir " + cli_quote(run_dir + std::to_string(i)));
    const std::vector<CliRun> runs = cli_run_batch(cmds, tmp.path.string());
    for (size_t i = 0; i < std::size(cases); i++) {
        const Case& c = cases[i];
        const CliRun& r = runs[i];
        INFO("args: " << c.args << "\nstdout: " << r.out << "\nstderr: " << r.err);
        CHECK(r.code == c.code);
        CHECK(r.err == c.line + "\n");
        CHECK(!cli_file_exists(run_dir + std::to_string(i) + "/metrics.json"));
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
    // The first key in sorted order that differs: "candidates", absent there
    // (the stored object holds only "seeds"), the default 2000 here.
    CHECK(r.err == "error: " + other +
                       " holds a run with another configuration (candidates: absent there, 2000 here); choose another "
                       "--run-dir or pass --force\n");
    CHECK(cli_read_text(other + "/extract_config.json") == "{\"seeds\": [7]}\n");
    CHECK(!cli_file_exists(other + "/metrics.json"));
}

TEST_CASE("bin/extract: a FIFO, device or file where a file or directory goes: one exact line, never a wait; stdin closed") {
    TempDir tmp("mmia_extract_special");
    const std::string bin = cli_env_or("EXTRACT_BIN", "bin/extract");
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "no executable " << bin << " (make bin/extract)");
    const std::string corpus = tmp.file("corpus"), config = tmp.file("config.json"), fifo = tmp.file("x.fifo");
    write_fixture_corpus(corpus);
    write_tiny_config(config, 256);
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
    // the first eight side by side (cli_run_batch, 60 s each at most: a wait fails the test)
    std::vector<std::pair<std::vector<std::string>, std::string>> first;
    for (const std::string& bad : {fifo, std::string("/dev/zero"), tmp.path.string()})
        first.push_back({{"--config", bad, "--corpus", corpus, "--run-dir", run}, "error: " + bad + ": not a regular file"});
    for (const std::string& bad : {fifo, std::string("/dev/zero")})
        first.push_back({{"--config", config, "--corpus", bad, "--run-dir", run},
                         "error: " + bad + ": not a directory (a corpus is a directory built by bin/corpus build)"});
    // the run directory: a FIFO, a device (a link to /dev/null), a file
    const std::string null_link = tmp.file("null_run"), plain = tmp.file("plain_run");
    REQUIRE(symlink("/dev/null", null_link.c_str()) == 0);
    std::ofstream(plain) << "x";
    for (const std::string& bad : {fifo, null_link, plain})
        first.push_back({{"--config", config, "--corpus", corpus, "--run-dir", bad},
                         "error: " + bad + ": cannot create directory (Not a directory)"});
    {
        std::vector<std::string> cmds;
        for (auto& [args, line] : first) {
            std::string c = cli_quote(bin);
            for (const char* a : {"--presets", "tiny-mamba,tiny-transformer", "--prefix-lengths", "8,16", "--threads", "1"})
                args.push_back(a);
            for (const std::string& a : args) c += " " + cli_quote(a);
            cmds.push_back(c);
        }
        const std::vector<CliRun> runs = cli_run_batch(cmds, tmp.path.string(), 2, 60);
        for (size_t i = 0; i < first.size(); i++) {
            INFO(first[i].first[0] << " " << first[i].first[1] << " ... stderr: " << runs[i].err);
            CHECK(runs[i].code == 1);
            CHECK(runs[i].out.empty());
            CHECK(runs[i].err == first[i].second + "\n");
        }
    }
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

// --- bin/extract --models --text: packed models on a user's corpus -----------

namespace {

// A Mamba LM whose blocks add nothing (every out_proj = 0): the logits at a
// position are rmsnorm(e_t) . E, largest (for random embeddings) at t
// itself, so greedy decoding repeats the last token. Packed, with `blob` as
// its BPE tokenizer when given.
std::string echo_lm(const std::string& path, int V, uint64_t seed, const std::vector<uint8_t>& blob = {}) {
    torch::manual_seed(seed);
    ModelSpec spec;
    spec.model = "mamba-lm";
    spec.mamba_lm.block.d_model = 64;
    spec.mamba_lm.block.n_layers = 1;
    spec.mamba_lm.block.d_state = 4;
    spec.mamba_lm.block.dt_rank = 4;
    spec.mamba_lm.vocab = V;
    LanguageModel m = LanguageModel::build(spec);
    PackedModelData p = pack_lm(m);
    for (PackedTensor& t : p.tensors)
        if (t.name.find("out_proj") != std::string::npos) std::fill(t.data.begin(), t.data.end(), 0.0f);
    if (!blob.empty()) p.header.hp[MMIA_LM_HP_TOKENIZER] = MMIA_TOKENIZER_BPE;
    write_packed_model(path, p.header, p.tensors, blob);
    return path;
}

// A byte-level BPE with the 256 byte tokens and two merges: "aa" (256), "bb" (257).
std::vector<uint8_t> tiny_bpe_blob() {
    BpeSpec s;
    for (int b = 0; b < 256; b++) s.tokens.push_back(std::string(1, char(b)));
    s.tokens.push_back("aa");
    s.tokens.push_back("bb");
    s.merges = {{'a', 'a', 256}, {'b', 'b', 257}};
    return bpe_blob_write(s);
}

void write_bytes(const std::string& path, const std::string& b) {
    std::ofstream f(path, std::ios::binary);
    f << b;
}

// What `exact` must be for each eligible document, recomputed through the
// engine's API from the test's own tokenization (not bin/extract's code).
struct Recount {
    int64_t exact = 0, n = 0;
    std::vector<double> losses;  // per sequence (document order)
};
Recount recount(const std::string& model, const std::vector<std::string>& docs, int k, int kmax, int suffix) {
    MambaLm m;
    char err[512] = "";
    REQUIRE_MESSAGE(mamba_lm_open(&m, model.c_str(), err, sizeof err) == 0, err);
    LmOps ops = mamba_lm_ops(&m);
    Recount r;
    for (const std::string& d : docs) {
        std::vector<int> t;
        if (m.info.bpe) {
            BpeIds ids = {nullptr, 0, 0};
            REQUIRE(bpe_encode(m.info.bpe, d.data(), d.size(), 0, &ids, err, sizeof err) == 0);
            t.assign(ids.ids, ids.ids + ids.n);
            free(ids.ids);
        } else {
            for (unsigned char c : d) t.push_back(c);
        }
        if (int(t.size()) < kmax + suffix) continue;
        t.resize(size_t(kmax + suffix));
        std::vector<int> out(static_cast<size_t>(suffix));
        int n_out = 0;
        LmSampler greedy{0.0f, 0, 1.0};
        REQUIRE(lm_generate(&ops, t.data() + kmax - k, k, suffix, &greedy, 0, out.data(), &n_out, err, sizeof err) == 0);
        bool same = n_out == suffix;
        for (int i = 0; same && i < suffix; i++) same = out[size_t(i)] == t[size_t(kmax + i)];
        r.exact += same;
        r.n++;
        std::vector<double> lp(t.size() - 1);
        void* st = ops.state_new(ops.model);
        REQUIRE(ops.score(ops.model, st, t.data(), int(t.size()), lp.data(), err, sizeof err) == 0);
        ops.state_free(st);
        double s = 0;
        for (double v : lp) s -= v;
        r.losses.push_back(s / double(lp.size()));
    }
    mamba_lm_close(&m);
    return r;
}

}  // namespace

TEST_CASE("bin/extract --models --text: packed byte and BPE models on a JSONL corpus, plain and .zst; refusals") {
    TempDir tmp("mmia_extract_text");
    const std::string d = tmp.path.string(), bin = cli_env_or("EXTRACT_BIN", "bin/extract");
    const std::vector<std::string> docs = {std::string(200, 'a'), std::string(5, 'x') + "The quick brown fox jumps over the lazy dog. The end? No: more text follows here, enough for 58 tokens.",
                                           "hi", std::string(120, 'b') + std::string(80, 'a')};
    std::string jsonl;
    for (size_t i = 0; i < docs.size(); i++)
        jsonl += nlohmann::json({{"text", docs[i]}, {"meta", {{"i", i}}}}).dump() + "\n";
    write_bytes(d + "/c.jsonl", jsonl);
    std::string z(ZSTD_compressBound(jsonl.size()), '\0');
    z.resize(ZSTD_compress(z.data(), z.size(), jsonl.data(), jsonl.size(), 3));
    REQUIRE(!ZSTD_isError(z.size()));
    write_bytes(d + "/c.jsonl.zst", z);
    const std::string b1 = echo_lm(d + "/b1.bin", 256, 1), b2 = echo_lm(d + "/b2.bin", 256, 2),
                      bpe = echo_lm(d + "/bpe.bin", 260, 3, tiny_bpe_blob());
    const int kmax = 8, suffix = 50;  // the runs give --prefix-lengths 4,8
    for (const std::string& corpus : {d + "/c.jsonl", d + "/c.jsonl.zst"}) {
        CAPTURE(corpus);
        const std::string run = corpus + ".run";
        CliRun r = cli_run(bin, "--models " + cli_quote(b1 + "," + b2) + " --text " + cli_quote(corpus) +
                                    " --prefix-lengths 4,8 --run-dir " + cli_quote(run), d);
        REQUIRE_MESSAGE(r.code == 0, r.err);
        const nlohmann::json m = nlohmann::json::parse(cli_read_text(run + "/metrics.json"));
        CHECK(m["documents"] == 4);
        CHECK(m["eligible_documents"] == 3);  // "hi" is too short
        for (int mi = 0; mi < 2; mi++)
            for (int k : {4, 8}) {
                const Recount want = recount(mi ? b2 : b1, docs, k, kmax, suffix);
                const nlohmann::json& e = m["models"][size_t(mi)]["prefix"][std::to_string(k)];
                CHECK(e["n"] == want.n);
                CHECK(e["exact"] == want.exact);
                CHECK(want.exact == 2);  // the echo repeats 'a' and 'b' (documents 1 and 4), not the fox
                CHECK(r.out.find((mi ? b2 : b1) + ": k=" + std::to_string(k) + " exact " + std::to_string(want.exact) + "/3\n") !=
                      std::string::npos);
                double mean = 0;
                for (double l : want.losses) mean += l / double(want.losses.size());
                CHECK(std::fabs(m["models"][size_t(mi)]["mean_loss"].get<double>() - mean) < 1e-6);
            }
        const auto rows = read_csv(run + "/prefix.csv");
        CHECK(rows.size() == 1 + 2 * 3 * 2);
    }
    // the BPE model reads the .zst corpus with its own tokenizer ("aa" and "bb" are one token each)
    {
        const std::string run = d + "/bpe.run";
        CliRun r = cli_run(bin, "--models " + cli_quote(bpe) + " --text " + cli_quote(d + "/c.jsonl.zst") +
                                    " --prefix-lengths 8 --run-dir " + cli_quote(run), d);
        REQUIRE_MESSAGE(r.code == 0, r.err);
        const nlohmann::json m = nlohmann::json::parse(cli_read_text(run + "/metrics.json"));
        const Recount want = recount(bpe, docs, 8, kmax, suffix);
        CHECK(m["eligible_documents"] == want.n);
        CHECK(want.n == 3);  // 100 "aa" tokens; the fox's bytes; 60 "bb" + 40 "aa"
        CHECK(want.exact == 2);  // the echo repeats "aa" and "bb"
        CHECK(m["models"][0]["prefix"]["8"]["exact"] == want.exact);
        CHECK(m["models"][0]["tokenizer"] == "BPE, 258 tokens");
    }
    // refusals, one exact line each
    write_bytes(d + "/nul.txt", std::string("abc\0def", 7));
    write_bytes(d + "/notext.jsonl", "{\"text\": \"ok\"}\n{\"txt\": \"x\"}\n");
    write_bytes(d + "/num.jsonl", "{\"text\": 3}\n");
    write_bytes(d + "/bad.jsonl", "{\"text\": \"ok\"}\n[1, 2]\n");
    std::string corrupt = z;
    corrupt[corrupt.size() / 2] ^= 0x55;
    corrupt[corrupt.size() / 2 + 1] ^= 0x55;
    write_bytes(d + "/corrupt.jsonl.zst", corrupt);
    write_bytes(d + "/cut.jsonl.zst", z.substr(0, z.size() - 5));
    // a classifier's kind, a BPE model without its tokenizer, a transformer whose context is too short
    {
        std::ifstream f(b1, std::ios::binary);
        std::string b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
        b[12] = char(MMIA_KIND_CNN);  // kind: outside the checksum, so the container still opens
        write_bytes(d + "/kind2.bin", b);
        torch::manual_seed(5);
        ModelSpec spec;
        spec.model = "mamba-lm";
        spec.mamba_lm.block.d_model = 16;
        spec.mamba_lm.block.n_layers = 1;
        spec.mamba_lm.block.dt_rank = 1;
        spec.mamba_lm.vocab = 260;
        LanguageModel m = LanguageModel::build(spec);
        PackedModelData p = pack_lm(m);
        p.header.hp[MMIA_LM_HP_TOKENIZER] = MMIA_TOKENIZER_BPE;
        write_packed_model(d + "/noblob.bin", p.header, p.tensors);
        spec.model = "transformer-lm";
        spec.transformer_lm.d_model = 16;
        spec.transformer_lm.n_layers = 1;
        spec.transformer_lm.n_heads = 2;
        spec.transformer_lm.d_ff = 32;
        spec.transformer_lm.context = 32;
        LanguageModel t = LanguageModel::build(spec);
        PackedModelData q = pack_lm(t);
        write_packed_model(d + "/ctx32.bin", q.header, q.tensors);
    }
    struct Case {
        std::string args;
        int code;
        std::string line;
    };
    const Case cases[] = {
        {"--models " + d + "/kind2.bin --text " + d + "/c.jsonl", 1,
         "error: " + d + "/kind2.bin: model kind 2 is not a language model (--models takes kinds 3 and 4, the files ./mamba and ./transformer run as language models)"},
        {"--models " + d + "/noblob.bin --text " + d + "/c.jsonl", 1,
         "error: " + d + "/noblob.bin: the model's tokenizer is BPE but the file carries none (imported without tokenizer.json): a text corpus needs it"},
        {"--models " + d + "/ctx32.bin --text " + d + "/c.jsonl", 1,
         "error: --prefix-lengths: the longest prefix + the 50-token suffix = 178 tokens, more than " + d + "/ctx32.bin's context of 32"},
        {"--models " + b1 + "," + bpe + " --text " + d + "/c.jsonl", 1,
         "error: --models: " + b1 + " (bytes) and " + bpe + " (BPE, 258 tokens) have different tokenizers: one corpus would be different token sequences for each (compare models that share a tokenizer)"},
        {"--models " + b1 + " --text " + d + "/nul.txt", 1,
         "error: " + d + "/nul.txt: not text (byte 0x00 at offset 3): give plain text or JSON lines with a \"text\" field, optionally zstd-compressed (.zst)"},
        {"--models " + b1 + " --text " + d + "/notext.jsonl", 1, "error: " + d + "/notext.jsonl: line 2: no string \"text\" field"},
        {"--models " + b1 + " --text " + d + "/num.jsonl", 1, "error: " + d + "/num.jsonl: line 1: no string \"text\" field"},
        {"--models " + b1 + " --text " + d + "/bad.jsonl", 1, "error: " + d + "/bad.jsonl: line 2: not a JSON object (a JSON array)"},
        {"--models " + b1 + " --text " + d + "/corrupt.jsonl.zst", 1, "error: " + d + "/corrupt.jsonl.zst: corrupt zstd stream (Data corruption detected)"},
        {"--models " + b1 + " --text " + d + "/cut.jsonl.zst", 1, "error: " + d + "/cut.jsonl.zst: truncated zstd stream (it ends inside a frame)"},
        {"--models " + b1, 1, "error: --models needs --text CORPUS (plain text or JSON lines with a \"text\" field, optionally .zst)"},
        {"--models " + b1 + " --text " + d + "/c.jsonl --presets mamba-lm-s", 2,
         "error: --presets trains models; --models/--text run packed ones: give one or the other (see --help)"},
        {"--models " + b1 + " --text " + d + "/c.jsonl --prefix-lengths 200", 1,
         "error: " + d + "/c.jsonl: no document has 250 tokens (the longest prefix length + the suffix length; the longest document has 200)"},
    };
    std::vector<std::string> cmds;  // side by side (cli_run_batch), all refused
    for (const Case& c : cases) cmds.push_back(cli_quote(bin) + " " + c.args + " --run-dir " + cli_quote(d + "/refused"));
    const std::vector<CliRun> runs = cli_run_batch(cmds, d);
    for (size_t i = 0; i < std::size(cases); i++) {
        const Case& c = cases[i];
        const CliRun& r = runs[i];
        CAPTURE(c.args);
        CHECK(r.code == c.code);
        CHECK(r.err == c.line + "\n");
        CHECK(r.out.empty());
    }
    // A refused run writes nothing, not even its run directory.
    CHECK(!cli_file_exists(d + "/refused"));
    // A --run-dir that cannot be a directory is said before any work; one
    // seed picks the sequences.
    {
        std::ofstream(d + "/plain") << "x";
        CliRun r = cli_run(bin, "--models " + b1 + " --text " + d + "/c.jsonl --run-dir " + cli_quote(d + "/plain/run"), d);
        CHECK(r.code == 1);
        CHECK(r.err == "error: " + d + "/plain/run: cannot create directory (Not a directory)\n");
        r = cli_run(bin, "--models " + b1 + " --text " + d + "/c.jsonl --seeds 1,2 --run-dir " + cli_quote(d + "/refused"), d);
        CHECK(r.code == 2);
        CHECK(r.err == "error: --seeds: --models/--text runs one seed (it picks the sequences); give one (see --help)\n");
        CHECK(!cli_file_exists(d + "/refused"));
    }
}
