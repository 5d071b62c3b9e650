"""Gradient rules of the elementwise ops (ir/ops/elementwise.py). dy is the output gradient."""

from __future__ import annotations

import math

from pockengine.ir import types as T
from pockengine.ir.ops import elementwise as E

from . import vjp

# --- unary ------------------------------------------------------------------------


@vjp(E.NegOp)
def neg(b, op, grads_out):
    """y = -x  →  dx = -dy"""
    return [b.neg(grads_out[0])]


@vjp(E.AbsOp)
def abs_(b, op, grads_out):
    """y = |x|  →  dx = sign(x)·dy (0 at x = 0, like PyTorch)"""
    dy, x = grads_out[0], op.x
    zero = b.const(0, x)
    return [b.where(b.lt(x, zero), b.neg(dy), b.where(b.gt(x, zero), dy, zero))]


@vjp(E.SqrtOp)
def sqrt(b, op, grads_out):
    """y = sqrt(x)  →  dx = dy / (2y)"""
    return [b.div(b.scale(grads_out[0], 0.5), op.result)]


@vjp(E.RsqrtOp)
def rsqrt(b, op, grads_out):
    """y = x^-½  →  dx = -½·dy·y³"""
    y = op.result
    return [b.mul(b.scale(grads_out[0], -0.5), b.mul(y, b.mul(y, y)))]


@vjp(E.ReciprocalOp)
def reciprocal(b, op, grads_out):
    """y = 1/x  →  dx = -dy·y²"""
    y = op.result
    return [b.neg(b.mul(grads_out[0], b.mul(y, y)))]


@vjp(E.ExpOp)
def exp(b, op, grads_out):
    """y = e^x  →  dx = dy·y"""
    return [b.mul(grads_out[0], op.result)]


@vjp(E.LogOp)
def log(b, op, grads_out):
    """y = ln x  →  dx = dy / x"""
    return [b.div(grads_out[0], op.x)]


@vjp(E.TanhOp)
def tanh(b, op, grads_out):
    """y = tanh x  →  dx = dy·(1 - y²)"""
    y = op.result
    return [b.mul(grads_out[0], b.sub(b.const(1, y), b.mul(y, y)))]


@vjp(E.SinOp)
def sin(b, op, grads_out):
    """y = sin x  →  dx = dy·cos x"""
    return [b.mul(grads_out[0], b.cos(op.x))]


@vjp(E.CosOp)
def cos(b, op, grads_out):
    """y = cos x  →  dx = -dy·sin x"""
    return [b.neg(b.mul(grads_out[0], b.sin(op.x)))]


@vjp(E.ErfOp)
def erf(b, op, grads_out):
    """y = erf x  →  dx = dy·(2/√π)·e^(-x²)"""
    x = op.x
    return [b.mul(b.scale(grads_out[0], 2 / math.sqrt(math.pi)), b.exp(b.neg(b.mul(x, x))))]


@vjp(E.SigmoidOp)
def sigmoid(b, op, grads_out):
    """y = σ(x)  →  dx = dy·y·(1 - y)"""
    y = op.result
    return [b.mul(b.mul(grads_out[0], y), b.sub(b.const(1, y), y))]


@vjp(E.ReluOp)
def relu(b, op, grads_out):
    """y = max(x, 0)  →  dx = dy where y > 0, else 0 (read from the output, so x may die)"""
    y = op.result
    zero = b.const(0, y)
    return [b.where(b.gt(y, zero), grads_out[0], zero)]


@vjp(E.Relu6Op)
def relu6(b, op, grads_out):
    """y = min(max(x, 0), 6)  →  dx = dy where 0 < x < 6 (PyTorch's hardtanh_backward)"""
    x = op.x
    inside = b.and_(b.gt(x, b.const(0, x)), b.lt(x, b.const(6, x)))
    return [b.where(inside, grads_out[0], b.const(0, x))]


