// test_cnn_engine.cpp: the CNN engine (cnn.cpp, engine/kernels.h image ops).
//   - each op (conv as im2col + packed GEMM, max pool, global average pool,
//     activations, dense) against a plain double-precision loop written here
//   - whole random models, written with the packed writer, against a naive
//     double forward of the format's spec
//   - every bad model / input / command line, through the library and the
//     ./cnn binary (run from the repo root; CNN_BIN overrides the path)
// The LibTorch side (export, batch norm folding, parity) is test_cnn_parity.
#include <doctest/doctest.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/batch.h"
#include "engine/cnn.h"
#include "engine/format.h"
#include "engine/io.h"
#include "engine/kernels.h"
#include "export/packed_writer.h"
#include "tests/cli_check.h"
#include "tests/engine_rows.h"

namespace {

std::string cnn_tmp_dir() {
    static std::string dir;
    if (dir.empty()) {
        char tmpl[] = "/tmp/test_cnn_engine_XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        dir = tmpl;
        atexit([] {
            if (!getenv("KEEP_TEST_FILES")) (void)!system(("rm -rf " + cli_quote(dir)).c_str());
        });
    }
    return dir;
}
std::string tmp(const std::string& name) { return cnn_tmp_dir() + "/" + name; }

std::string cnn_bin() {
    const char* b = getenv("CNN_BIN");
    return b ? b : "./cnn";
}
std::string mamba_bin() {
    const char* b = getenv("MAMBA_BIN");
    return b ? b : "./mamba";
}

std::vector<float> uniform(std::mt19937& g, size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
}

void write_file(const std::string& p, const void* data, size_t n) {
    FILE* f = fopen(p.c_str(), "wb");
    REQUIRE(f != nullptr);
    if (n) REQUIRE(fwrite(data, 1, n, f) == n);
    REQUIRE(fclose(f) == 0);
}
std::vector<uint8_t> read_file(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// --- plain double references (layout as in the engine: [C][H][W]) ----------

std::vector<double> ref_conv(const std::vector<double>& x, const float* w, const float* b, int C, int H, int W, int O,
                             int K, int pad) {
    int Ho = H + 2 * pad - K + 1, Wo = W + 2 * pad - K + 1;
    std::vector<double> out(size_t(O) * Ho * Wo);
    for (int o = 0; o < O; o++)
        for (int y = 0; y < Ho; y++)
            for (int xx = 0; xx < Wo; xx++) {
                double s = b ? b[o] : 0.0;
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < K; ky++)
                        for (int kx = 0; kx < K; kx++) {
                            int iy = y + ky - pad, ix = xx + kx - pad;
                            if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                            s += double(w[((o * C + c) * K + ky) * K + kx]) * x[(size_t(c) * H + iy) * W + ix];
                        }
                out[(size_t(o) * Ho + y) * Wo + xx] = s;
            }
    return out;
}

std::vector<double> ref_maxpool(const std::vector<double>& x, int C, int H, int W, int s) {
    int Ho = H / s, Wo = W / s;
    std::vector<double> out(size_t(C) * Ho * Wo, -INFINITY);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < Ho * s; y++)
            for (int xx = 0; xx < Wo * s; xx++) {
                double& o = out[(size_t(c) * Ho + y / s) * Wo + xx / s];
                o = std::max(o, x[(size_t(c) * H + y) * W + xx]);
            }
    return out;
}

double ref_act(double v, int act) {
    if (act == MMIA_ACT_RELU) return v > 0 ? v : 0;
    if (act == MMIA_ACT_TANH) return std::tanh(v);
    if (act == MMIA_ACT_GELU) return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
    return v;
}

double max_diff(const float* got, const std::vector<double>& want) {
    double m = 0;
    for (size_t i = 0; i < want.size(); i++) m = std::max(m, std::fabs(double(got[i]) - want[i]));
    return m;
}

// --- random models ------------------------------------------------------------

struct Layer {
    int op, act = MMIA_ACT_NONE, out = 0, kernel = 0, arg = 0;  // arg: conv padding, maxpool window
};

struct Net {
    int C = 3, H = 12, W = 11, nc = 10;
    float mean[4] = {0.49f, 0.48f, 0.45f, 0.5f}, sd[4] = {0.25f, 0.24f, 0.26f, 0.3f};
    std::vector<Layer> layers;
    std::vector<PackedTensor> tensors;
    const std::vector<float>& t(const std::string& name) const {
        for (const auto& x : tensors)
            if (x.name == name) return x.data;
        FAIL("no tensor " << name);
        static std::vector<float> none;
        return none;
    }
};

// conv 3x3 pad 1 relu -> maxpool 2 -> conv 5x5 pad 2 tanh -> maxpool 3 (floor)
// -> flatten -> dense 17 gelu -> dense nc: every op, leftover panel columns
// and GEMM rows, windows that drop edge pixels.
Net small_net() {
    Net n;
    n.layers = {{MMIA_CNN_CONV, MMIA_ACT_RELU, 9, 3, 1}, {MMIA_CNN_MAXPOOL, 0, 0, 0, 2},
                {MMIA_CNN_CONV, MMIA_ACT_TANH, 13, 5, 2}, {MMIA_CNN_MAXPOOL, 0, 0, 0, 3},
                {MMIA_CNN_FLATTEN},                   {MMIA_CNN_DENSE, MMIA_ACT_GELU, 17},
                {MMIA_CNN_DENSE, MMIA_ACT_NONE, 10}};
    return n;
}

