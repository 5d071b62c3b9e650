/* conv2d_backward_input: dx of train.conv2d (train.conv2d_backward_input), the transposed
   convolution of dy with the weight. Depthwise: direct scatter loops. 1×1 stride 1: one
   GEMM per image and group, dx = wᵀ·dy. Otherwise dcol = wᵀ·dy in the workspace, then
   col2im adds each column entry back to the input pixel it came from.
   requires: gemm */

static void pk_col2im(long C, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL,
                      long DH, long DW, long HO, long WO, const float *col, float *x) {
    memset(x, 0, C * H * W * sizeof(float));
    for (long c = 0; c < C; c++)
        for (long i = 0; i < KH; i++)
            for (long j = 0; j < KW; j++) {
                const float *row = col + ((c * KH + i) * KW + j) * HO * WO;
                long dx = j * DW - PL;
                long lo = dx >= 0 ? 0 : (-dx + SW - 1) / SW;
                long hi = W - 1 - dx < 0 ? 0 : pk_min(WO, (W - 1 - dx) / SW + 1);
                for (long oh = 0; oh < HO; oh++) {
                    long ih = oh * SH - PT + i * DH;
                    if (ih < 0 || ih >= H) continue;
                    float *dst = x + (c * H + ih) * W + dx;
                    const float *r = row + oh * WO;
                    if (SW == 1) for (long ow = lo; ow < hi; ow++) dst[ow] += r[ow];
                    else for (long ow = lo; ow < hi; ow++) dst[ow * SW] += r[ow];
                }
            }
}

static void pk_conv2d_backward_input(long N, long C, long H, long W, long O, long KH, long KW, long SH, long SW,
                                     long PT, long PL, long DH, long DW, long G, long HO, long WO,
                                     const float *dy, const float *w, float *dx, float *work) {
    long cg = C / G, og = O / G, K = cg * KH * KW, P = HO * WO;
    if (G == C && cg == 1 && G > 1) {
        long mult = O / C;
        memset(dx, 0, N * C * H * W * sizeof(float));
        for (long n = 0; n < N; n++)
            for (long o = 0; o < O; o++) {
                float *xin = dx + (n * C + o / mult) * H * W;
                const float *wk = w + o * KH * KW, *g = dy + (n * O + o) * P;
                for (long oh = 0; oh < HO; oh++)
                    for (long i = 0; i < KH; i++) {
                        long ih = oh * SH - PT + i * DH;
                        if (ih < 0 || ih >= H) continue;
                        for (long j = 0; j < KW; j++) {
                            long d = j * DW - PL;
                            long lo = d >= 0 ? 0 : (-d + SW - 1) / SW;
                            long hi = W - 1 - d < 0 ? 0 : pk_min(WO, (W - 1 - d) / SW + 1);
                            float *dst = xin + ih * W + d;
                            const float *r = g + oh * WO;
                            float wv = wk[i * KW + j];
                            if (SW == 1) for (long ow = lo; ow < hi; ow++) dst[ow] += wv * r[ow];
                            else for (long ow = lo; ow < hi; ow++) dst[ow * SW] += wv * r[ow];
                        }
                    }
            }
        return;
    }
    int pointwise = KH == 1 && KW == 1 && SH == 1 && SW == 1 && PT == 0 && PL == 0 && HO == H && WO == W;
    float *col = work, *gw = pointwise ? work : work + K * P;
    for (long n = 0; n < N; n++)
        for (long g = 0; g < G; g++) {
            float *xg = dx + (n * C + g * cg) * H * W;
            const float *wg = w + g * og * K, *dyg = dy + (n * O + g * og) * P;
            /* A = wgᵀ (K × og): A[k, o] = wg[o*K + k] */
            pk_gemm(K, P, og, wg, 1, K, dyg, P, 1, pointwise ? xg : col, P, 1, 0, gw);
            if (!pointwise) pk_col2im(cg, H, W, KH, KW, SH, SW, PT, PL, DH, DW, HO, WO, col, xg);
        }
}
