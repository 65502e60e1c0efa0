// cli_check.h: running an engine binary (./mamba, ./cnn) from a test and
// checking how it fails. Shared by the engine test suites; header-only.
//
//   CliRun r = cli_run("./cnn", "model.bin input.bin --quiet", dir);
//   cli_check_fails("./cnn", "bad.bin input.bin", "bad magic", dir);
#pragma once
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

struct CliRun {
    int code;
    std::string out, err;
};

inline std::string cli_quote(const std::string& s) {
    std::string r = "'";
    for (char c : s) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return r + "'";
}

inline std::string cli_read_text(const std::string& p) {
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

inline bool cli_file_exists(const std::string& p) {
    struct stat st;
    return stat(p.c_str(), &st) == 0;
}

// A program under test: the path in environment variable `env` (the
// sanitizer build's), else `fallback`, made absolute; fails the test when it
// is not an executable file.
inline std::string cli_program(const char* env, const char* fallback) {
    const char* v = getenv(env);
    const std::string bin = v && *v ? v : fallback;
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "no executable " << bin << " (make " << fallback << ")");
    return std::filesystem::absolute(bin).string();
}

// Runs `bin args` with stdout and stderr captured in files under dir.
inline CliRun cli_run(const std::string& bin, const std::string& args, const std::string& dir) {
    static int counter = 0;
    std::string o = dir + "/cli_out_" + std::to_string(counter), e = dir + "/cli_err_" + std::to_string(counter);
    counter++;
    int st = system((cli_quote(bin) + " " + args + " >" + o + " 2>" + e).c_str());
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, cli_read_text(o), cli_read_text(e)};
}

// An environment variable, or `fallback` when it is unset or empty (the
// sanitizer build points MAMBA_BIN, TRAIN_BIN, ... at its own binaries).
inline std::string cli_env_or(const char* name, const char* fallback) {
    const char* v = getenv(name);
    return v && *v ? v : fallback;
}

// Starts argv (argv[0] is the program's path) with stdout to `log` and
// stderr to `log`.err, without waiting: for tests that kill it.
inline pid_t cli_spawn(const std::vector<std::string>& args, const std::string& log) {
    // Everything that allocates happens before fork: a test process has
    // LibTorch's and OpenMP's threads, and a child forked while one of them
    // held the malloc lock would deadlock in malloc. The child only calls
    // async-signal-safe functions.
    const std::string err_log = log + ".err";
    std::vector<char*> argv;
    for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int err = open(err_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (out < 0 || err < 0) _exit(126);
        dup2(out, 1);
        dup2(err, 2);
        execv(argv[0], argv.data());
        _exit(127);
    }
    return pid;
}

