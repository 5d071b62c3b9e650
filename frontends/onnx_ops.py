"""ONNX translations for elementwise, shape and data-movement ops (layers: onnx_nn_ops.py).

One function per op (per opset range where the semantics changed). A translation reads
its node, emits `train` ops through the importer and returns the node's outputs. Shapes,
axes, pads... must be known at import (`n.const`); values known at import fold.
"""

from __future__ import annotations

import itertools
import math
from functools import partial

import numpy as np
from xdsl.ir import OpResult
from xdsl.utils.exceptions import VerifyException

from ..ir import types as T
from ..ir.ops import elementwise as E
from ..ir.ops import reduce as R
from ..ir.ops import shape as S
from .onnx_importer import Known, element, element_of_onnx, shape, translates

# --- helpers shared with onnx_nn_ops --------------------------------------------------------


def reshape(g, v, dims):
    dims = [int(d) for d in dims]
    return v if list(shape(v)) == dims else g.emit(S.ReshapeOp, v, shape=dims)


def cast(g, v, el):
    return v if element(v) == el else g.emit(E.CastOp, v, to=str(el))


def scalar(g, value, like):
    return g.known(value, like)


def axis_of(n, v, axis):
    try:
        return T.norm_axis(int(axis), len(shape(v)))
    except (VerifyException, TypeError, ValueError):
        raise n.error(f"axis {axis} out of range for rank {len(shape(v))}") from None


def axes_input(n, idx, attr_until, v, name="axes"):
    """Axes from the attribute (opset <= attr_until) or from input `idx` (later)."""
    axes = n.attr(name) if n.opset <= attr_until else n.ints(idx)
    return None if axes is None else [axis_of(n, v, a) for a in axes]


def gather_elements(g, x, idx, axis):
    return g.emit(S.GatherElementsOp, x, idx, axis=axis)


# --- elementwise ---------------------------------------------------------------------------

BINARY = {"Add": E.AddOp, "Sub": E.SubOp, "Mul": E.MulOp, "Div": E.DivOp, "Pow": E.PowOp,
          "And": E.AndOp, "Or": E.OrOp, "Equal": E.EqOp, "Less": E.LtOp, "LessOrEqual": E.LeOp,
          "Greater": E.GtOp, "GreaterOrEqual": E.GeOp}
UNARY = {"Neg": E.NegOp, "Abs": E.AbsOp, "Sqrt": E.SqrtOp,
         "Exp": E.ExpOp, "Log": E.LogOp, "Tanh": E.TanhOp, "Sin": E.SinOp, "Cos": E.CosOp,
         "Erf": E.ErfOp, "Sigmoid": E.SigmoidOp, "Relu": E.ReluOp, "Not": E.LogicalNotOp}


def _binary(op, g, n):
    a, b = n.input(0), n.input(1)
    if n.opset < 7 and n.attr("broadcast", 0):  # legacy broadcast: b aligned with a at `axis`
        axis = n.attr("axis")
        if axis is not None:
            ra, rb = len(shape(a)), len(shape(b))
            b = reshape(g, b, [*shape(b), *[1] * (ra - axis_of(n, a, axis) - rb)])
    if op is E.PowOp:
        b = cast(g, b, element(a))  # exponent may have another type (Pow-7+)
    if op is E.DivOp and not T.is_float(a):
        return _trunc_div(g, a, b)
    return g.emit(op, a, b)


def _trunc_div(g, a, b):
    """Integer Div truncates toward zero (C), train.div floors: divide magnitudes, restore the sign."""
    q = g.emit(E.DivOp, g.emit(E.AbsOp, a), g.emit(E.AbsOp, b))
    zero = scalar(g, 0, a)
    negative = g.emit(E.NeOp, g.emit(E.LtOp, a, zero), g.emit(E.LtOp, b, zero))
    return g.emit(E.WhereOp, negative, g.emit(E.NegOp, q), q)


for _name, _op in BINARY.items():
    translates(_name)(partial(_binary, _op))
for _name, _op in UNARY.items():
    translates(_name)(lambda g, n, op=_op: g.emit(op, n.input(0)))


def _variadic(op, g, n):
    vals = n.inputs()
    out = vals[0]
    for v in vals[1:]:
        out = g.emit(op, out, v)
    return out