// conv 3x3 pad 1 -> global average pool -> dense nc (the mambaris-cnn shape)
Net gap_net() {
    Net n;
    n.C = 1, n.H = 7, n.W = 7;
    n.layers = {{MMIA_CNN_CONV, MMIA_ACT_RELU, 24, 3, 1}, {MMIA_CNN_GLOBAL_AVG_POOL}, {MMIA_CNN_DENSE, 0, 10}};
    return n;
}

void fill_tensors(Net& n, unsigned seed) {
    std::mt19937 g(seed);
    n.tensors.clear();
    int C = n.C, H = n.H, W = n.W;
    for (size_t i = 0; i < n.layers.size(); i++) {
        Layer& l = n.layers[i];
        std::string p = "layers." + std::to_string(i) + ".";
        if (l.op == MMIA_CNN_CONV) {
            float r = 1.0f / std::sqrt(float(C * l.kernel * l.kernel));
            n.tensors.push_back({p + "weight", {uint32_t(l.out), uint32_t(C), uint32_t(l.kernel), uint32_t(l.kernel)},
                                 uniform(g, size_t(l.out) * C * l.kernel * l.kernel, -r, r)});
            n.tensors.push_back({p + "bias", {uint32_t(l.out)}, uniform(g, l.out, -0.2f, 0.2f)});
            C = l.out, H += 2 * l.arg - l.kernel + 1, W += 2 * l.arg - l.kernel + 1;
        } else if (l.op == MMIA_CNN_MAXPOOL) {
            H /= l.arg, W /= l.arg;
        } else if (l.op == MMIA_CNN_FLATTEN) {
            C *= H * W, H = W = 1;
        } else if (l.op == MMIA_CNN_GLOBAL_AVG_POOL) {
            H = W = 1;
        } else if (l.op == MMIA_CNN_DENSE) {
            float r = 1.0f / std::sqrt(float(C));
            n.tensors.push_back({p + "weight", {uint32_t(l.out), uint32_t(C)}, uniform(g, size_t(l.out) * C, -r, r)});
            n.tensors.push_back({p + "bias", {uint32_t(l.out)}, uniform(g, l.out, -0.2f, 0.2f)});
            C = l.out;
        }
    }
}

MmiaHeader header_of(const Net& n) {
    MmiaHeader h;
    std::memset(&h, 0, sizeof h);
    h.kind = MMIA_KIND_CNN;
    h.in_channels = n.C, h.in_height = n.H, h.in_width = n.W, h.n_classes = n.nc;
    for (int i = 0; i < 4; i++) h.in_mean[i] = n.mean[i], h.in_std[i] = n.sd[i];
    h.hp[MMIA_CNN_HP_N_LAYERS] = int32_t(n.layers.size());
    for (size_t i = 0; i < n.layers.size(); i++) {
        h.hp[MMIA_CNN_HP_OP(i)] = n.layers[i].op | n.layers[i].act << 8;
        h.hp[MMIA_CNN_HP_ARG(i)] = n.layers[i].op == MMIA_CNN_CONV || n.layers[i].op == MMIA_CNN_MAXPOOL ? n.layers[i].arg : 0;
    }
    return h;
}

std::string write_net(const Net& n, const std::string& name) {
    std::string p = tmp(name);
    write_packed_model(p, header_of(n), n.tensors);
    return p;
}

// The forward pass of docs/FORMAT.md (CNN), in double, one image.
std::vector<double> ref_forward(const Net& n, const float* img) {
    int C = n.C, H = n.H, W = n.W;
    std::vector<double> x(size_t(C) * H * W);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < H * W; i++) x[size_t(c) * H * W + i] = (double(img[c * H * W + i]) - n.mean[c]) / n.sd[c];
    for (size_t i = 0; i < n.layers.size(); i++) {
        const Layer& l = n.layers[i];
        std::string p = "layers." + std::to_string(i) + ".";
        if (l.op == MMIA_CNN_CONV) {
            x = ref_conv(x, n.t(p + "weight").data(), n.t(p + "bias").data(), C, H, W, l.out, l.kernel, l.arg);
            for (auto& v : x) v = ref_act(v, l.act);
            C = l.out, H += 2 * l.arg - l.kernel + 1, W += 2 * l.arg - l.kernel + 1;
        } else if (l.op == MMIA_CNN_MAXPOOL) {
            x = ref_maxpool(x, C, H, W, l.arg);
            H /= l.arg, W /= l.arg;
        } else if (l.op == MMIA_CNN_GLOBAL_AVG_POOL) {
            std::vector<double> y(C, 0.0);
            for (int c = 0; c < C; c++) {
                for (int k = 0; k < H * W; k++) y[c] += x[size_t(c) * H * W + k];
                y[c] /= H * W;
            }
            x = y, H = W = 1;
        } else if (l.op == MMIA_CNN_FLATTEN) {
            C *= H * W, H = W = 1;
        } else if (l.op == MMIA_CNN_DENSE) {
            const auto& w = n.t(p + "weight");
            const auto& b = n.t(p + "bias");
            std::vector<double> y(l.out);
            for (int o = 0; o < l.out; o++) {
                double s = b[o];
                for (int k = 0; k < C; k++) s += double(w[size_t(o) * C + k]) * x[k];
                y[o] = ref_act(s, l.act);
            }
            x = y, C = l.out;
        }
    }
    return x;
}

std::vector<float> random_images(const Net& n, int count, unsigned seed) {
    std::mt19937 g(seed);
    return uniform(g, size_t(count) * n.C * n.H * n.W, 0.0f, 1.0f);
}

std::string open_error(const std::string& path) {
    CnnModel m;
    char err[512];
    if (cnn_open(&m, path.c_str(), err, sizeof err) == 0) {
        cnn_close(&m);
        return "";
    }
    return err;
}

