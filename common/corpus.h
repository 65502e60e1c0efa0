// corpus.h: text corpora for the language models (seed 003), built from
// named Debian packages, split into documents and into a training and a
// held-out set, with canaries inserted at recorded positions.
//
// On disk a built corpus is a directory (default data/corpora/<name>/):
//   documents.jsonl   one JSON object per line, in corpus order:
//                     {"id": 17, "source": "<package>:<path>", "split": "train"|"heldout",
//                      "copies": 1, "text": "<UTF-8 or \u-escaped bytes>"}
//                     (a document the corpus repeats has "copies" > 1 and
//                     appears once here; training streams it that many times)
//   canaries.json     [{"id": 0, "text": "...", "secret": "...", "insertions": 4,
//                       "doc_ids": [..]}] (the documents a canary went into)
//   manifest.json     {"name", "packages": [{"name","version","paths","licence"}],
//                      "n_documents", "bytes", "sha256" (of documents.jsonl),
//                      "split_rule", "seed", "dedup": {...}, "near_duplicates": {...}}
// docs/CORPORA.md documents each corpus (package, version, path, licence,
// size) and the split and canary rules.
//
// "text" is valid UTF-8 (the builder skips a source document that is not, and
// counts it); JSON escapes (\n, \u001b, ...) are decoded as usual, and a
// document never contains byte 0 (kCorpusEos). Document ids are 0..n-1 in
// file order. Exact duplicate texts are stored once with "copies" = their
// count (they always fall on the same side of the split, see below).
//
// Tokens are bytes (MMIA_TOKENIZER_BYTES): a document's tokens are its text's
// bytes. Documents are joined for training with no separator other than the
// end-of-text byte kCorpusEos between them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mmia {

using json = nlohmann::json;

constexpr int kCorpusEos = 0;  // byte 0 separates documents in a training stream

struct CorpusDocument {
    int64_t id = 0;
    std::string source;  // "<debian package>:<path>" (or "canary")
    bool train = true;   // false = held out (a non-member for the attacks)
    int copies = 1;      // times the training stream contains it
    bool repeated = false;  // copies set by the builder's document repeats (a training document)
    std::string text;    // raw bytes
};

struct Canary {
    int64_t id = 0;
    std::string text;    // the full inserted string (template with the secret filled in)
    std::string secret;  // the random part (digits or words)
    int insertions = 1;  // how many training documents carry it
    std::vector<int64_t> doc_ids;
    std::vector<int64_t> offsets;  // byte offset of the canary in each doc_ids document
};

struct Corpus {
    std::string name;
    std::string dir;
    std::vector<CorpusDocument> docs;
    std::vector<Canary> canaries;
    json manifest;       // as on disk
    std::string sha256;  // of documents.jsonl, as recorded in the manifest
};

// Loads a built corpus directory; throws std::runtime_error("<path>: <why>")
// on a missing or malformed file, or a checksum that differs from the
// manifest's.
Corpus load_corpus(const std::string& dir);

// The training stream: every training document, `copies` times each, in a
// seeded order, each followed by kCorpusEos. Held-out documents never appear.
std::vector<uint8_t> training_stream(const Corpus& c, uint64_t seed);
// The held-out stream, in corpus order, each document followed by kCorpusEos.
std::vector<uint8_t> heldout_stream(const Corpus& c);

// --- Rules shared by the builder, the loader and the tests -------------------

// FNV-1a, 64-bit (Fowler, Noll, Vo; offset basis 0xcbf29ce484222325, prime
// 0x100000001b3) of the bytes.
uint64_t corpus_fnv1a64(const std::string& bytes);
// SplitMix64's output function (Steele, Lea, Flood 2014): the state is
// advanced by 0x9e3779b97f4a7c15 and mixed; returns the next value.
uint64_t corpus_splitmix64(uint64_t& state);

// The split rule: a document is held out when
//   u = (splitmix64(fnv1a64(text) ^ seed) >> 11) * 2^-53  <  heldout_fraction
// where splitmix64(x) is the first output of a SplitMix64 whose state is x.
// It depends on the text only (not on ids or order), so exact duplicates
// always fall on the same side and adding sources never moves a document.
// (The text is the document before any canary went in.)
bool corpus_is_heldout(const std::string& text, uint64_t seed, double heldout_fraction);

// Near-duplicates across the split: held-out documents sharing at least one
// n-byte substring (default 50) with some training document. Exact: every
// hash hit is confirmed by comparing the bytes. Documents shorter than n
// share nothing. Returns one flag per document (false for training ones).
std::vector<bool> corpus_near_duplicates(const std::vector<CorpusDocument>& docs, int n = 50);