translates("Sum")(partial(_variadic, E.AddOp))
translates("Max")(partial(_variadic, E.MaximumOp))
translates("Min")(partial(_variadic, E.MinimumOp))


@translates("Reciprocal")
def reciprocal(g, n):
    """Reciprocal(Sqrt(x)), ONNX's spelling of rsqrt (RMSNorm), becomes train.rsqrt."""
    x = n.input(0)
    sqrt = x.owner if isinstance(x, OpResult) and isinstance(x.owner, E.SqrtOp) else None
    if sqrt is not None:  # exact: the interpreter's rsqrt is 1 / sqrt(x)
        return g.emit(E.RsqrtOp, sqrt.x)
    return g.emit(E.ReciprocalOp, x)


@translates("Identity")
def identity(g, n):
    return n.input(0)


@translates("IsNaN", 9)
def isnan(g, n):
    x = n.input(0)
    return g.emit(E.NeOp, x, x)  # NaN is the only value unequal to itself


@translates("Gelu", 20)
def gelu(g, n):
    return g.emit(E.GeluOp, n.input(0), approximate=n.attr("approximate", "none"))


@translates("Cast", 6)
def cast_op(g, n):
    return cast(g, n.input(0), element_of_onnx(n.attr("to")))


@translates("Clip", 6, 10)
def clip_attr(g, n):
    return _clip(g, n, n.attr("min"), n.attr("max"))


@translates("Clip", 11)
def clip_inputs(g, n):
    lo = n.input(1) if n.has(1) else None
    hi = n.input(2) if n.has(2) else None
    return _clip(g, n, lo, hi)


def _clip(g, n, lo, hi):
    x = n.input(0)
    bounds = [b.array.item() if isinstance(b, Known) else b for b in (lo, hi)]
    if T.is_float(x) and all(b is None or isinstance(b, (int, float)) for b in bounds):
        return g.emit(E.ClampOp, x, min=None if bounds[0] is None else float(bounds[0]),
                      max=None if bounds[1] is None else float(bounds[1]))
    for b, op in zip(bounds, (E.MaximumOp, E.MinimumOp)):  # integer tensors, or bounds known only at run time
        if b is not None:
            x = g.emit(op, x, scalar(g, b, x) if isinstance(b, (int, float)) else reshape(g, b, []))
    return x


@translates("Where", 9)
def where(g, n):
    return g.emit(E.WhereOp, *n.inputs())


# --- constants -----------------------------------------------------------------------------


@translates("Constant", 1)
def constant(g, n):
    from onnx import numpy_helper

    for key, a in (("value_float", np.float32), ("value_floats", np.float32),
                   ("value_int", np.int64), ("value_ints", np.int64)):
        if n.attr(key) is not None:
            return Known(np.asarray(n.attr(key), a))
    if n.attr("value") is None:
        raise n.error("only dense tensor constants are supported (value, value_float(s), value_int(s))")
    return Known(numpy_helper.to_array(n.attr("value")))


@translates("ConstantOfShape", 9)
def constant_of_shape(g, n):
    from onnx import numpy_helper

    value = n.attr("value")
    fill = numpy_helper.to_array(value).reshape(()) if value is not None else np.zeros((), np.float32)
    return Known(np.full(n.ints(0), fill, dtype=fill.dtype))


@translates("Range", 11)
def range_op(g, n):
    start, limit, delta = (n.const(i).reshape(()) for i in range(3))
    if start.dtype == np.float16 and n.opset >= 27 and n.attr("stash_type", 1) == 1:  # f32 arithmetic
        wide = [v.astype(np.float32) for v in (start, limit, delta)]
        return Known(np.arange(*wide, dtype=np.float32).astype(np.float16))
    return Known(np.arange(start, limit, delta, dtype=start.dtype))  # the ONNX definition itself


@translates("Shape", 1)
def shape_op(g, n):
    s = shape(n.input(0))
    start, end = n.attr("start", 0), n.attr("end")
    return Known(np.array(s[start:end], dtype=np.int64))


@translates("Size", 1)
def size_op(g, n):
    return Known(np.array(math.prod(shape(n.input(0))), dtype=np.int64))


# --- shape ops -----------------------------------------------------------------------------


