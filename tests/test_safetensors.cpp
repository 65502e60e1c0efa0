// test_safetensors.cpp: export/safetensors against the reference
// implementation's own test vectors (huggingface/safetensors tensor.rs
// test_empty, test_serialization, test_serialization_forced_alignement),
// every malformed-file rule with its exact error line, the 16-bit float
// conversions on hand cases and against LibTorch's, and sharded checkpoints.
//
// LibTorch before doctest: glog (pulled in by c10) defines CHECK too.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "export/safetensors.h"
#include "tests/temp_dir.h"

using namespace mmia;

namespace {

// 8-byte LE length + header + data, exactly as given (no padding).
std::vector<uint8_t> raw_file(const std::string& header, const std::vector<uint8_t>& data, uint64_t n = UINT64_MAX) {
    if (n == UINT64_MAX) n = header.size();
    std::vector<uint8_t> out;
    for (int i = 0; i < 8; i++) out.push_back(uint8_t(n >> (8 * i)));
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), data.begin(), data.end());
    return out;
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
    try {
        parse_safetensors(bytes.data(), bytes.size(), "m.safetensors");
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "(accepted)";
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

std::vector<uint8_t> f32_bytes(const std::vector<float>& v) {
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    return b;
}

uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

}  // namespace

TEST_CASE("safetensors: the reference implementation's test vectors, byte for byte") {
    // test_empty
    CHECK(safetensors_serialize({}, {}) == std::vector<uint8_t>{8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32});
    const std::string meta_header = "{\"__metadata__\":{\"framework\":\"pt\"}}     ";
    CHECK(safetensors_serialize({}, {{"framework", "pt"}}) == raw_file(meta_header, {}));
    CHECK(meta_header.size() == 40);
    // test_serialization: attn.0 F32 [1,2,3] = 0..5, N = 64, no padding
    const std::vector<float> v = {0, 1, 2, 3, 4, 5};
    const std::string h64 = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
    REQUIRE(h64.size() == 64);
    auto out = safetensors_serialize({{"attn.0", "F32", {1, 2, 3}, v}}, {});
    CHECK(out == raw_file(h64, f32_bytes(v)));
    CHECK(out[0] == 64);
    // the tail of the reference's expected bytes: 0.0f .. 5.0f little-endian
    const std::vector<uint8_t> tail = {0, 0, 0, 0, 0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64, 0, 0, 160, 64};
    CHECK(std::vector<uint8_t>(out.end() - 24, out.end()) == tail);
    // test_serialization_forced_alignement: attn0 [1,1,2,3], N = 72 with 7 spaces
    const std::string h65 = "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}";
    REQUIRE(h65.size() == 65);
    out = safetensors_serialize({{"attn0", "F32", {1, 1, 2, 3}, v}}, {});
    CHECK(out == raw_file(h65 + "       ", f32_bytes(v)));
    CHECK(out[0] == 72);
    // every vector reads back
    auto h = parse_safetensors(out.data(), out.size(), "x");
    REQUIRE(h.tensors.size() == 1);
    CHECK(h.tensors[0].name == "attn0");
    CHECK(h.tensors[0].shape == std::vector<uint64_t>{1, 1, 2, 3});
    CHECK(h.header_bytes == 72);
    auto e = safetensors_serialize({}, {{"framework", "pt"}});
    CHECK(parse_safetensors(e.data(), e.size(), "x").metadata.at("framework") == "pt");
}

