// bpe.h: byte-level BPE tokenizer, as GPT-2 and GPT-NeoX (Pythia, the
// mamba-*-hf models) use it: NFC (optional), added tokens matched before BPE
// (leftmost-longest), the GPT-2 split regex, the GPT-2 byte <-> unicode map,
// merges by rank. Reads the "BPE tokenizer blob" (docs/FORMAT.md) that
// common/tokenizer_json.cpp writes from a Hugging Face tokenizer.json or
// GPT-2's encoder.json + vocab.bpe.
//
//   Bpe t;
//   char err[256];
//   if (bpe_load(&t, blob, blob_len, err, sizeof err) != 0) { report err }
//   BpeIds ids = {0};
//   if (bpe_encode(&t, text, text_len, /*allow_special=*/0, &ids, err, sizeof err) != 0) { report err }
//   BpeBytes out = {0};
//   bpe_decode(&t, ids.ids, ids.n, &out, err, sizeof err);  // out.bytes[0..out.n)
//   free(ids.ids); free(out.bytes); bpe_free(&t);
//
// Follows Hugging Face tokenizers (tokenizer.rs encode: added-token split on
// the raw text for non-normalized tokens, normalize, split on normalized
// tokens; pre_tokenizers/byte_level.rs; models/bpe/word.rs merge_all) and
// openai/gpt-2 src/encoder.py. Invalid UTF-8: each byte that does not start
// a valid sequence (overlong, surrogate, > U+10FFFF, truncated, stray
// continuation) is one character of its own, of the regex's "other" class,
// left alone by NFC, and encoded as its byte's token; a vocabulary without
// that token (GPT-NeoX has none for 0xC0 0xC1 0xF5..0xFF) refuses the text.
// So decode(encode(x)) == x for every byte string x that encodes (without
// NFC), and with NFC == NFC(x) when no non-normalized added token matched
// (those keep their raw text; in general NFC(decode(encode(x))) == NFC(x)).
//
// A loaded Bpe is read-only: bpe_encode / bpe_decode / bpe_token_bytes may
// run on it from many threads at once (each encode call owns its scratch).
// For streaming output, print bpe_token_bytes(t, id, &len) per generated id.
// Cost: O(n log n) in a piece's length (no quadratic merge loop); about
// 6-10 MB/s on one core of the development machine (BENCHMARKS.md).
//
// Header-only, static inline, C-style: libc only. Error strings are "<why>";
// callers add "error: <what>: ".
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "packed.h"  // packed_err
#include "unicode_tables.h"

#define BPE_MAGIC 0x4550424Du  // "MBPE" little-endian
#define BPE_VERSION 1u
#define BPE_FLAG_NFC 1u              // normalize the text to NFC before splitting
#define BPE_ADDED_SPECIAL 1u         // added token produced only when asked (allow_special)
#define BPE_ADDED_NORMALIZED 2u      // matched on the normalized text (else on the raw text)
#define BPE_NONE 0xFFFFFFFFu         // "no token" in byte_token
#define BPE_HEADER_BYTES (28u + 256u * 4u)
#define BPE_MAX_VOCAB 262144u        // = LM_MAX_VOCAB
#define BPE_MAX_MERGES 4194304u
#define BPE_MAX_TOKEN_BYTES (1u << 28)  // all token strings together

// ----------------------------------------------------------------------------
// The tokenizer, built from a blob (owns its memory)

typedef struct {
    uint32_t vocab;           // V: ids 0..V-1
    uint32_t flags;           // BPE_FLAG_*
    uint32_t byte_token[256]; // the one-byte token of each byte, or BPE_NONE
    uint32_t* tok_end;        // [V] end of token i's bytes in tok_bytes (start: tok_end[i-1], or 0)
    uint8_t* tok_bytes;       // [tok_end[V-1]] every token's bytes (what decode prints)
    uint32_t n_merges;
    uint32_t merge_cap;       // hash slots, a power of 2 >= 2 * n_merges
    uint64_t* merge_key;      // [merge_cap] (left << 32 | right), or ~0 for an empty slot
    uint32_t* merge_rank;     // [merge_cap] position in the merge list (lower merges first)
    uint32_t* merge_result;   // [merge_cap] id of left + right
    uint32_t n_added;
    // Added tokens as a byte trie: node 0 is the root; root_child[b] is the
    // root's child for byte b (0 = none); deeper children are a
    // first-child / next-sibling list.
    uint32_t n_nodes;
    uint32_t root_child[256];
    uint32_t* node_first;     // [n_nodes] first child, 0 = none
    uint32_t* node_next;      // [n_nodes] next sibling, 0 = none
    uint8_t* node_byte;       // [n_nodes] the byte that leads to this node
    uint32_t* node_id;        // [n_nodes] added token ending here, or BPE_NONE
    uint8_t* node_flags;      // [n_nodes] its BPE_ADDED_* flags
} Bpe;