@translates("Reshape", 5)
def reshape_op(g, n):
    x = n.input(0)
    xs, dims = shape(x), n.ints(1)
    allowzero = n.attr("allowzero", 0)
    dims = [xs[i] if d == 0 and not allowzero else d for i, d in enumerate(dims)]
    if dims.count(-1) > 1:
        raise n.error(f"shape {dims} has more than one -1")
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        dims[dims.index(-1)] = math.prod(xs) // known if known else 0
    return reshape(g, x, dims)


@translates("Flatten", 1)
def flatten(g, n):
    x = n.input(0)
    xs = shape(x)
    axis = n.attr("axis", 1)
    axis = axis + len(xs) if axis < 0 else axis
    return reshape(g, x, [math.prod(xs[:axis]), math.prod(xs[axis:])])


@translates("Squeeze", 1)
def squeeze(g, n):
    x = n.input(0)
    axes = axes_input(n, 1, 12, x)  # an attribute before opset 13, an optional input from 13
    xs = shape(x)
    axes = [i for i, d in enumerate(xs) if d == 1] if axes is None else axes
    if any(xs[a] != 1 for a in axes):
        raise n.error(f"cannot squeeze axes {axes} of shape {T.fmt(xs)}")
    return reshape(g, x, [d for i, d in enumerate(xs) if i not in axes])


@translates("Unsqueeze", 1)
def unsqueeze(g, n):
    x = n.input(0)
    xs = list(shape(x))
    axes = n.attr("axes") if n.opset < 13 else n.ints(1)  # axes index the output
    rank = len(xs) + len(axes)
    for a in sorted(a % rank for a in axes):
        xs.insert(a, 1)
    return reshape(g, x, xs)


@translates("Transpose", 1)
def transpose(g, n):
    x = n.input(0)
    perm = n.attr("perm") or list(reversed(range(len(shape(x)))))
    if list(perm) == list(range(len(perm))):
        return x
    return g.emit(S.TransposeOp, x, perm=list(perm))


@translates("Expand", 8)
def expand(g, n):
    x = n.input(0)
    out = T.broadcast(shape(x), n.ints(1))  # bidirectional, unlike numpy's broadcast_to
    return x if out == shape(x) else g.emit(S.BroadcastOp, x, shape=list(out))


@translates("Tile", 6)
def tile(g, n):
    x = n.input(0)
    xs, reps = shape(x), n.ints(1)
    inter = [v for d, r in zip(xs, reps) for v in (1, d)]
    big = [v for d, r in zip(xs, reps) for v in (r, d)]
    y = g.emit(S.BroadcastOp, reshape(g, x, inter), shape=big)
    return reshape(g, y, [d * r for d, r in zip(xs, reps)])


@translates("Concat", 4)
def concat(g, n):
    vals = [v for v in n.inputs()]
    if len(vals) == 1:
        return vals[0]
    return g.emit(S.ConcatOp, *vals, axis=axis_of(n, vals[0], n.attr("axis")))


