"""batch_norm (frozen statistics) is a per-channel map, so fusion can merge it with the
activation after it; layer_norm and rms_norm are row kernels."""

from __future__ import annotations

import math

from pockengine.backends.kernel_ir import Instr
from pockengine.ir.ops import norm as N
from pockengine.passes.lower_to_kernels import lowers


def batch_norm_body(n_in: int, eps: float) -> list[Instr]:
    """Instructions of y = (x - mean) * (gamma * rsqrt(var + eps)) + beta over inputs
    (x, gamma, beta, mean, var) numbered from 0; the loop nest hoists the per-channel part."""
    x, g, b, m, v = range(5)
    i = n_in
    return [Instr("const", (), "f32", (eps,)),           # i
            Instr("train.add", (v, i), "f32"),            # i+1
            Instr("train.rsqrt", (i + 1,), "f32"),        # i+2
            Instr("train.mul", (g, i + 2), "f32"),        # i+3
            Instr("train.sub", (x, m), "f32"),            # i+4
            Instr("train.mul", (i + 4, i + 3), "f32"),    # i+5
            Instr("train.add", (i + 5, b), "f32")]        # i+6


def channel_views(lw, op):
    x = lw.view(op.x)
    tail = (1,) * (len(x.shape) - 2)
    return [x] + [lw.view(v).with_strides((x.shape[1], *tail), (1, *(0 for _ in tail)))
                  for v in (op.gamma, op.beta, op.mean, op.var)]


@lowers(N.BatchNormOp)
def lower_batch_norm(lw, op):
    ins = channel_views(lw, op)
    y = lw.result(op.result)
    lw.map(y.shape, ins, batch_norm_body(5, op.p.eps), [y], [5 + 6])


def rows(op, x) -> tuple[int, int]:
    ax = op.p.axis % len(x.shape)
    return math.prod(x.shape[:ax]), math.prod(x.shape[ax:])


@lowers(N.LayerNormOp)
def lower_layer_norm(lw, op):
    x = lw.contiguous(lw.view(op.x))
    g, b = lw.contiguous(lw.view(op.gamma)), lw.contiguous(lw.view(op.beta))
    y = lw.result(op.result)
    lw.call("layer_norm", "pk_layer_norm", [*rows(op, x), x, g, b, op.p.eps, y], [x, g, b], [y])


@lowers(N.RmsNormOp)
def lower_rms_norm(lw, op):
    x = lw.contiguous(lw.view(op.x))
    g = lw.contiguous(lw.view(op.gamma))
    y = lw.result(op.result)
    lw.call("rms_norm", "pk_rms_norm", [*rows(op, x), x, g, op.p.eps, y], [x, g], [y])
