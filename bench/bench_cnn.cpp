// bench_cnn: the CNN engine against LibTorch on the same checkpoint, same
// thread count, same run (`make bench` calls it).
//
//   bin/bench_cnn --checkpoint CKPT --model MODEL.bin [--threads 2] [--reps 5] [--data-dir DIR]
//
// 1. Batch throughput on the 10,000 CIFAR-10 test images: LibTorch eval-mode,
//    no-grad forward (batches of 1000; its convolutions use oneDNN/OpenBLAS)
//    vs cnn_forward_logits; median of --reps runs each; images/s and ratio.
// 2. The engine's GEMM (cnn_gemm: kernels.h's k_gemm_packed as compiled into
//    the engine, what each conv layer runs per image, one thread) in GFLOP/s beside OpenBLAS's cblas_sgemm on the
//    same shapes, also one thread, both checked against a double-precision
//    dot product. OpenBLAS is linked into this program only; it prints the
//    kernel OpenBLAS chose (openblas_get_corename). scripts/bench.sh runs
//    this program with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, so the
//    baseline runs its own best kernels for this CPU.
// 3. This core's fp32 peak, measured: 12 independent FMA chains (AVX-512,
//    16 lanes, and AVX2, 8 lanes) on one thread; each GEMM's GFLOP/s is also
//    given as a fraction of the AVX-512 peak.
#include <CLI/CLI.hpp>
#include <omp.h>
#include <torch/torch.h>

#include <immintrin.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "bench/bench_peak.h"
#include "bench/bench_util.h"
#include "common/data.h"
#include "engine/cnn.h"
#include "engine/kernels.h"
#include "train/cnn_model.h"
#include "train/trainer.h"

using namespace mmia;

// OpenBLAS's CBLAS entry points (libopenblas0 ships no header).
extern "C" {
void cblas_sgemm(int order, int trans_a, int trans_b, int m, int n, int k, float alpha, const float* a, int lda,
                 const float* b, int ldb, float beta, float* c, int ldc);
void openblas_set_num_threads(int n);
char* openblas_get_corename(void);
char* openblas_get_config(void);
}
enum { kCblasRowMajor = 101, kCblasNoTrans = 111 };

// out[O][T] = W[O][I] X[I][T] both ways; returns {engine, openblas} GFLOP/s.
static std::pair<double, double> gemm_gflops(int O, int I, int T, int reps) {
    std::mt19937 g(1);
    std::uniform_real_distribution<float> d(-1, 1);
    std::vector<float> w(size_t(O) * I), x(size_t(I) * T), xp(k_im2col_packed_floats(I, T), 0.0f);
    std::vector<float> out(size_t(O) * T), ref(size_t(O) * T);
    for (auto& v : w) v = d(g);
    for (auto& v : x) v = d(g);
    for (int t = 0; t < T; t++)  // X into the engine's panel layout
        for (int i = 0; i < I; i++)
            xp[(size_t(t / K_GEMM_NR) * I + i) * K_GEMM_NR + t % K_GEMM_NR] = x[size_t(i) * T + t];
    const double flops = 2.0 * O * I * T;
    // enough calls per timing that one lasts ~20 ms
    // ~5 ms per timing at 100 GFLOP/s; the fastest of 3 * reps timings
    // (a kernel's speed, as for the peak: on a shared machine a median
    // measures the other jobs).
    const int inner = std::max(1, int(0.005 * 100e9 / flops));
    reps = 3 * reps;
    double t_engine = min_seconds(reps, [&] {
        for (int k = 0; k < inner; k++) cnn_gemm(out.data(), w.data(), xp.data(), nullptr, O, I, T);
    });
    double t_blas = min_seconds(reps, [&] {
        for (int k = 0; k < inner; k++)
            cblas_sgemm(kCblasRowMajor, kCblasNoTrans, kCblasNoTrans, O, T, I, 1.0f, w.data(), I, x.data(), T, 0.0f,
                        ref.data(), T);
    });
    // Both against the double-precision product: a baseline that computes
    // the wrong thing fast must not pass as a fast baseline.
    const double e_engine = gemm_rel_error(out, w, x, O, I, T), e_blas = gemm_rel_error(ref, w, x, O, I, T);
    const double tol = 4.0 * I * 5.96e-8;  // a few units of fp32 rounding per term
    if (!(e_engine <= tol) || !(e_blas <= tol))
        throw std::runtime_error("GEMM " + std::to_string(O) + "x" + std::to_string(I) + "x" + std::to_string(T) +
                                 " differs from the double-precision product: engine " + std::to_string(e_engine) +
                                 ", openblas " + std::to_string(e_blas) + " (relative to sum |w x|)");
    return {flops * inner / t_engine / 1e9, flops * inner / t_blas / 1e9};
}