@translates("Split", 2)
def split(g, n):
    x = n.input(0)
    axis = axis_of(n, x, n.attr("axis", 0))
    dim, count = shape(x)[axis], len(n.proto.output)
    sizes = n.attr("split") if n.opset < 13 else n.ints(1)
    if not sizes:
        parts = n.attr("num_outputs", count)
        chunk = -(-dim // parts)
        sizes = [min(chunk, dim - i * chunk) for i in range(parts)]
    bounds = [int(b) for b in np.cumsum([0, *sizes])]
    return [g.emit(S.SliceOp, x, axes=[axis], starts=[s], ends=[e]) for s, e in itertools.pairwise(bounds)]


@translates("Slice", 1, 9)
def slice_attr(g, n):
    x = n.input(0)
    starts, ends = n.attr("starts"), n.attr("ends")
    return _slice(g, n, x, starts, ends, n.attr("axes") or list(range(len(starts))), [1] * len(starts))


@translates("Slice", 10)
def slice_inputs(g, n):
    x = n.input(0)
    starts, ends = n.ints(1), n.ints(2)
    axes = n.ints(3, list(range(len(starts))))
    return _slice(g, n, x, starts, ends, axes, n.ints(4, [1] * len(starts)))


def _slice(g, n, x, starts, ends, axes, steps):
    """ONNX clamping (not Python's): start into [0, d] (or [0, d-1] stepping back)."""
    for a, s, e, k in zip(axes, starts, ends, steps):
        a = axis_of(n, x, a)
        d = shape(x)[a]
        s, e = s + d if s < 0 else s, e + d if e < 0 else e
        if k == 0:
            raise n.error("slice step 0")
        if k > 0:
            s, e = min(max(s, 0), d), min(max(e, 0), d)
            if (s, e, k) != (0, d, 1):
                x = g.emit(S.SliceOp, x, axes=[a], starts=[s], ends=[max(e, s)], steps=[k])
        else:  # a reversed slice is a gather of the indices it visits
            s, e = min(max(s, 0), d - 1), min(max(e, -1), d - 1)
            x = g.emit(S.GatherOp, x, Known(np.arange(s, e, k, dtype=np.int64)), axis=a)
    return x


@translates("Gather", 1)
def gather(g, n):
    x, idx = n.input(0), n.input(1)
    return g.emit(S.GatherOp, x, idx, axis=axis_of(n, x, n.attr("axis", 0)))


@translates("GatherElements", 11)
def gather_elements_op(g, n):
    x, idx = n.input(0), n.input(1)
    return gather_elements(g, x, idx, axis_of(n, x, n.attr("axis", 0)))


@translates("GatherND", 11)
def gather_nd(g, n):
    """data[b.., idx[..., :m]] as one flat gather: index = Σ_j idx_j · stride_j + batch offset."""
    x, idx = n.input(0), cast(g, n.input(1), T.i64)
    b = n.attr("batch_dims", 0)
    xs, ids = shape(x), shape(idx)
    m = ids[-1]
    dims = xs[b:b + m]
    strides = [math.prod(dims[j + 1:]) for j in range(m)]
    idx = g.emit(E.WhereOp, g.emit(E.LtOp, idx, scalar(g, 0, idx)),
                 g.emit(E.AddOp, idx, Known(np.array(dims, np.int64))), idx)
    flat = g.emit(R.SumOp, g.emit(E.MulOp, idx, Known(np.array(strides, np.int64))), axes=[len(ids) - 1])
    if b:
        batch = np.arange(math.prod(ids[:b]), dtype=np.int64).reshape([*ids[:b], *[1] * (len(ids) - 1 - b)])
        flat = g.emit(E.AddOp, flat, Known(batch * math.prod(dims)))
    table = reshape(g, x, [math.prod(xs[:b + m]), *xs[b + m:]])
    return g.emit(S.GatherOp, table, flat, axis=0)


# --- reductions ----------------------------------------------------------------------------

REDUCE = {"ReduceMean": (R.MeanOp, 17), "ReduceSum": (R.SumOp, 12), "ReduceMax": (R.MaxOp, 17)}


def _reduce(op, attr_until, g, n):
    x = n.input(0)
    axes = axes_input(n, 1, attr_until, x)
    if not axes:
        if n.opset > attr_until and n.attr("noop_with_empty_axes", 0):
            return x
        axes = list(range(len(shape(x))))
    return g.emit(op, x, axes=axes, keepdims=bool(n.attr("keepdims", 1)))


for _name, (_op, _until) in REDUCE.items():
    translates(_name)(partial(_reduce, _op, _until))


@translates("Softmax", 1, 12)
@translates("LogSoftmax", 1, 12)
def softmax_flat(g, n):
    """Before opset 13 the input is flattened to 2-D at `axis` (default 1) and normalized
    over the whole second half, not along one axis."""
    x = n.input(0)
    xs = shape(x)
    axis = axis_of(n, x, n.attr("axis", 1))
    op = R.SoftmaxOp if n.op_type == "Softmax" else R.LogSoftmaxOp
    if axis == len(xs) - 1:
        return g.emit(op, x, axis=-1)
    flat = reshape(g, x, [math.prod(xs[:axis]), math.prod(xs[axis:])])
    return reshape(g, g.emit(op, flat, axis=-1), xs)


@translates("Softmax", 13)
@translates("LogSoftmax", 13)
def softmax(g, n):
    x = n.input(0)
    op = R.SoftmaxOp if n.op_type == "Softmax" else R.LogSoftmaxOp
    return g.emit(op, x, axis=axis_of(n, x, n.attr("axis", -1)))
