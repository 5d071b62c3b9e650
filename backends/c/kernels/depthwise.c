/* Depthwise convolution (groups = C, weight [C·m, 1, KH, KW]) forward and both gradients,
   used by conv2d.c and its backward kernels. Each plane is first copied into a zero-padded
   buffer (the workspace), so the tap loops run without bounds checks. With stride 2 (rows
   of 16 outputs or more, or the 3×3 forward) the padded rows are stored even columns first,
   then odd ones ("split"): a tap then reads (or, for dx, adds to) a contiguous run for
   consecutive outputs, so the tap loops are plain vectorizable streams.
   requires: im2col */

/* The padded plane's size: rows and columns the windows reach (geometry as in conv2d.c). */
PK_INLINE void pk_dw_padded(const long *g, long *hp, long *wp) {
    long H = g[2], W = g[3], KH = g[5], KW = g[6], SH = g[7], SW = g[8], PT = g[9], PL = g[10];
    long DH = g[11], DW = g[12], HO = g[14], WO = g[15];
    *hp = pk_max(PT + H, (HO - 1) * SH + (KH - 1) * DH + 1);
    *wp = pk_max(PL + W, (WO - 1) * SW + (KW - 1) * DW + 1);
}

/* Where padded column p of a row is stored: split (2) into even and odd columns, or not (1). */
PK_INLINE long pk_dw_col(long p, long wp, long split) { return split != 2 ? p : p & 1 ? (wp + 1) / 2 + p / 2 : p / 2; }

/* The pairs of padded columns 2k, 2k + 1 (k0 ≤ k < k1) that both hold input columns. */
PK_INLINE void pk_dw_pairs(long W, long PL, long *k0, long *k1) {
    *k0 = (PL + 1) / 2;
    *k1 = pk_max(*k0, W - 2 + PL >= 0 ? (W - 2 + PL) / 2 + 1 : 0);
}

/* One input row into a split padded row (column w at padded column w + PL): the pairs as
   one interleaved stream, the ends one by one. */
static void pk_dw_split_row(const float *src, long W, long PL, long wp, float *row) {
    float *ev = row, *od = row + (wp + 1) / 2;
    long k0, k1;
    pk_dw_pairs(W, PL, &k0, &k1);
    for (long k = k0; k < k1; k++) { ev[k] = src[2 * k - PL]; od[k] = src[2 * k + 1 - PL]; }
    for (long w = 0; w < pk_min(W, 2 * k0 - PL); w++) row[pk_dw_col(w + PL, wp, 2)] = src[w];
    for (long w = pk_max(0, 2 * k1 - PL); w < W; w++) row[pk_dw_col(w + PL, wp, 2)] = src[w];
}

/* The inverse: a split padded row back into an input row. */
static void pk_dw_merge_row(const float *row, long wp, long W, long PL, float *dst) {
    const float *ev = row, *od = row + (wp + 1) / 2;
    long k0, k1;
    pk_dw_pairs(W, PL, &k0, &k1);
    for (long k = k0; k < k1; k++) { dst[2 * k - PL] = ev[k]; dst[2 * k + 1 - PL] = od[k]; }
    for (long w = 0; w < pk_min(W, 2 * k0 - PL); w++) dst[w] = row[pk_dw_col(w + PL, wp, 2)];
    for (long w = pk_max(0, 2 * k1 - PL); w < W; w++) dst[w] = row[pk_dw_col(w + PL, wp, 2)];
}

static void pk_dw_pad(const float *x, long H, long W, long PT, long PL, long hp, long wp, long split, float *xp) {
    memset(xp, 0, hp * wp * sizeof(float));
    for (long h = 0; h < H; h++) {
        if (split == 2) pk_dw_split_row(x + h * W, W, PL, wp, xp + (h + PT) * wp);
        else memcpy(xp + (h + PT) * wp + PL, x + h * W, W * sizeof(float));
    }
}

/* The common 3×3 (dilation 1) case in one pass per output row: nine taps, no accumulation
   through memory. */
