// test_attack_run.cpp: the whole attack pipeline (attack/run.h) on real
// MNIST, small: null sanity (members that are fresh data score AUC 0.5 for
// every attack), the run directory's contents, caching on a re-run, and the
// refusals (bad configuration, ds too large, another run's directory).
// LibTorch before doctest: glog's CHECK would otherwise replace doctest's.
#include <torch/torch.h>

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include "attack/run.h"
#include "tests/temp_dir.h"

using namespace mmia;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A small experiment: 2 shadows, 1 target, ds examples, both model kinds.
AttackRunConfig small(const std::string& dir, int64_t ds) {
    AttackRunConfig c;
    c.run_dir = dir;
    c.ds = ds;
    c.shadows = 2;
    c.targets = 1;
    c.epochs = 3;
    c.threads = 2;
    c.verbose = false;
    return c;
}

}  // namespace

TEST_CASE("null members: every attack scores AUC 0.5 within noise") {
    TempDir tmp("mmia_attack");
    AttackRunConfig c = small((tmp.path / "null").string(), 400);
    c.null_members = true;
    json r = run_attack(c);
    // Standard error of an AUC between n1 = n2 = 400 exchangeable scores:
    // sqrt((n1 + n2 + 1) / (12 n1 n2)) = 0.0204; four of them covers every
    // attack (about 15 per model, correlated) without flaking.
    const double n1 = 400, n2 = 400;
    const double bound = 4 * std::sqrt((n1 + n2 + 1) / (12 * n1 * n2));
    int checked = 0;
    for (const char* kind : {"mamba", "cnn"}) {
        for (auto& [name, m] : r["models"][kind]["targets"][0]["attacks"].items()) {
            if (name == "seed000_on_target") continue;  // scored on 20% only: its own noise
            INFO(kind, " ", name, " AUC ", m["auc"].get<double>());
            CHECK(std::fabs(m["auc"].get<double>() - 0.5) < bound);
            checked++;
        }
    }
    CHECK(checked >= 20);
}

TEST_CASE("a real run writes every output, and a re-run trains nothing") {
    TempDir tmp("mmia_attack");
    const std::string dir = (tmp.path / "run").string();
    AttackRunConfig c = small(dir, 300);
    c.models = {"cnn"};  // the CNN overfits 300 MNIST images in 3 epochs: a real signal
    json r = run_attack(c);
    CHECK(last_attack_run_stats().trained == 3);
    for (const char* f : {"attack_config.json", "splits.json", "metrics.json", "report.md", "plots/cnn_roc.svg",
                          "plots/cnn_roc_loglog.svg", "plots/cnn_hist_loss.svg", "scores/cnn_target0.csv",
                          "roc/cnn_target0_loss.csv", "models/cnn/target0.pt", "models/cnn/target0.bin",
                          "outputs/cnn/shadow1.npy"})
        CHECK_MESSAGE(fs::exists(dir + "/" + f), f);
    const json& t = r["models"]["cnn"]["targets"][0];
    CHECK(t["train_acc"].get<double>() > t["test_acc"].get<double>());  // it overfits...
    CHECK(t["attacks"]["loss"]["auc"].get<double>() > 0.55);           // ...and the loss attack sees it
    // 300 members + 300 non-members, one line each plus the header.
    std::ifstream scores(dir + "/scores/cnn_target0.csv");
    int lines = 0;
    for (std::string l; std::getline(scores, l);) lines++;
    CHECK(lines == 601);

    json again = run_attack(c);
    CHECK(last_attack_run_stats().trained == 0);
    CHECK(last_attack_run_stats().cached == 3);
    CHECK(again["models"]["cnn"]["targets"][0]["attacks"] == t["attacks"]);  // deterministic

    // The same directory with another configuration is refused.
    AttackRunConfig other = c;
    other.seed = 7;
    CHECK_THROWS_WITH_AS(run_attack(other), doctest::Contains("another configuration"), std::runtime_error);
}

TEST_CASE("bad configurations are refused before any work") {
    TempDir tmp("mmia_attack");
    AttackRunConfig c = small((tmp.path / "bad").string(), 300);
    c.ds = 40000;  // 2 x ds for the target + 2 x ds per shadow > 70,000
    CHECK_THROWS_WITH_AS(run_attack(c), doctest::Contains("too large"), std::runtime_error);
    c = small((tmp.path / "bad").string(), 300);
    c.shadows = 0;
    CHECK_THROWS_WITH_AS(run_attack(c), doctest::Contains("--shadow"), std::runtime_error);
    c = small((tmp.path / "bad").string(), 300);
    c.protocol = "yeom";
    CHECK_THROWS_WITH_AS(run_attack(c), doctest::Contains("unknown protocol"), std::runtime_error);
    c = small((tmp.path / "bad").string(), 300);
    c.models = {"transformer"};
    CHECK_THROWS_WITH_AS(run_attack(c), doctest::Contains("unknown model"), std::runtime_error);
    c = small((tmp.path / "bad").string(), 300);
    c.mamba_preset = "shokri";  // a CNN preset for the Mamba
    CHECK_THROWS_AS(run_attack(c), std::runtime_error);
}

TEST_CASE("a corrupt cached model is an error, not a crash") {
    TempDir tmp("mmia_attack");
    const std::string dir = (tmp.path / "corrupt").string();
    AttackRunConfig c = small(dir, 100);
    c.models = {"cnn"};
    c.epochs = 1;
    run_attack(c);
    {
        std::ofstream f(dir + "/models/cnn/shadow0.pt", std::ios::binary | std::ios::trunc);
        f << "not a checkpoint";
    }
    CHECK_THROWS_AS(run_attack(c), std::exception);
}

TEST_CASE("lira protocol: every model is a target, the membership matrix is saved") {
    TempDir tmp("mmia_attack");
    const std::string dir = (tmp.path / "lira").string();
    AttackRunConfig c = small(dir, 150);
    c.protocol = "lira";
    c.models = {"cnn"};
    c.shadows = 3;  // M = 4 models on random halves of a 300-example pool
    json r = run_attack(c);
    const json& targets = r["models"]["cnn"]["targets"];
    REQUIRE(targets.size() == 4);
    for (const auto& t : targets)
        for (const char* a : {"lira_online", "lira_offline", "lira_online_fixed_var", "lira_offline_fixed_var", "loss"})
            CHECK_MESSAGE(t["attacks"].contains(a), a);
    std::ifstream m(dir + "/membership.csv");
    int rows = 0;
    for (std::string l; std::getline(m, l); rows++) {
        int ones = 0, fields = 1;
        for (char ch : l) ones += ch == '1', fields += ch == ',';
        CHECK(fields == 300);
        CHECK(ones == 150);  // each model trains on exactly half the pool
    }
    CHECK(rows == 4);
}
