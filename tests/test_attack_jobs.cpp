// test_attack_jobs.cpp: bin/attack's run as scheduler jobs (attack/jobs.h,
// docs/ATTACKS.md "From one machine to a cluster"), through the program a
// user runs: --plan writes the job list; the jobs run by GNU parallel (2
// slots) or by a Slurm array on a single-node cluster (scripts/slurm_local.sh)
// give every packed model, score file and metric bit for bit as the
// sequential run of the same arguments; two copies of one job, a killed job
// and a rerun are harmless; the refusals are one exact line each.
//
// The run: MNIST, lira, both kinds, 3 models each (6 jobs), tiny ds and 1
// epoch, 1 thread per job. What legitimately differs between two runs
// (times, how many models were trained now or found) is left out of the
// metrics.json comparison.
// LibTorch before doctest: glog's CHECK would otherwise replace doctest's.
#include "common/torch_pch.h"  // first: the precompiled LibTorch header (Makefile)

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "tests/cli_check.h"
#include "tests/temp_dir.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;
using nlohmann::json;
using mmia::read_checkpoint_meta;

namespace {

std::string attack_bin() { return cli_program("ATTACK_BIN", "bin/attack"); }

// The run's arguments (without --run-dir).
std::vector<std::string> run_args() {
    return {"--protocol", "lira", "--model",  "both", "--ds",      "60",        "--shadow",           "2",
            "--epochs",   "1",    "--threads", "1",   "--seed",    "7",         "--rmia-population", "100"};
}

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& more) {
    a.insert(a.end(), more.begin(), more.end());
    return a;
}

std::vector<std::string> attack_argv(const std::vector<std::string>& args) {
    return with({attack_bin()}, args);
}

const char* const kKinds[] = {"mamba", "cnn"};
const char* const kRoles[] = {"model0", "model1", "model2"};

// metrics.json without what differs between two runs of the same arguments
// (and, for a run with another --threads, the thread count it records).
json comparable_metrics(const std::string& dir, bool but_threads = false) {
    json m = json::parse(cli_read_text(dir + "/metrics.json"));
    m.erase("seconds"), m.erase("trained_now"), m.erase("cached");
    if (but_threads) m["environment"].erase("threads");
    return m;
}

// Every file a run's results are made of, relative to its directory: the
// packed models, the engine outputs and the per-example scores.
std::vector<std::string> result_files(const std::string& dir) {
    std::vector<std::string> out;
    for (const char* sub : {"models", "outputs", "scores"})
        for (const auto& e : fs::recursive_directory_iterator(dir + "/" + sub)) {
            const std::string ext = e.path().extension().string();
            if (e.is_regular_file() && (ext == ".bin" || ext == ".npy" || ext == ".csv"))
                out.push_back(fs::relative(e.path(), dir).string());
        }
    std::sort(out.begin(), out.end());
    return out;
}

// dir's results equal the sequential reference's, file for file and bit for bit.
void check_same_results(const std::string& dir, const std::string& ref, bool but_threads = false) {
    const auto files = result_files(ref);
    CHECK(files.size() == 6 + 6 + 6 * 2 + 6);  // .bin; .npy, augmented/ and population/; scores
    CHECK(result_files(dir) == files);
    for (const std::string& f : files) {
        INFO(f);
        CHECK(cli_read_text(dir + "/" + f) == cli_read_text(ref + "/" + f));
    }
    CHECK(comparable_metrics(dir, but_threads) == comparable_metrics(ref, but_threads));
}

// The sequential run every other run is compared with, made once.
const std::string& sequential_reference() {
    static TempDir tmp("mmia_jobs_ref");
    static std::string dir;
    if (dir.empty()) {
        const std::string d = tmp.file("seq");
        CliRun r = cli_run_argv(attack_argv(with(run_args(), {"--run-dir", d})), tmp.file("log"), 300);
        REQUIRE_MESSAGE(r.code == 0, r.err);
        const json m = json::parse(cli_read_text(d + "/metrics.json"));
        REQUIRE(m["trained_now"] == 6);
        dir = d;
    }
    return dir;
}

