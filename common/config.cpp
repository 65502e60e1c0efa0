// config.cpp: see config.h.
#include "common/config.h"

#include "common/number_text.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mmia {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

int get_int(const json& j, const char* key, int lo, int hi, const std::string& where) {
    const json& v = j.at(key);
    if (!v.is_number_integer()) fail(where + ": \"" + key + "\" must be an integer");
    long long x = v.get<long long>();
    if (x < lo || x > hi)
        fail(where + ": \"" + key + "\" = " + std::to_string(x) + " is outside [" +
             std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return static_cast<int>(x);
}

double get_double(const json& j, const char* key, double lo, double hi, const std::string& where) {
    const json& v = j.at(key);
    if (!v.is_number()) fail(where + ": \"" + key + "\" must be a number");
    double x = v.get<double>();
    if (!(x >= lo && x <= hi))
        fail(where + ": \"" + key + "\" = " + number_text(x) + " is outside [" + number_text(lo) + ", " +
             number_text(hi) + "]");
    return x;
}

std::string get_choice(const json& j, const char* key, std::initializer_list<const char*> choices,
                       const std::string& where) {
    const json& v = j.at(key);
    std::string list;
    for (const char* c : choices) list += std::string(list.empty() ? "" : ", ") + c;
    if (!v.is_string()) fail(where + ": \"" + key + "\" must be one of: " + list);
    std::string s = v.get<std::string>();
    for (const char* c : choices)
        if (s == c) return s;
    fail(where + ": \"" + key + "\" = \"" + s + "\" is not one of: " + list);
}

}  // namespace

void check_json_depth(const std::string& text, const std::string& what) {
    int depth = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > kMaxJsonDepth)
                fail(what + ": JSON nested more than " + std::to_string(kMaxJsonDepth) + " levels deep");
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
}

json load_config_file(const std::string& path) {
    // A config is a few KB: refuse a FIFO or device (reading it could block
    // or never end) and anything large, before reading.
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (std::filesystem::exists(status) && !std::filesystem::is_regular_file(status))
        fail(path + ": not a regular file");
    std::ifstream in(path);
    if (!in) fail(path + ": cannot open (run from the project root, or pass --config)");
    const auto size = std::filesystem::file_size(path, ec);
    if (ec || size > kMaxConfigBytes)
        fail(path + ": " + (ec ? "cannot stat" : std::to_string(size) + " bytes is more than the cap of " +
                                                     std::to_string(kMaxConfigBytes)));
    std::stringstream ss;
    ss << in.rdbuf();
    check_json_depth(ss.str(), path);
    try {
        json j = json::parse(ss.str());
        if (!j.is_object()) fail(path + ": top level must be a JSON object");
        return j;
    } catch (const json::exception& e) {
        fail(path + ": " + e.what());
    }
}

void create_output_dir(const std::string& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) fail(dir + ": cannot create directory (" + ec.message() + ")");
}

void check_output_dir(const std::string& dir) {
    std::error_code ec;
    for (std::filesystem::path p = dir; !p.empty(); p = p.parent_path()) {
        const auto status = std::filesystem::status(p, ec);
        if (std::filesystem::exists(status)) {
            if (!std::filesystem::is_directory(status)) fail(dir + ": cannot create directory (Not a directory)");
            return;
        }
        if (p == p.parent_path()) return;
    }
}

bool regular_file_exists(const std::string& path) {
    std::error_code ec;
    const auto status = std::filesystem::status(path, ec);
    if (!std::filesystem::exists(status)) return false;
    if (!std::filesystem::is_regular_file(status)) fail(path + ": not a regular file");
    return true;
}

