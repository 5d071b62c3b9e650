/* layer_norm backward over rows of n (train.layer_norm_backward, ..._gamma):
   x̂ = (x - μ)·rstd, g = dy·γ, dx = rstd·(g - mean(g) - x̂·mean(g·x̂)); dγ = Σ_rows dy·x̂. */
PK_INLINE void pk_layer_norm_stats(long n, const float *xr, float eps, float *mean, float *rstd) {
    double s = 0.0, q = 0.0;
    PK_SIMD_SUM(s)
    for (long i = 0; i < n; i++) s += xr[i];
    float mu = (float)(s / n);
    PK_SIMD_SUM(q)
    for (long i = 0; i < n; i++) { float d = xr[i] - mu; q += d * d; }
    *mean = mu;
    *rstd = 1.0f / sqrtf((float)(q / n) + eps);
}
static void pk_layer_norm_backward(long rows, long n, const float *x, const float *gamma, const float *dy,
                                   float eps, float *dx) {
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n, *gr = dy + r * n;
        float *out = dx + r * n;
        float mu, rstd;
        pk_layer_norm_stats(n, xr, eps, &mu, &rstd);
        double sg = 0.0, sgx = 0.0;
        PK_PRAGMA(omp simd reduction(+:sg, sgx))
        for (long i = 0; i < n; i++) {
            float g = gr[i] * gamma[i], xh = (xr[i] - mu) * rstd;
            sg += g; sgx += g * xh;
        }
        float mg = (float)(sg / n), mgx = (float)(sgx / n);
        for (long i = 0; i < n; i++) {
            float g = gr[i] * gamma[i], xh = (xr[i] - mu) * rstd;
            out[i] = rstd * (g - mg - xh * mgx);
        }
    }
}
static void pk_layer_norm_backward_gamma(long rows, long n, const float *x, const float *dy, float eps, float *dg) {
    for (long i = 0; i < n; i++) dg[i] = 0.0f;
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n, *gr = dy + r * n;
        float mu, rstd;
        pk_layer_norm_stats(n, xr, eps, &mu, &rstd);
        for (long i = 0; i < n; i++) dg[i] += gr[i] * ((xr[i] - mu) * rstd);
    }
}