// Plans the run in dir (with extra flags such as --emit); returns jobs.json.
json plan_run(const std::string& dir, const std::vector<std::string>& extra, const std::string& log) {
    CliRun r = cli_run_argv(attack_argv(with(with(run_args(), {"--run-dir", dir, "--plan"}), extra)), log, 120);
    REQUIRE_MESSAGE(r.code == 0, r.err);
    CHECK(r.err.empty());
    return json::parse(cli_read_text(dir + "/jobs.json"));
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

timespec mtime_of(const std::string& path) {
    struct stat st;
    REQUIRE(stat(path.c_str(), &st) == 0);
    return st.st_mtim;
}

bool same_time(const timespec& a, const timespec& b) { return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec; }

// No temporary file left anywhere under dir.
void check_no_temporaries(const std::string& dir) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        INFO(e.path().string());
        CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
    }
}

}  // namespace

TEST_CASE("bin/attack --plan writes the plan and one job per model, trains nothing; each job is a model of splits.json") {
    TempDir tmp("mmia_jobs_plan");
    const std::string dir = tmp.file("run");
    CliRun r = cli_run_argv(attack_argv(with(run_args(), {"--run-dir", dir, "--plan"})), tmp.file("log"), 120);
    REQUIRE_MESSAGE(r.code == 0, r.err);
    const std::string canon = fs::canonical(dir).string();
    CHECK(!fs::exists(dir + "/models"));  // nothing trained
    CHECK(!fs::exists(dir + "/metrics.json"));
    for (const char* f : {"attack_config.json", "splits.json", "membership.csv", "plan.json", "jobs.json", "jobs.txt"})
        CHECK_MESSAGE(fs::exists(dir + "/" + f), f);

    const json plan = json::parse(cli_read_text(dir + "/plan.json"));
    CHECK(plan["plan_version"] == 1);
    CHECK(plan["args"] == json(run_args()));  // --run-dir and --plan left out; --threads was given
    CHECK(plan["cwd"] == fs::current_path().string());
    CHECK(plan["threads"] == 1);
    CHECK(plan["n_jobs"] == 6);

    // ID = kind index (mamba, cnn) x 3 + the model's place in splits.json.
    const json jobs = json::parse(cli_read_text(dir + "/jobs.json"));
    const json splits = json::parse(cli_read_text(dir + "/splits.json"));
    REQUIRE(jobs["jobs"].size() == 6);
    REQUIRE(splits["models"].size() == 3);
    const std::vector<std::string> txt = lines_of(cli_read_text(dir + "/jobs.txt"));
    REQUIRE(txt.size() == 6);
    for (int id = 0; id < 6; id++) {
        const json& j = jobs["jobs"][size_t(id)];
        const std::string kind = kKinds[id / 3], role = splits["models"][size_t(id % 3)]["role"];
        CHECK(j["id"] == id);
        CHECK(j["kind"] == kind);
        CHECK(j["role"] == role);
        CHECK(role == kRoles[id % 3]);
        CHECK(j["checkpoint"] == canon + "/models/" + kind + "/" + role + ".pt");
        CHECK(j["packed"] == canon + "/models/" + kind + "/" + role + ".bin");
        const std::string cmd = attack_bin() + " --run-dir " + canon + " --job " + std::to_string(id);
        CHECK(j["command"] == cmd);
        CHECK(txt[size_t(id)] == cmd);
    }
    std::string attack = "cd " + fs::current_path().string() + " && " + attack_bin();
    for (const std::string& a : run_args()) attack += " " + a;
    CHECK(jobs["attack_command"] == attack + " --run-dir " + canon);

    // --threads not given: the plan fixes this machine's count for every job.
    const std::string dir2 = tmp.file("run2");
    std::vector<std::string> no_threads = run_args();
    no_threads.erase(no_threads.begin() + 10, no_threads.begin() + 12);
    REQUIRE(no_threads.size() == run_args().size() - 2);
    CliRun r2 = cli_run_argv(attack_argv(with(no_threads, {"--plan", "--run-dir", dir2})), tmp.file("log2"), 120);
    REQUIRE_MESSAGE(r2.code == 0, r2.err);
    const json plan2 = json::parse(cli_read_text(dir2 + "/plan.json"));
    const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
    CHECK(plan2["threads"] == cores);
    CHECK(plan2["args"] == json(with(no_threads, {"--threads", std::to_string(cores)})));
}

