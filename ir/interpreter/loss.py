"""cross_entropy and mse in numpy."""

import numpy as np

from ..ops import loss as Lo
from . import impl
from .reduce import log_softmax


def check_labels(labels: np.ndarray, classes: int, ignore_index: int) -> np.ndarray:
    """The mask of kept labels; ValueError for a label that is neither ignore_index nor in
    [0, classes) (PyTorch raises too; numpy would wrap a negative one around)."""
    valid = labels != ignore_index
    bad = valid & ((labels < 0) | (labels >= classes))
    if bad.any():
        at = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"label {int(labels[at])} at position {at} is outside the valid range [0, {classes}) "
                         f"(and is not ignore_index {ignore_index})")
    return valid


@impl(Lo.CrossEntropyOp)
def run_cross_entropy(interp, op, logits, labels):
    logp = log_softmax(logits, 1)
    valid = check_labels(labels, logits.shape[1], op.p.ignore_index)
    safe = np.where(valid, labels, 0)
    picked = np.take_along_axis(logp, np.expand_dims(safe, 1), axis=1).squeeze(1)
    total = -np.where(valid, picked, 0).sum()  # an ignored row's NaN stays out (PyTorch's nll_loss)
    if op.p.reduction == "sum":
        return np.asarray(total, logits.dtype)
    return np.asarray(total / max(valid.sum(), 1), logits.dtype)


@impl(Lo.MseOp)
def run_mse(interp, op, pred, target):
    sq = (pred - target) ** 2
    return np.asarray(sq.sum() if op.p.reduction == "sum" else sq.mean(), pred.dtype)
