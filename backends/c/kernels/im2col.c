/* im2col: the convolution geometry every conv kernel reads, and unfolding an input into
   columns (im2col) or folding columns back onto an input (col2im). No train op of its own;
   conv2d.c and its gradients require it. */

#define PK_CONV_GEOMETRY(g)                                                               \
    long N = g[0], C = g[1], H = g[2], W = g[3], O = g[4], KH = g[5], KW = g[6];          \
    long SH = g[7], SW = g[8], PT = g[9], PL = g[10], DH = g[11], DW = g[12], G = g[13]; \
    long HO = g[14], WO = g[15], batched = g[16];                                         \
    long cg = C / G, og = O / G, K = cg * KH * KW, P = HO * WO;                           \
    int depthwise = G == C && cg == 1 && G > 1;                                           \
    int pointwise = KH == 1 && KW == 1 && SH == 1 && SW == 1 && PT == 0 && PL == 0 && HO == H && WO == W; \
    PK_UNUSED(N); PK_UNUSED(O); PK_UNUSED(K); PK_UNUSED(P); PK_UNUSED(batched);           \
    PK_UNUSED(depthwise); PK_UNUSED(pointwise); PK_UNUSED(og)

/* Output columns ow whose input column ow*SW + d lies inside [0, W). */
PK_INLINE void pk_conv_cols(long W, long WO, long SW, long d, long *lo, long *hi) {
    *lo = d >= 0 ? 0 : (-d + SW - 1) / SW;
    *hi = W - 1 - d < 0 ? 0 : pk_min(WO, (W - 1 - d) / SW + 1);
    if (*lo > *hi) *lo = *hi;
}

/* col[(c*KH + i)*KW + j][oh*WO + ow] = x[c][oh*SH - PT + i*DH][ow*SW - PL + j*DW] (0 outside).
   Element (row k, column p) of col is at col[k*rs + p*cs]: rs = HO*WO, cs = 1 per image;
   rs = N*HO*WO batched; rs = 1, cs = rows for the transposed layout a GEMM reads fastest. */
static void pk_im2col(long C, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL,
                      long DH, long DW, long HO, long WO, const float *x, float *col, long rs, long cs) {
    for (long c = 0; c < C; c++)
        for (long i = 0; i < KH; i++)
            for (long j = 0; j < KW; j++) {
                float *row = col + ((c * KH + i) * KW + j) * rs;
                long d = j * DW - PL, lo, hi;
                pk_conv_cols(W, WO, SW, d, &lo, &hi);
                for (long oh = 0; oh < HO; oh++) {
                    long ih = oh * SH - PT + i * DH;
                    int inside = ih >= 0 && ih < H;
                    long a = inside ? lo : WO, b = inside ? hi : WO;  /* a padding row is all zero */
                    float *r = row + oh * WO * cs;
                    const float *src = x + (c * H + (inside ? ih : 0)) * W + d;
                    if (cs == 1) {
                        for (long ow = 0; ow < a; ow++) r[ow] = 0.0f;
                        if (SW == 1) memcpy(r + a, src + a, (b - a) * sizeof(float));
                        else for (long ow = a; ow < b; ow++) r[ow] = src[ow * SW];
                        for (long ow = b; ow < WO; ow++) r[ow] = 0.0f;
                    } else {
                        for (long ow = 0; ow < WO; ow++) r[ow * cs] = ow >= a && ow < b ? src[ow * SW] : 0.0f;
                    }
                }
            }
}

/* x[c][ih][iw] += col[(c*KH + i)*KW + j][oh*WO + ow] for every tap that read it (col laid out
   as in pk_im2col). x must be zeroed first. */
static void pk_col2im(long C, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL,
                      long DH, long DW, long HO, long WO, const float *col, long rs, long cs, float *x) {
    for (long c = 0; c < C; c++)
        for (long i = 0; i < KH; i++)
            for (long j = 0; j < KW; j++) {
                const float *row = col + ((c * KH + i) * KW + j) * rs;
                long d = j * DW - PL, lo, hi;
                pk_conv_cols(W, WO, SW, d, &lo, &hi);
                for (long oh = 0; oh < HO; oh++) {
                    long ih = oh * SH - PT + i * DH;
                    if (ih < 0 || ih >= H) continue;
                    float *dst = x + (c * H + ih) * W + d;
                    const float *r = row + oh * WO * cs;
                    if (SW == 1 && cs == 1) for (long ow = lo; ow < hi; ow++) dst[ow] += r[ow];
                    else for (long ow = lo; ow < hi; ow++) dst[ow * SW] += r[ow * cs];
                }
            }
}
