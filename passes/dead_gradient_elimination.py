"""`dead-gradient-elimination`: keep exactly what lies on a path from the loss to an update.

After `sparse-backprop` most of the backward pass of a fine-tuning step feeds nothing: frozen
weights lost their updates, and a channel-ratio update reads only a slice of its gradient.
This pass

1. pushes channel slices of gradients towards the activations they come from, so that only
   the channels an update reads are computed and kept alive:

       slice(conv2d_backward_weight(x, dy), axis 1, :k)  →  conv2d_backward_weight(slice(x, axis 1, :k), dy)
       slice(conv2d_backward_weight(x, dy), axis 0, :k)  →  conv2d_backward_weight(x[:, :k], dy[:, :k], groups = k)   (depthwise)
       slice(linear_backward_weight(x, dy), axis 1, :k)  →  linear_backward_weight(slice(x, axis -1, :k), dy)
       slice(conv2d_backward_input(dy, w), axis 1, :k)   →  conv2d_backward_input(dy, slice(w, axis 1, :k))
       slice(matmul(a, b)) / slice(transpose(a)) / slice(sum(a)) / slice(a ∘ b)  →  the same op on slices

   (each only when the slice is the value's one use, so nothing is computed twice);
2. erases every op whose results no update, state write or return needs (the walk from the
   updates back), so backpropagation stops at the earliest layer that still needs a gradient;
3. moves each slice of a forward value right after that value is produced, so the full
   activation dies in the forward pass and only the slice is saved for backward.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from pockengine.ir import types as T
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import grad as G
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import reduce as R
from pockengine.ir.ops.shape import SliceOp, TransposeOp
from pockengine.ir.ops.state import ConstantOp, GetOp, SetOp, SetSliceOp
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Block, Operation, SSAValue
from xdsl.passes import ModulePass
from xdsl.pattern_rewriter import (
    GreedyRewritePatternApplier,
    PatternRewriter,
    PatternRewriteWalker,
    RewritePattern,
    op_type_rewrite_pattern,
)
from xdsl.rewriter import InsertPoint, Rewriter
from xdsl.transforms.dead_code_elimination import dce

# elementwise ops a channel slice commutes with
SLICEABLE_ELEMENTWISE = (*E.UNARY_OPS, *E.BINARY_OPS, E.WhereOp)


def channel_slice(op: SliceOp) -> tuple[int, int, int] | None:
    """(axis, start, end) of a unit-step slice along one axis, else None."""
    p = op.p
    if len(p.axes) != 1 or p.steps[0] != 1:
        return None
    return p.axes[0], p.starts[0], p.ends[0]


def cutter(before: Operation, rewriter: PatternRewriter) -> Callable[[SSAValue, int, int, int], SSAValue]:
    """cut(v, axis, start, end) inserts `v[.., start:end, ..]` before `before` (a full range is `v`)."""

    def cut(v: SSAValue, axis: int, start: int, end: int) -> SSAValue:
        if start == 0 and end == T.shape(v)[axis]:
            return v
        sliced = SliceOp.build(v, axes=[axis], starts=[start], ends=[end])
        return rewriter.insert(sliced, InsertPoint.before(before)).result

    return cut


def _only_use(op: SliceOp) -> Operation | None:
    """The op producing the sliced value, when this slice is its result's one use."""
    src = op.x.owner
    if isinstance(src, Operation) and len(src.results) == 1 and src.results[0].has_one_use():
        return src
    return None


def _geometry(p) -> dict:
    return {"stride": list(p.stride), "padding": list(p.padding), "dilation": list(p.dilation)}


