// test_defences.cpp: the defences of bin/attack --defence and bin/train
// (attack/defence.h, train/trainer.h), each against an independent
// definition:
//   - the SPEC grammar: canonical forms, directory names, one exact error
//     line per bad SPEC through bin/attack;
//   - output defences on hand-worked probability vectors (top-k renormalised,
//     rounding, label-only), read back through softmax as the attacks do;
//   - early stopping's rule on a hand-made loss sequence; the seeded split;
//     a trained run whose kept weights give the best validation loss of its
//     history, and whose epoch count the rule replayed on that history gives;
//   - dropout: identity at eval for both kinds; the trainer puts it in the
//     Mamba's own slots; a CNN trained with dropout
//     exports to a .bin of the same size as one without, and the engine
//     reproduces LibTorch's eval logits;
//   - augmentation: seeded, every image a shift (|d| <= 2) of its input,
//     mirrored only in the -flip mode; labels untouched by construction;
//   - a bin/attack run with --defence label-only: the released outputs are
//     one-hot; every confidence attack collapses to the gap attack, whose
//     AUC recomputed from the saved outputs is 1/2 + (acc_in - acc_out)/2.
//
// LibTorch before doctest: glog (pulled in by c10) defines CHECK too.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "attack/defence.h"
#include "attack/features.h"
#include "attack/run.h"
#include "engine/cnn.h"
#include "export/model_export.h"
#include "tests/cli_check.h"
#include "tests/temp_dir.h"
#include "train/cnn_model.h"
#include "train/mamba_model.h"
#include "train/trainer.h"

using namespace mmia;
using nlohmann::json;

namespace {

const std::string kAttack = cli_env_or("ATTACK_BIN", "bin/attack");
const std::string kTrain = cli_env_or("TRAIN_BIN", "bin/train");

constexpr int kH = 8, kW = 8, kClasses = 3;

CnnConfig tiny_cnn() {
    CnnConfig c;
    CnnLayer conv;
    conv.type = "conv", conv.out = 4, conv.kernel = 3, conv.padding = 1, conv.activation = "tanh";
    CnnLayer pool;
    pool.type = "maxpool", pool.kernel = 2;
    CnnLayer flat;
    flat.type = "flatten";
    CnnLayer hidden;
    hidden.type = "dense", hidden.out = 8, hidden.activation = "relu";
    CnnLayer head;
    head.type = "dense";
    c.layers = {conv, pool, flat, hidden, head};
    return c;
}

TrainJob tiny_cnn_job(const std::string& checkpoint, int epochs) {
    TrainJob job;
    job.spec.model = "cnn";
    job.spec.preset = "tiny";
    job.spec.cnn = tiny_cnn();
    job.train.epochs = epochs;
    job.train.batch_size = 16;
    job.train.learning_rate = 3e-2;
    job.input = {1, kH, kW, kClasses, {0.5f}, {0.25f}};
    job.dataset = "synthetic";
    job.checkpoint = checkpoint;
    job.verbose = false;
    return job;
}

// Logits whose softmax is p (log p; any shift would do).
std::vector<float> logits_of(const std::vector<double>& p) {
    std::vector<float> z;
    for (double v : p) z.push_back(float(std::log(v)));
    return z;
}

// What an attack sees of a released row: softmax of its logits.
std::vector<double> seen(const std::vector<float>& z, int row, int k) { return softmax(z.data() + row * k, k); }

void check_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
    REQUIRE(a.size() == b.size());
    for (size_t i = 0; i < a.size(); i++) {
        INFO("element ", i, ": ", a[i], " against ", b[i]);
        CHECK(std::fabs(a[i] - b[i]) <= tol);
    }
}

// A .npy file of float32 rows (NumPy format 1.0, as io_write_npy_f32 writes it).
std::vector<float> read_npy(const std::string& path, int64_t cols, int64_t* rows) {
    const std::string bytes = cli_read_text(path);
    REQUIRE(bytes.size() > 10);
    REQUIRE(bytes.compare(0, 6, "\x93NUMPY") == 0);
    const size_t header = 10 + size_t(uint8_t(bytes[8])) + 256 * size_t(uint8_t(bytes[9]));
    REQUIRE(bytes.find("'<f4'") < header);
    const size_t n = (bytes.size() - header) / 4;
    std::vector<float> v(n);
    std::memcpy(v.data(), bytes.data() + header, n * 4);
    *rows = int64_t(n) / cols;
    return v;
}

std::string error_of(const std::string& args, const std::string& dir) {
    CliRun r = cli_run(kAttack, args, dir);
    CHECK(r.code == 2);
    return r.err;
}

}  // namespace

