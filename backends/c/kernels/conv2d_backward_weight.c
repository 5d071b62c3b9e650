/* conv2d_backward_weight: dw of train.conv2d (train.conv2d_backward_weight), summed over the
   batch: dw[g] = dy[·, g] · col(x[·, g])ᵀ, one implicit GEMM per group whose inner axis runs
   over the output pixels of all images, qb at a time (im2col.c): dy's rows and col's rows
   are packed straight into the micro-kernel's panels, and each MR-row tile of dw is swept
   along its row block by block (nb columns), so dw streams through once per qb pixels.
   A 1×1 convolution over large images (the lowering's choice: nb = 0) is one GEMM per image
   on x itself. Depthwise: depthwise.c. With `ab` (alpha, beta): dw = alpha·Σ… + beta·dw, an
   SGD update accumulating straight into its buffer.
   requires: gemm im2col depthwise */

/* dy columns q0..q0+nq, all og rows of the group, as A panels: dst[ip·nq·MR + u·MR + i] =
   dy[n][ip·MR + i][p] for q0 + u = n·P + p, zero rows beyond og. */
static void pk_conv_pack_dy_rows(const long *g, const float *dyg, long q0, long nq, long i0, long i1, float *dst) {
    PK_CONV_GEOMETRY(g);
    for (long ip = i0; ip < i1 && ip * PK_MR < og; ip++) {  /* panels i0..i1: a thread's share */
        long m = pk_min(PK_MR, og - ip * PK_MR);
        float *d = dst + ip * nq * PK_MR;
        for (long u = 0, len; u < nq; u += len) {
            long q = q0 + u, p = q % P;
            const float *s = dyg + (q / P * O + ip * PK_MR) * P;
            len = pk_min(P - p, nq - u);
            for (long v = 0; v < len; v++)
                for (long i = 0; i < PK_MR; i++) d[(u + v) * PK_MR + i] = i < m ? s[i * P + p + v] : 0.0f;
        }
    }
}

static void pk_conv2d_backward_weight(const long *g, const float *x, const float *dy, float *dw, const float *ab,
                                      float *work) {
    PK_CONV_GEOMETRY(g);
    float alpha = ab ? ab[0] : 1.0f, beta = ab ? ab[1] : 0.0f;
    if (depthwise) { pk_depthwise_backward_weight(g, x, dy, dw, alpha, beta, work); return; }
    if (!nb) {  /* a 1×1 convolution over large images: dw[g] = Σ_n dy[n, g] · x[n, g]ᵀ on the GEMM */
        for (long n = 0; n < N; n++)
            for (long gr = 0; gr < G; gr++)
                pk_gemm_ab(og, cg, P, dy + (n * O + gr * og) * P, P, 1, x + (n * C + gr * cg) * P, 1, P,
                           dw + gr * og * cg, cg, 1, alpha, n > 0 ? 1.0f : beta, work);
        return;
    }
    int32_t *T = (int32_t *)work;
    float *pa = (float *)(T + taps * qb), *pb = pa + pk_round_up(og, PK_MR) * qb;
    for (long gr = 0; gr < G; gr++) {
        const float *xg = x + gr * cg * H * W;
        float *dwg = dw + gr * og * K;
        for (long q0 = 0; q0 < Q; q0 += qb) {
            long nq = pk_min(qb, Q - q0);
            float be = q0 > 0 ? 1.0f : beta;  /* later pixel blocks add to what the first wrote */
            pk_conv_offsets(g, q0, nq, qb, T, NULL);
            /* one region per pixel block: threads pack shares of dy's row panels (shared),
               then own column panels of dw, packing their own panels of colᵀ */
            PK_REGION(og * K * nq > PK_PAR_GEMM_MIN)
            {
                long i0, i1;
                pk_share((og + PK_MR - 1) / PK_MR, &i0, &i1);
                pk_conv_pack_dy_rows(g, dy + gr * og * P, q0, nq, i0, i1, pa);
                PK_BARRIER
                for (long k0 = 0; k0 < K; k0 += nb) {
                    long nk = pk_min(nb, K - k0), p0, p1;
                    pk_share((nk + PK_NR - 1) / PK_NR, &p0, &p1);
                    long j0 = p0 * PK_NR, j1 = pk_min(nk, p1 * PK_NR);
                    if (j1 <= j0) continue;
                    pk_conv_pack_cols_t(g, xg, T, qb, k0 + j0, j1 - j0, nq, pb + j0 * nq);
                    for (long jr = j0; jr < j1; jr += PK_NR)
                        for (long ir = 0; ir < og; ir += PK_MR)
                            pk_conv_tile(nq, pa + ir * nq, 0, pk_min(PK_MR, og - ir), pb + jr * nq,
                                         dwg + ir * K + k0 + jr, K, pk_min(PK_NR, nk - jr), alpha, be);
                }
            }
        }
    }
}