// Library and CLI must both refuse model file `path` with `needle`.
void check_bad_model(const std::string& path, const std::string& needle) {
    std::string err = open_error(path);
    INFO("library error: " << err);
    CHECK(err.find(needle) != std::string::npos);
    CHECK(err.rfind(path + ": ", 0) == 0);
    Net n = small_net();
    auto img = random_images(n, 2, 7);
    std::string input = tmp("good_input.bin");
    write_file(input, img.data(), img.size() * 4);
    cli_check_fails(cnn_bin(), cli_quote(path) + " " + cli_quote(input), needle, cnn_tmp_dir());
}

void wr32(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }
void wr64(std::vector<uint8_t>& b, size_t at, uint64_t v) { std::memcpy(b.data() + at, &v, 8); }
size_t hp_at(int slot) { return offsetof(MmiaHeader, hp) + 4 * size_t(slot); }

}  // namespace

// ===========================================================================
// Ops

TEST_CASE("conv2d (im2col + packed GEMM) matches a plain loop: kernels, padding, leftover rows and panels") {
    std::mt19937 g(1);
    struct Case { int C, H, W, O, K, pad; };
    for (Case c : {Case{3, 32, 32, 32, 5, 0}, Case{3, 7, 9, 13, 3, 1}, Case{2, 5, 4, 8, 1, 0}, Case{1, 3, 3, 1, 3, 2},
                   Case{48, 16, 16, 17, 3, 1}, Case{4, 11, 6, 9, 4, 3}}) {
        INFO("C " << c.C << " H " << c.H << " W " << c.W << " O " << c.O << " K " << c.K << " pad " << c.pad);
        auto x = uniform(g, size_t(c.C) * c.H * c.W, -1, 1);
        auto w = uniform(g, size_t(c.O) * c.C * c.K * c.K, -0.5f, 0.5f);
        auto b = uniform(g, c.O, -1, 1);
        const int Ho = c.H + 2 * c.pad - c.K + 1, Wo = c.W + 2 * c.pad - c.K + 1;
        std::vector<float> col(k_im2col_packed_floats(int64_t(c.C) * c.K * c.K, int64_t(Ho) * Wo), NAN);
        std::vector<float> out(size_t(c.O) * Ho * Wo + 1, NAN);
        out.back() = 12345.0f;  // a guard: nothing is written past [O][Ho][Wo]
        k_conv2d(out.data(), x.data(), w.data(), b.data(), c.C, c.H, c.W, c.O, c.K, c.pad, MMIA_ACT_NONE, col.data());
        std::vector<double> xd(x.begin(), x.end());
        auto want = ref_conv(xd, w.data(), b.data(), c.C, c.H, c.W, c.O, c.K, c.pad);
        CHECK(max_diff(out.data(), want) < 1e-4);
        CHECK(out.back() == 12345.0f);
        // no bias, with an activation
        k_conv2d(out.data(), x.data(), w.data(), nullptr, c.C, c.H, c.W, c.O, c.K, c.pad, MMIA_ACT_RELU, col.data());
        want = ref_conv(xd, w.data(), nullptr, c.C, c.H, c.W, c.O, c.K, c.pad);
        for (auto& v : want) v = ref_act(v, MMIA_ACT_RELU);
        CHECK(max_diff(out.data(), want) < 1e-4);
    }
}

TEST_CASE("max pool (floor, edge rows dropped) and global average pool") {
    std::mt19937 g(2);
    for (int s : {1, 2, 3}) {
        const int C = 3, H = 7, W = 8;
        auto x = uniform(g, size_t(C) * H * W, -5, 5);
        std::vector<float> out(size_t(C) * (H / s) * (W / s));
        k_maxpool2d(out.data(), x.data(), C, H, W, s);
        CHECK(max_diff(out.data(), ref_maxpool(std::vector<double>(x.begin(), x.end()), C, H, W, s)) == 0.0);
    }
    float x[2][3] = {{1, 2, 3}, {-1, -2, 6}};
    float avg[2];
    k_global_avgpool(avg, &x[0][0], 2, 3);
    CHECK(avg[0] == doctest::Approx(2.0));
    CHECK(avg[1] == doctest::Approx(1.0));
}

TEST_CASE("activations: tanh (vectorised) within 3e-7 of libm, relu, exact gelu") {
    double worst = 0;
    for (double v = -12; v <= 12; v += 0.00731) {
        float y = float(v);
        k_activate(&y, 1, MMIA_ACT_TANH);
        worst = std::max(worst, std::fabs(double(y) - std::tanh(double(float(v)))));
    }
    CHECK(worst < 3e-7);
    float big[3] = {100.0f, -100.0f, 0.0f};
    k_activate(big, 3, MMIA_ACT_TANH);
    CHECK(big[0] == 1.0f);
    CHECK(big[1] == -1.0f);
    CHECK(big[2] == 0.0f);
    float r[3] = {-2.0f, 0.0f, 3.5f};
    k_activate(r, 3, MMIA_ACT_RELU);
    CHECK((r[0] == 0.0f && r[1] == 0.0f && r[2] == 3.5f));
    for (float v : {-3.0f, -0.5f, 0.0f, 0.7f, 2.5f}) {
        float y = v;
        k_activate(&y, 1, MMIA_ACT_GELU);
        CHECK(y == doctest::Approx(ref_act(v, MMIA_ACT_GELU)).epsilon(1e-6));
    }
    // A sweep at float precision: |error| <= 3e-7 (1 + |gelu|) over [-4, 4].
    // (1/sqrt(2) written as 0.7071 instead moves gelu(1) by 2.3e-6.)
    double worst_gelu = 0;
    for (double v = -4; v <= 4; v += 0.00613) {
        float y = float(v);
        k_activate(&y, 1, MMIA_ACT_GELU);
        const double want = ref_act(double(float(v)), MMIA_ACT_GELU);
        worst_gelu = std::max(worst_gelu, std::fabs(double(y) - want) / (1 + std::fabs(want)));
    }
    INFO("worst gelu error " << worst_gelu);
    CHECK(worst_gelu <= 3e-7);
}

