/* max_pool2d over NC planes of H×W (train.max_pool2d); padding counts as -inf. A NaN in a
   window makes its maximum NaN (numpy's max, torch's max_pool2d). Each output row takes the
   window's taps one at a time over the columns that tap reads inside the plane (a loop the
   compiler vectorizes); every output sees its taps in the serial order. Threads own planes. */
PK_NOINLINE static void pk_max_pool2d_planes(long p0, long p1, long H, long W, long KH, long KW, long SH, long SW,
                                             long PT, long PL, long DH, long DW, long HO, long WO,
                                             const float *restrict x, float *restrict y) {
    for (long p = p0; p < p1; p++) {
        const float *xin = x + p * H * W;
        for (long oh = 0; oh < HO; oh++) {
            float *restrict out = y + (p * HO + oh) * WO;
            for (long ow = 0; ow < WO; ow++) out[ow] = -INFINITY;
            for (long i = 0; i < KH; i++) {
                long ih = oh * SH - PT + i * DH;
                if (ih < 0 || ih >= H) continue;
                const float *row = xin + ih * W;
                for (long j = 0; j < KW; j++) {
                    long off = j * DW - PL;  /* column ow reads iw = ow·SW + off: inside for lo ≤ ow < hi */
                    long lo = off >= 0 ? 0 : pk_min(WO, (-off + SW - 1) / SW);
                    long hi = off >= W ? 0 : pk_min(WO, (W - 1 - off) / SW + 1);
                    for (long ow = lo; ow < hi; ow++) out[ow] = pk_nanmaxf(out[ow], row[ow * SW + off]);  /* NaN stays */
                }
            }
        }
    }
}
static void pk_max_pool2d(long NC, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL,
                          long DH, long DW, long HO, long WO, const float *x, float *y) {
    PK_SPLIT(NC, NC > 1 && NC * HO * WO * KH * KW >= PK_PAR_MIN, p0, p1,
             pk_max_pool2d_planes(p0, p1, H, W, KH, KW, SH, SW, PT, PL, DH, DW, HO, WO, x, y));
}
