"""Optimizer updates as one loop nest per parameter, with the same operation order as
ir/interpreter/optim.py (torch.optim's single-tensor loops). Each new value lands where the
planner puts it: usually in the parameter's (or state's) own bytes, in place."""

from __future__ import annotations

from pockengine.backends.kernel_ir import Instr
from pockengine.ir.ops import optim as O
from pockengine.passes.lower_to_kernels import lowers


class Body:
    """A scalar program over numbered values: inputs first, then each instruction."""

    def __init__(self, n_inputs: int):
        self.n, self.instrs = n_inputs, []

    def emit(self, op: str, *operands: int, attrs: tuple = ()) -> int:
        self.instrs.append(Instr(op, tuple(operands), "f32", attrs))
        return self.n + len(self.instrs) - 1

    def const(self, v: float) -> int:
        return self.emit("const", attrs=(float(v),))

    def bin(self, op: str, a: int, b: int) -> int:
        return self.emit(f"train.{op}", a, b)


@lowers(O.SgdOp)
def lower_sgd(lw, op):
    p = op.p
    ins = [lw.view(v) for v in op.operands]
    b = Body(len(ins))
    param, grad = 0, 1
    if p.weight_decay:
        grad = b.bin("add", grad, b.bin("mul", b.const(p.weight_decay), param))
    if not p.momentum:
        d = grad
        outs = []
    else:
        buf, step = 2, 3
        mom = b.bin("add", b.bin("mul", buf, b.const(p.momentum)), b.bin("mul", b.const(1 - p.dampening), grad))
        first = b.bin("eq", step, b.const(1.0))
        buf = b.emit("train.where", first, grad, mom)
        d = b.bin("add", grad, b.bin("mul", b.const(p.momentum), buf)) if p.nesterov else buf
        outs = [buf]
    new = b.bin("sub", param, b.bin("mul", b.const(p.lr), d))
    results = [new, *outs]
    views = [lw.result(r, "gradients") for r in op.results]
    lw.map(views[0].shape, ins, b.instrs, views, results)


@lowers(O.AdamOp)
def lower_adam(lw, op):
    p = op.p
    ins = [lw.view(v) for v in op.operands]
    b = Body(len(ins))
    param, grad, m, v, t = range(5)
    if p.weight_decay and p.decoupled:
        param = b.bin("mul", param, b.const(1 - p.lr * p.weight_decay))
    elif p.weight_decay:
        grad = b.bin("add", grad, b.bin("mul", b.const(p.weight_decay), param))
    m1 = b.bin("add", m, b.bin("mul", b.bin("sub", grad, m), b.const(1 - p.beta1)))
    v1 = b.bin("add", b.bin("mul", v, b.const(p.beta2)), b.bin("mul", b.bin("mul", b.const(1 - p.beta2), grad), grad))
    step_size = b.emit("optim.adam_step_size", t, attrs=(p.lr, p.beta1))
    denom = b.bin("add", b.bin("div", b.emit("train.sqrt", v1), b.emit("optim.adam_bias2_sqrt", t, attrs=(p.beta2,))),
                  b.const(p.eps))
    new = b.bin("sub", param, b.bin("div", b.bin("mul", step_size, m1), denom))
    views = [lw.result(r, "gradients") for r in op.results]
    lw.map(views[0].shape, ins, b.instrs, views, [new, m1, v1])
