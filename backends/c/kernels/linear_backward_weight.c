/* linear_backward_weight: dw[N, K] = dy[M, N]ᵀ · x[M, K] summed over all rows
   (train.linear_backward_weight); dy and x rows may be strided.
   requires: gemm */
static void pk_linear_backward_weight(long M, long N, long K, const float *x, long rsx, long csx,
                                      const float *dy, long rsd, long csd, float *dw, float *work) {
    pk_gemm(N, K, M, dy, csd, rsd, x, rsx, csx, dw, K, 1, 0, work);
}