TEST_CASE("safetensors: the writer orders by descending dtype, then name; offsets contiguous; values read back") {
    TempDir dir("mmia_st");
    std::vector<SafetensorsTensor> t = {
        {"b", "F16", {2}, {1.5f, -2.0f}},
        {"a", "BF16", {3}, {1.0f, 0.5f, -3.0f}},
        {"z", "F32", {1}, {7.25f}},
        {"c", "F16", {1}, {65504.0f}},
    };
    const std::string path = dir.file("m.safetensors");
    write_safetensors(path, t, {{"format", "pt"}});
    SafetensorsFile f(path);
    const auto& h = f.header();
    REQUIRE(h.tensors.size() == 4);
    // rank: F32 11 > BF16 8 > F16 7; then name
    CHECK(h.tensors[0].name == "z");
    CHECK(h.tensors[1].name == "a");
    CHECK(h.tensors[2].name == "b");
    CHECK(h.tensors[3].name == "c");
    CHECK(h.tensors[1].begin == 4);
    CHECK(h.tensors[3].end == 4 + 6 + 4 + 2);
    CHECK(h.header_bytes % 8 == 0);
    CHECK(h.metadata.at("format") == "pt");
    for (const auto& src : t) CHECK(f.read_float(*f.find(src.name)) == src.data);  // all exactly representable
}

TEST_CASE("safetensors: 16-bit conversions on hand cases") {
    const float inf = std::numeric_limits<float>::infinity();
    CHECK(bits(half_to_float(0x0000)) == 0u);
    CHECK(bits(half_to_float(0x8000)) == 0x80000000u);
    CHECK(half_to_float(0x3c00) == 1.0f);
    CHECK(half_to_float(0xc000) == -2.0f);
    CHECK(half_to_float(0x3555) == 0.25f * (1 + 0x155 / 1024.0f));  // 0.333251953125
    CHECK(half_to_float(0x7bff) == 65504.0f);
    CHECK(half_to_float(0x0400) == std::ldexp(1.0f, -14));  // smallest normal
    CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
    CHECK(half_to_float(0x03ff) == std::ldexp(1023.0f, -24));  // largest subnormal
    CHECK(half_to_float(0x8201) == -std::ldexp(513.0f, -24));
    CHECK(half_to_float(0x7c00) == inf);
    CHECK(half_to_float(0xfc00) == -inf);
    CHECK(std::isnan(half_to_float(0x7e00)));
    CHECK(std::isnan(half_to_float(0x7c01)));
    CHECK(bf16_to_float(0x3f80) == 1.0f);
    CHECK(bf16_to_float(0xc040) == -3.0f);
    CHECK(bf16_to_float(0x0001) == std::ldexp(1.0f, -133));  // subnormal
    CHECK(bf16_to_float(0x7f7f) == std::ldexp(255.0f, 120));  // largest finite
    CHECK(bf16_to_float(0xff80) == -inf);
    CHECK(std::isnan(bf16_to_float(0x7fc0)));
    // the way out: round to nearest, ties to even
    CHECK(float_to_half(1.0f) == 0x3c00);
    CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);      // tie -> even
    CHECK(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);  // tie -> even (up)
    CHECK(float_to_half(65519.0f) == 0x7bff);
    CHECK(float_to_half(65520.0f) == 0x7c00);  // tie above the max -> inf
    CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000);  // tie -> even 0
    CHECK(float_to_half(std::ldexp(3.0f, -25)) == 0x0002);  // 1.5 units -> 2
    CHECK(float_to_half(-std::ldexp(1.0f, -24)) == 0x8001);
    CHECK(float_to_half(std::ldexp(1023.5f, -24)) == 0x0400);  // carries into the smallest normal
    CHECK(float_to_half(inf) == 0x7c00);
    CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);     // tie -> even
    CHECK(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);  // tie -> even (up)
    CHECK((float_to_bf16(std::nanf("")) & 0x7fc0) == 0x7fc0);
}

