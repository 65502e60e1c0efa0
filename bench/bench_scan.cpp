// Benchmark of the fused selective scan (train/selective_scan.*) against the
// plain-LibTorch loop over time (selective_scan_ref), forward + backward,
// same thread count for both, median of several repetitions. Also the peak
// resident-memory increase of one forward + backward of the fused op.
//
// Build (from the repository root):
//   g++ -std=c++17 -O2 -march=native -fopenmp -isystem /usr/include/torch/csrc/api/include -I. -Iengine
//       bench/bench_scan.cpp build/train/selective_scan.o -o bin/bench_scan -ltorch -ltorch_cpu -lc10 -lpthread
// Run:  bin/bench_scan [--threads 2] [--reps 5] [--ref-reps 3] [--chunk 64]
//
// Shapes are those of a Mamba block in training: E = 128 channels, N = 16,
// z gate, delta bias and softplus all on (the model's configuration).
#include "train/selective_scan.h"
#include "bench/bench_util.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <malloc.h>
#include <string>
#include <vector>

namespace {

struct Opts {
    int threads = 2;
    int reps = 5;
    int ref_reps = 3;
    int64_t chunk = 0;  // 0 = the op's default
    bool skip_ref = false;
    bool skip_mem = false;
    bool skip_reuse = false;
    std::vector<std::pair<int64_t, int64_t>> shapes = {{64, 49}, {64, 256}, {16, 784}};
};

void usage(FILE* f) {
    std::fprintf(f,
                 "usage: bench_scan [options]\n"
                 "  Forward+backward time of the fused selective scan vs the LibTorch reference\n"
                 "  at (B,L) = (64,49), (64,256), (16,784), E=128, N=16, twice: with glibc's\n"
                 "  malloc defaults, then with malloc kept from returning memory to the OS\n"
                 "  (the reference's best case); and the peak RSS\n"
                 "  increase of one fused forward+backward at B=16, L=784.\n"
                 "  --threads N    intra-op threads for both (torch::set_num_threads), default 2\n"
                 "  --reps N       timed repetitions of the fused op (median reported), default 5\n"
                 "  --ref-reps N   timed repetitions of the reference, default 3\n"
                 "  --chunk K      checkpoint interval of the fused op in time steps (default: the op's)\n"
                 "  --no-ref       time the fused op only\n"
                 "  --no-mem       skip the peak-RSS measurement\n"
                 "  --no-reuse     skip the second table (malloc tuned to reuse freed memory)\n"
                 "  --shapes LIST  comma-separated BxL shapes instead of the default three, e.g. 64x256\n"
                 "  --help         this text\n");
}

bool parse_int(const char* s, long long lo, long long hi, long long* out) {
    char* end = nullptr;
    const long long v = std::strtoll(s, &end, 10);
    if (!s[0] || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

Opts parse(int argc, char** argv) {
    Opts o;
    for (int i = 1; i < argc; i++) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") {
            usage(stdout);
            std::exit(0);
        }
        if (a == "--no-ref" || a == "--no-mem" || a == "--no-reuse") {
            (a == "--no-ref" ? o.skip_ref : a == "--no-mem" ? o.skip_mem : o.skip_reuse) = true;
            continue;
        }
        if (a == "--shapes") {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "error: --shapes: missing value\n");
                std::exit(2);
            }
            o.shapes.clear();
            std::string list = argv[++i];
            size_t pos = 0;
            while (pos <= list.size()) {
                const size_t end = std::min(list.find(',', pos), list.size());
                const std::string item = list.substr(pos, end - pos);
                long long b = 0, l = 0;
                char extra = 0;
                if (std::sscanf(item.c_str(), "%lldx%lld%c", &b, &l, &extra) != 2 || b < 1 || l < 1 || b > 100000 ||
                    l > 1000000) {
                    std::fprintf(stderr, "error: --shapes: '%s' is not BxL (e.g. 64x256)\n", item.c_str());
                    std::exit(2);
                }
                o.shapes.push_back({b, l});
                pos = end + 1;
            }
            continue;
        }
        long long v = 0;
        auto need = [&](long long lo, long long hi) {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "error: %s: missing value\n", a.c_str());
                std::exit(2);
            }
            if (!parse_int(argv[i + 1], lo, hi, &v)) {
                std::fprintf(stderr, "error: %s: '%s' is not an integer in [%lld, %lld]\n", a.c_str(), argv[i + 1],
                             lo, hi);
                std::exit(2);
            }
            i++;
        };
        if (a == "--threads") need(1, 1024), o.threads = int(v);
        else if (a == "--reps") need(1, 1000), o.reps = int(v);
        else if (a == "--ref-reps") need(1, 1000), o.ref_reps = int(v);
        else if (a == "--chunk") need(1, 1 << 20), o.chunk = v;
        else {
            std::fprintf(stderr, "error: %s: unknown option (see --help)\n", a.c_str());
            std::exit(2);
        }
    }
    return o;
}

