"""The data-parallel library kernels other than the GEMMs (backends/gpu/gemm.py), each one
`KernelDef` in the shared subset (backends/gpu/language.py).

Row kernels (softmax, layer/RMS norm, cross-entropy, pooling of a plane) give one group of
ROW work-items to a row: each work-item walks the row with stride LSZ(0), the group combines
through pk_group_sum / pk_group_max (group-local memory and barriers), and every element is
read and written by the same work-item, so y may be x. Column sums over rows (the γ
gradients) read per-row statistics a first kernel left in scratch. Scatters with repeated
indices (gather backward) add atomically. Everything else is one work-item per output
element, walked with grid-stride loops.
"""

from __future__ import annotations

from .language import KernelDef, params

ROW = 64  # work-items per row group: a power of two (the tree reductions need it)
RED = (("float", "red", ROW),)


def _row(name, spec, body, doc) -> KernelDef:
    return KernelDef(name, params(spec), body, local=RED, group=(ROW, 1, 1), doc=doc)


ROW_LOOP = "for (long r = GRP(0); r < rows; r += NGRP(0)) {\n    long lid = LID(0), lsz = LSZ(0);\n"

SOFTMAX = _row("pk_softmax", "long outer, long n, long inner, f32* x, f32* y, long log_form", ROW_LOOP + """
    long base = (r / inner) * n * inner + r % inner;
    float m = -INFINITY;
    for (long k = lid; k < n; k += lsz) { float v = x[base + k * inner]; m = (v > m || v != v) ? v : m; }
    m = pk_group_max(red, m, lid, lsz);
    if (m == -INFINITY) m = 0.0f;
    float s = 0.0f;
    for (long k = lid; k < n; k += lsz) s += exp(x[base + k * inner] - m);
    s = pk_group_sum(red, s, lid, lsz);
    if (log_form) {
        float ls = log(s);
        for (long k = lid; k < n; k += lsz) y[base + k * inner] = x[base + k * inner] - m - ls;
    } else {
        float inv = 1.0f / s;
        for (long k = lid; k < n; k += lsz) y[base + k * inner] = exp(x[base + k * inner] - m) * inv;
    }
}""", "softmax / log_softmax along the middle axis of (outer, n, inner)")
SOFTMAX = KernelDef(SOFTMAX.name, SOFTMAX.params, "long rows = outer * inner;\n" + SOFTMAX.body, SOFTMAX.local,
                    SOFTMAX.group, SOFTMAX.doc)

SOFTMAX_BACKWARD = _row("pk_softmax_backward", "long outer, long n, long inner, f32* y, f32* dy, f32* dx, long log_form",
                        "long rows = outer * inner;\n" + ROW_LOOP + """
    long base = (r / inner) * n * inner + r % inner;
    float s = 0.0f;
    for (long k = lid; k < n; k += lsz) s += log_form ? dy[base + k * inner] : dy[base + k * inner] * y[base + k * inner];
    s = pk_group_sum(red, s, lid, lsz);
    for (long k = lid; k < n; k += lsz) {
        long at = base + k * inner;
        dx[at] = log_form ? dy[at] - exp(y[at]) * s : y[at] * (dy[at] - s);
    }
}""", "softmax_backward: dx = y (dy - sum dy y); log form: dx = dy - exp(y) sum dy")

# the statistics of a row: mean then Σ(x - mean)² (two passes: no cancellation)
LN_STATS = """    float s = 0.0f;
    for (long k = lid; k < n; k += lsz) s += x[r * n + k];
    float mean = pk_group_sum(red, s, lid, lsz) / (float)n;
    float q = 0.0f;
    for (long k = lid; k < n; k += lsz) { float d = x[r * n + k] - mean; q += d * d; }
    float rstd = 1.0f / sqrt(pk_group_sum(red, q, lid, lsz) / (float)n + eps);
"""
RMS_STATS = """    float q = 0.0f;
    for (long k = lid; k < n; k += lsz) { float v = x[r * n + k]; q += v * v; }
    float rstd = 1.0f / sqrt(pk_group_sum(red, q, lid, lsz) / (float)n + eps);
"""