TEST_CASE("safetensors: 16-bit conversions agree with LibTorch's, every half and bfloat16 bit pattern") {
    std::vector<uint16_t> all(65536);
    for (int i = 0; i < 65536; i++) all[size_t(i)] = uint16_t(i);
    auto th = torch::from_blob(all.data(), {65536}, torch::kInt16).view(torch::kHalf).to(torch::kFloat32);
    auto tb = torch::from_blob(all.data(), {65536}, torch::kInt16).view(torch::kBFloat16).to(torch::kFloat32);
    int bad_h = 0, bad_b = 0, bad_rt = 0;
    for (int i = 0; i < 65536; i++) {
        float a = half_to_float(uint16_t(i)), b = th[i].item<float>();
        if (!(bits(a) == bits(b) || (std::isnan(a) && std::isnan(b)))) bad_h++;
        float c = bf16_to_float(uint16_t(i)), d = tb[i].item<float>();
        if (!(bits(c) == bits(d) || (std::isnan(c) && std::isnan(d)))) bad_b++;
        if (!std::isnan(a) && float_to_half(a) != i) bad_rt++;
        if (!std::isnan(c) && float_to_bf16(c) != i) bad_rt++;
    }
    CHECK(bad_h == 0);
    CHECK(bad_b == 0);
    CHECK(bad_rt == 0);
    // float -> 16 bits on random floats across the whole exponent range, and on midpoints
    std::mt19937 rng(5);
    std::vector<float> f;
    for (int i = 0; i < 200000; i++) {
        uint32_t u = rng();
        float x;
        std::memcpy(&x, &u, 4);
        if (std::isfinite(x)) f.push_back(x);
    }
    for (int i = 0; i < 65535; i++) {  // exact midpoints between neighbouring halves / bfloat16s
        float lo = half_to_float(uint16_t(i)), hi = half_to_float(uint16_t(i + 1));
        if (std::isfinite(lo) && std::isfinite(hi) && (i & 0x7fff) != 0x7fff) f.push_back(lo / 2 + hi / 2);
        lo = bf16_to_float(uint16_t(i)), hi = bf16_to_float(uint16_t(i + 1));
        if (std::isfinite(lo) && std::isfinite(hi) && (i & 0x7fff) != 0x7fff) f.push_back(lo + (hi - lo) / 2);
    }
    auto t = torch::from_blob(f.data(), {int64_t(f.size())}, torch::kFloat32);
    auto h16 = t.to(torch::kHalf).view(torch::kInt16), b16 = t.to(torch::kBFloat16).view(torch::kInt16);
    const int16_t* hp = h16.data_ptr<int16_t>();
    const int16_t* bp = b16.data_ptr<int16_t>();
    int bad_out = 0;
    for (size_t i = 0; i < f.size(); i++) {
        if (float_to_half(f[i]) != uint16_t(hp[i])) bad_out++;
        if (float_to_bf16(f[i]) != uint16_t(bp[i])) bad_out++;
    }
    CHECK(bad_out == 0);
    CHECK(f.size() > 250000);
}

