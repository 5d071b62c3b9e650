"""Backward-only ops: gradient halves with no forward twin, emitted by the VJP rules.

Named `train.<forward>_backward[_<operand>]`. The gradient of each operand that a sparse
update may want alone is its own op (conv2d and linear weight gradients apart from input
gradients, norm gamma gradients apart from dx), so dead-gradient-elimination can drop one
and keep the other. Every op re-checks its geometry against the forward op's own shape
inference, so a gradient op always describes a forward op that could exist.

    %dx = train.conv2d_backward_input %dy, %w {stride = [2, 2], padding = [1, 1, 1, 1], input_size = [8, 8]}
          : (tensor<1x4x4x4xf32>, tensor<4x3x3x3xf32>) -> tensor<1x3x8x8xf32>
    %dw = train.conv2d_backward_weight %x, %dy {stride = [2, 2], padding = [1, 1, 1, 1], kernel = [3, 3]}
          : (tensor<1x3x8x8xf32>, tensor<1x4x4x4xf32>) -> tensor<4x3x3x3xf32>

Semantics live in ir/interpreter/grad.py.
"""

from __future__ import annotations

from typing import ClassVar

from xdsl.dialects.builtin import TensorType
from xdsl.irdl import irdl_op_definition, operand_def, result_def
from xdsl.utils.exceptions import VerifyException

from .. import types as T
from ..base import Props, TrainOp, bool_prop, float_prop, int_prop, ints_prop, same_type, str_prop
from . import elementwise as E
from . import linalg as L
from . import loss as Lo
from . import norm as N
from . import reduce as R
from . import shape as S


def _expect(what: str, got, want) -> None:
    if tuple(got) != tuple(want):
        raise VerifyException(f"{what} is {T.fmt(got)}, the forward op gives {T.fmt(want)}")


def _forward(fwd: type[TrainOp], types, p: Props) -> tuple[int, ...]:
    """Shape the forward op infers from these operand types and the same properties."""
    return T.shape(fwd.infer(types, Props(fwd, {k: v for k, v in p._props.items()
                                                if k in fwd.get_irdl_definition().properties}))[0])


class _ConvGeometry(TrainOp):
    FLOAT_ONLY: ClassVar[bool] = True
    result = result_def(TensorType)
    stride = ints_prop([1, 1])
    padding = ints_prop([0, 0, 0, 0])
    dilation = ints_prop([1, 1])
    groups = int_prop(1)


@irdl_op_definition
class Conv2dBackwardInputOp(_ConvGeometry):
    """dx of `train.conv2d`: the transposed convolution of dy with the weight.

    dx[n, c, h, w] = Σ dy[n, o, (h + pt - i·dh) / sh, (w + pl - j·dw) / sw] · w[o, c, i, j]
    over the (o in c's group, i, j) where the division is exact.
    """

    name = "train.conv2d_backward_input"
    dy = operand_def(TensorType)
    weight = operand_def(TensorType)
    input_size = ints_prop()

    @classmethod
    def infer(cls, types, p):
        ds, ws = T.shape(types[0]), T.shape(types[1])
        if len(ds) != 4 or len(ws) != 4 or len(p.input_size) != 2:
            raise VerifyException(f"expects NCHW dy, OIHW weight and input_size [H, W], got {T.fmt(ds)}, {T.fmt(ws)}")
        x = T.tensor((ds[0], ws[1] * p.groups, *p.input_size), T.element(types[0]))
        _expect("dy", ds, _forward(L.Conv2dOp, [x, types[1]], p))
        return [x]


