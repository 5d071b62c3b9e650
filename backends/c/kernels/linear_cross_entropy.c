/* linear_cross_entropy: a vocabulary head and its softmax cross-entropy, chunk by chunk
   over the rows (a train.fused of kind "linear_cross_entropy", passes/fusion.py), so the
   logits [M, C] and their gradient never exist whole. Row r of x [M, K] has the label
   labels[rowlab[r]] (rowlab[r] < 0: the row is not in the loss). Per chunk of n ≤ `rows`
   rows, in a buffer lt [C, n] (transposed: the GEMM then reads w's rows in place, and the
   softmax runs down the columns vectorized across the rows):
       lt = w·x_cᵀ (+ bias)
       loss += logsumexp(l) - l[label]
       lt ← (softmax - onehot(label))·scale      (scale = dloss / count for "mean")
       dx_c = ltᵀ·w;  dw = alpha·lt·x_c + beta·dw (beta on the first chunk, then 1);  db += Σ lt
   The GEMMs go over blocks of vb vocabulary rows; in the backward, block b of chunk i's
   gradient is used up (dx, dw, db) right before the same rows of w make block b of chunk
   i+1's logits in its place, so w is read from memory once per chunk, not twice.
   loss, dx, dw (ab: (alpha, beta), NULL for (1, 0)), db and dloss (no backward) may be NULL.
   geometry: M, K, C, rows, x row/col stride, w strides, vb, ignore index, mean, label count.
   Workspace: rows·C floats, then 3·rows (each rounded up to 16), then the GEMMs' space.
   requires: gemm */

/* Per column r in r0..r1 of lt [C, n]: its max and Σ exp(l - max); with `store` the exps replace lt. */
PK_NOINLINE static void pk_lce_softmax_cols(long C, long n, long r0, long r1, float *restrict lt,
                                            float *restrict mx, float *restrict s, int store) {
    for (long r = r0; r < r1; r++) { mx[r] = -INFINITY; s[r] = 0.0f; }
    for (long c = 0; c < C; c++) {
        const float *row = lt + c * n;
        for (long r = r0; r < r1; r++) mx[r] = row[r] > mx[r] ? row[r] : mx[r];
    }
    for (long r = r0; r < r1; r++) mx[r] = mx[r] == -INFINITY ? 0.0f : mx[r];  /* fully masked: finite */
    for (long c = 0; c < C; c++) {
        float *row = lt + c * n;
        if (store)
            for (long r = r0; r < r1; r++) { float e = pk_expf(row[r] - mx[r]); row[r] = e; s[r] += e; }
        else
            for (long r = r0; r < r1; r++) s[r] += pk_expf(row[r] - mx[r]);
    }
}
/* Threads own column strips (one per thread, 16-aligned): each column's sums in the serial order. */
static void pk_lce_softmax(long C, long n, float *lt, float *mx, float *s, int store) {
    long nt = C * n >= PK_PAR_MIN ? pk_threads() : 1, w = ((n + nt - 1) / nt + 15) / 16 * 16;
    PK_PARALLEL_FOR(nt > 1)
    for (long r0 = 0; r0 < n; r0 += w) pk_lce_softmax_cols(C, n, r0, pk_min(n, r0 + w), lt, mx, s, store);
}

PK_NOINLINE static void pk_lce_scale(long C, long n, float *restrict lt, const float *restrict f) {
    PK_PARALLEL_FOR(C * n >= PK_PAR_MIN)
    for (long c = 0; c < C; c++) {
        float *row = lt + c * n;
        for (long r = 0; r < n; r++) row[r] *= f[r];
    }
}

/* Chunk rows r0..r0+n: the picked logits, softmax and, with `backward`, the gradient in
   place of lt; returns the chunk's summed loss. f, mx, s: n floats each. */
#define PK_DEFINE_LCE_ROWS(NAME, TL)                                                         \
static double NAME(long C, long n, float *lt, const TL *labels, const int64_t *rowlab,      \
                   long ignore, float scale, int backward, float *mx, float *s, float *f) { \
    double total = 0.0;                                                                     \
    for (long r = 0; r < n; r++) {  /* f holds the picked logits until the scale */        \
        long at = pk_index(rowlab[r]), label = at < 0 ? ignore : pk_index(labels[at]);          \
        f[r] = label != ignore && label >= 0 && label < C ? lt[label * n + r] : 0.0f;       \
    }                                                                                       \
    pk_lce_softmax(C, n, lt, mx, s, backward);                                              \
    for (long r = 0; r < n; r++) {                                                          \
        long at = pk_index(rowlab[r]), label = at < 0 ? ignore : pk_index(labels[at]);          \
        int bad = label != ignore && (label < 0 || label >= C);  /* NaN loss and rows */     \
        if (label != ignore) total += bad ? NAN : (double)mx[r] + log((double)s[r]) - f[r]; \
        f[r] = label == ignore ? 0.0f : bad ? NAN : scale / s[r];                           \
    }                                                                                       \
    if (!backward) return total;                                                            \
    pk_lce_scale(C, n, lt, f);                                                              \
    for (long r = 0; r < n; r++) {                                                          \
        long at = pk_index(rowlab[r]), label = at < 0 ? ignore : pk_index(labels[at]);          \
        if (label != ignore && label >= 0 && label < C) lt[label * n + r] -= scale;         \
    }                                                                                       \
    return total;                                                                           \
}
PK_DEFINE_LCE_ROWS(pk_lce_rows, int64_t)
PK_DEFINE_LCE_ROWS(pk_lce_rows_i32, int32_t)

