/* max_pool2d_backward (train.max_pool2d_backward): each dy goes to the first maximum of its
   window (row-major order, as PyTorch picks), found again from x; a window holding NaN
   sends it to its first NaN (numpy's argmax, torch's max_pool2d indices). */
static void pk_max_pool2d_backward(long NC, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL,
                                   long DH, long DW, long HO, long WO, const float *x, const float *dy, float *dx) {
    memset(dx, 0, NC * H * W * sizeof(float));
    for (long p = 0; p < NC; p++) {
        const float *xin = x + p * H * W, *g = dy + p * HO * WO;
        float *out = dx + p * H * W;
        for (long oh = 0; oh < HO; oh++)
            for (long ow = 0; ow < WO; ow++) {
                float m = -INFINITY;
                long at = -1;
                for (long i = 0; i < KH; i++) {
                    long ih = oh * SH - PT + i * DH;
                    if (ih < 0 || ih >= H) continue;
                    for (long j = 0; j < KW; j++) {
                        long iw = ow * SW - PL + j * DW;
                        if (iw < 0 || iw >= W) continue;
                        float v = xin[ih * W + iw];
                        if (v > m || at < 0 || (v != v && m == m)) { m = v; at = ih * W + iw; }
                    }
                }
                if (at >= 0) out[at] += g[oh * WO + ow];
            }
    }
}
