"""Gradient rules of the data-movement ops (ir/ops/shape.py)."""

from __future__ import annotations

import numpy as np
from pockengine.ir import types as T
from pockengine.ir.ops import shape as S

from . import vjp


@vjp(S.ReshapeOp)
def reshape(b, op, grads_out):
    """y = reshape(x, s)  →  dx = reshape(dy, shape of x)"""
    return [b.reshape(grads_out[0], shape=list(T.shape(op.x)))]


@vjp(S.TransposeOp)
def transpose(b, op, grads_out):
    """y = transpose(x, perm)  →  dx = transpose(dy, perm⁻¹)"""
    return [b.transpose(grads_out[0], perm=[int(i) for i in np.argsort(op.p.perm)])]


@vjp(S.BroadcastOp)
def broadcast(b, op, grads_out):
    """y = broadcast_to(x, s)  →  dx = dy summed over the broadcast dims"""
    return [b.sum_to(grads_out[0], op.x)]


@vjp(S.SliceOp)
def slice_(b, op, grads_out):
    """y = x[s:e:k]  →  dx = zeros with dy at s:e:k (a `train.pad` when every k = 1)"""
    p, xs = op.p, T.shape(op.x)
    if any(k != 1 for k in p.steps):
        return [b.slice_backward(grads_out[0], axes=list(p.axes), starts=list(p.starts), ends=list(p.ends),
                                 steps=list(p.steps), input_shape=list(xs))]
    pads = [0] * (2 * len(xs))
    for a, s, e in zip(p.axes, p.starts, p.ends):
        pads[a], pads[a + len(xs)] = s, xs[a] - e
    return [b.pad(grads_out[0], pads=pads)]


@vjp(S.ConcatOp)
def concat(b, op, grads_out):
    """y = concat(x_1..x_n, axis)  →  dx_i = the slice of dy where x_i sits"""
    axis, grads, at = T.norm_axis(op.p.axis, len(T.shape(op.result))), [], 0
    for x in op.inputs:
        size = T.shape(x)[axis]
        grads.append(b.slice(grads_out[0], axes=[axis], starts=[at], ends=[at + size]))
        at += size
    return grads


@vjp(S.GatherOp)
def gather(b, op, grads_out):
    """y = take(x, idx, axis)  →  dx = gather_backward(dy, idx): scatter-add (row padding_idx
    left at zero); no gradient for idx"""
    return [b.gather_backward(grads_out[0], op.indices, axis=op.p.axis, padding_idx=op.p.padding_idx,
                              input_shape=list(T.shape(op.x))), None]


@vjp(S.GatherElementsOp)
def gather_elements(b, op, grads_out):
    """y = take_along_axis(x, idx, axis)  →  dx = gather_elements_backward(dy, idx): scatter-add"""
    return [b.gather_elements_backward(grads_out[0], op.indices, axis=op.p.axis,
                                       input_shape=list(T.shape(op.x))), None]
