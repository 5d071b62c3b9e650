/* rms_norm backward over rows of n (train.rms_norm_backward, ..._gamma):
   r = rsqrt(mean(x²) + eps), g = dy·γ, dx = r·g - r³·x·mean(g·x); dγ = Σ_rows dy·x·r.
   requires: rms_norm (the row statistic) */
PK_NOINLINE static float pk_rms_grad_dot(long n, const float *x, const float *dy, const float *gamma) {
    float s = 0.0f;
    PK_SIMD_SUM(s)
    for (long i = 0; i < n; i++) s += dy[i] * gamma[i] * x[i];
    return s;
}
PK_NOINLINE static void pk_rms_grad_row(long n, const float *x, const float *dy, const float *gamma, float rstd,
                                        float c, float *dx) {
    for (long i = 0; i < n; i++) dx[i] = rstd * (dy[i] * gamma[i]) - c * x[i];
}
static void pk_rms_norm_backward(long rows, long n, const float *x, const float *gamma, const float *dy,
                                 float eps, float *dx) {
    PK_PARALLEL_FOR(rows * n >= PK_PAR_MIN)
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n, *gr = dy + r * n;
        float rs = pk_rms_rstd(n, xr, eps);
        float c = rs * rs * rs * (pk_rms_grad_dot(n, xr, gr, gamma) / n);
        pk_rms_grad_row(n, xr, gr, gamma, rs, c, dx + r * n);
    }
}
PK_NOINLINE static void pk_rms_gamma_row(long n, const float *x, const float *dy, float rstd, float *dg) {
    for (long i = 0; i < n; i++) dg[i] += dy[i] * (x[i] * rstd);
}
/* Threads own 16-column strips of dγ (each entry sums the rows in order), recomputing each row's rstd. */
static void pk_rms_norm_backward_gamma(long rows, long n, const float *x, const float *dy, float eps, float *dg) {
    for (long i = 0; i < n; i++) dg[i] = 0.0f;
    PK_REGION(rows * n >= PK_PAR_MIN && n >= 32)
    {
        long s0, s1;
        pk_share((n + 15) / 16, &s0, &s1);
        long j0 = s0 * 16, j1 = pk_min(n, s1 * 16);
        for (long r = 0; r < rows && j1 > j0; r++)
            pk_rms_gamma_row(j1 - j0, x + r * n + j0, dy + r * n + j0, pk_rms_rstd(n, x + r * n, eps), dg + j0);
    }
}
