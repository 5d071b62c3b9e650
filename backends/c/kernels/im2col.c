/* im2col: the convolution geometry every conv kernel reads, and the implicit im2col the
   GEMM-based ones share. The unfolded input col (K = cg·KH·KW rows k = (c·KH + i)·KW + j,
   one column per output pixel of every image, q = n·HO·WO + oh·WO + ow) is never stored:
   the kernels pack the GEMM's operand panels straight from x (or scatter straight back to
   dx), through a table of input offsets per tap and column. No train op of its own;
   conv2d.c and its gradients require it.
   requires: gemm */

#if defined(__GNUC__)
#define PK_PREFETCH(p) __builtin_prefetch(p)
#else
#define PK_PREFETCH(p) ((void)(p))
#endif

/* g[] = {N, C, H, W, O, KH, KW, SH, SW, PT, PL, DH, DW, G, HO, WO, nb, qb}: nb and qb are
   the column blocks the lowering (backends/lowering/linalg.py conv_plan) sized the
   workspace for; nb = 0 marks a 1×1 convolution run as one GEMM per image. */
#define PK_CONV_GEOMETRY(g)                                                               \
    long N = g[0], C = g[1], H = g[2], W = g[3], O = g[4], KH = g[5], KW = g[6];          \
    long SH = g[7], SW = g[8], PT = g[9], PL = g[10], DH = g[11], DW = g[12], G = g[13]; \
    long HO = g[14], WO = g[15], nb = g[16], qb = g[17];                                  \
    long cg = C / G, og = O / G, taps = KH * KW, K = cg * taps, P = HO * WO, Q = N * P;   \
    int depthwise = G == C && cg == 1 && G > 1;                                           \
    PK_UNUSED(N); PK_UNUSED(O); PK_UNUSED(K); PK_UNUSED(P); PK_UNUSED(Q); PK_UNUSED(nb);  \
    PK_UNUSED(qb); PK_UNUSED(depthwise); PK_UNUSED(og); PK_UNUSED(taps)

/* T[t·ld + u] = offset in x (from channel 0 of image 0) of the input pixel that tap t reads
   for column q0 + u, or -1 where it falls in the padding. With R (may be null), also a run
   code per tap and NR-column panel: step | a << 8 | b << 16 where columns a..b-1 of the panel
   read floats `step` (1 or 2) apart and the others are padding, or 0 where they are not
   that regular. */
/* The run code of n ≤ NR offsets (see pk_conv_offsets). */
PK_INLINE int32_t pk_conv_run(const int32_t *o, long n) {
#if defined(__AVX2__) && PK_NR == 16
    if (n == PK_NR) {  /* the valid lanes as a bit mask: one block of ones, on an arithmetic sequence */
        __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), none = _mm256_set1_epi32(-1);
        __m256i i0 = _mm256_loadu_si256((const __m256i *)o), i1 = _mm256_loadu_si256((const __m256i *)(o + 8));
        unsigned valid = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(i0, none))) |
                         (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(i1, none))) << 8;
        if (!valid) return 1 | 16 << 8 | 16 << 16;
        int32_t a = __builtin_ctz(valid), b = 32 - __builtin_clz(valid), step = b - a > 1 ? o[a + 1] - o[a] : 1;
        if (valid != ((1u << b) - 1) - ((1u << a) - 1) || (step != 1 && step != 2)) return 0;
        __m256i first = _mm256_set1_epi32(o[a] - step * a), vs = _mm256_set1_epi32(step);
        __m256i e0 = _mm256_add_epi32(first, _mm256_mullo_epi32(lane, vs));
        __m256i e1 = _mm256_add_epi32(e0, _mm256_mullo_epi32(_mm256_set1_epi32(8), vs));
        unsigned same = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(i0, e0))) |
                        (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(i1, e1))) << 8;
        return (same & valid) == valid ? step | a << 8 | b << 16 : 0;
    }
#endif
    long a = 0, b;
    while (a < n && o[a] < 0) a++;
    for (b = a; b < n && o[b] >= 0; b++) {}
    int32_t step = b - a > 1 ? o[a + 1] - o[a] : 1;
    int ok = step == 1 || step == 2;
    for (long u = a + 2; u < b && ok; u++) ok = o[u] == o[a] + step * (u - a);
    for (long u = b; u < n && ok; u++) ok = o[u] < 0;
    return ok ? step | (int32_t)a << 8 | (int32_t)b << 16 : 0;
}

