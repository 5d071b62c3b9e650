/* cross_entropy_backward (train.cross_entropy_backward): dlogits = (softmax(logits) -
   onehot(label))·dloss / count, 0·softmax where label == ignore (zero, or NaN where the row
   holds a NaN or +inf, as PyTorch's log_softmax backward gives; count = kept labels for
   mean, 1 for sum), in that order (softmax - onehot first, then the scale, as the
   interpreter and PyTorch: an infinite dloss gives ±inf, not inf - inf). May run in place
   over the logits. A label outside [0, C) gives a NaN row, as
   the forward gives a NaN loss.
   requires: softmax */
#define PK_DEFINE_CE_BACKWARD(NAME, TL)                                                   \
static void NAME(long N, long C, long inner, const float *logits, const TL *labels,      \
                 const float *dloss, long ignore, long mean, float *dx) {                \
    long count = 0;                                                                      \
    for (long k = 0; k < N * inner; k++) count += pk_index(labels[k]) != ignore;         \
    float scale = mean ? dloss[0] / (float)(count > 0 ? count : 1) : dloss[0];           \
    PK_PARALLEL_FOR(N * C * inner >= PK_PAR_MIN)                                         \
    for (long n = 0; n < N; n++)                                                         \
        for (long i = 0; i < inner; i++) {                                               \
            long label = pk_index(labels[n * inner + i]);                                \
            const float *l = logits + n * C * inner + i;                                 \
            float *d = dx + n * C * inner + i;                                           \
            if (label != ignore && (label < 0 || label >= C)) {                          \
                for (long c = 0; c < C; c++) d[c * inner] = NAN;                         \
                continue;                                                                \
            }                                                                            \
            float rs = label == ignore ? 0.0f * scale : scale;  /* NaN or inf dloss: NaN */ \
            if (inner == 1) {                                                            \
                float m = pk_row_max(C, l);                                              \
                float inv = 1.0f / pk_row_exp(C, l, m, d);                               \
                for (long c = 0; c < C; c++) d[c] = (d[c] * inv - (float)(c == label)) * rs; \
            } else {                                                                     \
                float m = -INFINITY;                                                     \
                for (long c = 0; c < C; c++) m = l[c * inner] > m ? l[c * inner] : m;    \
                double s = 0.0;                                                          \
                for (long c = 0; c < C; c++) { float e = pk_expf(l[c * inner] - m); d[c * inner] = e; s += e; } \
                float inv = (float)(1.0 / s);                                            \
                for (long c = 0; c < C; c++)                                             \
                    d[c * inner] = (d[c * inner] * inv - (float)(c == label)) * rs;      \
            }                                                                            \
        }                                                                                \
}
PK_DEFINE_CE_BACKWARD(pk_cross_entropy_backward, int64_t)
PK_DEFINE_CE_BACKWARD(pk_cross_entropy_backward_i32, int32_t)
