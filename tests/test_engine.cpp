// test_engine.cpp: the Mamba engine (mamba.cpp, engine/*.h) and the packed
// writer (export/packed_writer.cpp).
//   - each kernel against hand-computed or double-precision values
//   - whole models (random weights, written with the writer) against a naive
//     double-precision forward written here straight from the spec
//   - every bad model / input / command line, through the library API and
//     through the ./mamba binary (run from the repo root; MAMBA_BIN overrides)
//
// Build by hand:
//   g++ -std=c++17 -O1 -Iengine -I. tests/test_engine.cpp tests/doctest_main.cpp
//       export/packed_writer.cpp build/mamba_lib.o -fopenmp -o build/tests/test_engine
#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <limits.h>
#include <sys/mman.h>

#include <algorithm>
#include <functional>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/batch.h"
#include "engine/format.h"
#include "engine/io.h"
#include "engine/kernels.h"
#include "engine/mamba.h"
#include "engine/packed.h"
#include "export/packed_writer.h"
#include "tests/cli_check.h"
#include "tests/engine_rows.h"

namespace {

// ---------------------------------------------------------------------------
// Helpers: temp dir, files, random models

// One temp dir per run, removed at exit (set KEEP_TEST_FILES=1 to keep it).
struct TmpDir {
    std::string path;
    ~TmpDir() {
        if (!path.empty() && !getenv("KEEP_TEST_FILES")) {
            std::string cmd = "rm -rf '" + path + "'";
            if (system(cmd.c_str()) != 0) fprintf(stderr, "could not remove %s\n", path.c_str());
        }
    }
};

std::string tmp_dir() {
    static TmpDir dir;
    if (dir.path.empty()) {
        char tmpl[] = "/tmp/test_engine_XXXXXX";
        REQUIRE(mkdtemp(tmpl) != nullptr);
        dir.path = tmpl;
    }
    return dir.path;
}

std::string tmp_path(const std::string& name) { return tmp_dir() + "/" + name; }

bool file_exists(const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0;
}

std::vector<uint8_t> read_bytes(const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& p, const void* data, size_t n) {
    FILE* f = fopen(p.c_str(), "wb");
    REQUIRE(f != nullptr);
    if (n) REQUIRE(fwrite(data, 1, n, f) == n);
    REQUIRE(fclose(f) == 0);
}

std::string read_text(const std::string& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

struct Cfg {
    int C = 1, H = 8, W = 8, nc = 10;
    int D = 16, layers = 2, N = 4, K = 4, E = 32, R = 2, ph = 2, pw = 2;
    int pool = MMIA_POOL_MEAN, conv_mode = MMIA_CONV_CAUSAL;
    int norm = MMIA_NORM_RMS, placement = MMIA_NORM_PRE;
    std::vector<int> stem;  // conv stem widths (3x3, pad 1, GELU), none by default
    int stem_groups = 0;    // > 0: group norm of that many groups after each stem conv; 0: batch norm (folded)
    float eps = 1e-5f;
    float mean[4] = {0.1307f, 0.2f, 0.3f, 0.4f};
    float sd[4] = {0.3081f, 0.5f, 0.6f, 0.7f};
    int L() const { return (H / ph) * (W / pw); }
    int Cp() const { return stem.empty() ? C : stem.back(); }  // channels the patches are cut from
    int P() const { return Cp() * ph * pw; }
};

MmiaHeader make_header(const Cfg& c) {
    MmiaHeader h;
    std::memset(&h, 0, sizeof h);
    h.kind = MMIA_KIND_MAMBA;
    h.in_channels = c.C;
    h.in_height = c.H;
    h.in_width = c.W;
    h.n_classes = c.nc;
    for (int i = 0; i < 4; i++) {
        h.in_mean[i] = c.mean[i];
        h.in_std[i] = c.sd[i];
    }
    h.hp[MMIA_HP_D_MODEL] = c.D;
    h.hp[MMIA_HP_N_LAYERS] = c.layers;
    h.hp[MMIA_HP_D_STATE] = c.N;
    h.hp[MMIA_HP_D_CONV] = c.K;
    h.hp[MMIA_HP_D_INNER] = c.E;
    h.hp[MMIA_HP_DT_RANK] = c.R;
    h.hp[MMIA_HP_PATCH_H] = c.ph;
    h.hp[MMIA_HP_PATCH_W] = c.pw;
    h.hp[MMIA_HP_SEQ_LEN] = c.L();
    h.hp[MMIA_HP_POOL] = c.pool;
    h.hp[MMIA_HP_CONV_MODE] = c.conv_mode;
    h.hp[MMIA_HP_NORM] = c.norm;
    h.hp[MMIA_HP_NORM_PLACEMENT] = c.placement;
    h.hp[MMIA_HP_STEM_LAYERS] = int32_t(c.stem.size());
    for (size_t i = 0; i < c.stem.size(); i++) h.hp[MMIA_HP_STEM_WIDTH(i)] = c.stem[i];
    h.hp[MMIA_HP_STEM_NORM] = c.stem_groups ? MMIA_STEM_GROUP_NORM : MMIA_STEM_BATCH_NORM;
    h.hp[MMIA_HP_STEM_GROUPS] = c.stem_groups;
    h.fp[MMIA_FP_NORM_EPS] = c.eps;
    return h;
}

struct Model {
    Cfg c;
    std::vector<PackedTensor> tensors;
    const std::vector<float>& t(const std::string& name) const {
        for (const auto& x : tensors)
            if (x.name == name) return x.data;
        FAIL("no tensor " << name);
        static std::vector<float> none;
        return none;
    }
};

std::vector<float> uniform(std::mt19937& g, size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> v(n);
    for (auto& x : v) x = d(g);
    return v;
}

// Random weights of realistic scale (Mamba's init ranges, widened a little
// so every nonlinearity sees both sides of zero).
Model random_model(const Cfg& c, unsigned seed) {
    std::mt19937 g(seed);
    Model m;
    m.c = c;
    auto add = [&](const std::string& name, std::vector<uint32_t> shape, std::vector<float> data) {
        m.tensors.push_back({name, shape, data});
    };
    const uint32_t D = c.D, E = c.E, N = c.N, K = c.K, R = c.R, P = c.P(), NC = c.nc;
    float sP = 1.0f / std::sqrt(float(P)), sD = 1.0f / std::sqrt(float(D)), sE = 1.0f / std::sqrt(float(E));
    const bool ln = c.norm == MMIA_NORM_LAYER;
    uint32_t cin = c.C;
    for (size_t i = 0; i < c.stem.size(); i++) {
        const uint32_t co = c.stem[i];
        const float r = 1.0f / std::sqrt(float(cin * 9));
        add("stem." + std::to_string(i) + ".weight", {co, cin, 3, 3}, uniform(g, co * cin * 9, -2 * r, 2 * r));
        add("stem." + std::to_string(i) + ".bias", {co}, uniform(g, co, -0.3f, 0.3f));
        if (c.stem_groups) {
            add("stem." + std::to_string(i) + ".norm.weight", {co}, uniform(g, co, 0.5f, 1.5f));
            add("stem." + std::to_string(i) + ".norm.bias", {co}, uniform(g, co, -0.3f, 0.3f));
        }
        cin = co;
    }
    add("embed.weight", {D, P}, uniform(g, D * P, -sP, sP));
    add("embed.bias", {D}, uniform(g, D, -0.1f, 0.1f));
    for (int l = 0; l < c.layers; l++) {
        std::string p = "layers." + std::to_string(l) + ".";
        add(p + "norm.weight", {D}, uniform(g, D, 0.5f, 1.5f));
        if (ln) add(p + "norm.bias", {D}, uniform(g, D, -0.3f, 0.3f));
        add(p + "in_proj.weight", {2 * E, D}, uniform(g, 2 * E * D, -sD, sD));
        add(p + "conv1d.weight", {E, K}, uniform(g, E * K, -0.5f, 0.5f));
        add(p + "conv1d.bias", {E}, uniform(g, E, -0.2f, 0.2f));
        add(p + "x_proj.weight", {R + 2 * N, E}, uniform(g, (R + 2 * N) * E, -sE, sE));
        add(p + "dt_proj.weight", {E, R}, uniform(g, E * R, -1.0f / std::sqrt(float(R)), 1.0f / std::sqrt(float(R))));
        add(p + "dt_proj.bias", {E}, uniform(g, E, -4.0f, 0.5f));
        std::vector<float> A(E * N);
        for (uint32_t e = 0; e < E; e++)
            for (uint32_t n = 0; n < N; n++) A[e * N + n] = -float(n + 1) * uniform(g, 1, 0.5f, 1.5f)[0];
        add(p + "A", {E, N}, A);
        add(p + "D", {E}, uniform(g, E, 0.5f, 1.5f));
        add(p + "out_proj.weight", {D, E}, uniform(g, D * E, -sE, sE));
    }
    add("norm_f.weight", {D}, uniform(g, D, 0.5f, 1.5f));
    if (ln) add("norm_f.bias", {D}, uniform(g, D, -0.3f, 0.3f));
    add("head.weight", {NC, D}, uniform(g, NC * D, -sD, sD));
    add("head.bias", {NC}, uniform(g, NC, -0.1f, 0.1f));
    return m;
}

std::string write_model(const Model& m, const std::string& name) {
    std::string p = tmp_path(name);
    write_packed_model(p, make_header(m.c), m.tensors);
    return p;
}

std::vector<float> random_images(const Cfg& c, int n, unsigned seed) {
    std::mt19937 g(seed);
    return uniform(g, size_t(n) * c.C * c.H * c.W, 0.0f, 1.0f);
}

// ---------------------------------------------------------------------------
// The reference: the spec's forward, token-major, in double, no cleverness.

double silu_d(double x) { return x / (1.0 + std::exp(-x)); }
double softplus_d(double x) { return x > 20 ? x : std::log1p(std::exp(x)); }

using Mat = std::vector<std::vector<double>>;  // [rows][cols]

Mat rmsnorm_d(const Mat& x, const std::vector<float>& w, double eps) {
    Mat out = x;
    for (size_t t = 0; t < x.size(); t++) {
        double ss = 0;
        for (double v : x[t]) ss += v * v;
        double r = 1.0 / std::sqrt(ss / x[t].size() + eps);
        for (size_t d = 0; d < x[t].size(); d++) out[t][d] = x[t][d] * r * w[d];
    }
    return out;
}

// (x - mean) / sqrt(var + eps) * w + b over each token's features (biased variance)
Mat layernorm_d(const Mat& x, const std::vector<float>& w, const std::vector<float>& b, double eps) {
    Mat out = x;
    for (size_t t = 0; t < x.size(); t++) {
        double mu = 0, var = 0;
        for (double v : x[t]) mu += v;
        mu /= x[t].size();
        for (double v : x[t]) var += (v - mu) * (v - mu);
        var /= x[t].size();
        const double r = 1.0 / std::sqrt(var + eps);
        for (size_t d = 0; d < x[t].size(); d++) out[t][d] = (x[t][d] - mu) * r * w[d] + b[d];
    }
    return out;
}

// x [L][in] @ w[rows r0..r0+out)[in]^T
Mat linear_d(const Mat& x, const std::vector<float>& w, int in, int r0, int out, const std::vector<float>* b) {
    Mat y(x.size(), std::vector<double>(out));
    for (size_t t = 0; t < x.size(); t++)
        for (int o = 0; o < out; o++) {
            double s = b ? (*b)[o] : 0.0;
            for (int i = 0; i < in; i++) s += double(w[size_t(r0 + o) * in + i]) * x[t][i];
            y[t][o] = s;
        }
    return y;
}

std::vector<double> ref_logits(const Model& m, const float* img) {
    const Cfg& c = m.c;
    const int L = c.L(), D = c.D, E = c.E, N = c.N, K = c.K, R = c.R, P = c.P(), gw = c.W / c.pw;
    const bool post = c.placement == MMIA_NORM_POST;
    // the model's norm over tokens' features: RMSNorm, or LayerNorm with its bias
    auto norm = [&](const Mat& v, const std::string& w) {
        if (c.norm == MMIA_NORM_LAYER) {
            std::string b = w.substr(0, w.size() - 6) + "bias";  // "x.weight" -> "x.bias"
            return layernorm_d(v, m.t(w), m.t(b), c.eps);
        }
        return rmsnorm_d(v, m.t(w), c.eps);
    };
    // the normalised image [C][H][W], then the stem: 3x3 conv, zero pad 1, + bias, exact GELU
    const int HW = c.H * c.W;
    std::vector<double> fm(size_t(c.C) * HW);
    for (int ch = 0; ch < c.C; ch++)
        for (int i = 0; i < HW; i++) fm[size_t(ch) * HW + i] = (double(img[size_t(ch) * HW + i]) - c.mean[ch]) / c.sd[ch];
    int cin = c.C;
    for (size_t s = 0; s < c.stem.size(); s++) {
        const int co = c.stem[s];
        const auto& w = m.t("stem." + std::to_string(s) + ".weight");
        const auto& b = m.t("stem." + std::to_string(s) + ".bias");
        std::vector<double> out(size_t(co) * HW);
        for (int o = 0; o < co; o++)
            for (int y = 0; y < c.H; y++)
                for (int x = 0; x < c.W; x++) {
                    double acc = b[o];
                    for (int i = 0; i < cin; i++)
                        for (int ky = 0; ky < 3; ky++)
                            for (int kx = 0; kx < 3; kx++) {
                                int yy = y + ky - 1, xx = x + kx - 1;
                                if (yy < 0 || yy >= c.H || xx < 0 || xx >= c.W) continue;
                                acc += double(w[((size_t(o) * cin + i) * 3 + ky) * 3 + kx]) * fm[size_t(i) * HW + yy * c.W + xx];
                            }
                    out[size_t(o) * HW + y * c.W + x] = acc;
                }
        if (c.stem_groups) {  // group norm: each group of co/G channels by its own mean and biased variance
            const auto& gw_ = m.t("stem." + std::to_string(s) + ".norm.weight");
            const auto& gb_ = m.t("stem." + std::to_string(s) + ".norm.bias");
            const int cpg = co / c.stem_groups;
            for (int gi = 0; gi < c.stem_groups; gi++) {
                const size_t lo = size_t(gi) * cpg * HW, n = size_t(cpg) * HW;
                double mu = 0, var = 0;
                for (size_t k = 0; k < n; k++) mu += out[lo + k];
                mu /= double(n);
                for (size_t k = 0; k < n; k++) var += (out[lo + k] - mu) * (out[lo + k] - mu);
                var /= double(n);
                for (size_t k = 0; k < n; k++) {
                    const int ch = gi * cpg + int(k / HW);
                    out[lo + k] = (out[lo + k] - mu) / std::sqrt(var + c.eps) * gw_[ch] + gb_[ch];
                }
            }
        }
        for (double& v : out) v = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));  // exact GELU
        fm = out;
        cin = co;
    }
    Mat patches(L, std::vector<double>(P));
    for (int t = 0; t < L; t++) {
        int py = t / gw, px = t % gw;
        for (int ch = 0; ch < cin; ch++)
            for (int y = 0; y < c.ph; y++)
                for (int x = 0; x < c.pw; x++)
                    patches[t][ch * c.ph * c.pw + y * c.pw + x] = fm[(size_t(ch) * c.H + py * c.ph + y) * c.W + px * c.pw + x];
    }
    Mat x = linear_d(patches, m.t("embed.weight"), P, 0, D, &m.t("embed.bias"));
    for (int l = 0; l < c.layers; l++) {
        std::string p = "layers." + std::to_string(l) + ".";
        // pre-norm: the block sees norm(x); post-norm: x itself, normed after the add
        Mat h = post ? x : norm(x, p + "norm.weight");
        Mat xs = linear_d(h, m.t(p + "in_proj.weight"), D, 0, E, nullptr);
        Mat z = linear_d(h, m.t(p + "in_proj.weight"), D, E, E, nullptr);
        const auto& cw = m.t(p + "conv1d.weight");
        const auto& cb = m.t(p + "conv1d.bias");
        int shift = c.conv_mode == MMIA_CONV_CAUSAL ? K - 1 : (K - 1) / 2;
        Mat u(L, std::vector<double>(E));
        for (int t = 0; t < L; t++)
            for (int e = 0; e < E; e++) {
                double s = cb[e];
                for (int k = 0; k < K; k++) {
                    int tt = t - shift + k;
                    if (tt >= 0 && tt < L) s += double(cw[e * K + k]) * xs[tt][e];
                }
                u[t][e] = silu_d(s);
            }
        Mat xdbl = linear_d(u, m.t(p + "x_proj.weight"), E, 0, R + 2 * N, nullptr);
        Mat dt_in(L, std::vector<double>(R));
        for (int t = 0; t < L; t++)
            for (int r = 0; r < R; r++) dt_in[t][r] = xdbl[t][r];
        Mat delta = linear_d(dt_in, m.t(p + "dt_proj.weight"), R, 0, E, &m.t(p + "dt_proj.bias"));
        for (auto& row : delta)
            for (auto& v : row) v = softplus_d(v);
        const auto& A = m.t(p + "A");
        const auto& Dv = m.t(p + "D");
        Mat y(L, std::vector<double>(E));
        std::vector<double> hs(size_t(E) * N, 0.0);
        for (int t = 0; t < L; t++)
            for (int e = 0; e < E; e++) {
                double s = 0;
                for (int n = 0; n < N; n++) {
                    double& hv = hs[size_t(e) * N + n];
                    hv = std::exp(delta[t][e] * A[e * N + n]) * hv + delta[t][e] * xdbl[t][R + n] * u[t][e];
                    s += xdbl[t][R + N + n] * hv;
                }
                y[t][e] = (s + Dv[e] * u[t][e]) * silu_d(z[t][e]);
            }
        Mat o = linear_d(y, m.t(p + "out_proj.weight"), E, 0, D, nullptr);
        for (int t = 0; t < L; t++)
            for (int d = 0; d < D; d++) x[t][d] += o[t][d];
        if (post) x = norm(x, p + "norm.weight");
    }
    // pre-norm: norm every token, then pool; post-norm: pool, then norm the pooled vector
    Mat hf = post ? x : norm(x, "norm_f.weight");
    Mat pooled(1, std::vector<double>(D, 0.0));
    for (int d = 0; d < D; d++) {
        if (c.pool == MMIA_POOL_LAST) {
            pooled[0][d] = hf[L - 1][d];
        } else {
            for (int t = 0; t < L; t++) pooled[0][d] += hf[t][d];
            pooled[0][d] /= L;
        }
    }
    if (post) pooled = norm(pooled, "norm_f.weight");
    return linear_d(pooled, m.t("head.weight"), D, 0, c.nc, &m.t("head.bias"))[0];
}

