/* cross_entropy of logits [N, C, inner] against integer labels [N, inner]
   (train.cross_entropy): -log softmax over C at the label, labels == ignore skipped,
   mean over the counted positions or their sum. */
#define PK_DEFINE_CE(NAME, TL)                                                            \
static void NAME(long N, long C, long inner, const float *logits, const TL *labels,      \
                 long ignore, long mean, float *out) {                                   \
    double total = 0.0;                                                                  \
    long count = 0;                                                                      \
    for (long n = 0; n < N; n++)                                                         \
        for (long i = 0; i < inner; i++) {                                               \
            long label = (long)labels[n * inner + i];                                    \
            if (label == ignore || label < 0 || label >= C) continue; /* out of range: skipped */ \
            const float *l = logits + n * C * inner + i;                                 \
            float m = -INFINITY;                                                         \
            for (long c = 0; c < C; c++) m = l[c * inner] > m ? l[c * inner] : m;        \
            double s = 0.0;                                                              \
            for (long c = 0; c < C; c++) s += expf(l[c * inner] - m);                    \
            total += (double)m + log(s) - l[label * inner];                              \
            count++;                                                                     \
        }                                                                                \
    *out = (float)(mean ? total / (count > 0 ? count : 1) : total);                      \
}
PK_DEFINE_CE(pk_cross_entropy, int64_t)
PK_DEFINE_CE(pk_cross_entropy_i32, int32_t)
