// io.h: the engines' file I/O apart from the model itself.
//   input.bin:  raw little-endian float32 pixels in [0,1], image after image,
//               floats_per_image = C*H*W each (docs/FORMAT.md). mmap'd and
//               checked completely (length, NaN/inf, range) before use.
//   outputs:    an [rows][cols] float32 matrix as .npy (NumPy format 1.0) or
//               CSV, written to a temp file, fsync'd, then renamed over the
//               destination, so a reader never sees a half-written file and
//               a failed run leaves none behind.
// Header-only, static inline, C-style, libc + POSIX only; nothing
// architecture-specific (cnn.cpp uses it too). Errors go to err as "<why>";
// callers prefix the file name.
#pragma once
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>  // strcasecmp
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "packed.h"  // packed_err, packed_map_file

// ---------------------------------------------------------------------------
// input.bin

typedef struct {
    const float* data;         // [n_images][floats_per_image]
    int64_t n_images;
    int64_t floats_per_image;
    void* map;                 // mmap base, or NULL
    size_t map_len;
} InputFile;

// Check a whole input buffer: non-empty, a whole number of images, every
// value a finite number in [0, 1]. On success sets *n_images and returns 0.
// bytes must be 4-byte aligned.
static inline int input_validate(const void* bytes, uint64_t size, int64_t floats_per_image,
                                 int64_t* n_images, char* err, size_t errlen) {
    *n_images = 0;
    if (floats_per_image <= 0 || floats_per_image > (int64_t)(UINT64_MAX / 8)) {
        packed_err(err, errlen, "invalid image size %lld floats", (long long)floats_per_image);
        return -1;
    }
    uint64_t image_bytes = (uint64_t)floats_per_image * 4;
    if (size == 0) {
        packed_err(err, errlen, "file is empty (expected images of %llu bytes = %lld float32 pixels each)",
                   (unsigned long long)image_bytes, (long long)floats_per_image);
        return -1;
    }
    if (size % image_bytes != 0) {
        packed_err(err, errlen,
                   "%llu bytes is not a whole number of images (%llu bytes = %lld float32 pixels each)",
                   (unsigned long long)size, (unsigned long long)image_bytes, (long long)floats_per_image);
        return -1;
    }
    if ((uintptr_t)bytes & 3u) {
        packed_err(err, errlen, "input bytes are not 4-byte aligned in memory");
        return -1;
    }
    const float* px = (const float*)bytes;
    uint64_t n = size / 4;
    // Fast pass: count bad values branch-free (vectorises); locate on failure.
    // `v >= 0 && v <= 1` is false for NaN, so NaN counts as bad.
    uint64_t bad = 0;
#pragma omp simd reduction(+ : bad)
    for (uint64_t i = 0; i < n; i++) bad += !(px[i] >= 0.0f && px[i] <= 1.0f);
    if (bad) {
        for (uint64_t i = 0; i < n; i++) {
            float v = px[i];
            if (v >= 0.0f && v <= 1.0f) continue;
            long long img = (long long)(i / (uint64_t)floats_per_image);
            long long at = (long long)(i % (uint64_t)floats_per_image);
            if (isnan(v))
                packed_err(err, errlen, "image %lld, pixel %lld is NaN", img, at);
            else if (isinf(v))
                packed_err(err, errlen, "image %lld, pixel %lld is %s", img, at, v > 0 ? "+inf" : "-inf");
            else
                packed_err(err, errlen, "image %lld, pixel %lld is %.9g, outside [0, 1] (pixels must be scaled to [0,1])",
                           img, at, (double)v);
            return -1;
        }
    }
    *n_images = (int64_t)(size / image_bytes);
    return 0;
}

// mmap and validate input.bin. On failure nothing stays mapped.
static inline int input_open(InputFile* in, const char* path, int64_t floats_per_image, char* err,
                             size_t errlen) {
    memset(in, 0, sizeof *in);
    const uint8_t* bytes;
    uint64_t size;
    void* map;
    size_t map_len;
    if (packed_map_file(path, &bytes, &size, &map, &map_len, err, errlen) != 0) return -1;
    int64_t n;
    if (input_validate(bytes, size, floats_per_image, &n, err, errlen) != 0) {
        packed_unmap_file(map, map_len);
        return -1;
    }
    in->data = (const float*)bytes;
    in->n_images = n;
    in->floats_per_image = floats_per_image;
    in->map = map;
    in->map_len = map_len;
    return 0;
}

// Cap on the probability matrix a CLI run holds and writes, [n_images]
// [n_classes] float32. input.bin sets n_images and the model n_classes, so
// without it a 1-pixel model with 100,000 classes would turn a 40 kB input
// into a 4 GB allocation. 2^26 floats = 256 MiB (as CSV, about 1 GiB).
#define IO_MAX_OUTPUT_FLOATS (1ll << 26)

