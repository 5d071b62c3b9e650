/* gemm: C = alpha·A·B + beta·C, the engine under linear, matmul and conv.
   Every operand has a row and a column stride, so transposes are only strides.
   BLIS-style blocking: B is packed into KC×NR panels, A into MR×KC panels (on x86-64 A is
   read in place when its rows, or its short columns, are contiguous), and a register-blocked
   micro-kernel (AVX2/FMA 6×16 on x86-64, NEON 8×8 on arm64, plain C elsewhere) keeps the
   MR×NR tile of C in registers across the whole KC loop.
   Workspace: pk_gemm_workspace(M, N, K) floats, given by the caller (planned in the arena).
   With beta = 0, C is only written (it may hold garbage before). */

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PK_MR 6
#define PK_NR 16
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#define PK_MR 8
#define PK_NR 8
#else
#define PK_MR 4
#define PK_NR 4
#endif
#define PK_KC 256
#define PK_MC (PK_MR * 24)
#define PK_NC (PK_NR * 64)
/* Below this many rows of C, a product whose B must be transposed while packing runs as
   Cᵀ = Bᵀ·Aᵀ: B's k-contiguous lines are then read in place and only the small A is packed. */
#define PK_SWAP_BELOW 96

PK_INLINE long pk_round_up(long x, long m) { return (x + m - 1) / m * m; }

PK_INLINE long pk_gemm_space(long M, long N, long K) {
    return pk_min(K, PK_KC) * (pk_min(pk_round_up(M, PK_MR), PK_MC) + pk_min(pk_round_up(N, PK_NR), PK_NC));
}
static long pk_gemm_workspace(long M, long N, long K) {
    return pk_max(pk_gemm_space(M, N, K), pk_gemm_space(N, M, K));  /* either orientation */
}

