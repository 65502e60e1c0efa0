// test_attack_run.cpp: the whole attack pipeline (attack/run.h) on real
// MNIST, small: null sanity (members that are fresh data score AUC 0.5 for
// every attack), the run directory's contents, caching on a re-run, the
// refusals (bad configuration, ds too large, another run's directory), and
// runs stopped by SIGKILL or by a full disk (a small tmpfs), then resumed.
// LibTorch before doctest: glog's CHECK would otherwise replace doctest's.
#include <algorithm>
#include <torch/torch.h>

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "attack/run.h"
#include "tests/cli_check.h"
#include "tests/temp_dir.h"
#include "train/checkpoint.h"

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

TEST_CASE("a real run writes every output; a re-run trains nothing and replaces corrupt packed models and logits") {
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

    // The packed models and confidence files are outputs, never inputs: a
    // re-run derives them again from the checkpoints, so corrupt ones (a
    // crash, a bad disk) are replaced, not read.
    const std::string npy = cli_read_text(dir + "/outputs/cnn/target0.npy");
    for (const char* f : {"/outputs/cnn/target0.npy", "/models/cnn/target0.bin", "/models/cnn/shadow1.bin"}) {
        std::ofstream bad(dir + f, std::ios::binary | std::ios::trunc);
        bad << "\x93NUMPY garbage";
    }
    json again = run_attack(c);
    CHECK(last_attack_run_stats().trained == 0);
    CHECK(last_attack_run_stats().cached == 3);
    CHECK(again["models"]["cnn"]["targets"][0]["attacks"] == t["attacks"]);  // deterministic
    CHECK(cli_read_text(dir + "/outputs/cnn/target0.npy") == npy);

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
    std::vector<std::vector<int>> in;  // in[model][example]
    for (std::string l; std::getline(m, l);) {
        in.emplace_back();
        for (char ch : l)
            if (ch != ',') in.back().push_back(ch == '1');
        CHECK(in.back().size() == 300);
        CHECK(std::count(in.back().begin(), in.back().end(), 1) == 150);  // each model trains on half the pool
    }
    REQUIRE(in.size() == 4);
    // The examples LiRA cannot score, counted from the saved matrix: online
    // needs an IN and an OUT reference among the other three models,
    // offline an OUT one. Each count is reported per target.
    for (int t = 0; t < 4; t++) {
        int no_in_or_out = 0, no_out = 0;
        for (int j = 0; j < 300; j++) {
            int refs_in = 0;
            for (int r = 0; r < 4; r++) refs_in += r != t && in[size_t(r)][size_t(j)];
            no_in_or_out += refs_in == 0 || refs_in == 3;
            no_out += refs_in == 3;
        }
        const json& a = targets[size_t(t)]["attacks"];
        CHECK(no_in_or_out > 0);  // with 3 references some always are
        CHECK(a["lira_online"].value("unscorable", 0) == no_in_or_out);
        CHECK(a["lira_online_fixed_var"].value("unscorable", 0) == no_in_or_out);
        CHECK(a["lira_offline"].value("unscorable", 0) == no_out);
    }
    CHECK(r["seconds"]["total"].get<double>() > 0);
    CHECK(r["seconds"]["training"].get<double>() > 0);
}

