"""The portable C kernel library (backends/c/kernels/*.c): which kernel implements each
library op, with which C argument order; the GEMM tiles and the workspace it needs.

A row of `KERNELS` is `Kernel(op, source, symbol, args, variant, inplace)`. `args` lists
the Call's operand names in the C function's order; `*name` spreads an int tuple operand
(`geometry`, `rows`, `layout`) as that many `long` arguments, a plain tuple operand prints as
a `static const long[]` table. Other targets reuse this table (`CKernelLibrary(...)`) and
override the rows they implement better, e.g. a Hexagon or CUDA folder replacing `conv2d`.
"""

from __future__ import annotations

from pathlib import Path

from ..target import Kernel, KernelLibrary

KERNEL_DIR = Path(__file__).parent / "kernels"

_GEMM = ("m", "n", "k")
_POOL = ("*geometry",)


def _variants(op: str, source: str, symbol: str, args: tuple[str, ...], **kw) -> list[Kernel]:
    """A kernel with an int64-index form (the default) and an `i32` one (`<symbol>_i32`)."""
    return [Kernel(op, source, symbol, args, "", **kw), Kernel(op, source, f"{symbol}_i32", args, "i32", **kw)]


KERNELS: list[Kernel] = [
    Kernel("linear", "linear", "pk_linear", (*_GEMM, "x", "rsx", "csx", "w", "ws0", "ws1", "y", "work")),
    Kernel("linear", "linear", "pk_linear_ep",
           (*_GEMM, "x", "rsx", "csx", "w", "ws0", "ws1", "y", "work", "epilogue"), "ep"),
    Kernel("matmul", "matmul", "pk_matmul", ("nbatch", "batch", "sa", "sb", "sc", *_GEMM,
                                             "a", "ra", "ca", "b", "rb", "cb", "c", "work")),
    Kernel("matmul", "matmul", "pk_matmul_ep", ("nbatch", "batch", "sa", "sb", "sc", *_GEMM,
                                                "a", "ra", "ca", "b", "rb", "cb", "c", "work", "epilogue"), "ep"),
    Kernel("linear_backward_weight", "linear_backward_weight", "pk_linear_backward_weight",
           (*_GEMM, "x", "rsx", "csx", "dy", "rsd", "csd", "dw", "ab", "work")),
    Kernel("conv2d", "conv2d", "pk_conv2d", ("geometry", "x", "w", "y", "work", "epilogue")),
    Kernel("conv2d_backward_input", "conv2d_backward_input", "pk_conv2d_backward_input",
           ("geometry", "dy", "w", "dx", "work")),
    Kernel("conv2d_backward_weight", "conv2d_backward_weight", "pk_conv2d_backward_weight",
           ("geometry", "x", "dy", "dw", "ab", "work")),
    Kernel("max_pool2d", "max_pool2d", "pk_max_pool2d", (*_POOL, "x", "y")),
    Kernel("avg_pool2d", "avg_pool2d", "pk_avg_pool2d", (*_POOL, "pad_bottom", "pad_right", "count_include_pad", "x", "y")),
    Kernel("global_avg_pool", "global_avg_pool", "pk_global_avg_pool", ("planes", "size", "x", "y")),
    Kernel("max_pool2d_backward", "max_pool2d_backward", "pk_max_pool2d_backward", (*_POOL, "x", "dy", "dx")),
    Kernel("avg_pool2d_backward", "avg_pool2d_backward", "pk_avg_pool2d_backward",
           (*_POOL, "pad_bottom", "pad_right", "count_include_pad", "dy", "dx")),
    Kernel("layer_norm", "layer_norm", "pk_layer_norm", ("*rows", "x", "gamma", "beta", "eps", "y")),
    Kernel("rms_norm", "rms_norm", "pk_rms_norm", ("*rows", "x", "gamma", "eps", "y")),
    Kernel("layer_norm_backward", "layer_norm_backward", "pk_layer_norm_backward",
           ("*rows", "x", "gamma", "dy", "eps", "dx")),
    Kernel("layer_norm_backward", "layer_norm_backward", "pk_layer_norm_backward_gamma",
           ("*rows", "x", "dy", "eps", "dgamma"), "gamma"),
    Kernel("rms_norm_backward", "rms_norm_backward", "pk_rms_norm_backward", ("*rows", "x", "gamma", "dy", "eps", "dx")),
    Kernel("rms_norm_backward", "rms_norm_backward", "pk_rms_norm_backward_gamma",
           ("*rows", "x", "dy", "eps", "dgamma"), "gamma"),
    # softmax reads a row before writing it: y may be x's own storage (and dx dy's)
    Kernel("softmax", "softmax", "pk_softmax", ("*layout", "x", "y"), inplace=(("y", "x"),)),
    Kernel("softmax", "softmax", "pk_log_softmax", ("*layout", "x", "y"), "log", inplace=(("y", "x"),)),
    Kernel("softmax_backward", "softmax_backward", "pk_softmax_backward", ("*layout", "y", "dy", "dx"),
           inplace=(("dx", "dy"),)),
    Kernel("softmax_backward", "softmax_backward", "pk_log_softmax_backward", ("*layout", "y", "dy", "dx"), "log"),
    Kernel("cumsum", "cumsum", "pk_cumsum_f32", ("*layout", "x", "y"), "f32"),
    Kernel("cumsum", "cumsum", "pk_cumsum_i64", ("*layout", "x", "y"), "i64"),
    *[Kernel("reduce", "reduce", f"pk_reduce_{v}", ("dims", "x_strides", "y_strides", "x", "y", "count", "scale"), v)
      for v in ("sum_f32", "sum_i64", "sum_i32", "sum_i1", "max_f32", "max_i64", "max_i32", "max_i1", "any_i1")],
    *_variants("cross_entropy", "cross_entropy", "pk_cross_entropy",
               ("n", "c", "inner", "logits", "labels", "ignore_index", "mean", "loss")),
    # dlogits may overwrite the logits: the kernel reads a row before writing it
    *_variants("cross_entropy_backward", "cross_entropy_backward", "pk_cross_entropy_backward",
               ("n", "c", "inner", "logits", "labels", "dloss", "ignore_index", "mean", "dlogits"),
               inplace=(("dlogits", "logits"),)),
    Kernel("mse", "mse", "pk_mse", ("count", "pred", "target", "mean", "loss")),
    *_variants("linear_cross_entropy", "linear_cross_entropy", "pk_linear_cross_entropy",
               ("geometry", "x", "w", "bias", "labels", "rows", "dloss", "loss", "dx", "dw", "ab", "db", "work")),
    *_variants("gather", "gather", "pk_gather", ("outer", "n", "inner_bytes", "count", "x", "index", "y")),
    *_variants("gather_backward", "gather_backward", "pk_gather_backward",
               ("outer", "n", "inner", "count", "dy", "index", "padding_idx", "dx")),
    *_variants("gather_elements", "gather_elements", "pk_gather_elements",
               ("dims", "strides", "axis_stride", "n", "itemsize", "x", "index", "y")),
    *_variants("gather_elements_backward", "gather_elements", "pk_gather_elements_backward",
               ("dims", "strides", "axis_stride", "n", "count", "dy", "index", "dx")),
]

