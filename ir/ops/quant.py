"""Quantization ops: affine int8/uint8 quantization and the integer contractions of quantized
ONNX models (QuantizeLinear, DequantizeLinear, MatMulInteger, ConvInteger; QLinear* are
decompositions into these, frontends/onnx_quant_ops.py).

Affine quantization with a scale s (float) and a zero point z (the integer type of q):

    q = saturate(round_half_even(x / s) + z)        train.quantize
    x̂ = (q - z) · s                                 train.dequantize
    x̂ = (saturate(round(x / s) + z) - z) · s        train.fake_quantize  (the pair, float → float)

s and z broadcast against x (per-tensor: rank-0; per-axis: shaped like [C, 1, 1]), so the
ops carry no axis: frontends reshape scales. Saturation is to the range of z's element type
(i8: [-128, 127], ui8: [0, 255]); NaN quantizes to the lowest value (what onnxruntime gives on
x86). Division is in x's float type, as onnxruntime does.

    %q = train.quantize %x, %s, %z : (tensor<4x16xf32>, tensor<f32>, tensor<ui8>) -> tensor<4x16xui8>
    %y = train.dequantize %q, %s, %z : (tensor<4x16xui8>, tensor<f32>, tensor<ui8>) -> tensor<4x16xf32>
    %a = train.matmul_integer %q, %w, %z, %wz : (tensor<4x16xui8>, tensor<16x8xi8>, tensor<ui8>, tensor<i8>) -> tensor<4x8xi32>

Gradients (passes/vjp/quant.py): train.fake_quantize has the straight-through estimator with
the clip mask (torch.fake_quantize_per_tensor_affine's backward); integer values carry none.
"""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import TensorType, i8, i32
from xdsl.irdl import irdl_op_definition, operand_def, result_def
from xdsl.utils.exceptions import VerifyException

from .. import types as T
from ..base import TrainOp, int_prop, ints_prop
from .linalg import Conv2dOp, MatmulOp, _pads

Q_TYPES = (i8, T.ui8)  # what train.quantize writes and the integer contractions read


def _quant_params(x, scale, zp, what: str, q_types=Q_TYPES):
    """Checks scale and zero point against x: both broadcast to x's shape."""
    if not T.is_float(scale):
        raise VerifyException(f"scale must be a float tensor, got {scale}")
    if T.element(zp) not in q_types:
        raise VerifyException(f"zero point must be {' or '.join(map(str, q_types))}, got {zp}")
    for name, t in (("scale", scale), ("zero point", zp)):
        if T.broadcast(T.shape(t), T.shape(x)) != T.shape(x):
            raise VerifyException(f"{name} {T.fmt(T.shape(t))} does not broadcast to {what} {T.fmt(T.shape(x))}")


def _float_input(x, scale, zp):
    """A float input quantized with `scale` (of x's element type) and zero point `zp`."""
    _quant_params(x, scale, zp, "input")
    if T.element(scale) != T.element(x):
        raise VerifyException(f"scale {scale} and input {x} have different element types")


def _integer_operands(*operands):
    """(tensor, zero point, what) of an integer contraction: an i8/ui8 tensor and a zero point
    of its element type that broadcasts to it."""
    for t, z, what in operands:
        _integer_operand(t, what)
        _quant_params(t, T.tensor((), T.f32), z, what)
        if T.element(z) != T.element(t):
            raise VerifyException(f"{what} zero point {z} and {what} {t} have different element types")


class AffineOp(TrainOp):
    x = operand_def(TensorType)
    scale = operand_def(TensorType)
    zero_point = operand_def(TensorType)
    result = result_def(TensorType)


@irdl_op_definition
class QuantizeOp(AffineOp):
    """q = saturate(round_half_even(x / scale) + zero_point), q of the zero point's type."""

    name = "train.quantize"
    FLOAT_ONLY: ClassVar[bool] = True

    @classmethod
    def infer(cls, types, p):
        x, s, z = types
        _float_input(x, s, z)
        return [T.tensor(T.shape(x), T.element(z))]


