// test_dp_sgd.cpp: DP-SGD in the image trainer (train/trainer.h) and bin/train,
// each number against an independent definition:
//   - with sigma = 0 and C huge, the DP gradient times q*N is the gradient of
//     the batch's summed loss from one ordinary batched backward (Mamba with
//     its fused scan, and CNN), and one DP step is that SGD step;
//   - clipping: each example's clipped gradient is g_i * min(1, C/(|g_i|+1e-6))
//     with g_i and its norm computed here; removing an example whose gradient
//     is huge moves the summed gradient by at most C (and, clipped, by C);
//   - Poisson sampling: batch sizes' mean nq and variance nq(1-q) over many
//     steps, the share of empty batches (1-q)^n, replay from the seed;
//   - the noise of an empty batch: mean 0 and std sigma*C/(qN);
//   - the privacy statement beside a checkpoint: epsilon equals the
//     accountant's (dp_accountant.h) for the steps actually taken (after one
//     epoch of two, then after both); the resumed run's weights equal an
//     uninterrupted run's; --target-epsilon gives epsilon <= the
//     target and within 1% of it (through bin/train);
//   - label smoothing: classification_loss against the loss written out by
//     hand, and the trainer's epoch loss at lr ~0 equal to it; weight decay
//     (--weight-decay, AdamW's decoupled form): one step with wd moves every
//     weight by -lr*wd*w_init relative to the same step without;
//   - bad DP and regularisation flags through bin/train: one exact error line each; also
//     bin/train's integer flags (a non-integer such as 1e3 says so) and the
//     line for adding epochs to a finished run.
//
// LibTorch before doctest: glog (pulled in by c10) defines CHECK too.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>

#include "tests/cli_check.h"
#include "tests/temp_dir.h"
#include "train/cnn_model.h"
#include "train/dp_accountant.h"
#include "train/mamba_model.h"
#include "train/trainer.h"

using namespace mmia;

