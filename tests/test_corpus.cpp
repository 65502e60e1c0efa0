// test_corpus.cpp: the text corpora (common/corpus.cpp, bin/corpus): the
// split, near-duplicate and canary rules against independent definitions,
// the training and held-out streams, refusal of bad corpus files and bad
// command lines, and one real corpus built from its Debian package.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include <sys/stat.h>

#include "common/corpus.h"
#include "tests/cli_check.h"
#include "tests/temp_dir.h"

using namespace mmia;

namespace {

// --- Independent definitions (not the library's code) --------------------------

// FNV-1a 64 as the IETF draft (draft-eastlake-fnv) states it.
uint64_t ref_fnv1a(const std::string& s) {
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < s.size(); i++) h = (h ^ uint64_t(uint8_t(s[i]))) * 1099511628211ULL;
    return h;
}
// SplitMix64's first output for a state x (Vigna's splitmix64.c, next()).
uint64_t ref_splitmix_first(uint64_t x) {
    uint64_t z = x + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
bool ref_heldout(const std::string& text, uint64_t seed, double f) {
    return double(ref_splitmix_first(ref_fnv1a(text) ^ seed) >> 11) / 9007199254740992.0 < f;
}
// Near-duplicates by brute force: any n-byte substring of a held-out document
// found verbatim in any training document.
std::vector<bool> ref_near(const std::vector<CorpusDocument>& docs, size_t n) {
    std::vector<bool> out(docs.size(), false);
    for (size_t h = 0; h < docs.size(); h++) {
        if (docs[h].train || docs[h].text.size() < n) continue;
        for (size_t i = 0; i + n <= docs[h].text.size() && !out[h]; i++)
            for (const CorpusDocument& t : docs)
                if (t.train && t.text.find(docs[h].text.substr(i, n)) != std::string::npos) {
                    out[h] = true;
                    break;
                }
    }
    return out;
}
int64_t occurrences(const std::string& hay, const std::string& needle) {
    int64_t n = 0;
    for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) n++;
    return n;
}
std::string as_string(const std::vector<uint8_t>& v) { return std::string(v.begin(), v.end()); }
std::vector<std::string> split_eos(const std::string& s) {
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t i = 0; i < s.size(); i++)
        if (s[i] == char(kCorpusEos)) {
            out.push_back(s.substr(start, i - start));
            start = i + 1;
        }
    CHECK(start == s.size());  // the stream ends with a separator
    return out;
}

// A fixture: n multi-line documents of random words, one seed per call.
std::vector<CorpusDocument> fixture_docs(int n, uint32_t seed) {
    std::mt19937 rng(seed);
    const char* words[] = {"alpha", "beta", "gamma", "delta", "kernel", "scan", "state", "token",
                           "river", "stone", "lamp", "paper", "quiet", "seven", "orbit", "maple"};
    std::vector<CorpusDocument> docs;
    for (int i = 0; i < n; i++) {
        CorpusDocument d;
        d.source = "fixture:doc" + std::to_string(i);
        int lines = 1 + int(rng() % 6);
        for (int l = 0; l < lines; l++) {
            int nw = 2 + int(rng() % 8);
            for (int w = 0; w < nw; w++) d.text += std::string(w ? " " : "") + words[rng() % 16];
            d.text += "\n";
        }
        docs.push_back(d);
    }
    return docs;
}

std::string slurp(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}
void spit(const std::string& p, const std::string& s) {
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f << s;
}

// Replaces documents.jsonl and makes the manifest agree with it (sha256,
// counts), so a test reaches the check behind the checksum.
void replace_documents(const std::string& dir, const std::string& docs, int64_t n, int64_t bytes) {
    spit(dir + "/documents.jsonl", docs);
    json m = json::parse(slurp(dir + "/manifest.json"));
    m["sha256"] = corpus_sha256_hex(docs.data(), docs.size());
    m["n_documents"] = n;
    m["bytes"] = bytes;
    spit(dir + "/manifest.json", m.dump(2));
}

Corpus build_fixture(const std::string& dir, int n_docs = 300, int per_count = 2,
                     std::vector<int> counts = {1, 2, 4, 8}, uint64_t seed = 7) {
    CorpusBuildOptions opt;
    opt.name = "fixture";
    opt.seed = seed;
    opt.canaries_per_count = per_count;
    opt.canary_insertions = counts;
    Corpus c = assemble_corpus(fixture_docs(n_docs, 1234), opt);
    write_corpus(c, dir);
    return c;
}

const std::string kCorpusBin = cli_env_or("CORPUS_BIN", "bin/corpus");

// A failed run of bin/corpus: the exit code, one "error: " line holding needle, no stdout.
void corpus_fails(const std::string& args, const std::string& needle, const std::string& dir, int code) {
    REQUIRE_MESSAGE(access(kCorpusBin.c_str(), X_OK) == 0, "no executable " << kCorpusBin << " (make bin/corpus)");
    CliRun r = cli_run(kCorpusBin, args, dir);
    INFO("args: " << args << "\nstderr: " << r.err);
    CHECK(r.code == code);
    CHECK(r.out.empty());
    CHECK(r.err.rfind("error: ", 0) == 0);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(r.err.find(needle) != std::string::npos);
}

}  // namespace

