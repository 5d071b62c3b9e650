"""conv2d, matmul, linear, pooling, pad. Contractions call the packed GEMM; their operands
may be strided views (a transposed K in attention costs no copy: it is only strides)."""

from __future__ import annotations

import math

from pockengine.backends.kernel_ir import View, broadcast_strides, collapse, contiguous_strides
from pockengine.ir.ops import linalg as L
from pockengine.passes.lower_to_kernels import lowers

# (MR, NR) of the GEMM micro-kernels in backends/c/kernels/gemm.c: AVX2, NEON, plain C.
# The workspace is planned for the largest, so one plan serves every target.
_TILES = ((6, 16), (8, 8), (4, 4))
KC = 256


def gemm_workspace(m: int, n: int, k: int) -> int:
    """Floats of packing space pk_gemm needs (mirrors pk_gemm_workspace in gemm.c): an A
    block and a B block, in either orientation (pk_gemm may run Cᵀ = Bᵀ·Aᵀ)."""
    if k == 0:
        return 0
    kc = min(k, KC)
    up = lambda x, t: -(-x // t) * t
    return max(kc * (min(up(r, mr), mr * 24) + min(up(c, nr), nr * 64))
               for mr, nr in _TILES for r, c in ((m, n), (n, m)))


def as_matrix(lw, v: View) -> tuple[View, int, int, int]:
    """v [..., K] as rows × K: (view, rows, row stride, column stride); packs it if the
    leading dims do not collapse into one stride."""
    if len(v.shape) == 1:
        return v, 1, 0, v.elem_strides()[0]
    st, sh = v.elem_strides(), v.shape
    if all(st[i] == st[i + 1] * sh[i + 1] for i in range(len(sh) - 2)):
        return v, math.prod(sh[:-1]), st[-2], st[-1]
    v = lw.contiguous(v)
    return v, math.prod(sh[:-1]), sh[-1], 1


@lowers(L.LinearOp)
def lower_linear(lw, op):
    x, m, rsx, csx = as_matrix(lw, lw.view(op.x))
    w = lw.view(op.weight)
    n, k = w.shape
    ws0, ws1 = w.elem_strides()
    y = lw.result(op.result)
    work = lw.scratch(gemm_workspace(m, n, k))
    lw.call("linear", "pk_linear", [m, n, k, x, rsx, csx, w, ws0, ws1, y, work], [x, w], [y, work])


def batch_layout(shape, views: list[View]) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """Collapse the batch dims `shape` of several broadcast operands where every operand
    allows it; returns the collapsed shape and each operand's strides over it."""
    from pockengine.backends.kernel_ir import broadcast_strides

    strides = [broadcast_strides(View(v.storage, v.dtype, v.shape[:-2], v.offset, v.elem_strides()[:-2]), shape)
               for v in views]
    dims, sts = [], [[] for _ in views]
    for i, d in enumerate(shape):
        if d == 1:
            continue
        if dims and all(s[-1] == st[i] * d for s, st in zip(sts, strides)):
            dims[-1] *= d
            for s, st in zip(sts, strides):
                s[-1] = st[i]
            continue
        dims.append(d)
        for s, st in zip(sts, strides):
            s.append(st[i])
    return tuple(dims), [tuple(s) for s in sts]


@lowers(L.MatmulOp)
def lower_matmul(lw, op):
    a, b = lw.view(op.lhs), lw.view(op.rhs)
    c = lw.result(op.result)
    m, k = a.shape[-2:]
    n = b.shape[-1]
    batch, (sa, sb, sc) = batch_layout(c.shape[:-2], [a, b, c])
    ra, ca = a.elem_strides()[-2:]
    rb, cb = b.elem_strides()[-2:]
    if len(batch) == 1 and sb[0] == 0 and sa[0] == m * ra and sc[0] == m * n:
        # a shared right operand (x·W over a batch): the batch is just more rows, one GEMM
        m, batch, sa, sb, sc = m * batch[0], (), (), (), ()
    work = lw.scratch(gemm_workspace(m, n, k))
    lw.call("matmul", "pk_matmul", [len(batch), batch or (1,), sa or (0,), sb or (0,), sc or (0,),
                                    m, n, k, a, ra, ca, b, rb, cb, c, work], [a, b], [c, work])


CONV_BLOCK = 64 * 1024  # floats of one packed operand block of a conv GEMM (kept in L2)
POINTWISE_GEMM_FROM = 64  # output pixels per image from which a 1×1 conv runs one GEMM per image


def _conv_block(limit: int, total: int) -> int:
    """A column block: a multiple of 16 (every target's NR divides it), within `limit`
    where it can be, no wider than `total` rounded up."""
    return min(max(16, limit // 16 * 16), -(-total // 16) * 16)


def conv_plan(kind: str, xs, ws, p, ys) -> tuple[list[int], int]:
    """The geometry table pk_conv2d* read (backends/c/kernels/im2col.c) and the floats of
    workspace they need, for kind "forward", "input" (dx) or "weight" (dw); mirrors the
    workspace layout at the top of each kernel, for the largest MR and MC of any target."""
    n, c, h, w = xs
    o, i, kh, kw = ws
    g = p.groups
    ho, wo = ys[2:]
    pt, pl, _, _ = p.padding
    taps, k, og, q = kh * kw, i * kh * kw, o // g, n * ho * wo
    if n * c * h * w >= 2**31 or n * o * ho * wo >= 2**31:
        raise ValueError(f"conv2d of {tuple(xs)} → {tuple(ys)}: the conv kernels index with 32-bit offsets")
    geometry = [n, c, h, w, o, kh, kw, *p.stride, pt, pl, *p.dilation, g, ho, wo]
    if g == c and i == 1 and g > 1:  # depthwise (backends/c/kernels/depthwise.c): a zero-padded plane, or
        dh, dw = p.dilation
        sh, sw = p.stride
        hp = max(pt + h, (ho - 1) * sh + (kh - 1) * dh + 1)
        wp = max(pl + w, (wo - 1) * sw + (kw - 1) * dw + 1)
        flat = 0  # with stride ≤ 2 the flat path's masks, per batched plane phases, dy, dx phases; weights
        if sh == sw <= 2:
            ps, batch = (ho + (kh - 1) * dh // sh + 3) * wo, 4 if ho * wo < 64 else 1
            flat = kw * ho * wo + batch * ((sh * sh + 1) * ps + sh * sh * ho * wo) + o * kh * kw
        return geometry + [0, 0], max(hp * wp, flat)
    if kh == kw == 1 and tuple(p.stride) == (1, 1) and not any(p.padding) and ho * wo >= POINTWISE_GEMM_FROM:
        # a 1×1 convolution over large images: per image, x (or dx) is the GEMM operand itself
        gemm = {"forward": (og, ho * wo, i), "input": (i, ho * wo, og), "weight": (og, i, ho * wo)}[kind]
        return geometry + [0, 0], gemm_workspace(*gemm)
    mc = max(mr * 24 for mr, _ in _TILES)
    if kind == "forward":  # offsets + run codes, B block, [output buffer], packed A
        kc = min(k, KC)
        nb = _conv_block(CONV_BLOCK // kc, q)
        buffered = (ho * wo) % 16 != 0
        if buffered:
            nb = min(nb, _conv_block(CONV_BLOCK // og, q))
        return geometry + [nb, 0], taps * nb + taps * nb // 4 + kc * nb + og * nb * buffered + mc * kc
    if kind == "input":  # offsets + run codes, dy block, dcol buffer, packed wᵀ
        nb = _conv_block(CONV_BLOCK // (og + mc), q)
        return geometry + [nb, 0], taps * nb + taps * nb // 4 + og * nb + mc * nb + mc * min(og, KC)
    rows = max(-(-og // mr) * mr for mr, _ in _TILES)  # weight: offsets, packed dy, packed colᵀ
    qb = max(1, min(q, KC, CONV_BLOCK // rows))
    nb = _conv_block(CONV_BLOCK // qb, k)
    return geometry + [nb, qb], taps * qb + rows * qb + nb * qb


@lowers(L.Conv2dOp)
def lower_conv2d(lw, op):
    x, w = lw.contiguous(lw.view(op.x)), lw.contiguous(lw.view(op.weight))
    y = lw.result(op.result)
    geometry, floats = conv_plan("forward", x.shape, w.shape, op.p, y.shape)
    work = lw.scratch(floats)
    lw.call("conv2d", "pk_conv2d", [geometry, x, w, y, work, None], [x, w], [y, work])  # None: no epilogue


def _flat_stride(dims, strides) -> int | None:
    """The one stride that walks `dims` (row-major) as a single index, or None."""
    kept, (sts,) = collapse(dims, [strides])
    return None if len(kept) > 1 else sts[0] if kept else 0


class EpilogueWalk:
    """How a contraction kernel walks its output for an epilogue (gemm.c's pk_epilogue): as
    (image or batch b, row i, column j), columns contiguous. `walk(view)` is the view
    (broadcast over the output's shape) as a 3-d view over that walk, or None when its
    strides do not fit it; `attach` makes the call run the epilogue Map."""

    def __init__(self, out_shape, split, fn: str, replace_last: bool):
        self.out_shape, self.split, self.fn, self.replace_last = tuple(out_shape), split, fn, replace_last
        b, r = split
        self.shape = (math.prod(self.out_shape[:b]), math.prod(self.out_shape[b:r]), math.prod(self.out_shape[r:]))

    def __call__(self, v: View) -> View | None:
        st = broadcast_strides(v, self.out_shape)
        b, r = self.split
        sts = [_flat_stride(self.out_shape[a:z], st[a:z]) for a, z in ((0, b), (b, r), (r, len(st)))]
        if None in sts:
            return None
        return View(v.storage, v.dtype, self.shape, v.offset, tuple(sts))

    def attach(self, call, m) -> None:
        if self.replace_last:
            call.args[-1] = m
        else:
            call.args.append(m)
        call.fn = self.fn


def epilogue_walk(call, y: View) -> EpilogueWalk | None:
    """The walk of the kernel `call` (lowered here) over its output y, or None for a call
    that takes no epilogue."""
    if not y.is_contiguous or y.offset != 0 or y.dtype != "f32":
        return None
    rank = len(y.shape)
    if call.fn == "pk_linear":  # one GEMM: rows are every leading index
        return EpilogueWalk(y.shape, (0, rank - 1), "pk_linear_ep", False)
    if call.fn == "pk_matmul":  # a GEMM per (flat) batch index, unless the batch became rows
        return EpilogueWalk(y.shape, (0, rank - 1) if call.args[0] == 0 else (rank - 2, rank - 1), "pk_matmul_ep",
                            False)
    if call.fn == "pk_conv2d":  # (image, output channel, pixel); a depthwise one runs it after
        return EpilogueWalk(y.shape, (1, 2), "pk_conv2d", True)
    return None


def pool_args(op, x: View, y: View) -> list[int]:
    p = op.p
    n, c, h, w = x.shape
    kh, kw = p.kernel
    pt, pl, _, _ = p.padding
    dh, dw = getattr(p, "dilation", (1, 1)) if isinstance(op, L.MaxPool2dOp) else (1, 1)
    return [n * c, h, w, kh, kw, *p.stride, pt, pl, dh, dw, y.shape[2], y.shape[3]]


@lowers(L.MaxPool2dOp)
def lower_max_pool2d(lw, op):
    x = lw.contiguous(lw.view(op.x))
    y = lw.result(op.result)
    lw.call("max_pool2d", "pk_max_pool2d", [*pool_args(op, x, y), x, y], [x], [y])


@lowers(L.AvgPool2dOp)
def lower_avg_pool2d(lw, op):
    x = lw.contiguous(lw.view(op.x))
    y = lw.result(op.result)
    _, _, pb, pr = op.p.padding
    lw.call("avg_pool2d", "pk_avg_pool2d", [*pool_args(op, x, y), pb, pr, int(op.p.count_include_pad), x, y],
            [x], [y])


@lowers(L.GlobalAvgPoolOp)
def lower_global_avg_pool(lw, op):
    x = lw.contiguous(lw.view(op.x))
    y = lw.result(op.result)
    n, c, h, w = x.shape
    lw.call("global_avg_pool", "pk_global_avg_pool", [n * c, h * w, x, y], [x], [y])


@lowers(L.PadOp)
def lower_pad(lw, op):
    x = lw.view(op.x)
    out = lw.result(op.result)
    r = len(x.shape)
    lo, hi = op.p.pads[:r], op.p.pads[r:]
    xst, ost = x.elem_strides(), contiguous_strides(out.shape)
    # negative pads crop the input; positive ones place it inside the filled output
    x_off = sum(max(-a, 0) * s for a, s in zip(lo, xst))
    inner = [d - max(-a, 0) - max(-b, 0) for d, a, b in zip(x.shape, lo, hi)]
    if not math.prod(inner):
        lw.fill(out, op.p.value)
        return
    # the interior first, then the border slabs: the planner may then run the copy in place,
    # backwards, over the input's own bytes (a padded gradient needs no second buffer)
    o_off = sum(max(a, 0) * s for a, s in zip(lo, ost))
    lw.copy(x.with_strides(inner, xst, x_off), out.with_strides(inner, ost, o_off))
    for axis, (a, b) in enumerate(zip(lo, hi)):
        for start, width in ((0, max(a, 0)), (out.shape[axis] - max(b, 0), max(b, 0))):
            if width:
                shape = list(out.shape)
                shape[axis] = width
                lw.fill(out.with_strides(shape, ost, start * ost[axis]), op.p.value)
