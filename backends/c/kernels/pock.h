/* pock.h: what every pockengine kernel shares. The generated model.c includes this once,
   then the kernels the program uses (kernels/<op>.c), then the step functions.
   Kernels are `static` so the compiler can specialize them for the constant shapes
   each call passes. Indices are `long`: 64-bit on LP64 targets, 32-bit on ILP32 ones (Hexagon), where the
   memory plan is checked to fit the address space at compile time. */
#ifndef POCK_H
#define POCK_H
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <math.h>

#if defined(__GNUC__)
#define PK_INLINE static inline __attribute__((always_inline))
#define PK_ALIGNED(n) __attribute__((aligned(n)))
#define PK_NOINLINE __attribute__((noinline))
#else
#define PK_NOINLINE
#define PK_INLINE static inline
#define PK_ALIGNED(n)
#endif
#define PK_UNUSED(x) (void)(x)

#define PK_PRAGMA(x) _Pragma(#x)
/* Threads (issue 19): built with -fopenmp, a kernel's outer loop over parts of its output
   (GEMM column panels, conv images/channels, rows of a row kernel, a map's outer index) runs
   on `pk_threads()` threads when its work `cond` is at least PK_PAR_MIN, else serial. Each
   thread owns whole output elements and computes each exactly as the serial loop does, so
   results are bitwise the same at every thread count. libgomp keeps its threads between
   regions (a pool): a region costs a wake-up, not a thread start. Maps and pools split their
   outer loop over a serial function (PK_SPLIT: an omp loop's outlined body loses restrict);
   GEMM and the convolutions run one region per block (PK_REGION), each thread packing and
   computing its own panels. pock_threads (0: OpenMP's
   default, OMP_NUM_THREADS else all cores) is set by the Device (pockengine.compile(threads=N))
   or main.c (POCK_THREADS, `make THREADS=N`); weak, so every object defining it shares one. */
#ifndef PK_PAR_MIN
#define PK_PAR_MIN 32768        /* elements of a row kernel or map */
#endif
#ifndef PK_PAR_GEMM_MIN
#define PK_PAR_GEMM_MIN 65536   /* multiply-adds of a GEMM block */
#endif
#ifdef _OPENMP
#include <omp.h>
#ifndef PK_THREADS
#define PK_THREADS 0
#endif
#if defined(__GNUC__)
__attribute__((weak)) int pock_threads = PK_THREADS;
#else
static int pock_threads = PK_THREADS;
#endif
PK_INLINE int pk_threads(void) { return pock_threads > 0 ? pock_threads : omp_get_max_threads(); }
#define PK_PARALLEL_FOR(cond) PK_PRAGMA(omp parallel for schedule(static) if(cond) num_threads(pk_threads()))
/* `stmt` on ranges [lo, hi) of 0..n, one per thread, when `cond` (else once on all of it): the
   work is a call of a serial function, so the compiler sees its restrict parameters (an omp
   parallel loop's body is outlined with its operands in a struct, restrict lost). */
#define PK_SPLIT(n, cond, lo, hi, stmt) do { \
    long pk_n_ = (n); \
    if ((cond) && pk_threads() > 1) { \
        PK_PRAGMA(omp parallel num_threads(pk_threads())) \
        { \
            long pk_t_ = omp_get_thread_num(), pk_nt_ = omp_get_num_threads(); \
            long lo = pk_n_ * pk_t_ / pk_nt_, hi = pk_n_ * (pk_t_ + 1) / pk_nt_; \
            if (hi > lo) { stmt; } \
        } \
    } else { long lo = 0, hi = pk_n_; stmt; } \
} while (0)
/* A parallel region (one fork/join for a kernel's packing, products and epilogues), its
   barriers, and this thread's share [lo, hi) of n items (the same split for every loop of
   the region: a thread uses only what it packed itself, no barrier between). */
#define PK_REGION(cond) PK_PRAGMA(omp parallel if(cond) num_threads(pk_threads()))
/* at most n threads: a kernel with n per-thread workspace slots (pk_thread() picks one) */
#define PK_REGION_N(cond, n) PK_PRAGMA(omp parallel if(cond) num_threads(pk_threads() < (n) ? pk_threads() : (n)))
PK_INLINE long pk_thread(void) { return omp_get_thread_num(); }
#define PK_BARRIER PK_PRAGMA(omp barrier)
#define PK_SINGLE PK_PRAGMA(omp single)
PK_INLINE void pk_share(long n, long *lo, long *hi) {
    long t = omp_get_thread_num(), nt = omp_get_num_threads();
    *lo = n * t / nt;
    *hi = n * (t + 1) / nt;
}
#else
PK_INLINE int pk_threads(void) { return 1; }
#define PK_PARALLEL_FOR(cond)
#define PK_REGION(cond)
#define PK_REGION_N(cond, n)
PK_INLINE long pk_thread(void) { return 0; }
#define PK_BARRIER
#define PK_SINGLE
PK_INLINE void pk_share(long n, long *lo, long *hi) { *lo = 0; *hi = n; }
#define PK_SPLIT(n, cond, lo, hi, stmt) do { long lo = 0, hi = (n); stmt; } while (0)
#endif
/* A sum the compiler may vectorize (reassociate) although -ffast-math is off: needs
   -fopenmp-simd (the targets pass it); other compilers ignore the pragma. */
