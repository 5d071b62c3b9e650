/* The window of one avg_pool2d output cell (oh, ow), shared by avg_pool2d.c and
   avg_pool2d_backward.c: the input cells [hs, he) × [ws, we) it covers and its divisor.
   The divisor counts window cells inside the padded input when include_pad (PyTorch's
   count_include_pad), else only cells inside the input; the ceil_mode overhang past the
   padding never counts. */
typedef struct { long hs, he, ws, we, count; } pk_avg_window;

PK_INLINE pk_avg_window pk_avg_pool_window(long oh, long ow, long H, long W, long KH, long KW, long SH,
                                           long SW, long PT, long PL, long PB, long PR, long include_pad) {
    long h0 = oh * SH - PT, w0 = ow * SW - PL;
    long h1 = pk_min(h0 + KH, H + PB), w1 = pk_min(w0 + KW, W + PR);
    pk_avg_window r = {pk_max(h0, 0), pk_min(h1, H), pk_max(w0, 0), pk_min(w1, W), (h1 - h0) * (w1 - w0)};
    if (!include_pad) r.count = (r.he - r.hs) * (r.we - r.ws);
    return r;
}
