/* pock.h: what every pockengine kernel shares. The generated model.c includes this once,
   then the kernels the program uses (kernels/<op>.c), then the step functions.
   Kernels are `static` so the compiler can specialize them for the constant shapes
   each call passes. Indices are `long` (64-bit on the LP64 targets we emit for). */
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
#ifdef _OPENMP
#include <omp.h>
#define PK_PARALLEL_FOR(cond) PK_PRAGMA(omp parallel for schedule(static) if(cond))
#else
#define PK_PARALLEL_FOR(cond)
#endif
/* A sum the compiler may vectorize (reassociate) although -ffast-math is off: needs
   -fopenmp-simd (the targets pass it); other compilers ignore the pragma. */
#define PK_SIMD_SUM(v) PK_PRAGMA(omp simd reduction(+:v))

PK_INLINE long pk_min(long a, long b) { return a < b ? a : b; }
/* numpy's floor division for integers (C's / truncates toward zero) */
PK_INLINE int64_t pk_floordiv(int64_t a, int64_t b) {
    int64_t q = a / b;
    return (q * b != a && ((a < 0) != (b < 0))) ? q - 1 : q;
}
PK_INLINE long pk_max(long a, long b) { return a > b ? a : b; }

/* Branch-free float math, so elementwise loops vectorize without -ffast-math (libm's expf
   and erff stop GCC's vectorizer). Errors stay within a few ulp of libm. */
PK_INLINE float pk_expf(float x) {
    /* x clamped to [-100, 89] on its bits: as unsigned integers negative floats grow with
       their magnitude (-inf the largest), as signed ones positive floats grow. A float
       select would be split by jump threading into two paths GCC does not vectorize. */
    union { float f; uint32_t u; int32_t i; } c;
    c.f = x;
    c.u = c.u < 0xC2C80000u ? c.u : 0xC2C80000u;  /* -100 */
    c.i = c.i < 0x42B20000 ? c.i : 0x42B20000;     /* +89 (as signed: negatives stay) */
    x = c.f;
    float t = x * 1.44269504f + 0.5f;
    int32_t k = (int32_t)t;      /* floor(t) without floorf, which stops the vectorizer */
    k -= t < (float)k;
    k = k < 128 ? k : 128;       /* 2^128 has the bits of +inf: overflow gives inf */
    float n = (float)k;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { float f; int32_t i; } u;
    u.i = k < -126 ? 0 : (k + 127) << 23;  /* below 2^-126: 0 (no denormals) */
    return p * u.f;
}
PK_INLINE float pk_sigmoidf(float x) { return 1.0f / (1.0f + pk_expf(-x)); }
PK_INLINE float pk_tanhf(float x) { return 2.0f / (1.0f + pk_expf(-2.0f * x)) - 1.0f; }
/* erf: Abramowitz-Stegun 7.1.26 is too coarse (1e-7 abs needed); use erff's rational form
   erf(x) = 1 - exp(-x^2) * P(t), t = 1/(1+p|x|), refined coefficients (max abs err 1.2e-7). */
PK_INLINE float pk_erff(float x) {
    float ax = fabsf(x);
    float t = 1.0f / (1.0f + 0.5f * ax);
    float y = t * pk_expf(-ax * ax - 1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f +
              t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f +
              t * (-0.82215223f + t * 0.17087277f)))))))));
    return copysignf(1.0f - y, x);
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
    float t = pk_tanhf(c * (x + 0.044715f * x * x * x));
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * c * (1.0f + 3.0f * 0.044715f * x * x);
}
PK_INLINE float pk_silu_grad(float x) {
    float s = pk_sigmoidf(x);
    return s * (1.0f + x * (1.0f - s));
}
#endif
