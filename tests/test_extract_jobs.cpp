// test_extract_jobs.cpp: bin/extract's run as scheduler jobs (attack/jobs.h,
// docs/EXTRACTION.md "The run as scheduler jobs"), through the program a
// user runs: --plan writes the job list and the scheduler files and trains
// nothing; every job of jobs.txt, then the plain run of the same arguments,
// give the sequential run's packed models, CSVs and metrics bit for bit
// (times and the run directory's path left out of metrics.json); one job
// twice at once trains once (its lock); a killed writer's temporary is
// removed; a complete job run again does nothing; the refusals are one
// exact line each.
//
// The run: the fixture corpus of tests/extract_fixture.h, both tiny presets
// with --control (6 trainings: 2 models, 2 references, 2 controls), 1 epoch,
// 1 thread.
// LibTorch before doctest: glog's CHECK would otherwise replace doctest's.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "attack/jobs.h"
#include "tests/cli_check.h"
#include "tests/extract_fixture.h"
#include "tests/temp_dir.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string extract_bin() { return cli_program("EXTRACT_BIN", "bin/extract"); }

// The fixture corpus and the tiny presets, their context widened for the
// untargeted samples (bin/extract generates 256 tokens each).
struct Fixture {
    TempDir tmp{"mmia_extract_jobs"};
    std::string corpus = tmp.file("corpus"), config = tmp.file("config.json");
    Fixture() {
        mmia::write_fixture_corpus(corpus);
        mmia::write_tiny_config(config);
        std::ifstream f(config);
        json c = json::parse(f);
        for (const char* p : {"tiny-mamba", "tiny-transformer", "mamba-lm-ref", "transformer-lm-ref"})
            c["presets"][p]["context"] = 320;
        std::ofstream(config) << c.dump(2);
    }
    // The run's arguments, without --run-dir.
    std::string args() const {
        return "--corpus " + cli_quote(corpus) + " --config " + cli_quote(config) +
               " --presets tiny-mamba,tiny-transformer --seeds 5 --prefix-lengths 8,16 --n-sequences 6 --samples 1"
               " --untargeted 8 --candidates 50 --mia-docs 8 --threads 1 --control";
    }
};

// metrics.json without what differs between two runs of the same
// arguments in two directories: the times, the run directory's path, and
// how many models the run trained itself or found trained.
json comparable_metrics(const std::string& dir) {
    std::string text = cli_read_text(dir + "/metrics.json");
    for (size_t at; (at = text.find(dir)) != std::string::npos;) text.replace(at, dir.size(), "RUN");
    json m = json::parse(text);
    std::function<void(json&)> strip = [&](json& j) {
        if (j.is_object()) {
            for (const char* k : {"seconds", "elapsed_s", "wall_seconds", "models_trained", "models_cached"}) j.erase(k);
            for (auto& [k, v] : j.items()) strip(v);
        } else if (j.is_array()) {
            for (auto& v : j) strip(v);
        }
    };
    strip(m);
    return m;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::stringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

}  // namespace

