/* rms_norm backward over rows of n (train.rms_norm_backward, ..._gamma):
   r = rsqrt(mean(x²) + eps), g = dy·γ, dx = r·g - r³·x·mean(g·x); dγ = Σ_rows dy·x·r. */
PK_INLINE float pk_rms_rstd(long n, const float *xr, float eps) {
    double q = 0.0;
    PK_SIMD_SUM(q)
    for (long i = 0; i < n; i++) q += xr[i] * xr[i];
    return 1.0f / sqrtf((float)(q / n) + eps);
}
static void pk_rms_norm_backward(long rows, long n, const float *x, const float *gamma, const float *dy,
                                 float eps, float *dx) {
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n, *gr = dy + r * n;
        float *out = dx + r * n;
        float rs = pk_rms_rstd(n, xr, eps);
        double sgx = 0.0;
        PK_SIMD_SUM(sgx)
        for (long i = 0; i < n; i++) sgx += gr[i] * gamma[i] * xr[i];
        float c = rs * rs * rs * (float)(sgx / n);
        for (long i = 0; i < n; i++) out[i] = rs * (gr[i] * gamma[i]) - c * xr[i];
    }
}
static void pk_rms_norm_backward_gamma(long rows, long n, const float *x, const float *dy, float eps, float *dg) {
    for (long i = 0; i < n; i++) dg[i] = 0.0f;
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n, *gr = dy + r * n;
        float rs = pk_rms_rstd(n, xr, eps);
        for (long i = 0; i < n; i++) dg[i] += gr[i] * xr[i] * rs;
    }
}
