/* avg_pool2d_backward (train.avg_pool2d_backward): each dy / (its window's divisor, as in
   avg_pool2d.c) spread over the input cells of its window.
   requires: avg_pool_window */
static void pk_avg_pool2d_backward(long NC, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL,
                                   long HO, long WO, long PB, long PR, long include_pad,
                                   const float *dy, float *dx) {
    memset(dx, 0, NC * H * W * sizeof(float));
    for (long p = 0; p < NC; p++) {
        const float *g = dy + p * HO * WO;
        float *out = dx + p * H * W;
        for (long oh = 0; oh < HO; oh++)
            for (long ow = 0; ow < WO; ow++) {
                pk_avg_window win = pk_avg_pool_window(oh, ow, H, W, KH, KW, SH, SW, PT, PL, PB, PR, include_pad);
                if (win.count <= 0) continue;
                float share = g[oh * WO + ow] / (float)win.count;
                for (long ih = win.hs; ih < win.he; ih++)
                    for (long iw = win.ws; iw < win.we; iw++) out[ih * W + iw] += share;
            }
    }
}