static void pk_dw3x3_plane(const float *restrict xp, long wp, long HO, long WO, long S, const float *wk,
                           float *restrict out) {
    const float w0 = wk[0], w1 = wk[1], w2 = wk[2], w3 = wk[3], w4 = wk[4], w5 = wk[5], w6 = wk[6], w7 = wk[7],
                w8 = wk[8];
    for (long oh = 0; oh < HO; oh++) {
        const float *r0 = xp + oh * S * wp, *r1 = r0 + wp, *r2 = r1 + wp;
        float *o = out + oh * WO;
        if (S == 1)
            for (long ow = 0; ow < WO; ow++)
                o[ow] = w0 * r0[ow] + w1 * r0[ow + 1] + w2 * r0[ow + 2] + w3 * r1[ow] + w4 * r1[ow + 1] +
                        w5 * r1[ow + 2] + w6 * r2[ow] + w7 * r2[ow + 1] + w8 * r2[ow + 2];
        else
            for (long ow = 0; ow < WO; ow++)
                o[ow] = w0 * r0[S * ow] + w1 * r0[S * ow + 1] + w2 * r0[S * ow + 2] + w3 * r1[S * ow] +
                        w4 * r1[S * ow + 1] + w5 * r1[S * ow + 2] + w6 * r2[S * ow] + w7 * r2[S * ow + 1] +
                        w8 * r2[S * ow + 2];
    }
}

/* Stride 2 on a split plane: columns 2·ow, 2·ow + 1, 2·ow + 2 are even[ow], odd[ow], even[ow + 1]. */
static void pk_dw3x3s2_plane(const float *restrict xp, long wp, long HO, long WO, const float *wk,
                             float *restrict out) {
    const float w0 = wk[0], w1 = wk[1], w2 = wk[2], w3 = wk[3], w4 = wk[4], w5 = wk[5], w6 = wk[6], w7 = wk[7],
                w8 = wk[8];
    long ce = (wp + 1) / 2;
    for (long oh = 0; oh < HO; oh++) {
        const float *e0 = xp + 2 * oh * wp, *e1 = e0 + wp, *e2 = e1 + wp;
        const float *d0 = e0 + ce, *d1 = e1 + ce, *d2 = e2 + ce;
        float *o = out + oh * WO;
        for (long ow = 0; ow < WO; ow++)
            o[ow] = w0 * e0[ow] + w1 * d0[ow] + w2 * e0[ow + 1] + w3 * e1[ow] + w4 * d1[ow] + w5 * e1[ow + 1] +
                    w6 * e2[ow] + w7 * d2[ow] + w8 * e2[ow + 1];
    }
}

static void pk_depthwise_forward(const long *g, const float *x, const float *w, float *y, float *xp) {
    PK_CONV_GEOMETRY(g);
    long hp, wp, mult = O / C;
    pk_dw_padded(g, &hp, &wp);
    int k3 = KH == 3 && KW == 3 && DH == 1 && DW == 1 && SH == SW;
    long split = SW == 2 && (k3 || WO >= 8) ? 2 : 1, step = split == 2 ? 1 : SW;  /* plane layout, ow step */
    for (long n = 0; n < N; n++)
        for (long c = 0; c < C; c++) {
            pk_dw_pad(x + (n * C + c) * H * W, H, W, PT, PL, hp, wp, split, xp);
            for (long o = c * mult; o < (c + 1) * mult; o++) {
                const float *wk = w + o * KH * KW;
                float *out = y + (n * O + o) * P;
                if (k3 && SH == 2) {
                    pk_dw3x3s2_plane(xp, wp, HO, WO, wk, out);
                    continue;
                }
                if (k3) {
                    pk_dw3x3_plane(xp, wp, HO, WO, SH, wk, out);
                    continue;
                }
                for (long oh = 0; oh < HO; oh++) {
                    float *r = out + oh * WO;
                    for (long ow = 0; ow < WO; ow++) r[ow] = 0.0f;
                    for (long i = 0; i < KH; i++)
                        for (long j = 0; j < KW; j++) {
                            const float *src = xp + (oh * SH + i * DH) * wp + pk_dw_col(j * DW, wp, split);
                            float wv = wk[i * KW + j];
                            if (step == 1) for (long ow = 0; ow < WO; ow++) r[ow] += wv * src[ow];
                            else for (long ow = 0; ow < WO; ow++) r[ow] += wv * src[ow * step];
                        }
                }
            }
        }
}

/* dx: every output's gradient spread back over its window in a padded plane (split for
   stride 2), then cropped. A 3×3 stride-1 convolution's dx is the forward 3×3 pass over dy
   padded by 2 - padding with the kernel flipped. */
