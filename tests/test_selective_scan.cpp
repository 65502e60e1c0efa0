// Tests of the fused selective scan (train/selective_scan.*):
//   - forward output and all eight gradients against selective_scan_ref run
//     in float64 (fused op in float32 and in float64), over many shapes and
//     option combinations, chunk boundaries and the multi-group backward;
//   - a central-difference gradient check of the fused op in float64;
//   - determinism (two runs bit-identical), the no-grad path, input checks;
//   - the engine's scan (mamba.cpp) against the op on the same inputs.
// LibTorch first: it pulls in glog, whose CHECK/CHECK_EQ macros would
// otherwise replace doctest's (silently: both live in system headers).
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include "train/selective_scan.h"

#include "engine/mamba.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace {

struct Case {
    int64_t B, L, E, N;
    bool z, bias, softplus;
    bool per_example = false;  // A (B, E, N), D and delta_bias (B, E): one per batch element
};

// Leaf tensors for one problem, generated in float64 and cast, so the float32
// and float64 runs see the same numbers up to rounding.
struct Problem {
    torch::Tensor u, delta, A, Bm, Cm, D, z, bias, gout;
};

Problem make_problem(const Case& c, uint64_t seed) {
    torch::manual_seed(seed);
    auto o = torch::TensorOptions().dtype(torch::kDouble);
    Problem p;
    p.u = torch::randn({c.B, c.L, c.E}, o);
    // Without softplus delta is used as is: keep it positive like a real step.
    p.delta = c.softplus ? torch::randn({c.B, c.L, c.E}, o) - 1.0 : torch::rand({c.B, c.L, c.E}, o) * 0.5 + 0.01;
    // A = -exp(A_log) as in Mamba, with a spread of decay rates.
    const std::vector<int64_t> lead = c.per_example ? std::vector<int64_t>{c.B} : std::vector<int64_t>{};
    auto shape = [&](std::vector<int64_t> s) {
        s.insert(s.begin(), lead.begin(), lead.end());
        return s;
    };
    p.A = -torch::exp(torch::randn(shape({c.E, c.N}), o) * 0.7);
    p.Bm = torch::randn({c.B, c.L, c.N}, o);
    p.Cm = torch::randn({c.B, c.L, c.N}, o);
    p.D = torch::randn(shape({c.E}), o);
    if (c.z) p.z = torch::randn({c.B, c.L, c.E}, o);
    if (c.bias) p.bias = torch::randn(shape({c.E}), o) * 0.5;
    // ... and delta + bias too (a negative step grows exp(delta A) without bound)
    if (c.bias && !c.softplus) p.bias = p.bias.abs();
    p.gout = torch::randn({c.B, c.L, c.E}, o);
    return p;
}

struct Result {
    torch::Tensor out;
    std::vector<torch::Tensor> grads;  // u, delta, A, Bm, Cm, D, z, bias (undefined when absent)
};

const char* kNames[] = {"u", "delta", "A", "Bm", "Cm", "D", "z", "delta_bias"};

Result run(const Problem& pr, const Case& c, torch::ScalarType dt, bool fused) {
    auto leaf = [&](const torch::Tensor& t) {
        return t.defined() ? t.to(dt).detach().requires_grad_(true) : torch::Tensor();
    };
    std::vector<torch::Tensor> in = {leaf(pr.u),  leaf(pr.delta), leaf(pr.A), leaf(pr.Bm),
                                     leaf(pr.Cm), leaf(pr.D),     leaf(pr.z), leaf(pr.bias)};
    c10::optional<torch::Tensor> z, bias;
    if (in[6].defined()) z = in[6];
    if (in[7].defined()) bias = in[7];
    auto f = fused ? selective_scan : selective_scan_ref;
    Result r;
    r.out = f(in[0], in[1], in[2], in[3], in[4], in[5], z, bias, c.softplus);
    r.out.backward(pr.gout.to(dt));
    for (auto& t : in) r.grads.push_back(t.defined() ? t.grad() : torch::Tensor());
    return r;
}

// max |a - b| / max |b|: an error relative to the tensor's scale, so entries
// that are sums with cancellation (dA, dBm, ...) do not need a separate atol.
double rel_err(const torch::Tensor& a, const torch::Tensor& b) {
    auto bd = b.to(torch::kDouble), ad = a.to(torch::kDouble);
    const double scale = std::max(bd.abs().max().item<double>(), 1e-30);
    return (ad - bd).abs().max().item<double>() / scale;
}

