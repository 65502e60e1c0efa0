// fuzz_bpe_blob.cpp: libFuzzer target for the BPE tokenizer blob loader
// (engine/bpe.h bpe_load), which the engines will run on the blob inside a
// packed model file, and for encode/decode with any blob it accepts.
//   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined -I. -Iengine \
//       fuzz/fuzz_bpe_blob.cpp -o build/fuzz/fuzz_bpe_blob
//   build/fuzz/fuzz_bpe_blob -max_total_time=60 fuzz/corpus/fuzz_bpe_blob
//
// Input: 2 bytes (little-endian) giving the length L of a text (modulo the
// input's size), then L bytes of text, then the blob. Checked: a refusal
// has a message; an accepted blob encodes the text (both with and without
// special tokens), every id is in 0..V-1, and decode(encode(text)) is the
// text, or when the blob asks for NFC, NFC(decode(encode(text))) == NFC(text)
// (non-normalized added tokens keep their raw text, so decode's output is
// only canonically equivalent); an encode may refuse only a byte without a
// token.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/bpe.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 2) return 0;
    size_t rest = size - 2;
    size_t text_len = rest ? ((size_t)data[0] | (size_t)data[1] << 8) % (rest + 1) : 0;
    const char* text = (const char*)data + 2;
    const uint8_t* blob = data + 2 + text_len;
    size_t blob_len = rest - text_len;
    Bpe t;
    char err[512] = {0};
    if (bpe_load(&t, blob, blob_len, err, sizeof err) != 0) {
        if (err[0] == 0) abort();
        return 0;
    }
    BpeBytes want = {0};
    if (t.flags & BPE_FLAG_NFC) {
        if (bpe_nfc((const uint8_t*)text, text_len, &want) != 0) abort();
    } else {
        want.bytes = (uint8_t*)malloc(text_len + 1);
        memcpy(want.bytes, text, text_len);
        want.n = text_len;
    }
    for (int special = 0; special < 2; special++) {
        BpeIds ids = {0};
        err[0] = 0;
        if (bpe_encode(&t, text, text_len, special, &ids, err, sizeof err) != 0) {
            if (strstr(err, "has no token in this vocabulary") == NULL) abort();
            free(ids.ids);
            continue;
        }
        for (size_t k = 0; k < ids.n; k++)
            if (ids.ids[k] < 0 || (uint32_t)ids.ids[k] >= t.vocab) abort();
        BpeBytes back = {0}, back_nfc = {0};
        if (bpe_decode(&t, ids.ids, ids.n, &back, err, sizeof err) != 0) abort();
        if (t.flags & BPE_FLAG_NFC) {
            if (bpe_nfc(back.bytes, back.n, &back_nfc) != 0) abort();
            free(back.bytes);
            back = back_nfc;
        }
        if (back.n != want.n || (want.n && memcmp(back.bytes, want.bytes, want.n) != 0)) abort();
        free(back.bytes);
        free(ids.ids);
    }
    free(want.bytes);
    bpe_free(&t);
    return 0;
}