// 0 if n images x n_classes probabilities fit under IO_MAX_OUTPUT_FLOATS;
// else -1 and err says so (checked before anything is allocated).
static inline int io_check_output_size(int64_t n, int n_classes, char* err, size_t errlen) {
    if (n_classes > 0 && n <= IO_MAX_OUTPUT_FLOATS / n_classes) return 0;
    packed_err(err, errlen, "%lld images x %d classes is more than the %lld probabilities one run writes; split the file",
               (long long)n, n_classes, (long long)IO_MAX_OUTPUT_FLOATS);
    return -1;
}

static inline void input_close(InputFile* in) {
    packed_unmap_file(in->map, in->map_len);
    memset(in, 0, sizeof *in);
}

// ---------------------------------------------------------------------------
// Atomic output files

// Write all n bytes (retrying short writes and EINTR).
static inline int io_write_all(int fd, const void* buf, size_t n) {
    const char* p = (const char*)buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (w == 0) {
            errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

// A growable byte buffer, so a whole output is formatted in memory and hits
// the disk in one checked write.
typedef struct {
    char* p;
    size_t len, cap;
    int failed;  // an allocation failed; later appends are no-ops
} IoBuf;

static inline void io_buf_append(IoBuf* b, const void* data, size_t n) {
    if (b->failed) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        char* np = (char*)realloc(b->p, cap);
        if (!np) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

// 0 if an atomic write may put a file at path: nothing is there, or a
// regular file (or a link to one). Else -1 and err = "not a regular file":
// rename() would put a regular file in place of a FIFO or a device node (as
// root, /dev/null itself) and fails on a directory only after all the work,
// so every writer asks first (the CLIs before they open anything).
static inline int io_check_output_path(const char* path, char* err, size_t errlen) {
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        packed_err(err, errlen, "not a regular file");
        return -1;
    }
    return 0;
}

// The path `path` names, for comparing two paths of which at least one does
// not exist yet: realpath() of its directory (symlinks, "..", "//" resolved)
// + "/" + its last component; `path` itself when the directory cannot be
// resolved. Writes at most n bytes (n >= 2) to buf.
static inline void io_normal_path(const char* path, char* buf, size_t n) {
    const char* slash = strrchr(path, '/');
    char dir[4096];
    size_t dl = slash ? (size_t)(slash - path) : 0;
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
    } else if (dl == 0) {
        snprintf(dir, sizeof dir, "/");
    } else {
        snprintf(dir, sizeof dir, "%.*s", (int)(dl < sizeof dir ? dl : sizeof dir - 1), path);
    }
    char real[4096];
    int k = -1;
    if (dl < sizeof dir && realpath(dir, real))
        k = snprintf(buf, n, "%s/%s", strcmp(real, "/") == 0 ? "" : real, slash ? slash + 1 : path);
    if (k < 0 || (size_t)k >= n) snprintf(buf, n, "%s", path);  // unresolved, or too long to resolve
}

// 1 if paths a and b name the same file: when both exist, the same device
// and inode (a symlink or hard link to the other counts); when neither
// does, the same io_normal_path; else 0.
static inline int io_same_file(const char* a, const char* b) {
    struct stat sa, sb;
    int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    if (ea && eb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    if (ea || eb) return 0;
    char na[4096], nb[4096];
    io_normal_path(a, na, sizeof na);
    io_normal_path(b, nb, sizeof nb);
    return strcmp(na, nb) == 0;
}

// 0 if writing the output `out` (given with `flag`, e.g. "--out") leaves
// every one of the n input paths intact; -1 and err = "<flag> is the same
// file as the input <in> (it would be overwritten)" when it is one of them
// (io_same_file). Every program asks before any work: an atomic write
// renames a new file over the old one, so the input would be lost.
static inline int io_check_not_input(const char* out, const char* flag, const char* const* inputs, int n,
                                     char* err, size_t errlen) {
    for (int i = 0; i < n; i++)
        if (inputs[i] && inputs[i][0] && io_same_file(out, inputs[i])) {
            packed_err(err, errlen, "%s is the same file as the input %s (it would be overwritten)", flag,
                       inputs[i]);
            return -1;
        }
    return 0;
}

// 1 if the existing file or directory `path` lies inside the existing
// directory `dir` (at any depth, after resolving symlinks); else 0 (also
// when either does not exist). A run directory is all output: an input
// kept in it could be replaced by the run.
static inline int io_path_inside(const char* path, const char* dir) {
    char rp[4096], rd[4096];
    if (!realpath(path, rp) || !realpath(dir, rd)) return 0;
    size_t n = strlen(rd);
    if (n == 1) return 1;  // dir is "/"
    return strncmp(rp, rd, n) == 0 && (rp[n] == '/' || rp[n] == 0);
}

// Write n files as one: each bufs[i] to <paths[i]>.tmp.<pid>, fsync'd,
// and only when every one is written, rename each over its path. A failure
// before the renames leaves every path as it was and no temporary file
// behind; *failed = the index of the file that failed (err = its "<why>",
// the caller prefixes paths[*failed]). Refuses a path io_check_output_path
// refuses, before writing anything.
static inline int io_write_files_atomic(int n, const char* const* paths, const void* const* bufs,
                                        const size_t* lens, int* failed, char* err, size_t errlen) {
    *failed = 0;
    for (int i = 0; i < n; i++)
        if (io_check_output_path(paths[i], err, errlen) != 0) {
            *failed = i;
            return -1;
        }
    char** tmps = (char**)calloc((size_t)(n > 0 ? n : 1), sizeof(char*));
    if (!tmps) {
        packed_err(err, errlen, "out of memory");
        return -1;
    }
    int rc = 0, done = 0;  // done: temporary files created
    for (int i = 0; i < n && rc == 0; i++) {
        *failed = i;
        size_t plen = strlen(paths[i]);
        tmps[i] = (char*)malloc(plen + 32);
        if (!tmps[i]) {
            packed_err(err, errlen, "out of memory");
            rc = -1;
            break;
        }
        snprintf(tmps[i], plen + 32, "%s.tmp.%ld", paths[i], (long)getpid());
        int fd = open(tmps[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) {
            packed_err(err, errlen, "cannot create %s: %s", tmps[i], strerror(errno));
            rc = -1;
            break;
        }
        done = i + 1;
        const char* what = NULL;
        int e = 0;
        if (io_write_all(fd, bufs[i], lens[i]) != 0) {
            what = "write";
            e = errno;
        } else if (fsync(fd) != 0) {
            what = "fsync";
            e = errno;
        }
        if (close(fd) != 0 && !what) {
            what = "close";
            e = errno;
        }
        if (what) {
            packed_err(err, errlen, "%s failed: %s", what, strerror(e));
            rc = -1;
        }
    }
    for (int i = 0; i < n && rc == 0; i++) {
        if (rename(tmps[i], paths[i]) != 0) {
            *failed = i;
            packed_err(err, errlen, "rename failed: %s", strerror(errno));
            rc = -1;
            break;
        }
        free(tmps[i]);
        tmps[i] = NULL;
    }
    for (int i = 0; i < done; i++)
        if (tmps[i]) unlink(tmps[i]);
    for (int i = 0; i < n; i++) free(tmps[i]);
    free(tmps);
    return rc;
}

// Write buf to path atomically: path.tmp.<pid>, fsync, rename. Leaves
// nothing behind on failure; refuses a path io_check_output_path refuses.
static inline int io_write_file_atomic(const char* path, const void* buf, size_t n, char* err,
                                       size_t errlen) {
    int failed;
    return io_write_files_atomic(1, &path, &buf, &n, &failed, err, errlen);
}

// data [rows][cols] float32 -> NumPy .npy (format 1.0, '<f4', C order).
static inline int io_write_npy_f32(const char* path, const float* data, int64_t rows, int64_t cols,
                                   char* err, size_t errlen) {
    char dict[160];
    int dl = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                      (long long)rows, (long long)cols);
    // magic(6) + version(2) + header_len(2) + dict + spaces + '\n', to a
    // multiple of 64 as NumPy writes it.
    size_t total = (size_t)(10 + dl + 1 + 63) / 64 * 64;
    uint16_t hlen = (uint16_t)(total - 10);
    char head[256];
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (char)(hlen & 0xff);
    head[9] = (char)(hlen >> 8);
    memcpy(head + 10, dict, (size_t)dl);
    memset(head + 10 + dl, ' ', total - 10 - (size_t)dl - 1);
    head[total - 1] = '\n';
    IoBuf b = {NULL, 0, 0, 0};
    io_buf_append(&b, head, total);
    io_buf_append(&b, data, (size_t)(rows * cols) * 4);  // little-endian host
    int rc;
    if (b.failed) {
        packed_err(err, errlen, "out of memory");
        rc = -1;
    } else {
        rc = io_write_file_atomic(path, b.p, b.len, err, errlen);
    }
    free(b.p);
    return rc;
}

// data [rows][cols] -> CSV: one row per line, no header, %.9g (round-trips).
static inline int io_write_csv_f32(const char* path, const float* data, int64_t rows, int64_t cols,
                                   char* err, size_t errlen) {
    IoBuf b = {NULL, 0, 0, 0};
    char num[32];
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < cols; c++) {
            int k = snprintf(num, sizeof num, "%s%.9g", c ? "," : "", (double)data[r * cols + c]);
            io_buf_append(&b, num, (size_t)k);
        }
        io_buf_append(&b, "\n", 1);
    }
    int rc;
    if (b.failed) {
        packed_err(err, errlen, "out of memory");
        rc = -1;
    } else {
        rc = io_write_file_atomic(path, b.p, b.len, err, errlen);
    }
    free(b.p);
    return rc;
}

// .csv (any case: .CSV, .Csv) -> CSV, anything else -> .npy
static inline int io_write_matrix(const char* path, const float* data, int64_t rows, int64_t cols, char* err,
                                  size_t errlen) {
    size_t n = strlen(path);
    if (n >= 4 && strcasecmp(path + n - 4, ".csv") == 0) return io_write_csv_f32(path, data, rows, cols, err, errlen);
    return io_write_npy_f32(path, data, rows, cols, err, errlen);
}
