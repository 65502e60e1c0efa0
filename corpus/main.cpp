// bin/corpus: builds the text corpora the language models train on, from
// named Debian packages (docs/CORPORA.md), and summarises a built one.
//
//   bin/corpus build --name prose|code|legal|dictionary|man [--out data/corpora/NAME]
//                    [--seed 42] [--heldout 0.2] [--canaries N --canary-insertions 1,2,4,...,64]
//                    [--repeat-docs N --repeat-counts 1,2,4,...,64]
//                    [--dedup] [--ngram 50] [--max-bytes 4000000] [--max-doc-bytes 0]
//   bin/corpus info DIR
//
// build reads the packages, splits, counts near-duplicates, inserts canaries
// (N per insertion count), writes DIR/{documents.jsonl,canaries.json,
// manifest.json}, then loads the result back (every check of load_corpus)
// and prints the summary `info` prints.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <map>

#include "common/command_line.h"
#include "common/corpus.h"

using namespace mmia;

namespace {

void print_summary(const Corpus& c) {
    const json& m = c.manifest;
    std::printf("corpus %s (%s)\n", c.name.c_str(), c.dir.c_str());
    if (m.contains("packages"))
        for (const json& p : m["packages"])
            std::printf("  package %s %s: %lld bytes from %zu files\n", p.value("name", "?").c_str(),
                        p.value("version", "?").c_str(), (long long)p.value("bytes", int64_t(0)),
                        p.contains("paths") ? p["paths"].size() : size_t(0));
    int64_t n_train = 0, n_heldout = 0, train_bytes = 0, heldout_bytes = 0, stream = 0;
    for (const CorpusDocument& d : c.docs) {
        if (d.train) {
            n_train++;
            train_bytes += int64_t(d.text.size());
            stream += int64_t(d.copies) * int64_t(d.text.size() + 1);
        } else {
            n_heldout++;
            heldout_bytes += int64_t(d.text.size());
        }
    }
    std::printf("  documents %zu: train %lld (%lld bytes, stream %lld bytes with copies and separators), "
                "held out %lld (%lld bytes)\n",
                c.docs.size(), (long long)n_train, (long long)train_bytes, (long long)stream,
                (long long)n_heldout, (long long)heldout_bytes);
    if (m.contains("exact_duplicates_collapsed"))
        std::printf("  exact duplicates stored once: %lld\n", (long long)m["exact_duplicates_collapsed"].get<int64_t>());
    if (m.contains("near_duplicates")) {
        const json& nd = m["near_duplicates"];
        std::printf("  near-duplicates: %lld of %lld held-out documents share a %d-byte n-gram with training text\n",
                    (long long)nd.value("heldout_sharing_an_ngram_with_train", int64_t(0)),
                    (long long)nd.value("heldout_documents", int64_t(0)), nd.value("ngram_bytes", 0));
    }
    if (m.contains("dedup"))
        std::printf("  dedup: %s, held-out documents dropped %lld\n",
                    m["dedup"].value("enabled", false) ? "on" : "off",
                    (long long)m["dedup"].value("heldout_dropped", int64_t(0)));
    if (m.contains("source") && m["source"].is_object() && m["source"].contains("max_doc_bytes") &&
        m["source"]["max_doc_bytes"].is_number_integer())
        std::printf("  documents cut to at most %lld bytes (--max-doc-bytes)\n",
                    (long long)m["source"]["max_doc_bytes"].get<int64_t>());
    int64_t ins = 0;
    for (const Canary& k : c.canaries) ins += k.insertions;
    std::printf("  canaries %zu (%lld insertions)\n", c.canaries.size(), (long long)ins);
    std::map<int, int64_t> repeated;  // copies -> documents
    for (const CorpusDocument& d : c.docs)
        if (d.repeated) repeated[d.copies]++;
    if (!repeated.empty()) {
        std::string per;
        for (const auto& [copies, n] : repeated)
            per += (per.empty() ? "" : ", ") + std::to_string(n) + " x" + std::to_string(copies);
        std::printf("  repeated documents: %s\n", per.c_str());
    }
    std::printf("  sha256 %s (documents.jsonl)\n", c.sha256.c_str());
}

// A comma list of counts in 1..1000000 for the option `flag`.
std::vector<int> parse_counts(const std::string& s, const char* flag) {
    std::vector<int> out;
    size_t start = 0;
    while (start <= s.size()) {
        size_t end = s.find(',', start);
        if (end == std::string::npos) end = s.size();
        const std::string item = s.substr(start, end - start);
        size_t used = 0;
        long v = 0;
        try {
            v = std::stol(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (item.empty() || used != item.size() || v < 1 || v > 1000000)
            throw CLI::ValidationError(flag,
                                       "'" + item + "' is not a count in 1..1000000 (give e.g. 1,2,4,8)");
        out.push_back(int(v));
        start = end + 1;
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"Build or summarise a text corpus for the language models (docs/CORPORA.md)."};
    app.require_subcommand(1);
    CorpusBuildOptions opt;
    std::string out, insertions = "1,2,4,8,16,32,64", repeat_counts = "1,2,4,8,16,32,64", info_dir;
    uint64_t seed = 42;
    CLI::App* build = app.add_subcommand("build", "build a corpus from its Debian packages");
    std::string names;
    for (const std::string& n : corpus_names()) names += (names.empty() ? "" : " | ") + n;
    build->add_option("--name", opt.name, names)->required()->check(CLI::IsMember(corpus_names()));
    build->add_option("--out", out, "output directory (default data/corpora/NAME)");
    build->add_option("--seed", seed, "seed of the split, the canaries")->check(seed_range())->capture_default_str();
    build->add_option("--heldout", opt.heldout, "fraction of documents held out, in (0,1)")
        ->check(CLI::Range(1e-6, 1 - 1e-6))
        ->capture_default_str();
    build->add_option("--canaries", opt.canaries_per_count, "canaries per insertion count")
        ->check(CLI::Range(0, 1000))
        ->capture_default_str();
    build->add_option("--canary-insertions", insertions, "comma-separated insertion counts")->capture_default_str();
    build->add_option("--repeat-docs", opt.repeats_per_count,
                      "training documents repeated per repeat count (memorization against duplication; "
                      "documents of 200..2000 bytes, marked \"repeated\")")
        ->check(CLI::Range(0, 100000))
        ->capture_default_str();
    build->add_option("--repeat-counts", repeat_counts, "comma-separated copies of the repeated documents")
        ->capture_default_str();
    build->add_flag("--dedup", opt.dedup, "drop held-out documents that share an n-gram with training text");
    build->add_option("--ngram", opt.ngram, "n-gram length in bytes for near-duplicates")
        ->check(CLI::Range(8, 4096))
        ->capture_default_str();
    build->add_option("--max-bytes", opt.max_bytes, "cap on the source text taken")
        ->check(CLI::Range(int64_t(1000), int64_t(1) << 32))
        ->capture_default_str();
    build->add_option("--max-doc-bytes", opt.max_doc_bytes,
                      "cut every document to at most this many bytes, back to its last newline (more, shorter "
                      "documents; 0: the corpus's own rule)")
        ->check(CLI::Range(int64_t(0), int64_t(1) << 32))
        ->capture_default_str();
    CLI::App* info = app.add_subcommand("info", "print a built corpus's summary (after every load check)");
    info->add_option("dir", info_dir, "corpus directory")->required();
    if (int code = parse_command_line(app, argc, argv); code >= 0) return code;
    try {
        opt.canary_insertions = parse_counts(insertions, "--canary-insertions");
        opt.repeat_counts = parse_counts(repeat_counts, "--repeat-counts");
    } catch (const CLI::ValidationError& e) {
        std::fprintf(stderr, "error: %s (see --help)\n", e.what());
        return 2;
    }

    try {
        if (*info) {
            print_summary(load_corpus(info_dir));
            return 0;
        }
        opt.seed = seed;
        if (out.empty()) out = "data/corpora/" + opt.name;
        std::vector<CorpusPackage> packages;
        json source_info;
        std::vector<CorpusDocument> raw = collect_corpus_sources(opt.name, opt.max_bytes, packages, source_info, opt.max_doc_bytes);
        Corpus c = assemble_corpus(std::move(raw), opt);
        json pk = json::array();
        for (const CorpusPackage& p : packages)
            pk.push_back({{"name", p.name}, {"version", p.version}, {"licence", p.licence},
                          {"bytes", p.bytes}, {"paths", p.paths}});
        c.manifest["packages"] = pk;
        c.manifest["source"] = source_info;
        write_corpus(c, out);
        print_summary(load_corpus(out));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