#define PK_SIMD_SUM(v) PK_PRAGMA(omp simd reduction(+:v))

/* An int64 index or label as a `long` index: the same on LP64; on ILP32 targets (Hexagon)
   a value beyond 32 bits becomes LONG_MIN, which every kernel treats as out of range (a
   truncation could alias a valid row or class, or the ignore index). */
#if __SIZEOF_LONG__ >= 8
#define pk_index(v) ((long)(v))
#else
PK_INLINE long pk_index(int64_t v) { return v < -0x7fffffffLL - 1 || v > 0x7fffffffLL ? -0x7fffffffL - 1 : (long)v; }
#endif
PK_INLINE long pk_min(long a, long b) { return a < b ? a : b; }
/* numpy's floor division for integers (C's / truncates toward zero) */
PK_INLINE int64_t pk_floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (q * b != a && ((a < 0) != (b < 0))) ? q - 1 : q;
}
PK_INLINE long pk_max(long a, long b) { return a > b ? a : b; }

/* Branch-free float math, so elementwise loops vectorize without -ffast-math (libm's expf
   and erff stop GCC's vectorizer). Rules that keep them vectorizable: clamp through the
   float's bits with integer min/max (a float select against a constant is split by jump
   threading into two paths the vectorizer refuses), no libm calls but fmaf, no branches.
   Selects are fragile: `c ? a | b : a` vectorizes where `(c ? b : a) | s` does not;
   tests/backends/test_math.py checks that each function's loop vectorizes.
   pk_fmaf is one rounding where the target has FMA (x86 with -mfma, every aarch64) and
   a*b+c otherwise: -std=c99 turns off GCC's own contraction. */
#if defined(__FP_FAST_FMAF)
#define pk_fmaf(a, b, c) fmaf(a, b, c)
#else
#define pk_fmaf(a, b, c) ((a) * (b) + (c))
#endif
typedef union { float f; uint32_t u; int32_t i; } pk_bits;

/* exp(x): relative error below 2 ulp on [-87.3, 88.72] (tested: 1 ulp); 0 where e^x is
   below 2^-126 (no denormals) and for -inf; +inf above ln(FLT_MAX) and for +inf; NaN stays
   NaN. Cephes' expf: x = k ln2 + r, |r| <= ln2/2, e^r by a degree-6 polynomial, 2^k through
   the exponent bits. */