MambaConfig mamba_from_json(const json& j) {
    const std::string where = "mamba config";
    if (!j.is_object()) fail(where + ": must be a JSON object");
    static const char* known[] = {"comment", "model",   "d_model", "n_layers",      "d_state",
                                  "d_conv",  "expand",  "dt_rank", "dt_min",        "dt_max",
                                  "dt_init_floor",      "patch",   "pool",          "conv",
                                  "norm_eps", "stem",    "norm",    "norm_placement", "dropout",
                                  "head_dropout",       "stem_norm", "stem_groups", "training"};
    for (auto it = j.begin(); it != j.end(); ++it) {
        bool ok = false;
        for (const char* k : known) ok = ok || it.key() == k;
        if (!ok) fail(where + ": unknown field \"" + it.key() + "\"");
    }
    MambaConfig c;
    try {
        c.d_model = get_int(j, "d_model", 1, 16384, where);
        c.n_layers = get_int(j, "n_layers", 1, 256, where);
        c.d_state = get_int(j, "d_state", 1, 1024, where);
        c.d_conv = get_int(j, "d_conv", 1, 64, where);
        c.expand = get_int(j, "expand", 1, 16, where);
        const json& r = j.at("dt_rank");
        if (r.is_string() && r.get<std::string>() == "auto")
            c.dt_rank = (c.d_model + 15) / 16;
        else
            c.dt_rank = get_int(j, "dt_rank", 1, 16384, where);
        c.dt_min = get_double(j, "dt_min", 1e-8, 10.0, where);
        c.dt_max = get_double(j, "dt_max", c.dt_min, 10.0, where);
        c.dt_init_floor = get_double(j, "dt_init_floor", 0.0, 10.0, where);
        const json& p = j.at("patch");
        if (!p.is_array() || p.size() != 2 || !p[0].is_number_integer() || !p[1].is_number_integer() ||
            p[0] < 1 || p[0] > 4096 || p[1] < 1 || p[1] > 4096)
            fail(where + ": \"patch\" must be [height, width], each 1..4096");
        c.patch_h = p[0].get<int>();
        c.patch_w = p[1].get<int>();
        c.pool = get_choice(j, "pool", {"mean", "last"}, where);
        c.conv = get_choice(j, "conv", {"causal", "same"}, where);
        c.norm_eps = get_double(j, "norm_eps", 1e-12, 1.0, where);
        // Optional fields: absent means the defaults, which are what every
        // model before them computed (so their checkpoints read unchanged).
        if (j.contains("stem")) {
            const json& st = j["stem"];
            const std::string what = where + ": \"stem\" must be a list of at most " +
                                     std::to_string(kMambaMaxStemLayers) + " channel counts, each 1.." +
                                     std::to_string(kMambaMaxStemWidth);
            if (!st.is_array() || st.size() > size_t(kMambaMaxStemLayers)) fail(what);
            for (const json& w : st) {
                if (!w.is_number_integer() || w < 1 || w > kMambaMaxStemWidth) fail(what);
                c.stem.push_back(w.get<int>());
            }
        }
        if (j.contains("stem_norm")) {
            c.stem_norm = get_choice(j, "stem_norm", {"batch", "group"}, where);
            if (c.stem.empty()) fail(where + ": \"stem_norm\" needs a \"stem\"");
        }
        if (c.stem_norm == "group") {
            c.stem_groups = get_int(j, "stem_groups", 1, kMambaMaxStemWidth, where);
            for (int w : c.stem)
                if (w % c.stem_groups)
                    fail(where + ": \"stem_groups\" = " + std::to_string(c.stem_groups) +
                         " does not divide the stem width " + std::to_string(w));
        } else if (j.contains("stem_groups")) {
            fail(where + ": \"stem_groups\" needs \"stem_norm\": \"group\"");
        }
        if (j.contains("norm")) c.norm = get_choice(j, "norm", {"rmsnorm", "layernorm"}, where);
        if (j.contains("norm_placement"))
            c.norm_placement = get_choice(j, "norm_placement", {"pre", "post"}, where);
        if (j.contains("dropout")) c.dropout = get_double(j, "dropout", 0.0, 0.99, where);
        if (j.contains("head_dropout")) c.head_dropout = get_double(j, "head_dropout", 0.0, 0.99, where);
    } catch (const json::out_of_range& e) {
        fail(where + ": missing field (" + std::string(e.what()) + ")");
    }
    return c;
}

json to_json(const MambaConfig& c) {
    json j{{"model", "mamba"},          {"d_model", c.d_model},
           {"n_layers", c.n_layers},    {"d_state", c.d_state},
           {"d_conv", c.d_conv},        {"expand", c.expand},
           {"dt_rank", c.dt_rank},      {"dt_min", c.dt_min},
           {"dt_max", c.dt_max},        {"dt_init_floor", c.dt_init_floor},
           {"patch", {c.patch_h, c.patch_w}},
           {"pool", c.pool},            {"conv", c.conv},
           {"norm_eps", c.norm_eps}};
    // The optional fields only when they differ from the defaults: a
    // checkpoint written before they existed then has the same record as a
    // run of today's code with the same preset, and resumes.
    const MambaConfig def;
    if (!c.stem.empty()) j["stem"] = c.stem;
    if (c.stem_norm != def.stem_norm) {
        j["stem_norm"] = c.stem_norm;
        j["stem_groups"] = c.stem_groups;
    }
    if (c.norm != def.norm) j["norm"] = c.norm;
    if (c.norm_placement != def.norm_placement) j["norm_placement"] = c.norm_placement;
    if (c.dropout != def.dropout) j["dropout"] = c.dropout;
    if (c.head_dropout != def.head_dropout) j["head_dropout"] = c.head_dropout;
    return j;
}

