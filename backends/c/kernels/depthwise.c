/* Depthwise convolution (groups = C, weight [C·m, 1, KH, KW]) forward and both gradients,
   used by conv2d.c and its backward kernels. Stride 1 or 2 (every MobileNet layer) runs on
   the flat path below: each plane, however small, is one stream of explicit SIMD vectors, and
   planes under 64 outputs go four neighbouring channels at once. Other geometries copy each
   plane into a zero-padded buffer (the workspace) and run plain loops over it.
   requires: im2col */

/* ---- The flat path: stride S of 1 or 2 and windows that fit (pk_dw_flat). The input plane
   is split into its S×S phases (rows ≡ pr, columns ≡ pc mod S), each stored with the
   output's row length WO and zero rows around it. Tap (i, j) of output pixel q = oh·WO + ow
   then reads its phase plane at q + a constant offset: the whole plane, however small, is
   one stream of vectors with KH·KW fused multiply-adds each. A read whose column
   leaves the row wraps into the next or previous row; a mask per tap column (an AND with all
   ones or zero, so no NaN leaks) cancels those reads before the multiply: such a read is
   padding, a zero that is still multiplied (0 · NaN weight = NaN, as with zero-padded planes). dx is the same stream run backwards: each of
   its S×S phase planes gathers dy (with zero rows around it) through the taps that land on
   that phase, and the phases are interleaved into dx. dw is one masked dot product per tap.
   Vectors: AVX2/FMA (8 lanes) on x86-64, NEON (4) on arm64, four plain C lanes elsewhere. */
