"""Quantization semantics (ir/ops/quant.py): numpy's rint rounds half to even; integer
contractions accumulate in int64 (exact) and are returned as i32 like onnxruntime's."""

from __future__ import annotations

import numpy as np

from ..ops import quant as Q
from . import impl
from .linalg import conv2d


def rounded(x: np.ndarray, scale: np.ndarray, zp: np.ndarray) -> np.ndarray:
    """round_half_even(x / scale) + zp, unclamped, in x's float type."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.rint(x / scale.astype(x.dtype)) + zp.astype(x.dtype)


def quantize(x: np.ndarray, scale: np.ndarray, zp: np.ndarray) -> np.ndarray:
    info = np.iinfo(zp.dtype)
    v = rounded(x, scale, zp)
    v = np.where(np.isnan(v), info.min, np.clip(v, info.min, info.max))
    return v.astype(zp.dtype)


def dequantize(q: np.ndarray, scale: np.ndarray, zp: np.ndarray) -> np.ndarray:
    return (q.astype(np.int64) - zp.astype(np.int64)).astype(scale.dtype) * scale


@impl(Q.QuantizeOp)
def run_quantize(interp, op, x, scale, zp):
    return quantize(x, scale, zp)


@impl(Q.DequantizeOp)
def run_dequantize(interp, op, q, scale, zp):
    return dequantize(q, scale, zp)


@impl(Q.FakeQuantizeOp)
def run_fake_quantize(interp, op, x, scale, zp):
    return dequantize(quantize(x, scale, zp), scale.astype(x.dtype), zp)


@impl(Q.FakeQuantizeBackwardOp)
def run_fake_quantize_backward(interp, op, x, scale, zp, dy):
    info = np.iinfo(zp.dtype)
    v = rounded(x, scale, zp)
    return np.where((v >= info.min) & (v <= info.max), dy, np.zeros((), dy.dtype))


@impl(Q.MatmulIntegerOp)
def run_matmul_integer(interp, op, a, b, az, bz):
    return np.matmul(a.astype(np.int64) - az.astype(np.int64), b.astype(np.int64) - bz.astype(np.int64)).astype(np.int32)


@impl(Q.ConvIntegerOp)
def run_conv_integer(interp, op, x, w, xz, wz):
    p = op.p
    xs, ws = x.astype(np.int64) - xz.astype(np.int64), w.astype(np.int64) - wz.astype(np.int64)
    return conv2d(xs, ws, p.stride, p.padding, p.dilation, p.groups).astype(np.int32)
