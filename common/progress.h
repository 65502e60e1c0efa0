// progress.h: a one-line progress bar on stderr, for anything that runs more
// than a few seconds. Redrawn in place on a terminal; silent otherwise, so
// logs and CI output keep only the summary lines the caller prints.
#pragma once
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace mmia {

class Progress {
public:
    Progress(std::string label, int64_t total)
        : label_(std::move(label)), total_(total), tty_(isatty(STDERR_FILENO)),
          start_(std::chrono::steady_clock::now()) {}

    // Redraws at most ~10 times a second; `extra` is appended (e.g. "loss 0.12").
    void update(int64_t done, const std::string& extra = "") {
        if (!tty_) return;
        auto now = std::chrono::steady_clock::now();
        if (done < total_ && now - last_ < std::chrono::milliseconds(100)) return;
        last_ = now;
        double secs = std::chrono::duration<double>(now - start_).count();
        double frac = total_ > 0 ? double(done) / double(total_) : 1.0;
        int filled = int(frac * 24);
        std::string bar(filled, '#');
        bar.resize(24, '.');
        double eta = frac > 0 ? secs / frac - secs : 0;
        std::fprintf(stderr, "\r%s [%s] %lld/%lld %.0fs eta %.0fs %s\033[K", label_.c_str(),
                     bar.c_str(), (long long)done, (long long)total_, secs, eta, extra.c_str());
        std::fflush(stderr);
    }

    // Clears the bar so the caller's summary line starts clean.
    void finish() {
        if (tty_) std::fprintf(stderr, "\r\033[K");
    }

    double seconds() const {
        return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }

private:
    std::string label_;
    int64_t total_;
    bool tty_;
    std::chrono::steady_clock::time_point start_, last_{};
};

}  // namespace mmia
