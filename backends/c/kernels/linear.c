/* linear: y[M, N] = x[M, K] · w[N, K]ᵀ (train.linear). x rows are rsx apart, w[n, k] at
   w[n*ws0 + k*ws1]: a transposed weight is read through its strides, never copied.
   requires: gemm */
static void pk_linear_ep(long M, long N, long K, const float *x, long rsx, long csx,
                         const float *w, long ws0, long ws1, float *y, float *work, const pk_epilogue *ep) {
    pk_gemm_ep(M, N, K, x, rsx, csx, w, ws1, ws0, y, N, 1, 1.0f, 0.0f, work, ep);
}
static void pk_linear(long M, long N, long K, const float *x, long rsx, long csx,
                      const float *w, long ws0, long ws1, float *y, float *work) {
    pk_linear_ep(M, N, K, x, rsx, csx, w, ws0, ws1, y, work, NULL);
}
