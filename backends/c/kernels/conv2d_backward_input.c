/* conv2d_backward_input: dx of train.conv2d (train.conv2d_backward_input), the transposed
   convolution of dy with the weight. Depthwise: depthwise.c. Otherwise, per group and block
   of nb output pixels (all images), dcol = w[g]ᵀ · dy[·, g] on the GEMM's micro-kernel, MC
   rows of dcol at a time into a buffer, each block added back onto the input pixels it came
   from (col2im, im2col.c) while it is still in cache: no full dcol is ever stored. A 1×1
   convolution over large images (the lowering's choice: nb = 0) needs no col2im: one GEMM
   per image writes dx.
   requires: gemm im2col depthwise */

/* dy columns q0..q0+nq of the group (dyg: dy at its first channel) as B panels over all og
   rows: dst[jp·og·NR + o·NR + u] = dy[n][o][p] for q0 + jp·NR + u = n·P + p, zero beyond nq. */
static void pk_conv_pack_dy(const long *g, const float *dyg, long q0, long nq, long p0, long p1, float *dst) {
    PK_CONV_GEOMETRY(g);
    for (long jp = p0; jp < p1 && jp * PK_NR < nq; jp++) {  /* panels p0..p1: a thread's share */
        long base[PK_NR], n = pk_min(PK_NR, nq - jp * PK_NR);
        for (long u = 0; u < n; u++) {
            long q = q0 + jp * PK_NR + u;
            base[u] = q / P * O * P + q % P;
        }
        float *d = dst + jp * og * PK_NR;
        if (n == PK_NR && base[PK_NR - 1] == base[0] + PK_NR - 1) {
            for (long o = 0; o < og; o++) memcpy(d + o * PK_NR, dyg + base[0] + o * P, PK_NR * sizeof(float));
            continue;
        }
        for (long o = 0; o < og; o++)
            for (long u = 0; u < PK_NR; u++) d[o * PK_NR + u] = u < n ? dyg[base[u] + o * P] : 0.0f;
    }
}

/* A = w[g]ᵀ rows k0..k0+mc (the K axis), columns o0..o0+kc: MR-row panels, dst[ip·kc·MR +
   o·MR + i] = wg[(o0 + o)·K + k0 + ip·MR + i], zero rows beyond mc. The weight is read row
   by row (mc floats of each of kc rows), so each page of it is visited once. */
static void pk_conv_pack_wt(long mc, long kc, const float *wg, long K, long k0, long o0, float *dst) {
    long whole = mc / PK_MR;
    for (long o = 0; o < kc; o++) {
        const float *s = wg + (o0 + o) * K + k0;
        float *d = dst + o * PK_MR;
        /* the same rows' next MC floats, packed two blocks later: rows this far apart start
           no hardware stream */
        for (long l = mc; l < 2 * mc && k0 + l < K; l += 16) PK_PREFETCH(s + l);
        for (long ip = 0; ip < whole; ip++)
            for (long i = 0; i < PK_MR; i++) d[ip * kc * PK_MR + i] = s[ip * PK_MR + i];
        if (whole * PK_MR < mc)
            for (long i = 0; i < PK_MR; i++)
                d[whole * kc * PK_MR + i] = whole * PK_MR + i < mc ? s[whole * PK_MR + i] : 0.0f;
    }
}

#if defined(__AVX2__) && defined(__FMA__)
/* The 6×16 AVX2 tile c = A·B + beta·c with A read in place, column-major (A(i, k) at
   a[k·lda + i]): wᵀ needs no transposed copy when few column panels would reuse one. */
#define PK_WT_DIRECT 1
static void pk_conv_kernel_wt(long kc, const float *a, long lda, const float *b, float *c, long rs, float beta) {
    __m256 r[6][2];
    for (int i = 0; i < 6; i++) r[i][0] = r[i][1] = _mm256_setzero_ps();
    for (long k = 0; k < kc; k++, a += lda, b += 16) {
        PK_PREFETCH(a + 48 * lda);  /* A's rows are lda apart: no hardware stream runs ahead */
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        for (int i = 0; i < 6; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            r[i][0] = _mm256_fmadd_ps(ai, b0, r[i][0]);
            r[i][1] = _mm256_fmadd_ps(ai, b1, r[i][1]);
        }
    }
    for (int i = 0; i < 6; i++) {
        float *p = c + i * rs;
        if (beta != 0.0f) {
            r[i][0] = _mm256_add_ps(r[i][0], _mm256_loadu_ps(p));
            r[i][1] = _mm256_add_ps(r[i][1], _mm256_loadu_ps(p + 8));
        }
        _mm256_storeu_ps(p, r[i][0]);
        _mm256_storeu_ps(p + 8, r[i][1]);
    }
}
#else
#define PK_WT_DIRECT 0
static void pk_conv_kernel_wt(long kc, const float *a, long lda, const float *b, float *c, long rs, float beta) {
    PK_UNUSED(kc); PK_UNUSED(a); PK_UNUSED(lda); PK_UNUSED(b); PK_UNUSED(c); PK_UNUSED(rs); PK_UNUSED(beta);
}
#endif