LAYER_NORM = _row("pk_layer_norm", "long rows, long n, f32* x, f32* g, f32* b, float eps, f32* y", ROW_LOOP + LN_STATS + """
    for (long k = lid; k < n; k += lsz) y[r * n + k] = (x[r * n + k] - mean) * (rstd * g[k]) + b[k];
}""", "layer_norm over rows of n")

LAYER_NORM_BACKWARD = _row("pk_layer_norm_backward", "long rows, long n, f32* x, f32* g, f32* dy, float eps, f32* dx",
                           ROW_LOOP + LN_STATS + """
    float a = 0.0f, c = 0.0f;
    for (long k = lid; k < n; k += lsz) { float t = dy[r * n + k] * g[k]; a += t; c += t * (x[r * n + k] - mean); }
    float mg = pk_group_sum(red, a, lid, lsz) / (float)n, mgx = pk_group_sum(red, c, lid, lsz) / (float)n;
    float kk = rstd * rstd * rstd * mgx, cc = rstd * mg;
    for (long k = lid; k < n; k += lsz)
        dx[r * n + k] = rstd * (dy[r * n + k] * g[k]) - kk * (x[r * n + k] - mean) - cc;
}""", "layer_norm_backward: dx = rstd (g - mean(g)) - rstd^3 (x - mu) mean(g (x - mu)), g = dy gamma")

RMS_NORM = _row("pk_rms_norm", "long rows, long n, f32* x, f32* g, float eps, f32* y", ROW_LOOP + RMS_STATS + """
    for (long k = lid; k < n; k += lsz) y[r * n + k] = x[r * n + k] * (rstd * g[k]);
}""", "rms_norm over rows of n")

RMS_NORM_BACKWARD = _row("pk_rms_norm_backward", "long rows, long n, f32* x, f32* g, f32* dy, float eps, f32* dx",
                         ROW_LOOP + RMS_STATS + """
    float a = 0.0f;
    for (long k = lid; k < n; k += lsz) a += dy[r * n + k] * g[k] * x[r * n + k];
    float c = rstd * rstd * rstd * (pk_group_sum(red, a, lid, lsz) / (float)n);
    for (long k = lid; k < n; k += lsz) dx[r * n + k] = rstd * (dy[r * n + k] * g[k]) - c * x[r * n + k];
}""", "rms_norm_backward: dx = r g - r^3 x mean(g x), g = dy gamma")

# the γ gradients: per-row (mean, rstd) into st, then one work-item per column
NORM_STATS = _row("pk_norm_stats", "long rows, long n, f32* x, float eps, long rms, f32* st", ROW_LOOP + """
    float mean = 0.0f, rstd;
    if (rms) {
""" + RMS_STATS.replace("float rstd", "rstd") + """    } else {
""" + LN_STATS.replace("float mean", "mean").replace("float rstd", "rstd") + """    }
    if (lid == 0) { st[2 * r] = mean; st[2 * r + 1] = rstd; }
}""", "per-row (mean, rstd) of layer_norm (rms: mean 0) for the gamma gradients")

NORM_GAMMA = KernelDef("pk_norm_gamma", params("long rows, long n, f32* x, f32* dy, f32* st, f32* dg"), """
for (long j = GID(0); j < n; j += LSZ(0) * NGRP(0)) {
    float s = 0.0f;
    for (long r = 0; r < rows; r++) s += dy[r * n + j] * ((x[r * n + j] - st[2 * r]) * st[2 * r + 1]);
    dg[j] = s;
}""", doc="d gamma = sum over rows of dy (x - mean) rstd")

