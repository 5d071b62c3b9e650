/* conv2d: NCHW input, OIHW weight, grouped (train.conv2d). Depthwise convolutions run on
   padded planes (depthwise.c). Otherwise the input is unfolded (im2col; a 1×1 stride-1 convolution needs
   none) and multiplied by the weight on the packed GEMM, either
     per image:  y[n, g] = w[g] · col(x[n, g])            (large outputs: small workspace)
     batched:    y[:, g] = w[g] · [col(x[0, g]) … col(x[N-1, g])]   (small outputs: one
                 GEMM with N·HO·WO columns instead of N thin ones; then scattered to NCHW)
   The geometry comes as one table g[] = {N, C, H, W, O, KH, KW, SH, SW, PT, PL, DH, DW,
   G, HO, WO, batched}; the lowering picks `batched` and plans the workspace to match.
   requires: gemm im2col depthwise */

static void pk_conv2d(const long *g, const float *x, const float *w, float *y, float *work) {
    PK_CONV_GEOMETRY(g);
    if (depthwise) { pk_depthwise_forward(g, x, w, y, work); return; }
    if (batched) {
        long NP = N * P;
        float *col = work, *tmp = work + K * NP, *gw = tmp + og * NP;
        for (long gr = 0; gr < G; gr++) {
            for (long n = 0; n < N; n++)
                pk_im2col(cg, H, W, KH, KW, SH, SW, PT, PL, DH, DW, HO, WO, x + (n * C + gr * cg) * H * W,
                          col + n * P, NP, 1);
            pk_gemm(og, NP, K, w + gr * og * K, K, 1, col, NP, 1, tmp, NP, 1, 0, gw);
            for (long n = 0; n < N; n++)
                for (long o = 0; o < og; o++)
                    memcpy(y + (n * O + gr * og + o) * P, tmp + o * NP + n * P, P * sizeof(float));
        }
        return;
    }
    float *col = work, *gw = pointwise ? work : work + K * P;
    for (long n = 0; n < N; n++)
        for (long gr = 0; gr < G; gr++) {
            const float *xg = x + (n * C + gr * cg) * H * W;
            if (!pointwise) pk_im2col(cg, H, W, KH, KW, SH, SW, PT, PL, DH, DW, HO, WO, xg, col, P, 1);
            pk_gemm(og, P, K, w + gr * og * K, K, 1, pointwise ? xg : col, P, 1,
                    y + (n * O + gr * og) * P, P, 1, 0, gw);
        }
}