typedef struct {
    int32_t* ids;
    size_t n, cap;
} BpeIds;

typedef struct {
    uint8_t* bytes;
    size_t n, cap;
} BpeBytes;

static inline void bpe_free(Bpe* t) {
    free(t->tok_end);
    free(t->tok_bytes);
    free(t->merge_key);
    free(t->merge_rank);
    free(t->merge_result);
    free(t->node_first);
    free(t->node_next);
    free(t->node_byte);
    free(t->node_id);
    free(t->node_flags);
    memset(t, 0, sizeof *t);
}

// Token id's bytes (what decode prints for it); *len = their count.
// id must be in [0, V).
static inline const uint8_t* bpe_token_bytes(const Bpe* t, uint32_t id, uint32_t* len) {
    uint32_t start = id ? t->tok_end[id - 1] : 0;
    *len = t->tok_end[id] - start;
    return t->tok_bytes + start;
}

static inline uint64_t bpe_hash(uint64_t key, uint32_t cap) {
    return (key * 0x9E3779B97F4A7C15ull) >> 32 & (cap - 1);
}

// Slot of the merge (left, right), or BPE_NONE.
static inline uint32_t bpe_merge_find(const Bpe* t, uint32_t left, uint32_t right) {
    if (t->merge_cap == 0) return BPE_NONE;
    uint64_t key = (uint64_t)left << 32 | right;
    for (uint64_t s = bpe_hash(key, t->merge_cap);; s = (s + 1) & (t->merge_cap - 1)) {
        if (t->merge_key[s] == key) return (uint32_t)s;
        if (t->merge_key[s] == ~0ull) return BPE_NONE;
    }
}

