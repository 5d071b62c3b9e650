/* matmul: c[b, M, N] = a[b, M, K] · b[b, K, N] over nb collapsed batch dims (train.matmul).
   Batch strides are 0 where an operand broadcasts; matrices may be strided (a transposed
   key in attention is only swapped strides).
   requires: gemm */
static void pk_matmul_ep(long nb, const long *bshape, const long *sa, const long *sb, const long *sc,
                         long M, long N, long K, const float *a, long rsa, long csa,
                         const float *b, long rsb, long csb, float *c, float *work, const pk_epilogue *ep) {
    long total = 1;
    for (long d = 0; d < nb; d++) total *= bshape[d];
    for (long t = 0; t < total; t++) {
        long oa = 0, ob = 0, oc = 0, r = t;
        for (long d = nb - 1; d >= 0; d--) {
            long i = r % bshape[d];
            r /= bshape[d];
            oa += i * sa[d]; ob += i * sb[d]; oc += i * sc[d];
        }
        pk_epilogue e;  /* the epilogue's batch index is the flat one, t */
        if (ep) { e = *ep; e.b = t; }
        pk_gemm_ep(M, N, K, a + oa, rsa, csa, b + ob, rsb, csb, c + oc, N, 1, 1.0f, 0.0f, work, ep ? &e : NULL);
    }
}
static void pk_matmul(long nb, const long *bshape, const long *sa, const long *sb, const long *sc,
                      long M, long N, long K, const float *a, long rsa, long csa,
                      const float *b, long rsb, long csb, float *c, float *work) {
    pk_matmul_ep(nb, bshape, sa, sb, sc, M, N, K, a, rsa, csa, b, rsb, csb, c, work, NULL);
}