TEST_CASE("whole models (every op, dense with activation) match the naive double forward") {
    for (Net n : {small_net(), gap_net()}) {
        fill_tensors(n, 11);
        std::string path = write_net(n, "whole.bin");
        CnnModel m;
        char err[512];
        REQUIRE_MESSAGE(cnn_open(&m, path.c_str(), err, sizeof err) == 0, err);
        CHECK(cnn_image_floats(&m) == int64_t(n.C) * n.H * n.W);
        CHECK(cnn_n_classes(&m) == n.nc);
        const int count = 5;
        auto imgs = random_images(n, count, 3);
        REQUIRE(cnn_check_images(&m, imgs.data(), count, err, sizeof err) == 0);
        std::vector<float> logits(size_t(count) * n.nc), probs(size_t(count) * n.nc);
        REQUIRE(cnn_forward_logits(&m, imgs.data(), count, logits.data()) == 0);
        REQUIRE(cnn_forward_probs(&m, imgs.data(), count, probs.data()) == 0);
        for (int i = 0; i < count; i++) {
            auto want = ref_forward(n, imgs.data() + size_t(i) * cnn_image_floats(&m));
            CHECK(max_diff(logits.data() + size_t(i) * n.nc, want) < 1e-5);
            double sum = 0;
            for (int k = 0; k < n.nc; k++) sum += probs[size_t(i) * n.nc + k];
            CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
        }
        // one image at a time gives the same bits as the batch
        std::vector<float> one(n.nc);
        REQUIRE(cnn_forward_logits(&m, imgs.data() + 2 * cnn_image_floats(&m), 1, one.data()) == 0);
        CHECK(std::memcmp(one.data(), logits.data() + 2 * n.nc, n.nc * 4) == 0);
        // from memory: the same model
        auto bytes = read_file(path);
        std::vector<uint64_t> aligned(bytes.size() / 8 + 1);
        std::memcpy(aligned.data(), bytes.data(), bytes.size());
        CnnModel mm;
        REQUIRE(cnn_open_memory(&mm, aligned.data(), bytes.size(), err, sizeof err) == 0);
        REQUIRE(cnn_forward_logits(&mm, imgs.data(), 1, one.data()) == 0);
        CHECK(std::memcmp(one.data(), logits.data(), n.nc * 4) == 0);
        cnn_close(&mm);
        cnn_close(&m);
    }
}

// ===========================================================================
// Bad model files

