"""sum, mean, max, any, softmax, log_softmax, cumsum in numpy."""

import numpy as np

from ..ops import reduce as R
from . import impl

_REDUCE = {R.SumOp: np.sum, R.MeanOp: np.mean, R.MaxOp: np.max, R.AnyOp: np.any}


@impl(*_REDUCE)
def run_reduce(interp, op, x):
    out = _REDUCE[type(op)](x, axis=tuple(op.p.axes), keepdims=op.p.keepdims)
    return np.asarray(out, dtype=x.dtype)


def softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis):
    s = x - x.max(axis=axis, keepdims=True)
    return s - np.log(np.exp(s).sum(axis=axis, keepdims=True))


@impl(R.SoftmaxOp)
def run_softmax(interp, op, x):
    return softmax(x, op.p.axis)


@impl(R.LogSoftmaxOp)
def run_log_softmax(interp, op, x):
    return log_softmax(x, op.p.axis)


@impl(R.CumsumOp)
def run_cumsum(interp, op, x):
    return np.cumsum(x, axis=op.p.axis, dtype=x.dtype)
