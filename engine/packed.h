// packed.h: open a packed model file (engine/format.h, docs/FORMAT.md) and
// find its tensors by name. Shared by every engine (mamba.cpp, cnn.cpp), so
// nothing here knows about any one architecture: it checks what every model
// file must satisfy, and each engine then checks its own kind, dimensions
// and tensor names/shapes through packed_tensor().
//
// Header-only, static inline, C-style: libc + POSIX mmap, no STL (C++17 for
// the shared mapping registry's inline variables).
//
//   PackedFile pf;
//   char err[256];
//   if (packed_open(&pf, "model.bin", err, sizeof err) != 0) { report err }
//   uint32_t shape[2] = {64, 16};
//   const float* w = packed_tensor(&pf, "embed.weight", 2, shape, err, sizeof err);
//   ...
//   packed_close(&pf);
//
// Error strings are "<why>" without the file name; callers prefix the path.
#pragma once
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"

// Caps every reader enforces before trusting the table (docs/FORMAT.md).
#define PACKED_MAX_TENSORS 4096u
#define PACKED_MAX_DIM 0x7fffffffu  // one dimension, so it fits an int

// A validated model file. header/table point into the bytes (mmap'd or the
// caller's buffer); they are only non-NULL after packed_validate succeeded.
typedef struct {
    const uint8_t* bytes;          // the whole file
    uint64_t size;                 // its length in bytes
    const MmiaHeader* header;      // = bytes
    const MmiaTensorEntry* table;  // [n_tensors], right after the header
    uint32_t n_tensors;
    void* map;                     // mmap base to munmap, or NULL (memory)
    size_t map_len;
} PackedFile;

