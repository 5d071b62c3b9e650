/* cumsum along the middle axis of (outer, n, inner) (train.cumsum). */
#define PK_DEFINE_CUMSUM(NAME, T)                                                        \
static void NAME(long outer, long n, long inner, const T *x, T *y) {                    \
    for (long o = 0; o < outer; o++)                                                     \
        for (long i = 0; i < inner; i++) {                                               \
            T s = 0;                                                                     \
            for (long k = 0; k < n; k++) { long at = (o * n + k) * inner + i; s += x[at]; y[at] = s; } \
        }                                                                                \
}
PK_DEFINE_CUMSUM(pk_cumsum_f32, float)
PK_DEFINE_CUMSUM(pk_cumsum_i64, int64_t)
