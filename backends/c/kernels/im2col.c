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

/* col[(c*KH + i)*KW + j][oh*WO + ow] = x[c][oh*SH - PT + i*DH][ow*SW - PL + j*DW] (0 outside);
   rows of col are ld floats apart (ld = HO*WO per image, N*HO*WO batched). */
static void pk_im2col(long C, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL,
                      long DH, long DW, long HO, long WO, const float *x, float *col, long ld) {
    for (long c = 0; c < C; c++)
        for (long i = 0; i < KH; i++)
            for (long j = 0; j < KW; j++) {
                float *row = col + ((c * KH + i) * KW + j) * ld;
                long d = j * DW - PL, lo, hi;
                pk_conv_cols(W, WO, SW, d, &lo, &hi);
                for (long oh = 0; oh < HO; oh++) {
                    long ih = oh * SH - PT + i * DH;
                    float *r = row + oh * WO;
                    if (ih < 0 || ih >= H) { memset(r, 0, WO * sizeof(float)); continue; }
                    const float *src = x + (c * H + ih) * W + d;
                    for (long ow = 0; ow < lo; ow++) r[ow] = 0.0f;
                    if (SW == 1) memcpy(r + lo, src + lo, (hi - lo) * sizeof(float));
                    else for (long ow = lo; ow < hi; ow++) r[ow] = src[ow * SW];
                    for (long ow = hi; ow < WO; ow++) r[ow] = 0.0f;
                }
            }
}

/* x[c][ih][iw] += col[(c*KH + i)*KW + j][oh*WO + ow] for every tap that read it; rows of col
   are ld floats apart. x must be zeroed first. */
static void pk_col2im(long C, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL,
                      long DH, long DW, long HO, long WO, const float *col, long ld, float *x) {
    for (long c = 0; c < C; c++)
        for (long i = 0; i < KH; i++)
            for (long j = 0; j < KW; j++) {
                const float *row = col + ((c * KH + i) * KW + j) * ld;
                long d = j * DW - PL, lo, hi;
                pk_conv_cols(W, WO, SW, d, &lo, &hi);
                for (long oh = 0; oh < HO; oh++) {
                    long ih = oh * SH - PT + i * DH;
                    if (ih < 0 || ih >= H) continue;
                    float *dst = x + (c * H + ih) * W + d;
                    const float *r = row + oh * WO;
                    if (SW == 1) for (long ow = lo; ow < hi; ow++) dst[ow] += r[ow];
                    else for (long ow = lo; ow < hi; ow++) dst[ow * SW] += r[ow];
                }
            }
}