// bin/attack killed with SIGKILL at random points and started again each time
// ends with the same metrics and per-example scores as an uninterrupted run,
// and whatever a killed run leaves is either absent or complete.
TEST_CASE("bin/attack killed with SIGKILL at random points resumes to the uninterrupted result") {
    TempDir tmp("mmia_attack_kill");
    const std::string bin = cli_env_or("ATTACK_BIN", "bin/attack");
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "no executable " << bin << " (make bin/attack)");
    auto args = [&](const std::string& run_dir) {
        return std::vector<std::string>{bin, "--model", "both", "--ds", "200", "--shadow", "2", "--targets", "1",
                                        "--epochs", "2", "--threads", "2", "--run-dir", run_dir};
    };
    // metrics.json without what legitimately differs between the runs.
    auto metrics = [](const std::string& dir) {
        json m = json::parse(cli_read_text(dir + "/metrics.json"));
        m.erase("seconds"), m.erase("trained_now"), m.erase("cached");
        return m;
    };
    const std::string ref = tmp.file("ref");
    const auto t0 = std::chrono::steady_clock::now();
    CliRun r = cli_run_argv(args(ref), tmp.file("ref.log"), 600);
    const double whole = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE_MESSAGE(r.code == 0, r.err);

    const std::string dir = tmp.file("killed");
    std::mt19937 g(std::random_device{}());
    std::uniform_real_distribution<double> when(0.05, 0.95);
    int kills = 0;
    std::string log;
    for (int attempt = 0; attempt < 12 && kills < 4; attempt++) {
        const double delay = when(g) * whole;
        pid_t pid = cli_spawn(args(dir), tmp.file("killed.log"));
        std::this_thread::sleep_for(std::chrono::duration<double>(delay));
        kill(pid, SIGKILL);
        const int code = cli_wait(pid, 600);
        log += (log.empty() ? "" : ", ") + std::to_string(delay).substr(0, 4) + (code == -SIGKILL ? "s" : "s (finished)");
        if (code == -SIGKILL) {
            kills++;
        } else {
            REQUIRE_MESSAGE(code == 0, cli_read_text(tmp.file("killed.log.err")));
        }
        // Nothing a kill leaves under a result's name is half-written (a
        // temp file beside it may be; it is never read).
        for (const char* f : {"/metrics.json", "/attack_config.json", "/splits.json"})
            if (fs::exists(dir + f)) CHECK(!json::parse(cli_read_text(dir + f), nullptr, false).is_discarded());
    }
    CliRun fin = cli_run_argv(args(dir), tmp.file("final.log"), 600);  // resumes whatever is left; trains nothing if done
    REQUIRE_MESSAGE(fin.code == 0, fin.err);
    MESSAGE("uninterrupted run " << whole << " s; killed at " << log << "; " << kills << " kills");
    CHECK(kills >= 3);
    CHECK(metrics(dir) == metrics(ref));
    for (const char* f : {"scores/mamba_target0.csv", "scores/cnn_target0.csv", "outputs/mamba/shadow1.npy",
                          "outputs/cnn/target0.npy"}) {
        INFO(f);
        CHECK(cli_read_text(dir + "/" + f) == cli_read_text(ref + "/" + f));
    }
}

TEST_CASE("bin/attack: bad flags and impossible configurations get one error line") {
    TempDir tmp("mmia_attack_cli");
    const std::string bin = cli_env_or("ATTACK_BIN", "bin/attack");
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "no executable " << bin << " (make bin/attack)");
    struct Case {
        const char* args;
        int code;
        const char* needle;
    };
    const Case cases[] = {
        {"--protocol foo", 2, "--protocol: foo not in {shokri,lira}"},
        {"--model rnn", 2, "--model: rnn not in {mamba,cnn,both}"},
        {"--dataset svhn", 2, "--dataset: svhn not in"},
        {"--shadow 0", 2, "--shadow: Value 0 not in range 1 to 1000"},
        {"--targets 0", 2, "--targets"},
        {"--ds 5", 2, "--ds"},
        {"--bogus", 2, "--bogus"},
        {"--ds 40000", 1, "--ds 40000 is too large"},
        {"--protocol lira --shadow 1", 1, "lira needs at least 2 reference models"},
        {"--model both --preset shokri", 1, "--preset needs one --model"},
        {"--model cnn --preset mamba-mnist", 1, "preset \"mamba-mnist\" is a \"mamba\" model, not \"cnn\""},
        {"--config /nonexistent.json", 1, "/nonexistent.json"},
    };
    for (const Case& c : cases) {
        const std::string run_dir = tmp.file("run");
        CliRun r = cli_run(bin, std::string(c.args) + " --run-dir " + cli_quote(run_dir), tmp.path.string());
        INFO("args: " << std::string(c.args) << "\nstdout: " << r.out << "\nstderr: " << r.err);
        CHECK(r.code == c.code);
        CHECK(r.err.rfind("error: ", 0) == 0);
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
        CHECK(r.err.find(c.needle) != std::string::npos);
        CHECK(!fs::exists(run_dir + "/metrics.json"));
    }
}