CnnConfig cnn_from_json(const json& j) {
    const std::string where = "cnn config";
    if (!j.is_object()) fail(where + ": must be a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string& k = it.key();
        if (k != "comment" && k != "model" && k != "layers" && k != "bn_eps" && k != "training")
            fail(where + ": unknown field \"" + k + "\"");
    }
    CnnConfig c;
    if (j.contains("bn_eps")) c.bn_eps = get_double(j, "bn_eps", 1e-12, 1.0, where);
    if (!j.contains("layers") || !j["layers"].is_array() || j["layers"].empty())
        fail(where + ": \"layers\" must be a non-empty array");
    const json& layers = j["layers"];
    if (int(layers.size()) > kCnnMaxLayers)
        fail(where + ": " + std::to_string(layers.size()) + " layers, at most " +
             std::to_string(kCnnMaxLayers));
    for (size_t i = 0; i < layers.size(); i++) {
        const json& l = layers[i];
        const std::string at = where + ": layer " + std::to_string(i);
        if (!l.is_object()) fail(at + ": must be a JSON object");
        CnnLayer L;
        try {
            L.type = get_choice(l, "type", {"conv", "maxpool", "global_avg_pool", "flatten", "dense"}, at);
            // The fields each type takes; "activation" and "batch_norm" are optional.
            std::vector<std::string> allowed = {"type"};
            if (L.type == "conv") allowed = {"type", "out", "kernel", "padding", "batch_norm", "activation"};
            if (L.type == "maxpool") allowed = {"type", "size"};
            if (L.type == "dense") allowed = {"type", "out", "activation"};
            for (auto it = l.begin(); it != l.end(); ++it) {
                bool ok = false;
                for (const auto& a : allowed) ok = ok || it.key() == a;
                if (!ok) fail(at + " (" + L.type + "): unknown field \"" + it.key() + "\"");
            }
            if (L.type == "conv") {
                L.out = get_int(l, "out", 1, kCnnMaxWidth, at);
                L.kernel = get_int(l, "kernel", 1, kCnnMaxKernel, at);
                L.padding = get_int(l, "padding", 0, L.kernel - 1, at);
                if (l.contains("batch_norm")) {
                    if (!l["batch_norm"].is_boolean()) fail(at + ": \"batch_norm\" must be true or false");
                    L.batch_norm = l["batch_norm"].get<bool>();
                }
            } else if (L.type == "maxpool") {
                L.kernel = get_int(l, "size", 1, 4096, at);
            } else if (L.type == "dense") {
                if (l.at("out").is_string() && l["out"].get<std::string>() == "n_classes")
                    L.out = 0;
                else
                    L.out = get_int(l, "out", 1, kCnnMaxWidth, at);
            }
            if (L.type == "conv" || L.type == "dense")
                L.activation = l.contains("activation")
                                   ? get_choice(l, "activation", {"none", "relu", "tanh", "gelu"}, at)
                                   : "none";
        } catch (const json::out_of_range& e) {
            fail(at + ": missing field (" + std::string(e.what()) + ")");
        }
        c.layers.push_back(L);
    }
    return c;
}

json to_json(const CnnConfig& c) {
    json layers = json::array();
    for (const CnnLayer& l : c.layers) {
        json o = {{"type", l.type}};
        if (l.type == "conv") {
            o["out"] = l.out;
            o["kernel"] = l.kernel;
            o["padding"] = l.padding;
            o["batch_norm"] = l.batch_norm;
            o["activation"] = l.activation;
        } else if (l.type == "maxpool") {
            o["size"] = l.kernel;
        } else if (l.type == "dense") {
            o["out"] = l.out == 0 ? json("n_classes") : json(l.out);
            o["activation"] = l.activation;
        }
        layers.push_back(o);
    }
    return json{{"model", "cnn"}, {"layers", layers}, {"bn_eps", c.bn_eps}};
}