namespace {

const std::string kTrain = cli_env_or("TRAIN_BIN", "bin/train");
const std::string kExport = cli_env_or("EXPORT_BIN", "bin/export");
const std::string kCnn = cli_env_or("CNN_BIN", "./cnn");

// 8x8 one-channel images, 3 classes.
constexpr int kH = 8, kW = 8, kClasses = 3;

MambaConfig tiny_mamba() {
    MambaConfig c;
    c.d_model = 8;
    c.n_layers = 2;
    c.d_state = 4;
    c.d_conv = 3;
    c.expand = 2;
    c.dt_rank = 2;
    c.patch_h = c.patch_w = 2;  // 16 tokens: the scan runs
    return c;
}

CnnConfig tiny_cnn() {
    CnnConfig c;
    CnnLayer conv;
    conv.type = "conv";
    conv.out = 4;
    conv.kernel = 3;
    conv.padding = 1;
    conv.activation = "tanh";
    CnnLayer valid = conv;  // no padding, as in shokri: 8x8 -> 6x6
    valid.out = 3;
    valid.padding = 0;
    valid.activation = "relu";
    CnnLayer pool;
    pool.type = "maxpool";
    pool.kernel = 2;
    CnnLayer flat;
    flat.type = "flatten";
    CnnLayer head;
    head.type = "dense";
    c.layers = {conv, valid, pool, flat, head};
    return c;
}

struct Batch {
    torch::Tensor x, y;
};
Batch random_batch(int64_t b, uint64_t seed) {
    torch::manual_seed(seed);
    return {torch::rand({b, 1, kH, kW}), torch::randint(0, kClasses, {b}, torch::kInt64)};
}

// A model and its forward, of either kind, and the per-example forward
// dp_sgd_gradients uses (null: microbatches of one).
struct Model {
    std::shared_ptr<torch::nn::Module> module;
    std::function<torch::Tensor(const torch::Tensor&)> forward;
    PerExampleForward per_example;
};
// Every way DP-SGD computes per-example gradients, on every model kind:
// "mamba" and "cnn" by microbatches of one; "mamba/expanded" and
// "cnn/expanded" by expanded weights, "mamba-post-ln/expanded" so on seed
// 000's layout (layer norm with bias, post-norm blocks, pool then norm), and
// "mamba-gn-stem/expanded" on a group-norm conv stem (mamba-cifar-gn's).
const char* const kKinds[] = {"mamba", "mamba/expanded", "mamba-post-ln/expanded", "cnn", "cnn/expanded"};

Model make_model(const std::string& kind, uint64_t seed) {
    torch::manual_seed(seed);
    const std::vector<float> mean{0.5f}, stdv{0.25f};
    if (kind.rfind("mamba", 0) == 0) {
        MambaConfig c = tiny_mamba();
        if (kind.rfind("mamba-post-ln", 0) == 0) c.norm = "layernorm", c.norm_placement = "post";
        if (kind.rfind("mamba-gn-stem", 0) == 0) {  // mamba-cifar-gn's layout: a conv stem with group norm
            c.stem = {4};
            c.stem_norm = "group";
            c.stem_groups = 2;
        }
        MambaClassifier m(c, 1, kH, kW, kClasses, mean, stdv);
        const bool expanded = kind.find("/expanded") != std::string::npos;
        if (expanded) {  // weights away from their init: every path matters
            torch::NoGradGuard ng;
            for (auto& p : m->parameters()) p.add_(torch::randn_like(p) * 0.3);
        }
        return {m.ptr(), [m](const torch::Tensor& x) mutable { return m->forward(x); },
                expanded ? mamba_per_example_forward(m) : nullptr};
    }
    CnnClassifier m(tiny_cnn(), 1, kH, kW, kClasses, mean, stdv);
    const bool expanded = kind.find("/expanded") != std::string::npos;
    return {m.ptr(), [m](const torch::Tensor& x) mutable { return m->forward(x); },
            expanded ? cnn_per_example_forward(m) : nullptr};
}

// The gradient of the batch's summed cross-entropy, one batched backward.
std::vector<torch::Tensor> summed_loss_grad(Model& m, const Batch& b) {
    auto loss = torch::nn::functional::cross_entropy(
        m.forward(b.x), b.y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    return torch::autograd::grad({loss}, m.module->parameters());
}

std::vector<torch::Tensor> grads_of(torch::nn::Module& m) {
    std::vector<torch::Tensor> g;
    for (const auto& p : m.parameters()) g.push_back(p.grad().clone());
    return g;
}

double max_rel_diff(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
    REQUIRE(a.size() == b.size());
    double worst = 0;
    for (size_t j = 0; j < a.size(); j++) {
        const double scale = std::max(1e-3, b[j].abs().max().item<double>());
        worst = std::max(worst, (a[j] - b[j]).abs().max().item<double>() / scale);
    }
    return worst;
}

double flat_norm(const std::vector<torch::Tensor>& g) {
    double s = 0;
    for (const auto& t : g) s += t.to(torch::kFloat64).pow(2).sum().item<double>();
    return std::sqrt(s);
}

std::string read_text(const std::string& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// A training job for the tiny CNN on synthetic data, writing `checkpoint`.
TrainJob tiny_cnn_job(const std::string& checkpoint, int epochs, int batch_size, double lr) {
    TrainJob job;
    job.spec.model = "cnn";
    job.spec.preset = "tiny";
    job.spec.cnn = tiny_cnn();
    job.train.epochs = epochs;
    job.train.batch_size = batch_size;
    job.train.learning_rate = lr;
    job.input = {1, kH, kW, kClasses, {0.5f}, {0.25f}};
    job.dataset = "synthetic";
    job.checkpoint = checkpoint;
    job.verbose = false;
    return job;
}

}  // namespace

TEST_CASE("DP-SGD with sigma 0 and C huge is the batch's summed-loss gradient / (qN), and one step is that SGD step") {
    for (const std::string kind : kKinds) {
        CAPTURE(kind);
        Model m = make_model(kind, 7);
        m.module->train();
        const Batch b = random_batch(9, 11);
        const std::vector<torch::Tensor> ref = summed_loss_grad(m, b);
        DpConfig dp;
        dp.enabled = true;
        dp.noise_multiplier = 0;
        dp.max_grad_norm = 1e9;
        dp.sample_rate = 0.05;
        const int64_t n_train = 200;  // expected batch q*N = 10
        std::vector<torch::Tensor> before;
        for (const auto& p : m.module->parameters()) before.push_back(p.detach().clone());
        DpStepStats st = dp_sgd_gradients(*m.module, m.forward, b.x, b.y, dp, n_train, 0, m.per_example);
        std::vector<torch::Tensor> got = grads_of(*m.module);
        for (auto& g : got) g.mul_(dp.sample_rate * double(n_train));
        // Every parameter (the fused scan's A_log, D, dt bias for the Mamba).
        CHECK(got.size() == ref.size());
        CHECK(max_rel_diff(got, ref) < 1e-5);
        CHECK(st.max_norm > 0);
        // The stats: the summed loss, as the batched forward computes it.
        {
            torch::NoGradGuard ng;
            auto loss = torch::nn::functional::cross_entropy(
                m.forward(b.x), b.y, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
            CHECK(st.loss_sum == doctest::Approx(loss.item<double>()).epsilon(1e-5));
        }
        // One plain SGD step with lr 0.1 on that gradient.
        torch::optim::SGD sgd(m.module->parameters(), torch::optim::SGDOptions(0.1));
        sgd.step();
        std::vector<torch::Tensor> after, expect;
        for (size_t j = 0; j < before.size(); j++) {
            after.push_back(m.module->parameters()[j].detach().clone());
            expect.push_back(before[j] - 0.1 * ref[j] / (dp.sample_rate * double(n_train)));
        }
        CHECK(max_rel_diff(after, expect) < 1e-5);
    }
}

TEST_CASE("clipping: each example's contribution is g_i min(1, C/(|g_i|+1e-6)); a huge example moves the sum by <= C") {
    for (const std::string kind : kKinds) {
        CAPTURE(kind);
        Model m = make_model(kind, 3);
        m.module->train();
        Batch b = random_batch(6, 5);
        // Example 0 made extreme: pixels scaled far outside [0, 1] give a
        // gradient far above C.
        b.x[0].mul_(300.0);
        DpConfig dp;
        dp.enabled = true;
        dp.noise_multiplier = 0;
        dp.max_grad_norm = 0.01;
        dp.sample_rate = 0.1;
        const int64_t n_train = 60;
        const double qn = dp.sample_rate * double(n_train);
        // The definition, example by example, computed here.
        std::vector<torch::Tensor> expect;
        for (const auto& p : m.module->parameters()) expect.push_back(torch::zeros_like(p));
        double norm0 = 0, max_norm = 0;
        for (int64_t i = 0; i < b.x.size(0); i++) {
            Batch one{b.x.narrow(0, i, 1), b.y.narrow(0, i, 1)};
            std::vector<torch::Tensor> g = summed_loss_grad(m, one);
            const double norm = flat_norm(g);
            if (i == 0) norm0 = norm;
            max_norm = std::max(max_norm, norm);
            const double f = std::min(1.0, dp.max_grad_norm / (norm + 1e-6));
            for (size_t j = 0; j < g.size(); j++) expect[j] += f * g[j];
        }
        CHECK(norm0 > 50 * dp.max_grad_norm);
        DpStepStats st = dp_sgd_gradients(*m.module, m.forward, b.x, b.y, dp, n_train, 0, m.per_example);
        // (not always example 0's: a post-norm layer norm undoes most of the scaling)
        CHECK(st.max_norm == doctest::Approx(max_norm).epsilon(1e-4));
        std::vector<torch::Tensor> with = grads_of(*m.module);
        for (auto& g : with) g.mul_(qn);
        CHECK(max_rel_diff(with, expect) < 1e-5);
        // Without example 0: the summed gradient moves by its clipped
        // contribution, of norm C (it was clipped), never more.
        dp_sgd_gradients(*m.module, m.forward, b.x.narrow(0, 1, 5), b.y.narrow(0, 1, 5), dp, n_train, 0,
                         m.per_example);
        std::vector<torch::Tensor> without = grads_of(*m.module);
        std::vector<torch::Tensor> diff;
        for (size_t j = 0; j < with.size(); j++) diff.push_back(with[j] - without[j] * qn);
        const double moved = flat_norm(diff);
        CHECK(moved <= dp.max_grad_norm * (1 + 1e-5));
        CHECK(moved >= dp.max_grad_norm * (1 - 1e-4));
    }
}

TEST_CASE("expanded weights equal microbatches of one: clipped sum, norms and stats, label smoothing on (1e-5)") {
    for (const std::string kind : {"mamba/expanded", "mamba-post-ln/expanded", "mamba-gn-stem/expanded", "cnn/expanded"}) {
        CAPTURE(kind);
        Model m = make_model(kind, 21);
        m.module->train();
        const Batch b = random_batch(13, 8);
        DpConfig dp;
        dp.enabled = true;
        dp.noise_multiplier = 0;
        dp.sample_rate = 0.1;
        const int64_t n_train = 130;
        // C at about the median norm: some examples clipped, some not.
        dp.max_grad_norm = 1e9;
        DpStepStats probe = dp_sgd_gradients(*m.module, m.forward, b.x, b.y, dp, n_train, 0.1);
        const std::vector<torch::Tensor> unclipped = grads_of(*m.module);
        dp.max_grad_norm = probe.max_norm * 0.5;
        DpStepStats loop = dp_sgd_gradients(*m.module, m.forward, b.x, b.y, dp, n_train, 0.1);
        const std::vector<torch::Tensor> want = grads_of(*m.module);
        DpStepStats exp = dp_sgd_gradients(*m.module, m.forward, b.x, b.y, dp, n_train, 0.1, m.per_example);
        const std::vector<torch::Tensor> got = grads_of(*m.module);
        CHECK(max_rel_diff(got, want) < 1e-5);
        CHECK(exp.max_norm == doctest::Approx(loop.max_norm).epsilon(1e-5));
        CHECK(exp.loss_sum == doctest::Approx(loop.loss_sum).epsilon(1e-6));
        CHECK(exp.correct == loop.correct);
        // In chunks of 4 examples (4, 4, 4, 1), as a large Poisson batch runs: the same.
        {
            DpConfig chunked = dp;
            int64_t n_values = 0;
            for (const auto& p : m.module->parameters()) n_values += p.numel();
            chunked.expanded_max_values = 4 * n_values + 3;
            DpStepStats c = dp_sgd_gradients(*m.module, m.forward, b.x, b.y, chunked, n_train, 0.1, m.per_example);
            CHECK(max_rel_diff(grads_of(*m.module), want) < 1e-5);
            CHECK(c.max_norm == doctest::Approx(loop.max_norm).epsilon(1e-5));
            CHECK(c.loss_sum == doctest::Approx(loop.loss_sum).epsilon(1e-6));
            CHECK(c.correct == loop.correct);
        }
        // Clipping was active (the sum changed), and bounds the sum: 13 examples, each <= C.
        CHECK(max_rel_diff(want, unclipped) > 1e-3);
        CHECK(flat_norm(got) * dp.sample_rate * double(n_train) <= 13 * dp.max_grad_norm * (1 + 1e-5));
    }
}

TEST_CASE("a forward with every parameter expanded (convs, dense layers expanded or ghost) gives the shared forward's logits") {
    for (const std::string kind : {"mamba/expanded", "mamba-post-ln/expanded", "mamba-gn-stem/expanded", "cnn/expanded"}) {
        CAPTURE(kind);
        Model m = make_model(kind, 5);
        m.module->train();
        const Batch b = random_batch(7, 2);
        std::vector<torch::Tensor> pe;
        for (const auto& p : m.module->parameters()) {
            std::vector<int64_t> shape{7};
            shape.insert(shape.end(), p.sizes().begin(), p.sizes().end());
            pe.push_back(p.detach().unsqueeze(0).expand(shape).clone());
        }
        const torch::Tensor want = m.forward(b.x);
        GhostTaps ghost;
        CHECK(torch::allclose(m.per_example(b.x, pe, nullptr), want, 1e-5, 1e-6));
        CHECK(torch::allclose(m.per_example(b.x, pe, &ghost), want, 1e-5, 1e-6));
        CHECK(ghost.size() == (kind == "cnn/expanded" ? 1u : 0u));  // the CNN's one dense layer
        // and example 3 with its own weights changed moves example 3's logits only
        torch::NoGradGuard ng;
        for (auto& t : pe) t[3].mul_(1.5);
        const torch::Tensor moved = m.per_example(b.x, pe, nullptr);
        for (int64_t i = 0; i < 7; i++)
            CHECK(torch::allclose(moved[i], want[i], 1e-5, 1e-6) == (i != 3));
    }
}

TEST_CASE("Poisson sampling: batch sizes have mean nq and variance nq(1-q); empty batches occur; the seed replays it") {
    const int64_t n = 1000;
    const double q = 0.05;
    const int steps = 4000;
    std::mt19937_64 rng(123);
    double sum = 0, sum2 = 0;
    std::vector<int64_t> hits(n, 0);
    for (int s = 0; s < steps; s++) {
        std::vector<int64_t> b = poisson_sample(n, q, rng);
        for (size_t i = 1; i < b.size(); i++) REQUIRE(b[i] > b[i - 1]);  // increasing, no repeats
        for (int64_t i : b) hits[size_t(i)]++;
        sum += double(b.size());
        sum2 += double(b.size()) * double(b.size());
    }
    const double mean = sum / steps, var = (sum2 - sum * sum / steps) / (steps - 1);
    const double nq = double(n) * q, v = nq * (1 - q);
    CHECK(std::fabs(mean - nq) < 4 * std::sqrt(v / steps));          // 4 standard errors
    CHECK(std::fabs(var - v) < 4 * v * std::sqrt(2.0 / (steps - 1)));  // ~normal: se of s^2
    // Every index is drawn independently at rate q: the first and last.
    const double se_hit = std::sqrt(steps * q * (1 - q));
    CHECK(std::fabs(double(hits[0]) - steps * q) < 4 * se_hit);
    CHECK(std::fabs(double(hits[n - 1]) - steps * q) < 4 * se_hit);
    // Small n: an empty batch with probability (1-q)^n = 0.5987 for n 10.
    int empty = 0;
    for (int s = 0; s < steps; s++) empty += poisson_sample(10, q, rng).empty();
    const double p0 = std::pow(1 - q, 10);
    CHECK(std::fabs(double(empty) / steps - p0) < 4 * std::sqrt(p0 * (1 - p0) / steps));
    // The same generator state, the same batch; q = 1 takes everything.
    std::mt19937_64 a(9), b(9);
    CHECK(poisson_sample(n, q, a) == poisson_sample(n, q, b));
    CHECK(poisson_sample(5, 1.0, a) == std::vector<int64_t>{0, 1, 2, 3, 4});
    CHECK(dp_steps_per_epoch(128.0 / 60000) == 468);  // Opacus: int(1/q)
    CHECK(dp_steps_per_epoch(1.0) == 1);
}

TEST_CASE("the noise: an empty batch's DP gradient has mean 0 and std sigma*C/(qN) over every coordinate") {
    Model m = make_model("mamba", 1);
    DpConfig dp;
    dp.enabled = true;
    dp.noise_multiplier = 1.3;
    dp.max_grad_norm = 0.7;
    dp.sample_rate = 0.02;
    const int64_t n_train = 500;  // qN = 10
    torch::manual_seed(99);
    auto x = torch::zeros({0, 1, kH, kW});
    auto y = torch::zeros({0}, torch::kInt64);
    DpStepStats st = dp_sgd_gradients(*m.module, m.forward, x, y, dp, n_train);
    CHECK(st.loss_sum == 0);
    std::vector<torch::Tensor> flat;
    for (auto& g : grads_of(*m.module)) flat.push_back(g.flatten().to(torch::kFloat64));
    auto all = torch::cat(flat);
    const double count = double(all.numel());
    REQUIRE(count > 1000);
    const double want = dp.noise_multiplier * dp.max_grad_norm / (dp.sample_rate * double(n_train));
    const double mean = all.mean().item<double>(), sd = all.std().item<double>();
    CHECK(std::fabs(mean) < 4 * want / std::sqrt(count));
    CHECK(std::fabs(sd / want - 1) < 4 * std::sqrt(1.0 / (2 * count)));
}

TEST_CASE("the privacy statement beside a checkpoint: the accountant's epsilon for the steps taken, epoch by epoch") {
    TempDir t("mmia_dp");
    const int64_t n = 40;
    Batch tr = random_batch(n, 21), te = random_batch(10, 22);
    TrainJob job = tiny_cnn_job(t.file("c.pt"), 2, 10, 0.01);
    job.dp.enabled = true;
    job.dp.noise_multiplier = 0.9;
    job.dp.max_grad_norm = 1.5;
    job.dp.sample_rate = 0.3;  // floor(1/0.3) = 3 steps per epoch
    job.dp.delta = 1e-4;
    const std::string path = dp_statement_path(job.checkpoint);
    CHECK(path == t.file("c.pt.privacy.json"));
    // The independent value: RDP of each order composed over the steps,
    // converted by the improved formula (dp_accountant.h's own pieces, no
    // dp::epsilon shortcut).
    auto eps_after = [&](int64_t steps) {
        const std::vector<double> orders = dp::default_orders(dp::OrderSet::dp_accounting);
        return dp::epsilon_from_rdp(orders, dp::rdp_steps(0.3, 0.9, steps, orders, dp::FracSeries::abs_terms), 1e-4,
                                    dp::Conversion::improved)
            .epsilon;
    };
    for (int stop : {1, 0}) {  // a run stopped after epoch 1, then resumed to the end
        CAPTURE(stop);
        job.stop_after_epochs = stop;
        json meta = train_classifier(job, tr.x, tr.y, te.x, te.y);
        const json st = json::parse(read_text(path));
        const int64_t steps = stop == 1 ? 3 : 6;
        CHECK(st["steps"] == steps);
        CHECK(st["epochs_done"] == (stop == 1 ? 1 : 2));
        CHECK(st["q"] == 0.3);
        CHECK(st["sigma"] == 0.9);
        CHECK(st["max_grad_norm"] == 1.5);
        CHECK(st["delta"] == 1e-4);
        CHECK(st["sampling"] == "poisson");
        CHECK(st["conversion"] == "improved");
        CHECK(st["orders"] == "dp_accounting");
        CHECK(st["checkpoint"] == "c.pt");
        CHECK(st["epsilon"].get<double>() == doctest::Approx(eps_after(steps)).epsilon(1e-12));
        CHECK(meta["privacy"] == st);
        CHECK(meta["dp"]["noise_multiplier"] == 0.9);
        CHECK(meta["dp"]["per_example_gradients"] == "expanded weights");  // the default where the model has it
    }
    CHECK(eps_after(6) > eps_after(3));
    // The stopped-and-resumed run ends where an uninterrupted one does: the
    // Poisson batches and the noise replay from (seed, epoch).
    {
        TrainJob whole = job;
        whole.checkpoint = t.file("whole.pt");
        whole.stop_after_epochs = 0;
        train_classifier(whole, tr.x, tr.y, te.x, te.y);
        CnnClassifier a = load_cnn_checkpoint(job.checkpoint), b = load_cnn_checkpoint(whole.checkpoint);
        for (size_t j = 0; j < a->parameters().size(); j++)
            CHECK(torch::equal(a->parameters()[j], b->parameters()[j]));
        // And another seed draws other batches and noise: other weights.
        whole.checkpoint = t.file("seed2.pt");
        whole.train.seed = 43;
        train_classifier(whole, tr.x, tr.y, te.x, te.y);
        CnnClassifier c = load_cnn_checkpoint(whole.checkpoint);
        CHECK_FALSE(torch::equal(a->parameters()[0], c->parameters()[0]));
    }
    // The other per-example method is another configuration too (other
    // rounding): not resumed; asked for, it is recorded.
    {
        TrainJob other = job;
        other.dp.per_example_gradients = "microbatches of one";
        CHECK_THROWS_WITH_AS(train_classifier(other, tr.x, tr.y, te.x, te.y),
                             doctest::Contains("exists and was trained with another configuration"),
                             std::runtime_error);
        other.checkpoint = t.file("expanded.pt");
        other.stop_after_epochs = 0;
        CHECK(train_classifier(other, tr.x, tr.y, te.x, te.y)["dp"]["per_example_gradients"] ==
              "microbatches of one");
    }
    // Another noise multiplier is another configuration: not resumed.
    job.dp.noise_multiplier = 1.0;
    CHECK_THROWS_WITH_AS(train_classifier(job, tr.x, tr.y, te.x, te.y),
                         doctest::Contains("exists and was trained with another configuration"), std::runtime_error);
}

TEST_CASE("bin/train --target-epsilon: epsilon <= target and within 1%; the statement is written, the model exports") {
    TempDir t("mmia_dp");
    const std::string out = t.file("m.pt");
    for (double target : {4.0}) {
        CAPTURE(target);
        std::filesystem::remove(out);
        CliRun r = cli_run(kTrain,
                           "--model cnn --dataset mnist --limit-train 300 --batch-size 30 --epochs 2 --threads 1 "
                           "--target-epsilon " + std::to_string(target) + " --output " + cli_quote(out),
                           t.path.string());
        REQUIRE_MESSAGE(r.code == 0, r.err);
        const json st = json::parse(read_text(out + ".privacy.json"));
        CHECK(st["steps"] == 20);  // floor(300/30) = 10 per epoch
        CHECK(st["target_epsilon"] == target);
        const double eps = st["epsilon"].get<double>();
        CHECK(eps <= target);
        CHECK(eps >= 0.99 * target);
        dp::Accounting a;
        a.q = 0.1;
        a.sigma = st["sigma"].get<double>();
        a.steps = 20;
        a.delta = 1e-5;
        CHECK(dp::epsilon(a).epsilon == doctest::Approx(eps).epsilon(1e-12));
        CHECK(r.out.find("DP-SGD: Poisson sampling q 0.1 (expected batch 30.0), 20 steps (10 per epoch)") !=
              std::string::npos);
        // Under DP the preset's dp_learning_rate (shokri: 3e-3, its plain rate 1e-3).
        CHECK(r.out.find("batch 30, lr 0.003,") != std::string::npos);
        CHECK(read_checkpoint_meta(out)["training"]["learning_rate"].get<double>() == 0.003);
    }
    {  // --lr, given, wins over dp_learning_rate
        TempDir t2("mmia_dp_lr");
        CliRun r = cli_run(kTrain,
                           "--model cnn --dataset mnist --limit-train 60 --batch-size 30 --epochs 1 --threads 1 "
                           "--target-epsilon 8 --lr 0.0005 --output " + cli_quote(t2.file("m.pt")),
                           t2.path.string());
        REQUIRE_MESSAGE(r.code == 0, r.err);
        CHECK(r.out.find("batch 30, lr 0.0005,") != std::string::npos);
    }
    // A DP-trained model is an ordinary model: it exports and the engine runs it.
    const std::string d = cli_quote(t.path.string());
    CliRun e = cli_run(kExport, "model --checkpoint " + cli_quote(out) + " --output " + d + "/m.bin", t.path.string());
    REQUIRE_MESSAGE(e.code == 0, e.err);
    CliRun i = cli_run(kExport, "image --dataset mnist --count 2 --output " + d + "/in.bin", t.path.string());
    REQUIRE_MESSAGE(i.code == 0, i.err);
    CliRun c = cli_run(kCnn, d + "/m.bin " + d + "/in.bin --quiet", t.path.string());
    CHECK(c.code == 0);
    CHECK(std::count(c.out.begin(), c.out.end(), '\n') == 2);
}

TEST_CASE("bin/train: bad DP and regularisation flags get one error line each") {
    TempDir t("mmia_dp");
    struct Row {
        std::string args;
        int code;
        std::string line;
    };
    const std::vector<Row> rows = {
        {"--dp-noise-multiplier -1", 2,
         "error: --dp-noise-multiplier: '-1' is not a noise multiplier in [0, 1000] (see --help)"},
        {"--dp-noise-multiplier nan", 2,
         "error: --dp-noise-multiplier: 'nan' is not a noise multiplier in [0, 1000] (see --help)"},
        {"--dp-noise-multiplier 1 --dp-max-grad-norm 0", 2,
         "error: --dp-max-grad-norm: '0' is not a clipping norm in (0, 1e+06] (see --help)"},
        {"--dp-noise-multiplier 1 --dp-sample-rate 0", 2,
         "error: --dp-sample-rate: '0' is not a sampling rate in (0, 1] (see --help)"},
        {"--dp-noise-multiplier 1 --dp-sample-rate 1.5", 2,
         "error: --dp-sample-rate: '1.5' is not a sampling rate in (0, 1] (see --help)"},
        {"--dp-noise-multiplier 1 --dp-delta 1", 2, "error: --dp-delta: '1' is not a delta in (0, 0.5] (see --help)"},
        {"--target-epsilon 0", 2, "error: --target-epsilon: '0' is not an epsilon in (0, 1000] (see --help)"},
        {"--target-epsilon 8 --dp-noise-multiplier 1", 2,
         "error: --target-epsilon and --dp-noise-multiplier: give one (--target-epsilon finds the noise multiplier) "
         "(see --help)"},
        {"--dp-max-grad-norm 1", 2,
         "error: --dp-max-grad-norm is a DP-SGD setting: DP-SGD is on with --dp-noise-multiplier or --target-epsilon "
         "(see --help)"},
        {"--dp-per-example-grads expanded", 2,
         "error: --dp-per-example-grads is a DP-SGD setting: DP-SGD is on with --dp-noise-multiplier or "
         "--target-epsilon (see --help)"},
        {"--target-epsilon 8 --dp-per-example-grads fast", 2,
         "error: --dp-per-example-grads: fast not in {expanded,microbatch} (see --help)"},
        {"--dp-noise-multiplier 1 --dp-sample-rate 0.01 --batch-size 64", 2,
         "error: --batch-size and --dp-sample-rate: give one (DP-SGD's expected batch is q * N) (see --help)"},
        {"--model mamba-lm --corpus /nonexistent --dp-noise-multiplier 1", 2,
         "error: --dp-noise-multiplier: DP-SGD is for image models (--model mamba | cnn); bin/train has no DP-SGD for "
         "language models (see --help)"},
        {"--model cnn --preset mambaris-cnn --dp-noise-multiplier 1", 1,
         "error: DP-SGD: preset mambaris-cnn: a conv layer has batch norm, which mixes the examples of a batch (no "
         "per-example gradient); the CNN engine has no group norm to replace it; choose a CNN preset without batch "
         "norm (shokri)"},
        {"--label-smoothing 1", 2, "error: --label-smoothing: '1' is not a label smoothing in [0, 0.99] (see --help)"},
        {"--weight-decay -1", 2, "error: --weight-decay: '-1' is not a weight decay in [0, 10] (see --help)"},
        {"--model mamba-lm --corpus /nonexistent --label-smoothing 0.1", 2,
         "error: --label-smoothing is for image models; a language model trains on --corpus (see --help)"},
        {"--model mamba --preset mamba-cifar --dataset cifar10 --dp-noise-multiplier 1", 1,
         "error: DP-SGD: preset mamba-cifar: its conv stem has batch norm, which mixes the examples of a batch (no "
         "per-example gradient); give the stem group norm (\"stem_norm\": \"group\", as preset mamba-cifar-gn) or "
         "choose a preset without a stem (mamba-mnist)"},
    };
    for (const Row& r : rows) {
        CAPTURE(r.args);
        CliRun c = cli_run(kTrain, r.args + " --output " + cli_quote(t.file("x.pt")), t.path.string());
        CHECK(c.code == r.code);
        CHECK(c.err == r.line + "\n");
        CHECK(!cli_file_exists(t.file("x.pt")));
        CHECK(!cli_file_exists(t.file("x.pt.privacy.json")));
    }
}

TEST_CASE("bin/train: integer flags say 'not an integer'; adding epochs to a finished run says what to do") {
    TempDir t("mmia_dp");
    struct Row {
        std::string args, line;
    };
    const std::vector<Row> rows = {
        {"--batch-size 1e3", "error: --batch-size: '1e3' is not an integer in [1, 1048576] (see --help)"},
        {"--batch-size 0", "error: --batch-size: '0' is not an integer in [1, 1048576] (see --help)"},
        {"--epochs 2.5", "error: --epochs: '2.5' is not an integer in [1, 100000] (see --help)"},
        {"--limit-train 1e3", "error: --limit-train: '1e3' is not an integer in [1, 1099511627776] (see --help)"},
        {"--threads 0", "error: --threads: '0' is not an integer in [1, 1024] (see --help)"},
    };
    for (const Row& r : rows) {
        CAPTURE(r.args);
        CliRun c = cli_run(kTrain, r.args + " --output " + cli_quote(t.file("x.pt")), t.path.string());
        CHECK(c.code == 2);
        CHECK(c.err == r.line + "\n");
    }
    const std::string out = cli_quote(t.file("f.pt"));
    const std::string base = "--model cnn --dataset mnist --limit-train 100 --batch-size 50 --threads 1 --output " + out;
    CliRun first = cli_run(kTrain, base + " --epochs 1", t.path.string());
    REQUIRE_MESSAGE(first.code == 0, first.err);
    CliRun more = cli_run(kTrain, base + " --epochs 2", t.path.string());
    CHECK(more.code == 1);
    CHECK(more.err == "error: " + t.file("f.pt") +
                          ": exists and was trained for 1 epochs; bin/train cannot add epochs to a run (its "
                          "learning-rate schedule is set by the total): pass --force to train 2 epochs from scratch "
                          "over it, or choose another --output\n");
}

TEST_CASE("label smoothing: the loss written out by hand, and the trainer's loss; weight decay: -lr*wd*w_init per step") {
    // Two rows of logits, K = 3, computed in double by hand.
    const std::vector<std::vector<double>> z = {{1.0, 2.0, 3.0}, {0.5, -1.0, 0.25}};
    const std::vector<int64_t> labels = {2, 0};
    auto by_hand = [&](double eps) {
        double total = 0;
        for (size_t i = 0; i < z.size(); i++) {
            double m = std::max({z[i][0], z[i][1], z[i][2]}), se = 0;
            for (double v : z[i]) se += std::exp(v - m);
            const double lse = m + std::log(se);
            double sum_logp = 0;
            for (double v : z[i]) sum_logp += v - lse;
            total += -(1 - eps) * (z[i][size_t(labels[i])] - lse) - eps / 3.0 * sum_logp;
        }
        return total / double(z.size());
    };
    auto logits = torch::tensor({1.0f, 2.0f, 3.0f, 0.5f, -1.0f, 0.25f}).view({2, 3});
    auto y = torch::tensor(labels, torch::kInt64);
    for (double eps : {0.0, 0.1, 0.4}) {
        CAPTURE(eps);
        CHECK(classification_loss(logits, y, eps).item<double>() == doctest::Approx(by_hand(eps)).epsilon(1e-6));
    }
    CHECK(by_hand(0.1) != doctest::Approx(by_hand(0.0)));

    // The trainer: one step over the whole set at lr 1e-12: the epoch's loss
    // is the smoothed loss of the initial weights, computed here.
    TempDir t("mmia_dp");
    const int64_t n = 12;
    Batch tr = random_batch(n, 31), te = random_batch(4, 32);
    TrainJob job = tiny_cnn_job(t.file("ls.pt"), 1, int(n), 1e-12);
    job.train.lr_schedule = "constant";
    job.train.weight_decay = 0;
    job.label_smoothing = 0.3;
    torch::manual_seed(job.train.seed);  // the trainer's initial weights
    const std::vector<float> mean{0.5f}, stdv{0.25f};
    CnnClassifier init(job.spec.cnn, 1, kH, kW, kClasses, mean, stdv);
    auto lg = init->forward(tr.x).to(torch::kFloat64).detach();
    auto logp = torch::log_softmax(lg, 1);
    double want = 0;
    for (int64_t i = 0; i < n; i++) {
        want += -(1 - 0.3) * logp[i][tr.y[i].item<int64_t>()].item<double>() -
                0.3 / kClasses * logp[i].sum().item<double>();
    }
    want /= double(n);
    json meta = train_classifier(job, tr.x, tr.y, te.x, te.y);
    CHECK(meta["history"][0]["loss"].get<double>() == doctest::Approx(want).epsilon(1e-5));
    CHECK(meta["training"]["label_smoothing"] == 0.3);

    // Weight decay: the same single step with and without it.
    job.label_smoothing = 0;
    job.train.learning_rate = 0.01;
    job.checkpoint = t.file("wd0.pt");
    train_classifier(job, tr.x, tr.y, te.x, te.y);
    job.train.weight_decay = 0.5;
    job.checkpoint = t.file("wd.pt");
    train_classifier(job, tr.x, tr.y, te.x, te.y);
    CnnClassifier w0 = load_cnn_checkpoint(t.file("wd0.pt")), wd = load_cnn_checkpoint(t.file("wd.pt"));
    const auto p0 = w0->parameters(), pd = wd->parameters(), pi = init->parameters();
    REQUIRE(p0.size() == pi.size());
    for (size_t j = 0; j < pi.size(); j++) {
        auto expect = -0.01 * 0.5 * pi[j].detach();
        CHECK((pd[j] - p0[j] - expect).abs().max().item<double>() < 1e-6 + 1e-4 * expect.abs().max().item<double>());
    }
}