TEST_CASE("hashes agree with their published values") {
    // FNV-1a 64 test vectors (draft-eastlake-fnv, and Noll's table).
    CHECK(corpus_fnv1a64("") == 0xcbf29ce484222325ULL);
    CHECK(corpus_fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
    CHECK(corpus_fnv1a64("foobar") == 0x85944171f73967e8ULL);
    // SplitMix64 from state 0 (Vigna's splitmix64.c): its first two outputs.
    uint64_t s = 0;
    CHECK(corpus_splitmix64(s) == 0xe220a8397b1dcdafULL);
    CHECK(corpus_splitmix64(s) == 0x6e789e6aa1b965f4ULL);
    // SHA-256 (FIPS 180-4 examples).
    CHECK(corpus_sha256_hex("", 0) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(corpus_sha256_hex("abc", 3) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST_CASE("the split follows its documented rule, is deterministic, and keeps duplicates together") {
    std::vector<CorpusDocument> docs = fixture_docs(2000, 99);
    int held = 0;
    for (const CorpusDocument& d : docs) {
        const bool h = corpus_is_heldout(d.text, 42, 0.2);
        REQUIRE(h == ref_heldout(d.text, 42, 0.2));
        held += h;
    }
    // Binomial(n, 0.2) for the distinct texts; 5 sigma of 2000 draws is 0.045.
    std::set<std::string> distinct;
    for (const CorpusDocument& d : docs) distinct.insert(d.text);
    int held_distinct = 0;
    for (const std::string& t : distinct) held_distinct += corpus_is_heldout(t, 42, 0.2);
    CHECK(std::abs(double(held_distinct) / double(distinct.size()) - 0.2) < 0.045);

    CorpusBuildOptions opt;
    opt.name = "t";
    opt.seed = 42;
    docs.push_back(docs[5]);  // an exact duplicate, and a third copy
    docs.push_back(docs[5]);
    Corpus a = assemble_corpus(docs, opt), b = assemble_corpus(docs, opt);
    REQUIRE(a.docs.size() == b.docs.size());
    for (size_t i = 0; i < a.docs.size(); i++) {
        CHECK(a.docs[i].text == b.docs[i].text);
        CHECK(a.docs[i].train == b.docs[i].train);
        CHECK(a.docs[i].train == !ref_heldout(a.docs[i].text, 42, 0.2));
        CHECK(a.docs[i].id == int64_t(i));
    }
    CHECK(a.docs.size() == distinct.size());
    CHECK(a.manifest["exact_duplicates_collapsed"] == int64_t(docs.size() - distinct.size()));
    int64_t copies = 0;
    for (const CorpusDocument& d : a.docs) copies += d.copies;
    CHECK(copies == int64_t(docs.size()));  // every source document is still there, once or as a copy
    for (const CorpusDocument& d : a.docs)
        if (d.text == docs[5].text) CHECK(d.copies >= 3);
    opt.seed = 43;
    Corpus c = assemble_corpus(docs, opt);
    int moved = 0;
    for (size_t i = 0; i < a.docs.size(); i++) moved += a.docs[i].train != c.docs[i].train;
    CHECK(moved > 50);  // another seed, another split
}

TEST_CASE("near-duplicates: a hand-made case and a brute-force second implementation") {
    const std::string s50 = "The quick brown fox jumps over the lazy dog 123456";  // 50 bytes
    REQUIRE(s50.size() == 50);
    auto doc = [](std::string t, bool train) {
        CorpusDocument d;
        d.text = std::move(t);
        d.train = train;
        return d;
    };
    std::string changed = s50;
    changed[25] = '#';
    std::vector<CorpusDocument> docs = {
        doc("intro " + s50 + " outro", true),
        doc("held out, shares all 50: [" + s50 + "]", false),                 // 1: yes
        doc("shares only 49:" + s50.substr(0, 49) + "!" + s50.substr(1), false),  // 2: no (49 + 49)
        doc(s50.substr(0, 40), false),                                       // 3: shorter than 50
        doc("one byte changed: " + changed, false),                           // 4: no
        doc(s50, false),                                                      // 5: exactly the 50
    };
    std::vector<bool> near = corpus_near_duplicates(docs, 50);
    CHECK(near == std::vector<bool>{false, true, false, false, false, true});
    CHECK(near == ref_near(docs, 50));

    // Random documents over a 3-letter alphabet with n = 8: many partial hits.
    std::mt19937 rng(5);
    for (int round = 0; round < 5; round++) {
        std::vector<CorpusDocument> r;
        for (int i = 0; i < 40; i++) {
            std::string t;
            const int len = int(rng() % 40);
            for (int k = 0; k < len; k++) t += "abc"[rng() % 3];
            r.push_back(doc(t, rng() % 3 != 0));
        }
        std::vector<bool> got = corpus_near_duplicates(r, 8), want = ref_near(r, 8);
        CHECK(got == want);
        CHECK(std::count(want.begin(), want.end(), true) > 0);
    }
    CHECK_THROWS_AS(corpus_near_duplicates(docs, 0), std::runtime_error);

    // --dedup drops exactly the flagged held-out documents.
    std::vector<CorpusDocument> fx = fixture_docs(400, 3);
    for (int k = 0; k < 100; k++) {  // near-duplicates: the same text with a different first line
        CorpusDocument v = fx[size_t(k)];
        v.text = "variant " + std::to_string(k) + "\n" + v.text;
        fx.push_back(v);
    }
    CorpusBuildOptions opt;
    opt.name = "d";
    opt.ngram = 30;
    Corpus plain = assemble_corpus(fx, opt);
    opt.dedup = true;
    Corpus dedup = assemble_corpus(fx, opt);
    const int64_t flagged = plain.manifest["near_duplicates"]["heldout_sharing_an_ngram_with_train"];
    CHECK(flagged > 0);
    CHECK(dedup.manifest["dedup"]["heldout_dropped"] == flagged);
    CHECK(int64_t(dedup.docs.size()) == int64_t(plain.docs.size()) - flagged);
    std::vector<bool> after = corpus_near_duplicates(dedup.docs, 30);
    CHECK(std::count(after.begin(), after.end(), true) == 0);
    CHECK(dedup.manifest["n_train"] == plain.manifest["n_train"]);
    // Every held-out document a near-duplicate: dedup would leave none, refused.
    std::vector<CorpusDocument> boiler = fixture_docs(200, 4);
    for (CorpusDocument& d : boiler) d.text = "Copyright (c) 1993 The Authors. All rights reserved.\n" + d.text;
    opt.ngram = 50;
    CHECK_THROWS_WITH_AS(assemble_corpus(boiler, opt), doctest::Contains("--dedup dropped every held-out document"),
                         std::runtime_error);
}

TEST_CASE("canaries: each appears exactly `insertions` times in the training stream, never held out") {
    TempDir dir("mmia_corpus");
    Corpus built = build_fixture(dir.path.string());
    Corpus c = load_corpus(dir.path.string());
    REQUIRE(c.canaries.size() == 8);  // 2 per count x {1, 2, 4, 8}
    const std::string train = as_string(training_stream(c, 1)), held = as_string(heldout_stream(c));
    std::set<std::string> secrets;
    for (const Canary& k : c.canaries) {
        INFO("canary " << k.id << ": " << k.text);
        CHECK(k.text == std::string("my social security number is ") + k.secret);
        CHECK(k.secret.size() == 17);  // 9 digits, 8 spaces
        for (size_t i = 0; i < k.secret.size(); i++)
            CHECK((i % 2 ? k.secret[i] == ' ' : (k.secret[i] >= '0' && k.secret[i] <= '9')));
        secrets.insert(k.secret);
        CHECK(occurrences(train, k.text) == k.insertions);
        CHECK(occurrences(held, k.text) == 0);
        CHECK(std::set<int64_t>(k.doc_ids.begin(), k.doc_ids.end()).size() == size_t(k.insertions));
        for (size_t i = 0; i < k.doc_ids.size(); i++) {
            const CorpusDocument& d = c.docs[size_t(k.doc_ids[i])];
            CHECK(d.train);
            CHECK(d.text.compare(size_t(k.offsets[i]), k.text.size(), k.text) == 0);
            // its own line: at a line start, followed by a newline
            CHECK((k.offsets[i] == 0 || d.text[size_t(k.offsets[i]) - 1] == '\n'));
            CHECK(d.text[size_t(k.offsets[i]) + k.text.size()] == '\n');
        }
    }
    CHECK(secrets.size() == c.canaries.size());
    // The same seed gives the same canaries; another seed other ones.
    TempDir dir2("mmia_corpus");
    build_fixture(dir2.path.string());
    CHECK(slurp(dir.file("canaries.json")) == slurp(dir2.file("canaries.json")));
    CHECK(slurp(dir.file("documents.jsonl")) == slurp(dir2.file("documents.jsonl")));
    TempDir dir3("mmia_corpus");
    build_fixture(dir3.path.string(), 300, 2, {1, 2, 4, 8}, 8);
    CHECK(slurp(dir.file("canaries.json")) != slurp(dir3.file("canaries.json")));
    // Too few host documents for a count is refused, not silently short.
    CorpusBuildOptions opt;
    opt.name = "few";
    opt.canaries_per_count = 1;
    opt.canary_insertions = {1000};
    CHECK_THROWS_WITH_AS(assemble_corpus(fixture_docs(50, 1), opt), doctest::Contains("needs that many"),
                         std::runtime_error);
}

TEST_CASE("document repeats: r copies of seeded training documents of the stated sizes, no canary in them") {
    CorpusBuildOptions opt;
    opt.name = "fixture";
    opt.seed = 7;
    opt.canaries_per_count = 2;
    opt.canary_insertions = {1, 2, 4};
    const Corpus plain = assemble_corpus(fixture_docs(300, 1234), opt);
    CorpusBuildOptions bare_opt = opt;
    bare_opt.canaries_per_count = 0;
    const Corpus bare = assemble_corpus(fixture_docs(300, 1234), bare_opt);  // no canaries, no repeats
    opt.repeats_per_count = 2;
    opt.repeat_counts = {1, 2, 8};
    const Corpus c = assemble_corpus(fixture_docs(300, 1234), opt);
    std::map<int, int> per_copies;  // copies -> repeated documents
    std::set<int64_t> repeated_ids;
    for (const CorpusDocument& d : c.docs) {
        if (!d.repeated) continue;
        INFO("document " << d.id);
        per_copies[d.copies]++;
        repeated_ids.insert(d.id);
        CHECK(d.train);
        CHECK(int64_t(d.text.size()) >= kRepeatMinBytes);
        CHECK(int64_t(d.text.size()) <= kRepeatMaxBytes);
        // the same document, unrepeated and without a canary, in the corpus with neither
        CHECK(bare.docs[size_t(d.id)].text == d.text);
        CHECK(bare.docs[size_t(d.id)].copies == 1);
    }
    CHECK(per_copies == std::map<int, int>{{1, 2}, {2, 2}, {8, 2}});
    // Every other document as in the corpus without repeats.
    REQUIRE(c.docs.size() == plain.docs.size());
    for (size_t i = 0; i < c.docs.size(); i++)
        if (!repeated_ids.count(int64_t(i))) CHECK(c.docs[i].copies == plain.docs[i].copies);
    // The training stream holds a repeated document `copies` times, as a whole document.
    const std::string stream = as_string(training_stream(c, 3));
    std::map<std::string, int> whole;  // document text -> times in the stream
    for (size_t at = 0; at < stream.size();) {
        size_t end = stream.find('\0', at);
        whole[stream.substr(at, end - at)]++;
        at = end + 1;
    }
    for (int64_t id : repeated_ids) CHECK(whole[c.docs[size_t(id)].text] == c.docs[size_t(id)].copies);
    // Canaries: the same secrets (their own generator), never in a repeated document.
    REQUIRE(c.canaries.size() == plain.canaries.size());
    for (size_t i = 0; i < c.canaries.size(); i++) {
        CHECK(c.canaries[i].secret == plain.canaries[i].secret);
        for (int64_t id : c.canaries[i].doc_ids) CHECK(!repeated_ids.count(id));
    }
    CHECK(c.manifest["document_repeats"]["documents"] == 6);
    CHECK(!plain.manifest.contains("document_repeats"));
    // Written and loaded back: "repeated" survives, and only repeated documents carry the key.
    TempDir dir("mmia_corpus");
    Corpus w = c;
    write_corpus(w, dir.path.string());
    const Corpus back = load_corpus(dir.path.string());
    for (size_t i = 0; i < back.docs.size(); i++) CHECK(back.docs[i].repeated == c.docs[i].repeated);
    CHECK(occurrences(slurp(dir.file("documents.jsonl")), "\"repeated\":true") == 6);
    CHECK(occurrences(slurp(dir.file("documents.jsonl")), "repeated") == 6);
    // Too few candidates: refused, not silently short.
    opt.repeats_per_count = 1000;
    CHECK_THROWS_WITH_AS(assemble_corpus(fixture_docs(300, 1234), opt),
                         doctest::Contains("1000 repeated documents x 3 repeat counts need 3000 training documents of "
                                           "200..2000 bytes with one copy; there are"),
                         std::runtime_error);
}

TEST_CASE("training_stream repeats copies, separates with kCorpusEos, and is seeded") {
    std::vector<CorpusDocument> docs = fixture_docs(200, 11);
    for (int k = 0; k < 3; k++) docs.push_back(docs[0]);  // 4 copies of docs[0]
    CorpusBuildOptions opt;
    opt.name = "s";
    Corpus c = assemble_corpus(docs, opt);
    std::multiset<std::string> want_train, want_held;
    for (const CorpusDocument& d : c.docs)
        for (int k = 0; k < (d.train ? d.copies : 1); k++) (d.train ? want_train : want_held).insert(d.text);
    const std::string s1 = as_string(training_stream(c, 1)), s2 = as_string(training_stream(c, 2));
    std::vector<std::string> p1 = split_eos(s1), p2 = split_eos(s2);
    CHECK(std::multiset<std::string>(p1.begin(), p1.end()) == want_train);
    CHECK(std::multiset<std::string>(p2.begin(), p2.end()) == want_train);
    CHECK(s1 != s2);                                   // another order
    CHECK(s1 == as_string(training_stream(c, 1)));    // the same order again
    CHECK(std::count(s1.begin(), s1.end(), char(kCorpusEos)) == int64_t(want_train.size()));
    std::vector<std::string> ph = split_eos(as_string(heldout_stream(c)));
    std::vector<std::string> held_order;
    for (const CorpusDocument& d : c.docs)
        if (!d.train) held_order.push_back(d.text);
    CHECK(ph == held_order);  // corpus order, once each
    // docs[0]'s text: 4 times in whichever stream holds it.
    const int64_t n0 = std::count(p1.begin(), p1.end(), docs[0].text);
    const int64_t h0 = std::count(ph.begin(), ph.end(), docs[0].text);
    CHECK(((n0 == 4 && h0 == 0) || (n0 == 0 && h0 == 1)));
}

TEST_CASE("bad corpus files are refused with one clear error (library and bin/corpus info)") {
    TempDir dir("mmia_corpus");
    const std::string d = dir.file("c");
    auto fresh = [&]() {
        std::filesystem::remove_all(d);
        build_fixture(d, 120, 1, {1, 2});
    };
    auto refused = [&](const std::string& needle) {
        CHECK_THROWS_WITH_AS(load_corpus(d), doctest::Contains(needle.c_str()), std::runtime_error);
        corpus_fails("info " + cli_quote(d), needle, dir.path.string(), 1);
    };
    const std::string good_line =
        R"({"id":0,"source":"x","split":"train","copies":1,"text":"hello\n"})" "\n";
    const std::string held_line =
        R"({"id":1,"source":"x","split":"heldout","copies":1,"text":"world\n"})" "\n";
    auto with_line = [&](const std::string& second) {
        fresh();
        spit(d + "/canaries.json", "[]\n");
        replace_documents(d, good_line + second, 2, 12);
    };
    SUBCASE("a good one loads, and info prints its summary") {
        fresh();
        CHECK_NOTHROW(load_corpus(d));
        CliRun r = cli_run(kCorpusBin, "info " + cli_quote(d), dir.path.string());
        CHECK(r.code == 0);
        CHECK(r.out.find("corpus fixture") != std::string::npos);
        CHECK(r.out.find("canaries 2 (3 insertions)") != std::string::npos);
    }
    SUBCASE("checksum mismatch") {
        fresh();
        std::string docs = slurp(d + "/documents.jsonl");
        docs[docs.find("\"text\":\"") + 8] ^= 1;  // one letter of the first text
        spit(d + "/documents.jsonl", docs);
        refused("differs from the manifest's");
    }
    SUBCASE("missing files and directory") {
        fresh();
        std::remove((d + "/canaries.json").c_str());
        refused("canaries.json: cannot open (No such file or directory)");
        fresh();
        std::remove((d + "/manifest.json").c_str());
        refused("manifest.json: cannot open");
        CHECK_THROWS_WITH_AS(load_corpus(dir.file("nope")), doctest::Contains("cannot open corpus directory"),
                             std::runtime_error);
    }
    SUBCASE("malformed JSON line") {
        with_line("{\"id\":1,\"source\":\"x\",\n");
        refused("documents.jsonl: line 2: malformed JSON");
        with_line(R"({"id":1,"source":"x","split":"heldout","copies":1e999,"text":"w"})" "\n");
        refused("line 2: malformed JSON ([json.exception.out_of_range.406] number overflow");  // a fuzz finding
    }
    SUBCASE("bad UTF-8: a lone surrogate escape, raw invalid bytes") {
        with_line(R"({"id":1,"source":"x","split":"heldout","copies":1,"text":"bad \ud800 escape"})" "\n");
        refused("line 2: malformed JSON");
        with_line("{\"id\":1,\"source\":\"x\",\"split\":\"heldout\",\"copies\":1,\"text\":\"raw \xff\xfe\"}\n");
        refused("line 2: malformed JSON");
    }
    SUBCASE("byte 0 in a text, bad fields") {
        with_line(R"({"id":1,"source":"x","split":"heldout","copies":1,"text":"nul \u0000 here"})" "\n");
        refused("contains byte 0");
        with_line(R"({"id":5,"source":"x","split":"heldout","copies":1,"text":"w"})" "\n");
        refused("id 5, expected 1");
        with_line(R"({"id":1,"source":"x","split":"test","copies":1,"text":"w"})" "\n");
        refused("expected \"train\" or \"heldout\"");
        with_line(R"({"id":1,"source":"x","split":"heldout","copies":0,"text":"w"})" "\n");
        refused("\"copies\" is 0, outside 1..1000000");
        with_line(R"({"id":1,"source":"x","split":"train","copies":2,"repeated":"yes","text":"w"})" "\n");
        refused("line 2: \"repeated\" is not true or false");
        with_line(R"({"id":1,"source":"x","split":"heldout","copies":2,"repeated":true,"text":"w"})" "\n");
        refused("line 2: a repeated document is held out");
        // 1,000,000 copies of a 2,000-byte text: a 2 GB stream, refused before any allocation.
        with_line(R"({"id":1,"source":"x","split":"train","copies":1000000,"text":")" + std::string(2000, 'a') +
                  "\"}\n");
        refused("the training stream (documents x copies) would pass the cap of 1073741824 bytes");
        with_line(R"({"id":1,"source":"x","split":"heldout","copies":1})" "\n");
        refused("missing \"text\"");
        with_line("[1,2]\n");
        refused("not a JSON object");
    }
    SUBCASE("an empty corpus, and one side of the split empty") {
        fresh();
        spit(d + "/canaries.json", "[]\n");
        replace_documents(d, "", 0, 0);
        refused("\"n_documents\" is 0, outside 1..");
        json m = json::parse(slurp(d + "/manifest.json"));
        m["n_documents"] = 1;
        m["bytes"] = 1;
        spit(d + "/manifest.json", m.dump());
        refused("no documents (empty file)");
        with_line(R"({"id":1,"source":"x","split":"train","copies":1,"text":"world\n"})" "\n");
        refused("no held-out documents");
    }
    SUBCASE("manifest counts that disagree") {
        with_line(held_line);
        json m = json::parse(slurp(d + "/manifest.json"));
        m["bytes"] = 13;
        spit(d + "/manifest.json", m.dump());
        refused("hold 12 bytes of text, the manifest says 13");
        m["bytes"] = 12;
        m["sha256"] = "ABC";
        spit(d + "/manifest.json", m.dump());
        refused("\"sha256\" is not 64 lowercase hex digits");
    }
    SUBCASE("canaries that are not where the file says") {
        with_line(held_line);
        spit(d + "/canaries.json",
             R"([{"id":0,"text":"hello","secret":"ell","insertions":2,"doc_ids":[0],"offsets":[0]}])");
        refused("\"doc_ids\" is not an array of 2 integers");
        spit(d + "/canaries.json",
             R"([{"id":0,"text":"hello","secret":"ell","insertions":2,"doc_ids":[0,0],"offsets":[0,0]}])");
        refused("names a document twice");
        spit(d + "/canaries.json",
             R"([{"id":0,"text":"hello","secret":"ell","insertions":1,"doc_ids":[1],"offsets":[0]}])");
        refused("document 1 is held out");
        spit(d + "/canaries.json",
             R"([{"id":0,"text":"hello","secret":"ell","insertions":1,"doc_ids":[0],"offsets":[3]}])");
        refused("not found in document 0 at offset 3");
        spit(d + "/canaries.json",
             R"([{"id":0,"text":"world","secret":"orl","insertions":1,"doc_ids":[0],"offsets":[0]}])");
        refused("not found in document 0");
        spit(d + "/canaries.json",
             R"([{"id":0,"text":"hel","secret":"e","insertions":1,"doc_ids":[0],"offsets":[0]}])");
        replace_documents(d, good_line + held_line +
                                 R"({"id":2,"source":"x","split":"train","copies":1,"text":"help\n"})" "\n",
                          3, 17);
        refused("occurs 2 times in the training stream, recorded 1");
        spit(d + "/canaries.json", R"({"id":0})");
        refused("canaries.json: not a JSON array");
    }
}

TEST_CASE("bin/corpus refuses bad command lines with one error line") {
    TempDir dir("mmia_corpus");
    const std::string w = dir.path.string(), out = " --out " + cli_quote(dir.file("o"));
    corpus_fails("", "A subcommand is required", w, 2);
    corpus_fails("build" + out, "--name is required", w, 2);
    corpus_fails("build --name novels" + out, "--name", w, 2);
    corpus_fails("build --name prose --heldout 1.5" + out, "--heldout", w, 2);
    corpus_fails("build --name prose --heldout 0" + out, "--heldout", w, 2);
    corpus_fails("build --name prose --canary-insertions 1,x,4" + out, "'x' is not a count", w, 2);
    corpus_fails("build --name prose --canary-insertions 1,,4" + out, "'' is not a count", w, 2);
    corpus_fails("build --name prose --canary-insertions 0" + out, "'0' is not a count", w, 2);
    corpus_fails("build --name prose --canaries -1" + out, "--canaries", w, 2);
    corpus_fails("build --name prose --repeat-counts 1,0" + out, "--repeat-counts: '0' is not a count", w, 2);
    corpus_fails("build --name prose --repeat-docs -1" + out, "--repeat-docs", w, 2);
    corpus_fails("build --name prose --max-bytes 5" + out, "--max-bytes", w, 2);
    corpus_fails("build --name prose --ngram 2" + out, "--ngram", w, 2);
    corpus_fails("build --name prose --bogus" + out, "bogus", w, 2);
    corpus_fails("info", "dir is required", w, 2);
    // A package that is not installed: a dpkg-query that knows none, first on PATH.
    spit(dir.file("dpkg-query"), "#!/bin/sh\nexit 1\n");
    chmod(dir.file("dpkg-query").c_str(), 0755);
    CliRun r = cli_run("/usr/bin/env", "PATH=" + cli_quote(w) + ":\"$PATH\" " + cli_quote(kCorpusBin) +
                                            " build --name prose" + out, w);
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK(r.err == "error: corpus: Debian package fortunes-min is not installed (run make setup)\n");
    // Bytes that are not UTF-8 in a malformed line are not echoed raw.
    CHECK_THROWS_WITH_AS(parse_corpus_documents("{\"id\":0,\"text\":\"\xff\x01\"}\n", "d"),
                         doctest::Contains("invalid string: ill-formed UTF-8 byte; last read: '\"?'"),
                         std::runtime_error);
    corpus_fails("info " + cli_quote(dir.file("none")), "cannot open corpus directory", w, 1);
    spit(dir.file("plain_file"), "x");
    if (cli_file_exists("/usr/share/doc/jargon-text/jargon.txt.gz"))
        corpus_fails("build --name dictionary --out " + cli_quote(dir.file("plain_file") + "/sub"),
                     "plain_file/sub: cannot create directory (Not a directory)", w, 1);
    CHECK(!cli_file_exists(dir.file("o")));
}

TEST_CASE("bin/corpus: a FIFO, device, directory or missing path as the corpus or one of its files: one exact line, never a wait") {
    TempDir dir("mmia_corpus");
    const std::string w = dir.path.string(), d = dir.file("c"), fifo = dir.file("c.fifo");
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    auto check_line = [&](const std::vector<std::string>& args, const std::string& line) {
        CliRun r = cli_run_argv(args, dir.file("special.log"), 60);  // cli_wait fails the test on a hang
        INFO(args[1] << " " << args[2] << " ... stderr: " << r.err);
        CHECK(r.code == 1);
        CHECK(r.out.empty());
        CHECK(r.err == line + "\n");
    };
    for (const std::string& bad : {fifo, std::string("/dev/zero")})
        check_line({kCorpusBin, "info", bad}, "error: " + bad + ": not a directory (a corpus is a directory built by bin/corpus build)");
    check_line({kCorpusBin, "info", dir.file("none")},
               "error: " + dir.file("none") + ": cannot open corpus directory (No such file or directory)");
    // each of the three files as a FIFO (nobody writing), a device (a link
    // to /dev/zero) or a directory: refused before any read
    for (const char* name : {"manifest.json", "documents.jsonl", "canaries.json"}) {
        const std::string f = d + "/" + name;
        for (int kind = 0; kind < 3; kind++) {
            std::filesystem::remove_all(d);
            build_fixture(d, 120, 1, {1, 2});
            std::filesystem::remove(f);
            if (kind == 0) REQUIRE(mkfifo(f.c_str(), 0600) == 0);
            if (kind == 1) REQUIRE(symlink("/dev/zero", f.c_str()) == 0);
            if (kind == 2) REQUIRE(mkdir(f.c_str(), 0700) == 0);
            check_line({kCorpusBin, "info", d}, "error: " + f + ": not a regular file");
            CHECK_THROWS_WITH_AS(load_corpus(d), (f + ": not a regular file").c_str(), std::runtime_error);
        }
    }
    // stdin closed: bin/corpus never reads it
    std::filesystem::remove_all(d);
    build_fixture(d, 120, 1, {1, 2});
    CliRun r = cli_run("sh", "-c " + cli_quote(cli_quote(kCorpusBin) + " info " + cli_quote(d) + " <&-"), w);
    CHECK(r.code == 0);
    CHECK(!r.out.empty());
    // --out a FIFO: not a directory to build into
    if (cli_file_exists("/usr/share/doc/jargon-text/jargon.txt.gz"))
        check_line({kCorpusBin, "build", "--name", "dictionary", "--out", fifo},
                   "error: " + fifo + ": cannot create directory (Not a directory)");
    else
        cli_skip("jargon-text is not installed: bin/corpus build --out FIFO is not tested");
}

TEST_CASE("a real corpus: the Jargon File (jargon-text), built twice to the same bytes") {
    CliRun probe = cli_run("/usr/bin/dpkg-query", "-W -f='${Status}\\t${Version}' jargon-text", "/tmp");
    if (probe.out.rfind("install ok installed\t", 0) != 0) {
        MESSAGE("skipped: Debian package jargon-text is not installed (run make setup)");
        return;
    }
    const std::string version = probe.out.substr(probe.out.find('\t') + 1);
    TempDir dir("mmia_corpus");
    const std::string args = "build --name dictionary --max-bytes 400000 --canaries 1 --canary-insertions 1,4,16 --out ";
    CliRun a = cli_run(kCorpusBin, args + cli_quote(dir.file("a")), dir.path.string());
    CliRun b = cli_run(kCorpusBin, args + cli_quote(dir.file("b")), dir.path.string());
    INFO(a.err);
    REQUIRE(a.code == 0);
    REQUIRE(b.code == 0);
    CHECK(a.out.find("package jargon-text " + version) != std::string::npos);
    Corpus c = load_corpus(dir.file("a"));
    CHECK(slurp(dir.file("a/documents.jsonl")) == slurp(dir.file("b/documents.jsonl")));
    const std::string docs = slurp(dir.file("a/documents.jsonl"));
    CHECK(corpus_sha256_hex(docs.data(), docs.size()) == c.sha256);
    CHECK(c.manifest["packages"][0]["name"] == "jargon-text");
    CHECK(c.manifest["packages"][0]["version"] == version);
    CHECK(c.manifest["source"]["capped_at_max_bytes"] == true);
    CHECK(c.manifest["source"]["bytes_taken"].get<int64_t>() <= 400000);
    CHECK(c.docs.size() > 300);
    // Entries in the file's order: the Glossary starts with "(TM)", an entry is ":headword: ...".
    CHECK(c.docs[0].text.find(":(TM):") != std::string::npos);
    for (const CorpusDocument& d : c.docs) {
        CHECK(d.source.rfind("jargon-text:/usr/share/doc/jargon-text/jargon.txt.gz#", 0) == 0);
        if (d.text[0] != 'm') CHECK(d.text[0] == ':');  // else a canary line opens it
    }
    const std::string train = as_string(training_stream(c, 3));
    REQUIRE(c.canaries.size() == 3);
    for (const Canary& k : c.canaries) CHECK(occurrences(train, k.text) == k.insertions);
}

TEST_CASE("every named corpus builds from its packages and follows its document rule") {
    TempDir dir("mmia_corpus");
    for (const std::string& name : corpus_names()) {
        INFO("corpus " << name);
        const std::string out = dir.file(name);
        CliRun r = cli_run(kCorpusBin, "build --name " + name + " --max-bytes 150000 --canaries 1 --canary-insertions 1,2 --out " +
                                           cli_quote(out), dir.path.string());
        if (r.code == 1 && r.err.find("is not installed") != std::string::npos) {
            MESSAGE("skipped " << name << ": " << r.err << " (run make setup)");
            continue;
        }
        INFO(r.err);
        REQUIRE(r.code == 0);
        Corpus c = load_corpus(out);
        REQUIRE(c.manifest.contains("packages"));
        for (const json& p : c.manifest["packages"]) {
            // The recorded version is dpkg's.
            CliRun v = cli_run("/usr/bin/dpkg-query", "-W -f='${Version}' " + p["name"].get<std::string>(), "/tmp");
            CHECK(p["version"] == v.out);
            for (const json& path : p["paths"]) CHECK(cli_file_exists(path.get<std::string>()));
        }
        CHECK(c.manifest["source"]["bytes_taken"].get<int64_t>() <= 150000);
        CHECK(c.docs.size() >= 3);
        for (const CorpusDocument& d : c.docs) {
            INFO(d.source);
            std::string t = d.text;  // without the canary lines
            for (const Canary& k : c.canaries)
                for (size_t p = t.find(k.text + "\n"); p != std::string::npos; p = t.find(k.text + "\n"))
                    t.erase(p, k.text.size() + 1);
            if (name == "prose") {
                CHECK(d.source.rfind("fortunes", 0) == 0);
                CHECK(d.source.find(":/usr/share/games/fortunes/") != std::string::npos);
                CHECK(t.find("\n%\n") == std::string::npos);
                CHECK(t.rfind("%\n", 0) != 0);
            } else if (name == "code") {
                CHECK(d.source.rfind("libpython3.11-stdlib:/usr/lib/python3.11/", 0) == 0);
                CHECK(d.source.substr(d.source.size() - 3) == ".py");
                CHECK(t.size() <= 65536);
            } else if (name == "legal") {
                CHECK(t.find("\n\n") == std::string::npos);  // one paragraph
                CHECK(t.back() == '\n');
            } else if (name == "man") {
                CHECK(d.source.rfind("manpages:/usr/share/man/man", 0) == 0);
                CHECK(t.rfind(".so ", 0) != 0);
            } else if (name == "dictionary") {
                CHECK(t.rfind(":", 0) == 0);
            }
        }
    }
}

TEST_CASE("bin/corpus --max-doc-bytes: every document the start of its file, cut at a newline within the cap") {
    TempDir dir("mmia_corpus_cap");
    const std::string out = dir.file("code");
    CliRun r = cli_run(kCorpusBin, "build --name code --max-bytes 60000 --max-doc-bytes 2048 --out " + cli_quote(out),
                       dir.path.string());
    if (r.code == 1 && r.err.find("is not installed") != std::string::npos) {
        MESSAGE("skipped: " << r.err << " (run make setup)");
        return;
    }
    INFO(r.err);
    REQUIRE(r.code == 0);
    const Corpus c = load_corpus(out);
    CHECK(c.manifest["source"]["max_doc_bytes"] == 2048);
    CHECK(c.docs.size() >= 30);  // 60,000 bytes of documents of at most 2,048 bytes
    int cut = 0;
    for (const CorpusDocument& d : c.docs) {
        INFO(d.source);
        CHECK(d.text.size() <= 2048);
        // the file's own first bytes (the prefix "libpython3.11-stdlib:" names the package)
        const std::string path = d.source.substr(d.source.find(':') + 1);
        const std::string file = cli_read_text(path);
        REQUIRE(file.size() >= d.text.size());
        CHECK(file.compare(0, d.text.size(), d.text) == 0);
        if (file.size() > d.text.size()) {
            cut++;
            CHECK(d.text.back() == '\n');                                         // cut back to a newline
            CHECK(file.find('\n', d.text.size()) >= 2048);                         // the next one is past the cap
        }
    }
    CHECK(cut > 0);
    CHECK(r.out.find("documents cut to at most 2048 bytes (--max-doc-bytes)") != std::string::npos);
    // A cap inside the first line: cut there, never through a UTF-8
    // character (the Jargon File's entries hold multi-byte characters; a
    // split one would be skipped as not UTF-8, and was at 20 of N = 20..80).
    for (int n : {20, 21, 40}) {
        INFO("--max-doc-bytes " << n);
        const std::string o = dir.file("jargon" + std::to_string(n));
        CliRun j = cli_run(kCorpusBin, "build --name dictionary --max-bytes 400000 --max-doc-bytes " + std::to_string(n) +
                                           " --out " + cli_quote(o), dir.path.string());
        if (j.code == 1 && j.err.find("is not installed") != std::string::npos) break;
        INFO(j.err);
        REQUIRE(j.code == 0);
        const Corpus jc = load_corpus(o);
        CHECK(jc.manifest["skipped"]["not_utf8"] == 0);
        int mid_line = 0;
        for (const CorpusDocument& d : jc.docs) {
            CHECK(d.text.size() <= size_t(n));
            if (d.text.back() != '\n') {
                mid_line++;
                CHECK(d.text.find('\n') == std::string::npos);  // only a first line longer than the cap
            }
        }
        CHECK(mid_line > 0);
    }
    // Without the flag the same files are longer (code's own cap is 65,536).
    CliRun r2 = cli_run(kCorpusBin, "build --name code --max-bytes 60000 --out " + cli_quote(dir.file("plain")),
                        dir.path.string());
    REQUIRE(r2.code == 0);
    CHECK(load_corpus(dir.file("plain")).docs.size() < c.docs.size());
    CHECK(!load_corpus(dir.file("plain")).manifest["source"].contains("max_doc_bytes"));
}

// docs/BAD_INPUT.md, row by row, through bin/corpus: each row's exact line.
TEST_CASE("docs/BAD_INPUT.md: every bin/corpus row is one exact line") {
    TempDir dir("mmia_corpus_rows");
    const std::string w = dir.path.string(), d = dir.file("c");
    auto row = [&](const std::string& args, int code, const std::string& line) {
        REQUIRE_MESSAGE(access(kCorpusBin.c_str(), X_OK) == 0, "no executable " << kCorpusBin << " (make bin/corpus)");
        CliRun r = cli_run(kCorpusBin, args, w);
        INFO("args: " << args << "\nstderr: " << r.err);
        CHECK(r.code == code);
        CHECK(r.out.empty());
        CHECK(r.err == line + "\n");
    };
    auto info = [&](const std::string& line) { row("info " + cli_quote(d), 1, "error: " + line); };
    auto fresh = [&]() {
        std::filesystem::remove_all(d);
        build_fixture(d, 120, 1, {1, 2});
    };
    // documents.jsonl replaced by `lines` (the manifest's checksum and counts
    // made to match, so the check behind the checksum answers), no canaries
    auto with_docs = [&](const std::string& lines, int64_t n, int64_t bytes) {
        fresh();
        spit(d + "/canaries.json", "[]\n");
        replace_documents(d, lines, n, bytes);
    };
    const std::string D = d + "/documents.jsonl: ";
    const std::string train0 = R"({"id":0,"source":"x","split":"train","copies":1,"text":"hello\n"})" "\n";
    const std::string held1 = R"({"id":1,"source":"x","split":"heldout","copies":1,"text":"world\n"})" "\n";

    row("info " + cli_quote(dir.file("none")), 1,
        "error: " + dir.file("none") + ": cannot open corpus directory (No such file or directory)");
    fresh();
    row("info " + cli_quote(d + "/manifest.json"), 1,
        "error: " + d + "/manifest.json: not a directory (a corpus is a directory built by bin/corpus build)");
    std::remove((d + "/canaries.json").c_str());
    info(d + "/canaries.json: cannot open (No such file or directory)");
    {  // one letter of the first text changed, the manifest not
        fresh();
        const std::string recorded = json::parse(slurp(d + "/manifest.json"))["sha256"];
        std::string docs = slurp(d + "/documents.jsonl");
        docs[docs.find("\"text\":\"") + 8] ^= 1;
        spit(d + "/documents.jsonl", docs);
        info(D + "sha256 " + corpus_sha256_hex(docs.data(), docs.size()) + " differs from the manifest's " + recorded +
             " (changed since it was built)");
    }
    with_docs("{\"id\":0,\"source\":\"x\",\n", 1, 1);
    info(D + "line 1: malformed JSON ([json.exception.parse_error.101] parse error at line 1, column 22: syntax error "
             "while parsing object key - unexpected end of input; expected string literal)");
    with_docs(R"({"id":0,"source":"x","split":"train","copies":1,"text":"a \ud800"})" "\n", 1, 1);
    info(D + "line 1: malformed JSON ([json.exception.parse_error.101] parse error at line 1, column 65: syntax error "
             "while parsing value - invalid string: surrogate U+D800..U+DBFF must be followed by U+DC00..U+DFFF; last "
             "read: '\"a \\ud800\"')");
    with_docs("{\"id\":0,\"source\":\"x\",\"split\":\"train\",\"copies\":1,\"text\":\"\xff\xfe\"}\n", 1, 1);
    info(D + "line 1: malformed JSON ([json.exception.parse_error.101] parse error at line 1, column 57: syntax error "
             "while parsing value - invalid string: ill-formed UTF-8 byte; last read: '\"?')");
    with_docs(R"({"id":0,"source":"x","split":"train","copies":1e999,"text":"a"})" "\n", 1, 1);
    info(D + "line 1: malformed JSON ([json.exception.out_of_range.406] number overflow parsing '1e999')");
    with_docs(R"({"id":0,"source":"x","split":"train","copies":1,"text":"a\u0000"})" "\n", 1, 2);
    info(D + "line 1: \"text\" contains byte 0 (the end-of-text byte that separates documents)");
    with_docs(R"({"id":3,"source":"x","split":"train","copies":1,"text":"a"})" "\n", 1, 1);
    info(D + "line 1: id 3, expected 0 (ids are 0..n-1 in file order)");
    with_docs(R"({"id":0,"source":"x","split":"test","copies":1,"text":"a"})" "\n", 1, 1);
    info(D + "line 1: \"split\" is \"test\", expected \"train\" or \"heldout\"");
    with_docs(train0 + R"({"id":1,"source":"x","split":"heldout","copies":0,"text":"w"})" "\n", 2, 7);
    info(D + "line 2: \"copies\" is 0, outside 1..1000000");
    {  // an empty documents.jsonl behind a manifest of one document; a manifest of none
        with_docs("", 1, 1);
        info(D + "no documents (empty file)");
        with_docs("", 0, 0);
        info(d + "/manifest.json: \"n_documents\" is 0, outside 1..9223372036854775807");
    }
    with_docs(train0 + R"({"id":1,"source":"x","split":"train","copies":1,"text":"world\n"})" "\n", 2, 12);
    info(d + ": no held-out documents");
    with_docs(train0 + held1, 2, 13);
    info(d + ": documents hold 12 bytes of text, the manifest says 13");
    with_docs(train0 + R"({"id":1,"source":"x","split":"train","copies":1000000,"text":")" + std::string(2000, 'a') +
                  "\"}\n" + R"({"id":2,"source":"x","split":"heldout","copies":1,"text":"w"})" "\n",
              3, 6 + 2000 + 1);
    info(d + ": the training stream (documents x copies) would pass the cap of 1073741824 bytes");
    with_docs(train0 + held1, 2, 12);
    spit(d + "/canaries.json", R"([{"id":0,"text":"hello","secret":"ell","insertions":1,"doc_ids":[0],"offsets":[3]}])");
    info(d + ": canary 0: not found in document 0 at offset 3");
    spit(d + "/canaries.json", R"([{"id":0,"text":"hello","secret":"ell","insertions":1,"doc_ids":[1],"offsets":[0]}])");
    info(d + ": canary 0: document 1 is held out");
    with_docs(train0 + held1 + R"({"id":2,"source":"x","split":"train","copies":1,"text":"help\n"})" "\n", 3, 17);
    spit(d + "/canaries.json", R"([{"id":0,"text":"hel","secret":"e","insertions":1,"doc_ids":[0],"offsets":[0]}])");
    info(d + ": canary 0: occurs 2 times in the training stream, recorded 1");
    with_docs(train0 + R"({"id":1,"source":"x","split":"train","copies":2,"repeated":"yes","text":"w"})" "\n", 2, 7);
    info(D + "line 2: \"repeated\" is not true or false");
    with_docs(train0 + R"({"id":1,"source":"x","split":"heldout","copies":2,"repeated":true,"text":"world\n"})" "\n",
              2, 12);
    info(D + "line 2: a repeated document is held out");
    with_docs(R"({"id":0,"source":"x","split":"train","copies":1,"repeated":true,"text":"hello\n"})" "\n" + held1, 2, 12);
    spit(d + "/canaries.json", R"([{"id":0,"text":"hel","secret":"e","insertions":1,"doc_ids":[0],"offsets":[0]}])");
    info(d + ": canary 0: document 0 is a repeated document");

    // command lines
    const std::string out = " --out " + cli_quote(dir.file("o"));
    row("", 2, "error: A subcommand is required (see --help)");
    row("build --name novels" + out, 2, "error: --name: novels not in {prose,code,legal,dictionary,man} (see --help)");
    row("build --name prose --heldout 1.5" + out, 2,
        "error: --heldout: Value 1.5 not in range 0.000001 to 0.999999 (see --help)");
    row("build --name prose --canary-insertions 1,x" + out, 2,
        "error: --canary-insertions: 'x' is not a count in 1..1000000 (give e.g. 1,2,4,8) (see --help)");
    row("build --name prose --max-doc-bytes -5" + out, 2,
        "error: --max-doc-bytes: Value -5 not in range 0 to 4294967296 (see --help)");
    row("build --name prose --repeat-counts 1,0" + out, 2,
        "error: --repeat-counts: '0' is not a count in 1..1000000 (give e.g. 1,2,4,8) (see --help)");
    CHECK(!cli_file_exists(dir.file("o")));
    // (a package that is not installed: "bin/corpus refuses bad command lines ...", exact)
    // The rows that read a Debian package's text: run where it is installed.
    if (!cli_file_exists("/usr/share/doc/jargon-text/jargon.txt.gz") || !cli_file_exists("/usr/share/man/man1")) {
        cli_skip("jargon-text or man pages not installed: the --out, --dedup and host-count rows of bin/corpus");
        return;
    }
    spit(dir.file("plain_file"), "x");
    row("build --name dictionary --out " + cli_quote(dir.file("plain_file") + "/x"), 1,
        "error: " + dir.file("plain_file") + "/x: cannot create directory (Not a directory)");
    row("build --name man --dedup" + out, 1, "error: corpus 'man': --dedup dropped every held-out document");
    // a canary inserted 5000 times: more than the training documents with
    // one copy, counted here in a build without canaries
    const std::string plain = dir.file("dict");
    CliRun b = cli_run(kCorpusBin, "build --name dictionary --out " + cli_quote(plain), w);
    REQUIRE_MESSAGE(b.code == 0, b.err);
    int64_t hosts = 0;
    for (const CorpusDocument& doc : load_corpus(plain).docs) hosts += doc.train && doc.copies == 1;
    REQUIRE(hosts < 5000);
    row("build --name dictionary --canaries 1 --canary-insertions 5000" + out, 1,
        "error: corpus 'dictionary': a canary inserted 5000 times needs that many training documents with one copy; "
        "there are " + std::to_string(hosts));
    CHECK(!cli_file_exists(dir.file("o")));
}
