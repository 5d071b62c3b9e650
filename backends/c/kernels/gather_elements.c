/* gather_elements (train.gather_elements, torch.gather): y[i] = x[i with i[axis] = idx[i]]
   over the index tensor's 6 (padded) dims d; x is read with element strides xs (0 on the
   axis) plus idx·axis_stride, elements of `item` bytes. Negative indices count from the end;
   an index outside [0, n) gives 0. The backward adds dy into zeros the same way. */
#define PK_GE_LOOPS(BODY)                                                                  \
    long pos = 0;                                                                          \
    for (long a0 = 0; a0 < d[0]; a0++)                                                     \
    for (long a1 = 0; a1 < d[1]; a1++)                                                     \
    for (long a2 = 0; a2 < d[2]; a2++)                                                     \
    for (long a3 = 0; a3 < d[3]; a3++)                                                     \
    for (long a4 = 0; a4 < d[4]; a4++)                                                     \
    for (long a5 = 0; a5 < d[5]; a5++, pos++) {                                           \
        long i = pk_index(idx[pos]);                                                       \
        if (i < 0) i += n;                                                                 \
        int inside = i >= 0 && i < n;                                                      \
        long at = a0 * xs[0] + a1 * xs[1] + a2 * xs[2] + a3 * xs[3] + a4 * xs[4] + a5 * xs[5] \
                  + (inside ? i : 0) * axis_stride;                                        \
        BODY                                                                               \
    }

#define PK_DEFINE_GATHER_ELEMENTS(NAME, BACKWARD, TI)                                       \
static void NAME(const long *d, const long *xs, long axis_stride, long n, long item,       \
                 const void *x, const TI *idx, void *y) {                                  \
    const char *src = (const char *)x;                                                     \
    char *dst = (char *)y;                                                                 \
    PK_GE_LOOPS(if (inside) memcpy(dst + pos * item, src + at * item, item);               \
                else memset(dst + pos * item, 0, item);)                                   \
}                                                                                          \
static void BACKWARD(const long *d, const long *xs, long axis_stride, long n, long total,  \
                     const float *dy, const TI *idx, float *dx) {                          \
    memset(dx, 0, total * sizeof(float));                                                  \
    PK_GE_LOOPS(if (inside) dx[at] += dy[pos];)                                            \
}
PK_DEFINE_GATHER_ELEMENTS(pk_gather_elements, pk_gather_elements_backward, int64_t)
PK_DEFINE_GATHER_ELEMENTS(pk_gather_elements_i32, pk_gather_elements_backward_i32, int32_t)
