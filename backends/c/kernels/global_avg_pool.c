/* global_avg_pool: y[p] = mean of the HW values of plane p (train.global_avg_pool). */
static void pk_global_avg_pool(long NC, long HW, const float *x, float *y) {
    for (long p = 0; p < NC; p++) {
        float s = 0.0f;
        const float *xp = x + p * HW;
        for (long i = 0; i < HW; i++) s += xp[i];
        y[p] = s / (float)HW;
    }
}
