/* softmax_backward: dx = y·(dy - Σ dy·y); log_softmax_backward: dx = dy - exp(y)·Σ dy; along
   the middle axis of (outer, n, inner) (train.softmax_backward, train.log_softmax_backward).
   dx may be dy (in place). The last-axis case (inner = 1) runs as vectorized row loops; the
   strided case sums in double like the forward. */
PK_NOINLINE static float pk_row_dot(long n, const float *a, const float *b) {
    float s = 0.0f;
    PK_SIMD_SUM(s)
    for (long k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}
PK_NOINLINE static float pk_row_sum(long n, const float *a) {
    float s = 0.0f;
    PK_SIMD_SUM(s)
    for (long k = 0; k < n; k++) s += a[k];
    return s;
}
/* Row updates stay out of line too: their loops then vectorize with one alias check. */
PK_NOINLINE static void pk_row_softmax_grad(long n, const float *y, const float *dy, float s, float *dx) {
    for (long k = 0; k < n; k++) dx[k] = y[k] * (dy[k] - s);
}
PK_NOINLINE static void pk_row_log_softmax_grad(long n, const float *y, const float *dy, float s, float *dx) {
    for (long k = 0; k < n; k++) dx[k] = dy[k] - pk_expf(y[k]) * s;
}
static void pk_softmax_backward(long outer, long n, long inner, const float *y, const float *dy, float *dx) {
    if (inner == 1) {
        for (long o = 0; o < outer; o++)
            pk_row_softmax_grad(n, y + o * n, dy + o * n, pk_row_dot(n, y + o * n, dy + o * n), dx + o * n);
        return;
    }
    for (long o = 0; o < outer; o++)
        for (long i = 0; i < inner; i++) {
            long base = o * n * inner + i;
            double s = 0.0;
            for (long k = 0; k < n; k++) s += dy[base + k * inner] * y[base + k * inner];
            float sf = (float)s;
            for (long k = 0; k < n; k++) dx[base + k * inner] = y[base + k * inner] * (dy[base + k * inner] - sf);
        }
}
static void pk_log_softmax_backward(long outer, long n, long inner, const float *y, const float *dy, float *dx) {
    if (inner == 1) {
        for (long o = 0; o < outer; o++)
            pk_row_log_softmax_grad(n, y + o * n, dy + o * n, pk_row_sum(n, dy + o * n), dx + o * n);
        return;
    }
    for (long o = 0; o < outer; o++)
        for (long i = 0; i < inner; i++) {
            long base = o * n * inner + i;
            double s = 0.0;
            for (long k = 0; k < n; k++) s += dy[base + k * inner];
            float sf = (float)s;
            for (long k = 0; k < n; k++) dx[base + k * inner] = dy[base + k * inner] - pk_expf(y[base + k * inner]) * sf;
        }
}
