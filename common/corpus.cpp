// corpus.cpp: text corpora for the language models (see corpus.h and
// docs/CORPORA.md): the rules (split, near-duplicates, canaries), the
// parsers and cross-checks of a built corpus, the streams the trainer reads,
// and the builder that reads named Debian packages.
#include "common/corpus.h"

#include <nettle/sha2.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <unordered_map>

#include "common/data.h"
#include "engine/io.h"  // io_write_files_atomic

namespace mmia {

namespace {

[[noreturn]] void fail(const std::string& what, const std::string& why) {
    throw std::runtime_error(what + ": " + why);
}

constexpr int64_t kMaxCopies = 1000000;
constexpr int64_t kMaxInsertions = 1000000;
constexpr size_t kMaxCorpusFile = size_t(1) << 30;  // 1 GiB per file
constexpr int64_t kMaxTrainingStream = int64_t(1) << 30;  // 1 GiB: what training_stream may allocate

// Reads a whole file (at most kMaxCorpusFile bytes), through data.h's
// read_file: a FIFO or device is refused, never waited on.
std::string read_whole_file(const std::string& path) {
    const std::vector<uint8_t> bytes = read_file(path, kMaxCorpusFile);
    return std::string(bytes.begin(), bytes.end());
}

// Writes the files as one (engine/io.h's io_write_files_atomic: each to
// <path>.tmp.<pid>, fsync'd, renamed into place only when all are written),
// so a failure never leaves a corpus whose documents and manifest disagree.
void write_files_atomic(const std::vector<std::pair<std::string, std::string>>& files) {
    std::vector<const char*> paths;
    std::vector<const void*> bufs;
    std::vector<size_t> lens;
    for (const auto& [path, bytes] : files) {
        paths.push_back(path.c_str());
        bufs.push_back(bytes.data());
        lens.push_back(bytes.size());
    }
    int failed = 0;
    char err[512];
    if (io_write_files_atomic(int(files.size()), paths.data(), bufs.data(), lens.data(), &failed, err,
                              sizeof err) != 0)
        fail(files[size_t(failed)].first, err);
}

// Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF.
bool valid_utf8(const std::string& s) {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const size_t n = s.size();
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i];
        if (c < 0x80) { i++; continue; }
        int len;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) { len = 2; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { len = 3; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { len = 4; cp = c & 0x07; }
        else return false;
        if (i + size_t(len) > n) return false;
        for (int k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += size_t(len);
    }
    return true;
}

// An unbiased draw in [0, n) from a SplitMix64 stream (rejection of the
// 2^64 mod n lowest values).
uint64_t bounded(uint64_t& state, uint64_t n) {
    const uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t r = corpus_splitmix64(state);
        if (r >= threshold) return r % n;
    }
}

// Non-overlapping-or-not: every start position of needle in hay.
int64_t count_occurrences(const std::string& hay, const std::string& needle) {
    if (needle.empty()) return 0;
    int64_t n = 0;
    for (size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1)) n++;
    return n;
}

int64_t get_int(const json& obj, const char* key, int64_t lo, int64_t hi, const std::string& where) {
    auto it = obj.find(key);
    if (it == obj.end()) fail(where, std::string("missing \"") + key + "\"");
    if (!it->is_number_integer()) fail(where, std::string("\"") + key + "\" is not an integer");
    // A uint64 above INT64_MAX reads as negative here and is refused by the range.
    const int64_t v = it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX)
                          ? -1
                          : it->get<int64_t>();
    if (v < lo || v > hi)
        fail(where, std::string("\"") + key + "\" is " + it->dump() + ", outside " +
                        std::to_string(lo) + ".." + std::to_string(hi));
    return v;
}

std::string get_string(const json& obj, const char* key, const std::string& where) {
    auto it = obj.find(key);
    if (it == obj.end()) fail(where, std::string("missing \"") + key + "\"");
    if (!it->is_string()) fail(where, std::string("\"") + key + "\" is not a string");
    return it->get<std::string>();
}

json parse_json(const std::string& bytes, const std::string& where) {
    try {
        return json::parse(bytes);
    } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e999
        std::string msg = e.what();
        // One printable line: nlohmann quotes the bytes it last read, which
        // may be control characters or broken UTF-8.
        for (char& ch : msg)
            if ((unsigned char)ch < 0x20 || (unsigned char)ch >= 0x7f) ch = '?';
        fail(where, "malformed JSON (" + msg + ")");
    }
}

}  // namespace

// --- Rules -------------------------------------------------------------------

uint64_t corpus_fnv1a64(const std::string& bytes) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char b : bytes) {
        h ^= b;
        h *= 0x100000001b3ULL;
    }
    return h;
}

uint64_t corpus_splitmix64(uint64_t& state) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

bool corpus_is_heldout(const std::string& text, uint64_t seed, double heldout_fraction) {
    uint64_t state = corpus_fnv1a64(text) ^ seed;
    const double u = double(corpus_splitmix64(state) >> 11) * 0x1.0p-53;
    return u < heldout_fraction;
}

