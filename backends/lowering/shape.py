"""Data movement as views: reshape, transpose, broadcast and slice only change how the same
bytes are addressed (no step at all); concat and gather write new storage."""

from __future__ import annotations

import math

from ...ir.ops import shape as S
from ..kernel_ir import ITEMSIZE, contiguous_strides
from ..lower_to_kernels import lowers, shape_of


@lowers(S.ReshapeOp)
def lower_reshape(lw, op):
    x = lw.view(op.x)
    shape = shape_of(op.result)
    if x.shape and not any(x.elem_strides()):  # a broadcast scalar stays one element
        lw.bind(op.result, x.with_strides(shape, (0,) * len(shape)))
        return
    lw.alias(op.result, lw.contiguous(x))


@lowers(S.TransposeOp)
def lower_transpose(lw, op):
    x = lw.view(op.x)
    st = x.elem_strides()
    perm = op.p.perm
    lw.bind(op.result, x.with_strides([x.shape[i] for i in perm], [st[i] for i in perm]))


@lowers(S.BroadcastOp)
def lower_broadcast(lw, op):
    from ..kernel_ir import broadcast_strides

    x = lw.view(op.x)
    shape = shape_of(op.result)
    lw.bind(op.result, x.with_strides(shape, broadcast_strides(x, shape)))


@lowers(S.SliceOp)
def lower_slice(lw, op):
    x = lw.view(op.x)
    st = list(x.elem_strides())
    offset = 0
    p = op.p
    for a, s, k in zip(p.axes, p.starts, p.steps):
        offset += s * st[a]
        st[a] *= k
    lw.bind(op.result, x.with_strides(shape_of(op.result), st, offset))


@lowers(S.ConcatOp)
def lower_concat(lw, op):
    out = lw.result(op.result)
    ax = op.p.axis % len(out.shape)
    st = contiguous_strides(out.shape)
    at = 0
    for v in op.inputs:
        x = lw.view(v)
        lw.copy(x, out.with_strides(x.shape, st, at * st[ax]))
        at += x.shape[ax]


@lowers(S.GatherOp)
def lower_gather(lw, op):
    x = lw.contiguous(lw.view(op.x))
    idx = lw.contiguous(lw.view(op.indices))
    ax = op.p.axis % len(x.shape)
    outer, n, inner = math.prod(x.shape[:ax]), x.shape[ax], math.prod(x.shape[ax + 1:])
    out = lw.result(op.result)
    lw.call("gather", dict(outer=outer, n=n, inner_bytes=inner * ITEMSIZE[x.dtype], count=idx.size, x=x, index=idx,
                           y=out), [x, idx], [out], variant="i32" if idx.dtype == "i32" else "")


def gather_elements_layout(x_shape, x_strides, idx_shape, axis) -> tuple[list[int], list[int], int, int]:
    """The index tensor's dims padded to 6 and x's strides over them (0 on the axis)."""
    ax = axis % len(x_shape)
    if len(idx_shape) > 6:
        raise ValueError("gather_elements over more than 6 dims")
    pad = 6 - len(idx_shape)
    xs = [0 if k == ax else s for k, s in enumerate(x_strides)]
    return [1] * pad + list(idx_shape), [0] * pad + xs, x_strides[ax], x_shape[ax]


@lowers(S.GatherElementsOp)
def lower_gather_elements(lw, op):
    x, idx = lw.view(op.x), lw.contiguous(lw.view(op.indices))
    out = lw.result(op.result)
    d, xs, axis_stride, n = gather_elements_layout(x.shape, x.elem_strides(), idx.shape, op.p.axis)
    lw.call("gather_elements", dict(dims=d, strides=xs, axis_stride=axis_stride, n=n, itemsize=ITEMSIZE[x.dtype], x=x,
                                    index=idx, y=out), [x, idx], [out], variant="i32" if idx.dtype == "i32" else "")