static inline uint32_t bpe_rd32(const uint8_t* p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

// ----------------------------------------------------------------------------
// Blob loader: every count, offset and id is checked before use

// Build t from the blob (docs/FORMAT.md "BPE tokenizer blob"); the blob is
// copied, so it may be freed afterwards. 0, or -1 with err = "<why>" and t
// zeroed. Checks: magic, version, flags, sizes (the blob is exactly as long
// as its counts say), token ends nondecreasing, every id < V, each byte
// token is that byte, each merge's result is left + right, no repeated
// merge pair, added tokens non-empty, distinct, of known flags.
static inline int bpe_load(Bpe* t, const uint8_t* blob, uint64_t len, char* err, size_t errlen) {
    memset(t, 0, sizeof *t);
    if (len < BPE_HEADER_BYTES) {
        packed_err(err, errlen, "BPE tokenizer blob is %llu bytes, shorter than its %u-byte header",
                   (unsigned long long)len, BPE_HEADER_BYTES);
        return -1;
    }
    uint32_t magic = bpe_rd32(blob), version = bpe_rd32(blob + 4), flags = bpe_rd32(blob + 8);
    uint32_t V = bpe_rd32(blob + 12), M = bpe_rd32(blob + 16), A = bpe_rd32(blob + 20), B = bpe_rd32(blob + 24);
    if (magic != BPE_MAGIC) {
        packed_err(err, errlen, "BPE tokenizer blob has magic 0x%08X, expected 0x%08X (\"MBPE\")", magic, BPE_MAGIC);
        return -1;
    }
    if (version != BPE_VERSION) {
        packed_err(err, errlen, "BPE tokenizer blob version %u is not supported (this build reads %u)", version, BPE_VERSION);
        return -1;
    }
    if (flags & ~BPE_FLAG_NFC) {
        packed_err(err, errlen, "BPE tokenizer flags 0x%X have unknown bits (known: 0x%X)", flags, BPE_FLAG_NFC);
        return -1;
    }
    if (V < 1 || V > BPE_MAX_VOCAB || M > BPE_MAX_MERGES || A > V || B > BPE_MAX_TOKEN_BYTES) {
        packed_err(err, errlen, "BPE tokenizer counts out of range: vocab %u (1..%u), merges %u (<= %u), added %u (<= vocab), bytes %u (<= %u)",
                   V, BPE_MAX_VOCAB, M, BPE_MAX_MERGES, A, B, BPE_MAX_TOKEN_BYTES);
        return -1;
    }
    uint64_t o_end = BPE_HEADER_BYTES, o_merges = o_end + 4ull * V, o_added = o_merges + 12ull * M;
    uint64_t o_bytes = o_added + 8ull * A, want = o_bytes + B;
    if (want != len) {
        packed_err(err, errlen, "BPE tokenizer blob is %llu bytes but its counts say %llu", (unsigned long long)len,
                   (unsigned long long)want);
        return -1;
    }
    t->vocab = V;
    t->flags = flags;
    t->tok_end = (uint32_t*)malloc(4ull * V);
    t->tok_bytes = (uint8_t*)malloc(B ? B : 1);
    if (!t->tok_end || !t->tok_bytes) goto oom;
    for (uint32_t i = 0; i < V; i++) {
        t->tok_end[i] = bpe_rd32(blob + o_end + 4ull * i);
        uint32_t start = i ? t->tok_end[i - 1] : 0;
        if (t->tok_end[i] < start || t->tok_end[i] > B) {
            packed_err(err, errlen, "BPE token %u ends at byte %u, outside %u..%u", i, t->tok_end[i], start, B);
            goto fail;
        }
    }
    if (t->tok_end[V - 1] != B) {
        packed_err(err, errlen, "BPE token strings use %u bytes but the blob holds %u", t->tok_end[V - 1], B);
        goto fail;
    }
    memcpy(t->tok_bytes, blob + o_bytes, B);
    for (int b = 0; b < 256; b++) {
        uint32_t id = bpe_rd32(blob + 28 + 4 * b), n;
        t->byte_token[b] = id;
        if (id == BPE_NONE) continue;
        if (id >= V) {
            packed_err(err, errlen, "BPE byte 0x%02X's token %u is outside 0..%u", b, id, V - 1);
            goto fail;
        }
        const uint8_t* s = bpe_token_bytes(t, id, &n);
        if (n != 1 || s[0] != b) {
            packed_err(err, errlen, "BPE byte 0x%02X's token %u is not that single byte", b, id);
            goto fail;
        }
    }
    // Merges: a hash from (left, right) to rank and result.
    t->n_merges = M;
    t->merge_cap = 0;
    if (M) {
        t->merge_cap = 16;
        while (t->merge_cap < 2 * M) t->merge_cap *= 2;
        t->merge_key = (uint64_t*)malloc(8ull * t->merge_cap);
        t->merge_rank = (uint32_t*)malloc(4ull * t->merge_cap);
        t->merge_result = (uint32_t*)malloc(4ull * t->merge_cap);
        if (!t->merge_key || !t->merge_rank || !t->merge_result) goto oom;
        memset(t->merge_key, 0xFF, 8ull * t->merge_cap);
    }
    for (uint32_t r = 0; r < M; r++) {
        const uint8_t* p = blob + o_merges + 12ull * r;
        uint32_t l = bpe_rd32(p), rt = bpe_rd32(p + 4), res = bpe_rd32(p + 8), nl, nr, nres;
        if (l >= V || rt >= V || res >= V) {
            packed_err(err, errlen, "BPE merge %u (%u + %u -> %u) has an id outside 0..%u", r, l, rt, res, V - 1);
            goto fail;
        }
        const uint8_t* sl = bpe_token_bytes(t, l, &nl);
        const uint8_t* sr = bpe_token_bytes(t, rt, &nr);
        const uint8_t* sres = bpe_token_bytes(t, res, &nres);
        if (nl == 0 || nr == 0 || nres != nl + nr || memcmp(sres, sl, nl) != 0 || memcmp(sres + nl, sr, nr) != 0) {
            packed_err(err, errlen, "BPE merge %u: token %u is not token %u followed by token %u", r, res, l, rt);
            goto fail;
        }
        uint32_t s = bpe_merge_find(t, l, rt);
        if (s != BPE_NONE) {
            packed_err(err, errlen, "BPE merge %u repeats the pair of merge %u (%u + %u)", r, t->merge_rank[s], l, rt);
            goto fail;
        }
        uint64_t key = (uint64_t)l << 32 | rt;
        uint64_t h = bpe_hash(key, t->merge_cap);
        while (t->merge_key[h] != ~0ull) h = (h + 1) & (t->merge_cap - 1);
        t->merge_key[h] = key;
        t->merge_rank[h] = r;
        t->merge_result[h] = res;
    }
    // Added tokens: the trie has at most 1 + (their bytes) nodes.
    t->n_added = A;
    {
        uint64_t cap = 1;
        for (uint32_t a = 0; a < A; a++) {
            uint32_t id = bpe_rd32(blob + o_added + 8ull * a), n;
            if (id >= V) {
                packed_err(err, errlen, "BPE added token %u has id %u, outside 0..%u", a, id, V - 1);
                goto fail;
            }
            bpe_token_bytes(t, id, &n);
            cap += n;
        }
        t->node_first = (uint32_t*)calloc(cap, 4);
        t->node_next = (uint32_t*)calloc(cap, 4);
        t->node_byte = (uint8_t*)calloc(cap, 1);
        t->node_id = (uint32_t*)malloc(4 * cap);
        t->node_flags = (uint8_t*)calloc(cap, 1);
        if (!t->node_first || !t->node_next || !t->node_byte || !t->node_id || !t->node_flags) goto oom;
        t->node_id[0] = BPE_NONE;
        t->n_nodes = 1;
    }
    for (uint32_t a = 0; a < A; a++) {
        uint32_t id = bpe_rd32(blob + o_added + 8ull * a), fl = bpe_rd32(blob + o_added + 8ull * a + 4), n;
        if (fl & ~(BPE_ADDED_SPECIAL | BPE_ADDED_NORMALIZED)) {
            packed_err(err, errlen, "BPE added token %u (id %u) has flags 0x%X with unknown bits (known: 0x3)", a, id, fl);
            goto fail;
        }
        const uint8_t* s = bpe_token_bytes(t, id, &n);
        if (n == 0) {
            packed_err(err, errlen, "BPE added token %u (id %u) is empty", a, id);
            goto fail;
        }
        uint32_t node = 0;
        for (uint32_t k = 0; k < n; k++) {
            uint32_t c = node == 0 ? t->root_child[s[k]] : t->node_first[node];
            if (node != 0)
                while (c && t->node_byte[c] != s[k]) c = t->node_next[c];
            if (!c) {
                c = t->n_nodes++;
                t->node_byte[c] = s[k];
                t->node_id[c] = BPE_NONE;
                if (node == 0) {
                    t->root_child[s[k]] = c;
                } else {
                    t->node_next[c] = t->node_first[node];
                    t->node_first[node] = c;
                }
            }
            node = c;
        }
        if (t->node_id[node] != BPE_NONE) {
            packed_err(err, errlen, "BPE added tokens %u and %u have the same content", t->node_id[node], id);
            goto fail;
        }
        t->node_id[node] = id;
        t->node_flags[node] = (uint8_t)fl;
    }
    return 0;
oom:
    packed_err(err, errlen, "out of memory for the BPE tokenizer (vocab %u, merges %u)", V, M);
fail:
    bpe_free(t);
    return -1;
}

// ----------------------------------------------------------------------------
// UTF-8 and the Unicode classes

#define BPE_INVALID 0x80000000u  // | byte: a byte that starts no valid sequence

// Decode one character at s[0..n), n >= 1; *cp = code point, or
// BPE_INVALID | byte for a byte that starts no valid UTF-8 sequence.
// Returns its length in bytes (1 for an invalid byte).
static inline int bpe_utf8(const uint8_t* s, size_t n, uint32_t* cp) {
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 0;
    uint32_t v = len == 4 ? c & 7u : len == 3 ? c & 15u : c & 31u;
    if (len == 0 || c > 0xF4 || (size_t)len > n) goto bad;
    for (int k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) goto bad;
        v = v << 6 | (s[k] & 0x3Fu);
    }
    if ((len == 2 && v < 0x80) || (len == 3 && v < 0x800) || (len == 4 && (v < 0x10000 || v > 0x10FFFF)) ||
        (v >= 0xD800 && v <= 0xDFFF))
        goto bad;
    *cp = v;
    return len;
bad:
    *cp = BPE_INVALID | c;
    return 1;
}

