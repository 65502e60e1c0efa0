// fuzz_checkpoint_meta.cpp: libFuzzer target for a checkpoint's meta record
// (train/checkpoint_meta: parse_checkpoint_meta, input_from_json, and the
// model config inside), which every checkpoint reader parses before it
// trusts anything in the file.
//   make build/fuzz/fuzz_checkpoint_meta
//   build/fuzz/fuzz_checkpoint_meta -max_total_time=60 fuzz/corpus/fuzz_checkpoint_meta
//
// Input: the meta JSON text as stored in the checkpoint. A std::runtime_error
// with a message is the expected refusal; any other exception or a sanitizer
// report is a finding. On acceptance, everything the readers (trainer resume,
// load_mamba_checkpoint, bin/export) then do with the record must work
// without throwing.
//
// The rest of a checkpoint is LibTorch's zip + pickle archive, read by
// Debian's uninstrumented libtorch: see docs/FUZZING.md for why it is tested
// with corrupt and truncated files in tests/test_checkpoint.cpp instead.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "train/checkpoint_meta.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    mmia::json meta;
    try {
        // As from a 1 MiB file: room for models of up to 256K weights.
        meta = mmia::parse_checkpoint_meta(std::string(reinterpret_cast<const char*>(data), size), "fuzz",
                                           uint64_t(1) << 20);
    } catch (const std::runtime_error& e) {
        if (std::string(e.what()).rfind("fuzz: ", 0) != 0) abort();  // "<path>: <why>"
        return 0;
    }
    // Accepted: what the readers do next must not throw.
    try {
        int epochs_done = meta.value("epochs_done", 0);
        if (epochs_done < 0 || epochs_done > mmia::kMaxCheckpointEpochs) abort();
        const std::string model = meta.value("model", "");
        if (model == "mamba-lm") {  // a language model: its config, no input (load_lm_checkpoint)
            (void)mmia::mamba_lm_from_json(meta.at("lm"));
        } else if (model == "transformer-lm") {
            (void)mmia::transformer_lm_from_json(meta.at("lm"));
        } else {
            mmia::InputSpec in = mmia::input_from_json(meta.at("input"));
            if (int(in.mean.size()) != in.channels || int(in.std.size()) != in.channels) abort();
            if (model == "mamba") {
                mmia::MambaConfig c = mmia::mamba_from_json(meta.at("mamba"));
                mmia::validate_mamba(c, in.channels, in.height, in.width);
            }
        }
        meta["history"].push_back(mmia::json{{"epoch", epochs_done + 1}});  // the trainer's resume
        (void)meta.contains("final");
    } catch (const std::exception&) {
        abort();
    }
    return 0;
}