TEST_CASE("bad model files are refused with one clear error (library and ./cnn)") {
    Net n = small_net();
    fill_tensors(n, 5);
    std::string good = write_net(n, "good.bin");
    const auto gb = read_file(good);
    REQUIRE(open_error(good).empty());
    int n_file = 0;
    auto variant = [&](const std::vector<uint8_t>& b) {
        std::string p = tmp("bad_" + std::to_string(n_file++) + ".bin");
        write_file(p, b.data(), b.size());
        return p;
    };
    auto with_hp = [&](int slot, int32_t v) {
        auto b = gb;
        wr32(b, hp_at(slot), uint32_t(v));
        return variant(b);
    };

    SUBCASE("missing, empty, short, truncated, padded, not a file") {
        check_bad_model(tmp("nope.bin"), "cannot open");
        check_bad_model(variant({}), "empty");
        check_bad_model(variant(std::vector<uint8_t>(gb.begin(), gb.begin() + 100)), "too small");
        check_bad_model(variant(std::vector<uint8_t>(gb.begin(), gb.end() - 100)), "truncated");
        auto b = gb;
        b.resize(b.size() + 8, 0);
        check_bad_model(variant(b), "trailing");
        check_bad_model(cnn_tmp_dir(), "not a regular file");
    }
    SUBCASE("wrong magic, unknown version, checksum") {
        auto b = gb;
        b[0] = 'X';
        check_bad_model(variant(b), "bad magic");
        b = gb;
        wr32(b, 8, 7);
        check_bad_model(variant(b), "unsupported format version 7 (this reader knows version 1)");
        b = gb;
        b[b.size() - 3] ^= 0x40;
        check_bad_model(variant(b), "checksum mismatch");
    }
    SUBCASE("a model of another kind") {
        auto b = gb;
        wr32(b, 12, MMIA_KIND_MAMBA);
        check_bad_model(variant(b), "model kind 1 is a Mamba model (run it with ./mamba)");
        b = gb;
        wr32(b, 12, 77);
        check_bad_model(variant(b), "unknown model kind 77");
    }
    SUBCASE("absurd or inconsistent dimensions") {
        auto b = gb;
        wr32(b, offsetof(MmiaHeader, in_channels), 0);
        check_bad_model(variant(b), "in_channels is 0");
        b = gb;
        wr32(b, offsetof(MmiaHeader, in_height), 0x7fffffff);
        check_bad_model(variant(b), "in_height");
        b = gb;
        wr32(b, offsetof(MmiaHeader, n_classes), 11);
        check_bad_model(variant(b), "not a vector of n_classes = 11");
        b = gb;
        float zero = 0;
        std::memcpy(b.data() + offsetof(MmiaHeader, in_std), &zero, 4);
        check_bad_model(variant(b), "std");
        check_bad_model(with_hp(MMIA_CNN_HP_N_LAYERS, 0), "n_layers is 0");
        check_bad_model(with_hp(MMIA_CNN_HP_N_LAYERS, 16), "n_layers is 16");
        check_bad_model(with_hp(MMIA_CNN_HP_N_LAYERS, 5), "hp[11] is 773 but a 5-layer CNN leaves it 0");
        check_bad_model(with_hp(MMIA_CNN_HP_OP(0), 9), "layer 0: unknown op 9");
        check_bad_model(with_hp(MMIA_CNN_HP_OP(0), -1), "unknown op");
        check_bad_model(with_hp(MMIA_CNN_HP_OP(0), MMIA_CNN_CONV | 7 << 8), "layer 0 (conv): activation is 7");
        check_bad_model(with_hp(MMIA_CNN_HP_OP(1), MMIA_CNN_MAXPOOL | MMIA_ACT_RELU << 8), "layer 1 (maxpool): activation");
        check_bad_model(with_hp(MMIA_CNN_HP_ARG(0), 3), "layer 0 (conv): padding is 3, outside 0..2");
        check_bad_model(with_hp(MMIA_CNN_HP_ARG(1), 0), "layer 1 (maxpool): window is 0");
        check_bad_model(with_hp(MMIA_CNN_HP_ARG(1), 1000000), "window");
        check_bad_model(with_hp(MMIA_CNN_HP_ARG(4), 2), "layer 4 (flatten): hp[10] is 2, must be 0");
        check_bad_model(with_hp(MMIA_CNN_HP_OP(7), 1), "hp[15] is 1 but a 7-layer CNN leaves it 0");
        b = gb;
        wr32(b, hp_at(MMIA_CNN_HP_OP(2)), MMIA_CNN_DENSE);
        wr32(b, hp_at(MMIA_CNN_HP_ARG(2)), 0);
        check_bad_model(variant(b), "layer 2 (dense): needs a flatten");
        b = gb;  // a dense layer's weights where a flatten should be: conv after it
        wr32(b, hp_at(MMIA_CNN_HP_OP(1)), MMIA_CNN_FLATTEN);
        wr32(b, hp_at(MMIA_CNN_HP_ARG(1)), 0);
        check_bad_model(variant(b), "layer 2 (conv): only dense layers may follow flatten");
        // a kernel larger than its input
        Net tiny = small_net();
        tiny.H = tiny.W = 2;
        tiny.layers = {{MMIA_CNN_CONV, 0, 4, 5, 1}, {MMIA_CNN_GLOBAL_AVG_POOL}, {MMIA_CNN_DENSE, 0, 10}};
        fill_tensors(tiny, 1);
        check_bad_model(write_net(tiny, "tiny.bin"), "layer 0 (conv): a 5x5 kernel does not fit the 2x2 input");
        // within every cap but needing more than 1 GiB per image
        Net huge = small_net();
        huge.H = huge.W = 4096;
        huge.layers = {{MMIA_CNN_CONV, 0, 16, 3, 1}, {MMIA_CNN_GLOBAL_AVG_POOL}, {MMIA_CNN_DENSE, 0, 10}};
        fill_tensors(huge, 1);
        check_bad_model(write_net(huge, "huge.bin"), "working memory");
    }
    SUBCASE("tensors: outside the file, overlapping, missing, misshapen, extra") {
        auto b = gb;
        wr64(b, 256 + 96 * 2 + 80, (gb.size() + 63) / 64 * 64);
        wr64(b, offsetof(MmiaHeader, checksum), mmia_checksum(b.data() + 256, b.size() - 256));
        check_bad_model(variant(b), "outside");
        b = gb;
        wr64(b, 256 + 96 * 1 + 80, 0);
        wr64(b, offsetof(MmiaHeader, checksum), mmia_checksum(b.data() + 256, b.size() - 256));
        check_bad_model(variant(b), "overlaps the header");

        Net m2 = n;
        m2.tensors.erase(m2.tensors.begin() + 3);  // layers.2.bias
        check_bad_model(write_net(m2, "missing.bin"), "missing tensor 'layers.2.bias'");
        m2 = n;
        m2.tensors[0].shape = {9, 3, 3, 1};
        m2.tensors[0].data.resize(9 * 3 * 3);
        check_bad_model(write_net(m2, "shape1.bin"), "'layers.0.weight' has shape [9, 3, 3, 1], expected [9, 3, 3, 3]");
        m2 = n;
        m2.tensors[2].shape = {13, 8, 5, 5};
        m2.tensors[2].data.resize(13 * 8 * 25);
        check_bad_model(write_net(m2, "shape2.bin"), "'layers.2.weight' has shape [13, 8, 5, 5], expected [13, 9, 5, 5]");
        m2 = n;
        m2.tensors[4].shape = {uint32_t(m2.tensors[4].data.size())};
        check_bad_model(write_net(m2, "shape3.bin"), "'layers.5.weight' has 1 dims, a dense weight has 2");
        m2 = n;
        m2.tensors.push_back({"layers.4.weight", {2}, {1.0f, 2.0f}});
        check_bad_model(write_net(m2, "extra.bin"), "unknown tensor 'layers.4.weight' (this 7-layer CNN has exactly 8 tensors)");
    }
}

// ===========================================================================
// Bad input.bin, and models of the other kind, through ./cnn and ./mamba

