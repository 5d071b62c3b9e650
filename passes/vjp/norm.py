"""Gradient rules of the normalizations (ir/ops/norm.py)."""

from __future__ import annotations

from pockengine.ir import types as T
from pockengine.ir.ops import norm as N

from . import vjp


@vjp(N.BatchNormOp)
def batch_norm(b, op, grads_out):
    """y = (x - μ)·γ·rstd + β, rstd = (σ² + eps)^-½, per channel  →
    dx = dy·γ·rstd, dγ = Σ dy·x̂, dβ = Σ dy, dμ = -dβ·γ·rstd, dσ² = -½·dγ·γ·rstd²
    (Σ over all dims but the channel; dμ, dσ² make batch statistics computed in the IR train.)"""
    dy, x, gamma = grads_out[0], op.x, op.gamma
    rank, red = len(T.shape(x)), [0, *range(2, len(T.shape(x)))]
    per_c = [1, T.shape(x)[1]] + [1] * (rank - 2)
    rstd = b.rsqrt(b.add(op.var, b.const(op.p.eps, x)))
    scale = b.mul(gamma, rstd)
    xhat = b.mul(b.sub(x, b.reshape(op.mean, shape=per_c)), b.reshape(rstd, shape=per_c))
    dbeta, dgamma = b.sum(dy, axes=red), b.sum(b.mul(dy, xhat), axes=red)
    dvar = b.mul(b.mul(dgamma, scale), b.scale(rstd, -0.5))
    return [b.mul(dy, b.reshape(scale, shape=per_c)), dgamma, dbeta, b.neg(b.mul(dbeta, scale)), dvar]


@vjp(N.LayerNormOp)
def layer_norm(b, op, grads_out):
    """y = x̂·γ + β over dims axis..  →  dx = layer_norm_backward(x, γ, dy),
    dγ = layer_norm_backward_gamma(x, dy) = Σ dy·x̂, dβ = Σ dy (Σ over the leading dims)"""
    dy, x, p = grads_out[0], op.x, op.p
    lead = list(range(T.norm_axis(p.axis, len(T.shape(x)))))
    return [b.layer_norm_backward(x, op.gamma, dy, axis=p.axis, eps=p.eps),
            b.layer_norm_backward_gamma(x, dy, axis=p.axis, eps=p.eps),
            b.sum(dy, axes=lead) if lead else dy]


@vjp(N.RmsNormOp)
def rms_norm(b, op, grads_out):
    """y = x·r·γ, r = rsqrt(mean(x²) + eps)  →  dx = rms_norm_backward(x, γ, dy),
    dγ = rms_norm_backward_gamma(x, dy) = Σ dy·x·r over the leading dims"""
    dy, x, p = grads_out[0], op.x, op.p
    return [b.rms_norm_backward(x, op.gamma, dy, axis=p.axis, eps=p.eps),
            b.rms_norm_backward_gamma(x, dy, axis=p.axis, eps=p.eps)]