class SliceConvGrad(RewritePattern):
    """A channel slice of a conv gradient computes those channels alone. Dense convs: input
    channels of dw read the same channels of x, those of dx the same channels of w. Depthwise
    convs (channel c reads only x[:, c]): dy and x (for dw) or w (for dx) on those channels."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: SliceOp, rewriter: PatternRewriter) -> None:
        src, sl = _only_use(op), channel_slice(op)
        if not isinstance(src, (G.Conv2dBackwardWeightOp, G.Conv2dBackwardInputOp)) or sl is None:
            return
        axis, s, e = sl
        p, dy, cut = src.p, src.dy, cutter(op, rewriter)
        for_weight = isinstance(src, G.Conv2dBackwardWeightOp)  # dw(x, dy) [O, C, ..]; dx(dy, w) [N, C, ..]
        if for_weight:
            other, depthwise_axis, props = src.x, 0, {"kernel": list(p.kernel)}
        else:
            other, depthwise_axis, props = src.weight, 1, {"input_size": list(p.input_size)}
        in_channels = T.shape(src.x if for_weight else op.x)[1]
        if axis == 1 and p.groups == 1:
            other, groups = cut(other, 1, s, e), 1
        elif axis == depthwise_axis and p.groups == in_channels == T.shape(dy)[1]:
            other, dy, groups = cut(other, 1 - depthwise_axis, s, e), cut(dy, 1, s, e), e - s
        else:
            return
        operands = (other, dy) if for_weight else (dy, other)
        rewriter.replace(op, type(src).build(*operands, groups=groups, **_geometry(p), **props))


class SliceLinearWeightGrad(RewritePattern):
    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: SliceOp, rewriter: PatternRewriter) -> None:
        src, sl = _only_use(op), channel_slice(op)
        if not isinstance(src, G.LinearBackwardWeightOp) or sl is None:
            return
        axis, s, e = sl
        cut = cutter(op, rewriter)
        if axis == 1:
            x = cut(src.x, len(T.shape(src.x)) - 1, s, e)
            rewriter.replace(op, G.LinearBackwardWeightOp.build(x, src.dy))
        else:  # output rows: slice dy instead
            dy = cut(src.dy, len(T.shape(src.dy)) - 1, s, e)
            rewriter.replace(op, G.LinearBackwardWeightOp.build(src.x, dy))


class SliceThroughOps(RewritePattern):
    """slice(f(a, b)) → f(slice(a), slice(b)) for matmul, transpose, sum and elementwise ops."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: SliceOp, rewriter: PatternRewriter) -> None:
        src, sl = _only_use(op), channel_slice(op)
        if src is None or sl is None:
            return
        axis, s, e = sl
        cut = cutter(op, rewriter)
        rank = len(T.shape(src.results[0]))
        if isinstance(src, TransposeOp):
            new = TransposeOp.build(cut(src.x, src.p.perm[axis], s, e), perm=list(src.p.perm))
        elif isinstance(src, L.MatmulOp) and axis >= rank - 2:
            a, b = src.lhs, src.rhs
            if axis == rank - 2 and len(T.shape(a)) >= 2:
                a = cut(a, len(T.shape(a)) - 2, s, e)
            elif axis == rank - 1:
                b = cut(b, len(T.shape(b)) - 1, s, e)
            else:
                return
            new = L.MatmulOp.build(a, b)
        elif isinstance(src, R.SumOp):
            kept = [i for i in range(len(T.shape(src.x))) if i not in T.norm_axes(src.p.axes, len(T.shape(src.x)))]
            in_axis = axis if src.p.keepdims else kept[axis]
            new = R.SumOp.build(cut(src.x, in_axis, s, e), axes=list(src.p.axes), keepdims=src.p.keepdims)
        elif isinstance(src, SLICEABLE_ELEMENTWISE):
            operands = [_broadcast_cut(cut, v, rank, axis, s, e) for v in src.operands]
            new = type(src).create(operands=operands, result_types=[op.result.type],
                                   properties=dict(src.properties), attributes=dict(src.attributes))
        else:
            return
        rewriter.replace(op, new)


def _broadcast_cut(cut, v: SSAValue, rank: int, axis: int, s: int, e: int) -> SSAValue:
    """Slice an operand of a broadcasting op along the result axis, unless it is broadcast there."""
    shape = T.shape(v)
    a = axis - (rank - len(shape))
    if a < 0 or shape[a] == 1:
        return v
    return cut(v, a, s, e)


def _numel(v: SSAValue) -> int:
    return math.prod(T.shape(v))


def forward_end(block: Block) -> Operation | None:
    """The loss of a training step (the op defining the returned value), else None."""
    ret = block.last_op
    if not isinstance(ret, func.ReturnOp) or len(ret.operands) != 1 or \
            not any(isinstance(op, (SetOp, SetSliceOp)) for op in block.ops):
        return None
    owner = ret.operands[0].owner
    return owner if isinstance(owner, Operation) and owner.parent is block else None


def merge_slices(block: Block) -> None:
    """Identical slices of one value become one."""
    seen: dict[tuple, SliceOp] = {}
    for op in list(block.ops):
        if isinstance(op, SliceOp):
            key = (op.x, op.result.type, tuple(sorted((k, str(v)) for k, v in op.properties.items())))
            if key in seen:
                op.result.replace_all_uses_with(seen[key].result)
                Rewriter.erase_op(op)
            else:
                seen[key] = op


