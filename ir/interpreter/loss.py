"""cross_entropy and mse in numpy."""

import numpy as np

from ..ops import loss as Lo
from . import impl
from .reduce import log_softmax


@impl(Lo.CrossEntropyOp)
def run_cross_entropy(interp, op, logits, labels):
    logp = log_softmax(logits, 1)
    valid = labels != op.p.ignore_index
    safe = np.where(valid, labels, 0)
    picked = np.take_along_axis(logp, np.expand_dims(safe, 1), axis=1).squeeze(1)
    total = -(picked * valid).sum()
    if op.p.reduction == "sum":
        return np.asarray(total, logits.dtype)
    return np.asarray(total / max(valid.sum(), 1), logits.dtype)


@impl(Lo.MseOp)
def run_mse(interp, op, pred, target):
    sq = (pred - target) ** 2
    return np.asarray(sq.sum() if op.p.reduction == "sum" else sq.mean(), pred.dtype)
