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
    std::string text;    // raw bytes
};

struct Canary {
    int64_t id = 0;
    std::string text;    // the full inserted string (template with the secret filled in)
    std::string secret;  // the random part (digits or words)
    int insertions = 1;  // how many training documents carry it
    std::vector<int64_t> doc_ids;
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

}  // namespace mmia
