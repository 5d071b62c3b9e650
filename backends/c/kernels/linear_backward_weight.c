/* linear_backward_weight: dw[N, K] = dy[M, N]ᵀ · x[M, K] summed over all rows
   (train.linear_backward_weight); dy and x rows may be strided. With `ab` (alpha, beta) it
   computes dw = alpha·dyᵀx + beta·dw: an SGD update accumulating straight into its buffer.
   requires: gemm */
static void pk_linear_backward_weight(long M, long N, long K, const float *x, long rsx, long csx,
                                      const float *dy, long rsd, long csd, float *dw, const float *ab,
                                      float *work) {
    pk_gemm_ab(N, K, M, dy, csd, rsd, x, rsx, csx, dw, K, 1, ab ? ab[0] : 1.0f, ab ? ab[1] : 0.0f, work);
}
