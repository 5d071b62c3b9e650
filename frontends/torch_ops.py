"""Core ATen → `train`: one small function per overload, registered in `ATEN` by `@lower`.

A lowering receives the Builder `b` (frontends/torch_import.py) and the node's arguments as
torch.export recorded them: SSA values for tensors, Python values for ints, floats and lists.
It returns the result value (a tuple for multi-output ops, whose entries may be functions
that build an output only when a `getitem` reads it). Result element types follow
PyTorch's type promotion, read from the node's `meta["val"]` (`b.out_element()`); operands are
cast to it, so every train op sees one element type. Ops whose operands are all known at
import are folded by the Builder, never here.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..ir import types as T
from ..ir.ops import elementwise as E
from ..ir.ops import linalg as L
from ..ir.ops import norm as N
from ..ir.ops import reduce as R
from ..ir.ops import shape as S
from .torch_import import DTYPE_OF_ELEMENT, Unavailable, Unsupported, element_of

aten = torch.ops.aten
ATEN: dict = {}
# asserts left by transformers' `.to()`: no semantics
DROPPED = {aten._assert_tensor_metadata.default, aten._assert_scalar.default}


def lower(*overloads):
    def register(fn):
        for o in overloads:
            ATEN[o] = fn
        return fn

    return register


# --- helpers --------------------------------------------------------------------------------


def shape(v) -> tuple[int, ...]:
    return T.shape(v)


def cast(b, v, el):
    """v as a tensor of element type el: Python scalars become rank-0 constants."""
    if not hasattr(v, "type"):
        return b.scalar(v, el)
    return v if T.element(v) == el else b.op(E.CastOp, v, to=str(el))


def as_bool(b, v):
    if not hasattr(v, "type"):
        return b.scalar(bool(v), T.i1)
    return v if T.element(v) == T.i1 else b.op(E.NeOp, v, b.scalar(0, T.element(v)))


def _probe(v):
    if not hasattr(v, "type"):
        return v
    return torch.empty((1,) * len(shape(v)) if shape(v) else (), dtype=DTYPE_OF_ELEMENT[T.element(v)])


def common_element(*vs):
    """The element type PyTorch promotes these operands to (wrapped scalars and 0-dim tensors
    count less than dimensioned tensors, exactly as torch.result_type says)."""
    probes = [_probe(v) for v in vs]
    dt = probes[0] if len(probes) == 1 else torch.result_type(*probes[:2])
    for p in probes[2:]:
        dt = torch.promote_types(dt, torch.result_type(p, torch.empty((), dtype=dt)))
    return element_of(dt)


def reshape(b, x, new_shape):
    new_shape = [int(d) for d in new_shape]
    if -1 in new_shape:
        known = math.prod(d for d in new_shape if d != -1)
        new_shape[new_shape.index(-1)] = math.prod(shape(x)) // max(known, 1)
    return x if tuple(new_shape) == shape(x) else b.op(S.ReshapeOp, x, shape=new_shape)


def axes_of(dims, rank):
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return list(range(rank))
    dims = [dims] if isinstance(dims, int) else list(dims)
    return [d % rank if rank else 0 for d in dims]


def identity(b, x, *args, **kwargs):
    return x


# --- elementwise ----------------------------------------------------------------------------


def arith(cls):
    """A binary op computed in the result's element type (add, mul, div, pow, ...)."""

    def lowering(b, x, y, *, alpha=1):
        el = b.out_element()
        if _is_identity(cls, x, y, alpha, el):  # x * 1.0, x + 0 (RoPE's attention_scaling, arange + 0)
            return x
        if alpha != 1:
            y = y * alpha if not hasattr(y, "type") else b.op(E.MulOp, cast(b, y, el), b.scalar(alpha, el))
        return b.op(cls, cast(b, x, el), cast(b, y, el))

    return lowering


def _is_identity(cls, x, y, alpha, el) -> bool:
    if hasattr(y, "type") or not hasattr(x, "type") or T.element(x) != el:
        return False
    unit = {E.AddOp: 0, E.SubOp: 0, E.MulOp: 1, E.DivOp: 1}.get(cls)
    return unit is not None and y * alpha == unit


def compare(cls):
    """A comparison: both operands promoted together, an i1 result."""

    def lowering(b, x, y):
        el = common_element(x, y)
        return b.op(cls, cast(b, x, el), cast(b, y, el))

    return lowering


def logical(cls):
    def lowering(b, x, y):
        return b.op(cls, as_bool(b, x), as_bool(b, y))

    return lowering


