"""cross_entropy and mse: scalar results written by one kernel each."""

from __future__ import annotations

import math

from pockengine.ir.ops import loss as Lo
from pockengine.passes.lower_to_kernels import lowers


@lowers(Lo.CrossEntropyOp)
def lower_cross_entropy(lw, op):
    logits = lw.contiguous(lw.view(op.logits))
    labels = lw.contiguous(lw.view(op.labels))
    y = lw.result(op.result)
    n, c = logits.shape[:2]
    inner = math.prod(logits.shape[2:])
    fn = "pk_cross_entropy_i32" if labels.dtype == "i32" else "pk_cross_entropy"
    lw.call("cross_entropy", fn, [n, c, inner, logits, labels, op.p.ignore_index,
                                  int(op.p.reduction == "mean"), y], [logits, labels], [y])


@lowers(Lo.MseOp)
def lower_mse(lw, op):
    a, b = lw.contiguous(lw.view(op.pred)), lw.contiguous(lw.view(op.target))
    y = lw.result(op.result)
    lw.call("mse", "pk_mse", [a.size, a, b, int(op.p.reduction == "mean"), y], [a, b], [y])
