"""Backward-only ops (ir/ops/grad.py). Convolution and linear gradients run on the packed
GEMM; activation gradients are scalar instructions, so fusion can merge them with the
elementwise ops around them."""

from __future__ import annotations

import math

from ...ir.ops import grad as G
from ..kernel_ir import contiguous_strides
from ..lower_to_kernels import lowers
from .linalg import as_matrix
from .norm import rows
from .reduce import axis_layout


@lowers(G.Conv2dBackwardInputOp)
def lower_conv2d_backward_input(lw, op):
    dy, w = lw.contiguous(lw.view(op.dy)), lw.contiguous(lw.view(op.weight))
    dx = lw.result(op.result)
    geometry, floats = lw.library.conv_plan("input", dx.shape, w.shape, op.p, dy.shape)
    work = lw.scratch(floats)
    lw.call("conv2d_backward_input", dict(geometry=geometry, dy=dy, w=w, dx=dx, work=work), [dy, w], [dx, work])


def emit_conv2d_backward_weight(lw, op, dw, ab=None):
    """dw (= alpha·dw_op + beta·dw when `ab` views (alpha, beta))."""
    x, dy = lw.contiguous(lw.view(op.x)), lw.contiguous(lw.view(op.dy))
    geometry, floats = lw.library.conv_plan("weight", x.shape, dw.shape, op.p, dy.shape)
    work = lw.scratch(floats)
    reads = [x, dy] + ([ab, dw] if ab is not None else [])
    lw.call("conv2d_backward_weight", dict(geometry=geometry, x=x, dy=dy, dw=dw, ab=ab, work=work), reads, [dw, work])


@lowers(G.Conv2dBackwardWeightOp)
def lower_conv2d_backward_weight(lw, op):
    emit_conv2d_backward_weight(lw, op, lw.result(op.result))


def emit_linear_backward_weight(lw, op, dw, ab=None):
    x, m, rsx, csx = as_matrix(lw, lw.view(op.x))
    dy, _, rsd, csd = as_matrix(lw, lw.view(op.dy))
    n, k = dw.shape
    work = lw.scratch(lw.library.gemm_workspace(n, k, m))
    reads = [x, dy] + ([ab, dw] if ab is not None else [])
    lw.call("linear_backward_weight", dict(m=m, n=n, k=k, x=x, rsx=rsx, csx=csx, dy=dy, rsd=rsd, csd=csd, dw=dw,
                                           ab=ab, work=work), reads, [dw, work])


@lowers(G.LinearBackwardWeightOp)
def lower_linear_backward_weight(lw, op):
    emit_linear_backward_weight(lw, op, lw.result(op.result))


def _pool_geometry(op, xs, ys, dilation) -> list[int]:
    p = op.p
    pt, pl, _, _ = p.padding
    return [xs[0] * xs[1], xs[2], xs[3], *p.kernel, *p.stride, pt, pl, *dilation, ys[2], ys[3]]


@lowers(G.MaxPool2dBackwardOp)
def lower_max_pool2d_backward(lw, op):
    x, dy = lw.contiguous(lw.view(op.x)), lw.contiguous(lw.view(op.dy))
    dx = lw.result(op.result)
    lw.call("max_pool2d_backward", dict(geometry=_pool_geometry(op, x.shape, dy.shape, op.p.dilation), x=x, dy=dy,
                                        dx=dx), [x, dy], [dx])


@lowers(G.AvgPool2dBackwardOp)
def lower_avg_pool2d_backward(lw, op):
    dy = lw.contiguous(lw.view(op.dy))
    dx = lw.result(op.result)
    geo = _pool_geometry(op, dx.shape, dy.shape, (1, 1))
    del geo[9:11]  # no dilation
    _, _, pb, pr = op.p.padding
    lw.call("avg_pool2d_backward", dict(geometry=geo, pad_bottom=pb, pad_right=pr,
                                        count_include_pad=int(op.p.count_include_pad), dy=dy, dx=dx), [dy], [dx])


