// cli_check.h: running an engine binary (./mamba, ./cnn) from a test and
// checking how it fails. Shared by the engine test suites; header-only.
//
//   CliRun r = cli_run("./cnn", "model.bin input.bin --quiet", dir);
//   cli_check_fails("./cnn", "bad.bin input.bin", "bad magic", dir);
#pragma once
#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>
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

// Runs `bin args` with stdout and stderr captured in files under dir.
inline CliRun cli_run(const std::string& bin, const std::string& args, const std::string& dir) {
    static int counter = 0;
    std::string o = dir + "/cli_out_" + std::to_string(counter), e = dir + "/cli_err_" + std::to_string(counter);
    counter++;
    int st = system((cli_quote(bin) + " " + args + " >" + o + " 2>" + e).c_str());
    return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, cli_read_text(o), cli_read_text(e)};
}

// No file at `out` and no temp file beside it.
inline void cli_check_no_output_left(const std::string& out) {
    CHECK_MESSAGE(!cli_file_exists(out), out);
    std::string cmd = "ls " + cli_quote(out) + ".tmp* >/dev/null 2>&1";
    CHECK_MESSAGE(system(cmd.c_str()) != 0, "temp file left beside " << out);
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
