"""slice-propagation: compute only the rows a slice keeps.

A classifier on BERT's [CLS] token reads `hidden[:, 0]` of the last layer; every other token's
row of that layer is computed and thrown away. This pass moves a single-axis `train.slice`
up through the ops that act on that axis row by row, so they run on the kept rows alone:

    %h = train.linear %x, %w : (tensor<8x128x256xf32>, ...) -> tensor<8x128x1024xf32>
    %g = train.gelu %h
    %s = train.slice %g {axes = [1], starts = [0], ends = [1]}
  becomes
    %xs = train.slice %x {axes = [1], starts = [0], ends = [1]}
    %h = train.linear %xs, %w : (tensor<8x1x256xf32>, ...) -> tensor<8x1x1024xf32>
    %s = train.gelu %h

Through attention the slice reaches the query rows (the scores' rows, the softmax, the
probabilities times V) while keys and values keep every token. It moves only past an op
whose result has no other use, so nothing is computed twice; it stops at parameters,
function arguments and shared values. Run it on @forward before autodiff: the training step
derived from the smaller forward is smaller too (BERT with a [CLS] head: the last layer's
FFN, attention output and query projection run on one token of 128).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pockengine.ir import types as T
from pockengine.ir.ops import elementwise as E
from pockengine.ir.ops import linalg as L
from pockengine.ir.ops import norm as N
from pockengine.ir.ops import reduce as R
from pockengine.ir.ops import shape as S
from pockengine.ir.ops.state import ConstantOp
from xdsl.context import Context
from xdsl.dialects import func
from xdsl.dialects.builtin import ModuleOp
from xdsl.ir import Operation, SSAValue
from xdsl.passes import ModulePass

Cut = tuple[int, int, int, int]  # axis, start, end, step


def _slice(v: SSAValue, axis: int, cut: Cut, before: Operation) -> SSAValue:
    """v sliced on `axis` like `cut`, inserted before `before` (constants are sliced in place)."""
    _, start, end, step = cut
    owner = v.owner
    if isinstance(owner, ConstantOp):
        idx = [slice(None)] * len(T.shape(v))
        idx[axis] = slice(start, end, step)
        arr = owner.array()[tuple(idx)]
        new = ConstantOp.from_array(arr, T.element(v))
    else:
        new = S.SliceOp.build(v, axes=[axis], starts=[start], ends=[end], steps=[step])
    before.parent_block().insert_op_before(new, before)
    return new.results[0]


def operand_axes(op: Operation, axis: int) -> list[int | None] | None:
    """For each operand, the axis that result axis `axis` reads (None: not sliced), or None
    when the op does not act row by row along that axis."""
    out = T.shape(op.results[0])
    rank = len(out)
    if isinstance(op, (*E.UNARY_OPS, *E.BINARY_OPS, E.WhereOp)):
        axes = []
        for v in op.operands:
            s = T.shape(v)
            j = axis - (rank - len(s))
            axes.append(j if j >= 0 and s[j] == out[axis] and s[j] != 1 else None)
        return axes
    if isinstance(op, L.LinearOp):
        return [axis, None] if axis < rank - 1 else None
    if isinstance(op, (N.LayerNormOp, N.RmsNormOp)):
        return [axis] + [None] * (len(op.operands) - 1) if axis < op.p.axis % rank else None
    if isinstance(op, (R.SoftmaxOp, R.LogSoftmaxOp)):
        return [axis] if axis != op.p.axis % rank else None
    if isinstance(op, L.MatmulOp):
        a, b = (T.shape(v) for v in op.operands)
        if axis == rank - 2:
            return [len(a) - 2, None]
        if axis == rank - 1:
            return [None, len(b) - 1]
        ja, jb = axis - (rank - len(a)), axis - (rank - len(b))
        return [ja if ja >= 0 and a[ja] == out[axis] != 1 else None, jb if jb >= 0 and b[jb] == out[axis] != 1 else None]
    if isinstance(op, S.TransposeOp):
        return [op.p.perm[axis]]
    if isinstance(op, S.ReshapeOp):
        src = T.shape(op.operands[0])
        before = math.prod(out[:axis])
        for j, d in enumerate(src):
            if d == out[axis] and math.prod(src[:j]) == before:
                return [j]
        return None
    if isinstance(op, (R.SumOp, R.MeanOp, R.MaxOp, R.AnyOp)):
        src_rank = len(T.shape(op.operands[0]))
        red = set(T.norm_axes(op.p.axes, src_rank))
        kept = [j for j in range(src_rank) if op.p.keepdims or j not in red]
        j = kept[axis]
        return None if j in red else [j]
    return None


def rebuild(op: Operation, operands: list[SSAValue], axis: int, size: int) -> Operation:
    """op on sliced operands (result axis `axis` now has `size`)."""
    if isinstance(op, S.ReshapeOp):
        shape = list(T.shape(op.results[0]))
        shape[axis] = size
        return S.ReshapeOp.build(operands[0], shape)
    props = {k: v for k, v in op.properties.items()}
    return type(op).create(operands=operands, properties=props, attributes=dict(op.attributes),
                           result_types=type(op).infer([v.type for v in operands], op.p))


def push(sl: S.SliceOp) -> S.SliceOp | None:
    """Move one slice above its producer; returns the slice(s) to push next (one per sliced
    operand, the first returned), or None when it cannot move."""
    if len(sl.p.axes) != 1:
        return None
    src = sl.operands[0]
    op = src.owner
    if not isinstance(op, Operation) or len(op.results) != 1 or len(list(src.uses)) != 1:
        return None
    axis = sl.p.axes[0] % len(T.shape(src))
    axes = operand_axes(op, axis)
    if axes is None:
        return None
    cut = (axis, sl.p.starts[0], sl.p.ends[0], sl.p.steps[0])
    size = T.shape(sl.results[0])[axis]
    operands = [v if j is None else _slice(v, j, cut, op) for v, j in zip(op.operands, axes)]
    new = rebuild(op, operands, axis, size)
    op.parent_block().insert_op_before(new, op)
    new.results[0].name_hint = op.results[0].name_hint
    sl.results[0].replace_all_uses_with(new.results[0])
    sl.detach()
    sl.erase()
    op.detach()
    op.erase()
    return new


def propagate(fn: func.FuncOp) -> int:
    moved = 0
    todo = [op for op in fn.body.block.ops if isinstance(op, S.SliceOp)]
    while todo:
        sl = todo.pop()
        if sl.parent is None:
            continue
        new = push(sl)
        if new is None:
            continue
        moved += 1
        todo += [v.owner for v in new.operands if isinstance(v.owner, S.SliceOp)]
    return moved


@dataclass(frozen=True)
class SlicePropagation(ModulePass):
    """Move single-axis slices up through row-wise ops so they run on the kept rows only
    (BERT's [CLS] head: the last layer runs on one token). Use on @forward before autodiff.

    function: the function to rewrite."""

    name = "slice-propagation"

    function: str = "forward"

    def apply(self, ctx: Context, op: ModuleOp) -> None:
        for fn in op.ops:
            if isinstance(fn, func.FuncOp) and fn.sym_name.data == self.function:
                propagate(fn)
