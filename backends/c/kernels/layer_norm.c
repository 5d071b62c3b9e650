/* layer_norm over rows of n (train.layer_norm): y = (x - mean) / sqrt(var + eps) * g + b.
   Row helpers stay out of line (inlined into the row loop, GCC stops vectorizing them). */

/* The statistics of a row in one pass: Σ(x - x0) and Σ(x - x0)² in double lanes, shifted by
   the row's first element so that var = E[d²] - E[d]² does not cancel when |mean| >> std.
   The mean comes back as hi + lo (hi a float, lo the rest): x - mean is then (x - hi) - lo,
   exact to float rounding however far the mean lies from 0. */
typedef struct { float hi, lo, rstd; } pk_row_stats;
PK_NOINLINE static pk_row_stats pk_layer_norm_stats(long n, const float *x, float eps) {
    double s = 0.0, q = 0.0;
    float x0 = x[0];
    PK_PRAGMA(omp simd reduction(+:s, q))
    for (long i = 0; i < n; i++) { double d = x[i] - x0; s += d; q += d * d; }
    double m = s / n, var = q / n - m * m, mean = m + x0;
    pk_row_stats st;
    st.hi = (float)mean;
    st.lo = (float)(mean - st.hi);
    st.rstd = (float)(1.0 / sqrt((var < 0.0 ? 0.0 : var) + eps));
    return st;
}
PK_NOINLINE static void pk_layer_norm_row(long n, const float *x, pk_row_stats st, const float *g, const float *b,
                                          float *y) {
    for (long i = 0; i < n; i++) y[i] = ((x[i] - st.hi) - st.lo) * (st.rstd * g[i]) + b[i];
}
static void pk_layer_norm(long rows, long n, const float *x, const float *g, const float *b, float eps, float *y) {
    PK_PARALLEL_FOR(rows * n >= PK_PAR_MIN)
    for (long r = 0; r < rows; r++)
        pk_layer_norm_row(n, x + r * n, pk_layer_norm_stats(n, x + r * n, eps), g, b, y + r * n);
}
