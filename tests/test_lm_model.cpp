// test_lm_model.cpp: the language models of train/lm_model.h against
// definitions that share no code with them.
//   - TransformerLM's forward equals a plain-loop double-precision GPT-NeoX
//     written out here from HF's modeling_gpt_neox.py: per-head qkv rows,
//     NeoX half-split partial rotary, parallel (and sequential) residual,
//     erf GELU, untied head; and the same reference with a misread layout
//     (blocked [Q;K;V] rows, interleaved rotary pairs) does NOT match, so the
//     test can tell the layouts apart
//   - MambaLM's forward equals a plain-loop recurrent Mamba (mamba_ssm's
//     selective_scan_ref, one token at a time) with a tied head
//   - causality: changing token t leaves the logits before t unchanged
//   - the presets pair up: each mamba-lm-X / transformer-lm-X has
//     non-embedding parameter counts (from the built modules, checked
//     against a closed-form count) within 10% of each other
//
// LibTorch before doctest: glog (pulled in by c10) defines CHECK too.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "common/config.h"
#include "train/lm_model.h"

using namespace mmia;

namespace {

using Mat = std::vector<std::vector<double>>;  // [rows][cols]

// Parameters by their state-dict name, as doubles: the reference reads the
// model only through these names (the packed format's and HF's).
struct Params {
    std::map<std::string, torch::Tensor> t;
    explicit Params(torch::nn::Module& m) {
        for (auto& p : m.named_parameters()) t[p.key()] = p.value().detach().to(torch::kFloat64).contiguous();
    }
    const torch::Tensor& operator[](const std::string& k) const {
        auto it = t.find(k);
        REQUIRE_MESSAGE(it != t.end(), "no parameter " << k);
        return it->second;
    }
    double at(const std::string& k, int64_t i) const { return (*this)[k].data_ptr<double>()[i]; }
    double at(const std::string& k, int64_t i, int64_t j) const {
        const auto& x = (*this)[k];
        return x.data_ptr<double>()[i * x.size(1) + j];
    }
};

// y = W x + b for W (out, in) named w, bias named b ("" = none).
std::vector<double> linear(const Params& P, const std::string& w, const std::string& b,
                           const std::vector<double>& x) {
    const int64_t out = P[w].size(0), in = P[w].size(1);
    REQUIRE(in == int64_t(x.size()));
    std::vector<double> y(static_cast<size_t>(out), 0.0);
    for (int64_t o = 0; o < out; o++) {
        double s = b.empty() ? 0.0 : P.at(b, o);
        for (int64_t i = 0; i < in; i++) s += P.at(w, o, i) * x[size_t(i)];
        y[size_t(o)] = s;
    }
    return y;
}

std::vector<double> layer_norm(const Params& P, const std::string& prefix, const std::vector<double>& x, double eps) {
    const size_t n = x.size();
    double mean = 0, var = 0;
    for (double v : x) mean += v;
    mean /= double(n);
    for (double v : x) var += (v - mean) * (v - mean);
    var /= double(n);
    std::vector<double> y(n);
    for (size_t i = 0; i < n; i++)
        y[i] = (x[i] - mean) / std::sqrt(var + eps) * P.at(prefix + ".weight", int64_t(i)) + P.at(prefix + ".bias", int64_t(i));
    return y;
}

std::vector<double> rms_norm(const Params& P, const std::string& w, const std::vector<double>& x, double eps) {
    double ms = 0;
    for (double v : x) ms += v * v;
    ms /= double(x.size());
    std::vector<double> y(x.size());
    for (size_t i = 0; i < x.size(); i++) y[i] = x[i] / std::sqrt(ms + eps) * P.at(w, int64_t(i));
    return y;
}

double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }
double silu(double x) { return x / (1.0 + std::exp(-x)); }
double softplus(double x) { return x > 20 ? x : std::log1p(std::exp(x)); }

// Ways to misread GPT-NeoX, for checking that the reference tells them apart.
struct NeoXReading {
    bool blocked_qkv = false;         // q = rows [0, D), k = [D, 2D), v = [2D, 3D) (llama.cpp's reordered layout)
    bool interleaved_rotary = false;  // GPT-J pairs (2j, 2j+1) instead of NeoX (j, j + r/2)
};

