// safetensors.cpp: see safetensors.h.
#include "export/safetensors.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "common/config.h"
#include "engine/io.h"
#include "engine/packed.h"

namespace mmia {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error(msg); }

// tensor.rs's Dtype enum, in its order (the writer's sort key).
const char* const kDtypes[] = {"BOOL", "U8",  "I8",  "F8_E5M2", "F8_E4M3", "I16", "U16", "F16",
                               "BF16", "I32", "U32", "F32", "F64",     "I64",     "U64"};
const int kDtypeSizes[] = {1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 8, 8, 8};

std::string shape_str(const std::vector<uint64_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

uint32_t f2u(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
float u2f(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

}  // namespace

int safetensors_dtype_rank(const std::string& dtype) {
    for (int i = 0; i < 15; i++)
        if (dtype == kDtypes[i]) return i;
    return -1;
}

int safetensors_dtype_size(const std::string& dtype) {
    int r = safetensors_dtype_rank(dtype);
    return r < 0 ? 0 : kDtypeSizes[r];
}

// ---------------------------------------------------------------------------
// 16-bit floats

float bf16_to_float(uint16_t b) { return u2f(uint32_t(b) << 16); }

float half_to_float(uint16_t h) {
    const uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0x1f) return u2f(sign | 0x7f800000u | (mant << 13));  // inf, NaN (payload kept)
    if (exp != 0) return u2f(sign | ((exp + 112) << 23) | (mant << 13));  // normal: rebias 15 -> 127
    if (mant == 0) return u2f(sign);                                      // +-0
    // subnormal: mant * 2^-24, normalised for float32
    uint32_t e = 113, m = mant;  // 2^-14 = float exponent 113
    while (!(m & 0x400)) {
        m <<= 1;
        e--;
    }
    return u2f(sign | (e << 23) | ((m & 0x3ff) << 13));
}

uint16_t float_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // NaN stays quiet NaN
    u += 0x7fffu + ((u >> 16) & 1);  // round to nearest, ties to even
    return uint16_t(u >> 16);
}

uint16_t float_to_half(float f) {
    const uint32_t u = f2u(f);
    const uint16_t sign = uint16_t((u >> 16) & 0x8000);
    const uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return uint16_t(sign | 0x7e00 | ((a >> 13) & 0x3ff));  // NaN (quiet)
    if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // >= 65520 rounds to inf (inf too)
    if (a < 0x38800000u) {  // below 2^-14: a half subnormal (or 0)
        if (a < 0x33000000u) return sign;  // <= 2^-25 rounds to 0 (exactly 2^-25: tie -> even 0)
        // value = m * 2^(e-150) with the implicit bit; in units of 2^-24: shift right by 126 - e
        const uint32_t e = a >> 23, m = (a & 0x7fffff) | 0x800000;
        const int shift = int(126 - e);  // 14..24
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return uint16_t(sign | q);  // q may carry into the smallest normal: still the right bits
    }
    // normal: rebias, round 13 bits away (a carry rolls into the exponent, possibly to inf)
    uint32_t r = a - (112u << 23);
    r += 0xfffu + ((r >> 13) & 1);
    return uint16_t(sign | (r >> 13));
}

// ---------------------------------------------------------------------------
// Reading

