// fuzz_safetensors.cpp: libFuzzer target for the safetensors header parser
// (export/safetensors.cpp parse_safetensors), which bin/export hf runs on
// every model.safetensors before it trusts an offset.
//   make build/fuzz/fuzz_safetensors
//   build/fuzz/fuzz_safetensors -max_total_time=60 fuzz/corpus/fuzz_safetensors
//
// Input: the bytes of a whole safetensors file. A std::runtime_error of the
// form "fuzz: <why>" is the expected refusal; any other exception or a
// sanitizer report is a finding. On acceptance the promises the readers
// rely on are checked: tensors sorted, contiguous from 0, each exactly
// numel * dtype size, ending exactly at the end of the file.
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "export/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    mmia::SafetensorsHeader h;
    try {
        h = mmia::parse_safetensors(data, size, "fuzz");
    } catch (const std::runtime_error& e) {
        if (std::string(e.what()).rfind("fuzz: ", 0) != 0) abort();
        return 0;
    }
    uint64_t at = 0;
    for (const mmia::SafetensorsEntry& t : h.tensors) {
        const int ds = mmia::safetensors_dtype_size(t.dtype);
        if (ds == 0 || t.begin != at || t.end - t.begin != t.numel * uint64_t(ds)) abort();
        at = t.end;
    }
    if (h.data_start() + at != size) abort();
    return 0;
}