TEST_CASE("bad input.bin is refused: length, wrong image shape, NaN, inf, range, missing") {
    Net n = small_net();
    fill_tensors(n, 3);
    std::string model = write_net(n, "input_model.bin");
    const int64_t fpi = int64_t(n.C) * n.H * n.W;
    auto imgs = random_images(n, 3, 1);
    auto check_bad_input = [&](const std::vector<float>& px, size_t nbytes, const std::string& needle) {
        std::string p = tmp("bad_input.bin");
        write_file(p, px.data(), nbytes);
        if (nbytes % (fpi * 4) == 0 && nbytes > 0) {  // the library's in-memory check agrees
            CnnModel m;
            char err[512];
            REQUIRE(cnn_open(&m, model.c_str(), err, sizeof err) == 0);
            CHECK(cnn_check_images(&m, px.data(), int64_t(nbytes / 4 / fpi), err, sizeof err) != 0);
            CHECK(std::string(err).find(needle) != std::string::npos);
            cnn_close(&m);
        }
        cli_check_fails(cnn_bin(), cli_quote(model) + " " + cli_quote(p), p + ": " , cnn_tmp_dir());
        cli_check_fails(cnn_bin(), cli_quote(model) + " " + cli_quote(p), needle, cnn_tmp_dir());
    };
    check_bad_input(imgs, 0, "empty");
    check_bad_input(imgs, imgs.size() * 4 - 4, "not a whole number of images");
    // a 28x28 MNIST image for this 3x12x11 model: the wrong shape
    check_bad_input(std::vector<float>(784, 0.5f), 784 * 4, "3136 bytes is not a whole number of images (1584 bytes");
    auto bad = imgs;
    bad[fpi + 5] = NAN;
    check_bad_input(bad, bad.size() * 4, "image 1, pixel 5 is NaN");
    bad = imgs;
    bad[2 * fpi] = -INFINITY;
    check_bad_input(bad, bad.size() * 4, "image 2, pixel 0 is -inf");
    bad = imgs;
    bad[8] = 255.0f;
    check_bad_input(bad, bad.size() * 4, "is 255, outside [0, 1]");
    cli_check_fails(cnn_bin(), cli_quote(model) + " " + cli_quote(tmp("no_input.bin")), "cannot open", cnn_tmp_dir());
}

TEST_CASE("./cnn: a NaN/inf weight or header float, a FIFO, and an overflowing forward pass are one exact error line") {
    Net n = small_net();
    fill_tensors(n, 6);
    std::string good = write_net(n, "finite_good.bin");
    const auto gb = read_file(good);
    auto img = random_images(n, 2, 7);
    std::string input = tmp("finite_input.bin");
    write_file(input, img.data(), img.size() * 4);
    int n_file = 0;
    auto variant = [&](const std::vector<uint8_t>& b) {
        std::string p = tmp("finite_" + std::to_string(n_file++) + ".bin");
        write_file(p, b.data(), b.size());
        return p;
    };
    // element idx of tensor `name` set to v, checksum fixed
    auto with_float = [&](const std::string& name, uint64_t idx, float v) {
        auto b = gb;
        MmiaHeader h;
        std::memcpy(&h, b.data(), sizeof h);
        for (uint32_t i = 0; i < h.n_tensors; i++) {
            MmiaTensorEntry e;
            std::memcpy(&e, b.data() + 256 + 96 * size_t(i), sizeof e);
            if (name != e.name) continue;
            REQUIRE(idx < e.nbytes / 4);
            std::memcpy(b.data() + e.offset + 4 * idx, &v, 4);
            wr64(b, offsetof(MmiaHeader, checksum), mmia_checksum(b.data() + 256, b.size() - 256));
            return variant(b);
        }
        FAIL("no tensor " << name);
        return std::string();
    };
    auto check_exact = [&](const std::string& path, const std::string& why) {
        CHECK(open_error(path) == path + ": " + why);
        cli_check_fails_exact(cnn_bin(), cli_quote(path) + " " + cli_quote(input), "error: " + path + ": " + why,
                              cnn_tmp_dir());
    };
    check_exact(with_float("layers.6.bias", 3, NAN), "tensor 'layers.6.bias': element 3 is NaN (weights must be finite numbers)");
    check_exact(with_float("layers.0.weight", 0, -INFINITY),
                "tensor 'layers.0.weight': element 0 is -inf (weights must be finite numbers)");
    check_exact(with_float("layers.2.weight", 13 * 9 * 25 - 1, INFINITY),
                "tensor 'layers.2.weight': element 2924 is +inf (weights must be finite numbers)");
    auto b = gb;
    float nan = NAN;
    std::memcpy(b.data() + offsetof(MmiaHeader, in_std) + 4, &nan, 4);
    check_exact(variant(b), "header field in_std[1] is NaN (header floats must be finite)");
    b = gb;
    std::memcpy(b.data() + offsetof(MmiaHeader, fp) + 8, &nan, 4);  // a slot the CNN does not use
    check_exact(variant(b), "header field fp[2] is NaN (header floats must be finite)");

    std::string fifo = tmp("cnn.fifo");
    unlink(fifo.c_str());
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    check_exact(fifo, "not a regular file");
    cli_check_fails_exact(cnn_bin(), cli_quote(good) + " " + cli_quote(fifo), "error: " + fifo + ": not a regular file",
                          cnn_tmp_dir());

    // Finite weights, overflowing output: the last dense layer's weights at
    // 3e38 against a gelu layer's non-negative outputs; one nonzero input
    // to it is enough for +inf, so every logit is inf (or NaN after a
    // cancelling -inf): refused. At 1e-30 the same model runs.
    Net big = n;
    for (auto& t : big.tensors)
        if (t.name == "layers.5.bias") std::fill(t.data.begin(), t.data.end(), 1.0f);  // gelu(>= 1 + ...) > 0
    for (auto& t : big.tensors)
        if (t.name == "layers.5.weight") std::fill(t.data.begin(), t.data.end(), 0.0f);
    for (auto& t : big.tensors)
        if (t.name == "layers.6.weight") std::fill(t.data.begin(), t.data.end(), 3e38f);
    std::string ovf = write_net(big, "cnn_overflow.bin");
    CnnModel m;
    char err[512];
    std::vector<float> logits(2 * n.nc);
    REQUIRE(cnn_open(&m, ovf.c_str(), err, sizeof err) == 0);
    CHECK(cnn_forward_logits(&m, img.data(), 2, logits.data()) == ENGINE_ERR_NONFINITE);
    CHECK(cnn_forward_probs(&m, img.data(), 2, logits.data()) == ENGINE_ERR_NONFINITE);
    cnn_close(&m);
    cli_check_fails_exact(cnn_bin(), cli_quote(ovf) + " " + cli_quote(input),
                          "error: " + input + ": image 0: the model's output is not finite (NaN or inf: float32 overflow inside the CNN model)",
                          cnn_tmp_dir());
    for (auto& t : big.tensors)
        if (t.name == "layers.6.weight") std::fill(t.data.begin(), t.data.end(), 1e-30f);
    std::string fine = write_net(big, "cnn_fine.bin");
    REQUIRE(cnn_open(&m, fine.c_str(), err, sizeof err) == 0);
    CHECK(cnn_forward_logits(&m, img.data(), 2, logits.data()) == ENGINE_OK);
    cnn_close(&m);
    CliRun r = cli_run(cnn_bin(), cli_quote(fine) + " " + cli_quote(input) + " --quiet", cnn_tmp_dir());
    CHECK(r.code == 0);
}

