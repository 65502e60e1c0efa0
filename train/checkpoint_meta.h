// checkpoint_meta.h: the JSON "meta" record every checkpoint carries (see
// checkpoint.h), read and checked without LibTorch, so the checks can be
// fuzzed (fuzz/fuzz_checkpoint_meta.cpp) and reused by any reader.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"

namespace mmia {

constexpr int kCheckpointVersion = 1;
constexpr int kMaxCheckpointEpochs = 100000;  // as bin/train's --epochs cap

// Input description stored in meta["input"].
struct InputSpec {
    int channels = 1, height = 28, width = 28, n_classes = 10;
    std::vector<float> mean, std;
};
json to_json(const InputSpec& s);
// Strict: missing, mistyped or out-of-range fields throw std::runtime_error.
InputSpec input_from_json(const json& j);

// Parses the meta text of the checkpoint at `path` (a file of file_bytes
// bytes) and checks every field a reader relies on before it trusts any:
// nesting depth, checkpoint_version, model (a string), epochs_done
// (0..kMaxCheckpointEpochs), history (a list), input, and for a "mamba"
// model its config, that the config fits the input, and that the file is
// large enough to hold the weights it describes. A language model
// ("mamba-lm", "transformer-lm") has no input: its "lm" config is checked
// (strictly, as config.json's), its steps_done, and the file size the same way. Throws
// std::runtime_error("<path>: <why>").
json parse_checkpoint_meta(const std::string& text, const std::string& path, uint64_t file_bytes);

}  // namespace mmia