int main(int argc, char** argv) {
    CLI::App app{"CNN engine vs LibTorch benchmark (CIFAR-10 test set), and the engine GEMM vs OpenBLAS."};
    std::string ckpt, model_bin, data_dir;
    int threads = 2, reps = 5;
    app.add_option("--checkpoint", ckpt, "CNN checkpoint from bin/train (CIFAR-10)")->required();
    app.add_option("--model", model_bin, "the same model, exported")->required();
    app.add_option("--data-dir", data_dir, "directory holding CIFAR-10 (default: the usual places)");
    app.add_option("--threads", threads, "threads for both sides")->check(CLI::Range(1, 256));
    app.add_option("--reps", reps, "timed repetitions")->check(CLI::Range(1, 1000));
    CLI11_PARSE(app, argc, argv);

    try {
        torch::set_num_threads(threads);
        omp_set_num_threads(threads);
        Dataset d = load_dataset("cifar10", data_dir);
        auto images = images_to_tensor(d.test).contiguous();
        auto labels = labels_to_tensor(d.test);
        const int64_t n = images.size(0);

        json meta;
        CnnClassifier model = load_cnn_checkpoint(ckpt, &meta);
        model->eval();
        torch::Tensor torch_out;
        double t_torch = median_seconds(reps, [&] {
            torch_out = predict_logits(*model, [&](const torch::Tensor& x) { return model->forward(x); }, images, 1000);
        });

        CnnModel m;
        char err[512];
        if (cnn_open(&m, model_bin.c_str(), err, sizeof err) != 0) throw std::runtime_error(err);
        auto engine_out = torch::empty({n, cnn_n_classes(&m)});
        double t_engine = median_seconds(reps, [&] {
            if (cnn_forward_logits(&m, images.data_ptr<float>(), n, engine_out.data_ptr<float>()) != 0)
                throw std::runtime_error("engine: out of memory");
        });
        double max_diff = (torch_out - engine_out).abs().max().item<double>();
        std::printf("batch throughput, CIFAR-10 test set (%lld images), preset %s, %d threads, median of %d:\n",
                    (long long)n, meta.value("preset", "?").c_str(), threads, reps);
        std::printf("  libtorch eval forward : %9.0f images/s  (%.3f s)  acc %.4f\n", n / t_torch, t_torch,
                    accuracy(torch_out, labels));
        std::printf("  engine (cnn.cpp)      : %9.0f images/s  (%.3f s)  acc %.4f\n", n / t_engine, t_engine,
                    accuracy(engine_out, labels));
        std::printf("  engine / libtorch     : %9.2fx   (max |logit diff| %.2e)\n", t_torch / t_engine, max_diff);

        openblas_set_num_threads(1);
        const char* ct = std::getenv("OPENBLAS_CORETYPE");
        std::printf("openblas: kernel %s, config %s, OPENBLAS_CORETYPE %s\n", openblas_get_corename(),
                    openblas_get_config(), ct ? ct : "unset");
        const double peak512 = __builtin_cpu_supports("avx512f") ? best_of_bursts(peak_avx512_gflops) : 0.0;
        const double peak256 = __builtin_cpu_supports("avx2") ? best_of_bursts(peak_avx2_gflops) : 0.0;
        std::printf("measured fp32 peak, one thread, 12 FMA chains: AVX-512 %.1f GFLOP/s, AVX2 %.1f GFLOP/s\n",
                    peak512, peak256);
        const double peak = peak512 > 0 ? peak512 : peak256;
        std::printf("conv GEMMs of this model, one thread, out[O][T] = W[O][I] X[I][T], checked against double:\n");
        for (int l = 0; l < m.n_layers; l++) {
            const CnnLayerRun& L = m.layers[l];
            if (L.op != MMIA_CNN_CONV) continue;
            const int O = L.out_c, I = L.in_c * L.kernel * L.kernel, T = L.out_h * L.out_w;
            auto [eng, blas] = gemm_gflops(O, I, T, reps);
            std::printf("  layer %d  O %4d  I %4d  T %5d : engine %6.1f GFLOP/s (%3.0f%% of peak)  openblas sgemm %6.1f "
                        "GFLOP/s (%3.0f%%)  (%.2fx)\n",
                        l, O, I, T, eng, 100 * eng / peak, blas, 100 * blas / peak, eng / blas);
        }
        cnn_close(&m);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return 0;
}
