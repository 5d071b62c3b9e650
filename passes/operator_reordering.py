"""operator-reordering: a memory-aware topological order of each function.

autodiff emits forward, backward, then every update at the end, so every weight gradient
stays alive until the last layer's input gradient is done. This pass list-schedules the ops
again. Among the ops whose inputs are ready it runs the one that frees the most bytes (or
allocates the fewest), ties broken by the original order:

* an update (train.sgd / train.adam and its train.set) runs as soon as its gradient is
  complete and nothing else still reads the old weight (the input gradient through that
  layer reads it): the gradient buffer dies at once and the new weight is written in place;
* a layer's weight gradient frees the saved activation it reads (its last use), so it runs
  before the input gradient is pushed further down, which would allocate a new activation-
  sized buffer while the saved one is still alive.

Values that are only views (train.get, reshape, transpose, broadcast, slice, constants)
cost nothing; a value whose every use is a train.set lands in the parameter's own bytes and
costs nothing either. The new order is kept only if its peak of live bytes (the memory
planner's lower bound, modelled here) is not above the old one. The forward part of a
training step keeps its order: only the backward and the updates move.

Dependences: SSA operands, and for each parameter symbol the reads (train.get, and every use
of what it returned, since the C backend reads parameters in place) before a write
(train.set / set_slice) and the write before later reads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pockengine.ir import types as T
from pockengine.ir.ops import optim as O
from pockengine.ir.ops import shape as S
from pockengine.ir.ops.fused import FusedOp
from pockengine.ir.ops.state import ConstantOp, GetOp, SetOp, SetSliceOp
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass

VIEW_OPS = (GetOp, ConstantOp, S.ReshapeOp, S.TransposeOp, S.BroadcastOp, S.SliceOp)
WRITES = (SetOp, SetSliceOp)


def is_update(op: Operation) -> bool:
    """An optimizer update (alone or fused with its weight gradient)."""
    return isinstance(op, tuple(O.OPS)) or (isinstance(op, FusedOp) and op.group_kind == "update")


def _bytes(v: SSAValue) -> int:
    try:
        item = T.numpy_dtype(v.type.element_type).itemsize
    except NotImplementedError:
        item = 2  # bf16
    return math.prod(v.type.get_shape()) * item


def dependences(ops: list[Operation]) -> dict[Operation, set[Operation]]:
    """op → the ops that must run before it."""
    index = {op: i for i, op in enumerate(ops)}
    deps: dict[Operation, set[Operation]] = {op: set() for op in ops}
    for op in ops:
        for v in op.operands:
            if isinstance(v.owner, Operation) and v.owner in index:
                deps[op].add(v.owner)
    readers: dict[str, set[Operation]] = {}
    writer: dict[str, Operation] = {}
    for op in ops:
        if isinstance(op, GetOp):
            name = op.param.root_reference.data
            if name in writer:
                deps[op].add(writer[name])
            readers.setdefault(name, set()).update(_users_through_views(op.result, index))
            readers[name].add(op)
        elif isinstance(op, WRITES):
            name = op.param.root_reference.data
            deps[op].update(r for r in readers.get(name, ()) if r is not op and index[r] < index[op])
            if name in writer:
                deps[op].add(writer[name])
            writer[name] = op
            readers[name] = set()
    ret = ops[-1] if ops and isinstance(ops[-1], func.ReturnOp) else None
    if ret is not None:  # the terminator stays last
        deps[ret].update(o for o in ops if o is not ret)
    return deps


def _users_through_views(v: SSAValue, index) -> set[Operation]:
    """Ops that read v's bytes: its users, and the users of views of it."""
    out: set[Operation] = set()
    todo = [v]
    while todo:
        x = todo.pop()
        for u in x.uses:
            op = u.operation
            if op not in index:
                continue
            out.add(op)
            if isinstance(op, VIEW_OPS[2:]):
                todo.extend(op.results)
    return out


