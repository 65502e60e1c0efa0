// tokenizer_json.cpp: tokenizer.json / encoder.json + vocab.bpe -> BpeSpec
// -> blob. See tokenizer_json.h; the blob layout is docs/FORMAT.md's "BPE
// tokenizer blob" and engine/bpe.h's bpe_load.
#include "common/tokenizer_json.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <stdexcept>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "engine/bpe.h"

namespace mmia {

namespace {

using json = nlohmann::json;

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

// s as a JSON string for a message; bytes that are not UTF-8 (vocab.bpe is
// not checked) show as U+FFFD instead of throwing.
std::string quote(const std::string& s) { return json(s).dump(-1, ' ', false, json::error_handler_t::replace); }

// Code point -> byte for the byte-level alphabet (the inverse of
// bpe_byte_to_unicode); -1 for code points outside it.
const std::vector<int>& unicode_to_byte() {
    static const std::vector<int> table = [] {
        std::vector<int> t(0x200, -1);
        for (int b = 0; b < 256; b++) t[bpe_byte_to_unicode(uint8_t(b))] = b;
        return t;
    }();
    return table;
}

// A vocab or merge string in the byte-level alphabet -> its bytes.
std::string unmap(const std::string& s, const char* what) {
    std::string out;
    const auto& inv = unicode_to_byte();
    const uint8_t* p = reinterpret_cast<const uint8_t*>(s.data());
    for (size_t i = 0; i < s.size();) {
        uint32_t cp;
        i += size_t(bpe_utf8(p + i, s.size() - i, &cp));
        if (cp >= inv.size() || inv[cp] < 0) {
            char hex[16];
            std::snprintf(hex, sizeof hex, "U+%04X", cp & 0x1FFFFF);
            fail(std::string(what) + " " + quote(s) + " has character " + hex +
                 ", outside the byte-level alphabet");
        }
        out += char(inv[cp]);
    }
    return out;
}

// The text parsed as JSON, which must be an object.
json parse_object(const std::string& text, const char* what) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        fail(std::string(what) + " is not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object()) fail(std::string(what) + " is not a JSON object");
    return j;
}

// A vocabulary entry's id, which must be an integer in 0..BPE_MAX_VOCAB-1.
uint32_t vocab_id(const std::string& token, const json& id, const char* what) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= int64_t(BPE_MAX_VOCAB))
        fail(std::string(what) + " " + quote(token) + " has id " + id.dump() + ", not an integer in 0.." +
             std::to_string(BPE_MAX_VOCAB - 1));
    return uint32_t(id.get<int64_t>());
}

// obj[key] as a bool: dflt when absent or null; anything else but true or
// false is refused.
bool flag(const json& obj, const char* key, bool dflt, const std::string& what) {
    if (!obj.contains(key) || obj[key].is_null()) return dflt;
    if (!obj[key].is_boolean()) fail(what + " " + key + " is " + obj[key].dump() + ", not true or false");
    return obj[key].get<bool>();
}

std::string type_of(const json& j) {
    if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) return "(no type)";
    return j["type"].get<std::string>();
}

// A ByteLevel pre-tokenizer / decoder / post-processor as GPT-2 has it.
// use_regex false is noted in *no_regex (the first `what` with it): the
// caller refuses it when there are merges; without merges every byte is
// its own token however the text is split (our byte-level models' file).
void check_byte_level(const json& j, const char* what, const char** no_regex) {
    if (flag(j, "add_prefix_space", false, what))
        fail(std::string(what) + " ByteLevel with add_prefix_space true is not supported (GPT-2 and GPT-NeoX use false)");
    if (j.contains("use_regex") && j["use_regex"] != true && !*no_regex) *no_regex = what;
}

bool null_or(const json& j, const char* key, const json& ok) {
    return !j.contains(key) || j[key].is_null() || j[key] == ok;
}

// Ids 0..V-1 must all be assigned.
void check_dense(const std::vector<bool>& seen) {
    for (size_t i = 0; i < seen.size(); i++)
        if (!seen[i]) fail("token id " + std::to_string(i) + " has no token (ids must be 0..V-1 without gaps)");
}