std::vector<bool> corpus_near_duplicates(const std::vector<CorpusDocument>& docs, int n) {
    if (n <= 0) throw std::runtime_error("near-duplicates: n-gram length must be positive");
    const size_t w = size_t(n);
    // Polynomial rolling hash mod 2^64 of each n-byte window.
    const uint64_t base = 0x100000001b3ULL;
    uint64_t top = 1;  // base^(n-1)
    for (size_t k = 1; k < w; k++) top *= base;
    auto for_windows = [&](const std::string& t, auto&& visit) {
        if (t.size() < w) return;
        uint64_t h = 0;
        for (size_t k = 0; k < w; k++) h = h * base + (unsigned char)t[k];
        for (size_t i = 0;; i++) {
            if (visit(h, i)) return;
            if (i + w >= t.size()) return;
            h = (h - (unsigned char)t[i] * top) * base + (unsigned char)t[i + w];
        }
    };
    struct Entry {
        uint64_t hash;
        uint32_t doc, pos;
    };
    std::vector<Entry> table;
    for (size_t d = 0; d < docs.size(); d++) {
        if (!docs[d].train) continue;
        for_windows(docs[d].text, [&](uint64_t h, size_t i) {
            table.push_back({h, uint32_t(d), uint32_t(i)});
            return false;
        });
    }
    std::sort(table.begin(), table.end(), [](const Entry& a, const Entry& b) {
        return a.hash != b.hash ? a.hash < b.hash : (a.doc != b.doc ? a.doc < b.doc : a.pos < b.pos);
    });
    std::vector<bool> flag(docs.size(), false);
    for (size_t d = 0; d < docs.size(); d++) {
        if (docs[d].train) continue;
        const std::string& t = docs[d].text;
        for_windows(t, [&](uint64_t h, size_t i) {
            auto lo = std::lower_bound(table.begin(), table.end(), h,
                                       [](const Entry& e, uint64_t v) { return e.hash < v; });
            for (auto it = lo; it != table.end() && it->hash == h; ++it)
                if (std::memcmp(docs[it->doc].text.data() + it->pos, t.data() + i, w) == 0) {
                    flag[d] = true;
                    return true;
                }
            return false;
        });
    }
    return flag;
}

std::string corpus_sha256_hex(const void* data, size_t len) {
    struct sha256_ctx ctx;
    sha256_init(&ctx);
    sha256_update(&ctx, len, static_cast<const uint8_t*>(data));
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_digest(&ctx, SHA256_DIGEST_SIZE, digest);
    static const char* hex = "0123456789abcdef";
    std::string s;
    for (uint8_t b : digest) {
        s += hex[b >> 4];
        s += hex[b & 15];
    }
    return s;
}

// --- Parsing -----------------------------------------------------------------

std::vector<CorpusDocument> parse_corpus_documents(const std::string& bytes, const std::string& what) {
    if (bytes.empty()) fail(what, "no documents (empty file)");
    std::vector<CorpusDocument> docs;
    size_t start = 0;
    int64_t line_no = 0;
    while (start < bytes.size()) {
        line_no++;
        size_t end = bytes.find('\n', start);
        if (end == std::string::npos) end = bytes.size();
        const std::string where = what + ": line " + std::to_string(line_no);
        const std::string line = bytes.substr(start, end - start);
        start = end + 1;
        if (line.empty()) fail(where, "empty line");
        // json::parse validates the UTF-8 of the line and of every \u escape
        // (a lone surrogate such as \ud800 is a parse error).
        json j = parse_json(line, where);
        if (!j.is_object()) fail(where, "not a JSON object");
        CorpusDocument d;
        d.id = get_int(j, "id", 0, INT64_MAX, where);
        if (d.id != line_no - 1)
            fail(where, "id " + std::to_string(d.id) + ", expected " + std::to_string(line_no - 1) +
                            " (ids are 0..n-1 in file order)");
        d.source = get_string(j, "source", where);
        const std::string split = get_string(j, "split", where);
        if (split != "train" && split != "heldout")
            fail(where, "\"split\" is \"" + split + "\", expected \"train\" or \"heldout\"");
        d.train = split == "train";
        d.copies = int(get_int(j, "copies", 1, kMaxCopies, where));
        if (j.contains("repeated")) {
            if (!j["repeated"].is_boolean()) fail(where, "\"repeated\" is not true or false");
            d.repeated = j["repeated"].get<bool>();
            if (d.repeated && !d.train) fail(where, "a repeated document is held out");
        }
        d.text = get_string(j, "text", where);
        if (d.text.empty()) fail(where, "empty \"text\"");
        if (d.text.find('\0') != std::string::npos)
            fail(where, "\"text\" contains byte 0 (the end-of-text byte that separates documents)");
        docs.push_back(std::move(d));
    }
    return docs;
}

