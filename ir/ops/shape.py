"""Data movement: reshape, transpose, broadcast, slice, concat, gather.

squeeze/unsqueeze/view/flatten are all `train.reshape`; permute is `train.transpose`;
expand is `train.broadcast`; select is a slice plus a reshape.
"""

from __future__ import annotations

import math

from xdsl.dialects.builtin import IntegerType, TensorType
from xdsl.irdl import irdl_op_definition, operand_def, result_def, traits_def, var_operand_def
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern, op_type_rewrite_pattern
from xdsl.traits import HasCanonicalizationPatternsTrait, Pure
from xdsl.utils.exceptions import VerifyException

from .. import types as T
from ..base import TrainOp, int_prop, ints_prop


class ShapeCanonicalization(HasCanonicalizationPatternsTrait):
    """reshape, transpose and broadcast: drop no-ops, compose chains (patterns at the end)."""

    @classmethod
    def get_canonicalization_patterns(cls):
        return (ComposeReshapes(), ComposeTransposes(), ComposeBroadcasts(), RemoveNoOpMove())


@irdl_op_definition
class ReshapeOp(TrainOp):
    """Same elements, new shape (row-major). `shape` may hold one -1 on building."""

    name = "train.reshape"
    traits = traits_def(Pure(), ShapeCanonicalization())
    x = operand_def(TensorType)
    result = result_def(TensorType)
    shape = ints_prop()

    @classmethod
    def build(cls, x, shape):
        shape = list(shape)
        if shape.count(-1) == 1:
            known = math.prod(d for d in shape if d != -1)
            shape[shape.index(-1)] = math.prod(T.shape(x)) // max(known, 1)
        return super().build(x, shape=shape)

    @classmethod
    def infer(cls, types, p):
        xs, s = T.shape(types[0]), p.shape
        if min(s, default=0) < 0 or math.prod(s) != math.prod(xs):
            raise VerifyException(f"cannot reshape {T.fmt(xs)} to {list(s)}")
        return [T.tensor(s, T.element(types[0]))]


@irdl_op_definition
class TransposeOp(TrainOp):
    """y = x.transpose(perm) (numpy semantics; covers permute)."""

    name = "train.transpose"
    traits = traits_def(Pure(), ShapeCanonicalization())
    x = operand_def(TensorType)
    result = result_def(TensorType)
    perm = ints_prop()

    @classmethod
    def infer(cls, types, p):
        xs, perm = T.shape(types[0]), p.perm
        if sorted(perm) != list(range(len(xs))):
            raise VerifyException(f"perm {list(perm)} is not a permutation of rank {len(xs)}")
        return [T.tensor([xs[i] for i in perm], T.element(types[0]))]


@irdl_op_definition
class BroadcastOp(TrainOp):
    """y = broadcast_to(x, shape) (numpy rules; covers expand)."""

    name = "train.broadcast"
    traits = traits_def(Pure(), ShapeCanonicalization())
    x = operand_def(TensorType)
    result = result_def(TensorType)
    shape = ints_prop()

    @classmethod
    def infer(cls, types, p):
        xs, s = T.shape(types[0]), tuple(p.shape)
        if T.broadcast(xs, s) != s:
            raise VerifyException(f"cannot broadcast {T.fmt(xs)} to {T.fmt(s)}")
        return [T.tensor(s, T.element(types[0]))]


