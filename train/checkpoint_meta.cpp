// checkpoint_meta.cpp: see checkpoint_meta.h.
#include "train/checkpoint_meta.h"

#include <cmath>
#include <stdexcept>

namespace mmia {

namespace {

// j[key] as an int in [lo, hi]; a float, a string or a value out of range
// throws (nlohmann's get<int> would truncate 1e30 with undefined behaviour).
int int_field(const json& j, const char* key, int lo, int hi) {
    auto it = j.find(key);
    if (it == j.end()) throw std::runtime_error(std::string("missing \"") + key + "\"");
    if (!it->is_number_integer() || *it < lo || *it > hi)
        throw std::runtime_error(std::string("\"") + key + "\" must be an integer in " +
                                 std::to_string(lo) + ".." + std::to_string(hi));
    return it->get<int>();
}

// j[key] as `count` finite floats.
std::vector<float> float_list(const json& j, const char* key, size_t count) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_array() || it->size() != count)
        throw std::runtime_error(std::string("\"") + key + "\" must be a list of " +
                                 std::to_string(count) + " numbers (one per channel)");
    std::vector<float> out;
    for (const json& v : *it) {
        if (!v.is_number() || !std::isfinite(v.get<double>()) || std::fabs(v.get<double>()) > 1e30)
            throw std::runtime_error(std::string("\"") + key + "\" holds a value that is not a finite number");
        out.push_back(v.get<float>());
    }
    return out;
}

// Floats a Mamba classifier of this shape holds, at least (its matrices;
// vectors left out). No overflow: the config caps keep it below 2^51.
uint64_t mamba_weight_floats(const MambaConfig& c, const InputSpec& in) {
    const uint64_t D = uint64_t(c.d_model), E = uint64_t(c.d_inner()), N = uint64_t(c.d_state),
                   K = uint64_t(c.d_conv), R = uint64_t(c.dt_rank);
    const uint64_t P = uint64_t(c.patch_channels(in.channels)) * uint64_t(c.patch_h) * uint64_t(c.patch_w);
    const uint64_t per_layer = 2 * E * D + E * K + (R + 2 * N) * E + E * R + E * N + D * E;
    uint64_t stem = 0, stem_in = uint64_t(in.channels);  // 3x3 convs
    for (int w : c.stem) {
        stem += uint64_t(w) * stem_in * 9;
        stem_in = uint64_t(w);
    }
    return stem + D * P + uint64_t(c.n_layers) * per_layer + uint64_t(in.n_classes) * D;
}

// Floats a language model of this shape holds, at least (its matrices).
uint64_t lm_weight_floats(const std::string& model, const json& lm) {
    if (model == "mamba-lm") {
        const MambaLmConfig c = mamba_lm_from_json(lm);
        const uint64_t D = uint64_t(c.block.d_model), E = uint64_t(c.block.d_inner()),
                       N = uint64_t(c.block.d_state), K = uint64_t(c.block.d_conv), R = uint64_t(c.block.dt_rank);
        const uint64_t per_layer = 2 * E * D + E * K + (R + 2 * N) * E + E * R + E * N + D * E;
        return uint64_t(c.vocab) * D + uint64_t(c.block.n_layers) * per_layer;
    }
    const TransformerLmConfig c = transformer_lm_from_json(lm);
    const uint64_t D = uint64_t(c.d_model), F = uint64_t(c.d_ff);
    return 2 * uint64_t(c.vocab) * D + uint64_t(c.n_layers) * (4 * D * D + 2 * D * F);
}

}  // namespace

json to_json(const InputSpec& s) {
    return json{{"channels", s.channels}, {"height", s.height}, {"width", s.width},
                {"n_classes", s.n_classes}, {"mean", s.mean}, {"std", s.std}};
}

InputSpec input_from_json(const json& j) {
    if (!j.is_object()) throw std::runtime_error("bad input description: not a JSON object");
    try {
        InputSpec s;
        s.channels = int_field(j, "channels", 1, 4);
        s.height = int_field(j, "height", 1, 4096);
        s.width = int_field(j, "width", 1, 4096);
        s.n_classes = int_field(j, "n_classes", 2, 100000);
        s.mean = float_list(j, "mean", size_t(s.channels));
        s.std = float_list(j, "std", size_t(s.channels));
        for (float v : s.std)
            if (!(v > 0)) throw std::runtime_error("\"std\" must be > 0");
        return s;
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(std::string("bad input description: ") + e.what());
    }
}

json parse_checkpoint_meta(const std::string& text, const std::string& path, uint64_t file_bytes) {
    check_json_depth(text, path + ": corrupt checkpoint meta");
    json meta;
    try {
        meta = json::parse(text);
    } catch (const json::exception& e) {
        throw std::runtime_error(path + ": corrupt checkpoint meta: " + e.what());
    }
    auto version = meta.is_object() ? meta.find("checkpoint_version") : meta.end();
    if (!meta.is_object() || version == meta.end() || *version != kCheckpointVersion)
        throw std::runtime_error(path + ": unsupported checkpoint version (this build reads " +
                                 std::to_string(kCheckpointVersion) + ")");
    try {
        auto model = meta.find("model");
        if (model == meta.end() || !model->is_string())
            throw std::runtime_error("\"model\" must be a string");
        int_field(meta, "epochs_done", 0, kMaxCheckpointEpochs);
        auto history = meta.find("history");
        if (history == meta.end() || !history->is_array())
            throw std::runtime_error("\"history\" must be a list");
        if (is_lm_model(*model)) {
            // A language model: its config under "lm", no image input.
            if (!meta.contains("lm")) throw std::runtime_error("missing \"lm\"");
            if (meta.contains("steps_done")) {
                const json& s = meta["steps_done"];
                if (!s.is_number_integer() || s < 0 || s > (int64_t(1) << 50))
                    throw std::runtime_error("\"steps_done\" must be a non-negative integer");
            }
            const uint64_t floats = lm_weight_floats(*model, meta["lm"]);
            if (floats > file_bytes / 4)
                throw std::runtime_error("the model it describes has " + std::to_string(floats) +
                                         " weights, more than the " + std::to_string(file_bytes) +
                                         "-byte file holds");
            return meta;
        }
        if (!meta.contains("input")) throw std::runtime_error("missing \"input\"");
        const InputSpec in = input_from_json(meta["input"]);
        if (*model == "mamba") {
            if (!meta.contains("mamba")) throw std::runtime_error("missing \"mamba\"");
            const MambaConfig c = mamba_from_json(meta["mamba"]);
            validate_mamba(c, in.channels, in.height, in.width);
            // The weights are stored uncompressed, so the file must be at
            // least their size: this keeps a forged meta from making a
            // reader build a model of terabytes before any weight is read.
            const uint64_t floats = mamba_weight_floats(c, in);
            if (floats > file_bytes / 4)
                throw std::runtime_error("the model it describes has " + std::to_string(floats) +
                                         " weights, more than the " + std::to_string(file_bytes) +
                                         "-byte file holds");
        }
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(path + ": corrupt checkpoint meta: " + e.what());
    }
    return meta;
}

}  // namespace mmia