// Worst relative error of a fused run against the float64 reference, over the
// output and every gradient.
double compare(const Case& c, uint64_t seed, torch::ScalarType dt, std::string* worst = nullptr) {
    auto pr = make_problem(c, seed);
    auto ref = run(pr, c, torch::kDouble, false);
    auto got = run(pr, c, dt, true);
    REQUIRE(got.out.sizes() == ref.out.sizes());
    double e = rel_err(got.out, ref.out);
    if (worst) *worst = "out";
    for (size_t i = 0; i < ref.grads.size(); i++) {
        REQUIRE(got.grads[i].defined() == ref.grads[i].defined());
        if (!ref.grads[i].defined()) continue;
        REQUIRE(got.grads[i].sizes() == ref.grads[i].sizes());
        const double ei = rel_err(got.grads[i], ref.grads[i]);
        if (ei > e) {
            e = ei;
            if (worst) *worst = kNames[i];
        }
    }
    return e;
}

std::string describe(const Case& c) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "B=%lld L=%lld E=%lld N=%lld z=%d bias=%d softplus=%d per_example=%d",
                  (long long)c.B, (long long)c.L, (long long)c.E, (long long)c.N, c.z, c.bias, c.softplus,
                  c.per_example);
    return buf;
}

// Every combination of the three options on one shape.
std::vector<Case> with_options(int64_t B, int64_t L, int64_t E, int64_t N) {
    std::vector<Case> cs;
    for (int m = 0; m < 8; m++) cs.push_back({B, L, E, N, bool(m & 1), bool(m & 2), bool(m & 4)});
    return cs;
}

struct ThreadsGuard {
    int saved;
    explicit ThreadsGuard(int n) : saved(torch::get_num_threads()) { torch::set_num_threads(n); }
    ~ThreadsGuard() { torch::set_num_threads(saved); }
};

struct ChunkGuard {
    int64_t saved;
    explicit ChunkGuard(int64_t k) : saved(selective_scan_chunk()) { selective_scan_set_chunk(k); }
    ~ChunkGuard() { selective_scan_set_chunk(saved); }
};

void check_shapes(const std::vector<Case>& cases, double tol32, double tol64) {
    double worst32 = 0, worst64 = 0;
    for (const auto& c : cases) {
        std::string w32, w64;
        const double e32 = compare(c, 1234, torch::kFloat, &w32);
        const double e64 = compare(c, 1234, torch::kDouble, &w64);
        INFO(describe(c), " float32 err ", e32, " (", w32, ")  float64 err ", e64, " (", w64, ")");
        CHECK(e32 < tol32);
        CHECK(e64 < tol64);
        worst32 = std::max(worst32, e32), worst64 = std::max(worst64, e64);
    }
    MESSAGE("worst relative error vs float64 reference over ", cases.size(), " cases: float32 ", worst32,
            ", float64 ", worst64);
}

}  // namespace

TEST_CASE("selective_scan matches the float64 reference: small and odd shapes") {
    ThreadsGuard th(2);
    std::vector<Case> cases;
    for (auto s : {std::vector<int64_t>{3, 7, 5, 3},   // odd everything, runtime N
                   std::vector<int64_t>{2, 1, 4, 16},  // L = 1
                   std::vector<int64_t>{1, 1, 1, 1},
                   std::vector<int64_t>{2, 9, 20, 8},  // partial channel block, N = 8
                   std::vector<int64_t>{2, 5, 16, 4},
                   std::vector<int64_t>{2, 6, 16, 33},  // N padded to 64
                   std::vector<int64_t>{1, 5, 3, 70}}) {  // N above every compiled size
        auto cs = with_options(s[0], s[1], s[2], s[3]);
        cases.insert(cases.end(), cs.begin(), cs.end());
    }
    check_shapes(cases, 1e-5, 1e-12);
}

