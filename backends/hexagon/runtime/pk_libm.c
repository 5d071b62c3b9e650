/* pk_libm.c: the math functions the kernels (backends/c/kernels) and the generated code
   (the renderer's scalar table: sqrtf, logf, powf, sinf, cosf, pow, sqrt, log) call, for a
   target without a libm. Hexagon v67 has double add and multiply in hardware, so the float
   functions evaluate in double and round once: each is within 1 ulp of the exact value
   (nearly always the correctly rounded float). The double functions are within the bounds
   stated at each. Checked against numpy in tests/backends/test_hexagon_runtime.py.

   Reciprocals come from Newton steps (pk_recip), not from the software double division. */
#include <math.h>
#include <stdint.h>

typedef union { double d; uint64_t u; } pk_dbits;
typedef union { float f; uint32_t u; } pk_fbits;

static const double LN2_HI = 0.6931471803691238;   /* ln 2 to 32 bits: k * LN2_HI is exact */
static const double LN2_LO = 1.9082149292705877e-10;
static const double INV_LN2 = 1.4426950408889634;

/* 1/d for finite nonzero d, within 1 ulp: a seed from the exponent bits, five Newton steps */
static double pk_recip(double d) {
    pk_dbits s = {d};
    s.u = 0x7fde623822fc16e6ull - (s.u & 0x7fffffffffffffffull);
    double r = d < 0 ? -s.d : s.d;
    for (int i = 0; i < 5; i++) r = r * (2.0 - d * r);
    return r;
}

static double scale2(double x, int k) { /* x * 2^k */
    pk_dbits s;
    while (k > 1000) { s.u = (uint64_t)(1000 + 1023) << 52; x *= s.d; k -= 1000; }
    while (k < -1000) { s.u = (uint64_t)(-1000 + 1023) << 52; x *= s.d; k += 1000; }
    s.u = (uint64_t)(k + 1023) << 52;
    return x * s.d;
}

float fabsf(float x) { pk_fbits b = {x}; b.u &= 0x7fffffffu; return b.f; }
double fabs(double x) { pk_dbits b = {x}; b.u &= 0x7fffffffffffffffull; return b.d; }

/* exp: within 1 ulp on normal results (k ln2 + r, |r| <= ln2/2, Taylor to r^13) */
double exp(double x) {
    if (x != x) return x;
    if (x > 709.782712893384) return __builtin_inf();
    if (x < -745.2) return 0.0;
    double kf = __builtin_round(x * INV_LN2);
    int k = (int)kf;
    double r = (x - kf * LN2_HI) - kf * LN2_LO;
    static const double c[] = {1.0 / 6227020800.0, 1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0,
                               1.0 / 362880.0, 1.0 / 40320.0, 1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0,
                               1.0 / 24.0, 1.0 / 6.0, 0.5, 1.0};
    double p = c[0];
    for (int i = 1; i < 13; i++) p = p * r + c[i];
    return scale2(1.0 + p * r, k);
}
float expf(float x) { return (float)exp((double)x); }

/* log: within 2 ulp. x = 2^e m with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s) with
   s = (m - 1) / (m + 1), |s| <= 0.172, by its series to s^23 */
