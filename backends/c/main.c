/* main.c: run N training steps of the generated model on batches from a data file and print
   the loss of each step. No allocation happens inside a step: the parameters (with optimizer
   state) and the arena are static, batches are read once up front.

     ./model STEPS data.bin [-w weights.bin] [-o trained.bin]

   weights.bin: "PKWTS001", u64 byte count, the parameter blob (layout in layout.json).
   data.bin:    "PKDATA01", u64 batches, u64 inputs, u64 bytes per input, then the batches,
                each the train_step inputs back to back. Steps cycle through the batches. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

int main(int argc, char **argv) {
    const char *weights = "weights.bin", *out_path = NULL;
    if (argc < 3) {
        fprintf(stderr, "usage: %s STEPS data.bin [-w weights.bin] [-o trained.bin]\n", argv[0]);
        return 2;
    }
    long steps = strtol(argv[1], NULL, 10);
    const char *data = argv[2];
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-w")) weights = argv[i + 1];
        else if (!strcmp(argv[i], "-o")) out_path = argv[i + 1];
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    if (load_weights(weights)) return 2;

    FILE *f = fopen(data, "rb");
    char magic[8];
    uint64_t nb, ni, bytes[POCK_TRAIN_STEP_N_IN], per_batch = 0;
    if (!f) return fail("cannot open", data);
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, "PKDATA01", 8) || !read_u64(f, &nb) || !read_u64(f, &ni)
        || ni != POCK_TRAIN_STEP_N_IN || nb == 0) {
        fclose(f);
        return fail("not a data file for this model's train_step", data);
    }
    for (uint64_t i = 0; i < ni; i++) {
        if (!read_u64(f, &bytes[i]) || bytes[i] != (uint64_t)pock_train_step_in_bytes[i]) {
            fclose(f);
            return fail("input sizes differ from this model's train_step", data);
        }
        per_batch += bytes[i];
    }
    unsigned char *batches = malloc(nb * per_batch);
    if (!batches || fread(batches, 1, nb * per_batch, f) != nb * per_batch) {
        fclose(f);
        free(batches);
        return fail("truncated", data);
    }
    fclose(f);

    float loss = 0.0f;
    void *out[1] = {&loss};
    void *in[POCK_TRAIN_STEP_N_IN];
    double total = 0.0;
    for (long s = 0; s < steps; s++) {
        unsigned char *b = batches + (s % nb) * per_batch;
        for (uint64_t i = 0; i < ni; i++) { in[i] = b; b += bytes[i]; }
        double t0 = now_ms();
        pock_train_step(P, A, in, out);
        total += now_ms() - t0;
        printf("step %ld loss %.9g\n", s, loss);
    }
    if (steps > 0) fprintf(stderr, "%.3f ms/step\n", total / steps);
    free(batches);
    return out_path ? save_weights(out_path) : 0;
}