TEST_CASE("selective_scan matches the reference for extreme delta (softplus threshold, exp clamps)") {
    // delta + bias spread over about +-40: softplus's identity branch above
    // 20, exp(delta * A) underflowing far below the clamp, and positive
    // entries in A (exp of positive arguments).
    ThreadsGuard th(2);
    for (const Case& c : {Case{2, 9, 19, 16, true, true, true}, Case{2, 9, 19, 16, false, false, true}}) {
        auto pr = make_problem(c, 77);
        pr.delta = pr.delta * 15.0;
        pr.A = torch::where(torch::rand_like(pr.A) < 0.1, -pr.A * 0.05, pr.A * 3.0);
        auto ref = run(pr, c, torch::kDouble, false);
        for (auto dt : {torch::kFloat, torch::kDouble}) {
            auto got = run(pr, c, dt, true);
            double e = rel_err(got.out, ref.out);
            for (size_t i = 0; i < ref.grads.size(); i++)
                if (ref.grads[i].defined()) e = std::max(e, rel_err(got.grads[i], ref.grads[i]));
            INFO(describe(c), dt == torch::kFloat ? " float32" : " float64", " worst relative error ", e);
            CHECK(e < (dt == torch::kFloat ? 1e-5 : 1e-12));
            CHECK(std::isfinite(got.out.sum().item<double>()));
        }
    }
}

TEST_CASE("selective_scan matches the reference across chunk boundaries") {
    ThreadsGuard th(2);
    // Chunk lengths that divide L, leave a remainder, equal L, exceed L, and 1.
    for (int64_t K : {1, 3, 7, 8, 64}) {
        ChunkGuard ck(K);
        INFO("chunk ", K);
        check_shapes({{3, 7, 5, 3, true, true, true}, {2, 16, 17, 16, true, false, true}}, 1e-5, 1e-12);
    }
}

TEST_CASE("selective_scan matches the reference with many channel groups (small B)") {
    // B < 2 * threads splits each batch element's channels into groups whose
    // dBm/dCm partials are summed afterwards.
    for (int threads : {1, 2, 3, 4}) {
        ThreadsGuard th(threads);
        INFO("threads ", threads);
        check_shapes({{1, 12, 80, 16, true, true, true}, {3, 6, 37, 5, false, true, true},
                      {2, 10, 48, 32, true, false, false}},
                     1e-5, 1e-12);
    }
}

TEST_CASE("selective_scan matches the reference on a long sequence (L = 784)") {
    ThreadsGuard th(2);
    check_shapes({{2, 784, 4, 16, true, true, true}, {1, 784, 3, 8, false, false, true}}, 1e-5, 1e-12);
}

TEST_CASE("selective_scan central-difference gradient check (float64)") {
    ThreadsGuard th(2);
    ChunkGuard ck(2);  // several chunks even for L = 5
    for (const Case& c : {Case{2, 5, 3, 3, true, true, true}, Case{1, 4, 17, 2, false, false, false}}) {
        INFO(describe(c));
        auto pr = make_problem(c, 99);
        // Analytic gradients of loss = sum(out * gout).
        auto an = run(pr, c, torch::kDouble, true);
        std::vector<torch::Tensor> in = {pr.u, pr.delta, pr.A, pr.Bm, pr.Cm, pr.D, pr.z, pr.bias};
        auto loss = [&]() {
            c10::optional<torch::Tensor> z, bias;
            if (in[6].defined()) z = in[6];
            if (in[7].defined()) bias = in[7];
            torch::NoGradGuard ng;
            return (selective_scan(in[0], in[1], in[2], in[3], in[4], in[5], z, bias, c.softplus) * pr.gout)
                .sum()
                .item<double>();
        };
        const double eps = 1e-6;
        double worst_all = 0;
        for (size_t k = 0; k < in.size(); k++) {
            if (!in[k].defined()) continue;
            in[k] = in[k].clone();
            auto flat = in[k].view(-1);
            auto g = an.grads[k].reshape(-1);
            double worst = 0;
            for (int64_t i = 0; i < flat.numel(); i++) {
                const double x0 = flat[i].item<double>();
                flat[i] = x0 + eps;
                const double lp = loss();
                flat[i] = x0 - eps;
                const double lm = loss();
                flat[i] = x0;
                const double fd = (lp - lm) / (2 * eps);
                const double a = g[i].item<double>();
                worst = std::max(worst, std::abs(fd - a) / std::max(1.0, std::abs(a)));
            }
            INFO("input ", kNames[k], " worst fd error ", worst);
            CHECK(worst < 1e-7);
            worst_all = std::max(worst_all, worst);
        }
        MESSAGE(describe(c), ": worst central-difference error ", worst_all);
    }
}

