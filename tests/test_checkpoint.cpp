// test_checkpoint.cpp: checkpoints as a reader meets them after a crash or
// from someone else's disk.
//   - truncated, corrupt, empty and foreign files are refused with one
//     "<path>: <why>" error, by the library and by bin/train and bin/export
//   - a bad meta record (the JSON inside) is refused before use
//   - bin/train killed with SIGKILL at random points, resumed each time, ends
//     with a checkpoint equal bit for bit to an uninterrupted run's (timings
//     aside), and no file a killed run leaves is ever read as complete
//   - bin/train on a disk that fills up (a small tmpfs) stops with one error
//     line, keeps the last checkpoint, and resumes from it
// The programs are run from the repo root: TRAIN_BIN and EXPORT_BIN override
// bin/train and bin/export.
//
// LibTorch before doctest: glog (pulled in by c10) defines CHECK too, and
// doctest's definitions must be the ones that win.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <doctest/doctest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/cli_check.h"
#include "tests/temp_dir.h"
#include "train/checkpoint.h"
#include "train/checkpoint_meta.h"
#include "train/trainer.h"

using namespace mmia;
namespace fs = std::filesystem;

namespace {


std::string train_bin() { return cli_env_or("TRAIN_BIN", "bin/train"); }
std::string export_bin() { return cli_env_or("EXPORT_BIN", "bin/export"); }

void write_text(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << text;
    REQUIRE(f.good());
}

// A small preset so a whole training run takes seconds: 7x7 patches -> 16
// tokens (so the scan really runs), two layers. With augmentation, so that a
// resume must also replay the random shifts and mirrors (on digits they only
// make the task harder; exactness is what is tested here).
const char* kTinyConfig = R"({
  "training": {"batch_size": 64, "epochs": 4, "learning_rate": 0.003, "weight_decay": 0.01,
               "lr_schedule": "cosine", "save_dir": "checkpoints", "seed": 7, "augment": "crop-flip"},
  "default_preset": {"mamba": "tiny"},
  "presets": {"tiny": {"model": "mamba", "d_model": 16, "n_layers": 2, "d_state": 4, "d_conv": 4,
                       "expand": 2, "dt_rank": "auto", "dt_min": 0.001, "dt_max": 0.1,
                       "dt_init_floor": 0.0001, "patch": [7, 7], "pool": "mean",
                       "conv": "causal", "norm_eps": 1e-5}}
})";

std::vector<std::string> train_args(const TempDir& dir, const std::string& output) {
    return {train_bin(), "--model", "mamba", "--dataset", "mnist", "--config", dir.file("config.json"),
            "--limit-train", "192", "--epochs", "4", "--threads", "1", "--output", output};
}

// The meta record with what legitimately differs between two equal runs
// (each epoch's wall time) taken out.
json without_timings(json meta) {
    for (json& h : meta["history"]) h.erase("seconds");
    return meta;
}

// LibTorch names each parameter's optimizer state by the address of its
// tensor in the process that saved it: in the optimizer's archive,
// param_groups / "param_groups/<g>" / "params/<i>" holds that name for
// parameter i of group g, and state / <name> its moments. Two equal runs
// differ there, so the states are matched by parameter order instead.
struct ParamNames {
    std::vector<std::string> a, b;
};

std::vector<std::string> optimizer_param_names(torch::serialize::InputArchive& optim) {
    std::vector<std::string> names;
    torch::serialize::InputArchive groups;
    REQUIRE(optim.try_read("param_groups", groups));
    for (int g = 0;; g++) {
        torch::serialize::InputArchive group;
        if (!groups.try_read("param_groups/" + std::to_string(g), group)) break;
        c10::IValue name;
        for (int i = 0; group.try_read("params/" + std::to_string(i), name); i++) {
            REQUIRE(name.isString());
            names.push_back(name.toStringRef());
        }
    }
    REQUIRE(!names.empty());
    return names;
}

// Every entry of two checkpoint archives equal: tensors bit for bit (dtype,
// shape, bytes), nested archives recursively, the meta record as JSON
// without timings, other values by IValue equality; optimizer state matched
// by parameter order (above). `where` names the path in messages.
void check_archives_equal(torch::serialize::InputArchive& a, torch::serialize::InputArchive& b,
                          const std::string& where, int* n_tensors, const ParamNames* names = nullptr) {
    std::vector<std::string> ka = a.keys(), kb = b.keys();
    std::sort(ka.begin(), ka.end());
    std::sort(kb.begin(), kb.end());
    if (where.size() >= 6 && where.compare(where.size() - 6, 6, "/state") == 0 && names) {
        REQUIRE_MESSAGE(ka.size() == kb.size(), where);
        REQUIRE(names->a.size() == names->b.size());
        for (size_t i = 0; i < names->a.size(); i++) {
            torch::serialize::InputArchive sa, sb;
            if (!a.try_read(names->a[i], sa)) continue;  // a parameter with no state yet
            REQUIRE_MESSAGE(b.try_read(names->b[i], sb), where << " of parameter " << i);
            check_archives_equal(sa, sb, where + "/param" + std::to_string(i), n_tensors);
        }
        return;
    }
    REQUIRE_MESSAGE(ka == kb, where);
    for (const std::string& key : ka) {
        const std::string at = where + "/" + key;
        if (names && key.rfind("params/", 0) == 0 && key != "params/size") continue;  // the addresses
        torch::serialize::InputArchive sa, sb;
        if (a.try_read(key, sa)) {
            REQUIRE_MESSAGE(b.try_read(key, sb), at);
            if (key == "optimizer") {
                ParamNames optim_names{optimizer_param_names(sa), optimizer_param_names(sb)};
                check_archives_equal(sa, sb, at, n_tensors, &optim_names);
            } else {
                check_archives_equal(sa, sb, at, n_tensors, names);
            }
            continue;
        }
        c10::IValue va, vb;
        REQUIRE_MESSAGE(a.try_read(key, va), at);
        REQUIRE_MESSAGE(b.try_read(key, vb), at);
        if (va.isTensor()) {
            REQUIRE_MESSAGE(vb.isTensor(), at);
            const torch::Tensor ta = va.toTensor(), tb = vb.toTensor();
            CHECK_MESSAGE(bool(ta.scalar_type() == tb.scalar_type()), at);
            CHECK_MESSAGE(bool(ta.sizes() == tb.sizes()), at);
            CHECK_MESSAGE(torch::equal(ta, tb), at);  // exact, bitwise for finite values
            ++*n_tensors;
        } else if (key == "meta") {
            CHECK_MESSAGE(bool(without_timings(json::parse(va.toStringRef())) ==
                               without_timings(json::parse(vb.toStringRef()))),
                          at);
        } else {
            CHECK_MESSAGE(bool(va == vb), at);
        }
    }
}

