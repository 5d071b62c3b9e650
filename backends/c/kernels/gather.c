/* gather (train.gather): out[o, j, :] = x[o, idx[j], :] with rows of `row` bytes; negative
   indices count from the end (numpy). An embedding lookup is outer = 1. An index outside
   the table gives a zero row instead of reading foreign memory. */
#define PK_DEFINE_GATHER(NAME, TI)                                                        \
static void NAME(long outer, long n, long row, long nidx, const void *x, const TI *idx, void *out) { \
    const char *src = (const char *)x;                                                   \
    char *dst = (char *)out;                                                             \
    for (long o = 0; o < outer; o++)                                                     \
        for (long j = 0; j < nidx; j++) {                                                \
            long i = pk_index(idx[j]);                                                   \
            if (i < 0) i += n;                                                           \
            if (i < 0 || i >= n) { memset(dst + (o * nidx + j) * row, 0, row); continue; } \
            memcpy(dst + (o * nidx + j) * row, src + (o * n + i) * row, row);            \
        }                                                                                \
}
PK_DEFINE_GATHER(pk_gather, int64_t)
PK_DEFINE_GATHER(pk_gather_i32, int32_t)
