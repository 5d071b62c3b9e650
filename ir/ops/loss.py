"""Losses: scalar (rank-0) results, reduction "mean" or "sum"."""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import IntegerType, TensorType
from xdsl.irdl import irdl_op_definition, operand_def, result_def
from xdsl.utils.exceptions import VerifyException

from .. import types as T
from ..base import TrainOp, int_prop, same_type, str_prop


def _reduction(p):
    if p.reduction not in ("mean", "sum"):
        raise VerifyException(f"reduction must be 'mean' or 'sum', got {p.reduction!r}")


@irdl_op_definition
class CrossEntropyOp(TrainOp):
    """Softmax cross-entropy with integer labels (PyTorch's F.cross_entropy):

    logits [N, C] or [N, C, d1..], labels [N] or [N, d1..];
    loss = reduce_i -log softmax(logits_i)[label_i], over labels != ignore_index.
    A "mean" over no kept labels is 0 (PyTorch gives nan; its gradient is 0 either way).

    %l = train.cross_entropy %logits, %labels {ignore_index = 0} : (tensor<8x10xf32>, tensor<8xi64>) -> tensor<f32>
    """

    name = "train.cross_entropy"
    FLOAT_ONLY: ClassVar[bool] = True
    logits = operand_def(TensorType)
    labels = operand_def(TensorType)
    result = result_def(TensorType)
    reduction = str_prop("mean")
    ignore_index = int_prop(-100)

    @classmethod
    def infer(cls, types, p):
        _reduction(p)
        ls, ys = T.shape(types[0]), T.shape(types[1])
        if not isinstance(T.element(types[1]), IntegerType):
            raise VerifyException(f"labels must be integers, got {types[1]}")
        if len(ls) < 2 or ys != ls[:1] + ls[2:]:
            raise VerifyException(f"logits {T.fmt(ls)} and labels {T.fmt(ys)} do not fit [N, C, ..] / [N, ..]")
        return [T.tensor((), T.element(types[0]))]


@irdl_op_definition
class MseOp(TrainOp):
    """loss = reduce (pred - target)²"""

    name = "train.mse"
    FLOAT_ONLY: ClassVar[bool] = True
    pred = operand_def(TensorType)
    target = operand_def(TensorType)
    result = result_def(TensorType)
    reduction = str_prop("mean")

    @classmethod
    def infer(cls, types, p):
        _reduction(p)
        return [T.tensor((), T.element(same_type("prediction", types[0], "target", types[1])))]


OPS = [CrossEntropyOp, MseOp]
