"""ATen overloads of torch.export's training IR that core ATen decomposes away (linear,
conv2d, batch_norm, layer_norm, dropout, ...), lowered directly.

`from_torch` first tries the exported program as it is: when every op has a lowering and no op
mutates a tensor something else still reads, `run_decompositions()` (a second trace of the
whole model, about half of the import time) is skipped. Otherwise, or when one of these
lowerings refuses its arguments, the import runs again on the decomposed program, so either
path gives the same IR semantics. Each lowering here delegates to the core-ATen lowering of
the op torch would decompose it into.
"""

from __future__ import annotations

import operator

import numpy as np
import torch

from ..ir import types as T
from ..ir.ops import elementwise as E
from ..ir.ops import linalg as L
from ..ir.ops import reduce as R
from ..ir.ops import shape as S
from . import torch_nn_ops as NN
from . import torch_ops as O
from .torch_import import TRAINING_MODE_HINT, Unsupported
from .torch_ops import ATEN, DROPPED, cast, lower, reshape, shape

aten = torch.ops.aten


@lower(aten.linear.default)
def linear(b, x, w, bias=None):
    if len(shape(x)) < 1:
        raise Unsupported("linear of a scalar")
    y = b.op(L.LinearOp, x, w)
    return y if bias is None else b.op(E.AddOp, y, bias)


@lower(aten.conv1d.default, aten.conv2d.default, aten.conv3d.default)
def conv(b, x, w, bias=None, stride=(1,), padding=(0,), dilation=(1,), groups=1):
    n = len(shape(x)) - 2
    if len(shape(x)) == len(shape(w)) - 1:
        raise Unsupported("unbatched convolution input")
    fit = lambda v: list(v) * n if len(v) == 1 else list(v)
    return O.convolution(b, x, w, bias, fit(stride), fit(padding), fit(dilation), False, [0] * n, groups)


@lower(aten.conv_transpose1d.default, aten.conv_transpose2d.input)
def conv_transpose(b, x, w, bias=None, stride=(1,), padding=(0,), output_padding=(0,), groups=1, dilation=(1,)):
    n = len(shape(x)) - 2
    fit = lambda v: list(v) * n if len(v) == 1 else list(v)
    return O.convolution(b, x, w, bias, fit(stride), fit(padding), fit(dilation), True, fit(output_padding), groups)


@lower(aten.batch_norm.default)
def batch_norm(b, x, weight, bias, running_mean, running_var, training, momentum, eps, cudnn_enabled=False):
    if running_mean is None:  # track_running_stats=False: the batch's statistics, in eval mode too
        return NN.batch_norm_batch_stats(b, x, weight, bias, training, momentum, eps)[0]
    if training:
        raise Unsupported("batch_norm in training mode" + TRAINING_MODE_HINT)
    return O.batch_norm(b, x, weight, bias, running_mean, running_var, momentum, eps)[0]


@lower(aten.instance_norm.default)
def instance_norm(b, x, weight, bias, running_mean, running_var, use_input_stats, momentum, eps,
                  cudnn_enabled=False):
    if not use_input_stats:  # InstanceNorm(track_running_stats=True) in eval mode: a batch norm per channel
        return O.batch_norm(b, x, weight, bias, running_mean, running_var, momentum, eps)[0]
    y, _, _ = NN._stats_norm(b, x, list(range(2, len(shape(x)))), eps)
    return NN._channel_affine(b, y, weight, bias)


@lower(aten.layer_norm.default)
def layer_norm(b, x, normalized_shape, weight=None, bias=None, eps=1e-5, cudnn_enable=True):
    return O.layer_norm(b, x, normalized_shape, weight, bias, eps)[0]


@lower(aten.group_norm.default)
def group_norm(b, x, num_groups, weight=None, bias=None, eps=1e-5, cudnn_enabled=True):
    xs = shape(x)
    return NN.group_norm(b, x, weight, bias, xs[0], xs[1], int(np.prod(xs[2:])), num_groups, eps)[0]


@lower(aten.dropout.default, aten.feature_dropout.default, aten.alpha_dropout.default)
def dropout(b, x, p, train):
    if train and p:
        raise Unsupported("dropout in training mode" + TRAINING_MODE_HINT)
    return x


@lower(aten.flatten.using_ints)
def flatten(b, x, start_dim=0, end_dim=-1):
    xs = shape(x)
    if not xs:
        return reshape(b, x, (1,))
    s, e = start_dim % len(xs), end_dim % len(xs)
    return reshape(b, x, (*xs[:s], int(np.prod(xs[s:e + 1])), *xs[e + 1:]))