for _cls, _ops in {
    E.AddOp: (aten.add.Tensor, aten.add.Scalar),
    E.SubOp: (aten.sub.Tensor, aten.sub.Scalar),
    E.MulOp: (aten.mul.Tensor, aten.mul.Scalar),
    E.DivOp: (aten.div.Tensor, aten.div.Scalar),
    E.PowOp: (aten.pow.Tensor_Tensor, aten.pow.Tensor_Scalar),
    E.MaximumOp: (aten.maximum.default,),
    E.MinimumOp: (aten.minimum.default,),
    E.AndOp: (aten.bitwise_and.Tensor,),
    E.OrOp: (aten.bitwise_or.Tensor,),
}.items():
    lower(*_ops)(arith(_cls))
for _cls, _ops in {
    E.EqOp: (aten.eq.Tensor, aten.eq.Scalar),
    E.NeOp: (aten.ne.Tensor, aten.ne.Scalar),
    E.LtOp: (aten.lt.Tensor, aten.lt.Scalar),
    E.LeOp: (aten.le.Tensor, aten.le.Scalar),
    E.GtOp: (aten.gt.Tensor, aten.gt.Scalar),
    E.GeOp: (aten.ge.Tensor, aten.ge.Scalar),
}.items():
    lower(*_ops)(compare(_cls))
lower(aten.logical_and.default)(logical(E.AndOp))
lower(aten.logical_or.default)(logical(E.OrOp))


@lower(aten.pow.Scalar)
def pow_scalar(b, base, x):
    el = b.out_element()
    return b.op(E.PowOp, b.scalar(base, el), cast(b, x, el))


@lower(aten.rsub.Scalar)
def rsub(b, x, y, alpha=1):
    return arith(E.SubOp)(b, y, x if alpha == 1 else x * alpha if not hasattr(x, "type") else
                          b.op(E.MulOp, x, b.scalar(alpha, T.element(x))))


def unary(cls):
    def lowering(b, x):
        return b.op(cls, cast(b, x, b.out_element()))

    return lowering


for _cls, _op in {
    E.NegOp: aten.neg.default, E.AbsOp: aten.abs.default, E.SqrtOp: aten.sqrt.default,
    E.RsqrtOp: aten.rsqrt.default, E.ReciprocalOp: aten.reciprocal.default, E.ExpOp: aten.exp.default,
    E.LogOp: aten.log.default, E.TanhOp: aten.tanh.default, E.SinOp: aten.sin.default,
    E.CosOp: aten.cos.default, E.ErfOp: aten.erf.default, E.SigmoidOp: aten.sigmoid.default,
    E.ReluOp: aten.relu.default, E.SiluOp: aten.silu.default,
}.items():
    lower(_op)(unary(_cls))


@lower(aten.logical_not.default)
def logical_not(b, x):
    return b.op(E.LogicalNotOp, as_bool(b, x))


@lower(aten.bitwise_not.default)
def bitwise_not(b, x):
    if T.element(x) == T.i1:
        return b.op(E.LogicalNotOp, x)
    return b.op(E.SubOp, b.op(E.NegOp, x), b.scalar(1, T.element(x)))  # ~n == -n - 1


@lower(aten.gelu.default)
def gelu(b, x, approximate="none"):
    return b.op(E.GeluOp, x, approximate=approximate)


@lower(aten.hardtanh.default)
def hardtanh(b, x, min_val=-1.0, max_val=1.0):
    if (min_val, max_val) == (0.0, 6.0):  # nn.ReLU6
        return b.op(E.Relu6Op, x)
    return b.op(E.ClampOp, x, min=float(min_val), max=float(max_val))


@lower(aten.clamp.default)
def clamp(b, x, min=None, max=None):
    el = b.out_element()
    x = cast(b, x, el)
    if T.is_float(x):
        return b.op(E.ClampOp, x, min=None if min is None else float(min), max=None if max is None else float(max))
    if min is not None:
        x = b.op(E.MaximumOp, x, b.scalar(min, el))
    return x if max is None else b.op(E.MinimumOp, x, b.scalar(max, el))


@lower(aten.where.self)
def where(b, cond, x, y):
    el = b.out_element()
    return b.op(E.WhereOp, as_bool(b, cond), cast(b, x, el), cast(b, y, el))


@lower(aten._to_copy.default, aten.to.dtype)
def to_copy(b, x, dtype=None, **_device_layout):
    return x if dtype is None else cast(b, x, element_of(dtype))


lower(aten.clone.default, aten.alias.default, aten.detach.default, aten.lift_fresh_copy.default,
      aten.contiguous.default)(identity)


