"""Contractions and windows: conv2d, matmul, linear, pooling, pad.

Layouts follow PyTorch: activations NCHW, conv weights OIHW (I = C_in / groups),
linear weights [out, in]. Padding is [top, left, bottom, right].
"""

from __future__ import annotations

import math
from typing import ClassVar

from xdsl.dialects.builtin import TensorType
from xdsl.irdl import irdl_op_definition, operand_def, result_def
from xdsl.utils.exceptions import VerifyException

from .. import types as T
from ..base import TrainOp, bool_prop, float_prop, int_prop, ints_prop


def pad4(padding) -> tuple[int, int, int, int]:
    """Accept 1, 2 (symmetric h, w) or 4 (top, left, bottom, right) values."""
    p = tuple(int(x) for x in padding)
    if len(p) == 1:
        return p * 4
    if len(p) == 2:
        return (p[0], p[1], p[0], p[1])
    if len(p) == 4:
        return p
    raise VerifyException(f"padding needs 1, 2 or 4 values, got {list(p)}")


def _pads(cls, padding) -> list[int]:
    try:
        return list(pad4(padding))
    except VerifyException as e:
        raise VerifyException(f"{cls.name}: {e}") from None


def window_out(size: int, k: int, stride: int, lo: int, hi: int, dilation: int = 1, ceil: bool = False) -> int:
    span = size + lo + hi - dilation * (k - 1) - 1
    if span < 0:
        raise VerifyException(f"window {k} (dilation {dilation}) larger than padded input {size + lo + hi}")
    n = (math.ceil(span / stride) if ceil else span // stride) + 1
    if ceil and (n - 1) * stride >= size + lo:  # PyTorch: last window must start inside the input
        n -= 1
    return n


def _pair(v, what):
    v = tuple(v)
    if len(v) != 2 or min(v) < 1:
        raise VerifyException(f"{what} must be two positive integers, got {list(v)}")
    return v


@irdl_op_definition
class Conv2dOp(TrainOp):
    """2-D convolution (cross-correlation), grouped when groups > 1 (depthwise: groups = C_in).

    %y = train.conv2d %x, %w {stride = [1, 1], padding = [1, 1, 1, 1], dilation = [1, 1], groups = 1}
         : (tensor<NxCxHxWxf32>, tensor<OxC/gxKhxKwxf32>) -> tensor<NxOxHoxWoxf32>
    """

    name = "train.conv2d"
    FLOAT_ONLY: ClassVar[bool] = True
    x = operand_def(TensorType)
    weight = operand_def(TensorType)
    result = result_def(TensorType)
    stride = ints_prop([1, 1])
    padding = ints_prop([0, 0, 0, 0])
    dilation = ints_prop([1, 1])
    groups = int_prop(1)

    @classmethod
    def build(cls, x, w, *, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1):
        return super().build(x, w, stride=list(stride), padding=_pads(cls, padding),
                             dilation=list(dilation), groups=groups)

    @classmethod
    def infer(cls, types, p):
        xs, ws = T.shape(types[0]), T.shape(types[1])
        if len(xs) != 4 or len(ws) != 4:
            raise VerifyException(f"expects NCHW input and OIHW weight, got {T.fmt(xs)} and {T.fmt(ws)}")
        n, c, h, w = xs
        o, i, kh, kw = ws
        g = p.groups
        if g < 1 or c % g or o % g or i * g != c:
            raise VerifyException(f"input channels {c}, weight {T.fmt(ws)} and groups {g} disagree")
        sh, sw = _pair(p.stride, "stride")
        dh, dw = _pair(p.dilation, "dilation")
        pt, pl, pb, pr = pad4(p.padding)
        return [T.tensor((n, o, window_out(h, kh, sh, pt, pb, dh), window_out(w, kw, sw, pl, pr, dw)),
                         T.element(types[0]))]


@irdl_op_definition
class ConvTranspose2dOp(TrainOp):
    """Transposed 2-D convolution (nn.ConvTranspose2d): the input gradient of the conv2d with the
    same geometry, so the same kernel computes it. Weight [C_in, C_out/g, kh, kw] as PyTorch's;

        H_out = (H - 1)·sh - pt - pb + dh·(kh - 1) + output_padding_h + 1

    %y = train.conv_transpose2d %x, %w {stride = [2, 2], padding = [1, 1, 1, 1], output_padding = [1, 1]}
         : (tensor<1x4x5x5xf32>, tensor<4x6x3x3xf32>) -> tensor<1x6x10x10xf32>
    """

    name = "train.conv_transpose2d"
    FLOAT_ONLY: ClassVar[bool] = True
    x = operand_def(TensorType)
    weight = operand_def(TensorType)
    result = result_def(TensorType)
    stride = ints_prop([1, 1])
    padding = ints_prop([0, 0, 0, 0])
    dilation = ints_prop([1, 1])
    output_padding = ints_prop([0, 0])
    groups = int_prop(1)

    @classmethod
    def build(cls, x, w, *, stride=(1, 1), padding=(0, 0), dilation=(1, 1), output_padding=(0, 0), groups=1):
        return super().build(x, w, stride=list(stride), padding=_pads(cls, padding), dilation=list(dilation),
                             output_padding=list(output_padding), groups=groups)

    @classmethod
    def infer(cls, types, p):
        xs, ws = T.shape(types[0]), T.shape(types[1])
        if len(xs) != 4 or len(ws) != 4:
            raise VerifyException(f"expects NCHW input and [C_in, C_out/g, kh, kw] weight, got {T.fmt(xs)} and {T.fmt(ws)}")
        g = p.groups
        if g < 1 or xs[1] != ws[0] or xs[1] % g:
            raise VerifyException(f"input channels {xs[1]}, weight {T.fmt(ws)} and groups {g} disagree")
        stride, dil = _pair(p.stride, "stride"), _pair(p.dilation, "dilation")
        pt, pl, pb, pr = pad4(p.padding)
        out = []
        for size, k, s, d, lo, hi, extra in zip(xs[2:], ws[2:], stride, dil, (pt, pl), (pb, pr), p.output_padding):
            if not 0 <= extra < s:  # torch also allows < dilation; conv2d's input gradient does not
                raise VerifyException(f"output_padding {list(p.output_padding)} must be below the stride {list(stride)}")
            out.append((size - 1) * s - lo - hi + d * (k - 1) + extra + 1)
        if min(out) < 1:
            raise VerifyException(f"padding {list(p.padding)} leaves no output for input {T.fmt(xs)}")
        return [T.tensor((xs[0], ws[1] * g, *out), T.element(types[0]))]


@irdl_op_definition
class MatmulOp(TrainOp):
    """numpy matmul: [.., m, k] x [.., k, n] -> [.., m, n], batch dims broadcast (mm and bmm)."""

    name = "train.matmul"
    FLOAT_ONLY: ClassVar[bool] = True
    lhs = operand_def(TensorType)
    rhs = operand_def(TensorType)
    result = result_def(TensorType)

    @classmethod
    def infer(cls, types, p):
        a, b = T.shape(types[0]), T.shape(types[1])
        if len(a) < 2 or len(b) < 2:
            raise VerifyException(f"operands need rank >= 2, got {T.fmt(a)} and {T.fmt(b)}")
        if a[-1] != b[-2]:
            raise VerifyException(f"contraction dims differ: {T.fmt(a)} x {T.fmt(b)}")
        batch = T.broadcast(a[:-2], b[:-2])
        return [T.tensor((*batch, a[-2], b[-1]), T.element(types[0]))]


@irdl_op_definition
class LinearOp(TrainOp):
    """y = x · wᵀ with w [out, in]; x [..., in]. A bias is a separate broadcast `train.add`."""

    name = "train.linear"
    FLOAT_ONLY: ClassVar[bool] = True
    x = operand_def(TensorType)
    weight = operand_def(TensorType)
    result = result_def(TensorType)

    @classmethod
    def infer(cls, types, p):
        xs, ws = T.shape(types[0]), T.shape(types[1])
        if len(ws) != 2 or not xs or xs[-1] != ws[1]:
            raise VerifyException(f"input {T.fmt(xs)} does not fit weight {T.fmt(ws)} ([out, in])")
        return [T.tensor((*xs[:-1], ws[0]), T.element(types[0]))]


class Pool2dOp(TrainOp):
    FLOAT_ONLY: ClassVar[bool] = True
    x = operand_def(TensorType)
    result = result_def(TensorType)
    kernel = ints_prop()
    stride = ints_prop([1, 1])
    padding = ints_prop([0, 0, 0, 0])
    ceil_mode = bool_prop(False)

    DILATION: ClassVar[bool] = False

    @classmethod
    def build(cls, x, *, kernel, stride=None, padding=(0, 0), **kw):
        return super().build(x, kernel=list(kernel), stride=list(stride or kernel),
                             padding=_pads(cls, padding), **kw)

    @classmethod
    def infer(cls, types, p):
        xs = T.shape(types[0])
        if len(xs) != 4:
            raise VerifyException(f"expects NCHW input, got {T.fmt(xs)}")
        kh, kw = _pair(p.kernel, "kernel")
        sh, sw = _pair(p.stride, "stride")
        dh, dw = _pair(p.dilation, "dilation") if cls.DILATION else (1, 1)
        pt, pl, pb, pr = pad4(p.padding)
        ho = window_out(xs[2], kh, sh, pt, pb, dh, p.ceil_mode)
        wo = window_out(xs[3], kw, sw, pl, pr, dw, p.ceil_mode)
        return [T.tensor((xs[0], xs[1], ho, wo), T.element(types[0]))]


@irdl_op_definition
class MaxPool2dOp(Pool2dOp):
    """Max over each window; padding counts as -inf. Output sizes follow PyTorch (in ceil_mode
    the last window starts inside the input or its leading padding).

    %y = train.max_pool2d %x {kernel = [3, 3], stride = [2, 2], padding = [1, 1, 1, 1]}
         : (tensor<1x8x8x8xf32>) -> tensor<1x8x4x4xf32>
    """

    name = "train.max_pool2d"
    dilation = ints_prop([1, 1])
    DILATION: ClassVar[bool] = True


@irdl_op_definition
class AvgPool2dOp(Pool2dOp):
    """Mean over each window; count_include_pad decides whether padding counts in the divisor
    (the ceil_mode overhang past the padding never does). Each pad is smaller than the kernel
    (as ONNX Runtime requires), so every window holds input cells.

    %y = train.avg_pool2d %x {kernel = [3, 3], stride = [2, 2], padding = [1, 1, 1, 1], ceil_mode = true}
         : (tensor<1x8x7x7xf32>) -> tensor<1x8x4x4xf32>
    """

    name = "train.avg_pool2d"
    count_include_pad = bool_prop(True)

    @classmethod
    def infer(cls, types, p):
        kh, kw = _pair(p.kernel, "kernel")
        pt, pl, pb, pr = pad4(p.padding)
        if max(pt, pb) >= kh or max(pl, pr) >= kw:
            raise VerifyException(f"padding {[pt, pl, pb, pr]} must be smaller than the kernel {[kh, kw]}")
        return super().infer(types, p)


@irdl_op_definition
class GlobalAvgPoolOp(TrainOp):
    """Mean over H and W: [N, C, H, W] -> [N, C, 1, 1]."""

    name = "train.global_avg_pool"
    FLOAT_ONLY: ClassVar[bool] = True
    x = operand_def(TensorType)
    result = result_def(TensorType)

    @classmethod
    def infer(cls, types, p):
        xs = T.shape(types[0])
        if len(xs) != 4:
            raise VerifyException(f"expects NCHW input, got {T.fmt(xs)}")
        return [T.tensor((xs[0], xs[1], 1, 1), T.element(types[0]))]


@irdl_op_definition
class PadOp(TrainOp):
    """Constant padding: pads = [before_0, .., before_r-1, after_0, .., after_r-1] (ONNX order)."""

    name = "train.pad"
    x = operand_def(TensorType)
    result = result_def(TensorType)
    pads = ints_prop()
    value = float_prop(0.0)

    @classmethod
    def infer(cls, types, p):
        xs = T.shape(types[0])
        pads = p.pads
        if len(pads) != 2 * len(xs):
            raise VerifyException(f"pads needs {2 * len(xs)} values for rank {len(xs)}, got {len(pads)}")
        out = tuple(d + pads[i] + pads[i + len(xs)] for i, d in enumerate(xs))
        if min(out, default=1) < 0:
            raise VerifyException(f"negative padding {list(pads)} removes more than {T.fmt(xs)}")
        return [T.tensor(out, T.element(types[0]))]


OPS = [Conv2dOp, ConvTranspose2dOp, MatmulOp, LinearOp, MaxPool2dOp, AvgPool2dOp, GlobalAvgPoolOp, PadOp]
