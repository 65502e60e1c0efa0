// fuzz_config.cpp: libFuzzer target for config.json handling (common/config):
// load_config_file, then resolve_preset + resolve_training + validation for
// the default preset and for every preset the file names, as bin/train does.
//   make build/fuzz/fuzz_config && build/fuzz/fuzz_config -max_total_time=60 fuzz/corpus/fuzz_config
//
// Input: the bytes of a config.json. The file goes through load_config_file
// itself (a small file in a private temp dir), so the reader, the parser and
// the resolvers are what bin/train runs. A std::runtime_error with a message
// is the expected refusal; any other exception (a raw nlohmann type_error,
// say, which would reach the user as an unexplained "[json.exception...]")
// or a sanitizer report is a finding.
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "common/config.h"

namespace {

const std::string& config_path() {
    static std::string path;
    if (path.empty()) {
        char dir[] = "/tmp/fuzz_config_XXXXXX";
        if (!mkdtemp(dir)) abort();
        path = std::string(dir) + "/config.json";
    }
    return path;
}

void write_file(const std::string& path, const uint8_t* data, size_t size) {
    FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || (size && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) abort();
}

// Everything bin/train does with a preset before it builds a model.
void resolve_everything(const mmia::json& cfg, const std::string& model, const std::string& preset) {
    try {
        mmia::ModelSpec spec = mmia::resolve_preset(cfg, model, preset);
        mmia::resolve_training(cfg, spec.preset);
        if (spec.model == "mamba") {
            mmia::validate_mamba(spec.mamba, 1, 28, 28);
            mmia::validate_mamba(spec.mamba, 3, 32, 32);
            // What the checkpoint stores must read back as the same config.
            if (mmia::to_json(mmia::mamba_from_json(mmia::to_json(spec.mamba))) != mmia::to_json(spec.mamba))
                abort();
        }
    } catch (const std::runtime_error& e) {
        if (!*e.what()) abort();  // every refusal must say why
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string& path = config_path();
    write_file(path, data, size);
    mmia::json cfg;
    try {
        cfg = mmia::load_config_file(path);
    } catch (const std::runtime_error& e) {
        if (!*e.what()) abort();
        return 0;
    }
    if (!cfg.is_object()) abort();  // load_config_file promises an object
    for (const char* model : {"mamba", "cnn", "transformer"}) resolve_everything(cfg, model, "");
    auto presets = cfg.find("presets");
    if (presets != cfg.end() && presets->is_object()) {
        for (auto it = presets->begin(); it != presets->end(); ++it) {
            std::string model = "mamba";
            if (it->is_object()) {
                auto m = it->find("model");
                if (m != it->end() && m->is_string()) model = m->get<std::string>();
            }
            resolve_everything(cfg, model, it.key());
        }
    }
    resolve_everything(cfg, "mamba", "no such preset");
    return 0;
}