#if defined(__AVX2__) && defined(__FMA__)
/* out[k*ldo + i] = in[i*ld + k] for i, k < 8: one 8×8 transpose in registers. */
PK_INLINE void pk_transpose8(const float *in, long ld, float *out, long ldo) {
    __m256 r0 = _mm256_loadu_ps(in), r1 = _mm256_loadu_ps(in + ld), r2 = _mm256_loadu_ps(in + 2 * ld),
           r3 = _mm256_loadu_ps(in + 3 * ld), r4 = _mm256_loadu_ps(in + 4 * ld), r5 = _mm256_loadu_ps(in + 5 * ld),
           r6 = _mm256_loadu_ps(in + 6 * ld), r7 = _mm256_loadu_ps(in + 7 * ld);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
           t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
           u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
           u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(out, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(out + ldo, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(out + 2 * ldo, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(out + 3 * ldo, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(out + 4 * ldo, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(out + 5 * ldo, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(out + 6 * ldo, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(out + 7 * ldo, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

/* Panels of w lines: element k of line l, at src[l*sl + k*sk], goes to dst[k*w + l] of its
   panel; a short last panel is zero-padded. Lines contiguous along the panel (sl = 1) are
   copied row by row; with AVX2, B's lines contiguous along k (a transposed B: a weight
   read as Wᵀ) are transposed 8×8 in registers (A is then read in place, never packed). */
PK_INLINE void pk_pack(long n, long kc, const float *src, long sl, long sk, long w, float *dst) {
    for (long l0 = 0; l0 < n; l0 += w, src += w * sl, dst += kc * w) {
        long m = pk_min(w, n - l0), k = 0;
        if (m == w && sl == 1) {
            for (; k < kc; k++)
                for (long l = 0; l < w; l++) dst[k * w + l] = src[k * sk + l];
        }
#if defined(__AVX2__) && defined(__FMA__)
        else if (m == w && sk == 1 && w % 8 == 0) {
            for (; k + 8 <= kc; k += 8)
                for (long l = 0; l < w; l += 8) pk_transpose8(src + l * sl + k, sl, dst + k * w + l, w);
        }
#endif
        for (; k < kc; k++)
            for (long l = 0; l < w; l++) dst[k * w + l] = l < m ? src[l * sl + k * sk] : 0.0f;
    }
}
/* A[i, k] at a[i*rs + k*cs] → MR-row panels; B[k, j] at b[k*rs + j*cs] → NR-column panels. */
static void pk_pack_a(long mc, long kc, const float *a, long rs, long cs, float *dst) {
    pk_pack(mc, kc, a, rs, cs, PK_MR, dst);
}
static void pk_pack_b(long kc, long nc, const float *b, long rs, long cs, float *dst) {
    pk_pack(nc, kc, b, cs, rs, PK_NR, dst);
}

#if defined(__AVX2__) && defined(__FMA__)
/* The 6×16 AVX2 tile: 12 accumulators over kc steps; A(i, k) is at A_AT(i, k). C's rows are
   prefetched first: their misses then overlap the products. */
#define PK_AVX_TILE(A_AT)                                                                  \
    for (int i_ = 0; i_ < 6; i_++) {                                                       \
        _mm_prefetch((const char *)(c + i_ * rs), _MM_HINT_T0);                            \
        _mm_prefetch((const char *)(c + i_ * rs + 15), _MM_HINT_T0);                       \
    }                                                                                      \
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), \
           c11 = _mm256_setzero_ps(), c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), \
           c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps(), c40 = _mm256_setzero_ps(), \
           c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps(); \
    for (long k = 0; k < kc; k++) {                                                        \
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);                       \
        __m256 a0 = _mm256_broadcast_ss(A_AT(0, k)), a1 = _mm256_broadcast_ss(A_AT(1, k)); \
        c00 = _mm256_fmadd_ps(a0, b0, c00); c01 = _mm256_fmadd_ps(a0, b1, c01);            \
        c10 = _mm256_fmadd_ps(a1, b0, c10); c11 = _mm256_fmadd_ps(a1, b1, c11);            \
        a0 = _mm256_broadcast_ss(A_AT(2, k)); a1 = _mm256_broadcast_ss(A_AT(3, k));        \
        c20 = _mm256_fmadd_ps(a0, b0, c20); c21 = _mm256_fmadd_ps(a0, b1, c21);            \
        c30 = _mm256_fmadd_ps(a1, b0, c30); c31 = _mm256_fmadd_ps(a1, b1, c31);            \
        a0 = _mm256_broadcast_ss(A_AT(4, k)); a1 = _mm256_broadcast_ss(A_AT(5, k));        \
        c40 = _mm256_fmadd_ps(a0, b0, c40); c41 = _mm256_fmadd_ps(a0, b1, c41);            \
        c50 = _mm256_fmadd_ps(a1, b0, c50); c51 = _mm256_fmadd_ps(a1, b1, c51);            \
        b += 16;                                                                           \
    }                                                                                      \
    __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);                          \
    int plain = alpha == 1.0f && beta == 0.0f, add = alpha == 1.0f && beta == 1.0f;       \
    PK_AVX_ST(0, c00, c01); PK_AVX_ST(1, c10, c11); PK_AVX_ST(2, c20, c21);                \
    PK_AVX_ST(3, c30, c31); PK_AVX_ST(4, c40, c41); PK_AVX_ST(5, c50, c51)
#define PK_AVX_ST(r, lo, hi) do { float *p = c + (r) * rs;                                  \
        if (add) { lo = _mm256_add_ps(lo, _mm256_loadu_ps(p)); hi = _mm256_add_ps(hi, _mm256_loadu_ps(p + 8)); } \
        else if (!plain) {                                                                 \
            lo = _mm256_mul_ps(lo, va); hi = _mm256_mul_ps(hi, va);                         \
            if (beta != 0.0f) { lo = _mm256_fmadd_ps(_mm256_loadu_ps(p), vb, lo);          \
                                hi = _mm256_fmadd_ps(_mm256_loadu_ps(p + 8), vb, hi); } }  \
        _mm256_storeu_ps(p, lo); _mm256_storeu_ps(p + 8, hi); } while (0)
#define PK_PACKED_A(i, k) (a + (k) * 6 + (i))
#define PK_ROW_A(i, k) (row[i] + (k))
#define PK_COL_A(i, k) (row[i] + (k) * lda)

/* A's rows read straight from the matrix (m of them, the rest repeat the last): no packing
   of A at all. Six row streams stay in L1/L2 across the B panels as well as a packed block. */
#define PK_DIRECT_A 1
static void pk_micro_kernel_rows(long kc, const float *a, long lda, long m, const float *b, float *c, long rs,
                                 float alpha, float beta) {
    const float *row[6];
    for (long i = 0; i < 6; i++) row[i] = a + pk_min(i, m - 1) * lda;
    PK_AVX_TILE(PK_ROW_A);
}
/* A transposed (column k of the tile at a + k*lda) read in place: while a column is short
   (lda ≤ PK_COLS_MAX) its lines stay cached; beyond, packing A is faster. */
#define PK_COLS_MAX 256
static void pk_micro_kernel_cols(long kc, const float *a, long lda, long m, const float *b, float *c, long rs,
                                 float alpha, float beta) {
    const float *row[6];
    for (long i = 0; i < 6; i++) row[i] = a + pk_min(i, m - 1);
    PK_AVX_TILE(PK_COL_A);
}
#else
#define PK_DIRECT_A 0
#define PK_COLS_MAX 0
static void pk_micro_kernel_rows(long kc, const float *a, long lda, long m, const float *b, float *c, long rs,
                                 float alpha, float beta) {
    PK_UNUSED(kc); PK_UNUSED(a); PK_UNUSED(lda); PK_UNUSED(m); PK_UNUSED(b); PK_UNUSED(c); PK_UNUSED(rs);
    PK_UNUSED(alpha); PK_UNUSED(beta);
}
#define pk_micro_kernel_cols pk_micro_kernel_rows
#endif

/* The MR×NR tile product of two packed panels: c = alpha·AB + beta·c, rows rs apart. */
static void pk_micro_kernel(long kc, const float *a, const float *b, float *c, long rs, float alpha, float beta) {
#if defined(__AVX2__) && defined(__FMA__)
    PK_AVX_TILE(PK_PACKED_A);
#elif defined(__ARM_NEON) && defined(__aarch64__)
    float32x4_t r[8][2];
    for (int i = 0; i < 8; i++) r[i][0] = r[i][1] = vdupq_n_f32(0.0f);
    for (long k = 0; k < kc; k++) {
        float32x4_t b0 = vld1q_f32(b), b1 = vld1q_f32(b + 4);
        float32x4_t a0 = vld1q_f32(a), a1 = vld1q_f32(a + 4);
        r[0][0] = vfmaq_laneq_f32(r[0][0], b0, a0, 0); r[0][1] = vfmaq_laneq_f32(r[0][1], b1, a0, 0);
        r[1][0] = vfmaq_laneq_f32(r[1][0], b0, a0, 1); r[1][1] = vfmaq_laneq_f32(r[1][1], b1, a0, 1);
        r[2][0] = vfmaq_laneq_f32(r[2][0], b0, a0, 2); r[2][1] = vfmaq_laneq_f32(r[2][1], b1, a0, 2);
        r[3][0] = vfmaq_laneq_f32(r[3][0], b0, a0, 3); r[3][1] = vfmaq_laneq_f32(r[3][1], b1, a0, 3);
        r[4][0] = vfmaq_laneq_f32(r[4][0], b0, a1, 0); r[4][1] = vfmaq_laneq_f32(r[4][1], b1, a1, 0);
        r[5][0] = vfmaq_laneq_f32(r[5][0], b0, a1, 1); r[5][1] = vfmaq_laneq_f32(r[5][1], b1, a1, 1);
        r[6][0] = vfmaq_laneq_f32(r[6][0], b0, a1, 2); r[6][1] = vfmaq_laneq_f32(r[6][1], b1, a1, 2);
        r[7][0] = vfmaq_laneq_f32(r[7][0], b0, a1, 3); r[7][1] = vfmaq_laneq_f32(r[7][1], b1, a1, 3);
        a += 8; b += 8;
    }
    for (int i = 0; i < 8; i++) {
        float *p = c + i * rs;
        r[i][0] = vmulq_n_f32(r[i][0], alpha); r[i][1] = vmulq_n_f32(r[i][1], alpha);
        if (beta != 0.0f) {
            r[i][0] = vfmaq_n_f32(r[i][0], vld1q_f32(p), beta);
            r[i][1] = vfmaq_n_f32(r[i][1], vld1q_f32(p + 4), beta);
        }
        vst1q_f32(p, r[i][0]); vst1q_f32(p + 4, r[i][1]);
    }
#else
    float t[PK_MR * PK_NR] = {0};
    for (long k = 0; k < kc; k++, a += PK_MR, b += PK_NR)
        for (int i = 0; i < PK_MR; i++)
            for (int j = 0; j < PK_NR; j++) t[i * PK_NR + j] += a[i] * b[j];
    for (int i = 0; i < PK_MR; i++)
        for (int j = 0; j < PK_NR; j++)
            c[i * rs + j] = alpha * t[i * PK_NR + j] + (beta != 0.0f ? beta * c[i * rs + j] : 0.0f);
#endif
}

/* An m×n corner (or a strided tile) of C from the full tile acc: c = alpha·acc + beta·c.
   Column-contiguous C (the transposed product) is written column by column. */
static void pk_store_tile(long m, long n, const float *acc, float *c, long rs, long cs, float alpha, float beta) {
    if (rs == 1 && cs != 1) {
        for (long j = 0; j < n; j++)
            for (long i = 0; i < m; i++) {
                float *dst = c + i + j * cs;
                *dst = alpha * acc[i * PK_NR + j] + (beta != 0.0f ? beta * *dst : 0.0f);
            }
        return;
    }
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            float *dst = c + i * rs + j * cs;
            *dst = alpha * acc[i * PK_NR + j] + (beta != 0.0f ? beta * *dst : 0.0f);
        }
}

/* An epilogue: elementwise work on each finished part of C while it is still in L1 (the
   fusion pass's `epilogue` groups; the renderer generates `fn` per group), called once per
   MC×NC block of C as the block is finished in the last K block, while it is in L2: long
   rows, so operands read along them stream (per NR-column strip, each of an MC-row strip's
   rows is a stream of its own: slower on every shape measured). `fn` gets the part at c (rows rs
   apart, columns contiguous) as rows i..i+m, columns j..j+n of image (batch) b of its
   domain, and finds its other operands through `args`. Kernels that run
   several GEMMs into one output say where each starts (b, i0); `swapped` marks a GEMM run
   as Cᵀ = Bᵀ·Aᵀ, whose tile rows are the domain's columns. */
typedef struct pk_epilogue {
    void (*fn)(const struct pk_epilogue *e, float *c, long rs, long b, long i, long j, long m, long n);
    void *const *args;
    long b, i0;
    int swapped;
} pk_epilogue;

PK_INLINE void pk_epilogue_tile(const pk_epilogue *e, float *c, long rs, long cs, long i, long j, long m, long n) {
    if (e->swapped) e->fn(e, c, cs, e->b, e->i0 + j, i, n, m);
    else e->fn(e, c, rs, e->b, e->i0 + i, j, m, n);
}

/* C[i, j] at c[i*rsc + j*csc] becomes alpha·(A·B)[i, j] + beta·C[i, j]; then the epilogue
   `ep` (may be null) runs on each tile of C in the last K block. */
static void pk_gemm_ep(long M, long N, long K,
                       const float *a, long rsa, long csa,
                       const float *b, long rsb, long csb,
                       float *c, long rsc, long csc, float alpha, float beta, float *work, const pk_epilogue *ep) {
    if (K == 0) {
        for (long i = 0; i < M; i++)
            for (long j = 0; j < N; j++) c[i * rsc + j * csc] = beta != 0.0f ? beta * c[i * rsc + j * csc] : 0.0f;
        if (ep) pk_epilogue_tile(ep, c, rsc, csc, 0, 0, M, N);
        return;
    }
    if (PK_DIRECT_A && M < PK_SWAP_BELOW && N > M && rsb == 1 && csb != 1) {  /* Cᵀ = Bᵀ·Aᵀ */
        pk_epilogue t;
        if (ep) { t = *ep; t.swapped = !ep->swapped; }
        pk_gemm_ep(N, M, K, b, csb, rsb, a, csa, rsa, c, csc, rsc, alpha, beta, work, ep ? &t : NULL);
        return;
    }
    long mc_max = pk_min(pk_round_up(M, PK_MR), PK_MC);
    float *pa = work, *pb = work + mc_max * pk_min(K, PK_KC);
    int rows = PK_DIRECT_A && csa == 1, cols = PK_DIRECT_A && rsa == 1 && csa <= PK_COLS_MAX;
    for (long jc = 0; jc < N; jc += PK_NC) {
        long nc = pk_min(PK_NC, N - jc), n_panels = (nc + PK_NR - 1) / PK_NR;
        for (long pc = 0; pc < K; pc += PK_KC) {
            long kc = pk_min(PK_KC, K - pc);
            float be = pc > 0 ? 1.0f : beta;  /* later K blocks add to what the first wrote */
            /* one region per K block: each thread packs its own share of B's column panels
               and computes those panels for every row block (so no barrier after packing);
               a packed A block is shared (each thread packs a share, between two barriers) */
            PK_REGION(M * nc * kc > PK_PAR_GEMM_MIN && n_panels > 1)
            {
                long p0, p1;
                pk_share(n_panels, &p0, &p1);
                long j0 = p0 * PK_NR, j1 = pk_min(nc, p1 * PK_NR);
                if (j1 > j0) pk_pack_b(kc, j1 - j0, b + pc * rsb + (jc + j0) * csb, rsb, csb, pb + j0 * kc);
                for (long ic = 0; ic < M; ic += PK_MC) {
                    long mc = pk_min(PK_MC, M - ic);
                    if (!rows && !cols) {  /* A packed by all, a share of its MR-row panels each */
                        long a0, a1;
                        PK_BARRIER  /* every thread is done with the previous A block */
                        pk_share((mc + PK_MR - 1) / PK_MR, &a0, &a1);
                        if (a1 > a0)
                            pk_pack_a(pk_min(mc, a1 * PK_MR) - a0 * PK_MR, kc, a + (ic + a0 * PK_MR) * rsa + pc * csa,
                                      rsa, csa, pa + a0 * PK_MR * kc);
                        PK_BARRIER
                    }
                    for (long jr = j0; jr < j1; jr += PK_NR) {
                        long n = pk_min(PK_NR, nc - jr);
                        for (long ir = 0; ir < mc; ir += PK_MR) {
                            long m = pk_min(PK_MR, mc - ir);
                            float *ct = c + (ic + ir) * rsc + (jc + jr) * csc;
                            const float *at = a + (ic + ir) * rsa + pc * csa;
                            int whole = m == PK_MR && n == PK_NR && csc == 1;
                            float acc[PK_MR * PK_NR] PK_ALIGNED(64);
                            float *dst = whole ? ct : acc;
                            long rs = whole ? rsc : PK_NR;
                            float al = whole ? alpha : 1.0f, bt = whole ? be : 0.0f;
                            if (rows) pk_micro_kernel_rows(kc, at, rsa, m, pb + jr * kc, dst, rs, al, bt);
                            else if (cols) pk_micro_kernel_cols(kc, at, csa, m, pb + jr * kc, dst, rs, al, bt);
                            else pk_micro_kernel(kc, pa + ir * kc, pb + jr * kc, dst, rs, al, bt);
                            if (!whole) pk_store_tile(m, n, acc, ct, rsc, csc, alpha, be);
                        }
                    }
                    /* this thread's columns of the MC×NC block are final: its epilogue */
                    if (ep && pc + kc == K && j1 > j0)
                        pk_epilogue_tile(ep, c + ic * rsc + (jc + j0) * csc, rsc, csc, ic, jc + j0, mc, j1 - j0);
                }
            }
        }
    }
}

static void pk_gemm_ab(long M, long N, long K, const float *a, long rsa, long csa, const float *b, long rsb,
                       long csb, float *c, long rsc, long csc, float alpha, float beta, float *work) {
    pk_gemm_ep(M, N, K, a, rsa, csa, b, rsb, csb, c, rsc, csc, alpha, beta, work, NULL);
}

/* C = A·B, or C += A·B when `accumulate`. */
static void pk_gemm(long M, long N, long K, const float *a, long rsa, long csa, const float *b, long rsb, long csb,
                    float *c, long rsc, long csc, int accumulate, float *work) {
    pk_gemm_ab(M, N, K, a, rsa, csa, b, rsb, csb, c, rsc, csc, 1.0f, accumulate ? 1.0f : 0.0f, work);
}
