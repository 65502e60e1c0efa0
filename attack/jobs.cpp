// jobs.cpp: the scheduler files of bin/attack --plan --emit, and the model
// lock (see jobs.h). The recipes follow ../shared/notes/defences.md section 4
// (GNU parallel's --joblog/--resume-failed, Slurm arrays and afterok, SGE's
// 1-based -t).
#include "attack/jobs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "common/command_line.h"
#include "common/config.h"
#include "engine/io.h"

namespace fs = std::filesystem;

namespace mmia {

std::string shell_word(const std::string& s) {
    bool plain = !s.empty();
    for (char c : s)
        if (!(std::isalnum((unsigned char)c) || std::strchr("_./=:,+-@%", c))) plain = false;
    if (plain) return s;
    std::string r = "'";
    for (char c : s) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return r + "'";
}

std::string shell_command(const std::vector<std::string>& argv) {
    std::string r;
    for (const std::string& a : argv) r += (r.empty() ? "" : " ") + shell_word(a);
    return r;
}

namespace {

void write_script(const std::string& path, const std::string& text, std::vector<std::string>& written) {
    char err[512];
    if (io_write_file_atomic(path.c_str(), text.data(), text.size(), err, sizeof err) != 0)
        throw std::runtime_error(path + ": " + err);
    if (::chmod(path.c_str(), 0755) != 0) throw std::runtime_error(path + ": chmod: " + std::strerror(errno));
    written.push_back(path);
}

// The run's last step after the training jobs: "attack" (bin/attack) or
// what jobs.json's "final_step" names ("score" for bin/extract), and its
// command line (jobs.json's "<step>_command").
std::string final_step(const nlohmann::json& jobs) { return jobs.value("final_step", std::string("attack")); }
std::string final_command(const nlohmann::json& jobs) {
    return jobs.at(final_step(jobs) + "_command").get<std::string>();
}

// The lines every script starts with: what wrote it and what it runs.
std::string header(const nlohmann::json& jobs, const std::string& what) {
    return "# " + what + "\n# Written by " + jobs.value("planner", "bin/attack --plan") + " for the run in " +
           jobs.at("run_dir").get<std::string>() + " (" + std::to_string(jobs.at("jobs").size()) + " training jobs; " +
           jobs.value("docs", "docs/ATTACKS.md, \"From one machine to a cluster\"") + ").\n";
}

void emit_parallel(const std::string& dir, const nlohmann::json& jobs, int slots, int threads,
                   std::vector<std::string>& written) {
    const std::string d = shell_word(dir);
    std::string s = "#!/bin/sh\n" +
                    header(jobs, "GNU parallel: every training job of this run (jobs.txt), then the " + final_step(jobs) + ".") +
                    "# Arguments go to parallel after this script's own (a later -j wins), e.g.\n"
                    "#   --sshlogin 2/host1,2/host2   (the run directory and the program at the same paths there)\n"
                    "# Run it again after a failure: --resume-failed reruns the failed and never-run jobs,\n"
                    "# and the job of a model already complete does nothing.\n"
                    "set -e\n";
    if (slots > 0)
        s += "J=" + std::to_string(slots) + "\n";
    else
        s += "J=$(( $(nproc) / " + std::to_string(threads) + " )); [ \"$J\" -ge 1 ] || J=1\n";
    s += "parallel --joblog " + d + "/joblog --resume-failed -j \"$J\" \"$@\" < " + d + "/jobs.txt || {\n"
         "  echo \"run_parallel.sh: a training job failed (Exitval/Signal in " + d +
         "/joblog, its output above); the " + final_step(jobs) +
         " step did not run. Run this script again: it reruns the failed jobs only.\" >&2\n"
         "  exit 1\n}\n";
    s += final_command(jobs) + "\n";
    write_script(dir + "/run_parallel.sh", s, written);
}

void emit_slurm(const std::string& dir, const nlohmann::json& jobs, int slots, int threads,
                std::vector<std::string>& written) {
    const size_t n = jobs.at("jobs").size();
    fs::create_directories(dir + "/slurm");
    const std::string cpus = "#SBATCH --cpus-per-task=" + std::to_string(threads) + "\n";
    write_script(dir + "/jobs.sbatch",
                 "#!/bin/sh\n" + header(jobs, "Slurm: one array task per training job (task i runs --job i).") +
                     "#SBATCH --job-name=mmia-train\n#SBATCH --array=0-" + std::to_string(n - 1) +
                     (slots > 0 ? "%" + std::to_string(slots) : "") + "\n" + cpus +
                     "#SBATCH --output=slurm/train-%A_%a.out\n" + "exec " + jobs.at("program").get<std::string>() +
                     " --run-dir " + shell_word(dir) + " --job \"$SLURM_ARRAY_TASK_ID\"\n",
                 written);
    const std::string step = final_step(jobs);
    write_script(dir + "/" + step + ".sbatch",
                 "#!/bin/sh\n" + header(jobs, "Slurm: the " + step + ", once every model is trained.") +
                     "#SBATCH --job-name=mmia-" + step + "\n" + cpus + "#SBATCH --output=slurm/" + step +
                     "-%j.out\n" + final_command(jobs) + "\n",
                 written);
    write_script(dir + "/submit.sh",
                 "#!/bin/sh\n" +
                     header(jobs, "Slurm: submits the training array, then the " + step +
                                      " (afterok: it starts only when every task succeeded).") +
                     "# Arguments go to both sbatch calls (e.g. --partition=..., --time=..., or --wait).\n"
                     "set -e\ncd " + shell_word(dir) + "\n" +
                     "echo \"submitting the training array (jobs.sbatch, " + std::to_string(n) +
                     " tasks; with --wait this returns when they end)\"\n"
                     "array=$(sbatch --parsable \"$@\" jobs.sbatch)\narray=${array%%;*}\n"
                     "echo \"training array $array; submitting the " + step + " (" + step +
                     ".sbatch, afterok:$array)\"\n"
                     "last=$(sbatch --parsable \"$@\" --dependency=afterok:$array " + step + ".sbatch)\n"
                     "last=${last%%;*}\n"
                     "echo \"submitted: training array $array (" + std::to_string(n) + " tasks), " + step +
                     " $last (afterok:$array); logs in " + dir + "/slurm/\"\n",
                 written);
}

void emit_sge(const std::string& dir, const nlohmann::json& jobs, int slots, std::vector<std::string>& written) {
    const size_t n = jobs.at("jobs").size();
    fs::create_directories(dir + "/sge");
    write_script(dir + "/jobs.sge",
                 "#!/bin/sh\n" +
                     header(jobs, "Grid Engine: one array task per training job (tasks are 1-based: task i runs "
                                  "--job i-1).") +
                     "#$ -N mmia-train\n#$ -t 1-" + std::to_string(n) + "\n" +
                     (slots > 0 ? "#$ -tc " + std::to_string(slots) + "\n" : "") +
                     "#$ -cwd\n#$ -j y\n#$ -o sge/\n" + "exec " + jobs.at("program").get<std::string>() +
                     " --run-dir " + shell_word(dir) + " --job $((SGE_TASK_ID - 1))\n",
                 written);
    const std::string step = final_step(jobs);
    write_script(dir + "/" + step + ".sge",
                 "#!/bin/sh\n" + header(jobs, "Grid Engine: the " + step + ", after the training array.") +
                     "#$ -N mmia-" + step + "\n#$ -cwd\n#$ -j y\n#$ -o sge/\n" + final_command(jobs) + "\n",
                 written);
    write_script(dir + "/submit_sge.sh",
                 "#!/bin/sh\n" +
                     header(jobs, "Grid Engine: submits the training array, then the " + step +
                                      " held until it ends (-hold_jid waits for the tasks to end, not to succeed: "
                                      "the " + step + " trains a missing model itself).") +
                     "set -e\ncd " + shell_word(dir) + "\n" +
                     "array=$(qsub -terse \"$@\" jobs.sge)\narray=${array%%.*}\n"
                     "qsub \"$@\" -hold_jid \"$array\" " + step + ".sge\n",
                 written);
}

}  // namespace

std::vector<std::string> emit_scheduler_files(const std::string& dir, const nlohmann::json& jobs,
                                              const std::string& what, int slots, int threads) {
    std::vector<std::string> written;
    if (what == "parallel")
        emit_parallel(dir, jobs, slots, threads, written);
    else if (what == "slurm")
        emit_slurm(dir, jobs, slots, threads, written);
    else if (what == "sge")
        emit_sge(dir, jobs, slots, written);
    else
        throw std::runtime_error("--emit: unknown scheduler '" + what + "' (parallel, slurm, sge)");
    return written;
}

std::vector<std::string> scheduler_file_names(const nlohmann::json& jobs, const std::string& what) {
    const std::string step = final_step(jobs);
    if (what == "parallel") return {"run_parallel.sh"};
    if (what == "slurm") return {"jobs.sbatch", step + ".sbatch", "submit.sh"};
    if (what == "sge") return {"jobs.sge", step + ".sge", "submit_sge.sh"};
    throw std::runtime_error("--emit: unknown scheduler '" + what + "' (parallel, slurm, sge)");
}

std::vector<std::string> remove_unemitted_scheduler_files(const std::string& dir, const nlohmann::json& jobs,
                                                          const std::vector<std::string>& emit) {
    for (const std::string& what : emit) scheduler_file_names(jobs, what);  // an unknown one: nothing removed
    std::vector<std::string> removed;
    for (const std::string what : {"parallel", "slurm", "sge"}) {
        if (std::find(emit.begin(), emit.end(), what) != emit.end()) continue;
        for (const std::string& name : scheduler_file_names(jobs, what)) {
            const std::string path = dir + "/" + name;
            struct stat st;
            if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
            if (::unlink(path.c_str()) != 0)
                throw std::runtime_error(path + ": cannot remove: " + std::strerror(errno));
            removed.push_back(path);
        }
    }
    return removed;
}

namespace {

// A JSON value as text for a message: its dump, cut to 60 characters.
std::string short_json(const nlohmann::json& v) {
    std::string s = v.dump();
    return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

// json_first_difference below `path` (the key path so far).
std::string first_difference_at(const std::string& path, const nlohmann::json& a, const nlohmann::json& b) {
    if (a == b) return "";
    const auto sub = [&](const std::string& key) { return path.empty() ? key : path + "." + key; };
    if (a.is_object() && b.is_object()) {
        // Two passes over the keys (both in sorted order): first this level's
        // own differences (a key on one side only, a value that is not an
        // object on both sides), then the nested objects. So `--model cnn`
        // in a both-kinds directory reads "models: [...] there, [...] here",
        // not the absent "model_config.mamba" that follows from it.
        for (int pass = 0; pass < 2; pass++) {
            auto ia = a.begin(), ib = b.begin();
            while (ia != a.end() || ib != b.end()) {
                if (ib == b.end() || (ia != a.end() && ia.key() < ib.key())) {
                    if (pass == 0) return sub(ia.key()) + ": " + short_json(ia.value()) + " there, absent here";
                    ++ia;
                    continue;
                }
                if (ia == a.end() || ib.key() < ia.key()) {
                    if (pass == 0) return sub(ib.key()) + ": absent there, " + short_json(ib.value()) + " here";
                    ++ib;
                    continue;
                }
                const bool nested = ia.value().is_object() && ib.value().is_object();
                if (nested == (pass == 1))
                    if (std::string d = first_difference_at(sub(ia.key()), ia.value(), ib.value()); !d.empty())
                        return d;
                ++ia, ++ib;
            }
        }
    }
    if (a.is_array() && b.is_array() && a.size() == b.size())
        for (size_t i = 0; i < a.size(); i++)
            if (std::string d = first_difference_at(path + "[" + std::to_string(i) + "]", a[i], b[i]); !d.empty())
                return d;
    return (path.empty() ? std::string("the whole configuration") : path) + ": " + short_json(a) + " there, " +
           short_json(b) + " here";
}

}  // namespace

std::string json_first_difference(const nlohmann::json& there, const nlohmann::json& here) {
    return first_difference_at("", there, here);
}

std::string another_configuration(const std::string& dir, const nlohmann::json& there, const nlohmann::json& here) {
    return dir + " holds a run with another configuration (" + json_first_difference(there, here) +
           "); choose another --run-dir or pass --force";
}

PlanRecord plan_record(int argc, char** argv, bool threads_given, int threads) {
    PlanRecord rec;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--plan") continue;
        bool dropped = false;
        for (const std::string f : {"--emit", "--slots", "--run-dir"}) {
            if (a == f) i++, dropped = true;  // and its value
            if (a.rfind(f + "=", 0) == 0) dropped = true;
        }
        if (!dropped) rec.args.push_back(a);
    }
    if (!threads_given) rec.args.insert(rec.args.end(), {"--threads", std::to_string(threads)});
    rec.cwd = fs::current_path().string();
    rec.program = fs::canonical("/proc/self/exe").string();
    return rec;
}

bool has_flag(int argc, char** argv, const std::string& flag) {
    for (int i = 1; i < argc; i++)
        if (argv[i] == flag || std::string(argv[i]).rfind(flag + "=", 0) == 0) return true;
    return false;
}

int job_command_line(int argc, char** argv, const std::string& program,
                     const std::function<nlohmann::json(const std::string&)>& read_plan, std::vector<std::string>& args) {
    CLI::App japp{program + " --job"};
    std::string dir;
    int64_t id = 0;
    japp.add_option("--run-dir", dir);
    japp.add_option("--job", id)->check(int_in<int64_t>(0, int64_t(1) << 30));
    japp.allow_extras();
    if (int code = parse_command_line(japp, argc, argv); code >= 0) return code;
    if (!japp.remaining().empty()) {
        std::fprintf(stderr,
                     "error: --job: the run's arguments come from its plan (plan.json); %s cannot be given with "
                     "--job (see --help)\n",
                     japp.remaining()[0].c_str());
        return 2;
    }
    if (dir.empty()) {
        std::fprintf(stderr, "error: --job needs --run-dir (the directory %s --plan wrote) (see --help)\n",
                     program.c_str());
        return 2;
    }
    try {
        const nlohmann::json plan = read_plan(dir);
        dir = fs::absolute(dir).string();
        const std::string cwd = plan.at("cwd").get<std::string>();
        if (chdir(cwd.c_str()) != 0)
            throw std::runtime_error(cwd + ": cannot enter the plan's working directory: " + std::strerror(errno));
        args = {argv[0]};
        for (const auto& a : plan.at("args")) args.push_back(a.get<std::string>());
        args.insert(args.end(), {"--run-dir", dir, "--job", std::to_string(id)});
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", error_text(e).c_str());
        return 1;
    }
    return -1;
}

int use_plan_arguments(int& argc, char**& argv, const std::string& program,
                       const std::function<nlohmann::json(const std::string&)>& read_plan, JobArguments& keep) {
    if (!has_flag(argc, argv, "--job") || has_flag(argc, argv, "--help")) return -1;
    if (int code = job_command_line(argc, argv, program, read_plan, keep.args); code >= 0) return code;
    for (std::string& a : keep.args) keep.argv.push_back(a.data());
    argc = int(keep.argv.size());
    argv = keep.argv.data();
    return -1;
}

nlohmann::json read_plan_file(const std::string& dir, const std::string& program, int version) {
    const std::string path = dir + "/plan.json";
    struct stat st;
    const bool exists = ::stat(dir.c_str(), &st) == 0;
    if ((!exists && (errno == ENOENT || errno == ENOTDIR)) || (exists && !S_ISDIR(st.st_mode)))
        throw std::runtime_error("--run-dir " + dir + (exists ? ": not a directory" : ": no such directory") +
                                 " (give the directory " + program + " --plan wrote)");
    if (!regular_file_exists(path))
        throw std::runtime_error(dir + ": no plan.json in this run directory (write one with " + program +
                                 " --plan ... --run-dir " + dir + ")");
    std::ifstream f(path);
    nlohmann::json p = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
    if (!f.is_open() || p.is_discarded() || !p.is_object())
        throw std::runtime_error(path + ": not valid JSON (a corrupt run directory?)");
    const nlohmann::json v = p.value("plan_version", nlohmann::json());
    if (!v.is_number_integer() || v.get<int64_t>() != version)
        throw std::runtime_error(path + ": plan version " + (v.is_null() ? std::string("missing") : v.dump()) +
                                 ", this " + program + " reads version " + std::to_string(version) +
                                 " (write the plan again with this " + program + " --plan)");
    for (const char* key : {"args", "cwd", "threads", "n_jobs"})
        if (!p.contains(key)) throw std::runtime_error(path + ": no \"" + key + "\" (a corrupt run directory?)");
    return p;
}

void write_plan_file(const std::string& dir, int version, const PlanRecord& rec, int threads, size_t n_jobs,
                     const nlohmann::json& extra) {
    nlohmann::json plan = {{"plan_version", version}, {"program", rec.program}, {"cwd", rec.cwd},
                           {"args", rec.args},        {"run_dir", dir},         {"threads", threads},
                           {"n_jobs", n_jobs}};
    plan.update(extra);
    const std::string path = dir + "/plan.json", text = plan.dump(2) + "\n";
    char err[512];
    if (io_write_file_atomic(path.c_str(), text.data(), text.size(), err, sizeof err) != 0)
        throw std::runtime_error(path + ": " + err);
}

ModelLock::ModelLock(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::runtime_error(path + ": cannot lock: " + std::strerror(errno));
    int rc;
    while ((rc = ::flock(fd_, LOCK_EX)) != 0 && errno == EINTR) {
    }
    if (rc != 0) {
        const int e = errno;
        ::close(fd_);
        throw std::runtime_error(path + ": cannot lock: " + std::strerror(e));
    }
}

ModelLock::~ModelLock() {
    if (fd_ >= 0) ::close(fd_);  // closing the last descriptor drops the lock
}

int remove_stale_temporaries(const std::string& path) {
    const fs::path p(path);
    const std::string prefix = p.filename().string() + ".tmp.";
    int removed = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(p.parent_path(), ec)) {
        const std::string name = e.path().filename().string();
        if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
        if (name.find_first_not_of("0123456789", prefix.size()) != std::string::npos) continue;
        if (fs::remove(e.path(), ec)) removed++;
    }
    return removed;
}

}  // namespace mmia
