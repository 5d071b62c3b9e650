"""Optimizer updates: pure ops from (parameter, gradient, state) to new values, exactly
torch.optim's update rules. The writes are separate `train.set`s, so a later pass can move
them (apply an update as soon as its gradient exists) or drop them.

    %t = train.get @optimizer.step : tensor<f32>          // steps taken so far
    %t1 = train.add %t, %one : tensor<f32>                 // this step's number (1 on the first)
    train.set @optimizer.step, %t1 : tensor<f32>
    %p1, %m1 = train.sgd %p, %g, %m, %t1 {lr = 0.05, momentum = 0.9} : (...) -> (...)
    train.set @fc.weight, %p1 : tensor<4x32xf32>
    train.set @fc.weight.momentum, %m1 : tensor<4x32xf32>

Semantics live in ir/interpreter/optim.py.
"""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import TensorType
from xdsl.irdl import irdl_op_definition, operand_def, result_def, var_operand_def, var_result_def
from xdsl.utils.exceptions import VerifyException

from .. import types as T
from ..base import TrainOp, bool_prop, float_prop, same_type


def _check(param, grad, state, step):
    same_type("parameter", param, "gradient", grad)
    for s in state:
        same_type("optimizer state", s, "parameter", param)
    if step is not None and (T.shape(step) != () or not T.is_float(step)):
        raise VerifyException(f"the step counter must be a float scalar, got {step}")


@irdl_op_definition
class SgdOp(TrainOp):
    """torch.optim.SGD for one parameter. Without momentum: `%p1 = train.sgd %p, %g {lr}`;
    with momentum the buffer and the step number (1 on the first step) come in, the new
    buffer comes out: `%p1, %b1 = train.sgd %p, %g, %b, %t {lr, momentum, ...}`.

    g' = g + weight_decay·p
    b' = g' on step 1, else momentum·b + (1 - dampening)·g'
    d  = g' + momentum·b' if nesterov else b'           (d = g' without momentum)
    p' = p - lr·d
    """

    name = "train.sgd"
    FLOAT_ONLY: ClassVar[bool] = True
    param = operand_def(TensorType)
    grad = operand_def(TensorType)
    state = var_operand_def(TensorType)
    new_param = result_def(TensorType)
    new_state = var_result_def(TensorType)
    lr = float_prop()
    momentum = float_prop(0.0)
    dampening = float_prop(0.0)
    nesterov = bool_prop(False)
    weight_decay = float_prop(0.0)

    @classmethod
    def infer(cls, types, p):
        param, grad, *state = types
        if p.nesterov and (p.momentum <= 0 or p.dampening != 0):
            raise VerifyException("nesterov needs momentum > 0 and zero dampening")
        if p.momentum == 0:
            if state:
                raise VerifyException("without momentum train.sgd takes no state")
            _check(param, grad, [], None)
            return [param]
        if len(state) != 2:
            raise VerifyException("with momentum train.sgd takes the buffer and the step number")
        _check(param, grad, state[:1], state[1])
        return [param, param]


@irdl_op_definition
class AdamOp(TrainOp):
    """torch.optim.Adam (decoupled = false) or AdamW (decoupled = true) for one parameter,
    at step number t (1 on the first step):

    Adam:  g' = g + weight_decay·p            AdamW: p ← p·(1 - lr·weight_decay), g' = g
    m' = m + (1 - β1)·(g' - m)                v' = β2·v + (1 - β2)·g'²
    p' = p - lr / (1 - β1^t) · m' / (sqrt(v') / sqrt(1 - β2^t) + eps)

    %p1, %m1, %v1 = train.adam %p, %g, %m, %v, %t {lr = 0.001, weight_decay = 0.01, decoupled = true}
    """

    name = "train.adam"
    FLOAT_ONLY: ClassVar[bool] = True
    param = operand_def(TensorType)
    grad = operand_def(TensorType)
    exp_avg = operand_def(TensorType)
    exp_avg_sq = operand_def(TensorType)
    step = operand_def(TensorType)
    new_param = result_def(TensorType)
    new_exp_avg = result_def(TensorType)
    new_exp_avg_sq = result_def(TensorType)
    lr = float_prop(1e-3)
    beta1 = float_prop(0.9)
    beta2 = float_prop(0.999)
    eps = float_prop(1e-8)
    weight_decay = float_prop(0.0)
    decoupled = bool_prop(False)

    @classmethod
    def infer(cls, types, p):
        param, grad, m, v, step = types
        if not (0 <= p.beta1 < 1 and 0 <= p.beta2 < 1):
            raise VerifyException(f"betas must lie in [0, 1), got {p.beta1}, {p.beta2}")
        _check(param, grad, [m, v], step)
        return [param, param, param]


OPS = [SgdOp, AdamOp]
