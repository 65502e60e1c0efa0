// command_line.h: how the LibTorch-side programs (bin/train, bin/export,
// bin/attack) end on a bad command line. CLI11's own handling prints several
// lines and exits 105-109; ours is one "error: ..." line on stderr and exit 2,
// the engines' convention (engine/cli.h). --help and --version still print
// and exit 0.
#pragma once
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <string>

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

}  // namespace mmia
