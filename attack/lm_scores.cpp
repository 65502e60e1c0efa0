// lm_scores.cpp: see lm_scores.h.
#include "attack/lm_scores.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <regex>
#include <stdexcept>

namespace mmia {

// ---- prefix extraction ------------------------------------------------------

static void need_suffix(const std::vector<int>& suffix, const char* what) {
    if (suffix.empty()) throw std::invalid_argument(std::string(what) + ": the true suffix is empty");
}

bool suffix_exact_match(const std::vector<int>& generated, const std::vector<int>& suffix) {
    need_suffix(suffix, "suffix_exact_match");
    return matching_prefix_length(generated, suffix) == int(suffix.size());
}

int matching_prefix_length(const std::vector<int>& generated, const std::vector<int>& suffix) {
    size_t n = 0;
    while (n < suffix.size() && n < generated.size() && generated[n] == suffix[n]) n++;
    return int(n);
}

double memorization_score(const std::vector<int>& generated, const std::vector<int>& suffix) {
    need_suffix(suffix, "memorization_score");
    size_t same = 0;
    for (size_t i = 0; i < suffix.size() && i < generated.size(); i++) same += generated[i] == suffix[i];
    return double(same) / double(suffix.size());
}

// ---- Treebank tokenizer and BLEU -------------------------------------------

namespace {
struct Rule {
    std::regex re;
    const char* fmt;  // ECMAScript format: $1, $&
};
Rule rule(const char* re, const char* fmt, bool icase = false) {
    auto flags = std::regex::ECMAScript;
    if (icase) flags |= std::regex::icase;
    return Rule{std::regex(re, flags), fmt};
}
// NLTK 3.8 nltk/tokenize/treebank.py, TreebankWordTokenizer, in its order.
// Python's "\g<0>" is "$&", "\1" is "$1"; (?i) becomes the icase flag and
// the (?#X) comments are dropped.
const std::vector<Rule>& treebank_rules() {
    static const std::vector<Rule> rules = [] {
        std::vector<Rule> r;
        // STARTING_QUOTES
        r.push_back(rule(R"(^")", "``"));
        r.push_back(rule(R"((``))", " $1 "));
        r.push_back(rule(R"(([ (\[{<])("|''))", "$1 `` "));
        // PUNCTUATION
        r.push_back(rule(R"(([:,])([^\d]))", " $1 $2"));
        r.push_back(rule(R"(([:,])$)", " $1 "));
        r.push_back(rule(R"(\.\.\.)", " ... "));
        r.push_back(rule(R"([;@#$%&])", " $& "));
        r.push_back(rule(R"(([^.])(\.)([\])}>"']*)\s*$)", "$1 $2$3 "));
        r.push_back(rule(R"([?!])", " $& "));
        r.push_back(rule(R"(([^'])' )", "$1 ' "));
        // PARENS_BRACKETS, DOUBLE_DASHES
        r.push_back(rule(R"([\]\[(){}<>])", " $& "));
        r.push_back(rule(R"(--)", " -- "));
        return r;
    }();
    return rules;
}
const std::vector<Rule>& treebank_ending_rules() {
    static const std::vector<Rule> rules = [] {
        std::vector<Rule> r;
        // ENDING_QUOTES
        r.push_back(rule(R"('')", " '' "));
        r.push_back(rule(R"(")", " '' "));
        r.push_back(rule(R"(([^' ])('[sS]|'[mM]|'[dD]|') )", "$1 $2 "));
        r.push_back(rule(R"(([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) )", "$1 $2 "));
        // CONTRACTIONS2, CONTRACTIONS3 (MacIntyre), case-insensitive
        for (const char* re : {R"(\b(can)(not)\b)", R"(\b(d)('ye)\b)", R"(\b(gim)(me)\b)", R"(\b(gon)(na)\b)",
                               R"(\b(got)(ta)\b)", R"(\b(lem)(me)\b)", R"(\b(more)('n)\b)", R"(\b(wan)(na)(?=\s))",
                               R"( ('t)(is)\b)", R"( ('t)(was)\b)"})
            r.push_back(rule(re, " $1 $2 ", true));
        return r;
    }();
    return rules;
}
}  // namespace

std::vector<std::string> treebank_tokenize(const std::string& input) {
    std::string text = input;
    for (const Rule& r : treebank_rules()) text = std::regex_replace(text, r.re, r.fmt);
    text = " " + text + " ";
    for (const Rule& r : treebank_ending_rules()) text = std::regex_replace(text, r.re, r.fmt);
    std::vector<std::string> out;
    size_t i = 0;
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; };
    while (i < text.size()) {
        while (i < text.size() && space(text[i])) i++;
        size_t j = i;
        while (j < text.size() && !space(text[j])) j++;
        if (j > i) out.push_back(text.substr(i, j - i));
        i = j;
    }
    return out;
}

std::string seed003_preprocess(const std::string& text) {
    auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; };
    std::string out;
    size_t i = 0;
    while (i <= text.size()) {
        size_t j = text.find('\n', i);
        if (j == std::string::npos) j = text.size();
        size_t a = i, b = j;
        while (a < b && space(text[a])) a++;
        while (b > a && space(text[b - 1])) b--;
        if (b > a) {
            if (!out.empty()) out += ' ';
            out.append(text, a, b - a);
        }
        i = j + 1;
    }
    return out;
}

double sentence_bleu4_method1(const std::vector<std::string>& ref, const std::vector<std::string>& hyp) {
    const double epsilon = 0.1;
    double log_sum = 0.0;
    bool unigram_match = false;
    for (size_t n = 1; n <= 4; n++) {
        std::map<std::vector<std::string>, int64_t> hyp_counts, ref_counts;
        for (size_t i = 0; i + n <= hyp.size(); i++)
            hyp_counts[std::vector<std::string>(hyp.begin() + i, hyp.begin() + i + n)]++;
        for (size_t i = 0; i + n <= ref.size(); i++)
            ref_counts[std::vector<std::string>(ref.begin() + i, ref.begin() + i + n)]++;
        int64_t numerator = 0, total = 0;
        for (const auto& [gram, count] : hyp_counts) {
            auto it = ref_counts.find(gram);
            numerator += std::min(count, it == ref_counts.end() ? int64_t(0) : it->second);
            total += count;
        }
        const double denominator = double(std::max<int64_t>(1, total));
        if (n == 1) unigram_match = numerator > 0;
        const double p = numerator == 0 ? epsilon / denominator : double(numerator) / denominator;
        log_sum += 0.25 * std::log(p);
    }
    if (!unigram_match) return 0.0;
    const double c = double(hyp.size()), r = double(ref.size());
    const double bp = c > r ? 1.0 : c == 0 ? 0.0 : std::exp(1.0 - r / c);
    return bp * std::exp(log_sum);
}

std::string first_chars(const std::string& text, size_t n) {
    size_t i = 0, chars = 0;
    while (i < text.size() && chars < n) {
        const unsigned char b = static_cast<unsigned char>(text[i]);
        size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 1;
        if (len > 1) {  // a valid sequence needs len - 1 continuation bytes
            bool ok = i + len <= text.size();
            for (size_t k = 1; ok && k < len; k++) ok = (static_cast<unsigned char>(text[i + k]) >> 6) == 0x2;
            if (!ok) len = 1;
        }
        i += len;
        chars++;
    }
    return text.substr(0, i);
}

double seed003_bleu(const std::string& true_suffix, const std::string& generated) {
    return sentence_bleu4_method1(treebank_tokenize(seed003_preprocess(first_chars(true_suffix, 100))),
                                  treebank_tokenize(seed003_preprocess(first_chars(generated, 100))));
}

// ---- Carlini et al. 2021 scores ---------------------------------------------

double perplexity(const std::vector<double>& logprobs) {
    if (logprobs.empty()) throw std::invalid_argument("perplexity: no tokens");
    double s = 0.0;
    for (double lp : logprobs) s += lp;
    return std::exp(-s / double(logprobs.size()));
}

double min_window_perplexity(const std::vector<double>& logprobs, int window) {
    if (window < 1) throw std::invalid_argument("min_window_perplexity: window must be >= 1");
    const size_t w = size_t(window);
    if (logprobs.size() <= w) return perplexity(logprobs);
    // Each window's sum from scratch: no running-sum drift over long texts.
    double best = INFINITY;
    for (size_t i = 0; i + w <= logprobs.size(); i++) {
        double s = 0.0;
        for (size_t j = i; j < i + w; j++) s += logprobs[j];
        best = std::min(best, std::exp(-s / double(w)));
    }
    return best;
}

double min_k_percent(const std::vector<double>& logprobs, double k) {
    if (logprobs.empty()) throw std::invalid_argument("min_k_percent: no tokens");
    if (!(k > 0.0 && k <= 1.0)) throw std::invalid_argument("min_k_percent: k must be in (0, 1]");
    std::vector<double> v = logprobs;
    std::sort(v.begin(), v.end());
    const size_t m = std::max<size_t>(1, size_t(std::floor(k * double(v.size()))));
    double s = 0.0;
    for (size_t i = 0; i < m; i++) s += v[i];
    return -s / double(m);
}

int64_t zlib_bytes(const std::string& text, int level) {
    uLongf n = compressBound(uLong(text.size()));
    std::vector<Bytef> out(n);
    if (compress2(out.data(), &n, reinterpret_cast<const Bytef*>(text.data()), uLong(text.size()), level) != Z_OK)
        throw std::runtime_error("zlib_bytes: compress2 failed");
    return int64_t(n);
}

double exposure(double canary_perplexity, const std::vector<double>& candidates) {
    if (!std::isfinite(canary_perplexity)) throw std::invalid_argument("exposure: canary perplexity is not finite");
    double rank = 1.0;
    for (double c : candidates) {
        if (!std::isfinite(c)) throw std::invalid_argument("exposure: a candidate perplexity is not finite");
        rank += c < canary_perplexity ? 1.0 : c == canary_perplexity ? 0.5 : 0.0;
    }
    return std::log2(double(candidates.size() + 1)) - std::log2(rank);
}

}  // namespace mmia
