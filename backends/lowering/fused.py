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

from ...ir.ops import grad as G
from ...ir.ops import optim as O
from ...ir.ops.fused import FusedOp, YieldOp
from ..kernel_ir import Call, Epilogue, Map, View
from ..lower_to_kernels import (
    MAP_FORMS,
    LoweringError,
    MapBuilder,
    Operands,
    lowers,
    shape_of,
)
from .grad import emit_conv2d_backward_weight, emit_linear_backward_weight


@lowers(FusedOp)
def lower_fused(lw, op):
    if op.group_kind == "update":
        lower_update(lw, op)
        return
    if op.group_kind == "linear_cross_entropy":
        from .loss import lower_linear_cross_entropy

        lower_linear_cross_entropy(lw, op)
        return
    if op.group_kind == "epilogue":
        lower_epilogue(lw, op)
        return
    mb = MapBuilder(shape_of(op.results[0]))
    views: dict = dict(zip(op.block.args, (lw.view(v) for v in op.inputs)))
    results = map_of(mb, list(op.block.ops), views, {})
    lw.steps.append(mb.finish([lw.result(r) for r in op.results], results, f"train.fused ({group_names(op)})"))


def group_names(op) -> str:
    return "+".join(o.name.removeprefix("train.") for o in op.block.ops if not isinstance(o, YieldOp))


def map_of(mb: MapBuilder, ops: list, views: dict, refs: dict) -> list:
    """The scalar forms of `ops` (ending in the group's train.yield) chained in `mb`: values
    from outside are read through `views`, those already in the loop are `refs`; returns the
    refs of the yielded values."""
    for inner in ops:
        if isinstance(inner, YieldOp):
            return [refs[v] if v in refs else mb.input(views[v]) for v in inner.operands]
        form = MAP_FORMS.get(type(inner))
        if form is None:
            raise LoweringError(f"{inner.name} inside train.fused has no scalar form")
        operands = Operands(mb, [views.get(v) for v in inner.operands], [refs.get(v) for v in inner.operands])
        for r, ref in zip(inner.results, form(mb, inner, operands)):
            refs[r] = ref
    raise LoweringError("train.fused without train.yield")


def lower_epilogue(lw, op):
    """A contraction and the elementwise work on its output: the contraction's own rule
    makes its kernel call, then the elementwise part becomes that call's epilogue (a Map over
    the kernel's (image, row, column) walk of the output, run per finished tile), or, where
    an operand does not fit that walk, a loop nest of its own after the call."""
    from ..lower_to_kernels import RULES
    from .linalg import epilogue_walk

    ops = [o for o in op.block.ops if not isinstance(o, YieldOp)]
    hosts = [o for o in ops if not MAP_FORMS.get(type(o))]
    if len(hosts) != 1:
        raise LoweringError("an epilogue group holds one contraction and elementwise ops")
    host = hosts[0]
    for arg, v in zip(op.block.args, op.inputs):
        lw.bind(arg, lw.view(v))
    n_steps = len(lw.steps)
    RULES[type(host)](lw, host)
    call = lw.steps[-1]
    raw = lw.view(host.result)
    mb = MapBuilder(raw.shape)
    refs = {host.result: mb.input(raw)}
    views = {arg: lw.view(arg) for arg in op.block.args}
    results = map_of(mb, [o for o in op.block.ops if o is not host], views, refs)
    out_of = outputs_of(op)
    outputs, kept = [], []
    for v, res in zip(op.block.last_op.operands, results):
        if v is host.result:  # the raw product is used outside as well: the call's own output
            lw.bind(out_of[v], raw)
        else:
            outputs.append(lw.result(out_of[v]))
            kept.append(res)
    m = mb.finish(outputs, kept, f"train.fused ({group_names(op)})")
    walk = epilogue_walk(call, raw) if len(lw.steps) > n_steps and isinstance(call, Call) else None
    if walk is None or any(walk(v) is None for v in (*m.inputs, *m.outputs)):
        lw.steps.append(m)  # an operand the kernel's walk cannot address: a loop of its own
        return
    if host.result not in op.block.last_op.operands:
        # nothing else reads the raw product: the GEMM writes it into an f32 output of the
        # epilogue's shape, which the epilogue then overwrites in place, tile by tile
        target = next((o for o in outputs if o.dtype == "f32" and o.shape == raw.shape), None)
        if target is not None:
            call.operands = {k: target if a is raw else a for k, a in call.operands.items()}
            call.writes = [target if w is raw else w for w in call.writes]
            m.inputs = [target if v is raw else v for v in m.inputs]
            lw.bind(host.result, target)
    m.shape, m.inputs, m.outputs = walk.shape, [walk(v) for v in m.inputs], [walk(v) for v in m.outputs]
    m = hoist_row_invariants(lw, m, call)
    call.reads += m.inputs[1:]
    call.writes += [o for o in m.outputs if not o.same_place(m.inputs[0])]
    walk.attach(call, Epilogue(m))
    call.origin = m.origin