SafetensorsHeader parse_safetensors(const uint8_t* bytes, uint64_t size, const std::string& label) {
    if (size < 8)
        fail(label + ": " + std::to_string(size) +
             " bytes is too short for a safetensors file (it starts with an 8-byte header length)");
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | bytes[i];
    if (n > kSafetensorsMaxHeader)
        fail(label + ": header length " + std::to_string(n) + " is over the safetensors limit of " +
             std::to_string(kSafetensorsMaxHeader) + " bytes");
    if (n > size - 8)
        fail(label + ": header length " + std::to_string(n) + " runs past the end of the file (" +
             std::to_string(size) + " bytes)");
    SafetensorsHeader out;
    out.header_bytes = n;
    const std::string text(reinterpret_cast<const char*>(bytes) + 8, size_t(n));
    check_json_depth(text, label);
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
        fail(label + ": header is not valid UTF-8 JSON (parse error at byte " + std::to_string(e.byte) + ")");
    } catch (const nlohmann::json::exception&) {  // out_of_range 406: a number past double (found by fuzz_safetensors)
        fail(label + ": header is not valid JSON (a number out of range)");
    }
    if (!j.is_object()) fail(label + ": header is not a JSON object");
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string& name = it.key();
        const nlohmann::json& v = it.value();
        if (name == "__metadata__") {
            if (!v.is_object()) fail(label + ": __metadata__ is not an object of strings");
            for (auto m = v.begin(); m != v.end(); ++m) {
                if (!m.value().is_string())
                    fail(label + ": __metadata__ value '" + m.key() + "' is not a string");
                out.metadata[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        const std::string what = label + ": tensor '" + name + "'";
        if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
            fail(what + ": entry is not an object with dtype, shape and data_offsets");
        SafetensorsEntry t;
        t.name = name;
        if (!v["dtype"].is_string()) fail(what + ": dtype is not a string");
        t.dtype = v["dtype"].get<std::string>();
        const int dsize = safetensors_dtype_size(t.dtype);
        if (dsize == 0)
            fail(what + ": unknown dtype \"" + t.dtype +
                 "\" (safetensors has BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64, "
                 "I64, U64)");
        const nlohmann::json& s = v["shape"];
        if (!s.is_array()) fail(what + ": shape is not an array of non-negative integers");
        for (const auto& d : s) {
            if (!d.is_number_unsigned()) fail(what + ": shape is not an array of non-negative integers");
            t.shape.push_back(d.get<uint64_t>());
        }
        const nlohmann::json& o = v["data_offsets"];
        if (!o.is_array() || o.size() != 2 || !o[0].is_number_unsigned() || !o[1].is_number_unsigned())
            fail(what + ": data_offsets is not a pair of non-negative integers");
        t.begin = o[0].get<uint64_t>();
        t.end = o[1].get<uint64_t>();
        uint64_t numel = 1;
        for (uint64_t d : t.shape)
            if (__builtin_mul_overflow(numel, d, &numel))
                fail(what + ": shape " + shape_str(t.shape) + " overflows 64 bits");
        uint64_t nbytes;
        if (__builtin_mul_overflow(numel, uint64_t(dsize), &nbytes))
            fail(what + ": shape " + shape_str(t.shape) + " overflows 64 bits");
        t.numel = numel;
        out.tensors.push_back(std::move(t));
    }
    // As the reference: sorted by offsets, then contiguous from 0.
    std::sort(out.tensors.begin(), out.tensors.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
        return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    uint64_t start = 0;
    for (const SafetensorsEntry& t : out.tensors) {
        const std::string what = label + ": tensor '" + t.name + "'";
        const std::string offs = "data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "]";
        if (t.end < t.begin) fail(what + ": " + offs + " end before they begin");
        if (t.begin > start)
            fail(label + ": bytes [" + std::to_string(start) + ", " + std::to_string(t.begin) +
                 ") of the data buffer belong to no tensor (a hole before '" + t.name + "')");
        if (t.begin < start)
            fail(what + ": " + offs + " overlap the tensor before it (which ends at " + std::to_string(start) + ")");
        const uint64_t need = t.numel * uint64_t(safetensors_dtype_size(t.dtype));  // checked above
        if (t.end - t.begin != need)
            fail(what + ": " + offs + " hold " + std::to_string(t.end - t.begin) + " bytes but " + t.dtype + " " +
                 shape_str(t.shape) + " needs " + std::to_string(need));
        start = t.end;
    }
    const uint64_t have = size - 8 - n;
    if (start < have)
        fail(label + ": " + std::to_string(have - start) + " trailing bytes after the last tensor (the data buffer is " +
             std::to_string(have) + " bytes, the tensors end at " + std::to_string(start) + ")");
    if (start > have)
        fail(label + ": the tensors end at byte " + std::to_string(start) + " of the data buffer but the file holds " +
             std::to_string(have) + " (truncated)");
    return out;
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
    char err[512];
    if (packed_map_file(path.c_str(), &bytes_, &size_, &map_, &map_len_, err, sizeof err) != 0)
        fail(path + ": " + err);
    try {
        header_ = parse_safetensors(bytes_, size_, path);
    } catch (...) {
        packed_unmap_file(map_, map_len_);
        throw;
    }
}

SafetensorsFile::~SafetensorsFile() { packed_unmap_file(map_, map_len_); }

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
    for (const SafetensorsEntry& t : header_.tensors)
        if (t.name == name) return &t;
    return nullptr;
}