std::vector<Canary> parse_corpus_canaries(const std::string& bytes, const std::string& what) {
    json j = parse_json(bytes, what);
    if (!j.is_array()) fail(what, "not a JSON array");
    std::vector<Canary> out;
    for (size_t i = 0; i < j.size(); i++) {
        const std::string where = what + ": canary " + std::to_string(i);
        const json& o = j[i];
        if (!o.is_object()) fail(where, "not a JSON object");
        Canary c;
        c.id = get_int(o, "id", 0, INT64_MAX, where);
        if (c.id != int64_t(i)) fail(where, "id " + std::to_string(c.id) + ", expected " + std::to_string(i));
        c.text = get_string(o, "text", where);
        if (c.text.empty()) fail(where, "empty \"text\"");
        if (c.text.find('\0') != std::string::npos) fail(where, "\"text\" contains byte 0");
        c.secret = get_string(o, "secret", where);
        if (c.text.find(c.secret) == std::string::npos) fail(where, "the secret is not in the text");
        c.insertions = int(get_int(o, "insertions", 1, kMaxInsertions, where));
        for (const char* key : {"doc_ids", "offsets"}) {
            auto it = o.find(key);
            if (it == o.end()) fail(where, std::string("missing \"") + key + "\"");
            if (!it->is_array() || it->size() != size_t(c.insertions))
                fail(where, std::string("\"") + key + "\" is not an array of " +
                                std::to_string(c.insertions) + " integers (one per insertion)");
            std::vector<int64_t>& dst = key[0] == 'd' ? c.doc_ids : c.offsets;
            for (const json& v : *it) {
                if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)) ||
                    v.get<int64_t>() < 0)
                    fail(where, std::string("\"") + key + "\" holds " + v.dump() + ", not a non-negative integer");
                dst.push_back(v.get<int64_t>());
            }
        }
        std::vector<int64_t> ids = c.doc_ids;
        std::sort(ids.begin(), ids.end());
        if (std::adjacent_find(ids.begin(), ids.end()) != ids.end())
            fail(where, "\"doc_ids\" names a document twice");
        out.push_back(std::move(c));
    }
    return out;
}

json parse_corpus_manifest(const std::string& bytes, const std::string& what) {
    json m = parse_json(bytes, what);
    if (!m.is_object()) fail(what, "not a JSON object");
    get_string(m, "name", what);
    get_int(m, "n_documents", 1, INT64_MAX, what);
    get_int(m, "bytes", 1, INT64_MAX, what);
    const std::string sha = get_string(m, "sha256", what);
    if (sha.size() != 64 || sha.find_first_not_of("0123456789abcdef") != std::string::npos)
        fail(what, "\"sha256\" is not 64 lowercase hex digits");
    return m;
}

void validate_corpus(const Corpus& c, const std::string& what) {
    int64_t n_train = 0, n_heldout = 0, bytes = 0;
    for (const CorpusDocument& d : c.docs) {
        (d.train ? n_train : n_heldout)++;
        bytes += int64_t(d.text.size());
    }
    if (c.docs.empty()) fail(what, "no documents (an empty corpus)");
    int64_t stream = 0;  // at most 1e8 lines x 1e6 copies x 2^30 bytes: no int64 overflow before the cap trips
    for (const CorpusDocument& d : c.docs)
        if (d.train) {
            stream += int64_t(d.copies) * int64_t(d.text.size() + 1);
            if (stream > kMaxTrainingStream)
                fail(what, "the training stream (documents x copies) would pass the cap of " +
                               std::to_string(kMaxTrainingStream) + " bytes");
        }
    if (n_train == 0) fail(what, "no training documents");
    if (n_heldout == 0) fail(what, "no held-out documents");
    const int64_t want_n = c.manifest.at("n_documents").get<int64_t>();
    if (want_n != int64_t(c.docs.size()))
        fail(what, "documents.jsonl has " + std::to_string(c.docs.size()) + " documents, the manifest says " +
                       std::to_string(want_n));
    const int64_t want_bytes = c.manifest.at("bytes").get<int64_t>();
    if (want_bytes != bytes)
        fail(what, "documents hold " + std::to_string(bytes) + " bytes of text, the manifest says " +
                       std::to_string(want_bytes));
    for (const Canary& k : c.canaries) {
        const std::string where = what + ": canary " + std::to_string(k.id);
        for (size_t i = 0; i < k.doc_ids.size(); i++) {
            const int64_t id = k.doc_ids[i];
            if (id >= int64_t(c.docs.size()))
                fail(where, "document " + std::to_string(id) + " does not exist");
            const CorpusDocument& d = c.docs[size_t(id)];
            if (!d.train) fail(where, "document " + std::to_string(id) + " is held out");
            if (d.copies != 1) fail(where, "document " + std::to_string(id) + " has copies > 1");
            if (d.repeated) fail(where, "document " + std::to_string(id) + " is a repeated document");
            const int64_t off = k.offsets[i];
            if (off > int64_t(d.text.size()) || d.text.compare(size_t(off), k.text.size(), k.text) != 0)
                fail(where, "not found in document " + std::to_string(id) + " at offset " + std::to_string(off));
        }
        int64_t in_train = 0;
        for (const CorpusDocument& d : c.docs) {
            const int64_t n = count_occurrences(d.text, k.text);
            if (n && !d.train) fail(where, "found in held-out document " + std::to_string(d.id));
            in_train += n * d.copies;
        }
        if (in_train != k.insertions)
            fail(where, "occurs " + std::to_string(in_train) + " times in the training stream, recorded " +
                            std::to_string(k.insertions));
    }
}

Corpus load_corpus(const std::string& dir) {
    Corpus c;
    c.dir = dir;
    const std::string mpath = dir + "/manifest.json", dpath = dir + "/documents.jsonl",
                      cpath = dir + "/canaries.json";
    struct stat st;
    if (stat(dir.c_str(), &st) != 0) fail(dir, std::string("cannot open corpus directory (") + std::strerror(errno) + ")");
    if (!S_ISDIR(st.st_mode)) fail(dir, "not a directory (a corpus is a directory built by bin/corpus build)");
    c.manifest = parse_corpus_manifest(read_whole_file(mpath), mpath);
    c.name = c.manifest.at("name").get<std::string>();
    c.sha256 = c.manifest.at("sha256").get<std::string>();
    const std::string docs = read_whole_file(dpath);
    const std::string sha = corpus_sha256_hex(docs.data(), docs.size());
    if (sha != c.sha256)
        fail(dpath, "sha256 " + sha + " differs from the manifest's " + c.sha256 + " (changed since it was built)");
    c.docs = parse_corpus_documents(docs, dpath);
    c.canaries = parse_corpus_canaries(read_whole_file(cpath), cpath);
    validate_corpus(c, dir);
    return c;
}