TEST_CASE("bin/extract --plan, every --job, then the plain run: the sequential run's models and outputs") {
    Fixture fx;
    const std::string bin = extract_bin(), dir = fx.tmp.file("sched"), seq = fx.tmp.file("seq");
    const std::string tmp = fx.tmp.path.string();

    CliRun p = cli_run(bin, fx.args() + " --run-dir " + cli_quote(dir) + " --plan --emit parallel,slurm,sge --slots 2",
                       tmp);
    INFO("plan stderr: " << p.err);
    REQUIRE(p.code == 0);
    CHECK(p.out.find("plan: 6 training jobs (1 thread(s) each)") != std::string::npos);
    const json jobs = json::parse(cli_read_text(dir + "/jobs.json"));
    const json plan = json::parse(cli_read_text(dir + "/plan.json"));
    REQUIRE(jobs["jobs"].size() == 6);
    CHECK(plan["n_jobs"] == 6);
    CHECK(plan["threads"] == 1);
    const char* const expect[][2] = {{"tiny-mamba", ""},   {"tiny-transformer", ""},        {"mamba-lm-ref", ""},
                                     {"transformer-lm-ref", ""}, {"tiny-mamba", "-control"}, {"tiny-transformer", "-control"}};
    for (size_t i = 0; i < 6; i++) {
        CHECK(jobs["jobs"][i]["preset"] == expect[i][0]);
        CHECK(jobs["jobs"][i]["tag"] == expect[i][1]);
        CHECK(jobs["jobs"][i]["seed"] == 5);
    }
    // Trains nothing; the scheduler files are there.
    for (const auto& j : jobs["jobs"]) CHECK_FALSE(cli_file_exists(j["checkpoint"].get<std::string>()));
    for (const char* f : {"run_parallel.sh", "jobs.sbatch", "score.sbatch", "submit.sh", "jobs.sge", "score.sge",
                          "submit_sge.sh"})
        CHECK_MESSAGE(cli_file_exists(dir + "/" + f), f);
    // The last step is the scoring run, named so (not bin/attack's "attack").
    CHECK_FALSE(cli_file_exists(dir + "/attack.sbatch"));
    CHECK(cli_read_text(dir + "/score.sbatch").find("#SBATCH --job-name=mmia-score\n") != std::string::npos);
    CHECK(cli_read_text(dir + "/score.sbatch").find(jobs["score_command"].get<std::string>() + "\n") != std::string::npos);
    CHECK(cli_read_text(dir + "/submit.sh").find("--dependency=afterok:$array score.sbatch") != std::string::npos);
    CHECK(cli_read_text(dir + "/submit_sge.sh").find("-hold_jid \"$array\" score.sge") != std::string::npos);
    CHECK(cli_read_text(dir + "/run_parallel.sh").find(jobs["score_command"].get<std::string>() + "\n") != std::string::npos);
    CHECK(cli_read_text(dir + "/jobs.sbatch").find("#SBATCH --array=0-5%2\n") != std::string::npos);
    CHECK(cli_read_text(dir + "/jobs.sbatch").find("Written by bin/extract --plan") != std::string::npos);
    CHECK(cli_read_text(dir + "/run_parallel.sh").find("J=2\n") != std::string::npos);

    // Every job, as jobs.txt says, from another directory (the plan has the
    // cwd); job 0 twice at once (its lock: one trains, the other finds it
    // complete); job 1 over a temporary a killed writer left.
    const std::vector<std::string> cmds = lines_of(cli_read_text(dir + "/jobs.txt"));
    REQUIRE(cmds.size() == 6);
    {
        const std::string a = tmp + "/job0a.out", b = tmp + "/job0b.out";
        const int st = system(("cd / && { " + cmds[0] + " >" + a + " 2>&1 & " + cmds[0] + " >" + b + " 2>&1; wait; }").c_str());
        CHECK(WIFEXITED(st));
        const std::string ta = cli_read_text(a), tb = cli_read_text(b);
        INFO("job 0 twice: " << ta << "\n---\n" << tb);
        const std::string trained = "job 0: tiny-mamba seed 5: trained\n", complete = "job 0: tiny-mamba seed 5: already complete\n";
        auto ends = [](const std::string& t, const std::string& e) {
            return t.size() >= e.size() && t.compare(t.size() - e.size(), e.size(), e) == 0;
        };
        CHECK(((ends(ta, trained) && ends(tb, complete)) || (ends(tb, trained) && ends(ta, complete))));
    }
    const std::string stale = jobs["jobs"][1]["checkpoint"].get<std::string>() + ".tmp.999999";
    std::ofstream(stale) << "left by a killed writer";
    for (size_t i = 1; i < cmds.size(); i++) {
        const std::string out = tmp + "/job" + std::to_string(i) + ".out";
        const int st = system(("cd / && " + cmds[i] + " >" + out + " 2>&1").c_str());
        const std::string text = cli_read_text(out);
        INFO("job " << i << ": " << text);
        CHECK(WIFEXITED(st));
        CHECK(WEXITSTATUS(st) == 0);
        const std::string done = "job " + std::to_string(i) + ": " + expect[i][0] + expect[i][1] + " seed 5: trained\n";
        CHECK(text.size() >= done.size());
        CHECK(text.compare(text.size() - std::min(text.size(), done.size()), done.size(), done) == 0);
    }
    CHECK_FALSE(cli_file_exists(stale));
    // A complete job again: one line, nothing written.
    const std::string pt0 = jobs["jobs"][0]["checkpoint"].get<std::string>();
    const auto mtime = fs::last_write_time(pt0);
    CliRun again = cli_run(bin, "--run-dir " + cli_quote(dir) + " --job 0", tmp);
    CHECK(again.code == 0);
    CHECK(again.out == "job 0: tiny-mamba seed 5: already complete\n");
    CHECK(again.err.empty());
    CHECK(fs::last_write_time(pt0) == mtime);

    // The plain run finds every model trained and only scores.
    CliRun scored = cli_run(bin, fx.args() + " --run-dir " + cli_quote(dir), tmp);
    INFO("scoring run: " << scored.out << scored.err);
    REQUIRE(scored.code == 0);
    size_t found = 0;
    for (size_t at = 0; (at = scored.out.find("already trained", at)) != std::string::npos; at++) found++;
    CHECK(found == 6);
    CHECK(scored.out.find("epoch 1/1") == std::string::npos);
    CHECK(fs::last_write_time(pt0) == mtime);

    // The sequential run of the same arguments: the same bits.
    CliRun s = cli_run(bin, fx.args() + " --run-dir " + cli_quote(seq), tmp);
    INFO("sequential run: " << s.err);
    REQUIRE(s.code == 0);
    CHECK(s.out.find("epoch 1/1") != std::string::npos);
    int compared = 0;
    for (const auto& e : fs::directory_iterator(seq + "/models"))
        if (e.path().extension() == ".bin") {
            const std::string name = e.path().filename().string();
            CHECK_MESSAGE(cli_read_text(e.path().string()) == cli_read_text(dir + "/models/" + name), name);
            compared++;
        }
    CHECK(compared == 6);
    compared = 0;
    for (const auto& e : fs::directory_iterator(seq))
        if (e.path().extension() == ".csv") {
            const std::string name = e.path().filename().string();
            CHECK_MESSAGE(cli_read_text(e.path().string()) == cli_read_text(dir + "/" + name), name);
            compared++;
        }
    CHECK(compared >= 3);  // prefix_<model>-seed5.csv for both models, and the summary
    const json patch = json::diff(comparable_metrics(seq), comparable_metrics(dir));
    CHECK_MESSAGE(patch.empty(), "metrics.json differs: " << patch.dump());
}