// Open a model file through the library; returns "" or the error string.
std::string open_error(const std::string& path) {
    MambaModel m;
    char err[512];
    int rc = mamba_open(&m, path.c_str(), err, sizeof err);
    if (rc == 0) {
        mamba_close(&m);
        return "";
    }
    return err;
}

// ---------------------------------------------------------------------------
// Running the CLI

std::string mamba_bin() {
    const char* b = getenv("MAMBA_BIN");
    return b ? b : "./mamba";
}

struct Run {
    int code;
    std::string out, err;
};

std::string shell_quote(const std::string& s) {
    std::string r = "'";
    for (char c : s) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return r + "'";
}

Run run_cli(const std::string& args) {
    static int counter = 0;
    std::string o = tmp_path("cli_out_" + std::to_string(counter)), e = tmp_path("cli_err_" + std::to_string(counter));
    counter++;
    std::string cmd = shell_quote(mamba_bin()) + " " + args + " >" + o + " 2>" + e;
    int st = system(cmd.c_str());
    Run r;
    r.code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = read_text(o);
    r.err = read_text(e);
    return r;
}

bool have_cli() {
    return access(mamba_bin().c_str(), X_OK) == 0;
}

// No file at `out` and no temp file beside it.
void check_no_output_left(const std::string& out) {
    CHECK_MESSAGE(!file_exists(out), out);
    std::string cmd = "ls " + shell_quote(out) + ".tmp* >/dev/null 2>&1";
    CHECK_MESSAGE(system(cmd.c_str()) != 0, "temp file left beside " << out);
}

// A failed CLI run: exit code, "error: " on stderr mentioning `needle`,
// nothing on stdout, no --out file.
void check_cli_fails(const std::string& args, const std::string& needle, int code = 1) {
    if (!have_cli()) {
        FAIL("no executable " << mamba_bin() << " (run from the repo root after make)");
        return;
    }
    std::string out = tmp_path("should_not_exist.npy");
    Run r = run_cli(args + " --out " + shell_quote(out));
    INFO("args: " << args << "\nstderr: " << r.err);
    CHECK(r.code == code);
    CHECK(r.out.empty());
    CHECK(r.err.rfind("error: ", 0) == 0);
    CHECK(r.err.find(needle) != std::string::npos);
    check_no_output_left(out);
}

// Library and CLI must both refuse model file `path` with `needle`.
void check_bad_model(const std::string& path, const std::string& needle) {
    std::string err = open_error(path);
    INFO("library error: " << err);
    CHECK(!err.empty());
    CHECK(err.find(needle) != std::string::npos);
    CHECK(err.rfind(path + ": ", 0) == 0);
    static std::string good_input;
    if (good_input.empty()) {
        Cfg c;
        auto img = random_images(c, 2, 7);
        good_input = tmp_path("good_input.bin");
        write_bytes(good_input, img.data(), img.size() * 4);
    }
    check_cli_fails(shell_quote(path) + " " + shell_quote(good_input), needle);
}

uint64_t rd64(const std::vector<uint8_t>& b, size_t at) {
    uint64_t v;
    std::memcpy(&v, b.data() + at, 8);
    return v;
}
void wr32(std::vector<uint8_t>& b, size_t at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }
void wr64(std::vector<uint8_t>& b, size_t at, uint64_t v) { std::memcpy(b.data() + at, &v, 8); }
void fix_checksum(std::vector<uint8_t>& b) {
    wr64(b, offsetof(MmiaHeader, checksum), mmia_checksum(b.data() + 256, b.size() - 256));
}
size_t entry_at(int i) { return 256 + 96 * size_t(i); }

}  // namespace

// ===========================================================================
// Kernels

TEST_CASE("k_expf matches exp to ~1 ulp over the useful range, saturates, keeps NaN") {
    double worst = 0;
    for (double x = -86.6; x <= 88.3; x += 0.0137) {
        double ref = std::exp(double(float(x)));
        double got = k_expf(float(x));
        worst = std::max(worst, std::fabs(got - ref) / ref);
    }
    CHECK(worst < 5e-7);
    CHECK(k_expf(0.0f) == doctest::Approx(1.0).epsilon(1e-7));
    CHECK(k_expf(-1000.0f) < 1e-37f);
    CHECK(k_expf(-1000.0f) >= 0.0f);
    CHECK(std::isfinite(k_expf(1000.0f)));
    CHECK(k_expf(1000.0f) > 1e38f);
    CHECK(std::isnan(k_expf(NAN)));
}

TEST_CASE("k_exp2_nonpos (the scan's exp) matches exp2 to 2e-7 relative on [-125, 0]; clamps below; NaN gives ~0") {
    double worst = 0, bias = 0;
    int count = 0;
    for (double x = -125.0; x <= 0.0; x += 0.00731) {
        const float xf = float(x);
        const double rel = k_exp2_nonpos(xf) / std::exp2(double(xf)) - 1.0;
        worst = std::max(worst, std::fabs(rel));
        bias += rel;
        count++;
    }
    // the scan multiplies by it at every token: a systematic error compounds
    // (a degree-5 fit with mean error ~1e-7 moved test_lm_parity's logits 4x)
    bias /= count;
    INFO("mean relative error " << bias);
    CHECK(std::fabs(bias) < 3e-8);
    for (float x : {0.0f, -0.5f, 0.5f - 1.0f, -1.0f, -1.5f, -2.5f, -124.5f, -125.0f}) {  // the rint ties
        INFO("x = " << x);
        CHECK(std::fabs(k_exp2_nonpos(x) / std::exp2(double(x)) - 1.0) < 2e-7);
    }
    INFO("worst relative error " << worst);
    CHECK(worst < 2e-7);
    CHECK(worst > 1e-8);  // a float polynomial, not exp2 itself: the check sees the function
    // below -125: 2^-125 (a normal float, never a wrapped exponent), as for NaN
    for (float x : {-125.5f, -200.0f, -1e30f, -INFINITY, NAN}) {
        INFO("x = " << x);
        const float y = k_exp2_nonpos(x);
        CHECK(y >= 0.0f);
        CHECK(y < 3e-38f);
    }
}

