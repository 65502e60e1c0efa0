// corpus_text.cpp: see corpus_text.h.
#include "common/corpus_text.h"

#include <zstd.h>

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace mmia {

namespace {

[[noreturn]] void fail(const std::string& path, const std::string& why) { throw std::runtime_error(path + ": " + why); }

// Every frame of a zstd stream, streamed (ZSTD_decompressStream), so frames
// without a content size (zstd's streaming mode, as the Pile's files are
// written) decompress as well as those with one.
std::string unzstd(const std::vector<uint8_t>& in, const std::string& path, size_t max_bytes) {
    ZSTD_DCtx* dctx = ZSTD_createDCtx();
    if (!dctx) fail(path, "out of memory for the zstd decoder");
    std::string out, why;
    std::vector<char> chunk(ZSTD_DStreamOutSize());
    ZSTD_inBuffer src = {in.data(), in.size(), 0};
    for (;;) {
        ZSTD_outBuffer dst = {chunk.data(), chunk.size(), 0};
        const size_t r = ZSTD_decompressStream(dctx, &dst, &src);  // 0: a frame is complete and flushed
        if (ZSTD_isError(r)) {
            why = std::string("corrupt zstd stream (") + ZSTD_getErrorName(r) + ")";
            break;
        }
        if (out.size() + dst.pos > max_bytes) {
            why = "decompresses to more than " + std::to_string(max_bytes) + " bytes";
            break;
        }
        out.append(chunk.data(), dst.pos);
        if (src.pos == src.size && dst.pos < dst.size) {  // all read, nothing held back
            if (r != 0) why = "truncated zstd stream (it ends inside a frame)";
            break;
        }
    }
    ZSTD_freeDCtx(dctx);
    if (!why.empty()) fail(path, why);
    return out;
}

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool blank(const std::string& line) { return line.find_first_not_of(" \t\r\f\v") == std::string::npos; }

}  // namespace

bool is_zstd(const std::vector<unsigned char>& b) {
    return b.size() >= 4 && b[0] == 0x28 && b[1] == 0xB5 && b[2] == 0x2F && b[3] == 0xFD;
}

std::vector<std::string> load_text_documents(const std::string& path, size_t max_bytes) {
    const std::vector<uint8_t> raw = read_file(path, max_bytes);  // "<path>: <why>"
    const bool zst = is_zstd(raw);
    const std::string text = zst ? unzstd(raw, path, max_bytes) : std::string(raw.begin(), raw.end());
    const size_t nul = text.find('\0');
    if (nul != std::string::npos)
        fail(path, std::string("not text (byte 0x00 at offset ") + std::to_string(nul) + (zst ? " after decompression" : "") +
                       "): give plain text or JSON lines with a \"text\" field, optionally zstd-compressed (.zst)");
    const std::string name = zst && ends_with(path, ".zst") ? path.substr(0, path.size() - 4) : path;
    const size_t first = text.find_first_not_of(" \t\r\n\f\v");
    const bool jsonl = ends_with(name, ".jsonl") || ends_with(name, ".json") || (first != std::string::npos && text[first] == '{');
    std::vector<std::string> docs;
    size_t at = 0, line_no = 0;
    std::string para;
    while (at < text.size()) {
        size_t end = text.find('\n', at);
        if (end == std::string::npos) end = text.size();
        const std::string line = text.substr(at, end - at);
        at = end + 1;
        line_no++;
        if (jsonl) {
            if (blank(line)) continue;
            nlohmann::json j;
            try {
                j = nlohmann::json::parse(line);
            } catch (const nlohmann::json::exception& e) {
                fail(path, "line " + std::to_string(line_no) + ": not a JSON object (" + e.what() + ")");
            }
            if (!j.is_object()) fail(path, "line " + std::to_string(line_no) + ": not a JSON object (a JSON " + j.type_name() + ")");
            const auto t = j.find("text");
            if (t == j.end() || !t->is_string()) fail(path, "line " + std::to_string(line_no) + ": no string \"text\" field");
            if (!t->get_ref<const std::string&>().empty()) docs.push_back(t->get<std::string>());
        } else if (blank(line)) {
            if (!para.empty()) docs.push_back(std::move(para));
            para.clear();
        } else {
            if (!para.empty()) para += '\n';
            para += line;
        }
    }
    if (!para.empty()) docs.push_back(std::move(para));
    if (docs.empty()) fail(path, "no documents");
    return docs;
}

}  // namespace mmia