# cross-entropy: per row its loss and whether it counts into part, then one group sums
CE_ROWS = _row("pk_ce_rows", "long N, long C, long inner, f32* logits, i64* labels, long ignore, f32* part",
               "long rows = N * inner;\n" + ROW_LOOP + """
    long label = (long)labels[r];
    long base = (r / inner) * C * inner + r % inner;
    int counted = !(label == ignore || label < 0 || label >= C);
    float m = -INFINITY;
    for (long k = lid; k < C; k += lsz) { float v = logits[base + k * inner]; m = (v > m || v != v) ? v : m; }
    m = pk_group_max(red, m, lid, lsz);
    if (m == -INFINITY) m = 0.0f;
    float s = 0.0f;
    for (long k = lid; k < C; k += lsz) s += exp(logits[base + k * inner] - m);
    s = pk_group_sum(red, s, lid, lsz);
    if (lid == 0) {
        part[2 * r] = counted ? m + log(s) - logits[base + label * inner] : 0.0f;
        part[2 * r + 1] = counted ? 1.0f : 0.0f;
    }
}""", "cross_entropy, one row per group: its loss and whether it counts")

CE_TOTAL = _row("pk_ce_total", "long rows, f32* part, long mean, f32* out", """
long lid = LID(0), lsz = LSZ(0);
float s = 0.0f, c = 0.0f;
for (long r = lid; r < rows; r += lsz) { s += part[2 * r]; c += part[2 * r + 1]; }
s = pk_group_sum(red, s, lid, lsz);
c = pk_group_sum(red, c, lid, lsz);
if (lid == 0 && GRP(0) == 0) out[0] = mean ? s / (c > 0.0f ? c : 1.0f) : s;""", "cross_entropy: the mean over counted rows")

CE_COUNT = _row("pk_ce_count", "long rows, i64* labels, long ignore, f32* count", """
long lid = LID(0), lsz = LSZ(0);
float c = 0.0f;
for (long r = lid; r < rows; r += lsz) c += (long)labels[r] != ignore ? 1.0f : 0.0f;
c = pk_group_sum(red, c, lid, lsz);
if (lid == 0 && GRP(0) == 0) count[0] = c;""", "cross_entropy_backward: how many labels are not ignored")

CE_BACKWARD = _row("pk_ce_backward", "long N, long C, long inner, f32* logits, i64* labels, f32* dloss, f32* count,"
                   " long ignore, long mean, f32* dx", "long rows = N * inner;\n" + ROW_LOOP + """
    long label = (long)labels[r];
    long base = (r / inner) * C * inner + r % inner;
    float scale = mean ? dloss[0] / (count[0] > 0.0f ? count[0] : 1.0f) : dloss[0];
    float m = -INFINITY;
    for (long k = lid; k < C; k += lsz) { float v = logits[base + k * inner]; m = (v > m || v != v) ? v : m; }
    m = pk_group_max(red, m, lid, lsz);
    if (m == -INFINITY) m = 0.0f;
    float s = 0.0f;
    for (long k = lid; k < C; k += lsz) s += exp(logits[base + k * inner] - m);
    s = pk_group_sum(red, s, lid, lsz);
    float f = scale / s;
    for (long k = lid; k < C; k += lsz) {
        long at = base + k * inner;
        float d = label == ignore ? 0.0f : exp(logits[at] - m) * f;
        dx[at] = (label != ignore && k == label) ? d - scale : d;
    }
}""", "cross_entropy_backward: (softmax - onehot) dloss / count, 0 on ignored rows; may run over the logits")

MSE = _row("pk_mse", "long n, f32* a, f32* b, long mean, f32* out", """
long lid = LID(0), lsz = LSZ(0);
float s = 0.0f;
for (long i = lid; i < n; i += lsz) { float d = a[i] - b[i]; s += d * d; }
s = pk_group_sum(red, s, lid, lsz);
if (lid == 0 && GRP(0) == 0) out[0] = mean ? s / (float)(n > 0 ? n : 1) : s;""", "mse: mean (or sum) of (a - b)^2")

GLOBAL_AVG_POOL = _row("pk_global_avg_pool", "long rows, long n, f32* x, f32* y", ROW_LOOP + """
    float s = 0.0f;
    for (long k = lid; k < n; k += lsz) s += x[r * n + k];
    s = pk_group_sum(red, s, lid, lsz);
    if (lid == 0) y[r] = s / (float)n;
}""", "global_avg_pool: the mean of each plane")