TEST_CASE("k_transpose equals the element loop: 16 x 16 blocks, edges, row strides") {
    for (int R : {1, 5, 16, 17, 32, 40})
        for (int C : {1, 15, 16, 33, 48}) {
            const int64_t ldi = C + 3, ldo = R + 5;  // strides wider than the rows
            std::mt19937 g(R * 100 + C);
            auto in = uniform(g, size_t(R) * ldi, -1, 1);
            std::vector<float> out(size_t(C) * ldo, 7.0f), want = out;
            for (int r = 0; r < R; r++)
                for (int c = 0; c < C; c++) want[size_t(c * ldo + r)] = in[size_t(r * ldi + c)];
            k_transpose(out.data(), ldo, in.data(), ldi, R, C);
            INFO("R=" << R << " C=" << C);
            CHECK(out == want);  // a move: exact, and the gaps between rows untouched
        }
}

TEST_CASE("softplus: log1p(exp(x)), = x above 20, tiny and accurate far below 0") {
    const float xs[] = {-100.f, -30.f, -20.f, -5.f, -1.f, -1e-3f, 0.f, 1e-3f, 0.5f, 1.f, 5.f, 19.9f, 20.f, 20.5f, 30.f};
    for (float x : xs) {
        double ref = softplus_d(x);
        INFO("x = " << x);
        // below about -87 exp underflows (k_expf flushes to 0): absolute error
        // under 1e-37 there, which no later op can see
        CHECK(std::fabs(k_softplus(x) - ref) <= 3e-7 * ref + 1e-37);
    }
    CHECK(k_softplus(25.0f) == 25.0f);
    float v[5] = {-3, -1, 0, 2, 40};
    k_softplus_inplace(v, 5);
    CHECK(v[2] == doctest::Approx(std::log(2.0)).epsilon(1e-6));
    CHECK(v[4] == 40.0f);
}

TEST_CASE("silu") {
    const float xs[] = {-90.f, -10.f, -1.f, 0.f, 0.3f, 1.f, 10.f, 90.f};
    for (float x : xs) CHECK(k_silu(x) == doctest::Approx(silu_d(x)).epsilon(1e-6));
    CHECK(k_silu(0.0f) == 0.0f);
    float v[3] = {-2, 0, 2};
    k_silu_inplace(v, 3);
    CHECK(v[0] == doctest::Approx(-2.0 / (1.0 + std::exp(2.0))));
    CHECK(v[2] == doctest::Approx(2.0 / (1.0 + std::exp(-2.0))));
}

TEST_CASE("softmax: sums to 1, stable for large logits") {
    float logits[3] = {1000.0f, 1001.0f, 999.0f}, p[3];
    k_softmax(p, logits, 3);
    double e0 = std::exp(-1.0), e2 = std::exp(-2.0), s = 1 + e0 + e2;
    CHECK(p[1] == doctest::Approx(1 / s));
    CHECK(p[0] == doctest::Approx(e0 / s));
    CHECK(p[2] == doctest::Approx(e2 / s));
    float one[1] = {-5.0f};
    k_softmax(one, one, 1);
    CHECK(one[0] == 1.0f);
}

TEST_CASE("rmsnorm over features, feature-major") {
    // two tokens, three features: token 0 = (1, 2, 2), token 1 = (3, 0, 4)
    float x[6] = {1, 3, 2, 0, 2, 4}, w[3] = {1, 2, 0.5f}, out[6], ss[2];
    k_rmsnorm_fm(out, x, w, 3, 2, 0.0f, ss);
    double r0 = 1 / std::sqrt(9.0 / 3), r1 = 1 / std::sqrt(25.0 / 3);
    CHECK(out[0] == doctest::Approx(1 * r0));
    CHECK(out[2] == doctest::Approx(2 * r0 * 2));
    CHECK(out[4] == doctest::Approx(2 * r0 * 0.5));
    CHECK(out[1] == doctest::Approx(3 * r1));
    CHECK(out[3] == doctest::Approx(0.0));
    CHECK(out[5] == doctest::Approx(4 * r1 * 0.5));
    float z[2] = {0, 0}, w1[1] = {1}, o2[2];
    k_rmsnorm_fm(o2, z, w1, 1, 2, 1e-5f, ss);  // zero vector + eps: no NaN
    CHECK(o2[0] == 0.0f);
}

TEST_CASE("group norm: hand-computed, 1 and 2 groups, in place") {
    // 2 channels of 2 values: [1, 2] and [3, 4]; gamma [1, 2], beta [0, 1], eps 0.
    const float w[2] = {1, 2}, b[2] = {0, 1};
    {  // G = 1: mean 2.5, var 1.25 over all four; (x - 2.5) / sqrt(1.25)
        float x[4] = {1, 2, 3, 4};
        k_group_norm(x, w, b, 2, 2, 1, 0.0f);
        const double r = 1.0 / std::sqrt(1.25);
        CHECK(x[0] == doctest::Approx(-1.5 * r).epsilon(1e-6));
        CHECK(x[1] == doctest::Approx(-0.5 * r).epsilon(1e-6));
        CHECK(x[2] == doctest::Approx(0.5 * r * 2 + 1).epsilon(1e-6));
        CHECK(x[3] == doctest::Approx(1.5 * r * 2 + 1).epsilon(1e-6));
    }
    {  // G = 2: each channel alone, mean 1.5 / 3.5, var 0.25: values -1, 1
        float x[4] = {1, 2, 3, 4};
        k_group_norm(x, w, b, 2, 2, 2, 0.0f);
        CHECK(x[0] == doctest::Approx(-1.0).epsilon(1e-6));
        CHECK(x[1] == doctest::Approx(1.0).epsilon(1e-6));
        CHECK(x[2] == doctest::Approx(-1.0).epsilon(1e-6));  // -1 * 2 + 1
        CHECK(x[3] == doctest::Approx(3.0).epsilon(1e-6));   //  1 * 2 + 1
    }
    {  // a constant group with eps 1e-5: (x - mu) = 0, so beta exactly; a large offset costs nothing
        float x[4] = {1e4f, 1e4f + 1, 7, 7};
        k_group_norm(x, w, b, 2, 2, 2, 1e-5f);
        CHECK(x[0] == doctest::Approx(-1.0 / std::sqrt(1.0 + 4e-5)).epsilon(1e-6));
        CHECK(x[2] == 1.0f);
        CHECK(x[3] == 1.0f);
    }
}

TEST_CASE("matmul feature-major: odd sizes, bias, accumulate; matvec") {
    // O: 8-row tiles, the 4-row and 1-row leftovers; I: x read in place
    // (< 32) or through panels of K_MM_KB = 128 features (several for 200,
    // 300); T: row by row (< 16), 16- and 32-token tiles, shifted last tiles.
    for (int O : {1, 7, 8, 9, 12, 13, 24, 37})
        for (int I : {1, 5, 16, 33, 200, 300})
            for (int T : {1, 15, 16, 17, 32, 49, 70}) {
                std::mt19937 g(O * 1000 + I * 10 + T);
                auto w = uniform(g, size_t(O) * I, -1, 1), x = uniform(g, size_t(I) * T, -1, 1),
                     b = uniform(g, O, -1, 1), prev = uniform(g, size_t(O) * T, -1, 1);
                for (int acc = 0; acc < 2; acc++) {
                    std::vector<float> out = prev;
                    k_matmul_fm(out.data(), w.data(), x.data(), acc ? nullptr : b.data(), O, I, T, acc);
                    for (int o = 0; o < O; o++)
                        for (int t = 0; t < T; t++) {
                            double s = acc ? prev[o * T + t] : b[o];
                            for (int i = 0; i < I; i++) s += double(w[o * I + i]) * x[i * T + t];
                            INFO("O=" << O << " I=" << I << " T=" << T << " acc=" << acc);
                            REQUIRE(std::fabs(out[o * T + t] - s) < 1e-5 * (1 + I));
                        }
                }
            }
    float w[6] = {1, 2, 3, 4, 5, 6}, x[3] = {1, 0, -1}, b[2] = {10, 20}, out[2];
    k_matvec(out, w, x, b, 2, 3);
    CHECK(out[0] == 8.0f);
    CHECK(out[1] == 18.0f);
}

TEST_CASE("depthwise conv1d: causal and same, hand-computed") {
    // one channel, T = 5, K = 3, x = 1..5, w = (1, 10, 100), b = 0.5
    float x[5] = {1, 2, 3, 4, 5}, w[3] = {1, 10, 100}, b[1] = {0.5f}, out[5];
    // causal: out[t] = b + w0 x[t-2] + w1 x[t-1] + w2 x[t]
    k_conv1d_dw_fm(out, x, w, b, 1, 5, 3, 2, 0);
    const float causal[5] = {100.5f, 210.5f, 321.5f, 432.5f, 543.5f};
    for (int t = 0; t < 5; t++) CHECK(out[t] == causal[t]);
    // same (left = (K-1)/2 = 1): out[t] = b + w0 x[t-1] + w1 x[t] + w2 x[t+1]
    k_conv1d_dw_fm(out, x, w, b, 1, 5, 3, 1, 0);
    const float same[5] = {210.5f, 321.5f, 432.5f, 543.5f, 54.5f};
    for (int t = 0; t < 5; t++) CHECK(out[t] == same[t]);
    // K = 4 same: left = 1, taps t-1..t+2; two channels, second all zero weights
    float x2[10] = {1, 2, 3, 4, 5, 9, 9, 9, 9, 9}, w2[8] = {1, 1, 1, 1, 0, 0, 0, 0}, b2[2] = {0, 7}, o2[10];
    k_conv1d_dw_fm(o2, x2, w2, b2, 2, 5, 4, 1, 0);
    const float s4[5] = {1 + 2 + 3, 1 + 2 + 3 + 4, 2 + 3 + 4 + 5, 3 + 4 + 5, 4 + 5};
    for (int t = 0; t < 5; t++) CHECK(o2[t] == s4[t]);
    for (int t = 5; t < 10; t++) CHECK(o2[t] == 7.0f);
    // every K path (1, the unrolled 2..5, the tap-outer > 5), both paddings,
    // rows shorter than the kernel, and the fused silu, against a naive loop
    for (int K : {1, 2, 3, 4, 5, 6, 9})
        for (int T : {1, 3, 8, 20})
            for (int causal = 0; causal < 2; causal++)
                for (int act = 0; act < 2; act++) {
                    const int E = 3, left = causal ? K - 1 : (K - 1) / 2;
                    std::mt19937 g(K * 100 + T);
                    auto xv = uniform(g, E * T, -1, 1), wv = uniform(g, E * K, -1, 1), bv = uniform(g, E, -1, 1);
                    std::vector<float> ov(E * T);
                    k_conv1d_dw_fm(ov.data(), xv.data(), wv.data(), bv.data(), E, T, K, left, act);
                    for (int e = 0; e < E; e++)
                        for (int t = 0; t < T; t++) {
                            double s = bv[e];
                            for (int k = 0; k < K; k++) {
                                int src = t - left + k;
                                if (src >= 0 && src < T) s += double(wv[e * K + k]) * xv[e * T + src];
                            }
                            if (act) s = silu_d(s);
                            INFO("K=" << K << " T=" << T << " causal=" << causal << " silu=" << act);
                            CHECK(std::fabs(ov[e * T + t] - s) < 1e-5);
                        }
                }
}