static void pk_conv_offsets(const long *g, long q0, long nq, long ld, int32_t *T, int32_t *R) {
    PK_CONV_GEOMETRY(g);
    long npan = (ld + PK_NR - 1) / PK_NR;
    for (long i = 0; i < KH; i++)
        for (long j = 0; j < KW; j++) {
            int32_t *t = T + (i * KW + j) * ld;
            long d = j * DW - PL;  /* input column of output column 0; the valid ones: [lo, hi) */
            long lo = d >= 0 ? 0 : pk_min(WO, (-d + SW - 1) / SW), hi = d >= W ? 0 : pk_min(WO, (W - 1 - d) / SW + 1);
            if (hi < lo) hi = lo;
            long n = q0 / P, oh = q0 % P / WO, ow0 = q0 % WO;
            for (long u = 0, len; u < nq; u += len, ow0 = 0) {  /* one output row (or its part in the block) at a time */
                long ih = oh * SH - PT + i * DH, end = pk_min(WO, ow0 + nq - u);
                long a = ih >= 0 && ih < H ? pk_min(pk_max(lo, ow0), end) : end, b = pk_max(a, pk_min(hi, end));
                int32_t *r = t + u, base = (int32_t)((n * C * H + ih) * W + d);  /* r[ow - ow0] */
                for (long ow = ow0; ow < a; ow++) r[ow - ow0] = -1;
                for (long ow = a; ow < b; ow++) r[ow - ow0] = base + (int32_t)(ow * SW);
                for (long ow = b; ow < end; ow++) r[ow - ow0] = -1;
                len = end - ow0;
                if (++oh == HO) { oh = 0; n++; }
            }
            if (R)
                for (long jp = 0; jp * PK_NR < nq; jp++)
                    R[(i * KW + j) * npan + jp] = pk_conv_run(t + jp * PK_NR, pk_min(PK_NR, nq - jp * PK_NR));
        }
}

/* One k-row of an NR-column panel: d[u] = the input value column u reads (offsets o, run
   code `run`, n columns inside the block, zero for padding and beyond). */
PK_INLINE void pk_conv_pack_row(const float *xc, const int32_t *o, long run, long n, long W, float *d) {
    long step = run & 255, a = run >> 8 & 255, b = run >> 16;
    if (run && a == 0 && b == PK_NR && step == 1) {
        memcpy(d, xc + o[0], PK_NR * sizeof(float));
        return;
    }
#if defined(__AVX2__) && PK_NR == 16
    if (run && a == 0 && b == PK_NR && step == 2 && o[PK_NR - 1] % W + 1 < W) {
        /* stride 2: the even floats of 32, the last one read still in the row */
        const float *s = xc + o[0];
        __m256 e0 = _mm256_shuffle_ps(_mm256_loadu_ps(s), _mm256_loadu_ps(s + 8), 0x88);
        __m256 e1 = _mm256_shuffle_ps(_mm256_loadu_ps(s + 16), _mm256_loadu_ps(s + 24), 0x88);
        _mm256_storeu_ps(d, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e0), 0xD8)));
        _mm256_storeu_ps(d + 8, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e1), 0xD8)));
        return;
    }
    if (run && step == 1 && a < b) {  /* a run with padding around it: masked loads touch only the run */
        const float *s0 = (const float *)((uintptr_t)(xc + o[a]) - (uintptr_t)a * sizeof(float));
        const float *s8 = (const float *)((uintptr_t)s0 + 8 * sizeof(float));
        __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), lane8 = _mm256_add_epi32(lane, _mm256_set1_epi32(8));
        __m256i lo = _mm256_set1_epi32((int)a - 1), hi = _mm256_set1_epi32((int)b);
        _mm256_storeu_ps(d, _mm256_maskload_ps(s0, _mm256_and_si256(_mm256_cmpgt_epi32(lane, lo),
                                                                    _mm256_cmpgt_epi32(hi, lane))));
        _mm256_storeu_ps(d + 8, _mm256_maskload_ps(s8, _mm256_and_si256(_mm256_cmpgt_epi32(lane8, lo),
                                                                        _mm256_cmpgt_epi32(hi, lane8))));
        return;
    }
    if (n == PK_NR) {  /* two masked gathers: padding lanes (offset -1) read nothing, give 0 */
        __m256i i0 = _mm256_loadu_si256((const __m256i *)o), i1 = _mm256_loadu_si256((const __m256i *)(o + 8));
        __m256i none = _mm256_set1_epi32(-1);
        _mm256_storeu_ps(d, _mm256_mask_i32gather_ps(_mm256_setzero_ps(), xc, i0,
                                                     _mm256_castsi256_ps(_mm256_cmpgt_epi32(i0, none)), 4));
        _mm256_storeu_ps(d + 8, _mm256_mask_i32gather_ps(_mm256_setzero_ps(), xc, i1,
                                                         _mm256_castsi256_ps(_mm256_cmpgt_epi32(i1, none)), 4));
        return;
    }
#endif
    if (run) {
        for (long u = 0; u < a; u++) d[u] = 0.0f;
        for (long u = a; u < b; u++) d[u] = xc[o[a] + step * (u - a)];
        for (long u = b; u < PK_NR; u++) d[u] = 0.0f;
        return;
    }
    for (long u = 0; u < PK_NR; u++) d[u] = u < n && o[u] >= 0 ? xc[o[u]] : 0.0f;
}