std::vector<float> SafetensorsFile::read_float(const SafetensorsEntry& t) const {
    const std::string what = path_ + ": tensor '" + t.name + "'";
    const uint8_t* p = bytes_ + header_.data_start() + t.begin;
    std::vector<float> out(size_t(t.numel));
    if (t.dtype == "F32") {
        std::memcpy(out.data(), p, out.size() * 4);  // little-endian host (x86-64, aarch64)
    } else if (t.dtype == "F16" || t.dtype == "BF16") {
        const bool half = t.dtype == "F16";
        for (size_t i = 0; i < out.size(); i++) {
            const uint16_t b = uint16_t(p[2 * i] | p[2 * i + 1] << 8);
            out[i] = half ? half_to_float(b) : bf16_to_float(b);
        }
    } else {
        fail(what + ": dtype " + t.dtype + " is not a float weight (F32, F16 and BF16 are read)");
    }
    for (size_t i = 0; i < out.size(); i++)
        if (!std::isfinite(out[i]))
            fail(what + ": element " + std::to_string(i) + " is " + (std::isnan(out[i]) ? "NaN" : "inf") +
                 " (weights must be finite)");
    return out;
}

void SafetensorsFile::release(const SafetensorsEntry& t) const {
    const uintptr_t page = uintptr_t(sysconf(_SC_PAGESIZE));
    const uintptr_t a = uintptr_t(bytes_ + header_.data_start() + t.begin) / page * page;
    const uintptr_t b = uintptr_t(bytes_ + header_.data_start() + t.end);
    if (b > a) madvise(reinterpret_cast<void*>(a), size_t(b - a), MADV_DONTNEED);
}

// ---------------------------------------------------------------------------
// Sharded checkpoints

SafetensorsCheckpoint::SafetensorsCheckpoint(const std::string& dir) {
    namespace fs = std::filesystem;
    const std::string single = (fs::path(dir) / "model.safetensors").string();
    const std::string index_path = (fs::path(dir) / "model.safetensors.index.json").string();
    std::error_code ec;
    if (fs::exists(single, ec)) {
        files_.push_back(std::make_unique<SafetensorsFile>(single));
        for (const SafetensorsEntry& t : files_[0]->header().tensors) index_[t.name] = {0, &t};
        return;
    }
    if (!fs::exists(index_path, ec))
        fail(dir + ": no model.safetensors or model.safetensors.index.json (a Hugging Face model directory "
                   "holds one; pytorch_model.bin is not read)");
    const nlohmann::json j = load_config_file(index_path);
    if (!j.contains("weight_map") || !j["weight_map"].is_object() || j["weight_map"].empty())
        fail(index_path + ": no \"weight_map\" object of tensor names to shard files");
    std::map<std::string, size_t> shard_of_file;
    std::map<std::string, std::string> wanted;  // tensor -> file
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
        if (!it.value().is_string()) fail(index_path + ": weight_map['" + it.key() + "'] is not a file name");
        const std::string f = it.value().get<std::string>();
        if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
            fail(index_path + ": weight_map['" + it.key() + "'] = \"" + f +
                 "\" is not a plain file name in the model directory");
        wanted[it.key()] = f;
        if (!shard_of_file.count(f)) {
            shard_of_file[f] = files_.size();
            files_.push_back(std::make_unique<SafetensorsFile>((fs::path(dir) / f).string()));
        }
    }
    for (size_t s = 0; s < files_.size(); s++) {
        const std::string file_name = fs::path(files_[s]->path()).filename().string();
        for (const SafetensorsEntry& t : files_[s]->header().tensors) {
            auto w = wanted.find(t.name);
            if (w == wanted.end() || w->second != file_name)
                fail(files_[s]->path() + ": tensor '" + t.name + "' is not in " + index_path + "'s weight_map" +
                     (w == wanted.end() ? std::string() : " under this file (it says " + w->second + ")"));
            index_[t.name] = {s, &t};
        }
    }
    for (const auto& [name, f] : wanted)
        if (!index_.count(name)) fail(index_path + ": tensor '" + name + "' is listed in " + f + " but not in it");
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
    std::vector<std::string> r;
    for (const auto& kv : index_) r.push_back(kv.first);
    return r;
}

const SafetensorsEntry* SafetensorsCheckpoint::find(const std::string& name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : it->second.second;
}