// One directory for the whole binary, holding the tiny config and the
// uninterrupted reference run (trained once, used by every test case).
const TempDir& work_dir() {
    static TempDir dir("mmia_ckpt");
    static bool written = false;
    if (!written) {
        write_text(dir.file("config.json"), kTinyConfig);
        written = true;
    }
    return dir;
}

struct Reference {
    std::string path;
    double seconds;  // its wall time here
};

const Reference& reference_run() {
    static Reference ref;
    if (ref.path.empty()) {
        const TempDir& dir = work_dir();
        const std::string path = dir.file("ref.pt");
        auto t0 = std::chrono::steady_clock::now();
        CliRun r = cli_run_argv(train_args(dir, path), dir.file("ref.log"));
        ref.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        REQUIRE_MESSAGE(r.code == 0, r.err);
        ref.path = path;
    }
    return ref;
}

// Opens a checkpoint the way every reader does and loads its weights and
// optimizer state; throws what the readers throw.
void load_fully(const std::string& path) {
    json meta = read_checkpoint_meta(path);
    MambaClassifier model = load_mamba_checkpoint(path);
    torch::optim::AdamW opt(model->parameters(), torch::optim::AdamWOptions(1e-3));
    load_checkpoint_state(path, *model, &opt);
}

}  // namespace

// ===========================================================================

TEST_CASE("checkpoints: truncated, corrupt, empty and foreign files are refused with <path>: <why>") {
    torch::set_num_threads(1);
    const TempDir& dir = work_dir();
    const std::string good = reference_run().path;
    REQUIRE_NOTHROW(load_fully(good));
    const std::string bytes = cli_read_text(good);
    REQUIRE(bytes.size() > 1000);

    auto expect_refused = [&](const std::string& content, const std::string& needle) {
        const std::string p = dir.file("bad.pt");
        write_text(p, content);
        INFO("file of " << content.size() << " bytes, expecting: " << needle);
        const std::string prefix = p + ": ";
        CHECK_THROWS_WITH_AS(load_fully(p), doctest::Contains(prefix.c_str()), std::runtime_error);
        try {
            load_fully(p);
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()).find(needle) != std::string::npos);
        }
    };

    SUBCASE("truncated anywhere") {
        // Every cut a crash could leave if the file were written in place:
        // the zip's central directory is at the end, so each is refused.
        std::mt19937 g(1);
        std::vector<size_t> cuts = {0, 1, 2, 30, 100, bytes.size() / 2, bytes.size() - 22,
                                    bytes.size() - 1};
        for (int i = 0; i < 24; i++) cuts.push_back(std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(g));
        for (size_t cut : cuts)
            expect_refused(bytes.substr(0, cut), cut == 0 ? "" : "not a readable checkpoint");
    }
    SUBCASE("garbage, and a zip that is not a checkpoint") {
        expect_refused(std::string(4096, '\x5a'), "not a readable checkpoint");
        // The right structure with the meta record's version wrong: refused by version.
        std::string other = bytes;
        size_t at = other.find("\"checkpoint_version\":1");
        REQUIRE(at != std::string::npos);  // stored uncompressed in the zip
        other[at + 21] = '7';
        // The zip's CRC-32 of that record no longer matches: LibTorch may
        // catch it first; either way it must be refused, never loaded.
        expect_refused(other, "");
    }
    SUBCASE("missing file and a directory") {
        CHECK_THROWS_WITH_AS(load_fully(dir.file("none.pt")), doctest::Contains("no such checkpoint file"),
                             std::runtime_error);
        CHECK_THROWS_WITH_AS(load_fully(dir.path.string()), (dir.path.string() + ": not a regular file").c_str(),
                             std::runtime_error);
    }
    SUBCASE("bin/train and bin/export refuse a truncated checkpoint: one error line, exit 1") {
        const std::string p = dir.file("cut.pt");
        write_text(p, bytes.substr(0, bytes.size() / 2));
        std::vector<std::string> args = train_args(dir, p);
        CliRun t = cli_run_argv(args, dir.file("cut_train.log"));
        CHECK(t.code == 1);
        CHECK(t.err == "error: " + p + ": not a readable checkpoint (truncated or corrupt)\n");
        CHECK(cli_read_text(p) == bytes.substr(0, bytes.size() / 2));  // left as it was
        CliRun e = cli_run_argv({export_bin(), "model", "--checkpoint", p, "--output", dir.file("m.bin")},
                    dir.file("cut_export.log"));
        CHECK(e.code == 1);
        CHECK(e.err == "error: " + p + ": not a readable checkpoint (truncated or corrupt)\n");
        CHECK(e.out.empty());
        CHECK_FALSE(fs::exists(dir.file("m.bin")));
    }
}