TEST_CASE("GNU parallel with 2 slots, then the plain attack: every model and result bit-identical to the sequential run") {
    const std::string& ref = sequential_reference();
    TempDir tmp("mmia_jobs_parallel");
    const std::string dir = tmp.file("run");
    const json jobs = plan_run(dir, {"--emit", "parallel", "--slots", "2"}, tmp.file("plan.log"));
    const std::string script = dir + "/run_parallel.sh";
    REQUIRE(access(script.c_str(), X_OK) == 0);
    CHECK(cli_read_text(script).find("parallel --joblog " + fs::canonical(dir).string() +
                                     "/joblog --resume-failed -j \"$J\" \"$@\" < ") != std::string::npos);
    REQUIRE_MESSAGE(access("/usr/bin/parallel", X_OK) == 0, "GNU parallel is not installed (scripts/setup.sh)");
    CliRun r = cli_run_argv({"/bin/sh", script}, tmp.file("parallel.log"), 300);
    REQUIRE_MESSAGE(r.code == 0, r.err << r.out);

    // joblog: the 6 jobs, each once, each exit 0.
    const auto log = lines_of(cli_read_text(dir + "/joblog"));
    REQUIRE(log.size() == 7);
    std::set<std::string> commands;
    for (size_t i = 1; i < log.size(); i++) {
        std::vector<std::string> f;
        std::istringstream in(log[i]);
        for (std::string x; std::getline(in, x, '\t');) f.push_back(x);
        REQUIRE(f.size() == 9);
        CHECK(f[6] == "0");  // Exitval
        commands.insert(f[8]);
    }
    std::set<std::string> expected;
    for (const auto& j : jobs["jobs"]) expected.insert(j["command"].get<std::string>());
    CHECK(commands == expected);

    // The attack step found every model trained.
    const json m = json::parse(cli_read_text(dir + "/metrics.json"));
    CHECK(m["trained_now"] == 0);
    CHECK(m["cached"] == 6);
    check_same_results(dir, ref);
    check_no_temporaries(dir);
}

TEST_CASE("a plain run in a planned directory trains with the plan's thread count, says so, and equals the jobs' bits") {
    const std::string& ref = sequential_reference();  // --threads 1
    TempDir tmp("mmia_jobs_pin");
    const std::string dir = tmp.file("run");
    plan_run(dir, {}, tmp.file("plan.log"));
    std::vector<std::string> two = run_args();
    REQUIRE(two[10] == "--threads");
    two[11] = "2";
    CliRun r = cli_run_argv(attack_argv(with(two, {"--run-dir", dir})), tmp.file("log"), 300);
    REQUIRE_MESSAGE(r.code == 0, r.err);
    const auto out = lines_of(r.out);
    CHECK(std::count(out.begin(), out.end(),
                     "note: models are trained with the plan's 1 thread(s) (" + dir +
                         "/plan.json), not --threads 2, so they are the same bits as its jobs'") == 1);
    check_same_results(dir, ref, true);  // the engines' logits do not depend on the thread count either
}

