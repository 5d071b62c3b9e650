/* conv2d: NCHW input, OIHW weight, grouped (train.conv2d). Depthwise convolutions run as
   direct loops; 1×1 stride-1 convolutions are one GEMM per image and group; the rest
   unfold the input (im2col) into the workspace and run one GEMM per image and group.
   requires: gemm */

/* col[(c*KH + i)*KW + j][oh*WO + ow] = x[c][oh*SH - PT + i*DH][ow*SW - PL + j*DW] (0 outside). */
static void pk_im2col(long C, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL,
                      long DH, long DW, long HO, long WO, const float *x, float *col) {
    for (long c = 0; c < C; c++)
        for (long i = 0; i < KH; i++)
            for (long j = 0; j < KW; j++) {
                float *row = col + ((c * KH + i) * KW + j) * HO * WO;
                long dx = j * DW - PL;
                /* output columns whose input column lies inside [0, W) */
                long lo = dx >= 0 ? 0 : (-dx + SW - 1) / SW;
                long hi = W - 1 - dx < 0 ? 0 : pk_min(WO, (W - 1 - dx) / SW + 1);
                if (lo > hi) lo = hi;
                for (long oh = 0; oh < HO; oh++) {
                    long ih = oh * SH - PT + i * DH;
                    float *r = row + oh * WO;
                    if (ih < 0 || ih >= H) { memset(r, 0, WO * sizeof(float)); continue; }
                    const float *src = x + (c * H + ih) * W + dx;
                    for (long ow = 0; ow < lo; ow++) r[ow] = 0.0f;
                    if (SW == 1) memcpy(r + lo, src + lo, (hi - lo) * sizeof(float));
                    else for (long ow = lo; ow < hi; ow++) r[ow] = src[ow * SW];
                    for (long ow = hi; ow < WO; ow++) r[ow] = 0.0f;
                }
            }
}

static void pk_conv2d_depthwise(long N, long C, long H, long W, long O, long KH, long KW, long SH, long SW,
                                long PT, long PL, long DH, long DW, long HO, long WO,
                                const float *x, const float *w, float *y) {
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
                    long dx = j * DW - PL;
                    long lo = dx >= 0 ? 0 : (-dx + SW - 1) / SW;
                    long hi = W - 1 - dx < 0 ? 0 : pk_min(WO, (W - 1 - dx) / SW + 1);
                    const float *src = xin + ih * W + dx;
                    float wv = wk[i * KW + j];
                    if (SW == 1) for (long ow = lo; ow < hi; ow++) r[ow] += wv * src[ow];
                    else for (long ow = lo; ow < hi; ow++) r[ow] += wv * src[ow * SW];
                }
            }
        }
    }
}

static void pk_conv2d(long N, long C, long H, long W, long O, long KH, long KW, long SH, long SW,
                      long PT, long PL, long DH, long DW, long G, long HO, long WO,
                      const float *x, const float *w, float *y, float *work) {
    long cg = C / G, og = O / G, K = cg * KH * KW, P = HO * WO;
    if (G == C && cg == 1 && G > 1) {
        pk_conv2d_depthwise(N, C, H, W, O, KH, KW, SH, SW, PT, PL, DH, DW, HO, WO, x, w, y);
        return;
    }
    int pointwise = KH == 1 && KW == 1 && SH == 1 && SW == 1 && PT == 0 && PL == 0 && HO == H && WO == W;
    float *col = work, *gw = pointwise ? work : work + K * P;
    for (long n = 0; n < N; n++)
        for (long g = 0; g < G; g++) {
            const float *xg = x + (n * C + g * cg) * H * W;
            if (!pointwise) pk_im2col(cg, H, W, KH, KW, SH, SW, PT, PL, DH, DW, HO, WO, xg, col);
            pk_gemm(og, P, K, w + g * og * K, K, 1, pointwise ? xg : col, P, 1,
                    y + (n * O + g * og) * P, P, 1, 0, gw);
        }
}