TEST_CASE("selective_scan is deterministic: two runs are bit-identical") {
    for (int threads : {1, 2, 4}) {
        ThreadsGuard th(threads);
        for (const Case& c : {Case{3, 50, 40, 16, true, true, true}, Case{8, 33, 128, 16, true, true, true},
                              Case{1, 70, 64, 16, false, true, true}}) {
            INFO(describe(c), " threads ", threads);
            auto pr = make_problem(c, 7);
            auto r1 = run(pr, c, torch::kFloat, true);
            auto r2 = run(pr, c, torch::kFloat, true);
            CHECK(torch::equal(r1.out, r2.out));
            for (size_t i = 0; i < r1.grads.size(); i++) {
                if (!r1.grads[i].defined()) continue;
                INFO("grad of ", kNames[i]);
                CHECK(torch::equal(r1.grads[i], r2.grads[i]));
            }
        }
    }
}

TEST_CASE("selective_scan without grad gives the same output and records no graph") {
    ThreadsGuard th(2);
    Case c{3, 20, 24, 16, true, true, true};
    auto pr = make_problem(c, 5);
    auto f = [&](const torch::Tensor& t) { return t.to(torch::kFloat); };
    auto with_grad = run(pr, c, torch::kFloat, true).out.detach();
    auto plain = selective_scan(f(pr.u), f(pr.delta), f(pr.A), f(pr.Bm), f(pr.Cm), f(pr.D), f(pr.z), f(pr.bias), true);
    CHECK_FALSE(plain.requires_grad());
    CHECK(torch::equal(plain, with_grad));
}

TEST_CASE("selective_scan accepts non-contiguous inputs") {
    ThreadsGuard th(2);
    Case c{2, 6, 8, 4, true, true, true};
    auto pr = make_problem(c, 11);
    auto ref = selective_scan_ref(pr.u, pr.delta, pr.A, pr.Bm, pr.Cm, pr.D, pr.z, pr.bias, true);
    // Same values, transposed storage.
    auto nc = [](const torch::Tensor& t) { return t.transpose(0, -1).contiguous().transpose(0, -1); };
    auto got = selective_scan(nc(pr.u), nc(pr.delta), nc(pr.A), nc(pr.Bm), nc(pr.Cm), pr.D, nc(pr.z), pr.bias, true);
    CHECK(rel_err(got, ref) < 1e-12);
}

// DP-SGD's expanded weights (train/trainer.h): A, D and delta_bias given per
// batch element. Against the float64 reference (plain autograd over the same
// broadcast maths), every option and the multi-group backward; and equal
// rows give the shared op's output, with per-example gradients that sum to
// the shared gradient.
TEST_CASE("selective_scan with per-example A, D, delta_bias: the reference, and the shared op when rows are equal") {
    std::vector<Case> cases;
    std::vector<Case> shapes = with_options(3, 37, 20, 5), groups = with_options(1, 9, 70, 16);  // groups of blocks
    shapes.insert(shapes.end(), groups.begin(), groups.end());
    for (Case c : shapes) {
        c.per_example = true;
        cases.push_back(c);
    }
    check_shapes(cases, 2e-5, 1e-12);

    const Case sc{4, 19, 33, 6, true, true, true};
    Problem shared = make_problem(sc, 77), pe = shared;
    pe.A = shared.A.unsqueeze(0).expand({sc.B, sc.E, sc.N}).contiguous();
    pe.D = shared.D.unsqueeze(0).expand({sc.B, sc.E}).contiguous();
    pe.bias = shared.bias.unsqueeze(0).expand({sc.B, sc.E}).contiguous();
    Case pc = sc;
    pc.per_example = true;
    for (auto dt : {torch::kFloat, torch::kDouble}) {
        Result a = run(shared, sc, dt, true), b = run(pe, pc, dt, true);
        CHECK(torch::equal(a.out, b.out));  // the same numbers in the same order
        for (int i : {2, 5, 7}) {           // A, D, delta_bias
            CAPTURE(kNames[i]);
            REQUIRE(b.grads[i].size(0) == sc.B);
            CHECK(rel_err(b.grads[i].sum(0), a.grads[i]) < (dt == torch::kFloat ? 1e-5 : 1e-13));
        }
        for (int i : {0, 1, 3, 4, 6}) CHECK(torch::equal(a.grads[i], b.grads[i]));
    }
}

