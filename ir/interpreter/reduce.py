"""sum, mean, max, any, softmax, log_softmax, cumsum in numpy."""

import numpy as np

from ..ops import reduce as R
from . import impl

def _lowest(dtype) -> float | int | bool:
    """The identity of max: -inf for floats, the smallest integer, False for i1."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return -np.inf
    if dtype.kind == "b":
        return False
    return np.iinfo(dtype).min


def _max(x, axis, keepdims):
    return np.max(x, axis=axis, keepdims=keepdims, initial=_lowest(x.dtype))


def _mean(x, axis, keepdims):
    with np.errstate(invalid="ignore", divide="ignore"):  # an empty mean is NaN (0/0), as in onnxruntime
        return np.mean(x, axis=axis, keepdims=keepdims)


# A reduction over an empty axis gives the identity, as ONNX specifies: sum 0, max -inf (an
# integer type's minimum), any false; a mean is 0/0 = NaN.
_REDUCE = {R.SumOp: np.sum, R.MeanOp: _mean, R.MaxOp: _max, R.AnyOp: np.any}


@impl(*_REDUCE)
def run_reduce(interp, op, x):
    if x.size == 0 and type(op) is R.MeanOp:  # np.mean warns "Mean of empty slice"
        out = np.full(np.sum(x, axis=tuple(op.p.axes), keepdims=op.p.keepdims).shape, np.nan)
        return np.asarray(out, dtype=x.dtype)
    out = _REDUCE[type(op)](x, axis=tuple(op.p.axes), keepdims=op.p.keepdims)
    return np.asarray(out, dtype=x.dtype)


def softmax(x, axis):
    e = np.exp(x - _max(x, axis, True))  # an empty axis gives an empty result
    return e / e.sum(axis=axis, keepdims=True)


def log_softmax(x, axis):
    s = x - _max(x, axis, True)
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
