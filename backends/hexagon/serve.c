/* serve.c: the emulated device's side of backends/hexagon/device.py. A long-lived
   program (under qemu-hexagon) that owns the parameter blob and the arena and runs the
   model's functions on request, over stdin/stdout:

     hello (serve → host)  "PKSRV001", u32 params bytes, u32 arena bytes, u32 functions
     'W' + blob            replace the parameter blob              → 'k'
     'R'                   read it                                 → 'k' + blob
     'C' + u32 f + inputs  run function f (inputs back to back)    → 'k' + outputs back to back
     'T'                   profile: milliseconds per step slot     → 'k' + u32 n + n doubles
     'Q'                   exit

   The sizes are the model's own (model.h, functions.c), so no message carries one the
   serve side would have to trust. Anything else read is a protocol error: exit status 3.
   This is the role FastRPC plays on a phone: the application processor keeps the weights
   in a buffer shared with the DSP and invokes the step function there (docs/backend.md). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "functions.h"

long pk_read(int fd, void *buf, size_t n);
long pk_write(int fd, const void *buf, size_t n);

static unsigned char P[POCK_PARAMS_BYTES] __attribute__((aligned(128)));
static unsigned char A[POCK_ARENA_BYTES] __attribute__((aligned(128)));

#ifdef PK_PROFILE
double *pock_profile(void);
#endif

static void get(void *p, size_t n) {
    if (pk_read(0, p, n) != (long)n) exit(3);
}

static void put(const void *p, size_t n) {
    if (pk_write(1, p, n) != (long)n) exit(3);
}

int main(void) {
    uint32_t hello[3] = {(uint32_t)POCK_PARAMS_BYTES, (uint32_t)POCK_ARENA_BYTES, (uint32_t)PK_N_FUNCTIONS};
    put("PKSRV001", 8);
    put(hello, sizeof hello);
    /* one buffer for every function's inputs and one for its outputs, sized for the largest */
    size_t in_max = 1, out_max = 1;
    for (int f = 0; f < PK_N_FUNCTIONS; f++) {
        size_t ni = 0, no = 0;
        for (int i = 0; i < pk_functions[f].n_in; i++) ni += (size_t)pk_functions[f].in_bytes[i];
        for (int i = 0; i < pk_functions[f].n_out; i++) no += (size_t)pk_functions[f].out_bytes[i];
        in_max = ni > in_max ? ni : in_max;
        out_max = no > out_max ? no : out_max;
    }
    unsigned char *ins = malloc(in_max), *outs = malloc(out_max);
    if (!ins || !outs) return 4;
    for (;;) {
        char cmd;
        if (pk_read(0, &cmd, 1) != 1) return 0;  /* the host closed the pipe */
        if (cmd == 'Q') return 0;
        if (cmd == 'W') {
            get(P, sizeof P);
            put("k", 1);
        } else if (cmd == 'R') {
            put("k", 1);
            put(P, sizeof P);
        } else if (cmd == 'C') {
            uint32_t f;
            get(&f, 4);
            if (f >= PK_N_FUNCTIONS) return 3;
            const pk_function *fn = &pk_functions[f];
            void *in[PK_MAX_ARGS + 1], *out[PK_MAX_ARGS + 1];
            size_t at = 0;
            for (int i = 0; i < fn->n_in; i++) in[i] = ins + at, at += (size_t)fn->in_bytes[i];
            get(ins, at);
            size_t ot = 0;
            for (int i = 0; i < fn->n_out; i++) out[i] = outs + ot, ot += (size_t)fn->out_bytes[i];
            fn->run(P, A, in, out);
            put("k", 1);
            put(outs, ot);
        } else if (cmd == 'T') {
#ifdef PK_PROFILE
            uint32_t n = PK_PROFILE_SLOTS_TOTAL;
            put("k", 1);
            put(&n, 4);
            put(pock_profile(), n * sizeof(double));
#else
            return 3;
#endif
        } else {
            return 3;
        }
    }
}