TEST_CASE("--defence SPEC: canonical forms, directory names, JSON; every model defended unless target-only") {
    Defences d = parse_defences({"dp:sigma=1.1,C=2,l2=5e-4", "top-k=3"});
    CHECK(d.dp);
    CHECK(d.dp_sigma == 1.1);
    CHECK(d.dp_clip == 2);
    CHECK(d.l2 == 5e-4);
    CHECK(d.top_k == 3);
    CHECK(defence_spec(d) == "dp:sigma=1.1,C=2,delta=1e-05,l2=0.0005,top-k=3");
    CHECK(defence_slug(d) == "dp-sigma-1.1-C-2-delta-1e-05+l2-0.0005+top-k-3");
    const json j = defence_json(d);
    CHECK(j["training"]["dp"]["noise_multiplier"] == 1.1);
    CHECK(j["training"]["weight_decay"] == 5e-4);
    CHECK(j["output"]["top_k"] == 3);
    CHECK(defended(d, "shadow3"));
    d.target_only = true;
    CHECK(defence_slug(d) == "dp-sigma-1.1-C-2-delta-1e-05+l2-0.0005+top-k-3+target-only");
    CHECK(defended(d, "target0"));
    CHECK(!defended(d, "shadow3"));

    Defences e = parse_defences({"dp:eps=8", "label-smoothing=0.1,early-stopping=3,dropout=0.2,augment,round=2"});
    CHECK(e.dp_epsilon == 8);
    CHECK(defence_spec(e) == "dp:eps=8,C=1,delta=1e-05,label-smoothing=0.1,early-stopping=3,dropout=0.2,augment,round=2");
    CHECK(defence_spec(parse_defences({"none"})) == "none");
    CHECK(!parse_defences({"none"}).any());
    CHECK(defence_spec(parse_defences({"label-only"})) == "label-only");

    // The run directory's name carries the defence, so no two defences share cached models.
    AttackRunConfig c;
    const std::string plain = default_run_dir(c);
    c.defences = parse_defences({"l2=0.001"});
    CHECK(default_run_dir(c) == plain + "-l2-0.001");

    // The planned privacy: the accountant's epsilon for these steps.
    const json pr = defence_privacy(parse_defences({"dp:sigma=1.1"}), 50, 3, 500);
    CHECK(pr["sample_rate"] == 0.1);
    CHECK(pr["steps"] == 30);
    dp::Accounting a;
    a.q = 0.1, a.sigma = 1.1, a.steps = 30, a.delta = 1e-5;
    CHECK(pr["epsilon"].get<double>() == dp::epsilon(a).epsilon);
}

TEST_CASE("--defence SPEC: the canonical SPEC is the record (every digit); a number is the whole value") {
    // fuzz_defence_spec's first findings. The SPEC printed 10 digits, so a
    // sigma of 1.7000000000000621 ran but was reported (and named its run
    // directory) as 1.7: two runs shared a cache.
    const Defences d = parse_defences({"dp:sigma=1.7000000000000621,l2=0.1234567890123"});
    CHECK(defence_spec(d) == "dp:sigma=1.7000000000000621,C=1,delta=1e-05,l2=0.1234567890123");
    const Defences back = parse_defences({defence_spec(d)});
    CHECK(back.dp_sigma == d.dp_sigma);
    CHECK(back.l2 == d.l2);
    CHECK(defence_slug(d) != defence_slug(parse_defences({"dp:sigma=1.7,l2=0.1234567890123"})));
    // Values of at most 10 digits print as before.
    CHECK(defence_spec(parse_defences({"dp:eps=0.1234567891,C=1000000"})) == "dp:eps=0.1234567891,C=1000000,delta=1e-05");
    // A NUL inside a value ended the number, so "l2=1<NUL>x" was l2 = 1 (what()
    // stops at the NUL, hence the short message).
    for (const std::string& s : {std::string("l2=1\0x", 6), std::string("top-k=3\0", 8)}) {
        std::string what;
        try {
            parse_defences({s});
        } catch (const std::runtime_error& e) {
            what = e.what();
        }
        CHECK(what == "--defence: '" + s.substr(0, s.find('\0')));
    }
}

