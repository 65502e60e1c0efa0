// test_data.cpp: the dataset loaders (common/data.h).
//
// Part 1 writes small IDX / CIFAR-10 fixtures (raw and gzip) into a temp
// directory and checks that they load, and that every kind of damage is
// refused with a message naming the file and the problem.
// Part 2 loads the real datasets. Run from the repo root; a missing dataset
// fails (with the fix: `make setup`) rather than skipping.
#include <doctest/doctest.h>
#include <zlib.h>

#include <array>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <stdexcept>
#include <string>
#include <unistd.h>
#include <vector>

#include "common/data.h"

using namespace mmia;
namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

namespace {

// A fresh directory under the system temp dir, removed at scope exit.
struct TempDir {
    fs::path path;
    TempDir() {
        static int counter = 0;
        path = fs::temp_directory_path() /
               ("mmia_test_data_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    std::string operator/(const std::string& name) const { return (path / name).string(); }
};

void write_bytes(const std::string& path, const Bytes& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    REQUIRE(out.good());
}

Bytes read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_gzip(const std::string& path, const Bytes& bytes) {
    gzFile f = gzopen(path.c_str(), "wb");
    REQUIRE(f != nullptr);
    REQUIRE(gzwrite(f, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
    REQUIRE(gzclose(f) == Z_OK);
}

Bytes gzip_bytes(const Bytes& bytes) {
    TempDir dir;
    write_gzip(dir / "x.gz", bytes);
    return read_bytes(dir / "x.gz");
}

void put_be32(Bytes& out, uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(uint8_t(v >> shift));
}

// An IDX image file of n images of rows x cols; pixel values follow a
// pattern so that any misplaced byte shows.
Bytes idx_images(uint32_t n, uint32_t rows, uint32_t cols, uint32_t magic = 0x00000803) {
    Bytes out;
    put_be32(out, magic);
    put_be32(out, n);
    put_be32(out, rows);
    put_be32(out, cols);
    for (uint64_t i = 0; i < uint64_t(n) * rows * cols; i++) out.push_back(uint8_t(i * 7 + 3));
    return out;
}

Bytes idx_labels(const Bytes& labels, uint32_t magic = 0x00000801) {
    Bytes out;
    put_be32(out, magic);
    put_be32(out, uint32_t(labels.size()));
    out.insert(out.end(), labels.begin(), labels.end());
    return out;
}

constexpr size_t kCifarPixels = 3 * 32 * 32;

// A CIFAR-10 batch with the given labels; in record i, the R plane is all
// i, G all 100 + i, B all 200 + i.
Bytes cifar_batch(const Bytes& labels) {
    Bytes out;
    for (size_t i = 0; i < labels.size(); i++) {
        out.push_back(labels[i]);
        for (int channel = 0; channel < 3; channel++)
            out.insert(out.end(), 1024, uint8_t(channel * 100 + i));
    }
    return out;
}

const Bytes kLabels = {3, 1, 4, 1, 5, 9, 2, 6};

// Writes the four MNIST-named IDX files (gzipped) into dir.
void write_idx_dataset(const std::string& dir) {
    fs::create_directories(dir);
    write_gzip(dir + "/train-images-idx3-ubyte.gz", idx_images(8, 4, 5));
    write_gzip(dir + "/train-labels-idx1-ubyte.gz", idx_labels(kLabels));
    write_bytes(dir + "/t10k-images-idx3-ubyte", idx_images(2, 4, 5));
    write_bytes(dir + "/t10k-labels-idx1-ubyte", idx_labels({7, 0}));
}

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "(no error)";
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

// Sets the working directory to dir for its lifetime, then restores it.
struct ChangeDir {
    fs::path saved = fs::current_path();
    explicit ChangeDir(const std::string& dir) { fs::current_path(dir); }
    ~ChangeDir() { fs::current_path(saved); }
};

}  // namespace

// --- IDX -----------------------------------------------------------------------

TEST_CASE("IDX: raw and gzip files load identically, with the right contents") {
    TempDir dir;
    const Bytes images = idx_images(8, 4, 5), labels = idx_labels(kLabels);
    write_bytes(dir / "images", images);
    write_bytes(dir / "labels", labels);
    write_gzip(dir / "images.gz", images);
    write_gzip(dir / "labels.gz", labels);

    const ImageSet raw = load_idx(dir / "images", dir / "labels");
    const ImageSet gz = load_idx(dir / "images.gz", dir / "labels.gz");
    CHECK(raw.n == 8);
    CHECK(raw.channels == 1);
    CHECK(raw.height == 4);
    CHECK(raw.width == 5);
    CHECK(raw.n_classes == 10);
    CHECK(raw.labels == kLabels);
    CHECK(raw.pixels == Bytes(images.begin() + 16, images.end()));
    CHECK(gz.n == raw.n);
    CHECK(gz.pixels == raw.pixels);
    CHECK(gz.labels == raw.labels);

    const ImageSet parsed = parse_idx(images.data(), images.size(), labels.data(), labels.size(), "t");
    CHECK(parsed.pixels == raw.pixels);
    CHECK(parsed.labels == raw.labels);
}

TEST_CASE("gzip is detected by its magic bytes, not the file name") {
    TempDir dir;
    const Bytes images = idx_images(8, 4, 5);
    write_gzip(dir / "gzipped_without_suffix", images);
    write_bytes(dir / "raw_with_suffix.gz", images);
    CHECK(read_file_maybe_gzip(dir / "gzipped_without_suffix") == images);
    CHECK(read_file_maybe_gzip(dir / "raw_with_suffix.gz") == images);
}

TEST_CASE("IDX: bad magic") {
    const Bytes labels = idx_labels(kLabels);
    SUBCASE("an image file with a label magic") {
        const Bytes images = idx_images(8, 4, 5, 0x00000801);
        CHECK_THROWS_WITH_AS(parse_idx(images.data(), images.size(), labels.data(), labels.size(), "x"),
                             "x images: bad magic 0x00000801 (expected 0x00000803 for an IDX image file)",
                             std::runtime_error);
    }
    SUBCASE("a label file with an image magic") {
        const Bytes images = idx_images(8, 4, 5);
        const Bytes bad_labels = idx_labels(kLabels, 0x00000803);
        CHECK_THROWS_WITH_AS(parse_idx(images.data(), images.size(), bad_labels.data(), bad_labels.size(), "x"),
                             "x labels: bad magic 0x00000803 (expected 0x00000801 for an IDX label file)",
                             std::runtime_error);
    }
    SUBCASE("the file path leads the message") {
        TempDir dir;
        write_bytes(dir / "labels-as-images", labels);
        write_bytes(dir / "labels", labels);
        CHECK(error_of([&] { load_idx(dir / "labels-as-images", dir / "labels"); }) ==
              dir / "labels-as-images" +
                  ": bad magic 0x00000801 (expected 0x00000803 for an IDX image file)");
    }
}

TEST_CASE("IDX: wrong dimensions") {
    const Bytes labels = idx_labels(kLabels);
    auto images_error = [&](const Bytes& images) {
        return error_of([&] { parse_idx(images.data(), images.size(), labels.data(), labels.size(), "x"); });
    };
    CHECK(contains(images_error(idx_images(8, 0, 5)), "image size 0x5 is outside 1..4096"));
    CHECK(contains(images_error(idx_images(8, 4, 0)), "image size 4x0 is outside 1..4096"));
    CHECK(contains(images_error(idx_images(1, 4097, 1)), "image size 4097x1 is outside 1..4096"));
    CHECK(contains(images_error(idx_images(0, 4, 5)), "x images: holds no images"));
    Bytes huge_count;  // header only: the count is refused before the length is looked at
    put_be32(huge_count, 0x00000803);
    put_be32(huge_count, 10'000'001);
    put_be32(huge_count, 28);
    put_be32(huge_count, 28);
    CHECK(contains(images_error(huge_count), "10000001 images is more than the cap of 10000000"));
    Bytes short_header(10, 0);
    CHECK(contains(images_error(short_header), "too short for an IDX image header (10 bytes, need 16)"));
}

TEST_CASE("IDX: truncated and trailing bytes") {
    Bytes images = idx_images(8, 4, 5);
    Bytes labels = idx_labels(kLabels);
    auto error = [&] {
        return error_of([&] { parse_idx(images.data(), images.size(), labels.data(), labels.size(), "x"); });
    };
    SUBCASE("images one byte short") {
        images.pop_back();
        CHECK(error() == "x images: truncated: the header says 8 images of 4x5 (176 bytes) but the "
                         "file has 175 bytes");
    }
    SUBCASE("images one byte long") {
        images.push_back(0);
        CHECK(error() == "x images: 1 trailing bytes after the 8 images of 4x5 the header says (176 bytes)");
    }
    SUBCASE("labels short") {
        labels.pop_back();
        CHECK(contains(error(), "x labels: truncated"));
    }
    SUBCASE("labels long") {
        labels.push_back(1);
        CHECK(contains(error(), "x labels: 1 trailing bytes"));
    }
}

TEST_CASE("IDX: image and label counts must match") {
    TempDir dir;
    write_bytes(dir / "images", idx_images(8, 4, 5));
    write_bytes(dir / "labels", idx_labels({1, 2, 3}));
    CHECK(error_of([&] { load_idx(dir / "images", dir / "labels"); }) ==
          dir / "images" + " and " + dir / "labels" + ": 8 images but 3 labels");
}

TEST_CASE("IDX: a label outside 0..9") {
    const Bytes images = idx_images(3, 2, 2), labels = idx_labels({0, 10, 9});
    CHECK(error_of([&] { parse_idx(images.data(), images.size(), labels.data(), labels.size(), "x"); }) ==
          "x labels: label 10 of item 1 is outside 0..9");
}

// --- gzip and file errors -----------------------------------------------------

TEST_CASE("gzip: corrupt, truncated, trailing data, several members") {
    TempDir dir;
    const Bytes plain = idx_images(8, 4, 5);
    const Bytes gz = gzip_bytes(plain);
    REQUIRE(gz.size() > 30);

    SUBCASE("a flipped bit in the compressed data") {
        Bytes bad = gz;
        bad[12] ^= 0x40;  // inside the deflate data (after the 10-byte header)
        write_bytes(dir / "bad.gz", bad);
        const std::string error = error_of([&] { read_file_maybe_gzip(dir / "bad.gz"); });
        CHECK(contains(error, dir / "bad.gz" + ": "));
        CHECK(contains(error, "corrupt gzip"));
    }
    SUBCASE("a wrong CRC in the trailer") {
        Bytes bad = gz;
        bad[bad.size() - 8] ^= 0x01;
        write_bytes(dir / "crc.gz", bad);
        CHECK(error_of([&] { read_file_maybe_gzip(dir / "crc.gz"); }) ==
              dir / "crc.gz" + ": corrupt gzip (incorrect data check)");
    }
    SUBCASE("cut short") {
        for (size_t keep : {size_t(3), gz.size() / 2, gz.size() - 1}) {
            CAPTURE(keep);
            write_bytes(dir / "cut.gz", Bytes(gz.begin(), gz.begin() + long(keep)));
            CHECK(error_of([&] { read_file_maybe_gzip(dir / "cut.gz"); }) ==
                  dir / "cut.gz" + ": truncated gzip (the compressed stream ends early)");
        }
    }
    SUBCASE("garbage after the stream") {
        Bytes bad = gz;
        bad.push_back(0);
        write_bytes(dir / "trail.gz", bad);
        CHECK(error_of([&] { read_file_maybe_gzip(dir / "trail.gz"); }) ==
              dir / "trail.gz" + ": 1 trailing bytes after the gzip stream");
    }
    SUBCASE("two members decode to their concatenation (like `cat a.gz b.gz`)") {
        const Bytes more = {1, 2, 3, 4, 5};
        Bytes both = gz;
        const Bytes gz_more = gzip_bytes(more);
        both.insert(both.end(), gz_more.begin(), gz_more.end());
        write_bytes(dir / "both.gz", both);
        Bytes expected = plain;
        expected.insert(expected.end(), more.begin(), more.end());
        CHECK(read_file_maybe_gzip(dir / "both.gz") == expected);
    }
}

TEST_CASE("files: missing, and the size cap for raw and gzip files") {
    TempDir dir;
    CHECK(error_of([&] { read_file_maybe_gzip(dir / "nope"); }) ==
          dir / "nope" + ": cannot open (No such file or directory)");
    CHECK(contains(error_of([&] { load_idx(dir / "nope", dir / "nope2"); }), dir / "nope" + ": cannot open"));
    CHECK(contains(error_of([&] { read_file_maybe_gzip(dir.path.string()); }), "not a regular file"));

    const Bytes zeros(100'000, 0);
    write_bytes(dir / "raw", zeros);
    write_gzip(dir / "bomb.gz", zeros);  // ~100 bytes that inflate to 100 KB
    CHECK(read_file_maybe_gzip(dir / "bomb.gz", zeros.size()) == zeros);  // exactly at the cap is fine
    CHECK(error_of([&] { read_file_maybe_gzip(dir / "bomb.gz", 50'000); }) ==
          dir / "bomb.gz" + ": decompresses to more than the cap of 50000 bytes");
    CHECK(error_of([&] { read_file_maybe_gzip(dir / "raw", 50'000); }) ==
          dir / "raw" + ": file of 100000 bytes is larger than the cap of 50000 bytes");
}

// --- CIFAR-10 -------------------------------------------------------------------

TEST_CASE("CIFAR-10: batches load raw or gzip, concatenated, planes in CHW order") {
    TempDir dir;
    write_bytes(dir / "a.bin", cifar_batch({0, 9, 4}));
    write_gzip(dir / "b.bin.gz", cifar_batch({7, 7}));
    const ImageSet set = load_cifar({dir / "a.bin", dir / "b.bin.gz"});
    CHECK(set.n == 5);
    CHECK(set.channels == 3);
    CHECK(set.height == 32);
    CHECK(set.width == 32);
    CHECK(set.labels == Bytes{0, 9, 4, 7, 7});
    REQUIRE(set.pixels.size() == 5 * kCifarPixels);
    // Image 2 (third of batch a): R plane all 2, G all 102, B all 202.
    const uint8_t* image2 = set.pixels.data() + 2 * kCifarPixels;
    CHECK(image2[0] == 2);
    CHECK(image2[1023] == 2);
    CHECK(image2[1024] == 102);
    CHECK(image2[2048] == 202);
    CHECK(image2[3071] == 202);
    // Image 4 is record 1 of batch b.
    CHECK(set.pixels[4 * kCifarPixels + 1500] == 101);

    // Batches are read concurrently; an error still names its own file.
    write_bytes(dir / "bad.bin", cifar_batch({0, 10}));
    CHECK(error_of([&] { load_cifar({dir / "a.bin", dir / "bad.bin", dir / "b.bin.gz"}); }) ==
          dir / "bad.bin" + ": label 10 of item 1 is outside 0..9");
}

TEST_CASE("CIFAR-10: short record, bad label, empty file") {
    Bytes batch = cifar_batch({1, 2});
    SUBCASE("short last record") {
        batch.resize(batch.size() - 5);
        CHECK(error_of([&] { parse_cifar_batch(batch.data(), batch.size(), "b"); }) ==
              "b: length 6141 is not a whole number of 3073-byte records (short last record of 3068 bytes)");
    }
    SUBCASE("a label outside 0..9") {
        batch[3073] = 10;
        CHECK(error_of([&] { parse_cifar_batch(batch.data(), batch.size(), "b"); }) ==
              "b: label 10 of item 1 is outside 0..9");
    }
    SUBCASE("empty, also as an empty gzip") {
        CHECK(error_of([&] { parse_cifar_batch(nullptr, 0, "b"); }) == "b: empty file");
        TempDir dir;
        write_gzip(dir / "empty.bin.gz", {});
        CHECK(error_of([&] { load_cifar({dir / "empty.bin.gz"}); }) == dir / "empty.bin.gz" + ": empty file");
    }
}

// --- Named datasets -------------------------------------------------------------

TEST_CASE("load_dataset: unknown name lists the known ones") {
    CHECK(error_of([] { load_dataset("imagenet"); }) ==
          "unknown dataset \"imagenet\" (known: mnist, fashion, cifar10)");
    CHECK(error_of([] { dataset_dir("MNIST"); }) ==
          "unknown dataset \"MNIST\" (known: mnist, fashion, cifar10)");
}

TEST_CASE("load_dataset: an explicit directory, files raw or .gz") {
    TempDir dir;
    write_idx_dataset(dir / "m");
    const Dataset d = load_dataset("mnist", dir / "m");
    CHECK(d.name == "mnist");
    CHECK(d.train.n == 8);
    CHECK(d.train.labels == kLabels);
    CHECK(d.test.n == 2);
    CHECK(d.test.labels == Bytes{7, 0});
    CHECK(d.mean == std::vector<float>{0.1307f});
    CHECK(d.std == std::vector<float>{0.3081f});
    CHECK(d.class_names.size() == 10);
    CHECK(dataset_dir("mnist", dir / "m") == dir / "m");

    const Dataset f = load_dataset("fashion", dir / "m");  // same file names
    CHECK(f.mean == std::vector<float>{0.2860f});
    CHECK(f.class_names[9] == "Ankle boot");
}

TEST_CASE("load_dataset: CIFAR-10 batches and batches.meta.txt") {
    TempDir dir;
    for (int i = 1; i <= 5; i++) write_gzip(dir / ("data_batch_" + std::to_string(i) + ".bin.gz"), cifar_batch({uint8_t(i)}));
    write_bytes(dir / "test_batch.bin", cifar_batch({0, 1}));
    Dataset d = load_dataset("cifar10", dir.path.string());
    CHECK(d.train.n == 5);
    CHECK(d.train.labels == Bytes{1, 2, 3, 4, 5});
    CHECK(d.test.n == 2);
    CHECK(d.mean.size() == 3);
    CHECK(d.std.size() == 3);
    CHECK(d.class_names[0] == "airplane");  // no meta file: the standard list

    const std::string names = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n\n";
    write_bytes(dir / "batches.meta.txt", Bytes(names.begin(), names.end()));
    d = load_dataset("cifar10", dir.path.string());
    CHECK(d.class_names == std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"});

    write_bytes(dir / "batches.meta.txt", Bytes{'a', '\n', 'b', '\n'});
    CHECK(error_of([&] { load_dataset("cifar10", dir.path.string()); }) ==
          dir / "batches.meta.txt" + ": expected 10 class names, found 2");
}

TEST_CASE("load_dataset: missing files name every directory tried and the fix") {
    TempDir dir;
    SUBCASE("no such directory") {
        const std::string error = error_of([&] { load_dataset("mnist", dir / "absent"); });
        CHECK(contains(error, "dataset mnist: files not found; looked in:\n  " + dir / "absent" +
                                  ": no such directory"));
        CHECK(contains(error, "make setup"));
        CHECK(error_of([&] { dataset_dir("mnist", dir / "absent"); }) == error);
    }
    SUBCASE("a directory with some of the files") {
        write_idx_dataset(dir / "m");
        fs::remove(dir / "m/t10k-labels-idx1-ubyte");
        CHECK(contains(error_of([&] { load_dataset("mnist", dir / "m"); }),
                       dir / "m" + ": missing t10k-labels-idx1-ubyte[.gz]"));
    }
    SUBCASE("default locations, then $MMIA_DATA_DIR") {
        fs::create_directories(dir / "cwd");
        ChangeDir in_empty_dir(dir / "cwd");  // so that data/mnist is not found
        unsetenv("MMIA_DATA_DIR");
        const std::string error = error_of([] { load_dataset("cifar10"); });
        CHECK(contains(error, "\n  data/cifar10: no such directory\n  ../shared/data/cifar-10: "
                              "no such directory\n  data/cifar-10-batches-bin: no such directory\n"));

        write_idx_dataset(dir / "root/mnist");
        setenv("MMIA_DATA_DIR", (dir / "root").c_str(), 1);
        CHECK(dataset_dir("mnist") == dir / "root" + "/mnist");
        CHECK(load_dataset("mnist").train.n == 8);
        unsetenv("MMIA_DATA_DIR");
    }
}

// --- The real datasets ------------------------------------------------------------

namespace {

Dataset load_real(const std::string& name) {
    try {
        return load_dataset(name);
    } catch (const std::runtime_error& e) {
        FAIL("the real " << name << " data is needed for this test: run `make setup` from the "
                                    "repo root, and run the tests from there.\n"
                         << std::string(e.what()));
    }
    return {};
}

std::array<int64_t, 10> label_counts(const ImageSet& set) {
    std::array<int64_t, 10> counts{};
    for (uint8_t label : set.labels) counts[label]++;
    return counts;
}

// Mean and standard deviation of pixel/255 for one channel over all images.
std::pair<double, double> channel_stats(const ImageSet& set, int channel) {
    const size_t plane = size_t(set.height) * set.width, image = plane * set.channels;
    double sum = 0, sum_sq = 0;
    for (int64_t i = 0; i < set.n; i++) {
        const uint8_t* p = set.pixels.data() + size_t(i) * image + size_t(channel) * plane;
        for (size_t j = 0; j < plane; j++) {
            const double v = p[j] / 255.0;
            sum += v;
            sum_sq += v * v;
        }
    }
    const double count = double(set.n) * plane, mean = sum / count;
    return {mean, std::sqrt(sum_sq / count - mean * mean)};
}

// The normalisation constants are the train set's own statistics.
void check_normalisation(const Dataset& d) {
    for (int c = 0; c < d.train.channels; c++) {
        CAPTURE(c);
        const auto [mean, std] = channel_stats(d.train, c);
        CHECK(mean == doctest::Approx(d.mean[size_t(c)]).epsilon(0.001));
        CHECK(std == doctest::Approx(d.std[size_t(c)]).epsilon(0.001));
    }
}

void check_shape(const ImageSet& set, int64_t n, int channels, int side) {
    CHECK(set.n == n);
    CHECK(set.channels == channels);
    CHECK(set.height == side);
    CHECK(set.width == side);
    CHECK(set.labels.size() == size_t(n));
    CHECK(set.pixels.size() == size_t(n) * channels * side * side);
}

}  // namespace

TEST_CASE("real data: MNIST") {
    const Dataset d = load_real("mnist");
    check_shape(d.train, 60000, 1, 28);
    check_shape(d.test, 10000, 1, 28);
    CHECK(int(d.train.labels[0]) == 5);
    CHECK(int(d.test.labels[0]) == 7);
    // The published per-digit counts.
    CHECK(label_counts(d.train) ==
          std::array<int64_t, 10>{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949});
    CHECK(label_counts(d.test) ==
          std::array<int64_t, 10>{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009});
    check_normalisation(d);
}

TEST_CASE("real data: Fashion-MNIST") {
    const Dataset d = load_real("fashion");
    check_shape(d.train, 60000, 1, 28);
    check_shape(d.test, 10000, 1, 28);
    CHECK(int(d.train.labels[0]) == 9);  // an ankle boot
    for (int64_t count : label_counts(d.train)) CHECK(count == 6000);
    for (int64_t count : label_counts(d.test)) CHECK(count == 1000);
    check_normalisation(d);
}

TEST_CASE("real data: CIFAR-10") {
    const Dataset d = load_real("cifar10");
    check_shape(d.train, 50000, 3, 32);
    check_shape(d.test, 10000, 3, 32);
    CHECK(int(d.train.labels[0]) == 6);  // a frog
    CHECK(int(d.test.labels[0]) == 3);   // a cat
    for (int64_t count : label_counts(d.train)) CHECK(count == 5000);
    for (int64_t count : label_counts(d.test)) CHECK(count == 1000);
    CHECK(d.class_names == std::vector<std::string>{"airplane", "automobile", "bird", "cat", "deer",
                                                    "dog", "frog", "horse", "ship", "truck"});
    check_normalisation(d);  // per channel: also checks the R, G, B plane order
}