// snprintf into err if there is room; every error path uses it.
static inline void packed_err(char* err, size_t errlen, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void packed_err(char* err, size_t errlen, const char* fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static inline uint64_t packed_align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Bytes per block of packed_validate's single pass over the data: small
// enough to stay in L1/L2 between the checksum and the finiteness scan, a
// multiple of 8 so the blockwise checksum equals the one-shot one.
#define PACKED_BLOCK_BYTES 32768u

// Floats among n (4-byte aligned, little-endian f32) that are NaN or +-inf:
// exponent bits all ones. Integer test, so no compiler flag can drop it.
static inline uint64_t packed_count_nonfinite(const uint8_t* p, uint64_t n) {
    uint64_t bad = 0;
#pragma omp simd reduction(+ : bad)
    for (uint64_t i = 0; i < n; i++) {
        uint32_t w;
        memcpy(&w, p + 4 * i, 4);
        bad += (w & 0x7f800000u) == 0x7f800000u;
    }
    return bad;
}

// "NaN", "+inf" or "-inf" for a non-finite v (error messages).
static inline const char* packed_nonfinite_str(float v) {
    return isnan(v) ? "NaN" : v > 0 ? "+inf" : "-inf";
}

// qsort comparators over arrays of entry pointers (no context needed).
static inline int packed_cmp_name(const void* a, const void* b) {
    const MmiaTensorEntry* x = *(const MmiaTensorEntry* const*)a;
    const MmiaTensorEntry* y = *(const MmiaTensorEntry* const*)b;
    return strncmp(x->name, y->name, MMIA_NAME_BYTES);
}
static inline int packed_cmp_offset(const void* a, const void* b) {
    const MmiaTensorEntry* x = *(const MmiaTensorEntry* const*)a;
    const MmiaTensorEntry* y = *(const MmiaTensorEntry* const*)b;
    return (x->offset > y->offset) - (x->offset < y->offset);
}

// Validate a whole model file held in memory: header (its floats finite),
// every table entry, the checksum, and every tensor element finite (one
// pass over the data for the last two). Nothing in the file is trusted
// before this returns 0.
// bytes must be 8-byte aligned (mmap gives a page; malloc gives 16) so the
// header, the table and the 64-byte-aligned tensor data can be used in place.
// On success fills pf (map = NULL: the caller owns the bytes); on failure
// writes the reason to err and returns -1.
static inline int packed_validate(PackedFile* pf, const void* data, uint64_t size, char* err,
                                  size_t errlen) {
    memset(pf, 0, sizeof *pf);
    const uint8_t* p = (const uint8_t*)data;
    if (size == 0) {
        packed_err(err, errlen, "file is empty");
        return -1;
    }
    if (!p || ((uintptr_t)p & 7u)) {
        packed_err(err, errlen, "model bytes are not 8-byte aligned in memory");
        return -1;
    }
    if (size < MMIA_HEADER_BYTES) {
        packed_err(err, errlen, "file is %llu bytes, too small for the %u-byte header (truncated?)",
                   (unsigned long long)size, MMIA_HEADER_BYTES);
        return -1;
    }
    const MmiaHeader* h = (const MmiaHeader*)p;
    if (memcmp(h->magic, MMIA_MAGIC, 8) != 0) {
        packed_err(err, errlen, "not a packed model file (bad magic; expected \"%s\")", MMIA_MAGIC);
        return -1;
    }
    if (h->version != MMIA_FORMAT_VERSION) {
        packed_err(err, errlen, "unsupported format version %u (this reader knows version %u)",
                   h->version, MMIA_FORMAT_VERSION);
        return -1;
    }
    if (h->file_bytes != size) {
        packed_err(err, errlen, "header says %llu bytes but the file has %llu (%s)",
                   (unsigned long long)h->file_bytes, (unsigned long long)size,
                   h->file_bytes > size ? "truncated" : "trailing bytes");
        return -1;
    }
    // The header's floats (per-channel mean/std, the kind's fp slots; unused
    // ones are 0): every engine would carry a NaN or inf here into every
    // output, so no kind may have one.
    for (int i = 0; i < 16; i++) {
        const float v = i < 4 ? h->in_mean[i] : i < 8 ? h->in_std[i - 4] : h->fp[i - 8];
        if (!isfinite(v)) {
            packed_err(err, errlen, "header field %s[%d] is %s (header floats must be finite)",
                       i < 4 ? "in_mean" : i < 8 ? "in_std" : "fp", i < 4 ? i : i < 8 ? i - 4 : i - 8,
                       packed_nonfinite_str(v));
            return -1;
        }
    }
    uint32_t n = h->n_tensors;
    if (n == 0 || n > PACKED_MAX_TENSORS) {
        packed_err(err, errlen, "tensor count %u outside 1..%u", n, PACKED_MAX_TENSORS);
        return -1;
    }
    // n <= 4096 so none of this overflows.
    uint64_t table_end = (uint64_t)MMIA_HEADER_BYTES + (uint64_t)MMIA_TENSOR_ENTRY_BYTES * n;
    uint64_t data_start = packed_align_up(table_end, MMIA_ALIGN);
    if (table_end > size) {
        packed_err(err, errlen, "tensor table (%u entries, ends at byte %llu) runs past the end of the file",
                   n, (unsigned long long)table_end);
        return -1;
    }
    const MmiaTensorEntry* table = (const MmiaTensorEntry*)(p + MMIA_HEADER_BYTES);

    for (uint32_t i = 0; i < n; i++) {
        const MmiaTensorEntry* e = &table[i];
        if (!memchr(e->name, 0, MMIA_NAME_BYTES)) {
            packed_err(err, errlen, "tensor %u: name is not NUL-terminated within %u bytes", i,
                       MMIA_NAME_BYTES);
            return -1;
        }
        if (e->name[0] == 0) {
            packed_err(err, errlen, "tensor %u: empty name", i);
            return -1;
        }
        for (const char* c = e->name; *c; c++) {
            if (*c < 0x21 || *c > 0x7e) {  // names go into error messages: printable only
                packed_err(err, errlen, "tensor %u: name has a non-printable byte 0x%02x", i,
                           (unsigned)(unsigned char)*c);
                return -1;
            }
        }
        if (e->dtype != MMIA_DTYPE_F32) {
            packed_err(err, errlen, "tensor '%s': unknown dtype %u (only 0 = f32)", e->name, e->dtype);
            return -1;
        }
        if (e->ndim < 1 || e->ndim > 4) {
            packed_err(err, errlen, "tensor '%s': ndim %u outside 1..4", e->name, e->ndim);
            return -1;
        }
        // Element count, overflow-safe: stop as soon as it exceeds what the
        // file could hold (a product of four 32-bit dims can overflow 64 bits).
        uint64_t nel = 1;
        for (uint32_t d = 0; d < 4; d++) {
            uint32_t s = e->shape[d];
            if (d < e->ndim) {
                if (s == 0 || s > PACKED_MAX_DIM) {
                    packed_err(err, errlen, "tensor '%s': dimension %u is %u (must be 1..%u)", e->name,
                               d, s, PACKED_MAX_DIM);
                    return -1;
                }
                if (nel > size / 4 / s) {
                    packed_err(err, errlen, "tensor '%s': shape has more elements than the file holds",
                               e->name);
                    return -1;
                }
                nel *= s;
            } else if (s != 1) {
                packed_err(err, errlen, "tensor '%s': unused dimension %u is %u (must be 1)", e->name,
                           d, s);
                return -1;
            }
        }
        if (e->nbytes != nel * 4) {
            packed_err(err, errlen, "tensor '%s': nbytes %llu but shape implies %llu", e->name,
                       (unsigned long long)e->nbytes, (unsigned long long)(nel * 4));
            return -1;
        }
        if (e->offset % MMIA_ALIGN) {
            packed_err(err, errlen, "tensor '%s': offset %llu is not %u-byte aligned", e->name,
                       (unsigned long long)e->offset, MMIA_ALIGN);
            return -1;
        }
        if (e->offset < data_start) {
            packed_err(err, errlen, "tensor '%s': offset %llu overlaps the header or tensor table (data starts at %llu)",
                       e->name, (unsigned long long)e->offset, (unsigned long long)data_start);
            return -1;
        }
        // nbytes <= size was implied by nel <= size/4; compare without adding.
        if (e->offset > size || e->nbytes > size - e->offset) {
            packed_err(err, errlen, "tensor '%s': bytes [%llu, +%llu) lie outside the %llu-byte file",
                       e->name, (unsigned long long)e->offset, (unsigned long long)e->nbytes,
                       (unsigned long long)size);
            return -1;
        }
    }

    // Duplicate names and overlapping data: sort pointers, compare neighbours.
    const MmiaTensorEntry** sorted = (const MmiaTensorEntry**)malloc(sizeof(*sorted) * n);
    if (!sorted) {
        packed_err(err, errlen, "out of memory validating the tensor table");
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) sorted[i] = &table[i];
    qsort(sorted, n, sizeof(*sorted), packed_cmp_name);
    for (uint32_t i = 1; i < n; i++) {
        if (strncmp(sorted[i - 1]->name, sorted[i]->name, MMIA_NAME_BYTES) == 0) {
            packed_err(err, errlen, "tensor '%s' appears twice in the table", sorted[i]->name);
            free(sorted);
            return -1;
        }
    }
    qsort(sorted, n, sizeof(*sorted), packed_cmp_offset);
    for (uint32_t i = 1; i < n; i++) {
        const MmiaTensorEntry* a = sorted[i - 1];
        const MmiaTensorEntry* b = sorted[i];
        if (a->offset + a->nbytes > b->offset) {  // both in range: no overflow
            packed_err(err, errlen, "tensors '%s' and '%s' overlap", a->name, b->name);
            free(sorted);
            return -1;
        }
    }

    // Last, so a corrupt table is reported as what it is; the checksum then
    // catches flipped bits inside tensor data, which no other check can.
    // The same pass counts the non-finite floats of every tensor (one read
    // of the file: block by block, each block checksummed and scanned while
    // it is in cache), so a NaN or inf weight, which would turn every
    // output into NaN, is refused here for every model kind.
    uint64_t sum = MMIA_CHECKSUM_INIT, bad = 0;
    uint32_t t = 0;  // first tensor (offset order) not wholly before the block
    for (uint64_t a = MMIA_HEADER_BYTES; a < size; a += PACKED_BLOCK_BYTES) {
        const uint64_t z = size - a < PACKED_BLOCK_BYTES ? size : a + PACKED_BLOCK_BYTES;
        sum = mmia_checksum_update(sum, p + a, z - a);  // every block but the last: a multiple of 8
        while (t < n && sorted[t]->offset + sorted[t]->nbytes <= a) t++;
        for (uint32_t j = t; j < n && sorted[j]->offset < z; j++) {
            const uint64_t lo = sorted[j]->offset > a ? sorted[j]->offset : a;
            const uint64_t e = sorted[j]->offset + sorted[j]->nbytes, hi = e < z ? e : z;
            if (hi > lo) bad += packed_count_nonfinite(p + lo, (hi - lo) / 4);
        }
    }
    if (sum != h->checksum) {
        packed_err(err, errlen, "checksum mismatch (file is corrupted: stored %016llx, computed %016llx)",
                   (unsigned long long)h->checksum, (unsigned long long)sum);
        free(sorted);
        return -1;
    }
    if (bad) {  // rare: find the first one, in file order, to name it
        for (uint32_t j = 0; j < n; j++) {
            const float* v = (const float*)(p + sorted[j]->offset);
            for (uint64_t i = 0; i < sorted[j]->nbytes / 4; i++) {
                if (isfinite(v[i])) continue;
                packed_err(err, errlen, "tensor '%s': element %llu is %s (weights must be finite numbers)",
                           sorted[j]->name, (unsigned long long)i, packed_nonfinite_str(v[i]));
                free(sorted);
                return -1;
            }
        }
    }
    free(sorted);

    pf->bytes = p;
    pf->size = size;
    pf->header = h;
    pf->table = table;
    pf->n_tensors = n;
    return 0;
}

// ---------------------------------------------------------------------------
// A mapped file that shrinks while in use
//
// Touching a page of a file mapping that lies past the file's current end
// raises SIGBUS, so another process truncating a model (or input.bin, or a
// --score file) while an engine reads it would kill the engine with a
// signal. The engines keep the mmap (the design: weights used in place,
// shared with the page cache; reading each file into private memory instead
// would give every process its own resident copy of each model and input)
// and turn that signal into the error every other bad file gets:
//   - packed_map_file registers each live mapping (address range + the
//     error line, formatted then, since a handler may not call printf) and
//     packed_unmap_file removes it before munmap;
//   - the first mapping installs packed_sigbus_handler (sigaction, chained
//     to the handler it replaces). A SIGBUS whose address lies in a
//     registered mapping writes that line to stderr and _exit(1)s: write()
//     and _exit() are async-signal-safe, and the line names the file.
//     Any other SIGBUS goes to the previous handler (by default the signal
//     kills the process, as it would without this).
// A file that grows while mapped changes nothing: the mapping keeps the
// length fstat gave, which the header's file_bytes and the checksum were
// checked against. A file rewritten in place at the same size is not
// noticed (its pages change under the mapping); every writer in this
// project replaces files by rename, which leaves a live mapping on the old
// file. docs/BAD_INPUT.md, "Model files".
//
// The registry is shared by every translation unit (C++17 inline
// variables: one instance across mamba_lib.o, cnn_lib.o, ...), lock-free:
// a slot is claimed by compare-and-swap, filled, then published (state 2)
// with a release store that the handler reads with an acquire load.

#define PACKED_MAX_MAPS 64        // mappings live at once (bin/attack holds 1-2)
#define PACKED_MAP_LINE_BYTES 1024  // the pre-formatted error line, '\n' included

typedef struct {
    int state;       // 0 free, 1 being filled or emptied, 2 live
    uintptr_t base;  // [base, base + len): the mapping
    size_t len;
    size_t line_len;
    char line[PACKED_MAP_LINE_BYTES];
} PackedMapSlot;

inline PackedMapSlot packed_map_slots[PACKED_MAX_MAPS];
// Set by a program that streams text to stdout (the LM engines' -i) while a
// line is open there, everything written flushed: the SIGBUS handler then
// ends that line before its error, so the error stands on its own line.
inline volatile sig_atomic_t packed_stdout_line_open = 0;
inline int packed_sigbus_state = 0;  // 0 not installed, 1 installing, 2 installed
inline struct sigaction packed_sigbus_previous;

// The SIGBUS handler: async-signal-safe calls only (write, _exit, sigaction).
static inline void packed_sigbus_handler(int sig, siginfo_t* info, void* ctx) {
    const uintptr_t a = (uintptr_t)info->si_addr;
    for (int i = 0; i < PACKED_MAX_MAPS; i++) {
        PackedMapSlot* s = &packed_map_slots[i];
        if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) != 2) continue;
        if (a - s->base < s->len) {  // unsigned: a >= base && a < base + len
            if (packed_stdout_line_open) {
                ssize_t n = write(1, "\n", 1);
                (void)n;
            }
            ssize_t w = write(2, s->line, s->line_len);
            (void)w;  // nothing more can be done about a failed write here
            _exit(1);
        }
    }
    // Not one of ours: the previous handler's business. A synchronous
    // SIGBUS re-faults when the handler returns, so restoring the default
    // action and returning ends the process with the signal, as before.
    const struct sigaction* old = &packed_sigbus_previous;
    if ((old->sa_flags & SA_SIGINFO) && old->sa_sigaction) {
        old->sa_sigaction(sig, info, ctx);
    } else if (!(old->sa_flags & SA_SIGINFO) && old->sa_handler != SIG_DFL && old->sa_handler != SIG_IGN) {
        old->sa_handler(sig);
    } else {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGBUS, &dfl, NULL);
    }
}