TEST_CASE("one job twice at once, a killed job, a leftover temp file and a rerun are harmless") {
    const std::string& ref = sequential_reference();
    TempDir tmp("mmia_jobs_race");
    const std::string dir = tmp.file("run");
    plan_run(dir, {}, tmp.file("plan.log"));
    const std::string bin = attack_bin();
    auto job = [&](int id) { return std::vector<std::string>{bin, "--run-dir", dir, "--job", std::to_string(id)}; };

    SUBCASE("two copies of job 4 at once: both exit 0, one trains, one finds it complete") {
        pid_t a = cli_spawn(job(4), tmp.file("a.log")), b = cli_spawn(job(4), tmp.file("b.log"));
        CHECK(cli_wait(a, 120) == 0);
        CHECK(cli_wait(b, 120) == 0);
        const std::string out = cli_read_text(tmp.file("a.log")) + cli_read_text(tmp.file("b.log"));
        INFO(out);
        CHECK(out.find("cnn model1: trained in") != std::string::npos);
        CHECK(out.find("job 4: cnn model1: already complete\n") != std::string::npos);
        CHECK(cli_read_text(dir + "/models/cnn/model1.bin") == cli_read_text(ref + "/models/cnn/model1.bin"));
        CHECK(read_checkpoint_meta(dir + "/models/cnn/model1.pt").contains("final"));
    }
    SUBCASE("job 2 killed (SIGKILL) once it holds its model's lock: nothing complete is left, the rerun finishes it") {
        pid_t p = cli_spawn(job(2), tmp.file("k.log"));
        const std::string lock = dir + "/models/mamba/model2.lock";
        for (int i = 0; i < 20000 && !fs::exists(lock); i++) usleep(500);
        kill(p, SIGKILL);
        const int code = cli_wait(p, 60);
        MESSAGE("job 2 " << std::string(code == -SIGKILL ? "killed" : "had finished") << " when the kill came");
        // Under the real names: a checkpoint that reads, or none; a .bin only beside a final checkpoint.
        const std::string base = dir + "/models/mamba/model2";
        if (fs::exists(base + ".pt")) CHECK_NOTHROW(read_checkpoint_meta(base + ".pt"));
        if (fs::exists(base + ".bin")) CHECK(read_checkpoint_meta(base + ".pt").contains("final"));
        CliRun again = cli_run_argv(job(2), tmp.file("k2.log"), 120);
        CHECK(again.code == 0);
        CHECK(cli_read_text(base + ".bin") == cli_read_text(ref + "/models/mamba/model2.bin"));
    }
    SUBCASE("temporaries a killed job left (garbage under <file>.tmp.<pid>) are neither read nor kept") {
        const std::string base = dir + "/models/cnn/model0";
        fs::create_directories(dir + "/models/cnn");
        for (const char* t : {".pt.tmp.99999", ".bin.tmp.99999"}) std::ofstream(base + t) << "half a model";
        CliRun r = cli_run_argv(job(3), tmp.file("t.log"), 120);
        REQUIRE_MESSAGE(r.code == 0, r.err);
        CHECK(r.out.find("cnn model0: trained in") != std::string::npos);
        CHECK(cli_read_text(base + ".bin") == cli_read_text(ref + "/models/cnn/model0.bin"));
        check_no_temporaries(dir);
    }
    SUBCASE("a complete job run again writes nothing") {
        REQUIRE(cli_run_argv(job(0), tmp.file("1.log"), 120).code == 0);
        const std::string base = dir + "/models/mamba/model0";
        const timespec pt = mtime_of(base + ".pt"), packed = mtime_of(base + ".bin");
        usleep(20000);
        CliRun r = cli_run_argv(job(0), tmp.file("2.log"), 120);
        CHECK(r.code == 0);
        CHECK(r.out == "job 0: mamba model0: already complete\n");
        CHECK(same_time(mtime_of(base + ".pt"), pt));
        CHECK(same_time(mtime_of(base + ".bin"), packed));
        CHECK(cli_read_text(base + ".bin") == cli_read_text(ref + "/models/mamba/model0.bin"));
    }
}