/* Rows k0..k0+kc of col, columns j0..j1 of the block q0..q0+nq that T and R were built for
   (j0 a multiple of NR: a thread's share of the panels), packed as the GEMM's B operand:
   NR-column panels from j0 on, k-major inside a panel (dst[(jp - j0/NR)·kc·NR + k·NR + u]),
   zero beyond j1.
   xg: x at the group's first channel. */
static void pk_conv_pack_cols(const long *g, const float *xg, const int32_t *T, const int32_t *R, long k0, long kc,
                              long j0, long j1, float *dst) {
    PK_CONV_GEOMETRY(g);
    long npan = (nb + PK_NR - 1) / PK_NR, HW = H * W;
    for (long kk = 0; kk < kc; kk++) {
        long c = (k0 + kk) / taps, t = (k0 + kk) % taps;
        for (long jp = j0 / PK_NR; jp * PK_NR < j1; jp++)
            pk_conv_pack_row(xg + c * HW, T + t * nb + jp * PK_NR, R[t * npan + jp], pk_min(PK_NR, j1 - jp * PK_NR), W,
                             dst + ((jp - j0 / PK_NR) * kc + kk) * PK_NR);
    }
}

/* Columns q0..q0+nq of col, rows k0..k0+nk, packed as a GEMM's B operand for colᵀ (the
   weight gradient): NR-row panels of col, dst[jp·nq·NR + u·NR + r] = col[k0 + jp·NR + r][q0 + u],
   zero beyond nk. */
static void pk_conv_pack_cols_t(const long *g, const float *xg, const int32_t *T, long ld, long k0, long nk, long nq,
                                float *dst) {
    PK_CONV_GEOMETRY(g);
    long HW = H * W;
    for (long jp = 0; jp * PK_NR < nk; jp++) {
        float *d = dst + jp * nq * PK_NR;
        for (long r = 0; r < PK_NR; r++) {
            long k = k0 + jp * PK_NR + r;
            if (jp * PK_NR + r >= nk) {
                for (long u = 0; u < nq; u++) d[u * PK_NR + r] = 0.0f;
                continue;
            }
            const float *xc = xg + k / taps * HW;
            const int32_t *o = T + k % taps * ld;
            for (long u = 0; u < nq; u++) d[u * PK_NR + r] = o[u] >= 0 ? xc[o[u]] : 0.0f;
        }
    }
}

/* dxg[c][pixel of (k, q)] += cols[(k - k0)·nb + u] for rows k0..k0+mk, columns q0 + u < q0 + nq:
   col2im of a block, for the input gradient; runs (R) add as plain vectors. */
static void pk_conv_scatter_cols(const long *g, const float *cols, const int32_t *T, const int32_t *R, long k0,
                                 long mk, long nq, float *dxg) {
    PK_CONV_GEOMETRY(g);
    long npan = (nb + PK_NR - 1) / PK_NR, HW = H * W;
    for (long kk = 0; kk < mk; kk++) {
        long t = (k0 + kk) % taps;
        float *dc = dxg + (k0 + kk) / taps * HW;
        for (long jp = 0; jp * PK_NR < nq; jp++) {
            const int32_t *o = T + t * nb + jp * PK_NR;
            const float *s = cols + kk * nb + jp * PK_NR;
            long run = R[t * npan + jp], step = run & 255, a = run >> 8 & 255, b = run >> 16;
            if (run && step == 1 && a < b) {
                float *dst = dc + o[a];
                for (long u = 0; u < b - a; u++) dst[u] += s[a + u];
            } else if (run) {
                for (long u = a; u < b; u++) dc[o[a] + step * (u - a)] += s[u];
            } else {
                for (long u = 0, n = pk_min(PK_NR, nq - jp * PK_NR); u < n; u++)
                    if (o[u] >= 0) dc[o[u]] += s[u];
            }
        }
    }
}

/* One MR×NR tile c = alpha·A·B + beta·c of the packed GEMM (gemm.c) where A is either a
   packed panel (lda = 0) or m rows of a matrix lda apart read directly; c has rs, and only
   its first m rows and n columns are written. */
static void pk_conv_tile(long kc, const float *a, long lda, long m, const float *b, float *c, long rs, long n,
                         float alpha, float beta) {
    if (m == PK_MR && n == PK_NR) {
        if (lda) pk_micro_kernel_rows(kc, a, lda, m, b, c, rs, alpha, beta);
        else pk_micro_kernel(kc, a, b, c, rs, alpha, beta);
        return;
    }
    float acc[PK_MR * PK_NR] PK_ALIGNED(64);
    if (lda) pk_micro_kernel_rows(kc, a, lda, m, b, acc, PK_NR, 1.0f, 0.0f);
    else pk_micro_kernel(kc, a, b, acc, PK_NR, 1.0f, 0.0f);
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            float *dst = c + i * rs + j;
            *dst = alpha * acc[i * PK_NR + j] + (beta != 0.0f ? beta * *dst : 0.0f);
        }
}
