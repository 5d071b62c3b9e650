/* conv2d_backward_weight: dw of train.conv2d (train.conv2d_backward_weight), summed over the
   batch: dw[g] = Σ_n dy[n, g] · col(x[n, g])ᵀ, per image or batched (one GEMM over all
   N·HO·WO columns) as in conv2d.c. Depthwise: direct loops. With `ab` (alpha, beta):
   dw = alpha·Σ… + beta·dw, an SGD update accumulating straight into its buffer.
   requires: gemm im2col depthwise */
static void pk_conv2d_backward_weight(const long *g, const float *x, const float *dy, float *dw, const float *ab,
                                      float *work) {
    PK_CONV_GEOMETRY(g);
    float alpha = ab ? ab[0] : 1.0f, beta = ab ? ab[1] : 0.0f;
    if (depthwise) { pk_depthwise_backward_weight(g, x, dy, dw, alpha, beta, work); return; }
    if (batched) {
        /* dw[g] = dy[·, g] · colᵀ with col unfolded transposed (N·P × K), read row by row */
        long NP = N * P;
        float *dyall = work, *colT = work + og * NP, *gw = colT + K * NP;
        for (long gr = 0; gr < G; gr++) {
            for (long n = 0; n < N; n++) {
                for (long o = 0; o < og; o++)
                    memcpy(dyall + o * NP + n * P, dy + (n * O + gr * og + o) * P, P * sizeof(float));
                pk_im2col(cg, H, W, KH, KW, SH, SW, PT, PL, DH, DW, HO, WO, x + (n * C + gr * cg) * H * W,
                          colT + n * P * K, 1, K);
            }
            pk_gemm_ab(og, K, NP, dyall, NP, 1, colT, K, 1, dw + gr * og * K, K, 1, alpha, beta, gw);
        }
        return;
    }
    float *col = work, *gw = pointwise ? work : work + K * P;
    for (long n = 0; n < N; n++)
        for (long gr = 0; gr < G; gr++) {
            const float *xg = x + (n * C + gr * cg) * H * W, *dyg = dy + (n * O + gr * og) * P;
            if (!pointwise) pk_im2col(cg, H, W, KH, KW, SH, SW, PT, PL, DH, DW, HO, WO, xg, col, P, 1);
            pk_gemm_ab(og, K, P, dyg, P, 1, pointwise ? xg : col, 1, P, dw + gr * og * K, K, 1,
                       alpha, n > 0 ? 1.0f : beta, gw);
        }
}