struct Inputs {
    torch::Tensor u, delta, A, Bm, Cm, D, z, bias, gout;
};

// Leaves with requires_grad, initialised like a Mamba block: A = -(1..N),
// D = 1, a delta bias giving steps in [1e-3, 1e-1] after softplus.
Inputs make_inputs(int64_t B, int64_t L, int64_t E, int64_t N) {
    torch::manual_seed(0);
    Inputs in;
    in.u = torch::randn({B, L, E});
    in.delta = torch::randn({B, L, E}) * 0.1;
    in.A = -torch::arange(1, N + 1, torch::kFloat).repeat({E, 1});
    in.Bm = torch::randn({B, L, N});
    in.Cm = torch::randn({B, L, N});
    in.D = torch::ones({E});
    in.z = torch::randn({B, L, E});
    auto dt = torch::exp(torch::rand({E}) * (std::log(0.1) - std::log(1e-3)) + std::log(1e-3));
    in.bias = dt + torch::log(-torch::expm1(-dt));  // inverse softplus
    in.gout = torch::randn({B, L, E});
    for (auto* t : {&in.u, &in.delta, &in.A, &in.Bm, &in.Cm, &in.D, &in.z, &in.bias}) t->requires_grad_(true);
    return in;
}

void zero_grads(Inputs& in) {
    for (auto* t : {&in.u, &in.delta, &in.A, &in.Bm, &in.Cm, &in.D, &in.z, &in.bias})
        if (t->grad().defined()) t->mutable_grad() = torch::Tensor();
}

using ScanFn = torch::Tensor (*)(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                 const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                 const c10::optional<torch::Tensor>&, const c10::optional<torch::Tensor>&, bool);

double now_ms() {
    using namespace std::chrono;
    return duration<double, std::milli>(steady_clock::now().time_since_epoch()).count();
}

struct Timing {
    double fwd_ms, bwd_ms, total_ms;  // medians of each
};

// One untimed warm-up, then `reps` timed forward+backward runs.
Timing time_fn(ScanFn f, Inputs& in, int reps) {
    std::vector<double> fwd, bwd, tot;
    for (int r = 0; r <= reps; r++) {
        zero_grads(in);
        const double t0 = now_ms();
        auto out = f(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, in.z, in.bias, true);
        const double t1 = now_ms();
        out.backward(in.gout);
        const double t2 = now_ms();
        if (r > 0) fwd.push_back(t1 - t0), bwd.push_back(t2 - t1), tot.push_back(t2 - t0);
    }
    return {median(fwd), median(bwd), median(tot)};
}

// VmHWM / VmRSS of this process in KiB, from /proc/self/status.
long read_status_kib(const char* key) {
    std::ifstream f("/proc/self/status");
    std::string line;
    const size_t n = std::strlen(key);
    while (std::getline(f, line))
        if (line.compare(0, n, key) == 0 && line.size() > n && line[n] == ':') return std::atol(line.c_str() + n + 1);
    return -1;
}

// Resets VmHWM to the current RSS (Linux >= 4.0); false if not possible.
bool reset_peak_rss() {
    std::ofstream f("/proc/self/clear_refs");
    if (!f) return false;
    f << "5";
    f.flush();
    return bool(f);
}

}  // namespace