# (MR, NR) of the GEMM micro-kernels in kernels/gemm.c: AVX2, NEON, plain C. The workspace
# is planned for the largest, so one plan serves every CPU this library builds for.
TILES = ((6, 16), (8, 8), (4, 4))
KC = 256
CONV_BLOCK = 64 * 1024  # floats of one packed operand block of a conv GEMM (kept in L2)
POINTWISE_GEMM_FROM = 64  # output pixels per image from which a 1×1 conv runs one GEMM per image


def _conv_block(limit: int, total: int) -> int:
    """A column block: a multiple of 16 (every tile's NR divides it), within `limit` where
    it can be, no wider than `total` rounded up."""
    return min(max(16, limit // 16 * 16), -(-total // 16) * 16)


# threads the depthwise kernels may run on, each with its own plane workspace (depthwise.c PK_DW_SLOTS)
DW_SLOTS = 8


class CKernelLibrary(KernelLibrary):
    """The C kernels: the table above, GEMM tiles `tiles` and the packing block `kc`."""

    name = "c"

    def __init__(self, kernel_dir: Path = KERNEL_DIR, kernels=KERNELS, tiles=TILES, kc: int = KC):
        super().__init__(kernel_dir, kernels)
        self.tiles, self.kc = tuple(tiles), kc

    def gemm_workspace(self, m: int, n: int, k: int) -> int:
        """Floats of packing space pk_gemm needs (mirrors pk_gemm_workspace in gemm.c): an A
        block and a B block, in either orientation (pk_gemm may run Cᵀ = Bᵀ·Aᵀ)."""
        if k == 0:
            return 0
        kc = min(k, self.kc)
        up = lambda x, t: -(-x // t) * t
        return max(kc * (min(up(r, mr), mr * 24) + min(up(c, nr), nr * 64))
                   for mr, nr in self.tiles for r, c in ((m, n), (n, m)))

    def conv_plan(self, kind: str, xs, ws, p, ys) -> tuple[list[int], int]:
        """The geometry table pk_conv2d* read (kernels/im2col.c) and the floats of workspace
        they need, for kind "forward", "input" (dx) or "weight" (dw); mirrors the workspace
        layout at the top of each kernel, for the largest MR and MC of the tiles."""
        n, c, h, w = xs
        o, i, kh, kw = ws
        g = p.groups
        ho, wo = ys[2:]
        pt, pl, _, _ = p.padding
        taps, k, og, q = kh * kw, i * kh * kw, o // g, n * ho * wo
        if n * c * h * w >= 2**31 or n * o * ho * wo >= 2**31:
            raise ValueError(f"conv2d of {tuple(xs)} → {tuple(ys)}: the conv kernels index with 32-bit offsets")
        geometry = [n, c, h, w, o, kh, kw, *p.stride, pt, pl, *p.dilation, g, ho, wo]
        if g == c and i == 1 and g > 1:  # depthwise (kernels/depthwise.c): a zero-padded plane, or
            dh, dw = p.dilation
            sh, sw = p.stride
            hp = max(pt + h, (ho - 1) * sh + (kh - 1) * dh + 1)
            wp = max(pl + w, (wo - 1) * sw + (kw - 1) * dw + 1)
            flat = 0  # with stride ≤ 2 the flat path's masks, per batched plane phases, dy, dx phases; weights
            if sh == sw <= 2:  # (the per-plane parts once per thread slot: DW_SLOTS)
                ps, batch = (ho + (kh - 1) * dh // sh + 3) * wo, 4 if ho * wo < 64 else 1
                flat = kw * ho * wo + DW_SLOTS * batch * ((sh * sh + 1) * ps + sh * sh * ho * wo) + o * kh * kw
            return geometry + [0, 0], max(DW_SLOTS * hp * wp, flat)
        if kh == kw == 1 and tuple(p.stride) == (1, 1) and not any(p.padding) and ho * wo >= POINTWISE_GEMM_FROM:
            # a 1×1 convolution over large images: per image, x (or dx) is the GEMM operand itself
            gemm = {"forward": (og, ho * wo, i), "input": (i, ho * wo, og), "weight": (og, i, ho * wo)}[kind]
            return geometry + [0, 0], self.gemm_workspace(*gemm)
        mc = max(mr * 24 for mr, _ in self.tiles)
        if kind == "forward":  # offsets + run codes, B block, [output buffer], packed A
            kc = min(k, self.kc)
            nb = _conv_block(CONV_BLOCK // kc, q)
            buffered = (ho * wo) % 16 != 0
            if buffered:
                nb = min(nb, _conv_block(CONV_BLOCK // og, q))
            return geometry + [nb, 0], taps * nb + taps * nb // 4 + kc * nb + og * nb * buffered + mc * kc
        if kind == "input":  # offsets + run codes, dy block, dcol buffer, packed wᵀ
            nb = _conv_block(CONV_BLOCK // (og + mc), q)
            return geometry + [nb, 0], taps * nb + taps * nb // 4 + og * nb + mc * nb + mc * min(og, self.kc)
        rows = max(-(-og // mr) * mr for mr, _ in self.tiles)  # weight: offsets, packed dy, packed colᵀ
        qb = max(1, min(q, self.kc, CONV_BLOCK // rows))
        nb = _conv_block(CONV_BLOCK // qb, k)
        return geometry + [nb, qb], taps * qb + rows * qb + nb * qb
