// temp_dir.h: a fresh directory under /tmp for one test, removed with
// everything in it when the test ends. Header-only; shared by the suites.
#pragma once
#include <stdlib.h>

#include <filesystem>
#include <string>

struct TempDir {
    std::filesystem::path path;
    explicit TempDir(const char* prefix = "mmia_test") {
        std::string tmpl = std::string("/tmp/") + prefix + "_XXXXXX";
        path = mkdtemp(tmpl.data());
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string file(const std::string& name) const { return (path / name).string(); }
};