int main(int argc, char** argv) {
    const Opts o = parse(argc, argv);
    torch::set_num_threads(o.threads);
    if (o.chunk) selective_scan_set_chunk(o.chunk);
    const int64_t E = 128, N = 16;

    std::printf("selective scan, forward + backward, E=%lld N=%lld, z + delta_bias + softplus, float32\n",
                (long long)E, (long long)N);
    std::printf("threads %d (torch::get_num_threads() = %d), checkpoint every %lld steps, median of %d (fused) / %d "
                "(ref) reps\n\n",
                o.threads, torch::get_num_threads(), (long long)selective_scan_chunk(), o.reps, o.ref_reps);

    // Memory first, in a fresh heap: later runs would leave freed memory in
    // the allocator and hide the increase.
    if (!o.skip_mem) {
        const int64_t B = 16, L = 784;
        Inputs in = make_inputs(B, L, E, N);
        const bool ok = reset_peak_rss();
        const long base = read_status_kib("VmHWM");
        {
            auto out = selective_scan(in.u, in.delta, in.A, in.Bm, in.Cm, in.D, in.z, in.bias, true);
            out.backward(in.gout);
        }
        const long peak = read_status_kib("VmHWM");
        const double bleN = double(B) * L * E * N * 4 / (1 << 20), ble = double(B) * L * E * 4 / (1 << 20);
        if (ok && base > 0 && peak > 0) {
            std::printf("peak RSS increase of one fused forward+backward at B=%lld L=%lld: %.1f MiB\n", (long long)B,
                        (long long)L, (peak - base) / 1024.0);
        } else {
            std::printf("peak RSS increase: not measurable here (/proc/self/clear_refs unavailable)\n");
        }
        std::printf("  for scale: one (B,L,E) float tensor = %.1f MiB (out + grads of u, delta, z = 4 of them);\n"
                    "             one (B,L,E,N) tensor = %.1f MiB (the reference materialises several)\n\n",
                    ble, bleN);
    }

    auto table = [&](const char* title) {
        std::printf("%s\n", title);
        std::printf("%5s %5s | %12s %12s | %12s %12s %12s | %8s\n", "B", "L", "ref fwd ms", "ref f+b ms",
                    "fused fwd", "fused bwd", "fused f+b", "speedup");
        std::printf("------------+---------------------------+----------------------------------------+---------\n");
        for (const auto& shape : o.shapes) {
            const int64_t B = shape.first, L = shape.second;
            Inputs in = make_inputs(B, L, E, N);
            const Timing tf = time_fn(selective_scan, in, o.reps);
            if (o.skip_ref) {
                std::printf("%5lld %5lld | %12s %12s | %12.2f %12.2f %12.2f | %8s\n", (long long)B, (long long)L, "-",
                            "-", tf.fwd_ms, tf.bwd_ms, tf.total_ms, "-");
            } else {
                const Timing tr = time_fn(selective_scan_ref, in, o.ref_reps);
                std::printf("%5lld %5lld | %12.2f %12.2f | %12.2f %12.2f %12.2f | %7.1fx\n", (long long)B,
                            (long long)L, tr.fwd_ms, tr.total_ms, tf.fwd_ms, tf.bwd_ms, tf.total_ms,
                            tr.total_ms / tf.total_ms);
            }
            std::fflush(stdout);
        }
        std::printf("\n");
    };
    table("glibc malloc defaults (what ./train gets unless it tunes malloc)");
    if (!o.skip_reuse) {
        // glibc serves blocks above 32 MiB with fresh mmaps, and every first
        // touch of a page is a fault (~2 us each in this VM). The reference
        // allocates several (B, L, E, N) tensors per call, so at L >= 256 it
        // spends most of its time faulting. Keeping freed memory in the heap
        // removes that: the reference's best case, and the fair comparison
        // of the computation itself.
        mallopt(M_MMAP_MAX, 0);
        mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
        table("malloc without mmap, freed memory kept (M_MMAP_MAX=0): the reference's best case");
    }
    return 0;
}