// Merges "a b" (or ["a", "b"]) -> (left, right, result) ids.
void add_merge(BpeSpec& spec, const std::unordered_map<std::string, uint32_t>& vocab, const std::string& a,
               const std::string& b, size_t rank) {
    auto ia = vocab.find(a), ib = vocab.find(b), ir = vocab.find(a + b);
    if (ia == vocab.end() || ib == vocab.end() || ir == vocab.end())
        fail("merge " + std::to_string(rank) + " " + quote(a + " " + b) + " uses a token that is not in the vocabulary");
    spec.merges.push_back({ia->second, ib->second, ir->second});
}

}  // namespace

uint32_t bpe_byte_to_unicode(uint8_t b) {
    if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) return b;
    // The other 68 bytes, in increasing order, map to U+0100 + n.
    uint32_t n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 0x21 && c <= 0x7E) || (c >= 0xA1 && c <= 0xAC) || c >= 0xAE)) n++;
    return 0x100 + n;
}

BpeSpec bpe_spec_from_tokenizer_json(const std::string& json_text) {
    const json j = parse_object(json_text, "tokenizer.json");
    for (const char* key : {"truncation", "padding"})
        if (j.contains(key) && !j[key].is_null()) fail(std::string(key) + " is set: not supported (it must be null)");
    BpeSpec spec;
    const json& norm = j.contains("normalizer") ? j["normalizer"] : json();
    if (!norm.is_null()) {
        if (type_of(norm) != "NFC") fail("normalizer " + type_of(norm) + " is not supported (only NFC or none)");
        spec.nfc = true;
    }
    const json& pre = j.contains("pre_tokenizer") ? j["pre_tokenizer"] : json();
    if (type_of(pre) != "ByteLevel")
        fail("pre_tokenizer " + (pre.is_null() ? std::string("null") : type_of(pre)) + " is not supported (only ByteLevel)");
    const char* no_regex = nullptr;
    check_byte_level(pre, "pre_tokenizer", &no_regex);
    for (const char* key : {"decoder", "post_processor"}) {
        const json& d = j.contains(key) ? j[key] : json();
        if (d.is_null()) continue;
        if (type_of(d) != "ByteLevel") fail(std::string(key) + " " + type_of(d) + " is not supported (only ByteLevel or none)");
        check_byte_level(d, key, &no_regex);
    }
    if (!j.contains("model") || !j["model"].is_object()) fail("tokenizer.json has no \"model\" object");
    const json& m = j["model"];
    if (type_of(m) != "BPE") fail("model " + type_of(m) + " is not supported (only BPE)");
    if (!null_or(m, "dropout", json())) fail("model.dropout is set: not supported (BPE dropout is random)");
    if (!null_or(m, "unk_token", json())) fail("model.unk_token is set: not supported (byte-level BPE has none)");
    if (!null_or(m, "continuing_subword_prefix", "")) fail("model.continuing_subword_prefix is set: not supported");
    if (!null_or(m, "end_of_word_suffix", "")) fail("model.end_of_word_suffix is set: not supported");
    for (const char* key : {"fuse_unk", "byte_fallback", "ignore_merges"})
        if (!null_or(m, key, false)) fail(std::string("model.") + key + " is true: not supported");
    if (!m.contains("vocab") || !m["vocab"].is_object()) fail("model.vocab is not a JSON object");
    if (!m.contains("merges") || !m["merges"].is_array()) fail("model.merges is not a JSON array");

    std::unordered_map<std::string, uint32_t> vocab;  // byte-level string -> id
    std::vector<bool> seen;
    auto assign = [&](uint32_t id, const std::string& bytes, const std::string& shown) {
        if (id >= spec.tokens.size()) {
            spec.tokens.resize(id + 1);
            seen.resize(id + 1, false);
        }
        if (seen[id] && spec.tokens[id] != bytes)
            fail("token id " + std::to_string(id) + " is both " + quote(spec.tokens[id]) +
                 " and " + shown);
        spec.tokens[id] = bytes;
        seen[id] = true;
    };
    for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
        uint32_t id = vocab_id(it.key(), it.value(), "model.vocab");
        vocab[it.key()] = id;
        assign(id, unmap(it.key(), "model.vocab token"), quote(it.key()));
    }
    size_t rank = 0;
    for (const json& mg : m["merges"]) {
        std::string a, b;
        if (mg.is_string()) {
            const std::string s = mg.get<std::string>();
            size_t sp = s.find(' ');
            if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
                fail("merge " + std::to_string(rank) + " " + mg.dump() + " is not two tokens separated by one space");
            a = s.substr(0, sp);
            b = s.substr(sp + 1);
        } else if (mg.is_array() && mg.size() == 2 && mg[0].is_string() && mg[1].is_string()) {
            a = mg[0].get<std::string>();
            b = mg[1].get<std::string>();
        } else {
            fail("merge " + std::to_string(rank) + " " + mg.dump() + " is neither \"a b\" nor [\"a\", \"b\"]");
        }
        add_merge(spec, vocab, a, b, rank++);
    }
    if (no_regex && !spec.merges.empty())
        fail(std::string(no_regex) + " ByteLevel with use_regex false is not supported with merges (without merges it changes nothing)");
    if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
        if (!j["added_tokens"].is_array()) fail("added_tokens is not a JSON array");
        // Hugging Face ignores these ids when it loads the file and assigns
        // its own (added_vocabulary.rs add_tokens): the vocabulary's id for
        // the same string, else the id an earlier added token got, else the
        // next id after the largest added one (at least the model's size).
        // A file whose ids differ from that is refused.
        const int64_t model_size = int64_t(vocab.size());
        std::unordered_map<std::string, uint32_t> added_ids;
        int64_t max_added = -1;
        for (const json& a : j["added_tokens"]) {
            if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
                !a["content"].is_string())
                fail("added token " + a.dump() + " lacks an integer id or a string content");
            int64_t id = a["id"].get<int64_t>();
            const std::string content = a["content"].get<std::string>();
            if (id < 0 || id >= int64_t(BPE_MAX_VOCAB))
                fail("added token " + quote(content) + " has id " + std::to_string(id) + ", outside 0.." +
                     std::to_string(BPE_MAX_VOCAB - 1));
            if (content.empty()) fail("added token id " + std::to_string(id) + " is empty");
            for (const char* key : {"lstrip", "rstrip", "single_word"})
                if (flag(a, key, false, "added token " + quote(content)))
                    fail("added token " + quote(content) + " has " + key + " true: not supported");
            auto in_vocab = vocab.find(content);
            auto earlier = added_ids.find(content);
            int64_t hf_id = in_vocab != vocab.end() ? int64_t(in_vocab->second)
                            : earlier != added_ids.end() ? int64_t(earlier->second)
                            : max_added >= model_size ? max_added + 1 : model_size;
            if (hf_id != id)
                fail("added token " + quote(content) + " has id " + std::to_string(id) + " but Hugging Face tokenizers gives it " +
                     std::to_string(hf_id) + " (the vocabulary's id for that string, else the next free one): not supported");
            added_ids[content] = uint32_t(id);
            max_added = std::max(max_added, id);
            bool special = flag(a, "special", false, "added token " + quote(content));
            bool normalized = flag(a, "normalized", !special, "added token " + quote(content));
            assign(uint32_t(id), content, quote(content));
            spec.added.push_back({uint32_t(id), (special ? BPE_ADDED_SPECIAL : 0u) | (normalized ? BPE_ADDED_NORMALIZED : 0u)});
        }
    }
    if (spec.tokens.empty()) fail("the vocabulary is empty");
    check_dense(seen);
    return spec;
}

