/* rms_norm over rows of n (train.rms_norm): y = x / sqrt(mean(x²) + eps) * g.
   Row helpers stay out of line (inlined into the row loop, GCC stops vectorizing them). */
PK_NOINLINE static float pk_rms_rstd(long n, const float *x, float eps) {
    double q = 0.0;
    PK_SIMD_SUM(q)
    for (long i = 0; i < n; i++) q += (double)x[i] * x[i];
    return (float)(1.0 / sqrt(q / n + eps));
}
PK_NOINLINE static void pk_rms_norm_row(long n, const float *x, float rstd, const float *g, float *y) {
    for (long i = 0; i < n; i++) y[i] = x[i] * (rstd * g[i]);
}
static void pk_rms_norm(long rows, long n, const float *x, const float *g, float eps, float *y) {
    PK_PARALLEL_FOR(rows * n >= PK_PAR_MIN)
    for (long r = 0; r < rows; r++)
        pk_rms_norm_row(n, x + r * n, pk_rms_rstd(n, x + r * n, eps), g, y + r * n);
}
