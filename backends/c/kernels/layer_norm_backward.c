/* layer_norm backward over rows of n (train.layer_norm_backward, ..._gamma):
   x̂ = (x - μ)·rstd, g = dy·γ, dx = rstd·(g - mean(g) - x̂·mean(g·x̂)); dγ = Σ_rows dy·x̂.
   requires: layer_norm (the row statistics) */

/* Σ g and Σ g·(x - μ) over a row */
PK_NOINLINE static void pk_layer_norm_grad_sums(long n, const float *x, const float *dy, const float *gamma,
                                                pk_row_stats st, float *sg, float *sgx) {
    float a = 0.0f, c = 0.0f;
    PK_PRAGMA(omp simd reduction(+:a, c))
    for (long i = 0; i < n; i++) { float g = dy[i] * gamma[i]; a += g; c += g * ((x[i] - st.hi) - st.lo); }
    *sg = a;
    *sgx = c;
}
/* dx = rstd·g - k·(x - μ) - rstd·mean(g) with k = rstd³·mean(g·(x - μ)) */
PK_NOINLINE static void pk_layer_norm_grad_row(long n, const float *x, const float *dy, const float *gamma,
                                               pk_row_stats st, float mg, float mgx, float *dx) {
    float r = st.rstd, k = r * r * r * mgx, c = r * mg;
    for (long i = 0; i < n; i++) dx[i] = r * (dy[i] * gamma[i]) - k * ((x[i] - st.hi) - st.lo) - c;
}
static void pk_layer_norm_backward(long rows, long n, const float *x, const float *gamma, const float *dy,
                                   float eps, float *dx) {
    PK_PARALLEL_FOR(rows * n >= PK_PAR_MIN)
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n, *gr = dy + r * n;
        pk_row_stats st = pk_layer_norm_stats(n, xr, eps);
        float sg, sgx;
        pk_layer_norm_grad_sums(n, xr, gr, gamma, st, &sg, &sgx);
        pk_layer_norm_grad_row(n, xr, gr, gamma, st, sg / n, sgx / n, dx + r * n);
    }
}
PK_NOINLINE static void pk_layer_norm_gamma_row(long n, const float *x, const float *dy, pk_row_stats st, float *dg) {
    for (long i = 0; i < n; i++) dg[i] += dy[i] * (((x[i] - st.hi) - st.lo) * st.rstd);
}
/* Threads own 16-column strips of dγ (each entry sums the rows in order, as on one thread);
   each recomputes the row statistics it needs (a pass over the row: 2 threads ≈ 1.3×). */
static void pk_layer_norm_backward_gamma(long rows, long n, const float *x, const float *dy, float eps, float *dg) {
    for (long i = 0; i < n; i++) dg[i] = 0.0f;
    PK_REGION(rows * n >= PK_PAR_MIN && n >= 32)
    {
        long s0, s1;
        pk_share((n + 15) / 16, &s0, &s1);
        long j0 = s0 * 16, j1 = pk_min(n, s1 * 16);
        for (long r = 0; r < rows && j1 > j0; r++)
            pk_layer_norm_gamma_row(j1 - j0, x + r * n + j0, dy + r * n + j0, pk_layer_norm_stats(n, x + r * n, eps),
                                    dg + j0);
    }
}
