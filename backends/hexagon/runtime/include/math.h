/* math.h of the freestanding Hexagon runtime (backends/hexagon/runtime/pk_libm.c): the
   functions the kernels and the generated code call, each within the ulp bound its
   comment in pk_libm.c states (tests/backends/test_hexagon_runtime.py checks them against
   numpy). */
#ifndef PK_MATH_H
#define PK_MATH_H
#define INFINITY (__builtin_inff())
#define NAN (__builtin_nanf(""))
#define HUGE_VAL (__builtin_huge_val())
#define HUGE_VALF (__builtin_huge_valf())
#define isnan(x) __builtin_isnan(x)
#define isinf(x) __builtin_isinf(x)
#define isfinite(x) __builtin_isfinite(x)
#define signbit(x) __builtin_signbit(x)
float fabsf(float x);
double fabs(double x);
float sqrtf(float x);
double sqrt(double x);
float expf(float x);
double exp(double x);
float logf(float x);
double log(double x);
float powf(float x, float y);
double pow(double x, double y);
float sinf(float x);
float cosf(float x);
float tanhf(float x);
float erff(float x);
float floorf(float x);
double floor(double x);
float ceilf(float x);
double ceil(double x);
float roundf(float x);
double round(double x);
float truncf(float x);
double trunc(double x);
float fmaf(float a, float b, float c);
float fmaxf(float a, float b);
float fminf(float a, float b);
double fmax(double a, double b);
double fmin(double a, double b);
#endif
