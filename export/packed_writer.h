// packed_writer.h: write a packed model file (engine/format.h,
// docs/FORMAT.md). The one writer of the format; the engines only read it.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/format.h"

struct PackedTensor {
    std::string name;              // <= 55 bytes, printable ASCII, unique
    std::vector<uint32_t> shape;   // 1..4 dims, each >= 1
    std::vector<float> data;       // row-major, prod(shape) values
};

// A tensor whose values come later, from a PackedTensorSource.
struct PackedTensorInfo {
    std::string name;             // as PackedTensor
    std::vector<uint32_t> shape;  // as PackedTensor
};
// The values of tensor i (row-major, prod(shape) floats), asked for once
// per tensor, in order; the reference need stay valid only until the next
// call. A source may throw std::runtime_error("<its file>: <why>"); the
// writer removes its temporary and passes that error on unchanged.
using PackedTensorSource = std::function<const std::vector<float>&(size_t i)>;

// Write the tensors of `infos` with the header fields of header_template
// (kind, input shape, normalisation, hyperparameters), streaming: each
// tensor's values are asked of `source`, checked, checksummed and written
// before the next is asked for, so memory holds one tensor (plus a 1 MiB
// write buffer), never the model. Fills in magic, version, n_tensors,
// file_bytes and checksum itself (the header goes in last, at offset 0).
// Tensor data is 64-byte aligned, in the order given. Written to
// path + ".tmp.<pid>" (engine/io.h's temporary), fsync'd, renamed over path.
// Throws std::runtime_error("<path>: <why>") on bad tensors (a NaN or inf
// element or header float included: "tensor 'head.bias': element 3 is
// NaN (weights must be finite numbers)") or
// on any I/O failure (disk full included: "write failed: No space left on
// device") and leaves no file behind (path keeps what it held).
// tokenizer: a BPE tokenizer blob (docs/FORMAT.md) for a language model
// whose header says BPE (hp[24] = 1), stored after the tensors as the last
// bytes of the file, 64-byte aligned, hp[28] = its offset / 64 and hp[29] =
// its length; empty = none (hp[28] = hp[29] = 0). Not checked here beyond
// its size: callers write blobs bpe_blob_write made (it checks them).
void write_packed_model_stream(const std::string& path, const MmiaHeader& header_template,
                               const std::vector<PackedTensorInfo>& infos, const PackedTensorSource& source,
                               const std::vector<uint8_t>& tokenizer = {});

// The same for tensors already in memory.
void write_packed_model(const std::string& path, const MmiaHeader& header_template,
                        const std::vector<PackedTensor>& tensors, const std::vector<uint8_t>& tokenizer = {});

// The same file as bytes in memory (tests and fuzz seeds use it). Throws
// std::runtime_error("<why>") on bad tensors.
std::vector<uint8_t> pack_model_bytes(const MmiaHeader& header_template,
                                      const std::vector<PackedTensor>& tensors,
                                      const std::vector<uint8_t>& tokenizer = {});
