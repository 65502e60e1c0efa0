// engine_rows.h: docs/BAD_INPUT.md's model-file and input.bin rows that
// every engine answers with the same line, because the same code reads the
// files (engine/packed.h: the container; engine/io.h: input.bin), run
// through one engine binary and checked whole: exit code, the exact stderr
// line, nothing on stdout, no --out file. Shared by test_engine (./mamba)
// and test_cnn_engine (./cnn); header-only. The rows' numbers (sizes,
// offsets, checksums) are the fixture's, computed here from its bytes; the
// text around them is the documented line's.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "engine/format.h"
#include "tests/cli_check.h"

inline void engine_rows_write(const std::string& p, const void* data, size_t n) {
    FILE* f = fopen(p.c_str(), "wb");
    REQUIRE_MESSAGE(f, "cannot create " << p);
    if (n) REQUIRE(fwrite(data, 1, n, f) == n);
    fclose(f);
}

// good: the bytes of a valid model file for `bin` (at least 4 tensors);
// images: valid pixels for it, at least 10, floats_per_image each; dir: an
// existing scratch directory.
inline void check_container_rows(const std::string& bin, const std::vector<uint8_t>& good,
                                 const std::vector<float>& images, int64_t floats_per_image, const std::string& dir) {
    REQUIRE(images.size() >= 10);
    REQUIRE(images.size() % size_t(floats_per_image) == 0);
    const std::string input = dir + "/rows_input.bin";
    engine_rows_write(input, images.data(), images.size() * 4);
    const std::string N = std::to_string(good.size());
    int n_file = 0;
    auto variant = [&](const std::vector<uint8_t>& b) {
        std::string p = dir + "/rows_" + std::to_string(n_file++) + ".bin";
        engine_rows_write(p, b.data(), b.size());
        return p;
    };
    auto model_row = [&](const std::string& path, const std::string& why) {
        cli_check_fails_exact(bin, cli_quote(path) + " " + cli_quote(input), "error: " + path + ": " + why, dir);
    };
    auto wr32 = [](std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); };
    auto wr64 = [](std::vector<uint8_t>& b, size_t at, uint64_t v) { std::memcpy(b.data() + at, &v, 8); };
    auto entry_at = [](uint32_t i) { return size_t(MMIA_HEADER_BYTES) + size_t(MMIA_TENSOR_ENTRY_BYTES) * i; };
    auto entry = [&](uint32_t i) {
        MmiaTensorEntry e;
        std::memcpy(&e, good.data() + entry_at(i), sizeof e);
        return e;
    };
    auto fix_checksum = [&](std::vector<uint8_t>& b) {
        wr64(b, offsetof(MmiaHeader, checksum), mmia_checksum(b.data() + 256, b.size() - 256));
    };
    MmiaHeader h;
    std::memcpy(&h, good.data(), sizeof h);
    REQUIRE(h.n_tensors >= 4);

    // --- model files
    model_row(dir + "/rows_none.bin", "cannot open: No such file or directory");
    model_row(variant({}), "file is empty");
    model_row(variant(std::vector<uint8_t>(good.begin(), good.begin() + 100)),
              "file is 100 bytes, too small for the 256-byte header (truncated?)");
    model_row(variant(std::vector<uint8_t>(good.begin(), good.end() - 100)),
              "header says " + N + " bytes but the file has " + std::to_string(good.size() - 100) + " (truncated)");
    auto b = good;
    b.resize(b.size() + 8, 0);
    model_row(variant(b), "header says " + N + " bytes but the file has " + std::to_string(good.size() + 8) + " (trailing bytes)");
    {  // header words: the magic's first byte, the version, the tensor count
        uint32_t magic;
        std::memcpy(&magic, good.data(), 4);
        struct Word {
            size_t at;
            uint32_t v;
            const char* why;
        };
        for (const Word& r : {Word{0, (magic & ~0xffu) | 'X', "not a packed model file (bad magic; expected \"MAMBAMIA\")"},
                              Word{8, 2, "unsupported format version 2 (this reader knows version 1)"},
                              Word{offsetof(MmiaHeader, n_tensors), 5000, "tensor count 5000 outside 1..4096"}}) {
            b = good;
            wr32(b, r.at, r.v);
            model_row(variant(b), r.why);
        }
    }
    {  // tensor 3's data moved to the first aligned offset at or past the end
        const MmiaTensorEntry e = entry(3);
        const uint64_t off = (good.size() + MMIA_ALIGN - 1) / MMIA_ALIGN * MMIA_ALIGN;
        b = good;
        wr64(b, entry_at(3) + offsetof(MmiaTensorEntry, offset), off);
        fix_checksum(b);
        model_row(variant(b), "tensor '" + std::string(e.name) + "': bytes [" + std::to_string(off) + ", +" +
                                  std::to_string(e.nbytes) + ") lie outside the " + N + "-byte file");
    }
    {  // tensor 0 at offset 0; the data starts at the table's end, aligned
        const uint64_t data_start = (entry_at(h.n_tensors) + MMIA_ALIGN - 1) / MMIA_ALIGN * MMIA_ALIGN;
        b = good;
        wr64(b, entry_at(0) + offsetof(MmiaTensorEntry, offset), 0);
        fix_checksum(b);
        model_row(variant(b), "tensor '" + std::string(entry(0).name) +
                                  "': offset 0 overlaps the header or tensor table (data starts at " +
                                  std::to_string(data_start) + ")");
    }
    {
        const MmiaTensorEntry e = entry(2);
        b = good;
        wr64(b, entry_at(2) + offsetof(MmiaTensorEntry, nbytes), 12345);
        fix_checksum(b);
        model_row(variant(b), "tensor '" + std::string(e.name) + "': nbytes 12345 but shape implies " + std::to_string(e.nbytes));
    }
    {  // one bit of the last tensor
        b = good;
        b[b.size() - 3] ^= 0x40;
        uint64_t stored;
        std::memcpy(&stored, good.data() + offsetof(MmiaHeader, checksum), 8);
        char want[160];
        snprintf(want, sizeof want, "checksum mismatch (file is corrupted: stored %016llx, computed %016llx)",
                 (unsigned long long)stored, (unsigned long long)mmia_checksum(b.data() + 256, b.size() - 256));
        model_row(variant(b), want);
    }
    model_row(dir, "not a regular file");

    // --- input.bin, against the good model
    const std::string model = variant(good);
    const std::string per = std::to_string(floats_per_image * 4) + " bytes = " + std::to_string(floats_per_image) +
                            " float32 pixels each";
    auto input_row = [&](const std::vector<float>& px, size_t nbytes, const std::string& why) {
        std::string p = dir + "/rows_in_" + std::to_string(n_file++) + ".bin";
        engine_rows_write(p, px.data(), nbytes);
        cli_check_fails_exact(bin, cli_quote(model) + " " + cli_quote(p), "error: " + p + ": " + why, dir);
    };
    cli_check_fails_exact(bin, cli_quote(model) + " " + cli_quote(dir + "/rows_none_in.bin"),
                          "error: " + dir + "/rows_none_in.bin: cannot open: No such file or directory", dir);
    input_row(images, 0, "file is empty (expected images of " + per + ")");
    input_row(images, images.size() * 4 - 4,
              std::to_string(images.size() * 4 - 4) + " bytes is not a whole number of images (" + per + ")");
    // one pixel each: NaN, inf, 255 (not scaled), and the next float above 1
    struct Pixel {
        size_t at;
        float v;
        const char* why;
    };
    for (const Pixel& r : {Pixel{5, NAN, "image 0, pixel 5 is NaN"}, Pixel{7, INFINITY, "image 0, pixel 7 is +inf"},
                           Pixel{8, 255.0f, "image 0, pixel 8 is 255, outside [0, 1] (pixels must be scaled to [0,1])"},
                           Pixel{9, std::nextafter(1.0f, 2.0f),
                                 "image 0, pixel 9 is 1.00000012, outside [0, 1] (pixels must be scaled to [0,1])"}}) {
        auto px = images;
        px[r.at] = r.v;
        input_row(px, px.size() * 4, r.why);
    }
}
