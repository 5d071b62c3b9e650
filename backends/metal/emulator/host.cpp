/* The Metal host's job done on the CPU, for checking the generated MSL where no Apple GPU
   exists: the same schedule.h tables as metal_host.mm (kernel, buffer bindings at byte
   offsets into the parameter buffer P and the arena A, the scalar block, threadgroup
   lengths, threadgroups x threads per threadgroup), each launch run over its whole grid.
   A threadgroup's work-items that reach barriers run as fibers (ucontext): each runs to its
   next barrier, and the group moves on when all are there; a work-item that finishes while
   others wait at a barrier is a divergent barrier (undefined in Metal) and fails the run.
   A SIMD-group matrix operation (emulator/metal_simdgroup_matrix) is a meeting point of the
   32 lanes of its SIMD-group (lanes 32s..32s+31 of the threadgroup's linear thread index):
   when every lane of the SIMD-group has reached one, it is checked to be the same operation
   with the same arguments and operands on every lane, done once, and each lane resumes with
   the result; a SIMD-group some of whose lanes wait at a SIMD-group operation while others
   wait at a barrier or have ended is divergent use and fails the run, as do partial
   SIMD-groups and operands outside the launch's threadgroup memory.
   Between meeting points the work-items run one after another, in thread order, or in reverse
   order when built with -DPK_EMU_REVERSE (threadgroups too): a missing barrier shows in one order or the other
   when one work-item reads what another writes (a read before the write sees stale data).
   Threadgroup memory is filled with 0xff (NaN) before each group: Metal leaves it
   uninitialized. Included by emu_model.cpp after schedule.h, model.metal and the stubs. */
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ucontext.h>

static struct {
    unsigned char *P, *A;
    int open, failed, reverse;
    char error[512];
} pk;

static int pk_fail(const char *what) {
    if (!pk.failed) snprintf(pk.error, sizeof pk.error, "metal emulator: %s", what);
    pk.failed = 1;
    return -1;
}

enum { PK_RUNNING = 0, PK_AT_BARRIER = 1, PK_DONE = 2, PK_AT_SIMD = 3 };
enum { PK_SIMD_WIDTH = 32 }; /* threadExecutionWidth of Apple GPUs; metal_host.mm checks it */
struct pk_fiber {
    ucontext_t ctx;
    int state;
    pk_ids id;
    const metal::pk_simd_call *call; /* while PK_AT_SIMD */
};
static ucontext_t pk_main_ctx;
static pk_fiber *pk_fibers;
static char *pk_stacks;
static size_t pk_nfibers;
static const size_t PK_STACK = 256 * 1024;
static int pk_cur = -1;  /* the running fiber, -1: none (a barrier-free kernel runs inline) */
static struct { pk_kernel_fn fn; unsigned char *const *b; const unsigned char *s; unsigned char *const *tg; } pk_job;

void pk_emu_barrier(int flags) {
    (void)flags;
    if (pk_cur < 0) {
        pk_fail("a barrier in a kernel the schedule marks barrier-free");
        return;
    }
    pk_fiber *f = &pk_fibers[pk_cur];
    f->state = PK_AT_BARRIER;
    swapcontext(&f->ctx, &pk_main_ctx);
}

void pk_emu_simdgroup(const metal::pk_simd_call &call) {
    if (pk_cur < 0) {
        pk_fail("a SIMD-group operation in a kernel the schedule marks barrier-free");
        return;
    }
    pk_fiber *f = &pk_fibers[pk_cur];
    f->call = &call;
    f->state = PK_AT_SIMD;
    swapcontext(&f->ctx, &pk_main_ctx);
}

/* the current launch's threadgroup arrays, for bounds checks of SIMD-group loads and stores */
static struct { unsigned char *at[4]; unsigned len[4]; int n; } pk_tg;

static int pk_in_threadgroup(const float *base, const metal::pk_simd_call *c) {
    const unsigned char *lo = (const unsigned char *)(base + c->row * c->elements_per_row + c->col);
    const unsigned char *hi = (const unsigned char *)(base + (c->row + 7) * c->elements_per_row + c->col + 8);
    for (int t = 0; t < pk_tg.n; t++)
        if (lo >= pk_tg.at[t] && hi <= pk_tg.at[t] + pk_tg.len[t]) return 1;
    return 0;
}

