// safetensors.h: Hugging Face's safetensors format, read and written
// (huggingface/safetensors safetensors/src/tensor.rs; ../shared/notes/lm.md
// section 2.1; docs/HF.md). LibTorch-free (libc + nlohmann-json), so the
// fuzz target builds without LibTorch.
//
// File: u64 little-endian N, N bytes of UTF-8 JSON header, the data buffer.
// Header: {"__metadata__": {str: str}?, "<name>": {"dtype": "F32", "shape":
// [..], "data_offsets": [begin, end]}, ...}; offsets relative to the buffer,
// row-major, little-endian.
//
// Every error is std::runtime_error("<label>: <why>"), label = the file's
// path (or what the caller passed), one line.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mmia {

constexpr uint64_t kSafetensorsMaxHeader = 100000000;  // MAX_HEADER_SIZE of the reference reader

// Bytes per element of a safetensors dtype name ("F32" -> 4), 0 for a name
// the format does not have. The 15 dtypes of tensor.rs.
int safetensors_dtype_size(const std::string& dtype);

// Rank of a dtype in tensor.rs's enum (BOOL 0 .. U64 14): the writer orders
// tensors by descending rank, then by name. -1 for an unknown name.
int safetensors_dtype_rank(const std::string& dtype);

struct SafetensorsEntry {
    std::string name;
    std::string dtype;            // "F32", "F16", "BF16", ... (a known dtype)
    std::vector<uint64_t> shape;  // any rank, 0 = scalar; dims may be 0
    uint64_t numel = 1;           // product of shape
    uint64_t begin = 0, end = 0;  // data_offsets, relative to the data buffer
};

struct SafetensorsHeader {
    uint64_t header_bytes = 0;  // N
    std::map<std::string, std::string> metadata;  // __metadata__ (may be empty)
    std::vector<SafetensorsEntry> tensors;        // sorted by data_offsets
    uint64_t data_start() const { return 8 + header_bytes; }
};

// Parses and checks a whole safetensors file held in bytes[0..size): every
// rule of the reference reader. Refuses (each one line, naming the tensor
// where there is one): a file under 8 bytes; N > 100,000,000; 8 + N past
// the end; a header that is not UTF-8 JSON or not an object; __metadata__
// not a map of strings; an entry that is not {dtype, shape, data_offsets};
// an unknown dtype; a shape whose element or byte count overflows 64 bits;
// offsets that are not contiguous from 0 once sorted (a hole or an
// overlap); end - begin != numel * dtype size; trailing bytes after the
// last tensor or a buffer shorter than the offsets say.
SafetensorsHeader parse_safetensors(const uint8_t* bytes, uint64_t size, const std::string& label);

// Exact 16-bit float conversions (bit manipulation, no rounding on the way
// in): IEEE binary16 and bfloat16 to float32, subnormals, infinities and
// NaNs included. The way out rounds to nearest, ties to even (as torch's
// .to(torch::kHalf / kBFloat16)); a NaN stays a (quiet) NaN.
float half_to_float(uint16_t h);
float bf16_to_float(uint16_t b);
uint16_t float_to_half(float f);
uint16_t float_to_bf16(float f);

// An open safetensors file: mmap'd read-only (engine/packed.h's
// packed_map_file: a regular file only; truncation while mapped ends the
// process with an error line, not SIGBUS), header parsed and checked.
class SafetensorsFile {
public:
    explicit SafetensorsFile(const std::string& path);  // throws "<path>: <why>"
    ~SafetensorsFile();
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    const std::string& path() const { return path_; }
    const SafetensorsHeader& header() const { return header_; }
    // The entry named `name`, or nullptr.
    const SafetensorsEntry* find(const std::string& name) const;
    // The tensor's values as float32 (F32 copied, F16 / BF16 converted
    // exactly). Throws "<path>: tensor '<name>': dtype I64 is not a float
    // weight (F32, F16 and BF16 are read)" and "<path>: tensor '<name>':
    // element 3 is NaN (weights must be finite)" (or inf).
    std::vector<float> read_float(const SafetensorsEntry& t) const;
    // Drops the mapped pages of t's bytes from this process (madvise
    // MADV_DONTNEED; the file and the page cache are untouched, a later read
    // maps them again), so reading a checkpoint tensor by tensor keeps the
    // resident set at about one tensor, not the whole file. A hint: no error.
    void release(const SafetensorsEntry& t) const;

private:
    std::string path_;
    const uint8_t* bytes_ = nullptr;
    uint64_t size_ = 0;
    void* map_ = nullptr;
    size_t map_len_ = 0;
    SafetensorsHeader header_;
};

// A checkpoint's tensors across one file (DIR/model.safetensors) or the
// shards a DIR/model.safetensors.index.json names ({"metadata":
// {"total_size": bytes}?, "weight_map": {"<tensor>": "<shard file>"}}):
// the index must name plain file names in DIR, and every tensor of a shard
// must be in the weight map under that shard, and the reverse.
class SafetensorsCheckpoint {
public:
    // Throws "<dir>: no model.safetensors or model.safetensors.index.json"
    // and the files' own errors.
    explicit SafetensorsCheckpoint(const std::string& dir);
    // Every tensor name, sorted.
    std::vector<std::string> names() const;
    const SafetensorsEntry* find(const std::string& name) const;
    std::vector<float> read_float(const std::string& name) const;  // name must exist
    void release(const std::string& name) const;                   // SafetensorsFile::release
    // The file holding a tensor (for error lines).
    const std::string& file_of(const std::string& name) const;
    // Number of files (1, or the shards).
    size_t n_files() const { return files_.size(); }

private:
    std::vector<std::unique_ptr<SafetensorsFile>> files_;
    std::map<std::string, std::pair<size_t, const SafetensorsEntry*>> index_;
};

// One tensor to write: float32 values stored as dtype ("F32", "F16" or
// "BF16"; converted with float_to_half / float_to_bf16).
struct SafetensorsTensor {
    std::string name;
    std::string dtype = "F32";
    std::vector<uint64_t> shape;
    std::vector<float> data;  // prod(shape) values, row-major
};

// The file's bytes as the reference writer (tensor.rs `serialize`) lays
// them out: tensors ordered by descending dtype rank then by name, offsets
// contiguous from 0, compact JSON header (__metadata__ first when not
// empty; each entry's keys dtype, shape, data_offsets) padded with spaces
// to a multiple of 8 bytes. Throws "<why>" on a duplicate or empty name, a
// dtype other than F32/F16/BF16, or data whose length is not prod(shape).
std::vector<uint8_t> safetensors_serialize(const std::vector<SafetensorsTensor>& tensors,
                                           const std::map<std::string, std::string>& metadata);
// The same, written atomically (temp file, fsync, rename; engine/io.h).
// Throws "<path>: <why>".
void write_safetensors(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata);

}  // namespace mmia