TEST_CASE("checkpoint meta: every field a reader uses is checked first") {
    const json good = json::parse(R"({"checkpoint_version":1,"model":"mamba","epochs_done":2,
        "history":[],"input":{"channels":1,"height":28,"width":28,"n_classes":10,"mean":[0.1],"std":[0.3]},
        "mamba":{"model":"mamba","d_model":8,"n_layers":1,"d_state":2,"d_conv":2,"expand":2,"dt_rank":1,
                 "dt_min":0.001,"dt_max":0.1,"dt_init_floor":0.0001,"patch":[7,7],"pool":"mean",
                 "conv":"causal","norm_eps":1e-5}})");
    const uint64_t kFileBytes = 100000;  // the good model's weights take about 4 kB
    REQUIRE_NOTHROW(parse_checkpoint_meta(good.dump(), "m.pt", kFileBytes));
    auto refused = [&](const std::string& text, const std::string& needle) {
        INFO(text);
        CHECK_THROWS_WITH_AS(parse_checkpoint_meta(text, "m.pt", kFileBytes), doctest::Contains("m.pt: "),
                             std::runtime_error);
        CHECK_THROWS_WITH_AS(parse_checkpoint_meta(text, "m.pt", kFileBytes), doctest::Contains(needle.c_str()),
                             std::runtime_error);
    };
    auto with = [&](const char* key, json v) {
        json m = good;
        m[key] = v;
        return m.dump();
    };
    refused("{\"checkpoint_version\":1,", "corrupt checkpoint meta");
    refused("[1]", "unsupported checkpoint version");
    refused(with("checkpoint_version", 2), "unsupported checkpoint version");
    refused(with("checkpoint_version", "1"), "unsupported checkpoint version");
    refused(with("model", 3), "\"model\" must be a string");
    refused(with("epochs_done", "2"), "epochs_done");
    refused(with("epochs_done", -1), "epochs_done");
    refused(with("epochs_done", 1e30), "epochs_done");
    refused(with("history", json::object()), "history");
    json in = good["input"];
    in["channels"] = 1e30;  // get<int> of this would be undefined behaviour
    refused(with("input", in), "channels");
    in = good["input"];
    in["mean"] = {0.1, 0.2};
    refused(with("input", in), "mean");
    in = good["input"];
    in["std"] = {0.0};
    refused(with("input", in), "std");
    in = good["input"];
    in["std"] = {"x"};
    refused(with("input", in), "std");
    json mc = good["mamba"];
    mc["d_state"] = 0;
    refused(with("mamba", mc), "d_state");
    mc = good["mamba"];
    mc["patch"] = {5, 5};
    refused(with("mamba", mc), "does not tile");
    mc = good["mamba"];
    mc["d_model"] = 16384;  // a model of gigabytes in a 100 kB file
    mc["expand"] = 16;
    mc["n_layers"] = 256;
    refused(with("mamba", mc), "more than the 100000-byte file holds");
    json m = good;
    m.erase("mamba");
    refused(m.dump(), "missing \"mamba\"");
    refused(std::string(100, '[') + std::string(100, ']'), "nested more than 64 levels");
}

// The finished checkpoint at `path` equals the reference run's bit for bit
// (timings aside), and re-running the finished job changes nothing.
void check_equals_reference(const TempDir& dir, const std::string& path) {
    torch::serialize::InputArchive a, b;
    a.load_from(reference_run().path);
    b.load_from(path);
    int n_tensors = 0;
    check_archives_equal(a, b, "", &n_tensors);
    CHECK(n_tensors >= 75);  // 25 parameters and the optimizer's two moments of each
    json meta = read_checkpoint_meta(path);
    CHECK(meta["epochs_done"].get<int>() == 4);
    CHECK(meta.contains("final"));
    const std::string before = cli_read_text(path);
    CliRun r = cli_run_argv(train_args(dir, path), dir.file("again.log"));
    CHECK(r.code == 0);
    CHECK(r.out.find("already trained") != std::string::npos);
    CHECK(cli_read_text(path) == before);
}

TEST_CASE("bin/train killed with SIGKILL at random points resumes to the uninterrupted result") {
    torch::set_num_threads(1);
    const TempDir& dir = work_dir();
    const double whole = reference_run().seconds;  // the uninterrupted run's time here

    // A stale partial temp file from some earlier crash must never be read.
    const std::string out = dir.file("killed.pt");
    write_text(out + ".tmp", "PK\x03\x04 half a checkpoint");

    // Start bin/train, kill it, start it again (it resumes), ... Even
    // attempts kill after a random delay (often before the first checkpoint,
    // or while one is being written); odd attempts wait for a new epoch's
    // checkpoint to appear and kill right after it, so a real resume from a
    // mid-run checkpoint happens in every run of this test. A run that
    // finishes before its kill is compared with the reference and the job
    // starts over, until enough kills have landed.
    // Seeded, so a failing sequence of delays can be replayed (MMIA_KILL_SEED
    // picks another); the delays still land at whatever the machine's speed
    // makes of them, which is the point of the test.
    const char* seed_env = std::getenv("MMIA_KILL_SEED");
    const unsigned seed = seed_env ? unsigned(std::strtoul(seed_env, nullptr, 10)) : 20261130u;
    std::mt19937 g(seed);
    std::uniform_real_distribution<double> when(0.05, 0.8);
    std::uniform_real_distribution<double> after_save(0.0, 0.1);
    int kills = 0, kills_this_job = 0, finished_after_kills = 0, resumed_mid_run = 0;
    int epochs_seen = 0;
    std::string log;
    auto epochs_done = [&]() {
        return fs::exists(out) ? read_checkpoint_meta(out)["epochs_done"].get<int>() : 0;
    };
    auto finish_job = [&](int code) {
        REQUIRE_MESSAGE(code == 0, cli_read_text(dir.file("killed.log.err")));
        check_equals_reference(dir, out);
        if (kills_this_job > 0) finished_after_kills++;
        fs::remove(out);
        kills_this_job = epochs_seen = 0;
    };
    for (int attempt = 0; attempt < 24 && (kills < 3 || resumed_mid_run < 1); attempt++) {
        const int resume_from = epochs_seen;
        pid_t pid = cli_spawn(train_args(dir, out), dir.file("killed.log"));
        double delay = when(g) * whole;
        const auto t0 = std::chrono::steady_clock::now();
        if (attempt % 2 == 1) {
            // Poll for the next epoch's checkpoint (renamed into place, so
            // its meta is readable the moment the name exists).
            // Reaped at most once: a child the loop's waitpid reaped is
            // gone for any later waitpid (ECHILD, which failed cli_wait).
            int st = 0;
            pid_t done = 0;
            while ((done = waitpid(pid, &st, WNOHANG)) == 0 && epochs_done() <= resume_from &&
                   std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60))
                std::this_thread::sleep_for(std::chrono::milliseconds(2));
            if (done == 0) done = waitpid(pid, &st, WNOHANG);
            if (done == pid) {  // finished (or died) before its kill
                const int code = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
                log += log.empty() ? "finished" : ", finished";
                finish_job(code);
                continue;
            }
            delay = after_save(g);
        }
        std::this_thread::sleep_for(std::chrono::duration<double>(delay));
        kill(pid, SIGKILL);
        const int code = cli_wait(pid, 120);
        const double at = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        char buf[96];
        std::snprintf(buf, sizeof buf, "%s%.2fs%s%s", log.empty() ? "" : ", ", at,
                      attempt % 2 == 1 ? " (after a save)" : "", code == -SIGKILL ? "" : " (finished)");
        log += buf;
        if (code == -SIGKILL) {
            kills++;
            kills_this_job++;
        }
        // Whatever the kill left under the real name is complete: it loads
        // in full, and its progress never goes backwards.
        if (fs::exists(out)) {
            INFO("after the run killed at " << at << " s");
            REQUIRE_NOTHROW(load_fully(out));
            const int done = epochs_done();
            CHECK(done >= epochs_seen);
            epochs_seen = done;
            if (code == -SIGKILL && done > 0 && done < 4) resumed_mid_run++;  // the next start resumes
        }
        if (code != -SIGKILL) finish_job(code);
    }
    if (kills_this_job > 0) {  // the last job was killed (with or without a checkpoint): finish it
        CliRun r = cli_run_argv(train_args(dir, out), dir.file("final.log"));
        REQUIRE_MESSAGE(r.code == 0, r.err);
        check_equals_reference(dir, out);
        finished_after_kills++;
    }
    MESSAGE("MMIA_KILL_SEED=" << seed << ": uninterrupted run " << whole << " s; runs stopped at " << log << "; " << kills
                                 << " killed mid-run, " << resumed_mid_run
                                 << " of them with a mid-run checkpoint to resume from; "
                                 << finished_after_kills
                                 << " killed jobs finished equal to the reference result");
    CHECK(resumed_mid_run >= 1);
    CHECK(kills >= 3);
    CHECK(finished_after_kills >= 1);
}

