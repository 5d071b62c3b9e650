"""Gradient rules of the losses (ir/ops/loss.py). dℓ is the loss gradient (a scalar)."""

from __future__ import annotations

import math

from pockengine.ir import types as T
from pockengine.ir.ops import loss as Lo

from . import vjp


@vjp(Lo.CrossEntropyOp)
def cross_entropy(b, op, grads_out):
    """ℓ = reduce -log softmax(z)[label]  →  dz = cross_entropy_backward(z, labels, dℓ)
    = (softmax(z) - onehot(label))·dℓ / count; no gradient for the labels"""
    p = op.p
    return [b.cross_entropy_backward(op.logits, op.labels, grads_out[0], reduction=p.reduction,
                                     ignore_index=p.ignore_index), None]


@vjp(Lo.MseOp)
def mse(b, op, grads_out):
    """ℓ = reduce (x - t)²  →  dx = 2·(x - t)·dℓ / N (N = 1 for "sum"), dt = -dx"""
    x, t = op.pred, op.target
    n = 1 if op.p.reduction == "sum" else math.prod(T.shape(x))
    dx = b.mul(b.scale(b.sub(x, t), 2 / n), grads_out[0])
    return [dx, b.neg(dx)]