@irdl_op_definition
class DequantizeOp(AffineOp):
    """y = (x - zero_point) · scale, in the scale's float type (x: i8, ui8 or i32)."""

    name = "train.dequantize"

    @classmethod
    def infer(cls, types, p):
        x, s, z = types
        if T.element(x) not in T.QUANT_TYPES:
            raise VerifyException(f"expects an i8, ui8 or i32 tensor, got {x}")
        _quant_params(x, s, z, "input", T.QUANT_TYPES)
        if T.element(z) != T.element(x):
            raise VerifyException(f"zero point {z} and input {x} have different element types")
        return [T.tensor(T.shape(x), T.element(s))]


@irdl_op_definition
class FakeQuantizeOp(AffineOp):
    """y = dequantize(quantize(x, scale, zp), scale, zp) in one float → float op: the
    quantize/dequantize pair on an activation, which gradients pass (straight through)."""

    name = "train.fake_quantize"
    FLOAT_ONLY: ClassVar[bool] = True

    @classmethod
    def infer(cls, types, p):
        x, s, z = types
        _float_input(x, s, z)
        return [x]


@irdl_op_definition
class FakeQuantizeBackwardOp(TrainOp):
    """dx = dy where the unclamped round(x / scale) + zp lies in the zero point's range, else 0."""

    name = "train.fake_quantize_backward"
    FLOAT_ONLY: ClassVar[bool] = True
    x = operand_def(TensorType)
    scale = operand_def(TensorType)
    zero_point = operand_def(TensorType)
    dy = operand_def(TensorType)
    result = result_def(TensorType)

    @classmethod
    def infer(cls, types, p):
        x, s, z, dy = types
        _quant_params(x, s, z, "input")
        if dy != x:
            raise VerifyException(f"gradient {dy} and input {x} differ")
        return [x]


def _integer_operand(t, what: str) -> None:
    if T.element(t) not in Q_TYPES:
        raise VerifyException(f"{what} must be i8 or ui8, got {t}")


@irdl_op_definition
class MatmulIntegerOp(TrainOp):
    """c = (a - a_zp) · (b - b_zp), exact in i32 (numpy matmul shapes; zero points broadcast
    to their operand: per-row [M, 1] for a, per-column [N] for b)."""

    name = "train.matmul_integer"
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    lhs_zero_point = operand_def(TensorType)
    rhs_zero_point = operand_def(TensorType)
    result = result_def(TensorType)

    @classmethod
    def infer(cls, types, p):
        a, b, az, bz = types
        _integer_operands((a, az, "lhs"), (b, bz, "rhs"))
        (out,) = MatmulOp.infer([T.tensor(T.shape(a)), T.tensor(T.shape(b))], p)
        return [T.tensor(T.shape(out), i32)]


@irdl_op_definition
class ConvIntegerOp(TrainOp):
    """y = conv2d(x - x_zp, w - w_zp), exact in i32; properties as train.conv2d. x_zp is
    per-tensor, w_zp per-tensor or per output channel ([O, 1, 1, 1])."""

    name = "train.conv_integer"
    x = operand_def(TensorType)
    weight = operand_def(TensorType)
    x_zero_point = operand_def(TensorType)
    weight_zero_point = operand_def(TensorType)
    result = result_def(TensorType)
    stride = ints_prop([1, 1])
    padding = ints_prop([0, 0, 0, 0])
    dilation = ints_prop([1, 1])
    groups = int_prop(1)

    @classmethod
    def build(cls, x, w, xz, wz, *, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        return super().build(x, w, xz, wz, stride=list(stride), padding=_pads(cls, padding),
                             dilation=list(dilation), groups=groups)

    @classmethod
    def infer(cls, types, p):
        x, w, xz, wz = types
        _integer_operands((x, xz, "input"), (w, wz, "weight"))
        if T.shape(xz) and set(T.shape(xz)) != {1}:
            raise VerifyException(f"the input zero point must be per-tensor, got {T.fmt(T.shape(xz))}")
        (out,) = Conv2dOp.infer([T.tensor(T.shape(x)), T.tensor(T.shape(w))], p)
        return [T.tensor(T.shape(out), i32)]


OPS = [QuantizeOp, DequantizeOp, FakeQuantizeOp, FakeQuantizeBackwardOp, MatmulIntegerOp, ConvIntegerOp]