@lowers(G.SliceBackwardOp)
def lower_slice_backward(lw, op):
    dy = lw.view(op.dy)
    dx = lw.result(op.result)
    st = list(contiguous_strides(dx.shape))
    offset = 0
    p = op.p
    for a, s, k in zip(p.axes, p.starts, p.steps):
        offset += s * st[a]
        st[a] *= k
    lw.fill(dx, 0.0)
    lw.copy(dy, dx.with_strides(dy.shape, st, offset))


@lowers(G.GatherBackwardOp)
def lower_gather_backward(lw, op):
    dy, idx = lw.contiguous(lw.view(op.dy)), lw.contiguous(lw.view(op.indices))
    dx = lw.result(op.result)
    outer, n, inner = axis_layout(dx.shape, op.p.axis)
    lw.call("gather_backward", dict(outer=outer, n=n, inner=inner, count=idx.size, dy=dy, index=idx,
                                    padding_idx=op.p.padding_idx, dx=dx), [dy, idx], [dx], variant=_index(idx))


@lowers(G.SoftmaxBackwardOp, G.LogSoftmaxBackwardOp)
def lower_softmax_backward(lw, op):
    y, dy = lw.contiguous(lw.view(op.y)), lw.contiguous(lw.view(op.dy))
    dx = lw.result(op.result)
    lw.call("softmax_backward", dict(layout=axis_layout(y.shape, op.p.axis), y=y, dy=dy, dx=dx), [y, dy], [dx],
            variant="" if isinstance(op, G.SoftmaxBackwardOp) else "log")


@lowers(G.LayerNormBackwardOp, G.RmsNormBackwardOp)
def lower_norm_backward(lw, op):
    x, g, dy = (lw.contiguous(lw.view(v)) for v in (op.x, op.gamma, op.dy))
    dx = lw.result(op.result)
    kernel = "layer_norm_backward" if isinstance(op, G.LayerNormBackwardOp) else "rms_norm_backward"
    lw.call(kernel, dict(rows=rows(op, x), x=x, gamma=g, dy=dy, eps=op.p.eps, dx=dx), [x, g, dy], [dx])


@lowers(G.LayerNormBackwardGammaOp, G.RmsNormBackwardGammaOp)
def lower_norm_backward_gamma(lw, op):
    x, dy = lw.contiguous(lw.view(op.x)), lw.contiguous(lw.view(op.dy))
    dg = lw.result(op.result)
    kernel = "layer_norm_backward" if isinstance(op, G.LayerNormBackwardGammaOp) else "rms_norm_backward"
    lw.call(kernel, dict(rows=rows(op, x), x=x, dy=dy, eps=op.p.eps, dgamma=dg), [x, dy], [dg], variant="gamma")


@lowers(G.CrossEntropyBackwardOp)
def lower_cross_entropy_backward(lw, op):
    logits, labels = lw.contiguous(lw.view(op.logits)), lw.contiguous(lw.view(op.labels))
    dloss = lw.contiguous(lw.view(op.dloss))
    dx = lw.result(op.result)
    n, c = logits.shape[:2]
    inner = math.prod(logits.shape[2:])
    lw.call("cross_entropy_backward", dict(n=n, c=c, inner=inner, logits=logits, labels=labels, dloss=dloss,
                                           ignore_index=op.p.ignore_index, mean=int(op.p.reduction == "mean"),
                                           dlogits=dx), [logits, labels, dloss], [dx], variant=_index(labels))


@lowers(G.GatherElementsBackwardOp)
def lower_gather_elements_backward(lw, op):
    from ..kernel_ir import contiguous_strides
    from .shape import gather_elements_layout

    dy, idx = lw.contiguous(lw.view(op.dy)), lw.contiguous(lw.view(op.indices))
    dx = lw.result(op.result)
    d, xs, axis_stride, n = gather_elements_layout(dx.shape, contiguous_strides(dx.shape), idx.shape, op.p.axis)
    lw.call("gather_elements_backward", dict(dims=d, strides=xs, axis_stride=axis_stride, n=n, count=dx.size, dy=dy,
                                             index=idx, dx=dx), [dy, idx], [dx], variant=_index(idx))


def _index(v) -> str:
    """The variant of a kernel taking indices of `v`'s dtype: int64 is the default form."""
    return "i32" if v.dtype == "i32" else ""