TEST_CASE("bin/extract --plan/--job: refusals are one exact line") {
    Fixture fx;
    const std::string bin = extract_bin(), tmp = fx.tmp.path.string();
    const std::string dir = fx.tmp.file("planned"), empty = fx.tmp.file("empty");
    const std::string nowhere = fx.tmp.file("nowhere"), file = fx.tmp.file("a-file");
    fs::create_directories(empty);
    std::ofstream(file) << "not a run directory";
    CliRun p = cli_run(bin, fx.args() + " --run-dir " + cli_quote(dir) + " --plan", tmp);
    REQUIRE(p.code == 0);
    const std::string abs = fs::absolute(dir).string();
    // The plain run of the planned directory with another setting: the
    // refusal names the first differing key of extract_config.json.
    std::string threads2 = fx.args(), fewer = fx.args();
    REQUIRE(threads2.find(" --threads 1") != std::string::npos);
    threads2.replace(threads2.find(" --threads 1"), 12, " --threads 2");
    REQUIRE(fewer.find(" --n-sequences 6") != std::string::npos);
    fewer.replace(fewer.find(" --n-sequences 6"), 16, " --n-sequences 5");
    struct Case {
        std::string args;
        int code;
        std::string line;  // the whole of stderr (docs/BAD_INPUT.md's row)
    };
    const Case cases[] = {
        {"--run-dir " + empty + " --job 0", 1,
         "error: " + empty + ": no plan.json in this run directory (write one with bin/extract --plan ... --run-dir " +
             empty + ")"},
        {"--run-dir " + nowhere + " --job 0", 1,
         "error: --run-dir " + nowhere + ": no such directory (give the directory bin/extract --plan wrote)"},
        {"--run-dir " + file + " --job 0", 1,
         "error: --run-dir " + file + ": not a directory (give the directory bin/extract --plan wrote)"},
        {threads2 + " --run-dir " + dir, 1,
         "error: " + dir + " holds a run with another configuration (threads: 1 there, 2 here); choose another "
                           "--run-dir or pass --force"},
        {fewer + " --run-dir " + dir, 1,
         "error: " + dir + " holds a run with another configuration (n_sequences: 6 there, 5 here); choose another "
                           "--run-dir or pass --force"},
        {"--run-dir " + dir + " --job 6", 1, "error: --job 6: the plan in " + abs + " has jobs 0 to 5"},
        {"--run-dir " + dir + " --job 0 --seeds 3", 2,
         "error: --job: the run's arguments come from its plan (plan.json); --seeds cannot be given with --job "
         "(see --help)"},
        {"--job 0", 2, "error: --job needs --run-dir (the directory bin/extract --plan wrote) (see --help)"},
        {"--run-dir " + dir + " --job -1", 2, "error: --job: '-1' is not an integer in [0, 1073741824] (see --help)"},
        {"--emit slurm", 2, "error: --emit needs --plan (see --help)"},
        {"--plan --slots 2", 2, "error: --slots needs --emit (see --help)"},
        {fx.args() + " --run-dir " + fx.tmp.file("pbs") + " --plan --emit pbs", 1,
         "error: --emit: unknown scheduler 'pbs' (parallel, slurm, sge)"},
        {"--models a.bin --text t.txt --plan", 2,
         "error: --plan trains models; --models/--text run packed ones: give one or the other (see --help)"},
    };
    for (const Case& c : cases) {
        CliRun r = cli_run(bin, c.args, tmp);
        INFO("args: " << c.args << "\nstderr: " << r.err);
        CHECK(r.code == c.code);
        CHECK(r.out.empty());
        CHECK(r.err == c.line + "\n");
    }
    CHECK_FALSE(cli_file_exists(fx.tmp.file("pbs")));  // refused before anything is written
    CHECK_FALSE(cli_file_exists(nowhere));
    CHECK_FALSE(cli_file_exists(dir + "/models/tiny-mamba-seed5.pt"));  // the refused plain runs trained nothing

    // A plan this bin/extract would not write: each file spoiled in turn.
    auto check = [&](const std::string& line) {
        CliRun r = cli_run(bin, "--run-dir " + dir + " --job 1", tmp);
        INFO("stderr: " << r.err);
        CHECK(r.code == 1);
        CHECK(r.out.empty());
        CHECK(r.err == line + "\n");
    };
    json jobs = json::parse(cli_read_text(dir + "/jobs.json"));
    jobs["jobs"][1]["preset"] = "tiny-mamba";
    std::ofstream(dir + "/jobs.json") << jobs.dump(2);
    check("error: " + abs + "/jobs.json: job 1 is not the model this bin/extract plans from the run's arguments (a "
          "plan from another version?); write the plan again with this bin/extract --plan");
    json plan = json::parse(cli_read_text(dir + "/plan.json"));
    plan["plan_version"] = 2;
    std::ofstream(dir + "/plan.json") << plan.dump(2);
    check("error: " + dir + "/plan.json: plan version 2, this bin/extract reads version 1 (write the plan again with "
          "this bin/extract --plan)");
    std::ofstream(dir + "/plan.json") << "x";
    check("error: " + dir + "/plan.json: not valid JSON (a corrupt run directory?)");
}