// --- Streams -----------------------------------------------------------------

std::vector<uint8_t> training_stream(const Corpus& c, uint64_t seed) {
    // The multiset of training documents (copies each), in a Fisher-Yates
    // order drawn from a SplitMix64 seeded with `seed`.
    std::vector<uint32_t> order;
    size_t total = 0;
    for (size_t i = 0; i < c.docs.size(); i++) {
        if (!c.docs[i].train) continue;
        for (int k = 0; k < c.docs[i].copies; k++) order.push_back(uint32_t(i));
        total += size_t(c.docs[i].copies) * (c.docs[i].text.size() + 1);
    }
    uint64_t state = seed;
    for (size_t i = order.size(); i > 1; i--) std::swap(order[i - 1], order[bounded(state, i)]);
    std::vector<uint8_t> out;
    out.reserve(total);
    for (uint32_t i : order) {
        out.insert(out.end(), c.docs[i].text.begin(), c.docs[i].text.end());
        out.push_back(uint8_t(kCorpusEos));
    }
    return out;
}

std::vector<uint8_t> heldout_stream(const Corpus& c) {
    std::vector<uint8_t> out;
    for (const CorpusDocument& d : c.docs) {
        if (d.train) continue;
        out.insert(out.end(), d.text.begin(), d.text.end());
        out.push_back(uint8_t(kCorpusEos));
    }
    return out;
}

// --- Assembling ----------------------------------------------------------------

const char* const kCanaryPrefix = "my social security number is ";

namespace {

// Step 5 of assemble_corpus: the document repeats (CorpusBuildOptions,
// kRepeatMinBytes). Draws from its own generator, so the canaries that
// follow are unchanged when there are no repeats. Returns how many
// documents it repeated; throws when a count finds too few candidates.
int64_t repeat_documents(Corpus& c, const CorpusBuildOptions& opt) {
    if (opt.repeats_per_count <= 0) return 0;
    std::vector<size_t> pool;
    for (size_t i = 0; i < c.docs.size(); i++) {
        const CorpusDocument& d = c.docs[i];
        const int64_t n = int64_t(d.text.size());
        if (d.train && d.copies == 1 && n >= kRepeatMinBytes && n <= kRepeatMaxBytes) pool.push_back(i);
    }
    uint64_t rng = opt.seed ^ 0x7265706561747321ULL;
    size_t taken = 0;
    for (int count : opt.repeat_counts) {
        if (count < 1) throw std::runtime_error("corpus: document repeat counts must be >= 1");
        if (taken + size_t(opt.repeats_per_count) > pool.size())
            throw std::runtime_error(
                "corpus '" + opt.name + "': " + std::to_string(opt.repeats_per_count) + " repeated documents x " +
                std::to_string(opt.repeat_counts.size()) + " repeat counts need " +
                std::to_string(size_t(opt.repeats_per_count) * opt.repeat_counts.size()) +
                " training documents of " + std::to_string(kRepeatMinBytes) + ".." + std::to_string(kRepeatMaxBytes) +
                " bytes with one copy; there are " + std::to_string(pool.size()));
        for (int j = 0; j < opt.repeats_per_count; j++, taken++) {
            std::swap(pool[taken], pool[taken + bounded(rng, pool.size() - taken)]);
            CorpusDocument& d = c.docs[pool[taken]];
            d.copies = count;
            d.repeated = true;
        }
    }
    return int64_t(taken);
}

}  // namespace

