// gen_bpe_seeds.cpp: writes the seed corpus of fuzz_bpe_blob (fuzz/corpus/fuzz_bpe_blob/*.mbpe):
// a 2-byte text length, the text, then a blob from bpe_blob_write.
//   g++ -std=c++17 -O1 -I. -Iengine fuzz/gen_bpe_seeds.cpp common/tokenizer_json.cpp -o /tmp/gen_bpe_seeds && /tmp/gen_bpe_seeds
#include "common/tokenizer_json.h"
#include "engine/bpe.h"
#include <cstdio>
#include <string>
using namespace mmia;
static void write(const char* path, const std::string& text, const std::vector<uint8_t>& blob) {
    FILE* f = fopen(path, "wb");
    uint8_t h[2] = {uint8_t(text.size() & 255), uint8_t(text.size() >> 8)};
    fwrite(h, 1, 2, f); fwrite(text.data(), 1, text.size(), f); fwrite(blob.data(), 1, blob.size(), f); fclose(f);
}
int main() {
    BpeSpec s;
    s.tokens = {"a", "b", "c", "ab", "abc", "<s>", "  ", " "};
    s.merges = {{0, 1, 3}, {3, 2, 4}};
    s.added = {{5, BPE_ADDED_SPECIAL}, {6, BPE_ADDED_NORMALIZED}};
    s.nfc = false;
    write("fuzz/corpus/fuzz_bpe_blob/tiny.mbpe", "abc ab<s>  cba", bpe_blob_write(s));
    // Every byte a token, NFC on, merges over the common letters.
    BpeSpec b;
    for (int i = 0; i < 256; i++) b.tokens.push_back(std::string(1, char(i)));
    const char* pairs[][2] = {{" ", "t"}, {"t", "h"}, {" t", "h"}, {"e", "r"}, {" th", "e"}, {"\xc3", "\xa9"}};
    for (auto& p : pairs) {
        std::string r = std::string(p[0]) + p[1];
        uint32_t l = 0, rt = 0, res = 0;
        for (uint32_t i = 0; i < b.tokens.size(); i++) { if (b.tokens[i] == p[0]) l = i; if (b.tokens[i] == p[1]) rt = i; }
        b.tokens.push_back(r); res = uint32_t(b.tokens.size() - 1);
        b.merges.push_back({l, rt, res});
    }
    b.tokens.push_back("<|endoftext|>"); b.added.push_back({uint32_t(b.tokens.size() - 1), BPE_ADDED_SPECIAL});
    b.nfc = true;
    BpeSpec c = b;
    c.tokens.push_back("e\xcc\x81"); c.added.push_back({uint32_t(c.tokens.size() - 1), 0});
    c.tokens.push_back("\xc3\xa9t"); c.added.push_back({uint32_t(c.tokens.size() - 1), BPE_ADDED_NORMALIZED});
    write("fuzz/corpus/fuzz_bpe_blob/raw_added.mbpe", "cafe\xcc\x81 e\xcc\x81t \xc3\xa9t <|endoftext|>", bpe_blob_write(c));
    write("fuzz/corpus/fuzz_bpe_blob/bytes_nfc.mbpe", "the other cafe\xcc\x81 th\xc3\xa9 <|endoftext|> \xff\x80", bpe_blob_write(b));
}
