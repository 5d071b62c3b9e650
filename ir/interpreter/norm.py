"""batch_norm, layer_norm, rms_norm in numpy."""

import numpy as np

from ..ops import norm as N
from . import impl


@impl(N.BatchNormOp)
def run_batch_norm(interp, op, x, gamma, beta, mean, var):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    scale = gamma / np.sqrt(var + op.p.eps)
    return (x - mean.reshape(shape)) * scale.reshape(shape) + beta.reshape(shape)


def _axes(op, x):
    return tuple(range(op.p.axis % x.ndim, x.ndim))


@impl(N.LayerNormOp)
def run_layer_norm(interp, op, x, gamma, beta):
    ax = _axes(op, x)
    mu = x.mean(axis=ax, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=ax, keepdims=True)
    return (x - mu) / np.sqrt(var + op.p.eps) * gamma + beta


@impl(N.RmsNormOp)
def run_rms_norm(interp, op, x, gamma):
    ms = (x * x).mean(axis=_axes(op, x), keepdims=True)
    return x / np.sqrt(ms + op.p.eps) * gamma