PK_INLINE float pk_expf(float x) {
    /* x clamped to [-100, 89] on its bits: as unsigned integers negative floats grow with
       their magnitude (-inf the largest), as signed ones positive floats grow. */
    pk_bits c, in;
    in.f = x;
    c.u = in.u < 0xC2C80000u ? in.u : 0xC2C80000u;  /* -100 */
    c.i = c.i < 0x42B20000 ? c.i : 0x42B20000;      /* +89 (as signed: negatives stay) */
    x = c.f;
    /* k = round(x / ln2) by the 1.5 * 2^23 trick: the sum's low mantissa bits are k */
    pk_bits t;
    t.f = pk_fmaf(x, 1.44269504f, 12582912.0f);
    int32_t k = t.i - 0x4B400000;
    float n = t.f - 12582912.0f;
    float r = pk_fmaf(n, -0.693359375f, x);
    r = pk_fmaf(n, 2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = pk_fmaf(p, r, 1.3981999507e-3f);
    p = pk_fmaf(p, r, 8.3334519073e-3f);
    p = pk_fmaf(p, r, 4.1665795894e-2f);
    p = pk_fmaf(p, r, 1.6666665459e-1f);
    p = pk_fmaf(p, r, 5.0000001201e-1f);
    p = pk_fmaf(p, r * r, r) + 1.0f;
    /* 2^k from its bits, 0 below 2^-126 (denormal products would be slow); 2^128 as
       2 * 2^127, so e^88.5 stays finite and e^89 overflows to inf */
    int32_t hi = k > 127;
    pk_bits s, two;
    s.i = k < -126 ? 0 : (k - hi + 127) << 23;
    two.i = 0x3F800000 + (hi << 23);
    c.f = p * two.f * s.f;
    /* a NaN (magnitude bits above inf's) passes through */
    c.u = (in.u & 0x7fffffffu) > 0x7f800000u ? c.u | in.u : c.u;
    return c.f;
}
/* c ? a : b through the bits: a float select whose arm is a constant, or whose condition
   is invariant in the inner loop, becomes control flow the vectorizer refuses */
PK_INLINE float pk_selectf(int c, float a, float b) {
    pk_bits x, y;
    x.f = a;
    y.f = b;
#if defined(__hexagon__)
    /* the mux instruction itself: clang would fold the bit select back into a float select
       and that into sfmax/sfmin, which drop NaN (pk_nanmaxf below) */
    x.i = __builtin_HEXAGON_C2_mux(c != 0, x.i, y.i);
#else
    uint32_t m = -(uint32_t)(c != 0);
    x.u = (x.u & m) | (y.u & ~m);
#endif
    return x.f;
}
/* max(m, v) with NaN propagating (numpy's max): v wins when greater or NaN, a NaN m never
   loses. clang's Hexagon backend selects `v > m ? v : m` (and `x < 0 ? 0 : x`) as sfmax,
   which returns the number when one operand is NaN (llvm/llvm-project#210132); there it is
   pk_selectf, a mux the optimizer cannot see through. */
#if defined(__hexagon__)
#define pk_nanmaxf(m, v) pk_selectf((v) > (m) || (v) != (v), (v), (m))
#else
#define pk_nanmaxf(m, v) ((v) > (m) || (v) != (v) ? (v) : (m))
#endif
/* x^y for a y known only at run time (a value in the arena): 1, 2 and 3 multiply, as the
   renderer's literal exponents do; the test is invariant in a map's loop, so the compiler
   unswitches it and the x*x loop vectorizes (powf is a libm call per element) */
PK_INLINE float pk_powf(float x, float y) {
    return y == 2.0f ? x * x : y == 3.0f ? x * x * x : y == 1.0f ? x : powf(x, y);
}
PK_INLINE float pk_sigmoidf(float x) { return 1.0f / (1.0f + pk_expf(-x)); }
PK_INLINE float pk_tanhf(float x) { return 2.0f / (1.0f + pk_expf(-2.0f * x)) - 1.0f; }
/* erf(x) = x P(x^2) / Q(x^2) on |x| <= 4, ±1 beyond (erf(4) rounds to 1): the rational
   minimax form of Eigen's generic_fast_erf_float (also XLA's and TVM's fast erf). Absolute
   error below 5e-7 (largest near |x| = 3.9, where float rounding near 1 dominates), relative
   error a few ulp near 0, denormals included; ±inf gives ±1, NaN stays NaN. */
PK_INLINE float pk_erff(float x) {
    pk_bits a;
    a.f = x;
    uint32_t sign = a.u & 0x80000000u, mag = a.u & 0x7fffffffu;
    a.u = mag < 0x40800000u ? mag : 0x40800000u;  /* |x| clamped to 4 on its bits */
    float ax = a.f, z = ax * ax;
    float p = pk_fmaf(z, -2.72614225801306e-10f, 2.77068142495902e-08f);
    p = pk_fmaf(z, p, -2.10102402082508e-06f);
    p = pk_fmaf(z, p, -5.69250639462346e-05f);
    p = pk_fmaf(z, p, -7.34990630326855e-04f);
    p = pk_fmaf(z, p, -2.95459980854025e-03f);
    p = pk_fmaf(z, p, -1.60960333262415e-02f);
    float q = pk_fmaf(z, -1.45660718464996e-05f, -2.13374055278905e-04f);
    q = pk_fmaf(z, q, -1.68282697438203e-03f);
    q = pk_fmaf(z, q, -7.37332916720468e-03f);
    q = pk_fmaf(z, q, -1.42647390514189e-02f);
    a.f = ax * (p / q);
    a.u = a.u < 0x3f800000u ? a.u : 0x3f800000u;  /* at most 1 */
    a.u |= sign;
    a.u = mag > 0x7f800000u ? a.u | mag : a.u;  /* NaN passes through */
    return a.f;
}
PK_INLINE float pk_geluf(float x) { return 0.5f * x * (1.0f + pk_erff(x * 0.70710678118654752f)); }
PK_INLINE float pk_gelu_tanhf(float x) {
    return 0.5f * x * (1.0f + pk_tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}
/* derivatives for the activation gradients (train.gelu_backward, train.silu_backward) */
PK_INLINE float pk_gelu_grad(float x) {
    return 0.5f * (1.0f + pk_erff(x * 0.70710678118654752f)) + x * pk_expf(-0.5f * x * x) * 0.3989422804014327f;
}
PK_INLINE float pk_gelu_tanh_grad(float x) {
    const float c = 0.7978845608028654f;
    /* a finite |x| past 10 as 10 (on the bits): the derivative is exactly 1 or 0 there, and
       x³ would overflow into inf·0 = NaN from |x| ≈ 7e12 on; ±inf and NaN stay */
    pk_bits b;
    b.f = x;
    uint32_t mag = b.u & 0x7fffffffu, lim = mag < 0x7f800000u ? 0x41200000u : mag;
    b.u = (b.u & 0x80000000u) | (mag < lim ? mag : lim);
    x = b.f;
    /* 0.5 (1 + tanh u) = s = sigmoid(2u) and 1 - tanh² u = 4 s (1 - s): where tanh u rounds
       to -1 (x below about -4.5) the tanh form cancels to 0, this one keeps the tiny value */
    float s = pk_sigmoidf(2.0f * c * (x + 0.044715f * x * x * x));
    return s + 2.0f * x * s * (1.0f - s) * c * (1.0f + 3.0f * 0.044715f * x * x);
}
PK_INLINE float pk_silu_grad(float x) {
    float s = pk_sigmoidf(x);
    return s * (1.0f + x * (1.0f - s));
}
#endif
