/* mse: mean (or sum) of (a - b)² over n elements (train.mse). */
static void pk_mse(long n, const float *a, const float *b, long mean, float *out) {
    double s = 0.0;
    for (long i = 0; i < n; i++) { double d = (double)a[i] - b[i]; s += d * d; }
    *out = (float)(mean ? s / (n > 0 ? n : 1) : s);
}