// Append cp's UTF-8 (or the raw byte of a BPE_INVALID) to out; returns its length.
static inline int bpe_put_utf8(uint32_t cp, uint8_t* out) {
    if (cp & BPE_INVALID) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 63));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 63));
        out[2] = (uint8_t)(0x80 | (cp & 63));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 63));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 63));
    out[3] = (uint8_t)(0x80 | (cp & 63));
    return 4;
}

static inline int bpe_in_ranges(const uint32_t (*r)[2], int n, uint32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid - 1;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

enum { BPE_OTHER = 0, BPE_LETTER = 1, BPE_NUMBER = 2, BPE_SPACE = 3 };

// The split regex's class of a character: \p{L}, \p{N}, \s (White_Space) or other.
static inline int bpe_class(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp | 32) >= 'a' && (cp | 32) <= 'z') return BPE_LETTER;
        if (cp >= '0' && cp <= '9') return BPE_NUMBER;
        if (cp == ' ' || (cp >= 9 && cp <= 13)) return BPE_SPACE;
        return BPE_OTHER;
    }
    if (cp & BPE_INVALID) return BPE_OTHER;
    if (bpe_in_ranges(uni_letter_ranges, UNI_LETTER_RANGES_N, cp)) return BPE_LETTER;
    if (bpe_in_ranges(uni_number_ranges, UNI_NUMBER_RANGES_N, cp)) return BPE_NUMBER;
    if (bpe_in_ranges(uni_space_ranges, UNI_SPACE_RANGES_N, cp)) return BPE_SPACE;
    return BPE_OTHER;
}

// ----------------------------------------------------------------------------
// NFC (UAX #15): canonical decomposition, canonical ordering, composition

#define BPE_HANGUL_S 0xAC00u
#define BPE_HANGUL_L 0x1100u
#define BPE_HANGUL_V 0x1161u
#define BPE_HANGUL_T 0x11A7u
#define BPE_HANGUL_NV 21u
#define BPE_HANGUL_NT 28u
#define BPE_HANGUL_N (19u * 21u * 28u)