# --- reductions -------------------------------------------------------------------------------


def reduction(cls):
    def lowering(b, x, dim=None, keepdim=False, *, dtype=None):
        axes = axes_of(dim, len(shape(x)))
        el = b.out_element()
        x = as_bool(b, x) if cls is R.AnyOp else cast(b, x, el)
        return b.op(cls, x, axes=axes, keepdims=keepdim)

    return lowering


lower(aten.sum.dim_IntList)(reduction(R.SumOp))
lower(aten.amax.default)(reduction(R.MaxOp))
lower(aten.any.dim, aten.any.dims)(reduction(R.AnyOp))


@lower(aten.sum.default)
def sum_all(b, x, *, dtype=None):
    return reduction(R.SumOp)(b, x)


@lower(aten.any.default)
def any_all(b, x):
    return reduction(R.AnyOp)(b, x)


@lower(aten.mean.dim)
def mean(b, x, dim=None, keepdim=False, *, dtype=None):
    axes = axes_of(dim, len(shape(x)))
    if len(shape(x)) == 4 and sorted(axes) == [2, 3]:  # adaptive_avg_pool2d(1): one op for both frontends
        y = b.op(L.GlobalAvgPoolOp, x)
        return y if keepdim else reshape(b, y, shape(x)[:2])
    return b.op(R.MeanOp, cast(b, x, b.out_element()), axes=axes, keepdims=keepdim)


@lower(aten.cumsum.default)
def cumsum(b, x, dim, *, dtype=None):
    return b.op(R.CumsumOp, cast(b, x, b.out_element()), axis=dim)


@lower(aten._softmax.default)
def softmax(b, x, dim, half_to_float=False):
    return b.op(R.SoftmaxOp, x, axis=dim)


@lower(aten._log_softmax.default)
def log_softmax(b, x, dim, half_to_float=False):
    return b.op(R.LogSoftmaxOp, x, axis=dim)


# --- normalization ----------------------------------------------------------------------------


def _affine(b, v, n, fill, el):
    return v if v is not None else b.const(np.full((n,), fill), el)


@lower(aten._native_batch_norm_legit_no_training.default)
def batch_norm(b, x, weight, bias, running_mean, running_var, momentum, eps):
    c, el = shape(x)[1], T.element(x)
    y = b.op(N.BatchNormOp, x, _affine(b, weight, c, 1.0, el), _affine(b, bias, c, 0.0, el),
             running_mean, running_var, eps=eps)
    return y, Unavailable("the saved mean of batch_norm"), Unavailable("the saved rstd of batch_norm")


@lower(aten.native_layer_norm.default)
def layer_norm(b, x, normalized_shape, weight, bias, eps):
    k, el = len(normalized_shape), T.element(x)
    axis = len(shape(x)) - k
    if k != 1 and (weight is None or bias is None):
        raise Unsupported("layer_norm over several dims without affine parameters")
    n = shape(x)[-1]
    y = b.op(N.LayerNormOp, x, _affine(b, weight, n, 1.0, el), _affine(b, bias, n, 0.0, el), axis=axis, eps=eps)
    axes = list(range(axis, len(shape(x))))

    def mean():  # the statistics outputs, built only when a getitem reads them
        return b.op(R.MeanOp, x, axes=axes, keepdims=True)

    def rstd():
        d = b.op(E.SubOp, x, mean())
        var = b.op(R.MeanOp, b.op(E.MulOp, d, d), axes=axes, keepdims=True)
        return b.op(E.RsqrtOp, b.op(E.AddOp, var, b.scalar(eps, el)))

    return y, mean, rstd


# --- contractions and windows -----------------------------------------------------------------


@lower(aten.convolution.default)
def convolution(b, x, w, bias, stride, padding, dilation, transposed, output_padding, groups):
    from .torch_nn_ops import conv3d, conv_transpose

    if transposed:
        y = conv_transpose(b, x, w, stride, padding, dilation, output_padding, groups)
    elif len(shape(x)) == 3:  # conv1d as a conv2d of height 1
        x, w = reshape(b, x, (*shape(x)[:2], 1, shape(x)[2])), reshape(b, w, (*shape(w)[:2], 1, shape(w)[2]))
        y = b.op(L.Conv2dOp, x, w, stride=[1, stride[0]], padding=[0, padding[0]], dilation=[1, dilation[0]],
                 groups=groups)
        y = reshape(b, y, (shape(y)[0], shape(y)[1], shape(y)[3]))
    elif len(shape(x)) == 4:
        y = b.op(L.Conv2dOp, x, w, stride=stride, padding=padding, dilation=dilation, groups=groups)
    elif len(shape(x)) == 5:
        y = conv3d(b, x, w, stride, padding, dilation, groups)
    else:
        raise Unsupported(f"{len(shape(x)) - 2}-d convolution")
    if bias is None:
        return y
    return b.op(E.AddOp, y, reshape(b, bias, (shape(bias)[0],) + (1,) * (len(shape(y)) - 2)))


