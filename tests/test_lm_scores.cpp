// test_lm_scores.cpp: the language-model memorization scores
// (attack/lm_scores.h) against hand-worked cases and two outside oracles:
// NLTK 3.8's TreebankWordTokenizer and sentence_bleu(method1) on 216 fixed
// cases (tests/fixtures/nltk_bleu.jsonl, written by
// scripts/oracles/nltk_bleu.py with Debian's python3-nltk), and lengths of
// Python's zlib.compress.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attack/lm_scores.h"

using namespace mmia;

TEST_CASE("suffix match, matching prefix length and memorization score on hand cases") {
    const std::vector<int> suffix = {5, 6, 7, 8};
    CHECK(suffix_exact_match({5, 6, 7, 8}, suffix));
    CHECK(suffix_exact_match({5, 6, 7, 8, 9, 9}, suffix));  // longer generation: its first 4 count
    CHECK_FALSE(suffix_exact_match({5, 6, 7}, suffix));     // shorter: no match
    CHECK_FALSE(suffix_exact_match({5, 6, 0, 8}, suffix));
    CHECK(matching_prefix_length({5, 6, 0, 8}, suffix) == 2);
    CHECK(matching_prefix_length({0, 6, 7, 8}, suffix) == 0);
    CHECK(matching_prefix_length({5, 6, 7, 8}, suffix) == 4);
    CHECK(matching_prefix_length({}, suffix) == 0);
    // Positions equal: 0, 1, 3 of 4 (a later match after a miss still counts).
    CHECK(memorization_score({5, 6, 0, 8}, suffix) == 0.75);  // exact in binary
    CHECK(memorization_score({5}, suffix) == 0.25);
    CHECK(memorization_score({1, 2, 3, 4}, suffix) == 0.0);
    CHECK_THROWS_WITH_AS(suffix_exact_match({1}, {}), "suffix_exact_match: the true suffix is empty",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(memorization_score({1}, {}), "memorization_score: the true suffix is empty",
                         std::invalid_argument);
}

TEST_CASE("sentence BLEU-4 with method1 on a case worked by hand") {
    // ref a b c d e, hyp a b c d f: unigrams 4/5, bigrams 3/4, trigrams 2/3,
    // 4-grams 1/2; equal lengths so BP = 1;
    // BLEU = (4/5 * 3/4 * 2/3 * 1/2)^(1/4) = (1/5)^(1/4).
    const std::vector<std::string> ref = {"a", "b", "c", "d", "e"};
    CHECK(sentence_bleu4_method1(ref, {"a", "b", "c", "d", "f"}) == doctest::Approx(std::pow(0.2, 0.25)).epsilon(1e-14));
    // No 4-gram match: method1 gives 0.1/1 for it. hyp a b c x e: 4/5, 2/4, 1/3, 0 -> 0.1/2.
    CHECK(sentence_bleu4_method1(ref, {"a", "b", "c", "x", "e"}) ==
          doctest::Approx(std::pow(0.8 * 0.5 * (1.0 / 3) * 0.05, 0.25)).epsilon(1e-14));
    // Shorter hypothesis: BP = exp(1 - 5/3); hyp a b c: 3/3, 2/2, 1/1, 0 -> 0.1/1 (denominator max(1, 0)).
    CHECK(sentence_bleu4_method1(ref, {"a", "b", "c"}) ==
          doctest::Approx(std::exp(1.0 - 5.0 / 3.0) * std::pow(0.1, 0.25)).epsilon(1e-14));
    // No unigram in common: 0, whatever the smoothing. Empty hypothesis: 0.
    CHECK(sentence_bleu4_method1(ref, {"x", "y", "z", "w", "v"}) == 0.0);
    CHECK(sentence_bleu4_method1(ref, {}) == 0.0);
    // Clipping: "a a a a a" matches "a" once.
    CHECK(sentence_bleu4_method1(ref, {"a", "a", "a", "a", "a"}) ==
          doctest::Approx(std::pow(0.2 * (0.1 / 4) * (0.1 / 3) * (0.1 / 2), 0.25)).epsilon(1e-14));
}

TEST_CASE("Treebank tokenizer and BLEU equal NLTK 3.8 on 216 fixed cases") {
    std::ifstream f("tests/fixtures/nltk_bleu.jsonl");
    REQUIRE(f.good());
    std::string line;
    int cases = 0, nonzero = 0, below_one = 0;
    while (std::getline(f, line)) {
        const auto j = nlohmann::json::parse(line);
        const std::string ref = j["ref"], hyp = j["hyp"];
        CAPTURE(ref);
        CAPTURE(hyp);
        const auto rt = treebank_tokenize(seed003_preprocess(ref));
        const auto ht = treebank_tokenize(seed003_preprocess(hyp));
        CHECK(rt == j["ref_tokens"].get<std::vector<std::string>>());
        CHECK(ht == j["hyp_tokens"].get<std::vector<std::string>>());
        const double bleu = sentence_bleu4_method1(rt, ht), want = j["bleu"];
        CHECK(std::fabs(bleu - want) <= 1e-12);
        CHECK(std::fabs(seed003_bleu(ref, hyp) - j["seed003_bleu"].get<double>()) <= 1e-12);
        cases++;
        nonzero += want > 0;
        below_one += want > 0 && want < 1;
    }
    CHECK(cases == 216);
    // The fixture spans the range: zeros, partial matches and exact ones.
    CHECK(nonzero > 100);
    CHECK(below_one > 50);
}

TEST_CASE("seed 003's preprocessing, character slicing and exact / fuzzy rule") {
    CHECK(seed003_preprocess("  a b \n\n\t c  \n") == "a b c");
    CHECK(seed003_preprocess("\n\n") == "");
    // Characters are code points: 'é' (2 bytes) and '☃' (3 bytes) count as one each.
    CHECK(first_chars("caf\xc3\xa9 \xe2\x98\x83!", 6) == "caf\xc3\xa9 \xe2\x98\x83");
    CHECK(first_chars("caf\xc3\xa9", 4) == "caf\xc3\xa9");
    CHECK(first_chars("ab\xff\xfe" "cd", 3) == "ab\xff");  // an invalid byte is one char
    CHECK(first_chars("a\xc3", 5) == "a\xc3");             // a truncated sequence too
    CHECK(first_chars(std::string(150, 'x'), 100).size() == 100);
    // Only the first 100 characters take part: a difference after them is invisible.
    const std::string base = std::string(120, 'a');
    std::string words;
    for (int i = 0; i < 40; i++) words += "w" + std::to_string(i) + " ";
    CHECK(seed003_bleu(words, words.substr(0, 100) + "DIFFERENT TAIL") == 1.0);
    CHECK(seed003_exact(1.0));
    CHECK_FALSE(seed003_fuzzy(1.0));
    CHECK(seed003_fuzzy(0.76));
    CHECK_FALSE(seed003_fuzzy(0.75));
    CHECK_FALSE(seed003_exact(0.999));
}

TEST_CASE("perplexity, windowed perplexity and min-k% on hand cases") {
    // log 0.5 and log 0.25: mean = log(1/8)/2, perplexity sqrt(8).
    CHECK(perplexity({std::log(0.5), std::log(0.25)}) == doctest::Approx(std::sqrt(8.0)).epsilon(1e-14));
    CHECK_THROWS_AS(perplexity({}), std::invalid_argument);
    // Windows of 2 over {-1,-1,-3,-3,-1}: sums -2,-4,-6,-4 -> min perplexity e^1.
    const std::vector<double> lp = {-1, -1, -3, -3, -1};
    CHECK(min_window_perplexity(lp, 2) == doctest::Approx(std::exp(1.0)).epsilon(1e-14));
    CHECK(min_window_perplexity(lp, 5) == doctest::Approx(std::exp(9.0 / 5)).epsilon(1e-14));
    CHECK(min_window_perplexity(lp, 50) == doctest::Approx(std::exp(9.0 / 5)).epsilon(1e-14));  // short text
    CHECK(min_window_perplexity(lp, 1) == doctest::Approx(std::exp(1.0)).epsilon(1e-14));
    // min-k 20% of 10 values: the 2 lowest, -9 and -8 -> 8.5.
    const std::vector<double> ten = {-1, -2, -3, -4, -5, -6, -7, -8, -9, -0.5};
    CHECK(min_k_percent(ten, 0.2) == doctest::Approx(8.5).epsilon(1e-14));
    CHECK(min_k_percent(ten, 1.0) == doctest::Approx(4.55).epsilon(1e-14));
    CHECK(min_k_percent({-3, -1}, 0.2) == doctest::Approx(3.0).epsilon(1e-14));  // at least one token
    CHECK_THROWS_AS(min_k_percent(ten, 0.0), std::invalid_argument);
}

TEST_CASE("zlib bytes equal Python's len(zlib.compress(...))") {
    // Lengths printed by Python 3.11's zlib.compress (default level = 6).
    CHECK(zlib_bytes("") == 8);
    CHECK(zlib_bytes("hello") == 13);
    CHECK(zlib_bytes(std::string(1000, 'a')) == 17);
    std::string all;
    for (int r = 0; r < 4; r++)
        for (int b = 0; b < 256; b++) all += char(b);
    CHECK(zlib_bytes(all) == 286);
    CHECK(zlib_bytes(all, 1) == 287);  // the level matters, and is passed on
    CHECK(zlib_bytes("caf\xc3\xa9 \xe2\x98\x83 na\xc3\xafve") == 24);
}

TEST_CASE("exposure: log2 |R| - log2 rank") {
    // |R| = 4 (three candidates + the canary).
    CHECK(exposure(1.0, {2, 3, 4}) == doctest::Approx(2.0).epsilon(1e-14));        // rank 1
    CHECK(exposure(5.0, {2, 3, 4}) == doctest::Approx(0.0).epsilon(1e-14));        // rank 4
    CHECK(exposure(2.5, {2, 3, 4}) == doctest::Approx(1.0).epsilon(1e-14));        // rank 2
    CHECK(exposure(3.0, {2, 3, 4}) == doctest::Approx(2.0 - std::log2(2.5)).epsilon(1e-14));  // tie: half
    std::vector<double> many(1023, 10.0);
    CHECK(exposure(1.0, many) == doctest::Approx(10.0).epsilon(1e-14));  // log2(1024)
    CHECK_THROWS_AS(exposure(NAN, {1.0}), std::invalid_argument);
}

// ---- the exact substring index (attack/suffix_array.h) ---------------------

#include <random>

#include "attack/suffix_array.h"

namespace {
int64_t naive_count(const std::string& t, const std::string& p) {
    if (p.empty()) return int64_t(t.size()) + 1;
    int64_t c = 0;
    for (size_t i = 0; i + p.size() <= t.size(); i++) c += t.compare(i, p.size(), p) == 0;
    return c;
}
size_t naive_longest(const std::string& t, const std::string& s) {
    size_t best = 0;
    for (size_t i = 0; i < s.size(); i++)
        for (size_t len = 1; i + len <= s.size(); len++)
            if (naive_count(t, s.substr(i, len)) > 0) best = std::max(best, len);
    return best;
}
}  // namespace

TEST_CASE("suffix array: sorted suffixes and counts equal a brute-force search") {
    std::mt19937 rng(7);
    for (int trial = 0; trial < 40; trial++) {
        // Small alphabets (with byte 0, the document separator) force long repeats.
        const int alphabet = 2 + trial % 4, n = 1 + int(rng() % 300);
        std::string t;
        for (int i = 0; i < n; i++) t += char(trial % 2 ? "ab\0c"[rng() % alphabet] : 'a' + rng() % alphabet);
        SuffixArray sa(std::vector<uint8_t>(t.begin(), t.end()));
        const auto& s = sa.suffixes();
        REQUIRE(s.size() == t.size());
        for (size_t i = 1; i < s.size(); i++) CHECK(t.compare(size_t(s[i - 1]), std::string::npos, t, size_t(s[i])) < 0);
        for (int q = 0; q < 30; q++) {
            const size_t start = rng() % t.size(), len = rng() % 12;
            std::string p = t.substr(start, len);
            if (q % 3 == 0 && !p.empty()) p[rng() % p.size()] = char('a' + rng() % 5);  // maybe absent
            CAPTURE(p);
            CHECK(sa.count(p) == naive_count(t, p));
        }
        std::string sample;
        for (int i = 0; i < 20; i++) sample += char('a' + rng() % (alphabet + 1));
        CHECK(sa.longest_verbatim_run(sample) == naive_longest(t, sample));
        const size_t L = sa.longest_verbatim_run(sample);
        CHECK(sa.has_verbatim_window(sample, L));
        CHECK_FALSE(sa.has_verbatim_window(sample, L + 1));
    }
}

TEST_CASE("suffix array: the 50-byte verbatim rule on a corpus with a planted passage") {
    const std::string passage = "It is a truth universally acknowledged, that a single man in possession";
    std::string corpus = std::string(500, 'x') + passage + std::string(3, '\0') + "tail";
    SuffixArray sa(std::vector<uint8_t>(corpus.begin(), corpus.end()));
    CHECK(sa.count(passage) == 1);
    CHECK(sa.has_verbatim_window("noise noise " + passage.substr(5, 50) + " more noise", 50));
    CHECK_FALSE(sa.has_verbatim_window("noise noise " + passage.substr(5, 49) + " more noise", 50));
    CHECK(sa.longest_verbatim_run("zz" + passage + "zz") == passage.size() + 0);
    CHECK(sa.count(std::string(3, '\0')) == 1);
    CHECK(sa.count(std::string(500, 'x')) == 1);
    CHECK(sa.count(std::string(499, 'x')) == 2);
    SuffixArray empty(std::vector<uint8_t>{});
    CHECK(empty.count("a") == 0);
    CHECK(empty.longest_verbatim_run("abc") == 0);
}