@lower(aten.adaptive_avg_pool2d.default)
def adaptive_avg_pool2d(b, x, output_size):
    xs = shape(x)
    out = [xs[-2 + i] if s is None else s for i, s in enumerate(O._pair(output_size))]
    if len(xs) != 4 or any(i % o for i, o in zip(xs[2:], out)):
        raise Unsupported("adaptive_avg_pool2d to a size that does not divide the input")
    if out == [1, 1]:
        return b.op(L.GlobalAvgPoolOp, x)
    k = [i // o for i, o in zip(xs[2:], out)]
    return b.op(L.AvgPool2dOp, x, kernel=k, stride=k, padding=[0, 0])


@lower(aten.max_pool2d.default)
def max_pool2d(b, x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    return O.max_pool2d(b, x, kernel_size, stride, padding, dilation, ceil_mode)[0]


@lower(aten.max_pool3d.default)
def max_pool3d(b, x, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    return NN.max_pool3d(b, x, kernel_size, stride, padding, dilation, ceil_mode)[0]


@lower(aten.softmax.int)
def softmax(b, x, dim, dtype=None):
    return b.op(R.SoftmaxOp, cast(b, x, b.out_element()), axis=dim)


@lower(aten.log_softmax.int)
def log_softmax(b, x, dim, dtype=None):
    return b.op(R.LogSoftmaxOp, cast(b, x, b.out_element()), axis=dim)


@lower(aten.matmul.default)
def matmul(b, x, y):
    if len(shape(x)) < 2 or len(shape(y)) < 2:
        raise Unsupported("matmul of a vector")
    return b.op(L.MatmulOp, x, y)


# the training IR's spellings of core ATen's bitwise_and / bitwise_or / minimum / maximum
for _cls, _op in ((E.AndOp, aten.__and__.Tensor), (E.OrOp, aten.__or__.Tensor),
                  (E.MinimumOp, aten.min.other), (E.MaximumOp, aten.max.other)):
    lower(_op)(O.arith(_cls))


@lower(aten.where.ScalarOther, aten.where.ScalarSelf, aten.where.Scalar)
def where_scalar(b, cond, x, y):
    return O.where(b, cond, x, y)


@lower(aten.new_ones.default, aten.new_zeros.default)
def new_ones(b, x, size, **_dtype_layout_device):
    fill = 1 if b.node.target == aten.new_ones.default else 0
    return b.const(np.full([int(s) for s in size], fill, dtype=T.numpy_dtype(b.out_element())), b.out_element())


@lower(aten.to.device, aten.to.dtype_layout, aten.type_as.default)
def to(b, x, *args, **kwargs):
    return cast(b, x, b.out_element())


@lower(aten.diff.default)
def diff(b, x, n=1, dim=-1, prepend=None, append=None):
    if n != 1:
        raise Unsupported(f"diff with n={n}")
    dim = dim % len(shape(x))
    parts = [p for p in (prepend, x, append) if p is not None]
    if len(parts) > 1:
        el = b.out_element()
        x = b.op(S.ConcatOp, *[cast(b, p, el) for p in parts], axis=dim)
    size = shape(x)[dim]
    return O.arith(E.SubOp)(b, O.slice_(b, x, dim, 1, size), O.slice_(b, x, dim, 0, size - 1))


@lower(aten.hardsigmoid.default)
def hardsigmoid(b, x):
    return b.op(E.DivOp, b.op(E.Relu6Op, b.op(E.AddOp, x, b.scalar(3.0, T.element(x)))), b.scalar(6.0, T.element(x)))


@lower(aten.hardswish.default)
def hardswish(b, x):
    return b.op(E.MulOp, x, hardsigmoid(b, x))


@lower(aten.prelu.default)
def prelu(b, x, weight):
    """x > 0 ? x : w·x, one slope per channel (dim 1) or one for all."""
    w = weight if shape(weight) in ((1,), ()) else reshape(b, weight, (shape(weight)[0],) + (1,) * (len(shape(x)) - 2))
    el = T.element(x)
    return b.op(E.WhereOp, b.op(E.GtOp, x, b.scalar(0, el)), x, b.op(E.MulOp, x, w))


lower(aten.detach_.default)(O.identity)  # detach_ changes no value

# in-place ops lowered functionally when nothing reads the overwritten tensor afterwards
INPLACE = {aten.relu_.default: aten.relu.default, aten.add_.Tensor: aten.add.Tensor,
           aten.mul_.Tensor: aten.mul.Tensor, aten.hardtanh_.default: aten.hardtanh.default,
           aten.silu_.default: aten.silu.default, aten.leaky_relu_.default: aten.leaky_relu.default,
           aten.hardswish_.default: aten.hardswish.default, aten.hardsigmoid_.default: aten.hardsigmoid.default}
for _inplace, _functional in INPLACE.items():
    ATEN[_inplace] = ATEN[_functional]


def lowers_directly(ep) -> bool:
    """Whether the exported (not decomposed) program can be lowered as it is: every op has a
    lowering and each in-place op overwrites a tensor no view shares and nothing reads later."""
    order = {n: i for i, n in enumerate(ep.graph.nodes)}
    for node in ep.graph.nodes:
        if node.op != "call_function" or node.target is operator.getitem or node.target in DROPPED:
            continue
        if node.target not in ATEN:
            return False
        if node.target in INPLACE and not _overwrite_is_private(node, order):
            return False
        if node.target not in INPLACE and node.target is not aten.detach_.default and \
                getattr(node.target, "_schema", None) is not None and node.target._schema.is_mutable:
            return False
    return True


def _overwrite_is_private(node, order) -> bool:
    """node overwrites its first operand: fine when that is a fresh result (of a functional op,
    or of an in-place op that is itself private) that no view shares and nothing reads later."""
    target = node.args[0]
    if not isinstance(target, torch.fx.Node) or target.op != "call_function":
        return False
    if _aliases(target) and not (target.target in INPLACE and _overwrite_is_private(target, order)):
        return False
    return all(u is node or (order[u] < order[node] and not _aliases(u)) for u in target.users)


def _aliases(node) -> bool:
    """The node's result may share storage with an input (a view, an in-place op)."""
    schema = getattr(node.target, "_schema", None)
    if node.target is operator.getitem:
        return _aliases(node.args[0])
    return schema is None or any(r.alias_info is not None for r in schema.returns)

