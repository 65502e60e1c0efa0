// cli_batch.h: many short runs of a program side by side, for the suites
// whose time is mostly program start-up (bin/export, bin/extract: about
// 0.4 s of LibTorch loading each, CPU-bound, so two at a time halve the wall
// time on a 2-core machine). Header-only.
//
//   std::vector<CliRun> r = cli_run_batch({cli_quote(bin) + " --bad 1", cli_quote(bin) + " x < in.txt"}, dir);
//   // r[i].code, r[i].out, r[i].err as cli_run's, in the commands' order
#pragma once
#include <doctest/doctest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/cli_check.h"

// Runs each shell command line of cmds ("BIN ARGS", redirections of stdin
// allowed) with stdout and stderr to files in dir, up to `jobs` at once.
// Each is exec'ed by /bin/sh (posix_spawn, never fork: a test process has
// LibTorch's threads), so it is the program itself that runs and is killed:
// one that runs past `seconds` is killed and fails the test (a hang is a bug
// too; code -9). Returns the results in cmds' order: exit code (or
// -signal), stdout, stderr.
inline std::vector<CliRun> cli_run_batch(const std::vector<std::string>& cmds, const std::string& dir,
                                         size_t jobs = 2, double seconds = 120) {
    static int batch = 0;
    const std::string tag = dir + "/cli_batch" + std::to_string(batch++) + "_";
    auto file = [&](size_t i, const char* ext) { return tag + std::to_string(i) + ext; };
    std::vector<std::string> lines;
    for (size_t i = 0; i < cmds.size(); i++)
        lines.push_back("exec " + cmds[i] + " >" + cli_quote(file(i, ".out")) + " 2>" + cli_quote(file(i, ".err")));
    std::vector<pid_t> pid(cmds.size(), -1);
    std::vector<int> code(cmds.size(), -1);
    std::vector<std::chrono::steady_clock::time_point> deadline(cmds.size());
    std::vector<size_t> running;
    size_t next = 0;
    while (next < cmds.size() || !running.empty()) {
        while (next < cmds.size() && running.size() < jobs) {
            char* argv[] = {const_cast<char*>("/bin/sh"), const_cast<char*>("-c"), const_cast<char*>(lines[next].c_str()),
                            nullptr};
            REQUIRE(posix_spawn(&pid[next], "/bin/sh", nullptr, nullptr, argv, environ) == 0);
            deadline[next] = std::chrono::steady_clock::now() +
                             std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
            running.push_back(next++);
        }
        for (size_t k = 0; k < running.size();) {
            const size_t i = running[k];
            int st = 0;
            pid_t r = waitpid(pid[i], &st, WNOHANG);
            if (r < 0) FAIL("waitpid failed for: " << cmds[i]);  // not a REQUIRE per poll: thousands of assertions
            if (r == 0 && std::chrono::steady_clock::now() > deadline[i]) {
                kill(pid[i], SIGKILL);
                r = waitpid(pid[i], &st, 0);
                FAIL_CHECK("did not finish within " << seconds << " s: " << cmds[i]);
            }
            if (r == pid[i]) {
                code[i] = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
                running.erase(running.begin() + long(k));
            } else {
                k++;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::vector<CliRun> runs;
    for (size_t i = 0; i < cmds.size(); i++) runs.push_back({code[i], cli_read_text(file(i, ".out")), cli_read_text(file(i, ".err"))});
    return runs;
}
