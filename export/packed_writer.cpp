// packed_writer.cpp: see packed_writer.h. The file is built in memory (the
// checksum covers everything after the header), then written in one go.
#include "export/packed_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <set>
#include <stdexcept>

#include "engine/io.h"  // io_check_output_path

namespace {

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

std::string shape_str(const std::vector<uint32_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

const char* nonfinite_str(float v) { return std::isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf"; }

void check_tensor(const PackedTensor& t) {
    if (t.name.empty()) throw std::runtime_error("tensor with an empty name");
    if (t.name.size() > MMIA_NAME_BYTES - 1)
        throw std::runtime_error("tensor name '" + t.name + "' is longer than " +
                                 std::to_string(MMIA_NAME_BYTES - 1) + " bytes");
    for (char c : t.name)
        if (c < 0x21 || c > 0x7e)
            throw std::runtime_error("tensor name '" + t.name + "' has a non-printable or space character");
    if (t.shape.empty() || t.shape.size() > 4)
        throw std::runtime_error("tensor '" + t.name + "' has " + std::to_string(t.shape.size()) +
                                 " dims (must be 1..4)");
    uint64_t n = 1;
    for (uint32_t d : t.shape) {
        if (d == 0 || d > 0x7fffffffu)
            throw std::runtime_error("tensor '" + t.name + "' has a bad dimension in shape " + shape_str(t.shape));
        if (n > (uint64_t(1) << 61) / d) throw std::runtime_error("tensor '" + t.name + "' is too large");
        n *= d;
    }
    if (n != t.data.size())
        throw std::runtime_error("tensor '" + t.name + "' has " + std::to_string(t.data.size()) +
                                 " values but shape " + shape_str(t.shape) + " needs " + std::to_string(n));
    // The readers refuse a non-finite weight (engine/packed.h); the writer
    // never produces one, so a NaN from training stops here, named.
    for (size_t i = 0; i < t.data.size(); i++)
        if (!std::isfinite(t.data[i]))
            throw std::runtime_error("tensor '" + t.name + "': element " + std::to_string(i) + " is " +
                                     nonfinite_str(t.data[i]) + " (weights must be finite numbers)");
}

// The header's floats, as engine/packed.h checks them.
void check_header_floats(const MmiaHeader& h) {
    for (int i = 0; i < 16; i++) {
        const float v = i < 4 ? h.in_mean[i] : i < 8 ? h.in_std[i - 4] : h.fp[i - 8];
        if (!std::isfinite(v))
            throw std::runtime_error(std::string("header field ") + (i < 4 ? "in_mean" : i < 8 ? "in_std" : "fp") +
                                     "[" + std::to_string(i < 4 ? i : i < 8 ? i - 4 : i - 8) + "] is " +
                                     nonfinite_str(v) + " (header floats must be finite)");
    }
}

}  // namespace

std::vector<uint8_t> pack_model_bytes(const MmiaHeader& header_template, const std::vector<PackedTensor>& tensors,
                                      const std::vector<uint8_t>& tokenizer) {
    if (tensors.empty() || tensors.size() > 4096)
        throw std::runtime_error("need 1..4096 tensors, got " + std::to_string(tensors.size()));
    check_header_floats(header_template);
    std::set<std::string> names;
    for (const auto& t : tensors) {
        check_tensor(t);
        if (!names.insert(t.name).second) throw std::runtime_error("tensor '" + t.name + "' given twice");
    }
    const uint64_t n = tensors.size();
    uint64_t at = align_up(MMIA_HEADER_BYTES + MMIA_TENSOR_ENTRY_BYTES * n, MMIA_ALIGN);
    std::vector<MmiaTensorEntry> table(n);
    for (uint64_t i = 0; i < n; i++) {
        const PackedTensor& t = tensors[i];
        MmiaTensorEntry& e = table[i];
        std::memset(&e, 0, sizeof e);
        std::memcpy(e.name, t.name.data(), t.name.size());
        e.dtype = MMIA_DTYPE_F32;
        e.ndim = uint32_t(t.shape.size());
        for (int d = 0; d < 4; d++) e.shape[d] = d < int(t.shape.size()) ? t.shape[d] : 1;
        e.offset = align_up(at, MMIA_ALIGN);
        e.nbytes = uint64_t(t.data.size()) * 4;
        at = e.offset + e.nbytes;
    }
    MmiaHeader h = header_template;
    const uint64_t blob_at = align_up(at, MMIA_ALIGN);
    if (!tokenizer.empty()) {
        const bool lm = h.kind == MMIA_KIND_MAMBA_LM || h.kind == MMIA_KIND_TRANSFORMER_LM;
        if (!lm || h.hp[MMIA_LM_HP_TOKENIZER] != MMIA_TOKENIZER_BPE)
            throw std::runtime_error("a tokenizer blob goes only into a language model whose tokenizer is BPE");
        if (tokenizer.size() > 0x7fffffffu || blob_at / MMIA_ALIGN > 0x7fffffffu)
            throw std::runtime_error("the tokenizer blob is too large or too far into the file for hp[28..29]");
        h.hp[MMIA_LM_HP_BPE_AT] = int32_t(blob_at / MMIA_ALIGN);
        h.hp[MMIA_LM_HP_BPE_BYTES] = int32_t(tokenizer.size());
        at = blob_at + tokenizer.size();
    }
    const uint64_t file_bytes = at;
    std::vector<uint8_t> buf(file_bytes, 0);  // zero padding between tensors
    std::memcpy(buf.data() + MMIA_HEADER_BYTES, table.data(), MMIA_TENSOR_ENTRY_BYTES * n);
    for (uint64_t i = 0; i < n; i++)
        std::memcpy(buf.data() + table[i].offset, tensors[i].data.data(), table[i].nbytes);  // LE host
    if (!tokenizer.empty()) std::memcpy(buf.data() + blob_at, tokenizer.data(), tokenizer.size());

    std::memcpy(h.magic, MMIA_MAGIC, 8);
    h.version = MMIA_FORMAT_VERSION;
    h.n_tensors = uint32_t(n);
    h.file_bytes = file_bytes;
    h.checksum = mmia_checksum(buf.data() + MMIA_HEADER_BYTES, file_bytes - MMIA_HEADER_BYTES);
    std::memcpy(buf.data(), &h, sizeof h);
    return buf;
}

void write_packed_model(const std::string& path, const MmiaHeader& header_template,
                        const std::vector<PackedTensor>& tensors, const std::vector<uint8_t>& tokenizer) {
    std::vector<uint8_t> buf;
    try {
        buf = pack_model_bytes(header_template, tensors, tokenizer);
    } catch (const std::exception& e) {
        throw std::runtime_error(path + ": " + e.what());
    }
    // engine/io.h: <path>.tmp.<pid>, short writes and EINTR retried,
    // ENOSPC/EIO and fsync's delayed-allocation errors surfaced, renamed
    // into place; a FIFO, device or directory at path refused; nothing left
    // behind on failure.
    char why[512];
    if (io_write_file_atomic(path.c_str(), buf.data(), buf.size(), why, sizeof why) != 0)
        throw std::runtime_error(path + ": " + why);
    // Make the rename itself durable; failure here does not undo the write.
    std::string dir = path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/') + 1);
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}
