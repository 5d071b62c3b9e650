/* conv2d: NCHW input, OIHW weight, grouped (train.conv2d). Depthwise convolutions run on
   padded planes (depthwise.c). The others are one implicit GEMM per group over the output
   pixels of all images, y[:, g] = w[g] · col(x[:, g]) (im2col.c): blocks of nb columns and
   KC rows of col are packed straight from x into the GEMM's B panels; the weight rows are
   read in place by the micro-kernel (narrow blocks) or packed (wide ones). A tile lands in
   y directly when its NR columns lie in one image (HO·WO a multiple of NR); otherwise the
   block goes through a buffer of og × nb, copied out image by image. A 1×1 convolution over
   large images (the lowering's choice: nb = 0) is one GEMM per image on x itself.
   With an epilogue `ep` (gemm.c; may be null) it runs on each finished part of y, in the
   domain (image, output channel, pixel): an in-place block in the GEMM's last K block, or
   a buffered block right after its copy into y, while it is in cache.
   requires: gemm im2col depthwise */

/* The epilogue on rows o0..o0+m of columns q0..q0+nq of y, image by image. */
static void pk_conv_epilogue(const pk_epilogue *ep, float *y, long O, long P, long q0, long nq, long o0, long m) {
    for (long u = 0, len; u < nq; u += len) {
        long q = q0 + u;
        len = pk_min(P - q % P, nq - u);
        ep->fn(ep, y + (q / P * O + o0) * P + q % P, P, q / P, o0, q % P, m, len);
    }
}

static void pk_conv2d(const long *g, const float *x, const float *w, float *y, float *work,
                      const pk_epilogue *ep) {
    PK_CONV_GEOMETRY(g);
    if (depthwise) {  /* (the fusion pass makes no epilogue for these: a plain pass after) */
        pk_depthwise_forward(g, x, w, y, work);
        if (ep) pk_conv_epilogue(ep, y, O, P, 0, Q, 0, O);
        return;
    }
    if (!nb) {  /* a 1×1 convolution over large images: y[n, g] = w[g] · x[n, g] on the GEMM */
        for (long n = 0; n < N; n++)
            for (long gr = 0; gr < G; gr++) {
                pk_epilogue e;
                if (ep) { e = *ep; e.b = n; e.i0 = gr * og; }
                pk_gemm_ep(og, P, cg, w + gr * og * cg, cg, 1, x + (n * C + gr * cg) * P, P, 1,
                           y + (n * O + gr * og) * P, P, 1, 1.0f, 0.0f, work, ep ? &e : NULL);
            }
        return;
    }
    long npan = (nb + PK_NR - 1) / PK_NR;
    int direct_out = P % PK_NR == 0;
    int32_t *T = (int32_t *)work, *R = T + taps * nb;
    float *pb = (float *)(R + taps * npan), *buf = pb + pk_min(K, PK_KC) * nb;
    float *pa = direct_out ? buf : buf + og * nb;
    for (long q0 = 0; q0 < Q; q0 += nb) {
        long nq = pk_min(nb, Q - q0);
        int direct_a = PK_DIRECT_A && nq <= 4 * PK_NR;  /* as in pk_gemm_ab: packing A costs more */
        pk_conv_offsets(g, q0, nq, nb, T, R);
        for (long gr = 0; gr < G; gr++) {
            const float *xg = x + gr * cg * H * W, *wg = w + gr * og * K;
            /* one region per block: each thread packs its share of the column panels and
               computes them for every row block (a packed weight block is shared: each thread
               packs a share between barriers); then threads own rows of the buffered copy-out */
            long np = (nq + PK_NR - 1) / PK_NR;
            PK_REGION(og * nq * K > PK_PAR_GEMM_MIN && np > 1)
            {
                long p0, p1;
                pk_share(np, &p0, &p1);
                long j0 = p0 * PK_NR, j1 = pk_min(nq, p1 * PK_NR);
                /* this thread's panels, at a place that does not move with kc (the last K
                   block is shorter: its panels must not reach into another thread's) */
                float *pbt = pb + j0 * pk_min(K, PK_KC);
                for (long pc = 0; pc < K; pc += PK_KC) {
                    long kc = pk_min(PK_KC, K - pc);
                    if (j1 > j0) pk_conv_pack_cols(g, xg, T, R, pc, kc, j0, j1, pbt);
                    for (long ic = 0; ic < og; ic += PK_MC) {
                        long mc = pk_min(PK_MC, og - ic);
                        if (!direct_a) {  /* the weight block packed by all, a share of its panels each */
                            long a0, a1;
                            PK_BARRIER
                            pk_share((mc + PK_MR - 1) / PK_MR, &a0, &a1);
                            if (a1 > a0)
                                pk_pack_a(pk_min(mc, a1 * PK_MR) - a0 * PK_MR, kc, wg + (ic + a0 * PK_MR) * K + pc, K, 1,
                                          pa + a0 * PK_MR * kc);
                            PK_BARRIER
                        }
                        for (long jr = j0; jr < j1; jr += PK_NR) {
                            long q = q0 + jr, n = pk_min(PK_NR, nq - jr);
                            for (long ir = 0; ir < mc; ir += PK_MR) {
                                long o = ic + ir;
                                float *c = direct_out ? y + ((q / P * O) + gr * og + o) * P + q % P : buf + o * nb + jr;
                                pk_conv_tile(kc, direct_a ? wg + o * K + pc : pa + ir * kc, direct_a ? K : 0,
                                             pk_min(PK_MR, mc - ir), pbt + (jr - j0) * kc, c, direct_out ? P : nb, n, 1.0f,
                                             pc > 0 ? 1.0f : 0.0f);
                            }
                        }
                        if (ep && direct_out && pc + kc == K && j1 > j0)  /* this thread's columns are final */
                            pk_conv_epilogue(ep, y, O, P, q0 + j0, j1 - j0, gr * og + ic, mc);
                    }
                }
                if (!direct_out) {
                    PK_BARRIER  /* the whole block is in the buffer */
                    long o0, o1;
                    pk_share(og, &o0, &o1);
                    for (long o = o0; o < o1; o++)
                        for (long u = 0, len; u < nq; u += len) {
                            long q = q0 + u;
                            len = pk_min(P - q % P, nq - u);
                            memcpy(y + (q / P * O + gr * og + o) * P + q % P, buf + o * nb + u, len * sizeof(float));
                        }
                    if (ep && o1 > o0) pk_conv_epilogue(ep, y, O, P, q0, nq, gr * og + o0, o1 - o0);
                }
            }
        }
    }
}