# reductions: t holds 6 kept dims, their x and y strides, 6 reduced dims and their x strides
REDUCE_INDEX = """    long xo = 0, yo = 0, rest = o;
    for (int d = 5; d >= 0; d--) { long i = rest % t[d]; rest /= t[d]; xo += i * t[6 + d]; yo += i * t[12 + d]; }
"""
REDUCED_AT = """long xr = 0, rr = e;
        for (int d = 5; d >= 0; d--) { long i = rr % t[18 + d]; rr /= t[18 + d]; xr += i * t[24 + d]; }
"""


def reduce_kernels(dtype: str) -> list[KernelDef]:
    """pk_reduce_{sum,max}_{group,item}_<dtype>: a group per output (f32 over long
    reductions) or a work-item per output (any dtype), `any` being `max` over i1."""
    ty = {"f32": "float", "i64": "pk_i64", "i32": "int", "i1": "pk_u8"}[dtype]
    buf = {"f32": "f32*", "i64": "i64*", "i32": "i32*", "i1": "u8*"}[dtype]
    lowest = {"f32": "-INFINITY", "i64": "(pk_i64)(-9223372036854775807L - 1)",
              "i32": "(-2147483647 - 1)", "i1": "0"}[dtype]
    out = []
    for kind in ("sum", "max"):
        init = "0" if kind == "sum" else lowest
        comb = "acc + v" if kind == "sum" else "((v > acc || v != v) ? v : acc)"
        if dtype == "i1" and kind == "sum":
            comb = "(acc | v)"
        out.append(KernelDef(f"pk_reduce_{kind}_item_{dtype}", params(f"long ny, long count, i64* t, {buf} x, {buf} y, float scale"),
                             f"""
for (long o = GID(0); o < ny; o += LSZ(0) * NGRP(0)) {{
{REDUCE_INDEX}    {ty} acc = ({ty})({init});
    for (long e = 0; e < count; e++) {{
        {REDUCED_AT}        {ty} v = x[xo + xr];
        acc = {comb};
    }}
    y[yo] = scale != 1.0f ? ({ty})(acc * scale) : acc;
}}""", doc=f"reduce {kind} of {dtype}: a work-item per output"))
        if dtype == "f32":
            group = "pk_group_sum" if kind == "sum" else "pk_group_max"
            out.append(KernelDef(f"pk_reduce_{kind}_group_f32",
                                 params("long ny, long count, i64* t, f32* x, f32* y, float scale"), f"""
long lid = LID(0), lsz = LSZ(0);
for (long o = GRP(0); o < ny; o += NGRP(0)) {{
{REDUCE_INDEX}    float acc = {init};
    for (long e = lid; e < count; e += lsz) {{
        {REDUCED_AT}        float v = x[xo + xr];
        acc = {comb};
    }}
    acc = {group}(red, acc, lid, lsz);
    if (lid == 0) y[yo] = scale != 1.0f ? acc * scale : acc;
}}""", local=RED, group=(ROW, 1, 1), doc=f"reduce {kind} of f32: a group per output"))
    return out


POOL = "long NC, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL, long DH, long DW, long HO, long WO"
MAX_POOL = KernelDef("pk_max_pool2d", params(POOL + ", f32* x, f32* y"), """
for (long e = GID(0); e < NC * HO * WO; e += LSZ(0) * NGRP(0)) {
    long p = e / (HO * WO), at = pk_window_first_max(x + p * H * W, H, W, KH, KW, SH, SW, PT, PL, DH, DW, (e / WO) % HO, e % WO);
    y[e] = at < 0 ? -INFINITY : x[p * H * W + at];
}""", doc="max_pool2d: a work-item per output; NaN wins")

