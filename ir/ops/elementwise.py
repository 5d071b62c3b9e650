"""Elementwise ops: unary maps, broadcasting binary ops, comparisons, where, cast.

Binary ops broadcast numpy-style: `train.add %a, %b : (tensor<8x16xf32>, tensor<16xf32>) -> tensor<8x16xf32>`.
Scalars are rank-0 tensors (`tensor<f32>`). Semantics live in ir/interpreter/elementwise.py;
`canonicalize` folds ops on constants with those same semantics (FoldConstantElementwise).
"""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np
from xdsl.dialects.builtin import TensorType, i1
from xdsl.irdl import irdl_op_definition, operand_def, result_def, traits_def
from xdsl.pattern_rewriter import PatternRewriter, RewritePattern
from xdsl.traits import HasCanonicalizationPatternsTrait, Pure
from xdsl.utils.exceptions import VerifyException

from .. import types as T
from ..base import TrainOp, float_prop, str_prop
from .state import ConstantOp


class ElementwiseCanonicalization(HasCanonicalizationPatternsTrait):
    @classmethod
    def get_canonicalization_patterns(cls):
        return (FoldConstantElementwise(),)


class UnaryOp(TrainOp):
    """y = f(x), same shape and type."""

    traits = traits_def(Pure(), ElementwiseCanonicalization())
    x = operand_def(TensorType)
    result = result_def(TensorType)

    @classmethod
    def infer(cls, types, p):
        return [types[0]]


class FloatUnaryOp(UnaryOp):
    FLOAT_ONLY: ClassVar[bool] = True


@irdl_op_definition
class NegOp(UnaryOp):
    """y = -x"""

    name = "train.neg"
    ELEMENTS: ClassVar[str] = "numeric"


@irdl_op_definition
class AbsOp(UnaryOp):
    """y = |x|"""

    name = "train.abs"
    ELEMENTS: ClassVar[str] = "numeric"


@irdl_op_definition
class SqrtOp(FloatUnaryOp):
    """y = sqrt(x)"""

    name = "train.sqrt"


@irdl_op_definition
class RsqrtOp(FloatUnaryOp):
    """y = 1 / sqrt(x)"""

    name = "train.rsqrt"


@irdl_op_definition
class ReciprocalOp(FloatUnaryOp):
    """y = 1 / x"""

    name = "train.reciprocal"


@irdl_op_definition
class ExpOp(FloatUnaryOp):
    """y = e^x"""

    name = "train.exp"


@irdl_op_definition
class LogOp(FloatUnaryOp):
    """y = ln(x)"""

    name = "train.log"


@irdl_op_definition
class TanhOp(FloatUnaryOp):
    """y = tanh(x)"""

    name = "train.tanh"


@irdl_op_definition
class SinOp(FloatUnaryOp):
    """y = sin(x)"""

    name = "train.sin"


@irdl_op_definition
class CosOp(FloatUnaryOp):
    """y = cos(x)"""

    name = "train.cos"


@irdl_op_definition
class ErfOp(FloatUnaryOp):
    """y = erf(x)"""

    name = "train.erf"


@irdl_op_definition
class SigmoidOp(FloatUnaryOp):
    """y = 1 / (1 + e^-x)"""

    name = "train.sigmoid"


@irdl_op_definition
class ReluOp(FloatUnaryOp):
    """y = max(x, 0)"""

    name = "train.relu"


@irdl_op_definition
class Relu6Op(FloatUnaryOp):
    """y = min(max(x, 0), 6)"""

    name = "train.relu6"


@irdl_op_definition
class SiluOp(FloatUnaryOp):
    """y = x * sigmoid(x)"""

    name = "train.silu"


@irdl_op_definition
class GeluOp(FloatUnaryOp):
    """y = x * Φ(x); approximate = "none" (erf form) or "tanh"."""

    name = "train.gelu"
    approximate = str_prop("none")

    @classmethod
    def infer(cls, types, p):
        if p.approximate not in ("none", "tanh"):
            raise VerifyException(f"approximate must be 'none' or 'tanh', got {p.approximate!r}")
        return [types[0]]


@irdl_op_definition
class ClampOp(FloatUnaryOp):
    """y = min(max(x, min), max); either bound may be absent (hardtanh, Clip)."""

    name = "train.clamp"
    min = float_prop(float("-inf"))
    max = float_prop(float("inf"))


@irdl_op_definition
class LogicalNotOp(UnaryOp):
    """y = !x on i1 masks"""

    name = "train.logical_not"
    ELEMENTS: ClassVar[str] = "i1"


@irdl_op_definition
class CastOp(UnaryOp):
    """y = x converted to element type `to` (f32, f64, f16, i64, i32, i1)."""

    name = "train.cast"
    to = str_prop()

    @classmethod
    def infer(cls, types, p):
        el = _ELEMENTS.get(p.to)
        if el is None:
            raise VerifyException(f"cannot cast to {p.to!r}; known: {', '.join(_ELEMENTS)}")
        return [T.tensor(T.shape(types[0]), el)]


_ELEMENTS = {str(e): e for e in (T.f16, T.bf16, T.f32, T.f64, T.i64, T.i32, T.i1)}

# --- binary, numpy broadcasting ------------------------------------------------


