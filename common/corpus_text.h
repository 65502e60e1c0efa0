// corpus_text.h: a user's own text corpus for bin/extract --text (issue 12):
// plain text, or JSON lines with a "text" field (the Pile's layout),
// either one optionally zstd-compressed (.zst, as the Pile ships).
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "common/data.h"  // kMaxFileBytes

namespace mmia {

// The documents of the corpus file at `path`, in file order:
//   - decompressed first when the file starts with zstd's frame magic
//     (28 B5 2F FD; whatever its name), streaming through libzstd, every
//     frame of the file, capped at max_bytes of output;
//   - JSON lines when the (decompressed) name ends in .jsonl or .json, or
//     the first byte that is not white space is '{': one document per
//     non-blank line, its string "text" (other fields ignored);
//   - else plain text: documents separated by blank lines (a line of
//     nothing but white space), each without its trailing newline.
// Empty documents are dropped. Throws std::runtime_error("<path>: <why>"):
// a file read_file refuses; "corrupt zstd stream (<libzstd's reason>)";
// "truncated zstd stream (it ends inside a frame)"; "decompresses to more
// than N bytes"; "not text (byte 0x00 at offset N): give plain text or JSON
// lines with a \"text\" field, optionally zstd-compressed (.zst)";
// "line N: not a JSON object (...)"; "line N: no string \"text\" field";
// "no documents".
std::vector<std::string> load_text_documents(const std::string& path, size_t max_bytes = kMaxFileBytes);

// zstd's frame magic: the file's first four bytes, little-endian 0xFD2FB528.
bool is_zstd(const std::vector<unsigned char>& bytes);

}  // namespace mmia
