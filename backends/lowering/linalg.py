"""conv2d, matmul, linear, pooling, pad. Contractions call the library's GEMM-based kernels;
their operands may be strided views (a transposed K in attention costs no copy: it is only
strides). Tiles, blocking and workspace sizes are the kernel library's (`lw.library`)."""

from __future__ import annotations

import math

from ...ir.ops import linalg as L
from ..kernel_ir import View, broadcast_strides, collapse, contiguous_strides
from ..lower_to_kernels import lowers


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
    work = lw.scratch(lw.library.gemm_workspace(m, n, k))
    lw.call("linear", dict(m=m, n=n, k=k, x=x, rsx=rsx, csx=csx, w=w, ws0=ws0, ws1=ws1, y=y, work=work), [x, w], [y, work])


def batch_layout(shape, views: list[View]) -> tuple[tuple[int, ...], list[tuple[int, ...]]]:
    """Collapse the batch dims `shape` of several broadcast operands where every operand
    allows it; returns the collapsed shape and each operand's strides over it."""
    from ..kernel_ir import broadcast_strides

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
    work = lw.scratch(lw.library.gemm_workspace(m, n, k))
    lw.call("matmul", dict(nbatch=len(batch), batch=batch or (1,), sa=sa or (0,), sb=sb or (0,), sc=sc or (0,),
                           m=m, n=n, k=k, a=a, ra=ra, ca=ca, b=b, rb=rb, cb=cb, c=c, work=work), [a, b], [c, work])


@lowers(L.Conv2dOp)
def lower_conv2d(lw, op):
    x, w = lw.contiguous(lw.view(op.x)), lw.contiguous(lw.view(op.weight))
    y = lw.result(op.result)
    geometry, floats = lw.library.conv_plan("forward", x.shape, w.shape, op.p, y.shape)
    work = lw.scratch(floats)
    lw.call("conv2d", dict(geometry=geometry, x=x, w=w, y=y, work=work, epilogue=None), [x, w], [y, work])


def _flat_stride(dims, strides) -> int | None:
    """The one stride that walks `dims` (row-major) as a single index, or None."""
    kept, (sts,) = collapse(dims, [strides])
    return None if len(kept) > 1 else sts[0] if kept else 0


class EpilogueWalk:
    """How a contraction kernel walks its output for an epilogue (gemm.c's pk_epilogue): as
    (image or batch b, row i, column j), columns contiguous. `walk(view)` is the view
    (broadcast over the output's shape) as a 3-d view over that walk, or None when its
    strides do not fit it; `attach` makes the call run the epilogue Map."""

    def __init__(self, out_shape, split, variant: str):
        self.out_shape, self.split, self.variant = tuple(out_shape), split, variant
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
        call.operands["epilogue"] = m
        call.variant = self.variant


def epilogue_walk(call, y: View) -> EpilogueWalk | None:
    """The walk of the kernel `call` (lowered here) over its output y, or None for a call
    that takes no epilogue."""
    if not y.is_contiguous or y.offset != 0 or y.dtype != "f32":
        return None
    rank = len(y.shape)
    if call.op == "linear":  # one GEMM: rows are every leading index
        return EpilogueWalk(y.shape, (0, rank - 1), "ep")
    if call.op == "matmul":  # a GEMM per (flat) batch index, unless the batch became rows
        return EpilogueWalk(y.shape, (0, rank - 1) if call.operands["nbatch"] == 0 else (rank - 2, rank - 1), "ep")
    if call.op == "conv2d":  # (image, output channel, pixel); a depthwise one runs it after
        return EpilogueWalk(y.shape, (1, 2), "")
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
    lw.call("max_pool2d", dict(geometry=pool_args(op, x, y), x=x, y=y), [x], [y])


@lowers(L.AvgPool2dOp)
def lower_avg_pool2d(lw, op):
    x = lw.contiguous(lw.view(op.x))
    y = lw.result(op.result)
    _, _, pb, pr = op.p.padding
    lw.call("avg_pool2d", dict(geometry=pool_args(op, x, y), pad_bottom=pb, pad_right=pr,
                               count_include_pad=int(op.p.count_include_pad), x=x, y=y), [x], [y])


@lowers(L.GlobalAvgPoolOp)
def lower_global_avg_pool(lw, op):
    x = lw.contiguous(lw.view(op.x))
    y = lw.result(op.result)
    n, c, h, w = x.shape
    lw.call("global_avg_pool", dict(planes=n * c, size=h * w, x=x, y=y), [x], [y])


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


@lowers(L.ConvTranspose2dOp)
def lower_conv_transpose2d(lw, op):
    """conv2d's input-gradient kernel: x plays dy, the result plays dx (same geometry)."""
    x, w = lw.contiguous(lw.view(op.x)), lw.contiguous(lw.view(op.weight))
    y = lw.result(op.result)
    geometry, floats = lw.library.conv_plan("input", y.shape, w.shape, op.p, x.shape)
    work = lw.scratch(floats)
    lw.call("conv2d_backward_input", dict(geometry=geometry, dy=x, w=w, dx=y, work=work), [x, w], [y, work])