BpeSpec bpe_spec_from_gpt2(const std::string& encoder_json_text, const std::string& vocab_bpe_text) {
    const json j = parse_object(encoder_json_text, "encoder.json");
    BpeSpec spec;
    std::unordered_map<std::string, uint32_t> vocab;
    std::vector<bool> seen;
    for (auto it = j.begin(); it != j.end(); ++it) {
        uint32_t id = vocab_id(it.key(), it.value(), "encoder.json");
        if (id >= spec.tokens.size()) {
            spec.tokens.resize(id + 1);
            seen.resize(id + 1, false);
        }
        if (seen[id]) fail("encoder.json gives id " + std::to_string(id) + " to two tokens");
        seen[id] = true;
        vocab[it.key()] = id;
        spec.tokens[id] = unmap(it.key(), "encoder.json token");
    }
    if (spec.tokens.empty()) fail("encoder.json is empty");
    check_dense(seen);
    size_t rank = 0, line_no = 0, pos = 0;
    while (pos < vocab_bpe_text.size()) {
        size_t end = vocab_bpe_text.find('\n', pos);
        if (end == std::string::npos) end = vocab_bpe_text.size();
        std::string line = vocab_bpe_text.substr(pos, end - pos);
        pos = end + 1;
        line_no++;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
        size_t sp = line.find(' ');
        if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
            fail("vocab.bpe line " + std::to_string(line_no) + " is not two tokens separated by one space");
        add_merge(spec, vocab, line.substr(0, sp), line.substr(sp + 1), rank++);
    }
    auto eot = vocab.find("<|endoftext|>");
    if (eot != vocab.end()) spec.added.push_back({eot->second, BPE_ADDED_SPECIAL});
    return spec;
}