// GPT-NeoX logits (T, V) for `tokens`, in double, token by token.
Mat neox_reference(torch::nn::Module& m, const TransformerLmConfig& c, const std::vector<int64_t>& tokens,
                   NeoXReading how = {}) {
    Params P(m);
    const int64_t T = int64_t(tokens.size()), D = c.d_model, H = c.n_heads, dh = D / H;
    const int64_t r = int64_t(double(dh) * c.rotary_pct);
    Mat x(static_cast<size_t>(T), std::vector<double>(size_t(D)));
    for (int64_t t = 0; t < T; t++)
        for (int64_t d = 0; d < D; d++) x[size_t(t)][size_t(d)] = P.at("embed_in.weight", tokens[size_t(t)], d);
    auto rotate = [&](std::vector<double>& v, int64_t pos) {  // one head's q or k (d_h)
        for (int64_t j = 0; j < r / 2; j++) {
            const double theta = double(pos) * std::pow(c.rotary_base, -2.0 * double(j) / double(r));
            const int64_t a = how.interleaved_rotary ? 2 * j : j, b = how.interleaved_rotary ? 2 * j + 1 : j + r / 2;
            const double va = v[size_t(a)], vb = v[size_t(b)];
            v[size_t(a)] = va * std::cos(theta) - vb * std::sin(theta);
            v[size_t(b)] = vb * std::cos(theta) + va * std::sin(theta);
        }
    };
    for (int l = 0; l < c.n_layers; l++) {
        const std::string p = "layers." + std::to_string(l) + ".";
        Mat qkv(static_cast<size_t>(T)), attn(static_cast<size_t>(T)), mlp(static_cast<size_t>(T));
        for (int64_t t = 0; t < T; t++)
            qkv[size_t(t)] = linear(P, p + "attention.query_key_value.weight", p + "attention.query_key_value.bias",
                                    layer_norm(P, p + "input_layernorm", x[size_t(t)], c.norm_eps));
        // q, k, v of head h at position t, rotated.
        auto part = [&](int64_t t, int64_t h, int which) {
            std::vector<double> v(static_cast<size_t>(dh));
            for (int64_t j = 0; j < dh; j++) {
                const int64_t row = how.blocked_qkv ? which * D + h * dh + j : h * 3 * dh + which * dh + j;
                v[size_t(j)] = qkv[size_t(t)][size_t(row)];
            }
            if (which < 2) rotate(v, t);
            return v;
        };
        for (int64_t t = 0; t < T; t++) {
            std::vector<double> heads(static_cast<size_t>(D), 0.0);
            for (int64_t h = 0; h < H; h++) {
                auto q = part(t, h, 0);
                std::vector<double> s(static_cast<size_t>(t + 1));
                double mx = -1e300;
                for (int64_t u = 0; u <= t; u++) {  // causal: keys u <= t
                    auto k = part(u, h, 1);
                    double dot = 0;
                    for (int64_t j = 0; j < dh; j++) dot += q[size_t(j)] * k[size_t(j)];
                    s[size_t(u)] = dot / std::sqrt(double(dh));
                    mx = std::max(mx, s[size_t(u)]);
                }
                double z = 0;
                for (double& e : s) z += (e = std::exp(e - mx));
                for (int64_t u = 0; u <= t; u++) {
                    auto v = part(u, h, 2);
                    for (int64_t j = 0; j < dh; j++) heads[size_t(h * dh + j)] += s[size_t(u)] / z * v[size_t(j)];
                }
            }
            attn[size_t(t)] = linear(P, p + "attention.dense.weight", p + "attention.dense.bias", heads);
        }
        for (int64_t t = 0; t < T; t++) {
            std::vector<double> in = x[size_t(t)];
            if (!c.parallel_residual)  // sequential: the MLP sees x + attn
                for (int64_t d = 0; d < D; d++) in[size_t(d)] += attn[size_t(t)][size_t(d)];
            auto h4 = linear(P, p + "mlp.dense_h_to_4h.weight", p + "mlp.dense_h_to_4h.bias",
                             layer_norm(P, p + "post_attention_layernorm", in, c.norm_eps));
            for (double& v : h4) v = gelu(v);
            mlp[size_t(t)] = linear(P, p + "mlp.dense_4h_to_h.weight", p + "mlp.dense_4h_to_h.bias", h4);
            for (int64_t d = 0; d < D; d++)
                x[size_t(t)][size_t(d)] += attn[size_t(t)][size_t(d)] + mlp[size_t(t)][size_t(d)];
        }
    }
    Mat logits(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; t++)
        logits[size_t(t)] = linear(P, "embed_out.weight", "", layer_norm(P, "final_layer_norm", x[size_t(t)], c.norm_eps));
    return logits;
}