// Install the handler once per process (the first caller; others wait).
static inline int packed_sigbus_install(char* err, size_t errlen) {
    int expect = 0;
    if (__atomic_compare_exchange_n(&packed_sigbus_state, &expect, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = packed_sigbus_handler;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGBUS, &sa, &packed_sigbus_previous) != 0) {
            packed_err(err, errlen, "cannot install the SIGBUS handler: %s", strerror(errno));
            __atomic_store_n(&packed_sigbus_state, 0, __ATOMIC_RELEASE);
            return -1;
        }
        __atomic_store_n(&packed_sigbus_state, 2, __ATOMIC_RELEASE);
        return 0;
    }
    while (__atomic_load_n(&packed_sigbus_state, __ATOMIC_ACQUIRE) == 1) sched_yield();
    if (__atomic_load_n(&packed_sigbus_state, __ATOMIC_ACQUIRE) == 2) return 0;
    return packed_sigbus_install(err, errlen);  // the other caller failed: try ourselves
}

// Register [base, base + len) of file `path`; 0, or -1 and err.
static inline int packed_map_register(const void* base, size_t len, const char* path, char* err, size_t errlen) {
    if (packed_sigbus_install(err, errlen) != 0) return -1;
    for (int i = 0; i < PACKED_MAX_MAPS; i++) {
        PackedMapSlot* s = &packed_map_slots[i];
        int expect = 0;
        if (!__atomic_compare_exchange_n(&s->state, &expect, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) continue;
        s->base = (uintptr_t)base;
        s->len = len;
        int n = snprintf(s->line, sizeof s->line,
                         "error: %s: the file shrank while in use (truncated or rewritten in place by another process)\n", path);
        if (n < 0 || (size_t)n >= sizeof s->line) {  // a path of ~900+ bytes: keep the line one line
            memcpy(s->line + sizeof s->line - 5, "...\n", 5);
            n = (int)sizeof s->line - 1;
        }
        s->line_len = (size_t)n;
        __atomic_store_n(&s->state, 2, __ATOMIC_RELEASE);
        return 0;
    }
    packed_err(err, errlen, "more than %d files mapped at once", PACKED_MAX_MAPS);
    return -1;
}

// munmap a mapping from packed_map_file (NULL: nothing), after forgetting it.
static inline void packed_unmap_file(void* map, size_t map_len) {
    if (!map) return;
    for (int i = 0; i < PACKED_MAX_MAPS; i++) {
        PackedMapSlot* s = &packed_map_slots[i];
        if (__atomic_load_n(&s->state, __ATOMIC_ACQUIRE) == 2 && s->base == (uintptr_t)map) {
            __atomic_store_n(&s->state, 1, __ATOMIC_RELEASE);
            s->base = 0;
            s->len = 0;
            __atomic_store_n(&s->state, 0, __ATOMIC_RELEASE);
            break;
        }
    }
    munmap(map, map_len);
}

// mmap a file read-only (whole length, no copy), registered as above. Shared
// by model and input readers; free it with packed_unmap_file. Empty files
// are fine here (callers give the error): *out = NULL.
static inline int packed_map_file(const char* path, const uint8_t** out, uint64_t* size, void** map,
                                  size_t* map_len, char* err, size_t errlen) {
    *out = NULL;
    *size = 0;
    *map = NULL;
    *map_len = 0;
    // O_NONBLOCK: open() of a FIFO with no writer would otherwise wait
    // forever (and a device's open may too); the file type is checked right
    // after, so nothing but a regular file is ever read, and mmap ignores
    // the flag.
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        packed_err(err, errlen, "cannot open: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        packed_err(err, errlen, "cannot stat: %s", strerror(errno));
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        packed_err(err, errlen, "not a regular file");
        close(fd);
        return -1;
    }
    if (st.st_size > 0) {
        if ((uint64_t)st.st_size > (uint64_t)SIZE_MAX) {
            packed_err(err, errlen, "file too large to map");
            close(fd);
            return -1;
        }
        void* m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            packed_err(err, errlen, "cannot mmap: %s", strerror(errno));
            close(fd);
            return -1;
        }
        if (packed_map_register(m, (size_t)st.st_size, path, err, errlen) != 0) {
            munmap(m, (size_t)st.st_size);
            close(fd);
            return -1;
        }
        *map = m;
        *map_len = (size_t)st.st_size;
        *out = (const uint8_t*)m;
        *size = (uint64_t)st.st_size;
    }
    close(fd);  // the mapping stays valid without the descriptor
    return 0;
}