# the backward gathers: each input cell sums dy over the windows whose first maximum it is
MAX_POOL_BACKWARD = KernelDef("pk_max_pool2d_backward", params(POOL + ", f32* x, f32* dy, f32* dx"), """
for (long e = GID(0); e < NC * H * W; e += LSZ(0) * NGRP(0)) {
    long p = e / (H * W), ih0 = (e / W) % H, iw0 = e % W;
    float s = 0.0f;
    for (long i = 0; i < KH; i++) {
        long a = ih0 + PT - i * DH;
        if (a < 0 || a % SH != 0 || a / SH >= HO) continue;
        for (long j = 0; j < KW; j++) {
            long b = iw0 + PL - j * DW;
            if (b < 0 || b % SW != 0 || b / SW >= WO) continue;
            long at = pk_window_first_max(x + p * H * W, H, W, KH, KW, SH, SW, PT, PL, DH, DW, a / SH, b / SW);
            if (at == ih0 * W + iw0) s += dy[(p * HO + a / SH) * WO + b / SW];
        }
    }
    dx[e] = s;
}""", doc="max_pool2d_backward: each input cell gathers dy of the windows whose first maximum it is")

AVG_WINDOW = """long h0 = oh * SH - PT, w0 = ow * SW - PL;
long h1 = pk_minl(h0 + KH, H + PB), w1 = pk_minl(w0 + KW, W + PR);
long hs = pk_maxl(h0, 0), he = pk_minl(h1, H), ws = pk_maxl(w0, 0), we = pk_minl(w1, W);
long cnt = include_pad ? (h1 - h0) * (w1 - w0) : (he - hs) * (we - ws);
"""
AVG_POOL = KernelDef("pk_avg_pool2d", params(POOL + ", long PB, long PR, long include_pad, f32* x, f32* y"), """
for (long e = GID(0); e < NC * HO * WO; e += LSZ(0) * NGRP(0)) {
    long p = e / (HO * WO), oh = (e / WO) % HO, ow = e % WO;
    """ + AVG_WINDOW.replace("\n", "\n    ") + """float s = 0.0f;
    for (long ih = hs; ih < he; ih++)
        for (long iw = ws; iw < we; iw++) s += x[(p * H + ih) * W + iw];
    y[e] = cnt > 0 ? s / (float)cnt : 0.0f;
}""", doc="avg_pool2d: a work-item per output")

AVG_POOL_BACKWARD = KernelDef("pk_avg_pool2d_backward", params(
    "long NC, long H, long W, long KH, long KW, long SH, long SW, long PT, long PL, long HO, long WO, long PB, long PR,"
    " long include_pad, f32* dy, f32* dx"), """
for (long e = GID(0); e < NC * H * W; e += LSZ(0) * NGRP(0)) {
    long p = e / (H * W), ih = (e / W) % H, iw = e % W;
    float s = 0.0f;
    for (long oh = 0; oh < HO; oh++) {
        long top = oh * SH - PT;
        if (ih < top || ih >= top + KH) continue;
        for (long ow = 0; ow < WO; ow++) {
            long left = ow * SW - PL;
            if (iw < left || iw >= left + KW) continue;
            """ + AVG_WINDOW.replace("\n", "\n            ") + """if (ih >= hs && ih < he && iw >= ws && iw < we && cnt > 0) s += dy[(p * HO + oh) * WO + ow] / (float)cnt;
        }
    }
    dx[e] = s;
}""", doc="avg_pool2d_backward: each input cell gathers the windows that cover it")

DW_FWD = KernelDef("pk_depthwise_fwd", params("i64* geo, f32* x, f32* w, f32* y"), """
long N_ = geo[0], C = geo[1], H = geo[2], W = geo[3], O = geo[4], KH = geo[5], KW = geo[6];
long SH = geo[7], SW = geo[8], PT = geo[9], PL = geo[10], DH = geo[11], DW = geo[12];
long HO = geo[14], WO = geo[15], m = O / C;
for (long e = GID(0); e < N_ * O * HO * WO; e += LSZ(0) * NGRP(0)) {
    long ow = e % WO, oh = (e / WO) % HO, o = (e / (HO * WO)) % O, n = e / (O * HO * WO), c = o / m;
    float s = 0.0f;
    for (long i = 0; i < KH; i++) {
        long ih = oh * SH - PT + i * DH;
        if (ih < 0 || ih >= H) continue;
        for (long j = 0; j < KW; j++) {
            long iw = ow * SW - PL + j * DW;
            if (iw >= 0 && iw < W) s += w[(o * KH + i) * KW + j] * x[((n * C + c) * H + ih) * W + iw];
        }
    }
    y[e] = s;
}""", doc="depthwise conv2d: a work-item per output")

