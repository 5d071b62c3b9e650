/* gather_backward (train.gather_backward): dx = 0, dx[o, idx[j], :] += dy[o, j, :], then the
   row padding_idx (if >= 0) zeroed, like PyTorch's embedding backward. Out-of-range
   indices add nothing. */
#define PK_DEFINE_GATHER_BACKWARD(NAME, TI)                                               \
static void NAME(long outer, long n, long inner, long nidx, const float *dy, const TI *idx, \
                 long padding_idx, float *dx) {                                          \
    memset(dx, 0, outer * n * inner * sizeof(float));                                    \
    for (long o = 0; o < outer; o++)                                                     \
        for (long j = 0; j < nidx; j++) {                                                \
            long i = pk_index(idx[j]);                                                   \
            if (i < 0) i += n;                                                           \
            if (i < 0 || i >= n) continue;                                               \
            float *dst = dx + (o * n + i) * inner;                                       \
            const float *src = dy + (o * nidx + j) * inner;                              \
            for (long k = 0; k < inner; k++) dst[k] += src[k];                           \
        }                                                                                \
    if (padding_idx >= 0 && padding_idx < n)                                             \
        for (long o = 0; o < outer; o++) memset(dx + (o * n + padding_idx) * inner, 0, inner * sizeof(float)); \
}
PK_DEFINE_GATHER_BACKWARD(pk_gather_backward, int64_t)
PK_DEFINE_GATHER_BACKWARD(pk_gather_backward_i32, int32_t)