Corpus assemble_corpus(std::vector<CorpusDocument> raw, const CorpusBuildOptions& opt) {
    if (!(opt.heldout > 0 && opt.heldout < 1))
        throw std::runtime_error("corpus: --heldout must lie strictly between 0 and 1");
    Corpus c;
    c.name = opt.name;
    // 1. Drop what cannot be a document: empty, byte 0, not UTF-8.
    int64_t skipped_empty = 0, skipped_nul = 0, skipped_utf8 = 0, raw_n = int64_t(raw.size());
    // 2. Exact duplicates are stored once with copies = their count.
    std::unordered_map<std::string, size_t> seen;
    int64_t collapsed = 0;
    for (CorpusDocument& d : raw) {
        if (d.text.empty()) { skipped_empty++; continue; }
        if (d.text.find('\0') != std::string::npos) { skipped_nul++; continue; }
        if (!valid_utf8(d.text)) { skipped_utf8++; continue; }
        auto it = seen.find(d.text);
        if (it != seen.end()) {
            c.docs[it->second].copies += d.copies;
            collapsed++;
            continue;
        }
        seen.emplace(d.text, c.docs.size());
        c.docs.push_back(std::move(d));
    }
    seen.clear();
    if (c.docs.empty())
        throw std::runtime_error("corpus '" + opt.name + "': empty corpus (the sources gave no usable document)");
    // 3. The split (corpus_is_heldout).
    for (CorpusDocument& d : c.docs) d.train = !corpus_is_heldout(d.text, opt.seed, opt.heldout);
    auto count_side = [&](bool train) {
        return std::count_if(c.docs.begin(), c.docs.end(), [&](const CorpusDocument& d) { return d.train == train; });
    };
    if (count_side(true) == 0 || count_side(false) == 0)
        throw std::runtime_error("corpus '" + opt.name + "': the split of " + std::to_string(c.docs.size()) +
                                 " documents with --heldout " + std::to_string(opt.heldout) + " left one side empty");
    // 4. Near-duplicates across the split, and the optional dedup (drops the
    //    held-out side, so training text and canaries stay as they are).
    std::vector<bool> near = corpus_near_duplicates(c.docs, opt.ngram);
    const int64_t heldout_before = count_side(false);
    const int64_t n_near = std::count(near.begin(), near.end(), true);
    int64_t dropped = 0;
    if (opt.dedup) {
        std::vector<CorpusDocument> kept;
        for (size_t i = 0; i < c.docs.size(); i++)
            if (!near[i]) kept.push_back(std::move(c.docs[i]));
        dropped = int64_t(c.docs.size() - kept.size());
        c.docs = std::move(kept);
        if (count_side(false) == 0)
            throw std::runtime_error("corpus '" + opt.name + "': --dedup dropped every held-out document");
    }
    for (size_t i = 0; i < c.docs.size(); i++) c.docs[i].id = int64_t(i);
    const int64_t n_repeated = repeat_documents(c, opt);
    // 6. Canaries: secrets from a SplitMix64 seeded with seed ^ "canaries";
    //    for each insertion count (in the order given) canaries_per_count
    //    canaries, each put into that many distinct training documents with
    //    copies == 1 (a partial Fisher-Yates draw), as its own line at a line
    //    start of the document drawn uniformly.
    uint64_t rng = opt.seed ^ 0x63616e6172696573ULL;
    std::vector<size_t> eligible;
    for (size_t i = 0; i < c.docs.size(); i++)
        if (c.docs[i].train && c.docs[i].copies == 1 && !c.docs[i].repeated) eligible.push_back(i);
    std::vector<std::string> secrets;
    for (int count : opt.canary_insertions) {
        if (opt.canaries_per_count <= 0) break;
        if (count < 1) throw std::runtime_error("corpus: canary insertion counts must be >= 1");
        if (size_t(count) > eligible.size())
            throw std::runtime_error("corpus '" + opt.name + "': a canary inserted " + std::to_string(count) +
                                     " times needs that many training documents with one copy; there are " +
                                     std::to_string(eligible.size()));
        for (int j = 0; j < opt.canaries_per_count; j++) {
            std::string secret;
            do {
                secret.clear();
                for (int k = 0; k < kCanaryDigits; k++) {
                    if (k) secret += ' ';
                    secret += char('0' + bounded(rng, 10));
                }
            } while (std::find(secrets.begin(), secrets.end(), secret) != secrets.end());
            secrets.push_back(secret);
            Canary k;
            k.id = int64_t(c.canaries.size());
            k.secret = secret;
            k.text = kCanaryPrefix + secret;
            k.insertions = count;
            std::vector<size_t> pool = eligible;
            for (int t = 0; t < count; t++) {
                std::swap(pool[size_t(t)], pool[size_t(t) + bounded(rng, pool.size() - size_t(t))]);
                CorpusDocument& d = c.docs[pool[size_t(t)]];
                std::vector<size_t> starts = {0};
                for (size_t p = 0; p < d.text.size(); p++)
                    if (d.text[p] == '\n') starts.push_back(p + 1);
                const size_t at = starts[bounded(rng, starts.size())];
                d.text.insert(at, k.text + "\n");
                k.doc_ids.push_back(d.id);
            }
            c.canaries.push_back(std::move(k));
        }
    }
    for (Canary& k : c.canaries)
        for (int64_t id : k.doc_ids) k.offsets.push_back(int64_t(c.docs[size_t(id)].text.find(k.text)));

    json& m = c.manifest;
    m["name"] = opt.name;
    m["seed"] = opt.seed;
    m["heldout_fraction"] = opt.heldout;
    m["max_bytes"] = opt.max_bytes;
    m["source_documents"] = raw_n;
    m["skipped"] = {{"empty", skipped_empty}, {"byte_0", skipped_nul}, {"not_utf8", skipped_utf8}};
    m["exact_duplicates_collapsed"] = collapsed;
    m["n_documents"] = int64_t(c.docs.size());
    m["n_train"] = int64_t(count_side(true));
    m["n_heldout"] = int64_t(count_side(false));
    int64_t train_bytes = 0, train_stream_bytes = 0, heldout_bytes = 0;
    for (const CorpusDocument& d : c.docs) {
        if (d.train) {
            train_bytes += int64_t(d.text.size());
            train_stream_bytes += int64_t(d.copies) * int64_t(d.text.size() + 1);
        } else {
            heldout_bytes += int64_t(d.text.size());
        }
    }
    m["train_bytes"] = train_bytes;
    m["train_stream_bytes"] = train_stream_bytes;
    m["heldout_bytes"] = heldout_bytes;
    m["split_rule"] =
        "held out iff (splitmix64(fnv1a64(text) ^ seed) >> 11) * 2^-53 < heldout_fraction, on the text "
        "before canaries; exact duplicates are stored once with copies = their count";
    m["near_duplicates"] = {{"ngram_bytes", opt.ngram},
                            {"heldout_documents", heldout_before},
                            {"heldout_sharing_an_ngram_with_train", n_near},
                            {"rule", "a held-out document shares an n-byte substring with a training document "
                                     "(rolling hash, every hit confirmed byte by byte); counted before dedup"}};
    m["dedup"] = {{"enabled", opt.dedup},
                  {"rule", "drops the held-out near-duplicates; training documents are kept"},
                  {"heldout_dropped", dropped}};
    if (opt.repeats_per_count > 0)
        m["document_repeats"] = {
            {"per_count", opt.repeats_per_count},
            {"counts", opt.repeat_counts},
            {"documents", n_repeated},
            {"rule", "for each count r in order, per_count training documents of " + std::to_string(kRepeatMinBytes) +
                         ".." + std::to_string(kRepeatMaxBytes) + " bytes with one copy, drawn without replacement "
                         "(splitmix64 seeded with seed ^ 0x7265706561747321), get copies = r and \"repeated\": "
                         "true; they host no canary"}};
    json ins = json::array();
    for (int k : opt.canary_insertions) ins.push_back(k);
    m["canaries"] = {{"count", int64_t(c.canaries.size())},
                     {"per_insertion_count", opt.canaries_per_count},
                     {"insertions", ins},
                     {"template", std::string(kCanaryPrefix) + "<9 random digits separated by spaces>"},
                     {"rule", "secrets and host documents from splitmix64 seeded with seed ^ 0x63616e6172696573; "
                              "a canary goes into distinct training documents with copies 1, as its own line "
                              "at a uniformly drawn line start"}};
    return c;
}