TEST_CASE("a full disk while writing: one error line, a non-zero exit, nothing complete lost, and the run resumes") {
    TempDir tmp("mmia_attack_full");
    const std::string bin = cli_env_or("ATTACK_BIN", "bin/attack");
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "no executable " << bin << " (make bin/attack)");
    const std::string mnt = tmp.file("mnt");
    fs::create_directories(mnt);
    if (!cli_small_disk_available(mnt, tmp.file("probe.log"))) return;
    auto args = [&](const std::string& run_dir) {
        return "--model cnn --ds 200 --shadow 2 --targets 1 --epochs 2 --threads 2 --run-dir " + cli_quote(run_dir);
    };
    const std::string ref = tmp.file("ref");
    CliRun r = cli_run(bin, args(ref), tmp.path.string());
    REQUIRE_MESSAGE(r.code == 0, r.err);
    uintmax_t ref_bytes = 0;
    for (const auto& e : fs::recursive_directory_iterator(ref))
        if (e.is_regular_file()) ref_bytes += e.file_size();

    // The same run on a disk with room for about half of its files: it must
    // stop at the first write that does not fit, with a clear error.
    const std::string out = tmp.file("out");
    const int kib = int(ref_bytes / 2 / 1024);
    const std::string script = cli_quote(bin) + " " + args(mnt + "/run") + " >" + cli_quote(tmp.file("full.out")) +
                               " 2>" + cli_quote(tmp.file("full.err")) + "; rc=$?; cp -a " + cli_quote(mnt + "/run") +
                               " " + cli_quote(out) + " || exit 98; exit $rc";
    CliRun full = cli_run_on_small_disk(mnt, kib, script, tmp.file("full.log"));
    const std::string err = cli_read_text(tmp.file("full.err"));
    INFO("disk of " << kib << " KiB for a run of " << ref_bytes / 1024 << " KiB; stderr: " << err << full.err);
    CHECK(full.code == 1);  // not 0, not a crash (134 = abort)
    CHECK(err.rfind("error: ", 0) == 0);
    CHECK(std::count(err.begin(), err.end(), '\n') == 1);
    CHECK(err.find("No space left on device") != std::string::npos);

    // What the full disk holds is complete: no temp file is left, every JSON
    // parses, every cached model is a complete checkpoint whose record reads.
    int checked = 0;
    for (const auto& e : fs::recursive_directory_iterator(out)) {
        if (!e.is_regular_file()) continue;
        const std::string p = e.path().string();
        INFO(p);
        CHECK(p.find(".tmp") == std::string::npos);
        if (e.path().extension() == ".json") CHECK(!json::parse(cli_read_text(p), nullptr, false).is_discarded());
        if (e.path().extension() == ".pt") {
            CHECK_NOTHROW(read_checkpoint_meta(p));
            checked++;
        }
    }
    MESSAGE("the full disk held " << checked << " cached model(s) when the run stopped: " << err);

    // With room again, the same command finishes the run, equal to the
    // uninterrupted one.
    CliRun fin = cli_run(bin, args(out), tmp.path.string());
    REQUIRE_MESSAGE(fin.code == 0, fin.err);
    auto metrics = [](const std::string& dir) {
        json m = json::parse(cli_read_text(dir + "/metrics.json"));
        m.erase("seconds"), m.erase("trained_now"), m.erase("cached");
        return m;
    };
    CHECK(metrics(out) == metrics(ref));
    CHECK(cli_read_text(out + "/scores/cnn_target0.csv") == cli_read_text(ref + "/scores/cnn_target0.csv"));
}
