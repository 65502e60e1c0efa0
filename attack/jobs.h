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
// bin/extract --plan / --job use the same files, lock and emitters for its
// LM trainings (attack/extract.h; its jobs.json lists preset, tag, seed, and
// "final_step": "score" with score_command: the last step is then
// score.sbatch / score.sge, Slurm and SGE job name mmia-score).
//
// bin/attack's job ID (0-based) = kind index (the run's --model order: mamba, cnn) * M +
// model index (the plan's order: splits.json "models"), M models per kind.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mmia {

// The plan format this bin/attack writes and reads (plan.json "plan_version").
constexpr int kAttackPlanVersion = 1;

// What --plan records to run the command again (plan.json "args", "cwd",
// "program"): argv without --plan, --emit, --slots and --run-dir (and their
// values), `--threads T` appended when threads_given is false (training's
// bits depend on LibTorch's thread count); the current directory; the
// running program's absolute path (/proc/self/exe).
struct PlanRecord {
    std::vector<std::string> args;
    std::string cwd, program;
};
PlanRecord plan_record(int argc, char** argv, bool threads_given, int threads);

// Whether argv holds `flag` (as "--flag" or "--flag=...").
bool has_flag(int argc, char** argv, const std::string& flag);

// `PROGRAM --run-dir DIR --job ID` takes the run's arguments from
// DIR/plan.json (read_plan(DIR): throws when there is none or it is bad),
// in the directory they were given in (the plan's "cwd", entered here):
// fills `args` with the command line to parse instead (argv[0], the plan's
// arguments, --run-dir DIR made absolute, --job ID) and returns -1; or
// prints one error line and returns the exit code: 2 for "--job: the run's
// arguments come from its plan (plan.json); FLAG cannot be given with
// --job" and "--job needs --run-dir (the directory PROGRAM --plan wrote)",
// 1 for read_plan's error or a cwd that cannot be entered.
int job_command_line(int argc, char** argv, const std::string& program,
                     const std::function<nlohmann::json(const std::string&)>& read_plan, std::vector<std::string>& args);

// The command line a --job run parses instead of the caller's.
struct JobArguments {
    std::vector<std::string> args;
    std::vector<char*> argv;  // into args
};
// main()'s first step in PROGRAM: when argv holds --job (and not --help),
// job_command_line's arguments (kept in `keep`) replace argc and argv.
// Returns -1, or the exit code of job_command_line's refusal (its line printed).
int use_plan_arguments(int& argc, char**& argv, const std::string& program,
                       const std::function<nlohmann::json(const std::string&)>& read_plan, JobArguments& keep);

// DIR/plan.json as PROGRAM (bin/attack, bin/extract) wrote it, checked:
// throws "--run-dir <dir>: no such directory (give the directory PROGRAM
// --plan wrote)" (or "...: not a directory (...)" for a file, FIFO or
// device), "<dir>: no plan.json in this run directory (write one with PROGRAM
// --plan ... --run-dir <dir>)", "<dir>/plan.json: not valid JSON (a corrupt
// run directory?)", "<dir>/plan.json: plan version V, this PROGRAM reads
// version N (write the plan again with this PROGRAM --plan)" or
// "<dir>/plan.json: no "KEY" (a corrupt run directory?)" for each of
// args, cwd, threads, n_jobs.
nlohmann::json read_plan_file(const std::string& dir, const std::string& program, int version);

// Writes dir/plan.json (atomically; write it last: a plan exists once it
// is there): plan_version `version`, rec's program, cwd and args, run_dir
// `dir`, threads, n_jobs, and each key of the object `extra`. Throws
// "<path>: <why>" when it cannot be written.
void write_plan_file(const std::string& dir, int version, const PlanRecord& rec, int threads, size_t n_jobs,
                     const nlohmann::json& extra);

// s as one sh word: unchanged when it is made of [A-Za-z0-9_./=:,+-@%]
// only, else in single quotes ('\'' for a quote).
std::string shell_word(const std::string& s);
// argv as one sh command line (shell_word of each, space-separated).
std::string shell_command(const std::vector<std::string>& argv);

// The scheduler files of --emit `what` ("parallel", "slurm" or "sge") for the
// plan in dir (jobs.json's content `jobs`; its optional "planner", e.g.
// "bin/extract --plan", and "docs" name the writer and its documentation in
// the scripts' header, bin/attack's by default): each written atomically, the
// scripts executable (0755). slots > 0: at most that many jobs at once
// (parallel -j, Slurm's %P, SGE's -tc); 0: parallel's -j is
// max(1, cores / threads) of the machine that runs run_parallel.sh, the
// array tasks are not throttled. threads: each job's CPUs (Slurm
// --cpus-per-task, SGE's -pe smp is left to the site). Returns the paths written.
std::vector<std::string> emit_scheduler_files(const std::string& dir, const nlohmann::json& jobs,
                                              const std::string& what, int slots, int threads);

// The names (in dir) of the files emit_scheduler_files(dir, jobs, what, ...)
// writes: parallel: run_parallel.sh; slurm: jobs.sbatch, STEP.sbatch,
// submit.sh; sge: jobs.sge, STEP.sge, submit_sge.sh (STEP: jobs.json's
// "final_step", "attack" by default). Throws --emit's "unknown scheduler".
std::vector<std::string> scheduler_file_names(const nlohmann::json& jobs, const std::string& what);

// A plan made again with fewer emitters: removes from dir the scheduler
// files (scheduler_file_names) of every emitter not in `emit`, so no stale
// script of the old plan is left to submit. Only regular files of those
// names go (not symlinks, directories, nor the slurm/ and sge/ logs).
// Returns the paths removed; throws "<path>: cannot remove: <why>", and
// --emit's "unknown scheduler" (before removing anything).
std::vector<std::string> remove_unemitted_scheduler_files(const std::string& dir, const nlohmann::json& jobs,
                                                          const std::vector<std::string>& emit);

// The first place where two JSON values differ, as "PATH: A there, B here":
// PATH is the object keys from the top joined by '.' with array indices as
// [i] (at each level, first the keys whose values differ there - one side
// only, or not objects on both sides - in sorted order, then the nested
// objects; arrays of different lengths compared whole), A
// and B the values as JSON (cut to 60 characters with "..."), "absent" for
// a key on one side only. "" when they are equal. Used to say why a run
// directory's stored configuration (there) refuses this run's (here).
std::string json_first_difference(const nlohmann::json& there, const nlohmann::json& here);

// The refusal of a run directory whose stored configuration differs:
// "<dir> holds a run with another configuration (<json_first_difference>);
// choose another --run-dir or pass --force".
std::string another_configuration(const std::string& dir, const nlohmann::json& there, const nlohmann::json& here);

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