#define PK_DW_TAPS 64
#define PK_DW_KW 16

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define PK_DW_VL 8
typedef __m256 pk_dwv;
#define pk_dwv_load(p) _mm256_loadu_ps(p)
#define pk_dwv_store(p, v) _mm256_storeu_ps(p, v)
#define pk_dwv_set1(x) _mm256_set1_ps(x)
#define pk_dwv_zero() _mm256_setzero_ps()
#define pk_dwv_fma(a, b, c) _mm256_fmadd_ps(a, b, c)
#define pk_dwv_add(a, b) _mm256_add_ps(a, b)
#define pk_dwv_and(a, m) _mm256_and_ps(a, m)
PK_INLINE float pk_dwv_sum(pk_dwv v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
#elif defined(__ARM_NEON) && defined(__aarch64__)
#include <arm_neon.h>
#define PK_DW_VL 4
typedef float32x4_t pk_dwv;
#define pk_dwv_load(p) vld1q_f32(p)
#define pk_dwv_store(p, v) vst1q_f32(p, v)
#define pk_dwv_set1(x) vdupq_n_f32(x)
#define pk_dwv_zero() vdupq_n_f32(0.0f)
#define pk_dwv_fma(a, b, c) vfmaq_f32(c, a, b)
#define pk_dwv_add(a, b) vaddq_f32(a, b)
#define pk_dwv_and(a, m) vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(a), vreinterpretq_u32_f32(m)))
#define pk_dwv_sum(v) vaddvq_f32(v)
#else  /* plain C: four lanes the compiler maps onto whatever vectors it has */
#define PK_DW_VL 4
typedef struct { float v[4]; } pk_dwv;
PK_INLINE pk_dwv pk_dwv_load(const float *p) { pk_dwv r; memcpy(r.v, p, sizeof r.v); return r; }
PK_INLINE void pk_dwv_store(float *p, pk_dwv a) { memcpy(p, a.v, sizeof a.v); }
PK_INLINE pk_dwv pk_dwv_set1(float x) { pk_dwv r; for (int l = 0; l < 4; l++) r.v[l] = x; return r; }
PK_INLINE pk_dwv pk_dwv_zero(void) { return pk_dwv_set1(0.0f); }
PK_INLINE pk_dwv pk_dwv_fma(pk_dwv a, pk_dwv b, pk_dwv c) {
    for (int l = 0; l < 4; l++) c.v[l] = pk_fmaf(a.v[l], b.v[l], c.v[l]);
    return c;
}
PK_INLINE pk_dwv pk_dwv_add(pk_dwv a, pk_dwv b) { for (int l = 0; l < 4; l++) a.v[l] += b.v[l]; return a; }
PK_INLINE pk_dwv pk_dwv_and(pk_dwv a, pk_dwv m) {
    for (int l = 0; l < 4; l++) {
        pk_bits x, y;
        x.f = a.v[l];
        y.f = m.v[l];
        x.u &= y.u;
        a.v[l] = x.f;
    }
    return a;
}
PK_INLINE float pk_dwv_sum(pk_dwv a) { return (a.v[0] + a.v[1]) + (a.v[2] + a.v[3]); }
#endif

/* One stream: taps in groups (one per tap column, each with its wrap mask or none); tap t
   reads base + off[t] + q with weight w[widx[t]], which the call copies to wt[o·taps + w0 + t]
   (tap order, so the streams read each channel's weights in a row). A mask holds mlen floats: q's entry is at
   q mod mlen (mlen = WO where rows are whole blocks of four vectors: a mask row stays in L1). */
typedef struct {
    long ng, mlen, w0, gend[PK_DW_KW], off[PK_DW_TAPS], widx[PK_DW_TAPS];
    const float *mask[PK_DW_KW];
} pk_dw_job;

/* Where a tap lands along one axis: phase t mod S and shift floor(t / S). */
PK_INLINE void pk_dw_phase(long t, long S, long *phase, long *shift) {
    *shift = (long)pk_floordiv(t, S);
    *phase = t - *shift * S;
}

/* The flat path's geometry: stride S ≤ 2, at most PK_DW_TAPS taps, every column shift within
   one row (a wrapped read lands in the neighbouring row only), and every column a valid
   output reads stored in its phase row of WO columns; dx (input = 1) is computed on phase
   planes of HO×WO, which must cover dx. */
static int pk_dw_flat(const long *g, int input) {
    PK_CONV_GEOMETRY(g);
    long S = SH, pc, s;
    if (SH != SW || S > 2 || KH * KW > PK_DW_TAPS || KW > PK_DW_KW) return 0;
    for (long j = 0; j < KW; j++) {
        pk_dw_phase(j * DW - PL, S, &pc, &s);
        if (s >= WO || -s >= WO || (!input && s > 0 && S * WO + pc < W)) return 0;
    }
    return !input || (S * HO >= H && S * WO >= W);
}

/* Floats of one phase plane: rows of WO, HO + the window's reach in phase rows + 2 zero rows. */
PK_INLINE long pk_dw_phase_floats(const long *g) {
    PK_CONV_GEOMETRY(g);
    return (HO + (KH - 1) * DH / SH + 3) * WO;
}
/* Planes shorter than 64 outputs go PK_DW_BATCH at a time (neighbouring channels of one image).
   Workspace (the lowering's conv_plan mirrors it): the masks, KW·P, then per
   batched plane the S×S phase planes, a dy plane and dx's S×S phases; last the weights. */
#define PK_DW_BATCH(P) ((P) < 64 ? 4 : 1)
/* Threads (issue 19) own planes (forward, dx) or channels (dw, so each weight's sum over the
   images keeps the serial order), each with its own slot of the per-plane workspace: at most
   PK_DW_SLOTS threads (backends/c/library.py DW_SLOTS sizes the workspace for them). */
#define PK_DW_SLOTS 8
#define PK_DW_PAR(work) ((work) >= PK_PAR_MIN)

/* Floats of one thread's slot: the phase planes, a dy plane and dx's phases of B planes. */
PK_INLINE long pk_dw_slot_floats(const long *g) {
    long S = g[7], P = g[14] * g[15];
    return PK_DW_BATCH(P) * ((S * S + 1) * pk_dw_phase_floats(g) + S * S * P);
}
/* Where the weights in tap order (O·taps floats) start in the workspace: after the masks and the slots. */
PK_INLINE long pk_dw_weights_at(const long *g) {
    return g[6] * g[14] * g[15] + PK_DW_SLOTS * pk_dw_slot_floats(g);
}

/* wt[o·taps + jb->w0 + t] = w[o·taps + jb->widx[t]] for the taps of the job, every channel */
static void pk_dw_order_weights(const pk_dw_job *jb, const float *w, long O, long taps, float *wt) {
    long nt = jb->ng ? jb->gend[jb->ng - 1] : 0;
    for (long o = 0; o < O; o++)
        for (long t = 0; t < nt; t++) wt[o * taps + jb->w0 + t] = w[o * taps + jb->widx[t]];
}

/* The row shifts of the taps: floor((i·DH - PT) / S) over i, least and greatest. */
PK_INLINE void pk_dw_row_shifts(const long *g, long *lo, long *hi) {
    PK_CONV_GEOMETRY(g);
    long pr;
    pk_dw_phase(-PT, SH, &pr, lo);
    pk_dw_phase((KH - 1) * DH - PT, SH, &pr, hi);
}

PK_INLINE long pk_dw_mask_len(long P, long WO) { return WO % (4 * PK_DW_VL) ? P : WO; }

/* mask[q] all ones where column q mod WO + shift stays in 0..WO-1, else zero, for q < P */
static void pk_dw_mask(long P, long WO, long shift, float *mask) {  /* once per call */
    pk_bits one, zero;
    one.u = 0xffffffffu;
    zero.u = 0;
    for (long q = 0; q < P; q++) {
        long c = q % WO + shift;
        mask[q] = c >= 0 && c < WO ? one.f : zero.f;
    }
}

/* Four output vectors at once, out + e[u] + q for u < 4, tap t reading src[t] + d[u] + q with
   weight w[u·ws + t] (`lanes`; else w[t] for all) and its group's mask at mq + md[u]: four
   independent chains hide the multiply-add latency. */
PK_INLINE void pk_dw_gather4(const pk_dw_job *jb, const float *const *src, const float *w, long ws, int lanes,
                             float *out, long q, long mq, const long *d, const long *e, const long *md, int add) {
    pk_dwv a0 = pk_dwv_zero(), a1 = a0, a2 = a0, a3 = a0;
    if (add) {
        a0 = pk_dwv_load(out + e[0] + q);
        a1 = pk_dwv_load(out + e[1] + q);
        a2 = pk_dwv_load(out + e[2] + q);
        a3 = pk_dwv_load(out + e[3] + q);
    }
    for (long gi = 0, t = 0; gi < jb->ng; gi++) {
        pk_dwv s0 = pk_dwv_zero(), s1 = s0, s2 = s0, s3 = s0;
        const float *m = jb->mask[gi];
        if (m) {  /* a wrapped read is padding: masked to zero before the product (0 · NaN = NaN) */
            m += mq;
            pk_dwv m0 = pk_dwv_load(m + md[0]), m1 = pk_dwv_load(m + md[1]);
            pk_dwv m2 = pk_dwv_load(m + md[2]), m3 = pk_dwv_load(m + md[3]);
            for (; t < jb->gend[gi]; t++) {
                const float *r = src[t] + q;
                pk_dwv k = pk_dwv_set1(w[t]);
                s0 = pk_dwv_fma(k, pk_dwv_and(pk_dwv_load(r + d[0]), m0), s0);
                if (lanes) k = pk_dwv_set1(w[ws + t]);
                s1 = pk_dwv_fma(k, pk_dwv_and(pk_dwv_load(r + d[1]), m1), s1);
                if (lanes) k = pk_dwv_set1(w[2 * ws + t]);
                s2 = pk_dwv_fma(k, pk_dwv_and(pk_dwv_load(r + d[2]), m2), s2);
                if (lanes) k = pk_dwv_set1(w[3 * ws + t]);
                s3 = pk_dwv_fma(k, pk_dwv_and(pk_dwv_load(r + d[3]), m3), s3);
            }
        } else {
            for (; t < jb->gend[gi]; t++) {
                const float *r = src[t] + q;
                pk_dwv k = pk_dwv_set1(w[t]);
                s0 = pk_dwv_fma(k, pk_dwv_load(r + d[0]), s0);
                if (lanes) k = pk_dwv_set1(w[ws + t]);
                s1 = pk_dwv_fma(k, pk_dwv_load(r + d[1]), s1);
                if (lanes) k = pk_dwv_set1(w[2 * ws + t]);
                s2 = pk_dwv_fma(k, pk_dwv_load(r + d[2]), s2);
                if (lanes) k = pk_dwv_set1(w[3 * ws + t]);
                s3 = pk_dwv_fma(k, pk_dwv_load(r + d[3]), s3);
            }
        }
        a0 = pk_dwv_add(a0, s0);
        a1 = pk_dwv_add(a1, s1);
        a2 = pk_dwv_add(a2, s2);
        a3 = pk_dwv_add(a3, s3);
    }
    pk_dwv_store(out + e[0] + q, a0);
    pk_dwv_store(out + e[1] + q, a1);
    pk_dwv_store(out + e[2] + q, a2);
    pk_dwv_store(out + e[3] + q, a3);
}

/* The rest of one plane from q on, a vector at a time, then element by element (masks of P). */
static void pk_dw_gather_rest(const pk_dw_job *jb, const float *const *src, const float *w, float *out, long d,
                              long q, long P, int add) {
    for (; q + PK_DW_VL <= P; q += PK_DW_VL) {
        pk_dwv a = add ? pk_dwv_load(out + q) : pk_dwv_zero();
        for (long gi = 0, t = 0; gi < jb->ng; gi++) {
            pk_dwv s = pk_dwv_zero();
            if (jb->mask[gi]) {
                pk_dwv m = pk_dwv_load(jb->mask[gi] + q);
                for (; t < jb->gend[gi]; t++)
                    s = pk_dwv_fma(pk_dwv_set1(w[t]), pk_dwv_and(pk_dwv_load(src[t] + d + q), m), s);
            } else {
                for (; t < jb->gend[gi]; t++) s = pk_dwv_fma(pk_dwv_set1(w[t]), pk_dwv_load(src[t] + d + q), s);
            }
            a = pk_dwv_add(a, s);
        }
        pk_dwv_store(out + q, a);
    }
    for (; q < P; q++) {
        float a = add ? out[q] : 0.0f;
        for (long gi = 0, t = 0; gi < jb->ng; gi++) {
            float s = 0.0f;
            pk_bits m;
            m.f = jb->mask[gi] ? jb->mask[gi][q] : 0.0f;
            int pad = jb->mask[gi] && !m.u;  /* padding: a zero that is still multiplied */
            for (; t < jb->gend[gi]; t++) s = pk_fmaf(w[t], pad ? 0.0f : src[t][d + q], s);
            a += s;
        }
        out[q] = a;
    }
}

/* out[k·os + q] (+)= Σ_group mask[q] & Σ_tap w[k·ws + t] · base[k·bs + off[t] + q] for q < P and
   planes k < nb (w: the job's weights in tap order): along each plane four vectors at a time,
   or, when planes are shorter than four vectors, the same vector of four planes at once. */
static void pk_dw_gather(const pk_dw_job *jb, const float *base, const float *w, long ws, float *out, long P,
                         int add, long nb, long bs, long os) {
    const float *src[PK_DW_TAPS];
    const long V = PK_DW_VL;
    long nt = jb->ng ? jb->gend[jb->ng - 1] : 0, k = 0;
    for (long t = 0; t < nt; t++) src[t] = base + jb->off[t];
    if (P < 4 * V)
        for (; k + 4 <= nb; k += 4) {
            long d[4] = {k * bs, (k + 1) * bs, (k + 2) * bs, (k + 3) * bs};
            long e[4] = {k * os, (k + 1) * os, (k + 2) * os, (k + 3) * os}, md[4] = {0, 0, 0, 0}, q = 0;
            for (; q + V <= P; q += V) pk_dw_gather4(jb, src, w + k * ws, ws, 1, out, q, q, d, e, md, add);
            for (long u = 0; u < 4 && q < P; u++) pk_dw_gather_rest(jb, src, w + (k + u) * ws, out + e[u], d[u], q, P, add);
        }
    for (; k < nb; k++) {
        long d[4] = {k * bs, k * bs + V, k * bs + 2 * V, k * bs + 3 * V}, md[4] = {0, V, 2 * V, 3 * V}, q = 0;
        long e[4] = {k * os, k * os + V, k * os + 2 * V, k * os + 3 * V};
        for (long mq = 0; q + 4 * V <= P; q += 4 * V, mq = mq + 4 * V == jb->mlen ? 0 : mq + 4 * V)
            pk_dw_gather4(jb, src, w + k * ws, 0, 0, out, q, mq, d, e, md, add);
        pk_dw_gather_rest(jb, src, w + k * ws, out + k * os, k * bs, q, P, add);
    }
}

/* acc[t] += dy · (mask & base[off[t] + ·]) over q < P, lane by lane (the tail in tails[t]) */
static void pk_dw_dot(const pk_dw_job *jb, const float *base, const float *dy, long P, pk_dwv *acc, float *tails) {
    const long V = PK_DW_VL;
    for (long gi = 0, t = 0; gi < jb->ng; gi++)
        for (; t < jb->gend[gi]; t++) {
            const float *s = base + jb->off[t], *m = jb->mask[gi];
            pk_dwv a0 = acc[t], a1 = pk_dwv_zero();
            long q = 0;
            for (long mq = 0; q + 2 * V <= P; q += 2 * V, mq = mq + 2 * V == jb->mlen ? 0 : mq + 2 * V) {
                pk_dwv x0 = pk_dwv_load(s + q), x1 = pk_dwv_load(s + q + V);
                if (m) {
                    x0 = pk_dwv_and(x0, pk_dwv_load(m + mq));
                    x1 = pk_dwv_and(x1, pk_dwv_load(m + mq + V));
                }
                a0 = pk_dwv_fma(pk_dwv_load(dy + q), x0, a0);
                a1 = pk_dwv_fma(pk_dwv_load(dy + q + V), x1, a1);
            }
            for (; q + V <= P; q += V) {
                pk_dwv x0 = pk_dwv_load(s + q);
                a0 = pk_dwv_fma(pk_dwv_load(dy + q), m ? pk_dwv_and(x0, pk_dwv_load(m + q)) : x0, a0);
            }
            acc[t] = pk_dwv_add(a0, a1);
            for (; q < P; q++) {
                pk_bits mb;
                mb.f = m ? m[q] : 0.0f;
                tails[t] += dy[q] * (!m || mb.u ? s[q] : 0.0f);  /* padding is a zero multiplied */
            }
        }
}

/* ev[c] = src[2c], od[c] = src[2c + 1] for the columns of a row of W that exist, c < WO */
static void pk_dw_split2(const float *restrict src, long W, long WO, float *restrict ev, float *restrict od) {
    long ne = pk_min(WO, (W + 1) / 2), no = pk_min(WO, W / 2), c = 0;
#if defined(__AVX2__) && defined(__FMA__)
    for (; c + 8 <= no; c += 8) {
        __m256 a = _mm256_loadu_ps(src + 2 * c), b = _mm256_loadu_ps(src + 2 * c + 8);
        __m256d e = _mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), o = _mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD));
        _mm256_storeu_ps(ev + c, _mm256_castpd_ps(_mm256_permute4x64_pd(e, 0xD8)));  /* lanes 0 2 1 3 */
        _mm256_storeu_ps(od + c, _mm256_castpd_ps(_mm256_permute4x64_pd(o, 0xD8)));
    }
    for (; c + 4 <= no; c += 4) {
        __m128 a = _mm_loadu_ps(src + 2 * c), b = _mm_loadu_ps(src + 2 * c + 4);
        _mm_storeu_ps(ev + c, _mm_shuffle_ps(a, b, 0x88));
        _mm_storeu_ps(od + c, _mm_shuffle_ps(a, b, 0xDD));
    }