TEST_CASE("safetensors: every malformed file gets its one-line error") {
    const std::string ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    const std::vector<uint8_t> d8(8, 0);
    CHECK(parse_error(raw_file(ok, d8)) == "(accepted)");
    CHECK(parse_error({1, 0, 0}) ==
          "m.safetensors: 3 bytes is too short for a safetensors file (it starts with an 8-byte header length)");
    CHECK(parse_error(raw_file("{}", {}, 100000001)) ==
          "m.safetensors: header length 100000001 is over the safetensors limit of 100000000 bytes");
    CHECK(parse_error(raw_file("{}", {}, 3)) == "m.safetensors: header length 3 runs past the end of the file (10 bytes)");
    CHECK(parse_error(raw_file("{}", {}, UINT64_MAX - 2)) ==
          "m.safetensors: header length 18446744073709551613 is over the safetensors limit of 100000000 bytes");
    CHECK(parse_error(raw_file("{\"a\":", {})) == "m.safetensors: header is not valid UTF-8 JSON (parse error at byte 6)");
    CHECK(parse_error(raw_file("{\"\xff\":1}", {})) == "m.safetensors: header is not valid UTF-8 JSON (parse error at byte 3)");
    CHECK(parse_error(raw_file("[1]", {})) == "m.safetensors: header is not a JSON object");
    // nlohmann throws out_of_range, not parse_error, for this (fuzz_safetensors' first finding)
    CHECK(parse_error(raw_file("{\"a\":2e24212}", {})) == "m.safetensors: header is not valid JSON (a number out of range)");
    CHECK(parse_error(raw_file("{\"__metadata__\":{\"k\":1}}", {})) ==
          "m.safetensors: __metadata__ value 'k' is not a string");
    CHECK(parse_error(raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", {})) ==
          "m.safetensors: tensor 'a': entry is not an object with dtype, shape and data_offsets");
    CHECK(parse_error(raw_file("{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", d8)) ==
          "m.safetensors: tensor 'a': unknown dtype \"F33\" (safetensors has BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, "
          "U16, F16, BF16, I32, U32, F32, F64, I64, U64)");
    CHECK(parse_error(raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", d8)) ==
          "m.safetensors: tensor 'a': shape is not an array of non-negative integers");
    CHECK(parse_error(raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", d8)) ==
          "m.safetensors: tensor 'a': data_offsets is not a pair of non-negative integers");
    CHECK(parse_error(raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", d8)) ==
          "m.safetensors: tensor 'a': shape [4294967296, 4294967296] overflows 64 bits");
    CHECK(parse_error(raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}", d8)) ==
          "m.safetensors: tensor 'a': shape [4611686018427387904] overflows 64 bits");
    // wrong size
    CHECK(parse_error(raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d8)) ==
          "m.safetensors: tensor 'a': data_offsets [0, 8] hold 8 bytes but F32 [3] needs 12");
    // end before begin
    CHECK(parse_error(raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", d8)) ==
          "m.safetensors: tensor 'b': data_offsets [8, 0] end before they begin");
    // a hole, an overlap (sorted by offsets first: the order in the header does not matter)
    CHECK(parse_error(raw_file("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
                               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", std::vector<uint8_t>(12))) ==
          "m.safetensors: bytes [4, 8) of the data buffer belong to no tensor (a hole before 'b')");
    CHECK(parse_error(raw_file("{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
                               "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", std::vector<uint8_t>(12))) ==
          "m.safetensors: tensor 'b': data_offsets [4, 12] overlap the tensor before it (which ends at 8)");
    CHECK(parse_error(raw_file("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", d8)) ==
          "m.safetensors: bytes [0, 4) of the data buffer belong to no tensor (a hole before 'a')");
    // trailing bytes, truncated buffer
    CHECK(parse_error(raw_file(ok, std::vector<uint8_t>(9))) ==
          "m.safetensors: 1 trailing bytes after the last tensor (the data buffer is 9 bytes, the tensors end at 8)");
    CHECK(parse_error(raw_file(ok, std::vector<uint8_t>(7))) ==
          "m.safetensors: the tensors end at byte 8 of the data buffer but the file holds 7 (truncated)");
    CHECK(parse_error(raw_file("{}", std::vector<uint8_t>(3))) ==
          "m.safetensors: 3 trailing bytes after the last tensor (the data buffer is 3 bytes, the tensors end at 0)");
    // deep nesting is refused before nlohmann recurses
    CHECK(parse_error(raw_file(std::string(100, '[') + std::string(100, ']'), {})) ==
          "m.safetensors: JSON nested more than 64 levels deep");
}

TEST_CASE("safetensors: non-float dtypes and non-finite weights are refused naming the tensor") {
    TempDir dir("mmia_st");
    const std::string p = dir.file("m.safetensors");
    write_bytes(p, raw_file("{\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}", std::vector<uint8_t>(8)));
    {
        SafetensorsFile f(p);
        CHECK_THROWS_WITH(f.read_float(*f.find("i")),
                          (p + ": tensor 'i': dtype I64 is not a float weight (F32, F16 and BF16 are read)").c_str());
    }
    const std::vector<std::pair<std::string, std::vector<uint8_t>>> cases = {
        {"F16", {0, 0x3c, 0x00, 0x7e}},            // 1, NaN
        {"BF16", {0x80, 0x3f, 0x80, 0xff}},        // 1, -inf
    };
    for (const auto& [dtype, data] : cases) {
        write_bytes(p, raw_file("{\"w\":{\"dtype\":\"" + dtype + "\",\"shape\":[2],\"data_offsets\":[0,4]}}", data));
        SafetensorsFile f(p);
        CHECK_THROWS_WITH(f.read_float(*f.find("w")),
                          (p + ": tensor 'w': element 1 is " + (dtype == "F16" ? "NaN" : "inf") +
                           " (weights must be finite)").c_str());
    }
    write_bytes(p, raw_file("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", f32_bytes({INFINITY})));
    SafetensorsFile f(p);
    CHECK_THROWS_WITH(f.read_float(*f.find("w")), (p + ": tensor 'w': element 0 is inf (weights must be finite)").c_str());
    CHECK_THROWS_WITH(SafetensorsFile(dir.file("none")), (dir.file("none") + ": cannot open: No such file or directory").c_str());
    CHECK_THROWS_WITH(SafetensorsFile(dir.path.string()), (dir.path.string() + ": not a regular file").c_str());
}

TEST_CASE("safetensors: sharded checkpoints through model.safetensors.index.json") {
    TempDir dir("mmia_st");
    auto shard = [&](const std::string& name, const std::vector<SafetensorsTensor>& t) { write_safetensors(dir.file(name), t, {{"format", "pt"}}); };
    shard("model-00001-of-00002.safetensors", {{"x", "F32", {2}, {1, 2}}, {"y", "BF16", {1}, {3}}});
    shard("model-00002-of-00002.safetensors", {{"z", "F16", {1}, {4}}});
    auto index = [&](const std::string& body) { write_bytes(dir.file("model.safetensors.index.json"), std::vector<uint8_t>(body.begin(), body.end())); };
    index("{\"metadata\":{\"total_size\":14},\"weight_map\":{\"x\":\"model-00001-of-00002.safetensors\","
          "\"y\":\"model-00001-of-00002.safetensors\",\"z\":\"model-00002-of-00002.safetensors\"}}");
    {
        SafetensorsCheckpoint c(dir.path.string());
        CHECK(c.n_files() == 2);
        CHECK(c.names() == std::vector<std::string>{"x", "y", "z"});
        CHECK(c.read_float("x") == std::vector<float>{1, 2});
        CHECK(c.read_float("y") == std::vector<float>{3});
        CHECK(c.read_float("z") == std::vector<float>{4});
        CHECK(c.find("w") == nullptr);
    }
    const std::string ip = dir.file("model.safetensors.index.json");
    index("{\"weight_map\":{\"x\":\"model-00001-of-00002.safetensors\",\"z\":\"model-00002-of-00002.safetensors\"}}");
    CHECK_THROWS_WITH(SafetensorsCheckpoint(dir.path.string()),
                      (dir.file("model-00001-of-00002.safetensors") + ": tensor 'y' is not in " + ip + "'s weight_map").c_str());
    index("{\"weight_map\":{\"x\":\"model-00001-of-00002.safetensors\",\"y\":\"model-00002-of-00002.safetensors\","
          "\"z\":\"model-00002-of-00002.safetensors\"}}");
    CHECK_THROWS_WITH(SafetensorsCheckpoint(dir.path.string()),
                      (dir.file("model-00001-of-00002.safetensors") + ": tensor 'y' is not in " + ip +
                       "'s weight_map under this file (it says model-00002-of-00002.safetensors)").c_str());
    index("{\"weight_map\":{\"x\":\"../x.safetensors\"}}");
    CHECK_THROWS_WITH(SafetensorsCheckpoint(dir.path.string()),
                      (ip + ": weight_map['x'] = \"../x.safetensors\" is not a plain file name in the model directory").c_str());
    index("{\"metadata\":{}}");
    CHECK_THROWS_WITH(SafetensorsCheckpoint(dir.path.string()),
                      (ip + ": no \"weight_map\" object of tensor names to shard files").c_str());
    std::filesystem::remove(ip);
    CHECK_THROWS_WITH(SafetensorsCheckpoint(dir.path.string()),
                      (dir.path.string() + ": no model.safetensors or model.safetensors.index.json (a Hugging Face "
                                           "model directory holds one; pytorch_model.bin is not read)").c_str());
}