double log(double x) {
    pk_dbits b = {x};
    if (x != x) return x;
    if (x < 0) return __builtin_nan("");
    if (x == 0) return -__builtin_inf();
    if (b.u == 0x7ff0000000000000ull) return x;
    int e = 0;
    if (b.u >> 52 == 0) b.d *= 18014398509481984.0, e = -54; /* subnormal: times 2^54 */
    e += (int)(b.u >> 52) - 1023;
    b.u = (b.u & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
    if (b.d > 1.4142135623730951) b.d *= 0.5, e++;
    double f = b.d - 1.0, s = f * pk_recip(2.0 + f), z = s * s;
    double p = 1.0 / 23;
    for (int k = 21; k >= 3; k -= 2) p = p * z + 1.0 / k;
    double hfsq = 0.5 * f * f;
    /* log m = f - (f^2/2 - s (f^2/2 + R)), R = 2 atanh(s) - 2 s + ... = 2 z p: fdlibm's
       arrangement, which keeps f's bits */
    double lm = f - (hfsq - s * (hfsq + 2.0 * z * p));
    return (double)e * LN2_LO + lm + (double)e * LN2_HI;
}
float logf(float x) { return (float)log((double)x); }

static int is_int(double y) { return __builtin_trunc(y) == y; }
static int is_odd_int(double y) { return is_int(y) && __builtin_fabs(y) < 9007199254740992.0 && (int64_t)y % 2 != 0; }

/* pow: C99's special cases; otherwise exp(y log|x|), within 3 + 2 |y log x| ulp (log's 2 ulp
   scaled by y). powf: within 1 ulp, as |y log x| < 104 where the float result is finite */
double pow(double x, double y) {
    if (y == 0.0 || x == 1.0) return 1.0;
    if (x != x || y != y) return x + y;
    double ax = __builtin_fabs(x), ay = __builtin_fabs(y);
    if (ay == __builtin_inf()) {
        if (ax == 1.0) return 1.0;
        return (ax > 1.0) == (y > 0) ? __builtin_inf() : 0.0;
    }
    int neg = x < 0 || (x == 0 && __builtin_signbit(x));
    int odd = is_odd_int(y);
    if (x == 0.0 || ax == __builtin_inf()) {
        double r = ((x == 0.0) == (y < 0)) ? __builtin_inf() : 0.0;
        return neg && odd ? -r : r;
    }
    if (x < 0 && !is_int(y)) return __builtin_nan("");
    double r = exp(y * log(ax));
    return neg && odd ? -r : r;
}
float powf(float x, float y) { return (float)pow((double)x, (double)y); }

/* --- sin and cos: x * 2/pi reduced mod 4 on integers (Payne-Hanek), then Taylor on
   |r| <= pi/4 in double: within 1 ulp for every float, however large ------------------- */
static const uint32_t TWO_OVER_PI[10] = {  /* floor(2^320 * 2/pi), most significant first */
    0xa2f9836eu, 0x4e441529u, 0xfc2757d1u, 0xf534ddc0u, 0xdb629599u,
    0x3c439041u, 0xfe5163abu, 0xdebbc561u, 0xb7246e3au, 0x424dd2e0u};

static uint32_t bits32(int pos) { /* (B >> pos) & 0xffffffff, B = floor(2^320 * 2/pi) */
    int lo = pos >> 5, wl = 9 - lo, wh = 8 - lo;  /* word i holds bits 288 - 32 i .. 319 - 32 i */
    uint64_t low = wl >= 0 && wl < 10 ? TWO_OVER_PI[wl] : 0, high = wh >= 0 && wh < 10 ? TWO_OVER_PI[wh] : 0;
    return (uint32_t)(((high << 32) | low) >> (pos & 31));
}

/* x = r + k pi/2 with |r| <= pi/4 (x finite); returns k mod 4 */
static int reduce(float x, double *r) {
    pk_fbits b = {x};
    uint32_t a = b.u & 0x7fffffffu;
    if (a <= 0x3f490fdbu) { *r = x; return 0; }  /* |x| <= pi/4 */
    int E = (int)(a >> 23) - 150;                 /* |x| = M 2^E */
    uint32_t M = (a & 0x7fffffu) | 0x800000u;
    /* y = |x| 2/pi mod 4 = M T 2^-94 mod 4, T the 96 bits of B below bit 322 - E */
    int q = 320 - E + 2 - 96;
    uint64_t t0 = bits32(q), t1 = bits32(q + 32), t2 = bits32(q + 64);
    uint64_t p0 = M * t0, p1 = M * t1 + (p0 >> 32), p2 = M * t2 + (p1 >> 32);
    uint32_t r2 = (uint32_t)p2, r1 = (uint32_t)p1;
    int k = (int)(r2 >> 30);
    double f = (double)(((uint64_t)(r2 & 0x3fffffffu) << 32) | r1) * 2.168404344971009e-19; /* 2^-62 */
    if (f >= 0.5) f -= 1.0, k++;
    *r = f * 1.5707963267948966;
    if (b.u >> 31) *r = -*r, k = -k;
    return k & 3;
}

static double sin_kernel(double r) {
    double z = r * r, p = 1.0 / 1307674368000.0;  /* 1/15! */
    static const double c[] = {-1.0 / 6227020800.0, 1.0 / 39916800.0, -1.0 / 362880.0, 1.0 / 5040.0, -1.0 / 120.0, 1.0 / 6.0};
    for (int i = 0; i < 6; i++) p = p * z + c[i];
    /* p now holds 1/6 - z/120 + ...; sin r = r - r^3 p */
    return r - r * z * p;
}

static double cos_kernel(double r) {
    double z = r * r, p = 1.0 / 20922789888000.0;  /* 1/16! */
    static const double c[] = {-1.0 / 87178291200.0, 1.0 / 479001600.0, -1.0 / 3628800.0, 1.0 / 40320.0, -1.0 / 720.0, 1.0 / 24.0};
    for (int i = 0; i < 6; i++) p = p * z + c[i];
    return 1.0 - 0.5 * z + z * z * p;
}

float sinf(float x) {
    if (x != x || __builtin_isinf(x)) return x - x;
    double r;
    int k = reduce(x, &r);
    double v = k == 0 ? sin_kernel(r) : k == 1 ? cos_kernel(r) : k == 2 ? -sin_kernel(r) : -cos_kernel(r);
    return (float)v;
}

float cosf(float x) {
    if (x != x || __builtin_isinf(x)) return x - x;
    double r;
    int k = reduce(x, &r);
    double v = k == 0 ? cos_kernel(r) : k == 1 ? -sin_kernel(r) : k == 2 ? -cos_kernel(r) : sin_kernel(r);
    return (float)v;
}

/* tanh = (e - 1) / (e + 1), e = exp(2|x|); x itself below 2^-27 (tanh x - x < x^3 / 3) */
float tanhf(float x) {
    if (x != x) return x;
    double a = __builtin_fabs((double)x);
    if (a < 7.450580596923828e-09) return x;
    if (a > 20.0) return x > 0 ? 1.0f : -1.0f;
    double e = exp(2.0 * a), t = (e - 1.0) * pk_recip(e + 1.0);
    return (float)(x > 0 ? t : -t);
}

/* erf: its Maclaurin series below |x| = 4 (in double: at most 23 bits cancel at 4, leaving
   30), +-1 beyond (erf(4) rounds to 1 in float) */
float erff(float x) {
    if (x != x) return x;
    double a = __builtin_fabs((double)x);
    if (a >= 4.0) return x > 0 ? 1.0f : -1.0f;
    double z = a * a, term = a, sum = a;
    for (int n = 1; n < 120; n++) {
        term *= -z / n;
        double t = term * pk_recip(2.0 * n + 1.0);
        sum += t;
        if (__builtin_fabs(t) < 1e-17 * sum) break;
    }
    double v = sum * 1.1283791670955126;
    return (float)(x > 0 ? v : -v);
}

/* --- rounding, on the bits --------------------------------------------------------------- */
double trunc(double x) {
    pk_dbits b = {x};
    int e = (int)(b.u >> 52 & 0x7ff) - 1023;
    if (e >= 52) return x;
    if (e < 0) { b.u &= 0x8000000000000000ull; return b.d; }
    b.u &= ~((1ull << (52 - e)) - 1);
    return b.d;
}
double floor(double x) { double t = trunc(x); return t > x ? t - 1.0 : t; }
double ceil(double x) { double t = trunc(x); return t < x ? t + 1.0 : t; }
double round(double x) { /* half away from zero */
    double t = trunc(x), d = x - t;
    if (d >= 0.5) return t + 1.0;
    if (d <= -0.5) return t - 1.0;
    return t;
}
float truncf(float x) { return (float)trunc(x); }
float floorf(float x) { return (float)floor(x); }
float ceilf(float x) { return (float)ceil(x); }
float roundf(float x) { return (float)round(x); }

float fmaf(float a, float b, float c) { return __builtin_fmaf(a, b, c); }  /* sffma: one rounding */
float fmaxf(float a, float b) { return a != a ? b : b != b ? a : a > b ? a : b; }
float fminf(float a, float b) { return a != a ? b : b != b ? a : a < b ? a : b; }
double fmax(double a, double b) { return a != a ? b : b != b ? a : a > b ? a : b; }
double fmin(double a, double b) { return a != a ? b : b != b ? a : a < b ? a : b; }