TEST_CASE("./cnn: a device, directory or missing file as any argument, an --out that is not a file: one exact line; a model truncated while it runs") {
    Net n = small_net();
    fill_tensors(n, 8);
    const std::string good = write_net(n, "special_good.bin"), input = tmp("special_input.bin");
    auto img = random_images(n, 2, 8);
    write_file(input, img.data(), img.size() * 4);
    const std::string sub = tmp("special_dir"), fifo = tmp("special_out.fifo"), null_link = tmp("special_null.npy");
    REQUIRE(mkdir(sub.c_str(), 0700) == 0);
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    REQUIRE(symlink("/dev/null", null_link.c_str()) == 0);  // a device as --out: if it were replaced, only the link goes
    const std::string q = cli_quote(good) + " " + cli_quote(input);
    for (const std::string& bad : {std::string("/dev/zero"), sub}) {
        cli_check_fails_exact(cnn_bin(), cli_quote(bad) + " " + cli_quote(input), "error: " + bad + ": not a regular file", cnn_tmp_dir());
        cli_check_fails_exact(cnn_bin(), cli_quote(good) + " " + cli_quote(bad), "error: " + bad + ": not a regular file", cnn_tmp_dir());
    }
    const std::string none = tmp("none.bin");
    cli_check_fails_exact(cnn_bin(), cli_quote(none) + " " + cli_quote(input), "error: " + none + ": cannot open: No such file or directory",
                          cnn_tmp_dir());
    cli_check_fails_exact(cnn_bin(), cli_quote(good) + " " + cli_quote(none), "error: " + none + ": cannot open: No such file or directory",
                          cnn_tmp_dir());
    for (const std::string& out : {fifo, null_link, sub}) {  // refused before any work, nothing replaced
        CliRun r = cli_run("timeout", "-k 5 60 " + cli_quote(cnn_bin()) + " " + q + " --out " + cli_quote(out), cnn_tmp_dir());
        CHECK(r.code == 1);
        CHECK(r.out.empty());
        CHECK(r.err == "error: " + out + ": not a regular file\n");
    }
    struct stat st;
    CHECK((lstat(fifo.c_str(), &st) == 0 && S_ISFIFO(st.st_mode)));
    CHECK((lstat(null_link.c_str(), &st) == 0 && S_ISLNK(st.st_mode)));
    CHECK((stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode)));
    // stdin closed: ./cnn never reads it
    CliRun r = cli_run("sh", "-c " + cli_quote(cli_quote(cnn_bin()) + " " + q + " --quiet <&-"), cnn_tmp_dir());
    CHECK(r.code == 0);
    CHECK(r.out.size() == 4);

    // A model truncated while ./cnn runs (docs/BAD_INPUT.md): a net that
    // takes one thread about a second over 400 32x32 images, stopped once
    // it has mapped input.bin, its model then cut to 0 bytes.
    Net big;
    big.C = 3, big.H = 32, big.W = 32;
    big.layers = {{MMIA_CNN_CONV, MMIA_ACT_RELU, 32, 3, 1}, {MMIA_CNN_CONV, MMIA_ACT_RELU, 32, 3, 1},
                  {MMIA_CNN_FLATTEN}, {MMIA_CNN_DENSE, MMIA_ACT_NONE, 10}};
    fill_tensors(big, 9);
    char real[PATH_MAX];
    REQUIRE(realpath(cnn_tmp_dir().c_str(), real));
    const std::string dir = real, model = dir + "/" + "big_cnn.bin", big_input = dir + "/big_input.bin";
    const std::string written = write_net(big, "big_cnn.bin");
    REQUIRE(realpath(written.c_str(), real));
    REQUIRE(std::string(real) == model);
    auto many = random_images(big, 400, 9);
    write_file(big_input, many.data(), many.size() * 4);
    cli_check_shrink_while_mapped({cnn_bin(), model, big_input, "--quiet", "--threads", "1"}, big_input, model, 0,
                                  "error: " + model + ": the file shrank while in use (truncated or rewritten in place by another process)",
                                  dir + "/shrink.log");
}