static inline uint32_t bpe_ccc(uint32_t cp) {
    if (cp < 0x300 || (cp & BPE_INVALID)) return 0;
    int lo = 0, hi = UNI_CCC_N - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < uni_ccc[mid][0]) hi = mid - 1;
        else if (cp > uni_ccc[mid][1]) lo = mid + 1;
        else return uni_ccc[mid][2];
    }
    return 0;
}

// Full canonical decomposition of cp into out (room for 4: the longest is
// 4); returns its length.
static inline int bpe_decompose(uint32_t cp, uint32_t* out) {
    if (cp >= BPE_HANGUL_S && cp < BPE_HANGUL_S + BPE_HANGUL_N) {
        uint32_t s = cp - BPE_HANGUL_S;
        out[0] = BPE_HANGUL_L + s / (BPE_HANGUL_NV * BPE_HANGUL_NT);
        out[1] = BPE_HANGUL_V + s % (BPE_HANGUL_NV * BPE_HANGUL_NT) / BPE_HANGUL_NT;
        if (s % BPE_HANGUL_NT == 0) return 2;
        out[2] = BPE_HANGUL_T + s % BPE_HANGUL_NT;
        return 3;
    }
    if (cp >= 0xC0 && !(cp & BPE_INVALID)) {
        int lo = 0, hi = UNI_DECOMP_N - 1;
        while (lo <= hi) {
            int mid = (lo + hi) / 2;
            if (cp < uni_decomp[mid][0]) hi = mid - 1;
            else if (cp > uni_decomp[mid][0]) lo = mid + 1;
            else {
                for (uint32_t k = 0; k < uni_decomp[mid][2]; k++) out[k] = uni_decomp_pool[uni_decomp[mid][1] + k];
                return (int)uni_decomp[mid][2];
            }
        }
    }
    out[0] = cp;
    return 1;
}

// The primary composite of (a, b), or 0.
static inline uint32_t bpe_compose(uint32_t a, uint32_t b) {
    if (a >= BPE_HANGUL_L && a < BPE_HANGUL_L + 19 && b >= BPE_HANGUL_V && b < BPE_HANGUL_V + BPE_HANGUL_NV)
        return BPE_HANGUL_S + ((a - BPE_HANGUL_L) * BPE_HANGUL_NV + (b - BPE_HANGUL_V)) * BPE_HANGUL_NT;
    if (a >= BPE_HANGUL_S && a < BPE_HANGUL_S + BPE_HANGUL_N && (a - BPE_HANGUL_S) % BPE_HANGUL_NT == 0 &&
        b > BPE_HANGUL_T && b < BPE_HANGUL_T + BPE_HANGUL_NT)
        return a + (b - BPE_HANGUL_T);
    if (b < 0x300) return 0;  // no primary composite has a second character below U+0300 (checked by the generator)
    int lo = 0, hi = UNI_COMPOSE_N - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (a < uni_compose[mid][0] || (a == uni_compose[mid][0] && b < uni_compose[mid][1])) hi = mid - 1;
        else if (a > uni_compose[mid][0] || b > uni_compose[mid][1]) lo = mid + 1;
        else return uni_compose[mid][2];
    }
    return 0;
}

// NFC of s[0..n) into out (grown as needed; out->n = 0 first). Pure ASCII
// is copied as is. 0, or -1 (out of memory).
static inline int bpe_nfc(const uint8_t* s, size_t n, BpeBytes* out) {
    out->n = 0;
    size_t i = 0;
    while (i < n && s[i] < 0x80) i++;
    if (i == n) {  // pure ASCII
        if (out->cap < n + 1) {
            uint8_t* p = (uint8_t*)realloc(out->bytes, n + 1);
            if (!p) return -1;
            out->bytes = p;
            out->cap = n + 1;
        }
        memcpy(out->bytes, s, n);
        out->n = n;
        return 0;
    }
    // Decompose into cps: at most 2 code points per input byte (a 2-byte
    // character gives at most 3, a 3-byte one at most 4).
    uint32_t* cps = (uint32_t*)malloc((2 * n + 4) * sizeof(uint32_t));
    if (!cps) return -1;
    size_t m = 0;
    for (i = 0; i < n;) {
        uint32_t cp;
        i += bpe_utf8(s + i, n - i, &cp);
        m += bpe_decompose(cp, cps + m);
    }
    // Canonical ordering: stable insertion sort of each run of ccc != 0.
    for (size_t k = 1; k < m; k++) {
        uint32_t c = cps[k], cc = bpe_ccc(c);
        if (cc == 0) continue;
        size_t j = k;
        while (j > 0 && bpe_ccc(cps[j - 1]) > cc) {
            cps[j] = cps[j - 1];
            j--;
        }
        cps[j] = c;
    }
    // Compose: a character joins the last starter unless blocked (an
    // uncomposed character in between with ccc 0 or >= its own).
    size_t w = 0, starter = (size_t)-1;
    int last_cc = -1;  // ccc of the last kept character after the starter; -1 none
    for (size_t k = 0; k < m; k++) {
        uint32_t c = cps[k];
        int cc = (int)bpe_ccc(c);
        if (starter != (size_t)-1 && (last_cc == -1 || last_cc < cc)) {
            uint32_t comp = bpe_compose(cps[starter], c);
            if (comp) {
                cps[starter] = comp;
                continue;
            }
        }
        if (cc == 0) {
            starter = w;
            last_cc = -1;
        } else {
            last_cc = cc;
        }
        cps[w++] = c;
    }
    if (out->cap < 4 * w + 1) {
        uint8_t* p = (uint8_t*)realloc(out->bytes, 4 * w + 1);
        if (!p) {
            free(cps);
            return -1;
        }
        out->bytes = p;
        out->cap = 4 * w + 1;
    }
    for (size_t k = 0; k < w; k++) out->n += bpe_put_utf8(cps[k], out->bytes + out->n);
    free(cps);
    return 0;
}