TEST_CASE("bin/attack --defence: a bad SPEC gets one exact error line, exit 2") {
    TempDir tmp("mmia_defence_cli");
    const std::string dir = tmp.path.string();
    const char* grammar =
        "(none, dp:sigma=S|eps=E[,C=C,delta=D,q=Q], l2=WD, label-smoothing=EPS, early-stopping=PATIENCE, "
        "dropout=P, augment, top-k=K, round=D, label-only)";
    CHECK(error_of("--defence foo", dir) == "error: --defence: 'foo' is not a defence " + std::string(grammar) +
                                                " (see --help)\n");
    CHECK(error_of("--defence dp", dir) ==
          "error: --defence: 'dp': write dp:sigma=S or dp:eps=E (then ,C=..,delta=..,q=..) (see --help)\n");
    CHECK(error_of("--defence dp:sigma=1,eps=2", dir) ==
          "error: --defence: dp: give sigma=S or eps=E (one of them) (see --help)\n");
    CHECK(error_of("--defence dp:C=2", dir) == "error: --defence: dp: give sigma=S or eps=E (one of them) (see --help)\n");
    CHECK(error_of("--defence dp:alpha=2", dir) ==
          "error: --defence: 'dp:alpha=2': 'alpha=2' is not a DP-SGD parameter (sigma, eps, C, delta, q) (see --help)\n");
    CHECK(error_of("--defence dp:eps=0", dir) ==
          "error: --defence: 'eps=0': '0' is not a number in (0, 1000] (see --help)\n");
    CHECK(error_of("--defence l2", dir) == "error: --defence: 'l2': write l2=WD (see --help)\n");
    CHECK(error_of("--defence l2=nan", dir) == "error: --defence: 'l2=nan': 'nan' is not a number in [0, 10] (see --help)\n");
    CHECK(error_of("--defence augment=2", dir) == "error: --defence: 'augment=2': augment takes no value (see --help)\n");
    CHECK(error_of("--defence top-k=0", dir) ==
          "error: --defence: 'top-k=0': '0' is not an integer in [1, 1000000] (see --help)\n");
    CHECK(error_of("--defence round=16", dir) ==
          "error: --defence: 'round=16': '16' is not an integer in [1, 15] (see --help)\n");
    CHECK(error_of("--defence early-stopping=1.5", dir) ==
          "error: --defence: 'early-stopping=1.5': '1.5' is not an integer in [1, 1000] (see --help)\n");
    CHECK(error_of("--defence l2=1,", dir) == "error: --defence: an empty item (a stray comma?); items: none, "
                                              "dp:sigma=S|eps=E[,C=C,delta=D,q=Q], l2=WD, label-smoothing=EPS, "
                                              "early-stopping=PATIENCE, dropout=P, augment, top-k=K, round=D, "
                                              "label-only (see --help)\n");
    CHECK(error_of("--defence l2=1 --defence l2=2", dir) == "error: --defence: 'l2' given twice (see --help)\n");
    // A DP parameter too (the last one silently won).
    CHECK(error_of("--defence dp:sigma=1,C=2,sigma=3", dir) == "error: --defence: 'dp:sigma' given twice (see --help)\n");
    CHECK(error_of("--defence none,l2=1", dir) == "error: --defence: 'none' with another defence (see --help)\n");
    CHECK(error_of("--defence label-only,top-k=2", dir) ==
          "error: --defence: label-only releases the label alone; top-k and round would change nothing (give one) "
          "(see --help)\n");
    CHECK(error_of("--defence-target-only", dir) ==
          "error: --defence-target-only: no defence to apply (give --defence) (see --help)\n");
    CHECK(error_of("--protocol lira --defence l2=1 --defence-target-only", dir) ==
          "error: --defence-target-only: shokri protocol only (lira makes every model the target in turn) (see "
          "--help)\n");
    // Known once the dataset is: exit 1, before any directory is made.
    CliRun r = cli_run(kAttack, "--defence top-k=10 --run-dir " + dir + "/run", dir);
    CHECK(r.code == 1);
    CHECK(r.err == "error: --defence: top-k=10 keeps all 10 classes, so it releases everything (K must be below "
                   "the number of classes)\n");
    CHECK(!cli_file_exists(dir + "/run"));
    CliRun bn = cli_run(kAttack, "--model cnn --cnn-preset mambaris-cnn --defence dp:sigma=1 --run-dir " + dir + "/run",
                        dir);
    CHECK(bn.code == 1);
    CHECK(bn.err == "error: DP-SGD: preset mambaris-cnn: a conv layer has batch norm, which mixes the examples of a "
                    "batch (no per-example gradient); the CNN engine has no group norm to replace it; choose a CNN "
                    "preset without batch norm (shokri)\n");
    CHECK(!cli_file_exists(dir + "/run"));
}