@irdl_op_definition
class Conv2dBackwardWeightOp(_ConvGeometry):
    """dw of `train.conv2d` (grouped and depthwise too): correlation of the input with dy.

    dw[o, c, i, j] = Σ_{n, h, w} dy[n, o, h, w] · x_pad[n, g(o)·C/g + c, h·sh + i·dh, w·sw + j·dw]
    """

    name = "train.conv2d_backward_weight"
    x = operand_def(TensorType)
    dy = operand_def(TensorType)
    kernel = ints_prop()

    @classmethod
    def infer(cls, types, p):
        xs, ds = T.shape(types[0]), T.shape(types[1])
        if len(xs) != 4 or len(ds) != 4 or len(p.kernel) != 2 or p.groups < 1 or xs[1] % p.groups:
            raise VerifyException(f"expects NCHW x and dy, kernel [kh, kw], groups dividing C; got {T.fmt(xs)}, {T.fmt(ds)}")
        w = T.tensor((ds[1], xs[1] // p.groups, *p.kernel), T.element(types[0]))
        _expect("dy", ds, _forward(L.Conv2dOp, [types[0], w], p))
        return [w]


@irdl_op_definition
class LinearBackwardWeightOp(TrainOp):
    """dw of `train.linear` (y = x·wᵀ): dw = dyᵀ·x summed over all leading dims, [out, in]."""

    name = "train.linear_backward_weight"
    FLOAT_ONLY: ClassVar[bool] = True
    x = operand_def(TensorType)
    dy = operand_def(TensorType)
    result = result_def(TensorType)

    @classmethod
    def infer(cls, types, p):
        xs, ds = T.shape(types[0]), T.shape(types[1])
        if not xs or not ds:
            raise VerifyException(f"x {T.fmt(xs)} and dy {T.fmt(ds)} need rank >= 1")
        w = T.tensor((ds[-1], xs[-1]), T.element(types[0]))
        _expect("dy", ds, _forward(L.LinearOp, [types[0], w], p))
        return [w]


class _PoolGeometry(TrainOp):
    FLOAT_ONLY: ClassVar[bool] = True
    result = result_def(TensorType)
    kernel = ints_prop()
    stride = ints_prop([1, 1])
    padding = ints_prop([0, 0, 0, 0])
    ceil_mode = bool_prop(False)


@irdl_op_definition
class MaxPool2dBackwardOp(_PoolGeometry):
    """dx of `train.max_pool2d`: each dy goes to the first maximum of its window (PyTorch)."""

    name = "train.max_pool2d_backward"
    x = operand_def(TensorType)
    dy = operand_def(TensorType)
    dilation = ints_prop([1, 1])

    @classmethod
    def infer(cls, types, p):
        _expect("dy", T.shape(types[1]), _forward(L.MaxPool2dOp, [types[0]], p))
        return [types[0]]


@irdl_op_definition
class AvgPool2dBackwardOp(_PoolGeometry):
    """dx of `train.avg_pool2d`: each dy / (its window's divisor) spread over its window."""

    name = "train.avg_pool2d_backward"
    dy = operand_def(TensorType)
    count_include_pad = bool_prop(True)
    input_size = ints_prop()

    @classmethod
    def infer(cls, types, p):
        ds = T.shape(types[0])
        if len(ds) != 4 or len(p.input_size) != 2:
            raise VerifyException(f"expects NCHW dy and input_size [H, W], got {T.fmt(ds)}")
        x = T.tensor((*ds[:2], *p.input_size), T.element(types[0]))
        _expect("dy", ds, _forward(L.AvgPool2dOp, [x], p))
        return [x]


@irdl_op_definition
class SliceBackwardOp(TrainOp):
    """dx of a strided `train.slice`: dy scattered into zeros of the input shape.

    (Slices with unit steps use `train.pad` instead.)
    """

    name = "train.slice_backward"
    dy = operand_def(TensorType)
    result = result_def(TensorType)
    axes = ints_prop()
    starts = ints_prop()
    ends = ints_prop()
    steps = ints_prop()
    input_shape = ints_prop()

    @classmethod
    def infer(cls, types, p):
        x = T.tensor(p.input_shape, T.element(types[0]))
        _expect("dy", T.shape(types[0]), _forward(S.SliceOp, [x], p))
        return [x]


@irdl_op_definition
class GatherBackwardOp(TrainOp):
    """dx of `train.gather` (embeddings): scatter-add of dy into zeros at the indices.

    dx = zeros(input_shape); dx[.., indices[k], ..] += dy[.., k, ..] along axis;
    then the row `padding_idx` (if >= 0) is zeroed, like PyTorch's embedding backward.
    """

    name = "train.gather_backward"
    FLOAT_ONLY: ClassVar[bool] = True
    dy = operand_def(TensorType)
    indices = operand_def(TensorType)
    result = result_def(TensorType)
    axis = int_prop(0)
    padding_idx = int_prop(-1)
    input_shape = ints_prop()

    @classmethod
    def infer(cls, types, p):
        x = T.tensor(p.input_shape, T.element(types[0]))
        _expect("dy", T.shape(types[0]), _forward(S.GatherOp, [x, types[1]], p))
        return [x]


@irdl_op_definition
class GatherElementsBackwardOp(TrainOp):
    """dx of `train.gather_elements`: dx = zeros(input_shape), then along axis
    dx[i_0, .., indices[i_0, .., i_r], .., i_r] += dy[i_0, .., i_r]"""

    name = "train.gather_elements_backward"
    FLOAT_ONLY: ClassVar[bool] = True
    dy = operand_def(TensorType)
    indices = operand_def(TensorType)
    result = result_def(TensorType)
    axis = int_prop(0)
    input_shape = ints_prop()

    @classmethod
    def infer(cls, types, p):
        x = T.tensor(p.input_shape, T.element(types[0]))
        _expect("dy", T.shape(types[0]), _forward(S.GatherElementsOp, [x, types[1]], p))
        return [x]


class _AxisBackward(TrainOp):
    FLOAT_ONLY: ClassVar[bool] = True
    y = operand_def(TensorType)
    dy = operand_def(TensorType)
    result = result_def(TensorType)
    axis = int_prop(-1)

    @classmethod
    def infer(cls, types, p):
        return R.SoftmaxOp.infer([same_type("y", types[0], "dy", types[1])], p)


@irdl_op_definition
class SoftmaxBackwardOp(_AxisBackward):
    """dx of `train.softmax` from its output y: dx = y · (dy - Σ_axis dy·y)"""

    name = "train.softmax_backward"


@irdl_op_definition
class LogSoftmaxBackwardOp(_AxisBackward):
    """dx of `train.log_softmax` from its output y: dx = dy - exp(y) · Σ_axis dy"""

    name = "train.log_softmax_backward"


class _NormBackward(TrainOp):
    FLOAT_ONLY: ClassVar[bool] = True
    result = result_def(TensorType)
    axis = int_prop(-1)
    eps = float_prop(1e-5)


class _NormBackwardInput(_NormBackward):
    x = operand_def(TensorType)
    gamma = operand_def(TensorType)
    dy = operand_def(TensorType)

    @classmethod
    def infer(cls, types, p):
        return N.LastAxesNormOp.infer([same_type("x", types[0], "dy", types[2]), types[1]], p)


class _NormBackwardGamma(_NormBackward):
    x = operand_def(TensorType)
    dy = operand_def(TensorType)

    @classmethod
    def infer(cls, types, p):
        x = same_type("x", types[0], "dy", types[1])
        return [T.tensor(N.affine_shape(x, p.axis), T.element(x))]


@irdl_op_definition
class LayerNormBackwardOp(_NormBackwardInput):
    """dx of `train.layer_norm`, statistics over dims axis.. (D elements):

    x̂ = (x - μ)·rstd, g = dy·γ, dx = rstd · (g - mean(g) - x̂ · mean(g·x̂))
    """

    name = "train.layer_norm_backward"


@irdl_op_definition
class LayerNormBackwardGammaOp(_NormBackwardGamma):
    """dγ of `train.layer_norm`: Σ over the leading dims of dy · x̂ (dβ is a plain `train.sum`)."""

    name = "train.layer_norm_backward_gamma"


@irdl_op_definition
class RmsNormBackwardOp(_NormBackwardInput):
    """dx of `train.rms_norm`: r = rsqrt(mean(x²) + eps), g = dy·γ, dx = r·g - r³·x·mean(g·x)"""

    name = "train.rms_norm_backward"


@irdl_op_definition
class RmsNormBackwardGammaOp(_NormBackwardGamma):
    """dγ of `train.rms_norm`: Σ over the leading dims of dy · x · r"""

    name = "train.rms_norm_backward_gamma"


@irdl_op_definition
class CrossEntropyBackwardOp(TrainOp):
    """dlogits of `train.cross_entropy`: (softmax(logits) - onehot(label)) · dloss / count,
    zero where label == ignore_index (count = number of kept labels for "mean", 1 for "sum")."""

    name = "train.cross_entropy_backward"
    FLOAT_ONLY: ClassVar[bool] = True
    logits = operand_def(TensorType)
    labels = operand_def(TensorType)
    dloss = operand_def(TensorType)
    result = result_def(TensorType)
    reduction = str_prop("mean")
    ignore_index = int_prop(-100)

    @classmethod
    def infer(cls, types, p):
        Lo.CrossEntropyOp.infer(types[:2], p)
        if T.shape(types[2]) != ():
            raise VerifyException(f"dloss must be a scalar, got {types[2]}")
        return [types[0]]


class _UnaryBackward(TrainOp):
    FLOAT_ONLY: ClassVar[bool] = True
    x = operand_def(TensorType)
    dy = operand_def(TensorType)
    result = result_def(TensorType)

    @classmethod
    def infer(cls, types, p):
        return [same_type("x", types[0], "dy", types[1])]


@irdl_op_definition
class GeluBackwardOp(_UnaryBackward):
    """dx of `train.gelu`: dy · (Φ(x) + x·φ(x)), or the derivative of the tanh form."""

    name = "train.gelu_backward"
    approximate = str_prop("none")

    @classmethod
    def infer(cls, types, p):
        E.GeluOp.infer(types[:1], p)
        return super().infer(types, p)


@irdl_op_definition
class SiluBackwardOp(_UnaryBackward):
    """dx of `train.silu`: s = sigmoid(x), dx = dy · s · (1 + x·(1 - s))"""

    name = "train.silu_backward"


OPS = [Conv2dBackwardInputOp, Conv2dBackwardWeightOp, LinearBackwardWeightOp, MaxPool2dBackwardOp,
       AvgPool2dBackwardOp, SliceBackwardOp, GatherBackwardOp, GatherElementsBackwardOp, SoftmaxBackwardOp, LogSoftmaxBackwardOp,
       LayerNormBackwardOp, LayerNormBackwardGammaOp, RmsNormBackwardOp, RmsNormBackwardGammaOp,
       CrossEntropyBackwardOp, GeluBackwardOp, SiluBackwardOp]