TEST_CASE("selective scan: hand-computed case, carried state, z gate") {
    // L = 3, E = 2, N = 2; delta = 1 everywhere, A = [[-ln2, 0], [0, 0]] so
    // exp(delta*A) = [[0.5, 1], [1, 1]].
    const int L = 3, E = 2, N = 2;
    float u[L * E] = {1, 2, 3, 4, 5, 6};  // [t][e]
    float delta[L * E] = {1, 1, 1, 1, 1, 1};
    float A[E * N] = {-(float)std::log(2.0), 0, 0, 0};
    float B[L * N] = {1, 0, 1, 1, 0, 2};  // [t][n]
    float C[L * N] = {1, 1, 2, 0, 1, 3};
    float Dv[E] = {0.5f, 0};
    float y[L * E], h[E * N] = {0, 0, 0, 0};
    mamba_scan(L, E, N, u, delta, A, B, C, Dv, nullptr, y, h);
    // channel 0 (u = 1, 3, 5):
    //  t0: h = (0.5*0 + 1*1, 0 + 0) = (1, 0);      y = 1*1 + 1*0 + 0.5*1 = 1.5
    //  t1: h = (0.5*1 + 3, 0 + 3) = (3.5, 3);      y = 2*3.5 + 0 + 1.5 = 8.5
    //  t2: h = (1.75 + 0, 3 + 10) = (1.75, 13);    y = 1.75 + 39 + 2.5 = 43.25
    // channel 1 (u = 2, 4, 6), no decay, D = 0:
    //  t0: h = (2, 0) y = 2;  t1: h = (6, 4) y = 12;  t2: h = (6, 16) y = 6 + 48 = 54
    const float want[L * E] = {1.5f, 2, 8.5f, 12, 43.25f, 54};
    for (int i = 0; i < L * E; i++) CHECK(y[i] == doctest::Approx(want[i]).epsilon(1e-6));
    CHECK(h[0] == doctest::Approx(1.75));
    CHECK(h[1] == doctest::Approx(13));
    CHECK(h[2] == doctest::Approx(6));
    CHECK(h[3] == doctest::Approx(16));

    // The same sequence one token at a time with carried state: same y.
    float h2[E * N] = {0, 0, 0, 0}, y2[L * E];
    for (int t = 0; t < L; t++)
        mamba_scan(1, E, N, u + t * E, delta + t * E, A, B + t * N, C + t * N, Dv, nullptr, y2 + t * E, h2);
    for (int i = 0; i < L * E; i++) CHECK(y2[i] == doctest::Approx(want[i]).epsilon(1e-6));

    // z gate multiplies by silu(z)
    float z[L * E] = {1, -1, 2, 0, 0.5f, 3}, yz[L * E], h3[E * N] = {0, 0, 0, 0};
    mamba_scan(L, E, N, u, delta, A, B, C, Dv, z, yz, h3);
    for (int i = 0; i < L * E; i++) CHECK(yz[i] == doctest::Approx(want[i] * silu_d(z[i])).epsilon(1e-6));
}

TEST_CASE("selective scan vs double reference, random, N = 16 and odd N, 16-channel blocks and leftovers") {
    // the last E runs with positive A and negative delta: not Mamba's signs,
    // so the general path must take it and still be right
    for (int N : {16, 5})
    for (int E : {7, 16, 21, 35, -32}) {
        const bool odd_signs = E < 0;
        E = std::abs(E);
        const int L = 13;
        std::mt19937 g(N * 100 + E);
        auto u = uniform(g, L * E, -2, 2), dl = uniform(g, L * E, odd_signs ? -0.5f : 0.001f, 2),
             B = uniform(g, L * N, -1, 1), C = uniform(g, L * N, -1, 1), Dv = uniform(g, E, -1, 1),
             z = uniform(g, L * E, -3, 3), A = uniform(g, E * N, -8, odd_signs ? 0.3f : -0.1f);
        std::vector<float> y(L * E), h(E * N, 0.0f);
        mamba_scan(L, E, N, u.data(), dl.data(), A.data(), B.data(), C.data(), Dv.data(), z.data(), y.data(),
                   h.data());
        std::vector<double> hs(E * N, 0.0);
        for (int t = 0; t < L; t++)
            for (int e = 0; e < E; e++) {
                double s = 0;
                for (int n = 0; n < N; n++) {
                    double& hv = hs[e * N + n];
                    hv = std::exp(double(dl[t * E + e]) * A[e * N + n]) * hv + double(dl[t * E + e]) * B[t * N + n] * u[t * E + e];
                    s += C[t * N + n] * hv;
                }
                double want = (s + Dv[e] * u[t * E + e]) * silu_d(z[t * E + e]);
                CHECK(std::fabs(y[t * E + e] - want) < 1e-5 * (1 + std::fabs(want)));
            }
        for (int i = 0; i < E * N; i++) CHECK(std::fabs(h[i] - hs[i]) < 1e-5 * (1 + std::fabs(hs[i])));
        // in two pieces (5 + 8 tokens) with the state carried: the same y
        std::vector<float> y2(L * E), h2(E * N, 0.0f);
        mamba_scan(5, E, N, u.data(), dl.data(), A.data(), B.data(), C.data(), Dv.data(), z.data(), y2.data(),
                   h2.data());
        mamba_scan(L - 5, E, N, u.data() + 5 * E, dl.data() + 5 * E, A.data(), B.data() + 5 * N, C.data() + 5 * N,
                   Dv.data(), z.data() + 5 * E, y2.data() + 5 * E, h2.data());
        for (int i = 0; i < L * E; i++) CHECK(y2[i] == doctest::Approx(y[i]).epsilon(1e-6));
        // no gate: z = NULL
        std::vector<float> y3(L * E), h3(E * N, 0.0f);
        mamba_scan(L, E, N, u.data(), dl.data(), A.data(), B.data(), C.data(), Dv.data(), nullptr, y3.data(),
                   h3.data());
        for (int i = 0; i < L * E; i++)
            CHECK(y3[i] * silu_d(z[i]) == doctest::Approx(y[i]).epsilon(1e-5).scale(1.0));
    }
}

// ===========================================================================
// Whole models against the double-precision reference

TEST_CASE("whole model matches the naive double forward") {
    struct Case {
        std::string what;
        Cfg c;
    };
    std::vector<Case> cases;
    {
        Cfg c;  // small, causal, mean pool
        cases.push_back({"small causal mean", c});
    }
    {
        Cfg c;  // the typical MNIST shape: L = 49 (three token tiles + 1)
        c.H = c.W = 28;
        c.ph = c.pw = 4;
        c.D = 64;
        c.E = 128;
        c.N = 16;
        c.R = 4;
        cases.push_back({"mnist-size", c});
    }
    {
        Cfg c;  // RGB, same conv, last pool, odd widths everywhere
        c.C = 3;
        c.H = 12;
        c.W = 9;
        c.ph = 3;
        c.pw = 3;
        c.D = 19;
        c.E = 37;
        c.N = 5;
        c.K = 5;
        c.R = 3;
        c.nc = 7;
        c.layers = 3;
        c.pool = MMIA_POOL_LAST;
        c.conv_mode = MMIA_CONV_SAME;
        cases.push_back({"rgb same last odd", c});
    }
    {
        Cfg c;  // one token (seed 002's shape): the recurrence never runs
        c.H = c.W = 8;
        c.ph = c.pw = 8;
        c.D = 16;
        c.E = 32;
        c.N = 8;
        c.K = 5;
        c.layers = 1;
        c.conv_mode = MMIA_CONV_SAME;
        cases.push_back({"one token", c});
    }
    {
        Cfg c;  // K = 4 "same" conv (asymmetric), K = 1, 4 channels
        c.C = 4;
        c.K = 4;
        c.conv_mode = MMIA_CONV_SAME;
        c.H = 16;
        c.W = 16;
        cases.push_back({"same K=4", c});
        c.K = 1;
        cases.push_back({"K=1", c});
    }
    {
        Cfg c;  // LayerNorm, pre-norm
        c.norm = MMIA_NORM_LAYER;
        cases.push_back({"layernorm pre", c});
        c.placement = MMIA_NORM_POST;  // LayerNorm, post-norm (seed 000's block)
        cases.push_back({"layernorm post", c});
        c.norm = MMIA_NORM_RMS;  // RMSNorm, post-norm, last pool
        c.pool = MMIA_POOL_LAST;
        cases.push_back({"rmsnorm post last", c});
    }
    {
        Cfg c;  // a two-layer conv stem (3 -> 5 -> 6 channels), 2x2 patches of its map
        c.C = 3;
        c.stem = {5, 6};
        c.norm = MMIA_NORM_LAYER;
        c.placement = MMIA_NORM_POST;
        cases.push_back({"stem layernorm post", c});
        c.stem = {4};
        c.norm = MMIA_NORM_RMS;
        c.placement = MMIA_NORM_PRE;
        c.H = 10, c.W = 6;
        cases.push_back({"stem rmsnorm pre, 10x6", c});
        c.stem = {4, 6};  // group norm after each conv: 2 groups (2 and 3 channels each)
        c.stem_groups = 2;
        cases.push_back({"stem group norm, 2 groups", c});
        c.stem = {4};  // one group: layer norm over the whole map
        c.stem_groups = 1;
        cases.push_back({"stem group norm, 1 group", c});
    }
    int idx = 0;
    for (const Case& tc : cases) {
        INFO("case: " << tc.what);
        Model m = random_model(tc.c, 100 + idx);
        std::string path = write_model(m, "whole_" + std::to_string(idx++) + ".bin");
        MambaModel mm;
        char err[512];
        REQUIRE_MESSAGE(mamba_open(&mm, path.c_str(), err, sizeof err) == 0, err);
        REQUIRE(mamba_n_classes(&mm) == tc.c.nc);
        REQUIRE(mamba_image_floats(&mm) == int64_t(tc.c.C) * tc.c.H * tc.c.W);
        const int n = 5;
        auto imgs = random_images(tc.c, n, 9);
        std::fill(imgs.begin(), imgs.begin() + mamba_image_floats(&mm), 0.0f);  // an all-black image
        REQUIRE(mamba_check_images(&mm, imgs.data(), n, err, sizeof err) == 0);
        std::vector<float> logits(size_t(n) * tc.c.nc), probs(logits.size());
        REQUIRE(mamba_forward_logits(&mm, imgs.data(), n, logits.data()) == 0);
        REQUIRE(mamba_forward_probs(&mm, imgs.data(), n, probs.data()) == 0);
        double worst = 0;
        for (int i = 0; i < n; i++) {
            auto ref = ref_logits(m, imgs.data() + size_t(i) * mamba_image_floats(&mm));
            double mx = *std::max_element(ref.begin(), ref.end()), s = 0;
            for (double v : ref) s += std::exp(v - mx);
            for (int k = 0; k < tc.c.nc; k++) {
                double got = logits[size_t(i) * tc.c.nc + k];
                worst = std::max(worst, std::fabs(got - ref[k]) / (1 + std::fabs(ref[k])));
                CHECK(std::fabs(probs[size_t(i) * tc.c.nc + k] - std::exp(ref[k] - mx) / s) < 1e-5);
            }
        }
        INFO("worst logit error " << worst);
        CHECK(worst < 2e-5);
        mamba_close(&mm);
    }
}

TEST_CASE("open from memory gives the same model; batch order and threads do not matter") {
    Cfg c;
    Model m = random_model(c, 5);
    auto bytes = pack_model_bytes(make_header(c), m.tensors);
    std::vector<uint64_t> aligned((bytes.size() + 7) / 8);
    std::memcpy(aligned.data(), bytes.data(), bytes.size());
    MambaModel mm;
    char err[512];
    REQUIRE_MESSAGE(mamba_open_memory(&mm, aligned.data(), bytes.size(), err, sizeof err) == 0, err);
    auto imgs = random_images(c, 9, 3);
    std::vector<float> all(9 * c.nc), one(c.nc);
    REQUIRE(mamba_forward_logits(&mm, imgs.data(), 9, all.data()) == 0);
    for (int i = 0; i < 9; i++) {
        REQUIRE(mamba_forward_logits(&mm, imgs.data() + i * 64, 1, one.data()) == 0);
        for (int k = 0; k < c.nc; k++) CHECK(one[k] == all[i * c.nc + k]);
    }
    mamba_close(&mm);
    // unaligned memory is refused, not crashed on
    CHECK(mamba_open_memory(&mm, (const char*)aligned.data() + 4, bytes.size(), err, sizeof err) != 0);
}

// ===========================================================================
// The writer

