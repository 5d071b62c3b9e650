/* conv2d_backward_weight: dw of train.conv2d (train.conv2d_backward_weight), summed over the
   batch: dw[g] = Σ_n dy[n, g] · col(x[n, g])ᵀ. Depthwise: direct loops. 1×1 stride 1: the
   input itself is the column matrix. With `ab` (alpha, beta): dw = alpha·Σ… + beta·dw.
   requires: gemm conv2d */
static void pk_conv2d_backward_weight(long N, long C, long H, long W, long O, long KH, long KW, long SH, long SW,
                                      long PT, long PL, long DH, long DW, long G, long HO, long WO,
                                      const float *x, const float *dy, float *dw, const float *ab, float *work) {
    long cg = C / G, og = O / G, K = cg * KH * KW, P = HO * WO;
    float alpha = ab ? ab[0] : 1.0f, beta = ab ? ab[1] : 0.0f;
    if (G == C && cg == 1 && G > 1) {
        long mult = O / C;
        for (long o = 0; o < O; o++)
            for (long i = 0; i < KH; i++)
                for (long j = 0; j < KW; j++) {
                    long d = j * DW - PL;
                    long lo = d >= 0 ? 0 : (-d + SW - 1) / SW;
                    long hi = W - 1 - d < 0 ? 0 : pk_min(WO, (W - 1 - d) / SW + 1);
                    double acc = 0.0;
                    for (long n = 0; n < N; n++) {
                        const float *xin = x + (n * C + o / mult) * H * W, *g = dy + (n * O + o) * P;
                        float s = 0.0f;
                        for (long oh = 0; oh < HO; oh++) {
                            long ih = oh * SH - PT + i * DH;
                            if (ih < 0 || ih >= H) continue;
                            const float *src = xin + ih * W + d, *r = g + oh * WO;
                            if (SW == 1) for (long ow = lo; ow < hi; ow++) s += r[ow] * src[ow];
                            else for (long ow = lo; ow < hi; ow++) s += r[ow] * src[ow * SW];
                        }
                        acc += s;
                    }
                    float *out = dw + (o * KH + i) * KW + j;
                    *out = alpha * (float)acc + (beta != 0.0f ? beta * *out : 0.0f);
                }
        return;
    }
    int pointwise = KH == 1 && KW == 1 && SH == 1 && SW == 1 && PT == 0 && PL == 0 && HO == H && WO == W;
    float *col = work, *gw = pointwise ? work : work + K * P;
    for (long n = 0; n < N; n++)
        for (long g = 0; g < G; g++) {
            const float *xg = x + (n * C + g * cg) * H * W, *dyg = dy + (n * O + g * og) * P;
            if (!pointwise) pk_im2col(cg, H, W, KH, KW, SH, SW, PT, PL, DH, DW, HO, WO, xg, col);
            /* B = colᵀ (P × K): B[p, k] = col[k*P + p] */
            pk_gemm_ab(og, K, P, dyg, P, 1, pointwise ? xg : col, 1, P, dw + g * og * K, K, 1,
                       alpha, n > 0 ? 1.0f : beta, gw);
        }
}