DW_DX = KernelDef("pk_depthwise_dx", params("i64* geo, f32* dy, f32* w, f32* dx"), """
long N_ = geo[0], C = geo[1], H = geo[2], W = geo[3], O = geo[4], KH = geo[5], KW = geo[6];
long SH = geo[7], SW = geo[8], PT = geo[9], PL = geo[10], DH = geo[11], DW = geo[12];
long HO = geo[14], WO = geo[15], m = O / C;
for (long e = GID(0); e < N_ * C * H * W; e += LSZ(0) * NGRP(0)) {
    long iw = e % W, ih = (e / W) % H, c = (e / (H * W)) % C, n = e / (C * H * W);
    float s = 0.0f;
    for (long o = c * m; o < (c + 1) * m; o++)
        for (long i = 0; i < KH; i++) {
            long a = ih + PT - i * DH;
            if (a < 0 || a % SH != 0 || a / SH >= HO) continue;
            for (long j = 0; j < KW; j++) {
                long b = iw + PL - j * DW;
                if (b < 0 || b % SW != 0 || b / SW >= WO) continue;
                s += w[(o * KH + i) * KW + j] * dy[((n * O + o) * HO + a / SH) * WO + b / SW];
            }
        }
    dx[e] = s;
}""", doc="depthwise conv2d_backward_input: each input cell gathers its taps")

DW_DW = _row("pk_depthwise_dw", "i64* geo, f32* x, f32* dy, f32* dw, f32* ab, long has_ab", """
long N_ = geo[0], C = geo[1], H = geo[2], W = geo[3], O = geo[4], KH = geo[5], KW = geo[6];
long SH = geo[7], SW = geo[8], PT = geo[9], PL = geo[10], DH = geo[11], DW = geo[12];
long HO = geo[14], WO = geo[15], m = O / C, lid = LID(0), lsz = LSZ(0);
float alpha = has_ab ? ab[0] : 1.0f, beta = has_ab ? ab[1] : 0.0f;
for (long r = GRP(0); r < O * KH * KW; r += NGRP(0)) {
    long o = r / (KH * KW), i = (r / KW) % KH, j = r % KW, c = o / m;
    float s = 0.0f;
    for (long e = lid; e < N_ * HO * WO; e += lsz) {
        long n = e / (HO * WO), oh = (e / WO) % HO, ow = e % WO;
        long ih = oh * SH - PT + i * DH, iw = ow * SW - PL + j * DW;
        if (ih >= 0 && ih < H && iw >= 0 && iw < W)
            s += dy[((n * O + o) * HO + oh) * WO + ow] * x[((n * C + c) * H + ih) * W + iw];
    }
    s = pk_group_sum(red, s, lid, lsz);
    if (lid == 0) dw[r] = beta == 0.0f ? alpha * s : alpha * s + beta * dw[r];
}""", "depthwise conv2d_backward_weight: a group per weight, with (alpha, beta)")

def gather_rows(word: str) -> KernelDef:
    """gather: out[o, j, :] = x[o, idx[j], :] in words of u8 or i32; outside the table a zero row."""
    buf = {"u8": "u8*", "i32": "i32*"}[word]
    return KernelDef(f"pk_gather_{word}", params(f"long outer, long n, long row, long nidx, {buf} x, i64* idx, {buf} out"), """
for (long e = GID(0); e < outer * nidx * row; e += LSZ(0) * NGRP(0)) {
    long c = e % row, j = (e / row) % nidx, o = e / (row * nidx);
    long i = (long)idx[j];
    if (i < 0) i += n;
    out[e] = (i >= 0 && i < n) ? x[(o * n + i) * row + c] : 0;
}""", doc="gather: out[o, j, :] = x[o, idx[j], :]; outside the table a zero row")


GATHER = gather_rows("i32")
FILL_F32 = KernelDef("pk_fill_f32", params("long n, f32* x, float v"), """
for (long e = GID(0); e < n; e += LSZ(0) * NGRP(0)) x[e] = v;""", doc="fill")