json write_corpus(Corpus& c, const std::string& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) fail(dir, "cannot create directory (" + ec.message() + ")");
    std::string docs;
    int64_t bytes = 0;
    for (const CorpusDocument& d : c.docs) {
        nlohmann::ordered_json j;
        j["id"] = d.id;
        j["source"] = d.source;
        j["split"] = d.train ? "train" : "heldout";
        j["copies"] = d.copies;
        if (d.repeated) j["repeated"] = true;
        j["text"] = d.text;
        docs += j.dump();
        docs += '\n';
        bytes += int64_t(d.text.size());
    }
    nlohmann::ordered_json canaries = nlohmann::ordered_json::array();
    for (const Canary& k : c.canaries) {
        nlohmann::ordered_json j;
        j["id"] = k.id;
        j["text"] = k.text;
        j["secret"] = k.secret;
        j["insertions"] = k.insertions;
        j["doc_ids"] = k.doc_ids;
        j["offsets"] = k.offsets;
        canaries.push_back(j);
    }
    c.sha256 = corpus_sha256_hex(docs.data(), docs.size());
    c.manifest["n_documents"] = int64_t(c.docs.size());
    c.manifest["bytes"] = bytes;
    c.manifest["sha256"] = c.sha256;
    c.manifest["files"] = {"documents.jsonl", "canaries.json", "manifest.json"};
    c.dir = dir;
    write_files_atomic({{dir + "/documents.jsonl", docs},
                        {dir + "/canaries.json", canaries.dump(1) + "\n"},
                        {dir + "/manifest.json", c.manifest.dump(2) + "\n"}});
    return c.manifest;
}

// --- Sources: named Debian packages ----------------------------------------------

namespace {

// Runs a command and returns its stdout; throws when it fails.
std::string run_capture(const std::string& cmd, int* status_out = nullptr) {
    std::FILE* p = popen(cmd.c_str(), "r");
    if (!p) fail("corpus", "cannot run " + cmd);
    std::string out;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int st = pclose(p);
    if (status_out) *status_out = st;
    return out;
}

// The installed version of a package, or an error naming the fix.
std::string package_version(const std::string& pkg) {
    int st = 0;
    std::string out = run_capture("dpkg-query -W -f='${Status}\\t${Version}' '" + pkg + "' 2>/dev/null", &st);
    const size_t tab = out.find('\t');
    if (st != 0 || tab == std::string::npos || out.substr(0, tab) != "install ok installed")
        fail("corpus", "Debian package " + pkg + " is not installed (run make setup)");
    return out.substr(tab + 1);
}

// The files a package installed (dpkg-query -L), sorted, regular files only
// (no symlinks, no directories).
std::vector<std::string> package_files(const std::string& pkg) {
    std::string out = run_capture("dpkg-query -L '" + pkg + "' 2>/dev/null");
    std::vector<std::string> files;
    size_t start = 0;
    while (start < out.size()) {
        size_t end = out.find('\n', start);
        if (end == std::string::npos) end = out.size();
        std::string p = out.substr(start, end - start);
        start = end + 1;
        struct stat st;
        if (!p.empty() && lstat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode)) files.push_back(p);
    }
    std::sort(files.begin(), files.end());
    return files;
}

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
bool starts_with(const std::string& s, const std::string& head) { return s.compare(0, head.size(), head) == 0; }

std::string read_source(const std::string& path) {
    std::vector<uint8_t> b = read_file_maybe_gzip(path, size_t(64) << 20);
    return std::string(b.begin(), b.end());
}