MASK_OPS = (E.EqOp, E.NeOp, E.LtOp, E.LeOp, E.GtOp, E.GeOp, E.AndOp, E.OrOp, E.LogicalNotOp)


def move_to_forward(block: Block) -> None:
    """Compute in the forward part what backward derives from an activation alone — channel
    slices for ratio updates and boolean masks for ReLU/ReLU6/clamp gradients — right after
    the activation is produced, when that lets the full float tensor die in the forward part:
    only the slice (or 1 byte per element of mask) is then saved for backward. Each connected
    group of such ops moves only if it saves fewer bytes than it frees."""
    loss = forward_end(block)
    if loss is None:
        return
    position = {op: i for i, op in enumerate(block.ops)}
    boundary = position[loss]

    def early(v: SSAValue) -> bool:
        return not isinstance(v.owner, Operation) or position[v.owner] <= boundary

    movable: list[Operation] = []
    for op in block.ops:
        if position[op] <= boundary or not isinstance(op, (SliceOp, *MASK_OPS)):
            continue
        if isinstance(op, SliceOp) and isinstance(op.x.owner, GetOp):
            continue  # a parameter, not an activation: leave it by its update
        if all(early(v) or isinstance(v.owner, ConstantOp) or v.owner in movable for v in op.operands):
            movable.append(op)
    for group in _connected(movable, lambda v: early(v) and not isinstance(v.owner, ConstantOp)):
        inputs = {v for op in group for v in op.operands if early(v)}
        freed = [v for v in inputs if all(u.operation in group or position[u.operation] <= boundary for u in v.uses)]
        kept = [r for op in group for r in op.results if any(u.operation not in group for u in r.uses)]
        if not inputs or sum(_bytes(v) for v in kept) >= sum(_bytes(v) for v in freed):
            continue
        last = max((v.owner for v in inputs if isinstance(v.owner, Operation)), key=position.get, default=None)
        at = InsertPoint.after(last) if last is not None else InsertPoint.at_start(block)
        for op in group:
            for i, v in enumerate(op.operands):
                if isinstance(v.owner, ConstantOp) and not early(v):  # constants go along (copied if shared)
                    alone = all(u.operation in group for u in v.uses)
                    const = v.owner if alone else v.owner.clone()
                    if alone:
                        const.detach()
                    Rewriter.insert_op(const, at)
                    at = InsertPoint.after(const)
                    op.operands[i] = const.result
            op.detach()
            Rewriter.insert_op(op, at)
            at = InsertPoint.after(op)


def _connected(ops: list[Operation], shared: Callable[[SSAValue], bool]) -> list[list[Operation]]:
    """Groups of ops linked by def-use edges or by reading the same `shared` value, each in
    the original order (union-find over the ops)."""
    parent = {op: op for op in ops}

    def root(op):
        while parent[op] is not op:
            parent[op] = parent[parent[op]]
            op = parent[op]
        return op

    reader: dict[SSAValue, Operation] = {}
    for op in ops:
        for v in op.operands:
            if v.owner in parent:
                parent[root(v.owner)] = root(op)
            elif shared(v):
                if v in reader:
                    parent[root(reader[v])] = root(op)
                reader[v] = op
    groups: dict[Operation, list[Operation]] = {}
    for op in ops:
        groups.setdefault(root(op), []).append(op)
    return list(groups.values())


def _bytes(v: SSAValue) -> int:
    width = getattr(T.element(v), "bitwidth", 32)
    return _numel(v) * max(width, 8) // 8


def dead_gradient_elimination(module: ModuleOp) -> None:
    patterns = [SliceConvGrad(), SliceLinearWeightGrad(), SliceThroughOps()]
    PatternRewriteWalker(GreedyRewritePatternApplier(patterns), apply_recursively=True).rewrite_module(module)
    dce(module)
    for fn in module.ops:
        if isinstance(fn, func.FuncOp) and fn.body.blocks:
            merge_slices(fn.body.block)
            move_to_forward(fn.body.block)


@dataclass(frozen=True)
class DeadGradientElimination(ModulePass):
    """Drop gradients and saved activations no update needs; slice activations for ratio updates."""

    name = "dead-gradient-elimination"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        dead_gradient_elimination(op)
