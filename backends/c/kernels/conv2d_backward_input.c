/* conv2d_backward_input: dx of train.conv2d (train.conv2d_backward_input), the transposed
   convolution of dy with the weight. Depthwise: direct scatter loops. Otherwise
   dcol = w[g]ᵀ · dy[·, g] on the GEMM (per image, or batched over the N images as in
   conv2d.c), then col2im adds each column entry back to the input pixel it came from
   (a 1×1 stride-1 convolution writes dx directly).
   requires: gemm conv2d */

/* x[c][ih][iw] += col[(c*KH + i)*KW + j][oh*WO + ow] for every tap that read it; rows of col
   are ld floats apart. x must be zeroed first. */
static void pk_col2im(long C, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL,
                      long DH, long DW, long HO, long WO, const float *col, long ld, float *x) {
    for (long c = 0; c < C; c++)
        for (long i = 0; i < KH; i++)
            for (long j = 0; j < KW; j++) {
                const float *row = col + ((c * KH + i) * KW + j) * ld;
                long d = j * DW - PL, lo, hi;
                pk_conv_cols(W, WO, SW, d, &lo, &hi);
                for (long oh = 0; oh < HO; oh++) {
                    long ih = oh * SH - PT + i * DH;
                    if (ih < 0 || ih >= H) continue;
                    float *dst = x + (c * H + ih) * W + d;
                    const float *r = row + oh * WO;
                    if (SW == 1) for (long ow = lo; ow < hi; ow++) dst[ow] += r[ow];
                    else for (long ow = lo; ow < hi; ow++) dst[ow * SW] += r[ow];
                }
            }
}

static void pk_conv2d_backward_input(const long *g, const float *dy, const float *w, float *dx, float *work) {
    PK_CONV_GEOMETRY(g);
    if (depthwise) {
        long mult = O / C;
        memset(dx, 0, N * C * H * W * sizeof(float));
        for (long n = 0; n < N; n++)
            for (long o = 0; o < O; o++) {
                float *xin = dx + (n * C + o / mult) * H * W;
                const float *wk = w + o * KH * KW, *gy = dy + (n * O + o) * P;
                for (long oh = 0; oh < HO; oh++)
                    for (long i = 0; i < KH; i++) {
                        long ih = oh * SH - PT + i * DH;
                        if (ih < 0 || ih >= H) continue;
                        for (long j = 0; j < KW; j++) {
                            long d = j * DW - PL, lo, hi;
                            pk_conv_cols(W, WO, SW, d, &lo, &hi);
                            float *dst = xin + ih * W + d;
                            const float *r = gy + oh * WO;
                            float wv = wk[i * KW + j];
                            if (SW == 1) for (long ow = lo; ow < hi; ow++) dst[ow] += wv * r[ow];
                            else for (long ow = lo; ow < hi; ow++) dst[ow * SW] += wv * r[ow];
                        }
                    }
            }
        return;
    }
    if (batched) {
        long NP = N * P;
        float *dyall = work, *dcol = work + og * NP, *gw = dcol + K * NP;
        memset(dx, 0, N * C * H * W * sizeof(float));
        for (long gr = 0; gr < G; gr++) {
            for (long n = 0; n < N; n++)
                for (long o = 0; o < og; o++)
                    memcpy(dyall + o * NP + n * P, dy + (n * O + gr * og + o) * P, P * sizeof(float));
            pk_gemm(K, NP, og, w + gr * og * K, 1, K, dyall, NP, 1, dcol, NP, 1, 0, gw);
            for (long n = 0; n < N; n++)
                pk_col2im(cg, H, W, KH, KW, SH, SW, PT, PL, DH, DW, HO, WO, dcol + n * P, NP,
                          dx + (n * C + gr * cg) * H * W);
        }
        return;
    }
    float *col = work, *gw = pointwise ? work : work + K * P;
    if (!pointwise) memset(dx, 0, N * C * H * W * sizeof(float));
    for (long n = 0; n < N; n++)
        for (long gr = 0; gr < G; gr++) {
            float *xg = dx + (n * C + gr * cg) * H * W;
            /* A = w[g]ᵀ (K × og): A[k, o] = w[g][o*K + k] */
            pk_gemm(K, P, og, w + gr * og * K, 1, K, dy + (n * O + gr * og) * P, P, 1, pointwise ? xg : col, P, 1,
                    0, gw);
            if (!pointwise) pk_col2im(cg, H, W, KH, KW, SH, SW, PT, PL, DH, DW, HO, WO, col, P, xg);
        }
}
