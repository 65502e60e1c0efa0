// data.h: loaders for the image datasets the models train on: MNIST and
// Fashion-MNIST (IDX files) and CIFAR-10 (binary batches), each file raw or
// gzip-compressed. Plain C++17 + zlib, no LibTorch, so tests and fuzz targets
// build in seconds.
//
// Every parser checks the whole file before trusting it (magic, dimensions,
// exact length, label range) and throws std::runtime_error("<file>: <why>").
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mmia {

// n images, each stored CHW (channel planes of row-major height x width),
// raw bytes 0..255, and one label per image.
struct ImageSet {
    int64_t n = 0;
    int channels = 0, height = 0, width = 0;
    std::vector<uint8_t> pixels;  // n * channels * height * width
    std::vector<uint8_t> labels;  // n, each < n_classes
    int n_classes = 10;
};

struct Dataset {
    std::string name;               // "mnist", "fashion", "cifar10"
    ImageSet train, test;
    std::vector<float> mean, std;   // per channel, of pixel/255: the normalisation the models use
    std::vector<std::string> class_names;
};

// Caps that keep a hostile or corrupt file from asking for absurd memory.
constexpr size_t kMaxFileBytes = size_t(1) << 30;  // 1 GiB, read or decompressed
constexpr int64_t kMaxIdxImages = 10'000'000;
constexpr int kMaxIdxSide = 4096;                     // rows and cols, each

// --- Parsing from memory (shared by the file loaders and the fuzz targets) --

// An IDX image file (magic 0x00000803: u8, 3 dims n x rows x cols) and its
// IDX label file (magic 0x00000801: u8, 1 dim n). `what` names the pair in
// messages ("<what> images: ...", "<what> labels: ...").
ImageSet parse_idx(const uint8_t* images, size_t images_len,
                   const uint8_t* labels, size_t labels_len, const std::string& what);

// One CIFAR-10 binary batch: records of 1 label byte + 3072 pixel bytes
// (R, G, B planes of 32x32). `what` names the file in messages.
ImageSet parse_cifar_batch(const uint8_t* data, size_t len, const std::string& what);

// Decompresses a whole gzip stream (one or more members) held in memory.
// Throws on corrupt or truncated data, on trailing bytes that are not another
// gzip member, and when the output would exceed max_bytes.
std::vector<uint8_t> gunzip(const uint8_t* data, size_t len, const std::string& what,
                            size_t max_bytes = kMaxFileBytes);

// --- Files -------------------------------------------------------------------

// A regular file's bytes; throws "<path>: <why>" if it cannot be opened,
// is not a regular file (a FIFO or device is refused without waiting: the
// open is O_NONBLOCK and the type is checked before any read), is larger
// than max_bytes, or shrinks while read.
std::vector<uint8_t> read_file(const std::string& path, size_t max_bytes);

// The file's bytes, decompressed when it starts with the gzip magic 1f 8b
// (whatever its name). Throws if it cannot be read, is corrupt, or is (or
// decompresses to) more than max_bytes.
std::vector<uint8_t> read_file_maybe_gzip(const std::string& path,
                                          size_t max_bytes = kMaxFileBytes);

ImageSet load_idx(const std::string& images_path, const std::string& labels_path);

// Reads and concatenates CIFAR-10 batches in the given order.
ImageSet load_cifar(const std::vector<std::string>& batch_paths);

// --- Named datasets ------------------------------------------------------------

// Loads "mnist", "fashion" or "cifar10" from the first directory that holds
// all of its files (each file raw or with .gz), trying in order:
//   mnist:   data/mnist
//   fashion: data/fashion, /usr/share/datasets/fashion-mnist
//   cifar10: data/cifar10, ../shared/data/cifar-10, data/cifar-10-batches-bin
// then $MMIA_DATA_DIR/<name> if that variable is set. Relative paths are from
// the current directory. A non-empty data_dir is the only directory tried.
// MNIST and Fashion-MNIST share file names, sizes and format: a directory
// holding the other one's files (recognised by a 64-bit FNV-1a hash of their
// label bytes, known for both) is refused, "<dir>: these are the Fashion-MNIST
// files (their labels are Fashion-MNIST's), not mnist (MNIST); ...".
// Files of neither (a subset, a test fixture) are read as the name says.
Dataset load_dataset(const std::string& name, const std::string& data_dir = "");

// Every file load_dataset(name, data_dir) reads, as found (raw or .gz),
// for the programs' output-is-not-an-input check; throws as load_dataset
// does when no directory has the files.
std::vector<std::string> dataset_files(const std::string& name, const std::string& data_dir = "");

// The directory load_dataset(name, data_dir) reads from; throws the same
// error as load_dataset (directories tried, `make setup`) when none has the files.
std::string dataset_dir(const std::string& name, const std::string& data_dir = "");

}  // namespace mmia
