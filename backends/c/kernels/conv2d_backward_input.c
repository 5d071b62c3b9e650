/* conv2d_backward_input: dx of train.conv2d (train.conv2d_backward_input), the transposed
   convolution of dy with the weight. Depthwise: direct scatter loops. Otherwise
   dcol = w[g]ᵀ · dy[·, g] on the GEMM (per image, or batched over the N images as in
   conv2d.c), then col2im adds each column entry back to the input pixel it came from
   (a 1×1 stride-1 convolution writes dx directly).
   requires: gemm im2col depthwise */

static void pk_conv2d_backward_input(const long *g, const float *dy, const float *w, float *dx, float *work) {
    PK_CONV_GEOMETRY(g);
    if (depthwise) { pk_depthwise_backward_input(g, dy, w, dx, work); return; }
    if (batched) {
        /* dcolᵀ (N·P × K) = dyᵀ · w[g]: the weight is read row by row (the fast packing) */
        long NP = N * P;
        float *dyall = work, *dcolT = work + og * NP, *gw = dcolT + K * NP;
        memset(dx, 0, N * C * H * W * sizeof(float));
        for (long gr = 0; gr < G; gr++) {
            for (long n = 0; n < N; n++)
                for (long o = 0; o < og; o++)
                    memcpy(dyall + o * NP + n * P, dy + (n * O + gr * og + o) * P, P * sizeof(float));
            pk_gemm(NP, K, og, dyall, 1, NP, w + gr * og * K, K, 1, dcolT, K, 1, 0, gw);
            for (long n = 0; n < N; n++)
                pk_col2im(cg, H, W, KH, KW, SH, SW, PT, PL, DH, DW, HO, WO, dcolT + n * P * K, 1, K,
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
            if (!pointwise) pk_col2im(cg, H, W, KH, KW, SH, SW, PT, PL, DH, DW, HO, WO, col, P, 1, xg);
        }
}
