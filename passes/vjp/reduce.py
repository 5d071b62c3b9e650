"""Gradient rules of reductions, softmax and cumsum (ir/ops/reduce.py)."""

from __future__ import annotations

from pockengine.ir import types as T
from pockengine.ir.ops import reduce as R

from . import count, vjp


@vjp(R.SumOp)
def sum_(b, op, grads_out):
    """y = Σ_axes x  →  dx = broadcast(dy) over the reduced axes"""
    return [b.expand(grads_out[0], op.p.axes, op.p.keepdims, op.x)]


@vjp(R.MeanOp)
def mean(b, op, grads_out):
    """y = mean_axes x  →  dx = broadcast(dy) / N over the reduced axes"""
    n = count(T.shape(op.x), op.p.axes)
    return [b.expand(b.scale(grads_out[0], 1 / n), op.p.axes, op.p.keepdims, op.x)]


@vjp(R.MaxOp)
def max_(b, op, grads_out):
    """y = max_axes x  →  dx = dy shared evenly among the maxima (PyTorch's amax backward)"""
    x, axes = op.x, op.p.axes
    keep = list(T.reduced(T.shape(x), axes, True))
    y, dy = (op.result, grads_out[0]) if op.p.keepdims else (b.reshape(v, shape=keep) for v in (op.result, grads_out[0]))
    hit = b.cast(b.eq(x, y), to=str(T.element(x)))
    return [b.mul(hit, b.div(dy, b.sum(hit, axes=list(axes), keepdims=True)))]


@vjp(R.SoftmaxOp)
def softmax(b, op, grads_out):
    """y = softmax(x)  →  dx = softmax_backward(y, dy) = y·(dy - Σ dy·y)"""
    return [b.softmax_backward(op.result, grads_out[0], axis=op.p.axis)]


@vjp(R.LogSoftmaxOp)
def log_softmax(b, op, grads_out):
    """y = log_softmax(x)  →  dx = log_softmax_backward(y, dy) = dy - e^y·Σ dy"""
    return [b.log_softmax_backward(op.result, grads_out[0], axis=op.p.axis)]


@vjp(R.CumsumOp)
def cumsum(b, op, grads_out):
    """y = cumsum(x)  →  dx_i = Σ_{j ≥ i} dy_j = Σ dy - cumsum(dy)_i + dy_i"""
    dy, axis = grads_out[0], op.p.axis
    total = b.sum(dy, axes=[axis], keepdims=True)
    return [b.add(b.sub(total, b.cumsum(dy, axis=axis)), dy)]
