/* max_pool2d_backward (train.max_pool2d_backward): each dy goes to the first maximum of its
   window (row-major order, as PyTorch picks), found again from x; a window holding NaN
   sends it to its first NaN (numpy's argmax, torch's max_pool2d indices). Threads own planes. */
PK_NOINLINE static void pk_max_pool2d_backward_planes(long p0, long p1, long H, long W, long KH, long KW, long SH,
                                                      long SW, long PT, long PL, long DH, long DW, long HO, long WO,
                                                      const float *x, const float *dy, float *dx) {
    memset(dx + p0 * H * W, 0, (p1 - p0) * H * W * sizeof(float));
    for (long p = p0; p < p1; p++) {
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
static void pk_max_pool2d_backward(long NC, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL,
                                   long DH, long DW, long HO, long WO, const float *x, const float *dy, float *dx) {
    PK_SPLIT(NC, NC > 1 && NC * HO * WO * KH * KW >= PK_PAR_MIN, p0, p1,
             pk_max_pool2d_backward_planes(p0, p1, H, W, KH, KW, SH, SW, PT, PL, DH, DW, HO, WO, x, dy, dx));
}