class Liveness:
    """The byte model: each value's owner (the value it is a view of), its size, and how many
    of the owner's uses (through views) are still to run."""

    def __init__(self, ops: list[Operation]):
        index = {op: i for i, op in enumerate(ops)}
        self.owner: dict[SSAValue, SSAValue | None] = {}
        self.size: dict[SSAValue, int] = {}
        self.pending: dict[SSAValue, int] = {}
        self.param_of: dict[SSAValue, str] = {}  # a parameter read (or a view of it) → the symbol
        self.param_reads: dict[str, int] = {}  # ops still to read each parameter
        for op in ops:
            for r in op.results:
                if isinstance(op, GetOp):
                    self.param_of[r] = op.param.root_reference.data
                elif isinstance(op, VIEW_OPS) and op.operands and op.operands[0] in self.param_of:
                    self.param_of[r] = self.param_of[op.operands[0]]
                if isinstance(op, (GetOp, ConstantOp)):
                    self.owner[r] = None
                elif isinstance(op, VIEW_OPS) and op.operands:
                    self.owner[r] = self.owner.get(op.operands[0], op.operands[0])
                else:
                    self.owner[r] = r
                    lands = r.uses and all(isinstance(u.operation, WRITES) for u in r.uses)
                    self.size[r] = 0 if lands else _bytes(r)
        for op in ops:
            for o in self._owners(op):
                self.pending[o] = self.pending.get(o, 0) + 1
            for g in self._reads(op):
                self.param_reads[g] = self.param_reads.get(g, 0) + 1
        del index

    def _reads(self, op: Operation) -> set[str]:
        if isinstance(op, VIEW_OPS):
            return set()
        return {self.param_of[v] for v in op.operands if v in self.param_of}

    def in_place_ready(self, op: Operation) -> bool:
        """An update may overwrite its parameter now: nothing else still reads the old value."""
        g = self.param_of.get(op.operands[0]) if op.operands else None
        return g is None or self.param_reads.get(g, 0) <= 1

    def _owners(self, op: Operation) -> set[SSAValue]:
        if isinstance(op, VIEW_OPS):
            return set()
        return {o for v in op.operands if (o := self.owner.get(v, v)) is not None and o in self.size}

    def delta(self, op: Operation) -> int:
        alloc = sum(self.size.get(r, 0) for r in op.results if self.owner.get(r) is r)
        if is_update(op) and not self.in_place_ready(op):  # the new weight needs a buffer of its own
            alloc += _bytes(op.results[0])
        freed = sum(self.size[o] for o in self._owners(op) if self.pending[o] == 1)
        return alloc - freed

    def run(self, op: Operation) -> int:
        """Account for op; returns bytes live right after it."""
        d = self.delta(op)
        for o in self._owners(op):
            self.pending[o] -= 1
        for g in self._reads(op):
            self.param_reads[g] -= 1
        return d


def peak(ops: list[Operation]) -> int:
    live = Liveness(ops)
    cur = top = 0
    for op in ops:
        alloc = sum(live.size.get(r, 0) for r in op.results if live.owner.get(r) is r)
        top = max(top, cur + alloc)
        cur += live.run(op)
    return top


def loss_index(ops: list[Operation]) -> int:
    """Position of the op producing the returned loss in a training step (-1 when none)."""
    ret = ops[-1] if ops and isinstance(ops[-1], func.ReturnOp) else None
    if ret is None or not ret.operands or not any(isinstance(o, WRITES) for o in ops):
        return -1
    owner = ret.operands[0].owner
    return ops.index(owner) if isinstance(owner, Operation) and owner in ops else -1


def schedule(ops: list[Operation]) -> list[Operation]:
    """Greedy list scheduling: among ready ops, the smallest net allocation first."""
    deps = dependences(ops)
    index = {op: i for i, op in enumerate(ops)}
    waiting = {op: len(d) for op, d in deps.items()}
    users: dict[Operation, list[Operation]] = {op: [] for op in ops}
    for op, d in deps.items():
        for x in d:
            users[x].append(op)
    live = Liveness(ops)
    ready = [op for op in ops if waiting[op] == 0]
    order: list[Operation] = []
    updates = {op for op in ops if is_update(op)}
    forward = set(ops[:loss_index(ops) + 1])

    def key(op: Operation) -> tuple:
        if op in forward:  # the forward keeps its order: only the backward and updates move
            return (-2, 0, 0, index[op])
        if isinstance(op, VIEW_OPS):  # free: views and constants run as soon as they can
            return (-1, 0, 0, index[op])
        if isinstance(op, WRITES) or (op in updates and live.in_place_ready(op)):
            return (0, 0, live.delta(op), index[op])
        # an update that would need a copy of its weight waits for the last reader
        return (1, op in updates or isinstance(op, func.ReturnOp), live.delta(op), index[op])

    while ready:
        best = min(ready, key=key)
        ready.remove(best)
        order.append(best)
        live.run(best)
        for u in users[best]:
            waiting[u] -= 1
            if waiting[u] == 0:
                ready.append(u)
    if len(order) != len(ops):
        raise RuntimeError("operator-reordering: the dependence graph has a cycle")
    return order


def reorder_block(block: Block) -> tuple[int, int]:
    """Reorder in place when that does not raise the peak; returns (old peak, new peak)."""
    ops = list(block.ops)
    new = schedule(ops)
    before, after = peak(ops), peak(new)
    if after > before * 1.001 or new == ops:  # (a few bytes of rounding in the model do not count)
        return before, before
    for op in ops:
        op.detach()
    for op in new:
        block.add_op(op)
    return before, after


@dataclass(frozen=True)
class OperatorReordering(ModulePass):
    """Memory-aware topological order of every function: updates right after their gradient,
    weight gradients before input gradients when that lowers the peak of live bytes.

    function: only this function (default: all)."""

    name = "operator-reordering"

    function: str = ""

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for fn in op.ops:
            if isinstance(fn, func.FuncOp) and (not self.function or fn.sym_name.data == self.function):
                reorder_block(fn.body.block)
