"""Optimizer updates as one loop nest per parameter, with the operation order of
ir/interpreter/optim.py (torch.optim's single-tensor loops). Each new value lands where the
planner puts it: usually in the parameter's (or state's) own bytes, in place."""

from __future__ import annotations

from ...ir.ops import optim as O
from ..lower_to_kernels import map_form


def sgd_momentum(mb, p, grad, buf, step):
    """b' = g on step 1, else momentum·b + (1 - dampening)·g."""
    mom = mb.bin("add", mb.bin("mul", buf, mb.const(p.momentum)), mb.bin("mul", mb.const(1 - p.dampening), grad))
    return mb.emit("train.where", [mb.bin("eq", step, mb.const(1.0)), grad, mom])


@map_form(O.SgdOp)
def sgd_form(mb, op, operands):
    p = op.p
    param, grad = operands.ref(0), operands.ref(1)
    if p.weight_decay:
        grad = mb.bin("add", grad, mb.bin("mul", mb.const(p.weight_decay), param))
    if not p.momentum:
        return [mb.bin("sub", param, mb.bin("mul", mb.const(p.lr), grad))]
    buf = sgd_momentum(mb, p, grad, operands.ref(2), operands.ref(3))
    d = mb.bin("add", grad, mb.bin("mul", mb.const(p.momentum), buf)) if p.nesterov else buf
    return [mb.bin("sub", param, mb.bin("mul", mb.const(p.lr), d)), buf]


@map_form(O.AdamOp)
def adam_form(mb, op, operands):
    p = op.p
    param, grad, m, v, t = (operands.ref(i) for i in range(5))
    if p.weight_decay and p.decoupled:
        param = mb.bin("mul", param, mb.const(1 - p.lr * p.weight_decay))
    elif p.weight_decay:
        grad = mb.bin("add", grad, mb.bin("mul", mb.const(p.weight_decay), param))
    m1 = mb.bin("add", m, mb.bin("mul", mb.bin("sub", grad, m), mb.const(1 - p.beta1)))
    v1 = mb.bin("add", mb.bin("mul", v, mb.const(p.beta2)),
                mb.bin("mul", mb.bin("mul", mb.const(1 - p.beta2), grad), grad))
    step_size = mb.emit("optim.adam_step_size", [t], attrs=(p.lr, p.beta1))
    bias2 = mb.emit("optim.adam_bias2_sqrt", [t], attrs=(p.beta2,))
    denom = mb.bin("add", mb.bin("div", mb.emit("train.sqrt", [v1]), bias2), mb.const(p.eps))
    return [mb.bin("sub", param, mb.bin("div", mb.bin("mul", step_size, m1), denom)), m1, v1]