static void pk_depthwise_backward_input(const long *g, const float *dy, const float *w, float *dx, float *dxp) {
    PK_CONV_GEOMETRY(g);
    long hp, wp, mult = O / C;
    pk_dw_padded(g, &hp, &wp);
    if (KH == 3 && KW == 3 && DH == 1 && DW == 1 && SH == 1 && SW == 1 && mult == 1 && PT <= 2 && PL <= 2
        && (H + 2) * (W + 2) <= hp * wp) {
        for (long n = 0; n < N; n++)
            for (long c = 0; c < C; c++) {
                float flip[9];
                for (long t = 0; t < 9; t++) flip[t] = w[c * 9 + 8 - t];
                /* dy padded by (2 - PT, 2 - PL) on the top/left; rows/cols beyond it zero */
                long ph = H + 2, pw = W + 2;
                memset(dxp, 0, ph * pw * sizeof(float));
                for (long oh = 0; oh < HO && oh + 2 - PT < ph; oh++)
                    memcpy(dxp + (oh + 2 - PT) * pw + 2 - PL, dy + ((n * C + c) * HO + oh) * WO,
                           pk_min(WO, pw - (2 - PL)) * sizeof(float));
                pk_dw3x3_plane(dxp, pw, H, W, 1, flip, dx + (n * C + c) * H * W);
            }
        return;
    }
    long split = SW == 2 && WO >= 16 ? 2 : 1, step = split == 2 ? 1 : SW;  /* small planes: strided is cheaper */
    for (long n = 0; n < N; n++)
        for (long c = 0; c < C; c++) {
            memset(dxp, 0, hp * wp * sizeof(float));
            for (long o = c * mult; o < (c + 1) * mult; o++) {
                const float *wk = w + o * KH * KW, *gy = dy + (n * O + o) * P;
                for (long oh = 0; oh < HO; oh++)
                    for (long i = 0; i < KH; i++)
                        for (long j = 0; j < KW; j++) {
                            float *dst = dxp + (oh * SH + i * DH) * wp + pk_dw_col(j * DW, wp, split);
                            const float *r = gy + oh * WO;
                            float wv = wk[i * KW + j];
                            if (step == 1) for (long ow = 0; ow < WO; ow++) dst[ow] += wv * r[ow];
                            else for (long ow = 0; ow < WO; ow++) dst[ow * step] += wv * r[ow];
                        }
            }
            float *out = dx + (n * C + c) * H * W;
            for (long h = 0; h < H; h++) {
                if (split == 2) pk_dw_merge_row(dxp + (h + PT) * wp, wp, W, PL, out + h * W);
                else memcpy(out + h * W, dxp + (h + PT) * wp + PL, W * sizeof(float));
            }
        }
}

/* dw[o][i][j] = Σ_n Σ_(oh,ow) dy · x_padded at the tap: one dot product per tap and plane. */
static void pk_depthwise_backward_weight(const long *g, const float *x, const float *dy, float *dw, float alpha,
                                         float beta, float *xp) {
    PK_CONV_GEOMETRY(g);
    long hp, wp, mult = O / C;
    pk_dw_padded(g, &hp, &wp);
    long split = SW == 2 && WO >= 16 ? 2 : 1, step = split == 2 ? 1 : SW;
    for (long o = 0; o < O * KH * KW; o++) dw[o] = beta != 0.0f ? beta * dw[o] : 0.0f;
    for (long n = 0; n < N; n++)
        for (long c = 0; c < C; c++) {
            pk_dw_pad(x + (n * C + c) * H * W, H, W, PT, PL, hp, wp, split, xp);
            for (long o = c * mult; o < (c + 1) * mult; o++) {
                const float *gy = dy + (n * O + o) * P;
                for (long i = 0; i < KH; i++)
                    for (long j = 0; j < KW; j++) {
                        float s = 0.0f;
                        for (long oh = 0; oh < HO; oh++) {
                            const float *src = xp + (oh * SH + i * DH) * wp + pk_dw_col(j * DW, wp, split);
                            const float *r = gy + oh * WO;
                            if (step == 1) {
                                PK_SIMD_SUM(s)
                                for (long ow = 0; ow < WO; ow++) s += r[ow] * src[ow];
                            } else {
                                PK_SIMD_SUM(s)
                                for (long ow = 0; ow < WO; ow++) s += r[ow] * src[ow * step];
                            }
                        }
                        dw[(o * KH + i) * KW + j] += alpha * s;
                    }
            }
        }
}
