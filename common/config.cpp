// config.cpp: see config.h.
#include "common/config.h"

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
        fail(where + ": \"" + key + "\" = " + std::to_string(x) + " is outside [" +
             std::to_string(lo) + ", " + std::to_string(hi) + "]");
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

json load_config_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) fail(path + ": cannot open (run from the project root, or pass --config)");
    std::stringstream ss;
    ss << in.rdbuf();
    try {
        json j = json::parse(ss.str());
        if (!j.is_object()) fail(path + ": top level must be a JSON object");
        return j;
    } catch (const json::exception& e) {
        fail(path + ": " + e.what());
    }
}

MambaConfig mamba_from_json(const json& j) {
    const std::string where = "mamba config";
    if (!j.is_object()) fail(where + ": must be a JSON object");
    static const char* known[] = {"comment", "model",   "d_model", "n_layers",      "d_state",
                                  "d_conv",  "expand",  "dt_rank", "dt_min",        "dt_max",
                                  "dt_init_floor",      "patch",   "pool",          "conv",
                                  "norm_eps", "training"};
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
        if (!p.is_array() || p.size() != 2 || !p[0].is_number_integer() || !p[1].is_number_integer())
            fail(where + ": \"patch\" must be [height, width]");
        c.patch_h = p[0].get<int>();
        c.patch_w = p[1].get<int>();
        c.pool = get_choice(j, "pool", {"mean", "last"}, where);
        c.conv = get_choice(j, "conv", {"causal", "same"}, where);
        c.norm_eps = get_double(j, "norm_eps", 1e-12, 1.0, where);
    } catch (const json::out_of_range& e) {
        fail(where + ": missing field (" + std::string(e.what()) + ")");
    }
    return c;
}

json to_json(const MambaConfig& c) {
    return json{{"model", "mamba"},          {"d_model", c.d_model},
                {"n_layers", c.n_layers},    {"d_state", c.d_state},
                {"d_conv", c.d_conv},        {"expand", c.expand},
                {"dt_rank", c.dt_rank},      {"dt_min", c.dt_min},
                {"dt_max", c.dt_max},        {"dt_init_floor", c.dt_init_floor},
                {"patch", {c.patch_h, c.patch_w}},
                {"pool", c.pool},            {"conv", c.conv},
                {"norm_eps", c.norm_eps}};
}

json to_json(const TrainConfig& c) {
    return json{{"batch_size", c.batch_size}, {"epochs", c.epochs},
                {"learning_rate", c.learning_rate}, {"weight_decay", c.weight_decay},
                {"lr_schedule", c.lr_schedule}, {"save_dir", c.save_dir},
                {"seed", c.seed}};
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
    return presets[name];
}

ModelSpec resolve_preset(const json& config, const std::string& model, const std::string& name) {
    std::string preset = name;
    if (preset.empty()) {
        if (!config.contains("default_preset") || !config["default_preset"].contains(model))
            fail("config: no default preset for model \"" + model + "\"");
        preset = config["default_preset"][model].get<std::string>();
    }
    const json& p = preset_json(config, preset);
    std::string kind = p.value("model", "");
    if (kind != model)
        fail("preset \"" + preset + "\" is a \"" + kind + "\" model, not \"" + model + "\"");
    ModelSpec spec;
    spec.preset = preset;
    spec.model = model;
    if (model == "mamba")
        spec.mamba = mamba_from_json(p);
    else
        fail("unknown model \"" + model + "\" (known: mamba)");
    return spec;
}

TrainConfig resolve_training(const json& config, const std::string& preset_name) {
    json t = config.value("training", json::object());
    if (!preset_name.empty()) {
        const json& p = preset_json(config, preset_name);
        if (p.contains("training")) t.update(p["training"]);  // a preset may override defaults
    }
    const std::string where = "training config";
    TrainConfig c;
    try {
        c.batch_size = get_int(t, "batch_size", 1, 1 << 20, where);
        c.epochs = get_int(t, "epochs", 1, 100000, where);
        c.learning_rate = get_double(t, "learning_rate", 1e-12, 10.0, where);
        c.weight_decay = get_double(t, "weight_decay", 0.0, 10.0, where);
        c.lr_schedule = get_choice(t, "lr_schedule", {"cosine", "constant"}, where);
        if (!t.at("save_dir").is_string()) fail(where + ": \"save_dir\" must be a string");
        c.save_dir = t.at("save_dir").get<std::string>();
        if (!t.at("seed").is_number_unsigned() && !t.at("seed").is_number_integer())
            fail(where + ": \"seed\" must be a non-negative integer");
        c.seed = t.at("seed").get<uint64_t>();
    } catch (const json::out_of_range& e) {
        fail(where + ": missing field (" + std::string(e.what()) + ")");
    }
    return c;
}

void validate_mamba(const MambaConfig& c, int channels, int height, int width) {
    if (c.patch_h < 1 || c.patch_w < 1 || height % c.patch_h != 0 || width % c.patch_w != 0)
        fail("patch " + std::to_string(c.patch_h) + "x" + std::to_string(c.patch_w) +
             " does not tile a " + std::to_string(height) + "x" + std::to_string(width) + " image");
    if (channels < 1 || channels > 4) fail("images must have 1 to 4 channels");
}

}  // namespace mmia