// Mamba LM logits (T, V) for `tokens`: mamba_ssm's recurrence one token at a
// time, in double, the head tied to the embedding.
Mat mamba_reference(torch::nn::Module& m, const MambaLmConfig& lc, const std::vector<int64_t>& tokens) {
    Params P(m);
    const MambaConfig& c = lc.block;
    const int64_t T = int64_t(tokens.size()), D = c.d_model, E = c.d_inner(), N = c.d_state, K = c.d_conv,
                  R = c.dt_rank, V = lc.vocab;
    Mat x(static_cast<size_t>(T), std::vector<double>(size_t(D)));
    for (int64_t t = 0; t < T; t++)
        for (int64_t d = 0; d < D; d++) x[size_t(t)][size_t(d)] = P.at("embedding.weight", tokens[size_t(t)], d);
    for (int l = 0; l < c.n_layers; l++) {
        const std::string p = "layers." + std::to_string(l) + ".";
        Mat xs(static_cast<size_t>(T)), zs(static_cast<size_t>(T));
        for (int64_t t = 0; t < T; t++) {
            auto xz = linear(P, p + "in_proj.weight", "", rms_norm(P, p + "norm.weight", x[size_t(t)], c.norm_eps));
            xs[size_t(t)].assign(xz.begin(), xz.begin() + E);
            zs[size_t(t)].assign(xz.begin() + E, xz.end());
        }
        std::vector<double> state(size_t(E * N), 0.0);
        const auto& cw = P[p + "conv1d.weight"];  // (E, 1, K)
        for (int64_t t = 0; t < T; t++) {
            std::vector<double> u(static_cast<size_t>(E));
            for (int64_t e = 0; e < E; e++) {  // causal depthwise conv: inputs t-K+1 .. t
                double s = P.at(p + "conv1d.bias", e);
                for (int64_t k = 0; k < K; k++) {
                    const int64_t src = t - (K - 1) + k;
                    if (src >= 0) s += cw.data_ptr<double>()[e * K + k] * xs[size_t(src)][size_t(e)];
                }
                u[size_t(e)] = silu(s);
            }
            auto xdbl = linear(P, p + "x_proj.weight", "", u);  // dt (R), B (N), C (N)
            std::vector<double> dt_in(xdbl.begin(), xdbl.begin() + R);
            auto delta = linear(P, p + "dt_proj.weight", p + "dt_proj.bias", dt_in);
            std::vector<double> y(static_cast<size_t>(E));
            for (int64_t e = 0; e < E; e++) {
                const double dl = softplus(delta[size_t(e)]);
                double acc = 0;
                for (int64_t n = 0; n < N; n++) {
                    const double A = -std::exp(P.at(p + "A_log", e, n));
                    double& s = state[size_t(e * N + n)];
                    s = std::exp(dl * A) * s + dl * xdbl[size_t(R + n)] * u[size_t(e)];
                    acc += s * xdbl[size_t(R + N + n)];
                }
                y[size_t(e)] = (acc + P.at(p + "D", e) * u[size_t(e)]) * silu(zs[size_t(t)][size_t(e)]);
            }
            auto out = linear(P, p + "out_proj.weight", "", y);
            for (int64_t d = 0; d < D; d++) x[size_t(t)][size_t(d)] += out[size_t(d)];
        }
    }
    Mat logits(static_cast<size_t>(T), std::vector<double>(size_t(V)));
    for (int64_t t = 0; t < T; t++) {
        auto h = rms_norm(P, "norm_f.weight", x[size_t(t)], c.norm_eps);
        for (int64_t v = 0; v < V; v++) {
            double s = 0;
            for (int64_t d = 0; d < D; d++) s += P.at("embedding.weight", v, d) * h[size_t(d)];
            logits[size_t(t)][size_t(v)] = s;
        }
    }
    return logits;
}

double max_abs_diff(const torch::Tensor& logits, const Mat& ref) {  // logits (1, T, V)
    auto a = logits.detach().to(torch::kFloat64).contiguous();
    const int64_t T = a.size(1), V = a.size(2);
    REQUIRE(int64_t(ref.size()) == T);
    double m = 0;
    for (int64_t t = 0; t < T; t++)
        for (int64_t v = 0; v < V; v++)
            m = std::max(m, std::fabs(a.data_ptr<double>()[t * V + v] - ref[size_t(t)][size_t(v)]));
    return m;
}