// ----------------------------------------------------------------------------
// The GPT-2 split regex, by hand:
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// Alternatives are tried in order at each position (leftmost-first, as
// PCRE, Oniguruma and JavaScript do); the space in " ?" is U+0020 only.

// End (byte offset) of the piece that starts at s[i], i < n.
static inline size_t bpe_split_next(const uint8_t* s, size_t n, size_t i) {
    if (s[i] == '\'' && i + 1 < n) {
        uint8_t a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
        if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    }
    uint32_t cp;
    int len = bpe_utf8(s + i, n - i, &cp);
    int cls = bpe_class(cp);
    size_t j = i + len;
    if (cp == ' ' && j < n) {  // " ?" taken when a letter, number or other follows
        int l2 = bpe_utf8(s + j, n - j, &cp);
        int c2 = bpe_class(cp);
        if (c2 != BPE_SPACE) {
            cls = c2;
            j += l2;
        }
    }
    if (cls != BPE_SPACE) {  // \p{L}+, \p{N}+ or [^\s\p{L}\p{N}]+, greedy
        while (j < n) {
            int l2 = bpe_utf8(s + j, n - j, &cp);
            if (bpe_class(cp) != cls) break;
            j += l2;
        }
        return j;
    }
    // \s+(?!\S): the whole run when it ends the text, else the run less its
    // last character (which then starts the next piece, as " ?\p{L}+" etc.);
    // \s+ when the run is one character followed by a non-space.
    size_t last = i;
    while (j < n) {
        int l2 = bpe_utf8(s + j, n - j, &cp);
        if (bpe_class(cp) != BPE_SPACE) break;
        last = j;
        j += l2;
    }
    if (j == n) return n;
    return last > i ? last : j;
}

// ----------------------------------------------------------------------------
// Encode

static inline int bpe_push(BpeIds* ids, uint32_t id) {
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? 2 * ids->cap : 256;
        int32_t* p = (int32_t*)realloc(ids->ids, cap * sizeof(int32_t));
        if (!p) return -1;
        ids->ids = p;
        ids->cap = cap;
    }
    ids->ids[ids->n++] = (int32_t)id;
    return 0;
}

// Scratch for bpe_word: symbols of one piece, as a linked list, and a
// min-heap of candidate merges keyed (rank, position), room for 3 * cap.
typedef struct {
    uint32_t* id;
    int32_t* prev;
    int32_t* next;
    uint64_t* heap;  // rank << 32 | left position
    size_t cap, heap_n;
    BpeBytes norm;   // NFC output
} BpeScratch;

static inline void bpe_scratch_free(BpeScratch* w) {
    free(w->id);
    free(w->prev);
    free(w->next);
    free(w->heap);
    free(w->norm.bytes);
    memset(w, 0, sizeof *w);
}

static inline void bpe_heap_push(BpeScratch* w, uint64_t v) {
    size_t k = w->heap_n++;
    while (k > 0 && w->heap[(k - 1) / 2] > v) {
        w->heap[k] = w->heap[(k - 1) / 2];
        k = (k - 1) / 2;
    }
    w->heap[k] = v;
}

static inline uint64_t bpe_heap_pop(BpeScratch* w) {
    uint64_t top = w->heap[0], v = w->heap[--w->heap_n];
    size_t k = 0, n = w->heap_n;
    for (;;) {
        size_t c = 2 * k + 1;
        if (c >= n) break;
        if (c + 1 < n && w->heap[c + 1] < w->heap[c]) c++;
        if (w->heap[c] >= v) break;
        w->heap[k] = w->heap[c];
        k = c;
    }
    if (n) w->heap[k] = v;
    return top;
}

// Queue the merge of position a with its right neighbour, if there is one.
static inline void bpe_queue(const Bpe* t, BpeScratch* w, int32_t a) {
    int32_t b = w->next[a];
    if (b < 0) return;
    uint32_t s = bpe_merge_find(t, w->id[a], w->id[b]);
    if (s != BPE_NONE) bpe_heap_push(w, (uint64_t)t->merge_rank[s] << 32 | (uint32_t)a);
}