// Waits up to `seconds` for a cli_spawn'ed child; kills it and fails the
// test if it takes longer (a hang is a bug too). Returns the exit code, or
// -signal.
inline int cli_wait(pid_t pid, double seconds) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        REQUIRE(r >= 0);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
        if (std::chrono::steady_clock::now() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            FAIL("child did not finish within " << seconds << " s");
            return -1;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

// Runs argv to completion (no shell), output captured as cli_spawn does.
inline CliRun cli_run_argv(const std::vector<std::string>& args, const std::string& log, double timeout = 120) {
    int code = cli_wait(cli_spawn(args, log), timeout);
    return {code, cli_read_text(log), cli_read_text(log + ".err")};
}

// Whether process `pid` has a mapping of `path` (/proc/<pid>/maps; path
// absolute, as the kernel prints it).
inline bool cli_has_mapped(pid_t pid, const std::string& path) {
    std::istringstream maps(cli_read_text("/proc/" + std::to_string(pid) + "/maps"));
    for (std::string l; std::getline(maps, l);)
        if (l.size() > path.size() && l.compare(l.size() - path.size(), path.size(), path) == 0 &&
            l[l.size() - path.size() - 1] == ' ')
            return true;
    return false;
}

// A file that shrinks while a program reads it through its mapping
// (docs/BAD_INPUT.md): starts args (no shell), waits until the program has
// mapped `ready` (by then it has opened every file it maps and is at its
// main work), stops it (SIGSTOP, waited for), checks `ready` is still
// mapped, truncates `shrink` to `keep` bytes and lets it go on. The program
// must then exit 1 with exactly `line` on stderr and nothing on stdout,
// within 60 s; with streamed_ok (an engine's -i generation, which prints
// each token as it is sampled), stdout may hold the text streamed before
// the failure, its line ended with '\n'. Returns stdout. Deterministic as long as the job outlasts the poll (5 ms
// steps): a program that has finished first fails the test, never passes.
inline std::string cli_check_shrink_while_mapped(const std::vector<std::string>& args, const std::string& ready,
                                                 const std::string& shrink, off_t keep, const std::string& line,
                                                 const std::string& log, bool streamed_ok = false) {
    REQUIRE_MESSAGE(access(args[0].c_str(), X_OK) == 0, "no executable " << args[0]);
    REQUIRE_MESSAGE(ready[0] == '/', ready << " must be absolute (as /proc/PID/maps prints it)");
    pid_t pid = cli_spawn(args, log);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    int st = 0;
    bool mapped = false;
    pid_t done = 0;
    while (!(mapped = cli_has_mapped(pid, ready)) && std::chrono::steady_clock::now() < deadline &&
           (done = waitpid(pid, &st, WNOHANG)) == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (!mapped) {
        if (done != pid) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
        }
        FAIL("the program never mapped " << ready << " (finished before the poll saw it?); stderr: "
                                         << cli_read_text(log + ".err"));
    }
    REQUIRE(kill(pid, SIGSTOP) == 0);
    REQUIRE(waitpid(pid, &st, WUNTRACED) == pid);
    const bool stopped = WIFSTOPPED(st), still = stopped && cli_has_mapped(pid, ready);
    const int tr = truncate(shrink.c_str(), keep);
    kill(pid, SIGCONT);
    CHECK_MESSAGE(stopped, "the program ended before it was stopped");
    CHECK_MESSAGE(still, "the program had unmapped " << ready << " before it was stopped");
    REQUIRE(tr == 0);
    const int code = cli_wait(pid, 60);
    INFO("stderr: " << cli_read_text(log + ".err"));
    CHECK(code == 1);  // -SIGBUS would be the crash this guards against
    const std::string out = cli_read_text(log);
    if (streamed_ok)
        CHECK((out.empty() || out.back() == '\n'));
    else
        CHECK(out.empty());
    CHECK(cli_read_text(log + ".err") == line + "\n");
    return out;
}

// A disk that fills up: runs the sh `script` in a private user + mount
// namespace (util-linux's unshare) in which `mount_dir` (an existing empty
// directory) is a fresh tmpfs of `kib` KiB. The tmpfs vanishes with the
// namespace, so the script copies out whatever the test inspects. Exit code
// 97 means the tmpfs could not be mounted: cli_small_disk_available() asks
// first (and says why when it cannot), so a test can skip on a machine
// without user namespaces.
inline CliRun cli_run_on_small_disk(const std::string& mount_dir, int kib, const std::string& script,
                                    const std::string& log, double timeout = 300) {
    const std::string mount = "mount -t tmpfs -o size=" + std::to_string(kib) + "k tmpfs " +
                              cli_quote(mount_dir) + " || exit 97; ";
    return cli_run_argv({"/usr/bin/unshare", "-rm", "/bin/sh", "-c", mount + script}, log, timeout);
}

// A test that cannot run here: a failure, unless MMIA_ALLOW_SKIPS=1 is set,
// when it is reported as a line "SKIPPED: <why>" that tests/run_all.sh
// counts and prints in its summary. Never a silent pass.
inline void cli_skip(const std::string& why) {
    const char* allow = getenv("MMIA_ALLOW_SKIPS");
    if (allow && std::string(allow) == "1") {
        MESSAGE("SKIPPED: " << why);
    } else {
        FAIL_CHECK("cannot run: " << why << " (set MMIA_ALLOW_SKIPS=1 to report it as a skip instead)");
    }
}

inline bool cli_small_disk_available(const std::string& mount_dir, const std::string& log) {
    CliRun probe = cli_run_on_small_disk(mount_dir, 64, "exit 0", log, 30);
    if (probe.code != 0) cli_skip("cannot mount a tmpfs in a user namespace here (unshare -rm): " + probe.err);
    return probe.code == 0;
}

// No file at `out` and no temp file beside it.
inline void cli_check_no_output_left(const std::string& out) {
    CHECK_MESSAGE(!cli_file_exists(out), out);
    std::string cmd = "ls " + cli_quote(out) + ".tmp* >/dev/null 2>&1";
    CHECK_MESSAGE(system(cmd.c_str()) != 0, "temp file left beside " << out);
}

// A failed run whose stderr is exactly `line` + "\n" (the whole message,
// docs/BAD_INPUT.md's row), with cli_check_fails's other checks. The run
// is under `timeout`, so a program that would wait forever (a FIFO, a
// device) fails the test with exit 124 instead of hanging it.
inline void cli_check_fails_exact(const std::string& bin, const std::string& args, const std::string& line,
                                  const std::string& dir, int code = 1) {
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "no executable " << bin << " (run from the repo root after make)");
    std::string out = dir + "/should_not_exist.npy";
    CliRun r = cli_run("timeout", "-k 5 60 " + cli_quote(bin) + " " + args + " --out " + cli_quote(out), dir);
    INFO("args: " << args << "\nstderr: " << r.err);
    CHECK(r.code == code);
    CHECK(r.out.empty());
    CHECK(r.err == line + "\n");
    cli_check_no_output_left(out);
}

// A failed run: exit code, one "error: " line on stderr containing needle,
// nothing on stdout, no --out file left.
inline void cli_check_fails(const std::string& bin, const std::string& args, const std::string& needle,
                            const std::string& dir, int code = 1) {
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "no executable " << bin << " (run from the repo root after make)");
    std::string out = dir + "/should_not_exist.npy";
    CliRun r = cli_run(bin, args + " --out " + cli_quote(out), dir);
    INFO("args: " << args << "\nstderr: " << r.err);
    CHECK(r.code == code);
    CHECK(r.out.empty());
    CHECK(r.err.rfind("error: ", 0) == 0);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(r.err.find(needle) != std::string::npos);
    cli_check_no_output_left(out);
}