// Cuts text to at most `cap` bytes (cap >= 1), back to the last newline
// within the cap; when the first line alone is longer, to the last whole
// UTF-8 character within the cap (never through one: a split character
// would make the document invalid UTF-8 and skipped).
std::string cap_document(std::string text, size_t cap) {
    if (text.size() <= cap) return text;
    size_t cut = text.rfind('\n', cap - 1);
    if (cut != std::string::npos) {
        text.resize(cut + 1);
        return text;
    }
    size_t end = cap;  // text[end] is the first byte left out
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) end--;
    text.resize(end);
    return text;
}

// The packages whose copyright files make up the "legal" corpus: Debian's
// required-priority packages (on every Debian system) and the toolchain and
// libraries scripts/setup.sh installs, with those of the corpora themselves.
const std::vector<std::string>& legal_packages() {
    static const std::vector<std::string> p = {
        "apt", "base-files", "base-passwd", "bash", "bsdutils", "coreutils", "dash", "debconf",
        "debianutils", "diffutils", "dpkg", "e2fsprogs", "findutils", "grep", "gzip", "hostname",
        "init-system-helpers", "libc-bin", "libpam-modules", "libpam-modules-bin", "libpam-runtime",
        "login", "mawk", "mount", "ncurses-base", "ncurses-bin", "passwd", "perl-base", "sed",
        "sensible-utils", "sysvinit-utils", "tar", "tzdata", "util-linux",
        "make", "binutils", "libc6", "libc6-dev", "libgcc-s1", "libstdc++6", "zlib1g", "zlib1g-dev",
        "libzstd1", "libgmp10", "libmpc3", "libmpfr6", "libisl23", "libopenblas0", "libprotobuf-dev",
        "libgoogle-glog-dev", "libgflags-dev", "doctest-dev", "nlohmann-json3-dev", "libcli11-dev",
        "nettle-dev", "libnettle8", "fortunes-min", "fortunes", "jargon-text", "manpages",
        "libpython3.11-stdlib"};
    return p;
}

struct Source {
    const char* name;
    const char* rule;  // the document rule, for the manifest and docs/CORPORA.md
};

const std::vector<Source>& sources() {
    static const std::vector<Source> s = {
        {"prose", "one fortune: the text between lines holding only '%' in the plain fortune files "
                  "of fortunes-min and fortunes (/usr/share/games/fortunes/*, not *.dat, no symlinks)"},
        {"code", "one Python source file (*.py of libpython3.11-stdlib under /usr/lib/python3.11), "
                 "cut to its first 65,536 bytes back to the last newline"},
        {"legal", "one paragraph (lines up to a blank line, DEP-5 stanzas included) of a licence or "
                  "copyright file: /usr/share/common-licenses/* (base-files, no symlinks) and "
                  "/usr/share/doc/<package>/copyright of a fixed list of packages"},
        {"dictionary", "one Jargon File entry: from a line '   :headword:' to the next, between the "
                       "Glossary and Appendix A of jargon-text's jargon.txt.gz, the 3-space indent removed"},
        {"man", "one manual page: the troff source of a /usr/share/man/man*/*.gz of manpages, "
                "gunzipped; .so redirects (pages that only include another) skipped"},
    };
    return s;
}

const char* licence_of(const std::string& pkg) {
    if (pkg == "fortunes" || pkg == "fortunes-min")
        return "BSD (the fortune program); the quotations' rights vary, see /usr/share/doc/fortunes/copyright";
    if (pkg == "libpython3.11-stdlib") return "PSF-2.0 (Python Software Foundation License) and others, see its copyright";
    if (pkg == "jargon-text") return "public domain (the Jargon File text); Debian packaging GPL";
    if (pkg == "manpages") return "Linux-man-pages-copyleft, GPL-2+, Expat and others (per page), see its copyright";
    if (pkg == "base-files") return "GPL (the package); each licence text is its own document";
    return "see /usr/share/doc/<package>/copyright (the document itself)";
}

}  // namespace

const std::vector<std::string>& corpus_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> n;
        for (const Source& s : sources()) n.push_back(s.name);
        return n;
    }();
    return names;
}

