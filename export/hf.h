// hf.h: Hugging Face checkpoints in and out (docs/HF.md; the layouts are
// ../shared/notes/lm.md section 1, transformers' modeling_mamba.py and
// modeling_gpt_neox.py).
//
//   bin/export hf --dir DIR --output model.bin          config.json + model.safetensors
//                                                        (or sharded) -> packed file
//   bin/export hf --checkpoint CKPT --output-dir DIR    our LM -> config.json +
//                                                        model.safetensors for from_pretrained
//
// MambaForCausalLM <-> packed kind 3, GPTNeoXForCausalLM <-> kind 4. Weights
// are read as F32, F16 or BF16 and stored as float32 (docs/HF.md says why).
// Errors: std::runtime_error("<file>: <why>"), one line.
#pragma once
#include <string>
#include <vector>

#include "export/model_export.h"
#include "export/safetensors.h"
#include "train/lm_model.h"

namespace mmia {

// A config.json our engines can run, validated. Shape legend as lm_model.h.
struct HfConfig {
    std::string arch;  // "MambaForCausalLM" | "GPTNeoXForCausalLM"
    int vocab = 0;     // V = vocab_size
    int d_model = 0;   // D = hidden_size
    int n_layers = 0;  // num_hidden_layers
    bool tied = false; // tie_word_embeddings (HF default: true for Mamba, false for GPT-NeoX)
    int eos = -1;      // eos_token_id in [0, V), or -1 (missing, null or a list)
    int bos = -1;      // bos_token_id, the same way (checked against the tokenizer, not stored)
    double eps = 1e-5; // layer_norm_epsilon (Mamba) / layer_norm_eps (GPT-NeoX)
    // Mamba
    int d_state = 0, d_conv = 0, d_inner = 0, dt_rank = 0;  // N, K, E, R (time_step_rank "auto" = ceil(D/16))
    // GPT-NeoX
    int n_heads = 0, d_ff = 0, rotary_ndims = 0, context = 0;  // H, F, int(d_h * rotary_pct), max_position_embeddings
    double rotary_pct = 0.25, rotary_base = 10000;
    bool parallel = true;  // use_parallel_residual
    bool is_mamba() const { return arch == "MambaForCausalLM"; }
};

// Reads and checks `path` (a config.json). Refuses, one line each: not a
// regular file / over 1 MiB / not JSON (load_config_file); no architectures
// list; an architecture other than the two; a missing or non-integer size;
// a size outside the engines' caps; and every option our engines do not
// implement (Mamba: use_bias true, use_conv_bias false, hidden_act not
// silu, rms_norm false; GPT-NeoX: hidden_act not gelu, attention_bias
// false, rope_scaling set, an odd rotary_ndims).
HfConfig read_hf_config(const std::string& path);

// One tensor of a Hugging Face state dict and where it goes in the packed
// file: its HF name and shape, the packed name and shape (the data is the
// same row-major values, except Mamba's A_log -> A = -exp(A_log)).
struct HfTensorMap {
    std::string hf_name;
    std::vector<uint64_t> hf_shape;
    std::string packed_name;
    std::vector<uint32_t> packed_shape;
};
// Every tensor a checkpoint of this config holds, in the packed order (the
// order pack_mamba_lm / pack_transformer_lm write). A tied model has no
// head tensor.
std::vector<HfTensorMap> hf_tensor_map(const HfConfig& c);

// DIR/config.json + DIR's safetensors -> the packed model (header and
// tensors). Beyond the safetensors and config errors, refuses: a missing
// tensor, an unexpected one, a shape that differs (naming the tensor, the
// expected and the found shape). Skips the buffers old Pythia files carry
// (attention.bias, attention.masked_bias, attention.rotary_emb.inv_freq),
// naming them in `skipped`; accepts mamba_ssm's backbone.embedding.weight
// for backbone.embeddings.weight (HF's load hook renames it) and, for a
// tied model, an lm_head.weight equal to the embedding. Tokenizer:
// DIR/tokenizer.json, else GPT-2's DIR/encoder.json + DIR/vocab.bpe, as a
// BPE blob in `tokenizer` (hp[24] = 1; the engines take and print text;
// *tokenizer_source = the file(s) read); without them, or with our own
// byte tokenizer.json (byte_tokenizer_json) and V == 256, bytes (0); else
// BPE run by token ids only (*tokenizer_source empty).
// Tokenizer refusals: an unreadable or unsupported file ("<path>: <why>"),
// one of GPT-2's two files alone, more tokens than vocab_size.
// Context: max_position_embeddings (GPT-NeoX), 2048 for Mamba (its
// training window; informational).
PackedModelData import_hf(const std::string& dir, std::vector<std::string>* skipped = nullptr,
                          std::string* tokenizer_source = nullptr);
// The same, written to `output` atomically; returns a one-line summary.
std::string import_hf_to_file(const std::string& dir, const std::string& output);

// The LibTorch model of DIR's config with DIR's weights (the independent
// side of the numerics tests: HF names -> our modules, no packed file).
LanguageModel load_hf_lm(const std::string& dir);

// Our LM -> config.json (the keys transformers' MambaConfig / GPTNeoXConfig
// read) and its state dict under HF's names, with HF's shapes (conv1d
// (E, 1, K), A_log stored as is; a tied Mamba head is left out as
// save_pretrained does).
nlohmann::json hf_config_json(LanguageModel& model, const std::string& dtype);
std::vector<SafetensorsTensor> hf_state_dict(LanguageModel& model, const std::string& dtype);
// Our byte tokenizer (token id = byte value, ids 0..255) as a Hugging Face
// tokenizer.json: model BPE whose vocabulary is GPT-2's byte-to-unicode
// alphabet (bpe_byte_to_unicode(b) -> id b) and no merges; pre_tokenizer
// and decoder ByteLevel (add_prefix_space false, use_regex false); no
// normalizer, no post_processor, no added tokens (eos is byte 0, id 0, a
// byte like any other: config.json's eos_token_id). docs/HF.md "tokenizer.json".
std::string byte_tokenizer_json();

// Writes out_dir/config.json and out_dir/model.safetensors (dtype F32, F16
// or BF16; metadata {"format": "pt"}), and out_dir/tokenizer.json
// (byte_tokenizer_json) for a byte-level model (vocab_size 256); creates
// out_dir. Returns a summary.
std::string export_hf(const std::string& checkpoint, const std::string& out_dir, const std::string& dtype = "F32");
std::string write_hf_dir(LanguageModel& model, const std::string& out_dir, const std::string& dtype = "F32");

}  // namespace mmia
