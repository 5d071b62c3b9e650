"""Elementwise semantics: one numpy function per op, in tables that the interpreter and
constant folding (passes/canonicalize patterns) both read."""

from __future__ import annotations

import math

import numpy as np

from ..ops import elementwise as E
from ..types import bf16, numpy_dtype
from . import impl

_erf = np.frompyfunc(math.erf, 1, 1)


def erf(x):
    return np.asarray(_erf(x), dtype=x.dtype)  # frompyfunc gives a Python float for 0-d input


def sigmoid(x):
    return (0.5 * (np.tanh(0.5 * x) + 1)).astype(x.dtype)  # stable for large |x|


def gelu(x, approximate="none"):
    if approximate == "tanh":
        c = np.sqrt(2 / np.pi).astype(x.dtype)
        return 0.5 * x * (1 + np.tanh(c * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + erf(x / np.sqrt(2).astype(x.dtype)))


def round_to_bf16(x):
    """x rounded to bfloat16 (nearest, ties to even), held in float32: numpy has no bf16."""
    bits = np.array(x, dtype=np.float32).view(np.uint32)  # a copy; 0-d stays 0-d
    rounded = (bits + np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1))) & np.uint32(0xFFFF0000)
    return np.where(np.isnan(x), np.float32(np.nan), rounded.view(np.float32))


UNARY = {
    E.NegOp: np.negative,
    E.AbsOp: np.abs,
    E.SqrtOp: np.sqrt,
    E.RsqrtOp: lambda x: 1 / np.sqrt(x),
    E.ReciprocalOp: lambda x: 1 / x,
    E.ExpOp: np.exp,
    E.LogOp: np.log,
    E.TanhOp: np.tanh,
    E.SinOp: np.sin,
    E.CosOp: np.cos,
    E.ErfOp: erf,
    E.SigmoidOp: sigmoid,
    E.ReluOp: lambda x: np.maximum(x, 0).astype(x.dtype),
    E.Relu6Op: lambda x: np.clip(x, 0, 6).astype(x.dtype),
    E.SiluOp: lambda x: x * sigmoid(x),
    E.LogicalNotOp: np.logical_not,
}

BINARY = {
    E.AddOp: np.add,
    E.SubOp: np.subtract,
    E.MulOp: np.multiply,
    E.DivOp: lambda a, b: np.true_divide(a, b) if a.dtype.kind == "f" else np.floor_divide(a, b),
    E.PowOp: np.power,
    E.MaximumOp: np.maximum,
    E.MinimumOp: np.minimum,
    E.AndOp: np.bitwise_and,
    E.OrOp: np.bitwise_or,
    E.EqOp: np.equal,
    E.NeOp: np.not_equal,
    E.LtOp: np.less,
    E.LeOp: np.less_equal,
    E.GtOp: np.greater,
    E.GeOp: np.greater_equal,
}


def evaluate(op, *args: np.ndarray) -> np.ndarray:
    """Value of an elementwise op on arrays (shared with constant folding)."""
    t = type(op)
    if t in UNARY:
        return np.asarray(UNARY[t](args[0]))
    if t in BINARY:
        return np.asarray(BINARY[t](*args))
    if t is E.GeluOp:
        return gelu(args[0], op.p.approximate)
    if t is E.ClampOp:
        return np.clip(args[0], op.p.min, op.p.max).astype(args[0].dtype)
    if t is E.CastOp:
        el = op.result.type.element_type
        return round_to_bf16(args[0]) if el == bf16 else args[0].astype(numpy_dtype(el))
    if t is E.WhereOp:
        return np.where(*args)
    raise KeyError(op.name)


@impl(*UNARY, *BINARY, E.GeluOp, E.ClampOp, E.CastOp, E.WhereOp)
def run_elementwise(interp, op, *args):
    out = evaluate(op, *args)
    if out.dtype.kind == "f" and type(op) is not E.CastOp:
        return out.astype(args[-1].dtype if args[-1].dtype.kind == "f" else interp.float)
    return out