/* lt[c0.., :] = w[c0..c0+vn, :]·x_cᵀ (+ bias), for chunk rows x_c [n, K]. */
static void pk_lce_logits(long c0, long vn, long n, long K, const float *w, long ws0, long ws1,
                          const float *bias, const float *xc, long rsx, long csx, float *lt, float *gw) {
    if (bias)
        for (long c = c0; c < c0 + vn; c++)
            for (long r = 0; r < n; r++) lt[c * n + r] = bias[c];
    pk_gemm(vn, n, K, w + c0 * ws0, ws0, ws1, xc, csx, rsx, lt + c0 * n, n, 1, bias != NULL, gw);
}

#define PK_DEFINE_LCE(NAME, ROWS, TL)                                                        \
static void NAME(const long *g, const float *x, const float *w, const float *bias,          \
                 const TL *labels, const int64_t *rowlab, const float *dloss, float *loss,  \
                 float *dx, float *dw, const float *ab, float *db, float *work) {           \
    long M = g[0], K = g[1], C = g[2], rows = g[3], rsx = g[4], csx = g[5], ws0 = g[6];     \
    long ws1 = g[7], vb = g[8], ignore = g[9], mean = g[10], nl = g[11];                    \
    long count = 0;                                                                         \
    for (long i = 0; i < nl; i++) count += pk_index(labels[i]) != ignore;                   \
    int backward = dx != NULL || dw != NULL || db != NULL;                                  \
    float scale = backward ? (mean ? dloss[0] / (float)(count > 0 ? count : 1) : dloss[0]) : 0.0f; \
    long pad = (rows + 15) / 16 * 16;  /* each piece 64-byte aligned */                     \
    float *lt = work, *mx = work + (rows * C + 15) / 16 * 16, *s = mx + pad, *f = s + pad, *gw = f + pad; \
    double total = 0.0;                                                                     \
    if (db) memset(db, 0, (size_t)C * sizeof(float));                                       \
    if (M > 0)  /* the first chunk's logits */                                              \
        for (long c0 = 0; c0 < C; c0 += vb)                                                 \
            pk_lce_logits(c0, pk_min(vb, C - c0), pk_min(rows, M), K, w, ws0, ws1, bias, x, rsx, csx, lt, gw); \
    for (long r0 = 0; r0 < M; r0 += rows) {                                                 \
        long n = pk_min(rows, M - r0), r1 = r0 + n, n1 = pk_min(rows, M - r1);              \
        const float *xc = x + r0 * rsx;                                                     \
        total += ROWS(C, n, lt, labels, rowlab + r0, ignore, scale, backward, mx, s, f);    \
        for (long c0 = 0; c0 < C; c0 += vb) {                                               \
            long vn = pk_min(vb, C - c0);                                                   \
            const float *gb = lt + c0 * n;  /* this chunk's gradient, vocabulary rows c0.. */ \
            if (dx) pk_gemm(n, K, vn, gb, 1, n, w + c0 * ws0, ws0, ws1, dx + r0 * K, K, 1, c0 > 0, gw); \
            if (dw) pk_gemm_ab(vn, K, n, gb, n, 1, xc, rsx, csx, dw + c0 * K, K, 1, ab ? ab[0] : 1.0f, \
                               r0 > 0 ? 1.0f : (ab ? ab[1] : 0.0f), gw);                    \
            if (db) {                                                                       \
                PK_PARALLEL_FOR(vn * n >= PK_PAR_MIN)                                       \
                for (long c = 0; c < vn; c++)                                               \
                    for (long r = 0; r < n; r++) db[c0 + c] += gb[c * n + r];               \
            }                                                                               \
            if (n1 > 0)  /* the next chunk's logits take the rows just used up */           \
                pk_lce_logits(c0, vn, n1, K, w, ws0, ws1, bias, x + r1 * rsx, rsx, csx, lt, gw); \
        }                                                                                   \
    }                                                                                       \
    if (loss) *loss = (float)(mean ? total / (double)(count > 0 ? count : 1) : total);      \
}
PK_DEFINE_LCE(pk_linear_cross_entropy, pk_lce_rows, int64_t)
PK_DEFINE_LCE(pk_linear_cross_entropy_i32, pk_lce_rows_i32, int32_t)