TEST_CASE("bin/attack --plan/--job: bad flags, a missing or foreign plan, an unknown job: one exact line each") {
    TempDir tmp("mmia_jobs_errors");
    const std::string dir = tmp.file("run");
    plan_run(dir, {}, tmp.file("plan.log"));
    const std::string bin = attack_bin();
    const std::string none = tmp.file("none"), old = tmp.file("old"), bad = tmp.file("bad"), other = tmp.file("other");
    fs::create_directories(none);
    fs::create_directories(old);
    fs::create_directories(bad);
    std::ofstream(old + "/plan.json") << R"({"plan_version": 2, "args": []})";
    std::ofstream(bad + "/plan.json") << "{\"plan_version\": 1,";
    // A plan whose job 1 lists other members than the run's arguments give.
    fs::copy(dir, other, fs::copy_options::recursive);
    {
        json j = json::parse(cli_read_text(other + "/jobs.json"));
        j["jobs"][1]["members_fnv1a"] = "12345";
        std::ofstream(other + "/jobs.json") << j.dump(2);
    }
    std::vector<std::string> threads2 = run_args();
    REQUIRE(threads2[10] == "--threads");
    threads2[11] = "2";
    std::vector<std::string> epochs2 = run_args();
    REQUIRE(epochs2[8] == "--epochs");
    epochs2[9] = "2";
    const std::string nowhere = tmp.file("nowhere"), file = tmp.file("a-file");
    std::ofstream(file) << "not a run directory";
    struct Case {
        std::vector<std::string> args;
        int code;
        std::string line;
    };
    const std::vector<Case> cases = {
        {{"--run-dir", dir, "--job", "6"}, 1, "error: --job 6: the plan in " + dir + " has jobs 0 to 5"},
        {{"--run-dir", none, "--job", "0"}, 1,
         "error: " + none + ": no plan.json in this run directory (write one with bin/attack --plan ... --run-dir " +
             none + ")"},
        {{"--run-dir", nowhere, "--job", "0"}, 1,
         "error: --run-dir " + nowhere + ": no such directory (give the directory bin/attack --plan wrote)"},
        {{"--run-dir", file, "--job", "0"}, 1,
         "error: --run-dir " + file + ": not a directory (give the directory bin/attack --plan wrote)"},
        // The plain run of the planned directory with another setting: the
        // first differing key of attack_config.json, both values.
        {with(epochs2, {"--run-dir", dir}), 1,
         "error: " + dir + " holds a run with another configuration (epochs: 1 there, 2 here); choose another "
                           "--run-dir or pass --force"},
        {{"--run-dir", old, "--job", "0"}, 1,
         "error: " + old + "/plan.json: plan version 2, this bin/attack reads version 1 (write the plan again with "
                           "this bin/attack --plan)"},
        {{"--run-dir", bad, "--job", "0"}, 1, "error: " + bad + "/plan.json: not valid JSON (a corrupt run directory?)"},
        {{"--run-dir", other, "--job", "1"}, 1,
         "error: " + other + "/jobs.json: job 1 is not the model this bin/attack plans from the run's arguments (a "
                             "plan from another version?); write the plan again with this bin/attack --plan"},
        {{"--run-dir", dir, "--job", "0", "--ds", "100"}, 2,
         "error: --job: the run's arguments come from its plan (plan.json); --ds cannot be given with --job (see "
         "--help)"},
        {{"--run-dir", dir, "--job", "0", "--plan"}, 2,
         "error: --job: the run's arguments come from its plan (plan.json); --plan cannot be given with --job (see "
         "--help)"},
        {with(threads2, {"--run-dir", dir, "--plan"}), 1,
         "error: " + dir + "/plan.json: planned with --threads 1, not 2 (its trained models would not be the same "
                           "bits); give --threads 1, another --run-dir, or --force"},
        {{"--job", "0"}, 2, "error: --job needs --run-dir (the directory bin/attack --plan wrote) (see --help)"},
        {{"--run-dir", dir, "--job", "-1"}, 2, "error: --job: '-1' is not an integer in [0, 1073741824] (see --help)"},
        {{"--emit", "parallel"}, 2, "error: --emit needs --plan (see --help)"},
        {{"--plan", "--emit", "slurm,pbs"}, 2,
         "error: --emit: 'pbs' is not a scheduler (parallel, slurm, sge) (see --help)"},
        {{"--plan", "--slots", "2"}, 2, "error: --slots needs --emit (see --help)"},
        {{"--plan", "--emit", "slurm", "--slots", "0"}, 2,
         "error: --slots: '0' is not an integer in [1, 100000] (see --help)"},
    };
    for (const Case& c : cases) {
        std::string shown;
        for (const auto& a : c.args) shown += a + " ";
        INFO(shown);
        CliRun r = cli_run_argv(with({bin}, c.args), tmp.file("e.log"), 60);
        CHECK(r.code == c.code);
        CHECK(r.out.empty());
        CHECK(r.err == c.line + "\n");
    }
    CHECK(!fs::exists(dir + "/models"));  // no refused job trained anything
    CHECK(!fs::exists(nowhere));
}

TEST_CASE("bin/attack --plan again with fewer --emit: the other emitters' files go, nothing else") {
    TempDir tmp("mmia_jobs_replan");
    const std::string dir = tmp.file("run");
    plan_run(dir, {"--emit", "parallel,slurm,sge"}, tmp.file("plan.log"));
    const std::vector<std::string> gone = {"run_parallel.sh", "jobs.sge", "attack.sge", "submit_sge.sh"},
                                   kept = {"jobs.sbatch", "attack.sbatch", "submit.sh"};
    for (const auto& names : {gone, kept})
        for (const std::string& f : names) REQUIRE_MESSAGE(fs::exists(dir + "/" + f), f);
    std::ofstream(dir + "/notes.txt") << "mine";
    std::ofstream(dir + "/score.sge") << "bin/extract's name, not bin/attack's";
    CliRun r = cli_run_argv(attack_argv(with(run_args(), {"--run-dir", dir, "--plan", "--emit", "slurm"})),
                            tmp.file("replan.log"), 120);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.code == 0);
    const std::string canon = fs::canonical(dir).string();
    for (const std::string& f : gone) {
        CHECK_MESSAGE(!fs::exists(fs::symlink_status(dir + "/" + f)), f);
        CHECK_MESSAGE(r.out.find("removed (not emitted this time): " + canon + "/" + f + "\n") != std::string::npos, f);
    }
    for (const std::string& f : kept) CHECK_MESSAGE(fs::exists(dir + "/" + f), f);
    CHECK(cli_read_text(dir + "/notes.txt") == "mine");
    CHECK(fs::exists(dir + "/score.sge"));
}

