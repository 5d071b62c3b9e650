/* softmax_backward: dx = y·(dy - Σ dy·y); log_softmax_backward: dx = dy - exp(y)·Σ dy; along
   the middle axis of (outer, n, inner) (train.softmax_backward, train.log_softmax_backward). */
static void pk_softmax_backward(long outer, long n, long inner, const float *y, const float *dy, float *dx) {
    for (long o = 0; o < outer; o++)
        for (long i = 0; i < inner; i++) {
            long base = o * n * inner + i;
            float s = 0.0f;
            for (long k = 0; k < n; k++) s += dy[base + k * inner] * y[base + k * inner];
            for (long k = 0; k < n; k++) dx[base + k * inner] = y[base + k * inner] * (dy[base + k * inner] - s);
        }
}
static void pk_log_softmax_backward(long outer, long n, long inner, const float *y, const float *dy, float *dx) {
    for (long o = 0; o < outer; o++)
        for (long i = 0; i < inner; i++) {
            long base = o * n * inner + i;
            float s = 0.0f;
            for (long k = 0; k < n; k++) s += dy[base + k * inner];
            for (long k = 0; k < n; k++) dx[base + k * inner] = dy[base + k * inner] - pk_expf(y[base + k * inner]) * s;
        }
}