static void pk_conv2d_backward_input(const long *g, const float *dy, const float *w, float *dx, float *work) {
    PK_CONV_GEOMETRY(g);
    if (depthwise) { pk_depthwise_backward_input(g, dy, w, dx, work); return; }
    if (!nb) {  /* a 1×1 convolution over large images: dx[n, g] = w[g]ᵀ · dy[n, g] on the GEMM */
        for (long n = 0; n < N; n++)
            for (long gr = 0; gr < G; gr++)
                pk_gemm(cg, P, og, w + gr * og * cg, 1, cg, dy + (n * O + gr * og) * P, P, 1,
                        dx + (n * C + gr * cg) * P, P, 1, 0, work);
        return;
    }
    int32_t *T = (int32_t *)work, *R = T + taps * nb;
    float *pb = (float *)(R + taps * ((nb + PK_NR - 1) / PK_NR)), *buf = pb + og * nb, *pa = buf + PK_MC * nb;
    memset(dx, 0, N * C * H * W * sizeof(float));
    for (long q0 = 0; q0 < Q; q0 += nb) {
        long nq = pk_min(nb, Q - q0);
        int direct = PK_WT_DIRECT && nq <= 4 * PK_NR;  /* few panels: packing wᵀ would not pay */
        pk_conv_offsets(g, q0, nq, nb, T, R);
        for (long gr = 0; gr < G; gr++) {
            const float *wg = w + gr * og * K;
            long np = (nq + PK_NR - 1) / PK_NR;
            /* one region per block: threads pack shares of dy's panels, then own row strips
               (whole tiles) or column panels (the packed rest) of each dcol block, then the
               channels of its col2im (every pixel's taps added in the serial order) */
            PK_REGION(K * nq * og > PK_PAR_GEMM_MIN)
            {
                long p0, p1;
                pk_share(np, &p0, &p1);
                pk_conv_pack_dy(g, dy + gr * og * P, q0, nq, p0, p1, pb);
                PK_BARRIER
                for (long ic = 0; ic < K; ic += PK_MC) {
                    long mc = pk_min(PK_MC, K - ic);
                    for (long pc = 0; pc < og; pc += PK_KC) {
                        long kc = pk_min(PK_KC, og - pc), whole = direct ? mc / PK_MR * PK_MR : 0, s0, s1;
                        float be = pc > 0 ? 1.0f : 0.0f;
                        /* whole tiles: the buffer has room for MC rows and nb (a multiple of NR) columns */
                        pk_share(whole / PK_MR, &s0, &s1);
                        for (long ir = s0 * PK_MR; ir < s1 * PK_MR; ir += PK_MR)
                            for (long jr = 0; jr < nq; jr += PK_NR)
                                pk_conv_kernel_wt(kc, wg + pc * K + ic + ir, K, pb + jr * og + pc * PK_NR,
                                                  buf + ir * nb + jr, nb, be);
                        if (whole == mc) continue;
                        PK_BARRIER  /* every thread is done with the previous packed block */
                        PK_SINGLE
                        pk_conv_pack_wt(mc - whole, kc, wg, K, ic + whole, pc, pa);
                        for (long jr = p0 * PK_NR; jr < pk_min(nq, p1 * PK_NR); jr += PK_NR)
                            for (long ir = whole; ir < mc; ir += PK_MR)
                                pk_micro_kernel(kc, pa + (ir - whole) * kc, pb + jr * og + pc * PK_NR,
                                                buf + ir * nb + jr, nb, 1.0f, be);
                    }
                    PK_BARRIER  /* the dcol block is whole */
                    long c0, c1, cfirst = ic / taps;
                    pk_share((ic + mc - 1) / taps + 1 - cfirst, &c0, &c1);
                    long k0 = pk_max(ic, (cfirst + c0) * taps), k1 = pk_min(ic + mc, (cfirst + c1) * taps);
                    if (k1 > k0) pk_conv_scatter_cols(g, buf + (k0 - ic) * nb, T, R, k0, k1 - k0, nq, dx + gr * cg * H * W);
                    PK_BARRIER  /* before the next block overwrites the buffer */
                }
            }
        }
    }
}
