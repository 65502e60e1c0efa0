// command_line.h: how the LibTorch-side programs (bin/train, bin/export,
// bin/attack) end on a bad command line. CLI11's own handling prints several
// lines and exits 105-109; ours is one "error: ..." line on stderr and exit 2,
// the engines' convention (engine/cli.h). --help and --version still print
// and exit 0.
#pragma once
#include <CLI/CLI.hpp>

#include <cstdio>

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

}  // namespace mmia
