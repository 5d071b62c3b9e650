"""Normalizations: batch_norm (inference form), layer_norm, rms_norm."""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import TensorType
from xdsl.irdl import irdl_op_definition, operand_def, result_def
from xdsl.utils.exceptions import VerifyException

from .. import types as T
from ..base import TrainOp, float_prop, int_prop


@irdl_op_definition
class BatchNormOp(TrainOp):
    """Inference batch norm with given statistics, per channel (axis 1):

    y = (x - mean) / sqrt(var + eps) * gamma + beta
    """

    name = "train.batch_norm"
    FLOAT_ONLY: ClassVar[bool] = True
    x = operand_def(TensorType)
    gamma = operand_def(TensorType)
    beta = operand_def(TensorType)
    mean = operand_def(TensorType)
    var = operand_def(TensorType)
    result = result_def(TensorType)
    eps = float_prop(1e-5)

    @classmethod
    def infer(cls, types, p):
        xs = T.shape(types[0])
        if len(xs) < 2:
            raise VerifyException(f"expects [N, C, ...] input, got {T.fmt(xs)}")
        for name, t in zip(("gamma", "beta", "mean", "var"), types[1:]):
            if T.shape(t) != (xs[1],):
                raise VerifyException(f"{name} must be [{xs[1]}], got {T.fmt(T.shape(t))}")
        return [types[0]]


def affine_shape(x, axis: int) -> tuple[int, ...]:
    """The trailing dims from `axis` on: what a last-axes norm normalizes over, gamma's shape."""
    xs = T.shape(x)
    return xs[T.norm_axis(axis, len(xs)):]


class LastAxesNormOp(TrainOp):
    """Normalizes over the trailing dims from `axis` on; gamma (and beta) have those dims."""

    FLOAT_ONLY: ClassVar[bool] = True
    axis = int_prop(-1)
    eps = float_prop(1e-5)

    @classmethod
    def infer(cls, types, p):
        want = affine_shape(types[0], p.axis)
        for t in types[1:]:
            if T.shape(t) != want:
                raise VerifyException(f"affine parameter {T.fmt(T.shape(t))} must be {T.fmt(want)}")
        return [types[0]]


@irdl_op_definition
class LayerNormOp(LastAxesNormOp):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta, statistics over dims axis.."""

    name = "train.layer_norm"
    x = operand_def(TensorType)
    gamma = operand_def(TensorType)
    beta = operand_def(TensorType)
    result = result_def(TensorType)


@irdl_op_definition
class RmsNormOp(LastAxesNormOp):
    """y = x * rsqrt(mean(x², dims axis..) + eps) * gamma (Llama's RMSNorm)."""

    name = "train.rms_norm"
    x = operand_def(TensorType)
    gamma = operand_def(TensorType)
    result = result_def(TensorType)


OPS = [BatchNormOp, LayerNormOp, RmsNormOp]
