/* pk_builtins.c: the helper functions clang calls for what Hexagon has no instruction for
   (compiler-rt's hexagon builtins are not packaged here): integer division and remainder
   (32 and 64 bit), float and double division, and square roots. All are exact / correctly
   rounded (IEEE round-to-nearest-even), so the emulated step computes what the host's
   hardware does; tests/backends/test_hexagon_runtime.py checks them against numpy.

   Division by zero of integers (undefined in C) gives 0 here. */
#include <stdint.h>

#include "pk_runtime.h"

typedef union { double d; uint64_t u; } pk_dbits;
typedef union { float f; uint32_t u; } pk_fbits;

/* --- integers: shift-subtract from the quotient's highest possible bit ------------------ */
static uint64_t udivmod64(uint64_t a, uint64_t b, uint64_t *rem) {
    if (b == 0) { *rem = 0; return 0; }
    if (a < b) { *rem = a; return 0; }
    int shift = __builtin_clzll(b) - __builtin_clzll(a);
    uint64_t q = 0;
    b <<= shift;
    for (int i = 0; i <= shift; i++, b >>= 1) {
        q <<= 1;
        if (a >= b) a -= b, q |= 1;
    }
    *rem = a;
    return q;
}

static uint32_t udivmod32(uint32_t a, uint32_t b, uint32_t *rem) {
    if (b == 0) { *rem = 0; return 0; }
    if (a < b) { *rem = a; return 0; }
    int shift = __builtin_clz(b) - __builtin_clz(a);
    uint32_t q = 0;
    b <<= shift;
    for (int i = 0; i <= shift; i++, b >>= 1) {
        q <<= 1;
        if (a >= b) a -= b, q |= 1;
    }
    *rem = a;
    return q;
}

uint32_t __hexagon_udivsi3(uint32_t a, uint32_t b) { uint32_t r; return udivmod32(a, b, &r); }
uint32_t __hexagon_umodsi3(uint32_t a, uint32_t b) { uint32_t r; udivmod32(a, b, &r); return r; }
uint64_t __hexagon_udivdi3(uint64_t a, uint64_t b) { uint64_t r; return udivmod64(a, b, &r); }
uint64_t __hexagon_umoddi3(uint64_t a, uint64_t b) { uint64_t r; udivmod64(a, b, &r); return r; }

/* C's signed forms: the quotient truncates toward zero, the remainder has the dividend's sign */
int32_t __hexagon_divsi3(int32_t a, int32_t b) {
    uint32_t r, q = udivmod32(a < 0 ? -(uint32_t)a : (uint32_t)a, b < 0 ? -(uint32_t)b : (uint32_t)b, &r);
    return (int32_t)((a < 0) != (b < 0) ? -q : q);
}
int32_t __hexagon_modsi3(int32_t a, int32_t b) {
    uint32_t r;
    udivmod32(a < 0 ? -(uint32_t)a : (uint32_t)a, b < 0 ? -(uint32_t)b : (uint32_t)b, &r);
    return (int32_t)(a < 0 ? -r : r);
}
int64_t __hexagon_divdi3(int64_t a, int64_t b) {
    uint64_t r, q = udivmod64(a < 0 ? -(uint64_t)a : (uint64_t)a, b < 0 ? -(uint64_t)b : (uint64_t)b, &r);
    return (int64_t)((a < 0) != (b < 0) ? -q : q);
}
int64_t __hexagon_moddi3(int64_t a, int64_t b) {
    uint64_t r;
    udivmod64(a < 0 ? -(uint64_t)a : (uint64_t)a, b < 0 ? -(uint64_t)b : (uint64_t)b, &r);
    return (int64_t)(a < 0 ? -r : r);
}

