// fuzz_extract_sweep.cpp: libFuzzer target for bin/extract --summarize's
// reader of a run's metrics.json (attack/extract_sweep.h: sweep_rows_of),
// and the Markdown it then writes from the rows.
//   make build/fuzz/fuzz_extract_sweep
//   build/fuzz/fuzz_extract_sweep -max_total_time=60 fuzz/corpus/fuzz_extract_sweep
//
// Input: the text of a metrics.json, or several joined by NUL bytes (at
// most 4): then sweep_rows_of_runs reads them as --summarize reads several
// runs, pooling those that differ only in their seeds (the seed
// pooled_seeds.bin: the headline run split into seed 1 and seeds 2, 42). A
// std::runtime_error whose message starts with the file name ("fuzz", or
// "fuzzN") is the expected refusal; any other exception or a sanitizer
// report is a finding. On acceptance every row's numbers are finite and in
// range, and sweep_markdown must not throw.
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "attack/extract_sweep.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    std::vector<mmia::SweepRow> rows;
    try {
        if (input.find('\0') == std::string::npos) {
            rows = mmia::sweep_rows_of(input, "run", "fuzz");
        } else {
            std::vector<mmia::SweepRunText> texts;
            for (size_t at = 0; at <= input.size() && texts.size() < 4;) {
                size_t end = input.find('\0', at);
                if (end == std::string::npos) end = input.size();
                const std::string n = std::to_string(texts.size());
                texts.push_back({input.substr(at, end - at), "run" + n, "fuzz" + n});
                at = end + 1;
            }
            rows = mmia::sweep_rows_of_runs(texts);
        }
    } catch (const std::runtime_error& e) {
        if (std::string(e.what()).rfind("fuzz", 0) != 0) abort();
        return 0;
    }
    for (const auto& r : rows)
        if (!std::isfinite(r.loss_mean) || !std::isfinite(r.auc_mean) || r.train_mem > r.train_n || r.k_max <= 0)
            abort();
    (void)mmia::sweep_markdown(rows, {"run"}, {"leakage_vs_fit.svg"});
    return 0;
}