TEST_CASE("a Slurm array on a single-node cluster (scripts/slurm_local.sh), then the afterok attack: bit-identical to the sequential run; the SGE files") {
    TempDir tmp("mmia_jobs_slurm");
    const std::string dir = tmp.file("run");
    const json jobs = plan_run(dir, {"--emit", "slurm,sge", "--slots", "2"}, tmp.file("plan.log"));
    // Grid Engine's files (no SGE here to run them): 1-based tasks, task i is job i - 1.
    const std::string sge = cli_read_text(dir + "/jobs.sge");
    CHECK(sge.find("#$ -t 1-6\n#$ -tc 2\n") != std::string::npos);
    CHECK(sge.find(" --job $((SGE_TASK_ID - 1))\n") != std::string::npos);
    CHECK(cli_read_text(dir + "/submit_sge.sh").find("-hold_jid \"$array\" attack.sge") != std::string::npos);
    for (const char* f : {"jobs.sbatch", "attack.sbatch", "submit.sh", "jobs.sge", "attack.sge", "submit_sge.sh"})
        CHECK_MESSAGE(access((dir + "/" + f).c_str(), X_OK) == 0, f);
    const std::string sbatch = cli_read_text(dir + "/jobs.sbatch");
    CHECK(sbatch.find("#SBATCH --array=0-5%2\n") != std::string::npos);
    CHECK(sbatch.find("--job \"$SLURM_ARRAY_TASK_ID\"\n") != std::string::npos);
    CHECK(cli_read_text(dir + "/submit.sh").find("--dependency=afterok:$array attack.sbatch") != std::string::npos);
    CHECK(cli_read_text(dir + "/attack.sbatch").find(jobs["attack_command"].get<std::string>() + "\n") !=
          std::string::npos);

    // A cluster already up is used and left up; one this test starts is stopped.
    const bool was_up = system("scripts/slurm_local.sh status >/dev/null 2>&1") == 0;
    CliRun up = cli_run_argv({"/bin/bash", "scripts/slurm_local.sh", "start"}, tmp.file("slurm.log"), 120);
    if (up.code != 0) {
        if (!was_up) system("scripts/slurm_local.sh stop >/dev/null 2>&1");
        cli_skip("Slurm cannot start here: " + up.err.substr(0, up.err.find('\n')));
        return;
    }
    const std::string conf = "SLURM_CONF=" + std::string(getenv("MMIA_SLURM_DIR") ? getenv("MMIA_SLURM_DIR")
                                                                                  : "/tmp/mmia-slurm") +
                             "/slurm.conf";
    // submit.sh, then the attack job's state polled (sbatch --wait polls
    // every few seconds, twice): it ends COMPLETED only after the array
    // succeeded (afterok); a failed task leaves it pending forever
    // (DependencyNeverSatisfied), which ends the wait too.
    CliRun sub = cli_run_argv({"/usr/bin/env", conf, "/bin/sh", dir + "/submit.sh"}, tmp.file("submit.log"), 60);
    std::string state;
    // The job id from submit.sh's last line ("submitted: ... attack <id> (afterok:...").
    const size_t last = sub.out.find("submitted: ");
    const size_t at = last == std::string::npos ? last : sub.out.find("attack ", last);
    if (sub.code == 0 && at != std::string::npos) {
        const std::string id = sub.out.substr(at + 7, sub.out.find(' ', at + 7) - at - 7);
        for (int i = 0; i < 1200; i++) {
            CliRun q = cli_run_argv({"/usr/bin/env", conf, "scontrol", "-o", "show", "job", id}, tmp.file("q.log"), 30);
            const size_t s = q.out.find("JobState="), r = q.out.find("Reason=DependencyNeverSatisfied");
            state = s == std::string::npos ? "?" : q.out.substr(s + 9, q.out.find(' ', s) - s - 9);
            if (r != std::string::npos || (state != "PENDING" && state != "RUNNING" && state != "CONFIGURING" &&
                                           state != "COMPLETING" && state != "?"))
                break;
            usleep(250000);
        }
    }
    if (!was_up) system("scripts/slurm_local.sh stop >/dev/null 2>&1");
    INFO("submit.sh: " << sub.out << sub.err << "; the attack job ended " << state);
    REQUIRE(sub.code == 0);
    CHECK(sub.out.find("submitted: training array ") != std::string::npos);
    REQUIRE(state == "COMPLETED");
    const json m = json::parse(cli_read_text(dir + "/metrics.json"));
    CHECK(m["trained_now"] == 0);  // the array trained them all
    CHECK(m["cached"] == 6);
    check_same_results(dir, sequential_reference());
    check_no_temporaries(dir);
}