/* --- double division: the 53-bit quotient of the mantissas by long division, rounded -------- */
double __hexagon_divdf3(double x, double y) {
    pk_dbits a = {x}, b = {y}, r;
    uint64_t sign = (a.u ^ b.u) & 0x8000000000000000ull;
    uint64_t ma = a.u & 0x000fffffffffffffull, mb = b.u & 0x000fffffffffffffull;
    int ea = (int)(a.u >> 52 & 0x7ff), eb = (int)(b.u >> 52 & 0x7ff);
    if (ea == 0x7ff || eb == 0x7ff || (a.u << 1) == 0 || (b.u << 1) == 0) {
        /* NaN, infinity or zero somewhere */
        if (x != x || y != y) return x + y;
        if (ea == 0x7ff && eb == 0x7ff) return __builtin_nan("");
        if ((a.u << 1) == 0 && (b.u << 1) == 0) return __builtin_nan("");
        r.u = sign | ((ea == 0x7ff || (b.u << 1) == 0) ? 0x7ff0000000000000ull : 0);
        return r.d;
    }
    /* normalize subnormals: mantissa with its leading 1 at bit 52 */
    if (ea == 0) { int s = __builtin_clzll(ma) - 11; ma <<= s; ea = 1 - s; } else ma |= 1ull << 52;
    if (eb == 0) { int s = __builtin_clzll(mb) - 11; mb <<= s; eb = 1 - s; } else mb |= 1ull << 52;
    int e = ea - eb + 1023;
    if (ma < mb) ma <<= 1, e--;
    /* ma / mb in [1, 2): 55 quotient bits (53 + guard + one more), remainder as sticky */
    uint64_t q = 0, rem = ma;
    for (int i = 0; i < 55; i++) {
        q <<= 1;
        if (rem >= mb) rem -= mb, q |= 1;
        rem <<= 1;
    }
    int sticky = rem != 0;
    /* q has its leading 1 at bit 54; value = q * 2^(e - 1023 - 54) */
    int shift = 2;
    if (e <= 0) shift += 1 - e, e = 0;  /* subnormal result: fewer mantissa bits */
    if (shift > 60) { r.u = sign; return r.d; }
    uint64_t kept = q >> shift, lost = q & ((1ull << shift) - 1), half = 1ull << (shift - 1);
    if (lost > half || (lost == half && (sticky || (kept & 1)))) kept++;
    if (e == 0) {  /* subnormal (kept may have rounded up into the smallest normal) */
        r.u = sign | kept;
        return r.d;
    }
    if (kept >> 53) kept >>= 1, e++;
    if (e >= 0x7ff) { r.u = sign | 0x7ff0000000000000ull; return r.d; }
    r.u = sign | (uint64_t)e << 52 | (kept & 0x000fffffffffffffull);
    return r.d;
}

/* --- float division: a double quotient (a 24-bit by 24-bit quotient lies at least 2^-49
   relatively from a float rounding midpoint; the double one errs by under 2^-52), so its
   rounding to float is the correctly rounded float quotient. The reciprocal comes from the
   exponent-flipping seed and four Newton steps on the hardware's double multiply. */
float __hexagon_divsf3(float x, float y) {
    pk_fbits a = {x}, b = {y};
    uint32_t ax = a.u & 0x7fffffffu, ay = b.u & 0x7fffffffu;
    if (ax >= 0x7f800000u || ay >= 0x7f800000u || ay == 0 || ax == 0)
        return (float)__hexagon_divdf3((double)x, (double)y);
    double d = (double)y, n = (double)x;
    pk_dbits s = {d};
    s.u = 0x7fde623822fc16e6ull - s.u;
    double r = s.d;
    r = r * (2.0 - d * r);
    r = r * (2.0 - d * r);
    r = r * (2.0 - d * r);
    r = r * (2.0 - d * r);
    double q = n * r;
    q = q + r * (n - d * q);  /* one correction step: error below 2^-52 relative */
    return (float)q;
}

/* --- square roots: bit by bit on integers, so exact ---------------------------------------- */
double sqrt(double x) {
    pk_dbits a = {x};
    if (x != x || x == 0.0 || a.u == 0x7ff0000000000000ull) return x;  /* NaN, ±0, +inf */
    if (a.u >> 63) return __builtin_nan("");
    int e = (int)(a.u >> 52);
    uint64_t m = a.u & 0x000fffffffffffffull;
    if (e == 0) { int s = __builtin_clzll(m) - 11; m <<= s; e = 1 - s; } else m |= 1ull << 52;
    e -= 1023;
    if (e & 1) m <<= 1, e--;  /* even exponent: sqrt(m * 2^e) = sqrt(m) * 2^(e/2) */
    /* m in [2^52, 2^54): the 55-bit root R of N = m * 2^56 (110 bits, fed two at a time
       from the top; the pairs below bit 56 are zero), the remainder left saying inexact */
    uint64_t rem = 0, root = 0;
    for (int p = 108; p >= 0; p -= 2) {
        rem = (rem << 2) | (p >= 56 ? (m >> (p - 56)) & 3 : 0);
        uint64_t t = (root << 2) | 1;
        root <<= 1;
        if (rem >= t) rem -= t, root |= 1;
    }
    /* root has 55 bits (leading 1 at bit 54): round off two */
    uint64_t kept = root >> 2, lost = root & 3;
    if (lost > 2 || (lost == 2 && (rem != 0 || (kept & 1)))) kept++;
    if (kept >> 53) kept >>= 1, e += 2;
    a.u = (uint64_t)(e / 2 + 1023) << 52 | (kept & 0x000fffffffffffffull);
    return a.d;
}

/* the correctly rounded double root, rounded again: exact for floats (53 >= 2 * 24 + 2) */
float __hexagon_sqrtf(float x) { return (float)sqrt((double)x); }
float sqrtf(float x) { return (float)sqrt((double)x); }
