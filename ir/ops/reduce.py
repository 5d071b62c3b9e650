"""Reductions and normalizing maps along axes: sum, mean, max, softmax, log_softmax."""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import TensorType
from xdsl.irdl import irdl_op_definition, operand_def, result_def
from xdsl.utils.exceptions import VerifyException

from .. import types as T
from ..base import TrainOp, bool_prop, int_prop, ints_prop


class ReduceOp(TrainOp):
    """y = reduce(x, axes, keepdims)."""

    x = operand_def(TensorType)
    result = result_def(TensorType)
    axes = ints_prop()
    keepdims = bool_prop(False)

    @classmethod
    def infer(cls, types, p):
        xs = T.shape(types[0])
        return [T.tensor(T.reduced(xs, p.axes, p.keepdims), T.element(types[0]))]


@irdl_op_definition
class SumOp(ReduceOp):
    """y = Σ x over axes"""

    name = "train.sum"
    ELEMENTS: ClassVar[str] = "numeric"


@irdl_op_definition
class MeanOp(ReduceOp):
    """y = mean of x over axes"""

    name = "train.mean"
    FLOAT_ONLY: ClassVar[bool] = True


@irdl_op_definition
class MaxOp(ReduceOp):
    """y = max of x over axes"""

    name = "train.max"


@irdl_op_definition
class AnyOp(ReduceOp):
    """y = any(x) over axes (i1)"""

    name = "train.any"
    ELEMENTS: ClassVar[str] = "i1"


class AxisOp(TrainOp):
    FLOAT_ONLY: ClassVar[bool] = True
    x = operand_def(TensorType)
    result = result_def(TensorType)
    axis = int_prop(-1)

    @classmethod
    def infer(cls, types, p):
        xs = T.shape(types[0])
        if not xs:
            raise VerifyException("needs rank >= 1")
        T.norm_axis(p.axis, len(xs))
        return [types[0]]


@irdl_op_definition
class SoftmaxOp(AxisOp):
    """y = exp(x - max) / Σ exp(x - max) along axis"""

    name = "train.softmax"


@irdl_op_definition
class LogSoftmaxOp(AxisOp):
    """y = x - max - log Σ exp(x - max) along axis"""

    name = "train.log_softmax"


@irdl_op_definition
class CumsumOp(AxisOp):
    """y = running sum along axis"""

    name = "train.cumsum"
    FLOAT_ONLY: ClassVar[bool] = False
    ELEMENTS: ClassVar[str] = "numeric"


OPS = [SumOp, MeanOp, MaxOp, AnyOp, SoftmaxOp, LogSoftmaxOp, CumsumOp]