/* one SIMD-group operation, all lanes [first, first + n) at it: checked uniform, done once */
static int pk_simd_exec(size_t first, size_t n) {
    using namespace metal;
    static const char *names[] = {"make_filled_simdgroup_matrix", "simdgroup_load", "simdgroup_store",
                                  "simdgroup_multiply_accumulate"};
    const pk_simd_call *c = pk_fibers[first].call;
    char what[160];
    for (size_t t = first + 1; t < first + n; t++) {
        const pk_simd_call *o = pk_fibers[t].call;
        int same = o->op == c->op && o->mem == c->mem && o->elements_per_row == c->elements_per_row &&
                   o->col == c->col && o->row == c->row && o->transpose == c->transpose &&
                   memcmp(&o->value, &c->value, sizeof c->value) == 0;
        for (int i = 0; same && i < 3; i++) {
            const simdgroup_float8x8 *x = i == 0 ? o->a : i == 1 ? o->b : o->c, *y = i == 0 ? c->a : i == 1 ? c->b : c->c;
            same = (!x && !y) || (x && y && memcmp(x->e, y->e, sizeof x->e) == 0);
        }
        if (!same) {
            snprintf(what, sizeof what, "non-uniform SIMD-group operation: lane %zu at %s, lane %zu at %s with other "
                     "arguments or operands", first, names[c->op], t, names[o->op]);
            return pk_fail(what);
        }
    }
    if (c->transpose) return pk_fail("a transposed simdgroup_load/store: outside what the emulator models");
    if ((c->op == PK_SIMD_LOAD || c->op == PK_SIMD_STORE) && !pk_in_threadgroup(c->mem, c))
        return pk_fail("a simdgroup_load/store outside the launch's threadgroup memory");
    simdgroup_float8x8 r;
    switch (c->op) {
    case PK_SIMD_FILL:
        for (int i = 0; i < 64; i++) r.e[i] = c->value;
        break;
    case PK_SIMD_LOAD:
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 8; j++) r.e[i * 8 + j] = c->mem[(c->row + i) * c->elements_per_row + c->col + j];
        break;
    case PK_SIMD_STORE:
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 8; j++) c->mem[(c->row + i) * c->elements_per_row + c->col + j] = c->a->e[i * 8 + j];
        return 0;
    default: /* d = a * b + c */
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 8; j++) {
                float s = c->c->e[i * 8 + j];
                for (int k = 0; k < 8; k++) s += c->a->e[i * 8 + k] * c->b->e[k * 8 + j];
                r.e[i * 8 + j] = s;
            }
    }
    for (size_t t = first; t < first + n; t++) memcpy(pk_fibers[t].call->d->e, r.e, sizeof r.e);
    return 0;
}

/* after every fiber has stopped: run the SIMD-group operations that all their lanes reached;
   1 if one ran, 0 if none is pending, -1 on divergent or partial use */
static int pk_simdgroups(size_t per) {
    int ran = 0;
    for (size_t s = 0; s < per; s += PK_SIMD_WIDTH) {
        size_t width = PK_SIMD_WIDTH, n = per - s < width ? per - s : width, at = 0;
        for (size_t t = s; t < s + n; t++) at += pk_fibers[t].state == PK_AT_SIMD;
        if (!at) continue;
        if (n < width) return pk_fail("a SIMD-group operation in a partial SIMD-group (threads per threadgroup not a multiple of 32)");
        if (at != n) return pk_fail("divergent SIMD-group operation: some lanes of a SIMD-group wait at it while others are at a barrier or ended");
        if (pk_simd_exec(s, n)) return -1;
        for (size_t t = s; t < s + n; t++) pk_fibers[t].state = PK_RUNNING;
        ran = 1;
    }
    return ran;
}

static void pk_fiber_main() {
    pk_fiber *f = &pk_fibers[pk_cur];
    pk_job.fn(pk_job.b, pk_job.s, pk_job.tg, &f->id);
    f->state = PK_DONE;
}

static int pk_fibers_for(size_t n) {
    if (n <= pk_nfibers) return 0;
    free(pk_fibers);
    free(pk_stacks);
    pk_fibers = (pk_fiber *)calloc(n, sizeof(pk_fiber));
    pk_stacks = (char *)malloc(n * PK_STACK);
    pk_nfibers = pk_fibers && pk_stacks ? n : 0;
    return pk_nfibers ? 0 : pk_fail("out of memory for the work-item fibers");
}

