/* avg_pool2d_backward (train.avg_pool2d_backward): each dy / (its window's divisor, as in
   avg_pool2d.c) spread over the input cells of its window. */
static void pk_avg_pool2d_backward(long NC, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL,
                                   long HO, long WO, long PB, long PR, long include_pad,
                                   const float *dy, float *dx) {
    memset(dx, 0, NC * H * W * sizeof(float));
    for (long p = 0; p < NC; p++) {
        const float *g = dy + p * HO * WO;
        float *out = dx + p * H * W;
        for (long oh = 0; oh < HO; oh++)
            for (long ow = 0; ow < WO; ow++) {
                long h0 = oh * SH - PT, w0 = ow * SW - PL;
                long h1 = pk_min(h0 + KH, H + PB), w1 = pk_min(w0 + KW, W + PR);
                long count = (h1 - h0) * (w1 - w0);
                long hs = pk_max(h0, 0), ws = pk_max(w0, 0), he = pk_min(h1, H), we = pk_min(w1, W);
                if (!include_pad) count = (he - hs) * (we - ws);
                if (count <= 0) continue;
                float share = g[oh * WO + ow] / (float)count;
                for (long ih = hs; ih < he; ih++)
                    for (long iw = ws; iw < we; iw++) out[ih * W + iw] += share;
            }
    }
}