TEST_CASE("writer: layout, alignment, checksum; refuses bad tensors and leaves no file") {
    Cfg c;
    Model m = random_model(c, 1);
    std::string p = write_model(m, "layout.bin");
    auto b = read_bytes(p);
    REQUIRE(b.size() > 256);
    CHECK(std::memcmp(b.data(), "MAMBAMIA", 8) == 0);
    CHECK(rd64(b, 16) == b.size());
    CHECK(rd64(b, 24) == mmia_checksum(b.data() + 256, b.size() - 256));
    MmiaHeader h;
    std::memcpy(&h, b.data(), 256);
    CHECK(h.n_tensors == m.tensors.size());
    CHECK(h.version == MMIA_FORMAT_VERSION);
    for (size_t i = 0; i < m.tensors.size(); i++) {
        MmiaTensorEntry e;
        std::memcpy(&e, b.data() + entry_at(int(i)), 96);
        CHECK(e.offset % 64 == 0);
        CHECK(e.nbytes == m.tensors[i].data.size() * 4);
        CHECK(std::memcmp(b.data() + e.offset, m.tensors[i].data.data(), e.nbytes) == 0);
    }
    // no temporary file (<p>.tmp.<pid>) left beside it
    CHECK(system(("ls " + cli_quote(p) + ".tmp* >/dev/null 2>&1").c_str()) != 0);

    auto expect_throw = [&](std::vector<PackedTensor> ts, const std::string& needle) {
        std::string q = tmp_path("bad_writer.bin");
        try {
            write_packed_model(q, make_header(c), ts);
            FAIL("no exception for " << needle);
        } catch (const std::runtime_error& e) {
            std::string w = e.what();
            INFO(w);
            CHECK(w.rfind(q + ": ", 0) == 0);
            CHECK(w.find(needle) != std::string::npos);
        }
        CHECK(!file_exists(q));
        CHECK(!file_exists(q + ".tmp"));
    };
    expect_throw({{std::string(56, 'a'), {1}, {1.0f}}}, "longer than 55");
    expect_throw({{"x", {1, 1, 1, 1, 1}, {1.0f}}}, "dims");
    expect_throw({{"x", {2, 0}, {}}}, "bad dimension");
    expect_throw({{"x", {}, {}}}, "dims");
    expect_throw({{"x", {2, 2}, {1, 2, 3}}}, "needs 4");
    expect_throw({{"x", {1}, {1}}, {"x", {1}, {2}}}, "twice");
    expect_throw({}, "1..4096");
    expect_throw({{"a b", {1}, {1}}}, "non-printable");
    // non-finite values never reach a file: any element, NaN or either inf
    expect_throw({{"w", {3}, {1.0f, 2.0f, NAN}}}, "tensor 'w': element 2 is NaN (weights must be finite numbers)");
    expect_throw({{"w", {2}, {INFINITY, 0.0f}}}, "tensor 'w': element 0 is +inf (weights must be finite numbers)");
    expect_throw({{"ok", {1}, {1.0f}}, {"v", {2}, {0.0f, -INFINITY}}}, "tensor 'v': element 1 is -inf");
    {
        std::string q = tmp_path("bad_header.bin");
        MmiaHeader h = make_header(c);
        h.in_std[1] = NAN;
        CHECK_THROWS_WITH_AS(write_packed_model(q, h, m.tensors),
                             (q + ": header field in_std[1] is NaN (header floats must be finite)").c_str(), std::runtime_error);
        h = make_header(c);
        h.fp[6] = INFINITY;
        CHECK_THROWS_WITH_AS(write_packed_model(q, h, m.tensors),
                             (q + ": header field fp[6] is +inf (header floats must be finite)").c_str(), std::runtime_error);
        CHECK(!file_exists(q));
    }
    // 55 bytes is fine
    write_packed_model(tmp_path("long_ok.bin"), make_header(c), {{std::string(55, 'a'), {1}, {1.0f}}});
    // unwritable destination: error with the path, nothing left
    std::string q = tmp_dir() + "/no/such/dir/m.bin";
    CHECK_THROWS_WITH_AS(write_packed_model(q, make_header(c), m.tensors), doctest::Contains((q + ": cannot create").c_str()),
                         std::runtime_error);
    if (!file_exists("/dev/full")) {
        cli_skip("no /dev/full on this machine: the full-disk write is not tested");
    } else {
        // A full disk: write() fails with ENOSPC. /dev/full is a device, so the
        // temp file is what we point at it (a symlink named path.tmp.<pid>,
        // engine/io.h's temporary).
        std::string fp = tmp_path("full.bin"), fp_tmp = fp + ".tmp." + std::to_string(getpid());
        REQUIRE(symlink("/dev/full", fp_tmp.c_str()) == 0);
        CHECK_THROWS_WITH_AS(write_packed_model(fp, make_header(c), m.tensors),
                             (fp + ": write failed: No space left on device").c_str(), std::runtime_error);
        CHECK(!file_exists(fp));
        CHECK(!file_exists(fp_tmp));
    }
}

// ===========================================================================
// Bad model files: library and CLI

