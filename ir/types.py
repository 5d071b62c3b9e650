"""Tensor types of the train dialect and the shape arithmetic ops share.

Ops use builtin `tensor<...xT>`; the element type is kept generic (f32 by default,
f16/bf16/f64 for floats, i64/i32 for indices and labels, i1 for masks; i8/ui8 for quantized
tensors and i32 for their integer accumulators, ir/ops/quant.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from xdsl.dialects.builtin import (
    BFloat16Type,
    Float16Type,
    Float32Type,
    Float64Type,
    IntegerType,
    Signedness,
    TensorType,
    bf16,
    f16,
    f32,
    f64,
    i1,
    i8,
    i32,
    i64,
)
from xdsl.ir import Attribute, SSAValue
from xdsl.utils.exceptions import VerifyException

FLOAT_TYPES = (Float16Type, BFloat16Type, Float32Type, Float64Type)

ui8 = IntegerType(8, Signedness.UNSIGNED)  # MLIR's `ui8`: ONNX UINT8 (quantized activations)
QUANT_TYPES = (i8, ui8, i32)  # what QuantizeLinear/DequantizeLinear read and write

_NUMPY_OF = {f16: np.float16, f32: np.float32, f64: np.float64, i64: np.int64, i32: np.int32, i1: np.bool_,
             i8: np.int8, ui8: np.uint8}
_ELEMENT_OF = {np.dtype(v): k for k, v in _NUMPY_OF.items()}


def tensor(shape: Sequence[int], element: Attribute = f32) -> TensorType:
    return TensorType(element, [int(d) for d in shape])


def shape(value: SSAValue | TensorType) -> tuple[int, ...]:
    t = value.type if isinstance(value, SSAValue) else value
    if not isinstance(t, TensorType):
        raise VerifyException(f"expected a tensor, got {t}")
    return tuple(t.get_shape())


def element(value: SSAValue | TensorType) -> Attribute:
    t = value.type if isinstance(value, SSAValue) else value
    assert isinstance(t, TensorType)
    return t.element_type


def is_float(t: SSAValue | TensorType | Attribute) -> bool:
    el = t if not isinstance(t, (SSAValue, TensorType)) else element(t)
    return isinstance(el, FLOAT_TYPES)


def int_range(el: Attribute) -> tuple[int, int]:
    """(lowest, highest) value of an integer element type (the saturation bounds)."""
    info = np.iinfo(numpy_dtype(el))
    return int(info.min), int(info.max)


def numpy_dtype(el: Attribute) -> np.dtype:
    if el == bf16:
        raise NotImplementedError("bf16 has no numpy dtype; interpret in f32")
    try:
        return np.dtype(_NUMPY_OF[el])
    except KeyError:
        raise NotImplementedError(f"no numpy dtype for element type {el}") from None


def element_of(dtype: np.dtype) -> Attribute:
    try:
        return _ELEMENT_OF[np.dtype(dtype)]
    except KeyError:
        raise NotImplementedError(f"no element type for numpy dtype {dtype}") from None


def fmt(s: Sequence[int]) -> str:
    """Shape as the IR spells it (`8x16`), for error messages."""
    return "x".join(str(d) for d in s) or "scalar"


def broadcast(*shapes: Sequence[int]) -> tuple[int, ...]:
    """numpy/ONNX multidirectional broadcast, or a VerifyException naming the shapes."""
    try:
        return tuple(np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError:
        raise VerifyException(
            "shapes " + ", ".join(fmt(s) for s in shapes) + " do not broadcast"
        ) from None


def norm_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise VerifyException(f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


def norm_axes(axes: Sequence[int], rank: int) -> tuple[int, ...]:
    out = tuple(sorted(norm_axis(a, rank) for a in axes))
    if len(set(out)) != len(out):
        raise VerifyException(f"repeated axis in {list(axes)}")
    return out


def reduced(s: Sequence[int], axes: Sequence[int], keepdims: bool) -> tuple[int, ...]:
    ax = set(norm_axes(axes, len(s)))
    if keepdims:
        return tuple(1 if i in ax else d for i, d in enumerate(s))
    return tuple(d for i, d in enumerate(s) if i not in ax)
