"""Optimizer updates in numpy, written like torch.optim's single-tensor loops."""

from __future__ import annotations

import numpy as np

from ..ops import optim as O
from . import impl


@impl(O.SgdOp)
def run_sgd(interp, op, param, grad, *state):
    p = op.p
    if p.weight_decay:
        grad = grad + p.weight_decay * param
    if not p.momentum:
        return param - p.lr * grad
    buf, step = state
    buf = grad.copy() if step == 1 else buf * p.momentum + (1 - p.dampening) * grad
    d = grad + p.momentum * buf if p.nesterov else buf
    return param - p.lr * d, buf


@impl(O.AdamOp)
def run_adam(interp, op, param, grad, exp_avg, exp_avg_sq, step):
    p = op.p
    if p.weight_decay and p.decoupled:
        param = param * (1 - p.lr * p.weight_decay)
    elif p.weight_decay:
        grad = grad + p.weight_decay * param
    exp_avg = exp_avg + (grad - exp_avg) * (1 - p.beta1)
    exp_avg_sq = exp_avg_sq * p.beta2 + (1 - p.beta2) * grad * grad
    t = float(step)
    step_size = p.lr / (1 - p.beta1**t)
    denom = np.sqrt(exp_avg_sq) / np.sqrt(1 - p.beta2**t) + p.eps
    return param - step_size * exp_avg / denom, exp_avg, exp_avg_sq
