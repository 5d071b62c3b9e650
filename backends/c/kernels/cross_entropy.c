/* cross_entropy of logits [N, C, inner] against integer labels [N, inner]
   (train.cross_entropy): -log softmax over C at the label, labels == ignore skipped, mean
   over the counted positions or their sum. A label outside [0, C) makes the loss NaN (the
   callers reject such labels first: runtime.Trainer, main.c; this keeps a bypass visible).
   requires: softmax */
#define PK_DEFINE_CE(NAME, TL)                                                            \
static void NAME(long N, long C, long inner, const float *logits, const TL *labels,      \
                 long ignore, long mean, float *out) {                                   \
    double total = 0.0;                                                                  \
    long count = 0;                                                                      \
    for (long n = 0; n < N; n++)                                                         \
        for (long i = 0; i < inner; i++) {                                               \
            long label = pk_index(labels[n * inner + i]);                                \
            if (label == ignore) continue;                                               \
            if (label < 0 || label >= C) { total += NAN; count++; continue; }            \
            const float *l = logits + n * C * inner + i;                                 \
            float m, s = 0.0f;                                                           \
            if (inner == 1) {                                                            \
                m = pk_row_max(C, l);                                                    \
                s = pk_row_expsum(C, l, m);                                              \
            } else {                                                                     \
                m = -INFINITY;                                                           \
                for (long c = 0; c < C; c++) m = l[c * inner] > m ? l[c * inner] : m;    \
                for (long c = 0; c < C; c++) s += pk_expf(l[c * inner] - m);             \
            }                                                                            \
            total += (double)m + log((double)s) - l[label * inner];                      \
            count++;                                                                     \
        }                                                                                \
    *out = (float)(mean ? total / (count > 0 ? count : 1) : total);                      \
}
PK_DEFINE_CE(pk_cross_entropy, int64_t)
PK_DEFINE_CE(pk_cross_entropy_i32, int32_t)