TEST_CASE("bin/train on a disk that fills up: one error line, the last checkpoint kept, and it resumes") {
    const TempDir& dir = work_dir();
    const std::string mnt = dir.file("mnt");
    fs::create_directories(mnt);
    if (!cli_small_disk_available(mnt, dir.file("probe.log"))) return;
    // Room for the first epoch's checkpoint and half of the next: the second
    // save (written beside the first, then renamed over it) runs out of space.
    const uintmax_t ckpt = fs::file_size(reference_run().path);
    const int kib = int(ckpt * 3 / 2 / 1024);
    const std::string saved = dir.file("full_disk_copy.pt");
    std::string cmd;
    for (const std::string& a : train_args(dir, mnt + "/full.pt")) cmd += cli_quote(a) + " ";
    const std::string script = cmd + " >" + cli_quote(dir.file("full.out")) + " 2>" + cli_quote(dir.file("full.err")) +
                               "; rc=$?; ls -a " + cli_quote(mnt) + " >" + cli_quote(dir.file("full.ls")) +
                               "; cp " + cli_quote(mnt + "/full.pt") + " " + cli_quote(saved) + " || exit 98; exit $rc";
    CliRun r = cli_run_on_small_disk(mnt, kib, script, dir.file("full.log"));
    const std::string err = cli_read_text(dir.file("full.err"));
    INFO("disk of " << kib << " KiB for checkpoints of " << ckpt / 1024 << " KiB; stderr: " << err << r.err);
    CHECK(r.code == 1);  // not a crash (LibTorch's own file writer aborts here)
    CHECK(err == "error: " + mnt + "/full.pt: cannot write checkpoint: write failed: No space left on device\n");
    CHECK(cli_read_text(dir.file("full.ls")) == ".\n..\nfull.pt\n");  // no temp file left
    // The checkpoint that was on the disk is intact, and training resumes
    // from it to the uninterrupted result.
    REQUIRE_NOTHROW(load_fully(saved));
    CHECK(read_checkpoint_meta(saved)["epochs_done"].get<int>() == 1);
    CliRun fin = cli_run_argv(train_args(dir, saved), dir.file("after_full.log"));
    REQUIRE_MESSAGE(fin.code == 0, fin.err);
    check_equals_reference(dir, saved);
}