TEST_CASE("selective_scan rejects bad inputs with a clear error") {
    auto o = torch::TensorOptions().dtype(torch::kFloat);
    auto u = torch::randn({2, 3, 4}, o), A = torch::randn({4, 5}, o), Bm = torch::randn({2, 3, 5}, o);
    auto D = torch::randn({4}, o);
    CHECK_THROWS(selective_scan(u[0], u[0], A, Bm, Bm, D, {}, {}, true));                     // u not 3-d
    CHECK_THROWS(selective_scan(u, u, torch::randn({4, 6}, o), Bm, Bm, D, {}, {}, true));       // N mismatch
    CHECK_THROWS(selective_scan(u, u.to(torch::kDouble), A, Bm, Bm, D, {}, {}, true));         // dtype mix
    CHECK_THROWS(selective_scan(u, u, A, Bm, Bm, torch::randn({5}, o), {}, {}, true));         // D shape
    CHECK_THROWS(selective_scan(u, u, torch::randn({3, 4, 5}, o), Bm, Bm, D, {}, {}, true));    // A: B 3, not 2
    CHECK_THROWS(selective_scan(u, u, A, Bm, Bm, torch::randn({3, 4}, o), {}, {}, true));      // per-example D: B 3
    CHECK_NOTHROW(selective_scan(u, u, torch::randn({2, 4, 5}, o), Bm, Bm, torch::randn({2, 4}, o), {},
                                 torch::randn({2, 4}, o), true));
    CHECK_THROWS(selective_scan(u.to(torch::kInt), u, A, Bm, Bm, D, {}, {}, true));            // dtype
    CHECK_NOTHROW(selective_scan(u, u, A, Bm, Bm, D, {}, {}, true));
}

// The engine's scan (mamba.cpp, used at inference) and this op (used in
// training) must compute the same function, or a model would behave
// differently once exported. Same float32 inputs, one sequence at a time
// through the engine; delta goes in already through softplus(delta + bias),
// which is what the engine receives from its own dt_proj.
TEST_CASE("the engine's mamba_scan agrees with the op to 1e-5 on the same inputs") {
    for (const Case& c : {Case{3, 1, 5, 3, true, true, true}, Case{2, 49, 128, 16, true, true, true},
                          Case{2, 37, 17, 7, false, true, true}, Case{1, 784, 32, 16, true, true, true}}) {
        INFO(describe(c));
        auto pr = make_problem(c, 99);
        auto f = [](const torch::Tensor& t) { return t.defined() ? t.to(torch::kFloat).contiguous() : t; };
        auto u = f(pr.u), A = f(pr.A), Bm = f(pr.Bm), Cm = f(pr.Cm), D = f(pr.D), z = f(pr.z);
        auto delta_eff = torch::nn::functional::softplus(f(pr.delta) + f(pr.bias)).contiguous();
        torch::NoGradGuard no_grad;
        c10::optional<torch::Tensor> zo;
        if (z.defined()) zo = z;
        auto want = selective_scan(u, f(pr.delta), A, Bm, Cm, D, zo, f(pr.bias), /*delta_softplus=*/true);

        auto got = torch::empty_like(u);
        std::vector<float> h(c.E * c.N);
        for (int64_t b = 0; b < c.B; b++) {
            std::fill(h.begin(), h.end(), 0.f);
            mamba_scan((int)c.L, (int)c.E, (int)c.N, u[b].data_ptr<float>(), delta_eff[b].data_ptr<float>(),
                       A.data_ptr<float>(), Bm[b].data_ptr<float>(), Cm[b].data_ptr<float>(), D.data_ptr<float>(),
                       z.defined() ? z[b].data_ptr<float>() : nullptr, got[b].data_ptr<float>(), h.data());
        }
        const double e = rel_err(got, want);
        MESSAGE(describe(c), ": engine vs op, max |diff| / max |op| = ", e);
        CHECK(e <= 1e-5);
    }
}
