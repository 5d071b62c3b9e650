"""Gradient rules of conv2d, matmul, linear, pooling and pad (ir/ops/linalg.py).

Weight gradients are ops of their own, apart from input gradients, so a sparse update can
slice one and drop the other.
"""

from __future__ import annotations

from pockengine.ir import types as T
from pockengine.ir.ops import linalg as L

from . import vjp


def _conv_props(op):
    p = op.p
    return {"stride": list(p.stride), "padding": list(p.padding), "dilation": list(p.dilation), "groups": p.groups}


@vjp(L.Conv2dOp)
def conv2d(b, op, grads_out):
    """y = conv2d(x, w)  →  dx = conv2d_backward_input(dy, w), dw = conv2d_backward_weight(x, dy)"""
    dy, x, w = grads_out[0], op.x, op.weight
    return [b.conv2d_backward_input(dy, w, input_size=list(T.shape(x)[2:]), **_conv_props(op)),
            b.conv2d_backward_weight(x, dy, kernel=list(T.shape(w)[2:]), **_conv_props(op))]


@vjp(L.ConvTranspose2dOp)
def conv_transpose2d(b, op, grads_out):
    """y = conv_transpose2d(x, w) = conv2d_backward_input(x, w)  →  dx = conv2d(dy, w),
    dw = conv2d_backward_weight(dy, x) (y's geometry is the conv's input, x its output)"""
    p, dy, x, w = op.p, grads_out[0], op.x, op.weight
    props = {"stride": list(p.stride), "padding": list(p.padding), "dilation": list(p.dilation), "groups": p.groups}
    return [b.conv2d(dy, w, **props), b.conv2d_backward_weight(dy, x, kernel=list(T.shape(w)[2:]), **props)]


def _t(b, v):
    """Swap the last two dims."""
    r = len(T.shape(v))
    return b.transpose(v, perm=[*range(r - 2), r - 1, r - 2])


@vjp(L.MatmulOp)
def matmul(b, op, grads_out):
    """z = x @ y  →  dx = dz @ yᵀ, dy = xᵀ @ dz (batch dims summed back where broadcast)"""
    dz, x, y = grads_out[0], op.lhs, op.rhs
    return [b.sum_to(b.matmul(dz, _t(b, y)), x), b.sum_to(b.matmul(_t(b, x), dz), y)]


@vjp(L.LinearOp)
def linear(b, op, grads_out):
    """y = x·wᵀ  →  dx = dy @ w, dw = linear_backward_weight(x, dy) = Σ dyᵀ·x over leading dims"""
    dy, x, w = grads_out[0], op.x, op.weight
    if len(T.shape(dy)) == 1:  # matmul wants rank 2
        dx = b.reshape(b.matmul(b.reshape(dy, shape=[1, T.shape(dy)[0]]), w), shape=list(T.shape(x)))
    else:
        dx = b.matmul(dy, w)
    return [dx, b.linear_backward_weight(x, dy)]


@vjp(L.MaxPool2dOp)
def max_pool2d(b, op, grads_out):
    """y = max over windows  →  dx = max_pool2d_backward(x, dy): dy to each window's first maximum"""
    p = op.p
    return [b.max_pool2d_backward(op.x, grads_out[0], kernel=list(p.kernel), stride=list(p.stride),
                                  padding=list(p.padding), dilation=list(p.dilation), ceil_mode=p.ceil_mode)]


@vjp(L.AvgPool2dOp)
def avg_pool2d(b, op, grads_out):
    """y = mean over windows  →  dx = avg_pool2d_backward(dy): dy / divisor spread over each window"""
    p = op.p
    return [b.avg_pool2d_backward(grads_out[0], kernel=list(p.kernel), stride=list(p.stride),
                                  padding=list(p.padding), ceil_mode=p.ceil_mode,
                                  count_include_pad=p.count_include_pad, input_size=list(T.shape(op.x)[2:]))]


@vjp(L.GlobalAvgPoolOp)
def global_avg_pool(b, op, grads_out):
    """y = mean over H, W  →  dx = broadcast(dy / (H·W))"""
    xs = T.shape(op.x)
    return [b.broadcast(b.scale(grads_out[0], 1 / (xs[2] * xs[3])), shape=list(xs))]


@vjp(L.PadOp)
def pad(b, op, grads_out):
    """y = pad(x, pads)  →  dx = pad(dy, -pads): crop what was padded, zero-fill what was cropped"""
    return [b.pad(grads_out[0], pads=[-v for v in op.p.pads])]