void validate_cnn(const CnnConfig& c, int channels, int height, int width, int n_classes) {
    if (channels < 1 || channels > 4) fail("images must have 1 to 4 channels");
    if (n_classes < 1 || n_classes > 100000) fail("n_classes " + std::to_string(n_classes) + " is outside 1..100000");
    if (c.layers.empty() || int(c.layers.size()) > kCnnMaxLayers)
        fail("a CNN needs 1 to " + std::to_string(kCnnMaxLayers) + " layers");
    int C = channels, H = height, W = width;
    bool flat = false;  // after flatten / global_avg_pool: a vector of C values
    auto shape = [&] { return std::to_string(C) + "x" + std::to_string(H) + "x" + std::to_string(W); };
    for (size_t i = 0; i < c.layers.size(); i++) {
        const CnnLayer& l = c.layers[i];
        const std::string at = "cnn layer " + std::to_string(i) + " (" + l.type + ")";
        if (flat && l.type != "dense") fail(at + ": only dense layers may follow flatten / global_avg_pool");
        if (l.type == "conv") {
            H = H + 2 * l.padding - l.kernel + 1;
            W = W + 2 * l.padding - l.kernel + 1;
            if (H < 1 || W < 1) fail(at + ": a " + std::to_string(l.kernel) + "x" + std::to_string(l.kernel) +
                                     " kernel does not fit the input (" + shape() + " after it)");
            C = l.out;
        } else if (l.type == "maxpool") {
            if (l.kernel > H || l.kernel > W) fail(at + ": window " + std::to_string(l.kernel) + " is larger than the " + shape() + " input");
            H /= l.kernel;
            W /= l.kernel;
        } else if (l.type == "global_avg_pool" || l.type == "flatten") {
            C = l.type == "flatten" ? C * H * W : C;
            H = W = 1;
            flat = true;
        } else if (l.type == "dense") {
            if (!flat) fail(at + ": needs a flatten or global_avg_pool layer before it");
            if (int64_t(C) * std::max(l.out, n_classes) > (int64_t(1) << 26))
                fail(at + ": " + std::to_string(C) + " inputs make too many weights");
            C = l.out == 0 ? n_classes : l.out;
        } else {
            fail(at + ": unknown layer type");
        }
    }
    const CnnLayer& last = c.layers.back();
    if (last.type != "dense" || last.activation != "none" || (last.out != 0 && last.out != n_classes))
        fail("the last cnn layer must be dense with out \"n_classes\" (" + std::to_string(n_classes) +
             ") and no activation");
}

bool is_lm_model(const std::string& model) { return model == "mamba-lm" || model == "transformer-lm"; }

namespace {

// Fails on any key of j not in `known`.
void check_known(const json& j, std::initializer_list<const char*> known, const std::string& where) {
    if (!j.is_object()) fail(where + ": must be a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
        bool ok = false;
        for (const char* k : known) ok = ok || it.key() == k;
        if (!ok) fail(where + ": unknown field \"" + it.key() + "\"");
    }
}

// The optional "vocab" (default 256 bytes) and the required "context".
void lm_common(const json& j, int& vocab, int& context, const std::string& where) {
    vocab = j.contains("vocab") ? get_int(j, "vocab", kByteVocab, 65536, where) : kByteVocab;
    context = get_int(j, "context", 1, 65536, where);
}

}  // namespace

MambaLmConfig mamba_lm_from_json(const json& j) {
    const std::string where = "mamba-lm config";
    check_known(j, {"comment", "model", "d_model", "n_layers", "d_state", "d_conv", "expand", "dt_rank",
                    "dt_min", "dt_max", "dt_init_floor", "norm_eps", "vocab", "context", "training"},
                where);
    MambaLmConfig c;
    MambaConfig& b = c.block;
    try {
        b.d_model = get_int(j, "d_model", 1, 16384, where);
        b.n_layers = get_int(j, "n_layers", 1, 256, where);
        b.d_state = get_int(j, "d_state", 1, 1024, where);
        b.d_conv = get_int(j, "d_conv", 1, 64, where);
        b.expand = get_int(j, "expand", 1, 16, where);
        const json& r = j.at("dt_rank");
        if (r.is_string() && r.get<std::string>() == "auto")
            b.dt_rank = (b.d_model + 15) / 16;
        else
            b.dt_rank = get_int(j, "dt_rank", 1, 16384, where);
        b.dt_min = get_double(j, "dt_min", 1e-8, 10.0, where);
        b.dt_max = get_double(j, "dt_max", b.dt_min, 10.0, where);
        b.dt_init_floor = get_double(j, "dt_init_floor", 0.0, 10.0, where);
        b.norm_eps = get_double(j, "norm_eps", 1e-12, 1.0, where);
        lm_common(j, c.vocab, c.context, where);
    } catch (const json::out_of_range& e) {
        fail(where + ": missing field (" + std::string(e.what()) + ")");
    }
    // The only block an LM has (docs/FORMAT.md kind 3): the classifier's
    // image fields keep their defaults, which are exactly these.
    b.conv = "causal";
    b.norm = "rmsnorm";
    b.norm_placement = "pre";
    return c;
}

