"""sum, mean, max, any over axes; softmax, log_softmax, cumsum along one axis."""

from __future__ import annotations

import math

from ...ir.ops import reduce as R
from ..kernel_ir import View
from ..lower_to_kernels import lowers

_KIND = {R.SumOp: "sum", R.MeanOp: "mean", R.MaxOp: "max", R.AnyOp: "any"}
MAX_DIMS = 6


def reduce_layout(x: View, axes) -> tuple[list[int], list[int], list[int]]:
    """Loop dims over x with x's strides and the output's (0 on reduced dims), adjacent dims
    of the same kind merged; at most MAX_DIMS, padded with leading 1s."""
    red = {a % len(x.shape) for a in axes}
    kept = [d for i, d in enumerate(x.shape) if i not in red]
    ost, acc = [], 1
    for d in reversed(kept):
        ost.append(acc)
        acc *= d
    ost = list(reversed(ost))
    dims, xs, ys, kinds = [], [], [], []
    k = 0
    for i, (d, s) in enumerate(zip(x.shape, x.elem_strides())):
        is_red = i in red
        y = 0 if is_red else ost[k]
        k += 0 if is_red else 1
        if d == 1:
            continue
        if dims and kinds[-1] == is_red and xs[-1] == s * d and ys[-1] == y * d:
            dims[-1] *= d
            xs[-1], ys[-1] = s, y
            continue
        dims.append(d)
        xs.append(s)
        ys.append(y)
        kinds.append(is_red)
    if len(dims) > MAX_DIMS:
        raise ValueError(f"reduction over {len(dims)} separate dims (at most {MAX_DIMS})")
    pad = MAX_DIMS - len(dims)
    return [1] * pad + dims, [0] * pad + xs, [0] * pad + ys


@lowers(*_KIND)
def lower_reduce(lw, op):
    x = lw.view(op.x)
    y = lw.result(op.result)
    kind = _KIND[type(op)]
    dims, xs, ys = reduce_layout(x, op.p.axes)
    count = math.prod(x.shape) // max(y.size, 1)
    if kind == "mean":
        kind, scale = "sum", 1.0 / max(count, 1)
    else:
        scale = 1.0
    lw.call("reduce", dict(dims=dims, x_strides=xs, y_strides=ys, x=x, y=y, count=y.size, scale=scale), [x], [y],
            variant=f"{kind}_{x.dtype}")


def axis_layout(shape, axis) -> tuple[int, int, int]:
    ax = axis % len(shape)
    return math.prod(shape[:ax]), shape[ax], math.prod(shape[ax + 1:])


@lowers(R.SoftmaxOp, R.LogSoftmaxOp)
def lower_softmax(lw, op):
    x = lw.contiguous(lw.view(op.x))
    y = lw.result(op.result)
    lw.call("softmax", dict(layout=axis_layout(x.shape, op.p.axis), x=x, y=y), [x], [y],
            variant="" if isinstance(op, R.SoftmaxOp) else "log")


@lowers(R.CumsumOp)
def lower_cumsum(lw, op):
    x = lw.contiguous(lw.view(op.x))
    y = lw.result(op.result)
    if x.dtype not in ("f32", "i64"):
        raise ValueError(f"cumsum of {x.dtype} has no kernel")
    lw.call("cumsum", dict(layout=axis_layout(x.shape, op.p.axis), x=x, y=y), [x], [y], variant=x.dtype)