@lower(aten.mm.default, aten.bmm.default)
def matmul(b, x, y):
    return b.op(L.MatmulOp, x, y)


@lower(aten.addmm.default)
def addmm(b, bias, x, y, *, beta=1, alpha=1):
    el = T.element(x)
    xy = b.op(L.MatmulOp, x, y)
    if alpha != 1:
        xy = b.op(E.MulOp, xy, b.scalar(alpha, el))
    if beta != 1:
        bias = b.op(E.MulOp, bias, b.scalar(beta, el))
    return b.op(E.AddOp, xy, bias)


@lower(aten.max_pool2d_with_indices.default)
def max_pool2d(b, x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    y = b.op(L.MaxPool2dOp, x, kernel=_pair(kernel_size), stride=_pair(stride or kernel_size),
             padding=_pair(padding), dilation=_pair(dilation), ceil_mode=ceil_mode)
    return y, Unavailable("the indices of max_pool2d_with_indices")


@lower(aten.avg_pool2d.default)
def avg_pool2d(b, x, kernel_size, stride=(), padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    if divisor_override is not None:
        raise Unsupported("avg_pool2d with divisor_override")
    return b.op(L.AvgPool2dOp, x, kernel=_pair(kernel_size), stride=_pair(stride or kernel_size),
                padding=_pair(padding), ceil_mode=ceil_mode, count_include_pad=count_include_pad)


def _pair(v):
    v = [v] if isinstance(v, int) else list(v)
    return v * 2 if len(v) == 1 else v


@lower(aten.constant_pad_nd.default)
def constant_pad(b, x, pad, value=0):
    r = len(shape(x))
    before, after = [0] * r, [0] * r
    for i in range(len(pad) // 2):  # PyTorch pads the last dim first
        before[r - 1 - i], after[r - 1 - i] = pad[2 * i], pad[2 * i + 1]
    return b.op(L.PadOp, x, pads=before + after, value=float(value))


# --- data movement ----------------------------------------------------------------------------


@lower(aten.view.default, aten._unsafe_view.default, aten.reshape.default)
def view(b, x, size):
    return reshape(b, x, size)


@lower(aten.permute.default)
def permute(b, x, dims):
    perm = [d % len(shape(x)) for d in dims]
    return x if perm == sorted(perm) else b.op(S.TransposeOp, x, perm=perm)


@lower(aten.t.default)
def t(b, x):
    return x if len(shape(x)) < 2 else b.op(S.TransposeOp, x, perm=[1, 0])


@lower(aten.transpose.int)
def transpose(b, x, dim0, dim1):
    perm = list(range(len(shape(x))))
    perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
    return permute(b, x, perm)


@lower(aten.expand.default)
def expand(b, x, size, implicit=False):
    xs, lead = shape(x), len(size) - len(shape(x))
    out = [xs[i - lead] if s == -1 else int(s) for i, s in enumerate(size)]
    return x if tuple(out) == xs else b.op(S.BroadcastOp, x, shape=out)


@lower(aten.unsqueeze.default)
def unsqueeze(b, x, dim):
    xs = list(shape(x))
    xs.insert(dim % (len(xs) + 1), 1)
    return reshape(b, x, xs)


@lower(aten.squeeze.dims, aten.squeeze.dim, aten.squeeze.default)
def squeeze(b, x, dims=None):
    xs = shape(x)
    drop = set(axes_of(dims, len(xs)))
    return reshape(b, x, [d for i, d in enumerate(xs) if not (i in drop and d == 1)])


@lower(aten.slice.Tensor)
def slice_(b, x, dim=0, start=None, end=None, step=1):
    dim = dim % len(shape(x))
    start, stop, _ = slice(start, end, step).indices(shape(x)[dim])  # end may be INT64_MAX
    if start == 0 and stop >= shape(x)[dim] and step == 1:
        return x
    return b.op(S.SliceOp, x, axes=[dim], starts=[start], ends=[stop], steps=[step])


@lower(aten.select.int)
def select(b, x, dim, index):
    xs = shape(x)
    dim, index = dim % len(xs), index % xs[dim]
    y = slice_(b, x, dim, index, index + 1)
    return reshape(b, y, xs[:dim] + xs[dim + 1:])


@lower(aten.cat.default)
def cat(b, tensors, dim=0):
    el = b.out_element()
    rank = max(len(shape(t)) for t in tensors)
    parts = [cast(b, t, el) for t in tensors if not (len(shape(t)) == 1 and shape(t)[0] == 0 and rank > 1)]
    return parts[0] if len(parts) == 1 else b.op(S.ConcatOp, *parts, axis=dim % rank)


@lower(aten.split_with_sizes.default)
def split_with_sizes(b, x, split_sizes, dim=0):
    outs, start = [], 0
    for n in split_sizes:
        outs.append(slice_(b, x, dim, start, start + n))
        start += n
    return tuple(outs)


@lower(aten.split.Tensor)
def split(b, x, split_size, dim=0):
    n = shape(x)[dim % len(shape(x))]
    return split_with_sizes(b, x, [min(split_size, n - s) for s in range(0, n, split_size)], dim)


@lower(aten.embedding.default)
def embedding(b, weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    if scale_grad_by_freq:
        raise Unsupported("embedding with scale_grad_by_freq")
    return b.op(S.GatherOp, weight, indices, axis=0, padding_idx=padding_idx)


@lower(aten.index_select.default)
def index_select(b, x, dim, index):
    return b.op(S.GatherOp, x, index, axis=dim % len(shape(x)))


@lower(aten.gather.default)
def gather(b, x, dim, index, sparse_grad=False):
    return b.op(S.GatherElementsOp, x, index, axis=dim % len(shape(x)))


@lower(aten.index.Tensor)
def index(b, x, indices):
    """x[i0, i1, ..] with integer index tensors (None skips a dim). One index: a gather on its
    dim. Several: their broadcast is linearized into one index over the flattened dims."""
    xs = shape(x)
    dims = [d for d, i in enumerate(indices) if i is not None]
    idx = [indices[d] for d in dims]
    if any(T.element(i) == T.i1 for i in idx):
        raise Unsupported("boolean mask indexing (its result shape depends on the data)")
    if len(dims) == 1:
        return b.op(S.GatherOp, x, idx[0], axis=dims[0])
    if dims != list(range(dims[0], dims[-1] + 1)):  # PyTorch moves split index dims to the front
        rest = [d for d in range(len(xs)) if d not in dims]
        x, xs = permute(b, x, dims + rest), tuple(xs[d] for d in dims + rest)
        dims = list(range(len(dims)))
    flat = None
    for d, i in zip(dims, idx):
        i = cast(b, i, T.i64)
        i = b.op(E.WhereOp, b.op(E.LtOp, i, b.scalar(0, T.i64)), b.op(E.AddOp, i, b.scalar(xs[d], T.i64)), i)
        flat = i if flat is None else b.op(E.AddOp, b.op(E.MulOp, flat, b.scalar(xs[d], T.i64)), i)
    d0, d1 = dims[0], dims[-1] + 1
    x = reshape(b, x, (*xs[:d0], math.prod(xs[d0:d1]), *xs[d1:]))
    return b.op(S.GatherOp, x, flat, axis=d0)


# --- creation: known at import, folded by the Builder -------------------------------------------


def _np_dtype(b):
    return T.numpy_dtype(b.out_element())


@lower(aten.arange.start_step, aten.arange.start, aten.arange.default)
def arange(b, start, end=None, step=1, **_dtype_layout_device):
    if end is None:
        start, end = 0, start
    return b.const(np.arange(start, end, step).astype(_np_dtype(b)), b.out_element())


@lower(aten.full.default)
def full(b, size, fill_value, **_dtype_layout_device):
    return b.const(np.full([int(s) for s in size], fill_value, dtype=_np_dtype(b)), b.out_element())


@lower(aten.full_like.default)
def full_like(b, x, fill_value, **_dtype_layout_device):
    return b.const(np.full(shape(x), fill_value, dtype=_np_dtype(b)), b.out_element())


@lower(aten.scalar_tensor.default)
def scalar_tensor(b, value, **_dtype_layout_device):
    return b.const(np.asarray(value, dtype=_np_dtype(b)), b.out_element())


@lower(aten.zeros.default, aten.ones.default)
def zeros_ones(b, size, **_dtype_layout_device):
    fill = 1 if b.node.target == aten.ones.default else 0
    return b.const(np.full([int(s) for s in size], fill, dtype=_np_dtype(b)), b.out_element())