#elif defined(__ARM_NEON) && defined(__aarch64__)
    for (; c + 4 <= no; c += 4) {
        float32x4x2_t v = vld2q_f32(src + 2 * c);
        vst1q_f32(ev + c, v.val[0]);
        vst1q_f32(od + c, v.val[1]);
    }
#endif
    for (; c < no; c++) {
        ev[c] = src[2 * c];
        od[c] = src[2 * c + 1];
    }
    for (; c < ne; c++) ev[c] = src[2 * c];
}

/* The inverse onto a row of W: dst[2c] = ev[c], dst[2c + 1] = od[c] */
static void pk_dw_merge2(const float *restrict ev, const float *restrict od, long W, float *restrict dst) {
    long n = W / 2, c = 0;
#if defined(__AVX2__) && defined(__FMA__)
    for (; c + 8 <= n; c += 8) {
        __m256 e = _mm256_loadu_ps(ev + c), o = _mm256_loadu_ps(od + c);
        __m256 lo = _mm256_unpacklo_ps(e, o), hi = _mm256_unpackhi_ps(e, o);
        _mm256_storeu_ps(dst + 2 * c, _mm256_permute2f128_ps(lo, hi, 0x20));
        _mm256_storeu_ps(dst + 2 * c + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
    }
    for (; c + 4 <= n; c += 4) {
        __m128 e = _mm_loadu_ps(ev + c), o = _mm_loadu_ps(od + c);
        _mm_storeu_ps(dst + 2 * c, _mm_unpacklo_ps(e, o));
        _mm_storeu_ps(dst + 2 * c + 4, _mm_unpackhi_ps(e, o));
    }
#elif defined(__ARM_NEON) && defined(__aarch64__)
    for (; c + 4 <= n; c += 4) {
        float32x4x2_t v = {{vld1q_f32(ev + c), vld1q_f32(od + c)}};
        vst2q_f32(dst + 2 * c, v);
    }
#endif
    for (; c < n; c++) {
        dst[2 * c] = ev[c];
        dst[2 * c + 1] = od[c];
    }
    if (W & 1) dst[W - 1] = ev[n];
}

/* x's phase planes (forward and dw): phase (pr, pc) at ph + (pr·S + pc)·PS, its row r (lo ≤ r <
   HO + hi) at buffer row r - lo + 1. What no input pixel fills stays zero from the call's memset. */
static void pk_dw_fill_phases(const long *g, const float *x, long lo, long hi, long PS, float *ph) {
    PK_CONV_GEOMETRY(g);
    if (SH == 1) {  /* rows r = h from max(lo, 0) to min(H, HO + hi): one copy when rows are whole */
        long r0 = pk_max(lo, 0), r1 = pk_min(H, HO + hi);
        if (W == WO) memcpy(ph + (r0 - lo + 1) * WO, x + r0 * W, pk_max(0, r1 - r0) * W * sizeof(float));
        else
            for (long r = r0; r < r1; r++) memcpy(ph + (r - lo + 1) * WO, x + r * W, pk_min(W, WO) * sizeof(float));
        return;
    }
    for (long h = 0, pr = 0, r = 0; h < H; h++, r += pr, pr ^= 1)  /* h = 2r + pr */
        if (r >= lo && r < HO + hi) {
            float *d = ph + pr * 2 * PS + (r - lo + 1) * WO;
            pk_dw_split2(x + h * W, W, WO, d, d + PS);
        }
}

/* The job of the forward and dw: one group per tap column j (shift sj, masked unless 0),
   reading the phase planes; the masks go to work, the phase planes follow them. */
static float *pk_dw_forward_job(const long *g, float *work, pk_dw_job *jb, long *lo, long *hi) {
    PK_CONV_GEOMETRY(g);
    long S = SH, PS = pk_dw_phase_floats(g), pr, pc, si, sj;
    pk_dw_row_shifts(g, lo, hi);
    jb->ng = KW;
    jb->w0 = 0;
    jb->mlen = pk_dw_mask_len(P, WO);
    for (long j = 0, t = 0; j < KW; j++) {
        pk_dw_phase(j * DW - PL, S, &pc, &sj);
        jb->mask[j] = NULL;
        if (sj) {
            pk_dw_mask(jb->mlen, WO, sj, work + j * P);
            jb->mask[j] = work + j * P;
        }
        for (long i = 0; i < KH; i++, t++) {
            pk_dw_phase(i * DH - PT, S, &pr, &si);
            jb->off[t] = (pr * S + pc) * PS + (si - *lo + 1) * WO + sj;
            jb->widx[t] = i * KW + j;
        }
        jb->gend[j] = (j + 1) * KH;
    }
    float *ph = work + KW * P;  /* slot 0; slot k at ph + k·pk_dw_slot_floats */
    for (long k = 0; k < pk_min(pk_threads(), PK_DW_SLOTS); k++)  /* the slots threads will use */
        memset(ph + k * pk_dw_slot_floats(g), 0, PK_DW_BATCH(P) * S * S * PS * sizeof(float));
    return ph;
}

/* Batched planes (short ones, channel multiplier 1) are neighbouring channels of one image:
   memory is read and written in order. */
static void pk_dw_flat_forward(const long *g, const float *x, const float *w, float *y, float *work) {
    PK_CONV_GEOMETRY(g);
    long mult = O / C, lo, hi, PS = pk_dw_phase_floats(g), B = mult == 1 ? PK_DW_BATCH(P) : 1, PH = SH * SH * PS;
    pk_dw_job jb;
    float *ph = pk_dw_forward_job(g, work, &jb, &lo, &hi), *wt = work + pk_dw_weights_at(g);
    pk_dw_order_weights(&jb, w, O, taps, wt);
    long nblk = (C + B - 1) / B;
    PK_REGION_N(PK_DW_PAR(N * O * P * taps) && N * nblk > 1, PK_DW_SLOTS)
    {
        long b0, b1;
        float *my = ph + pk_thread() * pk_dw_slot_floats(g);
        pk_share(N * nblk, &b0, &b1);
        for (long b = b0; b < b1; b++) {
            long n = b / nblk, c0 = b % nblk * B, nb = pk_min(B, C - c0);
            for (long k = 0; k < nb; k++) pk_dw_fill_phases(g, x + (n * C + c0 + k) * H * W, lo, hi, PS, my + k * PH);
            for (long o = c0 * mult; o < (c0 + 1) * mult; o++)
                pk_dw_gather(&jb, my, wt + o * taps, taps, y + (n * O + o) * P, P, 0, nb, PH, P);
        }
    }
}

/* dw: per image and channel (in memory order), one masked dot product per tap, added into dw. */
static void pk_dw_flat_weight(const long *g, const float *x, const float *dy, float *dw, float alpha, float beta,
                              float *work) {
    PK_CONV_GEOMETRY(g);
    long mult = O / C, lo, hi, PS = pk_dw_phase_floats(g);
    pk_dw_job jb;
    float *ph = pk_dw_forward_job(g, work, &jb, &lo, &hi);
    for (long o = 0; o < O * taps; o++) dw[o] = beta != 0.0f ? beta * dw[o] : 0.0f;
    PK_REGION_N(PK_DW_PAR(N * O * P * taps) && C > 1, PK_DW_SLOTS)
    {
        long c0, c1;
        float *my = ph + pk_thread() * pk_dw_slot_floats(g);
        pk_dwv acc[PK_DW_TAPS];
        float tails[PK_DW_TAPS];
        pk_share(C, &c0, &c1);
        for (long c = c0; c < c1; c++)
            for (long n = 0; n < N; n++) {  /* each dw entry adds the images in order, as on one thread */
                pk_dw_fill_phases(g, x + (n * C + c) * H * W, lo, hi, PS, my);
                for (long o = c * mult; o < (c + 1) * mult; o++) {
                    for (long t = 0; t < taps; t++) {
                        acc[t] = pk_dwv_zero();
                        tails[t] = 0.0f;
                    }
                    pk_dw_dot(&jb, my, dy + (n * O + o) * P, P, acc, tails);
                    for (long t = 0; t < taps; t++) dw[o * taps + jb.widx[t]] += alpha * (pk_dwv_sum(acc[t]) + tails[t]);
                }
            }
    }
}

/* dx: phase (ph, pw) of dx (HO×WO, at dxph + (ph·S + pw)·P) gathers dy, held in a plane with
   zero rows around it (dy row r at row r + hi + 1), through the taps with row phase ph and
   column phase pw: for each such tap column, one group masked by the shift -sj. With stride
   1 and dx the size of dy, dx itself is the phase plane. */
static void pk_dw_flat_input(const long *g, const float *dy, const float *w, float *dx, float *work) {
    PK_CONV_GEOMETRY(g);
    long S = SH, mult = O / C, lo, hi, PS = pk_dw_phase_floats(g), pr, pc, si, sj, B = mult == 1 ? PK_DW_BATCH(P) : 1;
    float *slot0 = work + KW * P;  /* per thread: phase planes (unused here), a dy plane, dx's phases */
    pk_dw_job jobs[4];
    pk_dw_row_shifts(g, &lo, &hi);
    for (long k = 0; k < S * S; k++) {
        jobs[k].ng = 0;
        jobs[k].mlen = pk_dw_mask_len(P, WO);
    }
    for (long j = 0; j < KW; j++) {
        pk_dw_phase(j * DW - PL, S, &pc, &sj);
        if (sj) pk_dw_mask(pk_dw_mask_len(P, WO), WO, -sj, work + j * P);
        for (long ph = 0; ph < S; ph++) {
            pk_dw_job *jb = &jobs[ph * S + pc];
            long t = jb->ng ? jb->gend[jb->ng - 1] : 0, t0 = t;
            for (long i = 0; i < KH; i++) {
                pk_dw_phase(i * DH - PT, S, &pr, &si);
                if (pr != ph) continue;
                jb->off[t] = (hi + 1 - si) * WO - sj;
                jb->widx[t++] = i * KW + j;
            }
            if (t == t0) continue;
            jb->mask[jb->ng] = sj ? work + j * P : NULL;
            jb->gend[jb->ng++] = t;
        }
    }
    float *wt = work + pk_dw_weights_at(g);
    for (long f = 0, w0 = 0; f < S * S; w0 += jobs[f].ng ? jobs[f].gend[jobs[f].ng - 1] : 0, f++) {
        jobs[f].w0 = w0;
        pk_dw_order_weights(&jobs[f], w, O, taps, wt);
    }
    int direct = S == 1 && H == HO && W == WO;
    long nblk = (C + B - 1) / B;
    for (long k = 0; k < pk_min(pk_threads(), PK_DW_SLOTS); k++)  /* the slots threads will use */
        memset(slot0 + k * pk_dw_slot_floats(g) + B * S * S * PS, 0, B * PS * sizeof(float));
    PK_REGION_N(PK_DW_PAR(N * O * P * taps) && N * nblk > 1, PK_DW_SLOTS)
    {
        long b0, b1;
        float *dyb = slot0 + pk_thread() * pk_dw_slot_floats(g) + B * S * S * PS, *dxph = dyb + B * PS;
        pk_share(N * nblk, &b0, &b1);
        for (long b = b0; b < b1; b++) {
            long n = b / nblk, c0 = b % nblk * B, nb = pk_min(B, C - c0), os = direct ? P : S * S * P;
            float *out = direct ? dx + (n * C + c0) * P : dxph;
            for (long o = c0 * mult; o < (c0 + 1) * mult; o++) {
                for (long k = 0; k < nb; k++)
                    memcpy(dyb + k * PS + (hi + 1) * WO, dy + (n * O + o + k) * P, P * sizeof(float));
                for (long f = 0; f < S * S; f++)
                    pk_dw_gather(&jobs[f], dyb, wt + o * taps + jobs[f].w0, taps, out + f * P, P, o > c0 * mult, nb,
                                 PS, os);
            }
            if (direct) continue;
            for (long k = 0; k < nb; k++) {
                float *d = dx + (n * C + c0 + k) * H * W, *e = dxph + k * os;
                for (long h = 0; h < H; h++) {
                    if (S == 1) memcpy(d + h * W, e + h * WO, W * sizeof(float));
                    else pk_dw_merge2(e + (h & 1) * 2 * P + h / 2 * WO, e + ((h & 1) * 2 + 1) * P + h / 2 * WO, W,
                                      d + h * W);
                }
            }
        }
    }
}

/* ---- The general path (strides above 2, unequal strides, windows that leave the flat path). */

/* The padded plane's size: rows and columns the windows reach (geometry as in conv2d.c). */
PK_INLINE void pk_dw_padded(const long *g, long *hp, long *wp) {
    PK_CONV_GEOMETRY(g);
    *hp = pk_max(PT + H, (HO - 1) * SH + (KH - 1) * DH + 1);
    *wp = pk_max(PL + W, (WO - 1) * SW + (KW - 1) * DW + 1);
}

static void pk_dw_pad(const float *x, long H, long W, long PT, long PL, long hp, long wp, float *xp) {
    memset(xp, 0, hp * wp * sizeof(float));
    for (long h = 0; h < H; h++) memcpy(xp + (h + PT) * wp + PL, x + h * W, W * sizeof(float));
}

static void pk_dw_general_forward(const long *g, const float *x, const float *w, float *y, float *work) {
    PK_CONV_GEOMETRY(g);
    long hp, wp, mult = O / C;
    pk_dw_padded(g, &hp, &wp);
    PK_REGION_N(PK_DW_PAR(N * O * P * taps) && N * C > 1, PK_DW_SLOTS)
    {
        long p0, p1;
        float *xp = work + pk_thread() * hp * wp;  /* this thread's padded plane */
        pk_share(N * C, &p0, &p1);
        for (long nc = p0; nc < p1; nc++) {
            long n = nc / C, c = nc % C;
            pk_dw_pad(x + (n * C + c) * H * W, H, W, PT, PL, hp, wp, xp);
            for (long o = c * mult; o < (c + 1) * mult; o++)
                for (long oh = 0; oh < HO; oh++) {
                    float *r = y + (n * O + o) * P + oh * WO;
                    for (long ow = 0; ow < WO; ow++) r[ow] = 0.0f;
                    for (long i = 0; i < KH; i++)
                        for (long j = 0; j < KW; j++) {
                            const float *src = xp + (oh * SH + i * DH) * wp + j * DW;
                            float wv = w[(o * KH + i) * KW + j];
                            for (long ow = 0; ow < WO; ow++) r[ow] += wv * src[ow * SW];
                        }
                }
        }
    }
}

/* dx: every output's gradient spread back over its window in a padded plane, then cropped. */
static void pk_dw_general_input(const long *g, const float *dy, const float *w, float *dx, float *work) {
    PK_CONV_GEOMETRY(g);
    long hp, wp, mult = O / C;
    pk_dw_padded(g, &hp, &wp);
    PK_REGION_N(PK_DW_PAR(N * O * P * taps) && N * C > 1, PK_DW_SLOTS)
    {
        long p0, p1;
        float *dxp = work + pk_thread() * hp * wp;
        pk_share(N * C, &p0, &p1);
        for (long nc = p0; nc < p1; nc++) {
            long n = nc / C, c = nc % C;
            memset(dxp, 0, hp * wp * sizeof(float));
            for (long o = c * mult; o < (c + 1) * mult; o++)
                for (long oh = 0; oh < HO; oh++)
                    for (long i = 0; i < KH; i++)
                        for (long j = 0; j < KW; j++) {
                            float *dst = dxp + (oh * SH + i * DH) * wp + j * DW, wv = w[(o * KH + i) * KW + j];
                            const float *r = dy + (n * O + o) * P + oh * WO;
                            for (long ow = 0; ow < WO; ow++) dst[ow * SW] += wv * r[ow];
                        }
            for (long h = 0; h < H; h++)
                memcpy(dx + ((n * C + c) * H + h) * W, dxp + (h + PT) * wp + PL, W * sizeof(float));
        }
    }
}

/* dw[o][i][j] = alpha · Σ_n Σ_(oh,ow) dy · x_padded at the tap (+ beta · dw); threads own
   channels, each weight adding the images in order. */
static void pk_dw_general_weight(const long *g, const float *x, const float *dy, float *dw, float alpha, float beta,
                                 float *work) {
    PK_CONV_GEOMETRY(g);
    long hp, wp, mult = O / C;
    pk_dw_padded(g, &hp, &wp);
    for (long o = 0; o < O * KH * KW; o++) dw[o] = beta != 0.0f ? beta * dw[o] : 0.0f;
    PK_REGION_N(PK_DW_PAR(N * O * P * taps) && C > 1, PK_DW_SLOTS)
    {
        long c0, c1;
        float *xp = work + pk_thread() * hp * wp;
        pk_share(C, &c0, &c1);
        for (long c = c0; c < c1; c++)
            for (long n = 0; n < N; n++) {
                pk_dw_pad(x + (n * C + c) * H * W, H, W, PT, PL, hp, wp, xp);
                for (long o = c * mult; o < (c + 1) * mult; o++)
                    for (long i = 0; i < KH; i++)
                        for (long j = 0; j < KW; j++) {
                            float s = 0.0f;
                            for (long oh = 0; oh < HO; oh++) {
                                const float *src = xp + (oh * SH + i * DH) * wp + j * DW;
                                const float *r = dy + (n * O + o) * P + oh * WO;
                                PK_SIMD_SUM(s)
                                for (long ow = 0; ow < WO; ow++) s += r[ow] * src[ow * SW];
                            }
                            dw[(o * KH + i) * KW + j] += alpha * s;
                        }
            }
    }
}

/* ---- Entry points */

static void pk_depthwise_forward(const long *g, const float *x, const float *w, float *y, float *work) {
    if (pk_dw_flat(g, 0)) pk_dw_flat_forward(g, x, w, y, work);
    else pk_dw_general_forward(g, x, w, y, work);
}

/* dx of each channel one of whose weights is NaN or ±inf, by the definition (an output
   pixel adds w·dy to the input pixels its taps read; padding receives nothing): the flat
   path reads zero rows around dy, and 0 · NaN would put NaN where no output reaches. */
static void pk_dw_input_nonfinite(const long *g, const float *dy, const float *w, float *dx) {
    PK_CONV_GEOMETRY(g);
    long mult = O / C;
    for (long c = 0; c < C; c++) {
        int finite = 1;
        for (long t = 0; t < mult * taps; t++) finite &= w[c * mult * taps + t] - w[c * mult * taps + t] == 0.0f;
        if (finite) continue;
        for (long n = 0; n < N; n++) {
            float *d = dx + (n * C + c) * H * W;
            memset(d, 0, H * W * sizeof(float));
            for (long o = c * mult; o < (c + 1) * mult; o++)
                for (long q = 0; q < P; q++) {
                    float v = dy[(n * O + o) * P + q];
                    for (long i = 0; i < KH; i++)
                        for (long j = 0; j < KW; j++) {
                            long ih = q / WO * SH - PT + i * DH, iw = q % WO * SW - PL + j * DW;
                            if (ih >= 0 && ih < H && iw >= 0 && iw < W) d[ih * W + iw] += w[o * taps + i * KW + j] * v;
                        }
                }
        }
    }
}

static void pk_depthwise_backward_input(const long *g, const float *dy, const float *w, float *dx, float *work) {
    if (pk_dw_flat(g, 1)) {
        pk_dw_flat_input(g, dy, w, dx, work);
        pk_dw_input_nonfinite(g, dy, w, dx);
    } else {
        pk_dw_general_input(g, dy, w, dx, work);
    }
}

static void pk_depthwise_backward_weight(const long *g, const float *x, const float *dy, float *dw, float alpha,
                                         float beta, float *work) {
    if (pk_dw_flat(g, 0)) pk_dw_flat_weight(g, x, dy, dw, alpha, beta, work);
    else pk_dw_general_weight(g, x, dy, dw, alpha, beta, work);
}
