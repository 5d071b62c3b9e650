/* softmax / log_softmax along the middle axis of (outer, n, inner) (train.softmax,
   train.log_softmax); y may be x (in place). */
static void pk_softmax_impl(long outer, long n, long inner, const float *x, float *y, int log_form) {
    for (long o = 0; o < outer; o++)
        for (long i = 0; i < inner; i++) {
            const float *xr = x + o * n * inner + i;
            float *yr = y + o * n * inner + i;
            float m = -INFINITY;
            for (long k = 0; k < n; k++) m = xr[k * inner] > m ? xr[k * inner] : m;
            if (m == -INFINITY) m = 0.0f;  /* a fully masked row: keep exp finite */
            double s = 0.0;
            if (log_form) {
                for (long k = 0; k < n; k++) s += expf(xr[k * inner] - m);
                float ls = (float)log(s);
                for (long k = 0; k < n; k++) yr[k * inner] = xr[k * inner] - m - ls;
            } else {
                for (long k = 0; k < n; k++) { float e = pk_expf(xr[k * inner] - m); yr[k * inner] = e; s += e; }
                float inv = (float)(1.0 / s);
                for (long k = 0; k < n; k++) yr[k * inner] *= inv;
            }
        }
}
static void pk_softmax(long outer, long n, long inner, const float *x, float *y) {
    pk_softmax_impl(outer, n, inner, x, y, 0);
}
static void pk_log_softmax(long outer, long n, long inner, const float *x, float *y) {
    pk_softmax_impl(outer, n, inner, x, y, 1);
}
