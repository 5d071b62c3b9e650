/* sum / mean / max / any over axes (train.sum, train.mean, train.max, train.any).
   The lowering merges the loop dims into at most 6 (d), with the input's strides (xs) and
   the output's (ys, 0 on reduced dims); y has ny elements. Innermost reductions accumulate
   in double, so long sums stay close to numpy's pairwise ones. */
#define PK_REDUCE_LOOPS(BODY_INNER)                                                      \
    for (long a0 = 0; a0 < d[0]; a0++)                                                   \
    for (long a1 = 0; a1 < d[1]; a1++)                                                   \
    for (long a2 = 0; a2 < d[2]; a2++)                                                   \
    for (long a3 = 0; a3 < d[3]; a3++)                                                   \
    for (long a4 = 0; a4 < d[4]; a4++) {                                                 \
        long xo = a0 * xs[0] + a1 * xs[1] + a2 * xs[2] + a3 * xs[3] + a4 * xs[4];        \
        long yo = a0 * ys[0] + a1 * ys[1] + a2 * ys[2] + a3 * ys[3] + a4 * ys[4];        \
        BODY_INNER                                                                       \
    }

#define PK_DEFINE_REDUCE(NAME, TX, TY, TACC, INIT, COMBINE)                              \
static void NAME(const long *d, const long *xs, const long *ys, const TX *x, TY *y,     \
                 long ny, float scale) {                                                 \
    for (long i = 0; i < ny; i++) y[i] = (TY)(INIT);                                     \
    PK_REDUCE_LOOPS(                                                                     \
        if (ys[5] == 0) {                                                                \
            TACC acc = (TACC)(INIT);                                                     \
            for (long a5 = 0; a5 < d[5]; a5++) { TACC v = (TACC)x[xo + a5 * xs[5]]; acc = COMBINE(acc, v); } \
            TACC cur = (TACC)y[yo]; y[yo] = (TY)COMBINE(cur, acc);                        \
        } else {                                                                         \
            for (long a5 = 0; a5 < d[5]; a5++) {                                         \
                TY *p = y + yo + a5 * ys[5]; TY v = (TY)x[xo + a5 * xs[5]]; *p = COMBINE(*p, v); \
            }                                                                            \
        })                                                                               \
    if (scale != 1.0f) for (long i = 0; i < ny; i++) y[i] = (TY)(y[i] * scale);         \
}
#define PK_ADD(a, b) ((a) + (b))
/* NaN propagates (numpy's max): b wins when it is NaN, a NaN a never loses (b > NaN is
   false); `b != b` is always false for the integer reductions */
#define PK_MAX(a, b) ((b) > (a) || (b) != (b) ? (b) : (a))
#define PK_OR(a, b) ((a) | (b))
PK_DEFINE_REDUCE(pk_reduce_sum_f32, float, float, double, 0, PK_ADD)
PK_DEFINE_REDUCE(pk_reduce_sum_i64, int64_t, int64_t, int64_t, 0, PK_ADD)
PK_DEFINE_REDUCE(pk_reduce_sum_i32, int32_t, int32_t, int32_t, 0, PK_ADD)
PK_DEFINE_REDUCE(pk_reduce_max_f32, float, float, float, -INFINITY, pk_nanmaxf)
PK_DEFINE_REDUCE(pk_reduce_max_i64, int64_t, int64_t, int64_t, INT64_MIN, PK_MAX)
PK_DEFINE_REDUCE(pk_reduce_max_i32, int32_t, int32_t, int32_t, INT32_MIN, PK_MAX)
PK_DEFINE_REDUCE(pk_reduce_max_i1, uint8_t, uint8_t, uint8_t, 0, PK_MAX)
PK_DEFINE_REDUCE(pk_reduce_sum_i1, uint8_t, uint8_t, uint8_t, 0, PK_OR)
PK_DEFINE_REDUCE(pk_reduce_any_i1, uint8_t, uint8_t, uint8_t, 0, PK_OR)