def hoist_row_invariants(lw, m: Map, call: Call) -> Map:
    """The epilogue `m` (over (b, row, column)) with the work that depends on the row alone
    (a frozen batch norm's gamma / sqrt(var + eps)) moved to a loop over the rows before
    `call`, into a scratch vector the epilogue reads: an epilogue meets each row once per
    NR-column strip, a loop over the whole output once per row. `m` itself when there is
    no such work."""
    n_in = len(m.inputs)
    rows_only = [i > 0 and v.elem_strides()[0] == 0 == v.elem_strides()[2] for i, v in enumerate(m.inputs)]
    for ins in m.body:
        rows_only.append(all(rows_only[a] for a in ins.operands))
    if not any(rows_only[n_in + j] and ins.op != "const" for j, ins in enumerate(m.body)):
        return m
    inner = {a for j, ins in enumerate(m.body) if not rows_only[n_in + j] for a in ins.operands} | set(m.results)
    kept = [k for k in sorted(inner) if k >= n_in and rows_only[k] and m.body[k - n_in].op != "const"]
    rows = m.shape[1]
    pre, epi = MapBuilder((rows,)), MapBuilder(m.shape)
    pre_ref: dict = {}
    epi_ref = {0: epi.input(m.inputs[0])}  # the raw product stays input 0
    for j, ins in enumerate(m.body):
        if rows_only[n_in + j]:
            for a in ins.operands:
                if a < n_in and a not in pre_ref:
                    v = m.inputs[a]
                    pre_ref[a] = pre.input(View(v.storage, v.dtype, (rows,), v.offset, (v.elem_strides()[1],)))
            pre_ref[n_in + j] = pre.emit(ins.op, [pre_ref[a] for a in ins.operands], ins.dtype, ins.attrs)
    scratch = [lw.scratch(rows, m.body[k - n_in].dtype) for k in kept]
    for k, st in zip(kept, scratch):
        epi_ref[k] = epi.input(View(st.storage, st.dtype, m.shape, 0, (0, 1, 0)))

    def ref(k: int):
        if k not in epi_ref:  # an input, or a constant the epilogue keeps
            ins = None if k < n_in else m.body[k - n_in]
            epi_ref[k] = epi.input(m.inputs[k]) if ins is None else epi.emit(ins.op, [], ins.dtype, ins.attrs)
        return epi_ref[k]

    for j, ins in enumerate(m.body):
        if not rows_only[n_in + j]:
            epi_ref[n_in + j] = epi.emit(ins.op, [ref(a) for a in ins.operands], ins.dtype, ins.attrs)
    lw.steps.insert(lw.steps.index(call), pre.finish(scratch, [pre_ref[k] for k in kept], f"{m.origin} (per row)"))
    return epi.finish(m.outputs, [ref(r) for r in m.results], m.origin)


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
