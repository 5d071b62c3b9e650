/* max_pool2d over NC planes of H×W (train.max_pool2d); padding counts as -inf. A NaN in a
   window makes its maximum NaN (numpy's max, torch's max_pool2d). */
static void pk_max_pool2d(long NC, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL,
                          long DH, long DW, long HO, long WO, const float *x, float *y) {
    for (long p = 0; p < NC; p++) {
        const float *xin = x + p * H * W;
        float *out = y + p * HO * WO;
        for (long oh = 0; oh < HO; oh++)
            for (long ow = 0; ow < WO; ow++) {
                float m = -INFINITY;
                for (long i = 0; i < KH; i++) {
                    long ih = oh * SH - PT + i * DH;
                    if (ih < 0 || ih >= H) continue;
                    for (long j = 0; j < KW; j++) {
                        long iw = ow * SW - PL + j * DW;
                        if (iw < 0 || iw >= W) continue;
                        float v = xin[ih * W + iw];
                        m = pk_nanmaxf(m, v);  /* once NaN, m stays NaN */
                    }
                }
                out[oh * WO + ow] = m;
            }
    }
}