json to_json(const MambaLmConfig& c) {
    const MambaConfig& b = c.block;
    return json{{"model", "mamba-lm"},        {"d_model", b.d_model},   {"n_layers", b.n_layers},
                {"d_state", b.d_state},       {"d_conv", b.d_conv},     {"expand", b.expand},
                {"dt_rank", b.dt_rank},       {"dt_min", b.dt_min},     {"dt_max", b.dt_max},
                {"dt_init_floor", b.dt_init_floor}, {"norm_eps", b.norm_eps},
                {"vocab", c.vocab},           {"context", c.context}};
}

TransformerLmConfig transformer_lm_from_json(const json& j) {
    const std::string where = "transformer-lm config";
    check_known(j, {"comment", "model", "d_model", "n_layers", "n_heads", "d_ff", "rotary_pct",
                    "rotary_base", "norm_eps", "parallel_residual", "init_std", "vocab", "context",
                    "training"},
                where);
    TransformerLmConfig c;
    try {
        c.d_model = get_int(j, "d_model", 1, 16384, where);
        c.n_layers = get_int(j, "n_layers", 1, 256, where);
        c.n_heads = get_int(j, "n_heads", 1, 1024, where);
        c.d_ff = get_int(j, "d_ff", 1, 65536, where);
        c.rotary_pct = get_double(j, "rotary_pct", 0.0, 1.0, where);
        c.rotary_base = get_double(j, "rotary_base", 1.0, 1e9, where);
        c.norm_eps = get_double(j, "norm_eps", 1e-12, 1.0, where);
        if (j.contains("parallel_residual")) {
            if (!j["parallel_residual"].is_boolean())
                fail(where + ": \"parallel_residual\" must be true or false");
            c.parallel_residual = j["parallel_residual"].get<bool>();
        }
        if (j.contains("init_std")) c.init_std = get_double(j, "init_std", 0.0, 10.0, where);
        lm_common(j, c.vocab, c.context, where);
    } catch (const json::out_of_range& e) {
        fail(where + ": missing field (" + std::string(e.what()) + ")");
    }
    if (c.d_model % c.n_heads != 0)
        fail(where + ": d_model " + std::to_string(c.d_model) + " is not a multiple of n_heads " +
             std::to_string(c.n_heads));
    if (c.rotary_ndims() % 2 != 0)
        fail(where + ": rotary_ndims = int(head_dim " + std::to_string(c.head_dim()) + " * rotary_pct) = " +
             std::to_string(c.rotary_ndims()) + " must be even");
    return c;
}

json to_json(const TransformerLmConfig& c) {
    return json{{"model", "transformer-lm"}, {"d_model", c.d_model},
                {"n_layers", c.n_layers},    {"n_heads", c.n_heads},
                {"d_ff", c.d_ff},            {"rotary_pct", c.rotary_pct},
                {"rotary_base", c.rotary_base}, {"norm_eps", c.norm_eps},
                {"parallel_residual", c.parallel_residual}, {"init_std", c.init_std},
                {"vocab", c.vocab},          {"context", c.context}};
}

json to_json(const TrainConfig& c) {
    json j{{"batch_size", c.batch_size}, {"epochs", c.epochs},
           {"learning_rate", c.learning_rate}, {"weight_decay", c.weight_decay},
           {"lr_schedule", c.lr_schedule}, {"save_dir", c.save_dir},
           {"seed", c.seed}};
    if (c.augment != "none") j["augment"] = c.augment;
    if (c.checkpoint_every != 0) j["checkpoint_every"] = c.checkpoint_every;
    return j;
}