// Open and validate a model file. On failure nothing stays mapped.
static inline int packed_open(PackedFile* pf, const char* path, char* err, size_t errlen) {
    memset(pf, 0, sizeof *pf);
    const uint8_t* bytes;
    uint64_t size;
    void* map;
    size_t map_len;
    if (packed_map_file(path, &bytes, &size, &map, &map_len, err, errlen) != 0) return -1;
    if (packed_validate(pf, bytes, size, err, errlen) != 0) {
        packed_unmap_file(map, map_len);
        return -1;
    }
    pf->map = map;
    pf->map_len = map_len;
    return 0;
}

// Unmap (if packed_open mapped it) and forget. Safe on a zeroed PackedFile.
static inline void packed_close(PackedFile* pf) {
    packed_unmap_file(pf->map, pf->map_len);
    memset(pf, 0, sizeof *pf);
}

// Index of the entry called name, or -1.
static inline int packed_find(const PackedFile* pf, const char* name) {
    for (uint32_t i = 0; i < pf->n_tensors; i++)
        if (strncmp(pf->table[i].name, name, MMIA_NAME_BYTES) == 0) return (int)i;
    return -1;
}

// Format a shape as "[a, b, c]" for error messages.
static inline void packed_shape_str(char* buf, size_t len, uint32_t ndim, const uint32_t* shape) {
    size_t at = 0;
    buf[0] = 0;
    for (uint32_t d = 0; d < ndim && at < len; d++) {
        int w = snprintf(buf + at, len - at, "%s%u", d ? ", " : "[", shape[d]);
        if (w < 0) return;
        at += (size_t)w;
    }
    if (at < len) snprintf(buf + at, len - at, "]");
}

// The f32 data of tensor `name`, which must have exactly this shape.
// NULL (and err) if it is missing or shaped differently.
static inline const float* packed_tensor(const PackedFile* pf, const char* name, uint32_t ndim,
                                         const uint32_t* shape, char* err, size_t errlen) {
    int i = packed_find(pf, name);
    if (i < 0) {
        packed_err(err, errlen, "missing tensor '%s'", name);
        return NULL;
    }
    const MmiaTensorEntry* e = &pf->table[i];
    int same = e->ndim == ndim;
    for (uint32_t d = 0; same && d < ndim; d++) same = e->shape[d] == shape[d];
    if (!same) {
        char got[96], want[96];
        packed_shape_str(got, sizeof got, e->ndim, e->shape);
        packed_shape_str(want, sizeof want, ndim, shape);
        packed_err(err, errlen, "tensor '%s' has shape %s, expected %s", name, got, want);
        return NULL;
    }
    return (const float*)(pf->bytes + e->offset);
}
