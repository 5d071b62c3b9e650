/* avg_pool2d over NC planes (train.avg_pool2d). The divisor counts window cells inside the
   padded input when include_pad (PyTorch's count_include_pad), else only cells inside the
   input; the ceil_mode overhang past the padding never counts. */
static void pk_avg_pool2d(long NC, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL,
                          long DH, long DW, long HO, long WO, long PB, long PR, long include_pad,
                          const float *x, float *y) {
    PK_UNUSED(DH); PK_UNUSED(DW);
    for (long p = 0; p < NC; p++) {
        const float *xin = x + p * H * W;
        float *out = y + p * HO * WO;
        for (long oh = 0; oh < HO; oh++)
            for (long ow = 0; ow < WO; ow++) {
                long h0 = oh * SH - PT, w0 = ow * SW - PL;
                long h1 = pk_min(h0 + KH, H + PB), w1 = pk_min(w0 + KW, W + PR);
                long count = (h1 - h0) * (w1 - w0);
                long hs = pk_max(h0, 0), ws = pk_max(w0, 0), he = pk_min(h1, H), we = pk_min(w1, W);
                if (!include_pad) count = (he - hs) * (we - ws);
                float s = 0.0f;
                for (long ih = hs; ih < he; ih++)
                    for (long iw = ws; iw < we; iw++) s += xin[ih * W + iw];
                out[oh * WO + ow] = count > 0 ? s / (float)count : 0.0f;
            }
    }
}