TEST_CASE("bin/train and bin/export: bad flags, datasets and configs get one error line") {
    const TempDir& dir = work_dir();
    // exit code, and stderr (+ stdout, which must hold nothing else) is exactly
    // one line "error: <start>...", containing `needle`.
    auto check_error = [&](const std::vector<std::string>& args, int code, const std::string& start,
                           const std::string& needle) {
        CliRun r = cli_run_argv(args, dir.file("cli.log"), 30);
        INFO(args[0] << " " << (args.size() > 1 ? args[1] : "") << " ...\nstderr: " << r.err << "stdout: " << r.out);
        CHECK(r.code == code);
        CHECK(r.err.rfind("error: " + start, 0) == 0);
        CHECK(r.err.find(needle) != std::string::npos);
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
        CHECK(r.out.find("error") == std::string::npos);
    };
    const std::string T = train_bin(), E = export_bin();
    check_error({T, "--bogus"}, 2, "The following argument was not expected: --bogus", "(see --help)");
    check_error({T, "--model", "rnn"}, 2, "--model: rnn not in {", "cnn");
    check_error({T, "--epochs", "0"}, 2, "--epochs", "");
    check_error({E}, 2, "A subcommand is required", "");
    check_error({E, "image", "--split", "dev", "--output", dir.file("x.bin")}, 2, "--split: dev not in", "");
    check_error({T, "--dataset", "svhn"}, 1, "unknown dataset \"svhn\"", "known: mnist");

    // config.json
    const std::string cfg = dir.file("bad_config.json");
    write_text(cfg, "{\"presets\": [1,");
    check_error({T, "--config", cfg}, 1, cfg + ": ", "parse error");
    write_text(cfg, "{\"training\": 3, \"default_preset\": {\"mamba\": \"tiny\"}, \"presets\": {\"tiny\": 5}}");
    check_error({T, "--config", cfg}, 1, "preset \"tiny\" must be a JSON object", "");
    check_error({T, "--config", dir.file("no_such_config.json")}, 1, dir.file("no_such_config.json") + ": cannot open", "");
    const std::string fifo = dir.file("fifo.json");
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    check_error({T, "--config", fifo}, 1, fifo + ": not a regular file", "");  // not a hang

    // dataset files: a truncated label file, through both programs; no output left
    const std::string data = dir.file("mnist_bad");
    fs::create_directories(data);
    for (const char* f : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"})
        fs::copy_file(std::string("data/mnist/") + f, data + "/" + f, fs::copy_options::overwrite_existing);
    write_text(data + "/t10k-labels-idx1-ubyte", cli_read_text("data/mnist/t10k-labels-idx1-ubyte").substr(0, 5008));
    const std::string labels = data + "/t10k-labels-idx1-ubyte";
    const std::string out = dir.file("never.bin");
    check_error({E, "image", "--data-dir", data, "--output", out}, 1, labels + ": truncated: the header says 10000 labels",
                "the file has 5008 bytes");
    CHECK_FALSE(fs::exists(out));
    check_error({T, "--config", dir.file("config.json"), "--data-dir", data, "--output", out}, 1,
                labels + ": truncated", "");
    CHECK_FALSE(fs::exists(out));
}

// ===========================================================================
// Non-finite numbers: a diverging run, a checkpoint holding a NaN

namespace {

// What save_checkpoint writes, without its finiteness check: how a
// checkpoint with a NaN weight reaches a reader (another tool, an older
// build, a flipped bit).
void save_unchecked(const std::string& path, torch::nn::Module& model, const json& meta) {
    torch::serialize::OutputArchive archive;
    archive.write("meta", c10::IValue(meta.dump()));
    torch::serialize::OutputArchive model_archive;
    model.save(model_archive);
    archive.write("model", model_archive);
    archive.save_to(path);
}

}  // namespace

TEST_CASE("a checkpoint with a NaN or inf weight is never written, and refused by every reader, named") {
    torch::set_num_threads(1);
    const TempDir& dir = work_dir();
    const std::string good = reference_run().path;
    json meta = read_checkpoint_meta(good);
    // What decides the bits is recorded (issue 16): threads, seed, preset, library versions.
    REQUIRE(meta.contains("reproducibility"));
    CHECK(meta["reproducibility"]["threads"] == 1);
    CHECK(meta["reproducibility"]["seed"] == 7);
    CHECK(meta["reproducibility"]["preset"] == "tiny");
    CHECK(meta["reproducibility"]["libtorch"].get<std::string>().rfind("1.", 0) == 0);
    for (const json& h : meta["history"]) CHECK(h["threads"] == 1);

    MambaClassifier model = load_mamba_checkpoint(good);
    const auto params = model->named_parameters();
    REQUIRE(params.size() > 2);
    struct Case {
        size_t param;
        int64_t element;
        float value;
        const char* shown;
    };
    for (const Case& c : {Case{params.size() - 1, 3, NAN, "NaN"}, Case{0, 0, INFINITY, "+inf"},
                          Case{params.size() / 2, 1, -INFINITY, "-inf"}}) {
        MambaClassifier m = load_mamba_checkpoint(good);
        auto named = m->named_parameters();
        const std::string key = named[c.param].key();
        {
            torch::NoGradGuard ng;
            named[c.param].value().view({-1})[c.element] = c.value;
        }
        const std::string what = "parameter '" + key + "' element " + std::to_string(c.element) + " is " + c.shown;
        CHECK(first_nonfinite_weight(*m) == what);
        // save_checkpoint refuses, leaving nothing
        const std::string refused = dir.file("nan_refused.pt");
        CHECK_THROWS_WITH_AS(save_checkpoint(refused, *m, nullptr, meta),
                             (refused + ": refusing to write a checkpoint whose " + what).c_str(), std::runtime_error);
        CHECK_FALSE(fs::exists(refused));
        // one written anyway is refused by the library and by bin/export, named
        const std::string bad = dir.file("nan.pt");
        save_unchecked(bad, *m, meta);
        const std::string line = bad + ": " + what + " (a checkpoint's weights must be finite)";
        CHECK_THROWS_WITH_AS(load_mamba_checkpoint(bad), line.c_str(), std::runtime_error);
        const std::string out = dir.file("nan.bin");
        CliRun e = cli_run_argv({export_bin(), "model", "--checkpoint", bad, "--output", out}, dir.file("nan_export.log"));
        CHECK(e.code == 1);
        CHECK(e.err == "error: " + line + "\n");
        CHECK_FALSE(fs::exists(out));
    }
}

TEST_CASE("training that diverges stops at the step, names it, and writes no checkpoint of it") {
    torch::set_num_threads(1);
    const TempDir& dir = work_dir();
    json config = load_config_file(dir.file("config.json"));
    TrainJob job;
    job.spec = resolve_preset(config, "mamba", "tiny");
    job.train = resolve_training(config, "tiny");
    job.train.epochs = 2;
    job.train.augment = "none";
    job.input = {1, 28, 28, 10, {0.13f}, {0.31f}};
    job.verbose = false;
    torch::manual_seed(1);
    auto x = torch::rand({192, 1, 28, 28});
    auto y = torch::randint(0, 10, {192}, torch::kInt64);
    const std::string where = ": epoch 1 of 2, step ";
    const std::string tail = "; training diverged and was stopped; no checkpoint of this epoch was written (try a lower --lr)";
    // lr = inf: the first step's update makes weights inf/NaN: caught after the step.
    job.checkpoint = dir.file("diverge_inf.pt");
    job.train.learning_rate = INFINITY;
    try {
        train_classifier(job, x, y, x, y);
        FAIL("no error");
    } catch (const std::runtime_error& e) {
        const std::string w = e.what();
        INFO(w);
        CHECK(w.rfind(job.checkpoint + where + "1 of 3: after the optimizer step parameter '", 0) == 0);
        CHECK(w.size() > tail.size());
        CHECK(w.substr(w.size() - tail.size()) == tail);
    }
    CHECK_FALSE(fs::exists(job.checkpoint));
    // lr = 1e30: finite weights of 1e30 after step 1; step 2's loss overflows.
    job.checkpoint = dir.file("diverge_big.pt");
    job.train.learning_rate = 1e30;
    try {
        train_classifier(job, x, y, x, y);
        FAIL("no error");
    } catch (const std::runtime_error& e) {
        const std::string w = e.what();
        INFO(w);
        CHECK((w == job.checkpoint + where + "2 of 3: the training loss is NaN" + tail ||
               w == job.checkpoint + where + "2 of 3: the training loss is inf" + tail));
    }
    CHECK_FALSE(fs::exists(job.checkpoint));
    // The same job at a sane rate trains (the checks pass finite runs).
    job.checkpoint = dir.file("diverge_ok.pt");
    job.train.learning_rate = 3e-3;
    job.train.epochs = 1;
    json m = train_classifier(job, x, y, x, y);
    CHECK(m["epochs_done"] == 1);
    CHECK(fs::exists(job.checkpoint));
}

TEST_CASE("bin/train and bin/export: a FIFO or device as any file argument, a nan learning rate: one line, no hang") {
    const TempDir& dir = work_dir();
    const std::string T = train_bin(), E = export_bin();
    const std::string fifo = dir.file("arg.fifo");
    if (!fs::exists(fifo)) REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    auto check_line = [&](const std::vector<std::string>& args, int code, const std::string& line) {
        CliRun r = cli_run_argv(args, dir.file("fifo_cli.log"), 60);  // cli_wait fails the test on a hang
        INFO(args[0] << " ... stderr: " << r.err);
        CHECK(r.code == code);
        CHECK(r.err == line + "\n");
    };
    const std::string cfg = dir.file("config.json");
    check_line({T, "--config", fifo}, 1, "error: " + fifo + ": not a regular file");
    check_line({T, "--config", "/dev/zero"}, 1, "error: /dev/zero: not a regular file");
    check_line({T, "--config", cfg, "--limit-train", "64", "--epochs", "1", "--output", fifo}, 1,
               "error: " + fifo + ": not a regular file");
    check_line({E, "model", "--checkpoint", fifo, "--output", dir.file("f.bin")}, 1, "error: " + fifo + ": not a regular file");
    check_line({E, "model", "--checkpoint", "/dev/null", "--output", dir.file("f.bin")}, 1,
               "error: /dev/null: not a regular file");
    // a dataset file that is a FIFO
    const std::string data = dir.file("mnist_fifo");
    fs::create_directories(data);
    for (const char* f : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"})
        fs::copy_file(std::string("data/mnist/") + f, data + "/" + f, fs::copy_options::overwrite_existing);
    const std::string labels = data + "/t10k-labels-idx1-ubyte";
    if (!fs::exists(labels)) REQUIRE(mkfifo(labels.c_str(), 0600) == 0);
    check_line({E, "image", "--data-dir", data, "--output", dir.file("f.bin")}, 1, "error: " + labels + ": not a regular file");
    check_line({T, "--config", cfg, "--data-dir", data, "--output", dir.file("f.pt")}, 1,
               "error: " + labels + ": not a regular file");
    // --lr: nan and inf passed CLI::PositiveNumber; now the config's range
    for (const char* lr : {"nan", "inf", "1e30", "0"})
        check_line({T, "--lr", lr}, 2, std::string("error: --lr: '") + lr + "' is not a learning rate in [1e-12, 10] (see --help)");
    // stdin closed: bin/export never reads it
    CliRun r = cli_run("sh", "-c " + cli_quote(cli_quote(E) + " image --output " + cli_quote(dir.file("ok.bin")) + " <&-"),
                       dir.path.string());
    CHECK(r.code == 0);
}

TEST_CASE("bin/export and bin/train: an --output that is a FIFO, device or directory, a --data-dir that is not a directory: one exact line, nothing replaced") {
    const TempDir& dir = work_dir();
    const std::string T = train_bin(), E = export_bin();
    const std::string fifo = dir.file("out.fifo"), null_link = dir.file("out_null.bin"), sub = dir.file("out_dir");
    if (!fs::exists(fifo)) REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    if (!fs::is_symlink(null_link)) fs::create_symlink("/dev/null", null_link);  // if it were replaced, only the link goes
    fs::create_directories(sub);
    auto check_line = [&](const std::vector<std::string>& args, int code, const std::string& line) {
        CliRun r = cli_run_argv(args, dir.file("special_out.log"), 60);  // cli_wait fails the test on a hang
        INFO(args[0] << " " << args[1] << " ... stderr: " << r.err);
        CHECK(r.code == code);
        CHECK(r.err == line + "\n");
    };
    const std::string ckpt = reference_run().path;
    for (const std::string& out : {fifo, null_link, sub}) {
        check_line({E, "model", "--checkpoint", ckpt, "--output", out}, 1, "error: " + out + ": not a regular file");
        check_line({E, "image", "--output", out}, 1, "error: " + out + ": not a regular file");
        check_line({T, "--config", dir.file("config.json"), "--limit-train", "64", "--epochs", "1", "--output", out}, 1,
                   "error: " + out + ": not a regular file");
    }
    struct stat st;
    CHECK((lstat(fifo.c_str(), &st) == 0 && S_ISFIFO(st.st_mode)));
    CHECK((lstat(null_link.c_str(), &st) == 0 && S_ISLNK(st.st_mode)));
    CHECK((stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode)));
    // --data-dir a FIFO or a device: it exists, and is not a directory
    for (const std::string& d : {fifo, std::string("/dev/zero")}) {
        const std::string line = "error: dataset mnist: files not found; looked in:\n  " + d +
                                 ": not a directory\n  run `make setup` (it fetches MNIST into data/mnist), or pass the "
                                 "directory holding the files with --data-dir";
        check_line({E, "image", "--data-dir", d, "--output", dir.file("never.bin")}, 1, line);
        check_line({T, "--config", dir.file("config.json"), "--data-dir", d, "--output", dir.file("never.pt")}, 1, line);
    }
    CHECK_FALSE(fs::exists(dir.file("never.bin")));
}

// ===========================================================================
// docs/BAD_INPUT.md, row by row, through bin/train and bin/export: each
// row's exact line (the sizes and offsets are this fixture's, the text
// around them the documented line's).

TEST_CASE("docs/BAD_INPUT.md: bin/train and bin/export command-line, dataset, config.json and checkpoint rows, exact lines") {
    const TempDir& dir = work_dir();
    const std::string T = train_bin(), E = export_bin();
    auto row = [&](const std::vector<std::string>& args, int code, const std::string& line) {
        CliRun r = cli_run_argv(args, dir.file("rows.log"), 60);
        std::string cmd;
        for (const std::string& a : args) cmd += a + " ";
        INFO(cmd << "\nstderr: " << r.err);
        CHECK(r.code == code);
        CHECK(r.err == line + "\n");
        CHECK(r.out.find("error") == std::string::npos);
    };

    SUBCASE("command lines") {
        row({T, "--bogus"}, 2, "error: The following argument was not expected: --bogus (see --help)");
        row({T, "--model", "rnn"}, 2, "error: --model: rnn not in {mamba,cnn,mamba-lm,transformer-lm} (see --help)");
        row({E}, 2, "error: A subcommand is required (see --help)");
        row({E, "image", "--split", "dev", "--output", dir.file("x.bin")}, 2, "error: --split: dev not in {test,train} (see --help)");
        row({T, "--dataset", "svhn"}, 1, "error: unknown dataset \"svhn\" (known: mnist, fashion, cifar10)");
        row({E, "image", "--dataset", "svhn", "--output", dir.file("x.bin")}, 1,
            "error: unknown dataset \"svhn\" (known: mnist, fashion, cifar10)");
        CHECK_FALSE(fs::exists(dir.file("x.bin")));
    }

    SUBCASE("dataset files, through bin/export image --data-dir") {
        // A directory of MNIST's four files (links to the real ones), one replaced.
        int n_dir = 0;
        auto data_dir = [&](const std::string& replaced, const std::string& content) {
            const std::string d = dir.file("rows_ds" + std::to_string(n_dir++));
            fs::remove_all(d);
            fs::create_directories(d);
            for (const char* f : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                                  "t10k-labels-idx1-ubyte"})
                if (f != replaced) fs::create_symlink(fs::absolute(std::string("data/mnist/") + f), d + "/" + f);
            if (!content.empty()) write_text(d + "/" + replaced, content);
            return d;
        };
        const std::string out = dir.file("never.bin");
        auto ds_row = [&](const std::string& d, const std::string& line) {
            row({E, "image", "--data-dir", d, "--output", out}, 1, line);
            CHECK_FALSE(fs::exists(out));
        };
        const std::string fix = "  run `make setup` (it fetches MNIST into data/mnist), or pass the directory holding the files with --data-dir";
        const std::string nodir = dir.file("rows_nodir");
        ds_row(nodir, "error: dataset mnist: files not found; looked in:\n  " + nodir + ": no such directory\n" + fix);
        std::string d = data_dir("t10k-labels-idx1-ubyte", "");
        ds_row(d, "error: dataset mnist: files not found; looked in:\n  " + d + ": missing t10k-labels-idx1-ubyte[.gz]\n" + fix);
        const std::string images = cli_read_text("data/mnist/t10k-images-idx3-ubyte");
        const std::string labels = cli_read_text("data/mnist/t10k-labels-idx1-ubyte");
        REQUIRE(images.size() == 7840016);
        REQUIRE(labels.size() == 10008);
        const std::string I = "t10k-images-idx3-ubyte", L = "t10k-labels-idx1-ubyte";
        d = data_dir(I, images.substr(0, 7000000));
        ds_row(d, "error: " + d + "/" + I +
                      ": truncated: the header says 10000 images of 28x28 (7840016 bytes) but the file has 7000000 bytes");
        d = data_dir(L, labels.substr(0, 8));
        ds_row(d, "error: " + d + "/" + L + ": truncated: the header says 10000 labels (10008 bytes) but the file has 8 bytes");
        d = data_dir(I, images + "xy");
        ds_row(d, "error: " + d + "/" + I + ": 2 trailing bytes after the 10000 images of 28x28 the header says (7840016 bytes)");
        std::string bad = images;
        bad[3] = 0x01;  // magic 0x00000801: a label file's
        d = data_dir(I, bad);
        ds_row(d, "error: " + d + "/" + I + ": bad magic 0x00000801 (expected 0x00000803 for an IDX image file)");
        bad = images;
        bad[8] = 0x00, bad[9] = 0x01, bad[10] = char(0x86), bad[11] = char(0xa0);  // rows = 100000
        d = data_dir(I, bad);
        ds_row(d, "error: " + d + "/" + I + ": image size 100000x28 is outside 1..4096 on a side");
        bad = labels;
        bad[8 + 92] = 12;
        d = data_dir(L, bad);
        ds_row(d, "error: " + d + "/" + L + ": label 12 of item 92 is outside 0..9");
        // gzip, under the file's own name (detected by its magic bytes)
        const std::string gz = dir.file("rows_labels.gz");
        REQUIRE(system(("gzip -9 -n -c data/mnist/t10k-labels-idx1-ubyte > " + cli_quote(gz)).c_str()) == 0);
        const std::string zipped = cli_read_text(gz);
        REQUIRE(zipped.size() > 100);
        d = data_dir(L, zipped.substr(0, zipped.size() / 2));
        ds_row(d, "error: " + d + "/" + L + ": truncated gzip (the compressed stream ends early)");
        bad = zipped;
        bad[12] = char(0xff);  // inside the first block's header: its code lengths
        d = data_dir(L, bad);
        ds_row(d, "error: " + d + "/" + L + ": corrupt gzip (invalid code lengths set)");
        // a CIFAR-10 directory: five one-record training batches and a bad test batch
        auto cifar_dir = [&](const std::string& test_batch) {
            const std::string c = dir.file("rows_cifar" + std::to_string(n_dir++));
            fs::remove_all(c);
            fs::create_directories(c);
            const std::string record = std::string(1, '\3') + std::string(3072, '\x40');
            for (int i = 1; i <= 5; i++) write_text(c + "/data_batch_" + std::to_string(i) + ".bin", record);
            write_text(c + "/test_batch.bin", test_batch);
            return c;
        };
        auto cifar_row = [&](const std::string& c, const std::string& why) {
            row({E, "image", "--dataset", "cifar10", "--data-dir", c, "--output", out}, 1,
                "error: " + c + "/test_batch.bin: " + why);
            CHECK_FALSE(fs::exists(out));
        };
        const std::string rec = std::string(1, '\1') + std::string(3072, '\x20');
        cifar_row(cifar_dir(rec + rec.substr(0, 3072)),
                  "length 6145 is not a whole number of 3073-byte records (short last record of 3072 bytes)");
        cifar_row(cifar_dir(rec + std::string(1, '\12') + rec.substr(1)), "label 10 of item 1 is outside 0..9");
        {  // an empty file: write_text of "" still creates it
            const std::string c = cifar_dir("");
            cifar_row(c, "empty file");
        }
        const std::string cgz = dir.file("rows_cifar.gz");
        write_text(dir.file("rows_cifar.raw"), rec + rec + rec);
        REQUIRE(system(("gzip -n -c " + cli_quote(dir.file("rows_cifar.raw")) + " > " + cli_quote(cgz)).c_str()) == 0);
        const std::string cz = cli_read_text(cgz);
        cifar_row(cifar_dir(cz.substr(0, cz.size() - 12)), "truncated gzip (the compressed stream ends early)");
    }

    SUBCASE("config.json, through bin/train --config") {
        const std::string cfg = dir.file("rows_config.json");
        const std::string hint = " (run from the project root, or pass --config)";
        row({T, "--config", dir.file("rows_none.json")}, 1, "error: " + dir.file("rows_none.json") + ": cannot open" + hint);
        write_text(cfg, "{\"presets\": [1,");
        row({T, "--config", cfg}, 1,
            "error: " + cfg + ": [json.exception.parse_error.101] parse error at line 1, column 16: syntax error while "
            "parsing value - unexpected end of input; expected '[', '{', or a literal");
        write_text(cfg, "[1,2]");
        row({T, "--config", cfg}, 1, "error: " + cfg + ": top level must be a JSON object");
        write_text(cfg, std::string(1000, '[') + std::string(1000, ']'));
        row({T, "--config", cfg}, 1, "error: " + cfg + ": JSON nested more than 64 levels deep");
        // --preset nope, against the shipped config.json: the known presets
        // are its keys, in order (nlohmann's object is sorted)
        const json shipped = load_config_file("config.json");
        std::string known;
        for (auto& [name, p] : shipped["presets"].items()) known += (known.empty() ? "" : ", ") + name;
        row({T, "--preset", "nope"}, 1, "error: unknown preset \"nope\" (known: " + known + ")");
        // edits of the shipped file: one field at a time
        auto edited = [&](auto edit) {
            json c = shipped;
            edit(c);
            write_text(cfg, c.dump());
            return cfg;
        };
        const std::string corpus = dir.file("rows_no_corpus");  // never opened: the preset is refused first
        const std::string out = dir.file("rows_never.pt");
        row({T, "--config", edited([](json& c) { c["presets"]["transformer-lm-s"]["n_heads"] = 3; }), "--model",
             "transformer-lm", "--corpus", corpus, "--output", out},
            1, "error: transformer-lm config: d_model 64 is not a multiple of n_heads 3");
        row({T, "--config", edited([](json& c) { c["presets"]["transformer-lm-s"]["rotary_pct"] = 0.3125; }), "--model",
             "transformer-lm", "--corpus", corpus, "--output", out},
            1, "error: transformer-lm config: rotary_ndims = int(head_dim 16 * rotary_pct) = 5 must be even");
        row({T, "--config", edited([](json& c) { c["presets"]["mamba-lm-s"]["patch"] = {7, 7}; }), "--model", "mamba-lm",
             "--corpus", corpus, "--output", out},
            1, "error: mamba-lm config: unknown field \"patch\"");
        row({T, "--config", edited([](json& c) { c["presets"]["mamba-mnist"]["d_modle"] = 3; }), "--output", out}, 1,
            "error: mamba config: unknown field \"d_modle\"");
        row({T, "--config", edited([](json& c) { c["presets"]["mamba-mnist"]["d_state"] = 0; }), "--output", out}, 1,
            "error: mamba config: \"d_state\" = 0 is outside [1, 1024]");
        row({T, "--config", edited([](json& c) { c["presets"]["mamba-mnist"] = 5; }), "--output", out}, 1,
            "error: preset \"mamba-mnist\" must be a JSON object");
        row({T, "--config", edited([](json& c) { c["training"] = 3; }), "--output", out}, 1,
            "error: config: \"training\" must be a JSON object");
        row({T, "--config", edited([](json& c) { c["presets"]["mamba-mnist"]["patch"] = {5, 5}; }), "--output", out}, 1,
            "error: patch 5x5 does not tile a 28x28 image");
        // the conv stem's norm (mamba-cifar-gn: group norm, 8 groups of stem widths 32)
        const std::vector<std::string> gn = {"--preset", "mamba-cifar-gn", "--dataset", "cifar10", "--output", out};
        auto gn_row = [&](auto edit, const std::string& line) {
            std::vector<std::string> a = {T, "--config", edited(edit)};
            a.insert(a.end(), gn.begin(), gn.end());
            row(a, 1, line);
        };
        gn_row([](json& c) { c["presets"]["mamba-cifar-gn"]["stem_norm"] = "layer"; },
               "error: mamba config: \"stem_norm\" = \"layer\" is not one of: batch, group");
        gn_row([](json& c) { c["presets"]["mamba-cifar-gn"]["stem_groups"] = 5; },
               "error: mamba config: \"stem_groups\" = 5 does not divide the stem width 32");
        gn_row([](json& c) { c["presets"]["mamba-cifar-gn"].erase("stem_norm"); },
               "error: mamba config: \"stem_groups\" needs \"stem_norm\": \"group\"");
        gn_row([](json& c) { c["presets"]["mamba-cifar-gn"].erase("stem"); },
               "error: mamba config: \"stem_norm\" needs a \"stem\"");
        CHECK_FALSE(fs::exists(out));
    }

    SUBCASE("checkpoints, through bin/export model and bin/train") {
        const std::string out = dir.file("rows_never.bin");
        auto export_row = [&](const std::string& ckpt, const std::string& why) {
            row({E, "model", "--checkpoint", ckpt, "--output", out}, 1, "error: " + ckpt + ": " + why);
            CHECK_FALSE(fs::exists(out));
        };
        export_row(dir.file("rows_none.pt"), "no such checkpoint file");
        const std::string unreadable = "not a readable checkpoint (truncated or corrupt)";
        const std::string bytes = cli_read_text(reference_run().path);
        const std::string empty = dir.file("rows_empty.pt"), cut = dir.file("rows_cut.pt"), rnd = dir.file("rows_rand.pt");
        write_text(empty, "");
        export_row(empty, unreadable);
        write_text(cut, bytes.substr(0, 5000));
        export_row(cut, unreadable);
        std::mt19937 g(3);
        std::string noise(4096, '\0');
        for (char& ch : noise) ch = char(g());
        write_text(rnd, noise);
        export_row(rnd, unreadable);
        // a directory (the FIFO and device rows: "... a FIFO or device as any file argument ...")
        const std::string as_dir = dir.file("rows_ckpt_dir");
        fs::create_directories(as_dir);
        export_row(as_dir, "not a regular file");
        row({T, "--config", dir.file("config.json"), "--limit-train", "64", "--epochs", "1", "--output", as_dir}, 1,
            "error: " + as_dir + ": not a regular file");
        // bin/train --seed 5 over a checkpoint trained with the config's seed 7
        const std::string other = dir.file("rows_other.pt");
        fs::copy_file(reference_run().path, other, fs::copy_options::overwrite_existing);
        std::vector<std::string> args = train_args(dir, other);
        args.insert(args.end(), {"--seed", "5"});
        row(args, 1,
            "error: " + other + ": exists and was trained with another configuration; pass --force to overwrite it or "
            "choose another --output");
        CHECK(cli_read_text(other) == bytes);  // left as it was
    }
}