std::vector<float> SafetensorsCheckpoint::read_float(const std::string& name) const {
    const auto& [file, entry] = index_.at(name);
    return files_[file]->read_float(*entry);
}

void SafetensorsCheckpoint::release(const std::string& name) const {
    const auto& [file, entry] = index_.at(name);
    files_[file]->release(*entry);
}

const std::string& SafetensorsCheckpoint::file_of(const std::string& name) const {
    return files_[index_.at(name).first]->path();
}

// ---------------------------------------------------------------------------
// Writing

std::vector<uint8_t> safetensors_serialize(const std::vector<SafetensorsTensor>& tensors,
                                           const std::map<std::string, std::string>& metadata) {
    std::vector<const SafetensorsTensor*> order;
    for (const SafetensorsTensor& t : tensors) {
        if (t.name.empty() || t.name == "__metadata__") fail("safetensors: a tensor name may not be empty or __metadata__");
        if (t.dtype != "F32" && t.dtype != "F16" && t.dtype != "BF16")
            fail("safetensors: tensor '" + t.name + "': dtype " + t.dtype + " is not written (F32, F16, BF16)");
        uint64_t numel = 1;
        for (uint64_t d : t.shape) numel *= d;
        if (numel != t.data.size())
            fail("safetensors: tensor '" + t.name + "' has " + std::to_string(t.data.size()) + " values for shape " +
                 shape_str(t.shape));
        order.push_back(&t);
    }
    std::sort(order.begin(), order.end(), [](const SafetensorsTensor* a, const SafetensorsTensor* b) {
        const int ra = safetensors_dtype_rank(a->dtype), rb = safetensors_dtype_rank(b->dtype);
        return ra != rb ? ra > rb : a->name < b->name;
    });
    for (size_t i = 1; i < order.size(); i++)
        if (order[i]->name == order[i - 1]->name) fail("safetensors: duplicate tensor name '" + order[i]->name + "'");
    // Compact JSON as serde_json writes it; nlohmann's dump of a string escapes the same way.
    std::string h = "{";
    if (!metadata.empty()) {
        h += "\"__metadata__\":{";
        bool first = true;
        for (const auto& [k, v] : metadata) {
            h += (first ? "" : ",") + nlohmann::json(k).dump() + ":" + nlohmann::json(v).dump();
            first = false;
        }
        h += "}";
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < order.size(); i++) {
        const SafetensorsTensor& t = *order[i];
        const uint64_t nb = t.data.size() * uint64_t(safetensors_dtype_size(t.dtype));
        std::string shape = "[";
        for (size_t d = 0; d < t.shape.size(); d++) shape += (d ? "," : "") + std::to_string(t.shape[d]);
        h += (i || !metadata.empty() ? "," : "") + nlohmann::json(t.name).dump() + ":{\"dtype\":\"" + t.dtype +
             "\",\"shape\":" + shape + "],\"data_offsets\":[" + std::to_string(offset) + "," +
             std::to_string(offset + nb) + "]}";
        offset += nb;
    }
    h += "}";
    h.append((8 - h.size() % 8) % 8, ' ');
    std::vector<uint8_t> out;
    out.reserve(8 + h.size() + offset);
    for (int i = 0; i < 8; i++) out.push_back(uint8_t(uint64_t(h.size()) >> (8 * i)));
    out.insert(out.end(), h.begin(), h.end());
    for (const SafetensorsTensor* t : order) {
        if (t->dtype == "F32") {
            const uint8_t* p = reinterpret_cast<const uint8_t*>(t->data.data());
            out.insert(out.end(), p, p + t->data.size() * 4);
        } else {
            const bool half = t->dtype == "F16";
            for (float f : t->data) {
                const uint16_t b = half ? float_to_half(f) : float_to_bf16(f);
                out.push_back(uint8_t(b));
                out.push_back(uint8_t(b >> 8));
            }
        }
    }
    return out;
}

void write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    std::vector<uint8_t> bytes;
    try {
        bytes = safetensors_serialize(tensors, metadata);
    } catch (const std::runtime_error& e) {
        fail(path + ": " + e.what());
    }
    char err[512];
    if (io_write_file_atomic(path.c_str(), bytes.data(), bytes.size(), err, sizeof err) != 0) fail(path + ": " + err);
}

}  // namespace mmia
