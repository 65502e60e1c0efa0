// bench_util.h: timing helpers shared by the bench/ programs.
#pragma once
#include <algorithm>
#include <chrono>
#include <vector>

using BenchClock = std::chrono::steady_clock;

inline double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

inline double seconds_since(BenchClock::time_point t0) {
    return std::chrono::duration<double>(BenchClock::now() - t0).count();
}

// Median wall time of f() over `reps` runs, after one untimed warm-up run
// (pages in weights, allocates scratch).
template <class F>
double median_seconds(int reps, F&& f) {
    f();
    std::vector<double> t;
    for (int i = 0; i < reps; i++) {
        auto t0 = BenchClock::now();
        f();
        t.push_back(seconds_since(t0));
    }
    return median(t);
}

// Fastest wall time of f() over `reps` runs, after one untimed warm-up run:
// for kernels timed on a machine other jobs share.
template <class F>
double min_seconds(int reps, F&& f) {
    f();
    double best = 1e300;
    for (int i = 0; i < reps; i++) {
        auto t0 = BenchClock::now();
        f();
        best = std::min(best, seconds_since(t0));
    }
    return best;
}