static int pk_launch_one(const pk_launch *l) {
    const pk_kernel_info *ki = &pk_kernel_infos[l->fn];
    unsigned char *b[32];
    for (int j = 0; j < l->nbind; j++) {
        const pk_binding *g = &pk_bindings[l->first_binding + j];
        long long size = g->buf == 0 ? PK_PARAMS_BYTES : PK_DEVICE_BYTES;
        if (g->offset < 0 || g->offset > size) return pk_fail("a binding offset lies outside its buffer");
        b[j] = (g->buf == 0 ? pk.P : pk.A) + g->offset;
    }
    static unsigned char tgmem[4][1 << 16] __attribute__((aligned(16)));
    unsigned char *tg[4];
    unsigned tg_total = 0;
    for (int t = 0; t < ki->ntg; t++) {
        tg_total += ki->tg[t];
        tg[t] = tgmem[t];
        pk_tg.at[t] = tgmem[t];
        pk_tg.len[t] = ki->tg[t];
    }
    pk_tg.n = ki->ntg;
    if (tg_total > 32768) return pk_fail("threadgroup memory over Metal's 32 KiB");
    pk_job.fn = pk_kernel_fns[l->fn];
    pk_job.b = b;
    pk_job.s = pk_scalars + l->scalar_offset;
    pk_job.tg = tg;
    const unsigned *G = l->groups, *L = l->local;
    size_t per = (size_t)L[0] * L[1] * L[2];
    if (per == 0 || per > 1024) return pk_fail("threads per threadgroup outside 1..1024");
    if (ki->barrier && pk_fibers_for(per)) return -1;
    uint3 ng = {G[0], G[1], G[2]}, ls = {L[0], L[1], L[2]};
    size_t ngroups = (size_t)G[0] * G[1] * G[2];
    for (size_t gi = 0; gi < ngroups; gi++) {
        size_t g = pk.reverse ? ngroups - 1 - gi : gi; /* threadgroups may run in any order */
        unsigned gx = (unsigned)(g % G[0]), gy = (unsigned)(g / G[0] % G[1]), gz = (unsigned)(g / ((size_t)G[0] * G[1]));
        uint3 grp = {gx, gy, gz};
        for (int t = 0; t < ki->ntg; t++) memset(tgmem[t], 0xff, ki->tg[t]);
        for (size_t i = 0; i < per; i++) {
            size_t n = pk.reverse && !ki->barrier ? per - 1 - i : i; /* n: the linear thread index */
            unsigned lx = (unsigned)(n % L[0]), ly = (unsigned)(n / L[0] % L[1]), lz = (unsigned)(n / ((size_t)L[0] * L[1]));
            pk_ids id = {{gx * L[0] + lx, gy * L[1] + ly, gz * L[2] + lz}, {lx, ly, lz}, grp, ls, ng,
                         (unsigned)(n / PK_SIMD_WIDTH)};
            if (!ki->barrier) {
                pk_job.fn(b, pk_job.s, tg, &id);
                continue;
            }
            pk_fiber *f = &pk_fibers[n];
            f->id = id;
            f->state = PK_RUNNING;
            getcontext(&f->ctx);
            f->ctx.uc_stack.ss_sp = pk_stacks + n * PK_STACK;
            f->ctx.uc_stack.ss_size = PK_STACK;
            f->ctx.uc_link = &pk_main_ctx;
            makecontext(&f->ctx, pk_fiber_main, 0);
        }
        if (!ki->barrier) continue;
        for (;;) {
            for (size_t i = 0; i < per; i++) {
                size_t t = pk.reverse ? per - 1 - i : i;
                if (pk_fibers[t].state != PK_RUNNING) continue;
                pk_cur = (int)t;
                swapcontext(&pk_main_ctx, &pk_fibers[t].ctx);
                pk_cur = -1;
            }
            int simd = pk_simdgroups(per);
            if (simd < 0) return -1;
            if (simd) continue;
            size_t done = 0;
            for (size_t t = 0; t < per; t++) done += pk_fibers[t].state == PK_DONE;
            if (done == per) break;
            if (done) return pk_fail("divergent barrier: some work-items of a threadgroup ended while others wait");
            for (size_t t = 0; t < per; t++) pk_fibers[t].state = PK_RUNNING; /* all at the barrier */
        }
        if (pk.failed) return -1;
    }
    return pk.failed ? -1 : 0;
}

extern "C" int pock_device_open(void) {
    if (pk.open) return 0;
    if (pk.failed) return -1;
    pk.P = (unsigned char *)calloc(1, (size_t)PK_PARAMS_BYTES);
    pk.A = (unsigned char *)calloc(1, (size_t)PK_DEVICE_BYTES);
    if (!pk.P || !pk.A) return pk_fail("out of memory for the buffers");
    memcpy(pk.A + PK_IMAGE_OFFSET, pk_image, (size_t)PK_IMAGE_BYTES);
#ifdef PK_EMU_REVERSE
    pk.reverse = 1;
#endif
    pk.open = 1;
    return 0;
}

extern "C" int pock_device_write_params(const unsigned char *P) {
    if (pock_device_open()) return -1;
    memcpy(pk.P, P, (size_t)PK_PARAMS_BYTES);
    return 0;
}

extern "C" int pock_device_read_params(unsigned char *P) {
    if (pock_device_open()) return -1;
    memcpy(P, pk.P, (size_t)PK_PARAMS_BYTES);
    return 0;
}

extern "C" const char *pock_device_error(void) { return pk.failed ? pk.error : NULL; }

extern "C" void pock_device_close(void) {
    if (!pk.open) return;
    free(pk.P);
    free(pk.A);
    pk.P = pk.A = NULL;
    pk.open = 0;
}

static void pk_run(int f, const unsigned char *P, void *const *in, void *const *out) {
    if (!pk.open && (pock_device_open() || pock_device_write_params(P))) return;
    if (pk.failed) return;
    const pk_function *fn = &pk_functions[f];
    for (int i = 0; i < fn->nin; i++) {
        const pk_copy *c = &pk_copies[fn->first_in + i];
        memcpy(pk.A + c->offset, in[i], (size_t)c->bytes);
    }
    for (int i = fn->first_launch; i < fn->first_launch + fn->nlaunch; i++)
        if (pk_launch_one(&pk_launches[i])) return;
    for (int i = 0; i < fn->nout; i++) {
        const pk_copy *c = &pk_copies[fn->first_out + i];
        memcpy(out[i], pk.A + c->offset, (size_t)c->bytes);
    }
}