TEST_CASE("bin/extract --plan again with fewer --emit: the other emitters' files go, nothing else") {
    Fixture fx;
    const std::string bin = extract_bin(), tmp = fx.tmp.path.string(), dir = fx.tmp.file("replanned");
    const std::string plan = fx.args() + " --run-dir " + cli_quote(dir) + " --plan";
    CliRun p = cli_run(bin, plan + " --emit parallel,slurm,sge", tmp);
    REQUIRE_MESSAGE(p.code == 0, p.err);
    const std::vector<std::string> slurm = {"jobs.sbatch", "score.sbatch", "submit.sh"},
                                   sge = {"jobs.sge", "score.sge", "submit_sge.sh"};
    for (const auto& names : {slurm, sge})
        for (const std::string& f : names) REQUIRE_MESSAGE(cli_file_exists(dir + "/" + f), f);
    // What the program did not write under these names stays: a user's
    // file, another program's step script, the log directories.
    std::ofstream(dir + "/notes.txt") << "mine";
    std::ofstream(dir + "/attack.sbatch") << "bin/attack's name, not bin/extract's";
    std::ofstream(dir + "/slurm/train-1_0.out") << "a log";

    CliRun narrower = cli_run(bin, plan + " --emit parallel", tmp);
    INFO("stdout: " << narrower.out << "\nstderr: " << narrower.err);
    REQUIRE(narrower.code == 0);
    const std::string canon = fs::canonical(dir).string();
    for (const auto& names : {slurm, sge})
        for (const std::string& f : names) {
            CHECK_MESSAGE(!fs::exists(fs::symlink_status(dir + "/" + f)), f);
            CHECK_MESSAGE(narrower.out.find("removed (not emitted this time): " + canon + "/" + f + "\n") !=
                              std::string::npos,
                          f);
        }
    CHECK(cli_file_exists(dir + "/run_parallel.sh"));
    CHECK(cli_read_text(dir + "/notes.txt") == "mine");
    CHECK(cli_file_exists(dir + "/attack.sbatch"));
    CHECK(cli_read_text(dir + "/slurm/train-1_0.out") == "a log");
    CHECK(fs::is_directory(dir + "/sge"));

    // No --emit: run_parallel.sh goes too; a symlink under an emitter's
    // name is not the program's file and stays (so does its target).
    fs::create_symlink(dir + "/notes.txt", dir + "/submit.sh");
    CliRun none = cli_run(bin, plan, tmp);
    INFO("stdout: " << none.out << "\nstderr: " << none.err);
    REQUIRE(none.code == 0);
    CHECK_FALSE(cli_file_exists(dir + "/run_parallel.sh"));
    CHECK(none.out.find("removed (not emitted this time): " + canon + "/run_parallel.sh\n") != std::string::npos);
    CHECK(fs::is_symlink(dir + "/submit.sh"));
    CHECK(cli_read_text(dir + "/notes.txt") == "mine");
    for (const char* f : {"plan.json", "jobs.json", "jobs.txt", "extract_config.json"})
        CHECK_MESSAGE(cli_file_exists(dir + "/" + f), f);
}