TEST_CASE("bin/train --dropout, --early-stopping: bad values get one exact error line, exit 2") {
    TempDir tmp("mmia_defence_train_cli");
    const std::string dir = tmp.path.string();
    struct Case {
        std::string args, err;
    } cases[] = {
        {"--model cnn --dropout 1", "error: --dropout: '1' is not a dropout probability in [0, 0.99] (see --help)\n"},
        {"--model cnn --dropout nan", "error: --dropout: 'nan' is not a dropout probability in [0, 0.99] (see --help)\n"},
        {"--model cnn --early-stopping 0", "error: --early-stopping: '0' is not an integer in [1, 1000] (see --help)\n"},
        {"--model mamba-lm --corpus " + dir + " --dropout 0.1",
         "error: --dropout is for image models; a language model trains on --corpus (see --help)\n"},
        {"--model mamba-lm --corpus " + dir + " --early-stopping 2",
         "error: --early-stopping is for image models; a language model trains on --corpus (see --help)\n"},
    };
    for (const Case& c : cases) {
        CliRun r = cli_run(kTrain, c.args + " --output " + dir + "/x.pt", dir);
        CHECK(r.code == 2);
        CHECK(r.err == c.err);
        CHECK(!cli_file_exists(dir + "/x.pt"));
    }
}

TEST_CASE("output defences on hand-worked rows: top-k renormalised, rounding, label-only; zeros read as 1e-30") {
    const int k = 4;
    // Row 0: p = (0.1, 0.4, 0.2, 0.3); row 1: (0.25, 0.25, 0.25, 0.25) (ties: lower index first).
    std::vector<float> z = logits_of({0.1, 0.4, 0.2, 0.3});
    const std::vector<float> z1 = logits_of({0.25, 0.25, 0.25, 0.25});
    z.insert(z.end(), z1.begin(), z1.end());
    {
        Defences d;
        d.top_k = 2;
        std::vector<float> r = z;
        apply_output_defences(d, r, k);
        check_close(seen(r, 0, k), {0, 0.4 / 0.7, 0, 0.3 / 0.7}, 1e-6);
        // Element by element (the zeros to the floor). check_close(seen(r, 1, k),
        // {0.5, 0.5, 0, 0}, 1e-6) once failed here in an -O2 build, seen as
        // an expected vector of four 0.5s; on review (2026-12-01) neither
        // check_close, seen, softmax nor apply_output_defences reads
        // uninitialised or out-of-range memory, compares a NaN, or breaks a
        // tie by float noise (the four equal logits give four identical
        // probabilities, and stable_sort keeps classes 0 and 1), and that
        // check passed 200 runs of this case in the -O2 build: not reproduced.
        const std::vector<double> got1 = seen(r, 1, k);
        CHECK(std::fabs(got1[0] - 0.5) <= 1e-6);
        CHECK(std::fabs(got1[1] - 0.5) <= 1e-6);
        CHECK(got1[2] <= 1e-29);
        CHECK(got1[3] <= 1e-29);
        CHECK(r[0] == float(std::log(1e-30)));  // a zero is released as the floor
    }
    {
        Defences d;
        d.round_decimals = 1;
        // (0.14, 0.46, 0.26, 0.14) -> (0.1, 0.5, 0.3, 0.1): sums to 1, so seen as is.
        std::vector<float> r = logits_of({0.14, 0.46, 0.26, 0.14});
        apply_output_defences(d, r, k);
        check_close(seen(r, 0, k), {0.1, 0.5, 0.3, 0.1}, 1e-6);
        // (0.04, 0.80, 0.16): rounds to (0.0, 0.8, 0.2): the zero is 1e-30.
        std::vector<float> r3 = logits_of({0.04, 0.80, 0.16});
        apply_output_defences(d, r3, 3);
        check_close(seen(r3, 0, 3), {0, 0.8, 0.2}, 1e-6);
        // 2 decimals: (0.333.., 0.333.., 0.333..) -> 0.33 each, seen renormalised as 1/3.
        d.round_decimals = 2;
        std::vector<float> u = logits_of({1.0 / 3, 1.0 / 3, 1.0 / 3});
        apply_output_defences(d, u, 3);
        CHECK(std::exp(u[0]) == doctest::Approx(0.33).epsilon(1e-6));
    }
    {
        Defences d;
        d.label_only = true;
        std::vector<float> r = z;
        apply_output_defences(d, r, k);
        check_close(seen(r, 0, k), {0, 1, 0, 0}, 1e-12);
        check_close(seen(r, 1, k), {1, 0, 0, 0}, 1e-12);
        // Every released row: 0 at the argmax, log(1e-30) elsewhere.
        CHECK(r[1] == 0.0f);
        CHECK(r[0] == float(std::log(1e-30)));
    }
    {
        Defences none;
        std::vector<float> r = z;
        apply_output_defences(none, r, k);
        CHECK(r == z);
    }
}