TEST_CASE("./mamba refuses a CNN file, naming ./cnn") {
    Net n = small_net();
    fill_tensors(n, 3);
    std::string model = write_net(n, "cnn_for_mamba.bin");
    auto imgs = random_images(n, 1, 1);
    std::string input = tmp("one.bin");
    write_file(input, imgs.data(), imgs.size() * 4);
    cli_check_fails(mamba_bin(), cli_quote(model) + " " + cli_quote(input), "model kind 2 is a CNN (run it with ./cnn)",
                    cnn_tmp_dir());
}

// ===========================================================================
// The CLI

TEST_CASE("./cnn: default, --quiet, --probs, --out .npy/.csv, --threads agree with the library") {
    REQUIRE_MESSAGE(access(cnn_bin().c_str(), X_OK) == 0, "no executable " << cnn_bin());
    Net n = small_net();
    fill_tensors(n, 4);
    std::string model = write_net(n, "cli_model.bin");
    const int count = 6;
    auto imgs = random_images(n, count, 2);
    std::string input = tmp("cli_input.bin");
    write_file(input, imgs.data(), imgs.size() * 4);
    CnnModel m;
    char err[512];
    REQUIRE(cnn_open(&m, model.c_str(), err, sizeof err) == 0);
    std::vector<float> probs(size_t(count) * n.nc);
    REQUIRE(cnn_forward_probs(&m, imgs.data(), count, probs.data()) == 0);
    cnn_close(&m);
    std::string want, want_quiet;
    for (int i = 0; i < count; i++) {
        int best = int(std::max_element(probs.begin() + i * n.nc, probs.begin() + (i + 1) * n.nc) -
                       (probs.begin() + i * n.nc));
        char line[128];
        snprintf(line, sizeof line, "Predicted class: %d with probability: %f\n", best, double(probs[i * n.nc + best]));
        want += line;
        want_quiet += std::to_string(best) + "\n";
    }
    const std::string args = cli_quote(model) + " " + cli_quote(input), dir = cnn_tmp_dir();
    CliRun r = cli_run(cnn_bin(), args, dir);
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    CHECK(r.out == want);
    r = cli_run(cnn_bin(), args + " --quiet --threads 1", dir);
    CHECK(r.out == want_quiet);
    r = cli_run(cnn_bin(), args + " --probs --threads 2", dir);
    std::istringstream ps(r.out);
    for (size_t i = 0; i < probs.size(); i++) {
        double v;
        REQUIRE(static_cast<bool>(ps >> v));
        CHECK(std::fabs(v - probs[i]) <= 5e-7);
    }
    std::string npy = tmp("probs.npy");
    r = cli_run(cnn_bin(), args + " --quiet --out " + cli_quote(npy), dir);
    CHECK(r.code == 0);
    auto b = read_file(npy);
    REQUIRE(b.size() == 128 + probs.size() * 4);
    CHECK(std::string(b.begin() + 10, b.begin() + 128).find("'shape': (6, 10)") != std::string::npos);
    CHECK(std::memcmp(b.data() + 128, probs.data(), probs.size() * 4) == 0);
    std::string csv = tmp("probs.csv");
    r = cli_run(cnn_bin(), args + " --out " + cli_quote(csv), dir);
    CHECK(r.code == 0);
    std::string text = cli_read_text(csv);
    CHECK(std::count(text.begin(), text.end(), '\n') == count);
    CHECK(std::count(text.begin(), text.end(), ',') == count * (n.nc - 1));
    r = cli_run(cnn_bin(), "--help", dir);
    CHECK(r.code == 0);
    CHECK(r.out.find("usage: ./cnn") != std::string::npos);

    cli_check_fails(cnn_bin(), args + " --bogus", "unknown flag '--bogus' (see ./cnn --help)", dir, 2);
    cli_check_fails(cnn_bin(), "", "missing arguments", dir, 2);
    cli_check_fails(cnn_bin(), args + " extra", "unexpected extra argument", dir, 2);
    cli_check_fails(cnn_bin(), args + " --threads 0", "--threads", dir, 2);
    cli_check_fails(cnn_bin(), args + " --quiet --probs", "cannot be combined", dir, 2);
    std::string bad_out = dir + "/no/such/dir/p.npy";
    r = cli_run(cnn_bin(), args + " --out " + cli_quote(bad_out), dir);
    CHECK(r.code == 1);
    CHECK(r.out.empty());
    CHECK(r.err.rfind("error: " + bad_out + ": ", 0) == 0);
}

TEST_CASE("docs/BAD_INPUT.md: ./cnn answers the model-file and input.bin rows with the same exact lines") {
    // The rows every engine shares (tests/engine_rows.h), then the kinds.
    Net n = small_net();
    fill_tensors(n, 5);
    const auto gb = read_file(write_net(n, "rows_good.bin"));
    auto imgs = random_images(n, 2, 7);
    check_container_rows(cnn_bin(), gb, imgs, int64_t(n.C) * n.H * n.W, cnn_tmp_dir());
    const std::string input = tmp("rows_cnn_input.bin");
    write_file(input, imgs.data(), imgs.size() * 4);
    int k = 0;
    for (const auto& [kind, why] : {std::pair<uint32_t, std::string>{MMIA_KIND_MAMBA,
                                        "model kind 1 is a Mamba model (run it with ./mamba); this engine runs kind 2 = CNN"},
                                    {9, "unknown model kind 9; this engine runs kind 2 = CNN"}}) {
        auto b = gb;
        wr32(b, 12, kind);
        const std::string p = tmp("rows_cnn_kind" + std::to_string(k++) + ".bin");
        write_file(p, b.data(), b.size());
        cli_check_fails_exact(cnn_bin(), cli_quote(p) + " " + cli_quote(input), "error: " + p + ": " + why, cnn_tmp_dir());
    }
}