// Every parameter moved off its initial value (LayerNorm 1/0, D = 1, ...), so
// a term the forward drops or misplaces shows.
void randomize(torch::nn::Module& m, double scale) {
    torch::NoGradGuard no_grad;
    for (auto& p : m.named_parameters()) {
        auto& t = p.value();
        if (p.key().find("A_log") != std::string::npos)
            t.add_(torch::rand_like(t) * 0.5);  // keep A = -exp(A_log) negative and moderate
        else if (p.key().find("norm") != std::string::npos && p.key().find(".weight") != std::string::npos)
            t.copy_(1.0 + 0.3 * torch::randn_like(t));
        else
            t.add_(scale * torch::randn_like(t));
    }
}

TransformerLmConfig tiny_neox() {
    TransformerLmConfig c;
    c.d_model = 16;
    c.n_layers = 2;
    c.n_heads = 2;      // d_h = 8
    c.d_ff = 24;        // not 4D: a swapped F and D shows
    c.rotary_pct = 0.5; // r = 4 of 8 dims: half-split pairs (0,2),(1,3), interleaved (0,1),(2,3)
    c.rotary_base = 10000;
    c.context = 32;
    return c;
}

MambaLmConfig tiny_mamba() {
    MambaLmConfig c;
    c.block.d_model = 8;
    c.block.n_layers = 2;
    c.block.d_state = 4;
    c.block.d_conv = 3;
    c.block.expand = 2;
    c.block.dt_rank = 2;
    c.context = 32;
    return c;
}

std::vector<int64_t> some_tokens(int64_t T, uint64_t seed) {
    std::vector<int64_t> v;
    uint64_t s = seed;
    for (int64_t i = 0; i < T; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        v.push_back(int64_t((s >> 33) % 256));
    }
    return v;
}

torch::Tensor as_batch(const std::vector<int64_t>& v) {
    return torch::tensor(v, torch::kInt64).view({1, int64_t(v.size())});
}

}  // namespace

TEST_CASE("TransformerLM equals a plain-loop GPT-NeoX; a misread qkv or rotary layout would not") {
    torch::manual_seed(1);
    for (bool parallel : {true, false}) {
        CAPTURE(parallel);
        TransformerLmConfig c = tiny_neox();
        c.parallel_residual = parallel;
        TransformerLM m(c);
        randomize(*m, 0.3);
        const auto tokens = some_tokens(20, 7);
        auto logits = m->forward(as_batch(tokens));
        REQUIRE(logits.sizes() == torch::IntArrayRef({1, 20, 256}));
        const double err = max_abs_diff(logits, neox_reference(*m, c, tokens));
        MESSAGE("transformer max |diff| vs the loop reference: " << err);
        CHECK(err < 1e-4);
        if (parallel) {
            // The reference is sharp enough to see a wrong layout.
            NeoXReading blocked{true, false}, interleaved{false, true};
            CHECK(max_abs_diff(logits, neox_reference(*m, c, tokens, blocked)) > 1e-2);
            CHECK(max_abs_diff(logits, neox_reference(*m, c, tokens, interleaved)) > 1e-3);
        }
    }
}

TEST_CASE("rotary_tables: cos and sin of p * base^(-2j/r), each frequency twice (NeoX)") {
    auto [cos, sin] = rotary_tables(7, 6, 10000.0);
    REQUIRE(cos.sizes() == torch::IntArrayRef({7, 6}));
    for (int p = 0; p < 7; p++)
        for (int i = 0; i < 6; i++) {
            const int j = i % 3;
            const double theta = p * std::pow(10000.0, -2.0 * j / 6.0);
            CHECK(cos[p][i].item<double>() == doctest::Approx(std::cos(theta)).epsilon(1e-6));
            CHECK(sin[p][i].item<double>() == doctest::Approx(std::sin(theta)).epsilon(1e-6));
        }
}

