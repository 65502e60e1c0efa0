// lm_scores.h: the per-sample scores of language-model memorization and
// extraction (seed 003; Carlini et al. 2021 and 2023; Biderman et al. 2023;
// Shi et al. 2024; Carlini et al. 2019). Pure functions over token ids,
// per-token log-probabilities and texts; no model here. bin/extract computes
// the log-probabilities with the engines and calls these.
//
// Conventions: a text is raw bytes (the byte tokenizer's tokens); "chars"
// are Unicode code points of its UTF-8, an invalid byte counting as one.
// Log-probabilities are natural logs (nats), one per scored token.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mmia {

// ---- prefix extraction: the model's continuation against the true suffix --

// 1 if the first suffix.size() generated tokens equal the suffix exactly
// (Carlini et al. 2023, "extractable with k tokens of context"); a shorter
// generation is not a match. An empty suffix is refused (std::invalid_argument).
bool suffix_exact_match(const std::vector<int>& generated, const std::vector<int>& suffix);
// Tokens at the start of the suffix that the generation reproduces before
// its first mismatch, 0..suffix.size().
int matching_prefix_length(const std::vector<int>& generated, const std::vector<int>& suffix);
// Biderman et al. 2023's memorization score: the fraction of the suffix's
// positions i where generated[i] == suffix[i] (a missing generated token is
// a mismatch), in [0, 1]. Empty suffix: std::invalid_argument.
double memorization_score(const std::vector<int>& generated, const std::vector<int>& suffix);

// ---- seed 003's BLEU ------------------------------------------------------

// NLTK 3.8's TreebankWordTokenizer().tokenize(text) (the Penn Treebank
// regular expressions, convert_parentheses off), reimplemented with
// std::regex. Identical to NLTK on text whose whitespace is ASCII and that
// has no newline (seed003_preprocess removes them); NLTK's \s and split()
// also treat Unicode spaces as whitespace, this does not. Seed 003 called
// nltk.word_tokenize, which needs the Punkt model (not in Debian) and adds
// sentence splitting; docs/EXTRACTION.md says what that changes.
std::vector<std::string> treebank_tokenize(const std::string& text);
// Seed 003's preprocess_text: strip each line, drop empty lines, join the
// rest with one space.
std::string seed003_preprocess(const std::string& text);
// NLTK's sentence_bleu([reference], hypothesis) with weights (0.25,)*4 and
// SmoothingFunction().method1 (epsilon 0.1 added to zero n-gram match
// counts), one reference: 0 when no unigram matches; brevity penalty 1 if
// the hypothesis is longer than the reference, 0 if it is empty, else
// exp(1 - r/c). In [0, 1].
double sentence_bleu4_method1(const std::vector<std::string>& reference,
                              const std::vector<std::string>& hypothesis);
// The first `n` chars (code points; an invalid UTF-8 byte is one) of text.
std::string first_chars(const std::string& text, size_t n);
// Seed 003's score: reference = the true suffix text's first 100 chars,
// hypothesis = the generated continuation's first 100 chars, each through
// seed003_preprocess then treebank_tokenize, then sentence_bleu4_method1.
// exact = BLEU >= 1, fuzzy = 0.75 < BLEU < 1 (seed003_exact / _fuzzy).
double seed003_bleu(const std::string& true_suffix, const std::string& generated);
inline bool seed003_exact(double bleu) { return bleu >= 1.0; }
inline bool seed003_fuzzy(double bleu) { return bleu > 0.75 && bleu < 1.0; }

// ---- Carlini et al. 2021 scores over per-token log-probabilities ---------

// exp(-mean(logprobs)); the perplexity of the scored tokens. Empty:
// std::invalid_argument.
double perplexity(const std::vector<double>& logprobs);
// The minimum perplexity over every window of `window` consecutive tokens
// (Carlini et al. 2021's "Window", 50 tokens); fewer tokens than the window:
// the perplexity of all of them.
double min_window_perplexity(const std::vector<double>& logprobs, int window = 50);
// Min-k% probability (Shi et al. 2024; MIMIR's min_k): -mean of the lowest
// max(1, floor(k * n)) token log-probabilities. Higher = less likely a member.
double min_k_percent(const std::vector<double>& logprobs, double k = 0.2);
// Bytes of zlib.compress(text) at level 6 (Python's default), the zlib
// entropy of Carlini et al. 2021.
int64_t zlib_bytes(const std::string& text, int level = 6);

// ---- Secret Sharer exposure (Carlini et al. 2019) --------------------------

// exposure = log2(|R|) - log2(rank), rank = 1 + the number of candidates
// scored strictly better (lower perplexity) than the canary, ties counted
// half; |R| = candidates.size() + 1 (the canary is one of the space's
// members). Max log2(|R|) when the canary ranks first.
double exposure(double canary_perplexity, const std::vector<double>& candidate_perplexities);

}  // namespace mmia
