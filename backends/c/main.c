/* main.c: run N training steps of the generated model on batches from a data file and print
   the loss of each step. No allocation happens inside a step: the parameters (with optimizer
   state) and the arena are static, batches are read once up front.

     ./model STEPS data.bin [-w weights.bin] [-o trained.bin]

   weights.bin: "PKWTS001", u64 byte count, the parameter blob (layout in layout.json).
   data.bin:    "PKDATA01", u64 batches, u64 inputs, u64 bytes per input, then the batches,
                each the train_step inputs back to back. Steps cycle through the batches.
   Every size read from a file is checked against this model's sizes and the file's real
   length before anything is allocated or read (a crafted header cannot overflow a
   product), and label inputs (model.h's pock_train_step_in_classes) are checked once
   against their class count. Exit status 2 for a bad file, with a one-line message. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include "model.h"

#if !defined(POCK_HAS_TRAIN_STEP) || POCK_TRAIN_STEP_N_OUT != 1
#error "main.c runs a train_step function that returns the loss alone"
#endif

#if defined(__GNUC__)
#define ALIGN64 __attribute__((aligned(64)))
#else
#define ALIGN64
#endif
static unsigned char P[POCK_PARAMS_BYTES] ALIGN64;
static unsigned char A[POCK_ARENA_BYTES] ALIGN64;

static int fail(const char *what, const char *path) {
    fprintf(stderr, "error: %s: %s\n", path, what);
    return 2;
}

static int read_u64(FILE *f, uint64_t *v) { return fread(v, sizeof *v, 1, f) == 1; }

/* the bytes left in f after the current position, or -1 where it cannot be told */
static int64_t bytes_left(FILE *f) {
    off_t here = ftello(f);
    if (here < 0 || fseeko(f, 0, SEEK_END) != 0) return -1;
    off_t end = ftello(f);
    if (end < here || fseeko(f, here, SEEK_SET) != 0) return -1;
    return (int64_t)(end - here);
}

static int load_weights(const char *path) {
    FILE *f = fopen(path, "rb");
    char magic[8];
    uint64_t n;
    if (!f) return fail("cannot open", path);
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "PKWTS001", 8) || !read_u64(f, &n)) {
        fclose(f);
        return fail("not a pockengine weights file", path);
    }
    if (n != (uint64_t)POCK_PARAMS_BYTES) {
        fclose(f);
        return fail("weights do not match this model's parameter layout", path);
    }
    int64_t left = bytes_left(f);
    if (left >= 0 && (uint64_t)left != n) {
        fclose(f);
        return fail((uint64_t)left < n ? "truncated (shorter than its header says)"
                                       : "longer than its header says (not this model's weights file?)", path);
    }
    if (n && fread(P, 1, n, f) != n) { fclose(f); return fail("truncated", path); }
    fclose(f);
    return 0;
}

static int save_weights(const char *path) {
    char tmp[4096];
    uint64_t n = POCK_PARAMS_BYTES;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return fail("path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return fail("cannot write", tmp);
    int ok = fwrite("PKWTS001", 1, 8, f) == 8 && fwrite(&n, sizeof n, 1, f) == 1 && fwrite(P, 1, n, f) == n;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) { remove(tmp); return fail("cannot write", path); }
    return 0;
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

/* Label inputs hold class indices: each must be the ignore index or in [0, classes). */
static int check_labels(const char *path, const unsigned char *batches, uint64_t nb, uint64_t per_batch) {
#ifdef POCK_TRAIN_STEP_HAS_LABELS
    for (uint64_t b = 0; b < nb; b++) {
        const unsigned char *at = batches + b * per_batch;
        for (int i = 0; i < POCK_TRAIN_STEP_N_IN; i++) {
            long classes = pock_train_step_in_classes[i], size = pock_train_step_in_label_size[i];
            long n = classes > 0 ? pock_train_step_in_bytes[i] / size : 0;
            for (long k = 0; k < n; k++) {
                int64_t v;
                if (size == 8) { memcpy(&v, at + k * 8, 8); }
                else { int32_t w; memcpy(&w, at + k * 4, 4); v = w; }
                if (v != pock_train_step_in_ignore[i] && (v < 0 || v >= classes)) {
                    fprintf(stderr, "error: %s: batch %llu, input %d (labels): label %lld at position %ld is outside "
                            "the valid range [0, %ld) of this model's %ld classes\n", path, (unsigned long long)b, i,
                            (long long)v, k, classes, classes);
                    return 2;
                }
            }
            at += pock_train_step_in_bytes[i];
        }
    }
#else
    (void)path; (void)batches; (void)nb; (void)per_batch;
#endif
    return 0;
}

static void usage(const char *argv0) {
    fprintf(stderr, "usage: %s STEPS data.bin [-w weights.bin] [-o trained.bin]\n", argv0);
}

#ifdef _OPENMP
extern int pock_threads;  /* pock.h: the kernels' thread count (0: OpenMP's default) */
#endif

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);  /* one step line at a time: a log or pipe shows progress */
#ifdef _OPENMP
    const char *threads = getenv("POCK_THREADS");  /* overrides `make THREADS=N` */
    if (threads && *threads) {
        char *tend;
        long t = strtol(threads, &tend, 10);
        if (*tend || t < 1 || t > 4096) {
            fprintf(stderr, "error: POCK_THREADS must be a thread count from 1 to 4096, got '%s'\n", threads);
            return 2;
        }
        pock_threads = (int)t;
    }