GATHER_BACKWARD = KernelDef("pk_gather_backward", params(
    "long outer, long n, long inner, long nidx, f32* dy, i64* idx, long padding_idx, f32* dx"), """
for (long e = GID(0); e < outer * nidx * inner; e += LSZ(0) * NGRP(0)) {
    long c = e % inner, j = (e / inner) % nidx, o = e / (inner * nidx);
    long i = (long)idx[j];
    if (i < 0) i += n;
    if (i >= 0 && i < n && i != padding_idx) pk_atomic_addf(&dx[(o * n + i) * inner + c], dy[e]);
}""", doc="gather_backward: dx[o, idx[j], :] += dy[o, j, :] (atomic adds; dx zeroed first)")

CUMSUM = KernelDef("pk_cumsum_f32", params("long outer, long n, long inner, f32* x, f32* y"), """
for (long r = GID(0); r < outer * inner; r += LSZ(0) * NGRP(0)) {
    long base = (r / inner) * n * inner + r % inner;
    float s = 0.0f;
    for (long k = 0; k < n; k++) { s += x[base + k * inner]; y[base + k * inner] = s; }
}""", doc="cumsum along the middle axis: a work-item per line")

LIBRARY = [SOFTMAX, SOFTMAX_BACKWARD, LAYER_NORM, LAYER_NORM_BACKWARD, RMS_NORM, RMS_NORM_BACKWARD, NORM_STATS,
           NORM_GAMMA, CE_ROWS, CE_TOTAL, CE_COUNT, CE_BACKWARD, MSE, GLOBAL_AVG_POOL, MAX_POOL, MAX_POOL_BACKWARD,
           AVG_POOL, AVG_POOL_BACKWARD, DW_FWD, DW_DX, DW_DW, GATHER, gather_rows("u8"), FILL_F32, GATHER_BACKWARD, CUMSUM,
           *reduce_kernels("f32"), *reduce_kernels("i64"), *reduce_kernels("i1")]


def with_index(kd: KernelDef, dtype: str) -> KernelDef:
    """`kd` reading its int64 index or label buffers as `dtype` (the `i32` variants)."""
    if dtype == "i64":
        return kd
    from .language import Param

    ps = tuple(Param(p.name, "i32*") if p.kind == "i64*" and p.name in ("labels", "idx") else p for p in kd.params)
    return KernelDef(f"{kd.name}_{dtype}", ps, kd.body, kd.local, kd.group, kd.doc)


GE_INDEX = """    long pos = e, at = 0;
    for (int d = 5; d >= 0; d--) { at += (pos % dims[d]) * xs[d]; pos /= dims[d]; }
    long i = (long)idx[e];
    if (i < 0) i += n;
    int inside = i >= 0 && i < n;
    at += (inside ? i : 0) * axis_stride;
"""


def gather_elements(item: str) -> KernelDef:
    """gather_elements over elements of one word type (u8, i32, i64 by item size)."""
    buf = {"u8": "u8*", "i32": "i32*", "i64": "i64*"}[item]
    return KernelDef(f"pk_gather_elements_{item}", params(
        f"i64* dims, i64* xs, long axis_stride, long n, long total, {buf} x, i64* idx, {buf} y"), """
for (long e = GID(0); e < total; e += LSZ(0) * NGRP(0)) {
""" + GE_INDEX + """    y[e] = inside ? x[at] : 0;
}""", doc="gather_elements: y[i] = x[i with i[axis] = idx[i]]; outside [0, n) a zero")


GATHER_ELEMENTS_BACKWARD = KernelDef("pk_gather_elements_backward", params(
    "i64* dims, i64* xs, long axis_stride, long n, long total, f32* dy, i64* idx, f32* dx"), """
for (long e = GID(0); e < total; e += LSZ(0) * NGRP(0)) {
""" + GE_INDEX + """    if (inside) pk_atomic_addf(&dx[at], dy[e]);
}""", doc="gather_elements_backward: dx[at] += dy (atomic adds; dx zeroed first)")