TEST_CASE("json_first_difference and another_configuration: the first differing key path and both values") {
    using mmia::json_first_difference;
    CHECK(json_first_difference(json{{"a", 1}}, json{{"a", 1}}).empty());
    CHECK(json_first_difference(json{{"threads", 2}, {"seeds", {1}}}, json{{"threads", 1}, {"seeds", {1}}}) ==
          "threads: 2 there, 1 here");
    // keys in sorted order: "b" before "c" whatever the insertion order
    CHECK(json_first_difference(json{{"c", 1}, {"b", 1}}, json{{"c", 2}, {"b", 2}}) == "b: 1 there, 2 here");
    CHECK(json_first_difference(json{{"training", {{"tiny-mamba", {{"epochs", 1}, {"lr", 0.01}}}}}},
                                json{{"training", {{"tiny-mamba", {{"epochs", 3}, {"lr", 0.01}}}}}}) ==
          "training.tiny-mamba.epochs: 1 there, 3 here");
    CHECK(json_first_difference(json{{"seeds", {1, 2}}}, json{{"seeds", {1, 3}}}) == "seeds[1]: 2 there, 3 here");
    CHECK(json_first_difference(json{{"seeds", {1, 2}}}, json{{"seeds", {1}}}) == "seeds: [1,2] there, [1] here");
    CHECK(json_first_difference(json{{"a", 1}}, json{{"a", 1}, {"control", "x"}}) ==
          "control: absent there, \"x\" here");
    CHECK(json_first_difference(json{{"a", 1}, {"control", "x"}}, json{{"a", 1}}) ==
          "control: \"x\" there, absent here");
    CHECK(json_first_difference(json{{"n", "y"}}, json{{"n", 5}}) == "n: \"y\" there, 5 here");
    // A level's own differences before the nested objects': bin/attack --model cnn in a directory
    // of both kinds names the models list, not the model_config entry that follows from it.
    CHECK(json_first_difference(json{{"model_config", {{"cnn", 1}, {"mamba", 2}}}, {"models", {"cnn", "mamba"}}},
                                json{{"model_config", {{"cnn", 1}}}, {"models", {"cnn"}}}) ==
          "models: [\"cnn\",\"mamba\"] there, [\"cnn\"] here");
    CHECK(json_first_difference(json{{"a", {{"x", 1}}}, {"b", {{"y", 1}}}}, json{{"a", {{"x", 2}}}, {"b", {{"y", 2}}}}) ==
          "a.x: 1 there, 2 here");  // both nested: sorted order
    CHECK(json_first_difference(json::array({1}), json{{"a", 1}}) == "the whole configuration: [1] there, {\"a\":1} here");
    const std::string long_a(70, 'a'), long_b(70, 'b');
    CHECK(json_first_difference(json{{"s", long_a}}, json{{"s", long_b}}) ==
          "s: \"" + std::string(56, 'a') + "... there, \"" + std::string(56, 'b') + "... here");
    CHECK(mmia::another_configuration("runs/x", json{{"threads", 2}}, json{{"threads", 1}}) ==
          "runs/x holds a run with another configuration (threads: 2 there, 1 here); choose another --run-dir or "
          "pass --force");
}

