// write_text.h: one text file written atomically (engine/io.h's
// io_write_file_atomic: <path>.tmp.<pid>, fsync, rename), so a reader never
// sees half a report and a failed write leaves the old file in place.
#pragma once

#include <stdexcept>
#include <string>

#include "engine/io.h"

namespace mmia {

// Throws std::runtime_error("<path>: <why>") when the file cannot be written.
inline void write_text_atomic(const std::string& path, const std::string& text) {
    char err[512];
    if (io_write_file_atomic(path.c_str(), text.data(), text.size(), err, sizeof err) != 0)
        throw std::runtime_error(path + ": " + err);
}

}  // namespace mmia