// The SHA-256 (FIPS 180-4, Nettle's implementation) of bytes, as 64 lowercase hex digits.
std::string corpus_sha256_hex(const void* data, size_t len);

// Parsers of the three files held in memory (also the fuzz target's entry
// points). `what` names the file in errors: std::runtime_error("<what>: <why>").
std::vector<CorpusDocument> parse_corpus_documents(const std::string& bytes, const std::string& what);
std::vector<Canary> parse_corpus_canaries(const std::string& bytes, const std::string& what);
json parse_corpus_manifest(const std::string& bytes, const std::string& what);
// Cross-checks a corpus assembled from parsed files: ids 0..n-1, at least one
// training and one held-out document, the manifest's counts, every canary
// present exactly `insertions` times in the training stream (copies counted)
// and in the documents it names at the offsets it names, never held out, never
// in a repeated document; every repeated document a training one.
void validate_corpus(const Corpus& c, const std::string& what);

// --- Building ---------------------------------------------------------------

struct CorpusBuildOptions {
    std::string name;
    uint64_t seed = 42;
    double heldout = 0.2;            // fraction of documents held out, in (0, 1)
    int canaries_per_count = 0;      // canaries for each entry of canary_insertions
    std::vector<int> canary_insertions = {1, 2, 4, 8, 16, 32, 64};
    bool dedup = false;              // drop held-out near-duplicates of training text
    int ngram = 50;                  // bytes, for near-duplicates
    int64_t max_bytes = 4000000;     // cap on the source text taken (deterministic prefix)
    int64_t max_doc_bytes = 0;       // > 0: each document cut to this many bytes (collect_corpus_sources)
    int repeats_per_count = 0;       // documents repeated for each entry of repeat_counts
    std::vector<int> repeat_counts = {1, 2, 4, 8, 16, 32, 64};
};

// Documents the builder repeats (memorization against duplication: Kandpal,
// Wallace, Raffel 2022; Carlini et al. 2023, "Quantifying memorization")
// are training documents of kRepeatMinBytes..kRepeatMaxBytes bytes with one
// copy: long enough for bin/extract's longest default prompt (128 bytes) and
// its 50-byte suffix, short enough that 64 copies do not swamp the stream.
constexpr int64_t kRepeatMinBytes = 200, kRepeatMaxBytes = 2000;

// One Debian package a corpus read, as the manifest records it.
struct CorpusPackage {
    std::string name, version, licence;
    std::vector<std::string> paths;  // files read, sorted
    int64_t bytes = 0;               // document bytes taken from it
};

// The canary template (Carlini et al., "The Secret Sharer", USENIX Security
// 2019): kCanaryPrefix followed by 9 random decimal digits separated by
// spaces, e.g. "my social security number is 0 4 9 1 7 3 2 8 5".
extern const char* const kCanaryPrefix;
constexpr int kCanaryDigits = 9;

// Split, collapse exact duplicates, count near-duplicates, optionally dedup,
// repeat documents, insert canaries: `raw` are the source documents in corpus order (ids and
// splits are assigned here). Fills c.docs, c.canaries and c.manifest's rule
// and count fields (not packages or sha256). Throws std::runtime_error on an
// empty corpus, an empty side of the split, or too few documents for canaries
// or repeats. With repeats_per_count = 0 the result is what it was before
// repeats existed (the same bytes and sha256).
Corpus assemble_corpus(std::vector<CorpusDocument> raw, const CorpusBuildOptions& opt);

// Writes documents.jsonl, canaries.json and manifest.json (with sha256 and
// bytes filled in) into dir, creating it; each file via a temp file and a
// rename, the manifest last. Returns the manifest written.
json write_corpus(Corpus& c, const std::string& dir);

// The named corpora ("prose", "code", "legal", "dictionary", "man") read from
// the installed Debian packages; throws when a package is not installed.
// max_bytes: the cap on the text taken (whole documents, in path order);
// max_doc_bytes > 0: every document cut to at most that many bytes, back to
// its last newline within them, or, when its first line alone is longer, to
// its last whole UTF-8 character within them (more, shorter documents per
// byte: code's files average ~16 kB); code's own cut at 65,536 bytes still
// applies. 0 keeps each corpus's own rule.
const std::vector<std::string>& corpus_names();
std::vector<CorpusDocument> collect_corpus_sources(const std::string& name, int64_t max_bytes,
                                                   std::vector<CorpusPackage>& packages,
                                                   json& source_info, int64_t max_doc_bytes = 0);

}  // namespace mmia
