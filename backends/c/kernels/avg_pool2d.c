/* avg_pool2d over NC planes (train.avg_pool2d): each output is its window's sum over the
   divisor of avg_pool_window.c.
   requires: avg_pool_window */
static void pk_avg_pool2d(long NC, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL,
                          long DH, long DW, long HO, long WO, long PB, long PR, long include_pad,
                          const float *x, float *y) {
    PK_UNUSED(DH); PK_UNUSED(DW);
    for (long p = 0; p < NC; p++) {
        const float *xin = x + p * H * W;
        float *out = y + p * HO * WO;
        for (long oh = 0; oh < HO; oh++)
            for (long ow = 0; ow < WO; ow++) {
                pk_avg_window win = pk_avg_pool_window(oh, ow, H, W, KH, KW, SH, SW, PT, PL, PB, PR, include_pad);
                float s = 0.0f;
                for (long ih = win.hs; ih < win.he; ih++)
                    for (long iw = win.ws; iw < win.we; iw++) s += xin[ih * W + iw];
                out[oh * WO + ow] = win.count > 0 ? s / (float)win.count : 0.0f;
            }
    }
}