#endif
    const char *weights = "weights.bin", *out_path = NULL;
    if (argc < 3) {
        usage(argv[0]);
        return 2;
    }
    char *end;
    errno = 0;
    long steps = strtol(argv[1], &end, 10);
    if (end == argv[1] || *end || errno || steps < 0) {
        fprintf(stderr, "error: STEPS must be a non-negative integer, got '%s'\n", argv[1]);
        return 2;
    }
    const char *data = argv[2];
    for (int i = 3; i < argc; i += 2) {
        if (i + 1 >= argc) { fprintf(stderr, "error: option %s needs a value\n", argv[i]); usage(argv[0]); return 2; }
        if (!strcmp(argv[i], "-w")) weights = argv[i + 1];
        else if (!strcmp(argv[i], "-o")) out_path = argv[i + 1];
        else { fprintf(stderr, "error: unknown option %s\n", argv[i]); usage(argv[0]); return 2; }
    }
    if (load_weights(weights)) return 2;

    FILE *f = fopen(data, "rb");
    char magic[8];
    uint64_t nb, ni, bytes[POCK_TRAIN_STEP_N_IN], per_batch = 0;
    if (!f) return fail("cannot open", data);
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "PKDATA01", 8) || !read_u64(f, &nb) || !read_u64(f, &ni)) {
        fclose(f);
        return fail("not a data file (no PKDATA01 header)", data);
    }
    if (ni != POCK_TRAIN_STEP_N_IN) {
        fclose(f);
        return fail("the number of inputs differs from this model's train_step", data);
    }
    if (nb == 0) {
        fclose(f);
        return fail("holds no batches", data);
    }
    for (uint64_t i = 0; i < ni; i++) {
        /* each size must equal the model's own (a compile-time constant): the sum cannot overflow */
        if (!read_u64(f, &bytes[i]) || bytes[i] != (uint64_t)pock_train_step_in_bytes[i]) {
            fclose(f);
            return fail("input sizes differ from this model's train_step", data);
        }
        per_batch += bytes[i];
    }
    int64_t left = bytes_left(f);
    if (left < 0) { fclose(f); return fail("cannot tell the file's length (not a regular file?)", data); }
    /* nb is compared by division, never multiplied first: a header claiming 2^62 batches fails here */
    uint64_t have = per_batch ? (uint64_t)left / per_batch : nb;
    if (nb > have || (per_batch && (uint64_t)left != nb * per_batch)) {
        fprintf(stderr, "error: %s: the header says %llu batches of %llu bytes, the file holds %lld bytes of batches\n",
                data, (unsigned long long)nb, (unsigned long long)per_batch, (long long)left);
        fclose(f);
        return 2;
    }
    uint64_t total = nb * per_batch;
    if ((uint64_t)(size_t)total != total) { fclose(f); return fail("too large for this machine's address space", data); }
    unsigned char *batches = malloc(total ? (size_t)total : 1);
    if (!batches) { fclose(f); return fail("not enough memory for the batches", data); }
    if (fread(batches, 1, (size_t)total, f) != (size_t)total) {
        fclose(f);
        free(batches);
        return fail("truncated", data);
    }
    fclose(f);
    if (check_labels(data, batches, nb, per_batch)) { free(batches); return 2; }

    float loss = 0.0f;
    void *out[1] = {&loss};
    void *in[POCK_TRAIN_STEP_N_IN];
    double total_ms = 0.0;
    int warned = 0;
    for (long s = 0; s < steps; s++) {
        unsigned char *b = batches + (uint64_t)s % nb * per_batch;
        for (uint64_t i = 0; i < ni; i++) { in[i] = b; b += bytes[i]; }
        double t0 = now_ms();
        pock_train_step(P, A, in, out);
        total_ms += now_ms() - t0;
        printf("step %ld loss %.9g\n", s, loss);
        if (!isfinite(loss) && !warned) {
            fflush(stdout);
            fprintf(stderr, "warning: step %ld: the loss is %s (a NaN or inf in the data or weights, or a "
                    "diverging learning rate); the weights may be non-finite from here on\n", s, isnan(loss) ? "nan" : "inf");
            warned = 1;
        }
    }
    fflush(stdout);  /* the step lines come before the timing line, also when stdout is a pipe */
    if (steps > 0) fprintf(stderr, "%.3f ms/step\n", total_ms / steps);
    free(batches);
    return out_path ? save_weights(out_path) : 0;
}
