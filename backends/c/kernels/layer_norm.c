/* layer_norm over rows of n (train.layer_norm): y = (x - mean) / sqrt(var + eps) * g + b. */
static void pk_layer_norm(long rows, long n, const float *x, const float *g, const float *b, float eps, float *y) {
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *yr = y + r * n;
        double s = 0.0, q = 0.0;
        PK_SIMD_SUM(s)
        for (long i = 0; i < n; i++) s += xr[i];
        float mean = (float)(s / n);
        PK_SIMD_SUM(q)
        for (long i = 0; i < n; i++) { float d = xr[i] - mean; q += d * d; }
        float inv = 1.0f / sqrtf((float)(q / n) + eps);
        for (long i = 0; i < n; i++) yr[i] = (xr[i] - mean) * inv * g[i] + b[i];
    }
}
