// cli.h: the command line every engine shares (./mamba, ./cnn):
//
//   ./<engine> model.bin input.bin [--quiet | --probs] [--out FILE] [--threads N]
//
// An engine describes itself in an EngineCli (its name and five calls into
// its library API) and its main() is engine_cli_main(). Parsing, the
// input.bin checks, the output lines and the atomic --out file live here
// once, so the engines cannot drift apart.
//
// Header-only, static inline, C-style: libc (+ OpenMP when compiled with it).
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "batch.h"  // ENGINE_ERR_*, engine_first_nonfinite
#include "io.h"

typedef struct {
    const char* name;  // program name: "mamba" -> "./mamba" in messages
    const char* kind;  // the model kind in the usage text: "Mamba"
    void* model;       // the engine's model struct (MambaModel, CnnModel)
    int (*open)(void* model, const char* path, char* err, size_t errlen);  // err = "<path>: <why>"
    void (*close)(void* model);
    int64_t (*image_floats)(const void* model);
    int (*n_classes)(const void* model);
    int (*forward_probs)(const void* model, const float* images, int64_t n, float* probs);
} EngineCli;

static inline void engine_cli_usage(const EngineCli* e) {
    printf("usage: ./%s model.bin input.bin [flags]\n"
           "\n"
           "Classify the images in input.bin (raw float32 pixels in [0,1], C*H*W per\n"
           "image, any number of images) with the %s model in model.bin.\n"
           "\n"
           "flags:\n"
           "  --quiet        print only the predicted class, one per line\n"
           "  --probs        print each image's probability vector (space-separated)\n"
           "  --out FILE     also write all probability vectors, float32 [n, n_classes],\n"
           "                 as .npy (or CSV if FILE ends in .csv, any case), atomically\n"
           "  --threads N    OpenMP threads (default: all cores)\n"
           "  --help         this text\n"
           "\n"
           "Default output: one line per image, 'Predicted class: K with probability: P'.\n"
           "Errors: 'error: <what>: <why>' on stderr, exit 1 (2 for usage errors).\n",
           e->name, e->kind);
}

static inline int engine_cli_usage_error(const EngineCli* e, const char* fmt, const char* arg) {
    fprintf(stderr, "error: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see ./%s --help)\n", e->name);
    return 2;
}

// The whole program: returns main's exit code (0 ok, 1 bad file or I/O, 2 usage).
static inline int engine_cli_main(int argc, char** argv, const EngineCli* e) {
    const char* model_path = NULL;
    const char* input_path = NULL;
    const char* out_path = NULL;
    int quiet = 0, probs_mode = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char* a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            engine_cli_usage(e);
            return 0;
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(a, "--probs") == 0) {
            probs_mode = 1;
        } else if (strcmp(a, "--out") == 0) {
            if (i + 1 >= argc) return engine_cli_usage_error(e, "%s: missing FILE", a);
            if (out_path) return engine_cli_usage_error(e, "%s: given twice (give it once)", a);
            out_path = argv[++i];
        } else if (strcmp(a, "--threads") == 0) {
            if (i + 1 >= argc) return engine_cli_usage_error(e, "%s: missing N", a);
            if (threads) return engine_cli_usage_error(e, "%s: given twice (give it once)", a);
            char* end;
            const char* v = argv[++i];
            long t = strtol(v, &end, 10);
            if (*v == 0 || *end != 0 || t < 1 || t > 1024)
                return engine_cli_usage_error(e, "--threads: '%s' is not a thread count in 1..1024", v);
            threads = (int)t;
        } else if (a[0] == '-' && a[1] != 0) {
            return engine_cli_usage_error(e, "unknown flag '%s'", a);
        } else if (!model_path) {
            model_path = a;
        } else if (!input_path) {
            input_path = a;
        } else {
            return engine_cli_usage_error(e, "unexpected extra argument '%s'", a);
        }
    }
    if (!model_path || !input_path)
        return engine_cli_usage_error(e, "%s", "missing arguments: need model.bin and input.bin");
    if (quiet && probs_mode) return engine_cli_usage_error(e, "%s", "--quiet and --probs cannot be combined");
#ifdef _OPENMP
    if (threads > 0) omp_set_num_threads(threads);
#else
    (void)threads;  // serial build: one thread whatever is asked
#endif

    char err[512];
    const char* inputs[2] = {model_path, input_path};
    if (out_path && (io_check_output_path(out_path, err, sizeof err) != 0 ||  // before any work
                     io_check_not_input(out_path, "--out", inputs, 2, err, sizeof err) != 0)) {
        fprintf(stderr, "error: %s: %s\n", out_path, err);
        return 1;
    }
    if (e->open(e->model, model_path, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        return 1;
    }
    InputFile in;
    if (input_open(&in, input_path, e->image_floats(e->model), err, sizeof err) != 0) {
        fprintf(stderr, "error: %s: %s\n", input_path, err);
        e->close(e->model);
        return 1;
    }
    const int nc = e->n_classes(e->model);
    const int64_t n = in.n_images;
    if (io_check_output_size(n, nc, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s: %s\n", input_path, err);
        input_close(&in);
        e->close(e->model);
        return 1;
    }
    float* probs = (float*)malloc((size_t)n * (size_t)nc * sizeof(float));
    int rc = 0;
    int frc = probs ? e->forward_probs(e->model, in.data, n, probs) : ENGINE_ERR_NOMEM;
    // A non-finite probability is an error, never a printed "nan": checked
    // here too, whatever the engine's forward call returned.
    int64_t bad = frc == ENGINE_OK ? engine_first_nonfinite(probs, n * nc) : -1;
    if (frc == ENGINE_ERR_NONFINITE || bad >= 0) {
        if (bad < 0) bad = engine_first_nonfinite(probs, n * nc);
        fprintf(stderr, "error: %s: image %lld: the model's output is not finite (NaN or inf: float32 overflow inside the %s model)\n",
                input_path, (long long)(bad < 0 ? 0 : bad / nc), e->kind);
        rc = 1;
    } else if (frc != ENGINE_OK) {
        fprintf(stderr, "error: %s: out of memory for %lld images\n", input_path, (long long)n);
        rc = 1;
    }
    // The output file first: if it fails, the run failed and stdout stays empty.
    if (rc == 0 && out_path && io_write_matrix(out_path, probs, n, nc, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s: %s\n", out_path, err);
        rc = 1;
    }
    for (int64_t i = 0; rc == 0 && i < n; i++) {
        const float* p = probs + i * nc;
        if (probs_mode) {
            for (int k = 0; k < nc; k++) printf(k ? " %.6f" : "%.6f", (double)p[k]);
            putchar('\n');
            continue;
        }
        int best = 0;
        for (int k = 1; k < nc; k++)
            if (p[k] > p[best]) best = k;
        if (quiet)
            printf("%d\n", best);
        else
            printf("Predicted class: %d with probability: %f\n", best, (double)p[best]);
    }
    if (rc == 0 && (fflush(stdout) != 0 || ferror(stdout))) {
        fprintf(stderr, "error: stdout: write failed\n");
        rc = 1;
    }
    free(probs);
    input_close(&in);
    e->close(e->model);
    return rc;
}