class BinaryOp(TrainOp):
    """z = x ∘ y with numpy broadcasting; both operands have one element type."""

    traits = traits_def(Pure(), ElementwiseCanonicalization())
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)

    @classmethod
    def out_element(cls, el):
        return el

    @classmethod
    def infer(cls, types, p):
        a, b = types
        if T.element(a) != T.element(b):
            raise VerifyException(f"element types differ: {a} vs {b}")
        return [T.tensor(T.broadcast(T.shape(a), T.shape(b)), cls.out_element(T.element(a)))]


class CompareOp(BinaryOp):
    """mask = x ∘ y, an i1 tensor."""

    @classmethod
    def out_element(cls, el):
        return i1


@irdl_op_definition
class AddOp(BinaryOp):
    """z = x + y"""

    name = "train.add"


@irdl_op_definition
class SubOp(BinaryOp):
    """z = x - y"""

    name = "train.sub"
    ELEMENTS: ClassVar[str] = "numeric"


@irdl_op_definition
class MulOp(BinaryOp):
    """z = x * y"""

    name = "train.mul"


@irdl_op_definition
class DivOp(BinaryOp):
    """z = x / y (true division for floats)"""

    name = "train.div"
    ELEMENTS: ClassVar[str] = "numeric"


@irdl_op_definition
class PowOp(BinaryOp):
    """z = x ^ y"""

    name = "train.pow"
    ELEMENTS: ClassVar[str] = "numeric"


@irdl_op_definition
class MaximumOp(BinaryOp):
    """z = max(x, y)"""

    name = "train.maximum"


@irdl_op_definition
class MinimumOp(BinaryOp):
    """z = min(x, y)"""

    name = "train.minimum"


@irdl_op_definition
class AndOp(BinaryOp):
    """z = x & y (i1 masks; bitwise on integers)"""

    name = "train.and"
    ELEMENTS: ClassVar[str] = "integer"


@irdl_op_definition
class OrOp(BinaryOp):
    """z = x | y (i1 masks; bitwise on integers)"""

    name = "train.or"
    ELEMENTS: ClassVar[str] = "integer"


@irdl_op_definition
class EqOp(CompareOp):
    """m = x == y"""

    name = "train.eq"


@irdl_op_definition
class NeOp(CompareOp):
    """m = x != y"""

    name = "train.ne"


@irdl_op_definition
class LtOp(CompareOp):
    """m = x < y"""

    name = "train.lt"


@irdl_op_definition
class LeOp(CompareOp):
    """m = x <= y"""

    name = "train.le"


@irdl_op_definition
class GtOp(CompareOp):
    """m = x > y"""

    name = "train.gt"


@irdl_op_definition
class GeOp(CompareOp):
    """m = x >= y"""

    name = "train.ge"


@irdl_op_definition
class WhereOp(TrainOp):
    """z = cond ? x : y, all three broadcast together; cond is i1."""

    name = "train.where"
    traits = traits_def(Pure(), ElementwiseCanonicalization())
    cond = operand_def(TensorType)
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)

    @classmethod
    def infer(cls, types, p):
        c, a, b = types
        if T.element(c) != i1:
            raise VerifyException(f"condition must be i1, got {c}")
        if T.element(a) != T.element(b):
            raise VerifyException(f"branch element types differ: {a} vs {b}")
        return [T.tensor(T.broadcast(T.shape(c), T.shape(a), T.shape(b)), T.element(a))]


UNARY_OPS = [NegOp, AbsOp, SqrtOp, RsqrtOp, ReciprocalOp, ExpOp, LogOp, TanhOp, SinOp, CosOp, ErfOp,
             SigmoidOp, ReluOp, Relu6Op, SiluOp, GeluOp, ClampOp, LogicalNotOp, CastOp]
BINARY_OPS = [AddOp, SubOp, MulOp, DivOp, PowOp, MaximumOp, MinimumOp, AndOp, OrOp,
              EqOp, NeOp, LtOp, LeOp, GtOp, GeOp]
OPS = [*UNARY_OPS, *BINARY_OPS, WhereOp]

# --- canonicalization -----------------------------------------------------------------

# Fold only when the constant does not grow much: broadcasting two small constants into a
# big one would trade a cheap op for IR text and weights-file bytes.
FOLD_GROWTH_LIMIT = 1024


class FoldConstantElementwise(RewritePattern):
    """An elementwise op whose operands are all `train.constant`s becomes the constant it
    computes, by the interpreter's own semantics table (ir/interpreter/elementwise.py):

        %a = train.constant dense<2.0> : tensor<f32>
        %b = train.exp %a : tensor<f32>              →    %b = train.constant dense<7.38905621> : tensor<f32>
    """

    def match_and_rewrite(self, op, rewriter: PatternRewriter, /):
        from ..interpreter.elementwise import evaluate  # the interpreter imports this module

        if not isinstance(op, tuple(OPS)) or not all(isinstance(o.owner, ConstantOp) for o in op.operands):
            return
        out = op.result.type
        size, inputs = math.prod(T.shape(out)), sum(math.prod(T.shape(o.type)) for o in op.operands)
        if size > max(inputs, FOLD_GROWTH_LIMIT):
            return
        try:
            with np.errstate(all="ignore"):
                value = evaluate(op, *[o.owner.array() for o in op.operands])
            folded = ConstantOp.from_array(np.broadcast_to(value, T.shape(out)), out.element_type)
        except (ArithmeticError, ValueError, NotImplementedError):  # e.g. int ** negative int, no bf16 in numpy
            return
        rewriter.replace(op, folded)
