// packed_writer.cpp: see packed_writer.h. One streaming pass (pack_stream)
// writes both the file and the in-memory bytes: the checksum covers
// everything after the header, so the header is written last.
#include "export/packed_writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <algorithm>
#include <cstring>
#include <set>
#include <stdexcept>

#include "engine/io.h"  // io_check_output_path, io_write_all

namespace {

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

std::string shape_str(const std::vector<uint32_t>& s) {
    std::string r = "[";
    for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
    return r + "]";
}

const char* nonfinite_str(float v) { return std::isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf"; }

// Name and shape; returns the element count.
uint64_t check_info(const PackedTensorInfo& t) {
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
    return n;
}

void check_data(const PackedTensorInfo& t, uint64_t n, const std::vector<float>& data) {
    if (n != data.size())
        throw std::runtime_error("tensor '" + t.name + "' has " + std::to_string(data.size()) +
                                 " values but shape " + shape_str(t.shape) + " needs " + std::to_string(n));
    // The readers refuse a non-finite weight (engine/packed.h); the writer
    // never produces one, so a NaN from training stops here, named.
    for (size_t i = 0; i < data.size(); i++)
        if (!std::isfinite(data[i]))
            throw std::runtime_error("tensor '" + t.name + "': element " + std::to_string(i) + " is " +
                                     nonfinite_str(data[i]) + " (weights must be finite numbers)");
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

// An error a PackedTensorSource threw: passed on as it is (it names its file).
struct SourceError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Where the bytes go: put() appends, put_header() writes the 256 header
// bytes over the placeholder at offset 0.
struct PackSink {
    virtual ~PackSink() = default;
    virtual void put(const uint8_t* p, size_t n) = 0;
    virtual void put_header(const MmiaHeader& h) = 0;
};

// Appends bytes after the header through a 1 MiB buffer and checksums them
// in buffer-sized pieces (a multiple of 8 bytes, as mmia_checksum_update
// needs), so any split of the stream gives mmia_checksum of the whole.
class ChecksumOut {
public:
    explicit ChecksumOut(PackSink& sink) : sink_(sink) { buf_.reserve(kChunk); }
    void put(const void* p, size_t n) {
        const uint8_t* b = static_cast<const uint8_t*>(p);
        while (n > 0) {
            const size_t k = std::min(n, kChunk - buf_.size());
            buf_.insert(buf_.end(), b, b + k);
            b += k;
            n -= k;
            if (buf_.size() == kChunk) flush();
        }
    }
    void zeros(size_t n) {
        static const uint8_t z[MMIA_ALIGN] = {};
        while (n > 0) {
            const size_t k = std::min(n, sizeof z);
            put(z, k);
            n -= k;
        }
    }
    // The last piece; returns the checksum of everything put.
    uint64_t finish() {
        flush();
        return h_;
    }

private:
    static constexpr size_t kChunk = size_t(1) << 20;
    void flush() {
        h_ = mmia_checksum_update(h_, buf_.data(), buf_.size());
        sink_.put(buf_.data(), buf_.size());
        buf_.clear();
    }
    PackSink& sink_;
    std::vector<uint8_t> buf_;
    uint64_t h_ = MMIA_CHECKSUM_INIT;
};

// The one layout and writing of the format: header placeholder, tensor
// table, each tensor (asked of source, checked) at its aligned offset, the
// tokenizer blob, then the finished header. Throws "<why>".
void pack_stream(const MmiaHeader& header_template, const std::vector<PackedTensorInfo>& infos,
                 const PackedTensorSource& source, const std::vector<uint8_t>& tokenizer, PackSink& sink) {
    if (infos.empty() || infos.size() > 4096)
        throw std::runtime_error("need 1..4096 tensors, got " + std::to_string(infos.size()));
    check_header_floats(header_template);
    std::set<std::string> names;
    std::vector<uint64_t> numel(infos.size());
    for (size_t i = 0; i < infos.size(); i++) {
        numel[i] = check_info(infos[i]);
        if (!names.insert(infos[i].name).second) throw std::runtime_error("tensor '" + infos[i].name + "' given twice");
    }
    const uint64_t n = infos.size();
    uint64_t at = align_up(MMIA_HEADER_BYTES + MMIA_TENSOR_ENTRY_BYTES * n, MMIA_ALIGN);
    std::vector<MmiaTensorEntry> table(n);
    for (uint64_t i = 0; i < n; i++) {
        const PackedTensorInfo& t = infos[i];
        MmiaTensorEntry& e = table[i];
        std::memset(&e, 0, sizeof e);
        std::memcpy(e.name, t.name.data(), t.name.size());
        e.dtype = MMIA_DTYPE_F32;
        e.ndim = uint32_t(t.shape.size());
        for (int d = 0; d < 4; d++) e.shape[d] = d < int(t.shape.size()) ? t.shape[d] : 1;
        e.offset = align_up(at, MMIA_ALIGN);
        e.nbytes = numel[i] * 4;
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

    const MmiaHeader placeholder{};
    sink.put(reinterpret_cast<const uint8_t*>(&placeholder), sizeof placeholder);
    ChecksumOut out(sink);
    uint64_t pos = MMIA_HEADER_BYTES;
    out.put(table.data(), MMIA_TENSOR_ENTRY_BYTES * n);
    pos += MMIA_TENSOR_ENTRY_BYTES * n;
    for (uint64_t i = 0; i < n; i++) {
        const std::vector<float>* data_p;
        try {
            data_p = &source(size_t(i));
        } catch (const std::exception& e) {
            throw SourceError(e.what());
        }
        const std::vector<float>& data = *data_p;
        check_data(infos[i], numel[i], data);
        out.zeros(table[i].offset - pos);  // zero padding between tensors
        out.put(data.data(), table[i].nbytes);  // little-endian host
        pos = table[i].offset + table[i].nbytes;
    }
    if (!tokenizer.empty()) {
        out.zeros(blob_at - pos);
        out.put(tokenizer.data(), tokenizer.size());
    }
    std::memcpy(h.magic, MMIA_MAGIC, 8);
    h.version = MMIA_FORMAT_VERSION;
    h.n_tensors = uint32_t(n);
    h.file_bytes = file_bytes;
    h.checksum = out.finish();
    sink.put_header(h);
}

struct MemorySink : PackSink {
    std::vector<uint8_t> bytes;
    void put(const uint8_t* p, size_t n) override { bytes.insert(bytes.end(), p, p + n); }
    void put_header(const MmiaHeader& h) override { std::memcpy(bytes.data(), &h, sizeof h); }
};

// The temporary file of an atomic write (engine/io.h's naming and error
// lines); the destructor removes it unless commit() renamed it into place.
class AtomicFileSink : public PackSink {
public:
    explicit AtomicFileSink(const std::string& path) : path_(path), tmp_(path + ".tmp." + std::to_string(getpid())) {}
    ~AtomicFileSink() override {
        if (fd_ >= 0) ::close(fd_);
        if (!committed_) ::unlink(tmp_.c_str());
    }
    void put(const uint8_t* p, size_t n) override {
        if (fd_ < 0) open_tmp();
        if (io_write_all(fd_, p, n) != 0) failed("write");
    }
    void put_header(const MmiaHeader& h) override {
        if (::lseek(fd_, 0, SEEK_SET) != 0) failed("lseek");
        put(reinterpret_cast<const uint8_t*>(&h), sizeof h);
    }
    // fsync, close, rename over path, then make the rename durable (a
    // failure of that last fsync does not undo the write).
    void commit() {
        if (::fsync(fd_) != 0) failed("fsync");
        const int fd = fd_;
        fd_ = -1;
        if (::close(fd) != 0) failed("close");
        if (::rename(tmp_.c_str(), path_.c_str()) != 0) failed("rename");
        committed_ = true;
        const std::string dir = path_.find('/') == std::string::npos ? "." : path_.substr(0, path_.rfind('/') + 1);
        const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            ::fsync(dfd);
            ::close(dfd);
        }
    }

private:
    // On the first bytes, so a refused model leaves no trace at all.
    void open_tmp() {
        char why[512];
        if (io_check_output_path(path_.c_str(), why, sizeof why) != 0) throw std::runtime_error(why);
        fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd_ < 0) throw std::runtime_error("cannot create " + tmp_ + ": " + std::strerror(errno));
    }
    [[noreturn]] void failed(const char* what) {
        throw std::runtime_error(std::string(what) + " failed: " + std::strerror(errno));
    }
    std::string path_, tmp_;
    int fd_ = -1;
    bool committed_ = false;
};

std::vector<PackedTensorInfo> infos_of(const std::vector<PackedTensor>& tensors) {
    std::vector<PackedTensorInfo> infos;
    for (const PackedTensor& t : tensors) infos.push_back({t.name, t.shape});
    return infos;
}

}  // namespace

std::vector<uint8_t> pack_model_bytes(const MmiaHeader& header_template, const std::vector<PackedTensor>& tensors,
                                      const std::vector<uint8_t>& tokenizer) {
    MemorySink sink;
    pack_stream(header_template, infos_of(tensors), [&](size_t i) -> const std::vector<float>& { return tensors[i].data; },
                tokenizer, sink);
    return std::move(sink.bytes);
}

void write_packed_model_stream(const std::string& path, const MmiaHeader& header_template,
                               const std::vector<PackedTensorInfo>& infos, const PackedTensorSource& source,
                               const std::vector<uint8_t>& tokenizer) {
    try {
        AtomicFileSink sink(path);
        pack_stream(header_template, infos, source, tokenizer, sink);
        sink.commit();
    } catch (const SourceError& e) {
        throw std::runtime_error(e.what());
    } catch (const std::exception& e) {
        throw std::runtime_error(path + ": " + e.what());
    }
}

void write_packed_model(const std::string& path, const MmiaHeader& header_template,
                        const std::vector<PackedTensor>& tensors, const std::vector<uint8_t>& tokenizer) {
    write_packed_model_stream(path, header_template, infos_of(tensors),
                              [&](size_t i) -> const std::vector<float>& { return tensors[i].data; }, tokenizer);
}
