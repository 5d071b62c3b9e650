/* rms_norm over rows of n (train.rms_norm): y = x / sqrt(mean(x²) + eps) * g. */
static void pk_rms_norm(long rows, long n, const float *x, const float *g, float eps, float *y) {
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        double q = 0.0;
        PK_SIMD_SUM(q)
        for (long i = 0; i < n; i++) q += xr[i] * xr[i];
        float inv = 1.0f / sqrtf((float)(q / n) + eps);
        for (long i = 0; i < n; i++) yr[i] = xr[i] * inv * g[i];
    }
}
