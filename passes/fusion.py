"""fusion: group ops that can run as one kernel into `train.fused` (ir/ops/fused.py).

Four kinds of groups, each with the meaning of the ops it holds (the interpreter runs the
region as is, so fusion is checked against the unfused program):

* elementwise — chains and trees of ops that map element to element over one shape
  (elementwise math, frozen batch_norm, activation gradients, optimizer updates) become one
  loop nest: a conv's batch_norm + relu6, a relu's backward (compare + select), a whole
  SGD-momentum update. Intermediate values stay in registers; a value used outside the
  group becomes one more result of the loop.
* epilogue — a contraction (linear, matmul, a non-depthwise conv2d) with an elementwise
  group over its output's shape that reads its result: bias, frozen batch_norm,
  activation, residual add, a relu backward's mask on dx = dy·W. The GEMM applies it to
  each block of its output as the block is finished, while it is still in cache (gemm.c's
  pk_epilogue), instead of a second pass over the whole output. The raw product stays a
  result where something outside reads it. Operands broadcast freely in the group; where
  one does not fit the kernel's (image, row, column) walk, the lowering runs the
  elementwise part as its own loop after the contraction.
* update — a weight gradient (linear or conv2d backward-weight) whose only use is an SGD
  update: the GEMM accumulates straight into the momentum buffer (or the weight), so the
  full gradient is never stored (backends/lowering/fused.py).
* linear_cross_entropy — a big vocabulary head: the linear, the row ops between it and
  its cross_entropy (next_token's slice and reshape, a bias add), the loss, its backward
  (reshape, pad), and what consumes the logits' gradient: dx = dz·W, the weight gradient
  (with its SGD-momentum update) and the bias gradient. One kernel runs it chunk by chunk
  over the rows (backends/lowering/loss.py), so neither the logits nor their gradient nor
  the weight gradient exist whole. Only heads whose logits take at least `head_bytes`.

    pock-opt m.mlir -p 'autodiff{...},fusion'

A group is placed where its last member was (a head: before the first op that reads one of
its results; an epilogue: as early after its contraction as its inputs allow); an op joins
a group only when no op outside the group between them uses the group's values, so the
order stays valid. Before grouping, elementwise values the backward
reads are recomputed there when their inputs are kept anyway (recompute_in_backward).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import grad as G
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import loss as Lo
from pockengine.ir.ops import norm as N
from pockengine.ir.ops import optim as O
from pockengine.ir.ops import reduce as R
from pockengine.ir.ops import shape as S
from pockengine.ir.ops.fused import FusedOp, YieldOp
from pockengine.ir.ops.state import ConstantOp, GetOp, SetOp
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.traits import is_side_effect_free

ELEMENTWISE = (*E.OPS, N.BatchNormOp, G.GeluBackwardOp, G.SiluBackwardOp, O.SgdOp, O.AdamOp)
WEIGHT_GRADIENTS = (G.LinearBackwardWeightOp, G.Conv2dBackwardWeightOp)
CONTRACTIONS = (L.LinearOp, L.MatmulOp, L.Conv2dOp)  # GEMM kernels that take an epilogue
HEAD_BYTES = 1 << 20  # logits of at least this many bytes: the head runs chunked


def _shape(v: SSAValue) -> tuple[int, ...]:
    return tuple(v.type.get_shape())


def elementwise_domain(op: Operation) -> tuple[int, ...] | None:
    """The loop shape of a fusable op, or None. Every result must have it."""
    if not isinstance(op, ELEMENTWISE) or not op.results:
        return None
    shapes = {_shape(r) for r in op.results}
    return shapes.pop() if len(shapes) == 1 else None


def epilogue_domain(op: Operation) -> tuple[int, ...] | None:
    """The output shape of a contraction whose GEMM can run an epilogue, or None (depthwise
    convolutions run on their own kernel, without GEMM tiles)."""
    if not isinstance(op, CONTRACTIONS):
        return None
    if isinstance(op, L.Conv2dOp) and op.p.groups > 1 and op.p.groups == _shape(op.x)[1] \
            and _shape(op.weight)[1] == 1:
        return None
    return _shape(op.result)


def make_fused(group: list[Operation], kind: str = "elementwise", before: Operation | None = None) -> FusedOp:
    """Move `group` (ops of one block, in order) into a train.fused placed at its last op
    (or before `before`, when every input is defined above it)."""
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
    parent.insert_op_before(fused, before or group[-1])
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


@dataclass
class Head:
    """The roles of the ops of a linear_cross_entropy group. `rows[r]` is the cross-entropy
    row that row r of the linear feeds, -1 for rows outside the loss (next_token's last)."""

    linear: L.LinearOp
    loss: Lo.CrossEntropyOp
    rows: np.ndarray
    bias: SSAValue | None = None
    backward: G.CrossEntropyBackwardOp | None = None
    dx: L.MatmulOp | None = None
    dw: G.LinearBackwardWeightOp | None = None
    sgd: O.SgdOp | None = None
    db: R.SumOp | None = None
    ops: list[Operation] = field(default_factory=list)


def _row_ids(op: Operation, ids: np.ndarray) -> np.ndarray | None:
    """Carry row ids (a value's shape with the last axis 1) through a row op: one that moves,
    drops or zero-pads whole rows and keeps the last axis. None for any other op."""
    src, out = _shape(op.operands[0]), _shape(op.results[0])
    last = len(src) - 1
    if isinstance(op, S.ReshapeOp) and src[-1:] == out[-1:]:
        return ids.reshape(out[:-1] + (1,))
    if isinstance(op, S.SliceOp) and last not in op.p.axes:
        idx = [slice(None)] * ids.ndim
        for a, s, e, k in zip(op.p.axes, op.p.starts, op.p.ends, op.p.steps):
            idx[a] = slice(s, e, k)
        return ids[tuple(idx)]
    if isinstance(op, L.PadOp) and op.p.value == 0 and min(op.p.pads) >= 0:
        lo, hi = op.p.pads[:len(src)], op.p.pads[len(src):]
        if lo[-1] == hi[-1] == 0:
            return np.pad(ids, list(zip(lo, hi)))
    if isinstance(op, G.SliceBackwardOp) and last not in op.p.axes:
        full = np.zeros(out[:-1] + (1,), ids.dtype)
        idx = [slice(None)] * ids.ndim
        for a, s, e, k in zip(op.p.axes, op.p.starts, op.p.ends, op.p.steps):
            idx[a] = slice(s, e, k)
        full[tuple(idx)] = ids
        return full
    return None


def _bias_of(op: Operation, chain: SSAValue) -> SSAValue | None:
    """The bias of `chain + b`, b broadcast along rows ([C] or [1, .., C])."""
    if not isinstance(op, E.AddOp) or _shape(op.results[0]) != _shape(chain):
        return None
    (b,) = [v for v in op.operands if v is not chain] or [None]
    if b is None:
        return None
    bs = _shape(b)
    return b if bs and bs[-1] == _shape(chain)[-1] and all(d == 1 for d in bs[:-1]) else None


def match_head(ce: Lo.CrossEntropyOp, min_bytes: int = HEAD_BYTES) -> Head | None:
    """The linear_cross_entropy group around `ce`, or None when the pattern does not hold."""
    logits = ce.logits
    if len(_shape(logits)) != 2:
        return None
    # forward: linear → row ops (slice, reshape, bias add) → cross_entropy
    chain, bias, v = [], None, logits
    while not isinstance(v.owner, L.LinearOp):
        op = v.owner
        if not isinstance(op, Operation) or len(op.results) != 1:
            return None
        if isinstance(op, (S.SliceOp, S.ReshapeOp)):
            nxt = op.operands[0]
        elif isinstance(op, E.AddOp) and bias is None:
            nxt = next((u for u in op.operands if _bias_of(op, u) is not None), None)
            if nxt is None:
                return None
            bias = _bias_of(op, nxt)
        else:
            return None
        chain.append(op)
        v = nxt
    lin = v.owner
    block = ce.parent_block()
    if lin.parent_block() is not block or math.prod(_shape(lin.result)) * 4 < min_bytes:
        return None
    chain.reverse()
    ids = np.arange(1, math.prod(_shape(lin.result)[:-1]) + 1).reshape(_shape(lin.result)[:-1] + (1,))
    for op in chain:
        ids = _row_ids(op, ids) if not isinstance(op, E.AddOp) else ids
        if ids is None:
            return None
    n_rows = ids.shape[0]
    fwd = ids.reshape(-1) - 1
    if len(set(fwd.tolist())) != n_rows:
        return None
    rows = np.full(math.prod(_shape(lin.result)[:-1]), -1, np.int64)
    rows[fwd] = np.arange(n_rows)
    # every value between the linear and the loss is only read by the group
    for a, b in zip([lin, *chain], chain):
        if [u.operation for u in a.results[0].uses] != [b]:
            return None
    head = Head(lin, ce, rows, bias)
    for u in list(logits.uses):
        op = u.operation
        if op is ce:
            continue
        if not (isinstance(op, G.CrossEntropyBackwardOp) and u.index == 0 and head.backward is None
                and op.labels is ce.labels and op.p.reduction == ce.p.reduction
                and op.p.ignore_index == ce.p.ignore_index):
            return None
        head.backward = op
    ops = [lin, *chain, ce]
    if head.backward is not None and not _match_gradient_uses(head, ops):
        return None
    if head.backward is not None:
        ops.append(head.backward)
    head.ops = sorted(ops, key=lambda o: block.get_operation_index(o))
    return head


def _match_gradient_uses(head: Head, ops: list[Operation]) -> bool:
    """The logits' gradient flows through row ops (reshape, pad) only into dx = dz·W, the
    weight gradient (and its momentum SGD) and a bias-gradient sum, each row where the
    forward took it from."""
    lin, n_rows = head.linear, _shape(head.loss.logits)[0]
    full = np.zeros(len(head.rows), np.int64)
    full[head.rows >= 0] = head.rows[head.rows >= 0] + 1
    ids_of = {head.backward.result: np.arange(1, n_rows + 1).reshape(n_rows, 1)}
    todo = [head.backward.result]
    while todo:
        v = todo.pop()
        ids = ids_of[v]
        as_linear = _shape(v) == _shape(lin.result) and np.array_equal(ids.reshape(-1), full)
        for u in list(v.uses):
            op = u.operation
            nxt = _row_ids(op, ids) if isinstance(op, (S.ReshapeOp, L.PadOp, G.SliceBackwardOp)) else None
            if nxt is not None:
                ids_of[op.results[0]] = nxt
                todo.append(op.results[0])
                ops.append(op)
            elif isinstance(op, L.MatmulOp) and u.index == 0 and op.rhs is lin.weight and as_linear \
                    and head.dx is None:
                head.dx = op
                ops.append(op)
            elif isinstance(op, G.LinearBackwardWeightOp) and u.index == 1 and op.x is lin.x and as_linear \
                    and head.dw is None:
                head.dw = op
                ops.append(op)
            elif isinstance(op, R.SumOp) and head.db is None and head.bias is not None \
                    and sorted(a % len(_shape(v)) for a in op.p.axes) == list(range(len(_shape(v)) - 1)) \
                    and sorted(ids[ids > 0].tolist()) == list(range(1, n_rows + 1)):
                head.db = op
                ops.append(op)
            else:
                return False
    if head.dw is not None:
        uses = list(head.dw.result.uses)
        sgd = uses[0].operation if len(uses) == 1 else None
        if isinstance(sgd, O.SgdOp) and uses[0].index == 1 and sgd.p.momentum and not sgd.p.nesterov \
                and sgd.operands[0] is not head.dw.result and sgd.parent_block() is lin.parent_block():
            head.sgd = sgd  # the weight gradient accumulates straight into the momentum buffer
            ops.append(sgd)
    return True


def _hoist(op: Operation, at: Operation, block: Block, group: set[Operation]) -> bool:
    """Move `op` (and what it needs) above `at` where that keeps the meaning: a pure op, or a
    train.get with no train.set of its parameter in between, that needs nothing from `group`."""
    index = block.get_operation_index
    if op in group:
        return False
    if index(op) < index(at):
        return True
    if isinstance(op, GetOp):
        name = op.param.root_reference.data
        between = list(block.ops)[index(at):index(op)]
        if any(isinstance(o, SetOp) and o.param.root_reference.data == name for o in between):
            return False
    elif op.regions or not is_side_effect_free(op):
        return False
    for v in op.operands:
        if isinstance(v.owner, Operation) and not _hoist(v.owner, at, block, group):
            return False
    op.detach()
    block.insert_op_before(op, at)
    return True


def fuse_heads(block: Block, min_bytes: int = HEAD_BYTES) -> int:
    """Big-vocabulary linear + cross-entropy (+ backward) → one `linear_cross_entropy`
    group, placed before the first op that reads one of its results."""
    n = 0
    for ce in [op for op in block.ops if isinstance(op, Lo.CrossEntropyOp)]:
        head = match_head(ce, min_bytes)
        if head is None or any(o.parent_block() is not block for o in head.ops):
            continue
        members = set(head.ops)
        users = [block.find_ancestor_op_in_block(u.operation) for op in head.ops for r in op.results
                 for u in r.uses if u.operation not in members]
        at = min(users, key=block.get_operation_index) if users else None
        if at is not None:
            inputs = [v.owner for op in head.ops for v in op.operands
                      if isinstance(v.owner, Operation) and v.owner not in members]
            if not all(_hoist(o, at, block, members) for o in inputs):
                continue
        make_fused(head.ops, "linear_cross_entropy", before=at)
        n += 1
    return n


VIEWS = (S.ReshapeOp, S.TransposeOp, S.SliceOp)  # new names for the same bytes (no kernel)
RECOMPUTE_BYTES = 1 << 16  # smaller values are not worth a second computation


def _late_uses(v: SSAValue, index: dict, boundary: int, path: tuple = ()):
    """(views, use): each use of `v` after `boundary` by an op that computes, reached
    through a chain of view ops (which cost nothing and keep `v`'s bytes alive); the use is
    None for one inside a region (which cannot take a recomputed copy)."""
    for u in v.uses:
        op = u.operation
        if op not in index:
            yield path, None
        elif isinstance(op, VIEWS):
            yield from _late_uses(op.results[0], index, boundary, (*path, op))
        elif index[op] > boundary:
            yield path, u


def recompute_in_backward(block: Block) -> int:
    """Recompute an elementwise value (silu(gate), a masked softmax) right before each of
    its uses in the backward instead of keeping it from the forward, when its inputs are
    kept for the backward anyway (read at or after its last use there): its bytes are free
    from its last forward use on, and the copy fuses into the backward loop that reads it
    (or lives for that one step). Returns how many values are recomputed."""
    ret = block.last_op
    if not isinstance(ret, func.ReturnOp) or not ret.operands or not isinstance(ret.operands[0].owner, Operation):
        return 0
    index = {op: i for i, op in enumerate(block.ops)}
    boundary = index.get(block.find_ancestor_op_in_block(ret.operands[0].owner), -1)
    at = lambda u: index.get(block.find_ancestor_op_in_block(u.operation), -1)
    updated = {op.param.root_reference.data for op in block.ops if isinstance(op, SetOp)}
    free = lambda a: not isinstance(a.owner, Operation) or isinstance(a.owner, ConstantOp) or (
        isinstance(a.owner, GetOp) and a.owner.param.root_reference.data not in updated)
    n = 0
    for op in list(block.ops)[:max(boundary, 0)]:
        if not isinstance(op, tuple(E.OPS)) or len(op.results) != 1 or \
                math.prod(_shape(op.results[0])) * 4 < RECOMPUTE_BYTES:
            continue
        late = list(_late_uses(op.results[0], index, boundary))
        if not late or any(u is None for _, u in late):
            continue
        last = max(index[u.operation] for _, u in late)
        if not all(free(a) or any(at(u) >= last for u in a.uses) for a in op.operands):
            continue
        for views, u in late:
            value = op.results[0]
            for src in (op, *views):
                copy = src.clone()
                if src is not op:
                    copy.operands[0] = value
                block.insert_op_before(copy, u.operation)
                value = copy.results[0]
            u.operation.operands[u.index] = value
        for view in reversed([v for views, _ in late for v in views]):
            if view.parent is not None and not view.results[0].uses:
                view.detach()
                view.erase()
        n += 1
    return n


def fuse_elementwise(block: Block, epilogues: bool = True) -> dict[str, int]:
    """Greedy grouping in program order; returns the number of groups made of each kind.
    With `epilogues`, a contraction starts a group over its output's shape that the
    elementwise ops reading its result join (at most one contraction per group)."""
    ops = list(block.ops)
    pos = {op: i for i, op in enumerate(ops)}
    group_of: dict[Operation, int] = {}
    groups: dict[int, list[Operation]] = {}
    domain: dict[int, tuple[int, ...]] = {}
    hosts: set[int] = set()  # groups that hold a contraction
    next_id = 0

    def can_join(gids: set[int], op: Operation) -> bool:
        members = {m for g in gids for m in groups[g]} | {op}
        if len(gids & hosts) > 1:
            return False
        # an epilogue runs after its contraction: the contraction may not read the group's own work
        # (a residual `conv(h) + h` whose h is an elementwise group would merge with it otherwise)
        if any(v.owner in members for m in members if isinstance(m, CONTRACTIONS) for v in m.operands):
            return False
        return all(u.operation in members or pos.get(u.operation, -1) > pos[op]
                   for m in members - {op} for r in m.results for u in r.uses)

    for op in ops:
        host = epilogue_domain(op) if epilogues else None
        if host is not None:  # a contraction only starts a group: its inputs come from before
            groups[next_id], domain[next_id], group_of[op] = [op], host, next_id
            hosts.add(next_id)
            next_id += 1
            continue
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
                if g in hosts:
                    hosts.discard(g)
                    hosts.add(keep)
            groups[keep].append(op)
            groups[keep].sort(key=pos.__getitem__)
            for m in groups[keep]:
                group_of[m] = keep
        else:
            groups[next_id], domain[next_id], group_of[op] = [op], dom, next_id
            next_id += 1
    made = {"epilogue": 0, "elementwise": 0}
    for gid, g in groups.items():
        kind = "epilogue" if gid in hosts else "elementwise"
        if len(g) > 1:
            make_fused(g, kind, before=_epilogue_place(g) if kind == "epilogue" else None)
            made[kind] += 1
    return made


def _epilogue_place(group: list[Operation]) -> Operation:
    """Where an epilogue group goes: right after its contraction, or after the last op
    between it and the group's end that defines one of the group's inputs. Kept at its
    contraction, a backward product (dx = dy·W) still runs before W's update, as
    operator-reordering placed it, rather than moving down to its mask and needing a copy
    of the old weight."""
    members = set(group)
    needed = {v.owner for op in group for v in op.operands if isinstance(v.owner, Operation) and v.owner not in members}
    host = next(op for op in group if isinstance(op, CONTRACTIONS))
    at, op = host, host.next_op
    while op is not None and op is not group[-1]:
        if op in needed:
            at = op
        op = op.next_op
    return at.next_op


def fuse(module: ModuleOp, updates: bool = True, elementwise: bool = True,
         head_bytes: int | None = HEAD_BYTES, recompute: bool = True, epilogues: bool = True) -> dict[str, int]:
    counts = {"linear_cross_entropy": 0, "recomputed": 0, "update": 0, "elementwise": 0, "epilogue": 0}
    for fn in module.ops:
        if not isinstance(fn, func.FuncOp):
            continue
        block = fn.body.block
        if head_bytes is not None and head_bytes >= 0:
            counts["linear_cross_entropy"] += fuse_heads(block, head_bytes)
        if recompute and elementwise:
            counts["recomputed"] += recompute_in_backward(block)
        if updates:
            counts["update"] += fuse_updates(block)
        if elementwise:
            for kind, n in fuse_elementwise(block, epilogues).items():
                counts[kind] += n
    return counts


@dataclass(frozen=True)
class Fusion(ModulePass):
    """Group elementwise chains (one loop nest each), contractions with the elementwise
    work on their output (GEMM epilogues) and weight-gradient + SGD pairs (the gradient
    accumulates straight into the optimizer buffer) into train.fused ops.

    updates: make gradient+update groups;  elementwise: make elementwise groups;
    epilogues: a linear, matmul or conv2d runs the elementwise group that reads its result
    as its GEMM's epilogue, block by block (with elementwise);
    head_bytes: chunk a linear + cross-entropy head whose logits take at least this many
    bytes (-1: never);  recompute: recompute elementwise values in the backward rather
    than keep them, where their inputs are kept anyway."""

    name = "fusion"

    updates: bool = True
    elementwise: bool = True
    head_bytes: int = HEAD_BYTES
    recompute: bool = True
    epilogues: bool = True

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        fuse(op, self.updates, self.elementwise, self.head_bytes, self.recompute, self.epilogues)