@irdl_op_definition
class SliceOp(TrainOp):
    """y = x[starts:ends:steps] along `axes`, bounds already clamped, steps > 0."""

    name = "train.slice"
    x = operand_def(TensorType)
    result = result_def(TensorType)
    axes = ints_prop()
    starts = ints_prop()
    ends = ints_prop()
    steps = ints_prop()

    @classmethod
    def build(cls, x, *, axes, starts, ends, steps=None):
        """Python-style bounds (negative, past the end) are normalized here, like PyTorch/ONNX."""
        xs = T.shape(x)
        axes = [T.norm_axis(a, len(xs)) for a in axes]
        steps = list(steps or [1] * len(axes))
        st, en = [], []
        for a, s, e, k in zip(axes, starts, ends, steps, strict=True):
            if k <= 0:
                raise VerifyException(f"slice steps must be positive, got {k}")
            s, e, _ = slice(s, e, k).indices(xs[a])
            st.append(s)
            en.append(max(e, s))
        return super().build(x, axes=axes, starts=st, ends=en, steps=steps)

    @classmethod
    def infer(cls, types, p):
        xs = list(T.shape(types[0]))
        if not len(p.axes) == len(p.starts) == len(p.ends) == len(p.steps):
            raise VerifyException("axes, starts, ends and steps differ in length")
        T.norm_axes(p.axes, len(xs))  # no repeats
        for a, s, e, k in zip([T.norm_axis(a, len(xs)) for a in p.axes], p.starts, p.ends, p.steps):
            if k <= 0 or not 0 <= s <= e <= xs[a]:
                raise VerifyException(f"slice [{s}:{e}:{k}] out of bounds for dim {a} of size {xs[a]}")
            xs[a] = -(-(e - s) // k)
        return [T.tensor(xs, T.element(types[0]))]


@irdl_op_definition
class ConcatOp(TrainOp):
    """y = concatenate(inputs, axis)."""

    name = "train.concat"
    inputs = var_operand_def(TensorType)
    result = result_def(TensorType)
    axis = int_prop()

    @classmethod
    def infer(cls, types, p):
        if not types:
            raise VerifyException("needs at least one input")
        shapes = [T.shape(t) for t in types]
        ax = T.norm_axis(p.axis, len(shapes[0]))
        for s, t in zip(shapes, types):
            if len(s) != len(shapes[0]) or any(a != b for i, (a, b) in enumerate(zip(s, shapes[0])) if i != ax):
                raise VerifyException(f"shapes {', '.join(T.fmt(x) for x in shapes)} differ off axis {ax}")
            if T.element(t) != T.element(types[0]):
                raise VerifyException("inputs differ in element type")
        out = list(shapes[0])
        out[ax] = sum(s[ax] for s in shapes)
        return [T.tensor(out, T.element(types[0]))]


@irdl_op_definition
class GatherOp(TrainOp):
    """y = take(x, indices, axis): embedding lookup when x is the table and axis = 0.

    Indices are integers; negative ones count from the end (numpy/ONNX). With
    `padding_idx >= 0` (PyTorch's embedding) the VJP leaves that row of x without gradient.
    """

    name = "train.gather"
    x = operand_def(TensorType)
    indices = operand_def(TensorType)
    result = result_def(TensorType)
    axis = int_prop(0)
    # PyTorch nn.Embedding: this row of the table gets no gradient (-1: none); forward unchanged
    padding_idx = int_prop(-1)

    @classmethod
    def infer(cls, types, p):
        xs, idx = T.shape(types[0]), T.shape(types[1])
        if not isinstance(T.element(types[1]), IntegerType):
            raise VerifyException(f"indices must be integers, got {types[1]}")
        ax = T.norm_axis(p.axis, len(xs))
        return [T.tensor((*xs[:ax], *idx, *xs[ax + 1:]), T.element(types[0]))]


@irdl_op_definition
class GatherElementsOp(TrainOp):
    """y[i_0, .., i_r] = x[i_0, .., indices[i_0, .., i_r], .., i_r] with the index on `axis`
    (torch.gather, ONNX GatherElements). indices have x's rank and y has their shape; off the
    axis they may be shorter than x (PyTorch), never longer.
    """

    name = "train.gather_elements"
    x = operand_def(TensorType)
    indices = operand_def(TensorType)
    result = result_def(TensorType)
    axis = int_prop(0)

    @classmethod
    def infer(cls, types, p):
        xs, idx = T.shape(types[0]), T.shape(types[1])
        if not isinstance(T.element(types[1]), IntegerType):
            raise VerifyException(f"indices must be integers, got {types[1]}")
        ax = T.norm_axis(p.axis, len(xs))
        if len(idx) != len(xs) or any(i > d for a, (i, d) in enumerate(zip(idx, xs)) if a != ax):
            raise VerifyException(f"indices {T.fmt(idx)} do not fit input {T.fmt(xs)} off axis {ax}")
        return [T.tensor(idx, T.element(types[0]))]


OPS = [ReshapeOp, TransposeOp, BroadcastOp, SliceOp, ConcatOp, GatherOp, GatherElementsOp]


# --- canonicalization -----------------------------------------------------------------


class RemoveNoOpMove(RewritePattern):
    """A reshape or broadcast to the operand's own shape, or a transpose by the identity
    permutation, is its operand: `%y = train.reshape %x {shape = [2, 3]} : tensor<2x3xf32>` → %x."""

    def match_and_rewrite(self, op, rewriter: PatternRewriter, /):
        if isinstance(op, TransposeOp):
            no_op = list(op.p.perm) == list(range(len(op.p.perm)))
        else:
            no_op = isinstance(op, (ReshapeOp, BroadcastOp)) and op.x.type == op.result.type
        if no_op:
            rewriter.replace(op, [], [op.x])


class ComposeReshapes(RewritePattern):
    """reshape(reshape(x, s1), s2) → reshape(x, s2): only the last shape matters."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: ReshapeOp, rewriter: PatternRewriter, /):
        if isinstance(inner := op.x.owner, ReshapeOp):
            rewriter.replace(op, ReshapeOp.build(inner.x, op.p.shape))


class ComposeTransposes(RewritePattern):
    """transpose(transpose(x, p1), p2) → transpose(x, c) with c[j] = p1[p2[j]] (and then x
    itself when c is the identity)."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: TransposeOp, rewriter: PatternRewriter, /):
        if isinstance(inner := op.x.owner, TransposeOp):
            p1 = inner.p.perm
            rewriter.replace(op, TransposeOp.build(inner.x, perm=[p1[j] for j in op.p.perm]))


class ComposeBroadcasts(RewritePattern):
    """broadcast(broadcast(x, s1), s2) → broadcast(x, s2): broadcasting is transitive."""

    @op_type_rewrite_pattern
    def match_and_rewrite(self, op: BroadcastOp, rewriter: PatternRewriter, /):
        if isinstance(inner := op.x.owner, BroadcastOp):
            rewriter.replace(op, BroadcastOp.build(inner.x, shape=op.p.shape))