TEST_CASE("MambaLM equals a plain-loop recurrent Mamba with a tied head") {
    torch::manual_seed(2);
    MambaLmConfig c = tiny_mamba();
    MambaLM m(c);
    randomize(*m, 0.3);
    const auto tokens = some_tokens(24, 9);
    auto logits = m->forward(as_batch(tokens));
    REQUIRE(logits.sizes() == torch::IntArrayRef({1, 24, 256}));
    const double err = max_abs_diff(logits, mamba_reference(*m, c, tokens));
    MESSAGE("mamba max |diff| vs the loop reference: " << err);
    CHECK(err < 1e-4);
    // Tied: there is no separate head parameter.
    for (auto& p : m->named_parameters()) CHECK(p.key().find("head") == std::string::npos);
}

TEST_CASE("causality: changing token t changes no logit before t, and some at t") {
    torch::manual_seed(3);
    TransformerLmConfig tc = tiny_neox();
    MambaLmConfig mc = tiny_mamba();
    LanguageModel tf, mb;
    tf.kind = "transformer-lm";
    tf.transformer = TransformerLM(tc);
    mb.kind = "mamba-lm";
    mb.mamba = MambaLM(mc);
    randomize(tf.module(), 0.3);
    randomize(mb.module(), 0.3);
    for (LanguageModel* m : {&tf, &mb}) {
        CAPTURE(m->kind);
        torch::NoGradGuard no_grad;
        auto tokens = some_tokens(24, 11);
        auto a = m->forward(as_batch(tokens));
        for (int64_t t : {0, 5, 13, 23}) {
            auto changed = tokens;
            changed[size_t(t)] = (changed[size_t(t)] + 101) % 256;
            auto b = m->forward(as_batch(changed));
            if (t > 0) CHECK((a.narrow(1, 0, t) - b.narrow(1, 0, t)).abs().max().item<double>() < 1e-6);
            CHECK((a.narrow(1, t, 1) - b.narrow(1, t, 1)).abs().max().item<double>() > 1e-4);
        }
    }
}

TEST_CASE("the LM presets: three or more sizes, each Mamba/transformer pair within 10% in non-embedding parameters") {
    json cfg = load_config_file("config.json");
    int pairs = 0;
    for (auto it = cfg["presets"].begin(); it != cfg["presets"].end(); ++it) {
        const std::string name = it.key();
        if (name.rfind("mamba-lm-", 0) != 0) continue;
        const std::string twin = "transformer-lm-" + name.substr(9);
        REQUIRE_MESSAGE(cfg["presets"].contains(twin), name << " has no twin " << twin);
        ModelSpec ms = resolve_preset(cfg, "mamba-lm", name), ts = resolve_preset(cfg, "transformer-lm", twin);
        torch::manual_seed(0);
        LanguageModel m = LanguageModel::build(ms), t = LanguageModel::build(ts);
        const int64_t nm = m.non_embedding_parameters(), nt = t.non_embedding_parameters();
        // Closed forms, from the shapes in docs/FORMAT.md.
        const MambaConfig& b = ms.mamba_lm.block;
        const int64_t D = b.d_model, E = b.d_inner(), N = b.d_state, K = b.d_conv, R = b.dt_rank;
        const int64_t mamba_layer = D + 2 * E * D + E * K + E + (R + 2 * N) * E + E * R + E + E * N + E + D * E;
        CHECK(nm == b.n_layers * mamba_layer + D);
        const TransformerLmConfig& tc = ts.transformer_lm;
        const int64_t Dt = tc.d_model, F = tc.d_ff;
        const int64_t tf_layer = 4 * Dt + 3 * Dt * Dt + 3 * Dt + Dt * Dt + Dt + F * Dt + F + Dt * F + Dt;
        CHECK(nt == tc.n_layers * tf_layer + 2 * Dt);
        int64_t all_m = 0, all_t = 0;
        for (const auto& p : m.module().parameters()) all_m += p.numel();
        for (const auto& p : t.module().parameters()) all_t += p.numel();
        CHECK(all_m == nm + 256 * D);        // tied head: one V x D matrix
        CHECK(all_t == nt + 2 * 256 * Dt);   // embed_in and embed_out
        CHECK(D == Dt);                       // equal width
        CHECK(ms.mamba_lm.context == tc.context);
        CHECK(ms.mamba_lm.vocab == 256);
        CHECK(tc.vocab == 256);
        const double ratio = double(nm) / double(nt);
        MESSAGE(name << " " << nm << " vs " << twin << " " << nt << ": ratio " << ratio);
        CHECK(ratio > 0.9);
        CHECK(ratio < 1.1);
        pairs++;
    }
    CHECK(pairs >= 3);
}