TEST_CASE("early stopping: the rule on a hand-made loss sequence; the seeded validation split") {
    // patience 2: 1.0 best, 0.8 best (epoch 2), 0.85 bad, 0.9 bad -> stop after epoch 4.
    EarlyStopping s;
    s.patience = 2;
    CHECK(!s.update(1, 1.0));
    CHECK(!s.update(2, 0.8));
    CHECK(!s.update(3, 0.85));
    CHECK(s.update(4, 0.9));
    CHECK(s.best_epoch == 2);
    CHECK(s.best == 0.8);
    // An equal loss is no improvement; a NaN neither; an improvement resets the count.
    EarlyStopping t;
    t.patience = 2;
    CHECK(!t.update(1, 0.5));
    CHECK(!t.update(2, 0.5));
    CHECK(!t.update(3, 0.4));
    CHECK(!t.update(4, NAN));
    CHECK(t.update(5, 0.4));
    CHECK(t.best_epoch == 3);
    // patience 1 stops at the first epoch without improvement.
    EarlyStopping u;
    u.patience = 1;
    CHECK(!u.update(1, 2.0));
    CHECK(u.update(2, 2.5));

    auto [tr, va] = early_stopping_split(25, 7);
    CHECK(va.size() == 2);
    CHECK(tr.size() == 23);
    std::vector<int64_t> all = tr;
    all.insert(all.end(), va.begin(), va.end());
    std::sort(all.begin(), all.end());
    for (int64_t i = 0; i < 25; i++) CHECK(all[size_t(i)] == i);
    CHECK(early_stopping_split(25, 7) == std::make_pair(tr, va));
    CHECK(early_stopping_split(25, 8).second != va);
    CHECK(early_stopping_split(2, 1).second.size() == 1);
    CHECK_THROWS(early_stopping_split(1, 1));
}

TEST_CASE("early stopping in training: the kept weights have the best validation loss of the history") {
    TempDir tmp("mmia_es");
    torch::manual_seed(3);
    // Noisy labels on few examples: the model overfits and the validation loss turns up.
    const torch::Tensor x = torch::rand({64, 1, kH, kW}), y = torch::randint(0, kClasses, {64}, torch::kInt64);
    const torch::Tensor vx = torch::rand({32, 1, kH, kW}), vy = torch::randint(0, kClasses, {32}, torch::kInt64);
    TrainJob job = tiny_cnn_job(tmp.file("es.pt"), 12);
    job.early_stopping = 2;
    job.val_x = vx, job.val_y = vy;
    const json meta = train_classifier(job, x, y, vx, vy);
    const json& es = meta.at("early_stopping");
    // The rule replayed on the recorded validation losses.
    EarlyStopping rule;
    rule.patience = 2;
    int run = 0;
    for (const json& h : meta["history"]) {
        run = h["epoch"].get<int>();
        if (rule.update(run, h["val_loss"].get<double>())) break;
    }
    CHECK(es["epochs_run"] == run);
    CHECK(meta["history"].size() == size_t(run));
    CHECK(es["best_epoch"] == rule.best_epoch);
    CHECK(es["stopped_early"] == (run < 12));
    CHECK(run < 12);  // this data overfits: the rule does stop it
    // The checkpoint holds the best epoch's weights: its validation loss is the best one.
    CnnClassifier m = load_cnn_checkpoint(job.checkpoint);
    const torch::Tensor vlogits = predict_logits(*m, [&](const torch::Tensor& b) { return m->forward(b); }, vx);
    const double vloss = classification_loss(vlogits, vy, 0).item<double>();
    CHECK(vloss == doctest::Approx(rule.best).epsilon(1e-5));
    // A re-run finds it finished.
    const json again = train_classifier(job, x, y, vx, vy);
    CHECK(again["early_stopping"] == es);

    // Without a given validation set: a seeded tenth of the training examples is held out.
    TrainJob own = tiny_cnn_job(tmp.file("es_own.pt"), 2);
    own.early_stopping = 5;
    const json m2 = train_classifier(own, x, y, vx, vy);
    CHECK(m2["n_train"] == 58);
    CHECK(m2["training"]["early_stopping"]["validation"] ==
          "6 of the 64 training examples (seeded split, not trained on)");
}