static const json& preset_json(const json& config, const std::string& name) {
    if (!config.contains("presets") || !config["presets"].is_object())
        fail("config: no \"presets\" object");
    const json& presets = config["presets"];
    if (!presets.contains(name)) {
        std::string known;
        for (auto it = presets.begin(); it != presets.end(); ++it)
            known += (known.empty() ? "" : ", ") + it.key();
        fail("unknown preset \"" + name + "\" (known: " + known + ")");
    }
    if (!presets[name].is_object()) fail("preset \"" + name + "\" must be a JSON object");
    return presets[name];
}

ModelSpec resolve_preset(const json& config, const std::string& model, const std::string& name) {
    std::string preset = name;
    if (preset.empty()) {
        if (!config.contains("default_preset") || !config["default_preset"].contains(model) ||
            !config["default_preset"][model].is_string())
            fail("config: no default preset for model \"" + model + "\"");
        preset = config["default_preset"][model].get<std::string>();
    }
    const json& p = preset_json(config, preset);
    std::string kind = p.contains("model") && p["model"].is_string() ? p["model"].get<std::string>() : "";
    if (kind != model)
        fail("preset \"" + preset + "\" is a \"" + kind + "\" model, not \"" + model + "\"");
    ModelSpec spec;
    spec.preset = preset;
    spec.model = model;
    if (model == "mamba")
        spec.mamba = mamba_from_json(p);
    else if (model == "cnn")
        spec.cnn = cnn_from_json(p);
    else if (model == "mamba-lm")
        spec.mamba_lm = mamba_lm_from_json(p);
    else if (model == "transformer-lm")
        spec.transformer_lm = transformer_lm_from_json(p);
    else
        fail("unknown model \"" + model + "\" (known: mamba, cnn, mamba-lm, transformer-lm)");
    return spec;
}

TrainConfig resolve_training(const json& config, const std::string& preset_name) {
    json t = config.value("training", json::object());
    if (!t.is_object()) fail("config: \"training\" must be a JSON object");
    if (!preset_name.empty()) {
        const json& p = preset_json(config, preset_name);
        if (p.contains("training")) {  // a preset may override defaults
            if (!p["training"].is_object())
                fail("preset \"" + preset_name + "\": \"training\" must be a JSON object");
            t.update(p["training"]);
        }
    }
    const std::string where = "training config";
    TrainConfig c;
    try {
        c.batch_size = get_int(t, "batch_size", 1, 1 << 20, where);
        c.epochs = get_int(t, "epochs", 1, 100000, where);
        c.learning_rate = get_double(t, "learning_rate", 1e-12, 10.0, where);
        c.weight_decay = get_double(t, "weight_decay", 0.0, 10.0, where);
        c.lr_schedule = get_choice(t, "lr_schedule", {"cosine", "constant"}, where);
        if (t.contains("augment")) c.augment = get_choice(t, "augment", {"none", "crop-flip", "shift2", "shift2-flip"}, where);
        if (t.contains("checkpoint_every"))
            c.checkpoint_every = get_int(t, "checkpoint_every", 0, 1 << 30, where);
        if (t.contains("dp_learning_rate"))
            c.dp_learning_rate = get_double(t, "dp_learning_rate", 1e-12, 10.0, where);
        if (!t.at("save_dir").is_string()) fail(where + ": \"save_dir\" must be a string");
        c.save_dir = t.at("save_dir").get<std::string>();
        if (!t.at("seed").is_number_unsigned())  // nlohmann parses 0, 1, ... as unsigned
            fail(where + ": \"seed\" must be a non-negative integer");
        c.seed = t.at("seed").get<uint64_t>();
    } catch (const json::out_of_range& e) {
        fail(where + ": missing field (" + std::string(e.what()) + ")");
    }
    return c;
}

void use_dp_learning_rate(TrainConfig& c) {
    if (c.dp_learning_rate > 0) c.learning_rate = c.dp_learning_rate;
}

void validate_mamba(const MambaConfig& c, int channels, int height, int width) {
    if (c.patch_h < 1 || c.patch_w < 1 || height % c.patch_h != 0 || width % c.patch_w != 0)
        fail("patch " + std::to_string(c.patch_h) + "x" + std::to_string(c.patch_w) +
             " does not tile a " + std::to_string(height) + "x" + std::to_string(width) + " image");
    if (channels < 1 || channels > 4) fail("images must have 1 to 4 channels");
}

}  // namespace mmia
