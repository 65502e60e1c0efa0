// command_line.h: how the LibTorch-side programs (bin/train, bin/export,
// bin/attack) end on a bad command line. CLI11's own handling prints several
// lines and exits 105-109; ours is one "error: ..." line on stderr and exit 2,
// the engines' convention (engine/cli.h). --help and --version still print
// and exit 0.
#pragma once
#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <stdexcept>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "engine/io.h"  // io_check_not_input, io_path_inside

namespace mmia {

// Returns -1 when the command line parsed and the program goes on, else the
// exit code to return from main.
inline int parse_command_line(CLI::App& app, int argc, char** argv) {
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);  // --help
        std::fprintf(stderr, "error: %s (see --help)\n", e.what());
        return 2;
    }
    return -1;
}

// The text an exception's "error: ..." line shows: its message up to the
// first line break not followed by an indented line. LibTorch errors carry
// a C++ backtrace after their first line; a message of ours goes on only
// with indented lines (load_dataset's "files not found": one per directory
// tried, then the fix), which are kept.
inline std::string error_text(const std::exception& e) {
    const std::string msg = e.what();
    size_t cut = 0;
    while ((cut = msg.find('\n', cut)) != std::string::npos && msg.compare(cut + 1, 2, "  ") == 0) cut++;
    return msg.substr(0, cut);
}

// An integer flag's check, for every integer flag (CLI11 converts "-1" to
// an unsigned by wrapping and has no check of its own that prints a human
// bound): the text must be a whole decimal number in [lo, hi], read without
// wrapping (strtoll/strtoull with ERANGE, no sign for an unsigned type).
// Else the usage line "--flag: '<text>' is not an integer in [lo, hi]".
// Applies to each element of a comma-separated list option too.
template <class T>
CLI::Validator int_in(T lo, T hi) {
    static_assert(std::is_integral<T>::value, "int_in is for integer flags");
    const std::string bounds = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    return CLI::Validator(
        [lo, hi, bounds](std::string& s) -> std::string {
            const std::string bad = "'" + s + "' is not an integer in " + bounds;
            if (s.empty() || s.size() > 40) return bad;
            const char* v = s.c_str();
            char* end = nullptr;
            errno = 0;
            bool ok;
            if (std::is_signed<T>::value) {
                const long long x = std::strtoll(v, &end, 10);
                ok = errno == 0 && *end == 0 && x >= (long long)lo && x <= (long long)hi;
            } else {
                const bool digits = v[0] >= '0' && v[0] <= '9';  // strtoull would wrap "-1"
                const unsigned long long x = std::strtoull(v, &end, 10);
                ok = digits && errno == 0 && *end == 0 && x >= (unsigned long long)lo &&
                     x <= (unsigned long long)hi;
            }
            return ok ? "" : bad;
        },
        "INT in " + bounds);
}

// A real-valued flag's check: the text must be a finite number in the
// interval from lo to hi, each end open or closed (strtod; "nan" and "inf"
// fail every interval), else the usage line
// "--flag: '<text>' is not <what> in [lo, hi]" (CLI11 prefixes the flag).
// what names the quantity with its article: "a learning rate".
inline CLI::Validator real_in(double lo, bool lo_open, double hi, const std::string& what, bool hi_open = false) {
    char b[96];
    std::snprintf(b, sizeof b, "%s%g, %g%s", lo_open ? "(" : "[", lo, hi, hi_open ? ")" : "]");
    const std::string bounds = b;
    return CLI::Validator(
        [=](std::string& s) -> std::string {
            char* end = nullptr;
            const double v = std::strtod(s.c_str(), &end);
            const bool ok = !s.empty() && *end == 0 && (lo_open ? v > lo : v >= lo) &&
                            (hi_open ? v < hi : v <= hi);  // false for nan
            return ok ? "" : "'" + s + "' is not " + what + " in " + bounds;
        },
        "X in " + bounds);
}

// Seeds: any 64-bit unsigned integer.
inline CLI::Validator seed_range() { return int_in<uint64_t>(0, std::numeric_limits<uint64_t>::max()); }

// Throws "<out>: <flag> is the same file as the input <in> (it would be
// overwritten)" when the output `out` is one of `inputs` (engine/io.h's
// io_check_not_input: device and inode, symlinks and hard links included).
// Programs call it before any work.
inline void check_output_not_input(const std::string& out, const std::string& flag,
                                   const std::vector<std::string>& inputs) {
    std::vector<const char*> in;
    for (const std::string& s : inputs) in.push_back(s.c_str());
    char err[1024];
    if (io_check_not_input(out.c_str(), flag.c_str(), in.data(), int(in.size()), err, sizeof err) != 0)
        throw std::runtime_error(out + ": " + err);
}

// Throws "<input>: <flag> lies inside the run directory <dir> (a run writes
// and replaces files there; keep its inputs outside <dir_flag>)" when the
// existing input lies in the existing run directory (engine/io.h's
// io_path_inside).
inline void check_input_outside_dir(const std::string& input, const std::string& flag, const std::string& dir,
                                    const std::string& dir_flag) {
    if (!input.empty() && !dir.empty() && io_path_inside(input.c_str(), dir.c_str()))
        throw std::runtime_error(input + ": " + flag + " lies inside the run directory " + dir +
                                 " (a run writes and replaces files there; keep its inputs outside " + dir_flag +
                                 ")");
}

// A comma-separated list flag (CLI11 ->delimiter(',')) as the user wrote it:
// returns "" when `flag` appears at most once with no empty element, else
// the usage error's text ("--seeds: given twice (give one comma-separated
// list)", "--seeds: an empty element in '1,,2'"). CLI11 itself would merge
// repeated flags into one list and drop empty elements silently.
inline std::string list_flag_problem(int argc, char** argv, const std::string& flag) {
    int seen = 0;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        std::string value;
        if (a == flag) {
            if (i + 1 < argc) value = argv[i + 1];
        } else if (a.compare(0, flag.size() + 1, flag + "=") == 0) {
            value = a.substr(flag.size() + 1);
        } else {
            continue;
        }
        if (++seen > 1) return flag + ": given twice (give one comma-separated list)";
        if (value.empty() || value.front() == ',' || value.back() == ',' || value.find(",,") != std::string::npos)
            return flag + ": an empty element in '" + value + "'";
    }
    return "";
}

// The first value that occurs twice in a list flag's values, as text; ""
// when all differ.
template <class T>
std::string first_repeat(const std::vector<T>& v) {
    for (size_t i = 0; i < v.size(); i++)
        for (size_t j = 0; j < i; j++)
            if (v[i] == v[j]) {
                std::ostringstream o;
                o << v[i];
                return o.str();
            }
    return "";
}

}  // namespace mmia