TEST_CASE("dropout: identity at eval (both kinds); a CNN trained with it exports to the same format") {
    const std::vector<float> mean{0.5f}, stdv{0.25f};
    torch::manual_seed(1);
    const torch::Tensor x = torch::rand({5, 1, kH, kW});
    {
        CnnClassifier m(tiny_cnn(), 1, kH, kW, kClasses, mean, stdv);
        m->eval();
        const torch::Tensor plain = m->forward(x);
        m->dropout = 0.5;
        CHECK(torch::equal(m->forward(x), plain));
        m->train();
        CHECK(!torch::equal(m->forward(x), plain));
    }
    {
        MambaConfig c;
        c.d_model = 8, c.n_layers = 1, c.d_state = 4, c.d_conv = 3, c.dt_rank = 2, c.patch_h = c.patch_w = 2;
        torch::manual_seed(2);
        MambaClassifier plain_m(c, 1, kH, kW, kClasses, mean, stdv);
        c.dropout = c.head_dropout = 0.5;
        torch::manual_seed(2);
        MambaClassifier drop_m(c, 1, kH, kW, kClasses, mean, stdv);
        plain_m->eval(), drop_m->eval();
        CHECK(torch::equal(plain_m->forward(x), drop_m->forward(x)));
        drop_m->train();
        CHECK(!torch::equal(plain_m->forward(x), drop_m->forward(x)));
    }
    TempDir tmp("mmia_dropout");
    {
        // Through the trainer: TrainJob::dropout lands in the Mamba's own slots.
        TrainJob mj = tiny_cnn_job(tmp.file("m.pt"), 1);
        mj.spec.model = "mamba";
        mj.spec.mamba.d_model = 8, mj.spec.mamba.n_layers = 1, mj.spec.mamba.d_state = 4, mj.spec.mamba.d_conv = 3;
        mj.spec.mamba.dt_rank = 2, mj.spec.mamba.patch_h = mj.spec.mamba.patch_w = 2;
        mj.dropout = 0.3;
        torch::manual_seed(6);
        const torch::Tensor mx = torch::rand({16, 1, kH, kW}), my = torch::randint(0, kClasses, {16}, torch::kInt64);
        const json mm = train_classifier(mj, mx, my, mx, my);
        CHECK(mm["mamba"]["dropout"] == 0.3);
        CHECK(mm["mamba"]["head_dropout"] == 0.3);
    }
    torch::manual_seed(4);
    const torch::Tensor tx = torch::rand({48, 1, kH, kW}), ty = torch::randint(0, kClasses, {48}, torch::kInt64);
    TrainJob with = tiny_cnn_job(tmp.file("drop.pt"), 2), without = tiny_cnn_job(tmp.file("plain.pt"), 2);
    with.dropout = 0.3;
    const json meta = train_classifier(with, tx, ty, tx, ty);
    CHECK(meta["training"]["dropout"] == 0.3);
    train_classifier(without, tx, ty, tx, ty);
    export_checkpoint(with.checkpoint, tmp.file("drop.bin"));
    export_checkpoint(without.checkpoint, tmp.file("plain.bin"));
    CHECK(std::filesystem::file_size(tmp.file("drop.bin")) == std::filesystem::file_size(tmp.file("plain.bin")));
    CnnClassifier m = load_cnn_checkpoint(with.checkpoint);
    const torch::Tensor want = predict_logits(*m, [&](const torch::Tensor& b) { return m->forward(b); }, tx);
    CnnModel e;
    char err[512];
    REQUIRE(cnn_open(&e, tmp.file("drop.bin").c_str(), err, sizeof err) == 0);
    std::vector<float> got(size_t(48 * kClasses));
    REQUIRE(cnn_forward_logits(&e, tx.contiguous().data_ptr<float>(), 48, got.data()) == 0);
    cnn_close(&e);
    for (int64_t i = 0; i < 48 * kClasses; i++)
        CHECK(got[size_t(i)] == doctest::Approx(want.view(-1)[i].item<float>()).epsilon(1e-4));
}

TEST_CASE("augmentation: seeded; each image a shift of at most 2 px, mirrored only in shift2-flip") {
    torch::manual_seed(5);
    const torch::Tensor x = torch::rand({20, 1, 6, 7}) + 0.1;  // no zero pixel inside
    for (const char* mode : {"shift2", "shift2-flip"}) {
        std::mt19937_64 a(9), b(9);
        const torch::Tensor ya = augment_images(x, mode, a), yb = augment_images(x, mode, b);
        CHECK(torch::equal(ya, yb));
        int mirrored = 0, shifted = 0;
        for (int64_t i = 0; i < 20; i++) {
            // Find the (dy, dx, mirror) that reproduces image i.
            bool found = false;
            for (int m = 0; m < 2 && !found; m++)
                for (int dy = -2; dy <= 2 && !found; dy++)
                    for (int dx = -2; dx <= 2 && !found; dx++) {
                        torch::Tensor src = m ? x[i].flip({2}) : x[i];
                        torch::Tensor want = torch::zeros_like(src);
                        // want[r][c] = src[r + dy][c + dx] where inside, else 0.
                        for (int r = 0; r < 6; r++)
                            for (int c = 0; c < 7; c++)
                                if (r + dy >= 0 && r + dy < 6 && c + dx >= 0 && c + dx < 7)
                                    want[0][r][c] = src[0][r + dy][c + dx];
                        if (torch::equal(want, ya[i])) {
                            found = true;
                            mirrored += m;
                            shifted += (dy != 0 || dx != 0);
                        }
                    }
            CHECK(found);
        }
        CHECK(shifted > 0);
        if (std::string(mode) == "shift2") CHECK(mirrored == 0);
        else CHECK(mirrored > 0);
    }
    std::mt19937_64 r(1);
    CHECK(torch::equal(augment_images(x, "none", r), x));
    CHECK_THROWS(augment_images(x, "rotate", r));
    CHECK(std::string(defence_augmentation("mnist")) == "shift2");
    CHECK(std::string(defence_augmentation("cifar10")) == "shift2-flip");
}

