// jobs.h: bin/attack's run as scheduler jobs (docs/ATTACKS.md, "From one
// machine to a cluster"): the files `bin/attack --plan` writes beside the
// plan, and the lock that makes two copies of one job harmless.
//
//   DIR/plan.json     what --job re-reads: plan_version, the run's arguments
//                     (args, relative to cwd), program, run_dir, threads, n_jobs
//   DIR/jobs.json     one entry per job: id, kind, role, seed, checkpoint,
//                     packed, members_fnv1a, nonmembers_fnv1a, command; and
//                     attack_command (the plain run that attacks at the end)
//   DIR/jobs.txt      one job's shell command a line (job 0 first), for
//                     `parallel --joblog DIR/joblog --resume-failed -j P < DIR/jobs.txt`
//   --emit parallel   DIR/run_parallel.sh: that parallel line, then the attack
//   --emit slurm      DIR/jobs.sbatch (an --array=0-(N-1)[%P] whose task runs
//                     --job $SLURM_ARRAY_TASK_ID), DIR/attack.sbatch, and
//                     DIR/submit.sh (both, the second --dependency=afterok)
//   --emit sge        DIR/jobs.sge (-t 1-N, --job $((SGE_TASK_ID - 1))),
//                     DIR/attack.sge, DIR/submit_sge.sh (-hold_jid)
//
// Job ID (0-based) = kind index (the run's --model order: mamba, cnn) * M +
// model index (the plan's order: splits.json "models"), M models per kind.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mmia {

// The plan format this bin/attack writes and reads (plan.json "plan_version").
constexpr int kAttackPlanVersion = 1;

// s as one sh word: unchanged when it is made of [A-Za-z0-9_./=:,+-@%]
// only, else in single quotes ('\'' for a quote).
std::string shell_word(const std::string& s);
// argv as one sh command line (shell_word of each, space-separated).
std::string shell_command(const std::vector<std::string>& argv);

// The scheduler files of --emit `what` ("parallel", "slurm" or "sge") for the
// plan in dir (jobs.json's content `jobs`): each written atomically, the
// scripts executable (0755). slots > 0: at most that many jobs at once
// (parallel -j, Slurm's %P, SGE's -tc); 0: parallel's -j is
// max(1, cores / threads) of the machine that runs run_parallel.sh, the
// array tasks are not throttled. threads: each job's CPUs (Slurm
// --cpus-per-task, SGE's -pe smp is left to the site). Returns the paths written.
std::vector<std::string> emit_scheduler_files(const std::string& dir, const nlohmann::json& jobs,
                                              const std::string& what, int slots, int threads);

// An exclusive lock on one model of a run (flock(2) on `path`, created if
// missing, never removed): held from construction to destruction, so two
// processes training the same model run one after the other, and a killed
// holder's lock goes with it (the kernel drops it). Blocks until it is
// free. Throws "<path>: cannot lock: <why>" (flock is emulated over NFS by
// POSIX record locks since Linux 2.6.12; a filesystem without locks fails here).
class ModelLock {
  public:
    explicit ModelLock(const std::string& path);
    ~ModelLock();
    ModelLock(const ModelLock&) = delete;
    ModelLock& operator=(const ModelLock&) = delete;

  private:
    int fd_ = -1;
};

// Removes the temporaries a killed writer left beside `path`
// (<path>.tmp.<pid>, engine/io.h's naming); call it holding the model's
// lock. Returns how many it removed.
int remove_stale_temporaries(const std::string& path);

}  // namespace mmia