std::vector<uint8_t> bpe_blob_write(const BpeSpec& spec) {
    const size_t V = spec.tokens.size();
    if (V < 1 || V > BPE_MAX_VOCAB) fail("vocabulary of " + std::to_string(V) + " tokens is outside 1.." + std::to_string(BPE_MAX_VOCAB));
    if (spec.merges.size() > BPE_MAX_MERGES) fail(std::to_string(spec.merges.size()) + " merges is over the cap of " + std::to_string(BPE_MAX_MERGES));
    std::vector<uint8_t> out;
    auto put = [&](uint32_t v) {
        uint8_t b[4];
        std::memcpy(b, &v, 4);
        out.insert(out.end(), b, b + 4);
    };
    uint64_t total = 0;
    for (const auto& t : spec.tokens) total += t.size();
    if (total > BPE_MAX_TOKEN_BYTES) fail("the token strings take " + std::to_string(total) + " bytes, over the cap");
    uint32_t byte_token[256];
    for (auto& b : byte_token) b = BPE_NONE;
    // The one-byte token of each byte: the first id whose bytes are it,
    // skipping added tokens (they are matched, never built from bytes).
    std::vector<bool> is_added(V, false);
    for (const auto& a : spec.added) {
        if (a[0] >= V) fail("added token id " + std::to_string(a[0]) + " is outside the vocabulary");
        is_added[a[0]] = true;
    }
    for (size_t i = 0; i < V; i++)
        if (spec.tokens[i].size() == 1 && !is_added[i] && byte_token[uint8_t(spec.tokens[i][0])] == BPE_NONE)
            byte_token[uint8_t(spec.tokens[i][0])] = uint32_t(i);
    put(BPE_MAGIC);
    put(BPE_VERSION);
    put(spec.nfc ? BPE_FLAG_NFC : 0u);
    put(uint32_t(V));
    put(uint32_t(spec.merges.size()));
    put(uint32_t(spec.added.size()));
    put(uint32_t(total));
    for (uint32_t b : byte_token) put(b);
    uint32_t end = 0;
    for (const auto& t : spec.tokens) put(end += uint32_t(t.size()));
    for (const auto& mg : spec.merges) for (uint32_t v : mg) put(v);
    for (const auto& a : spec.added) for (uint32_t v : a) put(v);
    for (const auto& t : spec.tokens) out.insert(out.end(), t.begin(), t.end());
    // The loader's checks, so a written blob always loads.
    Bpe check;
    char err[256];
    if (bpe_load(&check, out.data(), out.size(), err, sizeof err) != 0) fail(err);
    bpe_free(&check);
    return out;
}

}  // namespace mmia