TEST_CASE("bin/attack --defence label-only: one-hot outputs; confidence attacks collapse to the gap attack") {
    TempDir tmp("mmia_defence_lo");
    const std::string dir = tmp.file("run");
    CliRun r = cli_run(kAttack,
                       "--model cnn --ds 200 --shadow 2 --targets 1 --epochs 3 --threads 2 --defence label-only "
                       "--run-dir " + dir, tmp.path.string());
    REQUIRE(r.code == 0);
    std::ifstream f(dir + "/metrics.json");
    const json m = json::parse(f);
    CHECK(m["config"]["defence"]["spec"] == "label-only");
    CHECK(m["config"]["defence"]["output"]["label_only"] == true);
    // The released outputs the attacks read: members then non-members.
    int64_t rows = 0;
    const std::vector<float> z = read_npy(dir + "/outputs/cnn/target0.npy", 10, &rows);
    REQUIRE(rows == 400);
    const json splits = json::parse(std::ifstream(dir + "/splits.json"));
    std::vector<int64_t> idx = splits["models"][0]["members"];
    const std::vector<int64_t> non = splits["models"][0]["nonmembers"];
    idx.insert(idx.end(), non.begin(), non.end());
    Dataset data = load_dataset("mnist");
    int correct_in = 0, correct_out = 0;
    for (int64_t i = 0; i < rows; i++) {
        int ones = 0, arg = 0;
        for (int c = 0; c < 10; c++) {
            const float v = z[size_t(i * 10 + c)];
            if (v == 0.0f) ones++, arg = c;
            else CHECK(v == float(std::log(1e-30)));
        }
        CHECK(ones == 1);
        const int64_t p = idx[size_t(i)];
        const int label = p < data.train.n ? data.train.labels[size_t(p)] : data.test.labels[size_t(p - data.train.n)];
        (i < 200 ? correct_in : correct_out) += arg == label;
    }
    const double gap_auc = 0.5 + (correct_in / 200.0 - correct_out / 200.0) / 2;
    const json& a = m["models"]["cnn"]["targets"][0]["attacks"];
    CHECK(a["correctness"]["auc"].get<double>() == doctest::Approx(gap_auc).epsilon(1e-12));
    for (const char* name : {"loss", "confidence", "modified_entropy"})
        CHECK(a[name]["auc"].get<double>() == doctest::Approx(gap_auc).epsilon(1e-12));
    CHECK(a["entropy"]["auc"].get<double>() == 0.5);  // every released row has the same entropy
    CHECK(a.contains("label_only_augment"));
    CHECK(a["label_only_augment"].contains("auc"));

    // The report states the defence; its privacy-utility row names the strongest attack by AUC.
    const std::string md = cli_read_text(dir + "/report.md");
    CHECK(md.find("**Defence: `label-only`, applied to all models") != std::string::npos);
    const json& summary = m["models"]["cnn"]["summary"]["attacks"];
    std::string best;
    double best_auc = -1;
    for (auto& [name, v] : summary.items())
        if (name != "seed000_on_target" && v.contains("auc") && v["auc"]["mean"].get<double>() > best_auc)
            best = name, best_auc = v["auc"]["mean"].get<double>();
    char row[160];
    std::snprintf(row, sizeof row, "| cnn | label-only | %.4f | %s | %.3f |",
                  m["models"]["cnn"]["summary"]["test_acc"]["mean"].get<double>(), best.c_str(), best_auc);
    CHECK(md.find(row) != std::string::npos);
    const std::string svg = cli_read_text(dir + "/plots/privacy_utility.svg");
    CHECK(svg.find("<circle") != std::string::npos);
    CHECK(svg.find("cnn (label-only)") != std::string::npos);
}

