/* conv2d: NCHW input, OIHW weight, grouped (train.conv2d). Depthwise convolutions run as
   direct loops. Otherwise the input is unfolded (im2col; a 1×1 stride-1 convolution needs
   none) and multiplied by the weight on the packed GEMM, either
     per image:  y[n, g] = w[g] · col(x[n, g])            (large outputs: small workspace)
     batched:    y[:, g] = w[g] · [col(x[0, g]) … col(x[N-1, g])]   (small outputs: one
                 GEMM with N·HO·WO columns instead of N thin ones; then scattered to NCHW)
   The geometry comes as one table g[] = {N, C, H, W, O, KH, KW, SH, SW, PT, PL, DH, DW,
   G, HO, WO, batched}; the lowering picks `batched` and plans the workspace to match.
   requires: gemm */

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

static void pk_conv2d_depthwise(const long *g, const float *x, const float *w, float *y) {
    PK_CONV_GEOMETRY(g);
    long mult = O / C;
    PK_PARALLEL_FOR(N * O * HO * WO > 16384)
    for (long no = 0; no < N * O; no++) {
        long n = no / O, o = no % O;
        const float *xin = x + (n * C + o / mult) * H * W;
        const float *wk = w + o * KH * KW;
        float *out = y + no * HO * WO;
        for (long oh = 0; oh < HO; oh++) {
            float *r = out + oh * WO;
            for (long ow = 0; ow < WO; ow++) r[ow] = 0.0f;
            for (long i = 0; i < KH; i++) {
                long ih = oh * SH - PT + i * DH;
                if (ih < 0 || ih >= H) continue;
                for (long j = 0; j < KW; j++) {
                    long d = j * DW - PL, lo, hi;
                    pk_conv_cols(W, WO, SW, d, &lo, &hi);
                    const float *src = xin + ih * W + d;
                    float wv = wk[i * KW + j];
                    if (SW == 1) for (long ow = lo; ow < hi; ow++) r[ow] += wv * src[ow];
                    else for (long ow = lo; ow < hi; ow++) r[ow] += wv * src[ow * SW];
                }
            }
        }
    }
}

static void pk_conv2d(const long *g, const float *x, const float *w, float *y, float *work) {
    PK_CONV_GEOMETRY(g);
    if (depthwise) { pk_conv2d_depthwise(g, x, w, y); return; }
    if (batched) {
        long NP = N * P;
        float *col = work, *tmp = work + K * NP, *gw = tmp + og * NP;
        for (long gr = 0; gr < G; gr++) {
            for (long n = 0; n < N; n++)
                pk_im2col(cg, H, W, KH, KW, SH, SW, PT, PL, DH, DW, HO, WO, x + (n * C + gr * cg) * H * W,
                          col + n * P, NP);
            pk_gemm(og, NP, K, w + gr * og * K, K, 1, col, NP, 1, tmp, NP, 1, 0, gw);
            for (long n = 0; n < N; n++)
                for (long o = 0; o < og; o++)
                    memcpy(y + (n * O + gr * og + o) * P, tmp + o * NP + n * P, P * sizeof(float));
        }
        return;
    }
    float *col = work, *gw = pointwise ? work : work + K * P;
    for (long n = 0; n < N; n++)
        for (long gr = 0; gr < G; gr++) {
            const float *xg = x + (n * C + gr * cg) * H * W;
            if (!pointwise) pk_im2col(cg, H, W, KH, KW, SH, SW, PT, PL, DH, DW, HO, WO, xg, col, P);
            pk_gemm(og, P, K, w + gr * og * K, K, 1, pointwise ? xg : col, P, 1,
                    y + (n * O + gr * og) * P, P, 1, 0, gw);
        }
}