TEST_CASE("bad model files are refused with a clear error (library and CLI)") {
    Cfg c;
    Model m = random_model(c, 2);
    std::string good = write_model(m, "good.bin");
    const auto gb = read_bytes(good);
    REQUIRE(open_error(good).empty());
    int n_file = 0;
    auto variant = [&](const std::vector<uint8_t>& b) {
        std::string p = tmp_path("bad_" + std::to_string(n_file++) + ".bin");
        write_bytes(p, b.data(), b.size());
        return p;
    };

    SUBCASE("missing file") { check_bad_model(tmp_path("nope.bin"), "cannot open"); }
    SUBCASE("empty file") { check_bad_model(variant({}), "empty"); }
    SUBCASE("shorter than the header") {
        check_bad_model(variant(std::vector<uint8_t>(gb.begin(), gb.begin() + 100)), "too small");
    }
    SUBCASE("truncated") {
        check_bad_model(variant(std::vector<uint8_t>(gb.begin(), gb.end() - 100)), "truncated");
    }
    SUBCASE("trailing bytes") {
        auto b = gb;
        b.resize(b.size() + 8, 0);
        check_bad_model(variant(b), "trailing");
    }
    SUBCASE("wrong magic") {
        auto b = gb;
        b[0] = 'X';
        check_bad_model(variant(b), "bad magic");
    }
    SUBCASE("unknown version") {
        auto b = gb;
        wr32(b, 8, 7);
        check_bad_model(variant(b), "unsupported format version 7 (this reader knows version 1)");
    }
    SUBCASE("CNN model") {
        auto b = gb;
        wr32(b, 12, MMIA_KIND_CNN);
        check_bad_model(variant(b), "CNN");
    }
    SUBCASE("unknown kind") {
        auto b = gb;
        wr32(b, 12, 99);
        check_bad_model(variant(b), "unknown model kind 99");
    }
    SUBCASE("absurd dimensions") {
        struct {
            size_t at;
            int32_t v;
            const char* needle;
        } cases[] = {
            {offsetof(MmiaHeader, hp) + 4 * MMIA_HP_D_MODEL, 1000000000, "d_model is 1000000000"},
            {offsetof(MmiaHeader, hp) + 4 * MMIA_HP_N_LAYERS, -1, "n_layers is -1"},
            {offsetof(MmiaHeader, hp) + 4 * MMIA_HP_D_STATE, 0, "d_state is 0"},
            {offsetof(MmiaHeader, hp) + 4 * MMIA_HP_D_INNER, 1 << 30, "d_inner"},
            {offsetof(MmiaHeader, hp) + 4 * MMIA_HP_SEQ_LEN, 17, "seq_len is 17"},
            {offsetof(MmiaHeader, hp) + 4 * MMIA_HP_PATCH_H, 3, "does not tile"},
            {offsetof(MmiaHeader, hp) + 4 * MMIA_HP_POOL, 5, "pool is 5"},
            {offsetof(MmiaHeader, hp) + 4 * MMIA_HP_CONV_MODE, -3, "conv_mode"},
            {offsetof(MmiaHeader, in_channels), 0, "in_channels is 0"},
            {offsetof(MmiaHeader, in_height), 0x7fffffff, "in_height"},
            {offsetof(MmiaHeader, n_classes), 0, "n_classes is 0"},
        };
        for (auto& k : cases) {
            auto b = gb;
            wr32(b, k.at, uint32_t(k.v));
            check_bad_model(variant(b), k.needle);
        }
        auto b = gb;
        float nan = NAN;
        std::memcpy(b.data() + offsetof(MmiaHeader, fp), &nan, 4);
        check_bad_model(variant(b), "header field fp[0] is NaN");  // the generic header check, first
        for (float bad_eps : {0.0f, -1e-5f, 1.5f}) {  // finite, outside (0, 1]: the engine's own check
            b = gb;
            std::memcpy(b.data() + offsetof(MmiaHeader, fp), &bad_eps, 4);
            check_bad_model(variant(b), "norm eps is");
        }
        b = gb;
        float zero = 0;
        std::memcpy(b.data() + offsetof(MmiaHeader, in_std), &zero, 4);
        check_bad_model(variant(b), "std");
        // a huge but self-consistent model (wider than its tensors): refused by shape
        b = gb;
        wr32(b, offsetof(MmiaHeader, hp) + 4 * MMIA_HP_D_INNER, 16384);
        check_bad_model(variant(b), "expected");
        // within caps but needing > 1 GiB per image
        b = gb;
        wr32(b, offsetof(MmiaHeader, in_height), 4096);
        wr32(b, offsetof(MmiaHeader, in_width), 4096);
        wr32(b, offsetof(MmiaHeader, hp) + 4 * MMIA_HP_PATCH_H, 16);
        wr32(b, offsetof(MmiaHeader, hp) + 4 * MMIA_HP_PATCH_W, 16);
        wr32(b, offsetof(MmiaHeader, hp) + 4 * MMIA_HP_SEQ_LEN, 65536);
        wr32(b, offsetof(MmiaHeader, hp) + 4 * MMIA_HP_D_INNER, 16384);
        check_bad_model(variant(b), "working memory");
    }
    SUBCASE("tensor count beyond the cap or the file") {
        auto b = gb;
        wr32(b, offsetof(MmiaHeader, n_tensors), 5000);
        check_bad_model(variant(b), "tensor count 5000");
        b = gb;
        wr32(b, offsetof(MmiaHeader, n_tensors), 4000);
        check_bad_model(variant(b), "runs past the end");
    }
    SUBCASE("tensor data outside the file") {
        auto b = gb;
        wr64(b, entry_at(3) + 80, (gb.size() + 63) / 64 * 64);  // aligned, at/after the end
        fix_checksum(b);
        check_bad_model(variant(b), "outside");
        b = gb;
        wr64(b, entry_at(3) + 80, 0xffffffffffffffc0ull);  // offset + nbytes overflows
        fix_checksum(b);
        check_bad_model(variant(b), "outside");
    }
    SUBCASE("tensor data overlapping the header / table / each other") {
        auto b = gb;
        wr64(b, entry_at(0) + 80, 0);
        fix_checksum(b);
        check_bad_model(variant(b), "overlaps the header");
        b = gb;
        uint64_t off0 = rd64(gb, entry_at(0) + 80);
        wr64(b, entry_at(1) + 80, off0);
        fix_checksum(b);
        check_bad_model(variant(b), "overlap");
        b = gb;
        wr64(b, entry_at(1) + 80, off0 + 4);
        fix_checksum(b);
        check_bad_model(variant(b), "aligned");
    }
    SUBCASE("table entry inconsistencies") {
        auto b = gb;
        wr64(b, entry_at(2) + 88, 12345);  // nbytes
        fix_checksum(b);
        check_bad_model(variant(b), "nbytes");
        b = gb;
        wr32(b, entry_at(2) + 56, 3);  // dtype
        fix_checksum(b);
        check_bad_model(variant(b), "dtype 3");
        b = gb;
        wr32(b, entry_at(2) + 60, 5);  // ndim
        fix_checksum(b);
        check_bad_model(variant(b), "ndim 5");
        b = gb;
        wr32(b, entry_at(2) + 64, 0);  // a zero dimension
        fix_checksum(b);
        check_bad_model(variant(b), "dimension 0 is 0");
        b = gb;
        wr32(b, entry_at(2) + 64, 0xffffffffu);  // shape too big for the file
        fix_checksum(b);
        check_bad_model(variant(b), "dimension 0");
        b = gb;
        std::memset(b.data() + entry_at(2), 'a', 56);  // no NUL
        fix_checksum(b);
        check_bad_model(variant(b), "NUL-terminated");
        b = gb;
        std::memcpy(b.data() + entry_at(2), b.data() + entry_at(1), 56);  // duplicate name
        fix_checksum(b);
        check_bad_model(variant(b), "appears twice");
    }
    SUBCASE("checksum mismatch") {
        auto b = gb;
        b[b.size() - 3] ^= 0x40;  // one bit of the last tensor
        check_bad_model(variant(b), "checksum mismatch");
    }
    SUBCASE("missing tensor") {
        Model m2 = m;
        m2.tensors.erase(std::remove_if(m2.tensors.begin(), m2.tensors.end(),
                                        [](const PackedTensor& t) { return t.name == "layers.1.D"; }),
                         m2.tensors.end());
        check_bad_model(write_model(m2, "missing_t.bin"), "missing tensor 'layers.1.D'");
    }
    SUBCASE("misshapen tensor") {
        Model m2 = m;
        for (auto& t : m2.tensors)
            if (t.name == "layers.0.A") {
                t.shape = {uint32_t(c.N), uint32_t(c.E)};  // transposed
            }
        check_bad_model(write_model(m2, "shape_t.bin"), "tensor 'layers.0.A' has shape [4, 32], expected [32, 4]");
        Model m3 = m;
        for (auto& t : m3.tensors)
            if (t.name == "head.bias") {
                t.shape = {1, uint32_t(c.nc)};
            }
        check_bad_model(write_model(m3, "shape_t2.bin"), "'head.bias' has shape [1, 10], expected [10]");
    }
    SUBCASE("positive entry in A (a sign check; NaN is the generic check's, below)") {
        for (float bad : {0.5f, 1e-30f}) {
            Model m2 = m;
            for (auto& t : m2.tensors)
                if (t.name == "layers.1.A") t.data[7] = bad;
            check_bad_model(write_model(m2, "posA.bin"), "tensor 'layers.1.A' has entry 7");
        }
        Model m2 = m;
        for (auto& t : m2.tensors)
            if (t.name == "layers.1.A") t.data[7] = -0.0f;  // the boundary: -0 <= 0 is fine
        CHECK(open_error(write_model(m2, "zeroA.bin")).empty());
    }
    // The file's bytes with element idx of tensor `name` set to v and the
    // checksum fixed (the writer refuses non-finite values, so the good
    // file is patched).
    auto with_float = [&](const std::vector<uint8_t>& base, const std::string& name, uint64_t idx, float v) {
        auto b = base;
        MmiaHeader h;
        std::memcpy(&h, b.data(), sizeof h);
        for (uint32_t i = 0; i < h.n_tensors; i++) {
            MmiaTensorEntry e;
            std::memcpy(&e, b.data() + entry_at(int(i)), sizeof e);
            if (name != e.name) continue;
            REQUIRE(idx < e.nbytes / 4);
            std::memcpy(b.data() + e.offset + 4 * idx, &v, 4);
            fix_checksum(b);
            return variant(b);
        }
        FAIL("no tensor " << name);
        return std::string();
    };
    // Library and ./mamba give exactly "<path>: <why>" / "error: <path>: <why>".
    auto check_exact = [&](const std::string& path, const std::string& why) {
        CHECK(open_error(path) == path + ": " + why);
        auto img = random_images(c, 1, 7);
        std::string in = tmp_path("exact_input.bin");
        write_bytes(in, img.data(), img.size() * 4);
        cli_check_fails_exact(mamba_bin(), shell_quote(path) + " " + shell_quote(in), "error: " + path + ": " + why,
                              tmp_dir());
    };
    SUBCASE("a NaN or inf in any tensor is refused, naming the tensor and element") {
        check_exact(with_float(gb, "head.bias", 3, NAN), "tensor 'head.bias': element 3 is NaN (weights must be finite numbers)");
        check_exact(with_float(gb, "embed.weight", 0, INFINITY),
                    "tensor 'embed.weight': element 0 is +inf (weights must be finite numbers)");
        check_exact(with_float(gb, "layers.1.out_proj.weight", uint64_t(c.D) * c.E - 1, -INFINITY),
                    "tensor 'layers.1.out_proj.weight': element 511 is -inf (weights must be finite numbers)");
        // A NaN in A: no longer only the engine's sign check that sees it.
        check_exact(with_float(gb, "layers.1.A", 7, NAN), "tensor 'layers.1.A': element 7 is NaN (weights must be finite numbers)");
        // The largest finite float is a weight like any other.
        CHECK(open_error(with_float(gb, "head.bias", 3, 3.4e38f)).empty());
        // A signalling-NaN bit pattern and a NaN with a payload count too.
        for (uint32_t bits : {0x7f800001u, 0xffc00123u}) {
            float v;
            std::memcpy(&v, &bits, 4);
            CHECK(open_error(with_float(gb, "norm_f.weight", 2, v)).find("tensor 'norm_f.weight': element 2 is NaN") !=
                  std::string::npos);
        }
    }
    SUBCASE("the one-pass check sees the first and last element of every tensor, across 32 KiB blocks") {
        // A model of ~600 kB: in_proj alone spans several blocks, and block
        // boundaries fall inside tensors.
        Cfg big;
        big.D = 64, big.E = 256, big.N = 8, big.R = 4;
        const auto bb = read_bytes(write_model(random_model(big, 4), "big.bin"));
        REQUIRE(bb.size() > 4 * PACKED_BLOCK_BYTES);
        MmiaHeader h;
        std::memcpy(&h, bb.data(), sizeof h);
        int checked = 0;
        for (uint32_t i = 0; i < h.n_tensors; i++) {
            MmiaTensorEntry e;
            std::memcpy(&e, bb.data() + entry_at(int(i)), sizeof e);
            const uint64_t n = e.nbytes / 4;
            std::vector<uint64_t> at = {0, n - 1, n / 2};
            // the elements either side of every block boundary inside it
            for (uint64_t a = PACKED_BLOCK_BYTES + 256; a < bb.size(); a += PACKED_BLOCK_BYTES)
                if (a > e.offset && a < e.offset + e.nbytes) at.insert(at.end(), {(a - e.offset) / 4 - 1, (a - e.offset) / 4});
            for (uint64_t k : at) {
                std::string err = open_error(with_float(bb, e.name, k, NAN));
                CHECK_MESSAGE(err.find("tensor '" + std::string(e.name) + "': element " + std::to_string(k) + " is NaN") !=
                                  std::string::npos,
                              err);
                checked++;
            }
        }
        CHECK(checked >= 3 * int(h.n_tensors));
        // and the unpatched file still opens (its checksum via the blockwise pass)
        CHECK(open_error(variant(bb)).empty());
    }
    SUBCASE("a NaN or inf header float (normalisation, eps, unused slots)") {
        auto with_header_float = [&](size_t off, float v) {
            auto b = gb;
            std::memcpy(b.data() + off, &v, 4);  // the header is outside the checksum
            return variant(b);
        };
        check_exact(with_header_float(offsetof(MmiaHeader, in_mean), NAN),
                    "header field in_mean[0] is NaN (header floats must be finite)");
        check_exact(with_header_float(offsetof(MmiaHeader, in_std) + 4 * 3, INFINITY),
                    "header field in_std[3] is +inf (header floats must be finite)");
        check_exact(with_header_float(offsetof(MmiaHeader, fp) + 4 * MMIA_FP_NORM_EPS, -INFINITY),
                    "header field fp[0] is -inf (header floats must be finite)");
        check_exact(with_header_float(offsetof(MmiaHeader, fp) + 4 * 7, NAN),
                    "header field fp[7] is NaN (header floats must be finite)");
    }
    SUBCASE("a FIFO, a device or a socket is refused at once, never waited on") {
        // The library opens in this process: were it to block, SIGALRM ends
        // the test binary (a failure) instead of hanging it.
        alarm(120);
        std::string fifo = tmp_path("model.fifo");
        unlink(fifo.c_str());
        REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
        check_exact(fifo, "not a regular file");
        check_exact("/dev/zero", "not a regular file");
        std::string sock = tmp_path("model.sock");
        unlink(sock.c_str());
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        REQUIRE(fd >= 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        REQUIRE(sock.size() < sizeof addr.sun_path);
        std::memcpy(addr.sun_path, sock.c_str(), sock.size() + 1);
        REQUIRE(bind(fd, (const sockaddr*)&addr, sizeof addr) == 0);
        check_exact(sock, "cannot open: No such device or address");
        close(fd);
        alarm(0);
    }
    SUBCASE("extra unknown tensor") {
        Model m2 = m;
        m2.tensors.push_back({"layers.2.norm.weight", {uint32_t(c.D)}, std::vector<float>(c.D, 1.0f)});
        check_bad_model(write_model(m2, "extra_t.bin"), "unknown tensor 'layers.2.norm.weight'");
    }
    SUBCASE("not a regular file") { check_bad_model(tmp_dir(), "not a regular file"); }
}

// ===========================================================================
// Bad inputs: library and CLI

TEST_CASE("bad input.bin is refused (library and CLI)") {
    Cfg c;
    Model m = random_model(c, 3);
    std::string model = write_model(m, "input_model.bin");
    const int64_t fpi = int64_t(c.C) * c.H * c.W;
    auto imgs = random_images(c, 3, 1);
    auto check_bad_input = [&](const std::vector<float>& px, size_t nbytes, const std::string& needle) {
        std::string p = tmp_path("bad_input.bin");
        write_bytes(p, px.data(), nbytes);
        InputFile in;
        char err[512];
        CHECK(input_open(&in, p.c_str(), fpi, err, sizeof err) != 0);
        INFO("library error: " << err);
        CHECK(std::string(err).find(needle) != std::string::npos);
        if (nbytes % (fpi * 4) == 0 && nbytes > 0) {  // the library's in-memory check agrees
            MambaModel mm;
            REQUIRE(mamba_open(&mm, model.c_str(), err, sizeof err) == 0);
            CHECK(mamba_check_images(&mm, px.data(), int64_t(nbytes / 4 / fpi), err, sizeof err) != 0);
            CHECK(std::string(err).find(needle) != std::string::npos);
            mamba_close(&mm);
        }
        check_cli_fails(shell_quote(model) + " " + shell_quote(p), p + ": ");
        check_cli_fails(shell_quote(model) + " " + shell_quote(p), needle);
    };
    check_bad_input(imgs, 0, "empty");
    check_bad_input(imgs, imgs.size() * 4 - 4, "not a whole number of images");
    check_bad_input(imgs, 10, "not a whole number of images");
    auto bad = imgs;
    bad[fpi + 5] = NAN;
    check_bad_input(bad, bad.size() * 4, "image 1, pixel 5 is NaN");
    bad = imgs;
    bad[2 * fpi] = INFINITY;
    check_bad_input(bad, bad.size() * 4, "image 2, pixel 0 is +inf");
    bad = imgs;
    bad[7] = -0.5f;
    check_bad_input(bad, bad.size() * 4, "outside [0, 1]");
    bad = imgs;
    bad[8] = 255.0f;
    check_bad_input(bad, bad.size() * 4, "is 255, outside [0, 1]");
    // Both sides of both limits: 0, -0 and 1 are pixels; the next float
    // beyond either end is not.
    bad = imgs;
    bad[9] = std::nextafter(1.0f, 2.0f);
    check_bad_input(bad, bad.size() * 4, "image 0, pixel 9 is 1.00000012, outside [0, 1]");
    bad = imgs;
    bad[fpi + 1] = -std::numeric_limits<float>::denorm_min();
    check_bad_input(bad, bad.size() * 4, "image 1, pixel 1 is -1.40129846e-45, outside [0, 1]");
    bad = imgs;
    bad[0] = 1.0f, bad[1] = 0.0f, bad[2] = -0.0f, bad[fpi - 1] = 1.0f;
    int64_t n_ok = 0;
    char ok_err[256] = "";
    CHECK(input_validate(bad.data(), bad.size() * 4, fpi, &n_ok, ok_err, sizeof ok_err) == 0);
    CHECK(n_ok == 3);
    check_cli_fails(shell_quote(model) + " " + shell_quote(tmp_path("no_input.bin")), "cannot open");
    // A FIFO (nobody writing) or a device as input.bin: refused at once.
    std::string fifo = tmp_path("input.fifo");
    unlink(fifo.c_str());
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    cli_check_fails_exact(mamba_bin(), shell_quote(model) + " " + shell_quote(fifo), "error: " + fifo + ": not a regular file",
                          tmp_dir());
    cli_check_fails_exact(mamba_bin(), shell_quote(model) + " /dev/zero", "error: /dev/zero: not a regular file", tmp_dir());
    InputFile in;
    char err[256];
    alarm(120);  // as above: a blocking open fails the binary, never hangs it
    CHECK(input_open(&in, fifo.c_str(), fpi, err, sizeof err) != 0);
    alarm(0);
    CHECK(std::string(err) == "not a regular file");
    // stdin closed, or a FIFO on stdin: the engine never reads stdin.
    std::string good = tmp_path("good_in.bin");
    write_bytes(good, imgs.data(), imgs.size() * 4);
    CliRun r = cli_run("timeout", "-k 5 60 " + shell_quote(mamba_bin()) + " " + shell_quote(model) + " " +
                                      shell_quote(good) + " --quiet <&-", tmp_dir());
    CHECK(r.code == 0);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 3);
    // --out a FIFO, a device (through a link: if it were replaced, only the
    // link goes) or a directory: refused before any work, nothing replaced.
    const std::string out_fifo = tmp_path("out.fifo"), out_null = tmp_path("out_null.npy"), out_dir = tmp_path("out_dir");
    REQUIRE(mkfifo(out_fifo.c_str(), 0600) == 0);
    REQUIRE(symlink("/dev/null", out_null.c_str()) == 0);
    REQUIRE(mkdir(out_dir.c_str(), 0700) == 0);
    for (const std::string& out : {out_fifo, out_null, out_dir}) {
        r = cli_run("timeout", "-k 5 60 " + shell_quote(mamba_bin()) + " " + shell_quote(model) + " " + shell_quote(good) +
                                   " --out " + shell_quote(out), tmp_dir());
        CHECK(r.code == 1);
        CHECK(r.out.empty());
        CHECK(r.err == "error: " + out + ": not a regular file\n");
    }
    struct stat st;
    CHECK((lstat(out_fifo.c_str(), &st) == 0 && S_ISFIFO(st.st_mode)));
    CHECK((lstat(out_null.c_str(), &st) == 0 && S_ISLNK(st.st_mode)));
    CHECK((stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode)));
}

