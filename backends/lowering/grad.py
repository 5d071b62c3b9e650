"""Backward-only ops (ir/ops/grad.py). Convolution and linear gradients run on the packed
GEMM; activation gradients are scalar instructions, so fusion can merge them with the
elementwise ops around them."""

from __future__ import annotations

import math

from pockengine.backends.kernel_ir import contiguous_strides
from pockengine.backends.lowering.linalg import as_matrix, conv_plan, gemm_workspace
from pockengine.backends.lowering.norm import rows
from pockengine.backends.lowering.reduce import axis_layout
from pockengine.ir.ops import grad as G
from pockengine.passes.lower_to_kernels import lowers


@lowers(G.Conv2dBackwardInputOp)
def lower_conv2d_backward_input(lw, op):
    dy, w = lw.contiguous(lw.view(op.dy)), lw.contiguous(lw.view(op.weight))
    dx = lw.result(op.result)
    geometry, floats = conv_plan("input", dx.shape, w.shape, op.p, dy.shape)
    work = lw.scratch(floats)
    lw.call("conv2d_backward_input", "pk_conv2d_backward_input", [geometry, dy, w, dx, work], [dy, w], [dx, work])


def emit_conv2d_backward_weight(lw, op, dw, ab=None):
    """dw (= alpha·dw_op + beta·dw when `ab` views (alpha, beta))."""
    x, dy = lw.contiguous(lw.view(op.x)), lw.contiguous(lw.view(op.dy))
    geometry, floats = conv_plan("weight", x.shape, dw.shape, op.p, dy.shape)
    work = lw.scratch(floats)
    reads = [x, dy] + ([ab, dw] if ab is not None else [])
    lw.call("conv2d_backward_weight", "pk_conv2d_backward_weight", [geometry, x, dy, dw, ab, work], reads, [dw, work])


@lowers(G.Conv2dBackwardWeightOp)
def lower_conv2d_backward_weight(lw, op):
    emit_conv2d_backward_weight(lw, op, lw.result(op.result))


def emit_linear_backward_weight(lw, op, dw, ab=None):
    x, m, rsx, csx = as_matrix(lw, lw.view(op.x))
    dy, _, rsd, csd = as_matrix(lw, lw.view(op.dy))
    n, k = dw.shape
    work = lw.scratch(gemm_workspace(n, k, m))
    reads = [x, dy] + ([ab, dw] if ab is not None else [])
    lw.call("linear_backward_weight", "pk_linear_backward_weight",
            [m, n, k, x, rsx, csx, dy, rsd, csd, dw, ab, work], reads, [dw, work])


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
    lw.call("max_pool2d_backward", "pk_max_pool2d_backward",
            [*_pool_geometry(op, x.shape, dy.shape, op.p.dilation), x, dy, dx], [x, dy], [dx])


@lowers(G.AvgPool2dBackwardOp)
def lower_avg_pool2d_backward(lw, op):
    dy = lw.contiguous(lw.view(op.dy))
    dx = lw.result(op.result)
    geo = _pool_geometry(op, dx.shape, dy.shape, (1, 1))
    del geo[9:11]  # no dilation
    _, _, pb, pr = op.p.padding
    lw.call("avg_pool2d_backward", "pk_avg_pool2d_backward",
            [*geo, pb, pr, int(op.p.count_include_pad), dy, dx], [dy], [dx])


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
    fn = "pk_gather_backward_i32" if idx.dtype == "i32" else "pk_gather_backward"
    lw.call("gather_backward", fn, [outer, n, inner, idx.size, dy, idx, op.p.padding_idx, dx], [dy, idx], [dx])


@lowers(G.SoftmaxBackwardOp, G.LogSoftmaxBackwardOp)
def lower_softmax_backward(lw, op):
    y, dy = lw.contiguous(lw.view(op.y)), lw.contiguous(lw.view(op.dy))
    dx = lw.result(op.result)
    fn = "pk_softmax_backward" if isinstance(op, G.SoftmaxBackwardOp) else "pk_log_softmax_backward"
    lw.call("softmax_backward", fn, [*axis_layout(y.shape, op.p.axis), y, dy, dx], [y, dy], [dx],
            inplace=[(0, 1)] if isinstance(op, G.SoftmaxBackwardOp) else [])


@lowers(G.LayerNormBackwardOp, G.RmsNormBackwardOp)
def lower_norm_backward(lw, op):
    x, g, dy = (lw.contiguous(lw.view(v)) for v in (op.x, op.gamma, op.dy))
    dx = lw.result(op.result)
    kernel = "layer_norm_backward" if isinstance(op, G.LayerNormBackwardOp) else "rms_norm_backward"
    lw.call(kernel, f"pk_{kernel}", [*rows(op, x), x, g, dy, op.p.eps, dx], [x, g, dy], [dx])


@lowers(G.LayerNormBackwardGammaOp, G.RmsNormBackwardGammaOp)
def lower_norm_backward_gamma(lw, op):
    x, dy = lw.contiguous(lw.view(op.x)), lw.contiguous(lw.view(op.dy))
    dg = lw.result(op.result)
    kernel = "layer_norm_backward" if isinstance(op, G.LayerNormBackwardGammaOp) else "rms_norm_backward"
    lw.call(kernel, f"pk_{kernel}_gamma", [*rows(op, x), x, dy, op.p.eps, dg], [x, dy], [dg])


@lowers(G.CrossEntropyBackwardOp)
def lower_cross_entropy_backward(lw, op):
    logits, labels = lw.contiguous(lw.view(op.logits)), lw.contiguous(lw.view(op.labels))
    dloss = lw.contiguous(lw.view(op.dloss))
    dx = lw.result(op.result)
    n, c = logits.shape[:2]
    inner = math.prod(logits.shape[2:])
    fn = "pk_cross_entropy_backward_i32" if labels.dtype == "i32" else "pk_cross_entropy_backward"
    lw.call("cross_entropy_backward", fn, [n, c, inner, logits, labels, dloss, op.p.ignore_index,
                                           int(op.p.reduction == "mean"), dx], [logits, labels, dloss], [dx],
            inplace=[(0, 0)])  # dlogits may overwrite the logits: the kernel reads a row before writing it


@lowers(G.GatherElementsBackwardOp)
def lower_gather_elements_backward(lw, op):
    from pockengine.backends.kernel_ir import contiguous_strides
    from pockengine.backends.lowering.shape import gather_elements_layout

    dy, idx = lw.contiguous(lw.view(op.dy)), lw.contiguous(lw.view(op.indices))
    dx = lw.result(op.result)
    d, xs, axis_stride, n = gather_elements_layout(dx.shape, contiguous_strides(dx.shape), idx.shape, op.p.axis)
    fn = "pk_gather_elements_backward_i32" if idx.dtype == "i32" else "pk_gather_elements_backward"
    lw.call("gather_elements", fn, [d, xs, axis_stride, n, dx.size, dy, idx, dx], [dy, idx], [dx])
