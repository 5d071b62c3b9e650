"""train.fused (passes/fusion.py). An elementwise group is one loop nest: the scalar forms of
its ops (MAP_FORMS) chained, values inside the group never leaving registers. An update
group (weight gradient + SGD) runs the gradient GEMM straight into the optimizer's buffer:

    no momentum:  w' = (1 - lr·wd)·w - lr·(dyᵀx)              one GEMM with alpha, beta
    momentum:     b' = m·b + (1 - d)·(dyᵀx)   (b' = dyᵀx on step 1)
                  then one loop: b' += α·wd·w, w' = w - lr·b'

A linear_cross_entropy group (a vocabulary head) is one chunked kernel call, lowered in
backends/lowering/loss.py around the same SGD steps (emit_sgd).
"""

from __future__ import annotations

import numpy as np
from pockengine.backends.kernel_ir import View
from pockengine.backends.lowering.grad import emit_conv2d_backward_weight, emit_linear_backward_weight
from pockengine.ir.ops import grad as G
from pockengine.ir.ops import optim as O
from pockengine.ir.ops.fused import FusedOp, YieldOp
from pockengine.passes.lower_to_kernels import (
    MAP_FORMS,
    LoweringError,
    MapBuilder,
    Operands,
    lowers,
    shape_of,
)


@lowers(FusedOp)
def lower_fused(lw, op):
    if op.group_kind == "update":
        lower_update(lw, op)
        return
    if op.group_kind == "linear_cross_entropy":
        from pockengine.backends.lowering.loss import lower_linear_cross_entropy

        lower_linear_cross_entropy(lw, op)
        return
    mb = MapBuilder(shape_of(op.results[0]))
    views: dict = dict(zip(op.block.args, (lw.view(v) for v in op.inputs)))
    refs: dict = {}
    for inner in op.block.ops:
        if isinstance(inner, YieldOp):
            results = [refs[v] if v in refs else mb.input(views[v]) for v in inner.operands]
            break
        form = MAP_FORMS.get(type(inner))
        if form is None:
            raise LoweringError(f"{inner.name} inside train.fused has no scalar form")
        operands = Operands(mb, [views.get(v) for v in inner.operands], [refs.get(v) for v in inner.operands])
        for r, ref in zip(inner.results, form(mb, inner, operands)):
            refs[r] = ref
    names = "+".join(o.name.removeprefix("train.") for o in op.block.ops if not isinstance(o, YieldOp))
    lw.steps.append(mb.finish([lw.result(r) for r in op.results], results, f"train.fused ({names})"))


def lower_update(lw, op):
    grad_op, sgd = [o for o in op.block.ops if not isinstance(o, YieldOp)]
    if not isinstance(sgd, O.SgdOp) or sgd.p.nesterov:
        raise LoweringError("an update group holds a weight gradient and a (non-nesterov) train.sgd")
    outer = dict(zip(op.block.args, op.inputs))
    out_of = outputs_of(op)
    emit = emit_linear_backward_weight if isinstance(grad_op, G.LinearBackwardWeightOp) else emit_conv2d_backward_weight
    bind_grad_inputs(lw, grad_op, outer)
    emit_sgd(lw, sgd, outer, out_of, lambda dst, ab: emit(lw, grad_op, dst, ab))


def outputs_of(op) -> dict:
    """Values yielded inside a train.fused → the fused op's results."""
    return dict(zip(op.block.last_op.operands, op.results))


def emit_sgd(lw, sgd, outer, out_of, emit_grad) -> None:
    """The SGD update `sgd` (inside a fused group) around `emit_grad(dst, ab)`, which emits the
    steps that make dst = ab[0]·g + ab[1]·dst for the gradient g: into the new weight
    without momentum, into the momentum buffer with it (then one loop updates the weight)."""
    p = sgd.p
    param = lw.view(outer[sgd.operands[0]])
    new_param = lw.result(out_of[sgd.results[0]]) if sgd.results[0] in out_of else lw.scratch(param.size).reshaped(param.shape)
    if not p.momentum:
        lw.copy(param, new_param)
        ab = View(lw.owner.const(np.array([-p.lr, 1 - p.lr * p.weight_decay], np.float32), "f32"), "f32", (2,))
        emit_grad(new_param, ab)
        return
    buf, step = lw.view(outer[sgd.operands[2]]), lw.view(outer[sgd.operands[3]])
    new_buf = lw.result(out_of[sgd.results[1]]) if sgd.results[1] in out_of else lw.scratch(buf.size).reshaped(buf.shape)
    lw.copy(buf, new_buf)
    # alpha, beta of the GEMM from the step number: step 1 starts the buffer afresh
    ab = lw.scratch(2)
    mb = MapBuilder(())
    first = mb.bin("eq", mb.input(step), mb.const(1.0))
    alpha = mb.emit("train.where", [first, mb.const(1.0), mb.const(1 - p.dampening)])
    beta = mb.emit("train.where", [first, mb.const(0.0), mb.const(p.momentum)])
    lw.steps.append(mb.finish([View(ab.storage, "f32", (), 0), View(ab.storage, "f32", (), 1)], [alpha, beta],
                              "train.sgd (step factors)"))
    emit_grad(new_buf, ab)
    mb = MapBuilder(param.shape)
    b = mb.input(new_buf)
    if p.weight_decay:
        a = mb.input(View(ab.storage, "f32", (), 0))
        b = mb.bin("add", b, mb.bin("mul", a, mb.bin("mul", mb.const(p.weight_decay), mb.input(param))))
    w = mb.bin("sub", mb.input(param), mb.bin("mul", mb.const(p.lr), b))
    outs, res = [new_param], [w]
    if p.weight_decay:
        outs, res = [new_param, new_buf], [w, b]
    lw.steps.append(mb.finish(outs, res, "train.sgd (update)"))


def bind_grad_inputs(lw, grad_op, outer) -> None:
    """The gradient op reads the fused op's inputs: bind its block arguments to their views."""
    for v in grad_op.operands:
        if v in outer and v not in lw.env:
            lw.bind(v, lw.view(outer[v]))
