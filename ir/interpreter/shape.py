"""reshape, transpose, broadcast, slice, concat, gather, gather_elements in numpy."""

import numpy as np

from ..ops import shape as S
from . import impl


@impl(S.ReshapeOp)
def run_reshape(interp, op, x):
    return x.reshape(op.p.shape)


@impl(S.TransposeOp)
def run_transpose(interp, op, x):
    return x.transpose(op.p.perm).copy()  # (ascontiguousarray would make 0-d arrays 1-d)


@impl(S.BroadcastOp)
def run_broadcast(interp, op, x):
    return np.broadcast_to(x, op.p.shape).copy()


@impl(S.SliceOp)
def run_slice(interp, op, x):
    idx = [slice(None)] * x.ndim
    p = op.p
    for a, s, e, k in zip(p.axes, p.starts, p.ends, p.steps):
        idx[a] = slice(s, e, k)
    return x[tuple(idx)].copy()


@impl(S.ConcatOp)
def run_concat(interp, op, *xs):
    return np.concatenate(xs, axis=op.p.axis)


@impl(S.GatherOp)
def run_gather(interp, op, x, idx):
    return np.take(x, idx, axis=op.p.axis)


@impl(S.GatherElementsOp)
def run_gather_elements(interp, op, x, idx):
    ax = op.p.axis % x.ndim
    x = x[tuple(slice(None) if a == ax else slice(0, n) for a, n in enumerate(idx.shape))]
    return np.take_along_axis(x, idx, axis=ax)
