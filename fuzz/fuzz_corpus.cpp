// fuzz_corpus.cpp: libFuzzer target for a built text corpus's files
// (common/corpus.cpp): documents.jsonl, canaries.json and manifest.json
// through their parsers and the cross-checks load_corpus runs, then the
// training and held-out streams of any corpus that passes.
//   make build/fuzz/fuzz_corpus && build/fuzz/fuzz_corpus -max_total_time=60 fuzz/corpus/fuzz_corpus
//
// Input: the three files joined by a line "=====" (documents, canaries,
// manifest), so one mutation can touch any of them; an input without the
// two separators is fed to the documents parser alone. The manifest's
// "sha256" is replaced by the documents' real checksum when it is "auto"
// (the seeds use that), so mutations get past the checksum to the checks
// behind it. A std::runtime_error is the expected refusal; any other
// exception (a raw nlohmann error), a sanitizer report, or an accepted
// corpus whose streams break the contract (separator count, canary counts)
// is a finding.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "common/corpus.h"

using namespace mmia;

namespace {

int64_t count(const std::string& hay, const std::string& needle) {
    int64_t n = 0;
    for (size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + 1)) n++;
    return n;
}

void check_streams(const Corpus& c) {
    int64_t want = 0, bytes = 0;
    for (const CorpusDocument& d : c.docs)
        if (d.train) {
            want += d.copies;
            bytes += int64_t(d.copies) * int64_t(d.text.size() + 1);
        }
    if (bytes > (int64_t(1) << 24)) return;  // accepted but too large to build in a fuzz iteration
    std::vector<uint8_t> t = training_stream(c, 1);
    int64_t eos = 0;
    for (uint8_t b : t) eos += b == kCorpusEos;
    if (eos != want || int64_t(t.size()) != bytes) abort();
    const std::string ts(t.begin(), t.end());
    const std::vector<uint8_t> h = heldout_stream(c);
    const std::string hs(h.begin(), h.end());
    for (const Canary& k : c.canaries) {
        // Within one document the count was checked; across the EOS-joined
        // stream a canary can only gain occurrences if it spans a separator,
        // and a canary holds no byte 0.
        if (count(ts, k.text) != k.insertions) abort();
        if (count(hs, k.text) != 0) abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string in(reinterpret_cast<const char*>(data), size);
    const std::string sep = "\n=====\n";
    const size_t a = in.find(sep), b = a == std::string::npos ? a : in.find(sep, a + sep.size());
    try {
        if (b == std::string::npos) {
            parse_corpus_documents(in, "documents.jsonl");
            return 0;
        }
        Corpus c;
        const std::string docs = in.substr(0, a) + "\n";
        std::string manifest = in.substr(b + sep.size());
        c.manifest = parse_corpus_manifest(
            [&] {
                const size_t p = manifest.find("\"auto\"");
                if (p != std::string::npos)
                    manifest.replace(p, 6, "\"" + corpus_sha256_hex(docs.data(), docs.size()) + "\"");
                return manifest;
            }(),
            "manifest.json");
        c.sha256 = c.manifest.at("sha256").get<std::string>();
        if (c.sha256 != corpus_sha256_hex(docs.data(), docs.size())) return 0;  // load_corpus refuses here
        c.docs = parse_corpus_documents(docs, "documents.jsonl");
        c.canaries = parse_corpus_canaries(in.substr(a + sep.size(), b - a - sep.size()), "canaries.json");
        validate_corpus(c, "corpus");
        check_streams(c);
    } catch (const std::runtime_error&) {
    }
    return 0;
}
