"""batch_norm (frozen statistics) is a per-channel map, so fusion can merge it with the
activation after it; layer_norm and rms_norm are row kernels."""

from __future__ import annotations

import math

from ...ir.ops import norm as N
from ..lower_to_kernels import lowers, map_form


@map_form(N.BatchNormOp)
def batch_norm_form(mb, op, operands):
    """y = (x - mean) * (gamma * rsqrt(var + eps)) + beta with per-channel parameters read
    with stride 0 off the channel axis; the loop nest hoists the per-channel part."""
    x = operands.ref(0)
    tail = (1,) * (len(mb.shape) - 2)
    g, b, m, v = (mb.input(operands.view(i).with_strides((mb.shape[1], *tail), (1, *(0 for _ in tail))))
                  for i in range(1, 5))
    scale = mb.bin("mul", g, mb.emit("train.rsqrt", [mb.bin("add", v, mb.const(op.p.eps))]))
    return [mb.bin("add", mb.bin("mul", mb.bin("sub", x, m), scale), b)]


def rows(op, x) -> tuple[int, int]:
    ax = op.p.axis % len(x.shape)
    return math.prod(x.shape[:ax]), math.prod(x.shape[ax:])


@lowers(N.LayerNormOp)
def lower_layer_norm(lw, op):
    x = lw.contiguous(lw.view(op.x))
    g, b = lw.contiguous(lw.view(op.gamma)), lw.contiguous(lw.view(op.beta))
    y = lw.result(op.result)
    lw.call("layer_norm", dict(rows=rows(op, x), x=x, gamma=g, beta=b, eps=op.p.eps, y=y), [x, g, b], [y])


@lowers(N.RmsNormOp)
def lower_rms_norm(lw, op):
    x = lw.contiguous(lw.view(op.x))
    g = lw.contiguous(lw.view(op.gamma))
    y = lw.result(op.result)
    lw.call("rms_norm", dict(rows=rows(op, x), x=x, gamma=g, eps=op.p.eps, y=y), [x, g], [y])