TEST_CASE("scheduler_file_names: the files emit_scheduler_files writes, for both programs' last steps") {
    TempDir tmp("mmia_sched_names");
    for (const char* step : {"", "score"}) {
        json jobs = {{"run_dir", tmp.path.string()}, {"program", "/bin/true"}, {"jobs", json::array({json::object()})}};
        if (*step) jobs["final_step"] = step, jobs["score_command"] = "true";
        else jobs["attack_command"] = "true";
        for (const char* what : {"parallel", "slurm", "sge"}) {
            INFO(what << " " << step);
            std::vector<std::string> names;
            for (const std::string& path : mmia::emit_scheduler_files(tmp.path.string(), jobs, what, 0, 1))
                names.push_back(fs::path(path).filename().string());
            CHECK(names == mmia::scheduler_file_names(jobs, what));
        }
    }
    CHECK(mmia::scheduler_file_names(json{{"final_step", "score"}}, "slurm") ==
          std::vector<std::string>{"jobs.sbatch", "score.sbatch", "submit.sh"});
    CHECK(mmia::scheduler_file_names(json::object(), "sge") ==
          std::vector<std::string>{"jobs.sge", "attack.sge", "submit_sge.sh"});
    CHECK_THROWS_WITH_AS(mmia::scheduler_file_names(json::object(), "pbs"),
                         "--emit: unknown scheduler 'pbs' (parallel, slurm, sge)", std::runtime_error);
}

// run_parallel.sh when a job fails (here GNU parallel's --timeout, passed
// through the script's arguments, kills every job long before LibTorch has
// loaded): one line saying so on stderr, a non-zero exit, no scoring run
// (no metrics.json), and the joblog records the failures for --resume-failed.
TEST_CASE("run_parallel.sh: a failed job stops the run with one line, the scoring run does not start") {
    Fixture fx;
    const std::string bin = extract_bin(), dir = fx.tmp.file("failed");
    CliRun p = cli_run(bin, fx.args() + " --run-dir " + cli_quote(dir) + " --plan --emit parallel --slots 2",
                       fx.tmp.path.string());
    REQUIRE_MESSAGE(p.code == 0, p.err);
    REQUIRE_MESSAGE(access("/usr/bin/parallel", X_OK) == 0, "GNU parallel is not installed (scripts/setup.sh)");
    CliRun r = cli_run_argv({"/bin/sh", dir + "/run_parallel.sh", "--timeout", "0.05"}, fx.tmp.file("parallel.log"), 120);
    CHECK(r.code == 1);
    const std::string canon = fs::canonical(dir).string();
    CHECK(r.err.find("run_parallel.sh: a training job failed (Exitval/Signal in " + canon +
                     "/joblog, its output above); the score step did not run. Run this script again: it reruns the "
                     "failed jobs only.\n") != std::string::npos);
    CHECK_FALSE(cli_file_exists(dir + "/metrics.json"));
    const auto log = lines_of(cli_read_text(dir + "/joblog"));
    CHECK(log.size() == 7);  // header + the 6 jobs, each killed
}