CUMSUM_I64 = KernelDef("pk_cumsum_i64", params("long outer, long n, long inner, i64* x, i64* y"),
                       CUMSUM.body.replace("float s = 0.0f;", "pk_i64 s = 0;"), doc=CUMSUM.doc)

LIBRARY += [GATHER_ELEMENTS_BACKWARD, CUMSUM_I64, *reduce_kernels("i32")]

# the chunked vocabulary head (linear_cross_entropy): per chunk of rows, the logits L [n, C]
# from the GEMM, then one group per row turns them into the loss and, for the backward, the
# gradient (softmax - onehot)·scale in place; the GEMMs for dx, dw and the db sums read it
LCE_ROWS = _row("pk_lce_rows", "long n, long C, long r0, f32* L, f32* bias, long has_bias, i64* labels, i64* rowlab,"
                " long ignore, f32* dloss, f32* count, long mean, long backward, f32* part", """
long rows = n;
""" + ROW_LOOP + """
    long at = (long)rowlab[r0 + r];
    long label = at < 0 ? ignore : (long)labels[at];
    int bad = label != ignore && (label < 0 || label >= C);
    float m = -INFINITY;
    for (long k = lid; k < C; k += lsz) {
        float v = L[r * C + k] + (has_bias ? bias[k] : 0.0f);
        m = (v > m || v != v) ? v : m;
    }
    m = pk_group_max(red, m, lid, lsz);
    if (m == -INFINITY) m = 0.0f;
    float s = 0.0f;
    for (long k = lid; k < C; k += lsz) s += exp(L[r * C + k] + (has_bias ? bias[k] : 0.0f) - m);
    s = pk_group_sum(red, s, lid, lsz);
    if (lid == 0) {
        float picked = (label != ignore && !bad) ? L[r * C + label] + (has_bias ? bias[label] : 0.0f) : 0.0f;
        part[r0 + r] = label == ignore ? 0.0f : bad ? NAN : m + log(s) - picked;
    }
    BARRIER();
    if (backward) {
        float scale = mean ? dloss[0] / (count[0] > 0.0f ? count[0] : 1.0f) : dloss[0];
        float f = label == ignore ? 0.0f : bad ? NAN : scale / s;
        for (long k = lid; k < C; k += lsz) {
            float g = exp(L[r * C + k] + (has_bias ? bias[k] : 0.0f) - m) * f;
            L[r * C + k] = (label != ignore && k == label) ? g - scale : g;
        }
    }
}""", "linear_cross_entropy, one row of a chunk per group: its loss, and the logits' gradient in place")

LCE_COUNT = _row("pk_lce_count", "long nl, i64* labels, long ignore, f32* count", """
long lid = LID(0), lsz = LSZ(0);
float c = 0.0f;
for (long r = lid; r < nl; r += lsz) c += (long)labels[r] != ignore ? 1.0f : 0.0f;
c = pk_group_sum(red, c, lid, lsz);
if (lid == 0 && GRP(0) == 0) count[0] = c;""", "linear_cross_entropy: how many labels count")

LCE_TOTAL = _row("pk_lce_total", "long M, f32* part, f32* count, long mean, f32* out", """
long lid = LID(0), lsz = LSZ(0);
float s = 0.0f;
for (long r = lid; r < M; r += lsz) s += part[r];
s = pk_group_sum(red, s, lid, lsz);
if (lid == 0 && GRP(0) == 0) out[0] = mean ? s / (count[0] > 0.0f ? count[0] : 1.0f) : s;""",
                 "linear_cross_entropy: the loss over every chunk's rows")

LCE_DB = KernelDef("pk_lce_db", params("long n, long C, f32* L, f32* db, long first"), """
for (long c = GID(0); c < C; c += LSZ(0) * NGRP(0)) {
    float s = 0.0f;
    for (long r = 0; r < n; r++) s += L[r * C + c];
    db[c] = first ? s : db[c] + s;
}""", doc="linear_cross_entropy: db += the chunk's column sums of the gradient")

LIBRARY += [LCE_ROWS, LCE_COUNT, LCE_TOTAL, LCE_DB]