// BPE of one piece s[0..n) (n >= 1), ids appended. The lowest-ranked
// adjacent pair is merged first, the leftmost among equals (HF word.rs
// merge_all; GPT-2 encoder.py bpe gives the same): O(n log n) through the
// heap, stale entries skipped when popped. 0, or -1 with err.
static inline int bpe_word(const Bpe* t, BpeScratch* w, const uint8_t* s, size_t n, BpeIds* out, char* err,
                           size_t errlen) {
    if (w->cap < n) {
        size_t cap = n < 64 ? 64 : n;
        uint32_t* id = (uint32_t*)realloc(w->id, cap * 4);
        if (id) w->id = id;
        int32_t* pv = (int32_t*)realloc(w->prev, cap * 4);
        if (pv) w->prev = pv;
        int32_t* nx = (int32_t*)realloc(w->next, cap * 4);
        if (nx) w->next = nx;
        uint64_t* hp = (uint64_t*)realloc(w->heap, cap * 3 * 8);  // n - 1 pushes, then <= 2 per merge
        if (hp) w->heap = hp;
        if (!id || !pv || !nx || !hp) {
            packed_err(err, errlen, "out of memory for a %zu-byte piece", n);
            return -1;
        }
        w->cap = cap;
    }
    for (size_t k = 0; k < n; k++) {
        uint32_t id = t->byte_token[s[k]];
        if (id == BPE_NONE) {
            packed_err(err, errlen, "byte 0x%02X has no token in this vocabulary (not valid UTF-8?)", s[k]);
            return -1;
        }
        w->id[k] = id;
        w->prev[k] = (int32_t)k - 1;
        w->next[k] = k + 1 < n ? (int32_t)k + 1 : -1;
    }
    w->heap_n = 0;
    for (size_t k = 0; k + 1 < n; k++) bpe_queue(t, w, (int32_t)k);
    while (w->heap_n) {
        uint64_t top = bpe_heap_pop(w);
        int32_t a = (int32_t)(uint32_t)top;
        uint32_t rank = (uint32_t)(top >> 32);
        if (w->id[a] == BPE_NONE || w->next[a] < 0) continue;  // merged away, or now last
        int32_t b = w->next[a];
        uint32_t s2 = bpe_merge_find(t, w->id[a], w->id[b]);
        if (s2 == BPE_NONE || t->merge_rank[s2] != rank) continue;  // the pair changed since queued
        w->id[a] = t->merge_result[s2];
        w->id[b] = BPE_NONE;
        w->next[a] = w->next[b];
        if (w->next[b] >= 0) w->prev[w->next[b]] = a;
        if (w->prev[a] >= 0) bpe_queue(t, w, w->prev[a]);
        bpe_queue(t, w, a);
    }
    for (int32_t k = 0; k >= 0; k = w->next[k])
        if (bpe_push(out, w->id[k]) != 0) {
            packed_err(err, errlen, "out of memory for the token ids");
            return -1;
        }
    return 0;
}

// Longest added token (of those with (flags & BPE_ADDED_NORMALIZED) ==
// normalized, specials only if allow_special) that starts at s[0..n);
// returns its length (0 = none) and its id in *id.
static inline size_t bpe_added_at(const Bpe* t, const uint8_t* s, size_t n, uint32_t normalized, int allow_special,
                                  uint32_t* id) {
    uint32_t node = t->root_child[s[0]];
    size_t best = 0;
    for (size_t k = 1; node; k++) {
        uint8_t f = t->node_flags[node];
        if (t->node_id[node] != BPE_NONE && (f & BPE_ADDED_NORMALIZED) == normalized &&
            (allow_special || !(f & BPE_ADDED_SPECIAL))) {
            best = k;
            *id = t->node_id[node];
        }
        if (k == n) break;
        uint32_t c = t->node_first[node];
        while (c && t->node_byte[c] != s[k]) c = t->node_next[c];
        node = c;
    }
    return best;
}

// Whether id is a special added token (BPE_ADDED_SPECIAL: <|endoftext|>):
// 1 or 0. *lowest (optional): the lowest id of any special added token, or
// BPE_NONE when the tokenizer has none. A walk over the added-token trie.
static inline int bpe_is_special(const Bpe* t, uint32_t id, uint32_t* lowest) {
    int found = 0;
    uint32_t low = BPE_NONE;
    for (uint32_t k = 1; k < t->n_nodes; k++) {
        if (t->node_id[k] == BPE_NONE || !(t->node_flags[k] & BPE_ADDED_SPECIAL)) continue;
        found |= t->node_id[k] == id;
        low = t->node_id[k] < low ? t->node_id[k] : low;
    }
    if (lowest) *lowest = low;
    return found;
}

