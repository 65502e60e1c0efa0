// hf.cpp: see hf.h.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include "export/hf.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <stdexcept>

#include "common/config.h"
#include "common/corpus.h"
#include "common/data.h"
#include "common/tokenizer_json.h"
#include "engine/bpe.h"  // bpe_put_utf8
#include "engine/io.h"
#include "train/lm_trainer.h"

namespace mmia {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

std::string shape_str(const std::vector<uint64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

// Typed reads of config keys, each refusal one line naming the key.
struct ConfigReader {
    const json& j;
    std::string label;
    bool has(const char* k) const { return j.contains(k) && !j[k].is_null(); }
    long long integer(const char* k, long long lo, long long hi, const long long* dflt = nullptr) const {
        if (!has(k)) {
            if (dflt) return *dflt;
            fail(label + ": \"" + k + "\" is missing");
        }
        if (!j[k].is_number_integer()) fail(label + ": \"" + k + "\" is " + j[k].dump() + ", not an integer");
        const long long v = j[k].get<long long>();
        if (v < lo || v > hi)
            fail(label + ": \"" + k + "\" is " + std::to_string(v) + ", outside " + std::to_string(lo) + ".." +
                 std::to_string(hi));
        return v;
    }
    long long integer(const char* k, long long lo, long long hi, long long dflt) const {
        return integer(k, lo, hi, &dflt);
    }
    double number(const char* k, double lo, double hi, double dflt) const {
        if (!has(k)) return dflt;
        if (!j[k].is_number()) fail(label + ": \"" + k + "\" is " + j[k].dump() + ", not a number");
        const double v = j[k].get<double>();
        if (!(v > lo && v <= hi)) fail(label + ": \"" + k + "\" is " + j[k].dump() + ", outside (" + json(lo).dump() + ", " + json(hi).dump() + "]");
        return v;
    }
    bool boolean(const char* k, bool dflt) const {
        if (!has(k)) return dflt;
        if (!j[k].is_boolean()) fail(label + ": \"" + k + "\" is " + j[k].dump() + ", not true or false");
        return j[k].get<bool>();
    }
    std::string string(const char* k, const std::string& dflt) const {
        if (!has(k)) return dflt;
        if (!j[k].is_string()) fail(label + ": \"" + k + "\" is " + j[k].dump() + ", not a string");
        return j[k].get<std::string>();
    }
};

HfConfig parse_hf_config(const json& j, const std::string& label) {
    ConfigReader r{j, label};
    HfConfig c;
    if (!j.contains("architectures") || !j["architectures"].is_array() || j["architectures"].empty() ||
        !j["architectures"][0].is_string())
        fail(label + ": no \"architectures\" list (expected [\"MambaForCausalLM\"] or [\"GPTNeoXForCausalLM\"])");
    c.arch = j["architectures"][0].get<std::string>();
    if (c.arch != "MambaForCausalLM" && c.arch != "GPTNeoXForCausalLM")
        fail(label + ": architecture \"" + c.arch +
             "\" is not supported (bin/export hf reads MambaForCausalLM and GPTNeoXForCausalLM)");
    c.vocab = int(r.integer("vocab_size", 1, 262144));
    c.d_model = int(r.integer("hidden_size", 1, 16384));
    c.n_layers = int(r.integer("num_hidden_layers", 1, 256));
    // eos / bos: an id in [0, V) (one outside is refused: it names no row of
    // the embedding); a list of ids (some configs), null or missing is none (-1)
    auto token_id = [&](const char* k) {
        return r.has(k) && j[k].is_number_integer() ? int(r.integer(k, 0, c.vocab - 1)) : -1;
    };
    c.eos = token_id("eos_token_id");
    c.bos = token_id("bos_token_id");
    if (c.is_mamba()) {
        c.tied = r.boolean("tie_word_embeddings", true);
        c.d_state = int(r.integer("state_size", 1, 1024, 16));
        c.d_conv = int(r.integer("conv_kernel", 1, 64, 4));
        const long long expand = r.integer("expand", 1, 16384, 2);
        c.d_inner = int(r.integer("intermediate_size", 1, 16384, expand * c.d_model));
        if (r.has("time_step_rank") && j["time_step_rank"] == "auto")
            c.dt_rank = (c.d_model + 15) / 16;
        else
            c.dt_rank = int(r.integer("time_step_rank", 1, 16384, (c.d_model + 15) / 16));
        c.eps = r.number("layer_norm_epsilon", 0, 1, 1e-5);
        if (r.boolean("use_bias", false))
            fail(label + ": \"use_bias\" is true: ./mamba has no in_proj / out_proj biases (state-spaces checkpoints have false)");
        if (!r.boolean("use_conv_bias", true))
            fail(label + ": \"use_conv_bias\" is false: ./mamba's conv1d always has a bias");
        const std::string act = r.string("hidden_act", "silu");
        if (act != "silu") fail(label + ": \"hidden_act\" is \"" + act + "\": ./mamba implements silu only");
        if (!r.boolean("rms_norm", true)) fail(label + ": \"rms_norm\" is false: ./mamba's Mamba LM uses RMSNorm");
        (void)r.boolean("residual_in_fp32", true);  // every sum is float32 in our engines either way
        c.context = 2048;
    } else {
        c.tied = r.boolean("tie_word_embeddings", false);
        c.n_heads = int(r.integer("num_attention_heads", 1, 1024));
        if (c.d_model % c.n_heads != 0)
            fail(label + ": \"hidden_size\" " + std::to_string(c.d_model) + " is not a multiple of \"num_attention_heads\" " +
                 std::to_string(c.n_heads));
        c.d_ff = int(r.integer("intermediate_size", 1, 65536));
        c.context = int(r.integer("max_position_embeddings", 1, 65536, 2048));
        c.rotary_pct = r.has("partial_rotary_factor") ? r.number("partial_rotary_factor", 0, 1, 0.25)
                                                       : r.number("rotary_pct", 0, 1, 0.25);
        c.rotary_base = r.has("rope_theta") ? r.number("rope_theta", 0, 1e30, 10000) : r.number("rotary_emb_base", 0, 1e30, 10000);
        c.rotary_ndims = int(double(c.d_model / c.n_heads) * c.rotary_pct);
        if (c.rotary_ndims % 2 != 0)
            fail(label + ": rotary dims int(head_dim * rotary_pct) = " + std::to_string(c.rotary_ndims) +
                 " is odd (the half-split rotation needs pairs)");
        c.eps = r.number("layer_norm_eps", 0, 1, 1e-5);
        c.parallel = r.boolean("use_parallel_residual", true);
        const std::string act = r.string("hidden_act", "gelu");
        if (act != "gelu")
            fail(label + ": \"hidden_act\" is \"" + act + "\": ./transformer implements gelu (exact erf) only");
        if (!r.boolean("attention_bias", true))
            fail(label + ": \"attention_bias\" is false: ./transformer's qkv and dense always have biases");
        if (r.has("rope_scaling")) fail(label + ": \"rope_scaling\" is set: ./transformer implements plain rotary only");
    }
    return c;
}

// The packed header of an imported model (the LM slots of docs/FORMAT.md).
// bpe: a tokenizer blob goes with it (BPE whatever V); else V = 256 is
// the byte tokenizer, any other V BPE run by token ids only.
MmiaHeader hf_header(const HfConfig& c, bool bpe) {
    LmHeaderFields f;
    f.kind = c.is_mamba() ? MMIA_KIND_MAMBA_LM : MMIA_KIND_TRANSFORMER_LM;
    f.vocab = c.vocab;
    f.context = c.context;
    f.tied = c.tied;
    f.eos = c.eos;
    f.tokenizer = !bpe && c.vocab == 256 ? MMIA_TOKENIZER_BYTES : MMIA_TOKENIZER_BPE;
    f.d_model = c.d_model;
    f.n_layers = c.n_layers;
    f.d_state = c.d_state;
    f.d_conv = c.d_conv;
    f.d_inner = c.d_inner;
    f.dt_rank = c.dt_rank;
    f.n_heads = c.n_heads;
    f.d_ff = c.d_ff;
    f.rotary_ndims = c.rotary_ndims;
    f.parallel = c.parallel;
    f.eps = c.eps;
    f.rotary_base = c.rotary_base;
    return lm_header(f);
}

bool is_pythia_buffer(const std::string& n) {
    auto ends = [&](const std::string& s) { return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0; };
    return n.rfind("gpt_neox.layers.", 0) == 0 &&
           (ends(".attention.bias") || ends(".attention.masked_bias") || ends(".attention.rotary_emb.inv_freq"));
}

// An opened checkpoint: config.json read, the safetensors files mapped, and
// every name and shape checked against hf_tensor_map (no values read yet,
// except a tied head saved anyway, compared with the embedding).
struct HfSource {
    HfConfig cfg;
    std::unique_ptr<SafetensorsCheckpoint> ck;
    std::vector<std::pair<HfTensorMap, std::string>> tensors;  // hf_tensor_map order, name in the files
    // Tensor i's values as stored (F16 / BF16 converted), its mapped pages
    // dropped after the read.
    std::vector<float> read(size_t i) const {
        std::vector<float> v = ck->read_float(tensors[i].second);
        ck->release(tensors[i].second);
        return v;
    }
};

bool ends_with(const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

HfSource open_hf(const std::string& dir, std::vector<std::string>* skipped) {
    std::error_code ec;
    const fs::file_status st = fs::status(dir, ec);
    if (!fs::exists(st)) fail(dir + ": no such directory (--dir names a Hugging Face model directory: config.json and model.safetensors)");
    if (!fs::is_directory(st))
        fail(dir + ": not a directory (--dir names a Hugging Face model directory: config.json and model.safetensors)");
    HfSource w;
    const std::string config_path = (fs::path(dir) / "config.json").string();
    w.cfg = read_hf_config(config_path);
    w.ck = std::make_unique<SafetensorsCheckpoint>(dir);
    const SafetensorsCheckpoint& ck = *w.ck;
    const std::string desc = "a " + std::to_string(w.cfg.n_layers) + "-layer " + w.cfg.arch;
    std::set<std::string> used;
    for (const HfTensorMap& m : hf_tensor_map(w.cfg)) {
        std::string name = m.hf_name;
        if (!ck.find(name) && name == "backbone.embeddings.weight" && ck.find("backbone.embedding.weight"))
            name = "backbone.embedding.weight";  // mamba_ssm's name; HF's load hook renames it
        const SafetensorsEntry* e = ck.find(name);
        if (!e) fail(dir + ": missing tensor '" + m.hf_name + "' (" + desc + " of this config.json has it)");
        if (e->shape != m.hf_shape)
            fail(ck.file_of(name) + ": tensor '" + name + "' has shape " + shape_str(e->shape) + ", expected " +
                 shape_str(m.hf_shape) + " (from config.json)");
        w.tensors.push_back({m, name});
        used.insert(name);
    }
    for (const std::string& n : ck.names()) {
        if (used.count(n)) continue;
        if (is_pythia_buffer(n)) {
            if (skipped) skipped->push_back(n);
            continue;
        }
        const std::string head = w.cfg.is_mamba() ? "lm_head.weight" : "embed_out.weight";
        if (w.cfg.tied && n == head) {  // a tied head saved anyway: must be the embedding
            if (ck.find(n)->shape != w.tensors.front().first.hf_shape || ck.read_float(n) != w.read(0))
                fail(ck.file_of(n) + ": tensor '" + n + "' differs from the embedding but config.json ties them "
                                     "(\"tie_word_embeddings\" is true)");
            ck.release(n);
            if (skipped) skipped->push_back(n);
            continue;
        }
        fail(ck.file_of(n) + ": unexpected tensor '" + n + "' (not part of " + desc + " of this config.json)");
    }
    return w;
}

// A tensor's packed values from its HF values: Mamba's A_log becomes
// A = -exp(A_log), in float32 by LibTorch exactly as pack_mamba_lm folds
// it; every other tensor is the same row-major values.
std::vector<float> packed_values(const HfTensorMap& m, std::vector<float> data) {
    if (!ends_with(m.hf_name, ".A_log")) return data;
    torch::NoGradGuard no_grad;
    auto a = -torch::exp(torch::from_blob(data.data(), {int64_t(data.size())}, torch::kFloat32));
    return std::vector<float>(a.data_ptr<float>(), a.data_ptr<float>() + a.numel());
}

std::string dtype_torch_name(const std::string& dtype) {
    if (dtype == "F32") return "float32";
    if (dtype == "F16") return "float16";
    if (dtype == "BF16") return "bfloat16";
    fail("--dtype " + dtype + " is not one of F32, F16, BF16");
}

}  // namespace

HfConfig read_hf_config(const std::string& path) {
    std::error_code ec;
    if (!fs::exists(path, ec))
        fail(path + ": missing (a Hugging Face model directory holds config.json and model.safetensors)");
    return parse_hf_config(load_config_file(path), path);
}

std::vector<HfTensorMap> hf_tensor_map(const HfConfig& c) {
    using U = uint64_t;
    const U V = U(c.vocab), D = U(c.d_model);
    std::vector<HfTensorMap> m;
    auto add = [&](const std::string& hf, std::vector<U> shape, const std::string& packed, std::vector<U> pshape = {}) {
        if (pshape.empty()) pshape = shape;
        m.push_back({hf, shape, packed, std::vector<uint32_t>(pshape.begin(), pshape.end())});
    };
    if (c.is_mamba()) {
        const U E = U(c.d_inner), N = U(c.d_state), K = U(c.d_conv), R = U(c.dt_rank);
        add("backbone.embeddings.weight", {V, D}, "embedding.weight");
        for (int i = 0; i < c.n_layers; i++) {
            const std::string h = "backbone.layers." + std::to_string(i) + ".", p = "layers." + std::to_string(i) + ".";
            add(h + "norm.weight", {D}, p + "norm.weight");
            add(h + "mixer.in_proj.weight", {2 * E, D}, p + "in_proj.weight");
            add(h + "mixer.conv1d.weight", {E, 1, K}, p + "conv1d.weight", {E, K});
            add(h + "mixer.conv1d.bias", {E}, p + "conv1d.bias");
            add(h + "mixer.x_proj.weight", {R + 2 * N, E}, p + "x_proj.weight");
            add(h + "mixer.dt_proj.weight", {E, R}, p + "dt_proj.weight");
            add(h + "mixer.dt_proj.bias", {E}, p + "dt_proj.bias");
            add(h + "mixer.A_log", {E, N}, p + "A");  // A = -exp(A_log)
            add(h + "mixer.D", {E}, p + "D");
            add(h + "mixer.out_proj.weight", {D, E}, p + "out_proj.weight");
        }
        add("backbone.norm_f.weight", {D}, "norm_f.weight");
        if (!c.tied) add("lm_head.weight", {V, D}, "lm_head.weight");
    } else {
        const U F = U(c.d_ff);
        add("gpt_neox.embed_in.weight", {V, D}, "embed_in.weight");
        for (int i = 0; i < c.n_layers; i++) {
            const std::string p = "layers." + std::to_string(i) + ".", h = "gpt_neox." + p;
            for (const char* ln : {"input_layernorm", "post_attention_layernorm"}) {
                add(h + ln + ".weight", {D}, p + ln + ".weight");
                add(h + ln + ".bias", {D}, p + ln + ".bias");
            }
            add(h + "attention.query_key_value.weight", {3 * D, D}, p + "attention.query_key_value.weight");
            add(h + "attention.query_key_value.bias", {3 * D}, p + "attention.query_key_value.bias");
            add(h + "attention.dense.weight", {D, D}, p + "attention.dense.weight");
            add(h + "attention.dense.bias", {D}, p + "attention.dense.bias");
            add(h + "mlp.dense_h_to_4h.weight", {F, D}, p + "mlp.dense_h_to_4h.weight");
            add(h + "mlp.dense_h_to_4h.bias", {F}, p + "mlp.dense_h_to_4h.bias");
            add(h + "mlp.dense_4h_to_h.weight", {D, F}, p + "mlp.dense_4h_to_h.weight");
            add(h + "mlp.dense_4h_to_h.bias", {D}, p + "mlp.dense_4h_to_h.bias");
        }
        add("gpt_neox.final_layer_norm.weight", {D}, "final_layer_norm.weight");
        add("gpt_neox.final_layer_norm.bias", {D}, "final_layer_norm.bias");
        if (!c.tied) add("embed_out.weight", {V, D}, "embed_out.weight");
    }
    return m;
}

namespace {

// A token's bytes for a message: JSON-quoted (control bytes escaped), cut
// at 40 bytes; invalid UTF-8 as \xNN.
std::string quoted_token(const std::string& bytes) {
    return json(bytes.substr(0, 40)).dump(-1, ' ', false, json::error_handler_t::replace);
}

// config.json's eos_token_id and bos_token_id against the tokenizer spec
// (read_hf_tokenizer's rule). from: the tokenizer's file(s), for the message.
void check_special_ids(const BpeSpec& spec, const HfConfig& cfg, const std::string& from) {
    std::vector<uint32_t> special;  // ids of the special added tokens, in the file's order
    for (const auto& a : spec.added)
        if (a[1] & BPE_ADDED_SPECIAL) special.push_back(a[0]);
    const size_t n = spec.tokens.size();
    for (const auto& [key, id] : {std::pair<const char*, int>{"eos_token_id", cfg.eos}, {"bos_token_id", cfg.bos}}) {
        if (id < 0) continue;
        if (size_t(id) >= n)
            fail(from + ": config.json's " + key + " " + std::to_string(id) + " is not a token of the tokenizer (it has " +
                 std::to_string(n) + " tokens, ids 0.." + std::to_string(n - 1) + "): the tokenizer is not the model's");
        if (!special.empty() && std::find(special.begin(), special.end(), uint32_t(id)) == special.end())
            fail(from + ": config.json's " + key + " " + std::to_string(id) + " is " + quoted_token(spec.tokens[size_t(id)]) +
                 " in the tokenizer, not one of its special tokens (" + quoted_token(spec.tokens[special[0]]) + " = " +
                 std::to_string(special[0]) + (special.size() > 1 ? ", ..." : "") + "): the tokenizer is not the model's");
    }
}

}  // namespace

// DIR's tokenizer as a BPE blob: tokenizer.json, else GPT-2's
// encoder.json + vocab.bpe; empty (and *source empty) when neither is
// there. Refuses, one line each: a file read_file refuses ("<path>: <why>"),
// one of GPT-2's two files without the other, a tokenizer the parser
// refuses ("<path>: <why>"), more tokens than the model's vocab_size (a
// tokenizer smaller than it is fine: HF pads the embedding, Pythia's 50304
// rows for 50277 tokens), and config.json's eos / bos ids that are not the
// tokenizer's: outside its ids, or a plain token when it has special
// tokens (GPT-2's files beside Pythia's config: eos 0 is "!" there, not
// <|endoftext|> = 50256).
std::vector<uint8_t> read_hf_tokenizer(const std::string& dir, const HfConfig& cfg, std::string* source) {
    const int vocab = cfg.vocab;
    const fs::path d(dir);
    const std::string tj = (d / "tokenizer.json").string(), enc = (d / "encoder.json").string(),
                      bpe = (d / "vocab.bpe").string();
    std::error_code ec;
    auto text = [](const std::string& path) {
        std::vector<uint8_t> b = read_file(path, kMaxFileBytes);  // "<path>: <why>"
        return std::string(b.begin(), b.end());
    };
    auto parse = [](const std::string& what, auto&& f) {
        try {
            return f();
        } catch (const std::exception& e) {
            fail(what + ": " + e.what());
        }
    };
    const bool has_tj = fs::exists(tj, ec), has_enc = fs::exists(enc, ec), has_bpe = fs::exists(bpe, ec);
    BpeSpec spec;
    std::string from;
    if (has_tj) {
        from = tj;
        const std::string t = text(tj);
        spec = parse(tj, [&] { return bpe_spec_from_tokenizer_json(t); });
    } else if (has_enc || has_bpe) {
        if (!has_enc || !has_bpe)
            fail(dir + ": " + (has_enc ? "encoder.json without vocab.bpe" : "vocab.bpe without encoder.json") +
                 " (GPT-2's tokenizer is the two files together)");
        from = enc + " + vocab.bpe";
        const std::string e = text(enc), v = text(bpe);
        spec = parse(from, [&] { return bpe_spec_from_gpt2(e, v); });
    } else {
        if (source) source->clear();
        return {};
    }
    if (spec.tokens.size() > size_t(vocab))
        fail(from + ": the tokenizer has " + std::to_string(spec.tokens.size()) +
             " tokens, more than config.json's vocab_size " + std::to_string(vocab));
    check_special_ids(spec, cfg, from);
    if (source) *source = from;
    // Our byte tokenizer (byte_tokenizer_json: token i = byte i, no merges,
    // nothing added) on a 256-token model is the packed bytes tokenizer.
    bool bytes = vocab == 256 && spec.tokens.size() == 256 && spec.merges.empty() && spec.added.empty() && !spec.nfc;
    for (size_t i = 0; bytes && i < spec.tokens.size(); i++) bytes = spec.tokens[i] == std::string(1, char(i));
    if (bytes) return {};
    return bpe_blob_write(spec);
}

namespace {

// An import ready to write: the opened checkpoint, the packed header and
// the tokenizer blob (empty = none; source = the file(s) read).
struct HfImport {
    HfSource src;
    MmiaHeader header;
    std::vector<uint8_t> tokenizer;
    std::string tokenizer_source;
};

HfImport prepare_import(const std::string& dir, std::vector<std::string>* skipped) {
    HfImport im;
    im.src = open_hf(dir, skipped);
    im.tokenizer = read_hf_tokenizer(dir, im.src.cfg, &im.tokenizer_source);
    im.header = hf_header(im.src.cfg, !im.tokenizer.empty());
    return im;
}

}  // namespace

PackedModelData import_hf(const std::string& dir, std::vector<std::string>* skipped, std::string* tokenizer_source) {
    HfImport im = prepare_import(dir, skipped);
    if (tokenizer_source) *tokenizer_source = im.tokenizer_source;
    PackedModelData out;
    out.header = im.header;
    out.tokenizer = std::move(im.tokenizer);
    for (size_t i = 0; i < im.src.tensors.size(); i++) {
        const HfTensorMap& m = im.src.tensors[i].first;
        out.tensors.push_back({m.packed_name, m.packed_shape, packed_values(m, im.src.read(i))});
    }
    return out;
}

std::string import_hf_to_file(const std::string& dir, const std::string& output) {
    std::vector<std::string> skipped;
    HfImport im = prepare_import(dir, &skipped);
    // Streamed: one tensor in memory at a time (docs/HF.md "Memory").
    std::vector<PackedTensorInfo> infos;
    for (const auto& [m, name] : im.src.tensors) infos.push_back({m.packed_name, m.packed_shape});
    std::vector<float> current;
    write_packed_model_stream(
        output, im.header, infos,
        [&](size_t i) -> const std::vector<float>& {
            current.clear();
            current.shrink_to_fit();  // the last tensor's memory goes before the next is read
            current = packed_values(im.src.tensors[i].first, im.src.read(i));
            return current;
        },
        im.tokenizer);
    const MmiaHeader& h = im.header;
    std::string tok;
    if (!im.tokenizer.empty())
        tok = " (BPE tokenizer from " + im.tokenizer_source + ": text in and out)";
    else if (h.hp[MMIA_LM_HP_TOKENIZER] == MMIA_TOKENIZER_BPE)
        tok = " (BPE, but no tokenizer.json or encoder.json + vocab.bpe in " + dir + ": run by token ids only)";
    else
        tok = " (bytes)";
    std::string s = "wrote " + output + ": " + (h.kind == MMIA_KIND_MAMBA_LM ? "MambaForCausalLM" : "GPTNeoXForCausalLM") +
                    ", " + std::to_string(h.hp[1]) + " layers, d_model " + std::to_string(h.hp[0]) + ", vocab " +
                    std::to_string(h.n_classes) + tok + ", " + std::to_string(infos.size()) + " tensors";
    if (!skipped.empty()) {
        s += "; skipped " + std::to_string(skipped.size()) + ":";
        for (size_t i = 0; i < skipped.size() && i < 3; i++) s += " " + skipped[i];
        if (skipped.size() > 3) s += " ...";
    }
    return s;
}

LanguageModel load_hf_lm(const std::string& dir) {
    const HfSource w = open_hf(dir, nullptr);
    const HfConfig& c = w.cfg;
    ModelSpec spec;
    spec.preset = "hf";
    if (c.is_mamba()) {
        if (!c.tied) fail(dir + ": our LibTorch Mamba LM ties its head (\"tie_word_embeddings\" must be true)");
        if (c.d_inner % c.d_model != 0) fail(dir + ": intermediate_size is not a multiple of hidden_size");
        spec.model = "mamba-lm";
        MambaLmConfig& m = spec.mamba_lm;
        m.block.d_model = c.d_model;
        m.block.n_layers = c.n_layers;
        m.block.d_state = c.d_state;
        m.block.d_conv = c.d_conv;
        m.block.expand = c.d_inner / c.d_model;
        m.block.dt_rank = c.dt_rank;
        m.block.norm_eps = c.eps;
        m.vocab = c.vocab;
        m.context = c.context;
    } else {
        spec.model = "transformer-lm";
        TransformerLmConfig& t = spec.transformer_lm;
        t.d_model = c.d_model;
        t.n_layers = c.n_layers;
        t.n_heads = c.n_heads;
        t.d_ff = c.d_ff;
        t.rotary_pct = c.rotary_pct;
        t.rotary_base = c.rotary_base;
        t.norm_eps = c.eps;
        t.parallel_residual = c.parallel;
        t.vocab = c.vocab;
        t.context = c.context;
    }
    LanguageModel model = LanguageModel::build(spec);
    torch::NoGradGuard no_grad;
    auto params = model.module().named_parameters();
    auto put = [&](const std::string& name, std::vector<float> data) {
        torch::Tensor* p = params.find(name);
        if (!p) fail("load_hf_lm: no parameter " + name);
        p->copy_(torch::from_blob(data.data(), p->sizes(), torch::kFloat32));
    };
    for (size_t i = 0; i < w.tensors.size(); i++) {
        std::string name = w.tensors[i].first.packed_name;
        if (ends_with(name, ".A")) name += "_log";  // stored as A_log
        put(name, w.read(i));
    }
    if (!c.is_mamba() && c.tied) put("embed_out.weight", w.read(0));
    return model;
}

json hf_config_json(LanguageModel& model, const std::string& dtype) {
    json j;
    if (model.mamba) {
        const MambaLmConfig& m = model.mamba->cfg;
        const MambaConfig& b = m.block;
        const int R = int(model.mamba->layers[0]->as<MambaBlock>()->dt_proj->weight.size(1));
        j = {{"architectures", json::array({"MambaForCausalLM"})},
             {"model_type", "mamba"},
             {"vocab_size", m.vocab},
             {"hidden_size", b.d_model},
             {"num_hidden_layers", b.n_layers},
             {"state_size", b.d_state},
             {"expand", b.expand},
             {"intermediate_size", b.d_inner()},
             {"conv_kernel", b.d_conv},
             {"time_step_rank", R},
             {"layer_norm_epsilon", b.norm_eps},
             {"use_bias", false},
             {"use_conv_bias", true},
             {"hidden_act", "silu"},
             {"residual_in_fp32", true},
             {"tie_word_embeddings", true},
             {"initializer_range", 0.1},
             {"time_step_scale", 1.0},
             {"time_step_min", b.dt_min},
             {"time_step_max", b.dt_max},
             {"time_step_init_scheme", "random"},
             {"time_step_floor", b.dt_init_floor},
             {"rescale_prenorm_residual", false},
             {"use_cache", true},
             {"pad_token_id", kCorpusEos},
             {"bos_token_id", kCorpusEos},
             {"eos_token_id", kCorpusEos}};
    } else {
        const TransformerLmConfig& t = model.transformer->cfg;
        j = {{"architectures", json::array({"GPTNeoXForCausalLM"})},
             {"model_type", "gpt_neox"},
             {"vocab_size", t.vocab},
             {"hidden_size", t.d_model},
             {"num_hidden_layers", t.n_layers},
             {"num_attention_heads", t.n_heads},
             {"intermediate_size", t.d_ff},
             {"hidden_act", "gelu"},
             {"rotary_pct", t.rotary_pct},
             {"rotary_emb_base", t.rotary_base},
             {"max_position_embeddings", t.context},
             {"layer_norm_eps", t.norm_eps},
             {"use_parallel_residual", t.parallel_residual},
             {"tie_word_embeddings", false},
             {"attention_bias", true},
             {"attention_dropout", 0.0},
             {"hidden_dropout", 0.0},
             {"classifier_dropout", 0.1},
             {"initializer_range", t.init_std},
             {"use_cache", true},
             {"bos_token_id", kCorpusEos},
             {"eos_token_id", kCorpusEos}};
    }
    j["torch_dtype"] = dtype_torch_name(dtype);
    return j;
}

std::vector<SafetensorsTensor> hf_state_dict(LanguageModel& model, const std::string& dtype) {
    const HfConfig c = parse_hf_config(hf_config_json(model, dtype), "config.json");
    torch::NoGradGuard no_grad;
    auto params = model.module().named_parameters();
    std::vector<SafetensorsTensor> out;
    for (const HfTensorMap& m : hf_tensor_map(c)) {
        std::string name = m.packed_name;
        if (name.size() > 2 && name.compare(name.size() - 2, 2, ".A") == 0) name += "_log";
        const torch::Tensor* p = params.find(name);
        if (!p) fail("export hf: the model has no parameter " + name);
        auto t = p->detach().to(torch::kFloat32).contiguous();
        SafetensorsTensor s;
        s.name = m.hf_name;
        s.dtype = dtype;
        s.shape = m.hf_shape;
        s.data.assign(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
        out.push_back(std::move(s));
    }
    return out;
}

std::string byte_tokenizer_json() {
    json vocab = json::object();
    for (int b = 0; b < 256; b++) {
        uint8_t u[4];
        const int n = bpe_put_utf8(bpe_byte_to_unicode(uint8_t(b)), u);
        vocab[std::string(reinterpret_cast<const char*>(u), size_t(n))] = b;
    }
    const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}};
    const json j = {{"version", "1.0"},
                    {"truncation", nullptr},
                    {"padding", nullptr},
                    {"added_tokens", json::array()},
                    {"normalizer", nullptr},
                    {"pre_tokenizer", byte_level},
                    {"post_processor", nullptr},
                    {"decoder", byte_level},
                    {"model", {{"type", "BPE"},
                               {"dropout", nullptr},
                               {"unk_token", nullptr},
                               {"continuing_subword_prefix", nullptr},
                               {"end_of_word_suffix", nullptr},
                               {"fuse_unk", false},
                               {"byte_fallback", false},
                               {"ignore_merges", false},
                               {"vocab", vocab},
                               {"merges", json::array()}}}};
    return j.dump(2) + "\n";
}

std::string write_hf_dir(LanguageModel& model, const std::string& out_dir, const std::string& dtype) {
    const json config = hf_config_json(model, dtype);  // checks dtype first
    const std::vector<SafetensorsTensor> tensors = hf_state_dict(model, dtype);
    create_output_dir(out_dir);
    const std::string text = config.dump(2) + "\n";
    const std::string config_path = (fs::path(out_dir) / "config.json").string();
    char err[512];
    if (io_write_file_atomic(config_path.c_str(), text.data(), text.size(), err, sizeof err) != 0)
        fail(config_path + ": " + err);
    const bool bytes = config["vocab_size"] == 256;
    if (bytes) {
        const std::string tok = byte_tokenizer_json(), tok_path = (fs::path(out_dir) / "tokenizer.json").string();
        if (io_write_file_atomic(tok_path.c_str(), tok.data(), tok.size(), err, sizeof err) != 0) fail(tok_path + ": " + err);
    }
    write_safetensors((fs::path(out_dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
    return "wrote " + out_dir + "/config.json" + (bytes ? ", tokenizer.json" : "") + " and model.safetensors: " + config["architectures"][0].get<std::string>() +
           ", " + std::to_string(tensors.size()) + " tensors, " + dtype;
}

std::string export_hf(const std::string& checkpoint, const std::string& out_dir, const std::string& dtype) {
    (void)dtype_torch_name(dtype);
    const json meta = read_checkpoint_meta(checkpoint);
    const auto kind = meta.find("model");
    if (kind != meta.end() && kind->is_string() && (*kind == "mamba" || *kind == "cnn"))
        fail(checkpoint + ": a " + kind->get<std::string>() +
             " classifier checkpoint, not a language model (bin/export hf exports mamba-lm and transformer-lm; "
             "bin/export model packs classifiers)");
    LanguageModel model = load_lm_checkpoint(checkpoint);
    return write_hf_dir(model, out_dir, dtype);
}

}  // namespace mmia
