// fuzz_tokenizer_json.cpp: libFuzzer target for the tokenizer.json and GPT-2
// readers (common/tokenizer_json.cpp): a Hugging Face tokenizer.json, or
// (when the input holds a line "=====") an encoder.json, that line, and a
// vocab.bpe. Whatever they accept must write a blob that bpe_load accepts
// and that encodes and decodes a fixed text.
//   build/fuzz/fuzz_tokenizer_json -max_total_time=60 fuzz/corpus/fuzz_tokenizer_json
//
// A finding: a crash, a sanitizer report, any exception but
// std::runtime_error (a raw nlohmann error counts), an accepted tokenizer
// whose blob is refused or whose decode(encode(x)) is not x (NFC(x) and
// NFC(decode(encode(x))) differ, for an NFC tokenizer).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <stdexcept>
#include <string>

#include "common/tokenizer_json.h"
#include "engine/bpe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string in(reinterpret_cast<const char*>(data), size);
    std::vector<uint8_t> blob;
    try {
        size_t sep = in.find("\n=====\n");
        mmia::BpeSpec spec = sep == std::string::npos ? mmia::bpe_spec_from_tokenizer_json(in)
                                                      : mmia::bpe_spec_from_gpt2(in.substr(0, sep), in.substr(sep + 7));
        blob = mmia::bpe_blob_write(spec);
    } catch (const std::runtime_error&) {
        return 0;
    }
    Bpe t;
    char err[512];
    if (bpe_load(&t, blob.data(), blob.size(), err, sizeof err) != 0) abort();
    const char* text = "Hello  world, it's 2024!\n\tcafe\xcc\x81 <|endoftext|>";
    BpeIds ids = {0};
    if (bpe_encode(&t, text, strlen(text), 0, &ids, err, sizeof err) == 0) {
        BpeBytes back = {0};
        if (bpe_decode(&t, ids.ids, ids.n, &back, err, sizeof err) != 0) abort();
        BpeBytes want = {0}, back_nfc = {0};
        if (t.flags & BPE_FLAG_NFC) {  // raw-matched added tokens keep their text: compare NFCs
            bpe_nfc((const uint8_t*)text, strlen(text), &want);
            bpe_nfc(back.bytes, back.n, &back_nfc);
            free(back.bytes);
            back = back_nfc;
        }
        const char* w = (t.flags & BPE_FLAG_NFC) ? (const char*)want.bytes : text;
        size_t wn = (t.flags & BPE_FLAG_NFC) ? want.n : strlen(text);
        if (back.n != wn || memcmp(back.bytes, w, wn) != 0) abort();
        free(back.bytes);
        free(want.bytes);
    }
    free(ids.ids);
    bpe_free(&t);
    return 0;
}
