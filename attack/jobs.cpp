// jobs.cpp: the scheduler files of bin/attack --plan --emit, and the model
// lock (see jobs.h). The recipes follow ../shared/notes/defences.md section 4
// (GNU parallel's --joblog/--resume-failed, Slurm arrays and afterok, SGE's
// 1-based -t).
#include "attack/jobs.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

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

// The lines every script starts with: what wrote it and what it runs.
std::string header(const nlohmann::json& jobs, const std::string& what) {
    return "# " + what + "\n# Written by bin/attack --plan for the run in " + jobs.at("run_dir").get<std::string>() +
           " (" + std::to_string(jobs.at("jobs").size()) +
           " training jobs; docs/ATTACKS.md, \"From one machine to a cluster\").\n";
}

void emit_parallel(const std::string& dir, const nlohmann::json& jobs, int slots, int threads,
                   std::vector<std::string>& written) {
    const std::string d = shell_word(dir);
    std::string s = "#!/bin/sh\n" +
                    header(jobs, "GNU parallel: every training job of this run (jobs.txt), then the attack.") +
                    "# Arguments go to parallel after this script's own (a later -j wins), e.g.\n"
                    "#   --sshlogin 2/host1,2/host2   (the run directory and bin/attack at the same paths there)\n"
                    "# Run it again after a failure: --resume-failed reruns the failed and never-run jobs,\n"
                    "# and the job of a model already complete does nothing.\n"
                    "set -e\n";
    if (slots > 0)
        s += "J=" + std::to_string(slots) + "\n";
    else
        s += "J=$(( $(nproc) / " + std::to_string(threads) + " )); [ \"$J\" -ge 1 ] || J=1\n";
    s += "parallel --joblog " + d + "/joblog --resume-failed -j \"$J\" \"$@\" < " + d + "/jobs.txt\n";
    s += jobs.at("attack_command").get<std::string>() + "\n";
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
    write_script(dir + "/attack.sbatch",
                 "#!/bin/sh\n" + header(jobs, "Slurm: the attack, once every model is trained.") +
                     "#SBATCH --job-name=mmia-attack\n" + cpus + "#SBATCH --output=slurm/attack-%j.out\n" +
                     jobs.at("attack_command").get<std::string>() + "\n",
                 written);
    write_script(dir + "/submit.sh",
                 "#!/bin/sh\n" +
                     header(jobs, "Slurm: submits the training array, then the attack (afterok: it starts only "
                                  "when every task succeeded).") +
                     "# Arguments go to both sbatch calls (e.g. --partition=..., --time=..., or --wait).\n"
                     "set -e\ncd " + shell_word(dir) + "\n" +
                     "array=$(sbatch --parsable \"$@\" jobs.sbatch)\narray=${array%%;*}\n"
                     "attack=$(sbatch --parsable \"$@\" --dependency=afterok:$array attack.sbatch)\n"
                     "attack=${attack%%;*}\n"
                     "echo \"submitted: training array $array (" + std::to_string(n) +
                     " tasks), attack $attack (afterok:$array); logs in " + dir + "/slurm/\"\n",
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
    write_script(dir + "/attack.sge",
                 "#!/bin/sh\n" + header(jobs, "Grid Engine: the attack, after the training array.") +
                     "#$ -N mmia-attack\n#$ -cwd\n#$ -j y\n#$ -o sge/\n" +
                     jobs.at("attack_command").get<std::string>() + "\n",
                 written);
    write_script(dir + "/submit_sge.sh",
                 "#!/bin/sh\n" +
                     header(jobs, "Grid Engine: submits the training array, then the attack held until it ends "
                                  "(-hold_jid waits for the tasks to end, not to succeed: the attack trains a "
                                  "missing model itself).") +
                     "set -e\ncd " + shell_word(dir) + "\n" +
                     "array=$(qsub -terse \"$@\" jobs.sge)\narray=${array%%.*}\n"
                     "qsub \"$@\" -hold_jid \"$array\" attack.sge\n",
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
