"""fusion: group ops that can run as one kernel into `train.fused` (ir/ops/fused.py).

Two kinds of groups, both with the meaning of the ops they hold (the interpreter runs the
region as is, so fusion is checked against the unfused program):

* elementwise — chains and trees of ops that map element to element over one shape
  (elementwise math, frozen batch_norm, activation gradients, optimizer updates) become one
  loop nest: a conv's batch_norm + relu6, a relu's backward (compare + select), a whole
  SGD-momentum update. Intermediate values stay in registers; a value used outside the
  group becomes one more result of the loop.
* update — a weight gradient (linear or conv2d backward-weight) whose only use is an SGD
  update: the GEMM accumulates straight into the momentum buffer (or the weight), so the
  full gradient is never stored (backends/lowering/fused.py).

    pock-opt m.mlir -p 'autodiff{...},fusion'

A group is placed where its last member was; an op joins a group only when no op outside
the group between them uses the group's values, so the order stays valid.
"""

from __future__ import annotations

from dataclasses import dataclass

from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import grad as G
from pockengine.ir.ops import norm as N
from pockengine.ir.ops import optim as O
from pockengine.ir.ops.fused import FusedOp, YieldOp
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass

ELEMENTWISE = (*E.OPS, N.BatchNormOp, G.GeluBackwardOp, G.SiluBackwardOp, O.SgdOp, O.AdamOp)
WEIGHT_GRADIENTS = (G.LinearBackwardWeightOp, G.Conv2dBackwardWeightOp)


def _shape(v: SSAValue) -> tuple[int, ...]:
    return tuple(v.type.get_shape())


def elementwise_domain(op: Operation) -> tuple[int, ...] | None:
    """The loop shape of a fusable op, or None. Every result must have it."""
    if not isinstance(op, ELEMENTWISE) or not op.results:
        return None
    shapes = {_shape(r) for r in op.results}
    return shapes.pop() if len(shapes) == 1 else None


def make_fused(group: list[Operation], kind: str = "elementwise") -> FusedOp:
    """Move `group` (ops of one block, in order) into a train.fused placed at its last op."""
    members = set(group)
    inputs: list[SSAValue] = []
    outputs: list[SSAValue] = []
    for op in group:
        for v in op.operands:
            if not (isinstance(v.owner, Operation) and v.owner in members) and v not in inputs:
                inputs.append(v)
        for r in op.results:
            if any(u.operation not in members for u in r.uses):
                outputs.append(r)
    block = Block(arg_types=[v.type for v in inputs])
    fused = FusedOp.make(inputs, [r.type for r in outputs], block, kind)
    for r, out in zip(outputs, fused.results):
        out.name_hint = r.name_hint
    parent = group[-1].parent_block()
    parent.insert_op_before(fused, group[-1])
    external = [[u for u in r.uses if u.operation not in members] for r in outputs]
    args = dict(zip(inputs, block.args))
    for op in group:
        op.detach()
        for i, v in enumerate(op.operands):
            if v in args:
                op.operands[i] = args[v]
        block.add_op(op)
    block.add_op(YieldOp.create(operands=outputs))
    for new, uses in zip(fused.results, external):
        for u in uses:
            u.operation.operands[u.index] = new
    return fused


def fuse_updates(block: Block) -> int:
    """Weight gradient + its SGD update → one `update` group."""
    n = 0
    for op in list(block.ops):
        if not isinstance(op, O.SgdOp) or op.p.nesterov:
            continue
        g = op.operands[1]
        src = g.owner
        if isinstance(src, WEIGHT_GRADIENTS) and src.parent_block() is block and len(list(g.uses)) == 1 \
                and op.operands[0] is not g:
            make_fused([src, op], "update")
            n += 1
    return n


def fuse_elementwise(block: Block) -> int:
    """Greedy grouping in program order; returns the number of groups made."""
    ops = list(block.ops)
    pos = {op: i for i, op in enumerate(ops)}
    group_of: dict[Operation, int] = {}
    groups: dict[int, list[Operation]] = {}
    domain: dict[int, tuple[int, ...]] = {}
    next_id = 0

    def can_join(gids: set[int], op: Operation) -> bool:
        members = {m for g in gids for m in groups[g]} | {op}
        return all(u.operation in members or pos.get(u.operation, -1) > pos[op]
                   for m in members - {op} for r in m.results for u in r.uses)

    for op in ops:
        dom = elementwise_domain(op)
        if dom is None:
            continue
        cands = {group_of[v.owner] for v in op.operands
                 if isinstance(v.owner, Operation) and v.owner in group_of and domain[group_of[v.owner]] == dom}
        chosen: set[int] = set()
        if cands and can_join(cands, op):
            chosen = cands
        else:
            for g in sorted(cands, key=lambda g: -len(groups[g])):
                if can_join({g}, op):
                    chosen = {g}
                    break
        if chosen:
            keep = min(chosen)
            for g in chosen - {keep}:
                groups[keep] += groups.pop(g)
            groups[keep].append(op)
            groups[keep].sort(key=pos.__getitem__)
            for m in groups[keep]:
                group_of[m] = keep
        else:
            groups[next_id], domain[next_id], group_of[op] = [op], dom, next_id
            next_id += 1
    made = 0
    for g in groups.values():
        if len(g) > 1:
            make_fused(g)
            made += 1
    return made


def fuse(module: ModuleOp, updates: bool = True, elementwise: bool = True) -> dict[str, int]:
    counts = {"update": 0, "elementwise": 0}
    for fn in module.ops:
        if not isinstance(fn, func.FuncOp):
            continue
        block = fn.body.block
        if updates:
            counts["update"] += fuse_updates(block)
        if elementwise:
            counts["elementwise"] += fuse_elementwise(block)
    return counts


@dataclass(frozen=True)
class Fusion(ModulePass):
    """Group elementwise chains (one loop nest each) and weight-gradient + SGD pairs (the
    gradient accumulates straight into the optimizer buffer) into train.fused ops.

    updates: make gradient+update groups;  elementwise: make elementwise groups."""

    name = "fusion"

    updates: bool = True
    elementwise: bool = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        fuse(op, self.updates, self.elementwise)
