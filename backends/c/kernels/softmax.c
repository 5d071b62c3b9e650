/* softmax / log_softmax along the middle axis of (outer, n, inner) (train.softmax,
   train.log_softmax); y may be x (in place). The common last-axis case (inner = 1) runs
   vectorized: max, then exp and sum, then scale. */
#define PK_SIMD_MAX(v) PK_PRAGMA(omp simd reduction(max:v))

PK_NOINLINE static float pk_row_max(long n, const float *x) {
    float m = -INFINITY;
    PK_SIMD_MAX(m)
    for (long k = 0; k < n; k++) m = x[k] > m ? x[k] : m;
    return m == -INFINITY ? 0.0f : m;  /* a fully masked row: keep exp finite */
}

/* Row helpers stay out of line: inlined into the row loops, GCC stops vectorizing them. */

/* Σ exp(x - m) over a row (m its max): a vectorized sum. */
PK_NOINLINE static float pk_row_expsum(long n, const float *x, float m) {
    float s = 0.0f;
    PK_SIMD_SUM(s)
    for (long k = 0; k < n; k++) s += pk_expf(x[k] - m);
    return s;
}

/* y = exp(x - m) over a row, returning Σ y; y may be x. */
PK_NOINLINE static float pk_row_exp(long n, const float *x, float m, float *y) {
    float s = 0.0f;
    PK_SIMD_SUM(s)
    for (long k = 0; k < n; k++) { float e = pk_expf(x[k] - m); y[k] = e; s += e; }
    return s;
}

static void pk_softmax_impl(long outer, long n, long inner, const float *x, float *y, int log_form) {
    if (inner == 1) {
        PK_PARALLEL_FOR(outer * n >= PK_PAR_MIN)
        for (long o = 0; o < outer; o++) {
            const float *xr = x + o * n;
            float *yr = y + o * n;
            float m = pk_row_max(n, xr);
            if (log_form) {
                float ls = logf(pk_row_expsum(n, xr, m));
                for (long k = 0; k < n; k++) yr[k] = xr[k] - m - ls;
            } else {
                float inv = 1.0f / pk_row_exp(n, xr, m, yr);
                for (long k = 0; k < n; k++) yr[k] *= inv;
            }
        }
        return;
    }
    PK_PARALLEL_FOR(outer * n * inner >= PK_PAR_MIN)
    for (long o = 0; o < outer; o++)
        for (long i = 0; i < inner; i++) {
            const float *xr = x + o * n * inner + i;
            float *yr = y + o * n * inner + i;
            float m = -INFINITY;
            for (long k = 0; k < n; k++) m = xr[k * inner] > m ? xr[k * inner] : m;
            if (m == -INFINITY) m = 0.0f;
            double s = 0.0;
            if (log_form) {
                for (long k = 0; k < n; k++) s += pk_expf(xr[k * inner] - m);
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