// Pre-tokenize and BPE s[0..n) (no added tokens in it).
static inline int bpe_pieces(const Bpe* t, BpeScratch* w, const uint8_t* s, size_t n, BpeIds* out, char* err,
                             size_t errlen) {
    for (size_t i = 0; i < n;) {
        size_t j = bpe_split_next(s, n, i);
        if (bpe_word(t, w, s + i, j - i, out, err, errlen) != 0) return -1;
        i = j;
    }
    return 0;
}

// Split s on the added tokens of one kind (normalized or not), leftmost-
// longest; the text between them goes to bpe_pieces, or (normalized = 0)
// through NFC and then this function again for the normalized ones.
static inline int bpe_split_added(const Bpe* t, BpeScratch* w, const uint8_t* s, size_t n, uint32_t normalized,
                                  int allow_special, BpeIds* out, char* err, size_t errlen);

static inline int bpe_gap(const Bpe* t, BpeScratch* w, const uint8_t* s, size_t n, uint32_t normalized,
                          int allow_special, BpeIds* out, char* err, size_t errlen) {
    if (n == 0) return 0;
    if (normalized) return bpe_pieces(t, w, s, n, out, err, errlen);
    if (!(t->flags & BPE_FLAG_NFC))
        return bpe_split_added(t, w, s, n, BPE_ADDED_NORMALIZED, allow_special, out, err, errlen);
    if (bpe_nfc(s, n, &w->norm) != 0) {
        packed_err(err, errlen, "out of memory normalizing %zu bytes", n);
        return -1;
    }
    // The normalized level below never touches w->norm.
    return bpe_split_added(t, w, w->norm.bytes, w->norm.n, BPE_ADDED_NORMALIZED, allow_special, out, err, errlen);
}

static inline int bpe_split_added(const Bpe* t, BpeScratch* w, const uint8_t* s, size_t n, uint32_t normalized,
                                  int allow_special, BpeIds* out, char* err, size_t errlen) {
    size_t gap = 0;
    for (size_t i = 0; i < n;) {
        uint32_t id = 0;
        size_t m = t->n_added ? bpe_added_at(t, s + i, n - i, normalized, allow_special, &id) : 0;
        if (m == 0) {
            i++;
            continue;
        }
        if (bpe_gap(t, w, s + gap, i - gap, normalized, allow_special, out, err, errlen) != 0) return -1;
        if (bpe_push(out, id) != 0) {
            packed_err(err, errlen, "out of memory for the token ids");
            return -1;
        }
        i += m;
        gap = i;
    }
    return bpe_gap(t, w, s + gap, n - gap, normalized, allow_special, out, err, errlen);
}

// Encode text[0..n) (any bytes; see the top of this file for invalid
// UTF-8), appending ids to out. allow_special = 1 lets special added tokens
// (<|endoftext|>) be matched in the text, as Hugging Face's encode does; 0
// (the default for user text) encodes their characters as plain text.
// 0, or -1 with err = "<why>" (a byte without a token; out of memory).
static inline int bpe_encode(const Bpe* t, const char* text, size_t n, int allow_special, BpeIds* out, char* err,
                             size_t errlen) {
    BpeScratch w;
    memset(&w, 0, sizeof w);
    int rc = bpe_split_added(t, &w, (const uint8_t*)text, n, 0, allow_special, out, err, errlen);
    bpe_scratch_free(&w);
    return rc;
}

// Room in out for `more` further bytes (capacity doubled from 256). 0, or
// -1 when out of memory (out unchanged; the caller says what it decoded).
static inline int bpe_bytes_reserve(BpeBytes* out, size_t more) {
    if (out->n + more <= out->cap) return 0;
    size_t cap = out->cap ? out->cap : 256;
    while (cap < out->n + more) cap *= 2;
    uint8_t* p = (uint8_t*)realloc(out->bytes, cap);
    if (!p) return -1;
    out->bytes = p;
    out->cap = cap;
    return 0;
}

// Append the bytes of ids[0..n) to out. 0, or -1 with err = "<why>" (an id
// outside 0..V-1; out of memory).
static inline int bpe_decode(const Bpe* t, const int32_t* ids, size_t n, BpeBytes* out, char* err, size_t errlen) {
    for (size_t k = 0; k < n; k++) {
        if (ids[k] < 0 || (uint32_t)ids[k] >= t->vocab) {
            packed_err(err, errlen, "token id %d at position %zu is outside 0..%u", ids[k], k, t->vocab - 1);
            return -1;
        }
        uint32_t len;
        const uint8_t* s = bpe_token_bytes(t, (uint32_t)ids[k], &len);
        if (bpe_bytes_reserve(out, len) != 0) {
            packed_err(err, errlen, "out of memory decoding %zu tokens", n);
            return -1;
        }
        memcpy(out->bytes + out->n, s, len);
        out->n += len;
    }
    return 0;
}