TEST_CASE("bin/attack --defence dp + early stopping, targets only (pg1647's contrast): statements and labels") {
    TempDir tmp("mmia_defence_dp");
    const std::string dir = tmp.file("run");
    CliRun r = cli_run(kAttack,
                       "--model cnn --ds 100 --shadow 1 --targets 1 --epochs 2 --threads 2 "
                       "--defence dp:sigma=1.0,C=1,early-stopping=1 --defence-target-only --run-dir " + dir,
                       tmp.path.string());
    REQUIRE(r.code == 0);
    const json m = json::parse(std::ifstream(dir + "/metrics.json"));
    const json& d = m["config"]["defence"];
    CHECK(d["spec"] == "dp:sigma=1,C=1,delta=1e-05,early-stopping=1");
    CHECK(d["applied_to"].get<std::string>().rfind("targets only (pg1647's mitigation, a contrast", 0) == 0);
    // The planned privacy: shokri's CNN preset batch over ds 100, 2 epochs.
    const json& plan = d["privacy"]["cnn"];
    dp::Accounting a;
    a.q = plan["sample_rate"], a.sigma = 1.0, a.steps = plan["steps"], a.delta = 1e-5;
    CHECK(plan["epsilon"].get<double>() == dp::epsilon(a).epsilon);
    // The target's statement: the accountant's epsilon for the steps it took (<= planned).
    const json st = json::parse(std::ifstream(dir + "/models/cnn/target0.pt.privacy.json"));
    a.steps = st["steps"];
    CHECK(st["epsilon"].get<double>() == doctest::Approx(dp::epsilon(a).epsilon).epsilon(1e-12));
    CHECK(st["steps"].get<int64_t>() <= plan["steps"].get<int64_t>());
    // The target trains at the preset's DP learning rate, the undefended shadow at its plain one.
    const json presets = load_config_file("config.json")["presets"];
    const double lr = presets["shokri"]["training"]["learning_rate"], dp_lr = presets["shokri"]["training"]["dp_learning_rate"];
    CHECK(dp_lr != lr);
    CHECK(plan["learning_rate"].get<double>() == dp_lr);
    CHECK(read_checkpoint_meta(dir + "/models/cnn/target0.pt")["training"]["learning_rate"].get<double>() == dp_lr);
    CHECK(read_checkpoint_meta(dir + "/models/cnn/shadow0.pt")["training"]["learning_rate"].get<double>() == lr);
    // The shadow is undefended: no statement beside it.
    CHECK(!cli_file_exists(dir + "/models/cnn/shadow0.pt.privacy.json"));
    CHECK(cli_file_exists(dir + "/models/cnn/shadow0.pt"));
    const std::string md = cli_read_text(dir + "/report.md");
    CHECK(md.find("This reproduces pg1647's mitigation as a contrast") != std::string::npos);
    CHECK(md.find(", learning rate 0.003.") != std::string::npos);
    char eps[32];
    std::snprintf(eps, sizeof eps, "%.3g", plan["epsilon"].get<double>());
    const std::string label = "cnn (dp:sigma=1,C=1,delta=1e-05,early-stopping=1, targets only, ε " + std::string(eps) + ")";
    CHECK(cli_read_text(dir + "/plots/privacy_utility.svg").find(label) != std::string::npos);

    // Several runs in one plot: one point per run and kind; runs whose settings differ only in their
    // first number (here the same run twice) make one curve, named with those numbers.
    const std::string out = tmp.file("pu.svg");
    CliRun p = cli_run(kAttack, "--privacy-utility-plot " + out + " --from-run " + dir + " --from-run " + dir,
                       tmp.path.string());
    CHECK(p.code == 0);
    const std::string svg = cli_read_text(out);
    size_t circles = 0;
    for (size_t at = svg.find("<circle"); at != std::string::npos; at = svg.find("<circle", at + 1)) circles++;
    CHECK(circles == 2);  // 2 points on one curve (its legend swatch a line)
    CHECK(svg.find(">cnn dp:sigma={1, 1},C=1,delta=1e-05,early-stopping=1, targets only</text>") != std::string::npos);
    CliRun bad = cli_run(kAttack, "--privacy-utility-plot " + out + " --from-run " + tmp.file("none"), tmp.path.string());
    CHECK(bad.code == 1);
    CHECK(bad.err == "error: " + tmp.file("none") + "/metrics.json: not the metrics.json of a finished bin/attack run\n");
    CliRun alone = cli_run(kAttack, "--from-run " + dir, tmp.path.string());
    CHECK(alone.code == 2);
    CHECK(alone.err == "error: --privacy-utility-plot and --from-run go together (see --help)\n");
}