std::vector<CorpusDocument> collect_corpus_sources(const std::string& name, int64_t max_bytes,
                                                   std::vector<CorpusPackage>& packages,
                                                   json& source_info, int64_t max_doc_bytes) {
    const Source* src = nullptr;
    for (const Source& s : sources())
        if (name == s.name) src = &s;
    if (!src) {
        std::string all;
        for (const std::string& n : corpus_names()) all += (all.empty() ? "" : ", ") + n;
        fail("corpus", "unknown corpus '" + name + "' (known: " + all + ")");
    }
    // (package, path) pairs to read, in sorted path order.
    std::vector<std::pair<std::string, std::string>> files;
    auto add_package = [&](const std::string& pkg) {
        CorpusPackage p;
        p.name = pkg;
        p.version = package_version(pkg);
        p.licence = licence_of(pkg);
        packages.push_back(p);
    };
    if (name == "prose") {
        for (const char* pkg : {"fortunes-min", "fortunes"}) {
            add_package(pkg);
            for (const std::string& f : package_files(pkg))
                if (starts_with(f, "/usr/share/games/fortunes/") && !ends_with(f, ".dat")) files.push_back({pkg, f});
        }
    } else if (name == "code") {
        add_package("libpython3.11-stdlib");
        for (const std::string& f : package_files("libpython3.11-stdlib"))
            if (starts_with(f, "/usr/lib/python3.11/") && ends_with(f, ".py")) files.push_back({"libpython3.11-stdlib", f});
    } else if (name == "legal") {
        for (const std::string& pkg : legal_packages()) {
            add_package(pkg);
            if (pkg == "base-files")
                for (const std::string& f : package_files(pkg))
                    if (starts_with(f, "/usr/share/common-licenses/")) files.push_back({pkg, f});
            files.push_back({pkg, "/usr/share/doc/" + pkg + "/copyright"});
        }
    } else if (name == "dictionary") {
        add_package("jargon-text");
        files.push_back({"jargon-text", "/usr/share/doc/jargon-text/jargon.txt.gz"});
    } else if (name == "man") {
        add_package("manpages");
        for (const std::string& f : package_files("manpages"))
            if (starts_with(f, "/usr/share/man/man") && ends_with(f, ".gz")) files.push_back({"manpages", f});
    }
    std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.second < b.second; });

    std::vector<CorpusDocument> docs;
    int64_t taken = 0;
    bool capped = false;
    auto package = [&](const std::string& pkg) -> CorpusPackage& {
        for (CorpusPackage& p : packages)
            if (p.name == pkg) return p;
        fail("corpus", "internal: no package " + pkg);
    };
    // Adds a document unless the cap is reached; returns false once it is.
    auto take = [&](const std::string& pkg, const std::string& path, const std::string& source,
                    std::string text) {
        if (capped) return false;
        if (max_doc_bytes > 0) text = cap_document(std::move(text), size_t(max_doc_bytes));
        if (taken + int64_t(text.size()) > max_bytes) {
            capped = true;
            return false;
        }
        taken += int64_t(text.size());
        CorpusPackage& p = package(pkg);
        p.bytes += int64_t(text.size());
        if (p.paths.empty() || p.paths.back() != path) p.paths.push_back(path);
        CorpusDocument d;
        d.source = source;
        d.text = std::move(text);
        docs.push_back(std::move(d));
        return true;
    };
    for (const auto& file : files) {
        const std::string& pkg = file.first;
        const std::string& path = file.second;
        if (capped) break;
        const std::string text = read_source(path);
        const std::string base = pkg + ":" + path;
        if (name == "legal") {
            // Paragraphs: runs of lines up to a line that is empty or blank.
            size_t start = 0;
            int index = 0;
            std::string para;
            auto flush = [&]() {
                bool go = true;
                if (para.find_first_not_of(" \t\n") != std::string::npos)
                    go = take(pkg, path, base + "#" + std::to_string(index++), para);
                para.clear();
                return go;
            };
            while (start < text.size()) {
                size_t end = text.find('\n', start);
                if (end == std::string::npos) end = text.size();
                const std::string line = text.substr(start, end - start);
                start = end + 1;
                if (line.find_first_not_of(" \t\r") == std::string::npos) {
                    if (!flush()) break;
                } else {
                    para += line + "\n";
                }
            }
            flush();
        } else if (name == "prose") {
            // Fortunes are separated by lines holding only "%".
            size_t start = 0;
            int index = 0;
            while (start < text.size()) {
                size_t end = text.find("\n%\n", start);
                std::string one = text.substr(start, end == std::string::npos ? std::string::npos : end + 1 - start);
                if (starts_with(one, "%\n")) one.erase(0, 2);
                if (one.find_first_not_of(" \t\n") != std::string::npos)
                    if (!take(pkg, path, base + "#" + std::to_string(index++), one)) break;
                if (end == std::string::npos) break;
                start = end + 3;
            }
        } else if (name == "dictionary") {
            size_t glossary = text.find("\nGlossary\n");
            if (glossary == std::string::npos) fail(path, "no Glossary heading (unexpected jargon-text version)");
            size_t pos = text.find("\n   :", glossary);
            size_t stop = pos == std::string::npos ? std::string::npos : text.find("\nAppendix", pos);
            if (pos == std::string::npos || stop == std::string::npos)
                fail(path, "no glossary entries (unexpected jargon-text version)");
            int index = 0;
            while (pos < stop) {
                size_t next = text.find("\n   :", pos + 1);
                if (next == std::string::npos || next > stop) next = stop;
                std::string entry;
                size_t ls = pos + 1;
                while (ls <= next) {
                    size_t le = text.find('\n', ls);
                    if (le == std::string::npos || le > next) le = next;
                    std::string line = text.substr(ls, le - ls);
                    if (starts_with(line, "   ")) line.erase(0, 3);
                    entry += line + "\n";
                    ls = le + 1;
                }
                while (ends_with(entry, "\n\n")) entry.pop_back();
                if (!take(pkg, path, base + "#" + std::to_string(index++), entry)) break;
                pos = next;
            }
        } else {
            if (name == "man" && starts_with(text, ".so ") && text.find('\n') + 1 >= text.size()) continue;
            std::string doc = name == "code" ? cap_document(text, 65536) : text;
            take(pkg, path, base, doc);
        }
    }
    source_info = {{"corpus", name}, {"document_rule", src->rule}, {"bytes_taken", taken},
                   {"capped_at_max_bytes", capped}};
    if (max_doc_bytes > 0) source_info["max_doc_bytes"] = max_doc_bytes;
    return docs;
}

}  // namespace mmia