@vjp(E.ClampOp)
def clamp(b, op, grads_out):
    """y = min(max(x, lo), hi)  →  dx = dy where lo ≤ x ≤ hi (PyTorch's clamp_backward)"""
    x, lo, hi = op.x, op.p.min, op.p.max
    masks = [b.ge(x, b.const(lo, x))] if math.isfinite(lo) else []
    masks += [b.le(x, b.const(hi, x))] if math.isfinite(hi) else []
    if not masks:
        return [grads_out[0]]
    inside = masks[0] if len(masks) == 1 else b.and_(*masks)
    return [b.where(inside, grads_out[0], b.const(0, x))]


@vjp(E.SiluOp)
def silu(b, op, grads_out):
    """y = x·σ(x)  →  dx = dy·σ(x)·(1 + x·(1 - σ(x)))"""
    return [b.silu_backward(op.x, grads_out[0])]


@vjp(E.GeluOp)
def gelu(b, op, grads_out):
    """y = x·Φ(x)  →  dx = dy·(Φ(x) + x·φ(x)) (or the tanh form's derivative)"""
    return [b.gelu_backward(op.x, grads_out[0], approximate=op.p.approximate)]


@vjp(E.CastOp)
def cast(b, op, grads_out):
    """y = cast(x, to)  →  dx = cast(dy, x's type); none for integer or mask inputs"""
    x = op.x
    return [b.cast(grads_out[0], to=str(T.element(x))) if T.is_float(x) else None]


# --- binary (numpy broadcasting: each gradient is summed back to its operand) -------


@vjp(E.AddOp)
def add(b, op, grads_out):
    """z = x + y  →  dx = dz, dy = dz"""
    dz = grads_out[0]
    return [b.sum_to(dz, op.lhs), b.sum_to(dz, op.rhs)]


@vjp(E.SubOp)
def sub(b, op, grads_out):
    """z = x - y  →  dx = dz, dy = -dz"""
    dz = grads_out[0]
    return [b.sum_to(dz, op.lhs), b.neg(b.sum_to(dz, op.rhs))]


@vjp(E.MulOp)
def mul(b, op, grads_out):
    """z = x·y  →  dx = dz·y, dy = dz·x"""
    dz, x, y = grads_out[0], op.lhs, op.rhs
    return [b.sum_to(b.mul(dz, y), x), b.sum_to(b.mul(dz, x), y)]


@vjp(E.DivOp)
def div(b, op, grads_out):
    """z = x / y  →  dx = dz / y, dy = -dx·z"""
    x, y = op.lhs, op.rhs
    dx = b.div(grads_out[0], y)
    return [b.sum_to(dx, x), b.sum_to(b.neg(b.mul(dx, op.result)), y)]


@vjp(E.PowOp)
def pow_(b, op, grads_out):
    """z = x^y  →  dx = dz·y·x^(y-1), dy = dz·z·ln x"""
    dz, x, y = grads_out[0], op.lhs, op.rhs
    dx = b.mul(b.mul(dz, y), b.pow(x, b.sub(y, b.const(1, y))))
    return [b.sum_to(dx, x), b.sum_to(b.mul(b.mul(dz, op.result), b.log(x)), y)]


def _pick(b, op, dz, wins):
    """Gradient split of max/min: all of dz to the winner, half each on a tie (PyTorch)."""
    x, y = op.lhs, op.rhs
    zero = b.const(0, dz)
    dx = b.where(wins(x, y), dz, b.where(b.eq(x, y), b.scale(dz, 0.5), zero))
    return [b.sum_to(dx, x), b.sum_to(b.sub(dz, dx), y)]


@vjp(E.MaximumOp)
def maximum(b, op, grads_out):
    """z = max(x, y)  →  dx = dz where x > y (½dz on ties), dy = dz - dx"""
    return _pick(b, op, grads_out[0], b.gt)


@vjp(E.MinimumOp)
def minimum(b, op, grads_out):
    """z = min(x, y)  →  dx = dz where x < y (½dz on ties), dy = dz - dx"""
    return _pick(b, op, grads_out[0], b.lt)


@vjp(E.WhereOp)
def where(b, op, grads_out):
    """z = c ? x : y  →  dc = none, dx = c ? dz : 0, dy = c ? 0 : dz"""
    dz, c = grads_out[0], op.cond
    zero = b.const(0, dz)
    return [None, b.sum_to(b.where(c, dz, zero), op.lhs), b.sum_to(b.where(c, zero, dz), op.rhs)]