// ===========================================================================
// A file that shrinks or grows while mapped

// docs/BAD_INPUT.md's line for a mapped file another process truncated.
static std::string shrank_line(const std::string& path) {
    return "error: " + path + ": the file shrank while in use (truncated or rewritten in place by another process)";
}

// Runs body() in a forked child with stderr to a file; returns its exit code
// (-signal if a signal ended it) and what it wrote to stderr. The child must
// die or _exit: body never returns into doctest.
static std::pair<int, std::string> in_child(const std::function<void()>& body, const std::string& tag) {
    const std::string err_log = tmp_path("child_" + tag + ".err");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int fd = open(err_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) _exit(126);
        dup2(fd, 2);
        body();
        _exit(0);
    }
    int code = cli_wait(pid, 60);
    return {code, read_text(err_log)};
}

TEST_CASE("a model or input.bin that shrinks while mapped: one line naming it, exit 1, never a SIGBUS (library)") {
    // Truncating a file under a live mapping turns the pages past its new
    // end into SIGBUS; engine/packed.h's handler turns that into one line.
    // The truncation and the forward pass run in a forked child (which must
    // exit 1 with the line; the test binary must not die).
    Cfg c;
    Model m = random_model(c, 5);
    auto img = random_images(c, 1, 5);
    float logits[10];
    SUBCASE("the model") {
        const std::string path = write_model(m, "shrink_model.bin");
        MambaModel mm;
        char err[512];
        REQUIRE(mamba_open(&mm, path.c_str(), err, sizeof err) == 0);
        REQUIRE(mamba_forward_logits(&mm, img.data(), 1, logits) == ENGINE_OK);  // its pages are in memory
        auto [code, line] = in_child([&] {
            if (truncate(path.c_str(), 0) != 0) _exit(125);
            mamba_forward_logits(&mm, img.data(), 1, logits);
        }, "model");
        CHECK(code == 1);
        CHECK(line == shrank_line(path) + "\n");
        mamba_close(&mm);
    }
    SUBCASE("input.bin") {
        const std::string model = write_model(m, "shrink_in_model.bin"), path = tmp_path("shrink_input.bin");
        write_bytes(path, img.data(), img.size() * 4);
        MambaModel mm;
        InputFile in;
        char err[512];
        REQUIRE(mamba_open(&mm, model.c_str(), err, sizeof err) == 0);
        REQUIRE(input_open(&in, path.c_str(), int64_t(c.C) * c.H * c.W, err, sizeof err) == 0);
        auto [code, line] = in_child([&] {
            if (truncate(path.c_str(), 0) != 0) _exit(125);
            mamba_forward_logits(&mm, in.data, 1, logits);
        }, "input");
        CHECK(code == 1);
        CHECK(line == shrank_line(path) + "\n");
        input_close(&in);
        mamba_close(&mm);
    }
    SUBCASE("a SIGBUS from a mapping that is not the engine's still ends the process with the signal") {
        const std::string model = write_model(m, "shrink_other_model.bin"), path = tmp_path("other.bin");
        MambaModel mm;  // a live engine mapping, so the handler is installed and active
        char err[512];
        REQUIRE(mamba_open(&mm, model.c_str(), err, sizeof err) == 0);
        std::vector<char> page(8192, 'x');
        write_bytes(path, page.data(), page.size());
        int fd = open(path.c_str(), O_RDONLY);
        REQUIRE(fd >= 0);
        void* p = mmap(nullptr, page.size(), PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        REQUIRE(p != MAP_FAILED);
        auto [code, line] = in_child([&] {
            if (truncate(path.c_str(), 0) != 0) _exit(125);
            volatile char v = ((volatile const char*)p)[100];
            (void)v;
        }, "other");
        // The handler packed.h replaced gets it: the default action (the
        // signal ends the process), or under ASan its own report.
        const struct sigaction& prev = packed_sigbus_previous;
        if (!(prev.sa_flags & SA_SIGINFO) && prev.sa_handler == SIG_DFL) {
            CHECK(code == -SIGBUS);
            CHECK(line.empty());
        } else {
            INFO("a handler was installed before packed.h's; child stderr: " << line);
            CHECK(code != 0);
            CHECK(line.find("BUS") != std::string::npos);
        }
        CHECK(line.find("shrank") == std::string::npos);
        munmap(p, page.size());
        mamba_close(&mm);
    }
    SUBCASE("a closed mapping is forgotten: 3 x the registry's 64 slots of open/close") {
        const std::string path = write_model(m, "reopen.bin");
        MambaModel mm;
        char err[512];
        int ok = 0;
        for (int i = 0; i < 3 * PACKED_MAX_MAPS; i++)
            if (mamba_open(&mm, path.c_str(), err, sizeof err) == 0) ok++, mamba_close(&mm);
        CHECK(ok == 3 * PACKED_MAX_MAPS);
        // and all 64 at once, then one more is refused with a line, not a crash
        std::vector<MambaModel> all(PACKED_MAX_MAPS + 1);
        int open_now = 0;
        for (auto& x : all) open_now += mamba_open(&x, path.c_str(), err, sizeof err) == 0;
        CHECK(open_now == PACKED_MAX_MAPS);
        CHECK(std::string(err) == path + ": more than 64 files mapped at once");
        for (int i = 0; i < PACKED_MAX_MAPS; i++) mamba_close(&all[size_t(i)]);
    }
}

TEST_CASE("a model or input.bin that grows while mapped changes nothing") {
    // The mapping keeps the length fstat gave when it was opened, which the
    // header's file_bytes and the checksum were checked against: bytes
    // appended later are never seen.
    Cfg c;
    Model m = random_model(c, 6);
    auto img = random_images(c, 3, 6);
    const std::string path = write_model(m, "grow_model.bin"), in_path = tmp_path("grow_input.bin");
    write_bytes(in_path, img.data(), img.size() * 4);
    MambaModel mm;
    InputFile in;
    char err[512];
    REQUIRE(mamba_open(&mm, path.c_str(), err, sizeof err) == 0);
    REQUIRE(input_open(&in, in_path.c_str(), int64_t(c.C) * c.H * c.W, err, sizeof err) == 0);
    std::vector<float> before(3 * 10), after(3 * 10);
    REQUIRE(mamba_forward_logits(&mm, in.data, 3, before.data()) == ENGINE_OK);
    // 1 MiB of NaN bytes appended to both files
    std::vector<uint8_t> junk(1 << 20, 0xff);
    for (const std::string& p : {path, in_path}) {
        FILE* f = fopen(p.c_str(), "ab");
        REQUIRE(f);
        REQUIRE(fwrite(junk.data(), 1, junk.size(), f) == junk.size());
        REQUIRE(fclose(f) == 0);
    }
    REQUIRE(mamba_forward_logits(&mm, in.data, 3, after.data()) == ENGINE_OK);
    CHECK(std::memcmp(before.data(), after.data(), before.size() * 4) == 0);
    CHECK(in.n_images == 3);
    input_close(&in);
    mamba_close(&mm);
    // opened again, the grown file is what it now is: trailing bytes
    CHECK(open_error(path).find("(trailing bytes)") != std::string::npos);
}

TEST_CASE("./mamba: a model truncated while the program runs: one line naming it, exit 1, never a SIGBUS") {
    // A model big enough that one thread takes seconds over 300 images;
    // cli_check_shrink_while_mapped stops ./mamba once it has mapped
    // input.bin (both files are open, the forward pass starts), truncates
    // the model, and lets it go on.
    Cfg c;
    c.H = c.W = 32;
    c.D = 128, c.E = 256, c.N = 16, c.layers = 4;
    Model m = random_model(c, 7);
    auto img = random_images(c, 300, 7);
    char real[PATH_MAX];
    REQUIRE(realpath(tmp_dir().c_str(), real));
    const std::string dir = real, model = dir + "/big_model.bin", input = dir + "/big_input.bin";
    write_packed_model(model, make_header(c), m.tensors);
    write_bytes(input, img.data(), img.size() * 4);
    cli_check_shrink_while_mapped({mamba_bin(), model, input, "--quiet", "--threads", "1"}, input, model, 1000,
                                  shrank_line(model), dir + "/shrink_cli.log");
    // and the input, likewise
    write_packed_model(model, make_header(c), m.tensors);
    cli_check_shrink_while_mapped({mamba_bin(), model, input, "--quiet", "--threads", "1"}, input, input, 0,
                                  shrank_line(input), dir + "/shrink_cli2.log");
}

TEST_CASE("finite weights whose forward pass overflows float32: an error, never a printed nan") {
    // embed = a constant all-ones stream, blocks that add nothing, so the
    // final norm gives pooled[d] = norm_f[d] in [0.5, 1.5] exactly, and the
    // logits are a sum of 16 such values times the head's weights.
    Cfg c;
    Model m = random_model(c, 5);
    auto set = [&](Model& mm, const std::string& name, float v) {
        for (auto& t : mm.tensors)
            if (t.name == name) std::fill(t.data.begin(), t.data.end(), v);
    };
    set(m, "embed.weight", 0.0f);
    set(m, "embed.bias", 1.0f);
    for (int l = 0; l < c.layers; l++) set(m, "layers." + std::to_string(l) + ".out_proj.weight", 0.0f);
    auto imgs = random_images(c, 2, 3);
    std::string input = tmp_path("overflow_input.bin");
    write_bytes(input, imgs.data(), imgs.size() * 4);
    std::vector<float> logits(2 * c.nc);
    MambaModel mm;
    char err[512];

    // 1e37 * sum(norm_f) <= 2.4e38: finite, runs.
    Model ok = m;
    set(ok, "head.weight", 1e37f);
    std::string okp = write_model(ok, "overflow_ok.bin");
    REQUIRE(mamba_open(&mm, okp.c_str(), err, sizeof err) == 0);
    CHECK(mamba_forward_logits(&mm, imgs.data(), 2, logits.data()) == ENGINE_OK);
    double want = 0;
    for (float w : ok.t("norm_f.weight")) want += 1e37 * double(w);
    CHECK(std::fabs(logits[0] - want - ok.t("head.bias")[0]) <= 1e-5 * want);
    mamba_close(&mm);
    Run r = run_cli(shell_quote(okp) + " " + shell_quote(input) + " --quiet");
    CHECK(r.code == 0);

    // 3e38 * sum(norm_f) > FLT_MAX: every logit is +inf.
    Model bad = m;
    set(bad, "head.weight", 3e38f);
    std::string badp = write_model(bad, "overflow.bin");
    REQUIRE(mamba_open(&mm, badp.c_str(), err, sizeof err) == 0);
    CHECK(mamba_forward_logits(&mm, imgs.data(), 2, logits.data()) == ENGINE_ERR_NONFINITE);
    CHECK(mamba_forward_probs(&mm, imgs.data(), 2, logits.data()) == ENGINE_ERR_NONFINITE);
    mamba_close(&mm);
    cli_check_fails_exact(mamba_bin(), shell_quote(badp) + " " + shell_quote(input),
                          "error: " + input +
                              ": image 0: the model's output is not finite (NaN or inf: float32 overflow inside the Mamba model)",
                          tmp_dir());

    // engine_first_nonfinite itself, both sides of the boundary.
    std::vector<float> v = {0.0f, 3.4028235e38f, -3.4028235e38f, 1e-45f};
    CHECK(engine_first_nonfinite(v.data(), 4) == -1);
    v.push_back(INFINITY);
    CHECK(engine_first_nonfinite(v.data(), 5) == 4);
    v[1] = NAN;
    CHECK(engine_first_nonfinite(v.data(), 5) == 1);
}

TEST_CASE("CLI: an input whose probabilities would pass the output cap is refused before allocating") {
    // A 1-pixel model with 100,000 classes: each 4-byte image asks for
    // 400 kB of probabilities, so 672 images (2,688 bytes) would need more
    // than IO_MAX_OUTPUT_FLOATS.
    Cfg c;
    c.C = 1, c.H = 1, c.W = 1, c.ph = 1, c.pw = 1, c.nc = 100000;
    c.D = 2, c.layers = 1, c.N = 2, c.K = 2, c.E = 4, c.R = 1;
    std::string model = write_model(random_model(c, 9), "many_classes.bin");
    const int64_t too_many = IO_MAX_OUTPUT_FLOATS / c.nc + 1;
    auto imgs = random_images(c, int(too_many), 3);
    std::string input = tmp_path("many_images.bin");
    write_bytes(input, imgs.data(), imgs.size() * 4);
    cli_check_fails_exact(mamba_bin(), shell_quote(model) + " " + shell_quote(input),
                          "error: " + input + ": 672 images x 100000 classes is more than the 67108864 probabilities one run writes; split the file",
                          tmp_dir());
    write_bytes(input, imgs.data(), (imgs.size() - 1) * 4);  // one image fewer: runs
    Run r = run_cli(shell_quote(model) + " " + shell_quote(input) + " --quiet");
    CHECK(r.code == 0);
    CHECK(std::count(r.out.begin(), r.out.end(), '\n') == too_many - 1);
}

// ===========================================================================
// The CLI: outputs and usage errors

TEST_CASE("CLI: default, --quiet, --probs, --out .npy/.csv, --threads agree with the library") {
    if (!have_cli()) {
        FAIL("no executable " << mamba_bin() << " (run from the repo root after make)");
        return;
    }
    Cfg c;
    Model m = random_model(c, 4);
    std::string model = write_model(m, "cli_model.bin");
    const int n = 6;
    auto imgs = random_images(c, n, 2);
    std::string input = tmp_path("cli_input.bin");
    write_bytes(input, imgs.data(), imgs.size() * 4);
    MambaModel mm;
    char err[512];
    REQUIRE(mamba_open(&mm, model.c_str(), err, sizeof err) == 0);
    std::vector<float> probs(n * c.nc);
    REQUIRE(mamba_forward_probs(&mm, imgs.data(), n, probs.data()) == 0);
    mamba_close(&mm);
    std::vector<int> best(n);
    for (int i = 0; i < n; i++)
        best[i] = int(std::max_element(probs.begin() + i * c.nc, probs.begin() + (i + 1) * c.nc) -
                      (probs.begin() + i * c.nc));
    std::string args = shell_quote(model) + " " + shell_quote(input);

    Run r = run_cli(args);
    CHECK(r.code == 0);
    CHECK(r.err.empty());
    std::string want;
    char line[128];
    for (int i = 0; i < n; i++) {
        snprintf(line, sizeof line, "Predicted class: %d with probability: %f\n", best[i],
                 double(probs[i * c.nc + best[i]]));
        want += line;
    }
    CHECK(r.out == want);

    r = run_cli(args + " --quiet --threads 1");
    CHECK(r.code == 0);
    want.clear();
    for (int i = 0; i < n; i++) want += std::to_string(best[i]) + "\n";
    CHECK(r.out == want);

    r = run_cli(args + " --probs --threads 2");
    CHECK(r.code == 0);
    std::istringstream ps(r.out);
    for (int i = 0; i < n * c.nc; i++) {
        double v;
        REQUIRE(static_cast<bool>(ps >> v));
        CHECK(std::fabs(v - probs[i]) <= 5e-7);
    }

    std::string npy = tmp_path("probs.npy");
    r = run_cli(args + " --quiet --out " + shell_quote(npy));
    CHECK(r.code == 0);
    auto b = read_bytes(npy);
    REQUIRE(b.size() > 10);
    CHECK(std::memcmp(b.data(), "\x93NUMPY\x01\x00", 8) == 0);
    size_t hl = b[8] | (b[9] << 8);
    CHECK((10 + hl) % 64 == 0);
    std::string hdr(b.begin() + 10, b.begin() + 10 + hl);
    CHECK(hdr.find("'descr': '<f4'") != std::string::npos);
    CHECK(hdr.find("'shape': (6, 10)") != std::string::npos);
    REQUIRE(b.size() == 10 + hl + probs.size() * 4);
    CHECK(std::memcmp(b.data() + 10 + hl, probs.data(), probs.size() * 4) == 0);
    check_no_output_left(npy + ".tmp");  // just the temp: npy itself exists

    std::string csv = tmp_path("probs.csv");
    r = run_cli(args + " --out " + shell_quote(csv));
    CHECK(r.code == 0);
    std::istringstream cs(read_text(csv));
    std::string row;
    int rows = 0;
    while (std::getline(cs, row)) {
        std::istringstream rs(row);
        std::string cell;
        int k = 0;
        while (std::getline(rs, cell, ',')) {
            CHECK(std::stof(cell) == probs[rows * c.nc + k]);  // %.9g round-trips
            k++;
        }
        CHECK(k == c.nc);
        rows++;
    }
    CHECK(rows == n);
    // The extension is matched in any case: FILE.CSV is CSV too (same bytes).
    std::string csv_upper = tmp_path("probs.CSV");
    r = run_cli(args + " --out " + shell_quote(csv_upper));
    CHECK(r.code == 0);
    CHECK(read_text(csv_upper) == read_text(csv));

    r = run_cli("--help");
    CHECK(r.code == 0);
    CHECK(r.out.find("usage:") != std::string::npos);
}

TEST_CASE("CLI: usage errors exit 2 with error: and no output") {
    Cfg c;
    Model m = random_model(c, 6);
    std::string model = write_model(m, "usage_model.bin");
    auto imgs = random_images(c, 1, 2);
    std::string input = tmp_path("usage_input.bin");
    write_bytes(input, imgs.data(), imgs.size() * 4);
    std::string args = shell_quote(model) + " " + shell_quote(input);
    check_cli_fails(args + " --bogus", "unknown flag '--bogus'", 2);
    check_cli_fails("", "missing arguments", 2);
    check_cli_fails(shell_quote(model), "missing arguments", 2);
    check_cli_fails(args + " extra", "unexpected extra argument", 2);
    check_cli_fails(args + " --threads 0", "--threads", 2);
    check_cli_fails(args + " --threads x", "--threads", 2);
    check_cli_fails(args + " --quiet --probs", "cannot be combined", 2);
    if (have_cli()) {
        Run r = run_cli(args + " --threads");
        CHECK(r.code == 2);
        CHECK(r.err.rfind("error: ", 0) == 0);
        r = run_cli(args + " --out");
        CHECK(r.code == 2);
        CHECK(r.out.empty());
        // an output that cannot be written: exit 1, stdout empty, nothing left
        std::string bad_out = tmp_dir() + "/no/such/dir/p.npy";
        r = run_cli(args + " --out " + shell_quote(bad_out));
        CHECK(r.code == 1);
        CHECK(r.out.empty());
        CHECK(r.err.rfind("error: " + bad_out + ": ", 0) == 0);
        CHECK(!file_exists(bad_out));
    }
}

// ===========================================================================
// docs/BAD_INPUT.md, row by row: ./mamba prints each row's exact line

TEST_CASE("docs/BAD_INPUT.md: every ./mamba model-file, input.bin and command-line row is one exact line") {
    // The rows every engine shares (tests/engine_rows.h), then ./mamba's own.
    Cfg c;
    Model m = random_model(c, 2);
    const std::string good = write_model(m, "rows_good.bin");
    const auto gb = read_bytes(good);
    auto imgs = random_images(c, 2, 7);
    check_container_rows(mamba_bin(), gb, imgs, int64_t(c.C) * c.H * c.W, tmp_dir());
    // (the FIFO, device, socket, NaN/inf weight and header-float rows:
    // "bad model files are refused ...", their SUBCASEs' check_exact; the
    // input FIFO: "bad input.bin is refused ..."; the output cap: "CLI: an
    // input whose probabilities would pass the output cap ...": all exact)

    const std::string input = tmp_path("rows_mamba_input.bin");
    write_bytes(input, imgs.data(), imgs.size() * 4);
    int n_file = 0;
    auto variant = [&](const std::vector<uint8_t>& b) {
        std::string p = tmp_path("rows_mamba_" + std::to_string(n_file++) + ".bin");
        write_bytes(p, b.data(), b.size());
        return p;
    };
    auto model_row = [&](const std::string& path, const std::string& why) {
        cli_check_fails_exact(mamba_bin(), shell_quote(path) + " " + shell_quote(input), "error: " + path + ": " + why,
                              tmp_dir());
    };
    auto b = gb;
    wr32(b, 12, MMIA_KIND_CNN);
    model_row(variant(b), "model kind 2 is a CNN (run it with ./cnn); this engine runs kind 1 = Mamba");
    b = gb;
    wr32(b, 12, 9);
    model_row(variant(b), "unknown model kind 9; this engine runs kind 1 = Mamba");
    b = gb;
    wr32(b, offsetof(MmiaHeader, hp) + 4 * MMIA_HP_D_MODEL, 1000000000);
    model_row(variant(b), "d_model is 1000000000, outside 1..16384");
    {
        Model m2 = m;
        for (auto& t : m2.tensors)
            if (t.name == "layers.1.A") t.data[7] = 0.5f;
        model_row(write_model(m2, "rows_posA.bin"), "tensor 'layers.1.A' has entry 7 = 0.5; A = -exp(A_log) must be <= 0");
    }
    const std::string model = good;

    // --- command lines
    const std::string args = shell_quote(model) + " " + shell_quote(input);
    const std::string see = " (see ./mamba --help)";
    cli_check_fails_exact(mamba_bin(), args + " --bogus", "error: unknown flag '--bogus'" + see, tmp_dir(), 2);
    // cli_check_fails_exact appends --out FILE: these two go without it
    for (const std::string& a : {std::string(""), shell_quote(model)}) {
        CliRun r = cli_run(mamba_bin(), a, tmp_dir());
        CHECK(r.code == 2);
        CHECK(r.out.empty());
        CHECK(r.err == "error: missing arguments: need model.bin and input.bin" + see + "\n");
    }
    cli_check_fails_exact(mamba_bin(), args + " --threads 0", "error: --threads: '0' is not a thread count in 1..1024" + see,
                          tmp_dir(), 2);
    cli_check_fails_exact(mamba_bin(), args + " --quiet --probs", "error: --quiet and --probs cannot be combined" + see,
                          tmp_dir(), 2);
    {  // the temporary file's name carries the pid: the line is checked around it
        const std::string bad_out = tmp_dir() + "/no/dir/p.npy";
        CliRun r = cli_run(mamba_bin(), args + " --out " + shell_quote(bad_out), tmp_dir());
        INFO("stderr: " << r.err);
        CHECK(r.code == 1);
        CHECK(r.out.empty());
        const std::string head = "error: " + bad_out + ": cannot create " + bad_out + ".tmp.";
        const std::string tail = ": No such file or directory\n";
        REQUIRE(r.err.size() > head.size() + tail.size());
        CHECK(r.err.substr(0, head.size()) == head);
        CHECK(r.err.substr(r.err.size() - tail.size()) == tail);
        const std::string pid = r.err.substr(head.size(), r.err.size() - head.size() - tail.size());
        CHECK(!pid.empty());
        CHECK(pid.find_first_not_of("0123456789") == std::string::npos);
    }
}
